//! Linear expressions over LP variables: how a value of the network depends on the edited
//! parameters once the activation pattern (APRNN) or the relaxation (PREPARED) is fixed.

use netrepair_lp::{LpModel, Var};

/// `c + sum coef * var`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Expr {
    pub c: f64,
    pub terms: Vec<(Var, f64)>,
}

impl Expr {
    /// A constant.
    pub fn constant(c: f64) -> Self {
        Self {
            c,
            terms: Vec::new(),
        }
    }

    /// One variable.
    pub fn var(v: Var) -> Self {
        Self {
            c: 0.0,
            terms: vec![(v, 1.0)],
        }
    }

    /// `self += w * other`.
    pub fn add_scaled(&mut self, other: &Expr, w: f64) {
        if w == 0.0 {
            return;
        }
        self.c += w * other.c;
        self.terms
            .extend(other.terms.iter().map(|&(v, a)| (v, a * w)));
    }

    /// `w * self`.
    pub fn scaled(&self, w: f64) -> Expr {
        let mut e = Expr::constant(0.0);
        e.add_scaled(self, w);
        e
    }

    /// Merges repeated variables and drops zero coefficients.
    pub fn compact(&mut self) {
        if self.terms.len() < 2 {
            self.terms.retain(|&(_, a)| a != 0.0);
            return;
        }
        self.terms.sort_unstable_by_key(|&(v, _)| v.index());
        let mut out: Vec<(Var, f64)> = Vec::with_capacity(self.terms.len());
        for &(v, a) in &self.terms {
            match out.last_mut() {
                Some((u, b)) if *u == v => *b += a,
                _ => out.push((v, a)),
            }
        }
        out.retain(|&(_, a)| a != 0.0);
        self.terms = out;
    }

    /// Whether the expression has no variable.
    pub fn is_constant(&self) -> bool {
        self.terms.is_empty()
    }

    /// `self <= rhs` as a row.
    pub fn le(&self, model: &mut LpModel, rhs: f64) {
        let mut e = self.clone();
        e.compact();
        if e.is_constant() {
            // A constant constraint: keep it so that a violated one makes the LP infeasible.
            let z = model.add_var(0.0, 0.0, 0.0);
            model.add_le(&[(z, 1.0)], rhs - e.c);
        } else {
            model.add_le(&e.terms, rhs - e.c);
        }
    }

    /// `self >= rhs` as a row.
    pub fn ge(&self, model: &mut LpModel, rhs: f64) {
        self.scaled(-1.0).le(model, -rhs);
    }
}

/// Replaces a long expression by a fresh variable tied to it by one equality row, so that
/// layers after it refer to one column instead of copying all its terms (this keeps deep
/// LPs sparse). Short expressions are returned as they are.
pub(crate) fn materialize(model: &mut LpModel, mut e: Expr, max_terms: usize) -> Expr {
    e.compact();
    if e.terms.len() <= max_terms {
        return e;
    }
    let v = model.add_var(f64::NEG_INFINITY, f64::INFINITY, 0.0);
    let mut terms = e.terms;
    terms.push((v, -1.0));
    model.add_eq(&terms, -e.c);
    Expr::var(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_merges_and_drops_zeros() {
        let mut m = LpModel::new();
        let (a, b) = (m.add_var(0.0, 1.0, 0.0), m.add_var(0.0, 1.0, 0.0));
        let mut e = Expr {
            c: 1.0,
            terms: vec![(b, 2.0), (a, 1.0), (b, -2.0), (a, 0.5)],
        };
        e.compact();
        assert_eq!(e.terms, vec![(a, 1.5)]);
        assert_eq!(e.c, 1.0);
    }
}

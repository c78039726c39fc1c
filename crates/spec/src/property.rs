//! Specification types: boxes, linear output constraints, polytopes and properties.

use crate::error::{Result, SpecError};

/// An axis-aligned box `lower <= x <= upper` (flattened input order).
#[derive(Debug, Clone, PartialEq)]
pub struct BoxRegion {
    /// Lower bounds.
    pub lower: Vec<f64>,
    /// Upper bounds.
    pub upper: Vec<f64>,
}

impl BoxRegion {
    /// A box; every bound must be finite and `lower <= upper`.
    pub fn new(lower: Vec<f64>, upper: Vec<f64>) -> Result<Self> {
        if lower.len() != upper.len() || lower.is_empty() {
            return Err(SpecError::InvalidBox(format!(
                "{} lower and {} upper bounds",
                lower.len(),
                upper.len()
            )));
        }
        for (i, (l, u)) in lower.iter().zip(&upper).enumerate() {
            if !l.is_finite() || !u.is_finite() {
                return Err(SpecError::InvalidBox(format!(
                    "X_{i} is unbounded ({l}, {u})"
                )));
            }
            if l > u {
                return Err(SpecError::InvalidBox(format!(
                    "X_{i} has lower bound {l} above upper bound {u}: the box is empty"
                )));
            }
        }
        Ok(Self { lower, upper })
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.lower.len()
    }

    /// Whether `x` lies in the box (up to `tol`).
    pub fn contains(&self, x: &[f64], tol: f64) -> bool {
        x.len() == self.dim()
            && x.iter()
                .zip(self.lower.iter().zip(&self.upper))
                .all(|(v, (l, u))| *v >= l - tol && *v <= u + tol)
    }

    /// The index of the widest side (the last of equals).
    pub fn widest_dim(&self) -> usize {
        (0..self.dim())
            .max_by(|&i, &j| {
                (self.upper[i] - self.lower[i]).total_cmp(&(self.upper[j] - self.lower[j]))
            })
            .unwrap_or(0)
    }

    /// The two halves of the box along dimension `dim`.
    pub fn bisect(&self, dim: usize) -> [BoxRegion; 2] {
        let mid = 0.5 * (self.lower[dim] + self.upper[dim]);
        let (mut left, mut right) = (self.clone(), self.clone());
        left.upper[dim] = mid;
        right.lower[dim] = mid;
        [left, right]
    }

    /// The two halves of the box along its widest side.
    pub fn halve_widest(&self) -> [BoxRegion; 2] {
        self.bisect(self.widest_dim())
    }

    /// The centre of the box.
    pub fn center(&self) -> Vec<f64> {
        self.lower
            .iter()
            .zip(&self.upper)
            .map(|(l, u)| 0.5 * (l + u))
            .collect()
    }
}

/// `sum_j coeffs[j].1 * y[coeffs[j].0] <= rhs`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearConstraint {
    /// Sparse coefficients (index, value), indices distinct and sorted.
    pub coeffs: Vec<(usize, f64)>,
    /// Right-hand side.
    pub rhs: f64,
}

impl LinearConstraint {
    /// `lhs(y) - rhs` (<= 0 when satisfied).
    pub fn slack(&self, y: &[f64]) -> f64 {
        self.coeffs.iter().map(|&(j, c)| c * y[j]).sum::<f64>() - self.rhs
    }
}

/// A conjunction of linear constraints on the outputs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Polytope {
    /// The constraints (all must hold).
    pub constraints: Vec<LinearConstraint>,
}

impl Polytope {
    /// Whether `y` satisfies every constraint.
    pub fn contains(&self, y: &[f64]) -> bool {
        self.constraints.iter().all(|c| c.slack(y) <= 0.0)
    }
}

/// One input box and the unsafe output region over it (a union of polytopes).
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The inputs considered.
    pub input: BoxRegion,
    /// The output is unsafe when it lies in any of these.
    pub unsafe_region: Vec<Polytope>,
}

impl Case {
    /// Whether an output is unsafe (a counterexample when its input lies in the box).
    pub fn is_unsafe_output(&self, y: &[f64]) -> bool {
        self.unsafe_region.iter().any(|p| p.contains(y))
    }
}

/// A property: it holds when no case has an input in its box whose output is unsafe.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// Number of input variables declared (`X_0 .. X_{n-1}`).
    pub num_inputs: usize,
    /// Number of output variables declared (`Y_0 .. Y_{m-1}`).
    pub num_outputs: usize,
    /// The cases (usually one; ACAS Xu property 6 has two boxes).
    pub cases: Vec<Case>,
}

impl Property {
    /// Checks the property's variable counts against a network's input and output sizes.
    pub fn check_fits(&self, inputs: usize, outputs: usize) -> Result<()> {
        if self.num_inputs != inputs || self.num_outputs != outputs {
            return Err(SpecError::Mismatch(format!(
                "the property declares {} inputs and {} outputs, the network has {inputs} inputs and {outputs} outputs",
                self.num_inputs, self.num_outputs
            )));
        }
        Ok(())
    }

    /// Whether `(x, y)` is a counterexample of some case.
    pub fn is_counterexample(&self, x: &[f64], y: &[f64], tol: f64) -> bool {
        self.cases
            .iter()
            .any(|c| c.input.contains(x, tol) && c.is_unsafe_output(y))
    }
}

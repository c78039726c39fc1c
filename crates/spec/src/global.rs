//! Global robustness and individual fairness: properties over a whole input region rather
//! than a point (seed 002, REGLO).
//!
//! `P(X, Omega, eps)`: for every `x` in the box `X` and every perturbation `dx` in `Omega`,
//! `||f(x + dx) - f(x)||_inf <= eps`. Two kinds of `Omega`:
//! - [`Perturbation::Linf`]: `||dx||_inf <= delta` (norm-bounded global robustness); `x + dx`
//!   may leave `X` by up to `delta`.
//! - [`Perturbation::Sensitive`]: only the named features move, anywhere within `X`'s range
//!   for them (individual fairness: changing age inside the age group must not change the
//!   output by more than `eps`); both `x` and `x + dx` lie in `X`.

use crate::error::{Result, SpecError};
use crate::property::BoxRegion;

/// Which perturbations of an input the property must tolerate.
#[derive(Debug, Clone, PartialEq)]
pub enum Perturbation {
    /// Every `dx` with `||dx||_inf <= delta`.
    Linf {
        /// The radius.
        delta: f64,
    },
    /// Only these features (flat input indices) change, within the region's range.
    Sensitive {
        /// The sensitive features.
        features: Vec<usize>,
    },
}

/// What `eps` bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMeasure {
    /// The raw outputs (logits): seed 002's setting. Not scale-free: shrinking the last layer
    /// shrinks every change without changing one decision.
    #[default]
    Logits,
    /// The softmax probabilities, bounded soundly through the logit differences:
    /// `||p(x') - p(x)||_inf <= max_{a,b} |dz_a - dz_b| / 4` (each `p_i` changes at rate
    /// `p_i sum_j p_j (v_i - v_j)`, at most `range(v) / 4`). A fixed scale: eps 0.01 means
    /// "no probability moves by more than one point".
    Probabilities,
}

impl std::str::FromStr for OutputMeasure {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "logits" => Ok(Self::Logits),
            "probabilities" | "probs" | "softmax" => Ok(Self::Probabilities),
            other => Err(SpecError::Mismatch(format!(
                "unknown output measure '{other}' (logits, probabilities)"
            ))),
        }
    }
}

impl OutputMeasure {
    /// The rows the variation is bounded on, as combinations of the outputs: each output
    /// (logits), or each difference `z_a - z_b`, `a < b` (probabilities).
    pub fn rows(self, outputs: usize) -> Vec<Vec<(usize, f64)>> {
        match self {
            Self::Logits => (0..outputs).map(|o| vec![(o, 1.0)]).collect(),
            Self::Probabilities => (0..outputs)
                .flat_map(|a| ((a + 1)..outputs).map(move |b| vec![(a, 1.0), (b, -1.0)]))
                .collect(),
        }
    }

    /// What a bound on the rows' change is multiplied by to bound the measure's change.
    pub fn factor(self) -> f64 {
        match self {
            Self::Logits => 1.0,
            Self::Probabilities => 0.25,
        }
    }

    /// "logits" or "probabilities".
    pub fn name(self) -> &'static str {
        match self {
            Self::Logits => "logits",
            Self::Probabilities => "probabilities",
        }
    }
}

/// A global robustness (or individual fairness) property.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalProperty {
    /// `X`: where the unperturbed input lies.
    pub region: BoxRegion,
    /// `Omega`.
    pub perturbation: Perturbation,
    /// Largest allowed L-inf change of the output, in [`measure`](Self::measure)'s units.
    pub eps: f64,
    /// What eps bounds (logits unless set).
    pub measure: OutputMeasure,
}

impl GlobalProperty {
    /// A property, checked: `eps > 0`, `delta > 0`, sensitive features named, distinct, inside
    /// the input and free to move in `region` (a feature fixed to one value cannot change).
    pub fn new(region: BoxRegion, perturbation: Perturbation, eps: f64) -> Result<Self> {
        let bad = |m: String| Err(SpecError::Mismatch(m));
        if !(eps > 0.0 && eps.is_finite()) {
            return bad(format!("eps must be positive and finite, got {eps}"));
        }
        match &perturbation {
            Perturbation::Linf { delta } => {
                if !(*delta > 0.0 && delta.is_finite()) {
                    return bad(format!("delta must be positive and finite, got {delta}"));
                }
            }
            Perturbation::Sensitive { features } => {
                if features.is_empty() {
                    return bad("individual fairness needs at least one sensitive feature".into());
                }
                for (i, &f) in features.iter().enumerate() {
                    if f >= region.dim() {
                        return bad(format!(
                            "sensitive feature {f} is not an input: the input has {} features (0..{})",
                            region.dim(),
                            region.dim() - 1
                        ));
                    }
                    if features[..i].contains(&f) {
                        return bad(format!("sensitive feature {f} is named twice"));
                    }
                }
                if features.iter().all(|&f| region.lower[f] == region.upper[f]) {
                    return bad(
                        "the region fixes every sensitive feature to one value: nothing can change"
                            .into(),
                    );
                }
            }
        }
        Ok(Self {
            region,
            perturbation,
            eps,
            measure: OutputMeasure::Logits,
        })
    }

    /// The same property with eps on `measure`.
    pub fn with_measure(mut self, measure: OutputMeasure) -> Self {
        self.measure = measure;
        self
    }

    /// Number of input features.
    pub fn dim(&self) -> usize {
        self.region.dim()
    }

    /// The features a perturbation can move.
    pub fn free_dims(&self) -> Vec<usize> {
        match &self.perturbation {
            Perturbation::Linf { .. } => (0..self.dim()).collect(),
            Perturbation::Sensitive { features } => features.clone(),
        }
    }

    /// L-inf diameter of `Omega` (largest `||dx - dx'||`): `2 delta`, or the widest sensitive
    /// range.
    pub fn diameter(&self) -> f64 {
        match &self.perturbation {
            Perturbation::Linf { delta } => 2.0 * delta,
            Perturbation::Sensitive { features } => features
                .iter()
                .map(|&f| self.region.upper[f] - self.region.lower[f])
                .fold(0.0, f64::max),
        }
    }

    /// Where `x + dx` lies when `x` lies in `area` (a sub-box of the region).
    pub fn twin_box(&self, area: &BoxRegion) -> BoxRegion {
        let mut twin = area.clone();
        match &self.perturbation {
            Perturbation::Linf { delta } => {
                twin.lower.iter_mut().for_each(|v| *v -= delta);
                twin.upper.iter_mut().for_each(|v| *v += delta);
            }
            Perturbation::Sensitive { features } => {
                for &f in features {
                    twin.lower[f] = self.region.lower[f];
                    twin.upper[f] = self.region.upper[f];
                }
            }
        }
        twin
    }

    /// Bounds of `dx` when `x` lies in `area`: `[-delta, delta]`, or for fairness zero on the
    /// other features and `[X_lo - area_hi, X_hi - area_lo]` on the sensitive ones.
    pub fn dx_box(&self, area: &BoxRegion) -> BoxRegion {
        match &self.perturbation {
            Perturbation::Linf { delta } => BoxRegion {
                lower: vec![-delta; self.dim()],
                upper: vec![*delta; self.dim()],
            },
            Perturbation::Sensitive { features } => {
                let mut b = BoxRegion {
                    lower: vec![0.0; self.dim()],
                    upper: vec![0.0; self.dim()],
                };
                for &f in features {
                    b.lower[f] = self.region.lower[f] - area.upper[f];
                    b.upper[f] = self.region.upper[f] - area.lower[f];
                }
                b
            }
        }
    }

    /// The pairs `(twin box, dx box)` for `x` in `area` with the perturbed copy restricted to
    /// one of `k` equal slices of each sensitive feature's range (fairness; `k^features` pieces,
    /// together covering every allowed perturbation), or the single pair of [`twin_box`] and
    /// [`dx_box`] (L-inf robustness, or `k <= 1`). Bounding each piece separately is tighter.
    ///
    /// [`twin_box`]: Self::twin_box
    /// [`dx_box`]: Self::dx_box
    pub fn twin_pieces(&self, area: &BoxRegion, k: usize) -> Vec<(BoxRegion, BoxRegion)> {
        let whole = vec![(self.twin_box(area), self.dx_box(area))];
        let Perturbation::Sensitive { features } = &self.perturbation else {
            return whole;
        };
        if k <= 1 {
            return whole;
        }
        let mut pieces = whole;
        for &f in features {
            let (lo, hi) = (self.region.lower[f], self.region.upper[f]);
            if hi <= lo {
                continue;
            }
            pieces = pieces
                .into_iter()
                .flat_map(|(twin, dx)| {
                    (0..k).map(move |i| {
                        let (mut t, mut d) = (twin.clone(), dx.clone());
                        t.lower[f] = lo + (hi - lo) * i as f64 / k as f64;
                        t.upper[f] = if i + 1 == k {
                            hi
                        } else {
                            lo + (hi - lo) * (i + 1) as f64 / k as f64
                        };
                        d.lower[f] = t.lower[f] - area.upper[f];
                        d.upper[f] = t.upper[f] - area.lower[f];
                        (t, d)
                    })
                })
                .collect();
        }
        pieces
    }

    /// Projects a perturbed input `x2` of `x` back into what the property allows.
    pub fn project(&self, x: &[f64], x2: &mut [f64]) {
        match &self.perturbation {
            Perturbation::Linf { delta } => {
                for (v, &c) in x2.iter_mut().zip(x) {
                    *v = v.clamp(c - delta, c + delta);
                }
            }
            Perturbation::Sensitive { features } => {
                for (j, (v, &c)) in x2.iter_mut().zip(x).enumerate() {
                    *v = if features.contains(&j) {
                        v.clamp(self.region.lower[j], self.region.upper[j])
                    } else {
                        c
                    };
                }
            }
        }
    }

    /// Checks that the property fits a network with `inputs` input features.
    pub fn check_fits(&self, inputs: usize) -> Result<()> {
        if self.dim() != inputs {
            return Err(SpecError::Mismatch(format!(
                "the region has {} features, the network takes {inputs}",
                self.dim()
            )));
        }
        Ok(())
    }

    /// "fairness" or "global robustness".
    pub fn kind(&self) -> &'static str {
        match self.perturbation {
            Perturbation::Linf { .. } => "global robustness",
            Perturbation::Sensitive { .. } => "individual fairness",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(n: usize) -> BoxRegion {
        BoxRegion::new(vec![0.0; n], vec![1.0; n]).unwrap()
    }

    #[test]
    fn fairness_twin_moves_only_sensitive_features_within_the_region() {
        let mut region = unit(3);
        region.lower[1] = 0.2;
        region.upper[1] = 0.6;
        let p = GlobalProperty::new(region, Perturbation::Sensitive { features: vec![1] }, 0.1)
            .unwrap();
        let area = BoxRegion::new(vec![0.0, 0.3, 0.5], vec![0.5, 0.4, 0.5]).unwrap();
        let twin = p.twin_box(&area);
        assert_eq!(twin.lower, vec![0.0, 0.2, 0.5]);
        assert_eq!(twin.upper, vec![0.5, 0.6, 0.5]);
        let dx = p.dx_box(&area);
        assert_eq!(dx.lower, vec![0.0, 0.2 - 0.4, 0.0]);
        assert_eq!(dx.upper, vec![0.0, 0.6 - 0.3, 0.0]);
        assert!((p.diameter() - 0.4).abs() < 1e-12);
        let mut x2 = vec![9.0, 9.0, 9.0];
        p.project(&[0.1, 0.3, 0.5], &mut x2);
        assert_eq!(x2, vec![0.1, 0.6, 0.5]);
    }

    #[test]
    fn fairness_pieces_cover_the_sensitive_range() {
        let p = GlobalProperty::new(unit(2), Perturbation::Sensitive { features: vec![0] }, 0.1)
            .unwrap();
        let area = BoxRegion::new(vec![0.2, 0.0], vec![0.3, 1.0]).unwrap();
        let pieces = p.twin_pieces(&area, 4);
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[0].0.lower[0], 0.0);
        assert_eq!(pieces[3].0.upper[0], 1.0);
        for w in pieces.windows(2) {
            assert_eq!(w[0].0.upper[0], w[1].0.lower[0]);
        }
        assert_eq!(pieces[1].1.lower[0], 0.25 - 0.3);
        assert_eq!(pieces[1].1.upper[0], 0.5 - 0.2);
        assert_eq!(pieces[1].0.lower[1], 0.0);
        assert_eq!(pieces[1].1.upper[1], 0.0);
    }

    #[test]
    fn boxes_halve_along_their_widest_side() {
        let b = BoxRegion::new(vec![0.0, -1.0, 0.0], vec![1.0, 2.0, 3.0]).unwrap();
        // Sides 1, 3, 3: the last of the widest.
        assert_eq!(b.widest_dim(), 2);
        let [l, r] = b.halve_widest();
        assert_eq!(
            (l.lower[2], l.upper[2], r.lower[2], r.upper[2]),
            (0.0, 1.5, 1.5, 3.0)
        );
        assert_eq!((l.lower[1], l.upper[1]), (-1.0, 2.0));
    }

    #[test]
    fn robustness_twin_is_the_area_widened_by_delta() {
        let p = GlobalProperty::new(unit(2), Perturbation::Linf { delta: 0.1 }, 0.5).unwrap();
        let twin = p.twin_box(&unit(2));
        assert_eq!(twin.lower, vec![-0.1, -0.1]);
        assert_eq!(twin.upper, vec![1.1, 1.1]);
        assert!((p.diameter() - 0.2).abs() < 1e-12);
        assert_eq!(p.free_dims(), vec![0, 1]);
    }

    #[test]
    fn probability_rows_are_the_logit_differences() {
        assert_eq!(
            OutputMeasure::Logits.rows(2),
            vec![vec![(0, 1.0)], vec![(1, 1.0)]]
        );
        assert_eq!(
            OutputMeasure::Probabilities.rows(3),
            vec![
                vec![(0, 1.0), (1, -1.0)],
                vec![(0, 1.0), (2, -1.0)],
                vec![(1, 1.0), (2, -1.0)]
            ]
        );
        assert_eq!(OutputMeasure::Probabilities.factor(), 0.25);
        assert_eq!(
            "probabilities".parse::<OutputMeasure>().unwrap(),
            OutputMeasure::Probabilities
        );
        assert!("odds".parse::<OutputMeasure>().is_err());
        let p = GlobalProperty::new(unit(2), Perturbation::Linf { delta: 0.1 }, 0.5).unwrap();
        assert_eq!(p.measure, OutputMeasure::Logits);
        assert_eq!(
            p.with_measure(OutputMeasure::Probabilities).measure,
            OutputMeasure::Probabilities
        );
    }

    #[test]
    fn bad_properties_are_named() {
        let e = |r| match r {
            Err(e) => format!("{e}"),
            Ok(_) => panic!("accepted"),
        };
        assert!(e(GlobalProperty::new(
            unit(2),
            Perturbation::Linf { delta: 0.1 },
            0.0
        ))
        .contains("eps"));
        assert!(e(GlobalProperty::new(
            unit(2),
            Perturbation::Linf { delta: -1.0 },
            0.1
        ))
        .contains("delta"));
        assert!(e(GlobalProperty::new(
            unit(2),
            Perturbation::Sensitive { features: vec![5] },
            0.1
        ))
        .contains("not an input"));
        assert!(e(GlobalProperty::new(
            unit(2),
            Perturbation::Sensitive { features: vec![] },
            0.1
        ))
        .contains("at least one"));
        let flat = BoxRegion::new(vec![0.0, 0.5], vec![1.0, 0.5]).unwrap();
        assert!(e(GlobalProperty::new(
            flat,
            Perturbation::Sensitive { features: vec![1] },
            0.1
        ))
        .contains("nothing can change"));
    }
}

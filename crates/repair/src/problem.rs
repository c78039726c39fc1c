//! What a repair must achieve: requirements on outputs, attached to points, V-polytopes or
//! input boxes (VNN-LIB properties).

use netrepair_spec::{BoxRegion, Case, GlobalProperty, LinearConstraint, Property};

use netrepair_nn::Network;

use crate::error::{RepairError, Result};

/// One linear requirement on the output `y`: `sum coeffs * y <= rhs`, or `< rhs` when
/// `strict`. A repair LP enforces it with the margin `eps` (`<= rhs - eps`); the re-check
/// accepts `<= rhs` (`< rhs` when strict).
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    /// The constraint.
    pub constraint: LinearConstraint,
    /// Whether equality is a violation.
    pub strict: bool,
}

impl Requirement {
    /// `y_label > y_j` for every other output `j`: the point is classified as `label`.
    pub fn label(label: usize, outputs: usize) -> Vec<Requirement> {
        (0..outputs)
            .filter(|&j| j != label)
            .map(|j| Requirement {
                constraint: LinearConstraint {
                    coeffs: vec![(j, 1.0), (label, -1.0)],
                    rhs: 0.0,
                },
                strict: true,
            })
            .collect()
    }

    /// The class `c` when `reqs` are exactly [`Requirement::label`]`(c, outputs)`.
    pub fn label_of(reqs: &[Requirement], outputs: usize) -> Option<usize> {
        (0..outputs).find(|&c| reqs == Requirement::label(c, outputs).as_slice())
    }

    /// `lower <= y_i <= upper` (non-strict), for every output `i`.
    pub fn output_box(lower: &[f64], upper: &[f64]) -> Vec<Requirement> {
        let mut out = Vec::new();
        for (i, (&l, &u)) in lower.iter().zip(upper).enumerate() {
            if u.is_finite() {
                out.push(Requirement {
                    constraint: LinearConstraint {
                        coeffs: vec![(i, 1.0)],
                        rhs: u,
                    },
                    strict: false,
                });
            }
            if l.is_finite() {
                out.push(Requirement {
                    constraint: LinearConstraint {
                        coeffs: vec![(i, -1.0)],
                        rhs: -l,
                    },
                    strict: false,
                });
            }
        }
        out
    }

    /// The value `sum coeffs * y - rhs` (non-positive when met, negative when strictly met).
    pub fn slack(&self, y: &[f64]) -> f64 {
        self.constraint.slack(y)
    }

    /// Whether `y` meets the requirement.
    pub fn holds(&self, y: &[f64]) -> bool {
        let s = self.slack(y);
        if self.strict {
            s < 0.0
        } else {
            s <= 0.0
        }
    }

    /// Where the requirement `a y <= rhs` fails, boundary included: `-a y <= -rhs`
    /// (coefficients sorted by output), as a VNN-LIB unsafe region states it.
    pub fn violation(&self) -> LinearConstraint {
        let mut coeffs: Vec<(usize, f64)> = self
            .constraint
            .coeffs
            .iter()
            .map(|&(j, a)| (j, -a))
            .collect();
        coeffs.sort_by_key(|&(j, _)| j);
        LinearConstraint {
            coeffs,
            rhs: -self.constraint.rhs,
        }
    }

    /// The negation of an unsafe-region constraint `a y <= rhs`: `-a y < -rhs`.
    pub fn negation_of(c: &LinearConstraint) -> Requirement {
        Requirement {
            constraint: LinearConstraint {
                coeffs: c.coeffs.iter().map(|&(i, a)| (i, -a)).collect(),
                rhs: -c.rhs,
            },
            strict: true,
        }
    }
}

/// One thing the repaired network must get right.
#[derive(Debug, Clone, PartialEq)]
pub enum RepairItem {
    /// All requirements hold at the input `x`.
    Point {
        /// The input (flattened).
        x: Vec<f64>,
        /// What must hold at the output.
        requirements: Vec<Requirement>,
    },
    /// All requirements hold on the convex hull of the vertices.
    Polytope {
        /// The vertices (flattened inputs).
        vertices: Vec<Vec<f64>>,
        /// What must hold at the output.
        requirements: Vec<Requirement>,
    },
    /// A VNN-LIB property: for every case, no input of its box reaches the unsafe region.
    Property {
        /// A name for reports (usually the file name).
        name: String,
        /// The property.
        property: Property,
    },
    /// A global robustness or individual fairness property: over its whole region, no
    /// allowed perturbation moves the output by more than `eps` (REGLO).
    Global {
        /// A name for reports.
        name: String,
        /// The property.
        property: GlobalProperty,
    },
}

impl RepairItem {
    /// "point", "polytope" or "property".
    pub fn kind(&self) -> &'static str {
        match self {
            RepairItem::Point { .. } => "point",
            RepairItem::Polytope { .. } => "polytope",
            RepairItem::Property { .. } => "property",
            RepairItem::Global { .. } => "global",
        }
    }
}

/// Labelled inputs (flattened), e.g. the points of a keep set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelledSet {
    /// The inputs, each flattened.
    pub inputs: Vec<Vec<f64>>,
    /// Their labels.
    pub labels: Vec<usize>,
}

impl LabelledSet {
    /// The samples `net` classifies correctly (f64 forward pass).
    pub(crate) fn count_correct(&self, net: &Network) -> Result<usize> {
        if self.is_empty() {
            return Ok(0);
        }
        let ys = crate::trace::outputs(net, &self.inputs)?;
        Ok(ys
            .iter()
            .zip(&self.labels)
            .filter(|(y, &c)| classifies(y, c))
            .count())
    }

    /// Rows of `input_len` values from `inputs`, one per label.
    pub fn from_flat(inputs: &[f64], labels: &[usize], input_len: usize) -> Result<Self> {
        if input_len == 0 || inputs.len() != labels.len() * input_len {
            return Err(RepairError::Problem(format!(
                "{} input values for {} labels of inputs with {input_len} values each",
                inputs.len(),
                labels.len()
            )));
        }
        Ok(Self {
            inputs: inputs.chunks(input_len).map(<[f64]>::to_vec).collect(),
            labels: labels.to_vec(),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub(crate) fn check(&self, net: &Network, what: &str) -> Result<()> {
        self.check_sizes(net.input_len(), net.output_len(), what)
    }

    /// Checks that every sample has `n` finite values and a label below `m`.
    pub(crate) fn check_sizes(&self, n: usize, m: usize, what: &str) -> Result<()> {
        if self.inputs.len() != self.labels.len() {
            return Err(RepairError::Problem(format!(
                "the {what} has {} inputs but {} labels",
                self.inputs.len(),
                self.labels.len()
            )));
        }
        for (i, (x, &c)) in self.inputs.iter().zip(&self.labels).enumerate() {
            if x.len() != n {
                return Err(RepairError::Problem(format!(
                    "{what} sample {i} has {} values, the network takes {n}",
                    x.len()
                )));
            }
            if x.iter().any(|v| !v.is_finite()) {
                return Err(RepairError::Problem(format!(
                    "{what} sample {i} contains NaN or infinity"
                )));
            }
            if c >= m {
                return Err(RepairError::Problem(format!(
                    "label {c} of {what} sample {i} is out of range: the network has {m} outputs"
                )));
            }
        }
        Ok(())
    }

    /// The samples at `indices`.
    pub fn subset(&self, indices: &[usize]) -> Self {
        Self {
            inputs: indices.iter().map(|&i| self.inputs[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// What a repair must leave as it is: one set for every method, each using it in its own way.
///
/// - APRNN and PREPARED hold every kept point's class by a margin (`min(original margin / 2,
///   tau)`, see [`KeepSet::margin`]) as LP constraints, with its activation pattern after the
///   start layer held so that the constraint is exact, and add its output change to the
///   objective. PREPARED also encodes kept regions like repair regions.
/// - The gradient methods (I-REPAIR, fine-tuning, random locking, PFT) train on the kept
///   points as their correct set `C`.
/// - Incremental repair measures its early-stopping accuracy on them.
///
/// The kept points must be classified correctly by the original network to be held as
/// constraints; wrong ones only steer the objective (the report counts them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeepSet {
    /// Labelled points the repaired network must keep classifying as labelled.
    pub points: LabelledSet,
    /// VNN-LIB properties that hold (are verified) before the repair and must hold after it.
    pub regions: Vec<KeepRegion>,
    /// Largest margin (on the logits) by which a kept point's class must win after the
    /// repair; a point whose original margin `m` is smaller keeps `m / 2`.
    pub tau: f64,
}

/// A property kept verified through the repair.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepRegion {
    /// A name for reports.
    pub name: String,
    /// The property (its unsafe region must stay unreachable).
    pub property: Property,
}

/// Default of [`KeepSet::tau`].
pub const DEFAULT_KEEP_TAU: f64 = 0.05;

impl KeepSet {
    /// A keep set of labelled points, with the default margin cap.
    pub fn points(points: LabelledSet) -> Self {
        Self {
            points,
            regions: Vec::new(),
            tau: DEFAULT_KEEP_TAU,
        }
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.regions.is_empty()
    }

    /// The margin a kept point with original margin `original` (true logit minus the best
    /// other) must keep: `min(original / 2, tau)`; `None` when the point was wrong already.
    pub fn margin(&self, original: f64) -> Option<f64> {
        (original > 0.0).then(|| (original / 2.0).min(self.tau.max(0.0)))
    }

    /// [`KeepSet::margin`] of a kept point of class `c` whose original outputs are `y`.
    pub fn margin_at(&self, y: &[f64], c: usize) -> Option<f64> {
        let best_other = (0..y.len())
            .filter(|&j| j != c)
            .map(|j| y[j])
            .fold(f64::NEG_INFINITY, f64::max);
        self.margin(y[c] - best_other)
    }
}

/// Whether outputs `y` put class `c` strictly above every other.
pub(crate) fn classifies(y: &[f64], c: usize) -> bool {
    y.iter().enumerate().all(|(j, &v)| j == c || y[c] > v)
}

/// The items of one repair.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RepairProblem {
    /// The items, each reported separately.
    pub items: Vec<RepairItem>,
    /// What must stay as it is.
    pub keep: KeepSet,
}

impl RepairProblem {
    /// A problem with these items and nothing kept.
    pub fn new(items: Vec<RepairItem>) -> Self {
        Self {
            items,
            keep: KeepSet::default(),
        }
    }

    /// The same problem with `keep` as its keep set.
    pub fn with_keep(mut self, keep: KeepSet) -> Self {
        self.keep = keep;
        self
    }

    /// The same problem with `n` synthetic points added to its kept points: mixtures of
    /// random pairs of them ([`crate::mixup_points`]), each labelled by `net`'s own
    /// prediction (the original network is the teacher, so no label is needed). Unchanged
    /// when nothing is kept or `n` is 0.
    pub fn with_synthetic_keep(mut self, net: &Network, n: usize, seed: u64) -> Result<Self> {
        let synthetic = crate::samples::mixup_points(&self.keep.points.inputs, n, seed);
        if synthetic.is_empty() {
            return Ok(self);
        }
        let mut labels = Vec::with_capacity(synthetic.len());
        for chunk in synthetic.chunks(1024) {
            let x = crate::samples::batch(net, chunk)?;
            labels.extend(net.predict(&x)?.into_iter().map(|l| l as usize));
        }
        self.keep.points.inputs.extend(synthetic);
        self.keep.points.labels.extend(labels);
        Ok(self)
    }

    /// Labelled points: `inputs` holds `labels.len()` rows of `input_len` values.
    pub fn from_labels(
        inputs: &[f64],
        labels: &[usize],
        input_len: usize,
        outputs: usize,
    ) -> Result<Self> {
        if labels.is_empty() {
            return Err(RepairError::Problem("the repair set is empty".into()));
        }
        if input_len == 0 || inputs.len() != labels.len() * input_len {
            return Err(RepairError::Problem(format!(
                "{} input values for {} labels of inputs with {} values each",
                inputs.len(),
                labels.len(),
                input_len
            )));
        }
        let items = labels
            .iter()
            .zip(inputs.chunks(input_len))
            .map(|(&c, x)| RepairItem::Point {
                x: x.to_vec(),
                requirements: Requirement::label(c, outputs),
            })
            .collect();
        let problem = Self::new(items);
        for (i, &c) in labels.iter().enumerate() {
            if c >= outputs {
                return Err(RepairError::Problem(format!(
                    "label {c} of item {i} is out of range: the network has {outputs} outputs"
                )));
            }
        }
        Ok(problem)
    }

    /// The inputs and labels when every item is a point whose requirements are exactly
    /// "class `c` wins" ([`Requirement::label`]); `None` otherwise.
    pub fn labelled_points(&self, outputs: usize) -> Option<(Vec<Vec<f64>>, Vec<usize>)> {
        let mut xs = Vec::with_capacity(self.items.len());
        let mut labels = Vec::with_capacity(self.items.len());
        for item in &self.items {
            let RepairItem::Point { x, requirements } = item else {
                return None;
            };
            labels.push(Requirement::label_of(requirements, outputs)?);
            xs.push(x.clone());
        }
        Some((xs, labels))
    }

    /// The error for a method that cannot repair global robustness / fairness items, if the
    /// problem has any.
    pub fn refuse_global(&self, method: &str) -> Result<()> {
        match self
            .items
            .iter()
            .position(|i| matches!(i, RepairItem::Global { .. }))
        {
            Some(i) => Err(RepairError::Unsupported(format!(
                "item {i} is a global robustness / fairness property: {method} cannot repair it (use --method reglo)"
            ))),
            None => Ok(()),
        }
    }

    /// Checks sizes and values against a network with `inputs` inputs and `outputs` outputs.
    pub fn validate(&self, inputs: usize, outputs: usize) -> Result<()> {
        if self.items.is_empty() {
            return Err(RepairError::Problem("the repair set is empty".into()));
        }
        let bad = |i: usize, what: String| Err(RepairError::Problem(format!("item {i}: {what}")));
        let check_reqs = |i: usize, reqs: &[Requirement]| -> Result<()> {
            if reqs.is_empty() {
                return bad(i, "no requirement on the output".into());
            }
            for r in reqs {
                if !r.constraint.rhs.is_finite() {
                    return bad(i, "a requirement has a non-finite bound".into());
                }
                for &(j, a) in &r.constraint.coeffs {
                    if j >= outputs || !a.is_finite() {
                        return bad(
                            i,
                            format!("a requirement names output {j} (of {outputs}) or has a non-finite coefficient"),
                        );
                    }
                }
            }
            Ok(())
        };
        let check_x = |i: usize, x: &[f64]| -> Result<()> {
            if x.len() != inputs {
                return bad(
                    i,
                    format!("input has {} values, the network takes {inputs}", x.len()),
                );
            }
            if x.iter().any(|v| !v.is_finite()) {
                return bad(i, "input contains NaN or infinity".into());
            }
            Ok(())
        };
        for (i, item) in self.items.iter().enumerate() {
            match item {
                RepairItem::Point { x, requirements } => {
                    check_x(i, x)?;
                    check_reqs(i, requirements)?;
                }
                RepairItem::Polytope {
                    vertices,
                    requirements,
                } => {
                    if vertices.is_empty() {
                        return bad(i, "a polytope without vertices".into());
                    }
                    for v in vertices {
                        check_x(i, v)?;
                    }
                    check_reqs(i, requirements)?;
                }
                RepairItem::Property { property, .. } => {
                    property.check_fits(inputs, outputs)?;
                    if property.cases.is_empty() {
                        return bad(i, "the property has no case".into());
                    }
                }
                RepairItem::Global { property, .. } => {
                    property.check_fits(inputs)?;
                }
            }
        }
        self.validate_keep(inputs, outputs)
    }

    /// Checks the keep set: shapes and labels, and no kept point that is also a repair point
    /// with another requirement (the two would contradict each other).
    fn validate_keep(&self, inputs: usize, outputs: usize) -> Result<()> {
        let keep = &self.keep;
        keep.points.check_sizes(inputs, outputs, "keep set")?;
        let tau_ok = keep.tau >= 0.0 && keep.tau.is_finite();
        if !tau_ok && !keep.points.is_empty() {
            return Err(RepairError::Problem(format!(
                "the keep margin cap (tau) must be a non-negative number, got {}",
                keep.tau
            )));
        }
        for r in &keep.regions {
            r.property
                .check_fits(inputs, outputs)
                .map_err(|e| RepairError::Problem(format!("keep region {}: {e}", r.name)))?;
        }
        if keep.points.is_empty() {
            return Ok(());
        }
        let key = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
        let kept: std::collections::HashMap<Vec<u64>, (usize, usize)> = keep
            .points
            .inputs
            .iter()
            .zip(&keep.points.labels)
            .enumerate()
            .map(|(k, (x, &c))| (key(x), (k, c)))
            .collect();
        for (i, item) in self.items.iter().enumerate() {
            let RepairItem::Point { x, requirements } = item else {
                continue;
            };
            if let Some(&(k, c)) = kept.get(&key(x)) {
                if requirements.as_slice() != Requirement::label(c, outputs).as_slice() {
                    return Err(RepairError::Problem(format!(
                        "keep point {k} (label {c}) is the same input as repair item {i}, which requires something else: a point cannot be both kept and repaired to another class"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The corners of a box (2^d of them): the V-polytope form of a box, for APRNN.
pub fn box_vertices(b: &BoxRegion) -> Vec<Vec<f64>> {
    let free: Vec<usize> = (0..b.dim()).filter(|&j| b.upper[j] > b.lower[j]).collect();
    (0..1usize << free.len())
        .map(|mask| {
            let mut v = b.lower.clone();
            for (bit, &j) in free.iter().enumerate() {
                if mask >> bit & 1 == 1 {
                    v[j] = b.upper[j];
                }
            }
            v
        })
        .collect()
}

/// Splits a box in two halves along dimension `dim`.
pub fn split_box(b: &BoxRegion, dim: usize) -> [BoxRegion; 2] {
    b.bisect(dim)
}

/// The requirements that make one case safe given which constraint of each unsafe polytope
/// to violate (`choice[p]` indexes polytope `p`'s constraints).
pub fn case_requirements(case: &Case, choice: &[usize]) -> Vec<Requirement> {
    case.unsafe_region
        .iter()
        .zip(choice)
        .map(|(poly, &c)| Requirement::negation_of(&poly.constraints[c]))
        .collect()
}

/// One polytope of a polytope JSON list (see [`parse_polytopes`]).
#[derive(serde::Deserialize)]
struct PolytopeSpec {
    vertices: Vec<Vec<f64>>,
    label: Option<usize>,
    lower: Option<Vec<f64>>,
    upper: Option<Vec<f64>>,
}

/// Repair items from a polytope JSON list,
/// `[{"vertices": [[...], ...], "label": N}, {"vertices": ..., "lower": [...], "upper": [...]}]`,
/// for a network of `outputs` outputs: each polytope gets its label or its output bounds
/// (a missing side unbounded). The vertices are checked by [`RepairProblem::validate`].
pub fn parse_polytopes(text: &str, outputs: usize) -> Result<Vec<RepairItem>> {
    let specs: Vec<PolytopeSpec> = serde_json::from_str(text).map_err(|e| {
        RepairError::Problem(format!(
            "expected [{{\"vertices\": [[...]], \"label\": N}}, ...]: {e}"
        ))
    })?;
    specs
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let requirements = match (s.label, s.lower, s.upper) {
                (Some(c), None, None) if c < outputs => Requirement::label(c, outputs),
                (Some(c), None, None) => {
                    return Err(RepairError::Problem(format!(
                        "polytope {i}: label {c} is out of range for {outputs} outputs"
                    )))
                }
                (None, lo, hi) if lo.is_some() || hi.is_some() => {
                    let lo = lo.unwrap_or_else(|| vec![f64::NEG_INFINITY; outputs]);
                    let hi = hi.unwrap_or_else(|| vec![f64::INFINITY; outputs]);
                    if lo.len() != outputs || hi.len() != outputs {
                        return Err(RepairError::Problem(format!(
                            "polytope {i}: lower/upper need {outputs} values"
                        )));
                    }
                    if lo.iter().chain(&hi).any(|v| v.is_nan()) {
                        return Err(RepairError::Problem(format!(
                            "polytope {i}: lower/upper hold NaN"
                        )));
                    }
                    Requirement::output_box(&lo, &hi)
                }
                _ => {
                    return Err(RepairError::Problem(format!(
                        "polytope {i} needs either \"label\" or \"lower\"/\"upper\""
                    )))
                }
            };
            Ok(RepairItem::Polytope {
                vertices: s.vertices,
                requirements,
            })
        })
        .collect()
}

/// Share of `set` that `net` classifies correctly.
pub fn accuracy(net: &Network, set: &LabelledSet) -> Result<f64> {
    if set.is_empty() {
        return Ok(f64::NAN);
    }
    let ok = set.count_correct(net)?;
    Ok(ok as f64 / set.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_requirements_hold_only_for_a_strict_winner() {
        let reqs = Requirement::label(1, 3);
        assert_eq!(reqs.len(), 2);
        assert!(reqs.iter().all(|r| r.holds(&[0.0, 1.0, 0.5])));
        assert!(!reqs.iter().all(|r| r.holds(&[1.0, 1.0, 0.5])));
    }

    #[test]
    fn box_corners_skip_flat_dimensions() {
        let b = BoxRegion::new(vec![0.0, 1.0, -1.0], vec![1.0, 1.0, 1.0]).unwrap();
        let v = box_vertices(&b);
        assert_eq!(v.len(), 4);
        assert!(v.contains(&vec![1.0, 1.0, -1.0]));
        assert!(v.contains(&vec![0.0, 1.0, 1.0]));
    }

    #[test]
    fn bad_problems_are_named() {
        let err = RepairProblem::from_labels(&[0.0, 1.0], &[3], 2, 2).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        let err = RepairProblem::from_labels(&[], &[], 2, 2).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let p = RepairProblem::from_labels(&[f64::NAN, 1.0], &[0], 2, 2).unwrap();
        assert!(p.validate(2, 2).unwrap_err().to_string().contains("NaN"));
        assert!(p
            .validate(3, 2)
            .unwrap_err()
            .to_string()
            .contains("takes 3"));
    }

    #[test]
    fn polytope_lists_are_read_with_their_errors_named() {
        let items = parse_polytopes(
            r#"[{"vertices": [[0, 1], [1, 0]], "label": 2},
                {"vertices": [[0, 0]], "upper": [1, 2, 3]}]"#,
            3,
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        let RepairItem::Polytope { requirements, .. } = &items[0] else {
            panic!("{items:?}")
        };
        assert_eq!(requirements, &Requirement::label(2, 3));
        let RepairItem::Polytope { requirements, .. } = &items[1] else {
            panic!("{items:?}")
        };
        assert_eq!(requirements.len(), 3, "three upper bounds, no lower");
        for (text, word) in [
            (r#"[{"vertices": [[0, 1]], "label": 3}]"#, "out of range"),
            (r#"[{"vertices": [[0, 1]], "upper": [1]}]"#, "3 values"),
            (r#"[{"vertices": [[0, 1]]}]"#, "either"),
            (r#"{"vertices": []}"#, "expected"),
        ] {
            let err = parse_polytopes(text, 3).unwrap_err().to_string();
            assert!(err.contains(word), "{text}: {err}");
        }
    }
}

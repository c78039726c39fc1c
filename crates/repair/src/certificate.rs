//! Repair certificates: what a repair proved, restated as VNN-LIB properties of the repaired
//! network, so that any VNN-COMP verifier (alpha-beta-CROWN, NNV, Marabou, nnenum, ours) can
//! check it without trusting netrepair.
//!
//! Each repaired point becomes a property over the one-point box `[x, x]` whose unsafe region
//! is the negation of its requirements (for a label: some other output at least as large);
//! each case of a repaired VNN-LIB property its own one-case property; each kept property
//! that the re-check proved, the same. What VNN-LIB cannot state is listed as left out, with
//! the reason: V-polytopes (VNN-LIB input sets are boxes) and global properties (REGLO's
//! statement is about pairs of inputs).

use netrepair_spec::{BoxRegion, Case, Polytope, Property};

use crate::outcome::{ItemStatus, RepairOutcome};
use crate::problem::{RepairItem, RepairProblem, Requirement};

/// One property of a certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateEntry {
    /// A file stem (`item12`, `item3_case1`, `keep0`): letters, digits and `_`.
    pub name: String,
    /// What it states, for people.
    pub what: String,
    /// The property; it holds on the repaired network.
    pub property: Property,
}

/// What a repair proved, as properties of the repaired network.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Certificate {
    /// The properties.
    pub entries: Vec<CertificateEntry>,
    /// Proved items that VNN-LIB cannot state, and why (one line each).
    pub left_out: Vec<String>,
}

/// The certificate of `outcome`, a repair of `problem`: its repaired items and the kept
/// properties proved after the repair. Items that were not repaired are not in it.
pub fn certificate(problem: &RepairProblem, outcome: &RepairOutcome) -> Certificate {
    let (n_in, n_out) = (outcome.network.input_len(), outcome.network.output_len());
    let mut cert = Certificate::default();
    for report in &outcome.items {
        if report.status != ItemStatus::Repaired {
            continue;
        }
        let i = report.index;
        match &problem.items[i] {
            RepairItem::Point { x, requirements } => {
                let what = match Requirement::label_of(requirements, n_out) {
                    Some(c) => format!("repair point {i} is classified as {c}"),
                    None => format!("repair point {i} meets its {} requirements", requirements.len()),
                };
                cert.entries.push(CertificateEntry {
                    name: format!("item{i}"),
                    what,
                    property: point_property(x, requirements, n_out),
                });
            }
            RepairItem::Property { name, property } => {
                push_cases(&mut cert, &format!("item{i}"), &format!("repaired property '{name}'"), property);
            }
            RepairItem::Polytope { vertices, .. } => cert.left_out.push(format!(
                "item {i}: a V-polytope (the hull of {} vertices); VNN-LIB input sets are boxes",
                vertices.len()
            )),
            RepairItem::Global { name, .. } => cert.left_out.push(format!(
                "item {i}: global property '{name}' (about pairs of inputs; VNN-LIB states one input box)"
            )),
        }
    }
    if let Some(keep) = &outcome.keep {
        for &r in &keep.proved_regions {
            let region = &problem.keep.regions[r];
            push_cases(
                &mut cert,
                &format!("keep{r}"),
                &format!("kept property '{}'", region.name),
                &region.property,
            );
        }
    }
    debug_assert!(cert
        .entries
        .iter()
        .all(|e| e.property.num_inputs == n_in && e.property.num_outputs == n_out));
    cert
}

/// One entry per case of `property` (a one-case property is one entry named `stem`).
fn push_cases(cert: &mut Certificate, stem: &str, what: &str, property: &Property) {
    let many = property.cases.len() > 1;
    for (k, case) in property.cases.iter().enumerate() {
        cert.entries.push(CertificateEntry {
            name: if many {
                format!("{stem}_case{k}")
            } else {
                stem.to_string()
            },
            what: if many {
                format!("{what}, case {k} of {}", property.cases.len())
            } else {
                what.to_string()
            },
            property: Property {
                num_inputs: property.num_inputs,
                num_outputs: property.num_outputs,
                cases: vec![case.clone()],
            },
        });
    }
}

/// The property "at `x`, every requirement holds": the box `[x, x]`, unsafe where some
/// requirement `a . y <= rhs` fails, i.e. `-a . y <= -rhs` (boundary included, as VNN-COMP
/// reads strict comparisons; the LP's margin keeps repaired points off it).
pub fn point_property(x: &[f64], requirements: &[Requirement], outputs: usize) -> Property {
    let unsafe_region = requirements
        .iter()
        .map(|r| Polytope {
            constraints: vec![r.violation()],
        })
        .collect();
    Property {
        num_inputs: x.len(),
        num_outputs: outputs,
        cases: vec![Case {
            input: BoxRegion {
                lower: x.to_vec(),
                upper: x.to_vec(),
            },
            unsafe_region,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A point labelled 1 of three outputs: unsafe where y0 >= y1 or y2 >= y1.
    #[test]
    fn a_labelled_point_is_unsafe_where_another_class_ties_or_wins() {
        let p = point_property(&[0.5, -1.0], &Requirement::label(1, 3), 3);
        assert_eq!(p.cases.len(), 1);
        let case = &p.cases[0];
        assert_eq!(case.input.lower, vec![0.5, -1.0]);
        assert_eq!(case.input.upper, vec![0.5, -1.0]);
        assert!(case.is_unsafe_output(&[2.0, 1.0, 0.0]));
        assert!(case.is_unsafe_output(&[0.0, 1.0, 1.0]));
        assert!(!case.is_unsafe_output(&[0.0, 1.0, 0.5]));
    }
}

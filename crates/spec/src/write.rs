//! [`Property`] to VNN-LIB text, in the forms VNN-COMP's own benchmarks use.
//!
//! A one-case property is written as VNN-COMP writes its files: every input bound its own
//! `assert`, and the unsafe region as one `assert` per constraint (one polytope) or as
//! `(assert (or (and ...) ...))` (several). Several cases become one disjunction of
//! `(and <box> <unsafe region>)` terms. Constraints are written as comparisons between
//! outputs where they are (`(<= Y_0 Y_1)`), as bounds of one output where the coefficient is
//! 1 or -1, and as `(<= (+ (* c Y_j) ...) rhs)` otherwise, so every number is written as it
//! is stored (Rust's shortest round-trip decimal; no exponent, which SMT-LIB does not allow).

use std::fmt::Write as _;

use crate::error::{Result, SpecError};
use crate::property::{Case, LinearConstraint, Polytope, Property};

/// VNN-LIB text of `property`, headed by `comment` (one `;` line per line of it). Reading it
/// back with [`crate::parse_vnnlib`] gives the same property.
pub fn write_vnnlib(property: &Property, comment: &str) -> Result<String> {
    if property.cases.is_empty() {
        return Err(SpecError::Unwritable("a property without cases".into()));
    }
    let mut s = String::new();
    for line in comment.lines() {
        let _ = writeln!(s, "; {line}");
    }
    for i in 0..property.num_inputs {
        let _ = writeln!(s, "(declare-const X_{i} Real)");
    }
    for j in 0..property.num_outputs {
        let _ = writeln!(s, "(declare-const Y_{j} Real)");
    }
    for case in &property.cases {
        check_case(case, property)?;
    }
    if let [case] = property.cases.as_slice() {
        s.push_str("\n; input box\n");
        for (i, (l, u)) in case.input.lower.iter().zip(&case.input.upper).enumerate() {
            let _ = writeln!(s, "(assert (<= X_{i} {}))", num(*u));
            let _ = writeln!(s, "(assert (>= X_{i} {}))", num(*l));
        }
        s.push_str("\n; unsafe outputs\n");
        match case.unsafe_region.as_slice() {
            [poly] => {
                for c in &poly.constraints {
                    let _ = writeln!(s, "(assert {})", constraint(c));
                }
            }
            polys => {
                let _ = writeln!(s, "(assert (or {}))", join(polys.iter().map(polytope)));
            }
        }
    } else {
        s.push_str("\n; cases: an input box and the outputs unsafe over it\n(assert (or\n");
        for case in &property.cases {
            let bounds = case
                .input
                .lower
                .iter()
                .zip(&case.input.upper)
                .enumerate()
                .flat_map(|(i, (l, u))| {
                    [
                        format!("(<= X_{i} {})", num(*u)),
                        format!("(>= X_{i} {})", num(*l)),
                    ]
                });
            let unsafe_region = match case.unsafe_region.as_slice() {
                [poly] => join(poly.constraints.iter().map(constraint)),
                polys => format!("(or {})", join(polys.iter().map(polytope))),
            };
            let _ = writeln!(s, "  (and {} {unsafe_region})", join(bounds));
        }
        s.push_str("))\n");
    }
    Ok(s)
}

fn check_case(case: &Case, property: &Property) -> Result<()> {
    let bad = |why: String| Err(SpecError::Unwritable(why));
    if case.input.dim() != property.num_inputs {
        return bad(format!(
            "a case box of {} dimensions in a property of {} inputs",
            case.input.dim(),
            property.num_inputs
        ));
    }
    if case
        .input
        .lower
        .iter()
        .chain(&case.input.upper)
        .any(|v| !v.is_finite())
    {
        return bad("a box bound that is not finite".into());
    }
    if case.unsafe_region.is_empty() || case.unsafe_region.iter().any(|p| p.constraints.is_empty())
    {
        return bad("an empty unsafe region or an unconstrained polytope".into());
    }
    for c in case.unsafe_region.iter().flat_map(|p| &p.constraints) {
        if c.coeffs.is_empty()
            || !c.rhs.is_finite()
            || c.coeffs
                .iter()
                .any(|&(j, a)| j >= property.num_outputs || !a.is_finite() || a == 0.0)
        {
            return bad(format!(
                "an output constraint with no term, a zero or non-finite coefficient, or an output out of range: {c:?}"
            ));
        }
    }
    Ok(())
}

/// `(and c1 c2 ...)`, also for one constraint: VNN-COMP writes every disjunct of an `or` so,
/// and some readers (e.g. the competition's `read_vnnlib.py`) expect it.
fn polytope(p: &Polytope) -> String {
    format!("(and {})", join(p.constraints.iter().map(constraint)))
}

/// One constraint `sum a_j Y_j <= rhs` in the plainest form that states it exactly.
fn constraint(c: &LinearConstraint) -> String {
    match c.coeffs.as_slice() {
        [(j, a)] if *a == 1.0 => format!("(<= Y_{j} {})", num(c.rhs)),
        [(j, a)] if *a == -1.0 => format!("(>= Y_{j} {})", num(-c.rhs)),
        [(i, a), (j, b)] if c.rhs == 0.0 && *a == -*b && a.abs() == 1.0 => {
            // a (Y_i - Y_j) <= 0.
            if *a > 0.0 {
                format!("(<= Y_{i} Y_{j})")
            } else {
                format!("(>= Y_{i} Y_{j})")
            }
        }
        terms => format!(
            "(<= (+ {}) {})",
            join(terms.iter().map(|(j, a)| format!("(* {} Y_{j})", num(*a)))),
            num(c.rhs)
        ),
    }
}

fn join(parts: impl Iterator<Item = String>) -> String {
    parts.collect::<Vec<_>>().join(" ")
}

/// A decimal that reads back as the same `f64` (Rust's shortest round-trip form, which
/// never uses an exponent), always with a decimal point.
fn num(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v };
    let s = format!("{v}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_vnnlib, BoxRegion};

    fn lc(coeffs: &[(usize, f64)], rhs: f64) -> LinearConstraint {
        LinearConstraint {
            coeffs: coeffs.to_vec(),
            rhs,
        }
    }

    fn case(lower: &[f64], upper: &[f64], polys: Vec<Vec<LinearConstraint>>) -> Case {
        Case {
            input: BoxRegion::new(lower.to_vec(), upper.to_vec()).unwrap(),
            unsafe_region: polys
                .into_iter()
                .map(|constraints| Polytope { constraints })
                .collect(),
        }
    }

    /// Writing and reading back gives the same property: one case with one polytope (the
    /// forms VNN-COMP writes), one case with a union, and two cases, with coefficients and
    /// bounds that have no short decimal.
    #[test]
    fn round_trips_through_the_parser() {
        let third = 1.0 / 3.0;
        let properties = [
            Property {
                num_inputs: 2,
                num_outputs: 3,
                cases: vec![case(
                    &[-1.0, 0.1],
                    &[1.0, 0.1],
                    vec![vec![
                        lc(&[(0, 1.0), (2, -1.0)], 0.0),
                        lc(&[(1, -1.0)], -0.5),
                    ]],
                )],
            },
            Property {
                num_inputs: 1,
                num_outputs: 3,
                cases: vec![case(
                    &[third],
                    &[2.0 * third],
                    vec![
                        vec![lc(&[(0, -1.0), (1, 1.0)], 0.0)],
                        vec![lc(&[(0, 2.5), (2, -1e-7)], 1e-9)],
                        vec![lc(&[(1, 1.0)], 7.25)],
                    ],
                )],
            },
            Property {
                num_inputs: 1,
                num_outputs: 2,
                cases: vec![
                    case(&[0.0], &[0.5], vec![vec![lc(&[(0, 1.0), (1, -1.0)], 0.0)]]),
                    case(
                        &[0.5],
                        &[1.0],
                        vec![
                            vec![lc(&[(0, -1.0), (1, 1.0)], 0.0)],
                            vec![lc(&[(1, 1.0)], -3.0)],
                        ],
                    ),
                ],
            },
        ];
        for p in properties {
            let text = write_vnnlib(&p, "a test\nof two lines").unwrap();
            assert!(text.starts_with("; a test\n; of two lines\n"), "{text}");
            let back = parse_vnnlib(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, p, "{text}");
        }
    }

    #[test]
    fn output_comparisons_are_written_as_vnn_comp_writes_them() {
        assert_eq!(constraint(&lc(&[(0, 1.0), (3, -1.0)], 0.0)), "(<= Y_0 Y_3)");
        assert_eq!(constraint(&lc(&[(0, -1.0), (3, 1.0)], 0.0)), "(>= Y_0 Y_3)");
        assert_eq!(constraint(&lc(&[(2, -1.0)], 0.5)), "(>= Y_2 -0.5)");
        assert_eq!(constraint(&lc(&[(2, 1.0)], 3.0)), "(<= Y_2 3.0)");
        assert_eq!(
            constraint(&lc(&[(0, 2.0), (1, -0.5)], 1e-7)),
            "(<= (+ (* 2.0 Y_0) (* -0.5 Y_1)) 0.0000001)"
        );
    }

    #[test]
    fn what_vnn_lib_cannot_state_is_refused() {
        let mut p = Property {
            num_inputs: 1,
            num_outputs: 1,
            cases: vec![case(&[0.0], &[1.0], vec![vec![lc(&[(0, 1.0)], 0.0)]])],
        };
        p.cases[0].input.upper[0] = f64::INFINITY;
        assert!(write_vnnlib(&p, "").is_err());
        p.cases[0].input.upper[0] = 1.0;
        p.cases[0].unsafe_region[0].constraints[0].coeffs[0].0 = 4;
        assert!(write_vnnlib(&p, "").is_err());
        p.cases.clear();
        assert!(write_vnnlib(&p, "").is_err());
    }
}

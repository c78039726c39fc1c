//! LP and MILP outcomes on hand-solved problems.

use netrepair_lp::{LpModel, Method, Outcome, Sense, SolveOptions};

#[test]
fn lp_optimum_by_hand_with_both_methods() {
    for method in [Method::Simplex, Method::Ipm] {
        // min |x - 3| + |y + 1| s.t. x + y >= 4: optimum 2 (e.g. x = 3, y = 1 or x = 5, y = -1).
        let mut m = LpModel::new();
        let x = m.add_var(-10.0, 10.0, 0.0);
        let y = m.add_var(-10.0, 10.0, 0.0);
        m.add_abs(&[(x, 1.0)], -3.0, 1.0);
        m.add_abs(&[(y, 1.0)], 1.0, 1.0);
        m.add_ge(&[(x, 1.0), (y, 1.0)], 4.0);
        let s = m
            .solve(
                Sense::Minimise,
                &SolveOptions {
                    method,
                    ..Default::default()
                },
            )
            .unwrap();
        let Outcome::Optimal { objective, values } = s.outcome else {
            panic!("{method:?}: {:?}", s.outcome)
        };
        assert!((objective - 2.0).abs() < 1e-7, "{objective}");
        assert!(values[0] + values[1] >= 4.0 - 1e-7);
        assert_eq!((s.stats.rows, s.stats.cols, s.stats.nonzeros), (5, 4, 10));
    }
}

#[test]
fn milp_uses_integrality() {
    // max x s.t. x = 2b, b binary, x <= 1.5: the LP relaxation gives 1.5, the MILP 0.
    let mut m = LpModel::new();
    let x = m.add_var(0.0, 10.0, 1.0);
    let b = m.add_binary();
    m.add_eq(&[(x, 1.0), (b, -2.0)], 0.0);
    m.add_le(&[(x, 1.0)], 1.5);
    let s = m.solve(Sense::Maximise, &SolveOptions::default()).unwrap();
    assert!(
        matches!(s.outcome, Outcome::Optimal { objective, .. } if objective.abs() < 1e-9),
        "{:?}",
        s.outcome
    );
    assert_eq!(s.stats.integers, 1);
}

#[test]
fn infeasible_and_unbounded_are_outcomes() {
    let mut m = LpModel::new();
    let x = m.add_var(0.0, 1.0, 0.0);
    m.add_ge(&[(x, 1.0)], 2.0);
    assert_eq!(
        m.solve(Sense::Minimise, &SolveOptions::default())
            .unwrap()
            .outcome,
        Outcome::Infeasible
    );
    let mut m = LpModel::new();
    m.add_var(0.0, f64::INFINITY, 1.0);
    assert_eq!(
        m.solve(Sense::Maximise, &SolveOptions::default())
            .unwrap()
            .outcome,
        Outcome::Unbounded
    );
}

#[test]
fn invalid_models_are_errors() {
    let mut m = LpModel::new();
    let x = m.add_var(1.0, 0.0, 0.0);
    m.add_le(&[(x, f64::NAN)], 1.0);
    assert!(m
        .solve(Sense::Minimise, &SolveOptions::default())
        .unwrap_err()
        .to_string()
        .contains("invalid LP model"));
}

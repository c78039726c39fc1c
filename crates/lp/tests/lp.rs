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

/// The maximisation from the crate documentation: optimum 2.8 at (1.6, 1.2).
fn small_max() -> LpModel {
    let mut m = LpModel::new();
    let x = m.add_var(0.0, f64::INFINITY, 1.0);
    let y = m.add_var(0.0, f64::INFINITY, 1.0);
    m.add_le(&[(x, 1.0), (y, 2.0)], 4.0);
    m.add_le(&[(x, 3.0), (y, 1.0)], 6.0);
    m
}

#[test]
fn every_method_and_presolve_setting_finds_the_hand_optimum_and_counts_its_iterations() {
    let m = small_max();
    for (method, presolve, tol) in [
        (Method::Simplex, true, 1e-9),
        (Method::Simplex, false, 1e-9),
        (Method::Ipm, true, 1e-7),
        (Method::Ipm, false, 1e-7),
        (Method::Pdlp, true, 1e-3),
    ] {
        let opts = SolveOptions {
            method,
            presolve,
            ..Default::default()
        };
        let s = m.solve(Sense::Maximise, &opts).unwrap();
        let Outcome::Optimal { objective, values } = &s.outcome else {
            panic!("{method:?}: {:?}", s.outcome)
        };
        assert!((objective - 2.8).abs() < tol, "{method:?}: {objective}");
        assert!(
            (values[0] - 1.6).abs() < 10.0 * tol,
            "{method:?}: {values:?}"
        );
        let it = s.stats.iterations;
        match method {
            // Presolve alone may solve a problem this small (zero simplex iterations).
            Method::Simplex if !presolve => assert!(it.simplex > 0, "{it:?}"),
            Method::Ipm if !presolve => assert!(it.ipm > 0, "{it:?}"),
            Method::Pdlp => assert!(it.pdlp > 0, "{it:?}"),
            _ => {}
        }
    }
}

#[test]
fn a_written_model_reads_back_to_the_same_optimum_in_both_formats() {
    let dir = std::env::temp_dir().join(format!("netrepair-lp-write-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (sense, want) in [(Sense::Maximise, 2.8), (Sense::Minimise, 0.0)] {
        for ext in ["mps", "lp"] {
            let path = dir.join(format!("small-{sense:?}.{ext}"));
            small_max().write(sense, &path).unwrap();
            let s = netrepair_lp::solve_file(&path, &SolveOptions::default()).unwrap();
            assert!(
                matches!(s.outcome, Outcome::Optimal { .. }),
                "{ext}: {:?}",
                s.outcome
            );
            assert!(
                (s.objective - want).abs() < 1e-9,
                "{sense:?} {ext}: {}",
                s.objective
            );
            assert_eq!((s.stats.rows, s.stats.cols, s.stats.nonzeros), (2, 2, 4));
        }
    }
    // HiGHS's thread pool is per process: a file solve with another thread count still runs.
    for threads in [2, 1] {
        let path = dir.join("small-Maximise.mps");
        let opts = SolveOptions {
            threads,
            method: Method::Ipm,
            ..Default::default()
        };
        let s = netrepair_lp::solve_file(&path, &opts).unwrap();
        assert!(
            (s.objective - 2.8).abs() < 1e-7,
            "{threads}: {:?}",
            s.outcome
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreadable_and_unwritable_model_files_are_errors() {
    let dir = std::env::temp_dir().join(format!("netrepair-lp-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.mps");
    let e = netrepair_lp::solve_file(&missing, &SolveOptions::default()).unwrap_err();
    assert!(e.to_string().contains("missing.mps"), "{e}");
    let garbage = dir.join("garbage.mps");
    std::fs::write(&garbage, "this is not an MPS file\n\u{1}\u{2}").unwrap();
    assert!(netrepair_lp::solve_file(&garbage, &SolveOptions::default()).is_err());
    let nowhere = dir.join("no/such/folder/m.mps");
    let e = small_max().write(Sense::Minimise, &nowhere).unwrap_err();
    assert!(e.to_string().contains("m.mps"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lp_methods_read_by_name() {
    for (name, m) in [
        ("choose", Method::Choose),
        ("simplex", Method::Simplex),
        ("ipm", Method::Ipm),
        ("pdlp", Method::Pdlp),
    ] {
        assert_eq!(name.parse::<Method>().unwrap(), m);
    }
    let e = "barrier".parse::<Method>().unwrap_err();
    assert!(e.to_string().contains("barrier"), "{e}");
}

#[test]
fn an_lp_the_simplex_cannot_decide_is_decided_by_the_other_algorithm() {
    // An APRNN repair LP (crates/repair/tests/aprnn.rs, the impossible keep set: a repair point
    // and a kept point 1e-9 apart with other labels) on which HiGHS's simplex ends "Unknown";
    // the interior point proves it infeasible. Every method must come back with the verdict.
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stalling-simplex.mps");
    for method in [Method::Choose, Method::Simplex, Method::Ipm] {
        for crossover in [true, false] {
            let opts = SolveOptions {
                method,
                crossover,
                ..Default::default()
            };
            let s = netrepair_lp::solve_file(&path, &opts).unwrap();
            assert_eq!(s.outcome, Outcome::Infeasible, "{method:?} {crossover}");
        }
    }
}

#[test]
fn reduced_costs_price_fixed_columns_as_column_generation_needs() {
    // min x + 3y  s.t.  x + y + 2z >= 2,  x - z <= 5,  x, y >= 0,  z fixed at 0.
    // Optimum x = 2 (objective 2), the first row's dual 1, the second's 0: z's reduced cost
    // is 0 - (2 * 1 + (-1) * 0) = -2 (raising z would pay 2 per unit), y's is 3 - 1 = 2.
    for method in [Method::Simplex, Method::Ipm] {
        let mut m = LpModel::new();
        let x = m.add_var(0.0, f64::INFINITY, 1.0);
        let y = m.add_var(0.0, f64::INFINITY, 3.0);
        let z = m.add_var(0.0, 0.0, 0.0);
        m.add_ge(&[(x, 1.0), (y, 1.0), (z, 2.0)], 2.0);
        m.add_le(&[(x, 1.0), (z, -1.0)], 5.0);
        let s = m
            .solve(
                Sense::Minimise,
                &SolveOptions {
                    method,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(
            matches!(s.outcome, Outcome::Optimal { objective, .. } if (objective - 2.0).abs() < 1e-7)
        );
        let rc = &s.reduced_costs;
        assert_eq!(rc.len(), 3);
        assert!((rc[x.index()]).abs() < 1e-7, "{method:?}: {rc:?}");
        assert!((rc[y.index()] - 2.0).abs() < 1e-7, "{method:?}: {rc:?}");
        assert!((rc[z.index()] + 2.0).abs() < 1e-7, "{method:?}: {rc:?}");
    }
    // No optimum, no reduced costs.
    let mut m = LpModel::new();
    let x = m.add_var(0.0, 1.0, 1.0);
    m.add_ge(&[(x, 1.0)], 2.0);
    let s = m.solve(Sense::Minimise, &SolveOptions::default()).unwrap();
    assert!(matches!(s.outcome, Outcome::Infeasible) && s.reduced_costs.is_empty());
}

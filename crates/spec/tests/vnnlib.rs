//! VNN-LIB parsing on hand-written properties, and on every benchmark file when ../shared exists.

use netrepair_spec::{parse_vnnlib, read_vnnlib, SpecError};

fn header(n: usize, m: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        s += &format!("(declare-const X_{i} Real)\n");
    }
    for j in 0..m {
        s += &format!("(declare-const Y_{j} Real)\n");
    }
    s
}

#[test]
fn acas_property_6_style_two_boxes_two_unsafe_polytopes_each() {
    let text = header(2, 3)
        + "; comment ( with parens )\n\
           (assert (or\n  (and (<= X_0 0.7) (>= X_0 -0.1) (<= X_1 0.5) (>= X_1 0.1))\n  (and (<= X_0 0.7) (>= X_0 -0.1) (<= X_1 -0.1) (>= X_1 -0.5))\n))\n\
           (assert (or (and (<= Y_1 Y_0)) (and (<= Y_2 Y_0))))\n";
    let p = parse_vnnlib(&text).unwrap();
    assert_eq!((p.num_inputs, p.num_outputs, p.cases.len()), (2, 3, 2));
    assert_eq!(p.cases[1].input.lower, vec![-0.1, -0.5]);
    assert_eq!(p.cases[1].input.upper, vec![0.7, -0.1]);
    // (<= Y_1 Y_0) is y1 - y0 <= 0.
    let c = &p.cases[0].unsafe_region[0].constraints[0];
    assert_eq!((c.coeffs.clone(), c.rhs), (vec![(0, -1.0), (1, 1.0)], 0.0));
    assert_eq!(p.cases[0].unsafe_region.len(), 2);
    assert!(p.is_counterexample(&[0.0, 0.2], &[1.0, 2.0, 0.0], 0.0));
    // y0 below both y1 and y2: neither polytope holds.
    assert!(!p.is_counterexample(&[0.0, 0.2], &[-1.0, 2.0, 0.0], 0.0));
    assert!(
        !p.is_counterexample(&[0.0, 0.0], &[1.0, 2.0, 0.0], 0.0),
        "x outside both boxes"
    );
}

#[test]
fn linear_arithmetic_and_constant_bounds() {
    // (>= (+ Y_0 (* -2 Y_1) 1) 3) is -y0 + 2 y1 <= -2; (<= (- X_0) 1) is x0 >= -1.
    let text = header(1, 2)
        + "(assert (<= (- X_0) 1))\n(assert (<= X_0 2))\n(assert (>= (+ Y_0 (* -2 Y_1) 1) 3))";
    let p = parse_vnnlib(&text).unwrap();
    assert_eq!(
        (p.cases[0].input.lower[0], p.cases[0].input.upper[0]),
        (-1.0, 2.0)
    );
    let c = &p.cases[0].unsafe_region[0].constraints[0];
    assert_eq!((c.coeffs.clone(), c.rhs), (vec![(0, -1.0), (1, 2.0)], -2.0));
    // Equality becomes two inequalities.
    let p = parse_vnnlib(
        &(header(1, 1) + "(assert (>= X_0 0))(assert (<= X_0 1))(assert (= Y_0 0.5))"),
    )
    .unwrap();
    assert_eq!(p.cases[0].unsafe_region[0].constraints.len(), 2);
}

fn err(text: &str) -> SpecError {
    parse_vnnlib(text).unwrap_err()
}

#[test]
fn malformed_files_report_lines() {
    let h = header(1, 1);
    let cases = [
        (h.clone() + "(assert (<= X_0 1)\n", "never closed"),
        (h.clone() + "(assert (<= X_0 1)))", "unmatched"),
        (
            h.clone() + "(assert (<= X_0 1))\n(assert (>= X_0 0))\n(assert (<= Y_0 foo))",
            "line 5",
        ),
        (
            h.clone() + "(assert (<= X_0 1))\n(assert (>= X_0 0))\n(assert (<= Y_1 0))",
            "Y_1",
        ),
        (h.clone() + "(assert (=> X_0 1))", "unknown operator"),
        (h.clone() + "(frobnicate)", "unknown command"),
        (
            "(declare-const X_1 Real)(declare-const Y_0 Real)(assert (<= Y_0 0))".to_string(),
            "X_0 is not declared",
        ),
        (h.clone(), "no assert"),
        (
            h.clone() + "(assert (<= X_0 1))\n(assert (<= Y_0 0))",
            "no lower bound",
        ),
        (
            h.clone() + "(assert (<= X_0 0))\n(assert (>= X_0 1))\n(assert (<= Y_0 0))",
            "empty",
        ),
        (
            h.clone() + "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (<= (+ X_0 Y_0) 0))",
            "mixes",
        ),
        (
            h.clone() + "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (<= (* Y_0 Y_0) 0))",
            "non-linear",
        ),
    ];
    for (text, word) in cases {
        let e = err(&text).to_string();
        assert!(e.contains(word), "expected '{word}' in '{e}'");
    }
}

#[test]
fn fits_checks_the_network_sizes() {
    let p = parse_vnnlib(&(header(2, 1) + "(assert (>= X_0 0))(assert (<= X_0 1))(assert (>= X_1 0))(assert (<= X_1 1))(assert (<= Y_0 0))")).unwrap();
    assert!(p.check_fits(2, 1).is_ok());
    assert!(p
        .check_fits(784, 10)
        .unwrap_err()
        .to_string()
        .contains("784"));
}

#[test]
fn every_benchmark_file_parses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/benchmarks");
    if !root.is_dir() {
        eprintln!("skipping: no ../shared/benchmarks");
        return;
    }
    let mut stack = vec![root];
    let mut count = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "vnnlib") {
                let prop = read_vnnlib(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                assert!(!prop.cases.is_empty());
                count += 1;
            }
        }
    }
    assert!(count > 50, "{count} files");
}

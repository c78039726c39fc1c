//! The `netrepair` binary end to end: verify. On files the tests make (no ../shared
//! needed).

mod common;

use common::*;

#[test]
fn verify_reports_verdicts_with_exit_codes() {
    let (dir, _) = setup();
    let d = dir.path();
    std::fs::write(d.join("violated.vnnlib"), vnnlib_above(0.2, -2.0, 0.0)).unwrap();
    std::fs::write(d.join("holds.vnnlib"), vnnlib_above(0.6, -2.0, 0.0)).unwrap();
    let o = run(
        &[
            "verify",
            "--net",
            "net.onnx",
            "--spec",
            "violated.vnnlib",
            "--json",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["result"], "violated");
    let (x, y) = (
        v["counterexample"]["x"][0].as_f64().unwrap(),
        v["counterexample"]["y"][0].as_f64().unwrap(),
    );
    assert!((-2.0..=0.0).contains(&x) && y >= 0.2 && (y - (-0.5 * x - 0.5)).abs() < 1e-12);
    let o = run(
        &[
            "verify",
            "--net",
            "net.onnx",
            "--spec",
            "holds.vnnlib",
            "--json",
            "--timeout",
            "10",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["result"], "holds");
    assert!(v["time_s"].as_f64().unwrap() >= 0.0);
    // An instance list.
    std::fs::write(
        d.join("list.csv"),
        "net.onnx,holds.vnnlib,10\nnet.onnx,violated.vnnlib,10\n",
    )
    .unwrap();
    let v = json(&run(&["verify", "--instances", "list.csv", "--json"], d));
    assert_eq!(
        (v["instances"].as_u64(), v["decided"].as_u64()),
        (Some(2), Some(2))
    );
    // The same in VNN-COMP's result format.
    let o = run(
        &["verify", "--instances", "list.csv", "--results-dir", "res"],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |f: &str| std::fs::read_to_string(d.join("res").join(f)).unwrap();
    assert_eq!(read("net_holds.txt"), "unsat\n");
    let sat = read("net_violated.txt");
    let mut lines = sat.lines();
    assert_eq!(lines.next(), Some("sat"));
    let x: f64 = lines
        .next()
        .unwrap()
        .trim_start_matches("((X_0 ")
        .trim_end_matches(')')
        .parse()
        .unwrap();
    let y: f64 = lines
        .next()
        .unwrap()
        .trim_start_matches(" (Y_0 ")
        .trim_end_matches("))")
        .parse()
        .unwrap();
    assert!((-2.0..=0.0).contains(&x) && y >= 0.2 && (y - (-0.5 * x - 0.5)).abs() < 1e-12);
    let csv = read("results.csv");
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0], ["network", "property", "result", "time_s"]);
    assert_eq!(rows[1][..3], ["net.onnx", "holds.vnnlib", "unsat"]);
    assert_eq!(rows[2][..3], ["net.onnx", "violated.vnnlib", "sat"]);
    // Not into the list's own folder.
    let o = run(
        &["verify", "--instances", "list.csv", "--results-dir", "."],
        d,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("own folder"));
}

#[test]
fn verify_rejects_bad_specifications() {
    let (dir, _) = setup();
    let d = dir.path();
    std::fs::write(
        d.join("broken.vnnlib"),
        "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 0)\n",
    )
    .unwrap();
    fails_with(
        &run(
            &["verify", "--net", "net.onnx", "--spec", "broken.vnnlib"],
            d,
        ),
        "line 3",
    );
    let two = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 0))(assert (<= X_0 1))(assert (>= X_1 0))(assert (<= X_1 1))(assert (>= Y_0 0))";
    std::fs::write(d.join("two.vnnlib"), two).unwrap();
    fails_with(
        &run(&["verify", "--net", "net.onnx", "--spec", "two.vnnlib"], d),
        "does not fit",
    );
    std::fs::write(d.join("empty.vnnlib"), vnnlib_above(0.0, 1.0, -1.0)).unwrap();
    fails_with(
        &run(
            &["verify", "--net", "net.onnx", "--spec", "empty.vnnlib"],
            d,
        ),
        "empty",
    );
    fails_with(
        &run(&["verify", "--net", "net.onnx", "--spec", "nope.vnnlib"], d),
        "nope.vnnlib",
    );
}

//! The `netrepair` binary end to end: repair --method reglo. On files the tests make (no ../shared
//! needed).

mod common;

use common::*;

use netrepair_nn::save_onnx;

#[test]
fn reglo_makes_a_network_fair_and_names_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let net = d.join("net.onnx");
    save_onnx(
        &netrepair_nn::mlp(&[3, 12, 12, 2], netrepair_nn::Activation::Relu, 5).unwrap(),
        &net,
    )
    .unwrap();
    write_f32(&d.join("lo.npy"), &[3], &[-1.0, -1.0, -1.0]);
    write_f32(&d.join("hi.npy"), &[3], &[1.0, 1.0, 1.0]);
    // REGLO on the region between two NPY corners.
    let region = |lo: &str, hi: &str, extra: &[&str]| {
        let mut v = vec![
            "repair",
            "--net",
            "net.onnx",
            "--method",
            "reglo",
            "--input-lower",
            lo,
            "--input-upper",
            hi,
        ];
        v.extend_from_slice(extra);
        run(&v, d)
    };
    let with = |extra: &[&str]| region("lo.npy", "hi.npy", extra);
    // A covering repair proves fairness over the whole region; the report has the seed's
    // metric names and the file holds the re-checked network.
    let o = with(&[
        "--fairness",
        "--sensitive",
        "1",
        "--eps",
        "0.1",
        "--cover",
        "32",
        "--samples",
        "200",
        "--eval-points",
        "200",
        "--out",
        "fair.onnx",
        "--report",
        "r.json",
        "--json",
    ]);
    let v = json(&o);
    assert_eq!(v["proved"], true, "{v}");
    assert!(v["VB"].as_f64().unwrap() <= 0.1, "{v}");
    assert!(v["PGD_B"].as_f64().unwrap() <= 0.1, "{v}");
    assert_eq!(v["PGD_R"].as_f64().unwrap(), 0.0);
    assert!(v["global"][0]["VB_before"].as_f64().unwrap() > 0.1, "{v}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(r["VB"], v["VB"]);
    let fair = netrepair_nn::load_onnx(d.join("fair.onnx")).unwrap();
    assert_eq!(
        fair.param_count(),
        netrepair_nn::load_onnx(&net).unwrap().param_count()
    );
    // Bad input: one clear line each, nothing written.
    fails_with(&with(&["--fairness", "--sensitive", "1"]), "--eps");
    fails_with(
        &with(&["--fairness", "--sensitive", "1", "--eps", "0"]),
        "eps",
    );
    fails_with(
        &with(&["--fairness", "--sensitive", "7", "--eps", "0.1"]),
        "not an input",
    );
    fails_with(
        &with(&["--fairness", "--sensitive", "age", "--eps", "0.1"]),
        "--dataset",
    );
    fails_with(&with(&["--eps", "0.1"]), "--fairness");
    fails_with(
        &with(&[
            "--fairness",
            "--sensitive",
            "1",
            "--eps",
            "0.1",
            "--reglo-objective",
            "fast",
        ]),
        "objective",
    );
    fails_with(&with(&["--global-robustness", "--eps", "0.1"]), "--delta");
    fails_with(
        &with(&["--global-robustness", "--delta", "-1", "--eps", "0.1"]),
        "delta",
    );
    write_f32(&d.join("bad.npy"), &[3], &[2.0, 2.0, 2.0]);
    let o = region(
        "bad.npy",
        "hi.npy",
        &[
            "--fairness",
            "--sensitive",
            "0",
            "--eps",
            "0.1",
            "--out",
            "x.onnx",
        ],
    );
    fails_with(&o, "empty");
    assert!(!d.join("x.onnx").exists());
    // A region that pins the sensitive feature leaves nothing to be fair about.
    write_f32(&d.join("pin.npy"), &[3], &[-1.0, 0.5, -1.0]);
    write_f32(&d.join("pin_hi.npy"), &[3], &[1.0, 0.5, 1.0]);
    let o = region(
        "pin.npy",
        "pin_hi.npy",
        &["--fairness", "--sensitive", "1", "--eps", "0.1"],
    );
    fails_with(&o, "nothing can change");
}

//! The `netrepair` binary end to end: repair with the LP methods, --layer auto, analyze and certificates. On files the tests make (no ../shared
//! needed).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

use candle_core::{Device, Tensor};
use netrepair_data::npy;
use netrepair_nn::save_onnx;

#[test]
fn repair_fixes_labelled_points_and_writes_a_checked_network() {
    let (dir, xs, labels) = repair_setup();
    let d = dir.path();
    let o = run(
        &[
            "repair", "--net", "net.onnx", "--inputs", "x.npy", "--labels", "y.npy", "--layer",
            "auto", "--out", "r.onnx", "--report", "r.json", "--json",
        ],
        d,
    );
    let v = json(&o);
    assert_eq!(v["proved"], true, "{v}");
    assert_eq!(v["method"], "aprnn");
    // Stderr is not a terminal here: what the repair did is logged a line each, timed.
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        log.lines()
            .any(|l| l.starts_with('[') && l.contains(" s] solving repair LP: ")),
        "{log}"
    );
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "repaired" && i["held_before"] == false));
    assert!(v["param_delta"]["l1"].as_f64().unwrap() > 0.0);
    assert!(v["param_delta"]["linf"].as_f64().unwrap() > 0.0);
    assert!(v["time_s"].as_f64().unwrap() >= 0.0);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(report["layer"], v["layer"]);
    // The written network classifies every point as asked (f32, as a user would run it).
    let repaired = netrepair_nn::load_onnx(d.join("r.onnx")).unwrap();
    let x = Tensor::from_vec(xs, (4, 2), &Device::Cpu).unwrap();
    let pred: Vec<i64> = repaired
        .predict(&x)
        .unwrap()
        .into_iter()
        .map(i64::from)
        .collect();
    assert_eq!(pred, labels);
    // The human summary says the same.
    let o = run(
        &[
            "repair", "--net", "net.onnx", "--inputs", "x.npy", "--labels", "y.npy", "--out",
            "r2.onnx",
        ],
        d,
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("PROVED") && text.contains("4 repaired"),
        "{text}"
    );
    // Without a keep set the summary says nothing protects other inputs.
    assert!(text.contains("keep set: none"), "{text}");
    // A keep set (--keep): the inputs keep the classes the network gives them, with APRNN and
    // with PREPARED, and the report says how they fared.
    write_f32(
        &d.join("keep.npy"),
        &[3, 2],
        &[0.9, 0.9, -0.9, 0.9, 0.0, -0.9],
    );
    let base = [
        "repair", "--net", "net.onnx", "--inputs", "x.npy", "--labels", "y.npy", "--keep",
        "keep.npy", "--json",
    ];
    for method in ["aprnn", "prepared"] {
        let mut args = base.to_vec();
        args.extend(["--method", method]);
        let v = json(&run(&args, d));
        assert_eq!(v["proved"], true, "{method}: {v}");
        assert_eq!(v["keep"]["points"], 3, "{v}");
        assert_eq!(v["keep"]["correct_after"], 3, "{v}");
        assert_eq!(v["keep_source"]["source"], "file");
    }
    // Keeping a repair point with another label is a contradiction, named as such.
    write_i64(
        &d.join("y_other.npy"),
        &labels.iter().map(|l| (l + 1) % 3).collect::<Vec<_>>(),
    );
    let o = run(
        &[
            "repair",
            "--net",
            "net.onnx",
            "--inputs",
            "x.npy",
            "--labels",
            "y.npy",
            "--keep",
            "x.npy",
            "--keep-labels",
            "y_other.npy",
            "--out",
            "bad.onnx",
        ],
        d,
    );
    fails_with(&o, "both kept and repaired");
    // A keep set whose inputs do not fit the network.
    write_f32(&d.join("keep3.npy"), &[2, 3], &[0.0; 6]);
    fails_with(
        &run(
            &[
                "repair",
                "--net",
                "net.onnx",
                "--inputs",
                "x.npy",
                "--labels",
                "y.npy",
                "--keep",
                "keep3.npy",
                "--out",
                "bad.onnx",
            ],
            d,
        ),
        "keep3.npy",
    );
    assert!(!d.join("bad.onnx").exists());
}

#[test]
fn prepared_makes_a_violated_property_hold() {
    let (dir, _) = setup();
    let d = dir.path();
    // The fixture reaches y >= 0.2 on [-2, 0]; after the edit the verifier must prove it cannot.
    std::fs::write(d.join("p.vnnlib"), vnnlib_above(0.2, -2.0, 0.0)).unwrap();
    let o = run(&["verify", "--net", "net.onnx", "--spec", "p.vnnlib"], d);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&run(
        &[
            "repair", "--net", "net.onnx", "--method", "prepared", "--spec", "p.vnnlib", "--out",
            "r.onnx", "--json",
        ],
        d,
    ));
    assert_eq!(v["proved"], true, "{v}");
    assert_eq!(v["items"][0]["kind"], "property");
    let o = run(&["verify", "--net", "r.onnx", "--spec", "p.vnnlib"], d);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn an_impossible_repair_is_reported_not_written() {
    let (dir, _, _) = repair_setup();
    let d = dir.path();
    write_f32(&d.join("same.npy"), &[2, 2], &[0.1, 0.2, 0.1, 0.2]);
    write_i64(&d.join("contra.npy"), &[0, 1]);
    let o = run(
        &[
            "repair",
            "--net",
            "net.onnx",
            "--inputs",
            "same.npy",
            "--labels",
            "contra.npy",
            "--out",
            "r.onnx",
            "--report",
            "r.json",
        ],
        d,
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("no repair exists"), "{text}");
    assert!(!d.join("r.onnx").exists());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(report["status"], "infeasible");
    assert_eq!(report["proved"], false);
}

#[test]
fn bad_method_settings_are_refused_by_name_and_nothing_is_written() {
    let (dir, _, _) = repair_setup();
    let d = dir.path();
    let base = [
        "repair", "--net", "net.onnx", "--inputs", "x.npy", "--labels", "y.npy", "--out", "r.onnx",
    ];
    for (extra, word) in [
        (&["--lp-margin=-1"][..], "eps"),
        (&["--eps", "0.1"][..], "--lp-margin"),
        (&["--delta-bound", "0"][..], "delta_bound"),
        (&["--delta-bound=-inf"][..], "delta_bound"),
        (&["--method", "prepared", "--lp-margin", "nan"][..], "eps"),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        fails_with(&run(&args, d), word);
        assert!(!d.join("r.onnx").exists());
    }
    // Output paths are checked before the repair: a missing directory, a directory, an input.
    let out = |path: &str| {
        run(
            &[
                "repair", "--net", "net.onnx", "--inputs", "x.npy", "--labels", "y.npy", "--out",
                path,
            ],
            d,
        )
    };
    fails_with(&out("missing/r.onnx"), "does not exist");
    std::fs::create_dir(d.join("sub")).unwrap();
    fails_with(&out("sub"), "is a directory");
    fails_with(&out("x.npy"), "refusing to overwrite");
}

#[test]
fn repair_rejects_bad_input() {
    let (dir, _, _) = repair_setup();
    let d = dir.path();
    let base = ["repair", "--net", "net.onnx", "--inputs", "x.npy"];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        run(&a, d)
    };
    fails_with(&with(&["--labels", "missing.npy"]), "missing.npy");
    write_i64(&d.join("three.npy"), &[0, 1, 2]);
    fails_with(&with(&["--labels", "three.npy"]), "3 labels");
    write_i64(&d.join("big.npy"), &[0, 1, 7, 2]);
    fails_with(&with(&["--labels", "big.npy"]), "out of range");
    fails_with(
        &with(&["--labels", "y.npy", "--out", "net.onnx"]),
        "refusing",
    );
    fails_with(&with(&["--labels", "y.npy", "--layer", "9"]), "layer 9");
    fails_with(
        &run(&["repair", "--net", "net.onnx"], d),
        "nothing to repair",
    );
    let before = std::fs::read(d.join("net.onnx")).unwrap();
    fails_with(&with(&["--labels", "x.npy"]), "integer");
    assert_eq!(std::fs::read(d.join("net.onnx")).unwrap(), before);
}

#[test]
fn repair_takes_polytopes_from_json() {
    let (dir, _, _) = repair_setup();
    let d = dir.path();
    let net = netrepair_nn::load_onnx(d.join("net.onnx")).unwrap();
    let c = Tensor::from_vec(vec![0.1f32, 0.1], (1, 2), &Device::Cpu).unwrap();
    let label = (net.predict(&c).unwrap()[0] + 1) % 3;
    std::fs::write(
        d.join("p.json"),
        format!(
            r#"[{{"vertices": [[0.08, 0.08], [0.13, 0.09], [0.09, 0.13]], "label": {label}}}]"#
        ),
    )
    .unwrap();
    let v = json(&run(
        &[
            "repair",
            "--net",
            "net.onnx",
            "--polytopes",
            "p.json",
            "--layer",
            "1",
            "--out",
            "r.onnx",
            "--json",
        ],
        d,
    ));
    assert_eq!(v["proved"], true, "{v}");
    assert_eq!(v["items"][0]["kind"], "polytope");
    let repaired = netrepair_nn::load_onnx(d.join("r.onnx")).unwrap();
    let inside = Tensor::from_vec(
        vec![0.1f32, 0.1, 0.09, 0.1, 0.1, 0.09],
        (3, 2),
        &Device::Cpu,
    )
    .unwrap();
    assert!(repaired
        .predict(&inside)
        .unwrap()
        .iter()
        .all(|&p| p == label));
    std::fs::write(d.join("bad.json"), r#"[{"vertices": [[0.1, 0.1]]}]"#).unwrap();
    fails_with(
        &run(
            &["repair", "--net", "net.onnx", "--polytopes", "bad.json"],
            d,
        ),
        "label",
    );
}

#[test]
fn a_certificate_states_what_was_proved_for_other_verifiers() {
    let (dir, _, labels) = repair_setup();
    let d = dir.path();
    let points = [
        "repair", "--net", "net.onnx", "--inputs", "x.npy", "--labels", "y.npy",
    ];
    let cert = |name: &str| {
        let out = format!("{name}.onnx");
        let mut args = points.to_vec();
        args.extend_from_slice(&[
            "--layer",
            "1",
            "--out",
            &out,
            "--certificate",
            name,
            "--json",
        ]);
        run(&args, d)
    };
    let v = json(&cert("c"));
    assert_eq!(v["proved"], true, "{v}");
    assert_eq!(v["certificate"]["properties"], 4);
    // The VNN-COMP layout: the network as written, one property per point, the list.
    assert_eq!(
        std::fs::read(d.join("c.onnx")).unwrap(),
        std::fs::read(d.join("c/onnx/c.onnx")).unwrap()
    );
    let list = std::fs::read_to_string(d.join("c/instances.csv")).unwrap();
    assert_eq!(list.lines().count(), 4);
    assert!(
        list.starts_with("onnx/c.onnx,vnnlib/item0.vnnlib,60\n"),
        "{list}"
    );
    // Point 0's property: the one-point box [x, x] and "another output at least as large".
    let p = netrepair_spec::read_vnnlib(d.join("c/vnnlib/item0.vnnlib")).unwrap();
    assert_eq!(p.cases.len(), 1);
    assert_eq!(p.cases[0].input.lower, vec![0.1f32 as f64, 0.2f32 as f64]);
    assert_eq!(p.cases[0].input.lower, p.cases[0].input.upper);
    let c = labels[0] as usize;
    let mut y = [0.0; 3];
    y[c] = 1.0;
    assert!(!p.cases[0].is_unsafe_output(&y));
    y[(c + 1) % 3] = 1.0;
    assert!(p.cases[0].is_unsafe_output(&y));
    // Our verifier proves every instance on the repaired network, and refutes them on the
    // original one (whose predictions the labels were chosen to contradict).
    let v = json(&run(
        &["verify", "--instances", "c/instances.csv", "--json"],
        d,
    ));
    let results: Vec<&str> = v["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["holds"; 4], "{v}");
    std::fs::copy(d.join("net.onnx"), d.join("c/onnx/c.onnx")).unwrap();
    let v = json(&run(
        &["verify", "--instances", "c/instances.csv", "--json"],
        d,
    ));
    assert!(v["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["result"] == "violated"));
    // A certificate folder that exists and is not empty is refused before any work.
    let o = cert("c");
    fails_with(&o, "not empty");
    // So is one without --out.
    let mut args = points.to_vec();
    args.extend_from_slice(&["--certificate", "c2"]);
    fails_with(&run(&args, d), "--out");
    assert!(!d.join("c2").exists());
    // The independent checker (its own VNN-LIB reader, onnxruntime) agrees.
    if python_with_ort() {
        let v = json(&cert("c3"));
        assert_eq!(v["proved"], true, "{v}");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_certificate.py");
        let o = Command::new("python3")
            .arg(&script)
            .arg(d.join("c3/instances.csv"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(text.contains("4 of 4 instances pass"), "{text}");
        // ... and fails the same files on the original network.
        std::fs::copy(d.join("net.onnx"), d.join("c3/onnx/c3.onnx")).unwrap();
        let o = Command::new("python3")
            .arg(&script)
            .arg(d.join("c3/instances.csv"))
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}

#[test]
fn layer_auto_ranks_a_warm_started_repair_beside_the_layers_and_a_given_layer_can_ask_for_one() {
    let dir = tempfile::tempdir().unwrap();
    write_german(dir.path(), 200);
    let net = netrepair_nn::mlp(&[20, 8, 2], netrepair_nn::Activation::Relu, 4).unwrap();
    save_onnx(&net, dir.path().join("g.onnx")).unwrap();
    let base = [
        "repair",
        "--net",
        "g.onnx",
        "--misclassified",
        "2",
        "--dataset",
        "german",
        "--data-dir",
        "data",
        "--keep-size",
        "10",
        "--validation-size",
        "40",
        "--warm-lr",
        "0.003",
        "--json",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run_s = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&refs, dir.path())
    };
    // --layer auto: both affine layers and the warm-started last layer, ranked together.
    let v = json(&run_s(with(&["--layer", "auto"])));
    let trials = v["layers_tried"].as_array().unwrap();
    assert_eq!(trials.len(), 3, "{v}");
    let warm: Vec<_> = trials
        .iter()
        .filter(|t| t["layer"].as_str().unwrap().starts_with("all (fine-tuned)"))
        .collect();
    assert_eq!(warm.len(), 1, "{v}");
    // --warm-start 0 turns the candidate off.
    let v = json(&run_s(with(&["--layer", "auto", "--warm-start", "0"])));
    assert_eq!(v["layers_tried"].as_array().unwrap().len(), 2, "{v}");
    // A given layer with --warm-start N: fine-tuned on N training samples, then the LP if
    // the fine-tuned network does not pass the re-check.
    let v = json(&run_s(with(&["--warm-start", "30"])));
    // The fine-tuning fixes both points and loses no kept one, so the fine-tuned network
    // passes the re-check and no LP runs.
    assert_eq!(v["method"], "warm-start", "{v}");
    assert_eq!(v["lp"].as_array().unwrap().len(), 0, "{v}");
    assert!(
        v["notes"].to_string().contains("LP stage was skipped"),
        "{v}"
    );
    // As many as the network gets right, balanced over the classes, at most N (this random
    // network gets few of one class right).
    let drawn = v["warm_start"]["train_samples"].as_u64().unwrap();
    assert!((1..=30).contains(&drawn), "{v}");
    assert_eq!(v["status"], "proved", "{v}");
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["held_before"] == false));
    // Bad input: a gradient method, or no data set to draw from.
    fails_with(
        &run_s(with(&["--method", "finetune", "--warm-start", "30"])),
        "--method aprnn or prepared",
    );
    write_f32(&dir.path().join("x.npy"), &[1, 20], &[0.5; 20]);
    npy::write_i64(&dir.path().join("y.npy"), &[1], &[1]).unwrap();
    fails_with(
        &run(
            &[
                "repair",
                "--net",
                "g.onnx",
                "--inputs",
                "x.npy",
                "--labels",
                "y.npy",
                "--warm-start",
                "30",
            ],
            dir.path(),
        ),
        "--dataset or --keep-data",
    );
    // A layer with more than 100,000 parameters is left out of the ranking, and named.
    let wide = netrepair_nn::mlp(&[20, 5000, 2], netrepair_nn::Activation::Relu, 4).unwrap();
    save_onnx(&wide, dir.path().join("wide.onnx")).unwrap();
    let mut args = with(&["--layer", "auto", "--warm-start", "0"]);
    args[2] = "wide.onnx".into();
    let v = json(&run_s(args));
    let trials = v["layers_tried"].as_array().unwrap();
    assert_eq!(trials.len(), 1, "{v}");
    let skipped = v["layers_skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{v}");
    assert_eq!(skipped[0]["params"], 105_000, "{v}");
}

#[test]
fn analyze_scores_layers_and_auto_uses_the_heuristic() {
    let (dir, _, _) = repair_setup();
    let d = dir.path();
    let v = json(&run(
        &[
            "analyze", "--net", "net.onnx", "--inputs", "x.npy", "--labels", "y.npy", "--json",
        ],
        d,
    ));
    // The 2-8-8-3 MLP has three affine layers; penultimate is the recommendation by default.
    assert_eq!(v["layers"].as_array().unwrap().len(), 3);
    assert_eq!(v["recommended_by"], "penultimate");
    assert_eq!(v["recommended_index"], 1);
    assert_eq!(v["recommended_layer"], v["layers"][1]);
    assert_eq!(v["heuristics"].as_array().unwrap().len(), 8);
    assert_eq!(v["analysis"]["size"], 4);
    assert!(["easy", "moderate", "hard"].contains(&v["analysis"]["difficulty"].as_str().unwrap()));
    // Another heuristic on request; the text output names the recommendation.
    let o = run(
        &[
            "analyze",
            "--net",
            "net.onnx",
            "--inputs",
            "x.npy",
            "--labels",
            "y.npy",
            "--heuristic",
            "similarity",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("recommended start layer"));
    // repair --layer auto=H records the choice and its scores.
    let r = json(&run(
        &[
            "repair",
            "--net",
            "net.onnx",
            "--inputs",
            "x.npy",
            "--labels",
            "y.npy",
            "--layer",
            "auto=gradient-norm",
            "--json",
        ],
        d,
    ));
    assert_eq!(r["proved"], true, "{r}");
    assert_eq!(r["layer_selection"]["heuristic"], "gradient-norm");
    assert_eq!(r["layer_selection"]["scores"].as_array().unwrap().len(), 3);
    fails_with(
        &run(
            &[
                "repair",
                "--net",
                "net.onnx",
                "--inputs",
                "x.npy",
                "--labels",
                "y.npy",
                "--layer",
                "auto=magic",
            ],
            d,
        ),
        "unknown heuristic",
    );
    fails_with(
        &run(&["analyze", "--net", "net.onnx"], d),
        "nothing to analyse",
    );
}

#[test]
fn a_setting_the_method_does_not_read_is_refused_by_name() {
    let (dir, _, _) = repair_setup();
    let d = dir.path();
    let base = [
        "repair", "--net", "net.onnx", "--inputs", "x.npy", "--labels", "y.npy", "--out", "r.onnx",
    ];
    let with = |extra: &[&str]| run(&[&base[..], extra].concat(), d);
    // A gradient setting with APRNN (the default method), an LP setting with a gradient
    // method, a PREPARED setting with APRNN, an MM setting with PREPARED.
    for (extra, flag, readers) in [
        (
            &["--lr", "0.1"][..],
            "--lr",
            "irepair, irepair-plus, finetune, random-lock or pft",
        ),
        (
            &["--method", "irepair", "--lp-timeout", "5"][..],
            "--lp-timeout",
            "aprnn, prepared, mm or reglo",
        ),
        (&["--split-rounds", "2"][..], "--split-rounds", "prepared"),
        // A switch (no value) counts as given too.
        (
            &["--method", "prepared", "--split-deltas"][..],
            "--split-deltas",
            "aprnn",
        ),
        (
            &["--method", "prepared", "--mm-norm", "l1"][..],
            "--mm-norm",
            "mm",
        ),
    ] {
        let o = with(extra);
        fails_with(&o, &format!("{flag} is read by --method {readers} only"));
        assert!(!d.join("r.onnx").exists(), "{extra:?}");
    }
    // The same kind of settings with a method that reads them pass.
    let v = json(&with(&[
        "--json",
        "--box-splits",
        "1",
        "--lp-margin",
        "0.002",
    ]));
    assert_eq!(v["proved"], true, "{v}");
}

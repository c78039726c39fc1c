//! The `netrepair` binary end to end, on files the tests make (no ../shared needed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};
use netrepair_data::npy;
use netrepair_nn::save_onnx;
use prost::Message;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netrepair"))
}

fn run(args: &[&str], cwd: &Path) -> Output {
    bin().args(args).current_dir(cwd).output().unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// Asserts a clean failure: exit code 2 and one `error: ...` line mentioning `word`, after at
/// most the status lines a command logs when stderr is not a terminal (`[   1.2 s] ...`).
fn fails_with(o: &Output, word: &str) {
    let all = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {all}");
    let lines: Vec<&str> = all.trim().lines().collect();
    let (err, status) = lines.split_last().expect("an error line");
    assert!(
        status
            .iter()
            .all(|l| l.starts_with('[') && l.contains(" s] ")),
        "one error line after status lines expected: {all}"
    );
    assert!(
        err.starts_with("error: ") && err.contains(word),
        "expected '{word}' in: {all}"
    );
}

fn write_f32(path: &Path, shape: &[usize], data: &[f32]) {
    npy::write_f32(path, shape, data).unwrap();
}

fn read_f64(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let a = npy::read_floats(path).unwrap();
    (a.shape, a.data)
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net.onnx");
    save_onnx(&netrepair_nn::aprnn_example(), &net).unwrap();
    (dir, net)
}

#[test]
fn forward_computes_the_fixture() {
    let (dir, _) = setup();
    let d = dir.path();
    write_f32(&d.join("x.npy"), &[2, 1], &[-1.5, -0.5]);
    let o = json(&run(
        &[
            "forward", "--net", "net.onnx", "--input", "x.npy", "--output", "y.npy", "--json",
        ],
        d,
    ));
    assert_eq!(o["n"], 2);
    assert_eq!(read_f64(&d.join("y.npy")), (vec![2, 1], vec![0.25, -0.25]));
    // One sample without its batch dimension.
    write_f32(&d.join("one.npy"), &[1], &[-1.5]);
    assert!(run(
        &["forward", "--net", "net.onnx", "--input", "one.npy", "--output", "y1.npy"],
        d
    )
    .status
    .success());
    assert_eq!(read_f64(&d.join("y1.npy")), (vec![1, 1], vec![0.25]));
}

#[test]
fn inspect_lists_layers() {
    let (dir, _) = setup();
    let v = json(&run(&["inspect", "net.onnx", "--json"], dir.path()));
    assert_eq!(v["param_count"], 3 + 3 + 3 + 1);
    let layers = v["layers"].as_array().unwrap();
    let kinds: Vec<&str> = layers.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["Linear", "Relu", "Linear"]);
    assert_eq!(layers[0]["output_shape"], serde_json::json!([3]));
    assert_eq!(layers[2]["params"], 4);
    assert_eq!(layers[0]["name"], "fc1");
    // The flag form is accepted too.
    assert!(run(&["inspect", "--net", "net.onnx"], dir.path())
        .status
        .success());
}

#[test]
fn demo_trains_finds_errors_repairs_them_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let v = json(&run(&["demo", "--out-dir", "out", "--json"], dir.path()));
    let wrong = v["misclassified"].as_u64().unwrap();
    assert!(
        wrong > 0,
        "the under-trained MLP must have errors to repair"
    );
    assert!(v["round_trip_max_abs_diff"].as_f64().unwrap() < 1e-4);
    let (shape, _) = read_f64(&dir.path().join("out/repair_inputs.npy"));
    assert_eq!(shape, vec![wrong as usize, 2]);
    assert!(dir.path().join("out/moons_mlp.onnx").exists());
    // The repair: every training error fixed, proved, saved, plotted.
    assert_eq!(v["repair"]["proved"], true, "{}", v["repair"]);
    assert_eq!(v["repair"]["items"].as_array().unwrap().len() as u64, wrong);
    assert!(v["repaired_train_accuracy"].as_f64().unwrap() > 0.5);
    assert!(dir.path().join("out/moons_mlp_repaired.onnx").exists());
    // Its certificate: one VNN-LIB property per fixed error, each verified from the files.
    assert_eq!(v["certificate"]["properties"].as_u64(), Some(wrong), "{v}");
    assert_eq!(v["certificate"]["proved"].as_u64(), Some(wrong), "{v}");
    let list = std::fs::read_to_string(dir.path().join("out/certificate/instances.csv")).unwrap();
    assert_eq!(list.lines().count() as u64, wrong);
    let png = std::fs::read(dir.path().join("out/decision_boundary.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // REGLO: global robustness over the plane on probabilities, proved, decisions kept.
    let g = &v["reglo"];
    assert_eq!(g["proved"], true, "{g}");
    assert!(g["global"][0]["VB"].as_f64().unwrap() <= 0.05, "{g}");
    assert_eq!(g["global"][0]["measure"], "probabilities");
    assert_eq!(g["keep"]["correct_after"], g["keep"]["points"], "{g}");
}

#[test]
fn train_saves_a_network_that_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let v = json(&run(
        &[
            "train",
            "--model",
            "moons-mlp",
            "--epochs",
            "30",
            "--out",
            "m.onnx",
            "--json",
        ],
        dir.path(),
    ));
    assert!(v["test_accuracy"].as_f64().unwrap() > 0.8, "{v}");
    let net = netrepair_nn::load_onnx(dir.path().join("m.onnx")).unwrap();
    assert_eq!(net.input_shape(), &[2]);
    fails_with(
        &run(
            &["train", "--model", "resnet-152", "--out", "x.onnx"],
            dir.path(),
        ),
        "unknown model",
    );
    fails_with(
        &run(
            &[
                "train",
                "--model",
                "moons-mlp",
                "--epochs",
                "0",
                "--out",
                "x.onnx",
            ],
            dir.path(),
        ),
        "epochs",
    );
}

/// `n` rows of German-credit-like data under `dir/data/german` (every column in range).
fn write_german(dir: &std::path::Path, n: usize) {
    let german = dir.join("data/german");
    std::fs::create_dir_all(&german).unwrap();
    let rows: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "A1{} {} A3{} A4{} {} A61 A71 4 A93 A101 4 A121 {} A143 A152 2 A173 1 A192 A201 {}",
                i % 4 + 1,
                6 + i,
                i % 5,
                i % 9,
                1000 + 97 * i,
                20 + 2 * i,
                1 + i % 2
            )
        })
        .collect();
    std::fs::write(german.join("german.data"), rows.join("\n")).unwrap();
}

#[test]
fn irepair_plus_with_a_validation_slice_is_refereed_against_the_lp() {
    let dir = tempfile::tempdir().unwrap();
    write_german(dir.path(), 200);
    let net = netrepair_nn::mlp(&[20, 8, 2], netrepair_nn::Activation::Relu, 4).unwrap();
    save_onnx(&net, dir.path().join("g.onnx")).unwrap();
    fn args(validation: &str) -> Vec<&str> {
        vec![
            "repair",
            "--net",
            "g.onnx",
            "--method",
            "irepair-plus",
            "--misclassified",
            "2",
            "--dataset",
            "german",
            "--data-dir",
            "data",
            "--keep-size",
            "20",
            "--validation-size",
            validation,
            "--lr",
            "0.01",
            "--json",
        ]
    }
    let v = json(&run(&args("50"), dir.path()));
    let notes = v["notes"].to_string();
    assert!(notes.contains("refereed 5 repairs"), "{v}");
    assert!(notes.contains("on 50 held-out inputs"), "{v}");
    assert_eq!(v["method"], "irepair-plus", "{v}");
    // Without a slice: the race alone.
    let v = json(&run(&args("0"), dir.path()));
    let notes = v["notes"].to_string();
    assert!(!notes.contains("refereed"), "{v}");
    assert!(notes.contains("raced 3 settings"), "{v}");
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
    let trials = v["layer_ranking"]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3, "{v}");
    let warm: Vec<_> = trials
        .iter()
        .filter(|t| t["layer"].as_str().unwrap().starts_with("all (fine-tuned)"))
        .collect();
    assert_eq!(warm.len(), 1, "{v}");
    // --warm-start 0 turns the candidate off.
    let v = json(&run_s(with(&["--layer", "auto", "--warm-start", "0"])));
    assert_eq!(
        v["layer_ranking"]["trials"].as_array().unwrap().len(),
        2,
        "{v}"
    );
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
    let trials = v["layer_ranking"]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 1, "{v}");
    let skipped = v["layers_skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{v}");
    assert_eq!(skipped[0]["params"], 105_000, "{v}");
}

#[test]
fn eval_on_a_small_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_german(dir.path(), 20);
    let net = netrepair_nn::mlp(&[20, 8, 2], netrepair_nn::Activation::Relu, 4).unwrap();
    save_onnx(&net, dir.path().join("g.onnx")).unwrap();
    let v = json(&run(
        &[
            "eval",
            "--net",
            "g.onnx",
            "--dataset",
            "german",
            "--data-dir",
            "data",
            "--split",
            "all",
            "--json",
        ],
        dir.path(),
    ));
    assert_eq!(v["n"], 20);
    // Same figure computed here through the libraries.
    let data = netrepair_data::load(
        netrepair_data::DatasetName::German,
        &dir.path().join("data"),
        "all",
    )
    .unwrap();
    let x = Tensor::from_slice(&data.inputs, (20, 20), &Device::Cpu).unwrap();
    let pred = net.predict(&x).unwrap();
    let correct = pred
        .iter()
        .zip(&data.labels)
        .filter(|(p, l)| p == l)
        .count();
    assert_eq!(v["correct"], correct);
    assert!((v["accuracy"].as_f64().unwrap() - correct as f64 / 20.0).abs() < 1e-12);
    let confusion: u64 = v["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(confusion, 20);
    // The same split's errors as a repair set, in file order and shuffled.
    let wrong = 20 - correct;
    assert!(wrong >= 2, "the random network must err on German credit");
    for extra in [&[][..], &["--shuffle", "7"][..]] {
        let mut args = vec![
            "repair",
            "--net",
            "g.onnx",
            "--misclassified",
            "2",
            "--dataset",
            "german",
            "--data-dir",
            "data",
            "--split",
            "all",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = run(&args, dir.path());
        assert!(
            o.status.code().unwrap() <= 1,
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["items"].as_array().unwrap().len(), 2);
        assert!(r["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["held_before"] == false));
    }
}

#[test]
fn bad_inputs_fail_cleanly() {
    let (dir, net) = setup();
    let d = dir.path();
    write_f32(&d.join("x.npy"), &[2, 1], &[-1.5, -0.5]);
    let good = std::fs::read(&net).unwrap();

    std::fs::write(d.join("half.onnx"), &good[..good.len() / 2]).unwrap();
    fails_with(&run(&["inspect", "half.onnx"], d), "half.onnx");
    std::fs::write(d.join("text.onnx"), "this is not a network\n").unwrap();
    fails_with(&run(&["inspect", "text.onnx"], d), "not a valid ONNX model");
    fails_with(&run(&["inspect", "missing.onnx"], d), "missing.onnx");

    // Unsupported operator.
    let mut model = netrepair_nn::onnx::to_model(&netrepair_nn::aprnn_example()).unwrap();
    model.graph.as_mut().unwrap().node[1].op_type = "Softsign".into();
    std::fs::write(d.join("op.onnx"), model.encode_to_vec()).unwrap();
    fails_with(&run(&["inspect", "op.onnx"], d), "Softsign (node 'relu')");

    // NaN weights.
    let mut model = netrepair_nn::onnx::to_model(&netrepair_nn::aprnn_example()).unwrap();
    model.graph.as_mut().unwrap().initializer[0].raw_data[0..4]
        .copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(d.join("nan.onnx"), model.encode_to_vec()).unwrap();
    fails_with(
        &run(
            &[
                "forward", "--net", "nan.onnx", "--input", "x.npy", "--output", "y.npy",
            ],
            d,
        ),
        "non-finite",
    );

    // Wrong input shape.
    write_f32(&d.join("wide.npy"), &[2, 3], &[0.0; 6]);
    fails_with(
        &run(
            &[
                "forward", "--net", "net.onnx", "--input", "wide.npy", "--output", "y.npy",
            ],
            d,
        ),
        "does not match",
    );
    assert!(!d.join("y.npy").exists(), "no output file on failure");

    // Never overwrite an input.
    fails_with(
        &run(
            &[
                "forward", "--net", "net.onnx", "--input", "x.npy", "--output", "x.npy",
            ],
            d,
        ),
        "refusing to overwrite",
    );
    assert_eq!(read_f64_or_f32_len(&d.join("x.npy")), 2);

    // Missing data directory.
    fails_with(
        &run(
            &[
                "eval",
                "--net",
                "net.onnx",
                "--dataset",
                "mnist",
                "--data-dir",
                "nowhere",
            ],
            d,
        ),
        "nowhere",
    );
    fails_with(
        &run(
            &[
                "eval",
                "--net",
                "net.onnx",
                "--dataset",
                "svhn",
                "--data-dir",
                ".",
            ],
            d,
        ),
        "unknown data set",
    );
}

fn read_f64_or_f32_len(path: &Path) -> usize {
    read_f64(path).1.len()
}

/// The fixture is y = -0.5 x - 0.5 on [-2, 0]: "y >= v" is violated for v <= 0.5.
fn vnnlib_above(v: f64, lo: f64, hi: f64) -> String {
    format!("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 {lo}))\n(assert (<= X_0 {hi}))\n(assert (>= Y_0 {v}))\n")
}

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

fn write_i64(path: &Path, data: &[i64]) {
    npy::write_i64(path, &[data.len()], data).unwrap();
}

/// A 2-8-8-3 MLP and four points labelled with a class it does not predict.
fn repair_setup() -> (tempfile::TempDir, Vec<f32>, Vec<i64>) {
    let dir = tempfile::tempdir().unwrap();
    let net = netrepair_nn::mlp(&[2, 8, 8, 3], netrepair_nn::Activation::Relu, 5).unwrap();
    save_onnx(&net, dir.path().join("net.onnx")).unwrap();
    let xs: Vec<f32> = vec![0.1, 0.2, -0.4, 0.3, 0.5, -0.5, -0.2, -0.7];
    let x = Tensor::from_vec(xs.clone(), (4, 2), &Device::Cpu).unwrap();
    let labels: Vec<i64> = net
        .predict(&x)
        .unwrap()
        .into_iter()
        .map(|p| i64::from((p + 1) % 3))
        .collect();
    write_f32(&dir.path().join("x.npy"), &[4, 2], &xs);
    write_i64(&dir.path().join("y.npy"), &labels);
    (dir, xs, labels)
}

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
        (&["--eps=-1"][..], "eps"),
        (&["--delta-bound", "0"][..], "delta_bound"),
        (&["--delta-bound=-inf"][..], "delta_bound"),
        (&["--method", "prepared", "--eps", "nan"][..], "eps"),
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
fn gradient_methods_repair_points_with_a_correct_set() {
    let (dir, xs, labels) = repair_setup();
    let d = dir.path();
    // A correct set: points labelled with the class the network predicts.
    let net = netrepair_nn::load_onnx(d.join("net.onnx")).unwrap();
    let cx: Vec<f32> = vec![0.9, 0.9, -0.9, 0.9, 0.0, -0.9, 0.6, -0.1];
    let pred = net
        .predict(&Tensor::from_vec(cx.clone(), (4, 2), &Device::Cpu).unwrap())
        .unwrap();
    write_f32(&d.join("cx.npy"), &[4, 2], &cx);
    write_i64(
        &d.join("cy.npy"),
        &pred.iter().map(|&p| i64::from(p)).collect::<Vec<_>>(),
    );
    for method in ["irepair", "irepair-plus", "finetune", "random-lock"] {
        let out = format!("{method}.onnx");
        let v = json(&run(
            &[
                "repair",
                "--net",
                "net.onnx",
                "--method",
                method,
                "--inputs",
                "x.npy",
                "--labels",
                "y.npy",
                "--correct-inputs",
                "cx.npy",
                "--correct-labels",
                "cy.npy",
                "--gamma",
                "0.5",
                "--lr",
                "0.01",
                "--out",
                &out,
                "--json",
            ],
            d,
        ));
        assert_eq!(v["proved"], true, "{method}: {v}");
        assert_eq!(v["method"], method);
        assert_eq!(v["layer_index"], serde_json::Value::Null);
        assert_eq!(v["training"]["correct_total"], 4);
        assert!(v["training"]["iterations"].as_u64().unwrap() > 0);
        let repaired = netrepair_nn::load_onnx(d.join(&out)).unwrap();
        let x = Tensor::from_vec(xs.clone(), (4, 2), &Device::Cpu).unwrap();
        let got: Vec<i64> = repaired
            .predict(&x)
            .unwrap()
            .into_iter()
            .map(i64::from)
            .collect();
        assert_eq!(got, labels, "{method}");
    }
    // Bad options are named; nothing is written.
    let base = [
        "repair", "--net", "net.onnx", "--inputs", "x.npy", "--labels", "y.npy", "--out",
        "bad.onnx",
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        run(&a, d)
    };
    fails_with(&with(&["--method", "irepair"]), "correct set");
    fails_with(
        &with(&[
            "--method",
            "irepair",
            "--correct-inputs",
            "cx.npy",
            "--correct-labels",
            "cy.npy",
            "--gamma",
            "-1",
        ]),
        "gamma",
    );
    fails_with(
        &with(&[
            "--method",
            "irepair-plus",
            "--correct-inputs",
            "cx.npy",
            "--correct-labels",
            "cy.npy",
            "--correct-term",
            "logits:2",
        ]),
        "sets the correct-set term",
    );
    fails_with(
        &with(&[
            "--method",
            "finetune",
            "--correct-inputs",
            "cx.npy",
            "--correct-labels",
            "cy.npy",
            "--correct-term",
            "logits:-1",
        ]),
        "correct-set term",
    );
    // For APRNN the same set is its keep set.
    let v = json(&with(&[
        "--correct-inputs",
        "cx.npy",
        "--correct-labels",
        "cy.npy",
        "--json",
    ]));
    assert_eq!(v["keep"]["points"], 4, "{v}");
    assert_eq!(v["proved"], true, "{v}");
    std::fs::remove_file(d.join("bad.onnx")).unwrap();
    write_i64(&d.join("cbig.npy"), &[0, 1, 9, 2]);
    fails_with(
        &with(&[
            "--method",
            "finetune",
            "--correct-inputs",
            "cx.npy",
            "--correct-labels",
            "cbig.npy",
        ]),
        "out of range",
    );
    assert!(!d.join("bad.onnx").exists());
}

#[test]
fn pft_fine_tunes_until_a_property_is_proved() {
    let (dir, _) = setup();
    let d = dir.path();
    std::fs::write(d.join("p.vnnlib"), vnnlib_above(0.2, -2.0, 0.0)).unwrap();
    let v = json(&run(
        &[
            "repair", "--net", "net.onnx", "--method", "pft", "--spec", "p.vnnlib", "--lr", "0.01",
            "--out", "r.onnx", "--json",
        ],
        d,
    ));
    assert_eq!(v["proved"], true, "{v}");
    assert_eq!(v["method"], "pft");
    let o = run(&["verify", "--net", "r.onnx", "--spec", "p.vnnlib"], d);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
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

#[test]
fn bench_irepair_merges_saved_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let row = |method: &str, seed: usize, class: usize, drop: f64, success: bool| {
        serde_json::json!({
            "method": method, "size": 1, "used": 1, "class": class, "seed": seed,
            "repaired": usize::from(success), "success": success, "iterations": 10,
            "acc_before": 97.0, "acc_after": 97.0 - drop, "drop_pp": drop, "mean_frozen": 0.0,
            "time_s": 0.1, "delta_l1": 0.0, "keep_shift": 0.0, "probe_flips": 0.0
        })
    };
    let save = |name: &str, seed: usize| {
        let runs = vec![
            row("I-repair, gamma = 1", seed, 0, 0.5, true),
            row("I-repair, gamma = 1", seed, 1, 0.25, seed == 0),
            row("I-repair+, gamma = 1", seed, 0, 0.125, true),
            row("I-repair+, gamma = 1", seed, 1, 0.0, true),
        ];
        let v = serde_json::json!({"network": "net", "protocol": "paper", "runs": runs});
        std::fs::write(d.join(name), v.to_string()).unwrap();
    };
    save("a.json", 0);
    save("b.json", 1);
    let o = run(
        &[
            "bench",
            "irepair",
            "--from-json",
            "a.json,b.json",
            "--markdown-out",
            "t.md",
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = std::fs::read_to_string(d.join("t.md")).unwrap();
    // Seed 0: both classes (0.375); seed 1: class 1 failed for I-REPAIR, so the paper's
    // figure leaves it out for both methods (0.5 and 0.125).
    assert!(
        t.contains("| I-repair, gamma = 1 | 1 | 0.13 | 0.38 | 2 |"),
        "{t}"
    );
    assert!(
        t.contains("| I-repair+, gamma = 1 | 1 | - | 0.06 | 2 |"),
        "{t}"
    );
    fails_with(
        &run(&["bench", "irepair", "--from-json", "missing.json"], d),
        "missing.json",
    );
    std::fs::write(d.join("bad.json"), r#"{"network": "net", "runs": [1]}"#).unwrap();
    fails_with(
        &run(&["bench", "irepair", "--from-json", "bad.json"], d),
        "bad.json",
    );
}

#[test]
fn repair_dumps_its_lps_and_bench_lp_solves_them_alike() {
    let (dir, _) = setup();
    let d = dir.path();
    std::fs::write(d.join("p.vnnlib"), vnnlib_above(0.2, -2.0, 0.0)).unwrap();
    let v = json(&run(
        &[
            "repair",
            "--net",
            "net.onnx",
            "--method",
            "prepared",
            "--spec",
            "p.vnnlib",
            "--out",
            "r.onnx",
            "--json",
            "--dump-lp",
            "lps",
        ],
        d,
    ));
    assert_eq!(v["proved"], true, "{v}");
    let solved = v["lp"].as_array().unwrap();
    let mut files: Vec<String> = std::fs::read_dir(d.join("lps"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // One file per LP the report lists, numbered in solve order.
    assert_eq!(files.len(), solved.len(), "{files:?} vs {v}");
    assert!(
        files[0].starts_with("001-") && files[0].ends_with(".mps"),
        "{files:?}"
    );
    let o = run(
        &[
            "bench",
            "lp",
            "lps",
            "--strategies",
            "simplex,ipm-nox",
            "--json-out",
            "b.json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("b.json")).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2 * files.len());
    for (pair, lp) in rows.chunks(2).zip(solved) {
        // The file holds the LP the repair solved: same size, same verdict, and both
        // strategies agree on the optimum.
        for r in pair {
            assert_eq!(r["rows"], lp["rows"], "{r} vs {lp}");
            assert_eq!(r["cols"], lp["cols"], "{r} vs {lp}");
            assert_eq!(r["status"], lp["outcome"], "{r} vs {lp}");
        }
        if pair[1]["status"] == "optimal" {
            assert!(pair[1]["rel_diff"].as_f64().unwrap() < 1e-6, "{pair:?}");
        }
    }
    fails_with(&run(&["bench", "lp", "nowhere"], d), "nowhere");
    fails_with(
        &run(&["bench", "lp", "lps", "--strategies", "barrier"], d),
        "barrier",
    );
}

/// Whether python3 can run the certificate checker (onnxruntime and numpy); with
/// NETREPAIR_REQUIRE_ORT=1 (as CI sets it) it must.
fn python_with_ort() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok && std::env::var("NETREPAIR_REQUIRE_ORT").as_deref() == Ok("1") {
        panic!("NETREPAIR_REQUIRE_ORT=1 but python3 cannot import onnxruntime and numpy");
    }
    ok
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

//! The `netrepair` binary end to end: forward, inspect, demo, train, eval and bad input. On files the tests make (no ../shared
//! needed).

mod common;

use common::*;

use candle_core::{Device, Tensor};
use netrepair_nn::save_onnx;
use prost::Message;

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

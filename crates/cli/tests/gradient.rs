//! The `netrepair` binary end to end: the gradient repair methods (I-REPAIR, fine-tuning, PFT, I-REPAIR+). On files the tests make (no ../shared
//! needed).

mod common;

use common::*;

use candle_core::{Device, Tensor};
use netrepair_nn::save_onnx;

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
        let mut args = vec![
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
            "--lr",
            "0.01",
            "--out",
            &out,
            "--json",
        ];
        // The influence weight is I-REPAIR's (given to the others, it is refused).
        if method.starts_with("irepair") {
            args.extend(["--gamma", "0.5"]);
        }
        let v = json(&run(&args, d));
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
        "--correct-term is read by --method irepair, finetune or random-lock only",
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

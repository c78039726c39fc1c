//! The readers that face files from anywhere (ONNX importer, NPY, VNN-LIB, polytope JSON)
//! fuzzed by mutation: no mutated input may panic, a network the importer accepts must run a
//! forward pass, and a property the VNN-LIB parser accepts must read back the same after
//! `write_vnnlib` (the certificates' writer).
//! Each target gets `NETREPAIR_FUZZ_RUNS` mutated inputs (default 1500), or
//! `NETREPAIR_FUZZ_SECONDS` of fuzzing when that is set (`make fuzz`: 10 minutes each).
//! The targets run one after another in one test, because the fuzzer replaces the process's
//! panic hook while it runs.

use std::time::Duration;

use candle_core::{Device, Tensor};
use netrepair_data::npy;
use netrepair_experiments::fuzz::{fuzz, Budget, FuzzReport};
use netrepair_nn::onnx::load_onnx_bytes;
use netrepair_nn::{cnn, mlp, save_onnx, Activation, CnnSpec, ConvBlock};
use netrepair_repair::{parse_polytopes, RepairProblem};
use netrepair_spec::{parse_vnnlib, write_vnnlib};

fn budget() -> Budget {
    if let Some(s) = std::env::var("NETREPAIR_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        return Budget::Time(Duration::from_secs_f64(s));
    }
    let runs = std::env::var("NETREPAIR_FUZZ_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    Budget::Runs(runs)
}

fn onnx_seeds(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let nets = [
        mlp(&[3, 5, 2], Activation::Relu, 1).unwrap(),
        mlp(&[2, 4, 4, 3], Activation::Sigmoid, 2).unwrap(),
        cnn(
            &CnnSpec {
                input: [1, 6, 6],
                blocks: vec![ConvBlock {
                    channels: 2,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                    pool: Some(2),
                }],
                hidden: vec![4],
                classes: 3,
            },
            3,
        )
        .unwrap(),
    ];
    nets.iter()
        .enumerate()
        .map(|(i, n)| {
            let p = dir.join(format!("seed{i}.onnx"));
            save_onnx(n, &p).unwrap();
            std::fs::read(&p).unwrap()
        })
        .collect()
}

const VNNLIB_SEEDS: [&str; 3] = [
    "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n\
     (assert (<= X_0 0.5))\n(assert (>= X_0 -0.5))\n(assert (<= X_1 1.0))\n(assert (>= X_1 0.0))\n\
     (assert (<= Y_0 Y_1))\n",
    "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n(declare-const Y_2 Real)\n\
     ; a comment\n(assert (or (and (<= X_0 0.7) (>= X_0 -0.1)) (and (<= X_0 -0.2) (>= X_0 -0.9))))\n\
     (assert (or (and (<= Y_1 Y_0)) (and (<= Y_2 Y_0) (>= Y_2 1e-3))))\n",
    "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n\
     (assert (and (>= X_0 -1) (<= X_0 1)))\n(assert (>= (+ Y_0 (* 2 X_0)) 0.25))\n",
];

fn check(r: &FuzzReport) {
    eprintln!(
        "fuzz {}: {} inputs in {:.1} s, {} accepted, {} panics",
        r.target,
        r.runs,
        r.seconds,
        r.accepted,
        r.findings.len()
    );
    // Findings are kept for replay (and, once fixed, as regression seeds).
    let keep = std::env::temp_dir().join("netrepair-fuzz");
    for f in &r.findings {
        let path = keep.join(format!("{}-{}.bin", r.target, f.run));
        let saved = std::fs::create_dir_all(&keep).and_then(|_| std::fs::write(&path, &f.input));
        eprintln!(
            "  run {}: {} (input of {} bytes{})",
            f.run,
            f.message,
            f.input.len(),
            saved.map_or(String::new(), |_| format!(", saved as {}", path.display()))
        );
    }
    assert!(r.findings.is_empty(), "{} panicked", r.target);
    assert!(
        r.accepted > 0,
        "{} accepted nothing, not even its seeds",
        r.target
    );
}

#[test]
fn mutated_files_get_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let budget = budget();

    // ONNX: accepted networks must also run.
    let seeds = onnx_seeds(dir.path());
    check(&fuzz("onnx", &seeds, budget, 11, |bytes| {
        let Ok(net) = load_onnx_bytes(bytes, "fuzz") else {
            return false;
        };
        if net.input_len() <= 4096 {
            let mut dims = vec![1];
            dims.extend_from_slice(net.input_shape());
            let x = Tensor::zeros(dims, candle_core::DType::F32, &Device::Cpu).unwrap();
            let _ = net.forward(&x);
        }
        true
    }));

    // NPY: floats and labels, through a file as users give them.
    let (xf, yf) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    npy::write_f32(&xf, &[2, 3], &[0.5, -1.0, 2.0, 0.0, 1.5, 3.25]).unwrap();
    npy::write_i64(&yf, &[3], &[2, 0, 9]).unwrap();
    let f64s = dir.path().join("z.npy");
    npy::write_f64(&f64s, &[4], &[0.1, 0.2, 0.3, 0.4]).unwrap();
    let seeds: Vec<Vec<u8>> = [&xf, &yf, &f64s]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let probe = dir.path().join("probe.npy");
    check(&fuzz("npy", &seeds, budget, 12, |bytes| {
        std::fs::write(&probe, bytes).unwrap();
        let floats = npy::read_floats(&probe).is_ok();
        let labels = npy::read_labels(&probe).is_ok();
        floats || labels
    }));

    // VNN-LIB text (mutated bytes that are not UTF-8 are skipped, as the reader gets text).
    let seeds: Vec<Vec<u8>> = VNNLIB_SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
    check(&fuzz("vnnlib", &seeds, budget, 13, |bytes| {
        let Some(p) = std::str::from_utf8(bytes)
            .ok()
            .and_then(|t| parse_vnnlib(t).ok())
        else {
            return false;
        };
        // What the writer states (it refuses what VNN-LIB cannot) reads back as it was.
        if let Ok(text) = write_vnnlib(&p, "fuzz") {
            let back = parse_vnnlib(&text)
                .unwrap_or_else(|e| panic!("written VNN-LIB does not parse: {e}\n{text}"));
            assert_eq!(back, p, "written VNN-LIB reads back differently:\n{text}");
        }
        true
    }));

    // Polytope JSON (`repair --polytopes`), then the problem's own checks, for a network of
    // 2 inputs and 3 outputs.
    let seeds: Vec<Vec<u8>> = POLYTOPE_SEEDS
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    check(&fuzz("polytopes", &seeds, budget, 14, |bytes| {
        std::str::from_utf8(bytes).is_ok_and(|t| {
            parse_polytopes(t, 3)
                .is_ok_and(|items| RepairProblem::new(items).validate(2, 3).is_ok())
        })
    }));
}

const POLYTOPE_SEEDS: [&str; 2] = [
    r#"[{"vertices": [[0.0, 0.5], [1.0, 0.5], [0.5, 1.0]], "label": 2}]"#,
    r#"[{"vertices": [[-1, 0], [1, 0]], "lower": [0, -1e9, 0.25], "upper": [1, 2, 3]},
        {"vertices": [[0.1, 0.2]], "upper": [1, 1, 1]}]"#,
];

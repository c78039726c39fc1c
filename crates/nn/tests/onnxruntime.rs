//! Cross-checks against onnxruntime (pip), through `scripts/ort_run.py`.
//!
//! Opt-in: skipped unless python3 can import onnxruntime; set NETREPAIR_REQUIRE_ORT=1 (as CI
//! does) to make a missing onnxruntime a failure. When `../shared/benchmarks` exists, the
//! benchmark networks are round-tripped too.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Tensor};
use common::{random, t, to_vec, zoo, zoo_input};
use netrepair_nn::{load_onnx, save_onnx, Network};
use rand::SeedableRng;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ort_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok && std::env::var("NETREPAIR_REQUIRE_ORT").as_deref() == Ok("1") {
        panic!("NETREPAIR_REQUIRE_ORT=1 but python3 cannot import onnxruntime and numpy");
    }
    if !ok {
        eprintln!("skipping: python3 cannot import onnxruntime (pip install onnxruntime numpy)");
    }
    ok
}

fn write_npy(path: &Path, x: &Tensor) {
    let dims: Vec<u64> = x.dims().iter().map(|&d| d as u64).collect();
    let data = to_vec(&x.to_dtype(DType::F32).unwrap());
    let file = std::fs::File::create(path).unwrap();
    use npyz::WriterBuilder;
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&dims)
        .writer(file)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().map(|&v| v as f32)).unwrap();
    w.finish().unwrap();
}

/// onnxruntime's outputs for the network file on `x`.
fn ort(model: &Path, x: &Tensor, dir: &Path) -> Vec<f64> {
    let (xi, yo) = (dir.join("x.npy"), dir.join("y.npy"));
    write_npy(&xi, x);
    let out = Command::new("python3")
        .arg(repo().join("scripts/ort_run.py"))
        .args([model, &xi, &yo])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ort_run.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&yo).unwrap();
    npyz::NpyFile::new(&bytes[..])
        .unwrap()
        .into_vec::<f64>()
        .unwrap()
}

fn assert_close(ours: &[f64], reference: &[f64], what: &str) {
    assert_eq!(ours.len(), reference.len());
    for (a, b) in ours.iter().zip(reference) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{what}: ours {a} vs onnxruntime {b}"
        );
    }
}

/// Perturbs one weight of the first affine layer, exports, and compares onnxruntime on the
/// exported file with our forward pass of the perturbed network.
fn perturb_and_check(mut net: Network, x: &Tensor, dir: &Path, what: &str) {
    let first_affine = net.affine_nodes()[0];
    let id = net
        .param_ids()
        .into_iter()
        .find(|p| p.node == first_affine)
        .unwrap();
    let mut w = net.param(id).unwrap().to_vec().unwrap();
    w[0] += 0.125;
    let dims = net.param(id).unwrap().dims().to_vec();
    net.set_param(id, t(w, &dims)).unwrap();
    let path = dir.join("perturbed.onnx");
    save_onnx(&net, &path).unwrap();
    let ours = to_vec(&net.forward_f64(x).unwrap());
    assert_close(&ours, &ort(&path, x, dir), what);
    if let Some(origin) = net.origin() {
        let reloaded = load_onnx(&path).unwrap();
        assert_eq!(
            reloaded.origin().unwrap().node_names(),
            origin.node_names(),
            "{what}: node list changed"
        );
        assert_eq!(
            (reloaded.input_name(), reloaded.output_name()),
            (net.input_name(), net.output_name())
        );
    }
}

#[test]
fn generated_networks_match_onnxruntime() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Fresh export of every layer type, then import + perturb + re-emit.
    let net = zoo(7);
    let x = zoo_input(8, 6);
    let path = dir.path().join("zoo.onnx");
    save_onnx(&net, &path).unwrap();
    let imported = load_onnx(&path).unwrap();
    assert_close(
        &to_vec(&imported.forward_f64(&x).unwrap()),
        &ort(&path, &x, dir.path()),
        "zoo",
    );
    perturb_and_check(imported, &x, dir.path(), "zoo re-emitted");
}

#[test]
fn benchmark_networks_round_trip_through_onnxruntime() {
    let shared = repo().join("../shared/benchmarks");
    if !shared.is_dir() || !ort_available() {
        eprintln!("skipping: no ../shared/benchmarks");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    for rel in [
        "mnistfc/mnist-net_256x2.onnx",
        "eran/mnist_relu_9_200.onnx",
        "eran/ffnnSIGMOID__Point_6x200.onnx",
        "verivital/Convnet_maxpool.onnx",
        "cifar10_resnet/resnet_2b.onnx",
        "acasxu/ACASXU_run2a_2_9_batch_2000.onnx",
    ] {
        let net = load_onnx(shared.join(rel)).unwrap();
        let mut dims = vec![8];
        dims.extend_from_slice(net.input_shape());
        let x = (random(&mut rng, &dims, 0.5).affine(1.0, 0.5)).unwrap();
        perturb_and_check(net, &x, dir.path(), rel);
    }
}

/// The imported graph `bytes` against onnxruntime on `x`, then re-emitted with a changed weight.
fn imported_matches(bytes: Vec<u8>, x: &Tensor, dir: &Path, what: &str) {
    let path = dir.join(format!("{what}.onnx"));
    std::fs::write(&path, &bytes).unwrap();
    let net = load_onnx(&path).unwrap();
    assert_close(
        &to_vec(&net.forward_f64(x).unwrap()),
        &ort(&path, x, dir),
        what,
    );
    perturb_and_check(net, x, dir, what);
}

#[test]
fn shape_operators_and_rank_one_inputs_match_onnxruntime() {
    use common::graph::{
        attr_i, attr_ints, model, node, node_n, rank_one_mlp, tensor, tensor_i64, vinfo,
    };
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    // [N, 2, 3] -> transpose [3, 2] -> pad [4, 4] -> backwards slice [4, 2] -> gather rows
    // [3, 2] -> split / concat -> softmax -> sum over rows [2] -> (MatMul + Add) [3].
    let w: Vec<f32> = (0..6).map(|k| (k as f32 - 2.5) / 3.0).collect();
    let bytes = model(
        vec![
            node(
                "Transpose",
                "tr",
                &["x"],
                "a",
                vec![attr_ints("perm", &[0, 2, 1])],
            ),
            node("Pad", "pad", &["a", "pads", "pv"], "b", vec![]),
            node(
                "Slice",
                "sl",
                &["b", "sl_s", "sl_e", "sl_ax", "sl_st"],
                "c",
                vec![],
            ),
            node("Gather", "g", &["c", "idx"], "d", vec![attr_i("axis", 1)]),
            node_n(
                "Split",
                "sp",
                &["d", "sizes"],
                &["d1", "d2"],
                vec![attr_i("axis", 1)],
            ),
            node("Concat", "cat", &["d2", "d1"], "e", vec![attr_i("axis", 1)]),
            node("Softmax", "sm", &["e"], "f", vec![attr_i("axis", -1)]),
            node(
                "ReduceSum",
                "rs",
                &["f", "rax"],
                "g2",
                vec![attr_i("keepdims", 0)],
            ),
            node("MatMul", "mm", &["g2", "W"], "h", vec![]),
            node("Add", "add", &["h", "bias"], "y", vec![]),
        ],
        vec![
            tensor_i64("pads", &[6], &[0, 1, 1, 0, 0, 1]),
            tensor("pv", &[], &[0.25]),
            tensor_i64("sl_s", &[1], &[3]),
            tensor_i64("sl_e", &[1], &[i64::MIN]),
            tensor_i64("sl_ax", &[1], &[2]),
            tensor_i64("sl_st", &[1], &[-2]),
            tensor_i64("idx", &[3], &[3, 0, -2]),
            tensor_i64("sizes", &[2], &[1, 2]),
            tensor_i64("rax", &[1], &[1]),
            tensor("W", &[2, 3], &w),
            tensor("bias", &[3], &[0.1, -0.2, 0.3]),
        ],
        vinfo("x", &[-1, 2, 3]),
        vinfo("y", &[-1, 3]),
    );
    let x = random(&mut rng, &[5, 2, 3], 1.0);
    imported_matches(bytes, &x, dir.path(), "shape_ops");
    // A rank-1 input (one sample) with the weight as the left operand, as the VNN-COMP test
    // networks store it.
    let bytes = rank_one_mlp();
    let x = random(&mut rng, &[6, 1], 2.0);
    imported_matches(bytes, &x, dir.path(), "rank_one");
}

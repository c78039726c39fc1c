//! Helpers of the `netrepair` binary's end-to-end tests: running it, reading its JSON, and the
//! fixtures (networks, data, properties) the tests write.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};
use netrepair_data::npy;
use netrepair_nn::save_onnx;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netrepair"))
}

pub fn run(args: &[&str], cwd: &Path) -> Output {
    bin().args(args).current_dir(cwd).output().unwrap()
}

pub fn json(o: &Output) -> serde_json::Value {
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
pub fn fails_with(o: &Output, word: &str) {
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

pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) {
    npy::write_f32(path, shape, data).unwrap();
}

pub fn read_f64(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let a = npy::read_floats(path).unwrap();
    (a.shape, a.data)
}

pub fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net.onnx");
    save_onnx(&netrepair_nn::aprnn_example(), &net).unwrap();
    (dir, net)
}

/// `n` rows of German-credit-like data under `dir/data/german` (every column in range).
pub fn write_german(dir: &std::path::Path, n: usize) {
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

pub fn read_f64_or_f32_len(path: &Path) -> usize {
    read_f64(path).1.len()
}

/// The fixture is y = -0.5 x - 0.5 on [-2, 0]: "y >= v" is violated for v <= 0.5.
pub fn vnnlib_above(v: f64, lo: f64, hi: f64) -> String {
    format!("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 {lo}))\n(assert (<= X_0 {hi}))\n(assert (>= Y_0 {v}))\n")
}

pub fn write_i64(path: &Path, data: &[i64]) {
    npy::write_i64(path, &[data.len()], data).unwrap();
}

/// A 2-8-8-3 MLP and four points labelled with a class it does not predict.
pub fn repair_setup() -> (tempfile::TempDir, Vec<f32>, Vec<i64>) {
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

/// Whether python3 can run the certificate checker (onnxruntime and numpy); with
/// NETREPAIR_REQUIRE_ORT=1 (as CI sets it) it must.
pub fn python_with_ort() -> bool {
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

//! Forward-pass throughput of our IR against onnxruntime on the same machine.
//!
//! For each network: a batch of uniform random inputs, one warm-up pass, then the median of
//! `repeats` timed passes in f32 and in f64; onnxruntime (pip) times the same batch through
//! `scripts/ort_bench.py` in the same run, so the ratio compares like with like.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardRow {
    /// Network file name.
    pub network: String,
    /// Batch size.
    pub batch: usize,
    /// Median seconds per batch, our f32 forward.
    pub ours_f32_s: f64,
    /// Median seconds per batch, our f64 forward.
    pub ours_f64_s: f64,
    /// Median seconds per batch in onnxruntime (f32), when it could be run.
    pub onnxruntime_s: Option<f64>,
    /// `ours_f32_s / onnxruntime_s` (above 1: we are slower).
    pub ratio_f32: Option<f64>,
    /// `ours_f64_s / onnxruntime_s`.
    pub ratio_f64: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut t = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64());
    }
    Ok(median(t))
}

/// The onnxruntime helper script shipped in the repository.
pub fn ort_script(name: &str) -> PathBuf {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(name);
    if beside.exists() {
        beside
    } else {
        Path::new("scripts").join(name)
    }
}

fn ort_time(net: &Path, batch: usize, repeats: usize) -> Result<f64> {
    let out = Command::new("python3")
        .arg(ort_script("ort_bench.py"))
        .args([
            "--net",
            &net.display().to_string(),
            "--batch",
            &batch.to_string(),
            "--repeats",
            &repeats.to_string(),
        ])
        .output()
        .context("running python3 (needed for the onnxruntime reference)")?;
    if !out.status.success() {
        bail!(
            "onnxruntime benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading the onnxruntime timing")?;
    v["median_s"]
        .as_f64()
        .context("onnxruntime timing has no median_s")
}

/// Times one network. A failing onnxruntime run leaves its columns empty and is reported on
/// stderr (the table stays useful without the reference).
pub fn bench_network(path: &Path, batch: usize, repeats: usize) -> Result<ForwardRow> {
    let net = netrepair_nn::load_onnx(path)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let data: Vec<f32> = (0..batch * net.input_len())
        .map(|_| rng.random::<f32>())
        .collect();
    let mut dims = vec![batch];
    dims.extend_from_slice(net.input_shape());
    let x32 = Tensor::from_vec(data, dims, &Device::Cpu)?;
    let x64 = x32.to_dtype(DType::F64)?;
    let ours_f32_s = time(repeats, || net.forward(&x32).map(drop).map_err(Into::into))?;
    let ours_f64_s = time(repeats, || net.forward(&x64).map(drop).map_err(Into::into))?;
    let onnxruntime_s = match ort_time(path, batch, repeats) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("warning: {}: {e:#}", path.display());
            None
        }
    };
    Ok(ForwardRow {
        network: path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        batch,
        ours_f32_s,
        ours_f64_s,
        ratio_f32: onnxruntime_s.map(|o| ours_f32_s / o),
        ratio_f64: onnxruntime_s.map(|o| ours_f64_s / o),
        onnxruntime_s,
    })
}

/// The networks of the forward benchmark under a benchmarks directory.
pub fn default_networks(benchmarks: &Path) -> Vec<PathBuf> {
    [
        "mnistfc/mnist-net_256x2.onnx",
        "cifar10_resnet/resnet_2b.onnx",
        "acasxu/ACASXU_run2a_1_1_batch_2000.onnx",
    ]
    .iter()
    .map(|p| benchmarks.join(p))
    .collect()
}

//! `netrepair bench`: benchmarks that print a table and write JSON.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use netrepair_experiments::forward_bench::{bench_network, default_networks};

/// Benchmarks (tables on stdout, JSON on request).
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Forward throughput of benchmark networks against onnxruntime (pip) on this machine.
    Forward {
        /// Folder holding the VNN-COMP networks (default: ../shared/benchmarks).
        #[arg(long)]
        benchmarks: Option<PathBuf>,
        /// Networks to time (default: mnist-net_256x2, resnet_2b, one ACAS Xu net).
        #[arg(long)]
        net: Vec<PathBuf>,
        /// Batch size.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Timed repetitions (median reported).
        #[arg(long, default_value_t = 10)]
        repeats: usize,
        /// Also write the table as JSON here.
        #[arg(long)]
        json_out: Option<PathBuf>,
        /// Print JSON on stdout instead of the table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(a: &BenchArgs) -> Result<()> {
    let BenchWhat::Forward {
        benchmarks,
        net,
        batch,
        repeats,
        json_out,
        json,
    } = &a.what;
    if *batch == 0 || *repeats == 0 {
        bail!("--batch and --repeats must be positive");
    }
    let nets = if net.is_empty() {
        let dir = benchmarks
            .clone()
            .unwrap_or_else(|| PathBuf::from("../shared/benchmarks"));
        if !dir.is_dir() {
            bail!(
                "benchmarks folder {} not found: pass --benchmarks DIR or --net NET.onnx",
                dir.display()
            );
        }
        default_networks(&dir)
    } else {
        net.clone()
    };
    let mut rows = Vec::new();
    for n in &nets {
        eprintln!("timing {} ...", n.display());
        rows.push(
            bench_network(n, *batch, *repeats)
                .with_context(|| format!("benchmarking {}", n.display()))?,
        );
    }
    let text = serde_json::to_string_pretty(&rows)?;
    if let Some(p) = json_out {
        std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if *json {
        println!("{text}");
        return Ok(());
    }
    let ms = |v: f64| format!("{:.2}", 1e3 * v);
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "-".into());
    println!(
        "{:<40} {:>6} {:>12} {:>12} {:>12} {:>9} {:>9}",
        "network", "batch", "ours f32 ms", "ours f64 ms", "ort f32 ms", "f32/ort", "f64/ort"
    );
    for r in &rows {
        println!(
            "{:<40} {:>6} {:>12} {:>12} {:>12} {:>9} {:>9}",
            r.network,
            r.batch,
            ms(r.ours_f32_s),
            ms(r.ours_f64_s),
            opt(r.onnxruntime_s, &ms),
            opt(r.ratio_f32, &|v| format!("{v:.2}x")),
            opt(r.ratio_f64, &|v| format!("{v:.2}x"))
        );
    }
    Ok(())
}

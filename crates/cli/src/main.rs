//! `netrepair`: repair trained neural networks. This binary is argument parsing and glue; the
//! work lives in the library crates.
//!
//! Exit codes: 0 success, 2 error (bad input, missing file, ...). `verify` uses 0 holds,
//! 1 violated, 3 unknown; `repair` uses 0 proved, 1 not proved.

use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Subcommand};

mod cmd;
mod util;

/// Repair trained neural networks: load ONNX, find and fix what they get wrong, export a
/// drop-in replacement.
#[derive(Debug, clap::Parser)]
#[command(name = "netrepair", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Argument structs are parsed once; boxing the large ones would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// End-to-end showcase on generated data (no data files needed).
    Demo(netrepair_experiments::cli::demo::DemoArgs),
    /// Show a network's layers, shapes and parameter counts.
    Inspect(cmd::inspect::InspectArgs),
    /// Run a network on a batch of inputs (NPY in, NPY out), computed in f64.
    Forward(cmd::forward::ForwardArgs),
    /// Measure a classifier's accuracy on a data set split.
    Eval(cmd::eval::EvalArgs),
    /// Train a model preset (seeded) and save it as ONNX.
    Train(cmd::train::TrainArgs),
    /// Check a VNN-LIB property: holds, violated (with a counterexample) or unknown.
    Verify(cmd::verify::VerifyArgs),
    /// Repair a network (provably: APRNN, PREPARED; by gradients: I-REPAIR, fine-tuning,
    /// random locking, PFT) and export the drop-in replacement.
    Repair(cmd::repair::RepairArgs),
    /// Before a repair: score every layer as APRNN's start layer with each heuristic, analyse
    /// the repair set and recommend a layer.
    Analyze(cmd::analyze::AnalyzeArgs),
    /// Benchmarks: tables on stdout, JSON on request.
    Bench(netrepair_experiments::cli::bench::BenchArgs),
}

/// Runs the command; the value is the exit code (0 unless a verdict says otherwise). `matches`
/// are the parsed arguments (which flags the command line gave).
fn run(cli: Cli, matches: &ArgMatches) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Demo(a) => netrepair_experiments::cli::demo::run(a).map(|()| 0),
        Command::Inspect(a) => cmd::inspect::run(a).map(|()| 0),
        Command::Forward(a) => cmd::forward::run(a).map(|()| 0),
        Command::Eval(a) => cmd::eval::run(a).map(|()| 0),
        Command::Train(a) => cmd::train::run(a).map(|()| 0),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Repair(a) => {
            cmd::repair::run(a, matches.subcommand_matches("repair").unwrap_or(matches))
        }
        Command::Analyze(a) => cmd::analyze::run(a),
        Command::Bench(a) => netrepair_experiments::cli::bench::run(a).map(|()| 0),
    }
}

fn main() -> ExitCode {
    pin_thread_count();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli, &matches) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message before it
/// already ends with (errors that print their source as well as exposing it).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if text.is_empty() {
            text = cause;
        } else if !text.ends_with(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

/// Fixes the thread count once, before any thread starts. candle asks for it on every matrix
/// product and, without `RAYON_NUM_THREADS`, reads `/proc/cpuinfo` each time (1,500 reads in
/// one small ACAS Xu check). The value set is the one candle computes (physical cores), so
/// candle is unchanged; rayon's own pool, which would take every logical CPU, takes the same
/// count. A user's own `RAYON_NUM_THREADS` is left as it is.
fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

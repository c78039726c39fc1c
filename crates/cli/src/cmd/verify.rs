//! `netrepair verify`: decide a VNN-LIB property (holds / violated / unknown), or a whole
//! VNN-COMP instance list.
//!
//! Exit codes (single property): 0 holds, 1 violated, 3 unknown, 2 error. With `--instances`:
//! 0 when every instance ran, 2 on an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use netrepair_spec::{read_instances, read_vnnlib, Instance};
use netrepair_verify::{
    check_property, AlphaOptions, CheckOptions, CheckReport, PgdOptions, Verdict,
};
use serde_json::json;

use crate::util;

/// Check a VNN-LIB property: PGD attack, then branch and bound with sound linear bounds.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The network (ONNX).
    #[arg(long)]
    net: Option<PathBuf>,
    /// The property (VNN-LIB): states the unsafe outputs over an input box.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// A VNN-COMP instance list (CSV: network, property, timeout) to run instead; paths are
    /// relative to the list's folder (a missing path is looked up by file name under it;
    /// instances whose files cannot be found are skipped with a warning).
    #[arg(long, conflicts_with_all = ["net", "spec"])]
    instances: Option<PathBuf>,
    /// Time limit in seconds (for --instances: caps each instance's own timeout).
    #[arg(long)]
    timeout: Option<f64>,
    /// Only run instances whose property or network path contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// PGD starting points (at least 1024 for inputs of 16 dimensions or fewer).
    #[arg(long, default_value_t = 32)]
    restarts: usize,
    /// PGD steps per start.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Seed of the attack.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Gradient steps on the ReLU lower slopes of a box too large to split (alpha-CROWN),
    /// before the branch and bound on ReLU splits; 0 turns both off (bounds, then the MILP).
    #[arg(long, default_value_t = AlphaOptions::default().iterations)]
    alpha_steps: usize,
    /// Also write the instance results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// With --instances: write each instance's result in VNN-COMP's format into this folder
    /// (`<network>_<property>.txt`: `unsat`, `sat` and the counterexample, `timeout` or
    /// `unknown`) and a `results.csv` (network, property, result, seconds) beside them.
    #[arg(long, requires = "instances")]
    results_dir: Option<PathBuf>,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn options(a: &VerifyArgs, timeout: f64) -> Result<CheckOptions> {
    if !(timeout > 0.0 && timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds, got {timeout}");
    }
    Ok(CheckOptions {
        timeout: Duration::from_secs_f64(timeout),
        pgd: PgdOptions {
            restarts: a.restarts.max(1),
            steps: a.steps,
            seed: a.seed,
            ..Default::default()
        },
        alpha: AlphaOptions {
            iterations: a.alpha_steps,
            ..Default::default()
        },
        ..Default::default()
    })
}

/// Checks one property file on one network file.
pub fn run_one(net: &Path, spec: &Path, opts: &CheckOptions) -> Result<CheckReport> {
    let network = util::load_net(net)?;
    let prop =
        read_vnnlib(spec).with_context(|| format!("cannot read property {}", spec.display()))?;
    check_property(&network, &prop, opts)
        .with_context(|| format!("checking {} on {}", spec.display(), net.display()))
}

fn report_json(r: &CheckReport) -> serde_json::Value {
    let mut v = json!({"result": r.verdict.name(), "time_s": r.seconds, "boxes": r.boxes});
    match &r.verdict {
        Verdict::Violated(c) => v["counterexample"] = json!({"x": c.x, "y": c.y}),
        Verdict::Unknown(why) => v["reason"] = json!(why),
        Verdict::Holds => {}
    }
    v
}

pub fn run(a: &VerifyArgs) -> Result<u8> {
    if let Some(list) = &a.instances {
        return run_instances(a, list);
    }
    let (Some(net), Some(spec)) = (&a.net, &a.spec) else {
        bail!("give --net and --spec, or --instances")
    };
    let r = run_one(net, spec, &options(a, a.timeout.unwrap_or(60.0))?)?;
    if a.json {
        println!("{}", report_json(&r));
    } else {
        match &r.verdict {
            Verdict::Holds => println!("holds ({:.2} s, {} boxes)", r.seconds, r.boxes),
            Verdict::Unknown(why) => {
                println!("unknown ({:.2} s, {} boxes): {why}", r.seconds, r.boxes)
            }
            Verdict::Violated(_) => {
                println!(
                    "violated ({:.2} s); counterexample re-checked in f64:",
                    r.seconds
                );
                print!("{}", r.vnncomp_result(f64::INFINITY));
            }
        }
    }
    Ok(match r.verdict {
        Verdict::Holds => 0,
        Verdict::Violated(_) => 1,
        Verdict::Unknown(_) => 3,
    })
}

/// Creates the results folder; refuses the instance list's own folder (where the networks and
/// properties are) and a path that is not a folder.
fn prepare_results_dir(dir: &Path, list: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("--results-dir {} exists and is not a folder", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let root = list
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir.canonicalize()? == root.canonicalize()? {
        bail!(
            "--results-dir {} is the instance list's own folder: give a separate folder",
            dir.display()
        );
    }
    Ok(())
}

fn run_instances(a: &VerifyArgs, list: &Path) -> Result<u8> {
    let listed = read_instances(list, |net, spec| {
        a.filter
            .as_ref()
            .is_none_or(|s| net.contains(s.as_str()) || spec.contains(s.as_str()))
    })?;
    for s in &listed.skipped {
        eprintln!("warning: skipping {s}");
    }
    let (rows, skipped) = (listed.instances, listed.skipped.len());
    if let Some(dir) = &a.results_dir {
        prepare_results_dir(dir, list)?;
    }
    let pb = util::progress(rows.len() as u64, "instances");
    let mut results = Vec::new();
    let mut csv = String::from("network,property,result,time_s\n");
    let (mut decided, mut total_time) = (0, 0.0);
    for Instance {
        network: net,
        property: spec,
        timeout: t,
    } in &rows
    {
        let limit = a.timeout.map_or(*t, |cap| cap.min(*t));
        let r = run_one(net, spec, &options(a, limit)?)?;
        decided += usize::from(!matches!(r.verdict, Verdict::Unknown(_)));
        total_time += r.seconds;
        let name = |p: &Path| {
            p.file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let mut v = report_json(&r);
        v["network"] = json!(name(net));
        v["property"] = json!(name(spec));
        v["timeout_s"] = json!(limit);
        v["vnncomp_timeout_s"] = json!(t);
        if let Some(dir) = &a.results_dir {
            let text = r.vnncomp_result(limit);
            let stem = |p: &Path| {
                p.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            let file = dir.join(format!("{}_{}.txt", stem(net), stem(spec)));
            std::fs::write(&file, &text)
                .with_context(|| format!("cannot write {}", file.display()))?;
            let first = text.lines().next().unwrap_or_default();
            csv.push_str(&format!(
                "{},{},{first},{:.3}\n",
                name(net),
                name(spec),
                r.seconds
            ));
        }
        if !a.json {
            pb.suspend(|| {
                println!(
                    "{:<36} {:<22} {:>9} {:>8.2} s",
                    name(net),
                    name(spec),
                    r.verdict.name(),
                    r.seconds
                )
            });
        }
        results.push(v);
        pb.inc(1);
    }
    pb.finish_and_clear();
    if let Some(dir) = &a.results_dir {
        let file = dir.join("results.csv");
        std::fs::write(&file, csv).with_context(|| format!("cannot write {}", file.display()))?;
    }
    let summary = json!({"instances": results.len(), "decided": decided, "skipped": skipped, "total_time_s": total_time, "results": results});
    if let Some(p) = &a.json_out {
        std::fs::write(p, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "\ndecided {decided} of {} instances in {total_time:.1} s",
            results.len()
        );
    }
    Ok(0)
}

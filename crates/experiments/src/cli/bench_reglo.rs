//! `netrepair bench reglo`: seed 002's Table 1 in kind (individual fairness on German credit
//! over age groups; Adult as a second case): ST, AT, their fine-tuning and REGLO side by side.

use std::path::PathBuf;
use std::time::Duration;

use crate::reglo_bench::{
    fairness_markdown, fairness_table, german_age_groups, paper_markdown, paper_table,
    robustness_markdown, robustness_rows, FairnessBench, Group, PaperBench,
};
use anyhow::{bail, Context, Result};
use clap::Args;
use netrepair_data::DatasetName;
use netrepair_data::{load, resolve_data_dir};
use netrepair_repair::Reglo;
use netrepair_verify::SplitOptions;
use serde_json::json;

use super::args as util;

/// Settings of `bench reglo`.
#[derive(Debug, Args)]
pub struct RegloBenchArgs {
    /// german (age groups, seed 002's Table 1) or adult.
    #[arg(long, default_value = "german")]
    dataset: String,
    /// `ours` (this project's presets and splits, ST / AT / Finetune / REGLO) or `paper` (the
    /// public REGLO code's German protocol: its split, training recipe, uniform PGD starts,
    /// PGD-R at eps and 0.05, 1-D age segments; the paper's LP beside the scale-aware one).
    #[arg(long, default_value = "ours")]
    protocol: String,
    /// REGLO's LP objective (scale, scale:KAPPA, min-change); the paper protocol runs the
    /// paper's LP beside it.
    #[arg(long, default_value = "scale")]
    objective: String,
    /// Paper protocol: skip the paper's LP (min-change), the slow rows.
    #[arg(long)]
    no_paper_lp: bool,
    /// Training epochs of the paper protocol.
    #[arg(long, default_value_t = 200)]
    paper_epochs: usize,
    /// The sensitive feature (default: age).
    #[arg(long, default_value = "age")]
    sensitive: String,
    /// Largest allowed output change.
    #[arg(long, default_value_t = 0.01)]
    eps: f64,
    /// Only the whole range of the sensitive feature (no groups).
    #[arg(long)]
    all_only: bool,
    /// Points the attack runs from per region.
    #[arg(long, default_value_t = 500)]
    eval_points: usize,
    /// Leaf boxes of each VB computation.
    #[arg(long, default_value_t = 64)]
    vb_boxes: usize,
    /// Slices of the sensitive range bounded separately (VB and the REGLO LP).
    #[arg(long, default_value_t = 2)]
    pieces: usize,
    /// REGLO: new areas per round.
    #[arg(long, default_value_t = 10)]
    areas: usize,
    /// REGLO: search-and-repair rounds.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// REGLO: area half-width (fraction of the region's width).
    #[arg(long, default_value_t = 0.01)]
    area_radius: f64,
    /// AT epochs.
    #[arg(long, default_value_t = 10)]
    at_epochs: usize,
    /// MNIST: the network (default: mnistfc/mnist-net_256x2.onnx under --benchmarks).
    #[arg(long)]
    net: Option<PathBuf>,
    /// Folder holding the VNN-COMP networks (default: ../shared/benchmarks).
    #[arg(long)]
    benchmarks: Option<PathBuf>,
    /// MNIST: classes whose percentile boxes are the regions.
    #[arg(long, default_value = "0,1,2")]
    classes: String,
    /// MNIST: the L-inf radius (default 2/255).
    #[arg(long, default_value_t = 2.0 / 255.0)]
    delta: f64,
    /// MNIST: test images for the accuracy.
    #[arg(long, default_value_t = 2000)]
    test_images: usize,
    /// Folder holding the data sets (default: ../shared/data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where to write reglo_<dataset>.{md,json}.
    #[arg(long, default_value = "docs")]
    out_dir: PathBuf,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// --protocol paper: write every REGLO LP under this folder (one subfolder per age group
    /// and run), for `bench lp`.
    #[arg(long)]
    dump_lp: Option<PathBuf>,
}

/// MNIST: norm-bounded global robustness on per-class percentile boxes.
fn run_mnist(a: &RegloBenchArgs) -> Result<()> {
    let dir = resolve_data_dir(a.data_dir.as_deref())?;
    let net_path = match &a.net {
        Some(p) => p.clone(),
        None => a
            .benchmarks
            .clone()
            .unwrap_or_else(|| PathBuf::from("../shared/benchmarks"))
            .join("mnistfc")
            .join("mnist-net_256x2.onnx"),
    };
    let net = util::load_net(&net_path)?;
    let train = load(DatasetName::Mnist, &dir, "train")?;
    let test = load(DatasetName::Mnist, &dir, "test")?;
    let idx: Vec<usize> = (0..a.test_images.min(test.len())).collect();
    let test = test.subset(&idx)?;
    let classes: Vec<u32> = util::parse_list(&a.classes)?;
    // Keep the decisions of 200 training images.
    let keep: Vec<Vec<f64>> = (0..200.min(train.len()))
        .map(|i| train.sample(i).iter().map(|&v| f64::from(v)).collect())
        .collect();
    let reglo = Reglo {
        max_areas: a.areas,
        max_iters: a.rounds,
        area_radius: a.area_radius,
        samples: 200,
        eval_points: a.eval_points,
        split: SplitOptions {
            max_boxes: 1,
            ..SplitOptions::default()
        },
        ..Reglo::default()
    };
    eprintln!(
        "{:>5} {:<9} {:>9} {:>9} {:>7} {:>7} {:>8}  areas",
        "class", "method", "VB", "PGD-B", "PGD-R", "ACC", "T (s)"
    );
    let rows = robustness_rows(
        &net,
        &train,
        &test,
        &classes,
        &keep,
        a.delta,
        a.eps,
        &reglo,
        a.eval_points,
        |r| {
            eprintln!(
                "{:>5} {:<9} {:>9.3} {:>9.4} {:>6.1}% {:>6.2}% {:>8.1}  {}",
                r.class,
                r.method,
                r.vb,
                r.pgd_b,
                100.0 * r.pgd_r,
                100.0 * r.accuracy,
                r.repair_s,
                r.areas
            )
        },
    )?;
    let md = robustness_markdown(&rows, a.delta, a.eps);
    println!("{md}");
    write_outputs(
        a,
        "reglo_mnist",
        &md,
        &json!({"delta": a.delta, "eps": a.eps, "network": net_path, "rows": rows}),
    )
}

/// `--protocol paper`: the public REGLO code's German credit protocol.
fn run_paper(a: &RegloBenchArgs) -> Result<()> {
    let split = SplitOptions {
        max_boxes: a.vb_boxes,
        time_limit: Duration::from_secs(120),
        pieces: a.pieces,
    };
    let cfg = PaperBench {
        eps: a.eps,
        groups: if a.all_only {
            german_age_groups().into_iter().take(1).collect()
        } else {
            german_age_groups()
        },
        eval_points: a.eval_points,
        epochs: a.paper_epochs,
        split: split.clone(),
        reglo: Reglo {
            max_areas: a.areas,
            max_iters: a.rounds,
            pieces: a.pieces,
            eval_points: a.eval_points,
            split,
            objective: a.objective.parse()?,
            ..Reglo::default()
        },
        with_paper_lp: !a.no_paper_lp,
        seed: a.seed,
        lp_dump: a.dump_lp.clone(),
    };
    eprintln!(
        "{:<10} {:<24} {:<6} {:>9} {:>9} {:>7} {:>7} {:>7} {:>8} {:>7}  status",
        "region", "method", "eps on", "VB", "PGD-B", "R(eps)", "R(.05)", "ACC", "kept", "T (s)"
    );
    let rows = paper_table(&cfg, a.data_dir.as_deref(), |r| {
        eprintln!(
            "{:<10} {:<24} {:<6} {:>9.4} {:>9.4} {:>6.1}% {:>6.1}% {:>6.1}% {:>7.1}% {:>7.1}  {}",
            r.region,
            r.method,
            &r.measure[..5],
            r.vb,
            r.pgd_b,
            100.0 * r.pgd_r,
            100.0 * r.pgd_r_005,
            100.0 * r.accuracy,
            100.0 * r.decisions_kept,
            r.repair_s,
            r.status
        )
    })?;
    let md = paper_markdown(&rows, a.eps);
    println!("{md}");
    write_outputs(
        a,
        "reglo_german_paper",
        &md,
        &json!({"eps": a.eps, "protocol": "paper", "rows": rows}),
    )
}

pub fn run(a: &RegloBenchArgs) -> Result<()> {
    match a.protocol.as_str() {
        "ours" => {}
        "paper" => {
            if a.dataset != "german" || a.sensitive != "age" {
                bail!("--protocol paper is seed 002's German credit / age setting");
            }
            return run_paper(a);
        }
        other => bail!("unknown protocol '{other}' (ours, paper)"),
    }
    let dataset: DatasetName = a.dataset.parse()?;
    if dataset == DatasetName::Mnist {
        return run_mnist(a);
    }
    let groups = if a.all_only || dataset != DatasetName::German || a.sensitive != "age" {
        vec![Group {
            name: format!("all {}", a.sensitive),
            raw: None,
        }]
    } else {
        german_age_groups()
    };
    let split = SplitOptions {
        max_boxes: a.vb_boxes,
        time_limit: Duration::from_secs(120),
        pieces: a.pieces,
    };
    let cfg = FairnessBench {
        dataset,
        sensitive: a.sensitive.clone(),
        eps: a.eps,
        groups,
        eval_points: a.eval_points,
        split: split.clone(),
        reglo: Reglo {
            max_areas: a.areas,
            max_iters: a.rounds,
            area_radius: a.area_radius,
            pieces: a.pieces,
            eval_points: a.eval_points,
            split,
            objective: a.objective.parse()?,
            ..Reglo::default()
        },
        at_epochs: a.at_epochs,
        seed: a.seed,
    };
    eprintln!(
        "{:<10} {:<13} {:>9} {:>9} {:>7} {:>7} {:>12}  status",
        "region", "method", "VB", "PGD-B", "PGD-R", "ACC", "T (s)"
    );
    let rows = fairness_table(&cfg, a.data_dir.as_deref(), |r| {
        eprintln!(
            "{:<10} {:<13} {:>9.3} {:>9.4} {:>6.1}% {:>6.1}% {:>6.1}+{:<5.1}  {}",
            r.region,
            r.method,
            r.vb,
            r.pgd_b,
            100.0 * r.pgd_r,
            100.0 * r.accuracy,
            r.train_s,
            r.repair_s,
            r.status
        )
    })?;
    let with_paper = dataset == DatasetName::German && a.sensitive == "age" && a.eps == 0.01;
    let md = fairness_markdown(&rows, a.eps, with_paper);
    println!("{md}");
    let stem = format!("reglo_{}_{}", a.dataset, a.sensitive);
    write_outputs(a, &stem, &md, &json!({"eps": a.eps, "rows": rows}))
}

/// Writes `<stem>.md` and `<stem>.json` under `--out-dir`.
fn write_outputs(a: &RegloBenchArgs, stem: &str, md: &str, js: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(&a.out_dir)?;
    let md_path = a.out_dir.join(format!("{stem}.md"));
    std::fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    let js_path = a.out_dir.join(format!("{stem}.json"));
    std::fs::write(&js_path, serde_json::to_string_pretty(js)?)
        .with_context(|| format!("cannot write {}", js_path.display()))?;
    eprintln!("wrote {} and {}", md_path.display(), js_path.display());
    Ok(())
}

//! `netrepair bench irepair`: I-REPAIR against retraining and random locking on single-class
//! repair problems (seed 001, Table 1 and Figure 1a-b), with a table beside the paper's
//! numbers, JSON and plots.

use std::path::PathBuf;

use crate::irepair_bench::{
    markdown, paper_protocol_runs, seed_spread, single_class_runs, spread_markdown, summarise,
    BenchMethod, IRepairRun, IRepairSetup, IRepairSummary, DEFAULT_VALIDATION, PAPER_PROTOCOL_NOTE,
    SEED_FIGURE_NOTE,
};
use crate::plot::{line_chart, Series};
use anyhow::{bail, Context, Result};
use clap::Args;
use netrepair_data::{load, resolve_data_dir, split_indices, DatasetName};
use netrepair_repair::{GradientOptions, WeightNorm};

use super::args as util;

/// Settings of `bench irepair`.
#[derive(Debug, Args)]
pub struct IRepairBenchArgs {
    /// The network (default: mnist-net_256x2 under --benchmarks for mnist, resnet_2b for
    /// cifar10).
    #[arg(long)]
    net: Option<PathBuf>,
    /// Folder holding the VNN-COMP networks (default: ../shared/benchmarks).
    #[arg(long)]
    benchmarks: Option<PathBuf>,
    /// Data set: mnist or cifar10 (its test split is cut into the pool and evaluation splits).
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Folder holding the data sets (default: ../shared/data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Per-channel mean of the network's normalisation (default: none for mnist, the usual
    /// CIFAR-10 values for cifar10).
    #[arg(long)]
    mean: Option<String>,
    /// Per-channel standard deviation (with --mean).
    #[arg(long)]
    std: Option<String>,
    /// `ours` (pool / evaluation cut of the test split, a correct set per seed) or `paper` (the
    /// public I-REPAIR code's MNIST protocol: C from training images 49000-49999, R from a
    /// shuffled order of test images 0-4999, drop on test images 0-4999; the table shows the
    /// paper's one-seed figure and its spread over seeds).
    #[arg(long, default_value = "ours")]
    protocol: String,
    /// Take the pool and evaluation sets from these two named splits (e.g. MNIST's
    /// `001-pool,001-test`, seed 001's split of the training images) instead of cutting the
    /// test split.
    #[arg(long)]
    splits: Option<String>,
    /// Samples of the pool split the repair and correct sets are drawn from.
    #[arg(long, default_value_t = 5000)]
    pool_size: usize,
    /// Samples of the evaluation split (accuracy drop).
    #[arg(long, default_value_t = 5000)]
    eval_size: usize,
    /// Seed of the pool/evaluation split.
    #[arg(long, default_value_t = 0)]
    split_seed: u64,
    /// Seeds per configuration (first-seed..first-seed + seeds).
    #[arg(long, default_value_t = 20)]
    seeds: usize,
    /// The first seed: split a sweep over processes or machines, each with its own
    /// --json-out, then merge them with --from-json.
    #[arg(long, default_value_t = 0)]
    first_seed: usize,
    /// Run nothing: read the runs of these --json-out files (comma-separated), merge them and
    /// print, write and plot as if they came from one sweep.
    #[arg(long)]
    from_json: Option<String>,
    /// Repair-set sizes per class.
    #[arg(long, default_value = "1,2,4")]
    sizes: String,
    /// Classes repaired (default: all).
    #[arg(long)]
    classes: Option<String>,
    /// I-REPAIR gammas.
    #[arg(long, default_value = "0.01,0.05,0.1,0.5,1")]
    gammas: String,
    /// I-REPAIR+ (ours: logit and mixup preservation, raced over two weights) at these gammas
    /// (none by default).
    #[arg(long)]
    plus: Option<String>,
    /// I-REPAIR+ refereed against APRNN's last-layer LP by the predictions each repair changes
    /// on held-out unlabelled inputs (training images before 49000, see --validation;
    /// --protocol paper only), at
    /// these gammas (none by default).
    #[arg(long)]
    refereed: Option<String>,
    /// Random-locking probabilities (none by default).
    #[arg(long)]
    lock_probs: Option<String>,
    /// MM repair with these largest bounds (e.g. 1,5 as the paper; none by default).
    #[arg(long)]
    mm: Option<String>,
    /// The norms MM repair bounds, comma-separated: linf (as `repair --method mm`) and/or l1
    /// (the public Goldberger et al. code's binary search bounds `sum |dW| <= eps`).
    #[arg(long, default_value = "linf")]
    mm_norms: String,
    /// MM repair also with the correct set's points kept as LP constraints (not as
    /// published: the paper's MM is data-free).
    #[arg(long)]
    mm_keep: bool,
    /// APRNN's provable LP (not in the paper) at these affine layers, each `LAYER[:MIXUP]`
    /// (negative counts from the end; MIXUP synthetic keep points beside the correct set,
    /// default 200), e.g. `-1,1:0`.
    #[arg(long, allow_hyphen_values = true)]
    aprnn: Option<String>,
    /// Paper protocol: size of the held-out slice of unlabelled training images (those
    /// before C's range, 49000 - N .. 48999) that --refereed uses and `val_flips` reports.
    #[arg(long, default_value_t = DEFAULT_VALIDATION)]
    validation: usize,
    /// Leave out retraining.
    #[arg(long)]
    no_retrain: bool,
    /// Correct-set size.
    #[arg(long, default_value_t = 40)]
    correct_size: usize,
    /// Learning rate (the paper: 1e-4 for the MNIST MLP, 1e-5 for the CIFAR ResNet).
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Optimiser of the gradient methods (the paper: RMSprop).
    #[arg(long, value_enum, default_value = "rmsprop")]
    optimizer: super::args::OptimizerName,
    /// The correct set's training term: `ce` (the reference code's cross-entropy), `logits` or
    /// `logits:W` (the squared change of the original logits).
    #[arg(long, default_value = "ce")]
    correct_term: String,
    /// Synthetic keep points (mixtures of correct-set pairs) whose logits are preserved.
    #[arg(long, default_value_t = 0)]
    mixup: usize,
    /// Draw the synthetic keep points afresh each step.
    #[arg(long)]
    mixup_fresh: bool,
    /// Most optimiser steps per repair.
    #[arg(long, default_value_t = 5000)]
    max_iters: usize,
    /// Write the runs and the summary as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Write the summary as Markdown here.
    #[arg(long)]
    markdown_out: Option<PathBuf>,
    /// Plot the accuracy drop against the repair-set size (PNG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Plot the accuracy drop against the locking probability (PNG; with --lock-probs).
    #[arg(long)]
    plot_locking: Option<PathBuf>,
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>> {
    s.split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            t.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{what}: cannot read '{t}'"))
        })
        .collect()
}

/// Mean drop with a 95% confidence half-width, per x value, for one method.
fn series_by<F: Fn(&IRepairSummary) -> Option<f64>>(
    summary: &[IRepairSummary],
    name: &str,
    pick: F,
) -> Series {
    Series {
        name: name.to_string(),
        points: summary
            .iter()
            .filter_map(|r| {
                pick(r).map(|x| {
                    (
                        x,
                        r.mean_drop,
                        1.96 * r.std_drop / (r.runs.max(1) as f64).sqrt(),
                    )
                })
            })
            .collect(),
    }
}

pub fn run(a: &IRepairBenchArgs) -> Result<()> {
    if let Some(files) = &a.from_json {
        return from_json(a, files);
    }
    let name: DatasetName = a.dataset.parse()?;
    let cifar = matches!(name, DatasetName::Cifar10);
    let dir = a
        .benchmarks
        .clone()
        .unwrap_or_else(|| PathBuf::from("../shared/benchmarks"));
    let path = a.net.clone().unwrap_or_else(|| {
        dir.join(if cifar {
            "cifar10_resnet/resnet_2b.onnx"
        } else {
            "mnistfc/mnist-net_256x2.onnx"
        })
    });
    let net = util::load_net(&path)?;
    let data_dir = resolve_data_dir(a.data_dir.as_deref())?;
    let norm = match (&a.mean, &a.std, cifar) {
        (Some(m), Some(s), _) => Some((m.clone(), s.clone())),
        (None, None, true) => Some((
            "0.4914,0.4822,0.4465".to_string(),
            "0.2471,0.2435,0.2616".to_string(),
        )),
        (None, None, false) => None,
        _ => bail!("--mean and --std go together"),
    };
    let normalized = |split: &str| -> Result<netrepair_data::Dataset> {
        let mut data = load(name, &data_dir, split)?;
        if let Some((m, s)) = &norm {
            data.normalize(&util::parse_list(m)?, &util::parse_list(s)?)?;
        }
        Ok(data)
    };
    let paper = match a.protocol.as_str() {
        "ours" => false,
        "paper" => {
            if cifar {
                bail!("--protocol paper is seed 001's MNIST Table 1 setting");
            }
            true
        }
        other => bail!("unknown protocol '{other}' (ours, paper)"),
    };
    let (pool, eval, source) = match &a.splits {
        _ if paper => (
            load(name, &data_dir, "train")?,
            load(name, &data_dir, "test")?,
            "the paper's protocol: C from training images 49000-49999, R and the drop on test images 0-4999".to_string(),
        ),
        Some(s) => {
            let names: Vec<&str> = s.split(',').map(str::trim).collect();
            let [p, e] = names[..] else {
                bail!(
                    "--splits takes two split names, pool and evaluation, e.g. 001-pool,001-test"
                );
            };
            (normalized(p)?, normalized(e)?, format!("splits {p} / {e}"))
        }
        None => {
            let data = normalized("test")?;
            if a.pool_size + a.eval_size > data.len() {
                bail!(
                    "--pool-size {} + --eval-size {} exceed the {} test samples",
                    a.pool_size,
                    a.eval_size,
                    data.len()
                );
            }
            let parts = split_indices(data.len(), &[a.pool_size, a.eval_size], a.split_seed)?;
            (
                data.subset(&parts[0])?,
                data.subset(&parts[1])?,
                format!(
                    "the {} test split cut with seed {}",
                    a.dataset, a.split_seed
                ),
            )
        }
    };
    let mut methods = Vec::new();
    if !a.no_retrain {
        methods.push(BenchMethod::Retrain);
    }
    for g in parse::<f64>(&a.gammas, "--gammas")? {
        methods.push(BenchMethod::IRepair { gamma: g });
    }
    if let Some(g) = &a.plus {
        for gamma in parse::<f64>(g, "--plus")? {
            methods.push(BenchMethod::IRepairPlus { gamma });
        }
    }
    if let Some(g) = &a.refereed {
        if a.protocol != "paper" {
            bail!("--refereed needs --protocol paper (its held-out slice is training images before C's range 49000-49999)");
        }
        for gamma in parse::<f64>(g, "--refereed")? {
            methods.push(BenchMethod::IRepairPlusRefereed { gamma });
        }
    }
    if let Some(p) = &a.lock_probs {
        for p in parse::<f64>(p, "--lock-probs")? {
            methods.push(BenchMethod::RandomLock { p });
        }
    }
    if let Some(b) = &a.mm {
        let norms = parse::<WeightNorm>(&a.mm_norms, "--mm-norms")?;
        for bound in parse::<f64>(b, "--mm")? {
            for &norm in &norms {
                methods.push(BenchMethod::Mm {
                    bound,
                    norm,
                    keep: false,
                });
                if a.mm_keep {
                    methods.push(BenchMethod::Mm {
                        bound,
                        norm,
                        keep: true,
                    });
                }
            }
        }
    }
    if let Some(spec) = &a.aprnn {
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (layer, mixup) = part.split_once(':').unwrap_or((part, "200"));
            let bad = || anyhow::anyhow!("--aprnn: '{part}' is not LAYER[:MIXUP] (e.g. -1:200)");
            methods.push(BenchMethod::Aprnn {
                layer: layer.parse().map_err(|_| bad())?,
                mixup: mixup.parse().map_err(|_| bad())?,
            });
        }
    }
    if methods.is_empty() {
        bail!("no method to run");
    }
    let classes = match &a.classes {
        Some(c) => parse::<usize>(c, "--classes")?,
        None => (0..net.output_len()).collect(),
    };
    let setup = IRepairSetup {
        sizes: parse(&a.sizes, "--sizes")?,
        methods: methods.clone(),
        seeds: a.seeds,
        first_seed: a.first_seed,
        classes,
        correct_size: a.correct_size,
        validation: a.validation,
        options: GradientOptions {
            lr: a.lr,
            max_iters: a.max_iters,
            optimizer: super::args::optimizer(a.optimizer),
            correct_term: a.correct_term.parse()?,
            mixup: a.mixup,
            mixup_fresh: a.mixup_fresh,
            ..GradientOptions::default()
        },
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if paper {
        println!(
            "{stem}: {source}; correct set 40, lr {}, at most {} steps",
            a.lr, a.max_iters
        );
    } else {
        println!(
            "{stem}: pool {} / evaluation {} samples ({source}), correct set {}, lr {}, at most {} steps",
            pool.len(),
            eval.len(),
            a.correct_size,
            a.lr,
            a.max_iters
        );
    }
    let pb = indicatif::ProgressBar::new(0);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} runs, {elapsed} ({eta} left) {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // Without a terminal the bar is hidden: log every 50th run instead.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let started = std::time::Instant::now();
    // With --json-out, the runs so far are saved to `<file>.partial` every 10 runs, so a long
    // sweep that is stopped still leaves something --from-json can read.
    let partial = a.json_out.as_ref().map(|p| {
        let mut q = p.as_os_str().to_owned();
        q.push(".partial");
        PathBuf::from(q)
    });
    let protocol = if paper { "paper" } else { "ours" };
    let mut so_far: Vec<IRepairRun> = Vec::new();
    let log = |r: &IRepairRun, done: usize, total: usize| {
        if let Some(p) = &partial {
            so_far.push(r.clone());
            if done.is_multiple_of(10) {
                let v = serde_json::json!({"network": stem, "protocol": protocol, "runs": so_far});
                if let Err(e) = std::fs::write(p, v.to_string()) {
                    eprintln!("warning: cannot write {}: {e}", p.display());
                }
            }
        }
        pb.set_length(total as u64);
        pb.set_position(done as u64);
        if !tty && (done.is_multiple_of(50) || done == total) {
            eprintln!(
                "{done}/{total} runs, {:.0} s; last: {} |R|={} class {} drop {:.2} pp",
                started.elapsed().as_secs_f64(),
                r.method,
                r.size,
                r.class,
                r.drop_pp
            );
        }
        pb.set_message(format!(
            "{} |R|={} class {}: drop {:.2} pp",
            r.method, r.size, r.class, r.drop_pp
        ));
    };
    let runs = if paper {
        paper_protocol_runs(&net, &pool, &eval, &setup, log)?
    } else {
        single_class_runs(&net, &pool, &eval, &setup, log)?
    };
    pb.finish_and_clear();
    report(a, &runs, &methods, paper, cifar, &stem)?;
    if let Some(p) = &partial {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// Runs saved by earlier `--json-out`s (e.g. one per `--first-seed` range), merged.
fn from_json(a: &IRepairBenchArgs, files: &str) -> Result<()> {
    let (mut runs, mut paper, mut cifar, mut stem) = (Vec::new(), false, false, String::new());
    for f in files.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {f}"))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{f} is not JSON"))?;
        let part: Vec<IRepairRun> = serde_json::from_value(v["runs"].clone())
            .with_context(|| format!("{f} holds no 'runs' of bench irepair"))?;
        paper |= v["protocol"] == "paper";
        let net = v["network"].as_str().unwrap_or_default().to_string();
        cifar |= net.contains("resnet");
        if !stem.is_empty() && stem != net {
            bail!("{f} is about network '{net}', the others about '{stem}'");
        }
        stem = net;
        runs.extend(part);
    }
    if runs.is_empty() {
        bail!("--from-json: no runs in '{files}'");
    }
    let mut methods: Vec<BenchMethod> = Vec::new();
    for r in &runs {
        let m = BenchMethod::from_label(&r.method)
            .with_context(|| format!("unknown method '{}' in the saved runs", r.method))?;
        if !methods.contains(&m) {
            methods.push(m);
        }
    }
    println!("{stem}: {} runs merged from {files}", runs.len());
    report(a, &runs, &methods, paper, cifar, &stem)
}

/// The tables, JSON and plots of a set of runs.
fn report(
    a: &IRepairBenchArgs,
    runs: &[IRepairRun],
    methods: &[BenchMethod],
    paper: bool,
    cifar: bool,
    stem: &str,
) -> Result<()> {
    let mut sizes: Vec<usize> = runs.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    // The spread over seeds (intervals) wherever there are several seeds to spread over.
    let several_seeds = runs.iter().any(|r| r.seed != runs[0].seed);
    let mut spread = (paper || several_seeds).then(|| seed_spread(runs, methods));
    let mut summary = summarise(runs, methods);
    if cifar {
        // Table 1 of the paper is MNIST's; its CIFAR-10 results are plots only.
        for r in &mut summary {
            r.paper = None;
        }
        for r in spread.iter_mut().flatten() {
            r.paper = None;
        }
    }
    let mut table = markdown(&summary);
    if let Some(sp) = &spread {
        table.push('\n');
        table.push_str(&spread_markdown(sp));
        table.push('\n');
        table.push_str(if paper {
            PAPER_PROTOCOL_NOTE
        } else {
            SEED_FIGURE_NOTE
        });
        table.push('\n');
    }
    println!("{table}");
    if let Some(p) = &a.markdown_out {
        std::fs::write(p, &table).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &a.json_out {
        let protocol = if paper { "paper" } else { "ours" };
        let v = serde_json::json!({"network": stem, "protocol": protocol, "summary": summary, "spread": spread, "runs": runs});
        std::fs::write(p, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &a.plot {
        let series: Vec<Series> = methods
            .iter()
            .map(|m| {
                let label = m.label();
                series_by(&summary, &label, |r| {
                    (r.method == label).then_some(r.size as f64)
                })
            })
            .collect();
        line_chart(
            p,
            &format!("{stem}: accuracy drop after single-class repair (95% CI)"),
            "repair-set size per class",
            "accuracy drop (pp)",
            &series,
        )?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &a.plot_locking {
        let mut series = Vec::new();
        for &size in &sizes {
            series.push(series_by(
                &summary,
                &format!("random locking, |R| = {size}"),
                |r| {
                    methods
                        .iter()
                        .find(|m| m.label() == r.method)
                        .and_then(|m| match m {
                            BenchMethod::RandomLock { p } if r.size == size => Some(*p),
                            _ => None,
                        })
                },
            ));
            let probs: Vec<f64> = methods
                .iter()
                .filter_map(|m| match m {
                    BenchMethod::RandomLock { p } => Some(*p),
                    _ => None,
                })
                .collect();
            for m in methods {
                if let BenchMethod::IRepair { .. } = m {
                    if let Some(r) = summary
                        .iter()
                        .find(|r| r.method == m.label() && r.size == size)
                    {
                        series.push(Series {
                            name: format!("{}, |R| = {size}", m.label()),
                            points: probs.iter().map(|&p| (p, r.mean_drop, 0.0)).collect(),
                        });
                    }
                }
            }
        }
        line_chart(
            p,
            &format!("{stem}: influence-based vs random locking"),
            "locking probability p",
            "accuracy drop (pp)",
            &series,
        )?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

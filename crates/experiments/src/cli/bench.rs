//! `netrepair bench`: benchmarks that print a table and write JSON.

use std::path::PathBuf;

use crate::forward_bench::{bench_network, default_networks};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

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
    /// APRNN repair of MNIST errors at every layer: efficacy, drawdown, generalisation to
    /// corrupted images, time, LP size.
    Repair(RepairBenchArgs),
    /// ACAS Xu property editing: PREPARED on every violated instance of the chosen
    /// properties, all-properties editing of N2,9, APRNN box repair; time and fidelity.
    Acas(AcasBenchArgs),
    /// CIFAR-10 local robustness editing: PGD-breakable test images made provably robust
    /// (PREPARED, last layer); clean and certified accuracy before and after.
    Robust(RobustBenchArgs),
    /// I-REPAIR against retraining and random locking on single-class repair sets (seed 001,
    /// Table 1 and Figure 1a-b): accuracy drop beside the paper's numbers, time, plots.
    Irepair(Box<super::bench_irepair::IRepairBenchArgs>),
    /// Informed repair (seed 000): heuristics against the brute-force oracle, success and
    /// drawdown against repair-set size, incremental repair curves; tables and plots.
    Informed(Box<super::bench_informed::InformedBenchArgs>),
    /// REGLO (seed 002): individual fairness on German credit age groups (Table 1) or Adult;
    /// ST, AT, fine-tuning and REGLO with VB, PGD-B, PGD-R, accuracy and time.
    Reglo(Box<super::bench_reglo::RegloBenchArgs>),
    /// The project's own LPs (written by `repair --dump-lp DIR`) solved with each solver
    /// strategy: size, status, objective, iterations, read and solve time.
    Lp(LpBenchArgs),
}

/// Settings of `bench lp`.
#[derive(Debug, Args)]
pub struct LpBenchArgs {
    /// LP files (.mps, .lp) or folders of them.
    #[arg(required = true)]
    lps: Vec<PathBuf>,
    /// Strategies, comma-separated: METHOD[-nox][-nopre][-tN] with METHOD choose, simplex,
    /// ipm or pdlp; -nox: interior point without crossover; -nopre: no presolve; -tN: N
    /// threads. The first optimum found for an LP is the reference the others are compared with.
    #[arg(long, default_value = "simplex,ipm,ipm-nox,pdlp")]
    strategies: String,
    /// Time limit of each solve, seconds.
    #[arg(long, default_value_t = 600.0)]
    timeout: f64,
    /// Write the rows as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Write the table as Markdown here.
    #[arg(long)]
    markdown_out: Option<PathBuf>,
}

fn run_lp(a: &LpBenchArgs) -> Result<()> {
    use crate::lp_bench::{bench_lps, lp_files, markdown, LpStrategy};
    let strategies: Vec<LpStrategy> = a
        .strategies
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse())
        .collect::<Result<_>>()?;
    if strategies.is_empty() {
        bail!("--strategies: none given");
    }
    if !(a.timeout > 0.0 && a.timeout.is_finite()) {
        bail!("--timeout must be positive, got {}", a.timeout);
    }
    let files = lp_files(&a.lps)?;
    let limit = Some(std::time::Duration::from_secs_f64(a.timeout));
    let rows = bench_lps(&files, &strategies, limit, |r| {
        eprintln!(
            "{} [{}]: {} in {:.2} s",
            r.lp, r.strategy, r.status, r.solve_s
        )
    })?;
    let table = markdown(&rows);
    println!("{table}");
    if let Some(p) = &a.markdown_out {
        std::fs::write(p, &table).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &a.json_out {
        std::fs::write(p, serde_json::to_string_pretty(&rows)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// Settings of `bench robust`.
#[derive(Debug, Args)]
pub struct RobustBenchArgs {
    /// The network (default: resnet_2b under --benchmarks).
    #[arg(long)]
    net: Option<PathBuf>,
    /// Folder holding cifar10_resnet/ (default: ../shared/benchmarks).
    #[arg(long)]
    benchmarks: Option<PathBuf>,
    /// Folder holding cifar10/ (default: ../shared/data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// L-inf radius in pixel space.
    #[arg(long, default_value_t = 0.008)]
    eps: f64,
    /// Test images scanned with PGD.
    #[arg(long, default_value_t = 200)]
    scan: usize,
    /// Non-robust images to edit.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Other test images for the certified-accuracy figure.
    #[arg(long, default_value_t = 30)]
    certified: usize,
    /// Per-channel mean of the network's normalisation.
    #[arg(long, default_value = "0.4914,0.4822,0.4465")]
    mean: String,
    /// Per-channel standard deviation.
    #[arg(long, default_value = "0.2471,0.2435,0.2616")]
    std: String,
    /// Verifier time limit per property re-check, seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Keep this many correctly classified CIFAR-10 training images (a seeded draw balanced
    /// over the classes): each keeps its class, held by the LP.
    #[arg(long, default_value_t = 0)]
    keep: usize,
    /// Keep this many training images' eps-balls that the network certifies before the edit
    /// certified after it (encoded like the edited balls).
    #[arg(long, default_value_t = 0)]
    keep_regions: usize,
    /// How the edit bounds the balls' original requirement directions beside the box of the
    /// last hidden layer: off, linear (back-substitution), lp (also the LP relaxation) or
    /// alpha (optimised ReLU slopes, also for the region's bounds).
    #[arg(long, default_value = "linear")]
    cuts: netrepair_repair::Cuts,
    /// How the kept images' output changes enter the objective: linf[:W], moments[:W],
    /// l1[:W], joint, off.
    #[arg(long, default_value = "linf:1")]
    keep_objective: netrepair_repair::KeepObjective,
    /// Fine-tune on this many correctly classified CIFAR-10 training images, the edited balls'
    /// centres and attack counterexamples before the edit (`repair --warm-start`); 0: off.
    #[arg(long, default_value_t = 0)]
    warm_start: usize,
    /// Warm start: the margin (logits) the fine-tuning asks of every ball's requirements.
    #[arg(long, default_value_t = 1.0)]
    warm_margin: f64,
    /// Warm start: most optimiser steps.
    #[arg(long, default_value_t = 2000)]
    warm_steps: usize,
    /// Warm start: weight of the term keeping the training images' original logits.
    #[arg(long, default_value_t = 0.0)]
    warm_keep_logits: f64,
    /// Warm start: weight of the training images' cross-entropy (0 with --warm-keep-logits:
    /// they only keep their original logits).
    #[arg(long, default_value_t = 1.0)]
    warm_label_weight: f64,
    /// Warm start: share of each step's loss that the balls' requirements have, in (0, 1].
    #[arg(long, default_value_t = 0.5)]
    warm_repair_share: f64,
    /// Warm start: learning rate (Adam).
    #[arg(long, default_value_t = 1e-4)]
    warm_lr: f64,
    /// Warm start: the first affine layer (index, from 0) fine-tuning moves; the layers
    /// before it, and every bound over their features, stay as they are. `auto`: with
    /// properties or kept regions, the first layer of the dense chain that ends the network
    /// (they then train on sound bounds), else 0 (every layer moves).
    #[arg(long, default_value = "auto")]
    warm_train_from: netrepair_repair::TrainFrom,
    /// Warm start: train properties and kept regions on attacks even where the layers that
    /// move are a dense chain to the output (by default they train on sound bounds there).
    #[arg(long)]
    warm_attacks_only: bool,
    /// Warm start with sound bounds: the margin each property's bound is trained to clear.
    #[arg(long, default_value_t = 0.05)]
    warm_tail_margin: f64,
    /// Time limit of each of PREPARED's LPs, seconds (0: none).
    #[arg(long, default_value_t = 1800.0)]
    lp_timeout: f64,
    /// Before editing, print for each broken ball its worst margin bounded by
    /// back-substitution, by the LP relaxation and exactly by the MILP (how loose the
    /// relaxations the edit must beat are).
    #[arg(long)]
    gap: bool,
    /// Write the row as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Save the edited network here (ONNX).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn run_robust(a: &RobustBenchArgs) -> Result<()> {
    let dir = a
        .benchmarks
        .clone()
        .unwrap_or_else(|| PathBuf::from("../shared/benchmarks"));
    let path = a
        .net
        .clone()
        .unwrap_or_else(|| dir.join("cifar10_resnet/resnet_2b.onnx"));
    let net = super::args::load_net(&path)?;
    let data_dir = netrepair_data::resolve_data_dir(a.data_dir.as_deref())?;
    let pixels = netrepair_data::load(netrepair_data::DatasetName::Cifar10, &data_dir, "test")?;
    let (mean, std): (Vec<f32>, Vec<f32>) = (
        super::args::parse_list(&a.mean)?,
        super::args::parse_list(&a.std)?,
    );
    let mut normalized = pixels.clone();
    normalized.normalize(&mean, &std)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut keep = netrepair_repair::KeepSet::default();
    let mut warm = netrepair_repair::LabelledSet::default();
    if a.keep > 0 || a.keep_regions > 0 || a.warm_start > 0 {
        eprintln!("loading the CIFAR-10 training images for the keep set ...");
        let train_px =
            netrepair_data::load(netrepair_data::DatasetName::Cifar10, &data_dir, "train")?;
        let mut train = train_px.clone();
        train.normalize(&mean, &std)?;
        if a.warm_start > 0 {
            warm = crate::keep::draw_keep(&net, &train, a.warm_start, 0, 0)?.keep;
        }
        let want = a.keep.max(4 * a.keep_regions);
        let drawn = crate::keep::draw_keep(&net, &train, want, 0, 0)?;
        let mut points = drawn.keep.clone();
        points.inputs.truncate(a.keep);
        points.labels.truncate(a.keep);
        keep = netrepair_repair::KeepSet::points(points);
        if a.keep_regions > 0 {
            let balls = crate::robust_bench::certified_balls(
                &net,
                &train_px,
                &drawn.keep_indices,
                a.eps,
                &mean,
                &std,
                a.keep_regions,
            )?;
            eprintln!(
                "keep set: {} training images, {} certified training balls",
                keep.points.len(),
                balls.len()
            );
            keep.regions = balls
                .into_iter()
                .enumerate()
                .map(|(i, property)| netrepair_repair::KeepRegion {
                    name: format!("certified training ball {i}"),
                    property,
                })
                .collect();
        }
    }
    let (row, edited, others) = crate::robust_bench::robustness_edit(
        &net,
        &name,
        &pixels,
        &normalized,
        &mean,
        &std,
        crate::robust_bench::RobustConfig {
            eps: a.eps,
            scan: a.scan,
            k: a.k,
            certified_n: a.certified,
            timeout: std::time::Duration::from_secs_f64(a.timeout),
            keep,
            cuts: a.cuts,
            keep_objective: a.keep_objective,
            gap: a.gap,
            warm,
            warm_options: netrepair_repair::WarmOptions {
                property_margin: a.warm_margin,
                max_steps: a.warm_steps,
                keep_logits: a.warm_keep_logits,
                label_weight: a.warm_label_weight,
                repair_share: a.warm_repair_share,
                lr: a.warm_lr,
                train_from: a.warm_train_from,
                sound_tail: !a.warm_attacks_only,
                tail_margin: a.warm_tail_margin,
                ..Default::default()
            },
            lp_timeout: (a.lp_timeout > 0.0)
                .then(|| std::time::Duration::from_secs_f64(a.lp_timeout)),
        },
    )?;
    if let Some(out) = &a.out {
        netrepair_nn::save_onnx(&edited, out)?;
    }
    let mut v = serde_json::to_value(&row)?;
    v["certified_images"] = serde_json::json!(others);
    let text = serde_json::to_string_pretty(&v)?;
    if let Some(p) = &a.json_out {
        std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    println!("{text}");
    Ok(())
}

/// Settings of `bench acas`.
#[derive(Debug, Args)]
pub struct AcasBenchArgs {
    /// Folder holding acasxu/ (default: ../shared/benchmarks).
    #[arg(long)]
    benchmarks: Option<PathBuf>,
    /// Properties whose violated instances are edited.
    #[arg(long, default_value = "2,7,8")]
    props: String,
    /// Verifier time limit to find the violation before editing, and for each re-check.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Uniform domain samples for the fidelity figure.
    #[arg(long, default_value_t = 100_000)]
    samples: usize,
    /// APRNN box splits for the N2,9 box repairs.
    #[arg(long, default_value_t = 3)]
    box_splits: usize,
    /// Only instances whose network name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Write the rows as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Write the table as Markdown here.
    #[arg(long)]
    markdown_out: Option<PathBuf>,
}

fn run_acas(a: &AcasBenchArgs) -> Result<()> {
    use crate::acas_bench::{domain_samples, edit, is_violated, load_instance, markdown};
    use netrepair_repair::{Aprnn, Prepared, RepairContext};
    let dir = a
        .benchmarks
        .clone()
        .unwrap_or_else(|| PathBuf::from("../shared/benchmarks"))
        .join("acasxu");
    let list = std::fs::read_to_string(dir.join("acasxu_instances.csv"))
        .with_context(|| format!("cannot read the instance list under {}", dir.display()))?;
    let props: Vec<String> = super::args::parse_list::<u32>(&a.props)?
        .iter()
        .map(|p| format!("prop_{p}.vnnlib"))
        .collect();
    let instances: Vec<(String, String)> = list
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.trim().to_string(), f.next()?.trim().to_string()))
        })
        .collect();
    let timeout = std::time::Duration::from_secs_f64(a.timeout);
    let ctx = RepairContext {
        check: netrepair_verify::CheckOptions {
            timeout,
            ..Default::default()
        },
        progress: None,
        lp_dump: None,
    };
    let mut rows = Vec::new();
    let save = |rows: &Vec<crate::acas_bench::AcasRow>| -> Result<()> {
        if let Some(p) = &a.json_out {
            std::fs::write(p, serde_json::to_string_pretty(rows)?)?;
        }
        if let Some(p) = &a.markdown_out {
            std::fs::write(p, markdown(rows))?;
        }
        Ok(())
    };
    println!("{}", markdown(&[]).trim_end());
    let print = |row: crate::acas_bench::AcasRow, rows: &mut Vec<_>| -> Result<()> {
        println!(
            "{}",
            markdown(std::slice::from_ref(&row))
                .lines()
                .last()
                .unwrap_or_default()
        );
        rows.push(row);
        save(rows)
    };
    let wanted = |net: &str| a.filter.as_deref().is_none_or(|f| net.contains(f));
    let prepared = Prepared::default();
    let mut samples = None;
    for (net_name, prop) in instances
        .iter()
        .filter(|(n, p)| props.contains(p) && wanted(n))
    {
        let (net, ps) = load_instance(&dir, net_name, &[prop])?;
        if !is_violated(&net, &ps[0].1, timeout)? {
            continue;
        }
        let xs = match &samples {
            Some(x) => x,
            None => samples.insert(domain_samples(&net, a.samples, 0)?),
        };
        let (row, _) = edit(&net, net_name, &ps, &prepared, "PREPARED", &ctx, xs)?;
        print(row, &mut rows)?;
    }
    // All properties of N2,9 at once, and APRNN on its phi_2 / phi_8 boxes.
    let n29 = "ACASXU_run2a_2_9_batch_2000.onnx";
    if wanted(n29) {
        let all: Vec<&str> = instances
            .iter()
            .filter(|(n, _)| n == n29)
            .map(|(_, p)| p.as_str())
            .collect();
        let (net, ps) = load_instance(&dir, n29, &all)?;
        let xs = domain_samples(&net, a.samples, 0)?;
        let (row, _) = edit(
            &net,
            n29,
            &ps,
            &prepared,
            "PREPARED, all properties",
            &ctx,
            &xs,
        )?;
        print(row, &mut rows)?;
        let aprnn = Aprnn {
            box_splits: a.box_splits,
            ..Aprnn::default()
        };
        for p in ["prop_2.vnnlib", "prop_8.vnnlib"] {
            let (net, ps) = load_instance(&dir, n29, &[p])?;
            let what = format!("APRNN, box split {}x", 1 << a.box_splits);
            let (row, _) = edit(&net, n29, &ps, &aprnn, &what, &ctx, &xs)?;
            print(row, &mut rows)?;
        }
    }
    Ok(())
}

/// Settings of `bench repair`.
#[derive(Debug, Args)]
pub struct RepairBenchArgs {
    /// Networks (default: mnist-net_256x2 and mnist_relu_9_200 under --benchmarks).
    #[arg(long)]
    net: Vec<PathBuf>,
    /// Folder holding the VNN-COMP networks (default: ../shared/benchmarks).
    #[arg(long)]
    benchmarks: Option<PathBuf>,
    /// Folder holding mnist/ (default: ../shared/data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Repair-set size.
    #[arg(long, default_value_t = 100)]
    n: usize,
    /// Start layers (affine indices, comma-separated; default: all).
    #[arg(long)]
    layers: Option<String>,
    /// Repair sets: clean, noise[:sd], brightness[:delta], rotation[:deg], fog[:strength]
    /// (repeatable; default: clean and each corruption).
    #[arg(long)]
    set: Vec<String>,
    /// Time limit of each LP, seconds.
    #[arg(long, default_value_t = 300.0)]
    lp_timeout: f64,
    /// Leave out the errors APRNN's screening flags (dead hidden layer, clamped output, ...)
    /// and repair the rest.
    #[arg(long)]
    drop_flagged: bool,
    /// Keep this many correctly classified training images (a seeded draw balanced over the
    /// classes): each keeps its class, held by the LP.
    #[arg(long, default_value_t = 0)]
    keep: usize,
    /// How the kept points' output changes enter APRNN's objective: linf[:W], moments[:W],
    /// joint, l1[:W], off.
    #[arg(long, default_value = "linf:1")]
    keep_objective: netrepair_repair::KeepObjective,
    /// Fine-tune on this many correctly classified training images (and the repair points)
    /// before APRNN's LP (`repair --warm-start`); 0: APRNN alone.
    #[arg(long, default_value_t = 0)]
    warm_start: usize,
    /// Bound on every parameter delta ("inf" for none).
    #[arg(long, default_value_t = netrepair_repair::APRNN_DELTA_BOUND)]
    delta_bound: f64,
    /// "errors": the first --n test errors of each network (clean or corrupted by --set);
    /// "aprnn": APRNN's own Table 1 protocol (the first --n fog images of data/mnist-fog as
    /// they come, on ERAN's 3x100 at layer 1, 9x100 at 5 and 9x200 at 6 unless --net and
    /// --layers say otherwise).
    #[arg(long, default_value = "errors")]
    protocol: String,
    /// With --protocol aprnn: repair and evaluate each network without a ReLU on its logits,
    /// as APRNN's reference does (by default the ReLU stays and the LP makes the true class's
    /// logit positive, which the shipped network needs).
    #[arg(long)]
    drop_final_relu: bool,
    /// With --protocol aprnn: save each repaired network here as NAME_repaired.onnx.
    #[arg(long)]
    save_dir: Option<PathBuf>,
    /// Write the rows as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Write the table as Markdown here.
    #[arg(long)]
    markdown_out: Option<PathBuf>,
}

fn run_repair(a: &RepairBenchArgs) -> Result<()> {
    use crate::corrupt::Corruption;
    use crate::repair_bench::{aprnn_table1, markdown, repair_errors, RepairBenchOptions};
    let dir = a
        .benchmarks
        .clone()
        .unwrap_or_else(|| PathBuf::from("../shared/benchmarks"));
    let nets = if a.net.is_empty() {
        vec![
            dir.join("mnistfc/mnist-net_256x2.onnx"),
            dir.join("eran/mnist_relu_9_200.onnx"),
        ]
    } else {
        a.net.clone()
    };
    let sets: Vec<Option<Corruption>> = if a.set.is_empty() {
        vec![
            None,
            Some(Corruption::Noise(0.3)),
            Some(Corruption::Brightness(0.4)),
            Some(Corruption::Rotation(20.0)),
            Some(Corruption::Fog(0.5)),
        ]
    } else {
        a.set
            .iter()
            .map(|s| {
                if s == "clean" {
                    Ok(None)
                } else {
                    s.parse().map(Some)
                }
            })
            .collect::<Result<_>>()?
    };
    let layers = match &a.layers {
        Some(l) => super::args::parse_list(l)?,
        None => Vec::new(),
    };
    let data_dir = netrepair_data::resolve_data_dir(a.data_dir.as_deref())?;
    let test = netrepair_data::load(netrepair_data::DatasetName::Mnist, &data_dir, "test")?;
    let train = if a.keep > 0 || a.warm_start > 0 {
        Some(netrepair_data::load(
            netrepair_data::DatasetName::Mnist,
            &data_dir,
            "train",
        )?)
    } else {
        None
    };
    if a.delta_bound.is_nan() || a.delta_bound <= 0.0 {
        bail!("--delta-bound must be positive, got {}", a.delta_bound);
    }
    let delta_bound = Some(a.delta_bound).filter(|b| b.is_finite());
    let keep_of = |net: &netrepair_nn::Network| -> Result<netrepair_repair::LabelledSet> {
        Ok(match &train {
            Some(train) => crate::keep::draw_keep(net, train, a.keep, 0, 0)?.keep,
            None => Default::default(),
        })
    };
    let warm_of = |net: &netrepair_nn::Network| -> Result<netrepair_repair::LabelledSet> {
        Ok(match &train {
            Some(train) if a.warm_start > 0 => {
                crate::keep::draw_keep(net, train, a.warm_start, 0, 0)?.keep
            }
            _ => Default::default(),
        })
    };
    let opts_for = |keep, warm, corruption| RepairBenchOptions {
        keep,
        warm,
        keep_objective: a.keep_objective,
        delta_bound,
        n: a.n,
        layers: layers.clone(),
        corruption,
        lp_timeout: std::time::Duration::from_secs_f64(a.lp_timeout),
        generalisation_n: 500,
        seed: 0,
        drop_flagged: a.drop_flagged,
    };
    let write_json = |rows: &[crate::repair_bench::RepairRow]| -> Result<()> {
        if let Some(p) = &a.json_out {
            std::fs::write(p, serde_json::to_string_pretty(rows)?)
                .with_context(|| format!("cannot write {}", p.display()))?;
        }
        Ok(())
    };
    match a.protocol.as_str() {
        "errors" => {}
        "aprnn" => {
            let fog =
                netrepair_data::load(netrepair_data::DatasetName::Mnist, &data_dir, "fog-test")?;
            let cases: Vec<(PathBuf, usize)> = if a.net.is_empty() {
                vec![
                    (dir.join("eran/mnist_relu_3_100.onnx"), 1),
                    (dir.join("eran/mnist_relu_9_100.onnx"), 5),
                    (dir.join("eran/mnist_relu_9_200.onnx"), 6),
                ]
            } else {
                let l = layers.first().copied().unwrap_or(1);
                a.net.iter().map(|p| (p.clone(), l)).collect()
            };
            let mut rows = Vec::new();
            println!("{}", markdown(&[]).trim_end());
            for (path, layer) in &cases {
                let mut net = super::args::load_net(path)?;
                let mut name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let last = net.nodes().len() - 1;
                if a.drop_final_relu
                    && matches!(net.nodes()[last].layer(), netrepair_nn::Layer::Relu)
                {
                    net = net.truncated(last)?;
                    name.push_str(", final ReLU removed");
                }
                let opts = opts_for(keep_of(&net)?, warm_of(&net)?, None);
                let (row, repaired) = aprnn_table1(&net, &name, &test, &fog, *layer, &opts)?;
                if let Some(dir) = &a.save_dir {
                    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                    let out = dir.join(format!("{stem}_repaired.onnx"));
                    super::args::check_output(&out, &[path.as_path()])?;
                    netrepair_nn::save_onnx(&repaired, &out)
                        .with_context(|| format!("cannot write {}", out.display()))?;
                }
                println!(
                    "{}",
                    markdown(std::slice::from_ref(&row))
                        .lines()
                        .last()
                        .unwrap_or_default()
                );
                rows.push(row);
                write_json(&rows)?;
            }
            println!("\nAPRNN (seed 000, Table 1; Gurobi, 32 cores): 3x100 drawdown 1.28 pp, generalisation 31.53 pp, 5 s");
            if let Some(p) = &a.markdown_out {
                std::fs::write(p, markdown(&rows))
                    .with_context(|| format!("cannot write {}", p.display()))?;
            }
            return Ok(());
        }
        other => bail!("unknown --protocol '{other}' (errors, aprnn)"),
    }
    let mut rows = Vec::new();
    println!("{}", markdown(&[]).trim_end());
    for path in &nets {
        let net = super::args::load_net(path)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (keep, warm) = (keep_of(&net)?, warm_of(&net)?);
        for set in &sets {
            let opts = opts_for(keep.clone(), warm.clone(), *set);
            rows.extend(repair_errors(&net, &name, &test, &opts, |r| {
                let t = markdown(std::slice::from_ref(r));
                println!("{}", t.lines().last().unwrap_or_default());
            })?);
            write_json(&rows)?;
        }
    }
    if let Some(p) = &a.markdown_out {
        std::fs::write(p, markdown(&rows))
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// Runs the benchmark the arguments name.
pub fn run(a: &BenchArgs) -> Result<()> {
    let (benchmarks, net, batch, repeats, json_out, json) = match &a.what {
        BenchWhat::Repair(r) => return run_repair(r),
        BenchWhat::Acas(r) => return run_acas(r),
        BenchWhat::Robust(r) => return run_robust(r),
        BenchWhat::Irepair(r) => return super::bench_irepair::run(r),
        BenchWhat::Informed(r) => return super::bench_informed::run(r),
        BenchWhat::Reglo(r) => return super::bench_reglo::run(r),
        BenchWhat::Lp(r) => return run_lp(r),
        BenchWhat::Forward {
            benchmarks,
            net,
            batch,
            repeats,
            json_out,
            json,
        } => (benchmarks, net, batch, repeats, json_out, json),
    };

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

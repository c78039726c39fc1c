//! `netrepair repair`: fix what a network gets wrong with a provable LP-based method, export
//! the repaired network as a drop-in ONNX replacement and report what changed.
//!
//! Exit codes: 0 every item repaired and confirmed by the independent re-check ("proved"),
//! 1 no repair found or not every item confirmed, 2 error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use netrepair_experiments::cli::args::{optimizer, OptimizerName};
use netrepair_lp::Method;
use netrepair_nn::Network;
use netrepair_repair::{
    affine_layers, resolve_layer, Aprnn, AtLayer, CorrectLoss, GradientOptions, GradientRepair,
    Informed, KeepSet, LabelledSet, LayerSearch, Locking, LpDump, LpRepairOptions, Mm, Pft,
    Prepared, Race, Refereed, Repair, RepairContext, RepairItem, RepairOutcome, RepairProblem,
    WarmOptions, WarmStart, APRNN_DELTA_BOUND, DEFAULT_HEURISTIC, RANK_MAX_PARAMS,
};
use netrepair_repair::{
    check_certificate_dir, finish_warm_start, proved_by_fine_tuning, write_certificate,
};
use netrepair_spec::read_vnnlib;
use netrepair_verify::{CheckOptions, PgdOptions};
use serde::Serialize;

use crate::util;
use netrepair_experiments::cli::global::{reglo_problem, GlobalArgs};
use netrepair_experiments::cli::keep::{self, Keep, KeepArgs, KeepSource};
use netrepair_experiments::cli::points::{
    labelled_npy, misclassified, read_polytopes, PointSource,
};

/// The repair methods of this command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodName {
    /// Architecture-preserving provable repair: points, V-polytopes, small boxes (one LP over
    /// a fixed activation pattern).
    Aprnn,
    /// Provable editing over input sets (boxes, VNN-LIB properties) by parametric linear
    /// relaxation, with input splitting.
    Prepared,
    /// I-REPAIR: gradient steps on the parameters that influence the repair set more than the
    /// correct set (points only; no guarantee beyond the re-checked points).
    Irepair,
    /// I-REPAIR+ (ours): I-REPAIR's locking with the correct set kept by its original logits
    /// and by synthetic points between its samples, raced over two weights of that term and
    /// against I-REPAIR as published; the first to fix every point wins (fewest steps, so
    /// the least-moved network). Fine-tuning is the fallback when none finishes. With a
    /// validation slice (drawn with --dataset; --validation-size 0 for none) that race is
    /// refereed against APRNN's last-layer LP keeping the correct set: the repair that
    /// changes the fewest predictions on the slice wins.
    IrepairPlus,
    /// Fine-tuning ("retraining") on the correct set plus the unfixed repair points.
    Finetune,
    /// Fine-tuning with each parameter frozen with probability --lock-prob in each step.
    RandomLock,
    /// Provable fine-tuning: fine-tune on property counterexamples (DL2-style penalty),
    /// verify, repeat until the verifier proves every --spec.
    Pft,
    /// REGLO: global robustness (--global-robustness --delta) or individual fairness
    /// (--fairness --sensitive) over a region, by a minimal change of the last layer's weight;
    /// proved where the sound bound VB over the whole region is at most --eps.
    Reglo,
    /// MM repair (seed 001's baseline, Goldberger et al.): the minimal change of the last
    /// layer's weight (L-inf, or --mm-norm l1) that fixes every labelled point, by binary
    /// search on the bound.
    Mm,
}

impl MethodName {
    /// The name as the command line writes it.
    fn label(self) -> String {
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_string())
    }

    fn is_gradient(self) -> bool {
        matches!(
            self,
            MethodName::Irepair
                | MethodName::IrepairPlus
                | MethodName::Finetune
                | MethodName::RandomLock
                | MethodName::Pft
        )
    }
}

/// I-REPAIR's correct-set influence loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CorrectLossName {
    /// Mean of sum_i |y_i| (the paper's choice).
    Magnitude,
    /// Cross-entropy.
    CrossEntropy,
}

/// LP algorithm choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LpAlgorithm {
    /// HiGHS decides.
    Choose,
    /// Dual simplex.
    Simplex,
    /// Interior point.
    Ipm,
    /// PDLP, a first-order method for very large LPs (lower accuracy).
    Pdlp,
}

/// Repair a network so that given points, polytopes or VNN-LIB properties hold, provably.
///
/// Repair items come from --inputs/--labels (labelled points), --misclassified (points a data
/// split gets wrong), --spec (VNN-LIB properties) and --polytopes (JSON); they can be mixed.
/// The edited parameters are the weight of the start layer (--layer) and the biases of it and
/// every later Linear/Conv layer. The result is re-checked independently (f64 forward pass for
/// points and polytopes, the sound verifier for properties) before it is called proved.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The network (ONNX).
    #[arg(long)]
    net: PathBuf,
    /// Repair method.
    #[arg(long, value_enum, default_value = "aprnn")]
    method: MethodName,
    /// Start layer: an index among the Linear/Conv layers (0 = first, -1 = last), a node name,
    /// "auto" or "auto=HEURISTIC". "auto" with a validation slice (drawn with the keep set
    /// from --dataset/--keep-data) repairs at every layer, from the last backwards (each LP
    /// limited to --lp-timeout, default 300 s), and keeps the proved one with the least
    /// drawdown on the slice; every layer tried is reported. Without a slice, and with
    /// "auto=HEURISTIC", the layers are tried in the order a layer-selection heuristic scores
    /// them (see `netrepair analyze`) until one is proved (points), or from the last layer
    /// backwards (properties).
    #[arg(long, default_value = "-1", allow_hyphen_values = true)]
    layer: String,
    #[command(flatten)]
    points: PointSource,
    #[command(flatten)]
    global: GlobalArgs,
    /// A VNN-LIB property that must hold after the repair (repeatable).
    #[arg(long)]
    spec: Vec<PathBuf>,
    /// V-polytopes (JSON): [{"vertices": [[...], ...], "label": 3}] or with "lower"/"upper"
    /// output bounds instead of "label".
    #[arg(long)]
    polytopes: Option<PathBuf>,
    #[command(flatten)]
    keep: KeepArgs,
    /// APRNN, PREPARED: fine-tune the whole network first on the repair points (and each
    /// property's box centre and attack counterexamples, by --warm-margin) and this many
    /// correctly classified samples of --keep-split (drawn like the keep set, never from the
    /// validation slice), then let the LP method finish and prove the repair on the
    /// fine-tuned network; the result is re-checked from the original network. Every layer
    /// moves, so the change is not one layer's; on mnist-net_256x2's 100 test errors it costs
    /// a fraction of the one-layer repair's accuracy (docs/repair.md). Default: off with a
    /// given --layer; under --layer auto with a validation slice, one more candidate (10,000
    /// samples, then the last layer's LP), ranked with the layers. 0: off.
    #[arg(long)]
    warm_start: Option<usize>,
    /// Warm start: most optimiser steps (Adam; each takes 256 training samples and every
    /// repair point).
    #[arg(long, default_value_t = 2000)]
    warm_steps: usize,
    /// Warm start: learning rate.
    #[arg(long, default_value_t = 1e-4)]
    warm_lr: f64,
    /// Warm start: the margin (in the requirements' units, logits for classifiers) by which
    /// fine-tuning asks each property to hold at its box centre and at the counterexamples
    /// its attack rounds find, so that the LP's sound bounds have room (3 on resnet_2b's
    /// eps 0.008 balls, docs/repair.md).
    #[arg(long, default_value_t = 1.0)]
    warm_margin: f64,
    /// Warm start: weight of a term keeping the training samples' original logits beside
    /// their cross-entropy (0: cross-entropy alone).
    #[arg(long, default_value_t = 0.0)]
    warm_keep_logits: f64,
    /// Warm start: weight of the training samples' cross-entropy (0 with --warm-keep-logits:
    /// they only keep their original logits).
    #[arg(long, default_value_t = 1.0)]
    warm_label_weight: f64,
    /// Warm start: share of each step's loss that the repair requirements have, in (0, 1].
    #[arg(long, default_value_t = 0.5)]
    warm_repair_share: f64,
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
    /// Where to write the repaired network (ONNX; never over the input).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where to write the report (JSON).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Also write a certificate to this new folder: a VNN-COMP benchmark (the repaired ONNX,
    /// one VNN-LIB property per proved point, property case and kept property, an
    /// instances.csv and a README) that any VNN-COMP verifier can re-check, e.g.
    /// `netrepair verify --instances DIR/instances.csv`. Needs --out.
    #[arg(long)]
    certificate: Option<PathBuf>,
    /// Bound on every parameter change's absolute value (default: 3 for APRNN, as its
    /// reference implementation; none for PREPARED; "inf" for none).
    #[arg(long)]
    delta_bound: Option<f64>,
    /// REGLO: the largest allowed change of the output over the region (required). Only REGLO
    /// takes it; the LP methods' requirement margin is --lp-margin.
    #[arg(long)]
    eps: Option<f64>,
    /// APRNN, PREPARED, MM: the margin by which the LP enforces each requirement (absorbs the
    /// f32 rounding of the written network).
    #[arg(long, default_value_t = 1e-3)]
    lp_margin: f64,
    /// Time limit of each LP, seconds.
    #[arg(long)]
    lp_timeout: Option<f64>,
    /// Solver threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Write every LP the repair solves into this folder (`NNN-<purpose>.mps`, in solve
    /// order) before solving it: to compare solvers on it (`bench lp`) or keep it.
    #[arg(long)]
    dump_lp: Option<PathBuf>,
    /// LP algorithm (default: interior point for APRNN and REGLO, HiGHS's choice for PREPARED).
    #[arg(long, value_enum)]
    lp_method: Option<LpAlgorithm>,
    /// APRNN: at a point (not a vertex of a larger box or polytope), an active ReLU's output
    /// with more terms than this gets its own LP variable (the next layer reads it in every
    /// row): APRNN's 3x100 fog LP solves in 13-14 s instead of 17-20 s (docs/lp.md).
    #[arg(long, default_value_t = 4)]
    relu_max_terms: usize,
    /// APRNN: solve the repair LP by column generation over the edited weight when it has more
    /// entries than N (0: always): the same optimum, in rounds that open only the weight
    /// entries the optimum's prices ask for. Off by default: measured slower than one LP on
    /// the project's LPs so far (docs/lp.md).
    #[arg(long, value_name = "N")]
    column_generation_above: Option<usize>,
    /// APRNN: write each weight delta as p - q straight into the LP's rows (one column and one
    /// row less per entry, more non-zeros). Same optimum; the 3x100 fog LP 15% faster,
    /// infeasible LPs slower (docs/lp.md).
    #[arg(long)]
    split_deltas: bool,
    /// APRNN: run the interior point's crossover to a vertex (off by default, as APRNN's
    /// reference: the interior optimum spreads the change over more entries). Same objective;
    /// with --split-deltas the 3x100 fog LP takes 13.9 s instead of 15.4-16.1 s (docs/lp.md).
    #[arg(long)]
    crossover: bool,
    /// APRNN, and PREPARED at the last layer: how the kept points' output changes enter the
    /// objective: linf:WEIGHT (their largest change, weighted, a separate L-inf term;
    /// measured best for APRNN), moments:WEIGHT (a bound on their RMS change from the
    /// second moments of their inputs: a few rows per output however many points are kept),
    /// joint (inside APRNN's L-inf + L1/n with the repair points'), l1:WEIGHT (their mean
    /// absolute change), off (held by their class constraints only).
    #[arg(long, default_value = "linf:1")]
    keep_objective: netrepair_repair::KeepObjective,
    /// PREPARED at the last layer: how a region's original requirement directions are bounded
    /// beside the box of the last hidden layer: linear (back-substitution, the verifier's
    /// bounds), lp (also the LP relaxation of the network below: tighter, one LP per
    /// direction and region), alpha (optimised ReLU slopes for the region's bounds and each
    /// direction: tighter than lp), off (the box alone).
    #[arg(long, default_value = "linear")]
    cuts: netrepair_repair::Cuts,
    /// APRNN: split each property box this many times before taking its corners.
    #[arg(long, default_value_t = 0)]
    box_splits: usize,
    /// PREPARED: rounds of input splitting after an infeasible LP.
    #[arg(long, default_value_t = 6)]
    split_rounds: usize,
    /// Time limit of the verifier for each property re-check, seconds.
    #[arg(long, default_value_t = 60.0)]
    verify_timeout: f64,
    /// With --misclassified: also keep this many correctly classified samples of the same
    /// split (spread over the classes); the gradient methods' correct set of seed 001's
    /// protocol. They join the keep set.
    #[arg(long)]
    correct_size: Option<usize>,
    /// I-REPAIR: weight of the correct set's influence (0: plain fine-tuning).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    gamma: f64,
    /// I-REPAIR: the correct set's influence loss.
    #[arg(long, value_enum, default_value = "magnitude")]
    correct_loss: CorrectLossName,
    /// Gradient methods: learning rate (default 1e-4; pft 1e-3).
    #[arg(long)]
    lr: Option<f64>,
    /// PFT: verify-and-train rounds at most.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// PFT: optimiser steps per round at most.
    #[arg(long, default_value_t = 200)]
    steps_per_round: usize,
    /// MM: the norm of the last-layer change.
    #[arg(long, default_value = "linf")]
    mm_norm: String,
    /// MM: the largest bound the binary search starts from.
    #[arg(long, default_value_t = 10.0)]
    mm_max_bound: f64,
    /// Gradient methods: most optimiser steps.
    #[arg(long, default_value_t = 5000)]
    max_iters: usize,
    /// Gradient methods: train only on the repair points still wrong (the default trains on
    /// all of them, as the I-REPAIR reference code does).
    #[arg(long)]
    unfixed_only: bool,
    /// Gradient methods: the correct set's training term: `ce` (cross-entropy, the reference
    /// code's), `logits` or `logits:W` (W times the squared change of the original logits).
    #[arg(long, default_value = "ce")]
    correct_term: String,
    /// Gradient methods: synthetic keep points (mixtures of pairs of correct-set samples)
    /// whose original logits the loss preserves.
    #[arg(long, default_value_t = 0)]
    mixup: usize,
    /// Gradient methods: optimiser (default rmsprop; pft adam).
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerName>,
    /// Gradient methods: a point counts as fixed when its true class's softmax probability
    /// beats every other by more than this.
    #[arg(long, default_value_t = 0.0)]
    margin: f64,
    /// Random locking: probability that a parameter is frozen in a step.
    #[arg(long, default_value_t = 0.5)]
    lock_prob: f64,
    /// Gradient methods: seed (random locking).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// The repair items and the points --correct-size draws from the repair split.
fn problem(a: &RepairArgs, net: &Network) -> Result<(RepairProblem, LabelledSet)> {
    let mut items = Vec::new();
    let mut correct = LabelledSet::default();
    if let (Some(xp), Some(lp)) = (&a.points.inputs, &a.points.labels) {
        let (flat, labels) = labelled_npy(net, xp, lp)?;
        items.extend(
            RepairProblem::from_labels(&flat, &labels, net.input_len(), net.output_len())
                .with_context(|| format!("repair set {}", xp.display()))?
                .items,
        );
    }
    if let Some(n) = a.points.misclassified {
        let (p, c) = misclassified(&a.points, a.correct_size, net, n)?;
        items.extend(p.items);
        correct = c;
    } else if a.correct_size.is_some() {
        bail!("--correct-size draws the correct set from --misclassified's data set; give --correct-inputs/--correct-labels otherwise");
    }
    for path in &a.spec {
        let property = read_vnnlib(path)
            .with_context(|| format!("cannot read property {}", path.display()))?;
        items.push(RepairItem::Property {
            name: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            property,
        });
    }
    if let Some(p) = &a.polytopes {
        items.extend(read_polytopes(p, net.output_len())?);
    }
    if items.is_empty() {
        bail!("nothing to repair: give --inputs/--labels, --misclassified, --spec or --polytopes");
    }
    let problem = RepairProblem::new(items);
    problem.validate(net.input_len(), net.output_len())?;
    Ok((problem, correct))
}

/// The gradient method the arguments name.
/// The gradient method `a` names; `validation` (held-out inputs, may be empty) referees
/// I-REPAIR+ against APRNN's last-layer LP when it is at hand.
fn gradient_method(a: &RepairArgs, validation: &LabelledSet) -> Result<Box<dyn Repair>> {
    if a.method == MethodName::Pft {
        let d = Pft::default();
        return Ok(Box::new(Pft {
            lr: a.lr.unwrap_or(d.lr),
            optimizer: a.optimizer.map_or(d.optimizer, optimizer),
            rounds: a.rounds,
            steps_per_round: a.steps_per_round,
            seed: a.seed,
            ..d
        }));
    }
    let mut m = match a.method {
        MethodName::Irepair => GradientRepair {
            locking: Locking::Influence {
                gamma: a.gamma,
                correct_loss: match a.correct_loss {
                    CorrectLossName::Magnitude => CorrectLoss::Magnitude,
                    CorrectLossName::CrossEntropy => CorrectLoss::CrossEntropy,
                },
            },
            ..GradientRepair::finetune()
        },
        MethodName::RandomLock => GradientRepair::random_lock(a.lock_prob),
        _ => GradientRepair::finetune(),
    };
    let d = GradientOptions::default();
    m.options = GradientOptions {
        lr: a.lr.unwrap_or(d.lr),
        max_iters: a.max_iters,
        optimizer: a.optimizer.map_or(d.optimizer, optimizer),
        margin: a.margin,
        seed: a.seed,
        all_repair_points: !a.unfixed_only,
        correct_term: a.correct_term.parse()?,
        mixup: a.mixup,
        mixup_fresh: false,
    };
    if a.method == MethodName::IrepairPlus {
        if a.correct_term != "ce" || a.mixup != 0 {
            bail!("--method irepair-plus sets the correct-set term and the synthetic points itself; leave out --correct-term and --mixup");
        }
        if validation.is_empty() {
            return Ok(Box::new(Race::irepair_plus(a.gamma, &m.options)));
        }
        return Ok(Box::new(Refereed::irepair_plus(
            a.gamma,
            &m.options,
            validation.inputs.clone(),
        )));
    }
    Ok(Box::new(m))
}

/// Training samples of the warm-start candidate `--layer auto` adds (`--warm-start`).
const DEFAULT_WARM_START: usize = 10_000;

/// The LP time limit `--layer auto` gives each layer it tries when --lp-timeout is not set.
const AUTO_LAYER_LP_LIMIT_S: f64 = 300.0;

/// The LP method (APRNN or PREPARED) the arguments name, ready to be pointed at a layer;
/// `lp_timeout` limits each LP.
fn layer_method(a: &RepairArgs, lp_timeout: Option<f64>) -> Result<Box<dyn AtLayer>> {
    // The methods check their settings themselves (`check`); `inf` means no bound.
    let delta_bound = match (a.delta_bound, a.method) {
        (Some(b), _) if b == f64::INFINITY => None,
        (Some(b), _) => Some(b),
        (None, MethodName::Aprnn) => Some(APRNN_DELTA_BOUND),
        (None, _) => None,
    };
    let lp = LpRepairOptions {
        layer: None,
        delta_bound,
        eps: a.lp_margin,
        time_limit: lp_timeout.map(Duration::from_secs_f64),
        threads: a.threads.max(1),
        method: match (a.lp_method, a.method) {
            (Some(m), _) => lp_method(m),
            (None, MethodName::Aprnn) => Aprnn::default().lp.method,
            (None, _) => LpRepairOptions::default().method,
        },
        relu_max_terms: a.relu_max_terms,
        column_generation_above: a.column_generation_above.unwrap_or(usize::MAX),
        split_deltas: a.split_deltas,
        ..LpRepairOptions::default()
    };
    Ok(match a.method {
        MethodName::Aprnn => Box::new(Aprnn {
            lp: LpRepairOptions {
                crossover: a.crossover || Aprnn::default().lp.crossover,
                ..lp
            },
            box_splits: a.box_splits,
            keep_objective: a.keep_objective,
            ..Aprnn::default()
        }),
        MethodName::Prepared => Box::new(Prepared {
            lp,
            split_rounds: a.split_rounds,
            keep_objective: a.keep_objective,
            cuts: a.cuts,
            ..Prepared::default()
        }),
        _ => bail!("not a method with a start layer"),
    })
}

/// MM repair as the arguments set it.
fn mm_method(a: &RepairArgs) -> Result<Box<dyn Repair>> {
    Ok(Box::new(Mm {
        norm: a.mm_norm.parse()?,
        max_bound: a.mm_max_bound,
        margin: a.lp_margin,
        lp_method: a.lp_method.map_or(Method::Simplex, lp_method),
        lp_time_limit: a.lp_timeout.map(Duration::from_secs_f64),
        ..Mm::default()
    }))
}

fn lp_method(m: LpAlgorithm) -> Method {
    match m {
        LpAlgorithm::Choose => Method::Choose,
        LpAlgorithm::Simplex => Method::Simplex,
        LpAlgorithm::Ipm => Method::Ipm,
        LpAlgorithm::Pdlp => Method::Pdlp,
    }
}

/// Writes the network and checks the file holds exactly the parameters that were verified.
fn export(repaired: &Network, out: &Path) -> Result<()> {
    netrepair_nn::save_onnx(repaired, out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let back = util::load_net(out)?;
    for id in repaired.param_ids() {
        let (a, b) = (repaired.param(id)?.to_vec()?, back.param(id)?.to_vec()?);
        if a != b {
            bail!(
                "the exported file stores parameter '{}' differently from the verified network",
                repaired.param(id)?.name()
            );
        }
    }
    Ok(())
}

/// The keep set's lines of the summary.
fn print_keep(r: &RepairOutcome, source: &KeepSource) {
    let Some(k) = &r.keep else {
        if source.source == "none" && r.global().is_empty() {
            println!("keep set: none (nothing protects other inputs: give --dataset or --keep to keep correctly classified samples)");
        }
        return;
    };
    println!(
        "keep set ({}{}): {} of {} kept points classified as labelled after the repair (before: {})",
        source.source,
        source
            .dataset
            .as_ref()
            .map_or(String::new(), |d| format!(", {d}")),
        k.correct_after,
        k.points,
        k.correct_before
    );
    if k.regions > 0 {
        println!(
            "  kept regions: {} of {} proved after the repair",
            k.regions_proved, k.regions
        );
        for d in &k.regions_detail {
            println!("    {d}");
        }
    }
}

/// The JSON report (`--report`, `--json`): the outcome's fields, then what the command adds.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    outcome: &'a RepairOutcome,
    /// The network repaired.
    network: &'a Path,
    /// The repaired network's file (`null` when none was written).
    output: Option<&'a Path>,
    /// The certificate folder (`--certificate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertificateReport<'a>>,
    /// REGLO: the seed's metric names at the top level (the first global item, after).
    #[serde(rename = "VB", skip_serializing_if = "Option::is_none")]
    vb: Option<f64>,
    #[serde(rename = "PGD_B", skip_serializing_if = "Option::is_none")]
    pgd_b: Option<f64>,
    #[serde(rename = "PGD_R", skip_serializing_if = "Option::is_none")]
    pgd_r: Option<f64>,
    /// Where the keep set came from.
    keep_source: &'a KeepSource,
}

/// What `--certificate` wrote.
#[derive(Serialize)]
struct CertificateReport<'a> {
    /// The folder (`null` when nothing proved could be stated in VNN-LIB).
    folder: Option<&'a Path>,
    properties: usize,
    left_out: &'a [String],
}

pub fn run(a: &RepairArgs) -> Result<u8> {
    // Every file the repair reads; what it writes must be none of them, and writable now
    // rather than after a long repair.
    let inputs: Vec<&Path> = std::iter::once(a.net.as_path())
        .chain(a.points.inputs.as_deref())
        .chain(a.points.labels.as_deref())
        .chain(a.spec.iter().map(PathBuf::as_path))
        .chain(a.polytopes.as_deref())
        .chain(a.keep.keep.as_deref())
        .chain(a.keep.keep_labels.as_deref())
        .collect();
    for out in a.out.iter().chain(&a.report) {
        util::check_output(out, &inputs)?;
    }
    if let (Some(out), Some(rep)) = (&a.out, &a.report) {
        if out == rep {
            bail!("--out and --report name the same file {}", out.display());
        }
    }
    if let Some(dir) = &a.certificate {
        if a.out.is_none() {
            bail!(
                "--certificate needs --out (the certificate holds the repaired network as written)"
            );
        }
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if inputs.iter().any(|i| canon(i).starts_with(canon(dir))) {
            bail!(
                "the certificate folder {} holds an input file (give a new folder)",
                dir.display()
            );
        }
        check_certificate_dir(dir)?;
    }
    let net = util::load_net(&a.net)?;
    let mut reglo = None;
    let (problem, correct) = if a.method == MethodName::Reglo {
        if a.points.inputs.is_some()
            || a.points.misclassified.is_some()
            || !a.spec.is_empty()
            || a.polytopes.is_some()
        {
            bail!("--method reglo repairs one global property (--fairness or --global-robustness); --inputs, --misclassified, --spec and --polytopes are for the other methods");
        }
        let (p, mut r) =
            reglo_problem(&a.global, a.eps, &a.points, a.seed, a.verify_timeout, &net)?;
        if let Some(m) = a.lp_method {
            r.lp_method = Some(lp_method(m));
        }
        r.lp_time_limit = a.lp_timeout.map(Duration::from_secs_f64);
        reglo = Some(r);
        if a.keep.keep.is_some() {
            bail!("--method reglo keeps the decisions of --dataset samples (--keep-samples N, --no-keep), not a --keep file");
        }
        (p, LabelledSet::default())
    } else {
        if a.global.fairness || a.global.global_robustness {
            bail!("--fairness and --global-robustness need --method reglo");
        }
        if a.eps.is_some() {
            bail!("--eps is REGLO's bound on the output change; the LP methods' requirement margin is --lp-margin");
        }
        problem(a, &net)?
    };
    let Keep {
        set: keep_set,
        validation,
        source: keep_source,
    } = if reglo.is_some() {
        // REGLO's keep set (the decisions of --dataset samples) is already in the problem.
        let set = if a.keep.no_keep {
            KeepSet::default()
        } else {
            problem.keep.clone()
        };
        Keep {
            source: KeepSource {
                source: if set.is_empty() {
                    "none"
                } else {
                    "data set decisions"
                }
                .into(),
                dataset: a.points.dataset.clone().filter(|_| !set.is_empty()),
                points: set.points.inputs.len(),
                validation: 0,
            },
            set,
            validation: LabelledSet::default(),
        }
    } else {
        keep::build(
            &a.keep,
            &a.points,
            &net,
            correct,
            reglo.is_none(),
            &problem
                .items
                .iter()
                .filter_map(|i| match i {
                    RepairItem::Point { x, .. } => Some(x.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )?
    };
    let problem = problem.with_keep(keep_set);
    if reglo.is_none() {
        problem.validate(net.input_len(), net.output_len())?;
    }
    if !problem.keep.regions.is_empty() && a.method == MethodName::Aprnn {
        bail!("APRNN keeps points only; kept regions need --method prepared");
    }
    let affine = affine_layers(&net);
    // Methods that are not pointed at a start layer.
    let any_layer = a.method.is_gradient() || reglo.is_some() || a.method == MethodName::Mm;
    // `--layer auto` with a validation slice and a point problem: try every layer, keep the
    // proved one with the least drawdown on the slice.
    let rank_layers = a.layer == "auto" && !validation.is_empty() && !any_layer;
    let search = if any_layer {
        None
    } else if rank_layers {
        Some(LayerSearch::Rank {
            validation: validation.clone(),
            max_params: RANK_MAX_PARAMS,
        })
    } else if let Some(rest) = a.layer.strip_prefix("auto") {
        let name = match rest {
            "" => DEFAULT_HEURISTIC,
            r => r
                .strip_prefix('=')
                .with_context(|| format!("--layer {}: write auto or auto=HEURISTIC", a.layer))?,
        };
        Some(LayerSearch::Heuristic {
            heuristic: name.parse()?,
            seed: a.seed,
        })
    } else {
        None
    };
    let layer = match (any_layer, &search) {
        (false, None) => Some(resolve_layer(&net, &a.layer)?),
        _ => None,
    };
    let pb = std::sync::Arc::new(crate::util::Status::new());
    let pb2 = pb.clone();
    let ctx = RepairContext {
        check: CheckOptions {
            timeout: Duration::from_secs_f64(a.verify_timeout.max(0.001)),
            pgd: PgdOptions::default(),
            ..CheckOptions::default()
        },
        progress: Some(Box::new(move |m: &str| pb2.say(m))),
        lp_dump: a.dump_lp.as_ref().map(LpDump::new).transpose()?,
    };
    // The warm start: under `--layer auto` one more candidate (fine-tune, then the last
    // layer's LP); with a given layer, fine-tune once and repair the fine-tuned network. The
    // outcome is re-checked from the original network either way.
    let started = std::time::Instant::now();
    let warm_n = match a.warm_start {
        Some(n) => n,
        None if rank_layers => DEFAULT_WARM_START,
        None => 0,
    };
    if warm_n > 0 && !matches!(a.method, MethodName::Aprnn | MethodName::Prepared) {
        bail!("--warm-start runs before an LP method: use it with --method aprnn or prepared");
    }
    let warm_train = if warm_n > 0 {
        pb.say(&format!("drawing {warm_n} samples for the warm start"));
        Some(keep::draw_training(&a.keep, &a.points, &net, warm_n)?)
    } else {
        None
    };
    let warm_options = WarmOptions {
        lr: a.warm_lr,
        max_steps: a.warm_steps,
        seed: a.seed,
        property_margin: a.warm_margin,
        keep_logits: a.warm_keep_logits,
        label_weight: a.warm_label_weight,
        repair_share: a.warm_repair_share,
        train_from: a.warm_train_from,
        sound_tail: !a.warm_attacks_only,
        tail_margin: a.warm_tail_margin,
        ..WarmOptions::default()
    };
    let warm = match (&warm_train, rank_layers) {
        (Some(train), false) => {
            pb.say(&format!("warm start on {} samples", train.len()));
            Some(warm_options.fine_tune(&net, &problem, train, &ctx)?)
        }
        _ => None,
    };
    // A fine-tuned network that already passes the re-check needs no LP stage.
    let warm_proved = match &warm {
        Some((tuned, report)) => {
            pb.say("re-checking the fine-tuned network");
            proved_by_fine_tuning(&net, tuned, report, &problem, &ctx, started)?
        }
        None => None,
    };
    let base = warm.as_ref().map_or(&net, |(tuned, _)| tuned);
    let best = if warm_proved.is_some() {
        None
    } else {
        let m: Box<dyn Repair> = if let Some(r) = &reglo {
            Box::new(r.clone())
        } else if a.method.is_gradient() {
            gradient_method(a, &validation)?
        } else if a.method == MethodName::Mm {
            mm_method(a)?
        } else if let Some(search) = search {
            let limit = if rank_layers {
                a.lp_timeout.or(Some(AUTO_LAYER_LP_LIMIT_S))
            } else {
                a.lp_timeout
            };
            let at = layer_method(a, limit)?;
            let mut extra: Vec<(usize, Box<dyn Repair>)> = Vec::new();
            if let (Some(train), true) = (warm_train, rank_layers) {
                let last = *affine
                    .last()
                    .context("the network has no affine layer to edit")?;
                extra.push((
                    last,
                    Box::new(WarmStart {
                        train,
                        options: warm_options.clone(),
                        then: at.at_layer(last),
                    }),
                ));
            }
            Box::new(Informed {
                method: at,
                search,
                extra,
            })
        } else {
            let node = layer.context("a start layer")?;
            pb.say(&format!(
                "{} at '{}'",
                a.method.label(),
                net.nodes()[node].name()
            ));
            layer_method(a, a.lp_timeout)?.at_layer(node)
        };
        Some(m.repair(base, &problem, &ctx)?)
    };
    pb.finish();
    let r = match (warm_proved, warm) {
        (Some(r), _) => r,
        (None, Some((_, report))) => {
            let r = best.expect("at least one layer tried");
            finish_warm_start(&net, report, r, &problem, &ctx, started)?
        }
        (None, None) => best.expect("at least one layer tried"),
    };
    let wrote = match (&a.out, r.status) {
        (
            Some(out),
            netrepair_repair::RepairStatus::Proved | netrepair_repair::RepairStatus::Unconfirmed,
        ) => {
            export(&r.network, out)?;
            Some(out.clone())
        }
        _ => None,
    };
    let certified = match (&a.certificate, &wrote) {
        (Some(dir), Some(onnx)) => Some((dir, write_certificate(dir, &problem, &r, onnx, &a.net)?)),
        _ => None,
    };
    let global = r.global().first();
    let report = Report {
        outcome: &r,
        network: &a.net,
        output: wrote.as_deref(),
        certificate: certified.as_ref().map(|(dir, w)| CertificateReport {
            folder: (w.properties > 0).then_some(dir.as_path()),
            properties: w.properties,
            left_out: &w.left_out,
        }),
        vb: global.map(|g| g.vb_after),
        pgd_b: global.map(|g| g.pgd_b_after),
        pgd_r: global.map(|g| g.pgd_r_after),
        keep_source: &keep_source,
    };
    if let Some(path) = &a.report {
        let tmp = tempfile::NamedTempFile::new_in(
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
        serde_json::to_writer_pretty(tmp.as_file(), &report)?;
        tmp.persist(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let search = r.layer_search.as_ref();
        if let Some(rank) = search.and_then(|s| s.ranking.as_ref()) {
            println!(
                "--layer auto: every layer tried, ranked by proof, then accuracy on a validation slice of {} samples ({:.2}% before):",
                search.map_or(0, |s| s.validation),
                100.0 * rank.accuracy_before
            );
            for (i, t) in rank.trials.iter().enumerate() {
                println!(
                    "  {} {:<24} {:<12} repaired {:>5.1}%  validation {:>6.2}%  {:>7.2} s",
                    if i == rank.best { "*" } else { " " },
                    t.layer,
                    format!("{:?}", t.status).to_lowercase(),
                    100.0 * t.efficacy,
                    100.0 * t.accuracy,
                    t.time_s
                );
            }
            for s in search.map_or(&[][..], |s| &s.skipped) {
                println!(
                    "    {:<24} not tried: {} parameters (more than {RANK_MAX_PARAMS}; its LP is too large to rank), --layer {} edits it",
                    s.layer, s.params, s.layer
                );
            }
        }
        print!("{}", r.summary(affine.len()));
        if let Some(w) = &r.warm_start {
            println!(
                "warm start: {} steps on {} training samples ({:.2}% -> {:.2}% of them right), {} of {} points met after ({} before), {:.1} s",
                w.steps,
                w.train_samples,
                100.0 * w.train_accuracy_before,
                100.0 * w.train_accuracy_after,
                w.met_after,
                w.points,
                w.met_before,
                w.seconds
            );
        }
        print_keep(&r, &keep_source);
        match (&wrote, &a.out) {
            (Some(p), _) => println!(
                "wrote {} (its parameters re-read and identical to the re-checked network)",
                p.display()
            ),
            (None, Some(p)) => println!("{} not written: no repaired network", p.display()),
            _ => {}
        }
        match (&certified, &a.certificate) {
            (Some((dir, w)), _) if w.properties == 0 => {
                println!(
                    "certificate {} not written: nothing proved can be stated in VNN-LIB",
                    dir.display()
                );
                for l in &w.left_out {
                    println!("  {l}");
                }
            }
            (Some((dir, w)), _) => {
                println!(
                    "certificate: {} VNN-LIB properties in {} (check: netrepair verify --instances {})",
                    w.properties,
                    dir.display(),
                    dir.join("instances.csv").display()
                );
                for l in &w.left_out {
                    println!("  not in the certificate: {l}");
                }
            }
            (None, Some(dir)) => println!("{} not written: no repaired network", dir.display()),
            _ => {}
        }
    }
    Ok(if r.proved { 0 } else { 1 })
}

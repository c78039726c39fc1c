//! The repair methods of `netrepair repair` as the command line names and sets them: the
//! method names, the flags of each family (shown under their own heading in `--help`) and the
//! one place that turns them into a library [`Repair`] value.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, ValueEnum};
use netrepair_lp::Method;
use netrepair_repair::{
    Aprnn, AtLayer, CorrectLoss, GradientOptions, GradientRepair, LabelledSet, LayerSearch,
    Locking, LpRepairOptions, Mm, Pft, Prepared, Race, Refereed, Repair, WarmOptions,
    APRNN_DELTA_BOUND, DEFAULT_HEURISTIC, RANK_MAX_PARAMS,
};

use super::args::{optimizer, OptimizerName};

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
    pub fn label(self) -> String {
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_string())
    }

    /// Whether the method trains by gradient steps (every layer moves).
    pub fn is_gradient(self) -> bool {
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

/// HiGHS's algorithm for the name on the command line.
pub fn lp_method(m: LpAlgorithm) -> Method {
    match m {
        LpAlgorithm::Choose => Method::Choose,
        LpAlgorithm::Simplex => Method::Simplex,
        LpAlgorithm::Ipm => Method::Ipm,
        LpAlgorithm::Pdlp => Method::Pdlp,
    }
}

/// Settings of the LP methods.
#[derive(Debug, Args)]
#[command(next_help_heading = "LP methods (APRNN, PREPARED, MM)")]
pub struct LpArgs {
    /// Bound on every parameter change's absolute value (default: 3 for APRNN, as its
    /// reference implementation; none for PREPARED; "inf" for none).
    #[arg(long)]
    pub delta_bound: Option<f64>,
    /// APRNN, PREPARED, MM: the margin by which the LP enforces each requirement (absorbs the
    /// f32 rounding of the written network).
    #[arg(long, default_value_t = 1e-3)]
    pub lp_margin: f64,
    /// Time limit of each LP, seconds.
    #[arg(long)]
    pub lp_timeout: Option<f64>,
    /// Solver threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Write every LP the repair solves into this folder (`NNN-<purpose>.mps`, in solve
    /// order) before solving it: to compare solvers on it (`bench lp`) or keep it.
    #[arg(long)]
    pub dump_lp: Option<PathBuf>,
    /// LP algorithm (default: interior point for APRNN and REGLO, HiGHS's choice for PREPARED).
    #[arg(long, value_enum)]
    pub lp_method: Option<LpAlgorithm>,
    /// APRNN: at a point (not a vertex of a larger box or polytope), an active ReLU's output
    /// with more terms than this gets its own LP variable (the next layer reads it in every
    /// row): APRNN's 3x100 fog LP solves in 13-14 s instead of 17-20 s (docs/lp.md).
    #[arg(long, default_value_t = 4)]
    pub relu_max_terms: usize,
    /// APRNN: solve the repair LP by column generation over the edited weight when it has more
    /// entries than N (0: always): the same optimum, in rounds that open only the weight
    /// entries the optimum's prices ask for. Off by default: measured slower than one LP on
    /// the project's LPs so far (docs/lp.md).
    #[arg(long, value_name = "N")]
    pub column_generation_above: Option<usize>,
    /// APRNN: write each weight delta as p - q straight into the LP's rows (one column and one
    /// row less per entry, more non-zeros). Same optimum; the 3x100 fog LP 15% faster,
    /// infeasible LPs slower (docs/lp.md).
    #[arg(long)]
    pub split_deltas: bool,
    /// APRNN: run the interior point's crossover to a vertex (off by default, as APRNN's
    /// reference: the interior optimum spreads the change over more entries). Same objective;
    /// with --split-deltas the 3x100 fog LP takes 13.9 s instead of 15.4-16.1 s (docs/lp.md).
    #[arg(long)]
    pub crossover: bool,
    /// APRNN, and PREPARED at the last layer: how the kept points' output changes enter the
    /// objective: linf:WEIGHT (their largest change, weighted, a separate L-inf term;
    /// measured best for APRNN), moments:WEIGHT (a bound on their RMS change from the
    /// second moments of their inputs: a few rows per output however many points are kept),
    /// joint (inside APRNN's L-inf + L1/n with the repair points'), l1:WEIGHT (their mean
    /// absolute change), off (held by their class constraints only).
    #[arg(long, default_value = "linf:1")]
    pub keep_objective: netrepair_repair::KeepObjective,
    /// PREPARED at the last layer: how a region's original requirement directions are bounded
    /// beside the box of the last hidden layer: linear (back-substitution, the verifier's
    /// bounds), lp (also the LP relaxation of the network below: tighter, one LP per
    /// direction and region), alpha (optimised ReLU slopes for the region's bounds and each
    /// direction: tighter than lp), off (the box alone).
    #[arg(long, default_value = "linear")]
    pub cuts: netrepair_repair::Cuts,
    /// APRNN: split each property box this many times before taking its corners.
    #[arg(long, default_value_t = 0)]
    pub box_splits: usize,
    /// PREPARED: rounds of input splitting after an infeasible LP.
    #[arg(long, default_value_t = 6)]
    pub split_rounds: usize,
    /// MM: the norm of the last-layer change.
    #[arg(long, default_value = "linf")]
    pub mm_norm: String,
    /// MM: the largest bound the binary search starts from.
    #[arg(long, default_value_t = 10.0)]
    pub mm_max_bound: f64,
}

/// Settings of the warm start (fine-tuning before an LP method).
#[derive(Debug, Args)]
#[command(next_help_heading = "Warm start (APRNN, PREPARED)")]
pub struct WarmArgs {
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
    pub warm_start: Option<usize>,
    /// Warm start: most optimiser steps (Adam; each takes 256 training samples and every
    /// repair point).
    #[arg(long, default_value_t = 2000)]
    pub warm_steps: usize,
    /// Warm start: learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub warm_lr: f64,
    /// Warm start: the margin (in the requirements' units, logits for classifiers) by which
    /// fine-tuning asks each property to hold at its box centre and at the counterexamples
    /// its attack rounds find, so that the LP's sound bounds have room (3 on resnet_2b's
    /// eps 0.008 balls, docs/repair.md).
    #[arg(long, default_value_t = 1.0)]
    pub warm_margin: f64,
    /// Warm start: weight of a term keeping the training samples' original logits beside
    /// their cross-entropy (0: cross-entropy alone).
    #[arg(long, default_value_t = 0.0)]
    pub warm_keep_logits: f64,
    /// Warm start: weight of the training samples' cross-entropy (0 with --warm-keep-logits:
    /// they only keep their original logits).
    #[arg(long, default_value_t = 1.0)]
    pub warm_label_weight: f64,
    /// Warm start: share of each step's loss that the repair requirements have, in (0, 1].
    #[arg(long, default_value_t = 0.5)]
    pub warm_repair_share: f64,
    /// Warm start: the first affine layer (index, from 0) fine-tuning moves; the layers
    /// before it, and every bound over their features, stay as they are. `auto`: with
    /// properties or kept regions, the first layer of the dense chain that ends the network
    /// (they then train on sound bounds), else 0 (every layer moves).
    #[arg(long, default_value = "auto")]
    pub warm_train_from: netrepair_repair::TrainFrom,
    /// Warm start: train properties and kept regions on attacks even where the layers that
    /// move are a dense chain to the output (by default they train on sound bounds there).
    #[arg(long)]
    pub warm_attacks_only: bool,
    /// Warm start with sound bounds: the margin each property's bound is trained to clear.
    #[arg(long, default_value_t = 0.05)]
    pub warm_tail_margin: f64,
}

impl WarmArgs {
    /// The warm start's settings (`seed` seeds its draws).
    pub fn options(&self, seed: u64) -> WarmOptions {
        WarmOptions {
            lr: self.warm_lr,
            max_steps: self.warm_steps,
            seed,
            property_margin: self.warm_margin,
            keep_logits: self.warm_keep_logits,
            label_weight: self.warm_label_weight,
            repair_share: self.warm_repair_share,
            train_from: self.warm_train_from,
            sound_tail: !self.warm_attacks_only,
            tail_margin: self.warm_tail_margin,
            ..WarmOptions::default()
        }
    }
}

/// Settings of the gradient methods.
#[derive(Debug, Args)]
#[command(
    next_help_heading = "Gradient methods (I-REPAIR, I-REPAIR+, fine-tuning, random locking, PFT)"
)]
pub struct GradientArgs {
    /// I-REPAIR: weight of the correct set's influence (0: plain fine-tuning).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub gamma: f64,
    /// I-REPAIR: the correct set's influence loss.
    #[arg(long, value_enum, default_value = "magnitude")]
    pub correct_loss: CorrectLossName,
    /// Gradient methods: learning rate (default 1e-4; pft 1e-3).
    #[arg(long)]
    pub lr: Option<f64>,
    /// PFT: verify-and-train rounds at most.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// PFT: optimiser steps per round at most.
    #[arg(long, default_value_t = 200)]
    pub steps_per_round: usize,
    /// Gradient methods: most optimiser steps.
    #[arg(long, default_value_t = 5000)]
    pub max_iters: usize,
    /// Gradient methods: train only on the repair points still wrong (the default trains on
    /// all of them, as the I-REPAIR reference code does).
    #[arg(long)]
    pub unfixed_only: bool,
    /// Gradient methods: the correct set's training term: `ce` (cross-entropy, the reference
    /// code's), `logits` or `logits:W` (W times the squared change of the original logits).
    #[arg(long, default_value = "ce")]
    pub correct_term: String,
    /// Gradient methods: synthetic keep points (mixtures of pairs of correct-set samples)
    /// whose original logits the loss preserves.
    #[arg(long, default_value_t = 0)]
    pub mixup: usize,
    /// Gradient methods: optimiser (default rmsprop; pft adam).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerName>,
    /// Gradient methods: a point counts as fixed when its true class's softmax probability
    /// beats every other by more than this.
    #[arg(long, default_value_t = 0.0)]
    pub margin: f64,
    /// Random locking: probability that a parameter is frozen in a step.
    #[arg(long, default_value_t = 0.5)]
    pub lock_prob: f64,
}

/// The methods that read a flag of one family (by its argument id), `None` for an id the
/// family does not have.
type Readers = fn(&str) -> Option<&'static [MethodName]>;

impl LpArgs {
    /// The methods that read the flag `id` (see [`refuse_unread_flags`]).
    pub fn readers(id: &str) -> Option<&'static [MethodName]> {
        use MethodName::*;
        Some(match id {
            "delta_bound" | "threads" | "keep_objective" => &[Aprnn, Prepared],
            "lp_margin" => &[Aprnn, Prepared, Mm],
            "lp_timeout" | "lp_method" => &[Aprnn, Prepared, Mm, Reglo],
            // I-REPAIR+ solves APRNN's LP when it referees.
            "dump_lp" => &[Aprnn, Prepared, Mm, Reglo, IrepairPlus],
            "relu_max_terms"
            | "column_generation_above"
            | "split_deltas"
            | "crossover"
            | "box_splits" => &[Aprnn],
            "cuts" | "split_rounds" => &[Prepared],
            "mm_norm" | "mm_max_bound" => &[Mm],
            _ => return None,
        })
    }
}

impl WarmArgs {
    /// The methods that read the flag `id` (see [`refuse_unread_flags`]).
    pub fn readers(id: &str) -> Option<&'static [MethodName]> {
        use MethodName::*;
        Some(match id {
            "warm_start" | "warm_steps" | "warm_lr" | "warm_margin" | "warm_keep_logits"
            | "warm_label_weight" | "warm_repair_share" | "warm_train_from"
            | "warm_attacks_only" | "warm_tail_margin" => &[Aprnn, Prepared],
            _ => return None,
        })
    }
}

impl GradientArgs {
    /// The methods that read the flag `id` (see [`refuse_unread_flags`]).
    pub fn readers(id: &str) -> Option<&'static [MethodName]> {
        use MethodName::*;
        Some(match id {
            "gamma" => &[Irepair, IrepairPlus],
            "correct_loss" => &[Irepair],
            "lr" | "optimizer" => &[Irepair, IrepairPlus, Finetune, RandomLock, Pft],
            "rounds" | "steps_per_round" => &[Pft],
            "max_iters" | "unfixed_only" | "margin" => {
                &[Irepair, IrepairPlus, Finetune, RandomLock]
            }
            // I-REPAIR+ sets these itself.
            "correct_term" | "mixup" => &[Irepair, Finetune, RandomLock],
            "lock_prob" => &[RandomLock],
            _ => return None,
        })
    }
}

/// Every flag of the method families: its argument id, its long name and who reads it.
fn family_flags() -> Vec<(String, String, Option<&'static [MethodName]>)> {
    let families: [(Command, Readers); 3] = [
        (LpArgs::augment_args(Command::new("lp")), LpArgs::readers),
        (
            WarmArgs::augment_args(Command::new("warm")),
            WarmArgs::readers,
        ),
        (
            GradientArgs::augment_args(Command::new("gradient")),
            GradientArgs::readers,
        ),
    ];
    families
        .iter()
        .flat_map(|(cmd, readers)| {
            cmd.get_arguments().map(move |a| {
                let id = a.get_id().as_str().to_string();
                let long = a.get_long().unwrap_or(&id).to_string();
                let r = readers(&id);
                (id, long, r)
            })
        })
        .collect()
}

/// Refuses a flag of a method family that `method` does not read (it would otherwise be
/// ignored without a word), naming the flag and the methods that read it. `given` holds the
/// `repair` command's parsed arguments; only flags the command line gave are looked at
/// (defaults are not).
pub fn refuse_unread_flags(method: MethodName, given: &ArgMatches) -> Result<()> {
    for (id, long, readers) in family_flags() {
        if given.try_get_raw(&id).is_err()
            || given.value_source(&id) != Some(ValueSource::CommandLine)
        {
            continue;
        }
        let readers = readers.unwrap_or(&[]);
        if !readers.contains(&method) {
            let mut names: Vec<String> = readers.iter().map(|m| m.label()).collect();
            let last = names.pop().unwrap_or_default();
            let names = if names.is_empty() {
                last
            } else {
                format!("{} or {last}", names.join(", "))
            };
            bail!(
                "--{long} is read by --method {names} only; --method {} would ignore it",
                method.label()
            );
        }
    }
    Ok(())
}

/// How `--layer` chooses the start layer of an LP method: with a `validation` slice
/// (`--layer auto` when one was drawn), every layer ranked on it; `auto` or
/// `auto=HEURISTIC` without one, the layers in a heuristic's order; `None` for a given layer.
pub fn layer_search(
    layer: &str,
    validation: Option<&LabelledSet>,
    seed: u64,
) -> Result<Option<LayerSearch>> {
    if let Some(validation) = validation {
        return Ok(Some(LayerSearch::Rank {
            validation: validation.clone(),
            max_params: RANK_MAX_PARAMS,
        }));
    }
    let Some(rest) = layer.strip_prefix("auto") else {
        return Ok(None);
    };
    let name = match rest {
        "" => DEFAULT_HEURISTIC,
        r => r
            .strip_prefix('=')
            .with_context(|| format!("--layer {layer}: write auto or auto=HEURISTIC"))?,
    };
    Ok(Some(LayerSearch::Heuristic {
        heuristic: name.parse()?,
        seed,
    }))
}

/// The LP method `method` (APRNN or PREPARED) with the settings `args`, ready to be pointed at a layer;
/// `lp_timeout` limits each LP.
pub fn layer_method(
    method: MethodName,
    args: &LpArgs,
    lp_timeout: Option<f64>,
) -> Result<Box<dyn AtLayer>> {
    // The methods check their settings themselves (`check`); `inf` means no bound.
    let delta_bound = match (args.delta_bound, method) {
        (Some(b), _) if b == f64::INFINITY => None,
        (Some(b), _) => Some(b),
        (None, MethodName::Aprnn) => Some(APRNN_DELTA_BOUND),
        (None, _) => None,
    };
    let lp = LpRepairOptions {
        layer: None,
        delta_bound,
        eps: args.lp_margin,
        time_limit: lp_timeout.map(Duration::from_secs_f64),
        threads: args.threads.max(1),
        method: match (args.lp_method, method) {
            (Some(m), _) => lp_method(m),
            (None, MethodName::Aprnn) => Aprnn::default().lp.method,
            (None, _) => LpRepairOptions::default().method,
        },
        relu_max_terms: args.relu_max_terms,
        column_generation_above: args.column_generation_above.unwrap_or(usize::MAX),
        split_deltas: args.split_deltas,
        ..LpRepairOptions::default()
    };
    Ok(match method {
        MethodName::Aprnn => Box::new(Aprnn {
            lp: LpRepairOptions {
                crossover: args.crossover || Aprnn::default().lp.crossover,
                ..lp
            },
            box_splits: args.box_splits,
            keep_objective: args.keep_objective,
            ..Aprnn::default()
        }),
        MethodName::Prepared => Box::new(Prepared {
            lp,
            split_rounds: args.split_rounds,
            keep_objective: args.keep_objective,
            cuts: args.cuts,
            ..Prepared::default()
        }),
        _ => bail!("not a method with a start layer"),
    })
}

/// MM repair with the settings `lp`.
pub fn mm_method(lp: &LpArgs) -> Result<Box<dyn Repair>> {
    Ok(Box::new(Mm {
        norm: lp.mm_norm.parse()?,
        max_bound: lp.mm_max_bound,
        margin: lp.lp_margin,
        lp_method: lp.lp_method.map_or(Method::Simplex, lp_method),
        lp_time_limit: lp.lp_timeout.map(Duration::from_secs_f64),
        ..Mm::default()
    }))
}

/// The gradient method `method` with the settings `g`; `validation` (held-out inputs, may be empty) referees
/// I-REPAIR+ against APRNN's last-layer LP when it is at hand.
pub fn gradient_method(
    method: MethodName,
    g: &GradientArgs,
    seed: u64,
    validation: &LabelledSet,
) -> Result<Box<dyn Repair>> {
    if method == MethodName::Pft {
        let d = Pft::default();
        return Ok(Box::new(Pft {
            lr: g.lr.unwrap_or(d.lr),
            optimizer: g.optimizer.map_or(d.optimizer, optimizer),
            rounds: g.rounds,
            steps_per_round: g.steps_per_round,
            seed,
            ..d
        }));
    }
    let mut m = match method {
        MethodName::Irepair => GradientRepair {
            locking: Locking::Influence {
                gamma: g.gamma,
                correct_loss: match g.correct_loss {
                    CorrectLossName::Magnitude => CorrectLoss::Magnitude,
                    CorrectLossName::CrossEntropy => CorrectLoss::CrossEntropy,
                },
            },
            ..GradientRepair::finetune()
        },
        MethodName::RandomLock => GradientRepair::random_lock(g.lock_prob),
        _ => GradientRepair::finetune(),
    };
    let d = GradientOptions::default();
    m.options = GradientOptions {
        lr: g.lr.unwrap_or(d.lr),
        max_iters: g.max_iters,
        optimizer: g.optimizer.map_or(d.optimizer, optimizer),
        margin: g.margin,
        seed,
        all_repair_points: !g.unfixed_only,
        correct_term: g.correct_term.parse()?,
        mixup: g.mixup,
        mixup_fresh: false,
    };
    if method == MethodName::IrepairPlus {
        if g.correct_term != "ce" || g.mixup != 0 {
            bail!("--method irepair-plus sets the correct-set term and the synthetic points itself; leave out --correct-term and --mixup");
        }
        if validation.is_empty() {
            return Ok(Box::new(Race::irepair_plus(g.gamma, &m.options)));
        }
        return Ok(Box::new(Refereed::irepair_plus(
            g.gamma,
            &m.options,
            validation.inputs.clone(),
        )));
    }
    Ok(Box::new(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_flag_says_which_methods_read_it() {
        let flags = family_flags();
        assert!(flags.len() > 30, "{}", flags.len());
        for (id, long, readers) in &flags {
            let readers = readers.unwrap_or_else(|| panic!("--{long} ({id}) has no readers"));
            assert!(!readers.is_empty(), "--{long}");
        }
    }
}

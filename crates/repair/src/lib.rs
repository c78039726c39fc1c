//! Repair methods: given a network and what it gets wrong, a network with the same
//! architecture that gets it right, and a report of what changed.
//!
//! Every method implements [`Repair`]. The provable ones ([`Aprnn`], [`Prepared`]) solve one
//! LP (HiGHS, through `netrepair-lp`) over deltas of a chosen layer's weight and the biases of
//! it and every later affine layer, then hand the result, with the edited parameters rounded
//! to f32 as the ONNX file stores them, to an independent re-check: an f64 forward pass for
//! points and V-polytopes, the sound verifier for input boxes. Only what that re-check
//! confirms is reported as repaired; [`RepairOutcome::proved`] is true only when it confirms
//! everything.
//!
//! ```
//! use netrepair_nn::aprnn_example;
//! use netrepair_repair::{Aprnn, Repair, RepairContext, RepairItem, RepairProblem, Requirement};
//!
//! // The APRNN paper's network outputs 0.25 and -0.25 at these points; the spec is |y| <= 0.1.
//! let net = aprnn_example();
//! let reqs = Requirement::output_box(&[-0.1], &[0.1]);
//! let problem = RepairProblem::new(
//!     [-1.5, -0.5]
//!         .iter()
//!         .map(|&x| RepairItem::Point { x: vec![x], requirements: reqs.clone() })
//!         .collect(),
//! );
//! let out = Aprnn::default().repair(&net, &problem, &RepairContext::default()).unwrap();
//! assert!(out.proved);
//! ```
#![deny(missing_docs)]

mod analysis;
mod aprnn;
mod certificate;
mod certificate_folder;
mod certified;
mod columns;
mod edit;
mod error;
mod expr;
mod gradient;
mod incremental;
mod informed;
mod locking;
mod lp_dump;
mod mm;
mod outcome;
mod pft;
mod pipeline;
mod prepared;
mod problem;
mod race;
mod recheck;
mod reglo;
mod render;
mod samples;
mod select;
mod trace;
mod warm;

use std::time::Duration;

use netrepair_lp::Method;
use netrepair_nn::{Layer, Network};
use netrepair_verify::CheckOptions;

pub use analysis::{analyse, ClassCount, Difficulty, LayerRoom, RepairSetAnalysis};
pub use aprnn::{Aprnn, APRNN_DELTA_BOUND};
pub use certificate::{certificate, point_property, Certificate, CertificateEntry};
pub use certificate_folder::{
    check_certificate_dir, recheck_certificate, write_certificate, WrittenCertificate,
    INSTANCE_TIMEOUT_S,
};
pub use edit::KeepObjective;
use error::rule;
pub use error::{RepairError, Result};
pub use gradient::{influence_mask, CorrectTerm, GradientOptions, GradientRepair, InfluenceMask};
pub use incremental::Incremental;
pub use informed::{best_layer, brute_force, AtLayer, Informed, LayerSearch, RANK_MAX_PARAMS};
pub use locking::{CorrectLoss, Locking};
pub use lp_dump::{slug as lp_dump_slug, LpDump};
pub use mm::{Mm, MmSearch};
pub use outcome::{
    param_changes, BruteForce, DeltaSummary, EditedLayer, GlobalReport, IncrementalReport,
    IncrementalStep, ItemReport, ItemStatus, IterationStat, KeepReport, LayerScores,
    LayerSearchReport, LayerTrial, LpReport, MethodDetails, ParamChange, Ranking, RegloIteration,
    RepairOutcome, RepairStatus, SkippedLayer, Timings, TrainingReport, WarmStartReport,
};
pub use pft::Pft;
pub use prepared::{Cuts, Prepared};
pub use problem::{
    accuracy, box_vertices, parse_polytopes, split_box, KeepRegion, KeepSet, LabelledSet,
    RepairItem, RepairProblem, Requirement, DEFAULT_KEEP_TAU,
};
pub use race::{
    changed_predictions, Race, Refereed, IREPAIR_PLUS_MIXUP, IREPAIR_PLUS_WEIGHTS, REFEREE_LP_LIMIT,
};
pub use recheck::{keep_report, recheck};
pub use reglo::{decision_keep_set, Reglo, RegloObjective, WeightNorm};
pub use samples::mixup_points;
pub use select::{score_layers, Heuristic, SelectionInput, DEFAULT_HEURISTIC};
pub use warm::{
    auto_train_from, finish as finish_warm_start, proved_by_fine_tuning,
    repair_tuned as repair_warm_started, TrainFrom, WarmOptions, WarmStart,
};

/// One interface for every repair method.
pub trait Repair {
    /// Short name used in reports ("aprnn", "prepared", ...).
    fn name(&self) -> &'static str;

    /// Checks the settings that need no network or data, naming the first rule broken
    /// ([`RepairError::InvalidParam`]); `repair` checks them too. The default accepts every
    /// setting (methods whose rules need the network check them in `repair` only).
    fn check_settings(&self) -> Result<()> {
        Ok(())
    }

    /// Repairs `net` so that `problem` holds. An infeasible or unconfirmed repair is an
    /// outcome ([`RepairOutcome::status`]), not an error; errors are for bad input and
    /// solver failures. The input network is never modified.
    fn repair(
        &self,
        net: &Network,
        problem: &RepairProblem,
        ctx: &RepairContext,
    ) -> Result<RepairOutcome>;
}

/// Settings shared by the LP-based methods.
#[derive(Debug, Clone, PartialEq)]
pub struct LpRepairOptions {
    /// The start layer (a node index of a Linear or Conv node); `None`: the last affine layer.
    pub layer: Option<usize>,
    /// Bound on every parameter delta's absolute value; `None`: unbounded.
    pub delta_bound: Option<f64>,
    /// Margin by which the LP enforces every requirement (absorbs f32 rounding).
    pub eps: f64,
    /// Wall-clock limit of each LP.
    pub time_limit: Option<Duration>,
    /// Solver threads.
    pub threads: usize,
    /// LP algorithm.
    pub method: Method,
    /// Expressions longer than this get their own LP variable (keeps deep LPs sparse).
    pub max_terms: usize,
    /// The same for the output of an active ReLU at a point (a labelled or kept point, or a
    /// box or polytope with a single vertex), which the next affine layer reads in every one
    /// of its rows (an inlined expression of t terms costs t non-zeros per row there). Vertices
    /// of larger boxes and polytopes use `max_terms`. APRNN's 3x100 fog LP (affine layer 1,
    /// 100 points): 635k non-zeros and 17-20 s (interior point) at 24, 361k and 13-14 s at 4,
    /// same optimum. On ACAS Xu N2,9's box vertices the same threshold made the infeasible
    /// prop_8 LP take 358 s against 13 s (presolve no longer proves it infeasible through the
    /// new columns), hence points only (docs/lp.md).
    pub relu_max_terms: usize,
    /// Interior point: crossover to a vertex solution (see [`netrepair_lp::SolveOptions`]).
    pub crossover: bool,
    /// APRNN's repair LP is solved by column generation over the start layer's weight when
    /// that weight has more entries than this (default `usize::MAX`: never): first with a few
    /// entries free, then with those the optimum's reduced costs ask for, to the same
    /// optimum; if the rounds do not end in a repair the full LP decides. Measured not to pay
    /// on the project's LPs yet (docs/lp.md), hence off by default.
    pub column_generation_above: usize,
    /// APRNN: write each weight delta as `p - q` straight into the rows (no delta column and
    /// no `d = p - q` row per entry). Same optimum; measured (docs/lp.md): the 3x100 fog LP
    /// 15% faster, the infeasible 256x2 middle-layer LPs 30% slower, a first layer's LP
    /// twice the non-zeros; hence off by default.
    pub split_deltas: bool,
}

impl Default for LpRepairOptions {
    fn default() -> Self {
        Self {
            layer: None,
            delta_bound: None,
            eps: 1e-3,
            time_limit: None,
            threads: 1,
            method: Method::Choose,
            max_terms: 24,
            relu_max_terms: 4,
            crossover: true,
            column_generation_above: usize::MAX,
            split_deltas: false,
        }
    }
}

/// A progress callback: receives a short message at each phase.
pub type ProgressFn = Box<dyn Fn(&str) + Sync>;

impl LpRepairOptions {
    /// Checks the settings, naming the first rule broken (every LP method calls it first).
    pub fn check(&self) -> Result<()> {
        rule::non_negative("eps", self.eps)?;
        if let Some(b) = self.delta_bound {
            rule::positive_or_infinite("delta_bound", b)?;
        }
        if let Some(t) = self.time_limit {
            rule::positive("time_limit", t.as_secs_f64())?;
        }
        rule::at_least_one("threads", self.threads)?;
        rule::at_least_one("max_terms", self.max_terms)?;
        rule::at_least_one("relu_max_terms", self.relu_max_terms)
    }

    /// The solver settings these options imply.
    pub fn solve_options(&self) -> netrepair_lp::SolveOptions {
        netrepair_lp::SolveOptions {
            time_limit: self.time_limit,
            threads: self.threads,
            method: self.method,
            crossover: self.crossover,
            ..netrepair_lp::SolveOptions::default()
        }
    }
}

/// The error for a layer an LP encoding cannot pass through (Sigmoid, Tanh).
pub(crate) fn not_piecewise_linear(net: &Network, node: usize, what: &str) -> RepairError {
    let n = &net.nodes()[node];
    RepairError::Unsupported(format!(
        "node '{}' ({}) follows the start layer; {what} needs piecewise-linear layers after it (choose a later start layer)",
        n.name(),
        n.layer().kind()
    ))
}

/// What a repair run gets from its caller besides the problem: the re-check's limits and a
/// progress callback.
#[derive(Default)]
pub struct RepairContext {
    /// Settings of the verifier that re-checks property items.
    pub check: CheckOptions,
    /// Called with a short message at each phase (for progress bars).
    pub progress: Option<ProgressFn>,
    /// Where every LP the repair solves is written before it is solved (none by default).
    pub lp_dump: Option<LpDump>,
}

impl RepairContext {
    pub(crate) fn say(&self, msg: &str) {
        if let Some(p) = &self.progress {
            p(msg);
        }
    }

    /// Writes `model` to the LP dump folder, if there is one.
    pub(crate) fn dump_lp(
        &self,
        model: &netrepair_lp::LpModel,
        sense: netrepair_lp::Sense,
        purpose: &str,
    ) -> Result<()> {
        if let Some(d) = &self.lp_dump {
            d.write(model, sense, purpose)?;
        }
        Ok(())
    }
}

/// The node indices of the affine (Linear/Conv) layers, in order: what `--layer K` counts.
pub fn affine_layers(net: &Network) -> Vec<usize> {
    net.nodes()
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.layer(), Layer::Linear(_) | Layer::Conv2d(_)))
        .map(|(i, _)| i)
        .collect()
}

/// Resolves a layer given as an affine-layer index (`0` = first Linear/Conv), a negative
/// index from the end (`-1` = last), or a node name.
pub fn resolve_layer(net: &Network, key: &str) -> Result<usize> {
    let affine = affine_layers(net);
    if let Ok(k) = key.parse::<i64>() {
        let n = affine.len() as i64;
        let idx = if k < 0 { n + k } else { k };
        return if (0..n).contains(&idx) {
            Ok(affine[idx as usize])
        } else {
            Err(RepairError::Unsupported(format!(
                "layer {k} does not exist: the network has {n} affine (Linear/Conv) layers, numbered 0..{}",
                n - 1
            )))
        };
    }
    let node = net.find_node(key)?;
    if affine.contains(&node) {
        Ok(node)
    } else {
        Err(RepairError::Unsupported(format!(
            "node '{key}' is a {} layer; the repair layer must be Linear or Conv",
            net.nodes()[node].layer().kind()
        )))
    }
}

/// The start layer an option names, or the last affine layer.
pub(crate) fn start_layer(net: &Network, layer: Option<usize>) -> Result<usize> {
    match layer {
        Some(i) => Ok(i),
        None => affine_layers(net)
            .last()
            .copied()
            .ok_or_else(|| RepairError::Unsupported("the network has no affine layer".into())),
    }
}

//! What a repair returns: the new network and a report of what changed, what holds and what
//! it cost.

use netrepair_lp::{Outcome, Solution};
use netrepair_nn::Network;
use serde::Serialize;

use crate::locking::Locking;

/// How one item came out, after the independent re-check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// The re-check confirmed the requirement (f64 forward pass for points and polytopes,
    /// the verifier for properties).
    Repaired,
    /// The re-check found the requirement violated, or no repair was found.
    Failed,
    /// The verifier could neither prove nor refute it within its limits.
    Unconfirmed,
}

/// One item's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemReport {
    /// Position in the problem.
    pub index: usize,
    /// "point", "polytope" or "property".
    pub kind: &'static str,
    /// The outcome.
    pub status: ItemStatus,
    /// Whether the original network already met the requirement (points and polytope
    /// vertices: by forward pass; properties: not evaluated, `None`).
    pub held_before: Option<bool>,
    /// The smallest margin by which the requirements hold (negative: violated), for points
    /// and polytopes.
    pub margin: Option<f64>,
    /// A short explanation.
    pub detail: String,
}

/// How the whole repair ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepairStatus {
    /// Every item re-checked and repaired.
    Proved,
    /// A network was produced but the re-check did not confirm every item.
    Unconfirmed,
    /// No network with these parameters changed (within the delta bound) meets the
    /// requirements under the method's encoding; the network is returned unchanged.
    Infeasible,
    /// The solver stopped at a limit (time) without a usable solution; network unchanged.
    Limit,
}

/// Size and time of one LP solve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LpReport {
    /// What the LP was for (e.g. "final", "shift pass at fc1", "split round 2").
    pub purpose: String,
    /// "optimal", "infeasible", "limit: ...", ...
    pub outcome: String,
    /// Constraints.
    pub rows: usize,
    /// Variables.
    pub cols: usize,
    /// Non-zero coefficients.
    pub nonzeros: usize,
    /// Seconds spent building the model (our encoding plus handing it to HiGHS).
    pub build_s: f64,
    /// Seconds HiGHS spent solving.
    pub solve_s: f64,
    /// Solver iterations (simplex, interior point, PDLP and crossover together).
    pub iterations: i64,
    /// The optimal objective, when the LP was solved to optimality.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objective: Option<f64>,
}

impl LpReport {
    pub(crate) fn new(purpose: String, outcome: &str, solution: &Solution, encode_s: f64) -> Self {
        let stats = &solution.stats;
        Self {
            objective: match solution.outcome {
                Outcome::Optimal { objective, .. } => Some(objective),
                _ => None,
            },
            purpose,
            outcome: outcome.to_string(),
            rows: stats.rows,
            cols: stats.cols,
            nonzeros: stats.nonzeros,
            build_s: encode_s + stats.build_s,
            solve_s: stats.solve_s,
            iterations: {
                let i = stats.iterations;
                i.simplex + i.ipm + i.pdlp + i.crossover
            },
        }
    }
}

/// Totals of the parameter change.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct DeltaSummary {
    /// Sum of absolute changes over all parameters.
    pub l1: f64,
    /// Largest absolute change.
    pub linf: f64,
    /// Entries changed.
    pub changed: usize,
    /// Per parameter tensor (only those that changed).
    pub params: Vec<ParamChange>,
}

impl DeltaSummary {
    pub(crate) fn from_changes(params: Vec<ParamChange>) -> Self {
        Self {
            l1: params.iter().map(|p| p.l1).fold(0.0, |a, b| a + b),
            linf: params.iter().map(|p| p.linf).fold(0.0, f64::max),
            changed: params.iter().map(|p| p.changed).sum(),
            params,
        }
    }
}

/// Wall time by phase.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Timings {
    /// Building the LPs (our encoding and the hand-over to HiGHS).
    pub build_s: f64,
    /// HiGHS solving.
    pub solve_s: f64,
    /// The independent re-check.
    pub recheck_s: f64,
    /// Gradient steps (the gradient-based methods).
    pub train_s: f64,
}

impl Timings {
    /// Adds one LP's build and solve time.
    pub(crate) fn add_lp(&mut self, lp: &LpReport) {
        self.build_s += lp.build_s;
        self.solve_s += lp.solve_s;
    }
}

/// How the keep set fared through the repair (in [`RepairOutcome::keep`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeepReport {
    /// Kept points.
    pub points: usize,
    /// Of them, classified as labelled by the original network.
    pub correct_before: usize,
    /// Of them, classified as labelled by the repaired network (f64 forward pass).
    pub correct_after: usize,
    /// Kept points right before and wrong after (indices into the keep set).
    pub lost: Vec<usize>,
    /// Kept properties.
    pub regions: usize,
    /// Of them, proved by the verifier on the repaired network.
    pub regions_proved: usize,
    /// Which ones (indices into the keep set's properties).
    pub proved_regions: Vec<usize>,
    /// One line per kept property.
    pub regions_detail: Vec<String>,
}

/// What the fine-tuning stage of a warm-started repair did (in
/// [`RepairOutcome::warm_start`]; see `WarmStart`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WarmStartReport {
    /// Training samples fine-tuned on.
    pub train_samples: usize,
    /// Point items of the problem (the ones fine-tuning trains on).
    pub points: usize,
    /// Of them, met by the original network (f32 forward pass).
    pub met_before: usize,
    /// Of them, met by the fine-tuned network (f32 forward pass).
    pub met_after: usize,
    /// Property cases trained on (at their box centres and attack counterexamples).
    pub cases: usize,
    /// Property cases left to the LP method (an unsafe region that is not a union of
    /// half-spaces).
    pub cases_skipped: usize,
    /// Counterexamples the attack rounds found (against the requirements widened by the
    /// margin) and trained on.
    pub counterexamples: usize,
    /// Whether the last attack round found none.
    pub cases_attacked_clean: bool,
    /// Whether the property cases and kept regions were trained on sound bounds through the
    /// dense tail that moves (no attacks; see `WarmOptions::sound_tail`).
    pub sound_tail: bool,
    /// Kept-region cases trained on (sound bounds only).
    pub keep_cases: usize,
    /// With sound bounds: the smallest bound of a property's requirement (its margin) at the
    /// end of the stage.
    pub tail_worst: Option<f64>,
    /// The first affine layer that moved (the layers before it stayed as they were).
    pub train_from: usize,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Whether every point was met before the step limit.
    pub converged: bool,
    /// Accuracy on the training samples before fine-tuning.
    pub train_accuracy_before: f64,
    /// And after.
    pub train_accuracy_after: f64,
    /// Wall time of the stage.
    pub seconds: f64,
}

/// Which layer a repair edited, as a constructor of [`RepairOutcome`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditedLayer {
    /// The weight of this node (an affine layer) and the biases after it.
    Node(usize),
    /// Parameters of every layer (the gradient methods).
    All,
}

/// What only some methods report, beside the common part of [`RepairOutcome`]. It is
/// flattened into the outcome's JSON: `training`, `incremental` or `global` appears as a key
/// of its own.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodDetails {
    /// What the optimisation did (gradient-based methods).
    Training(TrainingReport),
    /// What the incremental strategy did.
    Incremental(IncrementalReport),
    /// Per global robustness / fairness item: VB, PGD-B and PGD-R before and after, the
    /// repair areas (REGLO).
    Global(Vec<GlobalReport>),
}

/// The result of a repair method. Built by [`RepairOutcome::new`], which derives the status
/// flag, the parameter change and the layer from the networks; methods then fill in their
/// timings, LPs, notes and [`MethodDetails`].
#[derive(Debug, Clone, Serialize)]
pub struct RepairOutcome {
    /// The repaired network (the input network, unchanged, when no repair was found).
    #[serde(skip)]
    pub network: Network,
    /// The method's name.
    pub method: String,
    /// Name of the start layer (the node whose weight was edited).
    pub layer: String,
    /// Its position among the affine (Linear/Conv) layers, from 0 (`None`: the method moves
    /// parameters of every layer, e.g. the gradient methods, whose `layer` is "all").
    pub layer_index: Option<usize>,
    /// How it ended.
    pub status: RepairStatus,
    /// True only when every item was repaired and confirmed by the re-check (the same as
    /// `status == Proved`, kept as a field for the JSON report's readers).
    pub proved: bool,
    /// One line for people.
    pub message: String,
    /// Per item.
    pub items: Vec<ItemReport>,
    /// What changed.
    pub param_delta: DeltaSummary,
    /// Total wall time.
    pub time_s: f64,
    /// Wall time by phase.
    pub timings: Timings,
    /// Every LP solved.
    pub lp: Vec<LpReport>,
    /// Observations about the problem worth a person's attention (e.g. points whose whole
    /// hidden layer is inactive, which APRNN can only fix through later biases).
    pub notes: Vec<String>,
    /// Items the method's screening found it cannot fix well (see `notes`), by index.
    pub flagged: Vec<usize>,
    /// How the keep set fared (absent when nothing was kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<KeepReport>,
    /// What only this method reports (`None` for the LP methods).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<MethodDetails>,
    /// What the fine-tuning stage of a warm-started repair did (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_start: Option<WarmStartReport>,
    /// How an informed repair chose the start layer (absent for a repair at one layer).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub layer_search: Option<LayerSearchReport>,
}

impl RepairStatus {
    /// `Proved` when every item was repaired and confirmed, `Unconfirmed` otherwise.
    pub fn of_items(items: &[ItemReport]) -> Self {
        if items.iter().all(|i| i.status == ItemStatus::Repaired) {
            Self::Proved
        } else {
            Self::Unconfirmed
        }
    }
}

impl RepairOutcome {
    /// The common part of every method's result: `status` (see [`RepairStatus::of_items`]
    /// for methods that produced a network), the parameter change between `before` and
    /// `after`, the edited layer's name and position, and the wall time since `started`.
    /// Timings, LPs, notes, the keep report and [`MethodDetails`] start empty.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        before: &Network,
        after: Network,
        method: &str,
        layer: EditedLayer,
        status: RepairStatus,
        message: String,
        items: Vec<ItemReport>,
        started: std::time::Instant,
    ) -> crate::error::Result<Self> {
        let param_delta = DeltaSummary::from_changes(param_changes(before, &after)?);
        let (layer, layer_index) = match layer {
            EditedLayer::Node(i) => (
                before.nodes()[i].name().to_string(),
                crate::affine_layers(before).iter().position(|&a| a == i),
            ),
            EditedLayer::All => ("all".to_string(), None),
        };
        Ok(Self {
            network: after,
            method: method.to_string(),
            layer,
            layer_index,
            proved: status == RepairStatus::Proved,
            status,
            message,
            items,
            param_delta,
            time_s: started.elapsed().as_secs_f64(),
            timings: Timings::default(),
            lp: Vec::new(),
            notes: Vec::new(),
            flagged: Vec::new(),
            keep: None,
            details: None,
            warm_start: None,
            layer_search: None,
        })
    }

    /// Number of items with the given status.
    pub fn count(&self, status: ItemStatus) -> usize {
        self.items.iter().filter(|i| i.status == status).count()
    }

    /// What the optimisation did (gradient-based methods).
    pub fn training(&self) -> Option<&TrainingReport> {
        match &self.details {
            Some(MethodDetails::Training(t)) => Some(t),
            _ => None,
        }
    }

    /// What the incremental strategy did.
    pub fn incremental(&self) -> Option<&IncrementalReport> {
        match &self.details {
            Some(MethodDetails::Incremental(r)) => Some(r),
            _ => None,
        }
    }

    /// REGLO's per-item global reports (empty for other methods).
    pub fn global(&self) -> &[GlobalReport] {
        match &self.details {
            Some(MethodDetails::Global(g)) => g,
            _ => &[],
        }
    }
}

/// One recorded iteration of the loop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IterationStat {
    /// Iteration number (from 0).
    pub iter: usize,
    /// Repair points not yet fixed before this iteration's step.
    pub remaining: usize,
    /// The step's loss (mean cross-entropy over `C ∪ R` (or `R⊥`), or the hinge for
    /// requirements).
    pub loss: f64,
    /// Share of parameters frozen in this step.
    pub frozen: f64,
}

/// What the optimisation did (in [`RepairOutcome::training`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingReport {
    /// The locking rule used.
    pub locking: Locking,
    /// Learning rate.
    pub lr: f64,
    /// Iterations run (optimiser steps taken).
    pub iterations: usize,
    /// Whether every repair point was fixed (by the margin, in f32) before `max_iters`.
    pub converged: bool,
    /// Mean share of parameters frozen per step.
    pub mean_frozen: f64,
    /// Correct-set samples classified correctly before and after (f64 forward pass).
    pub correct_before: usize,
    /// See `correct_before`.
    pub correct_after: usize,
    /// Size of the correct set.
    pub correct_total: usize,
    /// Every `stride`-th iteration (at most about 250 entries) and the last.
    pub history: Vec<IterationStat>,
}

/// One iteration of [`crate::Incremental`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncrementalStep {
    /// Iteration number, from 1.
    pub iter: usize,
    /// Problem indices of the batch.
    pub batch: Vec<usize>,
    /// Whether the batch's repair was proved (and kept).
    pub kept: bool,
    /// Share of the whole repair set right after this iteration.
    pub repair_accuracy: f64,
    /// Validation accuracy after this iteration.
    pub validation_accuracy: f64,
    /// Wall time of the iteration.
    pub time_s: f64,
}

/// What [`crate::Incremental`] did (in [`RepairOutcome::incremental`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncrementalReport {
    /// Batch size.
    pub batch: usize,
    /// Validation accuracy of the original network.
    pub validation_before: f64,
    /// Every iteration run.
    pub steps: Vec<IncrementalStep>,
    /// The iteration whose network is returned (0: the original).
    pub returned: usize,
    /// Why the run stopped.
    pub stopped: String,
}

/// One search-and-repair round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegloIteration {
    /// Round, from 1.
    pub iteration: usize,
    /// Sample points searched (outside existing areas).
    pub searched: usize,
    /// Of those, points passing the gradient test `||J|| > eps / diam`.
    pub flagged: usize,
    /// Of those attacked, points with a confirmed violation.
    pub violating: usize,
    /// Areas added this round.
    pub new_areas: usize,
    /// Areas in the LP.
    pub areas: usize,
    /// The LP's objective (`||dW||`), when solved.
    pub objective: Option<f64>,
    /// Seconds of the round.
    pub seconds: f64,
}

/// What REGLO did for one global property.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlobalReport {
    /// The item's name.
    pub name: String,
    /// "individual fairness" or "global robustness".
    pub kind: &'static str,
    /// The property's `eps`.
    pub eps: f64,
    /// What eps bounds: "logits" or "probabilities".
    pub measure: &'static str,
    /// VB (sound upper bound of the output variation over the region) before.
    #[serde(rename = "VB_before")]
    pub vb_before: f64,
    /// VB after (the smaller of best-first splitting and, with `cover`, the covering boxes).
    #[serde(rename = "VB")]
    pub vb_after: f64,
    /// PGD-B before.
    #[serde(rename = "PGD_B_before")]
    pub pgd_b_before: f64,
    /// PGD-B after: the largest variation the attack found.
    #[serde(rename = "PGD_B")]
    pub pgd_b_after: f64,
    /// PGD-R before.
    #[serde(rename = "PGD_R_before")]
    pub pgd_r_before: f64,
    /// PGD-R after: the share of points with a violation.
    #[serde(rename = "PGD_R")]
    pub pgd_r_after: f64,
    /// Points the attack ran from.
    pub points: usize,
    /// Repair areas in the final LP.
    pub areas: usize,
    /// Areas whose VB after repair is at most eps (re-checked by the verifier).
    pub areas_proved: usize,
    /// VB <= eps over the whole region.
    pub proved: bool,
    /// The LP's objective: "scale" or "min-change".
    pub objective: &'static str,
    /// The new last layer is `lambda (W, b) + (dW, db)` (1 for the min-change LP).
    pub lambda: f64,
    /// `(||dW||_1 + ||db||_1) / (||W||_1 + ||b||_1)`: the change beyond the rescaling.
    pub relative_change: f64,
    /// The pure rescaling that proves the property with nothing else changed:
    /// `eps (1 - margin) / VB_before` (at most 1).
    pub lambda_only: f64,
    /// The factor the LP's answer was shrunk by to hold over the whole region, if any.
    pub rescaled: Option<f64>,
    /// The rounds.
    pub iterations: Vec<RegloIteration>,
    /// The worst pair the attack found after repair, `(x, x')`.
    pub worst_after: Option<(Vec<f64>, Vec<f64>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use netrepair_nn::{mlp, Activation};

    fn outcome(details: Option<MethodDetails>) -> RepairOutcome {
        let net = mlp(&[2, 3, 2], Activation::Relu, 0).unwrap();
        let items = vec![ItemReport {
            index: 0,
            kind: "point",
            status: ItemStatus::Repaired,
            held_before: Some(false),
            margin: Some(0.5),
            detail: String::new(),
        }];
        let status = RepairStatus::of_items(&items);
        let mut out = RepairOutcome::new(
            &net,
            net.clone(),
            "toy",
            EditedLayer::Node(2),
            status,
            "done".into(),
            items,
            std::time::Instant::now(),
        )
        .unwrap();
        out.details = details;
        out
    }

    #[test]
    fn the_constructor_derives_status_layer_and_change() {
        let o = outcome(None);
        assert_eq!(o.status, RepairStatus::Proved);
        assert!(o.proved);
        assert_eq!(o.layer_index, Some(1));
        assert_eq!(o.param_delta.changed, 0);
        let mut failed = o.items.clone();
        failed[0].status = ItemStatus::Unconfirmed;
        assert_eq!(RepairStatus::of_items(&failed), RepairStatus::Unconfirmed);
    }

    #[test]
    fn method_details_appear_as_their_own_key_and_not_at_all_when_absent() {
        let plain = serde_json::to_value(outcome(None)).unwrap();
        for key in ["training", "incremental", "global", "details"] {
            assert!(plain.get(key).is_none(), "{key}");
        }
        let global =
            serde_json::to_value(outcome(Some(MethodDetails::Global(Vec::new())))).unwrap();
        assert_eq!(global["global"], serde_json::json!([]));
        assert_eq!(global["status"], "proved");
    }
}

/// One heuristic's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerScores {
    /// The heuristic's name.
    pub heuristic: String,
    /// Node names of the candidate (affine) layers, in order.
    pub layers: Vec<String>,
    /// One score per candidate (larger: better).
    pub scores: Vec<f64>,
    /// Index into `layers` of the choice.
    pub chosen: usize,
    /// Node index of the choice.
    pub chosen_node: usize,
    /// Why, in one line.
    pub reason: String,
}

impl LayerScores {
    /// Indices into `layers`, best first; ties go to the later layer (smaller LPs).
    pub fn order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.scores.len()).rev().collect();
        order.sort_by(|&i, &j| self.scores[j].total_cmp(&self.scores[i]));
        order
    }
}

/// One layer's result in the brute-force oracle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerTrial {
    /// The start layer's node name.
    pub layer: String,
    /// Its node index.
    pub node: usize,
    /// How the repair ended.
    pub status: RepairStatus,
    /// Share of the repair items confirmed.
    pub efficacy: f64,
    /// Validation accuracy after the repair (before: [`BruteForce::accuracy_before`]).
    pub accuracy: f64,
    /// Wall time of the repair.
    pub time_s: f64,
}

/// The brute-force oracle's ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BruteForce {
    /// Validation accuracy of the original network.
    pub accuracy_before: f64,
    /// Every layer, in network order.
    pub trials: Vec<LayerTrial>,
    /// Index into `trials` of the best: proved first, then the most validation accuracy, then
    /// the least time.
    pub best: usize,
    /// Total wall time.
    pub time_s: f64,
}

/// A layer [`crate::Informed`] left out of its ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedLayer {
    /// The node name.
    pub layer: String,
    /// Its parameter count (above the ranking's limit).
    pub params: usize,
}

/// What an informed repair ([`crate::Informed`]) did before it kept the outcome it returns.
/// In the JSON report its fields stand at the top level, each only when it has something.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct LayerSearchReport {
    /// Every layer tried, in the order tried.
    #[serde(rename = "layers_tried", skip_serializing_if = "Vec::is_empty")]
    pub tried: Vec<LayerTrial>,
    /// Layers the ranking left out (too many parameters for their LP).
    #[serde(rename = "layers_skipped", skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedLayer>,
    /// The heuristic's scores, when a heuristic ordered the layers.
    #[serde(rename = "layer_selection", skip_serializing_if = "Option::is_none")]
    pub selection: Option<LayerScores>,
    /// How the layers were ranked against a validation slice, when they were (the trials
    /// themselves are [`Self::tried`]).
    #[serde(rename = "layer_ranking", skip_serializing_if = "Option::is_none")]
    pub ranking: Option<Ranking>,
}

/// The ranking of [`crate::LayerSearch::Rank`]: what [`BruteForce`] says beside its trials,
/// which [`LayerSearchReport::tried`] holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranking {
    /// Validation accuracy of the original network.
    pub accuracy_before: f64,
    /// Index into [`LayerSearchReport::tried`] of the kept trial.
    pub best: usize,
    /// Size of the validation slice.
    pub validation: usize,
    /// The parameter count above which a layer was left out ([`LayerSearchReport::skipped`]).
    pub max_params: usize,
    /// Total wall time of the ranking.
    pub time_s: f64,
}

/// How much one parameter tensor changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamChange {
    /// The parameter's name (the ONNX initializer name for imported networks).
    pub param: String,
    /// The node it belongs to.
    pub node: String,
    /// Sum of absolute changes.
    pub l1: f64,
    /// Largest absolute change.
    pub linf: f64,
    /// Entries that changed.
    pub changed: usize,
    /// Entries in all.
    pub entries: usize,
}

/// Per-parameter changes between two networks of the same architecture (only parameters that
/// changed are listed).
pub fn param_changes(before: &Network, after: &Network) -> crate::error::Result<Vec<ParamChange>> {
    let mut out = Vec::new();
    for id in before.param_ids() {
        let (a, b) = (before.param(id)?, after.param(id)?);
        let (x, y) = (a.to_vec()?, b.to_vec()?);
        let mut c = ParamChange {
            param: a.name().to_string(),
            node: before.nodes()[id.node].name().to_string(),
            l1: 0.0,
            linf: 0.0,
            changed: 0,
            entries: x.len(),
        };
        for (u, v) in x.iter().zip(&y) {
            let d = (v - u).abs();
            if d > 0.0 {
                c.changed += 1;
                c.l1 += d;
                c.linf = c.linf.max(d);
            }
        }
        if c.changed > 0 {
            out.push(c);
        }
    }
    Ok(out)
}

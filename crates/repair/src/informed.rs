//! Informed repair (seed 000): one LP method tried at several start layers, the layers chosen
//! and ordered by a heuristic or ranked against held-out inputs.
//!
//! Three searches:
//!
//! - [`LayerSearch::InOrder`]: the given layers in order; the first proved repair is kept,
//!   otherwise the one that repaired the most items (the earliest among equals);
//! - [`LayerSearch::Heuristic`]: the same over the affine layers in the order a heuristic
//!   ([`crate::score_layers`]) gives for labelled points, from the last layer backwards for
//!   other items;
//! - [`LayerSearch::Rank`]: every affine layer with at most `max_params` parameters (the last
//!   always), from the output backwards, plus any [`Informed::extra`] candidates, ranked by
//!   [`crate::best_layer`]: proved first, then the share of items confirmed, then accuracy on
//!   the validation slice, then time.
//!
//! The outcome is the kept repair's, with [`RepairOutcome::layer_search`] saying what was tried.

use std::fmt;
use std::time::Instant;

use netrepair_nn::Network;

use crate::error::{RepairError, Result};
use crate::outcome::{
    BruteForce, LayerSearchReport, LayerTrial, Ranking, RepairOutcome, RepairStatus, SkippedLayer,
};
use crate::problem::{accuracy, LabelledSet, RepairProblem};
use crate::select::{score_layers, Heuristic, SelectionInput};
use crate::{affine_layers, Aprnn, ItemStatus, Prepared, Repair, RepairContext};

/// Layers with more parameters than this are left out of a [`LayerSearch::Rank`] by default
/// (the last layer always stays): their LP holds a column per parameter and a row per point
/// and neuron, and on mnist-net_256x2 the first layer's (200,960 parameters, 100 points: 0.4 M
/// rows and columns) runs past any useful limit (`docs/lp.md`).
pub const RANK_MAX_PARAMS: usize = 100_000;

/// Repairs `problem` with `aprnn` at every affine layer and ranks the layers: proved first,
/// then validation accuracy, then time.
pub fn brute_force(
    net: &Network,
    problem: &RepairProblem,
    aprnn: &Aprnn,
    validation: &LabelledSet,
    ctx: &RepairContext,
) -> Result<BruteForce> {
    let candidates = affine_layers(net)
        .into_iter()
        .map(|node| (node, aprnn.at_layer(node)))
        .collect::<Vec<_>>();
    let refs = candidates.iter().map(|(n, m)| (*n, m.as_ref())).collect();
    Ok(best_layer(net, problem, refs, validation, ctx)?.0)
}

/// Repairs `problem` with each candidate (its start layer's node index and the method) and
/// returns the ranking (proved first, then the share of items confirmed, then accuracy on
/// `validation`, then time) with the best candidate's outcome: what `--layer auto` does when
/// a validation slice is at hand (one candidate per affine layer, and a warm-started one).
pub fn best_layer(
    net: &Network,
    problem: &RepairProblem,
    candidates: Vec<(usize, &dyn Repair)>,
    validation: &LabelledSet,
    ctx: &RepairContext,
) -> Result<(BruteForce, RepairOutcome)> {
    if candidates.is_empty() {
        return Err(RepairError::Unsupported(
            "no layer to try: the network has no affine layer".into(),
        ));
    }
    let started = Instant::now();
    let accuracy_before = accuracy(net, validation)?;
    let mut trials = Vec::new();
    let mut outcomes = Vec::new();
    for (node, method) in candidates {
        ctx.say(&format!(
            "trying {} at layer '{}'",
            method.name(),
            net.nodes()[node].name()
        ));
        let r = method.repair(net, problem, ctx)?;
        trials.push(LayerTrial {
            layer: r.layer.clone(),
            node,
            status: r.status,
            efficacy: r.count(crate::ItemStatus::Repaired) as f64 / r.items.len().max(1) as f64,
            accuracy: accuracy(&r.network, validation)?,
            time_s: r.time_s,
        });
        outcomes.push(r);
    }
    let key = |t: &LayerTrial| {
        (
            t.status == RepairStatus::Proved,
            t.efficacy,
            if t.accuracy.is_nan() { 0.0 } else { t.accuracy },
            -t.time_s,
        )
    };
    let best = (0..trials.len())
        .max_by(|&a, &b| {
            key(&trials[a])
                .partial_cmp(&key(&trials[b]))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .unwrap_or(0);
    let outcome = outcomes.swap_remove(best);
    Ok((
        BruteForce {
            accuracy_before,
            trials,
            best,
            time_s: started.elapsed().as_secs_f64(),
        },
        outcome,
    ))
}

/// A method whose start layer can be chosen: what [`Informed`] tries at each layer.
pub trait AtLayer {
    /// The method with its start layer set to the node `node`.
    fn at_layer(&self, node: usize) -> Box<dyn Repair>;
}

impl AtLayer for Aprnn {
    fn at_layer(&self, node: usize) -> Box<dyn Repair> {
        let mut m = self.clone();
        m.lp.layer = Some(node);
        Box::new(m)
    }
}

impl AtLayer for Prepared {
    fn at_layer(&self, node: usize) -> Box<dyn Repair> {
        let mut m = self.clone();
        m.lp.layer = Some(node);
        Box::new(m)
    }
}

/// Which layers [`Informed`] tries and how it keeps one (see the module documentation).
#[derive(Debug, Clone)]
pub enum LayerSearch {
    /// These nodes in this order; the first proved repair wins.
    InOrder(Vec<usize>),
    /// The heuristic's order (labelled points; otherwise last layer first); the first proved
    /// repair wins.
    Heuristic {
        /// The heuristic.
        heuristic: Heuristic,
        /// Its seed (the `random` heuristic).
        seed: u64,
    },
    /// Every affine layer with at most `max_params` parameters, ranked against `validation`.
    Rank {
        /// Held-out inputs with labels (the ranking's accuracy).
        validation: LabelledSet,
        /// Largest parameter count of a ranked layer (the last layer is always ranked).
        max_params: usize,
    },
}

/// Informed repair: `method` at several start layers (see the module documentation).
pub struct Informed {
    /// The method tried at each layer.
    pub method: Box<dyn AtLayer>,
    /// Which layers, in which order, and how one is kept.
    pub search: LayerSearch,
    /// More candidates ranked beside the layers under [`LayerSearch::Rank`], each with the
    /// node it edits (e.g. a warm-started repair of the last layer); ignored otherwise.
    pub extra: Vec<(usize, Box<dyn Repair>)>,
}

impl fmt::Debug for Informed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Informed")
            .field("search", &self.search)
            .field("extra", &self.extra.len())
            .finish()
    }
}

impl Informed {
    /// The layers a [`LayerSearch::Rank`] tries (from the output backwards) and those it
    /// leaves out for their size.
    fn ranked_layers(
        net: &Network,
        affine: &[usize],
        max_params: usize,
    ) -> (Vec<usize>, Vec<usize>) {
        let last = affine.last().copied();
        affine
            .iter()
            .rev()
            .copied()
            .partition(|&i| Some(i) == last || net.nodes()[i].layer().param_count() <= max_params)
    }
}

impl Repair for Informed {
    fn name(&self) -> &'static str {
        "informed"
    }

    fn repair(
        &self,
        net: &Network,
        problem: &RepairProblem,
        ctx: &RepairContext,
    ) -> Result<RepairOutcome> {
        let affine = affine_layers(net);
        if affine.is_empty() {
            return Err(RepairError::Unsupported(
                "no layer to try: the network has no affine layer".into(),
            ));
        }
        let mut report = LayerSearchReport::default();
        let layers = match &self.search {
            LayerSearch::Rank {
                validation,
                max_params,
            } => {
                let (tried, skipped) = Self::ranked_layers(net, &affine, *max_params);
                report.skipped = skipped
                    .iter()
                    .map(|&i| SkippedLayer {
                        layer: net.nodes()[i].name().to_string(),
                        params: net.nodes()[i].layer().param_count(),
                    })
                    .collect();
                let at: Vec<(usize, Box<dyn Repair>)> = tried
                    .iter()
                    .map(|&node| (node, self.method.at_layer(node)))
                    .collect();
                let candidates = at
                    .iter()
                    .chain(&self.extra)
                    .map(|(n, m)| (*n, m.as_ref()))
                    .collect();
                let (rank, mut outcome) = best_layer(net, problem, candidates, validation, ctx)?;
                report.ranking = Some(Ranking {
                    accuracy_before: rank.accuracy_before,
                    best: rank.best,
                    validation: validation.len(),
                    max_params: *max_params,
                    time_s: rank.time_s,
                });
                report.tried = rank.trials;
                outcome.layer_search = Some(report);
                return Ok(outcome);
            }
            LayerSearch::InOrder(layers) => layers.clone(),
            LayerSearch::Heuristic { heuristic, seed } => {
                match problem.labelled_points(net.output_len()) {
                    Some((xs, labels)) => {
                        let s = score_layers(
                            net,
                            SelectionInput {
                                inputs: &xs,
                                labels: &labels,
                                perturbed: None,
                                seed: *seed,
                            },
                            *heuristic,
                        )?;
                        let layers = s.order().iter().map(|&i| affine[i]).collect();
                        report.selection = Some(s);
                        layers
                    }
                    None => affine.iter().rev().copied().collect(),
                }
            }
        };
        let mut best: Option<RepairOutcome> = None;
        for &node in &layers {
            let m = self.method.at_layer(node);
            ctx.say(&format!("{} at '{}'", m.name(), net.nodes()[node].name()));
            let r = m.repair(net, problem, ctx)?;
            report.tried.push(LayerTrial {
                layer: r.layer.clone(),
                node,
                status: r.status,
                efficacy: r.count(ItemStatus::Repaired) as f64 / r.items.len().max(1) as f64,
                accuracy: f64::NAN,
                time_s: r.time_s,
            });
            let proved = r.status == RepairStatus::Proved;
            if best
                .as_ref()
                .is_none_or(|b| r.count(ItemStatus::Repaired) > b.count(ItemStatus::Repaired))
            {
                best = Some(r);
            }
            if proved {
                break;
            }
        }
        let mut outcome = best.ok_or_else(|| {
            RepairError::Unsupported("no layer to try: the layer list is empty".into())
        })?;
        outcome.layer_search = Some(report);
        Ok(outcome)
    }
}

//! Incremental ("stochastic") repair (seed 000): repair the set in small batches, carrying the
//! network forward, with early stopping on the keep set (the problem's kept points serve as
//! the validation set).
//!
//! Each iteration takes the next `batch` repair points the current network still gets wrong
//! (in a seeded random order), repairs them with the inner method (any [`Repair`]; APRNN by
//! default), and keeps the result when the inner repair is proved. After every iteration the share of the whole repair set the network
//! gets right and the validation accuracy are recorded. The run stops when every point is
//! right, after `max_iters`, or (early stopping) when the validation accuracy has fallen more
//! than `max_drop` below the original; the network returned is the last one within that drop.
//! The edited layer reported is the inner method's ("all" when no batch ran).

use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{rule, RepairError, Result};
use crate::outcome::{
    EditedLayer, IncrementalReport, IncrementalStep, MethodDetails, RepairOutcome, RepairStatus,
    Timings,
};
use crate::problem::{accuracy, RepairItem, RepairProblem};
use crate::recheck::timed_recheck;
use crate::{Aprnn, Repair, RepairContext};
use netrepair_nn::Network;

/// Incremental repair with early stopping (see the module documentation), of any repair
/// method (APRNN by default, as in seed 000).
#[derive(Debug, Clone, PartialEq)]
pub struct Incremental<R = Aprnn> {
    /// The repair of each batch.
    pub inner: R,
    /// Points per batch.
    pub batch: usize,
    /// Iterations at most.
    pub max_iters: usize,
    /// Also hold the keep set in every batch's LP (by default the kept points only measure
    /// the drop for early stopping, as seed 000's validation set does).
    pub hold_keep: bool,
    /// Largest validation-accuracy drop (share, e.g. 0.05) before stopping.
    pub max_drop: f64,
    /// Seed of the order.
    pub seed: u64,
    /// Also hold every point fixed by an earlier batch of this run (the LP grows by `batch`
    /// points per iteration, and the share of the set that is right can only grow). Off:
    /// seed 000's plain stochastic repair, where a later batch may undo an earlier one.
    pub cumulative: bool,
}

impl<R> Incremental<R> {
    /// Incremental repair by `inner` with seed 000's settings (batches of 5, at most 50
    /// iterations, no early stop, the keep set only measured).
    pub fn of(inner: R) -> Self {
        Self {
            inner,
            batch: 5,
            max_iters: 50,
            hold_keep: false,
            max_drop: 1.0,
            seed: 0,
            cumulative: false,
        }
    }
}

impl Default for Incremental {
    fn default() -> Self {
        Self::of(Aprnn::default())
    }
}

/// Whether the network meets every requirement of each point item (polytopes and properties:
/// not evaluated here, `false`).
fn points_right(net: &Network, problem: &RepairProblem) -> Result<Vec<bool>> {
    let xs: Vec<Vec<f64>> = problem
        .items
        .iter()
        .filter_map(|i| match i {
            RepairItem::Point { x, .. } => Some(x.clone()),
            _ => None,
        })
        .collect();
    let ys = crate::trace::outputs(net, &xs)?;
    let mut y = ys.iter();
    Ok(problem
        .items
        .iter()
        .map(|i| match i {
            RepairItem::Point { requirements, .. } => {
                let y = y.next().expect("one output per point");
                requirements.iter().all(|r| r.holds(y))
            }
            _ => false,
        })
        .collect())
}

impl<R: Repair> Incremental<R> {
    /// Checks the settings (the inner method's too), naming the first rule broken.
    pub fn check(&self) -> Result<()> {
        self.inner.check_settings()?;
        rule::at_least_one("batch", self.batch)?;
        rule::at_least_one("max_iters", self.max_iters)?;
        rule::share("max_drop", self.max_drop)
    }
}

impl<R: Repair> Repair for Incremental<R> {
    fn name(&self) -> &'static str {
        "incremental"
    }

    fn check_settings(&self) -> Result<()> {
        self.check()
    }

    fn repair(
        &self,
        net: &Network,
        problem: &RepairProblem,
        ctx: &RepairContext,
    ) -> Result<RepairOutcome> {
        let started = Instant::now();
        self.check()?;
        problem.validate(net.input_len(), net.output_len())?;
        if problem
            .items
            .iter()
            .any(|i| !matches!(i, RepairItem::Point { .. }))
        {
            return Err(RepairError::Unsupported(
                "incremental repair takes points only".into(),
            ));
        }
        let validation = &problem.keep.points;
        let mut order: Vec<usize> = (0..problem.items.len()).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(self.seed));
        let validation_before = accuracy(net, validation)?;
        let mut current = net.clone();
        let (mut best, mut returned) = (net.clone(), 0usize);
        let mut steps = Vec::new();
        let mut failed: Vec<bool> = vec![false; problem.items.len()];
        let mut fixed: Vec<bool> = vec![false; problem.items.len()];
        let mut stopped = format!("{} iterations", self.max_iters);
        let mut timings = Timings::default();
        let mut lps = Vec::new();
        // What the inner method edits, from its first outcome.
        let mut edited = None;
        for iter in 1..=self.max_iters {
            let t = Instant::now();
            let right = points_right(&current, problem)?;
            if right.iter().all(|&r| r) {
                stopped = "every repair point is right".into();
                break;
            }
            let batch: Vec<usize> = order
                .iter()
                .copied()
                .filter(|&i| !right[i] && !failed[i])
                .take(self.batch)
                .collect();
            if batch.is_empty() {
                stopped = "the remaining points could not be repaired in any batch".into();
                break;
            }
            ctx.say(&format!(
                "incremental: iteration {iter}, batch of {}",
                batch.len()
            ));
            let mut held = batch.clone();
            if self.cumulative {
                held.extend((0..right.len()).filter(|&i| right[i] && fixed[i]));
            }
            let mut sub =
                RepairProblem::new(held.iter().map(|&i| problem.items[i].clone()).collect());
            if self.hold_keep {
                sub.keep = problem.keep.clone();
            }
            let r = self
                .inner
                .repair(&current, &sub, &RepairContext::default())?;
            edited.get_or_insert_with(|| match r.layer_index {
                Some(k) => EditedLayer::Node(crate::affine_layers(net)[k]),
                None => EditedLayer::All,
            });
            timings.build_s += r.timings.build_s;
            timings.solve_s += r.timings.solve_s;
            lps.extend(r.lp);
            let kept = r.status == RepairStatus::Proved;
            if kept {
                current = r.network;
                for &i in &batch {
                    fixed[i] = true;
                }
            } else {
                for &i in &batch {
                    failed[i] = true;
                }
            }
            let now = points_right(&current, problem)?;
            let repair_accuracy = now.iter().filter(|&&b| b).count() as f64 / now.len() as f64;
            let validation_accuracy = accuracy(&current, validation)?;
            steps.push(IncrementalStep {
                iter,
                batch,
                kept,
                repair_accuracy,
                validation_accuracy,
                time_s: t.elapsed().as_secs_f64(),
            });
            if !validation.is_empty() && validation_before - validation_accuracy > self.max_drop {
                stopped = format!(
                    "early stop at iteration {iter}: validation accuracy {:.1}% fell more than {:.1} points below {:.1}%",
                    100.0 * validation_accuracy,
                    100.0 * self.max_drop,
                    100.0 * validation_before
                );
                break;
            }
            if kept {
                best = current.clone();
                returned = iter;
            }
        }
        let rc = timed_recheck(net, &best, problem, ctx)?;
        let (items, ok, recheck_s, keep_report) = (rc.items, rc.ok, rc.seconds, rc.keep);
        timings.recheck_s = recheck_s;
        let status = RepairStatus::of_items(&items);
        let message = format!(
                "{ok} of {} points repaired and confirmed after {} of {} iterations (batches of {}); stopped: {stopped}",
                items.len(),
                returned,
                steps.len(),
                self.batch
            );
        let mut out = RepairOutcome::new(
            net,
            best,
            self.name(),
            edited.unwrap_or(EditedLayer::All),
            status,
            message,
            items,
            started,
        )?;
        out.timings = timings;
        out.lp = lps;
        out.keep = keep_report;
        out.details = Some(MethodDetails::Incremental(IncrementalReport {
            batch: self.batch,
            validation_before,
            steps,
            returned,
            stopped,
        }));
        Ok(out)
    }
}

//! Warm start: fine-tune the whole network on the repair points and a sample of correctly
//! classified training data, then let an LP method ([`crate::Aprnn`], [`crate::Prepared`])
//! finish the repair on the fine-tuned network and prove it.
//!
//! Why: a one-layer LP repair moves one layer as far as the hardest repair point needs, and
//! on a network whose errors sit among many similar training images (mnist-net_256x2's 100
//! clean test errors) that costs several points of accuracy however the kept points are
//! weighed (docs/repair.md). Fine-tuning on mini-batches of training data with the repair
//! points in every batch moves the decision boundary the way training does, so the network
//! keeps generalising; the LP then repairs what the fine-tuning left (and every polytope and
//! region, which fine-tuning does not see) with a small change, and the independent re-check
//! of the final network against the *original* problem is what the outcome reports. The
//! guarantee is the LP method's; the price is that every layer moves, not one.
//!
//! The loop: Adam on `(1 - s) CE(batch of training samples) + s loss(repair points)` with
//! `s = repair_share` (cross-entropy for labelled points, a hinge for other requirements),
//! training samples taken in a seeded shuffled order, until every repair point meets its
//! requirements (f32 forward pass) or `max_steps`.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use netrepair_nn::{cross_entropy, Network, NnError, Optimizer, OptimizerKind, Trainer};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{rule, RepairError, Result};
use crate::gradient::{repair_loss, Target};
use crate::outcome::{EditedLayer, RepairOutcome, RepairStatus, WarmStartReport};
use crate::problem::{LabelledSet, RepairItem, RepairProblem};
use crate::recheck::timed_recheck;
use crate::samples::{batch, labels_tensor, rows};
use crate::{Repair, RepairContext};

/// Settings of the fine-tuning stage.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmOptions {
    /// Adam's learning rate.
    pub lr: f64,
    /// Most optimiser steps.
    pub max_steps: usize,
    /// Training samples per step (the repair points join every step).
    pub batch: usize,
    /// Weight of the repair points' loss in each step, in (0, 1]; the training batch has the
    /// rest.
    pub repair_share: f64,
    /// Seed of the order of the training samples.
    pub seed: u64,
}

impl Default for WarmOptions {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            max_steps: 2000,
            batch: 256,
            repair_share: 0.5,
            seed: 0,
        }
    }
}

/// Fine-tune, then repair with `then` (see the module documentation).
pub struct WarmStart {
    /// Correctly classified training samples to fine-tune on (never the evaluation split).
    pub train: LabelledSet,
    /// The fine-tuning stage's settings.
    pub options: WarmOptions,
    /// The method that finishes and proves the repair on the fine-tuned network.
    pub then: Box<dyn Repair>,
}

impl std::fmt::Debug for WarmStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmStart")
            .field("train", &self.train.len())
            .field("options", &self.options)
            .field("then", &self.then.name())
            .finish()
    }
}

impl WarmOptions {
    /// Checks the settings (a clear error for each broken rule).
    pub fn check(&self) -> Result<()> {
        rule::positive("warm.lr", self.lr)?;
        rule::at_least_one("warm.batch", self.batch)?;
        rule::unit_fraction("warm.repair_share", self.repair_share)
    }

    /// Fine-tunes `net` on the point items of `problem` and `train` (see the module
    /// documentation). Returns the fine-tuned network (f32 values, as an ONNX file stores
    /// them) and what the stage did. Items other than points are left to the LP stage.
    pub fn fine_tune(
        &self,
        net: &Network,
        problem: &RepairProblem,
        train: &LabelledSet,
        ctx: &RepairContext,
    ) -> Result<(Network, WarmStartReport)> {
        let started = Instant::now();
        self.check()?;
        problem.validate(net.input_len(), net.output_len())?;
        train.check(net, "warm-start training set")?;
        if train.is_empty() {
            return Err(RepairError::Problem(
                "the warm start needs training samples to fine-tune on (none given)".into(),
            ));
        }
        let m = net.output_len();
        let (xs, targets): (Vec<Vec<f64>>, Vec<Target>) = problem
            .items
            .iter()
            .filter_map(|item| match item {
                RepairItem::Point { x, requirements } => {
                    Some((x.clone(), Target::of(requirements, m)))
                }
                _ => None,
            })
            .unzip();
        let mut report = WarmStartReport {
            train_samples: train.len(),
            points: xs.len(),
            met_before: 0,
            met_after: 0,
            steps: 0,
            converged: false,
            train_accuracy_before: train.count_correct(net)? as f64 / train.len().max(1) as f64,
            train_accuracy_after: 0.0,
            seconds: 0.0,
        };
        if xs.is_empty() {
            report.converged = true;
            report.train_accuracy_after = report.train_accuracy_before;
            report.seconds = started.elapsed().as_secs_f64();
            return Ok((net.clone(), report));
        }
        let trainer = Trainer::new(net, DType::F32)?;
        let vars = trainer.vars();
        let mut opt = Optimizer::new(OptimizerKind::adam(), self.lr, 0.0, vars.len())?;
        let xr = batch(net, &xs)?;
        let xt = batch(net, &train.inputs)?;
        let yt = labels_tensor(&train.labels)?;
        let all: Vec<usize> = (0..xs.len()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        let mut order: Vec<u32> = (0..train.len() as u32).collect();
        order.shuffle(&mut rng);
        let mut cursor = 0;
        let s = self.repair_share;
        for step in 0..=self.max_steps {
            let out_r = trainer.forward(&xr)?;
            let met = rows(&out_r)?
                .iter()
                .zip(&targets)
                .filter(|(y, t)| t.met(y, 0.0))
                .count();
            if step == 0 {
                report.met_before = met;
            }
            report.met_after = met;
            if met == xs.len() {
                report.converged = true;
                break;
            }
            if step == self.max_steps {
                break;
            }
            let take = self.batch.min(order.len());
            if cursor + take > order.len() {
                order.shuffle(&mut rng);
                cursor = 0;
            }
            let ids = Tensor::from_slice(&order[cursor..cursor + take], take, &Device::Cpu)
                .map_err(NnError::from)?;
            cursor += take;
            let xb = xt.index_select(&ids, 0).map_err(NnError::from)?;
            let yb = yt.index_select(&ids, 0).map_err(NnError::from)?;
            let lt = cross_entropy(&trainer.forward(&xb)?, &yb)?;
            let lr = repair_loss(&out_r, &targets, &all, 0.0)?;
            let loss = (lt.affine(1.0 - s, 0.0).map_err(NnError::from)?
                + lr.affine(s, 0.0).map_err(NnError::from)?)
            .map_err(NnError::from)?;
            let grads = trainer.grads(&loss)?;
            opt.step(&vars, &grads, None)?;
            report.steps = step + 1;
            if step % 50 == 0 {
                ctx.say(&format!(
                    "warm start: step {step}, {} of {} points met",
                    met,
                    xs.len()
                ));
            }
        }
        let mut tuned = net.clone();
        if report.steps > 0 {
            trainer.write_back(&mut tuned)?;
        }
        report.train_accuracy_after = train.count_correct(&tuned)? as f64 / train.len() as f64;
        report.seconds = started.elapsed().as_secs_f64();
        Ok((tuned, report))
    }
}

/// The outcome of a warm-started repair: `lp` (the LP method's outcome on the fine-tuned
/// network) re-checked against `problem` from the `original` network, so the items, the keep
/// report and the parameter change are the whole repair's. The status is the re-check's: a
/// network is returned whenever fine-tuning ran, and it is proved only when the re-check
/// confirms every item (whether or not the LP stage found a repair; its status is in the
/// message and the notes).
pub fn finish(
    original: &Network,
    warm: WarmStartReport,
    lp: RepairOutcome,
    problem: &RepairProblem,
    ctx: &RepairContext,
    started: Instant,
) -> Result<RepairOutcome> {
    let rc = timed_recheck(original, &lp.network, problem, ctx)?;
    let status = RepairStatus::of_items(&rc.items);
    let message = format!(
        "fine-tuned {} steps on {} training samples ({} of {} points met after, {} before), then {}: {}; re-checked from the original network: {} of {} items repaired",
        warm.steps,
        warm.train_samples,
        warm.met_after,
        warm.points,
        warm.met_before,
        lp.method,
        lp.message,
        rc.ok,
        rc.items.len()
    );
    let mut notes = lp.notes;
    if !matches!(lp.status, RepairStatus::Proved) {
        notes.push(format!(
            "the LP stage ended {:?}: the fine-tuned network is returned as the re-check finds it",
            lp.status
        ));
    }
    let mut out = RepairOutcome::new(
        original,
        lp.network,
        &format!("warm-start+{}", lp.method),
        EditedLayer::All,
        status,
        message,
        rc.items,
        started,
    )?;
    out.layer = format!("all (fine-tuned), then {}", lp.layer);
    out.timings = lp.timings;
    out.timings.train_s += warm.seconds;
    out.timings.recheck_s += rc.seconds;
    out.lp = lp.lp;
    out.notes = notes;
    out.flagged = lp.flagged;
    out.keep = rc.keep;
    out.details = lp.details;
    out.warm_start = Some(warm);
    Ok(out)
}

impl Repair for WarmStart {
    fn name(&self) -> &'static str {
        "warm-start"
    }

    fn repair(
        &self,
        net: &Network,
        problem: &RepairProblem,
        ctx: &RepairContext,
    ) -> Result<RepairOutcome> {
        let started = Instant::now();
        let (tuned, warm) = self.options.fine_tune(net, problem, &self.train, ctx)?;
        let lp = self.then.repair(&tuned, problem, ctx)?;
        finish(net, warm, lp, problem, ctx, started)
    }
}

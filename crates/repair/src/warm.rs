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
//! guarantee is the independent verifier's; the price is that every layer moves, not one.
//! When the fine-tuned network already passes that re-check (every item repaired, no kept
//! point lost, every kept region still proved) the LP stage is skipped
//! ([`proved_by_fine_tuning`]).
//!
//! The loop: Adam on `(1 - s) CE(batch of training samples) + s loss(repair points)` with
//! `s = repair_share` (cross-entropy for labelled points, a hinge for other requirements),
//! training samples taken in a seeded shuffled order, until every repair point meets its
//! requirements (f32 forward pass) or `max_steps`.
//!
//! Properties (VNN-LIB cases whose unsafe region is a union of half-spaces, as robustness
//! properties are) join the repair loss as a hinge asking their requirements to hold by
//! `property_margin` at the box centre and at every counterexample found so far; every
//! `attack_every` steps PGD looks for inputs of each box where the requirements hold by less
//! than that margin, and the stage ends at a round that finds none (with every point met).
//! The margin leaves room for the LP method's sound bounds, which are looser than what an
//! attack reaches: on resnet_2b's eps 0.008 balls PREPARED alone takes clean accuracy from
//! 68.7% to 41-60% however the edit is bounded, after a warm start with margin 3 to 67.1%
//! (docs/repair.md).
//!
//! Where the layers that move (from `train_from` on) are a chain of Linear and ReLU layers to
//! the output, as the dense head of a convolutional network is, properties and kept regions
//! train on *sound* bounds instead ([`crate::certified`]): the verifier bounds the chain's
//! input over each box once, the bound through the chain is differentiable in its weights, and
//! a hinge asks each property's bound to clear `tail_margin` and each kept region's to stay
//! positive. The stage ends when they do, and the re-check then usually proves every item with
//! no LP (resnet_2b, 5 balls: 5/5 proved, clean -1.3 pp, certified +5 pp with 100 certified
//! training balls kept). `TrainFrom::Auto` picks that chain whenever the problem has
//! properties or kept regions.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use netrepair_nn::{cross_entropy, Network, NnError, Optimizer, OptimizerKind, ParamId, Trainer};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::certified::{is_dense_tail, CertifiedTail, TailRow};
use crate::error::{rule, RepairError, Result};
use crate::gradient::{repair_loss, Target};
use crate::outcome::{EditedLayer, ItemStatus, RepairOutcome, RepairStatus, WarmStartReport};
use crate::problem::accuracy;
use crate::problem::{LabelledSet, RepairItem, RepairProblem, Requirement};
use crate::recheck::{keep_report, recheck_until, timed_recheck, Rechecked};
use crate::samples::{batch, labels_tensor, rows, squared_change};
use crate::{Repair, RepairContext};
use netrepair_spec::{Case, LinearConstraint, Polytope};
use netrepair_verify::{pgd, PgdOptions};

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
    /// Properties: the margin (in the requirement's units, e.g. logits) by which the
    /// fine-tuning asks each property's requirements to hold at its training points, so the
    /// LP method's sound bounds have room to prove them.
    pub property_margin: f64,
    /// Weight of a term keeping the training samples' original logits (mean over the batch
    /// of the squared change, summed over the outputs) beside their cross-entropy: keeps
    /// the network's function, not only its labels (0: cross-entropy alone).
    pub keep_logits: f64,
    /// Weight of the training samples' cross-entropy (1: the usual fine-tuning; 0 with
    /// `keep_logits > 0`: the samples only keep their original logits, a distillation that
    /// does not sharpen the network on the drawn samples).
    pub label_weight: f64,
    /// The first affine layer whose parameters fine-tuning moves; the layers before it stay
    /// as they are, so the features they compute (and every bound over them) do not change.
    /// [`TrainFrom::Auto`] (the default): see [`auto_train_from`].
    pub train_from: TrainFrom,
    /// Properties: steps between two attack rounds (PGD against the requirements shifted by
    /// `property_margin`; each counterexample found joins the training points).
    pub attack_every: usize,
    /// Properties and kept regions, when the layers that move (from `train_from` on) are a
    /// chain of Linear and ReLU layers to the output: train on sound bounds of the
    /// requirements over each box ([`crate::certified`]) instead of attacks. The stage then
    /// ends when every property's bound clears `tail_margin / 2`.
    pub sound_tail: bool,
    /// The margin (in the requirement's units) the sound bounds are trained to clear; small,
    /// since the verifier's own bounds are at least as tight up to rounding.
    pub tail_margin: f64,
}

impl Default for WarmOptions {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            max_steps: 2000,
            batch: 256,
            repair_share: 0.5,
            seed: 0,
            property_margin: 1.0,
            keep_logits: 0.0,
            label_weight: 1.0,
            train_from: TrainFrom::Auto,
            attack_every: 50,
            sound_tail: true,
            tail_margin: 0.05,
        }
    }
}

/// Counterexamples kept per property case (the oldest go first).
const ATTACK_POINTS_PER_CASE: usize = 16;

/// A property case fine-tuning trains on: its unsafe region is a union of half-spaces
/// `a.y <= b`, so its safe outputs are the requirements `a.y > b`.
struct Region {
    /// The case with every unsafe half-space widened by the margin (what the attack seeks).
    widened: Case,
    /// The safe outputs.
    target: Target,
    /// Training inputs: the box centre and the counterexamples found so far.
    points: Vec<Vec<f64>>,
}

impl Region {
    /// `None` when some unsafe polytope has more than one constraint (its complement is not
    /// a conjunction; the LP method alone handles such cases).
    fn of(case: &Case, margin: f64) -> Option<Self> {
        if case.unsafe_region.iter().any(|p| p.constraints.len() != 1) {
            return None;
        }
        let reqs = case
            .unsafe_region
            .iter()
            .map(|p| {
                let c = &p.constraints[0];
                Requirement {
                    constraint: LinearConstraint {
                        coeffs: c.coeffs.iter().map(|&(j, v)| (j, -v)).collect(),
                        rhs: -c.rhs,
                    },
                    strict: true,
                }
            })
            .collect();
        let widened = Case {
            input: case.input.clone(),
            unsafe_region: case
                .unsafe_region
                .iter()
                .map(|p| Polytope {
                    constraints: vec![LinearConstraint {
                        coeffs: p.constraints[0].coeffs.clone(),
                        rhs: p.constraints[0].rhs + margin,
                    }],
                })
                .collect(),
        };
        Some(Self {
            points: vec![case.input.center()],
            widened,
            target: Target::Requirements(reqs),
        })
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
        rule::unit_fraction("warm.repair_share", self.repair_share)?;
        rule::non_negative("warm.property_margin", self.property_margin)?;
        rule::non_negative("warm.keep_logits", self.keep_logits)?;
        rule::non_negative("warm.label_weight", self.label_weight)?;
        if self.label_weight == 0.0 && self.keep_logits == 0.0 {
            return Err(RepairError::Problem(
                "warm.label_weight and warm.keep_logits are both 0: nothing would keep the \
                 training samples' behaviour"
                    .into(),
            ));
        }
        rule::positive("warm.tail_margin", self.tail_margin)?;
        rule::at_least_one("warm.attack_every", self.attack_every)
    }

    /// Fine-tunes `net` on `train`, the point items of `problem` and its property cases whose
    /// unsafe region is a union of half-spaces (see the module documentation). Returns the
    /// fine-tuned network (f32 values, as an ONNX file stores them) and what the stage did.
    /// Polytopes, global properties and other cases are left to the LP stage.
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
        let mut regions: Vec<Region> = Vec::new();
        let mut cases_skipped = 0;
        for item in &problem.items {
            if let RepairItem::Property { property, .. } = item {
                for case in &property.cases {
                    match Region::of(case, self.property_margin) {
                        Some(r) => regions.push(r),
                        None => cases_skipped += 1,
                    }
                }
            }
        }
        let mut report = WarmStartReport {
            train_samples: train.len(),
            points: xs.len(),
            cases: regions.len(),
            cases_skipped,
            counterexamples: 0,
            cases_attacked_clean: false,
            sound_tail: false,
            keep_cases: 0,
            tail_worst: None,
            train_from: 0,
            met_before: 0,
            met_after: 0,
            steps: 0,
            converged: false,
            train_accuracy_before: accuracy(net, train)?,
            train_accuracy_after: 0.0,
            seconds: 0.0,
        };
        if xs.is_empty() && regions.is_empty() {
            report.converged = true;
            report.train_accuracy_after = report.train_accuracy_before;
            report.seconds = started.elapsed().as_secs_f64();
            return Ok((net.clone(), report));
        }
        let affine = crate::affine_layers(net);
        let train_from = self.train_from.resolve(net, problem);
        let Some(&first) = affine.get(train_from) else {
            return Err(RepairError::Problem(format!(
                "warm.train_from {train_from} names no affine layer: the network has {}",
                affine.len()
            )));
        };
        report.train_from = train_from;
        let sound = self.sound_tail
            && (!regions.is_empty() || !problem.keep.regions.is_empty())
            && is_dense_tail(net, first);
        // When only the layers from `first` on move and no attack needs the whole network,
        // they train on the features of the frozen layers below, computed once (the trunk of
        // a convolutional network then costs nothing per step).
        let head = if first > 0 && (regions.is_empty() || sound) {
            net.head(first).ok()
        } else {
            None
        };
        let offset = if head.is_some() { first } else { 0 };
        let model = head.as_ref().unwrap_or(net);
        let trunk = head.as_ref().map(|_| net.truncated(first)).transpose()?;
        let inputs = |xs: &[Vec<f64>]| -> Result<Tensor> {
            let chunks = xs
                .chunks(1024)
                .map(|c| {
                    let b = batch(net, c)?;
                    Ok(match &trunk {
                        Some(t) => t.forward(&b)?,
                        None => b,
                    })
                })
                .collect::<Result<Vec<Tensor>>>()?;
            Ok(Tensor::cat(&chunks, 0).map_err(NnError::from)?)
        };
        // Parameters of the layers before `train_from` are no variables: they get no update
        // and cost no gradient.
        let trainer = Trainer::moving(model, DType::F32, |id| id.node + offset >= first)?;
        let vars = trainer.vars();
        let tail = if sound {
            self.tail_training(net, first, offset, problem, &trainer, ctx)?
        } else {
            None
        };
        if let Some(t) = &tail {
            report.sound_tail = true;
            report.keep_cases = t.keep_cases;
        }
        let mut opt = Optimizer::new(OptimizerKind::adam(), self.lr, 0.0, vars.len())?;
        let xr = (!xs.is_empty()).then(|| inputs(&xs)).transpose()?;
        let xt = inputs(&train.inputs)?;
        let yt = labels_tensor(&train.labels)?;
        // The original logits of the training samples, for `keep_logits` (in chunks: the
        // whole set at once would hold every activation of a convolutional network).
        let y0t = if self.keep_logits > 0.0 {
            let n = train.len();
            let chunks = (0..n)
                .step_by(1024)
                .map(|i| {
                    let x = xt.narrow(0, i, 1024.min(n - i)).map_err(NnError::from)?;
                    Ok(model.forward(&x)?)
                })
                .collect::<Result<Vec<Tensor>>>()?;
            Some(Tensor::cat(&chunks, 0).map_err(NnError::from)?)
        } else {
            None
        };
        let all: Vec<usize> = (0..xs.len()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        let mut order: Vec<u32> = (0..train.len() as u32).collect();
        order.shuffle(&mut rng);
        let mut cursor = 0;
        let s = self.repair_share;
        let attack = PgdOptions {
            restarts: 4,
            steps: 10,
            ..PgdOptions::default()
        };
        // The regions' training inputs, targets and row indices (rebuilt at attack rounds).
        let mut region_batch: Option<(Tensor, Vec<Target>, Vec<usize>)> = None;
        for step in 0..=self.max_steps {
            let out_r = xr.as_ref().map(|x| trainer.forward(x)).transpose()?;
            let met = match &out_r {
                Some(o) => rows(o)?
                    .iter()
                    .zip(&targets)
                    .filter(|(y, t)| t.met(y, 0.0))
                    .count(),
                None => 0,
            };
            if step == 0 {
                report.met_before = met;
            }
            report.met_after = met;
            // Attack rounds: the regions' counterexamples (against the widened unsafe
            // region) join their training points; a round that finds none, with every point
            // met, ends the stage.
            let mut regions_clean = true;
            let tail_low = tail.as_ref().map(|t| t.tail.lower(&trainer)).transpose()?;
            if let (Some(t), Some(low)) = (&tail, &tail_low) {
                let v = low.to_vec1::<f32>().map_err(NnError::from)?;
                regions_clean = v.iter().zip(&t.need).all(|(l, n)| l >= n);
                report.tail_worst = v[..t.repair_rows]
                    .iter()
                    .map(|&l| l as f64)
                    .reduce(f64::min);
                report.cases_attacked_clean = false;
            } else if !regions.is_empty()
                && (step % self.attack_every == 0 || step == self.max_steps)
            {
                let mut current = net.clone();
                trainer.write_back(&mut current)?;
                for (k, r) in regions.iter_mut().enumerate() {
                    let opts = PgdOptions {
                        seed: self.seed ^ (step as u64) ^ ((k as u64) << 32),
                        ..attack
                    };
                    if let Some(cex) = pgd(&current, &r.widened, &opts)? {
                        regions_clean = false;
                        report.counterexamples += 1;
                        if r.points.len() > ATTACK_POINTS_PER_CASE {
                            r.points.remove(1);
                        }
                        r.points.push(cex.x);
                    }
                }
                report.cases_attacked_clean = regions_clean;
                // The regions' training points change only here.
                let pts: Vec<Vec<f64>> = regions.iter().flat_map(|r| r.points.clone()).collect();
                let tgt: Vec<Target> = regions
                    .iter()
                    .flat_map(|r| std::iter::repeat_n(r.target.clone(), r.points.len()))
                    .collect();
                region_batch = Some((batch(net, &pts)?, tgt, (0..pts.len()).collect()));
                ctx.say(&format!(
                    "warm start: step {step}, attack round: {} counterexamples so far",
                    report.counterexamples
                ));
            } else if !regions.is_empty() {
                regions_clean = false;
            }
            if met == xs.len() && regions_clean {
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
            let out_b = trainer.forward(&xb)?;
            let mut lt = cross_entropy(&out_b, &yb)?
                .affine(self.label_weight, 0.0)
                .map_err(NnError::from)?;
            if let Some(y0) = &y0t {
                let y0b = y0.index_select(&ids, 0).map_err(NnError::from)?;
                let drift = squared_change(&out_b, &y0b, self.keep_logits / take as f64)?;
                lt = (lt + drift).map_err(NnError::from)?;
            }
            let mut lr = match &out_r {
                Some(o) => Some(repair_loss(o, &targets, &all, 0.0)?),
                None => None,
            };
            if let (Some(t), Some(low)) = (&tail, &tail_low) {
                let lp = (|| (t.target.sub(low)?.relu()? * &t.weight)?.sum_all())()
                    .map_err(NnError::from)?;
                lr = Some(match lr {
                    Some(l) => (l + lp).map_err(NnError::from)?,
                    None => lp,
                });
            } else if !regions.is_empty() {
                let (xp, tgt, idx) = region_batch.as_ref().expect("built at step 0");
                let lp = repair_loss(&trainer.forward(xp)?, tgt, idx, self.property_margin)?;
                lr = Some(match lr {
                    Some(l) => (l + lp).map_err(NnError::from)?,
                    None => lp,
                });
            }
            let lr = lr.expect("points or regions");
            let loss = (lt.affine(1.0 - s, 0.0).map_err(NnError::from)?
                + lr.affine(s, 0.0).map_err(NnError::from)?)
            .map_err(NnError::from)?;
            opt.step(&vars, &trainer.grads(&loss)?, None)?;
            report.steps = step + 1;
            if step % 50 == 0 {
                let bound = report
                    .tail_worst
                    .map(|w| format!(", smallest sound bound of a property {w:.3}"))
                    .unwrap_or_default();
                ctx.say(&format!(
                    "warm start: step {step}, {} of {} points met{bound}",
                    met,
                    xs.len()
                ));
            }
        }
        let mut tuned = net.clone();
        if report.steps > 0 {
            match &head {
                Some(h) => {
                    let mut h = h.clone();
                    trainer.write_back(&mut h)?;
                    for id in h.param_ids() {
                        let to = ParamId {
                            node: id.node + first,
                            slot: id.slot,
                        };
                        tuned.set_param(to, h.param(id)?.value().clone())?;
                    }
                }
                None => trainer.write_back(&mut tuned)?,
            }
        }
        report.train_accuracy_after = accuracy(&tuned, train)?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok((tuned, report))
    }
}

/// The sound-bound part of the fine-tuning: every property case's and kept region's
/// requirement rows, bounded through the dense tail that moves.
struct TailTraining {
    tail: CertifiedTail,
    /// Per row: the hinge's target (the bound it asks for).
    target: Tensor,
    /// Per row: its weight in the loss (one over the number of boxes of its kind).
    weight: Tensor,
    /// Per row: the bound the stage's end needs.
    need: Vec<f32>,
    /// The rows of the problem's properties come first; the kept regions' after them.
    repair_rows: usize,
    /// Kept-region cases.
    keep_cases: usize,
}

impl WarmOptions {
    /// The sound-bound training of `problem`'s property cases and kept regions when the
    /// layers from `first` on are a dense chain (`None` otherwise: attacks then). A property
    /// row is trained to clear `tail_margin` and must clear half of it; a kept row whose
    /// bound is positive before keeps at least half of `min(tail_margin, its bound / 2)`,
    /// one that is not is kept from getting worse.
    fn tail_training(
        &self,
        net: &Network,
        first: usize,
        offset: usize,
        problem: &RepairProblem,
        trainer: &Trainer,
        ctx: &RepairContext,
    ) -> Result<Option<TailTraining>> {
        let properties: Vec<&netrepair_spec::Property> = problem
            .items
            .iter()
            .filter_map(|item| match item {
                RepairItem::Property { property, .. } => Some(property),
                _ => None,
            })
            .collect();
        let kept = problem.keep.regions.iter().map(|k| &k.property);
        let (mut boxes, mut rows) = (Vec::new(), Vec::new());
        let (mut repair_rows, mut repair_boxes) = (0, 0);
        for (k, property) in properties.iter().copied().chain(kept).enumerate() {
            if k == properties.len() {
                (repair_rows, repair_boxes) = (rows.len(), boxes.len());
            }
            for case in &property.cases {
                if let Some(r) = TailRow::of_case(case, boxes.len()) {
                    boxes.push(&case.input);
                    rows.extend(r);
                }
            }
        }
        if problem.keep.regions.is_empty() {
            (repair_rows, repair_boxes) = (rows.len(), boxes.len());
        }
        let (all, keep_cases) = (boxes.len(), boxes.len() - repair_boxes);
        let Some(tail) = CertifiedTail::new(net, first, &boxes, &rows, |g| {
            ctx.say(&format!(
                "warm start: bounds of the fixed layers over box {} of {all}",
                g + 1
            ));
        })?
        else {
            ctx.say("warm start: the layers that move are not a dense chain; attacks instead of sound bounds");
            return Ok(None);
        };
        let tail = tail.reading_nodes_from(offset);
        let before = tail
            .lower(trainer)?
            .to_vec1::<f32>()
            .map_err(NnError::from)?;
        let m = self.tail_margin as f32;
        let (mut target, mut weight, mut need) = (Vec::new(), Vec::new(), Vec::new());
        for (i, &b) in before.iter().enumerate() {
            if i < repair_rows {
                target.push(m);
                weight.push(1.0 / repair_boxes as f32);
                need.push(m / 2.0);
            } else {
                let keep = if b > 0.0 { m.min(b / 2.0) } else { b };
                target.push(keep);
                weight.push(1.0 / keep_cases as f32);
                need.push(if b > 0.0 {
                    keep / 2.0
                } else {
                    f32::NEG_INFINITY
                });
            }
        }
        let n = before.len();
        let cpu = &Device::Cpu;
        Ok(Some(TailTraining {
            tail,
            target: Tensor::from_vec(target, n, cpu).map_err(NnError::from)?,
            weight: Tensor::from_vec(weight, n, cpu).map_err(NnError::from)?,
            need,
            repair_rows,
            keep_cases,
        }))
    }
}

/// Where fine-tuning starts moving layers ([`WarmOptions::train_from`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainFrom {
    /// Chosen for the network and problem: [`auto_train_from`].
    #[default]
    Auto,
    /// This affine layer (index among the Linear/Conv layers, from 0; 0: every layer moves).
    Layer(usize),
}

impl TrainFrom {
    /// The affine-layer index on `net` for `problem`.
    pub fn resolve(self, net: &Network, problem: &RepairProblem) -> usize {
        match self {
            TrainFrom::Auto => auto_train_from(net, problem),
            TrainFrom::Layer(k) => k,
        }
    }
}

impl std::str::FromStr for TrainFrom {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "auto" {
            return Ok(TrainFrom::Auto);
        }
        s.parse()
            .map(TrainFrom::Layer)
            .map_err(|_| format!("'{s}' is neither 'auto' nor an affine-layer index"))
    }
}

impl std::fmt::Display for TrainFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainFrom::Auto => write!(f, "auto"),
            TrainFrom::Layer(k) => write!(f, "{k}"),
        }
    }
}

/// The [`WarmOptions::train_from`] to use on `problem` when none is named: where the problem
/// has properties or kept regions and the network ends in a chain of Linear and ReLU layers,
/// the first layer of that chain, so that they train on sound bounds
/// ([`WarmOptions::sound_tail`]) and the features below keep every bound the verifier had;
/// otherwise 0 (every layer moves: on point repairs that keeps the most accuracy).
///
/// On resnet_2b (convolutions, then Linear-ReLU-Linear) this is layer 6: 5 of 5 PGD-broken
/// balls proved with no LP, clean accuracy -1.3 pp, certified accuracy +5 pp with 100
/// certified training balls kept (docs/repair.md).
pub fn auto_train_from(net: &Network, problem: &RepairProblem) -> usize {
    let regions = !problem.keep.regions.is_empty()
        || problem
            .items
            .iter()
            .any(|i| matches!(i, RepairItem::Property { .. }));
    if !regions {
        return 0;
    }
    crate::affine_layers(net)
        .iter()
        .position(|&node| crate::certified::is_dense_tail(net, node))
        .unwrap_or(0)
}

/// What the fine-tuning did, in one clause of the outcome's message.
fn fine_tuning_summary(warm: &WarmStartReport) -> String {
    let cases = if warm.sound_tail {
        format!(
            "{} property cases and {} kept-region cases trained on sound bounds, smallest property bound {}",
            warm.cases,
            warm.keep_cases,
            warm.tail_worst.map_or("-".into(), |w| format!("{w:.3}"))
        )
    } else {
        format!(
            "{} property cases, {} counterexamples trained on",
            warm.cases, warm.counterexamples
        )
    };
    format!(
        "fine-tuned affine layers {}.. for {} steps on {} training samples ({} of {} points met after, {} before; {cases})",
        warm.train_from,
        warm.steps,
        warm.train_samples,
        warm.met_after,
        warm.points,
        warm.met_before,
    )
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
        "{}, then {}: {}; re-checked from the original network: {} of {} items repaired",
        fine_tuning_summary(&warm),
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

/// The warm start's outcome when the fine-tuned network needs no LP stage: `tuned` re-checked
/// from `original` confirms every item, loses no kept point and keeps every kept region
/// proved. `None` when it does not (the LP stage then finishes the repair, see [`finish`]);
/// the check stops at the first item not confirmed, so a failed check costs at most one
/// verifier time limit.
///
/// An LP edit of a network the independent verifier already confirms could only move it
/// further from the fine-tuned weights, and the LP is the expensive part on large networks
/// (PREPARED's LP over 50 CIFAR-10 balls ran past an hour, docs/repair.md).
pub fn proved_by_fine_tuning(
    original: &Network,
    tuned: &Network,
    warm: &WarmStartReport,
    problem: &RepairProblem,
    ctx: &RepairContext,
    started: Instant,
) -> Result<Option<RepairOutcome>> {
    ctx.say("checking whether the fine-tuned network already meets the problem");
    let t = Instant::now();
    // Items first, stopping at the first one not confirmed (a property's verification can
    // take the verifier's whole time limit), then the keep set.
    let items = recheck_until(original, tuned, problem, &ctx.check, true)?;
    if items.len() < problem.items.len() || items.iter().any(|i| i.status != ItemStatus::Repaired) {
        return Ok(None);
    }
    let keep = keep_report(original, tuned, &problem.keep, &ctx.check)?;
    if !keep
        .as_ref()
        .is_none_or(|k| k.lost.is_empty() && k.regions_proved == k.regions)
    {
        return Ok(None);
    }
    let rc = Rechecked {
        ok: items.len(),
        items,
        keep,
        seconds: t.elapsed().as_secs_f64(),
    };
    let message = format!(
        "{}; re-checked from the original network: {} of {} items repaired, so no LP stage ran",
        fine_tuning_summary(warm),
        rc.ok,
        rc.items.len()
    );
    let mut out = RepairOutcome::new(
        original,
        tuned.clone(),
        "warm-start",
        EditedLayer::All,
        RepairStatus::Proved,
        message,
        rc.items,
        started,
    )?;
    out.layer = "all (fine-tuned)".to_string();
    out.timings.train_s = warm.seconds;
    out.timings.recheck_s = rc.seconds;
    out.keep = rc.keep;
    out.notes.push(
        "the fine-tuned network already passes the independent re-check: the LP stage was skipped"
            .to_string(),
    );
    out.warm_start = Some(warm.clone());
    Ok(Some(out))
}

/// The rest of a warm-started repair once `tuned` is fine-tuned from `original`: no LP
/// stage when the fine-tuned network already passes the re-check
/// ([`proved_by_fine_tuning`]), else `then` on `tuned` and [`finish`].
pub fn repair_tuned(
    original: &Network,
    tuned: &Network,
    warm: WarmStartReport,
    then: &dyn Repair,
    problem: &RepairProblem,
    ctx: &RepairContext,
    started: Instant,
) -> Result<RepairOutcome> {
    if let Some(out) = proved_by_fine_tuning(original, tuned, &warm, problem, ctx, started)? {
        return Ok(out);
    }
    let lp = then.repair(tuned, problem, ctx)?;
    finish(original, warm, lp, problem, ctx, started)
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
        repair_tuned(net, &tuned, warm, self.then.as_ref(), problem, ctx, started)
    }
}

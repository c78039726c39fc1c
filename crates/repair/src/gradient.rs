//! Gradient-based repair for when only a few data points are at hand and no guarantee is
//! needed: I-REPAIR (seed 001) and the baselines it is compared with, fine-tuning
//! ("retraining" on the available data) and random locking.
//!
//! All three run the same loop and differ only in which parameters may move:
//!
//! 1. the repair points the network still gets wrong (`R⊥`) are found by a forward pass; if
//!    none is left (by `margin`), stop;
//! 2. I-REPAIR: `g_C`, the gradient of the correct-set influence loss (mean of `sum_i |y_i|`,
//!    or cross-entropy) and `g_R`, the gradient of cross-entropy over the repair set `R` (the
//!    reference implementation's loss; `R⊥` only with `all_repair_points` off); a parameter may
//!    move only when `(|g_R| + 1e-8) / (gamma |g_C| + 1e-8) >= 1`. Random locking freezes each
//!    parameter with probability `p`, drawn afresh each iteration. Fine-tuning freezes nothing;
//! 3. one optimiser step (RMSprop by default) on the mean cross-entropy over `C ∪ R`, with
//!    the frozen entries' gradients zeroed (as the reference implementation does, so the
//!    optimiser state of a frozen entry decays instead of accumulating).
//!
//! With `gamma = 0` every score is at least one and I-REPAIR is exactly fine-tuning
//! (Observation 2 of the paper); a test checks this bit for bit. Training runs in f32, so the
//! result is exactly what an ONNX float32 file stores; the points are then re-checked by an f64
//! forward pass ([`crate::recheck`]) and only those are reported repaired.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use netrepair_nn::{cross_entropy, Network, NnError, Optimizer, OptimizerKind, ParamId, Trainer};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::{rule, RepairError, Result};
use crate::locking::{CorrectLoss, Locking};
use crate::outcome::{
    EditedLayer, IterationStat, MethodDetails, RepairOutcome, RepairStatus, Timings, TrainingReport,
};
use crate::problem::{classifies, LabelledSet, RepairItem, RepairProblem, Requirement};
use crate::recheck::timed_recheck;
use crate::samples::{batch, labels_tensor, mixup_points, rows, squared_change};
use crate::{Repair, RepairContext};

/// What the training loss asks of the correct set `C`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum CorrectTerm {
    /// Cross-entropy against the labels (the reference implementation's loss): keeps `C`
    /// classified right, and keeps pushing it to more confident outputs.
    CrossEntropy,
    /// The squared change of the original network's logits on `C`, `weight * mean_c sum_j
    /// (y_j - y0_j)^2`: keeps the network's function on `C`, not only its labels.
    Logits {
        /// Weight of the term against the repair set's cross-entropy.
        weight: f64,
    },
}

impl std::str::FromStr for CorrectTerm {
    type Err = RepairError;

    /// `ce` (or `cross-entropy`), `logits` (weight 1) or `logits:W`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            RepairError::Problem(format!(
                "unknown correct-set term '{s}' (ce, logits or logits:W with W > 0)"
            ))
        };
        match s.trim() {
            "ce" | "cross-entropy" => Ok(CorrectTerm::CrossEntropy),
            "logits" => Ok(CorrectTerm::Logits { weight: 1.0 }),
            t => {
                let w: f64 = t
                    .strip_prefix("logits:")
                    .and_then(|w| w.trim().parse().ok())
                    .ok_or_else(bad)?;
                if w > 0.0 && w.is_finite() {
                    Ok(CorrectTerm::Logits { weight: w })
                } else {
                    Err(bad())
                }
            }
        }
    }
}

/// Settings of the optimisation loop.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientOptions {
    /// Learning rate.
    pub lr: f64,
    /// Largest number of iterations (each one optimiser step).
    pub max_iters: usize,
    /// Optimiser (RMSprop as in the paper by default).
    pub optimizer: OptimizerKind,
    /// A labelled point counts as fixed when its softmax probability of the true class exceeds
    /// every other class's by more than this (0: the true class is the strict arg-max); a
    /// point with general requirements when every requirement holds by this much.
    pub margin: f64,
    /// Seed of random locking.
    pub seed: u64,
    /// Train on every repair point, fixed or not (the reference implementation's loss:
    /// cross-entropy over `C ∪ R`), rather than only on those still wrong (`C ∪ R⊥`). The
    /// first measured better on mnist-net_256x2 (0.62 against 0.85 pp at |R| = 4): a fixed
    /// point keeps being pushed away from the boundary instead of sliding back.
    pub all_repair_points: bool,
    /// The correct set's term in the training loss.
    pub correct_term: CorrectTerm,
    /// Synthetic keep points: this many convex combinations of random pairs of correct-set
    /// inputs whose original logits the loss preserves (weight of the `Logits` term, or 1),
    /// so the network keeps its function between the kept samples, not only on them. 0: none.
    pub mixup: usize,
    /// Draw the synthetic keep points afresh in every step (`mixup` per step) rather than
    /// once: the term then preserves the network over the whole space between the kept
    /// samples at the cost of `mixup` points per step.
    pub mixup_fresh: bool,
}

impl Default for GradientOptions {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            max_iters: 5000,
            optimizer: OptimizerKind::rmsprop(),
            margin: 0.0,
            seed: 0,
            all_repair_points: true,
            correct_term: CorrectTerm::CrossEntropy,
            mixup: 0,
            mixup_fresh: false,
        }
    }
}

/// What a repair point must satisfy.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Label(usize),
    Requirements(Vec<Requirement>),
}

impl Target {
    pub(crate) fn of(reqs: &[Requirement], outputs: usize) -> Self {
        Requirement::label_of(reqs, outputs)
            .map_or_else(|| Target::Requirements(reqs.to_vec()), Target::Label)
    }

    /// Whether `y` meets the target with `margin` to spare.
    pub(crate) fn met(&self, y: &[f64], margin: f64) -> bool {
        match self {
            Target::Label(c) => {
                if margin <= 0.0 {
                    return classifies(y, *c);
                }
                let top = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = y.iter().map(|v| (v - top).exp()).collect();
                let z: f64 = e.iter().sum();
                e.iter()
                    .enumerate()
                    .all(|(j, &v)| j == *c || (e[*c] - v) / z > margin)
            }
            Target::Requirements(reqs) => reqs
                .iter()
                .all(|r| r.holds(y) && -r.constraint.slack(y) >= margin),
        }
    }
}

/// The repair loss over the rows `wrong` of `out`: cross-entropy when every target is a
/// label, otherwise a hinge on every requirement (shifted by `max(margin, 1e-3)`).
pub(crate) fn repair_loss(
    out: &Tensor,
    targets: &[Target],
    wrong: &[usize],
    margin: f64,
) -> Result<Tensor> {
    let idx: Vec<u32> = wrong.iter().map(|&i| i as u32).collect();
    let ids = Tensor::from_vec(idx, wrong.len(), &Device::Cpu).map_err(NnError::from)?;
    let n = out.dims()[0];
    let sel = out
        .reshape((n, ()))
        .and_then(|o| o.index_select(&ids, 0))
        .map_err(NnError::from)?;
    let labels: Option<Vec<usize>> = wrong
        .iter()
        .map(|&i| match &targets[i] {
            Target::Label(c) => Some(*c),
            Target::Requirements(_) => None,
        })
        .collect();
    if let Some(labels) = labels {
        return Ok(cross_entropy(&sel, &labels_tensor(&labels)?)?);
    }
    let m = sel.dims()[1];
    let shift = margin.max(1e-3);
    let mut total: Option<Tensor> = None;
    for (row, &i) in wrong.iter().enumerate() {
        let reqs = match &targets[i] {
            Target::Label(c) => Requirement::label(*c, m),
            Target::Requirements(r) => r.clone(),
        };
        let mut a = vec![0f32; reqs.len() * m];
        let mut b = Vec::with_capacity(reqs.len());
        for (k, r) in reqs.iter().enumerate() {
            for &(j, v) in &r.constraint.coeffs {
                a[k * m + j] = v as f32;
            }
            b.push((r.constraint.rhs - shift) as f32);
        }
        let term = (|| {
            let a = Tensor::from_vec(a, (reqs.len(), m), &Device::Cpu)?;
            let b = Tensor::from_vec(b, reqs.len(), &Device::Cpu)?;
            let y = sel.get(row)?.unsqueeze(1)?;
            a.matmul(&y)?.squeeze(1)?.sub(&b)?.relu()?.sum_all()
        })()
        .map_err(NnError::from)?;
        total = Some(match total {
            Some(t) => (t + term).map_err(NnError::from)?,
            None => term,
        });
    }
    let total = total.expect("at least one wrong row");
    Ok(total
        .affine(1.0 / wrong.len() as f64, 0.0)
        .map_err(NnError::from)?)
}

/// Per trainable parameter: I-REPAIR's scores and the resulting mask (1: may move).
#[derive(Debug, Clone, PartialEq)]
pub struct InfluenceMask {
    /// The parameter.
    pub param: ParamId,
    /// `(|g_R| + 1e-8) / (gamma |g_C| + 1e-8)` per entry (row-major).
    pub scores: Vec<f64>,
    /// Whether each entry may move (`score >= 1`).
    pub free: Vec<bool>,
}

/// Per-entry scores from the two gradients; a missing gradient (the loss does not depend on
/// the parameter) counts as zero. `None` when both are missing.
fn influence(g_r: Option<&Tensor>, g_c: Option<&Tensor>, gamma: f64) -> Result<Option<Tensor>> {
    let Some(like) = g_r.or(g_c) else {
        return Ok(None);
    };
    let abs_or_zero = |g: Option<&Tensor>| match g {
        Some(g) => g.abs(),
        None => like.zeros_like(),
    };
    let run = || -> candle_core::Result<Tensor> {
        let num = (abs_or_zero(g_r)? + 1e-8)?;
        let den = (abs_or_zero(g_c)?.affine(gamma, 0.0)? + 1e-8)?;
        num / den
    };
    Ok(Some(run().map_err(NnError::from)?))
}

fn grads_of(trainer: &Trainer, loss: &Tensor) -> Result<Vec<Option<Tensor>>> {
    Ok(trainer.grads(loss)?)
}

/// The correct-set influence loss.
fn correct_influence_loss(out_c: &Tensor, yc: &Tensor, loss: CorrectLoss) -> Result<Tensor> {
    Ok(match loss {
        CorrectLoss::Magnitude => {
            let n = out_c.dims()[0] as f64;
            out_c
                .abs()
                .and_then(|a| a.sum_all())
                .and_then(|s| s.affine(1.0 / n, 0.0))
                .map_err(NnError::from)?
        }
        CorrectLoss::CrossEntropy => cross_entropy(out_c, yc)?,
    })
}

/// I-REPAIR's scores and mask for `net` on correct set `correct` and the labelled repair
/// points `repair` (all of them are taken as still wrong), computed in f64: what one
/// iteration of the loop uses.
pub fn influence_mask(
    net: &Network,
    correct: &LabelledSet,
    repair: &LabelledSet,
    gamma: f64,
    correct_loss: CorrectLoss,
) -> Result<Vec<InfluenceMask>> {
    correct.check(net, "correct set")?;
    repair.check(net, "repair set")?;
    if repair.is_empty() {
        return Err(RepairError::Problem("the repair set is empty".into()));
    }
    let trainer = Trainer::new(net, DType::F64)?;
    let to64 = |t: Tensor| t.to_dtype(DType::F64).map_err(NnError::from);
    let out_r = trainer.forward(&to64(batch(net, &repair.inputs)?)?)?;
    let g_r = grads_of(
        &trainer,
        &cross_entropy(&out_r, &labels_tensor(&repair.labels)?)?,
    )?;
    let g_c = if correct.is_empty() {
        vec![None; g_r.len()]
    } else {
        let out_c = trainer.forward(&to64(batch(net, &correct.inputs)?)?)?;
        let yc = labels_tensor(&correct.labels)?;
        grads_of(
            &trainer,
            &correct_influence_loss(&out_c, &yc, correct_loss)?,
        )?
    };
    let mut out = Vec::new();
    for ((id, gr), gc) in trainer.var_ids().into_iter().zip(&g_r).zip(&g_c) {
        let entries = net.param(id)?.to_vec()?.len();
        let scores = match influence(gr.as_ref(), gc.as_ref(), gamma)? {
            Some(s) => s
                .flatten_all()
                .and_then(|s| s.to_vec1::<f64>())
                .map_err(NnError::from)?,
            None => vec![0.0; entries],
        };
        let free = scores.iter().map(|&s| s >= 1.0).collect();
        out.push(InfluenceMask {
            param: id,
            scores,
            free,
        });
    }
    Ok(out)
}

/// I-REPAIR, fine-tuning and random locking (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct GradientRepair {
    /// Which parameters may move.
    pub locking: Locking,
    /// The optimisation loop's settings.
    pub options: GradientOptions,
}

impl GradientRepair {
    /// The settings in words ("irepair gamma 1, C term logits:10, 100 mixup points per
    /// step, rmsprop lr 0.0001").
    pub fn describe(&self) -> String {
        let o = &self.options;
        let lock = match self.locking {
            Locking::Nothing => "finetune".to_string(),
            Locking::Influence { gamma, .. } => format!("irepair gamma {gamma}"),
            Locking::Random { p } => format!("random-lock p {p}"),
        };
        let term = match o.correct_term {
            CorrectTerm::CrossEntropy => "ce".to_string(),
            CorrectTerm::Logits { weight } => format!("logits:{weight}"),
        };
        let mix = match (o.mixup, o.mixup_fresh) {
            (0, _) => String::new(),
            (n, true) => format!(", {n} mixup points per step"),
            (n, false) => format!(", {n} mixup points"),
        };
        let opt = match o.optimizer {
            OptimizerKind::Sgd { .. } => "sgd",
            OptimizerKind::Adam { .. } => "adam",
            OptimizerKind::RmsProp { .. } => "rmsprop",
        };
        format!("{lock}, C term {term}{mix}, {opt} lr {}", o.lr)
    }

    /// I-REPAIR with weight `gamma` and the magnitude loss for the correct set.
    pub fn irepair(gamma: f64) -> Self {
        Self {
            locking: Locking::Influence {
                gamma,
                correct_loss: CorrectLoss::Magnitude,
            },
            options: GradientOptions::default(),
        }
    }

    /// Fine-tuning on the correct set plus the unfixed repair points (no locking).
    pub fn finetune() -> Self {
        Self {
            locking: Locking::Nothing,
            options: GradientOptions::default(),
        }
    }

    /// Fine-tuning with each parameter frozen with probability `p` in each step.
    pub fn random_lock(p: f64) -> Self {
        Self {
            locking: Locking::Random { p },
            options: GradientOptions::default(),
        }
    }

    /// Validates the settings against `net` and the correct set (the problem's kept points),
    /// naming the first rule broken.
    pub fn check(&self, net: &Network, correct: &LabelledSet) -> Result<()> {
        let o = &self.options;
        rule::positive("lr", o.lr)?;
        rule::at_least_one("max_iters", o.max_iters)?;
        rule::below_one("margin", o.margin)?;
        match self.locking {
            Locking::Influence { gamma, .. } => {
                rule::non_negative("locking.gamma", gamma)?;
                if correct.is_empty() {
                    return Err(RepairError::Problem(
                        "I-REPAIR needs a correct set (the keep set's points: samples the network gets right) to measure influence on"
                            .into(),
                    ));
                }
            }
            Locking::Random { p } => rule::share("locking.p", p)?,
            Locking::Nothing => {}
        }
        correct.check(net, "correct set")
    }
}

/// Gradients per parameter tensor (`None` where the loss does not depend on it).
type Grads = Vec<Option<Tensor>>;

/// The correct set's terms of each step: its batch, its labels, and what the squared-change
/// terms compare against.
struct CorrectTerms {
    x: Tensor,
    labels: Tensor,
    /// The original logits on the correct set (the logit-preservation term).
    original: Option<Tensor>,
    /// Mixup points between pairs of correct-set samples, with their original logits.
    mix: Option<(Tensor, Tensor)>,
    /// Its size.
    n: f64,
}

/// The correct set's gradients and loss in one step.
struct CorrectGrads {
    /// Of the training term.
    train: Grads,
    /// Of the influence loss, when it is not the training term.
    influence: Option<Grads>,
    /// The training term's value.
    loss: f64,
}

impl CorrectTerms {
    /// `None` for an empty correct set.
    fn new(
        net: &Network,
        trainer: &Trainer,
        correct: &LabelledSet,
        o: &GradientOptions,
    ) -> Result<Option<Self>> {
        if correct.is_empty() {
            return Ok(None);
        }
        let x = batch(net, &correct.inputs)?;
        let original = match o.correct_term {
            CorrectTerm::Logits { .. } => Some(trainer.forward(&x)?.detach()),
            CorrectTerm::CrossEntropy => None,
        };
        let mix = match mixup_batch(net, correct, o, o.seed)? {
            Some(xm) => {
                let ym = trainer.forward(&xm)?.detach();
                Some((xm, ym))
            }
            None => None,
        };
        Ok(Some(Self {
            x,
            labels: labels_tensor(&correct.labels)?,
            original,
            mix,
            n: correct.len() as f64,
        }))
    }

    /// Draws the mixup points again (when there are any) with the original network's logits.
    fn redraw_mixup(
        &mut self,
        net: &Network,
        correct: &LabelledSet,
        o: &GradientOptions,
        seed: u64,
    ) -> Result<()> {
        if let Some(xm) = mixup_batch(net, correct, o, seed)? {
            let ym = net.forward(&xm)?.detach();
            self.mix = Some((xm, ym));
        }
        Ok(())
    }
}

/// Mixup points between pairs of correct-set samples as a batch, when asked for and there
/// are two samples to mix.
fn mixup_batch(
    net: &Network,
    correct: &LabelledSet,
    o: &GradientOptions,
    seed: u64,
) -> Result<Option<Tensor>> {
    (o.mixup > 0 && correct.len() >= 2)
        .then(|| batch(net, &mixup_points(&correct.inputs, o.mixup, seed)))
        .transpose()
}

impl GradientRepair {
    /// The repair points and what each must meet; anything else is refused.
    fn points(&self, problem: &RepairProblem, m: usize) -> Result<(Vec<Vec<f64>>, Vec<Target>)> {
        let mut xs = Vec::new();
        let mut targets = Vec::new();
        for (i, item) in problem.items.iter().enumerate() {
            match item {
                RepairItem::Point { x, requirements } => {
                    xs.push(x.clone());
                    targets.push(Target::of(requirements, m));
                }
                other => {
                    return Err(RepairError::Unsupported(format!(
                        "item {i} is a {}: {} repairs points only (use --method pft or prepared for properties, aprnn for polytopes)",
                        other.kind(),
                        self.name()
                    )))
                }
            }
        }
        Ok((xs, targets))
    }

    /// The correct set's training term (cross-entropy or the logits' squared change, plus the
    /// mixup term scaled to weigh as the logit term does) and its gradients, with the
    /// influence loss's gradients when the locking needs another loss than the training one.
    /// `nw` is the number of repair points trained on.
    fn correct_grads(&self, trainer: &Trainer, c: &CorrectTerms, nw: f64) -> Result<CorrectGrads> {
        let o = &self.options;
        let out = trainer.forward(&c.x)?;
        let ce = || cross_entropy(&out, &c.labels);
        let train = match (o.correct_term, &c.original) {
            (CorrectTerm::Logits { weight }, Some(y0)) => squared_change(&out, y0, weight / c.n)?,
            _ => ce()?,
        };
        let train = match &c.mix {
            // Scaled so that the term weighs as much as the logit term in the total loss.
            Some((xm, ym)) => {
                let mix_weight = match o.correct_term {
                    CorrectTerm::Logits { weight } => weight,
                    CorrectTerm::CrossEntropy => 1.0,
                };
                let scale = mix_weight * (nw + c.n) / (c.n * o.mixup as f64);
                let t = squared_change(&trainer.forward(xm)?, ym, scale)?;
                (train + t).map_err(NnError::from)?
            }
            None => train,
        };
        // The influence gradient: the magnitude loss, or the cross-entropy (the training
        // gradient when that is the training term).
        let influence = match (self.locking, o.correct_term) {
            (
                Locking::Influence {
                    correct_loss: CorrectLoss::Magnitude,
                    ..
                },
                _,
            ) => Some(grads_of(
                trainer,
                &correct_influence_loss(&out, &c.labels, CorrectLoss::Magnitude)?,
            )?),
            (
                Locking::Influence {
                    correct_loss: CorrectLoss::CrossEntropy,
                    ..
                },
                CorrectTerm::Logits { .. },
            ) => Some(grads_of(trainer, &ce()?)?),
            _ => None,
        };
        let loss = train
            .to_dtype(DType::F64)
            .and_then(|t| t.to_scalar::<f64>())
            .map_err(NnError::from)?;
        Ok(CorrectGrads {
            train: grads_of(trainer, &train)?,
            influence,
            loss,
        })
    }

    /// Which entries of one parameter tensor may move this step (1) and which are locked
    /// (0): by influence (`g_r` the repair gradient, `g_c` the correct set's influence
    /// gradient), at random, or none locked (`None`).
    fn mask(
        &self,
        g_r: Option<&Tensor>,
        g_c: Option<&Tensor>,
        var: &candle_core::Var,
        rng: &mut impl Rng,
    ) -> Result<Option<Tensor>> {
        Ok(match self.locking {
            Locking::Nothing => None,
            Locking::Influence { gamma, .. } => influence(g_r, g_c, gamma)?
                .map(|s| s.ge(1.0).and_then(|b| b.to_dtype(DType::F32)))
                .transpose()
                .map_err(NnError::from)?,
            Locking::Random { p } => {
                let t = var.as_tensor();
                let keep: Vec<f32> = (0..t.elem_count())
                    .map(|_| if rng.random::<f64>() < p { 0.0 } else { 1.0 })
                    .collect();
                Some(Tensor::from_vec(keep, t.shape(), &Device::Cpu).map_err(NnError::from)?)
            }
        })
    }
}

/// `nw / (nw + nc) g_r + nc / (nw + nc) g_c`, a missing gradient counting as zero.
fn weighted_sum(
    g_r: Option<&Tensor>,
    g_c: Option<&Tensor>,
    nw: f64,
    nc: f64,
) -> Result<Option<Tensor>> {
    let (wr, wc) = (nw / (nw + nc), nc / (nw + nc));
    match (g_r, g_c) {
        (None, None) => None,
        (Some(r), None) => Some(r.affine(wr, 0.0)),
        (None, Some(c)) => Some(c.affine(wc, 0.0)),
        (Some(r), Some(c)) => Some(r.affine(wr, 0.0).and_then(|r| r + c.affine(wc, 0.0)?)),
    }
    .transpose()
    .map_err(|e| NnError::from(e).into())
}

impl Repair for GradientRepair {
    fn name(&self) -> &'static str {
        match self.locking {
            Locking::Nothing => "finetune",
            Locking::Influence { .. } => "irepair",
            Locking::Random { .. } => "random-lock",
        }
    }

    fn repair(
        &self,
        net: &Network,
        problem: &RepairProblem,
        ctx: &RepairContext,
    ) -> Result<RepairOutcome> {
        let started = Instant::now();
        problem.validate(net.input_len(), net.output_len())?;
        let correct = &problem.keep.points;
        self.check(net, correct)?;
        let (xs, targets) = self.points(problem, net.output_len())?;
        let o = &self.options;
        let mut notes = Vec::new();
        let correct_before = correct.count_correct(net)?;
        if correct_before < correct.len() {
            notes.push(format!(
                "{} of the {} correct-set samples are misclassified by the original network; they are trained on all the same",
                correct.len() - correct_before,
                correct.len()
            ));
        }

        let trainer = Trainer::new(net, DType::F32)?;
        let vars = trainer.vars();
        let total_params: usize = vars.iter().map(|v| v.as_tensor().elem_count()).sum();
        let mut opt = Optimizer::new(o.optimizer, o.lr, 0.0, vars.len())?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(o.seed);
        let xr = batch(net, &xs)?;
        let mut terms = CorrectTerms::new(net, &trainer, correct, o)?;
        let nc = correct.len() as f64;
        let stride = (o.max_iters / 250).max(1);
        let mut history = Vec::new();
        let (mut iterations, mut converged, mut frozen_sum) = (0, false, 0.0);
        let train_start = Instant::now();
        for iter in 0..=o.max_iters {
            let out_r = trainer.forward(&xr)?;
            let wrong: Vec<usize> = rows(&out_r)?
                .iter()
                .enumerate()
                .filter(|(i, y)| !targets[*i].met(y, o.margin))
                .map(|(i, _)| i)
                .collect();
            if wrong.is_empty() {
                converged = true;
                break;
            }
            if iter == o.max_iters {
                break;
            }
            let all: Vec<usize>;
            let train_on = if o.all_repair_points {
                all = (0..targets.len()).collect();
                &all
            } else {
                &wrong
            };
            if let (true, Some(t)) = (o.mixup_fresh && iter > 0, terms.as_mut()) {
                t.redraw_mixup(net, correct, o, o.seed.wrapping_add(iter as u64))?;
            }
            let loss_r = repair_loss(&out_r, &targets, train_on, o.margin)?;
            let g_r = grads_of(&trainer, &loss_r)?;
            let nw = train_on.len() as f64;
            let gc = terms
                .as_ref()
                .map(|t| self.correct_grads(&trainer, t, nw))
                .transpose()?;
            let lr_val = loss_r
                .to_dtype(DType::F64)
                .and_then(|t| t.to_scalar::<f64>())
                .map_err(NnError::from)?;
            let mut frozen = 0usize;
            let mut step = Vec::with_capacity(vars.len());
            for (k, var) in vars.iter().enumerate() {
                let g_train = gc.as_ref().and_then(|g| g.train[k].as_ref());
                // Cross-entropy influence when cross-entropy is the training term.
                let g_infl = match gc.as_ref().and_then(|g| g.influence.as_ref()) {
                    Some(g) => g[k].as_ref(),
                    None => g_train,
                };
                let mask = self.mask(g_r[k].as_ref(), g_infl, var, &mut rng)?;
                step.push(
                    match (weighted_sum(g_r[k].as_ref(), g_train, nw, nc)?, mask) {
                        (Some(g), Some(mk)) => {
                            let free = mk
                                .sum_all()
                                .and_then(|s| s.to_scalar::<f32>())
                                .map_err(NnError::from)?;
                            frozen += var.as_tensor().elem_count() - free as usize;
                            Some((g * mk).map_err(NnError::from)?)
                        }
                        (g, _) => g,
                    },
                );
            }
            opt.step(&vars, &step, None)?;
            iterations = iter + 1;
            let frozen = frozen as f64 / total_params.max(1) as f64;
            frozen_sum += frozen;
            if iter % stride == 0 {
                let loss_c = gc.as_ref().map_or(0.0, |g| g.loss);
                history.push(IterationStat {
                    iter,
                    remaining: wrong.len(),
                    loss: (nw * lr_val + nc * loss_c) / (nw + nc),
                    frozen,
                });
                ctx.say(&format!(
                    "{}: iteration {iter}, {} of {} points left",
                    self.name(),
                    wrong.len(),
                    xs.len()
                ));
            }
        }
        let train_s = train_start.elapsed().as_secs_f64();
        let mut repaired = net.clone();
        trainer.write_back(&mut repaired)?;
        let trained = Trained {
            history,
            iterations,
            converged,
            frozen_sum,
            train_s,
            correct_before,
            notes,
        };
        self.outcome(net, repaired, problem, ctx, trained, started)
    }
}

/// What the training loop of [`GradientRepair`] did, for its outcome.
struct Trained {
    history: Vec<IterationStat>,
    iterations: usize,
    converged: bool,
    frozen_sum: f64,
    train_s: f64,
    correct_before: usize,
    notes: Vec<String>,
}

impl GradientRepair {
    /// Re-checks `repaired` and writes the outcome.
    fn outcome(
        &self,
        net: &Network,
        repaired: Network,
        problem: &RepairProblem,
        ctx: &RepairContext,
        t: Trained,
        started: Instant,
    ) -> Result<RepairOutcome> {
        let correct = &problem.keep.points;
        let rc = timed_recheck(net, &repaired, problem, ctx)?;
        let (items, ok) = (rc.items, rc.ok);
        let correct_after = correct.count_correct(&repaired)?;
        let message = format!(
            "{ok} of {} points repaired (f64 forward pass) after {} iterations{}; correct set: {correct_after} of {} right (before: {})",
            items.len(),
            t.iterations,
            if t.converged { "" } else { ", the iteration limit" },
            correct.len(),
            t.correct_before
        );
        let status = RepairStatus::of_items(&items);
        let mut out = RepairOutcome::new(
            net,
            repaired,
            self.name(),
            EditedLayer::All,
            status,
            message,
            items,
            started,
        )?;
        out.timings = Timings {
            train_s: t.train_s,
            recheck_s: rc.seconds,
            ..Timings::default()
        };
        out.notes = t.notes;
        out.keep = rc.keep;
        out.details = Some(MethodDetails::Training(TrainingReport {
            locking: self.locking,
            lr: self.options.lr,
            iterations: t.iterations,
            converged: t.converged,
            mean_frozen: if t.iterations > 0 {
                t.frozen_sum / t.iterations as f64
            } else {
                0.0
            },
            correct_before: t.correct_before,
            correct_after,
            correct_total: correct.len(),
            history: t.history,
        }));
        Ok(out)
    }
}

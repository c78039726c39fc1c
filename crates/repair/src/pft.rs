//! Provable fine-tuning (PFT): the gradient baseline for properties. Fine-tune with a
//! differentiable penalty of the property's violation (DL2-style) on counterexamples, ask the
//! verifier, mine more counterexamples, repeat until the verifier proves every property or the
//! rounds run out.
//!
//! The penalty of an output `y` for a case is, summed over its unsafe polytopes,
//! `min_j relu(margin - s_j(y))` with `s_j` the slack of the polytope's `j`-th constraint: zero
//! once some constraint is violated by `margin`, i.e. `y` has left the polytope. Counterexamples
//! come from the verifier, from PGD (a new seed each round) and from uniform samples of each
//! case's box; they accumulate over the rounds. To keep the rest of the behaviour, the loss
//! adds the squared output change on box samples the original network already gets right
//! (`fidelity_weight`) and cross-entropy on the keep set's points (optional). Only the verifier's verdict
//! (the independent re-check) makes an item "repaired".

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use netrepair_nn::{cross_entropy, Network, NnError, Optimizer, OptimizerKind, Trainer};
use netrepair_spec::Case;
use netrepair_verify::{check_property, pgd, PgdOptions, Verdict};
use rand::{Rng, SeedableRng};

use crate::error::{rule, RepairError, Result};
use crate::locking::Locking;
use crate::outcome::{EditedLayer, MethodDetails, RepairOutcome, RepairStatus, Timings};
use crate::outcome::{IterationStat, TrainingReport};
use crate::problem::{LabelledSet, RepairItem, RepairProblem};
use crate::recheck::timed_recheck;
use crate::samples::{batch, labels_tensor, rows};
use crate::{Repair, RepairContext};

/// Provable fine-tuning (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Pft {
    /// Learning rate.
    pub lr: f64,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Verify-and-train rounds at most.
    pub rounds: usize,
    /// Optimiser steps per round at most (a round ends early once no counterexample is left).
    pub steps_per_round: usize,
    /// Uniform samples per case and round (counterexample mining and fidelity anchors).
    pub samples_per_case: usize,
    /// Weight of the fidelity term.
    pub fidelity_weight: f64,
    /// How far outside the unsafe region the penalty pushes.
    pub margin: f64,
    /// Seed of the sampling and of PGD.
    pub seed: u64,
}

impl Default for Pft {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            optimizer: OptimizerKind::adam(),
            rounds: 10,
            steps_per_round: 200,
            samples_per_case: 256,
            fidelity_weight: 1.0,
            margin: 1e-2,
            seed: 0,
        }
    }
}

/// Counterexamples and anchors of one case.
struct CaseData<'a> {
    case: &'a Case,
    cex: Vec<Vec<f64>>,
    anchors: Vec<Vec<f64>>,
    anchor_targets: Vec<Vec<f64>>,
}

/// Per case: the counterexample batch and the fidelity anchors with their target outputs.
type CaseBatches = (Option<Tensor>, Option<(Tensor, Tensor)>);

/// The penalty of outputs `y` `[B, m]` for `case`, summed over the batch.
fn penalty(y: &Tensor, case: &Case, margin: f64) -> candle_core::Result<Tensor> {
    let (_, m) = y.dims2()?;
    let mut total = Tensor::zeros((), y.dtype(), y.device())?;
    for poly in &case.unsafe_region {
        let k = poly.constraints.len();
        if k == 0 {
            continue;
        }
        let mut a = vec![0f32; k * m];
        let mut rhs = vec![0f32; k];
        for (r, c) in poly.constraints.iter().enumerate() {
            for &(j, v) in &c.coeffs {
                a[r * m + j] += v as f32;
            }
            rhs[r] = (c.rhs + margin) as f32;
        }
        let a = Tensor::from_vec(a, (k, m), &Device::Cpu)?;
        let rhs = Tensor::from_vec(rhs, (1, k), &Device::Cpu)?;
        // margin - s_j = (rhs_j + margin) - a_j y.
        let gap = rhs.broadcast_sub(&y.matmul(&a.t()?)?)?.relu()?;
        total = (total + gap.min(1)?.sum_all()?)?;
    }
    Ok(total)
}

fn uniform(case: &Case, n: usize, rng: &mut impl Rng) -> Vec<Vec<f64>> {
    let b = &case.input;
    (0..n)
        .map(|_| {
            (0..b.dim())
                .map(|i| {
                    if b.upper[i] > b.lower[i] {
                        rng.random_range(b.lower[i]..=b.upper[i])
                    } else {
                        b.lower[i]
                    }
                })
                .collect()
        })
        .collect()
}

fn f32_rows(net: &Network, xs: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
    if xs.is_empty() {
        return Ok(Vec::new());
    }
    let y = net.forward(&batch(net, xs)?)?;
    rows(&y)
}

impl Pft {
    /// Checks the settings against `net` and the correct set, naming the first rule broken.
    pub fn check(&self, net: &Network, correct: &LabelledSet) -> Result<()> {
        rule::positive("lr", self.lr)?;
        rule::at_least_one("rounds", self.rounds)?;
        rule::at_least_one("steps_per_round", self.steps_per_round)?;
        rule::non_negative("fidelity_weight", self.fidelity_weight)?;
        rule::non_negative("margin", self.margin)?;
        if !correct.is_empty() {
            correct.check(net, "correct set")?;
        }
        Ok(())
    }
}

/// What the verify-and-train loop did, for the outcome.
#[derive(Default)]
struct LoopStats {
    history: Vec<IterationStat>,
    steps: usize,
    verify_s: f64,
    train_s: f64,
    proved_in_loop: bool,
    stopped: Option<String>,
}

/// The cases of every property item of `problem` (PFT repairs nothing else).
fn property_cases(problem: &RepairProblem) -> Result<Vec<CaseData<'_>>> {
    let mut cases = Vec::new();
    for (i, item) in problem.items.iter().enumerate() {
        match item {
            RepairItem::Property { property, .. } => {
                cases.extend(property.cases.iter().map(|case| CaseData {
                    case,
                    cex: Vec::new(),
                    anchors: Vec::new(),
                    anchor_targets: Vec::new(),
                }))
            }
            other => {
                return Err(RepairError::Unsupported(format!(
                    "item {i} is a {}: pft repairs VNN-LIB properties (use irepair or aprnn for points)",
                    other.kind()
                )))
            }
        }
    }
    Ok(cases)
}

/// Asks the verifier about every property on `current`; adds its counterexamples to the case
/// they fall in. True when every property holds.
fn verify_all(
    current: &Network,
    problem: &RepairProblem,
    cases: &mut [CaseData],
    ctx: &RepairContext,
) -> Result<bool> {
    let mut all_hold = true;
    for item in &problem.items {
        let RepairItem::Property { property, .. } = item else {
            continue;
        };
        match check_property(current, property, &ctx.check)?.verdict {
            Verdict::Holds => {}
            Verdict::Violated(c) => {
                all_hold = false;
                if let Some(cd) = cases
                    .iter_mut()
                    .find(|cd| cd.case.input.contains(&c.x, 0.0) && cd.case.is_unsafe_output(&c.y))
                {
                    cd.cex.push(c.x);
                }
            }
            Verdict::Unknown(_) => all_hold = false,
        }
    }
    Ok(all_hold)
}

impl Pft {
    /// Fidelity anchors: box samples the original network keeps safe, with its outputs.
    fn add_anchors(&self, net: &Network, cases: &mut [CaseData], rng: &mut impl Rng) -> Result<()> {
        for cd in cases {
            let xs = uniform(cd.case, self.samples_per_case, rng);
            let ys = f32_rows(net, &xs)?;
            for (x, y) in xs.into_iter().zip(ys) {
                if !cd.case.is_unsafe_output(&y) {
                    cd.anchors.push(x);
                    cd.anchor_targets.push(y);
                }
            }
        }
        Ok(())
    }

    /// Mines counterexamples on `current`: PGD with a fresh seed per round and uniform samples
    /// of every case.
    fn mine(
        &self,
        current: &Network,
        cases: &mut [CaseData],
        round: usize,
        rng: &mut impl Rng,
    ) -> Result<()> {
        for cd in cases {
            let opts = PgdOptions {
                seed: self.seed.wrapping_add(round as u64 + 1),
                ..PgdOptions::default()
            };
            if let Some(c) = pgd(current, cd.case, &opts)? {
                cd.cex.push(c.x);
            }
            let xs = uniform(cd.case, self.samples_per_case, rng);
            let ys = f32_rows(current, &xs)?;
            for (x, y) in xs.into_iter().zip(ys) {
                if cd.case.is_unsafe_output(&y) {
                    cd.cex.push(x);
                }
            }
        }
        Ok(())
    }

    /// Per case: the counterexamples as a batch, and the anchors with their target outputs
    /// (none when the fidelity term is off).
    fn batches(&self, net: &Network, cases: &[CaseData]) -> Result<Vec<CaseBatches>> {
        cases
            .iter()
            .map(|cd| -> Result<_> {
                let cex = if cd.cex.is_empty() {
                    None
                } else {
                    Some(batch(net, &cd.cex)?)
                };
                let anchors = if cd.anchors.is_empty() || self.fidelity_weight == 0.0 {
                    None
                } else {
                    let m = net.output_len();
                    let flat: Vec<f32> = cd
                        .anchor_targets
                        .iter()
                        .flatten()
                        .map(|&v| v as f32)
                        .collect();
                    let y = Tensor::from_vec(flat, (cd.anchors.len(), m), &Device::Cpu)
                        .map_err(NnError::from)?;
                    Some((batch(net, &cd.anchors)?, y))
                };
                Ok((cex, anchors))
            })
            .collect()
    }

    /// One round's optimiser steps (at most `steps_per_round`, fewer once no counterexample
    /// is penalised): the mean penalty over the counterexamples, plus the fidelity term and
    /// cross-entropy on the correct set. Returns the last penalty, how many counterexamples
    /// were still unsafe then, and the steps taken.
    fn train_round(
        &self,
        trainer: &Trainer,
        opt: &mut Optimizer,
        cases: &[CaseData],
        batches: &[CaseBatches],
        correct: Option<&(Tensor, Tensor)>,
    ) -> Result<(f64, usize, usize)> {
        let vars = trainer.vars();
        let n_cex: usize = cases.iter().map(|c| c.cex.len()).sum();
        let n_anchor: usize = cases.iter().map(|c| c.anchors.len()).sum();
        let (mut last, mut steps) = ((0.0, 0usize), 0);
        for _ in 0..self.steps_per_round {
            let mut pen = Tensor::zeros((), DType::F32, &Device::Cpu).map_err(NnError::from)?;
            let mut fid = pen.clone();
            let mut violating = 0usize;
            for (cd, (cex, anchors)) in cases.iter().zip(batches) {
                if let Some(x) = cex {
                    let y = trainer.forward(x)?;
                    let n = y.dims()[0];
                    let y = y.reshape((n, ())).map_err(NnError::from)?;
                    violating += rows(&y)?
                        .iter()
                        .filter(|v| cd.case.is_unsafe_output(v))
                        .count();
                    pen = (pen + penalty(&y, cd.case, self.margin).map_err(NnError::from)?)
                        .map_err(NnError::from)?;
                }
                if let Some((x, target)) = anchors {
                    let y = trainer.forward(x)?;
                    let n = y.dims()[0];
                    let d = (y.reshape((n, ())).map_err(NnError::from)? - target)
                        .and_then(|d| d.sqr())
                        .and_then(|d| d.sum_all())
                        .map_err(NnError::from)?;
                    fid = (fid + d).map_err(NnError::from)?;
                }
            }
            let pen = pen.affine(1.0 / n_cex as f64, 0.0).map_err(NnError::from)?;
            let pen_val = f64::from(pen.to_scalar::<f32>().map_err(NnError::from)?);
            last = (pen_val, violating);
            if pen_val == 0.0 {
                break;
            }
            let mut loss = pen;
            if n_anchor > 0 {
                let f = fid
                    .affine(self.fidelity_weight / n_anchor as f64, 0.0)
                    .map_err(NnError::from)?;
                loss = (loss + f).map_err(NnError::from)?;
            }
            if let Some((x, y)) = correct {
                let ce = cross_entropy(&trainer.forward(x)?, y)?;
                loss = (loss + ce).map_err(NnError::from)?;
            }
            let grads = trainer.grads(&loss)?;
            opt.step(&vars, &grads, None)?;
            steps += 1;
        }
        Ok((last.0, last.1, steps))
    }

    /// Re-checks `current` and writes the outcome.
    fn outcome(
        &self,
        net: &Network,
        current: Network,
        problem: &RepairProblem,
        ctx: &RepairContext,
        stats: LoopStats,
        started: Instant,
    ) -> Result<RepairOutcome> {
        let rc = timed_recheck(net, &current, problem, ctx)?;
        let (items, ok) = (rc.items, rc.ok);
        let proved = ok == items.len();
        let (rounds, steps) = (stats.history.len(), stats.steps);
        let message = if proved {
            format!("all {ok} properties proved by the verifier after {rounds} fine-tuning rounds ({steps} steps)")
        } else {
            format!(
                "{ok} of {} properties proved after {rounds} fine-tuning rounds ({steps} steps){}",
                items.len(),
                if stats.proved_in_loop {
                    ""
                } else {
                    "; the rest are violated or undecided"
                }
            )
        };
        let correct_set = &problem.keep.points;
        let count = |n: &Network| -> Result<usize> {
            if correct_set.is_empty() {
                return Ok(0);
            }
            correct_set.count_correct(n)
        };
        let training = TrainingReport {
            locking: Locking::Nothing,
            lr: self.lr,
            iterations: steps,
            converged: proved,
            mean_frozen: 0.0,
            correct_before: count(net)?,
            correct_after: count(&current)?,
            correct_total: correct_set.len(),
            history: stats.history,
        };
        let status = RepairStatus::of_items(&items);
        let mut out = RepairOutcome::new(
            net,
            current,
            "pft",
            EditedLayer::All,
            status,
            message,
            items,
            started,
        )?;
        out.timings = Timings {
            train_s: stats.train_s,
            recheck_s: rc.seconds + stats.verify_s,
            ..Timings::default()
        };
        out.notes.extend(stats.stopped);
        out.keep = rc.keep;
        out.details = Some(MethodDetails::Training(training));
        Ok(out)
    }
}

impl Repair for Pft {
    fn name(&self) -> &'static str {
        "pft"
    }

    fn repair(
        &self,
        net: &Network,
        problem: &RepairProblem,
        ctx: &RepairContext,
    ) -> Result<RepairOutcome> {
        let started = Instant::now();
        problem.validate(net.input_len(), net.output_len())?;
        let correct_set = &problem.keep.points;
        self.check(net, correct_set)?;
        let mut cases = property_cases(problem)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        self.add_anchors(net, &mut cases, &mut rng)?;
        let trainer = Trainer::new(net, DType::F32)?;
        let mut opt = Optimizer::new(self.optimizer, self.lr, 0.0, trainer.vars().len())?;
        let correct = if correct_set.is_empty() {
            None
        } else {
            Some((
                batch(net, &correct_set.inputs)?,
                labels_tensor(&correct_set.labels)?,
            ))
        };
        let mut stats = LoopStats::default();
        let mut current = net.clone();
        for round in 0..=self.rounds {
            let known: usize = cases.iter().map(|c| c.cex.len()).sum();
            ctx.say(&format!("pft: round {round}, verifying"));
            let t = Instant::now();
            let all_hold = verify_all(&current, problem, &mut cases, ctx)?;
            stats.verify_s += t.elapsed().as_secs_f64();
            if all_hold {
                stats.proved_in_loop = true;
                break;
            }
            if round == self.rounds {
                break;
            }
            self.mine(&current, &mut cases, round, &mut rng)?;
            let n_cex: usize = cases.iter().map(|c| c.cex.len()).sum();
            if n_cex == known {
                // Nothing new to learn from: the verifier could not decide and neither it nor
                // the attacks found a counterexample the last round did not already fix.
                stats.stopped = Some(format!(
                    "stopped after round {round}: the verifier could not decide and no new counterexample was found"
                ));
                break;
            }
            ctx.say(&format!(
                "pft: round {round}, training on {n_cex} counterexamples"
            ));
            let t = Instant::now();
            let batches = self.batches(net, &cases)?;
            let (loss, remaining, steps) =
                self.train_round(&trainer, &mut opt, &cases, &batches, correct.as_ref())?;
            stats.steps += steps;
            stats.train_s += t.elapsed().as_secs_f64();
            stats.history.push(IterationStat {
                iter: round,
                remaining,
                loss,
                frozen: 0.0,
            });
            trainer.write_back(&mut current)?;
        }
        self.outcome(net, current, problem, ctx, stats, started)
    }
}

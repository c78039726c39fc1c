//! Deciding a property: attack first, then branch and bound on the input box with linear
//! bounds, under a time limit.

use std::time::{Duration, Instant};

use netrepair_nn::Network;
use netrepair_spec::{BoxRegion, Case, Polytope, Property};

use crate::attack::{confirm, pgd, Counterexample, PgdOptions};
use rayon::prelude::*;

use crate::affine::Ops;
use crate::alpha::optimised_linear_bounds_until;
use crate::alpha::AlphaOptions;
use crate::case::case_analysis;
use crate::crown::linear_bounds_with;
use crate::error::Result;
use crate::interval::Bounds;
use crate::milp::{milp_polytope, MilpOutcome};
use crate::relu_bab::{relu_bab, BabOutcome};

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No input of any case reaches the unsafe region (proved with sound bounds).
    Holds,
    /// A counterexample, confirmed by an f64 forward pass.
    Violated(Counterexample),
    /// Neither proved nor refuted within the limits; the reason says which limit.
    Unknown(String),
}

impl Verdict {
    /// "holds", "violated" or "unknown".
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::Violated(_) => "violated",
            Verdict::Unknown(_) => "unknown",
        }
    }
}

/// Settings of [`check_property`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOptions {
    /// Wall-clock limit for the whole property.
    pub timeout: Duration,
    /// The attack run on every case before branching.
    pub pgd: PgdOptions,
    /// Stop splitting a box whose widest side is below this (unknown).
    pub min_width: f64,
    /// Inputs with more dimensions than this are not split: the linear bounds of the whole
    /// box are followed by an exact MILP per unsafe polytope they leave open.
    pub max_split_dims: usize,
    /// Whether to use the MILP (piecewise-linear networks only).
    pub use_milp: bool,
    /// For a box too large to split: the ReLU lower slopes of every unstable neuron and of
    /// the property's constraints are optimised (alpha-CROWN), then the unsafe polytopes still
    /// open go to a branch and bound on ReLU splits (beta-CROWN style) for half the time left,
    /// and to the MILP after it (mnistfc 256x2 at 30 s: see `docs/verification.md`). Boxes
    /// that are split use plain back-substitution: on ACAS Xu the optimised slopes saved 1-3%
    /// of the boxes at up to twice the time per box. `AlphaOptions::none()` turns both off.
    pub alpha: AlphaOptions,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            pgd: PgdOptions::default(),
            min_width: 1e-9,
            max_split_dims: 16,
            use_milp: true,
            alpha: AlphaOptions::default(),
        }
    }
}

/// What a check did.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Wall time.
    pub seconds: f64,
    /// Boxes bounded during branch and bound.
    pub boxes: usize,
}

impl CheckReport {
    /// The result in VNN-COMP's format: `unsat` (holds), `sat` and the counterexample as
    /// `((X_0 v) ... (Y_0 v) ...)`, or `timeout` (undecided after at least 99% of `limit_s`
    /// seconds) / `unknown` (undecided for another reason).
    pub fn vnncomp_result(&self, limit_s: f64) -> String {
        match &self.verdict {
            Verdict::Holds => "unsat\n".into(),
            Verdict::Unknown(_) if self.seconds >= 0.99 * limit_s => "timeout\n".into(),
            Verdict::Unknown(_) => "unknown\n".into(),
            Verdict::Violated(c) => {
                let x =
                    c.x.iter()
                        .enumerate()
                        .map(|(i, v)| format!("(X_{i} {v:e})"));
                let y =
                    c.y.iter()
                        .enumerate()
                        .map(|(j, v)| format!("(Y_{j} {v:e})"));
                let lines: Vec<String> = x.chain(y).collect();
                format!("sat\n({})\n", lines.join("\n "))
            }
        }
    }
}

/// Decides `prop` on `net`: for each case, PGD looks for a counterexample; a high-dimensional
/// box is then bounded whole and handed to the MILP where the bounds are not enough; a
/// low-dimensional box is split (halved along the input the linear bound depends on most) until linear bounds prove every
/// sub-box safe, a box centre is a counterexample, or the time runs out.
pub fn check_property(net: &Network, prop: &Property, opts: &CheckOptions) -> Result<CheckReport> {
    prop.check_fits(net.input_len(), net.output_len())?;
    let start = Instant::now();
    let ops = Ops::new(net);
    let mut boxes = 0;
    let report = |verdict, boxes| CheckReport {
        verdict,
        seconds: start.elapsed().as_secs_f64(),
        boxes,
    };
    // Linear bounds of each whole input box first: a case they prove needs no attack (after a
    // repair, most re-checks end here, and the attack is the costly part on small networks).
    let mut open = Vec::new();
    for case in &prop.cases {
        let bounds = linear_bounds_with(&ops, &case.input)?;
        boxes += 1;
        if !case_analysis(&ops, case, &bounds, &AlphaOptions::none())?.proved {
            open.push((case, bounds));
        }
    }
    for (case, _) in &open {
        if let Some(cex) = pgd(net, case, &opts.pgd)? {
            return Ok(report(Verdict::Violated(cex), boxes));
        }
    }
    for (case, bounds) in open {
        if case.input.dim() > opts.max_split_dims {
            match whole_box(&ops, case, &bounds, opts, start)? {
                Verdict::Holds => continue,
                v => return Ok(report(v, boxes)),
            }
        }
        // The whole box is bounded already: judge it with those bounds, then split. (Starting
        // each half from its parent's bounds, intersected, and bounding only the neurons still
        // unstable was measured on ACAS Xu property 1, 2026-12-01: 1.5-7x fewer boxes on five
        // networks but 6-8x more on N3,1 and N3,9, where the adaptive slopes chosen on the
        // tighter bounds guide the splits worse; not kept.)
        let mut outcomes = vec![judge(
            &ops,
            case,
            case.input.clone(),
            &bounds,
            opts.min_width,
        )?];
        let mut stack = Vec::new();
        loop {
            for o in outcomes {
                match o {
                    Outcome::Proved => {}
                    Outcome::Violated(cex) => return Ok(report(Verdict::Violated(cex), boxes)),
                    Outcome::TooNarrow => {
                        return Ok(report(
                            Verdict::Unknown(format!(
                                "box narrower than {} cannot be decided",
                                opts.min_width
                            )),
                            boxes,
                        ))
                    }
                    Outcome::Split(a, b) => {
                        stack.push(b);
                        stack.push(a);
                    }
                }
            }
            if stack.is_empty() {
                break;
            }
            if start.elapsed() > opts.timeout {
                return Ok(report(
                    Verdict::Unknown(format!(
                        "timeout after {boxes} boxes ({} left)",
                        stack.len()
                    )),
                    boxes,
                ));
            }
            // Bound a batch of boxes in parallel.
            let batch: Vec<BoxRegion> =
                stack.split_off(stack.len().saturating_sub(2 * rayon::current_num_threads()));
            boxes += batch.len();
            outcomes = batch
                .into_par_iter()
                .map(|b| {
                    let bounds = linear_bounds_with(&ops, &b)?;
                    judge(&ops, case, b, &bounds, opts.min_width)
                })
                .collect::<Result<Vec<_>>>()?;
        }
    }
    Ok(report(Verdict::Holds, boxes))
}

/// Given the linear bounds over the whole box: the unsafe polytopes they leave open are bounded
/// again with optimised slopes, then decided by ReLU branch and bound, and what is still open by
/// the MILP.
fn whole_box(
    ops: &Ops,
    case: &Case,
    bounds: &[Bounds],
    opts: &CheckOptions,
    start: Instant,
) -> Result<Verdict> {
    let net = ops.net();
    // The polytopes the bounds of the whole box leave open; then the same with slopes
    // optimised for every unstable neuron (tighter bounds, smaller big-M constants for the MILP).
    let single = |poly: &Polytope| Case {
        input: case.input.clone(),
        unsafe_region: vec![poly.clone()],
    };
    let mut open = Vec::new();
    for poly in &case.unsafe_region {
        if !case_analysis(ops, &single(poly), bounds, &opts.alpha)?.proved {
            open.push(poly.clone());
        }
    }
    let mut tight: Option<Vec<Bounds>> = None;
    if !open.is_empty() && opts.alpha.iterations > 0 {
        // At most a quarter of the time left.
        let left = opts.timeout.saturating_sub(start.elapsed());
        let b = optimised_linear_bounds_until(
            ops,
            &case.input,
            &opts.alpha,
            Some(Instant::now() + left / 4),
        )?;
        let mut still_open = Vec::new();
        for poly in open {
            if !case_analysis(ops, &single(&poly), &b, &opts.alpha)?.proved {
                still_open.push(poly);
            }
        }
        open = still_open;
        // ReLU branch and bound over the polytopes left, in one tree, on half the time left
        // (all of it without the MILP); the MILP takes those it leaves open.
        if !open.is_empty() {
            let rest = Case {
                input: case.input.clone(),
                unsafe_region: open.clone(),
            };
            let left = opts.timeout.saturating_sub(start.elapsed());
            let share = if opts.use_milp { left / 2 } else { left };
            match relu_bab(ops, &rest, b.clone(), &opts.alpha, Instant::now() + share)?.0 {
                BabOutcome::Proved => open.clear(),
                BabOutcome::Violated(cex) => return Ok(Verdict::Violated(cex)),
                BabOutcome::Unknown(why) if !opts.use_milp => return Ok(Verdict::Unknown(why)),
                BabOutcome::Unknown(_) => {}
            }
        }
        tight = Some(b);
    }
    let bounds = tight.as_deref().unwrap_or(bounds);
    for poly in &open {
        if !opts.use_milp {
            return Ok(Verdict::Unknown(
                "linear bounds do not exclude an unsafe polytope (MILP disabled)".into(),
            ));
        }
        let left = opts.timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(Verdict::Unknown("timeout before the MILP".into()));
        }
        match milp_polytope(net, case, poly, bounds, left)? {
            MilpOutcome::Unreachable => {}
            MilpOutcome::Reached(cex) => return Ok(Verdict::Violated(cex)),
            MilpOutcome::Unknown(why) => return Ok(Verdict::Unknown(why)),
        }
    }
    Ok(Verdict::Holds)
}

enum Outcome {
    Proved,
    Violated(Counterexample),
    TooNarrow,
    Split(BoxRegion, BoxRegion),
}

/// Judges one box by its linear bounds: proved, a counterexample at its centre, or its two
/// halves along the input the bound depends on most.
fn judge(
    ops: &Ops,
    case: &Case,
    b: BoxRegion,
    bounds: &[Bounds],
    min_width: f64,
) -> Result<Outcome> {
    let sub = Case {
        input: b,
        unsafe_region: case.unsafe_region.clone(),
    };
    let analysis = case_analysis(ops, &sub, bounds, &AlphaOptions::none())?;
    if analysis.proved {
        return Ok(Outcome::Proved);
    }
    if let Some(cex) = confirm(ops.net(), case, &[sub.input.center()])? {
        return Ok(Outcome::Violated(cex));
    }
    let b = sub.input;
    let width = |i: usize| b.upper[i] - b.lower[i];
    // Width relative to the case's box; inputs already 100x narrower than the widest are left
    // alone, so one sensitive input cannot be cut forever while the others stay wide.
    let rel =
        |i: usize| width(i) / (case.input.upper[i] - case.input.lower[i]).max(f64::MIN_POSITIVE);
    let widest = (0..b.dim()).map(rel).fold(0.0, f64::max);
    let guided = analysis.influence.iter().any(|&v| v > 0.0);
    let score = |i: usize| match (rel(i) < 0.01 * widest, guided) {
        (true, _) => 0.0,
        (false, true) => analysis.influence[i],
        (false, false) => rel(i),
    };
    let dim = (0..b.dim())
        .filter(|&i| width(i) > 0.0)
        .max_by(|&x, &y| score(x).total_cmp(&score(y)));
    let Some(dim) = dim.filter(|&d| width(d) >= min_width) else {
        return Ok(Outcome::TooNarrow);
    };
    let mid = 0.5 * (b.lower[dim] + b.upper[dim]);
    let (mut lo, mut hi) = (b.clone(), b);
    lo.upper[dim] = mid;
    hi.lower[dim] = mid;
    Ok(Outcome::Split(
        BoxRegion::new(lo.lower, lo.upper)?,
        BoxRegion::new(hi.lower, hi.upper)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnncomp_results_read_as_the_competition_writes_them() {
        let report = |verdict, seconds| CheckReport {
            verdict,
            seconds,
            boxes: 0,
        };
        assert_eq!(report(Verdict::Holds, 1.0).vnncomp_result(10.0), "unsat\n");
        let open = || Verdict::Unknown("budget".into());
        assert_eq!(report(open(), 9.95).vnncomp_result(10.0), "timeout\n");
        assert_eq!(report(open(), 2.0).vnncomp_result(10.0), "unknown\n");
        let cex = Counterexample {
            x: vec![0.5, -1.0],
            y: vec![2.0],
        };
        assert_eq!(
            report(Verdict::Violated(cex), 0.1).vnncomp_result(10.0),
            "sat\n((X_0 5e-1)\n (X_1 -1e0)\n (Y_0 2e0))\n"
        );
    }
}

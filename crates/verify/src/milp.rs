//! Exact checking of piecewise-linear networks by mixed-integer programming (HiGHS).
//!
//! Every value becomes LP variables bounded by the sound bounds; affine layers become
//! equalities; an unstable ReLU `y = max(x, 0)` with pre-activation bounds `[l, u]` gets a
//! binary `z` and `y >= x, y <= x - l (1 - z), y <= u z, 0 <= y <= u` (big-M taken from the
//! bounds, which is what keeps the MILP small); a max pool gets one binary per window cell.
//! The objective is the largest slack `t` of the unsafe polytope's constraints: an optimum
//! above a small margin (covering the solver's tolerances) proves the polytope unreachable; an
//! optimum at or below zero is the deepest unsafe point, reported only after an f64 forward
//! pass confirms it.

use std::time::Duration;

use netrepair_lp::{LpModel, Outcome, Sense, SolveOptions, Var};
use netrepair_nn::{Layer, Network};
use netrepair_spec::{Case, Polytope};

use crate::affine::not_boundable;
use crate::attack::{confirm, Counterexample};
use crate::error::Result;
use crate::interval::Bounds;
use netrepair_nn::{affine_op, elementwise_op, pool_windows};

/// Slack above which the MILP optimum counts as unreachable (relative to 1 + |rhs|).
pub const MILP_MARGIN: f64 = 1e-6;

/// What the MILP concluded for one polytope.
#[derive(Debug, Clone, PartialEq)]
pub enum MilpOutcome {
    /// No input of the box reaches the polytope.
    Unreachable,
    /// A confirmed counterexample.
    Reached(Counterexample),
    /// Undecided (time limit, unsupported layer, unconfirmed solver point).
    Unknown(String),
}

/// The network over `case`'s box as constraints; returns the model and the output variables.
fn encode(net: &Network, bounds: &[Bounds]) -> std::result::Result<(LpModel, Vec<Var>), String> {
    let (m, mut vars) = encode_upto(net, bounds, net.nodes().len(), false)?;
    Ok((m, vars.pop().expect("output")))
}

/// The first `upto` nodes over the box as constraints, with every value's variables (`[0]` the
/// input, `[i + 1]` node `i`'s output); `relaxed` drops integrality (the triangle relaxation
/// of each unstable ReLU, the convex hull of each max-pool window's choices).
fn encode_upto(
    net: &Network,
    bounds: &[Bounds],
    upto: usize,
    relaxed: bool,
) -> std::result::Result<(LpModel, Vec<Vec<Var>>), String> {
    let mut m = LpModel::new();
    let widen = |b: &Bounds, k: usize| {
        (
            b.lower[k] - 1e-9 * (1.0 + b.lower[k].abs()),
            b.upper[k] + 1e-9 * (1.0 + b.upper[k].abs()),
        )
    };
    let mut vars: Vec<Vec<Var>> = vec![(0..bounds[0].lower.len())
        .map(|k| m.add_var(bounds[0].lower[k], bounds[0].upper[k], 0.0))
        .collect()];
    let binary = |m: &mut LpModel| {
        if relaxed {
            m.add_var(0.0, 1.0, 0.0)
        } else {
            m.add_binary()
        }
    };
    for (i, node) in net.nodes().iter().enumerate().take(upto) {
        let x = &vars[node.inputs()[0]];
        let ob = &bounds[i + 1];
        let fresh = |m: &mut LpModel| -> Vec<Var> {
            (0..ob.lower.len())
                .map(|k| {
                    let (l, u) = widen(ob, k);
                    m.add_var(l, u, 0.0)
                })
                .collect()
        };
        let out = if let Some(op) = affine_op(net, i).map_err(|e| e.to_string())? {
            let y = fresh(&mut m);
            for (o, row) in op.rows.iter().enumerate() {
                let mut terms: Vec<(Var, f64)> =
                    row.iter().map(|&(j, w)| (x[j as usize], -w)).collect();
                terms.push((y[o], 1.0));
                m.add_eq(&terms, op.bias[o]);
            }
            y
        } else if let Some((a, c)) = elementwise_op(net, i).map_err(|e| e.to_string())? {
            let y = fresh(&mut m);
            for k in 0..y.len() {
                m.add_eq(&[(y[k], 1.0), (x[k], -a[k])], c[k]);
            }
            y
        } else {
            match node.layer() {
                Layer::Flatten | Layer::Reshape(_) => x.clone(),
                Layer::Add => {
                    let x2 = vars[node.inputs()[1]].clone();
                    let y = fresh(&mut m);
                    for k in 0..y.len() {
                        m.add_eq(&[(y[k], 1.0), (x[k], -1.0), (x2[k], -1.0)], 0.0);
                    }
                    y
                }
                Layer::Relu => {
                    let pre = &bounds[node.inputs()[0]];
                    let x = x.clone();
                    (0..x.len())
                        .map(|k| {
                            let (l, u) = (pre.lower[k], pre.upper[k]);
                            if l >= 0.0 {
                                x[k]
                            } else if u <= 0.0 {
                                m.add_var(0.0, 0.0, 0.0)
                            } else {
                                let y = m.add_var(0.0, u, 0.0);
                                let z = binary(&mut m);
                                m.add_ge(&[(y, 1.0), (x[k], -1.0)], 0.0);
                                // y <= x - l (1 - z)  <=>  y - x - l z <= -l
                                m.add_le(&[(y, 1.0), (x[k], -1.0), (z, -l)], -l);
                                m.add_le(&[(y, 1.0), (z, -u)], 0.0);
                                y
                            }
                        })
                        .collect()
                }
                Layer::MaxPool2d(p) => {
                    let pre = &bounds[node.inputs()[0]];
                    let y = fresh(&mut m);
                    for (o, cells) in pool_windows(p, net.value_shape(node.inputs()[0]))
                        .into_iter()
                        .enumerate()
                    {
                        let umax = cells
                            .iter()
                            .map(|&k| pre.upper[k])
                            .fold(f64::NEG_INFINITY, f64::max);
                        let lmax = cells
                            .iter()
                            .map(|&k| pre.lower[k])
                            .fold(f64::NEG_INFINITY, f64::max);
                        // Cells that can never be the maximum are skipped.
                        let live: Vec<usize> = cells
                            .into_iter()
                            .filter(|&k| pre.upper[k] >= lmax)
                            .collect();
                        let mut pick = Vec::new();
                        for &k in &live {
                            m.add_ge(&[(y[o], 1.0), (x[k], -1.0)], 0.0);
                            if live.len() > 1 {
                                let z = binary(&mut m);
                                let big = umax - pre.lower[k];
                                // y <= x_k + big (1 - z)
                                m.add_le(&[(y[o], 1.0), (x[k], -1.0), (z, big)], big);
                                pick.push((z, 1.0));
                            } else {
                                m.add_le(&[(y[o], 1.0), (x[k], -1.0)], 0.0);
                            }
                        }
                        if !pick.is_empty() {
                            m.add_eq(&pick, 1.0);
                        }
                    }
                    y
                }
                Layer::Sigmoid | Layer::Tanh => {
                    return Err(format!(
                        "layer '{}' ({}) is not piecewise linear; MILP needs ReLU networks",
                        node.name(),
                        node.layer().kind()
                    ))
                }
                Layer::Linear(_)
                | Layer::Conv2d(_)
                | Layer::AvgPool2d(_)
                | Layer::BatchNorm(_)
                | Layer::Elementwise(_)
                | Layer::Rearrange(_) => {
                    unreachable!("linear maps handled above")
                }
                Layer::Concat { .. } => net
                    .concat_sources(i)
                    .expect("a concatenation")
                    .into_iter()
                    .map(|(v, j)| vars[v][j])
                    .collect(),
                Layer::Opaque(_) => return Err(not_boundable(net, i).to_string()),
            }
        };
        vars.push(out);
    }
    Ok((m, vars))
}

/// Upper bounds of `rows . value[target]` over the box `bounds` were computed for, from the
/// LP relaxation of the network below `target` (every unstable ReLU by its triangle): tighter
/// than back-substitution, which fixes one lower line per ReLU. Each entry is the LP optimum
/// plus `1e-7 (1 + |optimum|)` for the solver's tolerances, or `None` when the LP did not
/// solve within `time_limit`. Sound up to those tolerances only: use it to choose, and let
/// the verifier confirm.
pub fn relaxed_row_upper(
    net: &Network,
    bounds: &[Bounds],
    target: usize,
    rows: &[Vec<f64>],
    time_limit: Duration,
) -> Result<Vec<Option<f64>>> {
    row_upper(net, bounds, target, rows, time_limit, true)
}

/// The same bounds from the MILP (every unstable ReLU exact): the maximum itself when the
/// branch and bound finishes within `time_limit`, otherwise the best bound it proved by then
/// (never looser than the LP relaxation it starts from), plus the same tolerance; `None` when
/// it has none. Sound up to the solver's tolerances only, as [`relaxed_row_upper`].
pub fn exact_row_upper(
    net: &Network,
    bounds: &[Bounds],
    target: usize,
    rows: &[Vec<f64>],
    time_limit: Duration,
) -> Result<Vec<Option<f64>>> {
    row_upper(net, bounds, target, rows, time_limit, false)
}

fn row_upper(
    net: &Network,
    bounds: &[Bounds],
    target: usize,
    rows: &[Vec<f64>],
    time_limit: Duration,
    relaxed: bool,
) -> Result<Vec<Option<f64>>> {
    let (base, vars) = match encode_upto(net, bounds, target, relaxed) {
        Ok(e) => e,
        Err(_) => return Ok(vec![None; rows.len()]),
    };
    let x = &vars[target];
    let opts = SolveOptions {
        time_limit: Some(time_limit),
        threads: 1,
        // The LP relaxation by the interior point; the MILP by HiGHS's branch and bound.
        method: if relaxed {
            netrepair_lp::Method::Ipm
        } else {
            netrepair_lp::Method::Choose
        },
        ..Default::default()
    };
    let widen = |v: f64| v + 1e-7 * (1.0 + v.abs());
    rows.iter()
        .map(|row| {
            let mut m = base.clone();
            let t = m.add_var(f64::NEG_INFINITY, f64::INFINITY, 1.0);
            let mut terms: Vec<(Var, f64)> = row
                .iter()
                .enumerate()
                .filter(|(_, &a)| a != 0.0)
                .map(|(k, &a)| (x[k], a))
                .collect();
            terms.push((t, -1.0));
            m.add_eq(&terms, 0.0);
            let s = m
                .solve(Sense::Maximise, &opts)
                .map_err(|e| crate::error::VerifyError::Lp(e.to_string()))?;
            Ok(match s.outcome {
                Outcome::Optimal { objective, .. } if relaxed => Some(widen(objective)),
                // A MILP's optimum carries its proof in the dual bound (within the gap).
                Outcome::Optimal { objective, .. } => Some(widen(
                    s.stats.dual_bound.map_or(objective, |b| b.max(objective)),
                )),
                Outcome::Limit { .. } if !relaxed => s.stats.dual_bound.map(widen),
                _ => None,
            })
        })
        .collect()
}

/// Decides whether any input of the case's box reaches `poly`, within `time_limit`.
pub fn milp_polytope(
    net: &Network,
    case: &Case,
    poly: &Polytope,
    bounds: &[Bounds],
    time_limit: Duration,
) -> Result<MilpOutcome> {
    let (mut m, y) = match encode(net, bounds) {
        Ok(e) => e,
        Err(why) => return Ok(MilpOutcome::Unknown(why)),
    };
    // Minimise the largest slack t of the polytope's constraints (c y - rhs <= t): t* <= 0
    // means reachable, and the optimum is the deepest point, which survives the f64 re-check.
    let t = m.add_var(f64::NEG_INFINITY, f64::INFINITY, 1.0);
    for c in &poly.constraints {
        let mut terms: Vec<(Var, f64)> = c.coeffs.iter().map(|&(j, a)| (y[j], a)).collect();
        terms.push((t, -1.0));
        m.add_le(&terms, c.rhs);
    }
    let margin = poly
        .constraints
        .iter()
        .map(|c| MILP_MARGIN * (1.0 + c.rhs.abs()))
        .fold(MILP_MARGIN, f64::max);
    let opts = SolveOptions {
        time_limit: Some(time_limit),
        threads: 1,
        ..Default::default()
    };
    let s = m
        .solve(Sense::Minimise, &opts)
        .map_err(|e| crate::error::VerifyError::Lp(e.to_string()))?;
    let n = bounds[0].lower.len();
    let point = |values: &[f64]| -> Vec<f64> {
        (0..n)
            .map(|k| values[k].clamp(case.input.lower[k], case.input.upper[k]))
            .collect()
    };
    Ok(match s.outcome {
        // No constraint set at all can be met (should not happen with finite bounds).
        Outcome::Infeasible => MilpOutcome::Unreachable,
        Outcome::Optimal { objective, .. } if objective > margin => MilpOutcome::Unreachable,
        Outcome::Optimal { values, .. } => match confirm(net, case, &[point(&values)])? {
            Some(cex) => MilpOutcome::Reached(cex),
            None => MilpOutcome::Unknown("the MILP optimum is within the solver's tolerance of the unsafe region but not inside it".into()),
        },
        // Stopped early: the best point so far may already be a counterexample.
        Outcome::Limit { reason, values } => match values {
            Some(v) => match confirm(net, case, &[point(&v)])? {
                Some(cex) => MilpOutcome::Reached(cex),
                None => MilpOutcome::Unknown(format!("MILP stopped ({reason}) before deciding")),
            },
            None => MilpOutcome::Unknown(format!("MILP stopped ({reason}) before deciding")),
        },
        Outcome::Unbounded | Outcome::Failed(_) => {
            MilpOutcome::Unknown(format!("MILP failed: {:?}", s.outcome))
        }
    })
}

//! The steps every LP-based method shares: solve the encoded LP, apply its solution, re-check
//! the result independently and assemble the report.

use std::time::Instant;

use netrepair_lp::{LpModel, Outcome, Sense, Solution};
use netrepair_nn::Network;

use crate::edit::Edit;
use crate::error::Result;
use crate::outcome::{
    EditedLayer, ItemReport, ItemStatus, LpReport, RepairOutcome, RepairStatus, Timings,
};
use crate::problem::RepairProblem;
use crate::recheck::timed_recheck;
use crate::{LpRepairOptions, RepairContext};

/// Checks the problem against the network and resolves the start layer (which must be a
/// Linear or Conv node): the common first step of the LP-based methods.
pub(crate) fn checked_start(
    net: &Network,
    problem: &RepairProblem,
    opts: &LpRepairOptions,
) -> Result<usize> {
    problem.validate(net.input_len(), net.output_len())?;
    problem.refuse_global("an LP point/property repair")?;
    let start = crate::start_layer(net, opts.layer)?;
    Edit::new(net, start, opts.delta_bound)?;
    Ok(start)
}

/// What one LP gave.
pub(crate) enum Solved {
    /// A solution, applied (edited parameters rounded to f32).
    Network(Network),
    /// No solution exists.
    Infeasible,
    /// The solver stopped without a usable solution.
    Limit(String),
}

/// Solves `model` (minimising the objective `edit` set) and applies the solution to `net`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn solve_edit(
    net: &Network,
    model: &LpModel,
    edit: &Edit,
    opts: &LpRepairOptions,
    purpose: String,
    encode_s: f64,
    lps: &mut Vec<LpReport>,
    timings: &mut Timings,
    ctx: &RepairContext,
) -> Result<Solved> {
    let solution = solve_reported(model, opts, purpose, encode_s, lps, timings, ctx)?;
    Ok(match solution.outcome {
        Outcome::Optimal { values, .. }
        | Outcome::Limit {
            values: Some(values),
            ..
        } => Solved::Network(edit.apply(net, &values)?),
        Outcome::Limit {
            values: None,
            reason,
        } => Solved::Limit(format!(
            "the solver stopped ({reason}) before finding a repair"
        )),
        // Every delta is bounded below by the norm objective, so "unbounded" here means the
        // solver could not tell infeasible from unbounded.
        Outcome::Infeasible | Outcome::Unbounded => Solved::Infeasible,
        Outcome::Failed(why) => Solved::Limit(format!("the solver gave up: {why}")),
    })
}

/// Writes `model` to the dump folder (if any), solves it (minimising) and records its report.
#[allow(clippy::too_many_arguments)]
pub(crate) fn solve_reported(
    model: &LpModel,
    opts: &LpRepairOptions,
    purpose: String,
    encode_s: f64,
    lps: &mut Vec<LpReport>,
    timings: &mut Timings,
    ctx: &RepairContext,
) -> Result<Solution> {
    ctx.dump_lp(model, Sense::Minimise, &purpose)?;
    let solution = model.solve(Sense::Minimise, &opts.solve_options())?;
    let what = match &solution.outcome {
        Outcome::Optimal { .. } => "optimal".to_string(),
        Outcome::Limit {
            values: Some(_),
            reason,
        } => format!("limit ({reason}), best point used"),
        Outcome::Limit { reason, .. } => format!("limit ({reason})"),
        Outcome::Infeasible => "infeasible".to_string(),
        Outcome::Unbounded => "infeasible or unbounded".to_string(),
        Outcome::Failed(why) => format!("failed ({why})"),
    };
    let report = LpReport::new(purpose, &what, &solution, encode_s);
    timings.add_lp(&report);
    lps.push(report);
    Ok(solution)
}

/// Re-checks the result (if any) and assembles the report; `infeasible` says what an
/// infeasible LP means under the method's encoding.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish(
    method: &str,
    infeasible: &str,
    net: &Network,
    start: usize,
    problem: &RepairProblem,
    solved: Solved,
    lps: Vec<LpReport>,
    mut timings: Timings,
    ctx: &RepairContext,
    started: Instant,
) -> Result<RepairOutcome> {
    let layer = net.nodes()[start].name().to_string();
    let mut keep = None;
    let (network, status, items, message) = match solved {
        Solved::Network(repaired) => {
            let rc = timed_recheck(net, &repaired, problem, ctx)?;
            let (items, ok, recheck_s, keep_report) = (rc.items, rc.ok, rc.seconds, rc.keep);
            timings.recheck_s = recheck_s;
            keep = keep_report;
            let (status, message) = if ok == items.len() {
                (
                    RepairStatus::Proved,
                    format!("all {ok} items repaired and confirmed by the re-check"),
                )
            } else {
                (
                    RepairStatus::Unconfirmed,
                    format!(
                        "{ok} of {} items confirmed by the re-check; the rest are not repaired",
                        items.len()
                    ),
                )
            };
            (repaired, status, items, message)
        }
        Solved::Infeasible | Solved::Limit(_) => {
            let (status, why) = match solved {
                Solved::Limit(why) => (RepairStatus::Limit, why),
                _ => (
                    RepairStatus::Infeasible,
                    format!(
                        "no repair exists at layer '{layer}' within these bounds: {infeasible}"
                    ),
                ),
            };
            let items = problem
                .items
                .iter()
                .enumerate()
                .map(|(index, item)| ItemReport {
                    index,
                    kind: item.kind(),
                    status: ItemStatus::Failed,
                    held_before: None,
                    margin: None,
                    detail: why.clone(),
                })
                .collect();
            (net.clone(), status, items, why)
        }
    };
    let mut out = RepairOutcome::new(
        net,
        network,
        method,
        EditedLayer::Node(start),
        status,
        message,
        items,
        started,
    )?;
    out.timings = timings;
    out.lp = lps;
    out.keep = keep;
    Ok(out)
}

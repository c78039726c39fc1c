//! Column generation over the start layer's weight entries: the repair LP solved first with
//! few weight deltas free, then with the ones the optimum's prices ask for, until none does.
//!
//! The edited weight is most of a first-layer LP (mnist-net_256x2's layer 0: 200,704 deltas,
//! each with a column, two norm columns and two rows), while the optimum moves a small share
//! of it. A round solves the LP with the closed entries' deltas fixed at 0 (columns without
//! norm terms, which presolve removes) and every repair point's requirements elastic (a
//! slack, penalised, so a round is feasible however few entries are open). At its optimum the
//! reduced cost `r` of a closed delta says what opening it would gain: with its norm terms
//! (`p - q` at cost `1/n` each, `p + q <= m`) it pays iff `|r| > 1/n`. The entries that pay
//! most are opened and the LP solved again; when none pays, the round's optimum is the full
//! LP's (LP duality: every closed column's reduced cost is within its norm cost), and if its
//! slacks are all 0 it is the repair LP's optimum. If slacks remain (the repair LP may be
//! infeasible, or the penalty too small), or a round ends without an optimum, the caller
//! solves the full LP, which decides.

use std::time::Instant;

use netrepair_lp::{LpModel, Outcome, Var};
use netrepair_nn::Network;

use crate::edit::Edit;
use crate::error::Result;
use crate::outcome::{LpReport, Timings};
use crate::pipeline::{solve_reported, Solved};
use crate::{LpRepairOptions, RepairContext};

/// Objective cost of a unit of requirement slack in a round: far above what a unit of margin
/// costs in parameter change on the networks measured (docs/lp.md), so a round leaves slack
/// only where the repair LP is infeasible.
pub(crate) const SLACK_COST: f64 = 1e3;

/// Rounds before giving up on column generation (the full LP is solved instead).
const MAX_ROUNDS: usize = 12;

/// Entries opened in the first pricing round at least; later rounds open at least as many as
/// are open (so the open set at least doubles while many entries pay).
const MIN_OPENED: usize = 2_000;

/// One round's LP: the model, its edit (restricted to the open entries), the requirement
/// slacks, and the L1 cost of a delta.
pub(crate) struct RoundLp {
    pub model: LpModel,
    pub edit: Edit,
    pub slacks: Vec<Var>,
    pub l1_cost: f64,
}

/// Solves the repair LP by column generation over the start layer's `weights` entries;
/// `encode(open, elastic)` builds a round's LP with only the entries `open` marks free, every
/// requirement elastic at [`SLACK_COST`] when `elastic`. `None`: undecided here, solve the
/// full LP.
#[allow(clippy::too_many_arguments)]
pub(crate) fn generate(
    net: &Network,
    weights: usize,
    mut encode: impl FnMut(&[bool], bool) -> Result<RoundLp>,
    opts: &LpRepairOptions,
    purpose: &str,
    lps: &mut Vec<LpReport>,
    timings: &mut Timings,
    ctx: &RepairContext,
) -> Result<Option<Solved>> {
    let mut open = vec![false; weights];
    let mut opened = 0;
    // Requirements are elastic until a round meets them all; the open set only grows, so
    // every later round is feasible with them hard (and without the penalty's large costs,
    // which slow the interior point).
    let mut elastic = true;
    for round in 1..=MAX_ROUNDS {
        let t = Instant::now();
        let RoundLp {
            model,
            edit,
            slacks,
            l1_cost,
        } = encode(&open, elastic)?;
        let what =
            format!("{purpose}, columns round {round} ({opened} of {weights} weight entries open)");
        ctx.say(&format!(
            "solving {what}: {} rows, {} columns",
            model.num_rows(),
            model.num_vars()
        ));
        let encode_s = t.elapsed().as_secs_f64();
        let solution = solve_reported(&model, opts, what, encode_s, lps, timings, ctx)?;
        let Outcome::Optimal { values, .. } = &solution.outcome else {
            ctx.say("column generation stopped without an optimum: solving the full LP");
            return Ok(None);
        };
        let unmet = slacks.iter().any(|s| values[s.index()] > 1e-9);
        elastic &= unmet;
        let paying = priced(&edit, &solution.reduced_costs, l1_cost);
        if paying.is_empty() {
            if unmet {
                ctx.say("column generation ended with requirements unmet: solving the full LP");
                return Ok(None);
            }
            return Ok(Some(Solved::Network(edit.apply(net, values)?)));
        }
        let take = paying.len().min(MIN_OPENED.max(opened));
        for &(k, _) in &paying[..take] {
            open[k] = true;
        }
        opened += take;
    }
    ctx.say(&format!(
        "column generation did not converge in {MAX_ROUNDS} rounds: solving the full LP"
    ));
    Ok(None)
}

/// The closed weight entries whose opening would lower the objective (reduced cost beyond
/// the L1 cost by more than HiGHS's dual feasibility tolerance, 1e-7), best first.
fn priced(edit: &Edit, reduced_costs: &[f64], l1_cost: f64) -> Vec<(usize, f64)> {
    let threshold = l1_cost * (1.0 + 1e-6) + 1e-7;
    let mut paying: Vec<(usize, f64)> = edit
        .closed_weight_vars()
        .filter_map(|(k, v)| {
            let gain = reduced_costs.get(v.index())?.abs() - threshold;
            (gain > 0.0).then_some((k, gain))
        })
        .collect();
    paying.sort_by(|a, b| b.1.total_cmp(&a.1));
    paying
}

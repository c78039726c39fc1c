//! Informed repair (seed 000): which layer-selection heuristic picks the layer APRNN should
//! edit, measured against the brute-force oracle; how repair-set size and homogeneity decide
//! success and drawdown; and what incremental repair with early stopping buys.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use netrepair_data::Dataset;
use netrepair_nn::Network;
use netrepair_repair::{
    brute_force, score_layers, Aprnn, BruteForce, Heuristic, Incremental, IncrementalStep, KeepSet,
    LabelledSet, LpRepairOptions, Repair, RepairContext, RepairProblem, RepairStatus,
    SelectionInput, DEFAULT_HEURISTIC,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::training::tensors;

/// A repair scenario: a network, labelled repair points and a validation set.
pub struct Scenario {
    /// A name for tables.
    pub name: String,
    /// The network.
    pub net: Network,
    /// The repair inputs.
    pub inputs: Vec<Vec<f64>>,
    /// Their correct labels.
    pub labels: Vec<usize>,
    /// Drawdown is measured here.
    pub validation: LabelledSet,
}

pub use crate::keep::labelled;

/// Indices of `data` the network gets wrong and right.
pub fn errors(net: &Network, data: &Dataset) -> Result<(Vec<usize>, Vec<usize>)> {
    let (x, y) = tensors(net, data)?;
    let (mut wrong, mut right) = (Vec::new(), Vec::new());
    for start in (0..y.len()).step_by(1000) {
        let len = 1000.min(y.len() - start);
        let pred = net.predict(&x.narrow(0, start, len)?)?;
        for (i, p) in pred.iter().enumerate() {
            if *p == y[start + i] {
                right.push(start + i);
            } else {
                wrong.push(start + i);
            }
        }
    }
    Ok((wrong, right))
}

/// One heuristic's outcome on one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct HeuristicRow {
    /// The scenario.
    pub scenario: String,
    /// The heuristic ("random (expected)" for the uniform choice, "auto" for `--layer auto`,
    /// "oracle" for brute force).
    pub heuristic: String,
    /// The layer it picks (for auto: the layer it ends at).
    pub layer: String,
    /// Whether APRNN proved the repair there.
    pub proved: bool,
    /// Share of the repair set confirmed (expected value for random).
    pub efficacy: f64,
    /// Validation accuracy lost (percentage points; `None` when nothing was proved).
    pub drawdown_pp: Option<f64>,
    /// `drawdown - oracle drawdown` (pp) when both proved.
    pub regret_pp: Option<f64>,
    /// Scoring time plus the repair time(s) this choice costs.
    pub time_s: f64,
}

/// Runs the brute-force oracle on a scenario and evaluates every heuristic, the uniform random
/// choice (as an expectation over layers) and `--layer auto` against it.
pub fn heuristics_vs_oracle(
    sc: &Scenario,
    aprnn: &Aprnn,
) -> Result<(BruteForce, Vec<HeuristicRow>)> {
    let flat: Vec<f64> = sc.inputs.iter().flatten().copied().collect();
    let problem =
        RepairProblem::from_labels(&flat, &sc.labels, sc.net.input_len(), sc.net.output_len())?;
    let bf = brute_force(
        &sc.net,
        &problem,
        aprnn,
        &sc.validation,
        &RepairContext::default(),
    )?;
    let oracle = &bf.trials[bf.best];
    let drawdown = |i: usize| {
        let t = &bf.trials[i];
        (t.status == RepairStatus::Proved).then_some(100.0 * (bf.accuracy_before - t.accuracy))
    };
    let oracle_dd = drawdown(bf.best);
    let regret = |dd: Option<f64>| match (dd, oracle_dd) {
        (Some(d), Some(o)) => Some(d - o),
        _ => None,
    };
    let mut rows = vec![HeuristicRow {
        scenario: sc.name.clone(),
        heuristic: "oracle (brute force)".into(),
        layer: oracle.layer.clone(),
        proved: oracle.status == RepairStatus::Proved,
        efficacy: oracle.efficacy,
        drawdown_pp: oracle_dd,
        regret_pp: regret(oracle_dd),
        time_s: bf.time_s,
    }];
    let input = SelectionInput {
        inputs: &sc.inputs,
        labels: &sc.labels,
        perturbed: None,
        seed: 0,
    };
    for h in Heuristic::ALL {
        if h == Heuristic::Random {
            continue;
        }
        let t = Instant::now();
        let s = score_layers(&sc.net, input, h)?;
        let score_s = t.elapsed().as_secs_f64();
        let trial = &bf.trials[s.chosen];
        rows.push(HeuristicRow {
            scenario: sc.name.clone(),
            heuristic: h.name().into(),
            layer: trial.layer.clone(),
            proved: trial.status == RepairStatus::Proved,
            efficacy: trial.efficacy,
            drawdown_pp: drawdown(s.chosen),
            regret_pp: regret(drawdown(s.chosen)),
            time_s: score_s + trial.time_s,
        });
        if h.name() == DEFAULT_HEURISTIC {
            // --layer auto: the layers in this heuristic's order until one is proved.
            let order = s.order();
            let mut time_s = score_s;
            let mut end = order[0];
            for &i in &order {
                time_s += bf.trials[i].time_s;
                end = i;
                if bf.trials[i].status == RepairStatus::Proved {
                    break;
                }
            }
            let t = &bf.trials[end];
            rows.push(HeuristicRow {
                scenario: sc.name.clone(),
                heuristic: format!("auto (= {DEFAULT_HEURISTIC}, then next)"),
                layer: t.layer.clone(),
                proved: t.status == RepairStatus::Proved,
                efficacy: t.efficacy,
                drawdown_pp: drawdown(end),
                regret_pp: regret(drawdown(end)),
                time_s,
            });
        }
    }
    // The naive baseline: a uniformly random layer, as an expectation.
    let k = bf.trials.len() as f64;
    let proved: Vec<f64> = (0..bf.trials.len()).filter_map(drawdown).collect();
    let mean_dd = (!proved.is_empty()).then(|| proved.iter().sum::<f64>() / proved.len() as f64);
    rows.push(HeuristicRow {
        scenario: sc.name.clone(),
        heuristic: "random (expected)".into(),
        layer: format!("any of {}", bf.trials.len()),
        proved: proved.len() as f64 / k >= 0.5,
        efficacy: bf.trials.iter().map(|t| t.efficacy).sum::<f64>() / k,
        drawdown_pp: mean_dd,
        regret_pp: regret(mean_dd),
        time_s: bf.trials.iter().map(|t| t.time_s).sum::<f64>() / k,
    });
    Ok((bf, rows))
}

/// The heuristic table as Markdown.
pub fn heuristics_markdown(rows: &[HeuristicRow]) -> String {
    let mut s = String::from(
        "| scenario | heuristic | layer | proved | efficacy | drawdown (pp) | regret (pp) | time (s) |\n|---|---|---|---|---|---|---|---|\n",
    );
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.0}% | {} | {} | {:.2} |\n",
            r.scenario,
            r.heuristic,
            r.layer,
            if r.proved { "yes" } else { "no" },
            100.0 * r.efficacy,
            f(r.drawdown_pp),
            f(r.regret_pp),
            r.time_s
        ));
    }
    s
}

/// One repair of a set of a given size and kind (seed 000, Figures 1-4).
#[derive(Debug, Clone, Serialize)]
pub struct SizeRow {
    /// "homogeneous" (one class) or "mixed" (the first errors of any class).
    pub kind: String,
    /// Repair-set size.
    pub size: usize,
    /// Status of the repair.
    pub status: RepairStatus,
    /// Share confirmed.
    pub efficacy: f64,
    /// Validation accuracy before and after (%).
    pub accuracy_before: f64,
    /// After.
    pub accuracy_after: f64,
    /// Wall time.
    pub time_s: f64,
}

/// Repairs homogeneous (largest-error class first) and mixed sets of each size at one layer.
pub fn size_sweep(
    net: &Network,
    pool: &Dataset,
    validation: &LabelledSet,
    sizes: &[usize],
    aprnn: &Aprnn,
    seed: u64,
    mut on_row: impl FnMut(&SizeRow),
) -> Result<Vec<SizeRow>> {
    let (mut wrong, _) = errors(net, pool)?;
    wrong.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let k = net.output_len();
    let mut per_class = vec![Vec::new(); k];
    for &i in &wrong {
        per_class[pool.labels[i] as usize].push(i);
    }
    let big = (0..k).max_by_key(|&c| per_class[c].len()).unwrap_or(0);
    let before = netrepair_repair::accuracy(net, validation)?;
    let mut rows = Vec::new();
    for &size in sizes {
        for (kind, idx) in [("homogeneous", &per_class[big]), ("mixed", &wrong)] {
            if idx.len() < size {
                continue;
            }
            let set = labelled(pool, &idx[..size]);
            let flat: Vec<f64> = set.inputs.iter().flatten().copied().collect();
            let problem = RepairProblem::from_labels(&flat, &set.labels, net.input_len(), k)?;
            let t = Instant::now();
            let r = aprnn.repair(net, &problem, &RepairContext::default())?;
            let row = SizeRow {
                kind: if kind == "mixed" {
                    kind.to_string()
                } else {
                    format!("{kind} (class {big})")
                },
                size,
                status: r.status,
                efficacy: r.count(netrepair_repair::ItemStatus::Repaired) as f64 / size as f64,
                accuracy_before: 100.0 * before,
                accuracy_after: 100.0 * netrepair_repair::accuracy(&r.network, validation)?,
                time_s: t.elapsed().as_secs_f64(),
            };
            on_row(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Incremental repair of `n` errors (of one class with `homogeneous`) in batches of `batch`,
/// with the whole curve recorded (no early stopping, so the curve shows what stopping would
/// have saved).
#[allow(clippy::too_many_arguments)]
pub fn incremental_curve(
    net: &Network,
    pool: &Dataset,
    validation: &LabelledSet,
    n: usize,
    batch: usize,
    layer: usize,
    lp_timeout: Duration,
    seed: u64,
    homogeneous: bool,
    cumulative: bool,
) -> Result<Vec<IncrementalStep>> {
    let (mut wrong, _) = errors(net, pool)?;
    wrong.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    if homogeneous {
        // The class with the most errors.
        let mut counts = vec![0usize; net.output_len()];
        for &i in &wrong {
            counts[pool.labels[i] as usize] += 1;
        }
        let big = (0..counts.len()).max_by_key(|&c| counts[c]).unwrap_or(0) as u32;
        wrong.retain(|&i| pool.labels[i] == big);
    }
    if wrong.len() < n {
        bail!("only {} errors, {n} asked for", wrong.len());
    }
    let set = labelled(pool, &wrong[..n]);
    let flat: Vec<f64> = set.inputs.iter().flatten().copied().collect();
    // The validation set is the keep set: incremental repair stops on it, without holding it.
    let problem =
        RepairProblem::from_labels(&flat, &set.labels, net.input_len(), net.output_len())?
            .with_keep(KeepSet::points(validation.clone()));
    let inc = Incremental {
        inner: Aprnn {
            lp: LpRepairOptions {
                layer: Some(layer),
                time_limit: Some(lp_timeout),
                ..LpRepairOptions::default()
            },
            ..Aprnn::default()
        },
        batch,
        max_iters: n.div_ceil(batch) * 3,
        hold_keep: false,
        max_drop: 1.0,
        seed,
        cumulative,
    };
    let r = inc.repair(net, &problem, &RepairContext::default())?;
    Ok(r.incremental().map(|i| i.steps.clone()).unwrap_or_default())
}

/// What early stopping would have returned on a recorded curve: the last iteration before the
/// validation accuracy first fell more than `max_drop` (a share) below `before` (0: the
/// original network).
pub fn early_stop(steps: &[IncrementalStep], before: f64, max_drop: f64) -> usize {
    let mut returned = 0;
    for s in steps {
        if before - s.validation_accuracy > max_drop {
            break;
        }
        if s.kept {
            returned = s.iter;
        }
    }
    returned
}

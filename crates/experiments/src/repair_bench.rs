//! Pointwise repair of a classifier's errors (APRNN, seed 000's setting): for every start
//! layer, efficacy (share of the repair set confirmed by the f64 re-check), drawdown on the
//! rest of the test split, generalisation to held-out corrupted images of the same kind, and
//! the LP's size and time.

use std::time::Duration;

use anyhow::{bail, Result};
use netrepair_data::Dataset;
use netrepair_nn::Network;
use netrepair_repair::{
    affine_layers, Aprnn, ItemStatus, LpRepairOptions, Repair, RepairContext, RepairProblem,
};
use serde::Serialize;

use crate::corrupt::{corrupt, Corruption};
use crate::training::tensors;

/// One row of the table: one network, one repair set, one start layer.
#[derive(Debug, Clone, Serialize)]
pub struct RepairRow {
    /// Network file name.
    pub network: String,
    /// "clean" or the corruption (with the number of anchors, if any).
    pub setting: String,
    /// Start layer (node name) and its affine index.
    pub layer: String,
    /// Affine index of the start layer.
    pub layer_index: usize,
    /// "proved", "unconfirmed", "infeasible", "limit".
    pub status: String,
    /// Repair-set size.
    pub n: usize,
    /// Items left out because APRNN's screening flagged them (with `drop_flagged`).
    pub dropped: usize,
    /// Share of the repair set repaired and confirmed.
    pub efficacy: f64,
    /// Accuracy on the held-out clean test images before and after.
    pub accuracy_before: f64,
    /// After the repair.
    pub accuracy_after: f64,
    /// `accuracy_before - accuracy_after`, in percentage points.
    pub drawdown_pp: f64,
    /// Held-out corrupted errors (same corruption, not in the repair set) now classified
    /// correctly (they were all wrong before); `None` for the clean setting.
    pub generalisation: Option<f64>,
    /// Size of that held-out set.
    pub generalisation_n: usize,
    /// Parameters changed, largest change.
    pub changed: usize,
    /// Largest absolute parameter change.
    pub linf: f64,
    /// Wall time of the repair (including the re-check).
    pub time_s: f64,
    /// LP size.
    pub lp_rows: usize,
    /// LP columns.
    pub lp_cols: usize,
    /// LP non-zeros.
    pub lp_nonzeros: usize,
    /// LP build time (our encoding and HiGHS hand-over).
    pub build_s: f64,
    /// LP solve time.
    pub solve_s: f64,
}

/// Settings of [`repair_errors`].
#[derive(Debug, Clone)]
pub struct RepairBenchOptions {
    /// Repair-set size.
    pub n: usize,
    /// Start layers as affine indices (empty: all).
    pub layers: Vec<usize>,
    /// `None`: the clean test errors; `Some(c)`: errors on corrupted test images.
    pub corruption: Option<Corruption>,
    /// Wall-clock limit of each LP.
    pub lp_timeout: Duration,
    /// At most this many held-out corrupted errors for the generalisation figure.
    pub generalisation_n: usize,
    /// Seed of the corruption.
    pub seed: u64,
    /// Correctly classified training samples whose outputs APRNN keeps close (anchors).
    pub anchors: Vec<Vec<f64>>,
    /// Leave out the items APRNN's screening flags (e.g. a dead hidden layer) and repair the
    /// rest.
    pub drop_flagged: bool,
}

fn correct_share(net: &Network, data: &Dataset) -> Result<f64> {
    if data.is_empty() {
        return Ok(f64::NAN);
    }
    crate::training::accuracy(net, data)
}

/// Repairs `n` errors of `net` on `test` at each requested layer.
pub fn repair_errors(
    net: &Network,
    name: &str,
    test: &Dataset,
    opts: &RepairBenchOptions,
    mut on_row: impl FnMut(&RepairRow),
) -> Result<Vec<RepairRow>> {
    let shape: [usize; 3] = match test.sample_shape[..] {
        [c, h, w] => [c, h, w],
        _ => bail!("image data [C, H, W] expected, got {:?}", test.sample_shape),
    };
    let source = match opts.corruption {
        None => test.clone(),
        Some(c) => Dataset {
            inputs: corrupt(&test.inputs, shape, c, opts.seed),
            ..test.clone()
        },
    };
    let (x, y) = tensors(net, &source)?;
    let pred = net.predict(&x)?;
    let wrong: Vec<usize> = (0..y.len()).filter(|&i| pred[i] != y[i]).collect();
    if wrong.len() < opts.n {
        bail!(
            "only {} errors on {} images ({}), {} asked for",
            wrong.len(),
            y.len(),
            opts.corruption.map_or("clean".into(), |c| c.label()),
            opts.n
        );
    }
    let (repair_idx, rest) = wrong.split_at(opts.n);
    let held_out_errors = source.subset(&rest[..rest.len().min(opts.generalisation_n)])?;
    // Drawdown on the clean test images, minus the repair set when it is clean.
    let clean_rest: Vec<usize> = match opts.corruption {
        None => (0..test.len())
            .filter(|i| !repair_idx.contains(i))
            .collect(),
        Some(_) => (0..test.len()).collect(),
    };
    let clean = test.subset(&clean_rest)?;
    let before = correct_share(net, &clean)?;
    let xs: Vec<f64> = repair_idx
        .iter()
        .flat_map(|&i| source.sample(i).iter().map(|&v| f64::from(v)))
        .collect();
    let labels: Vec<usize> = repair_idx.iter().map(|&i| y[i] as usize).collect();
    let problem = RepairProblem::from_labels(&xs, &labels, net.input_len(), net.output_len())?;
    let affine = affine_layers(net);
    let layers: Vec<usize> = if opts.layers.is_empty() {
        (0..affine.len()).collect()
    } else {
        opts.layers.clone()
    };
    let mut rows = Vec::new();
    for k in layers {
        let Some(&node) = affine.get(k) else {
            bail!("layer {k}: the network has {} affine layers", affine.len())
        };
        let method = Aprnn {
            lp: LpRepairOptions {
                layer: Some(node),
                time_limit: Some(opts.lp_timeout),
                ..LpRepairOptions::default()
            },
            anchors: opts.anchors.clone(),
            ..Aprnn::default()
        };
        let mut r = method.repair(net, &problem, &RepairContext::default())?;
        let mut kept = problem.clone();
        if opts.drop_flagged && !r.flagged.is_empty() {
            kept.items = kept
                .items
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !r.flagged.contains(i))
                .map(|(_, item)| item)
                .collect();
            r = method.repair(net, &kept, &RepairContext::default())?;
        }
        let n = kept.items.len();
        let after = correct_share(&r.network, &clean)?;
        let lp = r.lp.last();
        let row = RepairRow {
            network: name.to_string(),
            setting: format!(
                "{}{}",
                opts.corruption.map_or("clean".into(), |c| c.label()),
                if opts.anchors.is_empty() {
                    String::new()
                } else {
                    format!(", {} anchors", opts.anchors.len())
                }
            ),
            layer: r.layer.clone(),
            layer_index: k,
            status: serde_json::to_value(r.status)?
                .as_str()
                .unwrap_or("?")
                .to_string(),
            n,
            dropped: opts.n - n,
            efficacy: r.count(ItemStatus::Repaired) as f64 / n.max(1) as f64,
            accuracy_before: before,
            accuracy_after: after,
            drawdown_pp: 100.0 * (before - after),
            generalisation: match opts.corruption {
                Some(_) => Some(correct_share(&r.network, &held_out_errors)?),
                None => None,
            },
            generalisation_n: held_out_errors.len(),
            changed: r.param_delta.changed,
            linf: r.param_delta.linf,
            time_s: r.time_s,
            lp_rows: lp.map_or(0, |l| l.rows),
            lp_cols: lp.map_or(0, |l| l.cols),
            lp_nonzeros: lp.map_or(0, |l| l.nonzeros),
            build_s: r.timings.build_s,
            solve_s: r.timings.solve_s,
        };
        on_row(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// The table as Markdown.
pub fn markdown(rows: &[RepairRow]) -> String {
    let mut s = String::from(
        "| network | repair set | layer | result | efficacy | drawdown (pp) | generalisation | changed | Linf | time (s) | LP rows x cols (nnz) | build / solve (s) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} x {} | {} ({}) | {} | {:.0}% | {:.2} | {} | {} | {:.3} | {:.1} | {} x {} ({}) | {:.2} / {:.1} |\n",
            r.network,
            r.n,
            if r.dropped > 0 {
                format!("{} ({} flagged left out)", r.setting, r.dropped)
            } else {
                r.setting.clone()
            },
            r.layer_index,
            r.layer,
            r.status,
            100.0 * r.efficacy,
            r.drawdown_pp,
            r.generalisation
                .map_or("-".into(), |g| format!("{:.1}% of {}", 100.0 * g, r.generalisation_n)),
            r.changed,
            r.linf,
            r.time_s,
            r.lp_rows,
            r.lp_cols,
            r.lp_nonzeros,
            r.build_s,
            r.solve_s
        ));
    }
    s
}

//! Pointwise repair of a classifier's errors (APRNN, seed 000's setting): for every start
//! layer, efficacy (share of the repair set confirmed by the f64 re-check), drawdown on the
//! rest of the test split, generalisation to held-out corrupted images of the same kind, and
//! the LP's size and time. [`aprnn_table1`] runs APRNN's own protocol (seed 000's Table 1):
//! the first images of a corrupted test set as they come, correct ones included.

use std::time::Duration;

use anyhow::{bail, Result};
use netrepair_data::Dataset;
use netrepair_nn::Network;
use netrepair_repair::{
    affine_layers, Aprnn, ItemStatus, KeepObjective, KeepSet, LabelledSet, LpRepairOptions, Repair,
    RepairContext, RepairOutcome, RepairProblem, WarmOptions, WarmStart,
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
    /// Errors protocol: held-out corrupted errors (same corruption, not in the repair set) now
    /// classified correctly (they were all wrong before); `None` for the clean setting.
    /// APRNN's protocol: accuracy on the held-out corrupted images after minus before.
    pub generalisation: Option<f64>,
    /// "errors" or "aprnn" (see [`repair_errors`] and [`aprnn_table1`]).
    pub protocol: &'static str,
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
    /// Kept points classified as labelled after the repair, of how many (`None`: no keep set).
    pub kept: Option<(usize, usize)>,
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
    /// The keep set's points: correctly classified training samples that must stay correct.
    pub keep: LabelledSet,
    /// Bound on every parameter delta (`None`: unbounded).
    pub delta_bound: Option<f64>,
    /// How the kept points' output changes enter the objective.
    pub keep_objective: KeepObjective,
    /// Leave out the items APRNN's screening flags (e.g. a dead hidden layer) and repair the
    /// rest.
    pub drop_flagged: bool,
    /// Correctly classified training samples to fine-tune on before the LP (a warm start,
    /// [`WarmStart`]); empty: APRNN alone.
    pub warm: LabelledSet,
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
    let problem = RepairProblem::from_labels(&xs, &labels, net.input_len(), net.output_len())?
        .with_keep(KeepSet::points(opts.keep.clone()));
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
        let method = method_at(node, opts);
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
        let row = row_of(
            &r,
            name,
            setting(opts),
            k,
            n,
            opts.n - n,
            before,
            after,
            match opts.corruption {
                Some(_) => Some(correct_share(&r.network, &held_out_errors)?),
                None => None,
            },
            held_out_errors.len(),
            "errors",
        )?;
        on_row(&row);
        rows.push(row);
    }
    Ok(rows)
}

fn keep_label(opts: &RepairBenchOptions) -> String {
    let mut label = String::new();
    if !opts.keep.is_empty() {
        label.push_str(&format!(", keep {}", opts.keep.len()));
    }
    if !opts.warm.is_empty() {
        label.push_str(&format!(", warm start {}", opts.warm.len()));
    }
    label
}

/// The bench's method at start node `node`: APRNN, after fine-tuning on `opts.warm` when it
/// is not empty.
fn method_at(node: usize, opts: &RepairBenchOptions) -> Box<dyn Repair> {
    let aprnn = Box::new(aprnn_at(node, opts));
    if opts.warm.is_empty() {
        aprnn
    } else {
        Box::new(WarmStart {
            train: opts.warm.clone(),
            options: WarmOptions::default(),
            then: aprnn,
        })
    }
}

fn setting(opts: &RepairBenchOptions) -> String {
    format!(
        "{}{}",
        opts.corruption.map_or("clean".into(), |c| c.label()),
        keep_label(opts)
    )
}

/// APRNN at start node `node` with the bench's LP settings.
fn aprnn_at(node: usize, opts: &RepairBenchOptions) -> Aprnn {
    let d = Aprnn::default();
    Aprnn {
        lp: LpRepairOptions {
            layer: Some(node),
            time_limit: Some(opts.lp_timeout),
            delta_bound: opts.delta_bound,
            ..d.lp
        },
        keep_objective: opts.keep_objective,
        ..Aprnn::default()
    }
}

/// One table row from an outcome.
#[allow(clippy::too_many_arguments)]
fn row_of(
    r: &RepairOutcome,
    name: &str,
    setting: String,
    layer_index: usize,
    n: usize,
    dropped: usize,
    before: f64,
    after: f64,
    generalisation: Option<f64>,
    generalisation_n: usize,
    protocol: &'static str,
) -> Result<RepairRow> {
    let lp = r.lp.last();
    Ok(RepairRow {
        network: name.to_string(),
        setting,
        layer: r.layer.clone(),
        layer_index,
        status: serde_json::to_value(r.status)?
            .as_str()
            .unwrap_or("?")
            .to_string(),
        n,
        dropped,
        efficacy: r.count(ItemStatus::Repaired) as f64 / n.max(1) as f64,
        accuracy_before: before,
        accuracy_after: after,
        drawdown_pp: 100.0 * (before - after),
        generalisation,
        protocol,
        generalisation_n,
        changed: r.param_delta.changed,
        linf: r.param_delta.linf,
        time_s: r.time_s,
        lp_rows: lp.map_or(0, |l| l.rows),
        lp_cols: lp.map_or(0, |l| l.cols),
        lp_nonzeros: lp.map_or(0, |l| l.nonzeros),
        build_s: r.timings.build_s,
        solve_s: r.timings.solve_s,
        kept: r.keep.as_ref().map(|k| (k.correct_after, k.points)),
    })
}

/// APRNN's MNIST protocol (seed 000, Table 1; the reference's `eval_1_aprnn.py`): the first
/// `opts.n` images of the corrupted test set `corrupted` as they come (correct ones
/// included) are the repair set; drawdown is clean test accuracy (all of `clean`) before
/// minus after; generalisation is the accuracy on `corrupted[1100..]` after minus before.
pub fn aprnn_table1(
    net: &Network,
    name: &str,
    clean: &Dataset,
    corrupted: &Dataset,
    layer_index: usize,
    opts: &RepairBenchOptions,
) -> Result<(RepairRow, Network)> {
    let affine = affine_layers(net);
    let Some(&node) = affine.get(layer_index) else {
        bail!(
            "layer {layer_index}: the network has {} affine layers",
            affine.len()
        )
    };
    if corrupted.len() <= 1100 || opts.n > 1100 {
        bail!("the protocol needs more than 1100 corrupted images and at most 1100 repair points");
    }
    let idx: Vec<usize> = (0..opts.n).collect();
    let xs: Vec<f64> = idx
        .iter()
        .flat_map(|&i| corrupted.sample(i).iter().map(|&v| f64::from(v)))
        .collect();
    let labels: Vec<usize> = idx.iter().map(|&i| corrupted.labels[i] as usize).collect();
    let problem = RepairProblem::from_labels(&xs, &labels, net.input_len(), net.output_len())?
        .with_keep(KeepSet::points(opts.keep.clone()));
    let general = corrupted.subset(&(1100..corrupted.len()).collect::<Vec<_>>())?;
    let (before, g_before) = (correct_share(net, clean)?, correct_share(net, &general)?);
    let r = method_at(node, opts).repair(net, &problem, &RepairContext::default())?;
    let (after, g_after) = (
        correct_share(&r.network, clean)?,
        correct_share(&r.network, &general)?,
    );
    let row = row_of(
        &r,
        name,
        format!(
            "{} first {} as they come{}",
            corrupted.name,
            opts.n,
            keep_label(opts)
        ),
        layer_index,
        opts.n,
        0,
        before,
        after,
        Some(g_after - g_before),
        general.len(),
        "aprnn",
    )?;
    Ok((row, r.network))
}

/// The table as Markdown.
pub fn markdown(rows: &[RepairRow]) -> String {
    let mut s = String::from(
        "| network | repair set | layer | result | efficacy | drawdown (pp) | generalisation | kept | changed | Linf | time (s) | LP rows x cols (nnz) | build / solve (s) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} x {} | {} ({}) | {} | {:.0}% | {:.2} | {} | {} | {} | {:.3} | {:.1} | {} x {} ({}) | {:.2} / {:.1} |\n",
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
            match (r.generalisation, r.protocol) {
                (None, _) => "-".into(),
                (Some(g), "aprnn") => format!("{:+.2} pp on {}", 100.0 * g, r.generalisation_n),
                (Some(g), _) => format!("{:.1}% of {}", 100.0 * g, r.generalisation_n),
            },
            r.kept
                .map_or("-".into(), |(a, n)| format!("{a}/{n}")),
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

//! Local robustness editing (PREPARED's CIFAR-10 setting, seed 003): test images that PGD
//! shows non-robust in an L-inf ball are made provably robust by editing the last layer;
//! clean accuracy and certified accuracy on other test images are measured before and after.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use netrepair_data::Dataset;
use netrepair_nn::Network;
use netrepair_repair::{
    repair_warm_started, Cuts, ItemStatus, KeepObjective, KeepSet, LabelledSet, LpRepairOptions,
    Prepared, Repair, RepairContext, RepairItem, RepairProblem, WarmOptions,
};
use netrepair_spec::{BoxRegion, Case, LinearConstraint, Polytope, Property};
use netrepair_verify::{
    linear_bounds, optimised_linear_bounds, optimised_row_bounds, pgd, pgd_maximum, prove_case,
    AlphaOptions, CheckOptions, PgdOptions,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;

use crate::training::accuracy;

/// The result of one editing run.
#[derive(Debug, Clone, Serialize)]
pub struct RobustRow {
    /// Network file name.
    pub network: String,
    /// Radius in pixel space ([0, 1]).
    pub eps: f64,
    /// Correctly classified test images scanned with PGD (in a seeded random order).
    pub scanned: usize,
    /// Of which PGD broke (the first `edited` of them were edited).
    pub non_robust: usize,
    /// Properties edited.
    pub edited: usize,
    /// Of which proved robust by the verifier after the edit.
    pub proved: usize,
    /// "proved", "unconfirmed", "infeasible", "limit".
    pub status: String,
    /// Clean accuracy on the whole test split, before and after.
    pub clean_before: f64,
    /// After.
    pub clean_after: f64,
    /// Share of `certified_n` other test images proved robust and correct, before and after.
    pub certified_before: f64,
    /// After.
    pub certified_after: f64,
    /// Images in the certified-accuracy sample.
    pub certified_n: usize,
    /// Largest parameter change.
    pub linf: f64,
    /// Parameters changed.
    pub changed: usize,
    /// Edit time (LP and re-check).
    pub time_s: f64,
    /// Of which the re-check.
    pub recheck_s: f64,
    /// LP rows x columns.
    pub lp_rows: usize,
    /// LP columns.
    pub lp_cols: usize,
    /// Kept training images classified as labelled after the edit, of how many.
    pub kept_points: Option<(usize, usize)>,
    /// Kept certified training balls still certified after the edit, of how many.
    pub kept_regions: Option<(usize, usize)>,
    /// Notes of the repair (e.g. a keep set dropped as infeasible).
    pub notes: Vec<String>,
    /// With a warm start: clean accuracy of the fine-tuned network, before the edit.
    pub warm_clean: Option<f64>,
    /// With a warm start: certified accuracy of the others on the fine-tuned network.
    pub warm_certified: Option<f64>,
    /// With a warm start: its optimiser steps.
    pub warm_steps: Option<usize>,
}

/// "Image `x` (pixel space) keeps label `label` within `eps`" in the network's input space
/// (per-channel `(v - mean) / std`).
pub fn robustness_property(
    x: &[f32],
    label: usize,
    classes: usize,
    eps: f64,
    mean: &[f32],
    std: &[f32],
) -> Result<Property> {
    let per = x.len() / mean.len();
    let norm = |k: usize, v: f64| (v - f64::from(mean[k / per])) / f64::from(std[k / per]);
    let input = BoxRegion::new(
        x.iter()
            .enumerate()
            .map(|(k, &v)| norm(k, (f64::from(v) - eps).max(0.0)))
            .collect(),
        x.iter()
            .enumerate()
            .map(|(k, &v)| norm(k, (f64::from(v) + eps).min(1.0)))
            .collect(),
    )?;
    Ok(Property {
        num_inputs: x.len(),
        num_outputs: classes,
        cases: vec![Case {
            input,
            unsafe_region: (0..classes)
                .filter(|&j| j != label)
                .map(|j| Polytope {
                    constraints: vec![LinearConstraint {
                        coeffs: vec![(label, 1.0), (j, -1.0)],
                        rhs: 0.0,
                    }],
                })
                .collect(),
        }],
    })
}

/// The L-inf balls of radius `eps` around the images at `indices` of `pixels` that `net`
/// certifies (linear bounds), as properties to keep: at most `n` of them.
pub fn certified_balls(
    net: &Network,
    pixels: &Dataset,
    indices: &[usize],
    eps: f64,
    mean: &[f32],
    std: &[f32],
    n: usize,
) -> Result<Vec<Property>> {
    let mut out = Vec::new();
    // In chunks certified in parallel, taken in order until `n` are found.
    for chunk in indices.chunks(16) {
        if out.len() >= n {
            break;
        }
        let found: Vec<Option<Property>> = chunk
            .par_iter()
            .map(|&i| {
                let p = robustness_property(
                    pixels.sample(i),
                    pixels.labels[i] as usize,
                    net.output_len(),
                    eps,
                    mean,
                    std,
                )?;
                Ok((certified(net, std::slice::from_ref(&p))? == 1.0).then_some(p))
            })
            .collect::<Result<_>>()?;
        out.extend(found.into_iter().flatten());
    }
    out.truncate(n);
    Ok(out)
}

fn certified(net: &Network, props: &[Property]) -> Result<f64> {
    let mut ok = 0;
    for p in props {
        let case = &p.cases[0];
        let b = linear_bounds(net, &case.input)?;
        if prove_case(net, case, &b)? {
            ok += 1;
        }
    }
    Ok(ok as f64 / props.len().max(1) as f64)
}

/// Settings of [`robustness_edit`].
#[derive(Debug, Clone)]
pub struct RobustConfig {
    /// L-inf radius in pixel space.
    pub eps: f64,
    /// Test images scanned with PGD.
    pub scan: usize,
    /// Non-robust images to edit.
    pub k: usize,
    /// Other robust test images for the certified-accuracy figure.
    pub certified_n: usize,
    /// Verifier time limit per property re-check.
    pub timeout: Duration,
    /// What must stay as it is.
    pub keep: KeepSet,
    /// How the edit bounds the balls' original requirement directions.
    pub cuts: Cuts,
    /// How the kept images' output changes enter the objective.
    pub keep_objective: KeepObjective,
    /// Before editing, print how far each broken ball's worst margin is from the exact
    /// maximum by each bound (back-substitution, LP relaxation, MILP).
    pub gap: bool,
    /// Correctly classified training images to fine-tune on before the edit (a warm start,
    /// [`WarmStart`]); empty: PREPARED alone.
    pub warm: LabelledSet,
    /// The warm start's settings (its property margin above all).
    pub warm_options: WarmOptions,
    /// Time limit of each of PREPARED's LPs (none: until HiGHS ends).
    pub lp_timeout: Option<Duration>,
}

/// Scans `pixels` (test images in [0, 1]) for PGD-breakable ones, edits the first `k`, and
/// measures clean and certified accuracy (`normalized` is the same split normalised).
pub fn robustness_edit(
    net: &Network,
    name: &str,
    pixels: &Dataset,
    normalized: &Dataset,
    mean: &[f32],
    std: &[f32],
    cfg: RobustConfig,
) -> Result<(RobustRow, Network, Vec<usize>)> {
    let RobustConfig {
        eps,
        scan,
        k,
        certified_n,
        timeout,
        keep,
        cuts,
        keep_objective,
        gap,
        warm,
        warm_options,
        lp_timeout,
    } = cfg;
    let classes = net.output_len();
    let pred = net.predict(&crate::training::tensors(net, normalized)?.0)?;
    let mut broken = Vec::new();
    let mut scanned = 0;
    let mut robust_others = Vec::new();
    let mut other_index = Vec::new();
    // A seeded shuffle: image folders are sorted by class, and the scan must mix them.
    let mut order: Vec<usize> = (0..pixels.len()).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(0));
    for &i in order.iter().take(scan) {
        if pred[i] != pixels.labels[i] {
            continue;
        }
        scanned += 1;
        let prop = robustness_property(
            pixels.sample(i),
            pixels.labels[i] as usize,
            classes,
            eps,
            mean,
            std,
        )?;
        let attack = PgdOptions {
            restarts: 8,
            steps: 20,
            ..PgdOptions::default()
        };
        if broken.len() < k && pgd(net, &prop.cases[0], &attack)?.is_some() {
            eprintln!("image {i}: PGD finds an adversarial example");
            broken.push(prop);
        } else if robust_others.len() < certified_n {
            robust_others.push(prop);
            other_index.push(i);
        }
    }
    eprintln!(
        "scanned {scanned} images: {} broken by PGD, {} others for certification",
        broken.len(),
        robust_others.len()
    );
    if broken.is_empty() {
        bail!("PGD broke none of the {scanned} correctly classified images scanned");
    }
    if gap {
        relaxation_gap(net, &broken, timeout)?;
    }
    let (clean_before, certified_before) =
        (accuracy(net, normalized)?, certified(net, &robust_others)?);
    let problem = RepairProblem::new(
        broken
            .iter()
            .enumerate()
            .map(|(i, p)| RepairItem::Property {
                name: format!("non-robust image {i}"),
                property: p.clone(),
            })
            .collect(),
    )
    .with_keep(keep);
    let method = Prepared {
        // The interior point, as APRNN's default: the simplex takes minutes on the kept
        // points' dense rows (every row reads 100 weights).
        lp: LpRepairOptions {
            method: netrepair_lp::Method::Ipm,
            time_limit: lp_timeout,
            ..LpRepairOptions::default()
        },
        split_rounds: 0,
        cuts,
        keep_objective,
        ..Prepared::default()
    };
    let ctx = RepairContext {
        check: CheckOptions {
            timeout,
            ..CheckOptions::default()
        },
        progress: Some(Box::new(|m: &str| eprintln!("  {m}"))),
        lp_dump: None,
    };
    let t = Instant::now();
    // With a warm start, the fine-tuned network is measured too (what the fine-tuning and
    // what the edit cost, each).
    let (r, after_warm) = if warm.is_empty() {
        (method.repair(net, &problem, &ctx)?, None)
    } else {
        let (tuned, report) = warm_options.fine_tune(net, &problem, &warm, &ctx)?;
        let measured = (
            accuracy(&tuned, normalized)?,
            certified(&tuned, &robust_others)?,
        );
        (
            repair_warm_started(net, &tuned, report, &method, &problem, &ctx, t)?,
            Some(measured),
        )
    };
    let time_s = t.elapsed().as_secs_f64();
    let lp = r.lp.last();
    let row = RobustRow {
        network: name.to_string(),
        eps,
        scanned,
        non_robust: broken.len(),
        edited: broken.len(),
        proved: r.count(ItemStatus::Repaired),
        status: serde_json::to_value(r.status)?
            .as_str()
            .unwrap_or("?")
            .to_string(),
        clean_before,
        clean_after: accuracy(&r.network, normalized)?,
        certified_before,
        certified_after: certified(&r.network, &robust_others)?,
        certified_n: robust_others.len(),
        linf: r.param_delta.linf,
        changed: r.param_delta.changed,
        time_s,
        recheck_s: r.timings.recheck_s,
        lp_rows: lp.map_or(0, |l| l.rows),
        lp_cols: lp.map_or(0, |l| l.cols),
        kept_points: r
            .keep
            .as_ref()
            .filter(|k| k.points > 0)
            .map(|k| (k.correct_after, k.points)),
        kept_regions: r
            .keep
            .as_ref()
            .filter(|k| k.regions > 0)
            .map(|k| (k.regions_proved, k.regions)),
        notes: r.notes.clone(),
        warm_clean: after_warm.map(|w| w.0),
        warm_certified: after_warm.map(|w| w.1),
        warm_steps: r.warm_start.as_ref().map(|w| w.steps),
    };
    Ok((row, r.network, other_index))
}

/// For each ball: the largest `y_j - y_label` over it (the worst other class `j` by
/// back-substitution), bounded from above by back-substitution, by the LP relaxation and by
/// the MILP (its bound when the time limit stops it), and from below by the largest value PGD
/// reaches; printed.
fn relaxation_gap(net: &Network, balls: &[Property], timeout: Duration) -> Result<()> {
    use netrepair_verify::milp::{exact_row_upper, relaxed_row_upper};
    let out = net.nodes().len();
    let m = net.output_len();
    println!(
        "| ball | worst class | PGD (reached) | back-substitution | optimised slopes (output) | optimised slopes (all layers) | LP relaxation | MILP (bound proved in the time limit) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (i, p) in balls.iter().enumerate() {
        let case = &p.cases[0];
        let b = linear_bounds(net, &case.input)?;
        // The worst other class by back-substitution; the LP relaxation and the MILP for it.
        // Each polytope is `y_label - y_j <= 0`: its row's negation is `y_j - y_label`.
        let rows: Vec<Vec<f64>> = case
            .unsafe_region
            .iter()
            .map(|poly| {
                let mut row = vec![0.0; m];
                for &(o, a) in &poly.constraints[0].coeffs {
                    row[o] -= a;
                }
                row
            })
            .collect();
        let (_, ups) = netrepair_verify::row_bounds(net, &b, out, &rows)?;
        let Some((k, &up)) = ups.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)) else {
            continue;
        };
        let (poly, row) = (&case.unsafe_region[k], &rows[k]);
        let c = &poly.constraints[0];
        let j = c
            .coeffs
            .iter()
            .find(|&&(_, a)| a < 0.0)
            .map_or(0, |&(j, _)| j);
        // alpha-CROWN: the slopes optimised for this row alone, then also for every unstable
        // neuron's own bounds.
        let alpha = AlphaOptions::default();
        let one = std::slice::from_ref(row);
        let alpha_out = optimised_row_bounds(net, &b, out, one, &alpha)?.1[0];
        let tight = optimised_linear_bounds(net, &case.input, &alpha)?;
        let alpha_all = optimised_row_bounds(net, &tight, out, one, &alpha)?.1[0];
        let lp = relaxed_row_upper(net, &b, out, std::slice::from_ref(row), timeout)?[0];
        let exact = exact_row_upper(net, &b, out, std::slice::from_ref(row), timeout)?[0];
        let exact = exact.map_or("-".to_string(), |v| format!("{v:.3}"));
        let lp = lp.map_or("-".to_string(), |v| format!("{v:.3}"));
        let ascent = PgdOptions {
            restarts: 32,
            steps: 100,
            seed: 1,
            ..PgdOptions::default()
        };
        let reached = pgd_maximum(net, &case.input, row, &ascent)?;
        println!(
            "| {i} | {j} | {reached:.3} | {up:.3} | {alpha_out:.3} | {alpha_all:.3} | {lp} | {exact} |"
        );
    }
    Ok(())
}

//! REGLO's re-check of the repaired network as written and its per-property report: every
//! area's VB, the whole region's verdict by the shared rule ([`global_verdict`]), the attack,
//! and the figures of [`GlobalReport`].

use netrepair_nn::Network;
use netrepair_spec::GlobalProperty;
use netrepair_verify::{area_variation, Chain, SplitOptions, VariationReport};
use rayon::prelude::*;

use super::areas::Area;
use super::params::Reglo;
use crate::error::Result;
use crate::outcome::{GlobalReport, ItemReport, ItemStatus, RegloIteration};
use crate::recheck::global_verdict;

/// What was measured on the original network, per property.
pub(super) struct Measured<'a> {
    pub names: &'a [String],
    pub props: &'a [&'a GlobalProperty],
    /// The attack's sample points.
    pub eval: &'a [Vec<Vec<f64>>],
    /// The attack's report and VB before the repair.
    pub before: &'a [(VariationReport, f64)],
}

/// How the last layer changed.
pub(super) struct Change {
    pub scale_aware: bool,
    /// The scale of the original weight in the new one.
    pub lambda: f64,
    /// `||change||_1 / ||original||_1`.
    pub relative_change: f64,
    /// The shrink factor the global proof applied, if any.
    pub rescaled: Option<f64>,
}

impl Reglo {
    /// Re-checks `after` (the network as written) for every property and reports each: the
    /// item (proved, failed or unconfirmed, by [`global_verdict`]) and its figures; each
    /// property's rounds move from `iterations` into its report.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn recheck_report(
        &self,
        after: &Network,
        areas: &[Area],
        cover_areas: &[usize],
        split: &SplitOptions,
        m: &Measured,
        change: &Change,
        iterations: &mut [Vec<RegloIteration>],
    ) -> Result<(Vec<ItemReport>, Vec<GlobalReport>)> {
        let chain_after = Chain::new(after)?;
        let area_vb: Vec<Result<f64>> = areas
            .par_iter()
            .map(|a| {
                Ok(area_variation(
                    after,
                    &chain_after,
                    m.props[a.prop],
                    &a.region,
                    self.pieces,
                )?)
            })
            .collect();
        let area_vb: Vec<f64> = area_vb.into_iter().collect::<Result<_>>()?;
        let mut reports = Vec::new();
        let mut items = Vec::new();
        for (p, prop) in m.props.iter().enumerate() {
            let mine: Vec<usize> = (0..areas.len()).filter(|&i| areas[i].prop == p).collect();
            let proved_areas = mine.iter().filter(|&&i| area_vb[i] <= prop.eps).count();
            // The cover: the first `cover_areas[p]` areas tile the region.
            let cover_vb = (cover_areas[p] > 0).then(|| {
                mine[..cover_areas[p]]
                    .iter()
                    .map(|&i| area_vb[i])
                    .fold(0.0, f64::max)
            });
            let verdict = global_verdict(
                after,
                &chain_after,
                prop,
                split,
                cover_vb,
                &m.eval[p],
                &self.attack,
            )?;
            let (vb, rep) = (verdict.vb, verdict.attack);
            let (status, proved) = (verdict.status, verdict.status == ItemStatus::Repaired);
            let detail = match status {
                ItemStatus::Repaired => format!(
                    "VB = {vb:.4} <= eps = {} over the whole region (sound bound, re-checked in f64)",
                    prop.eps
                ),
                ItemStatus::Failed => format!(
                    "the attack still finds a variation of {:.4} > eps = {} ({:.1}% of {} points); {proved_areas} of {} areas proved",
                    rep.pgd_b,
                    prop.eps,
                    100.0 * rep.pgd_r,
                    m.eval[p].len(),
                    mine.len()
                ),
                ItemStatus::Unconfirmed => format!(
                    "{proved_areas} of {} repair areas proved; no violation found from {} points (PGD-B {:.4}), but VB over the whole region is {vb:.4} > eps = {}",
                    mine.len(),
                    m.eval[p].len(),
                    rep.pgd_b,
                    prop.eps
                ),
            };
            let (rb, vb_before) = &m.before[p];
            items.push(ItemReport {
                index: p,
                kind: "global",
                status,
                held_before: if *vb_before <= prop.eps {
                    Some(true)
                } else if rb.pgd_b > prop.eps {
                    Some(false)
                } else {
                    None
                },
                margin: Some(prop.eps - vb),
                detail,
            });
            reports.push(GlobalReport {
                name: m.names[p].clone(),
                kind: prop.kind(),
                eps: prop.eps,
                measure: prop.measure.name(),
                vb_before: *vb_before,
                vb_after: vb,
                pgd_b_before: rb.pgd_b,
                pgd_b_after: rep.pgd_b,
                pgd_r_before: rb.pgd_r,
                pgd_r_after: rep.pgd_r,
                points: m.eval[p].len(),
                areas: mine.len(),
                areas_proved: proved_areas,
                proved,
                objective: if change.scale_aware {
                    "scale"
                } else {
                    "min-change"
                },
                lambda: change.lambda,
                relative_change: change.relative_change,
                lambda_only: (prop.eps * (1.0 - self.margin) / vb_before).min(1.0),
                rescaled: change.rescaled,
                iterations: std::mem::take(&mut iterations[p]),
                worst_after: rep
                    .worst_index()
                    .map(|i| (m.eval[p][i].clone(), rep.partners[i].clone())),
            });
        }
        Ok((items, reports))
    }
}

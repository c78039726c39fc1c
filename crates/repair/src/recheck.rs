//! The independent re-check of a repaired network: what the report may call "repaired".
//!
//! Points: an f64 forward pass must meet every requirement. V-polytopes: every vertex must
//! keep the centroid's activation pattern (ReLU signs, max-pool winners) at every layer, so the
//! network is affine on the hull, and every vertex must meet the requirements; linear
//! requirements then hold on the whole hull. Properties: the sound verifier must prove them.

use netrepair_nn::Network;
use netrepair_spec::GlobalProperty;
use netrepair_verify::{
    check_property, pgd_variation, uniform_points, variation_bound, Chain, CheckOptions,
    SplitOptions, VariationAttack, VariationReport, Verdict,
};

use crate::error::Result;
use crate::outcome::{ItemReport, ItemStatus, KeepReport};
use crate::problem::{KeepSet, RepairItem, RepairProblem, Requirement};
use crate::trace::{outputs, pattern_mismatch, traces};

/// Smallest margin by which `y` meets the requirements (negative: violated) and whether it
/// meets them (strict ones strictly).
fn margin(reqs: &[Requirement], y: &[f64]) -> (f64, bool) {
    let m = reqs
        .iter()
        .map(|r| -r.slack(y))
        .fold(f64::INFINITY, f64::min);
    (m, reqs.iter().all(|r| r.holds(y)))
}

/// Centroid of a vertex set.
pub(crate) fn centroid(vertices: &[Vec<f64>]) -> Vec<f64> {
    let n = vertices.len() as f64;
    let mut c = vec![0.0; vertices[0].len()];
    for v in vertices {
        for (a, b) in c.iter_mut().zip(v) {
            *a += b / n;
        }
    }
    c
}

/// Re-checks every item of `problem` on `after`; `before` (the original network) gives the
/// "held before" column.
pub fn recheck(
    before: &Network,
    after: &Network,
    problem: &RepairProblem,
    check: &CheckOptions,
) -> Result<Vec<ItemReport>> {
    recheck_until(before, after, problem, check, false)
}

/// [`recheck`] that, with `stop_at_failure`, ends at the first item not confirmed (the
/// reports up to and including it): a cheap "does this network already pass?" where a
/// property's verification can take the verifier's whole time limit.
pub(crate) fn recheck_until(
    before: &Network,
    after: &Network,
    problem: &RepairProblem,
    check: &CheckOptions,
    stop_at_failure: bool,
) -> Result<Vec<ItemReport>> {
    let points: Vec<Vec<f64>> = problem
        .items
        .iter()
        .filter_map(|i| match i {
            RepairItem::Point { x, .. } => Some(x.clone()),
            _ => None,
        })
        .collect();
    let (y_before, y_after) = (outputs(before, &points)?, outputs(after, &points)?);
    let mut next_point = 0;
    let mut out = Vec::with_capacity(problem.items.len());
    for (index, item) in problem.items.iter().enumerate() {
        let report = match item {
            RepairItem::Point { requirements, .. } => {
                let (yb, ya) = (&y_before[next_point], &y_after[next_point]);
                next_point += 1;
                let (m, ok) = margin(requirements, ya);
                ItemReport {
                    index,
                    kind: item.kind(),
                    status: if ok {
                        ItemStatus::Repaired
                    } else {
                        ItemStatus::Failed
                    },
                    held_before: Some(margin(requirements, yb).1),
                    margin: Some(m),
                    detail: if ok {
                        "f64 forward pass meets every requirement".into()
                    } else {
                        "f64 forward pass violates a requirement".into()
                    },
                }
            }
            RepairItem::Polytope {
                vertices,
                requirements,
            } => {
                let mut xs = vertices.clone();
                xs.push(centroid(vertices));
                let held_before = outputs(before, vertices)?
                    .iter()
                    .all(|y| margin(requirements, y).1);
                let vals = traces(after, &xs)?;
                let (reference, vals) = vals.split_last().expect("at least the centroid");
                let all_nodes = 0..after.nodes().len();
                let leak = vals.iter().enumerate().find_map(|(k, v)| {
                    pattern_mismatch(after, all_nodes.clone(), v, reference).map(|n| (k, n))
                });
                let (m, ok) = vals
                    .iter()
                    .map(|v| margin(requirements, v.last().expect("output")))
                    .fold((f64::INFINITY, true), |(m, ok), (m2, ok2)| {
                        (m.min(m2), ok && ok2)
                    });
                let (status, detail) = match (leak, ok) {
                    (Some((k, n)), _) => (
                        ItemStatus::Failed,
                        format!(
                            "vertex {k} leaves the centroid's linear region at node '{}'",
                            after.nodes()[n].name()
                        ),
                    ),
                    (None, false) => (
                        ItemStatus::Failed,
                        "a vertex violates a requirement".to_string(),
                    ),
                    (None, true) => (
                        ItemStatus::Repaired,
                        "one linear region holds the hull and every vertex meets the requirements"
                            .to_string(),
                    ),
                };
                ItemReport {
                    index,
                    kind: item.kind(),
                    status,
                    held_before: Some(held_before),
                    margin: Some(m),
                    detail,
                }
            }
            RepairItem::Property { name, property } => {
                let r = check_property(after, property, check)?;
                let (status, detail) = match r.verdict {
                    Verdict::Holds => (
                        ItemStatus::Repaired,
                        format!("{name}: proved by the verifier in {:.2} s", r.seconds),
                    ),
                    Verdict::Violated(c) => (
                        ItemStatus::Failed,
                        format!(
                            "{name}: counterexample found, e.g. x = {:?}",
                            &c.x[..c.x.len().min(8)]
                        ),
                    ),
                    Verdict::Unknown(why) => (
                        ItemStatus::Unconfirmed,
                        format!("{name}: the verifier could not decide ({why})"),
                    ),
                };
                ItemReport {
                    index,
                    kind: item.kind(),
                    status,
                    held_before: None,
                    margin: None,
                    detail,
                }
            }
            RepairItem::Global { name, property } => {
                global_report(index, name, after, property, check)?
            }
        };
        let failed = report.status != ItemStatus::Repaired;
        out.push(report);
        if stop_at_failure && failed {
            break;
        }
    }
    Ok(out)
}

/// The one rule by which a global robustness / fairness item counts as repaired, whoever
/// re-checks it: a sound bound VB on the variation over the whole region is at most eps. VB is
/// the best-first split bound (`split`) and, when the caller's areas cover the region, the
/// smaller of that and `cover_vb` (the largest of their sound bounds). Otherwise the variation
/// attack from `points` tells a refuted property (`Failed`) from an undecided one
/// (`Unconfirmed`).
pub(crate) struct GlobalVerdict {
    /// The verdict.
    pub status: ItemStatus,
    /// The sound bound used.
    pub vb: f64,
    /// Leaf boxes of the split bound.
    pub boxes: usize,
    /// What the attack found.
    pub attack: VariationReport,
}

/// [`GlobalVerdict`] of `prop` on `after` (see there).
pub(crate) fn global_verdict(
    after: &Network,
    chain: &Chain,
    prop: &GlobalProperty,
    split: &SplitOptions,
    cover_vb: Option<f64>,
    points: &[Vec<f64>],
    attack: &VariationAttack,
) -> Result<GlobalVerdict> {
    let bound = variation_bound(after, chain, prop, &prop.region, split)?;
    let vb = cover_vb.map_or(bound.vb, |c| bound.vb.min(c));
    let attack = pgd_variation(chain, prop, points, attack);
    let status = if vb <= prop.eps {
        ItemStatus::Repaired
    } else if attack.pgd_b > prop.eps {
        ItemStatus::Failed
    } else {
        ItemStatus::Unconfirmed
    };
    Ok(GlobalVerdict {
        status,
        vb,
        boxes: bound.boxes,
        attack,
    })
}

/// Global robustness / fairness: [`global_verdict`] with best-first splitting within the
/// check's time limit and the attack from 256 uniform points.
fn global_report(
    index: usize,
    name: &str,
    after: &Network,
    prop: &GlobalProperty,
    check: &CheckOptions,
) -> Result<ItemReport> {
    let chain = Chain::new(after)?;
    let split = SplitOptions {
        time_limit: check.timeout,
        ..SplitOptions::default()
    };
    let pts = uniform_points(&prop.region, 256, check.pgd.seed);
    let v = global_verdict(
        after,
        &chain,
        prop,
        &split,
        None,
        &pts,
        &VariationAttack::default(),
    )?;
    let detail = match v.status {
        ItemStatus::Repaired => format!(
            "{name}: VB = {:.4} <= eps = {} (sound bound over {} boxes)",
            v.vb, prop.eps, v.boxes
        ),
        ItemStatus::Failed => format!(
            "{name}: the attack finds a variation of {:.4} > eps = {}",
            v.attack.pgd_b, prop.eps
        ),
        ItemStatus::Unconfirmed => format!(
            "{name}: VB = {:.4} > eps = {}, no violation found",
            v.vb, prop.eps
        ),
    };
    Ok(ItemReport {
        index,
        kind: "global",
        status: v.status,
        held_before: None,
        margin: Some(prop.eps - v.vb),
        detail,
    })
}

/// What the re-check found: per-item reports, how many it confirmed, how the keep set fared,
/// and how long it took.
pub(crate) struct Rechecked {
    pub items: Vec<ItemReport>,
    pub ok: usize,
    pub keep: Option<KeepReport>,
    pub seconds: f64,
}

/// How the keep set fared: kept points classified correctly before and after (f64 forward
/// passes) and kept properties proved after (the verifier).
pub fn keep_report(
    before: &Network,
    after: &Network,
    keep: &KeepSet,
    check: &CheckOptions,
) -> Result<Option<KeepReport>> {
    if keep.is_empty() {
        return Ok(None);
    }
    let right = |net: &Network| -> Result<Vec<bool>> {
        Ok(outputs(net, &keep.points.inputs)?
            .iter()
            .zip(&keep.points.labels)
            .map(|(y, &c)| Requirement::label(c, y.len()).iter().all(|r| r.holds(y)))
            .collect())
    };
    let (b, a) = (right(before)?, right(after)?);
    let mut proved_regions = Vec::new();
    let mut regions_detail = Vec::new();
    for (k, r) in keep.regions.iter().enumerate() {
        let v = check_property(after, &r.property, check)?;
        let what = match v.verdict {
            Verdict::Holds => {
                proved_regions.push(k);
                "proved".to_string()
            }
            Verdict::Violated(_) => "violated".to_string(),
            Verdict::Unknown(why) => format!("undecided ({why})"),
        };
        regions_detail.push(format!("{}: {what}", r.name));
    }
    Ok(Some(KeepReport {
        points: keep.points.len(),
        correct_before: b.iter().filter(|&&x| x).count(),
        correct_after: a.iter().filter(|&&x| x).count(),
        lost: (0..b.len()).filter(|&i| b[i] && !a[i]).collect(),
        regions: keep.regions.len(),
        regions_proved: proved_regions.len(),
        proved_regions,
        regions_detail,
    }))
}

/// The re-check as every method ends: announce it, run [`recheck`] and [`keep_report`], time
/// it, and count the items it confirmed.
pub(crate) fn timed_recheck(
    before: &Network,
    after: &Network,
    problem: &RepairProblem,
    ctx: &crate::RepairContext,
) -> Result<Rechecked> {
    ctx.say("re-checking");
    let t = std::time::Instant::now();
    let items = recheck(before, after, problem, &ctx.check)?;
    let ok = items
        .iter()
        .filter(|i| i.status == ItemStatus::Repaired)
        .count();
    let keep = keep_report(before, after, &problem.keep, &ctx.check)?;
    Ok(Rechecked {
        items,
        ok,
        keep,
        seconds: t.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netrepair_nn::aprnn_example;

    #[test]
    fn recheck_until_stops_at_the_first_item_not_confirmed() {
        // The APRNN paper's network: 0.25 at -1.5, -0.25 at -0.5.
        let net = aprnn_example();
        let point = |x: f64, lo: f64, hi: f64| RepairItem::Point {
            x: vec![x],
            requirements: Requirement::output_box(&[lo], &[hi]),
        };
        // The first holds, the second is violated, the third holds.
        let problem = RepairProblem::new(vec![
            point(-1.5, 0.0, 1.0),
            point(-0.5, 0.0, 1.0),
            point(-1.5, 0.2, 0.3),
        ]);
        let opts = CheckOptions::default();
        let all = recheck(&net, &net, &problem, &opts).unwrap();
        let statuses: Vec<_> = all.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [
                ItemStatus::Repaired,
                ItemStatus::Failed,
                ItemStatus::Repaired
            ]
        );
        let first = recheck_until(&net, &net, &problem, &opts, true).unwrap();
        assert_eq!(first, all[..2].to_vec());
    }
}

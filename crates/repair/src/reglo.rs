//! REGLO (seed 002): provable repair for global robustness and individual fairness by a
//! minimal change of the last layer's weight.
//!
//! For a property `P(X, Omega, eps)` ([`GlobalProperty`]):
//! 1. **Search.** Sample points of `X` (data points in `X` and uniform draws). A counterexample
//!    pair needs a point between them whose Jacobian norm over the perturbable features exceeds
//!    `eps / diam(Omega)` (seed 002, Theorem 1): points failing that test are dropped, the rest
//!    ranked by it, and the variation attack ([`pgd_variation`]) confirms which really break
//!    `eps`. Each confirmed point becomes a *repair area*: a box around it, `area_radius` of the
//!    region's width on every side, clipped to `X`.
//! 2. **Bounds.** For every area, twin-network bounds of the last hidden layer's change
//!    `dz = h(x + dx) - h(x)` as linear functions of `dx` ([`property_twin_bounds`]). The body
//!    of the network does not change, so they are computed once per area.
//! 3. **Repair LP.** Minimise `||dW||` (L1, or L-inf plus a small L1 term) over the last
//!    layer's weight subject to, for every area, every output `o` and both signs `s`,
//!    `max s (W + dW)_o . dz <= eps (1 - margin)` over the area. The inner maximum is replaced
//!    by its LP dual (the robust counterpart): with `c = s (W + dW)_o`, find
//!    `mu, nu, alpha, beta >= 0` with `mu - nu = c`, `Du^T mu - Dl^T nu = alpha - beta` and
//!    `eu.mu - el.nu + dx_hi.alpha - dx_lo.beta <= eps (1 - margin)`, where
//!    `Dl dx + el <= dz <= Du dx + eu` are the linear bounds and `[dx_lo, dx_hi]` the box of
//!    `dx`. Weak duality makes every feasible point sound; the bias cancels in
//!    `f(x + dx) - f(x)` and stays. With many perturbable features (image robustness) the
//!    concrete bounds `[L, U]` of `dz` replace the linear ones (`mu - nu = c`,
//!    `U.mu - L.nu <= eps (1 - margin)`; `linear_max_free`). Either way the LP's bound is one
//!    the verifier's own back-substitution reproduces, so what the LP enforces the re-check
//!    can confirm.
//! 4. **Iterate.** Search again on the repaired network; new areas join the old ones and the
//!    LP is solved again from the original weight, until the search finds no violation or
//!    `max_iters` is reached.
//! 5. **Re-check.** The repaired network (weights rounded to f32) is re-bounded by the verifier:
//!    every area's VB, the whole region's VB by best-first splitting ([`variation_bound`]) and,
//!    with `cover`, the largest VB of the covering boxes. Only VB <= eps over the whole region
//!    is "proved"; the attack's PGD-B and PGD-R are reported beside it.
//!
//! Beyond the paper: `cover > 0` adds a partition of `X` into that many boxes as areas, so the
//! LP's constraints cover all of `X` and a successful repair is a global proof (at the cost of
//! a larger change, as the bounds over big boxes are loose).

use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use netrepair_lp::{LpModel, Outcome, Sense, SolveOptions, Var};
use netrepair_nn::{Layer, Network, ParamId};
use netrepair_spec::{BoxRegion, GlobalProperty};
use netrepair_verify::{
    area_variation, jacobian_norm, pgd_variation, property_twin_pieces, uniform_points,
    variation_bound, Chain, SplitOptions, TwinBounds, VariationAttack, VariationReport,
};
use rayon::prelude::*;
use serde::Serialize;

use crate::edit::param_changes;
use crate::error::{RepairError, Result};
use crate::outcome::{
    DeltaSummary, ItemReport, ItemStatus, LpReport, RepairOutcome, RepairStatus, Timings,
};
use crate::problem::{RepairItem, RepairProblem};
use crate::{Repair, RepairContext};

/// The norm of the weight change REGLO minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightNorm {
    /// Sum of absolute changes (sparse changes).
    L1,
    /// Largest absolute change, plus 1e-3 times the L1 norm (spread-out changes).
    Linf,
}

impl std::str::FromStr for WeightNorm {
    type Err = RepairError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "l1" | "L1" => Ok(Self::L1),
            "linf" | "Linf" | "inf" => Ok(Self::Linf),
            other => Err(RepairError::Problem(format!(
                "unknown norm '{other}' (l1, linf)"
            ))),
        }
    }
}

/// REGLO (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Reglo {
    /// Norm of the weight change.
    pub norm: WeightNorm,
    /// Search-and-repair rounds at most.
    pub max_iters: usize,
    /// New repair areas per round at most.
    pub max_areas: usize,
    /// Uniform samples of the region per round (besides the data points).
    pub samples: usize,
    /// Half-width of a repair area as a fraction of the region's width, per feature.
    pub area_radius: f64,
    /// Also cover the region with this many boxes as areas (0: off).
    pub cover: usize,
    /// The LP enforces `eps (1 - margin)`, leaving room for f32 rounding.
    pub margin: f64,
    /// Data points (flattened inputs): those inside a property's region seed the search and
    /// the PGD metrics.
    pub points: Vec<Vec<f64>>,
    /// Inputs whose outputs should move as little as possible (e.g. training data): the LP
    /// adds `keep_weight` times the mean L1 change of their outputs to the objective.
    pub keep: Vec<Vec<f64>>,
    /// Weight of the output-preservation term.
    pub keep_weight: f64,
    /// Points for PGD-B and PGD-R: data points in the region first, then uniform draws.
    pub eval_points: usize,
    /// The variation attack (search and metrics).
    pub attack: VariationAttack,
    /// The VB computation.
    pub split: SplitOptions,
    /// Fairness: slices of each sensitive feature's range bounded (and constrained) separately;
    /// tighter bounds, a larger LP.
    pub pieces: usize,
    /// Use the linear (in `dx`) bounds when at most this many features can move; above,
    /// concrete bounds only.
    pub linear_max_free: usize,
    /// Wall-clock limit of each LP.
    pub lp_time_limit: Option<Duration>,
    /// LP algorithm (interior point by default: 1.6x faster than simplex on German credit's
    /// 100k-row LPs).
    pub lp_method: netrepair_lp::Method,
    /// Seed of the sampling.
    pub seed: u64,
}

impl Default for Reglo {
    fn default() -> Self {
        Self {
            norm: WeightNorm::L1,
            max_iters: 3,
            max_areas: 30,
            samples: 1000,
            area_radius: 0.01,
            cover: 0,
            margin: 0.05,
            points: Vec::new(),
            keep: Vec::new(),
            keep_weight: 1.0,
            eval_points: 1000,
            attack: VariationAttack::default(),
            split: SplitOptions::default(),
            pieces: 2,
            linear_max_free: 16,
            lp_time_limit: None,
            lp_method: netrepair_lp::Method::Ipm,
            seed: 0,
        }
    }
}

/// One search-and-repair round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegloIteration {
    /// Round, from 1.
    pub iteration: usize,
    /// Sample points searched (outside existing areas).
    pub searched: usize,
    /// Of those, points passing the gradient test `||J|| > eps / diam`.
    pub flagged: usize,
    /// Of those attacked, points with a confirmed violation.
    pub violating: usize,
    /// Areas added this round.
    pub new_areas: usize,
    /// Areas in the LP.
    pub areas: usize,
    /// The LP's objective (`||dW||`), when solved.
    pub objective: Option<f64>,
    /// Seconds of the round.
    pub seconds: f64,
}

/// What REGLO did for one global property.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlobalReport {
    /// The item's name.
    pub name: String,
    /// "individual fairness" or "global robustness".
    pub kind: &'static str,
    /// The property's `eps`.
    pub eps: f64,
    /// VB (sound upper bound of the output variation over the region) before.
    #[serde(rename = "VB_before")]
    pub vb_before: f64,
    /// VB after (the smaller of best-first splitting and, with `cover`, the covering boxes).
    #[serde(rename = "VB")]
    pub vb_after: f64,
    /// PGD-B before.
    #[serde(rename = "PGD_B_before")]
    pub pgd_b_before: f64,
    /// PGD-B after: the largest variation the attack found.
    #[serde(rename = "PGD_B")]
    pub pgd_b_after: f64,
    /// PGD-R before.
    #[serde(rename = "PGD_R_before")]
    pub pgd_r_before: f64,
    /// PGD-R after: the share of points with a violation.
    #[serde(rename = "PGD_R")]
    pub pgd_r_after: f64,
    /// Points the attack ran from.
    pub points: usize,
    /// Repair areas in the final LP.
    pub areas: usize,
    /// Areas whose VB after repair is at most eps (re-checked by the verifier).
    pub areas_proved: usize,
    /// VB <= eps over the whole region.
    pub proved: bool,
    /// The rounds.
    pub iterations: Vec<RegloIteration>,
    /// The worst pair the attack found after repair, `(x, x')`.
    pub worst_after: Option<(Vec<f64>, Vec<f64>)>,
}

/// A solved LP: the new last-layer weight (f32-rounded) and the objective.
type Solved = (Vec<f64>, f64);

/// A repair area: `x` ranges over `region`.
struct Area {
    prop: usize,
    region: BoxRegion,
    /// Per twin piece: the box of `dx` and the bounds.
    pieces: Vec<(BoxRegion, TwinBounds)>,
}

impl Reglo {
    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(RepairError::Problem(m));
        if self.max_iters == 0 || self.max_areas == 0 {
            return bad("REGLO needs at least one round and one area per round".into());
        }
        if !(self.area_radius > 0.0 && self.area_radius <= 1.0) {
            return bad(format!(
                "area radius must be in (0, 1], got {}",
                self.area_radius
            ));
        }
        if !(self.keep_weight >= 0.0 && self.keep_weight.is_finite()) {
            return bad(format!(
                "keep weight must be non-negative, got {}",
                self.keep_weight
            ));
        }
        if let Some(x) = self.keep.iter().find(|x| x.iter().any(|v| !v.is_finite())) {
            return bad(format!(
                "a kept input holds NaN or infinity ({} values)",
                x.len()
            ));
        }
        if !(0.0..1.0).contains(&self.margin) {
            return bad(format!("margin must be in [0, 1), got {}", self.margin));
        }
        Ok(())
    }

    /// Data points inside `region`, then uniform draws, `n` in all.
    fn sample(&self, region: &BoxRegion, n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut pts: Vec<Vec<f64>> = self
            .points
            .iter()
            .filter(|p| region.contains(p, 0.0))
            .take(n)
            .cloned()
            .collect();
        let more = n - pts.len();
        pts.extend(uniform_points(region, more, seed));
        pts
    }

    /// The area around a point: `area_radius` of the region's width on every side, clipped.
    fn area_around(&self, prop: &GlobalProperty, x: &[f64]) -> BoxRegion {
        let r = &prop.region;
        let h = |d: usize| self.area_radius * (r.upper[d] - r.lower[d]);
        BoxRegion {
            lower: x
                .iter()
                .enumerate()
                .map(|(d, v)| (v - h(d)).max(r.lower[d]))
                .collect(),
            upper: x
                .iter()
                .enumerate()
                .map(|(d, v)| (v + h(d)).min(r.upper[d]))
                .collect(),
        }
    }

    /// Centres of new areas for one property on the current network: (searched, flagged,
    /// violating, centres).
    fn search(
        &self,
        chain: &Chain,
        prop: &GlobalProperty,
        taken: &[&BoxRegion],
        seed: u64,
    ) -> (usize, usize, usize, Vec<Vec<f64>>) {
        let pts: Vec<Vec<f64>> = self
            .sample(&prop.region, self.samples + self.points.len(), seed)
            .into_iter()
            .filter(|p| !taken.iter().any(|a| a.contains(p, 0.0)))
            .collect();
        let threshold = prop.eps / prop.diameter();
        let mut flagged: Vec<(f64, Vec<f64>)> = pts
            .par_iter()
            .map(|x| (jacobian_norm(chain, prop, x), x.clone()))
            .filter(|(n, _)| *n > threshold)
            .collect();
        flagged.sort_by(|a, b| b.0.total_cmp(&a.0));
        let n_flagged = flagged.len();
        let attacked: Vec<Vec<f64>> = flagged
            .into_iter()
            .take(4 * self.max_areas)
            .map(|f| f.1)
            .collect();
        let rep = pgd_variation(chain, prop, &attacked, &self.attack);
        let mut order: Vec<usize> = (0..attacked.len())
            .filter(|&i| rep.per_point[i] > prop.eps)
            .collect();
        let violating = order.len();
        order.sort_by(|&a, &b| rep.per_point[b].total_cmp(&rep.per_point[a]));
        let mut centres: Vec<Vec<f64>> = Vec::new();
        for i in order {
            let x = &attacked[i];
            let fresh = centres
                .iter()
                .all(|c| !self.area_around(prop, c).contains(x, 0.0));
            if fresh {
                centres.push(x.clone());
            }
            if centres.len() == self.max_areas {
                break;
            }
        }
        (pts.len(), n_flagged, violating, centres)
    }

    /// Twin bounds of every box (in parallel) as areas of property `p`.
    fn bound_areas(
        &self,
        net: &Network,
        chain: &Chain,
        p: usize,
        prop: &GlobalProperty,
        boxes: Vec<BoxRegion>,
    ) -> Result<Vec<Area>> {
        boxes
            .into_par_iter()
            .map(|b| {
                Ok(Area {
                    prop: p,
                    pieces: property_twin_pieces(net, chain, prop, &b, self.pieces)?,
                    region: b,
                })
            })
            .collect()
    }

    /// `n` boxes covering the region: widest-side bisection, breadth first.
    fn cover_boxes(prop: &GlobalProperty, n: usize) -> Vec<BoxRegion> {
        let mut boxes = vec![prop.region.clone()];
        while boxes.len() * 2 <= n {
            boxes = boxes.iter().flat_map(BoxRegion::halve_widest).collect();
        }
        boxes
    }

    /// Builds and solves the repair LP over all areas; the new last-layer weight (f32-rounded)
    /// and the LP's report, or `None` when the solver gave no solution.
    #[allow(clippy::too_many_arguments)]
    fn solve(
        &self,
        areas: &[Area],
        props: &[&GlobalProperty],
        keep: &[Vec<f64>],
        w0: &[f64],
        outputs: usize,
        hidden: usize,
        round: usize,
    ) -> Result<(Option<Solved>, LpReport)> {
        let t = Instant::now();
        let mut m = LpModel::new();
        let dw: Vec<Var> = (0..w0.len())
            .map(|_| m.add_var(f64::NEG_INFINITY, f64::INFINITY, 0.0))
            .collect();
        match self.norm {
            WeightNorm::L1 => {
                for &v in &dw {
                    m.add_abs(&[(v, 1.0)], 0.0, 1.0);
                }
            }
            WeightNorm::Linf => {
                let t = m.add_var(0.0, f64::INFINITY, 1.0);
                for &v in &dw {
                    m.add_le(&[(v, 1.0), (t, -1.0)], 0.0);
                    m.add_le(&[(v, -1.0), (t, -1.0)], 0.0);
                    m.add_abs(&[(v, 1.0)], 0.0, 1e-3);
                }
            }
        }
        // Output preservation: |dW h(x)| for every kept input and output.
        for h in keep {
            for o in 0..outputs {
                let terms: Vec<(Var, f64)> = h
                    .iter()
                    .enumerate()
                    .filter(|(_, &v)| v != 0.0)
                    .map(|(j, &v)| (dw[o * hidden + j], v))
                    .collect();
                if !terms.is_empty() {
                    m.add_abs(&terms, 0.0, self.keep_weight / keep.len() as f64);
                }
            }
        }
        for (area, (dxb, bounds)) in areas
            .iter()
            .flat_map(|a| a.pieces.iter().map(move |p| (a, p)))
        {
            let prop = props[area.prop];
            let target = prop.eps * (1.0 - self.margin);
            let h = &bounds.hidden;
            let conc = &bounds.diff[bounds.diff.len() - 2];
            let k = h.free.len();
            let linear = k <= self.linear_max_free;
            // Neurons whose difference is identically zero over the area drop out.
            let active: Vec<usize> = (0..hidden)
                .filter(|&j| conc.lower[j] != 0.0 || conc.upper[j] != 0.0)
                .collect();
            for o in 0..outputs {
                for s in [1.0, -1.0] {
                    // Neurons whose bounds coincide (stable in both copies) enter with their
                    // exact difference, `c_j dz_j`, linear in dW; the others through the dual
                    // variables mu_j (upper bound) and nu_j (lower bound).
                    let mut cap: Vec<(Var, f64)> = Vec::new();
                    let mut cap_const = 0.0;
                    let mut mu = Vec::with_capacity(active.len());
                    let mut nu = Vec::with_capacity(active.len());
                    let mut exact_rows: Vec<Vec<(Var, f64)>> = vec![Vec::new(); k];
                    let mut exact_const = vec![0.0; k];
                    for &j in &active {
                        let (wj, dwj) = (w0[o * hidden + j], dw[o * hidden + j]);
                        let exact = if linear {
                            h.upper_c[j] == h.lower_c[j]
                                && h.upper_w[j * k..(j + 1) * k] == h.lower_w[j * k..(j + 1) * k]
                        } else {
                            conc.upper[j] == conc.lower[j]
                        };
                        if exact {
                            let e = if linear { h.upper_c[j] } else { conc.upper[j] };
                            cap.push((dwj, s * e));
                            cap_const += s * wj * e;
                            if linear {
                                for c in 0..k {
                                    let d = h.upper_w[j * k + c];
                                    if d != 0.0 {
                                        exact_rows[c].push((dwj, s * d));
                                        exact_const[c] += s * wj * d;
                                    }
                                }
                            }
                            mu.push(None);
                            nu.push(None);
                            continue;
                        }
                        let (mc, nc) = (
                            m.add_var(0.0, f64::INFINITY, 0.0),
                            m.add_var(0.0, f64::INFINITY, 0.0),
                        );
                        if linear {
                            cap.push((mc, h.upper_c[j]));
                            cap.push((nc, -h.lower_c[j]));
                        } else {
                            cap.push((mc, conc.upper[j]));
                            cap.push((nc, -conc.lower[j]));
                        }
                        mu.push(Some(mc));
                        nu.push(Some(nc));
                        m.add_eq(&[(mc, 1.0), (nc, -1.0), (dwj, -s)], s * wj);
                    }
                    if linear {
                        for (c, &f) in h.free.iter().enumerate() {
                            let (al, be) = (
                                m.add_var(0.0, f64::INFINITY, 0.0),
                                m.add_var(0.0, f64::INFINITY, 0.0),
                            );
                            let mut row = std::mem::take(&mut exact_rows[c]);
                            for (a, &j) in active.iter().enumerate() {
                                let (du, dl) = (h.upper_w[j * k + c], h.lower_w[j * k + c]);
                                if let (Some(mv), Some(nv)) = (mu[a], nu[a]) {
                                    if du != 0.0 {
                                        row.push((mv, du));
                                    }
                                    if dl != 0.0 {
                                        row.push((nv, -dl));
                                    }
                                }
                            }
                            row.push((al, -1.0));
                            row.push((be, 1.0));
                            m.add_eq(&row, -exact_const[c]);
                            cap.push((al, dxb.upper[f]));
                            cap.push((be, -dxb.lower[f]));
                        }
                    }
                    cap.retain(|&(_, c)| c != 0.0);
                    m.add_le(&cap, target - cap_const);
                }
            }
        }
        let encode_s = t.elapsed().as_secs_f64();
        let opts = SolveOptions {
            time_limit: self.lp_time_limit,
            method: self.lp_method,
            ..SolveOptions::default()
        };
        let sol = m.solve(Sense::Minimise, &opts)?;
        let purpose = format!("round {round}: {} areas", areas.len());
        let (result, outcome) = match sol.outcome {
            Outcome::Optimal { objective, values } => {
                let w: Vec<f64> = w0
                    .iter()
                    .zip(&dw)
                    .map(|(&w, v)| {
                        let d = values[v.index()];
                        if d != 0.0 {
                            (w + d) as f32 as f64
                        } else {
                            w
                        }
                    })
                    .collect();
                (Some((w, objective)), "optimal".to_string())
            }
            Outcome::Infeasible => (None, "infeasible".to_string()),
            Outcome::Unbounded => (None, "unbounded".to_string()),
            Outcome::Limit { reason, .. } => (None, format!("limit: {reason}")),
            Outcome::Failed(why) => (None, format!("failed: {why}")),
        };
        Ok((
            result,
            LpReport::new(purpose, &outcome, &sol.stats, encode_s),
        ))
    }
}

/// The last node's weight: its id, checked to be a Linear `[outputs, hidden]` matrix.
fn last_weight(net: &Network, chain: &Chain) -> Result<ParamId> {
    let last = net.nodes().len() - 1;
    let node = &net.nodes()[last];
    if !matches!(node.layer(), Layer::Linear(_)) {
        return Err(RepairError::Unsupported(format!(
            "REGLO edits the last layer's weight, which must be Linear; node '{}' is {}",
            node.name(),
            node.layer().kind()
        )));
    }
    let id = ParamId {
        node: last,
        slot: 0,
    };
    let dims = net.param(id)?.dims().to_vec();
    if dims != [chain.output_len(), chain.hidden_len()] {
        return Err(RepairError::Unsupported(format!(
            "the last layer's weight has shape {dims:?}, expected [{}, {}]",
            chain.output_len(),
            chain.hidden_len()
        )));
    }
    Ok(id)
}

/// `net` with the last layer's weight replaced.
fn with_weight(net: &Network, id: ParamId, w: &[f64], outputs: usize) -> Result<Network> {
    let mut out = net.clone();
    let t = Tensor::from_vec(w.to_vec(), (outputs, w.len() / outputs), &Device::Cpu)
        .map_err(netrepair_nn::NnError::from)?;
    out.set_param(id, t)?;
    Ok(out)
}

impl Repair for Reglo {
    fn name(&self) -> &'static str {
        "reglo"
    }

    fn repair(
        &self,
        net: &Network,
        problem: &RepairProblem,
        ctx: &RepairContext,
    ) -> Result<RepairOutcome> {
        let started = Instant::now();
        problem.validate(net.input_len(), net.output_len())?;
        self.check()?;
        let mut names = Vec::new();
        let mut props: Vec<&GlobalProperty> = Vec::new();
        for (i, item) in problem.items.iter().enumerate() {
            match item {
                RepairItem::Global { name, property } => {
                    names.push(name.clone());
                    props.push(property);
                }
                other => {
                    return Err(RepairError::Unsupported(format!(
                    "item {i} is a {}: REGLO repairs global robustness / fairness properties only",
                    other.kind()
                )))
                }
            }
        }
        let chain = Chain::new(net)?;
        let wid = last_weight(net, &chain)?;
        let (outputs, hidden) = (chain.output_len(), chain.hidden_len());
        let w0 = chain.last_weight().to_vec();
        let keep: Vec<Vec<f64>> = self.keep.iter().map(|x| chain.hidden(x)).collect();
        let mut timings = Timings::default();
        let split = SplitOptions {
            pieces: self.pieces,
            ..self.split.clone()
        };

        // Before: the metrics on the original network.
        ctx.say("measuring VB and PGD before repair");
        let eval: Vec<Vec<Vec<f64>>> = props
            .iter()
            .enumerate()
            .map(|(p, prop)| {
                self.sample(
                    &prop.region,
                    self.eval_points,
                    self.seed ^ 0xe7a1 ^ p as u64,
                )
            })
            .collect();
        let mut before: Vec<(VariationReport, f64)> = Vec::new();
        for (p, prop) in props.iter().enumerate() {
            let rep = pgd_variation(&chain, prop, &eval[p], &self.attack);
            let vb = variation_bound(net, &chain, prop, &prop.region, &split)?;
            before.push((rep, vb.vb));
        }
        let verify_before_s = started.elapsed().as_secs_f64();

        // Areas, the cover first.
        let mut areas: Vec<Area> = Vec::new();
        let mut cover_areas = vec![0usize; props.len()];
        if self.cover > 0 {
            for (p, prop) in props.iter().enumerate() {
                let boxes = Self::cover_boxes(prop, self.cover);
                cover_areas[p] = boxes.len();
                areas.extend(self.bound_areas(net, &chain, p, prop, boxes)?);
            }
        }
        let mut w = w0.clone();
        let mut current = chain.clone();
        let mut iterations: Vec<Vec<RegloIteration>> = vec![Vec::new(); props.len()];
        let mut lps = Vec::new();
        let mut limit: Option<String> = None;
        let mut solved_once = false;
        for round in 1..=self.max_iters {
            let t = Instant::now();
            ctx.say(&format!("round {round}: searching for violations"));
            let mut added = 0;
            let mut stats = Vec::new();
            for (p, prop) in props.iter().enumerate() {
                let taken: Vec<&BoxRegion> = areas
                    .iter()
                    .filter(|a| a.prop == p)
                    .map(|a| &a.region)
                    .collect();
                let seed = self.seed.wrapping_add(7919 * round as u64 + p as u64);
                let (searched, flagged, violating, centres) =
                    self.search(&current, prop, &taken, seed);
                let new: Vec<BoxRegion> =
                    centres.iter().map(|c| self.area_around(prop, c)).collect();
                let bounded = self.bound_areas(net, &chain, p, prop, new)?;
                added += bounded.len();
                stats.push((searched, flagged, violating, bounded.len()));
                areas.extend(bounded);
            }
            let nothing_new = added == 0 && (solved_once || areas.is_empty());
            let mut objective = None;
            if !nothing_new {
                ctx.say(&format!(
                    "round {round}: repair LP over {} areas",
                    areas.len()
                ));
                let (res, report) =
                    self.solve(&areas, &props, &keep, &w0, outputs, hidden, round)?;
                timings.build_s += report.build_s;
                timings.solve_s += report.solve_s;
                let outcome = report.outcome.clone();
                lps.push(report);
                match res {
                    Some((new_w, obj)) => {
                        w = new_w;
                        current = chain.with_last_weight(w.clone());
                        objective = Some(obj);
                        solved_once = true;
                    }
                    None => limit = Some(outcome),
                }
            }
            for (p, (searched, flagged, violating, new_areas)) in stats.into_iter().enumerate() {
                iterations[p].push(RegloIteration {
                    iteration: round,
                    searched,
                    flagged,
                    violating,
                    new_areas,
                    areas: areas.iter().filter(|a| a.prop == p).count(),
                    objective,
                    seconds: t.elapsed().as_secs_f64(),
                });
            }
            if nothing_new || limit.is_some() {
                break;
            }
        }

        // Re-check on the network as written (f32 weights).
        ctx.say("re-checking: VB of every area and of the whole region, PGD");
        let rt = Instant::now();
        let after = with_weight(net, wid, &w, outputs)?;
        let chain_after = Chain::new(&after)?;
        let area_vb: Vec<Result<f64>> = areas
            .par_iter()
            .map(|a| {
                Ok(area_variation(
                    &after,
                    &chain_after,
                    props[a.prop],
                    &a.region,
                    self.pieces,
                )?)
            })
            .collect();
        let area_vb: Vec<f64> = area_vb.into_iter().collect::<Result<_>>()?;
        let mut reports = Vec::new();
        let mut items = Vec::new();
        for (p, prop) in props.iter().enumerate() {
            let mine: Vec<usize> = (0..areas.len()).filter(|&i| areas[i].prop == p).collect();
            let proved_areas = mine.iter().filter(|&&i| area_vb[i] <= prop.eps).count();
            let mut vb = variation_bound(&after, &chain_after, prop, &prop.region, &split)?.vb;
            if cover_areas[p] > 0 {
                let cover_vb = mine[..cover_areas[p]]
                    .iter()
                    .map(|&i| area_vb[i])
                    .fold(0.0, f64::max);
                vb = vb.min(cover_vb);
            }
            let rep = pgd_variation(&chain_after, prop, &eval[p], &self.attack);
            let proved = vb <= prop.eps;
            let (status, detail) = if proved {
                (
                    ItemStatus::Repaired,
                    format!("VB = {vb:.4} <= eps = {} over the whole region (sound bound, re-checked in f64)", prop.eps),
                )
            } else if rep.pgd_b > prop.eps {
                (
                    ItemStatus::Failed,
                    format!(
                        "the attack still finds a variation of {:.4} > eps = {} ({:.1}% of {} points); {proved_areas} of {} areas proved",
                        rep.pgd_b,
                        prop.eps,
                        100.0 * rep.pgd_r,
                        eval[p].len(),
                        mine.len()
                    ),
                )
            } else {
                (
                    ItemStatus::Unconfirmed,
                    format!(
                        "{proved_areas} of {} repair areas proved; no violation found from {} points (PGD-B {:.4}), but VB over the whole region is {vb:.4} > eps = {}",
                        mine.len(),
                        eval[p].len(),
                        rep.pgd_b,
                        prop.eps
                    ),
                )
            };
            let (rb, vb_before) = &before[p];
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
                name: names[p].clone(),
                kind: prop.kind(),
                eps: prop.eps,
                vb_before: *vb_before,
                vb_after: vb,
                pgd_b_before: rb.pgd_b,
                pgd_b_after: rep.pgd_b,
                pgd_r_before: rb.pgd_r,
                pgd_r_after: rep.pgd_r,
                points: eval[p].len(),
                areas: mine.len(),
                areas_proved: proved_areas,
                proved,
                iterations: std::mem::take(&mut iterations[p]),
                worst_after: rep
                    .worst_index()
                    .map(|i| (eval[p][i].clone(), rep.partners[i].clone())),
            });
        }
        timings.recheck_s = rt.elapsed().as_secs_f64() + verify_before_s;
        let proved = items.iter().all(|i| i.status == ItemStatus::Repaired);
        let status = match (&limit, proved) {
            (_, true) => RepairStatus::Proved,
            (Some(_), false) if !solved_once => RepairStatus::Limit,
            _ => RepairStatus::Unconfirmed,
        };
        let g = &reports[0];
        let message = match (&limit, solved_once) {
            (Some(why), false) => format!("the repair LP gave no solution ({why}); network unchanged"),
            _ if !solved_once => format!(
                "the search found no violation; network unchanged (VB {:.4}, eps {})",
                g.vb_after, g.eps
            ),
            _ => format!(
                "{}: VB {:.4} -> {:.4}, PGD-B {:.4} -> {:.4}, PGD-R {:.1}% -> {:.1}% (eps {}); {} of {} areas proved{}",
                g.kind,
                g.vb_before,
                g.vb_after,
                g.pgd_b_before,
                g.pgd_b_after,
                100.0 * g.pgd_r_before,
                100.0 * g.pgd_r_after,
                g.eps,
                g.areas_proved,
                g.areas,
                if proved { "; proved over the whole region" } else { "" }
            ),
        };
        let param_delta = DeltaSummary::from_changes(param_changes(net, &after)?);
        let last = net.nodes().len() - 1;
        Ok(RepairOutcome {
            network: after,
            method: self.name().into(),
            layer: net.nodes()[last].name().to_string(),
            layer_index: crate::affine_layers(net).iter().position(|&i| i == last),
            status,
            proved,
            message,
            items,
            param_delta,
            time_s: started.elapsed().as_secs_f64(),
            timings,
            lp: lps,
            notes: Vec::new(),
            flagged: Vec::new(),
            keep: None,
            training: None,
            incremental: None,
            global: reports,
        })
    }
}

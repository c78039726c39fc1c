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
use netrepair_spec::{BoxRegion, GlobalProperty, OutputMeasure, Perturbation};
use netrepair_verify::{
    area_variation, jacobian_norm, pgd_variation, property_twin_pieces, uniform_points,
    variation_bound, Chain, SplitOptions, TwinBounds, VariationAttack, VariationReport,
};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{rule, RepairError, Result};
use crate::outcome::{
    EditedLayer, GlobalReport, ItemReport, ItemStatus, LpReport, MethodDetails, RegloIteration,
    RepairOutcome, RepairStatus, Timings,
};
use crate::problem::{KeepSet, LabelledSet, RepairItem, RepairProblem};
use crate::recheck::global_verdict;
use crate::{Repair, RepairContext};

/// The norm of a last-layer weight change: what REGLO's min-change LP minimises, and what MM
/// repair bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightNorm {
    /// Sum of absolute changes (sparse changes).
    L1,
    /// Largest absolute change (REGLO adds 1e-3 times the L1 norm; MM applies the least-L1
    /// change within the bound).
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

/// What the repair LP optimises.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum RegloObjective {
    /// Scale-aware (the default): the new last layer is `W' = lambda W + dW`,
    /// `b' = lambda b + db` with `lambda` in `[0, 1]` a variable; maximise
    /// `lambda - kappa (||dW||_1 + ||db||_1) / (||W||_1 + ||b||_1)`, with every kept point's
    /// decision held (`margin' >= keep_tau * lambda * margin`). `dW = 0`,
    /// `lambda = eps (1 - margin) / VB` is always feasible, and keeps every decision of every
    /// input: a pure rescaling.
    Scale {
        /// Price of a weight change against the scale it buys (> 1: a change must be worth
        /// more than rescaling the original weight).
        kappa: f64,
    },
    /// The paper's LP: `lambda = 1`, minimise `||dW||` (the norm option) plus `keep_weight`
    /// times the kept points' mean L1 output change; the bias is not touched.
    MinChange,
}

impl Default for RegloObjective {
    fn default() -> Self {
        Self::Scale { kappa: 10.0 }
    }
}

impl std::str::FromStr for RegloObjective {
    type Err = RepairError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            RepairError::Problem(format!(
                "unknown REGLO objective '{s}' (scale, scale:KAPPA, min-change)"
            ))
        };
        match s {
            "min-change" | "minchange" | "paper" => Ok(Self::MinChange),
            "scale" => Ok(Self::default()),
            _ => {
                let k = s.strip_prefix("scale:").ok_or_else(bad)?;
                let kappa: f64 = k.parse().map_err(|_| bad())?;
                if !(kappa >= 0.0 && kappa.is_finite()) {
                    return Err(RepairError::Problem(format!(
                        "kappa must be non-negative and finite, got {kappa}"
                    )));
                }
                Ok(Self::Scale { kappa })
            }
        }
    }
}

/// REGLO (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Reglo {
    /// What the LP optimises (scale-aware by default).
    pub objective: RegloObjective,
    /// Norm of the weight change ([`RegloObjective::MinChange`]).
    pub norm: WeightNorm,
    /// Search-and-repair rounds at most.
    pub max_iters: usize,
    /// New repair areas per round at most.
    pub max_areas: usize,
    /// Uniform samples of the region per round (besides the data points).
    pub samples: usize,
    /// Half-width of a repair area as a fraction of the region's width, per feature.
    pub area_radius: f64,
    /// Fairness: a repair area is the flagged point with only the sensitive features spanning
    /// the region (a 1-D segment for one feature, as the public REGLO code does) instead of a
    /// box `area_radius` wide.
    pub segments: bool,
    /// Also cover the region with this many boxes as areas (0: off).
    pub cover: usize,
    /// The LP enforces `eps (1 - margin)`, leaving room for f32 rounding.
    pub margin: f64,
    /// Data points (flattened inputs): those inside a property's region seed the search and
    /// the PGD metrics.
    pub points: Vec<Vec<f64>>,
    /// Scale-aware objective: a kept point (the repair problem's keep set) must win by at least
    /// this fraction of `lambda` times its original margin (its decision is held).
    pub keep_tau: f64,
    /// Min-change objective: weight of the kept points' mean L1 output change.
    pub keep_weight: f64,
    /// Scale-aware objective: when the region's VB of the LP's answer is above
    /// `eps (1 - margin)`, shrink the last layer (weight and bias) until it is not. Decisions do
    /// not change, and the result is proved over the whole region.
    pub prove_global: bool,
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
    /// LP algorithm; `None`: interior point for the min-change LP (1.6x faster than simplex
    /// on German credit's 100k-row LPs), dual simplex for the scale-aware LP's small
    /// cutting-plane LPs (4.5x faster than interior point there).
    pub lp_method: Option<netrepair_lp::Method>,
    /// Seed of the sampling.
    pub seed: u64,
}

impl Default for Reglo {
    fn default() -> Self {
        Self {
            objective: RegloObjective::default(),
            norm: WeightNorm::L1,
            max_iters: 3,
            max_areas: 30,
            samples: 1000,
            area_radius: 0.01,
            segments: false,
            cover: 0,
            margin: 0.05,
            points: Vec::new(),
            keep_tau: 0.5,
            keep_weight: 1.0,
            prove_global: true,
            eval_points: 1000,
            attack: VariationAttack::default(),
            split: SplitOptions::default(),
            pieces: 2,
            linear_max_free: 16,
            lp_time_limit: None,
            lp_method: None,
            seed: 0,
        }
    }
}

/// A solved LP: the new last layer (f32-rounded) and what it is made of.
#[derive(Debug, Clone)]
struct Solved {
    /// `lambda W + dW`.
    w: Vec<f64>,
    /// `lambda b + db` (`b` when the bias is not a variable).
    b: Vec<f64>,
    /// The LP's objective.
    objective: f64,
    /// `lambda` (1 for the min-change LP).
    lambda: f64,
    /// `||dW||_1`.
    dw_l1: f64,
    /// `||db||_1`.
    db_l1: f64,
}

/// What the repair LP is built from.
#[derive(Clone, Copy)]
struct LpInput<'a> {
    areas: &'a [Area],
    props: &'a [&'a GlobalProperty],
    /// Kept points: last hidden layer and original outputs.
    keep: &'a [(Vec<f64>, Vec<f64>)],
    w0: &'a [f64],
    b0: &'a [f64],
    outputs: usize,
    hidden: usize,
}

/// A keep set holding the decisions `net` takes on `inputs` (each labelled with its own
/// argmax): what REGLO's scale-aware LP keeps, and what its keep report counts.
pub fn decision_keep_set(net: &Network, inputs: Vec<Vec<f64>>) -> Result<KeepSet> {
    let chain = Chain::new(net)?;
    let labels = inputs.iter().map(|x| argmax(&chain.forward(x))).collect();
    Ok(KeepSet::points(LabelledSet { inputs, labels }))
}

/// Index of the largest value (the first on ties).
fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// A repair area: `x` ranges over `region`.
struct Area {
    prop: usize,
    region: BoxRegion,
    /// Per twin piece: the box of `dx` and the bounds.
    pieces: Vec<(BoxRegion, TwinBounds)>,
}

impl Reglo {
    /// Checks the settings, naming the first rule broken.
    pub fn check(&self) -> Result<()> {
        rule::at_least_one("max_iters", self.max_iters)?;
        rule::at_least_one("max_areas", self.max_areas)?;
        rule::unit_fraction("area_radius", self.area_radius)?;
        rule::non_negative("keep_weight", self.keep_weight)?;
        rule::share("keep_tau", self.keep_tau)?;
        if let RegloObjective::Scale { kappa } = self.objective {
            rule::non_negative("kappa", kappa)?;
        }
        rule::below_one("margin", self.margin)
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
        if let (true, Perturbation::Sensitive { features }) = (self.segments, &prop.perturbation) {
            let mut b = BoxRegion {
                lower: x.to_vec(),
                upper: x.to_vec(),
            };
            for &f in features {
                b.lower[f] = r.lower[f];
                b.upper[f] = r.upper[f];
            }
            return b;
        }
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

    /// Builds and solves the repair LP over all areas; the new last layer (f32-rounded) and
    /// the LP's report, or `None` when the solver gave no solution.
    fn solve(
        &self,
        lp: &LpInput,
        round: usize,
        ctx: &RepairContext,
    ) -> Result<(Option<Solved>, LpReport)> {
        let t = Instant::now();
        let LpInput {
            areas,
            props,
            keep,
            w0,
            b0,
            outputs,
            hidden,
        } = *lp;
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
        for (h, _) in keep {
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
            method: self.lp_method.unwrap_or(netrepair_lp::Method::Ipm),
            ..SolveOptions::default()
        };
        let purpose = format!("round {round}: {} areas", areas.len());
        ctx.dump_lp(&m, Sense::Minimise, &purpose)?;
        let sol = m.solve(Sense::Minimise, &opts)?;
        let outcome = sol.outcome.describe();
        let result = match sol.outcome {
            Outcome::Optimal {
                objective,
                ref values,
            } => {
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
                let solved = Solved {
                    w,
                    b: b0.to_vec(),
                    objective,
                    lambda: 1.0,
                    dw_l1: dw.iter().map(|v| values[v.index()].abs()).sum(),
                    db_l1: 0.0,
                };
                Some(solved)
            }
            _ => None,
        };
        Ok((result, LpReport::new(purpose, &outcome, &sol, encode_s)))
    }
}

/// Rounds of the scale-aware LP's cutting planes at most.
const MAX_CUT_ROUNDS: usize = 80;

/// The largest `c . dz` over the relaxation of one area piece (`Dl dx + el <= dz <= Du dx + eu`
/// with `dx` in its box, or the concrete bounds when `linear` is false), and a `dz` reaching it.
/// This is the primal of the dual the min-change LP encodes; neurons whose difference is zero
/// over the area stay at zero.
fn worst_case(bounds: &TwinBounds, dxb: &BoxRegion, linear: bool, c: &[f64]) -> (f64, Vec<f64>) {
    let h = &bounds.hidden;
    let conc = &bounds.diff[bounds.diff.len() - 2];
    let n = c.len();
    let zero = |j: usize| conc.lower[j] == 0.0 && conc.upper[j] == 0.0;
    if !linear {
        let mut v = 0.0;
        let dz: Vec<f64> = (0..n)
            .map(|j| {
                let d = if zero(j) {
                    0.0
                } else if c[j] > 0.0 {
                    conc.upper[j]
                } else {
                    conc.lower[j]
                };
                v += c[j] * d;
                d
            })
            .collect();
        return (v, dz);
    }
    let k = h.free.len();
    let mut g = vec![0.0; k];
    let mut v = 0.0;
    for j in (0..n).filter(|&j| c[j] != 0.0 && !zero(j)) {
        let (w, e) = if c[j] > 0.0 {
            (&h.upper_w[j * k..(j + 1) * k], h.upper_c[j])
        } else {
            (&h.lower_w[j * k..(j + 1) * k], h.lower_c[j])
        };
        v += c[j] * e;
        for (gf, wf) in g.iter_mut().zip(w) {
            *gf += c[j] * wf;
        }
    }
    let dx: Vec<f64> = h
        .free
        .iter()
        .zip(&g)
        .map(|(&f, &gf)| if gf > 0.0 { dxb.upper[f] } else { dxb.lower[f] })
        .collect();
    v += g.iter().zip(&dx).map(|(a, b)| a * b).sum::<f64>();
    let dz = (0..n)
        .map(|j| {
            if zero(j) {
                return 0.0;
            }
            let (w, e) = if c[j] > 0.0 {
                (&h.upper_w[j * k..(j + 1) * k], h.upper_c[j])
            } else {
                (&h.lower_w[j * k..(j + 1) * k], h.lower_c[j])
            };
            e + w.iter().zip(&dx).map(|(a, b)| a * b).sum::<f64>()
        })
        .collect();
    (v, dz)
}

impl Reglo {
    /// The scale-aware LP ([`RegloObjective::Scale`]) by cutting planes: start from no
    /// constraint; after each solve, add for every area piece, output and sign whose worst case
    /// breaks the target the cut `s W'_o . dz* <= target` at the worst `dz*`, and every kept
    /// decision the answer breaks; stop when nothing is broken (or after [`MAX_CUT_ROUNDS`]:
    /// the answer is then shrunk by the global proof step). Each cut is a necessary condition,
    /// so the LP's optimum never beats the robust LP's, and at the end every area holds.
    fn solve_scale(
        &self,
        lp: &LpInput,
        kappa: f64,
        round: usize,
        ctx: &RepairContext,
    ) -> Result<(Option<Solved>, LpReport)> {
        let t = Instant::now();
        let LpInput {
            areas,
            props,
            keep,
            w0,
            b0,
            outputs,
            hidden,
        } = *lp;
        let scale = w0.iter().chain(b0).map(|v| v.abs()).sum::<f64>().max(1e-12);
        let price = kappa / scale;
        let pieces: Vec<(&Area, &(BoxRegion, TwinBounds))> = areas
            .iter()
            .flat_map(|a| a.pieces.iter().map(move |p| (a, p)))
            .collect();
        let decisions: Vec<usize> = keep.iter().map(|(_, z)| argmax(z)).collect();
        // Cuts: (measured row, sign, dz*, target); kept decisions: (point, other class).
        type Cut = (Vec<(usize, f64)>, f64, Vec<f64>, f64);
        let mut cuts: Vec<Cut> = Vec::new();
        let mut kept: Vec<(usize, usize)> = Vec::new();
        let mut report = LpReport {
            purpose: String::new(),
            outcome: String::new(),
            rows: 0,
            cols: 0,
            nonzeros: 0,
            build_s: 0.0,
            solve_s: 0.0,
            iterations: 0,
            objective: None,
        };
        let mut best: Option<Solved> = None;
        let mut converged = false;
        let mut rounds = 0;
        let opts = SolveOptions {
            time_limit: self.lp_time_limit,
            method: self.lp_method.unwrap_or(netrepair_lp::Method::Simplex),
            ..SolveOptions::default()
        };
        while rounds < MAX_CUT_ROUNDS {
            rounds += 1;
            let tb = Instant::now();
            let mut m = LpModel::new();
            let lam = m.add_var(0.0, 1.0, -1.0);
            let split = |m: &mut LpModel, n: usize| -> Vec<(Var, Var)> {
                (0..n)
                    .map(|_| {
                        (
                            m.add_var(0.0, f64::INFINITY, price),
                            m.add_var(0.0, f64::INFINITY, price),
                        )
                    })
                    .collect()
            };
            let dw = split(&mut m, w0.len());
            let db = split(&mut m, outputs);
            for (spec, sgn, dz, target) in &cuts {
                let mut row = Vec::with_capacity(2 * spec.len() * hidden + 1);
                let mut lc = 0.0;
                for &(o, f) in spec {
                    for (j, &d) in dz.iter().enumerate() {
                        if d != 0.0 {
                            let (p, n) = dw[o * hidden + j];
                            row.push((p, sgn * f * d));
                            row.push((n, -sgn * f * d));
                            lc += sgn * f * w0[o * hidden + j] * d;
                        }
                    }
                }
                row.push((lam, lc));
                m.add_le(&row, *target);
            }
            for &(i, j) in &kept {
                let (h, z) = &keep[i];
                let y = decisions[i];
                let mut row = vec![(lam, (1.0 - self.keep_tau) * (z[y] - z[j]))];
                for (k, &v) in h.iter().enumerate() {
                    if v != 0.0 {
                        let (py, ny) = dw[y * hidden + k];
                        let (pj, nj) = dw[j * hidden + k];
                        row.extend([(py, v), (ny, -v), (pj, -v), (nj, v)]);
                    }
                }
                row.extend([
                    (db[y].0, 1.0),
                    (db[y].1, -1.0),
                    (db[j].0, -1.0),
                    (db[j].1, 1.0),
                ]);
                m.add_ge(&row, 0.0);
            }
            let encode_s = tb.elapsed().as_secs_f64();
            ctx.dump_lp(
                &m,
                Sense::Minimise,
                &format!("round {round}: scale LP, cut round {rounds}"),
            )?;
            let sol = m.solve(Sense::Minimise, &opts)?;
            let r = LpReport::new(String::new(), "", &sol, encode_s);
            report.rows = r.rows;
            report.cols = r.cols;
            report.nonzeros = r.nonzeros;
            report.build_s += r.build_s;
            report.solve_s += r.solve_s;
            report.iterations += r.iterations;
            let (objective, values) = match sol.outcome {
                Outcome::Optimal { objective, values } => (objective, values),
                other => {
                    report.outcome = other.describe();
                    break;
                }
            };
            let l = values[lam.index()].clamp(0.0, 1.0);
            let delta = |p: &[(Var, Var)]| -> Vec<f64> {
                p.iter()
                    .map(|(a, b)| values[a.index()] - values[b.index()])
                    .collect()
            };
            let (dwv, dbv) = (delta(&dw), delta(&db));
            let w: Vec<f64> = w0.iter().zip(&dwv).map(|(w, d)| l * w + d).collect();
            let b: Vec<f64> = b0.iter().zip(&dbv).map(|(v, d)| l * v + d).collect();
            // Separation: the worst case of every area piece, output and sign.
            let found: Vec<Cut> = pieces
                .par_iter()
                .flat_map_iter(|(area, (dxb, tb))| {
                    let prop = props[area.prop];
                    // The measure's rows are bounded by eps / factor (probabilities: 4 eps on
                    // the logit differences).
                    let target = prop.eps * (1.0 - self.margin) / prop.measure.factor();
                    let linear = tb.hidden.free.len() <= self.linear_max_free;
                    let w = &w;
                    prop.measure
                        .rows(outputs)
                        .into_iter()
                        .flat_map(move |spec| {
                            [1.0, -1.0].into_iter().filter_map(move |sgn| {
                                let mut c = vec![0.0; hidden];
                                for &(o, f) in &spec {
                                    let wo = &w[o * hidden..(o + 1) * hidden];
                                    for (cj, wj) in c.iter_mut().zip(wo) {
                                        *cj += sgn * f * wj;
                                    }
                                }
                                let (v, dz) = worst_case(tb, dxb, linear, &c);
                                (v > target * (1.0 + 1e-6) + 1e-12)
                                    .then(|| (spec.clone(), sgn, dz, target))
                            })
                        })
                })
                .collect();
            let mut broken_keep = Vec::new();
            for (i, (h, z)) in keep.iter().enumerate() {
                let y = decisions[i];
                for j in (0..outputs).filter(|&j| j != y) {
                    let gap = z[y] - z[j];
                    if gap <= 0.0 || kept.contains(&(i, j)) {
                        continue;
                    }
                    let row = |o: usize| -> f64 {
                        b[o] + w[o * hidden..(o + 1) * hidden]
                            .iter()
                            .zip(h)
                            .map(|(a, c)| a * c)
                            .sum::<f64>()
                    };
                    if row(y) - row(j) < self.keep_tau * l * gap - 1e-12 {
                        broken_keep.push((i, j));
                    }
                }
            }
            let rounded = |base: &[f64], new: &[f64]| -> Vec<f64> {
                base.iter()
                    .zip(new)
                    .map(|(&o, &n)| if n == o { o } else { n as f32 as f64 })
                    .collect()
            };
            best = Some(Solved {
                w: rounded(w0, &w),
                b: rounded(b0, &b),
                objective,
                lambda: l,
                dw_l1: dwv.iter().map(|v| v.abs()).sum(),
                db_l1: dbv.iter().map(|v| v.abs()).sum(),
            });
            if found.is_empty() && broken_keep.is_empty() {
                converged = true;
                break;
            }
            cuts.extend(found);
            kept.extend(broken_keep);
        }
        if report.outcome.is_empty() {
            report.outcome = if converged {
                "optimal".into()
            } else {
                format!(
                    "limit: {MAX_CUT_ROUNDS} cutting-plane rounds (the answer is shrunk to hold)"
                )
            };
        }
        report.purpose = format!(
            "round {round}: {} areas, scale-aware, {rounds} cutting-plane rounds, {} cuts, {} kept decisions binding",
            areas.len(),
            cuts.len(),
            kept.len()
        );
        report.build_s = report
            .build_s
            .max(t.elapsed().as_secs_f64() - report.solve_s);
        Ok((best, report))
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

/// `net` with the last layer's weight and bias replaced.
fn with_last_layer(
    net: &Network,
    id: ParamId,
    w: &[f64],
    b: &[f64],
    outputs: usize,
) -> Result<Network> {
    let mut out = net.clone();
    let t = Tensor::from_vec(w.to_vec(), (outputs, w.len() / outputs), &Device::Cpu)
        .map_err(netrepair_nn::NnError::from)?;
    out.set_param(id, t)?;
    let t =
        Tensor::from_vec(b.to_vec(), outputs, &Device::Cpu).map_err(netrepair_nn::NnError::from)?;
    out.set_param(
        ParamId {
            node: id.node,
            slot: 1,
        },
        t,
    )?;
    Ok(out)
}

impl Repair for Reglo {
    fn name(&self) -> &'static str {
        "reglo"
    }

    fn check_settings(&self) -> Result<()> {
        self.check()
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
        if self.objective == RegloObjective::MinChange {
            if let Some(p) = props.iter().find(|p| p.measure != OutputMeasure::Logits) {
                return Err(RepairError::Unsupported(format!(
                    "the min-change LP bounds logits; eps on {} needs the scale-aware objective",
                    p.measure.name()
                )));
            }
        }
        let chain = Chain::new(net)?;
        let wid = last_weight(net, &chain)?;
        let (outputs, hidden) = (chain.output_len(), chain.hidden_len());
        let w0 = chain.last_weight().to_vec();
        let b0 = chain.last_bias().to_vec();
        if !problem.keep.regions.is_empty() {
            return Err(RepairError::Unsupported(
                "REGLO keeps points (their decisions), not regions".into(),
            ));
        }
        // Kept points: hidden layer and original outputs (their decisions are held).
        let keep: Vec<(Vec<f64>, Vec<f64>)> = problem
            .keep
            .points
            .inputs
            .iter()
            .map(|x| (chain.hidden(x), chain.forward(x)))
            .collect();
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
        let mut b = b0.clone();
        let mut last: Option<Solved> = None;
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
                let lp = LpInput {
                    areas: &areas,
                    props: &props,
                    keep: &keep,
                    w0: &w0,
                    b0: &b0,
                    outputs,
                    hidden,
                };
                let (res, report) = match self.objective {
                    RegloObjective::Scale { kappa } => self.solve_scale(&lp, kappa, round, ctx)?,
                    RegloObjective::MinChange => self.solve(&lp, round, ctx)?,
                };
                timings.build_s += report.build_s;
                timings.solve_s += report.solve_s;
                let outcome = report.outcome.clone();
                lps.push(report);
                match res {
                    Some(sol) => {
                        w = sol.w.clone();
                        b = sol.b.clone();
                        current = chain.with_last_weight(w.clone());
                        objective = Some(sol.objective);
                        solved_once = true;
                        last = Some(sol);
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

        // Global proof (scale-aware): every bound of the variation is positively homogeneous in
        // the last layer, so shrinking its weight and bias by target / VB makes VB <= target
        // hold over the whole region, with every decision unchanged.
        let scale_aware = matches!(self.objective, RegloObjective::Scale { .. });
        let mut rescaled = None;
        if scale_aware && self.prove_global {
            ctx.say("bounding the variation of the new last layer over the whole region");
            let cand = with_last_layer(net, wid, &w, &b, outputs)?;
            let cand_chain = Chain::new(&cand)?;
            let mut ratio: f64 = 0.0;
            for prop in &props {
                let vb = variation_bound(&cand, &cand_chain, prop, &prop.region, &split)?.vb;
                ratio = ratio.max(vb / (prop.eps * (1.0 - self.margin)));
            }
            if ratio > 1.0 {
                let g = 1.0 / ratio;
                let shrink =
                    |v: &mut Vec<f64>| v.iter_mut().for_each(|x| *x = (*x * g) as f32 as f64);
                shrink(&mut w);
                shrink(&mut b);
                rescaled = Some(g);
            }
        }
        let lambda = last.as_ref().map_or(1.0, |s| s.lambda) * rescaled.unwrap_or(1.0);
        let change = last.as_ref().map_or(0.0, |s| s.dw_l1 + s.db_l1) * rescaled.unwrap_or(1.0);
        let norm0 = w0
            .iter()
            .chain(&b0)
            .map(|v| v.abs())
            .sum::<f64>()
            .max(1e-12);

        // Re-check on the network as written (f32 weights).
        ctx.say("re-checking: VB of every area and of the whole region, PGD");
        let rt = Instant::now();
        let after = with_last_layer(net, wid, &w, &b, outputs)?;
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
            // The cover: the first `cover_areas[p]` areas tile the region.
            let cover_vb = (cover_areas[p] > 0).then(|| {
                mine[..cover_areas[p]]
                    .iter()
                    .map(|&i| area_vb[i])
                    .fold(0.0, f64::max)
            });
            let verdict = global_verdict(
                &after,
                &chain_after,
                prop,
                &split,
                cover_vb,
                &eval[p],
                &self.attack,
            )?;
            let (vb, rep) = (verdict.vb, verdict.attack);
            let proved = verdict.status == ItemStatus::Repaired;
            let (status, detail) = if proved {
                (
                    ItemStatus::Repaired,
                    format!("VB = {vb:.4} <= eps = {} over the whole region (sound bound, re-checked in f64)", prop.eps),
                )
            } else if verdict.status == ItemStatus::Failed {
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
                measure: prop.measure.name(),
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
                objective: if scale_aware { "scale" } else { "min-change" },
                lambda,
                relative_change: change / norm0,
                lambda_only: (prop.eps * (1.0 - self.margin) / vb_before).min(1.0),
                rescaled,
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
            (Some(_), false) if !solved_once && !scale_aware => RepairStatus::Limit,
            _ => RepairStatus::Unconfirmed,
        };
        let g = &reports[0];
        let how = if !scale_aware {
            String::new()
        } else if g.relative_change == 0.0 {
            format!(
                "; the last layer was only rescaled (x{:.4}): every decision is unchanged, and eps on the {} holds because the logits shrank (docs/reglo.md: what the proof means)",
                g.lambda, g.measure
            )
        } else {
            format!(
                "; new last layer = {:.4} x original + a change of {:.1}% of its L1 norm{}",
                g.lambda,
                100.0 * g.relative_change,
                g.rescaled.map_or(String::new(), |r| format!(
                    ", shrunk x{r:.4} to hold over the whole region"
                ))
            )
        };
        let message = match (&limit, solved_once) {
            (Some(why), false) if !scale_aware => {
                format!("the repair LP gave no solution ({why}); network unchanged")
            }
            _ if !solved_once && !scale_aware => format!(
                "the search found no violation; network unchanged (VB {:.4}, eps {})",
                g.vb_after, g.eps
            ),
            _ => format!(
                "{}: VB {:.4} -> {:.4}, PGD-B {:.4} -> {:.4}, PGD-R {:.1}% -> {:.1}% (eps {} on the {}); {} of {} areas proved{}{how}{}",
                g.kind,
                g.vb_before,
                g.vb_after,
                g.pgd_b_before,
                g.pgd_b_after,
                100.0 * g.pgd_r_before,
                100.0 * g.pgd_r_after,
                g.eps,
                g.measure,
                g.areas_proved,
                g.areas,
                if proved { "; proved over the whole region" } else { "" },
                limit.as_ref().map_or(String::new(), |why| format!(" (the repair LP gave no solution: {why})"))
            ),
        };
        let last = net.nodes().len() - 1;
        let keep = crate::recheck::keep_report(net, &after, &problem.keep, &ctx.check)?;
        let mut out = RepairOutcome::new(
            net,
            after,
            self.name(),
            EditedLayer::Node(last),
            status,
            message,
            items,
            started,
        )?;
        out.timings = timings;
        out.lp = lps;
        out.keep = keep;
        out.details = Some(MethodDetails::Global(reports));
        Ok(out)
    }
}

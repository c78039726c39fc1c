//! PREPARED: provable editing for properties over input sets, by a parametric linear
//! relaxation solved as one LP.
//!
//! The edited parameters are APRNN's (the start layer's weight and the biases of it and of
//! every later affine layer). For each input region (a box: a VNN-LIB case, a sub-box of one,
//! or a point) the start layer's input is bounded by sound linear bounds through the frozen
//! prefix, `x in [l, u]`. A neuron `v = sum_j w_j x_j + b` with variable `w` has the exact
//! bounds `sum_j max(w_j l_j, w_j u_j)` and `sum_j min(...)`, each term an auxiliary LP
//! variable with two rows (one term when the sign of `w_j` is fixed by the delta bound or
//! `l_j = u_j`). When the start layer is the output layer a requirement `a y <= r` is bounded
//! exactly in one go (`sum_j max(e_j l_j, e_j u_j)` with `e_j = sum_o a_o w_oj`); otherwise
//! bounds go through the later layers: ReLU's upper bound by its epigraph, its lower bound as
//! `alpha L` with `alpha` from the original network, fixed affine layers by sign split.
//!
//! Whatever the LP returns satisfies every requirement over every region by construction;
//! the verifier re-checks it all the same. When the relaxation is too loose (the LP is
//! infeasible) the regions whose requirements an elastic LP cannot meet are halved and the LP
//! is solved again, up to a number of rounds.

use std::collections::HashMap;
use std::time::Instant;

use netrepair_lp::{LpModel, Outcome, Sense, Var};
use netrepair_nn::{affine_op, elementwise_op, pool_windows};
use netrepair_nn::{Layer, Network};
use netrepair_spec::BoxRegion;
use netrepair_verify::milp::relaxed_row_upper;
use netrepair_verify::{
    linear_bounds, optimised_linear_bounds, optimised_row_bounds, row_bounds, AlphaOptions, Bounds,
};
use rand::{Rng, SeedableRng};

use crate::aprnn::choose_requirements;
use crate::edit::{concat, downstream, Edit, KeepObjective};
use crate::error::{rule, RepairError, Result};
use crate::expr::{materialize, Expr};
use crate::outcome::{LpReport, RepairOutcome, Timings};
use crate::pipeline::{checked_start, finish, solve_edit, Solved};
use crate::problem::{split_box, RepairItem, RepairProblem, Requirement};
use crate::trace::{outputs, traces};
use crate::{not_piecewise_linear, LpRepairOptions, Repair, RepairContext};

/// PREPARED settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The LP settings (start layer, delta bound, margin, solver).
    pub lp: LpRepairOptions,
    /// Rounds of input splitting after an infeasible LP (0: none).
    pub split_rounds: usize,
    /// Never encode more regions than this.
    pub max_regions: usize,
    /// When the keep set cannot be held, solve again with its constraints elastic, then
    /// without it (notes say so); otherwise the repair is reported infeasible.
    pub soften_keep: bool,
    /// Objective cost of one unit (logit) by which a kept point or region misses its
    /// constraint in the elastic fallback.
    pub keep_violation_cost: f64,
    /// How the kept points' output changes enter the objective when the last layer is
    /// edited (as in APRNN; their classes are held by constraints either way). At an earlier
    /// layer PREPARED bounds outputs by relaxations, not expressions, and this is not used.
    pub keep_objective: KeepObjective,
    /// For a last-layer edit, how each region's requirements are bounded besides the box of
    /// the last hidden layer (PREPARED's relaxation at the last layer): see [`Cut`].
    pub cuts: Cuts,
}

/// How a last-layer edit bounds the original requirement directions over a region (the cuts
/// `g . x <= gamma`, see [`Cut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cuts {
    /// No cuts: the box of the last hidden layer alone.
    Off,
    /// `gamma` by back-substitution (the verifier's linear bounds).
    #[default]
    Linear,
    /// `gamma` also from the LP relaxation of the network below (every unstable ReLU by its
    /// triangle; one LP per direction and region), whichever is smaller.
    Lp,
    /// `gamma` by back-substitution with the ReLU lower slopes optimised (alpha-CROWN) for
    /// every unstable neuron's bounds over the region and then for each direction; the
    /// region's bounds (the box of the last hidden layer included) are the optimised ones.
    /// Tighter than `lp` (the LP relaxation keeps the plain intermediate bounds).
    Alpha,
}

impl std::str::FromStr for Cuts {
    type Err = RepairError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "off" | "none" => Ok(Self::Off),
            "linear" => Ok(Self::Linear),
            "lp" => Ok(Self::Lp),
            "alpha" => Ok(Self::Alpha),
            _ => Err(RepairError::Problem(format!(
                "unknown cuts '{s}' (off, linear, lp, alpha)"
            ))),
        }
    }
}

impl Prepared {
    /// Checks the settings, naming the first rule broken.
    pub fn check(&self) -> Result<()> {
        self.lp.check()?;
        rule::at_least_one("max_regions", self.max_regions)?;
        rule::non_negative("keep_violation_cost", self.keep_violation_cost)
    }
}

impl Default for Prepared {
    fn default() -> Self {
        Self {
            lp: LpRepairOptions::default(),
            split_rounds: 6,
            max_regions: 2048,
            soften_keep: true,
            keep_violation_cost: 10.0,
            keep_objective: KeepObjective::Linf { weight: 1.0 },
            cuts: Cuts::default(),
        }
    }
}

/// One input region with what must hold on it.
#[derive(Debug, Clone)]
struct Region {
    /// The case box it was split from (its widths guide the splits).
    case_box: BoxRegion,
    region: BoxRegion,
    requirements: Vec<Requirement>,
    /// Points keep their requirements; property regions re-choose them after a split.
    case: Option<netrepair_spec::Case>,
    /// Sound bounds of every value over the region (exact values for a point), computed once
    /// and shared by the main and the elastic LP of a round.
    bounds: Vec<Bounds>,
    /// Whether it comes from the keep set (dropped when the repair is infeasible with it).
    kept: bool,
    /// Valid inequalities on the edited layer's input over the region (see [`Cut`]); `None`
    /// until computed (after the region is built or split).
    cuts: Option<Vec<Cut>>,
}

/// A valid inequality `g . x <= gamma` on the edited layer's input `x` over a region, for a
/// last-layer edit: `g` is a requirement's direction under the *original* weights
/// (`sum_o a_o W_o`), `gamma` the back-substituted upper bound of `g . x` over the region.
/// The LP bounds a requirement's edited direction `e` by `sum_t lambda_t gamma_t +
/// max over the box of (e - sum_t lambda_t g_t) . x` with free `lambda >= 0` (LP duality):
/// the large original part is bounded as tightly as the verifier bounds it, the box only
/// sees the edit. `lambda = 0` is the plain box bound.
#[derive(Debug, Clone)]
struct Cut {
    /// Dense coefficients over the edited layer's input.
    g: Vec<f64>,
    gamma: f64,
}

/// Bounds of every value over `b`: the f64 forward pass for a point, linear bounds otherwise.
fn region_bounds(net: &Network, b: &BoxRegion) -> Result<Vec<Bounds>> {
    if b.lower == b.upper {
        let v = traces(net, std::slice::from_ref(&b.lower))?.remove(0);
        return Ok(v
            .into_iter()
            .map(|x| Bounds {
                lower: x.clone(),
                upper: x,
            })
            .collect());
    }
    Ok(linear_bounds(net, b)?)
}

/// Bounds of an expression: `lower <= value <= upper`.
#[derive(Clone)]
struct Interval {
    lower: Expr,
    upper: Expr,
}

/// Samples of a box: its centre and random points (seeded), for choosing requirements.
fn samples(b: &BoxRegion, n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = vec![b.center()];
    for _ in 0..n {
        out.push(
            b.lower
                .iter()
                .zip(&b.upper)
                .map(|(&l, &u)| if u > l { rng.random_range(l..=u) } else { l })
                .collect(),
        );
    }
    out
}

/// One region per case of a property, with the requirements the network is closest to
/// meeting on 32 samples of its box (seeded by `seed`).
fn property_regions(
    net: &Network,
    property: &netrepair_spec::Property,
    seed: u64,
    kept: bool,
) -> Result<Vec<Region>> {
    property
        .cases
        .iter()
        .map(|case| {
            let ys = outputs(net, &samples(&case.input, 32, seed))?;
            Ok(Region {
                case_box: case.input.clone(),
                region: case.input.clone(),
                requirements: choose_requirements(case, &ys),
                case: Some(case.clone()),
                bounds: region_bounds(net, &case.input)?,
                kept,
                cuts: None,
            })
        })
        .collect()
}

impl Prepared {
    /// The regions of the keep set: each kept point (that the network gets right) keeps its
    /// class by its keep margin; each kept property is encoded like a repair property.
    fn keep_regions(&self, net: &Network, problem: &RepairProblem) -> Result<Vec<Region>> {
        let keep = &problem.keep;
        let mut out = Vec::new();
        let ys = outputs(net, &keep.points.inputs)?;
        let m = net.output_len();
        for ((x, &c), y) in keep.points.inputs.iter().zip(&keep.points.labels).zip(&ys) {
            let Some(margin) = keep.margin_at(y, c) else {
                continue;
            };
            // The LP subtracts its own margin `eps` from every right-hand side.
            let requirements = Requirement::label(c, m)
                .into_iter()
                .map(|mut r| {
                    r.constraint.rhs = self.lp.eps - margin;
                    r.strict = false;
                    r
                })
                .collect();
            let b = BoxRegion::new(x.clone(), x.clone())?;
            out.push(Region {
                case_box: b.clone(),
                bounds: region_bounds(net, &b)?,
                region: b,
                requirements,
                case: None,
                kept: true,
                cuts: None,
            });
        }
        for (k, r) in keep.regions.iter().enumerate() {
            out.extend(property_regions(net, &r.property, 1_000 + k as u64, true)?);
        }
        Ok(out)
    }

    fn regions(&self, net: &Network, problem: &RepairProblem) -> Result<Vec<Region>> {
        let mut out = Vec::new();
        for (item, it) in problem.items.iter().enumerate() {
            match it {
                RepairItem::Point { x, requirements } => {
                    let b = BoxRegion::new(x.clone(), x.clone())?;
                    out.push(Region {
                        case_box: b.clone(),
                        bounds: region_bounds(net, &b)?,
                        region: b,
                        requirements: requirements.clone(),
                        case: None,
                        kept: false,
                        cuts: None,
                    });
                }
                RepairItem::Polytope {
                    vertices,
                    requirements,
                } => {
                    // The bounding box contains the hull: meeting the requirements on it is
                    // sufficient (and may be stricter than needed).
                    let d = vertices[0].len();
                    let lo = (0..d)
                        .map(|j| vertices.iter().map(|v| v[j]).fold(f64::INFINITY, f64::min))
                        .collect();
                    let hi = (0..d)
                        .map(|j| {
                            vertices
                                .iter()
                                .map(|v| v[j])
                                .fold(f64::NEG_INFINITY, f64::max)
                        })
                        .collect();
                    let b = BoxRegion::new(lo, hi)?;
                    out.push(Region {
                        case_box: b.clone(),
                        bounds: region_bounds(net, &b)?,
                        region: b,
                        requirements: requirements.clone(),
                        case: None,
                        kept: false,
                        cuts: None,
                    });
                }
                RepairItem::Global { .. } => problem.refuse_global("prepared")?,
                RepairItem::Property { property, .. } => {
                    out.extend(property_regions(net, property, item as u64, false)?);
                }
            }
        }
        Ok(out)
    }

    /// Computes the cuts of every region that lacks them (none for points, where the box is
    /// exact, nor unless the edit is of the last layer and `cuts` is not `Off`): one per
    /// requirement, its direction under the original weights bounded by back-substitution
    /// (and by the LP relaxation for `Cuts::Lp`).
    fn fill_cuts(
        &self,
        net: &Network,
        start: usize,
        regions: &mut [Region],
        ctx: &RepairContext,
    ) -> Result<()> {
        let last = start + 1 == net.nodes().len();
        let input = net.nodes()[start].inputs()[0];
        let op = affine_op(net, start)?.expect("affine start layer");
        for r in regions.iter_mut().filter(|r| r.cuts.is_none()) {
            let point = r.region.lower == r.region.upper;
            if self.cuts == Cuts::Off || !last || point {
                r.cuts = Some(Vec::new());
                continue;
            }
            let n = r.bounds[input].lower.len();
            let rows: Vec<Vec<f64>> = r
                .requirements
                .iter()
                .map(|req| {
                    let mut g = vec![0.0; n];
                    for &(o, a) in &req.constraint.coeffs {
                        for &(j, w) in &op.rows[o] {
                            g[j as usize] += a * w;
                        }
                    }
                    g
                })
                .collect();
            let mut upper = if self.cuts == Cuts::Alpha {
                let alpha = AlphaOptions::default();
                let t = Instant::now();
                r.bounds = optimised_linear_bounds(net, &r.region, &alpha)?;
                let (_, upper) = optimised_row_bounds(net, &r.bounds, input, &rows, &alpha)?;
                ctx.say(&format!(
                    "cuts: optimised slopes for the region and {} directions in {:.1} s",
                    rows.len(),
                    t.elapsed().as_secs_f64()
                ));
                upper
            } else {
                row_bounds(net, &r.bounds, input, &rows)?.1
            };
            if self.cuts == Cuts::Lp {
                let limit = std::time::Duration::from_secs(60);
                let t = Instant::now();
                let lp = relaxed_row_upper(net, &r.bounds, input, &rows, limit)?;
                ctx.say(&format!(
                    "cuts: {} LP relaxations of the region in {:.1} s",
                    rows.len(),
                    t.elapsed().as_secs_f64()
                ));
                for (u, v) in upper.iter_mut().zip(lp) {
                    *u = u.min(v.unwrap_or(f64::INFINITY));
                }
            }
            r.cuts = Some(
                rows.into_iter()
                    .zip(upper)
                    .filter(|(_, gamma)| gamma.is_finite())
                    .map(|(g, gamma)| Cut { g, gamma })
                    .collect(),
            );
        }
        Ok(())
    }

    /// Halves a region along its relatively widest side; property regions re-choose their
    /// requirements on each half.
    fn split(net: &Network, r: &Region) -> Result<Vec<Region>> {
        let b = &r.region;
        let rel = |j: usize| {
            let w = r.case_box.upper[j] - r.case_box.lower[j];
            if w > 0.0 {
                (b.upper[j] - b.lower[j]) / w
            } else {
                0.0
            }
        };
        let d = (0..b.dim())
            .max_by(|&i, &j| rel(i).total_cmp(&rel(j)))
            .unwrap_or(0);
        if rel(d) == 0.0 {
            return Ok(vec![r.clone()]);
        }
        split_box(b, d)
            .into_iter()
            .enumerate()
            .map(|(k, half)| {
                let mut n = r.clone();
                if let Some(case) = &r.case {
                    let ys = outputs(net, &samples(&half, 16, k as u64))?;
                    n.requirements = choose_requirements(case, &ys);
                }
                n.bounds = region_bounds(net, &half)?;
                n.region = half;
                n.cuts = None;
                Ok(n)
            })
            .collect()
    }

    /// Encodes every region; returns the rows' slack variables when `elastic` (the
    /// requirement rows then read `... - s <= rhs`, `s >= 0`, objective `sum s`).
    fn encode(
        &self,
        net: &Network,
        start: usize,
        regions: &[Region],
        elastic: bool,
        soft_keep: bool,
    ) -> Result<(LpModel, Edit, Vec<Vec<Var>>)> {
        let mut model = LpModel::new();
        let mut edit = Edit::new(net, start, self.lp.delta_bound)?;
        let down = downstream(net, start);
        let last = start + 1 == net.nodes().len();
        let taps = net.affine_taps(start).expect("affine start layer");
        let mut slacks = Vec::with_capacity(regions.len());
        for r in regions {
            let bounds = &r.bounds;
            let input = net.nodes()[start].inputs()[0];
            let (l, u) = (&bounds[input].lower, &bounds[input].upper);
            let mut row_slacks = Vec::new();
            // A kept region's rows share one penalised slack when the keep set is soft.
            let keep_slack = (soft_keep && r.kept && !elastic)
                .then(|| model.add_var(0.0, f64::INFINITY, self.keep_violation_cost));
            let mut require = |model: &mut LpModel, mut e: Expr, rhs: f64| {
                if elastic {
                    let s = model.add_var(0.0, f64::INFINITY, 1.0);
                    e.terms.push((s, -1.0));
                    row_slacks.push(s);
                } else if let Some(s) = keep_slack {
                    e.terms.push((s, -1.0));
                }
                e.le(model, rhs);
            };
            if last {
                // Exact over the box: bound each requirement's combination of outputs
                // directly, tightened by the region's cuts.
                let cuts = r.cuts.as_deref().unwrap_or_default();
                if r.kept && l == u && !elastic {
                    // A kept point: its outputs' changes enter the objective.
                    for (row, &b) in taps.rows.iter().zip(&taps.bias) {
                        let mut y = edit.bias(&mut model, start, b as usize);
                        for &(j, k) in row {
                            let w = edit.weight_expr(&mut model, k as usize);
                            y.add_scaled(&w, l[j as usize]);
                        }
                        let original = y.c;
                        edit.add_keep_delta(y, original);
                    }
                }
                for req in &r.requirements {
                    let mut coef: HashMap<u32, Expr> = HashMap::new();
                    let mut e = Expr::constant(0.0);
                    for &(o, a) in &req.constraint.coeffs {
                        e.add_scaled(&edit.bias(&mut model, start, taps.bias[o] as usize), a);
                        for &(j, k) in &taps.rows[o] {
                            let w = edit.weight_expr(&mut model, k as usize);
                            coef.entry(j).or_default().add_scaled(&w, a);
                        }
                    }
                    // max over {box, g_t . x <= gamma_t} of c . x <= sum_t lambda_t gamma_t
                    // + max over the box of (c - sum_t lambda_t g_t) . x, any lambda >= 0.
                    for cut in cuts {
                        let lambda = model.add_var(0.0, f64::INFINITY, 0.0);
                        e.terms.push((lambda, cut.gamma));
                        for (j, &g) in cut.g.iter().enumerate() {
                            if g != 0.0 {
                                coef.entry(j as u32).or_default().terms.push((lambda, -g));
                            }
                        }
                    }
                    let mut js: Vec<u32> = coef.keys().copied().collect();
                    js.sort_unstable();
                    for j in js {
                        let c = &coef[&j];
                        let (lj, uj) = (l[j as usize], u[j as usize]);
                        e.add_scaled(&upper_term(&mut model, c, lj, uj, None), 1.0);
                    }
                    require(&mut model, e, req.constraint.rhs - self.lp.eps);
                }
            } else {
                let y = self.propagate(&mut model, &mut edit, net, &down, bounds, l, u)?;
                for req in &r.requirements {
                    let mut e = Expr::constant(0.0);
                    for &(o, a) in &req.constraint.coeffs {
                        let side = if a > 0.0 { &y[o].upper } else { &y[o].lower };
                        e.add_scaled(side, a);
                    }
                    require(&mut model, e, req.constraint.rhs - self.lp.eps);
                }
            }
            slacks.push(row_slacks);
        }
        if !elastic {
            edit.set_objective(&mut model, self.keep_objective);
        }
        Ok((model, edit, slacks))
    }

    /// Bounds of every value after the start layer as expressions, for one region.
    #[allow(clippy::too_many_arguments)]
    fn propagate(
        &self,
        model: &mut LpModel,
        edit: &mut Edit,
        net: &Network,
        down: &[bool],
        bounds: &[Bounds],
        l: &[f64],
        u: &[f64],
    ) -> Result<Vec<Interval>> {
        let start = edit.start;
        let mt = self.lp.max_terms;
        let mut vals: Vec<Option<Vec<Interval>>> = vec![None; net.nodes().len() + 1];
        let input = |vals: &[Option<Vec<Interval>>], v: usize| -> Vec<Interval> {
            match &vals[v] {
                Some(x) => x.clone(),
                None => bounds[v]
                    .lower
                    .iter()
                    .zip(&bounds[v].upper)
                    .map(|(&a, &b)| Interval {
                        lower: Expr::constant(a),
                        upper: Expr::constant(b),
                    })
                    .collect(),
            }
        };
        let bound = edit_bound(self.lp.delta_bound);
        for i in start..net.nodes().len() {
            if !down[i] {
                continue;
            }
            let node = &net.nodes()[i];
            let v = node.inputs()[0];
            let out: Vec<Interval> = if i == start {
                let taps = net.affine_taps(i).expect("affine");
                let mut out = Vec::with_capacity(taps.rows.len());
                for (row, &b) in taps.rows.iter().zip(&taps.bias) {
                    let bias = edit.bias(model, i, b as usize);
                    let (mut lo, mut hi) = (bias.clone(), bias);
                    for &(j, k) in row {
                        let w0 = edit.weight(k as usize);
                        let w = edit.weight_expr(model, k as usize);
                        let sign = if w0 - bound >= 0.0 {
                            Some(1.0)
                        } else if w0 + bound <= 0.0 {
                            Some(-1.0)
                        } else {
                            None
                        };
                        let (lj, uj) = (l[j as usize], u[j as usize]);
                        hi.add_scaled(&upper_term(model, &w, lj, uj, sign), 1.0);
                        lo.add_scaled(
                            &upper_term(model, &w.scaled(-1.0), lj, uj, sign.map(|s| -s)),
                            -1.0,
                        );
                    }
                    out.push(Interval {
                        lower: materialize(model, lo, mt),
                        upper: materialize(model, hi, mt),
                    });
                }
                out
            } else {
                let x = input(&vals, v);
                match node.layer() {
                    Layer::Linear(_)
                    | Layer::Conv2d(_)
                    | Layer::AvgPool2d(_)
                    | Layer::Rearrange(_) => {
                        let op = affine_op(net, i)?.expect("affine");
                        let bias_index = net.affine_taps(i).map(|t| t.bias);
                        let mut out = Vec::with_capacity(op.rows.len());
                        for (o, row) in op.rows.iter().enumerate() {
                            let b = match &bias_index {
                                Some(idx) => edit.bias(model, i, idx[o] as usize),
                                None => Expr::constant(op.bias[o]),
                            };
                            let (mut lo, mut hi) = (b.clone(), b);
                            for &(j, w) in row {
                                let xj = &x[j as usize];
                                let (a, c) = if w > 0.0 {
                                    (&xj.lower, &xj.upper)
                                } else {
                                    (&xj.upper, &xj.lower)
                                };
                                lo.add_scaled(a, w);
                                hi.add_scaled(c, w);
                            }
                            out.push(Interval {
                                lower: materialize(model, lo, mt),
                                upper: materialize(model, hi, mt),
                            });
                        }
                        out
                    }
                    Layer::BatchNorm(_) | Layer::Elementwise(_) => {
                        let (a, c) = elementwise_op(net, i)?.expect("elementwise");
                        x.iter()
                            .enumerate()
                            .map(|(k, iv)| {
                                let (mut lo, mut hi) = if a[k] >= 0.0 {
                                    (iv.lower.scaled(a[k]), iv.upper.scaled(a[k]))
                                } else {
                                    (iv.upper.scaled(a[k]), iv.lower.scaled(a[k]))
                                };
                                lo.c += c[k];
                                hi.c += c[k];
                                Interval {
                                    lower: lo,
                                    upper: hi,
                                }
                            })
                            .collect()
                    }
                    Layer::Relu => x
                        .into_iter()
                        .enumerate()
                        .map(|(k, iv)| {
                            let (ol, ou) = (bounds[v].lower[k], bounds[v].upper[k]);
                            // Upper: epigraph of max(0, U). Lower: alpha L, alpha in [0, 1].
                            let up = model.add_var(0.0, f64::INFINITY, 0.0);
                            let mut d = iv.upper.clone();
                            d.terms.push((up, -1.0));
                            d.le(model, 0.0);
                            let alpha = if ol >= 0.0 || (ou > 0.0 && ou >= -ol) {
                                1.0
                            } else {
                                0.0
                            };
                            Interval {
                                lower: iv.lower.scaled(alpha),
                                upper: Expr::var(up),
                            }
                        })
                        .collect(),
                    Layer::MaxPool2d(p) => pool_windows(p, net.value_shape(v))
                        .iter()
                        .map(|cells| {
                            let up = model.add_var(f64::NEG_INFINITY, f64::INFINITY, 0.0);
                            for &c in cells {
                                let mut d = x[c].upper.clone();
                                d.terms.push((up, -1.0));
                                d.le(model, 0.0);
                            }
                            let best = cells
                                .iter()
                                .copied()
                                .max_by(|&a, &b| bounds[v].lower[a].total_cmp(&bounds[v].lower[b]))
                                .expect("non-empty window");
                            Interval {
                                lower: x[best].lower.clone(),
                                upper: Expr::var(up),
                            }
                        })
                        .collect(),
                    Layer::Flatten | Layer::Reshape(_) => x,
                    Layer::Add => {
                        let y = input(&vals, node.inputs()[1]);
                        x.into_iter()
                            .zip(y)
                            .map(|(mut a, b)| {
                                a.lower.add_scaled(&b.lower, 1.0);
                                a.upper.add_scaled(&b.upper, 1.0);
                                a
                            })
                            .collect()
                    }
                    Layer::Sigmoid | Layer::Tanh => {
                        return Err(not_piecewise_linear(net, i, "PREPARED's relaxation"))
                    }
                    Layer::Concat { .. } => concat(net, i, |u| input(&vals, u)),
                    Layer::Opaque(_) => {
                        return Err(netrepair_verify::affine::not_boundable(net, i).into())
                    }
                }
            };
            vals[i + 1] = Some(out);
        }
        Ok(vals
            .pop()
            .flatten()
            .expect("the output follows the start layer"))
    }
}

fn edit_bound(b: Option<f64>) -> f64 {
    b.unwrap_or(f64::INFINITY)
}

/// An expression bounding `max over x in [l, u] of c * x` from above, where `c` is an
/// expression in the LP variables: `c l` or `c u` when the sign of `c` is known (`sign`) or
/// `l = u`, else a fresh variable `s >= c l, s >= c u`.
fn upper_term(model: &mut LpModel, c: &Expr, l: f64, u: f64, sign: Option<f64>) -> Expr {
    if l == u {
        return c.scaled(l);
    }
    match sign {
        Some(s) if s > 0.0 => c.scaled(u),
        Some(_) => c.scaled(l),
        None => {
            let s = model.add_var(f64::NEG_INFINITY, f64::INFINITY, 0.0);
            for x in [l, u] {
                let mut d = c.scaled(x);
                d.terms.push((s, -1.0));
                d.le(model, 0.0);
            }
            Expr::var(s)
        }
    }
}

impl Repair for Prepared {
    fn name(&self) -> &'static str {
        "prepared"
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
        self.check()?;
        let start = checked_start(net, problem, &self.lp)?;
        let mut regions = self.regions(net, problem)?;
        regions.extend(self.keep_regions(net, problem)?);
        self.fill_cuts(net, start, &mut regions, ctx)?;
        let (mut lps, mut timings) = (Vec::new(), Timings::default());
        let mut notes = Vec::new();
        let done = |solved, lps, timings, notes: &mut Vec<String>| {
            let mut out = finish(
                self.name(),
                "the LP is infeasible under the linear relaxation, after input splitting (try another layer, or more split rounds)",
                net,
                start,
                problem,
                solved,
                lps,
                timings,
                ctx,
                started,
            )?;
            out.notes.append(notes);
            Ok(out)
        };
        // When the repair is infeasible with the keep set held: once with the kept regions'
        // constraints elastic (violations penalised), then without them.
        let mut soft_keep = false;
        let drop_keep = |regions: &mut Vec<Region>,
                         notes: &mut Vec<String>,
                         soft_keep: &mut bool| {
            let kept = regions.iter().filter(|r| r.kept).count();
            if kept == 0 || !self.soften_keep {
                return false;
            }
            if !*soft_keep {
                *soft_keep = true;
                notes.push(format!(
                    "the repair is infeasible with the keep set ({kept} kept regions and points) held: solved again with their constraints elastic (violations penalised)"
                ));
            } else {
                notes.push(format!(
                    "the repair is infeasible even with the keep set ({kept} kept regions and points) elastic: solved again without it"
                ));
                regions.retain(|r| !r.kept);
            }
            true
        };
        let mut round = 0;
        loop {
            let purpose = format!("repair LP, {} regions", regions.len());
            ctx.say(&format!("encoding {purpose}"));
            let t = Instant::now();
            let (model, edit, _) = self.encode(net, start, &regions, false, soft_keep)?;
            let encode_s = t.elapsed().as_secs_f64();
            ctx.say(&format!(
                "solving {purpose}: {} rows, {} columns",
                model.num_rows(),
                model.num_vars()
            ));
            let solved = solve_edit(
                net,
                &model,
                &edit,
                &self.lp,
                purpose,
                encode_s,
                &mut lps,
                &mut timings,
                ctx,
            )?;
            let splittable = regions.iter().any(|r| r.region.lower != r.region.upper);
            if !matches!(solved, Solved::Infeasible)
                || round >= self.split_rounds
                || !splittable
                || regions.len() >= self.max_regions
            {
                if matches!(solved, Solved::Infeasible)
                    && drop_keep(&mut regions, &mut notes, &mut soft_keep)
                {
                    round = 0;
                    continue;
                }
                return done(solved, lps, timings, &mut notes);
            }
            // Which regions' requirements cannot be met? An elastic LP says.
            round += 1;
            ctx.say(&format!(
                "split round {round}: finding the regions the relaxation fails on"
            ));
            let t = Instant::now();
            let (model, _, slacks) = self.encode(net, start, &regions, true, false)?;
            let encode_s = t.elapsed().as_secs_f64();
            let purpose = format!("elastic LP, split round {round}");
            ctx.dump_lp(&model, Sense::Minimise, &purpose)?;
            let sol = model.solve(Sense::Minimise, &self.lp.solve_options())?;
            let what = match &sol.outcome {
                Outcome::Optimal { .. } => "optimal".to_string(),
                o => format!("{o:?}").chars().take(40).collect(),
            };
            let report = LpReport::new(purpose, &what, &sol, encode_s);
            timings.add_lp(&report);
            lps.push(report);
            let Outcome::Optimal { values, .. } = sol.outcome else {
                let solved =
                    Solved::Limit("the elastic LP used to choose splits did not solve".into());
                return done(solved, lps, timings, &mut notes);
            };
            let mut next = Vec::with_capacity(regions.len() * 2);
            for (r, s) in regions.iter().zip(&slacks) {
                let bad = s.iter().any(|v| values[v.index()] > 1e-9);
                if bad && next.len() + regions.len() < self.max_regions {
                    next.extend(Self::split(net, r)?);
                } else {
                    next.push(r.clone());
                }
            }
            if next.len() == regions.len() {
                // Nothing left to split: the relaxation is exact where it fails.
                if drop_keep(&mut regions, &mut notes, &mut soft_keep) {
                    round = 0;
                    continue;
                }
                return done(Solved::Infeasible, lps, timings, &mut notes);
            }
            regions = next;
            self.fill_cuts(net, start, &mut regions, ctx)?;
        }
    }
}

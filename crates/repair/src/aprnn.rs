//! APRNN: architecture-preserving provable repair of points and V-polytopes.
//!
//! The weight of a start layer `k` and the biases of `k` and every later affine layer become
//! LP variables (deltas from the original values). Layer `k`'s input is concrete, so with
//! every later ReLU held to a fixed activation pattern (and every max-pool to a fixed winner)
//! the output is affine in the variables: requirements become linear constraints, the
//! pattern becomes sign constraints, and the objective `||d||_inf + ||d||_1 / n` over
//! parameter and output deltas keeps the change small.
//!
//! Points keep their own pattern. A V-polytope gives every vertex its centroid's pattern so
//! the whole hull lies in one linear region; if the vertices disagree before layer `k`,
//! "shift" passes first edit an earlier layer (pattern constraints only) until they agree.
//! Boxes (VNN-LIB cases) are V-polytopes of their corners, optionally split into sub-boxes.

use std::collections::HashMap;
use std::time::Instant;

use netrepair_lp::{LpModel, Var};
use netrepair_nn::{affine_op, elementwise_op, pool_windows, AffineOp};
use netrepair_nn::{Layer, Network};

use crate::columns::{self, RoundLp};
use crate::edit::{concat, downstream, Edit, KeepObjective};
use crate::error::{rule, RepairError, Result};
use crate::expr::{materialize, Expr};
use crate::outcome::{LpReport, RepairOutcome, Timings};
use crate::pipeline::{checked_start, finish, solve_edit, Solved};
use crate::problem::{
    box_vertices, case_requirements, KeepSet, RepairItem, RepairProblem, Requirement,
};
use crate::recheck::centroid;
use crate::trace::{argmax_cell, outputs, pattern_mismatch, traces, Values};
use crate::{not_piecewise_linear, LpRepairOptions, Repair, RepairContext};

/// APRNN settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Aprnn {
    /// The LP settings (start layer, delta bound, margin, solver).
    pub lp: LpRepairOptions,
    /// Each box of a property is split this many times (halving its widest side) before its
    /// corners are taken: `2^box_splits` sub-boxes, each its own linear region.
    pub box_splits: usize,
    /// Boxes with more free dimensions than this are refused (2^d corners).
    pub max_box_dims: usize,
    /// Margin by which polytope vertices keep the centroid's pattern (so the f32-rounded
    /// network still provably has one linear region on the hull).
    pub pattern_margin: f64,
    /// How the kept points' output changes enter the objective (the problem's keep set is
    /// also held by constraints: each kept point keeps its class by its keep margin, with its
    /// activation pattern after the start layer held).
    pub keep_objective: KeepObjective,
    /// When the kept points cannot all be held (the LP with their constraints is
    /// infeasible), solve again with their class constraints elastic (each violation costs
    /// `keep_violation_cost` per logit), then, if still infeasible, without them; the notes
    /// say so.
    pub soften_keep: bool,
    /// Objective cost of one unit (logit) by which a kept point misses its keep margin in the
    /// elastic fallback.
    pub keep_violation_cost: f64,
    /// A ReLU right after the last affine layer (on the logits) is not held to its
    /// activation pattern for points with label requirements: the LP asks the pre-activation
    /// of the true class to beat every other and to be positive, which implies the label
    /// after the ReLU. APRNN's reference deletes such a ReLU; this keeps the architecture.
    pub free_final_relu: bool,
    /// Synthetic kept points added to the problem's keep set before the LP is built:
    /// mixtures of pairs of its points, labelled by the original network
    /// ([`RepairProblem::with_synthetic_keep`], seed 0); 0: none.
    pub keep_mixup: usize,
}

/// How an LP holds the kept points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeepMode {
    /// Each kept point keeps its class by its keep margin: constraints.
    Hard,
    /// The same constraints with a penalised slack per point.
    Elastic,
    /// Kept points are left out.
    Off,
}

/// What an infeasible APRNN LP means.
const APRNN_INFEASIBLE: &str = "the LP is infeasible with every activation pattern held (try another layer, or a looser delta bound)";

/// APRNN's default bound on every parameter delta (the reference implementation's choice).
pub const APRNN_DELTA_BOUND: f64 = 3.0;

impl Aprnn {
    /// Checks the settings, naming the first rule broken.
    pub fn check(&self) -> Result<()> {
        self.lp.check()?;
        rule::at_least_one("max_box_dims", self.max_box_dims)?;
        rule::non_negative("pattern_margin", self.pattern_margin)?;
        rule::non_negative("keep_violation_cost", self.keep_violation_cost)?;
        if self.box_splits > 20 {
            return Err(RepairError::InvalidParam {
                name: "box_splits",
                value: self.box_splits.to_string(),
                rule: "must be at most 20 (2^box_splits sub-boxes per box)",
            });
        }
        Ok(())
    }
}

impl Default for Aprnn {
    fn default() -> Self {
        Self {
            // Interior point: on APRNN's LPs (many rows, dense blocks) HiGHS's simplex took
            // over 5 minutes where IPM took 18 s (mnist-net_256x2, 100 errors, 1000 kept).
            // Without crossover, as APRNN's reference runs Gurobi: the objective has a large
            // optimal face, and its interior spreads the change where a vertex pushes
            // parameters to the delta bound.
            lp: LpRepairOptions {
                delta_bound: Some(APRNN_DELTA_BOUND),
                method: netrepair_lp::Method::Ipm,
                crossover: false,
                ..LpRepairOptions::default()
            },
            box_splits: 0,
            max_box_dims: 12,
            pattern_margin: 1e-6,
            keep_objective: KeepObjective::Linf { weight: 1.0 },
            soften_keep: true,
            keep_violation_cost: 10.0,
            free_final_relu: true,
            keep_mixup: 0,
        }
    }
}

/// Vertices that share one activation pattern (a point alone, or a polytope's vertices with
/// its centroid as the pattern's source), and what must hold there.
struct Group {
    /// The problem item it comes from.
    item: usize,
    vertices: Vec<Vec<f64>>,
    centroid: Option<Vec<f64>>,
    requirements: Vec<Requirement>,
}

/// One evaluation point of an encoding: its concrete values, the values whose activation
/// pattern it must follow, and the margin of the pattern constraints.
pub(crate) struct EvalPoint<'a> {
    pub values: &'a Values,
    pub reference: &'a Values,
    pub margin: f64,
    /// Pass the network's last node through when it is a ReLU (see
    /// [`Aprnn::free_final_relu`]): the expressions returned are then its pre-activations.
    pub free_final_relu: bool,
}

/// What a point of an APRNN pass stands for.
enum Role<'r> {
    /// A vertex of a repair item, with the item's requirements; `of_many` when the item is a
    /// box or polytope with more than one vertex.
    Repair {
        reqs: &'r [Requirement],
        of_many: bool,
    },
    /// A kept point, whose class (the value) is held.
    Keep(usize),
}

/// Cached constant-weight maps of the layers after the start layer.
#[derive(Default)]
pub(crate) struct OpCache {
    affine: HashMap<usize, (AffineOp, Vec<u32>)>,
    elementwise: HashMap<usize, (Vec<f64>, Vec<f64>)>,
    /// Per node: whether its output is read only by the next node, a hidden ReLU.
    feeds_relu: Option<Vec<bool>>,
}

impl OpCache {
    /// Whether node `i`'s output is read only by node `i + 1`, a ReLU that is not the
    /// network's last node. Its expressions then stay unmaterialised until the ReLU: an
    /// active neuron gets its own column there, an inactive one only its pattern row (with
    /// the terms themselves, no column and equality row of its own).
    fn feeds_relu(&mut self, net: &Network, i: usize) -> bool {
        let flags = self.feeds_relu.get_or_insert_with(|| {
            let nodes = net.nodes();
            let mut readers = vec![0usize; nodes.len() + 1];
            for node in nodes {
                for &v in node.inputs() {
                    readers[v] += 1;
                }
            }
            (0..nodes.len())
                .map(|i| {
                    i + 2 < nodes.len()
                        && readers[i + 1] == 1
                        && nodes[i + 1].inputs() == [i + 1]
                        && matches!(nodes[i + 1].layer(), Layer::Relu)
                })
                .collect()
        });
        flags[i]
    }
}

/// Encodes the network from the start layer up to (not including) node `stop` at one point,
/// with the reference's activation pattern enforced; returns the expressions of the value
/// `stop` reads last (the network output when `stop` is the node count).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_point(
    model: &mut LpModel,
    edit: &mut Edit,
    net: &Network,
    down: &[bool],
    cache: &mut OpCache,
    p: &EvalPoint,
    stop: usize,
    (max_terms, relu_max_terms): (usize, usize),
) -> Result<Vec<Expr>> {
    let start = edit.start;
    let mut exprs: Vec<Option<Vec<Expr>>> = vec![None; net.nodes().len() + 1];
    let input = |exprs: &[Option<Vec<Expr>>], v: usize| -> Vec<Expr> {
        match &exprs[v] {
            Some(e) => e.clone(),
            None => p.values[v].iter().map(|&c| Expr::constant(c)).collect(),
        }
    };
    for i in start..stop {
        if !down[i] {
            continue;
        }
        let node = &net.nodes()[i];
        let v = node.inputs()[0];
        let out: Vec<Expr> = if i == start {
            let taps = net.affine_taps(i).expect("the start layer is affine");
            let lazy = cache.feeds_relu(net, i);
            let x = &p.values[v];
            let mut out = Vec::with_capacity(taps.rows.len());
            for (row, &b) in taps.rows.iter().zip(&taps.bias) {
                let mut e = edit.bias(model, i, b as usize);
                for &(j, k) in row {
                    let xj = x[j as usize];
                    if xj != 0.0 {
                        e.c += xj * edit.weight(k as usize);
                        match edit.weight_terms(model, k as usize) {
                            (d, None) => e.terms.push((d, xj)),
                            (p, Some(q)) => e.terms.extend([(p, xj), (q, -xj)]),
                        }
                    }
                }
                out.push(if lazy {
                    e
                } else {
                    materialize(model, e, max_terms)
                });
            }
            out
        } else {
            match node.layer() {
                Layer::Linear(_) | Layer::Conv2d(_) | Layer::AvgPool2d(_) | Layer::Rearrange(_) => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = cache.affine.entry(i) {
                        let op = affine_op(net, i)?.expect("affine layer");
                        let bias = net.affine_taps(i).map(|t| t.bias).unwrap_or_default();
                        slot.insert((op, bias));
                    }
                    let lazy = cache.feeds_relu(net, i);
                    let x = input(&exprs, v);
                    let (op, bias_index) = &cache.affine[&i];
                    let mut out = Vec::with_capacity(op.rows.len());
                    for (o, row) in op.rows.iter().enumerate() {
                        let mut e = if bias_index.is_empty() {
                            Expr::constant(op.bias[o])
                        } else {
                            edit.bias(model, i, bias_index[o] as usize)
                        };
                        for &(j, w) in row {
                            e.add_scaled(&x[j as usize], w);
                        }
                        out.push(if lazy {
                            e
                        } else {
                            materialize(model, e, max_terms)
                        });
                    }
                    out
                }
                Layer::BatchNorm(_) | Layer::Elementwise(_) => {
                    if let std::collections::hash_map::Entry::Vacant(slot) =
                        cache.elementwise.entry(i)
                    {
                        slot.insert(elementwise_op(net, i)?.expect("elementwise layer"));
                    }
                    let (a, c) = &cache.elementwise[&i];
                    input(&exprs, v)
                        .iter()
                        .enumerate()
                        .map(|(k, e)| {
                            let mut s = e.scaled(a[k]);
                            s.c += c[k];
                            s
                        })
                        .collect()
                }
                Layer::Relu if p.free_final_relu && i + 1 == net.nodes().len() => input(&exprs, v),
                Layer::Relu => {
                    let x = input(&exprs, v);
                    x.into_iter()
                        .zip(&p.reference[v])
                        .map(|(e, &r)| {
                            if r > 0.0 {
                                let e = materialize(model, e, relu_max_terms);
                                e.ge(model, p.margin);
                                e
                            } else {
                                e.le(model, -p.margin);
                                Expr::constant(0.0)
                            }
                        })
                        .collect()
                }
                Layer::MaxPool2d(pool) => {
                    let x = input(&exprs, v);
                    pool_windows(pool, net.value_shape(v))
                        .iter()
                        .map(|cells| {
                            let a = argmax_cell(&p.reference[v], cells);
                            for &c in cells {
                                if c != a {
                                    let mut d = x[a].clone();
                                    d.add_scaled(&x[c], -1.0);
                                    d.ge(model, 0.0);
                                }
                            }
                            x[a].clone()
                        })
                        .collect()
                }
                Layer::Flatten | Layer::Reshape(_) => input(&exprs, v),
                Layer::Add => {
                    let mut x = input(&exprs, v);
                    let y = input(&exprs, node.inputs()[1]);
                    for (a, b) in x.iter_mut().zip(&y) {
                        a.add_scaled(b, 1.0);
                    }
                    x
                }
                Layer::Sigmoid | Layer::Tanh => return Err(not_piecewise_linear(net, i, "APRNN")),
                Layer::Concat { .. } => concat(net, i, |u| input(&exprs, u)),
                Layer::Opaque(_) => {
                    return Err(netrepair_verify::affine::not_boundable(net, i).into())
                }
            }
        };
        exprs[i + 1] = Some(out);
    }
    let last = if stop == net.nodes().len() {
        net.nodes().len()
    } else {
        net.nodes()[stop].inputs()[0]
    };
    Ok(input(&exprs, last))
}

/// For each unsafe polytope of a case, the constraint whose negation the network is closest
/// to meeting on average over `ys` (so the repair moves the fewest outputs).
pub(crate) fn choose_requirements(
    case: &netrepair_spec::Case,
    ys: &[Vec<f64>],
) -> Vec<Requirement> {
    let choice: Vec<usize> = case
        .unsafe_region
        .iter()
        .map(|poly| {
            let score = |c: &netrepair_spec::LinearConstraint| {
                ys.iter().map(|y| c.slack(y)).sum::<f64>() / ys.len().max(1) as f64
            };
            (0..poly.constraints.len())
                .max_by(|&a, &b| {
                    score(&poly.constraints[a]).total_cmp(&score(&poly.constraints[b]))
                })
                .unwrap_or(0)
        })
        .collect();
    case_requirements(case, &choice)
}

impl Aprnn {
    fn groups(&self, net: &Network, problem: &RepairProblem) -> Result<Vec<Group>> {
        let mut groups = Vec::new();
        for (index, item) in problem.items.iter().enumerate() {
            match item {
                RepairItem::Point { x, requirements } => groups.push(Group {
                    item: index,
                    vertices: vec![x.clone()],
                    centroid: None,
                    requirements: requirements.clone(),
                }),
                RepairItem::Polytope {
                    vertices,
                    requirements,
                } => groups.push(Group {
                    item: index,
                    vertices: vertices.clone(),
                    centroid: Some(centroid(vertices)),
                    requirements: requirements.clone(),
                }),
                RepairItem::Global { .. } => problem.refuse_global("aprnn")?,
                RepairItem::Property { name, property } => {
                    for case in &property.cases {
                        let mut boxes = vec![case.input.clone()];
                        for _ in 0..self.box_splits {
                            boxes = boxes
                                .iter()
                                .flat_map(netrepair_spec::BoxRegion::halve_widest)
                                .collect();
                        }
                        for b in boxes {
                            let free = (0..b.dim()).filter(|&j| b.upper[j] > b.lower[j]).count();
                            if free > self.max_box_dims {
                                return Err(RepairError::Unsupported(format!(
                                    "{name}: a box with {free} free dimensions has 2^{free} corners; APRNN takes at most {} (use --method prepared for high-dimensional boxes)",
                                    self.max_box_dims
                                )));
                            }
                            let vertices = box_vertices(&b);
                            let ys = outputs(net, &vertices)?;
                            groups.push(Group {
                                item: index,
                                requirements: choose_requirements(case, &ys),
                                centroid: Some(b.center()),
                                vertices,
                            });
                        }
                    }
                }
            }
        }
        Ok(groups)
    }

    /// Screens the repair items for what APRNN cannot fix well at this start layer, with the
    /// activation patterns held: a whole ReLU layer inactive (only later biases can move the
    /// item, at a cost to every other input), an all-zero start-layer input (the weight cannot
    /// act), identical start-layer inputs with different requirements (contradictory), and an
    /// output that a final ReLU clamps to 0. Returns notes for people and the items flagged.
    fn screen(
        &self,
        net: &Network,
        groups: &[Group],
        start: usize,
    ) -> Result<(Vec<String>, Vec<usize>)> {
        let down = downstream(net, start);
        let relus: Vec<usize> = (start..net.nodes().len())
            .filter(|&i| down[i] && matches!(net.nodes()[i].layer(), Layer::Relu))
            .collect();
        let last = net.nodes().len() - 1;
        let final_relu = down[last] && matches!(net.nodes()[last].layer(), Layer::Relu);
        let input = net.nodes()[start].inputs()[0];
        let (mut dead, mut zero, mut clamped) = (Vec::new(), Vec::new(), Vec::new());
        let mut clashes: Vec<(usize, usize)> = Vec::new();
        let mut seen: HashMap<Vec<u64>, (usize, &Vec<Requirement>)> = HashMap::new();
        let push = |list: &mut Vec<usize>, item: usize| {
            if list.last() != Some(&item) {
                list.push(item);
            }
        };
        for (g, (vals, reference)) in groups.iter().zip(Self::group_traces(net, groups)?) {
            let v = reference.as_ref().unwrap_or(&vals[0]);
            // A final ReLU that label points skip holds nothing at them.
            let freed = self.final_relu(net, start).is_some()
                && g.centroid.is_none()
                && Requirement::label_of(&g.requirements, net.output_len()).is_some();
            if relus
                .iter()
                .filter(|&&i| !(freed && i == last))
                .any(|&i| v[net.nodes()[i].inputs()[0]].iter().all(|&x| x <= 0.0))
            {
                push(&mut dead, g.item);
            }
            // A final ReLU held inactive keeps an output at 0 and every other output >= 0, so
            // a requirement `sum a_o y_o < rhs <= 0` whose negative-coefficient outputs are all
            // clamped (e.g. "y_7 > y_3" with y_7's logit negative) cannot hold.
            if final_relu && !freed {
                let pre = &v[net.nodes()[last].inputs()[0]];
                if g.requirements.iter().any(|r| {
                    r.strict
                        && r.constraint.rhs <= 0.0
                        && r.constraint
                            .coeffs
                            .iter()
                            .filter(|&&(_, a)| a < 0.0)
                            .all(|&(j, _)| pre[j] <= 0.0)
                }) {
                    push(&mut clamped, g.item);
                }
            }
            if g.centroid.is_some() {
                continue;
            }
            let x = &vals[0][input];
            if x.iter().all(|&v| v == 0.0) {
                push(&mut zero, g.item);
            }
            let key: Vec<u64> = x.iter().map(|v| v.to_bits()).collect();
            match seen.get(&key) {
                Some((other, reqs)) if *reqs != &g.requirements => clashes.push((*other, g.item)),
                Some(_) => {}
                None => {
                    seen.insert(key, (g.item, &g.requirements));
                }
            }
        }
        let list = |items: &[usize]| {
            format!(
                "{:?}{}",
                &items[..items.len().min(10)],
                if items.len() > 10 { " ..." } else { "" }
            )
        };
        let mut notes = Vec::new();
        if !dead.is_empty() {
            notes.push(format!(
                "{} repair item(s) have an entirely inactive ReLU layer after the start layer (items {}): with activation patterns held, only the biases after that layer can change their outputs, which moves every input's outputs (expect drawdown; consider leaving them out or another layer)",
                dead.len(),
                list(&dead)
            ));
        }
        if !zero.is_empty() {
            notes.push(format!(
                "{} repair point(s) reach the start layer with an all-zero input (items {}): its weight cannot act on them, only the biases can",
                zero.len(),
                list(&zero)
            ));
        }
        if !clashes.is_empty() {
            notes.push(format!(
                "{} pair(s) of repair points reach the start layer with identical inputs but different requirements (e.g. items {} and {}): no repair at this layer can separate them",
                clashes.len(),
                clashes[0].0,
                clashes[0].1
            ));
        }
        if !clamped.is_empty() {
            notes.push(format!(
                "{} repair item(s) need an output that the final ReLU '{}' clamps to 0 at them (items {}): with its pattern held, APRNN cannot raise it at any start layer",
                clamped.len(),
                net.nodes()[last].name(),
                list(&clamped)
            ));
        }
        let mut flagged: Vec<usize> = dead
            .into_iter()
            .chain(zero)
            .chain(clamped)
            .chain(clashes.into_iter().map(|(_, b)| b))
            .collect();
        flagged.sort_unstable();
        flagged.dedup();
        Ok((notes, flagged))
    }

    /// Values at every vertex and at every group's pattern source, on `net` (one batched
    /// forward pass over all groups).
    fn group_traces(net: &Network, groups: &[Group]) -> Result<Vec<(Vec<Values>, Option<Values>)>> {
        let xs: Vec<Vec<f64>> = groups
            .iter()
            .flat_map(|g| g.vertices.iter().chain(&g.centroid).cloned())
            .collect();
        let mut all = traces(net, &xs)?.into_iter();
        Ok(groups
            .iter()
            .map(|g| {
                let vals: Vec<Values> = all.by_ref().take(g.vertices.len()).collect();
                let reference = g.centroid.as_ref().map(|_| all.next().expect("centroid"));
                (vals, reference)
            })
            .collect())
    }

    /// Whether the network ends in a ReLU after its last affine layer that
    /// [`Aprnn::free_final_relu`] lets point requirements skip; its node index.
    fn final_relu(&self, net: &Network, start: usize) -> Option<usize> {
        let last = net.nodes().len() - 1;
        (self.free_final_relu
            && last > start
            && downstream(net, start)[last]
            && matches!(net.nodes()[last].layer(), Layer::Relu))
        .then_some(last)
    }

    /// The rows a point's role adds on its output expressions `y` (`y0` their values on the
    /// network being edited): a repair point's requirements (and, when the final ReLU is
    /// passed through, its label's pre-activation above `eps`); a kept point's class held
    /// by its keep margin, each row minus a penalised slack when `keep_mode` is elastic.
    #[allow(clippy::too_many_arguments)]
    fn add_role_rows(
        &self,
        model: &mut LpModel,
        y: &[Expr],
        y0: &[f64],
        free_final_relu: bool,
        role: &Role,
        keep: &KeepSet,
        keep_mode: KeepMode,
        requirement_slack: Option<f64>,
    ) -> Option<Var> {
        let outputs_n = y.len();
        match *role {
            Role::Repair { reqs, .. } => {
                // Elastic (column generation's rounds): every row minus one slack of the
                // point, at cost `requirement_slack`.
                let slack = requirement_slack.map(|cost| model.add_var(0.0, f64::INFINITY, cost));
                let mut rows: Vec<Expr> = reqs
                    .iter()
                    .map(|r| {
                        let mut e = Expr::constant(-r.constraint.rhs);
                        for &(j, a) in &r.constraint.coeffs {
                            e.add_scaled(&y[j], a);
                        }
                        e
                    })
                    .collect();
                if free_final_relu {
                    let c = Requirement::label_of(reqs, outputs_n).expect("a label");
                    rows.push(y[c].scaled(-1.0));
                }
                for mut e in rows {
                    if let Some(s) = slack {
                        e.terms.push((s, -1.0));
                    }
                    e.le(model, -self.lp.eps);
                }
                slack
            }
            Role::Keep(c) => {
                let m = keep.margin_at(y0, c)?;
                // y_j - y_c <= -m for every other j (and y_c >= min(m, y0_c / 2) when a
                // final ReLU is passed through); elastic: minus a penalised slack.
                let slack = (keep_mode == KeepMode::Elastic)
                    .then(|| model.add_var(0.0, f64::INFINITY, self.keep_violation_cost));
                let mut rows: Vec<(Expr, f64)> = (0..outputs_n)
                    .filter(|&j| j != c)
                    .map(|j| {
                        let mut e = y[j].clone();
                        e.add_scaled(&y[c], -1.0);
                        (e, -m)
                    })
                    .collect();
                if free_final_relu {
                    rows.push((y[c].scaled(-1.0), -m.min(y0[c] / 2.0)));
                }
                for (mut e, rhs) in rows {
                    if let Some(s) = slack {
                        e.terms.push((s, -1.0));
                    }
                    e.le(model, rhs);
                }
                None
            }
        }
    }

    /// One LP: edit at `start`, encode every vertex up to `stop`, with requirements, output
    /// deltas and the kept points only when `final_pass` (`keep_mode`: how the kept points'
    /// classes are held). A final pass whose start layer has more weight entries than
    /// `column_generation_above` is solved by column generation first ([`columns`]).
    #[allow(clippy::too_many_arguments)]
    fn pass(
        &self,
        net: &Network,
        problem: &RepairProblem,
        groups: &[Group],
        start: usize,
        stop: usize,
        final_pass: bool,
        keep_mode: KeepMode,
        purpose: String,
        lps: &mut Vec<LpReport>,
        timings: &mut Timings,
        ctx: &RepairContext,
    ) -> Result<Solved> {
        ctx.say(&format!("encoding {purpose}"));
        let encode = |open: Option<&[bool]>, elastic: bool| {
            self.encode(
                net, problem, groups, start, stop, final_pass, keep_mode, open, elastic,
            )
        };
        // The start layer's weight size, from its shape (no copy of the weight).
        let weights: usize = net.nodes()[start].layer().params()[0]
            .dims()
            .iter()
            .product();
        if final_pass && weights > self.lp.column_generation_above {
            let generated = columns::generate(
                net,
                weights,
                |open, elastic| encode(Some(open), elastic),
                &self.lp,
                &purpose,
                lps,
                timings,
                ctx,
            )?;
            if let Some(solved) = generated {
                return Ok(solved);
            }
        }
        let t = Instant::now();
        let RoundLp { model, edit, .. } = encode(None, false)?;
        let encode_s = t.elapsed().as_secs_f64();
        ctx.say(&format!(
            "solving {purpose}: {} rows, {} columns",
            model.num_rows(),
            model.num_vars()
        ));
        solve_edit(
            net, &model, &edit, &self.lp, purpose, encode_s, lps, timings, ctx,
        )
    }

    /// Encodes the LP of a pass; with `open`, only those weight entries of the start layer
    /// may change (a column generation round), and with `elastic` every repair requirement
    /// is elastic.
    #[allow(clippy::too_many_arguments)]
    fn encode(
        &self,
        net: &Network,
        problem: &RepairProblem,
        groups: &[Group],
        start: usize,
        stop: usize,
        final_pass: bool,
        keep_mode: KeepMode,
        open: Option<&[bool]>,
        elastic: bool,
    ) -> Result<RoundLp> {
        let tr = Self::group_traces(net, groups)?;
        let mut model = LpModel::new();
        let mut edit = Edit::new(net, start, self.lp.delta_bound)?;
        if self.lp.split_deltas {
            edit.split_weight_deltas();
        }
        if let Some(open) = open {
            edit.restrict(open.to_vec());
        }
        let mut slacks = Vec::new();
        let down = downstream(net, start);
        let mut cache = OpCache::default();
        let outputs_n = net.output_len();
        let final_relu = if final_pass && stop == net.nodes().len() {
            self.final_relu(net, start)
        } else {
            None
        };
        // The value whose expressions the encoding returns: the final ReLU's input when it is
        // passed through.
        let out_value = |free: bool| match final_relu {
            Some(r) if free => net.nodes()[r].inputs()[0],
            _ => net.nodes().len(),
        };
        let keep = &problem.keep;
        let keep_values = if final_pass && keep_mode != KeepMode::Off && !keep.points.is_empty() {
            traces(net, &keep.points.inputs)?
        } else {
            Vec::new()
        };
        // Every evaluation point: the groups' vertices (requirements only in the final pass)
        // and, in the final pass, the kept points.
        let mut points: Vec<(EvalPoint, Role)> = Vec::new();
        for (g, (vals, reference)) in groups.iter().zip(&tr) {
            if !final_pass && reference.is_none() {
                continue;
            }
            let free = final_relu.is_some()
                && reference.is_none()
                && Requirement::label_of(&g.requirements, outputs_n).is_some();
            for v in vals {
                let p = EvalPoint {
                    values: v,
                    reference: reference.as_ref().unwrap_or(v),
                    margin: if reference.is_some() {
                        self.pattern_margin
                    } else {
                        0.0
                    },
                    free_final_relu: free,
                };
                let role = Role::Repair {
                    reqs: &g.requirements,
                    of_many: vals.len() > 1,
                };
                points.push((p, role));
            }
        }
        for (k, v) in keep_values.iter().enumerate() {
            let p = EvalPoint {
                values: v,
                reference: v,
                margin: 0.0,
                free_final_relu: final_relu.is_some(),
            };
            points.push((p, Role::Keep(keep.points.labels[k])));
        }
        for (p, role) in &points {
            // Short ReLU-output columns only for points: on box vertices they hide from
            // presolve the bound contradictions that decide an infeasible LP (docs/lp.md).
            let relu_terms = match role {
                Role::Repair { of_many: true, .. } => self.lp.max_terms,
                _ => self.lp.relu_max_terms,
            };
            let y = encode_point(
                &mut model,
                &mut edit,
                net,
                &down,
                &mut cache,
                p,
                stop,
                (self.lp.max_terms, relu_terms),
            )?;
            if !final_pass {
                continue;
            }
            let y0 = &p.values[out_value(p.free_final_relu)];
            slacks.extend(self.add_role_rows(
                &mut model,
                &y,
                y0,
                p.free_final_relu,
                role,
                keep,
                keep_mode,
                elastic.then(|| columns::SLACK_COST.max(10.0 * self.keep_violation_cost)),
            ));
            for (e, &o) in y.into_iter().zip(y0) {
                match role {
                    Role::Repair { .. } => edit.add_output_delta(e, o),
                    Role::Keep(_) => edit.add_keep_delta(e, o),
                }
            }
        }
        let l1_cost = edit.set_objective(&mut model, self.keep_objective);
        Ok(RoundLp {
            model,
            edit,
            slacks,
            l1_cost,
        })
    }
}

impl Repair for Aprnn {
    fn name(&self) -> &'static str {
        "aprnn"
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
        let with_synthetic;
        let problem = if self.keep_mixup > 0 && !problem.keep.points.is_empty() {
            with_synthetic = problem
                .clone()
                .with_synthetic_keep(net, self.keep_mixup, 0)?;
            &with_synthetic
        } else {
            problem
        };
        let start = checked_start(net, problem, &self.lp)?;
        let groups = self.groups(net, problem)?;
        let (mut lps, mut timings) = (Vec::new(), Timings::default());
        // Shift passes: make every polytope's vertices share its centroid's pattern before
        // the start layer, editing the affine layer just before the first disagreement.
        let mut current = net.clone();
        let affine = crate::affine_layers(net);
        for _ in 0..affine.len() {
            let tr = Self::group_traces(&current, &groups)?;
            let first = tr
                .iter()
                .filter_map(|(vals, reference)| {
                    let r = reference.as_ref()?;
                    vals.iter()
                        .filter_map(|v| pattern_mismatch(&current, 0..start, v, r))
                        .min()
                })
                .min();
            let Some(first) = first else { break };
            let Some(&j) = affine.iter().rev().find(|&&j| j < first) else {
                return Err(RepairError::Unsupported(format!(
                    "the polytope vertices disagree at node '{}', which no affine layer precedes",
                    net.nodes()[first].name()
                )));
            };
            let purpose = format!("shift pass at '{}'", net.nodes()[j].name());
            match self.pass(
                &current,
                problem,
                &groups,
                j,
                start,
                false,
                KeepMode::Off,
                purpose,
                &mut lps,
                &mut timings,
                ctx,
            )? {
                Solved::Network(n) => current = n,
                other => {
                    return finish(
                        self.name(),
                        APRNN_INFEASIBLE,
                        net,
                        start,
                        problem,
                        other,
                        lps,
                        timings,
                        ctx,
                        started,
                    )
                }
            }
        }
        let (mut notes, flagged) = self.screen(&current, &groups, start)?;
        let end = net.nodes().len();
        let keeping = !problem.keep.points.is_empty();
        // The kept points held (or none kept); when they cannot all be held, first let the LP
        // give up as few of them as it can (elastic), then, if their activation patterns are
        // what blocks, leave them out.
        let attempts = [
            (KeepMode::Hard, "repair LP", None),
            (
                KeepMode::Elastic,
                "repair LP, kept classes elastic",
                Some("kept points cannot all keep their classes while the repair items are fixed at this layer: solved again with each kept point's class constraint elastic (violations penalised), so the LP gives up as few as it can"),
            ),
            (
                KeepMode::Off,
                "repair LP without the keep set",
                Some("with their activation patterns held the kept points still block the repair at this layer: solved again without them"),
            ),
        ];
        let mut solved = Solved::Infeasible;
        for (mode, purpose, why) in attempts {
            if let Some(why) = why {
                if !(keeping && self.soften_keep && matches!(solved, Solved::Infeasible)) {
                    break;
                }
                notes.push(format!("the {} {why}", problem.keep.points.len()));
            }
            solved = self.pass(
                &current,
                problem,
                &groups,
                start,
                end,
                true,
                mode,
                purpose.into(),
                &mut lps,
                &mut timings,
                ctx,
            )?;
        }
        if let Some(r) = self.final_relu(net, start) {
            if groups.iter().any(|g| {
                g.centroid.is_none()
                    && Requirement::label_of(&g.requirements, net.output_len()).is_some()
            }) {
                notes.push(format!(
                    "the network ends in a ReLU ('{}') on its outputs: for labelled points its activation pattern is not held; the LP makes the true class's pre-activation positive and larger than every other, which implies the label after the ReLU",
                    net.nodes()[r].name()
                ));
            }
        }
        let mut out = finish(
            self.name(),
            APRNN_INFEASIBLE,
            net,
            start,
            problem,
            solved,
            lps,
            timings,
            ctx,
            started,
        )?;
        out.notes = notes;
        out.flagged = flagged;
        Ok(out)
    }
}

//! The parameters a provable repair may change, as LP variables (deltas from the original
//! values), the norm objective over them, and writing a solution back into a network.

use std::collections::BTreeMap;

use candle_core::Tensor;
use netrepair_lp::{LpModel, Var};
use netrepair_nn::{Layer, Network, ParamId};
use serde::Serialize;

use crate::error::{RepairError, Result};
use crate::expr::Expr;

/// The edited parameters: the weight of the start layer and the biases of the start layer
/// and of every affine layer downstream of it (APRNN's variable set, shared by PREPARED).
/// Variables are created on first use, so weight entries no repair point touches cost nothing.
pub(crate) struct Edit {
    pub start: usize,
    weight: Vec<f64>,
    weight_vars: Vec<Option<Var>>,
    biases: BTreeMap<usize, (Vec<f64>, Vec<Option<Var>>)>,
    bound: f64,
    /// Output-delta terms of the objective (APRNN): expression minus original value.
    output_deltas: Vec<Expr>,
    /// Output deltas of kept points (see [`KeepObjective`]).
    keep_deltas: Vec<Expr>,
}

impl std::str::FromStr for KeepObjective {
    type Err = RepairError;
    /// `off`, `joint`, `l1` (weight 1) or `l1:W`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            RepairError::Problem(format!(
                "unknown keep objective '{s}' (off, joint, l1, l1:WEIGHT, linf or linf:WEIGHT)"
            ))
        };
        Ok(match s {
            "off" => Self::Off,
            "joint" => Self::Joint,
            "l1" => Self::L1 { weight: 1.0 },
            "linf" => Self::Linf { weight: 1.0 },
            other => {
                let (kind, w) = other.split_once(':').ok_or_else(bad)?;
                let w: f64 = w.parse().map_err(|_| bad())?;
                if !(w >= 0.0 && w.is_finite()) {
                    return Err(bad());
                }
                match kind {
                    "l1" => Self::L1 { weight: w },
                    "linf" => Self::Linf { weight: w },
                    _ => return Err(bad()),
                }
            }
        })
    }
}

/// How the output changes of kept points enter APRNN's objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum KeepObjective {
    /// Not at all (kept points are only held by their constraints).
    Off,
    /// Like the repair points' output deltas: inside the joint `||d||_inf + ||d||_1 / n`.
    Joint,
    /// Their mean absolute change, times `weight`, added to the objective (not in the L-inf
    /// term, so one hard repair point does not license every kept output to move as far).
    L1 {
        /// Weight of the mean absolute change of kept outputs.
        weight: f64,
    },
    /// Their largest absolute change, times `weight`, added to the objective as a separate
    /// L-inf term (with their mean absolute change at weight 1/n as a tie-breaker).
    Linf {
        /// Weight of the largest change of a kept output.
        weight: f64,
    },
}

/// Whether node `i` reads (transitively) the output of node `start`.
pub(crate) fn downstream(net: &Network, start: usize) -> Vec<bool> {
    let mut down = vec![false; net.nodes().len()];
    down[start] = true;
    for i in start + 1..net.nodes().len() {
        down[i] = net.nodes()[i]
            .inputs()
            .iter()
            .any(|&v| v > 0 && down[v - 1]);
    }
    down
}

impl Edit {
    /// Sets up the edit of start node `start` (must be Linear or Conv2d); deltas bounded by
    /// `delta_bound` in absolute value when given.
    pub fn new(net: &Network, start: usize, delta_bound: Option<f64>) -> Result<Self> {
        let node = net
            .nodes()
            .get(start)
            .ok_or_else(|| RepairError::Unsupported(format!("the network has no node {start}")))?;
        if !matches!(node.layer(), Layer::Linear(_) | Layer::Conv2d(_)) {
            return Err(RepairError::Unsupported(format!(
                "node '{}' is a {} layer; the start layer must be Linear (Gemm/MatMul) or Conv",
                node.name(),
                node.layer().kind()
            )));
        }
        let weight = node.layer().params()[0].to_vec()?;
        let down = downstream(net, start);
        let mut biases = BTreeMap::new();
        for (i, n) in net.nodes().iter().enumerate() {
            if down[i] && matches!(n.layer(), Layer::Linear(_) | Layer::Conv2d(_)) {
                let b = n.layer().params()[1].to_vec()?;
                let vars = vec![None; b.len()];
                biases.insert(i, (b, vars));
            }
        }
        Ok(Self {
            start,
            weight_vars: vec![None; weight.len()],
            weight,
            biases,
            bound: delta_bound.unwrap_or(f64::INFINITY),
            output_deltas: Vec::new(),
            keep_deltas: Vec::new(),
        })
    }

    fn var(model: &mut LpModel, slot: &mut Option<Var>, bound: f64) -> Var {
        *slot.get_or_insert_with(|| model.add_var(-bound, bound, 0.0))
    }

    /// Original value of weight entry `k` of the start layer.
    pub fn weight(&self, k: usize) -> f64 {
        self.weight[k]
    }

    /// The delta variable of weight entry `k` of the start layer.
    pub fn weight_var(&mut self, model: &mut LpModel, k: usize) -> Var {
        Self::var(model, &mut self.weight_vars[k], self.bound)
    }

    /// `original + delta` of bias entry `k` of node `node` (must be the start node or an
    /// affine node downstream of it).
    pub fn bias(&mut self, model: &mut LpModel, node: usize, k: usize) -> Expr {
        let bound = self.bound;
        let (b, vars) = self.biases.get_mut(&node).expect("an edited affine node");
        let v = Self::var(model, &mut vars[k], bound);
        Expr {
            c: b[k],
            terms: vec![(v, 1.0)],
        }
    }

    /// Adds `|e - original|` to the objective (APRNN's output deltas).
    pub fn add_output_delta(&mut self, e: Expr, original: f64) {
        let mut d = e;
        d.c -= original;
        self.output_deltas.push(d);
    }

    /// Adds `|e - original|` of a kept point's output to the keep term of the objective.
    pub fn add_keep_delta(&mut self, e: Expr, original: f64) {
        let mut d = e;
        d.c -= original;
        self.keep_deltas.push(d);
    }

    fn all_vars(&self) -> impl Iterator<Item = Var> + '_ {
        self.weight_vars
            .iter()
            .chain(self.biases.values().flat_map(|(_, v)| v.iter()))
            .filter_map(|v| *v)
    }

    /// Sets the objective `||d||_inf + ||d||_1 / n`, `d` stacking every parameter delta and
    /// every output delta (`n` entries in all), plus the kept points' output deltas as `keep`
    /// says.
    pub fn set_objective(&self, model: &mut LpModel, keep: KeepObjective) {
        let vars: Vec<Var> = self.all_vars().collect();
        let joint_keep = if keep == KeepObjective::Joint {
            self.keep_deltas.len()
        } else {
            0
        };
        let n = (vars.len() + self.output_deltas.len() + joint_keep).max(1) as f64;
        let m = model.add_var(0.0, f64::INFINITY, 1.0);
        for v in vars {
            capped_abs(model, &[(v, 1.0)], 0.0, 1.0 / n, m);
        }
        let joint = self
            .output_deltas
            .iter()
            .chain(self.keep_deltas.iter().take(joint_keep));
        for e in joint {
            let mut e = e.clone();
            e.compact();
            capped_abs(model, &e.terms, e.c, 1.0 / n, m);
        }
        match keep {
            KeepObjective::L1 { weight } => {
                let k = self.keep_deltas.len().max(1) as f64;
                for e in &self.keep_deltas {
                    let mut e = e.clone();
                    e.compact();
                    model.add_abs(&e.terms, e.c, weight / k);
                }
            }
            KeepObjective::Linf { weight } if !self.keep_deltas.is_empty() => {
                let mk = model.add_var(0.0, f64::INFINITY, weight);
                for e in &self.keep_deltas {
                    let mut e = e.clone();
                    e.compact();
                    capped_abs(model, &e.terms, e.c, 1.0 / n, mk);
                }
            }
            _ => {}
        }
    }

    /// The network with the solution's deltas applied, every edited parameter rounded to f32
    /// (the precision the exported ONNX file stores), so that what is re-checked is what the
    /// user gets.
    pub fn apply(&self, net: &Network, values: &[f64]) -> Result<Network> {
        let mut out = net.clone();
        let set = |out: &mut Network, id: ParamId, orig: &[f64], vars: &[Option<Var>]| {
            let dims = out.param(id)?.dims().to_vec();
            let new: Vec<f64> = orig
                .iter()
                .zip(vars)
                .map(|(&w, v)| match v.map(|v| values[v.index()]) {
                    // Entries the solution moves are rounded to f32; the rest stay bit-identical.
                    Some(d) if d != 0.0 => (w + d) as f32 as f64,
                    _ => w,
                })
                .collect();
            let dev = candle_core::Device::Cpu;
            let t = Tensor::from_vec(new, dims, &dev).map_err(netrepair_nn::NnError::from)?;
            out.set_param(id, t)?;
            Ok::<_, RepairError>(())
        };
        if self.weight_vars.iter().any(Option::is_some) {
            let id = ParamId {
                node: self.start,
                slot: 0,
            };
            set(&mut out, id, &self.weight, &self.weight_vars)?;
        }
        for (&node, (b, vars)) in &self.biases {
            if vars.iter().any(Option::is_some) {
                set(&mut out, ParamId { node, slot: 1 }, b, vars)?;
            }
        }
        Ok(out)
    }
}

/// How much one parameter tensor changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamChange {
    /// The parameter's name (the ONNX initializer name for imported networks).
    pub param: String,
    /// The node it belongs to.
    pub node: String,
    /// Sum of absolute changes.
    pub l1: f64,
    /// Largest absolute change.
    pub linf: f64,
    /// Entries that changed.
    pub changed: usize,
    /// Entries in all.
    pub entries: usize,
}

/// Per-parameter changes between two networks of the same architecture (only parameters that
/// changed are listed).
pub fn param_changes(before: &Network, after: &Network) -> Result<Vec<ParamChange>> {
    let mut out = Vec::new();
    for id in before.param_ids() {
        let (a, b) = (before.param(id)?, after.param(id)?);
        let (x, y) = (a.to_vec()?, b.to_vec()?);
        let mut c = ParamChange {
            param: a.name().to_string(),
            node: before.nodes()[id.node].name().to_string(),
            l1: 0.0,
            linf: 0.0,
            changed: 0,
            entries: x.len(),
        };
        for (u, v) in x.iter().zip(&y) {
            let d = (v - u).abs();
            if d > 0.0 {
                c.changed += 1;
                c.l1 += d;
                c.linf = c.linf.max(d);
            }
        }
        if c.changed > 0 {
            out.push(c);
        }
    }
    Ok(out)
}

/// `|e| <= cap` with `|e|` costing `cost`, where `e = sum terms + constant`: written as
/// `e = p - q` (one row), `p + q <= cap` (one row), `p, q >= 0` costing `cost` each. At an
/// optimum `p + q = |e|`, so this is `t >= |e|, t <= cap` (three rows) with one row less:
/// APRNN's 3x100 LP solves 30% faster (44 s -> 31 s, `docs/lp.md`).
fn capped_abs(model: &mut LpModel, terms: &[(Var, f64)], constant: f64, cost: f64, cap: Var) {
    let p = model.add_var(0.0, f64::INFINITY, cost);
    let q = model.add_var(0.0, f64::INFINITY, cost);
    let mut row = terms.to_vec();
    row.extend([(p, -1.0), (q, 1.0)]);
    model.add_eq(&row, -constant);
    model.add_le(&[(p, 1.0), (q, 1.0), (cap, -1.0)], 0.0);
}

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
    /// Which weight entries may change (`None`: all). A closed entry's delta is a column fixed
    /// at 0 with no norm terms: the LP keeps its original value and, at an optimum, prices it
    /// (column generation, `columns.rs`).
    open: Option<Vec<bool>>,
    /// The weight entries' deltas as `p - q` (`p, q >= 0`, in `weight_pairs`) written into
    /// the rows directly, when `split`: no delta column and no `d = p - q` row per entry.
    split: bool,
    weight_pairs: Vec<Option<(Var, Var)>>,
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
                "unknown keep objective '{s}' (off, joint, l1[:WEIGHT], linf[:WEIGHT] or moments[:WEIGHT])"
            ))
        };
        Ok(match s {
            "off" => Self::Off,
            "joint" => Self::Joint,
            "l1" => Self::L1 { weight: 1.0 },
            "linf" => Self::Linf { weight: 1.0 },
            "moments" => Self::Moments { weight: 1.0 },
            other => {
                let (kind, w) = other.split_once(':').ok_or_else(bad)?;
                let w: f64 = w.parse().map_err(|_| bad())?;
                if !(w >= 0.0 && w.is_finite()) {
                    return Err(bad());
                }
                match kind {
                    "l1" => Self::L1 { weight: w },
                    "linf" => Self::Linf { weight: w },
                    "moments" => Self::Moments { weight: w },
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
    /// Their root-mean-square change over all kept points, bounded from above and added
    /// times `weight`: each kept output's change is a linear form `a . d` in the deltas, so
    /// `mean (a . d)^2 = d' G d` with `G` the second-moment matrix of the forms; with
    /// `G = sum_k s_k u_k u_k'`, `sum_k sqrt(s_k) |u_k . d|` bounds the RMS change and is
    /// linear. One row per principal direction instead of one per kept output, so large keep
    /// sets cost little (for the last layer: at most (inputs + 1) rows per output). Groups of
    /// outputs sharing no delta get their own `G`; a group of more than
    /// [`MOMENTS_MAX_VARS`] deltas falls back to the mean absolute change.
    Moments {
        /// Weight of the bound on the kept outputs' RMS change.
        weight: f64,
    },
}

/// Largest group of deltas [`KeepObjective::Moments`] builds a second-moment matrix over.
pub const MOMENTS_MAX_VARS: usize = 1500;

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

/// The values of concatenation node `node` from its inputs' values (each input read once):
/// what every encoding (linear expressions, intervals) does at a `Concat`.
pub(crate) fn concat<T: Clone>(
    net: &Network,
    node: usize,
    mut input: impl FnMut(usize) -> Vec<T>,
) -> Vec<T> {
    let parts: std::collections::HashMap<usize, Vec<T>> = net.nodes()[node]
        .inputs()
        .iter()
        .map(|&u| (u, input(u)))
        .collect();
    net.concat_sources(node)
        .expect("a concatenation")
        .into_iter()
        .map(|(u, j)| parts[&u][j].clone())
        .collect()
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
            open: None,
            split: false,
            weight_pairs: vec![None; weight.len()],
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

    /// `original + delta` of weight entry `k` of the start layer.
    pub fn weight_expr(&mut self, model: &mut LpModel, k: usize) -> Expr {
        Expr {
            c: self.weight[k],
            terms: vec![(self.weight_var(model, k), 1.0)],
        }
    }

    /// The delta variable of weight entry `k` of the start layer.
    pub fn weight_var(&mut self, model: &mut LpModel, k: usize) -> Var {
        debug_assert!(
            !self.split,
            "split deltas have no single column (weight_terms)"
        );
        let bound = self.entry_bound(k);
        Self::var(model, &mut self.weight_vars[k], bound)
    }

    /// The terms of weight entry `k`'s delta: `(d, None)` for a delta column `d`, or `(p, Some(q))`
    /// for `p - q` when the deltas are split.
    pub fn weight_terms(&mut self, model: &mut LpModel, k: usize) -> (Var, Option<Var>) {
        if !self.split {
            return (self.weight_var(model, k), None);
        }
        let bound = self.entry_bound(k);
        let (p, q) = *self.weight_pairs[k].get_or_insert_with(|| {
            (
                model.add_var(0.0, bound, 0.0),
                model.add_var(0.0, bound, 0.0),
            )
        });
        (p, Some(q))
    }

    /// The bound on weight entry `k`'s delta: 0 when it is closed.
    fn entry_bound(&self, k: usize) -> f64 {
        match &self.open {
            Some(open) if !open[k] => 0.0,
            _ => self.bound,
        }
    }

    /// Writes each weight entry's delta as `p - q` into the rows (call before encoding): one
    /// column and one row less per entry than a delta column tied to `p - q` by a row, for
    /// twice the non-zeros where the entry appears. APRNN's 3x100 fog LP: 29,894 -> 24,194
    /// rows, 18.1-18.4 s -> 15.4-16.0 s, the same optimum (docs/lp.md).
    pub fn split_weight_deltas(&mut self) {
        self.split = true;
    }

    /// Lets only the weight entries `open` marks change (call before encoding).
    pub fn restrict(&mut self, open: Vec<bool>) {
        debug_assert_eq!(open.len(), self.weight.len());
        self.open = Some(open);
    }

    /// The closed weight entries some point touches, with their (fixed) delta columns (with
    /// split deltas, the `p` column: `q`'s reduced cost is its negative).
    pub fn closed_weight_vars(&self) -> impl Iterator<Item = (usize, Var)> + '_ {
        let open = self.open.as_deref();
        self.weight_vars
            .iter()
            .zip(&self.weight_pairs)
            .enumerate()
            .filter(move |&(k, _)| open.is_some_and(|o| !o[k]))
            .filter_map(|(k, (v, pq))| v.or(pq.map(|(p, _)| p)).map(|v| (k, v)))
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

    /// Every delta variable that may move (closed weight entries left out).
    fn all_vars(&self) -> impl Iterator<Item = Var> + '_ {
        let open = self.open.as_deref();
        self.weight_vars
            .iter()
            .enumerate()
            .filter(move |&(k, _)| open.is_none_or(|o| o[k]))
            .map(|(_, v)| v)
            .chain(self.biases.values().flat_map(|(_, v)| v.iter()))
            .filter_map(|v| *v)
    }

    /// Number of editable parameter entries: the start layer's whole weight and every edited
    /// bias, whether or not a repair point touches them.
    fn entries(&self) -> usize {
        self.weight.len() + self.biases.values().map(|(b, _)| b.len()).sum::<usize>()
    }

    /// Sets the objective `||d||_inf + ||d||_1 / n`, `d` stacking every parameter delta and
    /// every output delta, plus the kept points' output deltas as `keep` says. `n` counts every
    /// editable parameter entry, also those no point touches (their delta is 0 and has no
    /// variable), as APRNN's reference normalises over whole tensors: counting only the
    /// touched entries would weigh the L1 term more on networks with sparse activations.
    /// Returns `1 / n`, the L1 cost of each delta.
    pub fn set_objective(&self, model: &mut LpModel, keep: KeepObjective) -> f64 {
        let vars: Vec<Var> = self.all_vars().collect();
        let joint_keep = if keep == KeepObjective::Joint {
            self.keep_deltas.len()
        } else {
            0
        };
        let n = (self.entries() + self.output_deltas.len() + joint_keep).max(1) as f64;
        let m = model.add_var(0.0, f64::INFINITY, 1.0);
        for v in vars {
            capped_abs(model, &[(v, 1.0)], 0.0, 1.0 / n, m);
        }
        let open = self.open.as_deref();
        for (k, pq) in self.weight_pairs.iter().enumerate() {
            if let (Some((p, q)), true) = (pq, open.is_none_or(|o| o[k])) {
                model.set_cost(*p, 1.0 / n);
                model.set_cost(*q, 1.0 / n);
                model.add_le(&[(*p, 1.0), (*q, 1.0), (m, -1.0)], 0.0);
            }
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
            KeepObjective::Moments { weight } => {
                moments_objective(model, &self.keep_deltas, weight)
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
        1.0 / n
    }

    /// The network with the solution's deltas applied, every edited parameter rounded to f32
    /// (the precision the exported ONNX file stores), so that what is re-checked is what the
    /// user gets.
    pub fn apply(&self, net: &Network, values: &[f64]) -> Result<Network> {
        let mut out = net.clone();
        // `deltas`: each entry's delta in the solution, `None` for entries without a variable.
        let set = |out: &mut Network, id: ParamId, orig: &[f64], deltas: Vec<Option<f64>>| {
            let dims = out.param(id)?.dims().to_vec();
            let new: Vec<f64> = orig
                .iter()
                .zip(deltas)
                .map(|(&w, d)| match d {
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
        let of = |vars: &[Option<Var>]| -> Vec<Option<f64>> {
            vars.iter().map(|v| v.map(|v| values[v.index()])).collect()
        };
        let weight = if self.split {
            self.weight_pairs
                .iter()
                .map(|pq| pq.map(|(p, q)| values[p.index()] - values[q.index()]))
                .collect()
        } else {
            of(&self.weight_vars)
        };
        if weight.iter().any(Option::is_some) {
            let id = ParamId {
                node: self.start,
                slot: 0,
            };
            set(&mut out, id, &self.weight, weight)?;
        }
        for (&node, (b, vars)) in &self.biases {
            if vars.iter().any(Option::is_some) {
                set(&mut out, ParamId { node, slot: 1 }, b, of(vars))?;
            }
        }
        Ok(out)
    }
}

/// [`KeepObjective::Moments`]: the kept outputs' changes `deltas` are grouped by the
/// variables they share (union-find); per group, `weight / groups * sum_k sqrt(s_k) |u_k . d|`
/// over the eigenpairs of the group's second-moment matrix (directions with `s_k` below
/// `1e-10 s_max` dropped), or the mean absolute change when the group is too large.
fn moments_objective(model: &mut LpModel, deltas: &[Expr], weight: f64) {
    if deltas.is_empty() || weight == 0.0 {
        return;
    }
    let forms: Vec<Vec<(Var, f64)>> = deltas
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.compact();
            e.terms
        })
        .filter(|t| !t.is_empty())
        .collect();
    // Union-find over variable indices.
    let mut parent: std::collections::HashMap<usize, usize> = Default::default();
    fn find(p: &mut std::collections::HashMap<usize, usize>, v: usize) -> usize {
        let mut r = v;
        while let Some(&q) = p.get(&r) {
            if q == r {
                break;
            }
            r = q;
        }
        p.insert(v, r);
        r
    }
    for f in &forms {
        let first = f[0].0.index();
        parent.entry(first).or_insert(first);
        for &(v, _) in &f[1..] {
            parent.entry(v.index()).or_insert(v.index());
            let (a, b) = (find(&mut parent, first), find(&mut parent, v.index()));
            if a != b {
                parent.insert(b, a);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<&Vec<(Var, f64)>>> = BTreeMap::new();
    for f in &forms {
        let root = find(&mut parent, f[0].0.index());
        groups.entry(root).or_default().push(f);
    }
    let share = weight / groups.len() as f64;
    for forms in groups.values() {
        let mut vars: Vec<Var> = forms
            .iter()
            .flat_map(|f| f.iter().map(|&(v, _)| v))
            .collect();
        vars.sort_unstable_by_key(|v| v.index());
        vars.dedup();
        if vars.len() > MOMENTS_MAX_VARS {
            let k = forms.len() as f64;
            for f in forms {
                model.add_abs(f, 0.0, share / k);
            }
            continue;
        }
        let pos: std::collections::HashMap<usize, usize> = vars
            .iter()
            .enumerate()
            .map(|(i, v)| (v.index(), i))
            .collect();
        let n = vars.len();
        let mut g = nalgebra::DMatrix::<f64>::zeros(n, n);
        for f in forms {
            for &(v, a) in f.iter() {
                for &(w, b) in f.iter() {
                    g[(pos[&v.index()], pos[&w.index()])] += a * b;
                }
            }
        }
        g /= forms.len() as f64;
        let eig = nalgebra::SymmetricEigen::new(g);
        let smax = eig.eigenvalues.iter().copied().fold(0.0, f64::max);
        for (k, &sk) in eig.eigenvalues.iter().enumerate() {
            if sk <= 1e-10 * smax {
                continue;
            }
            let scale = sk.sqrt();
            let terms: Vec<(Var, f64)> = vars
                .iter()
                .enumerate()
                .map(|(i, &v)| (v, scale * eig.eigenvectors[(i, k)]))
                .filter(|&(_, a)| a != 0.0)
                .collect();
            model.add_abs(&terms, 0.0, share);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_objectives_parse_with_and_without_weights() {
        let p = |s: &str| s.parse::<KeepObjective>();
        assert_eq!(p("off").unwrap(), KeepObjective::Off);
        assert_eq!(p("joint").unwrap(), KeepObjective::Joint);
        assert_eq!(p("linf").unwrap(), KeepObjective::Linf { weight: 1.0 });
        assert_eq!(p("l1:0.5").unwrap(), KeepObjective::L1 { weight: 0.5 });
        assert_eq!(
            p("moments:3").unwrap(),
            KeepObjective::Moments { weight: 3.0 }
        );
        for bad in [
            "",
            "moments:",
            "moments:-1",
            "moments:nan",
            "l2",
            "linf:inf",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_moments_objective_is_the_rms_change_bound_of_hand_computed_forms() {
        // Two kept outputs' changes `d0` and `2 d1` (one group once a third form links them):
        // with `0 * d0 + 0 * d1` linking, G = diag(1/3, 4/3) over three forms, so the
        // objective is sqrt(1/3) |d0| + sqrt(4/3) |d1|: at d0 = 1, d1 = 2 it is 2.8868.
        let mut m = LpModel::new();
        let d0 = m.add_var(1.0, 10.0, 0.0);
        let d1 = m.add_var(2.0, 10.0, 0.0);
        let form = |terms: Vec<(Var, f64)>| Expr { c: 0.0, terms };
        let forms = vec![
            form(vec![(d0, 1.0)]),
            form(vec![(d1, 2.0)]),
            form(vec![(d0, 1e-300), (d1, 1e-300)]),
        ];
        moments_objective(&mut m, &forms, 1.0);
        let s = m
            .solve(netrepair_lp::Sense::Minimise, &Default::default())
            .unwrap();
        let netrepair_lp::Outcome::Optimal { objective, .. } = s.outcome else {
            panic!("{:?}", s.outcome)
        };
        let want = (1.0f64 / 3.0).sqrt() + 2.0 * (4.0f64 / 3.0).sqrt();
        assert!((objective - want).abs() < 1e-7, "{objective} vs {want}");
        // Unlinked, the two forms are two groups sharing the weight: (|d0| + 2 |d1|) / 2.
        let mut m = LpModel::new();
        let d0 = m.add_var(1.0, 10.0, 0.0);
        let d1 = m.add_var(2.0, 10.0, 0.0);
        moments_objective(&mut m, &[form(vec![(d0, 1.0)]), form(vec![(d1, 2.0)])], 1.0);
        let s = m
            .solve(netrepair_lp::Sense::Minimise, &Default::default())
            .unwrap();
        let netrepair_lp::Outcome::Optimal { objective, .. } = s.outcome else {
            panic!("{:?}", s.outcome)
        };
        assert!((objective - 2.5).abs() < 1e-7, "{objective}");
    }
}

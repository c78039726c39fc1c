//! MM repair, seed 001's third baseline (Goldberger, Katz, Adi and Keshet, "Minimal
//! Modifications of Deep Neural Networks using Verification", LPAR 2020): the smallest change
//! of the last layer's weight, in L-inf (or L1), that classifies every repair point as
//! labelled.
//!
//! Found as the original finds it: a **binary search on the bound** `e`, each step asking
//! whether some change with `||dW|| <= e` classifies every point right. With only the last
//! layer changing, the question is linear in `dW` (the hidden values `h` are fixed), so each
//! step is an LP feasibility problem here (a Marabou query there). The search brackets the
//! minimal bound to `tolerance` (relative), and the answer is the change of least L1 norm
//! within the bound found. The exact minimum, one LP minimising `e` directly, is reported
//! beside it as a check on the search.
//!
//! For a point with label `c` the requirement is `z'_c - z'_j >= margin` for every `j != c`,
//! with `z' = (W + dW) h + b`. Kept points (the problem's keep set), when the original network
//! classifies them right, must keep winning by `min(original margin / 2, tau)`, as in APRNN;
//! the published baseline has none, so a problem without a keep set is the baseline exactly.

use std::time::Instant;

use candle_core::{Device, Tensor};
use netrepair_lp::{LpModel, Method, Outcome, Sense, SolveOptions, Var};
use netrepair_nn::{Layer, Network, NnError, ParamId};
use serde::Serialize;

use crate::error::{rule, RepairError, Result};
use crate::outcome::{EditedLayer, LpReport, RepairOutcome, RepairStatus, Timings};
use crate::problem::RepairProblem;
use crate::recheck::timed_recheck;
use crate::reglo::WeightNorm;
use crate::trace::traces;
use crate::{Repair, RepairContext};

/// MM repair (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Mm {
    /// The norm of the change: L-inf by default (the public code's LP variant), or L1 (its
    /// binary search bounds `sum |dW| <= e`); the least-L1 change within the bound is applied
    /// either way.
    pub norm: WeightNorm,
    /// The search starts from `[0, max_bound]`; no change within it is a failure.
    pub max_bound: f64,
    /// The search stops when the bracket is narrower than this fraction of its upper end.
    pub tolerance: f64,
    /// Logit margin by which a repaired point's class must win.
    pub margin: f64,
    /// Cap of the margin a kept point keeps (`min(original / 2, tau)`); `None`: the keep set's.
    pub keep_tau: Option<f64>,
    /// LP algorithm.
    pub lp_method: Method,
    /// Wall-clock limit of each LP.
    pub lp_time_limit: Option<std::time::Duration>,
}

impl Default for Mm {
    fn default() -> Self {
        Self {
            norm: WeightNorm::Linf,
            max_bound: 10.0,
            tolerance: 1e-3,
            margin: 1e-4,
            keep_tau: None,
            lp_method: Method::Simplex,
            lp_time_limit: None,
        }
    }
}

/// One requirement row: `sum_k (dW_c,k - dW_j,k) h_k >= rhs`.
struct Row {
    c: usize,
    j: usize,
    h: Vec<f64>,
    rhs: f64,
}

/// What the search did (in the outcome's notes and LP reports).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MmSearch {
    /// The bound found (upper end of the final bracket).
    pub bound: f64,
    /// The exact minimal bound (one LP).
    pub exact: f64,
    /// Feasibility questions asked.
    pub steps: usize,
}

impl Mm {
    /// Checks the settings, naming the first rule broken.
    pub fn check(&self) -> Result<()> {
        rule::positive("max_bound", self.max_bound)?;
        rule::open_unit("tolerance", self.tolerance)?;
        rule::non_negative("margin", self.margin)?;
        if let Some(tau) = self.keep_tau {
            rule::non_negative("keep_tau", tau)?;
        }
        Ok(())
    }

    /// The LP over `dW` with every row; `bound`: `Some(e)` limits the change to `e` (and
    /// minimises its L1 norm), `None` makes `e` a variable and minimises it.
    fn lp(&self, rows: &[Row], outputs: usize, hidden: usize, bound: Option<f64>) -> LpModel {
        let mut m = LpModel::new();
        let (lim, cost) = match (bound, self.norm) {
            (Some(e), WeightNorm::Linf) => (e, 1.0),
            _ => (f64::INFINITY, if bound.is_some() { 1.0 } else { 0.0 }),
        };
        // dW = p - n, p, n >= 0: |dW| = p + n at an optimum.
        let dw: Vec<(Var, Var)> = (0..outputs * hidden)
            .map(|_| (m.add_var(0.0, lim, cost), m.add_var(0.0, lim, cost)))
            .collect();
        match (bound, self.norm) {
            (Some(e), WeightNorm::L1) => {
                let all: Vec<(Var, f64)> =
                    dw.iter().flat_map(|&(p, n)| [(p, 1.0), (n, 1.0)]).collect();
                m.add_le(&all, e);
            }
            (None, norm) => {
                let e = m.add_var(0.0, f64::INFINITY, 1.0);
                match norm {
                    WeightNorm::Linf => {
                        for &(p, n) in &dw {
                            m.add_le(&[(p, 1.0), (e, -1.0)], 0.0);
                            m.add_le(&[(n, 1.0), (e, -1.0)], 0.0);
                        }
                    }
                    WeightNorm::L1 => {
                        let mut all: Vec<(Var, f64)> =
                            dw.iter().flat_map(|&(p, n)| [(p, 1.0), (n, 1.0)]).collect();
                        all.push((e, -1.0));
                        m.add_le(&all, 0.0);
                    }
                }
            }
            (Some(_), WeightNorm::Linf) => {}
        }
        for r in rows {
            let mut t = Vec::with_capacity(4 * hidden);
            for (k, &v) in r.h.iter().enumerate() {
                if v != 0.0 {
                    let (pc, nc) = dw[r.c * hidden + k];
                    let (pj, nj) = dw[r.j * hidden + k];
                    t.extend([(pc, v), (nc, -v), (pj, -v), (nj, v)]);
                }
            }
            m.add_ge(&t, r.rhs);
        }
        m
    }
}

impl Repair for Mm {
    fn name(&self) -> &'static str {
        "mm"
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
        let outputs = net.output_len();
        let last = net.nodes().len() - 1;
        let node = &net.nodes()[last];
        let Layer::Linear(_) = node.layer() else {
            return Err(RepairError::Unsupported(format!(
                "MM repair changes the last layer's weight, which must be Linear; node '{}' is {}",
                node.name(),
                node.layer().kind()
            )));
        };
        let wid = ParamId {
            node: last,
            slot: 0,
        };
        let w0 = net.param(wid)?.to_vec()?;
        let hidden = w0.len() / outputs;
        let reads = node.inputs()[0];
        let (point_xs, point_labels) = problem.labelled_points(outputs).ok_or_else(|| {
            RepairError::Unsupported(
                "MM repair fixes labelled points only (every item a point with one label)".into(),
            )
        })?;
        let tau = self.keep_tau.unwrap_or(problem.keep.tau);
        let n_points = point_xs.len();
        let xs: Vec<Vec<f64>> = point_xs
            .into_iter()
            .chain(problem.keep.points.inputs.iter().cloned())
            .collect();
        let vals = traces(net, &xs)?;
        let mut rows = Vec::new();
        let mut kept = 0;
        for (i, v) in vals.iter().enumerate() {
            let (h, z) = (&v[reads], &v[last + 1]);
            if h.len() != hidden {
                return Err(RepairError::Unsupported(format!(
                    "the last layer reads {} values, its weight expects {hidden}",
                    h.len()
                )));
            }
            let (c, need) = if i < n_points {
                (point_labels[i], None)
            } else {
                let c = problem.keep.points.labels[i - n_points];
                let m = (0..outputs)
                    .filter(|&j| j != c)
                    .map(|j| z[c] - z[j])
                    .fold(f64::INFINITY, f64::min);
                if m <= 0.0 {
                    continue; // a kept point the network gets wrong has nothing to keep
                }
                kept += 1;
                (c, Some((m / 2.0).min(tau)))
            };
            for j in (0..outputs).filter(|&j| j != c) {
                let want = need.unwrap_or(self.margin);
                rows.push(Row {
                    c,
                    j,
                    h: h.clone(),
                    rhs: want - (z[c] - z[j]),
                });
            }
        }
        let opts = SolveOptions {
            method: self.lp_method,
            time_limit: self.lp_time_limit,
            ..SolveOptions::default()
        };
        let mut lps = Vec::new();
        let mut timings = Timings::default();
        let mut ask = |bound: Option<f64>, purpose: String| -> Result<Option<(f64, Vec<f64>)>> {
            let t = Instant::now();
            let m = self.lp(&rows, outputs, hidden, bound);
            let encode_s = t.elapsed().as_secs_f64();
            ctx.dump_lp(&m, Sense::Minimise, &purpose)?;
            let sol = m.solve(Sense::Minimise, &opts)?;
            let what = sol.outcome.describe();
            let res = match sol.outcome {
                Outcome::Optimal {
                    objective,
                    ref values,
                } => {
                    let dw: Vec<f64> = (0..outputs * hidden)
                        .map(|k| values[2 * k] - values[2 * k + 1])
                        .collect();
                    Some((objective, dw))
                }
                Outcome::Infeasible | Outcome::Unbounded => None,
                _ => return Err(RepairError::Problem(format!("MM's LP: {what}"))),
            };
            let r = LpReport::new(purpose, &what, &sol, encode_s);
            timings.add_lp(&r);
            lps.push(r);
            Ok(res)
        };
        ctx.say("MM: is there a change within the largest bound?");
        let top = ask(Some(self.max_bound), format!("bound {}", self.max_bound))?;
        let exact = ask(None, "exact minimal bound".into())?.map(|(e, _)| e);
        let (search, best) = match top {
            None => (None, None),
            Some(first) => {
                let (mut lo, mut hi, mut best, mut steps) = (0.0, self.max_bound, first.1, 1);
                while hi - lo > self.tolerance * hi && steps < 80 {
                    let mid = 0.5 * (lo + hi);
                    steps += 1;
                    match ask(Some(mid), format!("bound {mid:.6}"))? {
                        Some((_, dw)) => {
                            hi = mid;
                            best = dw;
                        }
                        None => lo = mid,
                    }
                }
                let s = MmSearch {
                    bound: hi,
                    exact: exact.unwrap_or(f64::NAN),
                    steps,
                };
                (Some(s), Some(best))
            }
        };
        let Some(dw) = best else {
            return Err(RepairError::Problem(format!(
                "no change of the last layer's weight within {:?} norm {} classifies every repair point{} as required (the LP is infeasible)",
                self.norm,
                self.max_bound,
                if kept > 0 { " and keeps every kept point" } else { "" }
            )));
        };
        let search = search.expect("set with best");
        let w: Vec<f64> = w0
            .iter()
            .zip(&dw)
            .map(|(&w, &d)| if d == 0.0 { w } else { (w + d) as f32 as f64 })
            .collect();
        let mut after = net.clone();
        let t = Tensor::from_vec(w, (outputs, hidden), &Device::Cpu).map_err(NnError::from)?;
        after.set_param(wid, t)?;
        let re = timed_recheck(net, &after, problem, ctx)?;
        timings.recheck_s = re.seconds;
        let message = format!(
            "{} of {} repair points fixed by a last-layer change of {:?} norm {:.6} (binary search in {} steps; exact minimum {:.6}){}",
            re.ok,
            problem.items.len(),
            self.norm,
            search.bound,
            search.steps,
            search.exact,
            if kept > 0 {
                format!(", {kept} kept points held")
            } else {
                String::new()
            }
        );
        let status = RepairStatus::of_items(&re.items);
        let mut out = RepairOutcome::new(
            net,
            after,
            self.name(),
            EditedLayer::Node(last),
            status,
            message,
            re.items,
            started,
        )?;
        out.timings = timings;
        out.lp = lps;
        out.notes = vec![format!(
            "binary search on the bound: {:.6} after {} feasibility LPs (tolerance {}); the exact minimum by one LP is {:.6}",
            search.bound, search.steps, self.tolerance, search.exact
        )];
        out.keep = re.keep;
        Ok(out)
    }
}

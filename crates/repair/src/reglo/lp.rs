//! REGLO's repair LPs: the paper's min-change LP over the areas' dual certificates and our
//! scale-aware LP by cutting planes.

use std::time::Instant;

use netrepair_lp::{LpModel, Outcome, Sense, SolveOptions, Var};
use netrepair_spec::{BoxRegion, GlobalProperty};
use netrepair_verify::TwinBounds;
use rayon::prelude::*;

use crate::error::Result;
use crate::outcome::LpReport;
use crate::RepairContext;

use super::areas::Area;
use super::params::{argmax, Reglo, WeightNorm};

/// A solved LP: the new last layer (f32-rounded) and what it is made of.
#[derive(Debug, Clone)]
pub(super) struct Solved {
    /// `lambda W + dW`.
    pub(super) w: Vec<f64>,
    /// `lambda b + db` (`b` when the bias is not a variable).
    pub(super) b: Vec<f64>,
    /// The LP's objective.
    pub(super) objective: f64,
    /// `lambda` (1 for the min-change LP).
    pub(super) lambda: f64,
    /// `||dW||_1`.
    pub(super) dw_l1: f64,
    /// `||db||_1`.
    pub(super) db_l1: f64,
}

/// What the repair LP is built from.
#[derive(Clone, Copy)]
pub(super) struct LpInput<'a> {
    pub(super) areas: &'a [Area],
    pub(super) props: &'a [&'a GlobalProperty],
    /// Kept points: last hidden layer and original outputs.
    pub(super) keep: &'a [(Vec<f64>, Vec<f64>)],
    pub(super) w0: &'a [f64],
    pub(super) b0: &'a [f64],
    pub(super) outputs: usize,
    pub(super) hidden: usize,
}

impl Reglo {
    /// Builds and solves the repair LP over all areas; the new last layer (f32-rounded) and
    /// the LP's report, or `None` when the solver gave no solution.
    pub(super) fn solve(
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
    pub(super) fn solve_scale(
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

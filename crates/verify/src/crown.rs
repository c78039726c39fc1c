//! Linear bounds by back-substitution (CROWN / DeepPoly style) over the network DAG.
//!
//! To bound rows `Λ · v` of a value `v` from above, the coefficients are pushed backwards
//! through the nodes that produced `v`: affine layers multiply them by their weights; a ReLU
//! with pre-activation bounds `[l, u]` crossing zero is replaced by its upper relaxation
//! `u (x - l) / (u - l)` where the coefficient is positive and by `α x` (α = 1 if `u > -l`,
//! else 0) where it is negative; Sigmoid and Tanh by chord and tangent lines on one-signed
//! intervals (see [`relaxation`]); MaxPool by its output interval (a constant relaxation:
//! sound, looser than a linear one). At the input the
//! coefficients are concretised over the box. Lower bounds are minus the upper bounds of `-Λ`.
//!
//! Soundness in floating point: each step adds `gamma(n) * sum |Λ| |W| max|x|` (with `max|x|`
//! from the interval bounds) to the row's constant, bounding the rounding of the coefficient
//! products; the relaxation slopes and intercepts are rounded outward; the final sum is
//! rounded up. Every value's bounds are intersected with the interval bounds, so they are never
//! looser.

use netrepair_nn::{Layer, Network};
use netrepair_spec::BoxRegion;

use std::sync::OnceLock;

use crate::affine::{dense_dot, not_boundable, sparse_dot, Ops};
use crate::error::Result;
use crate::interval::{interval_bounds, propagate_with, Bounds};
use crate::rounding::{gamma, up};
use netrepair_nn::AffineOp;

/// Linear bounds `lower_slope x + lower_intercept <= f(x) <= upper_slope x + upper_intercept`
/// of an activation on its pre-activation interval.
pub(crate) struct Relax {
    upper_slope: f64,
    upper_intercept: f64,
    lower_slope: f64,
    lower_intercept: f64,
}

/// The relaxation of ReLU, Sigmoid or Tanh on `[l, u]` (`fl`, `fu`: sound bounds of the output).
/// ReLU: identity or zero when stable, else the triangle's upper edge and slope 0 or 1 below.
/// Sigmoid / Tanh (convex below 0, concave above): on a one-signed interval the chord bounds
/// one side and the tangent at the midpoint the other, each moved outward by
/// `1e-12 (1 + |l| + |u|)`, far above the rounding of the slopes and function values; across
/// zero, the output interval (constant bounds).
pub(crate) fn relaxation(layer: &Layer, l: f64, u: f64, fl: f64, fu: f64) -> Relax {
    let constant = Relax {
        upper_slope: 0.0,
        upper_intercept: fu,
        lower_slope: 0.0,
        lower_intercept: fl,
    };
    let line = |s: f64, i: f64, t: f64, j: f64| Relax {
        upper_slope: s,
        upper_intercept: i,
        lower_slope: t,
        lower_intercept: j,
    };
    match layer {
        Layer::Relu if l >= 0.0 => line(1.0, 0.0, 1.0, 0.0),
        Layer::Relu if u <= 0.0 => line(0.0, 0.0, 0.0, 0.0),
        Layer::Relu => {
            let s = (u / (u - l)).next_up();
            line(s, (-s * l).next_up(), if u > -l { 1.0 } else { 0.0 }, 0.0)
        }
        Layer::Sigmoid | Layer::Tanh => {
            // Degenerate (or NaN-width) intervals and intervals across zero keep the constant bounds.
            if u - l <= 1e-9 || u.is_nan() || l.is_nan() || (l < 0.0 && u > 0.0) {
                return constant;
            }
            let (f, df): (Scalar, Scalar) = if matches!(layer, Layer::Sigmoid) {
                (sigmoid, d_sigmoid)
            } else {
                (f64::tanh, d_tanh)
            };
            let margin = 1e-12 * (1.0 + l.abs() + u.abs());
            let chord = (f(u) - f(l)) / (u - l);
            let chord_i = f(l) - chord * l;
            let d = 0.5 * (l + u);
            let tangent = df(d);
            let tangent_i = f(d) - tangent * d;
            if l >= 0.0 {
                // Concave: tangent above, chord below.
                line(tangent, tangent_i + margin, chord, chord_i - margin)
            } else {
                // Convex: chord above, tangent below.
                line(chord, chord_i + margin, tangent, tangent_i - margin)
            }
        }
        _ => constant,
    }
}

type Scalar = fn(f64) -> f64;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn d_sigmoid(x: f64) -> f64 {
    let s = sigmoid(x);
    s * (1.0 - s)
}

fn d_tanh(x: f64) -> f64 {
    1.0 - x.tanh() * x.tanh()
}

/// A dense row-major matrix of coefficients.
#[derive(Clone)]
pub(crate) struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Mat {
    pub(crate) fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    pub(crate) fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    fn add_into(slot: &mut Option<Mat>, m: Mat) {
        match slot {
            Some(s) => s.data.iter_mut().zip(m.data).for_each(|(a, b)| *a += b),
            None => *slot = Some(m),
        }
    }
}

fn max_abs(b: &Bounds) -> Vec<f64> {
    b.lower
        .iter()
        .zip(&b.upper)
        .map(|(l, u)| l.abs().max(u.abs()))
        .collect()
}

/// A network's linear maps with sound bounds of its values, and what back-substitution derives
/// from them once: per affine node, `|b_o| + sum_j |w_oj| max|x_j|`, the magnitudes its
/// rounding error is charged on.
pub(crate) struct Bounded<'a> {
    pub ops: &'a Ops<'a>,
    pub bounds: &'a [Bounds],
    magnitudes: Vec<OnceLock<Vec<f64>>>,
}

impl<'a> Bounded<'a> {
    pub fn new(ops: &'a Ops<'a>, bounds: &'a [Bounds]) -> Self {
        Self {
            ops,
            bounds,
            magnitudes: (0..ops.net().nodes().len())
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    fn magnitudes(
        &self,
        node: usize,
        op: &AffineOp,
        dense: Option<&[f64]>,
        xmax: &[f64],
    ) -> &[f64] {
        let n = xmax.len();
        self.magnitudes[node].get_or_init(|| {
            op.rows
                .iter()
                .zip(&op.bias)
                .enumerate()
                .map(|(o, (row, b))| {
                    b.abs()
                        + match dense {
                            Some(w) => dense_dot(&w[o * n..(o + 1) * n], xmax, f64::abs),
                            None => sparse_dot(row, xmax, f64::abs),
                        }
                })
                .collect()
        })
    }
}

/// The result of one back-substitution.
pub(crate) struct Backsub {
    /// Sound upper bound of each row.
    pub upper: Vec<f64>,
    /// The rows' coefficients on the input.
    pub input_coef: Option<Mat>,
    /// When recorded: per node, the coefficients on its output where they were pushed through
    /// it (`None` for nodes the rows do not depend on).
    pub lams: Vec<Option<Mat>>,
}

/// [`upper_rows`] with optional lower slopes of the unstable ReLU neurons (`slopes[node]`, rows
/// x neurons, each in `[0, 1]`: any such slope is a sound lower relaxation, the adaptive 0 / 1
/// is used where none is given), recording the coefficients at every node when `record`.
pub(crate) fn backsub(
    ctx: &Bounded,
    target: usize,
    lambda: Mat,
    slopes: Option<&[Option<Mat>]>,
    splits: Option<(&[Split], &Mat)>,
    record: bool,
) -> Result<Backsub> {
    let (ops, bounds) = (ctx.ops, ctx.bounds);
    let net = ops.net();
    let rows = lambda.rows;
    let mut coef: Vec<Option<Mat>> = vec![None; target + 1];
    coef[target] = Some(lambda);
    let mut cst = vec![0.0; rows];
    let mut err = vec![0.0; rows];
    let mut lams: Vec<Option<Mat>> = vec![None; if record { target } else { 0 }];
    for i in (0..target).rev() {
        let Some(mut l) = coef[i + 1].take() else {
            continue;
        };
        if let Some((splits, betas)) = splits {
            add_split_terms(&mut l, i + 1, splits, betas, &bounds[i + 1], &mut err);
        }
        if record {
            lams[i] = Some(l.clone());
        }
        let node = &net.nodes()[i];
        let inp = node.inputs()[0];
        let xmax = max_abs(&bounds[inp]);
        let in_len = xmax.len();
        if let Some(op) = ops.affine(i)? {
            let dense = ops.dense(i, in_len)?;
            let m = ctx.magnitudes(i, op, dense, &xmax);
            let mut out = Mat::zeros(rows, in_len);
            for r in 0..rows {
                let lr = l.row(r);
                let dst = &mut out.data[r * in_len..(r + 1) * in_len];
                let (mut c, mut mag) = (0.0, 0.0);
                for (o, &lo) in lr.iter().enumerate() {
                    if lo == 0.0 {
                        continue;
                    }
                    c += lo * op.bias[o];
                    mag += lo.abs() * m[o];
                    match dense {
                        Some(w) => {
                            let w = &w[o * in_len..(o + 1) * in_len];
                            dst.iter_mut().zip(w).for_each(|(d, &w)| *d += lo * w);
                        }
                        None => {
                            for &(j, w) in &op.rows[o] {
                                dst[j as usize] += lo * w;
                            }
                        }
                    }
                }
                cst[r] += c;
                err[r] += gamma(l.cols + 4) * mag;
            }
            Mat::add_into(&mut coef[inp], out);
            continue;
        }
        if let Some((a, c)) = ops.elementwise(i)? {
            let mut out = Mat::zeros(rows, in_len);
            for r in 0..rows {
                let (mut s, mut mag) = (0.0, 0.0);
                for k in 0..in_len {
                    let lk = l.data[r * in_len + k];
                    out.data[r * in_len + k] = lk * a[k];
                    s += lk * c[k];
                    mag += lk.abs() * (a[k].abs() * xmax[k] + c[k].abs());
                }
                cst[r] += s;
                err[r] += gamma(in_len + 6) * mag;
            }
            Mat::add_into(&mut coef[inp], out);
            continue;
        }
        match node.layer() {
            Layer::Flatten | Layer::Reshape(_) => Mat::add_into(&mut coef[inp], l),
            Layer::Add => {
                Mat::add_into(&mut coef[node.inputs()[1]], l.clone());
                Mat::add_into(&mut coef[inp], l);
            }
            Layer::Relu | Layer::Sigmoid | Layer::Tanh => {
                let (pre, post) = (&bounds[inp], &bounds[i + 1]);
                let relax: Vec<Relax> = (0..in_len)
                    .map(|k| {
                        relaxation(
                            node.layer(),
                            pre.lower[k],
                            pre.upper[k],
                            post.lower[k],
                            post.upper[k],
                        )
                    })
                    .collect();
                let alpha = slopes.and_then(|s| s.get(i)).and_then(Option::as_ref);
                let mut out = Mat::zeros(rows, in_len);
                for r in 0..rows {
                    let (mut s, mut mag) = (0.0, 0.0);
                    for (k, rx) in relax.iter().enumerate() {
                        let lk = l.data[r * in_len + k];
                        let (slope, intercept) =
                            chosen(rx, lk, alpha.map(|a| a.data[r * in_len + k]), pre, k);
                        out.data[r * in_len + k] = lk * slope;
                        s += lk * intercept;
                        mag += lk.abs() * (slope.abs() * xmax[k] + intercept.abs());
                    }
                    cst[r] += s;
                    err[r] += gamma(in_len + 4) * mag;
                }
                Mat::add_into(&mut coef[inp], out);
            }
            Layer::MaxPool2d(_) => {
                let ob = &bounds[i + 1];
                for r in 0..rows {
                    let (mut s, mut mag) = (0.0, 0.0);
                    for (k, &lk) in l.row(r).iter().enumerate() {
                        let t = if lk >= 0.0 {
                            lk * ob.upper[k]
                        } else {
                            lk * ob.lower[k]
                        };
                        s += t;
                        mag += t.abs();
                    }
                    cst[r] += s;
                    err[r] += gamma(l.cols + 2) * mag;
                }
            }
            Layer::Linear(_)
            | Layer::Conv2d(_)
            | Layer::AvgPool2d(_)
            | Layer::BatchNorm(_)
            | Layer::Elementwise(_)
            | Layer::Rearrange(_) => {
                unreachable!("linear maps handled above")
            }
            Layer::Concat { .. } => {
                // Each output column goes back to the input element it copies.
                let mut parts: Vec<(usize, Mat)> = node
                    .inputs()
                    .iter()
                    .map(|&v| (v, Mat::zeros(rows, net.value_shape(v).iter().product())))
                    .collect();
                // (input position, flat index) of every output element, found once (a value
                // read twice collects both copies in its first position).
                let src: Vec<(usize, usize)> = net
                    .concat_sources(i)
                    .expect("a concatenation")
                    .into_iter()
                    .map(|(v, j)| (parts.iter().position(|p| p.0 == v).expect("an input"), j))
                    .collect();
                for r in 0..rows {
                    for (o, &(k, j)) in src.iter().enumerate() {
                        let c = parts[k].1.cols;
                        parts[k].1.data[r * c + j] += l.data[r * l.cols + o];
                    }
                }
                for (v, m) in parts {
                    Mat::add_into(&mut coef[v], m);
                }
            }
            Layer::Opaque(_) => return Err(not_boundable(net, i)),
        }
    }
    let input = &bounds[0];
    let mut upper = Vec::with_capacity(rows);
    for r in 0..rows {
        let (mut s, mut mag) = (cst[r], cst[r].abs());
        if let Some(l0) = &coef[0] {
            for (j, &c) in l0.row(r).iter().enumerate() {
                let t = if c >= 0.0 {
                    c * input.upper[j]
                } else {
                    c * input.lower[j]
                };
                s += t;
                mag += t.abs();
            }
        }
        upper.push(up(s, err[r] + gamma(input.lower.len() + 4) * mag));
    }
    Ok(Backsub {
        upper,
        input_coef: coef.swap_remove(0),
        lams,
    })
}

/// A ReLU split of branch and bound: the pre-activation `neuron` of `value` is restricted to
/// `>= 0` (`active`) or `<= 0` in a sub-domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Split {
    pub value: usize,
    pub neuron: usize,
    pub active: bool,
}

impl Split {
    /// `s` with the split's constraint written `s z <= 0`.
    pub fn sign(&self) -> f64 {
        if self.active {
            -1.0
        } else {
            1.0
        }
    }
}

/// Adds the split constraints' Lagrangian terms (beta-CROWN) to the coefficients `l` on
/// `value`: an upper bound of `f - sum_k beta_k s_k z_k` is one of `f` on the sub-domain where
/// every `s_k z_k <= 0`, for any `beta >= 0` (`betas`: rows x splits). The rounding of the
/// additions goes into `err`.
fn add_split_terms(
    l: &mut Mat,
    value: usize,
    splits: &[Split],
    betas: &Mat,
    vb: &Bounds,
    err: &mut [f64],
) {
    for (j, sp) in splits.iter().enumerate().filter(|(_, s)| s.value == value) {
        let k = sp.neuron;
        let xmax = vb.lower[k].abs().max(vb.upper[k].abs());
        for (r, e_r) in err.iter_mut().enumerate().take(l.rows) {
            let e = r * l.cols + k;
            l.data[e] -= sp.sign() * betas.data[r * betas.cols + j];
            *e_r += gamma(2) * l.data[e].abs() * xmax;
        }
    }
}

/// The relaxation line a back-substitution takes for a neuron whose output has coefficient
/// `lk`: the upper line where `lk >= 0`, else the lower one, with the optimised slope `alpha`
/// in place of the adaptive one for an unstable ReLU neuron (`pre`: its pre-activation bounds).
pub(crate) fn chosen(
    rx: &Relax,
    lk: f64,
    alpha: Option<f64>,
    pre: &Bounds,
    k: usize,
) -> (f64, f64) {
    if lk >= 0.0 {
        (rx.upper_slope, rx.upper_intercept)
    } else {
        match alpha {
            Some(a) if pre.lower[k] < 0.0 && pre.upper[k] > 0.0 => (a, 0.0),
            _ => (rx.lower_slope, rx.lower_intercept),
        }
    }
}

/// Sound lower and upper bounds of `rows · value[target]` over the box `bounds` were computed
/// for (each row a dense coefficient vector over the value's cells), by back-substitution to
/// the input: far tighter than the box of the value for a direction that many cells share,
/// e.g. a difference of two logits' weights on the last hidden layer.
pub fn row_bounds(
    net: &Network,
    bounds: &[Bounds],
    target: usize,
    rows: &[Vec<f64>],
) -> Result<(Vec<f64>, Vec<f64>)> {
    row_bounds_with(&Ops::new(net), bounds, target, rows)
}

/// [`row_bounds`] with the layers' linear maps from a cache: one back-substitution of the
/// rows negated (lower bounds) and as they are (upper bounds).
pub(crate) fn row_bounds_with(
    ops: &Ops,
    bounds: &[Bounds],
    target: usize,
    rows: &[Vec<f64>],
) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = rows.len();
    let both = negated_then_plain(rows, bounds[target].lower.len());
    let ctx = Bounded::new(ops, bounds);
    let mut upper = backsub(&ctx, target, both, None, None, false)?.upper;
    let lower = upper.drain(..n).map(|v| -v).collect();
    Ok((lower, upper))
}

/// The rows negated (whose upper bounds are minus the lower bounds), then as they are.
pub(crate) fn negated_then_plain(rows: &[Vec<f64>], cols: usize) -> Mat {
    Mat {
        rows: 2 * rows.len(),
        cols,
        data: rows
            .iter()
            .flatten()
            .map(|v| -v)
            .chain(rows.iter().flatten().copied())
            .collect(),
    }
}

/// Sound bounds of every value, each the intersection of interval and linear bounds: linear
/// bounds are computed for every value read by a ReLU (its pre-activation) and for the output,
/// in order, and the interval bounds of later values are refreshed after each.
pub fn linear_bounds(net: &Network, input: &BoxRegion) -> Result<Vec<Bounds>> {
    linear_bounds_with(&Ops::new(net), input)
}

/// [`linear_bounds`] with the layers' linear maps from a cache.
pub(crate) fn linear_bounds_with(ops: &Ops, input: &BoxRegion) -> Result<Vec<Bounds>> {
    let net = ops.net();
    let mut b = interval_bounds(net, input)?;
    for v in bound_targets(net) {
        let n = b[v].lower.len();
        let all: Vec<usize> = (0..n).collect();
        let (lo, hi) = row_bounds_with(ops, &b, v, &unit_rows(n, &all))?;
        intersect(&mut b[v], &lo, &hi);
        refresh_after(ops, &mut b, v)?;
    }
    Ok(b)
}

/// The values whose bounds back-substitution tightens, in order: every ReLU's pre-activation,
/// then the output.
pub(crate) fn bound_targets(net: &Network) -> Vec<usize> {
    let mut targets: Vec<usize> = net
        .nodes()
        .iter()
        .filter(|n| matches!(n.layer(), Layer::Relu))
        .map(|n| n.inputs()[0])
        .collect();
    targets.push(net.nodes().len());
    targets.sort_unstable();
    targets.dedup();
    targets
}

/// One row per neuron `k` of `ks`: the unit vector `e_k` over `n` cells.
pub(crate) fn unit_rows(n: usize, ks: &[usize]) -> Vec<Vec<f64>> {
    ks.iter()
        .map(|&k| (0..n).map(|j| if j == k { 1.0 } else { 0.0 }).collect())
        .collect()
}

/// Refreshes the interval bounds of every value after `value` from the ones before them,
/// intersecting with what is known.
pub(crate) fn refresh_after(ops: &Ops, b: &mut [Bounds], value: usize) -> Result<()> {
    for k in value..ops.net().nodes().len() {
        let fresh = propagate_with(ops, k, b)?;
        intersect(&mut b[k + 1], &fresh.lower, &fresh.upper);
    }
    Ok(())
}

pub(crate) fn intersect(b: &mut Bounds, lo: &[f64], hi: &[f64]) {
    for k in 0..lo.len() {
        b.lower[k] = b.lower[k].max(lo[k]);
        b.upper[k] = b.upper[k].min(hi[k]);
    }
}

//! Twin-network bounds: how much a network's values can change between an input `x` and a
//! perturbed copy `x + dx`, for global robustness and individual fairness (seed 002).
//!
//! The network must be a chain of affine maps (Linear, Conv, AvgPool, BatchNorm, constant
//! ops), ReLUs, Flatten and Reshape, turned into a [`Chain`] of dense f64 maps. For a region of
//! `x` (an *area*), the region of `x + dx` (its *twin*) and the box of `dx`, the difference
//! `d = v(x + dx) - v(x)` of every value `v` is bounded by back-substitution in terms of `dx`
//! alone, ITNE-style without the interleaving of `x`:
//! - an affine map sends `d` to `W d` (the bias cancels);
//! - a ReLU sends `d` to `s d` for some slope `s` in `[0, 1]` (mean value theorem); with `[l, u]`
//!   the bounds of `d` that is the triangle `u (d - l) / (u - l)` above and
//!   `-l (d - u) / (u - l)` below, replaced by the tighter `0` or `d` when one copy's
//!   pre-activation is stably active or inactive (bounds of both copies from
//!   [`linear_bounds`]) and by `d` exactly when both copies are stably active.
//!
//! Rounding: every back-substitution step adds `gamma(n) * |Λ| |W| max|d|` to the row's
//! constant and the final concretisation is rounded outward, as in [`crate::crown`].
//!
//! [`variation_bound`] bounds `sup ||f(x + dx) - f(x)||_inf` over a whole region by best-first
//! input splitting (the *VB* metric); [`pgd_variation`] searches for large variations from
//! sample points (*PGD-B*, *PGD-R*).

use std::time::{Duration, Instant};

use netrepair_nn::{Layer, Network};
use netrepair_spec::{BoxRegion, GlobalProperty, OutputMeasure};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::affine::{affine_op, elementwise_op};
use crate::crown::linear_bounds;
use crate::error::{Result, VerifyError};
use crate::interval::Bounds;
use crate::rounding::{down, gamma, up};

/// One step of a [`Chain`].
#[derive(Debug, Clone)]
enum Step {
    /// `y = W x + b`, `W` dense row-major `rows x cols`.
    Affine {
        w: Vec<f64>,
        b: Vec<f64>,
        rows: usize,
        cols: usize,
    },
    /// `y_k = a_k x_k + c_k`.
    Scale { a: Vec<f64>, c: Vec<f64> },
    /// `y = max(x, 0)`.
    Relu,
}

/// A network as a chain of dense f64 maps: what twin bounds, Jacobians and the variation
/// attack work on. `values[k]` is the network value (0 = input, `i + 1` = node `i`) after step
/// `k`.
#[derive(Debug, Clone)]
pub struct Chain {
    steps: Vec<Step>,
    /// Network value index after each step.
    values: Vec<usize>,
    /// Width after each step (`widths[0]` is the input's; `widths[k + 1]` after step `k`).
    widths: Vec<usize>,
}

impl Chain {
    /// The chain of `net`, or an error naming the first node that is not a chain step (a
    /// residual Add, Sigmoid, Tanh, MaxPool) or that reads anything but the previous value.
    pub fn new(net: &Network) -> Result<Self> {
        let mut steps = Vec::new();
        let mut values = Vec::new();
        let mut widths = vec![net.input_len()];
        for (i, node) in net.nodes().iter().enumerate() {
            let unsupported = |why: &str| {
                VerifyError::Unsupported(format!(
                    "node '{}' ({}) {why}; twin-network bounds need a chain of affine layers and ReLUs",
                    node.name(),
                    node.layer().kind()
                ))
            };
            if node.inputs() != [i] {
                return Err(unsupported("does not read the previous node's output"));
            }
            let step = if let Some(op) = affine_op(net, i)? {
                let (rows, cols) = (op.bias.len(), *widths.last().expect("input width"));
                let mut w = vec![0.0; rows * cols];
                for (r, row) in op.rows.iter().enumerate() {
                    for &(j, v) in row {
                        w[r * cols + j as usize] += v;
                    }
                }
                Step::Affine {
                    w,
                    b: op.bias,
                    rows,
                    cols,
                }
            } else if let Some((a, c)) = elementwise_op(net, i)? {
                Step::Scale { a, c }
            } else {
                match node.layer() {
                    Layer::Relu => Step::Relu,
                    Layer::Flatten | Layer::Reshape(_) => continue,
                    _ => return Err(unsupported("is not supported")),
                }
            };
            let width = match &step {
                Step::Affine { rows, .. } => *rows,
                Step::Scale { a, .. } => a.len(),
                Step::Relu => *widths.last().expect("input width"),
            };
            steps.push(step);
            values.push(i + 1);
            widths.push(width);
        }
        match steps.last() {
            Some(Step::Affine { .. }) => Ok(Self {
                steps,
                values,
                widths,
            }),
            _ => Err(VerifyError::Unsupported(
                "the network must end with an affine layer (its logits) for last-layer repair and twin bounds"
                    .into(),
            )),
        }
    }

    /// Input width.
    pub fn input_len(&self) -> usize {
        self.widths[0]
    }

    /// Output width.
    pub fn output_len(&self) -> usize {
        *self.widths.last().expect("non-empty chain")
    }

    /// Width of the last hidden layer (the input of the last affine step).
    pub fn hidden_len(&self) -> usize {
        self.widths[self.steps.len() - 1]
    }

    /// The network value index read by the last affine step (the last hidden layer).
    pub fn hidden_value(&self) -> usize {
        match self.steps.len() {
            1 => 0,
            n => self.values[n - 2],
        }
    }

    /// The last affine step's weight, `outputs x hidden` row-major.
    pub fn last_weight(&self) -> &[f64] {
        match self.steps.last() {
            Some(Step::Affine { w, .. }) => w,
            _ => unreachable!("checked in new"),
        }
    }

    /// The last affine step's bias (`outputs`).
    pub fn last_bias(&self) -> &[f64] {
        match self.steps.last() {
            Some(Step::Affine { b, .. }) => b,
            _ => unreachable!("checked in new"),
        }
    }

    /// The chain whose outputs are the rows the property's measure bounds
    /// ([`OutputMeasure::rows`]): itself for logits, the logit differences for probabilities.
    pub fn measured(&self, prop: &GlobalProperty) -> Self {
        let mut c = self.clone();
        if prop.measure == OutputMeasure::Logits {
            return c;
        }
        if let Some(Step::Affine { w, b, rows, cols }) = c.steps.last_mut() {
            let spec = prop.measure.rows(*rows);
            let mut w2 = Vec::with_capacity(spec.len() * *cols);
            let mut b2 = Vec::with_capacity(spec.len());
            for r in &spec {
                b2.push(r.iter().map(|&(o, f)| f * b[o]).sum());
                for j in 0..*cols {
                    w2.push(r.iter().map(|&(o, f)| f * w[o * *cols + j]).sum());
                }
            }
            *w = w2;
            *b = b2;
            *rows = spec.len();
            *c.widths.last_mut().expect("widths") = spec.len();
        }
        c
    }

    /// The same chain with the last affine step's weight replaced (`outputs x hidden`).
    pub fn with_last_weight(&self, w_new: Vec<f64>) -> Self {
        let mut c = self.clone();
        if let Some(Step::Affine { w, .. }) = c.steps.last_mut() {
            assert_eq!(w.len(), w_new.len(), "weight shape");
            *w = w_new;
        }
        c
    }

    /// Every step's output for input `x`, in f64 (index 0: `x` itself).
    fn trace(&self, x: &[f64]) -> Vec<Vec<f64>> {
        let mut vals = vec![x.to_vec()];
        for s in &self.steps {
            let v = vals.last().expect("input");
            let next = match s {
                Step::Affine { w, b, cols, .. } => b
                    .iter()
                    .enumerate()
                    .map(|(r, &br)| br + dot(&w[r * cols..(r + 1) * cols], v))
                    .collect(),
                Step::Scale { a, c } => v
                    .iter()
                    .zip(a.iter().zip(c))
                    .map(|(x, (a, c))| a * x + c)
                    .collect(),
                Step::Relu => v.iter().map(|x| x.max(0.0)).collect(),
            };
            vals.push(next);
        }
        vals
    }

    /// The last hidden layer's values at `x` (the input of the last affine step), in f64.
    pub fn hidden(&self, x: &[f64]) -> Vec<f64> {
        let mut t = self.trace(x);
        t.truncate(self.steps.len());
        t.pop().expect("hidden layer")
    }

    /// The output for input `x`, in f64.
    pub fn forward(&self, x: &[f64]) -> Vec<f64> {
        self.trace(x).pop().expect("output")
    }

    /// Output and the gradient of output `o` with respect to the input, at `x`.
    pub fn gradient(&self, x: &[f64], o: usize) -> (Vec<f64>, Vec<f64>) {
        let vals = self.trace(x);
        let g = self.output_gradient(&vals, o);
        (vals.last().expect("output").clone(), g)
    }

    /// The Jacobian at `x` restricted to input columns `cols`: `outputs x cols.len()`.
    pub fn jacobian(&self, x: &[f64], cols: &[usize]) -> Vec<Vec<f64>> {
        let vals = self.trace(x);
        (0..self.output_len())
            .map(|o| {
                let g = self.output_gradient(&vals, o);
                cols.iter().map(|&c| g[c]).collect()
            })
            .collect()
    }

    /// The input gradient of output `o`, given the trace `vals`.
    fn output_gradient(&self, vals: &[Vec<f64>], o: usize) -> Vec<f64> {
        let mut g = vec![0.0; self.output_len()];
        g[o] = 1.0;
        self.backward(vals, g)
    }

    fn backward(&self, vals: &[Vec<f64>], mut g: Vec<f64>) -> Vec<f64> {
        for (k, s) in self.steps.iter().enumerate().rev() {
            g = match s {
                Step::Affine { w, cols, .. } => {
                    let mut out = vec![0.0; *cols];
                    for (r, &gr) in g.iter().enumerate() {
                        if gr != 0.0 {
                            axpy(&mut out, gr, &w[r * cols..(r + 1) * cols]);
                        }
                    }
                    out
                }
                Step::Scale { a, .. } => g.iter().zip(a).map(|(g, a)| g * a).collect(),
                Step::Relu => g
                    .iter()
                    .zip(&vals[k])
                    .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
                    .collect(),
            };
        }
        g
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(out: &mut [f64], a: f64, x: &[f64]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o += a * v;
    }
}

/// Linear bounds `lower_w dx + lower_c <= d <= upper_w dx + upper_c` of a value's difference,
/// for `dx` in the box they were computed for; `*_w` are `rows x dx.len()` row-major over the
/// free input features only (`free`).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearDiff {
    /// The input features the coefficients refer to, in column order.
    pub free: Vec<usize>,
    /// Lower coefficients, `rows x free.len()`.
    pub lower_w: Vec<f64>,
    /// Lower constants.
    pub lower_c: Vec<f64>,
    /// Upper coefficients.
    pub upper_w: Vec<f64>,
    /// Upper constants.
    pub upper_c: Vec<f64>,
}

/// What [`twin_bounds`] finds for one area.
#[derive(Debug, Clone, PartialEq)]
pub struct TwinBounds {
    /// Concrete bounds of `v(x + dx) - v(x)` after every chain step (index 0: `dx`).
    pub diff: Vec<Bounds>,
    /// Linear bounds of the last hidden layer's difference in terms of `dx`.
    pub hidden: LinearDiff,
}

impl TwinBounds {
    /// Sound upper bound of `||f(x + dx) - f(x)||_inf` over the area.
    pub fn variation(&self) -> f64 {
        let out = self.diff.last().expect("output");
        out.lower
            .iter()
            .zip(&out.upper)
            .map(|(l, u)| (-l).max(*u))
            .fold(0.0, f64::max)
    }
}

/// Per-neuron linear relaxation of a ReLU's difference: `sl d + cl <= diff <= su d + cu`.
#[derive(Debug, Clone, Copy)]
struct DiffRelax {
    su: f64,
    cu: f64,
    sl: f64,
    cl: f64,
}

/// The relaxation of `relu(a + d) - relu(a)` for `d` in `[l, u]`, `a` in `[xl, xu]`, `a + d`
/// in `[yl, yu]`, and its concrete bounds.
///
/// Upper: `U(d) = max_a relu(a + d) - relu(a)` is convex in `d` (a maximum of convex
/// functions; it is `relu(xu + d) - relu(xu)` for `d >= 0` and `relu(xl + d) - relu(xl)` below),
/// so its chord over `[l, u]` bounds it from above. Lower: writing the difference as
/// `relu(y) - relu(y - d)` with `y = a + d`, `L(d) = min_y ...` is concave, so its chord bounds
/// it from below. Where one copy is stable, `0` or `d` may be tighter; of the valid lines the
/// one tighter at the midpoint is kept.
fn relu_diff(l: f64, u: f64, xl: f64, xu: f64, yl: f64, yu: f64) -> (DiffRelax, f64, f64) {
    let (x_on, x_off, y_on, y_off) = (xl >= 0.0, xu <= 0.0, yl >= 0.0, yu <= 0.0);
    let relu = |v: f64| v.max(0.0);
    let r = |su: f64, cu: f64, sl: f64, cl: f64| DiffRelax { su, cu, sl, cl };
    let relax = if (x_on && y_on) || (x_off && y_off) {
        if x_on {
            r(1.0, 0.0, 1.0, 0.0)
        } else {
            r(0.0, 0.0, 0.0, 0.0)
        }
    } else {
        let upper_env = |d: f64| {
            if d >= 0.0 {
                relu(xu + d) - relu(xu)
            } else {
                relu(xl + d) - relu(xl)
            }
        };
        let lower_env = |d: f64| {
            if d >= 0.0 {
                relu(yl) - relu(yl - d)
            } else {
                relu(yu) - relu(yu - d)
            }
        };
        let slack = 4.0
            * f64::EPSILON
            * (1.0 + l.abs() + u.abs() + xl.abs() + xu.abs() + yl.abs() + yu.abs());
        let chord = |f0: f64, f1: f64| -> (f64, f64) {
            if u - l <= 1e-12 * (1.0 + l.abs() + u.abs()) {
                (0.0, f64::NAN) // degenerate: caller uses a constant
            } else {
                let s = (f1 - f0) / (u - l);
                (s, f0 - s * l)
            }
        };
        let mid = 0.5 * (l + u);
        // Upper candidates: the chord of U, then 0 (x + d never positive) or d (x + d always positive).
        let (s, c) = chord(upper_env(l), upper_env(u));
        let (mut su, mut cu) = if c.is_nan() {
            (0.0, upper_env(l).max(upper_env(u)))
        } else {
            (s, c)
        };
        cu = up(cu, slack);
        if y_off && 0.0 < su * mid + cu {
            (su, cu) = (0.0, 0.0);
        } else if y_on && mid < su * mid + cu {
            (su, cu) = (1.0, 0.0);
        }
        let (s, c) = chord(lower_env(l), lower_env(u));
        let (mut sl, mut cl) = if c.is_nan() {
            (0.0, lower_env(l).min(lower_env(u)))
        } else {
            (s, c)
        };
        cl = down(cl, slack);
        if x_off && 0.0 > sl * mid + cl {
            (sl, cl) = (0.0, 0.0);
        } else if x_on && mid > sl * mid + cl {
            (sl, cl) = (1.0, 0.0);
        }
        r(su, cu, sl, cl)
    };
    // Concrete bounds: the relaxation over [l, u], intersected with what the two copies allow.
    let hi = (relax.su * l + relax.cu).max(relax.su * u + relax.cu);
    let lo = (relax.sl * l + relax.cl).min(relax.sl * u + relax.cl);
    let hi = up(hi, f64::EPSILON * hi.abs()).min(up(yu.max(0.0) - xl.max(0.0), 0.0));
    let lo = down(lo, f64::EPSILON * lo.abs()).max(down(yl.max(0.0) - xu.max(0.0), 0.0));
    (relax, lo, hi)
}

/// Upper bounds of rows `lam` (each over the value after step `k`) of the difference, as
/// linear functions of `dx`: returns per row (coefficients over all inputs, constant).
fn back_substitute(
    chain: &Chain,
    relax: &[Option<Vec<DiffRelax>>],
    diff: &[Bounds],
    k: usize,
    mut lam: Vec<Vec<f64>>,
) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut cst = vec![0.0; lam.len()];
    for s in (0..k).rev() {
        let input = &diff[s];
        let maxabs: Vec<f64> = input
            .lower
            .iter()
            .zip(&input.upper)
            .map(|(l, u)| l.abs().max(u.abs()))
            .collect();
        match &chain.steps[s] {
            Step::Affine { w, rows, cols, .. } => {
                let wmax: Vec<f64> = (0..*rows)
                    .map(|r| {
                        w[r * cols..(r + 1) * cols]
                            .iter()
                            .zip(&maxabs)
                            .map(|(w, m)| w.abs() * m)
                            .sum()
                    })
                    .collect();
                let g = gamma(rows + cols + 2);
                lam.par_iter_mut()
                    .zip(cst.par_iter_mut())
                    .for_each(|(row, c)| {
                        let mut out = vec![0.0; *cols];
                        let mut err = 0.0;
                        for (r, &lr) in row.iter().enumerate() {
                            if lr != 0.0 {
                                axpy(&mut out, lr, &w[r * cols..(r + 1) * cols]);
                                err += lr.abs() * wmax[r];
                            }
                        }
                        *c = up(*c, g * err);
                        *row = out;
                    });
            }
            Step::Scale { a, .. } => {
                for (row, c) in lam.iter_mut().zip(cst.iter_mut()) {
                    let mut err = 0.0;
                    for ((v, a), m) in row.iter_mut().zip(a).zip(&maxabs) {
                        *v *= a;
                        err += v.abs() * m;
                    }
                    *c = up(*c, gamma(2) * err);
                }
            }
            Step::Relu => {
                let rl = relax[s].as_ref().expect("relaxations of every ReLU");
                for (row, c) in lam.iter_mut().zip(cst.iter_mut()) {
                    let mut add = 0.0;
                    let mut err = 0.0;
                    for ((v, r), m) in row.iter_mut().zip(rl).zip(&maxabs) {
                        let (sl, cc) = if *v >= 0.0 {
                            (r.su, r.cu)
                        } else {
                            (r.sl, r.cl)
                        };
                        add += *v * cc;
                        err += (*v * cc).abs();
                        *v *= sl;
                        err += v.abs() * m;
                    }
                    *c = up(*c + add, gamma(row.len() + 2) * err);
                }
            }
        }
    }
    (lam, cst)
}

/// Concretises `row dx + c` over the box `dx`, rounded up.
fn concretise_up(row: &[f64], c: f64, dx: &BoxRegion) -> f64 {
    let mut s = c;
    let mut mag = c.abs();
    for ((&a, &l), &u) in row.iter().zip(&dx.lower).zip(&dx.upper) {
        let t = (a * l).max(a * u);
        s += t;
        mag += t.abs();
    }
    up(s, gamma(row.len() + 2) * mag)
}

/// Interval bounds of an affine or scale step's output difference (the bias cancels).
fn interval_step(step: &Step, d: &Bounds) -> Bounds {
    match step {
        Step::Affine { w, rows, cols, .. } => {
            let g = gamma(cols + 2);
            let mut b = Bounds {
                lower: Vec::with_capacity(*rows),
                upper: Vec::with_capacity(*rows),
            };
            for r in 0..*rows {
                let (mut lo, mut hi, mut mag) = (0.0, 0.0, 0.0);
                for ((&a, &l), &u) in w[r * cols..(r + 1) * cols]
                    .iter()
                    .zip(&d.lower)
                    .zip(&d.upper)
                {
                    let (p, q) = (a * l, a * u);
                    lo += p.min(q);
                    hi += p.max(q);
                    mag += p.abs().max(q.abs());
                }
                b.lower.push(down(lo, g * mag));
                b.upper.push(up(hi, g * mag));
            }
            b
        }
        Step::Scale { a, .. } => {
            let mut b = Bounds {
                lower: Vec::with_capacity(a.len()),
                upper: Vec::with_capacity(a.len()),
            };
            for ((&a, &l), &u) in a.iter().zip(&d.lower).zip(&d.upper) {
                let (p, q) = (a * l, a * u);
                b.lower
                    .push(down(p.min(q), gamma(1) * p.abs().max(q.abs())));
                b.upper.push(up(p.max(q), gamma(1) * p.abs().max(q.abs())));
            }
            b
        }
        Step::Relu => unreachable!("ReLU steps have their own relaxation"),
    }
}

/// Twin bounds over one area: `x` in `area`, `x + dx` in `twin`, `dx` in `dx_box`.
pub fn twin_bounds(
    net: &Network,
    chain: &Chain,
    area: &BoxRegion,
    twin: &BoxRegion,
    dx_box: &BoxRegion,
    free: &[usize],
) -> Result<TwinBounds> {
    check_dims(chain, area, twin, dx_box)?;
    let bx = linear_bounds(net, area)?;
    twin_bounds_from(net, chain, &bx, twin, dx_box, free)
}

fn check_dims(chain: &Chain, area: &BoxRegion, twin: &BoxRegion, dx: &BoxRegion) -> Result<()> {
    if area.dim() != chain.input_len() || twin.dim() != area.dim() || dx.dim() != area.dim() {
        return Err(VerifyError::InputSize {
            expected: chain.input_len(),
            got: area.dim(),
        });
    }
    Ok(())
}

/// [`twin_bounds`] with the area's bounds (`linear_bounds` of every value) already computed,
/// so the pieces of one area share them.
fn twin_bounds_from(
    net: &Network,
    chain: &Chain,
    bx: &[Bounds],
    twin: &BoxRegion,
    dx_box: &BoxRegion,
    free: &[usize],
) -> Result<TwinBounds> {
    let by = linear_bounds(net, twin)?;
    let n = chain.steps.len();
    let mut diff = vec![Bounds {
        lower: dx_box.lower.clone(),
        upper: dx_box.upper.clone(),
    }];
    let mut relax: Vec<Option<Vec<DiffRelax>>> = vec![None; n];
    let mut hidden = None;
    for k in 0..n {
        // Bounds of the value read by step k (diff[k]) are known; compute step k's output.
        let out = match &chain.steps[k] {
            Step::Relu => {
                let pre = chain.values[k] - 1; // the value the ReLU reads
                let (xb, yb) = (&bx[pre], &by[pre]);
                let d = &diff[k];
                let mut rl = Vec::with_capacity(d.lower.len());
                let mut b = Bounds {
                    lower: Vec::with_capacity(d.lower.len()),
                    upper: Vec::with_capacity(d.lower.len()),
                };
                for j in 0..d.lower.len() {
                    let (r, lo, hi) = relu_diff(
                        d.lower[j],
                        d.upper[j],
                        xb.lower[j],
                        xb.upper[j],
                        yb.lower[j],
                        yb.upper[j],
                    );
                    rl.push(r);
                    b.lower.push(lo);
                    b.upper.push(hi);
                }
                relax[k] = Some(rl);
                b
            }
            _ => {
                // Affine or scale: back-substitute both signs of the identity on step k's output.
                let w = chain.widths[k + 1];
                let mut lam: Vec<Vec<f64>> = Vec::with_capacity(2 * w);
                for sign in [1.0, -1.0] {
                    for j in 0..w {
                        let mut row = vec![0.0; w];
                        row[j] = sign;
                        lam.push(row);
                    }
                }
                let (rows, cst) = back_substitute(chain, &relax, &diff, k + 1, lam);
                // Intersected with interval propagation of the previous bounds, so that an
                // interval argument (what a repair LP over concrete bounds uses) is never
                // tighter than these bounds.
                let mut b = interval_step(&chain.steps[k], &diff[k]);
                for j in 0..w {
                    b.upper[j] = b.upper[j].min(concretise_up(&rows[j], cst[j], dx_box));
                    b.lower[j] = b.lower[j].max(-concretise_up(&rows[w + j], cst[w + j], dx_box));
                }
                b
            }
        };
        if k + 1 == n {
            // The last hidden layer: linear bounds of diff[k] (the last step's input).
            let w = chain.widths[k];
            let mut lam: Vec<Vec<f64>> = Vec::with_capacity(2 * w);
            for sign in [1.0, -1.0] {
                for j in 0..w {
                    let mut row = vec![0.0; w];
                    row[j] = sign;
                    lam.push(row);
                }
            }
            let (rows, cst) = back_substitute(chain, &relax, &diff, k, lam);
            hidden = Some(linear_diff(&rows, &cst, w, free, dx_box));
        }
        diff.push(out);
    }
    Ok(TwinBounds {
        diff,
        hidden: hidden.expect("the chain has at least one step"),
    })
}

/// Splits back-substituted rows (`2w`: upper rows, then negated lower rows) into a
/// [`LinearDiff`] over the free features; the fixed features' contributions (over `dx_box`,
/// normally zero) are folded into the constants.
fn linear_diff(
    rows: &[Vec<f64>],
    cst: &[f64],
    w: usize,
    free: &[usize],
    dx_box: &BoxRegion,
) -> LinearDiff {
    let fixed: Vec<usize> = (0..dx_box.dim()).filter(|j| !free.contains(j)).collect();
    let fixed_up = |row: &[f64], c: f64| {
        let mut s = c;
        for &j in &fixed {
            s += (row[j] * dx_box.lower[j]).max(row[j] * dx_box.upper[j]);
        }
        up(s, gamma(fixed.len() + 2) * s.abs())
    };
    let mut d = LinearDiff {
        free: free.to_vec(),
        lower_w: Vec::with_capacity(w * free.len()),
        lower_c: Vec::with_capacity(w),
        upper_w: Vec::with_capacity(w * free.len()),
        upper_c: Vec::with_capacity(w),
    };
    for j in 0..w {
        d.upper_w.extend(free.iter().map(|&f| rows[j][f]));
        d.upper_c.push(fixed_up(&rows[j], cst[j]));
        d.lower_w.extend(free.iter().map(|&f| -rows[w + j][f]));
        d.lower_c.push(-fixed_up(&rows[w + j], cst[w + j]));
    }
    d
}

/// Twin bounds of an area of a property's region.
pub fn property_twin_bounds(
    net: &Network,
    chain: &Chain,
    prop: &GlobalProperty,
    area: &BoxRegion,
) -> Result<TwinBounds> {
    twin_bounds(
        net,
        chain,
        area,
        &prop.twin_box(area),
        &prop.dx_box(area),
        &prop.free_dims(),
    )
}

/// Twin bounds of an area for each of the property's twin pieces
/// ([`GlobalProperty::twin_pieces`]), with the box of `dx` each was computed for.
pub fn property_twin_pieces(
    net: &Network,
    chain: &Chain,
    prop: &GlobalProperty,
    area: &BoxRegion,
    pieces: usize,
) -> Result<Vec<(BoxRegion, TwinBounds)>> {
    let free = prop.free_dims();
    let pieces = prop.twin_pieces(area, pieces);
    for (twin, dx) in &pieces {
        check_dims(chain, area, twin, dx)?;
    }
    // One set of bounds of the area serves every piece.
    let bx = linear_bounds(net, area)?;
    pieces
        .into_iter()
        .map(|(twin, dx)| {
            let tb = twin_bounds_from(net, chain, &bx, &twin, &dx, &free)?;
            Ok((dx, tb))
        })
        .collect()
}

/// Sound bound of the output variation over an area (in the property's measure): the largest
/// over its twin pieces.
pub fn area_variation(
    net: &Network,
    chain: &Chain,
    prop: &GlobalProperty,
    area: &BoxRegion,
    pieces: usize,
) -> Result<f64> {
    let measured = chain.measured(prop);
    Ok(prop.measure.factor()
        * property_twin_pieces(net, &measured, prop, area, pieces)?
            .iter()
            .map(|(_, tb)| tb.variation())
            .fold(0.0, f64::max))
}

/// Settings of [`variation_bound`].
#[derive(Debug, Clone, PartialEq)]
pub struct SplitOptions {
    /// Largest number of leaf boxes.
    pub max_boxes: usize,
    /// Wall-clock limit.
    pub time_limit: Duration,
    /// Slices of each sensitive feature's range bounded separately (fairness).
    pub pieces: usize,
}

impl Default for SplitOptions {
    fn default() -> Self {
        Self {
            max_boxes: 256,
            time_limit: Duration::from_secs(60),
            pieces: 8,
        }
    }
}

/// A sound bound of a region's output variation.
#[derive(Debug, Clone, PartialEq)]
pub struct VariationBound {
    /// `VB`: an upper bound of `||f(x + dx) - f(x)||_inf` over the region.
    pub vb: f64,
    /// The bound with the region unsplit.
    pub vb_unsplit: f64,
    /// Leaf boxes bounded.
    pub boxes: usize,
    /// Whether splitting stopped early because every leaf met `eps`.
    pub proved: bool,
    /// Wall time.
    pub seconds: f64,
}

/// `VB` over `region` (a sub-box of the property's region, or the region itself): the worst
/// leaf is split along its widest side until every leaf's bound is at most `eps`, or
/// `max_boxes` leaves or the time limit are reached.
pub fn variation_bound(
    net: &Network,
    chain: &Chain,
    prop: &GlobalProperty,
    region: &BoxRegion,
    opts: &SplitOptions,
) -> Result<VariationBound> {
    let t = Instant::now();
    let first = area_variation(net, chain, prop, region, opts.pieces)?;
    let mut leaves = vec![(region.clone(), first)];
    let batch = rayon::current_num_threads().max(1) * 2;
    loop {
        leaves.sort_by(|a, b| b.1.total_cmp(&a.1));
        if leaves[0].1 <= prop.eps
            || leaves.len() + batch > opts.max_boxes.max(1)
            || t.elapsed() > opts.time_limit
        {
            break;
        }
        let open = leaves.iter().take_while(|l| l.1 > prop.eps).count();
        let take = open.min(batch);
        let worst: Vec<BoxRegion> = leaves.drain(..take).map(|l| l.0).collect();
        let halves: Vec<BoxRegion> = worst.iter().flat_map(BoxRegion::halve_widest).collect();
        let bounded: Vec<Result<(BoxRegion, f64)>> = halves
            .into_par_iter()
            .map(|b| {
                let v = area_variation(net, chain, prop, &b, opts.pieces)?;
                Ok((b, v))
            })
            .collect();
        for r in bounded {
            leaves.push(r?);
        }
    }
    let vb = leaves.iter().map(|l| l.1).fold(0.0, f64::max);
    Ok(VariationBound {
        vb,
        vb_unsplit: first,
        boxes: leaves.len(),
        proved: vb <= prop.eps,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Settings of [`pgd_variation`].
#[derive(Debug, Clone, PartialEq)]
pub struct VariationAttack {
    /// Random starts per sample point and output direction (besides the region's corners of
    /// the sensitive features, for fairness).
    pub restarts: usize,
    /// Signed-gradient steps per start.
    pub steps: usize,
    /// Seed of the random starts.
    pub seed: u64,
}

impl Default for VariationAttack {
    fn default() -> Self {
        Self {
            restarts: 2,
            steps: 20,
            seed: 0,
        }
    }
}

/// What the variation attack found.
#[derive(Debug, Clone, PartialEq)]
pub struct VariationReport {
    /// `PGD-B`: the largest `||f(x') - f(x)||_inf` found (a lower bound of the true variation).
    pub pgd_b: f64,
    /// `PGD-R`: the share of sample points with a perturbation that breaks `eps`.
    pub pgd_r: f64,
    /// Per sample point, the largest variation found.
    pub per_point: Vec<f64>,
    /// Per sample point, the perturbed input `x'` that reached it.
    pub partners: Vec<Vec<f64>>,
}

impl VariationReport {
    /// The sample point with the largest variation, if any variation was found.
    pub fn worst_index(&self) -> Option<usize> {
        (0..self.per_point.len())
            .filter(|&i| self.per_point[i] > 0.0)
            .max_by(|&a, &b| self.per_point[a].total_cmp(&self.per_point[b]))
    }
}

/// Searches, from each sample point `x`, for the perturbation `x'` allowed by `prop` that
/// changes the output most: for every output and both signs, signed-gradient ascent on
/// `±(f_o(x') - f_o(x))` with projection, from random starts (and, for fairness, from the ends
/// of the sensitive range). Every value is an f64 forward pass of the chain.
pub fn pgd_variation(
    chain: &Chain,
    prop: &GlobalProperty,
    points: &[Vec<f64>],
    opts: &VariationAttack,
) -> VariationReport {
    let free = prop.free_dims();
    // Ascent on the measure's rows; the value of a pair is the measure itself (for
    // probabilities the softmax change, a lower bound of the true variation like any attack).
    let measured = chain.measured(prop);
    let probs = prop.measure == OutputMeasure::Probabilities;
    let outputs = measured.output_len();
    let results: Vec<(f64, Vec<f64>)> = points
        .par_iter()
        .enumerate()
        .map(|(p, x)| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed ^ (p as u64) << 20);
            let y0 = chain.forward(x);
            let p0 = if probs { softmax(&y0) } else { Vec::new() };
            let dx = prop.dx_box(&BoxRegion {
                lower: x.clone(),
                upper: x.clone(),
            });
            let mut best = (0.0, x.clone());
            let consider = |x2: &[f64], y2: &[f64], best: &mut (f64, Vec<f64>)| {
                let v = if probs {
                    let p2 = softmax(&chain.forward(x2));
                    p2.iter()
                        .zip(&p0)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max)
                } else {
                    y2.iter()
                        .zip(&y0)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max)
                };
                if v > best.0 {
                    *best = (v, x2.to_vec());
                }
            };
            let mut starts: Vec<Vec<f64>> = Vec::new();
            if free.len() < x.len() {
                for corner in [true, false] {
                    let mut s = x.clone();
                    for &f in &free {
                        s[f] = if corner { dx.upper[f] } else { dx.lower[f] } + x[f];
                    }
                    starts.push(s);
                }
            }
            for _ in 0..opts.restarts {
                let mut s = x.clone();
                for &f in &free {
                    s[f] = x[f] + rng.random_range(dx.lower[f]..=dx.upper[f]);
                }
                starts.push(s);
            }
            for start in &starts {
                for o in 0..outputs {
                    for sign in [1.0, -1.0] {
                        let mut x2 = start.clone();
                        for step in 0..opts.steps {
                            let (y2, g) = measured.gradient(&x2, o);
                            consider(&x2, &y2, &mut best);
                            let frac = 0.25 * (1.0 - 0.9 * step as f64 / opts.steps as f64);
                            for &f in &free {
                                x2[f] += sign * frac * (dx.upper[f] - dx.lower[f]) * g[f].signum();
                            }
                            prop.project(x, &mut x2);
                        }
                        let y2 = measured.forward(&x2);
                        consider(&x2, &y2, &mut best);
                    }
                }
            }
            best
        })
        .collect();
    let (per_point, partners): (Vec<f64>, Vec<Vec<f64>>) = results.into_iter().unzip();
    let pgd_b = per_point.iter().copied().fold(0.0, f64::max);
    let violating = per_point.iter().filter(|&&v| v > prop.eps).count();
    VariationReport {
        pgd_b,
        pgd_r: if points.is_empty() {
            0.0
        } else {
            violating as f64 / points.len() as f64
        },
        per_point,
        partners,
    }
}

/// Softmax of logits, shifted by their maximum.
fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// The L-inf operator norm of the Jacobian at `x` over the perturbable features:
/// `max_o sum_k |df_o/dx_k|` (of the measure's rows, times its factor). A counterexample pair needs a point between them where this
/// exceeds `eps / diameter(Omega)` (seed 002, Theorem 1).
pub fn jacobian_norm(chain: &Chain, prop: &GlobalProperty, x: &[f64]) -> f64 {
    let measured;
    let c = if prop.measure == OutputMeasure::Logits {
        chain
    } else {
        measured = chain.measured(prop);
        &measured
    };
    prop.measure.factor()
        * c.jacobian(x, &prop.free_dims())
            .iter()
            .map(|row| row.iter().map(|v| v.abs()).sum::<f64>())
            .fold(0.0, f64::max)
}

/// `n` points drawn uniformly from a box.
pub fn uniform_points(region: &BoxRegion, n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            region
                .lower
                .iter()
                .zip(&region.upper)
                .map(|(&l, &u)| if u > l { rng.random_range(l..=u) } else { l })
                .collect()
        })
        .collect()
}

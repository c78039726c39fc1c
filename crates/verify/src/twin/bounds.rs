//! Twin bounds: linear bounds of the difference `v(x + dx) - v(x)` of every value by
//! back-substitution (see the module documentation of `twin`).

use netrepair_nn::Network;
use netrepair_spec::{BoxRegion, GlobalProperty};
use rayon::prelude::*;

use super::chain::{axpy, Chain, Step};
use crate::crown::linear_bounds;
use crate::error::{Result, VerifyError};
use crate::interval::Bounds;
use crate::rounding::{down, gamma, up};

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
pub(super) struct DiffRelax {
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
pub(super) fn relu_diff(
    l: f64,
    u: f64,
    xl: f64,
    xu: f64,
    yl: f64,
    yu: f64,
) -> (DiffRelax, f64, f64) {
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
pub(super) fn back_substitute(
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
pub(super) fn concretise_up(row: &[f64], c: f64, dx: &BoxRegion) -> f64 {
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
pub(super) fn interval_step(step: &Step, d: &Bounds) -> Bounds {
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

pub(super) fn check_dims(
    chain: &Chain,
    area: &BoxRegion,
    twin: &BoxRegion,
    dx: &BoxRegion,
) -> Result<()> {
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
pub(super) fn twin_bounds_from(
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
pub(super) fn linear_diff(
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

//! Optimised ReLU lower slopes (alpha-CROWN): the lower relaxation `alpha x` of an unstable
//! ReLU is sound for every `alpha` in `[0, 1]`, so the slope of each neuron, for each bounded
//! row, can be chosen to make that row's bound as tight as possible.
//!
//! The bound is piecewise linear in the slopes, and its gradient needs no automatic
//! differentiation: with the relaxation lines a back-substitution chose, the bound is the value
//! of the relaxed network at the input corner it concretised to, so the derivative with respect
//! to a neuron's slope is its output coefficient `lambda` times its pre-activation at that
//! point, found by one forward pass through the chosen lines ([`primal`]). The slopes take
//! projected Adam steps; every iterate is a sound bound, and each row keeps its best.

use std::time::Instant;

use netrepair_nn::{Layer, Network};
use netrepair_spec::BoxRegion;

use crate::affine::{dense_dot, not_boundable, sparse_dot, Ops};
use crate::crown::{
    backsub, bound_targets, chosen, intersect, linear_bounds_with, negated_then_plain,
    refresh_after, relaxation, Bounded, Mat, Split,
};
use crate::error::Result;
use crate::interval::Bounds;

/// How the slopes are optimised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlphaOptions {
    /// Gradient steps (0: the plain back-substitution).
    pub iterations: usize,
    /// Adam's step size on the slopes.
    pub learning_rate: f64,
    /// Gradient steps per sub-domain of the ReLU branch and bound (slopes and split
    /// multipliers).
    pub branch_iterations: usize,
}

impl AlphaOptions {
    /// No optimisation: CROWN's adaptive slopes (and, in [`crate::check_property`], no ReLU
    /// branch and bound).
    pub fn none() -> Self {
        Self {
            iterations: 0,
            branch_iterations: 0,
            ..Self::default()
        }
    }
}

impl Default for AlphaOptions {
    fn default() -> Self {
        Self {
            iterations: 20,
            learning_rate: 0.1,
            branch_iterations: 10,
        }
    }
}

/// The best upper bound found for each row.
pub(crate) struct Optimised {
    pub upper: Vec<f64>,
    /// The input coefficients of the plain back-substitution (the first iterate), which guide
    /// input splitting far better than the optimised ones: on ACAS Xu N3,3 property 3, 21
    /// boxes against 16,405 with the optimised coefficients.
    pub input_coef: Option<Mat>,
}

/// Upper bounds of the rows of `lambda · value[target]`, tightened by optimising the lower
/// slopes of unstable ReLU neurons (per row); never looser than the plain back-substitution,
/// which is its first iterate. `done` is asked after each iterate whether the bounds found so
/// far suffice.
pub(crate) fn optimised_upper_rows(
    ops: &Ops,
    bounds: &[Bounds],
    target: usize,
    lambda: Mat,
    opts: &AlphaOptions,
    splits: &[Split],
    done: &dyn Fn(&[f64]) -> bool,
) -> Result<Optimised> {
    let net = ops.net();
    let ctx = Bounded::new(ops, bounds);
    let rows = lambda.rows;
    let mut slopes = initial_slopes(net, bounds, target, rows);
    // Split multipliers (beta-CROWN), per row and split, starting at 0 (the plain bound).
    let mut betas = Mat::zeros(rows, splits.len());
    let mut beta_adam = (vec![0.0; betas.data.len()], vec![0.0; betas.data.len()]);
    let free = slopes.iter().flatten().count() > 0 || !splits.is_empty();
    let mut best: Option<Optimised> = None;
    let mut adam: Vec<Option<(Vec<f64>, Vec<f64>)>> = slopes
        .iter()
        .map(|s| {
            s.as_ref()
                .map(|m| (vec![0.0; m.data.len()], vec![0.0; m.data.len()]))
        })
        .collect();
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    for it in 0..=opts.iterations {
        let last = it == opts.iterations || !free;
        let multipliers = (!splits.is_empty()).then_some((splits, &betas));
        let b = backsub(
            &ctx,
            target,
            lambda.clone(),
            Some(&slopes),
            multipliers,
            !last,
        )?;
        match &mut best {
            None => {
                best = Some(Optimised {
                    upper: b.upper.clone(),
                    input_coef: b.input_coef.clone(),
                })
            }
            Some(o) => {
                for (u, &v) in o.upper.iter_mut().zip(&b.upper) {
                    *u = u.min(v);
                }
            }
        }
        let o = best.as_ref().expect("set above");
        if last || done(&o.upper) {
            break;
        }
        let values = primal(&ctx, target, &b, &slopes)?;
        let step = opts.learning_rate
            * ((1.0 - f64::powi(b2, it as i32 + 1)).sqrt() / (1.0 - f64::powi(b1, it as i32 + 1)));
        for (j, sp) in splits.iter().enumerate() {
            let Some(z) = values[sp.value].as_ref() else {
                continue;
            };
            let (m, v) = (&mut beta_adam.0, &mut beta_adam.1);
            for r in 0..rows {
                // d bound / d beta = -s z at the primal point.
                let e = r * splits.len() + j;
                let g = -sp.sign() * z.data[r * z.cols + sp.neuron];
                m[e] = b1 * m[e] + (1.0 - b1) * g;
                v[e] = b2 * v[e] + (1.0 - b2) * g * g;
                betas.data[e] = (betas.data[e] - step * m[e] / (v[e].sqrt() + eps)).max(0.0);
            }
        }
        for (i, slot) in slopes.iter_mut().enumerate() {
            let (Some(alpha), Some(lam), Some(z)) = (
                slot.as_mut(),
                b.lams[i].as_ref(),
                values[net.nodes()[i].inputs()[0]].as_ref(),
            ) else {
                continue;
            };
            let (m, v) = adam[i].as_mut().expect("allocated with the slopes");
            let pre = &bounds[net.nodes()[i].inputs()[0]];
            for e in 0..alpha.data.len() {
                let g = slope_gradient(pre, e % alpha.cols, lam.data[e], z.data[e]);
                m[e] = b1 * m[e] + (1.0 - b1) * g;
                v[e] = b2 * v[e] + (1.0 - b2) * g * g;
                alpha.data[e] = (alpha.data[e] - step * m[e] / (v[e].sqrt() + eps)).clamp(0.0, 1.0);
            }
        }
    }
    Ok(best.expect("at least one iterate"))
}

/// `d bound / d alpha` of neuron `k` for one row: its output coefficient `lam` times its
/// pre-activation `z` at the primal point where the slope is used (an unstable neuron under a
/// negative coefficient), else 0.
fn slope_gradient(pre: &Bounds, k: usize, lam: f64, z: f64) -> f64 {
    if lam < 0.0 && pre.lower[k] < 0.0 && pre.upper[k] > 0.0 {
        lam * z
    } else {
        0.0
    }
}

/// Starting slopes: CROWN's adaptive choice (1 where `u > -l`, else 0) for every ReLU node
/// before `target` that has an unstable neuron; `None` elsewhere.
fn initial_slopes(
    net: &Network,
    bounds: &[Bounds],
    target: usize,
    rows: usize,
) -> Vec<Option<Mat>> {
    (0..target)
        .map(|i| {
            let node = &net.nodes()[i];
            if !matches!(node.layer(), Layer::Relu) {
                return None;
            }
            let pre = &bounds[node.inputs()[0]];
            let n = pre.lower.len();
            if !(0..n).any(|k| pre.lower[k] < 0.0 && pre.upper[k] > 0.0) {
                return None;
            }
            let mut m = Mat::zeros(rows, n);
            for r in 0..rows {
                for k in 0..n {
                    m.data[r * n + k] = if pre.upper[k] > -pre.lower[k] {
                        1.0
                    } else {
                        0.0
                    };
                }
            }
            Some(m)
        })
        .collect()
}

/// Every value of the relaxed network (per row) at the input corner a back-substitution
/// concretised to, through the lines it chose: the point where its bound is attained. `None`
/// for values the rows do not depend on.
pub(crate) fn primal(
    ctx: &Bounded,
    target: usize,
    b: &crate::crown::Backsub,
    slopes: &[Option<Mat>],
) -> Result<Vec<Option<Mat>>> {
    let (ops, bounds) = (ctx.ops, ctx.bounds);
    let net = ops.net();
    let mut values: Vec<Option<Mat>> = vec![None; target + 1];
    let Some(c0) = &b.input_coef else {
        return Ok(values);
    };
    let input = &bounds[0];
    let mut x = Mat::zeros(c0.rows, c0.cols);
    for (e, &c) in c0.data.iter().enumerate() {
        let j = e % c0.cols;
        x.data[e] = if c >= 0.0 {
            input.upper[j]
        } else {
            input.lower[j]
        };
    }
    values[0] = Some(x);
    for i in 0..target {
        let Some(lam) = b.lams[i].as_ref() else {
            continue;
        };
        let node = &net.nodes()[i];
        let rows = lam.rows;
        let out_len = lam.cols;
        let input_of = |v: usize| values[v].as_ref();
        let mut out = Mat::zeros(rows, out_len);
        if let Some(op) = ops.affine(i)? {
            let x = input_of(node.inputs()[0]).expect("an input the rows depend on");
            let dense = ops.dense(i, x.cols)?;
            for r in 0..rows {
                let xr = x.row(r);
                for (o, row) in op.rows.iter().enumerate() {
                    let dot = match dense {
                        Some(w) => dense_dot(&w[o * x.cols..(o + 1) * x.cols], xr, |w| w),
                        None => sparse_dot(row, xr, |w| w),
                    };
                    out.data[r * out_len + o] = op.bias[o] + dot;
                }
            }
        } else if let Some((a, c)) = ops.elementwise(i)? {
            let x = input_of(node.inputs()[0]).expect("an input the rows depend on");
            for (e, v) in out.data.iter_mut().enumerate() {
                let k = e % out_len;
                *v = a[k] * x.data[e] + c[k];
            }
        } else {
            match node.layer() {
                Layer::Flatten | Layer::Reshape(_) => out
                    .data
                    .copy_from_slice(&input_of(node.inputs()[0]).expect("an input").data),
                Layer::Add => {
                    let (p, q) = (
                        input_of(node.inputs()[0]).expect("an input"),
                        input_of(node.inputs()[1]).expect("an input"),
                    );
                    for (e, v) in out.data.iter_mut().enumerate() {
                        *v = p.data[e] + q.data[e];
                    }
                }
                Layer::Relu | Layer::Sigmoid | Layer::Tanh => {
                    let inp = node.inputs()[0];
                    let x = input_of(inp).expect("an input the rows depend on");
                    let (pre, post) = (&bounds[inp], &bounds[i + 1]);
                    let alpha = slopes.get(i).and_then(Option::as_ref);
                    for k in 0..out_len {
                        let rx = relaxation(
                            node.layer(),
                            pre.lower[k],
                            pre.upper[k],
                            post.lower[k],
                            post.upper[k],
                        );
                        for r in 0..rows {
                            let e = r * out_len + k;
                            let (s, c) = chosen(&rx, lam.data[e], alpha.map(|a| a.data[e]), pre, k);
                            out.data[e] = s * x.data[e] + c;
                        }
                    }
                }
                Layer::MaxPool2d(_) => {
                    let ob = &bounds[i + 1];
                    for (e, v) in out.data.iter_mut().enumerate() {
                        let k = e % out_len;
                        *v = if lam.data[e] >= 0.0 {
                            ob.upper[k]
                        } else {
                            ob.lower[k]
                        };
                    }
                }
                Layer::Concat { .. } => {
                    let src = net.concat_sources(i).expect("a concatenation");
                    for r in 0..rows {
                        for (o, &(v, j)) in src.iter().enumerate() {
                            let x = input_of(v).expect("an input the rows depend on");
                            out.data[r * out_len + o] = x.data[r * x.cols + j];
                        }
                    }
                }
                Layer::Opaque(_) => return Err(not_boundable(net, i)),
                _ => unreachable!("linear maps handled above"),
            }
        }
        values[i + 1] = Some(out);
    }
    Ok(values)
}

/// [`row_bounds`] with the ReLU lower slopes optimised for each row (alpha-CROWN, see
/// [`AlphaOptions`]): never looser, often tighter, at `alpha.iterations` back-substitutions.
pub fn optimised_row_bounds(
    net: &Network,
    bounds: &[Bounds],
    target: usize,
    rows: &[Vec<f64>],
    alpha: &AlphaOptions,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = rows.len();
    let both = negated_then_plain(rows, bounds[target].lower.len());
    let ops = Ops::new(net);
    let mut upper = optimised_upper_rows(&ops, bounds, target, both, alpha, &[], &|_| false)?.upper;
    let lower = upper.drain(..n).map(|v| -v).collect();
    Ok((lower, upper))
}

/// [`linear_bounds`] tightened by optimising the ReLU lower slopes (alpha-CROWN) for each
/// unstable neuron's own bounds: starting from the plain bounds, every ReLU's pre-activation
/// (in order, each using the tightened bounds before it) and the output are bounded again,
/// only in the rows still open (an unstable neuron's upper and lower bound; every output). Far
/// costlier than the plain bounds (`alpha.iterations` back-substitutions of those rows), and
/// tighter: fewer unstable neurons and smaller big-M constants for the MILP.
pub fn optimised_linear_bounds(
    net: &Network,
    input: &BoxRegion,
    alpha: &AlphaOptions,
) -> Result<Vec<Bounds>> {
    optimised_linear_bounds_until(&Ops::new(net), input, alpha, None)
}

/// [`optimised_linear_bounds`] that stops optimising at `deadline` (the bounds are sound at
/// every point: each layer's are only ever intersected with tighter ones).
pub(crate) fn optimised_linear_bounds_until(
    ops: &Ops,
    input: &BoxRegion,
    alpha: &AlphaOptions,
    deadline: Option<Instant>,
) -> Result<Vec<Bounds>> {
    let late = || deadline.is_some_and(|d| Instant::now() > d);
    let net = ops.net();
    let mut b = linear_bounds_with(ops, input)?;
    if alpha.iterations == 0 {
        return Ok(b);
    }
    let last = net.nodes().len();
    for v in bound_targets(net) {
        let n = b[v].lower.len();
        let open: Vec<usize> = if v == last {
            (0..n).collect()
        } else {
            (0..n)
                .filter(|&k| b[v].lower[k] < 0.0 && b[v].upper[k] > 0.0)
                .collect()
        };
        if open.is_empty() {
            continue;
        }
        // Rows: +e_k (upper bounds) then -e_k (minus lower bounds).
        let rows = 2 * open.len();
        let mut lambda = Mat::zeros(rows, n);
        for (r, &k) in open.iter().enumerate() {
            lambda.data[r * n + k] = 1.0;
            lambda.data[(open.len() + r) * n + k] = -1.0;
        }
        if late() {
            break;
        }
        let best = optimised_upper_rows(ops, &b, v, lambda, alpha, &[], &|_| late())?;
        let (mut lo, mut hi) = (b[v].lower.clone(), b[v].upper.clone());
        for (r, &k) in open.iter().enumerate() {
            hi[k] = hi[k].min(best.upper[r]);
            lo[k] = lo[k].max(-best.upper[open.len() + r]);
        }
        intersect(&mut b[v], &lo, &hi);
        refresh_after(ops, &mut b, v)?;
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crown::linear_bounds;
    use netrepair_nn::{mlp, Activation};
    use netrepair_spec::BoxRegion;

    fn setup(seed: u64) -> (Network, Vec<Bounds>, Mat) {
        let net = mlp(&[3, 16, 16, 16, 2], Activation::Relu, seed).unwrap();
        let c = [0.3, -0.2, 0.1];
        let bx = BoxRegion::new(
            c.iter().map(|v| v - 0.4).collect(),
            c.iter().map(|v| v + 0.4).collect(),
        )
        .unwrap();
        let bounds = linear_bounds(&net, &bx).unwrap();
        let lambda = Mat {
            rows: 2,
            cols: 2,
            data: vec![1.0, -1.0, -0.5, 2.0],
        };
        (net, bounds, lambda)
    }

    /// Slopes strictly inside (0, 1), different per row and neuron.
    fn some_slopes(
        net: &Network,
        bounds: &[Bounds],
        target: usize,
        rows: usize,
    ) -> Vec<Option<Mat>> {
        let mut s = initial_slopes(net, bounds, target, rows);
        for (i, m) in s.iter_mut().flatten().enumerate() {
            for (e, v) in m.data.iter_mut().enumerate() {
                *v = 0.1 + 0.8 * (((e * 7 + i * 3) % 11) as f64 / 10.0);
            }
        }
        s
    }

    /// One recorded back-substitution with `slopes`, and the primal values of its lines.
    fn bound_and_primal(
        net: &Network,
        bounds: &[Bounds],
        lambda: &Mat,
        slopes: &[Option<Mat>],
    ) -> (crate::crown::Backsub, Vec<Option<Mat>>) {
        let ops = Ops::new(net);
        let ctx = Bounded::new(&ops, bounds);
        let target = net.nodes().len();
        let b = backsub(&ctx, target, lambda.clone(), Some(slopes), None, true).unwrap();
        let v = primal(&ctx, target, &b, slopes).unwrap();
        (b, v)
    }

    #[test]
    fn the_bound_is_the_relaxed_network_at_the_primal_point() {
        for seed in 0..5 {
            let (net, bounds, lambda) = setup(seed);
            let target = net.nodes().len();
            let slopes = some_slopes(&net, &bounds, target, lambda.rows);
            let (b, v) = bound_and_primal(&net, &bounds, &lambda, &slopes);
            let y = v[target].as_ref().unwrap();
            for r in 0..lambda.rows {
                let at: f64 = (0..lambda.cols)
                    .map(|k| lambda.data[r * lambda.cols + k] * y.data[r * y.cols + k])
                    .sum();
                assert!(
                    b.upper[r] >= at && b.upper[r] - at < 1e-9,
                    "row {r}: bound {} value {at}",
                    b.upper[r]
                );
            }
        }
    }

    #[test]
    fn the_slope_gradient_matches_finite_differences() {
        let mut checked = 0;
        for seed in 0..5 {
            let (net, bounds, lambda) = setup(seed);
            let target = net.nodes().len();
            let slopes = some_slopes(&net, &bounds, target, lambda.rows);
            let (b, v) = bound_and_primal(&net, &bounds, &lambda, &slopes);
            for i in 0..target {
                let (Some(alpha), Some(lam)) = (&slopes[i], &b.lams[i]) else {
                    continue;
                };
                let z = v[net.nodes()[i].inputs()[0]].as_ref().unwrap();
                for e in (0..alpha.data.len()).step_by(5) {
                    let pre = &bounds[net.nodes()[i].inputs()[0]];
                    let g = slope_gradient(pre, e % alpha.cols, lam.data[e], z.data[e]);
                    let h = 1e-6;
                    let bound_at = |d: f64| {
                        let mut s = slopes.clone();
                        s[i].as_mut().unwrap().data[e] += d;
                        backsub(
                            &Bounded::new(&Ops::new(&net), &bounds),
                            target,
                            lambda.clone(),
                            Some(&s),
                            None,
                            false,
                        )
                        .unwrap()
                        .upper[e / alpha.cols]
                    };
                    let fd = (bound_at(h) - bound_at(-h)) / (2.0 * h);
                    assert!(
                        (fd - g).abs() < 1e-4 * (1.0 + g.abs()),
                        "node {i} entry {e}: {fd} vs {g}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 50, "{checked}");
    }
}

#[cfg(test)]
mod improve {
    use super::*;
    use crate::crown::linear_bounds;
    use netrepair_nn::{mlp, Activation};
    use netrepair_spec::BoxRegion;

    #[test]
    fn optimised_bounds_are_never_looser_and_often_tighter() {
        let (mut tighter, mut total, mut gain) = (0, 0, 0.0);
        for seed in 0..10 {
            let net = mlp(&[5, 50, 50, 50, 5], Activation::Relu, seed).unwrap();
            let bx = BoxRegion::new(vec![-0.3; 5], vec![0.3; 5]).unwrap();
            let bounds = linear_bounds(&net, &bx).unwrap();
            let target = net.nodes().len();
            let lambda = Mat {
                rows: 4,
                cols: 5,
                data: (0..20)
                    .map(|e| {
                        if e % 6 == 0 {
                            1.0
                        } else if e % 5 == 1 {
                            -1.0
                        } else {
                            0.0
                        }
                    })
                    .collect(),
            };
            let plain = backsub(
                &Bounded::new(&Ops::new(&net), &bounds),
                target,
                lambda.clone(),
                None,
                None,
                false,
            )
            .unwrap()
            .upper;
            let opt = optimised_upper_rows(
                &Ops::new(&net),
                &bounds,
                target,
                lambda,
                &AlphaOptions::default(),
                &[],
                &|_| false,
            )
            .unwrap()
            .upper;
            for (p, o) in plain.iter().zip(&opt) {
                assert!(o <= p);
                total += 1;
                if *o < p - 1e-9 {
                    tighter += 1;
                    gain += (p - o) / p.abs().max(1e-9);
                }
            }
        }
        eprintln!(
            "tighter {tighter}/{total}, mean relative gain {}",
            gain / total as f64
        );
        assert!(tighter > total / 2);
    }
}

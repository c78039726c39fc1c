//! Attacks: projected gradient descent (PGD, L-inf, random restarts) and FGSM, searching an
//! input box for an output inside an unsafe polytope. Every candidate is re-checked with a
//! concrete f64 forward pass before it is returned.

use candle_core::{DType, Device, Tensor};
use netrepair_nn::Network;
use netrepair_spec::{BoxRegion, Case, Polytope};
use rand::{Rng, SeedableRng};

use crate::error::Result;

/// Settings of [`pgd`].
#[derive(Debug, Clone, PartialEq)]
pub struct PgdOptions {
    /// Starting points run together: the box centre, then uniform random points.
    pub restarts: usize,
    /// Gradient steps per start.
    pub steps: usize,
    /// Step size as a fraction of each coordinate's box width (decays linearly to a tenth).
    pub step_fraction: f64,
    /// Seed of the random starts.
    pub seed: u64,
}

impl Default for PgdOptions {
    fn default() -> Self {
        Self {
            restarts: 32,
            steps: 50,
            step_fraction: 0.1,
            seed: 0,
        }
    }
}

impl PgdOptions {
    /// FGSM: one full-width signed-gradient step from the centre.
    pub fn fgsm() -> Self {
        Self {
            restarts: 1,
            steps: 1,
            step_fraction: 1.0,
            seed: 0,
        }
    }
}

/// A confirmed counterexample: `x` lies in the box and `net(x)` (f64) in the unsafe region.
#[derive(Debug, Clone, PartialEq)]
pub struct Counterexample {
    /// The input (flattened).
    pub x: Vec<f64>,
    /// The network's output at `x`, computed in f64.
    pub y: Vec<f64>,
}

/// Largest constraint slack of `y` (`<= 0` means `y` is in the polytope), batched:
/// `y` `[B, m]` -> `[B]`.
fn slack(y: &Tensor, poly: &Polytope, m: usize) -> candle_core::Result<Tensor> {
    let k = poly.constraints.len().max(1);
    let mut c = vec![0.0; k * m];
    let mut rhs = vec![0.0; k];
    for (r, con) in poly.constraints.iter().enumerate() {
        for &(j, a) in &con.coeffs {
            c[r * m + j] += a;
        }
        rhs[r] = con.rhs;
    }
    let c = Tensor::from_vec(c, (k, m), &Device::Cpu)?;
    let rhs = Tensor::from_vec(rhs, (1, k), &Device::Cpu)?;
    y.matmul(&c.t()?)?.broadcast_sub(&rhs)?.max(1)
}

/// Checks a batch concretely; returns the first point whose f64 output is unsafe.
pub(crate) fn confirm(
    net: &Network,
    case: &Case,
    xs: &[Vec<f64>],
) -> Result<Option<Counterexample>> {
    let n = xs.len();
    let mut dims = vec![n];
    dims.extend_from_slice(net.input_shape());
    let y = net.forward_f64(
        &Tensor::from_vec(xs.concat(), dims, &Device::Cpu).map_err(netrepair_nn::NnError::from)?,
    )?;
    let y = y
        .reshape((n, ()))
        .and_then(|t| t.to_vec2::<f64>())
        .map_err(netrepair_nn::NnError::from)?;
    for (x, y) in xs.iter().zip(y) {
        if case.input.contains(x, 0.0) && case.is_unsafe_output(&y) {
            return Ok(Some(Counterexample { x: x.clone(), y }));
        }
    }
    Ok(None)
}

/// Searches the case's box for a counterexample by PGD on each unsafe polytope in turn.
pub fn pgd(net: &Network, case: &Case, opts: &PgdOptions) -> Result<Option<Counterexample>> {
    let b = &case.input;
    let n = b.dim();
    // Low-dimensional boxes (ACAS Xu: 5 inputs) are cheap to cover with many starts, and their
    // counterexamples can be rare: use at least 1024 there.
    let restarts = if n <= 16 {
        opts.restarts.max(1024)
    } else {
        opts.restarts.max(1)
    };
    let m = net.output_len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    for poly in &case.unsafe_region {
        let mut xs = starts(b, restarts, &mut rng);
        if let Some(cex) = confirm(net, case, &xs)? {
            return Ok(Some(cex));
        }
        for step in 0..opts.steps {
            let decay = 1.0 - 0.9 * step as f64 / opts.steps.max(1) as f64;
            let mut dims = vec![xs.len()];
            dims.extend_from_slice(net.input_shape());
            let x = Tensor::from_vec(xs.concat(), dims, &Device::Cpu)
                .map_err(netrepair_nn::NnError::from)?;
            let (g, _) = net.input_gradient(
                &x.to_dtype(DType::F64)
                    .map_err(netrepair_nn::NnError::from)?,
                |y| {
                    let y = y.reshape((xs.len(), m))?;
                    slack(&y, poly, m)?.sum_all()
                },
            )?;
            let g = g
                .reshape((xs.len(), n))
                .and_then(|t| t.to_vec2::<f64>())
                .map_err(netrepair_nn::NnError::from)?;
            signed_step(&mut xs, &g, b, -opts.step_fraction * decay);
            if let Some(cex) = confirm(net, case, &xs)? {
                return Ok(Some(cex));
            }
        }
    }
    Ok(None)
}

/// The box centre, then `restarts - 1` uniform random points of the box.
fn starts(b: &BoxRegion, restarts: usize, rng: &mut impl Rng) -> Vec<Vec<f64>> {
    (0..restarts.max(1))
        .map(|r| {
            if r == 0 {
                b.center()
            } else {
                (0..b.dim())
                    .map(|i| rng.random_range(b.lower[i]..=b.upper[i]))
                    .collect()
            }
        })
        .collect()
}

/// Moves each point by `fraction` of the box width along the sign of its gradient (against
/// it for a negative `fraction`), clamped to the box.
fn signed_step(xs: &mut [Vec<f64>], grads: &[Vec<f64>], b: &BoxRegion, fraction: f64) {
    for (x, g) in xs.iter_mut().zip(grads) {
        for i in 0..x.len() {
            let stepped = x[i] + fraction * (b.upper[i] - b.lower[i]) * g[i].signum();
            x[i] = stepped.clamp(b.lower[i], b.upper[i]);
        }
    }
}

/// The largest `row . net(x)` over the box that signed-gradient ascent reaches (`opts`'
/// starts, steps and decaying step size), from f64 forward passes: a lower bound of the true
/// maximum, to set beside the upper bounds.
pub fn pgd_maximum(net: &Network, b: &BoxRegion, row: &[f64], opts: &PgdOptions) -> Result<f64> {
    let n = b.dim();
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let mut xs = starts(b, opts.restarts, &mut rng);
    let mut dims = vec![xs.len()];
    dims.extend_from_slice(net.input_shape());
    let nn =
        |e: candle_core::Error| crate::error::VerifyError::from(netrepair_nn::NnError::from(e));
    let r = Tensor::from_vec(row.to_vec(), (row.len(), 1), &Device::Cpu).map_err(nn)?;
    let value = |xs: &[Vec<f64>]| -> Result<f64> {
        let x = Tensor::from_vec(xs.concat(), dims.clone(), &Device::Cpu).map_err(nn)?;
        let y = net.forward_f64(&x)?;
        y.reshape((xs.len(), row.len()))
            .and_then(|y| y.matmul(&r)?.max_all()?.to_scalar::<f64>())
            .map_err(nn)
    };
    let mut best = value(&xs)?;
    for step in 0..opts.steps {
        let decay = 1.0 - 0.9 * step as f64 / opts.steps.max(1) as f64;
        let x = Tensor::from_vec(xs.concat(), dims.clone(), &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F64))
            .map_err(nn)?;
        let (g, _) = net.input_gradient(&x, |y| {
            y.reshape((xs.len(), row.len()))?
                .matmul(&r.to_dtype(y.dtype())?)?
                .sum_all()
        })?;
        let g = g
            .reshape((xs.len(), n))
            .and_then(|t| t.to_vec2::<f64>())
            .map_err(nn)?;
        signed_step(&mut xs, &g, b, opts.step_fraction * decay);
        best = best.max(value(&xs)?);
    }
    Ok(best)
}

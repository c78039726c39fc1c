//! Interval bound propagation (IBP) through every layer type, sound in f64.

use netrepair_nn::{Layer, Network, Pool2d};

use crate::affine::{not_boundable, Ops};
use netrepair_nn::pool_windows;
use netrepair_spec::{BoxRegion, Polytope};

use crate::error::{Result, VerifyError};
use crate::rounding::{down, gamma, libm_down, libm_up, up, U};

/// Lower and upper bounds of every scalar of one value (flattened, row-major per sample).
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds {
    /// Lower bounds.
    pub lower: Vec<f64>,
    /// Upper bounds.
    pub upper: Vec<f64>,
}

impl Bounds {
    fn map(&self, f: impl Fn(f64) -> f64, g: impl Fn(f64) -> f64) -> Self {
        Self {
            lower: self.lower.iter().map(|&v| f(v)).collect(),
            upper: self.upper.iter().map(|&v| g(v)).collect(),
        }
    }

    /// Whether `x` lies within the bounds.
    pub fn contains(&self, x: &[f64]) -> bool {
        x.len() == self.lower.len()
            && x.iter()
                .zip(self.lower.iter().zip(&self.upper))
                .all(|(v, (l, u))| l <= v && v <= u)
    }

    /// Largest width `upper - lower`.
    pub fn max_width(&self) -> f64 {
        self.lower
            .iter()
            .zip(&self.upper)
            .map(|(l, u)| u - l)
            .fold(0.0, f64::max)
    }
}

/// Sound bounds of every value of `net` (value 0 is the input, `i + 1` node `i`'s output) for
/// inputs in `input`.
pub fn interval_bounds(net: &Network, input: &BoxRegion) -> Result<Vec<Bounds>> {
    if input.dim() != net.input_len() {
        return Err(VerifyError::InputSize {
            expected: net.input_len(),
            got: input.dim(),
        });
    }
    let mut values = vec![Bounds {
        lower: input.lower.clone(),
        upper: input.upper.clone(),
    }];
    for i in 0..net.nodes().len() {
        let out = propagate_node(net, i, &values)?;
        values.push(out);
    }
    Ok(values)
}

/// Interval bounds of node `i`'s output from the bounds of the values before it.
pub(crate) fn propagate_node(net: &Network, i: usize, values: &[Bounds]) -> Result<Bounds> {
    propagate_with(&Ops::new(net), i, values)
}

/// [`propagate_node`] with the layers' linear maps from a cache.
pub(crate) fn propagate_with(ops: &Ops, i: usize, values: &[Bounds]) -> Result<Bounds> {
    let net = ops.net();
    let node = &net.nodes()[i];
    {
        let x = &values[node.inputs()[0]];
        let shape = net.value_shape(node.inputs()[0]);
        if let Some(op) = ops.affine(i)? {
            return Ok(affine(
                x,
                op.bias.len(),
                |o| op.bias[o],
                |o, f| op.rows[o].iter().for_each(|&(j, w)| f(j as usize, w)),
            ));
        }
        if let Some((a, c)) = ops.elementwise(i)? {
            return Ok(per_element(x, |k| (a[k], c[k])));
        }
        let out = match node.layer() {
            Layer::Relu => x.map(|v| v.max(0.0), |v| v.max(0.0)),
            Layer::Sigmoid => {
                let s = |v: f64| 1.0 / (1.0 + (-v).exp());
                x.map(|v| libm_down(s(v)).max(0.0), |v| libm_up(s(v)).min(1.0))
            }
            Layer::Tanh => x.map(
                |v| libm_down(v.tanh()).max(-1.0),
                |v| libm_up(v.tanh()).min(1.0),
            ),
            Layer::MaxPool2d(p) => max_pool(x, shape, p),
            Layer::Flatten | Layer::Reshape(_) => x.clone(),
            Layer::Add => {
                let y = &values[node.inputs()[1]];
                Bounds {
                    lower: x
                        .lower
                        .iter()
                        .zip(&y.lower)
                        .map(|(a, b)| (a + b).next_down())
                        .collect(),
                    upper: x
                        .upper
                        .iter()
                        .zip(&y.upper)
                        .map(|(a, b)| (a + b).next_up())
                        .collect(),
                }
            }
            Layer::Linear(_)
            | Layer::Conv2d(_)
            | Layer::AvgPool2d(_)
            | Layer::BatchNorm(_)
            | Layer::Elementwise(_)
            | Layer::Rearrange(_) => {
                unreachable!("handled as linear maps above")
            }
            Layer::Concat { .. } => {
                let src = net.concat_sources(i).expect("a concatenation");
                Bounds {
                    lower: src.iter().map(|&(v, j)| values[v].lower[j]).collect(),
                    upper: src.iter().map(|&(v, j)| values[v].upper[j]).collect(),
                }
            }
            Layer::Opaque(_) => return Err(not_boundable(net, i)),
        };
        Ok(out)
    }
}

/// Midpoints and radii with `[l, u]` inside `[m - r, m + r]`.
fn mid_rad(x: &Bounds) -> (Vec<f64>, Vec<f64>) {
    let m: Vec<f64> = x
        .lower
        .iter()
        .zip(&x.upper)
        .map(|(l, u)| 0.5 * (l + u))
        .collect();
    let r = m
        .iter()
        .zip(x.lower.iter().zip(&x.upper))
        .map(|(m, (l, u))| (u - m).max(m - l).next_up())
        .collect();
    (m, r)
}

/// `y_i = bias(i) + sum_j w_ij x_j` where `taps(i, f)` calls `f(j, w_ij)` for each term.
fn affine(
    x: &Bounds,
    outputs: usize,
    bias: impl Fn(usize) -> f64,
    taps: impl Fn(usize, &mut dyn FnMut(usize, f64)),
) -> Bounds {
    let (m, r) = mid_rad(x);
    let mut lower = Vec::with_capacity(outputs);
    let mut upper = Vec::with_capacity(outputs);
    for i in 0..outputs {
        let b = bias(i);
        let (mut mid, mut rad, mut mag, mut n) = (b, 0.0, b.abs(), 1usize);
        taps(i, &mut |j, w| {
            mid += w * m[j];
            rad += w.abs() * r[j];
            mag += w.abs() * m[j].abs();
            n += 1;
        });
        // Rounding of the two dot products and the final subtraction / addition.
        let err = gamma(n + 4) * (mag + 2.0 * rad);
        lower.push(down(mid - rad, err));
        upper.push(up(mid + rad, err));
    }
    Bounds { lower, upper }
}

/// `y_k = a_k x_k + c_k` per element; `a` and `c` may carry a few ulps of error of their own.
fn per_element(x: &Bounds, ac: impl Fn(usize) -> (f64, f64)) -> Bounds {
    let mut lower = Vec::with_capacity(x.lower.len());
    let mut upper = Vec::with_capacity(x.lower.len());
    for k in 0..x.lower.len() {
        let (a, c) = ac(k);
        let (lo, hi) = if a >= 0.0 {
            (x.lower[k], x.upper[k])
        } else {
            (x.upper[k], x.lower[k])
        };
        let (yl, yu) = (a * lo + c, a * hi + c);
        let err = 8.0 * U * (a.abs() * lo.abs().max(hi.abs()) + c.abs());
        lower.push(down(yl, err));
        upper.push(up(yu, err));
    }
    Bounds { lower, upper }
}

/// Max pooling is monotone in every input: the bounds are the window maxima of the bounds.
fn max_pool(x: &Bounds, shape: &[usize], p: &Pool2d) -> Bounds {
    let windows = pool_windows(p, shape);
    let max_of = |v: &[f64], cells: &[usize]| {
        cells
            .iter()
            .map(|&k| v[k])
            .fold(f64::NEG_INFINITY, f64::max)
    };
    Bounds {
        lower: windows
            .iter()
            .map(|cells| max_of(&x.lower, cells))
            .collect(),
        upper: windows
            .iter()
            .map(|cells| max_of(&x.upper, cells))
            .collect(),
    }
}

/// Whether the outputs within `out` can never lie in `poly`: some constraint's minimum over
/// the output box exceeds its right-hand side (computed with rounding downward).
pub fn unreachable_polytope(out: &Bounds, poly: &Polytope) -> bool {
    poly.constraints.iter().any(|c| {
        let (mut min, mut mag) = (0.0, 0.0);
        for &(j, a) in &c.coeffs {
            let t = if a >= 0.0 {
                a * out.lower[j]
            } else {
                a * out.upper[j]
            };
            min += t;
            mag += t.abs();
        }
        down(min, gamma(c.coeffs.len() + 1) * mag) > c.rhs
    })
}

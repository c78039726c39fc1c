//! Forward-only operations: what an imported network computes but no bound or repair method
//! handles (products of two runtime values, soft-max, arg-max, one-hot codes, casts to
//! integers, and weighted operations outside [`crate::Linear`] and [`crate::Conv2d`]).
//!
//! They run forward (so such a network loads, evaluates and is attacked), and every analysis
//! that needs more refuses them by node name. Their constants are part of the operation, not
//! parameters: a repair never edits them, and a drop-in export keeps them as they were.

use candle_core::Tensor;

use crate::error::{check_axis, NnError, Result};

/// An element-wise operation of two runtime values (with broadcasting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b` (for operands of different shapes; equal shapes use [`crate::Layer::Add`]).
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// 1 where `a == b`, else 0.
    Equal,
}

/// An element-wise function of one runtime value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    /// `|x|`.
    Abs,
    /// `e^x`.
    Exp,
    /// `ln x`.
    Log,
    /// `sqrt(x)`.
    Sqrt,
    /// Rounds down.
    Floor,
    /// Rounds up.
    Ceil,
    /// -1, 0 or 1.
    Sign,
    /// `min(max(x, lo), hi)`.
    Clip {
        /// Lower limit.
        lo: f64,
        /// Upper limit.
        hi: f64,
    },
    /// `x` where positive, `alpha x` elsewhere.
    LeakyRelu {
        /// Slope below zero.
        alpha: f64,
    },
}

/// A forward-only operation (see the module documentation). Axes are per-sample axes.
#[derive(Debug, Clone)]
pub enum Opaque {
    /// An element-wise function.
    Unary(UnaryOp),
    /// Two runtime operands, broadcast against each other (shapes aligned at the right).
    Binary(BinaryOp),
    /// Soft-max over `axis`, or with `through_last` over all axes from `axis` on taken as one
    /// (ONNX before opset 13).
    Softmax {
        /// First (or only) axis.
        axis: usize,
        /// Whether the axes after `axis` belong to the same distribution.
        through_last: bool,
    },
    /// Index of the largest element along `axis` (the first on ties), as a number.
    ArgMax {
        /// The axis searched.
        axis: usize,
        /// Whether the axis stays with size 1.
        keepdims: bool,
    },
    /// One-hot code of integer indices: a new axis `axis` of length `depth`, `on` at the index
    /// and `off` elsewhere (negative indices count from the end).
    OneHot {
        /// Length of the new axis.
        depth: usize,
        /// Value away from the index.
        off: f64,
        /// Value at the index.
        on: f64,
        /// Position of the new axis in the output.
        axis: usize,
    },
    /// A cast to an integer type: rounds toward zero.
    Truncate,
    /// A cast to bool: 1 where the input is non-zero.
    NonZero,
    /// `x W` over the last axis of a multi-axis value, weight `[k, m]` (ONNX `MatMul` on
    /// per-sample values of rank 2 or more).
    MatMul {
        /// The weight, `[k, m]`, f64.
        weight: Tensor,
    },
    /// A 2-D transposed convolution, weight `[C_in, C_out, kH, kW]` (one group).
    ConvTranspose {
        /// The weight, f64.
        weight: Tensor,
        /// The bias `[C_out]`, f64.
        bias: Tensor,
        /// Stride (equal along both axes).
        stride: usize,
        /// Padding removed on every side.
        padding: usize,
        /// Extra rows and columns added at the end.
        output_padding: usize,
        /// Dilation of the kernel.
        dilation: usize,
    },
}

/// Broadcast shape of two per-sample shapes aligned at the right.
fn broadcast(node: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let pad = |s: &[usize]| {
        let mut v = vec![1; r - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (pa, pb) = (pad(a), pad(b));
    pa.iter()
        .zip(&pb)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(NnError::ShapeMismatch {
                context: format!("operands of '{node}' (they do not broadcast)"),
                expected: a.to_vec(),
                got: b.to_vec(),
            }),
        })
        .collect()
}

/// `[N, 1.., shape...]` with rank `rank + 1`.
fn left_pad(x: &Tensor, rank: usize) -> Result<Tensor> {
    let dims = x.dims();
    if dims.len() == rank + 1 {
        return Ok(x.clone());
    }
    let mut shape = vec![dims[0]];
    shape.extend(std::iter::repeat_n(1, rank + 1 - dims.len()));
    shape.extend_from_slice(&dims[1..]);
    Ok(x.reshape(shape)?)
}

impl Opaque {
    /// A short name of the operation.
    pub fn kind(&self) -> &'static str {
        match self {
            Opaque::Unary(u) => match u {
                UnaryOp::Abs => "Abs",
                UnaryOp::Exp => "Exp",
                UnaryOp::Log => "Log",
                UnaryOp::Sqrt => "Sqrt",
                UnaryOp::Floor => "Floor",
                UnaryOp::Ceil => "Ceil",
                UnaryOp::Sign => "Sign",
                UnaryOp::Clip { .. } => "Clip",
                UnaryOp::LeakyRelu { .. } => "LeakyRelu",
            },
            Opaque::Binary(BinaryOp::Add) => "AddBroadcast",
            Opaque::Binary(BinaryOp::Sub) => "Sub",
            Opaque::Binary(BinaryOp::Mul) => "Mul",
            Opaque::Binary(BinaryOp::Div) => "Div",
            Opaque::Binary(BinaryOp::Equal) => "Equal",
            Opaque::Softmax { .. } => "Softmax",
            Opaque::ArgMax { .. } => "ArgMax",
            Opaque::OneHot { .. } => "OneHot",
            Opaque::Truncate => "CastToInt",
            Opaque::NonZero => "CastToBool",
            Opaque::MatMul { .. } => "MatMul",
            Opaque::ConvTranspose { .. } => "ConvTranspose",
        }
    }

    /// Number of runtime inputs.
    pub fn arity(&self) -> usize {
        if matches!(self, Opaque::Binary(_)) {
            2
        } else {
            1
        }
    }

    /// The per-sample output shape; `node` names the node in errors.
    pub fn output_shape(&self, node: &str, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let x = inputs[0];
        let axis_ok = |a: usize, rank: usize| check_axis(node, a, rank, x);
        match self {
            Opaque::Binary(_) => broadcast(node, x, inputs[1]),
            Opaque::Softmax { axis, .. } => {
                axis_ok(*axis, x.len())?;
                Ok(x.to_vec())
            }
            Opaque::ArgMax { axis, keepdims } => {
                axis_ok(*axis, x.len())?;
                let mut out = x.to_vec();
                if *keepdims {
                    out[*axis] = 1;
                } else {
                    out.remove(*axis);
                }
                Ok(out)
            }
            Opaque::OneHot { depth, axis, .. } => {
                axis_ok(*axis, x.len() + 1)?;
                let mut out = x.to_vec();
                out.insert(*axis, *depth);
                Ok(out)
            }
            Opaque::Unary(_) | Opaque::Truncate | Opaque::NonZero => Ok(x.to_vec()),
            Opaque::MatMul { weight } => {
                let (k, m) = (weight.dims()[0], weight.dims()[1]);
                match x.last() {
                    Some(&last) if last == k => {
                        let mut out = x.to_vec();
                        *out.last_mut().expect("non-empty") = m;
                        Ok(out)
                    }
                    _ => Err(NnError::ShapeMismatch {
                        context: format!("input of matrix product '{node}' (last axis)"),
                        expected: vec![k],
                        got: x.to_vec(),
                    }),
                }
            }
            Opaque::ConvTranspose {
                weight,
                stride,
                padding,
                output_padding,
                dilation,
                ..
            } => {
                let w = weight.dims();
                if x.len() != 3 || x[0] != w[0] {
                    return Err(NnError::ShapeMismatch {
                        context: format!("input [C, H, W] of transposed convolution '{node}'"),
                        expected: vec![w[0]],
                        got: x.to_vec(),
                    });
                }
                let size = |i: usize, k: usize| {
                    ((i - 1) * stride + dilation * (k - 1) + output_padding + 1)
                        .checked_sub(2 * padding)
                        .filter(|&s| s > 0)
                        .ok_or_else(|| {
                            NnError::invalid_layer(node, "the padding removes the whole output")
                        })
                };
                Ok(vec![w[1], size(x[1], w[2])?, size(x[2], w[3])?])
            }
        }
    }

    /// Applies the operation to batches `[N, sample...]`.
    pub fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = inputs[0];
        let dtype = x.dtype();
        Ok(match self {
            Opaque::Unary(u) => match *u {
                UnaryOp::Abs => x.abs()?,
                UnaryOp::Exp => x.exp()?,
                UnaryOp::Log => x.log()?,
                UnaryOp::Sqrt => x.sqrt()?,
                UnaryOp::Floor => x.floor()?,
                UnaryOp::Ceil => x.ceil()?,
                UnaryOp::Sign => (x.gt(0.0)?.to_dtype(dtype)? - x.lt(0.0)?.to_dtype(dtype)?)?,
                UnaryOp::Clip { lo, hi } => x.clamp(lo, hi)?,
                UnaryOp::LeakyRelu { alpha } => x.ge(0.0)?.where_cond(x, &x.affine(alpha, 0.0)?)?,
            },
            Opaque::Binary(op) => {
                let rank = (x.rank().max(inputs[1].rank())) - 1;
                let (a, b) = (left_pad(x, rank)?, left_pad(inputs[1], rank)?);
                match op {
                    BinaryOp::Add => a.broadcast_add(&b)?,
                    BinaryOp::Sub => a.broadcast_sub(&b)?,
                    BinaryOp::Mul => a.broadcast_mul(&b)?,
                    BinaryOp::Div => a.broadcast_div(&b)?,
                    BinaryOp::Equal => a.broadcast_eq(&b)?.to_dtype(dtype)?,
                }
            }
            Opaque::Softmax { axis, through_last } => {
                let d = axis + 1;
                if *through_last && d + 1 < x.rank() {
                    let dims = x.dims().to_vec();
                    let mut merged = dims[..d].to_vec();
                    merged.push(dims[d..].iter().product());
                    candle_nn::ops::softmax(&x.reshape(merged)?, d)?.reshape(dims)?
                } else {
                    candle_nn::ops::softmax(x, d)?
                }
            }
            Opaque::ArgMax { axis, keepdims } => {
                let y = if *keepdims {
                    x.argmax_keepdim(axis + 1)?
                } else {
                    x.argmax(axis + 1)?
                };
                y.to_dtype(dtype)?
            }
            Opaque::OneHot {
                depth,
                off,
                on,
                axis,
            } => {
                let d = *depth as f64;
                // Negative indices count from the end.
                let idx = x.lt(0.0)?.where_cond(&x.affine(1.0, d)?, x)?;
                let idx = idx.unsqueeze(axis + 1)?;
                let mut shape = vec![1; idx.rank()];
                shape[axis + 1] = *depth;
                let range = Tensor::arange(0u32, *depth as u32, x.device())?
                    .to_dtype(dtype)?
                    .reshape(shape)?;
                idx.broadcast_eq(&range)?
                    .to_dtype(dtype)?
                    .affine(on - off, *off)?
            }
            Opaque::Truncate => x.ge(0.0)?.where_cond(&x.floor()?, &x.ceil()?)?,
            Opaque::NonZero => x.ne(0.0)?.to_dtype(dtype)?,
            Opaque::MatMul { weight } => x.broadcast_matmul(&weight.to_dtype(dtype)?)?,
            Opaque::ConvTranspose {
                weight,
                bias,
                stride,
                padding,
                output_padding,
                dilation,
            } => {
                let co = weight.dims()[1];
                x.conv_transpose2d(
                    &weight.to_dtype(dtype)?,
                    *padding,
                    *output_padding,
                    *stride,
                    *dilation,
                )?
                .broadcast_add(&bias.to_dtype(dtype)?.reshape((1, co, 1, 1))?)?
            }
        })
    }
}

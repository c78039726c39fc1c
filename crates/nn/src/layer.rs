//! The typed layers of the IR.
//!
//! Shape conventions (per sample, the batch dimension is implicit and always first at run time):
//! - [`Linear`]: input `[in]`, output `[out]`, weight `[out, in]`, bias `[out]`;
//!   `y = W x + b` (the orientation of ONNX `Gemm` with `transB = 1` and of PyTorch).
//! - [`Conv2d`]: input `[C, H, W]`, weight `[C_out, C_in / groups, kH, kW]`, bias `[C_out]`,
//!   padding `[top, left, bottom, right]`.
//! - [`BatchNorm`]: per channel (dimension 0 of the per-sample shape):
//!   `y = (x - mean) / sqrt(var + eps) * scale + shift`.
//! - pooling: input `[C, H, W]`.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use netrepair_nn::{Layer, Linear};
//! let w = Tensor::new(&[[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]], &Device::Cpu).unwrap();
//! let b = Tensor::new(&[0.5f64, 0.0, -1.0], &Device::Cpu).unwrap();
//! let layer = Layer::Linear(Linear::new("fc", w, b).unwrap());
//! assert_eq!(layer.output_shape("fc", &[&[2]]).unwrap(), vec![3]);
//! assert_eq!(layer.param_count(), 9);
//! ```

use candle_core::{DType, Device, Tensor};

use crate::error::{NnError, Result};
use crate::opaque::Opaque;
use crate::rearrange::{concat_shape, Rearrange};

/// A named parameter tensor, stored in f64 on the CPU.
#[derive(Debug, Clone)]
pub struct Param {
    name: String,
    value: Tensor,
}

impl Param {
    /// A parameter named `name` holding `value` (converted to f64); rejects NaN and infinities.
    pub fn new(name: impl Into<String>, value: Tensor) -> Result<Self> {
        let name = name.into();
        let value = value.to_dtype(DType::F64)?.to_device(&Device::Cpu)?;
        check_finite("", &name, &value)?;
        Ok(Self { name, value })
    }

    /// The parameter's name (the ONNX initializer name for imported networks).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current value (f64).
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// The shape of the value.
    pub fn dims(&self) -> &[usize] {
        self.value.dims()
    }

    /// Number of scalars.
    pub fn numel(&self) -> usize {
        self.value.elem_count()
    }

    /// The value flattened into a row-major vector.
    pub fn to_vec(&self) -> Result<Vec<f64>> {
        Ok(self.value.flatten_all()?.to_vec1::<f64>()?)
    }

    pub(crate) fn replace(&mut self, node: &str, value: Tensor) -> Result<()> {
        let value = value.to_dtype(DType::F64)?.to_device(&Device::Cpu)?;
        if value.dims() != self.value.dims() {
            return Err(NnError::ShapeMismatch {
                context: format!("new value of parameter '{}'", self.name),
                expected: self.value.dims().to_vec(),
                got: value.dims().to_vec(),
            });
        }
        check_finite(node, &self.name, &value)?;
        self.value = value;
        Ok(())
    }
}

/// Rejects tensors holding NaN or infinite values.
pub(crate) fn check_finite(node: &str, param: &str, t: &Tensor) -> Result<()> {
    let values = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(NnError::NonFinite {
            node: node.to_string(),
            param: param.to_string(),
            index,
            value,
        });
    }
    Ok(())
}

/// Fully connected layer `y = W x + b`, weight `[out, in]`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Param,
    bias: Param,
}

impl Linear {
    /// Builds a linear layer; `name` prefixes the parameter names (`name.weight`, `name.bias`).
    pub fn new(name: &str, weight: Tensor, bias: Tensor) -> Result<Self> {
        Self::from_params(
            Param::new(format!("{name}.weight"), weight)?,
            Param::new(format!("{name}.bias"), bias)?,
        )
    }

    /// Builds a linear layer from named parameters.
    pub fn from_params(weight: Param, bias: Param) -> Result<Self> {
        if weight.dims().len() != 2 || bias.dims() != [weight.dims()[0]] {
            return Err(NnError::ShapeMismatch {
                context: format!(
                    "linear layer '{}' (weight [out, in], bias [out])",
                    weight.name()
                ),
                expected: vec![weight.dims().first().copied().unwrap_or(0)],
                got: bias.dims().to_vec(),
            });
        }
        Ok(Self { weight, bias })
    }

    /// Weight `[out, in]`.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// Bias `[out]`.
    pub fn bias(&self) -> &Param {
        &self.bias
    }

    /// Number of inputs.
    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Number of outputs.
    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
}

/// 2-D convolution, weight `[C_out, C_in / groups, kH, kW]`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Param,
    bias: Param,
    stride: usize,
    dilation: usize,
    padding: [usize; 4],
    groups: usize,
}

impl Conv2d {
    /// Builds a convolution. `padding` is `[top, left, bottom, right]`. Stride and dilation are
    /// the same along both spatial axes (as in every network we know of).
    pub fn new(
        weight: Param,
        bias: Param,
        stride: usize,
        dilation: usize,
        padding: [usize; 4],
        groups: usize,
    ) -> Result<Self> {
        let w = weight.dims();
        if w.len() != 4 || bias.dims() != [w[0]] {
            return Err(NnError::ShapeMismatch {
                context: format!(
                    "conv layer '{}' (weight [Co, Ci/g, kH, kW], bias [Co])",
                    weight.name()
                ),
                expected: vec![w.first().copied().unwrap_or(0)],
                got: bias.dims().to_vec(),
            });
        }
        if stride == 0 || dilation == 0 || groups == 0 || !w[0].is_multiple_of(groups) {
            return Err(NnError::InvalidLayer {
                node: weight.name().to_string(),
                reason: format!(
                    "stride {stride}, dilation {dilation} and groups {groups} must be positive, and groups must divide {} output channels",
                    w[0]
                ),
            });
        }
        Ok(Self {
            weight,
            bias,
            stride,
            dilation,
            padding,
            groups,
        })
    }

    /// Weight `[C_out, C_in / groups, kH, kW]`.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// Bias `[C_out]`.
    pub fn bias(&self) -> &Param {
        &self.bias
    }

    /// Stride (both axes).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Dilation (both axes).
    pub fn dilation(&self) -> usize {
        self.dilation
    }

    /// Zero padding `[top, left, bottom, right]`.
    pub fn padding(&self) -> [usize; 4] {
        self.padding
    }

    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Kernel size `[kH, kW]`.
    pub fn kernel(&self) -> [usize; 2] {
        let w = self.weight.dims();
        [w[2], w[3]]
    }
}

/// Batch normalisation in inference form, per channel.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    scale: Param,
    shift: Param,
    mean: Param,
    var: Param,
    eps: f64,
}

impl BatchNorm {
    /// Builds a batch-norm layer; all four tensors are `[C]`.
    pub fn new(scale: Param, shift: Param, mean: Param, var: Param, eps: f64) -> Result<Self> {
        let c = scale.dims().to_vec();
        for p in [&shift, &mean, &var] {
            if p.dims() != c.as_slice() || c.len() != 1 {
                return Err(NnError::ShapeMismatch {
                    context: format!("batch norm parameter '{}'", p.name()),
                    expected: c,
                    got: p.dims().to_vec(),
                });
            }
        }
        if eps.is_nan() || eps < 0.0 || var.to_vec()?.iter().any(|v| v + eps <= 0.0) {
            return Err(NnError::InvalidLayer {
                node: scale.name().to_string(),
                reason: "batch norm variance + eps must be positive".into(),
            });
        }
        Ok(Self {
            scale,
            shift,
            mean,
            var,
            eps,
        })
    }

    /// Scale (gamma).
    pub fn scale(&self) -> &Param {
        &self.scale
    }
    /// Shift (beta).
    pub fn shift(&self) -> &Param {
        &self.shift
    }
    /// Running mean.
    pub fn mean(&self) -> &Param {
        &self.mean
    }
    /// Running variance.
    pub fn var(&self) -> &Param {
        &self.var
    }
    /// Epsilon added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The equivalent per-channel affine map `y = a x + c` (f64).
    pub fn affine(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let (g, b, m, v) = (
            self.scale.to_vec()?,
            self.shift.to_vec()?,
            self.mean.to_vec()?,
            self.var.to_vec()?,
        );
        let a: Vec<f64> = g
            .iter()
            .zip(&v)
            .map(|(g, v)| g / (v + self.eps).sqrt())
            .collect();
        let c = a
            .iter()
            .zip(&m)
            .zip(&b)
            .map(|((a, m), b)| b - a * m)
            .collect();
        Ok((a, c))
    }
}

/// Window geometry of a 2-D pooling layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2d {
    /// Window `[kH, kW]`.
    pub kernel: [usize; 2],
    /// Stride `[sH, sW]`.
    pub stride: [usize; 2],
    /// Padding `[top, left, bottom, right]` (max pool pads with -inf, average pool with zeros).
    pub padding: [usize; 4],
    /// Average pool only: whether padded cells count in the divisor.
    pub count_include_pad: bool,
}

impl Pool2d {
    /// Output spatial size for an input of `[h, w]` (floor mode).
    pub fn output_hw(&self, h: usize, w: usize) -> Option<[usize; 2]> {
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let hp = h + self.padding[0] + self.padding[2];
        let wp = w + self.padding[1] + self.padding[3];
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 || hp < kh || wp < kw {
            return None;
        }
        Some([(hp - kh) / sh + 1, (wp - kw) / sw + 1])
    }
}

/// An element-wise operation with a fixed constant (input normalisation: ACAS Xu subtracts a
/// mean, the ERAN networks subtract and divide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstOp {
    /// `x + c`
    Add,
    /// `x - c`
    Sub,
    /// `x * c`
    Mul,
    /// `x / c`
    Div,
}

/// `x op c` with a constant `c` that broadcasts against the per-sample shape.
#[derive(Debug, Clone)]
pub struct Elementwise {
    op: ConstOp,
    constant: Tensor,
}

impl Elementwise {
    /// Builds the operation; `constant` is stored in f64 and must be finite (and non-zero for
    /// division).
    pub fn new(op: ConstOp, constant: Tensor) -> Result<Self> {
        let constant = constant.to_dtype(DType::F64)?;
        check_finite("", "constant", &constant)?;
        if op == ConstOp::Div && constant.flatten_all()?.to_vec1::<f64>()?.contains(&0.0) {
            return Err(NnError::InvalidLayer {
                node: String::new(),
                reason: "division by a zero constant".into(),
            });
        }
        Ok(Self { op, constant })
    }

    /// The operation.
    pub fn op(&self) -> ConstOp {
        self.op
    }

    /// The constant (f64), in the shape it had in the graph (with or without batch dim).
    pub fn constant(&self) -> &Tensor {
        &self.constant
    }
}

/// One layer of the IR. The set is closed so verifiers and LP encoders can match it
/// exhaustively.
#[derive(Debug, Clone)]
pub enum Layer {
    /// Fully connected.
    Linear(Linear),
    /// 2-D convolution.
    Conv2d(Conv2d),
    /// Batch normalisation (inference form).
    BatchNorm(BatchNorm),
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// Max pooling over `[C, H, W]`.
    MaxPool2d(Pool2d),
    /// Average pooling over `[C, H, W]`.
    AvgPool2d(Pool2d),
    /// Flattens the per-sample shape to one dimension.
    Flatten,
    /// Reshapes the per-sample shape (same element count).
    Reshape(Vec<usize>),
    /// Element-wise sum of two values of the same shape (residual connection).
    Add,
    /// `x op c` with a constant.
    Elementwise(Elementwise),
    /// A weight-free linear rearrangement: transpose, slice, gather, pad, sum over axes.
    Rearrange(Rearrange),
    /// Concatenation of `inputs` values along per-sample `axis`.
    Concat {
        /// Per-sample axis.
        axis: usize,
        /// Number of values concatenated.
        inputs: usize,
    },
    /// An operation that runs forward only (no bounds, no repair).
    Opaque(Opaque),
}

impl Layer {
    /// A short name of the layer type ("Linear", "Conv2d", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Linear(_) => "Linear",
            Layer::Conv2d(_) => "Conv2d",
            Layer::BatchNorm(_) => "BatchNorm",
            Layer::Relu => "Relu",
            Layer::Sigmoid => "Sigmoid",
            Layer::Tanh => "Tanh",
            Layer::MaxPool2d(_) => "MaxPool2d",
            Layer::AvgPool2d(_) => "AvgPool2d",
            Layer::Flatten => "Flatten",
            Layer::Reshape(_) => "Reshape",
            Layer::Add => "Add",
            Layer::Elementwise(e) => match e.op {
                ConstOp::Add => "AddConst",
                ConstOp::Sub => "SubConst",
                ConstOp::Mul => "MulConst",
                ConstOp::Div => "DivConst",
            },
            Layer::Rearrange(r) => r.kind(),
            Layer::Concat { .. } => "Concat",
            Layer::Opaque(o) => o.kind(),
        }
    }

    /// Whether the layer runs forward only: no bound, verifier or repair handles it.
    pub fn is_forward_only(&self) -> bool {
        matches!(self, Layer::Opaque(_))
    }

    /// Whether the layer is affine with editable parameters (Linear or Conv2d): the layers
    /// APRNN and PREPARED can edit.
    pub fn is_affine(&self) -> bool {
        matches!(self, Layer::Linear(_) | Layer::Conv2d(_))
    }

    /// Number of runtime inputs the layer takes (2 for `Add`, the count for `Concat`, else 1).
    pub fn arity(&self) -> usize {
        match self {
            Layer::Add => 2,
            Layer::Concat { inputs, .. } => *inputs,
            Layer::Opaque(o) => o.arity(),
            _ => 1,
        }
    }

    /// The layer's parameters in canonical order (weight before bias; batch norm: scale,
    /// shift, mean, var).
    pub fn params(&self) -> Vec<&Param> {
        match self {
            Layer::Linear(l) => vec![&l.weight, &l.bias],
            Layer::Conv2d(c) => vec![&c.weight, &c.bias],
            Layer::BatchNorm(b) => vec![&b.scale, &b.shift, &b.mean, &b.var],
            _ => vec![],
        }
    }

    pub(crate) fn params_mut(&mut self) -> Vec<&mut Param> {
        match self {
            Layer::Linear(l) => vec![&mut l.weight, &mut l.bias],
            Layer::Conv2d(c) => vec![&mut c.weight, &mut c.bias],
            Layer::BatchNorm(b) => vec![&mut b.scale, &mut b.shift, &mut b.mean, &mut b.var],
            _ => vec![],
        }
    }

    /// Whether parameter `slot` is trained by gradient descent (batch-norm running statistics
    /// are not).
    pub fn is_trainable(&self, slot: usize) -> bool {
        !matches!(self, Layer::BatchNorm(_)) || slot < 2
    }

    /// Total number of scalars in the parameters.
    pub fn param_count(&self) -> usize {
        self.params().iter().map(|p| p.numel()).sum()
    }

    /// Infers the per-sample output shape from the per-sample input shapes; `node` names the
    /// node in errors.
    pub fn output_shape(&self, node: &str, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let invalid = |reason: String| NnError::InvalidLayer {
            node: node.to_string(),
            reason,
        };
        if inputs.len() != self.arity() {
            return Err(invalid(format!(
                "expects {} input(s), got {}",
                self.arity(),
                inputs.len()
            )));
        }
        let x = inputs[0];
        let numel: usize = x.iter().product();
        match self {
            Layer::Linear(l) => {
                if x != [l.in_features()] {
                    return Err(NnError::ShapeMismatch {
                        context: format!("input of linear layer '{node}'"),
                        expected: vec![l.in_features()],
                        got: x.to_vec(),
                    });
                }
                Ok(vec![l.out_features()])
            }
            Layer::Conv2d(c) => {
                let w = c.weight.dims();
                if x.len() != 3 || x[0] != w[1] * c.groups {
                    return Err(NnError::ShapeMismatch {
                        context: format!("input [C, H, W] of conv layer '{node}'"),
                        expected: vec![w[1] * c.groups],
                        got: x.to_vec(),
                    });
                }
                if w[2] == 0 || w[3] == 0 {
                    return Err(invalid(format!("empty kernel {:?}", [w[2], w[3]])));
                }
                let ext = |k: usize| c.dilation * (k - 1) + 1;
                let hp = x[1] + c.padding[0] + c.padding[2];
                let wp = x[2] + c.padding[1] + c.padding[3];
                if hp < ext(w[2]) || wp < ext(w[3]) {
                    return Err(invalid(format!(
                        "kernel {:?} larger than padded input {:?}",
                        [w[2], w[3]],
                        [hp, wp]
                    )));
                }
                Ok(vec![
                    w[0],
                    (hp - ext(w[2])) / c.stride + 1,
                    (wp - ext(w[3])) / c.stride + 1,
                ])
            }
            Layer::BatchNorm(b) => {
                let c = b.scale.dims()[0];
                if x.is_empty() || x[0] != c {
                    return Err(NnError::ShapeMismatch {
                        context: format!("channels of batch norm '{node}'"),
                        expected: vec![c],
                        got: x.to_vec(),
                    });
                }
                Ok(x.to_vec())
            }
            Layer::Relu | Layer::Sigmoid | Layer::Tanh => Ok(x.to_vec()),
            Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => {
                if x.len() != 3 {
                    return Err(invalid(format!(
                        "pooling needs a [C, H, W] input, got {x:?}"
                    )));
                }
                let [h, w] = p.output_hw(x[1], x[2]).ok_or_else(|| {
                    invalid(format!(
                        "window {:?} / stride {:?} invalid for input {x:?}",
                        p.kernel, p.stride
                    ))
                })?;
                Ok(vec![x[0], h, w])
            }
            Layer::Flatten => Ok(vec![numel]),
            Layer::Reshape(shape) => {
                if shape.iter().product::<usize>() != numel {
                    return Err(NnError::ShapeMismatch {
                        context: format!("element count of reshape '{node}'"),
                        expected: x.to_vec(),
                        got: shape.clone(),
                    });
                }
                Ok(shape.clone())
            }
            Layer::Add => {
                if inputs[0] != inputs[1] {
                    return Err(NnError::ShapeMismatch {
                        context: format!("operands of residual add '{node}'"),
                        expected: inputs[0].to_vec(),
                        got: inputs[1].to_vec(),
                    });
                }
                Ok(x.to_vec())
            }
            Layer::Elementwise(e) => {
                let mut full = vec![1usize];
                full.extend_from_slice(x);
                let c = e.constant.dims();
                let ok = c.len() <= full.len()
                    && c.iter()
                        .rev()
                        .zip(full.iter().rev())
                        .all(|(&a, &b)| a == 1 || a == b);
                if !ok {
                    return Err(NnError::ShapeMismatch {
                        context: format!("constant of '{node}' (must broadcast to [1, sample...])"),
                        expected: full,
                        got: c.to_vec(),
                    });
                }
                Ok(x.to_vec())
            }
            Layer::Rearrange(r) => r.output_shape(node, x),
            Layer::Concat { axis, .. } => concat_shape(node, *axis, inputs),
            Layer::Opaque(o) => o.output_shape(node, inputs),
        }
    }
}

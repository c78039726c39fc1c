//! Forward passes: plain, traced (every intermediate value), and with caller-supplied
//! parameter tensors (the hook that gradients and training use).
//!
//! Inputs are batches `[N, sample...]` in f32 or f64; the computation runs in the input's
//! dtype (parameters are cast to it).

use candle_core::{DType, Device, Tensor};

use crate::error::{NnError, Result};
use crate::layer::{ConstOp, Layer};
use crate::network::{Network, ValueId};
use crate::{im2col, pool};

/// Every value of one forward pass: `values[0]` is the input, `values[i + 1]` node `i`'s output.
#[derive(Debug, Clone)]
pub struct Trace {
    values: Vec<Tensor>,
}

impl Trace {
    /// The value with this id (`[N, shape...]`).
    pub fn value(&self, id: ValueId) -> &Tensor {
        &self.values[id]
    }

    /// The network output.
    pub fn output(&self) -> &Tensor {
        self.values
            .last()
            .expect("a trace holds at least the input")
    }

    /// All values, input first.
    pub fn values(&self) -> &[Tensor] {
        &self.values
    }
}

impl Network {
    /// The parameters in canonical order ([`Network::param_ids`]) cast to `dtype`.
    pub fn param_tensors(&self, dtype: DType) -> Result<Vec<Tensor>> {
        self.param_ids()
            .into_iter()
            .map(|id| Ok(self.param(id)?.value().to_dtype(dtype)?))
            .collect()
    }

    /// Checks that `x` is a batch `[N, input_shape...]` of f32 or f64.
    pub fn check_input(&self, x: &Tensor) -> Result<()> {
        let mut expected = vec![x.dims().first().copied().unwrap_or(0)];
        expected.extend_from_slice(self.input_shape());
        if x.dims() != expected.as_slice() || !pool::is_float(x.dtype()) {
            return Err(NnError::ShapeMismatch {
                context: format!(
                    "network input (batch of {:?}, f32 or f64; got {:?})",
                    self.input_shape(),
                    x.dtype()
                ),
                expected,
                got: x.dims().to_vec(),
            });
        }
        Ok(())
    }

    /// Runs the network on a batch `[N, input_shape...]` in the input's dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let params = self.param_tensors(x.dtype())?;
        let mut values = self.forward_with(&params, x, false)?;
        Ok(values.pop().expect("at least one value"))
    }

    /// Runs the network in f64 (the input is converted).
    pub fn forward_f64(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(&x.to_dtype(DType::F64)?)
    }

    /// Runs the network and keeps every intermediate value.
    pub fn forward_trace(&self, x: &Tensor) -> Result<Trace> {
        let params = self.param_tensors(x.dtype())?;
        Ok(Trace {
            values: self.forward_with(&params, x, true)?,
        })
    }

    /// Runs the network with the given parameter tensors (canonical order, same dtype as `x`).
    /// With `keep_all`, returns every value (input first); otherwise only the output.
    pub fn forward_with(
        &self,
        params: &[Tensor],
        x: &Tensor,
        keep_all: bool,
    ) -> Result<Vec<Tensor>> {
        self.check_input(x)?;
        let expected = self.param_ids().len();
        if params.len() != expected {
            return Err(NnError::ShapeMismatch {
                context: "parameter list".into(),
                expected: vec![expected],
                got: vec![params.len()],
            });
        }
        let n = x.dims()[0];
        // How many nodes still read each value, so values can be dropped early when not kept.
        let mut readers = vec![0usize; self.nodes().len() + 1];
        for node in self.nodes() {
            for &v in node.inputs() {
                readers[v] += 1;
            }
        }
        let mut values: Vec<Option<Tensor>> = vec![None; self.nodes().len() + 1];
        values[0] = Some(x.clone());
        let mut offset = 0;
        for (i, node) in self.nodes().iter().enumerate() {
            let k = node.layer().params().len();
            let p = &params[offset..offset + k];
            offset += k;
            let inputs: Vec<&Tensor> = node
                .inputs()
                .iter()
                .map(|&v| values[v].as_ref().expect("topological order"))
                .collect();
            let out = apply(node.layer(), &inputs, p, n, node.output_shape())?;
            if !keep_all {
                for &v in node.inputs() {
                    readers[v] -= 1;
                    if readers[v] == 0 {
                        values[v] = None;
                    }
                }
            }
            values[i + 1] = Some(out);
        }
        if keep_all {
            Ok(values.into_iter().map(|v| v.expect("kept")).collect())
        } else {
            Ok(vec![values.pop().flatten().expect("output")])
        }
    }

    /// Predicted class per sample (arg-max of the flattened output), computed in f64.
    pub fn predict(&self, x: &Tensor) -> Result<Vec<u32>> {
        let y = self.forward_f64(x)?;
        let n = y.dims()[0];
        Ok(y.reshape((n, ()))?.argmax(1)?.to_vec1::<u32>()?)
    }
}

impl Trace {
    /// The ReLU activation pattern of node `node` (which must be a ReLU): 1 where the
    /// pre-activation is > 0, else 0, `[N, shape...]` as u8.
    pub fn relu_pattern(&self, net: &Network, node: usize) -> Result<Tensor> {
        let n = &net.nodes()[node];
        if !matches!(n.layer(), Layer::Relu) {
            return Err(NnError::InvalidLayer {
                node: n.name().into(),
                reason: "not a ReLU node".into(),
            });
        }
        let pre = self.value(n.inputs()[0]);
        Ok(pre.gt(&pre.zeros_like()?)?)
    }

    /// Activation patterns of every ReLU node, as (node index, pattern).
    pub fn relu_patterns(&self, net: &Network) -> Result<Vec<(usize, Tensor)>> {
        (0..net.nodes().len())
            .filter(|&i| matches!(net.nodes()[i].layer(), Layer::Relu))
            .map(|i| Ok((i, self.relu_pattern(net, i)?)))
            .collect()
    }

    /// For a max-pool node: the flat spatial input cell (`h * W + w`) that each output element
    /// took its value from, `[N, C, Ho, Wo]` as u32 (first maximum on ties).
    pub fn maxpool_argmax(&self, net: &Network, node: usize) -> Result<Tensor> {
        let n = &net.nodes()[node];
        match n.layer() {
            Layer::MaxPool2d(p) => Ok(pool::max_pool_argmax(self.value(n.inputs()[0]), p)?),
            _ => Err(NnError::InvalidLayer {
                node: n.name().into(),
                reason: "not a max-pool node".into(),
            }),
        }
    }
}

/// Applies one layer to a batch.
fn apply(
    layer: &Layer,
    inputs: &[&Tensor],
    p: &[Tensor],
    n: usize,
    out_shape: &[usize],
) -> Result<Tensor> {
    let x = inputs[0];
    let dtype = x.dtype();
    let y = match layer {
        Layer::Linear(_) => x.matmul(&p[0].t()?)?.broadcast_add(&p[1])?,
        Layer::Conv2d(c) => {
            let co = p[0].dims()[0];
            let hw = [out_shape[1], out_shape[2]];
            im2col::conv2d(
                x,
                &p[0],
                c.stride(),
                c.dilation(),
                c.padding(),
                c.groups(),
                hw,
            )?
            .broadcast_add(&p[1].reshape((1, co, 1, 1))?)?
        }
        Layer::BatchNorm(bn) => {
            let c = p[0].dims()[0];
            let mut shape = vec![1, c];
            shape.extend(std::iter::repeat_n(1, x.rank() - 2));
            let a = (&p[0] / (&p[3] + bn.eps())?.sqrt()?)?;
            let shift = (&p[1] - (&p[2] * &a)?)?;
            x.broadcast_mul(&a.reshape(shape.clone())?)?
                .broadcast_add(&shift.reshape(shape)?)?
        }
        Layer::Relu => x.relu()?,
        Layer::Sigmoid => (x.affine(0.5, 0.0)?.tanh()?.affine(0.5, 0.5))?,
        Layer::Tanh => x.tanh()?,
        Layer::MaxPool2d(pl) => pool::max_pool(x, pl)?,
        Layer::AvgPool2d(pl) => pool::avg_pool(x, pl)?,
        Layer::Flatten | Layer::Reshape(_) => x.reshape(batch_shape(n, out_shape))?,
        Layer::Add => (x + inputs[1])?,
        Layer::Elementwise(e) => {
            let c = e.constant().to_dtype(dtype)?.to_device(&Device::Cpu)?;
            match e.op() {
                ConstOp::Add => x.broadcast_add(&c)?,
                ConstOp::Sub => x.broadcast_sub(&c)?,
                ConstOp::Mul => x.broadcast_mul(&c)?,
                ConstOp::Div => x.broadcast_div(&c)?,
            }
        }
        Layer::Rearrange(r) => r.forward(x)?,
        Layer::Concat { axis, .. } => Tensor::cat(inputs, axis + 1)?,
        Layer::Opaque(o) => o.forward(inputs)?,
    };
    Ok(y)
}

/// `[n, shape...]`.
pub(crate) fn batch_shape(n: usize, shape: &[usize]) -> Vec<usize> {
    let mut s = Vec::with_capacity(shape.len() + 1);
    s.push(n);
    s.extend_from_slice(shape);
    s
}

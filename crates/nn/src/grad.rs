//! Gradients with respect to parameters and inputs (candle's reverse-mode autograd).

use candle_core::{Tensor, Var};

use crate::error::Result;
use crate::network::{Network, ParamId};

/// Gradients of a scalar loss.
#[derive(Debug, Clone)]
pub struct Gradients {
    /// Per trainable parameter, in canonical order; `None` when the loss does not depend on it.
    pub params: Vec<(ParamId, Option<Tensor>)>,
    /// Gradient with respect to the input batch (same shape as the input).
    pub input: Option<Tensor>,
}

impl Gradients {
    /// The gradient of one parameter, if the loss depends on it.
    pub fn param(&self, id: ParamId) -> Option<&Tensor> {
        self.params
            .iter()
            .find(|(p, _)| *p == id)
            .and_then(|(_, g)| g.as_ref())
    }
}

impl Network {
    /// Gradients of `loss(output)` with respect to every trainable parameter and the input,
    /// in the dtype of `x` (use f64 for checks, f32 for speed). `loss` must return a scalar.
    pub fn gradients<F>(&self, x: &Tensor, loss: F) -> Result<Gradients>
    where
        F: FnOnce(&Tensor) -> candle_core::Result<Tensor>,
    {
        let dtype = x.dtype();
        let ids = self.param_ids();
        let mut vars: Vec<Option<Var>> = Vec::with_capacity(ids.len());
        let mut tensors = Vec::with_capacity(ids.len());
        for &id in &ids {
            let t = self.param(id)?.value().to_dtype(dtype)?;
            if self.is_trainable(id) {
                let v = Var::from_tensor(&t)?;
                tensors.push(v.as_tensor().clone());
                vars.push(Some(v));
            } else {
                tensors.push(t);
                vars.push(None);
            }
        }
        let xv = Var::from_tensor(x)?;
        let out = self
            .forward_with(&tensors, xv.as_tensor(), false)?
            .pop()
            .expect("output");
        let l = loss(&out)?;
        let grads = l.backward()?;
        let params = ids
            .into_iter()
            .zip(&vars)
            .filter_map(|(id, v)| v.as_ref().map(|v| (id, grads.get(v.as_tensor()).cloned())))
            .collect();
        Ok(Gradients {
            params,
            input: grads.get(xv.as_tensor()).cloned(),
        })
    }
}

impl Network {
    /// Gradient of `loss(output)` with respect to the input only (parameters are constants,
    /// which makes it cheaper than [`Network::gradients`]); also returns the output.
    pub fn input_gradient<F>(&self, x: &Tensor, loss: F) -> Result<(Tensor, Tensor)>
    where
        F: FnOnce(&Tensor) -> candle_core::Result<Tensor>,
    {
        let params = self.param_tensors(x.dtype())?;
        let xv = Var::from_tensor(x)?;
        let out = self
            .forward_with(&params, xv.as_tensor(), false)?
            .pop()
            .expect("output");
        let grads = loss(&out)?.backward()?;
        let g = grads
            .get(xv.as_tensor())
            .cloned()
            .unwrap_or(xv.as_tensor().zeros_like()?);
        Ok((g, out.detach()))
    }
}

//! Samples as the tensors the forward pass and training read, and synthetic samples between
//! them: shared by the gradient methods, the keep set's synthetic points and the race of
//! repairs.

use candle_core::{DType, Device, Tensor};
use netrepair_nn::{Network, NnError};
use rand::{Rng, SeedableRng};

use crate::error::Result;

/// `n` convex combinations `l a + (1 - l) b` of random pairs `a, b` of `inputs` with `l`
/// uniform in `[0, 1]`, drawn with `seed`: points between the samples a repair should keep,
/// where the network's original outputs are its only labels. Empty when `inputs` is.
pub fn mixup_points(inputs: &[Vec<f64>], n: usize, seed: u64) -> Vec<Vec<f64>> {
    if inputs.is_empty() {
        return Vec::new();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x006d_6978_7570);
    (0..n)
        .map(|_| {
            let a = &inputs[rng.random_range(0..inputs.len())];
            let b = &inputs[rng.random_range(0..inputs.len())];
            let l: f64 = rng.random();
            a.iter()
                .zip(b)
                .map(|(u, v)| l * u + (1.0 - l) * v)
                .collect()
        })
        .collect()
}

/// Inputs as one f32 batch `[N, input shape...]`.
pub(crate) fn batch(net: &Network, xs: &[Vec<f64>]) -> Result<Tensor> {
    let flat: Vec<f32> = xs.iter().flatten().map(|&v| v as f32).collect();
    let mut dims = vec![xs.len()];
    dims.extend_from_slice(net.input_shape());
    Ok(Tensor::from_vec(flat, dims, &Device::Cpu).map_err(NnError::from)?)
}

pub(crate) fn rows(t: &Tensor) -> Result<Vec<Vec<f64>>> {
    let n = t.dims()[0];
    Ok(t.reshape((n, ()))
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.to_vec2::<f64>())
        .map_err(NnError::from)?)
}

pub(crate) fn labels_tensor(labels: &[usize]) -> Result<Tensor> {
    let l: Vec<u32> = labels.iter().map(|&c| c as u32).collect();
    Ok(Tensor::from_vec(l, labels.len(), &Device::Cpu).map_err(NnError::from)?)
}

/// `scale * sum (out - reference)^2` over every entry: the logit-preservation term the
/// gradient methods and the warm start add to their losses.
pub(crate) fn squared_change(out: &Tensor, reference: &Tensor, scale: f64) -> Result<Tensor> {
    Ok(out
        .sub(reference)
        .and_then(|d| d.sqr())
        .and_then(|d| d.sum_all())
        .and_then(|d| d.affine(scale, 0.0))
        .map_err(NnError::from)?)
}

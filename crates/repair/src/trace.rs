//! Concrete f64 values of every node at given inputs, flattened per sample, and activation
//! pattern comparisons between them.

use candle_core::{Device, Tensor};
use netrepair_nn::pool_windows;
use netrepair_nn::{Layer, Network, NnError};

use crate::error::Result;

/// Every value of the network at one input, flattened: `values[0]` is the input, `values[i+1]`
/// node `i`'s output.
pub(crate) type Values = Vec<Vec<f64>>;

/// Inputs (flattened) as one batch `[N, input shape...]`.
pub(crate) fn batch(net: &Network, xs: &[Vec<f64>]) -> Result<Tensor> {
    let flat: Vec<f64> = xs.iter().flatten().copied().collect();
    let mut dims = vec![xs.len()];
    dims.extend_from_slice(net.input_shape());
    Ok(Tensor::from_vec(flat, dims, &Device::Cpu).map_err(NnError::from)?)
}

/// The values of every node at each input (f64 forward passes, in batches).
pub(crate) fn traces(net: &Network, xs: &[Vec<f64>]) -> Result<Vec<Values>> {
    let mut out = Vec::with_capacity(xs.len());
    for chunk in xs.chunks(256) {
        let x = batch(net, chunk)?;
        let trace = net.forward_trace(&x)?;
        let per_value: Vec<Vec<f64>> = trace
            .values()
            .iter()
            .map(|t| {
                t.flatten_all()
                    .and_then(|t| t.to_vec1::<f64>())
                    .map_err(NnError::from)
            })
            .collect::<std::result::Result<_, _>>()?;
        for s in 0..chunk.len() {
            out.push(
                per_value
                    .iter()
                    .map(|v| {
                        let len = v.len() / chunk.len();
                        v[s * len..(s + 1) * len].to_vec()
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// The network output at each input.
pub(crate) fn outputs(net: &Network, xs: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
    // A plain forward pass: no intermediate values kept.
    let mut out = Vec::with_capacity(xs.len());
    for chunk in xs.chunks(256) {
        let x = batch(net, chunk)?;
        let y = net
            .forward_f64(&x)?
            .flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .map_err(NnError::from)?;
        out.extend(y.chunks(net.output_len()).map(<[f64]>::to_vec));
    }
    Ok(out)
}

/// Index of the first maximum of `v` over `cells`.
pub(crate) fn argmax_cell(v: &[f64], cells: &[usize]) -> usize {
    let mut best = cells[0];
    for &c in &cells[1..] {
        if v[c] > v[best] {
            best = c;
        }
    }
    best
}

/// The first node among `nodes` (ReLU or MaxPool) at which `values` does not follow the
/// activation pattern of `reference`: a ReLU active in the reference (pre-activation > 0)
/// needs pre-activation >= 0, an inactive one <= 0; a max-pool window needs the reference's
/// arg-max cell to be a maximum. `None` when the patterns agree.
pub(crate) fn pattern_mismatch(
    net: &Network,
    nodes: impl IntoIterator<Item = usize>,
    values: &Values,
    reference: &Values,
) -> Option<usize> {
    for i in nodes {
        let n = &net.nodes()[i];
        let v = n.inputs().first().copied().unwrap_or(0);
        let ok = match n.layer() {
            Layer::Relu => {
                values[v]
                    .iter()
                    .zip(&reference[v])
                    .all(|(&x, &r)| if r > 0.0 { x >= 0.0 } else { x <= 0.0 })
            }
            Layer::MaxPool2d(p) => pool_windows(p, net.value_shape(v)).iter().all(|cells| {
                let a = argmax_cell(&reference[v], cells);
                cells.iter().all(|&c| values[v][a] >= values[v][c])
            }),
            _ => true,
        };
        if !ok {
            return Some(i);
        }
    }
    None
}

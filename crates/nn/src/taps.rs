//! Layers as linear maps on flattened values, and the connection structure of affine layers:
//! which weight entry multiplies which input entry.
//!
//! Bound propagation needs a layer as a sparse matrix ([`affine_op`], [`elementwise_op`]);
//! repair needs more: it makes weights unknowns, so it must know *which* weight each product
//! uses ([`AffineTaps`]). Both read it from here so the convolution indexing lives in one
//! place; the interval and linear bounds, the MILP encoding and the repair LPs share it.

use crate::error::{NnError, Result};
use crate::layer::{ConstOp, Layer, Pool2d};
use crate::network::Network;

/// For each output entry of a Linear or Conv2d node (flattened, `[C, H, W]` order for
/// convolutions): the `(input index, weight index)` pairs of its products and the index of its
/// bias entry. Indices are into the flattened input value, weight and bias.
#[derive(Debug, Clone, PartialEq)]
pub struct AffineTaps {
    /// Per output: `(input index, weight index)` of each product.
    pub rows: Vec<Vec<(u32, u32)>>,
    /// Per output: its bias entry.
    pub bias: Vec<u32>,
}

impl Network {
    /// The taps of node `node` if it is a Linear or Conv2d layer, `None` otherwise.
    pub fn affine_taps(&self, node: usize) -> Option<AffineTaps> {
        let n = &self.nodes()[node];
        match n.layer() {
            Layer::Linear(l) => {
                let (k, m) = (l.in_features(), l.out_features());
                Some(AffineTaps {
                    rows: (0..m)
                        .map(|i| (0..k).map(|j| (j as u32, (i * k + j) as u32)).collect())
                        .collect(),
                    bias: (0..m as u32).collect(),
                })
            }
            Layer::Conv2d(c) => {
                let shape = self.value_shape(n.inputs()[0]);
                let out = n.output_shape();
                let (h, wd) = (shape[1], shape[2]);
                let (co, ho, wo) = (out[0], out[1], out[2]);
                let [kh, kw] = c.kernel();
                let cg = shape[0] / c.groups();
                let per_group = co / c.groups();
                let (s, d, [pt, pl, _, _]) = (c.stride(), c.dilation(), c.padding());
                let mut rows = Vec::with_capacity(co * ho * wo);
                let mut bias = Vec::with_capacity(co * ho * wo);
                for o in 0..co {
                    let g = o / per_group;
                    for oh in 0..ho {
                        for ow in 0..wo {
                            let mut row = Vec::with_capacity(cg * kh * kw);
                            for ci in 0..cg {
                                for a in 0..kh {
                                    let ih = (oh * s + a * d) as isize - pt as isize;
                                    if ih < 0 || ih as usize >= h {
                                        continue;
                                    }
                                    for e in 0..kw {
                                        let iw = (ow * s + e * d) as isize - pl as isize;
                                        if iw < 0 || iw as usize >= wd {
                                            continue;
                                        }
                                        let input =
                                            ((g * cg + ci) * h + ih as usize) * wd + iw as usize;
                                        let weight = ((o * cg + ci) * kh + a) * kw + e;
                                        row.push((input as u32, weight as u32));
                                    }
                                }
                            }
                            rows.push(row);
                            bias.push(o as u32);
                        }
                    }
                }
                Some(AffineTaps { rows, bias })
            }
            _ => None,
        }
    }
}

/// `y_i = bias[i] + sum_{(j, w) in rows[i]} w x_j`.
pub struct AffineOp {
    /// Constant term per output.
    pub bias: Vec<f64>,
    /// Per output: `(input index, coefficient)`.
    pub rows: Vec<Vec<(u32, f64)>>,
}

/// Linear, convolution, average pooling and the weight-free rearrangements (transpose, slice,
/// gather, pad, sums) as sparse affine maps; `None` for other layers.
pub fn affine_op(net: &Network, node: usize) -> Result<Option<AffineOp>> {
    let n = &net.nodes()[node];
    let shape = net.value_shape(n.inputs()[0]);
    Ok(Some(match n.layer() {
        Layer::Linear(_) | Layer::Conv2d(_) => {
            let params = n.layer().params();
            let (w, b) = (params[0].to_vec()?, params[1].to_vec()?);
            let taps = net
                .affine_taps(node)
                .expect("linear and conv layers have taps");
            AffineOp {
                bias: taps.bias.iter().map(|&i| b[i as usize]).collect(),
                rows: taps
                    .rows
                    .into_iter()
                    .map(|row| row.into_iter().map(|(j, k)| (j, w[k as usize])).collect())
                    .collect(),
            }
        }
        Layer::AvgPool2d(p) => avg_pool(p, shape),
        Layer::Rearrange(r) => {
            let (sources, bias) = r.sources(shape)?;
            AffineOp {
                bias,
                rows: sources
                    .into_iter()
                    .map(|row| row.into_iter().map(|j| (j, 1.0)).collect())
                    .collect(),
            }
        }
        _ => return Ok(None),
    }))
}

/// The input cells (flat indices into `[C, H, W]`) of every pooling window, in output order
/// (`[C, Ho, Wo]`); padding cells are left out.
pub fn pool_windows(p: &Pool2d, shape: &[usize]) -> Vec<Vec<usize>> {
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let [ho, wo] = p
        .output_hw(h, w)
        .expect("checked when the network was built");
    let mut windows = Vec::with_capacity(c * ho * wo);
    for ch in 0..c {
        for oh in 0..ho {
            for ow in 0..wo {
                let mut cells = Vec::with_capacity(p.kernel[0] * p.kernel[1]);
                for a in 0..p.kernel[0] {
                    for e in 0..p.kernel[1] {
                        let ih = (oh * p.stride[0] + a) as isize - p.padding[0] as isize;
                        let iw = (ow * p.stride[1] + e) as isize - p.padding[1] as isize;
                        if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < w {
                            cells.push((ch * h + ih as usize) * w + iw as usize);
                        }
                    }
                }
                windows.push(cells);
            }
        }
    }
    windows
}

fn avg_pool(p: &Pool2d, shape: &[usize]) -> AffineOp {
    let rows: Vec<Vec<(u32, f64)>> = pool_windows(p, shape)
        .into_iter()
        .map(|cells| {
            let count = if p.count_include_pad {
                p.kernel[0] * p.kernel[1]
            } else {
                cells.len().max(1)
            } as f64;
            cells.into_iter().map(|j| (j as u32, 1.0 / count)).collect()
        })
        .collect();
    AffineOp {
        bias: vec![0.0; rows.len()],
        rows,
    }
}

/// Batch norm and constant operations as `y_k = a_k x_k + c_k`; `None` for other layers.
pub fn elementwise_op(net: &Network, node: usize) -> Result<Option<(Vec<f64>, Vec<f64>)>> {
    let n = &net.nodes()[node];
    let shape = net.value_shape(n.inputs()[0]);
    let len: usize = shape.iter().product();
    Ok(Some(match n.layer() {
        Layer::BatchNorm(bn) => {
            let (a, c) = bn.affine()?;
            let per = len / a.len();
            (
                (0..len).map(|k| a[k / per]).collect(),
                (0..len).map(|k| c[k / per]).collect(),
            )
        }
        Layer::Elementwise(e) => {
            let mut full = vec![1];
            full.extend_from_slice(shape);
            let c = e
                .constant()
                .broadcast_as(full)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f64>())
                .map_err(NnError::from)?;
            match e.op() {
                ConstOp::Add => (vec![1.0; len], c),
                ConstOp::Sub => (vec![1.0; len], c.iter().map(|v| -v).collect()),
                ConstOp::Mul => (c, vec![0.0; len]),
                // x / c as x * (1 / c): the reciprocal's rounding is covered by the error terms.
                ConstOp::Div => (c.iter().map(|v| 1.0 / v).collect(), vec![0.0; len]),
            }
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use crate::{Conv2d, Layer, NetworkBuilder, Param};

    /// A 1x3x3 input, 2x2 kernel, stride 1, no padding: output (0, 0, 1) reads inputs 1, 2, 4, 5.
    #[test]
    fn conv_taps_follow_the_sliding_window() {
        let w = Tensor::arange(0f64, 8.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 1, 2, 2))
            .unwrap();
        let b = Tensor::new(&[0f64, 1.0], &Device::Cpu).unwrap();
        let conv = Conv2d::new(
            Param::new("c.weight", w).unwrap(),
            Param::new("c.bias", b).unwrap(),
            1,
            1,
            [0; 4],
            1,
        )
        .unwrap();
        let mut nb = NetworkBuilder::new(vec![1, 3, 3]);
        nb.push("c", Layer::Conv2d(conv)).unwrap();
        let net = nb.build().unwrap();
        let taps = net.affine_taps(0).unwrap();
        assert_eq!(taps.rows.len(), 8);
        assert_eq!(taps.rows[1], vec![(1, 0), (2, 1), (4, 2), (5, 3)]);
        assert_eq!(taps.rows[4], vec![(0, 4), (1, 5), (3, 6), (4, 7)]);
        assert_eq!(taps.bias, vec![0, 0, 0, 0, 1, 1, 1, 1]);
    }
}

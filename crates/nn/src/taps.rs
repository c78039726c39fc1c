//! The connection structure of affine layers: which weight entry multiplies which input entry.
//!
//! Bound propagation needs a layer as a sparse matrix; repair needs more: it makes weights
//! unknowns, so it must know *which* weight each product uses. Both read it from here so the
//! convolution indexing lives in one place.

use crate::layer::Layer;
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

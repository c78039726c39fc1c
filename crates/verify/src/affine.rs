//! Layers as linear maps on flattened values, shared by the interval and linear bounds, the
//! MILP encoding and the repair LPs.

use std::sync::OnceLock;

use netrepair_nn::{ConstOp, Layer, Network, NnError, Pool2d};

use crate::error::{Result, VerifyError};

/// `y_i = bias[i] + sum_{(j, w) in rows[i]} w x_j`.
pub struct AffineOp {
    /// Constant term per output.
    pub bias: Vec<f64>,
    /// Per output: `(input index, coefficient)`.
    pub rows: Vec<Vec<(u32, f64)>>,
}

/// `sum_j f(w_j) x_j` over two slices of equal length, with four running sums (see
/// [`sparse_dot`]).
pub(crate) fn dense_dot(w: &[f64], x: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0; 4];
    let (wc, xc) = (w.chunks_exact(4), x.chunks_exact(4));
    let (wt, xt) = (wc.remainder(), xc.remainder());
    for (a, b) in wc.zip(xc) {
        for k in 0..4 {
            acc[k] += f(a[k]) * b[k];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (a, b) in wt.iter().zip(xt) {
        s += f(*a) * b;
    }
    s
}

/// `sum_{(j, w) in row} f(w) x_j` with four running sums, so the additions overlap (a single
/// running sum waits on each addition); any order is covered by the a-priori rounding bounds.
pub(crate) fn sparse_dot(row: &[(u32, f64)], x: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0; 4];
    let chunks = row.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &(j, w)) in acc.iter_mut().zip(c) {
            *a += f(w) * x[j as usize];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for &(j, w) in tail {
        s += f(w) * x[j as usize];
    }
    s
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

/// The error for a layer no bound handles (the forward-only operations), naming the node.
pub fn not_boundable(net: &Network, node: usize) -> VerifyError {
    let n = &net.nodes()[node];
    VerifyError::Unsupported(format!(
        "node '{}' ({}) runs forward only: no bound, verifier or repair handles it",
        n.name(),
        n.layer().kind()
    ))
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

/// An elementwise map `y_k = a_k x_k + c_k` as `(a, c)`.
type Scaling = (Vec<f64>, Vec<f64>);

/// A network's layers as linear maps ([`affine_op`], [`elementwise_op`]), each built on first
/// use and kept: bounding the same network many times (slope optimisation, branch and bound)
/// would otherwise rebuild every layer's coefficient lists at every step.
pub(crate) struct Ops<'a> {
    net: &'a Network,
    affine: Vec<OnceLock<Option<AffineOp>>>,
    dense: Vec<OnceLock<Option<Vec<f64>>>>,
    elementwise: Vec<OnceLock<Option<Scaling>>>,
}

impl<'a> Ops<'a> {
    /// An empty cache for `net`.
    pub fn new(net: &'a Network) -> Self {
        let n = net.nodes().len();
        Self {
            net,
            affine: (0..n).map(|_| OnceLock::new()).collect(),
            dense: (0..n).map(|_| OnceLock::new()).collect(),
            elementwise: (0..n).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The network.
    pub fn net(&self) -> &'a Network {
        self.net
    }

    /// [`affine_op`] of node `i`.
    pub fn affine(&self, i: usize) -> Result<Option<&AffineOp>> {
        if self.affine[i].get().is_none() {
            let op = affine_op(self.net, i)?;
            let _ = self.affine[i].set(op);
        }
        Ok(self.affine[i].get().expect("set above").as_ref())
    }

    /// The weights of node `i` as a dense row-major matrix (outputs x `in_len`) when its
    /// affine map reads every input in order in every row (a fully connected layer), so that
    /// products with it run over contiguous memory; `None` otherwise.
    pub fn dense(&self, i: usize, in_len: usize) -> Result<Option<&[f64]>> {
        if self.dense[i].get().is_none() {
            let d = self.affine(i)?.and_then(|op| {
                let full = op.rows.iter().all(|row| {
                    row.len() == in_len
                        && row.iter().enumerate().all(|(k, &(j, _))| j as usize == k)
                });
                full.then(|| op.rows.iter().flatten().map(|&(_, w)| w).collect())
            });
            let _ = self.dense[i].set(d);
        }
        Ok(self.dense[i].get().expect("set above").as_deref())
    }

    /// [`elementwise_op`] of node `i`.
    pub fn elementwise(&self, i: usize) -> Result<Option<&Scaling>> {
        if self.elementwise[i].get().is_none() {
            let op = elementwise_op(self.net, i)?;
            let _ = self.elementwise[i].set(op);
        }
        Ok(self.elementwise[i].get().expect("set above").as_ref())
    }
}

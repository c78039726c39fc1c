//! The verifier's view of layers as linear maps (built by `netrepair_nn`'s [`affine_op`] and
//! [`elementwise_op`]): cached per network, and the dot products of the bound passes.

use std::sync::OnceLock;

use netrepair_nn::{affine_op, elementwise_op, AffineOp, Network};

use crate::error::{Result, VerifyError};

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

/// The error for a layer no bound handles (the forward-only operations), naming the node.
pub fn not_boundable(net: &Network, node: usize) -> VerifyError {
    let n = &net.nodes()[node];
    VerifyError::Unsupported(format!(
        "node '{}' ({}) runs forward only: no bound, verifier or repair handles it",
        n.name(),
        n.layer().kind()
    ))
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

//! Sound lower bounds of a network's requirements over input boxes that are differentiable in
//! the weights of its trainable dense tail (CROWN-IBP), for fine-tuning that aims at what
//! the verifier proves rather than at what an attack finds.
//!
//! When fine-tuning moves only the layers from a fully connected layer on
//! ([`crate::WarmOptions::train_from`]) and those layers are a chain of Linear and ReLU layers
//! up to the output, the value entering the chain does not change: its sound bounds over each
//! box are computed once, in f64, by the verifier on the original network. Through the chain
//! the bounds are a function of the trainable weights: interval bounds of each
//! pre-activation (exact for the first layer over a box), then each requirement row `a . y`
//! back-substituted through the chain with the usual ReLU relaxation (upper: the chord;
//! lower: slope 1 or 0, whichever side is wider) and minimised over the input box.
//!
//! Back-substitution to the network's input with the same intermediate bounds, which is what
//! the verifier does, is never looser (at each ReLU the combined coefficient picks the
//! better relaxation; a minimum of a sum is at least the sum of the minima), so a row this
//! bound keeps above zero by a small margin is one the verifier proves too, up to rounding.
//! The bound only steers the training: the outcome is still the independent re-check's.

use candle_core::{DType, Device, Tensor};
use netrepair_nn::{Layer, Network, NnError, ParamId, Trainer};
use netrepair_spec::{BoxRegion, Case};
use netrepair_verify::{linear_bounds, row_bounds};
use rayon::prelude::*;

use crate::error::Result;

/// One layer of the chain.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A Linear node (its index).
    Linear(usize),
    /// A ReLU.
    Relu,
}

/// A requirement `a . y > rhs` on the output over the box of one group (case).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TailRow {
    /// Index of the case's box among the boxes given to [`CertifiedTail::new`].
    pub group: usize,
    /// Sparse coefficients over the outputs.
    pub coeffs: Vec<(usize, f64)>,
    /// Right-hand side.
    pub rhs: f64,
}

impl TailRow {
    /// The rows of a case whose unsafe region is a union of half-spaces `a . y <= b`: each
    /// asks `a . y > b` (`None` for any other unsafe region).
    pub fn of_case(case: &Case, group: usize) -> Option<Vec<TailRow>> {
        case.unsafe_region
            .iter()
            .map(|p| match p.constraints.as_slice() {
                [c] => Some(TailRow {
                    group,
                    coeffs: c.coeffs.clone(),
                    rhs: c.rhs,
                }),
                _ => None,
            })
            .collect()
    }
}

/// The trainable dense tail of a network with the fixed bounds of its input over a set of
/// boxes, and the requirement rows to bound (see the module documentation).
#[derive(Debug)]
pub(crate) struct CertifiedTail {
    steps: Vec<Step>,
    /// Centre and radius of the tail's input over each box, `[groups, n]`.
    centre: Tensor,
    radius: Tensor,
    /// The first layer's original weight and bias, and the verifier's bounds of its output
    /// over each box (`[groups, out]`) with those weights.
    first: FirstLayer,
    /// Per row, a direction of the first layer's output with a tight lower bound over its box
    /// (see [`Cut`]).
    cut: Cut,
    /// Requirement rows `[rows, outputs]`, their right-hand sides and groups.
    rows: Tensor,
    rhs: Tensor,
    group: Tensor,
    /// Subtracted from node indices to find a layer's parameters in the trainer (the trainer
    /// may hold only the network's head, see [`CertifiedTail::reading_nodes_from`]).
    offset: usize,
}

/// What is known of the chain's first Linear layer before training: its output is the
/// original layer's, which the verifier bounds tightly (back-substitution to the network's
/// input), plus the change `dW h + db`, bounded over the box of `h`.
#[derive(Debug)]
struct FirstLayer {
    weight: Tensor,
    bias: Tensor,
    lower: Tensor,
    upper: Tensor,
}

/// Per row: the row back-substituted to the first layer's output through the original tail
/// (`dir`, `[rows, out]`) and the verifier's lower bound of `dir . z` for the original
/// output `z` over the row's box, by back-substitution to the network's input (`low`,
/// `[rows]`). While the tail's own back-substitution stays near `dir`, this keeps the bound
/// as tight as the verifier's, where bounding `z` neuron by neuron would lose the
/// correlations between them (see [`CertifiedTail::lower`]).
#[derive(Debug)]
struct Cut {
    dir: Tensor,
    low: Tensor,
}

/// The requirement rows back-substituted to the first layer's output, with the weights they
/// were computed with.
struct AtFirst<'a> {
    /// Coefficients of the first layer's output, `[rows, out]`.
    lam: Tensor,
    /// Constants, `[rows]`.
    konst: Tensor,
    w1: &'a Tensor,
    b1: &'a Tensor,
    /// The first layer's change from its original weight and bias.
    dw: Tensor,
    db: Tensor,
}

/// The chain of Linear and ReLU nodes from `first` to the output, and the value it reads;
/// `None` when `first` is not a Linear node or the nodes after it are not such a chain (a
/// Flatten is passed over: bounds are flat already).
fn chain(net: &Network, first: usize) -> Option<(usize, Vec<Step>)> {
    let nodes = net.nodes();
    let input = *nodes.get(first)?.inputs().first()?;
    let mut steps = Vec::new();
    for (k, node) in nodes.iter().enumerate().skip(first) {
        // Value k is node k - 1's output: each node must read the one before it.
        if k > first && node.inputs() != [k] {
            return None;
        }
        match node.layer() {
            Layer::Linear(_) => steps.push(Step::Linear(k)),
            Layer::Relu if k > first => steps.push(Step::Relu),
            Layer::Flatten if k > first => {}
            _ => return None,
        }
    }
    Some((input, steps))
}

/// Whether the nodes from `node` on are a chain of Linear and ReLU layers to the output that
/// starts with a Linear layer (what [`CertifiedTail`] bounds).
pub(crate) fn is_dense_tail(net: &Network, node: usize) -> bool {
    chain(net, node).is_some()
}

/// Boxes bounded between two progress reports.
const BOXES_PER_CHUNK: usize = 10;

fn f32s(v: impl IntoIterator<Item = f64>) -> Vec<f32> {
    v.into_iter().map(|x| x as f32).collect()
}

/// Lower and upper bounds of `dW h + db` for `h` in the box `(c, r)`.
fn change_bounds(
    c: &Tensor,
    r: &Tensor,
    dw: &Tensor,
    db: &Tensor,
) -> candle_core::Result<(Tensor, Tensor)> {
    let mid = c.matmul(&dw.t()?)?.broadcast_add(db)?;
    let rad = r.matmul(&dw.abs()?.t()?)?;
    Ok(((&mid - &rad)?, (mid + rad)?))
}

impl CertifiedTail {
    /// The tail from node `first` (the first Linear layer fine-tuning moves) with the
    /// verifier's bounds of its input and of its first layer's output over `boxes` on `net`;
    /// `None` when the nodes from `first` on are not a chain of Linear and ReLU layers.
    /// `on_box` is told the index of the next box to be bounded every few boxes (the costly
    /// part on a convolutional network).
    pub fn new(
        net: &Network,
        first: usize,
        boxes: &[&BoxRegion],
        rows: &[TailRow],
        mut on_box: impl FnMut(usize),
    ) -> Result<Option<Self>> {
        let Some((input, steps)) = chain(net, first) else {
            return Ok(None);
        };
        let Layer::Linear(lin) = net.nodes()[first].layer() else {
            return Ok(None);
        };
        let m = net.output_len();
        let (mut centre, mut radius, mut lower, mut upper) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // The boxes in chunks bounded in parallel (one back-substitution each), with
        // progress between chunks.
        let mut all = Vec::with_capacity(boxes.len());
        for (k, chunk) in boxes.chunks(BOXES_PER_CHUNK).enumerate() {
            on_box(k * BOXES_PER_CHUNK);
            let bounds: Vec<_> = chunk
                .par_iter()
                .map(|b| Ok(linear_bounds(net, b)?))
                .collect::<Result<Vec<_>>>()?;
            all.extend(bounds);
        }
        for v in &all {
            let (h, z) = (&v[input], &v[first + 1]);
            centre.extend(f32s(
                h.lower.iter().zip(&h.upper).map(|(l, u)| (l + u) / 2.0),
            ));
            radius.extend(f32s(
                h.lower.iter().zip(&h.upper).map(|(l, u)| (u - l) / 2.0),
            ));
            lower.extend(f32s(z.lower.iter().copied()));
            upper.extend(f32s(z.upper.iter().copied()));
        }
        let (n, out) = (lin.in_features(), lin.out_features());
        let mut a = vec![0f32; rows.len() * m];
        for (i, r) in rows.iter().enumerate() {
            for &(j, v) in &r.coeffs {
                a[i * m + j] += v as f32;
            }
        }
        let g = boxes.len();
        let rows_n = rows.len();
        let t = || -> candle_core::Result<Self> {
            let dev = &Device::Cpu;
            Ok(Self {
                cut: Cut {
                    dir: Tensor::zeros((rows_n, out), DType::F32, dev)?,
                    low: Tensor::zeros(rows_n, DType::F32, dev)?,
                },
                steps,
                centre: Tensor::from_vec(centre, (g, n), dev)?,
                radius: Tensor::from_vec(radius, (g, n), dev)?,
                first: FirstLayer {
                    weight: lin.weight().value().to_dtype(DType::F32)?,
                    bias: lin.bias().value().to_dtype(DType::F32)?,
                    lower: Tensor::from_vec(lower, (g, out), dev)?,
                    upper: Tensor::from_vec(upper, (g, out), dev)?,
                },
                rows: Tensor::from_vec(a, (rows.len(), m), dev)?,
                rhs: Tensor::from_vec(f32s(rows.iter().map(|r| r.rhs)), rows.len(), dev)?,
                group: Tensor::from_vec(
                    rows.iter().map(|r| r.group as u32).collect::<Vec<u32>>(),
                    rows.len(),
                    dev,
                )?,
                offset: 0,
            })
        };
        let mut tail = t().map_err(NnError::from)?;
        // The cuts: each row back-substituted through the original tail, then bounded by
        // the verifier from the first layer's output down to the network's input.
        let original: Vec<((usize, usize), Tensor)> = tail
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Linear(k) => Some(*k),
                Step::Relu => None,
            })
            .flat_map(|k| [0, 1].map(|slot| (k, slot)))
            .map(|(k, slot)| {
                let p = net.param(ParamId { node: k, slot })?;
                Ok((
                    (k, slot),
                    p.value().to_dtype(DType::F32).map_err(NnError::from)?,
                ))
            })
            .collect::<Result<_>>()?;
        let param = |node: usize, slot: usize| {
            original
                .iter()
                .find(|(id, _)| *id == (node, slot))
                .map(|(_, t)| t)
        };
        let dir = tail
            .at_first(param)
            .and_then(|a| a.lam.to_vec2::<f32>())
            .map_err(NnError::from)?;
        let by_group: Vec<Vec<usize>> = (0..g)
            .map(|k| (0..rows.len()).filter(|&i| rows[i].group == k).collect())
            .collect();
        let lows: Vec<Vec<f64>> = by_group
            .par_iter()
            .zip(&all)
            .map(|(ids, v)| {
                let dirs: Vec<Vec<f64>> = ids
                    .iter()
                    .map(|&i| dir[i].iter().map(|&x| x as f64).collect())
                    .collect();
                if dirs.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(row_bounds(net, v, first + 1, &dirs)?.0)
            })
            .collect::<Result<_>>()?;
        let mut low = vec![0f32; rows.len()];
        for (ids, l) in by_group.iter().zip(&lows) {
            for (&i, &v) in ids.iter().zip(l) {
                low[i] = v as f32;
            }
        }
        let dev = &Device::Cpu;
        tail.cut = (|| -> candle_core::Result<Cut> {
            Ok(Cut {
                dir: Tensor::from_vec(dir.concat(), (rows.len(), out), dev)?,
                low: Tensor::from_vec(low, rows.len(), dev)?,
            })
        })()
        .map_err(NnError::from)?;
        Ok(Some(tail))
    }

    /// Lower bounds of `a . y - rhs` for every row over its box, with the trainer's current
    /// weights (tracks gradients): `[rows]`, f32.
    pub fn lower(&self, trainer: &Trainer) -> Result<Tensor> {
        self.lower_with(|node, slot| {
            trainer.param(ParamId {
                node: node - self.offset,
                slot,
            })
        })
        .map_err(|e| NnError::from(e).into())
    }

    /// The same tail read from a trainer of the network's head from node `offset` on
    /// (`Network::head`): node `k` of the network is the head's node `k - offset`.
    pub fn reading_nodes_from(self, offset: usize) -> Self {
        Self { offset, ..self }
    }

    /// The rows back-substituted through the tail to its first layer's output, with the
    /// weights `param` gives (interval bounds of each later pre-activation for the ReLU
    /// relaxations).
    fn at_first<'a>(
        &self,
        param: impl Fn(usize, usize) -> Option<&'a Tensor>,
    ) -> candle_core::Result<AtFirst<'a>> {
        let weights = |node: usize| -> candle_core::Result<(&Tensor, &Tensor)> {
            match (param(node, 0), param(node, 1)) {
                (Some(w), Some(b)) => Ok((w, b)),
                _ => candle_core::bail!("node {node} has no weight and bias"),
            }
        };
        let Some(&Step::Linear(first)) = self.steps.first() else {
            candle_core::bail!("a tail starts with a Linear layer");
        };
        let (w1, b1) = weights(first)?;
        let dw = (w1 - &self.first.weight)?;
        let db = (b1 - &self.first.bias)?;
        // The first layer's output: the interval of `W h + b` over the box, intersected with
        // the original output's bounds plus the change's.
        let (dl, du) = change_bounds(&self.centre, &self.radius, &dw, &db)?;
        let (cl, cu) = change_bounds(&self.centre, &self.radius, w1, b1)?;
        let l = cl.maximum(&(&self.first.lower + dl)?)?;
        let u = cu.minimum(&(&self.first.upper + du)?)?.maximum(&l)?;
        let (mut c, mut r) = (((&l + &u)? * 0.5)?, ((&u - &l)? * 0.5)?);
        // Interval bounds forward, keeping each ReLU's pre-activation bounds.
        let mut pre = Vec::new();
        for step in &self.steps[1..] {
            match *step {
                Step::Linear(node) => {
                    let (w, b) = weights(node)?;
                    c = c.matmul(&w.t()?)?.broadcast_add(b)?;
                    r = r.matmul(&w.abs()?.t()?)?;
                }
                Step::Relu => {
                    let (l, u) = ((&c - &r)?, (&c + &r)?);
                    let (lr, ur) = (l.relu()?, u.relu()?);
                    c = ((&lr + &ur)? * 0.5)?;
                    r = ((&ur - &lr)? * 0.5)?;
                    pre.push((l, u));
                }
            }
        }
        // Back-substitution of the rows to the first layer's output.
        let mut lam = self.rows.clone();
        let mut konst = self.rhs.neg()?;
        for step in self.steps[1..].iter().rev() {
            match *step {
                Step::Linear(node) => {
                    let (w, b) = weights(node)?;
                    konst = (konst + lam.matmul(&b.unsqueeze(1)?)?.squeeze(1)?)?;
                    lam = lam.matmul(w)?;
                }
                Step::Relu => {
                    let (l, u) = pre.pop().expect("one per ReLU");
                    let l = l.index_select(&self.group, 0)?;
                    let u = u.index_select(&self.group, 0)?;
                    let active = l.ge(0f32)?.to_dtype(DType::F32)?;
                    let unstable =
                        (l.lt(0f32)?.to_dtype(DType::F32)? * u.gt(0f32)?.to_dtype(DType::F32)?)?;
                    let width = (&u - &l)?.maximum(1e-12f32)?;
                    // Upper relaxation: the chord u (z - l) / (u - l) where unstable.
                    let chord = ((&u / &width)? * &unstable)?;
                    let upper_slope = (&chord + &active)?;
                    let upper_intercept = (chord * l.neg()?)?;
                    // Lower relaxation: slope 1 where the positive side is the wider.
                    let wide = u.gt(&l.neg()?)?.to_dtype(DType::F32)?;
                    let lower_slope = ((unstable * wide)? + &active)?;
                    let pos = lam.relu()?;
                    let neg = (&lam - &pos)?;
                    konst = (konst + (&neg * upper_intercept)?.sum(1)?)?;
                    lam = ((pos * lower_slope)? + (neg * upper_slope)?)?;
                }
            }
        }
        Ok(AtFirst {
            lam,
            konst,
            w1,
            b1,
            dw,
            db,
        })
    }

    fn lower_with<'a>(
        &self,
        param: impl Fn(usize, usize) -> Option<&'a Tensor>,
    ) -> candle_core::Result<Tensor> {
        let AtFirst {
            lam,
            konst,
            w1,
            b1,
            dw,
            db,
        } = self.at_first(param)?;
        // Three bounds of `lam . z` with z the first layer's output; all are sound, the
        // largest is kept. Through the layer to the box of its input:
        let c0 = self.centre.index_select(&self.group, 0)?;
        let r0 = self.radius.index_select(&self.group, 0)?;
        let through = ((lam.matmul(&b1.unsqueeze(1)?)?.squeeze(1)?
            + (lam.matmul(w1)? * &c0)?.sum(1)?)?
            - (lam.matmul(w1)?.abs()? * &r0)?.sum(1)?)?;
        // The original output `z0` (z = z0 + dW h + db) bounded neuron by neuron, plus the
        // change over the box:
        let zl = self.first.lower.index_select(&self.group, 0)?;
        let zu = self.first.upper.index_select(&self.group, 0)?;
        let boxed = |v: &Tensor| -> candle_core::Result<Tensor> {
            let pos = v.relu()?;
            let neg = (v - &pos)?;
            ((pos * &zl)? + (neg * &zu)?)?.sum(1)
        };
        let ldw = lam.matmul(&dw)?;
        let change = (lam.matmul(&db.unsqueeze(1)?)?.squeeze(1)?
            + ((&ldw * &c0)?.sum(1)? - (ldw.abs()? * &r0)?.sum(1)?)?)?;
        let split = (boxed(&lam)? + &change)?;
        // The cut: `lam = a dir + rest` with `a >= 0`, so `lam . z0 >= a low + rest . z0`
        // (any `a >= 0` is sound; the projection makes `rest` small while the tail stays
        // near the original).
        let dir = &self.cut.dir;
        let a = ((&lam * dir)?.sum(1)? / dir.sqr()?.sum(1)?.maximum(1e-12f32)?)?.relu()?;
        let rest = (&lam - dir.broadcast_mul(&a.unsqueeze(1)?)?)?;
        let cut = (((&a * &self.cut.low)? + boxed(&rest)?)? + change)?;
        konst + through.maximum(&split)?.maximum(&cut)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netrepair_nn::{Linear, NetworkBuilder};
    use netrepair_spec::{LinearConstraint, Polytope};

    fn t(v: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    /// y = [1, -1] relu(W x + b) with W = [[1, 1], [1, -1]], b = 0, over x in [0, 1] x [-1, 1].
    fn tiny() -> Network {
        let zeros = |n| Tensor::zeros(n, DType::F32, &Device::Cpu).unwrap();
        let mut b = NetworkBuilder::new(vec![2]);
        let l1 = Linear::new("l1", t(&[1., 1., 1., -1.], (2, 2)), zeros(2)).unwrap();
        let l2 = Linear::new("l2", t(&[1., -1.], (1, 2)), zeros(1)).unwrap();
        b.push("l1", Layer::Linear(l1)).unwrap();
        b.push("r", Layer::Relu).unwrap();
        b.push("l2", Layer::Linear(l2)).unwrap();
        b.build().unwrap()
    }

    #[test]
    fn hand_computed_bound_and_sound_on_samples() {
        let net = tiny();
        let b = BoxRegion::new(vec![0.0, -1.0], vec![1.0, 1.0]).unwrap();
        // y > -3 (row y, rhs -3).
        let case = Case {
            input: b.clone(),
            unsafe_region: vec![Polytope {
                constraints: vec![LinearConstraint {
                    coeffs: vec![(0, 1.0)],
                    rhs: -3.0,
                }],
            }],
        };
        let rows = TailRow::of_case(&case, 0).unwrap();
        let tail = CertifiedTail::new(&net, 0, &[&b], &rows, |_| {})
            .unwrap()
            .unwrap();
        let trainer = Trainer::new(&net, DType::F32).unwrap();
        let low = tail.lower(&trainer).unwrap().to_vec1::<f32>().unwrap()[0] as f64;
        // z1 = x1 + x2 in [-1, 2], z2 = x1 - x2 in [-1, 2], both unstable, chord slope 2/3,
        // intercept 2/3. y = h1 - h2: h1 >= 1 * z1 (u > -l), -h2 >= -(2/3 z2 + 2/3).
        // lambda = z1 - 2/3 z2 = (1/3) x1 + (5/3) x2, constant -2/3; minimum over the box:
        // 0 - 5/3 - 2/3 = -7/3, minus rhs -3: 2/3.
        assert!((low - 2.0 / 3.0).abs() < 1e-5, "{low}");
        // Sound: y - (-3) >= low at sampled inputs.
        for i in 0..=10 {
            for j in 0..=10 {
                let x = [i as f64 / 10.0, -1.0 + j as f64 / 5.0];
                let xt = Tensor::from_vec(x.to_vec(), (1, 2), &Device::Cpu).unwrap();
                let y = net
                    .forward_f64(&xt)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()[0];
                assert!(y + 3.0 >= low - 1e-6, "{x:?}: {y}");
            }
        }
    }

    #[test]
    fn bounds_of_a_deeper_chain_contain_sampled_outputs() {
        use rand::{Rng, SeedableRng};
        for seed in 0..4 {
            let net =
                netrepair_nn::mlp(&[3, 8, 8, 2], netrepair_nn::Activation::Relu, seed).unwrap();
            let b = BoxRegion::new(vec![-0.5, 0.0, -1.0], vec![0.5, 0.3, 0.2]).unwrap();
            let rows = vec![
                TailRow {
                    group: 0,
                    coeffs: vec![(0, 1.0), (1, -1.0)],
                    rhs: 0.25,
                },
                TailRow {
                    group: 0,
                    coeffs: vec![(1, 2.0)],
                    rhs: -1.0,
                },
            ];
            let tail = CertifiedTail::new(&net, 0, &[&b], &rows, |_| {})
                .unwrap()
                .unwrap();
            let trainer = Trainer::new(&net, DType::F32).unwrap();
            let low = tail.lower(&trainer).unwrap().to_vec1::<f32>().unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            for _ in 0..500 {
                let x: Vec<f64> = (0..3)
                    .map(|i| rng.random_range(b.lower[i]..=b.upper[i]))
                    .collect();
                let xt = Tensor::from_vec(x.clone(), (1, 3), &Device::Cpu).unwrap();
                let y = net
                    .forward_f64(&xt)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap();
                for (r, &l) in rows.iter().zip(&low) {
                    let v: f64 = r.coeffs.iter().map(|&(j, c)| c * y[j]).sum::<f64>() - r.rhs;
                    assert!(v >= l as f64 - 1e-4, "seed {seed}, {x:?}: {v} < {l}");
                }
            }
        }
    }

    /// A 3-8-8-2 MLP, a box of its input, and its tail from the second Linear layer (node
    /// 2) bounding `y0 - y1 > 0`.
    fn second_layer_tail(seed: u64) -> (Network, BoxRegion, CertifiedTail) {
        let net = netrepair_nn::mlp(&[3, 8, 8, 2], netrepair_nn::Activation::Relu, seed).unwrap();
        let b = BoxRegion::new(vec![-0.5, 0.0, -1.0], vec![0.5, 0.3, 0.2]).unwrap();
        let rows = vec![TailRow {
            group: 0,
            coeffs: vec![(0, 1.0), (1, -1.0)],
            rhs: 0.0,
        }];
        let tail = CertifiedTail::new(&net, 2, &[&b], &rows, |_| {})
            .unwrap()
            .unwrap();
        (net, b, tail)
    }

    #[test]
    fn bounds_stay_sound_when_the_weights_move_away_from_the_bounded_network() {
        use rand::{Rng, SeedableRng};
        // The tail from the second Linear layer (node 2): its input's box is loose, the
        // verifier's bounds of its output (back-substituted to the input) are tighter.
        let (net, b, tail) = second_layer_tail(7);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for scale in [0.0, 0.01, 0.1, 0.5] {
            // Every weight of the tail moved: the bound uses the original first layer's
            // bounds plus the change's.
            let mut moved = net.clone();
            for id in net.param_ids().into_iter().filter(|id| id.node >= 2) {
                let p = net.param(id).unwrap();
                let v: Vec<f64> = p
                    .to_vec()
                    .unwrap()
                    .iter()
                    .map(|w| w + scale * rng.random_range(-1.0..1.0))
                    .collect();
                let t = Tensor::from_vec(v, p.dims(), &Device::Cpu).unwrap();
                moved.set_param(id, t).unwrap();
            }
            let trainer = Trainer::new(&moved, DType::F32).unwrap();
            let low = tail.lower(&trainer).unwrap().to_vec1::<f32>().unwrap()[0] as f64;
            for _ in 0..500 {
                let x: Vec<f64> = (0..3)
                    .map(|i| rng.random_range(b.lower[i]..=b.upper[i]))
                    .collect();
                let xt = Tensor::from_vec(x.clone(), (1, 3), &Device::Cpu).unwrap();
                let y = moved
                    .forward_f64(&xt)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap();
                assert!(
                    y[0] - y[1] >= low - 1e-4,
                    "scale {scale}, {x:?}: {} < {low}",
                    y[0] - y[1]
                );
            }
        }
    }

    #[test]
    fn at_the_original_weights_the_cut_makes_the_bound_the_verifiers() {
        // A tail from the second Linear layer (node 2) of a 3-8-8-2 MLP: its input box
        // forgets how the 8 features move together, the verifier's back-substitution to the
        // network's input does not; the cut carries the latter into the tail's bound, which
        // is then at least the verifier's (the tail also takes the best of its other bounds).
        let mut gained = 0f64;
        for seed in 0..4 {
            let (net, b, tail) = second_layer_tail(seed);
            let trainer = Trainer::new(&net, DType::F32).unwrap();
            let low = tail.lower(&trainer).unwrap().to_vec1::<f32>().unwrap()[0] as f64;
            let v = linear_bounds(&net, &b).unwrap();
            let (verifier, _) = row_bounds(&net, &v, 5, &[vec![1.0, -1.0]]).unwrap();
            assert!(
                low >= verifier[0] - 1e-4 * (1.0 + verifier[0].abs()),
                "seed {seed}: tail {low}, verifier {}",
                verifier[0]
            );
            // Without the cut (its lower bound pushed to -inf, its direction kept) the bound
            // is never tighter.
            let loose = CertifiedTail {
                cut: Cut {
                    dir: tail.cut.dir.clone(),
                    low: Tensor::full(-1e30f32, 1, &Device::Cpu).unwrap(),
                },
                ..tail
            };
            let l2 = loose.lower(&trainer).unwrap().to_vec1::<f32>().unwrap()[0] as f64;
            assert!(l2 <= low + 1e-5, "seed {seed}: {l2} > {low}");
            gained = gained.max(low - l2);
        }
        assert!(gained > 0.1, "the cut never tightened the bound: {gained}");
    }

    #[test]
    fn gradients_flow_to_the_tail_weights() {
        let net = tiny();
        let b = BoxRegion::new(vec![0.0, -1.0], vec![1.0, 1.0]).unwrap();
        let rows = vec![TailRow {
            group: 0,
            coeffs: vec![(0, 1.0)],
            rhs: 0.0,
        }];
        let tail = CertifiedTail::new(&net, 0, &[&b], &rows, |_| {})
            .unwrap()
            .unwrap();
        let trainer = Trainer::new(&net, DType::F32).unwrap();
        let low = tail.lower(&trainer).unwrap().sum_all().unwrap();
        let grads = trainer.grads(&low).unwrap();
        assert!(grads.iter().all(|g| g.is_some()));
    }

    #[test]
    fn only_dense_chains_are_tails() {
        let net = tiny();
        assert!(chain(&net, 0).is_some());
        // The ReLU is not a Linear layer to start from.
        assert!(chain(&net, 1).is_none());
    }
}

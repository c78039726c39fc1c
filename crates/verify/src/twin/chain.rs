//! A network as a chain of dense f64 maps: what twin bounds, Jacobians and the variation
//! attack work on.

use netrepair_nn::{Layer, Network};
use netrepair_spec::{GlobalProperty, OutputMeasure};

use crate::error::{Result, VerifyError};
use netrepair_nn::{affine_op, elementwise_op};

/// One step of a [`Chain`].
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// `y = W x + b`, `W` dense row-major `rows x cols`.
    Affine {
        w: Vec<f64>,
        b: Vec<f64>,
        rows: usize,
        cols: usize,
    },
    /// `y_k = a_k x_k + c_k`.
    Scale { a: Vec<f64>, c: Vec<f64> },
    /// `y = max(x, 0)`.
    Relu,
}

/// A network as a chain of dense f64 maps: what twin bounds, Jacobians and the variation
/// attack work on. `values[k]` is the network value (0 = input, `i + 1` = node `i`) after step
/// `k`.
#[derive(Debug, Clone)]
pub struct Chain {
    pub(super) steps: Vec<Step>,
    /// Network value index after each step.
    pub(super) values: Vec<usize>,
    /// Width after each step (`widths[0]` is the input's; `widths[k + 1]` after step `k`).
    pub(super) widths: Vec<usize>,
}

impl Chain {
    /// The chain of `net`, or an error naming the first node that is not a chain step (a
    /// residual Add, Sigmoid, Tanh, MaxPool) or that reads anything but the previous value.
    pub fn new(net: &Network) -> Result<Self> {
        let mut steps = Vec::new();
        let mut values = Vec::new();
        let mut widths = vec![net.input_len()];
        for (i, node) in net.nodes().iter().enumerate() {
            let unsupported = |why: &str| {
                VerifyError::Unsupported(format!(
                    "node '{}' ({}) {why}; twin-network bounds need a chain of affine layers and ReLUs",
                    node.name(),
                    node.layer().kind()
                ))
            };
            if node.inputs() != [i] {
                return Err(unsupported("does not read the previous node's output"));
            }
            let step = if let Some(op) = affine_op(net, i)? {
                let (rows, cols) = (op.bias.len(), *widths.last().expect("input width"));
                let mut w = vec![0.0; rows * cols];
                for (r, row) in op.rows.iter().enumerate() {
                    for &(j, v) in row {
                        w[r * cols + j as usize] += v;
                    }
                }
                Step::Affine {
                    w,
                    b: op.bias,
                    rows,
                    cols,
                }
            } else if let Some((a, c)) = elementwise_op(net, i)? {
                Step::Scale { a, c }
            } else {
                match node.layer() {
                    Layer::Relu => Step::Relu,
                    Layer::Flatten | Layer::Reshape(_) => continue,
                    _ => return Err(unsupported("is not supported")),
                }
            };
            let width = match &step {
                Step::Affine { rows, .. } => *rows,
                Step::Scale { a, .. } => a.len(),
                Step::Relu => *widths.last().expect("input width"),
            };
            steps.push(step);
            values.push(i + 1);
            widths.push(width);
        }
        match steps.last() {
            Some(Step::Affine { .. }) => Ok(Self {
                steps,
                values,
                widths,
            }),
            _ => Err(VerifyError::Unsupported(
                "the network must end with an affine layer (its logits) for last-layer repair and twin bounds"
                    .into(),
            )),
        }
    }

    /// Input width.
    pub fn input_len(&self) -> usize {
        self.widths[0]
    }

    /// Output width.
    pub fn output_len(&self) -> usize {
        *self.widths.last().expect("non-empty chain")
    }

    /// Width of the last hidden layer (the input of the last affine step).
    pub fn hidden_len(&self) -> usize {
        self.widths[self.steps.len() - 1]
    }

    /// The network value index read by the last affine step (the last hidden layer).
    pub fn hidden_value(&self) -> usize {
        match self.steps.len() {
            1 => 0,
            n => self.values[n - 2],
        }
    }

    /// The last affine step's weight, `outputs x hidden` row-major.
    pub fn last_weight(&self) -> &[f64] {
        match self.steps.last() {
            Some(Step::Affine { w, .. }) => w,
            _ => unreachable!("checked in new"),
        }
    }

    /// The last affine step's bias (`outputs`).
    pub fn last_bias(&self) -> &[f64] {
        match self.steps.last() {
            Some(Step::Affine { b, .. }) => b,
            _ => unreachable!("checked in new"),
        }
    }

    /// The chain whose outputs are the rows the property's measure bounds
    /// ([`OutputMeasure::rows`]): itself for logits, the logit differences for probabilities.
    pub fn measured(&self, prop: &GlobalProperty) -> Self {
        let mut c = self.clone();
        if prop.measure == OutputMeasure::Logits {
            return c;
        }
        if let Some(Step::Affine { w, b, rows, cols }) = c.steps.last_mut() {
            let spec = prop.measure.rows(*rows);
            let mut w2 = Vec::with_capacity(spec.len() * *cols);
            let mut b2 = Vec::with_capacity(spec.len());
            for r in &spec {
                b2.push(r.iter().map(|&(o, f)| f * b[o]).sum());
                for j in 0..*cols {
                    w2.push(r.iter().map(|&(o, f)| f * w[o * *cols + j]).sum());
                }
            }
            *w = w2;
            *b = b2;
            *rows = spec.len();
            *c.widths.last_mut().expect("widths") = spec.len();
        }
        c
    }

    /// The same chain with the last affine step's weight replaced (`outputs x hidden`).
    pub fn with_last_weight(&self, w_new: Vec<f64>) -> Self {
        let mut c = self.clone();
        if let Some(Step::Affine { w, .. }) = c.steps.last_mut() {
            assert_eq!(w.len(), w_new.len(), "weight shape");
            *w = w_new;
        }
        c
    }

    /// Every step's output for input `x`, in f64 (index 0: `x` itself).
    pub(super) fn trace(&self, x: &[f64]) -> Vec<Vec<f64>> {
        let mut vals = vec![x.to_vec()];
        for s in &self.steps {
            let v = vals.last().expect("input");
            let next = match s {
                Step::Affine { w, b, cols, .. } => b
                    .iter()
                    .enumerate()
                    .map(|(r, &br)| br + dot(&w[r * cols..(r + 1) * cols], v))
                    .collect(),
                Step::Scale { a, c } => v
                    .iter()
                    .zip(a.iter().zip(c))
                    .map(|(x, (a, c))| a * x + c)
                    .collect(),
                Step::Relu => v.iter().map(|x| x.max(0.0)).collect(),
            };
            vals.push(next);
        }
        vals
    }

    /// The last hidden layer's values at `x` (the input of the last affine step), in f64.
    pub fn hidden(&self, x: &[f64]) -> Vec<f64> {
        let mut t = self.trace(x);
        t.truncate(self.steps.len());
        t.pop().expect("hidden layer")
    }

    /// The output for input `x`, in f64.
    pub fn forward(&self, x: &[f64]) -> Vec<f64> {
        self.trace(x).pop().expect("output")
    }

    /// Output and the gradient of output `o` with respect to the input, at `x`.
    pub fn gradient(&self, x: &[f64], o: usize) -> (Vec<f64>, Vec<f64>) {
        let vals = self.trace(x);
        let g = self.output_gradient(&vals, o);
        (vals.last().expect("output").clone(), g)
    }

    /// The Jacobian at `x` restricted to input columns `cols`: `outputs x cols.len()`.
    pub fn jacobian(&self, x: &[f64], cols: &[usize]) -> Vec<Vec<f64>> {
        let vals = self.trace(x);
        (0..self.output_len())
            .map(|o| {
                let g = self.output_gradient(&vals, o);
                cols.iter().map(|&c| g[c]).collect()
            })
            .collect()
    }

    /// The input gradient of output `o`, given the trace `vals`.
    pub(super) fn output_gradient(&self, vals: &[Vec<f64>], o: usize) -> Vec<f64> {
        let mut g = vec![0.0; self.output_len()];
        g[o] = 1.0;
        self.backward(vals, g)
    }

    pub(super) fn backward(&self, vals: &[Vec<f64>], mut g: Vec<f64>) -> Vec<f64> {
        for (k, s) in self.steps.iter().enumerate().rev() {
            g = match s {
                Step::Affine { w, cols, .. } => {
                    let mut out = vec![0.0; *cols];
                    for (r, &gr) in g.iter().enumerate() {
                        if gr != 0.0 {
                            axpy(&mut out, gr, &w[r * cols..(r + 1) * cols]);
                        }
                    }
                    out
                }
                Step::Scale { a, .. } => g.iter().zip(a).map(|(g, a)| g * a).collect(),
                Step::Relu => g
                    .iter()
                    .zip(&vals[k])
                    .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
                    .collect(),
            };
        }
        g
    }
}

pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub(super) fn axpy(out: &mut [f64], a: f64, x: &[f64]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o += a * v;
    }
}

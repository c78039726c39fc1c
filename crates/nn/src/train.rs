//! Training: optimisers (SGD with momentum, Adam, RMSprop) over candle variables, optional
//! per-parameter update masks, and a seeded mini-batch cross-entropy loop.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{NnError, Result};
use crate::network::{Network, ParamId};

/// Which optimiser to use and its hyper-parameters (the learning rate lives in
/// [`TrainConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerKind {
    /// Stochastic gradient descent with (heavy-ball) momentum.
    Sgd {
        /// Momentum factor in [0, 1).
        momentum: f64,
    },
    /// Adam (Kingma & Ba).
    Adam {
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Denominator offset.
        eps: f64,
    },
    /// RMSprop as in PyTorch.
    RmsProp {
        /// Squared-gradient decay.
        alpha: f64,
        /// Denominator offset.
        eps: f64,
    },
}

impl OptimizerKind {
    /// Adam with the usual defaults.
    pub fn adam() -> Self {
        OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
    /// RMSprop with PyTorch's defaults.
    pub fn rmsprop() -> Self {
        OptimizerKind::RmsProp {
            alpha: 0.99,
            eps: 1e-8,
        }
    }
    /// SGD with momentum 0.9.
    pub fn sgd() -> Self {
        OptimizerKind::Sgd { momentum: 0.9 }
    }
}

/// Optimiser state for a list of variables.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    lr: f64,
    weight_decay: f64,
    t: i32,
    m: Vec<Option<Tensor>>,
    v: Vec<Option<Tensor>>,
}

impl Optimizer {
    /// A fresh optimiser for `n` variables.
    pub fn new(kind: OptimizerKind, lr: f64, weight_decay: f64, n: usize) -> Result<Self> {
        if !(lr > 0.0 && lr.is_finite()) || weight_decay.is_nan() || weight_decay < 0.0 {
            return Err(NnError::InvalidTraining(format!(
                "learning rate {lr} must be positive, weight decay {weight_decay} non-negative"
            )));
        }
        Ok(Self {
            kind,
            lr,
            weight_decay,
            t: 0,
            m: vec![None; n],
            v: vec![None; n],
        })
    }

    /// One update. `grads[i]` is the gradient of `vars[i]` (`None`: no update). With `masks`,
    /// `masks[i]` (same shape, 0 or 1) multiplies the update, so masked entries stay fixed.
    pub fn step(
        &mut self,
        vars: &[Var],
        grads: &[Option<Tensor>],
        masks: Option<&[Tensor]>,
    ) -> Result<()> {
        self.t += 1;
        for (i, var) in vars.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let p = var.as_tensor().detach();
            // A gradient can still carry the graph it was computed from (e.g. a weight's
            // gradient that reads other variables); the moments would then hold every step's
            // graph alive, and memory would grow with the steps.
            let g = g.detach();
            let g = if self.weight_decay > 0.0 {
                (g + p.affine(self.weight_decay, 0.0)?)?
            } else {
                g
            };
            let update = match self.kind {
                OptimizerKind::Sgd { momentum } => {
                    let m = match &self.m[i] {
                        Some(m) if momentum > 0.0 => (m.affine(momentum, 0.0)? + &g)?,
                        _ => g,
                    };
                    self.m[i] = Some(m.clone());
                    m.affine(self.lr, 0.0)?
                }
                OptimizerKind::Adam { beta1, beta2, eps } => {
                    let m = blend(self.m[i].as_ref(), &g, beta1)?;
                    let v = blend(self.v[i].as_ref(), &g.sqr()?, beta2)?;
                    let mhat = m.affine(1.0 / (1.0 - beta1.powi(self.t)), 0.0)?;
                    let vhat = v.affine(1.0 / (1.0 - beta2.powi(self.t)), 0.0)?;
                    self.m[i] = Some(m);
                    self.v[i] = Some(v);
                    (mhat / (vhat.sqrt()? + eps)?)?.affine(self.lr, 0.0)?
                }
                OptimizerKind::RmsProp { alpha, eps } => {
                    let v = blend(self.v[i].as_ref(), &g.sqr()?, alpha)?;
                    self.v[i] = Some(v.clone());
                    (g / (v.sqrt()? + eps)?)?.affine(self.lr, 0.0)?
                }
            };
            let update = match masks {
                Some(m) => (update * m[i].to_dtype(p.dtype())?)?,
                None => update,
            };
            var.set(&(p - update)?)?;
        }
        Ok(())
    }
}

/// `decay * old + (1 - decay) * new`, starting from zero.
fn blend(old: Option<&Tensor>, new: &Tensor, decay: f64) -> candle_core::Result<Tensor> {
    match old {
        Some(o) => o.affine(decay, 0.0)? + new.affine(1.0 - decay, 0.0)?,
        None => new.affine(1.0 - decay, 0.0),
    }
}

/// The trainable parameters of a network as candle variables, with the frozen ones alongside.
#[derive(Debug)]
pub struct Trainer {
    ids: Vec<ParamId>,
    vars: Vec<Option<Var>>,
    tensors: Vec<Tensor>,
    net: Network,
}

impl Trainer {
    /// Variables for every trainable parameter of `net`, in `dtype` (f32 for speed).
    pub fn new(net: &Network, dtype: DType) -> Result<Self> {
        Self::moving(net, dtype, |_| true)
    }

    /// Variables only for the trainable parameters that `moves` selects; the others are
    /// frozen tensors, so no gradient is computed for them (e.g. a convolutional trunk under
    /// a fine-tuned dense tail).
    pub fn moving(net: &Network, dtype: DType, moves: impl Fn(ParamId) -> bool) -> Result<Self> {
        let ids = net.param_ids();
        let mut vars = Vec::new();
        let mut tensors = Vec::new();
        for &id in &ids {
            let t = net.param(id)?.value().to_dtype(dtype)?;
            if net.is_trainable(id) && moves(id) {
                let v = Var::from_tensor(&t)?;
                tensors.push(v.as_tensor().clone());
                vars.push(Some(v));
            } else {
                tensors.push(t);
                vars.push(None);
            }
        }
        Ok(Self {
            ids,
            vars,
            tensors,
            net: net.clone(),
        })
    }

    /// The trainable variables, in canonical parameter order.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.iter().flatten().cloned().collect()
    }

    /// Parameter ids of [`Trainer::vars`], in the same order.
    pub fn var_ids(&self) -> Vec<ParamId> {
        self.ids
            .iter()
            .zip(&self.vars)
            .filter(|(_, v)| v.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// The current value of a parameter (a variable, tracking gradients, or a frozen tensor);
    /// `None` for an id the network does not have.
    pub fn param(&self, id: ParamId) -> Option<&Tensor> {
        self.ids
            .iter()
            .position(|&i| i == id)
            .map(|k| &self.tensors[k])
    }

    /// Forward pass with the current variable values (tracks gradients).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self
            .net
            .forward_with(&self.tensors, x, false)?
            .pop()
            .expect("output"))
    }

    /// Gradients of a scalar `loss` with respect to [`Trainer::vars`].
    pub fn grads(&self, loss: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let store = loss.backward()?;
        Ok(self
            .vars
            .iter()
            .flatten()
            .map(|v| store.get(v.as_tensor()).cloned())
            .collect())
    }

    /// Writes the variables back into `net` (as f64).
    pub fn write_back(&self, net: &mut Network) -> Result<()> {
        for (id, v) in self.ids.iter().zip(&self.vars) {
            if let Some(v) = v {
                net.set_param(*id, v.as_tensor().detach())?;
            }
        }
        Ok(())
    }
}

/// Mean cross-entropy of logits `[N, C]` (or `[N, ...]`, flattened) against class labels.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let n = logits.dims()[0];
    Ok(candle_nn::loss::cross_entropy(
        &logits.reshape((n, ()))?,
        labels,
    )?)
}

/// Settings of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Seed of the batch shuffling.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 64,
            lr: 1e-3,
            optimizer: OptimizerKind::adam(),
            weight_decay: 0.0,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Validates the settings, naming the first rule broken.
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(NnError::InvalidTraining("epochs must be at least 1".into()));
        }
        if self.batch_size == 0 {
            return Err(NnError::InvalidTraining(
                "batch size must be at least 1".into(),
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(NnError::InvalidTraining(format!(
                "learning rate must be positive, got {}",
                self.lr
            )));
        }
        Ok(())
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochStats {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub loss: f64,
    /// Share of training samples classified correctly during the epoch.
    pub accuracy: f64,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// Trains `net` in f32 by mini-batch cross-entropy on inputs `x` (`[N, input_shape...]`) and
/// labels `y`; `progress` is called after every batch with (batches done, batches in total) and
/// `on_epoch` after every epoch.
pub fn fit(
    net: &mut Network,
    x: &Tensor,
    y: &[u32],
    cfg: &TrainConfig,
    mut progress: impl FnMut(usize, usize),
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<Vec<EpochStats>> {
    cfg.check()?;
    net.check_input(x)?;
    let n = x.dims()[0];
    if n == 0 || y.len() != n {
        return Err(NnError::InvalidTraining(format!(
            "{n} inputs but {} labels",
            y.len()
        )));
    }
    let classes = net.output_len() as u32;
    if let Some(bad) = y.iter().find(|&&c| c >= classes) {
        return Err(NnError::InvalidTraining(format!(
            "label {bad} out of range for {classes} outputs"
        )));
    }
    let x = x.to_dtype(DType::F32)?;
    let trainer = Trainer::new(net, DType::F32)?;
    let vars = trainer.vars();
    let mut opt = Optimizer::new(cfg.optimizer, cfg.lr, cfg.weight_decay, vars.len())?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    let batches = n.div_ceil(cfg.batch_size);
    let mut history = Vec::new();
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct) = (0.0, 0usize);
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let ids = Tensor::from_slice(chunk, chunk.len(), &Device::Cpu)?;
            let xb = x.index_select(&ids, 0)?;
            let labels: Vec<u32> = chunk.iter().map(|&i| y[i as usize]).collect();
            let yb = Tensor::from_vec(labels.clone(), labels.len(), &Device::Cpu)?;
            let out = trainer.forward(&xb)?;
            let loss = cross_entropy(&out, &yb)?;
            let pred = out
                .reshape((chunk.len(), ()))?
                .argmax(1)?
                .to_vec1::<u32>()?;
            correct += pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
            loss_sum += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            let grads = trainer.grads(&loss)?;
            opt.step(&vars, &grads, None)?;
            progress((epoch - 1) * batches + b + 1, cfg.epochs * batches);
        }
        let stats = EpochStats {
            epoch,
            loss: loss_sum / n as f64,
            accuracy: correct as f64 / n as f64,
            seconds: start.elapsed().as_secs_f64(),
        };
        on_epoch(&stats);
        history.push(stats);
    }
    trainer.write_back(net)?;
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimiser_state_holds_no_graph_of_a_gradient_that_carries_one() {
        // A gradient computed from another variable tracks its graph; the moments must not
        // keep it (they would hold every step's graph alive).
        let w = Var::from_tensor(&Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap()).unwrap();
        let other = Var::from_tensor(&Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap()).unwrap();
        let tracked = (other.as_tensor() * 2.0).unwrap();
        assert!(tracked.track_op());
        for kind in [
            OptimizerKind::adam(),
            OptimizerKind::rmsprop(),
            OptimizerKind::sgd(),
        ] {
            let mut opt = Optimizer::new(kind, 0.1, 0.01, 1).unwrap();
            opt.step(std::slice::from_ref(&w), &[Some(tracked.clone())], None)
                .unwrap();
            for t in opt.m.iter().chain(&opt.v).flatten() {
                assert!(!t.track_op(), "{kind:?}");
            }
        }
    }
}

//! Informed layer selection for APRNN (seed 000): heuristics that score every affine layer as
//! the start layer from the repair set alone, so `--layer auto` can pick one with reasons.
//!
//! A layer's *representation* is what its block hands on: the value feeding the next affine
//! layer (after the ReLU, pooling, ...), or the network output for the last affine layer. Every
//! heuristic returns one score per affine layer and picks the largest:
//!
//! | heuristic | score of layer `k` |
//! |---|---|
//! | `activation-magnitude` | mean absolute value of the representation over the repair set |
//! | `activation-variance` | mean over units of the representation's variance across the set |
//! | `gradient-norm` | RMS of the cross-entropy gradient of layer `k`'s weight over the set |
//! | `activation-change` | mean relative change of the representation between each input and a perturbed copy (given, or an FGSM step of 5% of the inputs' range) |
//! | `similarity` | mean pairwise cosine similarity of the repair inputs' representations |
//! | `first-dense` | 1 for the first Linear layer after the last convolution (the first layer of an MLP) |
//! | `penultimate` | 1 for the penultimate affine layer |
//! | `random` | a seeded random layer (the naive baseline) |
//!
//! The brute-force oracle (repair at every layer, rank by success, then drawdown on a
//! validation set, then time) lives with informed repair (`informed.rs`, `brute_force`).

use candle_core::{DType, Device, Tensor};
use netrepair_nn::{Layer, Network, NnError};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::affine_layers;
use crate::error::{RepairError, Result};
use crate::outcome::LayerScores;
use crate::trace::batch;

/// The heuristic behind `--layer auto` and `analyze`'s recommendation (chosen from the
/// measurements in `docs/informed.md`).
pub const DEFAULT_HEURISTIC: &str = "penultimate";

/// A layer-selection heuristic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Heuristic {
    /// Largest mean absolute activation.
    ActivationMagnitude,
    /// Largest activation variance across the repair set.
    ActivationVariance,
    /// Largest RMS weight gradient of the repair loss.
    GradientNorm,
    /// Largest relative activation change under a perturbation of the inputs.
    ActivationChange,
    /// Most similar representations (mean pairwise cosine).
    Similarity,
    /// The first Linear layer after the last convolution.
    FirstDense,
    /// The penultimate affine layer.
    Penultimate,
    /// A random layer (seeded).
    Random,
}

impl Heuristic {
    /// Every heuristic, in a fixed order.
    pub const ALL: [Heuristic; 8] = [
        Heuristic::ActivationMagnitude,
        Heuristic::ActivationVariance,
        Heuristic::GradientNorm,
        Heuristic::ActivationChange,
        Heuristic::Similarity,
        Heuristic::FirstDense,
        Heuristic::Penultimate,
        Heuristic::Random,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Heuristic::ActivationMagnitude => "activation-magnitude",
            Heuristic::ActivationVariance => "activation-variance",
            Heuristic::GradientNorm => "gradient-norm",
            Heuristic::ActivationChange => "activation-change",
            Heuristic::Similarity => "similarity",
            Heuristic::FirstDense => "first-dense",
            Heuristic::Penultimate => "penultimate",
            Heuristic::Random => "random",
        }
    }
}

impl std::str::FromStr for Heuristic {
    type Err = RepairError;
    fn from_str(s: &str) -> Result<Self> {
        Heuristic::ALL
            .into_iter()
            .find(|h| h.name() == s)
            .ok_or_else(|| {
                RepairError::Problem(format!(
                    "unknown heuristic '{s}'; one of: {}",
                    Heuristic::ALL.map(Heuristic::name).join(", ")
                ))
            })
    }
}

/// What the heuristics look at: the repair inputs (flattened), their labels, optional
/// perturbed copies (for `activation-change`) and a seed (for `random`).
#[derive(Debug, Clone, Copy)]
pub struct SelectionInput<'a> {
    /// The repair inputs.
    pub inputs: &'a [Vec<f64>],
    /// Their correct labels.
    pub labels: &'a [usize],
    /// Perturbed copies of the inputs, one each (default: an FGSM step).
    pub perturbed: Option<&'a [Vec<f64>]>,
    /// Seed of the random choice.
    pub seed: u64,
}

/// The value id of each affine layer's representation (see the module documentation).
fn representation_values(net: &Network, affine: &[usize]) -> Vec<usize> {
    affine
        .iter()
        .enumerate()
        .map(|(i, _)| match affine.get(i + 1) {
            Some(&next) => net.nodes()[next].inputs()[0],
            None => net.nodes().len(),
        })
        .collect()
}

/// Every representation of every input, `[layer][input][unit]`.
fn representations(net: &Network, xs: &[Vec<f64>], values: &[usize]) -> Result<Vec<Vec<Vec<f64>>>> {
    let mut out = vec![Vec::with_capacity(xs.len()); values.len()];
    for chunk in xs.chunks(256) {
        let trace = net.forward_trace(&batch(net, chunk)?)?;
        for (k, &v) in values.iter().enumerate() {
            let t = trace.value(v);
            let rows = t
                .reshape((chunk.len(), ()))
                .and_then(|t| t.to_vec2::<f64>())
                .map_err(NnError::from)?;
            out[k].extend(rows);
        }
    }
    Ok(out)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Mean pairwise cosine similarity (at most 256 rows; zero vectors count as similarity 0).
fn mean_cosine(rows: &[Vec<f64>]) -> f64 {
    let rows = &rows[..rows.len().min(256)];
    let norms: Vec<f64> = rows.iter().map(|r| norm(r)).collect();
    let (mut s, mut n) = (0.0, 0usize);
    for i in 0..rows.len() {
        for j in i + 1..rows.len() {
            let d: f64 = rows[i].iter().zip(&rows[j]).map(|(a, b)| a * b).sum();
            let den = norms[i] * norms[j];
            s += if den > 0.0 { d / den } else { 0.0 };
            n += 1;
        }
    }
    if n == 0 {
        1.0
    } else {
        s / n as f64
    }
}

/// An FGSM step of 5% of the inputs' overall range, in the direction that raises the
/// cross-entropy of the true labels.
fn fgsm(net: &Network, xs: &[Vec<f64>], labels: &[usize]) -> Result<Vec<Vec<f64>>> {
    let (lo, hi) = xs
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let eps = 0.05 * (hi - lo).max(1e-6);
    let y = Tensor::from_vec(
        labels.iter().map(|&c| c as u32).collect::<Vec<_>>(),
        labels.len(),
        &Device::Cpu,
    )
    .map_err(NnError::from)?;
    let n = xs.len();
    let (g, _) = net.input_gradient(&batch(net, xs)?, |out| mean_cross_entropy(out, &y, n))?;
    let g = g
        .reshape((n, ()))
        .and_then(|g| g.to_vec2::<f64>())
        .map_err(NnError::from)?;
    Ok(xs
        .iter()
        .zip(g)
        .map(|(x, g)| {
            x.iter()
                .zip(g)
                .map(|(v, d)| v + eps * d.signum() * f64::from(u8::from(d != 0.0)))
                .collect()
        })
        .collect())
}

/// Mean cross-entropy of `n` outputs against labels, inside a gradient closure (stable:
/// the row maximum is subtracted first).
fn mean_cross_entropy(out: &Tensor, y: &Tensor, n: usize) -> candle_core::Result<Tensor> {
    let logits = out.reshape((n, ()))?;
    let top = logits.max_keepdim(1)?.detach();
    let logits = logits.broadcast_sub(&top)?;
    let lse = logits.exp()?.sum_keepdim(1)?.log()?;
    let picked = logits.gather(&y.unsqueeze(1)?, 1)?;
    (lse - picked)?.mean_all()
}

/// Scores every affine layer with `heuristic`.
pub fn score_layers(
    net: &Network,
    input: SelectionInput,
    heuristic: Heuristic,
) -> Result<LayerScores> {
    let affine = affine_layers(net);
    if affine.is_empty() {
        return Err(RepairError::Unsupported(
            "the network has no affine layer".into(),
        ));
    }
    let xs = input.inputs;
    if xs.is_empty() {
        return Err(RepairError::Problem("the repair set is empty".into()));
    }
    if input.labels.len() != xs.len() {
        return Err(RepairError::Problem(format!(
            "{} repair inputs but {} labels",
            xs.len(),
            input.labels.len()
        )));
    }
    if let Some(&c) = input.labels.iter().find(|&&c| c >= net.output_len()) {
        return Err(RepairError::Problem(format!(
            "label {c} is out of range: the network has {} outputs",
            net.output_len()
        )));
    }
    if let Some(x) = xs.iter().find(|x| x.len() != net.input_len()) {
        return Err(RepairError::Problem(format!(
            "a repair input has {} values, the network takes {}",
            x.len(),
            net.input_len()
        )));
    }
    let names: Vec<String> = affine
        .iter()
        .map(|&i| net.nodes()[i].name().to_string())
        .collect();
    let values = representation_values(net, &affine);
    let one_hot = |k: usize| {
        (0..affine.len())
            .map(|i| f64::from(u8::from(i == k)))
            .collect::<Vec<_>>()
    };
    let (scores, why): (Vec<f64>, String) = match heuristic {
        Heuristic::ActivationMagnitude => {
            let reps = representations(net, xs, &values)?;
            (
                reps.iter()
                    .map(|r| mean(r.iter().flat_map(|v| v.iter().map(|a| a.abs()))))
                    .collect(),
                "largest mean |activation| over the repair set".into(),
            )
        }
        Heuristic::ActivationVariance => {
            let reps = representations(net, xs, &values)?;
            (
                reps.iter()
                    .map(|r| {
                        let units = r[0].len();
                        mean((0..units).map(|u| {
                            let m = mean(r.iter().map(|v| v[u]));
                            mean(r.iter().map(|v| (v[u] - m).powi(2)))
                        }))
                    })
                    .collect(),
                "largest activation variance across the repair set".into(),
            )
        }
        Heuristic::GradientNorm => {
            let y = Tensor::from_vec(
                input.labels.iter().map(|&c| c as u32).collect::<Vec<_>>(),
                xs.len(),
                &Device::Cpu,
            )
            .map_err(NnError::from)?;
            let x = batch(net, xs)?
                .to_dtype(DType::F64)
                .map_err(NnError::from)?;
            let n = xs.len();
            let g = net.gradients(&x, |out| mean_cross_entropy(out, &y, n))?;
            let scores = affine
                .iter()
                .map(|&node| -> Result<f64> {
                    let id = netrepair_nn::ParamId { node, slot: 0 };
                    Ok(match g.param(id) {
                        Some(t) => {
                            let v = t
                                .flatten_all()
                                .and_then(|t| t.to_vec1::<f64>())
                                .map_err(NnError::from)?;
                            norm(&v) / (v.len().max(1) as f64).sqrt()
                        }
                        None => 0.0,
                    })
                })
                .collect::<Result<_>>()?;
            (
                scores,
                "largest RMS weight gradient of the repair set's cross-entropy".into(),
            )
        }
        Heuristic::ActivationChange => {
            let owned;
            let perturbed = match input.perturbed {
                Some(p) => {
                    if p.len() != xs.len() {
                        return Err(RepairError::Problem(format!(
                            "{} perturbed inputs for {} repair inputs",
                            p.len(),
                            xs.len()
                        )));
                    }
                    p
                }
                None => {
                    owned = fgsm(net, xs, input.labels)?;
                    &owned
                }
            };
            let (a, b) = (
                representations(net, xs, &values)?,
                representations(net, perturbed, &values)?,
            );
            (
                a.iter()
                    .zip(&b)
                    .map(|(ra, rb)| {
                        mean(ra.iter().zip(rb).map(|(u, v)| {
                            let d: Vec<f64> = u.iter().zip(v).map(|(p, q)| p - q).collect();
                            norm(&d) / (norm(u) + 1e-12)
                        }))
                    })
                    .collect(),
                "largest relative activation change under perturbation".into(),
            )
        }
        Heuristic::Similarity => {
            let reps = representations(net, xs, &values)?;
            (
                reps.iter().map(|r| mean_cosine(r)).collect(),
                "most similar representations of the repair inputs (mean pairwise cosine)".into(),
            )
        }
        Heuristic::FirstDense => {
            let last_conv = net
                .nodes()
                .iter()
                .rposition(|n| matches!(n.layer(), Layer::Conv2d(_)));
            let k = affine
                .iter()
                .position(|&i| {
                    matches!(net.nodes()[i].layer(), Layer::Linear(_))
                        && last_conv.is_none_or(|c| i > c)
                })
                .unwrap_or(0);
            (
                one_hot(k),
                "the first fully connected layer after the convolutions".into(),
            )
        }
        Heuristic::Penultimate => (
            one_hot(affine.len().saturating_sub(2)),
            "the penultimate affine layer".into(),
        ),
        Heuristic::Random => {
            let mut rng = rand::rngs::StdRng::seed_from_u64(input.seed);
            (
                one_hot(rng.random_range(0..affine.len())),
                format!("random (seed {})", input.seed),
            )
        }
    };
    let chosen = scores
        .iter()
        .enumerate()
        .fold(0, |best, (i, &s)| if s > scores[best] { i } else { best });
    Ok(LayerScores {
        heuristic: heuristic.name().into(),
        reason: format!("{why}: '{}' ({:.4})", names[chosen], scores[chosen]),
        layers: names,
        scores,
        chosen,
        chosen_node: affine[chosen],
    })
}

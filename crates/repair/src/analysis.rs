//! Repair-set analysis (seed 000): how big, how diverse and how spread out a repair set is, how
//! much room each start layer gives it, and a predicted difficulty with the reasons.
//!
//! The prediction is a rule of thumb, stated so it can be checked against the experiments
//! (`docs/informed.md`): a repair set is at risk when it is large (seed 000: APRNN's success
//! falls from 100% at 10 points to 9% at 200), when it mixes classes (class-homogeneous sets
//! repair with far less drawdown), when its inputs span many directions (effective dimension),
//! and when a layer has fewer usable weights than the set has constraints.

use nalgebra::DMatrix;
use netrepair_nn::Network;
use serde::Serialize;

use crate::affine_layers;
use crate::error::{RepairError, Result};

/// How many samples of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassCount {
    /// The class.
    pub class: usize,
    /// How many.
    pub count: usize,
}

/// Room one start layer gives the repair set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerRoom {
    /// Node name.
    pub layer: String,
    /// Entries of its weight.
    pub weights: usize,
    /// Entries some repair input multiplies by a non-zero value (the LP's weight columns).
    pub usable_weights: usize,
    /// Output constraints the set imposes (`n (m - 1)` for labelled points).
    pub constraints: usize,
}

/// Predicted difficulty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    /// No risk factor.
    Easy,
    /// One risk factor.
    Moderate,
    /// Two or more.
    Hard,
}

/// The analysis of a repair set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepairSetAnalysis {
    /// Number of points.
    pub size: usize,
    /// Points per true class (only classes present).
    pub classes: Vec<ClassCount>,
    /// Shannon entropy of the class distribution, in bits.
    pub entropy_bits: f64,
    /// Entropy divided by its maximum `log2(outputs)`: 0 one class, 1 all classes evenly.
    pub normalized_entropy: f64,
    /// Share of the set in its most common class.
    pub top_class_share: f64,
    /// Participation ratio `(sum l)^2 / sum l^2` of the inputs' PCA spectrum: how many
    /// directions the set really spans.
    pub effective_dim: f64,
    /// Explained-variance ratios of the leading principal components (at most 10).
    pub pca_explained: Vec<f64>,
    /// Mean distance of the inputs to their centroid.
    pub spread: f64,
    /// Mean pairwise cosine similarity of the inputs.
    pub mean_cosine: f64,
    /// Per affine layer.
    pub layers: Vec<LayerRoom>,
    /// The prediction.
    pub difficulty: Difficulty,
    /// Why, one line per risk factor found (or why none was).
    pub reasons: Vec<String>,
}

/// Analyses labelled repair points (flattened inputs) for `net`.
pub fn analyse(net: &Network, inputs: &[Vec<f64>], labels: &[usize]) -> Result<RepairSetAnalysis> {
    let n = inputs.len();
    if n == 0 {
        return Err(RepairError::Problem("the repair set is empty".into()));
    }
    if labels.len() != n {
        return Err(RepairError::Problem(format!(
            "{n} repair inputs but {} labels",
            labels.len()
        )));
    }
    let m = net.output_len();
    if let Some(&c) = labels.iter().find(|&&c| c >= m) {
        return Err(RepairError::Problem(format!(
            "label {c} is out of range: the network has {m} outputs"
        )));
    }
    let d = net.input_len();
    if let Some(x) = inputs.iter().find(|x| x.len() != d) {
        return Err(RepairError::Problem(format!(
            "a repair input has {} values, the network takes {d}",
            x.len()
        )));
    }
    // Classes.
    let mut counts = vec![0usize; m];
    for &c in labels {
        counts[c] += 1;
    }
    let classes: Vec<ClassCount> = counts
        .iter()
        .enumerate()
        .filter(|(_, &k)| k > 0)
        .map(|(class, &count)| ClassCount { class, count })
        .collect();
    let entropy_bits = -counts
        .iter()
        .filter(|&&k| k > 0)
        .map(|&k| {
            let p = k as f64 / n as f64;
            p * p.log2()
        })
        .sum::<f64>();
    let normalized_entropy = if m > 1 {
        entropy_bits / (m as f64).log2()
    } else {
        0.0
    };
    let top_class_share = *counts.iter().max().unwrap_or(&0) as f64 / n as f64;
    // Geometry (at most 512 points).
    let pts = &inputs[..n.min(512)];
    let k = pts.len();
    let mut centroid = vec![0.0; d];
    for x in pts {
        for (c, v) in centroid.iter_mut().zip(x) {
            *c += v / k as f64;
        }
    }
    let centred: Vec<Vec<f64>> = pts
        .iter()
        .map(|x| x.iter().zip(&centroid).map(|(v, c)| v - c).collect())
        .collect();
    let spread = centred
        .iter()
        .map(|r| r.iter().map(|v| v * v).sum::<f64>().sqrt())
        .sum::<f64>()
        / k as f64;
    let gram = DMatrix::from_fn(k, k, |i, j| {
        centred[i]
            .iter()
            .zip(&centred[j])
            .map(|(a, b)| a * b)
            .sum::<f64>()
    });
    let mut eig: Vec<f64> = gram
        .symmetric_eigen()
        .eigenvalues
        .iter()
        .map(|&l| l.max(0.0))
        .collect();
    eig.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = eig.iter().sum();
    let (effective_dim, pca_explained) = if total > 0.0 {
        (
            total * total / eig.iter().map(|l| l * l).sum::<f64>(),
            eig.iter().take(10).map(|l| l / total).collect(),
        )
    } else {
        (0.0, Vec::new())
    };
    let norms: Vec<f64> = pts
        .iter()
        .map(|x| x.iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect();
    let (mut cos, mut pairs) = (0.0, 0usize);
    for i in 0..k {
        for j in i + 1..k {
            let den = norms[i] * norms[j];
            if den > 0.0 {
                cos += pts[i].iter().zip(&pts[j]).map(|(a, b)| a * b).sum::<f64>() / den;
            }
            pairs += 1;
        }
    }
    let mean_cosine = if pairs > 0 { cos / pairs as f64 } else { 1.0 };
    // Room per layer: weight entries some input multiplies by a non-zero value.
    let traces = crate::trace::traces(net, inputs)?;
    let constraints = n * (m.saturating_sub(1)).max(1);
    let mut layers = Vec::new();
    for node in affine_layers(net) {
        let taps = net
            .affine_taps(node)
            .ok_or_else(|| RepairError::Unsupported(format!("no weight map for node {node}")))?;
        let input = net.nodes()[node].inputs()[0];
        let mut used = std::collections::HashSet::new();
        for t in &traces {
            let v = &t[input];
            for row in &taps.rows {
                for &(i, w) in row {
                    if v[i as usize] != 0.0 {
                        used.insert(w);
                    }
                }
            }
        }
        let weights = net
            .param(netrepair_nn::ParamId { node, slot: 0 })?
            .to_vec()?
            .len();
        layers.push(LayerRoom {
            layer: net.nodes()[node].name().to_string(),
            weights,
            usable_weights: used.len(),
            constraints,
        });
    }
    // The prediction.
    let mut reasons = Vec::new();
    if n > 50 {
        reasons.push(format!(
            "large set: {n} points (seed 000: APRNN's success falls from 100% at 10 points to 9% at 200)"
        ));
    }
    if classes.len() > 1 && normalized_entropy > 0.5 {
        reasons.push(format!(
            "mixed classes: {} classes, normalised entropy {normalized_entropy:.2} (class-homogeneous sets repair with less drawdown)",
            classes.len()
        ));
    }
    let last = layers.last().expect("at least one affine layer");
    if last.usable_weights < constraints {
        reasons.push(format!(
            "the last layer has {} usable weights for {constraints} constraints: only earlier layers have room",
            last.usable_weights
        ));
    }
    if k >= 10 && effective_dim > 0.5 * k as f64 {
        reasons.push(format!(
            "spread out: effective dimension {effective_dim:.1} of {k} points (little shared structure for one edit)"
        ));
    }
    let difficulty = match reasons.len() {
        0 => Difficulty::Easy,
        1 => Difficulty::Moderate,
        _ => Difficulty::Hard,
    };
    if reasons.is_empty() {
        reasons.push(format!(
            "small ({n} points), {} class(es), effective dimension {effective_dim:.1}, and every layer has room",
            classes.len()
        ));
    }
    Ok(RepairSetAnalysis {
        size: n,
        classes,
        entropy_bits,
        normalized_entropy,
        top_class_share,
        effective_dim,
        pca_explained,
        spread,
        mean_cosine,
        layers,
        difficulty,
        reasons,
    })
}

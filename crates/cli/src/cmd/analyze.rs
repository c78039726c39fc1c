//! `netrepair analyze`: before repairing, score every layer as APRNN's start layer with each
//! heuristic, analyse the repair set, and recommend a layer.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use netrepair_repair::{
    analyse, score_layers, Heuristic, LayerScores, RepairSetAnalysis, SelectionInput,
    DEFAULT_HEURISTIC,
};
use serde_json::json;

use crate::util;
use netrepair_data::npy;
use netrepair_experiments::cli::points::{labelled_npy, misclassified, PointSource};

/// Score every affine layer as APRNN's start layer with each layer-selection heuristic,
/// analyse the repair set (size, classes, geometry, room per layer, predicted difficulty) and
/// recommend a layer.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The network (ONNX).
    #[arg(long)]
    net: PathBuf,
    #[command(flatten)]
    points: PointSource,
    /// Perturbed copies of the repair inputs (NPY, one per input) for the activation-change
    /// heuristic (default: an FGSM step of 5% of the inputs' range).
    #[arg(long)]
    perturbed: Option<PathBuf>,
    /// Heuristic behind the recommendation.
    #[arg(long, default_value = DEFAULT_HEURISTIC)]
    heuristic: String,
    /// Seed of the random heuristic.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Every heuristic's scores and the repair-set analysis for labelled points.
pub fn analysis(
    net: &netrepair_nn::Network,
    xs: &[Vec<f64>],
    labels: &[usize],
    perturbed: Option<&[Vec<f64>]>,
    seed: u64,
) -> Result<(Vec<LayerScores>, RepairSetAnalysis)> {
    let input = SelectionInput {
        inputs: xs,
        labels,
        perturbed,
        seed,
    };
    let scores = Heuristic::ALL
        .iter()
        .map(|&h| score_layers(net, input, h))
        .collect::<netrepair_repair::Result<Vec<_>>>()?;
    Ok((scores, analyse(net, xs, labels)?))
}

pub fn run(a: &AnalyzeArgs) -> Result<u8> {
    let net = util::load_net(&a.net)?;
    let heuristic: Heuristic = a.heuristic.parse()?;
    let (xs, labels) = if let (Some(xp), Some(lp)) = (&a.points.inputs, &a.points.labels) {
        let (flat, labels) = labelled_npy(&net, xp, lp)?;
        let xs: Vec<Vec<f64>> = flat.chunks(net.input_len()).map(<[f64]>::to_vec).collect();
        (xs, labels)
    } else if let Some(n) = a.points.misclassified {
        let (problem, _) = misclassified(&a.points, None, &net, n)?;
        problem
            .labelled_points(net.output_len())
            .expect("misclassified samples are labelled points")
    } else {
        bail!("nothing to analyse: give --inputs/--labels or --misclassified N --dataset D");
    };
    let perturbed = match &a.perturbed {
        Some(p) => {
            let x = npy::read_floats(p)?;
            let b = util::batch_for(&net, &x.shape, x.data)?;
            let flat: Vec<f64> = b.flatten_all()?.to_vec1()?;
            Some(
                flat.chunks(net.input_len())
                    .map(<[f64]>::to_vec)
                    .collect::<Vec<_>>(),
            )
        }
        None => None,
    };
    let (scores, set) = analysis(&net, &xs, &labels, perturbed.as_deref(), a.seed)?;
    let rec = scores
        .iter()
        .find(|s| s.heuristic == heuristic.name())
        .expect("every heuristic scored");
    let recommended = rec.layers[rec.chosen].clone();
    if a.json {
        println!(
            "{}",
            json!({
                "network": a.net,
                "layers": rec.layers,
                "heuristics": scores,
                "analysis": set,
                "recommended_layer": recommended,
                "recommended_index": rec.chosen,
                "recommended_by": heuristic.name(),
            })
        );
        return Ok(0);
    }
    println!(
        "{} repair points, {} class(es) (normalised entropy {:.2}), effective dimension {:.1}, spread {:.3}, mean cosine {:.3}",
        set.size,
        set.classes.len(),
        set.normalized_entropy,
        set.effective_dim,
        set.spread,
        set.mean_cosine
    );
    println!(
        "classes: {}",
        set.classes
            .iter()
            .map(|c| format!("{}x{}", c.class, c.count))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("\nper start layer (* marks each heuristic's choice):");
    print!("  {:<22}", "heuristic");
    for l in &rec.layers {
        print!(" {:>14}", l);
    }
    println!();
    for s in &scores {
        print!("  {:<22}", s.heuristic);
        for (i, v) in s.scores.iter().enumerate() {
            let mark = if i == s.chosen { "*" } else { " " };
            print!(" {:>13.4e}{mark}", v);
        }
        println!();
    }
    print!("  {:<22}", "usable weights");
    for l in &set.layers {
        print!(" {:>14}", l.usable_weights);
    }
    println!(
        "\n  {:<22} {:>14}",
        "constraints", set.layers[0].constraints
    );
    println!("\npredicted difficulty: {:?}", set.difficulty);
    for r in &set.reasons {
        println!("  - {r}");
    }
    println!(
        "\nrecommended start layer: '{recommended}' (affine layer {}, by {}: {})",
        rec.chosen,
        heuristic.name(),
        rec.reason
    );
    Ok(0)
}

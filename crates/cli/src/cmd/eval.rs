//! `netrepair eval`: accuracy and confusion matrix of a classifier on a data set split.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use netrepair_data::{load, resolve_data_dir, DatasetName};
use serde_json::json;

use crate::util;

/// Measure a classifier's accuracy (and confusion matrix) on a data set split.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The network (ONNX).
    #[arg(value_name = "NET")]
    net_pos: Option<PathBuf>,
    /// The network (ONNX), as a flag.
    #[arg(long)]
    net: Option<PathBuf>,
    /// Data set: mnist, cifar10, german, adult.
    #[arg(long)]
    dataset: String,
    /// Folder holding mnist/, cifar10/, german/, adult/ (default: ../shared/data when present).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Split: train, test, eran-test (MNIST/CIFAR), 001-train/001-val/001-pool/001-test (MNIST),
    /// all (German).
    #[arg(long, default_value = "test")]
    split: String,
    /// Per-channel mean subtracted before the network (e.g. 0.4914,0.4822,0.4465 for resnet_2b).
    #[arg(long)]
    mean: Option<String>,
    /// Per-channel standard deviation divided by (e.g. 0.2471,0.2435,0.2616).
    #[arg(long)]
    std: Option<String>,
    /// Evaluate only the first N samples.
    #[arg(long)]
    limit: Option<usize>,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &EvalArgs) -> Result<()> {
    let path = util::net_path(&a.net_pos, &a.net)?;
    let name: DatasetName = a.dataset.parse()?;
    let dir = resolve_data_dir(a.data_dir.as_deref())?;
    let net = util::load_net(&path)?;
    let mut data = load(name, &dir, &a.split)?;
    if let Some(limit) = a.limit {
        data = data.subset(&(0..limit.min(data.len())).collect::<Vec<_>>())?;
    }
    match (&a.mean, &a.std) {
        (Some(m), Some(s)) => data.normalize(&util::parse_list(m)?, &util::parse_list(s)?)?,
        (None, None) => {}
        _ => bail!("--mean and --std go together"),
    }
    if data.is_empty() {
        bail!("the {} split of {} is empty", a.split, a.dataset);
    }
    let classes = data.num_classes();
    if net.output_len() != classes {
        bail!(
            "the network has {} outputs but {} has {classes} classes",
            net.output_len(),
            a.dataset
        );
    }
    let x = util::dataset_batch(&net, &data)?;
    let pb = util::progress(data.len() as u64, "evaluating");
    let pred = util::predict_all(&net, &x, 500, |k| pb.inc(k as u64))?;
    pb.finish_and_clear();
    let mut confusion = vec![vec![0usize; classes]; classes];
    for (&p, &l) in pred.iter().zip(&data.labels) {
        confusion[l as usize][p as usize] += 1;
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let accuracy = correct as f64 / data.len() as f64;
    let per_class: Vec<f64> = (0..classes)
        .map(|c| confusion[c][c] as f64 / confusion[c].iter().sum::<usize>().max(1) as f64)
        .collect();
    if a.json {
        let v = json!({
            "network": path, "dataset": a.dataset, "split": a.split, "n": data.len(),
            "correct": correct, "accuracy": accuracy, "per_class_accuracy": per_class,
            "classes": data.class_names, "confusion": confusion,
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "{} on {} ({}, {} samples): accuracy {:.2}% ({correct} correct)\n",
        path.display(),
        a.dataset,
        a.split,
        data.len(),
        100.0 * accuracy
    );
    println!("confusion matrix (rows: true class, columns: predicted)");
    print!("{:>12}", "");
    for c in 0..classes {
        print!("{c:>6}");
    }
    println!("{:>9}", "acc");
    for (c, row) in confusion.iter().enumerate() {
        let label: String = format!("{c} {}", data.class_names[c])
            .chars()
            .take(11)
            .collect();
        print!("{label:>12}");
        for v in row {
            print!("{v:>6}");
        }
        println!("{:>8.1}%", 100.0 * per_class[c]);
    }
    Ok(())
}

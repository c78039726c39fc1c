//! `netrepair train`: seeded training of the model presets, saved as ONNX.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use netrepair_experiments::training::{train_preset, Preset, TrainRequest};
use netrepair_nn::OptimizerKind;
use serde_json::json;

use crate::util;

/// Train one of the model presets (seeded) and save it as ONNX.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// moons-mlp (2-16-16-2, under-trained on make_moons), mnist-mlp (784-256-256-10),
    /// german-mlp (20-200-200-2), adult-mlp (14-64-64-2), cifar-cnn (3 conv blocks, FC 128).
    #[arg(long)]
    model: String,
    /// Where to save the trained network (ONNX).
    #[arg(long)]
    out: PathBuf,
    /// Folder holding mnist/, cifar10/, german/, adult/ (default: ../shared/data when present).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Passes over the training data (preset default otherwise).
    #[arg(long)]
    epochs: Option<usize>,
    /// Learning rate (preset default otherwise).
    #[arg(long)]
    lr: Option<f64>,
    /// sgd (momentum 0.9), adam, rmsprop.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Mini-batch size (preset default otherwise).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Hidden layer sizes, e.g. 128,128 (MLPs) or 256 (CNN's fully connected part).
    #[arg(long)]
    hidden: Option<String>,
    /// Train on the first N training samples only.
    #[arg(long)]
    limit: Option<usize>,
    /// Seed of initialisation, shuffling and generated data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// make_moons: number of points (2/3 train, 1/3 test).
    #[arg(long)]
    samples: Option<usize>,
    /// make_moons: Gaussian noise.
    #[arg(long)]
    noise: Option<f64>,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn parse_optimizer(s: &str) -> Result<OptimizerKind> {
    Ok(match s {
        "sgd" => OptimizerKind::sgd(),
        "adam" => OptimizerKind::adam(),
        "rmsprop" => OptimizerKind::rmsprop(),
        other => bail!("unknown optimizer '{other}' (sgd, adam, rmsprop)"),
    })
}

pub fn run(a: &TrainArgs) -> Result<()> {
    let preset: Preset = a.model.parse()?;
    let req = TrainRequest {
        epochs: a.epochs,
        lr: a.lr,
        optimizer: Some(parse_optimizer(&a.optimizer)?),
        batch_size: a.batch_size,
        hidden: a.hidden.as_deref().map(util::parse_list).transpose()?,
        limit: a.limit,
        seed: a.seed,
        moons_samples: a.samples,
        moons_noise: a.noise,
    };
    preset.config(&req).check()?;
    let data = preset.data(a.data_dir.as_deref(), &req)?;
    let pb = util::progress(0, "training");
    let trained = train_preset(
        preset,
        &data,
        &req,
        |done, total| {
            pb.set_length(total as u64);
            pb.set_position(done as u64);
        },
        |e| {
            pb.suspend(|| {
                eprintln!(
                    "epoch {:>3}: loss {:.4}, train accuracy {:.2}% ({:.1} s)",
                    e.epoch,
                    e.loss,
                    100.0 * e.accuracy,
                    e.seconds
                )
            })
        },
    )?;
    pb.finish_and_clear();
    netrepair_nn::save_onnx(&trained.net, &a.out)?;
    if a.json {
        let v = json!({
            "model": a.model, "out": a.out, "seed": a.seed, "seconds": trained.seconds,
            "train_samples": data.train.len(), "test_samples": data.test.len(),
            "train_accuracy": trained.train_accuracy, "test_accuracy": trained.test_accuracy,
            "epochs": trained.history.iter().map(|e| json!({"epoch": e.epoch, "loss": e.loss, "accuracy": e.accuracy, "seconds": e.seconds})).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        println!(
            "trained {} in {:.1} s: train accuracy {:.2}% ({} samples), test accuracy {:.2}% ({} samples); saved {}",
            a.model,
            trained.seconds,
            100.0 * trained.train_accuracy,
            data.train.len(),
            100.0 * trained.test_accuracy,
            data.test.len(),
            a.out.display()
        );
    }
    Ok(())
}

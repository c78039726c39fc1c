//! `netrepair demo`: the end-to-end showcase on an embedded default (no data files needed).
//!
//! Today: generate make_moons, train a deliberately under-trained MLP, save it as ONNX, reload
//! it and check the round trip, list its misclassified points and save them as a repair set.
//! Repair, verification and the report join as those capabilities land.

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use clap::Args;
use netrepair_experiments::training::{accuracy, tensors, train_preset, Preset, TrainRequest};
use serde_json::json;

use crate::{npy, util};

/// End-to-end showcase on generated data: train, find errors, prepare the repair.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's files (network, repair set).
    #[arg(long, default_value = "netrepair-demo")]
    out_dir: PathBuf,
    /// Seed of the data, the initialisation and the training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of make_moons points (2/3 train, 1/3 test).
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// make_moons noise.
    #[arg(long, default_value_t = 0.25)]
    noise: f64,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &DemoArgs) -> Result<()> {
    let say = |s: String| {
        if !a.json {
            println!("{s}");
        }
    };
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("cannot create {}", a.out_dir.display()))?;
    let preset = Preset::MoonsMlp;
    let req = TrainRequest {
        seed: a.seed,
        moons_samples: Some(a.samples),
        moons_noise: Some(a.noise),
        ..Default::default()
    };
    let data = preset.data(None, &req)?;
    say(format!(
        "1. data: make_moons, {} points with noise {} (seed {}): {} train, {} test",
        a.samples,
        a.noise,
        a.seed,
        data.train.len(),
        data.test.len()
    ));
    let cfg = preset.config(&req);
    let trained = train_preset(preset, &data, &req, |_, _| {}, |_| {})?;
    say(format!(
        "2. trained a 2-16-16-2 ReLU MLP for only {} epochs (under-trained on purpose) in {:.2} s: train accuracy {:.1}%, test accuracy {:.1}%",
        cfg.epochs,
        trained.seconds,
        100.0 * trained.train_accuracy,
        100.0 * trained.test_accuracy
    ));

    let net_path = a.out_dir.join("moons_mlp.onnx");
    netrepair_nn::save_onnx(&trained.net, &net_path)?;
    let reloaded = util::load_net(&net_path)?;
    let (x, _) = tensors(&trained.net, &data.test)?;
    let gap = (trained.net.forward_f64(&x)? - reloaded.forward_f64(&x)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f64>()?;
    let reloaded_acc = accuracy(&reloaded, &data.test)?;
    ensure!(gap < 1e-4, "ONNX round trip changed the outputs by {gap}");
    say(format!(
        "3. saved {} and reloaded it: outputs agree within {gap:.1e} (float32 storage), test accuracy {:.1}%",
        net_path.display(),
        100.0 * reloaded_acc
    ));

    let (xt, yt) = tensors(&reloaded, &data.train)?;
    let pred = reloaded.predict(&xt)?;
    let wrong: Vec<usize> = (0..yt.len()).filter(|&i| pred[i] != yt[i]).collect();
    say(format!(
        "4. the network misclassifies {} of {} training points:",
        wrong.len(),
        yt.len()
    ));
    if !a.json {
        println!(
            "   {:>5} {:>9} {:>9} {:>6} {:>10}",
            "index", "x", "y", "label", "predicted"
        );
        for &i in wrong.iter().take(15) {
            let p = data.train.sample(i);
            println!(
                "   {:>5} {:>9.4} {:>9.4} {:>6} {:>10}",
                i, p[0], p[1], yt[i], pred[i]
            );
        }
        if wrong.len() > 15 {
            println!("   ... and {} more", wrong.len() - 15);
        }
    }
    let xs: Vec<f32> = wrong
        .iter()
        .flat_map(|&i| data.train.sample(i).to_vec())
        .collect();
    let ls: Vec<i64> = wrong.iter().map(|&i| i64::from(yt[i])).collect();
    let (xp, lp) = (
        a.out_dir.join("repair_inputs.npy"),
        a.out_dir.join("repair_labels.npy"),
    );
    npy::write_f32(&xp, &[wrong.len(), 2], &xs)?;
    npy::write_i64(&lp, &[wrong.len()], &ls)?;
    say(format!(
        "5. saved the repair set: {} and {}",
        xp.display(),
        lp.display()
    ));
    say(format!(
        "\nnext (as those capabilities land): netrepair repair --net {} --method aprnn --layer auto --inputs {} --labels {} --out repaired.onnx --report report.json",
        net_path.display(),
        xp.display(),
        lp.display()
    ));
    if a.json {
        let v = json!({
            "network": net_path, "train_accuracy": trained.train_accuracy, "test_accuracy": trained.test_accuracy,
            "round_trip_max_abs_diff": gap, "misclassified": wrong.len(), "train_samples": yt.len(),
            "repair_inputs": xp, "repair_labels": lp,
        });
        println!("{v}");
    }
    Ok(())
}

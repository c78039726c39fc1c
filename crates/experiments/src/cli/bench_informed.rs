//! `netrepair bench informed`: seed 000's experiments. Heuristics against the brute-force
//! oracle (make_moons MLPs, MNIST), success and drawdown against repair-set size for
//! homogeneous and mixed sets (CIFAR-10), and incremental repair curves.

use std::path::PathBuf;
use std::time::Duration;

use crate::informed_bench::{
    early_stop, errors, heuristics_markdown, heuristics_vs_oracle, incremental_curve, labelled,
    size_sweep, HeuristicRow, Scenario, SizeRow,
};
use crate::plot::{line_chart, Series};
use crate::training::{train_preset, Preset, TrainRequest};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use netrepair_data::{load, resolve_data_dir, split_indices, DatasetName};
use netrepair_repair::{resolve_layer, Aprnn, LpRepairOptions};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::json;

use super::args as util;

/// Which experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// Every heuristic against the brute-force oracle (moons MLPs, MNIST 256x2).
    Heuristics,
    /// Success and drawdown against repair-set size, homogeneous vs mixed (CIFAR-10 resnet_2b).
    Sizes,
    /// Incremental repair with batches of 5 and 10 (MNIST 256x2, CIFAR-10 resnet_2b).
    Incremental,
}

/// Settings of `bench informed`.
#[derive(Debug, Args)]
pub struct InformedBenchArgs {
    /// Experiments to run (default: all).
    #[arg(long, value_enum)]
    part: Vec<Part>,
    /// Folder holding the VNN-COMP networks (default: ../shared/benchmarks).
    #[arg(long)]
    benchmarks: Option<PathBuf>,
    /// Folder holding the data sets (default: ../shared/data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Time limit of each LP, seconds.
    #[arg(long, default_value_t = 120.0)]
    lp_timeout: f64,
    /// MNIST repair-set sizes for the heuristics experiment.
    #[arg(long, default_value = "10,25")]
    mnist_sizes: String,
    /// CIFAR-10 repair-set sizes.
    #[arg(long, default_value = "10,25,50,100,200")]
    sizes: String,
    /// Validation images (drawdown).
    #[arg(long, default_value_t = 1000)]
    validation: usize,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder for the tables (Markdown, JSON) and plots (PNG).
    #[arg(long, default_value = "docs")]
    out_dir: PathBuf,
}

fn aprnn(timeout: f64, layer: Option<usize>) -> Aprnn {
    Aprnn {
        lp: LpRepairOptions {
            layer,
            time_limit: Some(Duration::from_secs_f64(timeout)),
            ..LpRepairOptions::default()
        },
        ..Aprnn::default()
    }
}

fn write(path: PathBuf, text: &str) -> Result<()> {
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn heuristics(a: &InformedBenchArgs, bench: &std::path::Path) -> Result<Vec<HeuristicRow>> {
    let mut scenarios = Vec::new();
    // make_moons MLPs, under-trained, with more or less noise and data.
    for (samples, noise) in [(300, 0.1), (300, 0.25), (300, 0.4), (1000, 0.25)] {
        let req = TrainRequest {
            seed: a.seed,
            moons_samples: Some(samples),
            moons_noise: Some(noise),
            ..TrainRequest::default()
        };
        let data = Preset::MoonsMlp.data(None, &req)?;
        let trained = train_preset(Preset::MoonsMlp, &data, &req, |_, _| {}, |_| {})?;
        let (wrong, _) = errors(&trained.net, &data.train)?;
        let set = labelled(&data.train, &wrong[..wrong.len().min(30)]);
        let val: Vec<usize> = (0..data.test.len()).collect();
        scenarios.push(Scenario {
            name: format!("moons n={samples} noise={noise} ({} errors)", set.len()),
            net: trained.net,
            inputs: set.inputs,
            labels: set.labels,
            validation: labelled(&data.test, &val),
        });
    }
    // MNIST 256x2: test errors from one half of the test set, drawdown on the other.
    let dir = resolve_data_dir(a.data_dir.as_deref())?;
    let test = load(DatasetName::Mnist, &dir, "test")?;
    let parts = split_indices(test.len(), &[5000, a.validation.min(5000)], a.seed)?;
    let (pool, val) = (test.subset(&parts[0])?, test.subset(&parts[1])?);
    let path = bench.join("mnistfc/mnist-net_256x2.onnx");
    let net = util::load_net(&path)?;
    let (mut wrong, _) = errors(&net, &pool)?;
    wrong.shuffle(&mut rand::rngs::StdRng::seed_from_u64(a.seed));
    let all: Vec<usize> = (0..val.len()).collect();
    for n in util::parse_list::<usize>(&a.mnist_sizes)? {
        let set = labelled(&pool, &wrong[..n.min(wrong.len())]);
        scenarios.push(Scenario {
            name: format!("mnist-net_256x2, {n} errors"),
            net: net.clone(),
            inputs: set.inputs,
            labels: set.labels,
            validation: labelled(&val, &all),
        });
    }
    let mut rows = Vec::new();
    println!("{}", heuristics_markdown(&[]).trim_end());
    for sc in &scenarios {
        let (_, r) = heuristics_vs_oracle(sc, &aprnn(a.lp_timeout, None))?;
        for row in &r {
            println!(
                "{}",
                heuristics_markdown(std::slice::from_ref(row))
                    .lines()
                    .last()
                    .unwrap_or_default()
            );
        }
        rows.extend(r);
    }
    Ok(rows)
}

pub fn run(a: &InformedBenchArgs) -> Result<()> {
    let bench = a
        .benchmarks
        .clone()
        .unwrap_or_else(|| PathBuf::from("../shared/benchmarks"));
    let parts = if a.part.is_empty() {
        vec![Part::Heuristics, Part::Sizes, Part::Incremental]
    } else {
        a.part.clone()
    };
    std::fs::create_dir_all(&a.out_dir)?;
    let dir = resolve_data_dir(a.data_dir.as_deref())?;
    if parts.contains(&Part::Heuristics) {
        let rows = heuristics(a, &bench)?;
        write(
            a.out_dir.join("informed_heuristics.md"),
            &heuristics_markdown(&rows),
        )?;
        write(
            a.out_dir.join("informed_heuristics.json"),
            &serde_json::to_string_pretty(&rows)?,
        )?;
        // Regret per heuristic, one line per heuristic across the scenarios.
        let scenarios: Vec<String> = rows.iter().fold(Vec::new(), |mut v, r| {
            if !v.contains(&r.scenario) {
                v.push(r.scenario.clone());
            }
            v
        });
        let names: Vec<String> = rows.iter().fold(Vec::new(), |mut v, r| {
            if !v.contains(&r.heuristic) && !r.heuristic.starts_with("oracle") {
                v.push(r.heuristic.clone());
            }
            v
        });
        let series: Vec<Series> = names
            .iter()
            .map(|h| Series {
                name: h.clone(),
                points: scenarios
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| {
                        rows.iter()
                            .find(|r| &r.heuristic == h && &r.scenario == s)
                            .and_then(|r| r.regret_pp)
                            .map(|g| (i as f64, g, 0.0))
                    })
                    .collect(),
            })
            .collect();
        let p = a.out_dir.join("informed_heuristics.png");
        line_chart(
            &p,
            "Drawdown regret against the brute-force oracle (missing: not proved)",
            &format!("scenario (0..{}: see the table)", scenarios.len() - 1),
            "regret (pp)",
            &series,
        )?;
        println!("wrote {}", p.display());
    }
    let cifar = || -> Result<_> {
        let mut test = load(DatasetName::Cifar10, &dir, "test")?;
        test.normalize(&[0.4914, 0.4822, 0.4465], &[0.2471, 0.2435, 0.2616])?;
        let n = test.len();
        let parts = split_indices(n, &[n - a.validation, a.validation], a.seed)?;
        let net = util::load_net(&bench.join("cifar10_resnet/resnet_2b.onnx"))?;
        let val = test.subset(&parts[1])?;
        let all: Vec<usize> = (0..val.len()).collect();
        Ok((net, test.subset(&parts[0])?, labelled(&val, &all)))
    };
    if parts.contains(&Part::Sizes) {
        let (net, pool, val) = cifar()?;
        let sizes = util::parse_list::<usize>(&a.sizes)?;
        let last = resolve_layer(&net, "-1")?;
        println!("| kind | size | status | efficacy | accuracy before | after | time (s) |\n|---|---|---|---|---|---|---|");
        let rows = size_sweep(
            &net,
            &pool,
            &val,
            &sizes,
            &aprnn(a.lp_timeout, Some(last)),
            a.seed,
            |r| {
                println!(
                    "| {} | {} | {:?} | {:.0}% | {:.1}% | {:.1}% | {:.1} |",
                    r.kind,
                    r.size,
                    r.status,
                    100.0 * r.efficacy,
                    r.accuracy_before,
                    r.accuracy_after,
                    r.time_s
                )
            },
        )?;
        println!("seed 000 (AlexNet-like CNN, its Figures 1-4): success 100% at 10 points falling to about 9% at 200; accuracy change -2.7% at 10, -50.8% at 200");
        write(
            a.out_dir.join("informed_sizes.json"),
            &serde_json::to_string_pretty(&rows)?,
        )?;
        let series = |kind: &str, f: &dyn Fn(&SizeRow) -> f64| Series {
            name: kind.to_string(),
            points: rows
                .iter()
                .filter(|r| r.kind.starts_with(kind))
                .map(|r| (r.size as f64, f(r), 0.0))
                .collect(),
        };
        let p = a.out_dir.join("informed_sizes.png");
        line_chart(
            &p,
            "resnet_2b, APRNN at the last layer: success and accuracy change vs repair-set size",
            "repair-set size",
            "% (efficacy; accuracy change)",
            &[
                Series {
                    name: "efficacy, homogeneous".into(),
                    ..series("homogeneous", &|r| 100.0 * r.efficacy)
                },
                Series {
                    name: "efficacy, mixed".into(),
                    ..series("mixed", &|r| 100.0 * r.efficacy)
                },
                Series {
                    name: "accuracy change, homogeneous".into(),
                    ..series("homogeneous", &|r| r.accuracy_after - r.accuracy_before)
                },
                Series {
                    name: "accuracy change, mixed".into(),
                    ..series("mixed", &|r| r.accuracy_after - r.accuracy_before)
                },
            ],
        )?;
        println!("wrote {}", p.display());
    }
    if parts.contains(&Part::Incremental) {
        // MNIST 256x2 at its penultimate layer (mixed errors: a 5k pool has too few of one
        // class), resnet_2b at its last layer (one class, seed 000's setting); plain and
        // cumulative batches of 5 and 10.
        let mnist_net = util::load_net(&bench.join("mnistfc/mnist-net_256x2.onnx"))?;
        let test = load(DatasetName::Mnist, &dir, "test")?;
        let split = split_indices(test.len(), &[5000, a.validation.min(5000)], a.seed)?;
        let (pool, val) = (test.subset(&split[0])?, test.subset(&split[1])?);
        let all: Vec<usize> = (0..val.len()).collect();
        let mval = labelled(&val, &all);
        let (cnet, cpool, cval) = cifar()?;
        let timeout = Duration::from_secs_f64(a.lp_timeout);
        let mut table = String::from(
            "| run | iterations | repair-set accuracy at the end | validation at the end | early stop (2 pp) at | repair-set accuracy there | validation there | time (s) |\n|---|---|---|---|---|---|---|---|\n",
        );
        let mut all_curves = Vec::new();
        for (tag, net, pool, val, layer, homogeneous) in [
            (
                "mnist-net_256x2, mixed",
                &mnist_net,
                &pool,
                &mval,
                "-2",
                false,
            ),
            ("resnet_2b, one class", &cnet, &cpool, &cval, "-1", true),
        ] {
            let before = netrepair_repair::accuracy(net, val)?;
            let mut series = Vec::new();
            for cumulative in [false, true] {
                for batch in [5, 10] {
                    let name = format!(
                        "{tag}, b={batch}{}",
                        if cumulative { ", cumulative" } else { "" }
                    );
                    let t = std::time::Instant::now();
                    let steps = incremental_curve(
                        net,
                        pool,
                        val,
                        50,
                        batch,
                        resolve_layer(net, layer)?,
                        timeout,
                        a.seed,
                        homogeneous,
                        cumulative,
                    )?;
                    let secs = t.elapsed().as_secs_f64();
                    let stop = early_stop(&steps, before, 0.02);
                    let at = |i: usize| steps.iter().find(|s| s.iter == i);
                    let last = steps.last();
                    let pct =
                        |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v));
                    table.push_str(&format!(
                        "| {name} | {} | {} | {} | {stop} | {} | {} | {secs:.1} |\n",
                        steps.len(),
                        pct(last.map(|s| s.repair_accuracy)),
                        pct(last.map(|s| s.validation_accuracy)),
                        pct(at(stop).map(|s| s.repair_accuracy).or(Some(0.0))),
                        pct(at(stop).map(|s| s.validation_accuracy).or(Some(before))),
                    ));
                    println!("{}", table.lines().last().unwrap_or_default());
                    series.push(Series {
                        name: format!(
                            "b={batch}{}: repair set",
                            if cumulative { " cum." } else { "" }
                        ),
                        points: steps
                            .iter()
                            .map(|s| (s.iter as f64, 100.0 * s.repair_accuracy, 0.0))
                            .collect(),
                    });
                    series.push(Series {
                        name: format!(
                            "b={batch}{}: validation",
                            if cumulative { " cum." } else { "" }
                        ),
                        points: steps
                            .iter()
                            .map(|s| (s.iter as f64, 100.0 * s.validation_accuracy, 0.0))
                            .collect(),
                    });
                    all_curves.push(json!({"run": name, "validation_before": before, "early_stop_2pp": stop, "seconds": secs, "steps": steps}));
                }
            }
            let file = if homogeneous {
                "informed_incremental_cifar.png"
            } else {
                "informed_incremental_mnist.png"
            };
            let p = a.out_dir.join(file);
            line_chart(
                &p,
                &format!("Incremental APRNN repair of 50 errors: {tag}"),
                "iteration",
                "accuracy (%)",
                &series,
            )?;
            println!("wrote {}", p.display());
        }
        println!("seed 000 (its Figures 5-8, class-homogeneous CIFAR-10 sets): near-perfect repair-set accuracy within 5 iterations; stopping at iteration 5 keeps 60-65% test accuracy against 45-29% when run to completion");
        write(a.out_dir.join("informed_incremental.md"), &table)?;
        write(
            a.out_dir.join("informed_incremental.json"),
            &serde_json::to_string_pretty(&all_curves)?,
        )?;
    }
    Ok(())
}

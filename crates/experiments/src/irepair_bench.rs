//! I-REPAIR against its baselines in seed 001's setting: a network, a pool split the repair
//! and correct sets are drawn from, and an evaluation split for the accuracy drop.
//!
//! For every seed, class and repair-set size, the repair set is that many of the pool's
//! misclassified samples of the class (all of them when the class has fewer; the row records
//! the size used), and the correct set is `correct_size` correctly classified pool samples
//! spread evenly over the classes. Each method repairs the same sets; the accuracy drop is
//! measured on the evaluation split, which no repair sees.

use std::time::Instant;

use anyhow::{bail, Result};
use netrepair_data::Dataset;
use netrepair_nn::Network;
use netrepair_repair::{
    GradientOptions, GradientRepair, ItemStatus, KeepSet, LabelledSet, Mm, Repair, RepairContext,
    RepairProblem,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::training::{accuracy, tensors};

/// One method of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BenchMethod {
    /// Fine-tuning on the correct set plus the unfixed repair points ("retrain").
    Retrain,
    /// I-REPAIR with this gamma.
    IRepair {
        /// Weight of the correct set's influence.
        gamma: f64,
    },
    /// Random locking with this probability.
    RandomLock {
        /// Locking probability.
        p: f64,
    },
    /// MM repair (the minimal last-layer change, binary search on the bound up to `bound`);
    /// data-free as published: it never sees the correct set.
    Mm {
        /// The largest bound searched (the paper's epsilon).
        bound: f64,
    },
}

impl BenchMethod {
    /// A label for tables and plots ("Retrain", "I-repair, gamma = 1", "Random lock, p = 0.5").
    pub fn label(&self) -> String {
        match self {
            BenchMethod::Retrain => "Retrain".into(),
            BenchMethod::IRepair { gamma } => format!("I-repair, gamma = {gamma}"),
            BenchMethod::RandomLock { p } => format!("Random lock, p = {p}"),
            BenchMethod::Mm { bound } => format!("MM repair, eps = {bound}"),
        }
    }

    fn build(&self, options: GradientOptions) -> Box<dyn Repair> {
        let mut m = match *self {
            BenchMethod::Retrain => GradientRepair::finetune(),
            BenchMethod::IRepair { gamma } => GradientRepair::irepair(gamma),
            BenchMethod::RandomLock { p } => GradientRepair::random_lock(p),
            BenchMethod::Mm { bound } => {
                return Box::new(Mm {
                    max_bound: bound,
                    ..Mm::default()
                })
            }
        };
        m.options = options;
        Box::new(m)
    }
}

/// Settings of [`single_class_runs`].
#[derive(Debug, Clone)]
pub struct IRepairSetup {
    /// Repair-set sizes per class.
    pub sizes: Vec<usize>,
    /// The methods compared.
    pub methods: Vec<BenchMethod>,
    /// Seeds 0..seeds.
    pub seeds: usize,
    /// Classes repaired (one single-class problem each).
    pub classes: Vec<usize>,
    /// Correct-set size (spread evenly over the classes).
    pub correct_size: usize,
    /// The optimisation loop's settings (the seed is replaced per run).
    pub options: GradientOptions,
}

/// One repair: a method, a class, a size, a seed.
#[derive(Debug, Clone, Serialize)]
pub struct IRepairRun {
    /// [`BenchMethod::label`].
    pub method: String,
    /// Requested repair-set size.
    pub size: usize,
    /// Size used (smaller when the class has fewer errors in the pool).
    pub used: usize,
    /// The class repaired.
    pub class: usize,
    /// The seed.
    pub seed: usize,
    /// Repair points confirmed by the f64 re-check.
    pub repaired: usize,
    /// Whether all were.
    pub success: bool,
    /// Optimiser steps taken.
    pub iterations: usize,
    /// Evaluation accuracy before (%).
    pub acc_before: f64,
    /// After (%).
    pub acc_after: f64,
    /// `acc_before - acc_after`, percentage points.
    pub drop_pp: f64,
    /// Mean share of parameters frozen per step.
    pub mean_frozen: f64,
    /// Wall time of the repair.
    pub time_s: f64,
}

/// Mean and standard deviation over the runs of one method and size.
#[derive(Debug, Clone, Serialize)]
pub struct IRepairSummary {
    /// The method.
    pub method: String,
    /// Repair-set size per class.
    pub size: usize,
    /// Runs (seeds x classes).
    pub runs: usize,
    /// Share of runs that repaired every point.
    pub success_rate: f64,
    /// Mean accuracy drop (percentage points).
    pub mean_drop: f64,
    /// Its (population) standard deviation.
    pub std_drop: f64,
    /// Mean optimiser steps.
    pub mean_iterations: f64,
    /// Mean wall time per repair.
    pub mean_time_s: f64,
    /// Total wall time of the runs summarised.
    pub total_time_s: f64,
    /// The paper's (d, s) for this row, when it publishes one.
    pub paper: Option<(f64, f64)>,
}

/// Seed 001, Table 1 (MNIST, mnist-net_256x2): (d, s) for |R| = 1, 2, 4.
pub fn paper_table1(method: &BenchMethod, size: usize) -> Option<(f64, f64)> {
    let col = match size {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => return None,
    };
    let row: [(f64, f64); 3] = match *method {
        BenchMethod::Retrain => [(1.51, 1.47), (1.42, 1.33), (1.40, 0.99)],
        BenchMethod::IRepair { gamma: 0.01 } => [(0.87, 1.47), (0.99, 1.63), (0.37, 0.40)],
        BenchMethod::IRepair { gamma: 0.05 } => [(0.62, 1.16), (0.88, 1.32), (0.34, 0.35)],
        BenchMethod::IRepair { gamma: 0.1 } => [(0.54, 0.94), (0.80, 1.17), (0.33, 0.34)],
        BenchMethod::IRepair { gamma: 0.5 } => [(0.41, 0.71), (0.18, 0.19), (0.21, 0.25)],
        BenchMethod::IRepair { gamma: 1.0 } => [(0.13, 0.24), (0.15, 0.17), (0.18, 0.21)],
        // The paper marks MM eps = 1 at |R| = 4: one class failed and is left out.
        BenchMethod::Mm { bound: 1.0 } => [(1.56, 3.01), (1.41, 2.60), (1.44, 2.06)],
        BenchMethod::Mm { bound: 5.0 } => [(1.56, 3.01), (1.41, 2.60), (1.30, 1.99)],
        _ => return None,
    };
    Some(row[col])
}

/// Indices of `pool` the network gets right and wrong, per class.
/// Sample indices per class.
type PerClass = Vec<Vec<usize>>;

fn by_class(net: &Network, pool: &Dataset) -> Result<(PerClass, PerClass)> {
    let (x, y) = tensors(net, pool)?;
    let k = net.output_len();
    let (mut right, mut wrong) = (vec![Vec::new(); k], vec![Vec::new(); k]);
    for start in (0..y.len()).step_by(2000) {
        let len = 2000.min(y.len() - start);
        let pred = net.predict(&x.narrow(0, start, len)?)?;
        for (i, p) in pred.iter().enumerate() {
            let c = y[start + i] as usize;
            if c >= k {
                bail!("label {c} out of range for {k} outputs");
            }
            if *p as usize == c {
                right[c].push(start + i);
            } else {
                wrong[c].push(start + i);
            }
        }
    }
    Ok((right, wrong))
}

fn samples(pool: &Dataset, idx: &[usize]) -> (Vec<Vec<f64>>, Vec<usize>) {
    (
        idx.iter()
            .map(|&i| pool.sample(i).iter().map(|&v| f64::from(v)).collect())
            .collect(),
        idx.iter().map(|&i| pool.labels[i] as usize).collect(),
    )
}

/// Runs every method on every (seed, class, size) single-class repair problem. `on_run` sees
/// each run as it finishes (for progress and incremental output).
pub fn single_class_runs(
    net: &Network,
    pool: &Dataset,
    eval: &Dataset,
    setup: &IRepairSetup,
    mut on_run: impl FnMut(&IRepairRun, usize, usize),
) -> Result<Vec<IRepairRun>> {
    if setup.correct_size == 0 || setup.seeds == 0 || setup.sizes.is_empty() {
        bail!("need a correct-set size, at least one seed and one repair-set size");
    }
    let (right, wrong) = by_class(net, pool)?;
    let k = net.output_len();
    let acc_before = 100.0 * accuracy(net, eval)?;
    let total = setup.seeds * setup.classes.len() * setup.sizes.len() * setup.methods.len();
    let mut rows = Vec::with_capacity(total);
    for seed in 0..setup.seeds {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed as u64);
        // The correct set: evenly over the classes.
        let mut correct_idx = Vec::new();
        for (c, of_class) in right.iter().enumerate() {
            let share = setup.correct_size / k + usize::from(c < setup.correct_size % k);
            let mut cands = of_class.clone();
            cands.shuffle(&mut rng);
            correct_idx.extend(cands.into_iter().take(share));
        }
        let (cx, cy) = samples(pool, &correct_idx);
        let correct = LabelledSet {
            inputs: cx,
            labels: cy,
        };
        for &class in &setup.classes {
            if class >= k || wrong[class].is_empty() {
                continue;
            }
            let mut errs = wrong[class].clone();
            errs.shuffle(&mut rng);
            for &size in &setup.sizes {
                let used = size.min(errs.len());
                let (rx, ry) = samples(pool, &errs[..used]);
                let flat: Vec<f64> = rx.into_iter().flatten().collect();
                let problem = RepairProblem::from_labels(&flat, &ry, net.input_len(), k)?
                    .with_keep(KeepSet::points(correct.clone()));
                for method in &setup.methods {
                    let options = GradientOptions {
                        seed: seed as u64,
                        ..setup.options.clone()
                    };
                    let m = method.build(options);
                    let t = Instant::now();
                    let out = match method {
                        // Data-free as published: no correct set.
                        BenchMethod::Mm { .. } => m.repair(
                            net,
                            &RepairProblem::new(problem.items.clone()),
                            &RepairContext::default(),
                        ),
                        _ => m.repair(net, &problem, &RepairContext::default()),
                    };
                    // MM finds no change within its bound: a failed run, network unchanged.
                    let out = match out {
                        Ok(o) => o,
                        Err(_) if matches!(method, BenchMethod::Mm { .. }) => {
                            let row = IRepairRun {
                                method: method.label(),
                                size,
                                used,
                                class,
                                seed,
                                repaired: 0,
                                success: false,
                                iterations: 0,
                                acc_before,
                                acc_after: acc_before,
                                drop_pp: 0.0,
                                mean_frozen: 0.0,
                                time_s: t.elapsed().as_secs_f64(),
                            };
                            rows.push(row);
                            on_run(rows.last().expect("just pushed"), rows.len(), total);
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let time_s = t.elapsed().as_secs_f64();
                    let acc_after = 100.0 * accuracy(&out.network, eval)?;
                    let training = out.training.as_ref();
                    let row = IRepairRun {
                        method: method.label(),
                        size,
                        used,
                        class,
                        seed,
                        repaired: out.count(ItemStatus::Repaired),
                        success: out.proved,
                        iterations: training.map_or(0, |t| t.iterations),
                        acc_before,
                        acc_after,
                        drop_pp: acc_before - acc_after,
                        mean_frozen: training.map_or(0.0, |t| t.mean_frozen),
                        time_s,
                    };
                    rows.push(row);
                    on_run(rows.last().expect("just pushed"), rows.len(), total);
                }
            }
        }
    }
    Ok(rows)
}

/// Mean and standard deviation per (method, size), in the order the methods and sizes come.
pub fn summarise(runs: &[IRepairRun], methods: &[BenchMethod]) -> Vec<IRepairSummary> {
    let mut sizes: Vec<usize> = runs.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut out = Vec::new();
    for m in methods {
        let label = m.label();
        for &size in &sizes {
            let rs: Vec<&IRepairRun> = runs
                .iter()
                .filter(|r| r.method == label && r.size == size)
                .collect();
            if rs.is_empty() {
                continue;
            }
            let n = rs.len() as f64;
            let mean = rs.iter().map(|r| r.drop_pp).sum::<f64>() / n;
            let var = rs.iter().map(|r| (r.drop_pp - mean).powi(2)).sum::<f64>() / n;
            let total_time_s: f64 = rs.iter().map(|r| r.time_s).sum();
            out.push(IRepairSummary {
                method: label.clone(),
                size,
                runs: rs.len(),
                success_rate: rs.iter().filter(|r| r.success).count() as f64 / n,
                mean_drop: mean,
                std_drop: var.sqrt(),
                mean_iterations: rs.iter().map(|r| r.iterations as f64).sum::<f64>() / n,
                mean_time_s: total_time_s / n,
                total_time_s,
                paper: paper_table1(m, size),
            });
        }
    }
    out
}

/// The summary as a Markdown table, with the paper's numbers beside ours.
pub fn markdown(summary: &[IRepairSummary]) -> String {
    let mut s = String::from(
        "| method | \\|R\\| | runs | success | drop d (pp) | s | paper d | paper s | mean steps | time/run (s) |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in summary {
        let (pd, ps) = r.paper.map_or(("-".into(), "-".into()), |(d, s)| {
            (format!("{d:.2}"), format!("{s:.2}"))
        });
        s.push_str(&format!(
            "| {} | {} | {} | {:.0}% | {:.2} | {:.2} | {pd} | {ps} | {:.0} | {:.2} |\n",
            r.method,
            r.size,
            r.runs,
            100.0 * r.success_rate,
            r.mean_drop,
            r.std_drop,
            r.mean_iterations,
            r.mean_time_s
        ));
    }
    s
}

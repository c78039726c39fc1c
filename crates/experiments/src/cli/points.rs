//! Where labelled points come from, for `repair`, `analyze` and the keep set: an NPY pair,
//! the errors of a data split, or polytopes from JSON.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use netrepair_data::{load, npy, resolve_data_dir, DatasetName};
use netrepair_nn::Network;
use netrepair_repair::{LabelledSet, RepairItem, RepairProblem};

use super::args as util;

/// Where labelled repair points come from: an NPY pair, or the errors of a data split.
#[derive(Debug, Args)]
pub struct PointSource {
    /// Repair inputs (NPY, float32/float64, [N, input shape...] or [N, input size]).
    #[arg(long, requires = "labels")]
    pub inputs: Option<PathBuf>,
    /// Their correct labels (NPY, integer, [N]).
    #[arg(long, requires = "inputs")]
    pub labels: Option<PathBuf>,
    /// Take the first N points of --dataset/--split that the network misclassifies (in file
    /// order, or shuffled with --shuffle).
    #[arg(long, requires = "dataset")]
    pub misclassified: Option<usize>,
    /// Data set for --misclassified: mnist, cifar10, german, adult.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Split for --misclassified.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Take --misclassified's samples in a random order with this seed instead of file order
    /// (image folders are sorted by class, so the first errors would all share one class).
    #[arg(long)]
    pub shuffle: Option<u64>,
    /// Folder holding the data sets (default: ../shared/data when present).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Per-channel mean subtracted from data set samples (with --std).
    #[arg(long)]
    pub mean: Option<String>,
    /// Per-channel standard deviation divided by (with --mean).
    #[arg(long)]
    pub std: Option<String>,
}

/// Polytopes from a JSON list: each with its vertices and a label or output bounds.
pub fn read_polytopes(path: &Path, outputs: usize) -> Result<Vec<RepairItem>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    netrepair_repair::parse_polytopes(&text, outputs).with_context(|| format!("{}", path.display()))
}

/// The first `n` misclassified samples of a data split, with their true labels, and (with
/// --correct-size) correctly classified samples of it, spread over the classes.
pub fn misclassified(
    a: &PointSource,
    correct_size: Option<usize>,
    net: &Network,
    n: usize,
) -> Result<(RepairProblem, LabelledSet)> {
    let name: DatasetName = a.dataset.as_deref().unwrap_or_default().parse()?;
    let dir = resolve_data_dir(a.data_dir.as_deref())?;
    let mut data = load(name, &dir, &a.split)?;
    match (&a.mean, &a.std) {
        (Some(m), Some(s)) => data.normalize(&util::parse_list(m)?, &util::parse_list(s)?)?,
        (None, None) => {}
        _ => bail!("--mean and --std go together"),
    }
    let x = util::dataset_batch(net, &data)?;
    let pred = util::predict_all(net, &x, 500, |_| {})?;
    // File order, or a seeded shuffle (image folders are sorted by class).
    let mut order: Vec<usize> = (0..data.len()).collect();
    if let Some(seed) = a.shuffle {
        use rand::{seq::SliceRandom, SeedableRng};
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    }
    let order_all = order.clone();
    let wrong: Vec<usize> = order
        .into_iter()
        .filter(|&i| pred[i] != data.labels[i])
        .take(n)
        .collect();
    if wrong.is_empty() {
        bail!(
            "the network misclassifies no sample of the {} split",
            a.split
        );
    }
    let xs: Vec<f64> = wrong
        .iter()
        .flat_map(|&i| data.sample(i).iter().map(|&v| f64::from(v)))
        .collect();
    let ys: Vec<usize> = wrong.iter().map(|&i| data.labels[i] as usize).collect();
    let problem = RepairProblem::from_labels(&xs, &ys, net.input_len(), net.output_len())?;
    let mut correct = LabelledSet::default();
    if let Some(k) = correct_size {
        let classes = net.output_len();
        let mut taken = vec![0usize; classes];
        for i in order_all
            .iter()
            .copied()
            .filter(|&i| pred[i] == data.labels[i])
        {
            let c = data.labels[i] as usize;
            if c < classes && taken[c] < k / classes + usize::from(c < k % classes) {
                taken[c] += 1;
                correct
                    .inputs
                    .push(data.sample(i).iter().map(|&v| f64::from(v)).collect());
                correct.labels.push(c);
            }
        }
    }
    Ok((problem, correct))
}

/// Labelled points from an NPY pair, flattened for `net`.
pub fn labelled_npy(net: &Network, xp: &Path, lp: &Path) -> Result<(Vec<f64>, Vec<usize>)> {
    let x = npy::read_floats(xp)?;
    let labels = npy::read_labels(lp)?;
    let batch = util::batch_for(net, &x.shape, x.data)?;
    if batch.dims()[0] != labels.len() {
        bail!(
            "{} holds {} inputs but {} holds {} labels",
            xp.display(),
            batch.dims()[0],
            lp.display(),
            labels.len()
        );
    }
    Ok((batch.flatten_all()?.to_vec1()?, labels))
}

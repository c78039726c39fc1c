//! The keep set of `netrepair repair`: what must stay as it is. Given by hand (`--keep`
//! inputs, with labels or the network's own predictions), or drawn by default from the
//! training split of the repair's data set: correctly classified samples, spread over the
//! classes, never from the evaluation split. The same draw gives the validation slice that
//! `--layer auto` ranks layers by.

use std::path::{Path, PathBuf};

use crate::keep::{draw_keep, nearest_correct};
use anyhow::{bail, Context, Result};
use clap::Args;
use netrepair_data::{load, resolve_data_dir, Dataset, DatasetName};
use netrepair_nn::Network;
use netrepair_repair::{KeepSet, LabelledSet, DEFAULT_KEEP_TAU};
use serde::Serialize;

use super::args as util;
use super::points::{labelled_npy, PointSource};
use netrepair_data::npy;

/// Options of the keep set.
#[derive(Debug, Args)]
pub struct KeepArgs {
    /// Inputs whose classification must not change (NPY, like --inputs): each keeps its
    /// class (--keep-labels, or the network's own prediction) by a margin, and its output
    /// moves as little as possible. APRNN/PREPARED hold them as LP constraints; the gradient
    /// methods train on them as the correct set.
    #[arg(long, visible_alias = "correct-inputs")]
    pub keep: Option<PathBuf>,
    /// Labels of --keep (NPY, integer); default: the original network's predictions.
    #[arg(long, requires = "keep", visible_alias = "correct-labels")]
    pub keep_labels: Option<PathBuf>,
    /// Data set to draw the default keep set from (mnist, cifar10, german, adult); default:
    /// --dataset. The draw takes correctly classified samples of --keep-split.
    #[arg(long)]
    pub keep_data: Option<String>,
    /// Split of the drawn keep set and validation slice (never the evaluation split).
    #[arg(long, default_value = "train")]
    pub keep_split: String,
    /// Size of the drawn keep set.
    #[arg(long, default_value_t = 100)]
    pub keep_size: usize,
    /// Also keep, for each repair point, this many of its nearest correctly classified
    /// samples of --keep-split (the inputs a repair is most likely to flip).
    #[arg(long, default_value_t = 0)]
    pub keep_near: usize,
    /// Seed of the draw.
    #[arg(long, default_value_t = 0)]
    pub keep_seed: u64,
    /// Largest margin (logits) a kept point must keep; smaller original margins keep half.
    #[arg(long, default_value_t = DEFAULT_KEEP_TAU)]
    pub keep_tau: f64,
    /// Draw no keep set (and no validation slice) from the data set.
    #[arg(long)]
    pub no_keep: bool,
    /// Samples of --keep-split (disjoint from the keep set, at most half of it) on which
    /// `--layer auto` measures each layer's drawdown and `--method irepair-plus` referees its
    /// candidates (10,000 pick better repairs than 1,000; docs/irepair.md).
    #[arg(long, default_value_t = 10_000)]
    pub validation_size: usize,
}

/// Where the keep set came from, for the report.
#[derive(Debug, Clone, Serialize, Default)]
pub struct KeepSource {
    /// "file", "data set", "repair split" or "none".
    pub source: String,
    /// Data set and split of a drawn set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Points kept.
    pub points: usize,
    /// Size of the validation slice drawn beside it.
    pub validation: usize,
}

/// The keep set, the validation slice (possibly empty) and where they came from.
pub struct Keep {
    /// What must stay as it is.
    pub set: KeepSet,
    /// Held-out samples beside it (empty when none was drawn).
    pub validation: LabelledSet,
    /// Where they came from.
    pub source: KeepSource,
}

/// REGLO's keep set: the decisions of data set samples its problem already holds
/// (`problem_keep`), or none with `--no-keep`; no validation slice.
pub fn reglo(a: &KeepArgs, points: &PointSource, problem_keep: &KeepSet) -> Keep {
    let set = if a.no_keep {
        KeepSet::default()
    } else {
        problem_keep.clone()
    };
    Keep {
        source: KeepSource {
            source: if set.is_empty() {
                "none"
            } else {
                "data set decisions"
            }
            .into(),
            dataset: points.dataset.clone().filter(|_| !set.is_empty()),
            points: set.points.inputs.len(),
            validation: 0,
        },
        set,
        validation: LabelledSet::default(),
    }
}

/// Builds the keep set: `--keep` from a file, plus (with a data set and without --no-keep) a
/// draw from the training split; `extra` (e.g. --correct-size points of the repair split)
/// joins it.
pub fn build(
    a: &KeepArgs,
    points: &PointSource,
    net: &Network,
    extra: LabelledSet,
    draw: bool,
    repair_points: &[Vec<f64>],
) -> Result<Keep> {
    if !(a.keep_tau >= 0.0 && a.keep_tau.is_finite()) {
        bail!(
            "--keep-tau must be a non-negative number, got {}",
            a.keep_tau
        );
    }
    let mut set = KeepSet {
        tau: a.keep_tau,
        ..KeepSet::points(extra)
    };
    let mut source = KeepSource {
        source: if set.points.is_empty() {
            "none".into()
        } else {
            "repair split".into()
        },
        ..KeepSource::default()
    };
    let mut validation = LabelledSet::default();
    if let Some(path) = &a.keep {
        let more = keep_file(net, path, a.keep_labels.as_deref())
            .with_context(|| format!("keep set {}", path.display()))?;
        set.points.inputs.extend(more.inputs);
        set.points.labels.extend(more.labels);
        source.source = "file".into();
    }
    let dataset = a.keep_data.as_ref().or(points.dataset.as_ref());
    if let (Some(name), true, false) = (dataset, draw, a.no_keep) {
        let (kept, val) = draw_from(a, points, net, name, repair_points)?;
        source = KeepSource {
            source: if a.keep.is_some() {
                "file and data set".into()
            } else {
                "data set".into()
            },
            dataset: Some(format!("{name} ({})", a.keep_split)),
            points: 0,
            validation: val.len(),
        };
        set.points.inputs.extend(kept.inputs);
        set.points.labels.extend(kept.labels);
        validation = val;
    }
    source.points = set.points.len();
    Ok(Keep {
        set,
        validation,
        source,
    })
}

/// Kept points from an NPY file, labelled by `labels` or by the network's predictions.
fn keep_file(net: &Network, path: &Path, labels: Option<&Path>) -> Result<LabelledSet> {
    Ok(match labels {
        Some(lp) => {
            let (flat, labels) = labelled_npy(net, path, lp)?;
            LabelledSet::from_flat(&flat, &labels, net.input_len())?
        }
        None => {
            let x = npy::read_floats(path)?;
            let batch = util::batch_for(net, &x.shape, x.data)?;
            let labels: Vec<usize> = net
                .predict(&batch)?
                .into_iter()
                .map(|c| c as usize)
                .collect();
            let flat: Vec<f64> = batch.flatten_all()?.to_vec1()?;
            LabelledSet::from_flat(&flat, &labels, net.input_len())?
        }
    })
}

/// Correctly classified samples of `--keep-split`, balanced over the classes, and a
/// validation slice of the samples after them (in a seeded order).
fn draw_from(
    a: &KeepArgs,
    points: &PointSource,
    net: &Network,
    name: &str,
    repair_points: &[Vec<f64>],
) -> Result<(LabelledSet, LabelledSet)> {
    let data = load_split(a, points, name, "the keep set")?;
    let drawn = draw_keep(net, &data, a.keep_size, a.validation_size, a.keep_seed)?;
    let (mut kept, val) = (drawn.keep, drawn.validation);
    if a.keep_near > 0 {
        let near = nearest_correct(net, &data, repair_points, a.keep_near)?;
        for (x, c) in near.inputs.into_iter().zip(near.labels) {
            if !kept.inputs.contains(&x) && !val.inputs.contains(&x) {
                kept.inputs.push(x);
                kept.labels.push(c);
            }
        }
    }
    if kept.is_empty() && a.keep_size > 0 {
        bail!(
            "the network classifies no sample of {name} ({}) correctly: no keep set to draw (use --no-keep)",
            a.keep_split
        );
    }
    Ok((kept, val))
}

/// `--keep-split` of data set `name`, normalised as the repair points are; `what` names the
/// draw in errors. The split the repair is evaluated on is refused.
fn load_split(a: &KeepArgs, points: &PointSource, name: &str, what: &str) -> Result<Dataset> {
    if a.keep_split == points.split && points.misclassified.is_some() && a.keep_split == "test" {
        bail!("--keep-split test is the split the repair is evaluated on: draw {what} from another split (e.g. train)");
    }
    let dsname: DatasetName = name.parse()?;
    let dir = resolve_data_dir(points.data_dir.as_deref())?;
    let mut data = load(dsname, &dir, &a.keep_split)
        .with_context(|| format!("drawing {what} from {name} ({})", a.keep_split))?;
    match (&points.mean, &points.std) {
        (Some(m), Some(s)) => data.normalize(&util::parse_list(m)?, &util::parse_list(s)?)?,
        (None, None) => {}
        _ => bail!("--mean and --std go together"),
    }
    Ok(data)
}

/// `n` correctly classified samples of `--keep-split`, balanced over the classes, drawn in the
/// keep set's seeded order (its first samples are the kept ones) and never from the back of
/// that order, where the validation slice lies: the warm start's training set.
pub fn draw_training(
    a: &KeepArgs,
    points: &PointSource,
    net: &Network,
    n: usize,
) -> Result<LabelledSet> {
    let Some(name) = a.keep_data.as_ref().or(points.dataset.as_ref()) else {
        bail!("--warm-start fine-tunes on samples of a data set: give --dataset or --keep-data");
    };
    let data = load_split(a, points, name, "the warm start's training samples")?;
    let drawn = draw_keep(net, &data, n, a.validation_size, a.keep_seed)?;
    if drawn.keep.is_empty() {
        bail!(
            "the network classifies no sample of {name} ({}) correctly: nothing to fine-tune on",
            a.keep_split
        );
    }
    Ok(drawn.keep)
}

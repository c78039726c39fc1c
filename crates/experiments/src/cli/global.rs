//! `netrepair repair --method reglo`: the global robustness / individual fairness property
//! and REGLO's settings from the command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use netrepair_data::{load, resolve_data_dir, Dataset, DatasetName};
use netrepair_nn::Network;
use netrepair_repair::{decision_keep_set, Reglo, RepairItem, RepairProblem, WeightNorm};
use netrepair_spec::{BoxRegion, GlobalProperty, Perturbation};
use netrepair_verify::{SplitOptions, VariationAttack};

use super::points::PointSource;
use netrepair_data::npy;

/// REGLO's weight-change norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NormName {
    /// Sum of absolute changes.
    L1,
    /// Largest absolute change (plus a small L1 term).
    Linf,
}

/// The property and the settings of `--method reglo`.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// REGLO: individual fairness: only the --sensitive features may change (within the
    /// region's range for them).
    #[arg(long, conflicts_with = "global_robustness")]
    pub fairness: bool,
    /// REGLO: a sensitive feature, by index or (with --dataset) by name, e.g. age (repeatable).
    #[arg(long)]
    pub sensitive: Vec<String>,
    /// REGLO: norm-bounded global robustness: every input may move by up to --delta (L-inf).
    #[arg(long)]
    pub global_robustness: bool,
    /// REGLO: what --eps bounds: `logits` (the paper's setting; met by shrinking the logits)
    /// or `probabilities` (the softmax outputs; a fixed scale, proved through the logit
    /// differences: |dp| <= |dz_a - dz_b| / 4).
    #[arg(long, default_value = "logits")]
    pub eps_on: String,
    /// REGLO: the L-inf radius of --global-robustness.
    #[arg(long, allow_hyphen_values = true)]
    pub delta: Option<f64>,
    /// REGLO: lower corner of the region X (NPY, one value per input feature).
    #[arg(long, requires = "input_upper")]
    pub input_lower: Option<PathBuf>,
    /// REGLO: upper corner of the region X (NPY).
    #[arg(long, requires = "input_lower")]
    pub input_upper: Option<PathBuf>,
    /// REGLO: what the LP optimises: `scale` (default: the new last layer is
    /// lambda x original + a change; maximise lambda minus kappa times the relative change,
    /// every kept decision held, then shrink to a proof over the whole region), `scale:KAPPA`,
    /// or `min-change` (the paper's LP: the smallest weight change, bias untouched).
    #[arg(long, default_value = "scale")]
    pub reglo_objective: String,
    /// REGLO scale-aware: a kept point must still win by this fraction of lambda times its
    /// original margin.
    #[arg(long, default_value_t = 0.5)]
    pub reglo_keep_tau: f64,
    /// REGLO scale-aware: do not shrink the answer to a proof over the whole region.
    #[arg(long)]
    pub no_global_proof: bool,
    /// REGLO: norm of the last-layer weight change (min-change objective).
    #[arg(long, value_enum, default_value = "l1")]
    pub norm: NormName,
    /// REGLO: search-and-repair rounds at most.
    #[arg(long, default_value_t = 3)]
    pub reglo_rounds: usize,
    /// REGLO: new repair areas per round at most.
    #[arg(long, default_value_t = 30)]
    pub areas: usize,
    /// REGLO: half-width of a repair area, as a fraction of the region's width.
    #[arg(long, default_value_t = 0.01)]
    pub area_radius: f64,
    /// REGLO: also cover the whole region with this many boxes (a global proof when the LP
    /// succeeds; 0: off).
    #[arg(long, default_value_t = 0)]
    pub cover: usize,
    /// REGLO: uniform samples of the region per search round.
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// REGLO: points for PGD-B / PGD-R (data points in the region first, then uniform).
    #[arg(long, default_value_t = 1000)]
    pub eval_points: usize,
    /// REGLO: keep the decisions of up to this many --dataset samples (scale-aware: as
    /// constraints; min-change: their L1 output change weighted by --keep-weight; 0: none).
    #[arg(long, default_value_t = 500)]
    pub keep_samples: usize,
    /// REGLO min-change: weight of the output-preservation term against the weight change.
    #[arg(long, default_value_t = 1.0)]
    pub keep_weight: f64,
    /// REGLO fairness: bound the perturbed copy separately on this many slices of each
    /// sensitive feature's range (tighter bounds, a larger LP).
    #[arg(long, default_value_t = 2)]
    pub pieces: usize,
    /// REGLO: leaf boxes of the VB computation at most.
    #[arg(long, default_value_t = 256)]
    pub vb_boxes: usize,
}

/// Resolves a feature given by index or by name.
fn feature(key: &str, data: Option<&Dataset>, n: usize) -> Result<usize> {
    if let Ok(i) = key.parse::<usize>() {
        if i >= n {
            bail!(
                "sensitive feature {i} is not an input: the network takes {n} features (0..{})",
                n - 1
            );
        }
        return Ok(i);
    }
    match data {
        Some(d) => d.feature_index(key).with_context(|| {
            format!(
                "the data set has no feature '{key}' (features: {})",
                d.feature_names.join(", ")
            )
        }),
        None => bail!("sensitive feature '{key}': give its index, or --dataset to use names"),
    }
}

/// The property, the repair problem and REGLO configured from the arguments.
pub fn reglo_problem(
    g: &GlobalArgs,
    eps: Option<f64>,
    points: &PointSource,
    seed: u64,
    verify_timeout: f64,
    net: &Network,
) -> Result<(RepairProblem, Reglo)> {
    let eps = eps.context("--method reglo needs --eps: the largest allowed output change")?;
    let n = net.input_len();
    let data = match &points.dataset {
        Some(name) => {
            let name: DatasetName = name.parse()?;
            let dir = resolve_data_dir(points.data_dir.as_deref())?;
            Some(load(name, &dir, &points.split)?)
        }
        None => None,
    };
    if let Some(d) = &data {
        if d.sample_len() != n {
            bail!(
                "the data set's samples have {} features, the network takes {n}",
                d.sample_len()
            );
        }
    }
    let region = match (&g.input_lower, &g.input_upper, &data) {
        (Some(l), Some(u), _) => {
            let (lo, hi) = (npy::read_floats(l)?, npy::read_floats(u)?);
            if lo.data.len() != n || hi.data.len() != n {
                bail!(
                    "--input-lower/--input-upper hold {} and {} values, the network takes {n}",
                    lo.data.len(),
                    hi.data.len()
                );
            }
            BoxRegion::new(lo.data, hi.data).context("the region X (--input-lower/--input-upper)")?
        }
        (None, None, Some(d)) => {
            let r = d.feature_ranges();
            BoxRegion::new(
                r.iter().map(|p| f64::from(p.0)).collect(),
                r.iter().map(|p| f64::from(p.1)).collect(),
            )?
        }
        _ => bail!("give the region X: --input-lower L.npy --input-upper U.npy, or --dataset to take its feature ranges"),
    };
    let perturbation = match (g.fairness, g.global_robustness) {
        (true, false) => {
            if g.sensitive.is_empty() {
                bail!("--fairness needs at least one --sensitive feature");
            }
            if g.delta.is_some() {
                bail!("--delta is for --global-robustness");
            }
            let features = g
                .sensitive
                .iter()
                .map(|k| feature(k, data.as_ref(), n))
                .collect::<Result<Vec<_>>>()?;
            Perturbation::Sensitive { features }
        }
        (false, true) => {
            if !g.sensitive.is_empty() {
                bail!("--sensitive is for --fairness");
            }
            Perturbation::Linf {
                delta: g.delta.context("--global-robustness needs --delta")?,
            }
        }
        _ => bail!("--method reglo needs --fairness (with --sensitive) or --global-robustness (with --delta)"),
    };
    let property = GlobalProperty::new(region, perturbation, eps)?.with_measure(g.eps_on.parse()?);
    let name = property.kind().to_string();
    let pts: Vec<Vec<f64>> = data
        .as_ref()
        .map(|d| {
            (0..d.len())
                .map(|i| d.sample(i).iter().map(|&v| f64::from(v)).collect())
                .collect()
        })
        .unwrap_or_default();
    let keep = decision_keep_set(net, pts.iter().take(g.keep_samples).cloned().collect())?;
    let reglo = Reglo {
        objective: g.reglo_objective.parse()?,
        keep_tau: g.reglo_keep_tau,
        prove_global: !g.no_global_proof,
        norm: match g.norm {
            NormName::L1 => WeightNorm::L1,
            NormName::Linf => WeightNorm::Linf,
        },
        max_iters: g.reglo_rounds,
        max_areas: g.areas,
        samples: g.samples,
        area_radius: g.area_radius,
        cover: g.cover,
        keep_weight: g.keep_weight,
        points: pts,
        eval_points: g.eval_points,
        attack: VariationAttack {
            seed,
            ..VariationAttack::default()
        },
        split: SplitOptions {
            max_boxes: g.vb_boxes,
            time_limit: Duration::from_secs_f64(verify_timeout.max(0.001)),
            pieces: g.pieces,
        },
        pieces: g.pieces,
        seed,
        ..Reglo::default()
    };
    Ok((
        RepairProblem::new(vec![RepairItem::Global { name, property }]).with_keep(keep),
        reglo,
    ))
}

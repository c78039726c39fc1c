//! REGLO's settings and the rules they must keep.

use std::time::Duration;

use netrepair_verify::{SplitOptions, VariationAttack};
use serde::Serialize;

use crate::error::{rule, RepairError, Result};

/// The norm of a last-layer weight change: what REGLO's min-change LP minimises, and what MM
/// repair bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightNorm {
    /// Sum of absolute changes (sparse changes).
    L1,
    /// Largest absolute change (REGLO adds 1e-3 times the L1 norm; MM applies the least-L1
    /// change within the bound).
    Linf,
}

impl std::str::FromStr for WeightNorm {
    type Err = RepairError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "l1" | "L1" => Ok(Self::L1),
            "linf" | "Linf" | "inf" => Ok(Self::Linf),
            other => Err(RepairError::Problem(format!(
                "unknown norm '{other}' (l1, linf)"
            ))),
        }
    }
}

/// What the repair LP optimises.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum RegloObjective {
    /// Scale-aware (the default): the new last layer is `W' = lambda W + dW`,
    /// `b' = lambda b + db` with `lambda` in `[0, 1]` a variable; maximise
    /// `lambda - kappa (||dW||_1 + ||db||_1) / (||W||_1 + ||b||_1)`, with every kept point's
    /// decision held (`margin' >= keep_tau * lambda * margin`). `dW = 0`,
    /// `lambda = eps (1 - margin) / VB` is always feasible, and keeps every decision of every
    /// input: a pure rescaling.
    Scale {
        /// Price of a weight change against the scale it buys (> 1: a change must be worth
        /// more than rescaling the original weight).
        kappa: f64,
    },
    /// The paper's LP: `lambda = 1`, minimise `||dW||` (the norm option) plus `keep_weight`
    /// times the kept points' mean L1 output change; the bias is not touched.
    MinChange,
}

impl Default for RegloObjective {
    fn default() -> Self {
        Self::Scale { kappa: 10.0 }
    }
}

impl std::str::FromStr for RegloObjective {
    type Err = RepairError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            RepairError::Problem(format!(
                "unknown REGLO objective '{s}' (scale, scale:KAPPA, min-change)"
            ))
        };
        match s {
            "min-change" | "minchange" | "paper" => Ok(Self::MinChange),
            "scale" => Ok(Self::default()),
            _ => {
                let k = s.strip_prefix("scale:").ok_or_else(bad)?;
                let kappa: f64 = k.parse().map_err(|_| bad())?;
                if !(kappa >= 0.0 && kappa.is_finite()) {
                    return Err(RepairError::Problem(format!(
                        "kappa must be non-negative and finite, got {kappa}"
                    )));
                }
                Ok(Self::Scale { kappa })
            }
        }
    }
}

/// REGLO (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Reglo {
    /// What the LP optimises (scale-aware by default).
    pub objective: RegloObjective,
    /// Norm of the weight change ([`RegloObjective::MinChange`]).
    pub norm: WeightNorm,
    /// Search-and-repair rounds at most.
    pub max_iters: usize,
    /// New repair areas per round at most.
    pub max_areas: usize,
    /// Uniform samples of the region per round (besides the data points).
    pub samples: usize,
    /// Half-width of a repair area as a fraction of the region's width, per feature.
    pub area_radius: f64,
    /// Fairness: a repair area is the flagged point with only the sensitive features spanning
    /// the region (a 1-D segment for one feature, as the public REGLO code does) instead of a
    /// box `area_radius` wide.
    pub segments: bool,
    /// Also cover the region with this many boxes as areas (0: off).
    pub cover: usize,
    /// The LP enforces `eps (1 - margin)`, leaving room for f32 rounding.
    pub margin: f64,
    /// Data points (flattened inputs): those inside a property's region seed the search and
    /// the PGD metrics.
    pub points: Vec<Vec<f64>>,
    /// Scale-aware objective: a kept point (the repair problem's keep set) must win by at least
    /// this fraction of `lambda` times its original margin (its decision is held).
    pub keep_tau: f64,
    /// Min-change objective: weight of the kept points' mean L1 output change.
    pub keep_weight: f64,
    /// Scale-aware objective: when the region's VB of the LP's answer is above
    /// `eps (1 - margin)`, shrink the last layer (weight and bias) until it is not. Decisions do
    /// not change, and the result is proved over the whole region.
    pub prove_global: bool,
    /// Points for PGD-B and PGD-R: data points in the region first, then uniform draws.
    pub eval_points: usize,
    /// The variation attack (search and metrics).
    pub attack: VariationAttack,
    /// The VB computation.
    pub split: SplitOptions,
    /// Fairness: slices of each sensitive feature's range bounded (and constrained) separately;
    /// tighter bounds, a larger LP.
    pub pieces: usize,
    /// Use the linear (in `dx`) bounds when at most this many features can move; above,
    /// concrete bounds only.
    pub linear_max_free: usize,
    /// Wall-clock limit of each LP.
    pub lp_time_limit: Option<Duration>,
    /// LP algorithm; `None`: interior point for the min-change LP (1.6x faster than simplex
    /// on German credit's 100k-row LPs), dual simplex for the scale-aware LP's small
    /// cutting-plane LPs (4.5x faster than interior point there).
    pub lp_method: Option<netrepair_lp::Method>,
    /// Seed of the sampling.
    pub seed: u64,
}

impl Default for Reglo {
    fn default() -> Self {
        Self {
            objective: RegloObjective::default(),
            norm: WeightNorm::L1,
            max_iters: 3,
            max_areas: 30,
            samples: 1000,
            area_radius: 0.01,
            segments: false,
            cover: 0,
            margin: 0.05,
            points: Vec::new(),
            keep_tau: 0.5,
            keep_weight: 1.0,
            prove_global: true,
            eval_points: 1000,
            attack: VariationAttack::default(),
            split: SplitOptions::default(),
            pieces: 2,
            linear_max_free: 16,
            lp_time_limit: None,
            lp_method: None,
            seed: 0,
        }
    }
}

impl Reglo {
    /// Checks the settings, naming the first rule broken.
    pub fn check(&self) -> Result<()> {
        rule::at_least_one("max_iters", self.max_iters)?;
        rule::at_least_one("max_areas", self.max_areas)?;
        rule::unit_fraction("area_radius", self.area_radius)?;
        rule::non_negative("keep_weight", self.keep_weight)?;
        rule::share("keep_tau", self.keep_tau)?;
        if let RegloObjective::Scale { kappa } = self.objective {
            rule::non_negative("kappa", kappa)?;
        }
        rule::below_one("margin", self.margin)
    }
}

/// Index of the largest value (the first on ties).
pub(super) fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

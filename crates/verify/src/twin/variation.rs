//! The variation of a whole region: the sound bound VB by best-first input splitting, and
//! the attack (PGD-B, PGD-R) from sample points.

use std::time::{Duration, Instant};

use netrepair_nn::Network;
use netrepair_spec::{BoxRegion, GlobalProperty, OutputMeasure};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::bounds::area_variation;
use super::chain::Chain;
use crate::error::Result;

/// Settings of [`variation_bound`].
#[derive(Debug, Clone, PartialEq)]
pub struct SplitOptions {
    /// Largest number of leaf boxes.
    pub max_boxes: usize,
    /// Wall-clock limit.
    pub time_limit: Duration,
    /// Slices of each sensitive feature's range bounded separately (fairness).
    pub pieces: usize,
}

impl Default for SplitOptions {
    fn default() -> Self {
        Self {
            max_boxes: 256,
            time_limit: Duration::from_secs(60),
            pieces: 8,
        }
    }
}

/// A sound bound of a region's output variation.
#[derive(Debug, Clone, PartialEq)]
pub struct VariationBound {
    /// `VB`: an upper bound of `||f(x + dx) - f(x)||_inf` over the region.
    pub vb: f64,
    /// The bound with the region unsplit.
    pub vb_unsplit: f64,
    /// Leaf boxes bounded.
    pub boxes: usize,
    /// Whether splitting stopped early because every leaf met `eps`.
    pub proved: bool,
    /// Wall time.
    pub seconds: f64,
}

/// `VB` over `region` (a sub-box of the property's region, or the region itself): the worst
/// leaf is split along its widest side until every leaf's bound is at most `eps`, or
/// `max_boxes` leaves or the time limit are reached.
pub fn variation_bound(
    net: &Network,
    chain: &Chain,
    prop: &GlobalProperty,
    region: &BoxRegion,
    opts: &SplitOptions,
) -> Result<VariationBound> {
    let t = Instant::now();
    let first = area_variation(net, chain, prop, region, opts.pieces)?;
    let mut leaves = vec![(region.clone(), first)];
    let batch = rayon::current_num_threads().max(1) * 2;
    loop {
        leaves.sort_by(|a, b| b.1.total_cmp(&a.1));
        if leaves[0].1 <= prop.eps
            || leaves.len() + batch > opts.max_boxes.max(1)
            || t.elapsed() > opts.time_limit
        {
            break;
        }
        let open = leaves.iter().take_while(|l| l.1 > prop.eps).count();
        let take = open.min(batch);
        let worst: Vec<BoxRegion> = leaves.drain(..take).map(|l| l.0).collect();
        let halves: Vec<BoxRegion> = worst.iter().flat_map(BoxRegion::halve_widest).collect();
        let bounded: Vec<Result<(BoxRegion, f64)>> = halves
            .into_par_iter()
            .map(|b| {
                let v = area_variation(net, chain, prop, &b, opts.pieces)?;
                Ok((b, v))
            })
            .collect();
        for r in bounded {
            leaves.push(r?);
        }
    }
    let vb = leaves.iter().map(|l| l.1).fold(0.0, f64::max);
    Ok(VariationBound {
        vb,
        vb_unsplit: first,
        boxes: leaves.len(),
        proved: vb <= prop.eps,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Settings of [`pgd_variation`].
#[derive(Debug, Clone, PartialEq)]
pub struct VariationAttack {
    /// Random starts per sample point and output direction (besides the region's corners of
    /// the sensitive features, for fairness).
    pub restarts: usize,
    /// Signed-gradient steps per start.
    pub steps: usize,
    /// Seed of the random starts.
    pub seed: u64,
}

impl Default for VariationAttack {
    fn default() -> Self {
        Self {
            restarts: 2,
            steps: 20,
            seed: 0,
        }
    }
}

/// What the variation attack found.
#[derive(Debug, Clone, PartialEq)]
pub struct VariationReport {
    /// `PGD-B`: the largest `||f(x') - f(x)||_inf` found (a lower bound of the true variation).
    pub pgd_b: f64,
    /// `PGD-R`: the share of sample points with a perturbation that breaks `eps`.
    pub pgd_r: f64,
    /// Per sample point, the largest variation found.
    pub per_point: Vec<f64>,
    /// Per sample point, the perturbed input `x'` that reached it.
    pub partners: Vec<Vec<f64>>,
}

impl VariationReport {
    /// The sample point with the largest variation, if any variation was found.
    pub fn worst_index(&self) -> Option<usize> {
        (0..self.per_point.len())
            .filter(|&i| self.per_point[i] > 0.0)
            .max_by(|&a, &b| self.per_point[a].total_cmp(&self.per_point[b]))
    }
}

/// Searches, from each sample point `x`, for the perturbation `x'` allowed by `prop` that
/// changes the output most: for every output and both signs, signed-gradient ascent on
/// `±(f_o(x') - f_o(x))` with projection, from random starts (and, for fairness, from the ends
/// of the sensitive range). Every value is an f64 forward pass of the chain.
pub fn pgd_variation(
    chain: &Chain,
    prop: &GlobalProperty,
    points: &[Vec<f64>],
    opts: &VariationAttack,
) -> VariationReport {
    let free = prop.free_dims();
    // Ascent on the measure's rows; the value of a pair is the measure itself (for
    // probabilities the softmax change, a lower bound of the true variation like any attack).
    let measured = chain.measured(prop);
    let probs = prop.measure == OutputMeasure::Probabilities;
    let outputs = measured.output_len();
    let results: Vec<(f64, Vec<f64>)> = points
        .par_iter()
        .enumerate()
        .map(|(p, x)| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed ^ (p as u64) << 20);
            let y0 = chain.forward(x);
            let p0 = if probs { softmax(&y0) } else { Vec::new() };
            let dx = prop.dx_box(&BoxRegion {
                lower: x.clone(),
                upper: x.clone(),
            });
            let mut best = (0.0, x.clone());
            let consider = |x2: &[f64], y2: &[f64], best: &mut (f64, Vec<f64>)| {
                let v = if probs {
                    let p2 = softmax(&chain.forward(x2));
                    p2.iter()
                        .zip(&p0)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max)
                } else {
                    y2.iter()
                        .zip(&y0)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max)
                };
                if v > best.0 {
                    *best = (v, x2.to_vec());
                }
            };
            let mut starts: Vec<Vec<f64>> = Vec::new();
            if free.len() < x.len() {
                for corner in [true, false] {
                    let mut s = x.clone();
                    for &f in &free {
                        s[f] = if corner { dx.upper[f] } else { dx.lower[f] } + x[f];
                    }
                    starts.push(s);
                }
            }
            for _ in 0..opts.restarts {
                let mut s = x.clone();
                for &f in &free {
                    s[f] = x[f] + rng.random_range(dx.lower[f]..=dx.upper[f]);
                }
                starts.push(s);
            }
            for start in &starts {
                for o in 0..outputs {
                    for sign in [1.0, -1.0] {
                        let mut x2 = start.clone();
                        for step in 0..opts.steps {
                            let (y2, g) = measured.gradient(&x2, o);
                            consider(&x2, &y2, &mut best);
                            let frac = 0.25 * (1.0 - 0.9 * step as f64 / opts.steps as f64);
                            for &f in &free {
                                x2[f] += sign * frac * (dx.upper[f] - dx.lower[f]) * g[f].signum();
                            }
                            prop.project(x, &mut x2);
                        }
                        let y2 = measured.forward(&x2);
                        consider(&x2, &y2, &mut best);
                    }
                }
            }
            best
        })
        .collect();
    let (per_point, partners): (Vec<f64>, Vec<Vec<f64>>) = results.into_iter().unzip();
    let pgd_b = per_point.iter().copied().fold(0.0, f64::max);
    let violating = per_point.iter().filter(|&&v| v > prop.eps).count();
    VariationReport {
        pgd_b,
        pgd_r: if points.is_empty() {
            0.0
        } else {
            violating as f64 / points.len() as f64
        },
        per_point,
        partners,
    }
}

/// Softmax of logits, shifted by their maximum.
fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// The L-inf operator norm of the Jacobian at `x` over the perturbable features:
/// `max_o sum_k |df_o/dx_k|` (of the measure's rows, times its factor). A counterexample pair needs a point between them where this
/// exceeds `eps / diameter(Omega)` (seed 002, Theorem 1).
pub fn jacobian_norm(chain: &Chain, prop: &GlobalProperty, x: &[f64]) -> f64 {
    let measured;
    let c = if prop.measure == OutputMeasure::Logits {
        chain
    } else {
        measured = chain.measured(prop);
        &measured
    };
    prop.measure.factor()
        * c.jacobian(x, &prop.free_dims())
            .iter()
            .map(|row| row.iter().map(|v| v.abs()).sum::<f64>())
            .fold(0.0, f64::max)
}

/// `n` points drawn uniformly from a box.
pub fn uniform_points(region: &BoxRegion, n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            region
                .lower
                .iter()
                .zip(&region.upper)
                .map(|(&l, &u)| if u > l { rng.random_range(l..=u) } else { l })
                .collect()
        })
        .collect()
}

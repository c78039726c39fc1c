//! Branch and bound on ReLU splits (beta-CROWN style) for input boxes too large to split:
//! a sub-domain fixes some unstable neurons' signs; its bounds are recomputed with those signs
//! (the split neurons' relaxations become exact, the later layers' bounds tighten), and the
//! property's constraints are bounded with optimised slopes and the splits' Lagrange
//! multipliers in the bound ([`optimised_upper_rows`]). A sub-domain is proved when each
//! unsafe polytope still open on it has a constraint whose lower bound clears its right-hand
//! side, refuted when the point the closest constraint's bound is attained at is a concrete
//! counterexample, and otherwise split on the unstable neuron whose relaxation costs that
//! bound most.

use std::time::Instant;

use netrepair_nn::{Layer, Network};
use netrepair_spec::{Case, LinearConstraint};
use rayon::prelude::*;

use crate::affine::Ops;
use crate::alpha::{optimised_upper_rows, AlphaOptions};
use crate::attack::{confirm, Counterexample};
use crate::crown::{
    backsub, bound_targets, intersect, refresh_after, row_bounds_with, unit_rows, Bounded, Mat,
    Split,
};
use crate::error::Result;
use crate::interval::Bounds;

/// How a branch and bound ended.
pub(crate) enum BabOutcome {
    /// Every sub-domain proved.
    Proved,
    /// A confirmed counterexample.
    Violated(Counterexample),
    /// Out of time, or a sub-domain no split can help; the reason says which.
    Unknown(String),
}

/// A sub-domain: the splits that define it, sound bounds of every value on it, and the
/// unsafe polytopes not yet excluded on it (excluded on a domain, excluded on its parts).
struct Domain {
    splits: Vec<Split>,
    bounds: Vec<Bounds>,
    open: Vec<usize>,
}

enum Judged {
    Proved,
    Violated(Counterexample),
    /// The neuron to split next and the polytopes still open.
    Split(Split, Vec<usize>),
    Stuck,
}

/// Decides a case over its whole box by ReLU splitting (all its unsafe polytopes in one tree),
/// from sound bounds of every value over the box, until `deadline`. Returns the outcome and
/// the number of sub-domains bounded.
pub(crate) fn relu_bab(
    ops: &Ops,
    case: &Case,
    root: Vec<Bounds>,
    alpha: &AlphaOptions,
    deadline: Instant,
) -> Result<(BabOutcome, usize)> {
    let mut stack = vec![Domain {
        splits: Vec::new(),
        bounds: root,
        open: (0..case.unsafe_region.len()).collect(),
    }];
    let mut domains = 0;
    while !stack.is_empty() {
        if Instant::now() > deadline {
            return Ok((
                BabOutcome::Unknown(format!(
                    "timeout in ReLU branch and bound after {domains} sub-domains ({} left)",
                    stack.len()
                )),
                domains,
            ));
        }
        let batch: Vec<Domain> =
            stack.split_off(stack.len().saturating_sub(2 * rayon::current_num_threads()));
        domains += batch.len();
        let judged: Vec<(Domain, Judged)> = batch
            .into_par_iter()
            .map(|d| judge(ops, case, &d, alpha).map(|j| (d, j)))
            .collect::<Result<_>>()?;
        for (d, j) in judged {
            match j {
                Judged::Proved => {}
                Judged::Violated(cex) => return Ok((BabOutcome::Violated(cex), domains)),
                Judged::Stuck => {
                    return Ok((
                        BabOutcome::Unknown(
                            "a sub-domain with every neuron stable is not proved".into(),
                        ),
                        domains,
                    ))
                }
                Judged::Split(split, open) => {
                    for active in [false, true] {
                        let s = Split { active, ..split };
                        if let Some(bounds) = split_bounds(ops, &d.bounds, s)? {
                            let mut splits = d.splits.clone();
                            splits.push(s);
                            stack.push(Domain {
                                splits,
                                bounds,
                                open: open.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    Ok((BabOutcome::Proved, domains))
}

/// Bounds the case's constraints on a sub-domain: proved, a counterexample at the point the
/// bound of the constraint closest to proof is attained at, or the neuron to split next.
fn judge(ops: &Ops, case: &Case, d: &Domain, alpha: &AlphaOptions) -> Result<Judged> {
    // Fewer steps per sub-domain than for the whole box: many sub-domains, each close to
    // its parent (mnistfc 256x2 prop_3 at 0.03: 3.9 s with 10, 4.6 s with 20).
    let alpha = &AlphaOptions {
        iterations: alpha.branch_iterations,
        ..*alpha
    };
    let net = ops.net();
    let out = net.nodes().len();
    let m = d.bounds[out].lower.len();
    // The open polytopes' constraints, each with its polytope.
    let cons: Vec<(usize, &LinearConstraint)> = d
        .open
        .iter()
        .flat_map(|&p| {
            case.unsafe_region[p]
                .constraints
                .iter()
                .map(move |c| (p, c))
        })
        .collect();
    let mut neg = Mat::zeros(cons.len(), m);
    for (r, (_, c)) in cons.iter().enumerate() {
        for &(j, a) in &c.coeffs {
            neg.data[r * m + j] -= a;
        }
    }
    // The polytopes no constraint bound excludes.
    let still_open = |upper: &[f64]| -> Vec<usize> {
        d.open
            .iter()
            .copied()
            .filter(|&p| {
                !cons
                    .iter()
                    .zip(upper)
                    .any(|(&(q, c), u)| q == p && -u > c.rhs)
            })
            .collect()
    };
    let best = optimised_upper_rows(ops, &d.bounds, out, neg.clone(), alpha, &d.splits, &|u| {
        still_open(u).is_empty()
    })?;
    let open = still_open(&best.upper);
    if open.is_empty() {
        return Ok(Judged::Proved);
    }
    // The constraint closest to being excluded, bounded plainly, gives the candidate point
    // and the neurons' costs.
    let r = (0..cons.len())
        .filter(|&r| open.contains(&cons[r].0))
        .max_by(|&a, &b| {
            (-best.upper[a] - cons[a].1.rhs).total_cmp(&(-best.upper[b] - cons[b].1.rhs))
        })
        .expect("a constraint of an open polytope");
    let row = Mat {
        rows: 1,
        cols: m,
        data: neg.row(r).to_vec(),
    };
    let b = backsub(&Bounded::new(ops, &d.bounds), out, row, None, None, true)?;
    if let Some(c0) = &b.input_coef {
        let input = &d.bounds[0];
        let corner: Vec<f64> = (0..c0.cols)
            .map(|j| {
                if c0.data[j] >= 0.0 {
                    input.upper[j]
                } else {
                    input.lower[j]
                }
            })
            .collect();
        if let Some(cex) = confirm(net, case, &[corner])? {
            return Ok(Judged::Violated(cex));
        }
    }
    Ok(choose_split(net, &d.bounds, &d.splits, &b.lams)
        .map_or(Judged::Stuck, |s| Judged::Split(s, open)))
}

/// The unstable, not yet split neuron whose upper relaxation costs the bound most
/// (`lambda * (-l u / (u - l))`, its coefficient times the triangle's intercept); where no
/// coefficient is positive, the neuron with the widest triangle.
fn choose_split(
    net: &Network,
    bounds: &[Bounds],
    splits: &[Split],
    lams: &[Option<Mat>],
) -> Option<Split> {
    let mut best: Option<(f64, f64, Split)> = None;
    for (i, node) in net.nodes().iter().enumerate() {
        if !matches!(node.layer(), Layer::Relu) {
            continue;
        }
        let v = node.inputs()[0];
        let pre = &bounds[v];
        let lam = lams.get(i).and_then(Option::as_ref);
        for k in 0..pre.lower.len() {
            let (l, u) = (pre.lower[k], pre.upper[k]);
            if !(l < 0.0 && u > 0.0) || splits.iter().any(|s| s.value == v && s.neuron == k) {
                continue;
            }
            let intercept = -l * u / (u - l);
            let cost = lam.map_or(0.0, |m| m.data[k].max(0.0)) * intercept;
            let key = (cost, intercept);
            let split = Split {
                value: v,
                neuron: k,
                active: false,
            };
            if best
                .as_ref()
                .is_none_or(|b| key.0 > b.0 || (key.0 == b.0 && key.1 > b.1))
            {
                best = Some((key.0, key.1, split));
            }
        }
    }
    best.map(|b| b.2)
}

/// Bounds of every value on the sub-domain `parent` restricted by `split`: the neuron's
/// bounds clipped at 0, interval bounds refreshed after it, and every later ReLU's unstable
/// neurons bounded again by back-substitution (intersected: the parent's bounds hold on the
/// child). `None` when the restriction is empty.
fn split_bounds(ops: &Ops, parent: &[Bounds], split: Split) -> Result<Option<Vec<Bounds>>> {
    let net = ops.net();
    let mut b = parent.to_vec();
    let v = split.value;
    let k = split.neuron;
    if split.active {
        b[v].lower[k] = b[v].lower[k].max(0.0);
    } else {
        b[v].upper[k] = b[v].upper[k].min(0.0);
    }
    if !refresh_from(ops, &mut b, v)? {
        return Ok(None);
    }
    let last = net.nodes().len();
    for w in bound_targets(net)
        .into_iter()
        .filter(|&w| w > v && w < last)
    {
        let open: Vec<usize> = (0..b[w].lower.len())
            .filter(|&j| b[w].lower[j] < 0.0 && b[w].upper[j] > 0.0)
            .collect();
        if open.is_empty() {
            continue;
        }
        let (lo, hi) = row_bounds_with(ops, &b, w, &unit_rows(b[w].lower.len(), &open))?;
        let (mut l, mut u) = (b[w].lower.clone(), b[w].upper.clone());
        for (r, &j) in open.iter().enumerate() {
            l[j] = l[j].max(lo[r]);
            u[j] = u[j].min(hi[r]);
        }
        intersect(&mut b[w], &l, &u);
        if !refresh_from(ops, &mut b, w)? {
            return Ok(None);
        }
    }
    Ok(Some(b))
}

/// Re-propagates interval bounds from `value` on (intersecting with what is known); `false`
/// when some value's bounds cross, i.e. the sub-domain is empty.
fn refresh_from(ops: &Ops, b: &mut [Bounds], value: usize) -> Result<bool> {
    if crossed(&b[value]) {
        return Ok(false);
    }
    refresh_after(ops, b, value)?;
    Ok(!b[value..].iter().any(crossed))
}

fn crossed(b: &Bounds) -> bool {
    b.lower.iter().zip(&b.upper).any(|(l, u)| l > u)
}

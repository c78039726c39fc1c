//! Whether a case's unsafe region is excluded over its box: each unsafe polytope's
//! constraints bounded from below by back-substitution (optionally with optimised slopes,
//! [`AlphaOptions`]) or, when the output node is affine, folded into the last layer.

use netrepair_nn::Network;
use netrepair_spec::Case;

use crate::affine::Ops;
use crate::alpha::{optimised_upper_rows, AlphaOptions};
use crate::crown::Mat;
use crate::error::Result;
use crate::interval::Bounds;
use crate::rounding::{down, gamma};
use netrepair_nn::affine_op;

/// Whether the linear bounds prove that no input of the case's box reaches its unsafe
/// region: for every unsafe polytope, some constraint's lower bound over the box exceeds its
/// right-hand side. `bounds` are sound bounds of every value over that box.
pub fn prove_case(net: &Network, case: &Case, bounds: &[Bounds]) -> Result<bool> {
    Ok(case_analysis(&Ops::new(net), case, bounds, &AlphaOptions::none())?.proved)
}

/// [`prove_case`] with the ReLU lower slopes optimised for the case's constraints
/// (alpha-CROWN, see [`AlphaOptions`]): proves more, at the cost of a few more
/// back-substitutions where the plain bounds do not suffice.
pub fn prove_case_optimised(
    net: &Network,
    case: &Case,
    bounds: &[Bounds],
    alpha: &AlphaOptions,
) -> Result<bool> {
    Ok(case_analysis(&Ops::new(net), case, bounds, alpha)?.proved)
}

/// The result of bounding one case over one box.
pub(crate) struct CaseAnalysis {
    /// Every unsafe polytope is excluded.
    pub proved: bool,
    /// Per input: how much the not-yet-excluded polytopes' best constraints depend on it
    /// (|input coefficient of the linear bound| x box width), to choose where to split.
    pub influence: Vec<f64>,
}

/// Lower bounds of `row . y` when the output node is affine (`y = W h + b`): the row is folded
/// into the last layer (`e = row W`) and bounded exactly over the box of `h`,
/// `sum_j min(e_j l_j, e_j u_j) + row . b`, widened by the rounding error. Often tighter than
/// back-substitution through the ReLUs below, e.g. after an edit of the last layer.
fn last_layer_lower(
    net: &Network,
    bounds: &[Bounds],
    rows: &[Vec<f64>],
) -> Result<Option<Vec<f64>>> {
    let last = net.nodes().len() - 1;
    let Some(op) = affine_op(net, last)? else {
        return Ok(None);
    };
    let h = &bounds[net.nodes()[last].inputs()[0]];
    let k = h.lower.len();
    Ok(Some(
        rows.iter()
            .map(|row| {
                let mut e = vec![0.0; k];
                let mut e_abs = vec![0.0; k];
                let (mut c, mut c_abs) = (0.0, 0.0);
                for (o, &r) in row.iter().enumerate() {
                    if r == 0.0 {
                        continue;
                    }
                    c += r * op.bias[o];
                    c_abs += (r * op.bias[o]).abs();
                    for &(j, w) in &op.rows[o] {
                        e[j as usize] += r * w;
                        e_abs[j as usize] += (r * w).abs();
                    }
                }
                let (mut sum, mut mag) = (c, c_abs);
                for j in 0..k {
                    let (l, u) = (h.lower[j], h.upper[j]);
                    sum += (e[j] * l).min(e[j] * u);
                    mag += e_abs[j] * l.abs().max(u.abs());
                }
                let terms = row.len() + op.rows.iter().map(Vec::len).max().unwrap_or(0) + k + 4;
                if sum.is_finite() && mag.is_finite() {
                    down(sum, gamma(terms) * mag)
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect(),
    ))
}

pub(crate) fn case_analysis(
    ops: &Ops,
    case: &Case,
    bounds: &[Bounds],
    alpha: &AlphaOptions,
) -> Result<CaseAnalysis> {
    let net = ops.net();
    let out = net.nodes().len();
    let m = bounds[out].lower.len();
    let n = bounds[0].lower.len();
    let mut rows = Vec::new();
    for poly in &case.unsafe_region {
        for c in &poly.constraints {
            let mut row = vec![0.0; m];
            for &(j, a) in &c.coeffs {
                row[j] += a;
            }
            rows.push(row);
        }
    }
    let mut influence = vec![0.0; n];
    if rows.is_empty() {
        return Ok(CaseAnalysis {
            proved: false,
            influence,
        });
    }
    let alt = last_layer_lower(net, bounds, &rows)?;
    let neg = Mat {
        rows: rows.len(),
        cols: m,
        data: rows.iter().flatten().map(|v| -v).collect(),
    };
    // Lower bounds of the constraints, each the better of back-substitution and the last
    // layer's exact bound over its input box.
    let lower_of = |upper: &[f64]| -> Vec<f64> {
        upper
            .iter()
            .enumerate()
            .map(|(r, u)| {
                let l = -u;
                alt.as_ref().map_or(l, |a| l.max(a[r]))
            })
            .collect()
    };
    let rhs: Vec<(usize, usize, f64)> = case
        .unsafe_region
        .iter()
        .enumerate()
        .flat_map(|(p, poly)| poly.constraints.iter().map(move |c| (p, 0, c.rhs)))
        .collect();
    let polys = case.unsafe_region.len();
    let excluded = |lower: &[f64]| -> bool {
        (0..polys).all(|p| {
            rhs.iter()
                .zip(lower)
                .any(|(&(q, _, rhs), &lb)| q == p && lb > rhs)
        })
    };
    let best = optimised_upper_rows(ops, bounds, out, neg, alpha, &[], &|u| {
        excluded(&lower_of(u))
    })?;
    let (lower, coef) = (lower_of(&best.upper), best.input_coef);
    let (mut k, mut proved) = (0, true);
    for poly in &case.unsafe_region {
        let cons = &poly.constraints;
        let lows = &lower[k..k + cons.len()];
        if !cons.iter().zip(lows).any(|(c, &lb)| lb > c.rhs) {
            proved = false;
            // The constraint closest to being excluded decides where splitting helps most.
            if let Some((r, _)) = cons
                .iter()
                .zip(lows)
                .enumerate()
                .map(|(r, (c, &lb))| (r, lb - c.rhs))
                .max_by(|a, b| a.1.total_cmp(&b.1))
            {
                if let Some(c0) = &coef {
                    for (i, inf) in influence.iter_mut().enumerate() {
                        *inf += c0.row(k + r)[i].abs() * (bounds[0].upper[i] - bounds[0].lower[i]);
                    }
                }
            }
        }
        k += cons.len();
    }
    Ok(CaseAnalysis { proved, influence })
}

//! REGLO (seed 002): provable repair for global robustness and individual fairness by a
//! minimal change of the last layer's weight.
//!
//! For a property `P(X, Omega, eps)` ([`GlobalProperty`]):
//! 1. **Search.** Sample points of `X` (data points in `X` and uniform draws). A counterexample
//!    pair needs a point between them whose Jacobian norm over the perturbable features exceeds
//!    `eps / diam(Omega)` (seed 002, Theorem 1): points failing that test are dropped, the rest
//!    ranked by it, and the variation attack ([`pgd_variation`]) confirms which really break
//!    `eps`. Each confirmed point becomes a *repair area*: a box around it, `area_radius` of the
//!    region's width on every side, clipped to `X`.
//! 2. **Bounds.** For every area, twin-network bounds of the last hidden layer's change
//!    `dz = h(x + dx) - h(x)` as linear functions of `dx` ([`property_twin_bounds`]). The body
//!    of the network does not change, so they are computed once per area.
//! 3. **Repair LP.** Minimise `||dW||` (L1, or L-inf plus a small L1 term) over the last
//!    layer's weight subject to, for every area, every output `o` and both signs `s`,
//!    `max s (W + dW)_o . dz <= eps (1 - margin)` over the area. The inner maximum is replaced
//!    by its LP dual (the robust counterpart): with `c = s (W + dW)_o`, find
//!    `mu, nu, alpha, beta >= 0` with `mu - nu = c`, `Du^T mu - Dl^T nu = alpha - beta` and
//!    `eu.mu - el.nu + dx_hi.alpha - dx_lo.beta <= eps (1 - margin)`, where
//!    `Dl dx + el <= dz <= Du dx + eu` are the linear bounds and `[dx_lo, dx_hi]` the box of
//!    `dx`. Weak duality makes every feasible point sound; the bias cancels in
//!    `f(x + dx) - f(x)` and stays. With many perturbable features (image robustness) the
//!    concrete bounds `[L, U]` of `dz` replace the linear ones (`mu - nu = c`,
//!    `U.mu - L.nu <= eps (1 - margin)`; `linear_max_free`). Either way the LP's bound is one
//!    the verifier's own back-substitution reproduces, so what the LP enforces the re-check
//!    can confirm.
//! 4. **Iterate.** Search again on the repaired network; new areas join the old ones and the
//!    LP is solved again from the original weight, until the search finds no violation or
//!    `max_iters` is reached.
//! 5. **Re-check.** The repaired network (weights rounded to f32) is re-bounded by the verifier:
//!    every area's VB, the whole region's VB by best-first splitting ([`variation_bound`]) and,
//!    with `cover`, the largest VB of the covering boxes. Only VB <= eps over the whole region
//!    is "proved"; the attack's PGD-B and PGD-R are reported beside it.
//!
//! Beyond the paper: `cover > 0` adds a partition of `X` into that many boxes as areas, so the
//! LP's constraints cover all of `X` and a successful repair is a global proof (at the cost of
//! a larger change, as the bounds over big boxes are loose).

use std::time::Instant;

use candle_core::{Device, Tensor};
use netrepair_nn::{Layer, Network, ParamId};
use netrepair_spec::{GlobalProperty, OutputMeasure};
use netrepair_verify::{pgd_variation, variation_bound, Chain, SplitOptions, VariationReport};

use crate::error::{RepairError, Result};
use crate::outcome::{
    EditedLayer, ItemStatus, MethodDetails, RepairOutcome, RepairStatus, Timings,
};
use crate::problem::{KeepSet, LabelledSet, RepairItem, RepairProblem};
use crate::{Repair, RepairContext};

mod areas;
mod lp;
mod params;
mod report;
mod rounds;

use params::argmax;
pub use params::{Reglo, RegloObjective, WeightNorm};
use report::{Change, Measured};
use rounds::{LpBase, Rounds};

/// A keep set holding the decisions `net` takes on `inputs` (each labelled with its own
/// argmax): what REGLO's scale-aware LP keeps, and what its keep report counts.
pub fn decision_keep_set(net: &Network, inputs: Vec<Vec<f64>>) -> Result<KeepSet> {
    let chain = Chain::new(net)?;
    let labels = inputs.iter().map(|x| argmax(&chain.forward(x))).collect();
    Ok(KeepSet::points(LabelledSet { inputs, labels }))
}

/// The last node's weight: its id, checked to be a Linear `[outputs, hidden]` matrix.
fn last_weight(net: &Network, chain: &Chain) -> Result<ParamId> {
    let last = net.nodes().len() - 1;
    let node = &net.nodes()[last];
    if !matches!(node.layer(), Layer::Linear(_)) {
        return Err(RepairError::Unsupported(format!(
            "REGLO edits the last layer's weight, which must be Linear; node '{}' is {}",
            node.name(),
            node.layer().kind()
        )));
    }
    let id = ParamId {
        node: last,
        slot: 0,
    };
    let dims = net.param(id)?.dims().to_vec();
    if dims != [chain.output_len(), chain.hidden_len()] {
        return Err(RepairError::Unsupported(format!(
            "the last layer's weight has shape {dims:?}, expected [{}, {}]",
            chain.output_len(),
            chain.hidden_len()
        )));
    }
    Ok(id)
}

/// `net` with the last layer's weight and bias replaced.
fn with_last_layer(
    net: &Network,
    id: ParamId,
    w: &[f64],
    b: &[f64],
    outputs: usize,
) -> Result<Network> {
    let mut out = net.clone();
    let t = Tensor::from_vec(w.to_vec(), (outputs, w.len() / outputs), &Device::Cpu)
        .map_err(netrepair_nn::NnError::from)?;
    out.set_param(id, t)?;
    let t =
        Tensor::from_vec(b.to_vec(), outputs, &Device::Cpu).map_err(netrepair_nn::NnError::from)?;
    out.set_param(
        ParamId {
            node: id.node,
            slot: 1,
        },
        t,
    )?;
    Ok(out)
}

impl Repair for Reglo {
    fn name(&self) -> &'static str {
        "reglo"
    }

    fn check_settings(&self) -> Result<()> {
        self.check()
    }

    fn repair(
        &self,
        net: &Network,
        problem: &RepairProblem,
        ctx: &RepairContext,
    ) -> Result<RepairOutcome> {
        let started = Instant::now();
        problem.validate(net.input_len(), net.output_len())?;
        self.check()?;
        let mut names = Vec::new();
        let mut props: Vec<&GlobalProperty> = Vec::new();
        for (i, item) in problem.items.iter().enumerate() {
            match item {
                RepairItem::Global { name, property } => {
                    names.push(name.clone());
                    props.push(property);
                }
                other => {
                    return Err(RepairError::Unsupported(format!(
                    "item {i} is a {}: REGLO repairs global robustness / fairness properties only",
                    other.kind()
                )))
                }
            }
        }
        if self.objective == RegloObjective::MinChange {
            if let Some(p) = props.iter().find(|p| p.measure != OutputMeasure::Logits) {
                return Err(RepairError::Unsupported(format!(
                    "the min-change LP bounds logits; eps on {} needs the scale-aware objective",
                    p.measure.name()
                )));
            }
        }
        let chain = Chain::new(net)?;
        let wid = last_weight(net, &chain)?;
        let (outputs, _hidden) = (chain.output_len(), chain.hidden_len());
        let w0 = chain.last_weight().to_vec();
        let b0 = chain.last_bias().to_vec();
        if !problem.keep.regions.is_empty() {
            return Err(RepairError::Unsupported(
                "REGLO keeps points (their decisions), not regions".into(),
            ));
        }
        // Kept points: hidden layer and original outputs (their decisions are held).
        let keep: Vec<(Vec<f64>, Vec<f64>)> = problem
            .keep
            .points
            .inputs
            .iter()
            .map(|x| (chain.hidden(x), chain.forward(x)))
            .collect();
        let mut timings = Timings::default();
        let split = SplitOptions {
            pieces: self.pieces,
            ..self.split.clone()
        };

        // Before: the metrics on the original network.
        ctx.say("measuring VB and PGD before repair");
        let eval: Vec<Vec<Vec<f64>>> = props
            .iter()
            .enumerate()
            .map(|(p, prop)| {
                self.sample(
                    &prop.region,
                    self.eval_points,
                    self.seed ^ 0xe7a1 ^ p as u64,
                )
            })
            .collect();
        let mut before: Vec<(VariationReport, f64)> = Vec::new();
        for (p, prop) in props.iter().enumerate() {
            let rep = pgd_variation(&chain, prop, &eval[p], &self.attack);
            let vb = variation_bound(net, &chain, prop, &prop.region, &split)?;
            before.push((rep, vb.vb));
        }
        let verify_before_s = started.elapsed().as_secs_f64();

        // Areas (the cover first), then rounds of search and LP.
        let Rounds {
            areas,
            cover_areas,
            mut w,
            mut b,
            last,
            mut iterations,
            lps,
            limit,
            solved_once,
            build_s,
            solve_s,
        } = self.rounds(
            net,
            &chain,
            &props,
            &LpBase {
                keep: &keep,
                w0: &w0,
                b0: &b0,
            },
            ctx,
        )?;
        timings.build_s += build_s;
        timings.solve_s += solve_s;

        // Global proof (scale-aware): every bound of the variation is positively homogeneous in
        // the last layer, so shrinking its weight and bias by target / VB makes VB <= target
        // hold over the whole region, with every decision unchanged.
        let scale_aware = matches!(self.objective, RegloObjective::Scale { .. });
        let mut rescaled = None;
        if scale_aware && self.prove_global {
            ctx.say("bounding the variation of the new last layer over the whole region");
            let cand = with_last_layer(net, wid, &w, &b, outputs)?;
            let cand_chain = Chain::new(&cand)?;
            let mut ratio: f64 = 0.0;
            for prop in &props {
                let vb = variation_bound(&cand, &cand_chain, prop, &prop.region, &split)?.vb;
                ratio = ratio.max(vb / (prop.eps * (1.0 - self.margin)));
            }
            if ratio > 1.0 {
                let g = 1.0 / ratio;
                let shrink =
                    |v: &mut Vec<f64>| v.iter_mut().for_each(|x| *x = (*x * g) as f32 as f64);
                shrink(&mut w);
                shrink(&mut b);
                rescaled = Some(g);
            }
        }
        let lambda = last.as_ref().map_or(1.0, |s| s.lambda) * rescaled.unwrap_or(1.0);
        let change = last.as_ref().map_or(0.0, |s| s.dw_l1 + s.db_l1) * rescaled.unwrap_or(1.0);
        let norm0 = w0
            .iter()
            .chain(&b0)
            .map(|v| v.abs())
            .sum::<f64>()
            .max(1e-12);

        // Re-check on the network as written (f32 weights).
        ctx.say("re-checking: VB of every area and of the whole region, PGD");
        let rt = Instant::now();
        let after = with_last_layer(net, wid, &w, &b, outputs)?;
        let (items, reports) = self.recheck_report(
            &after,
            &areas,
            &cover_areas,
            &split,
            &Measured {
                names: &names,
                props: &props,
                eval: &eval,
                before: &before,
            },
            &Change {
                scale_aware,
                lambda,
                relative_change: change / norm0,
                rescaled,
            },
            &mut iterations,
        )?;
        timings.recheck_s = rt.elapsed().as_secs_f64() + verify_before_s;
        let proved = items.iter().all(|i| i.status == ItemStatus::Repaired);
        let status = match (&limit, proved) {
            (_, true) => RepairStatus::Proved,
            (Some(_), false) if !solved_once && !scale_aware => RepairStatus::Limit,
            _ => RepairStatus::Unconfirmed,
        };
        let g = &reports[0];
        let how = if !scale_aware {
            String::new()
        } else if g.relative_change == 0.0 {
            format!(
                "; the last layer was only rescaled (x{:.4}): every decision is unchanged, and eps on the {} holds because the logits shrank (docs/reglo.md: what the proof means)",
                g.lambda, g.measure
            )
        } else {
            format!(
                "; new last layer = {:.4} x original + a change of {:.1}% of its L1 norm{}",
                g.lambda,
                100.0 * g.relative_change,
                g.rescaled.map_or(String::new(), |r| format!(
                    ", shrunk x{r:.4} to hold over the whole region"
                ))
            )
        };
        let message = match (&limit, solved_once) {
            (Some(why), false) if !scale_aware => {
                format!("the repair LP gave no solution ({why}); network unchanged")
            }
            _ if !solved_once && !scale_aware => format!(
                "the search found no violation; network unchanged (VB {:.4}, eps {})",
                g.vb_after, g.eps
            ),
            _ => format!(
                "{}: VB {:.4} -> {:.4}, PGD-B {:.4} -> {:.4}, PGD-R {:.1}% -> {:.1}% (eps {} on the {}); {} of {} areas proved{}{how}{}",
                g.kind,
                g.vb_before,
                g.vb_after,
                g.pgd_b_before,
                g.pgd_b_after,
                100.0 * g.pgd_r_before,
                100.0 * g.pgd_r_after,
                g.eps,
                g.measure,
                g.areas_proved,
                g.areas,
                if proved { "; proved over the whole region" } else { "" },
                limit.as_ref().map_or(String::new(), |why| format!(" (the repair LP gave no solution: {why})"))
            ),
        };
        let last = net.nodes().len() - 1;
        let keep = crate::recheck::keep_report(net, &after, &problem.keep, &ctx.check)?;
        let mut out = RepairOutcome::new(
            net,
            after,
            self.name(),
            EditedLayer::Node(last),
            status,
            message,
            items,
            started,
        )?;
        out.timings = timings;
        out.lp = lps;
        out.keep = keep;
        out.details = Some(MethodDetails::Global(reports));
        Ok(out)
    }
}

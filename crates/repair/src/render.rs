//! The outcome as text for people (what `netrepair repair` prints).

use std::fmt::Write as _;

use crate::outcome::{ItemStatus, LayerSearchReport, RepairOutcome};

/// `writeln!` into a `String` (which cannot fail).
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

impl RepairOutcome {
    /// The outcome for people, as `netrepair repair` prints it: the layer ranking (when every
    /// layer was ranked on a validation slice), the verdict and where, each item (up to 20),
    /// the parameter change, the LPs, notes, the global metrics and rounds (REGLO), the warm
    /// start when there was one, the training (gradient methods), and the time. `affine` is the network's
    /// count of affine layers (for "affine layer k of n").
    pub fn summary(&self, affine: usize) -> String {
        let r = self;
        let mut out = String::new();
        if let Some(search) = &r.layer_search {
            ranking(&mut out, search);
        }
        let verdict = if r.proved { "PROVED" } else { "NOT PROVED" };
        match r.layer_index {
            Some(k) => w!(
                out,
                "{} at layer '{}' (affine layer {k} of {affine}): {verdict}: {}",
                r.method,
                r.layer,
                r.message
            ),
            None => w!(out, "{} (all layers): {verdict}: {}", r.method, r.message),
        }
        w!(
            out,
            "items: {} repaired, {} failed, {} unconfirmed",
            r.count(ItemStatus::Repaired),
            r.count(ItemStatus::Failed),
            r.count(ItemStatus::Unconfirmed)
        );
        if r.items.len() <= 20 {
            w!(
                out,
                "  {:>4} {:<9} {:<12} {:>7} {:>10}  detail",
                "#",
                "kind",
                "status",
                "before",
                "margin"
            );
            for i in &r.items {
                w!(
                    out,
                    "  {:>4} {:<9} {:<12} {:>7} {:>10}  {}",
                    i.index,
                    i.kind,
                    format!("{:?}", i.status).to_lowercase(),
                    i.held_before
                        .map_or("-".into(), |b| if b { "ok" } else { "wrong" }.to_string()),
                    i.margin.map_or("-".into(), |m| format!("{m:.2e}")),
                    i.detail
                );
            }
        }
        let d = &r.param_delta;
        w!(
            out,
            "parameter change: L1 {:.4e}, Linf {:.4e}, {} entries changed",
            d.l1,
            d.linf,
            d.changed
        );
        for p in &d.params {
            w!(
                out,
                "  {:<28} {:>8}/{:<8} L1 {:.3e}  Linf {:.3e}",
                p.param,
                p.changed,
                p.entries,
                p.l1,
                p.linf
            );
        }
        for l in &r.lp {
            let objective = l.objective.map(|o| format!(" {o:.9}")).unwrap_or_default();
            w!(out,
            "LP {}: {} rows, {} columns, {} nonzeros; build {:.2} s, solve {:.2} s: {}{objective}",
            l.purpose, l.rows, l.cols, l.nonzeros, l.build_s, l.solve_s, l.outcome
        );
        }
        for n in &r.notes {
            w!(out, "note: {n}");
        }
        for g in r.global() {
            w!(out,
            "{} (eps {}): VB {:.4} -> {:.4}   PGD-B {:.4} -> {:.4}   PGD-R {:.1}% -> {:.1}% ({} points)",
            g.kind,
            g.eps,
            g.vb_before,
            g.vb_after,
            g.pgd_b_before,
            g.pgd_b_after,
            100.0 * g.pgd_r_before,
            100.0 * g.pgd_r_after,
            g.points
        );
            w!(
                out,
                "  repair areas: {} ({} proved by the verifier)",
                g.areas,
                g.areas_proved
            );
            for it in &g.iterations {
                w!(out,
                "  round {}: {} points searched, {} pass the gradient test, {} violate; {} new areas, {} in the LP{}",
                it.iteration,
                it.searched,
                it.flagged,
                it.violating,
                it.new_areas,
                it.areas,
                it.objective.map_or(String::new(), |o| format!(", |dW| = {o:.4}"))
            );
            }
        }
        if let Some(w) = &r.warm_start {
            w!(
                out,
                "warm start: {} steps on {} training samples ({:.2}% -> {:.2}% of them right), {} of {} points met after ({} before), {:.1} s",
                w.steps,
                w.train_samples,
                100.0 * w.train_accuracy_before,
                100.0 * w.train_accuracy_after,
                w.met_after,
                w.points,
                w.met_before,
                w.seconds
            );
        }
        if let Some(t) = r.training() {
            w!(out,
            "training: {} steps{}, {:.1}% of the parameters frozen per step on average; correct set {} of {} right (before: {})",
            t.iterations,
            if t.converged { "" } else { " (the iteration limit)" },
            100.0 * t.mean_frozen,
            t.correct_after,
            t.correct_total,
            t.correct_before
        );
            w!(
                out,
                "time: {:.2} s (training {:.2} s, re-check {:.2} s)",
                r.time_s,
                r.timings.train_s,
                r.timings.recheck_s
            );
            return out;
        }
        let tuned = if r.timings.train_s > 0.0 {
            format!("fine-tuning {:.2} s, ", r.timings.train_s)
        } else {
            String::new()
        };
        w!(
            out,
            "time: {:.2} s ({tuned}LP build {:.2} s, solve {:.2} s, re-check {:.2} s)",
            r.time_s,
            r.timings.build_s,
            r.timings.solve_s,
            r.timings.recheck_s
        );
        out
    }
}

/// The table of a ranked layer search ([`crate::LayerSearch::Rank`]): each layer tried, the
/// kept one starred, and the layers left out for their size.
fn ranking(out: &mut String, search: &LayerSearchReport) {
    let Some(rank) = &search.ranking else {
        return;
    };
    w!(
        out,
        "every layer tried, ranked by proof, then accuracy on a validation slice of {} samples ({:.2}% before):",
        rank.validation,
        100.0 * rank.accuracy_before
    );
    for (i, t) in search.tried.iter().enumerate() {
        w!(
            out,
            "  {} {:<24} {:<12} repaired {:>5.1}%  validation {:>6.2}%  {:>7.2} s",
            if i == rank.best { "*" } else { " " },
            t.layer,
            format!("{:?}", t.status).to_lowercase(),
            100.0 * t.efficacy,
            100.0 * t.accuracy,
            t.time_s
        );
    }
    for s in &search.skipped {
        w!(
            out,
            "    {:<24} not tried: {} parameters (more than {}: its LP is too large to rank); it can still be edited on its own",
            s.layer,
            s.params,
            rank.max_params
        );
    }
}

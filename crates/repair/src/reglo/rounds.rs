//! REGLO's rounds: search the regions for violations, bound an area around each, and solve the
//! repair LP over every area so far, until a search finds nothing new or `max_iters`.

use std::time::Instant;

use netrepair_spec::{BoxRegion, GlobalProperty};
use netrepair_verify::Chain;

use super::areas::Area;
use super::lp::{LpInput, Solved};
use super::params::{Reglo, RegloObjective};
use crate::error::Result;
use crate::outcome::{LpReport, RegloIteration};
use crate::RepairContext;
use netrepair_nn::Network;

/// What every round's LP starts from: the kept points (last hidden layer, original outputs)
/// and the original last layer.
pub(super) struct LpBase<'a> {
    pub keep: &'a [(Vec<f64>, Vec<f64>)],
    pub w0: &'a [f64],
    pub b0: &'a [f64],
}

/// What the rounds found and the last LP gave.
pub(super) struct Rounds {
    /// Every area, the cover's first (per property: `cover_areas[p]` of them).
    pub areas: Vec<Area>,
    pub cover_areas: Vec<usize>,
    /// The last layer after the last solved LP (the original when none was solved).
    pub w: Vec<f64>,
    pub b: Vec<f64>,
    /// The last solved LP.
    pub last: Option<Solved>,
    /// Per property, what each round did.
    pub iterations: Vec<Vec<RegloIteration>>,
    /// Every LP solved.
    pub lps: Vec<LpReport>,
    /// Why the last LP gave no solution, if it did not.
    pub limit: Option<String>,
    pub solved_once: bool,
    /// LP build and solve seconds in all.
    pub build_s: f64,
    pub solve_s: f64,
}

impl Reglo {
    /// The rounds (see the module documentation) on `net` (as `chain`) for `props`.
    pub(super) fn rounds(
        &self,
        net: &Network,
        chain: &Chain,
        props: &[&GlobalProperty],
        base: &LpBase,
        ctx: &RepairContext,
    ) -> Result<Rounds> {
        let (outputs, hidden) = (chain.output_len(), chain.hidden_len());
        let (mut build_s, mut solve_s) = (0.0, 0.0);
        let (w0, b0) = (base.w0, base.b0);
        // Areas, the cover first.
        let mut areas: Vec<Area> = Vec::new();
        let mut cover_areas = vec![0usize; props.len()];
        if self.cover > 0 {
            for (p, prop) in props.iter().enumerate() {
                let boxes = Self::cover_boxes(prop, self.cover);
                cover_areas[p] = boxes.len();
                areas.extend(self.bound_areas(net, chain, p, prop, boxes)?);
            }
        }
        let mut w = w0.to_vec();
        let mut b = b0.to_vec();
        let mut last: Option<Solved> = None;
        let mut current = chain.clone();
        let mut iterations: Vec<Vec<RegloIteration>> = vec![Vec::new(); props.len()];
        let mut lps = Vec::new();
        let mut limit: Option<String> = None;
        let mut solved_once = false;
        for round in 1..=self.max_iters {
            let t = Instant::now();
            ctx.say(&format!("round {round}: searching for violations"));
            let mut added = 0;
            let mut stats = Vec::new();
            for (p, prop) in props.iter().enumerate() {
                let taken: Vec<&BoxRegion> = areas
                    .iter()
                    .filter(|a| a.prop == p)
                    .map(|a| &a.region)
                    .collect();
                let seed = self.seed.wrapping_add(7919 * round as u64 + p as u64);
                let (searched, flagged, violating, centres) =
                    self.search(&current, prop, &taken, seed);
                let new: Vec<BoxRegion> =
                    centres.iter().map(|c| self.area_around(prop, c)).collect();
                let bounded = self.bound_areas(net, chain, p, prop, new)?;
                added += bounded.len();
                stats.push((searched, flagged, violating, bounded.len()));
                areas.extend(bounded);
            }
            let nothing_new = added == 0 && (solved_once || areas.is_empty());
            let mut objective = None;
            if !nothing_new {
                ctx.say(&format!(
                    "round {round}: repair LP over {} areas",
                    areas.len()
                ));
                let lp = LpInput {
                    areas: &areas,
                    props,
                    keep: base.keep,
                    w0: base.w0,
                    b0: base.b0,
                    outputs,
                    hidden,
                };
                let (res, report) = match self.objective {
                    RegloObjective::Scale { kappa } => self.solve_scale(&lp, kappa, round, ctx)?,
                    RegloObjective::MinChange => self.solve(&lp, round, ctx)?,
                };
                build_s += report.build_s;
                solve_s += report.solve_s;
                let outcome = report.outcome.clone();
                lps.push(report);
                match res {
                    Some(sol) => {
                        w = sol.w.clone();
                        b = sol.b.clone();
                        current = chain.with_last_weight(w.clone());
                        objective = Some(sol.objective);
                        solved_once = true;
                        last = Some(sol);
                    }
                    None => limit = Some(outcome),
                }
            }
            for (p, (searched, flagged, violating, new_areas)) in stats.into_iter().enumerate() {
                iterations[p].push(RegloIteration {
                    iteration: round,
                    searched,
                    flagged,
                    violating,
                    new_areas,
                    areas: areas.iter().filter(|a| a.prop == p).count(),
                    objective,
                    seconds: t.elapsed().as_secs_f64(),
                });
            }
            if nothing_new || limit.is_some() {
                break;
            }
        }
        Ok(Rounds {
            areas,
            cover_areas,
            w,
            b,
            last,
            iterations,
            lps,
            limit,
            solved_once,
            build_s,
            solve_s,
        })
    }
}

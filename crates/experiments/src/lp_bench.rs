//! `bench lp`: the project's own LPs (written by `repair --dump-lp`) solved with each solver
//! strategy, side by side: size, status, objective, iterations, read and solve time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use netrepair_lp::{solve_file, FileSolution, Method, Outcome, SolveOptions, SolveStats};
use serde::Serialize;

/// A named solver setting: `METHOD[-nox][-nopre][-tN]`, e.g. `simplex`, `ipm-nox` (interior
/// point without crossover), `pdlp`, `ipm-t2` (two threads), `simplex-nopre` (no presolve).
#[derive(Debug, Clone, PartialEq)]
pub struct LpStrategy {
    /// The name it was given.
    pub name: String,
    /// The settings it stands for (without a time limit).
    pub options: SolveOptions,
}

impl std::str::FromStr for LpStrategy {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut parts = s.split('-');
        let method: Method = parts
            .next()
            .unwrap_or_default()
            .parse()
            .with_context(|| format!("LP strategy '{s}'"))?;
        let mut options = SolveOptions {
            method,
            ..SolveOptions::default()
        };
        for p in parts {
            match p {
                "nox" => options.crossover = false,
                "nopre" => options.presolve = false,
                t if t.starts_with('t') && t[1..].parse::<usize>().is_ok_and(|n| n > 0) => {
                    options.threads = t[1..].parse()?
                }
                other => bail!(
                    "LP strategy '{s}': unknown part '{other}' (METHOD[-nox][-nopre][-tN], METHOD one of choose, simplex, ipm, pdlp)"
                ),
            }
        }
        Ok(Self {
            name: s.to_string(),
            options,
        })
    }
}

/// One LP solved with one strategy.
#[derive(Debug, Clone, Serialize)]
pub struct LpBenchRow {
    /// The LP's file name.
    pub lp: String,
    /// The strategy's name.
    pub strategy: String,
    /// Constraints.
    pub rows: usize,
    /// Variables.
    pub cols: usize,
    /// Non-zero coefficients.
    pub nonzeros: usize,
    /// "optimal", "infeasible", "limit: ...", ...
    pub status: String,
    /// The objective (the incumbent's at a limit; NaN without one).
    pub objective: f64,
    /// Relative difference from the first optimum found for this LP (by the earliest strategy
    /// in the list that reached one).
    pub rel_diff: Option<f64>,
    /// Simplex iterations.
    pub simplex_iters: i64,
    /// Interior-point iterations.
    pub ipm_iters: i64,
    /// PDLP iterations.
    pub pdlp_iters: i64,
    /// Crossover iterations.
    pub crossover_iters: i64,
    /// Seconds reading the file.
    pub read_s: f64,
    /// Seconds solving.
    pub solve_s: f64,
}

/// The LP files of `paths`: files as given, folders by their `.mps` and `.lp` files (in
/// subfolders too, as `repair --dump-lp` and `bench reglo --dump-lp` write them), sorted.
pub fn lp_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut here: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list '{}'", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        here.sort();
        for p in here {
            if p.is_dir() {
                walk(&p, out)?;
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("mps" | "lp")) {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("no LP file or folder at '{}'", p.display());
        }
    }
    if out.is_empty() {
        bail!("no .mps or .lp files in {paths:?} (write some with `netrepair repair ... --dump-lp DIR`)");
    }
    Ok(out)
}

/// Solves every file with every strategy (`limit`: each solve's time limit); `progress` is
/// told each result as it comes.
pub fn bench_lps(
    files: &[PathBuf],
    strategies: &[LpStrategy],
    limit: Option<Duration>,
    mut progress: impl FnMut(&LpBenchRow),
) -> Result<Vec<LpBenchRow>> {
    let mut rows = Vec::new();
    for f in files {
        let mut first: Option<f64> = None;
        for s in strategies {
            let opts = SolveOptions {
                time_limit: limit,
                ..s.options.clone()
            };
            let sol = match solve_file(f, &opts) {
                Ok(sol) => sol,
                // A solver failure is a result of the strategy, not the end of the table.
                Err(e) => FileSolution {
                    outcome: Outcome::Failed(e.to_string()),
                    objective: f64::NAN,
                    stats: SolveStats::default(),
                },
            };
            let optimal = matches!(sol.outcome, Outcome::Optimal { .. });
            if first.is_none() && optimal {
                first = Some(sol.objective);
            }
            let rel_diff = first
                .filter(|_| optimal)
                .map(|o| (sol.objective - o).abs() / o.abs().max(1.0));
            let it = sol.stats.iterations;
            let row = LpBenchRow {
                lp: name_of(f),
                strategy: s.name.clone(),
                rows: sol.stats.rows,
                cols: sol.stats.cols,
                nonzeros: sol.stats.nonzeros,
                status: sol.outcome.describe(),
                objective: sol.objective,
                rel_diff,
                simplex_iters: it.simplex,
                ipm_iters: it.ipm,
                pdlp_iters: it.pdlp,
                crossover_iters: it.crossover,
                read_s: sol.stats.build_s,
                solve_s: sol.stats.solve_s,
            };
            progress(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

fn name_of(f: &Path) -> String {
    let parent = f
        .parent()
        .and_then(|p| p.file_name())
        .map(|p| format!("{}/", p.to_string_lossy()))
        .unwrap_or_default();
    format!(
        "{parent}{}",
        f.file_name().unwrap_or_default().to_string_lossy()
    )
}

/// The rows as a Markdown table.
pub fn markdown(rows: &[LpBenchRow]) -> String {
    let mut s = String::from(
        "| LP | rows | columns | nonzeros | strategy | status | objective | rel. diff. | iterations (simplex / ipm / pdlp / crossover) | read (s) | solve (s) |\n|---|---:|---:|---:|---|---|---:|---:|---|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.6e} | {} | {} / {} / {} / {} | {:.2} | {:.2} |\n",
            r.lp,
            r.rows,
            r.cols,
            r.nonzeros,
            r.strategy,
            r.status,
            r.objective,
            r.rel_diff.map_or("-".into(), |d| format!("{d:.1e}")),
            r.simplex_iters,
            r.ipm_iters,
            r.pdlp_iters,
            r.crossover_iters,
            r.read_s,
            r.solve_s
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use netrepair_lp::{LpModel, Sense};

    #[test]
    fn strategies_read_by_name() {
        let s: LpStrategy = "ipm-nox-nopre-t2".parse().unwrap();
        assert_eq!(s.options.method, Method::Ipm);
        assert!(!s.options.crossover && !s.options.presolve);
        assert_eq!(s.options.threads, 2);
        let s: LpStrategy = "simplex".parse().unwrap();
        assert!(s.options.crossover && s.options.presolve && s.options.threads == 1);
        for bad in ["barrier", "ipm-fast", "ipm-t0", ""] {
            let e = bad.parse::<LpStrategy>().unwrap_err();
            assert!(format!("{e:#}").contains(&format!("'{bad}'")), "{e:#}");
        }
    }

    #[test]
    fn every_strategy_reaches_the_hand_optimum_of_written_lps() {
        let dir = std::env::temp_dir().join(format!("netrepair-lp-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // min |x - 3| + |y + 1| s.t. x + y >= 4: optimum 2.
        let mut m = LpModel::new();
        let x = m.add_var(-10.0, 10.0, 0.0);
        let y = m.add_var(-10.0, 10.0, 0.0);
        m.add_abs(&[(x, 1.0)], -3.0, 1.0);
        m.add_abs(&[(y, 1.0)], 1.0, 1.0);
        m.add_ge(&[(x, 1.0), (y, 1.0)], 4.0);
        std::fs::create_dir_all(dir.join("run0")).unwrap();
        m.write(Sense::Minimise, &dir.join("run0/001-abs.mps"))
            .unwrap();
        std::fs::write(dir.join("notes.txt"), "not an LP").unwrap();
        let files = lp_files(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        let strategies: Vec<LpStrategy> = ["simplex", "ipm", "ipm-nox", "simplex-nopre"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut seen = 0;
        let rows = bench_lps(&files, &strategies, None, |_| seen += 1).unwrap();
        assert_eq!((rows.len(), seen), (4, 4));
        for r in &rows {
            assert_eq!(r.status, "optimal", "{r:?}");
            assert!((r.objective - 2.0).abs() < 1e-6, "{r:?}");
            assert_eq!((r.rows, r.cols, r.nonzeros), (5, 4, 10));
            assert!(r.rel_diff.unwrap() < 1e-6, "{r:?}");
        }
        assert!(markdown(&rows).contains("| ipm-nox | optimal |"));
        std::fs::remove_dir_all(&dir).unwrap();
        let e = lp_files(std::slice::from_ref(&dir)).unwrap_err();
        assert!(e.to_string().contains("no LP file"), "{e}");
    }
}

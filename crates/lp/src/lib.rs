//! A thin layer over the HiGHS LP/MILP solver.
//!
//! Models are built sparse (columns with bounds and costs, rows as sparse linear expressions);
//! every solver status maps to an [`Outcome`], so a time-out or numerical trouble is never
//! mistaken for an optimum; each solve reports its size and timings.
//!
//! ```
//! use netrepair_lp::{LpModel, Outcome, Sense, SolveOptions};
//! // maximise x + y  s.t.  x + 2y <= 4,  3x + y <= 6,  x, y >= 0   (optimum 2.8 at (1.6, 1.2))
//! let mut m = LpModel::new();
//! let x = m.add_var(0.0, f64::INFINITY, 1.0);
//! let y = m.add_var(0.0, f64::INFINITY, 1.0);
//! m.add_le(&[(x, 1.0), (y, 2.0)], 4.0);
//! m.add_le(&[(x, 3.0), (y, 1.0)], 6.0);
//! let s = m.solve(Sense::Maximise, &SolveOptions::default()).unwrap();
//! let Outcome::Optimal { objective, values } = &s.outcome else { panic!() };
//! assert!((objective - 2.8).abs() < 1e-9 && (values[x.index()] - 1.6).abs() < 1e-9);
//! ```
#![deny(missing_docs)]

mod session;

use std::path::Path;
use std::time::{Duration, Instant};

use highs::RowProblem;
use thiserror::Error;

pub use highs::Sense;
pub use session::Iterations;
use session::Session;

/// Failures of the solver itself (not infeasibility, which is an [`Outcome`]).
#[derive(Debug, Error)]
pub enum LpError {
    /// HiGHS rejected the model or failed while solving.
    #[error("the LP solver failed: {0}")]
    Solver(String),
    /// A model-building mistake (NaN coefficient, empty bound range, unknown variable).
    #[error("invalid LP model: {0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, LpError>;

/// A variable of an [`LpModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var(usize);

impl Var {
    /// Column index (position in solution vectors).
    pub fn index(self) -> usize {
        self.0
    }
}

#[derive(Debug, Clone)]
struct Column {
    lower: f64,
    upper: f64,
    cost: f64,
    integer: bool,
}

#[derive(Debug, Clone)]
struct RowSpec {
    lower: f64,
    upper: f64,
    terms: Vec<(usize, f64)>,
}

/// A linear (or mixed-integer) program under construction.
#[derive(Debug, Clone, Default)]
pub struct LpModel {
    cols: Vec<Column>,
    rows: Vec<RowSpec>,
    invalid: Option<String>,
}

/// Which algorithm HiGHS uses for LPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// HiGHS decides.
    Choose,
    /// Dual simplex.
    Simplex,
    /// Interior point.
    Ipm,
    /// PDLP, HiGHS's first-order method (for very large LPs; lower accuracy).
    Pdlp,
}

impl std::str::FromStr for Method {
    type Err = LpError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "choose" => Ok(Method::Choose),
            "simplex" => Ok(Method::Simplex),
            "ipm" => Ok(Method::Ipm),
            "pdlp" => Ok(Method::Pdlp),
            other => Err(LpError::Invalid(format!(
                "unknown LP method '{other}' (choose, simplex, ipm, pdlp)"
            ))),
        }
    }
}

/// Solve settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SolveOptions {
    /// Wall-clock limit.
    pub time_limit: Option<Duration>,
    /// Solver threads.
    pub threads: usize,
    /// LP algorithm.
    pub method: Method,
    /// Relative MIP gap at which an incumbent counts as optimal.
    pub mip_rel_gap: f64,
    /// Interior point: run crossover to a vertex (basic) solution. Off, HiGHS returns the
    /// interior point's solution, which lies inside the optimal face: on LPs with many
    /// optimal solutions it spreads the change over many variables instead of pushing a few
    /// to their bounds.
    pub crossover: bool,
    /// Run HiGHS's presolve.
    pub presolve: bool,
}

impl Default for SolveOptions {
    fn default() -> Self {
        Self {
            time_limit: None,
            threads: 1,
            method: Method::Choose,
            mip_rel_gap: 1e-6,
            crossover: true,
            presolve: true,
        }
    }
}

/// How a solve ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Proven optimal (within the solver's tolerances).
    Optimal {
        /// Objective value.
        objective: f64,
        /// Value per variable.
        values: Vec<f64>,
    },
    /// No point satisfies the constraints.
    Infeasible,
    /// The objective is unbounded (or the model infeasible; HiGHS cannot tell which).
    Unbounded,
    /// A limit (time, iterations, ...) stopped the solve; the best feasible point, if any.
    Limit {
        /// Which limit.
        reason: String,
        /// Best feasible point found, if any.
        values: Option<Vec<f64>>,
    },
    /// Numerical trouble or another failure to decide.
    Failed(String),
}

impl Outcome {
    /// A short description for reports: "optimal", "infeasible", "unbounded",
    /// "limit: REASON" or "failed: WHY".
    pub fn describe(&self) -> String {
        match self {
            Outcome::Optimal { .. } => "optimal".into(),
            Outcome::Infeasible => "infeasible".into(),
            Outcome::Unbounded => "unbounded".into(),
            Outcome::Limit { reason, .. } => format!("limit: {reason}"),
            Outcome::Failed(why) => format!("failed: {why}"),
        }
    }
}

/// Size and timing of one solve.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SolveStats {
    /// Constraints.
    pub rows: usize,
    /// Variables.
    pub cols: usize,
    /// Integer variables.
    pub integers: usize,
    /// Non-zero coefficients.
    pub nonzeros: usize,
    /// Seconds spent handing the model to HiGHS.
    pub build_s: f64,
    /// Seconds spent solving.
    pub solve_s: f64,
    /// Iterations, per algorithm.
    pub iterations: Iterations,
    /// For a model with integer variables: the best bound on the optimum that the branch and
    /// bound proved (an upper bound when maximising), also when a limit stopped it; `None` for
    /// LPs or when HiGHS has none.
    pub dual_bound: Option<f64>,
}

/// The outcome of a solve with its statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// How it ended.
    pub outcome: Outcome,
    /// Size and time.
    pub stats: SolveStats,
    /// At an LP optimum, each column's reduced cost (HiGHS's column dual; for a minimisation
    /// `cost - a^T y`), also of fixed columns, which presolve removes: what column generation
    /// prices with. Empty for other outcomes and for MILPs.
    pub reduced_costs: Vec<f64>,
}

impl LpModel {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok && self.invalid.is_none() {
            self.invalid = Some(what());
        }
    }

    /// A continuous variable in `[lower, upper]` (infinite bounds allowed) with objective cost.
    pub fn add_var(&mut self, lower: f64, upper: f64, cost: f64) -> Var {
        let index = self.cols.len();
        self.check(
            !lower.is_nan() && !upper.is_nan() && lower <= upper && cost.is_finite(),
            || format!("variable {index} has bounds [{lower}, {upper}] and cost {cost}"),
        );
        self.cols.push(Column {
            lower,
            upper,
            cost,
            integer: false,
        });
        Var(self.cols.len() - 1)
    }

    /// Sets the objective cost of `v` (e.g. once a normalisation is known).
    pub fn set_cost(&mut self, v: Var, cost: f64) {
        let ok = v.0 < self.cols.len() && cost.is_finite();
        self.check(ok, || format!("cost {cost} for variable {}", v.0));
        if ok {
            self.cols[v.0].cost = cost;
        }
    }

    /// A binary (0/1) variable.
    pub fn add_binary(&mut self) -> Var {
        self.cols.push(Column {
            lower: 0.0,
            upper: 1.0,
            cost: 0.0,
            integer: true,
        });
        Var(self.cols.len() - 1)
    }

    /// `lower <= sum coef * var <= upper`.
    pub fn add_row(&mut self, lower: f64, upper: f64, terms: &[(Var, f64)]) {
        let n = self.cols.len();
        let bad = terms
            .iter()
            .find(|(v, c)| v.0 >= n || !c.is_finite())
            .copied();
        let index = self.rows.len();
        self.check(
            bad.is_none() && !lower.is_nan() && !upper.is_nan() && lower <= upper,
            || format!("row {index} has range [{lower}, {upper}] or a bad term {bad:?}"),
        );
        self.rows.push(RowSpec {
            lower,
            upper,
            terms: terms.iter().map(|(v, c)| (v.0, *c)).collect(),
        });
    }

    /// `sum coef * var <= rhs`.
    pub fn add_le(&mut self, terms: &[(Var, f64)], rhs: f64) {
        self.add_row(f64::NEG_INFINITY, rhs, terms);
    }

    /// `sum coef * var >= rhs`.
    pub fn add_ge(&mut self, terms: &[(Var, f64)], rhs: f64) {
        self.add_row(rhs, f64::INFINITY, terms);
    }

    /// `sum coef * var == rhs`.
    pub fn add_eq(&mut self, terms: &[(Var, f64)], rhs: f64) {
        self.add_row(rhs, rhs, terms);
    }

    /// A new variable `t >= |sum coef * var + constant|` (two rows), with objective cost
    /// `cost`: minimising it gives the absolute value (L1 and L-inf norms are built from these).
    pub fn add_abs(&mut self, terms: &[(Var, f64)], constant: f64, cost: f64) -> Var {
        let t = self.add_var(0.0, f64::INFINITY, cost);
        let mut plus: Vec<(Var, f64)> = terms.to_vec();
        plus.push((t, -1.0));
        self.add_le(&plus, -constant);
        let mut minus: Vec<(Var, f64)> = terms.iter().map(|&(v, c)| (v, -c)).collect();
        minus.push((t, -1.0));
        self.add_le(&minus, constant);
        t
    }

    /// Number of variables.
    pub fn num_vars(&self) -> usize {
        self.cols.len()
    }

    /// Number of constraints.
    pub fn num_rows(&self) -> usize {
        self.rows.len()
    }

    /// Hands the model to HiGHS.
    fn to_highs(&self, sense: Sense) -> Result<highs::Model> {
        if let Some(why) = &self.invalid {
            return Err(LpError::Invalid(why.clone()));
        }
        let mut pb = RowProblem::new();
        let cols: Vec<highs::Col> = self
            .cols
            .iter()
            .map(|c| {
                if c.integer {
                    pb.add_integer_column(c.cost, c.lower..=c.upper)
                } else {
                    pb.add_column(c.cost, c.lower..=c.upper)
                }
            })
            .collect();
        for r in &self.rows {
            pb.add_row(
                r.lower..=r.upper,
                r.terms.iter().map(|&(j, c)| (cols[j], c)),
            );
        }
        let mut model = pb
            .try_optimise(sense)
            .map_err(|s| LpError::Solver(format!("{s:?}")))?;
        model.make_quiet();
        Ok(model)
    }

    /// Writes the model to `path` in the format its extension names (`.mps`, or `.lp` for
    /// CPLEX LP format), as HiGHS writes it: the way to keep a repair's LP as a benchmark
    /// instance or hand it to another solver.
    pub fn write(&self, sense: Sense, path: &Path) -> Result<()> {
        let mut model = self.to_highs(sense)?;
        Session::borrow(model.as_mut_ptr()).write(path)
    }

    /// Solves the model.
    pub fn solve(&self, sense: Sense, opts: &SolveOptions) -> Result<Solution> {
        let start = Instant::now();
        let mut model = self.to_highs(sense)?;
        let session = Session::borrow(model.as_mut_ptr());
        let build_s = start.elapsed().as_secs_f64();
        let (outcome, iterations) = solve_session(&session, opts, true)?;
        let nonzeros = self.rows.iter().map(|r| r.terms.len()).sum();
        let integers = self.cols.iter().filter(|c| c.integer).count();
        let dual_bound = (integers > 0).then(|| session.mip_dual_bound()).flatten();
        let reduced_costs = if integers == 0 && matches!(outcome, Outcome::Optimal { .. }) {
            session.reduced_costs()
        } else {
            Vec::new()
        };
        Ok(Solution {
            reduced_costs,
            outcome,
            stats: SolveStats {
                rows: self.rows.len(),
                cols: self.cols.len(),
                integers,
                nonzeros,
                build_s,
                solve_s: start.elapsed().as_secs_f64() - build_s,
                iterations,
                dual_bound,
            },
        })
    }
}

/// Solves with `opts`; a run that ends without a definite answer, or with HiGHS giving up in
/// error, is solved again with the other algorithm: the simplex after an interior point (which
/// cannot tell on some infeasible LPs, with or without crossover), the interior point with
/// crossover after the simplex (which can stall on badly scaled LPs, e.g. two repair points
/// 1e-9 apart).
fn solve_session(
    session: &Session,
    opts: &SolveOptions,
    values: bool,
) -> Result<(Outcome, Iterations)> {
    session.configure(opts)?;
    let (outcome, iterations) = session.run(values)?;
    if !session.undecided() && !matches!(outcome, Outcome::Failed(_)) {
        return Ok((outcome, iterations));
    }
    let method = match opts.method {
        Method::Ipm | Method::Pdlp => Method::Simplex,
        Method::Choose | Method::Simplex => Method::Ipm,
    };
    session.clear_solution();
    session.configure(&SolveOptions {
        crossover: true,
        method,
        ..opts.clone()
    })?;
    let (outcome, more) = session.run(values)?;
    Ok((outcome, iterations + more))
}

/// The result of [`solve_file`]: how it ended, the objective, size and time.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSolution {
    /// How it ended (optimal outcomes carry no values: a file's LP is solved for its figures).
    pub outcome: Outcome,
    /// The objective value (of the incumbent, for limits).
    pub objective: f64,
    /// Size, read time (as `build_s`) and solve time.
    pub stats: SolveStats,
}

/// Reads an LP (MPS or CPLEX LP format, by extension; e.g. one written by [`LpModel::write`])
/// and solves it with `opts`: how `bench lp` compares solver settings on the project's LPs.
///
/// HiGHS keeps one thread pool per process and rejects a solve whose `threads` differs from
/// it; this restarts the pool first, so call it only while no other solve runs.
pub fn solve_file(path: &Path, opts: &SolveOptions) -> Result<FileSolution> {
    Session::reset_thread_pool();
    let start = Instant::now();
    let session = Session::read(path)?;
    let build_s = start.elapsed().as_secs_f64();
    let (outcome, iterations) = solve_session(&session, opts, false)?;
    let (cols, rows, nonzeros) = session.size();
    Ok(FileSolution {
        objective: session.objective(),
        outcome,
        stats: SolveStats {
            rows,
            cols,
            integers: 0,
            nonzeros,
            build_s,
            solve_s: start.elapsed().as_secs_f64() - build_s,
            iterations,
            dual_bound: None,
        },
    })
}

//! One HiGHS instance at the C API: options, solve, outcome and statistics, and model files.
//!
//! The `highs` crate builds models; everything after that goes through here, so that a model
//! built in memory and one read from a file (`bench lp`) are solved by the same code.

use std::ffi::{c_void, CString};
use std::path::Path;

use highs::HighsModelStatus;
use highs_sys as ffi;

use crate::{LpError, Method, Outcome, Result, SolveOptions};

/// Iterations of one solve, per algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Iterations {
    /// Simplex iterations (including the simplex cleanup after crossover).
    pub simplex: i64,
    /// Interior-point iterations.
    pub ipm: i64,
    /// PDLP (first-order) iterations.
    pub pdlp: i64,
    /// Crossover iterations.
    pub crossover: i64,
}

impl std::ops::Add for Iterations {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            simplex: self.simplex + other.simplex,
            ipm: self.ipm + other.ipm,
            pdlp: self.pdlp + other.pdlp,
            crossover: self.crossover + other.crossover,
        }
    }
}

/// A HiGHS instance: borrowed from a `highs::Model` or owned (created here, destroyed on drop).
pub(crate) struct Session {
    ptr: *mut c_void,
    owned: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: `ptr` came from `Highs_create` and is destroyed once.
            unsafe { ffi::Highs_destroy(self.ptr) };
        }
    }
}

fn c_string(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| LpError::Solver(format!("'{s}' holds a NUL byte")))
}

fn check(status: ffi::HighsInt, what: &str) -> Result<()> {
    if status == ffi::STATUS_ERROR {
        Err(LpError::Solver(format!("HiGHS could not {what}")))
    } else {
        Ok(())
    }
}

impl Session {
    /// Restarts HiGHS's process-wide thread pool, so that the next solve's `threads` option
    /// takes effect (HiGHS refuses a thread count other than the pool's). Only for callers
    /// that run one solve at a time.
    pub(crate) fn reset_thread_pool() {
        // SAFETY: no argument to get wrong; blocking until the old pool's workers exit.
        unsafe { ffi::Highs_resetGlobalScheduler(1) };
    }

    /// Borrows the instance behind `ptr` (a live `highs::Model`'s).
    pub(crate) fn borrow(ptr: *mut c_void) -> Self {
        Self { ptr, owned: false }
    }

    /// A new instance holding the model read from `path` (MPS or CPLEX LP, by extension).
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let name = c_string(&path.to_string_lossy())?;
        // SAFETY: a fresh instance, owned (and destroyed) by the returned session.
        let s = Self {
            ptr: unsafe { ffi::Highs_create() },
            owned: true,
        };
        s.set_bool("output_flag", false)?;
        // SAFETY: `name` outlives the call.
        let status = unsafe { ffi::Highs_readModel(s.ptr, name.as_ptr()) };
        check(status, &format!("read an LP from '{}'", path.display()))?;
        Ok(s)
    }

    /// Writes the model (MPS or CPLEX LP, by the extension of `path`).
    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        let name = c_string(&path.to_string_lossy())?;
        // SAFETY: `name` outlives the call.
        let status = unsafe { ffi::Highs_writeModel(self.ptr, name.as_ptr()) };
        check(status, &format!("write the LP to '{}'", path.display()))
    }

    fn set_bool(&self, key: &str, v: bool) -> Result<()> {
        let k = c_string(key)?;
        // SAFETY: `k` outlives the call.
        let s =
            unsafe { ffi::Highs_setBoolOptionValue(self.ptr, k.as_ptr(), ffi::HighsInt::from(v)) };
        check(s, &format!("set {key}"))
    }

    fn set_int(&self, key: &str, v: i64) -> Result<()> {
        let k = c_string(key)?;
        let v = ffi::HighsInt::try_from(v).unwrap_or(ffi::HighsInt::MAX);
        // SAFETY: `k` outlives the call.
        let s = unsafe { ffi::Highs_setIntOptionValue(self.ptr, k.as_ptr(), v) };
        check(s, &format!("set {key}"))
    }

    fn set_double(&self, key: &str, v: f64) -> Result<()> {
        let k = c_string(key)?;
        // SAFETY: `k` outlives the call.
        let s = unsafe { ffi::Highs_setDoubleOptionValue(self.ptr, k.as_ptr(), v) };
        check(s, &format!("set {key}"))
    }

    fn set_string(&self, key: &str, v: &str) -> Result<()> {
        let (k, v) = (c_string(key)?, c_string(v)?);
        // SAFETY: both strings outlive the call.
        let s = unsafe { ffi::Highs_setStringOptionValue(self.ptr, k.as_ptr(), v.as_ptr()) };
        check(s, &format!("set {key}"))
    }

    fn int_info(&self, key: &str) -> i64 {
        let Ok(k) = c_string(key) else { return 0 };
        let mut v: ffi::HighsInt = 0;
        // SAFETY: `k` and `v` outlive the call.
        let s = unsafe { ffi::Highs_getIntInfoValue(self.ptr, k.as_ptr(), &mut v) };
        if s == ffi::STATUS_ERROR {
            0
        } else {
            i64::from(v)
        }
    }

    /// The MIP dual bound of the last solve, if HiGHS has a finite one.
    pub(crate) fn mip_dual_bound(&self) -> Option<f64> {
        let k = c_string("mip_dual_bound").ok()?;
        let mut v = 0.0;
        // SAFETY: `k` and `v` outlive the call.
        let s = unsafe { ffi::Highs_getDoubleInfoValue(self.ptr, k.as_ptr(), &mut v) };
        (s != ffi::STATUS_ERROR && v.is_finite()).then_some(v)
    }

    /// Applies `opts` (quiet output, threads, time limit, algorithm, crossover, presolve).
    pub(crate) fn configure(&self, opts: &SolveOptions) -> Result<()> {
        self.set_bool("output_flag", false)?;
        self.set_int("threads", opts.threads.max(1) as i64)?;
        if let Some(t) = opts.time_limit {
            self.set_double("time_limit", t.as_secs_f64().max(1e-3))?;
        }
        self.set_double("mip_rel_gap", opts.mip_rel_gap)?;
        self.set_string("solver", opts.method.highs_name())?;
        self.set_string("run_crossover", if opts.crossover { "on" } else { "off" })?;
        self.set_string("presolve", if opts.presolve { "on" } else { "off" })
    }

    /// Solves with the options last configured; `values` asks for the primal point.
    pub(crate) fn run(&self, values: bool) -> Result<(Outcome, Iterations)> {
        // SAFETY: a live instance.
        let run_status = unsafe { ffi::Highs_run(self.ptr) };
        // SAFETY: a live instance.
        let raw = unsafe { ffi::Highs_getModelStatus(self.ptr) };
        let status = HighsModelStatus::try_from(raw)
            .map_err(|_| LpError::Solver(format!("unknown HiGHS model status {raw}")))?;
        let iterations = Iterations {
            simplex: self.int_info("simplex_iteration_count"),
            ipm: self.int_info("ipm_iteration_count"),
            pdlp: self.int_info("pdlp_iteration_count"),
            crossover: self.int_info("crossover_iteration_count"),
        };
        if run_status == ffi::STATUS_ERROR {
            // HiGHS gives up on some numerically hard LPs with an error (a solve error in
            // the interior point or its crossover): an outcome of this LP, which the caller
            // may retry with the other algorithm, not a failure of the program.
            return Ok((
                Outcome::Failed(format!(
                    "HiGHS stopped with an error (model status {status:?})"
                )),
                iterations,
            ));
        }
        let has_point =
            || self.int_info("primal_solution_status") == i64::from(ffi::SOLUTION_STATUS_FEASIBLE);
        let point = || if values { self.point() } else { Vec::new() };
        let outcome = match status {
            HighsModelStatus::Optimal => Outcome::Optimal {
                // SAFETY: a live instance.
                objective: unsafe { ffi::Highs_getObjectiveValue(self.ptr) },
                values: point(),
            },
            HighsModelStatus::Infeasible => Outcome::Infeasible,
            HighsModelStatus::Unbounded | HighsModelStatus::UnboundedOrInfeasible => {
                Outcome::Unbounded
            }
            s @ (HighsModelStatus::ReachedTimeLimit
            | HighsModelStatus::ReachedIterationLimit
            | HighsModelStatus::ReachedSolutionLimit
            | HighsModelStatus::ReachedInterrupt
            | HighsModelStatus::ReachedMemoryLimit
            | HighsModelStatus::ObjectiveBound
            | HighsModelStatus::ObjectiveTarget
            // An interior point without crossover can end here with a usable point.
            | HighsModelStatus::Unknown) => Outcome::Limit {
                reason: format!("{s:?}"),
                values: has_point().then(point),
            },
            s => Outcome::Failed(format!("{s:?}")),
        };
        Ok((outcome, iterations))
    }

    /// The objective of the last solve (an incumbent's for limits).
    pub(crate) fn objective(&self) -> f64 {
        // SAFETY: a live instance.
        unsafe { ffi::Highs_getObjectiveValue(self.ptr) }
    }

    /// Whether the last solve ended with HiGHS unable to tell (an interior point without
    /// crossover on an infeasible LP, for one).
    pub(crate) fn undecided(&self) -> bool {
        // SAFETY: a live instance.
        let status = unsafe { ffi::Highs_getModelStatus(self.ptr) };
        status == ffi::MODEL_STATUS_UNKNOWN
    }

    /// Forgets the last solution, so the next run starts afresh.
    pub(crate) fn clear_solution(&self) {
        // SAFETY: a live instance.
        unsafe { ffi::Highs_clearSolver(self.ptr) };
    }

    /// Columns, rows and nonzeros of the model held.
    pub(crate) fn size(&self) -> (usize, usize, usize) {
        // SAFETY: a live instance.
        let (c, r, n) = unsafe {
            (
                ffi::Highs_getNumCol(self.ptr),
                ffi::Highs_getNumRow(self.ptr),
                ffi::Highs_getNumNz(self.ptr),
            )
        };
        (c.max(0) as usize, r.max(0) as usize, n.max(0) as usize)
    }

    fn point(&self) -> Vec<f64> {
        self.solution().0
    }

    /// The reduced cost of every column in the last solution (HiGHS's column duals: for a
    /// minimisation, `cost - a^T y`), also of columns presolve removed.
    pub(crate) fn reduced_costs(&self) -> Vec<f64> {
        self.solution().1
    }

    fn solution(&self) -> (Vec<f64>, Vec<f64>) {
        let (cols, rows, _) = self.size();
        let mut col_value = vec![0.0; cols];
        let mut col_dual = vec![0.0; cols];
        let mut row_value = vec![0.0; rows];
        let mut row_dual = vec![0.0; rows];
        // SAFETY: each buffer has the length HiGHS writes (columns, rows).
        unsafe {
            ffi::Highs_getSolution(
                self.ptr,
                col_value.as_mut_ptr(),
                col_dual.as_mut_ptr(),
                row_value.as_mut_ptr(),
                row_dual.as_mut_ptr(),
            )
        };
        (col_value, col_dual)
    }
}

impl Method {
    fn highs_name(self) -> &'static str {
        match self {
            Method::Choose => "choose",
            Method::Simplex => "simplex",
            Method::Ipm => "ipm",
            Method::Pdlp => "pdlp",
        }
    }
}

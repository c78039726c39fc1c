//! Errors of the repair layer. An infeasible repair is not an error: it is an outcome.

use thiserror::Error;

/// What can go wrong while setting up or running a repair.
#[derive(Debug, Error)]
pub enum RepairError {
    /// From the network IR.
    #[error(transparent)]
    Nn(#[from] netrepair_nn::NnError),
    /// From the specification layer.
    #[error(transparent)]
    Spec(#[from] netrepair_spec::SpecError),
    /// From the verifier.
    #[error(transparent)]
    Verify(#[from] netrepair_verify::VerifyError),
    /// The solver failed to run (not infeasibility: that is an outcome).
    #[error(transparent)]
    Lp(#[from] netrepair_lp::LpError),
    /// The repair problem is malformed (empty, wrong sizes, NaN, labels out of range, ...).
    #[error("invalid repair problem: {0}")]
    Problem(String),
    /// The method cannot handle this network or layer choice.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An output cannot be written where asked (an existing folder, a missing directory).
    #[error("{0}")]
    Output(String),
    /// Reading or writing a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A method setting breaks one of its rules (see each method's `check`).
    #[error("invalid setting {name} = {value}: {rule}")]
    InvalidParam {
        /// The setting, as the method's field is named.
        name: &'static str,
        /// Its value, as given.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
}

/// Rules of method settings, each returning [`RepairError::InvalidParam`] when broken.
pub(crate) mod rule {
    use super::{RepairError, Result};

    fn broken(name: &'static str, value: impl ToString, rule: &'static str) -> RepairError {
        RepairError::InvalidParam {
            name,
            value: value.to_string(),
            rule,
        }
    }

    /// `v > 0` and finite.
    pub fn positive(name: &'static str, v: f64) -> Result<()> {
        if v > 0.0 && v.is_finite() {
            Ok(())
        } else {
            Err(broken(name, v, "must be positive and finite"))
        }
    }

    /// `v >= 0` and finite.
    pub fn non_negative(name: &'static str, v: f64) -> Result<()> {
        if v >= 0.0 && v.is_finite() {
            Ok(())
        } else {
            Err(broken(name, v, "must be non-negative and finite"))
        }
    }

    /// `0 <= v <= 1`.
    pub fn share(name: &'static str, v: f64) -> Result<()> {
        if (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(broken(name, v, "must lie in [0, 1]"))
        }
    }

    /// `0 <= v < 1`.
    pub fn below_one(name: &'static str, v: f64) -> Result<()> {
        if (0.0..1.0).contains(&v) {
            Ok(())
        } else {
            Err(broken(name, v, "must lie in [0, 1)"))
        }
    }

    /// `0 < v < 1`.
    pub fn open_unit(name: &'static str, v: f64) -> Result<()> {
        if v > 0.0 && v < 1.0 {
            Ok(())
        } else {
            Err(broken(name, v, "must lie in (0, 1)"))
        }
    }

    /// `0 < v <= 1`.
    pub fn unit_fraction(name: &'static str, v: f64) -> Result<()> {
        if v > 0.0 && v <= 1.0 {
            Ok(())
        } else {
            Err(broken(name, v, "must lie in (0, 1]"))
        }
    }

    /// `n >= 1`.
    pub fn at_least_one(name: &'static str, n: usize) -> Result<()> {
        if n >= 1 {
            Ok(())
        } else {
            Err(broken(name, n, "must be at least 1"))
        }
    }

    /// `v > 0` (infinity allowed: no bound), not NaN.
    pub fn positive_or_infinite(name: &'static str, v: f64) -> Result<()> {
        if v > 0.0 {
            Ok(())
        } else {
            Err(broken(
                name,
                v,
                "must be positive (or infinite for no bound)",
            ))
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, RepairError>;

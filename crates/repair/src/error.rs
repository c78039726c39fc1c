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
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, RepairError>;

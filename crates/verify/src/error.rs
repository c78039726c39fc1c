//! Errors of the verification layer.

use thiserror::Error;

/// What can go wrong while verifying.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// From the network IR.
    #[error(transparent)]
    Nn(#[from] netrepair_nn::NnError),
    /// From the specification layer.
    #[error(transparent)]
    Spec(#[from] netrepair_spec::SpecError),
    /// The LP/MILP solver failed (not infeasibility: that is an outcome).
    #[error("solver: {0}")]
    Lp(String),
    /// A network this analysis cannot handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The input region does not fit the network.
    #[error("the input box has {got} dimensions, the network takes {expected}")]
    InputSize {
        /// Network input size.
        expected: usize,
        /// Box dimensions.
        got: usize,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, VerifyError>;

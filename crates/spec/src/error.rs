//! Errors of the specification layer.

use thiserror::Error;

/// What can go wrong reading or checking a specification.
#[derive(Debug, Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Malformed VNN-LIB text, with the 1-based line where it was found.
    #[error("line {line}: {reason}")]
    Syntax {
        /// Line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Well-formed text that this tool cannot represent (mixed input/output constraints, ...).
    #[error("line {line}: unsupported: {reason}")]
    Unsupported {
        /// Line number.
        line: usize,
        /// What is not supported.
        reason: String,
    },
    /// An input box is empty or unbounded.
    #[error("invalid input box: {0}")]
    InvalidBox(String),
    /// A property that VNN-LIB cannot state (an unbounded box, an empty unsafe region, ...).
    #[error("cannot be written as VNN-LIB: {0}")]
    Unwritable(String),
    /// A malformed VNN-COMP instance list.
    #[error("{list}: {reason}")]
    InstanceList {
        /// The list file.
        list: String,
        /// What is wrong, with the line.
        reason: String,
    },
    /// The specification does not fit the network.
    #[error("specification does not fit the network: {0}")]
    Mismatch(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, SpecError>;

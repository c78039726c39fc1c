//! Errors of the data layer.

use thiserror::Error;

/// What can go wrong while loading or splitting data.
#[derive(Debug, Error)]
pub enum DataError {
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The data directory (or a data set inside it) is missing.
    #[error("data not found: {path} ({hint})")]
    Missing {
        /// The path looked for.
        path: String,
        /// What to do about it.
        hint: String,
    },
    /// A file's contents are not in the expected format.
    #[error("{path}: {reason}")]
    Format {
        /// The file concerned.
        path: String,
        /// What is wrong, with a line number where it helps.
        reason: String,
    },
    /// Invalid arguments (split sizes larger than the data set, unknown split name, ...).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DataError>;

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) fn format(path: &std::path::Path, reason: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

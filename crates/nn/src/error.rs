//! Errors of the network IR.

use thiserror::Error;

/// Everything that can go wrong while building, running, importing or exporting a network.
#[derive(Debug, Error)]
pub enum NnError {
    /// A tensor operation failed inside candle.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The bytes are not a valid ONNX protobuf (truncated, corrupt, or not ONNX at all).
    #[error("{path}: not a valid ONNX model ({reason})")]
    NotOnnx {
        /// The file concerned.
        path: String,
        /// What the decoder said.
        reason: String,
    },

    /// The graph uses operators the IR does not support; every one is listed.
    #[error("unsupported ONNX operator(s): {}", .ops.iter().map(|(op, node)| format!("{op} (node '{node}')")).collect::<Vec<_>>().join(", "))]
    UnsupportedOps {
        /// (operator type, node name) pairs.
        ops: Vec<(String, String)>,
    },

    /// An ONNX node is supported in general but not in this configuration.
    #[error("node '{node}' ({op}): {reason}")]
    UnsupportedNode {
        /// The node's name (or its output name when unnamed).
        node: String,
        /// Its operator type.
        op: String,
        /// Why it cannot be represented.
        reason: String,
    },

    /// The ONNX graph is structurally invalid (missing input, dangling reference, ...).
    #[error("invalid ONNX graph: {0}")]
    InvalidGraph(String),

    /// A parameter holds NaN or infinite values.
    #[error("parameter '{param}' of node '{node}' contains a non-finite value ({value}) at flat index {index}")]
    NonFinite {
        /// The node holding the parameter.
        node: String,
        /// The parameter's name.
        param: String,
        /// Flat index of the first offending value.
        index: usize,
        /// The value itself.
        value: f64,
    },

    /// Two shapes that must agree do not.
    #[error("shape mismatch in {context}: expected {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// Where the mismatch was found.
        context: String,
        /// The expected shape.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },

    /// A layer's configuration is invalid (kernel larger than input, zero stride, ...).
    #[error("invalid layer '{node}': {reason}")]
    InvalidLayer {
        /// The node concerned.
        node: String,
        /// What is wrong.
        reason: String,
    },

    /// No parameter or node with this name or index.
    #[error("no {what} named or numbered '{key}' in this network")]
    NotFound {
        /// "node" or "parameter".
        what: &'static str,
        /// The key looked up.
        key: String,
    },

    /// A changed parameter cannot be written back into the original ONNX graph.
    #[error("cannot export parameter '{param}': {reason}")]
    NotExportable {
        /// The parameter concerned.
        param: String,
        /// Why.
        reason: String,
    },

    /// Invalid training or optimiser settings.
    #[error("invalid training setting: {0}")]
    InvalidTraining(String),
}

impl NnError {
    /// An [`NnError::InvalidLayer`] for node `node`.
    pub(crate) fn invalid_layer(node: &str, reason: impl Into<String>) -> Self {
        NnError::InvalidLayer {
            node: node.to_string(),
            reason: reason.into(),
        }
    }
}

/// Refuses a per-sample axis outside the `rank` axes of `shape` (named in the error).
pub(crate) fn check_axis(node: &str, axis: usize, rank: usize, shape: &[usize]) -> Result<()> {
    if axis < rank {
        Ok(())
    } else {
        Err(NnError::invalid_layer(
            node,
            format!("axis {axis} is out of range for shape {shape:?}"),
        ))
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, NnError>;

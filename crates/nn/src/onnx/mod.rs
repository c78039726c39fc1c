//! ONNX in and out.
//!
//! Import builds the IR from an ONNX graph through a registry of per-operator functions
//! ([`import`]); every parameter remembers which initializer it came from and in what layout.
//! Export ([`export`]) of an imported network re-emits the original graph with only the
//! initializers of changed parameters rewritten, so the file is a drop-in replacement; a
//! network built in memory is emitted as a plain opset-13 graph.

pub mod export;
pub mod import;
#[rustfmt::skip]
pub mod proto;
mod tensor;

pub use export::{save_onnx, to_model};
pub use import::{from_model, load_onnx, load_onnx_bytes};

/// Where a parameter lives in the original graph and how its layout differs from the IR's.
#[derive(Debug, Clone)]
pub(crate) enum Binding {
    /// An initializer (or `Constant` node output) holding `scale * transpose?(ir_value)`
    /// reshaped to `dims`.
    Tensor {
        /// The tensor's location.
        source: TensorSource,
        /// Whether the stored tensor is the transpose of the IR's 2-D value.
        transpose: bool,
        /// The stored value is `ir_value / scale` (Gemm's alpha / beta).
        scale: f64,
    },
    /// A Gemm or Conv node without its optional bias input: export appends one when the bias changes.
    MissingBias {
        /// Index of the node in the graph.
        node_index: usize,
    },
    /// The value has no place in the graph (a MatMul without bias): it must stay unchanged.
    Unbound,
}

/// An initializer by name, or the `value` attribute of a `Constant` node.
#[derive(Debug, Clone)]
pub(crate) enum TensorSource {
    Initializer(String),
    ConstantNode(usize),
}

/// The ONNX graph a network was imported from, kept for drop-in export.
#[derive(Debug, Clone)]
pub struct OnnxOrigin {
    pub(crate) model: proto::ModelProto,
    /// Per parameter in canonical order.
    pub(crate) bindings: Vec<Binding>,
    /// The parameter values as imported (canonical order), to export only what changed.
    pub(crate) original: Vec<Vec<f64>>,
}

impl OnnxOrigin {
    /// The original model.
    pub fn model(&self) -> &proto::ModelProto {
        &self.model
    }

    /// Names of the original graph's nodes, in order.
    pub fn node_names(&self) -> Vec<String> {
        self.model
            .graph
            .as_ref()
            .map(|g| g.node.iter().map(|n| n.name.clone()).collect())
            .unwrap_or_default()
    }
}

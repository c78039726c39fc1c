//! The network graph: nodes in topological order, each consuming earlier values.
//!
//! Value 0 is the network input; node `i` produces value `i + 1`. The output is the value of
//! the last node. The structure is fixed once built: only parameter values can change, which
//! is what "same architecture" repair needs and what keeps ONNX export a drop-in replacement.

use std::sync::Arc;

use candle_core::Tensor;

use crate::error::{NnError, Result};
use crate::layer::{Layer, Param};
use crate::onnx::OnnxOrigin;

/// Index of a value in the graph: 0 is the input, `i + 1` the output of node `i`.
pub type ValueId = usize;

/// One node: a layer, its inputs and its inferred output shape.
#[derive(Debug, Clone)]
pub struct Node {
    name: String,
    layer: Layer,
    inputs: Vec<ValueId>,
    output_shape: Vec<usize>,
}

impl Node {
    /// The node's name (the ONNX node name, or a generated one).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The layer.
    pub fn layer(&self) -> &Layer {
        &self.layer
    }
    /// The values this node reads.
    pub fn inputs(&self) -> &[ValueId] {
        &self.inputs
    }
    /// Per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }
}

/// Address of one parameter: node index and slot within the layer's [`Layer::params`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId {
    /// Node index.
    pub node: usize,
    /// Slot within the node's parameters.
    pub slot: usize,
}

/// A feed-forward network as an ordered graph of typed layers.
#[derive(Debug, Clone)]
pub struct Network {
    input_name: String,
    output_name: String,
    input_shape: Vec<usize>,
    nodes: Vec<Node>,
    origin: Option<Arc<OnnxOrigin>>,
}

impl Network {
    /// Per-sample input shape (without the batch dimension).
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        self.nodes
            .last()
            .map(|n| n.output_shape.as_slice())
            .unwrap_or(&self.input_shape)
    }

    /// Number of scalars in one input sample.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Number of scalars in one output.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }

    /// Name of the graph input.
    pub fn input_name(&self) -> &str {
        &self.input_name
    }

    /// Name of the graph output.
    pub fn output_name(&self) -> &str {
        &self.output_name
    }

    /// The nodes in topological order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Per-sample shape of a value.
    pub fn value_shape(&self, value: ValueId) -> &[usize] {
        if value == 0 {
            &self.input_shape
        } else {
            &self.nodes[value - 1].output_shape
        }
    }

    /// For a concatenation node: for every element of its output (flat, row-major) the value
    /// it copies and its flat index there; `None` for other nodes. The bounds and the repair
    /// encodings follow these copies.
    pub fn concat_sources(&self, node: usize) -> Option<Vec<(ValueId, usize)>> {
        let n = self.nodes.get(node)?;
        let Layer::Concat { axis, .. } = n.layer() else {
            return None;
        };
        let shapes: Vec<&[usize]> = n.inputs().iter().map(|&v| self.value_shape(v)).collect();
        Some(
            crate::rearrange::concat_sources(*axis, &shapes)
                .into_iter()
                .map(|(k, j)| (n.inputs()[k], j))
                .collect(),
        )
    }

    /// Finds a node by name, or by index when `key` is a number.
    pub fn find_node(&self, key: &str) -> Result<usize> {
        if let Ok(i) = key.parse::<usize>() {
            if i < self.nodes.len() {
                return Ok(i);
            }
        }
        self.nodes
            .iter()
            .position(|n| n.name == key)
            .ok_or_else(|| NnError::NotFound {
                what: "node",
                key: key.to_string(),
            })
    }

    /// Indices of the affine (Linear / Conv2d) nodes, the candidates for repair.
    pub fn affine_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].layer.is_affine())
            .collect()
    }

    /// Every parameter's address, in canonical order (node order, then slot).
    pub fn param_ids(&self) -> Vec<ParamId> {
        self.nodes
            .iter()
            .enumerate()
            .flat_map(|(node, n)| {
                (0..n.layer.params().len()).map(move |slot| ParamId { node, slot })
            })
            .collect()
    }

    /// The parameter at `id`.
    pub fn param(&self, id: ParamId) -> Result<&Param> {
        self.nodes
            .get(id.node)
            .and_then(|n| n.layer.params().into_iter().nth(id.slot))
            .ok_or_else(|| NnError::NotFound {
                what: "parameter",
                key: format!("{}:{}", id.node, id.slot),
            })
    }

    /// Finds a parameter by name.
    pub fn find_param(&self, name: &str) -> Result<ParamId> {
        self.param_ids()
            .into_iter()
            .find(|&id| self.param(id).map(|p| p.name() == name).unwrap_or(false))
            .ok_or_else(|| NnError::NotFound {
                what: "parameter",
                key: name.to_string(),
            })
    }

    /// Whether the parameter is trained by gradient descent.
    pub fn is_trainable(&self, id: ParamId) -> bool {
        self.nodes[id.node].layer.is_trainable(id.slot)
    }

    /// Replaces a parameter's value; the shape must match and the values be finite.
    pub fn set_param(&mut self, id: ParamId, value: Tensor) -> Result<()> {
        let node = self
            .nodes
            .get_mut(id.node)
            .ok_or_else(|| NnError::NotFound {
                what: "parameter",
                key: format!("{}:{}", id.node, id.slot),
            })?;
        let name = node.name.clone();
        let param = node
            .layer
            .params_mut()
            .into_iter()
            .nth(id.slot)
            .ok_or_else(|| NnError::NotFound {
                what: "parameter",
                key: format!("{}:{}", id.node, id.slot),
            })?;
        param.replace(&name, value)
    }

    /// Total number of parameter scalars.
    pub fn param_count(&self) -> usize {
        self.nodes.iter().map(|n| n.layer.param_count()).sum()
    }

    /// The ONNX graph this network was imported from, if any.
    pub fn origin(&self) -> Option<&OnnxOrigin> {
        self.origin.as_deref()
    }

    /// The network made of its first `n` nodes (their output is the new output), as a plain
    /// network that exports as a fresh ONNX graph (not a re-emission of an imported one). For
    /// experiments that need a network without its last layers, e.g. without a ReLU on the
    /// logits as APRNN's reference repairs ERAN's networks.
    pub fn truncated(&self, n: usize) -> Result<Network> {
        if n == 0 || n > self.nodes.len() {
            return Err(NnError::InvalidGraph(format!(
                "cannot keep {n} of the network's {} nodes",
                self.nodes.len()
            )));
        }
        let mut b = NetworkBuilder::new(self.input_shape.clone());
        for node in &self.nodes[..n] {
            b.push_with_inputs(node.name.clone(), node.layer.clone(), node.inputs.clone())?;
        }
        let mut out = b.build()?;
        out.input_name = self.input_name.clone();
        Ok(out)
    }

    /// The network made of the nodes from `from` on, reading value `from` (node `from - 1`'s
    /// output) as its input: `net.head(k)` after `net.truncated(k)` computes what `net` does.
    /// An error when a node from `from` on reads an earlier value (a skip connection over the
    /// cut) or `from` is not an inner node.
    pub fn head(&self, from: usize) -> Result<Network> {
        if from == 0 || from >= self.nodes.len() {
            return Err(NnError::InvalidGraph(format!(
                "cannot cut the network's {} nodes before node {from}",
                self.nodes.len()
            )));
        }
        let mut b = NetworkBuilder::new(self.value_shape(from).to_vec());
        for node in &self.nodes[from..] {
            if let Some(&v) = node.inputs.iter().find(|&&v| v < from) {
                return Err(NnError::InvalidGraph(format!(
                    "node '{}' reads value {v}, before the cut at node {from}",
                    node.name
                )));
            }
            let inputs = node.inputs.iter().map(|&v| v - from).collect();
            b.push_with_inputs(node.name.clone(), node.layer.clone(), inputs)?;
        }
        let mut out = b.build()?;
        out.output_name = self.output_name.clone();
        Ok(out)
    }

    pub(crate) fn set_origin(&mut self, origin: OnnxOrigin) {
        self.origin = Some(Arc::new(origin));
    }

    pub(crate) fn set_io_names(&mut self, input: String, output: String) {
        self.input_name = input;
        self.output_name = output;
    }
}

/// The most elements one value of one sample may have (a guard against files that ask for
/// absurd shapes).
pub const MAX_VALUE_LEN: usize = 1 << 28;

/// Builds a [`Network`] node by node, inferring and checking shapes as it goes.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use netrepair_nn::{Layer, Linear, NetworkBuilder};
/// let mut b = NetworkBuilder::new(vec![2]);
/// let w = Tensor::zeros((3, 2), candle_core::DType::F64, &Device::Cpu).unwrap();
/// let bias = Tensor::zeros(3, candle_core::DType::F64, &Device::Cpu).unwrap();
/// b.push("fc", Layer::Linear(Linear::new("fc", w, bias).unwrap())).unwrap();
/// b.push("relu", Layer::Relu).unwrap();
/// let net = b.build().unwrap();
/// assert_eq!(net.output_shape(), &[3]);
/// ```
#[derive(Debug, Clone)]
pub struct NetworkBuilder {
    net: Network,
}

impl NetworkBuilder {
    /// Starts a network whose samples have shape `input_shape`.
    pub fn new(input_shape: Vec<usize>) -> Self {
        Self {
            net: Network {
                input_name: "input".into(),
                output_name: "output".into(),
                input_shape,
                nodes: Vec::new(),
                origin: None,
            },
        }
    }

    /// The value the next `push` will read (the latest value).
    pub fn last(&self) -> ValueId {
        self.net.nodes.len()
    }

    /// Per-sample shape of a value built so far.
    pub fn shape(&self, value: ValueId) -> &[usize] {
        self.net.value_shape(value)
    }

    /// Appends a single-input layer reading the latest value; returns the new value.
    pub fn push(&mut self, name: impl Into<String>, layer: Layer) -> Result<ValueId> {
        let last = self.last();
        self.push_with_inputs(name, layer, vec![last])
    }

    /// Appends a layer reading the given earlier values; returns the new value.
    pub fn push_with_inputs(
        &mut self,
        name: impl Into<String>,
        layer: Layer,
        inputs: Vec<ValueId>,
    ) -> Result<ValueId> {
        let name = name.into();
        let next = self.net.nodes.len() + 1;
        if let Some(&bad) = inputs.iter().find(|&&v| v >= next) {
            return Err(NnError::InvalidLayer {
                node: name,
                reason: format!("reads value {bad} that does not exist yet"),
            });
        }
        let shapes: Vec<&[usize]> = inputs.iter().map(|&v| self.net.value_shape(v)).collect();
        let output_shape = layer.output_shape(&name, &shapes)?;
        let numel = output_shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let problem = match numel {
            Some(0) => Some("is empty".to_string()),
            Some(k) if k <= MAX_VALUE_LEN => None,
            _ => Some(format!("has more than {MAX_VALUE_LEN} elements per sample")),
        };
        if let Some(p) = problem {
            return Err(NnError::InvalidLayer {
                node: name,
                reason: format!("its output {output_shape:?} {p}"),
            });
        }
        for p in layer.params() {
            crate::layer::check_finite(&name, p.name(), p.value())?;
        }
        self.net.nodes.push(Node {
            name,
            layer,
            inputs,
            output_shape,
        });
        Ok(next)
    }

    /// Finishes the network. It must have at least one node and its last node must be the
    /// only value nobody reads (a single output).
    pub fn build(self) -> Result<Network> {
        let n = self.net.nodes.len();
        if n == 0 {
            return Err(NnError::InvalidGraph("the network has no layers".into()));
        }
        if self.net.input_shape.is_empty() || self.net.input_shape.contains(&0) {
            return Err(NnError::InvalidGraph(format!(
                "invalid input shape {:?}",
                self.net.input_shape
            )));
        }
        Ok(self.net)
    }
}

//! ONNX graph -> [`Network`], through a registry of one plain function per operator.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{Device, Tensor};
use prost::Message;

use super::proto::{self, attribute_proto::AttributeType, GraphProto, NodeProto};
use super::tensor;
use super::{Binding, OnnxOrigin, TensorSource};
use crate::error::{NnError, Result};
use crate::layer::{BatchNorm, ConstOp, Conv2d, Elementwise, Layer, Linear, Param, Pool2d};
use crate::network::{Network, NetworkBuilder, ValueId};
use crate::opaque::{BinaryOp, Opaque};

mod ops;

/// Reads an ONNX file into the IR.
pub fn load_onnx(path: impl AsRef<Path>) -> Result<Network> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| NnError::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_onnx_bytes(&bytes, &path.display().to_string())
}

/// Decodes ONNX bytes into the IR; `label` names the source in errors.
pub fn load_onnx_bytes(bytes: &[u8], label: &str) -> Result<Network> {
    let model = proto::ModelProto::decode(bytes).map_err(|e| NnError::NotOnnx {
        path: label.to_string(),
        reason: e.to_string(),
    })?;
    match &model.graph {
        Some(g) if !g.node.is_empty() => {}
        _ => {
            return Err(NnError::NotOnnx {
                path: label.to_string(),
                reason: "the file holds no graph with nodes".into(),
            })
        }
    }
    from_model(model)
}

/// Builds the IR from a decoded model; the model is kept for drop-in export.
pub fn from_model(model: proto::ModelProto) -> Result<Network> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| NnError::InvalidGraph("model has no graph".into()))?;
    let unsupported: Vec<(String, String)> = graph
        .node
        .iter()
        .filter(|n| {
            !(n.domain.is_empty() || n.domain == "ai.onnx") || handler(&n.op_type).is_none()
        })
        .map(|n| (n.op_type.clone(), node_label(n)))
        .collect();
    if !unsupported.is_empty() {
        return Err(NnError::UnsupportedOps { ops: unsupported });
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(13, |o| o.version);
    let mut imp = Importer::new(graph, opset)?;
    for (index, node) in graph.node.iter().enumerate() {
        if imp.fused.contains(&index) {
            continue;
        }
        let f = handler(&node.op_type).expect("checked above");
        f(&mut imp, index, node)?;
    }
    let (input_name, output_name, net_out) = imp.output()?;
    let Importer {
        builder, bindings, ..
    } = imp;
    if net_out != builder.last() {
        return Err(NnError::InvalidGraph(format!(
            "the graph output '{output_name}' is not produced by the last node (graphs with side branches or several outputs are not supported)"
        )));
    }
    let mut net = builder.build()?;
    let original = net
        .param_ids()
        .iter()
        .map(|&id| net.param(id)?.to_vec())
        .collect::<Result<Vec<_>>>()?;
    net.set_io_names(input_name, output_name);
    net.set_origin(OnnxOrigin {
        model,
        bindings,
        original,
    });
    Ok(net)
}

type Handler = fn(&mut Importer, usize, &NodeProto) -> Result<()>;

/// The operator registry.
fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Constant" => op_constant,
        "Identity" | "Dropout" => op_identity,
        "Gemm" => op_gemm,
        "MatMul" => op_matmul,
        "Add" | "Sub" | "Mul" | "Div" => op_binary,
        "Relu" | "Sigmoid" | "Tanh" => op_activation,
        "Flatten" => op_flatten,
        "Reshape" => op_reshape,
        "Conv" => op_conv,
        "BatchNormalization" => op_batchnorm,
        "MaxPool" | "AveragePool" | "GlobalAveragePool" => op_pool,
        "Transpose" => ops::transpose,
        "Slice" => ops::slice,
        "Split" => ops::split,
        "Gather" => ops::gather,
        "Pad" => ops::pad,
        "ReduceSum" => ops::reduce_sum,
        "Concat" => ops::concat,
        "Squeeze" | "Unsqueeze" => ops::squeeze,
        "Shape" => ops::shape,
        "ConstantOfShape" => ops::constant_of_shape,
        "Cast" => ops::cast,
        "Equal" => ops::equal,
        "Softmax" => ops::softmax,
        "ArgMax" => ops::argmax,
        "OneHot" => ops::one_hot,
        "ConvTranspose" => ops::conv_transpose,
        "Abs" | "Exp" | "Log" | "Sqrt" | "Floor" | "Ceil" | "Sign" | "Clip" | "LeakyRelu" => {
            ops::unary
        }
        "Neg" => ops::neg,
        "ReduceMean" => ops::reduce_mean,
        _ => return None,
    })
}

fn node_label(n: &NodeProto) -> String {
    if !n.name.is_empty() {
        n.name.clone()
    } else {
        n.output.first().cloned().unwrap_or_default()
    }
}

fn unsupported(n: &NodeProto, reason: impl Into<String>) -> NnError {
    NnError::UnsupportedNode {
        node: node_label(n),
        op: n.op_type.clone(),
        reason: reason.into(),
    }
}

/// A constant known at import time.
#[derive(Clone)]
struct Const {
    values: Vec<f64>,
    dims: Vec<usize>,
    source: Option<TensorSource>,
    proto: proto::TensorProto,
}

#[derive(Clone)]
enum Val {
    Run(ValueId),
    Const(Box<Const>),
}

struct Importer<'g> {
    graph: &'g GraphProto,
    builder: NetworkBuilder,
    values: HashMap<String, Val>,
    bindings: Vec<Binding>,
    consumers: HashMap<String, Vec<usize>>,
    fused: HashSet<usize>,
    input_name: String,
    /// Runtime tensors (by ONNX name) without the leading batch dimension: everything of a
    /// rank-1 input, and what follows an operation that removes the batch axis of a batch of
    /// one (e.g. `Gather` of index 0 on axis 0).
    unbatched: HashSet<String>,
    /// The graph input's batch size when the file fixes it (`Shape` needs it).
    batch: Option<usize>,
    /// The model's default-domain opset.
    opset: i64,
}

impl<'g> Importer<'g> {
    fn new(graph: &'g GraphProto, opset: i64) -> Result<Self> {
        let mut values = HashMap::new();
        for init in &graph.initializer {
            let c = Const {
                values: Vec::new(),
                dims: dims_of(&init.dims, &init.name)?,
                source: Some(TensorSource::Initializer(init.name.clone())),
                proto: init.clone(),
            };
            values.insert(init.name.clone(), Val::Const(Box::new(c)));
        }
        let inputs: Vec<&proto::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !values.contains_key(&i.name))
            .collect();
        let input = match inputs.as_slice() {
            [one] => *one,
            [] => {
                return Err(NnError::InvalidGraph(
                    "the graph has no runtime input".into(),
                ))
            }
            many => {
                return Err(NnError::InvalidGraph(format!(
                "the graph has {} runtime inputs ({}); only single-input networks are supported",
                many.len(),
                many.iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
            }
        };
        let (shape, batch) = input_shape(input)?;
        values.insert(input.name.clone(), Val::Run(0));
        let mut unbatched = HashSet::new();
        if batch.is_none() {
            unbatched.insert(input.name.clone());
        }
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for name in &n.input {
                consumers.entry(name.clone()).or_default().push(i);
            }
        }
        for o in &graph.output {
            consumers
                .entry(o.name.clone())
                .or_default()
                .push(usize::MAX);
        }
        Ok(Self {
            graph,
            builder: NetworkBuilder::new(shape),
            values,
            bindings: Vec::new(),
            consumers,
            fused: HashSet::new(),
            input_name: input.name.clone(),
            unbatched,
            batch: batch.flatten(),
            opset,
        })
    }

    fn get(&self, n: &NodeProto, i: usize) -> Result<Val> {
        let name = n
            .input
            .get(i)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unsupported(n, format!("missing input #{i}")))?;
        self.values.get(name).cloned().ok_or_else(|| {
            NnError::InvalidGraph(format!(
                "node '{}' reads '{name}', which no earlier node produces",
                node_label(n)
            ))
        })
    }

    fn has_input(n: &NodeProto, i: usize) -> bool {
        n.input.get(i).is_some_and(|s| !s.is_empty())
    }

    fn run(&self, n: &NodeProto, i: usize) -> Result<ValueId> {
        match self.get(n, i)? {
            Val::Run(v) => Ok(v),
            Val::Const(_) => Err(unsupported(
                n,
                format!("input #{i} is a constant where a runtime tensor was expected"),
            )),
        }
    }

    fn constant(&self, n: &NodeProto, i: usize) -> Result<Const> {
        match self.get(n, i)? {
            Val::Const(mut c) => {
                if c.values.is_empty() && !c.dims.contains(&0) {
                    c.values = tensor::to_f64(&c.proto)?;
                }
                Ok(*c)
            }
            Val::Run(_) => Err(unsupported(
                n,
                format!("input #{i} must be a constant (initializer)"),
            )),
        }
    }

    /// A parameter from a constant, with the node's name in NaN errors.
    fn param(&self, n: &NodeProto, name: &str, values: Vec<f64>, dims: &[usize]) -> Result<Param> {
        let t = Tensor::from_vec(values, dims, &Device::Cpu)?;
        Param::new(name, t).map_err(|e| match e {
            NnError::NonFinite {
                param,
                index,
                value,
                ..
            } => NnError::NonFinite {
                node: node_label(n),
                param,
                index,
                value,
            },
            e => e,
        })
    }

    fn push(
        &mut self,
        n: &NodeProto,
        layer: Layer,
        inputs: Vec<ValueId>,
        bindings: Vec<Binding>,
    ) -> Result<ValueId> {
        self.push_at(n, 0, layer, inputs, bindings)
    }

    /// Appends a layer computing output `j` of `n`.
    fn push_at(
        &mut self,
        n: &NodeProto,
        j: usize,
        layer: Layer,
        inputs: Vec<ValueId>,
        bindings: Vec<Binding>,
    ) -> Result<ValueId> {
        debug_assert_eq!(layer.params().len(), bindings.len());
        let batched = n.input.iter().any(|name| {
            matches!(self.values.get(name), Some(Val::Run(_))) && !self.unbatched.contains(name)
        });
        let name = if j == 0 {
            node_label(n)
        } else {
            format!("{}:{j}", node_label(n))
        };
        let v = self.builder.push_with_inputs(name, layer, inputs)?;
        self.bindings.extend(bindings);
        if let Some(out) = n.output.get(j) {
            self.values.insert(out.clone(), Val::Run(v));
            if batched {
                self.unbatched.remove(out);
            } else {
                self.unbatched.insert(out.clone());
            }
        }
        Ok(v)
    }

    /// Whether runtime input `i` of `n` carries the batch dimension.
    fn batched(&self, n: &NodeProto, i: usize) -> bool {
        n.input
            .get(i)
            .is_some_and(|name| !self.unbatched.contains(name))
    }

    /// Refuses a runtime input without its batch dimension where the operator needs it.
    fn need_batched(&self, n: &NodeProto, i: usize) -> Result<()> {
        if self.batched(n, i) {
            Ok(())
        } else {
            Err(unsupported(
                n,
                "the input has no batch dimension here (only batched inputs are supported)",
            ))
        }
    }

    fn set_output(&mut self, n: &NodeProto, v: Val) {
        if let Some(out) = n.output.first() {
            self.values.insert(out.clone(), v);
        }
    }

    fn output(&self) -> Result<(String, String, ValueId)> {
        let out = match self.graph.output.as_slice() {
            [one] => one,
            outs => {
                return Err(NnError::InvalidGraph(format!(
                    "the graph has {} outputs; exactly one is supported",
                    outs.len()
                )))
            }
        };
        match self.values.get(&out.name) {
            Some(Val::Run(v)) => Ok((self.input_name.clone(), out.name.clone(), *v)),
            _ => Err(NnError::InvalidGraph(format!(
                "the graph output '{}' is not computed from the input",
                out.name
            ))),
        }
    }
}

fn dims_of(dims: &[i64], name: &str) -> Result<Vec<usize>> {
    dims.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                NnError::InvalidGraph(format!("tensor '{name}' has negative dimension {d}"))
            })
        })
        .collect()
}

/// The per-sample shape of the graph input and its batch dimension: `Some(size)` (`None`
/// when symbolic) for inputs of rank 2 or more, whose first dimension is the batch, and `None`
/// for a rank-1 input, which is one sample (the network gets a batch dimension of its own).
#[allow(clippy::type_complexity)]
fn input_shape(input: &proto::ValueInfoProto) -> Result<(Vec<usize>, Option<Option<usize>>)> {
    use proto::tensor_shape_proto::dimension::Value;
    let no_shape = || NnError::InvalidGraph(format!("input '{}' has no tensor shape", input.name));
    let tt = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(proto::type_proto::Value::TensorType(t)) => t,
        _ => return Err(no_shape()),
    };
    let dims = &tt.shape.as_ref().ok_or_else(no_shape)?.dim;
    if dims.is_empty() {
        return Err(NnError::InvalidGraph(format!(
            "input '{}' is a scalar; a network input needs at least one dimension",
            input.name
        )));
    }
    let fixed = |d: &proto::tensor_shape_proto::Dimension| match d.value {
        Some(Value::DimValue(v)) if v > 0 => Some(v as usize),
        _ => None,
    };
    let (batch, sample) = if dims.len() == 1 {
        (None, &dims[..])
    } else {
        (Some(fixed(&dims[0])), &dims[1..])
    };
    let shape = sample
        .iter()
        .map(|d| {
            fixed(d).ok_or_else(|| {
                NnError::InvalidGraph(format!(
                    "input '{}' has a symbolic or unknown non-batch dimension; only the batch dimension may be symbolic",
                    input.name
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((shape, batch))
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a proto::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map(|a| a.i).unwrap_or(default)
}

fn attr_f(n: &NodeProto, name: &str, default: f64) -> f64 {
    attr(n, name).map(|a| a.f as f64).unwrap_or(default)
}

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn attr_s(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

fn plain(c: &Const) -> Binding {
    match &c.source {
        Some(source) => Binding::Tensor {
            source: source.clone(),
            transpose: false,
            scale: 1.0,
        },
        None => Binding::Unbound,
    }
}

fn op_constant(imp: &mut Importer, index: usize, n: &NodeProto) -> Result<()> {
    let a = attr(n, "value").filter(|a| a.r#type == AttributeType::Tensor as i32 || a.t.is_some());
    let t = a
        .and_then(|a| a.t.clone())
        .ok_or_else(|| unsupported(n, "only the tensor 'value' form is supported"))?;
    let c = Const {
        values: Vec::new(),
        dims: dims_of(&t.dims, &t.name)?,
        source: Some(TensorSource::ConstantNode(index)),
        proto: t,
    };
    imp.set_output(n, Val::Const(Box::new(c)));
    Ok(())
}

fn op_identity(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let v = imp.get(n, 0)?;
    imp.set_output(n, v);
    Ok(())
}

fn op_activation(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let x = imp.run(n, 0)?;
    let layer = match n.op_type.as_str() {
        "Relu" => Layer::Relu,
        "Sigmoid" => Layer::Sigmoid,
        _ => Layer::Tanh,
    };
    imp.push(n, layer, vec![x], vec![])?;
    Ok(())
}

fn op_gemm(imp: &mut Importer, index: usize, n: &NodeProto) -> Result<()> {
    if attr_i(n, "transA", 0) != 0 {
        return Err(unsupported(n, "transA = 1 is not supported"));
    }
    let x = imp.run(n, 0)?;
    imp.need_batched(n, 0)?;
    let b = imp.constant(n, 1)?;
    let (alpha, beta) = (attr_f(n, "alpha", 1.0), attr_f(n, "beta", 1.0));
    let trans_b = attr_i(n, "transB", 0) != 0;
    if b.dims.len() != 2 {
        return Err(unsupported(
            n,
            format!("weight must be 2-D, got {:?}", b.dims),
        ));
    }
    let (out, inp) = if trans_b {
        (b.dims[0], b.dims[1])
    } else {
        (b.dims[1], b.dims[0])
    };
    let mut w = if trans_b {
        b.values.clone()
    } else {
        tensor::transpose(&b.values, b.dims[0], b.dims[1])
    };
    w.iter_mut().for_each(|v| *v *= alpha);
    let w_binding = match &b.source {
        Some(s) => Binding::Tensor {
            source: s.clone(),
            transpose: !trans_b,
            scale: alpha,
        },
        None => Binding::Unbound,
    };
    let (bias, bias_name, b_binding) = if Importer::has_input(n, 2) {
        let c = imp.constant(n, 2)?;
        let name = c.proto.name.clone();
        if c.values.len() == out {
            let binding = match &c.source {
                Some(s) => Binding::Tensor {
                    source: s.clone(),
                    transpose: false,
                    scale: beta,
                },
                None => Binding::Unbound,
            };
            (c.values.iter().map(|v| v * beta).collect(), name, binding)
        } else if c.values.len() == 1 {
            (vec![c.values[0] * beta; out], name, Binding::Unbound)
        } else {
            return Err(unsupported(
                n,
                format!("bias C of shape {:?} does not match {out} outputs", c.dims),
            ));
        }
    } else {
        (
            vec![0.0; out],
            format!("{}.bias", node_label(n)),
            Binding::MissingBias { node_index: index },
        )
    };
    let weight = imp.param(n, &b.proto.name, w, &[out, inp])?;
    let bias = imp.param(n, &bias_name, bias, &[out])?;
    let layer = Layer::Linear(Linear::from_params(weight, bias)?);
    imp.push(n, layer, vec![x], vec![w_binding, b_binding])?;
    Ok(())
}

fn op_matmul(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    // `W x` with a constant left operand and one sample vector `x` (a rank-1 input) is a
    // linear layer with `W` as stored.
    if let (Val::Const(_), Val::Run(x)) = (imp.get(n, 0)?, imp.get(n, 1)?) {
        let w = imp.constant(n, 0)?;
        if imp.batched(n, 1) || w.dims.len() != 2 || imp.builder.shape(x) != [w.dims[1]] {
            return Err(unsupported(
                n,
                format!(
                    "a constant left operand {:?} is only supported times one vector without a batch dimension",
                    w.dims
                ),
            ));
        }
        let binding = plain(&w);
        let (out, inp) = (w.dims[0], w.dims[1]);
        return linear_with_bias(imp, n, x, &w, w.values.clone(), [out, inp], binding);
    }
    let x = imp.run(n, 0)?;
    let b = imp.constant(n, 1)?;
    if b.dims.len() != 2 {
        return Err(unsupported(
            n,
            format!(
                "only constant 2-D right operands are supported, got {:?}",
                b.dims
            ),
        ));
    }
    let (inp, out) = (b.dims[0], b.dims[1]);
    if imp.builder.shape(x).len() != 1 {
        // A product over the last axis of a multi-axis value: forward only.
        let weight = Tensor::from_vec(b.values.clone(), (inp, out), &Device::Cpu)?;
        imp.push(n, Layer::Opaque(Opaque::MatMul { weight }), vec![x], vec![])?;
        return Ok(());
    }
    let w = tensor::transpose(&b.values, inp, out);
    let w_binding = match &b.source {
        Some(s) => Binding::Tensor {
            source: s.clone(),
            transpose: true,
            scale: 1.0,
        },
        None => Binding::Unbound,
    };
    linear_with_bias(imp, n, x, &b, w, [out, inp], w_binding)
}

/// A linear layer with weight `w` (`[out, in]`, from constant `c`) for `MatMul` node `n`,
/// fusing a following `Add` of a constant bias when it is the only reader of the product.
fn linear_with_bias(
    imp: &mut Importer,
    n: &NodeProto,
    x: ValueId,
    c: &Const,
    w: Vec<f64>,
    [out, inp]: [usize; 2],
    w_binding: Binding,
) -> Result<()> {
    let out_name = n.output.first().cloned().unwrap_or_default();
    let mut bias = (
        vec![0.0; out],
        format!("{}.bias", node_label(n)),
        Binding::Unbound,
        None,
    );
    if let Some([j]) = imp.consumers.get(&out_name).map(|v| v.as_slice()) {
        if let Some(add) = imp
            .graph
            .node
            .get(*j)
            .filter(|a| a.op_type == "Add" && a.input.len() == 2)
        {
            let other = if add.input[0] == out_name { 1 } else { 0 };
            if let Ok(c) = imp.constant(add, other) {
                if c.values.len() == out && c.dims.iter().filter(|&&d| d != 1).count() <= 1 {
                    bias = (c.values.clone(), c.proto.name.clone(), plain(&c), Some(*j));
                }
            }
        }
    }
    let (bias_values, bias_name, b_binding, fused) = bias;
    let weight = imp.param(n, &c.proto.name, w, &[out, inp])?;
    let bias_p = imp.param(n, &bias_name, bias_values, &[out])?;
    let v = imp.push(
        n,
        Layer::Linear(Linear::from_params(weight, bias_p)?),
        vec![x],
        vec![w_binding, b_binding],
    )?;
    if let Some(j) = fused {
        imp.fused.insert(j);
        let add = &imp.graph.node[j];
        imp.set_output(add, Val::Run(v));
        if imp.unbatched.contains(&out_name) {
            if let Some(o) = add.output.first() {
                imp.unbatched.insert(o.clone());
            }
        }
    }
    Ok(())
}

fn op_binary(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let (a, b) = (imp.get(n, 0)?, imp.get(n, 1)?);
    let op = match n.op_type.as_str() {
        "Add" => ConstOp::Add,
        "Sub" => ConstOp::Sub,
        "Mul" => ConstOp::Mul,
        _ => ConstOp::Div,
    };
    let binary = match op {
        ConstOp::Add => BinaryOp::Add,
        ConstOp::Sub => BinaryOp::Sub,
        ConstOp::Mul => BinaryOp::Mul,
        ConstOp::Div => BinaryOp::Div,
    };
    let (x, c) = match (a, b) {
        (Val::Run(x), Val::Run(y))
            if op == ConstOp::Add
                && imp.builder.shape(x) == imp.builder.shape(y)
                && imp.batched(n, 0) == imp.batched(n, 1) =>
        {
            imp.push(n, Layer::Add, vec![x, y], vec![])?;
            return Ok(());
        }
        (Val::Run(x), Val::Run(y)) => {
            ops::check_broadcast(imp, n)?;
            imp.push(n, Layer::Opaque(Opaque::Binary(binary)), vec![x, y], vec![])?;
            return Ok(());
        }
        (Val::Run(x), Val::Const(_)) => (x, imp.constant(n, 1)?),
        (Val::Const(_), Val::Run(x)) if matches!(op, ConstOp::Add | ConstOp::Mul) => {
            (x, imp.constant(n, 0)?)
        }
        (Val::Const(_), Val::Run(x)) if op == ConstOp::Sub => {
            // c - x as (-1) x + c: two constant operations, bounded like any other.
            let c = imp.constant(n, 0)?;
            let minus = Tensor::new(&[-1.0f64], &Device::Cpu)?;
            let neg = Elementwise::new(ConstOp::Mul, minus)?;
            let v = imp.builder.push_with_inputs(
                format!("{}.negate", node_label(n)),
                Layer::Elementwise(neg),
                vec![x],
            )?;
            let t = Tensor::from_vec(c.values, c.dims.as_slice(), &Device::Cpu)?;
            let e = Elementwise::new(ConstOp::Add, t).map_err(|e| unsupported(n, e.to_string()))?;
            imp.push(n, Layer::Elementwise(e), vec![v], vec![])?;
            return Ok(());
        }
        (Val::Const(_), Val::Run(_)) => {
            return Err(unsupported(
                n,
                "a constant divided by a runtime value is not supported",
            ))
        }
        (Val::Const(_), Val::Const(_)) => {
            let (a, b) = (imp.constant(n, 0)?, imp.constant(n, 1)?);
            let folded = ops::fold_binary(n, &a, &b, binary)?;
            imp.set_output(n, folded);
            return Ok(());
        }
    };
    let t = Tensor::from_vec(c.values, c.dims.as_slice(), &Device::Cpu)?;
    let e = Elementwise::new(op, t).map_err(|e| unsupported(n, e.to_string()))?;
    imp.push(n, Layer::Elementwise(e), vec![x], vec![])?;
    Ok(())
}

fn op_flatten(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let x = imp.run(n, 0)?;
    if !imp.batched(n, 0) {
        let dims = imp.builder.shape(x).to_vec();
        // Flatten's axis may be the rank itself (everything in the first factor).
        let (r, a) = (dims.len() as i64, attr_i(n, "axis", 1));
        let axis = if a < 0 { a + r } else { a };
        if !(0..=r).contains(&axis) {
            return Err(unsupported(
                n,
                format!("axis {a} is out of range for rank {r}"),
            ));
        }
        let axis = axis as usize;
        let shape = vec![dims[..axis].iter().product(), dims[axis..].iter().product()];
        imp.push(n, Layer::Reshape(shape), vec![x], vec![])?;
        return Ok(());
    }
    let rank = imp.builder.shape(x).len() as i64 + 1;
    let axis = attr_i(n, "axis", 1);
    if axis != 1 && axis + rank != 1 {
        return Err(unsupported(
            n,
            format!("only axis 1 (keep the batch dimension) is supported, got {axis}"),
        ));
    }
    imp.push(n, Layer::Flatten, vec![x], vec![])?;
    Ok(())
}

fn op_reshape(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let c = imp.constant(n, 1)?;
    let target: Vec<i64> = c.values.iter().map(|&v| v as i64).collect();
    if let Val::Const(_) = imp.get(n, 0)? {
        let data = imp.constant(n, 0)?;
        let dims = resolve_shape(n, &data.dims, &target)?;
        imp.set_output(n, ops::with_dims(data, dims));
        return Ok(());
    }
    let x = imp.run(n, 0)?;
    let sample = imp.builder.shape(x).to_vec();
    let shape = if imp.batched(n, 0) {
        if target.is_empty() || !matches!(target[0], -1..=1) {
            return Err(unsupported(
                n,
                format!(
                    "the first target dimension must keep the batch (0, 1 or -1), got {target:?}"
                ),
            ));
        }
        if target[0] == -1 && target[1..].contains(&-1) {
            return Err(unsupported(
                n,
                format!("cannot resolve target shape {target:?}"),
            ));
        }
        // The batch keeps its place: resolve the rest against the per-sample shape.
        let rest: Vec<i64> = target[1..].to_vec();
        resolve_shape(n, &sample, &rest)?
    } else {
        resolve_shape(n, &sample, &target)?
    };
    imp.push(n, Layer::Reshape(shape), vec![x], vec![])?;
    Ok(())
}

/// An ONNX reshape target (0 copies the input's dimension, one -1 is inferred) resolved
/// against `dims`.
fn resolve_shape(n: &NodeProto, dims: &[usize], target: &[i64]) -> Result<Vec<usize>> {
    let numel: usize = dims.iter().product();
    let mut shape = Vec::with_capacity(target.len());
    let mut hole = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            0 => shape.push(
                *dims
                    .get(i)
                    .ok_or_else(|| unsupported(n, "0 refers past the input rank"))?,
            ),
            -1 if hole.is_none() => {
                hole = Some(shape.len());
                shape.push(1);
            }
            t if t > 0 => shape.push(t as usize),
            _ => {
                return Err(unsupported(
                    n,
                    format!("cannot resolve target shape {target:?}"),
                ))
            }
        }
    }
    // Target dims come from the file: a product past usize is no valid reshape.
    let Some(known) = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
        return Err(unsupported(
            n,
            format!("cannot reshape {dims:?} to {target:?}"),
        ));
    };
    if let Some(h) = hole {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(unsupported(
                n,
                format!("cannot reshape {dims:?} to {target:?}"),
            ));
        }
        shape[h] = numel / known;
    }
    if shape.iter().product::<usize>() != numel {
        return Err(unsupported(
            n,
            format!("cannot reshape {dims:?} to {target:?}"),
        ));
    }
    Ok(shape)
}

/// Pads `[top, left, bottom, right]` from ONNX attributes, resolving `auto_pad`.
fn pads_2d(
    n: &NodeProto,
    input_hw: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: usize,
) -> Result<[usize; 4]> {
    match attr_s(n, "auto_pad").as_deref().unwrap_or("NOTSET") {
        "NOTSET" | "" => {
            let p = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
            if p.len() != 4 || p.iter().any(|&v| v < 0) {
                return Err(unsupported(
                    n,
                    format!("pads must be 4 non-negative values, got {p:?}"),
                ));
            }
            Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
        }
        "VALID" => Ok([0; 4]),
        mode @ ("SAME_UPPER" | "SAME_LOWER") => {
            let mut pads = [0usize; 4];
            for a in 0..2 {
                let ext = dilation * (kernel[a] - 1) + 1;
                let out = input_hw[a].div_ceil(stride[a]);
                let total = ((out - 1) * stride[a] + ext).saturating_sub(input_hw[a]);
                let small = total / 2;
                let (begin, end) = if mode == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                pads[a] = begin;
                pads[a + 2] = end;
            }
            Ok(pads)
        }
        other => Err(unsupported(
            n,
            format!("auto_pad '{other}' is not supported"),
        )),
    }
}

fn op_conv(imp: &mut Importer, index: usize, n: &NodeProto) -> Result<()> {
    let x = imp.run(n, 0)?;
    imp.need_batched(n, 0)?;
    let w = imp.constant(n, 1)?;
    if w.dims.len() != 4 {
        return Err(unsupported(
            n,
            format!("only 2-D convolutions are supported (weight {:?})", w.dims),
        ));
    }
    let strides = attr_ints(n, "strides").unwrap_or_else(|| vec![1, 1]);
    let dilations = attr_ints(n, "dilations").unwrap_or_else(|| vec![1, 1]);
    if strides.len() != 2
        || strides[0] != strides[1]
        || strides[0] < 1
        || dilations.len() != 2
        || dilations[0] != dilations[1]
        || dilations[0] < 1
    {
        return Err(unsupported(
            n,
            format!(
                "strides {strides:?} and dilations {dilations:?} must be equal along both axes"
            ),
        ));
    }
    let (stride, dilation) = (strides[0] as usize, dilations[0] as usize);
    let sample = imp.builder.shape(x).to_vec();
    if sample.len() != 3 {
        return Err(unsupported(
            n,
            format!("input must be [C, H, W] per sample, got {sample:?}"),
        ));
    }
    let kernel = [w.dims[2], w.dims[3]];
    let pads = pads_2d(
        n,
        [sample[1], sample[2]],
        kernel,
        [stride, stride],
        dilation,
    )?;
    let co = w.dims[0];
    let (bias, bias_name, b_binding) = if Importer::has_input(n, 2) {
        let c = imp.constant(n, 2)?;
        let b = plain(&c);
        (c.values, c.proto.name.clone(), b)
    } else {
        (
            vec![0.0; co],
            format!("{}.bias", node_label(n)),
            Binding::MissingBias { node_index: index },
        )
    };
    let weight = imp.param(n, &w.proto.name, w.values.clone(), &w.dims)?;
    let bias = imp.param(n, &bias_name, bias, &[co])?;
    let groups = attr_i(n, "group", 1).max(1) as usize;
    let conv = Conv2d::new(weight, bias, stride, dilation, pads, groups)
        .map_err(|e| unsupported(n, e.to_string()))?;
    imp.push(n, Layer::Conv2d(conv), vec![x], vec![plain(&w), b_binding])?;
    Ok(())
}

fn op_batchnorm(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let x = imp.run(n, 0)?;
    imp.need_batched(n, 0)?;
    let mut params = Vec::new();
    let mut bindings = Vec::new();
    for i in 1..=4 {
        let c = imp.constant(n, i)?;
        bindings.push(plain(&c));
        let len = c.values.len();
        params.push(imp.param(n, &c.proto.name, c.values, &[len])?);
    }
    let mut it = params.into_iter();
    let (s, b, m, v) = (
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap(),
    );
    let bn = BatchNorm::new(s, b, m, v, attr_f(n, "epsilon", 1e-5))
        .map_err(|e| unsupported(n, e.to_string()))?;
    imp.push(n, Layer::BatchNorm(bn), vec![x], bindings)?;
    Ok(())
}

fn op_pool(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let x = imp.run(n, 0)?;
    imp.need_batched(n, 0)?;
    if n.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(unsupported(
            n,
            "the Indices output of MaxPool is not supported",
        ));
    }
    let sample = imp.builder.shape(x).to_vec();
    if sample.len() != 3 {
        return Err(unsupported(
            n,
            format!("input must be [C, H, W] per sample, got {sample:?}"),
        ));
    }
    let pool = if n.op_type == "GlobalAveragePool" {
        Pool2d {
            kernel: [sample[1], sample[2]],
            stride: [1, 1],
            padding: [0; 4],
            count_include_pad: false,
        }
    } else {
        let k = attr_ints(n, "kernel_shape")
            .ok_or_else(|| unsupported(n, "kernel_shape is required"))?;
        let s = attr_ints(n, "strides").unwrap_or_else(|| vec![1, 1]);
        if k.len() != 2 || s.len() != 2 || k.iter().chain(&s).any(|&v| v < 1) {
            return Err(unsupported(
                n,
                format!("only 2-D pooling is supported (kernel {k:?}, strides {s:?})"),
            ));
        }
        if attr_i(n, "ceil_mode", 0) != 0 {
            return Err(unsupported(n, "ceil_mode = 1 is not supported"));
        }
        if attr_ints(n, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return Err(unsupported(n, "dilated pooling is not supported"));
        }
        let kernel = [k[0] as usize, k[1] as usize];
        let stride = [s[0] as usize, s[1] as usize];
        let padding = pads_2d(n, [sample[1], sample[2]], kernel, stride, 1)?;
        Pool2d {
            kernel,
            stride,
            padding,
            count_include_pad: attr_i(n, "count_include_pad", 0) != 0,
        }
    };
    let layer = if n.op_type == "MaxPool" {
        Layer::MaxPool2d(pool)
    } else {
        Layer::AvgPool2d(pool)
    };
    imp.push(n, layer, vec![x], vec![])?;
    Ok(())
}

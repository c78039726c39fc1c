//! [`Network`] -> ONNX.

use std::io::Write;
use std::path::Path;

use prost::Message;

use super::proto::{
    self, attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    ValueInfoProto,
};
use super::tensor;
use super::{Binding, TensorSource};
use crate::error::{NnError, Result};
use crate::layer::{ConstOp, Layer};
use crate::network::Network;
use crate::rearrange::{Rearrange, SliceAxis};

/// The network as an ONNX model. An imported network re-emits its original graph with only
/// the changed parameters' initializers rewritten (same nodes, names and signature); a network
/// built in memory becomes a plain opset-13 graph with float32 weights.
pub fn to_model(net: &Network) -> Result<ModelProto> {
    match net.origin() {
        Some(_) => reemit(net),
        None => fresh(net),
    }
}

/// Writes the network as ONNX to `path` atomically (a temporary file in the same folder,
/// renamed into place), so a failure never leaves a half-written file.
pub fn save_onnx(net: &Network, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_model(net)?.encode_to_vec();
    let io = |source| NnError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(&bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

fn reemit(net: &Network) -> Result<ModelProto> {
    let origin = net.origin().expect("checked by caller");
    let mut model = origin.model.clone();
    let ir_version = model.ir_version;
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| NnError::InvalidGraph("model has no graph".into()))?;
    for (k, id) in net.param_ids().into_iter().enumerate() {
        let param = net.param(id)?;
        let now = param.to_vec()?;
        if now == origin.original[k] {
            continue;
        }
        match &origin.bindings[k] {
            Binding::Tensor {
                source,
                transpose,
                scale,
            } => {
                let mut v: Vec<f64> = now.iter().map(|x| x / scale).collect();
                if *transpose {
                    v = tensor::transpose(&v, param.dims()[0], param.dims()[1]);
                }
                tensor::write_f64(tensor_mut(graph, source)?, &v)?;
            }
            Binding::MissingBias { node_index } => {
                let mut name = param.name().to_string();
                while graph.initializer.iter().any(|t| t.name == name) {
                    name.push('_');
                }
                graph
                    .initializer
                    .push(tensor::new_f32(&name, param.dims(), &now));
                if ir_version < 4 {
                    graph
                        .input
                        .push(value_info(&name, &[param.dims()[0] as i64], None));
                }
                let inputs = &mut graph.node[*node_index].input;
                inputs.resize(2, String::new());
                inputs.push(name);
            }
            Binding::Unbound => {
                return Err(NnError::NotExportable {
                    param: param.name().to_string(),
                    reason:
                        "the original graph has no tensor holding it (e.g. a MatMul without bias)"
                            .into(),
                })
            }
        }
    }
    Ok(model)
}

fn tensor_mut<'a>(graph: &'a mut GraphProto, source: &TensorSource) -> Result<&'a mut TensorProto> {
    let found = match source {
        TensorSource::Initializer(name) => graph.initializer.iter_mut().find(|t| &t.name == name),
        TensorSource::ConstantNode(i) => graph
            .node
            .get_mut(*i)
            .and_then(|n| n.attribute.iter_mut().find(|a| a.name == "value"))
            .and_then(|a| a.t.as_mut()),
    };
    found.ok_or_else(|| NnError::InvalidGraph(format!("tensor {source:?} vanished from the graph")))
}

fn value_info(name: &str, dims: &[i64], batch: Option<&str>) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value, Dimension};
    let mut dim: Vec<Dimension> = Vec::new();
    if let Some(b) = batch {
        dim.push(Dimension {
            value: Some(Value::DimParam(b.to_string())),
            ..Default::default()
        });
    }
    dim.extend(dims.iter().map(|&d| Dimension {
        value: Some(Value::DimValue(d)),
        ..Default::default()
    }));
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(proto::TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(proto::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn float(name: &str, v: f64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: v as f32,
        ..Default::default()
    }
}

fn fresh(net: &Network) -> Result<ModelProto> {
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    let names: Vec<String> = std::iter::once(net.input_name().to_string())
        .chain(net.nodes().iter().enumerate().map(|(i, n)| {
            if i + 1 == net.nodes().len() {
                net.output_name().to_string()
            } else {
                format!("{}_out", n.name())
            }
        }))
        .collect();
    for (i, node) in net.nodes().iter().enumerate() {
        let mut inputs: Vec<String> = node.inputs().iter().map(|&v| names[v].clone()).collect();
        for p in node.layer().params() {
            inits.push(tensor::new_f32(p.name(), p.dims(), &p.to_vec()?));
            inputs.push(p.name().to_string());
        }
        let mut attribute = Vec::new();
        let op = match node.layer() {
            Layer::Linear(_) => {
                attribute.push(int("transB", 1));
                "Gemm"
            }
            Layer::Conv2d(c) => {
                let [kh, kw] = c.kernel();
                attribute.extend([
                    ints("kernel_shape", &[kh, kw]),
                    ints("strides", &[c.stride(), c.stride()]),
                    ints("dilations", &[c.dilation(), c.dilation()]),
                    ints("pads", &c.padding()),
                    int("group", c.groups() as i64),
                ]);
                "Conv"
            }
            Layer::BatchNorm(b) => {
                attribute.push(float("epsilon", b.eps()));
                "BatchNormalization"
            }
            Layer::Relu => "Relu",
            Layer::Sigmoid => "Sigmoid",
            Layer::Tanh => "Tanh",
            Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => {
                attribute.extend([
                    ints("kernel_shape", &p.kernel),
                    ints("strides", &p.stride),
                    ints("pads", &p.padding),
                ]);
                if matches!(node.layer(), Layer::AvgPool2d(_)) {
                    attribute.push(int("count_include_pad", p.count_include_pad as i64));
                    "AveragePool"
                } else {
                    "MaxPool"
                }
            }
            Layer::Flatten => {
                attribute.push(int("axis", 1));
                "Flatten"
            }
            Layer::Reshape(shape) => {
                let name = format!("{}.shape", node.name());
                let mut target = vec![0i64];
                target.extend(shape.iter().map(|&d| d as i64));
                inits.push(tensor::new_i64(&name, &target));
                inputs.push(name);
                "Reshape"
            }
            Layer::Add => "Add",
            Layer::Elementwise(e) => {
                let name = format!("{}.constant", node.name());
                let c = e.constant();
                inits.push(tensor::new_f32(
                    &name,
                    c.dims(),
                    &c.flatten_all()?.to_vec1::<f64>()?,
                ));
                inputs.push(name);
                match e.op() {
                    ConstOp::Add => "Add",
                    ConstOp::Sub => "Sub",
                    ConstOp::Mul => "Mul",
                    ConstOp::Div => "Div",
                }
            }
            Layer::Rearrange(r) => {
                let mut init_i64 = |suffix: &str, values: Vec<i64>| {
                    let name = format!("{}.{suffix}", node.name());
                    inits.push(tensor::new_i64(&name, &values));
                    inputs.push(name);
                };
                let batch = |v: &[usize]| v.iter().map(|&a| a as i64 + 1).collect::<Vec<_>>();
                match r {
                    Rearrange::Transpose(perm) => {
                        let mut p = vec![0];
                        p.extend(perm.iter().map(|&a| a + 1));
                        attribute.push(ints("perm", &p));
                    }
                    Rearrange::Slice(axes) => {
                        let end = |s: &SliceAxis| {
                            let last = s.start as i64 + s.step as i64 * (s.len as i64 - 1);
                            // One step past the last index taken; i64::MIN stands for "before 0".
                            if s.step < 0 && last + (s.step as i64) < 0 {
                                i64::MIN
                            } else {
                                last + s.step as i64
                            }
                        };
                        init_i64("starts", axes.iter().map(|s| s.start as i64).collect());
                        init_i64("ends", axes.iter().map(end).collect());
                        init_i64(
                            "axes",
                            batch(&axes.iter().map(|s| s.axis).collect::<Vec<_>>()),
                        );
                        init_i64("steps", axes.iter().map(|s| s.step as i64).collect());
                    }
                    Rearrange::Pad {
                        before,
                        after,
                        value,
                    } => {
                        let mut pads = vec![0i64];
                        pads.extend(before.iter().map(|&v| v as i64));
                        pads.push(0);
                        pads.extend(after.iter().map(|&v| v as i64));
                        init_i64("pads", pads);
                        let name = format!("{}.value", node.name());
                        inits.push(tensor::new_f32(&name, &[], &[*value]));
                        inputs.push(name);
                    }
                    Rearrange::Gather {
                        axis,
                        indices,
                        keep_axis,
                    } => {
                        let name = format!("{}.indices", node.name());
                        let mut t = tensor::new_i64(
                            &name,
                            &indices.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                        );
                        if !keep_axis {
                            t.dims.clear();
                        }
                        inits.push(t);
                        inputs.push(name);
                        attribute.push(int("axis", *axis as i64 + 1));
                    }
                    Rearrange::ReduceSum { axes, keepdims } => {
                        init_i64("axes", batch(axes));
                        attribute.push(int("keepdims", *keepdims as i64));
                    }
                }
                r.kind()
            }
            Layer::Concat { axis, .. } => {
                attribute.push(int("axis", *axis as i64 + 1));
                "Concat"
            }
            Layer::Opaque(o) => {
                return Err(NnError::NotExportable {
                    param: node.name().to_string(),
                    reason: format!(
                        "{} nodes are only written back into the ONNX graph they were read from",
                        o.kind()
                    ),
                })
            }
        };
        nodes.push(NodeProto {
            name: node.name().to_string(),
            op_type: op.into(),
            input: inputs,
            output: vec![names[i + 1].clone()],
            attribute,
            ..Default::default()
        });
    }
    let dims = |s: &[usize]| s.iter().map(|&d| d as i64).collect::<Vec<_>>();
    Ok(ModelProto {
        ir_version: 8,
        producer_name: "netrepair".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(GraphProto {
            name: "netrepair".into(),
            node: nodes,
            initializer: inits,
            input: vec![value_info(
                net.input_name(),
                &dims(net.input_shape()),
                Some("batch"),
            )],
            output: vec![value_info(
                net.output_name(),
                &dims(net.output_shape()),
                Some("batch"),
            )],
            ..Default::default()
        }),
        ..Default::default()
    })
}

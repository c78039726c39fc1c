//! Hand-built ONNX graphs: tensors, value infos, nodes, attributes and models, as real
//! exporters write them.

use netrepair_nn::onnx::proto::{
    self, attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    ValueInfoProto,
};
use prost::Message;

pub fn tensor(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: v.to_vec(),
        ..Default::default()
    }
}

/// A float tensor's name and shape (a negative size is symbolic).
pub fn vinfo(name: &str, dims: &[i64]) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value, Dimension};
    ValueInfoProto {
        name: name.into(),
        r#type: Some(proto::TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(proto::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            // A negative size stands for a symbolic dimension.
                            value: Some(if d < 0 {
                                Value::DimParam("N".into())
                            } else {
                                Value::DimValue(d)
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

pub fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

pub fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

pub fn model(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    input: ValueInfoProto,
    output: ValueInfoProto,
) -> Vec<u8> {
    ModelProto {
        ir_version: 7,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![input],
            output: vec![output],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// An int64 tensor.
pub fn tensor_i64(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int64 as i32,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

/// An integer-list attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A node with several outputs.
pub fn node_n(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..node(op, name, inputs, outputs[0], attribute)
    }
}

/// A model of the given opset.
pub fn model_opset(
    opset: i64,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    input: ValueInfoProto,
    output: ValueInfoProto,
) -> Vec<u8> {
    let mut m = ModelProto::decode(model(nodes, inits, input, output).as_slice()).expect("valid");
    m.opset_import[0].version = opset;
    m.encode_to_vec()
}

/// `y = W1 relu(W0 x + b0) + b1` on a rank-1 input `x` `[1]`, the weights `[out, in]` as the
/// left MatMul operands (how the VNN-COMP test networks store them): W0 = (1, -1),
/// b0 = (0.5, 0), W1 = (2, 3), b1 = -1.
pub fn rank_one_mlp() -> Vec<u8> {
    model_opset(
        14,
        vec![
            node("MatMul", "m0", &["W0", "x"], "h0", vec![]),
            node("Add", "a0", &["h0", "b0"], "z0", vec![]),
            node("Relu", "r0", &["z0"], "r", vec![]),
            node("MatMul", "m1", &["W1", "r"], "h1", vec![]),
            node("Add", "a1", &["h1", "b1"], "y", vec![]),
        ],
        vec![
            tensor("W0", &[2, 1], &[1.0, -1.0]),
            tensor("b0", &[2], &[0.5, 0.0]),
            tensor("W1", &[1, 2], &[2.0, 3.0]),
            tensor("b1", &[1], &[-1.0]),
        ],
        vinfo("x", &[1]),
        vinfo("y", &[1]),
    )
}

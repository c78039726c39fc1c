//! The shape operators, folded shape arithmetic, inputs without a batch dimension and the
//! forward-only operators, on graphs built here, against values worked out by hand.

mod common;

use candle_core::{Device, Tensor};
use common::graph::{
    attr_f, attr_i, attr_ints, model, model_opset, node, node_n, rank_one_mlp, tensor, tensor_i64,
    vinfo,
};
use common::{t, to_vec};
use netrepair_nn::onnx::proto::{attribute_proto::AttributeType, AttributeProto, ModelProto};
use netrepair_nn::onnx::{load_onnx_bytes, to_model};
use netrepair_nn::{Layer, Network, NetworkBuilder, NnError, Rearrange, SliceAxis};
use prost::Message;

/// `[n, 2, 3]` holding `0, 1, ..., 6n - 1`.
fn iota(n: usize) -> Tensor {
    Tensor::arange(0f64, (n * 6) as f64, &Device::Cpu)
        .unwrap()
        .reshape((n, 2, 3))
        .unwrap()
}

/// One node reading `x` `[N, 2, 3]` (symbolic batch) with the given constants.
fn one_op(
    n: netrepair_nn::onnx::proto::NodeProto,
    inits: Vec<netrepair_nn::onnx::proto::TensorProto>,
    out: &[i64],
) -> Network {
    let bytes = model(vec![n], inits, vinfo("x", &[-1, 2, 3]), vinfo("y", out));
    load_onnx_bytes(&bytes, "op").unwrap()
}

fn run(net: &Network, x: &Tensor) -> Vec<f64> {
    to_vec(&net.forward(x).unwrap())
}

#[test]
fn transpose_swaps_the_sample_axes() {
    let net = one_op(
        node(
            "Transpose",
            "tr",
            &["x"],
            "y",
            vec![attr_ints("perm", &[0, 2, 1])],
        ),
        vec![],
        &[-1, 3, 2],
    );
    assert_eq!(net.output_shape(), &[3, 2]);
    assert_eq!(run(&net, &iota(1)), vec![0., 3., 1., 4., 2., 5.]);
}

#[test]
fn transpose_of_the_batch_axis_is_refused() {
    let bytes = model(
        vec![node(
            "Transpose",
            "tr",
            &["x"],
            "y",
            vec![attr_ints("perm", &[1, 0, 2])],
        )],
        vec![],
        vinfo("x", &[-1, 2, 3]),
        vinfo("y", &[2, -1, 3]),
    );
    let err = load_onnx_bytes(&bytes, "op").unwrap_err().to_string();
    assert!(err.contains("'tr'") && err.contains("batch"), "{err}");
}

#[test]
fn slice_with_a_negative_step_walks_backwards() {
    // x[:, :, 2:0:-1] takes columns 2 and 1.
    let net = one_op(
        node("Slice", "sl", &["x", "s", "e", "a", "st"], "y", vec![]),
        vec![
            tensor_i64("s", &[1], &[2]),
            tensor_i64("e", &[1], &[0]),
            tensor_i64("a", &[1], &[2]),
            tensor_i64("st", &[1], &[-1]),
        ],
        &[-1, 2, 2],
    );
    assert_eq!(net.output_shape(), &[2, 2]);
    assert_eq!(run(&net, &iota(1)), vec![2., 1., 5., 4.]);
}

#[test]
fn slice_clamps_its_end_like_onnx() {
    // x[:, 1:INT64_MAX] on axis 1 (the exporters' "to the end").
    let net = one_op(
        node("Slice", "sl", &["x", "s", "e", "a"], "y", vec![]),
        vec![
            tensor_i64("s", &[1], &[1]),
            tensor_i64("e", &[1], &[i64::MAX]),
            tensor_i64("a", &[1], &[1]),
        ],
        &[-1, 1, 3],
    );
    assert_eq!(run(&net, &iota(2)), vec![3., 4., 5., 9., 10., 11.]);
}

#[test]
fn gather_keeps_or_drops_the_axis() {
    let list = one_op(
        node("Gather", "g", &["x", "i"], "y", vec![attr_i("axis", 2)]),
        vec![tensor_i64("i", &[2], &[2, 0])],
        &[-1, 2, 2],
    );
    assert_eq!(run(&list, &iota(1)), vec![2., 0., 5., 3.]);
    let scalar = one_op(
        node("Gather", "g", &["x", "i"], "y", vec![attr_i("axis", 1)]),
        vec![tensor_i64("i", &[], &[-1])],
        &[-1, 3],
    );
    assert_eq!(scalar.output_shape(), &[3]);
    assert_eq!(run(&scalar, &iota(1)), vec![3., 4., 5.]);
}

#[test]
fn pad_adds_the_constant_around() {
    // One row of 9 above, two columns of 9 on the right.
    let net = one_op(
        node("Pad", "p", &["x", "pads", "v"], "y", vec![]),
        vec![
            tensor_i64("pads", &[6], &[0, 1, 0, 0, 0, 2]),
            tensor("v", &[], &[9.0]),
        ],
        &[-1, 3, 5],
    );
    assert_eq!(net.output_shape(), &[3, 5]);
    assert_eq!(
        run(&net, &iota(1)),
        vec![9., 9., 9., 9., 9., 0., 1., 2., 9., 9., 3., 4., 5., 9., 9.]
    );
}

#[test]
fn reduce_sum_over_an_axis() {
    let net = one_op(
        node(
            "ReduceSum",
            "r",
            &["x", "ax"],
            "y",
            vec![attr_i("keepdims", 0)],
        ),
        vec![tensor_i64("ax", &[1], &[1])],
        &[-1, 3],
    );
    assert_eq!(run(&net, &iota(1)), vec![3., 5., 7.]);
}

#[test]
fn split_and_concat_reorder_the_columns() {
    // Split columns into [0] and [1, 2], concatenate them back as [1, 2, 0].
    let bytes = model(
        vec![
            node_n(
                "Split",
                "sp",
                &["x", "sizes"],
                &["a", "b"],
                vec![attr_i("axis", 2)],
            ),
            node("Concat", "cat", &["b", "a"], "y", vec![attr_i("axis", -1)]),
        ],
        vec![tensor_i64("sizes", &[2], &[1, 2])],
        vinfo("x", &[-1, 2, 3]),
        vinfo("y", &[-1, 2, 3]),
    );
    let net = load_onnx_bytes(&bytes, "split").unwrap();
    assert_eq!(run(&net, &iota(1)), vec![1., 2., 0., 4., 5., 3.]);
}

#[test]
fn shape_arithmetic_is_folded() {
    // Reshape(x, Concat(Gather(Shape(x), [0]), [-1])): PyTorch's flatten, with the batch fixed
    // at one by the file.
    let bytes = model(
        vec![
            node("Shape", "sh", &["x"], "s", vec![]),
            node("Gather", "g", &["s", "zero"], "b", vec![attr_i("axis", 0)]),
            node(
                "Concat",
                "c",
                &["b", "minus1"],
                "target",
                vec![attr_i("axis", 0)],
            ),
            node("Reshape", "r", &["x", "target"], "y", vec![]),
        ],
        vec![
            tensor_i64("zero", &[1], &[0]),
            tensor_i64("minus1", &[1], &[-1]),
        ],
        vinfo("x", &[1, 2, 3]),
        vinfo("y", &[1, 6]),
    );
    let net = load_onnx_bytes(&bytes, "fold").unwrap();
    assert_eq!(net.nodes().len(), 1, "only the reshape is left");
    assert_eq!(net.output_shape(), &[6]);
    // Integer division of shape values truncates (47 - 46) / 2 = 0, as onnxruntime does.
    let bytes = model(
        vec![
            node("Shape", "sh", &["x"], "s", vec![]),
            node("Gather", "g", &["s", "two"], "w", vec![attr_i("axis", 0)]),
            node("Div", "d", &["w", "two"], "half", vec![]),
            node("Unsqueeze", "u", &["half", "zero"], "h1", vec![]),
            node(
                "Concat",
                "c",
                &["zeros2", "h1", "zeros2", "h1"],
                "pads",
                vec![attr_i("axis", 0)],
            ),
            node("Pad", "p", &["x", "pads"], "y", vec![]),
        ],
        vec![
            tensor_i64("two", &[], &[2]),
            tensor_i64("zero", &[1], &[0]),
            tensor_i64("zeros2", &[2], &[0, 0]),
        ],
        vinfo("x", &[1, 2, 3]),
        vinfo("y", &[1, 2, 5]),
    );
    // Shape [1, 2, 3]: w = 3, half = 1: pads [0, 0, 1, 0, 0, 1] pad one column on each side.
    let net = load_onnx_bytes(&bytes, "fold").unwrap();
    assert_eq!(net.output_shape(), &[2, 5]);
    assert_eq!(
        run(&net, &iota(1)),
        vec![0., 0., 1., 2., 0., 0., 3., 4., 5., 0.]
    );
}

#[test]
fn the_shape_of_an_open_batch_is_refused() {
    let bytes = model(
        vec![
            node("Shape", "sh", &["x"], "s", vec![]),
            node("Reshape", "r", &["x", "s"], "y", vec![]),
        ],
        vec![],
        vinfo("x", &[-1, 2, 3]),
        vinfo("y", &[-1, 2, 3]),
    );
    let err = load_onnx_bytes(&bytes, "shape").unwrap_err().to_string();
    assert!(err.contains("'sh'") && err.contains("batch size"), "{err}");
}

#[test]
fn a_batch_of_one_can_lose_its_batch_axis() {
    // Gather(x, 0) on axis 0, then a sum over every axis: a scalar per sample, like the
    // carvana UNets' pixel count.
    let bytes = model(
        vec![
            node("Gather", "g", &["x", "zero"], "s", vec![attr_i("axis", 0)]),
            node("ReduceSum", "r", &["s"], "y", vec![attr_i("keepdims", 0)]),
        ],
        vec![tensor_i64("zero", &[], &[0])],
        vinfo("x", &[1, 2, 3]),
        vinfo("y", &[]),
    );
    let net = load_onnx_bytes(&bytes, "b1").unwrap();
    assert_eq!(net.output_shape(), &[] as &[usize]);
    // Several samples run side by side: each one's sum.
    assert_eq!(run(&net, &iota(2)), vec![15., 51.]);
    // With an open batch size the same graph is refused by node name.
    let bytes = model(
        vec![node(
            "Gather",
            "g",
            &["x", "zero"],
            "y",
            vec![attr_i("axis", 0)],
        )],
        vec![tensor_i64("zero", &[], &[0])],
        vinfo("x", &[-1, 2, 3]),
        vinfo("y", &[2, 3]),
    );
    let err = load_onnx_bytes(&bytes, "b1").unwrap_err().to_string();
    assert!(err.contains("'g'") && err.contains("batch"), "{err}");
}

#[test]
fn a_rank_one_input_is_one_sample_and_exports_as_it_came() {
    // y = W1 relu(W0 x + b0) + b1 with W [out, in] as the left operand (the VNN-COMP test nets).
    let bytes = rank_one_mlp();
    let mut net = load_onnx_bytes(&bytes, "rank1").unwrap();
    assert_eq!(net.input_shape(), &[1]);
    assert_eq!(
        net.nodes().len(),
        3,
        "MatMul + Add fused into linear layers"
    );
    // x = 2: relu([2.5, -2]) = [2.5, 0] -> 2 * 2.5 - 1 = 4; x = -1: relu([-0.5, 1]) -> 3 - 1 = 2.
    assert_eq!(run(&net, &t(vec![2.0, -1.0], &[2, 1])), vec![4.0, 2.0]);
    // An edited weight is written back into the rank-1 graph, whose signature stays.
    let id = net.find_param("W1").unwrap();
    net.set_param(id, t(vec![1.0, 3.0], &[1, 2])).unwrap();
    let m = to_model(&net).unwrap();
    let g = m.graph.as_ref().unwrap();
    assert_eq!(
        g.input[0].r#type,
        ModelProto::decode(bytes.as_slice())
            .unwrap()
            .graph
            .unwrap()
            .input[0]
            .r#type
    );
    let back = load_onnx_bytes(&m.encode_to_vec(), "back").unwrap();
    assert_eq!(run(&back, &t(vec![2.0], &[1, 1])), vec![1.5]);
}

#[test]
fn forward_only_operators_compute_what_onnx_says() {
    // softmax(x) * x, argmax one-hot, equality and casts on a [N, 3] input.
    let bytes = model_opset(
        13,
        vec![
            node("Softmax", "sm", &["x"], "p", vec![attr_i("axis", -1)]),
            node("Mul", "mul", &["p", "x"], "px", vec![]),
            node(
                "ArgMax",
                "am",
                &["px"],
                "k",
                vec![attr_i("axis", 1), attr_i("keepdims", 0)],
            ),
            node("OneHot", "oh", &["k", "depth", "vals"], "code", vec![]),
            node("Cast", "c", &["x"], "xi", vec![attr_i("to", 7)]),
            node("Equal", "eq", &["code", "xi"], "same", vec![]),
            node("Cast", "c2", &["same"], "y", vec![attr_i("to", 1)]),
        ],
        vec![
            tensor_i64("depth", &[], &[3]),
            tensor("vals", &[2], &[0.0, 1.0]),
        ],
        vinfo("x", &[-1, 3]),
        vinfo("y", &[-1, 3]),
    );
    let net = load_onnx_bytes(&bytes, "opaque").unwrap();
    assert!(net.nodes().iter().any(|n| n.layer().is_forward_only()));
    // x = [0, 1, -1.5]: px = softmax(x) * x is largest at index 1, so the code is [0, 1, 0];
    // trunc(x) = [0, 1, -1]; equal -> [1, 1, 0].
    assert_eq!(
        run(&net, &t(vec![0.0, 1.0, -1.5], &[1, 3])),
        vec![1., 1., 0.]
    );
    // The soft-max itself, by hand: e^0, e^1, e^-1.5 normalised.
    let soft = model_opset(
        11,
        vec![node("Softmax", "sm", &["x"], "y", vec![])],
        vec![],
        vinfo("x", &[-1, 3]),
        vinfo("y", &[-1, 3]),
    );
    let net = load_onnx_bytes(&soft, "soft").unwrap();
    let e = [1.0f64, 1f64.exp(), (-1.5f64).exp()];
    let s: f64 = e.iter().sum();
    let y = run(&net, &t(vec![0.0, 1.0, -1.5], &[1, 3]));
    for (a, b) in y.iter().zip(e.iter().map(|v| v / s)) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

#[test]
fn conv_transpose_spreads_each_pixel_over_its_kernel() {
    // A [1, 2, 2] input of ones through a 2x2 kernel [1, 2; 3, 4] with stride 2: four copies.
    let bytes = model(
        vec![node(
            "ConvTranspose",
            "up",
            &["x", "w", "b"],
            "y",
            vec![
                attr_ints("strides", &[2, 2]),
                attr_ints("kernel_shape", &[2, 2]),
            ],
        )],
        vec![
            tensor("w", &[1, 1, 2, 2], &[1., 2., 3., 4.]),
            tensor("b", &[1], &[0.5]),
        ],
        vinfo("x", &[1, 1, 2, 2]),
        vinfo("y", &[1, 1, 4, 4]),
    );
    let net = load_onnx_bytes(&bytes, "up").unwrap();
    assert_eq!(net.output_shape(), &[1, 4, 4]);
    let y = run(&net, &t(vec![1.0; 4], &[1, 1, 2, 2]));
    let row = |a: f64, b: f64| vec![a + 0.5, b + 0.5, a + 0.5, b + 0.5];
    let want: Vec<f64> = [row(1., 2.), row(3., 4.), row(1., 2.), row(3., 4.)].concat();
    assert_eq!(y, want);
}

#[test]
fn rearrangements_are_the_linear_maps_they_report() {
    // Every rearrangement's sources reproduce its forward pass on a random input.
    let shape = [2usize, 3, 4];
    let ops = vec![
        Rearrange::Transpose(vec![2, 0, 1]),
        Rearrange::Slice(vec![
            SliceAxis {
                axis: 2,
                start: 3,
                step: -2,
                len: 2,
            },
            SliceAxis {
                axis: 1,
                start: 0,
                step: 1,
                len: 2,
            },
        ]),
        Rearrange::Pad {
            before: vec![0, 1, 0],
            after: vec![1, 0, 2],
            value: -0.5,
        },
        Rearrange::Gather {
            axis: 1,
            indices: vec![2, 2, 0],
            keep_axis: true,
        },
        Rearrange::Gather {
            axis: 0,
            indices: vec![1],
            keep_axis: false,
        },
        Rearrange::ReduceSum {
            axes: vec![0, 2],
            keepdims: true,
        },
        Rearrange::ReduceSum {
            axes: vec![1],
            keepdims: false,
        },
    ];
    let x = Tensor::randn(0f64, 1.0, (1, 2, 3, 4), &Device::Cpu).unwrap();
    let xv = to_vec(&x);
    for op in ops {
        let y = to_vec(&op.forward(&x).unwrap());
        let (rows, bias) = op.sources(&shape).unwrap();
        assert_eq!(rows.len(), y.len(), "{op:?}");
        for (o, row) in rows.iter().enumerate() {
            let v: f64 = bias[o] + row.iter().map(|&j| xv[j as usize]).sum::<f64>();
            assert!(
                (v - y[o]).abs() < 1e-12,
                "{op:?}: output {o}: {v} vs {}",
                y[o]
            );
        }
        let out = op.output_shape("op", &shape).unwrap();
        assert_eq!(out.iter().product::<usize>(), y.len(), "{op:?}");
    }
}

#[test]
fn built_rearrangements_export_and_load_back() {
    // A network of every rearrangement and a concatenation, written as a fresh opset-13 graph.
    let mut b = NetworkBuilder::new(vec![2, 3]);
    b.push("tr", Layer::Rearrange(Rearrange::Transpose(vec![1, 0])))
        .unwrap();
    b.push(
        "pad",
        Layer::Rearrange(Rearrange::Pad {
            before: vec![1, 0],
            after: vec![0, 1],
            value: 2.0,
        }),
    )
    .unwrap();
    let s = b
        .push(
            "slice",
            Layer::Rearrange(Rearrange::Slice(vec![SliceAxis {
                axis: 1,
                start: 2,
                step: -1,
                len: 3,
            }])),
        )
        .unwrap();
    let g = b
        .push_with_inputs(
            "gather",
            Layer::Rearrange(Rearrange::Gather {
                axis: 0,
                indices: vec![3, 0],
                keep_axis: true,
            }),
            vec![s],
        )
        .unwrap();
    b.push_with_inputs("cat", Layer::Concat { axis: 0, inputs: 2 }, vec![g, s])
        .unwrap();
    b.push(
        "sum",
        Layer::Rearrange(Rearrange::ReduceSum {
            axes: vec![1],
            keepdims: false,
        }),
    )
    .unwrap();
    let net = b.build().unwrap();
    let bytes = to_model(&net).unwrap().encode_to_vec();
    let back = load_onnx_bytes(&bytes, "rearrange").unwrap();
    let x = Tensor::randn(0f64, 1.0, (3, 2, 3), &Device::Cpu).unwrap();
    let (a, c) = (run(&net, &x), run(&back, &x));
    assert_eq!(a.len(), 3 * 6);
    for (u, v) in a.iter().zip(&c) {
        assert!((u - v).abs() < 1e-5, "{u} vs {v}");
    }
}

#[test]
fn forward_only_layers_are_not_exported_fresh() {
    let bytes = model(
        vec![node("Softmax", "sm", &["x"], "y", vec![])],
        vec![],
        vinfo("x", &[-1, 3]),
        vinfo("y", &[-1, 3]),
    );
    let net = load_onnx_bytes(&bytes, "soft").unwrap();
    // Drop-in export writes the original graph back; a copy without it cannot be written.
    assert!(to_model(&net).is_ok());
    let mut b = NetworkBuilder::new(vec![3]);
    b.push("sm", net.nodes()[0].layer().clone()).unwrap();
    let err = to_model(&b.build().unwrap()).unwrap_err();
    assert!(matches!(err, NnError::NotExportable { .. }), "{err}");
}

#[test]
fn unsupported_configurations_name_the_node() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            model(
                vec![node(
                    "Pad",
                    "refl",
                    &["x", "pads"],
                    "y",
                    vec![AttributeProto {
                        name: "mode".into(),
                        r#type: AttributeType::String as i32,
                        s: b"reflect".to_vec(),
                        ..Default::default()
                    }],
                )],
                vec![tensor_i64("pads", &[6], &[0, 0, 1, 0, 0, 1])],
                vinfo("x", &[-1, 2, 3]),
                vinfo("y", &[-1, 2, 5]),
            ),
            "'refl'",
        ),
        (
            model(
                vec![node(
                    "Gather",
                    "gx",
                    &["x", "idx"],
                    "y",
                    vec![attr_i("axis", 1)],
                )],
                vec![tensor_i64("idx", &[1], &[5])],
                vinfo("x", &[-1, 2, 3]),
                vinfo("y", &[-1, 1, 3]),
            ),
            "'gx'",
        ),
        (
            model(
                vec![node("Cast", "cs", &["x"], "y", vec![attr_i("to", 8)])],
                vec![],
                vinfo("x", &[-1, 3]),
                vinfo("y", &[-1, 3]),
            ),
            "'cs'",
        ),
    ];
    for (bytes, name) in cases {
        let err = load_onnx_bytes(&bytes, "bad").unwrap_err().to_string();
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn element_wise_functions_and_means() {
    // y = mean over the last axis of leaky_relu(-x) (alpha 0.5), clipped to [-1, 2], plus
    // |x|, e^x, floor and sign checked one by one.
    let bytes = model_opset(
        13,
        vec![
            node("Neg", "neg", &["x"], "nx", vec![]),
            node("LeakyRelu", "lr", &["nx"], "l", vec![attr_f("alpha", 0.5)]),
            node("Clip", "clip", &["l", "lo", "hi"], "c", vec![]),
            node(
                "ReduceMean",
                "mean",
                &["c"],
                "y",
                vec![attr_ints("axes", &[1]), attr_i("keepdims", 0)],
            ),
        ],
        vec![tensor("lo", &[], &[-1.0]), tensor("hi", &[], &[2.0])],
        vinfo("x", &[-1, 4]),
        vinfo("y", &[-1]),
    );
    let net = load_onnx_bytes(&bytes, "unary").unwrap();
    // x = [-3, -1, 1, 4]: -x = [3, 1, -1, -4] -> [3, 1, -0.5, -2] -> [2, 1, -0.5, -1]: mean 0.375.
    assert_eq!(
        run(&net, &t(vec![-3.0, -1.0, 1.0, 4.0], &[1, 4])),
        vec![0.375]
    );
    let x = t(vec![-1.5, 0.0, 2.25], &[1, 3]);
    for (op, want) in [
        ("Abs", vec![1.5, 0.0, 2.25]),
        ("Floor", vec![-2.0, 0.0, 2.0]),
        ("Sign", vec![-1.0, 0.0, 1.0]),
        ("Exp", vec![(-1.5f64).exp(), 1.0, 2.25f64.exp()]),
    ] {
        let bytes = model(
            vec![node(op, "f", &["x"], "y", vec![])],
            vec![],
            vinfo("x", &[-1, 3]),
            vinfo("y", &[-1, 3]),
        );
        let y = run(&load_onnx_bytes(&bytes, op).unwrap(), &x);
        assert_eq!(y, want, "{op}");
    }
}

#[test]
fn a_constant_minus_the_input() {
    // y = [1, 2, 3] - x, the exporters' "1 - x".
    let bytes = model(
        vec![node("Sub", "sub", &["c", "x"], "y", vec![])],
        vec![tensor("c", &[3], &[1.0, 2.0, 3.0])],
        vinfo("x", &[-1, 3]),
        vinfo("y", &[-1, 3]),
    );
    let net = load_onnx_bytes(&bytes, "sub").unwrap();
    assert!(!net.nodes().iter().any(|n| n.layer().is_forward_only()));
    assert_eq!(
        run(&net, &t(vec![0.5, -1.0, 3.0], &[1, 3])),
        vec![0.5, 3.0, 0.0]
    );
    // A constant divided by the input is named as unsupported.
    let bytes = model(
        vec![node("Div", "div", &["c", "x"], "y", vec![])],
        vec![tensor("c", &[3], &[1.0, 2.0, 3.0])],
        vinfo("x", &[-1, 3]),
        vinfo("y", &[-1, 3]),
    );
    let err = load_onnx_bytes(&bytes, "div").unwrap_err().to_string();
    assert!(err.contains("'div'"), "{err}");
}

#[test]
fn hostile_shapes_are_refused_not_allocated() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // An empty slice.
        (
            model(
                vec![node("Slice", "empty", &["x", "s", "e", "a"], "y", vec![])],
                vec![
                    tensor_i64("s", &[1], &[2]),
                    tensor_i64("e", &[1], &[2]),
                    tensor_i64("a", &[1], &[2]),
                ],
                vinfo("x", &[-1, 2, 3]),
                vinfo("y", &[-1, 2, 0]),
            ),
            "'empty'",
        ),
        // Padding to 2^40 elements.
        (
            model(
                vec![node("Pad", "huge", &["x", "pads"], "y", vec![])],
                vec![tensor_i64("pads", &[6], &[0, 0, 0, 0, 1 << 20, 1 << 20])],
                vinfo("x", &[-1, 2, 3]),
                vinfo("y", &[-1, 2, 3]),
            ),
            "'huge'",
        ),
        // A constant of 2^60 elements.
        (
            model(
                vec![
                    node("ConstantOfShape", "big", &["shape"], "c", vec![]),
                    node("Add", "add", &["x", "c"], "y", vec![]),
                ],
                vec![tensor_i64("shape", &[2], &[1 << 30, 1 << 30])],
                vinfo("x", &[-1, 3]),
                vinfo("y", &[-1, 3]),
            ),
            "'big'",
        ),
        // A slice step of i64::MIN.
        (
            model(
                vec![node(
                    "Slice",
                    "step",
                    &["x", "s", "e", "a", "st"],
                    "y",
                    vec![],
                )],
                vec![
                    tensor_i64("s", &[1], &[2]),
                    tensor_i64("e", &[1], &[0]),
                    tensor_i64("a", &[1], &[2]),
                    tensor_i64("st", &[1], &[i64::MIN]),
                ],
                vinfo("x", &[-1, 2, 3]),
                vinfo("y", &[-1, 2, 1]),
            ),
            "'step'",
        ),
        // A concatenation of nothing.
        (
            model(
                vec![node("Concat", "none", &[], "y", vec![attr_i("axis", 0)])],
                vec![],
                vinfo("x", &[-1, 3]),
                vinfo("y", &[-1, 3]),
            ),
            "'none'",
        ),
    ];
    for (bytes, name) in cases {
        let err = load_onnx_bytes(&bytes, "hostile").unwrap_err().to_string();
        assert!(err.contains(name), "{err}");
    }
}

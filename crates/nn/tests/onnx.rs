//! ONNX import and export: round trips, drop-in re-emission, layouts, and bad files.

mod common;

use candle_core::Tensor;
use common::graph::{attr_f, attr_i, model, node, tensor, vinfo};
use common::{t, to_vec, zoo, zoo_input};
use netrepair_nn::onnx::proto::ModelProto;
use netrepair_nn::onnx::{load_onnx_bytes, to_model};
use netrepair_nn::{load_onnx, save_onnx, Network, NnError};
use prost::Message;

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    to_vec(a)
        .iter()
        .zip(to_vec(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn bytes(net: &Network) -> Vec<u8> {
    to_model(net).unwrap().encode_to_vec()
}

/// Rounds every parameter to f32 so file round trips are exact.
fn f32_exact(mut net: Network) -> Network {
    for id in net.param_ids() {
        let v = net
            .param(id)
            .unwrap()
            .value()
            .to_dtype(candle_core::DType::F32)
            .unwrap();
        net.set_param(id, v).unwrap();
    }
    net
}

#[test]
fn fresh_export_round_trips_every_layer_type() {
    let net = f32_exact(zoo(1));
    let back = load_onnx_bytes(&bytes(&net), "zoo").unwrap();
    let x = zoo_input(2, 4);
    // Parameters are f32-exact; the normalisation constants (0.1, -0.2) and the batch-norm
    // epsilon are stored as float32 too, which moves the outputs by ~1e-10.
    assert!(max_diff(&net.forward(&x).unwrap(), &back.forward(&x).unwrap()) < 1e-8);
    let kinds = |n: &Network| {
        n.nodes()
            .iter()
            .map(|n| n.layer().kind())
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(&net), kinds(&back));
    assert_eq!(back.input_shape(), &[2, 7, 7]);
    assert_eq!(back.param_count(), net.param_count());
}

#[test]
fn reemit_changes_only_the_edited_initializer() {
    let original = bytes(&f32_exact(zoo(3)));
    let mut net = load_onnx_bytes(&original, "zoo").unwrap();
    let id = net.find_param("fc2.weight").unwrap();
    let mut w = net.param(id).unwrap().to_vec().unwrap();
    w[7] += 0.25;
    net.set_param(id, t(w.clone(), &[5, 6])).unwrap();
    let model = to_model(&net).unwrap();
    let before = ModelProto::decode(original.as_slice()).unwrap();
    let (g0, g1) = (
        before.graph.as_ref().unwrap(),
        model.graph.as_ref().unwrap(),
    );
    // Same nodes, names, inputs and outputs: a drop-in replacement.
    assert_eq!(g0.node, g1.node);
    assert_eq!(g0.input, g1.input);
    assert_eq!(g0.output, g1.output);
    let changed: Vec<&str> = g0
        .initializer
        .iter()
        .zip(&g1.initializer)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.name.as_str())
        .collect();
    assert_eq!(changed, vec!["fc2.weight"]);
    // Reloading gives the edited network.
    let back = load_onnx_bytes(&model.encode_to_vec(), "edited").unwrap();
    assert_eq!(back.param(id).unwrap().to_vec().unwrap(), w);
    let x = zoo_input(4, 3);
    assert_eq!(
        max_diff(&net.forward(&x).unwrap(), &back.forward(&x).unwrap()),
        0.0
    );
}

#[test]
fn save_is_atomic_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.onnx");
    let net = f32_exact(netrepair_nn::aprnn_example());
    save_onnx(&net, &path).unwrap();
    let back = load_onnx(&path).unwrap();
    let x = t(vec![-1.5, -0.5], &[2, 1]);
    assert_eq!(to_vec(&back.forward(&x).unwrap()), vec![0.25, -0.25]);
    // Only the file itself is left behind (no temporary files).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

// ---- hand-built ONNX graphs for the layouts real exporters produce ----

/// MatMul + Add (ACAS Xu's layout: weight stored [in, out]) fused into one linear layer.
fn matmul_add() -> Vec<u8> {
    model(
        vec![
            node("MatMul", "mm", &["x", "W"], "h", vec![]),
            node("Add", "add", &["h", "B"], "y", vec![]),
        ],
        // W [in=2, out=3] = [[1, 2, 3], [4, 5, 6]]
        vec![
            tensor("W", &[2, 3], &[1., 2., 3., 4., 5., 6.]),
            tensor("B", &[3], &[0.5, -0.5, 1.0]),
        ],
        vinfo("x", &[1, 2]),
        vinfo("y", &[1, 3]),
    )
}

#[test]
fn matmul_add_is_fused_and_written_back_in_its_layout() {
    let mut net = load_onnx_bytes(&matmul_add(), "mm").unwrap();
    assert_eq!(net.nodes().len(), 1, "MatMul and Add become one Linear");
    // y = x W + B; x = [1, 1] -> [5.5, 6.5, 10]
    assert_eq!(
        to_vec(&net.forward(&t(vec![1.0, 1.0], &[1, 2])).unwrap()),
        vec![5.5, 6.5, 10.0]
    );
    // IR weight is [out, in] = W^T.
    let wid = net.find_param("W").unwrap();
    assert_eq!(
        net.param(wid).unwrap().to_vec().unwrap(),
        vec![1., 4., 2., 5., 3., 6.]
    );
    net.set_param(wid, t(vec![1., 4., 2., 5., 3., 7.], &[3, 2]))
        .unwrap();
    let m = to_model(&net).unwrap();
    let g = m.graph.as_ref().unwrap();
    assert_eq!(g.node.len(), 2);
    let w = g.initializer.iter().find(|i| i.name == "W").unwrap();
    assert_eq!(w.dims, vec![2, 3]);
    let stored: Vec<f32> = w
        .raw_data
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(stored, vec![1., 2., 3., 4., 5., 7.]);
}

#[test]
fn gemm_layouts_scaling_and_a_missing_bias() {
    // Gemm with transB = 0, alpha = 2 and no C: y = 2 * x B.
    let bytes = model(
        vec![node(
            "Gemm",
            "g",
            &["x", "B"],
            "y",
            vec![attr_i("transB", 0), attr_f("alpha", 2.0)],
        )],
        vec![tensor("B", &[2, 2], &[1., 2., 3., 4.])],
        vinfo("x", &[1, 2]),
        vinfo("y", &[1, 2]),
    );
    let mut net = load_onnx_bytes(&bytes, "gemm").unwrap();
    // x = [1, 0] -> 2 * [1, 2] = [2, 4]
    assert_eq!(
        to_vec(&net.forward(&t(vec![1.0, 0.0], &[1, 2])).unwrap()),
        vec![2.0, 4.0]
    );
    let bias = net.find_param("g.bias").unwrap();
    net.set_param(bias, t(vec![0.5, -1.0], &[2])).unwrap();
    let w = net.find_param("B").unwrap();
    net.set_param(w, t(vec![2.0, 6.0, 4.0, 8.0], &[2, 2]))
        .unwrap();
    let m = to_model(&net).unwrap();
    let g = m.graph.as_ref().unwrap();
    assert_eq!(g.node[0].input.len(), 3, "the bias was appended as input C");
    let back = load_onnx_bytes(&m.encode_to_vec(), "gemm2").unwrap();
    assert_eq!(
        to_vec(&back.forward(&t(vec![1.0, 0.0], &[1, 2])).unwrap()),
        vec![2.5, 3.0]
    );
    // Stored B = IR weight^T / alpha = [[1, 2], [3, 4]] (unchanged values: 2*B^T = [[2,6],[4,8]]).
    assert_eq!(
        back.param(back.find_param("B").unwrap())
            .unwrap()
            .to_vec()
            .unwrap(),
        vec![2.0, 6.0, 4.0, 8.0]
    );
}

#[test]
fn matmul_without_bias_cannot_export_a_changed_bias() {
    let bytes = model(
        vec![node("MatMul", "mm", &["x", "W"], "y", vec![])],
        vec![tensor("W", &[2, 2], &[1., 0., 0., 1.])],
        vinfo("x", &[1, 2]),
        vinfo("y", &[1, 2]),
    );
    let mut net = load_onnx_bytes(&bytes, "mm").unwrap();
    to_model(&net).expect("unchanged network exports");
    net.set_param(net.find_param("mm.bias").unwrap(), t(vec![1.0, 0.0], &[2]))
        .unwrap();
    assert!(matches!(to_model(&net), Err(NnError::NotExportable { .. })));
}

// ---- bad input ----

#[test]
fn truncated_file_is_rejected() {
    let full = bytes(&zoo(5));
    let err = load_onnx_bytes(&full[..full.len() / 2], "half.onnx").unwrap_err();
    assert!(matches!(err, NnError::NotOnnx { .. }), "{err}");
    assert!(err.to_string().contains("half.onnx"));
}

#[test]
fn non_onnx_bytes_are_rejected() {
    for junk in [
        b"hello, this is a text file\n".as_slice(),
        b"".as_slice(),
        &[0xff; 64],
    ] {
        let err = load_onnx_bytes(junk, "junk.txt").unwrap_err();
        assert!(matches!(err, NnError::NotOnnx { .. }), "{err}");
    }
}

#[test]
fn every_unsupported_op_is_listed() {
    let bytes = model(
        vec![
            node("MatMul", "mm", &["x", "W"], "h", vec![]),
            node("Einsum", "soft", &["h"], "s", vec![]),
            node("LSTM", "rnn", &["s"], "y", vec![]),
        ],
        vec![tensor("W", &[2, 2], &[1., 0., 0., 1.])],
        vinfo("x", &[1, 2]),
        vinfo("y", &[1, 2]),
    );
    let err = load_onnx_bytes(&bytes, "ops").unwrap_err().to_string();
    assert!(
        err.contains("Einsum (node 'soft')") && err.contains("LSTM (node 'rnn')"),
        "{err}"
    );
}

#[test]
fn nan_weights_are_rejected_with_their_node() {
    let bytes = model(
        vec![node(
            "Gemm",
            "layer7",
            &["x", "W"],
            "y",
            vec![attr_i("transB", 1)],
        )],
        vec![tensor("W", &[2, 2], &[1., f32::NAN, 0., 1.])],
        vinfo("x", &[1, 2]),
        vinfo("y", &[1, 2]),
    );
    let err = load_onnx_bytes(&bytes, "nan").unwrap_err();
    match &err {
        // transB = 1 stores W as [out, in], the IR's layout: the NaN is at flat index 1.
        NnError::NonFinite {
            node, param, index, ..
        } => assert_eq!((node.as_str(), param.as_str(), *index), ("layer7", "W", 1)),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn missing_file_names_the_path() {
    let err = load_onnx("/definitely/not/here.onnx")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/definitely/not/here.onnx"), "{err}");
}

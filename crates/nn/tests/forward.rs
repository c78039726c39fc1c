//! Forward passes on hand-computed fixtures; expected values derived by hand in comments.

mod common;

use candle_core::{DType, Tensor};
use common::{t, to_vec, zoo, zoo_input};
use netrepair_nn::{Conv2d, Layer, NetworkBuilder, Param, Pool2d};

#[test]
fn aprnn_fixture_outputs_and_patterns() {
    let net = netrepair_nn::aprnn_example();
    let x = t(vec![-1.5, -0.5, 1.0, 3.0], &[4, 1]);
    // x = -1.5: pre = [1.5, -3.5, -0.75] -> relu [1.5, 0, 0] -> 0.75 - 0.5 = 0.25
    // x = -0.5: pre = [0.5, -2.5, -0.25] -> [0.5, 0, 0] -> 0.25 - 0.5 = -0.25
    // x = 1.0:  pre = [-1, -1, 0.5] -> [0, 0, 0.5] -> 0.5 - 0.5 = 0
    // x = 3.0:  pre = [-3, 1, 1.5] -> [0, 1, 1.5] -> -0.5 + 1.5 - 0.5 = 0.5
    assert_eq!(
        to_vec(&net.forward(&x).unwrap()),
        vec![0.25, -0.25, 0.0, 0.5]
    );
    let trace = net.forward_trace(&x).unwrap();
    let pattern = trace.relu_pattern(&net, 1).unwrap();
    assert_eq!(
        pattern
            .to_dtype(DType::U32)
            .unwrap()
            .to_vec2::<u32>()
            .unwrap(),
        vec![vec![1, 0, 0], vec![1, 0, 0], vec![0, 0, 1], vec![0, 1, 1]]
    );
    assert_eq!(trace.values().len(), 4);
    assert!(trace.relu_pattern(&net, 0).is_err(), "node 0 is not a ReLU");
}

#[test]
fn f32_and_f64_agree() {
    let net = zoo(1);
    let x = zoo_input(2, 5);
    let y64 = to_vec(&net.forward(&x).unwrap());
    let y32 = to_vec(&net.forward(&x.to_dtype(DType::F32).unwrap()).unwrap());
    for (a, b) in y64.iter().zip(&y32) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn conv_with_asymmetric_padding_by_hand() {
    // Input 1x2x2 [[1, 2], [3, 4]], kernel 1x1x2x2 of ones, bias 0.5, padding top 1, left 0,
    // bottom 0, right 1: padded [[0, 0, 0], [1, 2, 0], [3, 4, 0]].
    // Windows: (0,0) 0+0+1+2 = 3, (0,1) 0+0+2+0 = 2, (1,0) 1+2+3+4 = 10, (1,1) 2+0+4+0 = 6.
    let conv = Conv2d::new(
        Param::new("w", t(vec![1.0; 4], &[1, 1, 2, 2])).unwrap(),
        Param::new("b", t(vec![0.5], &[1])).unwrap(),
        1,
        1,
        [1, 0, 0, 1],
        1,
    )
    .unwrap();
    let mut b = NetworkBuilder::new(vec![1, 2, 2]);
    b.push("conv", Layer::Conv2d(conv)).unwrap();
    let net = b.build().unwrap();
    let y = net
        .forward(&t(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]))
        .unwrap();
    assert_eq!(y.dims(), &[1, 1, 2, 2]);
    assert_eq!(to_vec(&y), vec![3.5, 2.5, 10.5, 6.5]);
}

/// Found by `make fuzz`: a kernel with a zero side used to underflow the window arithmetic.
#[test]
fn a_conv_kernel_with_an_empty_side_is_refused_by_name() {
    let conv = Conv2d::new(
        Param::new("w", t(vec![], &[1, 1, 0, 2])).unwrap(),
        Param::new("b", t(vec![0.5], &[1])).unwrap(),
        1,
        1,
        [0, 0, 0, 0],
        1,
    );
    let conv = conv.expect("the layer itself is built; its input shape decides");
    let mut b = NetworkBuilder::new(vec![1, 2, 2]);
    let e = b.push("conv", Layer::Conv2d(conv)).unwrap_err().to_string();
    assert!(e.contains("conv") && e.contains("empty kernel"), "{e}");
}

#[test]
fn pooling_by_hand_with_argmax() {
    // 1x3x3 input [[1, 5, 2], [7, 3, 9], [4, 8, 6]].
    let x = t(
        vec![1.0, 5.0, 2.0, 7.0, 3.0, 9.0, 4.0, 8.0, 6.0],
        &[1, 1, 3, 3],
    );
    // Max pool 2x2, stride 1, no padding: [[7, 9], [8, 9]]; arg-max cells 3, 5, 7, 5.
    let pool = Pool2d {
        kernel: [2, 2],
        stride: [1, 1],
        padding: [0; 4],
        count_include_pad: false,
    };
    let mut b = NetworkBuilder::new(vec![1, 3, 3]);
    b.push("max", Layer::MaxPool2d(pool)).unwrap();
    let net = b.build().unwrap();
    assert_eq!(to_vec(&net.forward(&x).unwrap()), vec![7.0, 9.0, 8.0, 9.0]);
    let trace = net.forward_trace(&x).unwrap();
    assert_eq!(
        trace
            .maxpool_argmax(&net, 0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<u32>()
            .unwrap(),
        vec![3, 5, 7, 5]
    );

    // Average pool 2x2, stride 2, padding bottom/right 1 -> windows [[1,5],[7,3]] = 4,
    // [[2],[9]] = 5.5 (two valid cells), [[4, 8]] = 6, [[6]] = 6 without counting padding;
    // with padding counted: 4, 11/4, 12/4, 6/4.
    for (include, expected) in [
        (false, vec![4.0, 5.5, 6.0, 6.0]),
        (true, vec![4.0, 2.75, 3.0, 1.5]),
    ] {
        let pool = Pool2d {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0, 1, 1],
            count_include_pad: include,
        };
        let mut b = NetworkBuilder::new(vec![1, 3, 3]);
        b.push("avg", Layer::AvgPool2d(pool)).unwrap();
        assert_eq!(to_vec(&b.build().unwrap().forward(&x).unwrap()), expected);
    }
}

#[test]
fn maxpool_gradient_goes_to_the_first_maximum_only() {
    // All-equal window: PyTorch / onnxruntime semantics give the whole gradient to one cell.
    let pool = Pool2d {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0; 4],
        count_include_pad: false,
    };
    let mut b = NetworkBuilder::new(vec![1, 2, 2]);
    b.push("max", Layer::MaxPool2d(pool)).unwrap();
    let net = b.build().unwrap();
    let g = net
        .gradients(&t(vec![1.0; 4], &[1, 1, 2, 2]), |y| y.sum_all())
        .unwrap();
    assert_eq!(to_vec(g.input.as_ref().unwrap()), vec![1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn activations_and_normalisation_by_hand() {
    let zoo = zoo(3);
    // sub then div: ((x - 0.1) / 0.5, (x + 0.2) / 2) per channel.
    let x = zoo_input(4, 1);
    let trace = zoo.forward_trace(&x).unwrap();
    let (xin, div) = (to_vec(&x), to_vec(trace.value(2)));
    for (k, (&a, &b)) in xin.iter().zip(&div).enumerate() {
        let expected = if k < 49 {
            (a - 0.1) / 0.5
        } else {
            (a + 0.2) / 2.0
        };
        assert!((b - expected).abs() < 1e-12);
    }
    // sigmoid(0) = 0.5, tanh(0) = 0; sigmoid(2) = 1 / (1 + e^-2).
    let mut b = NetworkBuilder::new(vec![2]);
    b.push("s", Layer::Sigmoid).unwrap();
    let net = b.build().unwrap();
    let y = to_vec(&net.forward(&t(vec![0.0, 2.0], &[1, 2])).unwrap());
    assert!((y[0] - 0.5).abs() < 1e-15 && (y[1] - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-15);
    // Sigmoid stays finite for very negative inputs.
    assert!(
        to_vec(&net.forward(&t(vec![-800.0, 800.0], &[1, 2])).unwrap())
            .iter()
            .all(|v| v.is_finite())
    );
}

#[test]
fn batchnorm_matches_its_affine_form() {
    let net = zoo(5);
    let x = zoo_input(6, 3);
    let trace = net.forward_trace(&x).unwrap();
    let Layer::BatchNorm(bn) = net.nodes()[3].layer() else {
        panic!("node 3 is the batch norm")
    };
    let (a, c) = bn.affine().unwrap();
    let (inp, out) = (to_vec(trace.value(3)), to_vec(trace.value(4)));
    // [N, 3, 4, 4]: channel of flat index k is (k / 16) % 3.
    for k in 0..inp.len() {
        let ch = (k / 16) % 3;
        assert!((out[k] - (a[ch] * inp[k] + c[ch])).abs() < 1e-12);
    }
}

#[test]
fn wrong_input_shape_is_an_error() {
    let net = netrepair_nn::aprnn_example();
    let err = net
        .forward(&t(vec![1.0, 2.0], &[1, 2]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shape mismatch") && err.contains("[1, 2]"),
        "{err}"
    );
    let u8s = Tensor::new(&[[1u8]], &candle_core::Device::Cpu).unwrap();
    assert!(net.forward(&u8s).is_err(), "integer inputs are rejected");
}

#[test]
fn parameters_by_name_and_index() {
    let mut net = netrepair_nn::aprnn_example();
    let id = net.find_param("fc2.bias").unwrap();
    assert_eq!((id.node, id.slot), (2, 1));
    assert_eq!(net.find_node("fc2").unwrap(), 2);
    assert_eq!(net.find_node("0").unwrap(), 0);
    assert!(net.find_node("nope").is_err());
    assert_eq!(net.affine_nodes(), vec![0, 2]);
    net.set_param(id, t(vec![0.0], &[1])).unwrap();
    // Output at x = -1.5 rises by 0.5 (the bias was -0.5).
    assert_eq!(
        to_vec(&net.forward(&t(vec![-1.5], &[1, 1])).unwrap()),
        vec![0.75]
    );
    assert!(
        net.set_param(id, t(vec![0.0, 1.0], &[2])).is_err(),
        "shape checked"
    );
    assert!(
        net.set_param(id, t(vec![f64::NAN], &[1])).is_err(),
        "NaN rejected"
    );
}

#[test]
fn a_network_cut_into_trunk_and_head_computes_the_same() {
    use netrepair_nn::{mlp, Activation};
    let net = mlp(&[3, 5, 4, 2], Activation::Relu, 11).unwrap();
    let x = Tensor::from_vec(
        vec![0.3f32, -0.2, 0.9, -1.0, 0.5, 0.1],
        (2, 3),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let whole = net.forward(&x).unwrap().to_vec2::<f32>().unwrap();
    for cut in 1..net.nodes().len() {
        let trunk = net.truncated(cut).unwrap();
        let head = net.head(cut).unwrap();
        assert_eq!(head.input_shape(), net.value_shape(cut));
        assert_eq!(head.nodes().len(), net.nodes().len() - cut);
        let y = head
            .forward(&trunk.forward(&x).unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(y, whole, "cut at {cut}");
    }
    assert!(net.head(0).is_err());
    assert!(net.head(net.nodes().len()).is_err());
}

#[test]
fn a_cut_across_a_skip_connection_is_refused_by_node_name() {
    use netrepair_nn::{Layer, NetworkBuilder};
    let mut b = NetworkBuilder::new(vec![2]);
    b.push("r1", Layer::Relu).unwrap();
    b.push("r2", Layer::Relu).unwrap();
    // "sum" reads value 1 (r1's output) and value 2 (r2's).
    b.push_with_inputs("sum", Layer::Add, vec![1, 2]).unwrap();
    let net = b.build().unwrap();
    assert!(net.head(1).is_ok());
    let e = net.head(2).unwrap_err().to_string();
    assert!(e.contains("sum") && e.contains("value 1"), "{e}");
}

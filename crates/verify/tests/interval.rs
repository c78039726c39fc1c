//! Interval bounds: sampled outputs always lie inside; degenerate boxes are tight.

mod common;

use common::{check_contains, random_box, random_cnn, t, Rng64};
use netrepair_nn::{mlp, Activation, Layer, Linear, NetworkBuilder};
use netrepair_spec::{BoxRegion, LinearConstraint, Polytope};
use netrepair_verify::{interval_bounds, unreachable_polytope};
use rand::{Rng, SeedableRng};

#[test]
fn sampled_values_lie_within_bounds_for_random_cnns() {
    for seed in 0..12 {
        let net = random_cnn(seed);
        let mut rng = Rng64::seed_from_u64(100 + seed);
        for width in [1e-3, 0.05, 0.5] {
            let bx = random_box(&mut rng, net.input_len(), width);
            let b = interval_bounds(&net, &bx).unwrap();
            check_contains(&net, &bx, &b, &mut rng, 64);
        }
    }
}

#[test]
fn sampled_values_lie_within_bounds_for_random_mlps() {
    for seed in 0..20 {
        let act = [Activation::Relu, Activation::Sigmoid, Activation::Tanh][seed as usize % 3];
        let net = mlp(&[4, 16, 16, 3], act, seed).unwrap();
        let mut rng = Rng64::seed_from_u64(seed);
        let bx = random_box(&mut rng, 4, 0.3);
        let b = interval_bounds(&net, &bx).unwrap();
        check_contains(&net, &bx, &b, &mut rng, 200);
    }
}

#[test]
fn a_point_box_gives_tight_bounds_around_the_forward_pass() {
    for seed in 0..6 {
        let net = random_cnn(seed);
        let mut rng = Rng64::seed_from_u64(seed);
        let x: Vec<f64> = (0..net.input_len())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let bounds = interval_bounds(&net, &BoxRegion::new(x.clone(), x.clone()).unwrap()).unwrap();
        let mut dims = vec![1];
        dims.extend_from_slice(net.input_shape());
        let y = net
            .forward(&t(x, &dims))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let out = bounds.last().unwrap();
        assert!(out.contains(&y));
        assert!(out.max_width() < 1e-12, "width {}", out.max_width());
    }
}

#[test]
fn hand_computed_bounds_and_polytope_check() {
    // y = relu(x0 - x1), x0 in [0, 1], x1 in [0.5, 2]: pre in [-2, 0.5], y in [0, 0.5].
    let mut b = NetworkBuilder::new(vec![2]);
    b.push(
        "fc",
        Layer::Linear(Linear::new("fc", t(vec![1.0, -1.0], &[1, 2]), t(vec![0.0], &[1])).unwrap()),
    )
    .unwrap();
    b.push("relu", Layer::Relu).unwrap();
    let net = b.build().unwrap();
    let bounds = interval_bounds(
        &net,
        &BoxRegion::new(vec![0.0, 0.5], vec![1.0, 2.0]).unwrap(),
    )
    .unwrap();
    let (pre, out) = (&bounds[1], &bounds[2]);
    assert!((pre.lower[0] + 2.0).abs() < 1e-14 && pre.lower[0] <= -2.0);
    assert!((pre.upper[0] - 0.5).abs() < 1e-14 && pre.upper[0] >= 0.5);
    assert_eq!(out.lower[0], 0.0);
    // Unsafe "y >= 0.6" (-y <= -0.6) cannot be reached; "y >= 0.4" might be.
    let unsafe_above = |v: f64| Polytope {
        constraints: vec![LinearConstraint {
            coeffs: vec![(0, -1.0)],
            rhs: -v,
        }],
    };
    assert!(unreachable_polytope(out, &unsafe_above(0.6)));
    assert!(!unreachable_polytope(out, &unsafe_above(0.4)));
    // A box of the wrong size is an error.
    assert!(interval_bounds(&net, &BoxRegion::new(vec![0.0], vec![1.0]).unwrap()).is_err());
}

/// A ReLU network with a transpose, a backwards slice, a gather, a padding and a sum between
/// its layers: the verifier bounds them as the linear maps they are.
fn rearranging_net(seed: u64) -> netrepair_nn::Network {
    use netrepair_nn::{Rearrange, SliceAxis};
    let mut rng = Rng64::seed_from_u64(seed);
    let mut w = |o: usize, i: usize| {
        let v: Vec<f64> = (0..o * i).map(|_| rng.random_range(-1.0..1.0)).collect();
        t(v, &[o, i])
    };
    let mut b = NetworkBuilder::new(vec![6]);
    let fc =
        |name: &str, wt| Layer::Linear(Linear::new(name, wt, t(vec![0.1; 12], &[12])).unwrap());
    b.push("fc1", fc("fc1", w(12, 6))).unwrap();
    b.push("relu1", Layer::Relu).unwrap();
    b.push("r", Layer::Reshape(vec![3, 4])).unwrap();
    b.push("tr", Layer::Rearrange(Rearrange::Transpose(vec![1, 0])))
        .unwrap();
    b.push(
        "sl",
        Layer::Rearrange(Rearrange::Slice(vec![SliceAxis {
            axis: 0,
            start: 3,
            step: -1,
            len: 3,
        }])),
    )
    .unwrap();
    b.push(
        "pad",
        Layer::Rearrange(Rearrange::Pad {
            before: vec![0, 1],
            after: vec![1, 0],
            value: 0.5,
        }),
    )
    .unwrap();
    b.push(
        "g",
        Layer::Rearrange(Rearrange::Gather {
            axis: 1,
            indices: vec![3, 0, 1],
            keep_axis: true,
        }),
    )
    .unwrap();
    b.push(
        "sum",
        Layer::Rearrange(Rearrange::ReduceSum {
            axes: vec![1],
            keepdims: false,
        }),
    )
    .unwrap();
    b.push(
        "fc2",
        Layer::Linear(Linear::new("fc2", w(3, 4), t(vec![0.0; 3], &[3])).unwrap()),
    )
    .unwrap();
    b.build().unwrap()
}

#[test]
fn rearrangements_are_bounded_soundly() {
    for seed in 0..6 {
        let net = rearranging_net(seed);
        let mut rng = Rng64::seed_from_u64(50 + seed);
        let bx = random_box(&mut rng, 6, 0.4);
        let ibp = interval_bounds(&net, &bx).unwrap();
        check_contains(&net, &bx, &ibp, &mut rng, 200);
        let lin = netrepair_verify::linear_bounds(&net, &bx).unwrap();
        check_contains(&net, &bx, &lin, &mut rng, 200);
    }
}

#[test]
fn forward_only_layers_are_refused_by_name() {
    use netrepair_nn::{BinaryOp, Opaque};
    let mut b = NetworkBuilder::new(vec![2]);
    let x = b.push("relu", Layer::Relu).unwrap();
    b.push_with_inputs(
        "square",
        Layer::Opaque(Opaque::Binary(BinaryOp::Mul)),
        vec![x, x],
    )
    .unwrap();
    let net = b.build().unwrap();
    let bx = BoxRegion::new(vec![0.0, 0.0], vec![1.0, 1.0]).unwrap();
    let err = interval_bounds(&net, &bx).unwrap_err().to_string();
    assert!(
        err.contains("'square'") && err.contains("forward only"),
        "{err}"
    );
    let err = netrepair_verify::linear_bounds(&net, &bx)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'square'"), "{err}");
}

#[test]
fn concatenations_are_bounded_soundly() {
    // x -> relu(fc1) = a; relu(fc2 a) = b; fc3 [a; b] (a dense skip connection).
    for seed in 0..6 {
        let mut rng = Rng64::seed_from_u64(seed);
        let mut lin = |name: &str, o: usize, i: usize| {
            let w: Vec<f64> = (0..o * i).map(|_| rng.random_range(-1.0..1.0)).collect();
            let b: Vec<f64> = (0..o).map(|_| rng.random_range(-0.2..0.2)).collect();
            Layer::Linear(Linear::new(name, t(w, &[o, i]), t(b, &[o])).unwrap())
        };
        let mut nb = NetworkBuilder::new(vec![5]);
        nb.push("fc1", lin("fc1", 8, 5)).unwrap();
        let a = nb.push("relu1", Layer::Relu).unwrap();
        nb.push("fc2", lin("fc2", 6, 8)).unwrap();
        let b = nb.push("relu2", Layer::Relu).unwrap();
        nb.push_with_inputs("cat", Layer::Concat { axis: 0, inputs: 2 }, vec![a, b])
            .unwrap();
        nb.push("fc3", lin("fc3", 3, 14)).unwrap();
        let net = nb.build().unwrap();
        let bx = random_box(&mut rng, 5, 0.5);
        let ibp = interval_bounds(&net, &bx).unwrap();
        check_contains(&net, &bx, &ibp, &mut rng, 300);
        let lin_b = netrepair_verify::linear_bounds(&net, &bx).unwrap();
        check_contains(&net, &bx, &lin_b, &mut rng, 300);
        // The linear bounds see through the copy: never looser than the intervals.
        let (i_out, l_out) = (ibp.last().unwrap(), lin_b.last().unwrap());
        for k in 0..3 {
            assert!(l_out.upper[k] <= i_out.upper[k] + 1e-9);
            assert!(l_out.lower[k] >= i_out.lower[k] - 1e-9);
        }
    }
}

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

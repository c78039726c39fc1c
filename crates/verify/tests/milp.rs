//! The MILP path (boxes bounded whole, no splitting): exact on small ReLU and max-pool
//! networks, consistent with sampling, never undecided on them.

mod common;

use std::time::Duration;

use common::{p, rnd, t, Rng64};
use netrepair_nn::{mlp, Activation, Conv2d, Layer, Linear, Network, NetworkBuilder, Pool2d};
use netrepair_spec::{BoxRegion, Case, LinearConstraint, Polytope, Property};
use netrepair_verify::{check_property, CheckOptions, PgdOptions, Verdict};
use rand::{Rng, SeedableRng};

fn small_cnn(seed: u64) -> Network {
    let mut rng = Rng64::seed_from_u64(seed);
    let mut b = NetworkBuilder::new(vec![1, 4, 4]);
    let conv = Conv2d::new(
        p("c.w", rnd(&mut rng, &[2, 1, 3, 3], 0.8)),
        p("c.b", rnd(&mut rng, &[2], 0.3)),
        1,
        1,
        [1, 1, 1, 1],
        1,
    )
    .unwrap();
    b.push("conv", Layer::Conv2d(conv)).unwrap();
    b.push("relu", Layer::Relu).unwrap();
    b.push(
        "pool",
        Layer::MaxPool2d(Pool2d {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0; 4],
            count_include_pad: false,
        }),
    )
    .unwrap();
    b.push("flat", Layer::Flatten).unwrap();
    b.push(
        "fc",
        Layer::Linear(
            Linear::new("fc", rnd(&mut rng, &[2, 8], 0.5), rnd(&mut rng, &[2], 0.2)).unwrap(),
        ),
    )
    .unwrap();
    b.build().unwrap()
}

/// Samples the box; returns the largest y0 - y1 seen.
fn sampled_gap(net: &Network, bx: &BoxRegion, rng: &mut Rng64) -> f64 {
    let n = 2000;
    let mut xs = Vec::new();
    for _ in 0..n {
        xs.extend((0..bx.dim()).map(|i| rng.random_range(bx.lower[i]..=bx.upper[i])));
    }
    let mut dims = vec![n];
    dims.extend_from_slice(net.input_shape());
    let y = net
        .forward(&t(xs, &dims))
        .unwrap()
        .reshape((n, 2))
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    y.iter()
        .map(|r| r[0] - r[1])
        .fold(f64::NEG_INFINITY, f64::max)
}

fn check(net: &Network, bx: BoxRegion, margin: f64) -> (Property, Verdict) {
    let poly = Polytope {
        constraints: vec![LinearConstraint {
            coeffs: vec![(0, -1.0), (1, 1.0)],
            rhs: -margin,
        }],
    };
    let prop = Property {
        num_inputs: bx.dim(),
        num_outputs: 2,
        cases: vec![Case {
            input: bx,
            unsafe_region: vec![poly],
        }],
    };
    // A weak attack, so that the MILP has to do the work.
    let opts = CheckOptions {
        timeout: Duration::from_secs(30),
        pgd: PgdOptions {
            restarts: 1,
            steps: 0,
            ..Default::default()
        },
        // Never split: bound the whole box, then MILP.
        max_split_dims: 0,
        ..Default::default()
    };
    let v = check_property(net, &prop, &opts).unwrap().verdict;
    (prop, v)
}

#[test]
fn milp_decides_small_networks_consistently_with_sampling() {
    let nets: Vec<Network> = (0..3)
        .map(|s| mlp(&[20, 8, 8, 2], Activation::Relu, s).unwrap())
        .chain((0..2).map(small_cnn))
        .collect();
    for (k, net) in nets.iter().enumerate() {
        let mut rng = Rng64::seed_from_u64(k as u64);
        let c: Vec<f64> = (0..net.input_len())
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let bx = BoxRegion::new(
            c.iter().map(|v| v - 0.2).collect(),
            c.iter().map(|v| v + 0.2).collect(),
        )
        .unwrap();
        let gap = sampled_gap(net, &bx, &mut rng);
        // Below the sampled maximum: a violation exists and must be found.
        let (prop, v) = check(net, bx.clone(), gap - 0.02);
        match v {
            Verdict::Violated(c) => assert!(prop.is_counterexample(&c.x, &c.y, 0.0)),
            other => panic!("network {k}: expected violated, got {other:?}"),
        }
        // Well above it: must not be violated, and the MILP decides.
        let (_, v) = check(net, bx, gap + 0.5);
        assert!(
            !matches!(v, Verdict::Unknown(_)),
            "network {k}: undecided: {v:?}"
        );
        if let Verdict::Violated(c) = &v {
            assert!(
                c.y[0] - c.y[1] >= gap + 0.5,
                "network {k}: spurious counterexample"
            );
        }
    }
}

#[test]
fn sigmoid_networks_are_unknown_rather_than_guessed() {
    let net = mlp(&[20, 8, 2], Activation::Sigmoid, 3).unwrap();
    let bx = BoxRegion::new(vec![-3.0; 20], vec![3.0; 20]).unwrap();
    // y0 - y1 >= 100 is far beyond what the network can output: bounds may or may not prove
    // it, but the answer must never be "violated"; a tight margin is left unknown.
    let (_, v) = check(&net, bx.clone(), 100.0);
    assert!(matches!(v, Verdict::Holds | Verdict::Unknown(_)));
    let gap = sampled_gap(&net, &bx, &mut Rng64::seed_from_u64(0));
    let (_, v) = check(&net, bx, gap + 1e-3);
    assert!(!matches!(v, Verdict::Violated(_)) || gap + 1e-3 <= gap);
}

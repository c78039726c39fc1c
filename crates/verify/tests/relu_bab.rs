//! Branch and bound on ReLU splits, for boxes too large to split: against the exact maximum
//! from the MILP, it never proves a reachable region and proves unreachable regions that the
//! bounds of the whole box (plain or with optimised slopes) leave open.

mod common;

use std::time::Duration;

use common::Rng64;
use netrepair_nn::{mlp, Activation};
use netrepair_spec::{BoxRegion, Case, LinearConstraint, Polytope, Property};
use rand::{Rng, SeedableRng};

use netrepair_verify::milp::exact_row_upper;
use netrepair_verify::{
    check_property, linear_bounds, optimised_linear_bounds, prove_case_optimised, AlphaOptions,
    CheckOptions, PgdOptions, Verdict,
};

/// `y_0 - y_1 >= t` is unsafe.
fn property(bx: &BoxRegion, t: f64) -> Property {
    Property {
        num_inputs: bx.dim(),
        num_outputs: 2,
        cases: vec![Case {
            input: bx.clone(),
            unsafe_region: vec![Polytope {
                constraints: vec![LinearConstraint {
                    coeffs: vec![(0, -1.0), (1, 1.0)],
                    rhs: -t,
                }],
            }],
        }],
    }
}

#[test]
fn relu_splitting_never_proves_a_reachable_region_and_proves_what_bounds_cannot() {
    let opts = CheckOptions {
        timeout: Duration::from_secs(20),
        use_milp: false,
        pgd: PgdOptions {
            restarts: 8,
            ..Default::default()
        },
        ..Default::default()
    };
    let (mut gained, mut holds) = (0, 0);
    for seed in 0..8 {
        // 20 inputs: more than `max_split_dims`, so the box is not split.
        let net = mlp(&[20, 24, 24, 2], Activation::Relu, seed).unwrap();
        let mut rng = Rng64::seed_from_u64(seed);
        let c: Vec<f64> = (0..20).map(|_| rng.random_range(-1.0..1.0)).collect();
        let bx = BoxRegion::new(
            c.iter().map(|v| v - 0.15).collect(),
            c.iter().map(|v| v + 0.15).collect(),
        )
        .unwrap();
        let b = linear_bounds(&net, &bx).unwrap();
        let out = net.nodes().len();
        let exact = exact_row_upper(&net, &b, out, &[vec![1.0, -1.0]], Duration::from_secs(30))
            .unwrap()[0]
            .expect("the MILP solves a network this small");
        let spread = b[out].upper[0] - b[out].lower[1] - (b[out].lower[0] - b[out].upper[1]);
        // Reachable (below the maximum): never "holds".
        let reachable = property(&bx, exact - 0.05 * spread);
        let v = check_property(&net, &reachable, &opts).unwrap().verdict;
        assert!(
            !matches!(v, Verdict::Holds),
            "seed {seed}: reachable region proved"
        );
        // Unreachable, just above the maximum: never "violated"; count the proofs and those the
        // whole box's optimised bounds alone could not give.
        let t = exact + 0.02 * spread;
        let unreachable = property(&bx, t);
        let report = check_property(&net, &unreachable, &opts).unwrap();
        assert!(
            !matches!(report.verdict, Verdict::Violated(_)),
            "seed {seed}"
        );
        if report.verdict == Verdict::Holds {
            holds += 1;
            let alpha = AlphaOptions::default();
            let tight = optimised_linear_bounds(&net, &bx, &alpha).unwrap();
            if !prove_case_optimised(&net, &unreachable.cases[0], &tight, &alpha).unwrap() {
                gained += 1;
            }
        }
    }
    assert!(holds >= 7, "proved only {holds} of 8 unreachable regions");
    assert!(
        gained >= 5,
        "splitting proved only {gained} cases the bounds could not"
    );
}

/// On networks with every layer type (72 inputs: bounded whole, then optimised slopes and ReLU
/// splitting, no MILP for Sigmoid / Tanh), a region that sampling reaches is never proved, and
/// a counterexample is a real one.
#[test]
fn nothing_proved_is_reached_by_samples_on_every_layer_type() {
    let opts = CheckOptions {
        timeout: Duration::from_secs(5),
        use_milp: false,
        pgd: PgdOptions {
            restarts: 4,
            steps: 20,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut proved = 0;
    for seed in 0..4 {
        let net = common::random_cnn(seed);
        let n = net.input_len();
        let mut rng = Rng64::seed_from_u64(500 + seed);
        let bx = common::random_box(&mut rng, n, 0.1);
        // The largest y_0 - y_1 among samples (corners included), by a batched forward pass.
        let samples = 400;
        let xs: Vec<f64> = (0..samples)
            .flat_map(|s| {
                let bx = &bx;
                (0..n)
                    .map(|i| match s {
                        0 => bx.lower[i],
                        1 => bx.upper[i],
                        _ => {
                            bx.lower[i]
                                + (bx.upper[i] - bx.lower[i])
                                    * ((s * 7919 + i * 104729) % 1000) as f64
                                    / 999.0
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut dims = vec![samples];
        dims.extend_from_slice(net.input_shape());
        let y = net.forward_f64(&common::t(xs, &dims)).unwrap();
        let y = y.reshape((samples, ())).unwrap().to_vec2::<f64>().unwrap();
        let reached = y
            .iter()
            .map(|r| r[0] - r[1])
            .fold(f64::NEG_INFINITY, f64::max);
        let b = linear_bounds(&net, &bx).unwrap();
        let out = net.nodes().len();
        let top = b[out].upper[0] - b[out].lower[1];
        for frac in [0.0, 0.5, 0.9] {
            let t = reached + frac * (top - reached);
            let v = check_property(&net, &property_of(&bx, t, net.output_len()), &opts)
                .unwrap()
                .verdict;
            if frac == 0.0 {
                assert!(
                    !matches!(v, Verdict::Holds),
                    "seed {seed}: a sampled value proved unreachable"
                );
            }
            if let Verdict::Violated(c) = &v {
                assert!(
                    c.y[0] - c.y[1] >= t,
                    "seed {seed}: counterexample below {t}"
                );
            }
            proved += usize::from(v == Verdict::Holds);
        }
    }
    assert!(
        proved >= 2,
        "proved only {proved} of the 8 regions above the samples"
    );
}

/// `y_0 - y_1 >= t` is unsafe, over `m` outputs.
fn property_of(bx: &BoxRegion, t: f64, m: usize) -> Property {
    Property {
        num_outputs: m,
        ..property(bx, t)
    }
}

//! Linear (back-substitution) bounds: sound on samples, never looser than intervals, exact
//! where the network is linear on the box, and strong enough to prove properties.

mod common;

use common::{check_contains, random_box, random_cnn, t, Rng64};
use netrepair_nn::{mlp, Activation, Layer, Linear, NetworkBuilder};
use netrepair_spec::{BoxRegion, Case, LinearConstraint, Polytope};
use std::time::Duration;

use netrepair_verify::milp::{exact_row_upper, relaxed_row_upper};
use netrepair_verify::{interval_bounds, linear_bounds, prove_case, row_bounds};
use rand::{Rng, SeedableRng};

fn width(b: &netrepair_verify::Bounds) -> f64 {
    b.lower.iter().zip(&b.upper).map(|(l, u)| u - l).sum()
}

#[test]
fn sampled_values_lie_within_linear_bounds() {
    for seed in 0..10 {
        let net = random_cnn(seed);
        let mut rng = Rng64::seed_from_u64(200 + seed);
        for w in [1e-3, 0.05, 0.5] {
            let bx = random_box(&mut rng, net.input_len(), w);
            let b = linear_bounds(&net, &bx).unwrap();
            check_contains(&net, &bx, &b, &mut rng, 64);
        }
    }
    for seed in 0..12 {
        let act = [Activation::Relu, Activation::Sigmoid, Activation::Tanh][seed as usize % 3];
        let net = mlp(&[5, 24, 24, 24, 4], act, seed).unwrap();
        let mut rng = Rng64::seed_from_u64(seed);
        let bx = random_box(&mut rng, 5, 0.4);
        let b = linear_bounds(&net, &bx).unwrap();
        check_contains(&net, &bx, &b, &mut rng, 300);
    }
}

#[test]
fn linear_bounds_are_never_looser_and_usually_tighter() {
    let (mut tighter, mut total) = (0, 0);
    for seed in 0..10 {
        let net = mlp(&[4, 32, 32, 3], Activation::Relu, seed).unwrap();
        let mut rng = Rng64::seed_from_u64(seed);
        let bx = random_box(&mut rng, 4, 0.2);
        let (ibp, lin) = (
            interval_bounds(&net, &bx).unwrap(),
            linear_bounds(&net, &bx).unwrap(),
        );
        for (a, b) in ibp.iter().zip(&lin) {
            for k in 0..a.lower.len() {
                assert!(b.lower[k] >= a.lower[k] && b.upper[k] <= a.upper[k]);
            }
        }
        total += 1;
        if width(lin.last().unwrap()) < 0.9 * width(ibp.last().unwrap()) {
            tighter += 1;
        }
    }
    assert!(
        tighter >= 8,
        "linear bounds tighter on only {tighter} of {total} networks"
    );
}

#[test]
fn exact_where_the_network_is_linear_on_the_box() {
    // y = relu(x) - relu(x) through two copies: 0 everywhere. On x in [0.5, 1] both neurons
    // are active, so back-substitution cancels exactly; intervals give [-0.5, 0.5].
    let net = twin_relu();
    let bx = BoxRegion::new(vec![0.5], vec![1.0]).unwrap();
    let ibp = interval_bounds(&net, &bx).unwrap();
    let lin = linear_bounds(&net, &bx).unwrap();
    assert!((ibp[3].lower[0] + 0.5).abs() < 1e-12 && (ibp[3].upper[0] - 0.5).abs() < 1e-12);
    assert!(lin[3].lower[0] <= 0.0 && lin[3].upper[0] >= 0.0);
    assert!(lin[3].upper[0] - lin[3].lower[0] < 1e-12, "{:?}", lin[3]);
}

#[test]
fn proves_a_property_intervals_cannot() {
    // Same network: "y >= 0.25" is unreachable; IBP's upper bound 0.5 cannot show it.
    let net = twin_relu();
    let input = BoxRegion::new(vec![0.5], vec![1.0]).unwrap();
    let case = |rhs: f64| Case {
        input: input.clone(),
        unsafe_region: vec![Polytope {
            constraints: vec![LinearConstraint {
                coeffs: vec![(0, -1.0)],
                rhs,
            }],
        }],
    };
    let lin = linear_bounds(&net, &input).unwrap();
    assert!(prove_case(&net, &case(-0.25), &lin).unwrap());
    let ibp = interval_bounds(&net, &input).unwrap();
    assert!(!netrepair_verify::unreachable_polytope(
        ibp.last().unwrap(),
        &case(-0.25).unsafe_region[0]
    ));
    // "y >= 0" is reachable (y = 0): not provable.
    assert!(!prove_case(&net, &case(0.0), &lin).unwrap());
}

#[test]
fn sigmoid_and_tanh_relaxations_tighten_bounds() {
    let mut tighter = 0;
    for seed in 0..10 {
        let act = if seed % 2 == 0 {
            Activation::Sigmoid
        } else {
            Activation::Tanh
        };
        let net = mlp(&[4, 32, 32, 3], act, seed).unwrap();
        let mut rng = Rng64::seed_from_u64(seed);
        let bx = random_box(&mut rng, 4, 0.05);
        let (ibp, lin) = (
            interval_bounds(&net, &bx).unwrap(),
            linear_bounds(&net, &bx).unwrap(),
        );
        check_contains(&net, &bx, &lin, &mut rng, 200);
        if width(lin.last().unwrap()) < 0.8 * width(ibp.last().unwrap()) {
            tighter += 1;
        }
    }
    assert!(tighter >= 8, "tighter on only {tighter} of 10 networks");
}

/// y = relu(x) - relu(x) through two copies of the same neuron: 0 everywhere.
fn twin_relu() -> netrepair_nn::Network {
    let mut b = NetworkBuilder::new(vec![1]);
    b.push(
        "fc1",
        Layer::Linear(
            Linear::new("fc1", t(vec![1.0, 1.0], &[2, 1]), t(vec![0.0, 0.0], &[2])).unwrap(),
        ),
    )
    .unwrap();
    b.push("relu", Layer::Relu).unwrap();
    b.push(
        "fc2",
        Layer::Linear(Linear::new("fc2", t(vec![1.0, -1.0], &[1, 2]), t(vec![0.0], &[1])).unwrap()),
    )
    .unwrap();
    b.build().unwrap()
}

/// Whatever `prove_case` proves (back-substitution or the last-layer fold) no sampled input
/// contradicts: random MLPs, boxes and output differences `y_a - y_b >= c`.
#[test]
fn proved_cases_have_no_sampled_counterexample() {
    use rand::Rng;
    let mut rng = Rng64::seed_from_u64(17);
    let mut proved = 0;
    for seed in 0..40u64 {
        let net = mlp(&[3, 12, 10, 3], Activation::Relu, seed).unwrap();
        let input = random_box(&mut rng, 3, 0.3);
        let ys: Vec<Vec<f64>> = (0..400)
            .map(|_| {
                let x: Vec<f64> = (0..3)
                    .map(|j| rng.random_range(input.lower[j]..=input.upper[j]))
                    .collect();
                net.forward_f64(&t(x, &[1, 3]))
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
            })
            .collect();
        let lin = linear_bounds(&net, &input).unwrap();
        // Unsafe: y_0 - y_1 >= c, for the smallest c no sample reaches (so it may be provable).
        let max = ys
            .iter()
            .map(|y| y[0] - y[1])
            .fold(f64::NEG_INFINITY, f64::max);
        for margin in [1e-3, 0.05, 0.5] {
            let case = Case {
                input: input.clone(),
                unsafe_region: vec![Polytope {
                    constraints: vec![LinearConstraint {
                        coeffs: vec![(1, 1.0), (0, -1.0)],
                        rhs: -(max + margin),
                    }],
                }],
            };
            if prove_case(&net, &case, &lin).unwrap() {
                proved += 1;
                assert!(ys.iter().all(|y| y[0] - y[1] < max + margin));
            }
            // Just below the largest sampled value: reachable, so never proved.
            let reachable = Case {
                unsafe_region: vec![Polytope {
                    constraints: vec![LinearConstraint {
                        coeffs: vec![(1, 1.0), (0, -1.0)],
                        rhs: -(max - 1e-9),
                    }],
                }],
                ..case
            };
            assert!(!prove_case(&net, &reachable, &lin).unwrap(), "seed {seed}");
        }
    }
    assert!(
        proved > 10,
        "only {proved} cases proved: the test shows nothing"
    );
}

#[test]
fn row_bounds_contain_samples_and_the_lp_relaxation_is_tighter() {
    let (mut tighter, mut total) = (0, 0);
    for seed in 0..6 {
        let net = mlp(&[5, 24, 24, 4], Activation::Relu, seed).unwrap();
        let mut rng = Rng64::seed_from_u64(900 + seed);
        let bx = random_box(&mut rng, 5, 0.4);
        let b = linear_bounds(&net, &bx).unwrap();
        // The last hidden value (the input of the last layer), 24 cells.
        let target = net.nodes().last().unwrap().inputs()[0];
        let rows: Vec<Vec<f64>> = (0..5)
            .map(|_| (0..24).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        let (lo, hi) = row_bounds(&net, &b, target, &rows).unwrap();
        let lp = relaxed_row_upper(&net, &b, target, &rows, Duration::from_secs(30)).unwrap();
        // Samples of the box: every row's value lies within both bounds.
        let values = sampled_row_values(&net, &bx, target, &rows, 200, &mut rng);
        for (r, vs) in values.iter().enumerate() {
            let up = lp[r].expect("a small LP solves");
            for &v in vs {
                assert!(
                    lo[r] <= v && v <= hi[r],
                    "{v} outside [{}, {}]",
                    lo[r],
                    hi[r]
                );
                assert!(v <= up, "{v} above the LP relaxation's {up}");
            }
            // The triangle relaxation is at least as tight as one fixed lower line per ReLU.
            assert!(up <= hi[r] + 1e-6 * (1.0 + hi[r].abs()), "{up} > {}", hi[r]);
            total += 1;
            if up < hi[r] - 1e-6 * (1.0 + hi[r].abs()) {
                tighter += 1;
            }
        }
    }
    assert!(tighter * 2 > total, "{tighter} of {total}");
}

#[test]
fn the_milp_bound_lies_between_the_samples_and_the_lp_relaxation() {
    let (mut tighter, mut total) = (0, 0);
    for seed in 0..4 {
        let net = mlp(&[5, 16, 16, 3], Activation::Relu, seed).unwrap();
        let mut rng = Rng64::seed_from_u64(950 + seed);
        let bx = random_box(&mut rng, 5, 0.5);
        let b = linear_bounds(&net, &bx).unwrap();
        let target = net.nodes().last().unwrap().inputs()[0];
        let rows: Vec<Vec<f64>> = (0..4)
            .map(|_| (0..16).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        let limit = Duration::from_secs(30);
        let lp = relaxed_row_upper(&net, &b, target, &rows, limit).unwrap();
        let exact = exact_row_upper(&net, &b, target, &rows, limit).unwrap();
        let values = sampled_row_values(&net, &bx, target, &rows, 500, &mut rng);
        for (r, vs) in values.iter().enumerate() {
            let (lp, exact) = (lp[r].expect("LP solves"), exact[r].expect("MILP solves"));
            let best = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert!(best <= exact, "sample {best} above the MILP bound {exact}");
            assert!(exact <= lp + 1e-6 * (1.0 + lp.abs()), "{exact} > LP {lp}");
            total += 1;
            if exact < lp - 1e-6 * (1.0 + lp.abs()) {
                tighter += 1;
            }
        }
    }
    // Exact ReLUs must beat the triangles somewhere, or the test shows nothing.
    assert!(tighter * 4 > total, "{tighter} of {total}");
}

/// `row . value[target]` at `samples` uniform points of `bx`, per row.
fn sampled_row_values(
    net: &netrepair_nn::Network,
    bx: &BoxRegion,
    target: usize,
    rows: &[Vec<f64>],
    samples: usize,
    rng: &mut Rng64,
) -> Vec<Vec<f64>> {
    let d = bx.dim();
    let mut xs = Vec::new();
    for _ in 0..samples {
        xs.extend((0..d).map(|i| rng.random_range(bx.lower[i]..=bx.upper[i])));
    }
    let trace = net.forward_trace(&t(xs, &[samples, d])).unwrap();
    let h = trace.values()[target]
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let k = h.len() / samples;
    rows.iter()
        .map(|row| {
            (0..samples)
                .map(|s| {
                    row.iter()
                        .zip(&h[s * k..(s + 1) * k])
                        .map(|(a, b)| a * b)
                        .sum()
                })
                .collect()
        })
        .collect()
}

//! Deciding properties: verdicts agree with dense sampling on small networks, counterexamples
//! are real, limits give "unknown".

mod common;

use std::time::Duration;

use common::{t, Rng64};
use netrepair_nn::{mlp, Activation};
use netrepair_spec::{BoxRegion, Case, LinearConstraint, Polytope, Property};
use netrepair_verify::{check_property, pgd, pgd_maximum, CheckOptions, PgdOptions, Verdict};
use rand::{Rng, SeedableRng};

/// Unsafe when y0 >= y1 + margin, i.e. y1 - y0 <= -margin.
fn prop(bx: BoxRegion, margin: f64) -> Property {
    let poly = Polytope {
        constraints: vec![LinearConstraint {
            coeffs: vec![(0, -1.0), (1, 1.0)],
            rhs: -margin,
        }],
    };
    Property {
        num_inputs: bx.dim(),
        num_outputs: 2,
        cases: vec![Case {
            input: bx,
            unsafe_region: vec![poly],
        }],
    }
}

#[test]
fn verdicts_agree_with_dense_sampling() {
    let (mut holds, mut violated) = (0, 0);
    for seed in 0..30 {
        let net = mlp(&[2, 12, 12, 2], Activation::Relu, seed).unwrap();
        let mut rng = Rng64::seed_from_u64(seed);
        let c: Vec<f64> = (0..2).map(|_| rng.random_range(-1.0..1.0)).collect();
        let bx = BoxRegion::new(
            c.iter().map(|v| v - 0.3).collect(),
            c.iter().map(|v| v + 0.3).collect(),
        )
        .unwrap();
        // Margin: the largest sampled gap plus a little, so roughly half the cases hold.
        let grid = 60;
        let mut xs = Vec::new();
        for i in 0..=grid {
            for j in 0..=grid {
                xs.push(bx.lower[0] + 0.6 * i as f64 / grid as f64);
                xs.push(bx.lower[1] + 0.6 * j as f64 / grid as f64);
            }
        }
        let n = xs.len() / 2;
        let y = net
            .forward(&t(xs.clone(), &[n, 2]))
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let max_gap = y
            .iter()
            .map(|r| r[0] - r[1])
            .fold(f64::NEG_INFINITY, f64::max);
        let margin = max_gap + if seed % 2 == 0 { 0.05 } else { -0.05 };
        let p = prop(bx, margin);
        let r = check_property(
            &net,
            &p,
            &CheckOptions {
                timeout: Duration::from_secs(20),
                ..Default::default()
            },
        )
        .unwrap();
        match &r.verdict {
            Verdict::Holds => {
                holds += 1;
                assert!(
                    max_gap < margin,
                    "seed {seed}: 'holds' but a sample reaches the unsafe region"
                );
            }
            Verdict::Violated(cex) => {
                violated += 1;
                assert!(p.is_counterexample(&cex.x, &cex.y, 0.0));
                let y = net
                    .forward(&t(cex.x.clone(), &[1, 2]))
                    .unwrap()
                    .to_vec2::<f64>()
                    .unwrap();
                // Same output up to the rounding of a batched vs a single-row matmul.
                assert!(
                    y[0].iter().zip(&cex.y).all(|(a, b)| (a - b).abs() < 1e-12),
                    "the reported output is the network's"
                );
            }
            Verdict::Unknown(why) => panic!("seed {seed}: undecided ({why}) on a 2-D box"),
        }
        // Sampling found a violation (margin below the sampled gap): must not be "holds".
        if seed % 2 == 1 {
            assert!(
                matches!(r.verdict, Verdict::Violated(_)),
                "seed {seed}: sampled violation missed"
            );
        }
    }
    assert!(
        holds >= 10 && violated >= 10,
        "{holds} holds, {violated} violated"
    );
}

/// Unsafe when y >= v over x in [-2, 0] (where y = -0.5 x - 0.5, in [-0.5, 0.5]).
fn above(v: f64) -> Property {
    let poly = Polytope {
        constraints: vec![LinearConstraint {
            coeffs: vec![(0, -1.0)],
            rhs: -v,
        }],
    };
    Property {
        num_inputs: 1,
        num_outputs: 1,
        cases: vec![Case {
            input: BoxRegion::new(vec![-2.0], vec![0.0]).unwrap(),
            unsafe_region: vec![poly],
        }],
    }
}

#[test]
fn fixture_properties_by_hand() {
    let net = netrepair_nn::aprnn_example();
    let opts = CheckOptions::default();
    // y reaches 0.5 at x = -2: "y >= 0.2" is violated, "y >= 0.6" holds.
    match check_property(&net, &above(0.2), &opts).unwrap().verdict {
        Verdict::Violated(c) => assert!(c.y[0] >= 0.2 && (-2.0..=0.0).contains(&c.x[0])),
        v => panic!("expected violated, got {v:?}"),
    }
    assert_eq!(
        check_property(&net, &above(0.6), &opts).unwrap().verdict,
        Verdict::Holds
    );
    // PGD alone (FGSM from the centre x = -1, y = 0) steps to x = -2 where y = 0.5.
    let case = &above(0.4).cases[0];
    assert!(pgd(&net, case, &PgdOptions::fgsm()).unwrap().is_some());
    // Ascent on y reaches its maximum 0.5 (at x = -2), and on -y its maximum 0.5 (at x = 0).
    for row in [1.0, -1.0] {
        let top = pgd_maximum(&net, &case.input, &[row], &PgdOptions::default()).unwrap();
        assert!((top - 0.5).abs() < 1e-12, "{row}: {top}");
    }
}

#[test]
fn limits_and_mismatches() {
    let net = netrepair_nn::aprnn_example();
    let zero = CheckOptions {
        timeout: Duration::ZERO,
        ..Default::default()
    };
    // The bounds of the whole box come first and count even under a zero limit: every ReLU
    // of this fixture is stable on [-2, 0], so they prove "y >= 0.6" unreachable at once.
    let r = check_property(&net, &above(0.6), &zero).unwrap();
    assert_eq!((r.verdict, r.boxes), (Verdict::Holds, 1));
    // A property that holds but needs splitting: the limit stops the search ("unknown").
    let mut split_needed = 0;
    for seed in 0..20 {
        let net = mlp(&[1, 8, 8, 2], Activation::Relu, seed).unwrap();
        let bx = BoxRegion::new(vec![-1.0], vec![1.0]).unwrap();
        // y1 - y0 sampled finely; the property holds below the sampled minimum minus a gap.
        let xs: Vec<f64> = (0..=4000).map(|i| -1.0 + i as f64 / 2000.0).collect();
        let y = net
            .forward_f64(&t(xs.clone(), &[xs.len(), 1]))
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let min = y.iter().map(|y| y[1] - y[0]).fold(f64::INFINITY, f64::min);
        let p = prop(bx, -(min - 0.05));
        let full = check_property(&net, &p, &CheckOptions::default()).unwrap();
        assert_eq!(full.verdict, Verdict::Holds, "seed {seed}");
        if full.boxes > 1 {
            split_needed += 1;
            let r = check_property(&net, &p, &zero).unwrap();
            assert!(
                matches!(r.verdict, Verdict::Unknown(_)),
                "seed {seed}: {r:?}"
            );
        }
    }
    assert!(
        split_needed >= 3,
        "only {split_needed} properties needed splitting"
    );
    let wide = mlp(&[3, 4, 2], Activation::Relu, 0).unwrap();
    let err = check_property(&wide, &above(0.6), &CheckOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not fit"), "{err}");
}

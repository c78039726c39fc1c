//! Optimised ReLU slopes (alpha-CROWN): sound on samples over every layer type, never looser
//! than the plain linear bounds, tighter on deep ReLU networks, and proving cases the plain
//! bounds cannot.

mod common;

use common::{check_contains, random_box, random_cnn, Rng64};
use netrepair_nn::{mlp, Activation};
use netrepair_spec::{Case, LinearConstraint, Polytope};
use rand::SeedableRng;

use netrepair_verify::{
    linear_bounds, optimised_linear_bounds, prove_case, prove_case_optimised, AlphaOptions,
};

fn assert_not_looser(plain: &[netrepair_verify::Bounds], opt: &[netrepair_verify::Bounds]) {
    for (a, b) in plain.iter().zip(opt) {
        for k in 0..a.lower.len() {
            assert!(b.lower[k] >= a.lower[k] && b.upper[k] <= a.upper[k]);
        }
    }
}

#[test]
fn optimised_bounds_contain_samples_on_every_layer_type() {
    for seed in 0..6 {
        let net = random_cnn(seed);
        let mut rng = Rng64::seed_from_u64(300 + seed);
        for w in [0.05, 0.5] {
            let bx = random_box(&mut rng, net.input_len(), w);
            let opt = optimised_linear_bounds(&net, &bx, &AlphaOptions::default()).unwrap();
            check_contains(&net, &bx, &opt, &mut rng, 64);
            assert_not_looser(&linear_bounds(&net, &bx).unwrap(), &opt);
        }
    }
}

#[test]
fn optimised_bounds_are_tighter_on_deep_relu_networks() {
    let (mut tighter, mut total) = (0, 0);
    for seed in 0..8 {
        let net = mlp(&[5, 40, 40, 40, 40, 3], Activation::Relu, seed).unwrap();
        let mut rng = Rng64::seed_from_u64(seed);
        let bx = random_box(&mut rng, 5, 0.5);
        let plain = linear_bounds(&net, &bx).unwrap();
        let opt = optimised_linear_bounds(&net, &bx, &AlphaOptions::default()).unwrap();
        check_contains(&net, &bx, &opt, &mut rng, 200);
        assert_not_looser(&plain, &opt);
        let width = |b: &netrepair_verify::Bounds| -> f64 {
            b.lower.iter().zip(&b.upper).map(|(l, u)| u - l).sum()
        };
        total += 1;
        if width(opt.last().unwrap()) < 0.95 * width(plain.last().unwrap()) {
            tighter += 1;
        }
    }
    assert!(
        tighter >= 6,
        "tighter on only {tighter} of {total} networks"
    );
}

/// `y_0 >= rhs` is unsafe, with `rhs` between the plain and the optimised upper bound of
/// `y_0`: the optimised slopes prove what the plain ones cannot.
#[test]
fn optimised_slopes_prove_cases_the_plain_bounds_cannot() {
    let mut gained = 0;
    for seed in 0..8 {
        let net = mlp(&[5, 40, 40, 40, 2], Activation::Relu, seed).unwrap();
        let mut rng = Rng64::seed_from_u64(50 + seed);
        let bx = random_box(&mut rng, 5, 0.5);
        let plain = linear_bounds(&net, &bx).unwrap();
        let opt = optimised_linear_bounds(&net, &bx, &AlphaOptions::default()).unwrap();
        check_contains(&net, &bx, &opt, &mut rng, 200);
        let (hi_plain, hi_opt) = (plain.last().unwrap().upper[0], opt.last().unwrap().upper[0]);
        if hi_opt >= hi_plain - 1e-6 {
            continue;
        }
        let case = Case {
            input: bx.clone(),
            unsafe_region: vec![Polytope {
                constraints: vec![LinearConstraint {
                    coeffs: vec![(0, -1.0)],
                    rhs: -0.5 * (hi_plain + hi_opt),
                }],
            }],
        };
        assert!(!prove_case(&net, &case, &plain).unwrap());
        // The output slopes alone (on the plain intermediate bounds) or with the optimised
        // intermediate bounds.
        let alpha = AlphaOptions::default();
        if prove_case_optimised(&net, &case, &plain, &alpha).unwrap()
            || prove_case_optimised(&net, &case, &opt, &alpha).unwrap()
        {
            gained += 1;
        }
    }
    assert!(
        gained >= 4,
        "optimised slopes proved only {gained} of 8 cases"
    );
}

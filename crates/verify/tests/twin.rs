//! Twin-network bounds: exact on a hand-computed network, sound on sampled pairs, the chain's
//! f64 forward pass and Jacobian agree with the network, and VB is never below what the attack
//! finds.

mod common;

use candle_core::{Device, Tensor};
use common::{t, Rng64};
use netrepair_nn::{mlp, Activation, Layer, Linear, Network, NetworkBuilder};
use netrepair_spec::{BoxRegion, GlobalProperty, Perturbation};
use netrepair_verify::{
    jacobian_norm, pgd_variation, property_twin_bounds, variation_bound, Chain, SplitOptions,
    VariationAttack,
};
use rand::{Rng, SeedableRng};

/// y = 2 relu(x) - 1: on x in [1, 2] with delta 0.5 both copies stay active, so
/// f(x + dx) - f(x) = 2 dx exactly and VB = 2 delta = 1.
fn tiny() -> Network {
    let mut b = NetworkBuilder::new(vec![1]);
    let lin = |n: &str, w: f64, c: f64| {
        Layer::Linear(Linear::new(n, t(vec![w], &[1, 1]), t(vec![c], &[1])).unwrap())
    };
    b.push("fc1", lin("fc1", 1.0, 0.0)).unwrap();
    b.push("relu", Layer::Relu).unwrap();
    b.push("fc2", lin("fc2", 2.0, -1.0)).unwrap();
    b.build().unwrap()
}

fn forward(net: &Network, x: &[f64]) -> Vec<f64> {
    let t = Tensor::from_vec(x.to_vec(), (1, x.len()), &Device::Cpu).unwrap();
    net.forward(&t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

#[test]
fn stably_active_twins_give_the_exact_variation() {
    let net = tiny();
    let chain = Chain::new(&net).unwrap();
    let region = BoxRegion::new(vec![1.0], vec![2.0]).unwrap();
    let prop = GlobalProperty::new(region.clone(), Perturbation::Linf { delta: 0.5 }, 0.1).unwrap();
    let tb = property_twin_bounds(&net, &chain, &prop, &region).unwrap();
    assert!((tb.variation() - 1.0).abs() < 1e-12, "{}", tb.variation());
    // Last hidden layer: dz = dx exactly.
    assert!((tb.hidden.upper_w[0] - 1.0).abs() < 1e-12);
    assert!((tb.hidden.lower_w[0] - 1.0).abs() < 1e-12);
    assert!(tb.hidden.upper_c[0].abs() < 1e-12 && tb.hidden.lower_c[0].abs() < 1e-12);
    // The attack finds the same 1.0 at any interior point.
    let rep = pgd_variation(&chain, &prop, &[vec![1.5]], &VariationAttack::default());
    assert!((rep.pgd_b - 1.0).abs() < 1e-9, "{}", rep.pgd_b);
    assert_eq!(rep.pgd_r, 1.0);
    assert!((jacobian_norm(&chain, &prop, &[1.5]) - 2.0).abs() < 1e-12);
}

fn props(dim: usize, rng: &mut Rng64) -> Vec<GlobalProperty> {
    let lo: Vec<f64> = (0..dim).map(|_| rng.random_range(-1.0..0.5)).collect();
    let hi: Vec<f64> = lo.iter().map(|l| l + rng.random_range(0.05..0.6)).collect();
    let region = BoxRegion::new(lo, hi).unwrap();
    vec![
        GlobalProperty::new(region.clone(), Perturbation::Linf { delta: 0.05 }, 0.1).unwrap(),
        GlobalProperty::new(region, Perturbation::Sensitive { features: vec![1] }, 0.1).unwrap(),
    ]
}

#[test]
fn sampled_pairs_lie_within_twin_bounds() {
    for seed in 0..8 {
        let net = mlp(&[4, 16, 12, 3], Activation::Relu, seed).unwrap();
        let chain = Chain::new(&net).unwrap();
        let mut rng = Rng64::seed_from_u64(seed);
        for prop in props(4, &mut rng) {
            let tb = property_twin_bounds(&net, &chain, &prop, &prop.region).unwrap();
            let h = &tb.hidden;
            let m = h.free.len();
            let dx_box = prop.dx_box(&prop.region);
            for _ in 0..300 {
                let x: Vec<f64> = (0..4)
                    .map(|j| rng.random_range(prop.region.lower[j]..=prop.region.upper[j]))
                    .collect();
                let mut x2 = x.clone();
                for &f in &h.free {
                    x2[f] = x[f] + rng.random_range(dx_box.lower[f]..=dx_box.upper[f]);
                }
                prop.project(&x, &mut x2);
                let (y, y2) = (forward(&net, &x), forward(&net, &x2));
                let out = tb.diff.last().unwrap();
                for o in 0..3 {
                    let d = y2[o] - y[o];
                    assert!(
                        out.lower[o] <= d && d <= out.upper[o],
                        "seed {seed}: {d} {out:?}"
                    );
                    assert!(d.abs() <= tb.variation());
                }
                // Hidden layer: the linear bounds in dx hold.
                let (hz, hz2) = (hidden(&chain, &net, &x), hidden(&chain, &net, &x2));
                let dx: Vec<f64> = h.free.iter().map(|&f| x2[f] - x[f]).collect();
                for j in 0..hz.len() {
                    let d = hz2[j] - hz[j];
                    let lo: f64 =
                        h.lower_c[j] + (0..m).map(|k| h.lower_w[j * m + k] * dx[k]).sum::<f64>();
                    let hi: f64 =
                        h.upper_c[j] + (0..m).map(|k| h.upper_w[j * m + k] * dx[k]).sum::<f64>();
                    assert!(
                        lo - 1e-9 <= d && d <= hi + 1e-9,
                        "seed {seed} n{j}: {lo} {d} {hi}"
                    );
                }
            }
        }
    }
}

/// The last hidden layer's values: the output of the network without its last layer, which
/// for `mlp` is the ReLU before the last Linear.
fn hidden(chain: &Chain, net: &Network, x: &[f64]) -> Vec<f64> {
    let v = chain.hidden_value();
    let t = Tensor::from_vec(x.to_vec(), (1, x.len()), &Device::Cpu).unwrap();
    net.forward_trace(&t)
        .unwrap()
        .value(v)
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

#[test]
fn chain_forward_and_jacobian_match_the_network() {
    let net = mlp(&[5, 20, 20, 4], Activation::Relu, 3).unwrap();
    let chain = Chain::new(&net).unwrap();
    let mut rng = Rng64::seed_from_u64(1);
    for _ in 0..20 {
        let x: Vec<f64> = (0..5).map(|_| rng.random_range(-1.0..1.0)).collect();
        let (a, b) = (chain.forward(&x), forward(&net, &x));
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-9);
        }
        let j = chain.jacobian(&x, &[0, 3]);
        for (c, &col) in [0usize, 3].iter().enumerate() {
            let h = 1e-6;
            let mut xp = x.clone();
            xp[col] += h;
            let yp = chain.forward(&xp);
            for o in 0..4 {
                let fd = (yp[o] - a[o]) / h;
                assert!((fd - j[o][c]).abs() < 1e-4, "{fd} vs {}", j[o][c]);
            }
        }
    }
}

#[test]
fn splitting_tightens_vb_which_stays_above_the_attack() {
    let net = mlp(&[3, 24, 24, 2], Activation::Relu, 7).unwrap();
    let chain = Chain::new(&net).unwrap();
    let region = BoxRegion::new(vec![-1.0; 3], vec![1.0; 3]).unwrap();
    let prop = GlobalProperty::new(
        region.clone(),
        Perturbation::Sensitive { features: vec![0] },
        1e-3,
    )
    .unwrap();
    let opts = SplitOptions {
        max_boxes: 64,
        ..SplitOptions::default()
    };
    let vb = variation_bound(&net, &chain, &prop, &region, &opts).unwrap();
    assert!(vb.vb < vb.vb_unsplit, "{vb:?}");
    assert!(!vb.proved);
    let pts = netrepair_verify::uniform_points(&region, 50, 0);
    let rep = pgd_variation(&chain, &prop, &pts, &VariationAttack::default());
    assert!(
        rep.pgd_b > 0.0 && rep.pgd_b <= vb.vb,
        "{} {}",
        rep.pgd_b,
        vb.vb
    );
}

#[test]
fn non_chain_networks_are_refused_by_name() {
    let net = mlp(&[3, 8, 2], Activation::Sigmoid, 0).unwrap();
    let err = Chain::new(&net).unwrap_err().to_string();
    assert!(
        err.contains("Sigmoid") || err.contains("not supported"),
        "{err}"
    );
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[test]
fn probability_vb_bounds_sampled_softmax_changes_and_the_attack() {
    for seed in 0..4 {
        // Three classes: the measure's rows are the three logit differences.
        let net = mlp(&[4, 16, 12, 3], Activation::Relu, seed).unwrap();
        let chain = Chain::new(&net).unwrap();
        let mut rng = Rng64::seed_from_u64(seed + 40);
        for prop in props(4, &mut rng) {
            let p = prop
                .clone()
                .with_measure(netrepair_spec::OutputMeasure::Probabilities);
            let vb = variation_bound(&net, &chain, &p, &p.region, &SplitOptions::default())
                .unwrap()
                .vb;
            let dx_box = p.dx_box(&p.region);
            let mut worst: f64 = 0.0;
            for _ in 0..500 {
                let x: Vec<f64> = (0..4)
                    .map(|j| rng.random_range(p.region.lower[j]..=p.region.upper[j]))
                    .collect();
                let mut x2 = x.clone();
                for &f in &p.free_dims() {
                    x2[f] = x[f] + rng.random_range(dx_box.lower[f]..=dx_box.upper[f]);
                }
                p.project(&x, &mut x2);
                let (a, b) = (softmax(&forward(&net, &x)), softmax(&forward(&net, &x2)));
                for (u, v) in a.iter().zip(&b) {
                    worst = worst.max((u - v).abs());
                }
            }
            assert!(
                worst <= vb + 1e-12,
                "seed {seed}: sampled {worst} > VB {vb}"
            );
            let pts = netrepair_verify::uniform_points(&p.region, 50, seed);
            let rep = pgd_variation(&chain, &p, &pts, &VariationAttack::default());
            assert!(rep.pgd_b <= vb + 1e-12, "attack {} > VB {vb}", rep.pgd_b);
            assert!(rep.pgd_b > 0.0 && rep.pgd_b <= 1.0);
        }
    }
}

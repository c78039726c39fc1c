//! REGLO end to end on small generated networks: every repair area the report calls proved
//! survives sampling, a covering repair is a global proof no attack breaks, only the last
//! weight moves, and bad inputs are named.

mod common;

use candle_core::{Device, Tensor};
use common::out;
use netrepair_nn::{mlp, Activation, Network};
use netrepair_repair::{
    decision_keep_set, param_changes, recheck, Aprnn, ItemStatus, Reglo, RegloObjective, Repair,
    RepairContext, RepairItem, RepairProblem, RepairStatus,
};
use netrepair_spec::{BoxRegion, GlobalProperty, Perturbation};
use netrepair_verify::{pgd_variation, Chain, VariationAttack};
use rand::{Rng, SeedableRng};

fn fairness(dim: usize, feature: usize, eps: f64) -> GlobalProperty {
    let region = BoxRegion::new(vec![-1.0; dim], vec![1.0; dim]).unwrap();
    GlobalProperty::new(
        region,
        Perturbation::Sensitive {
            features: vec![feature],
        },
        eps,
    )
    .unwrap()
}

fn problem(p: &GlobalProperty) -> RepairProblem {
    RepairProblem::new(vec![RepairItem::Global {
        name: "fair".into(),
        property: p.clone(),
    }])
}

fn small() -> Reglo {
    Reglo {
        samples: 300,
        eval_points: 200,
        max_areas: 10,
        ..Reglo::default()
    }
}

/// Largest |f(x') - f(x)| over `n` random pairs (x in `area`, x' its allowed perturbation).
fn sampled_variation(net: &Network, p: &GlobalProperty, area: &BoxRegion, n: usize) -> f64 {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut worst: f64 = 0.0;
    let dx = p.dx_box(area);
    for _ in 0..n {
        let x: Vec<f64> = (0..area.dim())
            .map(|j| rng.random_range(area.lower[j]..=area.upper[j]))
            .collect();
        let mut x2 = x.clone();
        for &f in &p.free_dims() {
            x2[f] = x[f] + rng.random_range(dx.lower[f]..=dx.upper[f]);
        }
        p.project(&x, &mut x2);
        let (a, b) = (out(net, &x), out(net, &x2));
        for (u, v) in a.iter().zip(&b) {
            worst = worst.max((u - v).abs());
        }
    }
    worst
}

/// A network proved over the whole region: an attack from 400 points with 6 starts of 40 steps
/// each, and 3000 random pairs, find no variation above eps.
fn assert_unbroken(net: &Network, p: &GlobalProperty, seed: u64) {
    let chain = Chain::new(net).unwrap();
    let pts = netrepair_verify::uniform_points(&p.region, 400, 74 + seed);
    let attack = VariationAttack {
        restarts: 6,
        steps: 40,
        seed,
    };
    let rep = pgd_variation(&chain, p, &pts, &attack);
    assert!(rep.pgd_b <= p.eps, "{} > {}", rep.pgd_b, p.eps);
    assert!(sampled_variation(net, p, &p.region, 3000) <= p.eps);
}

#[test]
fn repaired_areas_hold_and_the_attack_weakens() {
    let net = mlp(&[4, 16, 16, 2], Activation::Relu, 3).unwrap();
    let p = fairness(4, 0, 0.05);
    // The paper's LP: the smallest change of the last weight, nothing else.
    let reglo = Reglo {
        objective: RegloObjective::MinChange,
        ..small()
    };
    let o = reglo
        .repair(&net, &problem(&p), &RepairContext::default())
        .unwrap();
    let g = &o.global()[0];
    assert!(
        g.pgd_r_before > 0.0,
        "the random net should be unfair: {g:?}"
    );
    assert!(g.areas > 0 && g.areas_proved == g.areas, "{g:?}");
    assert!(g.pgd_b_after < g.pgd_b_before, "{g:?}");
    assert!(g.vb_after < g.vb_before, "{g:?}");
    // Only the last layer's weight moved.
    let changes = param_changes(&net, &o.network).unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].node, net.nodes().last().unwrap().name());
    assert!(g.pgd_r_after < g.pgd_r_before, "{g:?}");
    // A claim of "repaired" would need VB <= eps.
    assert!(o.items[0].status != ItemStatus::Repaired || g.vb_after <= p.eps);
}

#[test]
fn a_covering_repair_is_a_global_proof_no_attack_breaks() {
    let net = mlp(&[3, 12, 12, 2], Activation::Relu, 5).unwrap();
    let p = fairness(3, 1, 0.1);
    let reglo = Reglo {
        cover: 32,
        ..small()
    };
    let o = reglo
        .repair(&net, &problem(&p), &RepairContext::default())
        .unwrap();
    let g = &o.global()[0];
    assert!(o.proved, "{}: {g:?}", o.message);
    assert_eq!(o.status, RepairStatus::Proved);
    assert!(g.vb_after <= p.eps);
    // Soundness: many random starts find nothing above eps, and neither does plain sampling.
    assert_unbroken(&o.network, &p, 3);
    // The generic re-check agrees: repaired after, refuted before.
    let check = netrepair_verify::CheckOptions::default();
    let after = recheck(&net, &o.network, &problem(&p), &check).unwrap();
    assert_eq!(after[0].status, ItemStatus::Repaired, "{after:?}");
    let before = recheck(&net, &net, &problem(&p), &check).unwrap();
    assert_eq!(before[0].status, ItemStatus::Failed, "{before:?}");
}

#[test]
fn global_robustness_areas_are_sound_under_sampling() {
    let net = mlp(&[2, 10, 10, 3], Activation::Relu, 11).unwrap();
    let region = BoxRegion::new(vec![-1.0, -1.0], vec![1.0, 1.0]).unwrap();
    let p = GlobalProperty::new(region, Perturbation::Linf { delta: 0.05 }, 0.02).unwrap();
    let reglo = Reglo {
        cover: 16,
        ..small()
    };
    let o = reglo
        .repair(&net, &problem(&p), &RepairContext::default())
        .unwrap();
    let g = &o.global()[0];
    assert!(g.areas_proved > 0, "{g:?}");
    if o.proved {
        assert!(sampled_variation(&o.network, &p, &p.region, 3000) <= p.eps);
    }
}

/// x in [0, 1]^2 -> h = relu(x) (= x there) -> z = (2 h0 + h1 + 0.5, -h0): changing x0 over
/// [0, 1] moves z0 by up to 2 and z1 by up to 1, so VB = 2 exactly.
fn hand_net() -> Network {
    use netrepair_nn::{Layer, Linear, NetworkBuilder};
    let t = |v: Vec<f64>, d: &[usize]| Tensor::from_vec(v, d, &Device::Cpu).unwrap();
    let mut b = NetworkBuilder::new(vec![2]);
    let fc1 = Linear::new(
        "fc1",
        t(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]),
        t(vec![0.0; 2], &[2]),
    );
    b.push("fc1", Layer::Linear(fc1.unwrap())).unwrap();
    b.push("relu1", Layer::Relu).unwrap();
    let fc2 = Linear::new(
        "fc2",
        t(vec![2.0, 1.0, -1.0, 0.0], &[2, 2]),
        t(vec![0.5, 0.0], &[2]),
    );
    b.push("fc2", Layer::Linear(fc2.unwrap())).unwrap();
    b.build().unwrap()
}

#[test]
fn a_rescaling_alone_is_proved_on_a_hand_network() {
    let net = hand_net();
    let region = BoxRegion::new(vec![0.0, 0.0], vec![1.0, 1.0]).unwrap();
    let p =
        GlobalProperty::new(region, Perturbation::Sensitive { features: vec![0] }, 0.1).unwrap();
    // A weight change priced out: the answer is lambda = eps (1 - margin) / VB = 0.095 / 2.
    let reglo = Reglo {
        objective: RegloObjective::Scale { kappa: 1e6 },
        ..small()
    };
    let xs = netrepair_verify::uniform_points(&p.region, 300, 4);
    let keep = decision_keep_set(&net, xs.clone()).unwrap();
    let o = reglo
        .repair(
            &net,
            &problem(&p).with_keep(keep),
            &RepairContext::default(),
        )
        .unwrap();
    let g = &o.global()[0];
    assert!(o.proved, "{}", o.message);
    assert!((g.vb_before - 2.0).abs() < 1e-9, "{g:?}");
    let lambda = 0.1 * 0.95 / 2.0;
    assert!((g.lambda - lambda).abs() < 1e-6, "{g:?}");
    assert!((g.lambda_only - lambda).abs() < 1e-9, "{g:?}");
    assert_eq!(g.relative_change, 0.0, "{g:?}");
    assert!(o.message.contains("only rescaled"), "{}", o.message);
    // The new last layer is lambda times the old one, bias included (f32-rounded).
    for (x, want) in [(&[0.3, 0.9][..], [0.6 + 0.9 + 0.5, -0.3])] {
        let y = out(&o.network, x);
        for (a, b) in y.iter().zip(want) {
            assert!((a - lambda * b).abs() < 1e-6, "{y:?}");
        }
    }
    // Every decision on every sampled input is the original one.
    let k = o.keep.as_ref().unwrap();
    assert_eq!((k.correct_before, k.correct_after), (300, 300));
    for x in netrepair_verify::uniform_points(&p.region, 500, 8) {
        let (a, b) = (out(&net, &x), out(&o.network, &x));
        assert_eq!(a[0] > a[1], b[0] > b[1], "{x:?}");
    }
    assert!(sampled_variation(&o.network, &p, &p.region, 3000) <= p.eps);
}

#[test]
fn the_scale_aware_repair_keeps_decisions_and_proves_the_whole_region() {
    let net = mlp(&[4, 16, 16, 2], Activation::Relu, 3).unwrap();
    let p = fairness(4, 0, 0.05);
    let xs = netrepair_verify::uniform_points(&p.region, 200, 21);
    let keep = decision_keep_set(&net, xs.clone()).unwrap();
    // A cheap weight change: the LP is free to turn the weight, within the kept decisions.
    let reglo = Reglo {
        objective: RegloObjective::Scale { kappa: 0.1 },
        ..small()
    };
    let o = reglo
        .repair(
            &net,
            &problem(&p).with_keep(keep),
            &RepairContext::default(),
        )
        .unwrap();
    let g = &o.global()[0];
    assert!(o.proved && g.proved, "{}: {g:?}", o.message);
    assert!(g.vb_after <= p.eps, "{g:?}");
    assert_eq!(g.pgd_r_after, 0.0, "{g:?}");
    // Every kept decision holds, with the margin the LP asked for.
    let k = o.keep.as_ref().unwrap();
    assert_eq!(k.correct_after, k.points, "{k:?}");
    for x in &xs {
        let (a, b) = (out(&net, x), out(&o.network, x));
        assert_eq!(a[0] > a[1], b[0] > b[1], "{x:?}");
    }
    // The global proof: a many-start attack and 3000 random pairs find nothing above eps.
    assert_unbroken(&o.network, &p, 5);
    // Only the last layer moved.
    let last = net.nodes().last().unwrap().name().to_string();
    assert!(param_changes(&net, &o.network)
        .unwrap()
        .iter()
        .all(|c| c.node == last));
}

#[test]
fn bad_properties_and_settings_are_refused_by_name() {
    let unit = || BoxRegion::new(vec![0.0; 3], vec![1.0; 3]).unwrap();
    let sens = || Perturbation::Sensitive { features: vec![0] };
    let e = GlobalProperty::new(unit(), sens(), 0.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("eps"), "{e}");
    let e = BoxRegion::new(vec![0.0, 1.0, 0.0], vec![1.0, 0.5, 1.0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty") || e.contains("lower"), "{e}");
    let pinned = BoxRegion::new(vec![0.5, 0.0, 0.0], vec![0.5, 1.0, 1.0]).unwrap();
    let e = GlobalProperty::new(pinned, sens(), 0.1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing can change"), "{e}");
    let relu = mlp(&[3, 8, 2], Activation::Relu, 0).unwrap();
    let p = fairness(3, 0, 0.1);
    for (reglo, word) in [
        (
            Reglo {
                keep_tau: 1.5,
                ..small()
            },
            "keep_tau",
        ),
        (
            Reglo {
                objective: RegloObjective::Scale { kappa: -1.0 },
                ..small()
            },
            "kappa",
        ),
    ] {
        let e = reglo
            .repair(&relu, &problem(&p), &RepairContext::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(word), "{e}");
    }
    for bad in ["scale:-2", "scale:x", "lp"] {
        assert!(bad.parse::<RegloObjective>().is_err(), "{bad}");
    }
    assert_eq!(
        "scale:3".parse::<RegloObjective>().unwrap(),
        RegloObjective::Scale { kappa: 3.0 }
    );
}

#[test]
fn bad_inputs_are_refused_by_name() {
    let p = fairness(3, 0, 0.1);
    let sig = mlp(&[3, 8, 2], Activation::Sigmoid, 0).unwrap();
    let e = small()
        .repair(&sig, &problem(&p), &RepairContext::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("Sigmoid") || e.contains("supported"), "{e}");
    let relu = mlp(&[3, 8, 2], Activation::Relu, 0).unwrap();
    let e = Aprnn::default()
        .repair(&relu, &problem(&p), &RepairContext::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("reglo"), "{e}");
    let wrong = fairness(5, 0, 0.1);
    let e = small()
        .repair(&relu, &problem(&wrong), &RepairContext::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 features"), "{e}");
}

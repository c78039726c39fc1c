//! REGLO end to end on small generated networks: every repair area the report calls proved
//! survives sampling, a covering repair is a global proof no attack breaks, only the last
//! weight moves, and bad inputs are named.

mod common;

use common::out;
use netrepair_nn::{mlp, Activation, Network};
use netrepair_repair::{
    param_changes, recheck, Aprnn, ItemStatus, Reglo, Repair, RepairContext, RepairItem,
    RepairProblem, RepairStatus,
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

#[test]
fn repaired_areas_hold_and_the_attack_weakens() {
    let net = mlp(&[4, 16, 16, 2], Activation::Relu, 3).unwrap();
    let p = fairness(4, 0, 0.05);
    let o = small()
        .repair(&net, &problem(&p), &RepairContext::default())
        .unwrap();
    let g = &o.global[0];
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
    let g = &o.global[0];
    assert!(o.proved, "{}: {g:?}", o.message);
    assert_eq!(o.status, RepairStatus::Proved);
    assert!(g.vb_after <= p.eps);
    // Soundness: many random starts find nothing above eps, and neither does plain sampling.
    let chain = Chain::new(&o.network).unwrap();
    let pts = netrepair_verify::uniform_points(&p.region, 400, 77);
    let attack = VariationAttack {
        restarts: 6,
        steps: 40,
        seed: 3,
    };
    let rep = pgd_variation(&chain, &p, &pts, &attack);
    assert!(rep.pgd_b <= p.eps, "{} > {}", rep.pgd_b, p.eps);
    assert!(sampled_variation(&o.network, &p, &p.region, 3000) <= p.eps);
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
    let g = &o.global[0];
    assert!(g.areas_proved > 0, "{g:?}");
    if o.proved {
        assert!(sampled_variation(&o.network, &p, &p.region, 3000) <= p.eps);
    }
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

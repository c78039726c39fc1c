//! The gradient methods (I-REPAIR, fine-tuning, random locking): the influence mask on a
//! hand-made network whose gradients are worked out below, gamma = 0 against fine-tuning,
//! repairs of random MLPs, and bad options.

mod common;

use candle_core::{Device, Tensor};
use common::out;
use netrepair_nn::{mlp, Activation, Layer, Linear, Network, NetworkBuilder};
use netrepair_repair::{
    influence_mask, mixup_points, CorrectTerm, GradientRepair, ItemStatus, KeepSet, LabelledSet,
    Race, Repair, RepairContext, RepairError, RepairItem, RepairProblem, RepairStatus, Requirement,
};
use netrepair_spec::parse_vnnlib;

/// x -> W1 x (W1 = I, b1 = 0) -> ReLU -> W2 h + b2 (W2 = I, b2 = (0, 0.5)).
///
/// The correct point c = (1, -1), label 0, only uses hidden unit 0: y = (1, 0.5). The repair
/// point r = (-1, 1), label 0, only uses hidden unit 1: y = (0, 1.5), class 1 (wrong).
///
/// Correct-set influence (gradient of |y0| + |y1|, both outputs positive): dy = (1, 1), so
/// W2[:, 0] and b2 get 1, W1[0, :] gets x_c = (1, -1) and b1[0] gets 1; the rest 0.
/// Repair influence (cross-entropy of (0, 1.5) against class 0): dy = (-q, q) with
/// q = e^1.5 / (1 + e^1.5), so W2[:, 1] gets (-q, q), b2 gets (-q, q), W1[1, :] gets
/// q (-1, 1) and b1[1] gets q; the rest 0.
fn two_unit_net() -> Network {
    let t = |v: Vec<f64>, d: &[usize]| Tensor::from_vec(v, d, &Device::Cpu).unwrap();
    let mut b = NetworkBuilder::new(vec![2]);
    b.push(
        "fc1",
        Layer::Linear(
            Linear::new(
                "fc1",
                t(vec![1., 0., 0., 1.], &[2, 2]),
                t(vec![0., 0.], &[2]),
            )
            .unwrap(),
        ),
    )
    .unwrap();
    b.push("relu", Layer::Relu).unwrap();
    b.push(
        "fc2",
        Layer::Linear(
            Linear::new(
                "fc2",
                t(vec![1., 0., 0., 1.], &[2, 2]),
                t(vec![0., 0.5], &[2]),
            )
            .unwrap(),
        ),
    )
    .unwrap();
    b.build().unwrap()
}

fn set(xs: &[[f64; 2]], labels: &[usize]) -> LabelledSet {
    LabelledSet {
        inputs: xs.iter().map(|x| x.to_vec()).collect(),
        labels: labels.to_vec(),
    }
}

fn q() -> f64 {
    1.5f64.exp() / (1.0 + 1.5f64.exp())
}

#[test]
fn influence_scores_and_mask_match_the_hand_computed_gradients() {
    let net = two_unit_net();
    let (c, r) = (set(&[[1., -1.]], &[0]), set(&[[-1., 1.]], &[0]));
    assert_eq!(out(&net, &[1., -1.]), vec![1.0, 0.5]);
    assert_eq!(out(&net, &[-1., 1.]), vec![0.0, 1.5]);
    let masks =
        influence_mask(&net, &c, &r, 1.0, netrepair_repair::CorrectLoss::Magnitude).unwrap();
    let by_name = |name: &str| {
        let id = net.find_param(name).unwrap();
        masks.iter().find(|m| m.param == id).unwrap().clone()
    };
    let (q, e) = (q(), 1e-8);
    let free_ratio = (q + e) / e; // repair influence only
    let locked_ratio = e / (1.0 + e); // correct influence only
    let expect = [
        // W1 row-major: row 0 only moves c, row 1 only r.
        (
            "fc1.weight",
            vec![locked_ratio, locked_ratio, free_ratio, free_ratio],
        ),
        ("fc1.bias", vec![locked_ratio, free_ratio]),
        // W2 column 0 only moves c, column 1 only r.
        (
            "fc2.weight",
            vec![locked_ratio, free_ratio, locked_ratio, free_ratio],
        ),
        // b2 moves both: |g_R| / |g_C| = q < 1.
        ("fc2.bias", vec![(q + e) / (1.0 + e), (q + e) / (1.0 + e)]),
    ];
    for (name, want) in expect {
        let m = by_name(name);
        for (k, (&got, &w)) in m.scores.iter().zip(&want).enumerate() {
            assert!(
                (got - w).abs() <= 1e-6 * w.max(1.0),
                "{name}[{k}]: score {got}, expected {w}"
            );
            assert_eq!(m.free[k], got >= 1.0, "{name}[{k}]");
        }
    }
    assert_eq!(by_name("fc2.bias").free, vec![false, false]);
    // A smaller gamma frees b2: q / 0.5 > 1.
    let m = influence_mask(&net, &c, &r, 0.5, netrepair_repair::CorrectLoss::Magnitude).unwrap();
    let id = net.find_param("fc2.bias").unwrap();
    assert_eq!(
        m.iter().find(|m| m.param == id).unwrap().free,
        vec![true, true]
    );
}

#[test]
fn one_irepair_step_moves_exactly_the_free_parameters() {
    let net = two_unit_net();
    let problem = RepairProblem::from_labels(&[-1., 1.], &[0], 2, 2)
        .unwrap()
        .with_keep(KeepSet::points(set(&[[1., -1.]], &[0])));
    let mut m = GradientRepair::irepair(1.0);
    m.options.max_iters = 1;
    m.options.lr = 1e-2;
    let r = m.repair(&net, &problem, &RepairContext::default()).unwrap();
    assert_eq!(r.training().unwrap().iterations, 1);
    let changed = |name: &str| -> Vec<bool> {
        let id = net.find_param(name).unwrap();
        let (a, b) = (
            net.param(id).unwrap().to_vec().unwrap(),
            r.network.param(id).unwrap().to_vec().unwrap(),
        );
        a.iter().zip(&b).map(|(x, y)| x != y).collect()
    };
    // Free entries with a non-zero gradient move; locked ones (score < 1) stay bit-identical,
    // even though the step's cross-entropy on the correct set has a gradient for them.
    assert_eq!(changed("fc1.weight"), vec![false, false, true, true]);
    assert_eq!(changed("fc1.bias"), vec![false, true]);
    assert_eq!(changed("fc2.weight"), vec![false, true, false, true]);
    assert_eq!(changed("fc2.bias"), vec![false, false]);
}

/// A random MLP and `n` points it misclassifies (labelled with the runner-up class), plus
/// `k` points it gets right.
/// Asserts that every parameter of `a` and `b` (networks of `net`'s graph) is bit-identical.
fn assert_same_params(net: &Network, a: &Network, b: &Network) {
    for id in net.param_ids() {
        assert_eq!(
            a.param(id).unwrap().to_vec().unwrap(),
            b.param(id).unwrap().to_vec().unwrap()
        );
    }
}

fn mlp_and_sets(n: usize, k: usize) -> (Network, RepairProblem, LabelledSet) {
    let net = mlp(&[4, 16, 16, 3], Activation::Relu, 7).unwrap();
    let (mut wrong, mut right) = (Vec::new(), LabelledSet::default());
    let mut s = 0u64;
    while wrong.len() < n || right.len() < k {
        s += 1;
        let x: Vec<f64> = (0..4)
            .map(|j| ((s * 7919 + j * 104729) % 1000) as f64 / 500.0 - 1.0)
            .collect();
        let y = out(&net, &x);
        let mut order: Vec<usize> = (0..3).collect();
        order.sort_by(|&a, &b| y[b].total_cmp(&y[a]));
        if wrong.len() < n && s.is_multiple_of(2) {
            wrong.push((x, order[1]));
        } else if right.len() < k {
            right.inputs.push(x);
            right.labels.push(order[0]);
        }
    }
    let flat: Vec<f64> = wrong.iter().flat_map(|(x, _)| x.clone()).collect();
    let labels: Vec<usize> = wrong.iter().map(|(_, c)| *c).collect();
    (
        net,
        RepairProblem::from_labels(&flat, &labels, 4, 3)
            .unwrap()
            .with_keep(KeepSet::points(right.clone())),
        right,
    )
}

#[test]
fn gamma_zero_is_exactly_fine_tuning() {
    let (net, problem, _) = mlp_and_sets(3, 8);
    let mut ir = GradientRepair::irepair(0.0);
    let mut ft = GradientRepair::finetune();
    for m in [&mut ir, &mut ft] {
        m.options.max_iters = 25;
        m.options.lr = 1e-3;
    }
    let (a, b) = (
        ir.repair(&net, &problem, &RepairContext::default())
            .unwrap(),
        ft.repair(&net, &problem, &RepairContext::default())
            .unwrap(),
    );
    assert_eq!(a.training().unwrap().mean_frozen, 0.0);
    assert_same_params(&net, &a.network, &b.network);
    assert!(a.param_delta.changed > 0);
}

#[test]
fn every_method_repairs_misclassified_points_confirmed_by_the_recheck() {
    let (net, problem, _) = mlp_and_sets(4, 12);
    let methods = [
        GradientRepair::irepair(0.5),
        GradientRepair::finetune(),
        GradientRepair::random_lock(0.5),
    ];
    for mut m in methods {
        m.options.lr = 1e-2;
        m.options.margin = 0.05;
        let r = m.repair(&net, &problem, &RepairContext::default()).unwrap();
        assert_eq!(
            r.status,
            RepairStatus::Proved,
            "{}: {}",
            m.name(),
            r.message
        );
        let t = r.training().unwrap();
        assert!(t.converged && t.iterations > 0);
        for (item, rep) in problem.items.iter().zip(&r.items) {
            let RepairItem::Point { x, requirements } = item else {
                unreachable!()
            };
            assert_eq!(rep.held_before, Some(false));
            assert_eq!(rep.status, ItemStatus::Repaired);
            // The margin asked for holds on softmax outputs, so the logits hold too.
            let y = out(&r.network, x);
            assert!(
                requirements.iter().all(|q| q.holds(&y)),
                "{}: {y:?}",
                m.name()
            );
        }
        // Edited values are exactly f32 (what an ONNX float32 file stores).
        for id in net.param_ids() {
            for v in r.network.param(id).unwrap().to_vec().unwrap() {
                assert_eq!(v, f64::from(v as f32));
            }
        }
    }
}

#[test]
fn general_output_requirements_are_repaired_by_the_hinge_loss() {
    let net = two_unit_net();
    // y1 <= 0.2 at r = (-1, 1) (it is 1.5), and y0 >= 0.3 there.
    let mut reqs = Requirement::output_box(
        &[f64::NEG_INFINITY, f64::NEG_INFINITY],
        &[f64::INFINITY, 0.2],
    );
    reqs.extend(Requirement::output_box(
        &[0.3, f64::NEG_INFINITY],
        &[f64::INFINITY, f64::INFINITY],
    ));
    let problem = RepairProblem::new(vec![RepairItem::Point {
        x: vec![-1., 1.],
        requirements: reqs.clone(),
    }]);
    let mut m = GradientRepair::finetune();
    m.options.lr = 1e-2;
    let r = m.repair(&net, &problem, &RepairContext::default()).unwrap();
    assert!(r.proved, "{}", r.message);
    let y = out(&r.network, &[-1., 1.]);
    assert!(y[1] <= 0.2 && y[0] >= 0.3, "{y:?}");
}

#[test]
fn unrepairable_within_the_budget_is_reported_not_proved() {
    let (net, problem, _) = mlp_and_sets(4, 8);
    let mut m = GradientRepair::irepair(1.0);
    m.options.max_iters = 1;
    m.options.lr = 1e-9;
    let r = m.repair(&net, &problem, &RepairContext::default()).unwrap();
    assert_eq!(r.status, RepairStatus::Unconfirmed);
    assert!(!r.proved);
    assert!(!r.training().unwrap().converged);
    assert!(r.items.iter().any(|i| i.status == ItemStatus::Failed));
}

#[test]
fn bad_options_and_problems_are_named() {
    let (net, problem, _) = mlp_and_sets(2, 4);
    let ctx = RepairContext::default();
    let err =
        |m: GradientRepair, p: &RepairProblem| m.repair(&net, p, &ctx).unwrap_err().to_string();
    assert!(err(GradientRepair::irepair(-0.1), &problem).contains("gamma"));
    assert!(err(GradientRepair::irepair(f64::NAN), &problem).contains("gamma"));
    assert!(err(
        GradientRepair::irepair(1.0),
        &problem.clone().with_keep(KeepSet::default())
    )
    .contains("correct set"));
    assert!(err(GradientRepair::random_lock(1.5), &problem).contains("locking.p"));
    let mut m = GradientRepair::finetune();
    m.options.lr = 0.0;
    assert!(err(m, &problem).contains("lr"));
    let mut m = GradientRepair::finetune();
    m.options.max_iters = 0;
    assert!(err(m, &problem).contains("max_iters"));
    // Empty repair set, label out of range (repair and correct set), wrong input size.
    assert!(err(GradientRepair::finetune(), &RepairProblem::default()).contains("empty"));
    assert!(matches!(
        RepairProblem::from_labels(&[0.0; 4], &[3], 4, 3),
        Err(RepairError::Problem(m)) if m.contains("out of range")
    ));
    let bad_label = LabelledSet {
        inputs: vec![vec![0.0; 4]],
        labels: vec![5],
    };
    assert!(err(
        GradientRepair::irepair(1.0),
        &problem.clone().with_keep(KeepSet::points(bad_label))
    )
    .contains("out of range"));
    let bad_size = LabelledSet {
        inputs: vec![vec![0.0; 3]],
        labels: vec![0],
    };
    assert!(err(
        GradientRepair::finetune(),
        &problem.clone().with_keep(KeepSet::points(bad_size))
    )
    .contains("3 values"));
    // Properties are for other methods.
    let prop = parse_vnnlib(
        "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const X_2 Real)(declare-const X_3 Real)
         (declare-const Y_0 Real)(declare-const Y_1 Real)(declare-const Y_2 Real)
         (assert (>= X_0 0))(assert (<= X_0 1))(assert (>= X_1 0))(assert (<= X_1 1))
         (assert (>= X_2 0))(assert (<= X_2 1))(assert (>= X_3 0))(assert (<= X_3 1))
         (assert (>= Y_0 Y_1))",
    )
    .unwrap();
    let p = RepairProblem::new(vec![RepairItem::Property {
        name: "p".into(),
        property: prop,
    }]);
    assert!(err(GradientRepair::finetune(), &p).contains("points only"));
}

#[test]
fn pft_fine_tunes_until_the_verifier_proves_the_property() {
    let net = two_unit_net();
    // Around r = (-1, 1) the network says class 1 (y = (0, 1.5)); the property wants class 0:
    // unsafe when Y_1 >= Y_0.
    let prop = parse_vnnlib(
        "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)
         (assert (>= X_0 -1.1))(assert (<= X_0 -0.9))(assert (>= X_1 0.9))(assert (<= X_1 1.1))
         (assert (>= Y_1 Y_0))",
    )
    .unwrap();
    let problem = RepairProblem::new(vec![RepairItem::Property {
        name: "class0".into(),
        property: prop.clone(),
    }]);
    let m = netrepair_repair::Pft {
        lr: 1e-2,
        ..Default::default()
    };
    let r = m.repair(&net, &problem, &RepairContext::default()).unwrap();
    assert!(r.proved, "{}", r.message);
    assert_eq!(r.items[0].status, ItemStatus::Repaired);
    // Independently: no sampled input of the box reaches the unsafe region.
    for i in 0..=10 {
        for j in 0..=10 {
            let x = [-1.1 + 0.02 * i as f64, 0.9 + 0.02 * j as f64];
            let y = out(&r.network, &x);
            assert!(y[0] > y[1], "x {x:?}: y {y:?}");
        }
    }
    // Points are for the other methods.
    let pts = RepairProblem::from_labels(&[-1., 1.], &[0], 2, 2).unwrap();
    let e = m
        .repair(&net, &pts, &RepairContext::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("properties"), "{e}");
}

#[test]
fn the_reference_loss_trains_on_every_repair_point() {
    // C = {(1, -1) -> 0}: y = (1, 0.5). R = {(-1, 1) -> 0: y = (0, 1.5), wrong;
    // (2, -2) -> 0: y = (2, 0.5), already right}.
    let net = two_unit_net();
    let ce = |y: [f64; 2], c: usize| -> f64 {
        let m = y[0].max(y[1]);
        m + ((y[0] - m).exp() + (y[1] - m).exp()).ln() - y[c]
    };
    let (c, r1, r2) = (ce([1.0, 0.5], 0), ce([0.0, 1.5], 0), ce([2.0, 0.5], 0));
    let problem = RepairProblem::from_labels(&[-1.0, 1.0, 2.0, -2.0], &[0, 0], 2, 2)
        .unwrap()
        .with_keep(KeepSet::points(set(&[[1.0, -1.0]], &[0])));
    for (all, want) in [(true, (r1 + r2 + c) / 3.0), (false, (r1 + c) / 2.0)] {
        let mut m = GradientRepair::finetune();
        m.options.max_iters = 1;
        m.options.all_repair_points = all;
        let o = m.repair(&net, &problem, &RepairContext::default()).unwrap();
        let first = &o.training().unwrap().history[0];
        assert_eq!(first.remaining, 1);
        assert!(
            (first.loss - want).abs() < 1e-5,
            "all = {all}: loss {} against {want}",
            first.loss
        );
    }
}

#[test]
fn the_logit_term_starts_at_zero_and_only_the_repair_loss_is_left() {
    // Same network and sets as above: at the first step the logits of C (and of any synthetic
    // point between C's samples) are the original ones, so the C term is exactly 0 and the
    // loss is the repair point's cross-entropy weighted 1 / (1 + 1).
    let net = two_unit_net();
    let r1 = {
        let m = 1.5f64;
        m + ((0.0 - m).exp() + (1.5 - m).exp()).ln() - 0.0
    };
    let problem = RepairProblem::from_labels(&[-1.0, 1.0], &[0], 2, 2)
        .unwrap()
        .with_keep(KeepSet::points(set(&[[1.0, -1.0], [2.0, -2.0]], &[0, 0])));
    for mixup in [0, 16] {
        let mut m = GradientRepair::finetune();
        m.options.max_iters = 1;
        m.options.correct_term = CorrectTerm::Logits { weight: 3.0 };
        m.options.mixup = mixup;
        let o = m.repair(&net, &problem, &RepairContext::default()).unwrap();
        let first = &o.training().unwrap().history[0];
        let want = r1 / 3.0;
        assert!(
            (first.loss - want).abs() < 1e-5,
            "mixup {mixup}: loss {} against {want}",
            first.loss
        );
    }
}

/// Mean over `xs` of the squared change of the logits.
fn logit_change(a: &Network, b: &Network, xs: &[Vec<f64>]) -> f64 {
    xs.iter()
        .map(|x| {
            out(a, x)
                .iter()
                .zip(out(b, x))
                .map(|(u, v)| (u - v).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / xs.len() as f64
}

#[test]
fn the_logit_term_keeps_the_correct_set_outputs_closer_than_cross_entropy() {
    let (net, problem, right) = mlp_and_sets(3, 12);
    let run = |term: CorrectTerm| {
        let mut m = GradientRepair::finetune();
        m.options.lr = 1e-2;
        m.options.correct_term = term;
        let o = m.repair(&net, &problem, &RepairContext::default()).unwrap();
        assert!(o.proved, "{term:?}: {}", o.message);
        logit_change(&net, &o.network, &right.inputs)
    };
    let (ce, logits) = (
        run(CorrectTerm::CrossEntropy),
        run(CorrectTerm::Logits { weight: 10.0 }),
    );
    assert!(
        logits < ce,
        "logit term {logits} against cross-entropy {ce}"
    );
}

#[test]
fn mixup_points_lie_between_pairs_of_the_inputs_and_follow_the_seed() {
    let inputs = vec![
        vec![0.0, 1.0, -2.0],
        vec![1.0, 1.0, 2.0],
        vec![0.5, -1.0, 0.0],
    ];
    let pts = mixup_points(&inputs, 200, 3);
    assert_eq!(pts.len(), 200);
    for p in &pts {
        // On a segment between two of the inputs: some pair and some l in [0, 1] give p.
        let on_segment = inputs.iter().any(|a| {
            inputs.iter().any(|b| {
                let l = (0..3)
                    .find(|&j| (a[j] - b[j]).abs() > 1e-12)
                    .map_or(1.0, |j| (p[j] - b[j]) / (a[j] - b[j]));
                (-1e-12..=1.0 + 1e-12).contains(&l)
                    && (0..3).all(|j| (l * a[j] + (1.0 - l) * b[j] - p[j]).abs() < 1e-9)
            })
        });
        assert!(on_segment, "{p:?}");
    }
    assert_eq!(pts, mixup_points(&inputs, 200, 3));
    assert_ne!(pts, mixup_points(&inputs, 200, 4));
    assert!(mixup_points(&[], 5, 0).is_empty());
}

#[test]
fn a_race_returns_the_setting_that_finishes_in_the_fewest_steps() {
    let (net, problem, _) = mlp_and_sets(3, 8);
    let ctx = RepairContext::default();
    let with_lr = |lr: f64| {
        let mut m = GradientRepair::finetune();
        m.options.lr = lr;
        m
    };
    let (slow, fast) = (with_lr(1e-3), with_lr(1e-2));
    let alone = |m: &GradientRepair| {
        let o = m.repair(&net, &problem, &ctx).unwrap();
        assert!(o.proved, "{}", o.message);
        o
    };
    let (s, f) = (alone(&slow), alone(&fast));
    let steps = |o: &netrepair_repair::RepairOutcome| o.training().unwrap().iterations;
    assert!(steps(&f) < steps(&s), "{} vs {}", steps(&f), steps(&s));
    let race = Race::new("race", vec![slow, fast]);
    let r = race.repair(&net, &problem, &ctx).unwrap();
    assert!(r.proved);
    assert_eq!(r.method, "race");
    assert_eq!(steps(&r), steps(&f));
    // Deterministic: the winner's network is the one it gives alone.
    assert_same_params(&net, &r.network, &f.network);
    assert!(
        r.notes.iter().any(|n| n.contains("wins: setting 1")),
        "{:?}",
        r.notes
    );
}

#[test]
fn a_race_nobody_finishes_falls_back_and_an_empty_race_is_an_error() {
    let (net, problem, _) = mlp_and_sets(3, 8);
    let ctx = RepairContext::default();
    let mut stuck = GradientRepair::irepair(1.0);
    stuck.options.lr = 1e-9;
    stuck.options.max_iters = 2;
    let mut race = Race::new("race", vec![stuck.clone()]);
    let r = race.repair(&net, &problem, &ctx).unwrap();
    assert!(!r.proved);
    let mut fallback = GradientRepair::finetune();
    fallback.options.lr = 1e-2;
    race.fallback = Some(fallback);
    let r = race.repair(&net, &problem, &ctx).unwrap();
    assert!(r.proved, "{}", r.message);
    assert!(
        r.notes.iter().any(|n| n.contains("wins: the fallback")),
        "{:?}",
        r.notes
    );
    let empty = Race::new("race", Vec::new());
    let e = empty.repair(&net, &problem, &ctx).unwrap_err();
    assert!(matches!(e, RepairError::Problem(_)) && e.to_string().contains("at least one"));
}

#[test]
fn irepair_plus_repairs_and_reports_its_race() {
    let (net, problem, _) = mlp_and_sets(3, 12);
    let base = netrepair_repair::GradientOptions {
        lr: 1e-2,
        ..Default::default()
    };
    let r = Race::irepair_plus(1.0, &base)
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert!(r.proved, "{}", r.message);
    assert_eq!(r.method, "irepair-plus");
    assert!(
        r.notes.iter().any(|n| n.contains("raced 3 settings")),
        "{:?}",
        r.notes
    );
}

#[test]
fn correct_terms_parse_and_bad_ones_are_named() {
    assert_eq!(
        "ce".parse::<CorrectTerm>().unwrap(),
        CorrectTerm::CrossEntropy
    );
    assert_eq!(
        "logits".parse::<CorrectTerm>().unwrap(),
        CorrectTerm::Logits { weight: 1.0 }
    );
    assert_eq!(
        "logits:2.5".parse::<CorrectTerm>().unwrap(),
        CorrectTerm::Logits { weight: 2.5 }
    );
    for bad in ["logits:0", "logits:-1", "logits:x", "mse", "logits:inf"] {
        let e = bad.parse::<CorrectTerm>().unwrap_err().to_string();
        assert!(e.contains(bad) && e.contains("correct-set term"), "{e}");
    }
}

#[test]
fn the_referee_picks_the_repair_that_changes_fewest_held_out_predictions() {
    let (net, problem, _) = mlp_and_sets(3, 8);
    let ctx = RepairContext::default();
    // Held-out inputs: a grid over the input box.
    let validation: Vec<Vec<f64>> = (0..400)
        .map(|i| {
            (0..4)
                .map(|j| (((i * 37 + j * 11) % 20) as f64) / 10.0 - 0.95)
                .collect()
        })
        .collect();
    let mut coarse = GradientRepair::finetune();
    coarse.options.lr = 5e-2;
    let mut fine = GradientRepair::irepair(1.0);
    fine.options.lr = 1e-2;
    let lp = netrepair_repair::Aprnn::default();
    // Never finishes, so never wins, though it changes nothing.
    let mut stuck = GradientRepair::irepair(1.0);
    stuck.options.lr = 1e-9;
    stuck.options.max_iters = 2;
    let alone: Vec<(netrepair_repair::RepairOutcome, f64)> = [
        Box::new(coarse.clone()) as Box<dyn Repair>,
        Box::new(fine.clone()),
        Box::new(lp.clone()),
    ]
    .iter()
    .map(|m| {
        let o = m.repair(&net, &problem, &ctx).unwrap();
        assert!(o.proved, "{}", o.message);
        let c = netrepair_repair::changed_predictions(&net, &o.network, &validation).unwrap();
        (o, c)
    })
    .collect();
    let shares: Vec<f64> = alone.iter().map(|(_, c)| *c).collect();
    let best = (0..3)
        .min_by(|&a, &b| shares[a].total_cmp(&shares[b]))
        .unwrap();
    assert!(
        shares.iter().any(|&s| s != shares[best]),
        "the candidates must differ for the test to mean something: {shares:?}"
    );
    let refereed = netrepair_repair::Refereed {
        name: "refereed",
        candidates: vec![
            Box::new(stuck.clone()),
            Box::new(coarse.clone()),
            Box::new(fine),
            Box::new(lp),
        ],
        fallback: Some(Box::new(GradientRepair::finetune())),
        validation: validation.clone(),
    };
    let r = refereed.repair(&net, &problem, &ctx).unwrap();
    assert!(r.proved);
    assert_eq!(r.method, "refereed");
    assert_same_params(&net, &r.network, &alone[best].0.network);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains(&format!("candidate {}", best + 1))),
        "{:?}",
        r.notes
    );
    // The fallback runs only when no candidate repairs every point, and then it can win.
    assert!(
        !r.notes.iter().any(|n| n.contains("4 (finetune)")),
        "{:?}",
        r.notes
    );
    let rescued = netrepair_repair::Refereed {
        name: "refereed",
        candidates: vec![Box::new(stuck)],
        fallback: Some(Box::new(coarse)),
        validation: validation.clone(),
    };
    let r = rescued.repair(&net, &problem, &ctx).unwrap();
    assert!(r.proved, "{:?}", r.notes);
    assert!(
        r.notes.iter().any(|n| n.contains("the fallback")),
        "{:?}",
        r.notes
    );
    assert_same_params(&net, &r.network, &alone[0].0.network);
    // Bad input: no candidate, or validation inputs of the wrong length.
    let none = netrepair_repair::Refereed {
        name: "refereed",
        candidates: Vec::new(),
        fallback: None,
        validation: validation.clone(),
    };
    assert!(none.repair(&net, &problem, &ctx).is_err());
    let wrong = netrepair_repair::Refereed {
        name: "refereed",
        candidates: vec![Box::new(GradientRepair::finetune())],
        fallback: None,
        validation: vec![vec![0.0; 3]],
    };
    let e = wrong.repair(&net, &problem, &ctx).unwrap_err();
    assert!(e.to_string().contains("3 values"), "{e}");
}

#[test]
fn synthetic_keep_points_lie_between_kept_points_and_carry_the_networks_labels() {
    let (net, problem, right) = mlp_and_sets(3, 8);
    let more = problem.clone().with_synthetic_keep(&net, 25, 3).unwrap();
    assert_eq!(more.keep.points.len(), right.len() + 25);
    assert_eq!(more.items, problem.items);
    // The originals come first, unchanged.
    assert_eq!(&more.keep.points.inputs[..right.len()], &right.inputs[..]);
    for (x, &c) in more.keep.points.inputs[right.len()..]
        .iter()
        .zip(&more.keep.points.labels[right.len()..])
    {
        for (j, v) in x.iter().enumerate() {
            let lo = right
                .inputs
                .iter()
                .map(|r| r[j])
                .fold(f64::INFINITY, f64::min);
            let hi = right
                .inputs
                .iter()
                .map(|r| r[j])
                .fold(f64::NEG_INFINITY, f64::max);
            assert!(
                *v >= lo - 1e-12 && *v <= hi + 1e-12,
                "{v} outside [{lo}, {hi}]"
            );
        }
        let y = out(&net, x);
        let top = (0..y.len()).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
        assert_eq!(c, top);
    }
    // Nothing to mix, or nothing asked: unchanged.
    assert_eq!(
        problem.clone().with_synthetic_keep(&net, 0, 3).unwrap(),
        problem
    );
    let bare = RepairProblem::new(problem.items.clone());
    assert_eq!(bare.clone().with_synthetic_keep(&net, 25, 3).unwrap(), bare);
}

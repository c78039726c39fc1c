//! PREPARED end to end: properties over boxes edited at the last layer (exact bounds) and at
//! an earlier layer (propagated relaxation), with input splitting; every claim re-checked.

mod common;

use common::out;
use netrepair_nn::{mlp, Activation, Network};
use netrepair_repair::{
    resolve_layer, Cuts, KeepObjective, KeepRegion, KeepSet, LabelledSet, LpRepairOptions,
    Prepared, Repair, RepairContext, RepairItem, RepairProblem, RepairStatus,
};
use netrepair_spec::parse_vnnlib;
use netrepair_verify::{check_property, CheckOptions, Verdict};

/// "Output `o` never beats output `w` on the box": violated when `o` wins somewhere.
fn property(w: usize, o: usize, lo: f64, hi: f64) -> RepairItem {
    let text = format!(
        "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)(declare-const Y_2 Real)
         (assert (>= X_0 {lo}))(assert (<= X_0 {hi}))(assert (>= X_1 {lo}))(assert (<= X_1 {hi}))
         (assert (>= Y_{w} Y_{o}))"
    );
    RepairItem::Property {
        name: format!("y{o} beats y{w}"),
        property: parse_vnnlib(&text).unwrap(),
    }
}

fn violated(net: &Network, item: &RepairItem) -> bool {
    let RepairItem::Property { property, .. } = item else {
        unreachable!()
    };
    matches!(
        check_property(net, property, &CheckOptions::default())
            .unwrap()
            .verdict,
        Verdict::Violated(_)
    )
}

#[test]
fn properties_over_boxes_are_proved_after_editing_the_last_layer() {
    let net = mlp(&[2, 16, 16, 3], Activation::Relu, 21).unwrap();
    let y = out(&net, &[0.0, 0.0]);
    let w = (0..3).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
    let items = vec![
        property(w, (w + 1) % 3, -0.5, 0.5),
        property(w, (w + 2) % 3, -0.5, 0.5),
    ];
    assert!(items.iter().all(|i| violated(&net, i)));
    let problem = RepairProblem::new(items);
    let r = Prepared::default()
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert_eq!(
        r.status,
        RepairStatus::Proved,
        "{}: {:?}",
        r.message,
        r.items
    );
    assert!(problem.items.iter().all(|i| !violated(&r.network, i)));
    // Only the last layer moved.
    let last = net.nodes().len() - 1;
    assert!(r
        .param_delta
        .params
        .iter()
        .all(|p| p.node == net.nodes()[last].name()));
}

#[test]
fn an_earlier_layer_is_edited_through_the_propagated_relaxation() {
    let net = mlp(&[2, 12, 12, 3], Activation::Relu, 4).unwrap();
    let y = out(&net, &[0.2, 0.2]);
    let w = (0..3).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
    let item = property(w, (w + 1) % 3, 0.0, 0.4);
    assert!(violated(&net, &item));
    let problem = RepairProblem::new(vec![item]);
    let method = Prepared {
        lp: LpRepairOptions {
            layer: Some(resolve_layer(&net, "1").unwrap()),
            ..LpRepairOptions::default()
        },
        ..Prepared::default()
    };
    let r = method
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert_eq!(r.status, RepairStatus::Proved, "{}: {:?}", r.message, r.lp);
    assert!(!violated(&r.network, &problem.items[0]));
}

#[test]
fn labelled_points_work_too_and_contradictions_are_infeasible() {
    let net = mlp(&[2, 8, 3], Activation::Relu, 2).unwrap();
    let ok = RepairProblem::from_labels(&[0.1, 0.2, -0.3, 0.4], &[2, 1], 2, 3).unwrap();
    let r = Prepared::default()
        .repair(&net, &ok, &RepairContext::default())
        .unwrap();
    assert!(r.proved, "{}", r.message);
    let bad = RepairProblem::from_labels(&[0.1, 0.2, 0.1, 0.2], &[2, 1], 2, 3).unwrap();
    let r = Prepared::default()
        .repair(&net, &bad, &RepairContext::default())
        .unwrap();
    assert_eq!(r.status, RepairStatus::Infeasible);
    assert!(r.param_delta.params.is_empty());
}

fn argmax(y: &[f64]) -> usize {
    (0..y.len()).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap()
}

#[test]
fn kept_points_and_regions_stay_as_they_were() {
    let net = mlp(&[2, 16, 16, 3], Activation::Relu, 21).unwrap();
    let y = out(&net, &[0.0, 0.0]);
    let w = argmax(&y);
    let items = vec![
        property(w, (w + 1) % 3, -0.5, 0.5),
        property(w, (w + 2) % 3, -0.5, 0.5),
    ];
    // Kept points: a grid around the box, labelled as the network has them.
    let inputs: Vec<Vec<f64>> = (0..64)
        .map(|k| vec![(k % 8) as f64 / 3.5 - 1.0, (k / 8) as f64 / 3.5 - 1.0])
        .filter(|x| x.iter().any(|v| v.abs() > 0.75))
        .collect();
    let labels: Vec<usize> = inputs.iter().map(|x| argmax(&out(&net, x))).collect();
    let keep_points = LabelledSet { inputs, labels };
    // A kept region: a small box far from the repaired one where the network is robust.
    let c = [0.9, 0.9];
    let cw = argmax(&out(&net, &c));
    let region = (0..3)
        .filter(|&o| o != cw)
        .map(|o| format!("(and (>= Y_{o} Y_{cw}))"))
        .collect::<Vec<_>>()
        .join("");
    let text = format!(
        "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)(declare-const Y_2 Real)
         (assert (>= X_0 0.88))(assert (<= X_0 0.92))(assert (>= X_1 0.88))(assert (<= X_1 0.92))
         (assert (or {region}))"
    );
    let kept_property = parse_vnnlib(&text).unwrap();
    assert_eq!(
        check_property(&net, &kept_property, &CheckOptions::default())
            .unwrap()
            .verdict,
        Verdict::Holds
    );
    let problem = RepairProblem::new(items);
    let plain = Prepared::default()
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert!(plain.proved, "{}", plain.message);
    let flips = |n: &Network| {
        keep_points
            .inputs
            .iter()
            .zip(&keep_points.labels)
            .filter(|(x, &c)| argmax(&out(n, x)) != c)
            .count()
    };
    assert!(
        flips(&plain.network) > 0,
        "the fixture needs a repair that flips a kept point"
    );
    let keep = KeepSet {
        regions: vec![KeepRegion {
            name: "robust at (0.9, 0.9)".into(),
            property: kept_property,
        }],
        ..KeepSet::points(keep_points.clone())
    };
    let r = Prepared::default()
        .repair(
            &net,
            &problem.clone().with_keep(keep.clone()),
            &RepairContext::default(),
        )
        .unwrap();
    assert!(r.proved, "{}", r.message);
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    assert_eq!(flips(&r.network), 0);
    let k = r.keep.unwrap();
    assert_eq!(k.correct_after, keep_points.len());
    assert_eq!(
        (k.regions, k.regions_proved),
        (1, 1),
        "{:?}",
        k.regions_detail
    );
    // The kept points' output changes are in the objective (an L-inf term by default): they
    // move less than when their classes are only held by constraints.
    let largest_change = |n: &Network| {
        keep_points
            .inputs
            .iter()
            .flat_map(|x| {
                let (a, b) = (out(&net, x), out(n, x));
                a.into_iter().zip(b).map(|(a, b)| (a - b).abs())
            })
            .fold(0.0, f64::max)
    };
    // The same problem and keep set under another keep objective: proved, no kept point lost.
    let with_objective = |keep_objective| {
        let r = Prepared {
            keep_objective,
            ..Prepared::default()
        }
        .repair(
            &net,
            &problem.clone().with_keep(keep.clone()),
            &RepairContext::default(),
        )
        .unwrap();
        assert!(r.proved, "{keep_objective:?}: {}", r.message);
        assert_eq!(flips(&r.network), 0, "{keep_objective:?}");
        r
    };
    let held_only = with_objective(KeepObjective::Off);
    assert!(
        largest_change(&r.network) < 0.9 * largest_change(&held_only.network),
        "{} vs {}",
        largest_change(&r.network),
        largest_change(&held_only.network)
    );
    // The second-moment objective bounds their RMS change with a few rows per output: the
    // RMS change is smaller than with the classes only held, and every kept point holds.
    let rms_change = |n: &Network| {
        let (mut sum, mut count) = (0.0, 0.0);
        for x in &keep_points.inputs {
            for (a, b) in out(&net, x).into_iter().zip(out(n, x)) {
                sum += (a - b) * (a - b);
                count += 1.0;
            }
        }
        (sum / count).sqrt()
    };
    let moments = with_objective(KeepObjective::Moments { weight: 1.0 });
    assert!(
        rms_change(&moments.network) < 0.9 * rms_change(&held_only.network),
        "{} vs {}",
        rms_change(&moments.network),
        rms_change(&held_only.network)
    );
}

/// "Output `w` is never beaten by output `o`" on the box `c +- r` (unsafe: `Y_o >= Y_w`).
fn ball_property(c: &[f64], r: f64, w: usize, o: usize) -> RepairItem {
    let mut text = String::new();
    for (i, v) in c.iter().enumerate() {
        text += &format!(
            "(declare-const X_{i} Real)(assert (>= X_{i} {}))(assert (<= X_{i} {}))",
            v - r,
            v + r
        );
    }
    for j in 0..3 {
        text += &format!("(declare-const Y_{j} Real)");
    }
    text += &format!("(assert (>= Y_{o} Y_{w}))");
    RepairItem::Property {
        name: format!("y{w} robust against y{o}"),
        property: parse_vnnlib(&text).unwrap(),
    }
}

#[test]
fn linear_cuts_never_cost_more_than_the_box_and_cost_less_on_wide_inputs() {
    // A ball around an input, as wide as it takes for the runner-up to win somewhere. With 8
    // inputs the box of the last hidden layer is far larger than the set the ball reaches;
    // the cuts (the original requirement direction bounded by back-substitution) let the LP
    // pay only for what the edit itself changes.
    let mut strictly = 0;
    for seed in 0..6 {
        let net = mlp(&[8, 24, 24, 3], Activation::Relu, seed).unwrap();
        let c: Vec<f64> = (0..8)
            .map(|i| ((i * 7 + seed as usize) % 5) as f64 * 0.2 - 0.4)
            .collect();
        let y = out(&net, &c);
        let w = argmax(&y);
        let o = (0..3)
            .filter(|&j| j != w)
            .max_by(|&a, &b| y[a].total_cmp(&y[b]))
            .unwrap();
        let Some(item) = [0.02, 0.05, 0.1, 0.2, 0.4]
            .into_iter()
            .map(|r| ball_property(&c, r, w, o))
            .find(|i| violated(&net, i))
        else {
            continue;
        };
        let problem = RepairProblem::new(vec![item]);
        let run = |cuts| {
            let m = Prepared {
                cuts,
                split_rounds: 0,
                ..Prepared::default()
            };
            m.repair(&net, &problem, &RepairContext::default()).unwrap()
        };
        let (cut, plain) = (run(Cuts::Linear), run(Cuts::Off));
        assert_eq!(
            cut.status,
            RepairStatus::Proved,
            "seed {seed}: {}",
            cut.message
        );
        assert!(!violated(&cut.network, &problem.items[0]));
        // The box bound is the cuts' bound at lambda = 0: the LP's optimum
        // (||d||_inf + ||d||_1 / n over the 24 x 3 weights and 3 biases) can only fall.
        let objective =
            |r: &netrepair_repair::RepairOutcome| r.param_delta.linf + r.param_delta.l1 / 75.0;
        assert_eq!(plain.status, RepairStatus::Proved, "seed {seed}");
        assert!(
            objective(&cut) <= objective(&plain) + 1e-6,
            "seed {seed}: {} > {}",
            objective(&cut),
            objective(&plain)
        );
        if objective(&cut) < 0.5 * objective(&plain) {
            strictly += 1;
        }
        // Optimised slopes tighten both the cuts and the box: the optimum can only fall again.
        let alpha = run(Cuts::Alpha);
        assert_eq!(alpha.status, RepairStatus::Proved, "seed {seed}");
        assert!(!violated(&alpha.network, &problem.items[0]));
        assert!(
            objective(&alpha) <= objective(&cut) + 1e-6,
            "seed {seed}: {} > {}",
            objective(&alpha),
            objective(&cut)
        );
    }
    // Seeds 1 and 4 (the narrow balls) need a third to a fifth of the change.
    assert!(strictly >= 2, "{strictly}");
}

#[test]
fn an_edit_before_a_concatenation_is_proved_through_it() {
    use netrepair_nn::{Layer, NetworkBuilder};
    // A 2-12-12-3 MLP whose last layer reads [h2; h2]: the concatenation of the second hidden
    // layer with itself, the last weight halved so that the function is the MLP's. Editing
    // layer 1 makes PREPARED's relaxation run through the concatenation.
    let base = mlp(&[2, 12, 12, 3], Activation::Relu, 4).unwrap();
    let mut b = NetworkBuilder::new(vec![2]);
    for n in &base.nodes()[..4] {
        b.push(n.name(), n.layer().clone()).unwrap();
    }
    let h = b.last();
    b.push_with_inputs("cat", Layer::Concat { axis: 0, inputs: 2 }, vec![h, h])
        .unwrap();
    let Layer::Linear(last) = base.nodes()[4].layer() else {
        unreachable!()
    };
    let w = last.weight().value().affine(0.5, 0.0).unwrap();
    let w = candle_core::Tensor::cat(&[&w, &w], 1).unwrap();
    let fc = netrepair_nn::Linear::new("fc3", w, last.bias().value().clone()).unwrap();
    b.push("fc3", Layer::Linear(fc)).unwrap();
    let net = b.build().unwrap();
    let y = out(&net, &[0.2, 0.2]);
    assert!(
        y.iter()
            .zip(out(&base, &[0.2, 0.2]))
            .all(|(a, b)| (a - b).abs() < 1e-12),
        "same function"
    );
    let w = (0..3).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
    let item = property(w, (w + 1) % 3, 0.0, 0.4);
    assert!(violated(&net, &item));
    let problem = RepairProblem::new(vec![item]);
    let method = Prepared {
        lp: LpRepairOptions {
            layer: Some(resolve_layer(&net, "1").unwrap()),
            ..LpRepairOptions::default()
        },
        ..Prepared::default()
    };
    let r = method
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert_eq!(r.status, RepairStatus::Proved, "{}: {:?}", r.message, r.lp);
    assert!(!violated(&r.network, &problem.items[0]));
}

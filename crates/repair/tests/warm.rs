//! The warm start: fine-tuning on training data, then an LP method proving the repair, the
//! whole re-checked from the original network.

mod common;

use candle_core::{Device, Tensor};
use common::out;
use netrepair_nn::{fit, mlp, Activation, Network, TrainConfig};
use netrepair_repair::{
    param_changes, Aprnn, KeepSet, LabelledSet, Prepared, Repair, RepairContext, RepairError,
    RepairItem, RepairProblem, RepairStatus, WarmOptions, WarmStart,
};

/// The class of a point under the ground truth: which of three wedges around the origin,
/// slightly bent, so that a small network learns it with a few errors near the boundaries.
fn truth(x: &[f64]) -> usize {
    let a = x[1].atan2(x[0]) + 0.4 * x[0] * x[1];
    ((a + std::f64::consts::PI) / (2.0 * std::f64::consts::PI / 3.0)).floor() as usize % 3
}

/// `n` points of a seeded low-discrepancy sequence in [-1, 1]^2 with their true labels.
fn sample(n: usize, offset: usize) -> LabelledSet {
    let inputs: Vec<Vec<f64>> = (offset..offset + n)
        .map(|k| {
            let u = (k as f64 * 0.754_877_666_246_692_7).fract();
            let v = (k as f64 * 0.569_840_290_998_053_3).fract();
            vec![2.0 * u - 1.0, 2.0 * v - 1.0]
        })
        .collect();
    let labels = inputs.iter().map(|x| truth(x)).collect();
    LabelledSet { inputs, labels }
}

fn predict(net: &Network, x: &[f64]) -> usize {
    let y = out(net, x);
    (0..y.len()).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap()
}

fn accuracy(net: &Network, set: &LabelledSet) -> f64 {
    let ok = set
        .inputs
        .iter()
        .zip(&set.labels)
        .filter(|(x, &c)| predict(net, x) == c)
        .count();
    ok as f64 / set.len() as f64
}

/// A network trained briefly on the wedges, its errors on a "test" sample as the repair
/// problem, correctly classified training samples, and held-out samples.
fn setting() -> (Network, RepairProblem, LabelledSet, LabelledSet) {
    let mut net = mlp(&[2, 24, 24, 3], Activation::Relu, 3).unwrap();
    let train = sample(600, 0);
    let flat: Vec<f32> = train.inputs.iter().flatten().map(|&v| v as f32).collect();
    let x = Tensor::from_vec(flat, (train.len(), 2), &Device::Cpu).unwrap();
    let y: Vec<u32> = train.labels.iter().map(|&c| c as u32).collect();
    let cfg = TrainConfig {
        epochs: 15,
        lr: 1e-2,
        ..TrainConfig::default()
    };
    fit(&mut net, &x, &y, &cfg, |_, _| {}, |_| {}).unwrap();
    let test = sample(400, 10_000);
    let wrong: Vec<usize> = (0..test.len())
        .filter(|&i| predict(&net, &test.inputs[i]) != test.labels[i])
        .take(8)
        .collect();
    let errors = test.subset(&wrong);
    let problem =
        RepairProblem::from_labels(&errors.inputs.concat(), &errors.labels, 2, 3).unwrap();
    let right: Vec<usize> = (0..train.len())
        .filter(|&i| predict(&net, &train.inputs[i]) == train.labels[i])
        .collect();
    let held_out = sample(2000, 50_000);
    (net, problem, train.subset(&right), held_out)
}

fn last_layer_aprnn() -> Box<dyn Repair> {
    Box::new(Aprnn::default())
}

#[test]
fn with_no_fine_tuning_steps_the_warm_start_is_exactly_its_lp_method() {
    let (net, problem, train, _) = setting();
    let problem = problem.with_keep(KeepSet::points(train.subset(&(0..30).collect::<Vec<_>>())));
    let alone = Aprnn::default()
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    let warm = WarmStart {
        train,
        options: WarmOptions {
            max_steps: 0,
            ..WarmOptions::default()
        },
        then: last_layer_aprnn(),
    }
    .repair(&net, &problem, &RepairContext::default())
    .unwrap();
    assert_eq!(warm.status, alone.status, "{}", warm.message);
    assert!(param_changes(&alone.network, &warm.network)
        .unwrap()
        .is_empty());
    let w = warm.warm_start.as_ref().unwrap();
    assert_eq!((w.steps, w.met_before, w.met_after), (0, 0, 0));
    assert_eq!(warm.keep, alone.keep);
    assert!(
        warm.method.starts_with("warm-start+aprnn"),
        "{}",
        warm.method
    );
}

#[test]
fn fine_tuning_fixes_the_errors_and_the_lp_proves_them_from_the_original_network() {
    let (net, problem, train, held_out) = setting();
    let n = problem.items.len();
    assert!(n >= 4, "the fixture needs errors to repair, got {n}");
    let before = accuracy(&net, &held_out);
    let keep = KeepSet::points(train.subset(&(0..30).collect::<Vec<_>>()));
    let problem = problem.with_keep(keep);
    let warm = WarmStart {
        train,
        options: WarmOptions {
            lr: 3e-3,
            ..WarmOptions::default()
        },
        then: last_layer_aprnn(),
    }
    .repair(&net, &problem, &RepairContext::default())
    .unwrap();
    assert_eq!(warm.status, RepairStatus::Proved, "{}", warm.message);
    // The re-check is from the original network: every item was wrong before.
    assert!(warm.items.iter().all(|i| i.held_before == Some(false)));
    let w = warm.warm_start.as_ref().unwrap();
    assert_eq!((w.points, w.met_before), (n, 0));
    assert!(w.converged && w.met_after == n, "{w:?}");
    // Fine-tuning moved every layer, not only the last one.
    let changed = param_changes(&net, &warm.network).unwrap();
    assert!(changed.len() >= 4, "{changed:?}");
    assert!(warm.layer.starts_with("all"), "{}", warm.layer);
    // The kept points are judged against the original network's classes.
    let k = warm.keep.as_ref().unwrap();
    assert_eq!(k.correct_before, 30);
    // Fine-tuning on training data keeps the network working (on this small task the
    // one-layer LP costs little too; which of the two to keep is `--layer auto`'s choice, by
    // a validation slice).
    let after = accuracy(&warm.network, &held_out);
    assert!(
        after >= before - 0.02,
        "held-out accuracy {before} -> {after}"
    );
    // Keeping the training samples' logits too: still fixed and proved, and the network
    // moves less on the training samples' outputs.
    let train = setting().2;
    let logit_drift = |n: &Network| -> f64 {
        train
            .inputs
            .iter()
            .map(|x| {
                out(n, x)
                    .iter()
                    .zip(out(&net, x))
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
            })
            .sum()
    };
    let kept = WarmStart {
        train: train.clone(),
        options: WarmOptions {
            lr: 3e-3,
            keep_logits: 10.0,
            ..WarmOptions::default()
        },
        then: last_layer_aprnn(),
    }
    .repair(&net, &problem, &RepairContext::default())
    .unwrap();
    assert_eq!(kept.status, RepairStatus::Proved, "{}", kept.message);
    assert!(
        logit_drift(&kept.network) < logit_drift(&warm.network),
        "{} vs {}",
        logit_drift(&kept.network),
        logit_drift(&warm.network)
    );
    // Keeping the logits alone (no cross-entropy): still fixed and proved, and the samples'
    // outputs move less than under the cross-entropy alone.
    let distilled = WarmStart {
        train: train.clone(),
        options: WarmOptions {
            lr: 3e-3,
            keep_logits: 10.0,
            label_weight: 0.0,
            ..WarmOptions::default()
        },
        then: last_layer_aprnn(),
    }
    .repair(&net, &problem, &RepairContext::default())
    .unwrap();
    assert_eq!(
        distilled.status,
        RepairStatus::Proved,
        "{}",
        distilled.message
    );
    assert!(
        logit_drift(&distilled.network) < logit_drift(&warm.network),
        "{} vs {}",
        logit_drift(&distilled.network),
        logit_drift(&warm.network)
    );
}

#[test]
fn train_from_leaves_the_layers_before_it_as_they_are() {
    let (net, problem, train, _) = setting();
    let options = WarmOptions {
        lr: 3e-3,
        train_from: netrepair_repair::TrainFrom::Layer(1),
        ..WarmOptions::default()
    };
    let (tuned, report) = options
        .fine_tune(&net, &problem, &train, &RepairContext::default())
        .unwrap();
    assert!(report.steps > 0, "{report:?}");
    let changed: Vec<String> = param_changes(&net, &tuned)
        .unwrap()
        .into_iter()
        .map(|p| p.node)
        .collect();
    assert!(!changed.is_empty());
    let first = netrepair_repair::affine_layers(&net)[0];
    assert!(
        !changed.contains(&net.nodes()[first].name().to_string()),
        "{changed:?}"
    );
    // An index past the last affine layer is named.
    let e = WarmOptions {
        train_from: netrepair_repair::TrainFrom::Layer(3),
        ..WarmOptions::default()
    }
    .fine_tune(&net, &problem, &train, &RepairContext::default())
    .unwrap_err();
    assert!(e.to_string().contains("train_from 3"), "{e}");
}

#[test]
fn bad_warm_start_settings_and_training_sets_are_refused_by_name() {
    let (net, problem, train, _) = setting();
    let run = |train: LabelledSet, options: WarmOptions| {
        WarmStart {
            train,
            options,
            then: last_layer_aprnn(),
        }
        .repair(&net, &problem, &RepairContext::default())
        .unwrap_err()
    };
    let e = run(LabelledSet::default(), WarmOptions::default());
    assert!(
        matches!(e, RepairError::Problem(_)) && e.to_string().contains("training samples"),
        "{e}"
    );
    let mut bad = train.clone();
    bad.labels[0] = 7;
    let e = run(bad, WarmOptions::default());
    assert!(e.to_string().contains("out of range"), "{e}");
    for (options, name) in [
        (
            WarmOptions {
                repair_share: 0.0,
                ..WarmOptions::default()
            },
            "repair_share",
        ),
        (
            WarmOptions {
                lr: f64::NAN,
                ..WarmOptions::default()
            },
            "lr",
        ),
        (
            WarmOptions {
                keep_logits: -1.0,
                ..WarmOptions::default()
            },
            "keep_logits",
        ),
        (
            WarmOptions {
                label_weight: 0.0,
                ..WarmOptions::default()
            },
            "label_weight",
        ),
        (
            WarmOptions {
                batch: 0,
                ..WarmOptions::default()
            },
            "batch",
        ),
    ] {
        let e = run(train.clone(), options);
        assert!(e.to_string().contains(name), "{name}: {e}");
    }
}

/// "Output `w` is never beaten by output `o`" on the box `c +- r`.
fn ball(c: &[f64], r: f64, w: usize, o: usize, outputs: usize) -> netrepair_spec::Property {
    let mut text = String::new();
    for (i, v) in c.iter().enumerate() {
        text += &format!(
            "(declare-const X_{i} Real)(assert (>= X_{i} {}))(assert (<= X_{i} {}))",
            v - r,
            v + r
        );
    }
    for j in 0..outputs {
        text += &format!("(declare-const Y_{j} Real)");
    }
    text += &format!("(assert (>= Y_{o} Y_{w}))");
    netrepair_spec::parse_vnnlib(&text).unwrap()
}

#[test]
fn properties_are_trained_on_their_centres_and_counterexamples_then_proved_by_prepared() {
    let (net, problem, train, _) = setting();
    // A ball around a misclassified test point, labelled with its true class: broken at the
    // centre already, so the attack has counterexamples to find.
    let RepairItem::Point { x, requirements } = &problem.items[0] else {
        unreachable!()
    };
    let label = (0..3)
        .find(|&c| requirements == &netrepair_repair::Requirement::label(c, 3))
        .unwrap();
    let y = out(&net, x);
    let o = (0..3)
        .filter(|&j| j != label)
        .max_by(|&a, &b| y[a].total_cmp(&y[b]))
        .unwrap();
    let items = vec![RepairItem::Property {
        name: "ball".into(),
        property: ball(x, 0.02, label, o, 3),
    }];
    let problem = RepairProblem::new(items);
    let prepared = || -> Box<dyn Repair> {
        Box::new(Prepared {
            split_rounds: 0,
            ..Prepared::default()
        })
    };
    let r = WarmStart {
        train,
        options: WarmOptions {
            lr: 3e-3,
            property_margin: 0.5,
            attack_every: 10,
            sound_tail: false,
            ..WarmOptions::default()
        },
        then: prepared(),
    }
    .repair(&net, &problem, &RepairContext::default())
    .unwrap();
    assert_eq!(r.status, RepairStatus::Proved, "{}", r.message);
    let w = r.warm_start.as_ref().unwrap();
    assert_eq!((w.points, w.cases, w.cases_skipped), (0, 1, 0), "{w:?}");
    assert!(w.converged && w.cases_attacked_clean, "{w:?}");
    // The centre alone was wrong: the first attack round found a counterexample.
    assert!(w.counterexamples >= 1, "{w:?}");
    // A case whose unsafe region is an intersection of two half-spaces is left to the LP.
    let mut p = ball(x, 0.02, label, o, 3);
    let c0 = p.cases[0].unsafe_region[0].constraints[0].clone();
    p.cases[0].unsafe_region[0].constraints.push(c0);
    let both = RepairProblem::new(vec![RepairItem::Property {
        name: "two".into(),
        property: p,
    }]);
    let (_, report) = WarmOptions {
        max_steps: 3,
        ..WarmOptions::default()
    }
    .fine_tune(
        &net,
        &both,
        &LabelledSet {
            inputs: vec![x.clone()],
            labels: vec![0],
        },
        &RepairContext::default(),
    )
    .unwrap();
    assert_eq!((report.cases, report.cases_skipped), (0, 1), "{report:?}");
}

#[test]
fn a_fine_tuned_network_that_passes_the_recheck_needs_no_lp_stage() {
    let (net, problem, train, _) = setting();
    let options = WarmOptions {
        lr: 3e-3,
        ..WarmOptions::default()
    };
    let ctx = RepairContext::default();
    let (tuned, report) = options.fine_tune(&net, &problem, &train, &ctx).unwrap();
    assert!(report.converged, "{report:?}");
    let r = WarmStart {
        train: train.clone(),
        options: options.clone(),
        then: last_layer_aprnn(),
    }
    .repair(&net, &problem, &ctx)
    .unwrap();
    assert_eq!(r.status, RepairStatus::Proved, "{}", r.message);
    assert_eq!(r.method, "warm-start", "{}", r.message);
    assert!(r.lp.is_empty(), "{:?}", r.lp);
    assert!(
        r.notes.iter().any(|n| n.contains("skipped")),
        "{:?}",
        r.notes
    );
    // The network returned is the fine-tuned one, re-checked from the original: every item
    // was wrong before and is right now.
    assert!(param_changes(&tuned, &r.network).unwrap().is_empty());
    assert!(r.items.iter().all(
        |i| i.held_before == Some(false) && i.status == netrepair_repair::ItemStatus::Repaired
    ));
    // A kept region the fine-tuned network does not prove sends the repair to the LP stage:
    // a ball around an error, labelled with its true class, is unproved before and after a
    // fine-tuning that never sees it.
    let RepairItem::Point { x, requirements } = &problem.items[0] else {
        unreachable!()
    };
    let label = (0..3)
        .find(|&c| requirements == &netrepair_repair::Requirement::label(c, 3))
        .unwrap();
    let wrong = (0..3).find(|&c| c != label).unwrap();
    let keep = KeepSet {
        regions: vec![netrepair_repair::KeepRegion {
            name: "unprovable".into(),
            property: ball(x, 0.01, wrong, label, 3),
        }],
        ..KeepSet::default()
    };
    let kept = problem.clone().with_keep(keep);
    assert!(netrepair_repair::proved_by_fine_tuning(
        &net,
        &tuned,
        &report,
        &kept,
        &ctx,
        std::time::Instant::now()
    )
    .unwrap()
    .is_none());
}

#[test]
fn where_a_dense_chain_moves_properties_train_on_sound_bounds_and_need_no_lp() {
    let (net, problem, train, held_out) = setting();
    let RepairItem::Point { x, requirements } = &problem.items[0] else {
        unreachable!()
    };
    let label = (0..3)
        .find(|&c| requirements == &netrepair_repair::Requirement::label(c, 3))
        .unwrap();
    let y = out(&net, x);
    let o = (0..3)
        .filter(|&j| j != label)
        .max_by(|&a, &b| y[a].total_cmp(&y[b]))
        .unwrap();
    let problem = RepairProblem::new(vec![RepairItem::Property {
        name: "ball".into(),
        property: ball(x, 0.02, label, o, 3),
    }]);
    let ctx = RepairContext::default();
    let options = WarmOptions {
        lr: 3e-3,
        ..WarmOptions::default()
    };
    let (_, report) = options.fine_tune(&net, &problem, &train, &ctx).unwrap();
    // The whole MLP moves, and it is a chain of Linear and ReLU layers: no attack ran, and
    // the sound bound of the ball's requirement clears half the margin.
    assert!(report.sound_tail && report.converged, "{report:?}");
    assert_eq!(report.counterexamples, 0);
    assert!(
        report.tail_worst.unwrap() >= options.tail_margin / 2.0,
        "{report:?}"
    );
    let r = WarmStart {
        train,
        options,
        then: Box::new(Prepared::default()),
    }
    .repair(&net, &problem, &ctx)
    .unwrap();
    // The verifier proves what the bound promised, so the LP stage is skipped.
    assert_eq!(r.status, RepairStatus::Proved, "{}", r.message);
    assert_eq!(r.method, "warm-start", "{}", r.message);
    assert!(r.lp.is_empty());
    assert!(accuracy(&r.network, &held_out) >= accuracy(&net, &held_out) - 0.05);
}

#[test]
fn auto_train_from_is_the_dense_tail_for_properties_and_everything_for_points() {
    use netrepair_nn::{cnn, CnnSpec, ConvBlock};
    use netrepair_repair::{auto_train_from, TrainFrom};
    let (net, points, _, _) = setting();
    let RepairItem::Point { x, .. } = &points.items[0] else {
        unreachable!()
    };
    let props = RepairProblem::new(vec![RepairItem::Property {
        name: "ball".into(),
        property: ball(x, 0.02, 0, 1, 3),
    }]);
    // An MLP is a dense chain from its first layer: 0 either way.
    assert_eq!(auto_train_from(&net, &points), 0);
    assert_eq!(auto_train_from(&net, &props), 0);
    // Two convolutions, then Linear-ReLU-Linear: the properties train from the first Linear
    // (affine layer 2), point repairs move everything.
    let conv = cnn(
        &CnnSpec {
            input: [1, 4, 4],
            blocks: vec![
                ConvBlock {
                    channels: 2,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                    pool: None,
                };
                2
            ],
            hidden: vec![5],
            classes: 3,
        },
        0,
    )
    .unwrap();
    let xs = vec![0.5; 16];
    let conv_props = RepairProblem::new(vec![RepairItem::Property {
        name: "ball".into(),
        property: ball(&xs, 0.02, 0, 1, 3),
    }]);
    let conv_points = RepairProblem::from_labels(&xs, &[1], 16, 3).unwrap();
    assert_eq!(auto_train_from(&conv, &conv_props), 2);
    assert_eq!(TrainFrom::Auto.resolve(&conv, &conv_points), 0);
    assert_eq!(TrainFrom::Layer(1).resolve(&conv, &conv_props), 1);
    assert_eq!("auto".parse::<TrainFrom>(), Ok(TrainFrom::Auto));
    assert_eq!("3".parse::<TrainFrom>(), Ok(TrainFrom::Layer(3)));
    assert!("-1".parse::<TrainFrom>().is_err());
}

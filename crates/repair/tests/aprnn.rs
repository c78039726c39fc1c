//! APRNN end to end on small generated networks: the paper's fixture, labelled points,
//! polytopes, boxes and the infeasible cases.

mod common;

use candle_core::{Device, Tensor};
use common::out;
use netrepair_nn::{aprnn_example, mlp, Activation, Network};
use netrepair_repair::{
    param_changes, resolve_layer, Aprnn, ItemStatus, LpRepairOptions, Repair, RepairContext,
    RepairItem, RepairProblem, RepairStatus, Requirement,
};
use netrepair_spec::parse_vnnlib;

fn fixture_problem() -> RepairProblem {
    let reqs = Requirement::output_box(&[-0.1], &[0.1]);
    RepairProblem {
        items: [-1.5, -0.5]
            .iter()
            .map(|&x| RepairItem::Point {
                x: vec![x],
                requirements: reqs.clone(),
            })
            .collect(),
    }
}

fn aprnn_at(net: &Network, layer: &str) -> Aprnn {
    Aprnn {
        lp: LpRepairOptions {
            layer: Some(resolve_layer(net, layer).unwrap()),
            ..LpRepairOptions::default()
        },
        ..Aprnn::default()
    }
}

#[test]
fn paper_fixture_is_repaired_at_either_layer_changing_only_permitted_parameters() {
    let net = aprnn_example();
    assert!((out(&net, &[-1.5])[0] - 0.25).abs() < 1e-12);
    assert!((out(&net, &[-0.5])[0] + 0.25).abs() < 1e-12);
    for layer in ["0", "1"] {
        let method = aprnn_at(&net, layer);
        let r = method
            .repair(&net, &fixture_problem(), &RepairContext::default())
            .unwrap();
        assert_eq!(
            r.status,
            RepairStatus::Proved,
            "layer {layer}: {}",
            r.message
        );
        for x in [-1.5, -0.5] {
            let y = out(&r.network, &[x])[0];
            assert!((-0.1..=0.1).contains(&y), "layer {layer}: N({x}) = {y}");
        }
        let changed: Vec<String> = param_changes(&net, &r.network)
            .unwrap()
            .into_iter()
            .map(|c| c.param)
            .collect();
        let name =
            |node: usize, slot: usize| net.nodes()[node].layer().params()[slot].name().to_string();
        // k = 0: fc1's weight and every bias may move; k = 1: only fc2's weight and bias.
        let allowed = if layer == "0" {
            vec![name(0, 0), name(0, 1), name(2, 1)]
        } else {
            vec![name(2, 0), name(2, 1)]
        };
        assert!(
            changed.iter().all(|c| allowed.contains(c)),
            "{changed:?} vs {allowed:?}"
        );
        assert!(r.param_delta.linf > 0.0 && r.param_delta.l1 >= r.param_delta.linf);
        assert!(r.items.iter().all(|i| i.held_before == Some(false)));
    }
}

#[test]
fn contradictory_labels_are_infeasible_and_leave_the_network_alone() {
    let net = mlp(&[2, 8, 3], Activation::Relu, 3).unwrap();
    let problem = RepairProblem::from_labels(&[0.3, -0.2, 0.3, -0.2], &[0, 1], 2, 3).unwrap();
    let r = Aprnn::default()
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert_eq!(r.status, RepairStatus::Infeasible);
    assert!(!r.proved);
    assert!(r.message.contains("no repair exists"), "{}", r.message);
    assert!(r.items.iter().all(|i| i.status == ItemStatus::Failed));
    assert!(r.param_delta.params.is_empty());
    assert_eq!(out(&r.network, &[0.3, -0.2]), out(&net, &[0.3, -0.2]));
}

/// Points the random network gets wrong, labelled with another class.
fn wrong_points(net: &Network, n: usize) -> (Vec<f64>, Vec<usize>) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for k in 0..n {
        let x = [
            ((k * 37) % 17) as f64 / 8.5 - 1.0,
            ((k * 11) % 13) as f64 / 6.5 - 1.0,
        ];
        let y = out(net, &x);
        let pred = (0..y.len()).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
        xs.extend_from_slice(&x);
        ys.push((pred + 1) % y.len());
    }
    (xs, ys)
}

#[test]
fn labelled_points_are_fixed_at_every_layer_and_tight_bounds_are_infeasible() {
    let net = mlp(&[2, 16, 16, 3], Activation::Relu, 7).unwrap();
    let (xs, ys) = wrong_points(&net, 6);
    let problem = RepairProblem::from_labels(&xs, &ys, 2, 3).unwrap();
    for layer in ["0", "1", "2"] {
        let r = aprnn_at(&net, layer)
            .repair(&net, &problem, &RepairContext::default())
            .unwrap();
        assert!(r.proved, "layer {layer}: {}", r.message);
        for (x, &c) in xs.chunks(2).zip(&ys) {
            let y = out(&r.network, x);
            assert!(
                (0..3).all(|j| j == c || y[c] > y[j]),
                "layer {layer}: {y:?} vs {c}"
            );
        }
        assert!(r.lp.iter().all(|l| l.rows > 0 && l.nonzeros > 0));
    }
    let mut tight = aprnn_at(&net, "2");
    tight.lp.delta_bound = Some(1e-6);
    let r = tight
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert_eq!(r.status, RepairStatus::Infeasible);
}

#[test]
fn a_polytope_is_repaired_on_its_whole_hull() {
    let net = mlp(&[2, 12, 12, 2], Activation::Relu, 11).unwrap();
    let vertices = vec![vec![-0.6, -0.5], vec![0.7, -0.4], vec![0.1, 0.8]];
    // Ask for the class the centroid does not get.
    let c = {
        let y = out(&net, &[0.0667, -0.0333]);
        usize::from(y[0] >= y[1])
    };
    let problem = RepairProblem {
        items: vec![RepairItem::Polytope {
            vertices: vertices.clone(),
            requirements: Requirement::label(c, 2),
        }],
    };
    let r = aprnn_at(&net, "1")
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert!(r.proved, "{}: {:?}", r.message, r.items);
    assert!(
        r.lp.iter().any(|l| l.purpose.contains("shift")),
        "the vertices straddle a first-layer ReLU: a shift pass must run first: {:?}",
        r.lp
    );
    // Every convex combination is classified c.
    for a in 0..=10 {
        for b in 0..=(10 - a) {
            let (wa, wb) = (a as f64 / 10.0, b as f64 / 10.0);
            let wc = 1.0 - wa - wb;
            let x: Vec<f64> = (0..2)
                .map(|j| wa * vertices[0][j] + wb * vertices[1][j] + wc * vertices[2][j])
                .collect();
            let y = out(&r.network, &x);
            assert!(y[c] > y[1 - c], "{x:?}: {y:?}");
        }
    }
}

#[test]
fn a_vnnlib_box_is_repaired_through_its_corners() {
    let net = mlp(&[2, 10, 2], Activation::Relu, 5).unwrap();
    let y = out(&net, &[0.5, 0.5]);
    // Unsafe: the centre's current winner wins somewhere in the box.
    let (w, o) = if y[0] >= y[1] { (0, 1) } else { (1, 0) };
    let text = format!(
        "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)
         (assert (>= X_0 0.45))(assert (<= X_0 0.55))(assert (>= X_1 0.45))(assert (<= X_1 0.55))
         (assert (>= Y_{w} Y_{o}))"
    );
    let property = parse_vnnlib(&text).unwrap();
    let problem = RepairProblem {
        items: vec![RepairItem::Property {
            name: "flip".into(),
            property,
        }],
    };
    let mut method = aprnn_at(&net, "0");
    method.box_splits = 1;
    let r = method
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert!(r.proved, "{}: {:?}", r.message, r.items);
    let y = out(&r.network, &[0.5, 0.5]);
    assert!(y[o] > y[w]);
}

#[test]
fn sigmoid_after_the_start_layer_is_refused_with_its_name() {
    let net = mlp(&[2, 4, 2], Activation::Sigmoid, 1).unwrap();
    let problem = RepairProblem::from_labels(&[0.1, 0.2], &[1], 2, 2).unwrap();
    let err = aprnn_at(&net, "0")
        .repair(&net, &problem, &RepairContext::default())
        .unwrap_err();
    assert!(err.to_string().contains("Sigmoid"), "{err}");
    // The last layer is fine: nothing non-linear follows it.
    let r = aprnn_at(&net, "1")
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert!(r.proved, "{}", r.message);
}

#[test]
fn a_point_whose_hidden_layer_is_dead_is_flagged() {
    let mut net = mlp(&[2, 3, 2], Activation::Relu, 9).unwrap();
    let id = net
        .find_param(net.nodes()[0].layer().params()[1].name())
        .unwrap();
    net.set_param(
        id,
        Tensor::new(&[-100f64, -100.0, -100.0], &Device::Cpu).unwrap(),
    )
    .unwrap();
    let y = out(&net, &[0.1, 0.2]);
    let wrong = usize::from(y[0] >= y[1]);
    let problem = RepairProblem::from_labels(&[0.1, 0.2], &[wrong], 2, 2).unwrap();
    let r = aprnn_at(&net, "0")
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    // Still repairable, but only through the output bias: the report says so.
    assert!(r.proved, "{}", r.message);
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert!(r.notes[0].contains("entirely inactive"), "{}", r.notes[0]);
    assert_eq!(r.flagged, vec![0]);
    assert!(r
        .param_delta
        .params
        .iter()
        .all(|p| p.node == net.nodes()[2].name()));
}

#[test]
fn an_output_clamped_by_a_final_relu_is_flagged_and_infeasible() {
    use netrepair_nn::{Layer, Linear, NetworkBuilder};
    let t = |v: Vec<f64>, d: &[usize]| Tensor::from_vec(v, d, &Device::Cpu).unwrap();
    let mut b = NetworkBuilder::new(vec![1]);
    b.push(
        "fc1",
        Layer::Linear(
            Linear::new("fc1", t(vec![1.0, -1.0], &[2, 1]), t(vec![0.0, 0.0], &[2])).unwrap(),
        ),
    )
    .unwrap();
    b.push("relu1", Layer::Relu).unwrap();
    b.push(
        "fc2",
        Layer::Linear(
            Linear::new(
                "fc2",
                t(vec![1.0, 0.0, -1.0, 0.0], &[2, 2]),
                t(vec![0.0, 0.0], &[2]),
            )
            .unwrap(),
        ),
    )
    .unwrap();
    b.push("relu_out", Layer::Relu).unwrap();
    let net = b.build().unwrap();
    // At x = 1: logits (1, -1) -> outputs (1, 0). Asking for class 1 needs y_1 > y_0 >= 0,
    // but the final ReLU holds y_1 at 0.
    let problem = RepairProblem::from_labels(&[1.0], &[1], 1, 2).unwrap();
    for layer in ["0", "1"] {
        let r = aprnn_at(&net, layer)
            .repair(&net, &problem, &RepairContext::default())
            .unwrap();
        assert_eq!(r.status, RepairStatus::Infeasible, "layer {layer}");
        assert!(
            r.notes.iter().any(|n| n.contains("final ReLU 'relu_out'")),
            "{:?}",
            r.notes
        );
        assert_eq!(r.flagged, vec![0]);
    }
}

#[test]
fn anchors_keep_other_outputs_closer() {
    let net = mlp(&[2, 16, 16, 3], Activation::Relu, 7).unwrap();
    let (xs, ys) = wrong_points(&net, 6);
    let problem = RepairProblem::from_labels(&xs, &ys, 2, 3).unwrap();
    let anchors: Vec<Vec<f64>> = (0..40)
        .map(|k| vec![(k % 8) as f64 / 4.0 - 1.0, (k / 8) as f64 / 2.5 - 1.0])
        .collect();
    let moved = |r: &netrepair_repair::RepairOutcome| -> f64 {
        anchors
            .iter()
            .map(|a| {
                out(&r.network, a)
                    .iter()
                    .zip(out(&net, a))
                    .map(|(p, q)| (p - q).abs())
                    .sum::<f64>()
            })
            .sum()
    };
    let plain = aprnn_at(&net, "2")
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    let mut method = aprnn_at(&net, "2");
    method.anchors = anchors.clone();
    let anchored = method
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert!(plain.proved && anchored.proved);
    assert!(
        moved(&anchored) < moved(&plain),
        "anchored {} vs plain {}",
        moved(&anchored),
        moved(&plain)
    );
}

//! MM repair (seed 001's baseline): the binary search on the bound finds the minimal
//! last-layer change worked out by hand, with and without a kept point, and bad input is
//! refused by name.

mod common;

use candle_core::{Device, Tensor};
use common::out;
use netrepair_nn::{Layer, Linear, Network, NetworkBuilder};
use netrepair_repair::{
    KeepSet, LabelledSet, Mm, Repair, RepairContext, RepairProblem, RepairStatus, WeightNorm,
};

/// One Linear layer, W = I, b = 0: z = x.
fn identity() -> Network {
    let t = |v: Vec<f64>, d: &[usize]| Tensor::from_vec(v, d, &Device::Cpu).unwrap();
    let mut b = NetworkBuilder::new(vec![2]);
    let fc = Linear::new(
        "fc",
        t(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]),
        t(vec![0.0; 2], &[2]),
    );
    b.push("fc", Layer::Linear(fc.unwrap())).unwrap();
    b.build().unwrap()
}

/// x = (1, 0) has z = (1, 0), class 0; asking for class 1 with margin m needs
/// `dW[1][0] - dW[0][0] >= 1 + m`: the least L-inf change is (1 + m) / 2, the least L1 1 + m.
fn problem() -> RepairProblem {
    RepairProblem::from_labels(&[1.0, 0.0], &[1], 2, 2).unwrap()
}

fn bound_of(o: &netrepair_repair::RepairOutcome) -> f64 {
    // The message names the bound found: "... norm 0.500050 (binary search ...".
    let s = &o.message;
    let at = s.find("norm ").unwrap() + 5;
    s[at..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn the_binary_search_finds_the_minimal_bound_worked_out_by_hand() {
    let net = identity();
    let m = 1e-4;
    for (norm, want) in [
        (WeightNorm::Linf, (1.0 + m) / 2.0),
        (WeightNorm::L1, 1.0 + m),
    ] {
        let mm = Mm {
            norm,
            margin: m,
            tolerance: 1e-4,
            ..Mm::default()
        };
        let o = mm
            .repair(&net, &problem(), &RepairContext::default())
            .unwrap();
        assert_eq!(o.status, RepairStatus::Proved, "{}", o.message);
        let b = bound_of(&o);
        assert!(
            b >= want - 1e-9 && b <= want * (1.0 + 2e-4),
            "{norm:?}: {b} vs {want}"
        );
        assert!(o.notes[0].contains("exact minimum"), "{:?}", o.notes);
        let y = out(&o.network, &[1.0, 0.0]);
        assert!(y[1] > y[0], "{y:?}");
        // Only the weight moved, by at most the bound (f32 rounding aside).
        assert!(o.param_delta.linf <= b + 1e-6, "{:?}", o.param_delta);
    }
}

#[test]
fn a_kept_point_raises_the_bound_as_worked_out_by_hand() {
    // Keep (1, 0.6) -> 0 (margin 0.4, kept at min(0.2, 0.05) = 0.05):
    // 0.4 - (dW10 - dW00) + 0.6 (dW01 - dW11) >= 0.05 with dW10 - dW00 >= 1 + m gives
    // dW01 - dW11 >= (0.65 + m) / 0.6, so the least L-inf change is (0.65 + m) / 1.2.
    let net = identity();
    let m = 1e-4;
    let keep = LabelledSet {
        inputs: vec![vec![1.0, 0.6]],
        labels: vec![0],
    };
    let mm = Mm {
        margin: m,
        tolerance: 1e-4,
        ..Mm::default()
    };
    let p = problem().with_keep(KeepSet::points(keep));
    let o = mm.repair(&net, &p, &RepairContext::default()).unwrap();
    let want = (0.65 + m) / 1.2;
    let b = bound_of(&o);
    assert!(
        b >= want - 1e-9 && b <= want * (1.0 + 2e-4),
        "{b} vs {want}"
    );
    let k = out(&o.network, &[1.0, 0.6]);
    assert!(k[0] - k[1] >= 0.05 - 1e-5, "{k:?}");
    assert_eq!(o.keep.as_ref().unwrap().correct_after, 1);
}

#[test]
fn bad_input_is_refused_by_name() {
    let net = identity();
    // No change within the bound: (1 + m) / 2 > 0.4.
    let e = Mm {
        max_bound: 0.4,
        ..Mm::default()
    }
    .repair(&net, &problem(), &RepairContext::default())
    .unwrap_err()
    .to_string();
    assert!(e.contains("no change") && e.contains("0.4"), "{e}");
    for (mm, word) in [
        (
            Mm {
                max_bound: -1.0,
                ..Mm::default()
            },
            "bound",
        ),
        (
            Mm {
                tolerance: 2.0,
                ..Mm::default()
            },
            "tolerance",
        ),
    ] {
        let e = mm
            .repair(&net, &problem(), &RepairContext::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(word), "{e}");
    }
    // A network ending in a ReLU has no last Linear layer to change.
    let mut b = NetworkBuilder::new(vec![2]);
    let t = |v: Vec<f64>, d: &[usize]| Tensor::from_vec(v, d, &Device::Cpu).unwrap();
    let fc = Linear::new(
        "fc",
        t(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]),
        t(vec![0.0; 2], &[2]),
    );
    b.push("fc", Layer::Linear(fc.unwrap())).unwrap();
    b.push("relu", Layer::Relu).unwrap();
    let relu = b.build().unwrap();
    let e = Mm::default()
        .repair(&relu, &problem(), &RepairContext::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("Linear"), "{e}");
    assert!("l2".parse::<WeightNorm>().is_err());
}

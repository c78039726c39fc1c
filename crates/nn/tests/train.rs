//! Optimisers (hand-computed first steps), masks, and the training loop.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{t, to_vec};
use netrepair_nn::{
    fit, mlp, Activation, Layer, Linear, NetworkBuilder, Optimizer, OptimizerKind, TrainConfig,
    Trainer,
};
use rand::{Rng, SeedableRng};

/// Linear(1 -> 1) with w = 1, b = 0.
fn scalar_net() -> netrepair_nn::Network {
    let mut b = NetworkBuilder::new(vec![1]);
    b.push(
        "fc",
        Layer::Linear(Linear::new("fc", t(vec![1.0], &[1, 1]), t(vec![0.0], &[1])).unwrap()),
    )
    .unwrap();
    b.build().unwrap()
}

/// Runs `steps` optimiser steps on loss = output at x = 1 (gradient 1 for w and b).
fn run(kind: OptimizerKind, lr: f64, steps: usize) -> (f64, f64) {
    let mut net = scalar_net();
    let tr = Trainer::new(&net, DType::F64).unwrap();
    let vars = tr.vars();
    let mut opt = Optimizer::new(kind, lr, 0.0, vars.len()).unwrap();
    for _ in 0..steps {
        let loss = tr
            .forward(&t(vec![1.0], &[1, 1]))
            .unwrap()
            .sum_all()
            .unwrap();
        opt.step(&vars, &tr.grads(&loss).unwrap(), None).unwrap();
    }
    tr.write_back(&mut net).unwrap();
    let w = net
        .param(net.find_param("fc.weight").unwrap())
        .unwrap()
        .to_vec()
        .unwrap()[0];
    let b = net
        .param(net.find_param("fc.bias").unwrap())
        .unwrap()
        .to_vec()
        .unwrap()[0];
    (w, b)
}

#[test]
fn optimiser_steps_by_hand() {
    // SGD, momentum 0.9, lr 0.1: m1 = 1, w = 1 - 0.1 = 0.9; m2 = 0.9 + 1 = 1.9, w = 0.9 - 0.19.
    let (w, b) = run(OptimizerKind::Sgd { momentum: 0.9 }, 0.1, 2);
    assert!(
        (w - 0.71).abs() < 1e-12 && (b + 0.29).abs() < 1e-12,
        "{w} {b}"
    );
    // Adam: the bias-corrected first step is lr * g / |g| = 0.1 (up to eps).
    let (w, b) = run(OptimizerKind::adam(), 0.1, 1);
    assert!((w - 0.9).abs() < 1e-6 && (b + 0.1).abs() < 1e-6, "{w} {b}");
    // RMSprop (alpha 0.99): v = 0.01, step = 0.1 * 1 / sqrt(0.01) = 1.
    let (w, _) = run(OptimizerKind::rmsprop(), 0.1, 1);
    assert!(w.abs() < 1e-6, "{w}");
}

#[test]
fn masked_entries_do_not_move() {
    let mut net = mlp(&[3, 4, 2], Activation::Relu, 1).unwrap();
    let before = net.param_tensors(DType::F64).unwrap();
    let tr = Trainer::new(&net, DType::F64).unwrap();
    let vars = tr.vars();
    // Freeze the first row of every weight and every other bias entry.
    let masks: Vec<Tensor> = vars
        .iter()
        .map(|v| {
            let n = v.as_tensor().elem_count();
            let m: Vec<f64> = (0..n).map(|i| if i % 2 == 0 { 0.0 } else { 1.0 }).collect();
            Tensor::from_vec(m, v.as_tensor().dims(), &Device::Cpu).unwrap()
        })
        .collect();
    let mut opt = Optimizer::new(OptimizerKind::rmsprop(), 0.05, 0.0, vars.len()).unwrap();
    let x = t(vec![0.3, -0.2, 0.9, 1.0, 0.5, -0.7], &[2, 3]);
    for _ in 0..5 {
        let loss = tr.forward(&x).unwrap().sqr().unwrap().sum_all().unwrap();
        opt.step(&vars, &tr.grads(&loss).unwrap(), Some(&masks))
            .unwrap();
    }
    tr.write_back(&mut net).unwrap();
    let after = net.param_tensors(DType::F64).unwrap();
    let mut moved = 0;
    for (b, a) in before.iter().zip(&after) {
        for (i, (x, y)) in to_vec(b).iter().zip(to_vec(a)).enumerate() {
            if i % 2 == 0 {
                assert_eq!(*x, y, "a masked entry moved");
            } else if *x != y {
                moved += 1;
            }
        }
    }
    assert!(moved > 5, "unmasked entries should move ({moved})");
}

fn blobs(n: usize, seed: u64) -> (Tensor, Vec<u32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let c = (i % 2) as u32;
        let centre = if c == 0 { -1.0 } else { 1.0 };
        x.push(centre + rng.random_range(-0.6..0.6));
        x.push(-centre + rng.random_range(-0.6..0.6));
        y.push(c);
    }
    (Tensor::from_vec(x, (n, 2), &Device::Cpu).unwrap(), y)
}

#[test]
fn fit_learns_and_is_deterministic() {
    let (x, y) = blobs(200, 3);
    let cfg = TrainConfig {
        epochs: 15,
        batch_size: 16,
        lr: 0.01,
        ..Default::default()
    };
    let train = || {
        let mut net = mlp(&[2, 8, 2], Activation::Relu, 9).unwrap();
        let h = fit(&mut net, &x, &y, &cfg, |_, _| {}, |_| {}).unwrap();
        (net, h)
    };
    let (a, history) = train();
    let (b, _) = train();
    assert_eq!(history.len(), 15);
    assert!(history.last().unwrap().loss < history[0].loss);
    let pred = a.predict(&x).unwrap();
    let acc = pred.iter().zip(&y).filter(|(p, l)| p == l).count() as f64 / y.len() as f64;
    assert!(acc >= 0.95, "accuracy {acc}");
    for id in a.param_ids() {
        assert_eq!(
            a.param(id).unwrap().to_vec().unwrap(),
            b.param(id).unwrap().to_vec().unwrap(),
            "same seed, same network"
        );
    }
}

#[test]
fn every_optimiser_reduces_the_loss() {
    let (x, y) = blobs(100, 5);
    for optimizer in [
        OptimizerKind::sgd(),
        OptimizerKind::adam(),
        OptimizerKind::rmsprop(),
    ] {
        let mut net = mlp(&[2, 8, 2], Activation::Tanh, 2).unwrap();
        let cfg = TrainConfig {
            epochs: 10,
            batch_size: 10,
            lr: 0.01,
            optimizer,
            ..Default::default()
        };
        let h = fit(&mut net, &x, &y, &cfg, |_, _| {}, |_| {}).unwrap();
        assert!(
            h[9].loss < h[0].loss,
            "{optimizer:?}: {} -> {}",
            h[0].loss,
            h[9].loss
        );
    }
}

#[test]
fn bad_training_settings_are_named() {
    let (x, y) = blobs(10, 1);
    let mut net = mlp(&[2, 4, 2], Activation::Relu, 0).unwrap();
    let ok = TrainConfig::default();
    let cases = [
        (
            TrainConfig {
                epochs: 0,
                ..ok.clone()
            },
            y.clone(),
            "epochs",
        ),
        (
            TrainConfig {
                batch_size: 0,
                ..ok.clone()
            },
            y.clone(),
            "batch size",
        ),
        (
            TrainConfig {
                lr: -1.0,
                ..ok.clone()
            },
            y.clone(),
            "learning rate",
        ),
        (ok.clone(), vec![0; 3], "labels"),
        (ok.clone(), vec![5; 10], "out of range"),
    ];
    for (cfg, labels, word) in cases {
        let err = fit(&mut net, &x, &labels, &cfg, |_, _| {}, |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains(word), "expected '{word}' in: {err}");
    }
    assert!(mlp(&[2], Activation::Relu, 0).is_err());
}

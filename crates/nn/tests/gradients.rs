//! Gradients against central finite differences in f64, for every layer type.

mod common;

use candle_core::Tensor;
use common::{t, to_vec, zoo, zoo_input};
use netrepair_nn::Network;

/// Loss = sum(output * weights), a generic linear functional of the output.
fn loss_weights(net: &Network, n: usize) -> Tensor {
    let k = n * net.output_len();
    t(
        (0..k).map(|i| ((i * 7 % 11) as f64 - 5.0) / 5.0).collect(),
        &[n, net.output_len()],
    )
}

fn loss(net: &Network, x: &Tensor, w: &Tensor) -> f64 {
    (net.forward(x).unwrap() * w)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn close(analytic: f64, numeric: f64) -> bool {
    (analytic - numeric).abs() <= 1e-6 + 1e-4 * numeric.abs().max(analytic.abs())
}

#[test]
fn parameter_gradients_match_finite_differences() {
    let net = zoo(11);
    let x = zoo_input(12, 3);
    let w = loss_weights(&net, 3);
    let g = net.gradients(&x, |y| (y * &w)?.sum_all()).unwrap();
    let h = 1e-6;
    let mut checked = 0;
    for (id, grad) in &g.params {
        let grad = to_vec(
            grad.as_ref()
                .unwrap_or_else(|| panic!("no gradient for {id:?}")),
        );
        let p = net.param(*id).unwrap();
        let base = p.to_vec().unwrap();
        // Check a spread of entries of every trainable parameter.
        let step = (base.len() / 5).max(1);
        for k in (0..base.len()).step_by(step) {
            let f = |delta: f64| {
                let mut v = base.clone();
                v[k] += delta;
                let mut m = net.clone();
                m.set_param(*id, t(v, p.dims())).unwrap();
                loss(&m, &x, &w)
            };
            let numeric = (f(h) - f(-h)) / (2.0 * h);
            assert!(
                close(grad[k], numeric),
                "{} [{k}]: autograd {} vs finite difference {numeric}",
                p.name(),
                grad[k]
            );
            checked += 1;
        }
    }
    // conv1 w/b, bn scale/shift, conv2 w/b, fc1..fc3 w/b: 12 trainable tensors.
    assert_eq!(g.params.len(), 12);
    assert!(checked > 40);
}

#[test]
fn input_gradients_match_finite_differences() {
    let net = zoo(21);
    let x = zoo_input(22, 2);
    let w = loss_weights(&net, 2);
    let g = net.gradients(&x, |y| (y * &w)?.sum_all()).unwrap();
    let gx = to_vec(g.input.as_ref().unwrap());
    let base = to_vec(&x);
    let h = 1e-6;
    for k in (0..base.len()).step_by(7) {
        let f = |delta: f64| {
            let mut v = base.clone();
            v[k] += delta;
            loss(&net, &t(v, x.dims()), &w)
        };
        let numeric = (f(h) - f(-h)) / (2.0 * h);
        assert!(
            close(gx[k], numeric),
            "input [{k}]: autograd {} vs finite difference {numeric}",
            gx[k]
        );
    }
}

#[test]
fn running_statistics_are_not_trained() {
    let net = zoo(31);
    let x = zoo_input(32, 1);
    let g = net.gradients(&x, |y| y.sum_all()).unwrap();
    let mean = net.find_param("bn.mean").unwrap();
    assert!(!net.is_trainable(mean));
    assert!(g.param(mean).is_none());
}

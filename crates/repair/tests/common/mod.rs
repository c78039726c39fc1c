//! Helpers shared by the repair tests.

use candle_core::{Device, Tensor};
use netrepair_nn::Network;

/// The f64 output of `net` at one input.
pub fn out(net: &Network, x: &[f64]) -> Vec<f64> {
    let t = Tensor::from_vec(x.to_vec(), (1, x.len()), &Device::Cpu).unwrap();
    net.forward_f64(&t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

//! Networks shared by the integration tests.
#![allow(dead_code)]

pub mod graph;

use candle_core::{DType, Device, Tensor};
use netrepair_nn::{
    BatchNorm, ConstOp, Conv2d, Elementwise, Layer, Linear, Network, NetworkBuilder, Param, Pool2d,
};
use rand::{Rng, SeedableRng};

pub fn t(values: Vec<f64>, dims: &[usize]) -> Tensor {
    Tensor::from_vec(values, dims, &Device::Cpu).unwrap()
}

pub fn random(rng: &mut rand::rngs::StdRng, dims: &[usize], scale: f64) -> Tensor {
    let n: usize = dims.iter().product();
    t(
        (0..n).map(|_| rng.random_range(-scale..scale)).collect(),
        dims,
    )
}

pub fn to_vec(x: &Tensor) -> Vec<f64> {
    x.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn param(name: &str, v: Tensor) -> Param {
    Param::new(name, v).unwrap()
}

/// A network with every layer type of the IR: constant Sub/Div, strided conv with asymmetric
/// padding, batch norm, ReLU, depthwise dilated conv, residual add, padded max pool, average
/// pool without counting padding, reshape, flatten, linear, tanh, sigmoid.
pub fn zoo(seed: u64) -> Network {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut b = NetworkBuilder::new(vec![2, 7, 7]);
    b.push(
        "sub",
        Layer::Elementwise(
            Elementwise::new(ConstOp::Sub, t(vec![0.1, -0.2], &[1, 2, 1, 1])).unwrap(),
        ),
    )
    .unwrap();
    b.push(
        "div",
        Layer::Elementwise(
            Elementwise::new(ConstOp::Div, t(vec![0.5, 2.0], &[1, 2, 1, 1])).unwrap(),
        ),
    )
    .unwrap();
    let c1 = Conv2d::new(
        param("conv1.weight", random(&mut rng, &[3, 2, 3, 3], 0.5)),
        param("conv1.bias", random(&mut rng, &[3], 0.2)),
        2,
        1,
        [1, 0, 1, 2],
        1,
    )
    .unwrap();
    b.push("conv1", Layer::Conv2d(c1)).unwrap();
    let var = t(vec![0.5, 1.5, 2.0], &[3]);
    let bn = BatchNorm::new(
        param("bn.scale", random(&mut rng, &[3], 1.0)),
        param("bn.shift", random(&mut rng, &[3], 0.3)),
        param("bn.mean", random(&mut rng, &[3], 0.3)),
        param("bn.var", var),
        1e-5,
    )
    .unwrap();
    b.push("bn", Layer::BatchNorm(bn)).unwrap();
    let r1 = b.push("relu1", Layer::Relu).unwrap();
    let c2 = Conv2d::new(
        param("conv2.weight", random(&mut rng, &[3, 1, 2, 2], 0.7)),
        param("conv2.bias", random(&mut rng, &[3], 0.2)),
        1,
        2,
        [1, 1, 1, 1],
        3,
    )
    .unwrap();
    let v2 = b.push("conv2", Layer::Conv2d(c2)).unwrap();
    b.push_with_inputs("add", Layer::Add, vec![r1, v2]).unwrap();
    b.push(
        "maxpool",
        Layer::MaxPool2d(Pool2d {
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1, 1, 1],
            count_include_pad: false,
        }),
    )
    .unwrap();
    b.push(
        "avgpool",
        Layer::AvgPool2d(Pool2d {
            kernel: [2, 2],
            stride: [1, 1],
            padding: [0, 0, 1, 1],
            count_include_pad: false,
        }),
    )
    .unwrap();
    b.push("reshape", Layer::Reshape(vec![3, 4])).unwrap();
    b.push("flatten", Layer::Flatten).unwrap();
    b.push(
        "fc1",
        Layer::Linear(
            Linear::new(
                "fc1",
                random(&mut rng, &[6, 12], 0.6),
                random(&mut rng, &[6], 0.2),
            )
            .unwrap(),
        ),
    )
    .unwrap();
    b.push("tanh", Layer::Tanh).unwrap();
    b.push(
        "fc2",
        Layer::Linear(
            Linear::new(
                "fc2",
                random(&mut rng, &[5, 6], 0.6),
                random(&mut rng, &[5], 0.2),
            )
            .unwrap(),
        ),
    )
    .unwrap();
    b.push("sigmoid", Layer::Sigmoid).unwrap();
    b.push(
        "fc3",
        Layer::Linear(
            Linear::new(
                "fc3",
                random(&mut rng, &[3, 5], 0.6),
                random(&mut rng, &[3], 0.2),
            )
            .unwrap(),
        ),
    )
    .unwrap();
    b.build().unwrap()
}

/// A random input batch for [`zoo`].
pub fn zoo_input(seed: u64, n: usize) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    random(&mut rng, &[n, 2, 7, 7], 1.0)
}

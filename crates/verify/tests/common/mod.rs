//! Random networks and boxes shared by the tests.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use netrepair_nn::{
    BatchNorm, ConstOp, Conv2d, Elementwise, Layer, Linear, Network, NetworkBuilder, Param, Pool2d,
};
use netrepair_spec::BoxRegion;
use rand::{Rng, SeedableRng};

pub type Rng64 = rand::rngs::StdRng;

pub fn t(v: Vec<f64>, dims: &[usize]) -> Tensor {
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

pub fn rnd(rng: &mut Rng64, dims: &[usize], s: f64) -> Tensor {
    let n: usize = dims.iter().product();
    t((0..n).map(|_| rng.random_range(-s..s)).collect(), dims)
}

pub fn p(name: &str, v: Tensor) -> Param {
    Param::new(name, v).unwrap()
}

/// A random CNN with every layer type; the structure varies with the seed.
pub fn random_cnn(seed: u64) -> Network {
    let mut rng = Rng64::seed_from_u64(seed);
    let mut b = NetworkBuilder::new(vec![2, 6, 6]);
    b.push(
        "sub",
        Layer::Elementwise(
            Elementwise::new(ConstOp::Sub, rnd(&mut rng, &[1, 2, 1, 1], 0.5)).unwrap(),
        ),
    )
    .unwrap();
    b.push(
        "mul",
        Layer::Elementwise(
            Elementwise::new(ConstOp::Mul, rnd(&mut rng, &[1, 1, 1, 6], 2.0)).unwrap(),
        ),
    )
    .unwrap();
    let stride = 1 + (seed % 2) as usize;
    let pad = [(seed % 3) as usize, 1, 0, (seed % 2) as usize];
    let conv = Conv2d::new(
        p("c1.w", rnd(&mut rng, &[4, 2, 3, 3], 0.6)),
        p("c1.b", rnd(&mut rng, &[4], 0.3)),
        stride,
        1,
        pad,
        1,
    )
    .unwrap();
    b.push("conv1", Layer::Conv2d(conv)).unwrap();
    let var = t((0..4).map(|_| rng.random_range(0.2..2.0)).collect(), &[4]);
    let bn = BatchNorm::new(
        p("bn.s", rnd(&mut rng, &[4], 1.5)),
        p("bn.b", rnd(&mut rng, &[4], 0.5)),
        p("bn.m", rnd(&mut rng, &[4], 0.5)),
        p("bn.v", var),
        1e-5,
    )
    .unwrap();
    b.push("bn", Layer::BatchNorm(bn)).unwrap();
    let r = b.push("relu", Layer::Relu).unwrap();
    let dw = Conv2d::new(
        p("c2.w", rnd(&mut rng, &[4, 2, 2, 2], 0.6)),
        p("c2.b", rnd(&mut rng, &[4], 0.3)),
        1,
        2,
        [1, 1, 1, 1],
        2,
    )
    .unwrap();
    let c2 = b.push("conv2", Layer::Conv2d(dw)).unwrap();
    b.push_with_inputs("add", Layer::Add, vec![r, c2]).unwrap();
    let pool = Pool2d {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0, 1, 1],
        count_include_pad: seed.is_multiple_of(2),
    };
    if seed.is_multiple_of(3) {
        b.push("avg", Layer::AvgPool2d(pool)).unwrap();
    } else {
        b.push("max", Layer::MaxPool2d(pool)).unwrap();
    }
    b.push("flat", Layer::Flatten).unwrap();
    let n = b.shape(b.last())[0];
    b.push(
        "fc1",
        Layer::Linear(
            Linear::new("fc1", rnd(&mut rng, &[5, n], 0.5), rnd(&mut rng, &[5], 0.2)).unwrap(),
        ),
    )
    .unwrap();
    b.push("tanh", Layer::Tanh).unwrap();
    b.push(
        "fc2",
        Layer::Linear(
            Linear::new("fc2", rnd(&mut rng, &[4, 5], 0.8), rnd(&mut rng, &[4], 0.2)).unwrap(),
        ),
    )
    .unwrap();
    b.push("sig", Layer::Sigmoid).unwrap();
    b.push(
        "fc3",
        Layer::Linear(
            Linear::new("fc3", rnd(&mut rng, &[3, 4], 1.0), rnd(&mut rng, &[3], 0.2)).unwrap(),
        ),
    )
    .unwrap();
    b.push(
        "div",
        Layer::Elementwise(
            Elementwise::new(ConstOp::Div, t(vec![0.5, -2.0, 3.0], &[1, 3])).unwrap(),
        ),
    )
    .unwrap();
    b.build().unwrap()
}

pub fn random_box(rng: &mut Rng64, n: usize, width: f64) -> BoxRegion {
    let centre: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let radius: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..width)).collect();
    BoxRegion::new(
        centre.iter().zip(&radius).map(|(c, r)| c - r).collect(),
        centre.iter().zip(&radius).map(|(c, r)| c + r).collect(),
    )
    .unwrap()
}

/// Samples inside the box (including corners) and checks every intermediate value.
pub fn check_contains(
    net: &Network,
    bx: &BoxRegion,
    bounds: &[netrepair_verify::Bounds],
    rng: &mut Rng64,
    samples: usize,
) {
    let n = bx.dim();
    let mut xs = Vec::with_capacity(samples * n);
    for s in 0..samples {
        for i in 0..n {
            let v = match s {
                0 => bx.lower[i],
                1 => bx.upper[i],
                _ => rng.random_range(bx.lower[i]..=bx.upper[i]),
            };
            xs.push(v);
        }
    }
    let mut dims = vec![samples];
    dims.extend_from_slice(net.input_shape());
    let trace = net.forward_trace(&t(xs, &dims)).unwrap();
    for (v, b) in trace.values().iter().zip(bounds) {
        let vals = v.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let per = b.lower.len();
        for (k, &y) in vals.iter().enumerate() {
            let (lo, hi) = (b.lower[k % per], b.upper[k % per]);
            assert!(lo <= y && y <= hi, "value {y} outside [{lo}, {hi}]");
        }
    }
}

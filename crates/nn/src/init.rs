//! Seeded constructors of fresh networks (MLPs and small CNNs) for training.
//!
//! Weights are He-uniform (`U(-sqrt(6 / fan_in), sqrt(6 / fan_in))`), biases
//! `U(-1 / sqrt(fan_in), 1 / sqrt(fan_in))` as in PyTorch, drawn from a seeded ChaCha RNG so a
//! seed fixes the network on every machine.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

use crate::error::{NnError, Result};
use crate::layer::{Conv2d, Layer, Linear, Param, Pool2d};
use crate::network::{Network, NetworkBuilder};

/// Hidden-layer nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// ReLU.
    Relu,
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
}

impl Activation {
    fn layer(self) -> Layer {
        match self {
            Activation::Relu => Layer::Relu,
            Activation::Sigmoid => Layer::Sigmoid,
            Activation::Tanh => Layer::Tanh,
        }
    }
}

fn uniform(rng: &mut rand::rngs::StdRng, n: usize, bound: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

fn linear(rng: &mut rand::rngs::StdRng, name: &str, inp: usize, out: usize) -> Result<Layer> {
    let w = Tensor::from_vec(
        uniform(rng, out * inp, (6.0 / inp as f64).sqrt()),
        (out, inp),
        &Device::Cpu,
    )?;
    let b = Tensor::from_vec(
        uniform(rng, out, 1.0 / (inp as f64).sqrt()),
        out,
        &Device::Cpu,
    )?;
    Ok(Layer::Linear(Linear::new(name, w, b)?))
}

/// A fully connected network `sizes[0] -> sizes[1] -> ... -> sizes[last]` with `activation`
/// between the affine layers (none after the last). Layers are named `fc1, act1, fc2, ...`.
///
/// ```
/// let net = netrepair_nn::mlp(&[2, 16, 2], netrepair_nn::Activation::Relu, 0).unwrap();
/// assert_eq!(net.nodes().len(), 3);
/// assert_eq!(net.param_count(), 2 * 16 + 16 + 16 * 2 + 2);
/// ```
pub fn mlp(sizes: &[usize], activation: Activation, seed: u64) -> Result<Network> {
    if sizes.len() < 2 || sizes.contains(&0) {
        return Err(NnError::InvalidTraining(format!(
            "an MLP needs at least two positive layer sizes, got {sizes:?}"
        )));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut b = NetworkBuilder::new(vec![sizes[0]]);
    for (i, w) in sizes.windows(2).enumerate() {
        let name = format!("fc{}", i + 1);
        b.push(&name, linear(&mut rng, &name, w[0], w[1])?)?;
        if i + 2 < sizes.len() {
            b.push(format!("act{}", i + 1), activation.layer())?;
        }
    }
    b.build()
}

/// One convolution block of [`CnnSpec`]: conv, ReLU, optional max pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvBlock {
    /// Output channels.
    pub channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Square max-pool window (stride = window) after the ReLU, if any.
    pub pool: Option<usize>,
}

/// A small convolutional classifier: conv blocks, flatten, hidden ReLU layers, output layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnnSpec {
    /// Input `[C, H, W]`.
    pub input: [usize; 3],
    /// Convolution blocks.
    pub blocks: Vec<ConvBlock>,
    /// Hidden fully connected sizes.
    pub hidden: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

/// Builds a seeded CNN from `spec`. Layers are named `conv1, relu1, pool1, ..., flatten,
/// fc1, ...`.
pub fn cnn(spec: &CnnSpec, seed: u64) -> Result<Network> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut b = NetworkBuilder::new(spec.input.to_vec());
    for (i, blk) in spec.blocks.iter().enumerate() {
        let cin = b.shape(b.last())[0];
        let fan_in = cin * blk.kernel * blk.kernel;
        let name = format!("conv{}", i + 1);
        let w = Tensor::from_vec(
            uniform(
                &mut rng,
                blk.channels * fan_in,
                (6.0 / fan_in as f64).sqrt(),
            ),
            (blk.channels, cin, blk.kernel, blk.kernel),
            &Device::Cpu,
        )?;
        let bias = Tensor::from_vec(
            uniform(&mut rng, blk.channels, 1.0 / (fan_in as f64).sqrt()),
            blk.channels,
            &Device::Cpu,
        )?;
        let p = blk.padding;
        let conv = Conv2d::new(
            Param::new(format!("{name}.weight"), w)?,
            Param::new(format!("{name}.bias"), bias)?,
            blk.stride,
            1,
            [p, p, p, p],
            1,
        )?;
        b.push(&name, Layer::Conv2d(conv))?;
        b.push(format!("relu{}", i + 1), Layer::Relu)?;
        if let Some(k) = blk.pool {
            let pool = Pool2d {
                kernel: [k, k],
                stride: [k, k],
                padding: [0; 4],
                count_include_pad: false,
            };
            b.push(format!("pool{}", i + 1), Layer::MaxPool2d(pool))?;
        }
    }
    b.push("flatten", Layer::Flatten)?;
    let mut width = b.shape(b.last())[0];
    let sizes: Vec<usize> = spec.hidden.iter().copied().chain([spec.classes]).collect();
    for (i, &out) in sizes.iter().enumerate() {
        let name = format!("fc{}", i + 1);
        b.push(&name, linear(&mut rng, &name, width, out)?)?;
        if i + 1 < sizes.len() {
            b.push(format!("fc_relu{}", i + 1), Layer::Relu)?;
        }
        width = out;
    }
    b.build()
}

/// The worked example of the APRNN paper (DESIGN.md section 4): `Linear(1 -> 3)` with
/// `W = [-1, 1, 0.5]^T`, `b = [0, -2, 0]`; ReLU; `Linear(3 -> 1)` with `W = [0.5, -0.5, 1]`,
/// `b = -0.5`. Nodes `fc1, relu, fc2`. The points x = -1.5 and x = -0.5 give 0.25 and -0.25,
/// violating `-0.1 <= N(x) <= 0.1`: the standard fixture for repair and verification tests.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let net = netrepair_nn::aprnn_example();
/// let x = Tensor::new(&[[-1.5f64], [-0.5]], &Device::Cpu).unwrap();
/// let y = net.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
/// assert_eq!(y, vec![0.25, -0.25]);
/// ```
pub fn aprnn_example() -> Network {
    let t =
        |v: Vec<f64>, dims: &[usize]| Tensor::from_vec(v, dims, &Device::Cpu).expect("fixed shape");
    let layer = |name: &str, w: Tensor, b: Tensor| {
        Layer::Linear(Linear::new(name, w, b).expect("fixed, finite values"))
    };
    let mut b = NetworkBuilder::new(vec![1]);
    b.push(
        "fc1",
        layer(
            "fc1",
            t(vec![-1.0, 1.0, 0.5], &[3, 1]),
            t(vec![0.0, -2.0, 0.0], &[3]),
        ),
    )
    .expect("shapes agree");
    b.push("relu", Layer::Relu).expect("shapes agree");
    b.push(
        "fc2",
        layer("fc2", t(vec![0.5, -0.5, 1.0], &[1, 3]), t(vec![-0.5], &[1])),
    )
    .expect("shapes agree");
    b.build().expect("non-empty network")
}

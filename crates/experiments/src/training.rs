//! The model presets the project trains itself, and the code that trains them.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use netrepair_data::{load, make_moons, split_indices, Dataset, DatasetName};
use netrepair_nn::{
    cnn, fit, mlp, Activation, CnnSpec, ConvBlock, EpochStats, Network, OptimizerKind, TrainConfig,
};

/// Models `netrepair train` knows how to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// 2-16-16-2 ReLU MLP on `make_moons`, deliberately under-trained (seed 000's setting).
    MoonsMlp,
    /// 784-256-256-10 ReLU MLP on MNIST (the shape of mnist-net_256x2).
    MnistMlp,
    /// 20-200-200-2 ReLU MLP on German credit (seed 002's shape).
    GermanMlp,
    /// 14-64-64-2 ReLU MLP on Adult.
    AdultMlp,
    /// AlexNet-like CNN for CIFAR-10 scaled down to train in minutes on 2 cores:
    /// three conv(3x3)+ReLU+maxpool(2) blocks (16, 32, 64 channels), FC 128, FC 10.
    CifarCnn,
}

impl std::str::FromStr for Preset {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "moons-mlp" => Self::MoonsMlp,
            "mnist-mlp" => Self::MnistMlp,
            "german-mlp" => Self::GermanMlp,
            "adult-mlp" => Self::AdultMlp,
            "cifar-cnn" => Self::CifarCnn,
            other => bail!(
                "unknown model '{other}' (moons-mlp, mnist-mlp, german-mlp, adult-mlp, cifar-cnn)"
            ),
        })
    }
}

/// Settings of one training run; `None` fields take the preset's default.
#[derive(Debug, Clone, Default)]
pub struct TrainRequest {
    /// Passes over the training data.
    pub epochs: Option<usize>,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Optimiser.
    pub optimizer: Option<OptimizerKind>,
    /// Mini-batch size.
    pub batch_size: Option<usize>,
    /// Hidden layer sizes (MLP presets).
    pub hidden: Option<Vec<usize>>,
    /// Use only the first N training samples.
    pub limit: Option<usize>,
    /// Seed of initialisation, shuffling and generated data.
    pub seed: u64,
    /// make_moons: number of points (train + test).
    pub moons_samples: Option<usize>,
    /// make_moons: noise.
    pub moons_noise: Option<f64>,
}

/// Training and test data of a preset.
pub struct PresetData {
    /// Training samples.
    pub train: Dataset,
    /// Held-out samples.
    pub test: Dataset,
}

impl Preset {
    /// The data the preset trains and is evaluated on. `make_moons` is generated (2/3 train,
    /// 1/3 test); the others are read from `data_dir`.
    pub fn data(self, data_dir: Option<&Path>, req: &TrainRequest) -> Result<PresetData> {
        let dir =
            || netrepair_data::resolve_data_dir(data_dir).context("locating the data directory");
        let (mut train, test) = match self {
            Preset::MoonsMlp => {
                let n = req.moons_samples.unwrap_or(300);
                let all = make_moons(n, req.moons_noise.unwrap_or(0.25), req.seed)?;
                let parts = split_indices(n, &[n * 2 / 3, n - n * 2 / 3], req.seed)?;
                (all.subset(&parts[0])?, all.subset(&parts[1])?)
            }
            Preset::MnistMlp => (
                load(DatasetName::Mnist, &dir()?, "train")?,
                load(DatasetName::Mnist, &dir()?, "test")?,
            ),
            Preset::GermanMlp => (
                load(DatasetName::German, &dir()?, "train")?,
                load(DatasetName::German, &dir()?, "test")?,
            ),
            Preset::AdultMlp => (
                load(DatasetName::Adult, &dir()?, "train")?,
                load(DatasetName::Adult, &dir()?, "test")?,
            ),
            Preset::CifarCnn => (
                load(DatasetName::Cifar10, &dir()?, "train")?,
                load(DatasetName::Cifar10, &dir()?, "test")?,
            ),
        };
        if let Some(limit) = req.limit {
            let idx: Vec<usize> = (0..limit.min(train.len())).collect();
            train = train.subset(&idx)?;
        }
        Ok(PresetData { train, test })
    }

    /// A fresh, seeded network of the preset's architecture.
    pub fn network(self, req: &TrainRequest) -> Result<Network> {
        let sizes = |input: usize, default: &[usize], out: usize| {
            let mut s = vec![input];
            s.extend(req.hidden.clone().unwrap_or_else(|| default.to_vec()));
            s.push(out);
            s
        };
        Ok(match self {
            Preset::MoonsMlp => mlp(&sizes(2, &[16, 16], 2), Activation::Relu, req.seed)?,
            Preset::MnistMlp => mlp(&sizes(784, &[256, 256], 10), Activation::Relu, req.seed)?,
            Preset::GermanMlp => mlp(&sizes(20, &[200, 200], 2), Activation::Relu, req.seed)?,
            Preset::AdultMlp => mlp(&sizes(14, &[64, 64], 2), Activation::Relu, req.seed)?,
            Preset::CifarCnn => {
                let block = |channels| ConvBlock {
                    channels,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                    pool: Some(2),
                };
                let spec = CnnSpec {
                    input: [3, 32, 32],
                    blocks: vec![block(16), block(32), block(64)],
                    hidden: req.hidden.clone().unwrap_or_else(|| vec![128]),
                    classes: 10,
                };
                cnn(&spec, req.seed)?
            }
        })
    }

    /// The preset's training settings with the request's overrides.
    pub fn config(self, req: &TrainRequest) -> TrainConfig {
        let (epochs, lr, batch) = match self {
            // Few epochs on purpose: the demo needs errors to repair.
            Preset::MoonsMlp => (4, 0.01, 16),
            Preset::MnistMlp => (3, 1e-3, 64),
            Preset::GermanMlp => (10, 1e-3, 32),
            Preset::AdultMlp => (3, 1e-3, 128),
            Preset::CifarCnn => (4, 1e-3, 64),
        };
        TrainConfig {
            epochs: req.epochs.unwrap_or(epochs),
            batch_size: req.batch_size.unwrap_or(batch),
            lr: req.lr.unwrap_or(lr),
            optimizer: req.optimizer.unwrap_or_else(OptimizerKind::adam),
            weight_decay: 0.0,
            seed: req.seed,
        }
    }
}

/// Input batch and labels of a data set for `net`.
pub fn tensors(net: &Network, data: &Dataset) -> Result<(Tensor, Vec<u32>)> {
    if data.sample_len() != net.input_len() {
        bail!(
            "samples of shape {:?} do not fit the network input {:?}",
            data.sample_shape,
            net.input_shape()
        );
    }
    let mut dims = vec![data.len()];
    dims.extend_from_slice(net.input_shape());
    Ok((
        Tensor::from_slice(&data.inputs, dims, &Device::Cpu)?,
        data.labels.clone(),
    ))
}

/// Share of samples the network classifies correctly.
pub fn accuracy(net: &Network, data: &Dataset) -> Result<f64> {
    let (x, y) = tensors(net, data)?;
    let mut correct = 0usize;
    let n = y.len();
    for start in (0..n).step_by(2000) {
        let len = 2000.min(n - start);
        let pred = net.predict(&x.narrow(0, start, len)?)?;
        correct += pred
            .iter()
            .zip(&y[start..start + len])
            .filter(|(p, l)| p == l)
            .count();
    }
    Ok(correct as f64 / n.max(1) as f64)
}

/// A trained model and how it did.
pub struct Trained {
    /// The network.
    pub net: Network,
    /// Per-epoch statistics.
    pub history: Vec<EpochStats>,
    /// Accuracy on the training data.
    pub train_accuracy: f64,
    /// Accuracy on the held-out data.
    pub test_accuracy: f64,
    /// Wall time of training.
    pub seconds: f64,
}

/// Trains a preset; `progress(done, total)` after each batch, `on_epoch` after each epoch.
pub fn train_preset(
    preset: Preset,
    data: &PresetData,
    req: &TrainRequest,
    progress: impl FnMut(usize, usize),
    on_epoch: impl FnMut(&EpochStats),
) -> Result<Trained> {
    let mut net = preset.network(req)?;
    let cfg = preset.config(req);
    let (x, y) = tensors(&net, &data.train)?;
    let start = std::time::Instant::now();
    let history = fit(&mut net, &x, &y, &cfg, progress, on_epoch)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(Trained {
        train_accuracy: accuracy(&net, &data.train)?,
        test_accuracy: accuracy(&net, &data.test)?,
        net,
        history,
        seconds,
    })
}

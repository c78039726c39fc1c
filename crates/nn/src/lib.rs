//! The network IR of netrepair.
//!
//! A [`Network`] is an ordered graph of typed [`Layer`]s with f64 parameters. It runs forward in
//! f32 or f64 on batches, records every intermediate value and the ReLU activation patterns,
//! computes gradients with respect to parameters and inputs, trains, and reads and writes ONNX
//! (re-emitting an imported graph with only its initializers changed).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use netrepair_nn::{mlp, Activation};
//!
//! let net = mlp(&[2, 8, 2], Activation::Relu, 7).unwrap();
//! let x = Tensor::new(&[[0.5f64, -1.0], [1.0, 2.0]], &Device::Cpu).unwrap();
//! let y = net.forward(&x).unwrap();
//! assert_eq!(y.dims(), &[2, 2]);
//! // Round trip through ONNX bytes gives the same outputs.
//! let bytes = prost::Message::encode_to_vec(&netrepair_nn::onnx::to_model(&net).unwrap());
//! let back = netrepair_nn::onnx::load_onnx_bytes(&bytes, "memory").unwrap();
//! let y2 = back.forward(&x).unwrap();
//! let diff = (y - y2).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
//! assert!(diff < 1e-5); // float32 storage in the file
//! ```
#![deny(missing_docs)]

mod error;
mod forward;
mod grad;
mod im2col;
mod init;
mod layer;
mod network;
pub mod onnx;
mod opaque;
mod pool;
mod rearrange;
mod taps;
mod train;

pub use error::{NnError, Result};
pub use forward::Trace;
pub use grad::Gradients;
pub use init::{aprnn_example, cnn, mlp, Activation, CnnSpec, ConvBlock};
pub use layer::{BatchNorm, ConstOp, Conv2d, Elementwise, Layer, Linear, Param, Pool2d};
pub use network::{Network, NetworkBuilder, Node, ParamId, ValueId, MAX_VALUE_LEN};
pub use onnx::{load_onnx, save_onnx};
pub use opaque::{BinaryOp, Opaque, UnaryOp};
pub use rearrange::{Rearrange, SliceAxis};
pub use taps::{affine_op, elementwise_op, pool_windows, AffineOp, AffineTaps};
pub use train::{cross_entropy, fit, EpochStats, Optimizer, OptimizerKind, TrainConfig, Trainer};

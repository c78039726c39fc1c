//! Sound verification: bounds on every value of a network over an input box, computed in f64
//! by code independent of the forward pass that training and repair use, with outward
//! rounding so that floating-point error can only widen them (see [`rounding`]).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use netrepair_nn::{mlp, Activation};
//! use netrepair_spec::BoxRegion;
//!
//! let net = mlp(&[2, 8, 3], Activation::Relu, 1).unwrap();
//! let input = BoxRegion::new(vec![-1.0, 0.0], vec![1.0, 0.5]).unwrap();
//! let bounds = netrepair_verify::interval_bounds(&net, &input).unwrap();
//! let out = bounds.last().unwrap();
//! let y = net.forward(&Tensor::new(&[[0.3f64, 0.2]], &Device::Cpu).unwrap()).unwrap();
//! for (j, v) in y.flatten_all().unwrap().to_vec1::<f64>().unwrap().into_iter().enumerate() {
//!     assert!(out.lower[j] <= v && v <= out.upper[j]);
//! }
//! ```
#![deny(missing_docs)]

pub mod affine;
mod alpha;
pub mod attack;
mod case;
mod check;
mod crown;
mod error;
mod interval;
pub mod milp;
mod relu_bab;
pub mod rounding;
pub mod twin;

pub use alpha::{optimised_linear_bounds, optimised_row_bounds, AlphaOptions};
pub use attack::{pgd, pgd_maximum, Counterexample, PgdOptions};
pub use case::{prove_case, prove_case_optimised};
pub use check::{check_property, CheckOptions, CheckReport, Verdict};
pub use crown::{linear_bounds, row_bounds};
pub use error::{Result, VerifyError};
pub use interval::{interval_bounds, unreachable_polytope, Bounds};
pub use twin::{
    area_variation, jacobian_norm, pgd_variation, property_twin_bounds, property_twin_pieces,
    twin_bounds, uniform_points, variation_bound, Chain, LinearDiff, SplitOptions, TwinBounds,
    VariationAttack, VariationBound, VariationReport,
};

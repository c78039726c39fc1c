//! Data sets for netrepair: the bottom layer of the workspace (it depends on no other crate of
//! the project).
//!
//! Loaders for MNIST (gzipped IDX), CIFAR-10 (image folders and the ERAN CSV), UCI German
//! credit and Adult, a seeded `make_moons` generator, and seeded splits. Everything becomes a
//! [`Dataset`]: row-major f32 samples with labels.
//!
//! ```
//! use netrepair_data::{make_moons, split_indices};
//! let data = make_moons(200, 0.1, 42).unwrap();
//! let parts = split_indices(data.len(), &[150, 50], 0).unwrap();
//! let train = data.subset(&parts[0]).unwrap();
//! assert_eq!(train.len(), 150);
//! assert_eq!(train.sample_shape, vec![2]);
//! ```
#![deny(missing_docs)]

mod dataset;
mod error;
mod images;
mod moons;
pub mod npy;
mod registry;
mod split;
mod tabular;

pub use dataset::Dataset;
pub use error::{DataError, Result};
pub use images::{
    load_cifar10_folder, load_eran_csv, load_mnist, parse_idx_images, parse_idx_labels,
    CIFAR10_CLASSES,
};
pub use moons::make_moons;
pub use registry::{load, resolve_data_dir, DatasetName, SPLIT_SEED};
pub use split::{split_fractions, split_indices};
pub use tabular::{load_adult, load_german, ADULT_FEATURES, GERMAN_FEATURES};

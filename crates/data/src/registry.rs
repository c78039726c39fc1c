//! Named data sets and splits, as the CLI and the experiments refer to them, and the lookup of
//! the data directory.

use std::path::{Path, PathBuf};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::images::{load_cifar10_folder, load_eran_csv, load_mnist};
use crate::split::{split_fractions, split_indices};
use crate::tabular::{load_adult, load_german};

/// The data sets the tools know by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetName {
    /// MNIST, `[1, 28, 28]` in [0, 1].
    Mnist,
    /// CIFAR-10, `[3, 32, 32]` in [0, 1].
    Cifar10,
    /// German credit, 20 features scaled to [0, 1].
    German,
    /// Adult, 14 features scaled to [0, 1].
    Adult,
}

impl std::str::FromStr for DatasetName {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "mnist" => Self::Mnist,
            "cifar10" | "cifar-10" => Self::Cifar10,
            "german" | "german-credit" => Self::German,
            "adult" => Self::Adult,
            other => {
                return Err(DataError::Invalid(format!(
                    "unknown data set '{other}' (mnist, cifar10, german, adult)"
                )))
            }
        })
    }
}

/// Seed of the fixed splits below; changing it changes every reported figure.
pub const SPLIT_SEED: u64 = 0;

impl DatasetName {
    /// The split names [`load`] accepts for this data set.
    pub fn splits(self) -> &'static [&'static str] {
        match self {
            Self::Mnist => &[
                "train",
                "test",
                "eran-test",
                "fog-test",
                "001-train",
                "001-val",
                "001-pool",
                "001-test",
            ],
            Self::Cifar10 => &["train", "test", "eran-test"],
            Self::German => &["all", "train", "test", "reglo-train", "reglo-test"],
            Self::Adult => &["train", "test"],
        }
    }
}

/// The data directory: `given` if set, else `../shared/data` or `shared/data` when present. A
/// directory that holds `data/` (the shared root) is accepted too.
pub fn resolve_data_dir(given: Option<&Path>) -> Result<PathBuf> {
    let pick = |p: &Path| {
        if p.join("data").is_dir() && !p.join("mnist").exists() {
            p.join("data")
        } else {
            p.to_path_buf()
        }
    };
    match given {
        Some(p) if p.is_dir() => Ok(pick(p)),
        Some(p) => Err(DataError::Missing {
            path: p.display().to_string(),
            hint: "the data directory does not exist; it should hold mnist/, cifar10/, german/, adult/".into(),
        }),
        None => ["../shared/data", "shared/data"]
            .iter()
            .map(Path::new)
            .find(|p| p.is_dir())
            .map(pick)
            .ok_or_else(|| DataError::Missing {
                path: "../shared/data".into(),
                hint: "no data directory found; pass --data-dir DIR (the folder holding mnist/, cifar10/, german/, adult/)".into(),
            }),
    }
}

/// Loads split `split` of data set `name` from `dir` (see [`DatasetName::splits`]):
/// - MNIST `train` / `test` are the official 60k / 10k; `eran-test` the ERAN CSV of the first
///   100 test images; `fog-test` the 10k test images with MNIST-C's fog corruption (folder
///   `mnist-fog/`, same order and labels); `001-*` seed 001's 45k / 5k / 5k / 5k split of the 60k training images
///   (train, validation, repair pool, held-out test), shuffled with [`SPLIT_SEED`].
/// - CIFAR-10 `train` / `test` are the JPEG folders; `eran-test` the lossless ERAN CSV.
/// - German: `all` 1000 rows, `train` / `test` a seeded 80 / 20 split, `reglo-train` /
///   `reglo-test` the first 700 / last 300 rows in file order (the public REGLO code's split);
///   features scaled to [0, 1] with the ranges of all 1000 rows.
/// - Adult: official train / test, features scaled to [0, 1] with the training ranges.
pub fn load(name: DatasetName, dir: &Path, split: &str) -> Result<Dataset> {
    if !name.splits().contains(&split) {
        return Err(DataError::Invalid(format!(
            "unknown split '{split}' for {name:?} (one of {})",
            name.splits().join(", ")
        )));
    }
    let sub = |s: &str| {
        let p = dir.join(s);
        if p.is_dir() {
            Ok(p)
        } else {
            Err(DataError::Missing {
                path: p.display().to_string(),
                hint: format!("the data directory has no {s}/ folder"),
            })
        }
    };
    match (name, split) {
        (DatasetName::Mnist, "eran-test") => {
            load_eran_csv(&sub("mnist")?.join("eran_mnist_test_100.csv"))
        }
        (DatasetName::Mnist, "train" | "test") => load_mnist(&sub("mnist")?, split == "train"),
        (DatasetName::Mnist, "fog-test") => {
            let mut d = load_mnist(&sub("mnist-fog")?, false)?;
            d.name = "mnist-fog-test".into();
            Ok(d)
        }
        (DatasetName::Mnist, s) => {
            let all = load_mnist(&sub("mnist")?, true)?;
            let parts = split_indices(all.len(), &[45_000, 5_000, 5_000, 5_000], SPLIT_SEED)?;
            let k = ["001-train", "001-val", "001-pool", "001-test"]
                .iter()
                .position(|n| *n == s)
                .expect("checked");
            let mut d = all.subset(&parts[k])?;
            d.name = format!("mnist-{s}");
            Ok(d)
        }
        (DatasetName::Cifar10, "eran-test") => {
            load_eran_csv(&sub("cifar10")?.join("eran_cifar10_test_100.csv"))
        }
        (DatasetName::Cifar10, s) => load_cifar10_folder(&sub("cifar10")?.join(s)),
        (DatasetName::German, s) => {
            let mut all = load_german(&sub("german")?.join("german.data"))?;
            let ranges = all.feature_ranges();
            all.scale_min_max(&ranges)?;
            if s == "all" {
                return Ok(all);
            }
            if let Some(part) = s.strip_prefix("reglo-") {
                let n = all.len().min(700);
                let idx: Vec<usize> = if part == "train" {
                    (0..n).collect()
                } else {
                    (n..all.len()).collect()
                };
                let mut d = all.subset(&idx)?;
                d.name = format!("german-{s}");
                return Ok(d);
            }
            let parts = split_fractions(all.len(), &[0.8, 0.2], SPLIT_SEED)?;
            let mut d = all.subset(&parts[usize::from(s == "test")])?;
            d.name = format!("german-{s}");
            Ok(d)
        }
        (DatasetName::Adult, s) => {
            let dir = sub("adult")?;
            let ranges = load_adult(&dir, true)?.feature_ranges();
            let mut d = load_adult(&dir, s == "train")?;
            d.scale_min_max(&ranges)?;
            Ok(d)
        }
    }
}

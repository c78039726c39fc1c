//! Argument helpers shared by the `netrepair` subcommands that live here (`bench`) and in the
//! binary: loading a network with its path in errors, checking an output path before long work,
//! comma-separated lists, the optimiser names.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use netrepair_nn::{Network, OptimizerKind};

/// Loads an ONNX network with the path in errors.
pub fn load_net(path: &Path) -> Result<Network> {
    netrepair_nn::load_onnx(path).with_context(|| format!("cannot load network {}", path.display()))
}

/// Checks, before any long work, that `out` can be written: it is not one of `inputs`, not a
/// directory, and its directory exists and takes a new file.
pub fn check_output(out: &Path, inputs: &[&Path]) -> Result<()> {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if inputs.iter().any(|i| canon(i) == canon(out)) {
        bail!(
            "refusing to overwrite the input file {} (choose another output path)",
            out.display()
        );
    }
    if out.is_dir() {
        bail!(
            "{} is a directory; give a file path to write",
            out.display()
        );
    }
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!(
            "cannot write {}: the directory {} does not exist",
            out.display(),
            dir.display()
        );
    }
    tempfile::NamedTempFile::new_in(dir).with_context(|| {
        format!(
            "cannot write {}: the directory {} does not take new files",
            out.display(),
            dir.display()
        )
    })?;
    Ok(())
}

/// Parses a comma-separated list of numbers.
pub fn parse_list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    s.split(',')
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|e| anyhow::anyhow!("'{v}' in '{s}': {e}"))
        })
        .collect()
}

/// Optimiser choice of the gradient methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerName {
    /// RMSprop (PyTorch's defaults), as in I-REPAIR.
    Rmsprop,
    /// Adam.
    Adam,
    /// SGD with momentum 0.9.
    Sgd,
}

/// The optimiser `name` stands for, with its default settings.
pub fn optimizer(name: OptimizerName) -> OptimizerKind {
    match name {
        OptimizerName::Rmsprop => OptimizerKind::rmsprop(),
        OptimizerName::Adam => OptimizerKind::adam(),
        OptimizerName::Sgd => OptimizerKind::sgd(),
    }
}

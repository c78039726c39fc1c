//! Argument helpers shared by the `netrepair` subcommands that live here (`bench`) and in the
//! binary: loading a network with its path in errors, checking an output path before long work,
//! comma-separated lists, the optimiser names.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::ValueEnum;
use netrepair_data::Dataset;
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

/// Reshapes `n` samples of `len` scalars to the network's input `[n, input_shape...]`.
/// Accepted layouts: exactly `[n, input_shape...]`, the input shape alone (one sample), or
/// flat `[n, len]` / `[len]` when the element count matches.
pub fn batch_for(net: &Network, shape: &[usize], data: Vec<f64>) -> Result<Tensor> {
    let want = net.input_shape();
    let len = net.input_len();
    let n = if shape.len() > want.len()
        && &shape[shape.len() - want.len()..] == want
        && shape.len() == want.len() + 1
    {
        shape[0]
    } else if shape == want || shape == [len] {
        1
    } else if shape.len() == 2 && shape[1] == len {
        shape[0]
    } else {
        bail!(
            "input shape {shape:?} does not match the network input {want:?} (expected [N, {}] or [N, {len}])",
            want.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        );
    };
    let mut dims = vec![n];
    dims.extend_from_slice(want);
    Ok(Tensor::from_vec(data, dims, &Device::Cpu)?)
}

/// A data set's samples as a network input batch (reshaped when the element count matches).
pub fn dataset_batch(net: &Network, data: &Dataset) -> Result<Tensor> {
    if data.sample_len() != net.input_len() {
        bail!(
            "the {} samples have shape {:?} but the network expects {:?}",
            data.name,
            data.sample_shape,
            net.input_shape()
        );
    }
    let mut dims = vec![data.len()];
    dims.extend_from_slice(net.input_shape());
    Tensor::from_slice(&data.inputs, dims, &Device::Cpu).context("building the input batch")
}

/// Predicts classes in chunks (bounded memory on large data sets).
pub fn predict_all(
    net: &Network,
    x: &Tensor,
    chunk: usize,
    mut tick: impl FnMut(usize),
) -> Result<Vec<u32>> {
    let n = x.dims()[0];
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        out.extend(net.predict(&x.narrow(0, start, len)?)?);
        start += len;
        tick(len);
    }
    Ok(out)
}

//! `netrepair forward`: run a network on an NPY batch, in f64.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use crate::util;
use netrepair_data::npy;

/// Run a network on a batch of inputs (NPY in, NPY out), computed in f64.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// The network (ONNX).
    #[arg(long)]
    net: PathBuf,
    /// Inputs: float32 or float64 NPY, `[N, input_shape...]`; a single sample without the batch
    /// dimension and flat `[N, numel]` rows are accepted too.
    #[arg(long)]
    input: PathBuf,
    /// Where to write the outputs (float64 NPY, `[N, output_shape...]`); never one of the inputs.
    #[arg(long)]
    output: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &ForwardArgs) -> Result<()> {
    util::check_output(&a.output, &[&a.net, &a.input])?;
    let net = util::load_net(&a.net)?;
    let arr = npy::read_floats(&a.input)?;
    let x = util::batch_for(&net, &arr.shape, arr.data)
        .with_context(|| format!("input {}", a.input.display()))?;
    let y = net.forward_f64(&x)?;
    let mut shape = vec![x.dims()[0]];
    shape.extend_from_slice(net.output_shape());
    npy::write_f64(&a.output, &shape, &y.flatten_all()?.to_vec1::<f64>()?)?;
    if a.json {
        println!(
            "{}",
            json!({"n": shape[0], "output_shape": shape, "output": a.output})
        );
    } else {
        println!(
            "wrote {} outputs of shape {:?} to {}",
            shape[0],
            net.output_shape(),
            a.output.display()
        );
    }
    Ok(())
}

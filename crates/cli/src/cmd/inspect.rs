//! `netrepair inspect`: layers, shapes and parameter counts of a network.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use crate::util;

/// Show a network's layers, shapes and parameter counts.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The network (ONNX).
    #[arg(value_name = "NET")]
    net_pos: Option<PathBuf>,
    /// The network (ONNX), as a flag.
    #[arg(long)]
    net: Option<PathBuf>,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &InspectArgs) -> Result<()> {
    let path = util::net_path(&a.net_pos, &a.net)?;
    let net = util::load_net(&path)?;
    let layers: Vec<serde_json::Value> = net
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({
                "index": i,
                "name": n.name(),
                "kind": n.layer().kind(),
                "inputs": n.inputs(),
                "input_shapes": n.inputs().iter().map(|&v| net.value_shape(v).to_vec()).collect::<Vec<_>>(),
                "output_shape": n.output_shape(),
                "params": n.layer().param_count(),
                "param_names": n.layer().params().iter().map(|p| p.name().to_string()).collect::<Vec<_>>(),
                "affine": n.layer().is_affine(),
            })
        })
        .collect();
    if a.json {
        let v = json!({
            "path": path,
            "input_name": net.input_name(),
            "input_shape": net.input_shape(),
            "output_name": net.output_name(),
            "output_shape": net.output_shape(),
            "param_count": net.param_count(),
            "layers": layers,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{}", path.display());
    println!(
        "input '{}' {:?} -> output '{}' {:?}, {} parameters\n",
        net.input_name(),
        net.input_shape(),
        net.output_name(),
        net.output_shape(),
        net.param_count()
    );
    println!(
        "{:>4}  {:<28} {:<10} {:<18} {:<18} {:>9}",
        "#", "name", "kind", "input", "output", "params"
    );
    for (i, n) in net.nodes().iter().enumerate() {
        let input = n
            .inputs()
            .iter()
            .map(|&v| format!("{:?}", net.value_shape(v)))
            .collect::<Vec<_>>()
            .join("+");
        let name: String = n.name().chars().take(28).collect();
        println!(
            "{:>4}  {:<28} {:<10} {:<18} {:<18} {:>9}",
            i,
            name,
            n.layer().kind(),
            input,
            format!("{:?}", n.output_shape()),
            n.layer().param_count()
        );
    }
    Ok(())
}

//! ACAS Xu property editing (PREPARED's setting, seed 003): every violated instance of a
//! property edited until the verifier proves it, all-properties editing of one network, APRNN
//! box repair, and fidelity (share of uniform samples of the input domain whose advisory is
//! unchanged).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use netrepair_nn::Network;
use netrepair_repair::{Repair, RepairContext, RepairItem, RepairOutcome, RepairProblem};
use netrepair_spec::{read_vnnlib, Property};
use netrepair_verify::{check_property, CheckOptions, Verdict};
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// The normalised ACAS Xu input domain (the networks' documented input ranges).
pub const DOMAIN_LOWER: [f64; 5] = [-0.328422877, -0.5, -0.5, -0.5, -0.5];
/// Upper ends of the domain.
pub const DOMAIN_UPPER: [f64; 5] = [0.679857769, 0.5, 0.5, 0.5, 0.5];

/// One edit: a network, the properties it must satisfy, how it went.
#[derive(Debug, Clone, Serialize)]
pub struct AcasRow {
    /// Network file name.
    pub network: String,
    /// Property file names.
    pub properties: Vec<String>,
    /// Method and options, in words.
    pub method: String,
    /// Start layer.
    pub layer: String,
    /// "proved", "unconfirmed", "infeasible", "limit".
    pub status: String,
    /// Properties proved after the edit.
    pub proved: usize,
    /// Wall time of the whole edit, re-check included.
    pub time_s: f64,
    /// Of which: LP build and solve, re-check.
    pub lp_s: f64,
    /// Re-check by the verifier.
    pub recheck_s: f64,
    /// LPs solved (split rounds).
    pub lps: usize,
    /// Largest LP: rows and columns.
    pub lp_rows: usize,
    /// Columns of the largest LP.
    pub lp_cols: usize,
    /// Parameter change.
    pub l1: f64,
    /// Largest parameter change.
    pub linf: f64,
    /// Share of uniform domain samples whose advisory (arg-min output) is unchanged.
    pub fidelity: f64,
}

/// Advisories (arg-min of the five scores) at `xs` (`n x 5`).
fn advisories(net: &Network, xs: &Tensor) -> Result<Vec<u32>> {
    Ok(net.forward(xs)?.neg()?.argmax(1)?.to_vec1::<u32>()?)
}

/// `n` uniform samples of the domain (seeded), as a batch for the networks.
pub fn domain_samples(net: &Network, n: usize, seed: u64) -> Result<Tensor> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = Vec::with_capacity(n * 5);
    for _ in 0..n {
        for j in 0..5 {
            v.push(rng.random_range(DOMAIN_LOWER[j]..=DOMAIN_UPPER[j]) as f32);
        }
    }
    let mut dims = vec![n];
    dims.extend_from_slice(net.input_shape());
    Ok(Tensor::from_vec(v, dims, &Device::Cpu)?)
}

/// Share of samples whose advisory is the same under both networks.
pub fn fidelity(before: &Network, after: &Network, xs: &Tensor) -> Result<f64> {
    let (a, b) = (advisories(before, xs)?, advisories(after, xs)?);
    Ok(a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64)
}

/// Whether the verifier finds a counterexample within `timeout`.
pub fn is_violated(net: &Network, prop: &Property, timeout: Duration) -> Result<bool> {
    let opts = CheckOptions {
        timeout,
        ..CheckOptions::default()
    };
    Ok(matches!(
        check_property(net, prop, &opts)?.verdict,
        Verdict::Violated(_)
    ))
}

/// Loads a network and properties by file name under `dir`.
pub fn load_instance(
    dir: &Path,
    net: &str,
    props: &[&str],
) -> Result<(Network, Vec<(String, Property)>)> {
    let network = netrepair_nn::load_onnx(dir.join(net))
        .with_context(|| format!("cannot load {}", dir.join(net).display()))?;
    let props = props
        .iter()
        .map(|p| {
            let path: PathBuf = dir.join(p);
            Ok((
                p.to_string(),
                read_vnnlib(&path).with_context(|| format!("cannot read {}", path.display()))?,
            ))
        })
        .collect::<Result<_>>()?;
    Ok((network, props))
}

/// Edits `net` so that every property holds, with `method`; re-checked by the verifier.
pub fn edit(
    net: &Network,
    name: &str,
    props: &[(String, Property)],
    method: &dyn Repair,
    describe: &str,
    ctx: &RepairContext,
    samples: &Tensor,
) -> Result<(AcasRow, RepairOutcome)> {
    let problem = RepairProblem::new(
        props
            .iter()
            .map(|(n, p)| RepairItem::Property {
                name: n.clone(),
                property: p.clone(),
            })
            .collect(),
    );
    let r = method.repair(net, &problem, ctx)?;
    let row = AcasRow {
        network: name.to_string(),
        properties: props.iter().map(|(n, _)| n.clone()).collect(),
        method: describe.to_string(),
        layer: r.layer.clone(),
        status: serde_json::to_value(r.status)?
            .as_str()
            .unwrap_or("?")
            .to_string(),
        proved: r.count(netrepair_repair::ItemStatus::Repaired),
        time_s: r.time_s,
        lp_s: r.timings.build_s + r.timings.solve_s,
        recheck_s: r.timings.recheck_s,
        lps: r.lp.len(),
        lp_rows: r.lp.iter().map(|l| l.rows).max().unwrap_or(0),
        lp_cols: r.lp.iter().map(|l| l.cols).max().unwrap_or(0),
        l1: r.param_delta.l1,
        linf: r.param_delta.linf,
        fidelity: fidelity(net, &r.network, samples)?,
    };
    Ok((row, r))
}

/// The rows as a Markdown table.
pub fn markdown(rows: &[AcasRow]) -> String {
    let mut s = String::from("| network | properties | method | layer | result | proved | time (s) | LP / re-check (s) | LPs | largest LP | L1 | Linf | fidelity |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {}/{} | {:.2} | {:.2} / {:.2} | {} | {} x {} | {:.3} | {:.4} | {:.2}% |\n",
            r.network.trim_start_matches("ACASXU_run2a_").trim_end_matches("_batch_2000.onnx"),
            r.properties.join(" ").replace(".vnnlib", ""),
            r.method,
            r.layer,
            r.status,
            r.proved,
            r.properties.len(),
            r.time_s,
            r.lp_s,
            r.recheck_s,
            r.lps,
            r.lp_rows,
            r.lp_cols,
            r.l1,
            r.linf,
            100.0 * r.fidelity
        ));
    }
    s
}

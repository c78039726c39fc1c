//! `repair --certificate DIR`: a VNN-COMP benchmark folder of what the repair proved, for any
//! VNN-COMP verifier (and `netrepair verify --instances DIR/instances.csv`) to re-check.
//!
//! Layout, as VNN-COMP benchmarks have it: `onnx/<repaired>.onnx` (a byte copy of `--out`),
//! `vnnlib/<name>.vnnlib` (one property per proved item or case), `instances.csv` (network,
//! property, timeout; paths relative to the folder) and `README.md` (what each property
//! states, the expected verdicts, what was left out and why). The folder is assembled beside
//! its destination and renamed into place, so it is complete or absent.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use netrepair_repair::{certificate, Certificate, RepairOutcome, RepairProblem};
use netrepair_spec::write_vnnlib;
use netrepair_verify::{CheckOptions, Verdict};

use crate::cmd::verify;

/// Seconds each instance gets in `instances.csv`.
pub const INSTANCE_TIMEOUT_S: u32 = 60;

/// Checks, before any work, that a certificate can be written to `dir`: it does not exist
/// (or is an empty directory) and its parent directory exists.
pub fn check_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = dir.is_dir()
            && std::fs::read_dir(dir)
                .with_context(|| format!("cannot read {}", dir.display()))?
                .next()
                .is_none();
        if !empty {
            bail!(
                "the certificate folder {} already exists and is not empty (give a new folder)",
                dir.display()
            );
        }
    }
    let parent = parent(dir);
    if !parent.is_dir() {
        bail!(
            "cannot write the certificate {}: the directory {} does not exist",
            dir.display(),
            parent.display()
        );
    }
    Ok(())
}

fn parent(dir: &Path) -> &Path {
    dir.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// What [`write`] put in the folder.
pub struct Written {
    /// The properties written.
    pub properties: usize,
    /// Proved items VNN-LIB cannot state.
    pub left_out: Vec<String>,
}

/// Writes the certificate of `outcome` (a repair of `problem` whose network was written to
/// `onnx`, from the network file `source`) to `dir`; writes nothing when no proved item can
/// be stated in VNN-LIB (`properties` is then 0).
pub fn write(
    dir: &Path,
    problem: &RepairProblem,
    outcome: &RepairOutcome,
    onnx: &Path,
    source: &Path,
) -> Result<Written> {
    let cert = certificate(problem, outcome);
    if cert.entries.is_empty() {
        // Nothing to state (no item repaired, or only what VNN-LIB cannot express): no folder.
        return Ok(Written {
            properties: 0,
            left_out: cert.left_out,
        });
    }
    let tmp = tempfile::Builder::new()
        .prefix(".netrepair-certificate-")
        .tempdir_in(parent(dir))
        .with_context(|| format!("cannot write the certificate {}", dir.display()))?;
    let root = tmp.path();
    std::fs::create_dir(root.join("onnx"))?;
    std::fs::create_dir(root.join("vnnlib"))?;
    let net_name = onnx
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repaired.onnx".into());
    std::fs::copy(onnx, root.join("onnx").join(&net_name))
        .with_context(|| format!("cannot copy {} into the certificate", onnx.display()))?;
    let mut instances = String::new();
    for e in &cert.entries {
        let comment = format!(
            "netrepair repair certificate: {}.\nExpected verdict: unsat (the unsafe outputs are unreachable; the property holds).",
            e.what
        );
        let text = write_vnnlib(&e.property, &comment)
            .with_context(|| format!("cannot state '{}' in VNN-LIB", e.what))?;
        std::fs::write(root.join("vnnlib").join(format!("{}.vnnlib", e.name)), text)?;
        let _ = writeln!(
            instances,
            "onnx/{net_name},vnnlib/{}.vnnlib,{INSTANCE_TIMEOUT_S}",
            e.name
        );
    }
    std::fs::write(root.join("instances.csv"), instances)?;
    std::fs::write(
        root.join("README.md"),
        readme(&cert, outcome, &net_name, source),
    )?;
    if dir.exists() {
        // An empty directory (checked before the repair): replaced by the folder.
        std::fs::remove_dir(dir)
            .with_context(|| format!("cannot replace the empty folder {}", dir.display()))?;
    }
    let kept: PathBuf = tmp.keep();
    std::fs::rename(&kept, dir).with_context(|| {
        let _ = std::fs::remove_dir_all(&kept);
        format!("cannot write the certificate {}", dir.display())
    })?;
    Ok(Written {
        properties: cert.entries.len(),
        left_out: cert.left_out,
    })
}

/// Checks every instance of the certificate in `dir` from the files alone (network and
/// property re-read, our verifier with its default limits and each instance's timeout, as
/// `verify --instances` runs); returns (instances, proved). A listed file that is missing
/// is an error.
pub fn recheck(dir: &Path) -> Result<(usize, usize)> {
    let list = dir.join("instances.csv");
    let (rows, skipped) = verify::read_instances(&list, |_, _| true)?;
    if skipped > 0 {
        bail!("{}: {skipped} listed file(s) missing", list.display());
    }
    let mut proved = 0;
    for (net, spec, t) in &rows {
        let opts = CheckOptions {
            timeout: Duration::from_secs_f64(*t),
            ..Default::default()
        };
        if matches!(verify::run_one(net, spec, &opts)?.verdict, Verdict::Holds) {
            proved += 1;
        }
    }
    Ok((rows.len(), proved))
}

fn readme(cert: &Certificate, outcome: &RepairOutcome, net_name: &str, source: &Path) -> String {
    let mut s = format!(
        "# Repair certificate\n\n\
         `onnx/{net_name}` is the network that `netrepair repair --method {}` made from `{}` \
         ({}; status: {:?}). Each file in `vnnlib/` states one thing the repair proved, as a \
         VNN-COMP property: an input box and the outputs that would be unsafe over it. \
         **Every instance of `instances.csv` is expected to be `unsat`** (the unsafe outputs \
         are unreachable: the property holds). Any VNN-COMP verifier can check them, e.g. \
         `netrepair verify --instances instances.csv`.\n\n\
         A repaired point is a property over the one-point box `[x, x]`; its unsafe region is \
         the negation of its requirements, boundary included (VNN-COMP's reading), e.g. for a \
         label: some other output at least as large as the label's. A property with several \
         input boxes is one file per box.\n\n",
        outcome.method,
        source.display(),
        outcome.message,
        outcome.status,
    );
    let _ = writeln!(s, "| instance | states | expected |\n|---|---|---|");
    for e in &cert.entries {
        let _ = writeln!(s, "| `vnnlib/{}.vnnlib` | {} | unsat |", e.name, e.what);
    }
    if !cert.left_out.is_empty() {
        let _ = writeln!(
            s,
            "\nProved but not stated here (VNN-LIB cannot express them):\n"
        );
        for l in &cert.left_out {
            let _ = writeln!(s, "- {l}");
        }
    }
    let failed = outcome.items.len()
        - outcome
            .items
            .iter()
            .filter(|i| i.status == netrepair_repair::ItemStatus::Repaired)
            .count();
    if failed > 0 {
        let _ = writeln!(
            s,
            "\n{failed} repair item(s) were not confirmed and are not in this certificate."
        );
    }
    s
}

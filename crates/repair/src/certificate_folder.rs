//! The certificate folder (`repair --certificate DIR`): a VNN-COMP benchmark folder of what a
//! repair proved, for any VNN-COMP verifier (and `netrepair verify --instances
//! DIR/instances.csv`) to re-check.
//!
//! Layout, as VNN-COMP benchmarks have it: `onnx/<repaired>.onnx` (a byte copy of `--out`),
//! `vnnlib/<name>.vnnlib` (one property per proved item or case), `instances.csv` (network,
//! property, timeout; paths relative to the folder) and `README.md` (what each property
//! states, the expected verdicts, what was left out and why). The folder is assembled beside
//! its destination and renamed into place, so it is complete or absent.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netrepair_spec::{read_instances, read_vnnlib, write_vnnlib, SpecError};
use netrepair_verify::{check_property, CheckOptions, Verdict};

use crate::certificate::{certificate, Certificate};
use crate::error::{RepairError, Result};
use crate::outcome::{ItemStatus, RepairOutcome};
use crate::problem::RepairProblem;

/// An I/O error with what was being done.
fn io(what: String) -> impl FnOnce(std::io::Error) -> RepairError {
    move |source| RepairError::Io { what, source }
}

/// Seconds each instance gets in `instances.csv`.
pub const INSTANCE_TIMEOUT_S: u32 = 60;

/// Checks, before any work, that a certificate can be written to `dir`: it does not exist
/// (or is an empty directory) and its parent directory exists.
pub fn check_certificate_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = dir.is_dir()
            && std::fs::read_dir(dir)
                .map_err(io(format!("cannot read {}", dir.display())))?
                .next()
                .is_none();
        if !empty {
            return Err(RepairError::Output(format!(
                "the certificate folder {} already exists and is not empty (give a new folder)",
                dir.display()
            )));
        }
    }
    let parent = parent(dir);
    if !parent.is_dir() {
        return Err(RepairError::Output(format!(
            "cannot write the certificate {}: the directory {} does not exist",
            dir.display(),
            parent.display()
        )));
    }
    Ok(())
}

fn parent(dir: &Path) -> &Path {
    dir.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// What [`write_certificate`] put in the folder.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenCertificate {
    /// The properties written.
    pub properties: usize,
    /// Proved items VNN-LIB cannot state.
    pub left_out: Vec<String>,
}

/// Writes the certificate of `outcome` (a repair of `problem` whose network was written to
/// `onnx`, from the network file `source`) to `dir`; writes nothing when no proved item can
/// be stated in VNN-LIB (`properties` is then 0).
pub fn write_certificate(
    dir: &Path,
    problem: &RepairProblem,
    outcome: &RepairOutcome,
    onnx: &Path,
    source: &Path,
) -> Result<WrittenCertificate> {
    let cert = certificate(problem, outcome);
    if cert.entries.is_empty() {
        // Nothing to state (no item repaired, or only what VNN-LIB cannot express): no folder.
        return Ok(WrittenCertificate {
            properties: 0,
            left_out: cert.left_out,
        });
    }
    let tmp = tempfile::Builder::new()
        .prefix(".netrepair-certificate-")
        .tempdir_in(parent(dir))
        .map_err(io(format!(
            "cannot write the certificate {}",
            dir.display()
        )))?;
    let root = tmp.path();
    let failed = || io(format!("cannot write the certificate {}", dir.display()));
    std::fs::create_dir(root.join("onnx")).map_err(failed())?;
    std::fs::create_dir(root.join("vnnlib")).map_err(failed())?;
    let net_name = onnx
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repaired.onnx".into());
    std::fs::copy(onnx, root.join("onnx").join(&net_name)).map_err(io(format!(
        "cannot copy {} into the certificate",
        onnx.display()
    )))?;
    let mut instances = String::new();
    for e in &cert.entries {
        let comment = format!(
            "netrepair repair certificate: {}.\nExpected verdict: unsat (the unsafe outputs are unreachable; the property holds).",
            e.what
        );
        let text = write_vnnlib(&e.property, &comment)?;
        std::fs::write(root.join("vnnlib").join(format!("{}.vnnlib", e.name)), text)
            .map_err(failed())?;
        let _ = writeln!(
            instances,
            "onnx/{net_name},vnnlib/{}.vnnlib,{INSTANCE_TIMEOUT_S}",
            e.name
        );
    }
    std::fs::write(root.join("instances.csv"), instances).map_err(failed())?;
    std::fs::write(
        root.join("README.md"),
        readme(&cert, outcome, &net_name, source),
    )
    .map_err(failed())?;
    if dir.exists() {
        // An empty directory (checked before the repair): replaced by the folder.
        std::fs::remove_dir(dir).map_err(io(format!(
            "cannot replace the empty folder {}",
            dir.display()
        )))?;
    }
    let kept: PathBuf = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, dir) {
        let _ = std::fs::remove_dir_all(&kept);
        return Err(failed()(e));
    }
    Ok(WrittenCertificate {
        properties: cert.entries.len(),
        left_out: cert.left_out,
    })
}

/// Checks every instance of the certificate in `dir` from the files alone (network and
/// property re-read, our verifier with its default limits and each instance's timeout, as
/// `verify --instances` runs); returns (instances, proved). A listed file that is missing
/// is an error.
pub fn recheck_certificate(dir: &Path) -> Result<(usize, usize)> {
    let list = dir.join("instances.csv");
    let rows = read_instances(&list, |_, _| true)?;
    if !rows.skipped.is_empty() {
        return Err(SpecError::InstanceList {
            list: list.display().to_string(),
            reason: format!(
                "{} listed file(s) missing: {}",
                rows.skipped.len(),
                rows.skipped.join("; ")
            ),
        }
        .into());
    }
    let mut proved = 0;
    // A certificate lists one network: each file is read once, not once per instance.
    let mut loaded: Option<(PathBuf, netrepair_nn::Network)> = None;
    for i in &rows.instances {
        let opts = CheckOptions {
            timeout: Duration::from_secs_f64(i.timeout),
            ..Default::default()
        };
        if loaded.as_ref().is_none_or(|(p, _)| *p != i.network) {
            loaded = Some((i.network.clone(), netrepair_nn::load_onnx(&i.network)?));
        }
        let net = &loaded.as_ref().expect("loaded above").1;
        let property = read_vnnlib(&i.property)?;
        if matches!(
            check_property(net, &property, &opts)?.verdict,
            Verdict::Holds
        ) {
            proved += 1;
        }
    }
    Ok((rows.instances.len(), proved))
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
            .filter(|i| i.status == ItemStatus::Repaired)
            .count();
    if failed > 0 {
        let _ = writeln!(
            s,
            "\n{failed} repair item(s) were not confirmed and are not in this certificate."
        );
    }
    s
}

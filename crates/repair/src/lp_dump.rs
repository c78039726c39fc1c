//! Writing out the LPs a repair solves (`repair --dump-lp DIR`): to compare solvers and
//! settings on them (`bench lp`), keep them as benchmark instances, or hand them to another
//! solver.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use netrepair_lp::{LpModel, Sense};

use crate::error::{RepairError, Result};

/// A folder the LPs of a repair are written to, one file per LP in the order they are
/// solved: `NNN-<purpose>.mps` (or `.lp` with [`LpDump::with_extension`]).
#[derive(Debug)]
pub struct LpDump {
    dir: PathBuf,
    extension: &'static str,
    written: AtomicUsize,
}

impl LpDump {
    /// Writes into `dir` (created if missing) as MPS.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| {
            RepairError::Problem(format!(
                "cannot create the LP dump folder '{}': {e}",
                dir.display()
            ))
        })?;
        Ok(Self {
            dir,
            extension: "mps",
            written: AtomicUsize::new(0),
        })
    }

    /// Writes CPLEX LP files (`lp`) instead of MPS (`mps`).
    pub fn with_extension(mut self, extension: &str) -> Result<Self> {
        self.extension = match extension {
            "mps" => "mps",
            "lp" => "lp",
            other => {
                return Err(RepairError::Problem(format!(
                    "LP files are written as mps or lp, not '{other}'"
                )))
            }
        };
        Ok(self)
    }

    /// The folder written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many LPs were written so far.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Writes `model` as the next file, named for `purpose`; returns its path.
    pub fn write(&self, model: &LpModel, sense: Sense, purpose: &str) -> Result<PathBuf> {
        let n = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        let slug: String = purpose
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .split('-')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let slug = if slug.is_empty() { "lp".into() } else { slug };
        let path = self.dir.join(format!(
            "{n:03}-{}.{}",
            &slug[..slug.len().min(60)],
            self.extension
        ));
        model.write(sense, &path)?;
        Ok(path)
    }
}

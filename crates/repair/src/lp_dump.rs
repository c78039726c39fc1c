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

/// `text` as a file-name part: ASCII letters and digits lower-cased, every other run of
/// characters one `-` ("repair LP, 3 regions" -> "repair-lp-3-regions").
pub fn slug(text: &str) -> String {
    text.chars()
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
        .join("-")
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
        let slug = slug(purpose);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_numbered_in_order_and_named_for_their_purpose() {
        let dir = std::env::temp_dir().join(format!("netrepair-dump-{}", std::process::id()));
        let mut m = LpModel::new();
        let x = m.add_var(0.0, 1.0, 1.0);
        m.add_ge(&[(x, 1.0)], 0.5);
        let d = LpDump::new(dir.join("a/b")).unwrap();
        let p1 = d.write(&m, Sense::Minimise, "final").unwrap();
        let p2 = d
            .write(&m, Sense::Minimise, "Elastic LP, split round 2!")
            .unwrap();
        let p3 = d.write(&m, Sense::Minimise, "--").unwrap();
        let names: Vec<String> = [&p1, &p2, &p3]
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "001-final.mps",
                "002-elastic-lp-split-round-2.mps",
                "003-lp.mps"
            ]
        );
        assert!(p2.is_file() && d.written() == 3);
        let lp = LpDump::new(dir.join("c"))
            .unwrap()
            .with_extension("lp")
            .unwrap();
        let p = lp.write(&m, Sense::Minimise, "final").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        // CPLEX LP format, not MPS: no ROWS section, an `end` line.
        assert!(
            !text.contains("ROWS") && text.to_lowercase().contains("end"),
            "{text}"
        );
        let e = LpDump::new(dir.join("d"))
            .unwrap()
            .with_extension("xml")
            .unwrap_err();
        assert!(e.to_string().contains("xml"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! VNN-COMP instance lists: `instances.csv`, one `network,property,timeout` per line, paths
//! relative to the list's folder.

use std::path::{Path, PathBuf};

use crate::error::{Result, SpecError};

/// One instance of a list: the network and property files, and the timeout in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The network (ONNX) file.
    pub network: PathBuf,
    /// The property (VNN-LIB) file.
    pub property: PathBuf,
    /// Seconds the instance gets.
    pub timeout: f64,
}

/// What [`read_instances`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceList {
    /// The instances whose files exist, in list order.
    pub instances: Vec<Instance>,
    /// One line per instance left out because a file it names cannot be found.
    pub skipped: Vec<String>,
}

fn list_error(list: &Path, reason: String) -> SpecError {
    SpecError::InstanceList {
        list: list.display().to_string(),
        reason,
    }
}

/// `root/rel`, or else the file of that name anywhere under `root` (benchmark folders move
/// their files around; VNN-COMP's lists still name them by their old place).
pub fn locate(root: &Path, rel: &str) -> std::result::Result<PathBuf, String> {
    let direct = root.join(rel);
    if direct.exists() {
        return Ok(direct);
    }
    let name = Path::new(rel)
        .file_name()
        .ok_or_else(|| "empty path in the instance list".to_string())?;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for e in entries {
            let p = e.map_err(|e| e.to_string())?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name() == Some(name) {
                return Ok(p);
            }
        }
    }
    Err(format!(
        "{rel} (listed in the instances) not found under {}",
        root.display()
    ))
}

/// Reads the instance list `list`, keeping the lines `keep(network, property)` accepts (as
/// written in the list). A malformed line is an error; a line whose files cannot be found
/// (see [`locate`]) is left out and said in [`InstanceList::skipped`].
pub fn read_instances(list: &Path, keep: impl Fn(&str, &str) -> bool) -> Result<InstanceList> {
    let text = std::fs::read_to_string(list).map_err(|source| SpecError::Io {
        path: list.display().to_string(),
        source,
    })?;
    let root = list
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut out = InstanceList::default();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let [net, spec, timeout] = f.as_slice() else {
            return Err(list_error(
                list,
                format!("line {}: expected 'network,property,timeout'", i + 1),
            ));
        };
        if !keep(net, spec) {
            continue;
        }
        let timeout: f64 = timeout
            .parse()
            .ok()
            .filter(|t: &f64| *t > 0.0)
            .ok_or_else(|| list_error(list, format!("line {}: bad timeout '{timeout}'", i + 1)))?;
        match (locate(root, net), locate(root, spec)) {
            (Ok(network), Ok(property)) => out.instances.push(Instance {
                network,
                property,
                timeout,
            }),
            (Err(e), _) | (_, Err(e)) => out.skipped.push(format!("line {}: {e}", i + 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_list_locates_moved_files_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("onnx")).unwrap();
        std::fs::create_dir_all(root.join("deep/vnnlib")).unwrap();
        std::fs::write(root.join("onnx/a.onnx"), b"x").unwrap();
        std::fs::write(root.join("deep/vnnlib/p.vnnlib"), b"x").unwrap();
        let list = root.join("instances.csv");
        std::fs::write(
            &list,
            "onnx/a.onnx,vnnlib/p.vnnlib,60\n\nonnx/missing.onnx,vnnlib/p.vnnlib,30\n",
        )
        .unwrap();
        let l = read_instances(&list, |_, _| true).unwrap();
        assert_eq!(
            l.instances,
            vec![Instance {
                network: root.join("onnx/a.onnx"),
                property: root.join("deep/vnnlib/p.vnnlib"),
                timeout: 60.0,
            }]
        );
        assert_eq!(l.skipped.len(), 1);
        assert!(
            l.skipped[0].starts_with("line 3: onnx/missing.onnx"),
            "{:?}",
            l.skipped
        );
        // The filter sees the names as written.
        let none = read_instances(&list, |n, _| n.contains("zzz")).unwrap();
        assert!(none.instances.is_empty() && none.skipped.is_empty());
        // Malformed lines and timeouts are errors naming the list and the line.
        std::fs::write(&list, "onnx/a.onnx,vnnlib/p.vnnlib\n").unwrap();
        let e = read_instances(&list, |_, _| true).unwrap_err().to_string();
        assert!(e.contains("instances.csv") && e.contains("line 1"), "{e}");
        std::fs::write(&list, "onnx/a.onnx,vnnlib/p.vnnlib,soon\n").unwrap();
        let e = read_instances(&list, |_, _| true).unwrap_err().to_string();
        assert!(e.contains("bad timeout 'soon'"), "{e}");
        assert!(read_instances(&root.join("nope.csv"), |_, _| true).is_err());
    }
}

//! Image data: MNIST IDX files (gzipped), CIFAR-10 image folders, ERAN CSV files.
//! Every image becomes `[C, H, W]` with values `pixel / 255` in [0, 1].

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{format, io, DataError, Result};

/// CIFAR-10 class names in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

fn digits() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

fn read_gz(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .map_err(|e| format(path, format!("not a readable gzip file ({e})")))?;
    Ok(out)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses IDX image bytes (magic 2051) into `(count, rows, cols, pixels)`.
pub fn parse_idx_images(bytes: &[u8], path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    if bytes.len() < 16 || be_u32(bytes, 0) != 2051 {
        return Err(format(path, "not an IDX image file (magic 2051)"));
    }
    let (n, r, c) = (
        be_u32(bytes, 4) as usize,
        be_u32(bytes, 8) as usize,
        be_u32(bytes, 12) as usize,
    );
    if bytes.len() != 16 + n * r * c {
        return Err(format(
            path,
            format!(
                "header says {n} images of {r}x{c} but the file has {} pixel bytes",
                bytes.len() - 16
            ),
        ));
    }
    Ok((n, r, c, bytes[16..].to_vec()))
}

/// Parses IDX label bytes (magic 2049).
pub fn parse_idx_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    if bytes.len() < 8 || be_u32(bytes, 0) != 2049 {
        return Err(format(path, "not an IDX label file (magic 2049)"));
    }
    let n = be_u32(bytes, 4) as usize;
    if bytes.len() != 8 + n {
        return Err(format(
            path,
            format!(
                "header says {n} labels but the file has {}",
                bytes.len() - 8
            ),
        ));
    }
    Ok(bytes[8..].to_vec())
}

/// MNIST from `dir` holding the four canonical gzipped IDX files; `train` picks the 60k
/// training images, otherwise the 10k test images. Samples are `[1, 28, 28]`.
pub fn load_mnist(dir: &Path, train: bool) -> Result<Dataset> {
    let prefix = if train { "train" } else { "t10k" };
    let ip = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
    let lp = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
    for p in [&ip, &lp] {
        if !p.exists() {
            return Err(DataError::Missing {
                path: p.display().to_string(),
                hint: "expected the canonical MNIST IDX files".into(),
            });
        }
    }
    let (n, r, c, px) = parse_idx_images(&read_gz(&ip)?, &ip)?;
    let labels = parse_idx_labels(&read_gz(&lp)?, &lp)?;
    if labels.len() != n || labels.iter().any(|&l| l > 9) {
        return Err(format(
            &lp,
            format!("{} labels (all 0..9 expected) for {n} images", labels.len()),
        ));
    }
    let inputs = px.iter().map(|&p| p as f32 / 255.0).collect();
    let name = if train { "mnist-train" } else { "mnist-test" };
    Dataset::new(
        name,
        inputs,
        vec![1, r, c],
        labels.into_iter().map(u32::from).collect(),
        digits(),
    )
}

/// CIFAR-10 from an image folder (`dir/<class>/*.jpg`, classes named as [`CIFAR10_CLASSES`]);
/// files are read in name order. Samples are `[3, 32, 32]`.
pub fn load_cifar10_folder(dir: &Path) -> Result<Dataset> {
    let mut files: Vec<(std::path::PathBuf, u32)> = Vec::new();
    for (label, class) in CIFAR10_CLASSES.iter().enumerate() {
        let cdir = dir.join(class);
        let entries = std::fs::read_dir(&cdir).map_err(|_| DataError::Missing {
            path: cdir.display().to_string(),
            hint: "expected one folder per CIFAR-10 class".into(),
        })?;
        let mut names: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("png"))
            })
            .collect();
        names.sort();
        files.extend(names.into_iter().map(|p| (p, label as u32)));
    }
    let images: Vec<Vec<f32>> = files
        .par_iter()
        .map(|(p, _)| {
            let img = image::open(p)
                .map_err(|e| format(p, format!("cannot decode image ({e})")))?
                .to_rgb8();
            if img.dimensions() != (32, 32) {
                return Err(format(
                    p,
                    format!("expected 32x32, got {:?}", img.dimensions()),
                ));
            }
            let raw = img.into_raw();
            Ok(hwc_to_chw(&raw, 32, 32, 3))
        })
        .collect::<Result<_>>()?;
    let labels = files.iter().map(|(_, l)| *l).collect();
    let name = format!(
        "cifar10-{}",
        dir.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    Dataset::new(
        name,
        images.concat(),
        vec![3, 32, 32],
        labels,
        CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
    )
}

fn hwc_to_chw(raw: &[u8], h: usize, w: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0; h * w * c];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                out[ch * h * w + y * w + x] = raw[(y * w + x) * c + ch] as f32 / 255.0;
            }
        }
    }
    out
}

/// An ERAN CSV (`label, pixel, pixel, ...` with pixels 0..255): 784 values per row are MNIST
/// (`[1, 28, 28]`), 3072 are CIFAR-10 stored H x W x C (`[3, 32, 32]` after conversion).
pub fn load_eran_csv(path: &Path) -> Result<Dataset> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let (mut inputs, mut labels) = (Vec::new(), Vec::new());
    let mut width = None;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let vals: Vec<u32> = line
            .split(',')
            .map(|v| v.trim().parse::<u32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| format(path, format!("line {}: {e}", i + 1)))?;
        if vals.len() < 2 || *width.get_or_insert(vals.len()) != vals.len() {
            return Err(format(
                path,
                format!(
                    "line {}: {} values, expected {:?}",
                    i + 1,
                    vals.len(),
                    width
                ),
            ));
        }
        if vals[1..].iter().any(|&v| v > 255) || vals[0] > 9 {
            return Err(format(
                path,
                format!("line {}: label must be 0..9 and pixels 0..255", i + 1),
            ));
        }
        labels.push(vals[0]);
        let px: Vec<u8> = vals[1..].iter().map(|&v| v as u8).collect();
        match px.len() {
            784 => inputs.extend(px.iter().map(|&p| p as f32 / 255.0)),
            3072 => inputs.extend(hwc_to_chw(&px, 32, 32, 3)),
            n => {
                return Err(format(
                    path,
                    format!(
                        "line {}: {n} pixels is neither MNIST (784) nor CIFAR-10 (3072)",
                        i + 1
                    ),
                ))
            }
        }
    }
    match width {
        Some(785) => Dataset::new("eran-mnist", inputs, vec![1, 28, 28], labels, digits()),
        Some(3073) => Dataset::new(
            "eran-cifar10",
            inputs,
            vec![3, 32, 32],
            labels,
            CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        ),
        _ => Err(format(path, "empty file")),
    }
}

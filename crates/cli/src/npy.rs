//! Reading and writing NPY arrays (float inputs, integer labels, f64 outputs).

use std::io::BufWriter;
use std::path::Path;

use anyhow::{bail, Context, Result};
use npyz::{TypeChar, WriterBuilder};

/// An array read from NPY: its shape and its values as f64.
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

fn open(path: &Path) -> Result<npyz::NpyFile<std::io::BufReader<std::fs::File>>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    npyz::NpyFile::new(std::io::BufReader::new(file))
        .with_context(|| format!("{} is not a valid NPY file", path.display()))
}

/// Reads a float32 or float64 NPY array.
pub fn read_floats(path: &Path) -> Result<Array> {
    let npy = open(path)?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let npyz::DType::Plain(ts) = npy.dtype() else {
        bail!("{}: structured arrays are not supported", path.display())
    };
    let data: Vec<f64> = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => npy.into_vec::<f32>()?.into_iter().map(f64::from).collect(),
        (TypeChar::Float, 8) => npy.into_vec::<f64>()?,
        _ => bail!(
            "{}: dtype {ts} is not supported (float32 or float64 expected)",
            path.display()
        ),
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        bail!(
            "{}: value {} at flat index {i} is not finite",
            path.display(),
            data[i]
        );
    }
    Ok(Array { shape, data })
}

/// Writes an array atomically (temporary file renamed into place).
fn write<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[usize], data: &[T]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    {
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(BufWriter::new(tmp.as_file()))
            .begin_nd()?;
        w.extend(data.iter().copied())?;
        w.finish()?;
    }
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes f64 values.
pub fn write_f64(path: &Path, shape: &[usize], data: &[f64]) -> Result<()> {
    write(path, shape, data)
}

/// Writes f32 values.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    write(path, shape, data)
}

/// Writes int64 values.
pub fn write_i64(path: &Path, shape: &[usize], data: &[i64]) -> Result<()> {
    write(path, shape, data)
}

/// Reads integer class labels (int64, int32, uint8 ... any plain integer NPY) as usize.
pub fn read_labels(path: &Path) -> Result<Vec<usize>> {
    let npy = open(path)?;
    let npyz::DType::Plain(ts) = npy.dtype() else {
        bail!("{}: structured arrays are not supported", path.display())
    };
    let values: Vec<i64> = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Int, 8) => npy.into_vec::<i64>()?,
        (TypeChar::Int, 4) => npy.into_vec::<i32>()?.into_iter().map(i64::from).collect(),
        (TypeChar::Int, 2) => npy.into_vec::<i16>()?.into_iter().map(i64::from).collect(),
        (TypeChar::Int, 1) => npy.into_vec::<i8>()?.into_iter().map(i64::from).collect(),
        (TypeChar::Uint, 1) => npy.into_vec::<u8>()?.into_iter().map(i64::from).collect(),
        (TypeChar::Uint, 4) => npy.into_vec::<u32>()?.into_iter().map(i64::from).collect(),
        (TypeChar::Uint, 8) => npy
            .into_vec::<u64>()?
            .into_iter()
            .map(|v| v.min(i64::MAX as u64) as i64)
            .collect(),
        _ => bail!(
            "{}: dtype {ts} is not supported for labels (an integer type expected)",
            path.display()
        ),
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            usize::try_from(v).map_err(|_| {
                anyhow::anyhow!("{}: label {v} at index {i} is negative", path.display())
            })
        })
        .collect()
}

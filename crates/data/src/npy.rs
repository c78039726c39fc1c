//! Reading and writing NPY arrays: float inputs (f32 or f64), integer labels, and arrays
//! written atomically (a temporary file renamed into place, so a failed write leaves nothing
//! half-written).

use std::io::BufWriter;
use std::path::Path;

use npyz::{TypeChar, WriterBuilder};

use crate::error::{format, io, Result};

/// An array read from NPY: its shape and its values as f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The array's shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f64>,
}

/// Opens an NPY file: its reader and its (plain) element type, once the header's claimed size
/// has been checked against the file's.
fn open(
    path: &Path,
) -> Result<(
    npyz::NpyFile<std::io::BufReader<std::fs::File>>,
    npyz::TypeStr,
)> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
        .map_err(|e| format(path, format!("not a valid NPY file ({e})")))?;
    // A header may claim any shape: compare it with the bytes there are before reading.
    let npyz::DType::Plain(ts) = npy.dtype() else {
        return Err(format(path, "structured arrays are not supported"));
    };
    let claimed = npy
        .shape()
        .iter()
        .try_fold(ts.size_field(), |n, &d| n.checked_mul(d));
    match claimed {
        Some(bytes) if bytes <= len => Ok((npy, ts)),
        _ => Err(format(
            path,
            format!(
                "the header claims shape {:?} of {ts} ({}), but the file holds only {len} bytes",
                npy.shape(),
                claimed.map_or("more than 2^64 bytes".into(), |b| format!("{b} bytes")),
            ),
        )),
    }
}

fn values<T: npyz::Deserialize>(
    path: &Path,
    npy: npyz::NpyFile<impl std::io::Read>,
) -> Result<Vec<T>> {
    npy.into_vec::<T>()
        .map_err(|e| format(path, format!("cannot read the values ({e})")))
}

/// Reads a float32 or float64 NPY array; NaN or infinite values are refused.
pub fn read_floats(path: &Path) -> Result<Array> {
    let (npy, ts) = open(path)?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let data: Vec<f64> = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => values::<f32>(path, npy)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (TypeChar::Float, 8) => values::<f64>(path, npy)?,
        _ => {
            return Err(format(
                path,
                format!("dtype {ts} is not supported (float32 or float64 expected)"),
            ))
        }
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        let msg = format!("value {} at flat index {i} is not finite", data[i]);
        return Err(format(path, msg));
    }
    Ok(Array { shape, data })
}

/// Reads integer class labels (int64, int32, uint8 ... any plain integer NPY) as usize;
/// negative labels are refused.
pub fn read_labels(path: &Path) -> Result<Vec<usize>> {
    let (npy, ts) = open(path)?;
    let labels: Vec<i64> = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Int, 8) => values::<i64>(path, npy)?,
        (TypeChar::Int, 4) => values::<i32>(path, npy)?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Int, 2) => values::<i16>(path, npy)?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Int, 1) => values::<i8>(path, npy)?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Uint, 1) => values::<u8>(path, npy)?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Uint, 4) => values::<u32>(path, npy)?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Uint, 8) => values::<u64>(path, npy)?
            .into_iter()
            .map(|v| v.min(i64::MAX as u64) as i64)
            .collect(),
        _ => {
            return Err(format(
                path,
                format!("dtype {ts} is not supported for labels (an integer type expected)"),
            ))
        }
    };
    labels
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            usize::try_from(v)
                .map_err(|_| format(path, format!("label {v} at index {i} is negative")))
        })
        .collect()
}

/// Writes an array atomically (temporary file renamed into place).
fn write<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[usize], data: &[T]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let written = (|| -> std::io::Result<()> {
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(BufWriter::new(tmp.as_file()))
            .begin_nd()?;
        w.extend(data.iter().copied())?;
        w.finish()
    })();
    written.map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_and_labels_round_trip_and_bad_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        let x = d.path().join("x.npy");
        write_f32(&x, &[2, 2], &[0.5, -1.0, 2.0, 0.25]).unwrap();
        let a = read_floats(&x).unwrap();
        assert_eq!(a.shape, vec![2, 2]);
        assert_eq!(a.data, vec![0.5, -1.0, 2.0, 0.25]);
        let y = d.path().join("y.npy");
        write_i64(&y, &[3], &[2, 0, 7]).unwrap();
        assert_eq!(read_labels(&y).unwrap(), vec![2, 0, 7]);
        // Labels are not floats, floats are not labels, negatives and NaN are refused.
        assert!(read_floats(&y)
            .unwrap_err()
            .to_string()
            .contains("float32 or float64"));
        assert!(read_labels(&x)
            .unwrap_err()
            .to_string()
            .contains("integer type"));
        write_i64(&y, &[1], &[-1]).unwrap();
        assert!(read_labels(&y)
            .unwrap_err()
            .to_string()
            .contains("negative"));
        write_f64(&x, &[1], &[f64::NAN]).unwrap();
        assert!(read_floats(&x)
            .unwrap_err()
            .to_string()
            .contains("not finite"));
        let junk = d.path().join("junk.npy");
        std::fs::write(&junk, b"not an npy file").unwrap();
        let e = read_floats(&junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.npy") && e.contains("not a valid NPY"),
            "{e}"
        );
        let missing = read_floats(&d.path().join("missing.npy")).unwrap_err();
        assert!(missing.to_string().contains("missing.npy"));
        // A header that claims far more data than the file holds is refused before reading.
        let mut bomb = b"\x93NUMPY\x01\x00".to_vec();
        let mut header =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 2), }".to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        bomb.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bomb.extend_from_slice(header.as_bytes());
        bomb.extend_from_slice(&[0u8; 64]);
        let bomb_path = d.path().join("bomb.npy");
        std::fs::write(&bomb_path, bomb).unwrap();
        let e = read_floats(&bomb_path).unwrap_err().to_string();
        assert!(
            e.contains("claims") && e.contains("80000000000 bytes"),
            "{e}"
        );
    }
}

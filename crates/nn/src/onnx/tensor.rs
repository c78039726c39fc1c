//! Conversions between ONNX `TensorProto` and plain vectors.

use super::proto::{tensor_proto::DataType, TensorProto};
use crate::error::{NnError, Result};

fn bad(name: &str, reason: impl Into<String>) -> NnError {
    NnError::InvalidGraph(format!("tensor '{name}': {}", reason.into()))
}

fn check_len(t: &TensorProto, n: usize) -> Result<()> {
    // Dims come from the file: negative ones, and products that overflow, are errors.
    let expected = t.dims.iter().try_fold(1u64, |acc, &d| {
        u64::try_from(d).ok().and_then(|d| acc.checked_mul(d))
    });
    match expected {
        Some(e) if e == n as u64 => Ok(()),
        Some(e) => Err(bad(
            &t.name,
            format!("dims {:?} hold {e} values, data has {n}", t.dims),
        )),
        None => Err(bad(
            &t.name,
            format!("dims {:?} are negative or too large", t.dims),
        )),
    }
}

/// The tensor's values as f64 (float, double and integer types).
pub(crate) fn to_f64(t: &TensorProto) -> Result<Vec<f64>> {
    if t.data_location == 1 {
        return Err(bad(
            &t.name,
            "external data is not supported (save the model with all tensors inline)",
        ));
    }
    let raw = &t.raw_data;
    let dt = DataType::try_from(t.data_type)
        .map_err(|_| bad(&t.name, format!("unknown data type {}", t.data_type)))?;
    let v: Vec<f64> = match dt {
        DataType::Float if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        DataType::Float => t.float_data.iter().map(|&x| x as f64).collect(),
        DataType::Double if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        DataType::Double => t.double_data.clone(),
        DataType::Int64 => to_i64(t)?.into_iter().map(|x| x as f64).collect(),
        DataType::Int32 if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        DataType::Int32 => t.int32_data.iter().map(|&x| x as f64).collect(),
        other => {
            return Err(bad(
                &t.name,
                format!("data type {other:?} is not supported"),
            ))
        }
    };
    check_len(t, v.len())?;
    Ok(v)
}

/// The tensor's values as i64 (integer types only).
pub(crate) fn to_i64(t: &TensorProto) -> Result<Vec<i64>> {
    let raw = &t.raw_data;
    let v: Vec<i64> = match DataType::try_from(t.data_type) {
        Ok(DataType::Int64) if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        Ok(DataType::Int64) => t.int64_data.clone(),
        Ok(DataType::Int32) if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
            .collect(),
        Ok(DataType::Int32) => t.int32_data.iter().map(|&x| x as i64).collect(),
        _ => return Err(bad(&t.name, "expected an integer tensor")),
    };
    check_len(t, v.len())?;
    Ok(v)
}

/// Overwrites the tensor's data with `values`, keeping its name, dims and element type
/// (float or double), stored as little-endian `raw_data`.
pub(crate) fn write_f64(t: &mut TensorProto, values: &[f64]) -> Result<()> {
    check_len(t, values.len())?;
    let raw: Vec<u8> = match DataType::try_from(t.data_type) {
        Ok(DataType::Float) => values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect(),
        Ok(DataType::Double) => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        _ => {
            return Err(bad(
                &t.name,
                "only float and double tensors can be rewritten",
            ))
        }
    };
    t.float_data.clear();
    t.double_data.clear();
    t.raw_data = raw;
    Ok(())
}

/// A new float tensor.
pub(crate) fn new_f32(name: &str, dims: &[usize], values: &[f64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect(),
        ..Default::default()
    }
}

/// A new int64 tensor.
pub(crate) fn new_i64(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: vec![values.len() as i64],
        data_type: DataType::Int64 as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// Transposes a row-major `[r, c]` matrix.
pub(crate) fn transpose(v: &[f64], r: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = v[i * c + j];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `make fuzz`: dims whose product overflows (it used to panic in debug builds
    /// and wrap in release ones).
    #[test]
    fn dims_that_overflow_or_are_negative_are_errors() {
        let t = |dims: Vec<i64>| TensorProto {
            name: "w".into(),
            dims,
            ..TensorProto::default()
        };
        let e = check_len(&t(vec![2, 1_528_449_814_975, 250_588_271, 4070]), 6)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'w'") && e.contains("too large"), "{e}");
        assert!(check_len(&t(vec![2, -3]), 6).is_err());
        assert!(check_len(&t(vec![2, 3]), 5)
            .unwrap_err()
            .to_string()
            .contains("hold 6"));
        check_len(&t(vec![2, 3]), 6).unwrap();
        check_len(&t(vec![]), 1).unwrap();
    }
}

//! Importers of the shape operators (transpose, slice, split, gather, pad, sums, concatenation,
//! squeeze), of the shape arithmetic that is folded at import (`Shape`, `ConstantOfShape`,
//! `Cast` and arithmetic of constants), and of the forward-only operators.
//!
//! Constants are folded by running the same layer on them that a runtime value would get, so
//! folding and running cannot disagree. Axes arrive in ONNX numbering, which counts the batch
//! dimension of a batched value; an operation on the batch axis itself is accepted only where
//! it means nothing for a batch of one (the file fixes the batch size at 1), e.g. `Gather` of
//! index 0 on axis 0, which then leaves a value without a batch dimension.

use candle_core::{DType, Device, Tensor};

use super::{attr, attr_i, attr_ints, attr_s, unsupported, Const, Importer, NodeProto, Val};
use crate::error::{NnError, Result};
use crate::layer::{ConstOp, Elementwise, Layer};
use crate::onnx::proto::{self, tensor_proto::DataType};
use crate::opaque::{BinaryOp, Opaque, UnaryOp};
use crate::rearrange::{Rearrange, SliceAxis};

/// An ONNX axis resolved against a value: the batch axis or a per-sample axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    Batch,
    Sample(usize),
}

/// `axis` (negative counts from the end) as an index below `rank`.
pub(super) fn axis_index(n: &NodeProto, axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank as i64 {
        return Err(unsupported(
            n,
            format!("axis {axis} is out of range for rank {rank}"),
        ));
    }
    Ok(a as usize)
}

/// Whether a constant holds an integer (or bool) type.
fn is_int(c: &Const) -> bool {
    !matches!(
        DataType::try_from(c.proto.data_type),
        Ok(DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16)
    )
}

/// A constant computed at import time.
fn folded(values: Vec<f64>, dims: Vec<usize>, int: bool) -> Val {
    let data_type = if int {
        DataType::Int64
    } else {
        DataType::Double
    };
    Val::Const(Box::new(Const {
        values,
        proto: proto::TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type as i32,
            ..Default::default()
        },
        dims,
        source: None,
    }))
}

/// The constant with new dimensions (same elements).
pub(super) fn with_dims(c: Const, dims: Vec<usize>) -> Val {
    let int = is_int(&c);
    folded(c.values, dims, int)
}

/// A constant as a batch of one, `[1, dims...]`.
fn batch_of_one(c: &Const) -> Result<Tensor> {
    let mut dims = vec![1];
    dims.extend_from_slice(&c.dims);
    Ok(Tensor::from_vec(c.values.clone(), dims, &Device::Cpu)?)
}

/// A batch of one back to a constant.
fn unbatch(t: &Tensor, int: bool) -> Result<Val> {
    let dims = t.dims()[1..].to_vec();
    let values = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok(folded(values, dims, int))
}

/// Per-sample dimensions and batchedness of input `i` (a constant has no batch dimension).
fn operand(imp: &Importer, n: &NodeProto, i: usize) -> Result<(Vec<usize>, bool)> {
    Ok(match imp.get(n, i)? {
        Val::Run(v) => (imp.builder.shape(v).to_vec(), imp.batched(n, i)),
        Val::Const(_) => (imp.constant(n, i)?.dims, false),
    })
}

/// Resolves an ONNX axis of input `i`.
fn resolve(imp: &Importer, n: &NodeProto, i: usize, axis: i64) -> Result<Axis> {
    let (dims, batched) = operand(imp, n, i)?;
    let a = axis_index(n, axis, dims.len() + batched as usize)?;
    Ok(match (batched, a) {
        (true, 0) => Axis::Batch,
        (true, a) => Axis::Sample(a - 1),
        (false, a) => Axis::Sample(a),
    })
}

/// Refuses an operation on the batch axis unless the file fixes the batch size at one.
fn batch_of_one_only(imp: &Importer, n: &NodeProto) -> Result<()> {
    if imp.batch == Some(1) {
        Ok(())
    } else {
        Err(unsupported(
            n,
            "it acts on the batch dimension, which is only supported when the file fixes the batch size at 1",
        ))
    }
}

/// Output `j` of `n` is runtime value `v`, with or without the batch dimension.
fn alias(imp: &mut Importer, n: &NodeProto, j: usize, v: Val, batched: bool) {
    if let Some(out) = n.output.get(j) {
        imp.values.insert(out.clone(), v);
        if batched {
            imp.unbatched.remove(out);
        } else {
            imp.unbatched.insert(out.clone());
        }
    }
}

/// Applies a rearrangement to input 0: folded for a constant, a layer for a runtime value.
fn rearrange(imp: &mut Importer, n: &NodeProto, r: Rearrange) -> Result<()> {
    match imp.get(n, 0)? {
        Val::Const(_) => {
            let c = imp.constant(n, 0)?;
            let t = r
                .forward(&batch_of_one(&c)?)
                .map_err(|e| unsupported(n, e.to_string()))?;
            let v = unbatch(&t, is_int(&c))?;
            imp.set_output(n, v);
        }
        Val::Run(x) => {
            imp.push(n, Layer::Rearrange(r), vec![x], vec![])?;
        }
    }
    Ok(())
}

/// Integer values of constant input `i` (none when the input is absent).
fn ints_input(imp: &Importer, n: &NodeProto, i: usize) -> Result<Option<Vec<i64>>> {
    if !Importer::has_input(n, i) {
        return Ok(None);
    }
    Ok(Some(
        imp.constant(n, i)?
            .values
            .iter()
            .map(|&v| v as i64)
            .collect(),
    ))
}

/// ONNX `Transpose` (default: reverse the axes).
pub(super) fn transpose(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let (dims, batched) = operand(imp, n, 0)?;
    let rank = dims.len() + batched as usize;
    let perm: Vec<usize> = match attr_ints(n, "perm") {
        Some(p) => p
            .iter()
            .map(|&a| axis_index(n, a, rank))
            .collect::<Result<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let perm = if batched {
        if perm.first() != Some(&0) {
            return Err(unsupported(
                n,
                format!("permutation {perm:?} moves the batch dimension"),
            ));
        }
        perm[1..].iter().map(|&a| a - 1).collect()
    } else {
        perm
    };
    rearrange(imp, n, Rearrange::Transpose(perm))
}

/// ONNX slice bounds resolved against an axis of size `dim`: (first index, count).
fn slice_range(dim: usize, start: i64, end: i64, step: i64) -> (usize, usize) {
    let d = dim as i64;
    let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (start, end) = (fix(start), fix(end));
    if step > 0 {
        let (s, e) = (start.clamp(0, d), end.clamp(0, d));
        (
            s as usize,
            ((e - s).max(0) + step - 1).div_euclid(step) as usize,
        )
    } else {
        let (s, e) = (start.clamp(0, d - 1), end.clamp(-1, d - 1));
        let len = ((s - e).max(0) + (-step) - 1).div_euclid(-step);
        (s.max(0) as usize, len as usize)
    }
}

/// ONNX `Slice` (inputs from opset 10, attributes before).
pub(super) fn slice(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let (starts, ends, axes, steps) = if imp.opset >= 10 {
        (
            ints_input(imp, n, 1)?.unwrap_or_default(),
            ints_input(imp, n, 2)?.unwrap_or_default(),
            ints_input(imp, n, 3)?,
            ints_input(imp, n, 4)?,
        )
    } else {
        (
            attr_ints(n, "starts").unwrap_or_default(),
            attr_ints(n, "ends").unwrap_or_default(),
            attr_ints(n, "axes"),
            None,
        )
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(unsupported(
            n,
            "starts, ends, axes and steps differ in length",
        ));
    }
    let (dims, _) = operand(imp, n, 0)?;
    let mut out = Vec::new();
    for k in 0..starts.len() {
        if steps[k] == 0 || steps[k].unsigned_abs() > 1 << 40 {
            return Err(unsupported(n, format!("a slice step of {}", steps[k])));
        }
        match resolve(imp, n, 0, axes[k])? {
            Axis::Batch => {
                batch_of_one_only(imp, n)?;
                if slice_range(1, starts[k], ends[k], steps[k]) != (0, 1) {
                    return Err(unsupported(n, "the slice empties the batch dimension"));
                }
            }
            Axis::Sample(a) => {
                let (start, len) = slice_range(dims[a], starts[k], ends[k], steps[k]);
                out.push(SliceAxis {
                    axis: a,
                    start,
                    step: steps[k] as isize,
                    len,
                });
            }
        }
    }
    rearrange(imp, n, Rearrange::Slice(out))
}

/// ONNX `Split`: one slice per output.
pub(super) fn split(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let (dims, _) = operand(imp, n, 0)?;
    let a = match resolve(imp, n, 0, attr_i(n, "axis", 0))? {
        Axis::Batch => return Err(unsupported(n, "splitting the batch dimension")),
        Axis::Sample(a) => a,
    };
    let parts = n.output.len();
    let sizes: Vec<usize> = match (attr_ints(n, "split"), ints_input(imp, n, 1)?) {
        (Some(s), _) | (None, Some(s)) => s.iter().map(|&v| v.max(0) as usize).collect(),
        (None, None) => {
            let size = dims[a].div_ceil(parts.max(1));
            (0..parts)
                .map(|j| size.min(dims[a].saturating_sub(j * size)))
                .collect()
        }
    };
    if sizes.len() != parts || sizes.iter().sum::<usize>() != dims[a] {
        return Err(unsupported(
            n,
            format!(
                "split sizes {sizes:?} do not cover axis of size {}",
                dims[a]
            ),
        ));
    }
    let mut start = 0;
    for (j, &len) in sizes.iter().enumerate() {
        let r = Rearrange::Slice(vec![SliceAxis {
            axis: a,
            start,
            step: 1,
            len,
        }]);
        start += len;
        if n.output[j].is_empty() {
            continue;
        }
        match imp.get(n, 0)? {
            Val::Const(_) => {
                let c = imp.constant(n, 0)?;
                let v = unbatch(&r.forward(&batch_of_one(&c)?)?, is_int(&c))?;
                alias(imp, n, j, v, false);
            }
            Val::Run(x) => {
                imp.push_at(n, j, Layer::Rearrange(r), vec![x], vec![])?;
            }
        }
    }
    Ok(())
}

/// ONNX `Gather` with constant indices (rank 0 or 1).
pub(super) fn gather(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let idx = imp.constant(n, 1)?;
    if idx.dims.len() > 1 {
        return Err(unsupported(
            n,
            format!("indices of shape {:?} (only scalars and lists)", idx.dims),
        ));
    }
    let keep_axis = idx.dims.len() == 1;
    let (dims, _) = operand(imp, n, 0)?;
    let axis = resolve(imp, n, 0, attr_i(n, "axis", 0))?;
    let size = match axis {
        Axis::Batch => 1,
        Axis::Sample(a) => dims[a],
    };
    let indices = idx
        .values
        .iter()
        .map(|&v| {
            let i = v as i64;
            let j = if i < 0 { i + size as i64 } else { i };
            if j < 0 || j >= size as i64 {
                Err(unsupported(
                    n,
                    format!("index {i} is out of range for an axis of size {size}"),
                ))
            } else {
                Ok(j as usize)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    match axis {
        Axis::Batch => {
            // Index 0 of a batch of one: the value itself, without (or with) the batch axis.
            batch_of_one_only(imp, n)?;
            if indices.len() != 1 {
                return Err(unsupported(n, "gathering several batch entries"));
            }
            let v = imp.get(n, 0)?;
            alias(imp, n, 0, v, keep_axis);
            Ok(())
        }
        Axis::Sample(axis) => rearrange(
            imp,
            n,
            Rearrange::Gather {
                axis,
                indices,
                keep_axis,
            },
        ),
    }
}

/// ONNX `Pad` in constant mode (pads as an input from opset 11, attributes before).
pub(super) fn pad(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let mode = attr_s(n, "mode").unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(unsupported(
            n,
            format!("pad mode '{mode}' (only 'constant')"),
        ));
    }
    let (pads, value) = if imp.opset >= 11 {
        let pads = ints_input(imp, n, 1)?.ok_or_else(|| unsupported(n, "pads are required"))?;
        let value = if Importer::has_input(n, 2) {
            imp.constant(n, 2)?.values.first().copied().unwrap_or(0.0)
        } else {
            0.0
        };
        (pads, value)
    } else {
        (
            attr_ints(n, "pads").unwrap_or_default(),
            attr(n, "value").map_or(0.0, |a| a.f as f64),
        )
    };
    if Importer::has_input(n, 3) {
        return Err(unsupported(n, "padding selected axes (the axes input)"));
    }
    let (dims, batched) = operand(imp, n, 0)?;
    let rank = dims.len() + batched as usize;
    if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0) {
        return Err(unsupported(
            n,
            format!("pads {pads:?} (2 x {rank} non-negative values are supported)"),
        ));
    }
    let skip = batched as usize;
    if batched && (pads[0] != 0 || pads[rank] != 0) {
        return Err(unsupported(n, "padding the batch dimension"));
    }
    let before = pads[skip..rank].iter().map(|&p| p as usize).collect();
    let after = pads[rank + skip..].iter().map(|&p| p as usize).collect();
    rearrange(
        imp,
        n,
        Rearrange::Pad {
            before,
            after,
            value,
        },
    )
}

/// ONNX `ReduceSum` (axes as an input from opset 13, an attribute before).
pub(super) fn reduce_sum(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    reduce(imp, n, false)
}

/// ONNX `ReduceMean` (axes an attribute before opset 18): a sum, then a division by the count.
pub(super) fn reduce_mean(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    reduce(imp, n, true)
}

/// A sum over axes, or with `mean` an average.
fn reduce(imp: &mut Importer, n: &NodeProto, mean: bool) -> Result<()> {
    let keepdims = attr_i(n, "keepdims", 1) != 0;
    let axes_as_input = if mean {
        imp.opset >= 18
    } else {
        imp.opset >= 13
    };
    let axes = if axes_as_input {
        ints_input(imp, n, 1)?
    } else {
        attr_ints(n, "axes")
    };
    let (dims, batched) = operand(imp, n, 0)?;
    let axes = match axes {
        Some(a) if !a.is_empty() => a,
        _ if attr_i(n, "noop_with_empty_axes", 0) != 0 => {
            let v = imp.get(n, 0)?;
            let b = imp.batched(n, 0);
            alias(imp, n, 0, v, b);
            return Ok(());
        }
        _ => (0..(dims.len() + batched as usize) as i64).collect(),
    };
    let mut sample = Vec::new();
    let mut over_batch = false;
    for &a in &axes {
        match resolve(imp, n, 0, a)? {
            Axis::Batch => over_batch = true,
            Axis::Sample(s) => sample.push(s),
        }
    }
    sample.sort_unstable();
    sample.dedup();
    if over_batch {
        // The sum over a batch of one is the value itself.
        batch_of_one_only(imp, n)?;
    }
    let still_batched = batched && (keepdims || !over_batch);
    if sample.is_empty() {
        let v = imp.get(n, 0)?;
        alias(imp, n, 0, v, still_batched);
        return Ok(());
    }
    let count: usize = sample.iter().map(|&a| dims[a]).product();
    let r = Rearrange::ReduceSum {
        axes: sample,
        keepdims,
    };
    let v = match imp.get(n, 0)? {
        Val::Const(_) => {
            let c = imp.constant(n, 0)?;
            let mut t = r.forward(&batch_of_one(&c)?)?;
            if mean {
                t = t.affine(1.0 / count as f64, 0.0)?;
            }
            imp.set_output(n, unbatch(&t, is_int(&c) && !mean)?);
            return Ok(());
        }
        Val::Run(x) => {
            let s = imp.push(n, Layer::Rearrange(r), vec![x], vec![])?;
            if mean {
                let c = Tensor::new(&[count as f64], &Device::Cpu)?;
                let div = Elementwise::new(ConstOp::Div, c)?;
                let name = format!("{}.mean", super::node_label(n));
                imp.builder
                    .push_with_inputs(name, Layer::Elementwise(div), vec![s])?
            } else {
                s
            }
        }
    };
    alias(imp, n, 0, Val::Run(v), still_batched);
    Ok(())
}

/// ONNX `Concat`: of runtime values (a layer) or of constants (folded).
pub(super) fn concat(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    if n.input.is_empty() {
        return Err(unsupported(n, "a concatenation of nothing"));
    }
    let vals = (0..n.input.len())
        .map(|i| imp.get(n, i))
        .collect::<Result<Vec<_>>>()?;
    let axis = attr_i(n, "axis", 0);
    if vals.iter().all(|v| matches!(v, Val::Const(_))) {
        let consts = (0..vals.len())
            .map(|i| imp.constant(n, i))
            .collect::<Result<Vec<_>>>()?;
        let rank = consts[0].dims.len();
        let a = axis_index(n, axis, rank)?;
        let ts = consts
            .iter()
            .map(batch_of_one)
            .collect::<Result<Vec<_>>>()?;
        let t = Tensor::cat(&ts, a + 1).map_err(|e| unsupported(n, e.to_string()))?;
        let v = unbatch(&t, consts.iter().all(is_int))?;
        imp.set_output(n, v);
        return Ok(());
    }
    let mut ids = Vec::new();
    let mut axes = Vec::new();
    for (i, v) in vals.iter().enumerate() {
        match v {
            Val::Run(id) => {
                ids.push(*id);
                axes.push((resolve(imp, n, i, axis)?, imp.batched(n, i)));
            }
            Val::Const(_) => {
                return Err(unsupported(
                    n,
                    "concatenating runtime values with constants",
                ))
            }
        }
    }
    let a = match axes[0] {
        (Axis::Sample(a), b) if axes.iter().all(|&x| x == (Axis::Sample(a), b)) => a,
        _ => {
            return Err(unsupported(
                n,
                "the operands differ in their batch dimension, or the axis is the batch",
            ))
        }
    };
    imp.push(
        n,
        Layer::Concat {
            axis: a,
            inputs: ids.len(),
        },
        ids,
        vec![],
    )?;
    Ok(())
}

/// ONNX `Squeeze` and `Unsqueeze` (axes as an input from opset 13): a reshape.
pub(super) fn squeeze(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let (dims, batched) = operand(imp, n, 0)?;
    let axes = if imp.opset >= 13 {
        ints_input(imp, n, 1)?
    } else {
        attr_ints(n, "axes")
    };
    let mut full = Vec::new();
    if batched {
        full.push(imp.batch.unwrap_or(0));
    }
    full.extend_from_slice(&dims);
    let squeeze = n.op_type == "Squeeze";
    let (out, batch_axis_touched) = if squeeze {
        let axes: Vec<usize> = match axes {
            Some(a) => a
                .iter()
                .map(|&x| axis_index(n, x, full.len()))
                .collect::<Result<_>>()?,
            None => (0..full.len()).filter(|&i| full[i] == 1).collect(),
        };
        if let Some(&bad) = axes.iter().find(|&&a| !(batched && a == 0) && full[a] != 1) {
            return Err(unsupported(
                n,
                format!("axis {bad} has size {}, not 1", full[bad]),
            ));
        }
        let out: Vec<usize> = (0..full.len())
            .filter(|i| !axes.contains(i))
            .map(|i| full[i])
            .collect();
        (out, batched && axes.contains(&0))
    } else {
        let axes = axes.ok_or_else(|| unsupported(n, "axes are required"))?;
        let rank = full.len() + axes.len();
        let axes: Vec<usize> = axes
            .iter()
            .map(|&x| axis_index(n, x, rank))
            .collect::<Result<_>>()?;
        let mut rest = full.iter();
        let out: Vec<usize> = (0..rank)
            .map(|i| {
                if axes.contains(&i) {
                    1
                } else {
                    *rest.next().expect("rank counted")
                }
            })
            .collect();
        (out, batched && axes.contains(&0))
    };
    match imp.get(n, 0)? {
        Val::Const(_) => {
            let c = imp.constant(n, 0)?;
            imp.set_output(n, with_dims(c, out));
        }
        Val::Run(x) => {
            let (sample, still_batched) = if batch_axis_touched {
                if !squeeze {
                    return Err(unsupported(n, "an axis in front of the batch dimension"));
                }
                batch_of_one_only(imp, n)?;
                (out, false)
            } else if batched {
                (out[1..].to_vec(), true)
            } else {
                (out, false)
            };
            if sample == imp.builder.shape(x) {
                alias(imp, n, 0, Val::Run(x), still_batched);
            } else {
                let v = imp.push(n, Layer::Reshape(sample), vec![x], vec![])?;
                alias(imp, n, 0, Val::Run(v), still_batched);
            }
        }
    }
    Ok(())
}

/// ONNX `Shape`: folded (the batch size must be fixed by the file).
pub(super) fn shape(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let (dims, batched) = operand(imp, n, 0)?;
    let mut full: Vec<f64> = Vec::new();
    if batched {
        let b = imp.batch.ok_or_else(|| {
            unsupported(
                n,
                "the shape includes the batch size, which the file leaves open",
            )
        })?;
        full.push(b as f64);
    }
    full.extend(dims.iter().map(|&d| d as f64));
    let rank = full.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let start = clamp(attr_i(n, "start", 0));
    let end = clamp(attr_i(n, "end", rank)).max(start);
    let values = full[start..end].to_vec();
    let len = values.len();
    imp.set_output(n, folded(values, vec![len], true));
    Ok(())
}

/// ONNX `ConstantOfShape`: folded.
pub(super) fn constant_of_shape(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let dims: Vec<usize> = imp
        .constant(n, 0)?
        .values
        .iter()
        .map(|&v| v.max(0.0) as usize)
        .collect();
    let (value, int) = match attr(n, "value").and_then(|a| a.t.as_ref()) {
        Some(t) => {
            let c = Const {
                values: super::tensor::to_f64(t)?,
                dims: vec![1],
                source: None,
                proto: t.clone(),
            };
            (c.values.first().copied().unwrap_or(0.0), is_int(&c))
        }
        None => (0.0, false),
    };
    let len = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&l| l <= crate::network::MAX_VALUE_LEN)
        .ok_or_else(|| unsupported(n, format!("a constant of shape {dims:?} is too large")))?;
    imp.set_output(n, folded(vec![value; len], dims, int));
    Ok(())
}

/// The forward-only operation a cast to ONNX type `to` needs (`None`: the value is unchanged
/// in our f64 arithmetic).
fn cast_op(n: &NodeProto, to: i64) -> Result<Option<Opaque>> {
    match DataType::try_from(to as i32) {
        Ok(DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16) => Ok(None),
        Ok(DataType::Bool) => Ok(Some(Opaque::NonZero)),
        Ok(
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Uint8
            | DataType::Uint16
            | DataType::Uint32
            | DataType::Uint64,
        ) => Ok(Some(Opaque::Truncate)),
        _ => Err(unsupported(n, format!("cast to type {to}"))),
    }
}

/// ONNX `Cast`.
pub(super) fn cast(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let to = attr_i(n, "to", 1);
    let op = cast_op(n, to)?;
    let int = op.is_some();
    match (imp.get(n, 0)?, op) {
        (Val::Const(_), op) => {
            let c = imp.constant(n, 0)?;
            let v = match op {
                Some(op) => unbatch(&op.forward(&[&batch_of_one(&c)?])?, int)?,
                None => folded(c.values, c.dims, false),
            };
            imp.set_output(n, v);
        }
        (v @ Val::Run(_), None) => {
            let b = imp.batched(n, 0);
            alias(imp, n, 0, v, b);
        }
        (Val::Run(x), Some(op)) => {
            imp.push(n, Layer::Opaque(op), vec![x], vec![])?;
        }
    }
    Ok(())
}

/// Refuses two runtime operands whose broadcast would mix the batch dimension with a
/// per-sample axis.
pub(super) fn check_broadcast(imp: &Importer, n: &NodeProto) -> Result<()> {
    let (a, ba) = operand(imp, n, 0)?;
    let (b, bb) = operand(imp, n, 1)?;
    let mixes = match (ba, bb) {
        (true, true) => a.len() != b.len(),
        (true, false) => b.len() > a.len(),
        (false, true) => a.len() > b.len(),
        (false, false) => false,
    };
    if mixes {
        return Err(unsupported(
            n,
            format!("broadcasting {a:?} against {b:?} would mix the batch dimension with a per-sample axis"),
        ));
    }
    Ok(())
}

/// Folds an arithmetic operation of two constants (integer division truncates).
pub(super) fn fold_binary(n: &NodeProto, a: &Const, b: &Const, op: BinaryOp) -> Result<Val> {
    let int = is_int(a) && is_int(b);
    let (ta, tb) = (batch_of_one(a)?, batch_of_one(b)?);
    let mut t = Opaque::Binary(op)
        .forward(&[&ta, &tb])
        .map_err(|e| unsupported(n, e.to_string()))?;
    if int && op == BinaryOp::Div {
        t = Opaque::Truncate.forward(&[&t])?;
    }
    unbatch(&t, int || op == BinaryOp::Equal)
}

/// ONNX `Equal`.
pub(super) fn equal(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    match (imp.get(n, 0)?, imp.get(n, 1)?) {
        (Val::Run(x), Val::Run(y)) => {
            check_broadcast(imp, n)?;
            imp.push(
                n,
                Layer::Opaque(Opaque::Binary(BinaryOp::Equal)),
                vec![x, y],
                vec![],
            )?;
        }
        (Val::Const(_), Val::Const(_)) => {
            let (a, b) = (imp.constant(n, 0)?, imp.constant(n, 1)?);
            let v = fold_binary(n, &a, &b, BinaryOp::Equal)?;
            imp.set_output(n, v);
        }
        _ => return Err(unsupported(n, "comparing a runtime value with a constant")),
    }
    Ok(())
}

/// The per-sample axis of runtime input 0, refusing the batch axis.
fn sample_axis(imp: &Importer, n: &NodeProto, axis: i64) -> Result<usize> {
    match resolve(imp, n, 0, axis)? {
        Axis::Batch => Err(unsupported(n, "an operation along the batch dimension")),
        Axis::Sample(a) => Ok(a),
    }
}

/// ONNX `Softmax` (before opset 13 over all axes from `axis` on, taken as one).
pub(super) fn softmax(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let x = imp.run(n, 0)?;
    let old = imp.opset < 13;
    let axis = sample_axis(imp, n, attr_i(n, "axis", if old { 1 } else { -1 }))?;
    let op = Opaque::Softmax {
        axis,
        through_last: old,
    };
    imp.push(n, Layer::Opaque(op), vec![x], vec![])?;
    Ok(())
}

/// ONNX `ArgMax` (the first maximum).
pub(super) fn argmax(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let x = imp.run(n, 0)?;
    if attr_i(n, "select_last_index", 0) != 0 {
        return Err(unsupported(n, "select_last_index = 1"));
    }
    let axis = sample_axis(imp, n, attr_i(n, "axis", 0))?;
    let keepdims = attr_i(n, "keepdims", 1) != 0;
    imp.push(
        n,
        Layer::Opaque(Opaque::ArgMax { axis, keepdims }),
        vec![x],
        vec![],
    )?;
    Ok(())
}

/// ONNX `OneHot` with a constant depth and constant values.
pub(super) fn one_hot(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let x = imp.run(n, 0)?;
    let depth = imp.constant(n, 1)?.values.first().copied().unwrap_or(0.0);
    if !(1.0..=(1u64 << 24) as f64).contains(&depth) {
        return Err(unsupported(n, format!("depth {depth}")));
    }
    let values = imp.constant(n, 2)?.values;
    let [off, on] = values[..] else {
        return Err(unsupported(n, "values must hold [off, on]"));
    };
    let (dims, batched) = operand(imp, n, 0)?;
    let rank = dims.len() + batched as usize + 1;
    let a = axis_index(n, attr_i(n, "axis", -1), rank)?;
    if batched && a == 0 {
        return Err(unsupported(n, "a new axis in front of the batch dimension"));
    }
    let op = Opaque::OneHot {
        depth: depth as usize,
        off,
        on,
        axis: a - batched as usize,
    };
    imp.push(n, Layer::Opaque(op), vec![x], vec![])?;
    Ok(())
}

/// ONNX `ConvTranspose` (2-D, one group, the same stride, padding and dilation on every side).
pub(super) fn conv_transpose(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let x = imp.run(n, 0)?;
    imp.need_batched(n, 0)?;
    let w = imp.constant(n, 1)?;
    if w.dims.len() != 4 || attr_i(n, "group", 1) != 1 {
        return Err(unsupported(
            n,
            format!(
                "only 2-D transposed convolutions of one group (weight {:?})",
                w.dims
            ),
        ));
    }
    if attr(n, "output_shape").is_some()
        || attr_s(n, "auto_pad").is_some_and(|p| p != "NOTSET" && !p.is_empty())
    {
        return Err(unsupported(
            n,
            "output_shape and auto_pad are not supported",
        ));
    }
    let uniform = |name: &str, default: i64| -> Result<usize> {
        let v = attr_ints(n, name).unwrap_or_else(|| vec![default]);
        match v.first() {
            Some(&f) if f >= 0 && v.iter().all(|&x| x == f) => Ok(f as usize),
            _ => Err(unsupported(
                n,
                format!("{name} {v:?} must be one non-negative value on every side"),
            )),
        }
    };
    let (stride, padding, output_padding, dilation) = (
        uniform("strides", 1)?,
        uniform("pads", 0)?,
        uniform("output_padding", 0)?,
        uniform("dilations", 1)?,
    );
    let co = w.dims[1];
    let bias = if Importer::has_input(n, 2) {
        imp.constant(n, 2)?.values
    } else {
        vec![0.0; co]
    };
    let weight = Tensor::from_vec(w.values.clone(), w.dims.as_slice(), &Device::Cpu)?;
    let bias = Tensor::from_vec(bias, co, &Device::Cpu).map_err(NnError::from)?;
    let op = Opaque::ConvTranspose {
        weight,
        bias,
        stride: stride.max(1),
        padding,
        output_padding,
        dilation: dilation.max(1),
    };
    imp.push(n, Layer::Opaque(op), vec![x], vec![])
        .map_err(|e| match e {
            NnError::InvalidLayer { reason, .. } => unsupported(n, reason),
            e => e,
        })?;
    Ok(())
}

/// The element-wise functions that run forward only.
pub(super) fn unary(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    let x = imp.run(n, 0)?;
    let op = match n.op_type.as_str() {
        "Abs" => UnaryOp::Abs,
        "Exp" => UnaryOp::Exp,
        "Log" => UnaryOp::Log,
        "Sqrt" => UnaryOp::Sqrt,
        "Floor" => UnaryOp::Floor,
        "Ceil" => UnaryOp::Ceil,
        "Sign" => UnaryOp::Sign,
        "LeakyRelu" => UnaryOp::LeakyRelu {
            alpha: attr(n, "alpha").map_or(0.01, |a| a.f as f64),
        },
        _ => {
            // Clip: limits as attributes before opset 11, optional inputs from then on.
            let limit = |i: usize, name: &str, default: f64| -> Result<f64> {
                if imp.opset >= 11 {
                    if Importer::has_input(n, i) {
                        return Ok(imp
                            .constant(n, i)?
                            .values
                            .first()
                            .copied()
                            .unwrap_or(default));
                    }
                    Ok(default)
                } else {
                    Ok(attr(n, name).map_or(default, |a| a.f as f64))
                }
            };
            UnaryOp::Clip {
                lo: limit(1, "min", f64::NEG_INFINITY)?,
                hi: limit(2, "max", f64::INFINITY)?,
            }
        }
    };
    imp.push(n, Layer::Opaque(Opaque::Unary(op)), vec![x], vec![])?;
    Ok(())
}

/// ONNX `Neg`: a multiplication by -1 (bounded like any constant operation).
pub(super) fn neg(imp: &mut Importer, _: usize, n: &NodeProto) -> Result<()> {
    if let Val::Const(_) = imp.get(n, 0)? {
        let c = imp.constant(n, 0)?;
        let int = is_int(&c);
        let values = c.values.iter().map(|v| -v).collect();
        imp.set_output(n, folded(values, c.dims, int));
        return Ok(());
    }
    let x = imp.run(n, 0)?;
    let c = Tensor::new(&[-1.0f64], &Device::Cpu)?;
    imp.push(
        n,
        Layer::Elementwise(Elementwise::new(ConstOp::Mul, c)?),
        vec![x],
        vec![],
    )?;
    Ok(())
}

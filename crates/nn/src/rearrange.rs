//! Layers that move, select or sum elements without weights: transposes, slices, gathers with
//! constant indices, constant padding, sums over axes, and concatenation.
//!
//! Every single-input one is a linear map with 0/1 coefficients plus a constant (the padding
//! value), so the verifier and the repair LPs bound them exactly through
//! [`Rearrange::sources`]. Axes are per-sample axes (the batch dimension is not counted).

use candle_core::{DType, Device, Tensor};

use crate::error::{check_axis, NnError, Result};

/// One axis of a [`Rearrange::Slice`]: elements `start, start + step, ...` (`len` of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceAxis {
    /// Per-sample axis.
    pub axis: usize,
    /// First index taken.
    pub start: usize,
    /// Step between taken indices (negative walks backwards).
    pub step: isize,
    /// How many indices are taken.
    pub len: usize,
}

/// A weight-free linear rearrangement of one input (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub enum Rearrange {
    /// Permutes the axes: output axis `i` is input axis `perm[i]`.
    Transpose(Vec<usize>),
    /// Takes a regular sub-range along one or more axes.
    Slice(Vec<SliceAxis>),
    /// Pads with a constant: `before[i]` / `after[i]` elements on each side of axis `i`.
    Pad {
        /// Elements added before each axis.
        before: Vec<usize>,
        /// Elements added after each axis.
        after: Vec<usize>,
        /// The padding value.
        value: f64,
    },
    /// Takes the listed indices along `axis`; without `keep_axis` (a scalar index) the axis
    /// disappears.
    Gather {
        /// Per-sample axis.
        axis: usize,
        /// Indices taken, in order (may repeat).
        indices: Vec<usize>,
        /// Whether the axis stays (a 1-D index list) or is dropped (one scalar index).
        keep_axis: bool,
    },
    /// Sums over the listed axes, keeping them as size-1 axes or dropping them.
    ReduceSum {
        /// Per-sample axes summed over (sorted, distinct).
        axes: Vec<usize>,
        /// Whether the summed axes stay with size 1.
        keepdims: bool,
    },
}

impl Rearrange {
    /// A short name of the operation.
    pub fn kind(&self) -> &'static str {
        match self {
            Rearrange::Transpose(_) => "Transpose",
            Rearrange::Slice(_) => "Slice",
            Rearrange::Pad { .. } => "Pad",
            Rearrange::Gather { .. } => "Gather",
            Rearrange::ReduceSum { .. } => "ReduceSum",
        }
    }

    /// The per-sample output shape for input shape `x`; `node` names the node in errors.
    pub fn output_shape(&self, node: &str, x: &[usize]) -> Result<Vec<usize>> {
        let axis_ok = |a: usize| check_axis(node, a, x.len(), x);
        match self {
            Rearrange::Transpose(perm) => {
                let mut seen = vec![false; x.len()];
                if perm.len() != x.len() || perm.iter().any(|&p| p >= x.len() || seen[p]) {
                    return Err(NnError::invalid_layer(
                        node,
                        format!("{perm:?} is not a permutation of the axes of {x:?}"),
                    ));
                }
                perm.iter().for_each(|&p| seen[p] = true);
                Ok(perm.iter().map(|&p| x[p]).collect())
            }
            Rearrange::Slice(axes) => {
                let mut out = x.to_vec();
                for s in axes {
                    axis_ok(s.axis)?;
                    let last = s.start as isize + s.step * (s.len as isize - 1);
                    if s.step == 0
                        || (s.len > 0
                            && (s.start >= x[s.axis] || last < 0 || last >= x[s.axis] as isize))
                    {
                        return Err(NnError::invalid_layer(
                            node,
                            format!(
                                "slice start {} step {} len {} leaves axis {} of size {}",
                                s.start, s.step, s.len, s.axis, x[s.axis]
                            ),
                        ));
                    }
                    out[s.axis] = s.len;
                }
                Ok(out)
            }
            Rearrange::Pad { before, after, .. } => {
                if before.len() != x.len() || after.len() != x.len() {
                    return Err(NnError::invalid_layer(
                        node,
                        format!("padding of {} axes for shape {x:?}", before.len()),
                    ));
                }
                Ok((0..x.len()).map(|i| x[i] + before[i] + after[i]).collect())
            }
            Rearrange::Gather {
                axis,
                indices,
                keep_axis,
            } => {
                axis_ok(*axis)?;
                if let Some(bad) = indices.iter().find(|&&i| i >= x[*axis]) {
                    return Err(NnError::invalid_layer(
                        node,
                        format!(
                            "index {bad} out of range for axis {axis} of size {}",
                            x[*axis]
                        ),
                    ));
                }
                let mut out = x.to_vec();
                if *keep_axis {
                    out[*axis] = indices.len();
                } else if indices.len() == 1 {
                    out.remove(*axis);
                } else {
                    return Err(NnError::invalid_layer(
                        node,
                        "a dropped axis takes one index",
                    ));
                }
                Ok(out)
            }
            Rearrange::ReduceSum { axes, keepdims } => {
                for &a in axes {
                    axis_ok(a)?;
                }
                Ok(x.iter()
                    .enumerate()
                    .filter_map(|(i, &d)| match (axes.contains(&i), keepdims) {
                        (false, _) => Some(d),
                        (true, true) => Some(1),
                        (true, false) => None,
                    })
                    .collect())
            }
        }
    }

    /// Applies the operation to a batch `[N, sample...]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Rearrange::Transpose(perm) => {
                let mut p = vec![0];
                p.extend(perm.iter().map(|&a| a + 1));
                x.permute(p)?.contiguous()?
            }
            Rearrange::Slice(axes) => {
                let mut y = x.clone();
                for s in axes {
                    let d = s.axis + 1;
                    y = if s.step == 1 {
                        y.narrow(d, s.start, s.len)?
                    } else {
                        let idx: Vec<u32> = (0..s.len)
                            .map(|k| (s.start as isize + s.step * k as isize) as u32)
                            .collect();
                        y.index_select(&Tensor::new(idx, x.device())?, d)?
                    };
                }
                y.contiguous()?
            }
            Rearrange::Pad {
                before,
                after,
                value,
            } => {
                let mut y = x.clone();
                let mut mask = x.ones_like()?;
                for (i, (&b, &a)) in before.iter().zip(after).enumerate() {
                    if b + a > 0 {
                        y = y.pad_with_zeros(i + 1, b, a)?;
                        mask = mask.pad_with_zeros(i + 1, b, a)?;
                    }
                }
                if *value == 0.0 {
                    y
                } else {
                    // y + value * (1 - mask): the value where the mask is 0.
                    (y + mask.affine(-value, *value)?)?
                }
            }
            Rearrange::Gather {
                axis,
                indices,
                keep_axis,
            } => {
                let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
                let y = x.index_select(&Tensor::new(idx, x.device())?, axis + 1)?;
                if *keep_axis {
                    y
                } else {
                    y.squeeze(axis + 1)?
                }
            }
            Rearrange::ReduceSum { axes, keepdims } => {
                let mut y = x.clone();
                for &a in axes.iter().rev() {
                    y = if *keepdims {
                        y.sum_keepdim(a + 1)?
                    } else {
                        y.sum(a + 1)?
                    };
                }
                y
            }
        })
    }

    /// The operation as a sparse linear map on flattened values: for every output element the
    /// flat input indices it sums, and its constant term (the padding value, else 0).
    pub fn sources(&self, x: &[usize]) -> Result<(Vec<Vec<u32>>, Vec<f64>)> {
        let numel: usize = x.iter().product();
        if let Rearrange::ReduceSum { axes, .. } = self {
            let out_len: usize = x
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .product();
            let mut rows = vec![Vec::new(); out_len];
            for flat in 0..numel {
                // The output index drops the summed axes from the input's multi-index.
                let (mut rest, mut out, mut stride) = (flat, 0, 1);
                for (i, &d) in x.iter().enumerate().rev() {
                    let k = rest % d;
                    rest /= d;
                    if !axes.contains(&i) {
                        out += k * stride;
                        stride *= d;
                    }
                }
                rows[out].push(flat as u32);
            }
            return Ok((rows, vec![0.0; out_len]));
        }
        // Every other operation copies elements: run it on the element indices (exact in f64)
        // with -1 as the padding value, so that padding cells are recognised.
        let marker = match self {
            Rearrange::Pad { before, after, .. } => Rearrange::Pad {
                before: before.clone(),
                after: after.clone(),
                value: -1.0,
            },
            other => other.clone(),
        };
        let mut dims = vec![1];
        dims.extend_from_slice(x);
        let ids = Tensor::arange(0u32, numel as u32, &Device::Cpu)?
            .to_dtype(DType::F64)?
            .reshape(dims)?;
        let out = marker.forward(&ids)?.flatten_all()?.to_vec1::<f64>()?;
        let fill = match self {
            Rearrange::Pad { value, .. } => *value,
            _ => 0.0,
        };
        Ok(out
            .into_iter()
            .map(|v| {
                if v < 0.0 {
                    (Vec::new(), fill)
                } else {
                    (vec![v as u32], 0.0)
                }
            })
            .unzip())
    }
}

/// Output shape of a concatenation of `inputs` along per-sample `axis`.
pub(crate) fn concat_shape(node: &str, axis: usize, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    let first = inputs
        .first()
        .ok_or_else(|| NnError::invalid_layer(node, "a concatenation needs inputs"))?;
    check_axis(node, axis, first.len(), first)?;
    let mut out = first.to_vec();
    for s in &inputs[1..] {
        let same_rest = s.len() == first.len()
            && s.iter()
                .zip(first.iter())
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !same_rest {
            return Err(NnError::ShapeMismatch {
                context: format!("operands of concatenation '{node}' (all axes but {axis})"),
                expected: first.to_vec(),
                got: s.to_vec(),
            });
        }
        out[axis] += s[axis];
    }
    Ok(out)
}

/// For a concatenation along per-sample `axis` of values of `shapes`: for every output element
/// (flat, row-major) the input it comes from and its flat index there.
pub(crate) fn concat_sources(axis: usize, shapes: &[&[usize]]) -> Vec<(usize, usize)> {
    let outer: usize = shapes
        .first()
        .map_or(0, |s| s[..axis.min(s.len())].iter().product());
    let mut out = Vec::new();
    for o in 0..outer {
        for (k, s) in shapes.iter().enumerate() {
            let inner: usize = s[axis.min(s.len())..].iter().product();
            out.extend((0..inner).map(|i| (k, o * inner + i)));
        }
    }
    out
}

//! Pooling and convolution as gathered windows.
//!
//! `[N, C, H, W]` is flattened to `[N, C, H*W + 1]` (the extra cell holds the padding value),
//! every window is gathered with one `index_select` into `[N, C, Ho, Wo, K]`, and then reduced.
//! This handles any kernel, stride and padding, and its gradient is exact: max pooling takes
//! the arg-max with `gather`, whose backward is a scatter-add into the chosen cell only (the
//! first maximum on ties, as PyTorch and onnxruntime do). candle's own `max_pool2d` gradient is
//! wrong (see DESIGN.md section 7), which is why it is not used.

use candle_core::{DType, Device, Tensor};

use crate::layer::Pool2d;

/// Flat input cell (`h * W + w`, or `H * W` for padding) of every window element, in
/// `[Ho, Wo, K]` order, plus the output size.
pub(crate) fn window_indices(p: &Pool2d, h: usize, w: usize) -> (Vec<u32>, [usize; 2]) {
    let [ho, wo] = p
        .output_hw(h, w)
        .expect("pool geometry checked at build time");
    let [kh, kw] = p.kernel;
    let mut idx = Vec::with_capacity(ho * wo * kh * kw);
    for oh in 0..ho {
        for ow in 0..wo {
            for i in 0..kh {
                for j in 0..kw {
                    let ih = (oh * p.stride[0] + i) as isize - p.padding[0] as isize;
                    let iw = (ow * p.stride[1] + j) as isize - p.padding[1] as isize;
                    let inside = ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < w;
                    idx.push(if inside {
                        (ih as usize * w + iw as usize) as u32
                    } else {
                        (h * w) as u32
                    });
                }
            }
        }
    }
    (idx, [ho, wo])
}

/// Gathers the windows of `x` (`[N, C, H, W]`) into `[N, C, Ho, Wo, K]`.
fn windows(x: &Tensor, p: &Pool2d, pad_value: f64) -> candle_core::Result<(Tensor, Vec<u32>)> {
    let (_, _, h, w) = x.dims4()?;
    let (idx, [ho, wo]) = window_indices(p, h, w);
    Ok((
        gather(x, &idx, [ho, wo], p.kernel[0] * p.kernel[1], pad_value)?,
        idx,
    ))
}

/// `x` (`[N, C, H, W]`) gathered at `idx` into `[N, C, Ho, Wo, K]`.
fn gather(
    x: &Tensor,
    idx: &[u32],
    [ho, wo]: [usize; 2],
    k: usize,
    pad_value: f64,
) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let pad = Tensor::full(pad_value, (n, c, 1), x.device())?.to_dtype(x.dtype())?;
    let flat = Tensor::cat(&[&x.reshape((n, c, h * w))?, &pad], 2)?;
    let ids = Tensor::from_slice(idx, idx.len(), &Device::Cpu)?;
    flat.index_select(&ids, 2)?.reshape((n, c, ho, wo, k))
}

/// Max pooling; padding cells are -inf.
pub(crate) fn max_pool(x: &Tensor, p: &Pool2d) -> candle_core::Result<Tensor> {
    let (win, _) = windows(x, p, f64::NEG_INFINITY)?;
    let arg = win.argmax_keepdim(4)?;
    win.gather(&arg, 4)?.squeeze(4)
}

/// Flat input cell (`h * W + w`) of the maximum of every output element, `[N, C, Ho, Wo]`.
pub(crate) fn max_pool_argmax(x: &Tensor, p: &Pool2d) -> candle_core::Result<Tensor> {
    let (win, idx) = windows(x, p, f64::NEG_INFINITY)?;
    let (n, c, ho, wo, k) = win.dims5()?;
    let arg = win
        .argmax_keepdim(4)?
        .squeeze(4)?
        .flatten_all()?
        .to_vec1::<u32>()?;
    let cells: Vec<u32> = arg
        .iter()
        .enumerate()
        .map(|(e, &a)| {
            let window = e % (ho * wo);
            idx[window * k + a as usize]
        })
        .collect();
    Tensor::from_vec(cells, (n, c, ho, wo), &Device::Cpu)
}

/// Average pooling; padding cells are zero and counted in the divisor only when
/// `count_include_pad` is set.
pub(crate) fn avg_pool(x: &Tensor, p: &Pool2d) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (win, idx) = windows(x, p, 0.0)?;
    let (_, _, ho, wo, k) = win.dims5()?;
    let sum = win.sum(4)?;
    if p.count_include_pad {
        return sum.affine(1.0 / k as f64, 0.0);
    }
    let pad = (h * w) as u32;
    let counts: Vec<f64> = idx
        .chunks(k)
        .map(|c| 1.0 / c.iter().filter(|&&i| i != pad).count().max(1) as f64)
        .collect();
    let inv = Tensor::from_vec(counts, (1, 1, ho, wo), &Device::Cpu)?.to_dtype(x.dtype())?;
    sum.broadcast_mul(&inv)
}

/// Checks that a dtype is one the forward pass supports.
pub(crate) fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64)
}

//! im2col / col2im as candle custom ops, so convolution is one big matmul with autograd.
//!
//! `Im2Col` turns `x` `[N, C, H, W]` into `cols` `[g, N*Ho*Wo, Cg*kH*kW]` (zero where a tap falls
//! in the padding); `Col2Im` is its adjoint (scatter-add back), used as the backward pass and
//! vice versa. Both are plain loops parallel over samples.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Geometry shared by both ops.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: [usize; 2],
    pub stride: usize,
    pub dilation: usize,
    /// `[top, left, bottom, right]` (only top/left matter: the output size is given).
    pub padding: [usize; 4],
    pub groups: usize,
    pub out: [usize; 2],
}

impl Geometry {
    fn cols_shape(&self) -> (usize, usize, usize) {
        let cg = self.c / self.groups;
        (
            self.groups,
            self.n * self.out[0] * self.out[1],
            cg * self.kernel[0] * self.kernel[1],
        )
    }

    /// For one (sample, group): every (column-matrix offset, input offset) pair that is not in
    /// the padding. The same table serves every sample and group, so the hot loops below are
    /// plain gathers.
    fn taps(&self) -> Vec<(u32, u32)> {
        let [kh, kw] = self.kernel;
        let [ho, wo] = self.out;
        let cg = self.c / self.groups;
        let ck = cg * kh * kw;
        let mut taps = Vec::with_capacity(ho * wo * ck);
        for oh in 0..ho {
            for ow in 0..wo {
                let row = oh * wo + ow;
                for ci in 0..cg {
                    for i in 0..kh {
                        let ih = (oh * self.stride + i * self.dilation) as isize
                            - self.padding[0] as isize;
                        if ih < 0 || ih as usize >= self.h {
                            continue;
                        }
                        for j in 0..kw {
                            let iw = (ow * self.stride + j * self.dilation) as isize
                                - self.padding[1] as isize;
                            if iw < 0 || iw as usize >= self.w {
                                continue;
                            }
                            let col = (ci * kh + i) * kw + j;
                            let inp = (ci * self.h + ih as usize) * self.w + iw as usize;
                            taps.push(((row * ck + col) as u32, inp as u32));
                        }
                    }
                }
            }
        }
        taps
    }

    fn im2col<T: Copy + Default + Send + Sync>(&self, x: &[T]) -> Vec<T> {
        let (g, _, ck) = self.cols_shape();
        let per = self.out[0] * self.out[1] * ck;
        let plane = (self.c / g) * self.h * self.w;
        let taps = self.taps();
        let mut cols = vec![T::default(); g * self.n * per];
        cols.par_chunks_mut(per)
            .enumerate()
            .for_each(|(gn, block)| {
                let (gi, n) = (gn / self.n, gn % self.n);
                let src = &x[n * self.c * self.h * self.w + gi * plane..][..plane];
                for &(d, s) in &taps {
                    block[d as usize] = src[s as usize];
                }
            });
        cols
    }

    fn col2im<T: Copy + Default + Send + Sync + std::ops::AddAssign>(&self, cols: &[T]) -> Vec<T> {
        let (g, _, ck) = self.cols_shape();
        let per = self.out[0] * self.out[1] * ck;
        let plane = (self.c / g) * self.h * self.w;
        let taps = self.taps();
        let mut x = vec![T::default(); self.n * self.c * self.h * self.w];
        x.par_chunks_mut(self.c * self.h * self.w)
            .enumerate()
            .for_each(|(n, sample)| {
                for gi in 0..g {
                    let block = &cols[(gi * self.n + n) * per..][..per];
                    let dst = &mut sample[gi * plane..][..plane];
                    for &(d, s) in &taps {
                        dst[s as usize] += block[d as usize];
                    }
                }
            });
        x
    }
}

fn contiguous<'a, T>(data: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("im2col expects a contiguous tensor"),
    }
}

/// `[N, C, H, W]` -> `[g, N*Ho*Wo, Cg*K]`.
pub(crate) struct Im2Col(pub Geometry);
/// `[g, N*Ho*Wo, Cg*K]` -> `[N, C, H, W]` (adjoint of [`Im2Col`]).
pub(crate) struct Col2Im(pub Geometry);

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(g.im2col(contiguous(v, l)?)),
            CpuStorage::F64(v) => CpuStorage::F64(g.im2col(contiguous(v, l)?)),
            _ => candle_core::bail!("im2col supports f32 and f64, got {:?}", s.dtype()),
        };
        Ok((out, Shape::from(g.cols_shape())))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Col2Im(self.0))?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(g.col2im(contiguous(v, l)?)),
            CpuStorage::F64(v) => CpuStorage::F64(g.col2im(contiguous(v, l)?)),
            _ => candle_core::bail!("col2im supports f32 and f64, got {:?}", s.dtype()),
        };
        Ok((out, Shape::from((g.n, g.c, g.h, g.w))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Im2Col(self.0))?))
    }
}

/// 2-D convolution without bias: im2col of the whole batch, then one batched matmul over the
/// groups. `x` is `[N, C, H, W]`, `weight` `[Co, C / groups, kH, kW]`, the output
/// `[N, Co, Ho, Wo]`.
pub(crate) fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    dilation: usize,
    padding: [usize; 4],
    groups: usize,
    out: [usize; 2],
) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (co, cg, kh, kw) = weight.dims4()?;
    let geo = Geometry {
        n,
        c,
        h,
        w,
        kernel: [kh, kw],
        stride,
        dilation,
        padding,
        groups,
        out,
    };
    let cols = x.contiguous()?.apply_op1(Im2Col(geo))?;
    let kernel = weight
        .reshape((groups, co / groups, cg * kh * kw))?
        .transpose(1, 2)?
        .contiguous()?;
    let [ho, wo] = out;
    cols.matmul(&kernel)?
        .reshape((groups, n, ho * wo, co / groups))?
        .permute((1, 0, 3, 2))?
        .contiguous()?
        .reshape((n, co, ho, wo))
}

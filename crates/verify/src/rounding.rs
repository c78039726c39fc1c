//! Outward rounding.
//!
//! Interval end points are computed in f64 round-to-nearest and then pushed outward by a bound
//! on the accumulated rounding error. For a sum of `n` products the standard a-priori bound is
//! `|fl(s) - s| <= gamma(n) * sum |terms|` with `gamma(n) = n u / (1 - n u)`, `u = 2^-53`
//! (Higham, Accuracy and Stability of Numerical Algorithms, 3.1). Library functions (`tanh`,
//! `exp`) are assumed accurate to a few ulps and widened by [`LIBM_ULPS`] ulps. Parameters are
//! taken as the exact f64 values stored in the IR; f32 files are widened exactly to f64.

/// Unit roundoff of f64.
pub const U: f64 = f64::EPSILON / 2.0;

/// Ulps of slack allowed for transcendental functions.
pub const LIBM_ULPS: f64 = 8.0;

/// `gamma(n) = n u / (1 - n u)`.
pub fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// `x - err`, rounded down.
pub fn down(x: f64, err: f64) -> f64 {
    (x - err).next_down()
}

/// `x + err`, rounded up.
pub fn up(x: f64, err: f64) -> f64 {
    (x + err).next_up()
}

/// A value `f(x)` of a library function, moved down by [`LIBM_ULPS`] ulps.
pub fn libm_down(v: f64) -> f64 {
    down(v, LIBM_ULPS * U * 2.0 * v.abs())
}

/// A value `f(x)` of a library function, moved up by [`LIBM_ULPS`] ulps.
pub fn libm_up(v: f64) -> f64 {
    up(v, LIBM_ULPS * U * 2.0 * v.abs())
}

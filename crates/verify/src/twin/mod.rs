//! Twin-network bounds: how much a network's values can change between an input `x` and a
//! perturbed copy `x + dx`, for global robustness and individual fairness (seed 002).
//!
//! The network must be a chain of affine maps (Linear, Conv, AvgPool, BatchNorm, constant
//! ops), ReLUs, Flatten and Reshape, turned into a [`Chain`] of dense f64 maps. For a region of
//! `x` (an *area*), the region of `x + dx` (its *twin*) and the box of `dx`, the difference
//! `d = v(x + dx) - v(x)` of every value `v` is bounded by back-substitution in terms of `dx`
//! alone, ITNE-style without the interleaving of `x`:
//! - an affine map sends `d` to `W d` (the bias cancels);
//! - a ReLU sends `d` to `s d` for some slope `s` in `[0, 1]` (mean value theorem); with `[l, u]`
//!   the bounds of `d` that is the triangle `u (d - l) / (u - l)` above and
//!   `-l (d - u) / (u - l)` below, replaced by the tighter `0` or `d` when one copy's
//!   pre-activation is stably active or inactive (bounds of both copies from
//!   [`linear_bounds`]) and by `d` exactly when both copies are stably active.
//!
//! Rounding: every back-substitution step adds `gamma(n) * |Λ| |W| max|d|` to the row's
//! constant and the final concretisation is rounded outward, as in [`crate::crown`].
//!
//! [`variation_bound`] bounds `sup ||f(x + dx) - f(x)||_inf` over a whole region by best-first
//! input splitting (the *VB* metric); [`pgd_variation`] searches for large variations from
//! sample points (*PGD-B*, *PGD-R*).

mod bounds;
mod chain;
mod variation;

pub use bounds::{
    area_variation, property_twin_bounds, property_twin_pieces, twin_bounds, LinearDiff, TwinBounds,
};
pub use chain::Chain;
pub use variation::{
    jacobian_norm, pgd_variation, uniform_points, variation_bound, SplitOptions, VariationAttack,
    VariationBound, VariationReport,
};

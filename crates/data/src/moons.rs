//! `make_moons`: two interleaving half circles with Gaussian noise, as scikit-learn's.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// `n` points in 2-D: class 0 on the upper half circle of radius 1 around (0, 0), class 1 on
/// the lower half circle around (1, 0.5); shuffled, then Gaussian noise of standard deviation
/// `noise` is added to both coordinates. Same construction as scikit-learn's `make_moons`
/// (the random stream differs).
///
/// ```
/// let d = netrepair_data::make_moons(100, 0.0, 3).unwrap();
/// assert_eq!(d.class_counts(), vec![50, 50]);
/// // Without noise every class-0 point lies on the unit circle.
/// for i in 0..d.len() {
///     let p = d.sample(i);
///     if d.labels[i] == 0 {
///         assert!(((p[0] * p[0] + p[1] * p[1]).sqrt() - 1.0).abs() < 1e-5);
///     }
/// }
/// ```
pub fn make_moons(n: usize, noise: f64, seed: u64) -> Result<Dataset> {
    if n < 2 || noise.is_nan() || noise < 0.0 {
        return Err(DataError::Invalid(format!(
            "make_moons needs n >= 2 and noise >= 0, got n = {n}, noise = {noise}"
        )));
    }
    let n_out = n / 2;
    let n_in = n - n_out;
    let lin = |k: usize, i: usize| {
        if k > 1 {
            std::f64::consts::PI * i as f64 / (k - 1) as f64
        } else {
            0.0
        }
    };
    let mut points: Vec<([f64; 2], u32)> = Vec::with_capacity(n);
    points.extend((0..n_out).map(|i| ([lin(n_out, i).cos(), lin(n_out, i).sin()], 0)));
    points.extend((0..n_in).map(|i| {
        (
            [1.0 - lin(n_in, i).cos(), 1.0 - lin(n_in, i).sin() - 0.5],
            1,
        )
    }));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    points.shuffle(&mut rng);
    let normal = Normal::new(0.0, noise.max(f64::MIN_POSITIVE)).expect("valid normal");
    let mut inputs = Vec::with_capacity(2 * n);
    for (p, _) in &points {
        for c in p {
            let e = if noise > 0.0 {
                normal.sample(&mut rng)
            } else {
                0.0
            };
            inputs.push((c + e) as f32);
        }
    }
    let labels = points.iter().map(|(_, l)| *l).collect();
    let mut d = Dataset::new(
        "moons",
        inputs,
        vec![2],
        labels,
        vec!["upper".into(), "lower".into()],
    )?;
    d.feature_names = vec!["x".into(), "y".into()];
    Ok(d)
}

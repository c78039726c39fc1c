//! Seeded splits of a data set into disjoint parts.

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{DataError, Result};

/// Shuffles `0..n` with `seed` and cuts it into consecutive parts of the given sizes (e.g.
/// `[45000, 5000, 5000, 5000]` for seed 001's train / validation / repair pool / test split of
/// MNIST's 60k training images). The parts are disjoint; sizes may sum to less than `n`.
///
/// ```
/// let parts = netrepair_data::split_indices(10, &[6, 2, 2], 1).unwrap();
/// assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![6, 2, 2]);
/// let mut all: Vec<usize> = parts.concat();
/// all.sort();
/// assert_eq!(all, (0..10).collect::<Vec<_>>());
/// ```
pub fn split_indices(n: usize, sizes: &[usize], seed: u64) -> Result<Vec<Vec<usize>>> {
    let total: usize = sizes.iter().sum();
    if total > n {
        return Err(DataError::Invalid(format!(
            "split sizes {sizes:?} add up to {total}, more than the {n} samples"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let mut parts = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for &s in sizes {
        parts.push(order[start..start + s].to_vec());
        start += s;
    }
    Ok(parts)
}

/// Shuffles `0..n` and cuts it into parts proportional to `fractions` (the last part takes the
/// rounding remainder).
pub fn split_fractions(n: usize, fractions: &[f64], seed: u64) -> Result<Vec<Vec<usize>>> {
    let sum: f64 = fractions.iter().sum();
    if fractions.is_empty() || fractions.iter().any(|&f| f < 0.0) || (sum - 1.0).abs() > 1e-9 {
        return Err(DataError::Invalid(format!(
            "split fractions {fractions:?} must be non-negative and sum to 1"
        )));
    }
    let mut sizes: Vec<usize> = fractions
        .iter()
        .map(|f| (f * n as f64).floor() as usize)
        .collect();
    let used: usize = sizes[..sizes.len() - 1].iter().sum();
    *sizes.last_mut().expect("non-empty") = n - used;
    split_indices(n, &sizes, seed)
}

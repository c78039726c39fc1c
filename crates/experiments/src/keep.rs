//! Drawing a keep set from a data split: correctly classified samples, balanced over the
//! classes, in a seeded order, and a validation slice disjoint from them. What
//! `netrepair repair` draws by default and what the benchmarks keep.

use anyhow::Result;
use netrepair_data::Dataset;
use netrepair_nn::Network;
use netrepair_repair::LabelledSet;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::training::tensors;

/// A drawn keep set and its validation slice.
#[derive(Debug, Clone, Default)]
pub struct Drawn {
    /// Correctly classified samples, `size / classes` per class (the first classes one more).
    pub keep: LabelledSet,
    /// The first `validation` samples of the order, right or wrong.
    pub validation: LabelledSet,
    /// Indices into the data set of the kept samples.
    pub keep_indices: Vec<usize>,
}

/// Samples of a data set as a labelled set.
pub fn labelled(data: &Dataset, idx: &[usize]) -> LabelledSet {
    LabelledSet {
        inputs: idx
            .iter()
            .map(|&i| data.sample(i).iter().map(|&v| f64::from(v)).collect())
            .collect(),
        labels: idx.iter().map(|&i| data.labels[i] as usize).collect(),
    }
}

/// Draws from `data` in the order a `seed`ed shuffle gives: `size` samples `net` classifies
/// correctly from the front, balanced over the classes, and a validation slice of up to
/// `validation` samples (at most half the split) from the back, so the keep set does not
/// depend on the slice's size. Predicts in chunks and stops once the quotas are full, so
/// large training splits are not scanned whole.
pub fn draw_keep(
    net: &Network,
    data: &Dataset,
    size: usize,
    validation: usize,
    seed: u64,
) -> Result<Drawn> {
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let classes = net.output_len();
    let quota = |c: usize| size / classes + usize::from(c < size % classes);
    let nval = validation.min(order.len() / 2);
    let (front, back) = order.split_at(order.len() - nval);
    let mut taken = vec![0usize; classes];
    let mut kept = Vec::new();
    for chunk in front.chunks(500) {
        if kept.len() >= size {
            break;
        }
        let (x, y) = tensors(net, &data.subset(chunk)?)?;
        let pred = net.predict(&x)?;
        for (k, &i) in chunk.iter().enumerate() {
            let c = y[k] as usize;
            if c < classes && pred[k] == y[k] && taken[c] < quota(c) {
                taken[c] += 1;
                kept.push(i);
            }
        }
    }
    Ok(Drawn {
        keep: labelled(data, &kept),
        validation: labelled(data, back),
        keep_indices: kept,
    })
}

/// For each of `points`, the `k` nearest samples of `data` (Euclidean distance on the input)
/// that `net` classifies correctly: the inputs a repair of `points` is most likely to flip.
/// Samples equal to a point are skipped; each sample is taken once.
pub fn nearest_correct(
    net: &Network,
    data: &Dataset,
    points: &[Vec<f64>],
    k: usize,
) -> Result<LabelledSet> {
    if k == 0 || points.is_empty() {
        return Ok(LabelledSet::default());
    }
    let n = data.len();
    let mut right = vec![false; n];
    for start in (0..n).step_by(2000) {
        let idx: Vec<usize> = (start..(start + 2000).min(n)).collect();
        let (x, y) = tensors(net, &data.subset(&idx)?)?;
        for (j, p) in net.predict(&x)?.into_iter().enumerate() {
            right[idx[j]] = p == y[j];
        }
    }
    let mut taken = vec![false; n];
    let mut out = Vec::new();
    for p in points {
        let mut d: Vec<(f64, usize)> = (0..n)
            .filter(|&i| right[i])
            .map(|i| {
                let s: f64 = data
                    .sample(i)
                    .iter()
                    .zip(p)
                    .map(|(&a, &b)| (f64::from(a) - b).powi(2))
                    .sum();
                (s, i)
            })
            .filter(|&(s, _)| s > 0.0)
            .collect();
        let kk = k.min(d.len());
        if kk == 0 {
            continue;
        }
        d.select_nth_unstable_by(kk - 1, |a, b| a.0.total_cmp(&b.0));
        for &(_, i) in &d[..kk] {
            if !taken[i] {
                taken[i] = true;
                out.push(i);
            }
        }
    }
    Ok(labelled(data, &out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
    use netrepair_nn::{Layer, Linear, NetworkBuilder};

    #[test]
    fn draws_only_correct_samples_balanced_and_disjoint_from_validation() {
        // y = x: class 1 wins when x1 > x0.
        let mut b = NetworkBuilder::new(vec![2]);
        let w = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 1.0], (2, 2), &Device::Cpu).unwrap();
        let bias = Tensor::from_vec(vec![0.0f64, 0.0], 2, &Device::Cpu).unwrap();
        b.push("id", Layer::Linear(Linear::new("id", w, bias).unwrap()))
            .unwrap();
        let net = b.build().unwrap();
        let mut inputs = Vec::new();
        let mut labels = Vec::new();
        for i in 0..40 {
            let c = i % 2;
            // Every fourth sample is labelled against the network's prediction.
            let wrong = i % 4 == 3;
            let (a, b) = if c == 0 { (1.0, 0.0) } else { (0.0, 1.0) };
            inputs.extend([a + i as f32 * 1e-3, b]);
            labels.push(if wrong { 1 - c as u32 } else { c as u32 });
        }
        let data =
            Dataset::new("toy", inputs, vec![2], labels, vec!["a".into(), "b".into()]).unwrap();
        let d = draw_keep(&net, &data, 6, 10, 3).unwrap();
        // The slice's size does not move the keep set.
        assert_eq!(
            draw_keep(&net, &data, 6, 4, 3).unwrap().keep_indices,
            d.keep_indices
        );
        assert_eq!(d.keep.len(), 6);
        assert_eq!(d.validation.len(), 10);
        assert_eq!(d.keep.labels.iter().filter(|&&c| c == 0).count(), 3);
        for (x, &c) in d.keep.inputs.iter().zip(&d.keep.labels) {
            let pred = usize::from(x[1] > x[0]);
            assert_eq!(pred, c, "a kept sample must be classified correctly");
            assert!(
                !d.validation.inputs.contains(x),
                "keep and validation overlap"
            );
        }
    }
}

//! The in-memory data set type shared by every loader.

use crate::error::{DataError, Result};

/// Labelled samples stored row-major in f32: sample `i` is
/// `inputs[i * sample_len .. (i + 1) * sample_len]` with shape `sample_shape` (images are
/// `[C, H, W]` with values in [0, 1]; tabular rows are `[features]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// A short name ("mnist-test", "german", ...).
    pub name: String,
    /// All samples, row-major.
    pub inputs: Vec<f32>,
    /// Shape of one sample.
    pub sample_shape: Vec<usize>,
    /// Class label per sample.
    pub labels: Vec<u32>,
    /// Class names (their count is the number of classes).
    pub class_names: Vec<String>,
    /// Feature names for tabular data (empty for images).
    pub feature_names: Vec<String>,
}

impl Dataset {
    /// Builds a data set, checking that sizes agree and labels are in range.
    pub fn new(
        name: impl Into<String>,
        inputs: Vec<f32>,
        sample_shape: Vec<usize>,
        labels: Vec<u32>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let len: usize = sample_shape.iter().product();
        if len == 0 || inputs.len() != len * labels.len() {
            return Err(DataError::Invalid(format!(
                "{} values do not make {} samples of shape {:?}",
                inputs.len(),
                labels.len(),
                sample_shape
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= class_names.len()) {
            return Err(DataError::Invalid(format!(
                "label {bad} out of range for {} classes",
                class_names.len()
            )));
        }
        Ok(Self {
            name: name.into(),
            inputs,
            sample_shape,
            labels,
            class_names,
            feature_names: Vec::new(),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Scalars per sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Sample `i`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let l = self.sample_len();
        &self.inputs[i * l..(i + 1) * l]
    }

    /// The samples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::Invalid(format!(
                "index {bad} out of range for {} samples",
                self.len()
            )));
        }
        let mut inputs = Vec::with_capacity(indices.len() * self.sample_len());
        for &i in indices {
            inputs.extend_from_slice(self.sample(i));
        }
        Ok(Self {
            inputs,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..self.clone_meta()
        })
    }

    fn clone_meta(&self) -> Self {
        Self {
            name: self.name.clone(),
            inputs: Vec::new(),
            sample_shape: self.sample_shape.clone(),
            labels: Vec::new(),
            class_names: self.class_names.clone(),
            feature_names: self.feature_names.clone(),
        }
    }

    /// Samples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.num_classes()];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }

    /// Index of a named feature (tabular data).
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.feature_names.iter().position(|f| f == name)
    }

    /// Per-channel `(x - mean[c]) / std[c]` for `[C, ...]` samples (one value each: all
    /// features alike).
    pub fn normalize(&mut self, mean: &[f32], std: &[f32]) -> Result<()> {
        let channels = if mean.len() == 1 {
            1
        } else {
            self.sample_shape[0]
        };
        if mean.len() != std.len()
            || (mean.len() != 1 && mean.len() != channels)
            || std.iter().any(|&s| s <= 0.0)
        {
            return Err(DataError::Invalid(format!(
                "normalisation needs one positive std per channel ({channels}), got mean {mean:?} std {std:?}"
            )));
        }
        let len = self.sample_len();
        let per_channel = len / channels;
        for (k, v) in self.inputs.iter_mut().enumerate() {
            let c = if mean.len() == 1 {
                0
            } else {
                (k % len) / per_channel
            };
            *v = (*v - mean[c]) / std[c];
        }
        Ok(())
    }

    /// Per-feature minimum and maximum (tabular data).
    pub fn feature_ranges(&self) -> Vec<(f32, f32)> {
        let l = self.sample_len();
        let mut r = vec![(f32::INFINITY, f32::NEG_INFINITY); l];
        for row in self.inputs.chunks(l) {
            for (j, &v) in row.iter().enumerate() {
                r[j] = (r[j].0.min(v), r[j].1.max(v));
            }
        }
        r
    }

    /// Scales every feature to [0, 1] with the given ranges (constant features become 0).
    pub fn scale_min_max(&mut self, ranges: &[(f32, f32)]) -> Result<()> {
        let l = self.sample_len();
        if ranges.len() != l {
            return Err(DataError::Invalid(format!(
                "{} ranges for {l} features",
                ranges.len()
            )));
        }
        for row in self.inputs.chunks_mut(l) {
            for (v, &(lo, hi)) in row.iter_mut().zip(ranges) {
                *v = if hi > lo {
                    ((*v - lo) / (hi - lo)).clamp(0.0, 1.0)
                } else {
                    0.0
                };
            }
        }
        Ok(())
    }
}

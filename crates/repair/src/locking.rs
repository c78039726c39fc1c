//! Which parameters a gradient repair may move in each step (I-REPAIR's influence mask,
//! random locking, or none), and the loss the influence mask is measured with.

use serde::Serialize;

/// The loss whose gradient measures a parameter's influence on the correct set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorrectLoss {
    /// Mean over the set of `sum_i |y_i|` (the paper's choice: large for every parameter that
    /// moves the output, so those get locked).
    Magnitude,
    /// Cross-entropy against the labels.
    CrossEntropy,
}

/// Which parameters may move in each step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Locking {
    /// Every parameter moves (fine-tuning / retraining on the available data).
    Nothing,
    /// I-REPAIR's influence mask.
    Influence {
        /// Weight of the correct set's influence (`>= 0`; 0 makes this plain fine-tuning).
        gamma: f64,
        /// The correct-set influence loss.
        correct_loss: CorrectLoss,
    },
    /// Each parameter is frozen with probability `p` in each step.
    Random {
        /// Locking probability in `[0, 1]`.
        p: f64,
    },
}

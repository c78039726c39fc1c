//! What must hold: input boxes, linear constraints on outputs, and VNN-LIB properties.
//!
//! A VNN-LIB file states an **unsafe** condition; the property holds when no input of the box
//! reaches it. [`parse_vnnlib`] turns a file into a [`Property`]: a list of [`Case`]s, each an
//! input box with the unsafe output regions (a union of polytopes) to exclude over it.
//!
//! ```
//! let text = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n\
//!             (assert (>= X_0 -1.0))\n(assert (<= X_0 1.0))\n(assert (<= Y_0 Y_1))";
//! let p = netrepair_spec::parse_vnnlib(text).unwrap();
//! assert_eq!((p.num_inputs, p.num_outputs), (1, 2));
//! let case = &p.cases[0];
//! assert_eq!((case.input.lower.clone(), case.input.upper.clone()), (vec![-1.0], vec![1.0]));
//! // Unsafe when y0 - y1 <= 0.
//! assert!(case.is_unsafe_output(&[0.0, 1.0]));
//! assert!(!case.is_unsafe_output(&[2.0, 1.0]));
//! ```
#![deny(missing_docs)]

mod error;
mod global;
mod instances;
mod property;
mod sexpr;
mod vnnlib;
mod write;

pub use error::{Result, SpecError};
pub use global::{GlobalProperty, OutputMeasure, Perturbation};
pub use instances::{locate, read_instances, Instance, InstanceList};
pub use property::{BoxRegion, Case, LinearConstraint, Polytope, Property};
pub use vnnlib::{parse_vnnlib, read_vnnlib};
pub use write::write_vnnlib;

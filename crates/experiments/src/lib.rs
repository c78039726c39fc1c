//! Experiments and benchmarks of netrepair: model presets the project trains, forward-pass
//! throughput against onnxruntime, and (as later layers land) the seeds' tables.
#![deny(missing_docs)]

pub mod acas_bench;
pub mod cli;
pub mod corrupt;
pub mod forward_bench;
pub mod fuzz;
pub mod informed_bench;
pub mod irepair_bench;
pub mod keep;
pub mod lp_bench;
pub mod plot;
pub mod reglo_bench;
pub mod repair_bench;
pub mod robust_bench;
pub mod training;

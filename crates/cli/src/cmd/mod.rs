//! One module per subcommand.

pub mod analyze;
pub mod bench;
pub mod bench_informed;
pub mod bench_irepair;
pub mod bench_reglo;
pub mod certificate;
pub mod demo;
pub mod eval;
pub mod forward;
pub mod global;
pub mod inspect;
pub mod keep;
pub mod points;
pub mod repair;
pub mod train;
pub mod verify;

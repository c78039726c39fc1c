//! One module per subcommand.

pub mod analyze;
pub mod eval;
pub mod forward;
pub mod global;
pub mod inspect;
pub mod keep;
pub mod points;
pub mod repair;
pub mod train;
pub mod verify;

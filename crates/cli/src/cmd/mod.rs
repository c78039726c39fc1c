//! One module per subcommand.

pub mod analyze;
pub mod eval;
pub mod forward;
pub mod inspect;
pub mod repair;
pub mod train;
pub mod verify;

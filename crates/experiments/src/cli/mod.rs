//! The `netrepair bench` subcommands: each scenario's arguments (clap) and the code that runs
//! it and prints its table. The binary only mounts [`bench::BenchArgs`] and calls
//! [`bench::run`].

pub mod args;
pub mod bench;
mod bench_informed;
mod bench_irepair;
mod bench_reglo;

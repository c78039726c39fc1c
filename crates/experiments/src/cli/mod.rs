//! The scenario subcommands of `netrepair`: `bench` (each benchmark's arguments, clap, and the
//! code that runs it and prints its table) and `demo` (the end-to-end showcase). The binary
//! only mounts [`bench::BenchArgs`] and [`demo::DemoArgs`] and calls their `run`.

pub mod args;
pub mod bench;
mod bench_informed;
mod bench_irepair;
mod bench_reglo;
pub mod demo;
pub mod global;
pub mod keep;
pub mod methods;
pub mod points;

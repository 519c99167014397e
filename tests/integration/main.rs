//! One integration-test binary: every test runs the built `domuify` or the library
//! against images made by `scripts/`, judged by independent tools.

mod blockdev;
mod config;
mod convert;
mod convert_crash;
mod dirs;
mod engine;
mod engine_bench;
mod engine_crash;
mod engine_fuzz;
mod engine_matrix;
mod engine_prop;
mod engine_trust;
mod features;
mod files;
mod fixtures;
mod fstab;
mod guest_stream;
mod habits;
mod harden;
mod harness;
mod hibernation;
mod inspect;
mod kernels;
mod lock;
mod matrix;
mod model;
mod modules;
mod probe_fuzz;
mod undo;

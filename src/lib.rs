//! domuify: turn an operating system installed on a disk (a raw image file or a
//! block device) into a Xen guest (domU), offline: no mount, no root for image
//! files, no VM, no external program at run time.
//!
//! The entry points are re-exported here: [`inspect()`] reads a whole disk into a
//! [`Report`] (any [`ReadAt`] device: a [`Disk`], an undo log, bytes in memory);
//! every diagnostic is a [`Finding`]; a write goes through one [`Writer`]; the
//! plans ([`FstabPlan`], [`ConfigPlan`], [`ModulesPlan`]) are data, carried out by
//! their apply steps; errors are one [`Error`] with a [`kind`](Error::kind).
//!
//! Layers, bottom up (README's Architecture section has the whole map):
//! - [`disk`]: image files and block devices, positional I/O, partition windows;
//! - [`part`]: MBR/GPT/none, normalised into one [`part::Partition`];
//! - [`probe`]: filesystem identification by signatures;
//! - the ext engine (ext2/3/4 read and write in place), reached through
//!   [`Writer`];
//! - [`guest`]: the installed system as the planners see it (fstab, kernels,
//!   module trees, OS release), read through ext4-view;
//! - [`inspect`](mod@inspect): the whole-disk report behind `domuify inspect`,
//!   with [`hibernation`] (what a hibernation image freezes) and [`hash`]
//!   (one-pass image and partition hashes);
//! - [`kernel`]: can a kernel boot as a domU (config, image, initramfs, memory),
//!   and kernel extraction, behind `domuify kernels`;
//! - [`plan`]: plans (the device map, the fstab rewrite) as data, and their
//!   apply step, the only planner code that writes; [`domu`] and [`xlcfg`] (the
//!   domU config plan and its text), [`modules`] (installing a module tree);
//! - [`writer`]: one write transaction (lock, mount check, one [`undo`] log,
//!   commit);
//! - the command line is the binary's: `src/main.rs` only calls it.
//!
//! The modules `ext`, `copy` and `testing` are public for the integration tests
//! and the fuzz target only (hidden from these docs): not an API.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batch;
mod bytes;
mod cli;
pub mod convert;
#[doc(hidden)]
pub mod copy;
pub mod disk;
pub mod domu;
mod error;
#[doc(hidden)]
pub mod ext;
mod fault;
pub mod finding;
pub mod guest;
pub mod hash;
pub mod hibernation;
pub mod inspect;
pub mod kernel;
pub mod modules;
pub mod part;
pub mod plan;
pub mod probe;
pub mod undo;
pub mod writer;
pub mod xlcfg;

pub use disk::{Access, Disk, ReadAt, WriteAt};
pub use domu::ConfigPlan;
pub use error::{Error, ErrorKind, Result};
pub use finding::{Finding, Severity};
pub use inspect::{inspect, Report};
pub use modules::ModulesPlan;
pub use plan::FstabPlan;
pub use writer::Writer;

/// The `domuify` command line, as `src/main.rs` runs it: parse, run, print the
/// error chain, map it to the exit code. Not an API.
#[doc(hidden)]
pub fn cli_main() -> std::process::ExitCode {
    cli::main()
}

/// Test-only devices, for the integration tests. Not an API.
#[doc(hidden)]
pub mod testing {
    pub use crate::fault::{FailAfter, FaultDev};
}

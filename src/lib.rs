//! domuify: turn an operating system installed on a disk (a raw image file or a
//! block device) into a Xen guest (domU), offline: no mount, no root for image
//! files, no VM, no external program at run time.
//!
//! Layers, bottom up:
//! - [`disk`]: image files and block devices, positional I/O, partition windows;
//! - [`part`]: MBR/GPT/none, normalised into one [`part::Partition`];
//! - [`probe`]: filesystem identification by signatures;
//! - [`ext`]: our ext2/3/4 engine (read and write in place, with undo);
//! - [`guest`]: the installed system as the planners see it (fstab, kernels,
//!   module trees, OS release), read through ext4-view;
//! - [`inspect`]: the whole-disk report behind `domuify inspect`, with
//!   [`hash`] (one-pass image and partition hashes) and [`batch`] (many images
//!   on bounded threads, in order);
//! - [`domu`]: the domU config plan (device map, boot, memory) and split files;
//! - [`modules`]: installing a host module tree into the guest (plan, apply);
//! - [`xlcfg`]: the domU config text (xl and legacy xm forms), pure;
//! - [`kernel`]: can a kernel boot as a domU (config, image, initramfs, memory),
//!   and kernel extraction, behind `domuify kernels`;
//! - [`plan`]: plans (the device map, the fstab rewrite) as data, and their
//!   apply step, the only planner code that writes;
//! - [`cli`]: the command line; `main.rs` only calls it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;
mod bytes;
pub mod cli;
pub mod convert;
pub mod copy;
pub mod disk;
pub mod domu;
pub mod error;
pub mod ext;
pub mod fault;
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

pub use error::{Error, ErrorKind, Result};

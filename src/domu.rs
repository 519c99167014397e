//! The domU config plan behind `domuify config` (and, later, `convert`): from
//! what inspecting the image found and the user's choices, the [`DomuConfig`]
//! that [`crate::xlcfg`] turns into text, the split partition files to write,
//! and the defaults taken with their reasons.
//!
//! Plan, then apply: [`plan`] is pure (it takes the inspect [`Report`]);
//! [`split_partition`] is the only code here that writes, and writes only files
//! of the host (never the image): each exported partition as a sparse file,
//! its holes found with `SEEK_DATA`/`SEEK_HOLE` and its data moved with
//! `copy_file_range` (plain reads and writes where the kernel cannot).
//!
//! The device map here ([`Export`] entries) is the part of `domuify fstab`'s map that a
//! config needs (which partitions, under which vdev): the same flags, the same
//! defaults. When the shared map (`plan::devmap`) is on main, [`plan`] takes it
//! instead.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::finding::Finding;
use crate::guest::resolve::SourceKind;
use crate::inspect::Report;
use crate::xlcfg::{Backing, Boot, Disk, DomuConfig, GuestType, Vif};

/// How the domU sees the disk (`--whole-disk` / `--partitions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The whole image is one virtual disk.
    WholeDisk,
    /// Each exported partition is its own virtual disk.
    Partitions,
}

/// The vdev naming style (`--vdev-style`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VdevStyle {
    /// `xvda5`.
    #[default]
    Xvd,
    /// `hda5` (old XenLinux kernels only).
    Hd,
    /// `sda5` (old XenLinux kernels only).
    Sd,
}

impl VdevStyle {
    fn disk(self) -> &'static str {
        match self {
            VdevStyle::Xvd => "xvda",
            VdevStyle::Hd => "hda",
            VdevStyle::Sd => "sda",
        }
    }
}

/// Mount points without which a system does not boot.
const SYSTEM_MOUNTS: &[&str] = &["/boot", "/usr", "/var", "/home", "/opt", "/srv", "/tmp"];

/// How to boot the domU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootChoice {
    /// An external kernel of dom0 (`--kernel`, `--initrd`).
    Kernel {
        /// The kernel.
        kernel: PathBuf,
        /// Its initramfs.
        initrd: Option<PathBuf>,
    },
    /// The guest's own kernel, extracted to a host directory (`--guest-kernel VER
    /// --kernel-dir DIR`): the paths it will have there.
    GuestKernel {
        /// Version.
        version: String,
        /// Where it is extracted.
        dir: PathBuf,
    },
    /// `--bootloader pygrub`.
    Pygrub,
}

/// What the user asked (every field a flag of `config`).
#[derive(Clone, Debug, Default)]
pub struct ConfigOptions {
    /// `--whole-disk` / `--partitions`; `None` for the default.
    pub mode: Option<Mode>,
    /// `--root N`.
    pub root: Option<u32>,
    /// `--swap N`.
    pub swap: Option<u32>,
    /// `--export N[=VDEV]`.
    pub exports: Vec<(u32, Option<String>)>,
    /// `--vdev-style`.
    pub vdev_style: VdevStyle,
    /// `--split-to DIR` (implies partition mode for an image file).
    pub split_to: Option<PathBuf>,
    /// `--name`.
    pub name: Option<String>,
    /// `--memory` (MiB).
    pub memory_mib: Option<u64>,
    /// `--vcpus`.
    pub vcpus: Option<u32>,
    /// `--type`.
    pub guest_type: GuestType,
    /// The boot choice; `None` is an error that names the three ways.
    pub boot: Option<BootChoice>,
    /// `--extra` (added after `console=hvc0`).
    pub extra: Option<String>,
    /// `--bridge` (repeatable).
    pub bridges: Vec<String>,
    /// `--mac` (repeatable).
    pub macs: Vec<String>,
    /// `--no-network`.
    pub no_network: bool,
    /// The least memory the chosen kernel's initramfs needs, when known.
    pub min_memory_mib: Option<u64>,
    /// `--force`.
    pub force: bool,
}

/// One exported partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Export {
    /// Partition number.
    pub partition: u32,
    /// Its vdev in the domU.
    pub vdev: String,
    /// Why it is exported.
    pub reason: String,
    /// Byte offset on the disk.
    pub start_bytes: u64,
    /// Length in bytes.
    pub size_bytes: u64,
    /// What backs it: the block device's partition node, or the split file.
    pub target: String,
}

/// The plan: the config and what must be written for it.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigPlan {
    /// Whole disk or partitions.
    pub mode: Mode,
    /// Why that mode.
    pub mode_reason: String,
    /// The guest's root partition.
    pub root: u32,
    /// Why that root.
    pub root_reason: String,
    /// The exported partitions (partition mode; in whole-disk mode, the disk).
    pub exports: Vec<Export>,
    /// The split files to write (partition mode on an image file).
    pub split_files: Vec<Export>,
    /// Memory and why.
    pub memory_reason: String,
    /// The name and why.
    pub name_reason: String,
    /// The config itself.
    pub config: DomuConfig,
    /// What is worth knowing.
    pub findings: Vec<Finding>,
}

fn usage(msg: String) -> Error {
    Error::usage(msg)
}

/// A vdev name for partition `n` in `style`.
fn vdev_of(style: VdevStyle, n: u32) -> String {
    format!("{}{n}", style.disk())
}

/// Plan the config of the guest on `report`'s image. `image_abs` is the image's
/// absolute path (the whole-disk target); `is_block` says it is a block device.
pub fn plan(
    report: &Report,
    image_abs: &Path,
    is_block: bool,
    o: &ConfigOptions,
) -> Result<ConfigPlan> {
    let mut findings = Vec::new();
    // The root: --root N, or the only system found.
    let systems: Vec<String> = report
        .systems
        .iter()
        .map(|s| {
            format!(
                "partition {} (hostname {})",
                s.partition,
                s.hostname.as_deref().unwrap_or("unknown")
            )
        })
        .collect();
    let (guest, root_reason) = match o.root {
        Some(n) => match report.systems.iter().find(|s| s.partition == n) {
            Some(g) => (g, "--root".to_string()),
            None => {
                return Err(usage(format!(
                    "--root {n}: partition {n} holds no installed Linux system; systems found: {}",
                    if systems.is_empty() { "none".into() } else { systems.join(", ") }
                )))
            }
        },
        None => match report.systems.as_slice() {
            [only] => (only, "the only installed system found".to_string()),
            [] => {
                return Err(usage(format!(
                    "{}: no installed Linux system found (an ext filesystem holding /etc/fstab)",
                    report.image
                )))
            }
            _ => {
                return Err(usage(format!(
                    "{} holds more than one installed system: choose the guest with --root N; candidates: {}",
                    report.image,
                    systems.join(", ")
                )))
            }
        },
    };
    let root = guest.partition;
    let (mode, mode_reason) = match (o.mode, &o.split_to, is_block) {
        (Some(Mode::WholeDisk), Some(_), _) => {
            return Err(usage(
                "--split-to writes partitions one by one: it cannot go with --whole-disk".into(),
            ))
        }
        (Some(m), _, _) => (
            m,
            match m {
                Mode::WholeDisk => "--whole-disk given",
                Mode::Partitions => "--partitions given",
            }
            .to_string(),
        ),
        (None, Some(_), _) => (Mode::Partitions, "--split-to given".to_string()),
        (None, None, true) => (
            Mode::Partitions,
            "a block device: exported partition by partition (a disk dom0 uses must never be exported whole)".to_string(),
        ),
        (None, None, false) => (
            Mode::WholeDisk,
            "the image is a file: exported whole as one virtual disk (--partitions to export partitions one by one)".to_string(),
        ),
    };
    if root == 0 && mode == Mode::Partitions {
        return Err(usage(
            "the image is a bare filesystem (no partition table): export it with --whole-disk"
                .into(),
        ));
    }
    let part = |n: u32| report.partitions.iter().find(|p| p.partition.number == n);
    // Exports in partition mode: root, swap, system mounts, --export.
    let mut wanted: Vec<(u32, Option<String>, String)> =
        vec![(root, None, "the guest's root".into())];
    let swap = match o.swap {
        Some(n) => Some((n, "--swap".to_string())),
        None => guest
            .fstab
            .iter()
            .find(|e| e.fstype == "swap" && e.kind == SourceKind::Partition)
            .and_then(|e| {
                e.partition
                    .map(|p| (p, format!("the guest's fstab line {} names it", e.line)))
            }),
    };
    if let Some((n, why)) = &swap {
        wanted.push((*n, None, format!("swap ({why})")));
    }
    for e in &guest.fstab {
        if e.kind != SourceKind::Partition {
            continue;
        }
        let system = SYSTEM_MOUNTS.iter().any(|m| {
            e.target == *m || e.target.strip_prefix(m).is_some_and(|r| r.starts_with('/'))
        });
        if let (true, Some(p)) = (system, e.partition) {
            wanted.push((p, None, format!("the guest mounts it at {}", e.target)));
        }
    }
    for (n, v) in &o.exports {
        wanted.push((*n, v.clone(), "--export".into()));
    }
    let mut exports: Vec<Export> = Vec::new();
    for (n, vdev, reason) in wanted {
        let Some(p) = part(n) else {
            let l: Vec<String> = report
                .partitions
                .iter()
                .filter(|p| p.filesystem.is_some())
                .map(|p| p.partition.number.to_string())
                .collect();
            return Err(usage(format!(
                "{}: no partition {n}; partitions: {}",
                report.image,
                l.join(", ")
            )));
        };
        if p.filesystem.is_none() {
            return Err(usage(format!(
                "partition {n} is an extended partition (a container of logical partitions): it cannot be exported"
            )));
        }
        if let Some(e) = exports.iter_mut().find(|e| e.partition == n) {
            if let Some(v) = vdev {
                e.vdev = v;
            }
            continue;
        }
        let vdev = vdev.unwrap_or_else(|| vdev_of(o.vdev_style, n));
        crate::xlcfg::check_vdev(&vdev)?;
        let target = match (is_block, &o.split_to) {
            (true, _) => p.device_node.clone().ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{}: the kernel has no device node for partition {n} (partprobe?)",
                        report.image
                    ),
                )
            })?,
            (false, Some(dir)) => dir.join(format!("part{n}.img")).display().to_string(),
            (false, None) => String::new(),
        };
        exports.push(Export {
            partition: n,
            vdev,
            reason,
            start_bytes: p.partition.start_bytes,
            size_bytes: p.partition.size_bytes,
            target,
        });
    }
    let (disks, split_files) = match mode {
        Mode::WholeDisk => {
            if is_block {
                findings.push(Finding::warning(
                    &report.image,
                    "the whole block device is exported: dom0 must not use any partition of it while the domU runs",
                ));
            }
            let vdev = o.vdev_style.disk().to_string();
            (
                vec![Disk {
                    target: image_abs.display().to_string(),
                    backing: if is_block {
                        Backing::Phy
                    } else {
                        Backing::File
                    },
                    vdev,
                    writable: true,
                }],
                Vec::new(),
            )
        }
        Mode::Partitions => {
            if !is_block && o.split_to.is_none() {
                return Err(usage(format!(
                    "{} is an image file: in partition mode each exported partition ({}) must be its own file: give --split-to DIR (or --whole-disk)",
                    report.image,
                    exports.iter().map(|e| e.partition.to_string()).collect::<Vec<_>>().join(", ")
                )));
            }
            let disks = exports
                .iter()
                .map(|e| Disk {
                    target: e.target.clone(),
                    backing: if is_block {
                        Backing::Phy
                    } else {
                        Backing::File
                    },
                    vdev: e.vdev.clone(),
                    writable: true,
                })
                .collect();
            (
                disks,
                if is_block {
                    Vec::new()
                } else {
                    exports.clone()
                },
            )
        }
    };
    // Pygrub reads the first disk: it must hold /boot (whole-disk), or /boot must
    // be exported and come first.
    let mut disks = disks;
    let boot_part = guest.boot_partition().unwrap_or(root);
    let (boot, kernel_root) = match &o.boot {
        None => {
            return Err(usage(
                "how should the domU boot? give --kernel PATH [--initrd PATH], --guest-kernel VER --kernel-dir DIR, or --bootloader pygrub".into(),
            ))
        }
        Some(BootChoice::Pygrub) => {
            if mode == Mode::Partitions {
                let i = exports.iter().position(|e| e.partition == boot_part).ok_or_else(|| {
                    Error::refused(format!(
                        "--bootloader pygrub reads /boot from the first disk, and partition {boot_part} (/boot) is not exported"
                    ))
                })?;
                let d = disks.remove(i);
                disks.insert(0, d);
            }
            (
                Boot::Bootloader {
                    bootloader: "pygrub".into(),
                },
                false,
            )
        }
        Some(BootChoice::Kernel { kernel, initrd }) => (
            Boot::Kernel {
                kernel: abs(kernel)?,
                ramdisk: initrd.as_deref().map(abs).transpose()?,
            },
            true,
        ),
        Some(BootChoice::GuestKernel { version, dir }) => {
            let k = guest.kernels.iter().find(|k| &k.version == version).ok_or_else(|| {
                let l: Vec<&str> = guest.kernels.iter().map(|k| k.version.as_str()).collect();
                usage(format!(
                    "--guest-kernel {version}: the guest has no such kernel; kernels in /boot: {}",
                    if l.is_empty() { "none".into() } else { l.join(", ") }
                ))
            })?;
            let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
            let dir = abs(dir)?;
            (
                Boot::Kernel {
                    kernel: format!("{}/{}", dir.trim_end_matches('/'), base(&k.image)),
                    ramdisk: k
                        .initrd
                        .as_deref()
                        .map(|i| format!("{}/{}", dir.trim_end_matches('/'), base(i))),
                },
                true,
            )
        }
    };
    let root_vdev = match mode {
        Mode::WholeDisk => format!("{}{root}", o.vdev_style.disk()),
        Mode::Partitions => exports[0].vdev.clone(),
    };
    if o.vdev_style != VdevStyle::Xvd {
        findings.push(Finding::warning(
            "device map",
            "--vdev-style hd|sd only works with old XenLinux kernels: a pvops kernel names every disk xvd*",
        ));
    }
    // /dev/xvdaN inside a PV domU whatever the vdev's style for pvops kernels.
    let root_dev = if root_vdev.starts_with("xvd") || o.vdev_style != VdevStyle::Xvd {
        format!("/dev/{root_vdev}")
    } else {
        format!(
            "/dev/xvd{}",
            root_vdev
                .trim_start_matches(['h', 's'])
                .trim_start_matches('d')
        )
    };
    let (name, name_reason) = match (&o.name, &guest.hostname) {
        (Some(n), _) => (n.clone(), "--name".to_string()),
        (None, Some(h)) => (
            h.split('.').next().unwrap_or(h).to_string(),
            "the guest's hostname".to_string(),
        ),
        (None, None) => {
            return Err(usage(
                "the guest has no /etc/hostname to name the domain after: give --name NAME".into(),
            ))
        }
    };
    let min = o.min_memory_mib.unwrap_or(0);
    let (memory, memory_reason) = match o.memory_mib {
        Some(m) if m < min && !o.force => {
            return Err(Error::refused(format!(
                "--memory {m}: the kernel's initramfs needs at least {min} MiB to unpack (a domU with less panics out of memory at boot); give --memory {min} or more, or --force"
            )))
        }
        Some(m) if m < min => {
            findings.push(Finding::warning(
                "memory",
                format!("--memory {m} is below the {min} MiB the initramfs needs (--force)"),
            ));
            (m, "--memory (below the minimum, --force)".to_string())
        }
        Some(m) => (m, "--memory".to_string()),
        None if min > 512 => (min, format!("the least the initramfs needs ({min} MiB)")),
        None if min > 0 => (512, format!("the default 512 MiB (the initramfs needs {min})")),
        None => (512, "the default 512 MiB".to_string()),
    };
    let mut extra = "console=hvc0".to_string();
    if let Some(e) = &o.extra {
        extra.push(' ');
        extra.push_str(e);
    }
    let vifs = if o.no_network {
        if !o.bridges.is_empty() || !o.macs.is_empty() {
            return Err(usage(
                "--no-network cannot go with --bridge or --mac".into(),
            ));
        }
        Vec::new()
    } else {
        let n = o.bridges.len().max(o.macs.len()).max(1);
        (0..n)
            .map(|i| Vif {
                bridge: o.bridges.get(i).cloned(),
                mac: o.macs.get(i).cloned(),
            })
            .collect()
    };
    let config = DomuConfig {
        image: report.image.clone(),
        generator: format!("domuify {} (domuify config)", env!("CARGO_PKG_VERSION")),
        name,
        memory_mib: memory,
        vcpus: o.vcpus.unwrap_or(1),
        guest_type: o.guest_type,
        boot,
        root: kernel_root.then(|| format!("{root_dev} ro")),
        extra: kernel_root.then_some(extra),
        disks,
        vifs,
    };
    Ok(ConfigPlan {
        mode,
        mode_reason,
        root,
        root_reason,
        exports,
        split_files,
        memory_reason,
        name_reason,
        config,
        findings,
    })
}

fn abs(p: &Path) -> Result<String> {
    let a = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("current directory", e))?
            .join(p)
    };
    a.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(format!("{}: not UTF-8", p.display())))
}

/// Copy `len` bytes of `image` from `start` into the new file `to`, sparse:
/// only the data extents the image's filesystem reports (`SEEK_DATA` /
/// `SEEK_HOLE`; the whole range on a block device) are copied, with
/// `copy_file_range` where the kernel allows it, and runs of zeros read the slow
/// way stay holes. `to` must not exist unless `overwrite`. Returns the bytes of
/// data written.
pub fn split_partition(
    image: &Path,
    start: u64,
    len: u64,
    to: &Path,
    overwrite: bool,
) -> Result<u64> {
    let src =
        File::open(image).map_err(|e| Error::io(format!("cannot open {}", image.display()), e))?;
    let mut opts = OpenOptions::new();
    opts.write(true);
    if overwrite {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let dst = opts.open(to).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::new(
                ErrorKind::AlreadyExists,
                format!("{} already exists: --force replaces it", to.display()),
            )
        } else {
            Error::io(format!("cannot create {}", to.display()), e)
        }
    })?;
    dst.set_len(len)
        .map_err(|e| Error::io(format!("sizing {}", to.display()), e))?;
    let is_block = src
        .metadata()
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false);
    let end = start
        .checked_add(len)
        .ok_or_else(|| Error::corrupt("partition end overflows"))?;
    let mut written = 0u64;
    let mut pos = start;
    while pos < end {
        // The next data extent [data, hole).
        let (data, hole) = if is_block {
            (pos, end)
        } else {
            let data = match rustix::fs::seek(&src, rustix::fs::SeekFrom::Data(pos)) {
                Ok(d) => d,
                Err(rustix::io::Errno::NXIO) => break,
                Err(_) => pos,
            };
            if data >= end {
                break;
            }
            let hole = rustix::fs::seek(&src, rustix::fs::SeekFrom::Hole(data)).unwrap_or(end);
            (data, hole.min(end))
        };
        copy_range(&src, &dst, data, data - start, hole - data, image, to)?;
        written += hole - data;
        pos = hole;
    }
    dst.sync_all()
        .map_err(|e| Error::io(format!("syncing {}", to.display()), e))?;
    Ok(written)
}

fn copy_range(
    src: &File,
    dst: &File,
    from: u64,
    at: u64,
    len: u64,
    image: &Path,
    to: &Path,
) -> Result<()> {
    let (mut off_in, mut off_out, mut left) = (from, at, len);
    while left > 0 {
        let chunk = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
        match rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), chunk) {
            Ok(0) => {
                return Err(Error::corrupt(format!(
                    "{} ended at {off_in:#x}, inside the partition",
                    image.display()
                )))
            }
            Ok(n) => left -= n as u64,
            Err(_) => return copy_slow(src, dst, off_in, off_out, left, image, to),
        }
    }
    Ok(())
}

/// Read and write in 1 MiB pieces; an all-zero piece is left a hole.
fn copy_slow(
    src: &File,
    dst: &File,
    from: u64,
    at: u64,
    len: u64,
    image: &Path,
    to: &Path,
) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let (mut s, mut d) = (src, dst);
    s.seek(SeekFrom::Start(from))
        .map_err(|e| Error::io(format!("seeking {}", image.display()), e))?;
    let mut done = 0u64;
    while done < len {
        let n = usize::try_from((len - done).min(buf.len() as u64)).unwrap_or(buf.len());
        s.read_exact(&mut buf[..n]).map_err(|e| {
            Error::io(
                format!("reading {} at {:#x}", image.display(), from + done),
                e,
            )
        })?;
        if buf[..n].iter().any(|&b| b != 0) {
            d.seek(SeekFrom::Start(at + done))
                .map_err(|e| Error::io(format!("seeking {}", to.display()), e))?;
            d.write_all(&buf[..n])
                .map_err(|e| Error::io(format!("writing {}", to.display()), e))?;
        }
        done += n as u64;
    }
    Ok(())
}

//! The device map: which partitions of the image the domU sees, and under which
//! names. One module for every command that exports a disk to a domU (`fstab`
//! today, `config` and `convert` next), so that they take the same flags with the
//! same defaults and agree on every name.
//!
//! Two modes. **Whole-disk**: the image is one virtual disk (`xvda`), partition N
//! is `/dev/xvdaN` in the domU, and every partition is visible (so `PARTUUID=` and
//! `PARTLABEL=` stay valid). **Partitions**: each exported partition is its own
//! virtual block device (`xvdaN` by default), the domU sees no partition table,
//! and only the root, the swap, the partitions the guest mounts at system mount
//! points and `--export`ed ones are exported. The default is whole-disk for an
//! image file and partitions for a block device (a disk dom0 itself uses must
//! never be exported whole); the map says which mode was taken and why.
//!
//! Pure: built from [`DiskFacts`] (what inspecting the image found), the guest's
//! resolved fstab entries and [`HostUse`] (what dom0 uses), without I/O.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::finding::Finding;
use crate::guest::fstab::Entry;
use crate::guest::resolve::{DiskView, PartView, Resolution, SourceKind};

/// How the domU sees the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The whole image is one virtual disk.
    WholeDisk,
    /// Each exported partition is its own virtual block device.
    Partitions,
}

/// The names the domU's devices get (`--vdev-style`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VdevStyle {
    /// `xvda5`: what every pvops kernel's blkfront names a vdev.
    #[default]
    Xvd,
    /// `hda5`: honoured only by old XenLinux kernels.
    Hd,
    /// `sda5`: honoured only by old XenLinux kernels.
    Sd,
}

impl VdevStyle {
    /// The first disk's name in this style.
    pub fn disk(self) -> &'static str {
        match self {
            VdevStyle::Xvd => "xvda",
            VdevStyle::Hd => "hda",
            VdevStyle::Sd => "sda",
        }
    }
}

/// `--export N[=VDEV]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// Partition number.
    pub partition: u32,
    /// The vdev asked for, if any.
    pub vdev: Option<String>,
}

impl std::str::FromStr for Export {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Export, String> {
        let (n, vdev) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        let partition = n
            .parse()
            .map_err(|_| format!("{s:?}: expected N or N=VDEV (a partition number)"))?;
        if let Some(v) = vdev {
            check_vdev(v)?;
        }
        Ok(Export {
            partition,
            vdev: vdev.map(str::to_string),
        })
    }
}

/// A vdev name as xl-disk-configuration(5) takes it: `xvd`, `hd` or `sd`, one to
/// three letters, an optional partition number.
pub fn check_vdev(v: &str) -> std::result::Result<(), String> {
    let rest = ["xvd", "hd", "sd"]
        .iter()
        .find_map(|p| v.strip_prefix(p))
        .ok_or_else(|| format!("{v:?} is not a vdev name (xvdX, hdX or sdX, as xvdb or xvda5)"))?;
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    let digits = &rest[letters..];
    if !(1..=3).contains(&letters)
        || digits.len() > 3
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return Err(format!(
            "{v:?} is not a vdev name (xvdX, hdX or sdX, as xvdb or xvda5)"
        ));
    }
    Ok(())
}

/// The device-map options every exporting command takes.
#[derive(Clone, Debug, Default)]
pub struct MapOptions {
    /// `--whole-disk` / `--partitions`; `None` for the default.
    pub mode: Option<Mode>,
    /// `--root N`.
    pub root: Option<u32>,
    /// `--swap N`.
    pub swap: Option<u32>,
    /// `--export N[=VDEV]`.
    pub exports: Vec<Export>,
    /// `--vdev-style`.
    pub vdev_style: VdevStyle,
    /// `--force`: the safety checks become warnings.
    pub force: bool,
}

/// Whether the image is a file or a block device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskKind {
    /// A regular file.
    ImageFile,
    /// A block device.
    BlockDevice,
}

/// One partition of the image, as the map needs it.
#[derive(Clone, Debug, Default)]
pub struct PartFacts {
    /// What resolution knows of it (number, filesystem, identifiers).
    pub view: PartView,
    /// An EFI system partition (GPT type or MBR 0xef).
    pub esp: bool,
}

/// An installed system found on the image.
#[derive(Clone, Debug)]
pub struct SystemFacts {
    /// Its root partition.
    pub partition: u32,
    /// How to name it to a user (`Debian GNU/Linux 12, hostname bookworm`).
    pub name: String,
    /// Kernel versions in its `/boot`.
    pub kernels: Vec<String>,
}

/// What inspecting the image found, as the planners need it.
#[derive(Clone, Debug)]
pub struct DiskFacts {
    /// The image path as given.
    pub image: String,
    /// File or block device.
    pub kind: DiskKind,
    /// Every partition (number 0 for a bare filesystem).
    pub parts: Vec<PartFacts>,
    /// Every installed Linux system.
    pub systems: Vec<SystemFacts>,
}

impl DiskFacts {
    /// The resolver's view, for the guest on `guest_partition`.
    pub fn view(&self, guest_partition: u32) -> DiskView {
        DiskView {
            parts: self.parts.iter().map(|p| p.view.clone()).collect(),
            guest_partition,
        }
    }

    fn part(&self, n: u32) -> Option<&PartFacts> {
        self.parts.iter().find(|p| p.view.number == n)
    }

    /// Data partitions (no extended container), in number order.
    fn data_parts(&self) -> impl Iterator<Item = &PartFacts> {
        self.parts.iter().filter(|p| !p.view.extended)
    }

    /// The root to plan for: `--root N`, or the only system found.
    pub fn choose_root(&self, root: Option<u32>) -> Result<(u32, String)> {
        let list = || -> String {
            let l: Vec<String> = self
                .systems
                .iter()
                .map(|s| format!("partition {} ({})", s.partition, s.name))
                .collect();
            if l.is_empty() {
                "none".into()
            } else {
                l.join(", ")
            }
        };
        match root {
            Some(n) => {
                if self.systems.iter().any(|s| s.partition == n) {
                    Ok((n, "--root".into()))
                } else {
                    Err(Error::invalid(format!(
                        "--root {n}: partition {n} holds no installed Linux system (an ext filesystem with /etc/fstab); systems found: {}",
                        list()
                    )))
                }
            }
            None => match self.systems.as_slice() {
                [only] => Ok((
                    only.partition,
                    format!("the only installed system found ({})", only.name),
                )),
                [] => Err(Error::invalid(format!(
                    "{}: no installed Linux system found (an ext filesystem holding /etc/fstab)",
                    self.image
                ))),
                _ => Err(Error::invalid(format!(
                    "{} holds more than one installed system: choose the guest with --root N; candidates: {}",
                    self.image,
                    list()
                ))),
            },
        }
    }
}

/// What dom0 itself uses on this disk (from `--host-fstab`, and for a block device
/// of this host from `/proc/swaps` and `/proc/self/mountinfo`).
#[derive(Clone, Debug, Default)]
pub struct HostUse {
    /// Partitions holding dom0's root, each with how it is known.
    pub root: Vec<(u32, String)>,
    /// Partitions dom0 swaps on, each with how it is known.
    pub swap: Vec<(u32, String)>,
}

/// One fstab entry of the guest, resolved (the map reads the swap and the system
/// mount points from them).
#[derive(Clone, Debug)]
pub struct Resolved {
    /// 1-based line number.
    pub line: usize,
    /// The entry.
    pub entry: Entry,
    /// What it names.
    pub resolution: Resolution,
}

/// One exported partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MapEntry {
    /// Partition number on the image.
    pub partition: u32,
    /// Its name as the domU sees it (`xvda5`; the device is `/dev/xvda5`).
    pub vdev: String,
    /// Why it is exported (and why under this name).
    pub reason: String,
}

/// The device map.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceMap {
    /// The mode taken.
    pub mode: Mode,
    /// Why that mode.
    pub mode_reason: String,
    /// The guest's root partition.
    #[serde(skip)]
    pub root: u32,
    /// Why that root.
    #[serde(skip)]
    pub root_reason: String,
    /// In whole-disk mode, the disk's vdev (`xvda`).
    #[serde(skip)]
    pub disk_vdev: Option<String>,
    /// The naming style asked for.
    #[serde(skip)]
    pub vdev_style: VdevStyle,
    /// The domU's swap partitions, each with why.
    #[serde(skip)]
    pub swaps: Vec<(u32, String)>,
    /// Every partition the domU sees.
    pub device_map: Vec<MapEntry>,
    /// What the map found worth knowing (forced safety checks among them).
    #[serde(skip)]
    pub findings: Vec<Finding>,
}

/// Mount points without which a system does not boot (or runs broken).
pub const SYSTEM_MOUNTS: &[&str] = &["/boot", "/usr", "/var", "/home", "/opt", "/srv", "/tmp"];

fn is_system_mount(target: &str) -> bool {
    SYSTEM_MOUNTS
        .iter()
        .any(|m| target == *m || target.strip_prefix(m).is_some_and(|r| r.starts_with('/')))
}

impl DeviceMap {
    /// The vdev partition `n` has in the domU, if exported.
    pub fn vdev(&self, n: u32) -> Option<&str> {
        self.device_map
            .iter()
            .find(|e| e.partition == n)
            .map(|e| e.vdev.as_str())
    }

    /// Build the map. Errors: a usage error (`InvalidInput`) for a bad `--root`,
    /// `--swap` or `--export`; a refusal naming every failed safety check unless
    /// `opts.force` (then each is a warning finding).
    pub fn build(
        facts: &DiskFacts,
        entries: &[Resolved],
        host: &HostUse,
        opts: &MapOptions,
    ) -> Result<DeviceMap> {
        let (root, root_reason) = facts.choose_root(opts.root)?;
        for n in opts.exports.iter().map(|e| e.partition).chain(opts.swap) {
            match facts.part(n) {
                None => {
                    let l: Vec<String> = facts
                        .data_parts()
                        .map(|p| p.view.number.to_string())
                        .collect();
                    return Err(Error::invalid(format!(
                        "{}: no partition {n}; partitions: {}",
                        facts.image,
                        l.join(", ")
                    )));
                }
                Some(p) if p.view.extended => {
                    return Err(Error::invalid(format!(
                        "partition {n} is an extended partition (a container of logical partitions): it cannot be exported"
                    )))
                }
                _ => {}
            }
        }
        let (mode, mode_reason) = match (opts.mode, facts.kind) {
            (Some(Mode::WholeDisk), _) => (Mode::WholeDisk, "--whole-disk given".to_string()),
            (Some(Mode::Partitions), _) => (Mode::Partitions, "--partitions given".to_string()),
            (None, DiskKind::ImageFile) => (
                Mode::WholeDisk,
                "the image is a file: exported whole as one virtual disk (--partitions to export partitions one by one)".to_string(),
            ),
            (None, DiskKind::BlockDevice) => (
                Mode::Partitions,
                "the image is a block device: a disk that dom0 may use is never exported whole (--whole-disk to do it anyway)".to_string(),
            ),
        };
        let style = opts.vdev_style;
        let mut findings = Vec::new();
        let mut violations: Vec<String> = Vec::new();
        let mut map: Vec<MapEntry> = Vec::new();
        let mut disk_vdev = None;
        // The swaps the guest's fstab names on this disk.
        let fstab_swaps: Vec<u32> = entries
            .iter()
            .filter(|r| r.entry.fstype == "swap" && r.resolution.kind == SourceKind::Partition)
            .filter_map(|r| r.resolution.partition)
            .filter(|n| facts.part(*n).is_some_and(|p| p.view.fstype == "swap"))
            .fold(Vec::new(), |mut v, n| {
                if !v.contains(&n) {
                    v.push(n);
                }
                v
            });
        let swaps: Vec<(u32, String)> = match opts.swap {
            Some(n) => {
                if facts.part(n).is_some_and(|p| p.view.fstype != "swap") {
                    violations.push(format!(
                        "--swap {n}: partition {n} holds no swap signature ({})",
                        facts.part(n).map_or("", |p| p.view.fstype.as_str())
                    ));
                }
                vec![(n, "swap (--swap)".to_string())]
            }
            None => fstab_swaps
                .iter()
                .map(|n| (*n, "swap named by the guest's fstab".to_string()))
                .collect(),
        };
        match mode {
            Mode::WholeDisk => {
                let disk = style.disk();
                disk_vdev = Some(disk.to_string());
                for p in facts.data_parts() {
                    let n = p.view.number;
                    let reason = if n == root {
                        format!("root ({root_reason}); the whole disk is {disk}")
                    } else {
                        format!("partition {n} of the whole disk {disk}")
                    };
                    map.push(MapEntry {
                        partition: n,
                        vdev: if n == 0 {
                            disk.to_string()
                        } else {
                            format!("{disk}{n}")
                        },
                        reason,
                    });
                }
                if opts.exports.iter().any(|e| e.vdev.is_some()) {
                    findings.push(Finding::warning(
                        "device map",
                        "--export N=VDEV has no effect in whole-disk mode: every partition keeps its number on the one disk",
                    ));
                }
            }
            Mode::Partitions => {
                let asked = |n: u32| {
                    opts.exports
                        .iter()
                        .rev()
                        .find(|e| e.partition == n)
                        .and_then(|e| e.vdev.clone())
                };
                let default_vdev = |n: u32| {
                    if n == 0 {
                        style.disk().to_string()
                    } else {
                        format!("{}{n}", style.disk())
                    }
                };
                let mut add = |n: u32, why: String| {
                    if map.iter().any(|e| e.partition == n) {
                        return;
                    }
                    let (vdev, why) = match asked(n) {
                        Some(v) => (v, format!("{why}; vdev from --export")),
                        None => (default_vdev(n), why),
                    };
                    map.push(MapEntry {
                        partition: n,
                        vdev,
                        reason: why,
                    });
                };
                add(root, format!("root ({root_reason})"));
                for (n, why) in &swaps {
                    add(*n, why.clone());
                }
                let other_roots: Vec<u32> = facts
                    .systems
                    .iter()
                    .map(|s| s.partition)
                    .filter(|&p| p != root)
                    .collect();
                for r in entries {
                    let Some(n) = r.resolution.partition else {
                        continue;
                    };
                    if r.resolution.kind != SourceKind::Partition
                        || !is_system_mount(&r.entry.target)
                        || facts.part(n).is_none_or(|p| p.esp)
                        || other_roots.contains(&n)
                    {
                        continue;
                    }
                    add(
                        n,
                        format!(
                            "mounted at {} by the guest's fstab (line {}): the guest needs it to boot",
                            r.entry.target, r.line
                        ),
                    );
                }
                for e in &opts.exports {
                    add(e.partition, "--export".to_string());
                }
            }
        }
        // Safety checks.
        let mut seen: Vec<(&str, u32)> = Vec::new();
        for e in &map {
            if let Some((_, first)) = seen.iter().find(|(v, _)| *v == e.vdev) {
                violations.push(format!(
                    "partitions {first} and {} would both be {}: two exports cannot share one vdev",
                    e.partition, e.vdev
                ));
            }
            seen.push((&e.vdev, e.partition));
        }
        for (n, how) in &host.root {
            if map.iter().any(|e| e.partition == *n) {
                violations.push(format!(
                    "partition {n} holds dom0's own root ({how}) and would be exported to the domU{}",
                    if mode == Mode::WholeDisk {
                        " (whole-disk mode exports every partition: use --partitions)"
                    } else {
                        ""
                    }
                ));
            }
        }
        for (n, how) in &host.swap {
            if swaps.iter().any(|(s, _)| s == n) && map.iter().any(|e| e.partition == *n) {
                violations.push(format!(
                    "partition {n} is dom0's swap ({how}): the domU must not share it (give the domU its own with --swap N, or drop it)"
                ));
            }
        }
        if !map.iter().any(|e| e.partition == root) {
            violations.push(format!("the root partition {root} is not exported"));
        }
        if style != VdevStyle::Xvd {
            let kernels: Vec<&str> = facts
                .systems
                .iter()
                .filter(|s| s.partition == root)
                .flat_map(|s| s.kernels.iter().map(String::as_str))
                .collect();
            findings.push(Finding::warning(
                "device map",
                format!(
                    "--vdev-style {}: only old XenLinux kernels (CONFIG_XEN without pvops) honour hd/sd names; a pvops kernel (every upstream kernel since 2.6.37, and the guest's {}) names every vdev /dev/xvd*, so the domU would not find these devices",
                    if style == VdevStyle::Hd { "hd" } else { "sd" },
                    if kernels.is_empty() { "none found".to_string() } else { kernels.join(", ") }
                ),
            ));
        }
        map.sort_by_key(|e| e.partition);
        if !violations.is_empty() {
            if !opts.force {
                return Err(Error::refused(format!(
                    "unsafe device map: {} (--force to do it anyway)",
                    violations.join("; ")
                )));
            }
            for v in violations {
                findings.push(Finding::warning("device map", format!("{v} (forced)")));
            }
        }
        Ok(DeviceMap {
            mode,
            mode_reason,
            root,
            root_reason,
            disk_vdev,
            vdev_style: style,
            swaps,
            device_map: map,
            findings,
        })
    }
}

//! Can this kernel boot as a domU? The judgement behind `domuify kernels` and
//! the kernel lines of `inspect`, kept in the library so that `config` and
//! `convert` (which take the same `--kernel`, `--kernel-config`, `--initrd`)
//! call it too.
//!
//! - [`kconfig`]: the kernel's `.config` and the Xen options read from it;
//! - [`image`]: the bzImage setup header or ELF, and (deep read) the embedded
//!   `IKCFG` config and the `Xen` ELF notes;
//! - [`compress`]: the compressions and their bounded streaming decoders;
//! - [`initramfs`]: the cpio stream over concatenated segments;
//! - [`memory`]: the least memory a domU needs to unpack the initramfs;
//! - [`modtree`]: where the block front-end is in a module tree;
//! - this module: the verdict from all of them ([`judge`]);
//! - [`guest`]: finding a guest's kernels, their files, and extracting them.

pub mod compress;
pub mod guest;
pub mod image;
pub mod initramfs;
pub mod kconfig;
pub mod memory;
pub mod modtree;

use std::io::Read;

use serde::Serialize;

use crate::guest::reader::ReadSeek;
use compress::Compression;
use image::{Format, Header};
use kconfig::{Config, Tristate, XenSupport};

/// Largest config file read (bytes); Debian's is about 280 KB.
pub const MAX_CONFIG: u64 = 4 << 20;

/// Where the Xen facts came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigSource {
    /// A config file (`/boot/config-VER`, or `--kernel-config`).
    ConfigFile,
    /// The config embedded in the image (`CONFIG_IKCONFIG`).
    Ikcfg,
    /// The image's `Xen` ELF notes (PV/PVH only; front-ends unknown).
    ElfNotes,
    /// Nothing: no config file, and the image says nothing (or was not read).
    None,
}

/// How deep to look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Config file and image header only (what `inspect` shows: fast).
    Cheap,
    /// Also decompress the image when there is no config file, and walk the
    /// initramfs (what `kernels` does).
    Full,
}

/// The files of one kernel, opened.
pub struct KernelFiles<'a> {
    /// Version (`6.1.0-27-amd64`).
    pub version: String,
    /// Path of the image, as shown.
    pub image_path: String,
    /// The image.
    pub image: Box<dyn ReadSeek + 'a>,
    /// The config: its path as shown and its text, when there is one.
    pub config: Option<(String, Vec<u8>)>,
    /// The initramfs: its path as shown and a stream of it, when there is one.
    pub initrd: Option<(String, Box<dyn ReadSeek + 'a>)>,
    /// The module tree: where it was looked for and whether it has the block
    /// front-end, as a module anywhere in it or built in
    /// ([`modtree::find_blkfront`]); `None` when there is no tree to look at.
    pub module_tree: Option<(String, bool)>,
}

/// What the initramfs holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InitramfsReport {
    /// Its path.
    pub path: String,
    /// Its segments, in file order.
    pub segments: Vec<initramfs::Segment>,
    /// Sum of the sizes of its regular files.
    pub unpacked_bytes: u64,
    /// Size of the file itself.
    pub compressed_bytes: u64,
    /// Whether `xen-blkfront.ko*` is in it.
    pub has_xen_blkfront: bool,
    /// Paths of the kernel modules in it.
    pub modules: Vec<String>,
}

/// The judgement of one kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelReport {
    /// Version.
    pub version: String,
    /// Path of the image.
    pub image: String,
    /// `bzimage`, `elf` or `unknown`.
    pub format: Format,
    /// Compression of the bzImage payload, `null` for ELF or unknown.
    pub compression: Option<Compression>,
    /// Where the Xen facts came from.
    pub config_source: ConfigSource,
    /// `["pv-ready", "pvh-ready"]` (one or both), `["not-ready"]`, or
    /// `["unknown"]` when nothing says.
    pub verdict: Vec<&'static str>,
    /// Why: what makes it not ready first, then what is worth knowing.
    pub reasons: Vec<String>,
    /// Least memory (MiB) for the domU ([`memory::min_memory_mib`]); `null`
    /// when the initramfs was not walked.
    pub min_memory_mib: Option<u64>,
    /// The initramfs, when walked.
    pub initramfs: Option<InitramfsReport>,
}

impl KernelReport {
    /// Whether the verdict says it boots (PV or PVH).
    pub fn is_ready(&self) -> bool {
        self.verdict
            .iter()
            .any(|v| v.ends_with("-ready") && *v != "not-ready")
    }
}

/// The Xen version a payload compression needs, when it needs more than any
/// Xen 4.x: Xen's domain builder (libxenguest) learnt lz4 in 4.6 and zstd in 4.15.
pub fn needs_xen(c: Compression) -> Option<&'static str> {
    match c {
        Compression::Lz4 => Some("4.6"),
        Compression::Zstd => Some("4.15"),
        _ => None,
    }
}

/// Judge one kernel. Never fails: what cannot be read becomes a reason.
pub fn judge(mut k: KernelFiles<'_>, depth: Depth) -> KernelReport {
    let mut blocking: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let header = match Header::read(&mut k.image) {
        Ok(h) => Some(h),
        Err(e) => {
            blocking.push(format!("{}: cannot read the image: {e}", k.image_path));
            None
        }
    };
    let format = header.as_ref().map_or(Format::Unknown, |h| h.format);
    let compression = header.as_ref().and_then(|h| h.compression);
    if let Some(h) = &header {
        match h.format {
            Format::Unknown => {
                blocking.push(format!("{}: {}", k.image_path, image::not_a_kernel()))
            }
            Format::Bzimage if h.protocol < 0x0208 => blocking.push(format!(
                "{}: boot protocol {}.{:02}, older than 2.08: Xen's domain builder cannot load it",
                k.image_path,
                h.protocol >> 8,
                h.protocol & 0xff
            )),
            Format::Bzimage if h.compression.is_none() => blocking.push(format!(
                "{}: the bzImage payload is in no compression Xen knows",
                k.image_path
            )),
            _ => {}
        }
        if let Some(v) = compression.and_then(needs_xen) {
            notes.push(format!(
                "the image is {}-compressed: Xen {v} or newer is needed to load it",
                compression.map_or("", |c| c.name())
            ));
        }
    }

    // The Xen facts: config file, else (deep) IKCFG, else the ELF notes.
    let mut source = ConfigSource::None;
    let mut xen: Option<XenSupport> = None;
    if let Some((path, text)) = &k.config {
        let c = Config::parse(&String::from_utf8_lossy(text));
        if c.is_empty() {
            notes.push(format!(
                "{path}: not a kernel config (no CONFIG_ line); ignored"
            ));
        } else {
            source = ConfigSource::ConfigFile;
            xen = Some(XenSupport::of(&c));
        }
    }
    let mut notes_pv_pvh: Option<(bool, bool)> = None;
    if xen.is_none() && depth == Depth::Full {
        if let Some(h) = header.as_ref().filter(|h| h.format != Format::Unknown) {
            match image::deep(&mut k.image, h) {
                Ok(e) => {
                    if let Some(c) = e.config {
                        source = ConfigSource::Ikcfg;
                        xen = Some(XenSupport::of(&c));
                    } else if e.elf {
                        source = ConfigSource::ElfNotes;
                        let pv = e.xen_notes.iter().any(|&t| {
                            t == image::XEN_ELFNOTE_ENTRY || t == image::XEN_ELFNOTE_HYPERCALL_PAGE
                        });
                        let pvh = e.xen_notes.contains(&image::XEN_ELFNOTE_PHYS32_ENTRY);
                        notes_pv_pvh = Some((pv, pvh));
                    }
                }
                Err(e) => blocking.push(format!(
                    "{}: cannot decompress the image: {}",
                    k.image_path,
                    crate::guest::reader::chain(&e)
                )),
            }
        }
    }

    // The initramfs walk (deep only).
    let mut initramfs_report = None;
    let mut walk_failed = false;
    if depth == Depth::Full {
        if let Some((path, stream)) = k.initrd.as_mut() {
            let size = stream.seek(std::io::SeekFrom::End(0)).ok();
            let _ = stream.seek(std::io::SeekFrom::Start(0));
            match initramfs::walk(stream.by_ref(), |_| {}) {
                Ok(s) => {
                    initramfs_report = Some(InitramfsReport {
                        path: path.clone(),
                        segments: s.segments,
                        unpacked_bytes: s.unpacked_bytes,
                        compressed_bytes: size.unwrap_or(0),
                        has_xen_blkfront: s.has_xen_blkfront,
                        modules: s.modules,
                    })
                }
                Err(e) => {
                    walk_failed = true;
                    blocking.push(format!(
                        "{path}: the initramfs cannot be unpacked: {}",
                        crate::guest::reader::chain(&e)
                    ));
                }
            }
        }
    }

    let (pv, pvh, blkfront) = match (xen, notes_pv_pvh) {
        (Some(x), _) => {
            if x.console == Tristate::Absent {
                notes.push(
                    "no Xen console (CONFIG_HVC_XEN not set): `xl console` shows nothing".into(),
                );
            }
            if x.netfront == Tristate::Absent {
                notes.push("no Xen network front-end (CONFIG_XEN_NETDEV_FRONTEND not set)".into());
            }
            (x.pv, x.pvh, Some(x.blkfront))
        }
        (None, Some((pv, pvh))) => {
            notes.push(
                "no config: PV/PVH read from the image's Xen ELF notes; the front-ends are not known"
                    .into(),
            );
            (pv, pvh, None)
        }
        (None, None) => (false, false, None),
    };
    let known = source != ConfigSource::None;
    if known && !pv && !pvh {
        blocking.push(
            "built without Xen guest support: CONFIG_XEN_PV (CONFIG_XEN before 4.14) and \
             CONFIG_XEN_PVH are not set"
                .into(),
        );
    }
    match blkfront {
        Some(Tristate::Absent) => blocking.push(
            "no Xen block front-end (CONFIG_XEN_BLKDEV_FRONTEND not set): the domU cannot see its disk"
                .into(),
        ),
        Some(Tristate::Module) => {
            match (&initramfs_report, depth, &k.initrd) {
                (Some(r), _, _) if !r.has_xen_blkfront => blocking.push(format!(
                    "xen-blkfront is a module (CONFIG_XEN_BLKDEV_FRONTEND=m) and {} lacks \
                     xen-blkfront.ko: the root disk will not be found",
                    r.path
                )),
                (Some(_), _, _) => {}
                (None, Depth::Full, None) => blocking.push(
                    "xen-blkfront is a module (CONFIG_XEN_BLKDEV_FRONTEND=m) and there is no \
                     initramfs to load it from"
                        .into(),
                ),
                (None, Depth::Cheap, _) => notes.push(
                    "xen-blkfront is a module: `domuify kernels` checks that the initramfs holds it"
                        .into(),
                ),
                _ => {} // the walk failed: said above
            }
            if let Some((tree, false)) = &k.module_tree {
                notes.push(format!("xen-blkfront.ko* is not in the module tree {tree}"));
            }
        }
        Some(Tristate::BuiltIn) => {}
        None => {
            if let Some(r) = &initramfs_report {
                if r.has_xen_blkfront {
                    notes.push(format!("{} holds xen-blkfront.ko", r.path));
                }
            }
        }
    }
    if !known && depth == Depth::Cheap && format != Format::Unknown {
        notes.push("no config file: `domuify kernels` reads what the image itself says".into());
    } else if !known && format != Format::Unknown && blocking.is_empty() {
        notes.push(
            "no config file, no embedded config, no Xen ELF notes: Xen support unknown".into(),
        );
    }

    let min_memory_mib = if depth == Depth::Full && !walk_failed {
        Some(memory::min_memory_mib(
            initramfs_report.as_ref().map_or(0, |r| r.compressed_bytes),
            initramfs_report.as_ref().map_or(0, |r| r.unpacked_bytes),
        ))
    } else {
        None
    };
    let verdict = if !blocking.is_empty() {
        vec!["not-ready"]
    } else if !known {
        vec!["unknown"]
    } else {
        let mut v = Vec::new();
        if pv {
            v.push("pv-ready");
        }
        if pvh {
            v.push("pvh-ready");
        }
        v
    };
    blocking.extend(notes);
    KernelReport {
        version: k.version,
        image: k.image_path,
        format,
        compression,
        config_source: source,
        verdict,
        reasons: blocking,
        min_memory_mib,
        initramfs: initramfs_report,
    }
}

/// The version a kernel file name says (`vmlinuz-6.1.0-9-amd64` → `6.1.0-9-amd64`).
pub fn version_from_name(name: &str) -> Option<&str> {
    ["vmlinuz-", "vmlinux-", "bzImage-", "kernel-"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .filter(|v| !v.is_empty())
}

/// Read at most `max` bytes of `r` (a config), refusing more.
pub fn read_bounded(r: &mut dyn Read, max: u64, what: &str) -> crate::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(max + 1)
        .read_to_end(&mut v)
        .map_err(|e| crate::guest::reader::from_io(e, format!("reading {what}")))?;
    if v.len() as u64 > max {
        return Err(crate::Error::refused(format!(
            "{what} is larger than {} MiB; not read",
            max >> 20
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests;

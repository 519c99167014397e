//! A guest's kernels on a disk (found by `inspect`'s model: `/boot`, also on a
//! separate /boot partition named by the guest's fstab), opened for
//! [`super::judge`], an external kernel on the host, and the extraction of a
//! kernel and its initramfs to a host directory (plan, then apply).
//!
//! Names come from the guest and are hostile: an extracted file keeps its base
//! name only if it is a plain name (no `/`, not `.` or `..`), symlinks are
//! resolved inside the guest by the reader, and nothing in the host directory
//! is followed: a file is written beside its final name and renamed over it.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::modtree::{find_blkfront, Blkfront, HostDir};
use super::{judge, read_bounded, Depth, KernelFiles, KernelReport, MAX_CONFIG};
use crate::disk::Disk;
use crate::error::{Error, ErrorKind, Result};
use crate::guest::reader::{from_io, GuestRead};
use crate::guest::{Guest, Kernel};
use crate::inspect::{self, Report};

/// The installed Linux system to work on: `part`, or the only one found.
pub fn choose_system(report: &Report, part: Option<u32>) -> Result<&Guest> {
    let list = || {
        let l: Vec<String> = report
            .systems
            .iter()
            .map(|g| {
                let name = g
                    .os_release
                    .get("PRETTY_NAME")
                    .map_or(String::new(), |n| format!(" ({n})"));
                format!("{}{name}", g.partition)
            })
            .collect();
        if l.is_empty() {
            "none found".to_string()
        } else {
            l.join(", ")
        }
    };
    match part {
        Some(n) => report
            .systems
            .iter()
            .find(|g| g.partition == n)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: partition {n} holds no installed Linux system; systems: {}",
                    report.image,
                    list()
                ))
            }),
        None if report.systems.len() == 1 => Ok(&report.systems[0]),
        None => Err(Error::invalid(format!(
            "{}: {} installed Linux systems: choose one with --part N; systems: {}",
            report.image,
            if report.systems.is_empty() {
                "no"
            } else {
                "several"
            },
            list()
        ))),
    }
}

/// Fill the cheap verdict (config file and image header) of each of `kernels`,
/// read through `fs`; `strip_boot` when `fs` is a separate /boot filesystem
/// (the paths say `/boot/…`).
pub fn cheap_verdicts(kernels: &mut [Kernel], fs: &dyn GuestRead, strip_boot: bool) {
    let inside = |p: &str| -> String {
        if strip_boot {
            p.strip_prefix("/boot").unwrap_or(p).to_string()
        } else {
            p.to_string()
        }
    };
    for k in kernels {
        let files = || -> Result<KernelFiles<'_>> {
            let image = fs.open(inside(&k.image).as_bytes())?;
            let config = match &k.config {
                Some(c) => {
                    let mut f = fs.open(inside(c).as_bytes())?;
                    Some((c.clone(), read_bounded(&mut f, MAX_CONFIG, c)?))
                }
                None => None,
            };
            Ok(KernelFiles {
                version: k.version.clone(),
                image_path: k.image.clone(),
                image,
                config,
                initrd: None,
                module_tree: None,
            })
        };
        let r = match files() {
            Ok(f) => judge(f, Depth::Cheap),
            Err(e) => unreadable(k, e),
        };
        k.verdict = r.verdict;
        k.reasons = r.reasons;
    }
}

/// A guest's readers: its root filesystem and, when separate, its /boot.
pub struct GuestFiles {
    /// The system.
    pub guest: Guest,
    root: Box<dyn GuestRead>,
    boot: Option<Box<dyn GuestRead>>,
    /// Fallbacks and limits met while opening (notes).
    pub notes: Vec<crate::finding::Finding>,
}

impl GuestFiles {
    /// Open the system on `part` (or the only one) of `disk`.
    pub fn open(disk: Arc<Disk>, part: Option<u32>) -> Result<GuestFiles> {
        let report = inspect::inspect(Arc::clone(&disk))?;
        GuestFiles::from_report(disk, &report, part)
    }

    /// [`GuestFiles::open`] with the inspection already made.
    pub fn from_report(disk: Arc<Disk>, report: &Report, part: Option<u32>) -> Result<GuestFiles> {
        let guest = choose_system(report, part)?.clone();
        let mut notes = Vec::new();
        let root = inspect::open_partition(&disk, report, guest.partition, &mut notes)?;
        let boot = match guest.kernels.first().map(|k| k.partition) {
            Some(b) if b != guest.partition => {
                Some(inspect::open_partition(&disk, report, b, &mut notes)?)
            }
            _ => None,
        };
        Ok(GuestFiles {
            guest,
            root,
            boot,
            notes,
        })
    }

    /// The reader and the path inside it of a `/boot/...` path of `k`.
    fn boot_file<'s, 'p>(&'s self, k: &Kernel, shown: &'p str) -> (&'s dyn GuestRead, &'p str) {
        match &self.boot {
            Some(b) if k.partition != self.guest.partition => {
                (&**b, shown.strip_prefix("/boot").unwrap_or(shown))
            }
            _ => (&*self.root, shown),
        }
    }

    /// The files of kernel `k`, opened.
    pub fn files(&self, k: &Kernel) -> Result<KernelFiles<'_>> {
        let (fs, p) = self.boot_file(k, &k.image);
        let image = fs.open(p.as_bytes())?;
        let config = match &k.config {
            Some(c) => {
                let (fs, p) = self.boot_file(k, c);
                let mut f = fs.open(p.as_bytes())?;
                Some((c.clone(), read_bounded(&mut f, MAX_CONFIG, c)?))
            }
            None => None,
        };
        let initrd = match &k.initrd {
            Some(i) => {
                let (fs, p) = self.boot_file(k, i);
                Some((i.clone(), fs.open(p.as_bytes())?))
            }
            None => None,
        };
        let tree = format!("/lib/modules/{}", k.version);
        let module_tree = match find_blkfront(&*self.root, &tree) {
            Ok(Some(b)) => Some((tree, b != Blkfront::Absent)),
            _ => None,
        };
        Ok(KernelFiles {
            version: k.version.clone(),
            image_path: k.image.clone(),
            image,
            config,
            initrd,
            module_tree,
        })
    }

    /// Judge every kernel of the guest.
    pub fn judge_all(&self, depth: Depth) -> Vec<KernelReport> {
        self.guest
            .kernels
            .iter()
            .map(|k| match self.files(k) {
                Ok(f) => judge(f, depth),
                Err(e) => unreadable(k, e),
            })
            .collect()
    }

    /// The kernel of version `v`.
    pub fn kernel(&self, v: &str) -> Result<&Kernel> {
        self.guest
            .kernels
            .iter()
            .find(|k| k.version == v)
            .ok_or_else(|| {
                let l: Vec<&str> = self
                    .guest
                    .kernels
                    .iter()
                    .map(|k| k.version.as_str())
                    .collect();
                Error::not_found(format!(
                    "no kernel {v} in the guest's /boot; kernels: {}",
                    if l.is_empty() {
                        "none".to_string()
                    } else {
                        l.join(", ")
                    }
                ))
            })
    }
}

/// The report of a kernel whose files cannot be opened.
fn unreadable(k: &Kernel, e: Error) -> KernelReport {
    KernelReport {
        version: k.version.clone(),
        image: k.image.clone(),
        format: super::image::Format::Unknown,
        compression: None,
        config_source: super::ConfigSource::None,
        verdict: vec!["not-ready"],
        reasons: vec![format!("cannot read its files: {e}")],
        min_memory_mib: None,
        initramfs: None,
    }
}

/// An external kernel on the host: `--kernel`, `--kernel-config`, `--initrd`,
/// `--modules`. The config defaults to `config-VER` beside the kernel and the
/// initramfs to `initrd.img-VER` beside it, when they exist.
#[derive(Clone, Debug)]
pub struct HostKernel {
    /// The kernel image.
    pub kernel: PathBuf,
    /// Its config.
    pub config: Option<PathBuf>,
    /// Its initramfs.
    pub initrd: Option<PathBuf>,
    /// Its module tree (`/lib/modules/VER`).
    pub modules: Option<PathBuf>,
}

/// Judge an external kernel.
pub fn judge_host(h: &HostKernel, depth: Depth) -> Result<KernelReport> {
    let open = |p: &Path| {
        fs::File::open(p).map_err(|e| {
            let kind = if e.kind() == io::ErrorKind::NotFound {
                ErrorKind::NotFound
            } else {
                ErrorKind::Io
            };
            Error::new(kind, format!("{}: {e}", p.display()))
        })
    };
    let name = h
        .kernel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name_version = super::version_from_name(&name).map(str::to_string);
    let beside = |prefix: &str| {
        let v = name_version.as_ref()?;
        let p = h.kernel.with_file_name(format!("{prefix}{v}"));
        p.is_file().then_some(p)
    };
    let mut image = open(&h.kernel)?;
    let version = match &name_version {
        Some(v) => v.clone(),
        None => super::image::Header::read(&mut image)
            .ok()
            .and_then(|hd| hd.release().map(str::to_string))
            .unwrap_or(name),
    };
    let config = match h.config.clone().or_else(|| beside("config-")) {
        Some(p) => {
            let mut f = open(&p)?;
            Some((
                p.display().to_string(),
                read_bounded(&mut f, MAX_CONFIG, &p.display().to_string())?,
            ))
        }
        None => None,
    };
    let initrd = match h.initrd.clone().or_else(|| beside("initrd.img-")) {
        Some(p) => Some((
            p.display().to_string(),
            Box::new(io::BufReader::new(open(&p)?)) as Box<dyn crate::guest::reader::ReadSeek>,
        )),
        None => None,
    };
    let module_tree = h.modules.as_ref().map(|m| {
        let found = find_blkfront(&HostDir(m.clone()), "/")
            .is_ok_and(|b| b.is_some_and(|b| b != Blkfront::Absent));
        (m.display().to_string(), found)
    });
    Ok(judge(
        KernelFiles {
            version,
            image_path: h.kernel.display().to_string(),
            image: Box::new(io::BufReader::new(image)),
            config,
            initrd,
            module_tree,
        },
        depth,
    ))
}

/// One file extracted (or found identical).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Extracted {
    /// Its path in the guest.
    pub guest_path: String,
    /// Where it is on the host.
    pub host_path: PathBuf,
    /// Bytes.
    pub bytes: u64,
    /// `written`, `identical` (already there, kept) or `replaced` (`--force`).
    pub action: &'static str,
}

/// The base name a guest path may have on the host: a plain name, never a path.
pub fn host_name(guest_path: &str) -> Result<&str> {
    let name = guest_path.rsplit('/').next().unwrap_or("");
    if name.is_empty() || name == "." || name == ".." || name.contains('\0') {
        return Err(Error::refused(format!(
            "{guest_path}: its name cannot be a host file name; not extracted"
        )));
    }
    Ok(name)
}

fn sha256_stream(r: &mut dyn Read, what: &str) -> Result<(Vec<u8>, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(g) => g,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(from_io(e, format!("reading {what}"))),
        };
        h.update(&buf[..got]);
        n += got as u64;
    }
    Ok((h.finalize().to_vec(), n))
}

/// Copy kernel `version`'s image and initramfs to `to` (created when missing),
/// keeping their names. An existing different file is refused, before any byte
/// is written, unless `force`; an identical one is kept.
pub fn extract(g: &GuestFiles, version: &str, to: &Path, force: bool) -> Result<Vec<Extracted>> {
    let k = g.kernel(version)?;
    let mut wanted = vec![k.image.clone()];
    wanted.extend(k.initrd.clone());
    // Plan: names, and what is already there.
    let mut plan = Vec::new();
    for gp in &wanted {
        let name = host_name(gp)?;
        let host = to.join(name);
        let (fs, p) = g.boot_file(k, gp);
        let (sum, bytes) = sha256_stream(&mut fs.open(p.as_bytes())?, gp)?;
        let action = match fs::symlink_metadata(&host) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => "written",
            Err(e) => return Err(Error::io(format!("{}", host.display()), e)),
            Ok(m) if m.is_file() => {
                let mut f =
                    fs::File::open(&host).map_err(|e| Error::io(host.display().to_string(), e))?;
                if sha256_stream(&mut f, &host.display().to_string())?.0 == sum {
                    "identical"
                } else if force {
                    "replaced"
                } else {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "{} exists and differs from the guest's {gp}: not overwritten \
                             (use --force to replace it)",
                            host.display()
                        ),
                    ));
                }
            }
            Ok(_) if force => "replaced",
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a regular file: not overwritten (use --force to \
                         replace it)",
                        host.display()
                    ),
                ))
            }
        };
        plan.push((gp.clone(), host, bytes, action, sum));
    }
    // Apply.
    fs::create_dir_all(to).map_err(|e| Error::io(format!("creating {}", to.display()), e))?;
    let mut done = Vec::new();
    for (gp, host, bytes, action, sum) in plan {
        if action != "identical" {
            let name = host_name(&gp)?;
            let tmp = to.join(format!(".{name}.domuify-tmp"));
            let _ = fs::remove_file(&tmp);
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
            let (fs_, p) = g.boot_file(k, &gp);
            let mut h = Sha256::new();
            let mut src = fs_.open(p.as_bytes())?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = fs::remove_file(&tmp);
                        return Err(from_io(e, format!("reading {gp}")));
                    }
                };
                h.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
            }
            out.sync_all()
                .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
            if h.finalize().to_vec() != sum {
                let _ = fs::remove_file(&tmp);
                return Err(Error::corrupt(format!("{gp} changed while it was copied")));
            }
            if action == "replaced" && fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
                let _ = fs::remove_file(&tmp);
                return Err(Error::refused(format!(
                    "{} is a directory: not replaced",
                    host.display()
                )));
            }
            fs::rename(&tmp, &host).map_err(|e| {
                Error::io(
                    format!("renaming {} to {}", tmp.display(), host.display()),
                    e,
                )
            })?;
        }
        done.push(Extracted {
            guest_path: gp,
            host_path: host,
            bytes,
            action,
        });
    }
    Ok(done)
}

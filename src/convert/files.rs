//! The host files a domU plan writes (the guest's kernel and initramfs, the
//! split partitions, the config): planned as new, identical (kept) or refused
//! before anything is written, then written in order.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::DomuPlan;
use crate::disk::{Disk, ReadAt, Window};
use crate::domu;
use crate::error::{Error, ErrorKind, Result};
use crate::kernel::guest::GuestFiles;
use crate::plan::boot::BootKernel;

/// What happens to one host file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileAction {
    /// Created.
    Write,
    /// Already there with the same bytes: kept.
    Identical,
    /// There and different: replaced (`--force`).
    Replace,
}

/// Which host file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum HostKind {
    /// The guest's kernel image, copied out.
    Kernel,
    /// The guest's initramfs, copied out.
    Initramfs,
    /// An exported partition as its own file.
    Split {
        /// The partition.
        partition: u32,
        /// Its first byte on the disk.
        start_bytes: u64,
        /// Its length.
        size_bytes: u64,
    },
    /// The domU config.
    Config,
}

/// One host file the conversion writes.
#[derive(Clone, Debug, Serialize)]
pub struct HostFile {
    /// Which file.
    #[serde(flatten)]
    pub kind: HostKind,
    /// What it is, for a human.
    pub what: String,
    /// Where.
    pub path: PathBuf,
    /// What happens to it.
    pub action: FileAction,
}

/// Are `a` (a host file) and the bytes `b` streams the same?
fn same_stream(a: &Path, b: &mut dyn Read) -> Result<bool> {
    let mut f = fs::File::open(a).map_err(|e| Error::io(a.display().to_string(), e))?;
    let mut x = vec![0u8; 1 << 20];
    let mut y = vec![0u8; 1 << 20];
    loop {
        let n = read_full(&mut f, &mut x).map_err(|e| Error::io(a.display().to_string(), e))?;
        let m = read_full(b, &mut y[..n.max(1)]).map_err(|e| Error::io("reading", e))?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// What happens to the host file `path` that would hold `new` (a stream of its
/// bytes, `None` when they are not known yet: they differ from anything there).
fn host_file_action(
    what: &str,
    path: &Path,
    new: Option<&mut dyn Read>,
    force: bool,
) -> Result<FileAction> {
    match fs::symlink_metadata(path) {
        Err(_) => Ok(FileAction::Write),
        Ok(m) => {
            let same = match new {
                Some(r) if m.is_file() => same_stream(path, r)?,
                _ => false,
            };
            if same {
                Ok(FileAction::Identical)
            } else if force {
                Ok(FileAction::Replace)
            } else {
                Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "{what} {} already exists and differs: --force replaces it (nothing was written)",
                        path.display()
                    ),
                ))
            }
        }
    }
}

/// The host files a domU plan writes, in order: the guest's kernel and
/// initramfs (when it boots them), the split partitions, the config (when
/// `config_path` names one). Each is new, identical to what it would hold (kept),
/// or refused unless `force`. `image_changes`: the partitions will be edited
/// first, so an existing split file cannot already be right.
pub fn plan_host_files(
    disk: &Arc<Disk>,
    domu: &DomuPlan,
    image_changes: bool,
    config_path: Option<&Path>,
    force: bool,
) -> Result<Vec<HostFile>> {
    let mut files = Vec::new();
    if let (BootKernel::Guest { version }, Some(g), crate::xlcfg::Boot::Kernel { kernel, .. }) =
        (&domu.boot.kernel, &domu.guest, &domu.config.config.boot)
    {
        let dir = Path::new(kernel).parent().unwrap_or(Path::new("."));
        let k = g.kernel(version)?;
        let kf = g.files(k)?;
        let mut list: Vec<(
            HostKind,
            String,
            Box<dyn crate::guest::reader::ReadSeek + '_>,
        )> = vec![(HostKind::Kernel, k.image.clone(), kf.image)];
        if let Some((p, r)) = kf.initrd {
            list.push((HostKind::Initramfs, p, r));
        }
        for (kind, gpath, mut r) in list {
            let what = if kind == HostKind::Kernel {
                "the kernel"
            } else {
                "the initramfs"
            };
            let path = dir.join(crate::kernel::guest::host_name(&gpath)?);
            let action = host_file_action(what, &path, Some(&mut r), force)?;
            files.push(HostFile {
                kind,
                what: format!("{what} {gpath}"),
                path,
                action,
            });
        }
    }
    for s in &domu.config.split_files {
        let path = PathBuf::from(&s.target);
        let action = if image_changes {
            host_file_action("the split file", &path, None, force)?
        } else {
            let mut r = WindowReader {
                dev: Window::new(Arc::clone(disk), s.start_bytes, s.size_bytes)?,
                pos: 0,
            };
            host_file_action("the split file", &path, Some(&mut r), force)?
        };
        files.push(HostFile {
            kind: HostKind::Split {
                partition: s.partition,
                start_bytes: s.start_bytes,
                size_bytes: s.size_bytes,
            },
            what: format!("partition {}", s.partition),
            path,
            action,
        });
    }
    if let Some(p) = config_path {
        let action =
            host_file_action("the config file", p, Some(&mut domu.text.as_bytes()), force)?;
        files.push(HostFile {
            kind: HostKind::Config,
            what: "the domU config".into(),
            path: p.to_path_buf(),
            action,
        });
    }
    Ok(files)
}

/// Write the host files [`plan_host_files`] planned (the identical ones are
/// left alone), in order; the split files are read from `image` now. Returns
/// the paths written.
pub fn write_host_files(
    files: &[HostFile],
    boot: &BootKernel,
    guest: Option<&GuestFiles>,
    image: &Path,
    config_text: &str,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mkdir = |p: &Path| -> Result<()> {
        match p.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => fs::create_dir_all(d).map_err(|e| Error::io(d.display().to_string(), e)),
            None => Ok(()),
        }
    };
    let kernel_files: Vec<&HostFile> = files
        .iter()
        .filter(|f| matches!(f.kind, HostKind::Kernel | HostKind::Initramfs))
        .collect();
    if let (BootKernel::Guest { version }, Some(first)) = (boot, kernel_files.first()) {
        if kernel_files
            .iter()
            .any(|f| f.action != FileAction::Identical)
        {
            mkdir(&first.path)?;
            let dir = first.path.parent().unwrap_or(Path::new("."));
            let g = guest.ok_or_else(|| Error::not_found("the guest's files"))?;
            let force = kernel_files.iter().any(|f| f.action == FileAction::Replace);
            for x in crate::kernel::guest::extract(g, version, dir, force)? {
                if x.action != "identical" {
                    written.push(x.host_path);
                }
            }
        }
    }
    for f in files {
        if f.action == FileAction::Identical {
            continue;
        }
        match &f.kind {
            HostKind::Split {
                start_bytes,
                size_bytes,
                ..
            } => {
                mkdir(&f.path)?;
                domu::split_partition(
                    image,
                    *start_bytes,
                    *size_bytes,
                    &f.path,
                    f.action == FileAction::Replace,
                )?;
                written.push(f.path.clone());
            }
            HostKind::Config => {
                write_file(
                    &f.path,
                    config_text.as_bytes(),
                    f.action == FileAction::Replace,
                )?;
                written.push(f.path.clone());
            }
            HostKind::Kernel | HostKind::Initramfs => {}
        }
    }
    Ok(written)
}

/// A partition read as a stream.
struct WindowReader {
    dev: Window<Arc<Disk>>,
    pos: u64,
}

impl Read for WindowReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.dev.size().saturating_sub(self.pos);
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        if n == 0 {
            return Ok(0);
        }
        self.dev
            .read_exact_at(self.pos, &mut buf[..n])
            .map_err(std::io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Write a new host file (`replace`: over an existing one).
pub fn write_file(path: &Path, data: &[u8], replace: bool) -> Result<()> {
    use std::io::Write;
    let mut o = fs::OpenOptions::new();
    o.write(true);
    if replace {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    let mut f = o.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::new(
                ErrorKind::AlreadyExists,
                format!("{} already exists: --force replaces it", path.display()),
            )
        } else {
            Error::io(format!("cannot create {}", path.display()), e)
        }
    })?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

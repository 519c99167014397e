//! The whole job (`domuify convert`), and the domU planning it shares with
//! `domuify config`.
//!
//! One read of the image ([`crate::plan::gather_all`]) gives the facts; from
//! them, by pure planners: the device map ([`crate::plan::devmap`]), the fstab
//! rewrite ([`crate::plan::fstab`]), the boot kernel and its readiness
//! ([`crate::plan::boot`]), the module tree to copy ([`crate::modules`]), the
//! config ([`crate::domu`]), and what each host file (config, extracted kernel,
//! split partitions, undo log) will be. Every refusal is decided there, before
//! anything is written. [`apply`] then carries out exactly the plan: the image
//! edits in one write transaction ([`crate::writer::Writer`]: one lock, one undo
//! log), then the host files, the config last.
//!
//! A converted image plans to nothing: the fstab is already as planned, the
//! module tree is there, and the host files are identical; [`apply`] then
//! writes nothing.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::copy::Progress;
use crate::disk::{Disk, DiskKind, ReadAt, Window};
use crate::domu::{self, BootChoice, ConfigOptions, ConfigPlan};
use crate::error::{Error, ErrorKind, Result};
use crate::ext::Ext;
use crate::finding::Finding;
use crate::inspect::Report;
use crate::kernel::guest::GuestFiles;
use crate::modules::{self, ModulesOptions, ModulesPlan};
use crate::plan::boot::{self, BootAsk, BootKernel, BootPlan};
use crate::plan::devmap::{DeviceMap, MapOptions, Mode};
use crate::plan::{self, apply as fstab_apply, FstabInputs, FstabOptions, FstabPlan};
use crate::writer::{WriteOptions, Writer};
use crate::xlcfg::{self, Format};

/// What the user asked of the domU (the flags `config` and `convert` share).
#[derive(Debug)]
pub struct DomuRequest {
    /// The device map's options.
    pub map: MapOptions,
    /// dom0's fstab (`--host-fstab`): its text and how to name it.
    pub host_fstab: Option<(Vec<u8>, String)>,
    /// What boots.
    pub boot: BootAsk,
    /// Where the guest's kernel is extracted (`--kernel-dir`).
    pub kernel_dir: Option<PathBuf>,
    /// The rest of the config's options (`boot` and `min_memory_mib` are
    /// filled in from the boot plan).
    pub config: ConfigOptions,
    /// xl or xm.
    pub format: Format,
}

/// The domU half of a plan: what `config` needs, and what `convert` builds on.
pub struct DomuPlan {
    /// What was read of the image: the facts and the guest's fstab.
    pub inputs: FstabInputs,
    /// The inspection.
    pub report: Report,
    /// The device map.
    pub map: DeviceMap,
    /// The boot kernel, judged.
    pub boot: BootPlan,
    /// The config.
    pub config: ConfigPlan,
    /// The config as text.
    pub text: String,
    /// The guest's files, when a guest kernel was judged (for extraction).
    pub guest: Option<GuestFiles>,
}

/// The image's absolute path.
fn absolute(p: &Path) -> Result<PathBuf> {
    fs::canonicalize(p).map_err(|e| Error::io(p.display().to_string(), e))
}

/// Plan the domU of the guest on `disk` (opened read-only from `image`).
/// `kernel_dir_default` is where the guest's kernel goes when `req.kernel_dir`
/// is not given (`None`: it must be given).
pub fn plan_domu(
    disk: Arc<Disk>,
    image: &Path,
    mut req: DomuRequest,
    kernel_dir_default: Option<&Path>,
) -> Result<DomuPlan> {
    let (inputs, report) = plan::gather_all(Arc::clone(&disk), req.map.root)?;
    let host = plan::host::for_disk(
        &disk,
        &inputs.facts,
        req.host_fstab
            .as_ref()
            .map(|(t, w)| (t.as_slice(), w.as_str())),
    );
    let split_implies = req.map.mode.is_none() && req.config.split_to.is_some();
    if split_implies {
        req.map.mode = Some(Mode::Partitions);
    }
    let mut map = plan::device_map(&inputs, &host, &req.map)?;
    if split_implies {
        map.mode_reason = "--split-to given: each exported partition is its own file".into();
    }
    let needs_guest = !matches!(req.boot, BootAsk::Host(_));
    let guest = if needs_guest {
        Some(GuestFiles::from_report(
            Arc::clone(&disk),
            &report,
            Some(inputs.root),
        )?)
    } else {
        None
    };
    let ty = req.config.guest_type;
    let force = req.config.force;
    let boot = boot::plan_boot(req.boot, guest.as_ref(), ty, force)?;
    let choice = match &boot.kernel {
        BootKernel::Host { kernel, initrd } => BootChoice::Kernel {
            kernel: kernel.clone(),
            initrd: initrd.clone(),
        },
        BootKernel::Guest { version } => {
            let dir = req
                .kernel_dir
                .clone()
                .or_else(|| kernel_dir_default.map(Path::to_path_buf))
                .ok_or_else(|| {
                    Error::usage(
                        "the guest's kernel is extracted to --kernel-dir DIR: give it".to_string(),
                    )
                })?;
            BootChoice::GuestKernel {
                version: version.clone(),
                dir,
            }
        }
        BootKernel::Pygrub => BootChoice::Pygrub,
    };
    req.config.boot = Some(choice);
    req.config.min_memory_mib = boot.min_memory_mib;
    let image_abs = absolute(image)?;
    let is_block = disk.kind() == DiskKind::BlockDevice;
    let mut config = domu::plan(&report, &map, &image_abs, is_block, &req.config)?;
    config.findings.extend(boot.findings.iter().cloned());
    // A value the config syntax cannot carry is refused (exit 1), not a usage
    // error: the flags were well formed.
    let text =
        xlcfg::render(&config.config, req.format).map_err(|e| Error::refused(e.to_string()))?;
    Ok(DomuPlan {
        inputs,
        report,
        map,
        boot,
        config,
        text,
        guest,
    })
}

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

/// The module tree step.
#[derive(Clone, Debug, Serialize)]
pub struct ModulesStep {
    /// The partition it goes to (`None` for a bare filesystem).
    pub partition: Option<u32>,
    /// Copy it, or it is already there.
    pub copy: bool,
    /// The install plan.
    pub plan: ModulesPlan,
}

/// A default taken, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Taken {
    /// What was chosen (`root`, `kernel`, `name`, ...).
    pub what: String,
    /// The value.
    pub value: String,
    /// Why.
    pub reason: String,
}

/// `--undo FILE`, `--no-undo`, or the default (`NAME.undo` beside the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UndoChoice {
    /// `NAME.undo` next to the config.
    Default,
    /// `--undo FILE`.
    File(PathBuf),
    /// `--no-undo`.
    Off,
}

/// `convert`'s options beyond the domU's.
#[derive(Debug)]
pub struct ConvertOptions {
    /// The domU.
    pub domu: DomuRequest,
    /// `--modules DIR`: the host module tree to copy into the guest.
    pub modules: Option<PathBuf>,
    /// `--out FILE` (default `NAME.cfg` in the current directory).
    pub out: Option<PathBuf>,
    /// The undo log.
    pub undo: UndoChoice,
    /// Wait for another writer instead of refusing.
    pub wait: bool,
}

/// The conversion plan: everything that will be done, decided before any byte
/// is written.
#[derive(Serialize)]
pub struct ConvertPlan {
    /// The image as given.
    pub image: String,
    /// The guest's root partition.
    pub root: u32,
    /// Every default taken, with its reason.
    pub defaults: Vec<Taken>,
    /// The fstab rewrite (with the device map).
    pub fstab: FstabPlan,
    /// The module tree, when one is copied (or found there).
    pub modules: Option<ModulesStep>,
    /// The boot kernel and its judgement.
    pub boot: BootPlan,
    /// The config.
    pub config: ConfigPlan,
    /// The config's text.
    pub config_text: String,
    /// Host files written: the extracted kernel, the split partitions, the
    /// config (in the order they are written).
    pub files: Vec<HostFile>,
    /// The undo log of the image's edits, when the image changes and undo is on.
    pub undo: Option<PathBuf>,
    /// Does the image change?
    pub image_changes: bool,
    /// Is there anything to do at all?
    pub nothing_to_do: bool,
    /// Everything worth knowing, warnings first.
    pub findings: Vec<Finding>,
    #[serde(skip)]
    guest: Option<GuestFiles>,
    #[serde(skip)]
    modules_opts: Option<ModulesOptions>,
    #[serde(skip)]
    image_path: PathBuf,
    #[serde(skip)]
    wait: bool,
    #[serde(skip)]
    force: bool,
}

impl std::fmt::Debug for ConvertPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvertPlan")
            .field("image", &self.image)
            .field("root", &self.root)
            .field("image_changes", &self.image_changes)
            .finish_non_exhaustive()
    }
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

/// Plan the conversion of `image`. Only reads.
pub fn plan(image: &Path, mut o: ConvertOptions) -> Result<ConvertPlan> {
    let disk = Arc::new(Disk::open(image, crate::disk::Access::ReadOnly)?);
    let force = o.domu.config.force;
    o.domu.config.command = "convert";
    let mut defaults = Vec::new();
    // The config's place decides the default kernel directory: known only once
    // the name is, so plan with the current directory, then fix the paths.
    let out_given = o.out.clone();
    let cwd = std::env::current_dir().map_err(|e| Error::io("current directory", e))?;
    let kernel_default = match &out_given {
        Some(p) => p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or(cwd.clone(), Path::to_path_buf),
        None => cwd.clone(),
    };
    let kernel_dir_given = o.domu.kernel_dir.is_some();
    let boot_given = !matches!(o.domu.boot, BootAsk::Newest);
    let modules_from = o.modules.clone();
    if let Some(m) = &modules_from {
        modules::check_module_tree(m)?;
    }
    let domu = plan_domu(Arc::clone(&disk), image, o.domu, Some(&kernel_default))?;
    let root = domu.map.root;
    defaults.push(Taken {
        what: "guest".into(),
        value: format!("partition {root}"),
        reason: domu.map.root_reason.clone(),
    });
    defaults.push(Taken {
        what: "mode".into(),
        value: match domu.map.mode {
            Mode::WholeDisk => "whole-disk".into(),
            Mode::Partitions => "partitions".into(),
        },
        reason: domu.map.mode_reason.clone(),
    });
    defaults.push(Taken {
        what: "swap".into(),
        value: if domu.map.swaps.is_empty() {
            "none".into()
        } else {
            domu.map
                .swaps
                .iter()
                .map(|(n, _)| format!("partition {n} as /dev/{}", domu.map.vdev(*n).unwrap_or("?")))
                .collect::<Vec<_>>()
                .join(", ")
        },
        reason: if domu.map.swaps.is_empty() {
            "the guest's fstab names no swap partition on this disk (--swap N gives one)".into()
        } else {
            domu.map
                .swaps
                .iter()
                .map(|(_, why)| why.clone())
                .collect::<Vec<_>>()
                .join("; ")
        },
    });
    defaults.push(Taken {
        what: "kernel".into(),
        value: match &domu.boot.kernel {
            BootKernel::Host { kernel, .. } => kernel.display().to_string(),
            BootKernel::Guest { version } => format!("the guest's {version}"),
            BootKernel::Pygrub => "pygrub".into(),
        },
        reason: if boot_given {
            domu.boot.reason.clone()
        } else {
            format!(
                "{}; --kernel, --guest-kernel or --bootloader choose another",
                domu.boot.reason
            )
        },
    });
    defaults.push(Taken {
        what: "name".into(),
        value: domu.config.config.name.clone(),
        reason: domu.config.name_reason.clone(),
    });
    defaults.push(Taken {
        what: "memory".into(),
        value: format!("{} MiB", domu.config.config.memory_mib),
        reason: domu.config.memory_reason.clone(),
    });
    // The fstab, against the same map.
    let fstab = plan::plan_fstab_with(
        &domu.inputs,
        &domu.map,
        &FstabOptions {
            map: MapOptions::default(),
            revert: false,
            backup: true,
        },
    )?;
    let mut findings: Vec<Finding> = Vec::new();
    findings.extend(fstab.warnings.iter().cloned());
    for f in &domu.config.findings {
        if !findings.contains(f) {
            findings.push(f.clone());
        }
    }
    // The module tree.
    let part = (root != 0).then_some(root);
    let table = crate::part::read_table(&*disk, disk.logical_sector_size())?;
    let (start, len) = table.locate(part, &image.display().to_string(), disk.size())?;
    let guest_sys = domu
        .report
        .systems
        .iter()
        .find(|s| s.partition == root)
        .ok_or_else(|| Error::not_found(format!("partition {root}: no system")))?;
    let (modules, modules_opts) = match &modules_from {
        Some(from) => {
            let opts = ModulesOptions {
                from: from.clone(),
                version: None,
                replace: false,
            };
            let ext = Ext::open_read_only(Window::new(Arc::clone(&disk), start, len)?)?;
            let mp = modules::plan(&ext, &opts)?;
            let copy = !mp.exists;
            if mp.exists {
                findings.push(Finding::note(
                    format!("partition {root}: {}", mp.destination),
                    "already in the guest: not copied again (domuify modules --replace replaces it)",
                ));
            } else if let Some(e) = mp.refusal() {
                return Err(e);
            }
            (
                Some(ModulesStep {
                    partition: part,
                    copy,
                    plan: mp,
                }),
                copy.then_some(opts),
            )
        }
        None => {
            if let BootKernel::Host { kernel, .. } = &domu.boot.kernel {
                let ver = domu.boot.judged.first().map(|r| r.version.clone());
                if let Some(v) = ver.filter(|v| !guest_sys.module_trees.contains(v)) {
                    findings.push(Finding::warning(
                        format!("partition {root}: /lib/modules"),
                        format!(
                            "the guest has no /lib/modules/{v} for the kernel {}: its modules will not load; --modules DIR copies a tree (the seed copies dom0's /lib/modules/{v})",
                            kernel.display()
                        ),
                    ));
                }
            }
            (None, None)
        }
    };
    let image_changes = fstab.changes() || modules.as_ref().is_some_and(|m| m.copy);
    let config_path = match out_given {
        Some(p) => p,
        None => cwd.join(format!("{}.cfg", domu.config.config.name)),
    };
    let files = plan_host_files(&disk, &domu, image_changes, Some(&config_path), force)?;
    if let (false, Some(k)) = (
        kernel_dir_given,
        files.iter().find(|f| f.kind == HostKind::Kernel),
    ) {
        defaults.push(Taken {
            what: "kernel-dir".into(),
            value: k
                .path
                .parent()
                .unwrap_or(Path::new("."))
                .display()
                .to_string(),
            reason: "next to the config (--kernel-dir to choose)".into(),
        });
    }
    let undo = match (&o.undo, image_changes) {
        (_, false) | (UndoChoice::Off, _) => None,
        (UndoChoice::File(p), true) => Some(p.clone()),
        (UndoChoice::Default, true) => Some(config_path.with_extension("undo")),
    };
    if let Some(u) = &undo {
        if fs::symlink_metadata(u).is_ok() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "the undo file {} already exists: an undo file is never overwritten (it may be the only way back for an earlier run); move it away, or give --undo FILE or --no-undo (nothing was written)",
                    u.display()
                ),
            ));
        }
        if o.undo == UndoChoice::Default {
            defaults.push(Taken {
                what: "undo".into(),
                value: u.display().to_string(),
                reason: "next to the config (--undo FILE to choose, --no-undo for none)".into(),
            });
        }
    }
    let nothing_to_do = !image_changes && files.iter().all(|f| f.action == FileAction::Identical);
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(ConvertPlan {
        image: image.display().to_string(),
        root,
        defaults,
        fstab,
        modules,
        boot: domu.boot,
        config: domu.config,
        config_text: domu.text,
        files,
        undo,
        image_changes,
        nothing_to_do,
        findings,
        guest: domu.guest,
        modules_opts,
        image_path: image.to_path_buf(),
        wait: o.wait,
        force,
    })
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

/// What [`apply`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Applied {
    /// The fstab was rewritten.
    pub fstab_written: bool,
    /// Module tree entries copied.
    pub module_entries: u64,
    /// Host files written (not the identical ones).
    pub files_written: Vec<PathBuf>,
    /// The undo log kept.
    pub undo: Option<PathBuf>,
}

/// Carry out `plan`: the image's edits in one write transaction (refused when
/// mounted or locked, before any byte), then the host files, the config last.
pub fn apply(plan: &ConvertPlan, progress: Option<&dyn Progress>) -> Result<Applied> {
    apply_with_fault(plan, progress, None)
}

/// [`apply`] with the image's writes failing after `fail_after.allow` (crash
/// tests; see [`crate::fault::FailAfter`]).
#[doc(hidden)]
pub fn apply_with_fault(
    plan: &ConvertPlan,
    progress: Option<&dyn Progress>,
    fail_after: Option<crate::fault::FailAfter>,
) -> Result<Applied> {
    let mut done = Applied::default();
    if plan.nothing_to_do {
        return Ok(done);
    }
    if plan.image_changes {
        let wopts = WriteOptions {
            undo: plan.undo.clone(),
            wait: plan.wait,
            force: plan.force,
            fail_after,
        };
        let mut w = Writer::open(&plan.image_path, &wopts)?;
        let part = (plan.root != 0).then_some(plan.root);
        let result = (|| -> Result<(bool, u64)> {
            let ext = w.ext(part)?;
            let mut fstab_written = false;
            if plan.fstab.changes() {
                fstab_apply::apply_fstab(ext, &plan.fstab)?;
                fstab_written = true;
            }
            let mut entries = 0;
            if let (Some(opts), Some(step)) = (&plan.modules_opts, &plan.modules) {
                let ext = w.ext(step.partition)?;
                let mp = modules::plan(ext, opts)?;
                if let Some(e) = mp.refusal() {
                    return Err(e);
                }
                let rep = modules::apply(ext, &mp, progress)?;
                entries = rep.files + rep.dirs + rep.symlinks;
            }
            Ok((fstab_written, entries))
        })();
        match result {
            Ok((f, n)) => {
                w.commit()?;
                done.fstab_written = f;
                done.module_entries = n;
                done.undo = plan.undo.clone();
            }
            Err(e) => return Err(w.abort(e)),
        }
    }
    // Host files, in plan order: the kernel, the split partitions, the config.
    done.files_written = write_host_files(
        &plan.files,
        &plan.boot.kernel,
        plan.guest.as_ref(),
        &plan.image_path,
        &plan.config_text,
    )?;
    Ok(done)
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

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
//!
//! Parts: `domu_plan` (the domU half `config` uses too: map, boot kernel,
//! config), `files` (the host files, planned then written); this module the
//! whole plan and its apply.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::copy::Progress;
use crate::disk::{Disk, ReadAt, Window};
use crate::domu::ConfigPlan;
use crate::error::{Error, ErrorKind, Result};
use crate::ext::Ext;
use crate::finding::Finding;
use crate::kernel::guest::GuestFiles;
use crate::modules::{self, ModulesOptions, ModulesPlan};
use crate::plan::boot::{BootAsk, BootKernel, BootPlan};
use crate::plan::devmap::{MapOptions, Mode};
use crate::plan::{self, apply as fstab_apply, FstabOptions, FstabPlan};
use crate::writer::{WriteOptions, Writer};

mod domu_plan;
mod files;

pub use domu_plan::{plan_domu, DomuPlan, DomuRequest};
pub use files::{plan_host_files, write_file, write_host_files, FileAction, HostFile, HostKind};

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
    let modules = match &modules_from {
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
            Some(ModulesStep {
                partition: part,
                copy,
                plan: mp,
            })
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
            None
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
        image_path: image.to_path_buf(),
        wait: o.wait,
        force,
    })
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
            if let Some(step) = plan.modules.as_ref().filter(|m| m.copy) {
                let ext = w.ext(step.partition)?;
                let mp = modules::recheck(ext, &step.plan)?;
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

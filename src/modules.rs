//! Installing a host kernel module tree into the guest (`domuify modules`): the
//! seed guide's `cp -r /lib/modules/$(uname -r) …`, done offline through the
//! write engine.
//!
//! Plan, then apply. [`plan`] reads the guest and the host tree and says what
//! would be copied, where (the guest's `/lib/modules/VER`, a usrmerge
//! `/lib -> usr/lib` followed inside the guest and kept a symlink), and whether
//! it fits: the blocks and inodes the tree needs against those free, plus, with
//! `--replace`, those the old tree gives back. [`apply`] is the only code that
//! writes: it removes the old tree (with `replace`), then copies the new one with
//! [`copy::copy_in`] (modes, owners, times, symlinks as symlinks). Every refusal
//! (not a module tree, the version already there, no room) comes from [`plan`],
//! before any byte changes.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::copy::{self, CopyInReport, Progress};
use crate::disk::{ReadAt, WriteAt};
use crate::error::{Error, ErrorKind, Result};
use crate::ext::{Ext, FileType, Ino, Space};
use crate::finding::Finding;
use crate::writer::ops;

/// What to install.
#[derive(Clone, Debug)]
pub struct ModulesOptions {
    /// The host module tree (`/lib/modules/VER` of the host by default).
    pub from: PathBuf,
    /// The version directory's name in the guest; DIR's own name by default.
    pub version: Option<String>,
    /// Remove an existing `/lib/modules/VER` of the guest first.
    pub replace: bool,
}

/// Blocks and inodes, as the plan shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SpaceJson {
    /// Filesystem blocks.
    pub blocks: u64,
    /// Inodes.
    pub inodes: u64,
}

impl From<Space> for SpaceJson {
    fn from(s: Space) -> Self {
        SpaceJson {
            blocks: s.blocks,
            inodes: s.inodes,
        }
    }
}

/// What `modules` would do: data, printable and serialisable.
#[derive(Clone, Debug, Serialize)]
pub struct ModulesPlan {
    /// The host tree copied.
    pub source: String,
    /// The version directory's name in the guest.
    pub version: String,
    /// Where it goes, as the guest names it (`/lib/modules/VER`).
    pub destination: String,
    /// Where that really is once the guest's symlinks are followed
    /// (`/usr/lib/modules/VER` on a usrmerge system).
    pub resolved_destination: String,
    /// `/lib/modules` must be created first.
    pub create_modules_dir: bool,
    /// The guest already has this version.
    pub exists: bool,
    /// The old tree is removed first (`--replace`).
    pub replace: bool,
    /// Regular files to copy (hard links counted once).
    pub files: u64,
    /// Directories, files and symlinks to copy.
    pub entries: u64,
    /// Bytes of file data.
    pub bytes: u64,
    /// The filesystem's block size.
    pub block_size: u32,
    /// Blocks and inodes the copy needs (data, mapping and directory blocks).
    pub need: SpaceJson,
    /// Blocks and inodes free now.
    pub free: SpaceJson,
    /// Blocks and inodes the removal of the old tree gives back (`--replace`).
    pub freed: SpaceJson,
    /// Whether it fits.
    pub fits: bool,
    /// What is worth knowing.
    pub findings: Vec<Finding>,
}

impl ModulesPlan {
    /// The refusal this plan carries, if any: the version exists without
    /// `--replace`, or the tree does not fit.
    pub fn refusal(&self) -> Option<Error> {
        if self.exists && !self.replace {
            return Some(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{} already exists in the guest: --replace removes it first, or --version names another directory",
                    self.destination
                ),
            ));
        }
        if !self.fits {
            return Some(Error::new(
                ErrorKind::NoSpace,
                format!(
                    "{} does not fit in the guest: it needs {} blocks of {} bytes and {} inodes, {} blocks and {} inodes are free{}; free space in the guest or copy a smaller tree",
                    self.source,
                    self.need.blocks,
                    self.block_size,
                    self.need.inodes,
                    self.free.blocks + self.freed.blocks,
                    self.free.inodes + self.freed.inodes,
                    if self.replace && self.exists { " after removing the old tree" } else { "" }
                ),
            ));
        }
        None
    }
}

/// The plan `p`, made against the filesystem as it was, checked again against
/// `ext` as it is now (another step of the same write may have taken blocks):
/// the target and the free space are read again; the host tree, measured once
/// by [`plan`], is not walked again.
pub fn recheck<D: ReadAt>(ext: &Ext<D>, p: &ModulesPlan) -> Result<ModulesPlan> {
    let (resolved_dir, dir) = modules_dir(ext)?;
    let old = match dir {
        Some(d) => ext.lookup(d, p.version.as_bytes())?,
        None => None,
    };
    let mut q = p.clone();
    if format!("{resolved_dir}/{}", p.version) != p.resolved_destination
        || old.is_some() != p.exists
        || dir.is_none() != p.create_modules_dir
    {
        return Err(Error::refused(format!(
            "{}: the guest changed between the plan and the write; plan again",
            p.destination
        )));
    }
    let free = ext.free_space();
    q.free = free.into();
    q.fits = q.need.blocks <= free.blocks + q.freed.blocks
        && q.need.inodes <= free.inodes + q.freed.inodes;
    Ok(q)
}

/// Does `dir` look like a kernel module tree (`modules.dep` or `kernel/`)?
pub fn check_module_tree(dir: &Path) -> Result<()> {
    let meta = fs::metadata(dir).map_err(|e| Error::io(format!("{}", dir.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::invalid(format!(
            "{} is not a directory (a kernel module tree is /lib/modules/VER)",
            dir.display()
        )));
    }
    let dep = fs::symlink_metadata(dir.join("modules.dep")).is_ok_and(|m| m.is_file());
    let kernel = fs::symlink_metadata(dir.join("kernel")).is_ok_and(|m| m.is_dir());
    if !dep && !kernel {
        return Err(Error::invalid(format!(
            "{} does not look like a kernel module tree: it has neither modules.dep nor kernel/ (give --from /lib/modules/VER)",
            dir.display()
        )));
    }
    Ok(())
}

/// The version a tree is installed as: `version`, or the tree's own name.
fn version_of(from: &Path, version: Option<&str>) -> Result<String> {
    let v = match version {
        Some(v) => v.to_string(),
        None => {
            let name = copy::source_name(from)?;
            String::from_utf8(name).map_err(|_| {
                Error::invalid(format!(
                    "{}: the directory's name is not UTF-8: give --version",
                    from.display()
                ))
            })?
        }
    };
    if !copy::valid_name(v.as_bytes()) {
        return Err(Error::invalid(format!(
            "{v:?} cannot be a directory name in /lib/modules"
        )));
    }
    Ok(v)
}

/// The host tree's children, sorted: what is copied into the version directory.
fn children(from: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    let rd =
        fs::read_dir(from).map_err(|e| Error::io(format!("cannot list {}", from.display()), e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io(format!("cannot list {}", from.display()), e))?;
        v.push(e.path());
    }
    v.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(v)
}

/// The guest path `/lib/modules` really is (symlinks followed inside the guest),
/// and its inode when it exists.
fn modules_dir<D: ReadAt>(ext: &Ext<D>) -> Result<(String, Option<Ino>)> {
    // Follow each component's symlinks inside the guest: `/lib -> usr/lib`.
    let lib = ext.resolve(b"/lib", true).map_err(|e| {
        e.context("the guest has no /lib (is this the root filesystem of an installed system?)")
    })?;
    if ext.stat(lib)?.file_type() != FileType::Directory {
        return Err(Error::invalid("the guest's /lib is not a directory"));
    }
    let lib_shown = match ext.stat(ext.resolve(b"/lib", false)?)?.file_type() {
        FileType::Symlink => {
            let target = ext.read_link(ext.resolve(b"/lib", false)?)?;
            let t = String::from_utf8_lossy(&target).into_owned();
            if t.starts_with('/') {
                t
            } else {
                format!("/{}", t.trim_start_matches("./"))
            }
        }
        _ => "/lib".to_string(),
    };
    let shown = format!("{}/modules", lib_shown.trim_end_matches('/'));
    match ext.lookup(lib, b"modules")? {
        None => Ok((shown, None)),
        Some(_) => {
            let ino = ext.resolve(b"/lib/modules", true)?;
            if ext.stat(ino)?.file_type() != FileType::Directory {
                return Err(Error::invalid(
                    "the guest's /lib/modules is not a directory",
                ));
            }
            Ok((shown, Some(ino)))
        }
    }
}

/// Blocks and inodes that removing the tree at `ino` gives back: every inode,
/// and the blocks of those no other name outside the tree keeps (a file with
/// several links is not counted: an underestimate, on the safe side).
fn tree_space<D: ReadAt>(ext: &Ext<D>, ino: Ino) -> Result<Space> {
    let per_block = u64::from(ext.block_size() / 512).max(1);
    let mut s = Space::default();
    let mut stack = vec![ino];
    let mut seen = 0u64;
    while let Some(i) = stack.pop() {
        seen += 1;
        if seen > 50_000_000 {
            return Err(Error::corrupt("the old module tree has no end (a loop?)"));
        }
        let st = ext.stat(i)?;
        match st.file_type() {
            FileType::Directory => {
                s.inodes += 1;
                s.blocks += st.blocks_512 / per_block;
                for e in ext.read_dir(i)? {
                    stack.push(e.ino);
                }
            }
            _ if st.links <= 1 => {
                s.inodes += 1;
                s.blocks += st.blocks_512 / per_block;
            }
            _ => {}
        }
    }
    Ok(s)
}

/// Plan installing `opts.from` into the guest filesystem `ext`. Errors: the
/// source is not a module tree, the guest has no `/lib`. The refusals a user can
/// act on (exists, no room) are in [`ModulesPlan::refusal`].
pub fn plan<D: ReadAt>(ext: &Ext<D>, opts: &ModulesOptions) -> Result<ModulesPlan> {
    check_module_tree(&opts.from)?;
    let version = version_of(&opts.from, opts.version.as_deref())?;
    let (resolved_dir, dir) = modules_dir(ext)?;
    let old = match dir {
        Some(d) => ext.lookup(d, version.as_bytes())?,
        None => None,
    };
    let freed = match (old, opts.replace) {
        (Some(ino), true) => tree_space(ext, ino)?,
        _ => Space::default(),
    };
    let m = copy::measure(ext, &children(&opts.from)?)?;
    let mut need = m.need;
    // The version directory itself, and a new block in /lib/modules for its name.
    need.inodes += 1;
    need.blocks += 1;
    if dir.is_none() {
        need.inodes += 1;
        need.blocks += 2;
    }
    let free = ext.free_space();
    let fits =
        need.blocks <= free.blocks + freed.blocks && need.inodes <= free.inodes + freed.inodes;
    let mut findings = Vec::new();
    if resolved_dir != "/lib/modules" {
        findings.push(Finding::note(
            "/lib",
            format!("/lib is a symlink: the tree goes to {resolved_dir}/{version}, and /lib stays a symlink"),
        ));
    }
    let ver_dir = opts.from.join("build");
    if fs::symlink_metadata(&ver_dir).is_ok_and(|m| m.file_type().is_symlink()) {
        findings.push(Finding::note(
            "build",
            "build and source symlinks are copied as symlinks (they name paths of the host)",
        ));
    }
    Ok(ModulesPlan {
        source: opts.from.display().to_string(),
        destination: format!("/lib/modules/{version}"),
        resolved_destination: format!("{resolved_dir}/{version}"),
        version,
        create_modules_dir: dir.is_none(),
        exists: old.is_some(),
        replace: opts.replace,
        files: m.files,
        entries: m.items + 1,
        bytes: m.bytes,
        block_size: ext.block_size(),
        need: need.into(),
        free: free.into(),
        freed: freed.into(),
        fits,
        findings,
    })
}

/// Carry out `plan` on `ext` (the filesystem it was made on): refuse as the plan
/// says, else remove the old tree (with `replace`), create `/lib/modules` when
/// missing, and copy the tree. The caller commits.
pub fn apply<D: WriteAt>(
    ext: &mut Ext<D>,
    plan: &ModulesPlan,
    progress: Option<&dyn Progress>,
) -> Result<CopyInReport> {
    if let Some(e) = plan.refusal() {
        return Err(e);
    }
    let from = PathBuf::from(&plan.source);
    if plan.create_modules_dir {
        ops::mkdir(ext, b"/lib/modules", true)?;
    }
    let dir = ext.resolve(b"/lib/modules", true)?;
    if plan.exists {
        ext.remove_tree(dir, plan.version.as_bytes())?;
    }
    let meta = fs::metadata(&from).map_err(|e| Error::io(format!("{}", from.display()), e))?;
    let node = copy::host_node(&meta);
    let ver = ext.mkdir(dir, plan.version.as_bytes(), &node)?;
    let dest = format!("/lib/modules/{}", plan.version);
    let mut rep = copy::copy_in(ext, &children(&from)?, dest.as_bytes(), progress)?;
    // After the children, so that the directory keeps the host's times.
    ext.set_attrs(ver, &node)?;
    rep.dirs += 1;
    Ok(rep)
}

/// The partition a command on "the guest" works on: `part` when given, else the
/// only installed Linux system on the disk (`None` for a bare filesystem). More
/// than one system, or none, is a usage error that lists what there is.
pub fn default_partition(
    report: &crate::inspect::Report,
    part: Option<u32>,
) -> Result<Option<u32>> {
    if part.is_some() {
        return Ok(part);
    }
    let list = || {
        let l: Vec<String> = report
            .systems
            .iter()
            .map(|s| {
                let name = s
                    .os_release
                    .get("PRETTY_NAME")
                    .cloned()
                    .unwrap_or_else(|| "Linux".into());
                match &s.hostname {
                    Some(h) => format!("partition {} ({name}, hostname {h})", s.partition),
                    None => format!("partition {} ({name})", s.partition),
                }
            })
            .collect();
        l.join(", ")
    };
    match report.systems.as_slice() {
        [only] if only.partition == 0 => Ok(None),
        [only] => Ok(Some(only.partition)),
        [] => Err(Error::usage(format!(
            "{}: no installed Linux system found (an ext filesystem holding /etc/fstab): choose the partition with --part N",
            report.image
        ))),
        _ => Err(Error::usage(format!(
            "{} holds more than one installed system: choose one with --part N; candidates: {}",
            report.image,
            list()
        ))),
    }
}

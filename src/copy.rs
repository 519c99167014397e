//! Copying trees between the host and a guest filesystem (`copy-in`,
//! `copy-out`), and the read side the read commands share ([`GuestRead`]).
//!
//! Reading goes through ext4-view ([`ViewReader`]) or, when ext4-view cannot read a
//! filesystem, through our engine ([`EngineReader`]). Paths are guest paths (bytes,
//! absolute, `/`-separated) resolved inside the guest.
//!
//! The host is never trusted to stay out of the way and the guest is hostile:
//! [`copy_out`] creates every host file with `O_CREAT|O_EXCL` (which never follows
//! a symlink), every directory with `mkdir` (which fails on anything existing), and
//! descends only into directories it has just created, so no write can land outside
//! the destination, whatever names or symlinks the guest holds. Names that cannot be
//! a single host path component (`.`, `..`, empty, containing `/` or NUL) are
//! skipped with a warning.
//!
//! [`copy_in`] measures the whole host tree first and asks the engine whether it
//! fits ([`Ext::ensure_space`]) before it writes anything.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::disk::{ReadAt, WriteAt};
use crate::error::{Error, ErrorKind, Result};
use crate::ext::{Ext, FileType, Ino, NewNode, Space, Timestamp};
use crate::guest::reader::{chain, show};
pub use crate::guest::reader::{EngineReader, GuestRead, Node, ViewReader};

/// Is `name` usable as one path component (guest or host)?
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}

/// Split an absolute guest path into (parent, last name); `None` for the root.
/// Repeated and trailing slashes are ignored.
pub fn split_guest_path(path: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    if path.first() != Some(&b'/') {
        return Err(Error::invalid(format!(
            "{}: guest paths must be absolute (start with /)",
            show(path)
        )));
    }
    if path.contains(&0) {
        return Err(Error::invalid("a guest path cannot contain a NUL byte"));
    }
    let parts: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Ok(None);
    };
    let mut parent = Vec::new();
    for d in dirs {
        parent.push(b'/');
        parent.extend_from_slice(d);
    }
    if parent.is_empty() {
        parent.push(b'/');
    }
    Ok(Some((parent, last.to_vec())))
}

fn join_guest(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// What [`copy_out`] did.
#[derive(Debug, Default)]
pub struct CopyOutReport {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Entries skipped because they were unsafe or failed (exit code 1).
    pub errors: Vec<String>,
    /// Entries skipped by design (device nodes, fifos, sockets).
    pub notes: Vec<String>,
    /// Damage met and stepped around: a directory met a second time (a
    /// directory hard link or a loop) is not copied again.
    pub warnings: Vec<String>,
    /// Directories copied so far, by inode number, with the guest path each was
    /// first met at.
    seen_dirs: HashMap<u64, Vec<u8>>,
}

fn system_time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nsec.min(999_999_999)));
    let secs = Duration::from_secs(t.sec.unsigned_abs());
    let base = if t.sec >= 0 {
        UNIX_EPOCH.checked_add(secs)
    } else {
        UNIX_EPOCH.checked_sub(secs)
    };
    base.and_then(|b| b.checked_add(nanos))
        .unwrap_or(UNIX_EPOCH)
}

/// Host permission bits for a copied-out guest mode: set-user-ID and set-group-ID
/// are dropped (a guest must not plant them on the host), the rest is kept.
fn host_perm(perm: u16) -> u32 {
    u32::from(perm & 0o1777)
}

/// Copy guest paths (recursively) into the existing host directory `host_dir`.
/// The root `/` copies the root's contents into `host_dir` itself. A symlink named
/// last is copied as a symlink, or followed (inside the guest) when the path ends
/// with `/`. Unsafe or
/// failing entries are skipped and listed in the report; the copy goes on.
pub fn copy_out(
    r: &dyn GuestRead,
    guest_paths: &[Vec<u8>],
    host_dir: &Path,
) -> Result<CopyOutReport> {
    let meta = fs::metadata(host_dir)
        .map_err(|e| Error::io(format!("host directory {}", host_dir.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::invalid(format!(
            "{} is not a directory",
            host_dir.display()
        )));
    }
    let mut rep = CopyOutReport::default();
    for gp in guest_paths {
        match split_guest_path(gp)? {
            None => {
                // The root: its contents go straight into host_dir.
                let node = r.node(b"/", true)?;
                if node.file_type != FileType::Directory {
                    return Err(Error::corrupt("the guest root is not a directory"));
                }
                if first_visit(r, b"/", &mut rep)? {
                    copy_children(r, b"/", host_dir, &mut rep)?;
                }
            }
            Some((_, name)) => {
                if !valid_name(&name) {
                    return Err(Error::invalid(format!(
                        "{}: cannot name a copy after \"{}\"",
                        show(gp),
                        show(&name)
                    )));
                }
                // A symlink named last is copied as a symlink; with a trailing
                // slash (`/lib/`) it is followed, inside the guest.
                let node = r.node(gp, gp.ends_with(b"/"))?;
                let dest = host_dir.join(OsStr::from_bytes(&name));
                copy_out_node(r, gp, &node, &dest, &mut rep);
            }
        }
    }
    Ok(rep)
}

/// Is this the first time the walk meets the directory at `gpath`? A second
/// meeting (the same inode under another name: a directory hard link, or an
/// ancestor, a loop) is recorded as a warning.
fn first_visit(r: &dyn GuestRead, gpath: &[u8], rep: &mut CopyOutReport) -> Result<bool> {
    let Some((id, _)) = r.dir_id(gpath)? else {
        return Ok(true);
    };
    if let Some(first) = rep.seen_dirs.get(&id) {
        rep.warnings.push(format!(
            "{}: skipped: directory inode {id} was already copied as {} (a directory hard link or a loop: the filesystem is damaged, `e2fsck -f` repairs it)",
            show(gpath),
            show(first)
        ));
        return Ok(false);
    }
    rep.seen_dirs.insert(id, gpath.to_vec());
    Ok(true)
}

fn copy_children(
    r: &dyn GuestRead,
    gpath: &[u8],
    dest: &Path,
    rep: &mut CopyOutReport,
) -> Result<()> {
    let mut names = Vec::new();
    for entry in r.list(gpath)? {
        match entry {
            Ok(name) if valid_name(&name) => names.push(name),
            Ok(name) if name == b"." || name == b".." => {}
            Ok(name) => rep.errors.push(format!(
                "{}: skipped an entry with an unsafe name {:?}",
                show(gpath),
                String::from_utf8_lossy(&name)
            )),
            Err(e) => rep.errors.push(format!("skipped an entry: {}", chain(&e))),
        }
    }
    let here = r.dir_id(gpath)?.map(|(id, _)| id);
    for name in names {
        let child = join_guest(gpath, &name);
        match r.node(&child, false) {
            Ok(node) if node.file_type == FileType::Directory && here.is_some() => {
                // A directory whose `..` names another parent is a second name
                // (a directory hard link): it is copied under its own parent.
                if let Some((id, up)) = r.dir_id(&child)? {
                    if up.is_some() && up != here {
                        rep.warnings.push(format!(
                            "{}: skipped: a second name of directory inode {id}, whose `..` is inode {} (a directory hard link: the filesystem is damaged, `e2fsck -f` repairs it)",
                            show(&child),
                            up.unwrap_or(0)
                        ));
                        continue;
                    }
                }
                let to = dest.join(OsStr::from_bytes(&name));
                copy_out_node(r, &child, &node, &to, rep);
            }
            Ok(node) => {
                let to = dest.join(OsStr::from_bytes(&name));
                copy_out_node(r, &child, &node, &to, rep);
            }
            Err(e) => rep
                .errors
                .push(format!("{}: skipped: {}", show(&child), chain(&e))),
        }
    }
    Ok(())
}

/// Copy one guest node to `dest`, which must not exist. Errors are recorded.
fn copy_out_node(
    r: &dyn GuestRead,
    gpath: &[u8],
    node: &Node,
    dest: &Path,
    rep: &mut CopyOutReport,
) {
    let result = match node.file_type {
        FileType::Regular => copy_out_file(r, gpath, node, dest, rep),
        FileType::Directory => copy_out_dir(r, gpath, node, dest, rep),
        FileType::Symlink => copy_out_symlink(r, gpath, node, dest, rep),
        other => {
            rep.notes.push(format!(
                "{}: skipped a {other:?} (only files, directories and symlinks are copied)",
                show(gpath)
            ));
            Ok(())
        }
    };
    if let Err(e) = result {
        rep.errors.push(format!("{}: {}", show(gpath), chain(&e)));
    }
}

fn copy_out_file(
    r: &dyn GuestRead,
    gpath: &[u8],
    node: &Node,
    dest: &Path,
    rep: &mut CopyOutReport,
) -> Result<()> {
    // O_CREAT|O_EXCL: fails on anything that exists, a symlink included.
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| Error::io(format!("cannot create {}", dest.display()), e))?;
    let n = {
        let mut w = io::BufWriter::with_capacity(1 << 20, &mut f);
        let n = r.copy_file(gpath, &mut w)?;
        w.flush()
            .map_err(|e| Error::io(format!("writing {}", dest.display()), e))?;
        n
    };
    set_mode_times(&f, node, dest)?;
    rep.files += 1;
    rep.bytes += n;
    Ok(())
}

fn copy_out_dir(
    r: &dyn GuestRead,
    gpath: &[u8],
    node: &Node,
    dest: &Path,
    rep: &mut CopyOutReport,
) -> Result<()> {
    if !first_visit(r, gpath, rep)? {
        return Ok(());
    }
    if rep.dirs >= r.inodes_count() {
        return Err(Error::corrupt(format!(
            "more directories than the filesystem has inodes ({}): a directory cycle in a damaged filesystem; not copied",
            r.inodes_count()
        )));
    }
    // mkdir fails on anything existing: we descend only into a directory we made.
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dest)
        .map_err(|e| Error::io(format!("cannot create directory {}", dest.display()), e))?;
    rep.dirs += 1;
    copy_children(r, gpath, dest, rep)?;
    let d =
        File::open(dest).map_err(|e| Error::io(format!("cannot open {}", dest.display()), e))?;
    set_mode_times(&d, node, dest)
}

/// Give a copied file or directory (open as `f`) the guest node's permission
/// bits (as [`host_perm`] allows), atime and mtime.
fn set_mode_times(f: &File, node: &Node, dest: &Path) -> Result<()> {
    f.set_permissions(fs::Permissions::from_mode(host_perm(node.perm)))
        .and_then(|()| {
            f.set_times(
                FileTimes::new()
                    .set_accessed(system_time(node.atime))
                    .set_modified(system_time(node.mtime)),
            )
        })
        .map_err(|e| Error::io(format!("setting mode and times of {}", dest.display()), e))
}

fn copy_out_symlink(
    r: &dyn GuestRead,
    gpath: &[u8],
    node: &Node,
    dest: &Path,
    rep: &mut CopyOutReport,
) -> Result<()> {
    let target = r.read_link(gpath)?;
    if target.is_empty() || target.contains(&0) {
        return Err(Error::corrupt(
            "symlink target is empty or holds a NUL byte",
        ));
    }
    // The link is recreated with the same text and never followed by us.
    std::os::unix::fs::symlink(OsStr::from_bytes(&target), dest)
        .map_err(|e| Error::io(format!("cannot create symlink {}", dest.display()), e))?;
    let at = filetime::FileTime::from_system_time(system_time(node.atime));
    let mt = filetime::FileTime::from_system_time(system_time(node.mtime));
    filetime::set_symlink_file_times(dest, at, mt)
        .map_err(|e| Error::io(format!("setting times of {}", dest.display()), e))?;
    rep.symlinks += 1;
    Ok(())
}

/// Progress of a [`copy_in`]: told the totals once, then each file's bytes.
pub trait Progress {
    /// The totals, before the first write.
    fn start(&self, files: u64, bytes: u64);
    /// `n` more bytes were copied.
    fn bytes(&self, n: u64);
    /// One more file, directory or symlink was done.
    fn item(&self);
    /// All done.
    fn finish(&self);
}

/// What [`copy_in`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyInReport {
    /// Regular files created or replaced.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links added to a file already copied.
    pub hard_links: u64,
    /// Bytes of file data.
    pub bytes: u64,
    /// Device nodes, fifos and sockets created.
    pub specials: u64,
    /// Host entries skipped (of a type the guest cannot hold).
    pub skipped: Vec<String>,
}

/// The space a host tree needs, measured before anything is written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    /// Blocks and inodes needed.
    pub need: Space,
    /// Regular files (hard links counted once).
    pub files: u64,
    /// Bytes of file data.
    pub bytes: u64,
    /// Directories, symlinks and files.
    pub items: u64,
}

/// Bytes a directory entry with a name of `len` bytes takes.
fn dirent_len(len: usize) -> u64 {
    ((8 + len as u64) + 3) & !3
}

/// Directory blocks needed to hold `entry_bytes` of entries (with `.`/`..` and a
/// checksum tail in each block): conservative.
fn dir_blocks(entry_bytes: u64, block_size: u64) -> u64 {
    let usable = block_size.saturating_sub(24).max(64);
    (entry_bytes + 24).div_ceil(usable)
}

fn host_meta(p: &Path) -> Result<fs::Metadata> {
    fs::symlink_metadata(p).map_err(|e| Error::io(format!("cannot stat {}", p.display()), e))
}

fn host_children(p: &Path) -> Result<Vec<(Vec<u8>, PathBuf)>> {
    let mut v = Vec::new();
    let rd = fs::read_dir(p).map_err(|e| Error::io(format!("cannot list {}", p.display()), e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io(format!("cannot list {}", p.display()), e))?;
        v.push((e.file_name().as_bytes().to_vec(), e.path()));
    }
    v.sort();
    Ok(v)
}

/// The data ranges `[start, end)` of the host file `f` of `len` bytes, as
/// `SEEK_DATA`/`SEEK_HOLE` report them (the whole file where the host
/// filesystem does not tell holes apart).
fn data_ranges(f: &File, len: u64) -> Vec<(u64, u64)> {
    use rustix::fs::{seek, SeekFrom};
    let mut out = Vec::new();
    let mut at = 0u64;
    while at < len {
        let start = match seek(f, SeekFrom::Data(at)) {
            Ok(s) => s,
            // No data after `at`: the rest is a hole.
            Err(rustix::io::Errno::NXIO) => return out,
            // SEEK_DATA not supported: all of it is data.
            Err(_) => {
                out.push((at, len));
                return out;
            }
        };
        let Ok(end) = seek(f, SeekFrom::Hole(start)) else {
            out.push((start.min(at), len));
            return out;
        };
        let end = end.min(len);
        if end <= start {
            break;
        }
        out.push((start, end));
        at = end;
    }
    out
}

/// Blocks of `block_size` bytes that hold data in the host file `p` of `len`
/// bytes (holes excluded).
fn data_blocks(p: &Path, len: u64, block_size: u64) -> Result<u64> {
    let f = File::open(p).map_err(|e| Error::io(format!("cannot open {}", p.display()), e))?;
    Ok(blocks_of(&data_ranges(&f, len), block_size))
}

fn blocks_of(ranges: &[(u64, u64)], block_size: u64) -> u64 {
    let mut n = 0u64;
    let mut last_block: Option<u64> = None;
    for &(a, b) in ranges {
        let mut first = a / block_size;
        let end = b.div_ceil(block_size);
        if last_block == Some(first) {
            // A block shared with the previous range counts once.
            first += 1;
        }
        n += end.saturating_sub(first);
        last_block = Some(end - 1);
    }
    n
}

/// A host file read as a whole, its holes given as zeros without reading them.
struct Sparse {
    file: File,
    ranges: Vec<(u64, u64)>,
    pos: u64,
    len: u64,
}

impl Read for Sparse {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let i = self.ranges.partition_point(|&(_, e)| e <= self.pos);
        let left = usize::try_from(self.len - self.pos).unwrap_or(usize::MAX);
        let n = match self.ranges.get(i) {
            Some(&(s, e)) if s <= self.pos => {
                let n = buf
                    .len()
                    .min(usize::try_from(e - self.pos).unwrap_or(usize::MAX));
                let got = self.file.read_at(&mut buf[..n], self.pos)?;
                if got == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file shrank while being copied",
                    ));
                }
                got
            }
            next => {
                let hole_end = next.map_or(self.len, |&(s, _)| s);
                let n = buf
                    .len()
                    .min(left)
                    .min(usize::try_from(hole_end - self.pos).unwrap_or(usize::MAX));
                buf[..n].fill(0);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

/// The guest name a host source path gets.
pub fn source_name(p: &Path) -> Result<Vec<u8>> {
    let name = match p.file_name() {
        Some(n) => n.to_os_string(),
        None => fs::canonicalize(p)
            .ok()
            .and_then(|c| c.file_name().map(|n| n.to_os_string()))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: cannot name its copy in the guest",
                    p.display()
                ))
            })?,
    };
    let b = name.as_bytes().to_vec();
    if !valid_name(&b) {
        return Err(Error::invalid(format!(
            "{}: not a valid guest name",
            p.display()
        )));
    }
    Ok(b)
}

/// Measure what copying `sources` into one guest directory costs on `ext`.
pub fn measure<D: ReadAt>(ext: &Ext<D>, sources: &[PathBuf]) -> Result<Measure> {
    let bs = u64::from(ext.block_size().max(1024));
    let mut m = Measure::default();
    let mut seen = std::collections::HashSet::new();
    let mut top_entries = 0u64;
    for s in sources {
        let name = source_name(s)?;
        top_entries += dirent_len(name.len());
        measure_node(ext, s, &host_meta(s)?, bs, &mut m, &mut seen)?;
    }
    // The destination directory may need new blocks (and an index block).
    m.need.blocks += dir_blocks(top_entries, bs) + 1;
    Ok(m)
}

fn measure_node<D: ReadAt>(
    ext: &Ext<D>,
    p: &Path,
    meta: &fs::Metadata,
    bs: u64,
    m: &mut Measure,
    seen: &mut std::collections::HashSet<(u64, u64)>,
) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_dir() {
        // A directory met twice (a bind mount inside itself) is copied once.
        if !seen.insert((meta.dev(), meta.ino())) {
            return Ok(());
        }
        m.items += 1;
        m.need.inodes += 1;
        let mut entry_bytes = 0u64;
        for (name, child) in host_children(p)? {
            entry_bytes += dirent_len(name.len());
            measure_node(ext, &child, &host_meta(&child)?, bs, m, seen)?;
        }
        // Directory blocks, plus one for a possible extent-tree block.
        let blocks = dir_blocks(entry_bytes, bs);
        m.need.blocks += blocks + u64::from(blocks > 4);
    } else if ft.is_file() {
        m.items += 1;
        if meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) {
            return Ok(());
        }
        let c = ext.sparse_file_cost(meta.len(), data_blocks(p, meta.len(), bs)?);
        m.need.blocks += c.blocks;
        m.need.inodes += c.inodes;
        m.files += 1;
        m.bytes += meta.len();
    } else if ft.is_symlink() {
        m.items += 1;
        m.need.inodes += 1;
        if meta.len() > 59 {
            m.need.blocks += 1;
        }
    } else {
        // Device nodes, fifos, sockets: one inode each.
        m.items += 1;
        m.need.inodes += 1;
    }
    Ok(())
}

/// (major, minor) of a Linux `dev_t`.
fn dev_numbers(rdev: u64) -> (u32, u32) {
    // OK to truncate: Linux majors and minors are 32-bit.
    let major = (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32;
    let minor = ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32;
    (major, minor)
}

fn now() -> Timestamp {
    Timestamp::now()
}

/// The node a host entry's metadata gives a new guest inode: permission bits,
/// owner, access and modification times; change time now.
pub fn host_node(meta: &fs::Metadata) -> NewNode {
    let ts = |s: i64, ns: i64| Timestamp {
        sec: s,
        nsec: u32::try_from(ns).unwrap_or(0).min(999_999_999),
    };
    NewNode {
        // OK to truncate: the mask keeps 12 bits.
        perm: (meta.mode() & 0o7777) as u16,
        uid: meta.uid(),
        gid: meta.gid(),
        atime: ts(meta.atime(), meta.atime_nsec()),
        mtime: ts(meta.mtime(), meta.mtime_nsec()),
        ctime: now(),
    }
}

/// A reader that reports progress.
struct Counted<'a, R> {
    inner: R,
    progress: Option<&'a dyn Progress>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = self.progress {
            p.bytes(n as u64);
        }
        Ok(n)
    }
}

struct CopyIn<'a, D> {
    ext: &'a mut Ext<D>,
    progress: Option<&'a dyn Progress>,
    links: HashMap<(u64, u64), Ino>,
    /// Host directories copied, by (device, inode).
    host_dirs: std::collections::HashSet<(u64, u64)>,
    report: CopyInReport,
}

/// Copy host paths (recursively) into the guest directory `guest_dir` (resolved
/// inside the guest, so `/lib` of a usrmerge system is `/usr/lib`), keeping modes,
/// owners, times, symlinks as symlinks, hard links as hard links, and device
/// nodes, fifos and sockets as such. The whole
/// tree is measured and checked against the free space first: on
/// [`ErrorKind::NoSpace`] nothing was written. Existing directories are merged
/// into, existing regular files replaced in place, other existing non-directories
/// replaced. The caller flushes.
pub fn copy_in<D: WriteAt>(
    ext: &mut Ext<D>,
    sources: &[PathBuf],
    guest_dir: &[u8],
    progress: Option<&dyn Progress>,
) -> Result<CopyInReport> {
    let dest = ext.resolve(guest_dir, true)?;
    if ext.stat(dest)?.file_type() != FileType::Directory {
        return Err(Error::invalid(format!(
            "{}: not a directory in the guest",
            show(guest_dir)
        )));
    }
    let m = measure(ext, sources)?;
    ext.ensure_space(m.need)?;
    if let Some(p) = progress {
        p.start(m.items, m.bytes);
    }
    let mut c = CopyIn {
        ext,
        progress,
        links: HashMap::new(),
        host_dirs: std::collections::HashSet::new(),
        report: CopyInReport::default(),
    };
    for s in sources {
        let name = source_name(s)?;
        let meta = host_meta(s)?;
        c.put(dest, &name, s, &meta)?;
    }
    if let Some(p) = progress {
        p.finish();
    }
    Ok(c.report)
}

impl<D: WriteAt> CopyIn<'_, D> {
    fn item(&self) {
        if let Some(p) = self.progress {
            p.item();
        }
    }

    /// Remove an existing non-directory `name` of `parent`, if any; an existing
    /// directory is an error.
    fn clear_non_dir(&mut self, parent: Ino, name: &[u8], host: &Path) -> Result<()> {
        if let Some(old) = self.ext.lookup(parent, name)? {
            if self.ext.stat(old)?.file_type() == FileType::Directory {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "{}: the guest already has a directory named {}",
                        host.display(),
                        show(name)
                    ),
                ));
            }
            self.ext.unlink(parent, name)?;
        }
        Ok(())
    }

    fn put(&mut self, parent: Ino, name: &[u8], host: &Path, meta: &fs::Metadata) -> Result<()> {
        let ft = meta.file_type();
        let node = host_node(meta);
        if ft.is_dir() && !self.host_dirs.insert((meta.dev(), meta.ino())) {
            self.report.skipped.push(format!(
                "{}: skipped: the same directory was already copied (a bind mount inside itself?)",
                host.display()
            ));
            return Ok(());
        }
        if ft.is_dir() {
            let ino = match self.ext.lookup(parent, name)? {
                Some(old) if self.ext.stat(old)?.file_type() == FileType::Directory => old,
                Some(_) => {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "{}: the guest already has a non-directory named {}",
                            host.display(),
                            show(name)
                        ),
                    ))
                }
                None => {
                    self.report.dirs += 1;
                    self.ext.mkdir(parent, name, &node)?
                }
            };
            self.item();
            for (cname, child) in host_children(host)? {
                let cmeta = host_meta(&child)?;
                self.put(ino, &cname, &child, &cmeta)?;
            }
            // After the children, so that the directory keeps the host's mtime.
            self.ext.set_attrs(ino, &node)?;
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(&ino) = self.links.get(&key) {
                    self.clear_non_dir(parent, name, host)?;
                    self.ext.link(parent, name, ino)?;
                    self.report.hard_links += 1;
                    self.item();
                    return Ok(());
                }
            }
            let f = File::open(host)
                .map_err(|e| Error::io(format!("cannot open {}", host.display()), e))?;
            let len = meta.len();
            let ranges = data_ranges(&f, len);
            let blocks = blocks_of(&ranges, u64::from(self.ext.block_size().max(1024)));
            let mut data = Counted {
                inner: io::BufReader::with_capacity(
                    1 << 20,
                    Sparse {
                        file: f,
                        ranges,
                        pos: 0,
                        len,
                    },
                ),
                progress: self.progress,
            };
            let existing = match self.ext.lookup(parent, name)? {
                Some(old) if self.ext.stat(old)?.file_type() == FileType::Regular => Some(old),
                Some(_) => {
                    self.clear_non_dir(parent, name, host)?;
                    None
                }
                None => None,
            };
            let ino = match existing {
                Some(old) => {
                    self.ext
                        .replace_sparse_contents(old, &mut data, len, blocks, node.ctime)?;
                    self.ext.set_attrs(old, &node)?;
                    old
                }
                None => self
                    .ext
                    .create_sparse_file(parent, name, &node, &mut data, len, blocks)?,
            };
            if meta.nlink() > 1 {
                self.links.insert(key, ino);
            }
            self.report.files += 1;
            self.report.bytes += len;
            self.item();
        } else if ft.is_symlink() {
            let target = fs::read_link(host)
                .map_err(|e| Error::io(format!("cannot read link {}", host.display()), e))?;
            self.clear_non_dir(parent, name, host)?;
            self.ext
                .symlink(parent, name, target.as_os_str().as_bytes(), &node)?;
            self.report.symlinks += 1;
            self.item();
        } else {
            use std::os::unix::fs::FileTypeExt;
            let file_type = if ft.is_fifo() {
                FileType::Fifo
            } else if ft.is_char_device() {
                FileType::CharDevice
            } else if ft.is_block_device() {
                FileType::BlockDevice
            } else if ft.is_socket() {
                FileType::Socket
            } else {
                FileType::Unknown
            };
            if file_type == FileType::Unknown {
                self.report
                    .skipped
                    .push(format!("{}: skipped (unknown file type)", host.display()));
            } else {
                self.clear_non_dir(parent, name, host)?;
                self.ext
                    .mknod(parent, name, file_type, dev_numbers(meta.rdev()), &node)?;
                self.report.specials += 1;
            }
            self.item();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name(b"passwd"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b", &[b'x'; 256]] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn split_paths() {
        assert_eq!(split_guest_path(b"/").unwrap(), None);
        assert_eq!(split_guest_path(b"//").unwrap(), None);
        assert_eq!(
            split_guest_path(b"/etc/fstab").unwrap(),
            Some((b"/etc".to_vec(), b"fstab".to_vec()))
        );
        assert_eq!(
            split_guest_path(b"/x/").unwrap(),
            Some((b"/".to_vec(), b"x".to_vec()))
        );
        assert!(split_guest_path(b"etc").is_err());
    }

    #[test]
    fn dir_block_estimate_is_conservative() {
        // 100 names of 20 bytes: 100 * 28 = 2800 bytes: one 4 KiB block, three 1 KiB.
        assert_eq!(dir_blocks(2800, 4096), 1);
        assert_eq!(dir_blocks(2800, 1024), 3);
        assert_eq!(dirent_len(1), 12);
        assert_eq!(dirent_len(4), 12);
        assert_eq!(dirent_len(5), 16);
    }

    #[test]
    fn negative_times_do_not_panic() {
        let t = system_time(Timestamp {
            sec: i64::MIN,
            nsec: 5,
        });
        assert!(t <= UNIX_EPOCH);
        let _ = system_time(Timestamp {
            sec: i64::MAX,
            nsec: 5,
        });
    }
}

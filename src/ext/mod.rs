//! Our ext2/3/4 engine: reads and writes a filesystem in place inside a partition
//! window, as libext2fs does, in safe Rust.
//!
//! This file is the engine's public face ([`Ext`]): open (refusing what it cannot
//! write before any byte changes), look up and read, and the recipes that change a
//! filesystem (create, replace, mkdir, symlink, link, unlink, remove a tree). Every
//! change of a count goes through the allocator; every write is ordered (data, then
//! inodes and directory blocks, then bitmaps, group descriptors, superblock) by
//! [`Ext::flush`].
//!
//! Paths are resolved inside the guest: symlinks (a usrmerge `/lib -> usr/lib`)
//! are followed from the guest's root, never through the host.

pub mod csum;
pub mod dir;
pub mod dirhash;
pub mod htree;

use std::io::Read;

use crate::disk::{ReadAt, WriteAt};
use crate::error::{Error, Result};

/// An inode number.
pub type Ino = u32;

/// The root directory's inode.
pub const ROOT_INO: Ino = 2;

/// A timestamp: seconds since the epoch and nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Seconds since 1970-01-01 UTC (may be negative).
    pub sec: i64,
    /// Nanoseconds, below 1e9.
    pub nsec: u32,
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nsec: d.subsec_nanos(),
        }
    }
}

/// What an inode is, from its mode (or a directory entry's file_type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// Socket.
    Socket,
    /// Not known (no filetype feature, or a bad value).
    Unknown,
}

/// An inode's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Inode number.
    pub ino: Ino,
    /// Full `i_mode`: type bits and permission bits.
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Link count.
    pub links: u16,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Change time.
    pub ctime: Timestamp,
    /// Creation time, when the inode has room for it.
    pub crtime: Option<Timestamp>,
    /// `i_flags`.
    pub flags: u32,
    /// `i_generation`.
    pub generation: u32,
    /// `i_blocks` in 512-byte units.
    pub blocks_512: u64,
}

impl Stat {
    /// The type from the mode's top bits.
    pub fn file_type(&self) -> FileType {
        match self.mode & 0o170000 {
            0o100000 => FileType::Regular,
            0o040000 => FileType::Directory,
            0o120000 => FileType::Symlink,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            _ => FileType::Unknown,
        }
    }
}

/// One name in a directory (`.` and `..` are not listed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name's bytes (not necessarily UTF-8).
    pub name: Vec<u8>,
    /// Its inode.
    pub ino: Ino,
    /// Type from the entry (or from the inode when the entry has none).
    pub file_type: FileType,
}

/// Metadata the caller gives a new inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewNode {
    /// Permission bits (`0o7777` mask); the type comes from the call.
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Change time.
    pub ctime: Timestamp,
}

/// An amount of space: blocks and inodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Space {
    /// Filesystem blocks.
    pub blocks: u64,
    /// Inodes.
    pub inodes: u64,
}

/// An ext2/3/4 filesystem on a device `D` (usually a partition [`Window`]).
///
/// [`Window`]: crate::disk::Window
pub struct Ext<D> {
    dev: D,
}

fn not_yet() -> Error {
    Error::unsupported("the ext engine is being built")
}

impl<D: ReadAt> Ext<D> {
    /// Open for reading only.
    pub fn open_read_only(dev: D) -> Result<Ext<D>> {
        let _ = &dev;
        Err(not_yet())
    }

    /// Resolve an absolute guest path (`/`-separated) to an inode. Symlinks in the
    /// middle are followed inside the guest (absolute targets from the guest root,
    /// at most 40 of them); the last one only when `follow_last`.
    pub fn resolve(&self, path: &[u8], follow_last: bool) -> Result<Ino> {
        let _ = (&self.dev, path, follow_last);
        Err(not_yet())
    }

    /// The inode of `name` in directory `dir`, if any.
    pub fn lookup(&self, dir: Ino, name: &[u8]) -> Result<Option<Ino>> {
        let _ = (dir, name);
        Err(not_yet())
    }

    /// An inode's metadata.
    pub fn stat(&self, ino: Ino) -> Result<Stat> {
        let _ = ino;
        Err(not_yet())
    }

    /// The names in a directory, in on-disk order, without `.` and `..`.
    pub fn read_dir(&self, dir: Ino) -> Result<Vec<DirEntry>> {
        let _ = dir;
        Err(not_yet())
    }

    /// Read file bytes at `offset` into `buf`; returns the count (0 at the end).
    pub fn read_file(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let _ = (ino, offset, buf);
        Err(not_yet())
    }

    /// A symlink's target.
    pub fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        let _ = ino;
        Err(not_yet())
    }

    /// Extended attributes (in-inode and in the xattr block), full names
    /// (`security.selinux`), in on-disk order.
    pub fn xattrs(&self, ino: Ino) -> Result<Vec<(String, Vec<u8>)>> {
        let _ = ino;
        Err(not_yet())
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u32 {
        0
    }

    /// Free blocks and inodes (superblock counts, reserved blocks excluded).
    pub fn free_space(&self) -> Space {
        Space::default()
    }

    /// What a new regular file of `len` bytes costs: data blocks plus extent-tree or
    /// indirect blocks, and one inode.
    pub fn file_cost(&self, len: u64) -> Space {
        let _ = len;
        Space::default()
    }
}

impl<D: WriteAt> Ext<D> {
    /// Open for writing. Refuses, before any byte changes: a feature the engine
    /// cannot write (naming it), a journal that needs recovery, errors recorded,
    /// orphans present.
    pub fn open_read_write(dev: D) -> Result<Ext<D>> {
        let _ = &dev;
        Err(not_yet())
    }

    /// Fail with [`ErrorKind::NoSpace`](crate::ErrorKind::NoSpace) unless `need`
    /// fits in the free blocks and inodes.
    pub fn ensure_space(&self, need: Space) -> Result<()> {
        let _ = need;
        Err(not_yet())
    }

    /// Create a regular file `name` in `parent` holding `len` bytes read from `data`.
    pub fn create_file(
        &mut self,
        parent: Ino,
        name: &[u8],
        node: &NewNode,
        data: &mut dyn Read,
        len: u64,
    ) -> Result<Ino> {
        let _ = (parent, name, node, data, len);
        Err(not_yet())
    }

    /// Replace a regular file's contents in place (same inode, mode, owner, xattrs),
    /// copy-on-write: new blocks first, then the inode switch, then the old blocks
    /// freed. Sets mtime and ctime to `when`.
    pub fn replace_contents(
        &mut self,
        ino: Ino,
        data: &mut dyn Read,
        len: u64,
        when: Timestamp,
    ) -> Result<()> {
        let _ = (ino, data, len, when);
        Err(not_yet())
    }

    /// Create a directory.
    pub fn mkdir(&mut self, parent: Ino, name: &[u8], node: &NewNode) -> Result<Ino> {
        let _ = (parent, name, node);
        Err(not_yet())
    }

    /// Create a symlink (fast up to 59 bytes, else one data block).
    pub fn symlink(
        &mut self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        node: &NewNode,
    ) -> Result<Ino> {
        let _ = (parent, name, target, node);
        Err(not_yet())
    }

    /// Add a hard link `name` in `parent` to the existing non-directory `ino`.
    pub fn link(&mut self, parent: Ino, name: &[u8], ino: Ino) -> Result<()> {
        let _ = (parent, name, ino);
        Err(not_yet())
    }

    /// Set mode bits, owner and times of an existing inode.
    pub fn set_attrs(&mut self, ino: Ino, node: &NewNode) -> Result<()> {
        let _ = (ino, node);
        Err(not_yet())
    }

    /// Remove a non-directory name; the inode is freed at link count 0.
    pub fn unlink(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        let _ = (parent, name);
        Err(not_yet())
    }

    /// Remove an empty directory.
    pub fn rmdir(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        let _ = (parent, name);
        Err(not_yet())
    }

    /// Remove a name and, for a directory, everything below it.
    pub fn remove_tree(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        let _ = (parent, name);
        Err(not_yet())
    }

    /// Write every pending change in order and sync: afterwards the filesystem is
    /// consistent (`e2fsck -fn` clean).
    pub fn flush(&mut self) -> Result<()> {
        Err(not_yet())
    }
}

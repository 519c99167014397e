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
//!
//! Modules, split as libext2fs is: `superblock` (fields at named offsets, one
//! validation shared with the probe, the refusals of features and states),
//! `features` (a leaf: the one table of feature names, the read and write sets),
//! `group` (descriptors and their crc32c/crc16), `bitmap`, `alloc` (the only
//! place a count changes), `validate` (what the allocator trusts, checked before
//! it is trusted), `inode` (raw records patched in place, checksums), `run` (a
//! leaf: mapped runs), `extent` and `blockmap` (mappings read and built
//! bottom-up), `xattr` (read; block refcounts dropped on free), `file` (data
//! streaming, `i_blocks`), `dir_block` (a leaf: the directory block format) under
//! `dir` (whole directories) and `htree` (indexed ones), `dirio` (the engine side
//! of [`dir::DirBlocks`]), `path`, `recipe` (the operations), `flush` (ordered
//! write-out).
//!
//! Choices worth knowing:
//! - Blocks reserved for root (`s_r_blocks_count`) are usable, as for root and
//!   libext2fs: this is an offline tool run by the image's owner.
//! - Space is checked up front, before anything changes: first against a
//!   worst case (data, the largest tree the data could need, three blocks for
//!   a directory insertion); when that does not fit, against the real need (the
//!   directory code's count of new blocks, the extent count of a dry run of the
//!   allocator), so a full filesystem is used to its last block.
//! - A failed operation (a name that exists, data shorter than announced)
//!   gives back what it took in memory; data longer than one 4 MiB chunk may
//!   already have been written into free blocks by then.
//! - Backup superblocks and descriptor tables are not rewritten: e2fsck only
//!   compares their geometry, and stale free counts there are what the kernel
//!   leaves too.
//! - After a failed [`Ext::flush`] the in-memory state is not to be trusted:
//!   drop the `Ext` (an undo file restores the image).

mod alloc;
mod bitmap;
mod blockmap;
pub mod csum;
pub mod dir;
mod dir_block;
pub mod dirhash;
mod dirio;
mod extent;
pub(crate) mod features;
mod file;
mod flush;
mod group;
pub mod htree;
mod inode;
mod path;
mod recipe;
mod run;
pub(crate) mod superblock;
mod validate;
mod xattr;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;

use crate::bytes;
use crate::disk::{ReadAt, WriteAt};
use crate::error::{Error, ErrorKind, Result};

use bitmap::Bitmap;
use group::{CsumKind, GroupTable};
use inode::Inode;
use superblock::{Superblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE};

/// An inode number.
pub type Ino = u32;

/// The most block groups a filesystem may have to be opened (read or written):
/// 2^20 groups is 128 TiB in 4 KiB blocks. Above it, a superblock is refused as
/// unsupported before any group descriptor is read (a hostile superblock with
/// tiny groups would otherwise cost gigabytes of descriptors).
pub const MAX_GROUPS: u64 = 1 << 20;

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
        inode::mode_type(self.mode)
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
/// Changes are kept in memory (inodes, directory blocks, bitmaps, descriptors,
/// superblock) and written in order by [`Ext::flush`]; file data goes straight to
/// newly allocated blocks as it streams. Blocks and inodes freed by an operation
/// are only returned to the bitmaps at the next flush, so nothing freed is reused
/// before the inodes that stopped using it are on disk.
///
/// [`Window`]: crate::disk::Window
pub struct Ext<D> {
    dev: D,
    sb: Superblock,
    gdt: GroupTable,
    csum: CsumKind,
    fs_seed: u32,
    uuid: [u8; 16],
    writable: bool,
    block_bitmaps: HashMap<u32, Bitmap>,
    inode_bitmaps: HashMap<u32, Bitmap>,
    dirty_groups: BTreeSet<u32>,
    sb_dirty: bool,
    /// Dirty inode records by number.
    inodes: BTreeMap<Ino, Vec<u8>>,
    /// Dirty metadata blocks (directory blocks) by block number.
    meta: BTreeMap<u64, Vec<u8>>,
    /// Blocks of `meta` allocated since the last flush (written before inodes).
    fresh: HashSet<u64>,
    /// Blocks freed since the last flush: `(first, count)`.
    pending_blocks: Vec<(u64, u64)>,
    /// Inodes freed since the last flush: `(ino, was a directory)`.
    pending_inodes: Vec<(Ino, bool)>,
    /// Where the next block allocation starts looking.
    goal: u64,
    /// Counter mixed into new inodes' `i_generation`.
    gen_next: u32,
    /// Dirty metadata (bytes) past which an operation flushes on its own.
    auto_flush_bytes: usize,
    /// `bg_flags` and `bg_itable_unused` of the group of the last inode marked,
    /// as they were before (to undo an allocation exactly).
    last_inode_group_state: (u16, u32),
    /// Damage met and stepped around since the last [`Ext::take_findings`].
    findings: Vec<crate::finding::Finding>,
    /// Blocks of the metadata the engine holds (bitmaps, inode tables,
    /// superblocks and GDTs, journal, listed bad blocks), sorted and disjoint;
    /// filled at open for writing (see `validate`).
    held: Vec<validate::Held>,
    /// Set when an operation met damage: nothing more is written (see `settle`).
    damaged: Option<String>,
}

/// Dirty metadata (bytes) past which an operation flushes on its own.
const AUTO_FLUSH_BYTES: usize = 16 << 20;

impl<D: ReadAt> Ext<D> {
    fn open(dev: D, writable: bool) -> Result<Ext<D>> {
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        dev.read_exact_at(SUPERBLOCK_OFFSET, &mut raw)?;
        let sb = Superblock::parse(raw, dev.size()).map_err(|e| {
            if e.kind() != ErrorKind::Corrupt {
                return e;
            }
            match superblock::find_backup(&dev) {
                Some((block, bs)) => Error::corrupt(format!(
                    "{}; a backup superblock at block {block} ({bs}-byte blocks) looks sound: \
                     `e2fsck -b {block} -B {bs}` repairs the primary from it",
                    e.message()
                )),
                None => e,
            }
        })?;
        // The writer's refusals first: they name every feature it cannot write
        // (meta_bg among them), where the reader's would say "cannot read".
        if writable {
            sb.refuse_unwritable()?;
        }
        sb.refuse_unreadable()?;
        let meta_csum = sb.has_ro_compat(features::RO_COMPAT_METADATA_CSUM);
        let csum = if meta_csum {
            CsumKind::Meta
        } else if sb.has_ro_compat(features::RO_COMPAT_GDT_CSUM) {
            CsumKind::Gdt
        } else {
            CsumKind::None
        };
        let uuid = sb.uuid();
        let fs_seed = if sb.has_incompat(features::INCOMPAT_CSUM_SEED) {
            sb.checksum_seed()
        } else {
            csum::crc32c(!0, &uuid)
        };
        let bs = u64::from(sb.block_size);
        let gdt_len = sb.gdt_blocks() * bs;
        let gdt_off = sb.gdt_block(0) * bs;
        let mut graw =
            vec![0u8; usize::try_from(gdt_len).map_err(|_| Error::corrupt("gdt too big"))?];
        // Descriptor blocks one by one where they are not contiguous (meta_bg).
        let mut at = 0u64;
        while at < sb.gdt_blocks() {
            let first = sb.gdt_block(at);
            let mut n = 1;
            while at + n < sb.gdt_blocks() && sb.gdt_block(at + n) == first + n {
                n += 1;
            }
            // OK to cast: within graw, whose length fits usize.
            let dst = &mut graw[(at * bs) as usize..((at + n) * bs) as usize];
            dev.read_exact_at(first * bs, dst)
                .map_err(|e| e.context(format_args!("group descriptors at {:#x}", first * bs)))?;
            at += n;
        }
        let gdt = GroupTable::new(graw, sb.desc_size, sb.group_count)?;
        if writable && csum != CsumKind::None {
            for g in 0..sb.group_count {
                let want = gdt.compute_checksum(g, csum, fs_seed, &uuid);
                let (o, _) = gdt.desc_range(g);
                if bytes::le16(gdt.raw(), o + 0x1E) != want {
                    return Err(Error::corrupt(format!(
                        "group {g}: descriptor checksum does not match (at {:#x})",
                        gdt_off + o as u64
                    )));
                }
            }
        }
        for g in 0..sb.group_count {
            for (what, b) in [
                ("block bitmap", gdt.block_bitmap(g)),
                ("inode bitmap", gdt.inode_bitmap(g)),
                ("inode table", gdt.inode_table(g)),
            ] {
                if b == 0 {
                    return Err(Error::corrupt(format!(
                        "group {g}: the {what} pointer is 0 (group descriptor damaged); run e2fsck -f"
                    )));
                }
                if b < sb.first_data_block || b >= sb.blocks_count {
                    return Err(Error::corrupt(format!(
                        "group {g}: {what} at block {b} is outside the filesystem; run e2fsck -f"
                    )));
                }
            }
        }
        // Deterministic: the same image and the same operations give the same
        // bytes (reproducible images, comparable undo files).
        let gen_next =
            csum::crc32c(!0, &uuid) ^ sb.free_inodes_count() ^ bytes::lo32(sb.free_blocks_count());
        let mut ext = Ext {
            dev,
            goal: sb.first_data_block,
            sb,
            gdt,
            csum,
            fs_seed,
            uuid,
            writable,
            block_bitmaps: HashMap::new(),
            inode_bitmaps: HashMap::new(),
            dirty_groups: BTreeSet::new(),
            sb_dirty: false,
            inodes: BTreeMap::new(),
            meta: BTreeMap::new(),
            fresh: HashSet::new(),
            pending_blocks: Vec::new(),
            pending_inodes: Vec::new(),
            gen_next,
            last_inode_group_state: (0, 0),
            findings: Vec::new(),
            auto_flush_bytes: AUTO_FLUSH_BYTES,
            held: Vec::new(),
            damaged: None,
        };
        if writable {
            ext.validate_for_write()?;
        }
        Ok(ext)
    }

    /// Open for reading only.
    pub fn open_read_only(dev: D) -> Result<Ext<D>> {
        Self::open(dev, false)
    }

    /// The feature names of the filesystem (dumpe2fs spelling).
    pub fn feature_names(&self) -> Vec<String> {
        self.sb.feature_names()
    }

    fn huge_file(&self) -> bool {
        self.sb.has_ro_compat(features::RO_COMPAT_HUGE_FILE)
    }

    fn bs(&self) -> u64 {
        u64::from(self.sb.block_size)
    }

    /// Read one block, from the dirty cache first.
    fn read_block(&self, pblk: u64, buf: &mut [u8]) -> Result<()> {
        if let Some(b) = self.meta.get(&pblk) {
            let n = buf.len().min(b.len());
            buf[..n].copy_from_slice(&b[..n]);
            return Ok(());
        }
        self.check_block(pblk, 1)?;
        self.dev
            .read_exact_at(pblk * self.bs(), buf)
            .map_err(|e| e.context(format_args!("block {pblk}")))
    }

    /// Fail unless `count` blocks at `pblk` lie inside the filesystem.
    fn check_block(&self, pblk: u64, count: u64) -> Result<()> {
        if pblk == 0 {
            return Err(Error::corrupt(
                "a block pointer is 0 where a block was expected (damaged metadata); run e2fsck -f",
            ));
        }
        match pblk.checked_add(count) {
            Some(end) if pblk >= self.sb.first_data_block && end <= self.sb.blocks_count => Ok(()),
            _ => Err(Error::corrupt(format!(
                "block {pblk} (+{count}) is outside the filesystem ({} blocks)",
                self.sb.blocks_count
            ))),
        }
    }

    /// Byte offset of inode `ino`'s record.
    fn inode_offset(&self, ino: Ino) -> Result<u64> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(Error::corrupt(format!(
                "inode {ino} is out of range (1..={})",
                self.sb.inodes_count
            )));
        }
        let g = (ino - 1) / self.sb.inodes_per_group;
        let idx = u64::from((ino - 1) % self.sb.inodes_per_group);
        let table = self.gdt.inode_table(g);
        let off = table * self.bs() + idx * u64::from(self.sb.inode_size);
        let end = (self.sb.blocks_count) * self.bs();
        if off + u64::from(self.sb.inode_size) > end {
            return Err(Error::corrupt(format!(
                "inode {ino}: table of group {g} runs past the filesystem"
            )));
        }
        Ok(off)
    }

    /// An inode's record (the dirty copy when there is one).
    fn read_inode(&self, ino: Ino) -> Result<Inode> {
        if let Some(r) = self.inodes.get(&ino) {
            return Ok(Inode {
                ino,
                raw: r.clone(),
            });
        }
        let off = self.inode_offset(ino)?;
        let mut raw = vec![0u8; usize::from(self.sb.inode_size)];
        self.dev
            .read_exact_at(off, &mut raw)
            .map_err(|e| e.context(format_args!("inode {ino}")))?;
        let inode = Inode { ino, raw };
        let ex = inode.extra_isize();
        if ex != 0 && (ex % 4 != 0 || inode::EXT2_GOOD_OLD_INODE_SIZE + ex > inode.raw.len()) {
            return Err(Error::corrupt(format!(
                "inode {ino}: i_extra_isize {ex} is invalid"
            )));
        }
        // A bad checksum is corruption: never read through it, never launder it
        // by rewriting the inode with a fresh one.
        if self.csum == CsumKind::Meta && !inode.checksum_ok(self.fs_seed) {
            return Err(Error::corrupt(format!(
                "inode {ino}: checksum does not match (at {off:#x})"
            )));
        }
        Ok(inode)
    }

    /// Resolve an absolute guest path (`/`-separated) to an inode. Symlinks in the
    /// middle are followed inside the guest (absolute targets from the guest root,
    /// at most 40 of them); the last one only when `follow_last`.
    pub fn resolve(&self, path: &[u8], follow_last: bool) -> Result<Ino> {
        self.resolve_path(path, follow_last)
    }

    /// The inode of `name` in directory `dir`, if any.
    pub fn lookup(&self, dir: Ino, name: &[u8]) -> Result<Option<Ino>> {
        Ok(self.dir_lookup(dir, name)?.map(|e| e.ino))
    }

    /// An inode's metadata.
    pub fn stat(&self, ino: Ino) -> Result<Stat> {
        Ok(self
            .read_inode(ino)?
            .stat(self.huge_file(), self.sb.block_size))
    }

    /// The names in a directory, in on-disk order, without `.` and `..`.
    pub fn read_dir(&self, dir: Ino) -> Result<Vec<DirEntry>> {
        self.dir_entries(dir)
    }

    /// Read file bytes at `offset` into `buf`; returns the count (0 at the end).
    pub fn read_file(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let inode = self.read_inode(ino)?;
        self.read_data(&inode, offset, buf)
    }

    /// A device inode's (major, minor); `None` for other types.
    pub fn rdev(&self, ino: Ino) -> Result<Option<(u32, u32)>> {
        let inode = self.read_inode(ino)?;
        if !matches!(
            inode.file_type(),
            FileType::CharDevice | FileType::BlockDevice
        ) {
            return Ok(None);
        }
        let old = bytes::le32(inode.i_block(), 0);
        if old != 0 {
            return Ok(Some(((old >> 8) & 0xFF, old & 0xFF)));
        }
        let new = bytes::le32(inode.i_block(), 4);
        Ok(Some((
            (new & 0xF_FF00) >> 8,
            (new & 0xFF) | ((new >> 12) & 0xF_FF00),
        )))
    }

    /// A symlink's target.
    pub fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        let inode = self.read_inode(ino)?;
        if inode.file_type() != FileType::Symlink {
            return Err(Error::invalid(format!("inode {ino} is not a symlink")));
        }
        self.symlink_target(&inode)
    }

    /// Extended attributes (in-inode and in the xattr block), full names
    /// (`security.selinux`), in on-disk order.
    pub fn xattrs(&self, ino: Ino) -> Result<Vec<(String, Vec<u8>)>> {
        let inode = self.read_inode(ino)?;
        self.read_xattrs(&inode)
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.sb.block_size
    }

    /// Free blocks and inodes (superblock counts). Blocks reserved for root are
    /// included: this offline tool writes as root would, as libext2fs does.
    /// Blocks freed since the last flush are not counted until it.
    pub fn free_space(&self) -> Space {
        Space {
            blocks: self.sb.free_blocks_count(),
            inodes: u64::from(self.sb.free_inodes_count()),
        }
    }

    /// What a new regular file of `len` bytes costs: data blocks plus extent-tree or
    /// indirect blocks, and one inode.
    pub fn file_cost(&self, len: u64) -> Space {
        self.sparse_file_cost(len, len.div_ceil(self.bs()))
    }

    /// What a new regular file of `len` bytes costs when at most `data_blocks`
    /// of its blocks hold data (the rest are holes).
    pub fn sparse_file_cost(&self, len: u64, data_blocks: u64) -> Space {
        let span = len.div_ceil(self.bs());
        let data = data_blocks.min(span);
        let tree = if data == span || self.sb.has_incompat(features::INCOMPAT_EXTENTS) {
            self.tree_cost(data)
        } else {
            // Indirect blocks cover logical positions: at most one per level
            // (three) per data block, and never more than the whole span needs.
            blockmap::indirect_blocks(span, self.sb.block_size).min(3 * data)
        };
        Space {
            blocks: data + tree,
            inodes: 1,
        }
    }

    /// Worst-case mapping blocks (extent tree or indirect blocks) for `data` blocks.
    fn tree_cost(&self, data: u64) -> u64 {
        if self.sb.has_incompat(features::INCOMPAT_EXTENTS) {
            extent::worst_tree_blocks(data, self.sb.block_size)
        } else {
            blockmap::indirect_blocks(data, self.sb.block_size)
        }
    }
}

impl<D: WriteAt> Ext<D> {
    /// Open for writing. Refuses, before any byte changes: a feature the engine
    /// cannot write (naming it), a journal that needs recovery, errors recorded,
    /// orphans present.
    pub fn open_read_write(dev: D) -> Result<Ext<D>> {
        Self::open(dev, true)
    }

    /// Fail with [`ErrorKind::NoSpace`] unless `need` fits in the free blocks
    /// and inodes, counting those freed since the last flush (an operation that
    /// needs them flushes first).
    pub fn ensure_space(&self, need: Space) -> Result<()> {
        let mut free = self.free_space();
        free.blocks += self.pending_blocks.iter().map(|p| p.1).sum::<u64>();
        free.inodes += self.pending_inodes.len() as u64;
        self.check_space(need, free)
    }

    fn check_space(&self, need: Space, free: Space) -> Result<()> {
        let blocks_short = need.blocks > free.blocks;
        let inodes_short = need.inodes > free.inodes;
        let what = match (blocks_short, inodes_short) {
            (false, false) => return Ok(()),
            (true, false) => format!(
                "not enough space: need {} blocks, {} free",
                need.blocks, free.blocks
            ),
            (false, true) => format!(
                "no free inode left: need {} inodes, {} free (space is not the problem: {} blocks \
                 free); remove files, or make the filesystem with more inodes (mke2fs -N/-i)",
                need.inodes, free.inodes, free.blocks
            ),
            (true, true) => format!(
                "not enough space and inodes: need {} blocks and {} inodes, {} blocks and {} inodes free",
                need.blocks, need.inodes, free.blocks, free.inodes
            ),
        };
        if blocks_short || inodes_short {
            return Err(Error::new(ErrorKind::NoSpace, what));
        }
        Ok(())
    }

    /// Like [`Ext::ensure_space`], but first flushes when blocks or inodes freed
    /// earlier would make the difference. Called at the start of an operation.
    fn reserve(&mut self, need: Space) -> Result<()> {
        if !self.writable {
            return Err(Error::refused("the filesystem is open read-only"));
        }
        if self.check_space(need, self.free_space()).is_err()
            && (!self.pending_blocks.is_empty() || !self.pending_inodes.is_empty())
        {
            self.flush()?;
        }
        self.check_space(need, self.free_space())
    }

    /// After an operation: a corrupt result poisons the session (as the kernel
    /// remounts read-only on an error), so that what the failed operation left in
    /// memory is never written; otherwise flush if the dirty cache is too big.
    fn settle<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            if e.kind() == ErrorKind::Corrupt {
                self.damaged.get_or_insert_with(|| e.message().to_string());
                return r;
            }
        }
        self.maybe_flush()?;
        r
    }

    /// Flush when the dirty cache has grown past its bound (between operations).
    fn maybe_flush(&mut self) -> Result<()> {
        let bytes = self.meta.len() * self.sb.block_size as usize
            + self.inodes.len() * usize::from(self.sb.inode_size)
            + (self.block_bitmaps.len() + self.inode_bitmaps.len()) * self.sb.block_size as usize;
        if bytes > self.auto_flush_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Set the amount of dirty metadata (bytes; default 16 MiB) past which
    /// operations flush on their own, between operations and between the
    /// directories of [`Ext::remove_tree`]. Lower bounds memory further; 0
    /// flushes after every step (each flush leaves a consistent filesystem).
    pub fn set_auto_flush_bytes(&mut self, bytes: usize) {
        self.auto_flush_bytes = bytes;
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
        let blocks = len.div_ceil(self.bs());
        self.create_sparse_file(parent, name, node, data, len, blocks)
    }

    /// [`Ext::create_file`] for a sparse source: `data` reads as the whole file
    /// (holes as zeros), of which at most `data_blocks` blocks hold data (as
    /// `SEEK_DATA`/`SEEK_HOLE` found them). Space is reserved for those blocks
    /// only; every all-zero block becomes a hole. More non-zero blocks than
    /// announced (a source that changed) is an error.
    pub fn create_sparse_file(
        &mut self,
        parent: Ino,
        name: &[u8],
        node: &NewNode,
        data: &mut dyn Read,
        len: u64,
        data_blocks: u64,
    ) -> Result<Ino> {
        let r = self.do_create_file(parent, name, node, data, len, data_blocks);
        self.settle(r)
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
        let blocks = len.div_ceil(self.bs());
        self.replace_sparse_contents(ino, data, len, blocks, when)
    }

    /// [`Ext::replace_contents`] for a sparse source (see
    /// [`Ext::create_sparse_file`]).
    pub fn replace_sparse_contents(
        &mut self,
        ino: Ino,
        data: &mut dyn Read,
        len: u64,
        data_blocks: u64,
        when: Timestamp,
    ) -> Result<()> {
        let r = self.do_replace_contents(ino, data, len, data_blocks, when);
        self.settle(r)
    }

    /// Create a directory.
    pub fn mkdir(&mut self, parent: Ino, name: &[u8], node: &NewNode) -> Result<Ino> {
        let r = self.do_mkdir(parent, name, node);
        self.settle(r)
    }

    /// Create a symlink (fast up to 59 bytes, else one data block).
    pub fn symlink(
        &mut self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        node: &NewNode,
    ) -> Result<Ino> {
        let r = self.do_symlink(parent, name, target, node);
        self.settle(r)
    }

    /// Create a character or block device (`rdev` = major, minor), a fifo or a
    /// socket.
    pub fn mknod(
        &mut self,
        parent: Ino,
        name: &[u8],
        file_type: FileType,
        rdev: (u32, u32),
        node: &NewNode,
    ) -> Result<Ino> {
        let r = self.do_mknod(parent, name, file_type, rdev, node);
        self.settle(r)
    }

    /// Add a hard link `name` in `parent` to the existing non-directory `ino`.
    pub fn link(&mut self, parent: Ino, name: &[u8], ino: Ino) -> Result<()> {
        let r = self.do_link(parent, name, ino);
        self.settle(r)
    }

    /// Set mode bits, owner and times of an existing inode.
    pub fn set_attrs(&mut self, ino: Ino, node: &NewNode) -> Result<()> {
        if !self.writable {
            return Err(Error::refused("the filesystem is open read-only"));
        }
        let mut inode = self.read_inode(ino)?;
        let mode = (inode.mode() & inode::S_IFMT) | (node.perm & 0o7777);
        inode.set_mode(mode);
        inode.set_uid(node.uid);
        inode.set_gid(node.gid);
        inode.set_time(inode::Time::A, node.atime);
        inode.set_time(inode::Time::M, node.mtime);
        inode.set_time(inode::Time::C, node.ctime);
        self.put_inode(inode);
        self.maybe_flush()
    }

    /// Remove a non-directory name; the inode is freed at link count 0.
    pub fn unlink(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        let r = self.do_unlink(parent, name);
        self.settle(r)
    }

    /// Remove an empty directory.
    pub fn rmdir(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        let r = self.do_rmdir(parent, name);
        self.settle(r)
    }

    /// What the operations since the last call met and stepped around (a
    /// directory hard link not descended into), for the caller to show.
    pub fn take_findings(&mut self) -> Vec<crate::finding::Finding> {
        std::mem::take(&mut self.findings)
    }

    /// Remove a name and, for a directory, everything below it. The whole tree
    /// is read and checked first (every directory, and the block map of every
    /// inode to free), so that damage anywhere is refused before the first
    /// change. A directory met twice (a directory hard link, a loop) is not
    /// descended into again: see [`Ext::take_findings`].
    pub fn remove_tree(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        let r = self.do_remove_tree(parent, name);
        self.settle(r)
    }

    /// Write every pending change in order and sync: afterwards the filesystem is
    /// consistent (`e2fsck -fn` clean).
    pub fn flush(&mut self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        if let Some(why) = &self.damaged {
            let clean = self.inodes.is_empty()
                && self.meta.is_empty()
                && self.dirty_groups.is_empty()
                && !self.sb_dirty
                && self.pending_blocks.is_empty()
                && self.pending_inodes.is_empty();
            if clean {
                return Ok(());
            }
            return Err(Error::refused(format!(
                "refusing to write: damage was found during this session ({why})"
            )));
        }
        self.write_all_pending()
    }
}

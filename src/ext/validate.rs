//! What the allocator trusts, checked before it is trusted (for writing only).
//!
//! Without metadata checksums (ext2, ext3, ext4 without `metadata_csum`: the old
//! guests this tool is for) nothing on disk vouches for a bitmap or a group
//! descriptor, so the engine checks them as the kernel and e2fsck do:
//!
//! - at open: every group's metadata pointers are non-zero, inside the
//!   filesystem, and overlap neither each other nor any group's superblock, GDT
//!   and reserved GDT, nor the journal; the bad-blocks list (inode 1) names none
//!   of them. The blocks of all that metadata (the *held* list) are kept, sorted.
//!   The superblock's free counts are recomputed from the descriptors, as the
//!   kernel does at mount (a stale total is not damage).
//! - when a bitmap is loaded from disk (`ext4_validate_block_bitmap` and more):
//!   every held block inside the group is marked in use, and the descriptor's free
//!   count equals the bitmap's; an inode bitmap marks the reserved inodes in use
//!   and agrees with its free count.
//! - when a block or an inode is handed out: the block holds no metadata, the
//!   inode record (where the table is initialised) is not in use.
//! - before a file's blocks are freed or replaced: the bitmap marks every block
//!   of its map in use, and none is metadata.
//!
//! - at open, on filesystems without metadata_csum: a scan of block ownership
//!   (what e2fsck's pass 1 does for blocks): every block that an in-use inode
//!   maps (data, extent or indirect blocks, its xattr block) must be marked in
//!   use and hold no metadata, and the maps must be readable. Without it, a
//!   damaged map elsewhere in the filesystem would let a write hand out a block
//!   that a file still uses. With metadata_csum every map block carries a
//!   checksum and the scan is skipped (see README, "The ext2/3/4 write engine",
//!   for the cost measured by `scripts/bench-ownership-scan`).
//!
//! Every mismatch refuses the operation as corrupt, naming the group (or inode)
//! and suggesting `e2fsck -f`, before any byte is written for it.

use super::bitmap::Bitmap;
use super::group::{CsumKind, EXT4_BG_INODE_UNINIT};
use super::inode::{Inode, I_LINKS_COUNT};
use super::run::Run;
use super::superblock::S_JOURNAL_INUM;
use super::FileType;
use super::{features, Error, Ext, Ino, Result};
use crate::bytes::{le16, le32};
use crate::disk::ReadAt;

/// The inode of the bad-blocks list.
const BAD_BLOCKS_INO: Ino = 1;

/// What a held block range is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Holder {
    /// A superblock copy with its GDT and reserved GDT blocks, in group `g`.
    Super(u32),
    /// Group `g`'s block bitmap.
    BlockBitmap(u32),
    /// Group `g`'s inode bitmap.
    InodeBitmap(u32),
    /// Group `g`'s inode table.
    InodeTable(u32),
    /// The journal's blocks (data and mapping).
    Journal,
    /// A block listed in the bad-blocks inode.
    BadBlock,
    /// A block of the bad-blocks inode's own map.
    BadBlocksMap,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Super(g) => write!(f, "the superblock and group descriptors of group {g}"),
            Holder::BlockBitmap(g) => write!(f, "the block bitmap of group {g}"),
            Holder::InodeBitmap(g) => write!(f, "the inode bitmap of group {g}"),
            Holder::InodeTable(g) => write!(f, "the inode table of group {g}"),
            Holder::Journal => write!(f, "the journal"),
            Holder::BadBlock => write!(f, "a listed bad block (inode 1)"),
            Holder::BadBlocksMap => write!(f, "the bad-blocks list's map (inode 1)"),
        }
    }
}

/// Blocks `start..start + len` held by `what`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Held {
    start: u64,
    len: u64,
    what: Holder,
}

impl Held {
    fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// The refusal of every check here.
fn damaged(msg: String) -> Error {
    Error::corrupt(format!("{msg}; refusing to write: run e2fsck -f"))
}

impl<D: ReadAt> Ext<D> {
    /// The checks at open for writing (see the module doc); fills `self.held`
    /// and recomputes the superblock's free counts.
    pub(super) fn validate_for_write(&mut self) -> Result<()> {
        let mut held = Vec::new();
        let it = self.itable_blocks();
        let rgdt = u64::from(self.sb.reserved_gdt_blocks());
        for g in 0..self.sb.group_count {
            if self.sb.group_has_super(g) {
                let n =
                    (1 + self.sb.gdt_blocks() + rgdt).min(u64::from(self.sb.group_block_count(g)));
                held.push(Held {
                    start: self.sb.group_first_block(g),
                    len: n,
                    what: Holder::Super(g),
                });
            }
            for (start, len, what) in [
                (self.gdt.block_bitmap(g), 1, Holder::BlockBitmap(g)),
                (self.gdt.inode_bitmap(g), 1, Holder::InodeBitmap(g)),
                (self.gdt.inode_table(g), it, Holder::InodeTable(g)),
            ] {
                let end = start.checked_add(len);
                if end.is_none_or(|e| e > self.sb.blocks_count) {
                    return Err(damaged(format!(
                        "group {g}: {what} (blocks {start}+{len}) runs past the end of the filesystem"
                    )));
                }
                held.push(Held { start, len, what });
            }
        }
        if self.sb.has_compat(features::COMPAT_HAS_JOURNAL) {
            let jino = le32(self.sb.raw(), S_JOURNAL_INUM);
            if jino != 0 {
                let inode = self.read_inode(jino)?;
                let (runs, tree) = self
                    .mapping(&inode)
                    .map_err(|e| e.context(format_args!("journal inode {jino}")))?;
                push_mapping(&mut held, &runs, &tree, Holder::Journal, Holder::Journal);
            }
        }
        let bad = self.read_inode(BAD_BLOCKS_INO)?;
        if bad.blocks_512(false, self.sb.block_size) != 0 {
            let (runs, tree) = self
                .mapping(&bad)
                .map_err(|e| e.context("the bad-blocks list (inode 1)"))?;
            push_mapping(
                &mut held,
                &runs,
                &tree,
                Holder::BadBlock,
                Holder::BadBlocksMap,
            );
        }
        held.sort_by_key(|h| (h.start, h.len));
        let mut prev: Option<Held> = None;
        for h in &held {
            if let Some(p) = prev.filter(|p| p.end() > h.start) {
                let (bad, other) = match (p.what, h.what) {
                    (Holder::BadBlock, o) => (Some(p), o),
                    (o, Holder::BadBlock) => (Some(*h), o),
                    _ => (None, h.what),
                };
                return Err(damaged(match bad {
                    Some(b) => format!(
                        "the bad-blocks list (inode 1) names block {}, which holds {other}",
                        b.start.max(p.start.max(h.start))
                    ),
                    None => format!(
                        "{} (blocks {}..{}) overlaps {} (blocks {}..{})",
                        p.what,
                        p.start,
                        p.end(),
                        h.what,
                        h.start,
                        h.end()
                    ),
                }));
            }
            if prev.is_none_or(|p| h.end() > p.end()) {
                prev = Some(*h);
            }
        }
        self.held = held;
        // The kernel's view at mount: the totals are the sums of the groups.
        let (mut blocks, mut inodes) = (0u64, 0u64);
        for g in 0..self.sb.group_count {
            blocks += u64::from(self.gdt.free_blocks(g));
            inodes += u64::from(self.gdt.free_inodes(g));
        }
        let inodes = u32::try_from(inodes).map_err(|_| {
            damaged("the group descriptors' free inode counts add up past 2^32".into())
        })?;
        self.sb.set_free_blocks_count(blocks);
        self.sb.set_free_inodes_count(inodes);
        if self.csum != CsumKind::Meta {
            self.scan_ownership()?;
        }
        Ok(())
    }

    /// The block-ownership scan (see the module doc): every in-use inode's
    /// blocks are in use in the bitmaps and hold no metadata. Returns the number
    /// of inodes looked at.
    pub(super) fn scan_ownership(&mut self) -> Result<u64> {
        let ipg = self.sb.inodes_per_group;
        let first_ino = self.sb.first_ino();
        let jino = if self.sb.has_compat(features::COMPAT_HAS_JOURNAL) {
            le32(self.sb.raw(), S_JOURNAL_INUM)
        } else {
            0
        };
        let mut seen = 0u64;
        for g in 0..self.sb.group_count {
            if self.csum != CsumKind::None && self.gdt.flags(g) & EXT4_BG_INODE_UNINIT != 0 {
                continue;
            }
            let used = if self.csum == CsumKind::None {
                ipg
            } else {
                ipg - self.gdt.itable_unused(g).min(ipg)
            };
            let live: Vec<u32> = {
                let bm = self.load_inode_bitmap(g)?;
                (0..used).filter(|&i| bm.get(i)).collect()
            };
            for i in live {
                let ino = g * ipg + i + 1;
                // Reserved inodes other than the root have their own rules (the
                // journal and bad blocks are held, the resize inode maps the
                // reserved GDT blocks).
                if ino < first_ino && ino != super::ROOT_INO || ino == jino {
                    continue;
                }
                seen += 1;
                self.check_inode_blocks(ino)?;
            }
        }
        Ok(seen)
    }

    /// One in-use inode of the scan.
    fn check_inode_blocks(&mut self, ino: Ino) -> Result<()> {
        let inode = self
            .read_inode(ino)
            .map_err(|e| damaged(e.message().to_string()))?;
        if inode.links() == 0 {
            return Ok(());
        }
        let acl = inode.file_acl();
        if acl != 0 {
            self.check_owned(&inode, &[], &[acl])?;
        }
        let mapped = matches!(
            inode.file_type(),
            FileType::Regular | FileType::Directory | FileType::Symlink
        );
        if !mapped || self.is_fast_symlink(&inode) {
            return Ok(());
        }
        let (runs, tree) = self
            .mapping(&inode)
            .map_err(|e| damaged(e.message().to_string()))?;
        self.check_owned(&inode, &runs, &tree)
    }

    /// The held ranges that meet blocks `start..end`.
    fn held_in(&self, start: u64, end: u64) -> impl Iterator<Item = &Held> {
        // Sorted and disjoint: the ends are sorted too.
        let i = self.held.partition_point(|h| h.end() <= start);
        self.held[i..].iter().take_while(move |h| h.start < end)
    }

    /// A block bitmap just read from disk for group `g`: every held block of the
    /// group marked in use, and as many free blocks as the descriptor says.
    pub(super) fn check_block_bitmap(&self, g: u32, bm: &Bitmap) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        let first = self.sb.group_first_block(g);
        let n = self.sb.group_block_count(g);
        let at = self.gdt.block_bitmap(g);
        for h in self.held_in(first, first + u64::from(n)) {
            let lo = h.start.max(first);
            let hi = h.end().min(first + u64::from(n));
            // OK to cast: both are inside this group, below n.
            if let Some(b) = (lo..hi).find(|&b| !bm.get((b - first) as u32)) {
                return Err(damaged(format!(
                    "the block bitmap of group {g} (block {at}) marks block {b} free, but it holds {}",
                    h.what
                )));
            }
        }
        let free = (0..n).filter(|&i| !bm.get(i)).count() as u64;
        let desc = u64::from(self.gdt.free_blocks(g));
        if free != desc {
            return Err(damaged(format!(
                "group {g}: the block bitmap (block {at}) has {free} free blocks, its descriptor says {desc}"
            )));
        }
        Ok(())
    }

    /// An inode bitmap just read from disk for group `g`: the reserved inodes in
    /// use, and as many free inodes as the descriptor says.
    pub(super) fn check_inode_bitmap(&self, g: u32, bm: &Bitmap) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        let ipg = self.sb.inodes_per_group;
        let at = self.gdt.inode_bitmap(g);
        let base = u64::from(g) * u64::from(ipg);
        let reserved = u64::from(self.sb.first_ino().saturating_sub(1));
        for i in 0..ipg {
            let ino = base + u64::from(i) + 1;
            if ino > reserved {
                break;
            }
            if !bm.get(i) {
                return Err(damaged(format!(
                    "the inode bitmap of group {g} (block {at}) marks reserved inode {ino} free"
                )));
            }
        }
        let free = (0..ipg).filter(|&i| !bm.get(i)).count() as u64;
        let desc = u64::from(self.gdt.free_inodes(g));
        if free != desc {
            return Err(damaged(format!(
                "group {g}: the inode bitmap (block {at}) has {free} free inodes, its descriptor says {desc}"
            )));
        }
        Ok(())
    }

    /// Blocks about to be handed out must hold no metadata.
    pub(super) fn check_not_held(&self, start: u64, count: u64) -> Result<()> {
        if let Some(h) = self.held_in(start, start.saturating_add(count)).next() {
            let (g, _) = self.sb.block_group(start.max(h.start));
            return Err(damaged(format!(
                "the block bitmap of group {g} marks block {} free, but it holds {}",
                start.max(h.start),
                h.what
            )));
        }
        Ok(())
    }

    /// An inode about to be handed out must not be in use. Where the table may
    /// hold garbage (past `bg_itable_unused` with group checksums) nothing can be
    /// told, and the record is written whole anyway.
    pub(super) fn check_inode_free(&self, ino: Ino) -> Result<()> {
        let g = self.inode_group(ino);
        let ipg = self.sb.inodes_per_group;
        let idx = (ino - 1) % ipg;
        if self.csum != super::group::CsumKind::None {
            let initialised = ipg - self.gdt.itable_unused(g).min(ipg);
            if self.gdt.flags(g) & super::group::EXT4_BG_INODE_UNINIT != 0 || idx >= initialised {
                return Ok(());
            }
        }
        if self.inodes.contains_key(&ino) {
            return Ok(());
        }
        let mut raw = [0u8; 0x20];
        self.dev
            .read_exact_at(self.inode_offset(ino)?, &mut raw)
            .map_err(|e| e.context(format_args!("inode {ino}")))?;
        let links = le16(&raw, I_LINKS_COUNT);
        if links != 0 {
            return Err(damaged(format!(
                "the inode bitmap of group {g} marks inode {ino} free, but the inode is in use \
                 ({links} links)"
            )));
        }
        Ok(())
    }

    /// Before a file's blocks are freed or replaced: each block of its map is in
    /// use in the bitmap and holds no metadata (a damaged map would otherwise free
    /// blocks of other files or of the filesystem itself).
    pub(super) fn check_owned(&mut self, inode: &Inode, runs: &[Run], tree: &[u64]) -> Result<()> {
        let ino = inode.ino;
        let spans = runs
            .iter()
            .map(|r| (r.pblk, u64::from(r.len)))
            .chain(tree.iter().map(|&b| (b, 1)));
        for (start, len) in spans.collect::<Vec<_>>() {
            if let Some(h) = self.held_in(start, start.saturating_add(len)).next() {
                return Err(damaged(format!(
                    "inode {ino}: its block map claims block {}, which holds {}",
                    start.max(h.start),
                    h.what
                )));
            }
            let mut b = start;
            while b < start + len {
                let (g, i) = self.sb.block_group(b);
                let in_group = u64::from(self.sb.group_block_count(g) - i).min(start + len - b);
                let first = self.sb.group_first_block(g);
                let bm = self.load_block_bitmap(g)?;
                // OK to cast: inside the group.
                if let Some(k) = (i..i + in_group as u32).find(|&k| !bm.get(k)) {
                    return Err(damaged(format!(
                        "inode {ino}: its block map claims block {}, which the block bitmap of group {g} calls free",
                        first + u64::from(k)
                    )));
                }
                b += in_group;
            }
        }
        Ok(())
    }
}

/// Add a file's mapping (data runs and tree blocks) to the held list.
fn push_mapping(held: &mut Vec<Held>, runs: &[Run], tree: &[u64], data: Holder, map: Holder) {
    for r in runs {
        held.push(Held {
            start: r.pblk,
            len: u64::from(r.len),
            what: data,
        });
    }
    for &b in tree {
        held.push(Held {
            start: b,
            len: 1,
            what: map,
        });
    }
}

//! The allocator: the only place where counts change. Setting or clearing a bit
//! in a block or inode bitmap updates, together, the group's free count (lo/hi),
//! used directories, the BLOCK_UNINIT / INODE_UNINIT flags (with a bitmap
//! synthesised for an uninitialised group), `bg_itable_unused`, and the
//! superblock's free counts; the group is marked dirty so that its bitmap and
//! descriptor checksums are recomputed at flush.
//!
//! Allocation is goal-based: the first free run at or after the goal, near the
//! previous allocation, so files stream into contiguous runs.

use super::bitmap::Bitmap;
use super::group::{CsumKind, EXT4_BG_BLOCK_UNINIT, EXT4_BG_INODE_UNINIT};
use super::{Error, ErrorKind, Ext, Ino, Result};
use crate::disk::ReadAt;

impl<D: ReadAt> Ext<D> {
    fn uninit_valid(&self) -> bool {
        self.csum != CsumKind::None
    }

    /// Blocks of one group's inode table.
    pub(super) fn itable_blocks(&self) -> u64 {
        (u64::from(self.sb.inodes_per_group) * u64::from(self.sb.inode_size)).div_ceil(self.bs())
    }

    /// The block bitmap of a BLOCK_UNINIT group, as the kernel would build it.
    fn synth_block_bitmap(&self, g: u32) -> Bitmap {
        let bs = self.sb.block_size;
        let mut bm = Bitmap {
            bytes: vec![0u8; bs as usize],
            dirty: true,
        };
        let first = self.sb.group_first_block(g);
        let n = self.sb.group_block_count(g);
        if self.sb.group_has_super(g) {
            let meta = 1 + self.sb.gdt_blocks() + u64::from(self.sb.reserved_gdt_blocks());
            let meta = u32::try_from(meta).unwrap_or(u32::MAX).min(n);
            bm.set_range(0, meta);
        }
        let it = self.itable_blocks();
        for h in 0..self.sb.group_count {
            let spans = [
                (self.gdt.block_bitmap(h), 1),
                (self.gdt.inode_bitmap(h), 1),
                (self.gdt.inode_table(h), it),
            ];
            for (start, len) in spans {
                let lo = start.max(first);
                let hi = start.saturating_add(len).min(first + u64::from(n));
                if lo < hi {
                    // OK to cast: both are inside this group, below n.
                    bm.set_range((lo - first) as u32, (hi - first) as u32);
                }
            }
        }
        bm.set_range(n, bs * 8);
        bm
    }

    /// Read group `g`'s block or inode bitmap from disk and verify its checksum
    /// (metadata_csum covers `blocks_per_group` or `inodes_per_group` bits).
    fn read_bitmap(&self, g: u32, kind: BitmapKind) -> Result<Bitmap> {
        let (b, bits, name) = match kind {
            BitmapKind::Block => (self.gdt.block_bitmap(g), self.sb.blocks_per_group, "block"),
            BitmapKind::Inode => (self.gdt.inode_bitmap(g), self.sb.inodes_per_group, "inode"),
        };
        let mut bytes = vec![0u8; self.sb.block_size as usize];
        self.read_block(b, &mut bytes)
            .map_err(|e| e.context(format_args!("{name} bitmap of group {g}")))?;
        let bm = Bitmap {
            bytes,
            dirty: false,
        };
        if self.csum == CsumKind::Meta {
            let sum = bm.checksum(self.fs_seed, bits);
            let ok = match kind {
                BitmapKind::Block => self.gdt.block_bitmap_csum_ok(g, sum),
                BitmapKind::Inode => self.gdt.inode_bitmap_csum_ok(g, sum),
            };
            if !ok {
                return Err(Error::corrupt(format!(
                    "{name} bitmap of group {g} (block {b}): checksum does not match"
                )));
            }
        }
        Ok(bm)
    }

    pub(super) fn load_block_bitmap(&mut self, g: u32) -> Result<&mut Bitmap> {
        if !self.block_bitmaps.contains_key(&g) {
            let bm = if self.uninit_valid() && self.gdt.flags(g) & EXT4_BG_BLOCK_UNINIT != 0 {
                self.synth_block_bitmap(g)
            } else {
                let bm = self.read_bitmap(g, BitmapKind::Block)?;
                self.check_block_bitmap(g, &bm)?;
                bm
            };
            self.block_bitmaps.insert(g, bm);
        }
        self.block_bitmaps
            .get_mut(&g)
            .ok_or_else(|| Error::corrupt("block bitmap cache"))
    }

    pub(super) fn load_inode_bitmap(&mut self, g: u32) -> Result<&mut Bitmap> {
        if !self.inode_bitmaps.contains_key(&g) {
            let bs = self.sb.block_size;
            let bm = if self.uninit_valid() && self.gdt.flags(g) & EXT4_BG_INODE_UNINIT != 0 {
                let mut bm = Bitmap {
                    bytes: vec![0u8; bs as usize],
                    dirty: true,
                };
                bm.set_range(self.sb.inodes_per_group, bs * 8);
                bm
            } else {
                let bm = self.read_bitmap(g, BitmapKind::Inode)?;
                self.check_inode_bitmap(g, &bm)?;
                bm
            };
            self.inode_bitmaps.insert(g, bm);
        }
        self.inode_bitmaps
            .get_mut(&g)
            .ok_or_else(|| Error::corrupt("inode bitmap cache"))
    }

    /// Set (`used`) or clear `count` blocks from `start`, with every count.
    fn mark_blocks(&mut self, start: u64, count: u64, used: bool) -> Result<()> {
        self.check_block(start, count)?;
        let mut b = start;
        let end = start + count;
        while b < end {
            let (g, i) = self.sb.block_group(b);
            let in_group = u64::from(self.sb.group_block_count(g) - i).min(end - b);
            let bm = self.load_block_bitmap(g)?;
            let mut changed = 0u32;
            // OK to cast: in_group is bounded by blocks_per_group.
            for k in i..i + in_group as u32 {
                if bm.get(k) != used {
                    bm.set(k, used);
                    changed += 1;
                }
            }
            if u64::from(changed) != in_group {
                return Err(Error::corrupt(format!(
                    "block bitmap of group {g}: blocks {b}..{} were already {}",
                    b + in_group,
                    if used { "in use" } else { "free" }
                )));
            }
            let free = self.gdt.free_blocks(g);
            let free = if used {
                free.checked_sub(changed)
            } else {
                free.checked_add(changed)
            }
            .ok_or_else(|| Error::corrupt(format!("group {g}: free block count out of range")))?;
            self.gdt.set_free_blocks(g, free);
            if self.uninit_valid() {
                let f = self.gdt.flags(g);
                self.gdt.set_flags(g, f & !EXT4_BG_BLOCK_UNINIT);
            }
            let sfree = self.sb.free_blocks_count();
            let sfree = if used {
                sfree.saturating_sub(u64::from(changed))
            } else {
                sfree.saturating_add(u64::from(changed))
            };
            self.sb.set_free_blocks_count(sfree);
            self.dirty_groups.insert(g);
            self.sb_dirty = true;
            b += in_group;
        }
        Ok(())
    }

    /// Allocate a run of at most `want` free blocks (at least one), first fit at
    /// or after `goal`, wrapping around.
    pub(super) fn alloc_run(&mut self, goal: u64, want: u64) -> Result<(u64, u64)> {
        let want = want.max(1);
        let goal = if goal < self.sb.first_data_block || goal >= self.sb.blocks_count {
            self.sb.first_data_block
        } else {
            goal
        };
        let (g0, i0) = self.sb.block_group(goal);
        let groups = self.sb.group_count;
        for step in 0..=groups {
            let g = (g0 + step) % groups;
            let from = if step == 0 { i0 } else { 0 };
            if self.gdt.free_blocks(g) == 0 && step != 0 {
                continue;
            }
            let limit = self.sb.group_block_count(g);
            let bm = self.load_block_bitmap(g)?;
            if let Some(bit) = bm.find_clear(from, limit) {
                let max = u32::try_from(want).unwrap_or(u32::MAX);
                let n = bm.clear_run(bit, limit, max);
                let start = self.sb.group_first_block(g) + u64::from(bit);
                self.check_not_held(start, u64::from(n))?;
                self.mark_blocks(start, u64::from(n), true)?;
                self.goal = start + u64::from(n);
                return Ok((start, u64::from(n)));
            }
        }
        Err(Error::new(
            ErrorKind::NoSpace,
            "no free block left in the filesystem",
        ))
    }

    /// How many extents `count` blocks would take if [`Ext::alloc_run`] handed
    /// them out from `goal` now (first fit, forward, wrapping once), or `None`
    /// when there are not that many free. Used only when space is tight, to
    /// replace the worst-case extent-tree estimate by the real one.
    pub(super) fn simulate_extents(&mut self, goal: u64, count: u64) -> Result<Option<u64>> {
        if count == 0 {
            return Ok(Some(0));
        }
        let goal = if goal < self.sb.first_data_block || goal >= self.sb.blocks_count {
            self.sb.first_data_block
        } else {
            goal
        };
        let (g0, i0) = self.sb.block_group(goal);
        let groups = self.sb.group_count;
        let max_len = u64::from(super::extent::EXT_INIT_MAX_LEN);
        let (mut got, mut extents, mut run) = (0u64, 0u64, 0u64);
        let mut prev: Option<u64> = None;
        for step in 0..=groups {
            let g = (g0 + step) % groups;
            let (from, to) = match step {
                0 => (i0, self.sb.group_block_count(g)),
                s if s == groups => (0, i0),
                _ => (0, self.sb.group_block_count(g)),
            };
            if step == groups || (g == 0 && step != 0) {
                // Wrapped past the end: a new run starts.
                prev = None;
            }
            let first = self.sb.group_first_block(g);
            let bm = self.load_block_bitmap(g)?;
            for i in from..to {
                if bm.get(i) {
                    continue;
                }
                let b = first + u64::from(i);
                if prev != Some(b.wrapping_sub(1)) || run == max_len {
                    extents += 1;
                    run = 0;
                }
                run += 1;
                got += 1;
                prev = Some(b);
                if got == count {
                    return Ok(Some(extents));
                }
            }
        }
        Ok(None)
    }

    /// Load (and so validate) the block bitmaps of the groups an allocation of
    /// `count` blocks from `goal` would draw from, by the descriptors' free
    /// counts: a damaged bitmap is then refused before any data is written.
    pub(super) fn preload_for(&mut self, goal: u64, count: u64) -> Result<()> {
        let goal = if goal < self.sb.first_data_block || goal >= self.sb.blocks_count {
            self.sb.first_data_block
        } else {
            goal
        };
        let (g0, _) = self.sb.block_group(goal);
        let groups = self.sb.group_count;
        let mut got = 0u64;
        for step in 0..=groups {
            if got >= count {
                break;
            }
            let g = (g0 + step) % groups;
            let free = u64::from(self.gdt.free_blocks(g));
            if free == 0 && step != 0 {
                continue;
            }
            self.load_block_bitmap(g)?;
            got += free;
        }
        Ok(())
    }

    /// Allocate exactly `count` blocks as runs (for tree blocks), near `goal`.
    pub(super) fn alloc_blocks(&mut self, goal: u64, count: u64) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        let mut goal = goal;
        while (out.len() as u64) < count {
            let (s, n) = self.alloc_run(goal, count - out.len() as u64)?;
            out.extend(s..s + n);
            goal = s + n;
        }
        Ok(out)
    }

    /// Return blocks at once (only for blocks this operation allocated and never
    /// made reachable).
    pub(super) fn unalloc_blocks(&mut self, start: u64, count: u64) -> Result<()> {
        self.mark_blocks(start, count, false)
    }

    /// Free blocks at the next flush (never reused before then).
    pub(super) fn free_blocks_later(&mut self, start: u64, count: u64) {
        if count == 0 {
            return;
        }
        if let Some(last) = self.pending_blocks.last_mut() {
            if last.0 + last.1 == start {
                last.1 += count;
                return;
            }
        }
        self.pending_blocks.push((start, count));
    }

    /// Free an inode at the next flush.
    pub(super) fn free_inode_later(&mut self, ino: Ino, dir: bool) {
        self.pending_inodes.push((ino, dir));
    }

    /// Apply the frees deferred since the last flush.
    pub(super) fn apply_pending_frees(&mut self) -> Result<()> {
        let mut blocks = std::mem::take(&mut self.pending_blocks);
        blocks.sort_unstable();
        for (s, n) in blocks {
            self.mark_blocks(s, n, false)?;
        }
        for (ino, dir) in std::mem::take(&mut self.pending_inodes) {
            self.mark_inode(ino, false, dir)?;
        }
        Ok(())
    }

    /// Set or clear inode `ino` in its bitmap, with every count.
    fn mark_inode(&mut self, ino: Ino, used: bool, dir: bool) -> Result<()> {
        let ipg = self.sb.inodes_per_group;
        let g = (ino - 1) / ipg;
        let idx = (ino - 1) % ipg;
        self.last_inode_group_state = (self.gdt.flags(g), self.gdt.itable_unused(g));
        let bm = self.load_inode_bitmap(g)?;
        if bm.get(idx) == used {
            return Err(Error::corrupt(format!(
                "inode bitmap of group {g}: inode {ino} is already {}",
                if used { "in use" } else { "free" }
            )));
        }
        bm.set(idx, used);
        let bad = || Error::corrupt(format!("group {g}: inode counts out of range"));
        let free = self.gdt.free_inodes(g);
        let free = if used {
            free.checked_sub(1)
        } else {
            free.checked_add(1)
        }
        .ok_or_else(bad)?;
        self.gdt.set_free_inodes(g, free);
        if dir {
            let d = self.gdt.used_dirs(g);
            let d = if used {
                d.checked_add(1)
            } else {
                d.checked_sub(1)
            }
            .ok_or_else(bad)?;
            self.gdt.set_used_dirs(g, d);
        }
        if self.uninit_valid() {
            let f = self.gdt.flags(g);
            self.gdt.set_flags(g, f & !EXT4_BG_INODE_UNINIT);
            if used {
                let unused = self.gdt.itable_unused(g).min(ipg);
                let first_unused = ipg - unused;
                if idx >= first_unused {
                    self.gdt.set_itable_unused(g, ipg - idx - 1);
                }
            }
        }
        let sfree = self.sb.free_inodes_count();
        let sfree = if used {
            sfree.checked_sub(1)
        } else {
            sfree.checked_add(1)
        }
        .ok_or_else(bad)?;
        self.sb.set_free_inodes_count(sfree);
        self.dirty_groups.insert(g);
        self.sb_dirty = true;
        Ok(())
    }

    /// Allocate an inode, in `near` group first.
    pub(super) fn alloc_inode(&mut self, near: u32, dir: bool) -> Result<Ino> {
        let groups = self.sb.group_count;
        let ipg = self.sb.inodes_per_group;
        let first_ino = self.sb.first_ino().max(1);
        for step in 0..groups {
            let g = (near % groups + step) % groups;
            if self.gdt.free_inodes(g) == 0 {
                continue;
            }
            let base = g * ipg;
            // Inodes below s_first_ino are reserved.
            let from = (first_ino - 1).saturating_sub(base).min(ipg);
            let bm = self.load_inode_bitmap(g)?;
            if let Some(idx) = bm.find_clear(from, ipg) {
                let ino = base + idx + 1;
                self.check_inode_free(ino)?;
                self.mark_inode(ino, true, dir)?;
                return Ok(ino);
            }
        }
        Err(Error::new(
            ErrorKind::NoSpace,
            "no free inode left in the filesystem",
        ))
    }

    /// Allocate an inode and return, with it, its group's `bg_flags` and
    /// `bg_itable_unused` as they were, for [`Ext::unalloc_inode`].
    pub(super) fn alloc_inode_saving(&mut self, near: u32, dir: bool) -> Result<(Ino, (u16, u32))> {
        let ino = self.alloc_inode(near, dir)?;
        Ok((ino, self.last_inode_group_state))
    }

    /// Give back an inode this operation allocated and never made reachable,
    /// restoring its group's flags and `bg_itable_unused` (so that a refused
    /// operation leaves the same bytes).
    pub(super) fn unalloc_inode(&mut self, ino: Ino, dir: bool, saved: (u16, u32)) -> Result<()> {
        self.mark_inode(ino, false, dir)?;
        let g = self.inode_group(ino);
        if self.uninit_valid() {
            self.gdt.set_flags(g, saved.0);
            self.gdt.set_itable_unused(g, saved.1);
            if saved.0 & EXT4_BG_INODE_UNINIT != 0 {
                // The synthesised bitmap is not to be written after all.
                self.inode_bitmaps.remove(&g);
            }
        }
        Ok(())
    }

    /// The group of an inode.
    pub(super) fn inode_group(&self, ino: Ino) -> u32 {
        (ino.saturating_sub(1)) / self.sb.inodes_per_group
    }
}

/// Which of a group's two bitmaps.
#[derive(Clone, Copy)]
enum BitmapKind {
    Block,
    Inode,
}

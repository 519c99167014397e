//! Writing what is kept in memory, in the order that keeps an interrupted flush
//! repairable by `e2fsck -fy` (at worst leaked blocks, never a reference to
//! garbage): deferred frees applied, then new metadata blocks (tree blocks, new
//! directory blocks), inodes, changed directory blocks, bitmaps, group
//! descriptors (they hold the bitmap checksums), the superblock; then sync.
//! Adjacent records go out in one write.

use super::group::CsumKind;
use super::inode::Inode;
use super::{Ext, Result};
use crate::disk::WriteAt;

/// Largest single coalesced metadata write.
const MAX_WRITE: usize = 1 << 20;

/// Gathers adjacent `(offset, bytes)` pieces into single writes.
struct Batch<'a, D> {
    dev: &'a D,
    start: u64,
    buf: Vec<u8>,
}

impl<'a, D: WriteAt> Batch<'a, D> {
    fn new(dev: &'a D) -> Self {
        Batch {
            dev,
            start: 0,
            buf: Vec::new(),
        }
    }
    fn add(&mut self, off: u64, bytes: &[u8]) -> Result<()> {
        if !self.buf.is_empty()
            && (self.start + self.buf.len() as u64 != off || self.buf.len() >= MAX_WRITE)
        {
            self.finish()?;
        }
        if self.buf.is_empty() {
            self.start = off;
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.dev.write_all_at(self.start, &self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl<D: WriteAt> Ext<D> {
    pub(super) fn write_all_pending(&mut self) -> Result<()> {
        let bs = self.bs();
        // 1. Frees deferred until now (their inodes are written below, before the
        //    bitmaps that record the frees).
        self.apply_pending_frees()?;
        let meta = std::mem::take(&mut self.meta);
        let fresh = std::mem::take(&mut self.fresh);
        // 2. New metadata blocks.
        let mut batch = Batch::new(&self.dev);
        for (b, buf) in meta.iter().filter(|(b, _)| fresh.contains(b)) {
            batch.add(b * bs, buf)?;
        }
        batch.finish()?;
        // 3. Inodes, with their checksums.
        let inodes = std::mem::take(&mut self.inodes);
        let mut batch = Batch::new(&self.dev);
        for (&ino, raw) in &inodes {
            let mut inode = Inode {
                ino,
                raw: raw.clone(),
            };
            if self.csum == CsumKind::Meta {
                inode.update_checksum(self.fs_seed);
            }
            let off = self.inode_offset(ino)?;
            batch.add(off, &inode.raw)?;
        }
        batch.finish()?;
        // 4. Changed directory (and xattr) blocks.
        let mut batch = Batch::new(&self.dev);
        for (b, buf) in meta.iter().filter(|(b, _)| !fresh.contains(b)) {
            batch.add(b * bs, buf)?;
        }
        batch.finish()?;
        // 5. Bitmaps, and their checksums into the descriptors.
        let groups: Vec<u32> = std::mem::take(&mut self.dirty_groups).into_iter().collect();
        let ipg = self.sb.inodes_per_group;
        let cpg = self.sb.blocks_per_group;
        let mut batch = Batch::new(&self.dev);
        let mut writes: Vec<(u64, Vec<u8>)> = Vec::new();
        for &g in &groups {
            if let Some(bm) = self.block_bitmaps.get_mut(&g) {
                if self.csum == CsumKind::Meta {
                    let c = bm.checksum(self.fs_seed, cpg);
                    self.gdt.set_block_bitmap_csum(g, c);
                }
                if bm.dirty {
                    writes.push((self.gdt.block_bitmap(g) * bs, bm.bytes.clone()));
                    bm.dirty = false;
                }
            }
            if let Some(bm) = self.inode_bitmaps.get_mut(&g) {
                if self.csum == CsumKind::Meta {
                    let c = bm.checksum(self.fs_seed, ipg);
                    self.gdt.set_inode_bitmap_csum(g, c);
                }
                if bm.dirty {
                    writes.push((self.gdt.inode_bitmap(g) * bs, bm.bytes.clone()));
                    bm.dirty = false;
                }
            }
        }
        writes.sort_by_key(|w| w.0);
        for (off, bytes) in &writes {
            batch.add(*off, bytes)?;
        }
        batch.finish()?;
        // 6. Group descriptors of the changed groups (primary table only).
        // Contiguous: the writer refuses meta_bg (features::check_write).
        let gdt_off = self.sb.gdt_block(0) * bs;
        let mut batch = Batch::new(&self.dev);
        for &g in &groups {
            self.gdt
                .update_checksum(g, self.csum, self.fs_seed, &self.uuid);
        }
        let mut blocks: Vec<u64> = groups
            .iter()
            .map(|&g| self.gdt.desc_range(g).0 as u64 / bs)
            .collect();
        blocks.dedup();
        for blk in blocks {
            let from = (blk * bs) as usize;
            let to = (from + bs as usize).min(self.gdt.raw().len());
            if let Some(bytes) = self.gdt.raw().get(from..to) {
                batch.add(gdt_off + from as u64, bytes)?;
            }
        }
        batch.finish()?;
        // 7. The superblock.
        if self.sb_dirty {
            if self.csum == CsumKind::Meta {
                self.sb.update_checksum();
            }
            self.dev
                .write_all_at(super::superblock::SUPERBLOCK_OFFSET, self.sb.raw())?;
            self.sb_dirty = false;
        }
        self.dev.sync()?;
        // Keep the bitmap cache bounded.
        if self.block_bitmaps.len() + self.inode_bitmaps.len() > 512 {
            self.block_bitmaps.clear();
            self.inode_bitmaps.clear();
        }
        Ok(())
    }
}

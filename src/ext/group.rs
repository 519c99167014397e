//! Block group descriptors (`struct ext4_group_desc`, 32 or 64 bytes), kept as the
//! raw bytes of the primary table, with their checksums (crc32c with
//! metadata_csum, crc16 with gdt_csum). Backup tables are left alone: e2fsck
//! only compares their geometry, not their counts.

use super::csum::{crc16, crc32c};
use crate::bytes::{le16, le32, put_le16};
use crate::error::{Error, Result};

const BG_BLOCK_BITMAP_LO: usize = 0x0;
const BG_INODE_BITMAP_LO: usize = 0x4;
const BG_INODE_TABLE_LO: usize = 0x8;
const BG_FREE_BLOCKS_COUNT_LO: usize = 0xC;
const BG_FREE_INODES_COUNT_LO: usize = 0xE;
const BG_USED_DIRS_COUNT_LO: usize = 0x10;
const BG_FLAGS: usize = 0x12;
const BG_BLOCK_BITMAP_CSUM_LO: usize = 0x18;
const BG_INODE_BITMAP_CSUM_LO: usize = 0x1A;
const BG_ITABLE_UNUSED_LO: usize = 0x1C;
const BG_CHECKSUM: usize = 0x1E;
const BG_BLOCK_BITMAP_HI: usize = 0x20;
const BG_INODE_BITMAP_HI: usize = 0x24;
const BG_INODE_TABLE_HI: usize = 0x28;
const BG_FREE_BLOCKS_COUNT_HI: usize = 0x2C;
const BG_FREE_INODES_COUNT_HI: usize = 0x2E;
const BG_USED_DIRS_COUNT_HI: usize = 0x30;
const BG_ITABLE_UNUSED_HI: usize = 0x32;
const BG_BLOCK_BITMAP_CSUM_HI: usize = 0x38;
const BG_INODE_BITMAP_CSUM_HI: usize = 0x3A;

/// `bg_flags`: inode table and bitmap not initialised.
pub const EXT4_BG_INODE_UNINIT: u16 = 0x1;
/// `bg_flags`: block bitmap not initialised.
pub const EXT4_BG_BLOCK_UNINIT: u16 = 0x2;

/// Which checksum protects the descriptors (and bitmaps, inodes, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsumKind {
    /// No checksums; uninit flags are meaningless.
    None,
    /// gdt_csum (uninit_bg): crc16 of descriptors only.
    Gdt,
    /// metadata_csum: crc32c everywhere.
    Meta,
}

/// The primary group descriptor table.
#[derive(Clone, Debug)]
pub struct GroupTable {
    raw: Vec<u8>,
    desc_size: usize,
}

impl GroupTable {
    /// Wrap the raw table (`count` descriptors of `desc_size` bytes).
    pub fn new(raw: Vec<u8>, desc_size: u16, count: u32) -> Result<GroupTable> {
        let desc_size = usize::from(desc_size);
        let need = (count as usize).saturating_mul(desc_size);
        if raw.len() < need {
            return Err(Error::corrupt("group descriptor table: short read"));
        }
        Ok(GroupTable { raw, desc_size })
    }

    /// The raw bytes of the table.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    fn d(&self, g: u32) -> &[u8] {
        let o = (g as usize).saturating_mul(self.desc_size);
        self.raw.get(o..o + self.desc_size).unwrap_or(&[])
    }

    fn dm(&mut self, g: u32) -> &mut [u8] {
        let o = (g as usize).saturating_mul(self.desc_size);
        let end = o + self.desc_size;
        self.raw.get_mut(o..end).unwrap_or(&mut [])
    }

    fn wide(&self) -> bool {
        self.desc_size >= 64
    }

    fn get32(&self, g: u32, lo: usize, hi: usize) -> u64 {
        let d = self.d(g);
        let mut v = u64::from(le32(d, lo));
        if self.wide() {
            v |= u64::from(le32(d, hi)) << 32;
        }
        v
    }

    fn get16(&self, g: u32, lo: usize, hi: usize) -> u32 {
        let d = self.d(g);
        let mut v = u32::from(le16(d, lo));
        if self.wide() {
            v |= u32::from(le16(d, hi)) << 16;
        }
        v
    }

    fn set16(&mut self, g: u32, lo: usize, hi: usize, v: u32) {
        let wide = self.wide();
        let d = self.dm(g);
        put_le16(d, lo, (v & 0xFFFF) as u16);
        if wide {
            put_le16(d, hi, (v >> 16) as u16);
        }
    }

    /// `bg_block_bitmap`.
    pub fn block_bitmap(&self, g: u32) -> u64 {
        self.get32(g, BG_BLOCK_BITMAP_LO, BG_BLOCK_BITMAP_HI)
    }
    /// `bg_inode_bitmap`.
    pub fn inode_bitmap(&self, g: u32) -> u64 {
        self.get32(g, BG_INODE_BITMAP_LO, BG_INODE_BITMAP_HI)
    }
    /// `bg_inode_table`.
    pub fn inode_table(&self, g: u32) -> u64 {
        self.get32(g, BG_INODE_TABLE_LO, BG_INODE_TABLE_HI)
    }
    /// `bg_free_blocks_count`.
    pub fn free_blocks(&self, g: u32) -> u32 {
        self.get16(g, BG_FREE_BLOCKS_COUNT_LO, BG_FREE_BLOCKS_COUNT_HI)
    }
    /// Set `bg_free_blocks_count` (allocator only).
    pub fn set_free_blocks(&mut self, g: u32, v: u32) {
        self.set16(g, BG_FREE_BLOCKS_COUNT_LO, BG_FREE_BLOCKS_COUNT_HI, v)
    }
    /// `bg_free_inodes_count`.
    pub fn free_inodes(&self, g: u32) -> u32 {
        self.get16(g, BG_FREE_INODES_COUNT_LO, BG_FREE_INODES_COUNT_HI)
    }
    /// Set `bg_free_inodes_count` (allocator only).
    pub fn set_free_inodes(&mut self, g: u32, v: u32) {
        self.set16(g, BG_FREE_INODES_COUNT_LO, BG_FREE_INODES_COUNT_HI, v)
    }
    /// `bg_used_dirs_count`.
    pub fn used_dirs(&self, g: u32) -> u32 {
        self.get16(g, BG_USED_DIRS_COUNT_LO, BG_USED_DIRS_COUNT_HI)
    }
    /// Set `bg_used_dirs_count` (allocator only).
    pub fn set_used_dirs(&mut self, g: u32, v: u32) {
        self.set16(g, BG_USED_DIRS_COUNT_LO, BG_USED_DIRS_COUNT_HI, v)
    }
    /// `bg_itable_unused`.
    pub fn itable_unused(&self, g: u32) -> u32 {
        self.get16(g, BG_ITABLE_UNUSED_LO, BG_ITABLE_UNUSED_HI)
    }
    /// Set `bg_itable_unused` (allocator only).
    pub fn set_itable_unused(&mut self, g: u32, v: u32) {
        self.set16(g, BG_ITABLE_UNUSED_LO, BG_ITABLE_UNUSED_HI, v)
    }
    /// `bg_flags`.
    pub fn flags(&self, g: u32) -> u16 {
        le16(self.d(g), BG_FLAGS)
    }
    /// Set `bg_flags`.
    pub fn set_flags(&mut self, g: u32, v: u16) {
        put_le16(self.dm(g), BG_FLAGS, v)
    }
    /// Store the block bitmap checksum (lo, and hi with 64-byte descriptors).
    pub fn set_block_bitmap_csum(&mut self, g: u32, c: u32) {
        self.set16(g, BG_BLOCK_BITMAP_CSUM_LO, BG_BLOCK_BITMAP_CSUM_HI, c)
    }
    /// Store the inode bitmap checksum.
    pub fn set_inode_bitmap_csum(&mut self, g: u32, c: u32) {
        self.set16(g, BG_INODE_BITMAP_CSUM_LO, BG_INODE_BITMAP_CSUM_HI, c)
    }

    /// Does the stored block bitmap checksum match `c`?
    pub fn block_bitmap_csum_ok(&self, g: u32, c: u32) -> bool {
        self.csum_matches(g, BG_BLOCK_BITMAP_CSUM_LO, BG_BLOCK_BITMAP_CSUM_HI, c)
    }

    /// Does the stored inode bitmap checksum match `c`?
    pub fn inode_bitmap_csum_ok(&self, g: u32, c: u32) -> bool {
        self.csum_matches(g, BG_INODE_BITMAP_CSUM_LO, BG_INODE_BITMAP_CSUM_HI, c)
    }

    fn csum_matches(&self, g: u32, lo: usize, hi: usize, c: u32) -> bool {
        let stored = self.get16(g, lo, hi);
        if self.wide() {
            stored == c
        } else {
            stored == c & 0xFFFF
        }
    }

    /// The descriptor checksum as it should be.
    pub fn compute_checksum(&self, g: u32, kind: CsumKind, fs_seed: u32, uuid: &[u8; 16]) -> u16 {
        let d = self.d(g);
        let le_g = g.to_le_bytes();
        match kind {
            CsumKind::None => 0,
            CsumKind::Meta => {
                let mut copy = d.to_vec();
                put_le16(&mut copy, BG_CHECKSUM, 0);
                let c = crc32c(crc32c(fs_seed, &le_g), &copy);
                (c & 0xFFFF) as u16
            }
            CsumKind::Gdt => {
                let mut c = crc16(!0, uuid);
                c = crc16(c, &le_g);
                c = crc16(c, d.get(..BG_CHECKSUM).unwrap_or(&[]));
                if d.len() > BG_CHECKSUM + 2 {
                    c = crc16(c, d.get(BG_CHECKSUM + 2..).unwrap_or(&[]));
                }
                c
            }
        }
    }

    /// Recompute and store group `g`'s descriptor checksum.
    pub fn update_checksum(&mut self, g: u32, kind: CsumKind, fs_seed: u32, uuid: &[u8; 16]) {
        if kind == CsumKind::None {
            return;
        }
        let c = self.compute_checksum(g, kind, fs_seed, uuid);
        put_le16(self.dm(g), BG_CHECKSUM, c);
    }

    /// Byte range in the table of group `g`'s descriptor.
    pub fn desc_range(&self, g: u32) -> (usize, usize) {
        let o = (g as usize).saturating_mul(self.desc_size);
        (o, self.desc_size)
    }
}

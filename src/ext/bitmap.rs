//! Block and inode bitmaps: one block per group, bit `i` for the group's `i`-th
//! block or inode. Loaded on demand; a group flagged BLOCK_UNINIT or INODE_UNINIT
//! (with group checksums) has no valid bitmap on disk, so it is synthesised here
//! as the kernel's `ext4_init_block_bitmap` does. Checksums cover only
//! `clusters_per_group / 8` or `inodes_per_group / 8` bytes.

use super::csum::crc32c;

/// One group's bitmap block.
#[derive(Clone, Debug)]
pub struct Bitmap {
    /// The whole block.
    pub bytes: Vec<u8>,
    /// Changed since read.
    pub dirty: bool,
}

impl Bitmap {
    /// Is bit `i` set? (Bits past the buffer read as set.)
    pub fn get(&self, i: u32) -> bool {
        match self.bytes.get((i / 8) as usize) {
            Some(b) => b & (1 << (i % 8)) != 0,
            None => true,
        }
    }

    /// Set or clear bit `i`.
    pub fn set(&mut self, i: u32, v: bool) {
        if let Some(b) = self.bytes.get_mut((i / 8) as usize) {
            if v {
                *b |= 1 << (i % 8);
            } else {
                *b &= !(1 << (i % 8));
            }
            self.dirty = true;
        }
    }

    /// Set bits `from..to` (padding).
    pub fn set_range(&mut self, from: u32, to: u32) {
        for i in from..to {
            self.set(i, true);
        }
    }

    /// The first clear bit in `from..limit`, if any.
    pub fn find_clear(&self, from: u32, limit: u32) -> Option<u32> {
        let mut i = from;
        while i < limit {
            if i % 8 == 0 && i + 8 <= limit && self.bytes.get((i / 8) as usize) == Some(&0xFF) {
                i += 8;
                continue;
            }
            if !self.get(i) {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// Length of the run of clear bits starting at `from`, at most `max`, below `limit`.
    pub fn clear_run(&self, from: u32, limit: u32, max: u32) -> u32 {
        let mut n = 0;
        while n < max && from + n < limit && !self.get(from + n) {
            n += 1;
        }
        n
    }

    /// The metadata_csum checksum of the first `nbits` bits.
    pub fn checksum(&self, fs_seed: u32, nbits: u32) -> u32 {
        let n = (nbits / 8) as usize;
        crc32c(fs_seed, self.bytes.get(..n).unwrap_or(&self.bytes))
    }
}

//! The superblock (`struct ext4_super_block`, 1024 bytes at byte 1024): its raw
//! bytes are kept and patched; fields are read at named offsets with the kernel's
//! names, and the geometry derived from them is validated once at open.

// Every field is named, used or not, so the table reads like the kernel's.
#![allow(dead_code)]

use super::csum::crc32c;
use super::le::{put_u32, u16_at, u32_at, u8_at};
use crate::error::{Error, Result};

/// Byte offset of the superblock in the filesystem.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the superblock.
pub const SUPERBLOCK_SIZE: usize = 1024;
/// `s_magic`.
pub const EXT4_SUPER_MAGIC: u16 = 0xEF53;

pub const S_INODES_COUNT: usize = 0x0;
pub const S_BLOCKS_COUNT_LO: usize = 0x4;
pub const S_R_BLOCKS_COUNT_LO: usize = 0x8;
pub const S_FREE_BLOCKS_COUNT_LO: usize = 0xC;
pub const S_FREE_INODES_COUNT: usize = 0x10;
pub const S_FIRST_DATA_BLOCK: usize = 0x14;
pub const S_LOG_BLOCK_SIZE: usize = 0x18;
pub const S_LOG_CLUSTER_SIZE: usize = 0x1C;
pub const S_BLOCKS_PER_GROUP: usize = 0x20;
pub const S_CLUSTERS_PER_GROUP: usize = 0x24;
pub const S_INODES_PER_GROUP: usize = 0x28;
pub const S_MAGIC: usize = 0x38;
pub const S_STATE: usize = 0x3A;
pub const S_REV_LEVEL: usize = 0x4C;
pub const S_FIRST_INO: usize = 0x54;
pub const S_INODE_SIZE: usize = 0x58;
pub const S_FEATURE_COMPAT: usize = 0x5C;
pub const S_FEATURE_INCOMPAT: usize = 0x60;
pub const S_FEATURE_RO_COMPAT: usize = 0x64;
pub const S_UUID: usize = 0x68;
pub const S_RESERVED_GDT_BLOCKS: usize = 0xCE;
pub const S_JOURNAL_INUM: usize = 0xE0;
pub const S_LAST_ORPHAN: usize = 0xE8;
pub const S_HASH_SEED: usize = 0xEC;
pub const S_DEF_HASH_VERSION: usize = 0xFC;
pub const S_DESC_SIZE: usize = 0xFE;
pub const S_FIRST_META_BG: usize = 0x104;
pub const S_BLOCKS_COUNT_HI: usize = 0x150;
pub const S_R_BLOCKS_COUNT_HI: usize = 0x154;
pub const S_FREE_BLOCKS_COUNT_HI: usize = 0x158;
pub const S_MIN_EXTRA_ISIZE: usize = 0x15C;
pub const S_WANT_EXTRA_ISIZE: usize = 0x15E;
pub const S_FLAGS: usize = 0x160;
pub const S_LOG_GROUPS_PER_FLEX: usize = 0x174;
pub const S_BACKUP_BGS: usize = 0x24C;
pub const S_CHECKSUM_SEED: usize = 0x270;
pub const S_CHECKSUM: usize = 0x3FC;

/// `s_state`: cleanly unmounted.
pub const EXT2_VALID_FS: u16 = 0x0001;
/// `s_state`: errors detected.
pub const EXT2_ERROR_FS: u16 = 0x0002;
/// `s_state`: orphans being recovered.
pub const EXT3_ORPHAN_FS: u16 = 0x0004;
/// `s_flags`: directory hashes use unsigned chars.
pub const EXT2_FLAGS_UNSIGNED_HASH: u32 = 0x0002;

/// The superblock's bytes and the geometry derived from them.
#[derive(Clone, Debug)]
pub struct Superblock {
    raw: Vec<u8>,
    /// Block size in bytes (1024..=65536).
    pub block_size: u32,
    /// `s_blocks_count` (lo | hi with 64bit).
    pub blocks_count: u64,
    /// `s_first_data_block`.
    pub first_data_block: u64,
    /// `s_blocks_per_group`.
    pub blocks_per_group: u32,
    /// `s_inodes_per_group`.
    pub inodes_per_group: u32,
    /// `s_inodes_count`.
    pub inodes_count: u32,
    /// `s_inode_size` (128 for revision 0).
    pub inode_size: u16,
    /// Number of block groups.
    pub group_count: u32,
    /// Group descriptor size (32, or `s_desc_size` with 64bit).
    pub desc_size: u16,
}

impl Superblock {
    /// Parse and validate `raw` (1024 bytes) against a device of `dev_size` bytes.
    pub fn parse(raw: Vec<u8>, dev_size: u64) -> Result<Superblock> {
        if raw.len() != SUPERBLOCK_SIZE {
            return Err(Error::corrupt("ext superblock: short read"));
        }
        let magic = u16_at(&raw, S_MAGIC);
        if magic != EXT4_SUPER_MAGIC {
            return Err(Error::corrupt(format!(
                "ext superblock at 0x400: bad magic {magic:#06x}"
            )));
        }
        let log = u32_at(&raw, S_LOG_BLOCK_SIZE);
        if log > 6 {
            return Err(Error::corrupt(format!(
                "ext superblock at 0x400: s_log_block_size {log} out of range"
            )));
        }
        let block_size = 1024u32 << log;
        let incompat = u32_at(&raw, S_FEATURE_INCOMPAT);
        let is64 = incompat & super::features::INCOMPAT_64BIT != 0;
        let mut blocks_count = u64::from(u32_at(&raw, S_BLOCKS_COUNT_LO));
        if is64 {
            blocks_count |= u64::from(u32_at(&raw, S_BLOCKS_COUNT_HI)) << 32;
        }
        let first_data_block = u64::from(u32_at(&raw, S_FIRST_DATA_BLOCK));
        let blocks_per_group = u32_at(&raw, S_BLOCKS_PER_GROUP);
        let inodes_per_group = u32_at(&raw, S_INODES_PER_GROUP);
        let inodes_count = u32_at(&raw, S_INODES_COUNT);
        let rev = u32_at(&raw, S_REV_LEVEL);
        let inode_size = if rev == 0 {
            128
        } else {
            u16_at(&raw, S_INODE_SIZE)
        };
        let bad = |what: &str| Error::corrupt(format!("ext superblock at 0x400: {what}"));
        // With bigalloc the bitmap counts clusters: a group spans more blocks.
        let ro_compat = u32_at(&raw, S_FEATURE_RO_COMPAT);
        let cluster_shift = if ro_compat & super::features::RO_COMPAT_BIGALLOC != 0 {
            u32_at(&raw, S_LOG_CLUSTER_SIZE).saturating_sub(log).min(16)
        } else {
            0
        };
        let max_bpg = (u64::from(block_size) * 8) << cluster_shift;
        if blocks_per_group == 0 || u64::from(blocks_per_group) > max_bpg {
            return Err(bad("s_blocks_per_group out of range"));
        }
        if inodes_per_group == 0 || inodes_per_group > block_size.saturating_mul(8) {
            return Err(bad("s_inodes_per_group out of range"));
        }
        if inode_size < 128 || !inode_size.is_power_of_two() || u32::from(inode_size) > block_size {
            return Err(bad("s_inode_size out of range"));
        }
        if first_data_block >= blocks_count || first_data_block > 1 {
            return Err(bad("s_first_data_block out of range"));
        }
        let fs_bytes = blocks_count.checked_mul(u64::from(block_size));
        match fs_bytes {
            Some(b) if b <= dev_size => {}
            _ => {
                return Err(bad(&format!(
                    "{blocks_count} blocks of {block_size} bytes do not fit in the {dev_size:#x}-byte partition"
                )))
            }
        }
        let groups = (blocks_count - first_data_block).div_ceil(u64::from(blocks_per_group));
        let group_count = u32::try_from(groups).map_err(|_| bad("too many groups"))?;
        // Every group's descriptor and bitmaps are held while the filesystem is open:
        // a hostile superblock with tiny groups on a large sparse image would make
        // that hundreds of millions of them. Refused before anything is read.
        if u64::from(group_count) > super::MAX_GROUPS {
            return Err(Error::unsupported(format!(
                "ext superblock at 0x400: {group_count} block groups; domuify handles at most {} \
                 (128 TiB in 4 KiB blocks)",
                super::MAX_GROUPS
            )));
        }
        if u64::from(group_count) * u64::from(inodes_per_group) != u64::from(inodes_count) {
            return Err(bad("s_inodes_count is not groups x s_inodes_per_group"));
        }
        let desc_size = if is64 {
            let d = u16_at(&raw, S_DESC_SIZE);
            if d < 64 || !d.is_power_of_two() || u32::from(d) > block_size {
                return Err(bad("s_desc_size out of range"));
            }
            d
        } else {
            32
        };
        Ok(Superblock {
            raw,
            block_size,
            blocks_count,
            first_data_block,
            blocks_per_group,
            inodes_per_group,
            inodes_count,
            inode_size,
            group_count,
            desc_size,
        })
    }

    /// The raw bytes.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// `s_feature_compat`.
    pub fn feature_compat(&self) -> u32 {
        u32_at(&self.raw, S_FEATURE_COMPAT)
    }
    /// `s_feature_incompat`.
    pub fn feature_incompat(&self) -> u32 {
        u32_at(&self.raw, S_FEATURE_INCOMPAT)
    }
    /// `s_feature_ro_compat`.
    pub fn feature_ro_compat(&self) -> u32 {
        u32_at(&self.raw, S_FEATURE_RO_COMPAT)
    }
    /// Set bits in `s_feature_ro_compat`.
    pub fn add_ro_compat(&mut self, bits: u32) {
        let v = self.feature_ro_compat() | bits;
        put_u32(&mut self.raw, S_FEATURE_RO_COMPAT, v);
    }
    /// Is this incompat feature on?
    pub fn has_incompat(&self, bit: u32) -> bool {
        self.feature_incompat() & bit != 0
    }
    /// Is this ro_compat feature on?
    pub fn has_ro_compat(&self, bit: u32) -> bool {
        self.feature_ro_compat() & bit != 0
    }
    /// Is this compat feature on?
    pub fn has_compat(&self, bit: u32) -> bool {
        self.feature_compat() & bit != 0
    }
    /// `s_state`.
    pub fn state(&self) -> u16 {
        u16_at(&self.raw, S_STATE)
    }
    /// `s_last_orphan`.
    pub fn last_orphan(&self) -> u32 {
        u32_at(&self.raw, S_LAST_ORPHAN)
    }
    /// `s_uuid`.
    pub fn uuid(&self) -> [u8; 16] {
        let mut u = [0u8; 16];
        if let Some(s) = self.raw.get(S_UUID..S_UUID + 16) {
            u.copy_from_slice(s);
        }
        u
    }
    /// `s_first_ino`: the first non-reserved inode.
    pub fn first_ino(&self) -> u32 {
        if u32_at(&self.raw, S_REV_LEVEL) == 0 {
            11
        } else {
            u32_at(&self.raw, S_FIRST_INO)
        }
    }
    /// `s_reserved_gdt_blocks`.
    pub fn reserved_gdt_blocks(&self) -> u32 {
        u32::from(u16_at(&self.raw, S_RESERVED_GDT_BLOCKS))
    }
    /// `s_log_groups_per_flex`.
    pub fn log_groups_per_flex(&self) -> u8 {
        u8_at(&self.raw, S_LOG_GROUPS_PER_FLEX)
    }
    /// `s_want_extra_isize`.
    pub fn want_extra_isize(&self) -> u16 {
        u16_at(&self.raw, S_WANT_EXTRA_ISIZE)
    }
    /// `s_min_extra_isize`.
    pub fn min_extra_isize(&self) -> u16 {
        u16_at(&self.raw, S_MIN_EXTRA_ISIZE)
    }
    /// `s_hash_seed` as four words.
    pub fn hash_seed(&self) -> [u32; 4] {
        [0, 1, 2, 3].map(|i| u32_at(&self.raw, S_HASH_SEED + 4 * i))
    }
    /// `s_def_hash_version`.
    pub fn def_hash_version(&self) -> u8 {
        u8_at(&self.raw, S_DEF_HASH_VERSION)
    }
    /// `s_flags`.
    pub fn flags(&self) -> u32 {
        u32_at(&self.raw, S_FLAGS)
    }
    /// `s_checksum_seed`.
    pub fn checksum_seed(&self) -> u32 {
        u32_at(&self.raw, S_CHECKSUM_SEED)
    }
    /// `s_backup_bgs` (sparse_super2).
    pub fn backup_bgs(&self) -> [u32; 2] {
        [
            u32_at(&self.raw, S_BACKUP_BGS),
            u32_at(&self.raw, S_BACKUP_BGS + 4),
        ]
    }
    /// `s_r_blocks_count`.
    pub fn r_blocks_count(&self) -> u64 {
        let mut v = u64::from(u32_at(&self.raw, S_R_BLOCKS_COUNT_LO));
        if self.desc_size >= 64 {
            v |= u64::from(u32_at(&self.raw, S_R_BLOCKS_COUNT_HI)) << 32;
        }
        v
    }
    /// `s_free_blocks_count`.
    pub fn free_blocks_count(&self) -> u64 {
        let mut v = u64::from(u32_at(&self.raw, S_FREE_BLOCKS_COUNT_LO));
        if self.desc_size >= 64 {
            v |= u64::from(u32_at(&self.raw, S_FREE_BLOCKS_COUNT_HI)) << 32;
        }
        v
    }
    /// Set `s_free_blocks_count` (only the allocator calls this).
    pub fn set_free_blocks_count(&mut self, v: u64) {
        put_u32(&mut self.raw, S_FREE_BLOCKS_COUNT_LO, super::le::lo32(v));
        if self.desc_size >= 64 {
            put_u32(&mut self.raw, S_FREE_BLOCKS_COUNT_HI, super::le::hi32(v));
        }
    }
    /// `s_free_inodes_count`.
    pub fn free_inodes_count(&self) -> u32 {
        u32_at(&self.raw, S_FREE_INODES_COUNT)
    }
    /// Set `s_free_inodes_count` (only the allocator calls this).
    pub fn set_free_inodes_count(&mut self, v: u32) {
        put_u32(&mut self.raw, S_FREE_INODES_COUNT, v);
    }
    /// Recompute `s_checksum` (metadata_csum): crc32c(~0) over the bytes before it.
    pub fn update_checksum(&mut self) {
        let c = crc32c(!0, self.raw.get(..S_CHECKSUM).unwrap_or(&[]));
        put_u32(&mut self.raw, S_CHECKSUM, c);
    }
    /// Does the stored `s_checksum` match?
    pub fn checksum_ok(&self) -> bool {
        crc32c(!0, self.raw.get(..S_CHECKSUM).unwrap_or(&[])) == u32_at(&self.raw, S_CHECKSUM)
    }

    /// Does group `g` hold a superblock backup (and so a GDT copy)?
    pub fn group_has_super(&self, g: u32) -> bool {
        use super::features::{COMPAT_SPARSE_SUPER2, RO_COMPAT_SPARSE_SUPER};
        if g == 0 {
            return true;
        }
        if self.has_compat(COMPAT_SPARSE_SUPER2) {
            let b = self.backup_bgs();
            return g == b[0] || g == b[1];
        }
        if g <= 1 || !self.has_ro_compat(RO_COMPAT_SPARSE_SUPER) {
            return true;
        }
        if g & 1 == 0 {
            return false;
        }
        [3u32, 5, 7].iter().any(|&p| is_power_of(g, p))
    }

    /// Blocks of the group descriptor table.
    pub fn gdt_blocks(&self) -> u64 {
        (u64::from(self.group_count) * u64::from(self.desc_size))
            .div_ceil(u64::from(self.block_size))
    }

    /// Block holding descriptor block `i` of the primary group descriptor
    /// table, as libext2fs's `ext2fs_descriptor_block_loc2` finds it: right
    /// after the superblock's block (block 2 when 1 KiB blocks start at block 0,
    /// as with bigalloc), or with meta_bg, from `s_first_meta_bg` on, in the
    /// first group of each meta group (after its superblock backup, if any).
    pub fn gdt_block(&self, i: u64) -> u64 {
        let sb_block = if self.first_data_block == 0 && self.block_size == 1024 {
            1
        } else {
            self.first_data_block
        };
        let meta_bg = self.has_incompat(super::features::INCOMPAT_META_BG);
        let first_meta_bg = u64::from(u32_at(&self.raw, S_FIRST_META_BG));
        if !meta_bg || i < first_meta_bg {
            return sb_block + 1 + i;
        }
        let per_block = u64::from(self.block_size / u32::from(self.desc_size.max(1)));
        // OK to truncate: i is below gdt_blocks, so bg is below group_count.
        let bg = (per_block * i) as u32;
        let mut b = self.group_first_block(bg) + u64::from(self.group_has_super(bg));
        if bg == 0 && sb_block != self.first_data_block {
            b += 1;
        }
        b
    }

    /// First block of group `g`.
    pub fn group_first_block(&self, g: u32) -> u64 {
        self.first_data_block + u64::from(g) * u64::from(self.blocks_per_group)
    }

    /// Number of blocks in group `g` (the last one may be short).
    pub fn group_block_count(&self, g: u32) -> u32 {
        let first = self.group_first_block(g);
        let left = self.blocks_count.saturating_sub(first);
        // OK to cast: bounded by blocks_per_group, a u32.
        left.min(u64::from(self.blocks_per_group)) as u32
    }

    /// The group holding block `b` and its index in it.
    pub fn block_group(&self, b: u64) -> (u32, u32) {
        let rel = b.saturating_sub(self.first_data_block);
        let bpg = u64::from(self.blocks_per_group);
        // OK to cast: the group count is a u32 and the index is below bpg.
        ((rel / bpg) as u32, (rel % bpg) as u32)
    }
}

fn is_power_of(mut n: u32, p: u32) -> bool {
    while n > 1 && n % p == 0 {
        n /= p;
    }
    n == 1
}

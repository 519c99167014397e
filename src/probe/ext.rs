//! ext2/3/4: the primary superblock at byte 1024, read for identification only.
//!
//! The type is decided as libblkid decides it: ext2 when there is no journal and
//! only features ext2 knows; ext3 with a journal and only features ext3 knows;
//! ext4 when any feature is beyond ext3 (extents, 64bit, flex_bg, huge_file,
//! dir_nlink, extra_isize, metadata_csum, ...). A superblock is taken as ext when
//! the magic is there and `s_log_block_size < 256` (blkid's own test); anything
//! else that cannot be right (a bad superblock checksum, a block size over 64 KiB,
//! zero counts, a filesystem larger than its partition) is reported in
//! [`FsInfo::problem`] with the type still named. Feature names and their order
//! are those of `dumpe2fs -h`. An ext4 with the `test_fs` flag (blkid's
//! "ext4dev") is reported as ext4; an external journal as blkid's `jbd`, with
//! its UUID also as the `LOGUUID` the filesystems using it name.

use super::bytes::{self, le16, le32};
use super::{ExtInfo, ExtState, FsInfo, FsType, Label};
use crate::disk::ReadAt;
use crate::error::Result;

/// Byte offset of the primary superblock.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Bytes of the superblock.
const SUPERBLOCK_SIZE: usize = 1024;

const S_INODES_COUNT: usize = 0x00;
const S_BLOCKS_COUNT_LO: usize = 0x04;
const S_FREE_BLOCKS_COUNT_LO: usize = 0x0C;
const S_FREE_INODES_COUNT: usize = 0x10;
const S_FIRST_DATA_BLOCK: usize = 0x14;
const S_LOG_BLOCK_SIZE: usize = 0x18;
const S_BLOCKS_PER_GROUP: usize = 0x20;
const S_INODES_PER_GROUP: usize = 0x28;
const S_MAGIC: usize = 0x38;
const S_STATE: usize = 0x3A;
const S_MINOR_REV_LEVEL: usize = 0x3E;
const S_REV_LEVEL: usize = 0x4C;
const S_INODE_SIZE: usize = 0x58;
const S_FEATURE_COMPAT: usize = 0x5C;
const S_FEATURE_INCOMPAT: usize = 0x60;
const S_FEATURE_RO_COMPAT: usize = 0x64;
const S_UUID: usize = 0x68;
const S_VOLUME_NAME: usize = 0x78;
const S_LAST_MOUNTED: usize = 0x88;
const S_BLOCKS_COUNT_HI: usize = 0x150;
const S_FREE_BLOCKS_HI: usize = 0x158;
const S_CHECKSUM: usize = 0x3FC;

const EXT_MAGIC: u16 = 0xEF53;

const EXT2_VALID_FS: u16 = 0x0001;
const EXT2_ERROR_FS: u16 = 0x0002;
const EXT2_GOOD_OLD_REV: u32 = 0;
const EXT2_GOOD_OLD_INODE_SIZE: u16 = 128;
/// Largest block size the kernel mounts: 64 KiB.
const MAX_LOG_BLOCK_SIZE: u32 = 6;

const COMPAT_HAS_JOURNAL: u32 = 0x0004;
const INCOMPAT_FILETYPE: u32 = 0x0002;
const INCOMPAT_RECOVER: u32 = 0x0004;
const INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
const INCOMPAT_META_BG: u32 = 0x0010;
const INCOMPAT_64BIT: u32 = 0x0080;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
const RO_COMPAT_LARGE_FILE: u32 = 0x0002;
const RO_COMPAT_BTREE_DIR: u32 = 0x0004;
const RO_COMPAT_METADATA_CSUM: u32 = 0x0400;

/// Features ext2 and ext3 know (libblkid's `EXT2_FEATURE_*_SUPP` and
/// `EXT3_FEATURE_*_SUPP`).
const EXT2_INCOMPAT_SUPP: u32 = INCOMPAT_FILETYPE | INCOMPAT_META_BG;
const EXT3_INCOMPAT_SUPP: u32 = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG;
const EXT3_RO_COMPAT_SUPP: u32 =
    RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR;

/// Names of the compat, incompat and ro_compat bits, as e2fsprogs' e2p prints them.
const COMPAT_NAMES: &[(u32, &str)] = &[
    (0x0001, "dir_prealloc"),
    (0x0002, "imagic_inodes"),
    (0x0004, "has_journal"),
    (0x0008, "ext_attr"),
    (0x0010, "resize_inode"),
    (0x0020, "dir_index"),
    (0x0040, "lazy_bg"),
    (0x0100, "snapshot_bitmap"),
    (0x0200, "sparse_super2"),
    (0x0400, "fast_commit"),
    (0x0800, "stable_inodes"),
    (0x1000, "orphan_file"),
];
const INCOMPAT_NAMES: &[(u32, &str)] = &[
    (0x0001, "compression"),
    (0x0002, "filetype"),
    (0x0004, "needs_recovery"),
    (0x0008, "journal_dev"),
    (0x0010, "meta_bg"),
    (0x0040, "extent"),
    (0x0080, "64bit"),
    (0x0100, "mmp"),
    (0x0200, "flex_bg"),
    (0x0400, "ea_inode"),
    (0x1000, "dirdata"),
    (0x2000, "metadata_csum_seed"),
    (0x4000, "large_dir"),
    (0x8000, "inline_data"),
    (0x10000, "encrypt"),
    (0x20000, "casefold"),
];
const RO_COMPAT_NAMES: &[(u32, &str)] = &[
    (0x0001, "sparse_super"),
    (0x0002, "large_file"),
    (0x0008, "huge_file"),
    (0x0010, "uninit_bg"),
    (0x0020, "dir_nlink"),
    (0x0040, "extra_isize"),
    (0x0100, "quota"),
    (0x0200, "bigalloc"),
    (0x0400, "metadata_csum"),
    (0x0800, "replica"),
    (0x1000, "read-only"),
    (0x2000, "project"),
    (0x4000, "shared_blocks"),
    (0x8000, "verity"),
    (0x10000, "orphan_present"),
];

/// Feature names in `dumpe2fs -h` order: compat, incompat, ro_compat, each by
/// bit; unnamed bits as `FEATURE_C12`, `FEATURE_I13`, `FEATURE_R14`.
pub fn feature_names(compat: u32, incompat: u32, ro_compat: u32) -> Vec<String> {
    let mut out = Vec::new();
    for (mask, table, letter) in [
        (compat, COMPAT_NAMES, 'C'),
        (incompat, INCOMPAT_NAMES, 'I'),
        (ro_compat, RO_COMPAT_NAMES, 'R'),
    ] {
        for bit in 0..32 {
            let m = 1u32 << bit;
            if mask & m == 0 {
                continue;
            }
            match table.iter().find(|(b, _)| *b == m) {
                Some((_, name)) => out.push((*name).to_string()),
                None => out.push(format!("FEATURE_{letter}{bit}")),
            }
        }
    }
    out
}

/// ext2, ext3 or ext4 from the feature words, as libblkid decides; `None` for a
/// combination blkid calls none of them (an external journal is `jbd`).
fn classify(compat: u32, incompat: u32, ro_compat: u32) -> Option<FsType> {
    if incompat & INCOMPAT_JOURNAL_DEV != 0 {
        return None;
    }
    let journal = compat & COMPAT_HAS_JOURNAL != 0;
    let beyond_ext3 = ro_compat & !EXT3_RO_COMPAT_SUPP != 0 || incompat & !EXT3_INCOMPAT_SUPP != 0;
    if beyond_ext3 {
        Some(FsType::Ext4)
    } else if journal {
        Some(FsType::Ext3)
    } else if incompat & !EXT2_INCOMPAT_SUPP == 0 {
        Some(FsType::Ext2)
    } else {
        None
    }
}

/// Probe for ext2/3/4; `None` when it is not one.
pub(super) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(sb) = bytes::read_opt(dev, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)? else {
        return Ok(None);
    };
    if le16(&sb, S_MAGIC) != EXT_MAGIC {
        return Ok(None);
    }
    let s_log_block_size = le32(&sb, S_LOG_BLOCK_SIZE);
    if s_log_block_size >= 256 {
        // libblkid's guard against a stray magic.
        return Ok(None);
    }
    Ok(Some(describe(&sb, dev.size())))
}

/// Everything inspection reports from a superblock that carries the magic.
fn describe(sb: &[u8], dev_size: u64) -> FsInfo {
    let compat = le32(sb, S_FEATURE_COMPAT);
    let incompat = le32(sb, S_FEATURE_INCOMPAT);
    let ro_compat = le32(sb, S_FEATURE_RO_COMPAT);
    let mut problems: Vec<String> = Vec::new();
    let fstype = match classify(compat, incompat, ro_compat) {
        Some(t) => t,
        // An external journal (blkid's "jbd"): not a filesystem, not damage.
        None if incompat & INCOMPAT_JOURNAL_DEV != 0 => FsType::Jbd,
        None => {
            problems.push(format!(
                "feature set compat {compat:#x} incompat {incompat:#x} ro_compat {ro_compat:#x} is none of ext2/ext3/ext4"
            ));
            FsType::Ext2
        }
    };
    let mut info = FsInfo::new(fstype);
    info.uuid = bytes::uuid_string(&bytes::bytes16(sb, S_UUID));
    info.label = Label::from_raw(bytes::slice(sb, S_VOLUME_NAME, 16));
    let s_rev_level = le32(sb, S_REV_LEVEL);
    info.version = Some(format!("{}.{}", s_rev_level, le16(sb, S_MINOR_REV_LEVEL)));
    if !fstype.is_ext() {
        // An external journal: its superblock has no filesystem counts to check.
        info.log_uuid = info.uuid.clone();
        return info;
    }

    if ro_compat & RO_COMPAT_METADATA_CSUM != 0 {
        let stored = le32(sb, S_CHECKSUM);
        // The kernel's crc32c(~0, ...) without the final inversion.
        let computed = !crc32c::crc32c(bytes::slice(sb, 0, S_CHECKSUM));
        if stored != computed {
            problems.push(format!(
                "superblock checksum is {stored:#010x}, computed {computed:#010x} (at byte {:#x})",
                SUPERBLOCK_OFFSET + S_CHECKSUM as u64
            ));
        }
    }

    let s_inodes_count = le32(sb, S_INODES_COUNT);
    let hi = |off: usize| {
        if incompat & INCOMPAT_64BIT != 0 {
            u64::from(le32(sb, off)) << 32
        } else {
            0
        }
    };
    let blocks_count = u64::from(le32(sb, S_BLOCKS_COUNT_LO)) | hi(S_BLOCKS_COUNT_HI);
    let free_blocks = u64::from(le32(sb, S_FREE_BLOCKS_COUNT_LO)) | hi(S_FREE_BLOCKS_HI);
    let inode_size = if s_rev_level == EXT2_GOOD_OLD_REV {
        EXT2_GOOD_OLD_INODE_SIZE
    } else {
        le16(sb, S_INODE_SIZE)
    };
    let s_state = le16(sb, S_STATE);
    let state = if s_state & EXT2_ERROR_FS != 0 {
        ExtState::Errors
    } else if s_state & EXT2_VALID_FS != 0 {
        ExtState::Clean
    } else {
        ExtState::NotClean
    };

    let s_log_block_size = le32(sb, S_LOG_BLOCK_SIZE);
    let block_size = if s_log_block_size <= MAX_LOG_BLOCK_SIZE {
        1024u32 << s_log_block_size
    } else {
        problems.push(format!(
            "s_log_block_size {s_log_block_size} gives a block size over 64 KiB"
        ));
        0
    };
    if s_inodes_count == 0 {
        problems.push("s_inodes_count is 0".into());
    }
    if blocks_count == 0 {
        problems.push("s_blocks_count is 0".into());
    }
    if le32(sb, S_BLOCKS_PER_GROUP) == 0 {
        problems.push("s_blocks_per_group is 0".into());
    }
    if le32(sb, S_INODES_PER_GROUP) == 0 {
        problems.push("s_inodes_per_group is 0".into());
    }
    let first_data_block = u64::from(le32(sb, S_FIRST_DATA_BLOCK));
    let s_blocks_per_group = u64::from(le32(sb, S_BLOCKS_PER_GROUP));
    let group_count = match blocks_count.checked_sub(first_data_block) {
        Some(b) if s_blocks_per_group != 0 => b.div_ceil(s_blocks_per_group),
        _ => 0,
    };
    // libext2fs refuses a superblock whose groups do not hold its inodes.
    let s_inodes_per_group = u64::from(le32(sb, S_INODES_PER_GROUP));
    if group_count != 0
        && s_inodes_per_group != 0
        && group_count.checked_mul(s_inodes_per_group) != Some(u64::from(s_inodes_count))
    {
        problems.push(format!(
            "s_inodes_count {s_inodes_count} is not {group_count} groups of s_inodes_per_group {s_inodes_per_group}"
        ));
    }
    if blocks_count != 0 && first_data_block >= blocks_count {
        problems.push(format!(
            "s_first_data_block {first_data_block} is not below s_blocks_count {blocks_count}"
        ));
    }
    if s_rev_level != EXT2_GOOD_OLD_REV
        && (!inode_size.is_power_of_two()
            || inode_size < EXT2_GOOD_OLD_INODE_SIZE
            || (block_size != 0 && u32::from(inode_size) > block_size))
    {
        problems.push(format!(
            "s_inode_size {inode_size} is not a power of two in 128..=block size"
        ));
    }
    if block_size != 0 {
        let fs_bytes = blocks_count.checked_mul(u64::from(block_size));
        match fs_bytes {
            Some(b) if b <= dev_size => {}
            _ => problems.push(format!(
                "the filesystem ({blocks_count} blocks of {block_size} bytes) is larger than its partition ({dev_size:#x} bytes): truncated?"
            )),
        }
    }

    info.ext = Some(ExtInfo {
        block_size,
        blocks_count,
        free_blocks,
        inodes_count: s_inodes_count,
        free_inodes: le32(sb, S_FREE_INODES_COUNT),
        inode_size,
        features: feature_names(compat, incompat, ro_compat),
        state,
        needs_recovery: incompat & INCOMPAT_RECOVER != 0,
        last_mounted: bytes::label(bytes::slice(sb, S_LAST_MOUNTED, 64)),
        group_count,
    });
    if !problems.is_empty() {
        info.problem = Some(format!(
            "ext superblock at byte {SUPERBLOCK_OFFSET:#x}: {}",
            problems.join("; ")
        ));
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_blkid() {
        assert_eq!(
            classify(0, INCOMPAT_FILETYPE, RO_COMPAT_SPARSE_SUPER),
            Some(FsType::Ext2)
        );
        assert_eq!(
            classify(COMPAT_HAS_JOURNAL, INCOMPAT_FILETYPE, 0),
            Some(FsType::Ext3)
        );
        // extents without a journal is ext4, not ext2.
        assert_eq!(classify(0, 0x40, 0), Some(FsType::Ext4));
        // dir_nlink alone is beyond ext3.
        assert_eq!(classify(COMPAT_HAS_JOURNAL, 0, 0x20), Some(FsType::Ext4));
        assert_eq!(classify(0, INCOMPAT_JOURNAL_DEV, 0), None);
        // needs_recovery without a journal is none of them.
        assert_eq!(classify(0, INCOMPAT_RECOVER, 0), None);
    }

    #[test]
    fn unknown_bits_are_named_like_e2p() {
        assert_eq!(
            feature_names(0x4 | 0x8000_0000, 0x40, 0x4),
            vec!["has_journal", "FEATURE_C31", "extent", "FEATURE_R2"]
        );
    }
}

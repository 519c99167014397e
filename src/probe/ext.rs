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

use super::bytes;
use super::{damaged, ExtInfo, ExtState, FsInfo, FsType, Label};
use crate::disk::ReadAt;
use crate::error::Result;
pub use crate::ext::features::feature_names;
use crate::ext::features::{
    COMPAT_HAS_JOURNAL, INCOMPAT_FILETYPE, INCOMPAT_JOURNAL_DEV, INCOMPAT_META_BG,
    INCOMPAT_RECOVER, RO_COMPAT_BTREE_DIR, RO_COMPAT_LARGE_FILE, RO_COMPAT_SPARSE_SUPER,
};
use crate::ext::superblock::{
    Superblock, EXT2_ERROR_FS, EXT2_VALID_FS, EXT4_SUPER_MAGIC, SUPERBLOCK_SIZE,
};
use crate::finding::Severity;

/// Byte offset of the primary superblock.
pub const SUPERBLOCK_OFFSET: u64 = crate::ext::superblock::SUPERBLOCK_OFFSET;

/// Features ext2 and ext3 know (libblkid's `EXT2_FEATURE_*_SUPP` and
/// `EXT3_FEATURE_*_SUPP`).
const EXT2_INCOMPAT_SUPP: u32 = INCOMPAT_FILETYPE | INCOMPAT_META_BG;
const EXT3_INCOMPAT_SUPP: u32 = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG;
const EXT3_RO_COMPAT_SUPP: u32 =
    RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR;

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
    let Some(raw) = bytes::read_opt(dev, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)? else {
        return Ok(None);
    };
    let sb = Superblock::read(raw);
    if sb.magic() != EXT4_SUPER_MAGIC {
        return Ok(None);
    }
    if sb.log_block_size() >= 256 {
        // libblkid's guard against a stray magic.
        return Ok(None);
    }
    Ok(Some(describe(&sb, dev.size())))
}

/// Everything inspection reports from a superblock that carries the magic.
fn describe(sb: &Superblock, dev_size: u64) -> FsInfo {
    let compat = sb.feature_compat();
    let incompat = sb.feature_incompat();
    let ro_compat = sb.feature_ro_compat();
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
    info.uuid = bytes::uuid_string(&sb.uuid());
    info.label = Label::from_raw(sb.volume_name());
    info.version = Some(format!("{}.{}", sb.rev_level(), sb.minor_rev_level()));
    if !fstype.is_ext() {
        // An external journal: its superblock has no filesystem counts to check.
        info.log_uuid = info.uuid.clone();
        return info;
    }
    // The engine's own validation, reported instead of refused; a geometry the
    // engine does not open (a note) is not damage.
    problems.extend(
        sb.problems(dev_size)
            .into_iter()
            .filter(|f| f.severity == Severity::Damage)
            .map(|f| f.message),
    );
    let s_state = sb.state();
    let state = if s_state & EXT2_ERROR_FS != 0 {
        ExtState::Errors
    } else if s_state & EXT2_VALID_FS != 0 {
        ExtState::Clean
    } else {
        ExtState::NotClean
    };
    info.ext = Some(ExtInfo {
        block_size: sb.block_size,
        blocks_count: sb.blocks_count,
        free_blocks: sb.free_blocks_count(),
        inodes_count: sb.inodes_count,
        free_inodes: sb.free_inodes_count(),
        inode_size: sb.inode_size,
        features: sb.feature_names(),
        state,
        needs_recovery: incompat & INCOMPAT_RECOVER != 0,
        last_mounted: bytes::label(sb.last_mounted()),
        group_count: sb.groups(),
    });
    if !problems.is_empty() {
        info.problem = damaged(format!(
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
}

//! Feature bits (compat / incompat / ro_compat) with their e2fsprogs names, and the
//! decisions made from them: what the engine may read, what it may write, and the
//! refusals (naming the exact features) given before any byte changes.

use super::superblock::{Superblock, EXT2_ERROR_FS, EXT2_VALID_FS};
use crate::error::{Error, Result};

pub const COMPAT_DIR_PREALLOC: u32 = 0x0001;
pub const COMPAT_IMAGIC_INODES: u32 = 0x0002;
pub const COMPAT_HAS_JOURNAL: u32 = 0x0004;
pub const COMPAT_EXT_ATTR: u32 = 0x0008;
pub const COMPAT_RESIZE_INODE: u32 = 0x0010;
pub const COMPAT_DIR_INDEX: u32 = 0x0020;
pub const COMPAT_LAZY_BG: u32 = 0x0040;
pub const COMPAT_EXCLUDE_INODE: u32 = 0x0080;
pub const COMPAT_EXCLUDE_BITMAP: u32 = 0x0100;
pub const COMPAT_SPARSE_SUPER2: u32 = 0x0200;
pub const COMPAT_FAST_COMMIT: u32 = 0x0400;
pub const COMPAT_STABLE_INODES: u32 = 0x0800;
pub const COMPAT_ORPHAN_FILE: u32 = 0x1000;

pub const INCOMPAT_COMPRESSION: u32 = 0x0001;
pub const INCOMPAT_FILETYPE: u32 = 0x0002;
pub const INCOMPAT_RECOVER: u32 = 0x0004;
pub const INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
pub const INCOMPAT_META_BG: u32 = 0x0010;
pub const INCOMPAT_EXTENTS: u32 = 0x0040;
pub const INCOMPAT_64BIT: u32 = 0x0080;
pub const INCOMPAT_MMP: u32 = 0x0100;
pub const INCOMPAT_FLEX_BG: u32 = 0x0200;
pub const INCOMPAT_EA_INODE: u32 = 0x0400;
pub const INCOMPAT_DIRDATA: u32 = 0x1000;
pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;
pub const INCOMPAT_LARGEDIR: u32 = 0x4000;
pub const INCOMPAT_INLINE_DATA: u32 = 0x8000;
pub const INCOMPAT_ENCRYPT: u32 = 0x10000;
pub const INCOMPAT_CASEFOLD: u32 = 0x20000;

pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
pub const RO_COMPAT_LARGE_FILE: u32 = 0x0002;
pub const RO_COMPAT_BTREE_DIR: u32 = 0x0004;
pub const RO_COMPAT_HUGE_FILE: u32 = 0x0008;
pub const RO_COMPAT_GDT_CSUM: u32 = 0x0010;
pub const RO_COMPAT_DIR_NLINK: u32 = 0x0020;
pub const RO_COMPAT_EXTRA_ISIZE: u32 = 0x0040;
pub const RO_COMPAT_HAS_SNAPSHOT: u32 = 0x0080;
pub const RO_COMPAT_QUOTA: u32 = 0x0100;
pub const RO_COMPAT_BIGALLOC: u32 = 0x0200;
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x0400;
pub const RO_COMPAT_REPLICA: u32 = 0x0800;
pub const RO_COMPAT_READONLY: u32 = 0x1000;
pub const RO_COMPAT_PROJECT: u32 = 0x2000;
pub const RO_COMPAT_SHARED_BLOCKS: u32 = 0x4000;
pub const RO_COMPAT_VERITY: u32 = 0x8000;
pub const RO_COMPAT_ORPHAN_PRESENT: u32 = 0x10000;

const COMPAT_NAMES: &[(u32, &str)] = &[
    (COMPAT_DIR_PREALLOC, "dir_prealloc"),
    (COMPAT_IMAGIC_INODES, "imagic_inodes"),
    (COMPAT_HAS_JOURNAL, "has_journal"),
    (COMPAT_EXT_ATTR, "ext_attr"),
    (COMPAT_RESIZE_INODE, "resize_inode"),
    (COMPAT_DIR_INDEX, "dir_index"),
    (COMPAT_LAZY_BG, "lazy_bg"),
    (COMPAT_EXCLUDE_INODE, "snapshot_exclude_inode"),
    (COMPAT_EXCLUDE_BITMAP, "snapshot_exclude_bitmap"),
    (COMPAT_SPARSE_SUPER2, "sparse_super2"),
    (COMPAT_FAST_COMMIT, "fast_commit"),
    (COMPAT_STABLE_INODES, "stable_inodes"),
    (COMPAT_ORPHAN_FILE, "orphan_file"),
];

const INCOMPAT_NAMES: &[(u32, &str)] = &[
    (INCOMPAT_COMPRESSION, "compression"),
    (INCOMPAT_FILETYPE, "filetype"),
    (INCOMPAT_RECOVER, "needs_recovery"),
    (INCOMPAT_JOURNAL_DEV, "journal_dev"),
    (INCOMPAT_META_BG, "meta_bg"),
    (INCOMPAT_EXTENTS, "extent"),
    (INCOMPAT_64BIT, "64bit"),
    (INCOMPAT_MMP, "mmp"),
    (INCOMPAT_FLEX_BG, "flex_bg"),
    (INCOMPAT_EA_INODE, "ea_inode"),
    (INCOMPAT_DIRDATA, "dirdata"),
    (INCOMPAT_CSUM_SEED, "metadata_csum_seed"),
    (INCOMPAT_LARGEDIR, "large_dir"),
    (INCOMPAT_INLINE_DATA, "inline_data"),
    (INCOMPAT_ENCRYPT, "encrypt"),
    (INCOMPAT_CASEFOLD, "casefold"),
];

const RO_COMPAT_NAMES: &[(u32, &str)] = &[
    (RO_COMPAT_SPARSE_SUPER, "sparse_super"),
    (RO_COMPAT_LARGE_FILE, "large_file"),
    (RO_COMPAT_BTREE_DIR, "btree_dir"),
    (RO_COMPAT_HUGE_FILE, "huge_file"),
    (RO_COMPAT_GDT_CSUM, "uninit_bg"),
    (RO_COMPAT_DIR_NLINK, "dir_nlink"),
    (RO_COMPAT_EXTRA_ISIZE, "extra_isize"),
    (RO_COMPAT_HAS_SNAPSHOT, "snapshot"),
    (RO_COMPAT_QUOTA, "quota"),
    (RO_COMPAT_BIGALLOC, "bigalloc"),
    (RO_COMPAT_METADATA_CSUM, "metadata_csum"),
    (RO_COMPAT_REPLICA, "replica"),
    (RO_COMPAT_READONLY, "read-only"),
    (RO_COMPAT_PROJECT, "project"),
    (RO_COMPAT_SHARED_BLOCKS, "shared_blocks"),
    (RO_COMPAT_VERITY, "verity"),
    (RO_COMPAT_ORPHAN_PRESENT, "orphan_present"),
];

/// The compat features the writer keeps valid (compat bits are safe by definition,
/// but unknown or snapshot-era ones are refused to be sure).
const WRITE_COMPAT: u32 = COMPAT_DIR_PREALLOC
    | COMPAT_HAS_JOURNAL
    | COMPAT_EXT_ATTR
    | COMPAT_RESIZE_INODE
    | COMPAT_DIR_INDEX
    | COMPAT_SPARSE_SUPER2
    | COMPAT_FAST_COMMIT
    | COMPAT_STABLE_INODES
    | COMPAT_ORPHAN_FILE;
/// The incompat features the writer handles (RECOVER is a state, checked apart).
const WRITE_INCOMPAT: u32 = INCOMPAT_FILETYPE
    | INCOMPAT_RECOVER
    | INCOMPAT_EXTENTS
    | INCOMPAT_64BIT
    | INCOMPAT_FLEX_BG
    | INCOMPAT_CSUM_SEED;
/// The ro_compat features the writer handles (ORPHAN_PRESENT is a state).
const WRITE_RO_COMPAT: u32 = RO_COMPAT_SPARSE_SUPER
    | RO_COMPAT_LARGE_FILE
    | RO_COMPAT_HUGE_FILE
    | RO_COMPAT_GDT_CSUM
    | RO_COMPAT_DIR_NLINK
    | RO_COMPAT_EXTRA_ISIZE
    | RO_COMPAT_METADATA_CSUM
    | RO_COMPAT_PROJECT
    | RO_COMPAT_ORPHAN_PRESENT;
/// Incompat features the reader understands.
const READ_INCOMPAT: u32 = WRITE_INCOMPAT
    | INCOMPAT_META_BG
    | INCOMPAT_MMP
    | INCOMPAT_EA_INODE
    | INCOMPAT_LARGEDIR
    | INCOMPAT_INLINE_DATA
    | INCOMPAT_ENCRYPT
    | INCOMPAT_CASEFOLD
    | INCOMPAT_DIRDATA;

/// Names of the bits of `bits` (unknown bits as `FEATURE_X0x…`).
fn names(bits: u32, table: &[(u32, &str)], kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..32 {
        let bit = 1u32 << i;
        if bits & bit == 0 {
            continue;
        }
        match table.iter().find(|(b, _)| *b == bit) {
            Some((_, n)) => out.push((*n).to_string()),
            None => out.push(format!("unknown {kind} feature bit {bit:#x}")),
        }
    }
    out
}

/// Every feature name of the superblock, as `dumpe2fs` lists them.
pub fn feature_names(sb: &Superblock) -> Vec<String> {
    let mut v = names(sb.feature_compat(), COMPAT_NAMES, "compat");
    v.extend(names(sb.feature_incompat(), INCOMPAT_NAMES, "incompat"));
    v.extend(names(sb.feature_ro_compat(), RO_COMPAT_NAMES, "ro_compat"));
    v
}

/// Refuse what the reader cannot read.
pub fn check_read(sb: &Superblock) -> Result<()> {
    let bad = sb.feature_incompat() & !READ_INCOMPAT;
    if bad != 0 {
        return Err(Error::unsupported(format!(
            "ext filesystem uses feature(s) this reader does not handle: {}",
            names(bad, INCOMPAT_NAMES, "incompat").join(", ")
        )));
    }
    Ok(())
}

/// Refuse, before any write, what the writer cannot keep valid: features
/// ([`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported), naming each) and
/// states ([`ErrorKind::Refused`](crate::ErrorKind::Refused)).
pub fn check_write(sb: &Superblock) -> Result<()> {
    let mut bad = names(sb.feature_compat() & !WRITE_COMPAT, COMPAT_NAMES, "compat");
    bad.extend(names(
        sb.feature_incompat() & !WRITE_INCOMPAT,
        INCOMPAT_NAMES,
        "incompat",
    ));
    bad.extend(names(
        sb.feature_ro_compat() & !WRITE_RO_COMPAT,
        RO_COMPAT_NAMES,
        "ro_compat",
    ));
    if !bad.is_empty() {
        return Err(Error::unsupported(format!(
            "refusing to write: the ext filesystem uses feature(s) the writer does not handle: {}",
            bad.join(", ")
        )));
    }
    if sb.has_incompat(INCOMPAT_RECOVER) {
        return Err(Error::refused(
            "refusing to write: journal needs recovery: run e2fsck or mount once",
        ));
    }
    if sb.state() & EXT2_ERROR_FS != 0 {
        return Err(Error::refused(
            "refusing to write: the filesystem has errors recorded (s_state); run e2fsck",
        ));
    }
    if sb.state() & EXT2_VALID_FS == 0 {
        return Err(Error::refused(
            "refusing to write: the filesystem was not cleanly unmounted (s_state); run e2fsck or mount once",
        ));
    }
    if sb.last_orphan() != 0 || sb.has_ro_compat(RO_COMPAT_ORPHAN_PRESENT) {
        return Err(Error::refused(
            "refusing to write: orphan inodes are present (unclean shutdown); run e2fsck or mount once",
        ));
    }
    if sb.has_ro_compat(RO_COMPAT_GDT_CSUM) && sb.has_ro_compat(RO_COMPAT_METADATA_CSUM) {
        return Err(Error::refused(
            "refusing to write: both uninit_bg and metadata_csum are set (invalid)",
        ));
    }
    Ok(())
}

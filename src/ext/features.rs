//! Feature bits (compat / incompat / ro_compat): the one table of their names
//! (e2p's, as `dumpe2fs -h` prints them, used by the probe and the engine alike)
//! and the sets the engine may read and write. A leaf: it imports nothing of the
//! crate; the refusals built from these sets live with the superblock.

pub const COMPAT_DIR_PREALLOC: u32 = 0x0001;
pub const COMPAT_IMAGIC_INODES: u32 = 0x0002;
pub const COMPAT_HAS_JOURNAL: u32 = 0x0004;
pub const COMPAT_EXT_ATTR: u32 = 0x0008;
pub const COMPAT_RESIZE_INODE: u32 = 0x0010;
pub const COMPAT_DIR_INDEX: u32 = 0x0020;
pub const COMPAT_LAZY_BG: u32 = 0x0040;
/// Snapshot-era bit; e2p gives it no name (`FEATURE_C7`).
#[allow(dead_code)]
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
/// Snapshot-era bit; e2p gives it no name (`FEATURE_R7`).
#[allow(dead_code)]
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

/// Every named feature bit, as e2fsprogs' e2p (`lib/e2p/feature.c`) names it and
/// `dumpe2fs -h` prints it: `(word, bit, name)`. Bits without a name here are
/// printed as `FEATURE_C7`, `FEATURE_I5`, `FEATURE_R2` (word letter, bit number):
/// compat 0x80 (snapshot exclude inode), ro_compat 0x4 (btree_dir, never used) and
/// 0x80 (has_snapshot) are among them.
const NAMES: &[(Word, u32, &str)] = &[
    (Word::Compat, COMPAT_DIR_PREALLOC, "dir_prealloc"),
    (Word::Compat, COMPAT_IMAGIC_INODES, "imagic_inodes"),
    (Word::Compat, COMPAT_HAS_JOURNAL, "has_journal"),
    (Word::Compat, COMPAT_EXT_ATTR, "ext_attr"),
    (Word::Compat, COMPAT_RESIZE_INODE, "resize_inode"),
    (Word::Compat, COMPAT_DIR_INDEX, "dir_index"),
    (Word::Compat, COMPAT_LAZY_BG, "lazy_bg"),
    (Word::Compat, COMPAT_EXCLUDE_BITMAP, "snapshot_bitmap"),
    (Word::Compat, COMPAT_SPARSE_SUPER2, "sparse_super2"),
    (Word::Compat, COMPAT_FAST_COMMIT, "fast_commit"),
    (Word::Compat, COMPAT_STABLE_INODES, "stable_inodes"),
    (Word::Compat, COMPAT_ORPHAN_FILE, "orphan_file"),
    (Word::Incompat, INCOMPAT_COMPRESSION, "compression"),
    (Word::Incompat, INCOMPAT_FILETYPE, "filetype"),
    (Word::Incompat, INCOMPAT_RECOVER, "needs_recovery"),
    (Word::Incompat, INCOMPAT_JOURNAL_DEV, "journal_dev"),
    (Word::Incompat, INCOMPAT_META_BG, "meta_bg"),
    (Word::Incompat, INCOMPAT_EXTENTS, "extent"),
    (Word::Incompat, INCOMPAT_64BIT, "64bit"),
    (Word::Incompat, INCOMPAT_MMP, "mmp"),
    (Word::Incompat, INCOMPAT_FLEX_BG, "flex_bg"),
    (Word::Incompat, INCOMPAT_EA_INODE, "ea_inode"),
    (Word::Incompat, INCOMPAT_DIRDATA, "dirdata"),
    (Word::Incompat, INCOMPAT_CSUM_SEED, "metadata_csum_seed"),
    (Word::Incompat, INCOMPAT_LARGEDIR, "large_dir"),
    (Word::Incompat, INCOMPAT_INLINE_DATA, "inline_data"),
    (Word::Incompat, INCOMPAT_ENCRYPT, "encrypt"),
    (Word::Incompat, INCOMPAT_CASEFOLD, "casefold"),
    (Word::RoCompat, RO_COMPAT_SPARSE_SUPER, "sparse_super"),
    (Word::RoCompat, RO_COMPAT_LARGE_FILE, "large_file"),
    (Word::RoCompat, RO_COMPAT_HUGE_FILE, "huge_file"),
    (Word::RoCompat, RO_COMPAT_GDT_CSUM, "uninit_bg"),
    (Word::RoCompat, RO_COMPAT_DIR_NLINK, "dir_nlink"),
    (Word::RoCompat, RO_COMPAT_EXTRA_ISIZE, "extra_isize"),
    (Word::RoCompat, RO_COMPAT_QUOTA, "quota"),
    (Word::RoCompat, RO_COMPAT_BIGALLOC, "bigalloc"),
    (Word::RoCompat, RO_COMPAT_METADATA_CSUM, "metadata_csum"),
    (Word::RoCompat, RO_COMPAT_REPLICA, "replica"),
    (Word::RoCompat, RO_COMPAT_READONLY, "read-only"),
    (Word::RoCompat, RO_COMPAT_PROJECT, "project"),
    (Word::RoCompat, RO_COMPAT_SHARED_BLOCKS, "shared_blocks"),
    (Word::RoCompat, RO_COMPAT_VERITY, "verity"),
    (Word::RoCompat, RO_COMPAT_ORPHAN_PRESENT, "orphan_present"),
];

/// The three feature words of the superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Word {
    /// `s_feature_compat`.
    Compat,
    /// `s_feature_incompat`.
    Incompat,
    /// `s_feature_ro_compat`.
    RoCompat,
}

impl Word {
    /// The letter e2p uses for an unnamed bit of this word.
    fn letter(self) -> char {
        match self {
            Word::Compat => 'C',
            Word::Incompat => 'I',
            Word::RoCompat => 'R',
        }
    }
}

/// The name of one bit, as `dumpe2fs -h` prints it.
pub fn name(word: Word, bit: u32) -> String {
    match NAMES.iter().find(|(w, b, _)| *w == word && *b == bit) {
        Some((_, _, n)) => (*n).to_string(),
        None => format!("FEATURE_{}{}", word.letter(), bit.trailing_zeros()),
    }
}

/// Is this bit one e2p names?
fn is_named(word: Word, bit: u32) -> bool {
    NAMES.iter().any(|(w, b, _)| *w == word && *b == bit)
}

/// Names of the bits set in `bits`, lowest first. For a refusal, an unnamed bit
/// also gets its value (`FEATURE_I20 (unknown bit 0x100000)`).
fn names_of(word: Word, bits: u32, for_refusal: bool) -> Vec<String> {
    (0..32)
        .map(|i| 1u32 << i)
        .filter(|b| bits & b != 0)
        .map(|b| {
            if for_refusal && !is_named(word, b) {
                format!("{} (unknown bit {b:#x})", name(word, b))
            } else {
                name(word, b)
            }
        })
        .collect()
}

/// Every feature name of the three words, in `dumpe2fs -h` order: compat,
/// incompat, ro_compat, each by bit.
pub fn feature_names(compat: u32, incompat: u32, ro_compat: u32) -> Vec<String> {
    let mut v = names_of(Word::Compat, compat, false);
    v.extend(names_of(Word::Incompat, incompat, false));
    v.extend(names_of(Word::RoCompat, ro_compat, false));
    v
}

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

/// What the writer cannot keep valid among these words, named (empty when it
/// can write them all). States (needs_recovery, orphan_present) are allowed here
/// and checked apart.
pub fn unwritable(compat: u32, incompat: u32, ro_compat: u32) -> Vec<String> {
    let mut v = names_of(Word::Compat, compat & !WRITE_COMPAT, true);
    v.extend(names_of(Word::Incompat, incompat & !WRITE_INCOMPAT, true));
    v.extend(names_of(Word::RoCompat, ro_compat & !WRITE_RO_COMPAT, true));
    v
}

/// The incompat features the reader cannot read, named (empty when none).
pub fn unreadable(incompat: u32) -> Vec<String> {
    names_of(Word::Incompat, incompat & !READ_INCOMPAT, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_bits_are_named_like_e2p() {
        assert_eq!(
            feature_names(0x4 | 0x80 | 0x8000_0000, 0x40 | 0x20, 0x4),
            vec![
                "has_journal",
                "FEATURE_C7",
                "FEATURE_C31",
                "FEATURE_I5",
                "extent",
                "FEATURE_R2"
            ]
        );
        assert_eq!(
            unwritable(0, INCOMPAT_META_BG | 0x10_0000, 0),
            vec!["meta_bg", "FEATURE_I20 (unknown bit 0x100000)"]
        );
    }
}

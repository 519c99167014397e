//! The superblock (`struct ext4_super_block`, 1024 bytes at byte 1024), for the
//! probe and the engine alike: its raw bytes are kept and patched, fields are read
//! at named offsets with the kernel's names, and one validation
//! ([`Superblock::problems`], what libext2fs checks on open and e2fsck checks
//! before its passes) serves both. The probe is lenient ([`Superblock::read`]
//! takes any bytes; it reports the problems as findings); the engine is strict
//! ([`Superblock::parse`] refuses the first damage, and the refusals of features
//! and states before a write live here too).

// Every field is named, used or not, so the table reads like the kernel's.
#![allow(dead_code)]

use super::csum::crc32c;
use super::features::{self, *};
use crate::bytes::{le16, le32, put_le32, u8_at};
use crate::disk::ReadAt;
use crate::error::{Error, Result};
use crate::finding::Finding;

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
pub const S_BLOCK_GROUP_NR: usize = 0x5A;
pub const S_MINOR_REV_LEVEL: usize = 0x3E;
pub const S_REV_LEVEL: usize = 0x4C;
pub const S_FIRST_INO: usize = 0x54;
pub const S_INODE_SIZE: usize = 0x58;
pub const S_FEATURE_COMPAT: usize = 0x5C;
pub const S_FEATURE_INCOMPAT: usize = 0x60;
pub const S_FEATURE_RO_COMPAT: usize = 0x64;
pub const S_UUID: usize = 0x68;
pub const S_VOLUME_NAME: usize = 0x78;
pub const S_LAST_MOUNTED: usize = 0x88;
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
pub const S_CHECKSUM_TYPE: usize = 0x175;
pub const S_BACKUP_BGS: usize = 0x24C;
pub const S_CHECKSUM_SEED: usize = 0x270;
pub const S_CHECKSUM: usize = 0x3FC;

/// `s_state`: cleanly unmounted.
pub const EXT2_VALID_FS: u16 = 0x0001;
/// `s_state`: errors detected.
pub const EXT2_ERROR_FS: u16 = 0x0002;
/// `s_state`: orphans being recovered.
pub const EXT3_ORPHAN_FS: u16 = 0x0004;
/// `s_rev_level`: the original format (128-byte inodes, first inode 11).
pub const EXT2_GOOD_OLD_REV: u32 = 0;
/// `s_rev_level`: the newest revision libext2fs knows (dynamic inode sizes).
pub const EXT2_DYNAMIC_REV: u32 = 1;
/// `s_first_ino` of revision 0, and the least any revision may have.
pub const EXT2_GOOD_OLD_FIRST_INO: u32 = 11;
/// Inode size of revision 0, and the least any revision may have.
pub const EXT2_GOOD_OLD_INODE_SIZE: u16 = 128;
/// `s_checksum_type`: crc32c, the only one defined.
pub const EXT2_CRC32C_CHKSUM: u8 = 1;
/// Largest `s_log_block_size`: 64 KiB blocks.
const MAX_LOG_BLOCK_SIZE: u32 = 6;
/// Largest `s_log_cluster_size` (libext2fs: 2^29-byte clusters).
const MAX_LOG_CLUSTER_SIZE: u32 = 19;
/// Largest group descriptor (`EXT2_MAX_DESC_SIZE`).
const MAX_DESC_SIZE: u16 = 1024;
/// Smallest group descriptor with 64bit.
const MIN_DESC_SIZE_64BIT: u16 = 64;
/// `s_flags`: directory hashes use unsigned chars.
pub const EXT2_FLAGS_UNSIGNED_HASH: u32 = 0x0002;

/// The superblock's bytes and the geometry derived from them.
///
/// Made by [`Superblock::read`] (any bytes: derived values are 0 where a field is
/// out of range) or [`Superblock::parse`] (validated: every derived value is
/// usable as is).
#[derive(Clone, Debug)]
pub struct Superblock {
    raw: Vec<u8>,
    /// Block size in bytes (1024..=65536; 0 when `s_log_block_size` is out of range).
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
    /// Number of block groups (saturated at `u32::MAX` before validation).
    pub group_count: u32,
    /// Group descriptor size (32, or `s_desc_size` with 64bit).
    pub desc_size: u16,
}

/// Where a problem of the superblock is reported.
const PLACE: &str = "ext superblock";

impl Superblock {
    /// Take any 1024 bytes as a superblock, validating nothing (the probe's view;
    /// see [`Superblock::problems`]).
    pub fn read(mut raw: Vec<u8>) -> Superblock {
        raw.resize(SUPERBLOCK_SIZE, 0);
        let s_log_block_size = le32(&raw, S_LOG_BLOCK_SIZE);
        let block_size = if s_log_block_size <= MAX_LOG_BLOCK_SIZE {
            1024u32 << s_log_block_size
        } else {
            0
        };
        let is64 = le32(&raw, S_FEATURE_INCOMPAT) & INCOMPAT_64BIT != 0;
        let mut blocks_count = u64::from(le32(&raw, S_BLOCKS_COUNT_LO));
        if is64 {
            blocks_count |= u64::from(le32(&raw, S_BLOCKS_COUNT_HI)) << 32;
        }
        let first_data_block = u64::from(le32(&raw, S_FIRST_DATA_BLOCK));
        let blocks_per_group = le32(&raw, S_BLOCKS_PER_GROUP);
        let inode_size = if le32(&raw, S_REV_LEVEL) == EXT2_GOOD_OLD_REV {
            EXT2_GOOD_OLD_INODE_SIZE
        } else {
            le16(&raw, S_INODE_SIZE)
        };
        let desc_size = if is64 { le16(&raw, S_DESC_SIZE) } else { 32 };
        let mut sb = Superblock {
            block_size,
            blocks_count,
            first_data_block,
            blocks_per_group,
            inodes_per_group: le32(&raw, S_INODES_PER_GROUP),
            inodes_count: le32(&raw, S_INODES_COUNT),
            inode_size,
            group_count: 0,
            desc_size,
            raw,
        };
        sb.group_count = u32::try_from(sb.groups()).unwrap_or(u32::MAX);
        sb
    }

    /// Parse and validate `raw` (1024 bytes) against a device of `dev_size`
    /// bytes: a missing magic or any damage [`Superblock::problems`] finds is
    /// refused as corrupt; a geometry this tool does not handle as unsupported.
    pub fn parse(raw: Vec<u8>, dev_size: u64) -> Result<Superblock> {
        if raw.len() != SUPERBLOCK_SIZE {
            return Err(Error::corrupt("ext superblock: short read"));
        }
        let sb = Superblock::read(raw);
        let magic = sb.magic();
        if magic != EXT4_SUPER_MAGIC {
            return Err(Error::corrupt(format!(
                "ext superblock at 0x400: bad magic {magic:#06x}"
            )));
        }
        let (damage, limits): (Vec<Finding>, Vec<Finding>) = sb
            .problems(dev_size)
            .into_iter()
            .partition(|f| f.severity == crate::finding::Severity::Damage);
        let join = |v: &[Finding]| {
            v.iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !damage.is_empty() {
            return Err(Error::corrupt(format!(
                "ext superblock at 0x400: {}",
                join(&damage)
            )));
        }
        if !limits.is_empty() {
            return Err(Error::unsupported(format!(
                "ext superblock at 0x400: {}",
                join(&limits)
            )));
        }
        Ok(sb)
    }

    /// Block groups the fields describe (0 when `s_blocks_per_group` is 0).
    pub fn groups(&self) -> u64 {
        match self.blocks_count.checked_sub(self.first_data_block) {
            Some(b) if self.blocks_per_group != 0 => b.div_ceil(u64::from(self.blocks_per_group)),
            _ => 0,
        }
    }

    /// Everything wrong with the superblock, for a filesystem of at most
    /// `dev_size` bytes: what libext2fs refuses on open (revision, checksum type
    /// and checksum, block and cluster size, inode size, descriptor size, blocks
    /// per group, group count against the inode count, `s_first_meta_bg`) and
    /// what e2fsck refuses before its passes (first data block, first inode,
    /// reserved counts), as [`Severity::Damage`](crate::finding::Severity)
    /// findings; a group count past [`super::MAX_GROUPS`] as a note (valid, but
    /// more than this tool opens). Every check runs: a probe reports them all.
    /// The magic is not checked (the caller has).
    pub fn problems(&self, dev_size: u64) -> Vec<Finding> {
        let raw = &self.raw;
        let mut out = Vec::new();
        let mut bad = |off: usize, msg: String| {
            out.push(Finding::damage(PLACE, msg).at(SUPERBLOCK_OFFSET + off as u64));
        };
        let s_rev_level = le32(raw, S_REV_LEVEL);
        if s_rev_level > EXT2_DYNAMIC_REV {
            bad(
                S_REV_LEVEL,
                format!("s_rev_level {s_rev_level} is newer than any revision e2fsprogs knows (0 and 1)"),
            );
        }
        if self.has_ro_compat(RO_COMPAT_METADATA_CSUM) {
            let t = self.checksum_type();
            if t != EXT2_CRC32C_CHKSUM {
                bad(
                    S_CHECKSUM_TYPE,
                    format!("s_checksum_type {t} is unknown (metadata_csum uses 1, crc32c)"),
                );
            }
            let stored = le32(raw, S_CHECKSUM);
            let computed = self.computed_checksum();
            if stored != computed {
                bad(
                    S_CHECKSUM,
                    format!(
                        "superblock checksum is {stored:#010x}, computed {computed:#010x} (at byte {:#x})",
                        SUPERBLOCK_OFFSET + S_CHECKSUM as u64
                    ),
                );
            }
        }
        let s_log_block_size = le32(raw, S_LOG_BLOCK_SIZE);
        if self.block_size == 0 {
            bad(
                S_LOG_BLOCK_SIZE,
                format!("s_log_block_size {s_log_block_size} gives a block size over 64 KiB"),
            );
        }
        let s_log_cluster_size = le32(raw, S_LOG_CLUSTER_SIZE);
        let bigalloc = self.has_ro_compat(RO_COMPAT_BIGALLOC);
        if bigalloc {
            if s_log_cluster_size < s_log_block_size || s_log_cluster_size > MAX_LOG_CLUSTER_SIZE {
                bad(
                    S_LOG_CLUSTER_SIZE,
                    format!("s_log_cluster_size {s_log_cluster_size} is outside {s_log_block_size}..={MAX_LOG_CLUSTER_SIZE}"),
                );
            }
        } else if s_log_cluster_size != s_log_block_size {
            bad(
                S_LOG_CLUSTER_SIZE,
                format!("s_log_cluster_size {s_log_cluster_size} differs from s_log_block_size {s_log_block_size} without bigalloc"),
            );
        }
        let flex = self.log_groups_per_flex();
        if flex > 31 {
            bad(
                S_LOG_GROUPS_PER_FLEX,
                format!("s_log_groups_per_flex {flex} is over 31"),
            );
        }
        if self.inodes_count == 0 {
            bad(S_INODES_COUNT, "s_inodes_count is 0".into());
        }
        if self.blocks_count == 0 {
            bad(S_BLOCKS_COUNT_LO, "s_blocks_count is 0".into());
        }
        let bpg = self.blocks_per_group;
        let ipg = self.inodes_per_group;
        if bpg == 0 {
            bad(S_BLOCKS_PER_GROUP, "s_blocks_per_group is 0".into());
        }
        if ipg == 0 {
            bad(S_INODES_PER_GROUP, "s_inodes_per_group is 0".into());
        }
        let cluster_bits = s_log_cluster_size.saturating_sub(s_log_block_size).min(16);
        let bs = self.block_size;
        if bs != 0 {
            // One bitmap block per group, and libext2fs's EXT2_MAX_BLOCKS_PER_GROUP.
            let max_bpg = (u64::from(bs) * 8).min(65528) << cluster_bits;
            if bpg != 0 && (bpg < 8 || u64::from(bpg) > max_bpg) {
                bad(
                    S_BLOCKS_PER_GROUP,
                    format!("s_blocks_per_group {bpg} is outside 8..={max_bpg}"),
                );
            }
            if ipg > bs.saturating_mul(8) {
                bad(
                    S_INODES_PER_GROUP,
                    format!(
                        "s_inodes_per_group {ipg} is over {} (one bitmap block)",
                        bs.saturating_mul(8)
                    ),
                );
            }
        }
        let cpg = le32(raw, S_CLUSTERS_PER_GROUP);
        if bpg != 0 && u64::from(cpg) << cluster_bits != u64::from(bpg) {
            bad(
                S_CLUSTERS_PER_GROUP,
                format!("s_clusters_per_group {cpg} does not match s_blocks_per_group {bpg}"),
            );
        }
        let inode_size = self.inode_size;
        if s_rev_level != EXT2_GOOD_OLD_REV
            && (!inode_size.is_power_of_two()
                || inode_size < EXT2_GOOD_OLD_INODE_SIZE
                || (bs != 0 && u32::from(inode_size) > bs))
        {
            bad(
                S_INODE_SIZE,
                format!("s_inode_size {inode_size} is not a power of two in 128..=block size"),
            );
        }
        if self.has_incompat(INCOMPAT_64BIT) {
            let d = self.desc_size;
            if !d.is_power_of_two() || !(MIN_DESC_SIZE_64BIT..=MAX_DESC_SIZE).contains(&d) {
                bad(
                    S_DESC_SIZE,
                    format!("s_desc_size {d} is not a power of two in 64..=1024 (64bit)"),
                );
            }
        }
        let fdb = self.first_data_block;
        let blocks = self.blocks_count;
        if blocks != 0 && fdb >= blocks {
            bad(
                S_FIRST_DATA_BLOCK,
                format!("s_first_data_block {fdb} is not below s_blocks_count {blocks}"),
            );
        } else if bs != 0 {
            let should_be = u64::from(s_log_block_size == 0 && cluster_bits == 0);
            if fdb != should_be {
                bad(
                    S_FIRST_DATA_BLOCK,
                    format!("s_first_data_block {fdb} should be {should_be} for {bs}-byte blocks"),
                );
            }
        }
        if s_rev_level != EXT2_GOOD_OLD_REV {
            let first = le32(raw, S_FIRST_INO);
            if first < EXT2_GOOD_OLD_FIRST_INO || first > self.inodes_count {
                bad(
                    S_FIRST_INO,
                    format!("s_first_ino {first} is outside 11..=s_inodes_count"),
                );
            }
        }
        let groups = self.groups();
        if groups >> 32 != 0 {
            bad(
                S_BLOCKS_COUNT_LO,
                format!("{groups} block groups is too many"),
            );
        } else if groups != 0
            && ipg != 0
            && groups.checked_mul(u64::from(ipg)) != Some(u64::from(self.inodes_count))
        {
            bad(
                S_INODES_COUNT,
                format!(
                    "s_inodes_count {} is not {groups} groups of s_inodes_per_group {ipg}",
                    self.inodes_count
                ),
            );
        }
        if self.has_incompat(INCOMPAT_META_BG) && bs != 0 && self.desc_size != 0 {
            let first = le32(raw, S_FIRST_META_BG);
            let desc_blocks = (groups * u64::from(self.desc_size)).div_ceil(u64::from(bs));
            if u64::from(first) > desc_blocks {
                bad(
                    S_FIRST_META_BG,
                    format!("s_first_meta_bg {first} is past the {desc_blocks} descriptor blocks"),
                );
            }
        }
        let r = self.r_blocks_count();
        if r > blocks / 2 {
            bad(
                S_R_BLOCKS_COUNT_LO,
                format!("s_r_blocks_count {r} is over half of s_blocks_count"),
            );
        }
        let rgdt = self.reserved_gdt_blocks();
        if bs != 0 && rgdt > bs / 4 {
            bad(
                S_RESERVED_GDT_BLOCKS,
                format!("s_reserved_gdt_blocks {rgdt} is over {}", bs / 4),
            );
        }
        if bs != 0 {
            match blocks.checked_mul(u64::from(bs)) {
                Some(b) if b <= dev_size => {}
                _ => bad(
                    S_BLOCKS_COUNT_LO,
                    format!(
                        "the filesystem ({blocks} blocks of {bs} bytes) is larger than its partition ({dev_size:#x} bytes): truncated?"
                    ),
                ),
            }
        }
        // Every group's descriptor and bitmaps are held while the filesystem is
        // open: a hostile superblock with tiny groups on a large sparse image would
        // make that hundreds of millions of them. Valid, but not opened.
        if groups > super::MAX_GROUPS {
            out.push(
                Finding::note(
                    PLACE,
                    format!(
                        "{groups} block groups; domuify handles at most {} (128 TiB in 4 KiB blocks)",
                        super::MAX_GROUPS
                    ),
                )
                .at(SUPERBLOCK_OFFSET + S_BLOCKS_COUNT_LO as u64),
            );
        }
        out
    }

    /// Refuse what the reader cannot read (incompat features it does not know).
    pub fn refuse_unreadable(&self) -> Result<()> {
        let bad = features::unreadable(self.feature_incompat());
        if !bad.is_empty() {
            return Err(Error::unsupported(format!(
                "ext filesystem uses feature(s) this reader does not handle: {}",
                bad.join(", ")
            )));
        }
        Ok(())
    }

    /// Refuse, before any write, what the writer cannot keep valid: features
    /// ([`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported), naming each) and
    /// states ([`ErrorKind::Refused`](crate::ErrorKind::Refused)).
    pub fn refuse_unwritable(&self) -> Result<()> {
        let bad = features::unwritable(
            self.feature_compat(),
            self.feature_incompat(),
            self.feature_ro_compat(),
        );
        if !bad.is_empty() {
            return Err(Error::unsupported(format!(
                "refusing to write: the ext filesystem uses feature(s) the writer does not handle: {}",
                bad.join(", ")
            )));
        }
        if self.has_incompat(INCOMPAT_RECOVER) {
            return Err(Error::refused(
                "refusing to write: journal needs recovery: run e2fsck or mount once",
            ));
        }
        if self.state() & EXT2_ERROR_FS != 0 {
            return Err(Error::refused(
                "refusing to write: the filesystem has errors recorded (s_state); run e2fsck",
            ));
        }
        if self.state() & EXT2_VALID_FS == 0 {
            return Err(Error::refused(
                "refusing to write: the filesystem was not cleanly unmounted (s_state); run e2fsck or mount once",
            ));
        }
        if self.last_orphan() != 0 || self.has_ro_compat(RO_COMPAT_ORPHAN_PRESENT) {
            return Err(Error::refused(
                "refusing to write: orphan inodes are present (unclean shutdown); run e2fsck or mount once",
            ));
        }
        if self.has_ro_compat(RO_COMPAT_GDT_CSUM) && self.has_ro_compat(RO_COMPAT_METADATA_CSUM) {
            return Err(Error::refused(
                "refusing to write: both uninit_bg and metadata_csum are set (invalid)",
            ));
        }
        Ok(())
    }

    /// Every feature name, as `dumpe2fs -h` lists them.
    pub fn feature_names(&self) -> Vec<String> {
        features::feature_names(
            self.feature_compat(),
            self.feature_incompat(),
            self.feature_ro_compat(),
        )
    }

    /// `s_magic`.
    pub fn magic(&self) -> u16 {
        le16(&self.raw, S_MAGIC)
    }
    /// `s_log_block_size`.
    pub fn log_block_size(&self) -> u32 {
        le32(&self.raw, S_LOG_BLOCK_SIZE)
    }
    /// `s_rev_level`.
    pub fn rev_level(&self) -> u32 {
        le32(&self.raw, S_REV_LEVEL)
    }
    /// `s_minor_rev_level`.
    pub fn minor_rev_level(&self) -> u16 {
        le16(&self.raw, S_MINOR_REV_LEVEL)
    }
    /// `s_block_group_nr`: the group this copy of the superblock lives in.
    pub fn block_group_nr(&self) -> u16 {
        le16(&self.raw, S_BLOCK_GROUP_NR)
    }
    /// `s_volume_name` (16 bytes).
    pub fn volume_name(&self) -> &[u8] {
        self.raw
            .get(S_VOLUME_NAME..S_VOLUME_NAME + 16)
            .unwrap_or(&[])
    }
    /// `s_last_mounted` (64 bytes).
    pub fn last_mounted(&self) -> &[u8] {
        self.raw
            .get(S_LAST_MOUNTED..S_LAST_MOUNTED + 64)
            .unwrap_or(&[])
    }
    /// `s_checksum_type`.
    pub fn checksum_type(&self) -> u8 {
        u8_at(&self.raw, S_CHECKSUM_TYPE)
    }
    /// The superblock checksum computed over the bytes before `s_checksum`.
    fn computed_checksum(&self) -> u32 {
        crc32c(!0, self.raw.get(..S_CHECKSUM).unwrap_or(&[]))
    }

    /// The raw bytes.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// `s_feature_compat`.
    pub fn feature_compat(&self) -> u32 {
        le32(&self.raw, S_FEATURE_COMPAT)
    }
    /// `s_feature_incompat`.
    pub fn feature_incompat(&self) -> u32 {
        le32(&self.raw, S_FEATURE_INCOMPAT)
    }
    /// `s_feature_ro_compat`.
    pub fn feature_ro_compat(&self) -> u32 {
        le32(&self.raw, S_FEATURE_RO_COMPAT)
    }
    /// Set bits in `s_feature_ro_compat`.
    pub fn add_ro_compat(&mut self, bits: u32) {
        let v = self.feature_ro_compat() | bits;
        put_le32(&mut self.raw, S_FEATURE_RO_COMPAT, v);
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
        le16(&self.raw, S_STATE)
    }
    /// `s_last_orphan`.
    pub fn last_orphan(&self) -> u32 {
        le32(&self.raw, S_LAST_ORPHAN)
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
        if le32(&self.raw, S_REV_LEVEL) == 0 {
            11
        } else {
            le32(&self.raw, S_FIRST_INO)
        }
    }
    /// `s_reserved_gdt_blocks`.
    pub fn reserved_gdt_blocks(&self) -> u32 {
        u32::from(le16(&self.raw, S_RESERVED_GDT_BLOCKS))
    }
    /// `s_log_groups_per_flex`.
    pub fn log_groups_per_flex(&self) -> u8 {
        u8_at(&self.raw, S_LOG_GROUPS_PER_FLEX)
    }
    /// `s_want_extra_isize`.
    pub fn want_extra_isize(&self) -> u16 {
        le16(&self.raw, S_WANT_EXTRA_ISIZE)
    }
    /// `s_min_extra_isize`.
    pub fn min_extra_isize(&self) -> u16 {
        le16(&self.raw, S_MIN_EXTRA_ISIZE)
    }
    /// `s_hash_seed` as four words.
    pub fn hash_seed(&self) -> [u32; 4] {
        [0, 1, 2, 3].map(|i| le32(&self.raw, S_HASH_SEED + 4 * i))
    }
    /// `s_def_hash_version`.
    pub fn def_hash_version(&self) -> u8 {
        u8_at(&self.raw, S_DEF_HASH_VERSION)
    }
    /// `s_flags`.
    pub fn flags(&self) -> u32 {
        le32(&self.raw, S_FLAGS)
    }
    /// `s_checksum_seed`.
    pub fn checksum_seed(&self) -> u32 {
        le32(&self.raw, S_CHECKSUM_SEED)
    }
    /// `s_backup_bgs` (sparse_super2).
    pub fn backup_bgs(&self) -> [u32; 2] {
        [
            le32(&self.raw, S_BACKUP_BGS),
            le32(&self.raw, S_BACKUP_BGS + 4),
        ]
    }
    /// `s_r_blocks_count`.
    pub fn r_blocks_count(&self) -> u64 {
        let mut v = u64::from(le32(&self.raw, S_R_BLOCKS_COUNT_LO));
        if self.has_incompat(INCOMPAT_64BIT) {
            v |= u64::from(le32(&self.raw, S_R_BLOCKS_COUNT_HI)) << 32;
        }
        v
    }
    /// `s_free_blocks_count`.
    pub fn free_blocks_count(&self) -> u64 {
        let mut v = u64::from(le32(&self.raw, S_FREE_BLOCKS_COUNT_LO));
        if self.has_incompat(INCOMPAT_64BIT) {
            v |= u64::from(le32(&self.raw, S_FREE_BLOCKS_COUNT_HI)) << 32;
        }
        v
    }
    /// Set `s_free_blocks_count` (only the allocator calls this).
    pub fn set_free_blocks_count(&mut self, v: u64) {
        put_le32(&mut self.raw, S_FREE_BLOCKS_COUNT_LO, crate::bytes::lo32(v));
        if self.has_incompat(INCOMPAT_64BIT) {
            put_le32(&mut self.raw, S_FREE_BLOCKS_COUNT_HI, crate::bytes::hi32(v));
        }
    }
    /// `s_free_inodes_count`.
    pub fn free_inodes_count(&self) -> u32 {
        le32(&self.raw, S_FREE_INODES_COUNT)
    }
    /// Set `s_free_inodes_count` (only the allocator calls this).
    pub fn set_free_inodes_count(&mut self, v: u32) {
        put_le32(&mut self.raw, S_FREE_INODES_COUNT, v);
    }
    /// Recompute `s_checksum` (metadata_csum): crc32c(~0) over the bytes before it.
    pub fn update_checksum(&mut self) {
        let c = self.computed_checksum();
        put_le32(&mut self.raw, S_CHECKSUM, c);
    }

    /// Does group `g` hold a superblock backup (and so a GDT copy)?
    pub fn group_has_super(&self, g: u32) -> bool {
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
        let first_meta_bg = u64::from(le32(&self.raw, S_FIRST_META_BG));
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

/// Look for a backup superblock where mke2fs puts the first one (group 1 of the
/// default geometry: block 8193 with 1 KiB blocks, 32768 with 4 KiB, ...), as
/// e2fsck does when the primary is bad. Returns `(block, block size)` of the
/// first copy that has the magic, that block size and no damage, in the form
/// `e2fsck -b BLOCK -B SIZE` takes.
pub fn find_backup<D: ReadAt + ?Sized>(dev: &D) -> Option<(u64, u32)> {
    (0..=MAX_LOG_BLOCK_SIZE).find_map(|log| {
        let bs = 1024u32 << log;
        let block = u64::from(log == 0) + u64::from(bs) * 8;
        let off = block * u64::from(bs);
        if off + SUPERBLOCK_SIZE as u64 > dev.size() {
            return None;
        }
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        dev.read_exact_at(off, &mut raw).ok()?;
        let sb = Superblock::read(raw);
        let sound = sb.magic() == EXT4_SUPER_MAGIC
            && sb.block_size == bs
            && sb
                .problems(dev.size())
                .iter()
                .all(|f| f.severity != crate::finding::Severity::Damage);
        sound.then_some((block, bs))
    })
}

/// `s_inodes_count` of the filesystem whose bytes `read(offset, buf)` gives.
pub fn read_inodes_count(read: &mut dyn FnMut(u64, &mut [u8]) -> Result<()>) -> Result<u64> {
    let mut raw = vec![0u8; SUPERBLOCK_SIZE];
    read(SUPERBLOCK_OFFSET, &mut raw)?;
    Ok(u64::from(Superblock::read(raw).inodes_count))
}

fn is_power_of(mut n: u32, p: u32) -> bool {
    while n > 1 && n % p == 0 {
        n /= p;
    }
    n == 1
}

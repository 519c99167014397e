//! Inodes (`struct ext4_inode`): the raw record (`s_inode_size` bytes) is kept and
//! patched field by field, so what we do not model (in-inode xattrs, project id,
//! i_version) survives untouched. Owns timestamps with their `_extra` epoch and
//! nanosecond words, `i_blocks` units (huge_file), and the inode checksum.

use super::csum::crc32c;
use super::{FileType, Ino, Stat, Timestamp};
use crate::bytes::{le16, le32, put_le16, put_le32};

pub const I_MODE: usize = 0x0;
pub const I_UID: usize = 0x2;
pub const I_SIZE_LO: usize = 0x4;
pub const I_ATIME: usize = 0x8;
pub const I_CTIME: usize = 0xC;
pub const I_MTIME: usize = 0x10;
pub const I_DTIME: usize = 0x14;
pub const I_GID: usize = 0x18;
pub const I_LINKS_COUNT: usize = 0x1A;
pub const I_BLOCKS_LO: usize = 0x1C;
pub const I_FLAGS: usize = 0x20;
pub const I_BLOCK: usize = 0x28;
pub const I_BLOCK_LEN: usize = 60;
pub const I_GENERATION: usize = 0x64;
pub const I_FILE_ACL_LO: usize = 0x68;
pub const I_SIZE_HIGH: usize = 0x6C;
pub const L_I_BLOCKS_HIGH: usize = 0x74;
pub const L_I_FILE_ACL_HIGH: usize = 0x76;
pub const L_I_UID_HIGH: usize = 0x78;
pub const L_I_GID_HIGH: usize = 0x7A;
pub const L_I_CHECKSUM_LO: usize = 0x7C;
pub const EXT2_GOOD_OLD_INODE_SIZE: usize = 128;
pub const I_EXTRA_ISIZE: usize = 0x80;
pub const I_CHECKSUM_HI: usize = 0x82;
pub const I_CTIME_EXTRA: usize = 0x84;
pub const I_MTIME_EXTRA: usize = 0x88;
pub const I_ATIME_EXTRA: usize = 0x8C;
pub const I_CRTIME: usize = 0x90;
pub const I_CRTIME_EXTRA: usize = 0x94;

/// `i_flags`: huge file (i_blocks in filesystem blocks).
pub const EXT4_HUGE_FILE_FL: u32 = 0x0004_0000;
/// `i_flags`: hashed-indexed directory.
pub const EXT4_INDEX_FL: u32 = 0x0000_1000;
/// `i_flags`: the inode uses extents.
pub const EXT4_EXTENTS_FL: u32 = 0x0008_0000;
/// `i_flags`: inline data.
pub const EXT4_INLINE_DATA_FL: u32 = 0x1000_0000;

/// Mode type bits.
pub const S_IFMT: u16 = 0o170000;
/// Regular file.
pub const S_IFREG: u16 = 0o100000;
/// Directory.
pub const S_IFDIR: u16 = 0o040000;
/// Symlink.
pub const S_IFLNK: u16 = 0o120000;

/// Latest time an inode with `_extra` words holds (the kernel's
/// `EXT4_EXTRA_TIMESTAMP_MAX`: 2446-05-10 22:38:55 UTC).
const EXTRA_TIMESTAMP_MAX: i64 = (1 << 34) - 1 + i32::MIN as i64;

/// Which timestamp.
#[derive(Clone, Copy, Debug)]
pub enum Time {
    /// `i_atime`.
    A,
    /// `i_mtime`.
    M,
    /// `i_ctime`.
    C,
    /// `i_crtime`.
    Cr,
}

impl Time {
    fn offsets(self) -> (usize, usize) {
        match self {
            Time::A => (I_ATIME, I_ATIME_EXTRA),
            Time::M => (I_MTIME, I_MTIME_EXTRA),
            Time::C => (I_CTIME, I_CTIME_EXTRA),
            Time::Cr => (I_CRTIME, I_CRTIME_EXTRA),
        }
    }
}

/// One inode record.
#[derive(Clone, Debug)]
pub struct Inode {
    /// Its number.
    pub ino: Ino,
    /// The raw record, `s_inode_size` bytes.
    pub raw: Vec<u8>,
}

impl Inode {
    /// `i_mode`.
    pub fn mode(&self) -> u16 {
        le16(&self.raw, I_MODE)
    }
    /// Set `i_mode`.
    pub fn set_mode(&mut self, m: u16) {
        put_le16(&mut self.raw, I_MODE, m)
    }
    /// The type from the mode.
    pub fn file_type(&self) -> FileType {
        mode_type(self.mode())
    }
    /// Is it a directory?
    pub fn is_dir(&self) -> bool {
        self.mode() & S_IFMT == S_IFDIR
    }
    /// Owner (lo | hi).
    pub fn uid(&self) -> u32 {
        u32::from(le16(&self.raw, I_UID)) | (u32::from(le16(&self.raw, L_I_UID_HIGH)) << 16)
    }
    /// Set the owner.
    pub fn set_uid(&mut self, v: u32) {
        put_le16(&mut self.raw, I_UID, (v & 0xFFFF) as u16);
        put_le16(&mut self.raw, L_I_UID_HIGH, (v >> 16) as u16);
    }
    /// Group (lo | hi).
    pub fn gid(&self) -> u32 {
        u32::from(le16(&self.raw, I_GID)) | (u32::from(le16(&self.raw, L_I_GID_HIGH)) << 16)
    }
    /// Set the group.
    pub fn set_gid(&mut self, v: u32) {
        put_le16(&mut self.raw, I_GID, (v & 0xFFFF) as u16);
        put_le16(&mut self.raw, L_I_GID_HIGH, (v >> 16) as u16);
    }
    /// `i_size` (lo | high).
    pub fn size(&self) -> u64 {
        u64::from(le32(&self.raw, I_SIZE_LO)) | (u64::from(le32(&self.raw, I_SIZE_HIGH)) << 32)
    }
    /// Set `i_size`.
    pub fn set_size(&mut self, v: u64) {
        put_le32(&mut self.raw, I_SIZE_LO, crate::bytes::lo32(v));
        put_le32(&mut self.raw, I_SIZE_HIGH, crate::bytes::hi32(v));
    }
    /// `i_links_count`.
    pub fn links(&self) -> u16 {
        le16(&self.raw, I_LINKS_COUNT)
    }
    /// Set `i_links_count`.
    pub fn set_links(&mut self, v: u16) {
        put_le16(&mut self.raw, I_LINKS_COUNT, v)
    }
    /// `i_flags`.
    pub fn flags(&self) -> u32 {
        le32(&self.raw, I_FLAGS)
    }
    /// Set `i_flags`.
    pub fn set_flags(&mut self, v: u32) {
        put_le32(&mut self.raw, I_FLAGS, v)
    }
    /// `i_generation`.
    pub fn generation(&self) -> u32 {
        le32(&self.raw, I_GENERATION)
    }
    /// `i_block` (60 bytes).
    pub fn i_block(&self) -> &[u8] {
        self.raw.get(I_BLOCK..I_BLOCK + I_BLOCK_LEN).unwrap_or(&[])
    }
    /// Replace `i_block`.
    pub fn set_i_block(&mut self, b: &[u8; I_BLOCK_LEN]) {
        if let Some(s) = self.raw.get_mut(I_BLOCK..I_BLOCK + I_BLOCK_LEN) {
            s.copy_from_slice(b);
        }
    }
    /// `i_file_acl` (the xattr block), lo | high.
    pub fn file_acl(&self) -> u64 {
        u64::from(le32(&self.raw, I_FILE_ACL_LO))
            | (u64::from(le16(&self.raw, L_I_FILE_ACL_HIGH)) << 32)
    }
    /// Set `i_dtime`.
    pub fn set_dtime(&mut self, v: u32) {
        put_le32(&mut self.raw, I_DTIME, v)
    }
    /// `i_extra_isize` (0 for 128-byte inodes).
    pub fn extra_isize(&self) -> usize {
        if self.raw.len() <= EXT2_GOOD_OLD_INODE_SIZE {
            0
        } else {
            usize::from(le16(&self.raw, I_EXTRA_ISIZE))
        }
    }
    /// Does the field ending at byte `end` fit in the extra space?
    fn fits(&self, end: usize) -> bool {
        EXT2_GOOD_OLD_INODE_SIZE + self.extra_isize() >= end && end <= self.raw.len()
    }

    /// `i_blocks` in 512-byte units.
    pub fn blocks_512(&self, huge_file: bool, block_size: u32) -> u64 {
        let mut v = u64::from(le32(&self.raw, I_BLOCKS_LO));
        if huge_file {
            v |= u64::from(le16(&self.raw, L_I_BLOCKS_HIGH)) << 32;
            if self.flags() & EXT4_HUGE_FILE_FL != 0 {
                v = v.saturating_mul(u64::from(block_size / 512));
            }
        }
        v
    }

    /// Set `i_blocks` from a count of filesystem blocks.
    pub fn set_fs_blocks(&mut self, n: u64, huge_file: bool, block_size: u32) {
        let v = n.saturating_mul(u64::from(block_size / 512));
        let mut flags = self.flags() & !EXT4_HUGE_FILE_FL;
        if huge_file && v >> 48 != 0 {
            // Count in filesystem blocks instead.
            flags |= EXT4_HUGE_FILE_FL;
            put_le32(&mut self.raw, I_BLOCKS_LO, crate::bytes::lo32(n));
            put_le16(&mut self.raw, L_I_BLOCKS_HIGH, crate::bytes::hi16(n));
        } else {
            put_le32(&mut self.raw, I_BLOCKS_LO, crate::bytes::lo32(v));
            if huge_file {
                put_le16(&mut self.raw, L_I_BLOCKS_HIGH, crate::bytes::hi16(v));
            }
        }
        self.set_flags(flags);
    }

    /// A timestamp.
    pub fn time(&self, which: Time) -> Option<Timestamp> {
        let (lo, extra) = which.offsets();
        if matches!(which, Time::Cr) && !self.fits(I_CRTIME + 4) {
            return None;
        }
        let mut sec = i64::from(le32(&self.raw, lo) as i32);
        let mut nsec = 0;
        if self.fits(extra + 4) {
            let e = le32(&self.raw, extra);
            sec += i64::from(e & 3) << 32;
            nsec = (e >> 2).min(999_999_999);
        }
        Some(Timestamp { sec, nsec })
    }

    /// Set a timestamp (the `_extra` word when it fits).
    pub fn set_time(&mut self, which: Time, t: Timestamp) {
        let (lo, extra) = which.offsets();
        if matches!(which, Time::Cr) && !self.fits(I_CRTIME + 4) {
            return;
        }
        // As the kernel: seconds are clamped to what the inode can hold (signed
        // 32 bits, plus two epoch bits when the `_extra` word fits), never
        // wrapped.
        let has_extra = self.fits(extra + 4);
        let max = if has_extra {
            EXTRA_TIMESTAMP_MAX
        } else {
            i64::from(i32::MAX)
        };
        let sec = t.sec.clamp(i64::from(i32::MIN), max);
        // OK to truncate: the low 32 bits are the on-disk field, the epoch bits
        // carry the rest.
        put_le32(&mut self.raw, lo, sec as u32);
        if has_extra {
            let epoch = ((sec - i64::from(sec as i32)) >> 32) & 3;
            let e = (t.nsec.min(999_999_999) << 2) | (epoch as u32);
            put_le32(&mut self.raw, extra, e);
        }
    }

    /// The metadata_csum seed of this inode: crc32c(fs_seed, ino ‖ generation).
    pub fn csum_seed(&self, fs_seed: u32) -> u32 {
        crc32c(
            crc32c(fs_seed, &self.ino.to_le_bytes()),
            &self.generation().to_le_bytes(),
        )
    }

    /// Recompute the inode checksum (metadata_csum).
    pub fn update_checksum(&mut self, fs_seed: u32) {
        let c = self.compute_checksum(fs_seed);
        put_le16(&mut self.raw, L_I_CHECKSUM_LO, (c & 0xFFFF) as u16);
        if self.fits(I_CHECKSUM_HI + 2) {
            put_le16(&mut self.raw, I_CHECKSUM_HI, (c >> 16) as u16);
        }
    }

    fn compute_checksum(&self, fs_seed: u32) -> u32 {
        let mut copy = self.raw.clone();
        put_le16(&mut copy, L_I_CHECKSUM_LO, 0);
        if self.fits(I_CHECKSUM_HI + 2) {
            put_le16(&mut copy, I_CHECKSUM_HI, 0);
        }
        crc32c(self.csum_seed(fs_seed), &copy)
    }

    /// Does the stored checksum match (metadata_csum)? Only the low half is
    /// stored when `i_checksum_hi` does not fit.
    pub fn checksum_ok(&self, fs_seed: u32) -> bool {
        // A never-used, zeroed record carries no checksum (as e2fsprogs accepts).
        if self
            .raw
            .iter()
            .take(EXT2_GOOD_OLD_INODE_SIZE)
            .all(|&b| b == 0)
        {
            return true;
        }
        let c = self.compute_checksum(fs_seed);
        let lo = le16(&self.raw, L_I_CHECKSUM_LO);
        if self.fits(I_CHECKSUM_HI + 2) {
            lo == (c & 0xFFFF) as u16 && le16(&self.raw, I_CHECKSUM_HI) == (c >> 16) as u16
        } else {
            lo == (c & 0xFFFF) as u16
        }
    }

    /// The public view.
    pub fn stat(&self, huge_file: bool, block_size: u32) -> Stat {
        Stat {
            ino: self.ino,
            mode: self.mode(),
            uid: self.uid(),
            gid: self.gid(),
            size: self.size(),
            links: self.links(),
            atime: self.time(Time::A).unwrap_or_default(),
            mtime: self.time(Time::M).unwrap_or_default(),
            ctime: self.time(Time::C).unwrap_or_default(),
            crtime: self.time(Time::Cr),
            flags: self.flags(),
            generation: self.generation(),
            blocks_512: self.blocks_512(huge_file, block_size),
        }
    }
}

/// The type of a mode.
pub fn mode_type(mode: u16) -> FileType {
    match mode & S_IFMT {
        0o100000 => FileType::Regular,
        0o040000 => FileType::Directory,
        0o120000 => FileType::Symlink,
        0o020000 => FileType::CharDevice,
        0o060000 => FileType::BlockDevice,
        0o010000 => FileType::Fifo,
        0o140000 => FileType::Socket,
        _ => FileType::Unknown,
    }
}

/// The directory entry `file_type` byte of a type.
pub fn dirent_type(t: FileType) -> u8 {
    match t {
        FileType::Regular => 1,
        FileType::Directory => 2,
        FileType::CharDevice => 3,
        FileType::BlockDevice => 4,
        FileType::Fifo => 5,
        FileType::Socket => 6,
        FileType::Symlink => 7,
        FileType::Unknown => 0,
    }
}

/// The type of a directory entry `file_type` byte.
pub fn dirent_file_type(t: u8) -> FileType {
    match t {
        1 => FileType::Regular,
        2 => FileType::Directory,
        3 => FileType::CharDevice,
        4 => FileType::BlockDevice,
        5 => FileType::Fifo,
        6 => FileType::Socket,
        7 => FileType::Symlink,
        _ => FileType::Unknown,
    }
}

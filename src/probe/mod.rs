//! Filesystem identification by on-disk signatures, reporting what `blkid` reports.
//!
//! Owns [`FsInfo`]: the type name as blkid spells it, UUID, label, and for ext the
//! superblock facts a converter needs before it writes (state, needs_recovery,
//! features). Probing reads a few fixed offsets only; it never walks a filesystem.

use serde::Serialize;

use crate::disk::ReadAt;
use crate::error::Result;

pub(crate) mod bytes;
mod ext;
pub(crate) mod fat;
pub(crate) mod ntfs;
pub(crate) mod other;
mod swap;

pub use ext::feature_names as ext_feature_names;
pub use other::lvm2_crc;

/// Filesystem types, named as blkid names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FsType {
    /// ext2.
    #[serde(rename = "ext2")]
    Ext2,
    /// ext3.
    #[serde(rename = "ext3")]
    Ext3,
    /// ext4.
    #[serde(rename = "ext4")]
    Ext4,
    /// Linux swap.
    #[serde(rename = "swap")]
    Swap,
    /// FAT12/16/32.
    #[serde(rename = "vfat")]
    Vfat,
    /// NTFS.
    #[serde(rename = "ntfs")]
    Ntfs,
    /// XFS.
    #[serde(rename = "xfs")]
    Xfs,
    /// Btrfs.
    #[serde(rename = "btrfs")]
    Btrfs,
    /// LVM2 physical volume.
    #[serde(rename = "LVM2_member")]
    Lvm2Member,
    /// LUKS container.
    #[serde(rename = "crypto_LUKS")]
    CryptoLuks,
    /// Nothing recognised.
    #[serde(rename = "unknown")]
    Unknown,
}

impl FsType {
    /// blkid's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
            FsType::Ext4 => "ext4",
            FsType::Swap => "swap",
            FsType::Vfat => "vfat",
            FsType::Ntfs => "ntfs",
            FsType::Xfs => "xfs",
            FsType::Btrfs => "btrfs",
            FsType::Lvm2Member => "LVM2_member",
            FsType::CryptoLuks => "crypto_LUKS",
            FsType::Unknown => "unknown",
        }
    }

    /// ext2, ext3 or ext4.
    pub fn is_ext(self) -> bool {
        matches!(self, FsType::Ext2 | FsType::Ext3 | FsType::Ext4)
    }
}

/// ext superblock state (`s_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtState {
    /// Cleanly unmounted.
    Clean,
    /// Mounted or not cleanly unmounted.
    NotClean,
    /// Errors recorded.
    Errors,
}

/// The ext superblock facts inspection reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExtInfo {
    /// Block size in bytes.
    pub block_size: u32,
    /// Blocks in the filesystem.
    pub blocks_count: u64,
    /// Free blocks (superblock count).
    pub free_blocks: u64,
    /// Inodes in the filesystem.
    pub inodes_count: u32,
    /// Free inodes (superblock count).
    pub free_inodes: u32,
    /// Inode size in bytes.
    pub inode_size: u16,
    /// Feature names as `dumpe2fs -h` prints them, compat then incompat then ro_compat.
    pub features: Vec<String>,
    /// Superblock state.
    pub state: ExtState,
    /// The journal needs recovery (`needs_recovery` incompat bit).
    pub needs_recovery: bool,
    /// Last mount point recorded in the superblock, if any.
    pub last_mounted: Option<String>,
    /// Block groups the superblock describes (blocks after `s_first_data_block`
    /// over `s_blocks_per_group`, rounded up; 0 when that is 0): what a reader
    /// loads one descriptor of each for, so what a hostile superblock inflates.
    #[serde(skip)]
    pub group_count: u64,
}

/// What a probe found on one partition (or a bare disk).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FsInfo {
    /// blkid's type name.
    #[serde(rename = "type")]
    pub fstype: FsType,
    /// UUID as blkid prints it (FAT: `XXXX-XXXX`, NTFS: 16 hex digits upper case).
    pub uuid: Option<String>,
    /// Volume label.
    pub label: Option<String>,
    /// Format version where blkid reports one (swap: `"1"`, FAT: `"FAT32"`).
    pub version: Option<String>,
    /// ext facts, for ext2/3/4.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub ext: Option<ExtInfo>,
    /// A signature was found but the structure behind it is damaged (or a
    /// second filesystem signature is also present); says what and where. Always
    /// in the JSON document, `null` when nothing is wrong.
    pub problem: Option<String>,
}

impl FsInfo {
    /// A result of type `fstype` with nothing else known yet.
    pub fn new(fstype: FsType) -> FsInfo {
        FsInfo {
            fstype,
            uuid: None,
            label: None,
            version: None,
            ext: None,
            problem: None,
        }
    }

    /// Nothing recognised.
    pub fn unknown() -> FsInfo {
        FsInfo::new(FsType::Unknown)
    }
}

/// One signature probe: `Ok(None)` when the device does not carry it.
type Probe<D> = fn(&D) -> Result<Option<FsInfo>>;

/// Identify the filesystem (or container) on `dev`, a partition window or a bare
/// filesystem image.
///
/// Reads a few fixed offsets only; a device too small for a signature's offset
/// simply does not carry it. Probes with long magics come first (LUKS, LVM2, XFS,
/// Btrfs, NTFS, swap), then ext (a 2-byte magic), then FAT (whose signature is
/// weakest), and the first match wins; every probe runs, and a second clean
/// signature on the same device is reported in [`FsInfo::problem`] (blkid -p
/// refuses to name such a device). Where blkid would ignore a signature whose
/// structure is damaged, we name the type and say what is wrong in
/// [`FsInfo::problem`] (a damaged part an examiner wants to see); otherwise the
/// type, UUID, label and version are what `blkid -p` prints. Errors are I/O
/// failures only.
pub fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<FsInfo> {
    let probes: [Probe<D>; 8] = [
        other::probe_luks,
        other::probe_lvm2,
        other::probe_xfs,
        other::probe_btrfs,
        ntfs::probe,
        swap::probe,
        ext::probe,
        fat::probe,
    ];
    let mut found: Option<FsInfo> = None;
    let mut also = Vec::new();
    for p in probes {
        match (p(dev)?, &found) {
            (Some(info), None) => found = Some(info),
            // A second clean signature: blkid -p calls the result ambivalent.
            (Some(other), Some(_)) if other.problem.is_none() => also.push(other.fstype.as_str()),
            _ => {}
        }
    }
    let Some(mut info) = found else {
        return Ok(FsInfo::unknown());
    };
    if !also.is_empty() {
        let note = format!(
            "other signatures are also present: {} (blkid -p calls this ambivalent and names no type)",
            also.join(", ")
        );
        info.problem = Some(match info.problem.take() {
            Some(p) => format!("{p}; {note}"),
            None => note,
        });
    }
    Ok(info)
}

/// Is there a clean ext superblock at byte 1024 of `dev`? (An ext filesystem
/// leaves its first 1024 bytes alone: they may end in `0x55 0xAA` by chance.)
pub(crate) fn is_ext<D: ReadAt + ?Sized>(dev: &D) -> Result<bool> {
    Ok(ext::probe(dev)?.is_some_and(|i| i.problem.is_none()))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

//! Filesystem identification by on-disk signatures, reporting what `blkid` reports.
//!
//! Owns [`FsInfo`]: the type name as blkid spells it, UUID, label, and for ext the
//! superblock facts a converter needs before it writes (state, needs_recovery,
//! features). Probing reads a few fixed offsets only; it never walks a filesystem.

use serde::Serialize;

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
    /// A signature was found but the structure behind it is damaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Identify the filesystem on `dev` (temporary stub until the probe branch lands).
pub fn probe<D: crate::disk::ReadAt>(dev: &D) -> crate::error::Result<FsInfo> {
    let _ = dev;
    Ok(FsInfo {
        fstype: FsType::Unknown,
        uuid: None,
        label: None,
        version: None,
        ext: None,
        problem: None,
    })
}

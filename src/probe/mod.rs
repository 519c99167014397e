//! Filesystem identification by on-disk signatures, reporting what `blkid` reports.
//!
//! Owns [`FsInfo`]: the type name as blkid spells it, UUID, label, and for ext the
//! superblock facts a converter needs before it writes (state, needs_recovery,
//! features). Probing reads a few fixed offsets only; it never walks a filesystem.
//! One module per format or family: `ext` (and its external journal, `jbd`),
//! `swap` (and hibernation images, `swsuspend`), `fat`, `exfat`, `ntfs`,
//! `other` (XFS and its external log, Btrfs, LVM2, LUKS), `raid` (Linux md and
//! Intel RST members), `zfs`, `bcache` (bcache and bcachefs), `f2fs`, `optical`
//! (ISO 9660 and UDF), `packed` (SquashFS and EROFS), `bitlocker`; [`Label`]
//! says how labels are decoded.

use serde::Serialize;

use crate::disk::ReadAt;
use crate::error::Result;
use crate::finding::Finding;

mod bcache;
mod bitlocker;
pub(crate) mod bytes;
mod exfat;
mod ext;
mod f2fs;
pub(crate) mod fat;
mod label;
pub(crate) mod ntfs;
mod optical;
pub(crate) mod other;
mod packed;
mod raid;
mod swap;
mod zfs;

pub use ext::feature_names as ext_feature_names;
pub use label::Label;
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
    /// Swap area holding a hibernation image.
    #[serde(rename = "swsuspend")]
    Swsuspend,
    /// Linux software RAID (md) member.
    #[serde(rename = "linux_raid_member")]
    LinuxRaidMember,
    /// Intel Rapid Storage Technology (firmware RAID) member.
    #[serde(rename = "isw_raid_member")]
    IswRaidMember,
    /// ZFS pool member.
    #[serde(rename = "zfs_member")]
    ZfsMember,
    /// bcache backing or cache device.
    #[serde(rename = "bcache")]
    Bcache,
    /// bcachefs.
    #[serde(rename = "bcachefs")]
    Bcachefs,
    /// F2FS.
    #[serde(rename = "f2fs")]
    F2fs,
    /// exFAT.
    #[serde(rename = "exfat")]
    Exfat,
    /// ISO 9660 (CD/DVD image, install or live media).
    #[serde(rename = "iso9660")]
    Iso9660,
    /// UDF.
    #[serde(rename = "udf")]
    Udf,
    /// SquashFS 4.
    #[serde(rename = "squashfs")]
    Squashfs,
    /// SquashFS 3 and older.
    #[serde(rename = "squashfs3")]
    Squashfs3,
    /// EROFS.
    #[serde(rename = "erofs")]
    Erofs,
    /// ext3/ext4 external journal.
    #[serde(rename = "jbd")]
    Jbd,
    /// XFS external log.
    #[serde(rename = "xfs_external_log")]
    XfsExternalLog,
    /// BitLocker encrypted volume.
    #[serde(rename = "BitLocker")]
    BitLocker,
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
            FsType::Swsuspend => "swsuspend",
            FsType::LinuxRaidMember => "linux_raid_member",
            FsType::IswRaidMember => "isw_raid_member",
            FsType::ZfsMember => "zfs_member",
            FsType::Bcache => "bcache",
            FsType::Bcachefs => "bcachefs",
            FsType::F2fs => "f2fs",
            FsType::Exfat => "exfat",
            FsType::Iso9660 => "iso9660",
            FsType::Udf => "udf",
            FsType::Squashfs => "squashfs",
            FsType::Squashfs3 => "squashfs3",
            FsType::Erofs => "erofs",
            FsType::Jbd => "jbd",
            FsType::XfsExternalLog => "xfs_external_log",
            FsType::BitLocker => "BitLocker",
            FsType::Unknown => "unknown",
        }
    }

    /// ext2, ext3 or ext4.
    pub fn is_ext(self) -> bool {
        matches!(self, FsType::Ext2 | FsType::Ext3 | FsType::Ext4)
    }

    /// A filesystem a Linux system mounts read-write (what a hibernated
    /// system's frozen memory may hold as mounted): ext, XFS, Btrfs, F2FS,
    /// bcachefs.
    pub fn is_linux_filesystem(self) -> bool {
        self.is_ext()
            || matches!(
                self,
                FsType::Xfs | FsType::Btrfs | FsType::F2fs | FsType::Bcachefs
            )
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
    /// Volume label, decoded as blkid decodes it (see [`Label`]).
    pub label: Option<Label>,
    /// Format version where blkid reports one (swap: `"1"`, FAT: `"FAT32"`).
    pub version: Option<String>,
    /// The filesystem an external journal or log belongs to (blkid's
    /// `LOGUUID`: `jbd`, `xfs_external_log`); `null` otherwise.
    pub log_uuid: Option<String>,
    /// A RAID member's role in its array (`"active 0"`, `"spare"`, `"faulty"`,
    /// `"journal"`); `null` otherwise.
    pub raid_role: Option<String>,
    /// ext facts, for ext2/3/4.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub ext: Option<ExtInfo>,
    /// A signature was found but the structure behind it is damaged (or a
    /// second filesystem signature is also present): a damage finding saying what
    /// and where. A probe sees a window, so it places the finding at
    /// [`PLACE`] without an offset; `inspect` places it on the disk (the
    /// partition and its first byte). Always in the JSON document, `null` when
    /// nothing is wrong.
    pub problem: Option<Finding>,
}

/// Where a probe places its findings: it sees one window (a partition or a bare
/// filesystem), not the disk around it.
pub const PLACE: &str = "filesystem";

/// The damage a probe found, as [`FsInfo::problem`] holds it.
fn damaged(message: String) -> Option<Finding> {
    Some(Finding::damage(PLACE, message))
}

impl FsInfo {
    /// What [`FsInfo::problem`] says, if anything.
    pub fn problem_message(&self) -> Option<&str> {
        self.problem.as_ref().map(|f| f.message.as_str())
    }

    /// A result of type `fstype` with nothing else known yet.
    pub fn new(fstype: FsType) -> FsInfo {
        FsInfo {
            fstype,
            uuid: None,
            label: None,
            version: None,
            log_uuid: None,
            raid_role: None,
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

/// How a signature counts when several are found, as blkid counts it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A RAID member or an encrypted container: when found, the search stops
    /// (what it holds is not this device's filesystem).
    Container,
    /// ISO 9660 and UDF: may share a device with each other (hybrid media).
    Tolerant,
    /// Any other: a second clean signature makes the result ambivalent.
    Plain,
}

/// Identify the filesystem (or container) on `dev`, a partition window or a bare
/// filesystem image.
///
/// Reads a few fixed offsets only; a device too small for a signature's offset
/// simply does not carry it. Probes run in libblkid's order (RAID members and
/// encrypted containers first, then filesystems, FAT last as its signature is
/// the weakest) and the first match wins. A clean RAID member or encrypted
/// container ends the search, as blkid's does; otherwise every probe runs, and a
/// second clean signature on the same device (other than ISO 9660 beside UDF) is
/// reported in [`FsInfo::problem`] (blkid -p refuses to name such a device).
/// Where blkid would ignore a signature whose structure is damaged, we name the
/// type and say what is wrong in [`FsInfo::problem`] (a damaged part an examiner
/// wants to see); otherwise the type, UUID, label and version are what `blkid -p`
/// prints. Errors are I/O failures only.
pub fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<FsInfo> {
    let probes: [(Probe<D>, Kind); 22] = [
        (raid::probe_md, Kind::Container),
        (raid::probe_isw, Kind::Container),
        (bcache::probe_bcache, Kind::Plain),
        (other::probe_lvm2, Kind::Container),
        (other::probe_luks, Kind::Container),
        (bitlocker::probe, Kind::Container),
        (other::probe_xfs, Kind::Plain),
        (other::probe_xfs_log, Kind::Plain),
        (other::probe_btrfs, Kind::Plain),
        (ntfs::probe, Kind::Plain),
        (swap::probe, Kind::Plain),
        (ext::probe, Kind::Plain),
        (optical::probe_udf, Kind::Tolerant),
        (optical::probe_iso9660, Kind::Tolerant),
        (zfs::probe, Kind::Plain),
        (packed::probe_squashfs, Kind::Plain),
        (packed::probe_squashfs3, Kind::Plain),
        (exfat::probe, Kind::Plain),
        (f2fs::probe, Kind::Plain),
        (packed::probe_erofs, Kind::Plain),
        (bcache::probe_bcachefs, Kind::Plain),
        (fat::probe, Kind::Plain),
    ];
    let mut found: Option<(FsInfo, Kind)> = None;
    let mut also: Vec<(&'static str, Kind)> = Vec::new();
    for (p, kind) in probes {
        let Some(info) = p(dev)? else { continue };
        match &found {
            None => {
                let stop = kind == Kind::Container && info.problem.is_none();
                found = Some((info, kind));
                if stop {
                    break;
                }
            }
            // A second clean signature: blkid -p calls the result ambivalent
            // unless every signature found tolerates the others.
            Some(_) if info.problem.is_none() => also.push((info.fstype.as_str(), kind)),
            Some(_) => {}
        }
    }
    let Some((mut info, first_kind)) = found else {
        return Ok(FsInfo::unknown());
    };
    let ambivalent = first_kind != Kind::Tolerant || also.iter().any(|(_, k)| *k != Kind::Tolerant);
    if !also.is_empty() && ambivalent {
        let names: Vec<&str> = also.iter().map(|(n, _)| *n).collect();
        let note = format!(
            "other signatures are also present: {} (blkid -p calls this ambivalent and names no type)",
            names.join(", ")
        );
        info.problem = match info.problem.take() {
            Some(mut p) => {
                p.message = format!("{}; {note}", p.message);
                Some(p)
            }
            None => damaged(note),
        };
    }
    Ok(info)
}

/// Is there a clean ext superblock at byte 1024 of `dev`? (An ext filesystem
/// leaves its first 1024 bytes alone: they may end in `0x55 0xAA` by chance.)
pub(crate) fn is_ext<D: ReadAt + ?Sized>(dev: &D) -> Result<bool> {
    Ok(ext::probe(dev)?.is_some_and(|i| i.problem.is_none()))
}

#[cfg(test)]
mod identify_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

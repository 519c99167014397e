//! RAID members: Linux software RAID (md) and Intel Rapid Storage Technology
//! (isw, firmware RAID), found as libblkid finds them.
//!
//! md metadata (mdadm's `md_p.h` and `md_u.h`): version 0.90 in the last 64 KiB
//! (the 64 KiB-aligned block before the device's end, either byte order), 1.0 at
//! 8 KiB before the 4 KiB-aligned end, 1.1 at byte 0 and 1.2 at 4 KiB; blkid's
//! `TYPE=linux_raid_member` with the array UUID, the array name as label (1.x)
//! and the metadata version; we also give the member's role from its own
//! superblock. Intel RST keeps its metadata in the second-to-last 512-byte
//! sector: `"Intel Raid ISM Cfg Sig. "` followed by a six-character version.
//! Each reads at most one superblock at a fixed offset.

use super::bytes;
use super::{FsInfo, FsType, Label};
use crate::bytes::{be32, le16, le32, le64};
use crate::disk::ReadAt;
use crate::error::Result;

/// The md superblock magic (`MD_SB_MAGIC`).
const MD_SB_MAGIC: u32 = 0xa92b_4efc;
/// Version 0.90 reserves the last 64 KiB of the device.
const MD_RESERVED_BYTES: u64 = 0x10000;

// Version 0.90 superblock (`mdp_super_t`), 4 KiB, in the member's byte order.
const MD0_MAGIC: usize = 0x00;
const MD0_MAJOR_VERSION: usize = 0x04;
const MD0_MINOR_VERSION: usize = 0x08;
const MD0_PATCH_VERSION: usize = 0x0C;
const MD0_SET_UUID0: usize = 0x14;
const MD0_SIZE: usize = 0x20;
const MD0_SET_UUID1: usize = 0x34;
/// `this_disk`: the descriptor at word 992 (`MD_SB_DESCRIPTOR_OFFSET`).
const MD0_THIS_DISK: usize = 992 * 4;
const MD0_DISK_RAID_DISK: usize = 3 * 4;
const MD0_DISK_STATE: usize = 4 * 4;
const MD0_SIZE_BYTES: usize = 4096;
const MD_DISK_FAULTY: u32 = 1 << 0;
const MD_DISK_ACTIVE: u32 = 1 << 1;

// Version 1 superblock (`struct mdp_superblock_1`), little-endian.
const MD1_MAGIC: usize = 0x00;
const MD1_MAJOR_VERSION: usize = 0x04;
const MD1_SET_UUID: usize = 0x10;
const MD1_SET_NAME: usize = 0x20;
const MD1_SET_NAME_LEN: usize = 32;
const MD1_SUPER_OFFSET: usize = 0x90;
const MD1_DEV_NUMBER: usize = 0xA0;
const MD1_MAX_DEV: usize = 0xDC;
const MD1_DEV_ROLES: usize = 0x100;
/// Bytes read: the fixed part and the roles of the first 384 devices.
const MD1_READ: usize = 1024;
const MD_ROLE_SPARE: u16 = 0xffff;
const MD_ROLE_FAULTY: u16 = 0xfffe;
const MD_ROLE_JOURNAL: u16 = 0xfffd;

/// Probe for a Linux md member, in blkid's order: 0.90, 1.0, 1.1, 1.2.
pub(super) fn probe_md<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let size = dev.size();
    if size > MD_RESERVED_BYTES {
        let sboff = (size & !(MD_RESERVED_BYTES - 1)) - MD_RESERVED_BYTES;
        if let Some(info) = md0(dev, sboff)? {
            return Ok(Some(info));
        }
        // Version 1.0: 8 KiB before the 4 KiB-aligned end.
        if let Some(end_sb) = (size & !0xfff).checked_sub(0x2000) {
            if let Some(info) = md1(dev, end_sb, "1.0")? {
                return Ok(Some(info));
            }
        }
    }
    if let Some(info) = md1(dev, 0, "1.1")? {
        return Ok(Some(info));
    }
    md1(dev, 0x1000, "1.2")
}

fn md0<D: ReadAt + ?Sized>(dev: &D, off: u64) -> Result<Option<FsInfo>> {
    if dev.size() < MD_RESERVED_BYTES {
        return Ok(None);
    }
    let Some(sb) = bytes::read_opt(dev, off, MD0_SIZE_BYTES)? else {
        return Ok(None);
    };
    // The member's byte order: little-endian on x86, big-endian on others.
    let word: fn(&[u8], usize) -> u32 = if le32(&sb, MD0_MAGIC) == MD_SB_MAGIC {
        le32
    } else if be32(&sb, MD0_MAGIC) == MD_SB_MAGIC {
        be32
    } else {
        return Ok(None);
    };
    let minor = word(&sb, MD0_MINOR_VERSION);
    // blkid prints the UUID words in big-endian order whatever the member's.
    let mut uuid = [0u8; 16];
    uuid[..4].copy_from_slice(&word(&sb, MD0_SET_UUID0).to_be_bytes());
    if minor >= 90 {
        for i in 0..3 {
            let w = word(&sb, MD0_SET_UUID1 + 4 * i);
            uuid[4 + 4 * i..8 + 4 * i].copy_from_slice(&w.to_be_bytes());
        }
    }
    // `size` (KiB used of each member) must leave the superblock after the data.
    let used = u64::from(word(&sb, MD0_SIZE)) << 10;
    if dev.size() < used.saturating_add(MD_RESERVED_BYTES) || off < used {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::LinuxRaidMember);
    info.version = Some(format!(
        "{}.{}.{}",
        word(&sb, MD0_MAJOR_VERSION),
        minor,
        word(&sb, MD0_PATCH_VERSION)
    ));
    info.uuid = bytes::uuid_string(&uuid);
    let state = word(&sb, MD0_THIS_DISK + MD0_DISK_STATE);
    info.raid_role = Some(if state & MD_DISK_FAULTY != 0 {
        "faulty".to_string()
    } else if state & MD_DISK_ACTIVE != 0 {
        format!("active {}", word(&sb, MD0_THIS_DISK + MD0_DISK_RAID_DISK))
    } else {
        "spare".to_string()
    });
    Ok(Some(info))
}

fn md1<D: ReadAt + ?Sized>(dev: &D, off: u64, version: &str) -> Result<Option<FsInfo>> {
    let Some(sb) = bytes::read_opt(dev, off, MD1_READ)? else {
        return Ok(None);
    };
    if le32(&sb, MD1_MAGIC) != MD_SB_MAGIC
        || le32(&sb, MD1_MAJOR_VERSION) != 1
        || le64(&sb, MD1_SUPER_OFFSET) != off >> 9
    {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::LinuxRaidMember);
    info.version = Some(version.to_string());
    info.uuid = bytes::uuid_string(&crate::bytes::bytes16(&sb, MD1_SET_UUID));
    info.label = Label::from_raw(bytes::slice(&sb, MD1_SET_NAME, MD1_SET_NAME_LEN));
    let dev_number = le32(&sb, MD1_DEV_NUMBER);
    let max_dev = le32(&sb, MD1_MAX_DEV);
    let slot = usize::try_from(dev_number)
        .ok()
        .and_then(|n| n.checked_mul(2))
        .and_then(|n| n.checked_add(MD1_DEV_ROLES))
        .filter(|&at| dev_number < max_dev && at + 2 <= MD1_READ);
    info.raid_role = slot.map(|at| match le16(&sb, at) {
        MD_ROLE_SPARE => "spare".to_string(),
        MD_ROLE_FAULTY => "faulty".to_string(),
        MD_ROLE_JOURNAL => "journal".to_string(),
        role => format!("active {role}"),
    });
    Ok(Some(info))
}

/// The Intel RST signature; the version follows it in the 32-byte `sig` field.
const ISW_SIGNATURE: &[u8] = b"Intel Raid ISM Cfg Sig. ";
const ISW_SIG_LEN: usize = 32;
/// blkid looks for Intel RST on devices of 64 KiB or more.
const ISW_MIN_SIZE: u64 = 0x10000;

/// Probe for an Intel RST member: the metadata in the second-to-last sector.
/// Sectors are taken as 512 bytes (an image file's; blkid uses the device's).
pub(super) fn probe_isw<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let size = dev.size();
    if size < ISW_MIN_SIZE {
        return Ok(None);
    }
    let off = (size / 512 - 2) * 512;
    let Some(m) = bytes::read_opt(dev, off, ISW_SIG_LEN)? else {
        return Ok(None);
    };
    if !bytes::has(&m, 0, ISW_SIGNATURE) {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::IswRaidMember);
    // blkid prints the rest of the field as a C string, right-aligned in 6.
    let rest = bytes::slice(&m, ISW_SIGNATURE.len(), ISW_SIG_LEN - ISW_SIGNATURE.len());
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let version = String::from_utf8_lossy(rest.get(..end).unwrap_or(&[])).into_owned();
    info.version = Some(format!("{version:>6}"));
    Ok(Some(info))
}

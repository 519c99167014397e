//! Signatures of filesystems and containers domuify does not open but must name:
//! XFS and its external log, Btrfs, LVM2 physical volumes and LUKS. Each is identified by its magic at
//! a fixed offset, with the UUID and label blkid prints, and a few sanity checks
//! whose failure is reported in [`FsInfo::problem`].

use super::bytes;
use super::{damaged, FsInfo, FsType, Label};
use crate::bytes::{be16, be32, be64, le16, le32, le64};
use crate::disk::ReadAt;
use crate::error::Result;

// XFS superblock (big-endian) at byte 0.
const XFS_SB_MAGICNUM: usize = 0x00;
const XFS_SB_BLOCKSIZE: usize = 0x04;
const XFS_SB_DBLOCKS: usize = 0x08;
const XFS_SB_UUID: usize = 0x20;
const XFS_SB_AGCOUNT: usize = 0x58;
const XFS_SB_SECTSIZE: usize = 0x66;
const XFS_SB_FNAME: usize = 0x6C;
const XFS_SB_FNAME_LEN: usize = 12;
const XFS_SB_SIZE: usize = 0x78;

/// Probe for XFS.
pub(super) fn probe_xfs<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(sb) = bytes::read_opt(dev, 0, XFS_SB_SIZE)? else {
        return Ok(None);
    };
    if !bytes::has(&sb, XFS_SB_MAGICNUM, b"XFSB") {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::Xfs);
    let blocksize = be32(&sb, XFS_SB_BLOCKSIZE);
    let sectsize = be16(&sb, XFS_SB_SECTSIZE);
    let mut bad = Vec::new();
    if !(512..=65536).contains(&blocksize) || !blocksize.is_power_of_two() {
        bad.push(format!("block size {blocksize}"));
    }
    if !(512..=32768).contains(&sectsize) || !sectsize.is_power_of_two() {
        bad.push(format!("sector size {sectsize}"));
    }
    if be32(&sb, XFS_SB_AGCOUNT) == 0 {
        bad.push("allocation group count 0".to_string());
    }
    if be64(&sb, XFS_SB_DBLOCKS) == 0 {
        bad.push("data block count 0".to_string());
    }
    if bad.is_empty() {
        info.uuid = bytes::uuid_string(&crate::bytes::bytes16(&sb, XFS_SB_UUID));
        info.label = Label::from_raw(bytes::slice(&sb, XFS_SB_FNAME, XFS_SB_FNAME_LEN));
    } else {
        info.problem = damaged(format!(
            "XFS superblock at byte 0: invalid {}",
            bad.join(", ")
        ));
    }
    Ok(Some(info))
}

// XFS log record header (`struct xlog_rec_header`, big-endian).
const XLOG_HEADER_MAGIC_NUM: u32 = 0xFEED_BABE;
const XLOG_H_VERSION: usize = 0x08;
const XLOG_H_LEN: usize = 0x0C;
const XLOG_H_FMT: usize = 0x12C;
const XLOG_H_UUID: usize = 0x130;
const XLOG_VERSION_OKBITS: u32 = 0x3;
/// Linux little-endian, Linux big-endian, IRIX big-endian.
const XLOG_FMTS: [u32; 3] = [1, 2, 3];
/// A log record header is in one of the first 512 sectors.
const XLOG_SCAN: usize = 256 * 1024;
/// blkid does not look for an external log under 10 MiB.
const XLOG_MIN_SIZE: u64 = 10 * 1024 * 1024;

/// Probe for an XFS external log device: a valid log record header in one of
/// the first 512 sectors, before any XFS superblock. Its UUID is the
/// filesystem's (blkid's `LOGUUID`; the log has no UUID of its own).
pub(super) fn probe_xfs_log<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    if dev.size() < XLOG_MIN_SIZE {
        return Ok(None);
    }
    let Some(buf) = bytes::read_opt(dev, 0, XLOG_SCAN)? else {
        return Ok(None);
    };
    for rec in buf.chunks_exact(512) {
        if bytes::has(rec, 0, b"XFSB") {
            return Ok(None);
        }
        let version = be32(rec, XLOG_H_VERSION);
        let len = be32(rec, XLOG_H_LEN);
        if be32(rec, 0) == XLOG_HEADER_MAGIC_NUM
            && version != 0
            && version & !XLOG_VERSION_OKBITS == 0
            && len != 0
            && len <= 0x7FFF_FFFF
            && XLOG_FMTS.contains(&be32(rec, XLOG_H_FMT))
        {
            let mut info = FsInfo::new(FsType::XfsExternalLog);
            info.log_uuid = bytes::uuid_string(&crate::bytes::bytes16(rec, XLOG_H_UUID));
            return Ok(Some(info));
        }
    }
    Ok(None)
}

// Btrfs superblock at 64 KiB.
const BTRFS_SUPER_OFFSET: u64 = 0x10000;
const BTRFS_FSID: usize = 0x20;
const BTRFS_MAGIC: usize = 0x40;
const BTRFS_SECTORSIZE: usize = 0x90;
const BTRFS_CSUM_TYPE: usize = 0xC4;
/// Checksum algorithm 0: CRC32C of the superblock after the checksum field.
const BTRFS_CSUM_TYPE_CRC32: u16 = 0;
const BTRFS_CSUM_SIZE: usize = 0x20;
const BTRFS_LABEL: usize = 0x12B;
const BTRFS_LABEL_LEN: usize = 256;
const BTRFS_SB_SIZE: usize = 0x1000;
/// blkid does not look for Btrfs on devices under 1 MiB.
const BTRFS_MIN_SIZE: u64 = 1024 * 1024;

/// Probe for Btrfs.
pub(super) fn probe_btrfs<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    if dev.size() < BTRFS_MIN_SIZE {
        return Ok(None);
    }
    let Some(sb) = bytes::read_opt(dev, BTRFS_SUPER_OFFSET, BTRFS_SB_SIZE)? else {
        return Ok(None);
    };
    if !bytes::has(&sb, BTRFS_MAGIC, b"_BHRfS_M") {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::Btrfs);
    if le32(&sb, BTRFS_SECTORSIZE) == 0 {
        info.problem = damaged(format!(
            "Btrfs superblock at byte {BTRFS_SUPER_OFFSET:#x}: sector size 0"
        ));
        return Ok(Some(info));
    }
    info.uuid = bytes::uuid_string(&crate::bytes::bytes16(&sb, BTRFS_FSID));
    info.label = Label::from_raw(bytes::slice(&sb, BTRFS_LABEL, BTRFS_LABEL_LEN));
    // Only the default checksum is verified (blkid also knows xxhash, sha256
    // and blake2).
    if le16(&sb, BTRFS_CSUM_TYPE) == BTRFS_CSUM_TYPE_CRC32 {
        let stored = le32(&sb, 0);
        let computed = crc32c::crc32c(bytes::slice(
            &sb,
            BTRFS_CSUM_SIZE,
            BTRFS_SB_SIZE - BTRFS_CSUM_SIZE,
        ));
        if stored != computed {
            info.problem = damaged(format!(
                "Btrfs superblock at byte {BTRFS_SUPER_OFFSET:#x}: checksum {stored:#010x}, computed {computed:#010x}"
            ));
        }
    }
    Ok(Some(info))
}

// LVM2 label: in one of the first four sectors.
const LVM2_LABEL_SECTORS: u64 = 4;
const LABEL_ID: usize = 0x00;
const LABEL_SECTOR_XL: usize = 0x08;
const LABEL_CRC_XL: usize = 0x10;
const LABEL_OFFSET_XL: usize = 0x14;
const LABEL_TYPE: usize = 0x18;
const PV_UUID: usize = 0x20;
const PV_UUID_LEN: usize = 32;
const LVM2_LABEL_SIZE: usize = 512;

/// LVM2's label checksum: CRC-32 (reflected 0xEDB88320) seeded with 0xF597A6CF,
/// without final inversion.
pub fn lvm2_crc(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xF597_A6CF;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & 0u32.wrapping_sub(crc & 1));
        }
    }
    crc
}

/// Probe for an LVM2 physical volume.
pub(crate) fn probe_lvm2<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    for sector in 0..LVM2_LABEL_SECTORS {
        let Some(l) = bytes::read_opt(dev, sector * 512, LVM2_LABEL_SIZE)? else {
            return Ok(None);
        };
        if !bytes::has(&l, LABEL_ID, b"LABELONE") || !bytes::has(&l, LABEL_TYPE, b"LVM2 001") {
            continue;
        }
        let mut info = FsInfo::new(FsType::Lvm2Member);
        info.version = Some("LVM2 001".into());
        let at = le64(&l, LABEL_SECTOR_XL);
        if at != sector {
            info.problem = damaged(format!(
                "LVM2 label in sector {sector} says it is in sector {at}"
            ));
            return Ok(Some(info));
        }
        let stored = le32(&l, LABEL_CRC_XL);
        let computed = lvm2_crc(bytes::slice(
            &l,
            LABEL_OFFSET_XL,
            LVM2_LABEL_SIZE - LABEL_OFFSET_XL,
        ));
        if stored != computed {
            info.problem = damaged(format!(
                "LVM2 label in sector {sector}: checksum {stored:#010x}, computed {computed:#010x}"
            ));
            return Ok(Some(info));
        }
        let raw = bytes::slice(&l, PV_UUID, PV_UUID_LEN);
        if raw.iter().any(|&b| b != 0) {
            // 6-4-4-4-4-4-6, as LVM and blkid print it.
            let mut s = String::with_capacity(PV_UUID_LEN + 6);
            for (i, &b) in raw.iter().enumerate() {
                if matches!(i, 6 | 10 | 14 | 18 | 22 | 26) {
                    s.push('-');
                }
                s.push(char::from(b));
            }
            info.uuid = Some(s);
        }
        return Ok(Some(info));
    }
    Ok(None)
}

// LUKS header (big-endian) at byte 0.
const LUKS_MAGIC: &[u8] = b"LUKS\xba\xbe";
const LUKS_VERSION: usize = 0x06;
const LUKS2_LABEL: usize = 0x18;
const LUKS2_LABEL_LEN: usize = 48;
const LUKS_UUID: usize = 0xA8;
const LUKS_UUID_LEN: usize = 40;
const LUKS2_HDR_OFFSET: usize = 0x100;
const LUKS_HDR_SIZE: usize = 0x200;

/// Probe for a LUKS container (primary header).
pub(super) fn probe_luks<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(h) = bytes::read_opt(dev, 0, LUKS_HDR_SIZE)? else {
        return Ok(None);
    };
    if !bytes::has(&h, 0, LUKS_MAGIC) {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::CryptoLuks);
    let version = be16(&h, LUKS_VERSION);
    info.version = Some(version.to_string());
    if version == 2 && be64(&h, LUKS2_HDR_OFFSET) != 0 {
        info.problem = damaged(format!(
            "LUKS2 header at byte 0 says it is at byte {:#x}",
            be64(&h, LUKS2_HDR_OFFSET)
        ));
        return Ok(Some(info));
    }
    if version == 1 || version == 2 {
        info.uuid = bytes::label(bytes::slice(&h, LUKS_UUID, LUKS_UUID_LEN));
    }
    if version == 2 {
        info.label = Label::from_raw(bytes::slice(&h, LUKS2_LABEL, LUKS2_LABEL_LEN));
    }
    Ok(Some(info))
}

//! bcache and bcachefs: both start with a superblock at 4 KiB whose magic sits
//! 24 bytes in (`bcache_super.h`; bcachefs's `bcachefs_format.h`).
//!
//! bcache (a backing or cache device of the block cache) is named as blkid 2.38
//! names it: the magic, the `offset` field equal to sector 8, and the device UUID.
//! bcachefs (no prober in blkid 2.38; its layout from the kernel's
//! `bcachefs_format.h` and libblkid 2.39's prober) is looked for at 4 KiB, at
//! 2 MiB and 1 MiB before the end; the superblock says where it was written, its
//! device index is below its device count, and its checksum (CRC32C or
//! CRC64-WE; others are not verified) covers the variable part, read only when
//! it is at most [`MAX_BCACHEFS_SB`] bytes. UUID is the user-visible one, the
//! version is `major.minor`.

use super::bytes;
use super::{damaged, FsInfo, FsType, Label};
use crate::bytes::{le16, le32, le64};
use crate::disk::ReadAt;
use crate::error::Result;

/// Byte offset of the first superblock.
const SB_OFFSET: u64 = 0x1000;
/// bcache's magic, also the first magic of bcachefs.
const BCACHE_MAGIC: &[u8] = b"\xc6\x85\x73\xf6\x4e\x1a\x45\xca\x82\x65\xf5\x7f\x48\xba\x6d\x81";
/// bcachefs's own magic.
const BCACHEFS_MAGIC: &[u8] = b"\xc6\x85\x73\xf6\x66\xce\x90\xa9\xd9\x6a\x60\xcf\x80\x3d\xf7\xef";
const MAGIC_OFFSET: usize = 0x18;

// bcache superblock (`struct cache_sb`).
const BCACHE_OFFSET: usize = 0x08;
const BCACHE_UUID: usize = 0x28;
const BCACHE_READ: usize = 0x38;

/// Probe for a bcache device.
pub(super) fn probe_bcache<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(sb) = bytes::read_opt(dev, SB_OFFSET, BCACHE_READ)? else {
        return Ok(None);
    };
    if !bytes::has(&sb, MAGIC_OFFSET, BCACHE_MAGIC) || le64(&sb, BCACHE_OFFSET) != SB_OFFSET / 512 {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::Bcache);
    info.uuid = bytes::uuid_string(&crate::bytes::bytes16(&sb, BCACHE_UUID));
    Ok(Some(info))
}

// bcachefs superblock (`struct bch_sb`).
const BCH_CSUM: usize = 0x00;
const BCH_VERSION: usize = 0x10;
const BCH_USER_UUID: usize = 0x38;
const BCH_LABEL: usize = 0x48;
const BCH_LABEL_LEN: usize = 32;
const BCH_OFFSET: usize = 0x68;
const BCH_DEV_IDX: usize = 0x7A;
const BCH_NR_DEVICES: usize = 0x7B;
const BCH_U64S: usize = 0x7C;
const BCH_FLAGS0: usize = 0x90;
const BCH_LAYOUT_SB_MAX_SIZE_BITS: usize = 0xF0 + 0x11;
/// Where the variable-length fields start (`_start`).
const BCH_FIELDS: usize = 0x2F0;
/// The checksum covers the superblock after the checksum field.
const BCH_CSUMMED_START: usize = 0x10;
const BCH_SB_MAX_SIZE_SHIFT: u8 = 16;
const BCH_CSUM_NONE: u8 = 0;
const BCH_CSUM_CRC32C: u8 = 1;
const BCH_CSUM_CRC64: u8 = 2;
/// blkid does not look for bcachefs on devices under 256 sectors.
const BCH_MIN_SIZE: u64 = 256 * 512;
/// Largest superblock whose checksum is verified (real ones are a few KiB).
pub const MAX_BCACHEFS_SB: usize = 64 * 1024;

/// Probe for bcachefs at its three superblock places.
pub(super) fn probe_bcachefs<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let size = dev.size();
    if size < BCH_MIN_SIZE {
        return Ok(None);
    }
    let places = [Some(SB_OFFSET), Some(2 << 20), size.checked_sub(1 << 20)];
    for off in places.into_iter().flatten() {
        let Some(sb) = bytes::read_opt(dev, off, BCH_FIELDS)? else {
            continue;
        };
        let magic = bytes::slice(&sb, MAGIC_OFFSET, 16);
        if magic != BCACHEFS_MAGIC && !(magic == BCACHE_MAGIC && off == SB_OFFSET) {
            continue;
        }
        if le64(&sb, BCH_OFFSET) != off / 512 {
            continue;
        }
        let nr_devices = sb.get(BCH_NR_DEVICES).copied().unwrap_or(0);
        let dev_idx = sb.get(BCH_DEV_IDX).copied().unwrap_or(0);
        let max_bits = sb.get(BCH_LAYOUT_SB_MAX_SIZE_BITS).copied().unwrap_or(0);
        let sb_size = BCH_FIELDS as u64 + u64::from(le32(&sb, BCH_U64S)) * 8;
        if nr_devices == 0
            || dev_idx >= nr_devices
            || max_bits > BCH_SB_MAX_SIZE_SHIFT
            || sb_size > 512u64 << max_bits
        {
            continue;
        }
        let mut info = FsInfo::new(FsType::Bcachefs);
        info.uuid = bytes::uuid_string(&crate::bytes::bytes16(&sb, BCH_USER_UUID));
        info.label = Label::from_raw(bytes::slice(&sb, BCH_LABEL, BCH_LABEL_LEN));
        let version = le16(&sb, BCH_VERSION);
        info.version = Some(format!("{}.{}", version >> 10, version & 0x3ff));
        info.problem = verify(dev, off, &sb, sb_size)?.and_then(damaged);
        return Ok(Some(info));
    }
    Ok(None)
}

/// The superblock checksum's verdict: `None` when it matches (or is of a kind
/// not verified), else what is wrong.
fn verify<D: ReadAt + ?Sized>(
    dev: &D,
    off: u64,
    head: &[u8],
    sb_size: u64,
) -> Result<Option<String>> {
    let csum_type = head.get(BCH_FLAGS0).copied().unwrap_or(0) >> 2;
    if !matches!(csum_type, BCH_CSUM_CRC32C | BCH_CSUM_CRC64) || csum_type == BCH_CSUM_NONE {
        return Ok(None);
    }
    let len = match usize::try_from(sb_size) {
        Ok(l) if l <= MAX_BCACHEFS_SB => l,
        _ => {
            return Ok(Some(format!(
                "bcachefs superblock at byte {off:#x}: {sb_size} bytes, too large to verify"
            )))
        }
    };
    let Some(sb) = bytes::read_opt(dev, off, len)? else {
        return Ok(Some(format!(
            "bcachefs superblock at byte {off:#x}: its {sb_size} bytes run past the end"
        )));
    };
    let data = bytes::slice(&sb, BCH_CSUMMED_START, len - BCH_CSUMMED_START);
    let (stored, computed) = if csum_type == BCH_CSUM_CRC32C {
        (
            u64::from(le32(&sb, BCH_CSUM)),
            u64::from(crc32c::crc32c(data)),
        )
    } else {
        let crc64 = crc::Crc::<u64>::new(&crc::CRC_64_WE);
        (le64(&sb, BCH_CSUM), crc64.checksum(data))
    };
    Ok((stored != computed).then(|| {
        format!(
            "bcachefs superblock at byte {off:#x}: checksum {stored:#x}, computed {computed:#x}"
        )
    }))
}

//! BitLocker: the volume header at byte 0 (Vista, Windows 7 and later, To Go)
//! and, for the two later kinds, the FVE metadata block it points to
//! (`-FVE-FS-`), read as libblkid reads them (its `bitlocker.c` is the layout's
//! documentation; the format is Microsoft's). The UUID is the header's 32-bit
//! volume serial as 16 decimal digits (blkid's form, absent when zero); the
//! version is the FVE metadata's.

use super::bytes;
use super::{FsInfo, FsType};
use crate::bytes::{le16, le32, le64};
use crate::disk::ReadAt;
use crate::error::Result;

const HDR_SIZE: usize = 512;
const MAGIC_VISTA: &[u8] = b"\xeb\x52\x90-FVE-FS-";
const MAGIC_WIN7: &[u8] = b"\xeb\x58\x90-FVE-FS-";
const MAGIC_TOGO: &[u8] = b"\xeb\x58\x90MSWIN4.1";
const WIN7_VOLUME_SERIAL: usize = 67;
const WIN7_FVE_METADATA_OFFSET: usize = 176;
const TOGO_FVE_METADATA_OFFSET: usize = 440;
const FVE_SIGNATURE: &[u8] = b"-FVE-FS-";
const FVE_VERSION: usize = 10;
const FVE_READ: usize = 12;

/// Probe for a BitLocker volume.
pub(super) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(h) = bytes::read_opt(dev, 0, HDR_SIZE)? else {
        return Ok(None);
    };
    let fve_at = if bytes::has(&h, 0, MAGIC_VISTA) {
        None
    } else if bytes::has(&h, 0, MAGIC_WIN7) {
        Some(WIN7_FVE_METADATA_OFFSET)
    } else if bytes::has(&h, 0, MAGIC_TOGO) {
        Some(TOGO_FVE_METADATA_OFFSET)
    } else {
        return Ok(None);
    };
    let mut info = FsInfo::new(FsType::BitLocker);
    let Some(field) = fve_at else {
        return Ok(Some(info));
    };
    let off = le64(&h, field);
    if off == 0 {
        return Ok(None);
    }
    let Some(fve) = bytes::read_opt(dev, off, FVE_READ)? else {
        return Ok(None);
    };
    if !bytes::has(&fve, 0, FVE_SIGNATURE) {
        return Ok(None);
    }
    if field == WIN7_FVE_METADATA_OFFSET {
        // blkid prints the serial with `%016d`: as a signed 32-bit number.
        let serial = i32::from_le_bytes(le32(&h, WIN7_VOLUME_SERIAL).to_le_bytes());
        info.uuid = (serial != 0).then(|| format!("{serial:016}"));
    }
    info.version = Some(le16(&fve, FVE_VERSION).to_string());
    Ok(Some(info))
}

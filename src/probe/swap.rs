//! Linux swap: the signature in the last 10 bytes of the first page, for every
//! page size Linux has (4 KiB to 64 KiB), and the version-1 header at byte 1024
//! (UUID, label), checked as libblkid checks it. Where blkid ignores a
//! version-1 signature whose header is wrong (version, last page), we report swap
//! with the damage in [`FsInfo::problem`].
//!
//! A swap area that holds a hibernation image is `swsuspend`: the kernel
//! replaces `SWAPSPACE2` with its own signature (`S1SUSPEND`, `S2SUSPEND`,
//! `ULSUSPEND`, `LINHIB0001`; TuxOnIce writes its magic at byte 0) and keeps the
//! version-1 header, so UUID and label are still read. The version is blkid's
//! name of the signature (`s1suspend`, ...).

use super::bytes;
use super::{damaged, FsInfo, FsType, Label};
use crate::bytes::le32;
use crate::disk::ReadAt;
use crate::error::Result;

/// Offsets of the signature: page size - 10, for 4, 8, 16, 32 and 64 KiB pages.
const SIGNATURE_OFFSETS: [u64; 5] = [0xFF6, 0x1FF6, 0x3FF6, 0x7FF6, 0xFFF6];
/// Version-1 signature.
const MAGIC_V1: &[u8] = b"SWAPSPACE2";
/// Version-0 signature (no UUID, no label).
const MAGIC_V0: &[u8] = b"SWAP-SPACE";
/// TuxOnIce keeps a valid swap signature behind its own at byte 0.
const TOI_MAGIC: &[u8] = b"\xed\xc3\x02\xe9\x98\x56\xe5\x0c";
/// Hibernation signatures, as the kernel (`HIBERNATE_SIG`, `S1SUSPEND`), uswsusp
/// and Linux's hibernation of other kernels write them, and blkid's version names.
const SUSPEND_MAGICS: [(&[u8], &str); 4] = [
    (b"S1SUSPEND", "s1suspend"),
    (b"S2SUSPEND", "s2suspend"),
    (b"ULSUSPEND", "ulsuspend"),
    (b"LINHIB0001", "linhib0001"),
];
/// blkid ignores swap areas under 10 pages of 4 KiB.
const MIN_SIZE: u64 = 10 * 4096;

/// The version-1 header (`struct swap_header_v1_2`) at byte 1024.
const HEADER_OFFSET: u64 = 1024;
const HEADER_SIZE: usize = 512;
const SWH_VERSION: usize = 0x00;
const SWH_LAST_PAGE: usize = 0x04;
const SWH_UUID: usize = 0x0C;
const SWH_VOLUME_NAME: usize = 0x1C;
/// `padding[32]` and `padding[33]`: blkid reads UUID and label only when zero.
const SWH_PADDING_32: usize = 0x2C + 32 * 4;
const SWH_PADDING_33: usize = 0x2C + 33 * 4;

/// Probe for swap or a hibernation image in a swap area; `None` when it is
/// neither.
pub(super) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    if dev.size() < MIN_SIZE {
        return Ok(None);
    }
    if bytes::read_opt(dev, 0, TOI_MAGIC.len())?.is_some_and(|b| b == TOI_MAGIC) {
        return Ok(Some(suspended(dev, "tuxonice")?));
    }
    let mut version = None;
    for off in SIGNATURE_OFFSETS {
        let Some(m) = bytes::read_opt(dev, off, 10)? else {
            break;
        };
        if let Some((_, name)) = SUSPEND_MAGICS
            .iter()
            .find(|(magic, _)| m.starts_with(magic))
        {
            return Ok(Some(suspended(dev, name)?));
        }
        if m == MAGIC_V1 {
            version = Some(1);
            break;
        }
        if m == MAGIC_V0 {
            version = Some(0);
            break;
        }
    }
    let Some(version) = version else {
        return Ok(None);
    };
    let mut info = FsInfo::new(FsType::Swap);
    if version == 0 {
        info.version = Some("0".into());
        return Ok(Some(info));
    }
    info.version = Some("1".into());
    let Some(h) = bytes::read_opt(dev, HEADER_OFFSET, HEADER_SIZE)? else {
        return Ok(None);
    };
    let hv = le32(&h, SWH_VERSION);
    if hv != 1 && hv.swap_bytes() != 1 {
        info.problem = damaged(format!(
            "swap header at byte {HEADER_OFFSET:#x}: version {hv} (expected 1)"
        ));
        return Ok(Some(info));
    }
    if le32(&h, SWH_LAST_PAGE) == 0 {
        info.problem = damaged(format!(
            "swap header at byte {HEADER_OFFSET:#x}: last_page is 0"
        ));
        return Ok(Some(info));
    }
    if le32(&h, SWH_PADDING_32) == 0 && le32(&h, SWH_PADDING_33) == 0 {
        info.uuid = bytes::uuid_string(&crate::bytes::bytes16(&h, SWH_UUID));
        info.label = Label::from_raw(bytes::slice(&h, SWH_VOLUME_NAME, 16));
    }
    Ok(Some(info))
}

/// A swap area holding a hibernation image: UUID and label from the header
/// the kernel kept, version `name`.
fn suspended<D: ReadAt + ?Sized>(dev: &D, name: &str) -> Result<FsInfo> {
    let mut info = FsInfo::new(FsType::Swsuspend);
    info.version = Some(name.to_string());
    if let Some(h) = bytes::read_opt(dev, HEADER_OFFSET, HEADER_SIZE)? {
        if le32(&h, SWH_PADDING_32) == 0 && le32(&h, SWH_PADDING_33) == 0 {
            info.uuid = bytes::uuid_string(&crate::bytes::bytes16(&h, SWH_UUID));
            info.label = Label::from_raw(bytes::slice(&h, SWH_VOLUME_NAME, 16));
        }
    }
    Ok(info)
}

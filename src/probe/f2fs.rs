//! F2FS: the superblock at 1 KiB (`struct f2fs_super_block`, little-endian),
//! read as libblkid reads it: the magic, the version, the UUID and the UTF-16LE
//! volume name. A version-1.0 superblock has no known layout for the rest: only
//! the type is named.

use super::bytes;
use super::{FsInfo, FsType, Label};
use crate::bytes::le16;
use crate::disk::ReadAt;
use crate::error::Result;

const SB_OFFSET: u64 = 0x400;
const F2FS_MAGIC: &[u8] = b"\x10\x20\xF5\xF2";
const MAJOR_VER: usize = 0x04;
const MINOR_VER: usize = 0x06;
const UUID: usize = 0x6C;
const VOLUME_NAME: usize = 0x7C;
/// 512 UTF-16 units.
const VOLUME_NAME_LEN: usize = 1024;
const SB_READ: usize = VOLUME_NAME + VOLUME_NAME_LEN;

/// Probe for F2FS.
pub(super) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(sb) = bytes::read_opt(dev, SB_OFFSET, SB_READ)? else {
        return Ok(None);
    };
    if !bytes::has(&sb, 0, F2FS_MAGIC) {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::F2fs);
    let (major, minor) = (le16(&sb, MAJOR_VER), le16(&sb, MINOR_VER));
    if major == 1 && minor == 0 {
        return Ok(Some(info));
    }
    info.label = Label::from_utf16le(bytes::slice(&sb, VOLUME_NAME, VOLUME_NAME_LEN));
    info.uuid = bytes::uuid_string(&crate::bytes::bytes16(&sb, UUID));
    info.version = Some(format!("{major}.{minor}"));
    Ok(Some(info))
}

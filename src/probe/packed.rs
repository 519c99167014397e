//! Read-only packed filesystems of live media and containers: SquashFS (4.x as
//! `squashfs`, 3.x and older as `squashfs3`, either byte order) and EROFS, each
//! from its superblock as libblkid reads it. SquashFS has no UUID or label; EROFS
//! has a UUID and an 8-bit label (blkid 2.38 gives it no version).

use super::bytes;
use super::{FsInfo, FsType, Label};
use crate::bytes::{be16, le16};
use crate::disk::ReadAt;
use crate::error::Result;

// SquashFS superblock at byte 0.
const SQ_MAGIC_LE: &[u8] = b"hsqs";
const SQ_MAGIC_BE: &[u8] = b"sqsh";
const SQ_S_MAJOR: usize = 0x1C;
const SQ_S_MINOR: usize = 0x1E;
const SQ_READ: usize = 0x20;

/// Probe for SquashFS 4 (little-endian only, as the format requires).
pub(super) fn probe_squashfs<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(sb) = bytes::read_opt(dev, 0, SQ_READ)? else {
        return Ok(None);
    };
    let (major, minor) = (le16(&sb, SQ_S_MAJOR), le16(&sb, SQ_S_MINOR));
    if !bytes::has(&sb, 0, SQ_MAGIC_LE) || major < 4 {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::Squashfs);
    info.version = Some(format!("{major}.{minor}"));
    Ok(Some(info))
}

/// Probe for SquashFS 3 and older, either byte order.
pub(super) fn probe_squashfs3<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(sb) = bytes::read_opt(dev, 0, SQ_READ)? else {
        return Ok(None);
    };
    let (major, minor) = if bytes::has(&sb, 0, SQ_MAGIC_BE) {
        (be16(&sb, SQ_S_MAJOR), be16(&sb, SQ_S_MINOR))
    } else if bytes::has(&sb, 0, SQ_MAGIC_LE) {
        (le16(&sb, SQ_S_MAJOR), le16(&sb, SQ_S_MINOR))
    } else {
        return Ok(None);
    };
    if major > 3 {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::Squashfs3);
    info.version = Some(format!("{major}.{minor}"));
    Ok(Some(info))
}

// EROFS superblock at 1 KiB.
const EROFS_OFFSET: u64 = 1024;
const EROFS_MAGIC: &[u8] = b"\xe2\xe1\xf5\xe0";
const EROFS_UUID: usize = 0x30;
const EROFS_VOLUME_NAME: usize = 0x40;
const EROFS_READ: usize = 0x80;

/// Probe for EROFS.
pub(super) fn probe_erofs<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(sb) = bytes::read_opt(dev, EROFS_OFFSET, EROFS_READ)? else {
        return Ok(None);
    };
    if !bytes::has(&sb, 0, EROFS_MAGIC) {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::Erofs);
    info.uuid = bytes::uuid_string(&crate::bytes::bytes16(&sb, EROFS_UUID));
    info.label = Label::from_raw(bytes::slice(&sb, EROFS_VOLUME_NAME, 16));
    Ok(Some(info))
}

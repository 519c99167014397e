//! exFAT: the boot sector (`"EXFAT   "` at byte 3) and the volume label entry
//! (type 0x83, UTF-16LE) in the root directory, read as libblkid reads them. The
//! root directory is followed through the FAT for at most [`MAX_LABEL_ENTRIES`]
//! entries, read a sector at a time. The UUID is the volume serial as
//! `XXXX-XXXX`; the version is the boot sector's `major.minor`.

use super::bytes;
use super::{FsInfo, FsType, Label};
use crate::bytes::le32;
use crate::disk::ReadAt;
use crate::error::Result;

const BS_SIZE: usize = 512;
const FAT_OFFSET: usize = 80;
const CLUSTER_HEAP_OFFSET: usize = 88;
const FIRST_CLUSTER_OF_ROOT: usize = 96;
const VOLUME_SERIAL: usize = 100;
const VERSION_MINOR: usize = 104;
const VERSION_MAJOR: usize = 105;
const BYTES_PER_SECTOR_SHIFT: usize = 108;
const SECTORS_PER_CLUSTER_SHIFT: usize = 109;

const ENTRY_SIZE: u64 = 32;
const ENTRY_EOD: u8 = 0x00;
const ENTRY_LABEL: u8 = 0x83;
const LABEL_LENGTH: usize = 1;
const LABEL_NAME: usize = 2;
const LABEL_NAME_LEN: usize = 22;
const FIRST_DATA_CLUSTER: u32 = 2;
const LAST_DATA_CLUSTER: u32 = 0x0FFF_FFF6;
/// blkid's bound on the root directory walk.
pub const MAX_LABEL_ENTRIES: usize = 10_000;
/// Bytes read at a time from the root directory.
const CHUNK: u64 = 512;

/// Probe for exFAT.
pub(super) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(bs) = bytes::read_opt(dev, 0, BS_SIZE)? else {
        return Ok(None);
    };
    if !bytes::has(&bs, 3, b"EXFAT   ") {
        return Ok(None);
    }
    let sector_shift = u32::from(bs[BYTES_PER_SECTOR_SHIFT]);
    let cluster_shift = u32::from(bs[SECTORS_PER_CLUSTER_SHIFT]);
    // blkid needs a cluster size that fits its 32-bit arithmetic.
    if sector_shift + cluster_shift >= 32 {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::Exfat);
    info.label = find_label(dev, &bs, sector_shift, cluster_shift)?;
    let s = bytes::slice(&bs, VOLUME_SERIAL, 4);
    if s.iter().any(|&b| b != 0) {
        info.uuid = Some(format!("{:02X}{:02X}-{:02X}{:02X}", s[3], s[2], s[1], s[0]));
    }
    info.version = Some(format!("{}.{}", bs[VERSION_MAJOR], bs[VERSION_MINOR]));
    Ok(Some(info))
}

fn find_label<D: ReadAt + ?Sized>(
    dev: &D,
    bs: &[u8],
    sector_shift: u32,
    cluster_shift: u32,
) -> Result<Option<Label>> {
    let cluster_size = 1u64 << (sector_shift + cluster_shift);
    let fat_start = u64::from(le32(bs, FAT_OFFSET)) << sector_shift;
    let heap = u64::from(le32(bs, CLUSTER_HEAP_OFFSET));
    let cluster_offset = |c: u32| -> Option<u64> {
        let rel = u64::from(c.checked_sub(FIRST_DATA_CLUSTER)?) << cluster_shift;
        heap.checked_add(rel)?.checked_mul(1 << sector_shift)
    };
    let mut cluster = le32(bs, FIRST_CLUSTER_OF_ROOT);
    let Some(mut off) = cluster_offset(cluster) else {
        return Ok(None);
    };
    let mut seen = 0;
    while seen < MAX_LABEL_ENTRIES {
        let Some(chunk) = bytes::read_opt(dev, off, CHUNK as usize)? else {
            return Ok(None);
        };
        for ent in chunk.chunks_exact(ENTRY_SIZE as usize) {
            seen += 1;
            match ent[0] {
                ENTRY_EOD => return Ok(None),
                ENTRY_LABEL => {
                    let len = (usize::from(ent[LABEL_LENGTH]) * 2).min(LABEL_NAME_LEN);
                    return Ok(Label::from_utf16le(bytes::slice(ent, LABEL_NAME, len)));
                }
                _ => {}
            }
        }
        off += CHUNK;
        if off % cluster_size == 0 {
            // The next cluster of the root directory, from the FAT.
            let Some(next) = bytes::read_opt(dev, fat_start + u64::from(cluster) * 4, 4)? else {
                return Ok(None);
            };
            cluster = le32(&next, 0);
            if !(FIRST_DATA_CLUSTER..=LAST_DATA_CLUSTER).contains(&cluster) {
                return Ok(None);
            }
            let Some(o) = cluster_offset(cluster) else {
                return Ok(None);
            };
            off = o;
        }
    }
    Ok(None)
}

//! ZFS pool members: the vdev labels (`vdev_impl.h`), found as libblkid finds
//! them. A device of at least 64 MiB carries four 256 KiB labels, two at the
//! start and two at the end; each holds an nvlist (XDR) at 16 KiB and an
//! uberblock ring at 128 KiB (magic `0x00bab10c`, either byte order). The device
//! is a member when at least four uberblocks are found, scanning the labels in
//! order and stopping at the fourth; the version is that uberblock's, and the
//! pool name (label) and pool GUID (UUID, in decimal) come from the first 4 KiB
//! of the nvlist of the label where the scan stopped. Reads: at most four
//! 128 KiB rings and one 4 KiB nvlist. Debian 12 has no ZFS tools; blkid is the
//! judge.

use super::bytes;
use super::{FsInfo, FsType, Label};
use crate::bytes::{be32, be64, le64};
use crate::disk::ReadAt;
use crate::error::Result;

const LABEL_SIZE: u64 = 256 * 1024;
const LABEL_NVLIST: u64 = 16 * 1024;
const LABEL_UBERBLOCKS: u64 = 128 * 1024;
const UBERBLOCK_SIZE: usize = 1024;
const UBERBLOCK_RING: usize = 128 * 1024;
const UBERBLOCK_MAGIC: u64 = 0x00ba_b10c;
/// `nvs_header_t` encoding of a label's nvlist: XDR.
const NV_ENCODE_XDR: u8 = 1;
const UB_VERSION: usize = 0x08;
/// Uberblocks wanted for a positive match.
const ZFS_WANT: usize = 4;
/// blkid does not look for ZFS on devices under 64 MiB.
const MIN_SIZE: u64 = 64 * 1024 * 1024;
/// The part of the nvlist read for the pool's name and GUID.
const NVLIST_READ: usize = 4096;

const DATA_TYPE_UINT64: u32 = 8;
const DATA_TYPE_STRING: u32 = 9;
const DATA_TYPE_NVLIST: u32 = 19;
/// nvlist header: encoding, endianness and two reserved bytes, version, flags.
const NVLIST_HEADER: usize = 12;
/// `nvp_size`, `nvp_decoded_size`, `nvp_namelen`.
const NVPAIR_HEADER: usize = 12;

/// Probe for a ZFS pool member.
pub(super) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let size = dev.size();
    if size < MIN_SIZE {
        return Ok(None);
    }
    let align = size % LABEL_SIZE;
    let labels = [
        0,
        LABEL_SIZE,
        size - 2 * LABEL_SIZE - align,
        size - LABEL_SIZE - align,
    ];
    let mut found = 0;
    for label in labels {
        // Every label holds its vdev nvlist, packed with XDR (encoding 1, then an
        // endianness byte of 0 or 1): a label without one is not looked at, so a
        // partition that is no ZFS member costs 4 small reads, not 4 rings.
        let Some(head) = bytes::read_opt(dev, label + LABEL_NVLIST, 4)? else {
            return Ok(None);
        };
        if head[0] != NV_ENCODE_XDR || head[1] > 1 {
            continue;
        }
        let Some(ring) = bytes::read_opt(dev, label + LABEL_UBERBLOCKS, UBERBLOCK_RING)? else {
            return Ok(None);
        };
        let mut last = None;
        for ub in ring.chunks_exact(UBERBLOCK_SIZE) {
            let magic = le64(ub, 0);
            if magic == UBERBLOCK_MAGIC {
                found += 1;
                last = Some(le64(ub, UB_VERSION));
            } else if magic == UBERBLOCK_MAGIC.swap_bytes() {
                found += 1;
                last = Some(be64(ub, UB_VERSION));
            }
        }
        if let (Some(version), true) = (last, found >= ZFS_WANT) {
            let mut info = FsInfo::new(FsType::ZfsMember);
            info.version = Some(version.to_string());
            if let Some(nv) = bytes::read_opt(dev, label + LABEL_NVLIST, NVLIST_READ)? {
                read_name_and_guid(&nv, &mut info);
            }
            return Ok(Some(info));
        }
    }
    Ok(None)
}

/// The pool's `name` and `pool_guid` from the top level of the XDR nvlist.
fn read_name_and_guid(nv: &[u8], info: &mut FsInfo) {
    let mut at = NVLIST_HEADER;
    let mut depth = 0u32;
    // Each step advances by at least 8 bytes, so the walk ends within the buffer.
    while at + NVPAIR_HEADER < nv.len() {
        let left = nv.len() - at;
        let size = be32(nv, at) as usize;
        if size == 0 {
            // The end of a nested list (8 zero bytes), or of the top level.
            if depth == 0 {
                return;
            }
            depth -= 1;
            at += 8;
            continue;
        }
        let namelen = be32(nv, at + 8) as usize;
        let namesize = (namelen + 3) & !3;
        if size > left || namesize + NVPAIR_HEADER > size {
            return;
        }
        let name = bytes::slice(nv, at + NVPAIR_HEADER, namelen);
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        let value_at = at + NVPAIR_HEADER + namesize;
        let value_max = size - NVPAIR_HEADER - namesize;
        let value_type = be32(nv, value_at);
        if value_max >= 16 && value_type == DATA_TYPE_NVLIST {
            // A nested list: its pairs follow its 16-byte header.
            depth += 1;
            at += NVPAIR_HEADER + namesize + 16;
            continue;
        }
        if depth == 0 {
            match name {
                b"name" if value_type == DATA_TYPE_STRING && value_max >= 12 => {
                    let len = be32(nv, value_at + 8) as usize;
                    if len <= value_max - 12 {
                        info.label = Label::from_raw(bytes::slice(nv, value_at + 12, len));
                    }
                }
                b"pool_guid" if value_type == DATA_TYPE_UINT64 && value_max >= 16 => {
                    let guid = be64(nv, value_at + 8);
                    info.uuid = (guid != 0).then(|| guid.to_string());
                }
                _ => {}
            }
        }
        at += size;
    }
}

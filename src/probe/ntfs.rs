//! NTFS: the boot sector (`"NTFS    "` at byte 3, BIOS parameter block, volume
//! serial) and the volume name from the `$Volume` MFT record (record 3), checked
//! as libblkid checks them. The MFT record is read whole (at most
//! [`MAX_MFT_RECORD`] bytes) and its attributes walked with bounds; like blkid,
//! the update-sequence fixups are not applied (the name sits in the record's first
//! sector). Where blkid ignores an NTFS signature whose BPB or MFT is wrong, we
//! report NTFS with the damage in [`FsInfo::problem`].

use super::bytes;
use super::{damaged, FsInfo, FsType, Label};
use crate::bytes::{le16, le32, le64};
use crate::disk::ReadAt;
use crate::error::Result;

/// OEM id.
const NTFS_OEM_ID: usize = 0x03;
const BPB_BYTES_PER_SECTOR: usize = 0x0B;
const BPB_SECTORS_PER_CLUSTER: usize = 0x0D;
const BPB_RESERVED_SECTORS: usize = 0x0E;
const BPB_FATS: usize = 0x10;
const BPB_ROOT_ENTRIES: usize = 0x11;
const BPB_SECTORS: usize = 0x13;
const BPB_SECTORS_PER_FAT: usize = 0x16;
const BPB_LARGE_SECTORS: usize = 0x20;
const NTFS_NUMBER_OF_SECTORS: usize = 0x28;
const NTFS_MFT_LCN: usize = 0x30;
const NTFS_MFTMIRR_LCN: usize = 0x38;
const NTFS_CLUSTERS_PER_MFT_RECORD: usize = 0x40;
const NTFS_VOLUME_SERIAL: usize = 0x48;

/// MFT record number of `$Volume`.
const MFT_RECORD_VOLUME: u64 = 3;
/// Largest cluster size (Windows 10 allows 2 MiB).
const MAX_CLUSTER_SIZE: u64 = 2 * 1024 * 1024;
/// Largest MFT record read (real ones are 1 or 4 KiB).
pub const MAX_MFT_RECORD: u64 = 64 * 1024;

// MFT record header and attribute header fields.
const MFT_ATTRS_OFFSET: usize = 0x14;
const MFT_BYTES_ALLOCATED: usize = 0x1C;
const ATTR_TYPE: usize = 0x00;
const ATTR_LEN: usize = 0x04;
const ATTR_VALUE_LEN: usize = 0x10;
const ATTR_VALUE_OFFSET: usize = 0x14;
const ATTR_HEADER_SIZE: u64 = 0x18;
const AT_VOLUME_NAME: u32 = 0x60;
const AT_END: u32 = 0xFFFF_FFFF;

/// Probe for NTFS; `None` when it is not NTFS.
pub(super) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(bs) = bytes::read_opt(dev, 0, 512)? else {
        return Ok(None);
    };
    if !bytes::has(&bs, NTFS_OEM_ID, b"NTFS    ") {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsType::Ntfs);
    match read_volume(dev, &bs)? {
        Ok(label) => {
            info.label = label;
            let serial = le64(&bs, NTFS_VOLUME_SERIAL);
            info.uuid = (serial != 0).then(|| format!("{serial:016X}"));
        }
        Err(why) => info.problem = damaged(format!("NTFS boot sector at byte 0: {why}")),
    }
    Ok(Some(info))
}

/// Is this a valid NTFS volume (as libblkid's `blkid_probe_is_ntfs`, which keeps
/// an NTFS boot sector from being read as an MBR)?
pub(crate) fn is_ntfs<D: ReadAt + ?Sized>(dev: &D) -> Result<bool> {
    let Some(bs) = bytes::read_opt(dev, 0, 512)? else {
        return Ok(false);
    };
    Ok(bytes::has(&bs, NTFS_OEM_ID, b"NTFS    ") && read_volume(dev, &bs)?.is_ok())
}

/// Check the BPB and read the volume name; the inner error says what is wrong.
fn read_volume<D: ReadAt + ?Sized>(
    dev: &D,
    bs: &[u8],
) -> Result<std::result::Result<Option<Label>, String>> {
    let sector_size = u64::from(le16(bs, BPB_BYTES_PER_SECTOR));
    if !(256..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
        return Ok(Err(format!(
            "bytes per sector {sector_size} is not a power of two in 256..=4096"
        )));
    }
    let spc_raw = bs.get(BPB_SECTORS_PER_CLUSTER).copied().unwrap_or(0);
    let sectors_per_cluster: u64 = match spc_raw {
        1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 => u64::from(spc_raw),
        240..=249 => 1 << (256 - u32::from(spc_raw)),
        _ => {
            return Ok(Err(format!(
                "sectors per cluster {spc_raw:#x} is not valid"
            )))
        }
    };
    let cluster_size = sector_size * sectors_per_cluster;
    if cluster_size > MAX_CLUSTER_SIZE {
        return Ok(Err(format!("cluster size {cluster_size} is over 2 MiB")));
    }
    if le16(bs, BPB_RESERVED_SECTORS) != 0
        || le16(bs, BPB_ROOT_ENTRIES) != 0
        || le16(bs, BPB_SECTORS) != 0
        || le16(bs, BPB_SECTORS_PER_FAT) != 0
        || le32(bs, BPB_LARGE_SECTORS) != 0
        || bs.get(BPB_FATS).copied().unwrap_or(0) != 0
    {
        return Ok(Err("BPB fields that must be zero are not".into()));
    }
    // Positive: clusters per record; negative: the record is 2^-n bytes.
    let cpm = bs.get(NTFS_CLUSTERS_PER_MFT_RECORD).copied().unwrap_or(0);
    let mft_record_size = match cpm {
        1 | 2 | 4 | 8 | 16 | 32 | 64 => u64::from(cpm) * cluster_size,
        0xE1..=0xF7 => 1u64 << (256 - u32::from(cpm)),
        _ => {
            return Ok(Err(format!(
                "clusters per MFT record {cpm:#x} is not valid"
            )))
        }
    };
    if !(4..=MAX_MFT_RECORD).contains(&mft_record_size) {
        return Ok(Err(format!(
            "MFT record size {mft_record_size} is not in 4..={MAX_MFT_RECORD}"
        )));
    }
    let nr_clusters = le64(bs, NTFS_NUMBER_OF_SECTORS) / sectors_per_cluster;
    let mft = le64(bs, NTFS_MFT_LCN);
    let mftmirr = le64(bs, NTFS_MFTMIRR_LCN);
    if mft > nr_clusters || mftmirr > nr_clusters {
        return Ok(Err(format!(
            "the MFT (cluster {mft}) or its mirror (cluster {mftmirr}) is past the volume's {nr_clusters} clusters"
        )));
    }
    // OK to cast: mft_record_size <= MAX_MFT_RECORD.
    let rec_len = mft_record_size as usize;
    let Some(mft_off) = mft.checked_mul(cluster_size) else {
        return Ok(Err(format!("MFT cluster {mft} overflows a byte offset")));
    };
    match bytes::read_opt(dev, mft_off, rec_len)? {
        Some(r) if bytes::has(&r, 0, b"FILE") => {}
        Some(_) => {
            return Ok(Err(format!(
                "no FILE record at the MFT (byte {mft_off:#x})"
            )))
        }
        None => return Ok(Err(format!("the MFT (byte {mft_off:#x}) is past the end"))),
    }
    let Some(vol_off) = mft_off.checked_add(MFT_RECORD_VOLUME * mft_record_size) else {
        return Ok(Err(format!("MFT cluster {mft} overflows a byte offset")));
    };
    let rec = match bytes::read_opt(dev, vol_off, rec_len)? {
        Some(r) if bytes::has(&r, 0, b"FILE") => r,
        Some(_) => {
            return Ok(Err(format!(
                "no FILE record for $Volume (byte {vol_off:#x})"
            )))
        }
        None => {
            return Ok(Err(format!(
                "the $Volume record (byte {vol_off:#x}) is past the end"
            )))
        }
    };
    Ok(Ok(volume_name(&rec, mft_record_size)))
}

/// The `$VOLUME_NAME` attribute of the `$Volume` record, bounded by the record.
fn volume_name(rec: &[u8], rec_size: u64) -> Option<Label> {
    let allocated = u64::from(le32(rec, MFT_BYTES_ALLOCATED));
    let mut off = u64::from(le16(rec, MFT_ATTRS_OFFSET));
    // Each step advances by a non-zero length, so the walk ends within the record.
    while off + ATTR_HEADER_SIZE <= rec_size && off <= allocated {
        // OK to cast: off < rec_size <= MAX_MFT_RECORD.
        let a = off as usize;
        let len = u64::from(le32(rec, a + ATTR_LEN));
        let ty = le32(rec, a + ATTR_TYPE);
        if len == 0 || ty == AT_END {
            return None;
        }
        if ty == AT_VOLUME_NAME {
            let val_off = u64::from(le16(rec, a + ATTR_VALUE_OFFSET));
            let val_len = u64::from(le32(rec, a + ATTR_VALUE_LEN));
            if val_off <= rec_size - off && val_len <= rec_size - off - val_off {
                // OK to cast: both bounded by the record size.
                let v = bytes::slice(rec, a + val_off as usize, val_len as usize);
                return Label::from_utf16le(v);
            }
            return None;
        }
        off += len;
    }
    None
}

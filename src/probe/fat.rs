//! FAT12/16/32: the boot sector's BIOS parameter block, the volume serial, and the
//! volume label from the root directory, decided as libblkid decides them.
//!
//! A FAT boot sector has a weak signature (a jump instruction, or `0x55 0xAA`, or
//! a type string), so it is only FAT when the BPB is plausible
//! ([`is_fat_boot_sector`]); the partition reader uses the same test to tell a
//! bare FAT filesystem from an MBR. The label blkid reports (`LABEL`) is the
//! volume-label entry of the root directory, not the copy in the boot sector. The
//! root directory is read in small chunks up to its first free entry; a FAT32
//! root is followed for at most [`MAX_ROOT_CLUSTERS`] clusters (as blkid), and at
//! most [`MAX_LABEL_SEARCH_ENTRIES`] entries are read in all.

use super::bytes;
use super::{FsInfo, FsType};
use crate::bytes::{le16, le32};
use crate::disk::ReadAt;
use crate::error::Result;

// DOS 2.0 / 3.31 BPB, common to every FAT.
/// Bytes per sector.
const BPB_BYTS_PER_SEC: usize = 0x0B;
/// Sectors per cluster.
const BPB_SEC_PER_CLUS: usize = 0x0D;
/// Reserved sectors before the first FAT.
const BPB_RSVD_SEC_CNT: usize = 0x0E;
/// Number of FATs.
const BPB_NUM_FATS: usize = 0x10;
/// Root directory entries (FAT12/16).
const BPB_ROOT_ENT_CNT: usize = 0x11;
/// Total sectors if < 65536.
const BPB_TOT_SEC16: usize = 0x13;
/// Media descriptor.
const BPB_MEDIA: usize = 0x15;
/// Sectors per FAT (FAT12/16); 0 on FAT32.
const BPB_FAT_SZ16: usize = 0x16;
/// Total sectors otherwise.
const BPB_TOT_SEC32: usize = 0x20;
// FAT12/16 extended BPB.
/// Extended boot signature 0x28/0x29.
const BS16_BOOT_SIG: usize = 0x26;
/// Volume serial.
const BS16_VOL_ID: usize = 0x27;
/// File-system type string ("FAT16   ").
const BS16_FIL_SYS_TYPE: usize = 0x36;
// FAT32 extended BPB.
/// Sectors per FAT.
const BPB_FAT_SZ32: usize = 0x24;
/// First cluster of the root directory.
const BPB_ROOT_CLUS: usize = 0x2C;
/// Sector of the FSInfo structure.
const BPB_FS_INFO: usize = 0x30;
/// Volume serial.
const BS32_VOL_ID: usize = 0x43;
/// File-system type string ("FAT32   ").
const BS32_FIL_SYS_TYPE: usize = 0x52;
/// Boot sector signature.
const BS_SIGNATURE: usize = 0x1FE;

// FSInfo.
const FSI_LEAD_SIG: usize = 0x000;
const FSI_STRUC_SIG: usize = 0x1E4;

// Directory entries.
const DIR_ENTRY_SIZE: usize = 32;
const DIR_NAME: usize = 0x00;
const DIR_ATTR: usize = 0x0B;
const DIR_FST_CLUS_HI: usize = 0x14;
const DIR_FST_CLUS_LO: usize = 0x1A;
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_LONG_NAME: u8 = 0x0F;
const ATTR_MASK: u8 = 0x3F;
const ENTRY_FREE: u8 = 0xE5;

/// Most clusters of the FAT32 root directory searched for the label (as blkid).
pub const MAX_ROOT_CLUSTERS: usize = 99;
/// Most directory entries read looking for the label (1 MiB of directory): a
/// hostile root directory without an end marker costs no more.
pub const MAX_LABEL_SEARCH_ENTRIES: usize = 32768;
/// Largest chunk of directory read at once.
const DIR_CHUNK: usize = 4096;

const FAT12_MAX: u32 = 0xFF4;
const FAT16_MAX: u32 = 0xFFF4;
const FAT32_MAX: u32 = 0x0FFF_FFF6;

/// The facts of a plausible BPB.
struct Bpb {
    sector_size: u32,
    cluster_size: u32,
    reserved: u32,
    fat_size: u32,
    cluster_count: u32,
}

/// Is this 512-byte sector 0 a FAT boot sector (as libblkid's
/// `blkid_probe_is_vfat`, which keeps it from being read as an MBR)?
pub(crate) fn is_fat_boot_sector(bs: &[u8]) -> bool {
    valid_bpb(bs).is_some()
}

/// Which signature matched, as in libblkid's magic table; `strong` when it is a
/// type string rather than a jump byte or the boot signature.
fn magic(bs: &[u8]) -> Option<bool> {
    const STRONG: [(usize, &[u8]); 6] = [
        (BS32_FIL_SYS_TYPE, b"MSWIN"),
        (BS32_FIL_SYS_TYPE, b"FAT32   "),
        (BS16_FIL_SYS_TYPE, b"MSDOS"),
        (BS16_FIL_SYS_TYPE, b"FAT16   "),
        (BS16_FIL_SYS_TYPE, b"FAT12   "),
        (BS16_FIL_SYS_TYPE, b"FAT     "),
    ];
    if STRONG.iter().any(|(off, m)| bytes::has(bs, *off, m)) {
        return Some(true);
    }
    let weak = bytes::has(bs, 0, &[0xEB])
        || bytes::has(bs, 0, &[0xE9])
        || bytes::has(bs, BS_SIGNATURE, &[0x55, 0xAA]);
    weak.then_some(false)
}

/// The BPB checks of libblkid's `fat_valid_superblock`. Its arithmetic is 32-bit
/// and wraps; so does ours, to decide alike.
fn valid_bpb(bs: &[u8]) -> Option<Bpb> {
    let strong = magic(bs)?;
    if !strong {
        // Old floppies have a valid boot signature; OS/2 puts a FAT-like BPB in
        // front of JFS and HPFS.
        if !bytes::has(bs, BS_SIGNATURE, &[0x55, 0xAA])
            || bytes::has(bs, BS16_FIL_SYS_TYPE, b"JFS     ")
            || bytes::has(bs, BS16_FIL_SYS_TYPE, b"HPFS    ")
        {
            return None;
        }
    }
    let num_fats = u32::from(*bs.get(BPB_NUM_FATS)?);
    let reserved = u32::from(le16(bs, BPB_RSVD_SEC_CNT));
    let media = *bs.get(BPB_MEDIA)?;
    let cluster_size = u32::from(*bs.get(BPB_SEC_PER_CLUS)?);
    let sector_size = u32::from(le16(bs, BPB_BYTS_PER_SEC));
    if num_fats == 0
        || reserved == 0
        || !(media >= 0xF8 || media == 0xF0)
        || !cluster_size.is_power_of_two()
        || !sector_size.is_power_of_two()
        || !(512..=4096).contains(&sector_size)
    {
        return None;
    }
    let dir_entries = u32::from(le16(bs, BPB_ROOT_ENT_CNT));
    let mut sect_count = u32::from(le16(bs, BPB_TOT_SEC16));
    if sect_count == 0 {
        sect_count = le32(bs, BPB_TOT_SEC32);
    }
    let fat_sz16 = u32::from(le16(bs, BPB_FAT_SZ16));
    let fat_sz32 = le32(bs, BPB_FAT_SZ32);
    let fat_length = if fat_sz16 == 0 { fat_sz32 } else { fat_sz16 };
    let fat_size = fat_length.wrapping_mul(num_fats);
    let dir_size = (dir_entries * DIR_ENTRY_SIZE as u32).div_ceil(sector_size);
    let cluster_count = sect_count
        .wrapping_sub(reserved.wrapping_add(fat_size).wrapping_add(dir_size))
        / cluster_size;
    let max_count = if fat_sz16 == 0 && fat_sz32 != 0 {
        FAT32_MAX
    } else if cluster_count > FAT12_MAX {
        FAT16_MAX
    } else {
        FAT12_MAX
    };
    if cluster_count > max_count {
        return None;
    }
    // BitLocker keeps a FAT-like BPB.
    if bytes::has(bs, 3, b"-FVE-FS-") {
        return None;
    }
    Some(Bpb {
        sector_size,
        cluster_size,
        reserved,
        fat_size,
        cluster_count,
    })
}

/// Probe for FAT; `None` when it is not one.
pub(super) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(bs) = bytes::read_opt(dev, 0, 512)? else {
        return Ok(None);
    };
    let Some(bpb) = valid_bpb(&bs) else {
        return Ok(None);
    };
    let fat_sz16 = le16(&bs, BPB_FAT_SZ16);
    let fat_sz32 = le32(&bs, BPB_FAT_SZ32);
    let mut info = FsInfo::new(FsType::Vfat);
    let sector_size = u64::from(bpb.sector_size);
    if fat_sz16 != 0 {
        let root_start = (u64::from(bpb.reserved) + u64::from(bpb.fat_size)) * sector_size;
        let entries = usize::from(le16(&bs, BPB_ROOT_ENT_CNT));
        let mut budget = MAX_LABEL_SEARCH_ENTRIES;
        info.label = search_label(dev, root_start, entries, &mut budget)?;
        let sig = bs.get(BS16_BOOT_SIG).copied().unwrap_or(0);
        if sig == 0x28 || sig == 0x29 {
            info.uuid = serial(&bs, BS16_VOL_ID);
        }
        info.version = if bpb.cluster_count < FAT12_MAX {
            Some("FAT12".into())
        } else if bpb.cluster_count < FAT16_MAX {
            Some("FAT16".into())
        } else {
            None
        };
    } else if fat_sz32 != 0 {
        let cluster_bytes = u64::from(bpb.cluster_size) * sector_size;
        let data_start = (u64::from(bpb.reserved) + u64::from(bpb.fat_size)) * sector_size;
        let fat_start = u64::from(bpb.reserved) * sector_size;
        let fat_entries = u64::from(fat_sz32) * sector_size / 4;
        let mut next = u64::from(le32(&bs, BPB_ROOT_CLUS));
        let mut budget = MAX_LABEL_SEARCH_ENTRIES;
        for _ in 0..MAX_ROOT_CLUSTERS {
            if next < 2 || next >= fat_entries || budget == 0 {
                break;
            }
            let off = data_start + (next - 2) * cluster_bytes;
            // OK to cast: at most 128 sectors of 4096 bytes.
            let label = search_label(
                dev,
                off,
                cluster_bytes as usize / DIR_ENTRY_SIZE,
                &mut budget,
            )?;
            if label.is_some() {
                info.label = label;
                break;
            }
            match bytes::read_opt(dev, fat_start + next * 4, 4)? {
                Some(e) => next = u64::from(le32(&e, 0) & 0x0FFF_FFFF),
                None => break,
            }
        }
        info.version = Some("FAT32".into());
        info.uuid = serial(&bs, BS32_VOL_ID);
        // A FAT32 FSInfo sector has its signatures, or is all zero there.
        let fsinfo = u64::from(le16(&bs, BPB_FS_INFO));
        if fsinfo != 0 {
            let Some(fsi) = bytes::read_opt(dev, fsinfo * sector_size, 512)? else {
                return Ok(None);
            };
            let lead = bytes::slice(&fsi, FSI_LEAD_SIG, 4);
            let struc = bytes::slice(&fsi, FSI_STRUC_SIG, 4);
            if !(lead == b"RRaA" || lead == b"RRdA" || lead == [0; 4])
                || !(struc == b"rrAa" || struc == [0; 4])
            {
                return Ok(None);
            }
        }
    }
    Ok(Some(info))
}

/// The serial at `off` as `XXXX-XXXX`, or `None` when zero.
fn serial(bs: &[u8], off: usize) -> Option<String> {
    let s = bytes::slice(bs, off, 4);
    if s.len() != 4 || s.iter().all(|&b| b == 0) {
        return None;
    }
    Some(format!("{:02X}{:02X}-{:02X}{:02X}", s[3], s[2], s[1], s[0]))
}

/// Look for the volume-label entry among `entries` directory entries at `off`,
/// stopping at the first never-used entry, the device's end, or when `budget`
/// entries have been read in all.
fn search_label<D: ReadAt + ?Sized>(
    dev: &D,
    off: u64,
    entries: usize,
    budget: &mut usize,
) -> Result<Option<String>> {
    let mut done = 0usize;
    while done < entries && *budget > 0 {
        let n = (entries - done)
            .min(DIR_CHUNK / DIR_ENTRY_SIZE)
            .min(*budget);
        *budget -= n;
        let chunk_off = off + (done * DIR_ENTRY_SIZE) as u64;
        let Some(chunk) = bytes::read_opt(dev, chunk_off, n * DIR_ENTRY_SIZE)? else {
            return Ok(None);
        };
        for ent in chunk.chunks_exact(DIR_ENTRY_SIZE) {
            let first = ent.get(DIR_NAME).copied().unwrap_or(0);
            if first == 0 {
                return Ok(None);
            }
            let attr = ent.get(DIR_ATTR).copied().unwrap_or(0);
            if first == ENTRY_FREE
                || le16(ent, DIR_FST_CLUS_HI) != 0
                || le16(ent, DIR_FST_CLUS_LO) != 0
                || attr & ATTR_MASK == ATTR_LONG_NAME
            {
                continue;
            }
            if attr & (ATTR_VOLUME_ID | ATTR_DIRECTORY) == ATTR_VOLUME_ID {
                let mut name = bytes::slice(ent, DIR_NAME, 11).to_vec();
                if name.first() == Some(&0x05) {
                    name[0] = ENTRY_FREE;
                }
                return Ok(fat_label(&name));
            }
        }
        done += n;
    }
    Ok(None)
}

/// A FAT label: 8-bit OEM characters, blank-padded. Bytes above 0x7F are taken as
/// Latin-1 (blkid passes them through raw).
fn fat_label(raw: &[u8]) -> Option<String> {
    let s: String = raw
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| char::from(b))
        .collect();
    let t = s.trim_end();
    (!t.is_empty()).then(|| t.to_string())
}

//! Optical-media filesystems: ISO 9660 (with Joliet and High Sierra) and UDF,
//! read from their volume descriptors at 32 KiB as libblkid reads them (ECMA-119,
//! ECMA-167 and OSTA UDF are the layouts' documentation). Both may share a
//! device (hybrid media), which blkid accepts.
//!
//! ISO 9660: the label is the primary volume id, or with a Joliet supplementary
//! descriptor the Joliet (UTF-16BE) id merged with the primary one as blkid
//! merges them (Joliet keeps 16 characters, the primary 32 in a subset of
//! ASCII); the UUID is the modification (else creation) date
//! `YYYY-MM-DD-HH-MM-SS-CC`; the version is `Joliet Extension` when there is one.
//! UDF: the block size is found from the anchor at sector 256 (or 512) for 512,
//! 1024, 2048 and 4096-byte blocks; the label is the logical volume id, the
//! UUID is made from the volume set id, the version is the highest UDF revision
//! of the logical volume descriptor and its integrity descriptor. At most
//! [`MAX_UDF_DESCRIPTORS`] descriptors of the sequence are read.

use super::bytes;
use super::{FsInfo, FsType, Label};
use crate::bytes::{le16, le32};
use crate::disk::ReadAt;
use crate::error::Result;

const VD_START: u64 = 0x8000;
const ISO_SECTOR: u64 = 0x800;
/// Volume descriptors read before giving up on a terminator.
const ISO_VD_MAX: u64 = 16;
const ISO_VD_BOOT_RECORD: u8 = 0;
const ISO_VD_PRIMARY: u8 = 1;
const ISO_VD_SUPPLEMENTARY: u8 = 2;
const ISO_VD_END: u8 = 0xFF;

// Volume descriptor fields (ECMA-119 8.4, 8.5).
const VD_TYPE: usize = 0;
const VD_ID: usize = 1;
const VD_VOLUME_ID: usize = 40;
const VD_ID_LEN: usize = 32;
const VD_ESCAPE_SEQUENCES: usize = 88;
const VD_CREATED: usize = 813;
const VD_MODIFIED: usize = 830;
const VD_READ: usize = 847;
/// High Sierra: `"CDROM"` at byte 9 of the descriptor, the volume id at 48.
const HSFS_ID: usize = 9;
const HSFS_VOLUME_ID: usize = 48;

/// Probe for ISO 9660.
pub(super) fn probe_iso9660<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(first) = bytes::read_opt(dev, VD_START, VD_READ)? else {
        return Ok(None);
    };
    if bytes::has(&first, HSFS_ID, b"CDROM") && !bytes::has(&first, VD_ID, b"CD001") {
        let mut info = FsInfo::new(FsType::Iso9660);
        info.version = Some("High Sierra".into());
        info.label = Label::from_raw(bytes::slice(&first, HSFS_VOLUME_ID, VD_ID_LEN));
        return Ok(Some(info));
    }
    if !bytes::has(&first, VD_ID, b"CD001") {
        return Ok(None);
    }
    let (mut pvd, mut joliet, mut boot) = (None, None, false);
    for i in 0..ISO_VD_MAX {
        let Some(d) = bytes::read_opt(dev, VD_START + i * ISO_SECTOR, VD_READ)? else {
            break;
        };
        match d[VD_TYPE] {
            ISO_VD_END => break,
            ISO_VD_BOOT_RECORD if !boot => boot = true,
            ISO_VD_PRIMARY if pvd.is_none() => pvd = Some(d),
            ISO_VD_SUPPLEMENTARY if joliet.is_none() => {
                let esc = bytes::slice(&d, VD_ESCAPE_SEQUENCES, 3);
                if esc == b"%/@" || esc == b"%/C" || esc == b"%/E" {
                    joliet = Some(d);
                }
            }
            _ => {}
        }
        if boot && pvd.is_some() && joliet.is_some() {
            break;
        }
    }
    let Some(pvd) = pvd else {
        return Ok(None);
    };
    let mut info = FsInfo::new(FsType::Iso9660);
    info.uuid = date_uuid(&pvd, VD_MODIFIED)
        .or_else(|| date_uuid(&pvd, VD_CREATED))
        .flatten();
    let ascii = bytes::slice(&pvd, VD_VOLUME_ID, VD_ID_LEN);
    info.label = match &joliet {
        Some(j) => {
            let utf16 = bytes::slice(j, VD_VOLUME_ID, VD_ID_LEN);
            match merge_utf16be_ascii(utf16, ascii) {
                Some(merged) => Label::from_utf16be(&merged),
                None => Label::from_utf16be(utf16),
            }
        }
        None => Label::from_raw(ascii),
    };
    if joliet.is_some() {
        info.version = Some("Joliet Extension".into());
    }
    Ok(Some(info))
}

/// The UUID blkid makes of a volume date (`YYYYMMDDHHMMSSCC` and a zone byte):
/// `None` when the date is unset (all `'0'` and zone 0), so that the other date
/// is tried; `Some(None)` when it is all zero bytes (blkid then sets no UUID).
fn date_uuid(vd: &[u8], at: usize) -> Option<Option<String>> {
    let d = bytes::slice(vd, at, 17);
    let digits = d.get(..16)?;
    if digits.iter().all(|&b| b == b'0') && d.get(16) == Some(&0) {
        return None;
    }
    if digits.iter().all(|&b| b == 0) {
        return Some(None);
    }
    let c = |r: std::ops::Range<usize>| -> String {
        digits
            .get(r)
            .unwrap_or(&[])
            .iter()
            .map(|&b| char::from(b))
            .collect()
    };
    Some(Some(format!(
        "{}-{}-{}-{}-{}-{}-{}",
        c(0..4),
        c(4..6),
        c(6..8),
        c(8..10),
        c(10..12),
        c(12..14),
        c(14..16)
    )))
}

/// blkid's reconstruction of a label from its Joliet (UTF-16BE, 16 characters)
/// and primary (ASCII with `_` for what it cannot represent, 32 characters)
/// forms: where they agree ignoring case, the Joliet characters, then the rest
/// of the primary id. `None` when they disagree.
fn merge_utf16be_ascii(utf16: &[u8], ascii: &[u8]) -> Option<Vec<u8>> {
    let len = ascii.len().min(utf16.len());
    let mut out = Vec::with_capacity(4 * len);
    let (mut a, mut u) = (0, 0);
    while u + 1 < len && a < len {
        let hi = |i: usize| utf16.get(i).copied().unwrap_or(0);
        // A surrogate pair stands for one primary character.
        if (0xD8..=0xDB).contains(&hi(u)) && u + 3 < len && (0xDC..=0xDF).contains(&hi(u + 2)) {
            out.extend_from_slice(&[hi(u), hi(u + 1)]);
            u += 2;
        }
        let (h, l, c) = (hi(u), hi(u + 1), ascii[a]);
        if c == b'_' {
            out.extend_from_slice(&[h, l]);
        } else if h == 0 && l == b'_' {
            out.extend_from_slice(&[0, c]);
        } else if h == 0 && c.eq_ignore_ascii_case(&l) {
            out.extend_from_slice(&[0, if c.is_ascii_uppercase() { l } else { c }]);
        } else {
            return None;
        }
        a += 1;
        u += 2;
    }
    for &c in &ascii[a..] {
        out.extend_from_slice(&[0, c]);
    }
    Some(out)
}

/// UDF block sizes tried, as blkid tries them for an image file.
const UDF_BLOCK_SIZES: [u64; 4] = [512, 1024, 2048, 4096];
/// Volume structure descriptors scanned for `NSR02`/`NSR03`.
const UDF_VSD_MAX: u64 = 64;
/// Descriptors of the volume descriptor sequence read at most.
pub const MAX_UDF_DESCRIPTORS: u32 = 256;
const UDF_VD_READ: usize = 512;

const TAG_ID: usize = 0;
const TAG_LOCATION: usize = 12;
const TAG_ID_PVD: u16 = 1;
const TAG_ID_AVDP: u16 = 2;
const TAG_ID_LVD: u16 = 6;
const TAG_ID_TD: u16 = 8;
const TAG_ID_LVID: u16 = 9;
const AVDP_LENGTH: usize = 16;
const AVDP_LOCATION: usize = 20;
// Primary volume descriptor.
const PVD_VOLSET_ID: usize = 72;
const PVD_DESC_CHARSET: usize = 200;
// Logical volume descriptor.
const LVD_DESC_CHARSET: usize = 20;
const LVD_LOGVOL_ID: usize = 84;
const LVD_DOMAIN_ID: usize = 217;
const LVD_UDF_REV: usize = 240;
const LVD_NUM_PARTITION_MAPS: usize = 268;
const LVD_LVID_LENGTH: usize = 432;
const LVD_LVID_LOCATION: usize = 436;
/// `sizeof(struct volume_descriptor)` in blkid: an LVID shorter is ignored.
const UDF_VD_SIZE: u32 = 440;
// Logical volume integrity descriptor and its implementation use.
const LVID_NUM_PARTITIONS: usize = 72;
const LVID_IMP_USE_LENGTH: usize = 76;
const LVID_IMP_USE: u64 = 80;
const LVIDIU_SIZE: u32 = 46;
const LVIDIU_MIN_READ_REV: usize = 40;
const LVIDIU_MIN_WRITE_REV: usize = 42;
const DSTRING128: usize = 128;

/// Probe for UDF.
pub(super) fn probe_udf<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<FsInfo>> {
    let Some(first) = bytes::read_opt(dev, VD_START, 7)? else {
        return Ok(None);
    };
    let known = |id: &[u8]| {
        [b"BEA01", b"BOOT2", b"CD001", b"CDW02", b"TEA01"]
            .iter()
            .any(|k| id == *k)
    };
    let first_id = bytes::slice(&first, VD_ID, 5);
    if !known(first_id) && first_id != b"NSR02" && first_id != b"NSR03" {
        return Ok(None);
    }
    let mut vsd_2048: Option<bool> = None;
    let mut anchor = None;
    for bs in UDF_BLOCK_SIZES {
        let vsd_len = bs.max(2048);
        let has_nsr = match (vsd_len, vsd_2048) {
            (2048, Some(v)) => v,
            _ => {
                let mut nsr = false;
                for b in 0..UDF_VSD_MAX {
                    let Some(v) = bytes::read_opt(dev, VD_START + b * vsd_len, 7)? else {
                        break;
                    };
                    let id = bytes::slice(&v, VD_ID, 5);
                    if id.first() == Some(&0) {
                        break;
                    }
                    if id == b"NSR02" || id == b"NSR03" {
                        nsr = true;
                        break;
                    }
                    if !known(id) {
                        break;
                    }
                }
                if vsd_len == 2048 {
                    vsd_2048 = Some(nsr);
                }
                nsr
            }
        };
        if !has_nsr {
            continue;
        }
        for sector in [256u64, 512] {
            let Some(vd) = bytes::read_opt(dev, sector * bs, UDF_VD_READ)? else {
                continue;
            };
            if u64::from(le32(&vd, TAG_LOCATION)) == sector && le16(&vd, TAG_ID) == TAG_ID_AVDP {
                anchor = Some((bs, vd));
                break;
            }
        }
        if anchor.is_some() {
            break;
        }
    }
    let Some((bs, avdp)) = anchor else {
        return Ok(None);
    };
    let mut info = FsInfo::new(FsType::Udf);
    let count = (u64::from(le32(&avdp, AVDP_LENGTH)) / bs).min(u64::from(MAX_UDF_DESCRIPTORS));
    let loc = u64::from(le32(&avdp, AVDP_LOCATION));
    let mut udf_rev = 0u16;
    let mut lvid: Option<(u32, u32)> = None;
    for b in 0..count {
        let Some(vd) = bytes::read_opt(dev, (loc + b) * bs, UDF_VD_READ)? else {
            break;
        };
        let tag = le16(&vd, TAG_ID);
        if tag == 0 || u64::from(le32(&vd, TAG_LOCATION)) != loc + b || tag == TAG_ID_TD {
            break;
        }
        if tag == TAG_ID_PVD && info.uuid.is_none() && is_osta_charset(&vd, PVD_DESC_CHARSET) {
            info.uuid = uuid_from_volset_id(bytes::slice(&vd, PVD_VOLSET_ID, DSTRING128));
        } else if tag == TAG_ID_LVD {
            if lvid.is_none() && le32(&vd, LVD_NUM_PARTITION_MAPS) != 0 {
                lvid = Some((le32(&vd, LVD_LVID_LENGTH), le32(&vd, LVD_LVID_LOCATION)));
            }
            let domain = bytes::slice(&vd, LVD_DOMAIN_ID, 23);
            if udf_rev == 0 && c_str(domain) == b"*OSTA UDF Compliant" {
                udf_rev = le16(&vd, LVD_UDF_REV);
            }
            if info.label.is_none() && is_osta_charset(&vd, LVD_DESC_CHARSET) {
                info.label = dstring(bytes::slice(&vd, LVD_LOGVOL_ID, DSTRING128));
            }
        }
    }
    if let Some((_, loc)) = lvid.filter(|&(len, loc)| loc != 0 && len >= UDF_VD_SIZE) {
        let at = u64::from(loc) * bs;
        if let Some(vd) = bytes::read_opt(dev, at, UDF_VD_READ)? {
            let parts = u64::from(le32(&vd, LVID_NUM_PARTITIONS));
            if le16(&vd, TAG_ID) == TAG_ID_LVID
                && le32(&vd, TAG_LOCATION) == loc
                && le32(&vd, LVID_IMP_USE_LENGTH) >= LVIDIU_SIZE
            {
                let iu_at = at + LVID_IMP_USE + 8 * parts;
                if let Some(iu) = bytes::read_opt(dev, iu_at, LVIDIU_SIZE as usize)? {
                    for rev in [
                        le16(&iu, LVIDIU_MIN_READ_REV),
                        le16(&iu, LVIDIU_MIN_WRITE_REV),
                    ] {
                        udf_rev = udf_rev.max(rev);
                    }
                }
            }
        }
    }
    if udf_rev != 0 {
        info.version = Some(format!("{:x}.{:02x}", udf_rev >> 8, udf_rev & 0xFF));
    }
    Ok(Some(info))
}

/// The bytes of a C string field up to its first NUL.
fn c_str(b: &[u8]) -> &[u8] {
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

/// Is the charspec at `at` OSTA Compressed Unicode (type 0)?
fn is_osta_charset(vd: &[u8], at: usize) -> bool {
    vd.get(at) == Some(&0) && c_str(bytes::slice(vd, at + 1, 63)) == b"OSTA Compressed Unicode"
}

/// The characters of a 128-byte dstring: compression id, characters, and the
/// used length in the last byte (which counts the id).
fn dstring_chars(d: &[u8]) -> Option<(u8, &[u8])> {
    let cid = *d.first()?;
    let clen = usize::from(*d.last()?).saturating_sub(1).min(d.len() - 2);
    Some((cid, d.get(1..1 + clen)?))
}

/// A dstring decoded to a label: id 8 is Latin-1, id 16 UTF-16BE.
fn dstring(d: &[u8]) -> Option<Label> {
    match dstring_chars(d)? {
        (8, c) => Label::from_latin1(c),
        (16, c) => Label::from_utf16be(c),
        _ => None,
    }
}

/// blkid's UUID from the volume set id: its first 16 UTF-8 bytes, lower-cased
/// where they are hex digits (the first 8 hex-encoded when they are not, the
/// next 4 hex-encoded when only those are not).
fn uuid_from_volset_id(d: &[u8]) -> Option<String> {
    let text = match dstring_chars(d)? {
        (8, c) => c
            .iter()
            .take_while(|&&b| b != 0)
            .map(|&b| char::from(b))
            .collect(),
        (16, c) => {
            let units: Vec<u16> = c
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .take_while(|&u| u != 0)
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => return None,
    };
    // blkid encodes into a 17-byte buffer: whole characters, 16 bytes at most.
    let mut buf = Vec::with_capacity(16);
    for ch in text.chars() {
        let mut tmp = [0u8; 4];
        let enc = ch.encode_utf8(&mut tmp).as_bytes();
        if buf.len() + enc.len() > 16 {
            break;
        }
        buf.extend_from_slice(enc);
    }
    if buf.len() < 8 {
        return None;
    }
    buf.resize(16, 0);
    let nonhex = buf
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(16);
    let lower = |r: std::ops::Range<usize>| -> String {
        buf[r]
            .iter()
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect()
    };
    let hex = |r: std::ops::Range<usize>| -> String {
        buf[r].iter().map(|b| format!("{b:02x}")).collect()
    };
    Some(if nonhex < 8 {
        hex(0..8)
    } else if nonhex < 16 {
        format!("{}{}", lower(0..8), hex(8..12))
    } else {
        lower(0..16)
    })
}

//! Partition tables domuify does not read but names: BSD disklabels (on the
//! whole disk, or nested in an MBR slice of type 0xa5 FreeBSD, 0xa6 OpenBSD or
//! 0xa9 NetBSD), Sun and SGI disklabels, and Atari root sectors, recognised as
//! libblkid recognises them. Their partitions are not listed: the table is named
//! so that a disk is never reported as holding no table when it holds one.
//!
//! Each check reads one or two 512-byte sectors at fixed offsets:
//! - BSD: the magic `0x82564557` (little-endian) at byte 512 of the disk or
//!   slice, or at byte 64 or 128 of its first sector;
//! - Sun: the magic `0xDABE` (big-endian) at byte 508 of sector 0, and the XOR
//!   of the sector's 256 16-bit words is zero;
//! - SGI: the magic `0x0BE5A941` (big-endian) at byte 0, and the sum of the
//!   sector's 128 big-endian 32-bit words is zero;
//! - Atari (512-byte sectors only): the root sector's disk size is at least 2
//!   sectors and not beyond the disk, its bad-sector list (if any) fits it, and
//!   one of its four entries is active with an alphanumeric id and a start and
//!   size inside it.

use serde::Serialize;

use super::{Partition, Slot};
use crate::bytes::{be16, be32, le32};
use crate::disk::ReadAt;
use crate::error::Result;
use crate::probe::bytes;

/// A partition table found and not read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ForeignTable {
    /// blkid's name: `"bsd"`, `"freebsd"`, `"openbsd"`, `"netbsd"`, `"sun"`,
    /// `"sgi"`, `"atari"`.
    pub name: &'static str,
    /// Byte offset of the label on the disk.
    pub offset: u64,
    /// The MBR partition holding it (a BSD slice), or `None` for the whole disk.
    pub partition: Option<u32>,
}

const BSD_MAGIC: u32 = 0x8256_4557;
/// Where a BSD label's magic may be, relative to the disk or slice.
const BSD_MAGIC_OFFSETS: [u64; 3] = [512, 64, 128];
const SUN_MAGIC: u16 = 0xDABE;
const SUN_MAGIC_OFFSET: usize = 508;
const SGI_MAGIC: u32 = 0x0BE5_A941;
const SECTOR: usize = 512;

// Atari root sector.
const ATARI_HD_SIZE: usize = 0x1C2;
const ATARI_PART: usize = 0x1C6;
const ATARI_PART_SIZE: usize = 12;
const ATARI_BSL_START: usize = 0x1F6;
const ATARI_BSL_LEN: usize = 0x1FA;

/// MBR types of BSD slices, and the name blkid gives their label.
const BSD_SLICES: [(u8, &str); 3] = [(0xa5, "freebsd"), (0xa6, "openbsd"), (0xa9, "netbsd")];

/// A table other than MBR and GPT on the whole disk, when `dev` holds neither.
pub(super) fn whole_disk<D: ReadAt + ?Sized>(
    dev: &D,
    sector_size: u32,
) -> Result<Option<ForeignTable>> {
    let Some(s0) = bytes::read_opt(dev, 0, SECTOR)? else {
        return Ok(None);
    };
    let found = |name| {
        Some(ForeignTable {
            name,
            offset: 0,
            partition: None,
        })
    };
    if be32(&s0, 0) == SGI_MAGIC && sum_be32(&s0) == 0 {
        return Ok(found("sgi"));
    }
    if be16(&s0, SUN_MAGIC_OFFSET) == SUN_MAGIC && xor16(&s0) == 0 {
        return Ok(found("sun"));
    }
    if let Some(off) = bsd_label(dev, 0)? {
        return Ok(Some(ForeignTable {
            name: "bsd",
            offset: off,
            partition: None,
        }));
    }
    if sector_size == 512 && is_atari(&s0, dev.size() / 512) {
        return Ok(found("atari"));
    }
    Ok(None)
}

/// BSD labels nested in the MBR slices of `parts`.
pub(super) fn nested<D: ReadAt + ?Sized>(
    dev: &D,
    parts: &[Partition],
) -> Result<Vec<ForeignTable>> {
    let mut out = Vec::new();
    for p in parts.iter().filter(|p| p.slot == Slot::Primary) {
        let Some(&(_, name)) = BSD_SLICES
            .iter()
            .find(|(t, _)| p.type_id == format!("0x{t:02x}"))
        else {
            continue;
        };
        let Some(w) = p.readable_window(dev) else {
            continue;
        };
        if let Some(off) = bsd_label(&w, 0)? {
            out.push(ForeignTable {
                name,
                offset: p.start_bytes + off,
                partition: Some(p.number),
            });
        }
    }
    Ok(out)
}

/// The offset of a BSD label's magic in `dev`, if there is one.
fn bsd_label<D: ReadAt + ?Sized>(dev: &D, base: u64) -> Result<Option<u64>> {
    for off in BSD_MAGIC_OFFSETS {
        if let Some(m) = bytes::read_opt(dev, base + off, 4)? {
            if le32(&m, 0) == BSD_MAGIC {
                return Ok(Some(base + off));
            }
        }
    }
    Ok(None)
}

fn xor16(s: &[u8]) -> u16 {
    s.chunks_exact(2)
        .fold(0, |acc, w| acc ^ u16::from_be_bytes([w[0], w[1]]))
}

fn sum_be32(s: &[u8]) -> u32 {
    s.chunks_exact(4).fold(0u32, |acc, w| {
        acc.wrapping_add(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    })
}

/// A start and size inside `max` sectors, both non-zero, not wrapping.
fn fits(start: u32, size: u32, max: u32) -> bool {
    let end = u64::from(start) + u64::from(size);
    start > 0 && start <= max && size > 0 && size <= max && end <= u64::from(max)
}

fn is_atari(s0: &[u8], disk_sectors: u64) -> bool {
    if disk_sectors > i32::MAX as u64 {
        return false;
    }
    let rssize = be32(s0, ATARI_HD_SIZE);
    if rssize < 2 || u64::from(rssize) > disk_sectors {
        return false;
    }
    let (bsl_start, bsl_len) = (be32(s0, ATARI_BSL_START), be32(s0, ATARI_BSL_LEN));
    if (bsl_start != 0 || bsl_len != 0) && !fits(bsl_start, bsl_len, rssize) {
        return false;
    }
    (0..4).any(|i| {
        let e = bytes::slice(s0, ATARI_PART + i * ATARI_PART_SIZE, ATARI_PART_SIZE);
        e.len() == ATARI_PART_SIZE
            && e[0] & 1 != 0
            && e[1..4].iter().all(u8::is_ascii_alphanumeric)
            && fits(be32(e, 4), be32(e, 8), rssize)
    })
}

#[cfg(test)]
mod tests {
    //! Sun and SGI labels made by sfdisk, a BSD label made by fdisk inside an
    //! MBR slice of type 0xa5, an Atari root sector written from its layout
    //! (Atari's AHDI documentation, as libblkid reads it); blkid -p names each
    //! (libfdisk the BSD label).
    use std::path::Path;

    use crate::part::{read_table, TableKind};
    use crate::probe::testutil::{mem, patch, run, sparse};

    fn pttype(img: &Path) -> Option<String> {
        let out = std::process::Command::new("blkid")
            .args(["-p", "-o", "udev"])
            .arg(img)
            .output()
            .expect("blkid");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("ID_PART_TABLE_TYPE=").map(str::to_string))
    }

    fn named(img: &Path) -> Vec<(&'static str, u64, Option<u32>)> {
        let t = read_table(&mem(img), 512).expect("table");
        t.foreign
            .iter()
            .map(|f| (f.name, f.offset, f.partition))
            .collect()
    }

    #[test]
    fn sun_sgi_atari_and_whole_disk_bsd_are_named_like_blkid() {
        let dir = tempfile::tempdir().expect("tempdir");
        for label in ["sun", "sgi"] {
            let img = dir.path().join(label);
            sparse(&img, 64 << 20);
            run(
                "sfdisk",
                &["-q", &img.display().to_string()],
                Some(&format!("label: {label}\n")),
            );
            assert_eq!(pttype(&img).as_deref(), Some(label));
            let t = read_table(&mem(&img), 512).expect("table");
            assert_eq!(t.kind, TableKind::None);
            assert_eq!(named(&img), vec![(label, 0, None)]);
            // A label whose checksum no longer holds is not a table, for
            // blkid or for us.
            patch(&img, 64, b"x");
            assert_eq!(pttype(&img), None);
            assert!(named(&img).is_empty());
        }
        let img = dir.path().join("atari");
        sparse(&img, 8 << 20);
        let mut rs = vec![0u8; 512];
        rs[0x1C2..0x1C6].copy_from_slice(&16384u32.to_be_bytes());
        rs[0x1C6] = 1;
        rs[0x1C7..0x1CA].copy_from_slice(b"LNX");
        rs[0x1CA..0x1CE].copy_from_slice(&2u32.to_be_bytes());
        rs[0x1CE..0x1D2].copy_from_slice(&8000u32.to_be_bytes());
        patch(&img, 0, &rs);
        assert_eq!(pttype(&img).as_deref(), Some("atari"));
        assert_eq!(named(&img), vec![("atari", 0, None)]);
        // An entry past the root sector's disk size: no table.
        patch(&img, 0x1CE, &20000u32.to_be_bytes());
        assert_eq!(pttype(&img), None);
        assert!(named(&img).is_empty());
    }

    #[test]
    fn bsd_label_nested_in_an_mbr_slice_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = dir.path().join("bsd");
        sparse(&img, 64 << 20);
        let p = img.display().to_string();
        run(
            "sfdisk",
            &["-q", &p],
            Some("label: dos\nstart=2048, type=a5\n"),
        );
        // fdisk's BSD mode writes a disklabel into the slice.
        run("fdisk", &[&p], Some("b\ny\nw\n"));
        assert_eq!(named(&img), vec![("freebsd", 2048 * 512 + 512, Some(1))]);
        let t = read_table(&mem(&img), 512).expect("table");
        assert_eq!(t.kind, TableKind::Mbr);
        // The slice on its own, for libfdisk (blkid -p names no BSD table in
        // its type-only mode): a BSD disklabel.
        let slice = dir.path().join("slice");
        let bytes = std::fs::read(&img).expect("read");
        std::fs::write(&slice, &bytes[2048 * 512..]).expect("write");
        let listing = run("fdisk", &["-l", &slice.display().to_string()], None);
        assert!(listing.contains("Disklabel type: bsd"), "{listing}");
        assert_eq!(named(&slice), vec![("bsd", 512, None)]);
        // No magic, no label.
        patch(&slice, 512, &[0; 4]);
        assert!(named(&slice).is_empty());
    }
}

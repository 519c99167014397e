//! Partition-table tests. Images are made with sfdisk / fdisk / mkfs in temporary
//! directories; the judges are `sfdisk --json` (numbers, starts, sizes, types,
//! GUIDs, names), `partx` (libblkid's numbering and PARTUUIDs) and `blkid -p`
//! (whether there is a table at all). Damaged tables are made by patching those
//! images.

use std::path::Path;

use serde_json::Value;

use super::*;
use crate::disk::MemDisk;
use crate::probe::testutil::{blkid, mem, patch, peek, run, sparse};

/// sfdisk's view: (number, start bytes, size bytes, type, uuid, name).
type Judged = (u32, u64, u64, String, Option<String>, Option<String>);

fn sfdisk_json(img: &Path) -> Value {
    let out = run("sfdisk", &["--json", &img.display().to_string()], None);
    serde_json::from_str(&out).expect("sfdisk json")
}

fn judged(img: &Path) -> (String, Option<String>, Vec<Judged>) {
    let v = sfdisk_json(img);
    let t = &v["partitiontable"];
    let ss = t["sectorsize"].as_u64().expect("sectorsize");
    let label = t["label"].as_str().expect("label").to_string();
    let id = t["id"].as_str().map(str::to_string);
    let mut parts = Vec::new();
    for p in t["partitions"].as_array().into_iter().flatten() {
        let node = p["node"].as_str().expect("node");
        let digits: String = node
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let number: u32 = digits.parse().expect("number");
        let ty = p["type"].as_str().expect("type");
        // dos types print as hex without 0x ("83", "5"); ours are "0x83".
        let ty = if label == "dos" {
            format!("0x{:02x}", u8::from_str_radix(ty, 16).expect("hex type"))
        } else {
            ty.to_string()
        };
        parts.push((
            number,
            p["start"].as_u64().expect("start") * ss,
            p["size"].as_u64().expect("size") * ss,
            ty,
            p["uuid"].as_str().map(str::to_lowercase),
            p["name"].as_str().map(str::to_string),
        ));
    }
    parts.sort_by_key(|p| p.0);
    (label, id, parts)
}

fn ours(t: &PartitionTable) -> Vec<Judged> {
    t.partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.start_bytes,
                p.size_bytes,
                p.type_id.clone(),
                if t.kind == TableKind::Gpt {
                    p.partuuid.clone()
                } else {
                    None
                },
                p.partlabel.clone(),
            )
        })
        .collect()
}

/// partx (libblkid): number -> PARTUUID.
fn partx_uuids(img: &Path) -> Vec<(u32, String)> {
    let out = run(
        "partx",
        &["-g", "-o", "NR,UUID", "-r", &img.display().to_string()],
        None,
    );
    let mut v: Vec<(u32, String)> = out
        .lines()
        .filter_map(|l| {
            let (n, u) = l.split_once(' ')?;
            Some((n.parse().ok()?, u.to_string()))
        })
        .collect();
    v.sort();
    v
}

fn read(img: &Path) -> PartitionTable {
    read_table(&mem(img), 512).expect("read_table")
}

/// The seed's layout: hda1 non-Linux, hda2 swap, hda3 Linux (bootable), hda4
/// extended holding three logicals.
fn seed_mbr(dir: &Path) -> std::path::PathBuf {
    let img = dir.join("mbr.img");
    sparse(&img, 64 << 20);
    run(
        "sfdisk",
        &["-q", &img.display().to_string()],
        Some(
            "label: dos\nlabel-id: 0x1234abcd\n\
             size=4M, type=7\nsize=4M, type=82\nsize=8M, type=83, bootable\n\
             type=5\nsize=8M, type=83\nsize=4M, type=82\nsize=4M, type=83\n",
        ),
    );
    img
}

#[test]
fn mbr_with_logicals_matches_sfdisk_and_partx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = seed_mbr(dir.path());
    let t = read(&img);
    let (label, id, parts) = judged(&img);
    assert_eq!(label, "dos");
    assert_eq!(t.kind, TableKind::Mbr);
    assert_eq!(t.disk_id, id);
    assert_eq!(ours(&t), parts);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    let slots: Vec<(u32, Slot)> = t.partitions.iter().map(|p| (p.number, p.slot)).collect();
    assert_eq!(
        slots,
        vec![
            (1, Slot::Primary),
            (2, Slot::Primary),
            (3, Slot::Primary),
            (4, Slot::Extended),
            (5, Slot::Logical),
            (6, Slot::Logical),
            (7, Slot::Logical),
        ]
    );
    let uuids: Vec<(u32, String)> = t
        .partitions
        .iter()
        .map(|p| (p.number, p.partuuid.clone().expect("partuuid")))
        .collect();
    assert_eq!(uuids, partx_uuids(&img));
    assert!(t.partition(3).expect("3").bootable);
    assert!(!t.partition(1).expect("1").bootable);
    assert_eq!(
        t.partition(3).and_then(|p| p.type_name.as_deref()),
        Some("Linux")
    );
}

#[test]
fn mbr_empty_primary_slot_keeps_its_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = seed_mbr(dir.path());
    run(
        "sfdisk",
        &["-q", "--delete", &img.display().to_string(), "2"],
        None,
    );
    let t = read(&img);
    assert_eq!(ours(&t), judged(&img).2);
    assert!(t.partition(2).is_none());
    assert!(t.partition(5).is_some());
}

#[test]
fn mbr_zero_signature_has_no_partuuid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = seed_mbr(dir.path());
    patch(&img, 0x1B8, &[0, 0, 0, 0]);
    let t = read(&img);
    assert_eq!(t.disk_id, None);
    assert!(t.partitions.iter().all(|p| p.partuuid.is_none()));
    // libblkid gives no PARTUUID either.
    assert!(partx_uuids(&img).iter().all(|(_, u)| u.is_empty()));
}

/// Byte offsets of the EBRs of the seed image, in chain order.
fn ebr_offsets(img: &Path) -> Vec<u64> {
    let mbr = peek(img, 0, 512);
    let ext = mbr::entries(&mbr)[3];
    let ex_start = u64::from(ext.start_sect);
    let mut cur = ex_start;
    let mut out = Vec::new();
    for _ in 0..8 {
        out.push(cur * 512);
        let ebr = peek(img, cur * 512, 512);
        let link = mbr::entries(&ebr)[1];
        if link.nr_sects == 0 {
            break;
        }
        cur = ex_start + u64::from(link.start_sect);
    }
    out
}

#[test]
fn looping_ebr_chain_ends_with_a_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = seed_mbr(dir.path());
    let before = read(&img);
    let ebrs = ebr_offsets(&img);
    assert_eq!(ebrs.len(), 3);
    // Point the last EBR's link back to the first EBR (relative start 0).
    let link = ebrs[2] + 0x1BE + 16;
    patch(
        &img,
        link,
        &[0, 0, 0, 0, 0x05, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
    );
    let t = read(&img);
    assert_eq!(t.partitions, before.partitions, "all logicals read once");
    assert_eq!(t.problems.len(), 1, "{:?}", t.problems);
    assert!(t.problems[0].message.contains("loops"), "{:?}", t.problems);
    // Self-loop on the first EBR.
    patch(&img, ebrs[0] + 0x1BE + 16 + 8, &[0, 0, 0, 0]);
    let t = read(&img);
    assert_eq!(
        t.partitions
            .iter()
            .filter(|p| p.slot == Slot::Logical)
            .count(),
        1
    );
    assert!(t.problems[0].message.contains("loops"));
}

#[test]
fn ebr_chain_is_capped() {
    // A hand-made extended partition with 300 one-sector logicals.
    let n = 300u32;
    let mut disk = vec![0u8; (2 + 2 * n as usize + 2) * 512];
    disk[0x1FE] = 0x55;
    disk[0x1FF] = 0xAA;
    let ext_start = 2u32;
    let ext_size = 2 * n;
    let e = 0x1BE;
    disk[e + 4] = 0x05;
    disk[e + 8..e + 12].copy_from_slice(&ext_start.to_le_bytes());
    disk[e + 12..e + 16].copy_from_slice(&ext_size.to_le_bytes());
    for i in 0..n {
        let s = ((ext_start + 2 * i) * 512) as usize;
        disk[s + 0x1FE] = 0x55;
        disk[s + 0x1FF] = 0xAA;
        let d = s + 0x1BE;
        disk[d + 4] = 0x83;
        disk[d + 8..d + 12].copy_from_slice(&1u32.to_le_bytes());
        disk[d + 12..d + 16].copy_from_slice(&1u32.to_le_bytes());
        let l = d + 16;
        disk[l + 4] = 0x05;
        disk[l + 8..l + 12].copy_from_slice(&(2 * (i + 1)).to_le_bytes());
        disk[l + 12..l + 16].copy_from_slice(&2u32.to_le_bytes());
    }
    let t = read_table(&MemDisk::new(disk), 512).expect("read");
    let logicals = t
        .partitions
        .iter()
        .filter(|p| p.slot == Slot::Logical)
        .count();
    assert_eq!(logicals, mbr::MAX_LOGICALS);
    assert_eq!(
        t.partitions.last().map(|p| p.number),
        Some(4 + mbr::MAX_LOGICALS as u32)
    );
    assert!(!t.problems.is_empty());
}

#[test]
fn partitions_past_the_end_are_kept_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = seed_mbr(dir.path());
    let full = read(&img);
    // Cut the image inside partition 5 (after the EBR of 5, before that of 6).
    let p5 = full.partition(5).expect("5").clone();
    let cut = p5.start_bytes + p5.size_bytes / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .and_then(|f| f.set_len(cut))
        .expect("truncate");
    let t = read(&img);
    // Everything up to 5 is there with its declared size; the chain breaks after.
    let numbers: Vec<u32> = t.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
    assert_eq!(t.partition(5), Some(&p5));
    let msgs: Vec<&str> = t.problems.iter().map(|p| p.message.as_str()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("partition 4 extends past the end of the disk")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("partition 5 extends past the end of the disk")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("EBR")), "{msgs:?}");
    // sfdisk reads the same partitions and starts.
    let (_, _, parts) = judged(&img);
    assert_eq!(ours(&t), parts);
}

fn gpt_image(dir: &Path) -> std::path::PathBuf {
    let img = dir.join("gpt.img");
    sparse(&img, 32 << 20);
    run(
        "sfdisk",
        &["-q", &img.display().to_string()],
        Some(
            "label: gpt\nlabel-id: 01234567-89AB-CDEF-0123-456789ABCDEF\n\
             size=4M, type=U, name=\"EFI system\"\n\
             size=8M, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=\"root\"\n\
             size=4M, type=S, name=\"swap\"\n\
             size=4M, type=L, attrs=LegacyBIOSBootable\n",
        ),
    );
    img
}

#[test]
fn gpt_matches_sfdisk_and_partx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = gpt_image(dir.path());
    let t = read(&img);
    let (label, id, parts) = judged(&img);
    assert_eq!(label, "gpt");
    assert_eq!(t.kind, TableKind::Gpt);
    assert_eq!(t.disk_id, id.map(|s| s.to_lowercase()));
    assert_eq!(ours(&t), parts);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    let uuids: Vec<(u32, String)> = t
        .partitions
        .iter()
        .map(|p| (p.number, p.partuuid.clone().expect("partuuid")))
        .collect();
    assert_eq!(uuids, partx_uuids(&img));
    let names: Vec<Option<&str>> = t
        .partitions
        .iter()
        .map(|p| p.type_name.as_deref())
        .collect();
    assert_eq!(
        names,
        vec![
            Some("EFI System"),
            Some("Linux root (x86-64)"),
            Some("Linux swap"),
            Some("Linux filesystem")
        ]
    );
    assert!(t.partition(4).expect("4").bootable);
    assert!(t.partitions.iter().all(|p| p.slot == Slot::Gpt));
}

#[test]
fn gpt_numbers_by_slot_skipping_empty_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = gpt_image(dir.path());
    run(
        "sfdisk",
        &["-q", "--delete", &img.display().to_string(), "2"],
        None,
    );
    let t = read(&img);
    assert_eq!(ours(&t), judged(&img).2);
    let numbers: Vec<u32> = t.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, vec![1, 3, 4]);
}

/// Recompute the header CRC of the GPT header at `off` after a patch.
fn fix_header_crc(img: &Path, off: u64) {
    let mut h = peek(img, off, 92);
    h[0x10..0x14].fill(0);
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&h);
    patch(img, off + 0x10, &crc.to_le_bytes());
}

#[test]
fn damaged_primary_gpt_falls_back_to_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = gpt_image(dir.path());
    let good = read(&img);
    patch(&img, 512 + 0x38, &[0xFF; 4]); // disk GUID: header CRC now wrong
    let t = read(&img);
    assert_eq!(t.kind, TableKind::Gpt);
    assert_eq!(t.partitions, good.partitions);
    assert!(
        t.problems[0].message.contains("primary GPT header"),
        "{:?}",
        t.problems
    );
    assert!(t.problems[0].message.contains("CRC"), "{:?}", t.problems);
    assert!(
        t.problems[0].message.contains("backup header"),
        "{:?}",
        t.problems
    );
    assert_eq!(t.problems.len(), 1, "{:?}", t.problems);
    // The entries of the primary damaged instead: same outcome.
    let img2 = gpt_image(dir.path());
    let good = read(&img2);
    patch(&img2, 1024 + 40, &[0xAB]);
    let t = read(&img2);
    assert_eq!(t.partitions, good.partitions);
    assert!(
        t.problems[0].message.contains("entry array CRC32"),
        "{:?}",
        t.problems
    );
}

#[test]
fn damaged_backup_gpt_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = gpt_image(dir.path());
    let last = (32u64 << 20) - 512;
    patch(&img, last, b"GARBAGE!");
    let t = read(&img);
    assert_eq!(t.partitions.len(), 4);
    assert_eq!(t.problems.len(), 1, "{:?}", t.problems);
    assert!(t.problems[0].message.contains("backup GPT header"));
}

#[test]
fn both_gpt_headers_damaged_gives_gpt_without_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = gpt_image(dir.path());
    patch(&img, 512, b"GARBAGE!");
    patch(&img, (32u64 << 20) - 512, b"GARBAGE!");
    let t = read(&img);
    assert_eq!(t.kind, TableKind::Gpt);
    assert!(t.partitions.is_empty());
    assert_eq!(t.problems.len(), 2, "{:?}", t.problems);
}

#[test]
fn hostile_gpt_entry_counts_and_sizes_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (num, size) in [
        (0xFFFF_FFFFu32, 128u32),
        (128, 0),
        (128, 0xFFFF_FFF8),
        (0, 128),
        (128, 100),
    ] {
        let img = gpt_image(dir.path());
        // Both headers: nothing readable, nothing allocated beyond the cap.
        for off in [512u64, (32u64 << 20) - 512] {
            patch(&img, off + 0x50, &num.to_le_bytes());
            patch(&img, off + 0x54, &size.to_le_bytes());
            fix_header_crc(&img, off);
        }
        let t = read(&img);
        assert_eq!(t.kind, TableKind::Gpt);
        assert!(t.partitions.is_empty(), "{num} x {size}");
        assert_eq!(t.problems.len(), 2, "{num} x {size}: {:?}", t.problems);
    }
}

#[test]
fn gpt_with_4096_byte_sectors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("g4k.img");
    sparse(&img, 32 << 20);
    let path = img.display().to_string();
    run(
        "fdisk",
        &["-b", "4096", &path],
        Some("g\nn\n\n\n+4M\nn\n\n\n\nw\n"),
    );
    let listing = run(
        "fdisk",
        &["-b", "4096", "-l", "-o", "Device,Start,Sectors,UUID", &path],
        None,
    );
    let mut judged: Vec<(u64, u64, String)> = Vec::new();
    for l in listing.lines().filter(|l| l.starts_with(&path)) {
        let f: Vec<&str> = l.split_whitespace().collect();
        judged.push((
            f[1].parse::<u64>().expect("start") * 4096,
            f[2].parse::<u64>().expect("sectors") * 4096,
            f[3].to_lowercase(),
        ));
    }
    assert_eq!(judged.len(), 2);
    // Read as an image file (sector size 512 given): found at 4096 instead.
    for given in [512, 4096] {
        let t = read_table(&mem(&img), given).expect("read");
        assert_eq!(t.kind, TableKind::Gpt);
        assert_eq!(t.sector_size, 4096);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        let ours: Vec<(u64, u64, String)> = t
            .partitions
            .iter()
            .map(|p| {
                (
                    p.start_bytes,
                    p.size_bytes,
                    p.partuuid.clone().expect("uuid"),
                )
            })
            .collect();
        assert_eq!(ours, judged);
    }
    // The primary header destroyed: the backup is found in the last 4096-byte
    // sector.
    patch(&img, 4096, b"GARBAGE!");
    let t = read_table(&mem(&img), 512).expect("read");
    assert_eq!(t.sector_size, 4096);
    assert_eq!(t.partitions.len(), 2);
    assert!(
        t.problems[0].message.contains("primary GPT header"),
        "{:?}",
        t.problems
    );
}

#[test]
fn garbage_gpt_header_with_valid_protective_mbr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("pmbr.img");
    sparse(&img, 4 << 20);
    let mut mbr = vec![0u8; 512];
    mbr[0x1BE + 4] = 0xEE;
    mbr[0x1BE + 8] = 1;
    mbr[0x1BE + 12..0x1BE + 16].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    mbr[0x1FE] = 0x55;
    mbr[0x1FF] = 0xAA;
    patch(&img, 0, &mbr);
    let mut junk = b"EFI PART".to_vec();
    junk.extend((0..504u32).map(|i| (i * 7 + 3) as u8));
    patch(&img, 512, &junk);
    let t = read(&img);
    assert_eq!(t.kind, TableKind::Gpt);
    assert!(t.partitions.is_empty());
    assert!(!t.problems.is_empty());
}

#[test]
fn no_table_is_one_whole_disk_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A bare ext4: sector 0 is zero.
    let ext = dir.path().join("ext4.img");
    sparse(&ext, 8 << 20);
    run(
        "mke2fs",
        &["-q", "-t", "ext4", &ext.display().to_string()],
        None,
    );
    // A bare FAT: its boot sector ends in 0x55AA too.
    let fat = dir.path().join("fat.img");
    sparse(&fat, 8 << 20);
    run("mkfs.vfat", &[&fat.display().to_string()], None);
    for img in [&ext, &fat] {
        assert!(!blkid(img, None).contains_key("PTTYPE"), "judge: no table");
        let t = read(img);
        assert_eq!(t.kind, TableKind::None, "{}", img.display());
        assert_eq!(t.partitions.len(), 1);
        let p = &t.partitions[0];
        assert_eq!(
            (p.number, p.slot, p.start_bytes, p.size_bytes),
            (0, Slot::Whole, 0, 8 << 20)
        );
        assert_eq!(p.type_id, "");
    }
    // The MBR judged as one: the same disk with a table is read as such.
    let mbr = dir.path().join("mbr.img");
    sparse(&mbr, 8 << 20);
    run(
        "sfdisk",
        &["-q", &mbr.display().to_string()],
        Some("label: dos\n,,83\n"),
    );
    assert_eq!(
        blkid(&mbr, None).get("PTTYPE").map(String::as_str),
        Some("dos")
    );
    assert_eq!(read(&mbr).kind, TableKind::Mbr);
}

#[test]
fn bad_boot_indicator_is_no_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("mbr.img");
    sparse(&img, 8 << 20);
    run(
        "sfdisk",
        &["-q", &img.display().to_string()],
        Some("label: dos\n,,83\n"),
    );
    patch(&img, 0x1BE, &[0x12]);
    assert!(!blkid(&img, None).contains_key("PTTYPE"));
    assert_eq!(read(&img).kind, TableKind::None);
}

#[test]
fn tiny_disks_and_odd_sector_sizes() {
    for len in [0usize, 1, 511, 512] {
        let t = read_table(&MemDisk::new(vec![0; len]), 512).expect("read");
        assert_eq!(t.kind, TableKind::None);
        assert_eq!(t.partitions[0].size_bytes, len as u64);
    }
    // A protective MBR on a disk too small for a GPT.
    let mut d = vec![0u8; 1024];
    d[0x1BE + 4] = 0xEE;
    d[0x1FE] = 0x55;
    d[0x1FF] = 0xAA;
    let t = read_table(&MemDisk::new(d), 512).expect("read");
    assert_eq!(t.kind, TableKind::Gpt);
    assert!(t.partitions.is_empty());
    assert_eq!(t.problems.len(), 1);
    let e = read_table(&MemDisk::new(vec![0; 4096]), 520).expect_err("520");
    assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
    assert!(e.message().contains("520"));
}

#[test]
fn truncated_gpt_disk_keeps_its_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = gpt_image(dir.path());
    let full = read(&img);
    let p3 = full.partition(3).expect("3").clone();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .and_then(|f| f.set_len(p3.start_bytes + 4096))
        .expect("truncate");
    let t = read(&img);
    assert_eq!(t.partitions, full.partitions, "declared sizes kept");
    let msgs: Vec<&str> = t.problems.iter().map(|p| p.message.as_str()).collect();
    for needle in [
        "shorter than its GPT",
        "backup GPT header",
        "partition 3 extends past the end of the disk",
        "partition 4 extends past the end of the disk",
    ] {
        assert!(
            msgs.iter().any(|m| m.contains(needle)),
            "{needle}: {msgs:?}"
        );
    }
    assert_eq!(msgs.len(), 4, "{msgs:?}");
}

#[test]
fn readable_window_clamps_to_the_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = seed_mbr(dir.path());
    let full = read(&img);
    let p5 = full.partition(5).expect("5").clone();
    let p6 = full.partition(6).expect("6").clone();
    let cut = p5.start_bytes + p5.size_bytes / 2;
    let disk = MemDisk::new(peek(&img, 0, cut as usize));
    let w = p5.readable_window(&disk).expect("window");
    assert_eq!(
        (w.start(), w.size()),
        (p5.start_bytes, cut - p5.start_bytes)
    );
    assert!(p5.end_bytes().is_some_and(|end| end > cut));
    assert!(p6.readable_window(&disk).is_none());
    let p1 = full.partition(1).expect("1");
    assert!(p1.end_bytes().is_some_and(|end| end <= cut));
    assert_eq!(
        p1.readable_window(&disk).map(|w| w.size()),
        Some(p1.size_bytes)
    );
}

#[test]
fn a_2_tib_sparse_disk_costs_a_few_small_reads() {
    use crate::disk::{Access, Disk, ReadAt};
    struct Counting<'a>(&'a Disk, std::cell::Cell<u64>);
    impl ReadAt for Counting<'_> {
        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> crate::Result<()> {
            self.1.set(self.1.get() + buf.len() as u64);
            self.0.read_exact_at(offset, buf)
        }
        fn size(&self) -> u64 {
            self.0.size()
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("big.img");
    sparse(&img, 2 << 40);
    run(
        "sfdisk",
        &["-q", &img.display().to_string()],
        Some("label: gpt\nsize=512M, type=U\nsize=1T, type=L\ntype=S\n"),
    );
    let disk = Disk::open(&img, Access::ReadOnly).expect("open");
    let dev = Counting(&disk, std::cell::Cell::new(0));
    let t = read_table(&dev, disk.logical_sector_size()).expect("read");
    assert_eq!(ours(&t), judged(&img).2);
    for p in t.data_partitions() {
        let w = p.readable_window(&dev).expect("window");
        crate::probe::probe(&w).expect("probe");
    }
    // Both GPT headers and entry arrays, and a few signature sectors per
    // partition: well under 1 MiB whatever the disk's size.
    assert!(dev.1.get() < 1 << 20, "{} bytes read", dev.1.get());
}

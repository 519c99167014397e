//! The GUID partition table: the header at LBA 1 (or its backup at the last LBA)
//! and its array of partition entries, both checked by CRC32.
//!
//! Read at named offsets rather than through the `gpt` crate, whose reader
//! asserts that entries are 128 bytes (a panic on hostile input), allocates
//! `num_parts * part_size` bytes unbounded and does one read per entry; its
//! partition-type constants name the common types here. A header is valid as
//! libblkid requires: signature, header size, header CRC, `MyLBA` where it was
//! read, usable range inside the disk, and an entry array whose CRC matches. The
//! entry array is capped at [`MAX_ENTRY_ARRAY`] bytes.
//!
//! Numbering is by slot (entry index + 1), empty entries skipped, as Linux and
//! sfdisk number them. An entry that ends past the disk or outside the usable
//! range is kept with its declared size and reported as a damage [`Finding`](crate::finding::Finding).

use super::{damage_at, past_end_problem, Partition, PartitionTable, Slot, TableKind};
use crate::disk::ReadAt;
use crate::error::Result;
use crate::finding::Finding;
use crate::probe::bytes;

// Header fields (UEFI 2.x, 5.3.2).
/// "EFI PART".
const GPT_SIGNATURE: usize = 0x00;
/// Size of the header in bytes (92 today), covered by the header CRC.
const GPT_HEADER_SIZE: usize = 0x0C;
/// CRC32 of the header, computed with this field zeroed.
const GPT_HEADER_CRC32: usize = 0x10;
/// LBA of this header.
const GPT_MY_LBA: usize = 0x18;
/// LBA of the other header.
const GPT_ALTERNATE_LBA: usize = 0x20;
/// First LBA usable by partitions.
const GPT_FIRST_USABLE_LBA: usize = 0x28;
/// Last LBA usable by partitions.
const GPT_LAST_USABLE_LBA: usize = 0x30;
/// Disk GUID.
const GPT_DISK_GUID: usize = 0x38;
/// LBA of the entry array.
const GPT_PARTITION_ENTRY_LBA: usize = 0x48;
/// Number of entries in the array.
const GPT_NUM_PARTITION_ENTRIES: usize = 0x50;
/// Size of one entry.
const GPT_SIZEOF_PARTITION_ENTRY: usize = 0x54;
/// CRC32 of the entry array.
const GPT_PARTITION_ENTRY_ARRAY_CRC32: usize = 0x58;
/// The header size the UEFI spec defines (the minimum).
const GPT_MIN_HEADER_SIZE: u32 = 92;

// Entry fields.
/// Partition type GUID; all zero for an unused entry.
const PE_TYPE_GUID: usize = 0x00;
/// Unique partition GUID (`PARTUUID`).
const PE_UNIQUE_GUID: usize = 0x10;
/// First LBA.
const PE_STARTING_LBA: usize = 0x20;
/// Last LBA, inclusive.
const PE_ENDING_LBA: usize = 0x28;
/// Attribute bits.
const PE_ATTRIBUTES: usize = 0x30;
/// Name, 36 UTF-16LE code units (`PARTLABEL`).
const PE_NAME: usize = 0x38;
const PE_NAME_LEN: usize = 72;
/// The size of the entry fields above; entries may be larger (a multiple of 8).
const PE_MIN_SIZE: u32 = 128;
/// Largest entry size accepted.
const PE_MAX_SIZE: u32 = 4096;
/// Attribute bit 2: legacy BIOS bootable.
const ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;

/// Largest entry array read (8192 entries of 128 bytes; the usual array is 16 KiB).
pub const MAX_ENTRY_ARRAY: u64 = 1 << 20;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// A header that passed every check, with its entry array.
struct Header {
    lba: u64,
    alternate_lba: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: [u8; 16],
    entry_size: usize,
    entries: Vec<u8>,
    /// Byte offset the entry array was read from.
    entries_offset: u64,
}

/// Read a disk whose sector 0 holds a protective MBR.
pub(super) fn read<D: ReadAt + ?Sized>(dev: &D, sector_size: u32) -> Result<PartitionTable> {
    let ss = choose_sector_size(dev, sector_size)?;
    let mut t = PartitionTable {
        kind: TableKind::Gpt,
        disk_id: None,
        sector_size: ss,
        partitions: Vec::new(),
        problems: Vec::new(),
        foreign: Vec::new(),
    };
    let ss64 = u64::from(ss);
    let n_sectors = dev.size() / ss64;
    if n_sectors < 3 {
        t.problems.push(damage_at(
            0,
            format!(
                "protective MBR found but the disk ({:#x} bytes) is too small to hold a GPT",
                dev.size()
            ),
        ));
        return Ok(t);
    }
    let last_lba = n_sectors - 1;
    let header = match read_header(dev, ss, 1, last_lba)? {
        Ok(h) => {
            check_backup(dev, ss, &h, last_lba, &mut t.problems)?;
            h
        }
        Err(why) => {
            let primary = format!("the primary GPT header at LBA 1 is damaged: {why}");
            match read_header(dev, ss, last_lba, last_lba)? {
                Ok(h) => {
                    t.problems.push(damage_at(
                        ss64,
                        format!(
                            "{primary}; partitions read from the backup header at LBA {last_lba}"
                        ),
                    ));
                    h
                }
                Err(why) => {
                    t.problems.push(damage_at(ss64, primary));
                    t.problems.push(damage_at(
                        last_lba * ss64,
                        format!("the backup GPT header at LBA {last_lba} is damaged too: {why}; no partition can be read"),
                    ));
                    return Ok(t);
                }
            }
        }
    };
    t.disk_id = Some(bytes::guid_string(&header.disk_guid));
    if header.last_usable > last_lba {
        t.problems.push(damage_at(
            header.lba * ss64,
            format!(
                "the disk is shorter than its GPT says: last usable LBA {} but the disk ends at LBA {last_lba} (truncated?)",
                header.last_usable
            ),
        ));
    }
    let entries_off = header.entries_offset;
    for (i, entry) in header.entries.chunks_exact(header.entry_size).enumerate() {
        let type_guid = crate::bytes::bytes16(entry, PE_TYPE_GUID);
        if type_guid == [0; 16] {
            continue;
        }
        // OK to cast: at most MAX_ENTRY_ARRAY / PE_MIN_SIZE entries.
        let number = i as u32 + 1;
        let entry_off = entries_off + (i * header.entry_size) as u64;
        let first = crate::bytes::le64(entry, PE_STARTING_LBA);
        let last = crate::bytes::le64(entry, PE_ENDING_LBA);
        let Some(sectors) = last.checked_sub(first).and_then(|d| d.checked_add(1)) else {
            t.problems.push(damage_at(
                entry_off,
                format!(
                    "GPT entry {number} ends (LBA {last}) before it starts (LBA {first}); ignored"
                ),
            ));
            continue;
        };
        let (Some(start), Some(size)) = (first.checked_mul(ss64), sectors.checked_mul(ss64)) else {
            t.problems.push(damage_at(
                entry_off,
                format!("GPT entry {number}: LBAs {first}..{last} overflow a byte offset; ignored"),
            ));
            continue;
        };
        if let Some(p) = past_end_problem(number, start, size, dev.size(), entry_off) {
            t.problems.push(p);
        } else if first < header.first_usable || last > header.last_usable {
            t.problems.push(damage_at(
                entry_off,
                format!(
                    "partition {number} (LBA {first}..{last}) lies outside the usable area (LBA {}..{})",
                    header.first_usable, header.last_usable
                ),
            ));
        }
        let type_id = bytes::guid_string(&type_guid).to_uppercase();
        t.partitions.push(Partition {
            number,
            start_bytes: start,
            size_bytes: size,
            slot: Slot::Gpt,
            type_name: type_name(&type_id).map(str::to_string),
            type_id,
            partuuid: Some(bytes::guid_string(&crate::bytes::bytes16(
                entry,
                PE_UNIQUE_GUID,
            ))),
            partlabel: bytes::label_utf16le(bytes::slice(entry, PE_NAME, PE_NAME_LEN)),
            bootable: crate::bytes::le64(entry, PE_ATTRIBUTES) & ATTR_LEGACY_BIOS_BOOTABLE != 0,
        });
    }
    Ok(t)
}

/// The sector size the GPT was written with: the caller's, unless no header
/// signature is found with it but one is with the other common size (a
/// 4096-byte-sector disk read as an image file, whose sector size we cannot ask
/// the kernel). The primary header's place is tried first, then the backup's.
fn choose_sector_size<D: ReadAt + ?Sized>(dev: &D, given: u32) -> Result<u32> {
    let signature_at = |off: u64| -> Result<bool> {
        Ok(bytes::read_opt(dev, off, 8)?.is_some_and(|b| b == b"EFI PART"))
    };
    let last_sector = |ss: u32| (dev.size() / u64::from(ss)).saturating_sub(1) * u64::from(ss);
    let candidates = [given, if given == 4096 { 512 } else { 4096 }];
    for ss in candidates {
        if signature_at(u64::from(ss))? {
            return Ok(ss);
        }
    }
    for ss in candidates {
        if last_sector(ss) > u64::from(ss) && signature_at(last_sector(ss))? {
            return Ok(ss);
        }
    }
    Ok(given)
}

/// Read and check the header at `lba`. The outer error is I/O; the inner one says
/// why the header is not valid.
fn read_header<D: ReadAt + ?Sized>(
    dev: &D,
    ss: u32,
    lba: u64,
    last_lba: u64,
) -> Result<std::result::Result<Header, String>> {
    let ss64 = u64::from(ss);
    let Some(off) = lba.checked_mul(ss64) else {
        return Ok(Err(format!("LBA {lba} overflows a byte offset")));
    };
    // OK to cast: ss is at most 4096.
    let Some(h) = bytes::read_opt(dev, off, ss as usize)? else {
        return Ok(Err(format!("LBA {lba} is past the end of the disk")));
    };
    if !bytes::has(&h, GPT_SIGNATURE, b"EFI PART") {
        return Ok(Err("no \"EFI PART\" signature".to_string()));
    }
    let header_size = crate::bytes::le32(&h, GPT_HEADER_SIZE);
    if header_size < GPT_MIN_HEADER_SIZE || header_size > ss {
        return Ok(Err(format!(
            "header size {header_size} is not within {GPT_MIN_HEADER_SIZE}..={ss}"
        )));
    }
    let stored = crate::bytes::le32(&h, GPT_HEADER_CRC32);
    let mut covered = bytes::slice(&h, 0, header_size as usize).to_vec();
    covered
        .get_mut(GPT_HEADER_CRC32..GPT_HEADER_CRC32 + 4)
        .into_iter()
        .flatten()
        .for_each(|b| *b = 0);
    let computed = CRC32.checksum(&covered);
    if computed != stored {
        return Ok(Err(format!(
            "header CRC32 is {stored:#010x}, computed {computed:#010x}"
        )));
    }
    let my_lba = crate::bytes::le64(&h, GPT_MY_LBA);
    if my_lba != lba {
        return Ok(Err(format!(
            "the header says it is at LBA {my_lba}, but it was read at LBA {lba}"
        )));
    }
    let first_usable = crate::bytes::le64(&h, GPT_FIRST_USABLE_LBA);
    let last_usable = crate::bytes::le64(&h, GPT_LAST_USABLE_LBA);
    // A usable area past the disk's end is a truncated disk, reported by the
    // caller; the header itself can still be right.
    if last_usable < first_usable || first_usable > last_lba {
        return Ok(Err(format!(
            "usable area LBA {first_usable}..{last_usable} is empty or outside the disk (last LBA {last_lba})"
        )));
    }
    let n = crate::bytes::le32(&h, GPT_NUM_PARTITION_ENTRIES);
    let esz = crate::bytes::le32(&h, GPT_SIZEOF_PARTITION_ENTRY);
    if !(PE_MIN_SIZE..=PE_MAX_SIZE).contains(&esz) || esz % 8 != 0 {
        return Ok(Err(format!(
            "partition entry size {esz} is not a multiple of 8 in {PE_MIN_SIZE}..={PE_MAX_SIZE}"
        )));
    }
    let array = u64::from(n) * u64::from(esz);
    if array == 0 {
        return Ok(Err("the header declares no partition entries".to_string()));
    }
    if array > MAX_ENTRY_ARRAY {
        return Ok(Err(format!(
            "the entry array ({n} entries of {esz} bytes) is larger than {MAX_ENTRY_ARRAY} bytes"
        )));
    }
    let entries_lba = crate::bytes::le64(&h, GPT_PARTITION_ENTRY_LBA);
    let Some(entries_off) = entries_lba.checked_mul(ss64) else {
        return Ok(Err(format!(
            "entry array LBA {entries_lba} overflows a byte offset"
        )));
    };
    // OK to cast: array <= MAX_ENTRY_ARRAY.
    let Some(entries) = bytes::read_opt(dev, entries_off, array as usize)? else {
        return Ok(Err(format!(
            "the entry array at LBA {entries_lba} ({array} bytes) is past the end of the disk"
        )));
    };
    let stored = crate::bytes::le32(&h, GPT_PARTITION_ENTRY_ARRAY_CRC32);
    let computed = CRC32.checksum(&entries);
    if computed != stored {
        return Ok(Err(format!(
            "entry array CRC32 is {stored:#010x}, computed {computed:#010x}"
        )));
    }
    Ok(Ok(Header {
        lba,
        alternate_lba: crate::bytes::le64(&h, GPT_ALTERNATE_LBA),
        first_usable,
        last_usable,
        disk_guid: crate::bytes::bytes16(&h, GPT_DISK_GUID),
        entry_size: esz as usize,
        entries,
        entries_offset: entries_off,
    }))
}

/// Report a damaged or missing backup header (the primary is good).
fn check_backup<D: ReadAt + ?Sized>(
    dev: &D,
    ss: u32,
    primary: &Header,
    last_lba: u64,
    problems: &mut Vec<Finding>,
) -> Result<()> {
    let alt = primary.alternate_lba;
    let off = alt.saturating_mul(u64::from(ss));
    if alt <= primary.lba || alt > last_lba {
        problems.push(damage_at(
            off,
            format!("the backup GPT header's LBA {alt} (from the primary header) is not on the disk (last LBA {last_lba})"),
        ));
        return Ok(());
    }
    if let Err(why) = read_header(dev, ss, alt, last_lba)? {
        problems.push(damage_at(
            off,
            format!("the backup GPT header at LBA {alt} is damaged: {why}"),
        ));
    }
    Ok(())
}

/// sfdisk's names for the common type GUIDs (upper case).
fn type_name(type_guid: &str) -> Option<&'static str> {
    use ::gpt::partition_types as pt;
    let known = [
        (&pt::EFI, "EFI System"),
        (&pt::BIOS, "BIOS boot"),
        (&pt::LINUX_FS, "Linux filesystem"),
        (&pt::LINUX_SWAP, "Linux swap"),
        (&pt::LINUX_ROOT_X64, "Linux root (x86-64)"),
        (&pt::LINUX_ROOT_X86, "Linux root (x86)"),
        (&pt::LINUX_HOME, "Linux home"),
        (&pt::LINUX_LVM, "Linux LVM"),
        (&pt::LINUX_RAID, "Linux RAID"),
        (&pt::BASIC, "Microsoft basic data"),
        (&pt::MICROSOFT_RESERVED, "Microsoft reserved"),
        (&pt::WINDOWS_RECOVERY, "Windows recovery environment"),
    ];
    known
        .iter()
        .find(|(t, _)| {
            t.guid
                .as_hyphenated()
                .to_string()
                .eq_ignore_ascii_case(type_guid)
        })
        .map(|(_, name)| *name)
}

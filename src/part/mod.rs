//! Partition tables: MBR (primary, extended, logical through the EBR chain), GPT
//! (with its protective MBR), or none (a bare filesystem).
//!
//! Owns the one normalised [`Partition`] every other module uses, whatever the
//! table: Linux's numbering (MBR primaries 1-4, logicals from 5 in chain order, GPT
//! by slot), the byte window, the type, and the identifiers fstab can name
//! (`PARTUUID=`, `PARTLABEL=`). Damage is reported, not fatal: a table that points
//! past the end of the disk or an EBR chain that loops still yields every partition
//! that could be read, with a damage [`Finding`] for each damaged part.
//!
//! Which table a disk has, and how entries are numbered, follow libblkid (2.38,
//! as installed) and the kernel; the tests judge against `sfdisk --json` and
//! `partx`. Both tables are read at named offsets in `mbr.rs` and `gpt.rs`; the
//! `mbrman` and `gpt` crates are not trusted with hostile input (see there), and
//! only the `gpt` crate's type GUID constants are used.

use serde::Serialize;

use crate::disk::ReadAt;
use crate::error::{Error, Result};
use crate::finding::Finding;
use crate::probe::bytes;

mod foreign;
mod gpt;
mod mbr;

pub use foreign::ForeignTable;
pub use gpt::MAX_ENTRY_ARRAY;
pub use mbr::{MAX_EBRS, MAX_LOGICALS};

/// Which kind of table the disk has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// DOS/MBR table.
    Mbr,
    /// GUID partition table.
    Gpt,
    /// No table: the whole disk is (or may be) one filesystem.
    None,
}

/// Where a partition's entry lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// One of the four MBR entries.
    Primary,
    /// The MBR entry of an extended partition (the container of logicals).
    Extended,
    /// A logical partition, from the EBR chain.
    Logical,
    /// A GPT entry.
    Gpt,
    /// No table: the window is the whole disk.
    Whole,
}

/// One partition, normalised across table kinds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Linux's partition number (`sda5` is 5); 0 for [`Slot::Whole`].
    pub number: u32,
    /// Byte offset of the first byte.
    pub start_bytes: u64,
    /// Length in bytes.
    pub size_bytes: u64,
    /// Kind of entry.
    pub slot: Slot,
    /// MBR type as `"0x83"`, or GPT type GUID in upper case as sfdisk prints it.
    #[serde(rename = "type")]
    pub type_id: String,
    /// A human name for the type when known (`"Linux"`, `"EFI System"`).
    pub type_name: Option<String>,
    /// `PARTUUID` as blkid prints it: GPT unique GUID in lower case, or for MBR
    /// `"xxxxxxxx-NN"` (disk signature and partition number).
    pub partuuid: Option<String>,
    /// `PARTLABEL`: the GPT partition name.
    pub partlabel: Option<String>,
    /// MBR boot flag or GPT legacy-BIOS-bootable attribute.
    pub bootable: bool,
}

/// The result of reading a disk's partition table.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionTable {
    /// What kind of table.
    pub kind: TableKind,
    /// MBR disk signature (`"0x1234abcd"`) or GPT disk GUID (lower case).
    pub disk_id: Option<String>,
    /// Sector size used to read the table.
    pub sector_size: u32,
    /// The partitions, in number order (the extended container included for MBR).
    pub partitions: Vec<Partition>,
    /// Damage found while reading (every finding's severity is
    /// [`Damage`](crate::finding::Severity::Damage), placed in the
    /// [`PLACE`]); empty for a healthy table.
    pub problems: Vec<Finding>,
    /// Partition tables found and not read (BSD, Sun, SGI, Atari): on the
    /// whole disk when `kind` is `none`, or BSD labels nested in MBR slices.
    pub foreign: Vec<ForeignTable>,
}

/// Logical sector sizes [`read_table`] accepts.
pub const SECTOR_SIZES: [u32; 4] = [512, 1024, 2048, 4096];

/// Offset of the boot signature `0x55 0xAA` in an MBR or EBR sector.
const BOOT_SIGNATURE_OFFSET: usize = 0x1FE;

/// Where the findings of a table are placed.
pub const PLACE: &str = "partition table";

/// Damage to the table, at byte `offset` of the disk.
fn damage_at(offset: u64, message: impl Into<String>) -> Finding {
    Finding::damage(PLACE, message).at(offset)
}

impl PartitionTable {
    /// The partition with Linux number `number`.
    pub fn partition(&self, number: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == number)
    }

    /// The partitions that hold data: every entry except an MBR extended container.
    pub fn data_partitions(&self) -> impl Iterator<Item = &Partition> {
        self.partitions.iter().filter(|p| p.slot != Slot::Extended)
    }

    /// The byte range (start, length) of the filesystem a command names with
    /// `part`: partition `part`, or, when `part` is `None` on a disk without a
    /// partition table, the whole disk. `disk` names the disk in messages and
    /// `disk_size` is its size. Leaving the choice open on a partitioned disk, or
    /// naming a partition the table lacks, is an [`ErrorKind::Usage`] error that
    /// lists the partitions there are (and the table's damage, if any).
    ///
    /// [`ErrorKind::Usage`]: crate::ErrorKind::Usage
    pub fn locate(&self, part: Option<u32>, disk: &str, disk_size: u64) -> Result<(u64, u64)> {
        let damage = if self.problems.is_empty() {
            String::new()
        } else {
            let p: Vec<&str> = self.problems.iter().map(|p| p.message.as_str()).collect();
            format!(" (the table is damaged: {})", p.join("; "))
        };
        // The containers of logical partitions hold no filesystem.
        let parts: Vec<&Partition> = self.data_partitions().collect();
        if self.kind == TableKind::None {
            return match (part, parts.first()) {
                (None, Some(whole)) => Ok((whole.start_bytes, whole.size_bytes)),
                (None, None) => Ok((0, disk_size)),
                (Some(n), _) => Err(Error::usage(format!(
                    "{disk} has no partition table (it is a bare filesystem): omit --part {n}"
                ))),
            };
        }
        let list = if parts.is_empty() {
            "none".to_string()
        } else {
            let l: Vec<String> = parts
                .iter()
                .map(|p| {
                    format!(
                        "{} (at {:#x}, {} bytes)",
                        p.number, p.start_bytes, p.size_bytes
                    )
                })
                .collect();
            l.join(", ")
        };
        match part {
            None => Err(Error::usage(format!(
                "{disk} is partitioned: choose one with --part N; partitions: {list}{damage}"
            ))),
            Some(n) => match parts.iter().find(|p| p.number == n) {
                Some(p) => Ok((p.start_bytes, p.size_bytes)),
                None => Err(Error::usage(format!(
                    "{disk} has no partition {n}; partitions: {list}{damage}"
                ))),
            },
        }
    }
}

impl Partition {
    /// First byte past the partition, if it does not overflow.
    pub fn end_bytes(&self) -> Option<u64> {
        self.start_bytes.checked_add(self.size_bytes)
    }

    /// A window over the part of the partition the disk holds: all of it, or for
    /// a partition cut short by the disk's end (a truncated image) the bytes up to
    /// that end, so what is there can still be probed and read. `None` when the
    /// partition starts at or past the end.
    pub fn readable_window<D: ReadAt>(&self, dev: D) -> Option<crate::disk::Window<D>> {
        let disk_size = dev.size();
        if self.start_bytes >= disk_size {
            return None;
        }
        let len = self.size_bytes.min(disk_size - self.start_bytes);
        crate::disk::Window::new(dev, self.start_bytes, len).ok()
    }
}

/// Read the partition table of `dev`, whose logical sectors are `sector_size`
/// bytes (512 for an image file; the kernel's value for a block device).
///
/// How the kind is decided, as libblkid decides it:
/// - sector 0 without the `0x55 0xAA` signature: no table;
/// - any MBR entry of type `0xEE`: GPT (the protective MBR), read from the
///   primary header at LBA 1 or, if that is damaged, the backup at the last LBA;
///   a GPT found at byte 4096 and not 512 is read with 4096-byte sectors;
/// - a boot indicator other than `0x00`/`0x80` in any entry: no table;
/// - a sector 0 that is a valid FAT, exFAT or NTFS boot sector: no table (their
///   boot sectors also end in `0x55 0xAA`);
/// - no entry used, and an LVM2 label: no table (a boot loader in front of a PV);
/// - no entry used, and a clean ext superblock at byte 1024: no table (the
///   first 1024 bytes of an ext filesystem are free and may end in `0x55 0xAA`;
///   blkid calls the device ext);
/// - otherwise MBR.
///
/// With no table the result is one [`Slot::Whole`] partition numbered 0 spanning
/// the disk; a table of a kind not read (BSD, Sun, SGI, Atari) is then named in
/// [`PartitionTable::foreign`], as is a BSD label nested in an MBR slice. Damage (entries past the end of the disk, a looping EBR chain, a bad
/// GPT header or checksum) is reported in [`PartitionTable::problems`] next to
/// whatever could still be read; errors are I/O failures and an unsupported
/// sector size only.
pub fn read_table<D: ReadAt + ?Sized>(dev: &D, sector_size: u32) -> Result<PartitionTable> {
    let mut t = read_known(dev, sector_size)?;
    match t.kind {
        TableKind::None => t.foreign.extend(foreign::whole_disk(dev, sector_size)?),
        TableKind::Mbr => {
            let nested = foreign::nested(dev, &t.partitions)?;
            t.foreign = nested;
        }
        TableKind::Gpt => {}
    }
    Ok(t)
}

/// MBR, GPT or none, as [`read_table`] decides.
fn read_known<D: ReadAt + ?Sized>(dev: &D, sector_size: u32) -> Result<PartitionTable> {
    if !SECTOR_SIZES.contains(&sector_size) {
        return Err(Error::unsupported(format!(
            "logical sector size {sector_size} is not supported (supported: 512, 1024, 2048, 4096)"
        )));
    }
    let Some(sector0) = bytes::read_opt(dev, 0, 512)? else {
        return Ok(whole_disk(dev, sector_size));
    };
    if !bytes::has(&sector0, BOOT_SIGNATURE_OFFSET, &[0x55, 0xAA]) {
        return Ok(whole_disk(dev, sector_size));
    }
    let entries = mbr::entries(&sector0);
    if entries
        .iter()
        .any(|e| e.sys_ind == mbr::TYPE_GPT_PROTECTIVE)
    {
        return gpt::read(dev, sector_size);
    }
    if entries
        .iter()
        .any(|e| e.boot_ind != 0x00 && e.boot_ind != 0x80)
        || crate::probe::fat::is_fat_boot_sector(&sector0)
        || bytes::has(&sector0, 3, b"EXFAT   ")
        || crate::probe::ntfs::is_ntfs(dev)?
        || (entries.iter().all(|e| e.nr_sects == 0)
            && (is_lvm2(dev)? || crate::probe::is_ext(dev)?))
    {
        return Ok(whole_disk(dev, sector_size));
    }
    mbr::read(dev, sector_size, &sector0)
}

/// A valid LVM2 label (an empty MBR in front of it is a boot loader's, not a table).
fn is_lvm2<D: ReadAt + ?Sized>(dev: &D) -> Result<bool> {
    Ok(crate::probe::other::probe_lvm2(dev)?.is_some_and(|i| i.problem.is_none()))
}

/// No table: one window over the whole disk.
fn whole_disk<D: ReadAt + ?Sized>(dev: &D, sector_size: u32) -> PartitionTable {
    PartitionTable {
        kind: TableKind::None,
        disk_id: None,
        sector_size,
        partitions: vec![Partition {
            number: 0,
            start_bytes: 0,
            size_bytes: dev.size(),
            slot: Slot::Whole,
            type_id: String::new(),
            type_name: None,
            partuuid: None,
            partlabel: None,
            bootable: false,
        }],
        problems: Vec::new(),
        foreign: Vec::new(),
    }
}

/// The problem of a partition that does not fit in the disk, if it does not.
fn past_end_problem(
    number: u32,
    start: u64,
    size: u64,
    disk_size: u64,
    entry_offset: u64,
) -> Option<Finding> {
    let end = start.checked_add(size);
    match end {
        Some(end) if end <= disk_size => None,
        Some(end) => Some(damage_at(
            entry_offset,
            format!(
                "partition {number} extends past the end of the disk (ends at {end:#x}, disk is {disk_size:#x})"
            ),
        )),
        None => Some(damage_at(
            entry_offset,
            format!("partition {number}: start {start:#x} + size {size:#x} overflows"),
        )),
    }
}

#[cfg(test)]
mod tests;

//! Partition tables: MBR (primary, extended, logical through the EBR chain), GPT
//! (with its protective MBR), or none (a bare filesystem).
//!
//! Owns the one normalised [`Partition`] every other module uses, whatever the
//! table: Linux's numbering (MBR primaries 1-4, logicals from 5 in chain order, GPT
//! by slot), the byte window, the type, and the identifiers fstab can name
//! (`PARTUUID=`, `PARTLABEL=`). Damage is reported, not fatal: a table that points
//! past the end of the disk or an EBR chain that loops still yields every partition
//! that could be read, with a [`Problem`] for each damaged part.

use serde::Serialize;

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

/// A damaged part of a partition table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Byte offset of the damaged structure, when known.
    pub offset: Option<u64>,
    /// What is wrong, in words.
    pub message: String,
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
    /// Damage found while reading; empty for a healthy table.
    pub problems: Vec<Problem>,
}

/// Read the partition table of `dev` (temporary stub until the probe branch lands).
pub fn read_table<D: crate::disk::ReadAt>(
    dev: &D,
    sector_size: u32,
) -> crate::error::Result<PartitionTable> {
    Ok(PartitionTable {
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
    })
}

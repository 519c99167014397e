//! The DOS/MBR partition table: the four primary entries of sector 0, and the
//! logical partitions of every extended partition, found by walking its chain of
//! extended boot records (EBRs).
//!
//! Numbering is Linux's: primaries 1-4 by slot (an empty slot keeps its number),
//! logicals from 5 in chain order. The chain is walked as the kernel and libblkid
//! walk it: in each EBR the first non-extended entry with a size is the logical
//! partition (its start relative to that EBR), and the first extended entry links
//! to the next EBR (its start relative to the extended partition). A hostile chain
//! cannot make us loop or read without bound: every EBR is visited once, at most
//! [`MAX_LOGICALS`] logicals and [`MAX_EBRS`] EBRs are read, and each limit hit is
//! reported as a damage [`Finding`](crate::finding::Finding).
//!
//! The entries are read at named offsets here rather than through `mbrman`:
//! `mbrman::MBR::read_from` gives up on the whole table at the first bad EBR (an
//! examiner wants the primaries and the logicals before the damage) and adds
//! on-disk LBAs without overflow checks.

use std::collections::HashSet;

use super::{damage_at, past_end_problem, Partition, PartitionTable, Slot, TableKind};
use crate::disk::ReadAt;
use crate::error::Result;
use crate::probe::bytes;

/// Disk signature (`NT disk id`) in sector 0.
const MBR_DISK_SIGNATURE: usize = 0x1B8;
/// First of the four 16-byte partition entries.
const MBR_PARTITION_TABLE: usize = 0x1BE;
/// Size of one entry.
const MBR_ENTRY_SIZE: usize = 16;

// Fields of one entry, relative to the entry.
/// Boot indicator: 0x80 active, 0x00 inactive.
const PE_BOOT_IND: usize = 0x0;
/// Partition type.
const PE_SYS_IND: usize = 0x4;
/// First sector, relative to the table's base (0, the extended start, or the EBR).
const PE_START_SECT: usize = 0x8;
/// Number of sectors.
const PE_NR_SECTS: usize = 0xC;

/// DOS extended partition.
const TYPE_DOS_EXTENDED: u8 = 0x05;
/// W95 extended partition (LBA).
const TYPE_W95_EXTENDED: u8 = 0x0F;
/// Linux extended partition.
const TYPE_LINUX_EXTENDED: u8 = 0x85;
/// The protective entry of a GPT disk.
pub(super) const TYPE_GPT_PROTECTIVE: u8 = 0xEE;

/// Most logical partitions read from one extended partition.
pub const MAX_LOGICALS: usize = 128;
/// Most EBRs read from one extended partition (EBRs may hold no data partition).
pub const MAX_EBRS: usize = 256;

/// One 16-byte entry, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub boot_ind: u8,
    pub sys_ind: u8,
    pub start_sect: u32,
    pub nr_sects: u32,
}

impl Entry {
    fn is_extended(&self) -> bool {
        matches!(
            self.sys_ind,
            TYPE_DOS_EXTENDED | TYPE_W95_EXTENDED | TYPE_LINUX_EXTENDED
        )
    }
}

/// The four entries of an MBR or EBR sector.
pub(super) fn entries(sector: &[u8]) -> [Entry; 4] {
    std::array::from_fn(|i| {
        let e = MBR_PARTITION_TABLE + i * MBR_ENTRY_SIZE;
        Entry {
            boot_ind: sector.get(e + PE_BOOT_IND).copied().unwrap_or(0),
            sys_ind: sector.get(e + PE_SYS_IND).copied().unwrap_or(0),
            start_sect: crate::bytes::le32(sector, e + PE_START_SECT),
            nr_sects: crate::bytes::le32(sector, e + PE_NR_SECTS),
        }
    })
}

/// Byte offset of entry `i` of the sector at byte `sector_off`.
fn entry_offset(sector_off: u64, i: usize) -> u64 {
    sector_off + (MBR_PARTITION_TABLE + i * MBR_ENTRY_SIZE) as u64
}

/// Read an MBR disk whose sector 0 (already checked: signature, boot indicators,
/// no protective entry) is `sector0`.
pub(super) fn read<D: ReadAt + ?Sized>(
    dev: &D,
    sector_size: u32,
    sector0: &[u8],
) -> Result<PartitionTable> {
    let ss = u64::from(sector_size);
    let disk_size = dev.size();
    let signature = crate::bytes::le32(sector0, MBR_DISK_SIGNATURE);
    let mut t = PartitionTable {
        kind: TableKind::Mbr,
        // As sfdisk prints it; blkid and Linux give no id (and no PARTUUID) for 0.
        disk_id: (signature != 0).then(|| format!("0x{signature:08x}")),
        sector_size,
        partitions: Vec::new(),
        problems: Vec::new(),
        foreign: Vec::new(),
    };
    let primaries = entries(sector0);
    for (i, e) in primaries.iter().enumerate() {
        if e.nr_sects == 0 {
            // Linux ignores an entry without size, but its number stays taken.
            continue;
        }
        // OK to cast: i < 4.
        let number = i as u32 + 1;
        let slot = if e.is_extended() {
            Slot::Extended
        } else {
            Slot::Primary
        };
        push(
            &mut t,
            signature,
            number,
            slot,
            e,
            u64::from(e.start_sect) * ss,
            ss,
            entry_offset(0, i),
            disk_size,
        );
    }
    let mut next_number = 5;
    for e in primaries
        .iter()
        .filter(|e| e.nr_sects != 0 && e.is_extended())
    {
        read_logicals(dev, &mut t, signature, e, &mut next_number)?;
    }
    t.partitions.sort_by_key(|p| p.number);
    Ok(t)
}

/// Add one partition from entry `e` starting at byte `start`.
#[allow(clippy::too_many_arguments)]
fn push(
    t: &mut PartitionTable,
    signature: u32,
    number: u32,
    slot: Slot,
    e: &Entry,
    start: u64,
    ss: u64,
    entry_off: u64,
    disk_size: u64,
) {
    let size = u64::from(e.nr_sects) * ss;
    if let Some(p) = past_end_problem(number, start, size, disk_size, entry_off) {
        t.problems.push(p);
    }
    t.partitions.push(Partition {
        number,
        start_bytes: start,
        size_bytes: size,
        slot,
        type_id: format!("0x{:02x}", e.sys_ind),
        type_name: type_name(e.sys_ind).map(str::to_string),
        partuuid: (signature != 0).then(|| format!("{signature:08x}-{number:02x}")),
        partlabel: None,
        bootable: e.boot_ind == 0x80,
    });
}

/// Walk the EBR chain of the extended partition `ext`.
fn read_logicals<D: ReadAt + ?Sized>(
    dev: &D,
    t: &mut PartitionTable,
    signature: u32,
    ext: &Entry,
    next_number: &mut u32,
) -> Result<()> {
    let ss = u64::from(t.sector_size);
    let disk_size = dev.size();
    let ex_start = u64::from(ext.start_sect);
    let ex_size = u64::from(ext.nr_sects);
    let mut cur = ex_start;
    let mut cur_size = ex_size;
    let mut visited = HashSet::new();
    let mut logicals = 0usize;
    loop {
        let off = cur * ss;
        if !visited.insert(cur) {
            t.problems.push(damage_at(
                off,
                format!("the EBR chain loops back to sector {cur} (offset {off:#x}); logical partitions after it are ignored"),
            ));
            return Ok(());
        }
        if visited.len() > MAX_EBRS {
            t.problems.push(damage_at(
                off,
                format!("the EBR chain has more than {MAX_EBRS} links; stopped at sector {cur}"),
            ));
            return Ok(());
        }
        let first = cur == ex_start;
        let Some(sector) = bytes::read_opt(dev, off, 512)? else {
            t.problems.push(damage_at(
                off,
                format!("the EBR at sector {cur} (offset {off:#x}) is past the end of the disk (size {disk_size:#x})"),
            ));
            return Ok(());
        };
        if !bytes::has(&sector, super::BOOT_SIGNATURE_OFFSET, &[0x55, 0xAA]) {
            // An extended partition without logicals need not hold an EBR.
            if !first {
                t.problems.push(damage_at(
                    off,
                    format!("the EBR at sector {cur} (offset {off:#x}) has no 0x55AA signature; the chain ends there"),
                ));
            }
            return Ok(());
        }
        let es = entries(&sector);
        for (i, e) in es.iter().enumerate() {
            let start = u64::from(e.start_sect);
            let size = u64::from(e.nr_sects);
            if size == 0 || e.is_extended() {
                continue;
            }
            // The 3rd and 4th entries often hold garbage: take them only when they
            // fit inside this EBR's share and the extended partition (as blkid).
            if i >= 2
                && (start + size > cur_size
                    || cur + start < ex_start
                    || cur + start + size > ex_start + ex_size)
            {
                continue;
            }
            if logicals == MAX_LOGICALS {
                t.problems.push(damage_at(
                    off,
                    format!("more than {MAX_LOGICALS} logical partitions; the rest are ignored"),
                ));
                return Ok(());
            }
            logicals += 1;
            let number = *next_number;
            *next_number += 1;
            push(
                t,
                signature,
                number,
                Slot::Logical,
                e,
                (cur + start) * ss,
                ss,
                entry_offset(off, i),
                disk_size,
            );
        }
        // The first extended entry links to the next EBR, relative to the
        // extended partition's start.
        match es.iter().find(|e| e.nr_sects != 0 && e.is_extended()) {
            Some(link) => {
                cur = ex_start + u64::from(link.start_sect);
                cur_size = u64::from(link.nr_sects);
            }
            None => return Ok(()),
        }
    }
}

/// fdisk's name for the common MBR types.
fn type_name(sys_ind: u8) -> Option<&'static str> {
    Some(match sys_ind {
        0x01 => "FAT12",
        0x04 => "FAT16 <32M",
        0x05 => "Extended",
        0x06 => "FAT16",
        0x07 => "HPFS/NTFS/exFAT",
        0x0b => "W95 FAT32",
        0x0c => "W95 FAT32 (LBA)",
        0x0e => "W95 FAT16 (LBA)",
        0x0f => "W95 Ext'd (LBA)",
        0x11 => "Hidden FAT12",
        0x12 => "Compaq diagnostics",
        0x17 => "Hidden HPFS/NTFS",
        0x1b => "Hidden W95 FAT32",
        0x1c => "Hidden W95 FAT32 (LBA)",
        0x27 => "Hidden NTFS WinRE",
        0x42 => "SFS",
        0x82 => "Linux swap / Solaris",
        0x83 => "Linux",
        0x85 => "Linux extended",
        0x86 => "NTFS volume set",
        0x87 => "NTFS volume set",
        0x8e => "Linux LVM",
        0xa5 => "FreeBSD",
        0xa6 => "OpenBSD",
        0xa8 => "Darwin UFS",
        0xa9 => "NetBSD",
        0xaf => "HFS / HFS+",
        0xbe => "Solaris boot",
        0xbf => "Solaris",
        0xda => "Non-FS data",
        0xde => "Dell Utility",
        0xee => "GPT",
        0xef => "EFI (FAT-12/16/32)",
        0xfb => "VMware VMFS",
        0xfc => "VMware VMKCORE",
        0xfd => "Linux raid autodetect",
        _ => return None,
    })
}

//! The whole-disk report behind `domuify inspect`: the partition table, the
//! filesystem on every partition, and every installed system found.
//!
//! Read-only by construction: it takes any device ([`ReadAt`]: a [`Disk`], an
//! undo log over one, an image in memory) and only reads. Damage does not
//! stop it: each damaged part (a table entry past the end, a corrupt superblock, an
//! unreadable fstab) becomes a damage [`Finding`] and the rest is still reported,
//! as an examiner with a truncated acquisition wants. Every finding of every layer
//! (table, probes, readers, the guests, hibernation) ends in one list,
//! [`Report::findings`].

use std::sync::Arc;

use serde::Serialize;

use crate::disk::{Disk, ReadAhead, ReadAt};
use crate::error::{ErrorKind, Result};
use crate::finding::{partition_place, Finding, Severity};
use crate::guest::reader::{self, GuestRead};
use crate::guest::resolve::{DiskView, PartView};
use crate::guest::{self, Guest};
use crate::hash::{self, Algorithm, Hashes};
use crate::hibernation::{self, Hibernation};
use crate::part::{self, Partition, PartitionTable, Slot, TableKind};
use crate::probe::{self, FsInfo, FsType};

/// A partition with what was found on it.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionReport {
    /// The partition.
    #[serde(flatten)]
    pub partition: Partition,
    /// Its filesystem; `null` for an extended container.
    pub filesystem: Option<FsInfo>,
    /// The kernel's device node of the partition when the image is a block device
    /// (`/dev/sdb5`), found through sysfs; `null` for an image file.
    pub device_node: Option<String>,
    /// Hashes of the partition's bytes, when asked for ([`add_hashes`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Hashes>,
}

/// Everything `inspect` found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The image path as given.
    pub image: String,
    /// `"image-file"` or `"block-device"`.
    pub device_kind: &'static str,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Sector size used.
    pub sector_size: u32,
    /// `"mbr"`, `"gpt"` or `"none"`.
    pub table: TableKind,
    /// MBR disk signature or GPT disk GUID.
    pub disk_id: Option<String>,
    /// Every partition, with its filesystem.
    pub partitions: Vec<PartitionReport>,
    /// Every installed Linux system found.
    pub systems: Vec<Guest>,
    /// Everything found worth saying, in the order found: damage (any means
    /// exit code 1), warnings (what a user must know before writing: a
    /// hibernation image in a swap, an fstab line that is no entry) and notes
    /// (limits met: a filesystem the reader cannot open, a partition table not
    /// read).
    pub findings: Vec<Finding>,
    /// Every hibernation image found, with the filesystems it freezes.
    pub hibernation: Vec<Hibernation>,
    /// Hashes of the whole image, when asked for ([`add_hashes`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Hashes>,
}

/// The `image` of a report on a device that reads no [`Disk`].
pub const IN_MEMORY: &str = "(in memory)";

impl Report {
    /// Was damage found (exit code 1)?
    pub fn damaged(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Damage)
    }

    /// The findings of one severity, in the order found.
    pub fn findings_of(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity == severity)
    }
}

/// Inspect `disk`: table, filesystems, systems. Any device serves; what the
/// report says of the device itself (its name, kind, sector size, the kernel's
/// nodes of its partitions) comes from the [`Disk`] it reads
/// ([`ReadAt::disk`]), and a device in memory is an unnamed image file of
/// 512-byte sectors.
pub fn inspect<D: ReadAt + ?Sized + 'static>(disk: Arc<D>) -> Result<Report> {
    let file = disk.disk();
    let sector_size = file.map_or(512, Disk::logical_sector_size);
    let table: PartitionTable = part::read_table(&*disk, sector_size)?;
    let mut findings: Vec<Finding> = Vec::new();
    if disk.size() == 0 {
        findings.push(Finding::damage("disk", "the image is empty (0 bytes)"));
    }
    findings.extend(table.problems.iter().cloned());
    for f in &table.foreign {
        findings.push(match f.partition {
            None => Finding::note(
                part::PLACE,
                format!(
                    "a {} disklabel at byte {:#x}, which domuify does not read: its partitions are not listed",
                    f.name, f.offset
                ),
            ),
            Some(n) => Finding::note(
                partition_place(n),
                format!(
                    "a {} disklabel at byte {:#x} inside the slice, which domuify does not read: its partitions are not listed",
                    f.name, f.offset
                ),
            ),
        }
        .at(f.offset));
    }

    let mut partitions = Vec::with_capacity(table.partitions.len());
    for p in &table.partitions {
        let filesystem = if p.slot == Slot::Extended {
            None
        } else {
            Some(probe_partition(&disk, p, &mut findings))
        };
        partitions.push(PartitionReport {
            partition: p.clone(),
            filesystem,
            device_node: file
                .and_then(|f| f.partition_node(p.number))
                .map(|n| n.display().to_string()),
            hashes: None,
        });
    }

    if nothing_recognised(&table, &partitions) {
        findings.push(Finding::damage(
            "disk",
            "nothing recognised: no partition table and no filesystem signature",
        ));
    }

    let view = DiskView {
        parts: partitions
            .iter()
            .map(|r| PartView {
                number: r.partition.number,
                fstype: r
                    .filesystem
                    .as_ref()
                    .map(|f| f.fstype.as_str().to_string())
                    .unwrap_or_default(),
                uuid: r.filesystem.as_ref().and_then(|f| f.uuid.clone()),
                label: r
                    .filesystem
                    .as_ref()
                    .and_then(|f| f.label.as_ref())
                    .map(ToString::to_string),
                partuuid: r.partition.partuuid.clone(),
                partlabel: r.partition.partlabel.clone(),
                extended: r.partition.slot == Slot::Extended,
            })
            .collect(),
        guest_partition: 0,
    };

    let mut systems = Vec::new();
    for r in &partitions {
        let Some(fs) = &r.filesystem else { continue };
        // A damaged ext (cut short by a truncated acquisition, a second
        // signature) is still read as far as it can be: what fails is a problem.
        if !fs.fstype.is_ext() {
            continue;
        }
        let number = r.partition.number;
        let place = partition_place(number);
        let start = r.partition.start_bytes;
        let reader = match open_reader(&disk, r, &mut findings) {
            Ok(reader) => reader,
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                findings.push(Finding::note(place, format!("not inspected: {e}")));
                continue;
            }
            Err(e) => {
                findings.push(
                    Finding::damage(place, format!("cannot read the filesystem: {e}")).at(start),
                );
                continue;
            }
        };
        let guest = guest::is_root(&*reader).and_then(|is_root| {
            if !is_root {
                return Ok(None);
            }
            let mut view = view.clone();
            view.guest_partition = number;
            guest::read_guest(&*reader, &view).map(Some)
        });
        match guest {
            Ok(Some(mut g)) => {
                // A file that could not be read is damage of the filesystem,
                // which starts here.
                for f in &mut g.findings {
                    if f.severity == Severity::Damage && f.offset.is_none() {
                        f.offset = Some(start);
                    }
                }
                if let Some(boot) = g.boot_partition() {
                    read_separate_boot(&disk, &partitions, boot, &mut g, &mut findings);
                } else {
                    crate::kernel::guest::cheap_verdicts(&mut g.kernels, &*reader, false);
                }
                findings.extend(g.findings.iter().cloned());
                systems.push(g);
            }
            Ok(None) => {}
            Err(e) => findings.push(
                Finding::damage(place, format!("cannot inspect the installed system: {e}"))
                    .at(start),
            ),
        }
    }

    let mut report = Report {
        image: file.map_or_else(|| IN_MEMORY.to_string(), |f| f.path().display().to_string()),
        device_kind: match file.map(Disk::kind) {
            None | Some(crate::disk::DiskKind::ImageFile) => "image-file",
            Some(crate::disk::DiskKind::BlockDevice) => "block-device",
        },
        size_bytes: disk.size(),
        sector_size: table.sector_size,
        table: table.kind,
        disk_id: table.disk_id.clone(),
        partitions,
        systems,
        findings,
        hashes: None,
        hibernation: Vec::new(),
    };
    report.hibernation = hibernation::find(&report);
    let frozen: Vec<Finding> = report
        .hibernation
        .iter()
        .map(Hibernation::finding)
        .collect();
    report.findings.extend(frozen);
    Ok(report)
}

/// No table and no filesystem (and not already reported as empty or damaged):
/// a disk `blkid` finds nothing on, which is a problem as it is for `blkid`.
fn nothing_recognised(table: &PartitionTable, partitions: &[PartitionReport]) -> bool {
    table.kind == TableKind::None
        && partitions.iter().all(|r| {
            r.partition.size_bytes > 0
                && r.filesystem
                    .as_ref()
                    .is_none_or(|f| f.fstype == FsType::Unknown && f.problem.is_none())
        })
}

/// Add to `report` the hashes of the whole disk and of each partition, read in
/// one pass ([`hash::hash_disk`]); `progress` gets the bytes done. A read that
/// fails (a bad sector of a block device) is a problem of the report, and no
/// hash is given.
pub fn add_hashes(
    report: &mut Report,
    disk: &Disk,
    algorithms: &[Algorithm],
    progress: &(dyn Fn(u64) + Sync),
) {
    if algorithms.is_empty() {
        return;
    }
    let ranges: Vec<(u64, u64)> = report
        .partitions
        .iter()
        .map(|r| (r.partition.start_bytes, r.partition.size_bytes))
        .collect();
    match hash::hash_disk(disk, &ranges, algorithms, progress) {
        Ok(h) => {
            report.hashes = Some(h.whole);
            for (r, h) in report.partitions.iter_mut().zip(h.ranges) {
                r.hashes = Some(h);
            }
        }
        Err(e) => report.findings.push(Finding::damage(
            "disk",
            format!("cannot hash the image: {e}"),
        )),
    }
}

/// Probe partition `p`; its damage, placed on the disk (the partition and its
/// first byte), is both in the result and in `findings`.
fn probe_partition<D: ReadAt + ?Sized>(
    disk: &Arc<D>,
    p: &Partition,
    findings: &mut Vec<Finding>,
) -> FsInfo {
    let place = partition_place(p.number);
    // A partition cut short by the disk's end is probed over what the disk holds;
    // one that starts past the end holds nothing (the table reader reported both).
    let Some(w) = p.readable_window(Arc::clone(disk)) else {
        return FsInfo::unknown();
    };
    match probe::probe(&w) {
        Ok(mut info) => {
            if let Some(f) = &mut info.problem {
                f.place = place;
                f.offset = Some(p.start_bytes);
                findings.push(f.clone());
            }
            info
        }
        Err(e) => {
            findings.push(
                Finding::damage(place.clone(), format!("cannot probe the filesystem: {e}"))
                    .at(p.start_bytes),
            );
            FsInfo {
                problem: Some(Finding::damage(place, e.to_string()).at(p.start_bytes)),
                ..FsInfo::unknown()
            }
        }
    }
}

/// The reader for an ext partition: ext4-view, or our engine where ext4-view
/// cannot read (it refuses some features, and fails on metadata_csum with 128-byte
/// inodes); the fallback is a note in `findings`, never hidden. A filesystem of more
/// than [`crate::ext::MAX_GROUPS`] block groups is not opened (an `Unsupported`
/// error, from [`reader::open`]).
fn open_reader<D: ReadAt + ?Sized + 'static>(
    disk: &Arc<D>,
    r: &PartitionReport,
    findings: &mut Vec<Finding>,
) -> Result<Box<dyn GuestRead>> {
    let p = &r.partition;
    let past_end = || {
        crate::Error::corrupt(format!(
            "{} starts past the end of the disk",
            partition_place(p.number)
        ))
    };
    // A small read-ahead turns the many small reads of a filesystem's metadata
    // (ext4-view reads group descriptors one by one) into a few large ones.
    let cached = p
        .readable_window(Arc::new(ReadAhead::new(Arc::clone(disk))))
        .ok_or_else(past_end)?;
    let (reader, fallback) = reader::open(cached)?;
    if let Some(why) = fallback {
        findings.push(Finding::note(partition_place(p.number), why));
    }
    Ok(reader)
}

/// The reader of partition `number` of a report's disk (a fallback is a note in
/// `findings`), for commands that read further than `inspect` did.
pub fn open_partition<D: ReadAt + ?Sized + 'static>(
    disk: &Arc<D>,
    report: &Report,
    number: u32,
    findings: &mut Vec<Finding>,
) -> Result<Box<dyn GuestRead>> {
    let r = report
        .partitions
        .iter()
        .find(|r| r.partition.number == number)
        .ok_or_else(|| crate::Error::not_found(format!("no partition {number}")))?;
    open_reader(disk, r, findings)
}

fn read_separate_boot<D: ReadAt + ?Sized + 'static>(
    disk: &Arc<D>,
    partitions: &[PartitionReport],
    boot: u32,
    guest: &mut Guest,
    findings: &mut Vec<Finding>,
) {
    let Some(r) = partitions.iter().find(|r| r.partition.number == boot) else {
        return;
    };
    if !r.filesystem.as_ref().is_some_and(|f| f.fstype.is_ext()) {
        guest.findings.push(Finding::warning(
            partition_place(guest.partition),
            format!("/boot is on partition {boot}, which is not ext: its kernels are not listed"),
        ));
        return;
    }
    let scan = |fs: Box<dyn GuestRead>| {
        let mut k = guest::scan_kernels(&*fs, "/", boot)?;
        crate::kernel::guest::cheap_verdicts(&mut k, &*fs, true);
        Ok(k)
    };
    match open_reader(disk, r, findings).and_then(scan) {
        Ok(k) => guest.kernels = k,
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            findings.push(Finding::note(
                partition_place(boot),
                format!("/boot not read: {e}"),
            ));
        }
        Err(e) => findings.push(
            Finding::damage(
                partition_place(boot),
                format!("cannot list the kernels of /boot: {e}"),
            )
            .at(r.partition.start_bytes),
        ),
    }
}

//! The whole-disk report behind `domuify inspect`: the partition table, the
//! filesystem on every partition, and every installed system found.
//!
//! Read-only by construction: it takes a [`Disk`] and only reads. Damage does not
//! stop it: each damaged part (a table entry past the end, a corrupt superblock, an
//! unreadable fstab) becomes a [`Problem`] and the rest is still reported, as an
//! examiner with a truncated acquisition wants.

use std::sync::Arc;

use serde::Serialize;

use crate::disk::{Disk, ReadAhead, ReadAt};
use crate::error::{ErrorKind, Result};
use crate::guest::reader::{self, GuestRead};
use crate::guest::resolve::{DiskView, PartView};
use crate::guest::{self, Guest};
use crate::hash::{self, Algorithm, Hashes};
use crate::part::{self, Partition, PartitionTable, Slot, TableKind};
use crate::probe::{self, FsInfo, FsType};

/// One damaged part of the disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where: `"partition table"`, `"partition 5"`, `"partition 5: /etc/fstab"`.
    #[serde(rename = "where")]
    pub place: String,
    /// Byte offset on the disk, when known.
    pub offset: Option<u64>,
    /// What is wrong.
    pub message: String,
}

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
    /// Damage found; non-empty means exit code 1.
    pub problems: Vec<Problem>,
    /// Limits met that are not damage (a filesystem the reader cannot open).
    pub notes: Vec<String>,
    /// Hashes of the whole image, when asked for ([`add_hashes`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Hashes>,
}

/// Inspect `disk`: table, filesystems, systems.
pub fn inspect(disk: Arc<Disk>) -> Result<Report> {
    let table: PartitionTable = part::read_table(&*disk, disk.logical_sector_size())?;
    let mut problems: Vec<Problem> = Vec::new();
    if disk.size() == 0 {
        problems.push(Problem {
            place: "disk".into(),
            offset: None,
            message: "the image is empty (0 bytes)".into(),
        });
    }
    problems.extend(table.problems.iter().map(|p| Problem {
        place: "partition table".into(),
        offset: p.offset,
        message: p.message.clone(),
    }));

    let mut partitions = Vec::with_capacity(table.partitions.len());
    for p in &table.partitions {
        let filesystem = if p.slot == Slot::Extended {
            None
        } else {
            Some(probe_partition(&disk, p, &mut problems))
        };
        partitions.push(PartitionReport {
            partition: p.clone(),
            filesystem,
            device_node: disk
                .partition_node(p.number)
                .map(|n| n.display().to_string()),
            hashes: None,
        });
    }

    if nothing_recognised(&table, &partitions) {
        problems.push(Problem {
            place: "disk".into(),
            offset: None,
            message: "nothing recognised: no partition table and no filesystem signature".into(),
        });
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
                label: r.filesystem.as_ref().and_then(|f| f.label.clone()),
                partuuid: r.partition.partuuid.clone(),
                partlabel: r.partition.partlabel.clone(),
                extended: r.partition.slot == Slot::Extended,
            })
            .collect(),
        guest_partition: 0,
    };

    let mut systems = Vec::new();
    let mut notes = Vec::new();
    for r in &partitions {
        let Some(fs) = &r.filesystem else { continue };
        // A damaged ext (cut short by a truncated acquisition, a second
        // signature) is still read as far as it can be: what fails is a problem.
        if !fs.fstype.is_ext() {
            continue;
        }
        let number = r.partition.number;
        let place = partition_place(number);
        let reader = match open_reader(&disk, r, &mut notes) {
            Ok(reader) => reader,
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                notes.push(format!("{place}: not inspected: {e}"));
                continue;
            }
            Err(e) => {
                problems.push(Problem {
                    place,
                    offset: Some(r.partition.start_bytes),
                    message: format!("cannot read the filesystem: {e}"),
                });
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
                problems.extend(g.unreadable.iter().map(|(path, message)| Problem {
                    place: format!("{place}: {path}"),
                    offset: Some(r.partition.start_bytes),
                    message: message.clone(),
                }));
                if let Some(boot) = g.boot_partition() {
                    let sink = (&mut problems, &mut notes);
                    read_separate_boot(&disk, &partitions, boot, &mut g, sink);
                } else {
                    crate::kernel::guest::cheap_verdicts(&mut g.kernels, &*reader, false);
                }
                systems.push(g);
            }
            Ok(None) => {}
            Err(e) => problems.push(Problem {
                place,
                offset: Some(r.partition.start_bytes),
                message: format!("cannot inspect the installed system: {e}"),
            }),
        }
    }

    Ok(Report {
        image: disk.path().display().to_string(),
        device_kind: match disk.kind() {
            crate::disk::DiskKind::ImageFile => "image-file",
            crate::disk::DiskKind::BlockDevice => "block-device",
        },
        size_bytes: disk.size(),
        sector_size: table.sector_size,
        table: table.kind,
        disk_id: table.disk_id.clone(),
        partitions,
        systems,
        problems,
        notes,
        hashes: None,
    })
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
        Err(e) => report.problems.push(Problem {
            place: "disk".into(),
            offset: None,
            message: format!("cannot hash the image: {e}"),
        }),
    }
}

fn partition_place(number: u32) -> String {
    if number == 0 {
        "filesystem".to_string()
    } else {
        format!("partition {number}")
    }
}

fn probe_partition(disk: &Arc<Disk>, p: &Partition, problems: &mut Vec<Problem>) -> FsInfo {
    let place = partition_place(p.number);
    // A partition cut short by the disk's end is probed over what the disk holds;
    // one that starts past the end holds nothing (the table reader reported both).
    let Some(w) = p.readable_window(Arc::clone(disk)) else {
        return FsInfo::unknown();
    };
    match probe::probe(&w) {
        Ok(info) => {
            if let Some(msg) = &info.problem {
                problems.push(Problem {
                    place,
                    offset: Some(p.start_bytes),
                    message: msg.clone(),
                });
            }
            info
        }
        Err(e) => {
            problems.push(Problem {
                place,
                offset: Some(p.start_bytes),
                message: format!("cannot probe the filesystem: {e}"),
            });
            FsInfo {
                problem: Some(e.to_string()),
                ..FsInfo::unknown()
            }
        }
    }
}

/// The reader for an ext partition: ext4-view, or our engine where ext4-view
/// cannot read (it refuses some features, and fails on metadata_csum with 128-byte
/// inodes); the fallback is said in `notes`, never hidden. A filesystem of more
/// than [`crate::ext::MAX_GROUPS`] block groups is not opened (an `Unsupported`
/// error, from [`reader::open`]).
fn open_reader(
    disk: &Arc<Disk>,
    r: &PartitionReport,
    notes: &mut Vec<String>,
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
        notes.push(format!("{}: {why}", partition_place(p.number)));
    }
    Ok(reader)
}

/// The reader of partition `number` of a report's disk (fallbacks said in
/// `notes`), for commands that read further than `inspect` did.
pub fn open_partition(
    disk: &Arc<Disk>,
    report: &Report,
    number: u32,
    notes: &mut Vec<String>,
) -> Result<Box<dyn GuestRead>> {
    let r = report
        .partitions
        .iter()
        .find(|r| r.partition.number == number)
        .ok_or_else(|| crate::Error::not_found(format!("no partition {number}")))?;
    open_reader(disk, r, notes)
}

fn read_separate_boot(
    disk: &Arc<Disk>,
    partitions: &[PartitionReport],
    boot: u32,
    guest: &mut Guest,
    (problems, notes): (&mut Vec<Problem>, &mut Vec<String>),
) {
    let Some(r) = partitions.iter().find(|r| r.partition.number == boot) else {
        return;
    };
    if !r.filesystem.as_ref().is_some_and(|f| f.fstype.is_ext()) {
        guest.warnings.push(format!(
            "/boot is on partition {boot}, which is not ext: its kernels are not listed"
        ));
        return;
    }
    let scan = |fs: Box<dyn GuestRead>| {
        let mut k = guest::scan_kernels(&*fs, "/", boot)?;
        crate::kernel::guest::cheap_verdicts(&mut k, &*fs, true);
        Ok(k)
    };
    match open_reader(disk, r, notes).and_then(scan) {
        Ok(k) => guest.kernels = k,
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            notes.push(format!("{}: /boot not read: {e}", partition_place(boot)));
        }
        Err(e) => problems.push(Problem {
            place: partition_place(boot),
            offset: Some(r.partition.start_bytes),
            message: format!("cannot list the kernels of /boot: {e}"),
        }),
    }
}

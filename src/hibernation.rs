//! Hibernation as a safety state: a swap area holding a hibernation image
//! (`swsuspend`) means its system was not shut down, and the filesystems that
//! system had mounted are still "mounted" in the frozen memory image. Writing to
//! them offline and then resuming corrupts them (the kernel resumes with its
//! cached view of the old metadata), so every write to them is refused unless
//! forced.
//!
//! Owns [`Hibernation`] and the rule deciding what is frozen: the filesystems of
//! every installed system whose fstab names the swap partition (its root and
//! every Linux filesystem its fstab mounts), or, when no fstab names it, every
//! Linux filesystem on the disk (we cannot tell which system hibernated).

use std::sync::Arc;

use serde::Serialize;

use crate::disk::Disk;
use crate::error::{Error, Result};
use crate::finding::Finding;
use crate::inspect::Report;
use crate::part::PartitionTable;
use crate::probe::FsType;

/// A swap partition holding a hibernation image, and what it freezes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hibernation {
    /// The swap partition holding the image.
    pub swap_partition: u32,
    /// Its byte offset on the disk.
    pub swap_offset: u64,
    /// The signature as blkid names it (`s1suspend`, `s2suspend`, `ulsuspend`,
    /// `linhib0001`, `tuxonice`).
    pub signature: String,
    /// Root partitions of the installed systems whose fstab names the swap;
    /// empty when none does.
    pub systems: Vec<u32>,
    /// Partitions holding the Linux filesystems frozen by the image.
    pub frozen: Vec<u32>,
}

/// Every hibernation image on the disk `report` describes, with what it freezes.
pub fn find(report: &Report) -> Vec<Hibernation> {
    let fstype = |n: u32| {
        report
            .partitions
            .iter()
            .find(|p| p.partition.number == n)
            .and_then(|p| p.filesystem.as_ref())
            .map(|f| f.fstype)
    };
    let linux = |n: u32| fstype(n).is_some_and(FsType::is_linux_filesystem);
    let mut out = Vec::new();
    for p in &report.partitions {
        let Some(fs) = &p.filesystem else { continue };
        if fs.fstype != FsType::Swsuspend {
            continue;
        }
        let swap = p.partition.number;
        let systems: Vec<_> = report
            .systems
            .iter()
            .filter(|g| g.fstab.iter().any(|e| e.partition == Some(swap)))
            .collect();
        let mut frozen: Vec<u32> = if systems.is_empty() {
            report
                .partitions
                .iter()
                .map(|r| r.partition.number)
                .filter(|&n| linux(n))
                .collect()
        } else {
            systems
                .iter()
                .flat_map(|g| {
                    std::iter::once(g.partition).chain(g.fstab.iter().filter_map(|e| e.partition))
                })
                .filter(|&n| linux(n))
                .collect()
        };
        frozen.sort_unstable();
        frozen.dedup();
        out.push(Hibernation {
            swap_partition: swap,
            swap_offset: p.partition.start_bytes,
            signature: fs.version.clone().unwrap_or_default(),
            systems: systems.iter().map(|g| g.partition).collect(),
            frozen,
        });
    }
    out
}

/// Refuse a write to `partition` of `disk` when a hibernation image freezes it
/// (an `Error::refused` naming the swap and what to do). Reads nothing more than
/// a probe of each partition unless a swap holds an image; then the disk is
/// inspected (read-only) to find which system it belongs to.
pub fn refuse_if_frozen(disk: &Arc<Disk>, table: &PartitionTable, partition: u32) -> Result<()> {
    let mut any = false;
    for p in table.data_partitions() {
        let Some(w) = p.readable_window(Arc::clone(disk)) else {
            continue;
        };
        if crate::probe::probe(&w)?.fstype == FsType::Swsuspend {
            any = true;
            break;
        }
    }
    if !any {
        return Ok(());
    }
    let report = crate::inspect::inspect(Arc::clone(disk))?;
    match find(&report).iter().find(|h| h.freezes(partition)) {
        Some(h) => Err(Error::refused(h.refusal(partition))),
        None => Ok(()),
    }
}

fn list(parts: &[u32]) -> String {
    let v: Vec<String> = parts.iter().map(u32::to_string).collect();
    v.join(", ")
}

impl Hibernation {
    /// Does the image freeze the filesystem on `partition`?
    pub fn freezes(&self, partition: u32) -> bool {
        self.frozen.contains(&partition)
    }

    /// Whose image it is, in words.
    fn whose(&self) -> String {
        match self.systems.as_slice() {
            [] => "no installed system's fstab names it, so every Linux filesystem on the disk is taken as frozen".to_string(),
            [one] => format!("the system on partition {one} (its fstab names this swap) was hibernated, not shut down"),
            many => format!("the systems on partitions {} (their fstabs name this swap) were hibernated, not shut down", list(many)),
        }
    }

    /// The warning `inspect` reports.
    pub fn finding(&self) -> Finding {
        Finding::warning(
            format!("partition {}", self.swap_partition),
            format!(
                "the swap holds a hibernation image ({}): {}; the filesystems on partitions {} are still mounted in its frozen memory. Writes to them are refused (unless --force): boot that system and shut it down cleanly first",
                self.signature,
                self.whose(),
                list(&self.frozen)
            ),
        )
        .at(self.swap_offset)
    }

    /// Why a write to `partition` is refused.
    pub fn refusal(&self, partition: u32) -> String {
        format!(
            "partition {partition} is frozen by a hibernation image in the swap on partition {} ({}): {}. Writing to it now corrupts it when that system resumes. Boot the system and shut it down cleanly (or discard the image with mkswap on partition {}), then retry; --force writes anyway",
            self.swap_partition,
            self.signature,
            self.whose(),
            self.swap_partition
        )
    }
}

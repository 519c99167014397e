//! Plans: what a writing command will do, as data, before anything is written.
//!
//! A plan is built from what inspecting the image found ([`devmap::DiskFacts`],
//! read by [`gather`], which only reads) and the user's options, by pure code:
//! it can be printed, turned into JSON and diffed. Applying it ([`apply`]) is the
//! only code that writes. Layers:
//! - [`devmap`]: which partitions the domU sees and under which names (shared by
//!   every exporting command: `fstab`, later `config` and `convert`);
//! - [`boot`]: which kernel the domU boots, whether it can, the memory it needs;
//! - [`host`]: what dom0 uses (its root, its swap), from `--host-fstab` and `/proc`;
//! - [`fstab`]: the guest's `/etc/fstab` rewritten entry by entry, and its revert;
//! - [`apply`]: writes a plan through the ext engine.

pub mod apply;
pub mod boot;
pub mod devmap;
pub mod fstab;
pub mod host;

use std::sync::Arc;

use serde::Serialize;

use crate::disk::{Disk, ReadAhead};
use crate::error::{Error, Result};
use crate::finding::Finding;
use crate::guest;
use crate::guest::reader::{self, GuestFs};
use crate::part::Slot;
use devmap::{
    DeviceMap, DiskFacts, DiskKind, HostUse, MapEntry, MapOptions, Mode, PartFacts, SystemFacts,
};
use fstab::{Action, EntryPlan};

/// The guest path of the fstab.
pub const FSTAB: &str = "/etc/fstab";
/// The guest path of the backup kept by `--apply`.
pub const BACKUP: &str = "/etc/fstab.domuify-orig";
/// The GPT type of an EFI system partition, as the table reader spells it.
const ESP_GUID: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// What inspecting the image found, and the chosen guest's fstab.
#[derive(Clone, Debug)]
pub struct FstabInputs {
    /// The disk.
    pub facts: DiskFacts,
    /// The guest's root partition.
    pub root: u32,
    /// Why that root.
    pub root_reason: String,
    /// `/etc/fstab` as it is.
    pub current: Vec<u8>,
    /// `/etc/fstab.domuify-orig`, if there is one.
    pub backup: Option<Vec<u8>>,
}

/// Read what a plan needs: the table, the filesystems, the installed systems, the
/// chosen guest's fstab (symlinks resolved inside the guest, at most
/// [`guest::MAX_FSTAB`] bytes: a larger one is refused without being read) and
/// its backup. Only reads.
pub fn gather(disk: Arc<Disk>, root: Option<u32>) -> Result<FstabInputs> {
    gather_all(disk, root).map(|(inputs, _)| inputs)
}

/// [`gather`], and the whole inspection for the planners that need more than
/// the facts (partition offsets and device nodes, the guest's kernels and
/// hostname): one read of the image for a whole conversion.
pub fn gather_all(
    disk: Arc<Disk>,
    root: Option<u32>,
) -> Result<(FstabInputs, crate::inspect::Report)> {
    let report = crate::inspect::inspect(Arc::clone(&disk))?;
    let parts: Vec<PartFacts> = report
        .partitions
        .iter()
        .map(|r| {
            let fs = r.filesystem.as_ref();
            PartFacts {
                view: crate::guest::resolve::PartView {
                    number: r.partition.number,
                    fstype: fs
                        .map(|f| f.fstype.as_str().to_string())
                        .unwrap_or_default(),
                    uuid: fs.and_then(|f| f.uuid.clone()),
                    label: fs.and_then(|f| f.label.as_ref()).map(ToString::to_string),
                    partuuid: r.partition.partuuid.clone(),
                    partlabel: r.partition.partlabel.clone(),
                    extended: r.partition.slot == Slot::Extended,
                },
                esp: r.partition.type_id.eq_ignore_ascii_case(ESP_GUID)
                    || r.partition.type_id.eq_ignore_ascii_case("0xef"),
            }
        })
        .collect();
    let systems = report
        .systems
        .iter()
        .map(|g| {
            let name = g
                .os_release
                .get("PRETTY_NAME")
                .or_else(|| g.os_release.get("NAME"))
                .cloned()
                .unwrap_or_else(|| "unknown system".into());
            SystemFacts {
                partition: g.partition,
                name: match &g.hostname {
                    Some(h) => format!("{name}, hostname {h}"),
                    None => name,
                },
                kernels: g.kernels.iter().map(|k| k.version.clone()).collect(),
            }
        })
        .collect();
    let facts = DiskFacts {
        image: report.image.clone(),
        kind: match disk.kind() {
            crate::disk::DiskKind::ImageFile => DiskKind::ImageFile,
            crate::disk::DiskKind::BlockDevice => DiskKind::BlockDevice,
        },
        parts,
        systems,
    };
    let (root, root_reason) = facts.choose_root(root)?;
    let part = report
        .partitions
        .iter()
        .find(|r| r.partition.number == root)
        .ok_or_else(|| Error::not_found(format!("no partition {root}")))?;
    let win = part
        .partition
        .readable_window(Arc::new(ReadAhead::new(Arc::clone(&disk))))
        .ok_or_else(|| {
            Error::corrupt(format!("partition {root} starts past the end of the disk"))
        })?;
    let (fs, _) = reader::open(win).map_err(|e| e.context(format!("partition {root}")))?;
    let place = |p: &str| format!("partition {root}: {p}");
    let current = (*fs)
        .read_file(FSTAB, guest::MAX_FSTAB)
        .map_err(|e| e.context(place(FSTAB)))?
        .ok_or_else(|| {
            Error::not_found(format!(
                "{}: no regular file (missing, a directory, or a link that leads nowhere inside the guest)",
                place(FSTAB)
            ))
        })?;
    let backup = (*fs)
        .read_file(BACKUP, guest::MAX_FSTAB)
        .map_err(|e| e.context(place(BACKUP)))?;
    Ok((
        FstabInputs {
            facts,
            root,
            root_reason,
            current,
            backup,
        },
        report,
    ))
}

/// The options of an fstab plan.
#[derive(Clone, Debug, Default)]
pub struct FstabOptions {
    /// The device map's options.
    pub map: MapOptions,
    /// Give back the original fstab instead.
    pub revert: bool,
    /// Keep the old fstab as [`BACKUP`] when writing.
    pub backup: bool,
}

/// What happens to the backup on `--apply`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupAction {
    /// Nothing (no change, `--no-backup`, or a revert).
    None,
    /// Created with the original fstab.
    Create,
    /// Already there and equal to the original: kept.
    Keep,
    /// Already there and different: kept, never overwritten.
    KeepDifferent,
}

/// The fstab plan: the device map, what each entry becomes, the new bytes.
#[derive(Clone, Debug, Serialize)]
pub struct FstabPlan {
    /// The device map's mode.
    pub mode: Mode,
    /// Why that mode.
    pub mode_reason: String,
    /// Every partition the domU sees.
    pub device_map: Vec<MapEntry>,
    /// Every entry line of the fstab and what happens to it.
    pub entries: Vec<EntryPlan>,
    /// What to know before applying.
    pub warnings: Vec<Finding>,
    /// The guest's root partition.
    #[serde(skip)]
    pub root: u32,
    /// Why that root.
    #[serde(skip)]
    pub root_reason: String,
    /// The fstab as it is now.
    #[serde(skip)]
    pub current: Vec<u8>,
    /// The fstab as it was before domuify (the markers undone).
    #[serde(skip)]
    pub original: Vec<u8>,
    /// The fstab as it will be.
    #[serde(skip)]
    pub new: Vec<u8>,
    /// What happens to the backup.
    #[serde(skip)]
    pub backup: BackupAction,
}

impl FstabPlan {
    /// Does applying it change the fstab?
    pub fn changes(&self) -> bool {
        self.new != self.current
    }
}

/// Plan the fstab from what [`gather`] read. Pure. Refuses a binary fstab; the
/// device map's checks and "`/` must end up on an exported device" refuse unless
/// `--force` (then they are warnings).
pub fn plan_fstab(input: &FstabInputs, host: &HostUse, opts: &FstabOptions) -> Result<FstabPlan> {
    let mut map_opts = opts.map.clone();
    if opts.revert {
        // The map is shown for reference only: a revert writes no device name.
        map_opts.force = true;
    }
    let map = device_map(input, host, &map_opts)?;
    plan_fstab_with(input, &map, opts)
}

/// The device map of the guest [`gather`] chose, from its fstab as it was before
/// domuify (the markers undone): the one map every planner of a conversion
/// shares. Refuses a binary fstab; the map's safety checks refuse unless
/// `opts.force`.
pub fn device_map(input: &FstabInputs, host: &HostUse, opts: &MapOptions) -> Result<DeviceMap> {
    let place = format!("partition {}: {FSTAB}", input.root);
    fstab::check_text(&input.current).map_err(|m| Error::refused(format!("{place}: {m}")))?;
    let original = fstab::unmark(&input.current);
    let view = input.facts.view(input.root);
    let lines = guest::fstab::parse(&original);
    let resolved = fstab::resolve_lines(&lines, &view);
    // The map chooses the same root as `gather` did (from the same facts), and
    // says why in the same words.
    DeviceMap::build(&input.facts, &resolved, host, opts)
}

/// Plan the fstab against a map [`device_map`] built. Pure.
pub fn plan_fstab_with(
    input: &FstabInputs,
    map: &DeviceMap,
    opts: &FstabOptions,
) -> Result<FstabPlan> {
    let place = format!("partition {}: {FSTAB}", input.root);
    fstab::check_text(&input.current).map_err(|m| Error::refused(format!("{place}: {m}")))?;
    let original = fstab::unmark(&input.current);
    let view = input.facts.view(input.root);
    let lines = guest::fstab::parse(&original);
    let resolved = fstab::resolve_lines(&lines, &view);
    let mut warnings: Vec<Finding> = Vec::new();
    let (entries, new) = if opts.revert {
        revert_plan(input, &original, &place, &mut warnings)
    } else {
        warnings.extend(map.findings.iter().cloned());
        let rw = fstab::rewrite(&original, &view, map);
        for (line, msg) in &rw.warnings {
            warnings.push(Finding::warning(
                format!("{place} line {line}"),
                msg.clone(),
            ));
        }
        let mut violations = Vec::new();
        let roots: Vec<&EntryPlan> = rw
            .entries
            .iter()
            .filter(|e| {
                resolved
                    .iter()
                    .any(|r| r.line == e.line && r.entry.target == "/")
            })
            .collect();
        for e in &roots {
            if e.action == Action::Comment {
                violations.push(format!(
                    "line {}: / would not be mounted in the domU ({})",
                    e.line, e.reason
                ));
            }
        }
        if roots.is_empty() {
            warnings.push(Finding::note(
                place.clone(),
                format!(
                    "no entry for /: the domU mounts its root from the kernel's root= (/dev/{})",
                    map.vdev(input.root).unwrap_or("?")
                ),
            ));
        }
        if !violations.is_empty() {
            if !opts.map.force {
                return Err(Error::refused(format!(
                    "{place}: {} (--force to write it anyway)",
                    violations.join("; ")
                )));
            }
            for v in violations {
                warnings.push(Finding::warning(place.clone(), format!("{v} (forced)")));
            }
        }
        (rw.entries, rw.text)
    };
    let changes = new != input.current;
    let backup = match (&input.backup, opts.backup && changes && !opts.revert) {
        (_, false) => BackupAction::None,
        (None, true) => BackupAction::Create,
        (Some(b), true) if *b == original => BackupAction::Keep,
        (Some(_), true) => {
            warnings.push(Finding::warning(
                format!("partition {}: {BACKUP}", input.root),
                "exists and differs from the original fstab: kept as it is, not overwritten (the markers in the new fstab still allow --revert)",
            ));
            BackupAction::KeepDifferent
        }
    };
    Ok(FstabPlan {
        mode: map.mode,
        mode_reason: map.mode_reason.clone(),
        device_map: map.device_map.clone(),
        entries,
        warnings,
        root: input.root,
        root_reason: map.root_reason.clone(),
        current: input.current.clone(),
        original,
        new,
        backup,
    })
}

/// A revert: the original from the markers; without markers, from the backup
/// when there is one that differs (said in a warning); else nothing to do.
fn revert_plan(
    input: &FstabInputs,
    original: &[u8],
    place: &str,
    warnings: &mut Vec<Finding>,
) -> (Vec<EntryPlan>, Vec<u8>) {
    let target = if original != input.current.as_slice() {
        if input
            .backup
            .as_ref()
            .is_some_and(|b| b.as_slice() != original)
        {
            warnings.push(Finding::warning(
                format!("partition {}: {BACKUP}", input.root),
                "differs from the original the markers give; the markers are followed",
            ));
        }
        original.to_vec()
    } else if let Some(b) = input.backup.as_ref().filter(|b| **b != input.current) {
        warnings.push(Finding::warning(
            place.to_string(),
            format!("no domuify markers: the original is taken from {BACKUP}"),
        ));
        b.clone()
    } else {
        warnings.push(Finding::note(
            place.to_string(),
            "no domuify markers and no differing backup: nothing to revert",
        ));
        input.current.clone()
    };
    // One entry per line that changes, by line number of the current file.
    let cur = guest::fstab::parse(&input.current);
    let old_lines = guest::fstab::parse(&target);
    let mut entries = Vec::new();
    let shown =
        |raw: &[u8]| String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw)).into_owned();
    let mut k = 0;
    let mut i = 0;
    while let Some(l) = cur.get(i) {
        let next = cur.get(i + 1);
        if l.raw.starts_with(fstab::MARKER) && next.is_some() && target != input.current {
            let next = next.map(|n| n.raw.clone()).unwrap_or_default();
            let restored = old_lines.get(k).map(|o| o.raw.clone()).unwrap_or_default();
            entries.push(EntryPlan {
                line: i + 2,
                action: Action::Rewrite,
                old: shown(&next),
                new: shown(&restored),
                reason: format!("restored from the marker on line {}", i + 1),
            });
            i += 2;
        } else {
            i += 1;
        }
        k += 1;
    }
    (entries, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::guest::resolve::PartView;

    fn inputs(current: &[u8], backup: Option<&[u8]>) -> FstabInputs {
        let part = |n: u32, fstype: &str| PartFacts {
            view: PartView {
                number: n,
                fstype: fstype.into(),
                uuid: Some(format!("0000000{n}-0000-4000-8000-000000000000")),
                ..Default::default()
            },
            esp: false,
        };
        FstabInputs {
            facts: DiskFacts {
                image: "x.img".into(),
                kind: DiskKind::ImageFile,
                parts: vec![part(1, "ext4"), part(2, "swap"), part(3, "ext4")],
                systems: vec![SystemFacts {
                    partition: 1,
                    name: "guest".into(),
                    kernels: Vec::new(),
                }],
            },
            root: 1,
            root_reason: "the only installed system found".into(),
            current: current.to_vec(),
            backup: backup.map(<[u8]>::to_vec),
        }
    }

    const TEXT: &[u8] = b"/dev/sda1 / ext4 defaults 0 1\n/dev/sda2 none swap sw 0 0\n/dev/sdb1 /data ext4 defaults 0 2\n/dev/sda3 /media/x ext4 noauto 0 0\n";

    fn opts(mode: Mode) -> FstabOptions {
        FstabOptions {
            map: MapOptions {
                mode: Some(mode),
                ..Default::default()
            },
            revert: false,
            backup: true,
        }
    }

    #[test]
    fn backup_actions_and_reverts() {
        let host = HostUse::default();
        let p = plan_fstab(&inputs(TEXT, None), &host, &opts(Mode::Partitions)).unwrap();
        assert_eq!(p.backup, BackupAction::Create);
        assert!(p.changes());
        let new = p.new.clone();
        // Applied: a second plan changes nothing; the backup that holds the
        // original is kept; one that differs is kept too, with a warning.
        let p = plan_fstab(&inputs(&new, Some(TEXT)), &host, &opts(Mode::Partitions)).unwrap();
        assert!(!p.changes());
        let p = plan_fstab(&inputs(&new, Some(TEXT)), &host, &opts(Mode::WholeDisk)).unwrap();
        assert!(p.changes());
        assert_eq!(p.backup, BackupAction::Keep);
        let p = plan_fstab(
            &inputs(&new, Some(b"other\n")),
            &host,
            &opts(Mode::WholeDisk),
        )
        .unwrap();
        assert_eq!(p.backup, BackupAction::KeepDifferent);
        assert!(p
            .warnings
            .iter()
            .any(|w| w.message.contains("not overwritten")));
        // Revert: from the markers; without markers, from a differing backup.
        let revert = FstabOptions {
            revert: true,
            ..opts(Mode::Partitions)
        };
        let p = plan_fstab(&inputs(&new, None), &host, &revert).unwrap();
        assert_eq!(p.new, TEXT);
        assert_eq!(p.backup, BackupAction::None);
        assert!(p.entries.iter().all(|e| e.action == Action::Rewrite));
        let p = plan_fstab(&inputs(b"edited\n", Some(TEXT)), &host, &revert).unwrap();
        assert_eq!(p.new, TEXT);
        let p = plan_fstab(&inputs(TEXT, None), &host, &revert).unwrap();
        assert!(!p.changes());
    }

    #[test]
    fn refusals() {
        let host = HostUse::default();
        let e = plan_fstab(
            &inputs(b"\0\x01binary", None),
            &host,
            &opts(Mode::Partitions),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        // `/` on a partition that is not exported (the root entry names 3, the
        // guest is 1): refused, or with --force a warning.
        let text = b"/dev/sda3 / ext4 defaults 0 1\n";
        let e = plan_fstab(&inputs(text, None), &host, &opts(Mode::Partitions)).unwrap_err();
        assert!(e.to_string().contains("/ would not be mounted"), "{e}");
        let mut forced = opts(Mode::Partitions);
        forced.map.force = true;
        let p = plan_fstab(&inputs(text, None), &host, &forced).unwrap();
        assert!(p.warnings.iter().any(|w| w.message.contains("(forced)")));
    }
}

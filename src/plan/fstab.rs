//! The fstab plan: the guest's `/etc/fstab` rewritten for the domU, entry by
//! entry, as data (what each entry becomes and why, the new bytes), before
//! anything is written.
//!
//! Pure text, no I/O. The rules:
//! - an entry naming an exported partition by a device name (`/dev/hda5`,
//!   `/dev/disk/by-id/…`, `/dev/disk/by-path/…`) gets the domU's name
//!   (`/dev/xvda5`); `UUID=`/`LABEL=` stay; `PARTUUID=`/`PARTLABEL=` stay in
//!   whole-disk mode and become `UUID=` of the filesystem in partition mode;
//! - an entry naming a partition that is not exported, another disk, or a
//!   `UUID=`/`LABEL=` found nowhere (while no exported partition could hold it
//!   inside LVM, RAID or LUKS) is commented out: a marker line
//!   `# domuify: <reason>`, then `#` and the original line verbatim;
//! - device-mapper, LVM and RAID sources are kept, with a warning;
//! - a rewritten line is preceded by `# domuify: was <original line>`;
//! - everything else (comments, blank lines, pseudo, network and bind mounts,
//!   swap files, malformed lines, spacing, CRLF, a missing final newline) is kept
//!   byte for byte.
//!
//! The markers make it reversible without a backup: [`unmark`] gives back the
//! original bytes, and a plan is always made from the unmarked text, so a second
//! run with the same options changes nothing.

use serde::Serialize;

use super::devmap::{DeviceMap, Mode, Resolved};
use crate::guest::fstab::{self, LineKind};
use crate::guest::resolve::{self, DiskView, ResolvedBy, SourceKind};

/// The marker prefix of every line domuify adds.
pub const MARKER: &[u8] = b"# domuify: ";
/// The marker of a rewritten line: the original follows it.
pub const WAS: &[u8] = b"# domuify: was ";

/// What happens to an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Left as it is.
    Keep,
    /// The source is replaced (a marker keeps the original).
    Rewrite,
    /// Commented out (a marker says why).
    Comment,
}

/// One entry of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryPlan {
    /// 1-based line number in the original fstab.
    pub line: usize,
    /// What happens to it.
    pub action: Action,
    /// The line as it was (without its line ending).
    pub old: String,
    /// The line as it will be (without its line ending and marker).
    pub new: String,
    /// Why.
    pub reason: String,
}

/// The whole rewrite.
#[derive(Clone, Debug, Default)]
pub struct Rewrite {
    /// One plan per entry line.
    pub entries: Vec<EntryPlan>,
    /// The new fstab.
    pub text: Vec<u8>,
    /// Warnings, as (line, message).
    pub warnings: Vec<(usize, String)>,
}

/// A file split into raw lines (without `\n`), and whether it ended with one.
fn split_lines(text: &[u8]) -> (Vec<&[u8]>, bool) {
    if text.is_empty() {
        return (Vec::new(), false);
    }
    let (body, final_nl) = match text.strip_suffix(b"\n") {
        Some(b) => (b, true),
        None => (text, false),
    };
    (body.split(|&b| b == b'\n').collect(), final_nl)
}

fn join_lines(lines: &[Vec<u8>], final_nl: bool) -> Vec<u8> {
    let mut out = lines.join(&b'\n');
    if final_nl && !lines.is_empty() {
        out.push(b'\n');
    }
    out
}

/// The original fstab behind domuify's markers: each `# domuify: was L` line and
/// the line after it become `L`; each `# domuify: <reason>` line followed by a
/// line starting with `#` becomes that line without its `#`. Text without markers
/// is given back unchanged.
pub fn unmark(text: &[u8]) -> Vec<u8> {
    let (lines, final_nl) = split_lines(text);
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while let Some(&line) = lines.get(i) {
        let next = lines.get(i + 1);
        if let (Some(orig), Some(_)) = (line.strip_prefix(WAS), next) {
            out.push(orig.to_vec());
            i += 2;
            continue;
        }
        if let (true, Some(n)) = (line.starts_with(MARKER), next) {
            if let Some(orig) = n.strip_prefix(b"#") {
                out.push(orig.to_vec());
                i += 2;
                continue;
            }
        }
        out.push(line.to_vec());
        i += 1;
    }
    join_lines(&out, final_nl)
}

/// Does the text carry domuify markers?
pub fn has_markers(text: &[u8]) -> bool {
    unmark(text) != text
}

/// The byte range of the first field of a raw entry line.
fn first_field(raw: &[u8]) -> (usize, usize) {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = raw.iter().position(|b| !blank(b)).unwrap_or(raw.len());
    let len = raw[start..]
        .iter()
        .position(blank)
        .unwrap_or(raw.len() - start);
    (start, start + len)
}

/// fstab's escapes for a field (a space is `\040`).
fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            '#' if out.is_empty() => out.push_str("\\043"),
            c => out.push(c),
        }
    }
    out
}

/// `raw` with its first field replaced by `source`; when the new field is longer
/// and the spaces after it allow, as many spaces are dropped so that the columns
/// after it stay where they were.
fn replace_source(raw: &[u8], source: &str) -> Vec<u8> {
    let (s, e) = first_field(raw);
    let new = escape(source);
    let grow = new.len().saturating_sub(e - s);
    let spaces = raw[e..].iter().take_while(|&&b| b == b' ').count();
    let drop = if spaces > grow { grow } else { 0 };
    let mut out = Vec::with_capacity(raw.len() + new.len());
    out.extend_from_slice(&raw[..s]);
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&raw[e + drop..]);
    out
}

/// Text of a raw line for the plan: without a trailing `\r`, lossy UTF-8.
fn shown(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw)).into_owned()
}

/// The `\r` of a CRLF line, to end the lines added next to it the same way.
fn eol(raw: &[u8]) -> &'static [u8] {
    if raw.ends_with(b"\r") {
        b"\r"
    } else {
        b""
    }
}

/// Could an exported partition hold this `UUID=`/`LABEL=` inside a container
/// (an LVM physical volume, a RAID member, a LUKS volume)?
fn container_exported(view: &DiskView, map: &DeviceMap) -> Option<u32> {
    view.parts
        .iter()
        .filter(|p| map.vdev(p.number).is_some())
        .find(|p| {
            matches!(
                p.fstype.as_str(),
                "LVM2_member"
                    | "linux_raid_member"
                    | "crypto_LUKS"
                    | "ddf_raid_member"
                    | "isw_raid_member"
            )
        })
        .map(|p| p.number)
}

/// A device-mapper, LVM or RAID source: the guest assembles it itself.
fn is_assembled(source: &str) -> bool {
    let Some(name) = source.strip_prefix("/dev/") else {
        return false;
    };
    name.starts_with("mapper/")
        || name.starts_with("md")
        || name.starts_with("dm-")
        || ["disk/by-id/dm-", "disk/by-id/lvm-", "disk/by-id/md-"]
            .iter()
            .any(|p| name.starts_with(p))
        || (name.matches('/').count() == 1 && !name.starts_with("disk/"))
}

/// Resolve every entry of `lines` against `view`.
pub fn resolve_lines(lines: &[fstab::Line], view: &DiskView) -> Vec<Resolved> {
    let entries: Vec<(usize, &fstab::Entry)> = lines
        .iter()
        .filter_map(|l| match &l.kind {
            LineKind::Entry(e) => Some((l.number, e)),
            _ => None,
        })
        .collect();
    let own = resolve::own_disk(entries.iter().map(|(_, e)| *e), view.guest_partition);
    entries
        .into_iter()
        .map(|(line, e)| Resolved {
            line,
            entry: e.clone(),
            resolution: resolve::resolve(e, view, &own),
        })
        .collect()
}

enum Decision {
    Keep(String),
    Rewrite(String, String),
    Comment(&'static str, String),
}

fn decide(
    r: &Resolved,
    view: &DiskView,
    map: &DeviceMap,
    warn: &mut Vec<(usize, String)>,
) -> Decision {
    let src = r.entry.source.as_str();
    let res = &r.resolution;
    let note = res.note.as_deref().unwrap_or_default();
    match res.kind {
        SourceKind::Partition => {
            let Some(n) = res.partition else {
                return Decision::Keep("no partition".into());
            };
            let Some(vdev) = map.vdev(n) else {
                return Decision::Comment(
                    "not exported to the domU",
                    format!("partition {n} is not exported to the domU"),
                );
            };
            let dev = format!("/dev/{vdev}");
            let by = res.resolved_by;
            let new = match by {
                Some(ResolvedBy::DeviceName | ResolvedBy::ById | ResolvedBy::ByPath) => {
                    Some(dev.clone())
                }
                Some(ResolvedBy::Partuuid | ResolvedBy::Partlabel)
                    if map.mode == Mode::Partitions =>
                {
                    let part = view.parts.iter().find(|p| p.number == n);
                    match part.and_then(|p| p.uuid.as_deref()) {
                        Some(u) => Some(format!("UUID={u}")),
                        None => Some(dev.clone()),
                    }
                }
                _ => None,
            };
            if !note.is_empty() {
                warn.push((r.line, format!("{src}: {note}")));
            }
            match new {
                Some(new) if new != src => Decision::Rewrite(
                    new,
                    match by {
                        Some(ResolvedBy::Partuuid | ResolvedBy::Partlabel) => format!(
                            "partition {n} is {dev} in the domU, which sees no partition table: named by its filesystem UUID"
                        ),
                        _ => format!("partition {n} is {dev} in the domU"),
                    },
                ),
                _ => Decision::Keep(format!("partition {n} is exported as {dev}; {src} stays valid")),
            }
        }
        SourceKind::OtherDisk => Decision::Comment("other disk", note.to_string()),
        SourceKind::Pseudo | SourceKind::Network | SourceKind::Bind | SourceKind::SwapFile => {
            Decision::Keep(note.to_string())
        }
        SourceKind::Unresolved => {
            if is_assembled(src) {
                warn.push((
                    r.line,
                    format!("{src} is a device-mapper, LVM or RAID device: kept; the domU assembles it only if every member is exported"),
                ));
                return Decision::Keep(format!("{note}: kept, the guest assembles it"));
            }
            let tag = [
                "UUID=",
                "LABEL=",
                "/dev/disk/by-uuid/",
                "/dev/disk/by-label/",
            ]
            .iter()
            .any(|p| src.starts_with(p));
            if tag {
                if let Some(c) = container_exported(view, map) {
                    warn.push((
                        r.line,
                        format!("{src} is on no filesystem of this disk; kept, as it may live inside exported partition {c} ({})",
                            view.parts.iter().find(|p| p.number == c).map_or("", |p| p.fstype.as_str())),
                    ));
                    return Decision::Keep(format!(
                        "{note}; may live inside exported partition {c}"
                    ));
                }
            }
            if !src.starts_with('/') || src.starts_with("/dev/") || tag {
                warn.push((r.line, format!("{src}: {note}: commented out")));
                Decision::Comment("unresolved", note.to_string())
            } else {
                // A file used as a device (a loop-mounted image): the guest has it.
                Decision::Keep(format!("{note}: a file of the guest, kept"))
            }
        }
    }
}

/// Rewrite `text` (an fstab without domuify markers: see [`unmark`]) for the
/// domU described by `map`; `view.guest_partition` is the guest's root.
pub fn rewrite(text: &[u8], view: &DiskView, map: &DeviceMap) -> Rewrite {
    let parsed = fstab::parse(text);
    let resolved = resolve_lines(&parsed, view);
    let (raws, final_nl) = split_lines(text);
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(raws.len() + 8);
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    for (i, &raw) in raws.iter().enumerate() {
        let number = i + 1;
        if let Some(LineKind::Malformed { reason }) = parsed.get(i).map(|l| &l.kind) {
            warnings.push((number, format!("not an entry ({reason}): kept as it is")));
        }
        let Some(r) = resolved.iter().find(|r| r.line == number) else {
            out.push(raw.to_vec());
            continue;
        };
        let (action, new_line, reason) = match decide(r, view, map, &mut warnings) {
            Decision::Keep(why) => {
                out.push(raw.to_vec());
                (Action::Keep, raw.to_vec(), why)
            }
            Decision::Rewrite(source, why) => {
                let new = replace_source(raw, &source);
                out.push([WAS, raw].concat());
                out.push(new.clone());
                (Action::Rewrite, new, why)
            }
            Decision::Comment(marker, why) => {
                let new = [b"#", raw].concat();
                out.push([MARKER, marker.as_bytes(), eol(raw)].concat());
                out.push(new.clone());
                (
                    Action::Comment,
                    new,
                    if why.is_empty() {
                        marker.to_string()
                    } else {
                        why
                    },
                )
            }
        };
        entries.push(EntryPlan {
            line: number,
            action,
            old: shown(raw),
            new: shown(&new_line),
            reason,
        });
    }
    Rewrite {
        entries,
        text: join_lines(&out, final_nl),
        warnings,
    }
}

/// Why a text cannot be an fstab to rewrite: binary data (a NUL or another
/// control byte than tab, CR and LF).
pub fn check_text(text: &[u8]) -> Result<(), String> {
    if let Some(at) = text
        .iter()
        .position(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n')) || b == 0x7f)
    {
        let line = text[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(format!(
            "binary data (byte {:#04x} at offset {at:#x}, line {line}): not a text fstab; nothing rewritten",
            text[at]
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "fstab_tests.rs"]
mod tests;

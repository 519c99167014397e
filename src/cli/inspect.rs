//! Handler of `domuify inspect`: human tables or one JSON document.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Context;

use super::{DamageFound, InspectArgs};
use crate::disk::{Access, Disk};
use crate::guest::resolve::SourceKind;
use crate::inspect::{self, Report};

pub fn run(a: InspectArgs) -> anyhow::Result<()> {
    let disk = Arc::new(Disk::open(&a.image, Access::ReadOnly)?);
    let report = inspect::inspect(Arc::clone(&disk))
        .with_context(|| format!("inspecting {}", a.image.display()))?;
    if a.json {
        let mut out = serde_json::to_string_pretty(&report)?;
        out.push('\n');
        print_out(&out)?;
    } else {
        print_out(&human(&report))?;
    }
    if a.stats {
        let (reads, bytes, _, _) = disk.stats().snapshot();
        eprintln!("stats: {reads} reads, {bytes} bytes read");
    }
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(DamageFound.into())
    }
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
fn print_out(s: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// Bytes as a short human size (`16.0 MiB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Render rows as aligned columns.
fn table(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| shown(c)).collect())
        .collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::from("  ");
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(
                    line,
                    "{cell:<w$}  ",
                    w = widths.get(c).copied().unwrap_or(0)
                );
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn human(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}: {} {} ({} bytes), {}-byte sectors",
        shown(&r.image),
        r.device_kind.replace('-', " "),
        human_size(r.size_bytes),
        r.size_bytes,
        r.sector_size
    );
    let table_name = match r.table {
        crate::part::TableKind::Mbr => "MBR",
        crate::part::TableKind::Gpt => "GPT",
        crate::part::TableKind::None => "none (a bare filesystem)",
    };
    let _ = writeln!(
        o,
        "Partition table: {table_name}{}\n",
        r.disk_id
            .as_ref()
            .map(|d| format!(", disk id {}", shown(d)))
            .unwrap_or_default()
    );
    let mut rows = vec![[
        "#", "SLOT", "START", "SIZE", "TYPE", "FS", "LABEL", "UUID", "STATE",
    ]
    .map(String::from)
    .to_vec()];
    for p in &r.partitions {
        let fs = p.filesystem.as_ref();
        let state = fs
            .and_then(|f| f.ext.as_ref())
            .map(|e| {
                let mut s = format!("{:?}", e.state)
                    .to_lowercase()
                    .replace("notclean", "not-clean");
                if e.needs_recovery {
                    s.push_str(", needs recovery");
                }
                s
            })
            .or_else(|| {
                fs.and_then(|f| f.problem.as_ref())
                    .map(|_| "DAMAGED".to_string())
            })
            .unwrap_or_default();
        let ty = match &p.partition.type_name {
            Some(n) if p.partition.type_id.starts_with("0x") => {
                format!("{} {n}", p.partition.type_id)
            }
            Some(n) => n.clone(),
            None => p.partition.type_id.clone(),
        };
        rows.push(vec![
            p.partition.number.to_string(),
            format!("{:?}", p.partition.slot).to_lowercase(),
            human_size(p.partition.start_bytes),
            human_size(p.partition.size_bytes),
            ty,
            fs.map(|f| f.fstype.as_str().to_string())
                .unwrap_or_else(|| "-".into()),
            fs.and_then(|f| f.label.as_ref())
                .map(ToString::to_string)
                .unwrap_or_default(),
            fs.and_then(|f| f.uuid.clone()).unwrap_or_default(),
            state,
        ]);
    }
    o.push_str(&table(&rows));

    for g in &r.systems {
        let name = g
            .os_release
            .get("PRETTY_NAME")
            .or_else(|| g.os_release.get("NAME"))
            .map(|n| shown(n))
            .unwrap_or_else(|| "unknown OS".into());
        let _ = writeln!(
            o,
            "\nInstalled system on partition {}: {name}{}",
            g.partition,
            g.hostname
                .as_ref()
                .map(|h| format!(", hostname {}", shown(h)))
                .unwrap_or_default()
        );
        let _ = writeln!(o, "  /etc/fstab:");
        let mut rows = vec![["LINE", "SOURCE", "TARGET", "TYPE", "RESOLVES TO"]
            .map(String::from)
            .to_vec()];
        for e in &g.fstab {
            let to = resolves_to(e);
            rows.push(vec![
                e.line.to_string(),
                e.source.clone(),
                e.target.clone(),
                e.fstype.clone(),
                to,
            ]);
        }
        o.push_str(&indent(&table(&rows)));
        if g.kernels.is_empty() {
            let _ = writeln!(o, "  kernels: none in /boot");
        } else {
            let _ = writeln!(o, "  kernels:");
            for k in &g.kernels {
                let _ = writeln!(
                    o,
                    "    {}  {}  initrd: {}  config: {}",
                    shown(&k.version),
                    shown(&k.image),
                    shown(k.initrd.as_deref().unwrap_or("none")),
                    shown(k.config.as_deref().unwrap_or("none"))
                );
            }
        }
        let _ = writeln!(
            o,
            "  module trees: {}",
            if g.module_trees.is_empty() {
                "none".to_string()
            } else {
                shown(&g.module_trees.join(", "))
            }
        );
        for w in &g.warnings {
            let _ = writeln!(o, "  warning: {}", shown(w));
        }
    }
    if r.systems.is_empty() {
        let _ = writeln!(
            o,
            "\nNo installed Linux system found (no ext filesystem with /etc/fstab)."
        );
    }
    for n in &r.notes {
        let _ = writeln!(o, "\nnote: {}", shown(n));
    }
    for w in &r.warnings {
        let _ = writeln!(o, "\n{}", shown(&w.to_string()));
    }
    if !r.problems.is_empty() {
        let _ = writeln!(o, "\nProblems found:");
        for p in &r.problems {
            let _ = writeln!(
                o,
                "  {}{}: {}",
                shown(&p.place),
                p.offset.map(|x| format!(" at {x:#x}")).unwrap_or_default(),
                shown(&p.message)
            );
        }
    }
    o
}

/// The RESOLVES TO column: the partition and how it was found, with the note
/// when there is one (an assumption, a UUID found twice), or what else it is.
fn resolves_to(e: &crate::guest::FstabEntry) -> String {
    match (e.kind, e.partition) {
        (SourceKind::Partition, Some(n)) => {
            let by = e
                .resolved_by
                .and_then(|b| serde_json::to_value(b).ok())
                .and_then(|v| v.as_str().map(|s| format!("by {s}")));
            let why: Vec<String> = by.into_iter().chain(e.note.clone()).collect();
            if why.is_empty() {
                format!("partition {n}")
            } else {
                format!("partition {n} ({})", why.join("; "))
            }
        }
        _ => e.note.clone().unwrap_or_else(|| format!("{:?}", e.kind)),
    }
}

/// A string from the image as it may be printed to a terminal: control
/// characters (an escape sequence in a hostile hostname or label, a newline in a
/// GPT name) and bidirectional overrides are shown escaped (`\x1b`,
/// `\u{202e}`), never sent raw.
fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            // OK to print as two hex digits: control characters are below 0xA0.
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else if matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            // Bidirectional overrides would reorder what follows them.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::resolve::ResolvedBy;
    use crate::guest::FstabEntry;

    #[test]
    fn resolution_column_keeps_the_note() {
        let mut e = FstabEntry {
            line: 3,
            source: "/dev/sda3".into(),
            target: "/boot".into(),
            fstype: "ext4".into(),
            options: "defaults".into(),
            dump: 0,
            pass: 2,
            partition: Some(3),
            resolved_by: Some(ResolvedBy::DeviceName),
            kind: SourceKind::Partition,
            note: Some("assumed sda is the guest's own disk".into()),
        };
        assert_eq!(
            resolves_to(&e),
            "partition 3 (by device-name; assumed sda is the guest's own disk)"
        );
        e.note = None;
        assert_eq!(resolves_to(&e), "partition 3 (by device-name)");
        e.kind = SourceKind::OtherDisk;
        e.partition = None;
        e.note = Some("/dev/sdb1 is on another disk".into());
        assert_eq!(resolves_to(&e), "/dev/sdb1 is on another disk");
    }
}

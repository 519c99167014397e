//! Handler of `domuify inspect`: human tables or JSON, for one image or many
//! (inspected in parallel on bounded threads, reported in the order given), with
//! the image and partition hashes when asked for.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::{DamageFound, HashArg, InspectArgs};
use crate::batch;
use crate::disk::{Access, Disk, ReadAt};
use crate::finding::{partition_place, Finding, Severity};
use crate::guest::resolve::SourceKind;
use crate::hash::Algorithm;
use crate::inspect::{self, Report};

/// What one image gave: its report and the I/O done (reads, bytes), or why it
/// could not be inspected at all.
type Outcome = anyhow::Result<(Report, (u64, u64))>;

pub fn run(a: InspectArgs) -> anyhow::Result<()> {
    let algorithms: Vec<Algorithm> = a
        .hash
        .iter()
        .map(|h| match h {
            HashArg::Sha256 => Algorithm::Sha256,
            HashArg::Sha1 => Algorithm::Sha1,
            HashArg::Md5 => Algorithm::Md5,
        })
        .collect();
    // A progress bar per image being hashed, on a terminal only.
    let bars = (!algorithms.is_empty() && std::io::stderr().is_terminal()).then(|| {
        indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr())
    });
    let one = |path: &std::path::PathBuf| inspect_one(path, &algorithms, bars.as_ref());

    if let [path] = a.images.as_slice() {
        // One image: today's document, and an image that cannot be opened is an
        // error of the command.
        let (report, stats) = one(path)?;
        if a.json {
            let mut out = serde_json::to_string_pretty(&report)?;
            out.push('\n');
            print_out(&out)?;
        } else {
            print_out(&human(&report))?;
        }
        if a.stats {
            eprintln!("stats: {} reads, {} bytes read", stats.0, stats.1);
        }
        return if !report.damaged() {
            Ok(())
        } else {
            Err(DamageFound.into())
        };
    }

    let jobs = a.jobs.map(std::num::NonZeroUsize::get).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut failed = false;
    let mut printed = Ok(());
    batch::ordered(&a.images, jobs, one, |i, outcome: Outcome| {
        let path = &a.images[i];
        let text = match &outcome {
            Ok((report, stats)) => {
                failed |= report.damaged();
                if a.stats {
                    eprintln!(
                        "stats: {}: {} reads, {} bytes read",
                        path.display(),
                        stats.0,
                        stats.1
                    );
                }
                if a.json {
                    serde_json::to_string(report).map(|mut l| {
                        l.push('\n');
                        l
                    })
                } else {
                    Ok(human(report))
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("domuify: {e:#}");
                if a.json {
                    serde_json::to_string(&unreadable(path, e)).map(|mut l| {
                        l.push('\n');
                        l
                    })
                } else {
                    Ok(format!("cannot inspect: {}\n", shown(&format!("{e:#}"))))
                }
            }
        };
        let text = match text {
            Ok(t) if a.json => t,
            Ok(t) => {
                let sep = if i == 0 { "" } else { "\n" };
                format!("{sep}==> {} <==\n{t}", shown(&path.display().to_string()))
            }
            Err(e) => {
                printed = Err(e.into());
                return;
            }
        };
        if printed.is_ok() {
            printed = print_out(&text);
        }
    });
    printed?;
    if failed {
        Err(DamageFound.into())
    } else {
        Ok(())
    }
}

/// Open, inspect and (when asked) hash one image.
fn inspect_one(
    path: &Path,
    algorithms: &[Algorithm],
    bars: Option<&indicatif::MultiProgress>,
) -> Outcome {
    let disk = Arc::new(Disk::open(path, Access::ReadOnly)?);
    let mut report = inspect::inspect(Arc::clone(&disk))
        .with_context(|| format!("inspecting {}", path.display()))?;
    if !algorithms.is_empty() {
        let bar = bars.map(|m| m.add(hash_bar(disk.size(), path)));
        let progress = |done: u64| {
            if let Some(b) = &bar {
                b.set_position(done);
            }
        };
        inspect::add_hashes(&mut report, &disk, algorithms, &progress);
        if let Some(b) = bar {
            b.finish_and_clear();
        }
    }
    let (reads, bytes, _, _) = disk.stats().snapshot();
    Ok((report, (reads, bytes)))
}

/// The bar of one image's hash pass: bytes, rate, time left.
fn hash_bar(size: u64, path: &Path) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(size);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix} {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
    ) {
        pb.set_style(style);
    }
    pb.set_prefix(format!("hashing {}", shown(&path.display().to_string())));
    pb
}

/// The JSON line of an image that could not be inspected at all: its `image`
/// and `findings` (one: the damage), as in a report.
#[derive(serde::Serialize)]
struct Unreadable {
    image: String,
    findings: [Finding; 1],
}

fn unreadable(path: &Path, e: &anyhow::Error) -> Unreadable {
    Unreadable {
        image: path.display().to_string(),
        findings: [Finding::damage("image", format!("cannot inspect: {e:#}"))],
    }
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
pub(super) fn print_out(s: &str) -> anyhow::Result<()> {
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
    if let Some(h) = &r.hashes {
        o.push_str(&hashes(r, h));
    }

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
                let _ = writeln!(o, "      xen: {}", k.verdict.join(", "));
                for r in &k.reasons {
                    let _ = writeln!(o, "        - {}", shown(r));
                }
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
        // Its damage is under "Problems found", with the rest of the disk's.
        let place = partition_place(g.partition);
        for f in g.findings.iter().filter(|f| f.severity != Severity::Damage) {
            let _ = writeln!(o, "  {}", shown(&within(f, &place)));
        }
    }
    if r.systems.is_empty() {
        let _ = writeln!(
            o,
            "\nNo installed Linux system found (no ext filesystem with /etc/fstab)."
        );
    }
    // A system's own findings are shown under it (above).
    let of_a_system = |f: &Finding| r.systems.iter().any(|g| g.findings.contains(f));
    for n in r.findings_of(Severity::Note).filter(|f| !of_a_system(f)) {
        let _ = writeln!(o, "\nnote: {}: {}", shown(&n.place), shown(&n.message));
    }
    for w in r.findings_of(Severity::Warning).filter(|f| !of_a_system(f)) {
        let _ = writeln!(o, "\n{}", shown(&w.to_string()));
    }
    if r.damaged() {
        let _ = writeln!(o, "\nProblems found:");
        for p in r.findings_of(Severity::Damage) {
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

/// The hashes of the image and of each partition, one row per algorithm.
fn hashes(r: &Report, whole: &crate::hash::Hashes) -> String {
    let mut rows = vec![["OF", "ALGORITHM", "HASH"].map(String::from).to_vec()];
    let parts = r.partitions.iter().filter_map(|p| {
        let h = p.hashes.as_ref()?;
        Some((format!("partition {}", p.partition.number), h))
    });
    for (of, h) in std::iter::once(("image".to_string(), whole)).chain(parts) {
        for (algorithm, hex) in h {
            rows.push(vec![of.clone(), algorithm.clone(), hex.clone()]);
        }
    }
    format!("\nHashes:\n{}", table(&rows))
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

/// A system's finding as it reads under the system's heading: its severity, and
/// the place inside the system (`warning: /etc/fstab line 3: …`), or the message
/// alone when it is about the whole system.
fn within(f: &Finding, system: &str) -> String {
    let sev = match f.severity {
        Severity::Note => "note",
        Severity::Warning => "warning",
        Severity::Damage => "damage",
    };
    match f
        .place
        .strip_prefix(system)
        .and_then(|p| p.strip_prefix(": "))
    {
        Some(inside) => format!("{sev}: {inside}: {}", f.message),
        None if f.place == system => format!("{sev}: {}", f.message),
        None => format!("{sev}: {}: {}", f.place, f.message),
    }
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

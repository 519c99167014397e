//! The installed system on an ext filesystem, as the planners see it: OS release,
//! hostname, `/etc/fstab` with every entry resolved to a partition of the image,
//! kernels in `/boot` (with their initrd and config), and module trees in
//! `/lib/modules` (a usrmerge `/lib -> usr/lib` is followed inside the guest).
//!
//! One model, read once by `inspect` and used by every later command.

pub mod fstab;
pub mod reader;
pub mod resolve;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Result;
use crate::ext::FileType;
use crate::finding::{partition_place, Finding};
use reader::GuestFs;
use resolve::{DiskView, ResolvedBy, SourceKind};

/// Largest fstab read (bytes); a larger one is reported, not read.
pub const MAX_FSTAB: u64 = 1 << 20;
/// Largest os-release or hostname read (bytes).
pub const MAX_SMALL_FILE: u64 = 64 << 10;
/// Most kernels or module trees listed.
const MAX_LISTED: usize = 256;

/// One fstab entry, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FstabEntry {
    /// 1-based line number in the file.
    pub line: usize,
    /// fs_spec.
    pub source: String,
    /// Mount point.
    pub target: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mount options.
    pub options: String,
    /// fs_freq.
    pub dump: u32,
    /// fs_passno.
    pub pass: u32,
    /// The partition of this image it names, if any.
    pub partition: Option<u32>,
    /// How that partition was found.
    pub resolved_by: Option<ResolvedBy>,
    /// What the source is.
    pub kind: SourceKind,
    /// Why, in words (always in the JSON document, `null` when there is nothing
    /// to say).
    pub note: Option<String>,
}

/// A kernel found in the guest's `/boot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Kernel {
    /// Version string from the file name (`6.1.0-27-amd64`).
    pub version: String,
    /// Path of the kernel image inside the guest (`/boot/vmlinuz-…`).
    pub image: String,
    /// Path of its initrd, if one was found.
    pub initrd: Option<String>,
    /// Path of its config, if one was found.
    pub config: Option<String>,
    /// The partition `/boot` lives on.
    pub partition: u32,
    /// The cheap verdict (config file and image header only, see
    /// [`crate::kernel::Depth::Cheap`]): `pv-ready`/`pvh-ready`, `not-ready` or
    /// `unknown`; filled by `inspect`.
    pub verdict: Vec<&'static str>,
    /// Its reasons.
    pub reasons: Vec<String>,
}

/// An installed Linux system.
#[derive(Clone, Debug, Serialize)]
pub struct Guest {
    /// Partition holding the root filesystem.
    pub partition: u32,
    /// `/etc/os-release` (or `/usr/lib/os-release`) as key/value pairs.
    pub os_release: BTreeMap<String, String>,
    /// `/etc/hostname`.
    pub hostname: Option<String>,
    /// Every fstab entry, resolved.
    pub fstab: Vec<FstabEntry>,
    /// Every line of the fstab as written (for a rewrite that keeps the rest).
    #[serde(skip)]
    pub fstab_lines: Vec<fstab::Line>,
    /// Kernels in `/boot`.
    pub kernels: Vec<Kernel>,
    /// Versions under `/lib/modules`.
    pub module_trees: Vec<String>,
    /// What reading the system found, each placed at its file
    /// (`"partition 5: /etc/fstab line 3"`): damage for a file or directory that
    /// could not be read (a corrupt inode, an fstab over [`MAX_FSTAB`]; the rest
    /// of the guest is still read), warnings for what is worth knowing (fstab
    /// lines that are no entry, ignored text, a list cut short). `inspect` gives
    /// the damage its byte offset and lists every one in the report's findings,
    /// so the JSON of a system does not repeat them.
    #[serde(skip)]
    pub findings: Vec<Finding>,
}

/// Does this filesystem hold an installed Linux root (an `/etc/fstab`, whatever
/// its size or kind)?
pub fn is_root(fs: &(impl GuestFs + ?Sized)) -> Result<bool> {
    Ok(fs
        .list_dir("/etc")?
        .is_some_and(|e| e.iter().any(|(n, _)| n == "fstab")))
}

/// Read the guest on `fs` (partition `view.guest_partition`). A file that cannot
/// be read is a damage finding in [`Guest::findings`] and the rest is still read.
pub fn read_guest(fs: &(impl GuestFs + ?Sized), view: &DiskView) -> Result<Guest> {
    let here = partition_place(view.guest_partition);
    let at = |path: &str| format!("{here}: {path}");
    let mut warnings: Vec<Finding> = Vec::new();
    let mut unreadable = Vec::new();
    let mut read = |path: &str, max: u64| match fs.read_file(path, max) {
        Ok(b) => b,
        Err(e) => {
            unreadable.push((path.to_string(), e.to_string()));
            None
        }
    };
    let os_release = read("/etc/os-release", MAX_SMALL_FILE)
        .or_else(|| read("/usr/lib/os-release", MAX_SMALL_FILE))
        .map(|b| parse_os_release(&String::from_utf8_lossy(&b)))
        .unwrap_or_default();
    let hostname = read("/etc/hostname", MAX_SMALL_FILE).and_then(|b| {
        String::from_utf8_lossy(&b)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
    });
    let fstab_bytes = match read("/etc/fstab", MAX_FSTAB) {
        Some(b) => b,
        None => {
            if !unreadable.iter().any(|(p, _)| p == "/etc/fstab") {
                warnings.push(Finding::warning(
                    at("/etc/fstab"),
                    "not a regular file (a directory, a device, a dangling link)",
                ));
            }
            Vec::new()
        }
    };
    if fstab_bytes.contains(&0) {
        warnings.push(Finding::warning(
            at("/etc/fstab"),
            "holds binary data (NUL bytes)",
        ));
    }
    let fstab_lines = fstab::parse(&fstab_bytes);
    let entries: Vec<(usize, &fstab::Entry)> = fstab_lines
        .iter()
        .filter_map(|l| match &l.kind {
            fstab::LineKind::Entry(e) => {
                if let Some(text) = &e.ignored {
                    warnings.push(Finding::warning(
                        at(&format!("/etc/fstab line {}", l.number)),
                        format!("{text:?} after the pass field is ignored (as mount ignores it)"),
                    ));
                }
                Some((l.number, e))
            }
            fstab::LineKind::Malformed { reason } => {
                warnings.push(Finding::warning(
                    at(&format!("/etc/fstab line {}", l.number)),
                    reason.clone(),
                ));
                None
            }
            _ => None,
        })
        .collect();
    let own = resolve::own_disk(entries.iter().map(|(_, e)| *e), view.guest_partition);
    let fstab: Vec<FstabEntry> = entries
        .iter()
        .map(|(line, e)| {
            let r = resolve::resolve(e, view, &own);
            FstabEntry {
                line: *line,
                source: e.source.clone(),
                target: e.target.clone(),
                fstype: e.fstype.clone(),
                options: e.options.clone(),
                dump: e.dump,
                pass: e.pass,
                partition: r.partition,
                resolved_by: r.resolved_by,
                kind: r.kind,
                note: r.note,
            }
        })
        .collect();
    for e in fstab.iter().filter(|e: &&FstabEntry| e.target == "/") {
        if let Some(p) = e.partition.filter(|p| *p != view.guest_partition) {
            warnings.push(Finding::warning(
                at(&format!("/etc/fstab line {}", e.line)),
                format!(
                    "the root entry {} names partition {p}, but this root filesystem is partition {}",
                    e.source, view.guest_partition
                ),
            ));
        }
    }
    let kernels = scan_kernels(fs, "/boot", view.guest_partition).unwrap_or_else(|e| {
        unreadable.push(("/boot".to_string(), e.to_string()));
        Vec::new()
    });
    let module_trees = scan_module_trees(fs).unwrap_or_else(|e| {
        unreadable.push(("/lib/modules".to_string(), e.to_string()));
        Vec::new()
    });
    for (n, path, what) in [
        (kernels.len(), "/boot", "kernels in /boot"),
        (module_trees.len(), "/lib/modules", "module trees"),
    ] {
        if n >= MAX_LISTED {
            warnings.push(Finding::warning(
                at(path),
                format!("{MAX_LISTED} or more {what}: at most {MAX_LISTED} are listed"),
            ));
        }
    }
    let mut findings: Vec<Finding> = unreadable
        .into_iter()
        .map(|(path, why)| Finding::damage(at(&path), why))
        .collect();
    findings.extend(warnings);
    Ok(Guest {
        partition: view.guest_partition,
        os_release,
        hostname,
        fstab,
        fstab_lines,
        kernels,
        module_trees,
        findings,
    })
}

impl Guest {
    /// The partition `/boot` is mounted from, when the fstab gives `/boot` its own
    /// partition of this image.
    pub fn boot_partition(&self) -> Option<u32> {
        self.fstab
            .iter()
            .find(|e| e.target == "/boot" && e.kind == SourceKind::Partition)
            .and_then(|e| e.partition)
            .filter(|p| *p != self.partition)
    }
}

/// Parse os-release(5): `KEY=value`, values optionally quoted with shell escapes.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let v = v.trim();
        let value = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            let inner = &v[1..v.len() - 1];
            if v.starts_with('"') {
                let mut s = String::with_capacity(inner.len());
                let mut chars = inner.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        if let Some(n) = chars.next() {
                            s.push(n);
                        }
                    } else {
                        s.push(c);
                    }
                }
                s
            } else {
                inner.to_string()
            }
        } else {
            v.to_string()
        };
        out.insert(k.to_string(), value);
    }
    out
}

const KERNEL_PREFIXES: &[&str] = &["vmlinuz-", "vmlinux-", "bzImage-", "kernel-", "Image-"];

/// Kernels in directory `dir` of `fs` (`/boot` of a root filesystem, or `/` of a
/// separate /boot filesystem on `partition`), each with its initrd and config when
/// present. Paths are reported as the guest sees them (`/boot/…`).
pub fn scan_kernels(
    fs: &(impl GuestFs + ?Sized),
    dir: &str,
    partition: u32,
) -> Result<Vec<Kernel>> {
    let shown = "/boot";
    let Some(entries) = fs.list_dir(dir)? else {
        return Ok(Vec::new());
    };
    let names: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|(_, k)| matches!(k, FileType::Regular | FileType::Symlink))
        .map(|(n, _)| n.as_str())
        .collect();
    let mut kernels = Vec::new();
    for name in &names {
        let Some(version) = KERNEL_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) else {
            continue;
        };
        // Backups and signed copies of a kernel listed under its own name.
        if version.is_empty()
            || [".old", ".sig", ".efi.signed"]
                .iter()
                .any(|s| version.ends_with(s))
        {
            continue;
        }
        let initrd = [
            format!("initrd.img-{version}"),
            format!("initrd-{version}.img"),
            format!("initramfs-{version}.img"),
            format!("initrd-{version}"),
            format!("initrd-{version}.gz"),
            format!("initramfs-{version}"),
        ]
        .into_iter()
        .find(|c| names.contains(c.as_str()));
        let config = Some(format!("config-{version}")).filter(|c| names.contains(c.as_str()));
        kernels.push(Kernel {
            version: version.to_string(),
            image: format!("{shown}/{name}"),
            initrd: initrd.map(|n| format!("{shown}/{n}")),
            config: config.map(|n| format!("{shown}/{n}")),
            partition,
            verdict: Vec::new(),
            reasons: Vec::new(),
        });
        if kernels.len() >= MAX_LISTED {
            break;
        }
    }
    kernels.sort_by(|a, b| version_cmp(&a.version, &b.version));
    Ok(kernels)
}

/// Order kernel version strings as versions: runs of digits by their value
/// (`6.9.0` before `6.10.0`), everything else byte by byte; equal-valued but
/// different strings (`01` and `1`) fall back to byte order, so the order is total.
pub fn version_cmp<'a>(a: &'a str, b: &'a str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let run = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
                let (m, n) = (run(x), run(y));
                let (p, q) = (x.split_at(m), y.split_at(n));
                // Leading zeros do not count; then the longer run is the larger.
                let digits = |s: &'a [u8]| -> &'a [u8] {
                    let zeros = s.iter().take_while(|&&b| b == b'0').count();
                    s.get(zeros..).unwrap_or_default()
                };
                let (pd, qd) = (digits(p.0), digits(q.0));
                let o = pd.len().cmp(&qd.len()).then_with(|| pd.cmp(qd));
                if o != Ordering::Equal {
                    return o;
                }
                (x, y) = (p.1, q.1);
            }
            (Some(c), Some(d)) if c != d => return c.cmp(d),
            (Some(_), Some(_)) => {
                x = x.get(1..).unwrap_or_default();
                y = y.get(1..).unwrap_or_default();
            }
        }
    }
}

/// Versions under `/lib/modules` (the path resolved inside the guest, so a usrmerge
/// `/lib -> usr/lib` is followed), oldest version first.
pub fn scan_module_trees(fs: &(impl GuestFs + ?Sized)) -> Result<Vec<String>> {
    let Some(entries) = fs.list_dir("/lib/modules")? else {
        return Ok(Vec::new());
    };
    let mut trees: Vec<String> = entries
        .into_iter()
        .filter(|(_, k)| *k == FileType::Directory)
        .map(|(n, _)| n)
        .take(MAX_LISTED)
        .collect();
    trees.sort_by(|a, b| version_cmp(a, b));
    Ok(trees)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quotes() {
        let m = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME='Debian'\nVERSION_ID=12\n# c\nBAD LINE\nX=\"a \\\"b\\\"\"\n",
        );
        assert_eq!(m["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(m["NAME"], "Debian");
        assert_eq!(m["VERSION_ID"], "12");
        assert_eq!(m["X"], "a \"b\"");
        assert_eq!(m.len(), 4);
    }

    /// A guest filesystem in memory: files by absolute path; directories are
    /// the parents of the files.
    struct MemFs(BTreeMap<String, Vec<u8>>);

    impl MemFs {
        fn new(files: &[(&str, &[u8])]) -> MemFs {
            MemFs(
                files
                    .iter()
                    .map(|(p, b)| ((*p).to_string(), b.to_vec()))
                    .collect(),
            )
        }
    }

    impl GuestFs for MemFs {
        fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>> {
            match self.0.get(path) {
                Some(b) if b.len() as u64 > max => Err(crate::Error::refused(format!(
                    "{path} is {} bytes, more than {max}",
                    b.len()
                ))),
                b => Ok(b.cloned()),
            }
        }
        fn list_dir(&self, path: &str) -> Result<Option<Vec<(String, FileType)>>> {
            let prefix = format!("{}/", path.trim_end_matches('/'));
            let mut out: Vec<(String, FileType)> = Vec::new();
            for p in self.0.keys() {
                let Some(rest) = p.strip_prefix(&prefix) else {
                    continue;
                };
                let (name, kind) = match rest.split_once('/') {
                    Some((d, _)) => (d, FileType::Directory),
                    None => (rest, FileType::Regular),
                };
                if !out.iter().any(|(n, _)| n == name) {
                    out.push((name.to_string(), kind));
                }
            }
            Ok((!out.is_empty()).then_some(out))
        }
    }

    fn view(guest: u32) -> DiskView {
        DiskView {
            parts: (1..=3)
                .map(|n| resolve::PartView {
                    number: n,
                    fstype: "ext4".into(),
                    ..Default::default()
                })
                .collect(),
            guest_partition: guest,
        }
    }

    #[test]
    fn an_oversized_fstab_does_not_hide_the_rest_of_the_guest() {
        let big = vec![b'#'; (MAX_FSTAB + 1) as usize];
        let fs = MemFs::new(&[
            ("/etc/fstab", &big),
            ("/etc/os-release", b"ID=debian\n"),
            ("/etc/hostname", b"guest\n"),
            ("/boot/vmlinuz-6.1.0-1-amd64", b""),
            ("/lib/modules/6.1.0-1-amd64/modules.dep", b""),
        ]);
        assert!(is_root(&fs).unwrap());
        let g = read_guest(&fs, &view(2)).unwrap();
        assert_eq!(g.os_release["ID"], "debian");
        assert_eq!(g.hostname.as_deref(), Some("guest"));
        assert_eq!(g.kernels.len(), 1);
        assert_eq!(g.module_trees, ["6.1.0-1-amd64"]);
        assert!(g.fstab.is_empty());
        let damage: Vec<&Finding> = g
            .findings
            .iter()
            .filter(|f| f.severity == crate::finding::Severity::Damage)
            .collect();
        assert_eq!(damage.len(), 1, "{:?}", g.findings);
        assert_eq!(damage[0].place, "partition 2: /etc/fstab");
    }

    #[test]
    fn a_root_entry_naming_another_partition_is_a_warning() {
        let fs = MemFs::new(&[("/etc/fstab", b"/dev/sda1 / ext4 defaults 0 1\n")]);
        let g = read_guest(&fs, &view(2)).unwrap();
        assert_eq!(g.fstab[0].partition, Some(1));
        assert!(
            g.findings
                .iter()
                .any(|w| w.message.contains("names partition 1")
                    && w.place == "partition 2: /etc/fstab line 1"
                    && w.severity == crate::finding::Severity::Warning),
            "{:?}",
            g.findings
        );
        let fs = MemFs::new(&[("/etc/fstab", b"/dev/sda2 / ext4 defaults 0 1\n")]);
        assert!(read_guest(&fs, &view(2)).unwrap().findings.is_empty());
    }

    #[test]
    fn hostile_guest_files_never_panic() {
        // Binary garbage, invalid UTF-8, NULs, a huge line, odd escapes.
        let mut garbage: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        garbage.extend_from_slice(b"\n\xff\xfe /\xc0 ext4\n/dev/sda\\7 / e\\\n");
        garbage.extend(std::iter::repeat_n(b'a', 600_000));
        let os_release: &[u8] = b"\xff=\"\nNAME=\"unterminated\nX=\"a\\\"\nY='\nZ=\"\\\"\n=v\nK\xc3\xa9=1\nPRETTY_NAME=\"ok\"\n";
        let fs = MemFs::new(&[
            ("/etc/fstab", &garbage),
            ("/etc/os-release", os_release),
            ("/etc/hostname", b"\n\n# c\n  \x1b[2Jname\r\n"),
            ("/boot/vmlinuz-", b""),
            ("/boot/vmlinuz-\u{fffd}.old", b""),
        ]);
        let g = read_guest(&fs, &view(2)).unwrap();
        assert!(g.findings.iter().any(|w| w.message.contains("NUL")));
        assert_eq!(g.os_release["PRETTY_NAME"], "ok");
        assert_eq!(g.os_release["NAME"], "\"unterminated");
        assert_eq!(g.hostname.as_deref(), Some("\u{1b}[2Jname"));
        assert!(g.kernels.is_empty());
    }

    #[test]
    fn an_fstab_that_is_no_file_is_a_warning() {
        let fs = MemFs::new(&[("/etc/fstab/oops", b"x")]);
        assert!(is_root(&fs).unwrap());
        let g = read_guest(&fs, &view(2)).unwrap();
        assert!(g.fstab.is_empty());
        assert!(
            g.findings
                .iter()
                .any(|w| w.message.contains("not a regular file")),
            "{:?}",
            g.findings
        );
    }

    #[test]
    fn a_long_kernel_list_is_cut_and_says_so() {
        let names: Vec<String> = (0..300).map(|i| format!("/boot/vmlinuz-5.{i}.0")).collect();
        let mut files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        files.push(("/etc/fstab", b""));
        let g = read_guest(&MemFs::new(&files), &view(2)).unwrap();
        assert_eq!(g.kernels.len(), MAX_LISTED);
        assert!(
            g.findings
                .iter()
                .any(|w| w.message.contains("kernels in /boot")),
            "{:?}",
            g.findings
        );
    }

    #[test]
    fn kernels_and_module_trees_in_version_order() {
        let fs = MemFs::new(&[
            ("/etc/fstab", b"/dev/sda2 / ext4 defaults 0 1\n"),
            ("/boot/vmlinuz-6.10.0-1-amd64", b""),
            ("/boot/vmlinuz-6.9.0-3-amd64", b""),
            ("/boot/vmlinuz-6.9.0-10-amd64", b""),
            ("/boot/initrd.img-6.10.0-1-amd64", b""),
            ("/boot/vmlinuz-6.10.0-1-amd64.efi.signed", b""),
            ("/lib/modules/6.10.0-1-amd64/x", b""),
            ("/lib/modules/6.9.0-3-amd64/x", b""),
            ("/lib/modules/4.19.0-27-amd64/x", b""),
        ]);
        let g = read_guest(&fs, &view(2)).unwrap();
        let versions: Vec<&str> = g.kernels.iter().map(|k| k.version.as_str()).collect();
        assert_eq!(
            versions,
            ["6.9.0-3-amd64", "6.9.0-10-amd64", "6.10.0-1-amd64"]
        );
        assert_eq!(
            g.kernels[2].initrd.as_deref(),
            Some("/boot/initrd.img-6.10.0-1-amd64")
        );
        assert_eq!(
            g.module_trees,
            ["4.19.0-27-amd64", "6.9.0-3-amd64", "6.10.0-1-amd64"]
        );
        use std::cmp::Ordering::*;
        assert_eq!(version_cmp("1.02", "1.2"), Less);
        assert_eq!(version_cmp("1.2", "1.2"), Equal);
        assert_eq!(version_cmp("1.2a", "1.2"), Greater);
        assert_eq!(version_cmp("\u{e9}9", "\u{e9}10"), Less);
    }

    /// fstab-like text: the words resolution looks at, separators, escapes and
    /// arbitrary bytes, in any order.
    fn fstab_like() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just(b"/dev/".to_vec()),
            Just(b"/dev/disk/by-id/".to_vec()),
            Just(b"/dev/disk/by-path/".to_vec()),
            Just(b"/dev/disk/by-label/".to_vec()),
            Just(b"UUID=".to_vec()),
            Just(b"LABEL=\"".to_vec()),
            Just(b"-part".to_vec()),
            Just(b"nvme0n1p".to_vec()),
            Just(b"mmcblk0p".to_vec()),
            Just(b"sda".to_vec()),
            Just(b" / ".to_vec()),
            Just(b" swap ".to_vec()),
            Just(b"\t".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\\040".to_vec()),
            Just(b"\\x2".to_vec()),
            Just(b"\\".to_vec()),
            Just(b"#".to_vec()),
            Just(b"4294967296".to_vec()),
            "[0-9]{1,3}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 1..8),
        ];
        prop::collection::vec(piece, 0..64).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever the fstab, os-release and hostname hold, reading the guest
        /// does not panic, and every line is accounted for.
        #[test]
        fn any_guest_text_is_read_without_panic(fstab in fstab_like(), other in fstab_like()) {
            let fs = MemFs::new(&[
                ("/etc/fstab", &fstab),
                ("/etc/os-release", &other),
                ("/etc/hostname", &other),
            ]);
            let g = read_guest(&fs, &view(2)).unwrap();
            let lines = fstab::parse(&fstab);
            let joined: Vec<u8> = lines.iter().map(|l| l.raw.clone()).collect::<Vec<_>>().join(&b'\n');
            proptest::prop_assert_eq!(joined.as_slice(), fstab.strip_suffix(b"\n").unwrap_or(&fstab));
            for e in &g.fstab {
                proptest::prop_assert_eq!(e.partition.is_some(), e.kind == resolve::SourceKind::Partition);
            }
        }
    }
}

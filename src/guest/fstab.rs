//! `/etc/fstab` as text: lines parsed into entries, with every byte of the original
//! kept so that a later rewrite can change one line and leave the rest untouched.
//!
//! Pure text, no I/O. Fields follow fstab(5) as libmount reads them: separated by
//! spaces and tabs only (any other byte, a vertical tab or a no-break space, is
//! part of a field), `\040`-style octal escapes, `#` as the first non-blank
//! character starts a comment line, options default to `defaults`, dump and pass
//! to 0, and text after the pass field is ignored as `mount` ignores it (the line
//! is still an entry; [`Entry::ignored`] keeps that text).

use serde::Serialize;

/// One line of an fstab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    /// 1-based line number.
    pub number: usize,
    /// The line's bytes as written, without its `\n` (a trailing `\r` of a CRLF
    /// file is kept here): bytes that are not UTF-8 (a Latin-1 comment) are kept
    /// as they are, so a rewrite can give every line it does not change back
    /// byte for byte.
    pub raw: Vec<u8>,
    /// What the line is.
    pub kind: LineKind,
}

/// What a line of an fstab holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LineKind {
    /// Empty or only whitespace.
    Blank,
    /// A comment (`#` is the first non-blank character).
    Comment,
    /// A mount entry.
    Entry(Entry),
    /// A line that is neither: the reason is given.
    Malformed {
        /// Why it is not an entry.
        reason: String,
    },
}

/// The fields of a mount entry, escapes decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// fs_spec: device, `UUID=…`, `LABEL=…`, `host:/path`, …
    pub source: String,
    /// fs_file: mount point (or `none`/`swap` for swap).
    pub target: String,
    /// fs_vfstype.
    pub fstype: String,
    /// fs_mntops (default `defaults`).
    pub options: String,
    /// fs_freq (default 0).
    pub dump: u32,
    /// fs_passno (default 0).
    pub pass: u32,
    /// Text after the pass field (`# root`), which `mount` ignores; `None` when
    /// the line has at most six fields.
    pub ignored: Option<String>,
}

impl Entry {
    /// The options as a list.
    pub fn option_list(&self) -> impl Iterator<Item = &str> {
        self.options.split(',').filter(|o| !o.is_empty())
    }
}

/// Parse a whole fstab. Never fails: lines that are not entries are `Malformed`.
/// Each line is read as UTF-8, a byte that is not being read as U+FFFD (its
/// [`Line::raw`] keeps the byte).
pub fn parse(text: impl AsRef<[u8]>) -> Vec<Line> {
    let mut text = text.as_ref();
    // A final newline ends the last line; it does not start another.
    if let Some(t) = text.strip_suffix(b"\n") {
        text = t;
    } else if text.is_empty() {
        return Vec::new();
    }
    text.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, raw)| Line {
            number: i + 1,
            raw: raw.to_vec(),
            kind: classify(&String::from_utf8_lossy(raw)),
        })
        .collect()
}

/// The separators of fstab fields (libmount's `skip_separator`).
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn classify(raw: &str) -> LineKind {
    let body = raw.strip_suffix('\r').unwrap_or(raw);
    let trimmed = body.trim_start_matches(is_blank);
    if trimmed.is_empty() {
        return LineKind::Blank;
    }
    if trimmed.starts_with('#') {
        return LineKind::Comment;
    }
    // Six fields and where a seventh starts, if there is one.
    let fields = first_fields(trimmed, 7);
    let first: Vec<&str> = fields.iter().take(6).map(|&(_, f)| f).collect();
    let [source, target, fstype, rest @ ..] = first.as_slice() else {
        return LineKind::Malformed {
            reason: format!(
                "{} field(s); an entry needs at least source, target and type",
                first.len()
            ),
        };
    };
    let number = |i: usize, name: &str| -> Result<u32, String> {
        match first.get(i) {
            None => Ok(0),
            Some(f) => f
                .parse::<u32>()
                .map_err(|_| format!("{name} field {f:?} is not a number")),
        }
    };
    let dump = match number(4, "dump") {
        Ok(v) => v,
        Err(reason) => return LineKind::Malformed { reason },
    };
    let pass = match number(5, "pass") {
        Ok(v) => v,
        Err(reason) => return LineKind::Malformed { reason },
    };
    // Whatever follows the sixth field, from its first byte, as written.
    let ignored = fields
        .get(6)
        .and_then(|&(at, _)| trimmed.get(at..))
        .map(str::to_string);
    LineKind::Entry(Entry {
        source: unescape(source),
        target: unescape(target),
        fstype: unescape(fstype),
        options: rest
            .first()
            .map_or_else(|| "defaults".to_string(), |o| unescape(o)),
        dump,
        pass,
        ignored,
    })
}

/// The first `max` fields of `s`, each with the byte offset it starts at.
fn first_fields(s: &str, max: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (is_blank(c), start) {
            (true, Some(b)) => {
                out.push((b, s.get(b..i).unwrap_or_default()));
                start = None;
                if out.len() == max {
                    return out;
                }
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(b) = start {
        out.push((b, s.get(b..).unwrap_or_default()));
    }
    out
}

/// Decode fstab's octal escapes (`\040` is a space); anything else stays as written.
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = u32::from(digits[0] - b'0') * 64
                    + u32::from(digits[1] - b'0') * 8
                    + u32::from(digits[2] - b'0');
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "# <file system> <mount point> <type> <options> <dump> <pass>\n\
proc      /proc          proc     defaults         0 0\n\
/dev/hda5 /              ext3     defaults         0 1\n\
/dev/hda1 /media/hda1    ntfs     defaults,*       0 1\n\
/dev/hda3 /media/hda3    ext3     defaults         0 2\n\
/dev/hda2 none           swap     sw               0 0\n\
/dev/hdc  /media/cdrom0  udf,iso9660 user,noauto   0 0\n";

    fn entries(text: &str) -> Vec<(usize, Entry)> {
        parse(text)
            .into_iter()
            .filter_map(|l| match l.kind {
                LineKind::Entry(e) => Some((l.number, e)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn seed_fstab() {
        let lines = parse(SEED);
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[0].kind, LineKind::Comment);
        let e = entries(SEED);
        assert_eq!(e.len(), 6);
        assert_eq!(e[1].0, 3);
        assert_eq!(e[1].1.source, "/dev/hda5");
        assert_eq!(e[1].1.target, "/");
        assert_eq!(e[1].1.pass, 1);
        assert_eq!(e[5].1.fstype, "udf,iso9660");
        assert_eq!(e[5].1.options, "user,noauto");
    }

    #[test]
    fn escapes_tabs_crlf_and_short_lines() {
        let text = "UUID=abc\t/mnt/My\\040Disk\text4\tdefaults,nofail\t0\t2\r\n\
LABEL=x /data xfs defaults\r\n\
/dev/sdb1 /x\n\
garbage line with way too many fields here\n\
/dev/sdc1 /y ext4 defaults zero 0";
        let lines = parse(text);
        assert_eq!(lines.len(), 5);
        let LineKind::Entry(e) = &lines[0].kind else {
            panic!("line 1 is not an entry: {:?}", lines[0]);
        };
        assert_eq!(e.target, "/mnt/My Disk");
        assert!(lines[0].raw.ends_with(b"\r"));
        let LineKind::Entry(e) = &lines[1].kind else {
            panic!("line 2 is not an entry");
        };
        assert_eq!((e.dump, e.pass), (0, 0));
        assert!(matches!(lines[2].kind, LineKind::Malformed { .. }));
        assert!(matches!(lines[3].kind, LineKind::Malformed { .. }));
        assert!(matches!(lines[4].kind, LineKind::Malformed { .. }));
    }

    #[test]
    fn no_final_newline_and_blank_lines() {
        let lines = parse("\n   \n# c\nproc /proc proc defaults 0 0");
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].kind, LineKind::Blank);
        assert_eq!(lines[1].kind, LineKind::Blank);
        assert!(matches!(lines[3].kind, LineKind::Entry(_)));
    }

    fn only_entry(line: &str) -> Entry {
        match parse(line).into_iter().next().map(|l| l.kind) {
            Some(LineKind::Entry(e)) => e,
            other => panic!("{line:?} is not an entry: {other:?}"),
        }
    }

    #[test]
    fn debian_installer_fstab() {
        // As debian-installer writes it: comments naming the device at install time.
        let text = "# /etc/fstab: static file system information.\n\
#\n\
# Use 'blkid' to print the universally unique identifier for a\n\
# device; this may be used with UUID= as a more robust way to name devices\n\
# that works even if disks are added and removed. See fstab(5).\n\
#\n\
# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n\
# / was on /dev/sda1 during installation\n\
UUID=1b4cd3a0-24c4-4a57-8a39-3d6b8f4d2b8e /               ext4    errors=remount-ro 0       1\n\
# swap was on /dev/sda5 during installation\n\
UUID=6f1a2b3c-0000-4000-8000-00000000aaaa none            swap    sw              0       0\n\
/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0\n";
        let lines = parse(text);
        assert_eq!(lines.len(), 12);
        assert!(lines[..8].iter().all(|l| l.kind == LineKind::Comment));
        let e = entries(text);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].0, 9);
        assert_eq!(e[0].1.source, "UUID=1b4cd3a0-24c4-4a57-8a39-3d6b8f4d2b8e");
        assert_eq!(e[0].1.options, "errors=remount-ro");
        assert_eq!((e[0].1.dump, e[0].1.pass), (0, 1));
        assert_eq!(
            (e[1].1.target.as_str(), e[1].1.fstype.as_str()),
            ("none", "swap")
        );
        assert_eq!(e[2].1.source, "/dev/sr0");
    }

    #[test]
    fn rhel_fstab_with_mapper_and_label() {
        let text = "\n#\n# /etc/fstab\n# Created by anaconda on Tue Mar  5 10:00:00 2024\n#\n\
/dev/mapper/rhel-root   /                       xfs     defaults        0 0\n\
UUID=0a1b2c3d-1111-2222-3333-444455556666 /boot xfs     defaults        0 0\n\
LABEL=DATA /data ext4 defaults,x-systemd.automount,x-systemd.device-timeout=10s,nofail 0 2\n\
/dev/mapper/rhel-swap   none                    swap    defaults        0 0\n";
        let e = entries(text);
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].0, 6);
        assert_eq!(e[0].1.source, "/dev/mapper/rhel-root");
        assert_eq!(e[2].1.source, "LABEL=DATA");
        assert_eq!(
            e[2].1.option_list().collect::<Vec<_>>(),
            [
                "defaults",
                "x-systemd.automount",
                "x-systemd.device-timeout=10s",
                "nofail"
            ]
        );
    }

    #[test]
    fn separators_are_spaces_and_tabs_only() {
        // A no-break space and a vertical tab are part of a field, as libmount
        // reads them; tabs and runs of spaces separate.
        let e = only_entry("/dev/sda1\t \t/mnt/a\u{a0}b  ext4\x0bx defaults");
        assert_eq!(e.target, "/mnt/a\u{a0}b");
        assert_eq!(e.fstype, "ext4\x0bx");
        assert_eq!(e.options, "defaults");
        // Leading blanks before a comment or an entry.
        assert_eq!(parse(" \t# c")[0].kind, LineKind::Comment);
        assert_eq!(only_entry("\t proc /proc proc").source, "proc");
        // A line of only a no-break space is not blank.
        assert!(matches!(
            parse("\u{a0}")[0].kind,
            LineKind::Malformed { .. }
        ));
    }

    #[test]
    fn crlf_four_fields_and_text_after_pass() {
        let lines =
            parse("UUID=\"abc\" / ext4 defaults\r\nLABEL=a /b ext4 defaults 0 2 # data disk\r\n");
        assert_eq!(lines.len(), 2);
        let LineKind::Entry(e) = &lines[0].kind else {
            panic!("line 1: {:?}", lines[0]);
        };
        assert_eq!((e.source.as_str(), e.dump, e.pass), ("UUID=\"abc\"", 0, 0));
        assert_eq!(e.options, "defaults");
        assert_eq!(e.ignored, None);
        // mount(8) ignores what follows the pass field; the line is an entry.
        let LineKind::Entry(e) = &lines[1].kind else {
            panic!("line 2: {:?}", lines[1]);
        };
        assert_eq!(e.pass, 2);
        assert_eq!(e.ignored.as_deref(), Some("# data disk"));
        assert_eq!(lines[1].raw, b"LABEL=a /b ext4 defaults 0 2 # data disk\r");
    }

    #[test]
    fn octal_escapes_in_labels_and_targets() {
        let e = only_entry("LABEL=My\\040Disk /media/My\\011Tab\\134 vfat noauto 0 0");
        assert_eq!(e.source, "LABEL=My Disk");
        assert_eq!(e.target, "/media/My\tTab\\");
        // Not an escape: too few digits, a non-octal digit, a value over 255.
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("a\\089"), "a\\089");
        assert_eq!(unescape("a\\777"), "a\\777");
        // An escape of a byte that is not UTF-8 on its own is replaced, not a panic.
        assert_eq!(unescape("\\377x"), "\u{fffd}x");
    }

    #[test]
    fn hostile_text_never_panics() {
        let mut text = String::new();
        text.push_str(&"x".repeat(1 << 20));
        text.push('\n');
        text.push_str(&" a".repeat(100_000));
        text.push_str("\n\\\n\\0\n\\00\n\\\\\\\n\u{0}\u{0}\u{0}\n\u{feff}/ / /\n\r\r\n\r");
        text.push_str("\u{1b}[31m /x ext4\n");
        let lines = parse(&text);
        assert_eq!(lines.len(), 10);
        assert!(matches!(lines[0].kind, LineKind::Malformed { .. }));
        // 100 000 fields: malformed at the dump field, without splitting them all.
        assert!(matches!(lines[1].kind, LineKind::Malformed { .. }));
        // A byte-order mark is part of the first field, as libmount reads it.
        assert!(matches!(&lines[7].kind, LineKind::Entry(e) if e.source == "\u{feff}/"));
        assert_eq!(
            lines[8].kind,
            LineKind::Malformed {
                reason: "1 field(s); an entry needs at least source, target and type".into()
            }
        );
        assert!(matches!(lines[9].kind, LineKind::Entry(_)));
    }

    /// Real-world and odd fstabs, parsed by us and by libmount (`findmnt
    /// --tab-file`): the same entries, in the same order, with the same fields.
    #[test]
    fn entries_agree_with_findmnt() {
        let texts = [
            SEED,
            "# <file system> <mount point> <type> <options> <dump> <pass>\n\
UUID=1b4cd3a0-24c4-4a57-8a39-3d6b8f4d2b8e /   ext4 errors=remount-ro 0 1\n\
# swap was on /dev/sda5 during installation\n\
UUID=6f1a2b3c-0000-4000-8000-00000000aaaa none swap sw 0 0\n",
            "/dev/mapper/rhel-root / xfs defaults 0 0\n\
LABEL=DATA /data ext4 defaults,x-systemd.automount,nofail 0 2\n\
/dev/mapper/rhel-swap none swap defaults 0 0\n",
            "UUID=\"abc\" / ext4 defaults\r\nLABEL=a /b ext4 defaults 0 2 # data disk\r\n",
            "/dev/sda1\t \t/mnt/a\u{a0}b  ext4\x0bx defaults\n/dev/x /y\n/a /b c d zz 1\n",
            "LABEL=My\\040Disk /media/My\\011Tab vfat noauto 0 0\n\
/dev/nvme0n1p2 / ext4 defaults 0 1\n/dev/mmcblk0p1 /boot vfat defaults 0 2\n\
none /dev/pts devpts gid=5,mode=620 0 0\n\
/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001-part1 /srv ext4 defaults 0 2\n\
proc /proc proc",
        ];
        for text in texts {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("fstab");
            std::fs::write(&path, text).expect("write fstab");
            let out = std::process::Command::new("findmnt")
                .args(["--json", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS,FREQ,PASSNO"])
                .arg("--tab-file")
                .arg(&path)
                .output()
                .expect("findmnt (util-linux) is needed as the judge");
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("findmnt JSON");
            let judged: Vec<(String, String, String, String, u64, u64)> = v["filesystems"]
                .as_array()
                .expect("filesystems")
                .iter()
                .map(|f| {
                    let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                    let n = |k: &str| f[k].as_u64().unwrap_or(u64::MAX);
                    // No options field: libmount has none, fstab(5) says defaults.
                    let mut options = s("options");
                    if options.is_empty() {
                        options = "defaults".into();
                    }
                    (
                        s("source"),
                        s("target"),
                        s("fstype"),
                        options,
                        n("freq"),
                        n("passno"),
                    )
                })
                .collect();
            let ours: Vec<(String, String, String, String, u64, u64)> = entries(text)
                .into_iter()
                .map(|(_, e)| {
                    (
                        e.source,
                        e.target,
                        e.fstype,
                        e.options,
                        e.dump.into(),
                        e.pass.into(),
                    )
                })
                .collect();
            assert_eq!(ours, judged, "{text:?}");
        }
    }

    #[test]
    fn raw_lines_give_back_every_byte() {
        // A Latin-1 comment, CRLF, a NUL, blank lines, no final newline.
        let text: &[u8] = b"# disque \xe9xterne\r\n\n/dev/hda5 / ext3 defaults 0 1\r\n\0x\n\n# end";
        let lines = parse(text);
        assert_eq!(lines.len(), 6);
        let joined: Vec<u8> = lines
            .iter()
            .map(|l| l.raw.clone())
            .collect::<Vec<_>>()
            .join(&b'\n');
        assert_eq!(joined, text);
        assert_eq!(lines[0].kind, LineKind::Comment);
        assert!(matches!(&lines[2].kind, LineKind::Entry(e) if e.source == "/dev/hda5"));
        // With a final newline: the same lines, no empty seventh.
        let mut with_nl = text.to_vec();
        with_nl.push(b'\n');
        assert_eq!(parse(&with_nl), lines);
        assert!(parse("").is_empty());
        assert_eq!(parse("\n").len(), 1);
    }
}

//! `/etc/fstab` as text: lines parsed into entries, with every byte of the original
//! kept so that a later rewrite can change one line and leave the rest untouched.
//!
//! Pure text, no I/O. Fields follow fstab(5): whitespace-separated, `\040`-style
//! octal escapes, `#` starts a comment line, dump and pass default to 0.

use serde::Serialize;

/// One line of an fstab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    /// 1-based line number.
    pub number: usize,
    /// The line as written, without its line terminator (a trailing `\r` of a
    /// CRLF file is kept here).
    pub raw: String,
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
}

impl Entry {
    /// The options as a list.
    pub fn option_list(&self) -> impl Iterator<Item = &str> {
        self.options.split(',').filter(|o| !o.is_empty())
    }
}

/// Parse a whole fstab. Never fails: lines that are not entries are `Malformed`.
pub fn parse(text: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut rest = text;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let (raw, next) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        lines.push(Line {
            number,
            raw: raw.to_string(),
            kind: classify(raw),
        });
        rest = next;
    }
    lines
}

fn classify(raw: &str) -> LineKind {
    let body = raw.strip_suffix('\r').unwrap_or(raw);
    let trimmed = body.trim_start();
    if trimmed.is_empty() {
        return LineKind::Blank;
    }
    if trimmed.starts_with('#') {
        return LineKind::Comment;
    }
    let fields: Vec<&str> = body.split_whitespace().collect();
    if fields.len() < 3 {
        return LineKind::Malformed {
            reason: format!(
                "{} field(s); an entry needs at least source, target and type",
                fields.len()
            ),
        };
    }
    if fields.len() > 6 {
        return LineKind::Malformed {
            reason: format!("{} fields; an entry has at most 6", fields.len()),
        };
    }
    let number = |i: usize, name: &str| -> Result<u32, String> {
        match fields.get(i) {
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
    LineKind::Entry(Entry {
        source: unescape(fields[0]),
        target: unescape(fields[1]),
        fstype: unescape(fields[2]),
        options: fields
            .get(3)
            .map_or_else(|| "defaults".to_string(), |o| unescape(o)),
        dump,
        pass,
    })
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
        assert!(lines[0].raw.ends_with('\r'));
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
}

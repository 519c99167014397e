//! Test helpers: run the independent judges (sfdisk, partx, blkid, dumpe2fs,
//! mkfs tools) on images made in temporary directories.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::disk::MemDisk;

/// Run `cmd args`, feeding `stdin`; panic with its output unless it succeeds.
pub(crate) fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut c = Command::new(cmd);
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (install it: see README): {e}"));
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A sparse file of `size` bytes at `path`.
pub(crate) fn sparse(path: &Path, size: u64) {
    let f = std::fs::File::create(path).expect("create image");
    f.set_len(size).expect("set_len");
}

/// The file as an in-memory disk.
pub(crate) fn mem(path: &Path) -> MemDisk {
    MemDisk::new(std::fs::read(path).expect("read image"))
}

/// `blkid -p -o export [-O off] path` as key/value pairs (empty if blkid finds
/// nothing, its exit status 2).
pub(crate) fn blkid(
    path: &Path,
    offset: Option<u64>,
) -> std::collections::BTreeMap<String, String> {
    let mut args = vec!["-p".to_string(), "-o".into(), "export".into()];
    if let Some(o) = offset {
        args.push("-O".into());
        args.push(o.to_string());
    }
    args.push(path.display().to_string());
    let out = Command::new("blkid")
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run blkid: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), unescape(v)))
        .collect()
}

/// Undo the shell escaping of `blkid -o export` (a backslash before blanks and
/// shell metacharacters).
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Patch `bytes` into the file at `off`.
pub(crate) fn patch(path: &Path, off: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for patch");
    f.write_all_at(bytes, off).expect("patch");
}

/// Read `len` bytes of the file at `off`.
pub(crate) fn peek(path: &Path, off: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).expect("open");
    let mut b = vec![0; len];
    f.read_exact_at(&mut b, off).expect("peek");
    b
}

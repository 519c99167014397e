//! Shared test harness: scratch directories, images made with sfdisk + mke2fs, the
//! built binary, and the independent judges (debugfs, e2fsck, sha256).

#![allow(dead_code)]

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// Byte offset of the first partition of the images made here.
pub const OFF: u64 = 1 << 20;

/// The built `domuify`.
pub fn bin() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("domuify").expect("domuify binary")
}

/// Run a tool, panic with its output if it cannot be started.
pub fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn check(cmd: &mut Command) -> std::process::Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `img?offset=N` as e2fsprogs takes it.
pub fn spec(img: &Path, off: u64) -> String {
    if off == 0 {
        img.display().to_string()
    } else {
        format!("{}?offset={off}", img.display())
    }
}

/// How to make a test image.
pub struct ImageSpec<'a> {
    /// mke2fs options (`-t ext4`, `-O ^metadata_csum`, `-b 1024`, ...).
    pub mkfs: &'a [&'a str],
    /// Filesystem size argument of mke2fs (`"48M"`).
    pub fs_size: &'a str,
    /// Image size in MiB.
    pub image_mib: u64,
    /// Partitioned (MBR, one partition at 1 MiB) or a bare filesystem.
    pub partitioned: bool,
}

impl Default for ImageSpec<'_> {
    fn default() -> Self {
        ImageSpec {
            mkfs: &["-t", "ext4"],
            fs_size: "48M",
            image_mib: 64,
            partitioned: true,
        }
    }
}

/// Make `dir/name` per `spec`, filled from `tree` with `mke2fs -d`. Returns the
/// image path and the filesystem's byte offset.
pub fn make_image(dir: &Path, name: &str, tree: Option<&Path>, spec: &ImageSpec) -> (PathBuf, u64) {
    let img = dir.join(name);
    let f = fs::File::create(&img).unwrap();
    f.set_len(spec.image_mib << 20).unwrap();
    drop(f);
    let off = if spec.partitioned {
        let mut c = Command::new("sfdisk");
        c.arg("-q").arg(&img).stdin(Stdio::piped());
        let mut child = c.spawn().expect("sfdisk");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"label: dos\nstart=2048, type=83\n")
            .unwrap();
        assert!(child.wait().unwrap().success(), "sfdisk failed");
        OFF
    } else {
        0
    };
    let mut c = Command::new("mke2fs");
    c.args(["-F", "-q"]).args(spec.mkfs);
    if off != 0 {
        c.arg("-E").arg(format!("offset={off}"));
    }
    if let Some(t) = tree {
        c.arg("-d").arg(t);
    }
    c.arg(&img).arg(spec.fs_size);
    check(&mut c);
    (img, off)
}

/// `debugfs -R REQ` output (stdout).
pub fn debugfs(img: &Path, off: u64, req: &str) -> Vec<u8> {
    check(
        Command::new("debugfs")
            .arg("-R")
            .arg(req)
            .arg(spec(img, off)),
    )
    .stdout
}

/// Run a debugfs command script read-write.
pub fn debugfs_w(img: &Path, off: u64, script: &str) {
    let mut c = Command::new("debugfs");
    c.arg("-w")
        .arg("-f")
        .arg("-")
        .arg(spec(img, off))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("debugfs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "debugfs -w failed");
}

/// One entry of `debugfs -R 'ls -p DIR'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugfsEntry {
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub name: Vec<u8>,
    pub size: u64,
}

/// Entries of a directory as debugfs lists them (`.` and `..` excluded).
pub fn debugfs_ls(img: &Path, off: u64, dir: &str) -> Vec<DebugfsEntry> {
    let out = debugfs(img, off, &format!("ls -p {dir}"));
    let mut v = Vec::new();
    for line in out.split(|&b| b == b'\n') {
        // /ino/mode/uid/gid/name/size/
        if line.len() < 2 || line[0] != b'/' {
            continue;
        }
        let f: Vec<&[u8]> = line[1..line.len() - 1].split(|&b| b == b'/').collect();
        if f.len() < 6 {
            continue;
        }
        let num = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        let name = f[4..f.len() - 1].join(&b'/');
        if name == b"." || name == b".." {
            continue;
        }
        v.push(DebugfsEntry {
            ino: num(f[0]).parse().unwrap(),
            mode: u32::from_str_radix(&num(f[1]), 8).unwrap(),
            uid: num(f[2]).parse().unwrap(),
            gid: num(f[3]).parse().unwrap(),
            name,
            size: num(f[f.len() - 1]).parse().unwrap_or(0),
        });
    }
    v
}

/// `debugfs -R 'cat PATH'`.
pub fn debugfs_cat(img: &Path, off: u64, path: &str) -> Vec<u8> {
    debugfs(img, off, &format!("cat {path}"))
}

/// A field of `debugfs -R 'stat PATH'` (e.g. `Links`, `Mode`, `Size`).
pub fn debugfs_stat(img: &Path, off: u64, path: &str) -> String {
    String::from_utf8_lossy(&debugfs(img, off, &format!("stat {path}"))).into_owned()
}

/// `e2fsck -fn`: exit code and output.
pub fn e2fsck_n(img: &Path, off: u64) -> (i32, String) {
    let out = run(Command::new("e2fsck").arg("-fn").arg(spec(img, off)));
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `e2fsck -fy`: exit code.
pub fn e2fsck_y(img: &Path, off: u64) -> i32 {
    run(Command::new("e2fsck").arg("-fy").arg(spec(img, off)))
        .status
        .code()
        .unwrap_or(-1)
}

/// Assert `e2fsck -fn` is clean (exit 0) and says nothing but its banner, its five passes
/// and its summary: any remark (a count it would fix, a note) fails, whatever the
/// exit code.
pub fn assert_fsck_clean(img: &Path, off: u64) {
    let (code, out) = e2fsck_n(img, off);
    let remark = out.lines().find(|l| {
        !(l.is_empty()
            || l.starts_with("e2fsck ")
            || l.starts_with("Pass ")
            || l.contains(" files (") && l.ends_with(" blocks"))
    });
    assert!(
        code == 0 && remark.is_none(),
        "e2fsck -fn (exit {code}) remarked {remark:?}:\n{out}"
    );
}

/// sha256 of a file, hex.
pub fn sha256_file(p: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = fs::File::open(p).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Block size of the filesystem, from `dumpe2fs -h`.
pub fn block_size(img: &Path, off: u64) -> u64 {
    let out = check(Command::new("dumpe2fs").arg("-h").arg(spec(img, off))).stdout;
    let text = String::from_utf8_lossy(&out);
    text.lines()
        .find_map(|l| l.strip_prefix("Block size:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("block size")
}

/// Rename an entry of directory `dir` in place, bytes for bytes, to a name
/// debugfs or mke2fs would never write (`..`, `a/b`, a NUL). `from` and `to` must
/// have the same length. Only for filesystems without metadata_csum (the leaf
/// checksum would no longer match).
pub fn patch_name(img: &Path, off: u64, dir: &str, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let bs = block_size(img, off);
    let out = debugfs(img, off, &format!("blocks {dir}"));
    let blocks: Vec<u64> = String::from_utf8_lossy(&out)
        .split_whitespace()
        .map(|b| b.parse().unwrap())
        .collect();
    let mut data = fs::read(img).unwrap();
    for b in blocks {
        let start = (off + b * bs) as usize;
        let block = &mut data[start..start + bs as usize];
        if let Some(pos) = block.windows(from.len()).position(|w| w == from) {
            block[pos..pos + from.len()].copy_from_slice(to);
            fs::write(img, &data).unwrap();
            return;
        }
    }
    panic!("{} not found in {dir}", String::from_utf8_lossy(from));
}

/// Every path under `root` (relative, sorted), symlinks not followed.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    fn go(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
        let mut names: Vec<_> = fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            out.push(r.clone());
            if fs::symlink_metadata(root.join(&r)).unwrap().is_dir() {
                go(root, &r, out);
            }
        }
    }
    let mut v = Vec::new();
    go(root, Path::new(""), &mut v);
    v
}

/// The bytes of a path, for comparisons.
pub fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

/// The first word after `label` in debugfs `stat` output (`"Links:"`, `"User:"`,
/// `"Type:"`, `"Inode:"`, `"mtime:"`).
pub fn stat_field(stat: &str, label: &str) -> String {
    let i = stat
        .find(label)
        .unwrap_or_else(|| panic!("{label} not in\n{stat}"));
    stat[i + label.len()..]
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Free blocks and free inodes from `dumpe2fs -h`.
pub fn free_counts(img: &Path, off: u64) -> (u64, u64) {
    let out = check(Command::new("dumpe2fs").arg("-h").arg(spec(img, off))).stdout;
    let text = String::from_utf8_lossy(&out);
    let get = |k: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{k} missing"))
    };
    (get("Free blocks:"), get("Free inodes:"))
}

/// A copy of `img` at `dir/name`.
pub fn copy_image(img: &Path, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    fs::copy(img, &to).unwrap();
    to
}

/// The findings of one severity (`"damage"`, `"warning"`, `"note"`) in an
/// `inspect --json` document; each is checked to have the four keys of a finding.
pub fn findings<'a>(doc: &'a serde_json::Value, severity: &str) -> Vec<&'a serde_json::Value> {
    let all = doc["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings[] in {doc:#}"));
    for f in all {
        let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "{f}");
        for k in ["severity", "where", "offset", "message"] {
            assert!(keys.contains(&k), "{k} missing: {f}");
        }
    }
    all.iter().filter(|f| f["severity"] == severity).collect()
}

//! Shared test harness: scratch directories, images made with sfdisk + mke2fs, the
//! built binary, and the independent judges (debugfs, e2fsck, sha256).

#![allow(dead_code)]

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use domuify::disk::Window;
use domuify::ext::Ext;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Byte offset of the first partition of the images made here.
pub const OFF: u64 = 1 << 20;

/// The built `domuify`.
pub fn bin() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("domuify").expect("domuify binary")
}

/// Run a tool, panic with its output if it cannot be started. Every helper that
/// runs a program goes through here.
pub fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Run a tool: its exit code (-1 when killed) and its stdout then stderr.
pub fn run_text(cmd: &mut Command) -> (i32, String) {
    let out = run(cmd);
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), s)
}

/// Run a judge (`debugfs`, `blkid`, ...) with `args` and return its stdout;
/// panics with its stderr when it fails.
pub fn run_judge(cmd: &str, args: &[&str]) -> String {
    let out = run(Command::new(cmd).args(args));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Is this a CI run (`CI=true`, as `.ci/run` and `scripts/test` set it)?
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A prerequisite of a test is missing (a loop device, a fixture, a package):
/// under `CI=true` the test fails, naming it; elsewhere it is skipped, with the
/// reason printed. The caller returns after it.
#[track_caller]
pub fn missing(what: impl std::fmt::Display) {
    assert!(
        !in_ci(),
        "prerequisite missing (CI=true: a failure, not a skip): {what}"
    );
    eprintln!("skipped: {what}");
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

/// `debugfs -R REQ SPEC`: raw stdout and stderr, whatever the exit code
/// (debugfs exits 0 on most errors, which it prints on stderr). Every debugfs
/// helper is built on it or on [`debugfs_w`].
pub fn debugfs_raw(spec: &str, req: &str) -> (Vec<u8>, String) {
    let out = run(Command::new("debugfs").arg("-R").arg(req).arg(spec));
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `debugfs -R REQ` output (stdout); panics when debugfs fails.
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
    assert!(
        out.status.success(),
        "debugfs -w failed on {script:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    if let Err(e) = fsck_verdict(img, off) {
        panic!("{e}");
    }
}

/// The one fsck judge: `Ok` when `e2fsck -fn` exits 0 and says nothing but its
/// banner, its five passes and its summary; else what it said.
pub fn fsck_verdict(img: &Path, off: u64) -> Result<(), String> {
    let (code, out) = e2fsck_n(img, off);
    let remark = out.lines().find(|l| {
        !(l.is_empty()
            || l.starts_with("e2fsck ")
            || l.starts_with("Pass ")
            || l.contains(" files (") && l.ends_with(" blocks"))
    });
    if code == 0 && remark.is_none() {
        return Ok(());
    }
    Err(format!(
        "e2fsck -fn (exit {code}) remarked {remark:?}:\n{out}"
    ))
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

/// A private image holding an ext filesystem at byte `offset`, `len` bytes long,
/// with the judges bound to it: made by `mke2fs` ([`Img::new`]), copied from a
/// matrix fixture ([`Img::matrix`]) or from another image ([`Img::copy_of`]).
/// Removed with its temporary directory on drop.
pub struct Img {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
}

impl Img {
    /// `mke2fs ARGS -d TREE` of `mb` MiB at [`OFF`] into a new image.
    pub fn new(args: &[&str], tree: Option<&Path>, mb: u64) -> Img {
        Self::build(args, tree, mb, false)
    }

    /// Like [`Img::new`], over an image full of garbage, with lazily
    /// initialised inode tables: what mke2fs does not write stays garbage.
    pub fn new_over_garbage(args: &[&str], mb: u64) -> Img {
        Self::build(args, None, mb, true)
    }

    fn build(args: &[&str], tree: Option<&Path>, mb: u64, garbage: bool) -> Img {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let fs_bytes = mb << 20;
        let total = OFF + fs_bytes + (1 << 20);
        if garbage {
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            let chunk: Vec<u8> = (0..(1 << 20) + 13)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let mut data = Vec::with_capacity(total as usize);
            while (data.len() as u64) < total {
                data.extend_from_slice(&chunk);
            }
            data.truncate(total as usize);
            fs::write(&path, data).unwrap();
        } else {
            let f = fs::File::create(&path).unwrap();
            f.set_len(total).unwrap();
        }
        let ext_opts = if garbage {
            format!("offset={OFF},lazy_itable_init=1,nodiscard")
        } else {
            format!("offset={OFF}")
        };
        let mut cmd = Command::new("mke2fs");
        cmd.args(["-F", "-q", "-E", &ext_opts]).args(args);
        cmd.env("E2FSPROGS_FAKE_TIME", "1700000000");
        if let Some(t) = tree {
            cmd.arg("-d").arg(t);
        }
        cmd.arg(&path).arg(format!("{}k", fs_bytes >> 10));
        let (rc, out) = run_text(&mut cmd);
        assert_eq!(rc, 0, "mke2fs {args:?}: {out}");
        Img {
            _dir: dir,
            path,
            offset: OFF,
            len: fs_bytes,
        }
    }

    /// A private sparse copy of `matrix/NAME` (offset from the manifest; the
    /// partition runs to the end).
    pub fn matrix(name: &str) -> Img {
        let row = crate::matrix::manifest()
            .into_iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name} is not in matrix/manifest.tsv"));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = crate::fixtures::copy(&format!("matrix/{name}"), dir.path());
        let size = fs::metadata(&path).expect("stat copy").len();
        Img {
            _dir: dir,
            path,
            offset: row.offset,
            len: size - row.offset,
        }
    }

    /// A copy of another image (cheaper than another mke2fs).
    pub fn copy_of(other: &Img) -> Img {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        fs::copy(&other.path, &path).unwrap();
        Img {
            _dir: dir,
            path,
            offset: other.offset,
            len: other.len,
        }
    }

    /// `img?offset=N` as e2fsprogs takes it.
    pub fn spec(&self) -> String {
        spec(&self.path, self.offset)
    }

    pub fn window(&self, access: domuify::Access) -> Window<Arc<domuify::Disk>> {
        let disk = Arc::new(domuify::Disk::open(&self.path, access).expect("open image"));
        Window::new(disk, self.offset, self.len).expect("window")
    }

    pub fn open_rw(&self) -> Ext<Window<Arc<domuify::Disk>>> {
        Ext::open_read_write(self.window(domuify::Access::ReadWrite))
            .unwrap_or_else(|e| panic!("open_read_write {}: {e}", self.path.display()))
    }

    /// `e2fsck -fn`: exit code and output.
    pub fn fsck(&self) -> (i32, String) {
        e2fsck_n(&self.path, self.offset)
    }

    /// [`fsck_verdict`] of this image.
    pub fn fsck_verdict(&self) -> Result<(), String> {
        fsck_verdict(&self.path, self.offset)
    }

    pub fn assert_clean(&self, what: &str) {
        if let Err(e) = self.fsck_verdict() {
            panic!("{what}: {e}");
        }
    }

    /// `debugfs -R REQ`: raw stdout and stderr.
    pub fn debugfs_raw(&self, req: &str) -> (Vec<u8>, String) {
        debugfs_raw(&self.spec(), req)
    }

    /// `debugfs -R REQ`: stdout as text.
    pub fn debugfs(&self, req: &str) -> String {
        String::from_utf8_lossy(&self.debugfs_raw(req).0).into_owned()
    }

    /// `debugfs -w` running `req`; panics when it fails.
    pub fn debugfs_w(&self, req: &str) {
        debugfs_w(&self.path, self.offset, req);
    }

    /// The whole image (compared instead of a sha256: same verdict, and fast in
    /// debug builds).
    pub fn sha(&self) -> Vec<u8> {
        fs::read(&self.path).unwrap()
    }

    pub fn sha256(&self) -> String {
        sha256_file(&self.path)
    }
}

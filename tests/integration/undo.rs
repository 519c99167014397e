//! `domuify undo` and crash safety: undo files restore images bit for bit, and a
//! fault-injecting disk interrupts engine operations after every write.
//!
//! The fault matrix: for an operation that issues n writes, for every k < n, the
//! operation runs over `FaultDev(UndoDev(Disk))` letting k writes through (a power
//! loss after k writes). Then (a) `undo::restore` gives back the original sha256,
//! and (b) on another copy interrupted the same way without undo, `e2fsck -fy` then
//! `e2fsck -fn` is clean, every file that existed before is intact, and a replaced
//! file holds its old or its new contents, never a mix. Needs the engine.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use domuify::disk::{Access, Disk, ReadAt, Window, WriteAt};
use domuify::ext::{Ext, NewNode, Timestamp};
use domuify::testing::FaultDev;
use domuify::undo::{self, UndoDev};

use crate::harness::*;

/// A small system tree for the fault matrix (kept small: every k copies the image).
fn small_tree(root: &Path) {
    for d in [
        "etc",
        "usr/lib/modules/6.1.0-9-amd64/kernel",
        "usr/share/doc",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("etc/fstab"), "UUID=1234 / ext4 defaults 0 1\n").unwrap();
    fs::write(root.join("etc/hostname"), "guest\n").unwrap();
    let ko: Vec<u8> = (0..40_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(root.join("usr/lib/modules/6.1.0-9-amd64/kernel/x.ko"), &ko).unwrap();
    fs::write(
        root.join("usr/lib/modules/6.1.0-9-amd64/modules.dep"),
        "kernel/x.ko:\n",
    )
    .unwrap();
    for i in 0..30 {
        fs::write(
            root.join(format!("usr/share/doc/f{i}")),
            format!("doc {i}\n"),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
}

/// Every regular file under `root` with its bytes, and every symlink with its
/// target (as bytes prefixed with `->`), keyed by relative path.
fn snapshot(root: &Path) -> Snapshot {
    let mut m = BTreeMap::new();
    for p in walk(root) {
        let full = root.join(&p);
        let meta = fs::symlink_metadata(&full).unwrap();
        if meta.file_type().is_symlink() {
            let mut v = b"->".to_vec();
            v.extend_from_slice(bytes(&fs::read_link(&full).unwrap()));
            m.insert(p, v);
        } else if meta.is_file() {
            m.insert(p, fs::read(&full).unwrap());
        }
    }
    m
}

type Shared = Arc<dyn WriteAt + Send + Sync>;
type Dev = Window<Shared>;
type Rules = BTreeMap<PathBuf, Rule>;
type Snapshot = BTreeMap<PathBuf, Vec<u8>>;
type RulesOf<'a> = dyn Fn(&Snapshot) -> Rules + 'a;
type Op = dyn Fn(&mut Ext<Dev>) -> domuify::Result<()>;

/// Run `op` on `img` over a fault device letting `allow` writes through, behind an
/// undo log at `undo` if given. Returns the outcome and the writes that passed.
fn run_op(img: &Path, allow: u64, undo: Option<&Path>, op: &Op) -> (domuify::Result<()>, u64) {
    let disk = Disk::open(img, Access::ReadWrite).unwrap();
    let len = disk.size() - OFF;
    let base: Shared = match undo {
        Some(p) => Arc::new(UndoDev::create(disk, p).unwrap()),
        None => Arc::new(disk),
    };
    let fault = Arc::new(FaultDev::new(base, allow));
    let win = Window::new(fault.clone() as Shared, OFF, len).unwrap();
    let r = Ext::open_read_write(win).and_then(|mut ext| {
        op(&mut ext)?;
        ext.flush()
    });
    (r, fault.writes())
}

/// What a recovered file may hold.
enum Rule {
    /// Exactly these bytes.
    Intact(Vec<u8>),
    /// Either of these (a replaced file).
    OldOrNew(Vec<u8>, Vec<u8>),
    /// Absent, or exactly these bytes (a file being created or removed).
    AbsentOr(Vec<u8>),
}

/// The fault matrix for one operation; `rules` maps relative paths to what they
/// may hold after recovery (files not listed must be intact).
/// The base image of a matrix.
struct Setup<'a> {
    /// mke2fs options.
    mkfs: &'a [&'a str],
    /// Add `/etc/many` with 1,000 entries, indexed (htree) by `e2fsck -fyD`.
    big_dir: bool,
}

fn fault_matrix(name: &str, setup: Setup, op: &Op, extra_rules: &RulesOf) {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    small_tree(&tree);
    if setup.big_dir {
        fs::create_dir(tree.join("etc/many")).unwrap();
        for i in 0..1000 {
            fs::write(
                tree.join(format!("etc/many/entry-with-a-longish-name-{i:05}")),
                format!("{i}\n"),
            )
            .unwrap();
        }
    }
    let spec = ImageSpec {
        mkfs: setup.mkfs,
        fs_size: "10M",
        image_mib: 12,
        ..ImageSpec::default()
    };
    let (base, off) = make_image(t.path(), "base.img", Some(&tree), &spec);
    assert_eq!(off, OFF);
    if setup.big_dir {
        let code = std::process::Command::new("e2fsck")
            .arg("-fyD")
            .arg(spec_of(&base))
            .output()
            .unwrap()
            .status
            .code();
        assert!(matches!(code, Some(0..=1)), "e2fsck -fyD: {code:?}");
        let dump =
            String::from_utf8_lossy(&debugfs(&base, off, "htree_dump /etc/many")).into_owned();
        assert!(dump.contains("Root node dump"), "not indexed:\n{dump}");
    }
    let sha0 = sha256_file(&base);
    let before = snapshot(&tree);
    let mut rules: Rules = before
        .iter()
        .map(|(p, b)| (p.clone(), Rule::Intact(b.clone())))
        .collect();
    rules.extend(extra_rules(&before));

    // The whole operation, uninterrupted: clean, and it tells n.
    let full = copy_image(&base, t.path(), "full.img");
    let (r, n) = run_op(&full, u64::MAX, None, op);
    r.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_fsck_clean(&full, off);
    assert!(n > 0, "{name}: no writes");
    eprintln!("{name}: {n} writes");

    for k in 0..n {
        // (a) Undo gives back the original bytes.
        let img = copy_image(&base, t.path(), "a.img");
        let log = t.path().join("a.undo");
        let _ = fs::remove_file(&log);
        let (r, passed) = run_op(&img, k, Some(&log), op);
        assert!(r.is_err(), "{name}: k={k}: the operation did not fail");
        assert_eq!(passed, k);
        let disk = Disk::open(&img, Access::ReadWrite).unwrap();
        let rep = undo::restore(&log, &disk).unwrap();
        assert!(!rep.complete);
        drop(disk);
        assert_eq!(
            sha256_file(&img),
            sha0,
            "{name}: k={k}: undo did not restore the image"
        );

        // (b) Without undo: e2fsck repairs, files are old or new, never garbage.
        let img = copy_image(&base, t.path(), "b.img");
        let (r, _) = run_op(&img, k, None, op);
        assert!(r.is_err());
        let code = e2fsck_y(&img, off);
        assert!(code <= 1, "{name}: k={k}: e2fsck -fy exit {code}");
        let (code, out) = e2fsck_n(&img, off);
        assert_eq!(
            code, 0,
            "{name}: k={k}: still unclean after e2fsck -fy:\n{out}"
        );
        let dump = t.path().join("dump");
        let _ = fs::remove_dir_all(&dump);
        fs::create_dir(&dump).unwrap();
        debugfs(&img, off, &format!("rdump / {}", dump.display()));
        let after = snapshot(&dump);
        for (p, rule) in &rules {
            let got = after.get(p);
            let ok = match rule {
                Rule::Intact(b) => got == Some(b),
                Rule::OldOrNew(o, n) => got == Some(o) || got == Some(n),
                Rule::AbsentOr(b) => got.is_none() || got == Some(b),
            };
            assert!(
                ok,
                "{name}: k={k}: {} holds {:?}",
                p.display(),
                got.map(|g| String::from_utf8_lossy(&g[..g.len().min(80)]).into_owned())
            );
        }
    }
}

fn root_node(perm: u16) -> NewNode {
    let now = Timestamp::now();
    NewNode {
        perm,
        uid: 0,
        gid: 0,
        atime: now,
        mtime: now,
        ctime: now,
    }
}

fn new_fstab() -> Vec<u8> {
    (0..300)
        .map(|i| format!("/dev/xvdb{i} /srv/{i} ext4 defaults 0 2\n"))
        .collect::<String>()
        .into_bytes()
}

const EXT4: &[&str] = &["-t", "ext4"];
const EXT3_1K: &[&str] = &["-t", "ext3", "-b", "1024"];
const EXT4_GDT_CSUM_1K: &[&str] = &["-t", "ext4", "-b", "1024", "-O", "^metadata_csum,uninit_bg"];

#[test]
fn fault_matrix_replace_contents() {
    replace_contents_matrix(EXT4);
}

#[test]
fn fault_matrix_replace_contents_ext3_block_maps() {
    replace_contents_matrix(EXT3_1K);
}

fn replace_contents_matrix(mkfs: &[&str]) {
    let new = new_fstab();
    let op = {
        let new = new.clone();
        move |ext: &mut Ext<Dev>| {
            let ino = ext.resolve(b"/etc/fstab", true)?;
            ext.replace_contents(ino, &mut new.as_slice(), new.len() as u64, Timestamp::now())
        }
    };
    let setup = Setup {
        mkfs,
        big_dir: false,
    };
    fault_matrix("replace /etc/fstab", setup, &op, &|before| {
        let old = before[Path::new("etc/fstab")].clone();
        BTreeMap::from([(PathBuf::from("etc/fstab"), Rule::OldOrNew(old, new.clone()))])
    });
}

#[test]
fn fault_matrix_create_file() {
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
    let op = {
        let data = data.clone();
        move |ext: &mut Ext<Dev>| {
            let dir = ext.resolve(b"/lib/modules/6.1.0-9-amd64", true)?;
            ext.create_file(
                dir,
                b"new.ko",
                &root_node(0o644),
                &mut data.as_slice(),
                data.len() as u64,
            )
            .map(|_| ())
        }
    };
    let setup = Setup {
        mkfs: EXT4,
        big_dir: false,
    };
    fault_matrix("create a file", setup, &op, &|_| {
        BTreeMap::from([(
            PathBuf::from("usr/lib/modules/6.1.0-9-amd64/new.ko"),
            Rule::AbsentOr(data.clone()),
        )])
    });
}

#[test]
fn fault_matrix_copy_in() {
    copy_in_matrix(EXT4);
}

#[test]
fn fault_matrix_copy_in_gdt_csum_1k() {
    copy_in_matrix(EXT4_GDT_CSUM_1K);
}

#[test]
fn fault_matrix_copy_in_ext3_block_maps() {
    copy_in_matrix(EXT3_1K);
}

fn copy_in_matrix(mkfs: &[&str]) {
    let src = tempfile::tempdir().unwrap();
    let pkg = src.path().join("pkg");
    fs::create_dir_all(pkg.join("sub")).unwrap();
    let mut made = BTreeMap::new();
    for i in 0..6 {
        let body: Vec<u8> = format!("file {i}\n").repeat(500 * i + 1).into_bytes();
        let rel = if i % 2 == 0 {
            format!("f{i}")
        } else {
            format!("sub/f{i}")
        };
        fs::write(pkg.join(&rel), &body).unwrap();
        made.insert(
            PathBuf::from(format!("usr/lib/modules/6.1.0-9-amd64/pkg/{rel}")),
            body,
        );
    }
    std::os::unix::fs::symlink("../f0", pkg.join("sub/link")).unwrap();
    made.insert(
        PathBuf::from("usr/lib/modules/6.1.0-9-amd64/pkg/sub/link"),
        b"->../f0".to_vec(),
    );
    let op = {
        let pkg = pkg.clone();
        move |ext: &mut Ext<Dev>| {
            domuify::copy::copy_in(
                ext,
                std::slice::from_ref(&pkg),
                b"/lib/modules/6.1.0-9-amd64",
                None,
            )
            .map(|_| ())
        }
    };
    let setup = Setup {
        mkfs,
        big_dir: false,
    };
    fault_matrix("copy-in", setup, &op, &|_| {
        made.iter()
            .map(|(p, b)| (p.clone(), Rule::AbsentOr(b.clone())))
            .collect()
    });
}

#[test]
fn fault_matrix_remove_tree() {
    let op = |ext: &mut Ext<Dev>| {
        let usr = ext.resolve(b"/usr", true)?;
        ext.remove_tree(usr, b"share")
    };
    let setup = Setup {
        mkfs: EXT4,
        big_dir: false,
    };
    fault_matrix("rm -r /usr/share", setup, &op, &|before| {
        before
            .iter()
            .filter(|(p, _)| p.starts_with("usr/share"))
            .map(|(p, b)| (p.clone(), Rule::AbsentOr(b.clone())))
            .collect()
    });
}

/// Names added to and removed from an indexed directory of 1,000 entries (the
/// htree insert may split a leaf and grow the index).
#[test]
fn fault_matrix_htree_directory() {
    let names: Vec<String> = (0..40)
        .map(|i| format!("added-{i:03}-with-a-longer-name"))
        .collect();
    let op = {
        let names = names.clone();
        move |ext: &mut Ext<Dev>| {
            let dir = ext.resolve(b"/etc/many", true)?;
            for n in &names {
                let body = n.as_bytes();
                ext.create_file(
                    dir,
                    body,
                    &root_node(0o644),
                    &mut &body[..],
                    body.len() as u64,
                )?;
            }
            ext.unlink(dir, b"entry-with-a-longish-name-00007")
        }
    };
    let setup = Setup {
        mkfs: EXT4,
        big_dir: true,
    };
    fault_matrix("htree insert and remove", setup, &op, &|before| {
        let mut r: Rules = names
            .iter()
            .map(|n| {
                (
                    PathBuf::from(format!("etc/many/{n}")),
                    Rule::AbsentOr(n.as_bytes().to_vec()),
                )
            })
            .collect();
        let gone = PathBuf::from("etc/many/entry-with-a-longish-name-00007");
        r.insert(gone.clone(), Rule::AbsentOr(before[&gone].clone()));
        r
    });
}

fn spec_of(img: &Path) -> String {
    spec(img, OFF)
}

fn cmd_image(t: &Path) -> (PathBuf, u64) {
    let tree = t.join("tree");
    small_tree(&tree);
    let spec = ImageSpec {
        fs_size: "10M",
        image_mib: 12,
        ..ImageSpec::default()
    };
    make_image(t, "disk.img", Some(&tree), &spec)
}

/// Needs the engine: every writing command with `--undo`, then `domuify undo`.
#[test]
fn undo_restores_every_writing_command_bit_for_bit() {
    let t = tempfile::tempdir().unwrap();
    let (base, off) = cmd_image(t.path());
    let sha0 = sha256_file(&base);
    let src = t.path().join("src");
    fs::create_dir_all(src.join("pkg/d")).unwrap();
    fs::write(src.join("pkg/d/x"), vec![3u8; 100_000]).unwrap();
    let src_pkg = src.join("pkg").display().to_string();
    let cases: Vec<(&str, Vec<&str>, Option<&str>)> = vec![
        ("write", vec!["/etc/fstab"], Some("a much longer fstab\n")),
        ("write", vec!["/etc/new"], Some("new\n")),
        ("copy-in", vec![&src_pkg, "/lib/modules"], None),
        ("mkdir", vec!["-p", "/lib/modules/a/b/c"], None),
        ("rm", vec!["-r", "/usr/share"], None),
    ];
    for (i, (cmd, args, input)) in cases.iter().enumerate() {
        let img = copy_image(&base, t.path(), &format!("c{i}.img"));
        let log = t.path().join(format!("c{i}.undo"));
        let mut c = bin();
        c.arg(cmd)
            .args(["--part", "1"])
            .arg(&img)
            .args(args)
            .arg("--undo")
            .arg(&log);
        if let Some(s) = input {
            c.write_stdin(*s);
        }
        c.assert().success();
        assert_fsck_clean(&img, off);
        assert_ne!(sha256_file(&img), sha0, "{cmd} changed nothing");
        let a = bin().arg("undo").arg(&log).arg(&img).assert().success();
        let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
        assert!(!err.contains("interrupted"), "{err}");
        assert_eq!(sha256_file(&img), sha0, "undo of {cmd} {args:?}");
        // Applying it again is harmless.
        bin().arg("undo").arg(&log).arg(&img).assert().success();
        assert_eq!(sha256_file(&img), sha0);
    }
}

/// Needs the engine for the first command.
#[test]
fn undo_files_are_never_clobbered_or_applied_to_another_image() {
    let t = tempfile::tempdir().unwrap();
    let (img, _) = cmd_image(t.path());
    let log = t.path().join("u");
    bin()
        .args(["mkdir", "--part", "1"])
        .arg(&img)
        .arg("/newdir")
        .arg("--undo")
        .arg(&log)
        .assert()
        .success();
    let log_sha = sha256_file(&log);
    let img_sha = sha256_file(&img);
    // An existing undo file is not overwritten, and nothing is written.
    let a = bin()
        .args(["mkdir", "--part", "1"])
        .arg(&img)
        .arg("/other")
        .arg("--undo")
        .arg(&log)
        .assert()
        .code(1);
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("already exists"));
    assert_eq!(sha256_file(&log), log_sha);
    assert_eq!(sha256_file(&img), img_sha);
    // Another image of the same size is refused, unchanged.
    let t2 = tempfile::tempdir().unwrap();
    let (other, _) = cmd_image(t2.path());
    let other_sha = sha256_file(&other);
    let a = bin().arg("undo").arg(&log).arg(&other).assert().code(1);
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("different image"));
    assert_eq!(sha256_file(&other), other_sha);
    // A command that fails before writing leaves no undo file behind.
    let log2 = t.path().join("u2");
    bin()
        .args(["mkdir", "--part", "1"])
        .arg(&img)
        .arg("/missing/x")
        .arg("--undo")
        .arg(&log2)
        .assert()
        .code(1);
    assert!(!log2.exists());
    assert_eq!(sha256_file(&img), img_sha);
}

/// The undo layer's cost: a copy-in of many files syncs the undo file once per
/// device write that touches new chunks, not once per block.
#[test]
fn undo_syncs_are_per_write_not_per_block() {
    let t = tempfile::tempdir().unwrap();
    let (img, _) = cmd_image(t.path());
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big"), vec![7u8; 4 << 20]).unwrap();
    let disk = Disk::open(&img, Access::ReadWrite).unwrap();
    let len = disk.size() - OFF;
    let log = t.path().join("u");
    let u = Arc::new(UndoDev::create(disk, &log).unwrap());
    let win = Window::new(u.clone() as Shared, OFF, len).unwrap();
    let mut ext = Ext::open_read_write(win).unwrap();
    domuify::copy::copy_in(&mut ext, &[src.join("big")], b"/", None).unwrap();
    ext.flush().unwrap();
    let st = u.stats();
    // 4 MiB is 1024 blocks of 4 KiB; the data goes in a few large writes.
    assert!(st.syncs < 100, "{st:?}");
    assert!(st.saved_bytes >= 4 << 20, "{st:?}");
}

/// Needs the engine: two commands with undo files are undone newest first; the
/// older undo file is refused while the newer change is in place, and the image
/// ends up bit for bit as it was.
#[test]
fn undo_files_apply_newest_first() {
    let t = tempfile::tempdir().unwrap();
    let (img, off) = cmd_image(t.path());
    let sha0 = sha256_file(&img);
    let (u1, u2) = (t.path().join("u1"), t.path().join("u2"));
    bin()
        .args(["mkdir", "--part", "1"])
        .arg(&img)
        .arg("/srv")
        .arg("--undo")
        .arg(&u1)
        .assert()
        .success();
    let sha1 = sha256_file(&img);
    bin()
        .args(["write", "--part", "1"])
        .arg(&img)
        .arg("/srv/data")
        .arg("--undo")
        .arg(&u2)
        .write_stdin("data\n")
        .assert()
        .success();
    assert_fsck_clean(&img, off);
    let sha2 = sha256_file(&img);
    let a = bin().arg("undo").arg(&u1).arg(&img).assert().code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("not as the command left it"), "{err}");
    assert_eq!(sha256_file(&img), sha2);
    bin().arg("undo").arg(&u2).arg(&img).assert().success();
    assert_eq!(sha256_file(&img), sha1);
    bin().arg("undo").arg(&u1).arg(&img).assert().success();
    assert_eq!(sha256_file(&img), sha0);
}

/// The records of an undo file (format 2), read the simple way for tests:
/// `(position, kind, sequence number, batch)`, up to the first that does not fit.
fn undo_records(log: &[u8]) -> Vec<(usize, u32, u64, u64)> {
    let le32 = |p: usize| u32::from_le_bytes(log[p..p + 4].try_into().unwrap());
    let le64 = |p: usize| u64::from_le_bytes(log[p..p + 8].try_into().unwrap());
    let mut out = Vec::new();
    let mut pos = undo::HEADER_LEN;
    while pos + 0x40 <= log.len() && &log[pos..pos + 4] == b"UREC" {
        let (kind, len, flags) = (le32(pos + 4), le64(pos + 0x10), le32(pos + 0x18));
        out.push((pos, kind, le64(pos + 0x20), le64(pos + 0x28)));
        let payload = if kind == 2 || flags & 1 == 0 { len } else { 0 };
        pos += 0x40 + payload as usize;
    }
    out
}

/// `domuify undo LOG IMG` must exit 1 with `want` in its message and leave the
/// image's bytes as they were.
fn assert_undo_refused(log: &Path, img: &Path, want: &str) {
    let sha = sha256_file(img);
    let a = bin().arg("undo").arg(log).arg(img).assert().code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains(want), "want {want:?} in: {err}");
    assert!(!err.contains("different image"), "{err}");
    assert_eq!(sha256_file(img), sha, "{err}");
}

/// Issue 7, class 6. Needs the engine: the undo file of a finished `write`, cut
/// short (1 byte, a few KiB, to its header) or with a byte flipped (in its final
/// record, in a middle record, in its header), is refused with what is wrong and
/// where, and the image is left exactly as the write left it (still clean). The
/// intact file then restores the original.
#[test]
fn undo_refuses_a_damaged_finished_log_and_leaves_the_image() {
    let t = tempfile::tempdir().unwrap();
    let (img, off) = cmd_image(t.path());
    let sha0 = sha256_file(&img);
    let log = t.path().join("w.undo");
    bin()
        .args(["write", "--part", "1"])
        .arg(&img)
        .arg("/etc/fstab")
        .arg("--undo")
        .arg(&log)
        .write_stdin("a much longer fstab\n".repeat(500))
        .assert()
        .success();
    let written = sha256_file(&img);
    let good = fs::read(&log).unwrap();
    let recs = undo_records(&good);
    let (last, kind, _, _) = *recs.last().unwrap();
    assert_eq!(kind, 2, "the log ends with its final record");
    assert!(recs.len() >= 4, "{recs:?}");
    assert!(good.len() > 8192, "{} bytes", good.len());
    let m = recs.len();
    let bad = t.path().join("bad.undo");
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            good[..good.len() - 1].to_vec(),
            format!("truncated after record {} of {m}", m - 1),
        ),
        (
            good[..good.len() - 5000].to_vec(),
            "truncated after record".into(),
        ),
        (
            good[..undo::HEADER_LEN].to_vec(),
            format!("truncated after record 0 of {m}"),
        ),
        (
            {
                let mut b = good.clone();
                b[last + 0x40 + 4] ^= 0x10;
                b
            },
            format!("record {} at {last:#x}: payload checksum mismatch", m - 1),
        ),
        (
            {
                let mut b = good.clone();
                b[recs[1].0 + 0x08] ^= 0x01;
                b
            },
            format!(
                "record 1 at {:#x}: record header checksum mismatch",
                recs[1].0
            ),
        ),
        (
            {
                let mut b = good.clone();
                b[0x18] ^= 0x01;
                b
            },
            "header checksum mismatch".into(),
        ),
    ];
    for (bytes, want) in cases {
        fs::write(&bad, &bytes).unwrap();
        assert_undo_refused(&bad, &img, &want);
        assert_eq!(sha256_file(&img), written);
    }
    assert_fsck_clean(&img, off);
    bin().arg("undo").arg(&log).arg(&img).assert().success();
    assert_eq!(sha256_file(&img), sha0);
}

/// Issue 7, class 6. Needs the engine: a record damaged in the first MiB of a
/// finished log is named as such, not "a different image" (which the restore of
/// a prefix of the records used to conclude from the fingerprint).
#[test]
fn undo_names_a_damaged_record_in_the_first_mib() {
    let t = tempfile::tempdir().unwrap();
    let (img, _) = cmd_image(t.path());
    let log = t.path().join("m.undo");
    bin()
        .args(["mkdir", "--part", "1"])
        .arg(&img)
        .arg("/srv")
        .arg("--undo")
        .arg(&log)
        .assert()
        .success();
    let mut b = fs::read(&log).unwrap();
    let le64 = |b: &[u8], p: usize| u64::from_le_bytes(b[p..p + 8].try_into().unwrap());
    // The first region record with a payload below 1 MiB + 4 KiB: the partition's
    // superblock or group descriptors.
    let recs = undo_records(&b);
    let (pos, _, seq, _) = *recs
        .iter()
        .find(|r| r.1 == 1 && le64(&b, r.0 + 0x08) < (1 << 20) + 8192 && b[r.0 + 0x18] & 1 == 0)
        .unwrap_or_else(|| panic!("no record of the first MiB: {recs:?}"));
    b[pos + 0x40 + 0x38] ^= 0xFF;
    fs::write(&log, &b).unwrap();
    assert_undo_refused(
        &log,
        &img,
        &format!("record {seq} at {pos:#x}: payload checksum mismatch"),
    );
}

/// Issue 7, class 6. Needs the engine: a command stopped by a power loss in the
/// middle of the append that saves a write (the write never reached the image),
/// its undo file cut inside that append, or with a hole in it (the append's pages
/// reached the disk out of order): `domuify undo` restores the original bit for
/// bit and says the command was interrupted.
#[test]
fn undo_restores_a_torn_tail_after_an_interrupted_write() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    small_tree(&tree);
    let spec = ImageSpec {
        fs_size: "10M",
        image_mib: 12,
        ..ImageSpec::default()
    };
    let (base, off) = make_image(t.path(), "base.img", Some(&tree), &spec);
    let sha0 = sha256_file(&base);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let op = |ext: &mut Ext<Dev>| -> domuify::Result<()> {
        let ino = ext.resolve(b"/etc/fstab", true)?;
        ext.replace_contents(ino, &mut &data[..], data.len() as u64, Timestamp::now())
    };
    // Writes of the whole operation, each saved (one append, one sync) before it
    // is issued: the undo log without write-behind, the fault below it.
    let run = |img: &Path, allow: u64, log: &Path| -> u64 {
        let disk = Disk::open(img, Access::ReadWrite).unwrap();
        let fault = Arc::new(FaultDev::new(disk, allow));
        let u: Shared = Arc::new(UndoDev::create_with_buffer(fault.clone(), log, 0).unwrap());
        let len = fault.size() - OFF;
        let win = Window::new(u, OFF, len).unwrap();
        let r = Ext::open_read_write(win).and_then(|mut ext| {
            op(&mut ext)?;
            ext.flush()
        });
        assert_eq!(r.is_ok(), allow == u64::MAX);
        fault.writes()
    };
    let full = copy_image(&base, t.path(), "full.img");
    let n = run(&full, u64::MAX, &t.path().join("full.undo"));
    assert!(n > 3, "{n} writes");
    // Stopped after k writes, the log ends with the append that saved write k + 1
    // when that write needed new chunks: then it is longer than the log of the
    // run stopped after k - 1 writes, and that append starts where that one ends.
    let mut ends = vec![undo::HEADER_LEN];
    for k in 0..n {
        let img = copy_image(&base, t.path(), "k.img");
        let log = t.path().join("k.undo");
        let _ = fs::remove_file(&log);
        assert_eq!(run(&img, k, &log), k);
        ends.push(fs::read(&log).unwrap().len());
    }
    let saving: Vec<u64> = (0..n)
        .filter(|&k| ends[k as usize + 1] > ends[k as usize])
        .collect();
    assert!(saving.len() >= 3, "{ends:?}");
    for k in [
        saving[0],
        saving[saving.len() / 2],
        saving[saving.len() - 1],
    ] {
        let img = copy_image(&base, t.path(), "k.img");
        let log = t.path().join(format!("k{k}.undo"));
        assert_eq!(run(&img, k, &log), k);
        let written = fs::read(&img).unwrap();
        let good = fs::read(&log).unwrap();
        // The last append saved write k + 1, which never happened: it may be torn.
        let first = ends[k as usize];
        let recs = undo_records(&good);
        assert!(
            recs.iter().any(|r| r.0 == first && r.2 == r.3),
            "{first:#x}: {recs:?}"
        );
        let cuts = [
            first + 1,
            first + 0x40 + 10,
            (first + good.len()) / 2,
            good.len() - 1,
        ];
        for (i, cut) in cuts.into_iter().enumerate() {
            let mut torn = good[..cut].to_vec();
            if i == 3 {
                // A hole instead: the append's first page never reached the file.
                torn = good.clone();
                let end = (first + 4096).min(good.len());
                torn[first..end].fill(0);
            }
            fs::write(&img, &written).unwrap();
            let cut_log = t.path().join("cut.undo");
            fs::write(&cut_log, &torn).unwrap();
            let a = bin().arg("undo").arg(&cut_log).arg(&img).assert().success();
            let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
            assert!(err.contains("interrupted"), "{err}");
            assert!(err.contains("ignored the last"), "k={k} cut={cut}: {err}");
            assert_eq!(sha256_file(&img), sha0, "k={k} cut={cut}: {err}");
        }
        assert_fsck_clean(&img, off);
    }
}

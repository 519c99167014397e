//! The file commands (`ls`, `cat`, `copy-out`, `write`, `copy-in`, `mkdir`, `rm`)
//! run as a user runs them, on images made with sfdisk + mke2fs, judged by
//! debugfs, e2fsck and sha256.
//!
//! Tests marked "needs the engine" exercise `Ext` (writes, or the reader fallback)
//! and fail until the engine branch is merged.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::harness::*;

/// A small system tree: files of several sizes, modes, a symlinked usrmerge /lib,
/// a non-UTF-8 name.
fn system_tree(root: &Path) {
    for d in [
        "etc",
        "usr/lib/modules/6.1.0-9-amd64/kernel",
        "bin",
        "empty",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(
        root.join("etc/fstab"),
        "UUID=1234 / ext4 errors=remount-ro 0 1\n/dev/xvda2 none swap sw 0 0\n",
    )
    .unwrap();
    fs::write(root.join("etc/hostname"), "guest\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(
        root.join("usr/lib/modules/6.1.0-9-amd64/kernel/big.ko"),
        &big,
    )
    .unwrap();
    fs::write(
        root.join("usr/lib/modules/6.1.0-9-amd64/modules.dep"),
        "kernel/big.ko:\n",
    )
    .unwrap();
    fs::write(root.join("bin/tool"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.join("etc/hostname"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("etc/hostname-link")).unwrap();
    fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"caf\xe9")),
        b"latin-1 name\n",
    )
    .unwrap();
}

fn stdout_of(a: &assert_cmd::assert::Assert) -> Vec<u8> {
    a.get_output().stdout.clone()
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

#[test]
fn read_commands_match_debugfs_and_never_change_the_image() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    system_tree(&tree);
    let (img, off) = make_image(t.path(), "disk.img", Some(&tree), &ImageSpec::default());
    fs::set_permissions(&img, fs::Permissions::from_mode(0o444)).unwrap();
    let sha = sha256_file(&img);
    let mtime = fs::metadata(&img).unwrap().mtime();

    // ls /: the same names as debugfs.
    let a = bin()
        .args(["ls", "--part", "1"])
        .arg(&img)
        .arg("/")
        .assert()
        .success();
    let mut ours: Vec<Vec<u8>> = stdout_of(&a)
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.to_vec())
        .collect();
    ours.sort();
    let mut theirs: Vec<Vec<u8>> = debugfs_ls(&img, off, "/")
        .into_iter()
        .map(|e| e.name)
        .collect();
    theirs.sort();
    assert_eq!(ours, theirs);
    assert!(ours.contains(&b"caf\xe9".to_vec()));

    // ls -l /etc: mode, owner and size as debugfs sees them.
    let a = bin()
        .args(["ls", "-l", "-p", "1"])
        .arg(&img)
        .arg("/etc")
        .assert()
        .success();
    let out = String::from_utf8_lossy(&stdout_of(&a)).into_owned();
    let entries = debugfs_ls(&img, off, "/etc");
    assert_eq!(out.lines().count(), entries.len(), "{out}");
    for e in &entries {
        let name = String::from_utf8_lossy(&e.name).into_owned();
        let line = out
            .lines()
            .find(|l| l.split_whitespace().nth(6) == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} missing from\n{out}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        let perm = &f[0][1..];
        let mut bits = 0u32;
        for (i, c) in perm.chars().enumerate() {
            if c != '-' {
                bits |= 1 << (8 - i);
            }
        }
        assert_eq!(bits, e.mode & 0o777, "{line}");
        assert_eq!(f[1].parse::<u32>().unwrap(), e.uid);
        assert_eq!(f[2].parse::<u32>().unwrap(), e.gid);
        assert_eq!(f[3].parse::<u64>().unwrap(), e.size, "{line}");
        if e.mode & 0o170000 == 0o120000 {
            assert!(line.ends_with("-> /etc/hostname"), "{line}");
        }
    }

    // cat: the bytes debugfs reads, also through the guest's /lib symlink.
    for (ours, theirs) in [
        ("/etc/fstab", "/etc/fstab"),
        ("/etc/hostname-link", "/etc/hostname"),
        (
            "/lib/modules/6.1.0-9-amd64/kernel/big.ko",
            "/usr/lib/modules/6.1.0-9-amd64/kernel/big.ko",
        ),
    ] {
        let a = bin()
            .args(["cat", "-p", "1"])
            .arg(&img)
            .arg(ours)
            .assert()
            .success();
        let want = debugfs_cat(&img, off, theirs);
        assert!(!want.is_empty());
        assert!(stdout_of(&a) == want, "cat {ours} differs from debugfs");
    }

    // Errors: exit 1 with the path named.
    let a = bin()
        .args(["cat", "-p", "1"])
        .arg(&img)
        .arg("/etc/nope")
        .assert()
        .code(1);
    assert!(stderr_of(&a).contains("/etc/nope"));
    let a = bin()
        .args(["cat", "-p", "1"])
        .arg(&img)
        .arg("/etc")
        .assert()
        .code(1);
    assert!(stderr_of(&a).contains("directory"), "{}", stderr_of(&a));
    bin()
        .args(["cat", "-p", "1"])
        .arg(&img)
        .arg("etc/fstab")
        .assert()
        .code(2);

    assert_eq!(sha256_file(&img), sha, "a read command changed the image");
    assert_eq!(fs::metadata(&img).unwrap().mtime(), mtime);
}

#[test]
fn partition_choice_is_a_usage_error_when_wrong() {
    let t = tempfile::tempdir().unwrap();
    let (img, _) = make_image(t.path(), "disk.img", None, &ImageSpec::default());
    let a = bin().arg("ls").arg(&img).assert().code(2);
    let e = stderr_of(&a);
    assert!(e.contains("--part") && e.contains("1 (at 0x100000"), "{e}");
    let a = bin().args(["ls", "--part", "3"]).arg(&img).assert().code(2);
    assert!(stderr_of(&a).contains("no partition 3"));
    bin()
        .args(["ls", "--part", "1"])
        .arg(&img)
        .assert()
        .success();
    // A missing image is a runtime failure.
    bin()
        .args(["ls", "--part", "1"])
        .arg(t.path().join("none"))
        .assert()
        .code(1);
}

#[test]
fn bare_filesystem_needs_no_part() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    system_tree(&tree);
    let spec = ImageSpec {
        partitioned: false,
        image_mib: 48,
        ..ImageSpec::default()
    };
    let (img, off) = make_image(t.path(), "fs.img", Some(&tree), &spec);
    let a = bin()
        .arg("cat")
        .arg(&img)
        .arg("/etc/fstab")
        .assert()
        .success();
    assert_eq!(stdout_of(&a), debugfs_cat(&img, off, "/etc/fstab"));
}

/// Needs the engine: ext4-view cannot read metadata_csum with 128-byte inodes, so
/// the read commands fall back to the engine's reader and say so.
#[test]
fn metadata_csum_with_128_byte_inodes_falls_back_with_a_note() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    system_tree(&tree);
    let spec = ImageSpec {
        mkfs: &["-t", "ext4", "-I", "128", "-O", "metadata_csum"],
        ..ImageSpec::default()
    };
    let (img, off) = make_image(t.path(), "disk.img", Some(&tree), &spec);
    let sha = sha256_file(&img);
    let a = bin()
        .args(["cat", "-p", "1"])
        .arg(&img)
        .arg("/etc/fstab")
        .assert()
        .success();
    assert_eq!(stdout_of(&a), debugfs_cat(&img, off, "/etc/fstab"));
    let e = stderr_of(&a);
    assert!(e.contains("ext4-view") && e.contains("truncated"), "{e}");
    let a = bin()
        .args(["ls", "-p", "1"])
        .arg(&img)
        .arg("/lib/")
        .assert()
        .success();
    assert_eq!(String::from_utf8_lossy(&stdout_of(&a)), "modules\n");
    assert_eq!(sha256_file(&img), sha);
}

/// Compare a copy-out with debugfs's own `rdump` of the same directories.
#[test]
fn copy_out_matches_debugfs_rdump() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    system_tree(&tree);
    let (img, off) = make_image(t.path(), "disk.img", Some(&tree), &ImageSpec::default());
    let sha = sha256_file(&img);
    let ours = t.path().join("ours");
    let theirs = t.path().join("theirs");
    fs::create_dir(&ours).unwrap();
    fs::create_dir(&theirs).unwrap();
    bin()
        .args(["copy-out", "-p", "1"])
        .arg(&img)
        .args(["/etc", "/usr", "/lib"])
        .arg(&ours)
        .assert()
        .success();
    debugfs(&img, off, &format!("rdump /etc /usr {}", theirs.display()));
    std::os::unix::fs::symlink("usr/lib", theirs.join("lib")).unwrap();
    let paths = walk(&ours);
    assert_eq!(paths, walk(&theirs));
    assert!(paths.len() > 8);
    for p in paths {
        let (a, b) = (ours.join(&p), theirs.join(&p));
        let (ma, mb) = (
            fs::symlink_metadata(&a).unwrap(),
            fs::symlink_metadata(&b).unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "{}", p.display());
        if ma.file_type().is_symlink() {
            assert_eq!(fs::read_link(&a).unwrap(), fs::read_link(&b).unwrap());
            continue;
        }
        assert_eq!(ma.mode() & 0o7777, mb.mode() & 0o7777, "{}", p.display());
        if p != Path::new("lib") {
            assert_eq!(ma.mtime(), mb.mtime(), "mtime of {}", p.display());
        }
        if ma.is_file() {
            assert!(
                fs::read(&a).unwrap() == fs::read(&b).unwrap(),
                "{}",
                p.display()
            );
        }
    }
    assert_eq!(sha256_file(&img), sha);
}

/// An image with a hostile `/sub`: names `..`, `../../escaped`, one with a NUL,
/// a symlink to a host directory (`canary`) followed by a directory of the same
/// name holding `passwd`, and `evil2 -> ../../..` followed by a directory `evil2`
/// holding `x`. Returns (scratch, image, offset, canary).
fn hostile_image() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    u64,
    std::path::PathBuf,
) {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    let spec = ImageSpec {
        // No metadata_csum: the names are patched in place afterwards.
        mkfs: &["-t", "ext4", "-O", "^metadata_csum"],
        ..ImageSpec::default()
    };
    let (img, off) = make_image(t.path(), "disk.img", Some(&tree), &spec);
    let canary = t.path().join("canary");
    fs::create_dir(&canary).unwrap();
    let payload = t.path().join("payload");
    fs::write(&payload, "pwned\n").unwrap();
    let p = payload.display();
    debugfs_w(
        &img,
        off,
        &format!(
            "write {p} /sub/fine\n\
             symlink /sub/evil {}\nmkdir /sub/evjl\nwrite {p} /sub/evjl/passwd\n\
             symlink /sub/evil2 ../../..\nmkdir /sub/evkl2\nwrite {p} /sub/evkl2/x\n\
             write {p} /sub/qq\nwrite {p} /sub/nulXname\nwrite {p} /sub/ddsddsescaped\n",
            canary.display()
        ),
    );
    patch_name(&img, off, "/sub", b"evjl", b"evil");
    patch_name(&img, off, "/sub", b"evkl2", b"evil2");
    patch_name(&img, off, "/sub", b"qq", b"..");
    patch_name(&img, off, "/sub", b"ddsddsescaped", b"../../escaped");
    patch_name(&img, off, "/sub", b"nulXname", b"nul\0name");
    (t, img, off, canary)
}

/// After a copy-out of the hostile `/sub` into `scratch/a/b/out` (three levels
/// down, so that `../../..` from `out/sub` stays in the scratch directory), check
/// that nothing landed outside `out`.
fn assert_nothing_escaped(scratch: &Path, canary: &Path) {
    let top = scratch.join("a");
    let out = top.join("b/out");
    // What is legitimately there is copied.
    assert_eq!(fs::read(out.join("sub/fine")).unwrap(), b"pwned\n");
    assert_eq!(fs::read_link(out.join("sub/evil")).unwrap(), canary);
    assert_eq!(
        fs::read_link(out.join("sub/evil2")).unwrap(),
        Path::new("../../..")
    );
    // Nothing went through the symlinks or up the tree.
    assert_eq!(
        fs::read_dir(canary).unwrap().count(),
        0,
        "wrote into the canary"
    );
    let found = walk(&top);
    let want: Vec<std::path::PathBuf> = [
        "b",
        "b/out",
        "b/out/sub",
        "b/out/sub/evil",
        "b/out/sub/evil2",
        "b/out/sub/fine",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .collect();
    assert_eq!(found, want);
    let names: Vec<_> = fs::read_dir(scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names.iter().any(|n| n == "escaped" || n == "x"),
        "{names:?}"
    );
}

#[test]
fn copy_out_never_writes_outside_the_destination() {
    let (t, img, _, canary) = hostile_image();
    let out = t.path().join("a/b/out");
    fs::create_dir_all(&out).unwrap();
    let a = bin()
        .args(["copy-out", "-p", "1"])
        .arg(&img)
        .arg("/sub")
        .arg(&out)
        .assert()
        .code(1);
    let err = stderr_of(&a);
    assert!(err.contains("skipped"), "{err}");
    assert_nothing_escaped(t.path(), &canary);
}

/// Needs the engine: the same hostile image read through the engine's reader,
/// which (unlike ext4-view) hands every raw name to copy-out.
#[test]
fn copy_out_through_the_engine_reader_never_escapes() {
    use domuify::disk::{Access, Disk, Window};
    let (t, img, off, canary) = hostile_image();
    let out = t.path().join("a/b/out");
    fs::create_dir_all(&out).unwrap();
    let disk = Disk::open(&img, Access::ReadOnly).unwrap();
    let len = disk_len(&disk) - off;
    let win = Window::new(disk, off, len).unwrap();
    let r = domuify::copy::EngineReader::open(win).unwrap();
    let rep = domuify::copy::copy_out(&r, &[b"/sub".to_vec()], &out).unwrap();
    assert!(rep.errors.len() >= 3, "{:?}", rep.errors);
    assert_nothing_escaped(t.path(), &canary);
}

fn disk_len(d: &domuify::disk::Disk) -> u64 {
    use domuify::disk::ReadAt;
    d.size()
}

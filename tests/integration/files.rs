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
        .args(["ls", "-l", "--part", "1"])
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
            .args(["cat", "--part", "1"])
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
        .args(["cat", "--part", "1"])
        .arg(&img)
        .arg("/etc/nope")
        .assert()
        .code(1);
    assert!(stderr_of(&a).contains("/etc/nope"));
    let a = bin()
        .args(["cat", "--part", "1"])
        .arg(&img)
        .arg("/etc")
        .assert()
        .code(1);
    assert!(stderr_of(&a).contains("directory"), "{}", stderr_of(&a));
    bin()
        .args(["cat", "--part", "1"])
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
        .args(["cat", "--part", "1"])
        .arg(&img)
        .arg("/etc/fstab")
        .assert()
        .success();
    assert_eq!(stdout_of(&a), debugfs_cat(&img, off, "/etc/fstab"));
    let e = stderr_of(&a);
    assert!(e.contains("ext4-view") && e.contains("truncated"), "{e}");
    let a = bin()
        .args(["ls", "--part", "1"])
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
        .args(["copy-out", "--part", "1"])
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
    // With a trailing slash the guest symlink is followed: a real directory.
    let followed = t.path().join("followed");
    fs::create_dir(&followed).unwrap();
    bin()
        .args(["copy-out", "--part", "1"])
        .arg(&img)
        .arg("/lib/")
        .arg(&followed)
        .assert()
        .success();
    assert!(fs::symlink_metadata(followed.join("lib")).unwrap().is_dir());
    assert_eq!(walk(&followed.join("lib")), walk(&theirs.join("usr/lib")));
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
        .args(["copy-out", "--part", "1"])
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

#[test]
fn every_subcommand_has_valid_help() {
    for c in [
        "ls", "cat", "copy-out", "write", "copy-in", "mkdir", "rm", "undo",
    ] {
        bin().arg(c).arg("--help").assert().success();
    }
}

fn system_image(t: &Path) -> (std::path::PathBuf, u64) {
    let tree = t.join("tree");
    system_tree(&tree);
    make_image(t, "disk.img", Some(&tree), &ImageSpec::default())
}

/// Needs the engine.
#[test]
fn write_replaces_in_place_keeping_inode_owner_and_xattrs() {
    let t = tempfile::tempdir().unwrap();
    let (img, off) = system_image(t.path());
    debugfs_w(
        &img,
        off,
        "ea_set /etc/fstab security.selinux system_u:object_r:etc_t:s0\n\
         set_inode_field /etc/fstab uid 7\nset_inode_field /etc/fstab mode 0100640\n",
    );
    let before = debugfs_stat(&img, off, "/etc/fstab");
    let new: String = (0..400)
        .map(|i| format!("/dev/xvda{i} /mnt/{i} ext4 defaults 0 2\n"))
        .collect();
    bin()
        .args(["write", "--part", "1"])
        .arg(&img)
        .arg("/etc/fstab")
        .write_stdin(new.clone())
        .assert()
        .success();
    assert_eq!(debugfs_cat(&img, off, "/etc/fstab"), new.as_bytes());
    let after = debugfs_stat(&img, off, "/etc/fstab");
    for f in ["Inode:", "User:", "Group:", "Mode:"] {
        assert_eq!(stat_field(&before, f), stat_field(&after, f), "{f}");
    }
    let ea = String::from_utf8_lossy(&debugfs(&img, off, "ea_get /etc/fstab security.selinux"))
        .into_owned();
    assert!(ea.contains("system_u:object_r:etc_t:s0"), "{ea}");
    assert_fsck_clean(&img, off);

    // Shorter again, from a redirected regular file rather than a pipe.
    let short = t.path().join("short");
    fs::write(&short, "tmpfs /tmp tmpfs defaults 0 0\n").unwrap();
    let st = std::process::Command::new(assert_cmd::cargo::cargo_bin("domuify"))
        .args(["write", "--part", "1"])
        .arg(&img)
        .arg("/etc/fstab")
        .stdin(fs::File::open(&short).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        debugfs_cat(&img, off, "/etc/fstab"),
        fs::read(&short).unwrap()
    );
    assert_fsck_clean(&img, off);
}

/// Needs the engine.
#[test]
fn write_creates_resolves_paths_and_follows_guest_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let (img, off) = system_image(t.path());
    // New file: 0644 root:root.
    bin()
        .args(["write", "--part", "1"])
        .arg(&img)
        .arg("/etc/new.conf")
        .write_stdin("x=1\n")
        .assert()
        .success();
    let st = debugfs_stat(&img, off, "/etc/new.conf");
    assert_eq!(stat_field(&st, "Mode:"), "0644");
    assert_eq!(stat_field(&st, "User:"), "0");
    assert_eq!(stat_field(&st, "Type:"), "regular");
    // A destination with `/` is a path: through the guest's /lib -> usr/lib.
    bin()
        .args(["write", "--part", "1"])
        .arg(&img)
        .arg("/lib/modules/6.1.0-9-amd64/extra.conf")
        .write_stdin("options x y=1\n")
        .assert()
        .success();
    assert_eq!(
        debugfs_cat(&img, off, "/usr/lib/modules/6.1.0-9-amd64/extra.conf"),
        b"options x y=1\n"
    );
    assert_eq!(
        stat_field(&debugfs_stat(&img, off, "/lib"), "Type:"),
        "symlink"
    );
    for dir in ["/", "/etc", "/usr/lib/modules/6.1.0-9-amd64"] {
        for e in debugfs_ls(&img, off, dir) {
            assert!(!e.name.contains(&b'/'), "literal slash in {dir}");
        }
    }
    // Through a symlink to a file: the target is written.
    bin()
        .args(["write", "--part", "1"])
        .arg(&img)
        .arg("/etc/hostname-link")
        .write_stdin("renamed\n")
        .assert()
        .success();
    assert_eq!(debugfs_cat(&img, off, "/etc/hostname"), b"renamed\n");
    assert_eq!(
        stat_field(&debugfs_stat(&img, off, "/etc/hostname-link"), "Type:"),
        "symlink"
    );
    assert_fsck_clean(&img, off);

    // Errors leave the image as it was.
    let sha = sha256_file(&img);
    for (path, code) in [
        ("/nope/x", 1),
        ("/etc", 1),
        ("/etc/fstab/x", 1),
        ("relative", 2),
    ] {
        bin()
            .args(["write", "--part", "1"])
            .arg(&img)
            .arg(path)
            .write_stdin("z")
            .assert()
            .code(code);
    }
    assert_eq!(sha256_file(&img), sha);
    // A read-only image is refused with a message.
    fs::set_permissions(&img, fs::Permissions::from_mode(0o444)).unwrap();
    let ro_ok = fs::OpenOptions::new().write(true).open(&img).is_err();
    if ro_ok {
        let a = bin()
            .args(["write", "--part", "1"])
            .arg(&img)
            .arg("/etc/x")
            .write_stdin("z")
            .assert()
            .code(1);
        assert!(stderr_of(&a).contains("cannot open"), "{}", stderr_of(&a));
    }
}

/// Needs the engine. The peer trap: `debugfs mkdir` through a usrmerge symlink
/// corrupts the filesystem.
#[test]
fn mkdir_goes_through_the_usrmerge_symlink() {
    let t = tempfile::tempdir().unwrap();
    let (img, off) = system_image(t.path());
    let mk = |args: &[&str]| {
        bin()
            .arg("mkdir")
            .args(["--part", "1"])
            .arg(&img)
            .args(args)
            .assert()
    };
    mk(&["/lib/firmware"]).success();
    mk(&["-p", "/lib/modules/6.1.0-9-amd64/updates/dkms"]).success();
    assert_eq!(
        stat_field(&debugfs_stat(&img, off, "/usr/lib/firmware"), "Type:"),
        "directory"
    );
    let st = debugfs_stat(&img, off, "/usr/lib/modules/6.1.0-9-amd64/updates/dkms");
    assert_eq!(stat_field(&st, "Type:"), "directory");
    assert_eq!(stat_field(&st, "Mode:"), "0755");
    let lib = debugfs_stat(&img, off, "/lib");
    assert_eq!(stat_field(&lib, "Type:"), "symlink");
    assert!(lib.contains("usr/lib"), "{lib}");
    // Parent link count: /usr/lib gained one subdirectory (firmware).
    let links = stat_field(&debugfs_stat(&img, off, "/usr/lib"), "Links:");
    assert_eq!(links, "4", "links of /usr/lib (., .., modules, firmware)");
    assert_fsck_clean(&img, off);

    let sha = sha256_file(&img);
    mk(&["/lib/firmware"]).code(1);
    mk(&["-p", "/lib/firmware"]).success();
    mk(&["-p", "/etc/fstab/sub"]).code(1);
    mk(&["/missing/sub"]).code(1);
    assert_eq!(sha256_file(&img), sha);
}

/// Needs the engine.
#[test]
fn rm_removes_files_symlinks_and_trees_and_frees_everything() {
    let t = tempfile::tempdir().unwrap();
    let (img, off) = system_image(t.path());
    let free0 = free_counts(&img, off);
    let rm = |args: &[&str]| {
        bin()
            .arg("rm")
            .args(["--part", "1"])
            .arg(&img)
            .args(args)
            .assert()
    };
    // The symlink itself goes, not what it points to.
    rm(&["/lib"]).success();
    assert!(debugfs_ls(&img, off, "/").iter().all(|e| e.name != b"lib"));
    assert_eq!(
        stat_field(&debugfs_stat(&img, off, "/usr/lib"), "Type:"),
        "directory"
    );
    rm(&["/etc/fstab"]).success();
    assert!(debugfs_ls(&img, off, "/etc")
        .iter()
        .all(|e| e.name != b"fstab"));
    let sha = sha256_file(&img);
    rm(&["/usr"]).code(1);
    rm(&["/nope"]).code(1);
    rm(&["/"]).code(2);
    assert_eq!(sha256_file(&img), sha);
    rm(&["-r", "/usr"]).success();
    assert!(debugfs_ls(&img, off, "/").iter().all(|e| e.name != b"usr"));
    assert_fsck_clean(&img, off);
    let free1 = free_counts(&img, off);
    // 3 MB of big.ko came back, and the inodes of everything removed.
    assert!(free1.0 > free0.0 + 2000, "{free0:?} -> {free1:?}");
    assert!(free1.1 >= free0.1 + 8, "{free0:?} -> {free1:?}");
}

/// A host tree with what copy-in must keep: modes, owners, times, symlinks (fast
/// and slow), hard links, an empty directory.
fn host_tree(root: &Path) {
    fs::create_dir_all(root.join("pkg/sub/empty")).unwrap();
    fs::write(root.join("pkg/a.ko"), vec![0x5au8; 300_000]).unwrap();
    fs::write(root.join("pkg/sub/b.conf"), "b\n").unwrap();
    fs::write(root.join("pkg/empty-file"), "").unwrap();
    fs::hard_link(root.join("pkg/a.ko"), root.join("pkg/sub/a-hard.ko")).unwrap();
    std::os::unix::fs::symlink("../a.ko", root.join("pkg/sub/fast")).unwrap();
    std::os::unix::fs::symlink("/".to_string() + &"long/".repeat(30), root.join("pkg/slow"))
        .unwrap();
    fs::set_permissions(root.join("pkg/a.ko"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::set_permissions(root.join("pkg/sub"), fs::Permissions::from_mode(0o750)).unwrap();
    // Owners need root; when not root they stay the runner's, and are checked as such.
    let _ = std::os::unix::fs::chown(root.join("pkg/sub/b.conf"), Some(1234), Some(567));
    let old = filetime::FileTime::from_unix_time(1_000_000_000, 123_456_789);
    for p in ["pkg/sub/b.conf", "pkg/sub", "pkg", "pkg/sub/empty"] {
        filetime::set_file_times(root.join(p), old, old).unwrap();
    }
    filetime::set_symlink_file_times(root.join("pkg/sub/fast"), old, old).unwrap();
}

/// Needs the engine. Judged by debugfs's rdump of the copy against the source.
#[test]
fn copy_in_keeps_modes_owners_times_symlinks_and_hard_links() {
    let t = tempfile::tempdir().unwrap();
    let (img, off) = system_image(t.path());
    let src = t.path().join("src");
    host_tree(&src);
    let a = bin()
        .args(["copy-in", "--part", "1"])
        .arg(&img)
        .arg(src.join("pkg"))
        .arg("/lib/modules/6.1.0-9-amd64")
        .assert()
        .success();
    // No progress bar when stderr is not a terminal.
    assert_eq!(stderr_of(&a), "");
    assert_fsck_clean(&img, off);
    let gdir = "/usr/lib/modules/6.1.0-9-amd64/pkg";
    assert_eq!(
        stat_field(&debugfs_stat(&img, off, "/lib"), "Type:"),
        "symlink"
    );

    // Hard links: one inode, two names, link count 2.
    let top = debugfs_ls(&img, off, gdir);
    let sub = debugfs_ls(&img, off, &format!("{gdir}/sub"));
    let a = top.iter().find(|e| e.name == b"a.ko").unwrap();
    let h = sub.iter().find(|e| e.name == b"a-hard.ko").unwrap();
    assert_eq!(a.ino, h.ino);
    assert_eq!(
        stat_field(&debugfs_stat(&img, off, &format!("{gdir}/a.ko")), "Links:"),
        "2"
    );

    // Everything else through rdump, compared with the source.
    let dump = t.path().join("dump");
    fs::create_dir(&dump).unwrap();
    debugfs(&img, off, &format!("rdump {gdir} {}", dump.display()));
    let (ours, theirs) = (src.join("pkg"), dump.join("pkg"));
    let paths = walk(&ours);
    assert_eq!(paths, walk(&theirs));
    for p in &paths {
        let (x, y) = (ours.join(p), theirs.join(p));
        let (mx, my) = (
            fs::symlink_metadata(&x).unwrap(),
            fs::symlink_metadata(&y).unwrap(),
        );
        assert_eq!(mx.file_type(), my.file_type(), "{}", p.display());
        if mx.file_type().is_symlink() {
            assert_eq!(fs::read_link(&x).unwrap(), fs::read_link(&y).unwrap());
            continue;
        }
        // rdump chowns after chmod, which clears set-user-ID: full modes below.
        assert_eq!(
            mx.mode() & 0o777,
            my.mode() & 0o777,
            "mode of {}",
            p.display()
        );
        assert_eq!(
            (mx.uid(), mx.gid()),
            (my.uid(), my.gid()),
            "owner of {}",
            p.display()
        );
        assert_eq!(mx.mtime(), my.mtime(), "mtime of {}", p.display());
        if mx.is_file() {
            assert!(
                fs::read(&x).unwrap() == fs::read(&y).unwrap(),
                "{}",
                p.display()
            );
        }
    }
    let st = debugfs_stat(&img, off, &format!("{gdir}/a.ko"));
    assert_eq!(stat_field(&st, "Mode:"), "04751");
    // Nanoseconds of times, which rdump does not carry.
    let st = debugfs_stat(&img, off, &format!("{gdir}/sub/b.conf"));
    assert!(st.contains("mtime: 0x3b9aca00:"), "{st}");
    let ns = u32::from_str_radix(&stat_field(&st, "mtime: 0x3b9aca00:"), 16).unwrap_or(0);
    assert_eq!(ns >> 2, 123_456_789, "{st}");

    // Again, with one file changed: merged, the file replaced in place.
    fs::write(src.join("pkg/sub/b.conf"), "changed\n").unwrap();
    let ino_before = stat_field(
        &debugfs_stat(&img, off, &format!("{gdir}/sub/b.conf")),
        "Inode:",
    );
    bin()
        .args(["copy-in", "--part", "1"])
        .arg(&img)
        .arg(src.join("pkg"))
        .arg("/usr/lib/modules/6.1.0-9-amd64")
        .assert()
        .success();
    assert_eq!(
        debugfs_cat(&img, off, &format!("{gdir}/sub/b.conf")),
        b"changed\n"
    );
    let ino_after = stat_field(
        &debugfs_stat(&img, off, &format!("{gdir}/sub/b.conf")),
        "Inode:",
    );
    assert_eq!(ino_before, ino_after);
    assert_fsck_clean(&img, off);
}

/// Needs the engine: a tree that does not fit is refused before any write.
#[test]
fn copy_in_that_does_not_fit_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let spec = ImageSpec {
        mkfs: &["-t", "ext4", "-N", "64"],
        fs_size: "8M",
        image_mib: 16,
        partitioned: true,
    };
    let (img, _) = make_image(t.path(), "small.img", None, &spec);
    let sha = sha256_file(&img);
    // Blocks.
    let big = t.path().join("big");
    fs::write(&big, vec![1u8; 12 << 20]).unwrap();
    let a = bin()
        .args(["copy-in", "--part", "1"])
        .arg(&img)
        .arg(&big)
        .arg("/")
        .assert()
        .code(1);
    assert!(
        stderr_of(&a).to_lowercase().contains("space"),
        "{}",
        stderr_of(&a)
    );
    assert_eq!(sha256_file(&img), sha);
    // Inodes.
    let many = t.path().join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..100 {
        fs::write(many.join(format!("f{i}")), "x").unwrap();
    }
    bin()
        .args(["copy-in", "--part", "1"])
        .arg(&img)
        .arg(&many)
        .arg("/")
        .assert()
        .code(1);
    assert_eq!(sha256_file(&img), sha);
}

/// The seed's disk: the guest is ext3 in logical partition 5 (EBR chain), read and
/// written by partition number. Needs the engine for the write.
#[test]
fn seed_fixture_logical_ext3_partition() {
    let t = tempfile::tempdir().unwrap();
    let img = crate::fixtures::copy("seed.img", t.path());
    let off = 102_400 * 512;
    let a = bin().arg("ls").arg(&img).assert().code(2);
    let e = stderr_of(&a);
    assert!(e.contains("5 (at 0x3200000"), "{e}");
    let a = bin()
        .args(["cat", "--part", "5"])
        .arg(&img)
        .arg("/etc/fstab")
        .assert()
        .success();
    assert_eq!(stdout_of(&a), debugfs_cat(&img, off, "/etc/fstab"));
    // --part 4 is the extended container: no filesystem to choose.
    bin().args(["ls", "--part", "4"]).arg(&img).assert().code(2);
    let mut fstab = stdout_of(&a);
    fstab.extend_from_slice(b"/dev/xvdb1 /srv ext3 defaults 0 2\n");
    bin()
        .args(["write", "--part", "5"])
        .arg(&img)
        .arg("/etc/fstab")
        .write_stdin(fstab.clone())
        .assert()
        .success();
    assert_eq!(debugfs_cat(&img, off, "/etc/fstab"), fstab);
    assert_fsck_clean(&img, off);
    // The dom0 root in partition 3 is untouched.
    assert_fsck_clean(&img, 51_200 * 512);
}

/// The GPT fixture's Debian root (ext4, 4 KiB, metadata_csum, usrmerge): copy-in a
/// module tree through /lib, read back through ls. Needs the engine.
#[test]
fn gpt_fixture_copy_in_through_usrmerge() {
    let t = tempfile::tempdir().unwrap();
    let img = crate::fixtures::copy("gpt.img", t.path());
    let off = 133_120 * 512;
    let src = t.path().join("src");
    host_tree(&src);
    bin()
        .args(["copy-in", "--part", "2"])
        .arg(&img)
        .arg(src.join("pkg"))
        .arg("/lib")
        .assert()
        .success();
    assert_fsck_clean(&img, off);
    assert_eq!(
        stat_field(&debugfs_stat(&img, off, "/lib"), "Type:"),
        "symlink"
    );
    assert_eq!(
        debugfs_cat(&img, off, "/usr/lib/pkg/sub/b.conf"),
        fs::read(src.join("pkg/sub/b.conf")).unwrap()
    );
    let a = bin()
        .args(["ls", "--part", "2"])
        .arg(&img)
        .arg("/lib/pkg/sub")
        .assert()
        .success();
    assert_eq!(
        String::from_utf8_lossy(&stdout_of(&a)),
        "a-hard.ko\nb.conf\nempty\nfast\n"
    );
}

/// Needs the engine: a copy-in that meets a conflict half-way (a host file where
/// the guest has a directory) stops with a clear error, leaves a clean filesystem,
/// and with --undo the image comes back bit for bit.
#[test]
fn copy_in_stopped_by_a_conflict_leaves_a_clean_filesystem() {
    let t = tempfile::tempdir().unwrap();
    let (img, off) = system_image(t.path());
    let sha = sha256_file(&img);
    let src = t.path().join("src");
    host_tree(&src);
    fs::write(src.join("usr"), "a file where the guest has a directory\n").unwrap();
    let log = t.path().join("u");
    let a = bin()
        .args(["copy-in", "--part", "1"])
        .arg(&img)
        .arg(src.join("pkg"))
        .arg(src.join("usr"))
        .arg("/")
        .arg("--undo")
        .arg(&log)
        .assert()
        .code(1);
    let e = stderr_of(&a);
    assert!(e.contains("usr") && e.contains("directory"), "{e}");
    assert_fsck_clean(&img, off);
    assert_eq!(
        stat_field(&debugfs_stat(&img, off, "/usr"), "Type:"),
        "directory"
    );
    if log.exists() {
        bin().arg("undo").arg(&log).arg(&img).assert().success();
    }
    assert_eq!(sha256_file(&img), sha);
}

/// Unmounts on drop (also when an assertion fails).
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A writing command refuses an image whose filesystem is mounted (through a
/// loop device). Needs root and loop devices; elsewhere it says it was skipped.
#[test]
fn writing_to_a_mounted_image_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (img, _) = system_image(t.path());
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .arg("-o")
        .arg(format!("ro,offset={OFF}"))
        .arg(&img)
        .arg(&mnt)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        crate::harness::missing("cannot mount a loop device here");
        return;
    }
    let guard = Mounted(mnt.clone());
    let sha = sha256_file(&img);
    let a = bin()
        .args(["write", "--part", "1"])
        .arg(&img)
        .arg("/etc/x")
        .write_stdin("x")
        .assert()
        .code(1);
    assert!(stderr_of(&a).contains("mounted"), "{}", stderr_of(&a));
    assert_eq!(sha256_file(&img), sha);
    drop(guard);
    bin()
        .args(["write", "--part", "1"])
        .arg(&img)
        .arg("/etc/x")
        .write_stdin("x")
        .assert()
        .success();
}

/// Needs the engine: a piped input larger than the in-memory limit is spooled,
/// and lands whole.
#[test]
fn write_of_a_large_piped_input() {
    let t = tempfile::tempdir().unwrap();
    let (img, off) = system_image(t.path());
    let data: Vec<u8> = (0..12_000_000u32).map(|i| (i % 239) as u8).collect();
    bin()
        .args(["write", "--part", "1"])
        .arg(&img)
        .arg("/boot.bin")
        .write_stdin(data.clone())
        .assert()
        .success();
    assert!(debugfs_cat(&img, off, "/boot.bin") == data);
    assert_fsck_clean(&img, off);
}

/// A damaged filesystem whose directory holds two hard links to itself: the walk
/// would be endless (and exponential); copy-out meets the directory again, skips
/// it with a warning and copies everything else once, through both readers.
#[test]
fn copy_out_stops_on_a_directory_cycle() {
    let t = tempfile::tempdir().unwrap();
    let spec = ImageSpec {
        mkfs: &["-t", "ext4", "-N", "64"],
        fs_size: "8M",
        image_mib: 16,
        partitioned: true,
    };
    let (img, off) = make_image(t.path(), "cyc.img", None, &spec);
    debugfs_w(&img, off, "mkdir /sub\nln /sub /sub/a\nln /sub /sub/b\n");
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    let a = bin()
        .args(["copy-out", "--part", "1"])
        .arg(&img)
        .arg("/sub")
        .arg(&out)
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    assert_eq!(
        stderr_of(&a).matches("directory hard link").count(),
        2,
        "{}",
        stderr_of(&a)
    );
    assert_eq!(walk(&out), vec![std::path::PathBuf::from("sub")]);

    use domuify::disk::{Access, Disk, Window};
    let disk = Disk::open(&img, Access::ReadOnly).unwrap();
    let len = disk_len(&disk) - off;
    let r = domuify::copy::EngineReader::open(Window::new(disk, off, len).unwrap()).unwrap();
    let out2 = t.path().join("out2");
    fs::create_dir(&out2).unwrap();
    let rep = domuify::copy::copy_out(&r, &[b"/sub".to_vec()], &out2).unwrap();
    assert_eq!(rep.dirs, 1);
    assert_eq!(rep.warnings.len(), 2, "{:?}", rep.warnings);
}

/// Needs the engine: device nodes, fifos and sockets are copied in as such (like
/// virt-copy-in). Device nodes need root to make on the host; without it only the
/// fifo and the socket are checked.
#[test]
fn copy_in_keeps_device_nodes_fifos_and_sockets() {
    let t = tempfile::tempdir().unwrap();
    let (img, off) = system_image(t.path());
    let sp = t.path().join("sp");
    fs::create_dir(&sp).unwrap();
    let made = |args: &[&str]| {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .current_dir(&sp)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    assert!(made(&["mkfifo", "fifo"]));
    let devices =
        made(&["mknod", "null", "c", "1", "3"]) && made(&["mknod", "disk", "b", "259", "300"]);
    let _sock = std::os::unix::net::UnixListener::bind(sp.join("sock")).unwrap();
    bin()
        .args(["copy-in", "--part", "1"])
        .arg(&img)
        .arg(&sp)
        .arg("/")
        .assert()
        .success();
    assert_fsck_clean(&img, off);
    let ty = |p: &str| {
        let st = debugfs_stat(&img, off, p);
        let i = st.find("Type: ").unwrap() + 6;
        let j = st[i..].find("  ").unwrap();
        (st[i..i + j].to_string(), st)
    };
    assert_eq!(ty("/sp/fifo").0, "FIFO");
    assert_eq!(ty("/sp/sock").0, "socket");
    if devices {
        let (t1, st) = ty("/sp/null");
        assert_eq!(t1, "character special");
        assert!(st.contains("Device major/minor number: 01:03"), "{st}");
        let (t2, st) = ty("/sp/disk");
        assert_eq!(t2, "block special");
        assert!(st.contains("Device major/minor number: 259:300"), "{st}");
    } else {
        crate::harness::missing("device nodes: mknod needs root");
    }
}

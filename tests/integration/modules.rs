//! `domuify modules`: Debian's real kernel module tree (`scripts/debian-modules`:
//! apt-get download + dpkg -x, cached) copied into the seed disk's guest (ext3,
//! logical partition 5) and the GPT disk's root (ext4, metadata_csum, usrmerge
//! `/lib -> usr/lib`). Judges: `e2fsck -fn`, `debugfs rdump` compared with the
//! source by `diff -r --no-dereference` and by `find -printf` (type, mode, owner,
//! size, link target, mtime), `debugfs stat /lib`, dumpe2fs free counts, sha256
//! of the image for every refusal.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::fixtures;
use crate::harness::{assert_fsck_clean, bin, debugfs_stat, free_counts, run, sha256_file};

/// Byte offset of the seed's guest (partition 5).
const SEED_P5: u64 = 50 << 20;
/// Byte offset of the GPT disk's root (partition 2).
const GPT_P2: u64 = 68_157_440;

/// Debian's module tree, or `None` (skipped with a message) when it cannot be
/// fetched outside CI; under `CI=true` a missing tree fails.
fn debian_tree() -> Option<&'static Path> {
    static TREE: OnceLock<Option<PathBuf>> = OnceLock::new();
    TREE.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = run(Command::new("bash").arg(root.join("scripts/debian-modules")));
        if out.status.success() {
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if p.join("kernel").is_dir() {
                return Some(p);
            }
        }
        let why = String::from_utf8_lossy(&out.stderr).into_owned();
        crate::harness::missing(format!("Debian's module tree is not available: {why}"));
        None
    })
    .as_deref()
}

/// A part of Debian's tree (the listed paths) under `dir/VER`, with the `build`
/// and `source` symlinks an installed tree has (absolute host paths).
fn subset(tree: &Path, dir: &Path, ver: &str, paths: &[&str]) -> PathBuf {
    let to = dir.join(ver);
    std::fs::create_dir_all(&to).unwrap();
    let mut c = Command::new("cp");
    c.current_dir(tree)
        .args(["-a", "--parents"])
        .args(paths)
        .arg(&to);
    assert!(run(&mut c).status.success(), "cp of the subset");
    let headers = format!("/usr/src/linux-headers-{ver}");
    std::os::unix::fs::symlink(&headers, to.join("build")).unwrap();
    std::os::unix::fs::symlink(&headers, to.join("source")).unwrap();
    to
}

const SET_A: &[&str] = &[
    "modules.order",
    "modules.builtin",
    "kernel/drivers/block",
    "kernel/drivers/xen",
    "kernel/fs/ext4",
    "kernel/fs/jbd2",
];
const SET_B: &[&str] = &[
    "modules.builtin.modinfo",
    "kernel/drivers/block",
    "kernel/crypto",
];

/// `find -printf` of a tree: path, type, mode, owner, group, size, link target,
/// and the mtime (seconds) of regular files (rdump keeps no other's: symlink
/// times are checked with `debugfs stat` in [`assert_link_times`]).
fn listing(dir: &Path) -> Vec<String> {
    let out = run(Command::new("find").arg(dir).args([
        "-mindepth",
        "1",
        "-printf",
        "%P\t%y\t%m\t%U\t%G\t%l\t%Ts\t%s\n",
    ]));
    assert!(out.status.success());
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f[1] != "f" {
                f[..6].join("\t")
            } else {
                f.join("\t")
            }
        })
        .collect();
    v.sort();
    v
}

/// `debugfs rdump` of the guest's `path` into a fresh directory; returns the copy.
fn rdump(img: &Path, off: u64, path: &str, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    let out = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump {path} {}", into.display()))
        .arg(fixtures::at(img, off)));
    assert!(out.status.success());
    into.join(Path::new(path).file_name().unwrap())
}

/// The copy equals the source: `diff -r --no-dereference`, then the metadata.
fn assert_same_tree(src: &Path, copy: &Path) {
    let out = run(Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(src)
        .arg(copy));
    assert!(
        out.status.success(),
        "diff -r --no-dereference {} {}:\n{}",
        src.display(),
        copy.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(listing(src), listing(copy), "metadata differs");
}

/// The guest's `build` and `source` symlinks keep the host's mtime (debugfs stat).
fn assert_link_times(img: &Path, off: u64, guest_dir: &str, src: &Path) {
    use std::os::unix::fs::MetadataExt;
    for name in ["build", "source"] {
        let st = debugfs_stat(img, off, &format!("{guest_dir}/{name}"));
        assert!(st.contains("Type: symlink"), "{st}");
        let m = crate::harness::stat_field(&st, "mtime:");
        let secs =
            i64::from_str_radix(m.trim_start_matches("0x").split(':').next().unwrap(), 16).unwrap();
        let host = std::fs::symlink_metadata(src.join(name)).unwrap().mtime();
        assert_eq!(secs, host, "{name}: mtime");
    }
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = bin().args(args).output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Total size and count of the regular files under `dir` (std, not our code).
fn file_bytes(dir: &Path) -> (u64, u64) {
    let mut n = (0, 0);
    for p in crate::harness::walk(dir) {
        let m = std::fs::symlink_metadata(dir.join(p)).unwrap();
        if m.is_file() {
            n.0 += m.len();
            n.1 += 1;
        }
    }
    n
}

#[test]
fn modules_into_the_seed_guest_ext3() {
    let Some(tree) = debian_tree() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ver = tree.file_name().unwrap().to_str().unwrap().to_string();
    let a = subset(tree, &tmp.path().join("a"), &ver, SET_A);
    let img = fixtures::copy("seed.img", tmp.path());

    // Two systems: --part is needed, and the error lists both (exit 2).
    let out = bin()
        .args(["modules", s(&img), "--from", s(&a)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("partition 3") && err.contains("partition 5"),
        "{err}"
    );

    // The plan: nothing written, the numbers of the tree.
    let before = sha256_file(&img);
    let plan = json(&["modules", s(&img), "--part", "5", "--from", s(&a), "--json"]);
    assert_eq!(sha256_file(&img), before, "a plan wrote to the image");
    let (bytes, files) = file_bytes(&a);
    assert_eq!(plan["bytes"], bytes);
    assert_eq!(plan["files"], files);
    assert_eq!(plan["fits"], true);
    assert_eq!(plan["destination"], format!("/lib/modules/{ver}"));
    assert_eq!(plan["resolved_destination"], format!("/lib/modules/{ver}"));
    let need = plan["need"]["blocks"].as_u64().unwrap();

    let (free0, ifree0) = free_counts(&img, SEED_P5);
    bin()
        .args([
            "modules",
            s(&img),
            "--part",
            "5",
            "--from",
            s(&a),
            "--apply",
        ])
        .assert()
        .success();
    assert_fsck_clean(&img, SEED_P5);
    let (free1, ifree1) = free_counts(&img, SEED_P5);
    assert!(
        free0 - free1 <= need,
        "used {} blocks, planned {need}",
        free0 - free1
    );
    assert!(ifree0 - ifree1 <= plan["need"]["inodes"].as_u64().unwrap());
    let copy = rdump(
        &img,
        SEED_P5,
        &format!("/lib/modules/{ver}"),
        &tmp.path().join("out"),
    );
    assert_same_tree(&a, &copy);
    assert_link_times(&img, SEED_P5, &format!("/lib/modules/{ver}"), &a);
    // The guest's own tree is still there.
    let stat = debugfs_stat(&img, SEED_P5, "/lib/modules/2.6.32-5-xen-686/modules.dep");
    assert!(stat.contains("Type: regular"), "{stat}");

    // Again without --replace: refused, image unchanged, the way out named.
    let before = sha256_file(&img);
    let out = bin()
        .args([
            "modules",
            s(&img),
            "--part",
            "5",
            "--from",
            s(&a),
            "--apply",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--replace"));
    assert_eq!(sha256_file(&img), before);

    // --replace with a second tree under the same version: exactly the new tree.
    let b = subset(tree, &tmp.path().join("b"), &ver, SET_B);
    bin()
        .args([
            "modules",
            s(&img),
            "--part",
            "5",
            "--from",
            s(&b),
            "--replace",
            "--apply",
        ])
        .assert()
        .success();
    assert_fsck_clean(&img, SEED_P5);
    let copy = rdump(
        &img,
        SEED_P5,
        &format!("/lib/modules/{ver}"),
        &tmp.path().join("out2"),
    );
    assert_same_tree(&b, &copy);
}

#[test]
fn modules_into_the_gpt_root_ext4_usrmerge() {
    let Some(tree) = debian_tree() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ver = tree.file_name().unwrap().to_str().unwrap().to_string();
    let a = subset(tree, &tmp.path().join("a"), &ver, SET_A);
    let img = fixtures::copy("gpt.img", tmp.path());
    // One system on this disk: --part may be left out. --version renames.
    let plan = json(&[
        "modules",
        s(&img),
        "--from",
        s(&a),
        "--version",
        "9.9-test",
        "--json",
    ]);
    assert_eq!(plan["partition"], 2);
    assert_eq!(plan["resolved_destination"], "/usr/lib/modules/9.9-test");
    let undo = tmp.path().join("undo");
    let before = sha256_file(&img);
    bin()
        .args([
            "modules",
            s(&img),
            "--from",
            s(&a),
            "--version",
            "9.9-test",
            "--apply",
            "--undo",
        ])
        .arg(&undo)
        .assert()
        .success();
    assert_fsck_clean(&img, GPT_P2);
    let lib = debugfs_stat(&img, GPT_P2, "/lib");
    assert!(
        lib.contains("Type: symlink"),
        "/lib is no longer a symlink:\n{lib}"
    );
    let copy = rdump(
        &img,
        GPT_P2,
        "/usr/lib/modules/9.9-test",
        &tmp.path().join("out"),
    );
    assert_same_tree(&a, &copy);
    assert_link_times(&img, GPT_P2, "/usr/lib/modules/9.9-test", &a);
    // The undo file gives the image back bit for bit.
    bin().args(["undo"]).arg(&undo).arg(&img).assert().success();
    assert_eq!(sha256_file(&img), before);
}

#[test]
fn modules_refusals_leave_the_image_unchanged() {
    let Some(tree) = debian_tree() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    let before = sha256_file(&img);
    // The whole tree (about 400 MB) into a 40 MiB guest.
    for extra in [&[][..], &["--apply"][..]] {
        let out = bin()
            .args(["modules", s(&img), "--part", "5", "--from", s(tree)])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("does not fit"), "{err}");
        assert_eq!(sha256_file(&img), before);
    }
    // Not a module tree.
    let not = tmp.path().join("etc");
    std::fs::create_dir_all(&not).unwrap();
    std::fs::write(not.join("passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    let out = bin()
        .args([
            "modules",
            s(&img),
            "--part",
            "5",
            "--from",
            s(&not),
            "--apply",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("modules.dep"));
    assert_eq!(sha256_file(&img), before);
    // No terminal: no progress bar on stderr.
    let ver = tree.file_name().unwrap().to_str().unwrap().to_string();
    let a = subset(tree, &tmp.path().join("a"), &ver, &["kernel/drivers/xen"]);
    let out = bin()
        .args([
            "modules",
            s(&img),
            "--part",
            "5",
            "--from",
            s(&a),
            "--apply",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_fsck_clean(&img, SEED_P5);
}

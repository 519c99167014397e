//! Issue 7 (hardening): directory hard-link loops, timestamps outside 1970–2038,
//! sparse copy-in, filesystems that e2fsck reads and we must read too. Cases are
//! built with mke2fs and `debugfs -w`, judged by e2fsck, debugfs and sha256.

use std::fs;
use std::path::Path;

use crate::harness::*;

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// The mke2fs configurations the loop and time cases run on.
const CONFIGS: &[&[&str]] = &[
    &["-t", "ext4"],
    &["-t", "ext4", "-b", "1024", "-I", "128"],
    &["-t", "ext3", "-O", "^dir_index"],
    &["-t", "ext2"],
];

fn loop_tree(root: &Path) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("a/x")).unwrap();
    fs::write(root.join("a/b/c/one"), b"one\n").unwrap();
    fs::write(root.join("a/x/two"), b"two\n").unwrap();
    fs::write(root.join("top"), b"top\n").unwrap();
}

/// `(path, sha256 or "dir")` of every entry under `root`.
fn tree_digest(root: &Path) -> Vec<(String, String)> {
    walk(root)
        .into_iter()
        .map(|r| {
            let p = root.join(&r);
            let what = if p.is_dir() {
                "dir".to_string()
            } else {
                sha256_file(&p)
            };
            (r.display().to_string(), what)
        })
        .collect()
}

/// A directory linked into its own subdirectory (a loop) and a directory with a
/// second name: copy-out copies each directory once with a warning (both
/// readers), `rm -r` removes the tree and leaves e2fsck clean.
#[test]
fn directory_hard_links_are_walked_once() {
    for (i, mkfs) in CONFIGS.iter().enumerate() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        loop_tree(&tree);
        let spec = ImageSpec {
            mkfs,
            fs_size: "16M",
            image_mib: 20,
            partitioned: true,
        };
        let (twin, off) = make_image(t.path(), "twin.img", Some(&tree), &spec);
        let img = copy_image(&twin, t.path(), "loop.img");
        debugfs_w(&img, off, "ln /a /a/b/c/up\nln /a/x /a/b/x2\n");
        // The case is what it claims: e2fsck sees both links.
        let (code, out) = e2fsck_n(&img, off);
        assert_ne!(code, 0, "config {i}: the links were not made:\n{out}");
        assert!(out.contains("is a link to directory"), "{out}");

        // The expected copy: the same tree without the extra links.
        let want_dir = t.path().join("want");
        fs::create_dir(&want_dir).unwrap();
        bin()
            .args(["copy-out", "--part", "1"])
            .arg(&twin)
            .arg("/a")
            .arg(&want_dir)
            .assert()
            .success();
        let want = tree_digest(&want_dir);

        let got_dir = t.path().join("got");
        fs::create_dir(&got_dir).unwrap();
        let a = bin()
            .args(["copy-out", "--part", "1"])
            .arg(&img)
            .arg("/a")
            .arg(&got_dir)
            .timeout(std::time::Duration::from_secs(60))
            .assert()
            .success();
        let err = stderr_of(&a);
        assert_eq!(
            err.matches("directory hard link").count(),
            2,
            "config {i}: {err}"
        );
        assert_eq!(tree_digest(&got_dir), want, "config {i}");

        // The engine reader walks the same way.
        use domuify::disk::{Access, Disk, Window};
        let disk = Disk::open(&img, Access::ReadOnly).unwrap();
        let len = fs::metadata(&img).unwrap().len() - off;
        let r = domuify::copy::EngineReader::open(Window::new(disk, off, len).unwrap()).unwrap();
        let eng_dir = t.path().join("eng");
        fs::create_dir(&eng_dir).unwrap();
        let rep = domuify::copy::copy_out(&r, &[b"/a".to_vec()], &eng_dir).unwrap();
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        assert_eq!(rep.warnings.len(), 2, "{:?}", rep.warnings);
        assert_eq!(tree_digest(&eng_dir), want, "config {i}");

        // rm -r of the whole looped tree, and of the subtree holding the loop.
        for victim in ["/a", "/a/b"] {
            let rm = copy_image(&img, t.path(), "rm.img");
            let a = bin()
                .args(["rm", "-r", "--part", "1"])
                .arg(&rm)
                .arg(victim)
                .timeout(std::time::Duration::from_secs(60))
                .assert()
                .success();
            assert!(stderr_of(&a).contains("second name"), "{}", stderr_of(&a));
            assert_fsck_clean(&rm, off);
            let parent = if victim == "/a" { "/" } else { "/a" };
            let names: Vec<String> = debugfs_ls(&rm, off, parent)
                .into_iter()
                .map(|e| String::from_utf8_lossy(&e.name).into_owned())
                .collect();
            let gone = victim.rsplit('/').next().unwrap();
            assert!(!names.iter().any(|n| n == gone), "{victim}: {names:?}");
        }
    }
}

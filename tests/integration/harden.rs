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

/// `date` of `sec` in debugfs' `stat` style (`Sun Jan  1 12:00:00 2100`, local
/// time as debugfs prints it) or in ls -l's (`2100-01-01 12:00:00`, UTC).
fn date_u(sec: i64, fmt: &str) -> String {
    let mut c = std::process::Command::new("date");
    if !fmt.starts_with("%a") {
        c.arg("-u");
    }
    let out = run(c.arg("-d").arg(format!("@{sec}")).arg(format!("+{fmt}")));
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Times before 1970 and after 2038 (touch -d on the host): copy-in writes them
/// as the kernel does (debugfs shows the same date; 128-byte inodes clamp to
/// the signed 32-bit range instead of wrapping); ls -l, cat and copy-out read
/// them back, on large inodes and small.
#[test]
fn times_outside_1970_to_2038_are_written_and_read_as_the_kernel_does() {
    // Seconds (with nanoseconds) the host file gets.
    let times: &[(&str, i64, u32)] = &[
        ("pre1970", -300_000_000, 250_000_000),
        ("min", -2_147_483_648, 0),
        ("y2038", 2_147_483_648, 0),
        ("y2100", 4_102_488_000, 500_000_000),
        ("y2400", 13_569_465_600, 0),
    ];
    for mkfs in [
        &["-t", "ext4"][..],
        &["-t", "ext4", "-I", "128"],
        &["-t", "ext2", "-I", "128"],
    ] {
        let small = mkfs.contains(&"128");
        let t = tempfile::tempdir().unwrap();
        let host = t.path().join("times");
        fs::create_dir(&host).unwrap();
        for (name, sec, nsec) in times {
            let p = host.join(name);
            fs::write(&p, name.as_bytes()).unwrap();
            let out = run(std::process::Command::new("touch")
                .arg("-m")
                .arg("-d")
                .arg(format!("@{sec}.{nsec:09}"))
                .arg(&p));
            assert!(out.status.success());
        }
        let spec = ImageSpec {
            mkfs,
            fs_size: "16M",
            image_mib: 20,
            partitioned: true,
        };
        let (img, off) = make_image(t.path(), "t.img", None, &spec);
        bin()
            .args(["copy-in", "--part", "1"])
            .arg(&img)
            .arg(&host)
            .arg("/")
            .assert()
            .success();
        assert_fsck_clean(&img, off);
        let ls = bin()
            .args(["ls", "-l", "--part", "1"])
            .arg(&img)
            .arg("/times")
            .assert()
            .success();
        let ls = String::from_utf8_lossy(&ls.get_output().stdout).into_owned();
        let out_dir = t.path().join("out");
        fs::create_dir(&out_dir).unwrap();
        bin()
            .args(["copy-out", "--part", "1"])
            .arg(&img)
            .arg("/times")
            .arg(&out_dir)
            .assert()
            .success();
        for (name, _, _) in times {
            use std::os::unix::fs::MetadataExt;
            let sec = fs::metadata(host.join(name)).unwrap().mtime();
            // What the kernel would store: clamped, never wrapped.
            let max = if small {
                i64::from(i32::MAX)
            } else {
                (1 << 34) - 1 + i64::from(i32::MIN)
            };
            let want = sec.clamp(i64::from(i32::MIN), max);
            let stat = debugfs_stat(&img, off, &format!("/times/{name}"));
            let line = stat
                .lines()
                .find(|l| l.trim_start().starts_with("mtime:"))
                .unwrap();
            let shown = line.split(" -- ").nth(1).unwrap().trim();
            assert_eq!(
                shown,
                date_u(want, "%a %b %e %H:%M:%S %Y"),
                "{mkfs:?} {name}: {line}"
            );
            let ls_line = ls
                .lines()
                .find(|l| l.ends_with(&format!(" {name}")))
                .unwrap();
            assert!(
                ls_line.contains(&date_u(want, "%F %T")),
                "{mkfs:?} {name}: {ls_line}"
            );
            let cat = bin()
                .args(["cat", "--part", "1"])
                .arg(&img)
                .arg(format!("/times/{name}"))
                .assert()
                .success();
            assert_eq!(cat.get_output().stdout, name.as_bytes());
            let m = fs::metadata(out_dir.join("times").join(name)).unwrap();
            assert_eq!(m.mtime(), want, "{mkfs:?} {name}: copy-out mtime");
        }
    }
}

/// A 300 MiB sparse file holding 3 bytes (and one with data at both ends and a
/// zero-filled, non-sparse middle) fits a 16 MiB filesystem: copy-in keeps the
/// holes (SEEK_DATA/SEEK_HOLE), on extents and on block maps; debugfs reads the
/// same bytes and counts only the data (and mapping) blocks.
#[test]
fn copy_in_keeps_holes() {
    for mkfs in [
        &["-t", "ext4"][..],
        &["-t", "ext3"],
        &["-t", "ext4", "-b", "1024"],
    ] {
        let t = tempfile::tempdir().unwrap();
        let host = t.path().join("src");
        fs::create_dir(&host).unwrap();
        let big = host.join("big");
        let f = fs::File::create(&big).unwrap();
        f.set_len(300 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"abc", 150_000_000).unwrap();
        drop(f);
        let ends = host.join("ends");
        let mut data = vec![0u8; 3 << 20];
        data[..5].copy_from_slice(b"start");
        let n = data.len();
        data[n - 3..].copy_from_slice(b"end");
        fs::write(&ends, &data).unwrap();
        let spec = ImageSpec {
            mkfs,
            fs_size: "16M",
            image_mib: 20,
            partitioned: true,
        };
        let (img, off) = make_image(t.path(), "s.img", None, &spec);
        bin()
            .args(["copy-in", "--part", "1"])
            .arg(&img)
            .arg(&big)
            .arg(&ends)
            .arg("/")
            .assert()
            .success();
        assert_fsck_clean(&img, off);
        let bs = block_size(&img, off);
        for (name, host_file, data_blocks) in [("big", &big, 1u64), ("ends", &ends, 2)] {
            let got = t.path().join(format!("{name}.out"));
            fs::write(&got, debugfs_cat(&img, off, &format!("/{name}"))).unwrap();
            assert_eq!(sha256_file(&got), sha256_file(host_file), "{mkfs:?} {name}");
            let stat = debugfs_stat(&img, off, &format!("/{name}"));
            let sectors: u64 = stat_field(&stat, "Blockcount:").parse().unwrap();
            let blocks = sectors * 512 / bs;
            // The data blocks, plus at most three mapping blocks each.
            assert!(
                blocks >= data_blocks && blocks <= 4 * data_blocks,
                "{mkfs:?} {name}: {blocks} blocks\n{stat}"
            );
        }
    }
}

/// A small tree under `root/t`: files, a subdirectory, a symlink.
fn small_tree(root: &Path) {
    fs::create_dir_all(root.join("t/etc/deep")).unwrap();
    fs::write(root.join("t/etc/hostname"), b"guest\n").unwrap();
    fs::write(root.join("t/etc/deep/data"), vec![7u8; 70_000]).unwrap();
    std::os::unix::fs::symlink("etc/hostname", root.join("t/link")).unwrap();
}

/// copy-out of `/t` through the CLI (and through the engine reader, by the
/// library) equals the host tree it was made from.
fn assert_reads_back(img: &Path, off: u64, host: &Path, what: &str) {
    let t = tempfile::tempdir().unwrap();
    let part: &[&str] = if off == 0 { &[] } else { &["--part", "1"] };
    bin()
        .arg("copy-out")
        .args(part)
        .arg(img)
        .arg("/t")
        .arg(t.path())
        .assert()
        .success();
    let want = tree_digest(&host.join("t"));
    assert_eq!(tree_digest(&t.path().join("t")), want, "{what}: copy-out");
    let ls = bin()
        .arg("ls")
        .args(part)
        .arg(img)
        .arg("/t/etc")
        .assert()
        .success();
    assert_eq!(
        String::from_utf8_lossy(&ls.get_output().stdout),
        "deep\nhostname\n",
        "{what}: ls"
    );
    use domuify::disk::{Access, Disk, Window};
    let disk = Disk::open(img, Access::ReadOnly).unwrap();
    let len = fs::metadata(img).unwrap().len() - off;
    let r = domuify::copy::EngineReader::open(Window::new(disk, off, len).unwrap())
        .unwrap_or_else(|e| panic!("{what}: engine reader: {e}"));
    let eng = t.path().join("eng");
    fs::create_dir(&eng).unwrap();
    let rep = domuify::copy::copy_out(&r, &[b"/t".to_vec()], &eng).unwrap();
    assert!(rep.errors.is_empty(), "{what}: {:?}", rep.errors);
    assert_eq!(tree_digest(&eng.join("t")), want, "{what}: engine");
}

/// What e2fsck reads we read: meta_bg (1 and 4 KiB blocks, ext2 and ext4),
/// bigalloc with 1 KiB blocks (descriptors in block 2), a GNU Hurd filesystem
/// (no file type in entries). Writing meta_bg is refused naming the feature,
/// with the image unchanged.
#[test]
fn unusual_layouts_e2fsck_reads_are_read() {
    let t = tempfile::tempdir().unwrap();
    small_tree(t.path());
    let cases: &[&[&str]] = &[
        &["-t", "ext4", "-O", "meta_bg,^resize_inode"],
        &["-t", "ext4", "-b", "1024", "-O", "meta_bg,^resize_inode"],
        &["-t", "ext2", "-b", "1024", "-O", "meta_bg,^resize_inode"],
        &["-t", "ext4", "-b", "1024", "-O", "bigalloc", "-C", "4096"],
        &["-t", "ext4", "-b", "4096", "-O", "bigalloc", "-C", "65536"],
        &["-o", "hurd", "-b", "1024"],
    ];
    for mkfs in cases {
        let what = format!("{mkfs:?}");
        let spec = ImageSpec {
            mkfs,
            fs_size: "300M",
            image_mib: 302,
            partitioned: true,
        };
        let dir = tempfile::tempdir().unwrap();
        let (img, off) = make_image(dir.path(), "u.img", Some(t.path()), &spec);
        assert_fsck_clean(&img, off);
        assert_reads_back(&img, off, t.path(), &what);
        if mkfs.iter().any(|o| o.contains("meta_bg")) {
            let before = sha256_file(&img);
            let a = bin()
                .args(["write", "--part", "1"])
                .arg(&img)
                .arg("/t/new")
                .write_stdin("x")
                .assert()
                .code(1);
            let err = stderr_of(&a);
            assert!(
                err.contains("meta_bg") && err.contains("writ"),
                "{what}: {err}"
            );
            assert_eq!(sha256_file(&img), before, "{what}");
        }
    }
}

/// A directory indexed with the legacy hash (`s_def_hash_version` 0, then
/// `e2fsck -fD`): reading it never needs the hash.
#[test]
fn legacy_hash_directories_are_read() {
    let t = tempfile::tempdir().unwrap();
    small_tree(t.path());
    let names: Vec<String> = (0..200)
        .map(|i| format!("a-rather-long-file-name-{i:03}"))
        .collect();
    for n in &names {
        fs::write(t.path().join("t/etc").join(n), n.as_bytes()).unwrap();
    }
    for mkfs in [
        &["-t", "ext4", "-b", "1024"][..],
        &["-t", "ext3", "-b", "1024"],
    ] {
        let is = ImageSpec {
            mkfs,
            fs_size: "16M",
            image_mib: 20,
            partitioned: true,
        };
        let dir = tempfile::tempdir().unwrap();
        let (img, off) = make_image(dir.path(), "h.img", Some(t.path()), &is);
        debugfs_w(&img, off, "ssv def_hash_version legacy\n");
        let out = run(std::process::Command::new("e2fsck")
            .arg("-fyD")
            .arg(spec(&img, off)));
        assert!(out.status.code().unwrap_or(8) <= 2);
        assert_fsck_clean(&img, off);
        let dump = String::from_utf8_lossy(&debugfs(&img, off, "htree_dump /t/etc")).into_owned();
        assert!(
            dump.contains("Hash Version: 0"),
            "{mkfs:?}: not a legacy index\n{dump}"
        );
        let o = tempfile::tempdir().unwrap();
        let a = bin()
            .args(["copy-out", "--part", "1"])
            .arg(&img)
            .arg("/t")
            .arg(o.path())
            .assert()
            .success();
        assert!(stderr_of(&a).is_empty(), "{}", stderr_of(&a));
        assert_eq!(
            tree_digest(&o.path().join("t")),
            tree_digest(&t.path().join("t"))
        );
        let cat = bin()
            .args(["cat", "--part", "1"])
            .arg(&img)
            .arg("/t/etc/a-rather-long-file-name-123")
            .assert()
            .success();
        assert_eq!(
            cat.get_output().stdout,
            debugfs_cat(&img, off, "/t/etc/a-rather-long-file-name-123")
        );
    }
}

/// An ext filesystem at offset 0 whose bytes 510–511 happen to be 0x55AA (an
/// empty MBR table): blkid -p calls it ext4, so do we; it opens without --part.
#[test]
fn bare_ext_with_a_boot_signature_is_a_filesystem() {
    let t = tempfile::tempdir().unwrap();
    small_tree(t.path());
    for mkfs in [&["-t", "ext4"][..], &["-t", "ext2", "-b", "4096"]] {
        let spec = ImageSpec {
            mkfs,
            fs_size: "8M",
            image_mib: 8,
            partitioned: false,
        };
        let dir = tempfile::tempdir().unwrap();
        let (img, off) = make_image(dir.path(), "b.img", Some(t.path()), &spec);
        {
            use std::os::unix::fs::FileExt;
            let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
            f.write_all_at(&[0x55, 0xAA], 510).unwrap();
        }
        let blkid = run(std::process::Command::new("blkid")
            .arg("-p")
            .arg("-o")
            .arg("export")
            .arg(&img));
        let blkid = String::from_utf8_lossy(&blkid.stdout).into_owned();
        let fstype = blkid
            .lines()
            .find_map(|l| l.strip_prefix("TYPE="))
            .unwrap_or("")
            .to_string();
        assert!(fstype.starts_with("ext"), "{blkid}");
        let j = bin()
            .args(["inspect", "--json"])
            .arg(&img)
            .assert()
            .success();
        let v: serde_json::Value = serde_json::from_slice(&j.get_output().stdout).unwrap();
        let s = v.to_string();
        assert!(s.contains(&format!("\"{fstype}\"")), "{s}");
        assert_reads_back(&img, off, t.path(), &format!("{mkfs:?}"));
    }
}

/// A tree to remove whose deepest file has a damaged indirect block: `top/a/b/c/big`
/// (ext4 with metadata_csum, whose indirect blocks carry no checksum, and so no
/// block-ownership scan at open; without extents, 1 KiB blocks: 200 KB need an
/// indirect block), next to a subdirectory
/// `top/a/b/c/sub` that a removal finishes (and may flush) before it reaches
/// `big`, and `top/x`. The indirect block's third pointer is made to claim the
/// group descriptor block. Returns the image, the filesystem's offset and the
/// damaged file's inode number.
fn tree_with_damaged_indirect_block(dir: &Path) -> (std::path::PathBuf, u64, u64) {
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("top/a/b/c/sub")).unwrap();
    fs::create_dir_all(tree.join("top/x")).unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 249) as u8).collect();
    fs::write(tree.join("top/a/b/c/big"), &big).unwrap();
    fs::write(tree.join("top/a/b/c/sub/f"), b"f\n").unwrap();
    for i in 0..20 {
        fs::write(tree.join(format!("top/x/f{i}")), format!("{i}\n")).unwrap();
    }
    let spec = ImageSpec {
        mkfs: &["-t", "ext4", "-O", "^extents,^64bit", "-b", "1024"],
        fs_size: "16M",
        image_mib: 20,
        partitioned: true,
    };
    let (img, off) = make_image(dir, "rm.img", Some(&tree), &spec);
    let stat = debugfs_stat(&img, off, "/top/a/b/c/big");
    let ino: u64 = stat
        .split("Inode: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no inode number in:\n{stat}"));
    let ind: u64 = stat
        .split("(IND):")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no indirect block in:\n{stat}"));
    // Block 2 of a 1 KiB filesystem: its group descriptors.
    let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &2u32.to_le_bytes(), off + ind * 1024 + 8)
        .unwrap();
    (img, off, ino)
}

/// Issue 7, class 3: `rm -r` over a tree with a damaged block map deep inside is
/// refused up front, naming the inode and the damage, with the image's bytes
/// unchanged.
#[test]
fn rm_r_of_a_tree_with_a_damaged_block_map_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (img, _, ino) = tree_with_damaged_indirect_block(t.path());
    let sha = sha256_file(&img);
    let a = bin()
        .args(["rm", "--part", "1", "-r"])
        .arg(&img)
        .arg("/top")
        .assert()
        .code(1);
    let err = stderr_of(&a);
    assert!(
        err.contains(&format!("inode {ino}: its block map claims block 2")),
        "{err}"
    );
    assert_eq!(sha256_file(&img), sha, "{err}");
}

/// Issue 7, class 3, at the engine: with a flush after every step (as a huge tree
/// would bring), the removal used to free `top/a/b/c/sub` and write it out
/// before it met the damaged map of `big`. The check pass refuses before any
/// write reaches the device.
#[test]
fn remove_tree_checks_the_whole_tree_before_its_first_write() {
    use domuify::disk::{Access, Disk, ReadAt, Window, WriteAt};
    use domuify::ext::Ext;
    use domuify::testing::FaultDev;
    use std::sync::Arc;

    let t = tempfile::tempdir().unwrap();
    let (img, off, ino) = tree_with_damaged_indirect_block(t.path());
    let sha = sha256_file(&img);
    let disk = Disk::open(&img, Access::ReadWrite).unwrap();
    let counting = Arc::new(FaultDev::counting(disk));
    let len = counting.size() - off;
    let win = Window::new(counting.clone() as Arc<dyn WriteAt + Send + Sync>, off, len).unwrap();
    let mut ext = Ext::open_read_write(win).unwrap();
    ext.set_auto_flush_bytes(0);
    let root = ext.resolve(b"/", true).unwrap();
    let e = ext.remove_tree(root, b"top").unwrap_err();
    assert_eq!(e.kind(), domuify::ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains(&format!("inode {ino}")), "{e}");
    drop(ext);
    assert_eq!(counting.writes(), 0, "{e}");
    assert_eq!(sha256_file(&img), sha);
}

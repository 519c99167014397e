//! The ext engine on real images: `mke2fs -d` builds a filesystem at a 1 MiB
//! offset inside an image, [`Ext`] applies operations, and the result is judged
//! by `e2fsck -fn`, `debugfs` (stat, cat, ls, ea_get) and ext4-view.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use domuify::disk::Access;
use domuify::ext::{Ext, Ino, NewNode, Timestamp, ROOT_INO};
use domuify::ErrorKind;

pub const OFFSET: u64 = 1 << 20;

pub use crate::harness::run_text as run;

pub use crate::harness::Img;

pub fn node(perm: u16, t: i64) -> NewNode {
    let ts = Timestamp {
        sec: t,
        nsec: 123_456_789,
    };
    NewNode {
        perm,
        uid: 1000,
        gid: 100,
        atime: ts,
        mtime: ts,
        ctime: ts,
    }
}

/// A `debugfs stat` field such as `Size: 123`.
pub fn stat_field(stat: &str, key: &str) -> Option<String> {
    let at = stat.find(key)?;
    stat[at + key.len()..]
        .split_whitespace()
        .next()
        .map(|s| s.to_string())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2654435761)
                .rotate_left(seed as u32 % 31) as u8
                ^ seed
        })
        .collect()
}

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("usr/lib/firmware")).unwrap();
    fs::create_dir_all(root.join("home/user/deep/er")).unwrap();
    fs::write(root.join("etc/fstab"), b"/dev/sda1 / ext4 defaults 0 1\n").unwrap();
    fs::write(root.join("etc/hostname"), b"guest\n").unwrap();
    fs::write(root.join("usr/lib/firmware/blob"), pattern(70_000, 3)).unwrap();
    fs::write(root.join("home/user/deep/er/f"), pattern(5000, 4)).unwrap();
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
}

/// Read a whole file through the engine.
fn read_all<D: domuify::disk::ReadAt>(fs: &Ext<D>, ino: Ino) -> Vec<u8> {
    let size = fs.stat(ino).unwrap().size as usize;
    let mut buf = vec![0u8; size];
    let mut done = 0;
    while done < size {
        let n = fs.read_file(ino, done as u64, &mut buf[done..]).unwrap();
        assert!(n > 0);
        done += n;
    }
    buf
}

/// The whole scenario on one mke2fs configuration.
fn scenario(args: &[&str], ext4_view_ok: bool) {
    let tree = tempfile::tempdir().unwrap();
    make_tree(tree.path());
    let img = Img::new(args, Some(tree.path()), 64);
    img.assert_clean("fresh image");
    img.debugfs_w("ea_set /etc/fstab security.selinux system_u:object_r:etc_t:s0");
    let before_xattrs = img.debugfs("ea_list /etc/fstab");
    assert!(
        before_xattrs.contains("security.selinux"),
        "{before_xattrs}"
    );

    let mut fs = img.open_rw();
    let fstab = fs.resolve(b"/etc/fstab", true).unwrap();
    let old_ino = fstab;
    // Replace: larger, then in a second file shorter and same size.
    let new_fstab = pattern(20_000, 9);
    fs.replace_contents(
        fstab,
        &mut &new_fstab[..],
        new_fstab.len() as u64,
        Timestamp {
            sec: 1_800_000_000,
            nsec: 5,
        },
    )
    .unwrap();
    let host = fs.resolve(b"/etc/hostname", true).unwrap();
    fs.replace_contents(host, &mut &b"domu\n"[..], 5, Timestamp::now())
        .unwrap();
    let blob = fs.resolve(b"/lib/firmware/blob", true).unwrap();
    let short = pattern(100, 1);
    fs.replace_contents(blob, &mut &short[..], 100, Timestamp::now())
        .unwrap();
    // Create files (empty, small, big) through the usrmerge symlink.
    let etc = fs.resolve(b"/etc", true).unwrap();
    fs.create_file(etc, b"empty", &node(0o600, 1_700_000_100), &mut &b""[..], 0)
        .unwrap();
    let big = pattern(3 << 20, 7);
    let libdir = fs.resolve(b"/lib", true).unwrap();
    let bigino = fs
        .create_file(
            libdir,
            b"big.bin",
            &node(0o644, 1_700_000_200),
            &mut &big[..],
            big.len() as u64,
        )
        .unwrap();
    // mkdir through the symlink, nested.
    let modules = fs
        .mkdir(libdir, b"modules", &node(0o755, 1_700_000_300))
        .unwrap();
    let kver = fs
        .mkdir(modules, b"6.1.0-amd64", &node(0o755, 1_700_000_300))
        .unwrap();
    for i in 0..60 {
        let data = pattern(i * 997, i as u8);
        let name = format!("module-{i:03}-with-a-longish-name.ko");
        fs.create_file(
            kver,
            name.as_bytes(),
            &node(0o644, 1_700_000_400),
            &mut &data[..],
            data.len() as u64,
        )
        .unwrap();
    }
    // Symlinks: fast and slow.
    fs.symlink(
        etc,
        b"fast",
        b"../usr/lib/firmware/blob",
        &node(0o777, 1_700_000_500),
    )
    .unwrap();
    let long_target = format!("/{}", "x".repeat(150));
    fs.symlink(
        etc,
        b"slow",
        long_target.as_bytes(),
        &node(0o777, 1_700_000_500),
    )
    .unwrap();
    // Hard link.
    fs.link(etc, b"fstab.hard", fstab).unwrap();
    // Remove: a file, an empty directory, a tree.
    let home = fs.resolve(b"/home", true).unwrap();
    let user = fs.resolve(b"/home/user", true).unwrap();
    fs.mkdir(user, b"emptydir", &node(0o700, 1_700_000_600))
        .unwrap();
    fs.rmdir(user, b"emptydir").unwrap();
    fs.unlink(etc, b"hostname").unwrap();
    fs.remove_tree(home, b"user").unwrap();
    fs.flush().unwrap();
    drop(fs);
    img.assert_clean("after the operations");

    // Judge with debugfs.
    let stat = img.debugfs("stat /etc/fstab");
    assert_eq!(
        stat_field(&stat, "Size:").as_deref(),
        Some("20000"),
        "{stat}"
    );
    assert_eq!(stat_field(&stat, "Links:").as_deref(), Some("2"), "{stat}");
    assert!(stat.contains(&format!("Inode: {old_ino} ")), "{stat}");
    let xa = img.debugfs("ea_list /etc/fstab");
    assert!(
        xa.contains("system_u:object_r:etc_t:s0"),
        "xattr lost: {xa}"
    );
    let dump = tempfile::tempdir().unwrap();
    let out = dump.path().join("out");
    img.debugfs(&format!("dump /usr/lib/big.bin {}", out.display()));
    assert!(fs::read(&out).unwrap() == big, "big.bin differs");
    img.debugfs(&format!("dump /etc/fstab {}", out.display()));
    assert!(fs::read(&out).unwrap() == new_fstab, "fstab differs");
    img.debugfs(&format!("dump /usr/lib/firmware/blob {}", out.display()));
    assert!(fs::read(&out).unwrap() == short, "blob differs");
    let ls = img.debugfs("ls -l /usr/lib/modules/6.1.0-amd64");
    assert_eq!(ls.matches(".ko").count(), 60, "{ls}");
    let ls_etc = img.debugfs("ls /etc");
    assert!(!ls_etc.contains("hostname"), "{ls_etc}");
    assert!(img.debugfs("ls /home").contains(".."));
    assert!(!img.debugfs("ls /home").contains("user"));
    let st = img.debugfs("stat /etc/fast");
    assert!(
        st.contains("Fast link dest: \"../usr/lib/firmware/blob\""),
        "{st}"
    );
    assert_eq!(img.debugfs("cat /etc/slow"), long_target);
    let st = img.debugfs("stat /usr/lib/modules");
    assert_eq!(stat_field(&st, "Links:").as_deref(), Some("3"), "{st}");
    assert!(st.contains("Mode:  0755"), "{st}");

    // Read back with our reader.
    let fs = Ext::open_read_only(img.window(Access::ReadOnly)).unwrap();
    assert_eq!(read_all(&fs, bigino), big);
    let st = fs.stat(fs.resolve(b"/etc/empty", true).unwrap()).unwrap();
    assert_eq!((st.mode, st.uid, st.gid, st.size), (0o100600, 1000, 100, 0));
    assert_eq!(
        fs.read_link(fs.resolve(b"/etc/slow", false).unwrap())
            .unwrap(),
        long_target.as_bytes()
    );
    let xattrs: BTreeMap<String, Vec<u8>> = fs.xattrs(fstab).unwrap().into_iter().collect();
    assert!(xattrs.contains_key("security.selinux"), "{xattrs:?}");

    // And with ext4-view.
    if ext4_view_ok {
        let v = ext4_view::Ext4::load(Box::new(img.window(Access::ReadOnly))).unwrap();
        assert_eq!(v.read("/usr/lib/big.bin").unwrap(), big);
        assert_eq!(v.read("/etc/fstab.hard").unwrap(), new_fstab);
        let m = v
            .metadata("/usr/lib/modules/6.1.0-amd64/module-005-with-a-longish-name.ko")
            .unwrap();
        assert_eq!(m.len(), 5 * 997);
        assert_eq!(
            v.read_link("/etc/slow").unwrap().to_str().unwrap(),
            long_target
        );
    }
}

#[test]
fn engine_ext4_default() {
    scenario(&["-t", "ext4"], true);
}

#[test]
fn engine_ext4_1k_blocks() {
    scenario(&["-t", "ext4", "-b", "1024"], true);
}

#[test]
fn engine_ext4_128_byte_inodes() {
    // ext4-view 1.0.0 cannot read metadata_csum with 128-byte inodes
    // ("inode 2 is truncated"): our reader and debugfs judge instead.
    scenario(&["-t", "ext4", "-I", "128"], false);
}

#[test]
fn engine_ext4_gdt_csum() {
    scenario(&["-t", "ext4", "-O", "^metadata_csum,uninit_bg"], true);
}

#[test]
fn engine_ext4_csum_seed() {
    scenario(
        &[
            "-t",
            "ext4",
            "-O",
            "metadata_csum_seed",
            "-U",
            "6b2c1e8a-3f0d-4a7e-9c51-2d8e4f6a0b13",
        ],
        true,
    );
}

#[test]
fn engine_ext4_no_flex_bg() {
    scenario(&["-t", "ext4", "-O", "^flex_bg"], true);
}

#[test]
fn engine_ext4_no_64bit() {
    scenario(&["-t", "ext4", "-O", "^64bit"], true);
}

#[test]
fn engine_ext4_no_journal() {
    scenario(&["-t", "ext4", "-O", "^has_journal"], true);
}

#[test]
fn engine_ext3() {
    scenario(&["-t", "ext3"], true);
}

#[test]
fn engine_ext2() {
    scenario(&["-t", "ext2"], true);
}

#[test]
fn engine_ext2_1k_blocks() {
    scenario(&["-t", "ext2", "-b", "1024"], true);
}

fn sb_u32(img: &Img, off: u64) -> u32 {
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(&img.path).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, OFFSET + 1024 + off).unwrap();
    u32::from_le_bytes(b)
}

/// Open read-write must fail with `kind`, its message naming `name`, and the
/// image must be byte for byte unchanged.
fn assert_refused(img: &Img, kind: ErrorKind, name: &str) {
    let before = img.sha();
    let r = Ext::open_read_write(img.window(Access::ReadWrite));
    let e = match r {
        Ok(_) => panic!("{name}: open_read_write accepted the filesystem"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), kind, "{name}: {e}");
    assert!(
        e.message().contains(name),
        "{name}: message does not name it: {e}"
    );
    assert_eq!(img.sha(), before, "{name}: image changed");
}

#[test]
fn engine_refuses_features_before_writing() {
    let base = Img::new(&["-t", "ext4"], None, 16);
    for feat in [
        "inline_data",
        "bigalloc",
        "quota",
        "encrypt",
        "casefold",
        "verity",
        "meta_bg",
        "journal_dev",
        "mmp",
        "compression",
        "dirdata",
        "ea_inode",
        "large_dir",
        "shared_blocks",
        "read-only",
    ] {
        let img = Img::copy_of(&base);
        img.debugfs_w(&format!("feature {feat}"));
        assert_refused(&img, ErrorKind::Unsupported, feat);
    }
    // Unknown bits in each word.
    for (field, off, bit) in [
        ("feature_compat", 0x5C, 0x0010_0000u32),
        ("feature_incompat", 0x60, 0x0010_0000),
        ("feature_ro_compat", 0x64, 0x0010_0000),
    ] {
        let img = Img::copy_of(&base);
        let v = sb_u32(&img, off) | bit;
        img.debugfs_w(&format!("ssv {field} {v:#x}"));
        assert_refused(&img, ErrorKind::Unsupported, &format!("{bit:#x}"));
    }
    // The untouched base opens.
    assert!(Ext::open_read_write(base.window(Access::ReadWrite)).is_ok());
}

#[test]
fn engine_refuses_states_before_writing() {
    let img = Img::new(&["-t", "ext4"], None, 16);
    img.debugfs_w("feature needs_recovery");
    assert_refused(
        &img,
        ErrorKind::Refused,
        "journal needs recovery: run e2fsck or mount once",
    );
    // Reading still works.
    assert!(Ext::open_read_only(img.window(Access::ReadOnly)).is_ok());

    let img = Img::new(&["-t", "ext4"], None, 16);
    img.debugfs_w("ssv state 2");
    assert_refused(&img, ErrorKind::Refused, "errors");

    let img = Img::new(&["-t", "ext2"], None, 16);
    img.debugfs_w("ssv state 0");
    assert_refused(&img, ErrorKind::Refused, "not cleanly unmounted");

    let img = Img::new(&["-t", "ext4"], None, 16);
    img.debugfs_w("ssv last_orphan 12");
    assert_refused(&img, ErrorKind::Refused, "orphan");

    let img = Img::new(&["-t", "ext4", "-O", "orphan_file"], None, 16);
    assert!(Ext::open_read_write(img.window(Access::ReadWrite)).is_ok());
    img.debugfs_w("feature orphan_present");
    assert_refused(&img, ErrorKind::Refused, "orphan");
}

#[test]
fn engine_no_space_leaves_image_unchanged() {
    for args in [&["-t", "ext4"][..], &["-t", "ext2", "-b", "1024"][..]] {
        let img = Img::new(args, None, 8);
        let mut fs = img.open_rw();
        // Fill most of the space, then ask for more than is left.
        let free = fs.free_space();
        let bs = u64::from(fs.block_size());
        let fill = (free.blocks - 40) * bs * 9 / 10;
        let data = pattern(fill as usize, 1);
        fs.create_file(
            ROOT_INO,
            b"fill",
            &node(0o644, 1_700_000_000),
            &mut &data[..],
            fill,
        )
        .unwrap();
        fs.flush().unwrap();
        drop(fs);
        img.assert_clean("after filling");
        let before = img.sha();
        let mut fs = img.open_rw();
        let left = fs.free_space().blocks * bs;
        let too_big = pattern((left + bs) as usize, 2);
        let e = fs
            .create_file(
                ROOT_INO,
                b"toobig",
                &node(0o644, 1),
                &mut &too_big[..],
                too_big.len() as u64,
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
        let fill_ino = fs.resolve(b"/fill", true).unwrap();
        let e = fs
            .replace_contents(
                fill_ino,
                &mut &too_big[..],
                too_big.len() as u64,
                Timestamp::now(),
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
        fs.flush().unwrap();
        drop(fs);
        assert_eq!(
            img.sha(),
            before,
            "{args:?}: image changed by refused operations"
        );
        img.assert_clean("after NoSpace");
    }
    // Out of inodes.
    let img = Img::new(&["-t", "ext4", "-N", "32"], None, 8);
    let before_ops = img.sha();
    let mut fs = img.open_rw();
    let free = fs.free_space().inodes;
    for i in 0..free {
        fs.mkdir(ROOT_INO, format!("d{i}").as_bytes(), &node(0o755, 1))
            .unwrap();
    }
    fs.flush().unwrap();
    drop(fs);
    assert_ne!(img.sha(), before_ops);
    img.assert_clean("all inodes used");
    let before = img.sha();
    let mut fs = img.open_rw();
    let e = fs
        .mkdir(ROOT_INO, b"one-more", &node(0o755, 1))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    let e = fs
        .symlink(ROOT_INO, b"l", b"target", &node(0o777, 1))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    fs.flush().unwrap();
    drop(fs);
    assert_eq!(img.sha(), before);
}

fn cheap_pattern(len: usize, seed: u8) -> Vec<u8> {
    let unit = pattern(4099, seed);
    unit.iter().copied().cycle().take(len).collect()
}

fn dump(img: &Img, path: &str) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("f");
    img.debugfs(&format!("dump {path} {}", out.display()));
    fs::read(&out).unwrap_or_default()
}

#[test]
fn engine_fragmented_file_builds_deep_extent_tree() {
    let img = Img::new(&["-t", "ext4", "-b", "1024"], None, 32);
    let mut fs = img.open_rw();
    let d = fs.mkdir(ROOT_INO, b"small", &node(0o755, 1)).unwrap();
    for i in 0..800 {
        fs.create_file(
            d,
            format!("f{i}").as_bytes(),
            &node(0o644, 1),
            &mut &[i as u8; 1000][..],
            1000,
        )
        .unwrap();
    }
    fs.flush().unwrap();
    for i in (0..800).step_by(2) {
        fs.unlink(d, format!("f{i}").as_bytes()).unwrap();
    }
    fs.flush().unwrap();
    drop(fs);
    img.assert_clean("after holes");
    // A new session starts allocating from the front: the file fills the holes.
    let mut fs = img.open_rw();
    let data = cheap_pattern(600 * 1024 + 17, 5);
    let ino = fs
        .create_file(
            ROOT_INO,
            b"frag",
            &node(0o600, 2),
            &mut &data[..],
            data.len() as u64,
        )
        .unwrap();
    fs.flush().unwrap();
    drop(fs);
    img.assert_clean("fragmented file");
    let ex = img.debugfs("ex /frag");
    assert!(
        ex.lines().any(|l| l.trim_start().starts_with("2/ 2")),
        "depth < 2:\n{ex}"
    );
    assert!(dump(&img, "/frag") == data);
    let stat = img.debugfs("stat /frag");
    let blocks: u64 = stat_field(&stat, "Blockcount:").unwrap().parse().unwrap();
    assert!(
        blocks > 601 * 2,
        "i_blocks should count tree blocks: {blocks}"
    );
    let v = ext4_view::Ext4::load(Box::new(img.window(Access::ReadOnly))).unwrap();
    assert_eq!(v.read("/frag").unwrap(), data);
    // Replace with a short file: the tree blocks go back.
    let mut fs = img.open_rw();
    let free0 = fs.free_space().blocks;
    fs.replace_contents(ino, &mut &b"tiny"[..], 4, Timestamp::now())
        .unwrap();
    fs.flush().unwrap();
    assert!(fs.free_space().blocks > free0 + 600);
    drop(fs);
    img.assert_clean("after shrinking");
    assert_eq!(img.debugfs("cat /frag"), "tiny");
}

#[test]
fn engine_ext2_triple_indirect() {
    let img = Img::new(&["-t", "ext2", "-b", "1024"], None, 96);
    let mut fs = img.open_rw();
    // 12 + 256 + 65536 blocks are direct, single and double: go past them.
    let len = (12 + 256 + 65536 + 300) * 1024 + 5;
    let data = cheap_pattern(len, 11);
    fs.create_file(
        ROOT_INO,
        b"huge",
        &node(0o644, 1),
        &mut &data[..],
        len as u64,
    )
    .unwrap();
    fs.flush().unwrap();
    drop(fs);
    img.assert_clean("triple indirect");
    let stat = img.debugfs("stat /huge");
    assert!(
        stat.contains("(TIND)"),
        "no triple indirect block:\n{}",
        &stat[..stat.len().min(2000)]
    );
    assert!(dump(&img, "/huge") == data, "contents differ");
    // Remove it: every indirect block is freed (e2fsck would see leaks).
    let mut fs = img.open_rw();
    fs.unlink(ROOT_INO, b"huge").unwrap();
    fs.flush().unwrap();
    drop(fs);
    img.assert_clean("after removing");
}

#[test]
fn engine_xattr_block_survives_replace_and_is_freed_on_unlink() {
    for args in [
        &["-t", "ext4"][..],
        &["-t", "ext4", "-I", "128"][..],
        &["-t", "ext3"][..],
    ] {
        let img = Img::new(args, None, 16);
        let d = tempfile::tempdir().unwrap();
        let val = d.path().join("v");
        fs::write(&val, "v".repeat(600)).unwrap();
        let mut fs = img.open_rw();
        for n in [&b"a"[..], b"b"] {
            fs.create_file(ROOT_INO, n, &node(0o644, 1), &mut &b"hello"[..], 5)
                .unwrap();
        }
        fs.flush().unwrap();
        drop(fs);
        img.debugfs_w(&format!("ea_set -f {} /a user.big", val.display()));
        img.debugfs_w("ea_set /a security.selinux system_u:object_r:bin_t:s0");
        img.debugfs_w(&format!("ea_set -f {} /b user.big", val.display()));
        img.assert_clean("xattrs set");
        let mut fs = img.open_rw();
        let a = fs.resolve(b"/a", true).unwrap();
        let before = fs.xattrs(a).unwrap();
        assert_eq!(before.len(), 2, "{before:?}");
        let data = cheap_pattern(50_000, 3);
        fs.replace_contents(a, &mut &data[..], data.len() as u64, Timestamp::now())
            .unwrap();
        fs.unlink(ROOT_INO, b"b").unwrap();
        fs.flush().unwrap();
        assert_eq!(fs.xattrs(a).unwrap(), before);
        drop(fs);
        img.assert_clean(&format!("{args:?}: after replace and unlink"));
        let list = img.debugfs("ea_list /a");
        assert!(
            list.contains("system_u:object_r:bin_t:s0") && list.contains("user.big"),
            "{list}"
        );
        assert!(dump(&img, "/a") == data);
    }
}

#[test]
fn engine_htree_directory_stays_indexed() {
    let tree = tempfile::tempdir().unwrap();
    let etc = tree.path().join("etc");
    fs::create_dir(&etc).unwrap();
    for i in 0..3000 {
        fs::write(etc.join(format!("config-file-{i:05}")), b"x").unwrap();
    }
    for args in [
        &["-t", "ext4"][..],
        &["-t", "ext4", "-O", "^metadata_csum"][..],
        &["-t", "ext3", "-b", "1024"][..],
    ] {
        let img = Img::new(args, Some(tree.path()), 64);
        let (rc, out) = run(Command::new("e2fsck").arg("-fyD").arg(img.spec()));
        assert!(rc <= 1, "e2fsck -fyD: {out}");
        img.assert_clean("indexed");
        assert!(img.debugfs("htree_dump /etc").contains("Root node dump"));
        let mut fs = img.open_rw();
        let etc = fs.resolve(b"/etc", true).unwrap();
        for i in 0..500 {
            let name = format!("added-by-engine-{i:04}");
            fs.create_file(etc, name.as_bytes(), &node(0o644, 1), &mut &b"y"[..], 1)
                .unwrap();
        }
        for i in (0..3000).step_by(3) {
            fs.unlink(etc, format!("config-file-{i:05}").as_bytes())
                .unwrap();
        }
        fs.mkdir(etc, b"sub.d", &node(0o755, 1)).unwrap();
        fs.flush().unwrap();
        let names = fs.read_dir(etc).unwrap().len();
        assert_eq!(names, 3000 - 1000 + 500 + 1);
        drop(fs);
        img.assert_clean(&format!("{args:?}: after adds and removes in an htree"));
        let dump = img.debugfs("htree_dump /etc");
        assert!(dump.contains("Root node dump"), "no longer indexed");
        assert!(img.debugfs("ls /etc").contains("added-by-engine-0499"));
        let stat = img.debugfs("stat /etc");
        assert!(stat.contains("Links: 3"), "{stat}");
    }
}

#[test]
fn engine_failed_operations_change_nothing() {
    let tree = tempfile::tempdir().unwrap();
    make_tree(tree.path());
    for args in [&["-t", "ext4"][..], &["-t", "ext3"][..]] {
        let img = Img::new(args, Some(tree.path()), 32);
        let before = img.sha();
        let mut fs = img.open_rw();
        let etc = fs.resolve(b"/etc", true).unwrap();
        let fstab = fs.resolve(b"/etc/fstab", true).unwrap();
        let kind = |r: domuify::Result<Ino>| r.unwrap_err().kind();
        let n = node(0o644, 5);
        assert_eq!(
            kind(fs.create_file(etc, b"fstab", &n, &mut &b"x"[..], 1)),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(fs.mkdir(etc, b"hostname", &n)),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(fs.symlink(etc, b"fstab", b"t", &n)),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            fs.link(etc, b"hostname", fstab).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(fs.create_file(etc, b"a/b", &n, &mut &b"x"[..], 1)),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(fs.create_file(etc, b"..", &n, &mut &b"x"[..], 1)),
            ErrorKind::InvalidInput
        );
        assert_eq!(kind(fs.mkdir(fstab, b"x", &n)), ErrorKind::InvalidInput);
        // Data shorter than announced: nothing stays allocated or linked.
        assert_eq!(
            kind(fs.create_file(etc, b"short", &n, &mut &[1u8; 10_000][..], 20_000)),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            fs.replace_contents(fstab, &mut &[1u8; 10][..], 9000, Timestamp::now())
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            fs.unlink(ROOT_INO, b"etc").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            fs.rmdir(ROOT_INO, b"etc").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            fs.unlink(etc, b"nope").unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            fs.rmdir(ROOT_INO, b"..").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        fs.flush().unwrap();
        drop(fs);
        img.assert_clean(&format!("{args:?}: after refused operations"));
        assert!(
            img.sha() == before,
            "{args:?}: refused operations changed the image"
        );
        assert!(img.debugfs("ls /etc").contains("fstab"));
    }
}

#[test]
fn engine_attributes_and_timestamps() {
    for (args, extra) in [
        (&["-t", "ext4"][..], true),
        (&["-t", "ext4", "-I", "128"][..], false),
    ] {
        let img = Img::new(args, None, 16);
        let mut fs = img.open_rw();
        let n = NewNode {
            perm: 0o4751,
            uid: 70_000,
            gid: 65_600,
            atime: Timestamp {
                sec: 1_600_000_001,
                nsec: 1,
            },
            mtime: Timestamp {
                sec: 1_600_000_002,
                nsec: 999_999_999,
            },
            ctime: Timestamp {
                sec: 1_600_000_003,
                nsec: 3,
            },
        };
        let f = fs
            .create_file(ROOT_INO, b"f", &n, &mut &b"abc"[..], 3)
            .unwrap();
        let d = fs.mkdir(ROOT_INO, b"d", &n).unwrap();
        // Past 2038 (epoch bits in the _extra word).
        let later = NewNode {
            perm: 0o640,
            uid: 0,
            gid: 4,
            atime: Timestamp {
                sec: 4_000_000_000,
                nsec: 7,
            },
            mtime: Timestamp {
                sec: 4_000_000_001,
                nsec: 8,
            },
            ctime: Timestamp {
                sec: 4_000_000_002,
                nsec: 9,
            },
        };
        fs.set_attrs(d, &later).unwrap();
        fs.flush().unwrap();
        drop(fs);
        img.assert_clean("attributes");
        let st = img.debugfs("stat /f");
        assert!(st.contains("Mode:  04751"), "{st}");
        assert!(
            st.contains("User: 70000") && st.contains("Group: 65600"),
            "{st}"
        );
        if extra {
            let ex = |nsec: u32| format!("{:08x}", nsec << 2);
            assert!(
                st.contains(&format!(
                    "mtime: 0x{:08x}:{}",
                    1_600_000_002u32,
                    ex(999_999_999)
                )),
                "{st}"
            );
            assert!(
                st.contains(&format!("crtime: 0x{:08x}:{}", 1_600_000_003u32, ex(3))),
                "{st}"
            );
            // ext4-view 1.0.0 refuses timestamps whose low word is >= 2^31
            // (past 2038 or before 1970): debugfs judges those.
            let st = img.debugfs("stat /d");
            assert!(
                st.contains(&format!(
                    "mtime: 0x{:08x}:{:08x}",
                    4_000_000_001u64 as u32,
                    (8 << 2) | 1
                )),
                "{st}"
            );
            let v = ext4_view::Ext4::load(Box::new(img.window(Access::ReadOnly))).unwrap();
            let m = v.metadata("/f").unwrap();
            assert_eq!(m.mode() & 0o7777, 0o4751);
            assert_eq!(m.modified().seconds(), 1_600_000_002);
            assert_eq!(m.modified().nanoseconds(), 999_999_999);
        } else {
            assert!(
                st.contains(&format!("mtime: 0x{:08x} --", 1_600_000_002u32)),
                "{st}"
            );
        }
        let r = Ext::open_read_only(img.window(Access::ReadOnly)).unwrap();
        let s = r.stat(f).unwrap();
        assert_eq!(
            (s.mode, s.uid, s.gid, s.links),
            (0o104751, 70_000, 65_600, 1)
        );
        let s = r.stat(d).unwrap();
        assert_eq!((s.mode, s.uid, s.gid, s.links), (0o040640, 0, 4, 2));
        if extra {
            assert_eq!(
                s.mtime,
                Timestamp {
                    sec: 4_000_000_001,
                    nsec: 8
                }
            );
        }
    }
}

#[test]
fn engine_uninit_groups_over_garbage() {
    for args in [
        &["-t", "ext4", "-b", "1024"][..],
        &["-t", "ext4", "-b", "1024", "-O", "^flex_bg"][..],
        &[
            "-t",
            "ext4",
            "-b",
            "1024",
            "-O",
            "^flex_bg,^metadata_csum,uninit_bg",
        ][..],
        &[
            "-t",
            "ext4",
            "-b",
            "1024",
            "-O",
            "^metadata_csum,uninit_bg",
            "-I",
            "128",
        ][..],
    ] {
        let img = Img::new_over_garbage(args, 64);
        img.assert_clean(&format!("{args:?}: fresh"));
        let mut fs = img.open_rw();
        let mut dirs = Vec::new();
        for d in 0..4 {
            dirs.push(
                fs.mkdir(ROOT_INO, format!("dir{d}").as_bytes(), &node(0o755, 1))
                    .unwrap(),
            );
        }
        // More inodes than one group holds, and data across several groups.
        for i in 0..2600 {
            let d = dirs[i % dirs.len()];
            let data = [i as u8; 300];
            fs.create_file(
                d,
                format!("f{i}").as_bytes(),
                &node(0o644, 1),
                &mut &data[..],
                300,
            )
            .unwrap();
        }
        let big = cheap_pattern(20 << 20, 1);
        fs.create_file(
            ROOT_INO,
            b"big",
            &node(0o644, 1),
            &mut &big[..],
            big.len() as u64,
        )
        .unwrap();
        fs.flush().unwrap();
        drop(fs);
        img.assert_clean(&format!("{args:?}: after filling several groups"));
        assert!(dump(&img, "/big") == big);
        assert_eq!(img.debugfs("cat /dir1/f2597").len(), 300);
        // Remove most of it again.
        let mut fs = img.open_rw();
        for d in 0..4 {
            fs.remove_tree(ROOT_INO, format!("dir{d}").as_bytes())
                .unwrap();
        }
        fs.unlink(ROOT_INO, b"big").unwrap();
        fs.flush().unwrap();
        drop(fs);
        img.assert_clean(&format!("{args:?}: after removing"));
    }
}

#[test]
fn engine_ext4_32bit_gdt_csum() {
    scenario(
        &["-t", "ext4", "-O", "^64bit,^metadata_csum,uninit_bg"],
        true,
    );
}

#[test]
fn engine_ext4_sparse_super2_orphan_file() {
    scenario(&["-t", "ext4", "-O", "sparse_super2,orphan_file"], true);
}

#[test]
fn engine_ext4_1k_blocks_1k_inodes_csum_seed() {
    scenario(
        &[
            "-t",
            "ext4",
            "-b",
            "1024",
            "-I",
            "1024",
            "-O",
            "metadata_csum_seed,^resize_inode",
        ],
        true,
    );
}

#[test]
fn engine_ext3_1k_no_dir_index() {
    scenario(&["-t", "ext3", "-b", "1024", "-O", "^dir_index"], true);
}

#[test]
fn engine_shared_xattr_block_refcount() {
    use std::os::unix::fs::FileExt;
    for args in [&["-t", "ext3"][..], &["-t", "ext4"][..]] {
        let img = Img::new(args, None, 16);
        let mut fs = img.open_rw();
        for n in [&b"a"[..], b"b"] {
            fs.create_file(ROOT_INO, n, &node(0o644, 1), &mut &b"hello"[..], 5)
                .unwrap();
        }
        fs.flush().unwrap();
        let bs = u64::from(fs.block_size());
        drop(fs);
        let d = tempfile::tempdir().unwrap();
        let val = d.path().join("v");
        fs::write(&val, "w".repeat(700)).unwrap();
        img.debugfs_w(&format!("ea_set -f {} /a user.shared", val.display()));
        let st = img.debugfs("stat /a");
        let blk: u64 = stat_field(&st, "File ACL:").unwrap().parse().unwrap();
        assert_ne!(blk, 0, "{st}");
        let blocks = stat_field(&st, "Blockcount:").unwrap();
        // Share the block with /b: refcount 2 (and its checksum with metadata_csum).
        img.debugfs_w(&format!("sif /b file_acl {blk}"));
        img.debugfs_w(&format!("sif /b blocks {blocks}"));
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img.path)
            .unwrap();
        let at = OFFSET + blk * bs;
        let mut b = vec![0u8; bs as usize];
        f.read_exact_at(&mut b, at).unwrap();
        b[4..8].copy_from_slice(&2u32.to_le_bytes());
        if args.contains(&"ext4") {
            let h = img.debugfs("stats");
            let uuid = stat_field(&h, "Filesystem UUID:").unwrap();
            let hex: String = uuid.chars().filter(|c| *c != '-').collect();
            let u: Vec<u8> = (0..16)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let seed = domuify::ext::csum::crc32c(!0, &u);
            b[16..20].fill(0);
            let c = domuify::ext::csum::crc32c(
                domuify::ext::csum::crc32c(seed, &blk.to_le_bytes()),
                &b,
            );
            b[16..20].copy_from_slice(&c.to_le_bytes());
        }
        f.write_all_at(&b, at).unwrap();
        drop(f);
        img.assert_clean(&format!("{args:?}: shared xattr block"));
        // Unlink one: the block stays with refcount 1.
        let mut fs = img.open_rw();
        fs.unlink(ROOT_INO, b"b").unwrap();
        fs.flush().unwrap();
        drop(fs);
        img.assert_clean(&format!("{args:?}: after unlinking one sharer"));
        assert!(img.debugfs("ea_list /a").contains("user.shared"));
        // Unlink the other: the block is freed.
        let mut fs = img.open_rw();
        let free = fs.free_space().blocks;
        fs.unlink(ROOT_INO, b"a").unwrap();
        fs.flush().unwrap();
        assert_eq!(
            fs.free_space().blocks,
            free + 2,
            "data block and xattr block"
        );
        drop(fs);
        img.assert_clean(&format!("{args:?}: after unlinking the last sharer"));
    }
}

#[test]
fn engine_ext3_128_byte_inodes() {
    scenario(&["-t", "ext3", "-I", "128"], true);
}

#[test]
fn engine_ext2_revision_0() {
    // Good old revision: no features at all (no filetype, no xattrs, no sparse_super).
    scenario_plain(&["-t", "ext2", "-r", "0"]);
}

/// The scenario without xattrs (for filesystems without ext_attr).
fn scenario_plain(args: &[&str]) {
    let tree = tempfile::tempdir().unwrap();
    make_tree(tree.path());
    let img = Img::new(args, Some(tree.path()), 32);
    img.assert_clean("fresh image");
    let mut fs = img.open_rw();
    let etc = fs.resolve(b"/etc", true).unwrap();
    let fstab = fs.resolve(b"/etc/fstab", true).unwrap();
    let data = cheap_pattern(300_000, 2);
    fs.replace_contents(fstab, &mut &data[..], data.len() as u64, Timestamp::now())
        .unwrap();
    let lib = fs.resolve(b"/lib", true).unwrap();
    let m = fs.mkdir(lib, b"modules", &node(0o755, 1)).unwrap();
    for i in 0..100 {
        fs.create_file(
            m,
            format!("m{i}.ko").as_bytes(),
            &node(0o644, 1),
            &mut &data[..i * 100],
            (i * 100) as u64,
        )
        .unwrap();
    }
    fs.symlink(etc, b"slow", "y".repeat(200).as_bytes(), &node(0o777, 1))
        .unwrap();
    fs.symlink(etc, b"fast", b"fstab", &node(0o777, 1)).unwrap();
    fs.remove_tree(ROOT_INO, b"home").unwrap();
    fs.flush().unwrap();
    let names: Vec<_> = fs
        .read_dir(m)
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.file_type))
        .collect();
    assert_eq!(names.len(), 100);
    assert!(names
        .iter()
        .all(|(_, t)| *t == domuify::ext::FileType::Regular));
    drop(fs);
    img.assert_clean(&format!("{args:?}: after the operations"));
    assert!(dump(&img, "/etc/fstab") == data);
    assert_eq!(img.debugfs("cat /etc/slow"), "y".repeat(200));
    assert_eq!(
        img.debugfs("ls /usr/lib/modules").matches(".ko").count(),
        100
    );
}

#[test]
fn engine_refuses_to_launder_a_corrupt_inode() {
    use std::os::unix::fs::FileExt;
    let img = Img::new(&["-t", "ext4"], None, 16);
    let mut fs = img.open_rw();
    let ino = fs
        .create_file(ROOT_INO, b"victim", &node(0o644, 1), &mut &b"data"[..], 4)
        .unwrap();
    fs.flush().unwrap();
    let bs = u64::from(fs.block_size());
    drop(fs);
    // Flip a byte of i_uid in the inode table, behind the checksum's back.
    let st = img.debugfs(&format!("imap <{ino}>"));
    let blk: u64 = stat_field(&st, "located at block")
        .unwrap()
        .trim_end_matches(',')
        .parse()
        .unwrap();
    let off: u64 = u64::from_str_radix(
        stat_field(&st, "offset").unwrap().trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img.path)
        .unwrap();
    let at = OFFSET + blk * bs + off + 2;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x5A], at).unwrap();
    drop(f);
    let before = img.sha();
    let mut fs = img.open_rw();
    assert_eq!(fs.stat(ino).unwrap_err().kind(), ErrorKind::Corrupt);
    let e = fs
        .replace_contents(ino, &mut &b"new"[..], 3, Timestamp::now())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert_eq!(
        fs.unlink(ROOT_INO, b"victim").unwrap_err().kind(),
        ErrorKind::Corrupt
    );
    fs.flush().unwrap();
    drop(fs);
    assert!(img.sha() == before, "image changed");
}

#[test]
fn engine_space_freed_in_the_session_is_reused_after_an_automatic_flush() {
    let img = Img::new(&["-t", "ext4", "-b", "1024", "-O", "^has_journal"], None, 8);
    let mut fs = img.open_rw();
    let free = fs.free_space().blocks;
    let len = (free - 200) * 1024;
    let data = cheap_pattern(len as usize, 4);
    fs.create_file(ROOT_INO, b"one", &node(0o644, 1), &mut &data[..], len)
        .unwrap();
    // Removing it frees the blocks only at the next flush; a second file of the
    // same size still fits (the operation flushes first).
    fs.unlink(ROOT_INO, b"one").unwrap();
    assert!(fs.ensure_space(fs.file_cost(len)).is_ok());
    fs.create_file(ROOT_INO, b"two", &node(0o644, 1), &mut &data[..], len)
        .unwrap();
    fs.flush().unwrap();
    drop(fs);
    img.assert_clean("after reuse");
    assert!(dump(&img, "/two") == data);
}

#[test]
fn engine_uses_the_last_blocks_exactly() {
    let img = Img::new(&["-t", "ext4", "-b", "1024", "-O", "^has_journal"], None, 8);
    let mut fs = img.open_rw();
    let free = fs.free_space().blocks;
    let len = (free - 60) * 1024;
    let data = cheap_pattern(len as usize, 4);
    fs.create_file(ROOT_INO, b"fill", &node(0o644, 1), &mut &data[..], len)
        .unwrap();
    let mut i = 0;
    while fs.free_space().blocks > 4 {
        fs.create_file(
            ROOT_INO,
            format!("s{i}").as_bytes(),
            &node(0o644, 1),
            &mut &[1u8; 1000][..],
            1000,
        )
        .unwrap();
        i += 1;
    }
    let left = fs.free_space().blocks;
    let last = vec![2u8; (left * 1024) as usize];
    fs.create_file(
        ROOT_INO,
        b"last",
        &node(0o644, 1),
        &mut &last[..],
        last.len() as u64,
    )
    .unwrap();
    assert_eq!(fs.free_space().blocks, 0);
    fs.flush().unwrap();
    drop(fs);
    img.assert_clean("full to the last block");
    let before = img.sha();
    let mut fs = img.open_rw();
    let e = fs
        .create_file(ROOT_INO, b"one-more", &node(0o644, 1), &mut &b"x"[..], 1)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    fs.flush().unwrap();
    drop(fs);
    assert!(img.sha() == before);
    // An empty file needs no block: it still fits.
    let mut fs = img.open_rw();
    fs.create_file(ROOT_INO, b"empty", &node(0o644, 1), &mut &b""[..], 0)
        .unwrap();
    fs.flush().unwrap();
    drop(fs);
    img.assert_clean("empty file on a full filesystem");
}

#[test]
fn engine_device_nodes_fifos_sockets() {
    use domuify::ext::FileType;
    for args in [&["-t", "ext4"][..], &["-t", "ext2"][..]] {
        let img = Img::new(args, None, 16);
        let mut fs = img.open_rw();
        let dev = fs.mkdir(ROOT_INO, b"dev", &node(0o755, 1)).unwrap();
        fs.mknod(dev, b"sda", FileType::BlockDevice, (8, 0), &node(0o660, 1))
            .unwrap();
        fs.mknod(
            dev,
            b"big",
            FileType::CharDevice,
            (300, 70_000),
            &node(0o600, 1),
        )
        .unwrap();
        fs.mknod(dev, b"fifo", FileType::Fifo, (0, 0), &node(0o644, 1))
            .unwrap();
        fs.mknod(dev, b"sock", FileType::Socket, (0, 0), &node(0o755, 1))
            .unwrap();
        let e = fs
            .mknod(dev, b"x", FileType::Regular, (0, 0), &node(0o644, 1))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        fs.flush().unwrap();
        drop(fs);
        img.assert_clean(&format!("{args:?}: special files"));
        let st = img.debugfs("stat /dev/sda");
        assert!(
            st.contains("Type: block special") && st.contains("Device major/minor number: 08:00"),
            "{st}"
        );
        let st = img.debugfs("stat /dev/big");
        assert!(
            st.contains("Type: character special")
                && st.contains("Device major/minor number: 300:70000"),
            "{st}"
        );
        assert!(img.debugfs("stat /dev/fifo").contains("Type: FIFO"));
        assert!(img.debugfs("stat /dev/sock").contains("Type: socket"));
        let ls = img.debugfs("ls -l /dev");
        assert!(ls.contains("sda") && ls.contains("sock"), "{ls}");
        let r = Ext::open_read_only(img.window(Access::ReadOnly)).unwrap();
        let rdev = |p: &[u8]| r.rdev(r.resolve(p, false).unwrap()).unwrap();
        assert_eq!(rdev(b"/dev/sda"), Some((8, 0)));
        assert_eq!(rdev(b"/dev/big"), Some((300, 70_000)));
        assert_eq!(rdev(b"/dev/fifo"), None);
    }
}

/// Counts the reads that reach the device.
struct CountingReads<D> {
    inner: D,
    reads: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<D: domuify::disk::ReadAt> domuify::disk::ReadAt for CountingReads<D> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> domuify::Result<()> {
        self.reads.set(self.reads.get() + 1);
        self.inner.read_exact_at(offset, buf)
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
}

/// A dense file under an indirect block map (ext2, 1 KiB blocks: single, double
/// indirect) is read in runs, not one device read per block, and its bytes are
/// the ones debugfs reads.
#[test]
fn engine_blockmap_read_in_runs() {
    let tree = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 / 5) as u8).collect();
    fs::write(tree.path().join("big"), &data).unwrap();
    let img = Img::new(&["-t", "ext2", "-b", "1024"], Some(tree.path()), 16);
    let reads = std::rc::Rc::new(std::cell::Cell::new(0));
    let counting = CountingReads {
        inner: img.window(Access::ReadOnly),
        reads: reads.clone(),
    };
    let fs = Ext::open_read_only(counting).unwrap();
    let ino = fs.resolve(b"/big", true).unwrap();
    let before = reads.get();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = fs.read_file(ino, got.len() as u64, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let reads = reads.get() - before;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("big");
    img.debugfs(&format!("dump /big {}", out.display()));
    let judged = fs::read(&out).unwrap();
    assert_eq!(judged.len(), data.len(), "debugfs dump of /big");
    assert!(got == judged, "the engine's bytes differ from debugfs's");
    // 2,930 blocks: one device read per block (plus its map) would be 3,000+.
    assert!(reads < 300, "{reads} device reads for 2,930 blocks");
}

/// A hostile extent tree of 5 levels whose index blocks point 340 times at the
/// same child (a tree of 340^4 paths over 5 blocks) is refused after a bounded
/// number of block reads, not after a pass per block of a 16 GiB filesystem.
#[test]
fn engine_extent_tree_fanning_into_one_block_is_bounded() {
    let tree = tempfile::tempdir().unwrap();
    fs::create_dir(tree.path().join("d")).unwrap();
    fs::write(tree.path().join("f"), vec![1u8; 5 * 4096]).unwrap();
    let args = [
        "-t",
        "ext4",
        "-b",
        "4096",
        "-N",
        "4096",
        "-O",
        "^has_journal,^metadata_csum",
    ];
    let img = Img::new(&args, Some(tree.path()), 16 << 10);
    // The five blocks of /f become the tree: B[0] depth 4 .. B[3] depth 1 (340
    // entries, all to the next), B[4] an empty leaf.
    let blocks: Vec<u64> = img
        .debugfs("blocks /f")
        .split_whitespace()
        .map(|b| b.parse().unwrap())
        .collect();
    assert_eq!(blocks.len(), 5, "debugfs blocks /f: {blocks:?}");
    let f = fs::OpenOptions::new().write(true).open(&img.path).unwrap();
    for (i, &b) in blocks.iter().enumerate() {
        let mut blk = vec![0u8; 4096];
        let depth = 4 - i as u16;
        let entries: u16 = if i == 4 { 0 } else { 340 };
        blk[0..2].copy_from_slice(&0xF30Au16.to_le_bytes());
        blk[2..4].copy_from_slice(&entries.to_le_bytes());
        blk[4..6].copy_from_slice(&340u16.to_le_bytes());
        blk[6..8].copy_from_slice(&depth.to_le_bytes());
        for e in 0..usize::from(entries) {
            let o = 12 + e * 12;
            blk[o + 4..o + 8].copy_from_slice(&(blocks[i + 1] as u32).to_le_bytes());
        }
        std::os::unix::fs::FileExt::write_all_at(&f, &blk, OFFSET + b * 4096).unwrap();
    }
    drop(f);
    // /d's root: depth 5, one index entry to B[0].
    let words = [0x0001_F30Au32, 0x0005_0004, 0, 0, blocks[0] as u32, 0];
    for (i, w) in words.iter().enumerate() {
        img.debugfs_w(&format!("sif /d block[{i}] {w:#x}"));
    }
    let reads = std::rc::Rc::new(std::cell::Cell::new(0));
    let fs = Ext::open_read_only(CountingReads {
        inner: img.window(Access::ReadOnly),
        reads: reads.clone(),
    })
    .unwrap();
    let d = fs.resolve(b"/d", false).unwrap();
    let before = reads.get();
    let err = fs.read_dir(d).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("extent tree loops"), "{err}");
    let reads = reads.get() - before;
    assert!(reads <= 1_100_000, "{reads} block reads for a 5-block tree");
}

/// A read through our engine never goes through an extent block whose checksum
/// does not match (metadata_csum), even when the extents it holds are intact: the
/// corruption is in an unused slot of a real leaf, found with `debugfs ex`.
#[test]
fn engine_read_refuses_an_extent_leaf_with_a_bad_checksum() {
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;

    use domuify::disk::{Access, Disk, Window};

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..300u32 {
        std::fs::write(dir.join(format!("f{i}")), pattern(1024, i as u8)).unwrap();
    }
    let img = tmp.path().join("x.img");
    let img_s = img.to_str().unwrap();
    let d = dir.to_str().unwrap();
    let (code, out) =
        run(Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-b", "1024", "-d", d, img_s, "8M"]));
    assert_eq!(code, 0, "{out}");
    // Free every other file, then write a file that must fill the holes: its
    // extents no longer fit in the inode and live in a leaf block.
    let rm: String = (0..300).step_by(2).map(|i| format!("rm /f{i}\n")).collect();
    std::fs::write(tmp.path().join("rm.cmds"), rm).unwrap();
    let cmds = tmp.path().join("rm.cmds");
    run(Command::new("debugfs").args(["-w", "-f", cmds.to_str().unwrap(), img_s]));
    let big = tmp.path().join("big");
    let data = pattern(150_000, 7);
    std::fs::write(&big, &data).unwrap();
    run(Command::new("debugfs").args(["-w", "-R", &format!("write {} big", big.display()), img_s]));
    let (_, ex) = run(Command::new("debugfs").args(["-R", "ex /big", img_s]));
    // The level-0 line names the leaf: " 0/ 1   1/  2     0 -    89  1629   90".
    let leaf: u64 = ex
        .lines()
        .find(|l| l.trim_start().starts_with("0/ 1"))
        .and_then(|l| l.split_whitespace().nth(7))
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("no extent leaf in:\n{ex}"));

    let read_big = || {
        let disk = Arc::new(Disk::open(&img, Access::ReadOnly).unwrap());
        let size = domuify::disk::ReadAt::size(&*disk);
        let fs = Ext::open_read_only(Window::new(disk, 0, size).unwrap()).unwrap();
        let ino = fs.resolve(b"/big", true).unwrap();
        let mut buf = vec![0u8; data.len()];
        let mut done = 0;
        while done < buf.len() {
            let n = fs.read_file(ino, done as u64, &mut buf[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok::<_, domuify::Error>(buf)
    };
    assert_eq!(read_big().unwrap(), data, "intact file reads back");
    // Slot 83 of 84 (bytes 1008..1020) is past the leaf's entries: only the
    // checksum covers it.
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(&[0x5a], leaf * 1024 + 1010).unwrap();
    drop(f);
    let err = match read_big() {
        Ok(buf) => panic!("read {} bytes through a corrupt extent block", buf.len()),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
}

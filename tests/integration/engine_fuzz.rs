//! Hostile images: random bytes of the metadata area of small filesystems are
//! overwritten, then the whole tree is walked through the reader and a few
//! writes are attempted (on a copy in a scratch file). Nothing may panic or
//! hang; errors are fine. A write the engine accepts (its flush succeeds) must
//! not leave `e2fsck -fn` reporting more problems than before it.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use domuify::disk::{Access, Disk, MemDisk, Window};
use domuify::ext::{Ext, FileType, Ino, ROOT_INO};
use proptest::prelude::*;

use super::engine::{node, run, Img, OFFSET};

/// How many problems `e2fsck -fn` reports on the filesystem in `path`: the
/// questions it answers "no" to, or `usize::MAX` when it cannot check at all.
fn e2fsck_problems(path: &std::path::Path) -> usize {
    let (rc, out) = run(std::process::Command::new("e2fsck").arg("-fn").arg(path));
    if rc >= 8 {
        return usize::MAX;
    }
    out.matches("? no").count()
}

fn base(kind: usize) -> &'static (Vec<u8>, u64) {
    static IMGS: OnceLock<Vec<(Vec<u8>, u64)>> = OnceLock::new();
    &IMGS.get_or_init(|| {
        let tree = tempfile::tempdir().unwrap();
        let t = tree.path();
        std::fs::create_dir_all(t.join("a/b/c")).unwrap();
        for i in 0..40 {
            std::fs::write(t.join(format!("a/file{i}")), vec![i as u8; i * 300]).unwrap();
        }
        std::fs::write(t.join("a/b/c/big"), vec![7u8; 300_000]).unwrap();
        std::os::unix::fs::symlink("a/b", t.join("l")).unwrap();
        std::os::unix::fs::symlink("/".repeat(100) + "a", t.join("slow")).unwrap();
        [
            &["-t", "ext4", "-b", "1024"][..],
            &["-t", "ext2", "-b", "1024"][..],
            &["-t", "ext4", "-I", "128"][..],
        ]
        .iter()
        .map(|args| {
            let img = Img::new(args, Some(t), 4);
            let all = std::fs::read(&img.path).unwrap();
            let fs = all[OFFSET as usize..(OFFSET + img.len) as usize].to_vec();
            (fs, img.len)
        })
        .collect()
    })[kind]
}

fn walk<D: domuify::disk::ReadAt>(fs: &Ext<D>) {
    let mut seen = HashSet::new();
    let mut stack: Vec<(Ino, usize)> = vec![(ROOT_INO, 0)];
    let mut budget = 2000;
    while let Some((d, depth)) = stack.pop() {
        if !seen.insert(d) || depth > 16 {
            continue;
        }
        let Ok(entries) = fs.read_dir(d) else {
            continue;
        };
        for e in entries {
            budget -= 1;
            if budget == 0 {
                return;
            }
            let _ = fs.stat(e.ino);
            let _ = fs.xattrs(e.ino);
            match e.file_type {
                FileType::Directory => stack.push((e.ino, depth + 1)),
                FileType::Symlink => {
                    let _ = fs.read_link(e.ino);
                }
                _ => {
                    let mut buf = vec![0u8; 64 << 10];
                    let _ = fs.read_file(e.ino, 0, &mut buf);
                    let _ = fs.read_file(e.ino, 200_000, &mut buf);
                }
            }
        }
    }
    for p in [
        &b"/l/c/big"[..],
        b"/slow/b/../../a/file3",
        b"/a/b/c/../../../../l",
    ] {
        let _ = fs.resolve(p, true);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_fuzz_hostile_metadata(
        kind in 0usize..3,
        hits in prop::collection::vec((0usize..600_000, any::<u8>()), 1..48),
    ) {
        let (bytes, len) = base(kind);
        let mut b = bytes.clone();
        for (off, v) in hits {
            // Bias towards the first groups' metadata (superblock, descriptors,
            // bitmaps, inode tables, early directory blocks).
            let off = if off % 2 == 0 { off % 300_000 } else { off % b.len() };
            b[off] = v;
        }
        let disk = Arc::new(MemDisk::new(b));
        let w = Window::new(disk.clone(), 0, *len).unwrap();
        if let Ok(fs) = Ext::open_read_only(w.clone()) {
            walk(&fs);
        }
        if Ext::open_read_write(w).is_err() {
            return Ok(());
        }
        // Accepted for writing: the same bytes in a file, judged by e2fsck
        // before and after.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs.img");
        std::fs::write(&path, disk.to_vec()).unwrap();
        let before = e2fsck_problems(&path);
        let file = Arc::new(Disk::open(&path, Access::ReadWrite).unwrap());
        let mut fs = Ext::open_read_write(Window::new(file, 0, *len).unwrap()).unwrap();
        let n = node(0o644, 1);
        let _ = fs.create_file(ROOT_INO, b"new", &n, &mut &[1u8; 5000][..], 5000);
        let _ = fs.mkdir(ROOT_INO, b"newdir", &n);
        if let Ok(a) = fs.resolve(b"/a", true) {
            let _ = fs.unlink(a, b"file3");
            let _ = fs.remove_tree(ROOT_INO, b"a");
        }
        let _ = fs.symlink(ROOT_INO, b"s", &[b'x'; 300], &n);
        let flushed = fs.flush().is_ok();
        drop(fs);
        if flushed {
            let after = e2fsck_problems(&path);
            prop_assert!(
                after <= before,
                "a write made e2fsck -fn report more: {before} problems before, {after} after"
            );
        }
    }
}

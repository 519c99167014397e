//! Interrupted writes: every write the engine issues is counted, then the same
//! operations are replayed with the device failing after k writes, for every k.
//! `e2fsck -fy` must then repair to a state `e2fsck -fn` calls clean, files that
//! existed before are intact, and the file being replaced holds its old or its
//! new contents, never a mix.

use std::process::Command;
use std::sync::Arc;

use domuify::disk::{Access, Disk, Window, WriteAt};
use domuify::ext::{Ext, Timestamp, ROOT_INO};
use domuify::testing::FaultDev;
use domuify::Result;

use super::engine::{node, run, Img};

const OLD: &[u8] = b"/dev/sda1 / ext4 defaults 0 1\n";

fn operations<D: WriteAt>(fs: &mut Ext<D>, new: &[u8], flush_often: bool) -> Result<()> {
    if flush_often {
        fs.set_auto_flush_bytes(0);
    }
    let etc = fs.resolve(b"/etc", true)?;
    let fstab = fs.resolve(b"/etc/fstab", true)?;
    fs.replace_contents(fstab, &mut &new[..], new.len() as u64, Timestamp::now())?;
    let d = fs.mkdir(etc, b"new.d", &node(0o755, 1))?;
    for i in 0..30 {
        let body = vec![i as u8; 3000 + i * 100];
        fs.create_file(
            d,
            format!("conf-{i}").as_bytes(),
            &node(0o644, 1),
            &mut &body[..],
            body.len() as u64,
        )?;
    }
    fs.symlink(etc, b"link", &[b'z'; 100], &node(0o777, 1))?;
    fs.remove_tree(ROOT_INO, b"old")?;
    fs.flush()
}

fn crash_round(args: &[&str], flush_often: bool) {
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    std::fs::create_dir_all(t.join("etc")).unwrap();
    std::fs::create_dir_all(t.join("old/sub")).unwrap();
    std::fs::write(t.join("etc/fstab"), OLD).unwrap();
    std::fs::write(t.join("etc/keep"), vec![9u8; 50_000]).unwrap();
    for i in 0..20 {
        std::fs::write(t.join(format!("old/sub/f{i}")), vec![1u8; 2000]).unwrap();
    }
    let base = Img::new(args, Some(t), 16);
    let new: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    // Count the writes of an uninterrupted run.
    let total = {
        let img = Img::copy_of(&base);
        let dev = Arc::new(FaultDev::counting(img.window(Access::ReadWrite)));
        let mut fs = Ext::open_read_write(dev.clone()).unwrap();
        operations(&mut fs, &new, flush_often).unwrap();
        drop(fs);
        img.assert_clean("uninterrupted");
        dev.attempts()
    };
    assert!(total > 5, "only {total} writes");
    eprintln!("{args:?}: {total} writes, each interruption point checked");
    for k in 0..total {
        let img = Img::copy_of(&base);
        let dev = FaultDev::new(img.window(Access::ReadWrite), k);
        let mut fs = Ext::open_read_write(dev).unwrap();
        assert!(
            operations(&mut fs, &new, flush_often).is_err(),
            "k={k}: no failure seen"
        );
        drop(fs);
        let (rc, out) = run(Command::new("e2fsck").arg("-fy").arg(img.spec()));
        assert!(
            rc <= 1,
            "{args:?} k={k}/{total}: e2fsck -fy exit {rc}:\n{out}"
        );
        img.assert_clean(&format!("{args:?} k={k}/{total}: after e2fsck -fy"));
        let out = tempfile::tempdir().unwrap();
        let f = out.path().join("fstab");
        img.debugfs(&format!("dump /etc/fstab {}", f.display()));
        let fstab = std::fs::read(&f).unwrap_or_default();
        assert!(
            fstab == OLD || fstab == new,
            "{args:?} k={k}: /etc/fstab is neither old nor new ({} bytes)",
            fstab.len()
        );
        let disk = Arc::new(Disk::open(&img.path, Access::ReadOnly).unwrap());
        let w = Window::new(disk, super::engine::OFFSET, img.len).unwrap();
        let r = Ext::open_read_only(w).unwrap();
        let keep = r.resolve(b"/etc/keep", true).unwrap();
        let mut buf = vec![0u8; 60_000];
        let n = r.read_file(keep, 0, &mut buf).unwrap();
        assert!(
            n == 50_000 && buf[..n].iter().all(|&b| b == 9),
            "{args:?} k={k}: /etc/keep damaged"
        );
    }
}

#[test]
fn engine_crash_ext4() {
    crash_round(&["-t", "ext4"], false);
}

#[test]
fn engine_crash_ext3_1k() {
    // Flushing after every step: many more interruption points.
    crash_round(&["-t", "ext3", "-b", "1024"], true);
}

//! Throughput of the engine: copy host trees (`ENGINE_BENCH_TREES`, colon
//! separated) into a fresh 2 GiB ext4 image through [`Ext`], then judge with
//! `e2fsck -fn`. Ignored by default; run with
//! `ENGINE_BENCH_TREES=/usr/lib/llvm-14 [ENGINE_BENCH_MKFS='-t ext3'] cargo test --release --test integration engine_bench -- --ignored --nocapture`.

use std::fs;
use std::io::BufReader;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use domuify::disk::{Access, ReadAt, WriteAt};
use domuify::ext::{Ext, Ino, NewNode, Timestamp, ROOT_INO};

use super::engine::Img;

fn node_of(m: &fs::Metadata) -> NewNode {
    let t = |s: i64, n: i64| Timestamp {
        sec: s,
        nsec: n as u32,
    };
    NewNode {
        perm: (m.mode() & 0o7777) as u16,
        uid: m.uid(),
        gid: m.gid(),
        atime: t(m.atime(), m.atime_nsec()),
        mtime: t(m.mtime(), m.mtime_nsec()),
        ctime: t(m.ctime(), m.ctime_nsec()),
    }
}

/// Copy `src` into directory `dir`; returns (files, dirs, bytes).
pub fn copy_tree<D: WriteAt>(fs: &mut Ext<D>, dir: Ino, src: &Path) -> (u64, u64, u64) {
    let mut counts = (0, 0, 0);
    let mut entries: Vec<_> = fs::read_dir(src).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let m = fs::symlink_metadata(e.path()).unwrap();
        let name = e.file_name();
        let name = name.as_encoded_bytes();
        if m.is_dir() {
            let d = fs.mkdir(dir, name, &node_of(&m)).unwrap();
            let (f, ds, b) = copy_tree(fs, d, &e.path());
            counts.0 += f;
            counts.1 += ds + 1;
            counts.2 += b;
        } else if m.is_file() {
            let f = fs::File::open(e.path()).unwrap();
            let mut r = BufReader::with_capacity(1 << 20, f);
            fs.create_file(dir, name, &node_of(&m), &mut r, m.len())
                .unwrap();
            counts.0 += 1;
            counts.2 += m.len();
        } else if m.file_type().is_symlink() {
            let t = fs::read_link(e.path()).unwrap();
            fs.symlink(dir, name, t.as_os_str().as_encoded_bytes(), &node_of(&m))
                .unwrap();
            counts.0 += 1;
        }
    }
    counts
}

fn peak_rss_kib() -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore]
fn engine_bench_copy_trees() {
    let Ok(trees) = std::env::var("ENGINE_BENCH_TREES") else {
        eprintln!("set ENGINE_BENCH_TREES");
        return;
    };
    let mkfs = std::env::var("ENGINE_BENCH_MKFS").unwrap_or_else(|_| "-t ext4".into());
    let args: Vec<&str> = mkfs.split_whitespace().collect();
    let img = Img::new(&args, None, 2048);
    let w = img.window(Access::ReadWrite);
    let t0 = Instant::now();
    let mut fs = Ext::open_read_write(w).unwrap();
    let mut total = (0, 0, 0);
    for (i, t) in trees.split(':').enumerate() {
        let d = fs
            .mkdir(
                ROOT_INO,
                format!("tree{i}").as_bytes(),
                &domuify::ext::NewNode {
                    perm: 0o755,
                    uid: 0,
                    gid: 0,
                    atime: Timestamp::now(),
                    mtime: Timestamp::now(),
                    ctime: Timestamp::now(),
                },
            )
            .unwrap();
        let c = copy_tree(&mut fs, d, Path::new(t));
        total.0 += c.0;
        total.1 += c.1;
        total.2 += c.2;
    }
    fs.flush().unwrap();
    let dt = t0.elapsed();
    let _ = fs.block_size();
    drop(fs);
    eprintln!(
        "engine: {} files, {} dirs, {} MB in {:.3} s; peak RSS {} KiB",
        total.0,
        total.1,
        total.2 >> 20,
        dt.as_secs_f64(),
        peak_rss_kib()
    );
    let _ = img.window(Access::ReadOnly).size();
    img.assert_clean("bench copy");
    // And remove it all again.
    let t1 = Instant::now();
    let mut fs = Ext::open_read_write(img.window(Access::ReadWrite)).unwrap();
    for i in 0..trees.split(':').count() {
        fs.remove_tree(ROOT_INO, format!("tree{i}").as_bytes())
            .unwrap();
    }
    fs.flush().unwrap();
    drop(fs);
    eprintln!(
        "engine: remove_tree of it all in {:.3} s",
        t1.elapsed().as_secs_f64()
    );
    img.assert_clean("bench remove");
}

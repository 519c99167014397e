//! `GuestRead::open`: a seekable stream of a guest file, the same bytes through
//! ext4-view and through the engine fallback, judged by `debugfs cat`.

use std::fs;
use std::io::{Read, Seek, SeekFrom};

use domuify::copy::{EngineReader, GuestRead, ViewReader};
use domuify::disk::{Access, Disk, ReadAt, Window};

use crate::harness::*;

/// Deterministic bytes that repeat nowhere near a block boundary.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn check_stream(r: &dyn GuestRead, path: &[u8], want: &[u8]) {
    let name = r.reader_name();
    let mut f = r.open(path).unwrap();
    let mut all = Vec::new();
    f.read_to_end(&mut all).unwrap();
    assert!(all == want, "{name}: whole read differs from debugfs cat");
    let len = want.len() as u64;
    assert_eq!(f.seek(SeekFrom::End(0)).unwrap(), len, "{name}");
    // Offsets inside blocks, across block and extent boundaries, backwards.
    for &at in &[
        len - 1,
        4095,
        4096,
        1 << 20,
        7,
        (1 << 20) + 4093,
        123_457,
        0,
    ] {
        let at = at.min(len);
        assert_eq!(f.seek(SeekFrom::Start(at)).unwrap(), at, "{name}");
        let mut buf = vec![0u8; 10_000];
        let mut got = 0;
        while got < buf.len() {
            let n = f.read(&mut buf[got..]).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        let end = (at as usize + 10_000).min(want.len());
        assert!(
            buf[..got] == want[at as usize..end],
            "{name}: read at {at} differs"
        );
    }
    assert_eq!(f.seek(SeekFrom::Current(-5)).unwrap(), 10_000 - 5, "{name}");
    assert!(f.seek(SeekFrom::Current(-20_000)).is_err(), "{name}");
    let mut past = [0u8; 8];
    f.seek(SeekFrom::Start(len + 100)).unwrap();
    assert_eq!(f.read(&mut past).unwrap(), 0, "{name}: read past the end");
}

#[test]
fn open_streams_and_seeks_the_same_bytes_through_both_readers() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    fs::create_dir_all(tree.join("boot")).unwrap();
    // Over 1 MiB (the copy buffer) and not a whole number of blocks.
    fs::write(tree.join("boot/big"), pattern(3 * (1 << 20) + 1234, 7)).unwrap();
    std::os::unix::fs::symlink("big", tree.join("boot/link")).unwrap();
    let (img, off) = make_image(t.path(), "d.img", Some(&tree), &ImageSpec::default());
    let want = debugfs_cat(&img, off, "/boot/big");
    assert_eq!(want.len(), 3 * (1 << 20) + 1234);

    let disk = std::sync::Arc::new(Disk::open(&img, Access::ReadOnly).unwrap());
    let len = disk.size() - off;
    let win = Window::new(disk, off, len).unwrap();
    let view = ViewReader::load(win.clone()).unwrap();
    let engine = EngineReader::open(win).unwrap();
    for r in [&view as &dyn GuestRead, &engine] {
        check_stream(r, b"/boot/big", &want);
        check_stream(r, b"/boot/link", &want);
        assert!(
            r.open(b"/boot").is_err(),
            "{}: a directory",
            r.reader_name()
        );
        assert!(r.open(b"/nope").is_err(), "{}", r.reader_name());
    }
}

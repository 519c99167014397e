//! Robustness of the partition reader and the filesystem probes on hostile bytes:
//! real images (made with sfdisk, mke2fs, mkfs.vfat, mkswap, mkntfs, and for the
//! types of issue 14 mkfs.exfat, xorriso, mkudffs, mksquashfs, mkfs.erofs,
//! mke2fs -O journal_dev, make-bcache, the head of an mkfs.f2fs image, a
//! hibernated swap, md and Intel RST superblocks, Sun/SGI/BSD labels) with random
//! bytes overwritten in their metadata sectors and random truncation, plus plain
//! random bytes; ZFS and the XFS external log (which need 64 and 10 MiB) have
//! their own test over hostile labels. Every call must return (no panic), read a bounded number of
//! bytes in bounded pieces (no huge allocation, no endless walk), and report
//! partitions that the table declares.

use std::cell::Cell;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use domuify::disk::{MemDisk, ReadAt, Window};
use domuify::part::{read_table, TableKind};
use domuify::probe::probe;
use proptest::prelude::*;

/// Largest single read any call may do (the GPT entry-array cap).
const MAX_READ: usize = 1 << 20;
/// Most bytes one read_table + probe-every-partition round may read.
const MAX_TOTAL: u64 = 96 << 20;
/// Most reads of one round.
const MAX_READS: u64 = 20_000;

/// A device that counts what is read from it.
struct Counting<'a> {
    inner: &'a MemDisk,
    reads: Cell<u64>,
    bytes: Cell<u64>,
    largest: Cell<usize>,
}

impl ReadAt for Counting<'_> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> domuify::Result<()> {
        self.reads.set(self.reads.get() + 1);
        self.bytes.set(self.bytes.get() + buf.len() as u64);
        self.largest.set(self.largest.get().max(buf.len()));
        self.inner.read_exact_at(offset, buf)
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
}

/// A template image and the byte ranges worth corrupting.
struct Template {
    bytes: Vec<u8>,
    hot: Vec<std::ops::Range<usize>>,
}

fn tool(cmd: &str, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut c = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    if let Some(s) = stdin {
        c.stdin
            .take()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("stdin");
    }
    drop(c.stdin.take());
    assert!(c.wait().expect("wait").success(), "{cmd} {args:?}");
}

fn image(dir: &Path, name: &str, size: u64, make: impl FnOnce(&str)) -> Vec<u8> {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .and_then(|f| f.set_len(size))
        .expect("image");
    make(&p.display().to_string());
    std::fs::read(&p).expect("read image")
}

/// Sectors holding table or superblock metadata in `b`: found by signature, so
/// the templates need no hard-coded layout.
fn hot_ranges(b: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut hot = Vec::new();
    hot.push(0..4096.min(b.len()));
    if b.len() > 4096 {
        hot.push(b.len() - 4096..b.len());
    }
    // Every sector with a boot signature (EBRs), and the ext/btrfs superblocks.
    for s in (0..b.len()).step_by(512) {
        if b.get(s + 510..s + 512) == Some(&[0x55, 0xAA]) {
            hot.push(s..s + 512);
        }
    }
    // ext/btrfs/f2fs/erofs superblocks, bcache and md 1.2 at 4 KiB, the ISO 9660
    // and UDF descriptors from 32 KiB, UDF anchors at sector 256.
    for (start, len) in [
        (1024usize, 1024usize),
        (0x10000, 1024),
        (0x1000, 1024),
        (0x8000, 16 * 2048),
        (256 * 512, 512),
        (256 * 2048, 2048),
    ] {
        if b.len() >= start + len {
            hot.push(start..start + len);
        }
    }
    hot
}

fn templates() -> &'static [Template] {
    static T: OnceLock<Vec<Template>> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let mut images = vec![
            image(d, "mbr", 10 << 20, |p| {
                tool(
                    "sfdisk",
                    &["-q", p],
                    Some("label: dos\nsize=1M, type=83\ntype=5\nsize=1M, type=83\nsize=1M, type=82\nsize=1M, type=83\n"),
                )
            }),
            image(d, "gpt", 4 << 20, |p| {
                tool(
                    "sfdisk",
                    &["-q", p],
                    Some("label: gpt\nsize=1M, type=U\nsize=1M, type=L\n"),
                )
            }),
            image(d, "ext4", 2 << 20, |p| tool("mke2fs", &["-q", "-F", "-t", "ext4", p], None)),
            image(d, "ext2", 1 << 20, |p| tool("mke2fs", &["-q", "-F", "-t", "ext2", p], None)),
            image(d, "fat12", 1 << 20, |p| tool("mkfs.vfat", &["-n", "FUZZ", p], None)),
            image(d, "swap", 1 << 20, |p| tool("mkswap", &["-q", "-L", "s", p], None)),
            image(d, "ntfs", 2 << 20, |p| tool("mkntfs", &["-F", "-Q", "-q", p], None)),
            image(d, "exfat", 4 << 20, |p| tool("mkfs.exfat", &["-L", "Été", p], None)),
            image(d, "jbd", 1 << 20, |p| {
                tool("mke2fs", &["-q", "-F", "-O", "journal_dev", "-b", "1024", p], None)
            }),
            image(d, "udf", 1 << 20, |p| tool("mkudffs", &["--blocksize=512", "--label=日本", p], None)),
            image(d, "bcache", 1 << 20, |p| tool("make-bcache", &["-B", p], None)),
            image(d, "swsuspend", 1 << 20, |p| {
                tool("mkswap", &["-q", "-L", "h", p], None);
                patch(p, 4096 - 10, b"S1SUSPEND\0");
            }),
            image(d, "sun", 1 << 20, |p| tool("sfdisk", &["-q", p], Some("label: sun\n"))),
            image(d, "sgi", 1 << 20, |p| tool("sfdisk", &["-q", p], Some("label: sgi\n"))),
            image(d, "bsd", 2 << 20, |p| {
                tool("sfdisk", &["-q", p], Some("label: dos\nstart=2048, type=a5\n"));
                tool("fdisk", &[p], Some("b\ny\nw\n"));
            }),
            image(d, "md", 1 << 20, |p| patch(p, 0x1000, &md12())),
            image(d, "isw", 1 << 20, |p| {
                patch(p, (1 << 20) - 1024, b"Intel Raid ISM Cfg Sig. 1.1.00\0\0")
            }),
        ];
        let src = d.join("tree");
        std::fs::create_dir_all(src.join("etc")).expect("tree");
        std::fs::write(src.join("etc/hostname"), "live\n").expect("tree");
        let s = src.display().to_string();
        let iso = d.join("iso");
        tool(
            "xorriso",
            &["-as", "mkisofs", "-quiet", "-J", "-V", "LIVE", "-o", &iso.display().to_string(), &s],
            None,
        );
        let sq = d.join("sq");
        tool("mksquashfs", &[&s, &sq.display().to_string(), "-quiet", "-noappend", "-no-progress"], None);
        let ero = d.join("ero");
        tool("mkfs.erofs", &["--quiet", &ero.display().to_string(), &s], None);
        let f2 = d.join("f2fs");
        std::fs::File::create(&f2).and_then(|f| f.set_len(64 << 20)).expect("f2fs");
        tool("mkfs.f2fs", &["-q", "-l", "f2", &f2.display().to_string()], None);
        for f in [iso, sq, ero] {
            images.push(std::fs::read(f).expect("read"));
        }
        // The head of the F2FS image holds both superblocks.
        let mut head = std::fs::read(&f2).expect("read");
        head.truncate(64 << 10);
        images.push(head);
        images.push(vec![0; 70 * 1024]);
        images
            .into_iter()
            .map(|bytes| Template {
                hot: hot_ranges(&bytes),
                bytes,
            })
            .collect()
    })
}

/// Patch `bytes` into the file at `off`.
fn patch(path: &str, off: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.write_all_at(bytes, off).expect("patch");
}

/// A minimal md 1.2 superblock (magic, version 1, its own sector, a name).
fn md12() -> Vec<u8> {
    let mut sb = vec![0u8; 1024];
    sb[0..4].copy_from_slice(&0xa92b_4efcu32.to_le_bytes());
    sb[4..8].copy_from_slice(&1u32.to_le_bytes());
    sb[0x10..0x20].copy_from_slice(&[0x5e; 16]);
    sb[0x20..0x26].copy_from_slice(b"fuzz:0");
    sb[0x90..0x98].copy_from_slice(&8u64.to_le_bytes());
    sb[0xDC..0xE0].copy_from_slice(&2u32.to_le_bytes());
    sb
}

/// Read the table and probe the whole device and every partition that fits;
/// check the bounds of what was read.
fn exercise(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    let mem = MemDisk::new(bytes);
    let dev = Counting {
        inner: &mem,
        reads: Cell::new(0),
        bytes: Cell::new(0),
        largest: Cell::new(0),
    };
    let size = dev.size();
    if let Ok(t) = read_table(&dev, 512) {
        prop_assert!(t.partitions.windows(2).all(|w| w[0].number < w[1].number));
        if t.kind == TableKind::None {
            prop_assert_eq!(t.partitions.len(), 1);
        }
        // Every partition that does not fit the disk is reported.
        for p in &t.partitions {
            let fits = p.end_bytes().is_some_and(|e| e <= size);
            if !fits {
                prop_assert!(!t.problems.is_empty(), "{:?}", p);
            }
        }
        for p in t.partitions.iter().take(300) {
            if let Ok(w) = Window::new(&dev, p.start_bytes, p.size_bytes) {
                let _ = probe(&w);
            }
        }
    }
    let _ = probe(&dev);
    prop_assert!(
        dev.largest.get() <= MAX_READ,
        "a read of {} bytes",
        dev.largest.get()
    );
    prop_assert!(
        dev.bytes.get() <= MAX_TOTAL,
        "{} bytes read",
        dev.bytes.get()
    );
    prop_assert!(dev.reads.get() <= MAX_READS, "{} reads", dev.reads.get());
    Ok(())
}

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let n = templates().len();
    (
        0..n,
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<u16>(), any::<u8>()),
            1..40,
        ),
        prop::option::weighted(0.2, any::<prop::sample::Index>()),
    )
        .prop_map(|(which, edits, cut)| {
            let t = &templates()[which];
            let mut b = t.bytes.clone();
            for (range, at, value) in edits {
                let r = &t.hot[range.index(t.hot.len())];
                let len = r.end - r.start;
                if len > 0 {
                    let off = r.start + usize::from(at) % len;
                    b[off] = value;
                }
            }
            if let Some(cut) = cut {
                b.truncate(cut.index(b.len() + 1));
            }
            b
        })
}

proptest! {
    // PROBE_FUZZ_CASES raises the count for a longer local run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROBE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(384),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_images_never_panic_or_overread(bytes in mutated()) {
        exercise(bytes)?;
    }

    #[test]
    fn random_bytes_never_panic_or_overread(bytes in prop::collection::vec(any::<u8>(), 0..70_000)) {
        exercise(bytes)?;
    }
}

/// Hand-made hostile cases the issue names.
#[test]
fn named_hostile_cases() {
    // Zero-length and one-byte disks.
    for len in [0usize, 1] {
        let d = MemDisk::new(vec![0; len]);
        let t = read_table(&d, 512).expect("read_table");
        assert_eq!(t.kind, TableKind::None);
        assert_eq!(probe(&d).expect("probe").fstype.as_str(), "unknown");
    }
    // A protective MBR and a GPT header claiming 2^32-1 entries of 2^32-8 bytes,
    // with a valid header CRC: refused without allocating it.
    let mut b = vec![0u8; 1 << 20];
    b[0x1BE + 4] = 0xEE;
    b[0x1FE] = 0x55;
    b[0x1FF] = 0xAA;
    let h = 512;
    b[h..h + 8].copy_from_slice(b"EFI PART");
    b[h + 0x0C..h + 0x10].copy_from_slice(&92u32.to_le_bytes());
    b[h + 0x18..h + 0x20].copy_from_slice(&1u64.to_le_bytes());
    b[h + 0x28..h + 0x30].copy_from_slice(&34u64.to_le_bytes());
    b[h + 0x30..h + 0x38].copy_from_slice(&2000u64.to_le_bytes());
    b[h + 0x48..h + 0x50].copy_from_slice(&2u64.to_le_bytes());
    b[h + 0x50..h + 0x54].copy_from_slice(&u32::MAX.to_le_bytes());
    b[h + 0x54..h + 0x58].copy_from_slice(&(u32::MAX - 7).to_le_bytes());
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&b[h..h + 92]);
    b[h + 0x10..h + 0x14].copy_from_slice(&crc.to_le_bytes());
    exercise(b.clone()).expect("bounded");
    let t = read_table(&MemDisk::new(b), 512).expect("read_table");
    assert_eq!(t.kind, TableKind::Gpt);
    assert!(t.partitions.is_empty());
    assert!(t
        .problems
        .iter()
        .any(|p| p.message.contains("primary GPT header")));
}

/// ZFS labels (64 MiB minimum) and an XFS external log (10 MiB minimum): the
/// nvlist and uberblock rings of a hand-made member, and the first log records
/// of a log made by mkfs.xfs, overwritten with random bytes; every probe
/// returns and reads within bounds.
#[test]
fn hostile_zfs_labels_and_xfs_logs_never_panic_or_overread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("xfs");
    let log = dir.path().join("log");
    for (p, size) in [(&data, 300u64 << 20), (&log, 70 << 20)] {
        std::fs::File::create(p)
            .and_then(|f| f.set_len(size))
            .expect("image");
    }
    tool(
        "mkfs.xfs",
        &[
            "-q",
            "-l",
            &format!("logdev={},size=64m", log.display()),
            &data.display().to_string(),
        ],
        None,
    );
    let log = std::fs::read(&log).expect("read log");
    let size: usize = 64 << 20;
    let mut zfs = vec![0u8; size];
    let labels = [0, 256 << 10, size - (512 << 10), size - (256 << 10)];
    for &l in &labels {
        for slot in 0..8 {
            let at = l + (128 << 10) + slot * 1024;
            zfs[at..at + 8].copy_from_slice(&0x00ba_b10cu64.to_le_bytes());
        }
    }
    // A small xorshift generator: reproducible, no dependency.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..24 {
        let mut z = zfs.clone();
        for &l in &labels {
            // The nvlist: random words, often small (sizes, lengths, types).
            for i in (0..4096).step_by(4) {
                let r = next();
                let w = if r % 3 == 0 {
                    (r >> 8) as u32 % 64
                } else {
                    (r >> 32) as u32
                };
                z[l + (16 << 10) + i..l + (16 << 10) + i + 4].copy_from_slice(&w.to_be_bytes());
            }
            let at = l + (128 << 10) + (next() % 128) as usize * 1024;
            z[at..at + 8].copy_from_slice(&0x0cb1_ba00_0000_0000u64.to_le_bytes());
        }
        exercise(z).expect("bounded");
        let mut x = log.clone();
        for _ in 0..256 {
            let r = next();
            let off = (r % (256 << 10)) as usize;
            x[off] = (r >> 40) as u8;
        }
        exercise(x).expect("bounded");
    }
}

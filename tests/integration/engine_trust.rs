//! What the engine must not trust (issue 7, items 2, 3, 7, 8 and 10): damaged
//! bitmaps and group descriptors on filesystems without metadata checksums, a
//! bad-blocks list over metadata, block maps that claim free blocks, superblocks
//! that e2fsck rejects, and the messages of the refusals. Every damaged case is
//! made with debugfs or a raw patch at a place found by dumpe2fs/debugfs, over
//! several mke2fs configurations; a refusal must leave the image byte for byte
//! unchanged, and e2fsck is the judge of what is damage.

use std::fs;
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::sync::Arc;

use domuify::disk::{Access, Disk, Window};
use domuify::ext::{Ext, ROOT_INO};
use domuify::ErrorKind;

use super::engine::{node, run, Img, OFFSET};

/// Configurations without metadata checksums (plus one with them where a case
/// applies to every filesystem).
const NO_CSUM: &[&[&str]] = &[
    &["-t", "ext2", "-b", "1024"],
    &["-t", "ext3", "-b", "4096", "-g", "1024"],
    &[
        "-t",
        "ext4",
        "-O",
        "^metadata_csum,^uninit_bg",
        "-b",
        "1024",
    ],
];

/// A tree with a victim file of `kib` KiB of a known pattern.
fn tree(kib: usize) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..kib * 1024).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(t.path().join("victim"), data).unwrap();
    fs::create_dir(t.path().join("dir")).unwrap();
    t
}

/// One group's layout as dumpe2fs prints it.
#[derive(Debug, Clone, Copy)]
struct GroupLayout {
    first: u64,
    block_bitmap: u64,
    inode_bitmap: u64,
    inode_table: u64,
}

/// Block size, blocks per group, and every group's layout, from dumpe2fs.
fn layout(img: &Img) -> (u64, u64, Vec<GroupLayout>) {
    let (rc, out) = run(Command::new("dumpe2fs").arg(img.spec()));
    assert_eq!(rc, 0, "{out}");
    let num = |l: &str, key: &str| -> Option<u64> {
        let rest = l.trim().strip_prefix(key)?;
        let digits: String = rest
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    };
    let mut bs = 0;
    let mut bpg = 0;
    let mut groups = Vec::new();
    for l in out.lines() {
        if let Some(v) = num(l, "Block size:") {
            bs = v;
        } else if let Some(v) = num(l, "Blocks per group:") {
            bpg = v;
        } else if l.starts_with("Group ") && l.contains("(Blocks ") {
            let first = l.split("(Blocks ").nth(1).and_then(|r| num(r, "")).unwrap();
            groups.push(GroupLayout {
                first,
                block_bitmap: 0,
                inode_bitmap: 0,
                inode_table: 0,
            });
        } else if let Some(g) = groups.last_mut() {
            if let Some(v) = num(l, "Block bitmap at") {
                g.block_bitmap = v;
            } else if let Some(v) = num(l, "Inode bitmap at") {
                g.inode_bitmap = v;
            } else if let Some(v) = num(l, "Inode table at") {
                g.inode_table = v;
            }
        }
    }
    assert!(bs > 0 && bpg > 0 && !groups.is_empty(), "{out}");
    (bs, bpg, groups)
}

/// The group of block `b` and its index in it.
fn group_of(groups: &[GroupLayout], b: u64) -> (usize, u64) {
    let g = groups.iter().rposition(|g| g.first <= b).unwrap();
    (g, b - groups[g].first)
}

fn patch(img: &Img, at: u64, f: impl FnOnce(&mut [u8])) {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img.path)
        .unwrap();
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, OFFSET + at).unwrap();
    f(&mut b);
    file.write_all_at(&b, OFFSET + at).unwrap();
}

/// Clear bit `bit` of the bitmap at block `bm`.
fn clear_bit(img: &Img, bs: u64, bm: u64, bit: u64) {
    patch(img, bm * bs + bit / 8, |b| b[0] &= !(1 << (bit % 8)));
}

/// The physical block of logical block `lblk` of `path` (debugfs bmap).
fn bmap(img: &Img, path: &str, lblk: u64) -> u64 {
    img.debugfs(&format!("bmap {path} {lblk}"))
        .trim()
        .parse()
        .unwrap()
}

/// Count of problems e2fsck -fn reports (lines that are not its banners).
fn fsck_remarks(img: &Img) -> usize {
    let (_, out) = img.fsck();
    out.lines()
        .filter(|l| {
            !(l.starts_with("Pass ")
                || l.starts_with("e2fsck ")
                || l.contains(" files (")
                || l.trim().is_empty())
        })
        .count()
}

type Fs = Ext<Window<Arc<Disk>>>;

/// Every write the engine offers, tried on `img`: each must be refused as
/// corrupt with a message containing every one of `words`, and the image must
/// stay byte for byte as it was.
fn assert_writes_refused(img: &Img, what: &str, words: &[&str]) {
    assert_refused_ops(img, what, words, &["create", "mkdir", "replace", "unlink"]);
}

/// [`assert_writes_refused`] for the operations named in `only`.
fn assert_refused_ops(img: &Img, what: &str, words: &[&str], only: &[&str]) {
    let before = img.sha();
    type Op<'a> = (&'a str, &'a dyn Fn(&mut Fs) -> domuify::Result<()>);
    let ops: [Op; 4] = [
        ("create", &|fs| {
            let data = vec![0x5Au8; 40_000];
            fs.create_file(ROOT_INO, b"new", &node(0o644, 1), &mut &data[..], 40_000)
                .map(|_| ())
        }),
        ("mkdir", &|fs| {
            fs.mkdir(ROOT_INO, b"newdir", &node(0o755, 1)).map(|_| ())
        }),
        ("replace", &|fs| {
            let ino = fs.lookup(ROOT_INO, b"victim")?.unwrap();
            let data = vec![0xA5u8; 30_000];
            fs.replace_contents(ino, &mut &data[..], 30_000, node(0, 2).mtime)
        }),
        ("unlink", &|fs| fs.unlink(ROOT_INO, b"victim")),
    ];
    let mut refused = 0;
    for (name, op) in ops.into_iter().filter(|(n, _)| only.contains(n)) {
        let r = Ext::open_read_write(img.window(Access::ReadWrite))
            .and_then(|mut fs| op(&mut fs).and_then(|()| fs.flush()));
        match r {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {name}: {e}");
                for w in words {
                    assert!(e.message().contains(w), "{what}: {name}: no {w:?} in: {e}");
                }
                refused += 1;
            }
            Ok(()) => panic!("{what}: {name} was accepted"),
        }
        assert!(img.sha() == before, "{what}: {name} changed the image");
    }
    assert_eq!(refused, only.len());
}

/// 7.2: one cleared bit in a block bitmap (the counts left as they were) over
/// another file's data block; a zeroed byte over the inode table's bits.
#[test]
fn engine_refuses_a_block_bitmap_that_disagrees() {
    for args in NO_CSUM {
        let t = tree(64);
        let base = Img::new(args, Some(t.path()), 16);
        base.assert_clean("fresh");
        let (bs, _, groups) = layout(&base);

        let img = Img::copy_of(&base);
        let b = bmap(&img, "/victim", 0);
        let (g, bit) = group_of(&groups, b);
        clear_bit(&img, bs, groups[g].block_bitmap, bit);
        assert!(fsck_remarks(&img) > 0, "{args:?}: e2fsck sees no damage");
        assert_writes_refused(&img, &format!("{args:?} data bit"), &["group", "e2fsck"]);
        assert!(
            super::harness::debugfs_cat(&img.path, OFFSET, "/victim")
                == fs::read(t.path().join("victim")).unwrap(),
            "{args:?}: victim changed"
        );

        // A zeroed byte over the inode table's bits (g 0): the counts are off too,
        // but the bits are what must be named.
        let img = Img::copy_of(&base);
        let it = groups[0].inode_table + 8;
        let (g, bit) = group_of(&groups, it);
        patch(&img, groups[g].block_bitmap * bs + bit / 8, |b| b[0] = 0);
        assert!(fsck_remarks(&img) > 0);
        assert_writes_refused(
            &img,
            &format!("{args:?} itable bits"),
            &["group 0", "e2fsck"],
        );
    }
}

/// 7.2: an inode bitmap that frees a live inode, with the count (raw bit) or
/// without it (debugfs freei fixes the counts): mkdir must not reuse it.
#[test]
fn engine_refuses_an_inode_bitmap_that_frees_a_live_inode() {
    for args in NO_CSUM {
        let t = tree(8);
        let base = Img::new(args, Some(t.path()), 16);
        let (bs, _, groups) = layout(&base);
        let ino: u64 = base
            .debugfs("stat /victim")
            .split("Inode: ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();

        let img = Img::copy_of(&base);
        clear_bit(&img, bs, groups[0].inode_bitmap, ino - 1);
        assert!(fsck_remarks(&img) > 0);
        assert_refused_ops(
            &img,
            &format!("{args:?} raw"),
            &["group 0", "e2fsck"],
            &["create", "mkdir", "unlink"],
        );

        // The bit and the descriptor's count both say free: only the inode
        // record itself tells.
        let img = Img::copy_of(&base);
        img.debugfs_w(&format!("freei <{ino}>"));
        let (_, dump) = run(Command::new("dumpe2fs").arg(img.spec()));
        let free0: u64 = dump
            .split("(Blocks ")
            .nth(1)
            .and_then(|g| g.split(" free inodes").next())
            .and_then(|s| s.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        img.debugfs_w(&format!("set_bg 0 free_inodes_count {}", free0 + 1));
        assert!(fsck_remarks(&img) > 0);
        let before = img.sha();
        let mut fs = img.open_rw();
        let e = fs
            .mkdir(ROOT_INO, b"newdir", &node(0o755, 1))
            .and_then(|_| fs.flush())
            .unwrap_err();
        drop(fs);
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{args:?}: {e}");
        assert!(e.message().contains(&format!("inode {ino}")), "{e}");
        assert!(img.sha() == before, "{args:?}: image changed");
    }
}

/// The superblock totals are recomputed from the descriptors (what the kernel
/// does at mount): a stale total is no reason to refuse, and the write leaves
/// e2fsck clean.
#[test]
fn engine_recomputes_superblock_totals_from_the_descriptors() {
    for args in NO_CSUM {
        let img = Img::new(args, None, 16);
        img.debugfs_w("ssv free_blocks_count 17");
        img.debugfs_w("ssv free_inodes_count 3");
        let mut fs = img.open_rw();
        let data = vec![1u8; 100_000];
        fs.create_file(ROOT_INO, b"f", &node(0o644, 1), &mut &data[..], 100_000)
            .unwrap();
        fs.flush().unwrap();
        drop(fs);
        img.assert_clean(&format!("{args:?}"));
    }
}

/// 7.7: superblocks that libext2fs or e2fsck refuse are refused, read or write.
#[test]
fn engine_refuses_superblocks_e2fsck_rejects() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["-t", "ext4"], "ssv rev_level 5", "s_rev_level"),
        (&["-t", "ext4"], "ssv checksum_type 2", "s_checksum_type"),
        (&["-t", "ext2"], "ssv first_ino 5", "s_first_ino"),
        (&["-t", "ext4"], "ssv inode_size 96", "s_inode_size"),
        (
            &["-t", "ext4", "-b", "1024"],
            "ssv inode_size 2048",
            "s_inode_size",
        ),
        (
            &["-t", "ext4", "-O", "64bit"],
            "ssv desc_size 32",
            "s_desc_size",
        ),
        (
            &["-t", "ext4", "-O", "64bit"],
            "ssv desc_size 96",
            "s_desc_size",
        ),
        (
            &["-t", "ext3", "-b", "1024"],
            "ssv first_data_block 0",
            "s_first_data_block",
        ),
        (
            &["-t", "ext3", "-b", "4096"],
            "ssv first_data_block 1",
            "s_first_data_block",
        ),
        (
            &["-t", "ext2"],
            "ssv blocks_per_group 4",
            "s_blocks_per_group",
        ),
        (
            &["-t", "ext2"],
            "ssv log_cluster_size 3",
            "s_log_cluster_size",
        ),
    ];
    for (args, req, field) in cases {
        let img = Img::new(args, None, 16);
        img.debugfs_w(req);
        // e2fsck refuses the primary (it may then go on from a backup and exit 0).
        let (rc, out) = img.fsck();
        assert!(
            rc != 0 || out.contains("Superblock invalid") || out.contains("superblock is corrupt"),
            "{req}: e2fsck -fn accepts it:\n{out}"
        );
        let before = img.sha();
        for writable in [false, true] {
            let r = if writable {
                Ext::open_read_write(img.window(Access::ReadWrite)).map(|_| ())
            } else {
                Ext::open_read_only(img.window(Access::ReadOnly)).map(|_| ())
            };
            let e = r.expect_err(req);
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{req}: {e}");
            assert!(e.message().contains(field), "{req}: {e}");
        }
        assert!(img.sha() == before, "{req}: image changed");
    }
}

/// 7.8: a zero metadata pointer, overlapping metadata, and a bad-blocks list
/// over an inode table are refused at open; a block map claiming free blocks is
/// refused before anything is written.
#[test]
fn engine_refuses_invalid_metadata_pointers_and_bad_blocks_over_metadata() {
    for args in NO_CSUM {
        let t = tree(20);
        let base = Img::new(args, Some(t.path()), 16);
        let (_, _, groups) = layout(&base);
        assert!(groups.len() >= 2, "{args:?}");

        let img = Img::copy_of(&base);
        img.debugfs_w("set_bg 1 block_bitmap 0");
        assert!(fsck_remarks(&img) > 0);
        assert_writes_refused(
            &img,
            &format!("{args:?} zero"),
            &["group 1", "pointer is 0"],
        );

        let img = Img::copy_of(&base);
        img.debugfs_w(&format!(
            "set_bg 1 inode_bitmap {}",
            groups[0].inode_table + 1
        ));
        assert!(fsck_remarks(&img) > 0);
        assert_writes_refused(&img, &format!("{args:?} overlap"), &["overlaps", "e2fsck"]);

        let img = Img::copy_of(&base);
        let it = groups[1].inode_table;
        img.debugfs_w(&format!("sif <1> block[0] {it}"));
        img.debugfs_w("sif <1> size 1024");
        img.debugfs_w("sif <1> blocks 2");
        assert!(fsck_remarks(&img) > 0);
        assert_writes_refused(
            &img,
            &format!("{args:?} badblocks"),
            &["bad-blocks", "inode table of group 1"],
        );

        // A block map (of the victim) that claims a block the bitmap calls free.
        let img = Img::copy_of(&base);
        let (bs, _, _) = layout(&img);
        let free: u64 = img.len / bs - 40;
        let (_, testb) = run(Command::new("debugfs")
            .args(["-R", &format!("testb {free}")])
            .arg(img.spec()));
        assert!(testb.contains("not in use"), "{testb}");
        // The second block of an indirect map, or ee_start_lo of the first
        // extent of a depth-0 extent tree.
        let slot = if args.contains(&"ext4") { 5 } else { 1 };
        img.debugfs_w(&format!("sif /victim block[{slot}] {free}"));
        let remarks = fsck_remarks(&img);
        assert!(remarks > 0);
        // Without metadata_csum the ownership scan finds it at open, so every
        // write is refused, naming the block.
        assert_writes_refused(
            &img,
            &format!("{args:?} map"),
            &[&format!("block {free}"), "e2fsck"],
        );
        assert_eq!(fsck_remarks(&img), remarks);
    }
}

/// 7.3: a corrupt indirect block (ext2/3 block map) is found before any data is
/// written: the replace and the unlink are refused with the image unchanged.
#[test]
fn engine_refuses_a_corrupt_indirect_block_before_writing() {
    for args in &NO_CSUM[..2] {
        let t = tree(80);
        let img = Img::new(args, Some(t.path()), 16);
        let (bs, _, _) = layout(&img);
        let stat = img.debugfs("stat /victim");
        let ind: u64 = stat
            .split("(IND):")
            .nth(1)
            .and_then(|s| {
                s.split(|c: char| !c.is_ascii_digit())
                    .find(|s| !s.is_empty())
            })
            .unwrap_or_else(|| panic!("{args:?}: no IND in {stat}"))
            .parse()
            .unwrap();
        // Pointers into the free tail of the filesystem, in range but not the file's.
        let f = fs::OpenOptions::new().write(true).open(&img.path).unwrap();
        let last = img.len / bs;
        let fake: Vec<u8> = (0..bs / 4)
            .flat_map(|i| u32::try_from(last - 50 + i % 40).unwrap().to_le_bytes())
            .collect();
        f.write_all_at(&fake, OFFSET + ind * bs).unwrap();
        drop(f);
        assert!(fsck_remarks(&img) > 0);
        assert_refused_ops(
            &img,
            &format!("{args:?}"),
            &["inode", "e2fsck"],
            &["replace", "unlink"],
        );
    }
}

/// 7.10: refusals that say what is wrong, where, and what to do.
#[test]
fn engine_refusal_messages_name_the_cause_and_the_remedy() {
    // Inodes short, blocks plenty: the message is about inodes.
    let img = Img::new(&["-t", "ext4", "-N", "16"], None, 16);
    let mut fs = img.open_rw();
    let mut i = 0;
    let e = loop {
        match fs.mkdir(ROOT_INO, format!("d{i}").as_bytes(), &node(0o755, 1)) {
            Ok(_) => i += 1,
            Err(e) => break e,
        }
        assert!(i < 100);
    };
    assert_eq!(e.kind(), ErrorKind::NoSpace);
    assert!(e.message().contains("inode"), "{e}");
    assert!(!e.message().contains("not enough space"), "{e}");

    // meta_bg: the writer's refusal, not the reader's.
    let img = Img::new(&["-t", "ext4", "-O", "meta_bg,^resize_inode"], None, 16);
    let e = Ext::open_read_write(img.window(Access::ReadWrite))
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        e.message().contains("meta_bg") && e.message().contains("writer"),
        "{e}"
    );
    assert!(!e.message().contains("reader"), "{e}");

    // A bad primary superblock: the hint names a backup that e2fsck takes.
    for (args, bs) in [
        (&["-t", "ext2", "-b", "1024"][..], 1024u64),
        (&["-t", "ext4", "-b", "4096"][..], 4096),
    ] {
        let img = Img::new(args, None, 160);
        patch(&img, 1024 + 0x38, |b| b[0] = 0);
        let e = Ext::open_read_only(img.window(Access::ReadOnly))
            .err()
            .unwrap();
        let block = if bs == 1024 { 8193 } else { 32768 };
        let hint = format!("e2fsck -b {block} -B {bs}");
        assert!(e.message().contains(&hint), "{e}");
        let (rc, out) = run(Command::new("e2fsck")
            .args(["-fn", "-b", &block.to_string(), "-B", &bs.to_string()])
            .arg(img.spec()));
        assert!(rc == 0 || rc == 4, "{hint}: {out}");
        assert!(!out.contains("Bad magic"), "{out}");
    }
}

/// 7.8 with metadata_csum (no ownership scan at open): an extent that points at
/// free blocks, with a valid inode checksum, is refused by the replace and the
/// unlink that would free or reuse them, with the image unchanged.
#[test]
fn engine_refuses_an_extent_claiming_free_blocks_before_writing() {
    let t = tree(8);
    let img = Img::new(&["-t", "ext4", "-b", "1024"], Some(t.path()), 16);
    let (bs, _, _) = layout(&img);
    let free = img.len / bs - 40;
    let (_, testb) = run(Command::new("debugfs")
        .args(["-R", &format!("testb {free} 8")])
        .arg(img.spec()));
    assert!(!testb.contains("marked in use"), "{testb}");
    // i_block[5] is ee_start_lo of the first extent of a depth-0 tree.
    img.debugfs_w(&format!("sif /victim block[5] {free}"));
    assert!(img.debugfs("ex /victim").contains(&free.to_string()));
    assert!(fsck_remarks(&img) > 0);
    assert_refused_ops(
        &img,
        "csum extent",
        &[&format!("block {free}"), "calls free", "e2fsck"],
        &["replace", "unlink"],
    );
}

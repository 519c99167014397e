//! Directory blocks on real images: our `ext::dir` reads directories that mke2fs
//! and `e2fsck -D` built, and the blocks it writes back are judged by
//! `e2fsck -fn`, `debugfs ls` and `debugfs htree_dump`.
//!
//! Block allocation is the engine's job, not this module's: the image-backed
//! `DirBlocks` here hands out blocks that `debugfs expand_dir` added beforehand
//! (exactly as many as a dry run on an in-memory copy needed).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use domuify::ext::csum::crc32c;
use domuify::ext::dir::{self, DirBlocks, DirCtx, HashParams};
use domuify::{Error, ErrorKind, Result};

use crate::harness::run_text as run;

fn debugfs(img: &Path, req: &str) -> String {
    let (out, _) = crate::harness::debugfs_raw(&img.display().to_string(), req);
    String::from_utf8_lossy(&out).into_owned()
}

fn fsck_clean(img: &Path) {
    let (rc, out) = run(Command::new("e2fsck").arg("-fn").arg(img));
    assert_eq!(rc, 0, "e2fsck -fn not clean:\n{out}");
}

/// The filesystem and directory parameters, read with dumpe2fs and debugfs.
struct Fs {
    img: PathBuf,
    block_size: usize,
    fs_seed: Option<u32>,
    hash: HashParams,
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim())
}

fn uuid_bytes(s: &str) -> [u8; 16] {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap();
    }
    out
}

impl Fs {
    fn open(img: &Path) -> Fs {
        let (_, h) = run(Command::new("dumpe2fs").arg("-h").arg(img));
        let block_size: usize = field(&h, "Block size:").unwrap().parse().unwrap();
        let features = field(&h, "Filesystem features:").unwrap();
        let csum = features.split_whitespace().any(|f| f == "metadata_csum");
        let fs_seed = csum.then(|| match field(&h, "Checksum seed:") {
            Some(s) => u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap(),
            None => crc32c(!0, &uuid_bytes(field(&h, "Filesystem UUID:").unwrap())),
        });
        let seed_bytes = uuid_bytes(field(&h, "Directory Hash Seed:").unwrap());
        let mut seed = [0u32; 4];
        for (i, w) in seed.iter_mut().enumerate() {
            let b = &seed_bytes[i * 4..i * 4 + 4];
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        let default_version = match field(&h, "Default directory hash:").unwrap() {
            "legacy" => 0,
            "half_md4" => 1,
            "tea" => 2,
            other => panic!("hash {other}"),
        };
        let unsigned = field(&h, "Filesystem flags:")
            .unwrap()
            .contains("unsigned_directory_hash");
        Fs {
            img: img.to_path_buf(),
            block_size,
            fs_seed,
            hash: HashParams {
                seed,
                default_version,
                unsigned,
            },
        }
    }

    /// The context and physical blocks of directory `path`.
    fn dir(&self, path: &str) -> (DirCtx, Vec<u64>) {
        let stat = debugfs(&self.img, &format!("stat {path}"));
        let first = stat.lines().next().unwrap();
        let ino: u32 = first.split_whitespace().nth(1).unwrap().parse().unwrap();
        let flags = first.split("Flags: 0x").nth(1).unwrap().trim();
        let flags = u32::from_str_radix(flags, 16).unwrap();
        let generation: u32 = field(&stat, "Generation:")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let csum_seed = self.fs_seed.map(|s| {
            let s = crc32c(s, &ino.to_le_bytes());
            crc32c(s, &generation.to_le_bytes())
        });
        let blocks: Vec<u64> = debugfs(&self.img, &format!("blocks {path}"))
            .split_whitespace()
            .map(|b| b.parse().unwrap())
            .collect();
        let ctx = DirCtx {
            block_size: self.block_size,
            ino,
            csum_seed,
            filetype: true,
            indexed: flags & 0x1000 != 0,
            hash: self.hash,
        };
        (ctx, blocks)
    }
}

/// A directory's blocks inside the image file; `append` hands out blocks that
/// `debugfs expand_dir` added (the directory's size already counts them).
struct ImageDir {
    file: File,
    bs: usize,
    phys: Vec<u64>,
    used: u32,
}

impl DirBlocks for ImageDir {
    fn block_count(&self) -> u32 {
        self.used
    }
    fn read(&mut self, lblk: u32, buf: &mut [u8]) -> Result<()> {
        let p = *self
            .phys
            .get(lblk as usize)
            .filter(|_| lblk < self.used)
            .unwrap();
        self.file
            .read_exact_at(buf, p * self.bs as u64)
            .map_err(|e| Error::io("read", e))
    }
    fn write(&mut self, lblk: u32, buf: &[u8]) -> Result<()> {
        assert!(lblk < self.used, "write past the end");
        let p = self.phys[lblk as usize];
        self.file
            .write_all_at(buf, p * self.bs as u64)
            .map_err(|e| Error::io("write", e))
    }
    fn append(&mut self) -> Result<u32> {
        if (self.used as usize) < self.phys.len() {
            self.used += 1;
            Ok(self.used - 1)
        } else {
            Err(Error::new(ErrorKind::NoSpace, "no spare expanded block"))
        }
    }
}

/// The same directory copied into memory, for dry runs.
struct MemCopy {
    blocks: Vec<Vec<u8>>,
    appended: u32,
}

impl DirBlocks for MemCopy {
    fn block_count(&self) -> u32 {
        self.blocks.len() as u32
    }
    fn read(&mut self, lblk: u32, buf: &mut [u8]) -> Result<()> {
        buf.copy_from_slice(&self.blocks[lblk as usize]);
        Ok(())
    }
    fn write(&mut self, lblk: u32, buf: &[u8]) -> Result<()> {
        self.blocks[lblk as usize].copy_from_slice(buf);
        Ok(())
    }
    fn append(&mut self) -> Result<u32> {
        let n = self.blocks[0].len();
        self.blocks.push(vec![0x5A; n]);
        self.appended += 1;
        Ok(self.blocks.len() as u32 - 1)
    }
}

fn open_dir(fs: &Fs, path: &str, count: Option<usize>) -> (DirCtx, ImageDir) {
    let (ctx, phys) = fs.dir(path);
    let used = count.unwrap_or(phys.len()) as u32;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fs.img)
        .unwrap();
    (
        ctx,
        ImageDir {
            file,
            bs: fs.block_size,
            phys,
            used,
        },
    )
}

fn mem_copy(d: &mut ImageDir) -> MemCopy {
    let mut blocks = Vec::new();
    for l in 0..d.used {
        let mut b = vec![0u8; d.bs];
        d.read(l, &mut b).unwrap();
        blocks.push(b);
    }
    MemCopy {
        blocks,
        appended: 0,
    }
}

/// `debugfs ls -p` of a directory: name -> inode, `.` and `..` excluded.
fn debugfs_ls(img: &Path, path: &str) -> BTreeMap<Vec<u8>, u32> {
    let mut out = BTreeMap::new();
    for line in debugfs(img, &format!("ls -p {path}")).lines() {
        // /ino/mode/uid/gid/name/size/
        let parts: Vec<&str> = line.split('/').collect();
        if parts.len() < 7 {
            continue;
        }
        let name = parts[5].as_bytes().to_vec();
        let ino: u32 = parts[1].parse().unwrap();
        // debugfs also lists unused records (inode 0) that start a block.
        if name == b"." || name == b".." || ino == 0 {
            continue;
        }
        out.insert(name, ino);
    }
    out
}

fn name_for(i: usize, long: bool) -> String {
    if long {
        // 40 to 130 bytes: few per 1 KiB leaf, so leaves split and the tree grows;
        // some with bytes >= 0x80, where signed and unsigned hashing differ.
        let accent = if i % 3 == 0 { "é" } else { "" };
        format!("moved-{i:05}-{accent}{}", "abcdefghij".repeat(3 + i % 10))
    } else {
        format!("file_{i}_{}", "x".repeat(i % 23))
    }
}

/// Build an image: `/big` with `big` files, `/src` with `src` files (long names),
/// `/lin` with 40 files; `index` runs `e2fsck -fyD` so the big directories are
/// htrees.
/// Directory hash settings of a test image: the default algorithm (None keeps
/// mke2fs's half_md4) and the unsigned-char flag.
#[derive(Clone, Copy)]
struct Hash(Option<&'static str>, bool);

const DEFAULT_HASH: Hash = Hash(None, false);

fn make_image(
    dir: &Path,
    bs: usize,
    csum: bool,
    big: usize,
    src: usize,
    index: bool,
    hash: Hash,
) -> PathBuf {
    let tree = dir.join("tree");
    for (d, n, long) in [("big", big, false), ("src", src, true), ("lin", 40, false)] {
        let p = tree.join(d);
        std::fs::create_dir_all(&p).unwrap();
        for i in 0..n {
            File::create(p.join(name_for(i, long))).unwrap();
        }
    }
    let img = dir.join("img");
    let features = if csum {
        "metadata_csum"
    } else {
        "^metadata_csum"
    };
    let (rc, out) = run(Command::new("mke2fs")
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            &bs.to_string(),
            "-N",
            "16384",
            "-O",
            features,
            "-d",
        ])
        .arg(&tree)
        .arg(&img)
        .arg(if bs == 65536 { "256M" } else { "64M" }));
    assert_eq!(rc, 0, "{out}");
    if let Some(alg) = hash.0 {
        let (rc, out) = run(Command::new("tune2fs")
            .arg("-E")
            .arg(format!("hash_alg={alg}"))
            .arg(&img));
        assert_eq!(rc, 0, "{out}");
    }
    if hash.1 {
        debugfs_w(&img, "ssv flags 2");
    }
    if index {
        let (rc, out) = run(Command::new("e2fsck").arg("-fyD").arg(&img));
        assert!(rc <= 1, "e2fsck -fyD: {rc} {out}");
    }
    fsck_clean(&img);
    img
}

/// Compare name maps, printing only the first differences.
fn assert_same(ours: &BTreeMap<Vec<u8>, u32>, theirs: &BTreeMap<Vec<u8>, u32>, what: &str) {
    let only_ours: Vec<_> = ours
        .iter()
        .filter(|(k, v)| theirs.get(*k) != Some(v))
        .take(5)
        .collect();
    let only_theirs: Vec<_> = theirs
        .iter()
        .filter(|(k, v)| ours.get(*k) != Some(v))
        .take(5)
        .collect();
    let show = |v: &Vec<(&Vec<u8>, &u32)>| -> Vec<String> {
        v.iter()
            .map(|(k, i)| format!("{}={i}", String::from_utf8_lossy(k)))
            .collect()
    };
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{what}: {} vs {} entries; ours only {:?}; debugfs only {:?}",
        ours.len(),
        theirs.len(),
        show(&only_ours),
        show(&only_theirs)
    );
}

fn check_matches_debugfs(fs: &Fs, path: &str) {
    let (ctx, mut d) = open_dir(fs, path, None);
    let ours: BTreeMap<Vec<u8>, u32> = dir::entries(&mut d, &ctx)
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.ino))
        .collect();
    let theirs = debugfs_ls(&fs.img, path);
    assert_same(&ours, &theirs, path);
    for (name, ino) in &theirs {
        let e = dir::lookup(&mut d, &ctx, name)
            .unwrap()
            .expect("lookup finds it");
        assert_eq!(e.ino, *ino);
    }
    assert!(dir::lookup(&mut d, &ctx, b"no-such-name")
        .unwrap()
        .is_none());
    dir::verify(&mut d, &ctx).unwrap();
}

/// Move every entry of `/src` into `/big` (same inode, same name) through our
/// code; link counts stay right, so a clean e2fsck judges the blocks alone.
fn move_all(fs: &Fs, from: &str, to: &str) -> usize {
    // Dry run on a copy to learn how many blocks the target needs.
    let (sctx, mut sdir) = open_dir(fs, from, None);
    let moved = dir::entries(&mut sdir, &sctx).unwrap();
    let (tctx, mut tdir) = open_dir(fs, to, None);
    let mut dry = mem_copy(&mut tdir);
    for e in &moved {
        let cost = dir::add_entry_cost(&mut dry, &tctx, &e.name).unwrap();
        let before = dry.appended;
        dir::add_entry(&mut dry, &tctx, &e.name, e.ino, e.file_type).unwrap();
        assert_eq!(dry.appended - before, cost, "add_entry_cost was wrong");
    }
    let extra = dry.appended as usize;
    let original = tdir.phys.len();
    for _ in 0..extra {
        debugfs_w(&fs.img, &format!("expand_dir {to}"));
    }
    let (tctx, mut tdir) = open_dir(fs, to, Some(original));
    assert_eq!(tdir.phys.len(), original + extra);
    for e in &moved {
        let r = dir::remove_entry(&mut sdir, &sctx, &e.name).unwrap();
        assert_eq!(&r, e);
        dir::add_entry(&mut tdir, &tctx, &e.name, e.ino, e.file_type).unwrap();
    }
    assert_eq!(
        tdir.used as usize,
        tdir.phys.len(),
        "not every expanded block used"
    );
    assert!(dir::is_empty(&mut sdir, &sctx).unwrap());
    dir::verify(&mut tdir, &tctx).unwrap();
    extra
}

fn debugfs_w(img: &Path, req: &str) {
    crate::harness::debugfs_w(img, 0, req);
}

fn htree_round_trip(bs: usize, csum: bool, hash: Hash) {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_image(tmp.path(), bs, csum, 3000, 1500, true, hash);
    let fs = Fs::open(&img);
    assert_eq!(fs.hash.unsigned, hash.1);
    if hash.0 == Some("tea") {
        assert_eq!(fs.hash.default_version, 2);
    }
    let (bctx, _) = fs.dir("/big");
    assert!(bctx.indexed, "/big is not an htree after e2fsck -D");
    assert_eq!(bctx.csum_seed.is_some(), csum);
    for d in ["/big", "/src", "/lin"] {
        check_matches_debugfs(&fs, d);
    }
    let before_big = debugfs_ls(&img, "/big");
    let before_src = debugfs_ls(&img, "/src");
    let extra = move_all(&fs, "/src", "/big");
    assert!(extra > 0, "no leaf split happened");
    fsck_clean(&img);
    let mut want = before_big.clone();
    want.extend(before_src);
    assert_same(&debugfs_ls(&img, "/big"), &want, "/big after");
    assert_same(&debugfs_ls(&img, "/src"), &BTreeMap::new(), "/src after");
    let dump = debugfs(&img, "htree_dump /big");
    assert!(dump.contains("Root node dump"), "{dump}");
    check_matches_debugfs(&fs, "/big");
    // At 1 KiB the 4500 names need more leaves than the root holds: a level was added.
    if bs == 1024 {
        assert!(dump.contains("Indirect levels: 1"), "{}", &dump[..400]);
        // ... and the nodes below the root were split: the root has several.
        let root_count: usize = field(&dump, "Number of entries (count):")
            .unwrap()
            .parse()
            .unwrap();
        assert!(root_count > 1, "{}", &dump[..400]);
    }

    // Remove half of them again (index left as is), then e2fsck still agrees.
    let (ctx, mut d) = open_dir(&fs, "/big", None);
    let (lctx, mut lin) = open_dir(&fs, "/lin", None);
    // Names that /lin does not hold already.
    let names: Vec<Vec<u8>> = want
        .keys()
        .filter(|n| n.starts_with(b"moved-"))
        .cloned()
        .collect();
    let mut gone = BTreeSet::new();
    for n in names.iter().step_by(2).take(30) {
        // Move into the linear /lin so link counts stay right.
        let e = dir::remove_entry(&mut d, &ctx, n).unwrap();
        dir::add_entry(&mut lin, &lctx, &e.name, e.ino, e.file_type).unwrap_or_else(|err| {
            // /lin may need a new block: not available here, put it back.
            assert_eq!(err.kind(), ErrorKind::NoSpace);
            dir::add_entry(&mut d, &ctx, &e.name, e.ino, e.file_type).unwrap();
        });
        if dir::lookup(&mut lin, &lctx, n).unwrap().is_some() {
            gone.insert(n.clone());
        }
    }
    assert!(!gone.is_empty());
    fsck_clean(&img);
    let ls = debugfs_ls(&img, "/big");
    for n in &gone {
        assert!(!ls.contains_key(n));
    }
    check_matches_debugfs(&fs, "/big");
    check_matches_debugfs(&fs, "/lin");

    // Everything back out of /big into /src: every leaf of /big ends up empty
    // under an unchanged index, which e2fsck must accept.
    let mut all = debugfs_ls(&img, "/src");
    all.extend(debugfs_ls(&img, "/big"));
    move_all(&fs, "/big", "/src");
    fsck_clean(&img);
    assert_same(&debugfs_ls(&img, "/big"), &BTreeMap::new(), "/big emptied");
    assert_same(&debugfs_ls(&img, "/src"), &all, "/src refilled");
    check_matches_debugfs(&fs, "/src");
}

#[test]
fn htree_1k_csum() {
    htree_round_trip(1024, true, DEFAULT_HASH);
}

#[test]
fn htree_1k_nocsum_tea_unsigned() {
    htree_round_trip(1024, false, Hash(Some("tea"), true));
}

#[test]
fn htree_4k_csum_legacy() {
    htree_round_trip(4096, true, Hash(Some("legacy"), false));
}

#[test]
fn htree_4k_nocsum_half_md4_unsigned() {
    htree_round_trip(4096, false, Hash(None, true));
}

/// A block from `new_dir_block` replaces the one debugfs gave a new directory:
/// e2fsck accepts it (record layout, '..' link, checksum tail).
fn new_dir_block_judged(bs: usize, csum: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_image(tmp.path(), bs, csum, 0, 0, false, DEFAULT_HASH);
    debugfs_w(&img, "mkdir /big/fresh");
    let fs = Fs::open(&img);
    let (_, parent) = open_dir(&fs, "/big", None);
    let (pctx, _) = fs.dir("/big");
    drop(parent);
    let (ctx, mut d) = open_dir(&fs, "/big/fresh", None);
    assert_eq!(d.phys.len(), 1);
    // Scribble first, so the test cannot pass on debugfs's own block.
    d.write(0, &vec![0xEE; bs]).unwrap();
    d.write(0, &dir::new_dir_block(&ctx, pctx.ino)).unwrap();
    fsck_clean(&img);
    assert!(dir::is_empty(&mut d, &ctx).unwrap());
    assert_eq!(
        dir::lookup(&mut d, &ctx, b"..").unwrap().unwrap().ino,
        pctx.ino
    );
    let ls = debugfs(&img, "ls -p /big/fresh");
    assert!(ls.contains(&format!("/{}/040755/", ctx.ino)), "{ls}");
    assert!(ls.contains(&format!("/{}/040755/", pctx.ino)), "{ls}");
}

#[test]
fn new_dir_block_1k_csum() {
    new_dir_block_judged(1024, true);
}

#[test]
fn new_dir_block_4k_nocsum() {
    new_dir_block_judged(4096, false);
}

fn linear_round_trip(bs: usize, csum: bool, src: usize) {
    let tmp = tempfile::tempdir().unwrap();
    // No e2fsck -D: mke2fs -d leaves every directory linear.
    let img = make_image(tmp.path(), bs, csum, 200, src, false, DEFAULT_HASH);
    let fs = Fs::open(&img);
    let (ctx, _) = fs.dir("/lin");
    assert!(!ctx.indexed);
    for d in ["/big", "/src", "/lin"] {
        check_matches_debugfs(&fs, d);
    }
    let mut want = debugfs_ls(&img, "/lin");
    want.extend(debugfs_ls(&img, "/src"));
    let extra = move_all(&fs, "/src", "/lin");
    assert!(extra > 0);
    fsck_clean(&img);
    assert_same(&debugfs_ls(&img, "/lin"), &want, "/lin after");
    assert_same(&debugfs_ls(&img, "/src"), &BTreeMap::new(), "/src after");
    check_matches_debugfs(&fs, "/lin");
}

#[test]
fn linear_1k_csum() {
    linear_round_trip(1024, true, 300);
}

#[test]
fn linear_4k_nocsum() {
    linear_round_trip(4096, false, 300);
}

/// 64 KiB blocks: a record spanning a whole block has rec_len 65536, stored as
/// 65535 (the appended block, and /src's second block once emptied).
#[test]
fn linear_64k_nocsum() {
    linear_round_trip(65536, false, 800);
}

/// `make_linear` then clearing INDEX_FL leaves a directory e2fsck accepts, with
/// or without metadata_csum; `path` is read first (the two-level case is a tree
/// e2fsck built, read by our code before it is flattened).
fn make_linear(bs: usize, csum: bool, big: usize, src: usize, path: &str, levels: u32) {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_image(tmp.path(), bs, csum, big, src, true, DEFAULT_HASH);
    let fs = Fs::open(&img);
    let dump = debugfs(&img, &format!("htree_dump {path}"));
    assert!(
        dump.contains(&format!("Indirect levels: {levels}")),
        "{}",
        &dump[..300]
    );
    check_matches_debugfs(&fs, path);
    let before = debugfs_ls(&img, path);
    let (ctx, mut d) = open_dir(&fs, path, None);
    assert!(ctx.indexed);
    dir::make_linear(&mut d, &ctx).unwrap();
    let stat = debugfs(&img, &format!("stat {path}"));
    let flags = stat
        .lines()
        .next()
        .unwrap()
        .split("Flags: 0x")
        .nth(1)
        .unwrap()
        .trim();
    let flags = u32::from_str_radix(flags, 16).unwrap() & !0x1000;
    debugfs_w(&img, &format!("set_inode_field {path} flags {flags:#x}"));
    fsck_clean(&img);
    assert_same(&debugfs_ls(&img, path), &before, "linear again");
    check_matches_debugfs(&fs, path);
}

#[test]
fn make_linear_1k_csum_two_levels() {
    make_linear(1024, true, 0, 3000, "/src", 1);
}

#[test]
fn make_linear_4k_nocsum() {
    make_linear(4096, false, 3000, 0, "/big", 0);
}

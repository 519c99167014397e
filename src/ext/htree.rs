//! htree (dx) directories: the dx_root and dx_node blocks, lookup by hash, and
//! insertion that splits a full leaf and grows the tree.
//!
//! Layout (kernel `Documentation/filesystems/ext4/directory.rst`):
//! - block 0, the dx_root: a `.` entry (rec_len 12) and a `..` entry spanning the
//!   rest of the block, then `dx_root_info` at 0x18 and the index entries at 0x20;
//! - interior dx_nodes: a fake entry (inode 0, rec_len = block size), then the
//!   index entries at 0x8;
//! - index entries: `{hash, block}` pairs whose first `hash` slot holds
//!   `{limit, count}`; entry 0 covers every hash below entry 1's;
//! - with metadata_csum a `dx_tail {dt_reserved, dt_checksum}` follows `limit`
//!   entries (so `limit` is one entry smaller);
//! - leaves are linear blocks ([`super::dir`]). A leaf's key with the low bit set
//!   says its first names share their hash with the previous leaf's last ones.
//!
//! Depth: `indirect_levels` 0 or 1 (2 needs largedir, which is refused). When the
//! tree cannot grow any more, insertion is refused with `Unsupported` before any
//! block is written.
//!
//! Over 800 lines with its tests (about 880 of code): the index read, the insert
//! with leaf split and tree growth, and the verification all work on the one
//! dx block model kept private here.

use std::collections::BTreeSet;

use crate::error::{Error, Result};

use super::csum::crc32c;
use super::dir_block::{
    self, build_leaf, collect_live, corrupt_at, find_in, leaf_insert, read_leaf, rec_len_from_disk,
    rec_len_to_disk, rec_size, usable_end, DirBlocks, DirCtx, RawEntry,
};
use super::dirhash;
use super::Ino;
use crate::bytes::{le16, le32, put_le16, put_le32, put_u8, u8_at};

// dx_root: the `.` and `..` entries, then dx_root_info.
/// `.`'s `rec_len` (12).
const ROOT_DOT_REC_LEN: usize = 0x4;
/// `.`'s `name_len`.
const ROOT_DOT_NAME_LEN: usize = 0x6;
/// `.`'s name.
const ROOT_DOT_NAME: usize = 0x8;
/// `..`'s offset.
const ROOT_DOTDOT: usize = 0xC;
/// `dx_root_info.reserved_zero` (le32).
const ROOT_RESERVED_ZERO: usize = 0x18;
/// `dx_root_info.hash_version`.
const ROOT_HASH_VERSION: usize = 0x1C;
/// `dx_root_info.info_length` (8).
const ROOT_INFO_LENGTH: usize = 0x1D;
/// `dx_root_info.indirect_levels`.
const ROOT_INDIRECT_LEVELS: usize = 0x1E;
/// `dx_root_info.unused_flags`.
const ROOT_UNUSED_FLAGS: usize = 0x1F;
/// The root's index entries (after an 8-byte dx_root_info).
const ROOT_ENTRIES: usize = 0x20;
/// The expected `info_length`.
const ROOT_INFO_LEN: u8 = 8;

// dx_node: a fake entry, then the index entries.
/// The node's fake entry's `rec_len` (the whole block).
const NODE_FAKE_REC_LEN: usize = 0x4;
/// The node's index entries.
const NODE_ENTRIES: usize = 0x8;

// dx_countlimit, in the hash slot of entry 0.
/// `limit` (le16).
const CL_LIMIT: usize = 0x0;
/// `count` (le16).
const CL_COUNT: usize = 0x2;
// dx_entry.
/// `hash` (le32).
const DX_HASH: usize = 0x0;
/// `block` (le32, logical block in the directory).
const DX_BLOCK: usize = 0x4;
/// Size of a dx_entry.
const DX_ENTRY: usize = 8;
// dx_tail, after `limit` entries with metadata_csum.
/// `dt_reserved` (le32).
const DT_RESERVED: usize = 0x0;
/// `dt_checksum` (le32).
const DT_CHECKSUM: usize = 0x4;
/// Size of a dx_tail.
const DX_TAIL: usize = 8;

/// Deepest tree without largedir: root plus one level of nodes.
const MAX_INDIRECT_LEVELS: u8 = 1;

/// One index block (root or node) as read, kept as raw bytes and patched.
#[derive(Clone, Debug)]
struct DxBlock {
    lblk: u32,
    buf: Vec<u8>,
    /// Offset of the entries (the count/limit slot).
    eo: usize,
    count: usize,
    limit: usize,
}

impl DxBlock {
    fn hash(&self, i: usize) -> u32 {
        if i == 0 {
            0
        } else {
            le32(&self.buf, self.eo + i * DX_ENTRY + DX_HASH)
        }
    }

    fn block(&self, i: usize) -> u32 {
        le32(&self.buf, self.eo + i * DX_ENTRY + DX_BLOCK)
    }

    fn set_count(&mut self, count: usize) {
        self.count = count;
        put_le16(
            &mut self.buf,
            self.eo + CL_COUNT,
            u16::try_from(count).unwrap_or(u16::MAX),
        );
    }

    fn set_entry(&mut self, i: usize, hash: u32, block: u32) {
        if i != 0 {
            put_le32(&mut self.buf, self.eo + i * DX_ENTRY + DX_HASH, hash);
        }
        put_le32(&mut self.buf, self.eo + i * DX_ENTRY + DX_BLOCK, block);
    }

    /// Insert `(hash, block)` at position `at` (>= 1), shifting the rest up.
    /// The caller checked `count < limit`.
    fn insert(&mut self, at: usize, hash: u32, block: u32) {
        let start = self.eo + at * DX_ENTRY;
        let end = self.eo + self.count * DX_ENTRY;
        self.buf.copy_within(start..end, start + DX_ENTRY);
        let c = self.count + 1;
        self.set_count(c);
        self.set_entry(at, hash, block);
    }

    /// The last entry whose hash is <= `hash` (the kernel's dx_probe search).
    fn search(&self, hash: u32) -> usize {
        let (mut lo, mut hi) = (1usize, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.hash(mid) > hash {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo - 1
    }

    /// Write the dx tail checksum (metadata_csum).
    fn seal(&mut self, ctx: &DirCtx) {
        if let Some(seed) = ctx.csum_seed {
            let t = self.eo + self.limit * DX_ENTRY;
            let c = dx_csum(seed, &self.buf, self.eo, self.count, t);
            put_le32(&mut self.buf, t + DT_CHECKSUM, c);
        }
    }
}

/// `ext4_dx_csum`: crc32c over the block up to the last used entry, then the
/// tail's reserved word, then a zero checksum word.
fn dx_csum(seed: u32, buf: &[u8], eo: usize, count: usize, tail: usize) -> u32 {
    let size = eo + count * DX_ENTRY;
    let c = crc32c(seed, buf.get(..size).unwrap_or(&[]));
    let c = crc32c(
        c,
        buf.get(tail + DT_RESERVED..tail + DT_CHECKSUM)
            .unwrap_or(&[0; 4]),
    );
    crc32c(c, &[0u8; 4])
}

/// The `limit` an index block must have.
fn expected_limit(ctx: &DirCtx, eo: usize) -> usize {
    let tail = if ctx.csum_seed.is_some() { DX_TAIL } else { 0 };
    (ctx.block_size - eo - tail) / DX_ENTRY
}

/// Parse and check an index block's count/limit, checksum and entries.
fn parse_dx(ctx: &DirCtx, nblocks: u32, lblk: u32, buf: Vec<u8>, eo: usize) -> Result<DxBlock> {
    let limit = usize::from(le16(&buf, eo + CL_LIMIT));
    let count = usize::from(le16(&buf, eo + CL_COUNT));
    let want = expected_limit(ctx, eo);
    if limit != want {
        return Err(corrupt_at(
            ctx,
            lblk,
            eo,
            format!("htree limit {limit}, expected {want}"),
        ));
    }
    if count == 0 || count > limit {
        return Err(corrupt_at(
            ctx,
            lblk,
            eo + CL_COUNT,
            format!("htree count {count} (limit {limit})"),
        ));
    }
    if let Some(seed) = ctx.csum_seed {
        let t = eo + limit * DX_ENTRY;
        let have = le32(&buf, t + DT_CHECKSUM);
        let want = dx_csum(seed, &buf, eo, count, t);
        if have != want {
            return Err(corrupt_at(
                ctx,
                lblk,
                t + DT_CHECKSUM,
                format!("htree index checksum {have:#010x}, expected {want:#010x}"),
            ));
        }
    }
    let dx = DxBlock {
        lblk,
        buf,
        eo,
        count,
        limit,
    };
    for i in 0..count {
        let b = dx.block(i);
        if b == 0 || b >= nblocks {
            return Err(corrupt_at(
                ctx,
                lblk,
                eo + i * DX_ENTRY + DX_BLOCK,
                format!("htree entry {i} points to block {b} of {nblocks}"),
            ));
        }
        if i >= 2 && dx.hash(i) < dx.hash(i - 1) {
            return Err(corrupt_at(
                ctx,
                lblk,
                eo + i * DX_ENTRY,
                format!("htree entry {i}: hashes out of order"),
            ));
        }
    }
    Ok(dx)
}

/// The dx_root, checked.
struct Root {
    dx: DxBlock,
    /// The version to hash with (stored version + unsigned flag).
    version: u8,
    levels: u8,
}

fn read_block(blocks: &mut dyn DirBlocks, ctx: &DirCtx, lblk: u32) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; ctx.block_size];
    blocks.read(lblk, &mut buf)?;
    Ok(buf)
}

fn read_root(blocks: &mut dyn DirBlocks, ctx: &DirCtx) -> Result<Root> {
    let nblocks = blocks.block_count();
    if nblocks < 2 {
        return Err(corrupt_at(
            ctx,
            0,
            0,
            format!("indexed directory of {nblocks} block(s)"),
        ));
    }
    let buf = read_block(blocks, ctx, 0)?;
    if buf.len() != ctx.block_size || ctx.block_size < 1024 {
        return Err(Error::invalid("directory block buffer of the wrong size"));
    }
    let bs = ctx.block_size;
    let dot_ok = rec_len_from_disk(le16(&buf, ROOT_DOT_REC_LEN), bs) == 12
        && u8_at(&buf, ROOT_DOT_NAME_LEN) == 1
        && u8_at(&buf, ROOT_DOT_NAME) == b'.';
    let dotdot_ok = rec_len_from_disk(le16(&buf, ROOT_DOTDOT + ROOT_DOT_REC_LEN), bs) == bs - 12
        && u8_at(&buf, ROOT_DOTDOT + ROOT_DOT_NAME_LEN) == 2
        && buf.get(ROOT_DOTDOT + ROOT_DOT_NAME..ROOT_DOTDOT + ROOT_DOT_NAME + 2) == Some(b"..");
    if !dot_ok || !dotdot_ok {
        return Err(corrupt_at(ctx, 0, 0, "htree root without '.' and '..'"));
    }
    let stored = u8_at(&buf, ROOT_HASH_VERSION);
    let info_length = u8_at(&buf, ROOT_INFO_LENGTH);
    let levels = u8_at(&buf, ROOT_INDIRECT_LEVELS);
    let flags = u8_at(&buf, ROOT_UNUSED_FLAGS);
    if le32(&buf, ROOT_RESERVED_ZERO) != 0 {
        return Err(corrupt_at(
            ctx,
            0,
            ROOT_RESERVED_ZERO,
            "htree root reserved_zero is set",
        ));
    }
    if info_length != ROOT_INFO_LEN {
        return Err(corrupt_at(
            ctx,
            0,
            ROOT_INFO_LENGTH,
            format!("htree root info_length {info_length}"),
        ));
    }
    if flags & 1 != 0 {
        return Err(corrupt_at(
            ctx,
            0,
            ROOT_UNUSED_FLAGS,
            format!("htree root flags {flags:#x}"),
        ));
    }
    match stored {
        dirhash::DX_HASH_LEGACY | dirhash::DX_HASH_HALF_MD4 | dirhash::DX_HASH_TEA => {}
        6 => {
            return Err(Error::unsupported(format!(
                "directory inode {}: siphash directory index",
                ctx.ino
            )))
        }
        v => {
            return Err(corrupt_at(
                ctx,
                0,
                ROOT_HASH_VERSION,
                format!("htree root hash version {v}"),
            ))
        }
    }
    if levels > MAX_INDIRECT_LEVELS {
        let msg = format!("htree of {levels} indirect levels");
        return Err(if levels == 2 {
            Error::unsupported(format!("directory inode {}: {msg} (largedir)", ctx.ino))
        } else {
            corrupt_at(ctx, 0, ROOT_INDIRECT_LEVELS, msg)
        });
    }
    let dx = parse_dx(ctx, nblocks, 0, buf, ROOT_ENTRIES)?;
    Ok(Root {
        dx,
        version: dirhash::effective_version(stored, ctx.hash.unsigned),
        levels,
    })
}

fn read_node(blocks: &mut dyn DirBlocks, ctx: &DirCtx, lblk: u32) -> Result<DxBlock> {
    let buf = read_block(blocks, ctx, lblk)?;
    let fake_ok = le32(&buf, 0) == 0
        && rec_len_from_disk(le16(&buf, NODE_FAKE_REC_LEN), ctx.block_size) == ctx.block_size;
    if !fake_ok {
        return Err(corrupt_at(
            ctx,
            lblk,
            0,
            "htree node without its fake entry",
        ));
    }
    parse_dx(ctx, blocks.block_count(), lblk, buf, NODE_ENTRIES)
}

/// The index path to a hash: the root and (with one indirect level) a node, each
/// with the entry taken.
struct Path {
    version: u8,
    levels: u8,
    /// (block, entry index) from the root down.
    frames: Vec<(DxBlock, usize)>,
}

impl Path {
    fn leaf(&self) -> u32 {
        self.frames.last().map(|(b, at)| b.block(*at)).unwrap_or(0)
    }
}

fn probe(blocks: &mut dyn DirBlocks, ctx: &DirCtx, root: Root, hash: u32) -> Result<Path> {
    let at = root.dx.search(hash);
    let mut frames = vec![(root.dx, at)];
    for _ in 0..root.levels {
        let Some((b, at)) = frames.last() else { break };
        let child = b.block(*at);
        let node = read_node(blocks, ctx, child)?;
        let at = node.search(hash);
        frames.push((node, at));
    }
    Ok(Path {
        version: root.version,
        levels: root.levels,
        frames,
    })
}

/// Step to the next leaf in hash order if it may hold names with `hash` (the
/// kernel's ext4_htree_next_block). Returns false at the end of the chain.
fn next_leaf(blocks: &mut dyn DirBlocks, ctx: &DirCtx, path: &mut Path, hash: u32) -> Result<bool> {
    // Find the deepest frame that has a next entry.
    let mut level = path.frames.len();
    loop {
        if level == 0 {
            return Ok(false);
        }
        level -= 1;
        let Some((b, at)) = path.frames.get_mut(level) else {
            return Ok(false);
        };
        if *at + 1 < b.count {
            *at += 1;
            if b.hash(*at) & !1 != hash {
                return Ok(false);
            }
            break;
        }
    }
    // Descend to the first entry below.
    path.frames.truncate(level + 1);
    while path.frames.len() <= usize::from(path.levels) {
        let child = path.leaf();
        let node = read_node(blocks, ctx, child)?;
        path.frames.push((node, 0));
    }
    Ok(true)
}

fn name_hash(path_version: u8, ctx: &DirCtx, name: &[u8]) -> Result<(u32, u32)> {
    dirhash::dirhash(name, path_version, &ctx.hash.seed)
}

/// The leaf holding `name`, if any: (leaf block, path).
fn find_leaf(blocks: &mut dyn DirBlocks, ctx: &DirCtx, name: &[u8]) -> Result<(Option<u32>, Path)> {
    let root = read_root(blocks, ctx)?;
    let (hash, _) = name_hash(root.version, ctx, name)?;
    let mut path = probe(blocks, ctx, root, hash)?;
    // Each step moves forward in the index, so this ends; bound it anyway.
    for _ in 0..=blocks.block_count() {
        let lblk = path.leaf();
        let (buf, slots) = read_leaf(blocks, ctx, lblk)?;
        if find_in(&slots, &buf, name).is_some() {
            return Ok((Some(lblk), path));
        }
        if !next_leaf(blocks, ctx, &mut path, hash)? {
            break;
        }
    }
    Ok((None, path))
}

/// The index blocks below the root (interior nodes).
fn node_blocks(blocks: &mut dyn DirBlocks, ctx: &DirCtx, root: &Root) -> Result<BTreeSet<u32>> {
    let mut nodes = BTreeSet::new();
    if root.levels > 0 {
        for i in 0..root.dx.count {
            nodes.insert(root.dx.block(i));
        }
    }
    let _ = (blocks, ctx);
    Ok(nodes)
}

/// Every live entry, in on-disk order of the leaf blocks.
pub(crate) fn entries(blocks: &mut dyn DirBlocks, ctx: &DirCtx) -> Result<Vec<RawEntry>> {
    let root = read_root(blocks, ctx)?;
    let nodes = node_blocks(blocks, ctx, &root)?;
    let mut out = Vec::new();
    for lblk in 1..blocks.block_count() {
        if nodes.contains(&lblk) {
            continue;
        }
        let (buf, slots) = read_leaf(blocks, ctx, lblk)?;
        collect_live(&buf, &slots, &mut out);
    }
    Ok(out)
}

/// Look `name` up through the index.
pub(crate) fn lookup(
    blocks: &mut dyn DirBlocks,
    ctx: &DirCtx,
    name: &[u8],
) -> Result<Option<RawEntry>> {
    let (leaf, _) = find_leaf(blocks, ctx, name)?;
    let Some(lblk) = leaf else { return Ok(None) };
    let (buf, slots) = read_leaf(blocks, ctx, lblk)?;
    Ok(find_in(&slots, &buf, name).and_then(|i| slots.get(i).map(|s| s.entry(&buf))))
}

/// Remove `name` from its leaf; the index is left as it is.
pub(crate) fn remove_entry(
    blocks: &mut dyn DirBlocks,
    ctx: &DirCtx,
    name: &[u8],
) -> Result<RawEntry> {
    let (leaf, _) = find_leaf(blocks, ctx, name)?;
    match leaf {
        Some(lblk) => dir_block::remove_from_leaf(blocks, ctx, lblk, name)?
            .ok_or_else(|| dir_block::not_found_error(ctx, name)),
        None => Err(dir_block::not_found_error(ctx, name)),
    }
}

/// What adding a name will take.
enum Plan {
    /// The leaf has room.
    Fits,
    /// Split the leaf; the parent has room.
    SplitLeaf,
    /// Split the leaf; the root is full and becomes the parent of a new node.
    SplitLeafAddLevel,
    /// Split the leaf and its full parent node; the root has room.
    SplitLeafAndNode,
}

impl Plan {
    fn new_blocks(&self) -> u32 {
        match self {
            Plan::Fits => 0,
            Plan::SplitLeaf => 1,
            Plan::SplitLeafAddLevel | Plan::SplitLeafAndNode => 2,
        }
    }
}

fn plan(ctx: &DirCtx, path: &Path, leaf_has_room: bool) -> Result<Plan> {
    if leaf_has_room {
        return Ok(Plan::Fits);
    }
    let Some((parent, _)) = path.frames.last() else {
        return Err(Error::corrupt("htree path without a root"));
    };
    if parent.count < parent.limit {
        return Ok(Plan::SplitLeaf);
    }
    if path.frames.len() == 1 {
        return Ok(Plan::SplitLeafAddLevel);
    }
    match path.frames.first() {
        Some((root, _)) if root.count < root.limit => Ok(Plan::SplitLeafAndNode),
        _ => Err(Error::unsupported(format!(
            "directory inode {}: htree index is full (a third level needs largedir)",
            ctx.ino
        ))),
    }
}

/// The number of blocks [`add_entry`] would append to add `name` (0, 1 or 2), so
/// the engine can check for space first. `Unsupported` when the index cannot grow.
pub(crate) fn add_cost(blocks: &mut dyn DirBlocks, ctx: &DirCtx, name: &[u8]) -> Result<u32> {
    let root = read_root(blocks, ctx)?;
    let (hash, _) = name_hash(root.version, ctx, name)?;
    let path = probe(blocks, ctx, root, hash)?;
    let (_, slots) = read_leaf(blocks, ctx, path.leaf())?;
    let need = rec_size(name.len());
    let room = slots.iter().any(|s| s.fits(need));
    Ok(plan(ctx, &path, room)?.new_blocks())
}

/// Add `name -> ino` to an htree directory, keeping it indexed.
pub(crate) fn add_entry(
    blocks: &mut dyn DirBlocks,
    ctx: &DirCtx,
    name: &[u8],
    ino: Ino,
    ft: u8,
) -> Result<()> {
    if find_leaf(blocks, ctx, name)?.0.is_some() {
        return Err(dir_block::exists_error(ctx, name));
    }
    let root = read_root(blocks, ctx)?;
    let (hash, _) = name_hash(root.version, ctx, name)?;
    let mut path = probe(blocks, ctx, root, hash)?;
    let leaf = path.leaf();
    let (mut buf, slots) = read_leaf(blocks, ctx, leaf)?;
    if leaf_insert(ctx, &mut buf, &slots, name, ino, ft) {
        return blocks.write(leaf, &buf);
    }
    let plan = plan(ctx, &path, false)?;

    // Split the leaf in memory: sort its names by hash, cut near the middle by size.
    let mut live = Vec::new();
    collect_live(&buf, &slots, &mut live);
    let mut hashed = Vec::with_capacity(live.len());
    for e in live {
        let h = name_hash(path.version, ctx, &e.name)?;
        hashed.push((h, e));
    }
    hashed.sort_by_key(|x| x.0);
    let new = RawEntry {
        name: name.to_vec(),
        ino,
        file_type: ft,
    };
    let (lower, upper, key) = split_leaf(ctx, hashed, hash, new)?;

    // Every check is done; allocate, then write leaves, then the index bottom-up.
    let new_leaf = blocks.append()?;
    let extra = match plan {
        Plan::SplitLeafAddLevel | Plan::SplitLeafAndNode => match blocks.append() {
            Ok(b) => Some(b),
            Err(e) => {
                // Leave no garbage in the block already mapped: an empty leaf
                // (unreferenced; e2fsck -fy rebuilds the index, nothing is lost).
                // The engine avoids this by checking add_entry_cost first.
                blocks.write(new_leaf, &build_leaf(ctx, &[]))?;
                return Err(e);
            }
        },
        _ => None,
    };
    blocks.write(new_leaf, &build_leaf(ctx, &upper))?;
    blocks.write(leaf, &build_leaf(ctx, &lower))?;

    let Some((mut parent, at)) = path.frames.pop() else {
        return Err(Error::corrupt("htree path without a root"));
    };
    match (plan, extra) {
        (Plan::SplitLeaf, _) => {
            parent.insert(at + 1, key, new_leaf);
            parent.seal(ctx);
            blocks.write(parent.lblk, &parent.buf)?;
        }
        (Plan::SplitLeafAddLevel, Some(node_lblk)) => {
            // The root's entries move to a new node; the root points to it alone.
            let mut node = new_node(ctx, node_lblk, &parent);
            node.insert(at + 1, key, new_leaf);
            node.seal(ctx);
            blocks.write(node.lblk, &node.buf)?;
            parent.set_count(1);
            parent.set_entry(0, 0, node_lblk);
            put_u8(&mut parent.buf, ROOT_INDIRECT_LEVELS, 1);
            parent.seal(ctx);
            blocks.write(parent.lblk, &parent.buf)?;
        }
        (Plan::SplitLeafAndNode, Some(node_lblk)) => {
            let Some((mut root, root_at)) = path.frames.pop() else {
                return Err(Error::corrupt("htree path without a root"));
            };
            // Move the upper half of the full node to a new node.
            let half = parent.count / 2;
            let split_key = parent.hash(half);
            let mut sibling = new_node_from(ctx, node_lblk, &parent, half);
            parent.set_count(half);
            if at >= half {
                sibling.insert(at - half + 1, key, new_leaf);
            } else {
                parent.insert(at + 1, key, new_leaf);
            }
            sibling.seal(ctx);
            parent.seal(ctx);
            blocks.write(sibling.lblk, &sibling.buf)?;
            blocks.write(parent.lblk, &parent.buf)?;
            root.insert(root_at + 1, split_key, node_lblk);
            root.seal(ctx);
            blocks.write(root.lblk, &root.buf)?;
        }
        _ => return Err(Error::corrupt("htree insert plan without its block")),
    }
    Ok(())
}

/// Split a full leaf's entries (sorted by hash) plus the new one into two halves
/// that each fit a block. Returns (lower, upper, key of the upper leaf).
fn split_leaf(
    ctx: &DirCtx,
    hashed: Vec<((u32, u32), RawEntry)>,
    new_hash: u32,
    new: RawEntry,
) -> Result<(Vec<RawEntry>, Vec<RawEntry>, u32)> {
    let n = hashed.len();
    if n < 2 {
        return Err(Error::unsupported(format!(
            "directory inode {}: cannot split an htree leaf of {n} entries",
            ctx.ino
        )));
    }
    let sizes: Vec<usize> = hashed.iter().map(|(_, e)| rec_size(e.name.len())).collect();
    let total: usize = sizes.iter().sum();
    let cap = usable_end(ctx);
    let need = rec_size(new.name.len());
    // Candidate cut points, nearest to half the bytes first.
    let mut acc = 0;
    let mut mid = 1;
    for (i, s) in sizes.iter().enumerate() {
        acc += s;
        if acc * 2 >= total {
            mid = (i + 1).clamp(1, n - 1);
            break;
        }
    }
    let mut cands: Vec<usize> = (1..n).collect();
    cands.sort_by_key(|&k| k.abs_diff(mid));
    for k in cands {
        let Some(((hash2, _), _)) = hashed.get(k) else {
            continue;
        };
        let hash2 = *hash2;
        let continued = hashed.get(k - 1).is_some_and(|((h, _), _)| *h == hash2);
        let lo_size: usize = sizes.get(..k).map(|s| s.iter().sum()).unwrap_or(0);
        let hi_size = total - lo_size;
        let new_upper = new_hash >= hash2;
        let (lo_need, hi_need) = if new_upper {
            (lo_size, hi_size + need)
        } else {
            (lo_size + need, hi_size)
        };
        if lo_need > cap || hi_need > cap {
            continue;
        }
        let mut lower = Vec::with_capacity(k + 1);
        let mut upper = Vec::with_capacity(n - k + 1);
        for (i, (_, e)) in hashed.into_iter().enumerate() {
            if i < k {
                lower.push(e);
            } else {
                upper.push(e);
            }
        }
        if new_upper {
            upper.push(new);
        } else {
            lower.push(new);
        }
        return Ok((lower, upper, hash2 | u32::from(continued)));
    }
    Err(Error::unsupported(format!(
        "directory inode {}: no way to split an htree leaf",
        ctx.ino
    )))
}

/// An empty dx_node block at `lblk`.
fn empty_node(ctx: &DirCtx, lblk: u32) -> DxBlock {
    let bs = ctx.block_size;
    let mut buf = vec![0u8; bs];
    put_le32(&mut buf, 0, 0);
    put_le16(&mut buf, NODE_FAKE_REC_LEN, rec_len_to_disk(bs, bs));
    let limit = expected_limit(ctx, NODE_ENTRIES);
    put_le16(
        &mut buf,
        NODE_ENTRIES + CL_LIMIT,
        u16::try_from(limit).unwrap_or(u16::MAX),
    );
    let mut dx = DxBlock {
        lblk,
        buf,
        eo: NODE_ENTRIES,
        count: 0,
        limit,
    };
    dx.set_count(0);
    dx
}

/// A node holding all of `from`'s entries (the root's, when adding a level).
fn new_node(ctx: &DirCtx, lblk: u32, from: &DxBlock) -> DxBlock {
    new_node_from(ctx, lblk, from, 0)
}

/// A node holding `from`'s entries `start..count`.
fn new_node_from(ctx: &DirCtx, lblk: u32, from: &DxBlock, start: usize) -> DxBlock {
    let mut node = empty_node(ctx, lblk);
    for (j, i) in (start..from.count).enumerate() {
        node.set_entry(j, from.hash(i), from.block(i));
    }
    node.set_count(from.count - start);
    node
}

/// The leaves in index order with the hash range each may hold:
/// (lblk, low key, next key or None for the last).
type LeafRange = (u32, u32, Option<u32>);

fn leaf_ranges(
    blocks: &mut dyn DirBlocks,
    ctx: &DirCtx,
    root: &Root,
) -> Result<(Vec<LeafRange>, Vec<u32>)> {
    let mut keyed: Vec<(u32, u32)> = Vec::new();
    let mut nodes = Vec::new();
    for i in 0..root.dx.count {
        let key = root.dx.hash(i);
        let child = root.dx.block(i);
        if root.levels == 0 {
            keyed.push((key, child));
            continue;
        }
        nodes.push(child);
        let node = read_node(blocks, ctx, child)?;
        for j in 0..node.count {
            let k = if j == 0 { key } else { node.hash(j) };
            if j == 1 && k < key {
                return Err(corrupt_at(
                    ctx,
                    child,
                    NODE_ENTRIES,
                    "htree node keys below its parent's",
                ));
            }
            keyed.push((k, node.block(j)));
        }
    }
    let mut out = Vec::with_capacity(keyed.len());
    for (i, &(k, b)) in keyed.iter().enumerate() {
        out.push((b, k, keyed.get(i + 1).map(|x| x.0)));
    }
    Ok((out, nodes))
}

/// Check the whole tree: index blocks (limits, counts, checksums, order), every
/// block referenced exactly once, every leaf valid and holding only hashes of its
/// range (a leaf before a key without the continuation bit holds only smaller
/// hashes), and all leaves at the same depth (by construction of the walk).
pub(crate) fn verify(blocks: &mut dyn DirBlocks, ctx: &DirCtx) -> Result<()> {
    let root = read_root(blocks, ctx)?;
    let (leaves, nodes) = leaf_ranges(blocks, ctx, &root)?;
    let n = blocks.block_count();
    let mut seen = vec![false; usize::try_from(n).unwrap_or(0)];
    if let Some(s) = seen.first_mut() {
        *s = true;
    }
    let mut prev_key = 0;
    for &(lblk, key, _) in &leaves {
        if key < prev_key {
            return Err(corrupt_at(ctx, lblk, 0, "htree keys out of order"));
        }
        prev_key = key;
    }
    for &b in nodes.iter().chain(leaves.iter().map(|(b, _, _)| b)) {
        match seen.get_mut(b as usize) {
            Some(s) if !*s => *s = true,
            _ => return Err(corrupt_at(ctx, b, 0, "htree block referenced twice")),
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(corrupt_at(
            ctx,
            i as u32,
            0,
            "block not referenced by the htree",
        ));
    }
    for (lblk, lo, next) in leaves {
        let (buf, slots) = read_leaf(blocks, ctx, lblk)?;
        for s in slots.iter().filter(|s| s.ino != 0) {
            let (h, _) = name_hash(root.version, ctx, s.name(&buf))?;
            let below_next = match next {
                None => true,
                Some(k) if k & 1 == 1 => h <= k & !1,
                Some(k) => h < k,
            };
            if h < lo & !1 || !below_next {
                return Err(corrupt_at(
                    ctx,
                    lblk,
                    s.off,
                    format!("hash {h:#010x} outside the leaf's range {lo:#010x}..{next:08x?}"),
                ));
            }
        }
    }
    Ok(())
}

/// Turn an htree directory into a linear one: the root becomes a leaf holding
/// `.` and `..`, interior nodes become empty leaves, all with checksum tails. The
/// caller then clears `EXT4_INDEX_FL` on the inode. (Needed with metadata_csum:
/// clearing the flag alone leaves blocks e2fsck calls corrupt.)
pub fn make_linear(blocks: &mut dyn DirBlocks, ctx: &DirCtx) -> Result<()> {
    let root = read_root(blocks, ctx)?;
    let nodes = node_blocks(blocks, ctx, &root)?;
    let dot = le32(&root.dx.buf, 0);
    let dotdot = le32(&root.dx.buf, ROOT_DOTDOT);
    let mut linear_ctx = *ctx;
    linear_ctx.indexed = false;
    for lblk in nodes {
        blocks.write(lblk, &build_leaf(&linear_ctx, &[]))?;
    }
    // '.' keeps the inode the root names (normally ctx.ino).
    let first = dir_block::new_dir_block(
        &DirCtx {
            ino: dot,
            ..linear_ctx
        },
        dotdot,
    );
    blocks.write(0, &first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::ext::dir as d;
    use crate::ext::dir_block::tests::{ctx, MemDir};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A fresh two-block htree: the root (one entry) and an empty leaf, as the
    /// kernel leaves a directory it has just indexed and emptied.
    fn new_htree(c: &DirCtx) -> MemDir {
        let mut root = d::new_dir_block(
            &DirCtx {
                indexed: false,
                ..*c
            },
            2,
        );
        let bs = c.block_size;
        // '..' spans the whole block in a dx_root; the dx data replaces the tail.
        root.truncate(24);
        root.resize(bs, 0);
        put_le16(
            &mut root,
            ROOT_DOTDOT + ROOT_DOT_REC_LEN,
            rec_len_to_disk(bs - 12, bs),
        );
        put_u8(&mut root, ROOT_HASH_VERSION, c.hash.default_version);
        put_u8(&mut root, ROOT_INFO_LENGTH, ROOT_INFO_LEN);
        let limit = expected_limit(c, ROOT_ENTRIES);
        put_le16(&mut root, ROOT_ENTRIES + CL_LIMIT, limit as u16);
        let mut dx = DxBlock {
            lblk: 0,
            buf: root,
            eo: ROOT_ENTRIES,
            count: 0,
            limit,
        };
        dx.set_count(1);
        dx.set_entry(0, 0, 1);
        dx.seal(c);
        MemDir {
            blocks: vec![dx.buf, dir_block::build_leaf(c, &[])],
            block_size: bs,
            max_blocks: None,
        }
    }

    fn hctx(bs: usize, csum: bool, version: u8, unsigned: bool) -> DirCtx {
        let mut c = ctx(bs, csum);
        c.indexed = true;
        c.hash.default_version = version;
        c.hash.unsigned = unsigned;
        c
    }

    fn long_name(i: usize) -> Vec<u8> {
        let mut n = format!("n{i}-").into_bytes();
        n.resize(n.len() + (i * 37) % 240, b'a' + (i % 26) as u8);
        n
    }

    fn check_model(dir: &mut MemDir, c: &DirCtx, model: &BTreeMap<Vec<u8>, u32>) {
        d::verify(dir, c).unwrap();
        let got: BTreeMap<Vec<u8>, u32> = d::entries(dir, c)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.ino))
            .collect();
        assert_eq!(&got, model);
        for (n, ino) in model {
            assert_eq!(d::lookup(dir, c, n).unwrap().map(|e| e.ino), Some(*ino));
        }
    }

    #[test]
    fn grows_to_two_levels_and_splits_nodes() {
        for (csum, version, unsigned) in [(true, 1, false), (false, 2, true), (true, 0, false)] {
            let c = hctx(1024, csum, version, unsigned);
            let mut dir = new_htree(&c);
            let mut model = BTreeMap::new();
            for i in 0..2500 {
                let n = long_name(i);
                let before = dir.blocks.len() as u32;
                let cost = d::add_entry_cost(&mut dir, &c, &n).unwrap();
                d::add_entry(&mut dir, &c, &n, 100 + i as u32, 1).unwrap();
                assert_eq!(dir.blocks.len() as u32 - before, cost);
                model.insert(n, 100 + i as u32);
            }
            let root = read_root(&mut dir, &c).unwrap();
            assert_eq!(root.levels, 1);
            assert!(root.dx.count > 1, "no node split happened");
            check_model(&mut dir, &c, &model);
            for i in (0..2500).step_by(3) {
                let n = long_name(i);
                d::remove_entry(&mut dir, &c, &n).unwrap();
                model.remove(&n);
            }
            check_model(&mut dir, &c, &model);
        }
    }

    #[test]
    fn full_index_is_refused_before_writing() {
        // Root (levels 1) full of entries to one full node, full of entries to one
        // full leaf: a split would need a third level.
        let c = hctx(1024, true, 1, false);
        let mut dir = new_htree(&c);
        let mut fill = Vec::new();
        let mut i = 0;
        loop {
            let n = long_name(i);
            let mut buf = dir.blocks[1].clone();
            let slots = dir_block::parse_leaf(&c, 1, &buf).unwrap();
            if !dir_block::leaf_insert(&c, &mut buf, &slots, &n, 5, 1) {
                break;
            }
            dir.blocks[1] = buf;
            fill.push(n);
            i += 1;
        }
        let mut node = empty_node(&c, 2);
        let node_limit = node.limit;
        node.set_count(node_limit);
        for j in 0..node_limit {
            node.set_entry(j, 0, 1);
        }
        node.seal(&c);
        dir.blocks.push(node.buf);
        let mut root = read_root(&mut dir, &c).unwrap().dx;
        let root_limit = root.limit;
        root.set_count(root_limit);
        for j in 0..root_limit {
            root.set_entry(j, 0, 2);
        }
        put_u8(&mut root.buf, ROOT_INDIRECT_LEVELS, 1);
        root.seal(&c);
        dir.blocks[0] = root.buf;
        let snapshot = dir.blocks.clone();
        let n = long_name(100_000);
        let e = d::add_entry_cost(&mut dir, &c, &n).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let e = d::add_entry(&mut dir, &c, &n, 9, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert_eq!(dir.blocks, snapshot, "blocks changed");
        // Everything already there is still found.
        for n in &fill {
            assert!(d::lookup(&mut dir, &c, n).unwrap().is_some());
        }
    }

    #[test]
    fn failed_second_append_leaves_no_garbage() {
        // Fill until the root is full and the next split must add a level, with
        // room for only one more block.
        let c = hctx(1024, true, 1, false);
        let mut dir = new_htree(&c);
        let mut i = 0;
        loop {
            let n = long_name(i);
            if d::add_entry_cost(&mut dir, &c, &n).unwrap() == 2 {
                dir.max_blocks = Some(dir.blocks.len() + 1);
                let e = d::add_entry(&mut dir, &c, &n, 9, 1).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::NoSpace);
                break;
            }
            d::add_entry(&mut dir, &c, &n, 9, 1).unwrap();
            i += 1;
        }
        // The extra block is a valid empty leaf; everything else is intact.
        let last = dir.blocks.len() - 1;
        let slots = dir_block::parse_leaf(&c, last as u32, &dir.blocks[last]).unwrap();
        assert!(slots.iter().all(|s| s.ino == 0));
        for j in 0..i {
            assert!(d::lookup(&mut dir, &c, &long_name(j)).unwrap().is_some());
        }
    }

    #[test]
    fn collision_chain_is_followed() {
        // Two leaves; the second's key is hash(x)|1 and x lives in it: a lookup for
        // x probes the first leaf and must continue to the second.
        let c = hctx(1024, true, 1, false);
        let mut dir = new_htree(&c);
        let x = b"the-name".to_vec();
        let (h, _) = dirhash::dirhash(&x, 1, &c.hash.seed).unwrap();
        let small: Vec<RawEntry> = (0..200)
            .map(|i| format!("s{i}").into_bytes())
            .filter(|n| dirhash::dirhash(n, 1, &c.hash.seed).unwrap().0 < h)
            .take(5)
            .map(|name| RawEntry {
                name,
                ino: 7,
                file_type: 1,
            })
            .collect();
        dir.blocks[1] = dir_block::build_leaf(&c, &small);
        dir.blocks.push(dir_block::build_leaf(
            &c,
            &[RawEntry {
                name: x.clone(),
                ino: 8,
                file_type: 1,
            }],
        ));
        let mut root = read_root(&mut dir, &c).unwrap().dx;
        root.insert(1, h | 1, 2);
        root.seal(&c);
        dir.blocks[0] = root.buf;
        d::verify(&mut dir, &c).unwrap();
        assert_eq!(d::lookup(&mut dir, &c, &x).unwrap().map(|e| e.ino), Some(8));
        assert_eq!(
            d::add_entry(&mut dir, &c, &x, 9, 1).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert_eq!(d::remove_entry(&mut dir, &c, &x).unwrap().ino, 8);
        assert!(d::lookup(&mut dir, &c, &x).unwrap().is_none());
    }

    #[test]
    fn split_marks_straddling_equal_hashes() {
        let c = hctx(1024, false, 1, false);
        let e = |i: usize| RawEntry {
            name: long_name(i),
            ino: 3,
            file_type: 1,
        };
        // Six entries of one hash: any cut straddles it, so the key has bit 0 set.
        let hashed: Vec<((u32, u32), RawEntry)> =
            (0..6).map(|i| ((0x1000, i as u32), e(i))).collect();
        let (lo, hi, key) = split_leaf(&c, hashed, 0x1000, e(99)).unwrap();
        assert_eq!(key, 0x1001);
        assert!(!lo.is_empty() && !hi.is_empty());
        // Distinct hashes: a plain key.
        let hashed: Vec<((u32, u32), RawEntry)> =
            (0..6).map(|i| ((0x1000 + 2 * i as u32, 0), e(i))).collect();
        let (_, _, key) = split_leaf(&c, hashed, 0, e(99)).unwrap();
        assert_eq!(key & 1, 0);
    }

    #[test]
    fn bad_roots_are_corrupt() {
        let c = hctx(1024, false, 1, false);
        let base = new_htree(&c);
        let cases: [(usize, u8, ErrorKind); 5] = [
            (ROOT_HASH_VERSION, 9, ErrorKind::Corrupt),
            (ROOT_HASH_VERSION, 6, ErrorKind::Unsupported),
            (ROOT_INFO_LENGTH, 12, ErrorKind::Corrupt),
            (ROOT_UNUSED_FLAGS, 1, ErrorKind::Corrupt),
            (ROOT_INDIRECT_LEVELS, 3, ErrorKind::Corrupt),
        ];
        for (off, v, kind) in cases {
            let mut dir = base.clone();
            dir.blocks[0][off] = v;
            assert_eq!(
                d::entries(&mut dir, &c).unwrap_err().kind(),
                kind,
                "{off:#x}={v}"
            );
            assert_eq!(d::lookup(&mut dir, &c, b"x").unwrap_err().kind(), kind);
            assert_eq!(
                d::add_entry(&mut dir, &c, b"x", 5, 1).unwrap_err().kind(),
                kind
            );
        }
        // Checksummed roots: a flipped entry byte is caught.
        let c = hctx(1024, true, 1, false);
        let mut dir = new_htree(&c);
        dir.blocks[0][ROOT_ENTRIES + 4] ^= 0x40;
        assert_eq!(
            d::lookup(&mut dir, &c, b"x").unwrap_err().kind(),
            ErrorKind::Corrupt
        );
    }

    #[test]
    fn hostile_index_never_panics() {
        let c = hctx(1024, false, 1, false);
        let mut base = new_htree(&c);
        for i in 0..300 {
            d::add_entry(&mut base, &c, &long_name(i), 10, 1).unwrap();
        }
        let mut x = 0x1234_5679u32;
        for _ in 0..3000 {
            let mut dir = base.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let blk = (x as usize >> 3) % dir.blocks.len();
                let off = (x as usize >> 12) % 64;
                dir.blocks[blk][off] = (x >> 24) as u8;
            }
            let _ = d::entries(&mut dir, &c);
            let _ = d::lookup(&mut dir, &c, &long_name(5));
            let _ = d::add_entry(&mut dir, &c, b"new", 10, 1);
            let _ = d::remove_entry(&mut dir, &c, &long_name(7));
            let _ = d::verify(&mut dir, &c);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Random adds and removes against a map: the directory always lists the
        /// model, finds every name, and keeps the hash ranges of its leaves.
        #[test]
        fn htree_matches_model(
            ops in proptest::collection::vec((any::<bool>(), 0usize..1500), 1..1200),
            csum in any::<bool>(),
            version in 0u8..3,
        ) {
            let c = hctx(1024, csum, version, false);
            let mut dir = new_htree(&c);
            let mut model = BTreeMap::new();
            for (add, i) in ops {
                let n = long_name(i);
                if add || model.len() < 10 {
                    let r = d::add_entry(&mut dir, &c, &n, 11 + i as u32, 1);
                    match model.entry(n) {
                        std::collections::btree_map::Entry::Occupied(_) => {
                            prop_assert_eq!(r.unwrap_err().kind(), ErrorKind::AlreadyExists);
                        }
                        std::collections::btree_map::Entry::Vacant(v) => {
                            r.unwrap();
                            v.insert(11 + i as u32);
                        }
                    }
                } else {
                    let r = d::remove_entry(&mut dir, &c, &n);
                    if model.remove(&n).is_some() {
                        r.unwrap();
                    } else {
                        prop_assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound);
                    }
                }
            }
            check_model(&mut dir, &c, &model);
        }

        #[test]
        fn linear_matches_model(
            ops in proptest::collection::vec((any::<bool>(), 0usize..300), 1..400),
            csum in any::<bool>(),
        ) {
            let c = ctx(1024, csum);
            let mut dir = crate::ext::dir_block::tests::new_dir(&c);
            let mut model = BTreeMap::new();
            for (add, i) in ops {
                let n = long_name(i);
                if add {
                    let r = d::add_entry(&mut dir, &c, &n, 11 + i as u32, 1);
                    match model.entry(n) {
                        std::collections::btree_map::Entry::Occupied(_) => {
                            prop_assert_eq!(r.unwrap_err().kind(), ErrorKind::AlreadyExists);
                        }
                        std::collections::btree_map::Entry::Vacant(v) => {
                            r.unwrap();
                            v.insert(11 + i as u32);
                        }
                    }
                } else {
                    let r = d::remove_entry(&mut dir, &c, &n);
                    prop_assert_eq!(r.is_ok(), model.remove(&n).is_some());
                }
            }
            check_model(&mut dir, &c, &model);
        }
    }
}

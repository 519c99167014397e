//! Extent trees (`ext4_extent_header`, `ext4_extent`, `ext4_extent_idx`): reading
//! (walk the whole tree, or map one logical block) and building a tree bottom-up
//! for a list of runs: up to 4 extents in the inode, else leaf blocks (with the
//! metadata_csum tail at `12 + 12 * eh_max`) under index levels. An initialised
//! extent covers at most 32,768 blocks.

use super::inode::Inode;
use super::run::Run;
use super::{csum, Error, Ext, Result};
use crate::bytes::{le16, le32, put_le16, put_le32};
use crate::disk::ReadAt;

const EH_MAGIC: usize = 0x0;
const EH_ENTRIES: usize = 0x2;
const EH_MAX: usize = 0x4;
const EH_DEPTH: usize = 0x6;
const EH_GENERATION: usize = 0x8;
const EXT4_EXT_MAGIC: u16 = 0xF30A;
const HDR: usize = 12;
const ENTRY: usize = 12;

const EE_BLOCK: usize = 0x0;
const EE_LEN: usize = 0x4;
const EE_START_HI: usize = 0x6;
const EE_START_LO: usize = 0x8;
const EI_BLOCK: usize = 0x0;
const EI_LEAF_LO: usize = 0x4;
const EI_LEAF_HI: usize = 0x8;

/// Longest initialised extent.
pub const EXT_INIT_MAX_LEN: u32 = 32768;
/// Deepest tree the kernel builds.
const EXT4_MAX_DEPTH: u16 = 5;
/// Entries in the inode's root node.
const ROOT_MAX: usize = 4;

/// Entries per tree block.
fn per_block(block_size: u32) -> usize {
    (block_size as usize - HDR) / ENTRY
}

/// Tree blocks for `extents` extents.
pub fn tree_blocks_for(extents: u64, block_size: u32) -> u64 {
    let per = per_block(block_size) as u64;
    let mut nodes = extents;
    let mut total = 0;
    while nodes > ROOT_MAX as u64 {
        nodes = nodes.div_ceil(per);
        total += nodes;
    }
    total
}

/// Tree blocks in the worst case (every block its own extent) for `data` blocks.
pub fn worst_tree_blocks(data: u64, block_size: u32) -> u64 {
    tree_blocks_for(data, block_size)
}

fn header(buf: &mut [u8], entries: usize, max: usize, depth: u16) {
    put_le16(buf, EH_MAGIC, EXT4_EXT_MAGIC);
    put_le16(buf, EH_ENTRIES, entries as u16);
    put_le16(buf, EH_MAX, max as u16);
    put_le16(buf, EH_DEPTH, depth);
    put_le32(buf, EH_GENERATION, 0);
}

struct Node {
    entries: usize,
    max: usize,
    depth: u16,
}

fn parse_header(buf: &[u8], what: &dyn std::fmt::Display) -> Result<Node> {
    let magic = le16(buf, EH_MAGIC);
    let entries = usize::from(le16(buf, EH_ENTRIES));
    let max = usize::from(le16(buf, EH_MAX));
    let depth = le16(buf, EH_DEPTH);
    if magic != EXT4_EXT_MAGIC
        || entries > max
        || HDR + max * ENTRY > buf.len()
        || depth > EXT4_MAX_DEPTH
    {
        return Err(Error::corrupt(format!("{what}: bad extent header")));
    }
    Ok(Node {
        entries,
        max,
        depth,
    })
}

fn extent_at(buf: &[u8], i: usize) -> Run {
    let o = HDR + i * ENTRY;
    let raw_len = u32::from(le16(buf, o + EE_LEN));
    let (len, uninit) = if raw_len > EXT_INIT_MAX_LEN {
        (raw_len - EXT_INIT_MAX_LEN, true)
    } else {
        (raw_len, false)
    };
    Run {
        lblk: le32(buf, o + EE_BLOCK),
        pblk: u64::from(le32(buf, o + EE_START_LO)) | (u64::from(le16(buf, o + EE_START_HI)) << 32),
        len,
        uninit,
    }
}

fn index_at(buf: &[u8], i: usize) -> (u32, u64) {
    let o = HDR + i * ENTRY;
    (
        le32(buf, o + EI_BLOCK),
        u64::from(le32(buf, o + EI_LEAF_LO)) | (u64::from(le16(buf, o + EI_LEAF_HI)) << 32),
    )
}

impl<D: ReadAt> Ext<D> {
    /// Read a tree block and check its header (and its checksum with
    /// metadata_csum).
    fn read_tree_block(&self, inode: &Inode, blk: u64, buf: &mut [u8], depth: u16) -> Result<Node> {
        self.read_block(blk, buf)
            .map_err(|e| e.context(format_args!("inode {} extent block", inode.ino)))?;
        let what = format!("inode {} extent block {blk}", inode.ino);
        let h = parse_header(buf, &what)?;
        if h.depth + 1 != depth {
            return Err(Error::corrupt(format!("{what}: wrong depth")));
        }
        if self.csum == super::group::CsumKind::Meta {
            let end = HDR + h.max * ENTRY;
            let ok = buf.get(..end).is_some_and(|body| {
                csum::crc32c(inode.csum_seed(self.fs_seed), body) == le32(buf, end)
            });
            if !ok {
                return Err(Error::corrupt(format!("{what}: checksum does not match")));
            }
        }
        Ok(h)
    }

    /// Every extent of the inode (in order) and every tree block.
    pub(super) fn extent_runs(&self, inode: &Inode) -> Result<(Vec<Run>, Vec<u64>)> {
        let mut runs = Vec::new();
        let mut tree = Vec::new();
        let what = format!("inode {}", inode.ino);
        let root = parse_header(inode.i_block(), &what)?;
        // Tree blocks visited: a real tree has fewer than its extents (at most
        // MAX_RUNS); a hostile one that points many times at the same blocks
        // stops here instead of after a pass per block of the filesystem.
        let mut budget = self.sb.blocks_count.min(super::run::MAX_RUNS as u64);
        self.walk(
            inode,
            inode.i_block(),
            root,
            &mut runs,
            &mut tree,
            &mut budget,
        )?;
        Ok((runs, tree))
    }

    fn walk(
        &self,
        inode: &Inode,
        node: &[u8],
        h: Node,
        runs: &mut Vec<Run>,
        tree: &mut Vec<u64>,
        budget: &mut u64,
    ) -> Result<()> {
        if h.depth == 0 {
            for i in 0..h.entries {
                let r = extent_at(node, i);
                if r.len == 0 {
                    continue;
                }
                self.check_block(r.pblk, u64::from(r.len))
                    .map_err(|e| e.context(format_args!("inode {}", inode.ino)))?;
                if runs.len() >= super::run::MAX_RUNS {
                    return Err(Error::unsupported(format!(
                        "inode {}: more than {} extents",
                        inode.ino,
                        super::run::MAX_RUNS
                    )));
                }
                runs.push(r);
            }
            return Ok(());
        }
        let mut buf = vec![0u8; self.sb.block_size as usize];
        for i in 0..h.entries {
            let (_, leaf) = index_at(node, i);
            *budget = budget
                .checked_sub(1)
                .ok_or_else(|| Error::corrupt(format!("inode {}: extent tree loops", inode.ino)))?;
            let child = self.read_tree_block(inode, leaf, &mut buf, h.depth)?;
            tree.push(leaf);
            let copy = buf.clone();
            self.walk(inode, &copy, child, runs, tree, budget)?;
        }
        Ok(())
    }

    /// Map logical block `lblk`: `(physical block, blocks left in the extent,
    /// uninitialised)`, or `None` for a hole.
    pub(super) fn extent_map(&self, inode: &Inode, lblk: u32) -> Result<Option<(u64, u32, bool)>> {
        let what = format!("inode {}", inode.ino);
        let mut node = inode.i_block().to_vec();
        let mut h = parse_header(&node, &what)?;
        let mut buf = vec![0u8; self.sb.block_size as usize];
        loop {
            if h.depth == 0 {
                for i in 0..h.entries {
                    let r = extent_at(&node, i);
                    if lblk >= r.lblk && u64::from(lblk) < u64::from(r.lblk) + u64::from(r.len) {
                        let off = lblk - r.lblk;
                        return Ok(Some((r.pblk + u64::from(off), r.len - off, r.uninit)));
                    }
                }
                return Ok(None);
            }
            let mut child = None;
            for i in 0..h.entries {
                let (first, leaf) = index_at(&node, i);
                if first <= lblk {
                    child = Some(leaf);
                } else {
                    break;
                }
            }
            let Some(leaf) = child else { return Ok(None) };
            // The same checks as the tree walk, checksum included: a read never
            // goes through a corrupt tree block.
            let c = self.read_tree_block(inode, leaf, &mut buf, h.depth)?;
            node.clone_from(&buf);
            h = c;
        }
    }

    /// Build a new extent tree for `runs` (sorted by logical block) into the inode;
    /// tree blocks are allocated near `goal` and cached as new metadata. Returns
    /// the number of tree blocks.
    pub(super) fn build_extents(
        &mut self,
        inode: &mut Inode,
        runs: &[Run],
        goal: u64,
    ) -> Result<u64> {
        // Split into extents the format can hold.
        let mut ext: Vec<Run> = Vec::new();
        for r in runs {
            let cap = if r.uninit {
                EXT_INIT_MAX_LEN - 1
            } else {
                EXT_INIT_MAX_LEN
            };
            let mut done = 0;
            while done < r.len {
                let n = (r.len - done).min(cap);
                ext.push(Run {
                    lblk: r.lblk + done,
                    pblk: r.pblk + u64::from(done),
                    len: n,
                    uninit: r.uninit,
                });
                done += n;
            }
        }
        let bs = self.sb.block_size;
        let per = per_block(bs);
        let seed = inode.csum_seed(self.fs_seed);
        let meta = self.csum == super::group::CsumKind::Meta;
        // Entries of the current level: (first logical block, 12 bytes).
        let mut level: Vec<(u32, [u8; ENTRY])> = ext
            .iter()
            .map(|r| {
                let mut e = [0u8; ENTRY];
                put_le32(&mut e, EE_BLOCK, r.lblk);
                let len = if r.uninit {
                    r.len + EXT_INIT_MAX_LEN
                } else {
                    r.len
                };
                put_le16(&mut e, EE_LEN, len as u16);
                put_le16(&mut e, EE_START_HI, crate::bytes::hi16(r.pblk));
                put_le32(&mut e, EE_START_LO, crate::bytes::lo32(r.pblk));
                (r.lblk, e)
            })
            .collect();
        let mut depth: u16 = 0;
        let mut count = 0u64;
        let mut goal = goal;
        while level.len() > ROOT_MAX {
            let chunks: Vec<&[(u32, [u8; ENTRY])]> = level.chunks(per).collect();
            let blocks = self.alloc_blocks(goal, chunks.len() as u64)?;
            let mut next = Vec::with_capacity(chunks.len());
            for (chunk, &pblk) in chunks.iter().zip(&blocks) {
                let mut buf = vec![0u8; bs as usize];
                header(&mut buf, chunk.len(), per, depth);
                for (i, (_, e)) in chunk.iter().enumerate() {
                    let o = HDR + i * ENTRY;
                    buf[o..o + ENTRY].copy_from_slice(e);
                }
                if meta {
                    let end = HDR + per * ENTRY;
                    let c = csum::crc32c(seed, &buf[..end]);
                    put_le32(&mut buf, end, c);
                }
                self.put_meta(pblk, buf, true);
                let first = chunk.first().map(|c| c.0).unwrap_or(0);
                let mut e = [0u8; ENTRY];
                put_le32(&mut e, EI_BLOCK, first);
                put_le32(&mut e, EI_LEAF_LO, crate::bytes::lo32(pblk));
                put_le16(&mut e, EI_LEAF_HI, crate::bytes::hi16(pblk));
                next.push((first, e));
            }
            count += blocks.len() as u64;
            goal = blocks.last().map(|b| b + 1).unwrap_or(goal);
            level = next;
            depth += 1;
            if depth > EXT4_MAX_DEPTH {
                return Err(Error::unsupported("extent tree deeper than 5 levels"));
            }
        }
        let mut root = [0u8; super::inode::I_BLOCK_LEN];
        header(&mut root, level.len(), ROOT_MAX, depth);
        for (i, (_, e)) in level.iter().enumerate() {
            let o = HDR + i * ENTRY;
            root[o..o + ENTRY].copy_from_slice(e);
        }
        inode.set_i_block(&root);
        inode.set_flags(inode.flags() | super::inode::EXT4_EXTENTS_FL);
        Ok(count)
    }
}

/// An empty extent root (for a new inode with no blocks yet).
pub fn empty_root() -> [u8; super::inode::I_BLOCK_LEN] {
    let mut root = [0u8; super::inode::I_BLOCK_LEN];
    header(&mut root, 0, ROOT_MAX, 0);
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_block_counts() {
        assert_eq!(tree_blocks_for(4, 4096), 0);
        assert_eq!(tree_blocks_for(5, 4096), 1);
        assert_eq!(tree_blocks_for(340 * 4, 4096), 4);
        assert_eq!(tree_blocks_for(340 * 4 + 1, 4096), 5 + 1);
    }
}

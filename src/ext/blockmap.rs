//! Indirect block maps (ext2/ext3, and ext4 inodes without EXTENTS_FL):
//! `i_block[0..12]` direct, `[12]` single, `[13]` double, `[14]` triple indirect.
//! Reading (map one block, or walk all) and building bottom-up for a list of runs;
//! indirect blocks are counted in `i_blocks`.

use super::inode::Inode;
use super::run::Run;
use super::{Error, Ext, Result};
use crate::bytes::{le32, put_le32};
use crate::disk::ReadAt;

const EXT2_NDIR_BLOCKS: u64 = 12;
const EXT2_IND_BLOCK: usize = 12;

/// Pointers per indirect block.
fn ptrs(block_size: u32) -> u64 {
    u64::from(block_size / 4)
}

/// Indirect blocks needed for a dense file of `data` blocks.
pub fn indirect_blocks(data: u64, block_size: u32) -> u64 {
    let p = ptrs(block_size);
    let mut left = data.saturating_sub(EXT2_NDIR_BLOCKS);
    let mut total = 0;
    // Single.
    if left == 0 {
        return 0;
    }
    total += 1;
    left = left.saturating_sub(p);
    if left == 0 {
        return total;
    }
    // Double: the top block plus one per p data blocks.
    let d = left.min(p * p);
    total += 1 + d.div_ceil(p);
    left -= d;
    if left == 0 {
        return total;
    }
    // Triple: the top, one per p*p, one per p.
    total += 1 + left.div_ceil(p * p) + left.div_ceil(p);
    total
}

impl<D: ReadAt> Ext<D> {
    fn read_ptrs(&self, blk: u64, ino: u32) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.sb.block_size as usize];
        self.read_block(blk, &mut buf)
            .map_err(|e| e.context(format_args!("inode {ino}: indirect block")))?;
        Ok(buf)
    }

    /// Map logical block `lblk`: `(physical block, contiguous blocks from it)`,
    /// the count taken from the pointers that follow in the same map block (so
    /// a dense file is read in runs, not one block per call), or None for a hole.
    pub(super) fn blockmap_map(&self, inode: &Inode, lblk: u32) -> Result<Option<(u64, u32)>> {
        let p = ptrs(self.sb.block_size);
        let l = u64::from(lblk);
        let ib = inode.i_block();
        if l < EXT2_NDIR_BLOCKS {
            // OK to cast: below 12.
            return Ok(contiguous(ib, l as usize, EXT2_NDIR_BLOCKS as usize));
        }
        let mut rel = l - EXT2_NDIR_BLOCKS;
        let mut level = 1u32;
        let mut span = p;
        while rel >= span {
            rel -= span;
            level += 1;
            if level > 3 {
                return Ok(None);
            }
            span = span.saturating_mul(p);
        }
        let mut blk = u64::from(le32(ib, (EXT2_IND_BLOCK + level as usize - 1) * 4));
        let mut span = span / p;
        for depth in 0..level {
            if blk == 0 {
                return Ok(None);
            }
            self.check_block(blk, 1)?;
            let buf = self.read_ptrs(blk, inode.ino)?;
            // OK to cast: below `p` (a block's pointer count).
            let idx = (rel / span) as usize;
            rel %= span;
            span = (span / p).max(1);
            if depth + 1 == level {
                // OK to cast: a block's pointer count.
                return Ok(contiguous(&buf, idx, p as usize));
            }
            blk = u64::from(le32(&buf, idx * 4));
        }
        Ok(None)
    }

    /// Every mapped run and every indirect block of the inode.
    pub(super) fn blockmap_runs(&self, inode: &Inode) -> Result<(Vec<Run>, Vec<u64>)> {
        let mut runs: Vec<Run> = Vec::new();
        let mut tree = Vec::new();
        let ib = inode.i_block().to_vec();
        for i in 0..EXT2_NDIR_BLOCKS {
            let b = u64::from(le32(&ib, (i as usize) * 4));
            push(&mut runs, i, b);
        }
        let p = ptrs(self.sb.block_size);
        let mut base = EXT2_NDIR_BLOCKS;
        let mut span = p;
        // Tree blocks visited: a real tree has fewer than its extents (at most
        // MAX_RUNS); a hostile one that points many times at the same blocks
        // stops here instead of after a pass per block of the filesystem.
        let mut budget = self.sb.blocks_count.min(super::run::MAX_RUNS as u64);
        for level in 1..=3u32 {
            let top = u64::from(le32(&ib, (EXT2_IND_BLOCK + level as usize - 1) * 4));
            if top != 0 {
                self.walk_ind(
                    inode.ino,
                    top,
                    level,
                    base,
                    &mut runs,
                    &mut tree,
                    &mut budget,
                )?;
            }
            base += span;
            span = span.saturating_mul(p);
        }
        Ok((runs, tree))
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_ind(
        &self,
        ino: u32,
        blk: u64,
        level: u32,
        base: u64,
        runs: &mut Vec<Run>,
        tree: &mut Vec<u64>,
        budget: &mut u64,
    ) -> Result<()> {
        *budget = budget
            .checked_sub(1)
            .ok_or_else(|| Error::corrupt(format!("inode {ino}: indirect map loops")))?;
        self.check_block(blk, 1)?;
        tree.push(blk);
        let buf = self.read_ptrs(blk, ino)?;
        let p = ptrs(self.sb.block_size);
        let child_span = p.pow(level - 1);
        for i in 0..p {
            let b = u64::from(le32(&buf, (i as usize) * 4));
            if b == 0 {
                continue;
            }
            let lb = base + i * child_span;
            if level == 1 {
                self.check_block(b, 1)?;
                if runs.len() >= super::run::MAX_RUNS {
                    return Err(Error::unsupported(format!(
                        "inode {ino}: more than {} fragments",
                        super::run::MAX_RUNS
                    )));
                }
                push(runs, lb, b);
            } else {
                self.walk_ind(ino, b, level - 1, lb, runs, tree, budget)?;
            }
        }
        Ok(())
    }

    /// Build indirect maps for `runs` into the inode; indirect blocks are
    /// allocated near `goal` and cached as new metadata. Returns their number.
    pub(super) fn build_blockmap(
        &mut self,
        inode: &mut Inode,
        runs: &[Run],
        goal: u64,
    ) -> Result<u64> {
        let end = runs
            .iter()
            .map(|r| u64::from(r.lblk) + u64::from(r.len))
            .max()
            .unwrap_or(0);
        let p = ptrs(self.sb.block_size);
        let max = EXT2_NDIR_BLOCKS + p + p * p + p * p * p;
        if end > max || end > u64::from(u32::MAX) {
            return Err(Error::unsupported(format!(
                "inode {}: {end} blocks do not fit an indirect block map",
                inode.ino
            )));
        }
        let mut root = [0u8; super::inode::I_BLOCK_LEN];
        for l in 0..EXT2_NDIR_BLOCKS.min(end) {
            if let Some(b) = lookup(runs, l) {
                put_le32(&mut root, (l as usize) * 4, crate::bytes::lo32(b));
            }
        }
        let mut count = 0;
        let mut goal = goal;
        let mut base = EXT2_NDIR_BLOCKS;
        let mut span = p;
        for level in 1..=3u32 {
            if base >= end {
                break;
            }
            let top = self.build_ind(runs, level, base, end, &mut goal, &mut count)?;
            put_le32(
                &mut root,
                (EXT2_IND_BLOCK + level as usize - 1) * 4,
                crate::bytes::lo32(top),
            );
            base += span;
            span *= p;
        }
        inode.set_i_block(&root);
        inode.set_flags(inode.flags() & !super::inode::EXT4_EXTENTS_FL);
        Ok(count)
    }

    fn build_ind(
        &mut self,
        runs: &[Run],
        level: u32,
        base: u64,
        end: u64,
        goal: &mut u64,
        count: &mut u64,
    ) -> Result<u64> {
        let p = ptrs(self.sb.block_size);
        let child_span = p.pow(level - 1);
        let span = child_span * p;
        if !any_mapped(runs, base, base + span) {
            return Ok(0);
        }
        let (me, _) = self.alloc_run(*goal, 1)?;
        *goal = me + 1;
        *count += 1;
        let mut buf = vec![0u8; self.sb.block_size as usize];
        for i in 0..p {
            let lb = base + i * child_span;
            if lb >= end {
                break;
            }
            let b = if level == 1 {
                lookup(runs, lb).unwrap_or(0)
            } else {
                self.build_ind(runs, level - 1, lb, end, goal, count)?
            };
            put_le32(&mut buf, (i as usize) * 4, crate::bytes::lo32(b));
        }
        self.put_meta(me, buf, true);
        Ok(me)
    }
}

fn push(runs: &mut Vec<Run>, lblk: u64, pblk: u64) {
    if pblk == 0 {
        return;
    }
    let Ok(lblk) = u32::try_from(lblk) else {
        return;
    };
    if let Some(last) = runs.last_mut() {
        if !last.uninit
            && last.lblk.checked_add(last.len) == Some(lblk)
            && last.pblk + u64::from(last.len) == pblk
            && last.len < u32::MAX
        {
            last.len += 1;
            return;
        }
    }
    runs.push(Run {
        lblk,
        pblk,
        len: 1,
        uninit: false,
    });
}

/// The pointer at index `idx` of `ptrs` (`n` pointers) and how many of the
/// following ones continue it block by block; None for a hole.
fn contiguous(ptrs: &[u8], idx: usize, n: usize) -> Option<(u64, u32)> {
    let first = le32(ptrs, idx * 4);
    if first == 0 {
        return None;
    }
    let mut len = 1u32;
    while idx + (len as usize) < n
        && first
            .checked_add(len)
            .is_some_and(|want| le32(ptrs, (idx + len as usize) * 4) == want)
    {
        len += 1;
    }
    Some((u64::from(first), len))
}

/// Physical block of `lblk` in sorted runs.
fn lookup(runs: &[Run], lblk: u64) -> Option<u64> {
    let i = runs.partition_point(|r| u64::from(r.lblk) + u64::from(r.len) <= lblk);
    let r = runs.get(i)?;
    (u64::from(r.lblk) <= lblk).then(|| r.pblk + (lblk - u64::from(r.lblk)))
}

fn any_mapped(runs: &[Run], from: u64, to: u64) -> bool {
    let i = runs.partition_point(|r| u64::from(r.lblk) + u64::from(r.len) <= from);
    runs.get(i).is_some_and(|r| u64::from(r.lblk) < to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indirect_counts() {
        assert_eq!(indirect_blocks(12, 1024), 0);
        assert_eq!(indirect_blocks(13, 1024), 1);
        assert_eq!(indirect_blocks(12 + 256, 1024), 1);
        assert_eq!(indirect_blocks(12 + 256 + 1, 1024), 3);
        assert_eq!(indirect_blocks(12 + 256 + 65536, 1024), 2 + 256);
        assert_eq!(indirect_blocks(12 + 256 + 65536 + 1, 1024), 2 + 256 + 3);
    }
}

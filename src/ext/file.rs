//! File data: the mapping of an inode (extents or indirect maps, chosen by
//! `EXT4_EXTENTS_FL`), reading bytes, streaming new data into newly allocated
//! contiguous runs (one write per run, in chunks of at most [`CHUNK`] bytes), and
//! the `i_blocks` accounting (data + tree blocks + the xattr block).

use std::io::Read;

use super::inode::{Inode, EXT4_EXTENTS_FL, EXT4_INLINE_DATA_FL};
use super::run::{push_run, Run};
use super::{Error, Ext, Result};
use crate::disk::{ReadAt, WriteAt};

/// Largest buffer used when streaming file data.
pub const CHUNK: usize = 4 << 20;

impl<D: ReadAt> Ext<D> {
    fn check_mappable(&self, inode: &Inode) -> Result<()> {
        if inode.flags() & EXT4_INLINE_DATA_FL != 0 {
            return Err(Error::unsupported(format!(
                "inode {}: inline data is not supported",
                inode.ino
            )));
        }
        Ok(())
    }

    /// Is this a fast symlink (target inside `i_block`)?
    pub(super) fn is_fast_symlink(&self, inode: &Inode) -> bool {
        let ea = if inode.file_acl() != 0 {
            u64::from(self.sb.block_size / 512)
        } else {
            0
        };
        inode.file_type() == super::FileType::Symlink
            && inode.flags() & (EXT4_EXTENTS_FL | EXT4_INLINE_DATA_FL) == 0
            && inode.size() < 60
            && inode.blocks_512(self.huge_file(), self.sb.block_size) <= ea
    }

    /// Every data run and every tree block of the inode.
    pub(super) fn mapping(&self, inode: &Inode) -> Result<(Vec<Run>, Vec<u64>)> {
        self.check_mappable(inode)?;
        if self.is_fast_symlink(inode) {
            return Ok((Vec::new(), Vec::new()));
        }
        if inode.flags() & EXT4_EXTENTS_FL != 0 {
            self.extent_runs(inode)
        } else {
            self.blockmap_runs(inode)
        }
    }

    /// Map one logical block: `(physical, contiguous blocks from it, uninit)`.
    pub(super) fn map_block(&self, inode: &Inode, lblk: u32) -> Result<Option<(u64, u32, bool)>> {
        self.check_mappable(inode)?;
        if inode.flags() & EXT4_EXTENTS_FL != 0 {
            self.extent_map(inode, lblk)
        } else {
            Ok(self.blockmap_map(inode, lblk)?.map(|(b, n)| (b, n, false)))
        }
    }

    /// Read file bytes at `offset`.
    pub(super) fn read_data(&self, inode: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let size = inode.size();
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let bs = self.bs();
        let want = (size - offset).min(buf.len() as u64) as usize;
        let mut done = 0usize;
        while done < want {
            let pos = offset + done as u64;
            let lblk = u32::try_from(pos / bs)
                .map_err(|_| Error::corrupt(format!("inode {}: offset too large", inode.ino)))?;
            let inblk = pos % bs;
            let left = want - done;
            match self.map_block(inode, lblk)? {
                None | Some((_, _, true)) => {
                    let n = ((bs - inblk) as usize).min(left);
                    buf[done..done + n].fill(0);
                    done += n;
                }
                Some((pblk, run, false)) => {
                    // Read as much of the run as needed in one call.
                    let run = u64::from(run.max(1)).min(1 + (left as u64) / bs + 1);
                    let n = ((run * bs - inblk) as usize).min(left);
                    let cached = self.meta.range(pblk..pblk + run).next().is_some();
                    if cached || n < bs as usize {
                        let mut blk = vec![0u8; bs as usize];
                        self.read_block(pblk, &mut blk)?;
                        let n = ((bs - inblk) as usize).min(left);
                        buf[done..done + n]
                            .copy_from_slice(&blk[inblk as usize..inblk as usize + n]);
                        done += n;
                    } else {
                        self.check_block(pblk, run)?;
                        self.dev
                            .read_exact_at(pblk * bs + inblk, &mut buf[done..done + n])
                            .map_err(|e| e.context(format_args!("inode {} data", inode.ino)))?;
                        done += n;
                    }
                }
            }
        }
        Ok(want)
    }

    /// A symlink's target bytes.
    pub(super) fn symlink_target(&self, inode: &Inode) -> Result<Vec<u8>> {
        let size = inode.size();
        if self.is_fast_symlink(inode) {
            // OK to cast: below 60.
            return Ok(inode.i_block().get(..size as usize).unwrap_or(&[]).to_vec());
        }
        if size > u64::from(self.sb.block_size) || size == 0 {
            return Err(Error::corrupt(format!(
                "inode {}: symlink of {size} bytes",
                inode.ino
            )));
        }
        // OK to cast: at most one block.
        let mut buf = vec![0u8; size as usize];
        let n = self.read_data(inode, 0, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Give the inode a new mapping (tree built bottom-up, extents when the inode
    /// or filesystem uses them) and set `i_blocks`. The old tree blocks are the
    /// caller's to free.
    pub(super) fn set_mapping(&mut self, inode: &mut Inode, runs: &[Run], goal: u64) -> Result<()> {
        let use_extents = inode.flags() & EXT4_EXTENTS_FL != 0;
        let tree = if use_extents {
            self.build_extents(inode, runs, goal)?
        } else {
            self.build_blockmap(inode, runs, goal)?
        };
        let data: u64 = runs.iter().map(|r| u64::from(r.len)).sum();
        let ea = u64::from(inode.file_acl() != 0);
        inode.set_fs_blocks(data + tree + ea, self.huge_file(), self.sb.block_size);
        Ok(())
    }

    /// Free (at the next flush) every data and tree block of the inode.
    pub(super) fn release_mapping(&mut self, inode: &Inode) -> Result<()> {
        let (runs, tree) = self.mapping(inode)?;
        self.check_owned(inode, &runs, &tree)?;
        for r in runs {
            self.free_blocks_later(r.pblk, u64::from(r.len));
        }
        for b in tree {
            self.free_blocks_later(b, 1);
        }
        Ok(())
    }
}

impl<D: WriteAt> Ext<D> {
    /// Stream `len` bytes from `data` into newly allocated runs near `goal`; one
    /// write per run (or per chunk). A block of zeros is left a hole (as
    /// `mke2fs -d` does); at most `data_blocks` blocks are allocated (more is an
    /// error: the source changed after it was measured). On failure the blocks
    /// are given back.
    pub(super) fn write_stream(
        &mut self,
        data: &mut dyn Read,
        len: u64,
        data_blocks: u64,
        goal: u64,
    ) -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        let r = self.write_stream_inner(data, len, data_blocks, goal, &mut runs);
        if let Err(e) = r {
            for run in &runs {
                let _ = self.unalloc_blocks(run.pblk, u64::from(run.len));
            }
            return Err(e);
        }
        Ok(runs)
    }

    fn write_stream_inner(
        &mut self,
        data: &mut dyn Read,
        len: u64,
        data_blocks: u64,
        goal: u64,
        runs: &mut Vec<Run>,
    ) -> Result<()> {
        let bs = self.bs();
        let total = len.div_ceil(bs);
        if total > u64::from(u32::MAX) {
            return Err(Error::invalid("file too large for ext"));
        }
        let chunk_blocks = (CHUNK as u64 / bs).max(1);
        // OK to cast: at most CHUNK bytes.
        let mut buf = vec![0u8; (total.min(chunk_blocks) * bs) as usize];
        let mut lblk = 0u64;
        let mut left = len;
        let mut goal = goal;
        let mut allocated = 0u64;
        while left > 0 {
            // Read the chunk first: a short source fails before anything is
            // allocated or written for it.
            let take = left.min(buf.len() as u64) as usize;
            data.read_exact(&mut buf[..take]).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Error::invalid(format!("the data ended before the announced {len} bytes"))
                } else {
                    Error::io("reading the new file contents", e)
                }
            })?;
            let blocks = (take as u64).div_ceil(bs);
            let bytes = (blocks * bs) as usize;
            buf[take..bytes].fill(0);
            let zero = |i: u64| {
                buf[(i * bs) as usize..((i + 1) * bs) as usize]
                    .iter()
                    .all(|&b| b == 0)
            };
            // Each stretch of non-zero blocks [seg, end) is written; zeros stay holes.
            let mut seg = 0u64;
            while seg < blocks {
                if zero(seg) {
                    seg += 1;
                    continue;
                }
                let mut end = seg + 1;
                while end < blocks && !zero(end) {
                    end += 1;
                }
                allocated += end - seg;
                if allocated > data_blocks {
                    return Err(Error::invalid(format!(
                        "the source holds more data than the {data_blocks} blocks measured before the copy (did it change?)"
                    )));
                }
                let mut done = seg;
                while done < end {
                    let (start, n) = self.alloc_run(goal, end - done)?;
                    push_run(
                        runs,
                        Run {
                            // OK to cast: total fits u32 (checked above).
                            lblk: (lblk + done) as u32,
                            pblk: start,
                            len: n as u32,
                            uninit: false,
                        },
                    );
                    let from = (done * bs) as usize;
                    let to = ((done + n) * bs) as usize;
                    self.dev
                        .write_all_at(start * bs, &buf[from..to])
                        .map_err(|e| e.context(format_args!("writing data at block {start}")))?;
                    done += n;
                    goal = start + n;
                }
                seg = end;
            }
            left -= take as u64;
            lblk += blocks;
        }
        Ok(())
    }
}

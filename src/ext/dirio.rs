//! The engine's side of directories: [`DirBlocks`] over a directory inode (map a
//! logical block through its extents or block map; append allocates a block,
//! rebuilds the mapping and grows `i_size`), the [`DirCtx`] of a directory, and
//! thin wrappers over the `dir` module's operations. No directory block format
//! lives here.

use super::dir::{self, DirBlocks, DirCtx, HashParams, RawEntry};
use super::group::CsumKind;
use super::inode::{dirent_file_type, Inode, EXT4_INDEX_FL};
use super::run::{push_run, Run};
use super::superblock::EXT2_FLAGS_UNSIGNED_HASH;
use super::{features, DirEntry, Error, Ext, FileType, Ino, Result};
use crate::disk::ReadAt;

/// Largest directory we agree to map (blocks): bounds memory on hostile sizes.
const MAX_DIR_BLOCKS: u64 = 1 << 18;

fn find(runs: &[Run], lblk: u32) -> Option<u64> {
    let i = runs.partition_point(|r| u64::from(r.lblk) + u64::from(r.len) <= u64::from(lblk));
    let r = runs.get(i)?;
    (r.lblk <= lblk).then(|| r.pblk + u64::from(lblk - r.lblk))
}

/// The physical block of directory block `lblk`; a hole is corruption.
fn dir_block(runs: &[Run], ino: Ino, lblk: u32) -> Result<u64> {
    find(runs, lblk)
        .ok_or_else(|| Error::corrupt(format!("directory inode {ino}: block {lblk} is a hole")))
}

/// A directory opened for reading.
struct DirReader<'a, D> {
    fs: &'a Ext<D>,
    ino: Ino,
    runs: Vec<Run>,
    count: u32,
}

impl<D: ReadAt> DirBlocks for DirReader<'_, D> {
    fn block_count(&self) -> u32 {
        self.count
    }
    fn read(&mut self, lblk: u32, buf: &mut [u8]) -> Result<()> {
        self.fs
            .read_block(dir_block(&self.runs, self.ino, lblk)?, buf)
    }
    fn write(&mut self, _lblk: u32, _buf: &[u8]) -> Result<()> {
        Err(Error::refused("directory opened for reading"))
    }
    fn append(&mut self) -> Result<u32> {
        Err(Error::refused("directory opened for reading"))
    }
}

/// A directory opened for changes; the inode is written back by the caller.
struct DirWriter<'a, D> {
    fs: &'a mut Ext<D>,
    inode: Inode,
    runs: Vec<Run>,
    tree: Vec<u64>,
    count: u32,
    changed: bool,
    /// Blocks before their first change: `(block, cached copy, was fresh)`.
    undo: Vec<(u64, Option<Vec<u8>>, bool)>,
}

/// What it takes to take back one directory insertion that is still only in
/// memory.
pub(super) struct DirUndo {
    dir: Ino,
    name: Vec<u8>,
    blocks: Vec<(u64, Option<Vec<u8>>, bool)>,
    grew: bool,
}

impl<D: ReadAt> DirBlocks for DirWriter<'_, D> {
    fn block_count(&self) -> u32 {
        self.count
    }
    fn read(&mut self, lblk: u32, buf: &mut [u8]) -> Result<()> {
        self.fs
            .read_block(dir_block(&self.runs, self.inode.ino, lblk)?, buf)
    }
    fn write(&mut self, lblk: u32, buf: &[u8]) -> Result<()> {
        let p = dir_block(&self.runs, self.inode.ino, lblk)?;
        if !self.undo.iter().any(|u| u.0 == p) {
            let prev = self.fs.meta.get(&p).cloned();
            self.undo.push((p, prev, self.fs.fresh.contains(&p)));
        }
        self.fs.put_meta(p, buf.to_vec(), false);
        Ok(())
    }
    fn append(&mut self) -> Result<u32> {
        let lblk = self.count;
        let goal = self
            .runs
            .last()
            .map(|r| r.pblk + u64::from(r.len))
            .unwrap_or_else(|| self.fs.group_goal(self.inode.ino));
        let (pblk, _) = self.fs.alloc_run(goal, 1)?;
        push_run(
            &mut self.runs,
            Run {
                lblk,
                pblk,
                len: 1,
                uninit: false,
            },
        );
        for &b in &self.tree {
            self.fs.free_blocks_later(b, 1);
        }
        self.fs.set_mapping(&mut self.inode, &self.runs, pblk + 1)?;
        let (_, tree) = self.fs.mapping(&self.inode)?;
        self.tree = tree;
        let bs = u64::from(self.fs.sb.block_size);
        self.inode.set_size((u64::from(lblk) + 1) * bs);
        self.fs.put_meta(pblk, vec![0u8; bs as usize], true);
        self.count += 1;
        self.changed = true;
        Ok(lblk)
    }
}

impl<D: ReadAt> Ext<D> {
    /// The first block of an inode's group (a goal for its data).
    pub(super) fn group_goal(&self, ino: Ino) -> u64 {
        self.sb.group_first_block(self.inode_group(ino))
    }

    /// The directory context of a directory inode.
    pub(super) fn dir_ctx(&self, inode: &Inode) -> DirCtx {
        DirCtx {
            block_size: self.sb.block_size as usize,
            ino: inode.ino,
            csum_seed: (self.csum == CsumKind::Meta).then(|| inode.csum_seed(self.fs_seed)),
            filetype: self.sb.has_incompat(features::INCOMPAT_FILETYPE),
            indexed: inode.flags() & EXT4_INDEX_FL != 0
                && self.sb.has_compat(features::COMPAT_DIR_INDEX),
            hash: HashParams {
                seed: self.sb.hash_seed(),
                default_version: self.sb.def_hash_version(),
                unsigned: self.sb.flags() & EXT2_FLAGS_UNSIGNED_HASH != 0,
            },
        }
    }

    fn dir_inode(&self, dir: Ino) -> Result<(Inode, Vec<Run>, Vec<u64>, u32)> {
        let inode = self.read_inode(dir)?;
        if !inode.is_dir() {
            return Err(Error::invalid(format!("inode {dir} is not a directory")));
        }
        let blocks = inode.size() / self.bs();
        if blocks > MAX_DIR_BLOCKS {
            return Err(Error::corrupt(format!(
                "directory inode {dir}: size {} is too large",
                inode.size()
            )));
        }
        let (runs, tree) = self.mapping(&inode)?;
        // OK to cast: bounded by MAX_DIR_BLOCKS.
        Ok((inode, runs, tree, blocks as u32))
    }

    /// Directory `dir` opened for reading, and its context.
    fn dir_reader(&self, dir: Ino) -> Result<(DirReader<'_, D>, DirCtx)> {
        let (inode, runs, _, count) = self.dir_inode(dir)?;
        let ctx = self.dir_ctx(&inode);
        let r = DirReader {
            fs: self,
            ino: dir,
            runs,
            count,
        };
        Ok((r, ctx))
    }

    /// Look `name` up in directory `dir`.
    pub(super) fn dir_lookup(&self, dir: Ino, name: &[u8]) -> Result<Option<RawEntry>> {
        let (mut r, ctx) = self.dir_reader(dir)?;
        dir::lookup(&mut r, &ctx, name)
    }

    /// The entries of directory `dir` (no `.`/`..`), types filled from the inode
    /// when the entry has none.
    pub(super) fn dir_entries(&self, dir: Ino) -> Result<Vec<DirEntry>> {
        let raw = self.dir_raw_entries(dir)?;
        let mut out = Vec::with_capacity(raw.len());
        for e in raw {
            let mut t = dirent_file_type(e.file_type);
            if t == FileType::Unknown {
                t = self
                    .read_inode(e.ino)
                    .map(|i| i.file_type())
                    .unwrap_or(FileType::Unknown);
            }
            out.push(DirEntry {
                name: e.name,
                ino: e.ino,
                file_type: t,
            });
        }
        Ok(out)
    }

    pub(super) fn dir_raw_entries(&self, dir: Ino) -> Result<Vec<RawEntry>> {
        let (mut r, ctx) = self.dir_reader(dir)?;
        dir::entries(&mut r, &ctx)
    }

    /// Blocks the directory code would add to insert `name` into `dir`.
    pub(super) fn dir_insert_cost(&self, dir: Ino, name: &[u8]) -> Result<u64> {
        let (mut r, ctx) = self.dir_reader(dir)?;
        Ok(u64::from(dir::add_entry_cost(&mut r, &ctx, name)?))
    }

    /// Is directory `dir` empty?
    pub(super) fn dir_is_empty(&self, dir: Ino) -> Result<bool> {
        let (mut r, ctx) = self.dir_reader(dir)?;
        dir::is_empty(&mut r, &ctx)
    }

    /// Run `f` over directory `dir` opened for changes; its inode is put back
    /// dirty when a block was added.
    #[allow(clippy::type_complexity)]
    fn with_dir_writer<T>(
        &mut self,
        dir: Ino,
        f: impl FnOnce(&mut dyn DirBlocks, &DirCtx) -> Result<T>,
    ) -> Result<(T, Vec<(u64, Option<Vec<u8>>, bool)>, bool)> {
        let (inode, runs, tree, count) = self.dir_inode(dir)?;
        let ctx = self.dir_ctx(&inode);
        let mut w = DirWriter {
            fs: self,
            inode,
            runs,
            tree,
            count,
            changed: false,
            undo: Vec::new(),
        };
        let r = f(&mut w, &ctx);
        let (changed, inode, undo) = (w.changed, w.inode, w.undo);
        if changed {
            self.put_inode(inode);
        }
        Ok((r?, undo, changed))
    }

    /// Add `name -> ino` (type byte `ft`) to directory `dir`; the result can
    /// take the insertion back until the next flush.
    pub(super) fn dir_add(
        &mut self,
        dir: Ino,
        name: &[u8],
        ino: Ino,
        ft: FileType,
    ) -> Result<DirUndo> {
        let t = super::inode::dirent_type(ft);
        let ((), blocks, grew) =
            self.with_dir_writer(dir, |b, ctx| dir::add_entry(b, ctx, name, ino, t))?;
        Ok(DirUndo {
            dir,
            name: name.to_vec(),
            blocks,
            grew,
        })
    }

    /// Take back an insertion: the blocks as they were (the same bytes), or,
    /// when the directory grew, a plain removal.
    pub(super) fn dir_undo(&mut self, u: DirUndo) -> Result<()> {
        if u.grew {
            self.dir_remove(u.dir, &u.name)?;
            return Ok(());
        }
        for (p, prev, fresh) in u.blocks {
            match prev {
                Some(b) => {
                    self.meta.insert(p, b);
                }
                None => {
                    self.meta.remove(&p);
                }
            }
            if !fresh {
                self.fresh.remove(&p);
            }
        }
        Ok(())
    }

    /// Remove `name` from directory `dir`.
    pub(super) fn dir_remove(&mut self, dir: Ino, name: &[u8]) -> Result<RawEntry> {
        Ok(self
            .with_dir_writer(dir, |b, ctx| dir::remove_entry(b, ctx, name))?
            .0)
    }
}

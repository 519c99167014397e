//! The recipes that change a filesystem, each a short numbered sequence as in
//! libext2fs' `mkdir.c`: check and reserve space up front (nothing written on
//! NoSpace), allocate, build the inode, write data, link into the parent. All
//! changes except file data stay in memory until [`Ext::flush`].

use std::collections::{HashMap, HashSet};
use std::io::Read;

use super::inode::{self, Inode, Time, S_IFDIR, S_IFLNK, S_IFREG};
use super::run::Run;
use super::{features, Error, Ext, FileType, Ino, NewNode, Result, Space, Timestamp};
use crate::disk::{ReadAt, WriteAt};
use crate::finding::Finding;

/// `EXT4_LINK_MAX`: past it a directory's link count is 1 (dir_nlink).
const EXT4_LINK_MAX: u16 = 65000;
/// Blocks a directory insertion may need (a new leaf, a split, an index block).
const DIR_INSERT_BLOCKS: u64 = 3;

/// A change of contents: mtime and ctime become `when`.
fn modified(inode: &mut Inode, when: Timestamp) {
    inode.set_time(Time::M, when);
    inode.set_time(Time::C, when);
}

impl<D: ReadAt> Ext<D> {
    /// Keep an inode's record to be written at the next flush.
    pub(super) fn put_inode(&mut self, inode: Inode) {
        self.inodes.insert(inode.ino, inode.raw);
    }

    /// Keep a metadata block to be written at the next flush. `fresh` blocks were
    /// allocated since the last flush and are written before the inodes.
    pub(super) fn put_meta(&mut self, pblk: u64, buf: Vec<u8>, fresh: bool) {
        let fresh = fresh || self.fresh.contains(&pblk);
        if fresh {
            self.fresh.insert(pblk);
        }
        self.meta.insert(pblk, buf);
    }

    fn next_generation(&mut self) -> u32 {
        self.gen_next = self
            .gen_next
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        self.gen_next
    }

    /// A whole new inode record (the table slot may hold garbage).
    fn new_inode(&mut self, ino: Ino, mode: u16, node: &NewNode, links: u16) -> Inode {
        let size = usize::from(self.sb.inode_size);
        let mut inode = Inode {
            ino,
            raw: vec![0u8; size],
        };
        if size > inode::EXT2_GOOD_OLD_INODE_SIZE {
            let max = (size - inode::EXT2_GOOD_OLD_INODE_SIZE) as u16;
            let mut want = self.sb.want_extra_isize();
            if want < 4 || want % 4 != 0 || want > max {
                want = 32.min(max);
            }
            want = want.max(self.sb.min_extra_isize().min(max) & !3);
            crate::bytes::put_le16(&mut inode.raw, inode::I_EXTRA_ISIZE, want);
        }
        inode.set_mode(mode);
        inode.set_uid(node.uid);
        inode.set_gid(node.gid);
        inode.set_links(links);
        inode.set_time(Time::A, node.atime);
        inode.set_time(Time::M, node.mtime);
        inode.set_time(Time::C, node.ctime);
        inode.set_time(Time::Cr, node.ctime);
        let gen = self.next_generation();
        crate::bytes::put_le32(&mut inode.raw, inode::I_GENERATION, gen);
        let t = mode & inode::S_IFMT;
        if self.sb.has_incompat(features::INCOMPAT_EXTENTS) && (t == S_IFREG || t == S_IFDIR) {
            inode.set_flags(inode::EXT4_EXTENTS_FL);
            inode.set_i_block(&super::extent::empty_root());
        }
        inode
    }

    /// A name that may be created (the duplicate check is the directory code's,
    /// done while inserting).
    fn check_new_name(&self, name: &[u8]) -> Result<()> {
        if name.is_empty() || name.len() > 255 || name.contains(&b'/') || name.contains(&0) {
            return Err(Error::invalid(format!(
                "invalid file name {:?}",
                String::from_utf8_lossy(name)
            )));
        }
        if name == b"." || name == b".." {
            return Err(Error::invalid("'.' and '..' cannot be created"));
        }
        Ok(())
    }

    /// Link a freshly allocated inode into `parent`; on failure the inode goes
    /// back at once (nothing references it).
    fn link_new(
        &mut self,
        parent: Ino,
        name: &[u8],
        ino: Ino,
        ft: FileType,
        saved: (u16, u32),
    ) -> Result<super::dirio::DirUndo> {
        match self.dir_add(parent, name, ino, ft) {
            Ok(u) => Ok(u),
            Err(e) => {
                self.unalloc_inode(ino, ft == FileType::Directory, saved)?;
                Err(e)
            }
        }
    }

    /// Update a directory's mtime and ctime.
    fn touch_dir(&mut self, dir: Ino, when: Timestamp) -> Result<()> {
        let mut d = self.read_inode(dir)?;
        modified(&mut d, when);
        self.put_inode(d);
        Ok(())
    }

    /// Drop one link of a non-directory; free it at zero.
    fn drop_link(&mut self, ino: Ino, when: Timestamp) -> Result<()> {
        let mut inode = self.read_inode(ino)?;
        let links = inode.links();
        if links > 1 {
            inode.set_links(links - 1);
            inode.set_time(Time::C, when);
            self.put_inode(inode);
            return Ok(());
        }
        self.free_inode(inode, when)
    }

    /// Free an inode: its blocks, tree, xattr block, then the inode itself.
    fn free_inode(&mut self, mut inode: Inode, when: Timestamp) -> Result<()> {
        let dir = inode.is_dir();
        self.release_mapping(&inode)?;
        self.release_xattr_block(&inode)?;
        inode.set_links(0);
        // OK to truncate: i_dtime is 32 bits.
        inode.set_dtime(when.sec as u32);
        let ino = inode.ino;
        self.put_inode(inode);
        self.free_inode_later(ino, dir);
        Ok(())
    }

    fn require_dir(&self, ino: Ino) -> Result<Inode> {
        let i = self.read_inode(ino)?;
        if !i.is_dir() {
            return Err(Error::invalid(format!("inode {ino} is not a directory")));
        }
        Ok(i)
    }
}

impl<D: WriteAt> Ext<D> {
    /// Reserve `need` plus what inserting `name` into `parent` may take: the
    /// quick worst case first; only when that does not fit, the directory code's
    /// exact count of new blocks (plus room for the mapping to grow).
    fn reserve_with_insert(&mut self, need: Space, parent: Ino, name: &[u8]) -> Result<()> {
        let worst = Space {
            blocks: need.blocks + DIR_INSERT_BLOCKS,
            inodes: need.inodes,
        };
        match self.reserve(worst) {
            Err(e) if e.kind() == super::ErrorKind::NoSpace => {
                let add = self.dir_insert_cost(parent, name)?;
                let grow = if add > 0 { 2 } else { 0 };
                self.reserve(Space {
                    blocks: need.blocks + add + grow,
                    inodes: need.inodes,
                })
            }
            r => r,
        }
    }

    /// Reserve space for a file of `len` bytes written from `goal` (and its
    /// name in a directory): the worst-case tree first; when that does not fit
    /// and the file gets extents, the tree its real free-space layout needs
    /// (with a margin of two extents for a directory block taken meanwhile).
    fn reserve_file(
        &mut self,
        need: Space,
        goal: u64,
        len: u64,
        data_blocks: u64,
        insert: Option<(Ino, &[u8])>,
    ) -> Result<()> {
        let first = match insert {
            Some((parent, name)) => self.reserve_with_insert(need, parent, name),
            None => self.reserve(need),
        };
        let e = match first {
            Err(e) if e.kind() == super::ErrorKind::NoSpace => e,
            Ok(()) => return self.preload_for(goal, need.blocks),
            r => return r,
        };
        let data = len.div_ceil(self.bs());
        // The simulation knows contiguous free space, not where holes break
        // extents: only a file without holes can be reserved that exactly.
        if !self.sb.has_incompat(features::INCOMPAT_EXTENTS) || data_blocks < data {
            return Err(e);
        }
        let Some(extents) = self.simulate_extents(goal, data)? else {
            return Err(e);
        };
        let exact = Space {
            blocks: data + super::extent::tree_blocks_for(extents + 2, self.sb.block_size),
            inodes: need.inodes,
        };
        match insert {
            Some((parent, name)) => self.reserve_with_insert(exact, parent, name)?,
            None => self.reserve(exact)?,
        }
        self.preload_for(goal, exact.blocks)
    }

    pub(super) fn do_create_file(
        &mut self,
        parent: Ino,
        name: &[u8],
        node: &NewNode,
        data: &mut dyn Read,
        len: u64,
        data_blocks: u64,
    ) -> Result<Ino> {
        // 1. Check, and reserve the worst case before any change.
        self.require_dir(parent)?;
        self.check_new_name(name)?;
        let need = self.sparse_file_cost(len, data_blocks);
        let goal = self.data_goal(parent);
        self.reserve_file(need, goal, len, data_blocks, Some((parent, name)))?;
        // 2. The inode, near its parent, and its name (the duplicate check).
        let (ino, saved) = self.alloc_inode_saving(self.inode_group(parent), false)?;
        let undo = self.link_new(parent, name, ino, FileType::Regular, saved)?;
        // 3. Data into new runs (from the goal the space check simulated).
        let runs = match self.write_stream(data, len, data_blocks, goal) {
            Ok(r) => r,
            Err(e) => {
                self.dir_undo(undo)?;
                self.unalloc_inode(ino, false, saved)?;
                return Err(e);
            }
        };
        // 4. The inode record and its mapping.
        let mut inode = self.new_inode(ino, S_IFREG | (node.perm & 0o7777), node, 1);
        inode.set_size(len);
        let goal = runs
            .last()
            .map(|r| r.pblk + u64::from(r.len))
            .unwrap_or(goal);
        self.set_mapping(&mut inode, &runs, goal)?;
        self.note_large_file(len);
        self.put_inode(inode);
        self.touch_dir(parent, node.ctime)?;
        Ok(ino)
    }

    /// Where new data for a child of `parent` should go: after the last
    /// allocation when it is in use this session, else the parent's group.
    fn data_goal(&self, parent: Ino) -> u64 {
        if self.goal > self.sb.first_data_block {
            self.goal
        } else {
            self.group_goal(parent)
        }
    }

    fn note_large_file(&mut self, len: u64) {
        if len > 0x7FFF_FFFF && !self.sb.has_ro_compat(features::RO_COMPAT_LARGE_FILE) {
            self.sb.add_ro_compat(features::RO_COMPAT_LARGE_FILE);
            self.sb_dirty = true;
        }
    }

    pub(super) fn do_replace_contents(
        &mut self,
        ino: Ino,
        data: &mut dyn Read,
        len: u64,
        data_blocks: u64,
        when: Timestamp,
    ) -> Result<()> {
        let mut inode = self.read_inode(ino)?;
        if inode.file_type() != FileType::Regular {
            return Err(Error::invalid(format!("inode {ino} is not a regular file")));
        }
        // 1. The old mapping (freed only after the switch), and space for the new.
        let (old_runs, old_tree) = self.mapping(&inode)?;
        self.check_owned(&inode, &old_runs, &old_tree)?;
        let mut need = self.sparse_file_cost(len, data_blocks);
        need.inodes = 0;
        let goal = old_runs
            .first()
            .map(|r| r.pblk)
            .unwrap_or_else(|| self.group_goal(ino));
        let goal = if self.goal > self.sb.first_data_block {
            self.goal
        } else {
            goal
        };
        self.reserve_file(need, goal, len, data_blocks, None)?;
        // 2. New data into new blocks (old ones are still in use: never reused).
        let goal = old_runs
            .first()
            .map(|r| r.pblk)
            .unwrap_or_else(|| self.group_goal(ino));
        let goal = if self.goal > self.sb.first_data_block {
            self.goal
        } else {
            goal
        };
        let runs = self.write_stream(data, len, data_blocks, goal)?;
        // 3. Switch the inode.
        let goal = runs
            .last()
            .map(|r| r.pblk + u64::from(r.len))
            .unwrap_or(goal);
        self.set_mapping(&mut inode, &runs, goal)?;
        inode.set_size(len);
        modified(&mut inode, when);
        self.note_large_file(len);
        self.put_inode(inode);
        // 4. Free the old blocks (at the next flush, after the inode is written).
        for r in old_runs {
            self.free_blocks_later(r.pblk, u64::from(r.len));
        }
        for b in old_tree {
            self.free_blocks_later(b, 1);
        }
        Ok(())
    }

    /// Increment a directory's link count for a new subdirectory (dir_nlink).
    fn parent_link_inc(&mut self, parent: Ino, when: Timestamp) -> Result<()> {
        let mut p = self.read_inode(parent)?;
        let l = p.links();
        if (2..EXT4_LINK_MAX - 1).contains(&l) {
            p.set_links(l + 1);
        } else {
            p.set_links(1);
        }
        modified(&mut p, when);
        self.put_inode(p);
        Ok(())
    }

    fn parent_link_dec(&mut self, parent: Ino, when: Timestamp) -> Result<()> {
        let mut p = self.read_inode(parent)?;
        let l = p.links();
        if l > 2 {
            p.set_links(l - 1);
        }
        modified(&mut p, when);
        self.put_inode(p);
        Ok(())
    }

    pub(super) fn do_mkdir(&mut self, parent: Ino, name: &[u8], node: &NewNode) -> Result<Ino> {
        // 1. Check and reserve: the inode, its first block, the parent's insertion.
        let p = self.require_dir(parent)?;
        self.check_new_name(name)?;
        if p.links() >= EXT4_LINK_MAX - 1 && !self.sb.has_ro_compat(features::RO_COMPAT_DIR_NLINK) {
            return Err(Error::refused(format!(
                "directory inode {parent} has too many subdirectories (no dir_nlink)"
            )));
        }
        let need = Space {
            blocks: 1 + self.tree_cost(1),
            inodes: 1,
        };
        self.reserve_with_insert(need, parent, name)?;
        // 2. Allocate the inode and its block.
        let (ino, saved) = self.alloc_inode_saving(self.inode_group(parent), true)?;
        self.link_new(parent, name, ino, FileType::Directory, saved)?;
        let goal = self.data_goal(parent);
        let (pblk, _) = self.alloc_run(goal, 1)?;
        // 3. The inode: links 2, one block.
        let mut inode = self.new_inode(ino, S_IFDIR | (node.perm & 0o7777), node, 2);
        inode.set_size(self.bs());
        let runs = [Run {
            lblk: 0,
            pblk,
            len: 1,
            uninit: false,
        }];
        self.set_mapping(&mut inode, &runs, pblk + 1)?;
        // 4. Its block: '.' and '..'.
        let ctx = self.dir_ctx(&inode);
        let block = super::dir::new_dir_block(&ctx, parent);
        if block.len() != self.sb.block_size as usize {
            return Err(Error::unsupported(
                "directory block builder is not available",
            ));
        }
        self.put_meta(pblk, block, true);
        self.put_inode(inode);
        // 5. Count the new '..' in the parent.
        self.parent_link_inc(parent, node.ctime)?;
        Ok(ino)
    }

    pub(super) fn do_symlink(
        &mut self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        node: &NewNode,
    ) -> Result<Ino> {
        self.require_dir(parent)?;
        self.check_new_name(name)?;
        if target.is_empty() || target.len() >= self.sb.block_size as usize || target.contains(&0) {
            return Err(Error::invalid(format!(
                "symlink target of {} bytes is not valid",
                target.len()
            )));
        }
        let fast = target.len() < inode::I_BLOCK_LEN;
        let blocks = if fast { 0 } else { 1 + self.tree_cost(1) };
        self.reserve_with_insert(Space { blocks, inodes: 1 }, parent, name)?;
        let (ino, saved) = self.alloc_inode_saving(self.inode_group(parent), false)?;
        self.link_new(parent, name, ino, FileType::Symlink, saved)?;
        let mut inode = self.new_inode(ino, S_IFLNK | 0o777, node, 1);
        let _ = node.perm;
        inode.set_size(target.len() as u64);
        if fast {
            let mut ib = [0u8; inode::I_BLOCK_LEN];
            ib[..target.len()].copy_from_slice(target);
            inode.set_i_block(&ib);
        } else {
            let goal = self.data_goal(parent);
            let (pblk, _) = self.alloc_run(goal, 1)?;
            let mut block = vec![0u8; self.sb.block_size as usize];
            block[..target.len()].copy_from_slice(target);
            self.put_meta(pblk, block, true);
            if self.sb.has_incompat(features::INCOMPAT_EXTENTS) {
                inode.set_flags(inode.flags() | inode::EXT4_EXTENTS_FL);
            }
            let runs = [Run {
                lblk: 0,
                pblk,
                len: 1,
                uninit: false,
            }];
            self.set_mapping(&mut inode, &runs, pblk + 1)?;
        }
        self.put_inode(inode);
        self.touch_dir(parent, node.ctime)?;
        Ok(ino)
    }

    pub(super) fn do_mknod(
        &mut self,
        parent: Ino,
        name: &[u8],
        ft: FileType,
        rdev: (u32, u32),
        node: &NewNode,
    ) -> Result<Ino> {
        let type_bits: u16 = match ft {
            FileType::CharDevice => 0o020000,
            FileType::BlockDevice => 0o060000,
            FileType::Fifo => 0o010000,
            FileType::Socket => 0o140000,
            _ => {
                return Err(Error::invalid(format!(
                    "mknod makes devices, fifos and sockets, not {ft:?}"
                )))
            }
        };
        self.require_dir(parent)?;
        self.check_new_name(name)?;
        self.reserve_with_insert(
            Space {
                blocks: 0,
                inodes: 1,
            },
            parent,
            name,
        )?;
        let (ino, saved) = self.alloc_inode_saving(self.inode_group(parent), false)?;
        self.link_new(parent, name, ino, ft, saved)?;
        let mut inode = self.new_inode(ino, type_bits | (node.perm & 0o7777), node, 1);
        if matches!(ft, FileType::CharDevice | FileType::BlockDevice) {
            // As the kernel: the old 8:8 encoding in i_block[0] when it fits,
            // else the new one in i_block[1].
            let (major, minor) = rdev;
            let mut ib = [0u8; inode::I_BLOCK_LEN];
            if major < 256 && minor < 256 {
                crate::bytes::put_le32(&mut ib, 0, (major << 8) | minor);
            } else {
                let new = (minor & 0xFF) | ((major & 0xFFF) << 8) | ((minor & !0xFF) << 12);
                crate::bytes::put_le32(&mut ib, 4, new);
            }
            inode.set_i_block(&ib);
        }
        self.put_inode(inode);
        self.touch_dir(parent, node.ctime)?;
        Ok(ino)
    }

    pub(super) fn do_link(&mut self, parent: Ino, name: &[u8], ino: Ino) -> Result<()> {
        self.require_dir(parent)?;
        let mut inode = self.read_inode(ino)?;
        if inode.is_dir() {
            return Err(Error::invalid(format!(
                "inode {ino} is a directory: no hard link"
            )));
        }
        if inode.links() == 0 {
            return Err(Error::invalid(format!("inode {ino} is not in use")));
        }
        if inode.links() >= EXT4_LINK_MAX {
            return Err(Error::refused(format!("inode {ino} has too many links")));
        }
        self.check_new_name(name)?;
        self.reserve_with_insert(Space::default(), parent, name)?;
        let now = Timestamp::now();
        self.dir_add(parent, name, ino, inode.file_type())?;
        inode.set_links(inode.links() + 1);
        inode.set_time(Time::C, now);
        self.put_inode(inode);
        self.touch_dir(parent, now)
    }

    fn lookup_child(&self, parent: Ino, name: &[u8]) -> Result<Inode> {
        self.require_dir(parent)?;
        if name == b"." || name == b".." {
            return Err(Error::invalid("'.' and '..' cannot be removed"));
        }
        let e = self.dir_lookup(parent, name)?.ok_or_else(|| {
            Error::not_found(format!(
                "{} not found in directory inode {parent}",
                String::from_utf8_lossy(name)
            ))
        })?;
        self.read_inode(e.ino)
    }

    pub(super) fn do_unlink(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        if !self.writable {
            return Err(Error::refused("the filesystem is open read-only"));
        }
        let child = self.lookup_child(parent, name)?;
        if child.is_dir() {
            return Err(Error::invalid(format!(
                "{} is a directory",
                String::from_utf8_lossy(name)
            )));
        }
        // Plan before apply: the blocks to free are checked before any change.
        if child.links() <= 1 {
            self.check_freeable(&child)?;
        }
        let now = Timestamp::now();
        self.dir_remove(parent, name)?;
        self.drop_link(child.ino, now)?;
        self.touch_dir(parent, now)
    }

    /// The blocks `free_inode` would free are readable, in use, and no metadata.
    fn check_freeable(&mut self, inode: &Inode) -> Result<()> {
        let (runs, tree) = self.mapping(inode)?;
        self.check_owned(inode, &runs, &tree)?;
        let acl = inode.file_acl();
        if acl != 0 {
            self.check_owned(inode, &[], &[acl])?;
        }
        Ok(())
    }

    pub(super) fn do_rmdir(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        if !self.writable {
            return Err(Error::refused("the filesystem is open read-only"));
        }
        let child = self.lookup_child(parent, name)?;
        if !child.is_dir() {
            return Err(Error::invalid(format!(
                "{} is not a directory",
                String::from_utf8_lossy(name)
            )));
        }
        if !self.dir_is_empty(child.ino)? {
            return Err(Error::invalid(format!(
                "directory {} is not empty",
                String::from_utf8_lossy(name)
            )));
        }
        self.check_freeable(&child)?;
        let now = Timestamp::now();
        self.dir_remove(parent, name)?;
        self.free_inode(child, now)?;
        self.parent_link_dec(parent, now)
    }

    /// The check pass of [`Ext::remove_tree`]: walk the tree of directory `top`
    /// (named `name` in `parent`) as the removal will, descending where it will
    /// (each directory once, only where its `..` names the directory holding it),
    /// and read and check everything the removal reads or frees: every directory's
    /// blocks and entries, every entry's inode, and the block map (extent tree or
    /// indirect blocks) and xattr block of every inode it will free, each block
    /// in use and no metadata. A file with more links than the tree holds is
    /// only unlinked, so its map is not needed. Nothing is changed.
    fn check_tree_removable(&mut self, top: Ino, parent: Ino, name: &[u8]) -> Result<()> {
        let mut seen = HashSet::new();
        // Files with several links: the names of each met in the tree.
        let mut names_met: HashMap<Ino, u32> = HashMap::new();
        let mut stack: Vec<(Ino, Vec<Ino>)> = Vec::new();
        let mut open = Some(top);
        loop {
            if let Some(dir) = open.take() {
                if dir == parent || dir == super::ROOT_INO || !seen.insert(dir) {
                    return Err(Error::corrupt(format!(
                        "directory inode {dir} appears twice under {}",
                        String::from_utf8_lossy(name)
                    )));
                }
                let inode = self.read_inode(dir)?;
                self.check_freeable(&inode)?;
                let mut subdirs = Vec::new();
                for e in self.dir_raw_entries(dir)? {
                    let child = self.read_inode(e.ino)?;
                    if child.is_dir() {
                        subdirs.push(e.ino);
                    } else if child.links() <= 1 {
                        self.check_freeable(&child)?;
                    } else {
                        *names_met.entry(e.ino).or_default() += 1;
                    }
                }
                stack.push((dir, subdirs));
            }
            let Some((dir, subdirs)) = stack.last_mut() else {
                break;
            };
            let dir = *dir;
            match subdirs.pop() {
                Some(ino) => {
                    if !seen.contains(&ino)
                        && ino != parent
                        && ino != super::ROOT_INO
                        && self.lookup(ino, b"..")? == Some(dir)
                    {
                        open = Some(ino);
                    }
                }
                None => {
                    stack.pop();
                }
            }
        }
        for (ino, met) in names_met {
            let inode = self.read_inode(ino)?;
            if u32::from(inode.links()) <= met {
                self.check_freeable(&inode)?;
            }
        }
        Ok(())
    }

    pub(super) fn do_remove_tree(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        if !self.writable {
            return Err(Error::refused("the filesystem is open read-only"));
        }
        let child = self.lookup_child(parent, name)?;
        if !child.is_dir() {
            return self.do_unlink(parent, name);
        }
        // Plan before apply: damage anywhere in the tree is refused before the
        // first change (the removal below may flush between directories).
        self.check_tree_removable(child.ino, parent, name)?;
        // Post-order, one directory at a time: when a directory's subdirectories
        // are gone, drop its other names' links, free it and take its name out
        // of its parent. Each such step leaves a consistent filesystem, so the
        // dirty cache may be flushed between steps (huge trees stay in bounded
        // memory). A subdirectory met a second time (a directory hard link: a
        // loop back to an ancestor, or a second name of a directory elsewhere,
        // one whose `..` names another parent) is not descended into: its
        // entry goes with the directory that holds it, and a warning says so.
        struct Frame {
            dir: Ino,
            parent: Ino,
            name: Vec<u8>,
            subdirs: Vec<(Vec<u8>, Ino)>,
            others: Vec<Ino>,
        }
        let mut seen = HashSet::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut open = Some((child.ino, parent, name.to_vec()));
        let now = Timestamp::now();
        loop {
            if let Some((dir, par, nm)) = open.take() {
                if dir == parent || dir == super::ROOT_INO || !seen.insert(dir) {
                    return Err(Error::corrupt(format!(
                        "directory inode {dir} appears twice under {}",
                        String::from_utf8_lossy(name)
                    )));
                }
                let mut subdirs = Vec::new();
                let mut others = Vec::new();
                for e in self.dir_raw_entries(dir)? {
                    if self.read_inode(e.ino)?.is_dir() {
                        subdirs.push((e.name, e.ino));
                    } else {
                        others.push(e.ino);
                    }
                }
                stack.push(Frame {
                    dir,
                    parent: par,
                    name: nm,
                    subdirs,
                    others,
                });
            }
            let Some(top) = stack.last_mut() else { break };
            if let Some((nm, ino)) = top.subdirs.pop() {
                let dir = top.dir;
                let dotdot = if seen.contains(&ino) || ino == parent || ino == super::ROOT_INO {
                    None
                } else {
                    self.lookup(ino, b"..")?
                };
                if dotdot == Some(dir) {
                    open = Some((ino, dir, nm));
                } else {
                    let why = match dotdot {
                        None => "met before in this removal: a loop".to_string(),
                        Some(p) => format!("its `..` names inode {p}"),
                    };
                    self.findings.push(Finding::warning(
                        format!("directory inode {dir}"),
                        format!(
                            "entry {} is a second name of directory inode {ino} (a directory hard link, {why}; `e2fsck -f` repairs it): not descended into, the entry goes with inode {dir}",
                            String::from_utf8_lossy(&nm),
                        ),
                    ));
                }
                continue;
            }
            // Every subdirectory is gone: finish this one.
            let Some(f) = stack.pop() else { break };
            for ino in f.others {
                self.drop_link(ino, now)?;
            }
            let inode = self.read_inode(f.dir)?;
            self.free_inode(inode, now)?;
            self.dir_remove(f.parent, &f.name)?;
            self.parent_link_dec(f.parent, now)?;
            self.maybe_flush()?;
        }
        Ok(())
    }
}

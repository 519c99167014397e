//! Path resolution inside the guest: components separated by `/`, symlinks
//! followed from the guest's root (never the host's), at most 40 of them, `..`
//! at the root stays at the root. The walk keeps the stack of directories it came
//! through, so `..` never needs the on-disk `..` entry and a hostile image cannot
//! make it loop.

use std::collections::VecDeque;

use super::{Error, Ext, FileType, Ino, Result, ROOT_INO};
use crate::disk::ReadAt;

/// Most symlinks followed in one resolution (as Linux's MAXSYMLINKS).
const MAX_SYMLINKS: u32 = 40;
/// Most components handled in one resolution (bounds work on hostile links).
const MAX_COMPONENTS: usize = 4096;

fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

impl<D: ReadAt> Ext<D> {
    /// Resolve `path` (absolute or relative to the root) to an inode.
    pub(super) fn resolve_path(&self, path: &[u8], follow_last: bool) -> Result<Ino> {
        let shown = String::from_utf8_lossy(path).into_owned();
        let mut stack: Vec<Ino> = vec![ROOT_INO];
        let mut todo: VecDeque<Vec<u8>> = components(path).map(|c| c.to_vec()).collect();
        let mut links = 0u32;
        let mut steps = 0usize;
        while let Some(comp) = todo.pop_front() {
            steps += 1;
            if steps > MAX_COMPONENTS {
                return Err(Error::corrupt(format!("{shown}: too many path components")));
            }
            let cur = *stack.last().unwrap_or(&ROOT_INO);
            if comp == b".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let cur_inode = self.read_inode(cur)?;
            if !cur_inode.is_dir() {
                return Err(Error::not_found(format!(
                    "{shown}: not a directory on the way"
                )));
            }
            let Some(e) = self.dir_lookup(cur, &comp)? else {
                return Err(Error::not_found(format!(
                    "{shown}: '{}' not found",
                    String::from_utf8_lossy(&comp)
                )));
            };
            let child = self.read_inode(e.ino)?;
            let last = todo.is_empty();
            if child.file_type() == FileType::Symlink && (!last || follow_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Error::invalid(format!(
                        "{shown}: too many levels of symlinks"
                    )));
                }
                let target = self.symlink_target(&child)?;
                if target.first() == Some(&b'/') {
                    stack.truncate(1);
                }
                for c in components(&target).collect::<Vec<_>>().into_iter().rev() {
                    todo.push_front(c.to_vec());
                }
                continue;
            }
            stack.push(e.ino);
        }
        Ok(*stack.last().unwrap_or(&ROOT_INO))
    }
}

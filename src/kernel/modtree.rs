//! Is the Xen block front-end in a kernel's module tree (`/lib/modules/VER`,
//! in a guest or on the host with `--modules`)? depmod's index says where:
//! `modules.dep` names every module it indexed by its path in the tree
//! (`kernel/drivers/block/xen-blkfront.ko.xz: …`, or `updates/…`, `extra/…`
//! for one built out of tree), `modules.builtin` those built into the kernel.
//! When neither names it (a tree depmod never ran on, or a stale index), the
//! tree is walked, bounded: the module may be anywhere in it.

use std::collections::VecDeque;
use std::fs;
use std::path::PathBuf;

use super::initramfs::is_blkfront;
use crate::error::{Error, Result};
use crate::ext::FileType;
use crate::guest::reader::GuestFs;

/// Largest index file read (Debian 12's `modules.dep` is about 400 KB).
const MAX_INDEX: u64 = 32 << 20;
/// Most directories one walk lists (Debian 12's tree has about 900).
const MAX_WALK_DIRS: usize = 20_000;
/// Deepest directory a walk enters below the tree (Debian's deepest is 7).
const MAX_WALK_DEPTH: usize = 16;

/// Where the block front-end is in a module tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blkfront {
    /// A module file, at this path relative to the tree.
    Module(String),
    /// Built into the kernel (`modules.builtin` names it).
    BuiltIn,
    /// Not in the tree (or not within the walk's bounds).
    Absent,
}

/// Find the block front-end in the module tree at `tree` of `fs`; `None` when
/// there is no such directory.
pub fn find_blkfront(fs: &(impl GuestFs + ?Sized), tree: &str) -> Result<Option<Blkfront>> {
    let tree = tree.trim_end_matches('/');
    let Some(top) = fs.list_dir(tree)? else {
        return Ok(None);
    };
    for index in ["modules.dep", "modules.builtin"] {
        // An index that cannot be read (too large, damaged) is passed over:
        // the walk below still looks.
        let Ok(Some(text)) = fs.read_file(&format!("{tree}/{index}"), MAX_INDEX) else {
            continue;
        };
        let named = text.split(|&b| b == b'\n').find_map(|line| {
            let path = line.split(|&b| b == b':').next().unwrap_or(line);
            is_blkfront(path).then(|| String::from_utf8_lossy(path).into_owned())
        });
        match (index, named) {
            ("modules.dep", Some(path)) => return Ok(Some(Blkfront::Module(path))),
            (_, Some(_)) => return Ok(Some(Blkfront::BuiltIn)),
            _ => {}
        }
    }
    Ok(Some(walk(fs, tree, top)?))
}

/// Breadth-first over the tree, symlinks not followed, bounded in depth and in
/// directories listed.
fn walk(
    fs: &(impl GuestFs + ?Sized),
    tree: &str,
    top: Vec<(String, FileType)>,
) -> Result<Blkfront> {
    let mut queue = VecDeque::from([(String::new(), top, 0usize)]);
    let mut listed = 1usize;
    while let Some((rel, entries, depth)) = queue.pop_front() {
        for (name, kind) in entries {
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            match kind {
                FileType::Regular if is_blkfront(path.as_bytes()) => {
                    return Ok(Blkfront::Module(path));
                }
                FileType::Directory if depth < MAX_WALK_DEPTH && listed < MAX_WALK_DIRS => {
                    listed += 1;
                    if let Some(list) = fs.list_dir(&format!("{tree}/{path}"))? {
                        queue.push_back((path, list, depth + 1));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Blkfront::Absent)
}

/// A directory of the host (`--modules DIR`) seen as a [`GuestFs`]: paths
/// are taken below it, symlinks are followed for files (as `modprobe` would)
/// and reported as symlinks in listings (a walk does not enter them).
pub struct HostDir(pub PathBuf);

impl HostDir {
    fn path(&self, p: &str) -> PathBuf {
        self.0.join(p.trim_start_matches('/'))
    }
}

impl GuestFs for HostDir {
    fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let p = self.path(path);
        match fs::metadata(&p) {
            Ok(m) if m.is_file() => {
                if m.len() > max {
                    return Err(Error::refused(format!(
                        "{} is {} bytes, more than {max}; not read",
                        p.display(),
                        m.len()
                    )));
                }
                fs::read(&p)
                    .map(Some)
                    .map_err(|e| Error::io(p.display().to_string(), e))
            }
            _ => Ok(None),
        }
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<(String, FileType)>>> {
        let p = self.path(path);
        let Ok(dir) = fs::read_dir(&p) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for e in dir.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let kind = if t.is_symlink() {
                FileType::Symlink
            } else if t.is_dir() {
                FileType::Directory
            } else if t.is_file() {
                FileType::Regular
            } else {
                continue;
            };
            out.push((e.file_name().to_string_lossy().into_owned(), kind));
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let p = t.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        t
    }

    fn find(t: &tempfile::TempDir) -> Option<Blkfront> {
        find_blkfront(&HostDir(t.path().to_path_buf()), "/").unwrap()
    }

    #[test]
    fn named_by_modules_dep_wherever_it_lives() {
        let t = tree(&[
            (
                "modules.dep",
                "kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz\n\
                 updates/dkms/xen-blkfront.ko.zst:\n",
            ),
            ("updates/dkms/xen-blkfront.ko.zst", "m"),
        ]);
        assert_eq!(
            find(&t),
            Some(Blkfront::Module("updates/dkms/xen-blkfront.ko.zst".into()))
        );
    }

    #[test]
    fn built_in_by_modules_builtin() {
        let t = tree(&[
            ("modules.dep", "kernel/fs/ext4/ext4.ko:\n"),
            (
                "modules.builtin",
                "kernel/drivers/xen/xenbus.ko\nkernel/drivers/block/xen-blkfront.ko\n",
            ),
        ]);
        assert_eq!(find(&t), Some(Blkfront::BuiltIn));
    }

    #[test]
    fn without_an_index_the_walk_finds_it_anywhere() {
        let t = tree(&[("extra/xen/blk/xen-blkfront.ko", "m"), ("kernel/a.ko", "")]);
        assert_eq!(
            find(&t),
            Some(Blkfront::Module("extra/xen/blk/xen-blkfront.ko".into()))
        );
        // Not a module: a name that only starts like one.
        let t = tree(&[("kernel/xen-blkfront.ko.txt", ""), ("modules.dep", "")]);
        assert_eq!(find(&t), Some(Blkfront::Absent));
        assert_eq!(
            find_blkfront(&HostDir(t.path().join("nowhere")), "/").unwrap(),
            None
        );
    }

    #[test]
    fn the_walk_is_bounded_and_enters_no_symlink() {
        let t = tree(&[("kernel/x.ko", "")]);
        let mut deep = t.path().join("kernel");
        for i in 0..MAX_WALK_DEPTH + 2 {
            deep = deep.join(format!("d{i}"));
        }
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("xen-blkfront.ko"), "m").unwrap();
        assert_eq!(find(&t), Some(Blkfront::Absent));
        // A symlink loop is not followed.
        let t = tree(&[("kernel/x.ko", "")]);
        std::os::unix::fs::symlink(".", t.path().join("kernel/loop")).unwrap();
        assert_eq!(find(&t), Some(Blkfront::Absent));
    }
}

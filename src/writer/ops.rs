//! Operations named by guest paths, on an ext filesystem opened for writing:
//! replace-or-create a file, `mkdir [-p]`, `rm [-r]`. Paths are resolved inside
//! the guest only (symlinks followed as the guest's kernel would, `..` stopping
//! at the guest's root): nothing here touches the host's filesystem.

use std::io::Read;

use crate::copy;
use crate::disk::{ReadAt, WriteAt};
use crate::error::{Error, ErrorKind, Result};
use crate::ext::{Ext, FileType, Ino, NewNode, Timestamp};

/// A new node owned by root with permissions `perm`, times now.
pub fn root_node(perm: u16) -> NewNode {
    let now = Timestamp::now();
    NewNode {
        perm,
        uid: 0,
        gid: 0,
        atime: now,
        mtime: now,
        ctime: now,
    }
}

fn shown(path: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(path)
}

/// Split a guest path into its parent (resolved inside the guest, following
/// symlinks) and a valid last name.
pub fn parent_and_name<D: ReadAt>(ext: &Ext<D>, path: &[u8]) -> Result<(Ino, Vec<u8>)> {
    let Some((parent, name)) = copy::split_guest_path(path)? else {
        return Err(Error::invalid("the guest root has no name"));
    };
    if !copy::valid_name(&name) {
        return Err(Error::invalid(format!(
            "{}: \"{}\" is not a valid name",
            shown(path),
            shown(&name)
        )));
    }
    let dir = ext.resolve(&parent, true)?;
    if ext.stat(dir)?.file_type() != FileType::Directory {
        return Err(Error::invalid(format!(
            "{}: not a directory",
            shown(&parent)
        )));
    }
    Ok((dir, name))
}

/// Put `len` bytes of `data` at guest `path`: an existing file (reached through
/// symlinks, as the shell's `>` would) keeps its inode, mode, owner and extended
/// attributes and gets the new contents; a missing one is created, mode 0644,
/// owned by root.
pub fn write_file<D: WriteAt>(
    ext: &mut Ext<D>,
    path: &[u8],
    data: &mut dyn Read,
    len: u64,
) -> Result<()> {
    let (parent, name) = parent_and_name(ext, path)?;
    match ext.lookup(parent, &name)? {
        Some(_) => {
            let ino = ext.resolve(path, true)?;
            let st = ext.stat(ino)?;
            if st.file_type() != FileType::Regular {
                return Err(Error::invalid(format!(
                    "{}: not a regular file ({:?})",
                    shown(path),
                    st.file_type()
                )));
            }
            ext.replace_contents(ino, data, len, Timestamp::now())
        }
        None => ext
            .create_file(parent, &name, &root_node(0o644), data, len)
            .map(|_| ()),
    }
}

/// Create the guest directory `path` (mode 0755, root). With `parents`, create
/// what is missing on the way, following symlinks inside the guest (a usrmerge
/// `/lib -> usr/lib` leads into `/usr/lib`, and stays a symlink), and succeed when
/// it exists.
pub fn mkdir<D: WriteAt>(ext: &mut Ext<D>, path: &[u8], parents: bool) -> Result<()> {
    if !parents {
        let (parent, name) = parent_and_name(ext, path)?;
        if ext.lookup(parent, &name)?.is_some() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{}: already exists", shown(path)),
            ));
        }
        return ext.mkdir(parent, &name, &root_node(0o755)).map(|_| ());
    }
    let mut so_far: Vec<u8> = Vec::new();
    let mut dir = ext.resolve(b"/", true)?;
    for comp in path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        if !copy::valid_name(comp) {
            return Err(Error::invalid(format!(
                "{}: \"{}\" is not a valid name",
                shown(path),
                shown(comp)
            )));
        }
        so_far.push(b'/');
        so_far.extend_from_slice(comp);
        dir = match ext.lookup(dir, comp)? {
            Some(_) => {
                let ino = ext.resolve(&so_far, true)?;
                if ext.stat(ino)?.file_type() != FileType::Directory {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!("{}: exists and is not a directory", shown(&so_far)),
                    ));
                }
                ino
            }
            None => ext.mkdir(dir, comp, &root_node(0o755))?,
        };
    }
    Ok(())
}

/// Remove the guest file, symlink or (with `recursive`) directory tree `path`.
/// The last component is not followed: a symlink is removed, not its target.
pub fn remove<D: WriteAt>(ext: &mut Ext<D>, path: &[u8], recursive: bool) -> Result<()> {
    let (parent, name) = parent_and_name(ext, path)?;
    let Some(ino) = ext.lookup(parent, &name)? else {
        return Err(Error::not_found(format!(
            "{}: no such file or directory in the guest",
            shown(path)
        )));
    };
    if ext.stat(ino)?.file_type() == FileType::Directory {
        if !recursive {
            return Err(Error::invalid(format!(
                "{}: is a directory (use -r)",
                shown(path)
            )));
        }
        ext.remove_tree(parent, &name)
    } else {
        ext.unlink(parent, &name)
    }
}

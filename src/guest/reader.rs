//! Read access to a guest filesystem for inspection: the [`GuestFs`] trait, and its
//! implementation over ext4-view (the reader of record; our engine serves as a
//! fallback where ext4-view cannot read).
//!
//! Every path is absolute inside the guest and symlinks are resolved inside the
//! guest. Nothing here touches the host's filesystem. Sizes are checked before a
//! file is read, so a hostile image cannot make us allocate a huge buffer.

use crate::error::{Error, Result};

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Anything else.
    Other,
}

/// Read-only access to one guest filesystem.
pub trait GuestFs {
    /// Contents of the regular file at `path` (symlinks followed inside the guest),
    /// `None` if it does not exist, an error if larger than `max` bytes.
    fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>>;
    /// Names and kinds in the directory at `path` (without `.` and `..`), `None`
    /// if it does not exist or is not a directory.
    fn list_dir(&self, path: &str) -> Result<Option<Vec<(String, Kind)>>>;
    /// Which reader this is, for notes (`"ext4-view"`).
    fn reader_name(&self) -> &'static str;
}

/// Map an ext4-view error to ours; `Ok(None)` for "not there".
fn map_err<T>(r: std::result::Result<T, ext4_view::Ext4Error>, path: &str) -> Result<Option<T>> {
    use ext4_view::Ext4Error as E;
    match r {
        Ok(v) => Ok(Some(v)),
        Err(E::NotFound | E::NotADirectory) => Ok(None),
        Err(e @ E::Corrupt(_)) => Err(Error::corrupt(format!("{path}: {e}"))),
        Err(e @ E::Incompatible(_)) => Err(Error::unsupported(format!("{path}: {e}"))),
        Err(e) => Err(Error::corrupt(format!("{path}: {e}"))),
    }
}

impl GuestFs for ext4_view::Ext4 {
    fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let Some(meta) = map_err(self.metadata(path), path)? else {
            return Ok(None);
        };
        if !meta.file_type().is_regular_file() {
            return Ok(None);
        }
        if meta.len() > max {
            return Err(Error::refused(format!(
                "{path} is {} bytes, more than the {max} bytes this file may have; not read",
                meta.len()
            )));
        }
        map_err(self.read(path), path)
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<(String, Kind)>>> {
        let Some(iter) = map_err(self.read_dir(path), path)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for entry in iter {
            let Some(entry) = map_err(entry, path)? else {
                continue;
            };
            let name = entry.file_name().display().to_string();
            if name == "." || name == ".." {
                continue;
            }
            let kind = match map_err(entry.file_type(), path)? {
                Some(t) if t.is_regular_file() => Kind::File,
                Some(t) if t.is_dir() => Kind::Dir,
                Some(t) if t.is_symlink() => Kind::Symlink,
                _ => Kind::Other,
            };
            out.push((name, kind));
        }
        Ok(Some(out))
    }

    fn reader_name(&self) -> &'static str {
        "ext4-view"
    }
}

/// `Ok(None)` for "not there" from our engine.
fn engine_opt<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl<D: crate::disk::ReadAt> GuestFs for crate::ext::Ext<D> {
    fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let Some(ino) = engine_opt(self.resolve(path.as_bytes(), true))? else {
            return Ok(None);
        };
        let st = self.stat(ino)?;
        if st.file_type() != crate::ext::FileType::Regular {
            return Ok(None);
        }
        if st.size > max {
            return Err(Error::refused(format!(
                "{path} is {} bytes, more than the {max} bytes this file may have; not read",
                st.size
            )));
        }
        // OK to cast: size is at most `max`, which the callers keep small.
        let mut buf = vec![0; st.size as usize];
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_file(ino, done as u64, &mut buf[done..])?;
            if n == 0 {
                return Err(Error::corrupt(format!(
                    "{path}: file ends at {done} bytes, its size says {}",
                    st.size
                )));
            }
            done += n;
        }
        Ok(Some(buf))
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<(String, Kind)>>> {
        let Some(ino) = engine_opt(self.resolve(path.as_bytes(), true))? else {
            return Ok(None);
        };
        if self.stat(ino)?.file_type() != crate::ext::FileType::Directory {
            return Ok(None);
        }
        let mut out = Vec::new();
        for e in self.read_dir(ino)? {
            let kind = match e.file_type {
                crate::ext::FileType::Regular => Kind::File,
                crate::ext::FileType::Directory => Kind::Dir,
                crate::ext::FileType::Symlink => Kind::Symlink,
                _ => Kind::Other,
            };
            out.push((String::from_utf8_lossy(&e.name).into_owned(), kind));
        }
        Ok(Some(out))
    }

    fn reader_name(&self) -> &'static str {
        "domuify's ext engine"
    }
}

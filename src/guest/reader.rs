//! Read access to a guest filesystem, the one way every command reads a guest:
//! [`GuestRead`] by path, over ext4-view ([`ViewReader`], the reader of record) or
//! over our engine ([`EngineReader`]) where ext4-view cannot read; [`open`] picks
//! one and says when it fell back. A file is read through
//! [`GuestRead::open`], a seekable stream that holds one block-sized buffer at
//! most, whatever the file's size (a bzImage header at an offset, a 40 MB
//! initramfs walked once). [`GuestFs`] is the small view inspection needs (a
//! small file, a directory with the kind of each entry), given to every reader
//! at once.
//!
//! Every path is absolute inside the guest and symlinks are resolved inside the
//! guest. Nothing here touches the host's filesystem. Sizes are checked before a
//! file is read, so a hostile image cannot make us allocate a huge buffer.

use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::disk::{ReadAt, Window};
use crate::error::{Error, ErrorKind, Result};
use crate::ext::{Ext, FileType, Ino, Timestamp};

/// A seekable byte stream of one guest file, as [`GuestRead::open`] returns it.
/// Read errors carry the library's [`Error`] inside the `io::Error`
/// ([`from_io`] gets it back).
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek + ?Sized> ReadSeek for T {}

/// The library error an `io::Error` of a guest stream carries, or an I/O error
/// with `context`.
pub fn from_io(e: io::Error, context: impl Into<String>) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<Error>()) {
        // OK to unwrap: checked just above.
        let inner = e.into_inner().unwrap();
        match inner.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => Error::io(context, io::Error::other(other)),
        }
    } else {
        Error::io(context, e)
    }
}
/// Read-only access to one guest filesystem.
pub trait GuestFs {
    /// Contents of the regular file at `path` (symlinks followed inside the guest),
    /// `None` if it does not exist, an error if larger than `max` bytes.
    fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>>;
    /// Names and file types in the directory at `path` (without `.` and `..`;
    /// a symlink is [`FileType::Symlink`]), `None` if it does not exist or is
    /// not a directory.
    fn list_dir(&self, path: &str) -> Result<Option<Vec<(String, FileType)>>>;
}

/// Metadata of a guest file as the read commands need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// What it is.
    pub file_type: FileType,
    /// Permission bits (`0o7777`).
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Link count, when the reader knows it (ext4-view does not expose it).
    pub links: Option<u16>,
}

/// Read access to a guest filesystem by path.
pub trait GuestRead {
    /// Metadata of `path`; a symlink as last component is followed only when
    /// `follow`.
    fn node(&self, path: &[u8], follow: bool) -> Result<Node>;
    /// The names in directory `path` (following symlinks to it), without `.` and
    /// `..`; an entry the reader cannot decode is an `Err` in the list.
    fn list(&self, path: &[u8]) -> Result<Vec<Result<Vec<u8>>>>;
    /// A symlink's target.
    fn read_link(&self, path: &[u8]) -> Result<Vec<u8>>;
    /// The regular file at `path` (symlinks followed inside the guest) as a
    /// seekable stream; memory stays bounded whatever its size.
    fn open(&self, path: &[u8]) -> Result<Box<dyn ReadSeek + '_>>;
    /// Stream a regular file's contents (following symlinks) into `out`; returns
    /// the byte count.
    fn copy_file(&self, path: &[u8], out: &mut dyn Write) -> Result<u64> {
        let mut f = self.open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match f.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(from_io(e, format!("{}: read error", show(path)))),
            };
            if n == 0 {
                return Ok(total);
            }
            out.write_all(&buf[..n])
                .map_err(|e| Error::io(format!("{}: writing the copy", show(path)), e))?;
            total += n as u64;
        }
    }
    /// The filesystem's inode count: no valid tree has more directories, so a
    /// walk that meets more has met a cycle of a damaged filesystem.
    fn inodes_count(&self) -> u64;
    /// Which reader this is, for notes (`"ext4-view"`).
    fn reader_name(&self) -> &'static str;
    /// The inode number of the directory at `path` (following symlinks) and
    /// the inode its `..` entry names, when this reader can tell: a tree walk
    /// meets a directory twice (a directory hard link, a loop in a damaged
    /// filesystem) when it meets its number twice, or a `..` that names another
    /// parent.
    fn dir_id(&self, _path: &[u8]) -> Result<Option<(u64, Option<u64>)>> {
        Ok(None)
    }
}

// `s_inodes_count` is read by the one superblock module.
use crate::ext::superblock::read_inodes_count;

/// An error with its sources, for messages that are not printed by `main`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

pub(crate) fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn view_error(path: &[u8], e: ext4_view::Ext4Error) -> Error {
    use ext4_view::Ext4Error as E;
    let p = show(path);
    match e {
        E::NotFound => Error::not_found(format!("{p}: no such file or directory in the guest")),
        E::NotADirectory => Error::invalid(format!("{p}: not a directory")),
        E::IsADirectory => Error::invalid(format!("{p}: is a directory")),
        E::IsASpecialFile => Error::invalid(format!("{p}: is a special file")),
        E::NotAbsolute | E::MalformedPath | E::PathTooLong => {
            Error::invalid(format!("{p}: bad guest path ({e})"))
        }
        E::Incompatible(_) | E::Encrypted => Error::unsupported(format!("{p}: {e}")),
        E::Io(inner) => Error::io(format!("{p}: read error"), io::Error::other(inner)),
        other => Error::corrupt(format!("{p}: {other}")),
    }
}

fn view_type(t: ext4_view::FileType) -> FileType {
    if t.is_regular_file() {
        FileType::Regular
    } else if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_char_dev() {
        FileType::CharDevice
    } else if t.is_block_dev() {
        FileType::BlockDevice
    } else if t.is_fifo() {
        FileType::Fifo
    } else if t.is_socket() {
        FileType::Socket
    } else {
        FileType::Unknown
    }
}

fn view_time(t: ext4_view::Timestamp) -> Timestamp {
    Timestamp {
        sec: t.seconds(),
        nsec: t.nanoseconds(),
    }
}

/// Most memory one directory listing may take.
const MAX_LISTING_BYTES: usize = 256 << 20;

/// Opens the engine reader of the same filesystem, when first needed.
type OpenEngine = Box<dyn Fn() -> Result<Box<dyn GuestRead>>>;

/// ext4-view as a [`GuestRead`]. What ext4-view cannot tell or refuses on a
/// valid filesystem is asked of the engine reader of the same filesystem, when
/// one is given ([`ViewReader::with_engine`]): inode numbers (for loop
/// detection), and inodes whose times ext4-view refuses (before 1970 or after
/// 2038: it reads `i_*time` as unsigned).
pub struct ViewReader {
    fs: ext4_view::Ext4,
    inodes: u64,
    open_engine: Option<OpenEngine>,
    engine: std::cell::OnceCell<Option<Box<dyn GuestRead>>>,
}

/// Is this ext4-view refusing what the kernel and e2fsck read: an inode's
/// timestamp before 1970 or after 2038, or a lookup in a directory indexed
/// with a hash it does not know (the legacy one: reading never needs the hash,
/// the engine walks the leaves)?
fn refused_time(e: &Error) -> bool {
    let msg = e.to_string();
    (e.kind() == ErrorKind::Corrupt && msg.contains("invalid timestamp"))
        || (e.kind() == ErrorKind::Unsupported && msg.contains("directory hash"))
}

impl ViewReader {
    /// Load the filesystem from `dev` (a partition window).
    pub fn load<R: ext4_view::Ext4Read + 'static>(mut dev: R) -> Result<ViewReader> {
        let inodes = read_inodes_count(&mut |at, buf| {
            dev.read(at, buf)
                .map_err(|e| Error::io("reading the superblock", io::Error::other(e)))
        })?;
        let fs = ext4_view::Ext4::load(Box::new(dev)).map_err(|e| view_error(b"/", e))?;
        // Some limits only show when the first inode is read (metadata_csum with
        // 128-byte inodes: "inode 2 is truncated"): find them now, so that the
        // caller can fall back to another reader.
        fs.metadata(ext4_view::Path::ROOT)
            .map_err(|e| view_error(b"/", e))?;
        Ok(ViewReader {
            fs,
            inodes,
            open_engine: None,
            engine: std::cell::OnceCell::new(),
        })
    }

    /// Give the reader a way to open the engine reader of the same filesystem
    /// (called at most once, when first needed).
    pub fn with_engine(
        mut self,
        open: impl Fn() -> Result<Box<dyn GuestRead>> + 'static,
    ) -> ViewReader {
        self.open_engine = Some(Box::new(open));
        self
    }

    fn engine(&self) -> Option<&dyn GuestRead> {
        self.engine
            .get_or_init(|| self.open_engine.as_ref().and_then(|open| open().ok()))
            .as_deref()
    }

    /// `r`, or where ext4-view refused a timestamp, the engine's answer.
    fn or_engine<T>(&self, r: Result<T>, f: impl FnOnce(&dyn GuestRead) -> Result<T>) -> Result<T> {
        match r {
            Err(e) if refused_time(&e) => match self.engine() {
                Some(engine) => f(engine),
                None => Err(e),
            },
            r => r,
        }
    }

    fn path<'p>(&self, path: &'p [u8]) -> Result<ext4_view::Path<'p>> {
        ext4_view::Path::try_from(path)
            .map_err(|e| Error::invalid(format!("{}: bad guest path ({e})", show(path))))
    }
}

impl GuestRead for ViewReader {
    fn node(&self, path: &[u8], follow: bool) -> Result<Node> {
        self.or_engine(self.view_node(path, follow), |e| e.node(path, follow))
    }

    fn list(&self, path: &[u8]) -> Result<Vec<Result<Vec<u8>>>> {
        self.or_engine(self.view_list(path), |e| e.list(path))
    }

    fn read_link(&self, path: &[u8]) -> Result<Vec<u8>> {
        self.or_engine(self.view_read_link(path), |e| e.read_link(path))
    }

    fn open(&self, path: &[u8]) -> Result<Box<dyn ReadSeek + '_>> {
        // ext4-view reads every inode of the path when it opens the file, so a
        // refused timestamp fails here, before a byte is read.
        match self.view_open(path) {
            Err(e) if refused_time(&e) => match self.engine() {
                Some(engine) => engine.open(path),
                None => Err(e),
            },
            r => r,
        }
    }

    fn inodes_count(&self) -> u64 {
        self.inodes
    }

    fn reader_name(&self) -> &'static str {
        "ext4-view"
    }

    fn dir_id(&self, path: &[u8]) -> Result<Option<(u64, Option<u64>)>> {
        match self.engine() {
            Some(e) => e.dir_id(path),
            None => Ok(None),
        }
    }
}

impl ViewReader {
    fn view_node(&self, path: &[u8], follow: bool) -> Result<Node> {
        let p = self.path(path)?;
        let m = if follow {
            self.fs.metadata(p)
        } else {
            self.fs.symlink_metadata(p)
        }
        .map_err(|e| view_error(path, e))?;
        Ok(Node {
            file_type: view_type(m.file_type()),
            perm: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.len(),
            atime: view_time(m.accessed()),
            mtime: view_time(m.modified()),
            links: None,
        })
    }

    fn view_list(&self, path: &[u8]) -> Result<Vec<Result<Vec<u8>>>> {
        let p = self.path(path)?;
        let iter = self.fs.read_dir(p).map_err(|e| view_error(path, e))?;
        let mut out = Vec::new();
        let mut held = 0usize;
        // ext4-view stops after the first error it yields.
        for entry in iter {
            match entry {
                Ok(e) => {
                    let name = e.file_name().as_ref().to_vec();
                    if name != b"." && name != b".." {
                        held += name.len() + 32;
                        out.push(Ok(name));
                    }
                }
                Err(e) => out.push(Err(view_error(path, e))),
            }
            // Bounded memory whatever a hostile directory claims to hold.
            if held > MAX_LISTING_BYTES {
                return Err(Error::corrupt(format!(
                    "{}: directory too large to list (over {} MiB of names)",
                    show(path),
                    MAX_LISTING_BYTES >> 20
                )));
            }
        }
        Ok(out)
    }

    fn view_read_link(&self, path: &[u8]) -> Result<Vec<u8>> {
        let p = self.path(path)?;
        let t = self.fs.read_link(p).map_err(|e| view_error(path, e))?;
        Ok(t.as_ref().to_vec())
    }

    fn view_open(&self, path: &[u8]) -> Result<Box<dyn ReadSeek + '_>> {
        let p = self.path(path)?;
        let file = self.fs.open(p).map_err(|e| view_error(path, e))?;
        Ok(Box::new(ViewFile {
            size: file.metadata().len(),
            file,
            path: path.to_vec(),
        }))
    }
}

/// A new position from `pos` in a file of `size` bytes, as `Seek` defines it
/// (past the end is allowed, before the start is not).
fn seek_pos(pos: u64, size: u64, to: SeekFrom) -> io::Result<u64> {
    let (base, delta) = match to {
        SeekFrom::Start(p) => return Ok(p),
        SeekFrom::End(d) => (size, d),
        SeekFrom::Current(d) => (pos, d),
    };
    base.checked_add_signed(delta).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "seek before the start of the file",
        )
    })
}

/// An open file of ext4-view; errors mapped to the library's.
struct ViewFile {
    file: ext4_view::File,
    size: u64,
    path: Vec<u8>,
}

impl Read for ViewFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file
            .read_bytes(buf)
            .map_err(|e| view_error(&self.path, e).into())
    }
}

impl Seek for ViewFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let p = seek_pos(self.file.position(), self.size, to)?;
        self.file
            .seek_to(p)
            .map_err(|e| io::Error::from(view_error(&self.path, e)))?;
        Ok(p)
    }
}

/// An open file of the engine: an inode and a position, reads go straight to
/// the engine's extent map.
struct EngineFile<'a, D> {
    ext: &'a Ext<D>,
    ino: Ino,
    size: u64,
    pos: u64,
}

impl<D: ReadAt> Read for EngineFile<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let n = self.ext.read_file(self.ino, self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: ReadAt> Seek for EngineFile<'_, D> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = seek_pos(self.pos, self.size, to)?;
        Ok(self.pos)
    }
}

/// Our engine's reader as a [`GuestRead`] (the fallback when ext4-view refuses).
pub struct EngineReader<D> {
    ext: Ext<D>,
    inodes: u64,
}

impl<D: ReadAt> EngineReader<D> {
    /// Open `dev` read-only with the engine.
    pub fn open(dev: D) -> Result<EngineReader<D>> {
        let inodes = read_inodes_count(&mut |at, buf| dev.read_exact_at(at, buf))?;
        Ok(EngineReader {
            ext: Ext::open_read_only(dev)?,
            inodes,
        })
    }
}

/// Node of an engine stat.
fn engine_node<D: ReadAt>(ext: &Ext<D>, ino: Ino) -> Result<Node> {
    let s = ext.stat(ino)?;
    Ok(Node {
        file_type: s.file_type(),
        perm: s.mode & 0o7777,
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        atime: s.atime,
        mtime: s.mtime,
        links: Some(s.links),
    })
}

impl<D: ReadAt> GuestRead for EngineReader<D> {
    fn node(&self, path: &[u8], follow: bool) -> Result<Node> {
        let ino = self.ext.resolve(path, follow)?;
        engine_node(&self.ext, ino)
    }

    fn list(&self, path: &[u8]) -> Result<Vec<Result<Vec<u8>>>> {
        let ino = self.ext.resolve(path, true)?;
        if self.ext.stat(ino)?.file_type() != FileType::Directory {
            return Err(Error::invalid(format!("{}: not a directory", show(path))));
        }
        Ok(self
            .ext
            .read_dir(ino)?
            .into_iter()
            .filter(|e| e.name != b"." && e.name != b"..")
            .map(|e| Ok(e.name))
            .collect())
    }

    fn read_link(&self, path: &[u8]) -> Result<Vec<u8>> {
        let ino = self.ext.resolve(path, false)?;
        self.ext.read_link(ino)
    }

    fn open(&self, path: &[u8]) -> Result<Box<dyn ReadSeek + '_>> {
        let ino = self.ext.resolve(path, true)?;
        let st = self.ext.stat(ino)?;
        if st.file_type() != FileType::Regular {
            return Err(Error::invalid(format!(
                "{}: not a regular file",
                show(path)
            )));
        }
        Ok(Box::new(EngineFile {
            ext: &self.ext,
            ino,
            size: st.size,
            pos: 0,
        }))
    }

    fn inodes_count(&self) -> u64 {
        self.inodes
    }

    fn reader_name(&self) -> &'static str {
        "domuify's own ext reader"
    }

    fn dir_id(&self, path: &[u8]) -> Result<Option<(u64, Option<u64>)>> {
        let ino = self.ext.resolve(path, true)?;
        let up = self.ext.lookup(ino, b"..")?;
        Ok(Some((u64::from(ino), up.map(u64::from))))
    }
}

/// Open a guest filesystem for reading: ext4-view, or our engine when ext4-view
/// cannot read it. The second value says why it fell back, for the caller to show:
/// a fallback is never hidden.
pub fn open<D: ReadAt + Clone + 'static>(
    win: Window<D>,
) -> Result<(Box<dyn GuestRead>, Option<String>)> {
    // Both readers hold a descriptor of every block group: a hostile superblock
    // with tiny groups on a large sparse image would cost gigabytes. Checked on the
    // superblock alone, before either reader loads anything.
    if let Ok(info) = crate::probe::probe(&win) {
        let groups = info.ext.map_or(0, |e| e.group_count);
        if groups > crate::ext::MAX_GROUPS {
            return Err(Error::unsupported(format!(
                "its superblock describes {groups} block groups; domuify reads \
                 filesystems of at most {} (128 TiB in 4 KiB blocks)",
                crate::ext::MAX_GROUPS
            )));
        }
    }
    let view_err = match ViewReader::load(win.clone()) {
        Ok(r) => {
            let w = win.clone();
            let r = r.with_engine(move || {
                EngineReader::open(w.clone()).map(|e| Box::new(e) as Box<dyn GuestRead>)
            });
            return Ok((Box::new(r), None));
        }
        Err(e) => e,
    };
    match EngineReader::open(win) {
        Ok(r) => {
            let note = format!(
                "ext4-view cannot read this filesystem ({view_err}); read with {} instead",
                r.reader_name()
            );
            Ok((Box::new(r), Some(note)))
        }
        Err(ours) => {
            // Keep the kind that says most: "unsupported" from either reader is a
            // limit, not damage.
            let kind = if view_err.kind() == ErrorKind::Unsupported {
                ErrorKind::Unsupported
            } else {
                ours.kind()
            };
            Err(Error::new(
                kind,
                format!("cannot read the filesystem: ext4-view: {view_err}; domuify's own ext reader: {ours}"),
            ))
        }
    }
}

/// Every reader serves the inspection view.
impl<T: GuestRead + ?Sized> GuestFs for T {
    fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let node = match self.node(path.as_bytes(), true) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if node.file_type != FileType::Regular {
            return Ok(None);
        }
        if node.size > max {
            return Err(Error::refused(format!(
                "{path} is {} bytes, more than the {max} bytes this file may have; not read",
                node.size
            )));
        }
        let mut out = Limited {
            buf: Vec::new(),
            max,
        };
        self.copy_file(path.as_bytes(), &mut out)?;
        Ok(Some(out.buf))
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<(String, FileType)>>> {
        match self.node(path.as_bytes(), true) {
            Ok(n) if n.file_type == FileType::Directory => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut out = Vec::new();
        for name in self.list(path.as_bytes())? {
            let name = name?;
            let child = format!(
                "{}/{}",
                path.trim_end_matches('/'),
                String::from_utf8_lossy(&name)
            );
            let kind = self.node(child.as_bytes(), false)?.file_type;
            out.push((String::from_utf8_lossy(&name).into_owned(), kind));
        }
        Ok(Some(out))
    }
}

/// A buffer that refuses to grow past `max` bytes (a file whose size lied).
struct Limited {
    buf: Vec<u8>,
    max: u64,
}

impl Write for Limited {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() as u64 + data.len() as u64 > self.max {
            return Err(io::Error::other("file is larger than its size said"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_positions() {
        assert_eq!(seek_pos(5, 10, SeekFrom::Start(20)).unwrap(), 20);
        assert_eq!(seek_pos(5, 10, SeekFrom::End(-3)).unwrap(), 7);
        assert_eq!(seek_pos(5, 10, SeekFrom::Current(-5)).unwrap(), 0);
        assert!(seek_pos(5, 10, SeekFrom::Current(-6)).is_err());
        assert!(seek_pos(0, 10, SeekFrom::End(-11)).is_err());
    }

    #[test]
    fn library_error_survives_a_stream() {
        let e: io::Error = Error::corrupt("inode 12: bad extent").into();
        let back = from_io(e, "ctx");
        assert_eq!(back.kind(), ErrorKind::Corrupt);
        assert_eq!(back.message(), "inode 12: bad extent");
        let plain = from_io(io::Error::other("disk gone"), "reading x");
        assert_eq!(plain.kind(), ErrorKind::Io);
        assert_eq!(plain.message(), "reading x");
    }
}

//! The disk layer: a raw image file or a block device, and byte windows over it.
//!
//! Owns every byte that goes to or comes from the image. All I/O is positional
//! ([`ReadAt::read_exact_at`], [`WriteAt::write_all_at`]): there is no shared seek
//! cursor, so many readers can share one [`Disk`]. A disk is opened read-only
//! unless the caller asks for [`Access::ReadWrite`]; a read-only disk is opened
//! `O_RDONLY` and cannot write even by mistake.
//!
//! A [`Window`] is a bounded byte range of a device (a partition). It serves
//! positional I/O, `std::io::{Read, Write, Seek}` (for fatfs) and
//! [`ext4_view::Ext4Read`]. Reads and writes past a window's end are errors,
//! never silent truncation.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Positional reads from a byte-addressed device.
pub trait ReadAt {
    /// Fill `buf` with the bytes at `offset`; an error if any byte is past the end.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// The device's size in bytes.
    fn size(&self) -> u64;
    /// The image file or block device this device reads, when it reads one
    /// whole (a layer over a [`Disk`], such as an undo log, forwards it): what a
    /// report names, and where a block device's partition nodes are found.
    /// `None` for bytes held in memory.
    fn disk(&self) -> Option<&Disk> {
        None
    }
}

/// Positional writes to a byte-addressed device.
pub trait WriteAt: ReadAt {
    /// Write all of `buf` at `offset`; an error if any byte would be past the end.
    fn write_all_at(&self, offset: u64, buf: &[u8]) -> Result<()>;
    /// Make every write so far durable.
    fn sync(&self) -> Result<()>;
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_exact_at(offset, buf)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn disk(&self) -> Option<&Disk> {
        (**self).disk()
    }
}

impl<T: WriteAt + ?Sized> WriteAt for &T {
    fn write_all_at(&self, offset: u64, buf: &[u8]) -> Result<()> {
        (**self).write_all_at(offset, buf)
    }
    fn sync(&self) -> Result<()> {
        (**self).sync()
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_exact_at(offset, buf)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn disk(&self) -> Option<&Disk> {
        (**self).disk()
    }
}

/// An image held in memory (a test's, or one built on the fly).
impl ReadAt for [u8] {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(offset, buf.len(), self.size(), &"in-memory image")?;
        // OK to cast: the range is checked against the slice's length.
        let start = offset as usize;
        buf.copy_from_slice(&self[start..start + buf.len()]);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.len() as u64
    }
}

/// An image held in memory.
impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.as_slice().read_exact_at(offset, buf)
    }
    fn size(&self) -> u64 {
        self.len() as u64
    }
}

impl<T: WriteAt + ?Sized> WriteAt for Arc<T> {
    fn write_all_at(&self, offset: u64, buf: &[u8]) -> Result<()> {
        (**self).write_all_at(offset, buf)
    }
    fn sync(&self) -> Result<()> {
        (**self).sync()
    }
}

/// Check that `len` bytes at `offset` fit in a device of `size` bytes.
pub fn check_range(offset: u64, len: usize, size: u64, what: &dyn std::fmt::Display) -> Result<()> {
    let end = u64::try_from(len).ok().and_then(|l| offset.checked_add(l));
    match end {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::corrupt(format!(
            "{what}: {len} bytes at offset {offset:#x} are past the end (size {size:#x})"
        ))),
    }
}

/// How a [`Disk`] is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `O_RDONLY`: the default, and the only mode of every inspection.
    ReadOnly,
    /// Read and write; only for commands that exist to write.
    ReadWrite,
}

/// What a [`Disk`] is backed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskKind {
    /// A regular file holding a raw image.
    ImageFile,
    /// A block device node.
    BlockDevice,
}

/// A raw image file or block device.
#[derive(Debug)]
pub struct Disk {
    file: File,
    path: PathBuf,
    size: u64,
    kind: DiskKind,
    access: Access,
    logical_sector_size: u32,
    stats: IoStats,
}

/// Counts of the I/O a [`Disk`] has done (for benchmarks and `--stats`).
#[derive(Debug, Default)]
pub struct IoStats {
    reads: std::sync::atomic::AtomicU64,
    bytes_read: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
    bytes_written: std::sync::atomic::AtomicU64,
}

impl IoStats {
    fn add_read(&self, n: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.reads.fetch_add(1, Relaxed);
        self.bytes_read.fetch_add(n as u64, Relaxed);
    }
    fn add_write(&self, n: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.writes.fetch_add(1, Relaxed);
        self.bytes_written.fetch_add(n as u64, Relaxed);
    }
    /// (read calls, bytes read, write calls, bytes written) so far.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.reads.load(Relaxed),
            self.bytes_read.load(Relaxed),
            self.writes.load(Relaxed),
            self.bytes_written.load(Relaxed),
        )
    }
}

/// Is the block device at `path` read-only (`/sys/class/block/NAME/ro`)?
fn block_device_ro(path: &Path) -> bool {
    let Some(name) = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    else {
        return false;
    };
    std::fs::read_to_string(format!("/sys/class/block/{name}/ro")).is_ok_and(|v| v.trim() == "1")
}

impl Disk {
    /// Open `path` with the given access. A read-only open never writes.
    pub fn open(path: &Path, access: Access) -> Result<Disk> {
        let shown = path.display();
        // Checked before opening too: opening a FIFO blocks until a writer comes.
        let before = std::fs::metadata(path)
            .map_err(|e| Error::io(format!("cannot open {shown}"), e))?
            .file_type();
        if !(before.is_file() || before.is_block_device()) {
            return Err(not_a_disk(path));
        }
        let mut file =
            open_file(path, access).map_err(|e| Error::io(format!("cannot open {shown}"), e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat {shown}"), e))?;
        let ft = meta.file_type();
        let kind = if ft.is_file() {
            DiskKind::ImageFile
        } else if ft.is_block_device() {
            DiskKind::BlockDevice
        } else {
            return Err(not_a_disk(path));
        };
        // Root may open a read-only block device O_RDWR; every write would then
        // fail with EPERM half-way. Refuse it here, before any write.
        if access == Access::ReadWrite && kind == DiskKind::BlockDevice && block_device_ro(path) {
            return Err(Error::refused(format!(
                "cannot open {shown} for writing: it is a read-only block device"
            )));
        }
        let size = match kind {
            DiskKind::ImageFile => meta.len(),
            DiskKind::BlockDevice => file
                .seek(SeekFrom::End(0))
                .map_err(|e| Error::io(format!("cannot find the size of {shown}"), e))?,
        };
        let logical_sector_size = match kind {
            DiskKind::ImageFile => 512,
            DiskKind::BlockDevice => block_device_sector_size(path).unwrap_or(512),
        };
        Ok(Disk {
            file,
            path: path.to_path_buf(),
            size,
            kind,
            access,
            logical_sector_size,
            stats: IoStats::default(),
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Image file or block device.
    pub fn kind(&self) -> DiskKind {
        self.kind
    }

    /// How it was opened.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The kernel's device node of partition `number` of this disk (`/dev/sdb5`,
    /// `/dev/nvme0n1p5`, `/dev/loop0p5`), found through sysfs; `None` for an image
    /// file, or when the kernel has no such partition (a loop device attached
    /// without partition scanning).
    pub fn partition_node(&self, number: u32) -> Option<PathBuf> {
        if self.kind != DiskKind::BlockDevice || number == 0 {
            return None;
        }
        let real = std::fs::canonicalize(&self.path).ok()?;
        let disk = real.file_name()?.to_str()?;
        let name = partition_name(disk, number);
        let sys = format!("/sys/class/block/{disk}/{name}/partition");
        let n: u32 = std::fs::read_to_string(sys).ok()?.trim().parse().ok()?;
        let node = PathBuf::from(format!("/dev/{name}"));
        (n == number && node.exists()).then_some(node)
    }

    /// The open file or device node (for locking it).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// I/O done so far through this disk.
    pub fn stats(&self) -> &IoStats {
        &self.stats
    }

    /// Logical sector size: 512 for image files, the kernel's value for block devices.
    pub fn logical_sector_size(&self) -> u32 {
        self.logical_sector_size
    }
}

fn not_a_disk(path: &Path) -> Error {
    Error::invalid(format!(
        "{} is neither a regular file nor a block device",
        path.display()
    ))
}

/// Open the image. A read-only open asks for `O_NOATIME` too, so that an
/// examination leaves even the access time alone; the kernel grants that flag only
/// to the file's owner (or CAP_FOWNER), so without it the open is retried plain.
fn open_file(path: &Path, access: Access) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = OpenOptions::new();
    opts.read(true).write(access == Access::ReadWrite);
    if access == Access::ReadOnly {
        let mut noatime = opts.clone();
        noatime.custom_flags(libc::O_NOATIME);
        match noatime.open(path) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            r => return r,
        }
    }
    opts.open(path)
}

/// The kernel's name of partition `number` of disk `disk`: a `p` goes between a
/// disk name ending in a digit and the number (`nvme0n1p5`, `loop0p1`, `sdb5`).
fn partition_name(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

/// Read `/sys/class/block/NAME/queue/logical_block_size` for a block device node.
fn block_device_sector_size(path: &Path) -> Option<u32> {
    let real = std::fs::canonicalize(path).ok()?;
    let name = real.file_name()?.to_str()?;
    let text = std::fs::read_to_string(format!("/sys/class/block/{name}/queue/logical_block_size"))
        .or_else(|_| {
            // A partition node: the queue lives on the parent disk.
            std::fs::read_to_string(format!(
                "/sys/class/block/{name}/../queue/logical_block_size"
            ))
        })
        .ok()?;
    text.trim().parse().ok()
}

impl ReadAt for Disk {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(offset, buf.len(), self.size, &self.path.display())?;
        self.stats.add_read(buf.len());
        self.file.read_exact_at(buf, offset).map_err(|e| {
            Error::io(
                format!(
                    "{}: read of {} bytes at offset {offset:#x}",
                    self.path.display(),
                    buf.len()
                ),
                e,
            )
        })
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn disk(&self) -> Option<&Disk> {
        Some(self)
    }
}

impl WriteAt for Disk {
    fn write_all_at(&self, offset: u64, buf: &[u8]) -> Result<()> {
        if self.access != Access::ReadWrite {
            return Err(Error::refused(format!(
                "{} is open read-only; refusing to write at {offset:#x}",
                self.path.display()
            )));
        }
        check_range(offset, buf.len(), self.size, &self.path.display())?;
        self.stats.add_write(buf.len());
        self.file.write_all_at(buf, offset).map_err(|e| {
            Error::io(
                format!(
                    "{}: write of {} bytes at offset {offset:#x}",
                    self.path.display(),
                    buf.len()
                ),
                e,
            )
        })
    }
    fn sync(&self) -> Result<()> {
        if self.access != Access::ReadWrite {
            return Ok(());
        }
        self.file
            .sync_all()
            .map_err(|e| Error::io(format!("{}: sync", self.path.display()), e))
    }
}

/// A bounded byte range `[start, start + len)` of a device.
#[derive(Clone, Debug)]
pub struct Window<D> {
    dev: D,
    start: u64,
    len: u64,
    /// Cursor for `std::io::{Read, Write, Seek}` only; positional calls ignore it.
    pos: u64,
}

impl<D: ReadAt> Window<D> {
    /// A window of `len` bytes at `start`; an error if it does not fit in `dev`.
    pub fn new(dev: D, start: u64, len: u64) -> Result<Window<D>> {
        match start.checked_add(len) {
            Some(end) if end <= dev.size() => Ok(Window {
                dev,
                start,
                len,
                pos: 0,
            }),
            _ => Err(Error::corrupt(format!(
                "byte range {start:#x}+{len:#x} is past the end of the disk (size {:#x})",
                dev.size()
            ))),
        }
    }

    /// Offset of the window in its device.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The device under the window.
    pub fn device(&self) -> &D {
        &self.dev
    }
}

impl<D: ReadAt> ReadAt for Window<D> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(
            offset,
            buf.len(),
            self.len,
            &format_args!("window at {:#x}", self.start),
        )?;
        self.dev.read_exact_at(self.start + offset, buf)
    }
    fn size(&self) -> u64 {
        self.len
    }
}

impl<D: WriteAt> WriteAt for Window<D> {
    fn write_all_at(&self, offset: u64, buf: &[u8]) -> Result<()> {
        check_range(
            offset,
            buf.len(),
            self.len,
            &format_args!("window at {:#x}", self.start),
        )?;
        self.dev.write_all_at(self.start + offset, buf)
    }
    fn sync(&self) -> Result<()> {
        self.dev.sync()
    }
}

impl<D: ReadAt> Read for Window<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        self.read_exact_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: WriteAt> Write for Window<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the partition window",
            ));
        }
        self.write_all_at(self.pos, &buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<D: ReadAt> Seek for Window<D> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) if p <= self.len => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek outside the partition window",
            )),
        }
    }
}

impl<D: ReadAt + 'static> ext4_view::Ext4Read for Window<D> {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.read_exact_at(start_byte, dst)
            .map_err(|e| Box::new(io::Error::from(e)) as _)
    }
}

/// An in-memory device, for tests and for building small images.
#[derive(Debug, Default)]
pub struct MemDisk {
    bytes: std::sync::Mutex<Vec<u8>>,
}

impl MemDisk {
    /// A device holding `bytes`.
    pub fn new(bytes: Vec<u8>) -> MemDisk {
        MemDisk {
            bytes: std::sync::Mutex::new(bytes),
        }
    }

    /// A copy of the current contents.
    pub fn to_vec(&self) -> Vec<u8> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // OK to recover: a panic while holding the lock leaves plain bytes behind.
        self.bytes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ReadAt for MemDisk {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let bytes = self.lock();
        check_range(offset, buf.len(), bytes.len() as u64, &"memory disk")?;
        // OK to cast: the range check above bounds offset by the vector's length.
        let o = offset as usize;
        buf.copy_from_slice(&bytes[o..o + buf.len()]);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.lock().len() as u64
    }
}

impl WriteAt for MemDisk {
    fn write_all_at(&self, offset: u64, buf: &[u8]) -> Result<()> {
        let mut bytes = self.lock();
        check_range(offset, buf.len(), bytes.len() as u64, &"memory disk")?;
        let o = offset as usize;
        bytes[o..o + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

/// A read-ahead cache of one aligned chunk over a device: many small sequential
/// reads (ext4-view reads group descriptors one by one) become a few large ones.
/// Reads only; never used under writes.
#[derive(Debug)]
pub struct ReadAhead<D> {
    dev: D,
    cache: std::sync::Mutex<(u64, Vec<u8>)>,
}

/// Size of the [`ReadAhead`] chunk.
const READ_AHEAD: u64 = 64 << 10;

impl<D: ReadAt> ReadAhead<D> {
    /// Cache reads of `dev`.
    pub fn new(dev: D) -> ReadAhead<D> {
        ReadAhead {
            dev,
            cache: std::sync::Mutex::new((0, Vec::new())),
        }
    }
}

impl<D: ReadAt> ReadAt for ReadAhead<D> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        // Checked first: every sum below then stays within the device's size.
        check_range(offset, buf.len(), self.dev.size(), &"read-ahead")?;
        let len = buf.len() as u64;
        let chunk = offset - offset % READ_AHEAD;
        // Large reads, and reads that straddle a chunk boundary, go straight through.
        if len > READ_AHEAD || offset + len > chunk + READ_AHEAD {
            return self.dev.read_exact_at(offset, buf);
        }
        // OK to recover: the cache holds plain bytes and is refilled on a miss.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (start, bytes) = &mut *cache;
        if *start != chunk || bytes.is_empty() {
            let fill = READ_AHEAD.min(self.dev.size() - chunk);
            // OK to cast: fill is at most READ_AHEAD.
            bytes.resize(fill as usize, 0);
            if let Err(e) = self.dev.read_exact_at(chunk, bytes) {
                bytes.clear();
                return Err(e);
            }
            *start = chunk;
        }
        // OK to cast: both are below READ_AHEAD.
        let from = (offset - chunk) as usize;
        buf.copy_from_slice(&bytes[from..from + buf.len()]);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.dev.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_partition_names() {
        assert_eq!(partition_name("sdb", 5), "sdb5");
        assert_eq!(partition_name("xvda", 1), "xvda1");
        assert_eq!(partition_name("nvme0n1", 3), "nvme0n1p3");
        assert_eq!(partition_name("mmcblk0", 2), "mmcblk0p2");
        assert_eq!(partition_name("loop7", 1), "loop7p1");
    }

    #[test]
    fn read_ahead_checks_the_range_before_any_arithmetic() {
        let ra = ReadAhead::new(MemDisk::new((0..100_000u32).map(|i| i as u8).collect()));
        let mut b = [0u8; 4];
        // An offset near u64::MAX overflowed `offset + len` (a panic in debug builds).
        assert!(ra.read_exact_at(u64::MAX - 1, &mut b).is_err());
        assert!(ra.read_exact_at(99_998, &mut b).is_err());
        ra.read_exact_at(99_996, &mut b).unwrap();
        assert_eq!(b, [0x9c, 0x9d, 0x9e, 0x9f]);
        // Across a chunk boundary, and a cached read after it.
        let mut big = vec![0u8; 70_000];
        ra.read_exact_at(1, &mut big).unwrap();
        assert_eq!(big[65_535], 0);
        ra.read_exact_at(65_536, &mut b).unwrap();
        assert_eq!(b, [0, 1, 2, 3]);
    }

    #[test]
    fn windows_refuse_reads_past_their_end() {
        let w = Window::new(MemDisk::new(vec![1; 4096]), 1024, 2048).unwrap();
        let mut b = [0u8; 8];
        assert!(w.read_exact_at(2044, &mut b).is_err());
        assert!(w.read_exact_at(u64::MAX - 4, &mut b).is_err());
        assert!(Window::new(MemDisk::new(vec![1; 4096]), u64::MAX, 2).is_err());
    }
}

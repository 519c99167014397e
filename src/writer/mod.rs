//! The write transaction: one handle for everything a writing command changes on
//! one disk, from the first check to the last flush.
//!
//! [`Writer::open`] opens the disk read-write once, takes the exclusive lock
//! ([`lock`]), refuses a mounted target ([`mounted`]), reads the partition table,
//! and starts one undo log for the whole disk when asked. [`Writer::ext`] opens
//! the ext filesystem of any partition inside it (several may be open at once,
//! all behind the same undo log). [`Writer::commit`] flushes every filesystem
//! and marks the undo log complete; [`Writer::abort`] drops what was not flushed
//! and says in what state the image is. The operations named by guest paths are
//! in [`ops`]; `copy-in` is [`crate::copy::copy_in`].
//!
//! Order of the checks, all before the first byte is written: lock, mount check,
//! table, then per filesystem a hibernation image freezing it (unless
//! `force`, see [`crate::hibernation`]) and the engine's own refusals
//! (features, journal, errors, orphans) when it is opened.

pub mod lock;
pub mod mounted;
pub mod ops;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::disk::{Access, Disk, DiskKind, ReadAt, Window, WriteAt};
use crate::error::{Error, Result};
use crate::ext::Ext;
use crate::fault::FailAfter;
use crate::part::{self, PartitionTable};
use crate::undo::UndoDev;

pub use lock::Lock;

/// The device a writer's filesystems are opened on: the disk, or the disk behind
/// the undo log, seen through the partition's window.
pub type WDev = Window<Arc<dyn WriteAt>>;

/// How a write is carried out.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Keep the original bytes of every region overwritten in this file, for
    /// `domuify undo`. Never replaces an existing file.
    pub undo: Option<PathBuf>,
    /// Wait for another writer to finish instead of refusing at once.
    pub wait: bool,
    /// Override the safety refusals a user may knowingly take.
    pub force: bool,
    /// Crash tests only: fail the image's writes after the first `allow`, below
    /// the undo log. Never set by the command line.
    #[doc(hidden)]
    pub fail_after: Option<FailAfter>,
}

/// The disk (behind the injected fault, if any) is what the undo log saves from.
type Base = Arc<dyn WriteAt + Send + Sync>;
/// The undo log over the disk.
type UndoLog = UndoDev<Base>;

/// One write transaction on one disk.
pub struct Writer {
    image: PathBuf,
    disk: Arc<Disk>,
    table: PartitionTable,
    dev: Arc<dyn WriteAt>,
    undo: Option<(Arc<UndoLog>, PathBuf)>,
    opts: WriteOptions,
    locks: Vec<Lock>,
    open: Vec<(Option<u32>, Ext<WDev>)>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("image", &self.image)
            .field(
                "open",
                &self.open.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Open `image` for writing: lock it (an image file; a block device's
    /// partitions are claimed as they are opened), refuse it when mounted (an
    /// image file behind a mounted loop device), read its partition table and
    /// start the undo log if `opts.undo` names one.
    pub fn open(image: &Path, opts: &WriteOptions) -> Result<Writer> {
        let disk = Disk::open(image, Access::ReadWrite)?;
        let mut locks = Vec::new();
        if disk.kind() == DiskKind::ImageFile {
            locks.push(lock::lock_file(disk.file(), image, opts.wait)?);
            mounted::refuse_if_mounted(&disk, None)?;
        }
        let table = part::read_table(&disk, disk.logical_sector_size())
            .map_err(|e| e.context(format!("{}: partition table", image.display())))?;
        let disk = Arc::new(disk);
        let base: Base = match &opts.fail_after {
            Some(f) => Arc::new(f.device(disk.clone())),
            None => disk.clone(),
        };
        let (dev, undo): (Arc<dyn WriteAt>, _) = match &opts.undo {
            Some(p) => {
                let u = Arc::new(UndoDev::create(base, p)?);
                (u.clone(), Some((u, p.clone())))
            }
            None => (base, None),
        };
        Ok(Writer {
            image: image.to_path_buf(),
            disk,
            table,
            dev,
            undo,
            opts: opts.clone(),
            locks,
            open: Vec::new(),
        })
    }

    /// The image as given.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// The disk's partition table.
    pub fn table(&self) -> &PartitionTable {
        &self.table
    }

    /// The options it was opened with.
    pub fn options(&self) -> &WriteOptions {
        &self.opts
    }

    /// The ext filesystem of partition `part` (the whole disk for `None` on a
    /// disk without a partition table), opened read-write on first use. On a
    /// block device the partition is claimed (`O_EXCL`) and checked for mounts
    /// first.
    pub fn ext(&mut self, part: Option<u32>) -> Result<&mut Ext<WDev>> {
        if let Some(i) = self.open.iter().position(|(p, _)| *p == part) {
            return Ok(&mut self.open[i].1);
        }
        let shown = self.image.display().to_string();
        let (start, len) = self.table.locate(part, &shown, self.disk.size())?;
        if !self.opts.force {
            if let Some(n) = part {
                crate::hibernation::refuse_if_frozen(&self.disk, &self.table, n)
                    .map_err(|e| e.context(&shown))?;
            }
        }
        if self.disk.kind() == DiskKind::BlockDevice {
            mounted::refuse_if_mounted(&self.disk, part)?;
            let node = part.and_then(|n| self.disk.partition_node(n));
            let lock = match (part, node) {
                (Some(_), Some(node)) => lock::claim_device(&node, self.opts.wait)?,
                // A bare filesystem: the device is the filesystem.
                (None, _) => lock::claim_device(&self.image, self.opts.wait)?,
                // No node for the partition: hold the disk's node against other
                // domuify writers at least.
                (Some(_), None) => lock::lock_file(self.disk.file(), &self.image, self.opts.wait)?,
            };
            self.locks.push(lock);
        }
        let win = Window::new(self.dev.clone(), start, len)?;
        let ext = Ext::open_read_write(win)?;
        self.open.push((part, ext));
        let last = self.open.len() - 1;
        Ok(&mut self.open[last].1)
    }

    /// Flush every open filesystem (data, inodes, directories, bitmaps, group
    /// descriptors, superblock, in that order), then, with every write durable,
    /// append the undo log's final record and mark its header finished (see
    /// [`UndoDev::complete`]).
    pub fn commit(mut self) -> Result<()> {
        let mut open = std::mem::take(&mut self.open);
        for (_, ext) in open.iter_mut() {
            if let Err(e) = ext.flush() {
                drop(open);
                return Err(self.abort(e));
            }
        }
        drop(open);
        if let Some((u, _)) = &self.undo {
            u.complete().map_err(|e| {
                e.context("the change was made, but the undo file could not be marked complete (it still restores the image)")
            })?;
        }
        Ok(())
    }

    /// Give up after `e`: what the filesystems hold in memory is dropped
    /// unflushed (the engine flushes on its own only between consistent states,
    /// so each filesystem stays as of its last flush, at worst with data in free
    /// blocks). The error returned says whether the image changed and how to
    /// restore it; an undo log that saved nothing is removed.
    pub fn abort(mut self, e: Error) -> Error {
        self.open.clear();
        let Some((u, path)) = self.undo.take() else {
            return e;
        };
        // Issue (and save) the writes the log still holds, to know whether
        // anything reached the image.
        let _ = u.sync();
        if u.stats().device_writes == 0 {
            drop(u);
            let _ = std::fs::remove_file(&path);
            e.context("nothing was written")
        } else {
            e.context(format!(
                "the image may be partly changed; `domuify undo {} {}` restores it",
                path.display(),
                self.image.display()
            ))
        }
    }
}

/// Open `image` for writing, run `f` on the ext filesystem of `part`, commit; on
/// failure abort (see [`Writer::abort`]). The shape of every one-filesystem
/// writing command.
pub fn with_ext<T>(
    image: &Path,
    part: Option<u32>,
    opts: &WriteOptions,
    f: impl FnOnce(&mut Ext<WDev>) -> Result<T>,
) -> Result<T> {
    let mut w = Writer::open(image, opts)?;
    let result = w.ext(part).and_then(f);
    match result {
        Ok(v) => w.commit().map(|()| v),
        Err(e) => Err(w.abort(e)),
    }
}

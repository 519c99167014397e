//! A fault-injecting device, for crash-safety tests: it lets the first `k`
//! writes through and fails every later one, as a power loss would (after the
//! failure nothing else reaches the disk). It also counts writes, so a test can
//! first learn how many writes an operation issues, then interrupt it after each.
//! [`FailAfter`] asks a [`crate::writer::Writer`] to put one under its undo log.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::disk::{ReadAt, WriteAt};
use crate::error::{Error, Result};

/// A [`WriteAt`] wrapper that fails every write after the first `allow` ones.
#[doc(hidden)]
#[derive(Debug)]
pub struct FaultDev<D> {
    dev: D,
    allow: u64,
    attempts: AtomicU64,
    passed: Arc<AtomicU64>,
    tripped: AtomicBool,
}

/// A fault for a whole write transaction ([`crate::writer::WriteOptions`]): the
/// writer opens the image behind a [`FaultDev`] *below* its undo log, so the log
/// is written as in a real crash and image write `allow + 1` never happens.
/// `passed` counts the writes that reached the image, also after the writer is
/// gone: a test first runs with [`FailAfter::counting`] to learn `n`, then with
/// each `k < n`.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct FailAfter {
    /// Image writes let through; every later one fails.
    pub allow: u64,
    /// Image writes that went through.
    pub passed: Arc<AtomicU64>,
}

impl FailAfter {
    /// Let `allow` image writes through, fail the rest.
    pub fn new(allow: u64) -> FailAfter {
        FailAfter {
            allow,
            passed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Never fail: only count.
    pub fn counting() -> FailAfter {
        FailAfter::new(u64::MAX)
    }

    /// Image writes that went through so far.
    pub fn writes(&self) -> u64 {
        self.passed.load(Ordering::SeqCst)
    }

    /// The device `dev` behind this fault (its writes counted in `passed`).
    pub fn device<D>(&self, dev: D) -> FaultDev<D> {
        FaultDev {
            passed: Arc::clone(&self.passed),
            ..FaultDev::new(dev, self.allow)
        }
    }
}

impl<D> FaultDev<D> {
    /// Let `allow` writes through, fail the rest.
    pub fn new(dev: D, allow: u64) -> FaultDev<D> {
        FaultDev {
            dev,
            allow,
            attempts: AtomicU64::new(0),
            passed: Arc::new(AtomicU64::new(0)),
            tripped: AtomicBool::new(false),
        }
    }

    /// Never fail: only count.
    pub fn counting(dev: D) -> FaultDev<D> {
        FaultDev::new(dev, u64::MAX)
    }

    /// Writes that reached the device.
    pub fn writes(&self) -> u64 {
        self.passed.load(Ordering::SeqCst)
    }

    /// Write calls made, failed ones included.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }

    /// Has a write been refused?
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// The device under it.
    pub fn device(&self) -> &D {
        &self.dev
    }
}

fn power_loss(what: String) -> Error {
    Error::io(
        what,
        io::Error::other("injected fault (simulated power loss)"),
    )
}

impl<D: ReadAt> ReadAt for FaultDev<D> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.dev.read_exact_at(offset, buf)
    }
    fn size(&self) -> u64 {
        self.dev.size()
    }
    fn disk(&self) -> Option<&crate::disk::Disk> {
        self.dev.disk()
    }
}

impl<D: WriteAt> WriteAt for FaultDev<D> {
    fn write_all_at(&self, offset: u64, buf: &[u8]) -> Result<()> {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst);
        if n >= self.allow || self.tripped() {
            self.tripped.store(true, Ordering::SeqCst);
            return Err(power_loss(format!(
                "write #{n} of {} bytes at {offset:#x} not issued",
                buf.len()
            )));
        }
        self.dev.write_all_at(offset, buf)?;
        self.passed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        if self.tripped() {
            return Err(power_loss("sync after the fault".into()));
        }
        self.dev.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    #[test]
    fn lets_k_writes_through_then_fails_all() {
        let mem = MemDisk::new(vec![0u8; 100]);
        let f = FaultDev::new(&mem, 2);
        f.write_all_at(0, &[1]).unwrap();
        f.write_all_at(1, &[2]).unwrap();
        assert!(f.write_all_at(2, &[3]).is_err());
        assert!(f.write_all_at(3, &[4]).is_err());
        assert!(f.sync().is_err());
        assert!(f.tripped());
        assert_eq!(f.writes(), 2);
        assert_eq!(f.attempts(), 4);
        assert_eq!(&mem.to_vec()[..4], &[1, 2, 0, 0]);
        let mut b = [0u8; 2];
        f.read_exact_at(0, &mut b).unwrap();
        assert_eq!(b, [1, 2]);
    }

    #[test]
    fn counting_never_fails() {
        let mem = MemDisk::new(vec![0u8; 10]);
        let f = FaultDev::counting(&mem);
        for i in 0..10 {
            f.write_all_at(i, &[1]).unwrap();
        }
        f.sync().unwrap();
        assert_eq!(f.writes(), 10);
        assert!(!f.tripped());
    }
}

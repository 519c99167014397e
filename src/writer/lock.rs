//! One writer at a time: the exclusive lock a write holds for its whole run.
//!
//! - An image file is locked with `flock(LOCK_EX)` on the open image. The lock
//!   belongs to the file, not to the path: a second writer reaching the same file
//!   through a symlink, a hard link or `/proc/self/fd` meets it too. The holder is
//!   named from `/proc/locks`.
//! - A block device partition is opened with `O_EXCL`, which the kernel grants to
//!   one opener at a time and refuses while the partition is mounted. Only the
//!   partitions written are claimed, never the whole disk, whose other partitions
//!   dom0 may have mounted (the seed's case). A partition the kernel has no node
//!   for (a loop device attached without partition scanning) falls back to
//!   `flock` on the disk's node.
//!
//! A lock is released when its [`Lock`] is dropped (the file closed).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::writer::mounted::dev_numbers;

/// How long `--wait` sleeps between tries of an `O_EXCL` open.
const RETRY: Duration = Duration::from_millis(100);

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Lock the open image `file` (shown as `shown`) exclusively. With `wait`, block
/// until the holder releases it; otherwise refuse at once, naming the holder.
pub fn lock_file(file: &File, shown: &Path, wait: bool) -> Result<Lock> {
    let held = file
        .try_clone()
        .map_err(|e| Error::io(format!("cannot lock {}", shown.display()), e))?;
    let op = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match flock(&held, op) {
        Ok(()) => Ok(Lock { _file: held }),
        Err(e) if e == Errno::WOULDBLOCK => {
            let who = file
                .metadata()
                .ok()
                .and_then(|m| flock_holder(m.dev(), m.ino()))
                .map(|h| format!(" (held by {h})"))
                .unwrap_or_default();
            Err(Error::refused(format!(
                "{} is being written by another program{who}; wait for it to finish, or pass --wait",
                shown.display()
            )))
        }
        Err(e) => Err(Error::io(
            format!("cannot lock {}", shown.display()),
            e.into(),
        )),
    }
}

/// Lock `disk` (its open file or device node) as [`lock_file`] does.
pub fn lock_disk(disk: &crate::disk::Disk, wait: bool) -> Result<Lock> {
    lock_file(disk.file(), disk.path(), wait)
}

/// Claim the block device `node` exclusively (`O_EXCL`). With `wait`, retry
/// until it is free.
pub fn claim_device(node: &Path, wait: bool) -> Result<Lock> {
    loop {
        match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(node)
        {
            Ok(f) => return Ok(Lock { _file: f }),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if wait {
                    std::thread::sleep(RETRY);
                    continue;
                }
                return Err(Error::refused(format!(
                    "{} is in use (mounted, used by a running domain, or being written by another program); stop that first, or pass --wait",
                    node.display()
                )));
            }
            Err(e) => return Err(Error::io(format!("cannot open {}", node.display()), e)),
        }
    }
}

/// The process holding a `flock` write lock on the file `dev`/`ino`, from
/// `/proc/locks`: `"pid 1234 (domuify write ...)"`.
fn flock_holder(dev: u64, ino: u64) -> Option<String> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = holder_pid(&locks, dev, ino)?;
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|c| {
            let parts: Vec<String> = c
                .split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            parts.join(" ")
        })
        .filter(|c| !c.is_empty());
    Some(match cmd {
        Some(c) => format!("pid {pid}: {c}"),
        None => format!("pid {pid}"),
    })
}

/// The pid of the `FLOCK ... WRITE` lock on `dev`/`ino` in a `/proc/locks` text.
/// Lines read `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF` (major and minor
/// in hex, inode in decimal); waiters (`1: -> FLOCK ...`) are skipped.
fn holder_pid(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = dev_numbers(dev);
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(1) != Some(&"FLOCK") || f.get(3) != Some(&"WRITE") {
            return None;
        }
        let mut id = f.get(5)?.split(':');
        let ma = u64::from_str_radix(id.next()?, 16).ok()?;
        let mi = u64::from_str_radix(id.next()?, 16).ok()?;
        let i: u64 = id.next()?.parse().ok()?;
        (ma == major && mi == minor && i == ino).then(|| f.get(4)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_locks_holder() {
        let text = "1: POSIX  ADVISORY  WRITE 99 08:01:5678 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 4321 fd:01:5678 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 77 08:01:5678 0 EOF\n";
        // 0xfd01 is 253:1 in the old 16-bit dev_t encoding.
        assert_eq!(holder_pid(text, 0xfd01, 5678), Some(1234));
        assert_eq!(holder_pid(text, 0x0801, 5678), Some(77));
        assert_eq!(holder_pid(text, 0x0801, 1), None);
    }
}

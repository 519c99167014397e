//! Is the filesystem we are about to write in use by this host's kernel? The
//! mount check of a write (what libext2fs's `ismounted.c` is to e2fsprogs).
//!
//! Reads `/proc/self/mountinfo` and sysfs only. A block device is refused when the
//! partition being written is mounted (itself, or a device stacked on it such as
//! device-mapper or md), or when the whole disk is mounted; other partitions of
//! the same disk may be in use (dom0's root next to the guest's, the seed's case).
//! An image file is refused when a loop device backed by it is mounted, or any
//! partition of that loop device.

use std::path::Path;

use crate::disk::{Disk, DiskKind};
use crate::error::{Error, Result};

/// `major:minor` of a `dev_t` as Linux encodes it.
pub(crate) fn dev_id(rdev: u64) -> String {
    let (major, minor) = dev_numbers(rdev);
    format!("{major}:{minor}")
}

/// Major and minor numbers of a `dev_t` as Linux encodes it.
pub(crate) fn dev_numbers(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major, minor)
}

/// Mount points of the devices `ids` (`major:minor`) in a mountinfo text.
pub(crate) fn mounted_at(mountinfo: &str, ids: &[String]) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            match (f.get(2), f.get(4)) {
                (Some(id), Some(at)) if ids.iter().any(|i| i == id) => Some(at.to_string()),
                _ => None,
            }
        })
        .collect()
}

/// `major:minor` of the sysfs block node `sys` and of the devices stacked on it.
fn node_ids(sys: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    if let Ok(id) = std::fs::read_to_string(sys.join("dev")) {
        ids.push(id.trim().to_string());
    }
    if let Ok(rd) = std::fs::read_dir(sys.join("holders")) {
        for h in rd.flatten() {
            if let Ok(id) = std::fs::read_to_string(h.path().join("dev")) {
                ids.push(id.trim().to_string());
            }
        }
    }
    ids
}

/// `major:minor` of the block device `name` (`sda`, `loop0`), of its partitions
/// (all of them, or only partition `only`) and of the devices stacked on them.
fn block_ids(name: &str, only: Option<u32>) -> Vec<String> {
    let sys = Path::new("/sys/class/block").join(name);
    // The whole device itself: mounted whole, nothing of it may be written.
    let mut ids = node_ids(&sys);
    if let Ok(rd) = std::fs::read_dir(&sys) {
        for e in rd.flatten() {
            let p = e.path();
            if !e.file_name().to_string_lossy().starts_with(name) || !p.join("dev").exists() {
                continue;
            }
            let number = std::fs::read_to_string(p.join("partition"))
                .ok()
                .and_then(|n| n.trim().parse::<u32>().ok());
            if only.is_none() || number == only {
                ids.extend(node_ids(&p));
            }
        }
    }
    ids
}

/// Refuse to write partition `part` (the whole disk when `None`) of `disk` while
/// this host has it mounted: the kernel would be writing the same filesystem.
pub fn refuse_if_mounted(disk: &Disk, part: Option<u32>) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Ok(());
    };
    let shown = disk.path().display();
    // (sysfs name, partition to check or all of them)
    let mut names: Vec<(String, Option<u32>)> = Vec::new();
    match disk.kind() {
        DiskKind::BlockDevice => {
            let rdev = std::fs::metadata(disk.path())
                .map_err(|e| Error::io(format!("cannot stat {shown}"), e))?
                .rdev();
            let link = Path::new("/sys/dev/block").join(dev_id(rdev));
            if let Some(n) = std::fs::canonicalize(link)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            {
                names.push((n, part.filter(|&n| n > 0)));
            }
        }
        DiskKind::ImageFile => {
            let me = std::fs::canonicalize(disk.path())
                .map_err(|e| Error::io(format!("cannot resolve {shown}"), e))?;
            if let Ok(rd) = std::fs::read_dir("/sys/block") {
                for e in rd.flatten() {
                    let Ok(back) = std::fs::read_to_string(e.path().join("loop/backing_file"))
                    else {
                        continue;
                    };
                    if Path::new(back.trim()) == me {
                        names.push((e.file_name().to_string_lossy().into_owned(), None));
                    }
                }
            }
        }
    }
    for (n, only) in names {
        let at = mounted_at(&mountinfo, &block_ids(&n, only));
        if !at.is_empty() {
            return Err(Error::refused(format!(
                "{shown} is mounted (through {n}, at {}); refusing to write to a mounted filesystem: unmount it first",
                at.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_detection_parses_mountinfo() {
        let info = "22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw\n\
                    40 22 7:1 / /mnt/guest rw shared:2 - ext3 /dev/loop1 rw\n\
                    41 22 0:5 / /proc rw - proc proc rw\n";
        assert_eq!(mounted_at(info, &["8:2".into()]), vec!["/"]);
        assert_eq!(
            mounted_at(info, &["7:0".into(), "7:1".into()]),
            vec!["/mnt/guest"]
        );
        assert!(mounted_at(info, &["8:1".into()]).is_empty());
        // dev_t encodings: 8:2, and a large minor.
        assert_eq!(dev_id(0x802), "8:2");
        assert_eq!(
            dev_id((259 << 8) | (0x12345 & 0xff) | ((0x12345 & !0xff) << 12)),
            "259:74565"
        );
    }
}

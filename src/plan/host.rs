//! What dom0 itself uses on the disk being exported: its root and its swap, from
//! an fstab the user names (`--host-fstab FILE`) and, when the image is a block
//! device of this host, from `/proc/swaps` and `/proc/self/mountinfo`.
//!
//! [`from_fstab`] is pure (it resolves dom0's entries against the image as the
//! guest resolver does); [`from_this_host`] reads `/proc` and nothing else. Neither
//! writes. Another installed system on the image is never assumed to be dom0.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::devmap::{DiskFacts, HostUse};
use super::fstab::resolve_lines;
use crate::guest::fstab;
use crate::guest::resolve::SourceKind;
use crate::writer::mounted::{dev_id, mounted_at};

/// dom0's root and swap on this image, from dom0's fstab text (`what` names it
/// in the reasons). Device names are matched as for a guest: the disk that
/// dom0's root entry names is taken to be this one.
pub fn from_fstab(text: &[u8], what: &str, facts: &DiskFacts) -> HostUse {
    let lines = fstab::parse(text);
    let mut view = facts.view(0);
    // Device names are read against the disk of dom0's root entry.
    view.guest_partition = u32::MAX;
    let mut out = HostUse::default();
    for r in resolve_lines(&lines, &view) {
        if r.resolution.kind != SourceKind::Partition {
            continue;
        }
        let Some(n) = r.resolution.partition else {
            continue;
        };
        let how = format!("{what} line {}: {}", r.line, r.entry.source);
        if r.entry.target == "/" {
            out.root.push((n, how));
        } else if r.entry.fstype == "swap" {
            out.swap.push((n, how));
        }
    }
    out
}

/// `major:minor` of a block device node.
fn dev_of(path: &Path) -> Option<u64> {
    let m = std::fs::metadata(path).ok()?;
    m.file_type().is_block_device().then(|| m.rdev())
}

/// dom0's root and swap among `nodes` (partition number, its device node), from
/// mountinfo and /proc/swaps text: pure, so that it is tested without a host.
pub fn from_proc(nodes: &[(u32, String, Option<u64>)], mountinfo: &str, swaps: &str) -> HostUse {
    let mut out = HostUse::default();
    for (n, node, rdev) in nodes {
        let Some(rdev) = rdev else { continue };
        if mounted_at(mountinfo, &[dev_id(*rdev)])
            .iter()
            .any(|at| at == "/")
        {
            out.root
                .push((*n, format!("{node} is mounted at / on this host")));
        }
    }
    for line in swaps.lines().skip(1) {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        for (n, node, _) in nodes {
            if name == node {
                out.swap
                    .push((*n, format!("{node} is a swap in use on this host")));
            }
        }
    }
    out
}

/// dom0's root and swap on a block device of this host (`nodes`: partition
/// number and device node), from `/proc/self/mountinfo` and `/proc/swaps`.
pub fn from_this_host(nodes: &[(u32, String)]) -> HostUse {
    let nodes: Vec<(u32, String, Option<u64>)> = nodes
        .iter()
        .map(|(n, p)| {
            let canon = std::fs::canonicalize(p)
                .map(|c| c.display().to_string())
                .unwrap_or_else(|_| p.clone());
            (*n, canon, dev_of(Path::new(p)))
        })
        .collect();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    from_proc(&nodes, &mountinfo, &swaps)
}

/// Both lists, merged.
pub fn merge(mut a: HostUse, b: HostUse) -> HostUse {
    a.root.extend(b.root);
    a.swap.extend(b.swap);
    a
}

/// What dom0 uses on `disk`: its root and swap named by `host_fstab` (the text
/// and how to name it in messages), and for a block device of this host what
/// `/proc` says is mounted or swapped on its partitions.
pub fn for_disk(
    disk: &crate::disk::Disk,
    facts: &DiskFacts,
    host_fstab: Option<(&[u8], &str)>,
) -> HostUse {
    let mut used = HostUse::default();
    if let Some((text, what)) = host_fstab {
        used = merge(used, from_fstab(text, what, facts));
    }
    if disk.kind() == crate::disk::DiskKind::BlockDevice {
        let nodes: Vec<(u32, String)> = facts
            .parts
            .iter()
            .filter_map(|p| {
                let n = p.view.number;
                disk.partition_node(n)
                    .map(|node| (n, node.display().to_string()))
            })
            .collect();
        used = merge(used, from_this_host(&nodes));
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_and_swaps() {
        let nodes = vec![
            (1, "/dev/sdb1".to_string(), Some((8 << 8) | 17)),
            (2, "/dev/sdb2".to_string(), Some((8 << 8) | 18)),
        ];
        let info = "22 1 8:17 / / rw,relatime shared:1 - ext4 /dev/sdb1 rw\n\
                    41 22 0:5 / /proc rw - proc proc rw\n";
        let swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                     /dev/sdb2                               partition\t1048572\t\t0\t\t-2\n";
        let h = from_proc(&nodes, info, swaps);
        assert_eq!(h.root.iter().map(|r| r.0).collect::<Vec<_>>(), [1]);
        assert_eq!(h.swap.iter().map(|r| r.0).collect::<Vec<_>>(), [2]);
        let h = from_proc(
            &nodes,
            "22 1 8:3 / / rw - ext4 /dev/sda3 rw\n",
            "Filename\n",
        );
        assert!(h.root.is_empty() && h.swap.is_empty());
        assert_eq!(
            dev_id((259 << 8) | 0x45 | ((0x123 & !0xff) << 12)),
            "259:325"
        );
    }
}

//! Resolving an fstab source (`/dev/hda5`, `UUID=…`, `PARTUUID=…`, `/dev/disk/by-*`)
//! to the partition of this image it names, or saying what else it is (another
//! disk, a pseudo or network filesystem, a bind mount, a swap file, unresolved).
//!
//! Pure: works on a [`DiskView`] (what the partition table and the probes found),
//! so the planners of later commands and the tests use it without an image.

use serde::Serialize;

use super::fstab::Entry;

/// What resolution knows of one partition of the image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartView {
    /// Linux partition number (0 for a bare filesystem).
    pub number: u32,
    /// blkid type of its filesystem.
    pub fstype: String,
    /// Filesystem UUID.
    pub uuid: Option<String>,
    /// Filesystem label.
    pub label: Option<String>,
    /// Partition UUID.
    pub partuuid: Option<String>,
    /// Partition label (GPT name).
    pub partlabel: Option<String>,
}

/// The image as the resolver sees it.
#[derive(Clone, Debug, Default)]
pub struct DiskView {
    /// Every partition (for a bare filesystem, one with number 0).
    pub parts: Vec<PartView>,
    /// The partition holding the guest whose fstab is being resolved.
    pub guest_partition: u32,
}

/// How a source was matched to a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResolvedBy {
    /// `UUID=` or `/dev/disk/by-uuid/`.
    Uuid,
    /// `LABEL=` or `/dev/disk/by-label/`.
    Label,
    /// `PARTUUID=` or `/dev/disk/by-partuuid/`.
    Partuuid,
    /// `PARTLABEL=` or `/dev/disk/by-partlabel/`.
    Partlabel,
    /// A kernel device name of the guest's own disk (`/dev/hda5`, `/dev/sda5`).
    DeviceName,
    /// `/dev/disk/by-path/…-partN` of the guest's own disk.
    ByPath,
}

/// What kind of thing an fstab source is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A partition of this image.
    Partition,
    /// A device of another disk (a CD-ROM, a second disk).
    OtherDisk,
    /// A kernel pseudo filesystem (proc, sysfs, tmpfs, …).
    Pseudo,
    /// A network filesystem.
    Network,
    /// A bind mount.
    Bind,
    /// A swap file.
    SwapFile,
    /// Could not be resolved (no such UUID/label/partition, LVM, …).
    Unresolved,
}

/// The outcome for one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// What the source is.
    pub kind: SourceKind,
    /// The partition it names, for [`SourceKind::Partition`].
    pub partition: Option<u32>,
    /// How the partition was found.
    pub resolved_by: Option<ResolvedBy>,
    /// Why it is what it is, in words (`"no filesystem with UUID …"`).
    pub note: Option<String>,
}

impl Resolution {
    fn part(n: u32, by: ResolvedBy) -> Self {
        Resolution {
            kind: SourceKind::Partition,
            partition: Some(n),
            resolved_by: Some(by),
            note: None,
        }
    }
    fn other(kind: SourceKind, note: impl Into<String>) -> Self {
        Resolution {
            kind,
            partition: None,
            resolved_by: None,
            note: Some(note.into()),
        }
    }
}

const PSEUDO: &[&str] = &[
    "proc",
    "sysfs",
    "devpts",
    "tmpfs",
    "devtmpfs",
    "ramfs",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "efivarfs",
    "bpf",
    "mqueue",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "usbfs",
    "autofs",
    "rpc_pipefs",
    "nfsd",
    "selinuxfs",
    "xenfs",
    "none",
    "overlay",
];

const NETWORK: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smbfs",
    "smb3",
    "ncpfs",
    "sshfs",
    "fuse.sshfs",
    "glusterfs",
    "fuse.glusterfs",
    "ceph",
    "fuse.ceph",
    "9p",
    "afs",
    "davfs",
    "fuse.s3fs",
    "lustre",
];

/// A kernel device name split into disk and partition number.
#[derive(Debug, PartialEq, Eq)]
struct DevName<'a> {
    /// The disk's name (`hda`, `sdb`, `nvme0n1`, `mmcblk0`).
    disk: &'a str,
    /// The partition number, if the name has one.
    part: Option<u32>,
}

/// Split `hda5` / `sdb` / `xvda2` / `nvme0n1p3` / `mmcblk0p1` into disk and partition.
fn split_dev_name(name: &str) -> Option<DevName<'_>> {
    for prefix in ["nvme", "mmcblk"] {
        if name.starts_with(prefix) {
            // nvme0n1p3, mmcblk0p1: partition after the last 'p' that follows a digit.
            return Some(match name.rfind('p') {
                Some(i)
                    if i > prefix.len()
                        && name[..i].ends_with(|c: char| c.is_ascii_digit())
                        && !name[i + 1..].is_empty()
                        && name[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
                {
                    DevName {
                        disk: &name[..i],
                        part: name[i + 1..].parse().ok(),
                    }
                }
                _ => DevName {
                    disk: name,
                    part: None,
                },
            });
        }
    }
    for prefix in ["xvd", "hd", "sd", "vd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            if letters == 0 {
                return None;
            }
            let digits = &rest[letters..];
            if digits.is_empty() {
                return Some(DevName {
                    disk: name,
                    part: None,
                });
            }
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            return Some(DevName {
                disk: &name[..prefix.len() + letters],
                part: digits.parse().ok(),
            });
        }
    }
    None
}

/// `sda`, `hda`, `vda`, `xvda`, `nvme0n1`, `mmcblk0`: the first disk of its kind.
fn is_first_disk(disk: &str) -> bool {
    matches!(disk, "sda" | "hda" | "vda" | "xvda" | "nvme0n1" | "mmcblk0")
}

/// Well-known names of other devices: CD-ROMs and floppies.
fn is_removable_name(name: &str) -> bool {
    name.starts_with("sr")
        || name.starts_with("scd")
        || name == "cdrom"
        || name.starts_with("cdrom")
        || name == "dvd"
        || name.starts_with("fd")
}

/// The disk name the guest used for itself: the disk of the device its root (`/`)
/// entry names, when that entry is a device name whose partition number is the
/// guest's own partition.
pub fn guest_disk_name<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    guest_partition: u32,
) -> Option<String> {
    let mut fallback = None;
    for e in entries {
        let Some(name) = e.source.strip_prefix("/dev/") else {
            continue;
        };
        let Some(dev) = split_dev_name(name) else {
            continue;
        };
        if e.target == "/" && dev.part == Some(guest_partition) {
            return Some(dev.disk.to_string());
        }
        if fallback.is_none() && e.target == "/" {
            fallback = Some(dev.disk.to_string());
        }
    }
    fallback
}

fn eq_id(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn find_by(view: &DiskView, value: &str, by: ResolvedBy) -> Resolution {
    let hit = view.parts.iter().find(|p| {
        let field = match by {
            ResolvedBy::Uuid => p.uuid.as_deref(),
            ResolvedBy::Label => p.label.as_deref(),
            ResolvedBy::Partuuid => p.partuuid.as_deref(),
            ResolvedBy::Partlabel => p.partlabel.as_deref(),
            _ => None,
        };
        match (field, by) {
            // Labels are case-sensitive; UUIDs are not.
            (Some(f), ResolvedBy::Label | ResolvedBy::Partlabel) => f == value,
            (Some(f), _) => eq_id(f, value),
            (None, _) => false,
        }
    });
    match hit {
        Some(p) => Resolution::part(p.number, by),
        None => {
            let what = match by {
                ResolvedBy::Uuid => "filesystem with UUID",
                ResolvedBy::Label => "filesystem with label",
                ResolvedBy::Partuuid => "partition with PARTUUID",
                _ => "partition with PARTLABEL",
            };
            Resolution::other(
                SourceKind::Unresolved,
                format!("no {what} {value} in this image"),
            )
        }
    }
}

/// Resolve one entry. `self_disk` is the guest's own disk name, from
/// [`guest_disk_name`].
pub fn resolve(entry: &Entry, view: &DiskView, self_disk: Option<&str>) -> Resolution {
    let src = entry.source.as_str();
    let fstype = entry.fstype.as_str();
    if entry.option_list().any(|o| o == "bind" || o == "rbind") {
        return Resolution::other(SourceKind::Bind, "bind mount");
    }
    if NETWORK.contains(&fstype)
        || src.starts_with("//")
        || (src.contains(":/") && !src.starts_with('/'))
    {
        return Resolution::other(SourceKind::Network, "network filesystem");
    }
    for (prefix, by) in [
        ("UUID=", ResolvedBy::Uuid),
        ("LABEL=", ResolvedBy::Label),
        ("PARTUUID=", ResolvedBy::Partuuid),
        ("PARTLABEL=", ResolvedBy::Partlabel),
        ("/dev/disk/by-uuid/", ResolvedBy::Uuid),
        ("/dev/disk/by-label/", ResolvedBy::Label),
        ("/dev/disk/by-partuuid/", ResolvedBy::Partuuid),
        ("/dev/disk/by-partlabel/", ResolvedBy::Partlabel),
    ] {
        if let Some(value) = src.strip_prefix(prefix) {
            let value = value.trim_matches('"');
            return find_by(view, value, by);
        }
    }
    if let Some(path) = src.strip_prefix("/dev/disk/by-path/") {
        let part = path
            .rsplit_once("-part")
            .and_then(|(_, n)| n.parse::<u32>().ok());
        return match part {
            Some(n) if view.parts.iter().any(|p| p.number == n) => {
                Resolution::part(n, ResolvedBy::ByPath)
            }
            _ => Resolution::other(
                SourceKind::Unresolved,
                format!("by-path name {path} names no partition of this image"),
            ),
        };
    }
    if let Some(name) = src.strip_prefix("/dev/") {
        if name.starts_with("mapper/") || name.starts_with("md") || name.matches('/').count() == 1 {
            return Resolution::other(
                SourceKind::Unresolved,
                format!("{src} is a device-mapper, RAID or LVM device"),
            );
        }
        if is_removable_name(name) {
            return Resolution::other(SourceKind::OtherDisk, format!("{src} is a removable drive"));
        }
        if let Some(dev) = split_dev_name(name) {
            // Without a root entry naming a device, the first disk of its kind is
            // taken as the guest's own, and the note says it was assumed.
            let (own, assumed) = match self_disk {
                Some(d) => (d == dev.disk, false),
                None => (is_first_disk(dev.disk), true),
            };
            return match (own, dev.part) {
                (true, Some(n)) if view.parts.iter().any(|p| p.number == n) => {
                    let mut r = Resolution::part(n, ResolvedBy::DeviceName);
                    if assumed {
                        r.note = Some(format!("assumed {} is the guest's own disk", dev.disk));
                    }
                    r
                }
                (true, Some(n)) => Resolution::other(
                    SourceKind::Unresolved,
                    format!("this image has no partition {n}"),
                ),
                (true, None) => Resolution::other(
                    SourceKind::Unresolved,
                    format!("{src} is the whole disk, not a partition"),
                ),
                (false, _) => Resolution::other(
                    SourceKind::OtherDisk,
                    format!(
                        "{src} is on another disk than the guest's ({})",
                        self_disk.unwrap_or("unknown")
                    ),
                ),
            };
        }
        return Resolution::other(SourceKind::Unresolved, format!("unknown device name {src}"));
    }
    if PSEUDO.contains(&fstype) || !src.starts_with('/') {
        return Resolution::other(SourceKind::Pseudo, "pseudo filesystem");
    }
    if fstype == "swap" {
        return Resolution::other(SourceKind::SwapFile, "swap file inside a filesystem");
    }
    Resolution::other(SourceKind::Unresolved, format!("{src} is not a device"))
}

#[cfg(test)]
mod tests {
    use super::super::fstab::{parse, LineKind};
    use super::*;

    fn seed_view() -> DiskView {
        let p = |n: u32, t: &str, uuid: Option<&str>| PartView {
            number: n,
            fstype: t.into(),
            uuid: uuid.map(Into::into),
            partuuid: Some(format!("5eed0001-{n:02x}")),
            ..Default::default()
        };
        DiskView {
            parts: vec![
                p(1, "ntfs", Some("0123456789ABCDEF")),
                p(2, "swap", Some("11111111-2222-3333-4444-555555555555")),
                p(3, "ext3", Some("33333333-0000-0000-0000-000000000003")),
                p(4, "", None),
                p(5, "ext3", Some("55555555-0000-0000-0000-000000000005")),
            ],
            guest_partition: 5,
        }
    }

    fn resolve_all(text: &str, view: &DiskView) -> Vec<(String, Resolution)> {
        let entries: Vec<Entry> = parse(text)
            .into_iter()
            .filter_map(|l| match l.kind {
                LineKind::Entry(e) => Some(e),
                _ => None,
            })
            .collect();
        let disk = guest_disk_name(&entries, view.guest_partition);
        entries
            .iter()
            .map(|e| (e.source.clone(), resolve(e, view, disk.as_deref())))
            .collect()
    }

    #[test]
    fn seed_disk_resolution() {
        let text = "proc /proc proc defaults 0 0\n/dev/hda5 / ext3 defaults 0 1\n\
/dev/hda1 /media/hda1 ntfs defaults,* 0 1\n/dev/hda3 /media/hda3 ext3 defaults 0 2\n\
/dev/hda2 none swap sw 0 0\n/dev/hdc /media/cdrom0 udf,iso9660 user,noauto 0 0\n";
        let r = resolve_all(text, &seed_view());
        let got: Vec<(SourceKind, Option<u32>)> =
            r.iter().map(|(_, r)| (r.kind, r.partition)).collect();
        assert_eq!(
            got,
            vec![
                (SourceKind::Pseudo, None),
                (SourceKind::Partition, Some(5)),
                (SourceKind::Partition, Some(1)),
                (SourceKind::Partition, Some(3)),
                (SourceKind::Partition, Some(2)),
                (SourceKind::OtherDisk, None),
            ]
        );
        assert_eq!(r[1].1.resolved_by, Some(ResolvedBy::DeviceName));
    }

    #[test]
    fn identifiers_and_other_kinds() {
        let text = "UUID=55555555-0000-0000-0000-000000000005 / ext4 defaults 0 1\n\
PARTUUID=5EED0001-03 /srv ext3 defaults 0 2\n\
/dev/disk/by-uuid/11111111-2222-3333-4444-555555555555 none swap sw 0 0\n\
UUID=deadbeef-0000-0000-0000-000000000000 /gone ext4 defaults 0 2\n\
server:/export /nfs nfs defaults 0 0\n\
/srv/a /srv/b none bind 0 0\n\
/swapfile none swap sw 0 0\n\
/dev/sdb1 /data ext4 defaults,nofail 0 2\n\
/dev/mapper/vg-home /home ext4 defaults 0 2\n\
/dev/sr0 /media/cdrom udf,iso9660 user,noauto 0 0\n\
tmpfs /tmp tmpfs defaults 0 0\n";
        let r = resolve_all(text, &seed_view());
        let kinds: Vec<SourceKind> = r.iter().map(|(_, r)| r.kind).collect();
        use SourceKind::*;
        assert_eq!(
            kinds,
            vec![
                Partition, Partition, Partition, Unresolved, Network, Bind, SwapFile, OtherDisk,
                Unresolved, OtherDisk, Pseudo
            ]
        );
        assert_eq!(r[1].1.partition, Some(3));
        assert_eq!(r[2].1.resolved_by, Some(ResolvedBy::Uuid));
    }

    #[test]
    fn device_names() {
        assert_eq!(
            split_dev_name("hda5"),
            Some(DevName {
                disk: "hda",
                part: Some(5)
            })
        );
        assert_eq!(
            split_dev_name("xvdb"),
            Some(DevName {
                disk: "xvdb",
                part: None
            })
        );
        assert_eq!(
            split_dev_name("nvme0n1p3"),
            Some(DevName {
                disk: "nvme0n1",
                part: Some(3)
            })
        );
        assert_eq!(
            split_dev_name("nvme0n1"),
            Some(DevName {
                disk: "nvme0n1",
                part: None
            })
        );
        assert_eq!(
            split_dev_name("mmcblk0p2"),
            Some(DevName {
                disk: "mmcblk0",
                part: Some(2)
            })
        );
        assert_eq!(split_dev_name("sda1x"), None);
        assert_eq!(split_dev_name("loop0"), None);
    }

    #[test]
    fn uuid_root_assumes_first_disk() {
        // Root by UUID: /dev/sda3 is taken as the guest's own disk, and says so;
        // /dev/sdb1 is another disk.
        let text = "UUID=55555555-0000-0000-0000-000000000005 / ext4 defaults 0 1\n\
/dev/sda3 /boot ext3 defaults 0 2\n/dev/sdb1 /data ext4 defaults 0 2\n";
        let r = resolve_all(text, &seed_view());
        assert_eq!(r[1].1.partition, Some(3));
        assert!(r[1].1.note.as_deref().unwrap_or("").contains("assumed"));
        assert_eq!(r[2].1.kind, SourceKind::OtherDisk);
    }
}

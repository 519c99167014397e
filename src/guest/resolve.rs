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
    /// An MBR extended partition: a container of logical partitions, which no
    /// fstab entry can mount.
    pub extended: bool,
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
    /// `/dev/disk/by-id/…-partN` of the guest's own disk.
    ById,
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
                        part: Some(name[i + 1..].parse().ok()?),
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
                // A number too large for any partition names none.
                part: Some(digits.parse().ok()?),
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

/// How the guest names its own disk, learnt from its root (`/`) entry: a kernel
/// name (`hda`), a `/dev/disk/by-id/` or a `/dev/disk/by-path/` name without its
/// `-partN`. Device names of the other disks are told apart with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnDisk {
    /// Kernel name of the disk (`hda`, `sda`, `nvme0n1`).
    pub name: Option<String>,
    /// `/dev/disk/by-id/` name of the disk (`ata-QEMU_HARDDISK_QM00001`).
    pub by_id: Option<String>,
    /// `/dev/disk/by-path/` name of the disk (`pci-0000:00:01.1-ata-1`).
    pub by_path: Option<String>,
}

/// `NAME-partN` of a `/dev/disk/by-id/` or `/dev/disk/by-path/` name, split.
fn split_part_suffix(name: &str) -> (&str, Option<u32>) {
    match name.rsplit_once("-part") {
        Some((disk, n)) if !disk.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            match n.parse() {
                Ok(n) => (disk, Some(n)),
                Err(_) => (name, None),
            }
        }
        _ => (name, None),
    }
}

/// The guest's own disk, from the entry for `/`: its kernel name when the entry
/// is a device name whose partition number is the guest's own partition (else the
/// disk of whatever device name the root entry has), or its by-id / by-path name
/// when the entry names the guest's partition that way.
pub fn own_disk<'a>(entries: impl IntoIterator<Item = &'a Entry>, guest_partition: u32) -> OwnDisk {
    let mut own = OwnDisk::default();
    let mut fallback = None;
    for e in entries.into_iter().filter(|e| e.target == "/") {
        let src = e.source.as_str();
        if let Some(name) = src.strip_prefix(BY_ID) {
            let (disk, part) = split_part_suffix(name);
            if part == Some(guest_partition) && own.by_id.is_none() {
                own.by_id = Some(disk.to_string());
            }
        } else if let Some(name) = src.strip_prefix(BY_PATH) {
            let (disk, part) = split_part_suffix(name);
            if part == Some(guest_partition) && own.by_path.is_none() {
                own.by_path = Some(disk.to_string());
            }
        } else if let Some(dev) = src.strip_prefix("/dev/").and_then(split_dev_name) {
            if dev.part == Some(guest_partition) && own.name.is_none() {
                own.name = Some(dev.disk.to_string());
            }
            if fallback.is_none() {
                fallback = Some(dev.disk.to_string());
            }
        }
    }
    if own.name.is_none() {
        own.name = fallback;
    }
    own
}

const BY_ID: &str = "/dev/disk/by-id/";
const BY_PATH: &str = "/dev/disk/by-path/";

/// The value of a `TAG=value` source without its quotes (`UUID="…"` and
/// `LABEL='…'` are read as libblkid reads them).
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

/// Decode udev's `\xNN` escapes of a `/dev/disk/by-*` name (`My\x20Disk` is the
/// link udev makes for the label `My Disk`); anything else stays as written.
fn udev_unescape(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            let hex = bytes
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn eq_id(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The partition whose UUID, label, PARTUUID or PARTLABEL (`by`) is `value`.
/// When several carry it (a cloned filesystem), the guest's own partition is
/// taken if it is one of them, else the first, and the note names them all.
fn find_by(view: &DiskView, value: &str, by: ResolvedBy) -> Resolution {
    // Each partition that carries the value, with the value as it carries it.
    let hits: Vec<(u32, &str)> = view
        .parts
        .iter()
        .filter_map(|p| {
            let field = match by {
                ResolvedBy::Uuid => p.uuid.as_deref(),
                ResolvedBy::Label => p.label.as_deref(),
                ResolvedBy::Partuuid => p.partuuid.as_deref(),
                ResolvedBy::Partlabel => p.partlabel.as_deref(),
                _ => None,
            }?;
            let same = match by {
                // Labels are case-sensitive; UUIDs are matched whatever their case,
                // and a case that differs is said (see below).
                ResolvedBy::Label | ResolvedBy::Partlabel => field == value,
                _ => eq_id(field, value),
            };
            same.then_some((p.number, field))
        })
        .collect();
    let what = match by {
        ResolvedBy::Uuid => "filesystem with UUID",
        ResolvedBy::Label => "filesystem with label",
        ResolvedBy::Partuuid => "partition with PARTUUID",
        _ => "partition with PARTLABEL",
    };
    let chosen = hits
        .iter()
        .find(|&&(n, _)| n == view.guest_partition)
        .or_else(|| hits.first());
    let Some(&(n, field)) = chosen else {
        return Resolution::other(
            SourceKind::Unresolved,
            format!("no {what} {value} in this image"),
        );
    };
    let mut r = Resolution::part(n, by);
    let mut notes = Vec::new();
    if hits.len() > 1 {
        let all: Vec<String> = hits.iter().map(|(n, _)| n.to_string()).collect();
        notes.push(format!(
            "more than one {what} {value}: partitions {}; partition {n} taken",
            all.join(", ")
        ));
    }
    if field != value {
        // libblkid and udev's /dev/disk/by-* links compare case-sensitively.
        notes.push(format!(
            "partition {n} has {field}: mount compares case-sensitively and would not find {value}"
        ));
    }
    if !notes.is_empty() {
        r.note = Some(notes.join("; "));
    }
    r
}

/// Resolve one entry. `own` is how the guest names its own disk, from
/// [`own_disk`].
pub fn resolve(entry: &Entry, view: &DiskView, own: &OwnDisk) -> Resolution {
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
    ] {
        if let Some(value) = src.strip_prefix(prefix) {
            return find_by(view, unquote(value), by);
        }
    }
    for (prefix, by) in [
        ("/dev/disk/by-uuid/", ResolvedBy::Uuid),
        ("/dev/disk/by-label/", ResolvedBy::Label),
        ("/dev/disk/by-partuuid/", ResolvedBy::Partuuid),
        ("/dev/disk/by-partlabel/", ResolvedBy::Partlabel),
    ] {
        if let Some(value) = src.strip_prefix(prefix) {
            return find_by(view, &udev_unescape(value), by);
        }
    }
    if let Some(name) = src.strip_prefix(BY_ID) {
        // Device-mapper, LVM, RAID and multipath links name no partition.
        if ["dm-", "lvm-", "md-", "mdraid-", "raid-"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            return Resolution::other(
                SourceKind::Unresolved,
                format!("{src} is a device-mapper, RAID or LVM device"),
            );
        }
        return by_disk_name(src, name, own.by_id.as_deref(), view, ResolvedBy::ById);
    }
    if let Some(name) = src.strip_prefix(BY_PATH) {
        return by_disk_name(src, name, own.by_path.as_deref(), view, ResolvedBy::ByPath);
    }
    if let Some(name) = src.strip_prefix("/dev/") {
        if name.starts_with("zram")
            || name
                .strip_prefix("ram")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        {
            return Resolution::other(SourceKind::Pseudo, format!("{src} is a RAM device"));
        }
        if name.starts_with("mapper/")
            || name.starts_with("md")
            || name.starts_with("dm-")
            || name.matches('/').count() == 1
        {
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
            let (is_own, assumed) = match own.name.as_deref() {
                Some(d) => (d == dev.disk, false),
                None => (is_first_disk(dev.disk), true),
            };
            return match (is_own, dev.part) {
                (true, Some(n)) => {
                    let mut r = partition_number(view, n, src, ResolvedBy::DeviceName);
                    if assumed && r.kind == SourceKind::Partition {
                        r.note = Some(format!("assumed {} is the guest's own disk", dev.disk));
                    }
                    r
                }
                (true, None) => Resolution::other(
                    SourceKind::Unresolved,
                    format!("{src} is the whole disk, not a partition"),
                ),
                (false, _) => Resolution::other(
                    SourceKind::OtherDisk,
                    format!(
                        "{src} is on another disk than the guest's ({})",
                        own.name.as_deref().unwrap_or("unknown")
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

/// A `/dev/disk/by-id/` or `/dev/disk/by-path/` source, `name` being what follows
/// the directory: a partition of the guest's own disk when its disk part is the
/// one the root entry uses (`anchor`), or, when the root entry does not name the
/// disk this way, assumed to be the guest's own and said so in the note.
fn by_disk_name(
    src: &str,
    name: &str,
    anchor: Option<&str>,
    view: &DiskView,
    by: ResolvedBy,
) -> Resolution {
    let (disk, part) = split_part_suffix(name);
    if anchor.is_some_and(|a| a != disk) {
        return Resolution::other(
            SourceKind::OtherDisk,
            format!(
                "{src} is on another disk than the guest's ({})",
                anchor.unwrap_or_default()
            ),
        );
    }
    match part {
        Some(n) => {
            let mut r = partition_number(view, n, src, by);
            if anchor.is_none() && r.kind == SourceKind::Partition {
                r.note = Some(format!("assumed {disk} is the guest's own disk"));
            }
            r
        }
        None => Resolution::other(
            SourceKind::Unresolved,
            format!("{src} names a whole disk, not a partition"),
        ),
    }
}

/// Partition `n` of the guest's own disk, named by `src`: unresolved when the
/// image has no such partition or it is an extended container.
fn partition_number(view: &DiskView, n: u32, src: &str, by: ResolvedBy) -> Resolution {
    match view.parts.iter().find(|p| p.number == n) {
        Some(p) if p.extended => Resolution::other(
            SourceKind::Unresolved,
            format!("{src} names partition {n}, an extended partition (a container of logical partitions)"),
        ),
        Some(_) => Resolution::part(n, by),
        None => Resolution::other(
            SourceKind::Unresolved,
            format!("{src} names partition {n}; this image has no partition {n}"),
        ),
    }
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
                PartView {
                    extended: true,
                    ..p(4, "", None)
                },
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
        let own = own_disk(&entries, view.guest_partition);
        entries
            .iter()
            .map(|e| (e.source.clone(), resolve(e, view, &own)))
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

    /// A GPT disk: 1 EFI (vfat), 2 root (ext4, guest), 3 swap, 4 data with a
    /// label holding a space.
    fn gpt_view() -> DiskView {
        let p = |n: u32, t: &str, uuid: &str, label: Option<&str>| PartView {
            number: n,
            fstype: t.into(),
            uuid: Some(uuid.into()),
            label: label.map(Into::into),
            partuuid: Some(format!("aaaaaaaa-0000-0000-0000-00000000000{n}")),
            partlabel: Some(format!("part {n}")),
            extended: false,
        };
        DiskView {
            parts: vec![
                p(1, "vfat", "ABCD-1234", Some("EFI")),
                p(
                    2,
                    "ext4",
                    "22222222-0000-0000-0000-000000000002",
                    Some("root"),
                ),
                p(3, "swap", "33333333-0000-0000-0000-000000000003", None),
                p(
                    4,
                    "ext4",
                    "44444444-0000-0000-0000-000000000004",
                    Some("My Disk"),
                ),
            ],
            guest_partition: 2,
        }
    }

    fn kinds(r: &[(String, Resolution)]) -> Vec<(SourceKind, Option<u32>)> {
        r.iter().map(|(_, r)| (r.kind, r.partition)).collect()
    }

    #[test]
    fn debian_and_ubuntu_installer_fstabs() {
        let text = "# / was on /dev/sda2 during installation\n\
UUID=22222222-0000-0000-0000-000000000002 /               ext4    errors=remount-ro 0       1\n\
# /boot/efi was on /dev/sda1 during installation\n\
UUID=ABCD-1234  /boot/efi       vfat    umask=0077      0       1\n\
# swap was on /dev/sda3 during installation\n\
UUID=33333333-0000-0000-0000-000000000003 none            swap    sw              0       0\n\
/swap.img\tnone\tswap\tsw\t0\t0\n\
/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0\n";
        let r = resolve_all(text, &gpt_view());
        use SourceKind::*;
        assert_eq!(
            kinds(&r),
            [
                (Partition, Some(2)),
                (Partition, Some(1)),
                (Partition, Some(3)),
                (SwapFile, None),
                (OtherDisk, None)
            ]
        );
        assert!(r
            .iter()
            .take(3)
            .all(|(_, r)| r.resolved_by == Some(ResolvedBy::Uuid)));
    }

    #[test]
    fn rhel_style_fstab() {
        let text = "/dev/mapper/rhel-root   /                       xfs     defaults        0 0\n\
LABEL=root /boot xfs defaults 0 0\n\
LABEL=My\\040Disk /data ext4 defaults,x-systemd.automount,x-systemd.device-timeout=10s,nofail 0 2\n\
/dev/mapper/rhel-swap   none                    swap    defaults        0 0\n\
/dev/rhel/home /home xfs defaults 0 0\n\
/dev/dm-3 /opt xfs defaults 0 0\n";
        let r = resolve_all(text, &gpt_view());
        use SourceKind::*;
        assert_eq!(
            kinds(&r),
            [
                (Unresolved, None),
                (Partition, Some(2)),
                (Partition, Some(4)),
                (Unresolved, None),
                (Unresolved, None),
                (Unresolved, None)
            ]
        );
        assert_eq!(r[2].1.resolved_by, Some(ResolvedBy::Label));
        assert!(r[5]
            .1
            .note
            .as_deref()
            .unwrap_or("")
            .contains("device-mapper"));
    }

    #[test]
    fn quoted_tags_and_udev_escapes() {
        let text = "UUID=\"22222222-0000-0000-0000-000000000002\" / ext4 defaults 0 1\n\
LABEL='root' /a ext4 defaults 0 2\n\
/dev/disk/by-label/My\\x20Disk /b ext4 defaults 0 2\n\
/dev/disk/by-partlabel/part\\x204 /c ext4 defaults 0 2\n\
PARTLABEL=\"part\\0403\" none swap sw 0 0\n\
LABEL=\"unbalanced /d ext4 defaults 0 2\n";
        let r = resolve_all(text, &gpt_view());
        use SourceKind::*;
        assert_eq!(
            kinds(&r),
            [
                (Partition, Some(2)),
                (Partition, Some(2)),
                (Partition, Some(4)),
                (Partition, Some(4)),
                (Partition, Some(3)),
                (Unresolved, None)
            ]
        );
        assert_eq!(udev_unescape("a\\x2fb\\xZZ\\x2"), "a/b\\xZZ\\x2");
    }

    #[test]
    fn nvme_and_mmcblk_names() {
        let text = "/dev/nvme0n1p2 / ext4 defaults 0 1\n\
/dev/nvme0n1p1 /boot/efi vfat umask=0077 0 1\n\
/dev/nvme1n1p1 /data ext4 defaults,nofail 0 2\n\
/dev/nvme0n1 /raw ext4 defaults 0 0\n";
        let r = resolve_all(text, &gpt_view());
        use SourceKind::*;
        assert_eq!(
            kinds(&r),
            [
                (Partition, Some(2)),
                (Partition, Some(1)),
                (OtherDisk, None),
                (Unresolved, None)
            ]
        );
        let text = "/dev/mmcblk0p2 / ext4 defaults,noatime 0 1\n\
/dev/mmcblk0p1 /boot vfat defaults 0 2\n/dev/mmcblk1p1 /sd ext4 defaults 0 2\n";
        let r = resolve_all(text, &gpt_view());
        assert_eq!(
            kinds(&r),
            [
                (Partition, Some(2)),
                (Partition, Some(1)),
                (OtherDisk, None)
            ]
        );
        assert_eq!(r[1].1.resolved_by, Some(ResolvedBy::DeviceName));
        // A partition number no disk has is not a whole disk.
        assert_eq!(split_dev_name("sda99999999999"), None);
        assert_eq!(split_dev_name("nvme0n1p99999999999"), None);
    }

    #[test]
    fn by_id_and_by_path_names() {
        // The root entry names the guest's disk by id: the same id is that disk,
        // another id is another disk.
        let text = "/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001-part2 / ext4 defaults 0 1\n\
/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001-part1 /boot/efi vfat defaults 0 1\n\
/dev/disk/by-id/ata-QEMU_HARDDISK_QM00002-part1 /data ext4 defaults 0 2\n\
/dev/disk/by-id/dm-uuid-LVM-abc /lv ext4 defaults 0 2\n\
/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001-part9 /nine ext4 defaults 0 2\n\
/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001 /whole ext4 defaults 0 2\n";
        let r = resolve_all(text, &gpt_view());
        use SourceKind::*;
        assert_eq!(
            kinds(&r),
            [
                (Partition, Some(2)),
                (Partition, Some(1)),
                (OtherDisk, None),
                (Unresolved, None),
                (Unresolved, None),
                (Unresolved, None)
            ]
        );
        assert_eq!(r[1].1.resolved_by, Some(ResolvedBy::ById));
        assert_eq!(r[1].1.note, None);
        // Without such a root entry the disk is assumed to be the guest's own, and
        // the note says so; by-path works alike.
        let text = "UUID=22222222-0000-0000-0000-000000000002 / ext4 defaults 0 1\n\
/dev/disk/by-id/nvme-Samsung_SSD_970_S123-part1 /boot/efi vfat defaults 0 1\n\
/dev/disk/by-path/pci-0000:00:1f.2-ata-1-part3 none swap sw 0 0\n";
        let r = resolve_all(text, &gpt_view());
        assert_eq!(
            kinds(&r),
            [
                (Partition, Some(2)),
                (Partition, Some(1)),
                (Partition, Some(3))
            ]
        );
        assert!(r[1].1.note.as_deref().unwrap_or("").contains("assumed"));
        assert_eq!(r[2].1.resolved_by, Some(ResolvedBy::ByPath));
        let text = "/dev/disk/by-path/pci-0000:00:1f.2-ata-1-part2 / ext4 defaults 0 1\n\
/dev/disk/by-path/pci-0000:00:1f.2-ata-2-part1 /data ext4 defaults 0 2\n";
        let r = resolve_all(text, &gpt_view());
        assert_eq!(kinds(&r), [(Partition, Some(2)), (OtherDisk, None)]);
    }

    #[test]
    fn swap_none_sources_and_ram_devices() {
        let text = "UUID=22222222-0000-0000-0000-000000000002 / ext4 defaults 0 1\n\
UUID=33333333-0000-0000-0000-000000000003 none swap sw,nofail,x-systemd.device-timeout=5 0 0\n\
none /dev/pts devpts gid=5,mode=620 0 0\n\
none /tmp tmpfs defaults 0 0\n\
/dev/zram0 none swap defaults,pri=100 0 0\n\
/dev/loop0 /loop ext4 defaults 0 0\n";
        let r = resolve_all(text, &gpt_view());
        use SourceKind::*;
        assert_eq!(
            kinds(&r),
            [
                (Partition, Some(2)),
                (Partition, Some(3)),
                (Pseudo, None),
                (Pseudo, None),
                (Pseudo, None),
                (Unresolved, None)
            ]
        );
    }

    #[test]
    fn a_uuid_on_two_partitions_prefers_the_guest_and_says_so() {
        // dom0's root (3) cloned from the guest (5): the same UUID on both.
        let mut view = seed_view();
        view.parts[2].uuid = view.parts[4].uuid.clone();
        let text = "UUID=55555555-0000-0000-0000-000000000005 / ext3 defaults 0 1\n";
        let r = resolve_all(text, &view);
        assert_eq!(r[0].1.partition, Some(5));
        let note = r[0].1.note.as_deref().unwrap_or("");
        assert!(note.contains("partitions 3, 5"), "{note}");
        // Seen from partition 3, the same entry names partition 3.
        view.guest_partition = 3;
        assert_eq!(resolve_all(text, &view)[0].1.partition, Some(3));
        // Neither is the guest: the first, and the note.
        view.guest_partition = 1;
        let r = resolve_all(text, &view);
        assert_eq!(r[0].1.partition, Some(3));
        assert!(r[0].1.note.is_some());
    }

    #[test]
    fn the_extended_container_is_no_mountable_partition() {
        let text = "/dev/hda5 / ext3 defaults 0 1\n/dev/hda4 /x ext3 defaults 0 2\n\
/dev/hda9 /y ext3 defaults 0 2\n";
        let r = resolve_all(text, &seed_view());
        use SourceKind::*;
        assert_eq!(
            kinds(&r),
            [(Partition, Some(5)), (Unresolved, None), (Unresolved, None)]
        );
        assert!(r[1].1.note.as_deref().unwrap_or("").contains("extended"));
    }

    #[test]
    fn a_uuid_in_another_case_resolves_and_says_mount_would_not_find_it() {
        let text = "UUID=55555555-0000-0000-0000-000000000005 / ext3 defaults 0 1\n\
UUID=0123456789abcdef /win ntfs defaults 0 0\n";
        let r = resolve_all(text, &seed_view());
        assert_eq!(r[0].1.note, None);
        assert_eq!(r[1].1.partition, Some(1));
        let note = r[1].1.note.as_deref().unwrap_or("");
        assert!(
            note.contains("0123456789ABCDEF") && note.contains("case-sensitively"),
            "{note}"
        );
    }
}

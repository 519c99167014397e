//! The domU config as text: a [`DomuConfig`] in, the file out, in the `xl` form
//! (xl.cfg(5), disks as in xl-disk-configuration(5)) or the legacy `xm` form of
//! the seed guide for old toolstacks. Pure: no I/O, tested without images; the
//! integration tests run every config they emit through Xen's own parser
//! (libxlutil, `tests/xlcheck/xlcheck.c`).
//!
//! Strings are written as xl's lexer reads them: in double quotes, with `\` and
//! `"` escaped by a backslash; control characters cannot be written and are
//! refused. An xl disk spec ends with `target=PATH`, which xl reads to the end of
//! the spec, so a path may hold commas or `=`; the xm form's positional
//! `phy:PATH,VDEV,w` cannot, and refuses such a path. Every value is validated
//! ([`validate`]) before any text is made: memory or vcpus 0, a name with spaces
//! or quotes, a MAC that is not one, two disks on one vdev.

use serde::Serialize;

use crate::error::{Error, Result};

/// Which syntax to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Today's `xl` (xl.cfg(5)).
    #[default]
    Xl,
    /// The legacy `xm` form (the seed guide's), for old toolstacks.
    Xm,
}

/// The kind of guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestType {
    /// Paravirtualised.
    #[default]
    Pv,
    /// PVH (needs xl; not in the xm form).
    Pvh,
}

impl GuestType {
    fn as_str(self) -> &'static str {
        match self {
            GuestType::Pv => "pv",
            GuestType::Pvh => "pvh",
        }
    }
}

/// How the domU boots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Boot {
    /// A kernel (and initramfs) that dom0 loads: `kernel=`, `ramdisk=`.
    Kernel {
        /// Absolute host path of the kernel.
        kernel: String,
        /// Absolute host path of the initramfs.
        ramdisk: Option<String>,
    },
    /// A bootloader run by the toolstack on the first disk (`pygrub`).
    Bootloader {
        /// Its name or path.
        bootloader: String,
    },
}

/// What backs a virtual disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backing {
    /// A block device of dom0 (`phy:` in xm).
    Phy,
    /// A raw image file (`file:` in xm).
    File,
}

/// One virtual disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// Absolute host path: a device node or an image file.
    pub target: String,
    /// Block device or file.
    pub backing: Backing,
    /// The name the domU sees (`xvda`, `xvda5`, `hda5`).
    pub vdev: String,
    /// Read-write (else read-only).
    pub writable: bool,
}

/// One virtual network interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Vif {
    /// Bridge in dom0 (xl's default `xenbr0` when none).
    pub bridge: Option<String>,
    /// MAC address (`00:16:3e:12:34:56`); random when none.
    pub mac: Option<String>,
}

/// Everything the config says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DomuConfig {
    /// The image the guest lives on, named in the header comment.
    pub image: String,
    /// What generated the file, named in the header comment.
    pub generator: String,
    /// Domain name.
    pub name: String,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// PV or PVH.
    pub guest_type: GuestType,
    /// Kernel or bootloader.
    pub boot: Boot,
    /// `root=` for the kernel (`/dev/xvda5 ro`); not with a bootloader.
    pub root: Option<String>,
    /// `extra=`: more kernel command line (`console=hvc0`).
    pub extra: Option<String>,
    /// Disks, the first one first (a bootloader reads the first).
    pub disks: Vec<Disk>,
    /// Network interfaces; empty for none.
    pub vifs: Vec<Vif>,
}

fn bad(what: &str, value: &str, why: &str) -> Error {
    Error::invalid(format!("{what} {value:?}: {why}"))
}

fn check_text(what: &str, s: &str) -> Result<()> {
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(bad(
            what,
            s,
            &format!(
                "holds the control character {:?}, which a config file cannot carry",
                c
            ),
        ));
    }
    Ok(())
}

fn check_path(what: &str, s: &str) -> Result<()> {
    check_text(what, s)?;
    if !s.starts_with('/') {
        return Err(bad(what, s, "must be an absolute path"));
    }
    Ok(())
}

/// A domain name: letters, digits, `-`, `_`, `.`, not only digits (xl would take
/// it for a domain id), at most 64 bytes.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("the domain name is empty: give --name NAME"));
    }
    if name.len() > 64 {
        return Err(bad("domain name", name, "is longer than 64 bytes"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(bad(
            "domain name",
            name,
            &format!("{c:?} is not allowed (letters, digits, '-', '_' and '.' only)"),
        ));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad(
            "domain name",
            name,
            "a name of digits only would be taken for a domain id by xl",
        ));
    }
    Ok(())
}

/// A unicast MAC address written as six colon-separated hex pairs.
pub fn check_mac(mac: &str) -> Result<()> {
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok {
        return Err(bad(
            "MAC address",
            mac,
            "is not six hex pairs separated by ':' (like 00:16:3e:12:34:56)",
        ));
    }
    let first = u8::from_str_radix(parts[0], 16).unwrap_or(0);
    if first & 1 != 0 {
        return Err(bad(
            "MAC address",
            mac,
            "is a multicast address (lowest bit of the first byte set); a NIC needs a unicast one (Xen's prefix is 00:16:3e)",
        ));
    }
    Ok(())
}

/// A virtual device name as xl reads it: `xvd`, `hd` or `sd`, disk letters, an
/// optional partition number.
pub fn check_vdev(v: &str) -> Result<()> {
    let rest = ["xvd", "hd", "sd"]
        .iter()
        .find_map(|p| v.strip_prefix(p))
        .ok_or_else(|| bad("vdev", v, "must start with xvd, hd or sd"))?;
    let letters = rest.chars().take_while(|c| c.is_ascii_lowercase()).count();
    let digits = &rest[letters..];
    if letters == 0
        || letters > 3
        || !digits.chars().all(|c| c.is_ascii_digit())
        || digits.starts_with('0')
    {
        return Err(bad("vdev", v, "is not a disk name like xvda or xvda5"));
    }
    Ok(())
}

fn check_bridge(b: &str) -> Result<()> {
    if b.is_empty()
        || b.len() > 15
        || !b
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad(
            "bridge",
            b,
            "is not an interface name (letters, digits, '-', '_', '.', at most 15)",
        ));
    }
    Ok(())
}

/// Refuse every value the file could not carry or Xen would refuse.
pub fn validate(c: &DomuConfig, format: Format) -> Result<()> {
    check_name(&c.name)?;
    check_text("image", &c.image)?;
    check_text("generator", &c.generator)?;
    if c.memory_mib == 0 {
        return Err(Error::invalid(
            "memory 0: a domU needs memory (--memory MiB)",
        ));
    }
    if c.vcpus == 0 {
        return Err(Error::invalid(
            "vcpus 0: a domU needs at least one (--vcpus N)",
        ));
    }
    if format == Format::Xm && c.guest_type == GuestType::Pvh {
        return Err(Error::invalid(
            "--type pvh cannot be written in the xm form (xm knows no PVH guests): use --format xl",
        ));
    }
    match &c.boot {
        Boot::Kernel { kernel, ramdisk } => {
            check_path("kernel", kernel)?;
            if let Some(r) = ramdisk {
                check_path("initrd", r)?;
            }
        }
        Boot::Bootloader { bootloader } => {
            check_text("bootloader", bootloader)?;
            if c.disks.is_empty() {
                return Err(Error::invalid(
                    "a bootloader reads the first disk, and there is none",
                ));
            }
        }
    }
    if let Some(r) = &c.root {
        check_text("root", r)?;
    }
    if let Some(e) = &c.extra {
        check_text("extra", e)?;
    }
    if c.disks.is_empty() {
        return Err(Error::invalid("a domU needs at least one disk"));
    }
    for (i, d) in c.disks.iter().enumerate() {
        check_path("disk", &d.target)?;
        check_vdev(&d.vdev)?;
        if format == Format::Xm {
            if let Some(ch) = d
                .target
                .chars()
                .find(|c| matches!(c, ',' | ':' | '\'' | '\\'))
            {
                return Err(bad(
                    "disk",
                    &d.target,
                    &format!(
                        "{ch:?} cannot be written in the xm form's disk line: use --format xl"
                    ),
                ));
            }
        }
        if let Some(other) = c.disks[..i].iter().find(|o| o.vdev == d.vdev) {
            return Err(Error::invalid(format!(
                "vdev clash: {} and {} would both be {} in the domU",
                other.target, d.target, d.vdev
            )));
        }
    }
    for v in &c.vifs {
        if let Some(b) = &v.bridge {
            check_bridge(b)?;
        }
        if let Some(m) = &v.mac {
            check_mac(m)?;
        }
    }
    Ok(())
}

/// `s` as a double-quoted string xl's lexer reads back as `s`.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            q.push('\\');
        }
        q.push(ch);
    }
    q.push('"');
    q
}

/// `s` single-quoted, as the xm form writes list items.
fn quote_single(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for ch in s.chars() {
        if ch == '\'' || ch == '\\' {
            q.push('\\');
        }
        q.push(ch);
    }
    q.push('\'');
    q
}

/// The disk spec of `d` in `format`.
pub fn disk_spec(d: &Disk, format: Format) -> String {
    let access = if d.writable { "rw" } else { "ro" };
    match format {
        Format::Xl => format!(
            "format=raw, vdev={}, access={access}, target={}",
            d.vdev, d.target
        ),
        Format::Xm => {
            let prefix = match d.backing {
                Backing::Phy => "phy",
                Backing::File => "file",
            };
            let mode = if d.writable { "w" } else { "r" };
            format!("{prefix}:{},{},{mode}", d.target, d.vdev)
        }
    }
}

fn vif_spec(v: &Vif) -> String {
    let mut parts = Vec::new();
    if let Some(b) = &v.bridge {
        parts.push(format!("bridge={b}"));
    }
    if let Some(m) = &v.mac {
        parts.push(format!("mac={}", m.to_ascii_lowercase()));
    }
    parts.join(",")
}

/// The config file's text, after [`validate`].
pub fn render(c: &DomuConfig, format: Format) -> Result<String> {
    validate(c, format)?;
    let list = |items: Vec<String>| -> String {
        let q: Vec<String> = items
            .iter()
            .map(|s| match format {
                Format::Xl => quote(s),
                Format::Xm => quote_single(s),
            })
            .collect();
        if q.is_empty() {
            "[ ]".into()
        } else {
            format!("[ {} ]", q.join(", "))
        }
    };
    let mut lines: Vec<(&str, String)> = Vec::new();
    lines.push(("name", quote(&c.name)));
    if format == Format::Xl {
        lines.push(("type", quote(c.guest_type.as_str())));
    }
    lines.push(("memory", c.memory_mib.to_string()));
    lines.push(("vcpus", c.vcpus.to_string()));
    match &c.boot {
        Boot::Kernel { kernel, ramdisk } => {
            lines.push(("kernel", quote(kernel)));
            if let Some(r) = ramdisk {
                lines.push(("ramdisk", quote(r)));
            }
        }
        Boot::Bootloader { bootloader } => lines.push(("bootloader", quote(bootloader))),
    }
    if let Some(r) = &c.root {
        lines.push(("root", quote(r)));
    }
    if let Some(e) = &c.extra {
        lines.push(("extra", quote(e)));
    }
    lines.push((
        "disk",
        list(c.disks.iter().map(|d| disk_spec(d, format)).collect()),
    ));
    lines.push(("vif", list(c.vifs.iter().map(vif_spec).collect())));
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    let syntax = match format {
        Format::Xl => "xl.cfg(5); start it with: xl create -c FILE",
        Format::Xm => "the legacy xm form; start it with: xm create -c FILE",
    };
    out.push_str(&format!(
        "# Xen domU configuration for the system on {}\n# generated by {}\n# syntax: {syntax}\n",
        c.image, c.generator
    ));
    for (k, v) in lines {
        out.push_str(&format!("{k:<width$} = {v}\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> DomuConfig {
        DomuConfig {
            image: "/tmp/seed.img".into(),
            generator: "domuify test".into(),
            name: "systemdomu".into(),
            memory_mib: 512,
            vcpus: 1,
            guest_type: GuestType::Pv,
            boot: Boot::Kernel {
                kernel: "/boot/vmlinuz-2.6.16-xen".into(),
                ramdisk: Some("/boot/initrd-2.6.16.33-xen".into()),
            },
            root: Some("/dev/xvda5 ro".into()),
            extra: Some("console=hvc0".into()),
            disks: vec![
                Disk {
                    target: "/srv/p5.img".into(),
                    backing: Backing::File,
                    vdev: "xvda5".into(),
                    writable: true,
                },
                Disk {
                    target: "/srv/p2.img".into(),
                    backing: Backing::File,
                    vdev: "xvda2".into(),
                    writable: true,
                },
            ],
            vifs: vec![Vif::default()],
        }
    }

    #[test]
    fn xl_form_of_the_seed() {
        let t = render(&seed(), Format::Xl).unwrap();
        assert!(t.starts_with("# Xen domU configuration for the system on /tmp/seed.img\n"));
        assert!(t.contains("\nroot    = \"/dev/xvda5 ro\"\n"), "{t}");
        assert!(t.contains(
            "disk    = [ \"format=raw, vdev=xvda5, access=rw, target=/srv/p5.img\", \"format=raw, vdev=xvda2, access=rw, target=/srv/p2.img\" ]"
        ), "{t}");
        assert!(t.contains("vif     = [ \"\" ]"), "{t}");
        assert!(t.contains("type    = \"pv\""), "{t}");
    }

    #[test]
    fn xm_form_of_the_seed() {
        let t = render(&seed(), Format::Xm).unwrap();
        assert!(
            t.contains("disk    = [ 'file:/srv/p5.img,xvda5,w', 'file:/srv/p2.img,xvda2,w' ]"),
            "{t}"
        );
        assert!(t.contains("vif     = [ '' ]"), "{t}");
        assert!(!t.contains("type"), "{t}");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a"b\c'd"#), r#""a\"b\\c'd""#);
        assert_eq!(quote_single(r#"a"b\c'd"#), r#"'a"b\\c\'d'"#);
    }

    #[test]
    fn refusals() {
        type Mutate = Box<dyn Fn(&mut DomuConfig)>;
        let cases: Vec<(Mutate, &str)> = vec![
            (Box::new(|c| c.memory_mib = 0), "memory 0"),
            (Box::new(|c| c.vcpus = 0), "vcpus 0"),
            (Box::new(|c| c.name = "my domu".into()), "not allowed"),
            (Box::new(|c| c.name = "my\"domu".into()), "not allowed"),
            (Box::new(|c| c.name = "it's".into()), "not allowed"),
            (Box::new(|c| c.name = "".into()), "empty"),
            (Box::new(|c| c.name = "1234".into()), "domain id"),
            (
                Box::new(|c| c.vifs[0].mac = Some("00:16:3e:12:34".into())),
                "six hex pairs",
            ),
            (
                Box::new(|c| c.vifs[0].mac = Some("00:16:3e:12:34:zz".into())),
                "six hex pairs",
            ),
            (
                Box::new(|c| c.vifs[0].mac = Some("01:16:3e:12:34:56".into())),
                "multicast",
            ),
            (
                Box::new(|c| c.vifs[0].bridge = Some("xen br0".into())),
                "interface name",
            ),
            (Box::new(|c| c.disks[1].vdev = "xvda5".into()), "vdev clash"),
            (
                Box::new(|c| c.disks[1].vdev = "vda2".into()),
                "must start with",
            ),
            (
                Box::new(|c| c.disks[1].target = "rel/p2.img".into()),
                "absolute",
            ),
            (
                Box::new(|c| c.extra = Some("a\nb".into())),
                "control character",
            ),
            (Box::new(|c| c.disks.clear()), "at least one disk"),
            (
                Box::new(|c| {
                    c.boot = Boot::Kernel {
                        kernel: "vmlinuz".into(),
                        ramdisk: None,
                    }
                }),
                "absolute",
            ),
        ];
        for (f, want) in cases {
            let mut c = seed();
            f(&mut c);
            let e = render(&c, Format::Xl).unwrap_err().to_string();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
        let mut c = seed();
        c.guest_type = GuestType::Pvh;
        assert!(render(&c, Format::Xm)
            .unwrap_err()
            .to_string()
            .contains("pvh"));
        let mut c = seed();
        c.disks[0].target = "/srv/a,b.img".into();
        assert!(render(&c, Format::Xm).is_err());
        assert!(render(&c, Format::Xl).is_ok());
    }

    #[test]
    fn vdevs() {
        for ok in ["xvda", "xvda5", "hda5", "sdb", "xvdaa12"] {
            check_vdev(ok).unwrap();
        }
        for bad in ["xvd", "xvda05", "vda", "xvdA", "xvda5x", "xvdabcd1"] {
            assert!(check_vdev(bad).is_err(), "{bad}");
        }
    }
}

//! A kernel's `.config` (`/boot/config-VER`, or the one embedded as `IKCFG`):
//! `CONFIG_X=y`, `CONFIG_X=m`, `CONFIG_X="..."`, `# CONFIG_X is not set`, and
//! the Xen options a domU needs read from it.

use std::collections::BTreeMap;

/// How an option is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tristate {
    /// `=y`: in the kernel image.
    BuiltIn,
    /// `=m`: a loadable module.
    Module,
    /// Not set, or not in the config at all.
    Absent,
}

/// A parsed config: every `CONFIG_` symbol set to something, with its value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    values: BTreeMap<String, String>,
    /// Symbols written as `# CONFIG_X is not set` (known to the kernel, off).
    unset: std::collections::BTreeSet<String>,
}

impl Config {
    /// Parse config text; lines that are neither assignments nor "is not set"
    /// comments are ignored, as Kconfig does.
    pub fn parse(text: &str) -> Config {
        let mut c = Config::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# ") {
                if let Some(sym) = rest.strip_suffix(" is not set") {
                    if sym.starts_with("CONFIG_") {
                        c.unset.insert(sym.to_string());
                    }
                }
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                if k.starts_with("CONFIG_") && !k.contains(char::is_whitespace) {
                    c.values.insert(k.to_string(), v.to_string());
                }
            }
        }
        c
    }

    /// How `sym` (with its `CONFIG_` prefix) is built.
    pub fn tristate(&self, sym: &str) -> Tristate {
        match self.values.get(sym).map(String::as_str) {
            Some("y") => Tristate::BuiltIn,
            Some("m") => Tristate::Module,
            _ => Tristate::Absent,
        }
    }

    /// Whether the config mentions `sym` at all (set, or "is not set").
    pub fn knows(&self, sym: &str) -> bool {
        self.values.contains_key(sym) || self.unset.contains(sym)
    }

    /// Number of symbols set: zero means this was no config.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The Xen guest support a config declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenSupport {
    /// Can run as a PV guest: `CONFIG_XEN_PV=y`, or `CONFIG_XEN=y` on kernels
    /// older than 4.14 that have no `CONFIG_XEN_PV`.
    pub pv: bool,
    /// Can run as a PVH guest: `CONFIG_XEN_PVH=y`.
    pub pvh: bool,
    /// `CONFIG_XEN_BLKDEV_FRONTEND`.
    pub blkfront: Tristate,
    /// `CONFIG_XEN_NETDEV_FRONTEND`.
    pub netfront: Tristate,
    /// `CONFIG_HVC_XEN`: the Xen console.
    pub console: Tristate,
}

impl XenSupport {
    /// Read the Xen options of `c`.
    pub fn of(c: &Config) -> XenSupport {
        let pv = if c.knows("CONFIG_XEN_PV") {
            c.tristate("CONFIG_XEN_PV") == Tristate::BuiltIn
        } else {
            c.tristate("CONFIG_XEN") == Tristate::BuiltIn
        };
        XenSupport {
            pv,
            pvh: c.tristate("CONFIG_XEN_PVH") == Tristate::BuiltIn,
            blkfront: c.tristate("CONFIG_XEN_BLKDEV_FRONTEND"),
            netfront: c.tristate("CONFIG_XEN_NETDEV_FRONTEND"),
            console: c.tristate("CONFIG_HVC_XEN"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_unset() {
        let c = Config::parse(
            "#\n# Automatically generated\nCONFIG_XEN=y\nCONFIG_XEN_PV=y\n# CONFIG_XEN_PVH is not set\n\
             CONFIG_XEN_BLKDEV_FRONTEND=m\nCONFIG_LOCALVERSION=\"-amd64\"\nCONFIG_HVC_XEN=y\n",
        );
        assert_eq!(c.tristate("CONFIG_XEN_PV"), Tristate::BuiltIn);
        assert_eq!(c.tristate("CONFIG_XEN_BLKDEV_FRONTEND"), Tristate::Module);
        assert_eq!(c.tristate("CONFIG_XEN_PVH"), Tristate::Absent);
        assert_eq!(c.tristate("CONFIG_LOCALVERSION"), Tristate::Absent);
        assert!(c.knows("CONFIG_XEN_PVH"));
        assert!(!c.knows("CONFIG_NOPE"));
        let x = XenSupport::of(&c);
        assert!(x.pv && !x.pvh);
        assert_eq!(x.netfront, Tristate::Absent);
        assert_eq!(x.console, Tristate::BuiltIn);
    }

    #[test]
    fn old_kernels_say_config_xen() {
        // 2.6.32 and 3.x: no CONFIG_XEN_PV symbol, CONFIG_XEN=y means PV.
        let old = Config::parse("CONFIG_XEN=y\nCONFIG_XEN_BLKDEV_FRONTEND=y\n");
        assert!(XenSupport::of(&old).pv);
        // A new kernel with CONFIG_XEN=y but PV turned off is not PV.
        let new = Config::parse("CONFIG_XEN=y\n# CONFIG_XEN_PV is not set\nCONFIG_XEN_PVH=y\n");
        let x = XenSupport::of(&new);
        assert!(!x.pv && x.pvh);
        assert!(Config::parse("not a config\n\0\u{1}").is_empty());
    }
}

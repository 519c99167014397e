//! The boot plan: which kernel the domU boots, whether it can, and the least
//! memory it needs. Shared by `config` and `convert`, so that both judge the
//! kernel they write into a config the way `domuify kernels` does
//! ([`crate::kernel::judge`]) and refuse the same things.
//!
//! The kernel is one of: an external kernel of dom0 (`--kernel`, the seed's
//! way), the guest's own kernel of a version (`--guest-kernel VER`), the
//! guest's kernels read by pygrub at boot (`--bootloader pygrub`), or, when
//! nothing is asked, the guest's newest kernel that can boot as the asked
//! type (`convert`'s default). Not ready is refused unless `force`; then the
//! reasons stay as warnings.

use std::cmp::Ordering;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::finding::Finding;
use crate::kernel::guest::{judge_host, GuestFiles, HostKernel};
use crate::kernel::{Depth, KernelReport};
use crate::xlcfg::GuestType;

/// What the user asked for.
#[derive(Debug)]
pub enum BootAsk {
    /// An external kernel (`--kernel`, `--kernel-config`, `--initrd`, `--modules`).
    Host(HostKernel),
    /// The guest's kernel of this version (`--guest-kernel VER`).
    Guest(String),
    /// `--bootloader pygrub`: the guest's kernels, chosen by its grub at boot.
    Pygrub,
    /// Nothing asked: the guest's newest kernel ready for the type.
    Newest,
}

/// Where the chosen kernel comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum BootKernel {
    /// A kernel of dom0.
    Host {
        /// The kernel image.
        kernel: PathBuf,
        /// Its initramfs, when there is one.
        initrd: Option<PathBuf>,
    },
    /// The guest's own kernel, to be extracted.
    Guest {
        /// Its version.
        version: String,
    },
    /// pygrub reads the guest's `/boot` at boot.
    Pygrub,
}

/// The judged boot choice.
#[derive(Clone, Debug, Serialize)]
pub struct BootPlan {
    /// What boots.
    pub kernel: BootKernel,
    /// Why this one.
    pub reason: String,
    /// The judgement of every kernel looked at (the chosen one first).
    pub judged: Vec<KernelReport>,
    /// The least memory (MiB) the chosen kernel and its initramfs need.
    pub min_memory_mib: Option<u64>,
    /// Readiness warnings (forced refusals among them).
    pub findings: Vec<Finding>,
}

fn type_verdict(ty: GuestType) -> &'static str {
    match ty {
        GuestType::Pv => "pv-ready",
        GuestType::Pvh => "pvh-ready",
    }
}

fn type_name(ty: GuestType) -> &'static str {
    match ty {
        GuestType::Pv => "PV",
        GuestType::Pvh => "PVH",
    }
}

/// `Ok(true)` ready for `ty`, `Ok(false)` nothing says, `Err(why)` not ready.
fn ready_for(r: &KernelReport, ty: GuestType) -> std::result::Result<bool, String> {
    if r.verdict.contains(&type_verdict(ty)) {
        return Ok(true);
    }
    if r.verdict.contains(&"unknown") {
        return Ok(false);
    }
    let why = if r.is_ready() {
        format!(
            "it is {} but not {} (built without {})",
            r.verdict.join(", "),
            type_verdict(ty),
            match ty {
                GuestType::Pv => "CONFIG_XEN_PV",
                GuestType::Pvh => "CONFIG_XEN_PVH",
            }
        )
    } else {
        r.reasons
            .first()
            .cloned()
            .unwrap_or_else(|| "judged not ready".into())
    };
    Err(why)
}

/// Compare kernel versions as humans do (`6.1.0-10` after `6.1.0-9`).
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let n = x.iter().take_while(|b| b.is_ascii_digit()).count();
                let m = y.iter().take_while(|b| b.is_ascii_digit()).count();
                let (p, q) = (&x[..n], &y[..m]);
                let strip = |s: &[u8]| -> usize { s.iter().take_while(|&&b| b == b'0').count() };
                let (p, q) = (&p[strip(p)..], &q[strip(q)..]);
                let o = p.len().cmp(&q.len()).then_with(|| p.cmp(q));
                if o != Ordering::Equal {
                    return o;
                }
                x = &x[n..];
                y = &y[m..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

/// Judge what `ask` boots, for a domU of type `ty`. `guest` holds the guest's
/// files (needed for every choice but `Host`). Refuses a kernel that is not
/// ready unless `force`.
pub fn plan_boot(
    ask: BootAsk,
    guest: Option<&GuestFiles>,
    ty: GuestType,
    force: bool,
) -> Result<BootPlan> {
    let mut findings = Vec::new();
    let refuse_or_warn = |findings: &mut Vec<Finding>, what: &str, why: &str| -> Result<()> {
        let msg = format!("{what} cannot boot as a {} domU: {why}", type_name(ty));
        if !force {
            return Err(Error::refused(format!(
                "{msg}; --force writes the config anyway"
            )));
        }
        findings.push(Finding::warning("kernel", format!("{msg} (--force)")));
        Ok(())
    };
    let unknown = |findings: &mut Vec<Finding>, what: &str| {
        findings.push(Finding::warning(
            "kernel",
            format!(
                "{what}: nothing says whether it runs as a {} domU (no config file, and the image carries neither an embedded config nor Xen ELF notes): not checked",
                type_name(ty)
            ),
        ));
    };
    let need_guest =
        || guest.ok_or_else(|| Error::invalid("the guest's files are needed to judge its kernels"));
    match ask {
        BootAsk::Host(h) => {
            let r = judge_host(&h, Depth::Full)?;
            let what = format!("the kernel {}", h.kernel.display());
            match ready_for(&r, ty) {
                Ok(true) => {}
                Ok(false) => unknown(&mut findings, &what),
                Err(why) => refuse_or_warn(&mut findings, &what, &why)?,
            }
            let initrd = h
                .initrd
                .clone()
                .or_else(|| r.initramfs.as_ref().map(|i| PathBuf::from(i.path.clone())));
            Ok(BootPlan {
                kernel: BootKernel::Host {
                    kernel: h.kernel.clone(),
                    initrd,
                },
                reason: "--kernel".into(),
                min_memory_mib: r.min_memory_mib,
                judged: vec![r],
                findings,
            })
        }
        BootAsk::Guest(v) => {
            let g = need_guest()?;
            let k = g.kernel(&v).map_err(|e| Error::invalid(e.to_string()))?;
            let r = match g.files(k) {
                Ok(f) => crate::kernel::judge(f, Depth::Full),
                Err(e) => return Err(e.context(format!("the guest's kernel {v}"))),
            };
            let what = format!("the guest's kernel {v}");
            match ready_for(&r, ty) {
                Ok(true) => {}
                Ok(false) => unknown(&mut findings, &what),
                Err(why) => refuse_or_warn(&mut findings, &what, &why)?,
            }
            Ok(BootPlan {
                kernel: BootKernel::Guest { version: v },
                reason: "--guest-kernel".into(),
                min_memory_mib: r.min_memory_mib,
                judged: vec![r],
                findings,
            })
        }
        BootAsk::Pygrub | BootAsk::Newest => {
            let pygrub = matches!(ask, BootAsk::Pygrub);
            let g = need_guest()?;
            let mut judged = g.judge_all(Depth::Full);
            judged.sort_by(|a, b| version_cmp(&b.version, &a.version));
            let ready: Vec<&KernelReport> = judged
                .iter()
                .filter(|r| ready_for(r, ty) == Ok(true))
                .collect();
            let summary = || -> String {
                if judged.is_empty() {
                    return "the guest's /boot holds no kernel".into();
                }
                judged
                    .iter()
                    .map(|r| {
                        format!(
                            "{}: {}",
                            r.version,
                            match ready_for(r, ty) {
                                Ok(_) => "readiness unknown".to_string(),
                                Err(w) => w,
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let chosen: Option<&KernelReport> = ready.first().copied().or_else(|| {
                // Nothing ready: a kernel whose readiness is unknown, else the
                // newest, when forced.
                judged
                    .iter()
                    .find(|r| ready_for(r, ty) == Ok(false))
                    .or(judged.first())
            });
            if ready.is_empty() {
                let why = summary();
                let what = "no kernel of the guest";
                match chosen {
                    Some(r) if ready_for(r, ty) == Ok(false) => {
                        unknown(&mut findings, &format!("the guest's kernel {}", r.version))
                    }
                    _ => {
                        if !force {
                            return Err(Error::refused(format!(
                                "{what} can boot as a {} domU ({why}): give --kernel PATH (a Xen-ready kernel of dom0, the seed's way), or --force to write the config anyway",
                                type_name(ty)
                            )));
                        }
                        findings.push(Finding::warning(
                            "kernel",
                            format!(
                                "{what} can boot as a {} domU ({why}) (--force)",
                                type_name(ty)
                            ),
                        ));
                    }
                }
            }
            let min_memory_mib = if pygrub {
                judged.iter().filter_map(|r| r.min_memory_mib).max()
            } else {
                chosen.and_then(|r| r.min_memory_mib)
            };
            let (kernel, reason) = if pygrub {
                (BootKernel::Pygrub, "--bootloader pygrub".to_string())
            } else {
                let Some(r) = chosen else {
                    return Err(Error::refused(format!(
                        "{}: nothing to boot; give --kernel PATH",
                        summary()
                    )));
                };
                (
                    BootKernel::Guest {
                        version: r.version.clone(),
                    },
                    if ready.is_empty() {
                        format!(
                            "the guest's newest kernel (none is known {})",
                            type_verdict(ty)
                        )
                    } else if judged.len() == 1 {
                        format!("the guest's only kernel, {}", type_verdict(ty))
                    } else {
                        format!(
                            "the guest's newest {} kernel of {}",
                            type_verdict(ty),
                            judged.len()
                        )
                    },
                )
            };
            // The chosen one first.
            if let BootKernel::Guest { version } = &kernel {
                if let Some(i) = judged.iter().position(|r| &r.version == version) {
                    let r = judged.remove(i);
                    judged.insert(0, r);
                }
            }
            Ok(BootPlan {
                kernel,
                reason,
                judged,
                min_memory_mib,
                findings,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_as_numbers() {
        let mut v = vec![
            "6.1.0-9-amd64",
            "6.1.0-27-amd64",
            "5.10.0-30-amd64",
            "6.1.0-10-amd64",
        ];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(
            v,
            [
                "5.10.0-30-amd64",
                "6.1.0-9-amd64",
                "6.1.0-10-amd64",
                "6.1.0-27-amd64"
            ]
        );
        assert_eq!(version_cmp("2.6.18-xen", "2.6.18-xen"), Ordering::Equal);
        assert_eq!(version_cmp("4.19", "4.19.0"), Ordering::Less);
        assert_eq!(version_cmp("007", "7"), Ordering::Equal);
    }
}

//! Handler of `domuify kernels`: judge the guest's kernels (or one on the
//! host), print text or JSON; or extract a kernel and its initramfs.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use super::inspect::{human_size, print_out};
use super::{DamageFound, KernelsArgs};
use crate::disk::{Access, Disk};
use crate::kernel::guest::{self as kguest, GuestFiles, HostKernel};
use crate::kernel::{Depth, KernelReport};

#[derive(Serialize)]
struct Doc<'a> {
    kernels: &'a [KernelReport],
}

pub fn run(a: KernelsArgs) -> anyhow::Result<()> {
    let (title, kernels) = if let Some(k) = &a.kernel.kernel {
        let h = HostKernel {
            kernel: k.clone(),
            config: a.kernel.kernel_config.clone(),
            initrd: a.kernel.initrd.clone(),
            modules: a.kernel.modules.clone(),
        };
        let r = kguest::judge_host(&h, Depth::Full).map_err(super::usage_or)?;
        (format!("Kernel {}", k.display()), vec![r])
    } else {
        // OK to unwrap: clap requires IMAGE without --kernel.
        let image = a.image.as_ref().unwrap();
        let disk = Arc::new(Disk::open(image, Access::ReadOnly)?);
        let g = GuestFiles::open(disk, a.part)
            .map_err(super::usage_or)
            .with_context(|| image.display().to_string())?;
        for n in &g.notes {
            eprintln!("domuify: note: {}: {}", n.place, n.message);
        }
        if let (Some(v), Some(to)) = (&a.extract, &a.to) {
            let done = kguest::extract(&g, v, to, a.force)?;
            let mut o = String::new();
            if a.json {
                o = serde_json::to_string_pretty(&serde_json::json!({ "extracted": done }))?;
                o.push('\n');
            } else {
                for d in &done {
                    let _ = writeln!(
                        o,
                        "{} -> {} ({}, {})",
                        d.guest_path,
                        d.host_path.display(),
                        human_size(d.bytes),
                        d.action
                    );
                }
            }
            return print_out(&o);
        }
        let name = g
            .guest
            .os_release
            .get("PRETTY_NAME")
            .map_or(String::new(), |n| format!(" ({n})"));
        let title = format!(
            "Kernels of the system on partition {}{name}",
            g.guest.partition
        );
        (title, g.judge_all(Depth::Full))
    };
    if a.json {
        let mut out = serde_json::to_string_pretty(&Doc { kernels: &kernels })?;
        out.push('\n');
        print_out(&out)?;
    } else {
        print_out(&human(&title, &kernels))?;
    }
    if kernels.iter().all(KernelReport::is_ready) {
        Ok(())
    } else {
        Err(DamageFound.into())
    }
}

fn human(title: &str, kernels: &[KernelReport]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{title}:");
    if kernels.is_empty() {
        let _ = writeln!(o, "  no kernel in /boot");
    }
    for k in kernels {
        let mem = k
            .min_memory_mib
            .map_or(String::new(), |m| format!("  memory >= {m} MiB"));
        let _ = writeln!(o, "  {}  {}{mem}", k.version, k.verdict.join(", "));
        let comp = k
            .compression
            .map_or(String::new(), |c| format!(", {}", c.name()));
        let _ = writeln!(
            o,
            "    image: {} ({}{comp}); Xen facts from: {}",
            k.image,
            serde_json::to_value(k.format)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            serde_json::to_value(k.config_source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
        match &k.initramfs {
            Some(i) => {
                let segs: Vec<&str> = i.segments.iter().map(|s| s.compression.name()).collect();
                let _ = writeln!(
                    o,
                    "    initramfs: {} ({} segment{}: {}; {} -> {} unpacked; {} modules; xen-blkfront: {})",
                    i.path,
                    segs.len(),
                    if segs.len() == 1 { "" } else { "s" },
                    segs.join(" + "),
                    human_size(i.compressed_bytes),
                    human_size(i.unpacked_bytes),
                    i.modules.len(),
                    if i.has_xen_blkfront { "yes" } else { "no" }
                );
            }
            None => {
                let _ = writeln!(o, "    initramfs: none");
            }
        }
        for r in &k.reasons {
            let _ = writeln!(o, "    - {r}");
        }
    }
    o
}

//! Handler of `domuify config`: inspect the image (read-only), plan the config
//! ([`crate::domu::plan`]), render it ([`crate::xlcfg::render`]), refuse what
//! would be overwritten, then write the split partition files, the extracted
//! guest kernel and the config.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::{DeviceMapArgs, KernelArgs, UsageError};
use crate::convert::{self, DomuRequest};
use crate::disk::{Access, Disk};
use crate::domu::{ConfigOptions, ConfigPlan};
use crate::kernel::guest::HostKernel;
use crate::plan::boot::BootAsk;
use crate::plan::devmap::Mode;
use crate::xlcfg::{Format, GuestType};

/// `--type`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TypeArg {
    /// Paravirtualised.
    Pv,
    /// PVH.
    Pvh,
}

/// `--format`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// xl.cfg(5).
    Xl,
    /// The legacy xm form.
    Xm,
}

/// `--bootloader`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BootloaderArg {
    /// pygrub, run by the toolstack on the first disk.
    Pygrub,
}

/// The domU's options: the same flags in `config` and `convert`.
#[derive(Args, Debug)]
pub struct DomuArgs {
    /// Domain name (default: the guest's hostname).
    #[arg(long)]
    pub name: Option<String>,
    /// Memory in MiB (default: 512, or the kernel's minimum when larger; less
    /// than that minimum is refused without --force).
    #[arg(long, value_name = "MiB")]
    pub memory: Option<u64>,
    /// Virtual CPUs (default 1).
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Guest type.
    #[arg(long = "type", value_enum, default_value = "pv")]
    pub guest_type: TypeArg,
    /// A kernel of dom0 to boot (the seed's way), and its files.
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Boot the guest's own kernel VER, extracted to --kernel-dir.
    #[arg(long, value_name = "VER", conflicts_with_all = ["kernel", "bootloader"])]
    pub guest_kernel: Option<String>,
    /// Where the guest's kernel is extracted (created when missing).
    #[arg(long, value_name = "DIR")]
    pub kernel_dir: Option<PathBuf>,
    /// Boot with a bootloader run by the toolstack.
    #[arg(long, value_enum, conflicts_with = "kernel")]
    pub bootloader: Option<BootloaderArg>,
    /// More kernel command line (after console=hvc0).
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub extra: Option<String>,
    /// A network interface on this bridge (repeatable).
    #[arg(long, value_name = "BR")]
    pub bridge: Vec<String>,
    /// A network interface with this MAC (repeatable).
    #[arg(long, value_name = "MAC")]
    pub mac: Vec<String>,
    /// No network interface.
    #[arg(long, conflicts_with_all = ["bridge", "mac"])]
    pub no_network: bool,
    /// Write each exported partition as a sparse file in DIR (created when
    /// missing; partition mode on an image file).
    #[arg(long, value_name = "DIR")]
    pub split_to: Option<PathBuf>,
    /// Config syntax.
    #[arg(long, value_enum, default_value = "xl")]
    pub format: FormatArg,
}

impl DomuArgs {
    /// The library's request, for `command`.
    pub fn request(
        &self,
        map: &DeviceMapArgs,
        force: bool,
        command: &'static str,
    ) -> anyhow::Result<DomuRequest> {
        let boot = match (&self.kernel.kernel, &self.guest_kernel, self.bootloader) {
            (Some(k), _, _) => BootAsk::Host(HostKernel {
                kernel: k.clone(),
                config: self.kernel.kernel_config.clone(),
                initrd: self.kernel.initrd.clone(),
                modules: self.kernel.modules.clone(),
            }),
            (_, Some(v), _) => BootAsk::Guest(v.clone()),
            (_, _, Some(BootloaderArg::Pygrub)) => BootAsk::Pygrub,
            _ => BootAsk::Newest,
        };
        let host_fstab = match &map.host_fstab {
            Some(p) => Some((
                super::read_host_fstab(p)?,
                format!("--host-fstab {}", p.display()),
            )),
            None => None,
        };
        let cwd = std::env::current_dir().context("the current directory")?;
        Ok(DomuRequest {
            map: map.options(force),
            host_fstab,
            boot,
            kernel_dir: self.kernel_dir.as_ref().map(|d| cwd.join(d)),
            config: ConfigOptions {
                split_to: self.split_to.as_ref().map(|d| cwd.join(d)),
                name: self.name.clone(),
                memory_mib: self.memory,
                vcpus: self.vcpus,
                guest_type: match self.guest_type {
                    TypeArg::Pv => GuestType::Pv,
                    TypeArg::Pvh => GuestType::Pvh,
                },
                boot: None,
                extra: self.extra.clone(),
                bridges: self.bridge.clone(),
                macs: self.mac.clone(),
                no_network: self.no_network,
                min_memory_mib: None,
                command,
                force,
            },
            format: match self.format {
                FormatArg::Xl => Format::Xl,
                FormatArg::Xm => Format::Xm,
            },
        })
    }
}

/// `config` arguments.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Raw disk image or block device.
    pub image: PathBuf,
    #[command(flatten)]
    pub map: DeviceMapArgs,
    #[command(flatten)]
    pub domu: DomuArgs,
    /// Where to write the config (`-` or absent: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the plan (with the config text) as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Replace existing files; accept less memory than the kernel needs, a
    /// kernel judged not ready, or an unsafe device map.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: ConfigArgs) -> anyhow::Result<()> {
    let d = &a.domu;
    if d.kernel.kernel.is_none() && d.guest_kernel.is_none() && d.bootloader.is_none() {
        return Err(UsageError(
            "how should the domU boot? give --kernel PATH [--initrd PATH], --guest-kernel VER --kernel-dir DIR, or --bootloader pygrub".into(),
        )
        .into());
    }
    if d.guest_kernel.is_some() != d.kernel_dir.is_some() {
        return Err(
            UsageError("--guest-kernel VER and --kernel-dir DIR go together".into()).into(),
        );
    }
    let req = d.request(&a.map, a.force, "config")?;
    let disk = Arc::new(Disk::open(&a.image, Access::ReadOnly)?);
    let planned = convert::plan_domu(Arc::clone(&disk), &a.image, req, None)
        .map_err(super::usage_or)
        .with_context(|| a.image.display().to_string())?;
    let (plan, text) = (&planned.config, &planned.text);
    // Every host file planned (refused here when it exists and differs, unless
    // --force), then written: the guest's kernel, the split files, the config.
    let out = a.out.as_deref().filter(|p| *p != Path::new("-"));
    let out_abs = out.map(|o| std::env::current_dir().unwrap_or_default().join(o));
    let files = convert::plan_host_files(&disk, &planned, false, out_abs.as_deref(), a.force)?;
    drop(disk);
    convert::write_host_files(
        &files,
        &planned.boot.kernel,
        planned.guest.as_ref(),
        &a.image,
        text,
    )?;
    if a.json {
        let mut v = serde_json::to_value(plan)?;
        v["format"] = serde_json::json!(match d.format {
            FormatArg::Xl => Format::Xl,
            FormatArg::Xm => Format::Xm,
        });
        v["kernel"] = serde_json::to_value(&planned.boot)?;
        v["text"] = serde_json::json!(text);
        v["files"] = serde_json::to_value(&files)?;
        v["out"] = serde_json::json!(out.map(|p| p.display().to_string()));
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match out {
        Some(o) => {
            print_summary(plan, &mut std::io::stdout());
            println!(
                "Config written to {}; start the guest with: xl create -c {}",
                o.display(),
                o.display()
            );
        }
        None => {
            print_summary(plan, &mut std::io::stderr());
            print!("{text}");
        }
    }
    Ok(())
}

fn print_summary(plan: &ConfigPlan, w: &mut dyn Write) {
    let _ = writeln!(w, "Guest: partition {} ({})", plan.root, plan.root_reason);
    let _ = writeln!(w, "Mode: {:?} ({})", plan.mode, plan.mode_reason);
    for e in &plan.exports {
        if plan.mode == Mode::Partitions {
            let _ = writeln!(
                w,
                "  partition {} -> {} ({}){}",
                e.partition,
                e.vdev,
                e.reason,
                if e.target.is_empty() {
                    String::new()
                } else {
                    format!(": {}", e.target)
                }
            );
        }
    }
    let _ = writeln!(w, "Name: {} ({})", plan.config.name, plan.name_reason);
    let _ = writeln!(
        w,
        "Memory: {} MiB ({})",
        plan.config.memory_mib, plan.memory_reason
    );
    for f in &plan.findings {
        let _ = writeln!(w, "{:?}: {}: {}", f.severity, f.place, f.message);
    }
}

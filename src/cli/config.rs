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
use crate::disk::{Access, Disk, Window};
use crate::domu::{self, ConfigOptions, ConfigPlan};
use crate::guest::reader as guest_reader;
use crate::kernel::guest::HostKernel;
use crate::plan::boot::BootAsk;
use crate::plan::devmap::Mode;
use crate::xlcfg::{Format, GuestType};

/// A library error as the CLI reports it: bad arguments are usage errors (2).
fn usage_or(e: crate::Error) -> anyhow::Error {
    if e.kind() == crate::ErrorKind::InvalidInput {
        UsageError(e.to_string()).into()
    } else {
        e.into()
    }
}

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

fn write_new(path: &Path, data: &[u8], force: bool) -> anyhow::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn refuse_existing(path: &Path, what: &str, force: bool) -> anyhow::Result<()> {
    if !force && std::fs::symlink_metadata(path).is_ok() {
        anyhow::bail!(
            "{what} {} already exists: --force replaces it (nothing was written)",
            path.display()
        );
    }
    Ok(())
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
        .map_err(usage_or)
        .with_context(|| a.image.display().to_string())?;
    let (report, plan, text) = (&planned.report, &planned.config, &planned.text);
    let notes: Vec<String> = Vec::new();
    let image_abs =
        std::fs::canonicalize(&a.image).with_context(|| format!("{}", a.image.display()))?;
    let opts_split = d.split_to.clone();
    // Refusals before anything is written.
    let out = a.out.as_deref().filter(|p| *p != Path::new("-"));
    if let Some(o) = out {
        refuse_existing(o, "the config file", a.force)?;
    }
    for f in &plan.split_files {
        refuse_existing(Path::new(&f.target), "the split file", a.force)?;
    }
    let extract = guest_kernel_files(report, plan, &a)?;
    for (_, _, to) in &extract {
        if std::fs::symlink_metadata(to).is_ok() && !a.force {
            refuse_existing(to, "the extracted kernel file", false)?;
        }
    }

    // Write: split files, the guest's kernel, the config.
    if let Some(dir) = &opts_split {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for f in &plan.split_files {
        domu::split_partition(
            &image_abs,
            f.start_bytes,
            f.size_bytes,
            Path::new(&f.target),
            a.force,
        )
        .with_context(|| format!("splitting partition {}", f.partition))?;
    }
    if let (Some(dir), false) = (&d.kernel_dir, extract.is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (part, gpath, to) in &extract {
            if a.force {
                let _ = std::fs::remove_file(to);
            }
            let (start, len) = {
                let table = crate::part::read_table(&*disk, disk.logical_sector_size())?;
                table.locate(
                    Some(*part),
                    &a.image.display().to_string(),
                    crate::disk::ReadAt::size(&*disk),
                )?
            };
            let (reader, _) = guest_reader::open(Window::new(disk.clone(), start, len)?)?;
            let rep = crate::copy::copy_out(&*reader, std::slice::from_ref(gpath), dir)?;
            if let Some(e) = rep.errors.first() {
                anyhow::bail!("extracting {}: {e}", String::from_utf8_lossy(gpath));
            }
        }
    }
    if a.json {
        let mut v = serde_json::to_value(plan)?;
        v["format"] = serde_json::json!(match d.format {
            FormatArg::Xl => Format::Xl,
            FormatArg::Xm => Format::Xm,
        });
        v["kernel"] = serde_json::to_value(&planned.boot)?;
        v["text"] = serde_json::json!(text);
        v["notes"] = serde_json::json!(notes);
        v["out"] = serde_json::json!(out.map(|p| p.display().to_string()));
        if let Some(o) = out {
            write_new(o, text.as_bytes(), a.force)?;
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match out {
        Some(o) => {
            write_new(o, text.as_bytes(), a.force)?;
            print_summary(plan, &mut std::io::stdout(), &notes);
            println!(
                "Config written to {}; start the guest with: xl create -c {}",
                o.display(),
                o.display()
            );
        }
        None => {
            print_summary(plan, &mut std::io::stderr(), &notes);
            print!("{text}");
        }
    }
    Ok(())
}

/// (partition, guest path, host file) of each guest kernel file to extract.
fn guest_kernel_files(
    report: &crate::inspect::Report,
    plan: &ConfigPlan,
    a: &ConfigArgs,
) -> anyhow::Result<Vec<(u32, Vec<u8>, PathBuf)>> {
    let (Some(ver), Some(dir)) = (&a.domu.guest_kernel, &a.domu.kernel_dir) else {
        return Ok(Vec::new());
    };
    let guest = report
        .systems
        .iter()
        .find(|s| s.partition == plan.root)
        .context("the guest vanished")?;
    let Some(k) = guest.kernels.iter().find(|k| &k.version == ver) else {
        return Ok(Vec::new());
    };
    let mut v = Vec::new();
    for p in std::iter::once(&k.image).chain(k.initrd.as_ref()) {
        // A separate /boot: the path inside that filesystem drops /boot.
        let inside = if k.partition != guest.partition {
            p.strip_prefix("/boot").unwrap_or(p).to_string()
        } else {
            p.clone()
        };
        let name = p.rsplit('/').next().unwrap_or(p);
        v.push((k.partition, inside.into_bytes(), dir.join(name)));
    }
    Ok(v)
}

fn print_summary(plan: &ConfigPlan, w: &mut dyn Write, notes: &[String]) {
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
    for n in notes {
        let _ = writeln!(w, "{n}");
    }
}

//! Handler of `domuify config`: inspect the image (read-only), plan the config
//! ([`crate::domu::plan`]), render it ([`crate::xlcfg::render`]), refuse what
//! would be overwritten, then write the split partition files, the extracted
//! guest kernel and the config.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::UsageError;
use crate::disk::{Access, Disk, DiskKind, Window};
use crate::domu::{self, BootChoice, ConfigOptions, ConfigPlan, Mode, VdevStyle};
use crate::guest::reader as guest_reader;
use crate::xlcfg::{self, Format, GuestType};

/// `--vdev-style`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StyleArg {
    /// xvda5 (every pvops kernel).
    Xvd,
    /// hda5 (old XenLinux kernels only).
    Hd,
    /// sda5 (old XenLinux kernels only).
    Sd,
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

/// `config` arguments.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Raw disk image or block device.
    pub image: PathBuf,
    /// The guest's root partition; default: the only installed Linux system found.
    #[arg(long)]
    pub root: Option<u32>,
    /// The domU's swap partition; default: the swap the guest's fstab names.
    #[arg(long)]
    pub swap: Option<u32>,
    /// Export partition N too, optionally as VDEV (repeatable; partition mode).
    #[arg(long, value_name = "N[=VDEV]")]
    pub export: Vec<String>,
    /// Export the whole disk as xvda (default for an image file).
    #[arg(long, conflicts_with = "partitions")]
    pub whole_disk: bool,
    /// Export each partition as its own disk (default for a block device).
    #[arg(long)]
    pub partitions: bool,
    /// Names of the domU's disks.
    #[arg(long, value_enum, default_value = "xvd")]
    pub vdev_style: StyleArg,
    /// Domain name (default: the guest's hostname).
    #[arg(long)]
    pub name: Option<String>,
    /// Memory in MiB (default: 512, or the kernel's minimum when larger).
    #[arg(long, value_name = "MiB")]
    pub memory: Option<u64>,
    /// Virtual CPUs (default 1).
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Guest type.
    #[arg(long = "type", value_enum, default_value = "pv")]
    pub guest_type: TypeArg,
    /// Boot this kernel of dom0.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["guest_kernel", "bootloader"])]
    pub kernel: Option<PathBuf>,
    /// The initramfs of --kernel.
    #[arg(long, value_name = "PATH", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// The kernel config of --kernel (default: config-VER beside it).
    #[arg(long, value_name = "PATH", requires = "kernel")]
    pub kernel_config: Option<PathBuf>,
    /// Boot the guest's own kernel VER, extracted to --kernel-dir.
    #[arg(
        long,
        value_name = "VER",
        requires = "kernel_dir",
        conflicts_with = "bootloader"
    )]
    pub guest_kernel: Option<String>,
    /// Where --guest-kernel is extracted (created when missing).
    #[arg(long, value_name = "DIR")]
    pub kernel_dir: Option<PathBuf>,
    /// Boot with a bootloader run by the toolstack.
    #[arg(long, value_enum)]
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
    /// Write each exported partition as a sparse file in DIR (created when missing).
    #[arg(long, value_name = "DIR")]
    pub split_to: Option<PathBuf>,
    /// Config syntax.
    #[arg(long, value_enum, default_value = "xl")]
    pub format: FormatArg,
    /// Where to write the config (`-` or absent: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the plan (with the config text) as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Replace existing files; accept less memory than the kernel needs or a
    /// kernel judged not ready.
    #[arg(long)]
    pub force: bool,
}

fn parse_export(s: &str) -> anyhow::Result<(u32, Option<String>)> {
    let (n, v) = match s.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (s, None),
    };
    let n: u32 = n
        .parse()
        .map_err(|_| UsageError(format!("--export {s}: expected N or N=VDEV")))?;
    Ok((n, v))
}

/// What a kernel config says about running as a domU: `Err` with the reason
/// when not ready for `ty`.
fn judge_kconfig(text: &str, ty: GuestType) -> Result<(), String> {
    let val = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
            .map(str::trim)
    };
    let on = |k: &str| matches!(val(k), Some("y") | Some("m"));
    match ty {
        GuestType::Pv if !(on("CONFIG_XEN_PV") || on("CONFIG_XEN")) => {
            return Err(
                "the kernel is built without CONFIG_XEN_PV (it cannot run as a PV domU)".into(),
            )
        }
        GuestType::Pvh if !on("CONFIG_XEN_PVH") => {
            return Err(
                "the kernel is built without CONFIG_XEN_PVH (it cannot run as a PVH domU)".into(),
            )
        }
        _ => {}
    }
    if !on("CONFIG_XEN_BLKDEV_FRONTEND") {
        return Err("the kernel has no Xen block front-end (CONFIG_XEN_BLKDEV_FRONTEND): it cannot see its disks".into());
    }
    Ok(())
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
    if a.kernel_dir.is_some() && a.guest_kernel.is_none() {
        return Err(UsageError("--kernel-dir goes with --guest-kernel VER".into()).into());
    }
    let guest_type = match a.guest_type {
        TypeArg::Pv => GuestType::Pv,
        TypeArg::Pvh => GuestType::Pvh,
    };
    let format = match a.format {
        FormatArg::Xl => Format::Xl,
        FormatArg::Xm => Format::Xm,
    };
    let boot = match (&a.kernel, &a.guest_kernel, a.bootloader) {
        (Some(k), _, _) => Some(BootChoice::Kernel {
            kernel: k.clone(),
            initrd: a.initrd.clone(),
        }),
        (_, Some(v), _) => Some(BootChoice::GuestKernel {
            version: v.clone(),
            dir: a.kernel_dir.clone().unwrap_or_default(),
        }),
        (_, _, Some(BootloaderArg::Pygrub)) => Some(BootChoice::Pygrub),
        _ => None,
    };
    let mut notes: Vec<String> = Vec::new();
    // The kernel's readiness, from its config when there is one.
    if let Some(k) = &a.kernel {
        let cfg = a.kernel_config.clone().or_else(|| {
            let name = k.file_name()?.to_str()?;
            let ver = name.strip_prefix("vmlinuz-")?;
            Some(k.with_file_name(format!("config-{ver}")))
        });
        match cfg.as_deref().map(|c| (c, std::fs::read_to_string(c))) {
            Some((c, Ok(text))) => {
                if let Err(why) = judge_kconfig(&text, guest_type) {
                    if !a.force {
                        return Err(crate::Error::refused(format!(
                            "{}: not ready to boot as a domU: {why} (from {}); --force writes the config anyway",
                            k.display(),
                            c.display()
                        ))
                        .into());
                    }
                    notes.push(format!("warning: {}: {why} (--force)", k.display()));
                }
            }
            Some((c, Err(_))) if a.kernel_config.is_some() => {
                return Err(UsageError(format!("--kernel-config {}: cannot read it", c.display())).into())
            }
            _ => notes.push(format!(
                "note: no kernel config found for {}: its readiness as a domU is not checked (--kernel-config PATH)",
                k.display()
            )),
        }
    } else if guest_type == GuestType::Pvh && !a.force {
        return Err(crate::Error::refused(
            "--type pvh: the kernel's PVH readiness is only checked here from --kernel with its config; --force to write it unchecked",
        )
        .into());
    }
    let mut exports = Vec::new();
    for e in &a.export {
        exports.push(parse_export(e)?);
    }
    let opts = ConfigOptions {
        mode: if a.whole_disk {
            Some(Mode::WholeDisk)
        } else if a.partitions {
            Some(Mode::Partitions)
        } else {
            None
        },
        root: a.root,
        swap: a.swap,
        exports,
        vdev_style: match a.vdev_style {
            StyleArg::Xvd => VdevStyle::Xvd,
            StyleArg::Hd => VdevStyle::Hd,
            StyleArg::Sd => VdevStyle::Sd,
        },
        split_to: a.split_to.as_ref().map(|d| {
            if d.is_absolute() {
                d.clone()
            } else {
                std::env::current_dir().unwrap_or_default().join(d)
            }
        }),
        name: a.name.clone(),
        memory_mib: a.memory,
        vcpus: a.vcpus,
        guest_type,
        boot,
        extra: a.extra.clone(),
        bridges: a.bridge.clone(),
        macs: a.mac.clone(),
        no_network: a.no_network,
        min_memory_mib: None,
        force: a.force,
    };
    let disk = Arc::new(Disk::open(&a.image, Access::ReadOnly)?);
    let is_block = disk.kind() == DiskKind::BlockDevice;
    let report =
        crate::inspect::inspect(disk.clone()).with_context(|| a.image.display().to_string())?;
    let image_abs =
        std::fs::canonicalize(&a.image).with_context(|| format!("{}", a.image.display()))?;
    let plan = domu::plan(&report, &image_abs, is_block, &opts)?;
    let text = xlcfg::render(&plan.config, format)?;

    // Refusals before anything is written.
    let out = a.out.as_deref().filter(|p| *p != Path::new("-"));
    if let Some(o) = out {
        refuse_existing(o, "the config file", a.force)?;
    }
    for f in &plan.split_files {
        refuse_existing(Path::new(&f.target), "the split file", a.force)?;
    }
    let extract = guest_kernel_files(&report, &plan, &a)?;
    for (_, _, to) in &extract {
        if std::fs::symlink_metadata(to).is_ok() && !a.force {
            refuse_existing(to, "the extracted kernel file", false)?;
        }
    }

    // Write: split files, the guest's kernel, the config.
    if let Some(dir) = &opts.split_to {
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
    if let (Some(dir), false) = (&a.kernel_dir, extract.is_empty()) {
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
        let mut v = serde_json::to_value(&plan)?;
        v["format"] = serde_json::json!(format);
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
            print_summary(&plan, &mut std::io::stdout(), &notes);
            println!(
                "Config written to {}; start the guest with: xl create -c {}",
                o.display(),
                o.display()
            );
        }
        None => {
            print_summary(&plan, &mut std::io::stderr(), &notes);
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
    let (Some(ver), Some(dir)) = (&a.guest_kernel, &a.kernel_dir) else {
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

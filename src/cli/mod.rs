//! The command line: a faithful parse of the arguments (clap), then one handler
//! per command. Every handler returns `anyhow::Result`; [`main`] prints the error
//! chain once and maps it to the exit code (0 success, 1 runtime failure, 2 usage).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod config;
mod convert;
mod docs;
mod files;
mod fstab;
mod help;
mod inspect;
mod kernels;
mod modules;

/// An error in how the command was called: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A library error as the CLI reports it: a bad argument the library found
/// (`InvalidInput`: a partition that is not there, a `--root` that holds no
/// system) is a usage error (exit 2), like one clap finds.
pub(crate) fn usage_or(e: crate::Error) -> anyhow::Error {
    if e.kind() == crate::ErrorKind::InvalidInput {
        UsageError(e.to_string()).into()
    } else {
        e.into()
    }
}

/// A run that completed but found damage: the report was printed, exit code 1.
#[derive(Debug)]
pub struct DamageFound;

impl std::fmt::Display for DamageFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("damage found (see the report above)")
    }
}

impl std::error::Error for DamageFound {}

/// domuify: run an installed system as a Xen domU, offline.
#[derive(Parser, Debug)]
#[command(name = "domuify", version, about, long_about = None, after_help = help::DOMUIFY)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read the partition table, identify every filesystem, inspect each installed
    /// system (read-only).
    #[command(after_help = help::INSPECT)]
    Inspect(InspectArgs),
    /// Can the guest's kernels boot as a domU? Xen support, initramfs, memory;
    /// or extract a kernel and its initramfs to a host directory.
    #[command(after_help = help::KERNELS)]
    Kernels(KernelsArgs),
    /// List a directory of a guest filesystem (read-only).
    #[command(after_help = help::LS)]
    Ls(LsArgs),
    /// Print a file of a guest filesystem (read-only).
    #[command(after_help = help::CAT)]
    Cat(PathArgs),
    /// Copy files or trees out of a guest filesystem into a host directory
    /// (read-only on the image).
    #[command(after_help = help::COPY_OUT)]
    CopyOut(CopyOutArgs),
    /// Replace (or create) a guest file with the contents of standard input.
    #[command(after_help = help::WRITE)]
    Write(WriteArgs),
    /// Copy host files or trees into a guest directory.
    #[command(after_help = help::COPY_IN)]
    CopyIn(CopyInArgs),
    /// Create a guest directory.
    #[command(after_help = help::MKDIR)]
    Mkdir(MkdirArgs),
    /// Remove a guest file, symlink or (with -r) directory tree.
    #[command(after_help = help::RM)]
    Rm(RmArgs),
    /// Restore an image from an undo file, bit for bit.
    #[command(after_help = help::UNDO)]
    Undo(UndoArgs),
    /// Copy a host kernel module tree into the guest's /lib/modules/VER.
    ///
    /// Reads the host tree DIR and the guest's root filesystem; writes only with
    /// --apply (the guest's /lib/modules/VER, and --undo FILE). Without --apply it
    /// prints what would be copied and the space it needs.
    #[command(after_help = help::MODULES)]
    Modules(ModulesArgs),
    /// Write the Xen domU config (xl, or the legacy xm form) for the guest.
    ///
    /// Reads the image (partition table, the guest's files, its kernel); writes
    /// the config to --out (standard output by default) and, with --split-to DIR,
    /// each exported partition as a sparse file in DIR. Never writes the image.
    #[command(after_help = help::CONFIG)]
    Config(Box<config::ConfigArgs>),
    /// The whole job: plan (and with --apply carry out) the fstab, the module
    /// tree, the kernel and the config that make the installed system a domU.
    #[command(after_help = help::CONVERT)]
    Convert(Box<convert::ConvertArgs>),
    /// Write the man pages (domuify and one per command), made from these same
    /// definitions.
    #[command(after_help = help::MAN)]
    Man(ManArgs),
    /// Print the shell completion script for bash, zsh or fish.
    #[command(after_help = help::COMPLETIONS)]
    Completions(CompletionsArgs),
    /// Rewrite the guest's /etc/fstab for the domU (prints the plan; writes only
    /// with --apply).
    #[command(after_help = help::FSTAB)]
    Fstab(FstabArgs),
}

/// `inspect` arguments.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Raw disk images or block devices; several are inspected in parallel and
    /// reported in the order given.
    #[arg(required = true, num_args = 1..)]
    pub images: Vec<PathBuf>,
    /// Print JSON instead of tables: one document, or with several images one
    /// document per line (JSON Lines), each with its `image`.
    #[arg(long)]
    pub json: bool,
    /// Print the I/O done (reads, bytes) on stderr.
    #[arg(long)]
    pub stats: bool,
    /// Images inspected at once (default: the number of CPUs).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<std::num::NonZeroUsize>,
    /// Hash the whole image and each partition, in one read pass (repeatable).
    #[arg(long = "hash", value_enum, value_name = "ALGORITHM")]
    pub hash: Vec<HashArg>,
}

/// An algorithm `--hash` takes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashArg {
    /// SHA-256, as sha256sum prints it.
    Sha256,
    /// SHA-1, as sha1sum prints it.
    Sha1,
    /// MD5, as md5sum prints it.
    Md5,
}

/// `man` arguments.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Directory to write the pages into; created when missing.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
}

/// `completions` arguments.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The kernel to judge when it is not the guest's own (the same flags in
/// `config` and `convert`).
#[derive(Args, Debug, Clone, Default)]
pub struct KernelArgs {
    /// A kernel image on the host (dom0's, for example) instead of the guest's.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Its config (default: `config-VER` beside the kernel, when present).
    #[arg(long, value_name = "PATH", requires = "kernel")]
    pub kernel_config: Option<PathBuf>,
    /// Its initramfs (default: `initrd.img-VER` beside the kernel, when present).
    #[arg(long, value_name = "PATH", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Its module tree (`/lib/modules/VER`), to look for xen-blkfront.
    #[arg(long, value_name = "DIR", requires = "kernel")]
    pub modules: Option<PathBuf>,
}

/// `kernels` arguments.
#[derive(Args, Debug)]
pub struct KernelsArgs {
    /// Raw disk image or block device holding the guest.
    #[arg(required_unless_present = "kernel", conflicts_with = "kernel")]
    pub image: Option<PathBuf>,
    /// Partition of the guest's root filesystem (default: the only installed
    /// Linux system found).
    #[arg(long = "part")]
    pub part: Option<u32>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// An external kernel instead of the guest's.
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Copy the kernel of this version and its initramfs out of the guest.
    #[arg(long, value_name = "VER", requires = "to", requires = "image")]
    pub extract: Option<String>,
    /// Host directory to extract into (created when missing).
    #[arg(long, value_name = "DIR", requires = "extract")]
    pub to: Option<PathBuf>,
    /// With --extract: replace a different file of the same name in DIR.
    #[arg(long, requires = "extract")]
    pub force: bool,
}

/// The image and partition every file command takes.
#[derive(Args, Debug)]
pub struct Target {
    /// Raw disk image or block device.
    pub image: PathBuf,
    /// Partition number as Linux numbers it; may be omitted for a bare filesystem.
    #[arg(long = "part")]
    pub part: Option<u32>,
}

/// Options shared by every writing command.
#[derive(Args, Debug)]
pub struct WriteOpts {
    /// Keep the original bytes of every block overwritten in FILE, for `domuify undo`.
    #[arg(long, value_name = "FILE")]
    pub undo: Option<PathBuf>,
    /// When another program is writing the image, wait for it to finish instead
    /// of refusing at once.
    #[arg(long)]
    pub wait: bool,
    /// Override the safety refusals a user may knowingly take: writing to a
    /// filesystem frozen by a hibernation image (a swap holding one means its
    /// system was not shut down), and in planning commands the plan's safety
    /// checks.
    #[arg(long)]
    pub force: bool,
}

/// `ls` arguments.
#[derive(Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    target: Target,
    /// Guest path (default `/`).
    #[arg(default_value = "/")]
    path: String,
    /// Long listing: mode, owner, size, mtime (UTC), name, link target.
    #[arg(short = 'l')]
    long: bool,
}

/// Arguments of a command on one guest path.
#[derive(Args, Debug)]
pub struct PathArgs {
    #[command(flatten)]
    target: Target,
    /// Guest path.
    path: String,
}

/// `copy-out` arguments.
#[derive(Args, Debug)]
pub struct CopyOutArgs {
    #[command(flatten)]
    target: Target,
    /// Guest files or trees to copy.
    #[arg(required = true, num_args = 1..)]
    guest_paths: Vec<String>,
    /// Host directory to copy into.
    host_dir: String,
}

/// `write` arguments.
#[derive(Args, Debug)]
pub struct WriteArgs {
    #[command(flatten)]
    target: Target,
    /// Guest path; created (mode 0644, root) if missing.
    path: String,
    #[command(flatten)]
    opts: WriteOpts,
}

/// `copy-in` arguments.
#[derive(Args, Debug)]
pub struct CopyInArgs {
    #[command(flatten)]
    target: Target,
    /// Host files or trees to copy.
    #[arg(required = true, num_args = 1..)]
    host_paths: Vec<String>,
    /// Guest directory to copy into.
    guest_dir: String,
    #[command(flatten)]
    opts: WriteOpts,
}

/// `mkdir` arguments.
#[derive(Args, Debug)]
pub struct MkdirArgs {
    #[command(flatten)]
    target: Target,
    /// Create missing parents; no error if it exists.
    #[arg(short = 'p')]
    parents: bool,
    /// Guest directory to create.
    path: String,
    #[command(flatten)]
    opts: WriteOpts,
}

/// `rm` arguments.
#[derive(Args, Debug)]
pub struct RmArgs {
    #[command(flatten)]
    target: Target,
    /// Remove directories and their contents.
    #[arg(short = 'r')]
    recursive: bool,
    /// Guest path to remove.
    path: String,
    #[command(flatten)]
    opts: WriteOpts,
}

/// `modules` arguments.
#[derive(Args, Debug)]
pub struct ModulesArgs {
    /// Raw disk image or block device.
    pub image: PathBuf,
    /// The guest's root partition; default: the only installed Linux system found.
    #[arg(long = "part")]
    pub part: Option<u32>,
    /// Host module tree to copy (default: /lib/modules/$(uname -r)).
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Name of the directory in the guest's /lib/modules (default: DIR's name).
    #[arg(long, value_name = "VER")]
    pub version: Option<String>,
    /// Remove the guest's existing /lib/modules/VER first.
    #[arg(long)]
    pub replace: bool,
    /// Copy; without it only the plan is printed and nothing is written.
    #[arg(long)]
    pub apply: bool,
    /// Print the plan (and, with --apply, what was copied) as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// --undo and --wait.
    #[command(flatten)]
    pub opts: WriteOpts,
}

/// `--vdev-style`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum VdevStyleArg {
    /// `/dev/xvdaN`: what every pvops kernel names a vdev.
    #[default]
    Xvd,
    /// `/dev/hdaN`: only old XenLinux kernels honour it.
    Hd,
    /// `/dev/sdaN`: only old XenLinux kernels honour it.
    Sd,
}

/// The device-map options: the same flags, with the same defaults, in every
/// command that exports a disk to a domU.
#[derive(Args, Debug)]
pub struct DeviceMapArgs {
    /// The guest's root partition (default: the only installed system found).
    #[arg(long, value_name = "N")]
    pub root: Option<u32>,
    /// The domU's swap partition (default: the swap partition the guest's fstab
    /// names, if on this disk).
    #[arg(long, value_name = "N")]
    pub swap: Option<u32>,
    /// Export partition N too (partition mode), optionally as VDEV (`xvdb`).
    #[arg(long, value_name = "N[=VDEV]")]
    pub export: Vec<crate::plan::devmap::Export>,
    /// Export the whole image as one virtual disk (default for an image file).
    #[arg(long, conflicts_with = "partitions")]
    pub whole_disk: bool,
    /// Export each partition as its own virtual device (default for a block device).
    #[arg(long)]
    pub partitions: bool,
    /// Device names in the domU (hd and sd only work with old XenLinux kernels).
    #[arg(long, value_enum, default_value_t = VdevStyleArg::Xvd)]
    pub vdev_style: VdevStyleArg,
    /// dom0's own fstab: its root and swap are never exported.
    #[arg(long, value_name = "FILE")]
    pub host_fstab: Option<PathBuf>,
}

impl DeviceMapArgs {
    /// The map options these flags give.
    pub fn options(&self, force: bool) -> crate::plan::devmap::MapOptions {
        use crate::plan::devmap::{MapOptions, Mode, VdevStyle};
        MapOptions {
            mode: if self.whole_disk {
                Some(Mode::WholeDisk)
            } else if self.partitions {
                Some(Mode::Partitions)
            } else {
                None
            },
            root: self.root,
            swap: self.swap,
            exports: self.export.clone(),
            vdev_style: match self.vdev_style {
                VdevStyleArg::Xvd => VdevStyle::Xvd,
                VdevStyleArg::Hd => VdevStyle::Hd,
                VdevStyleArg::Sd => VdevStyle::Sd,
            },
            force,
        }
    }

    /// What dom0 uses on `disk`: `--host-fstab`, and `/proc` for a block device
    /// of this host.
    pub fn host_use(
        &self,
        disk: &crate::disk::Disk,
        facts: &crate::plan::devmap::DiskFacts,
    ) -> anyhow::Result<crate::plan::devmap::HostUse> {
        let text = match &self.host_fstab {
            Some(p) => Some((read_host_fstab(p)?, format!("--host-fstab {}", p.display()))),
            None => None,
        };
        Ok(crate::plan::host::for_disk(
            disk,
            facts,
            text.as_ref().map(|(t, w)| (t.as_slice(), w.as_str())),
        ))
    }
}

/// Largest `--host-fstab` read.
const MAX_HOST_FSTAB: u64 = 1 << 20;

pub(crate) fn read_host_fstab(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("--host-fstab {}: cannot open: {e}", path.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_HOST_FSTAB + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_HOST_FSTAB {
        anyhow::bail!(
            "--host-fstab {}: more than {MAX_HOST_FSTAB} bytes; not an fstab",
            path.display()
        );
    }
    Ok(buf)
}

/// `fstab` arguments.
#[derive(Args, Debug)]
pub struct FstabArgs {
    /// Raw disk image or block device.
    pub image: PathBuf,
    #[command(flatten)]
    map: DeviceMapArgs,
    /// Write the new fstab (in place; the old one kept as /etc/fstab.domuify-orig).
    #[arg(long)]
    pub apply: bool,
    /// Plan (or with --apply write) the original fstab back, from domuify's markers.
    #[arg(long)]
    pub revert: bool,
    /// Do not keep /etc/fstab.domuify-orig.
    #[arg(long)]
    pub no_backup: bool,
    /// Print the plan as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// (`--force` also turns the plan's safety checks, dom0's root or swap
    /// exported, a vdev clash, / not exported, into warnings.)
    #[command(flatten)]
    opts: WriteOpts,
}

/// `undo` arguments.
#[derive(Args, Debug)]
pub struct UndoArgs {
    /// Undo file written by `--undo`.
    undo_file: PathBuf,
    /// The image it was recorded on.
    image: PathBuf,
}

/// Parse, run, report. The only place that prints an error or picks an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (2).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<DamageFound>().is_some() => ExitCode::from(1),
        Err(e) => {
            eprintln!("domuify: {e:#}");
            let usage = e.downcast_ref::<UsageError>().is_some()
                || e.chain().any(|c| {
                    c.downcast_ref::<crate::Error>()
                        .is_some_and(|e| e.kind() == crate::ErrorKind::Usage)
                });
            if usage {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Kernels(a) => kernels::run(a),
        Command::Ls(a) => files::ls(a),
        Command::Cat(a) => files::cat(a),
        Command::CopyOut(a) => files::copy_out(a),
        Command::Write(a) => files::write(a),
        Command::CopyIn(a) => files::copy_in(a),
        Command::Mkdir(a) => files::mkdir(a),
        Command::Rm(a) => files::rm(a),
        Command::Undo(a) => files::undo(a),
        Command::Modules(a) => modules::run(a),
        Command::Config(a) => config::run(*a),
        Command::Convert(a) => convert::run(*a),
        Command::Man(a) => docs::man(a),
        Command::Completions(a) => docs::completions(a),
        Command::Fstab(a) => fstab::run(a),
    }
}

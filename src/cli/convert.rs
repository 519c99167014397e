//! Handler of `domuify convert`: plan the whole conversion (read-only), print
//! it (text or one JSON document), and with `--apply` carry it out
//! ([`crate::convert::apply`]) and report what changed and how to start the guest.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::config::DomuArgs;
use super::files::progress_bar;
use super::inspect::{human_size, print_out};
use super::{DeviceMapArgs, UsageError};
use crate::convert::{self, ConvertOptions, ConvertPlan, FileAction, UndoChoice};
use crate::copy::Progress;
use crate::plan::devmap::Mode;
use crate::plan::fstab::Action;

/// `convert` arguments.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Raw disk image or block device holding the installed system.
    pub image: PathBuf,
    #[command(flatten)]
    pub map: DeviceMapArgs,
    #[command(flatten)]
    pub domu: DomuArgs,
    /// The domU config to write (default: NAME.cfg in the current directory).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Carry out the plan (without it, nothing is written).
    #[arg(long)]
    pub apply: bool,
    /// The undo file of the image's edits (default: NAME.undo beside the config).
    #[arg(long, value_name = "FILE", conflicts_with = "no_undo")]
    pub undo: Option<PathBuf>,
    /// Keep no undo file.
    #[arg(long)]
    pub no_undo: bool,
    /// When another program is writing the image, wait for it instead of refusing.
    #[arg(long)]
    pub wait: bool,
    /// Print the plan (and with --apply what was done) as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Go on past the refusals a user may knowingly take (each is then said in
    /// the report): a kernel not ready, less memory than it needs, an unsafe
    /// device map, existing files.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: ConvertArgs) -> anyhow::Result<()> {
    if a.domu.kernel.modules.is_some() && a.domu.kernel.kernel.is_none() {
        return Err(UsageError("--modules DIR goes with --kernel PATH".into()).into());
    }
    let cwd = std::env::current_dir().context("the current directory")?;
    let opts = ConvertOptions {
        domu: a.domu.request(&a.map, a.force, "convert")?,
        modules: a.domu.kernel.modules.as_ref().map(|m| cwd.join(m)),
        out: a.out.as_ref().map(|o| cwd.join(o)),
        undo: match (&a.undo, a.no_undo) {
            (Some(u), _) => UndoChoice::File(cwd.join(u)),
            (None, true) => UndoChoice::Off,
            (None, false) => UndoChoice::Default,
        },
        wait: a.wait,
    };
    let plan = convert::plan(&a.image, opts)
        .map_err(super::usage_or)
        .with_context(|| a.image.display().to_string())?;
    if !a.apply {
        if a.json {
            let mut v = serde_json::to_value(&plan)?;
            v["applied"] = serde_json::Value::Null;
            print_out(&(serde_json::to_string_pretty(&v)? + "\n"))?;
        } else {
            print_out(&human(&plan))?;
            eprintln!(
                "domuify: nothing written{}",
                if plan.nothing_to_do {
                    ": the image is already converted and every file is in place"
                } else {
                    "; run again with --apply to carry it out"
                }
            );
        }
        return Ok(());
    }
    if plan.nothing_to_do {
        if a.json {
            let mut v = serde_json::to_value(&plan)?;
            v["applied"] = serde_json::to_value(convert::Applied::default())?;
            print_out(&(serde_json::to_string_pretty(&v)? + "\n"))?;
        } else {
            print_out(&human(&plan))?;
        }
        eprintln!(
            "domuify: {}: already converted (the fstab as planned, every file in place): nothing written",
            a.image.display()
        );
        return Ok(());
    }
    let bar = progress_bar();
    let done = convert::apply(&plan, bar.as_ref().map(|b| b as &dyn Progress))
        .with_context(|| a.image.display().to_string())?;
    drop(bar);
    if a.json {
        let mut v = serde_json::to_value(&plan)?;
        v["applied"] = serde_json::to_value(&done)?;
        print_out(&(serde_json::to_string_pretty(&v)? + "\n"))?;
        return Ok(());
    }
    let mut o = human(&plan);
    let _ = writeln!(o, "\nDone:");
    if done.fstab_written {
        let _ = writeln!(
            o,
            "  /etc/fstab of partition {} rewritten in place (the old one is /etc/fstab.domuify-orig)",
            plan.root
        );
    }
    if done.module_entries > 0 {
        let _ = writeln!(o, "  {} module tree entries copied", done.module_entries);
    }
    for f in &done.files_written {
        let _ = writeln!(o, "  wrote {}", f.display());
    }
    if let Some(u) = &done.undo {
        let _ = writeln!(
            o,
            "  undo file {}: `domuify undo {} {}` gives the image back bit for bit",
            u.display(),
            u.display(),
            a.image.display()
        );
    }
    let cfg = plan.files.last().map(|f| f.path.display().to_string());
    if let Some(c) = cfg {
        let _ = writeln!(o, "Start the guest on a Xen dom0 with: xl create -c {c}");
    }
    if !plan.findings.is_empty() {
        let _ = writeln!(
            o,
            "Read the warnings above before starting it ({}).",
            plan.findings.len()
        );
    }
    print_out(&o)
}

fn human(plan: &ConvertPlan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Converting {}: the system on partition {} into a Xen domU",
        plan.image, plan.root
    );
    let _ = writeln!(s, "\nChoices (and why):");
    for t in &plan.defaults {
        let _ = writeln!(s, "  {:<10} {}  ({})", t.what, t.value, t.reason);
    }
    let _ = writeln!(s, "\nDevice map (what the domU sees):");
    let _ = writeln!(s, "  PARTITION  DOMU DEVICE  WHY");
    for e in &plan.fstab.device_map {
        let _ = writeln!(
            s,
            "  {:<9}  {:<11}  {}",
            e.partition,
            format!("/dev/{}", e.vdev),
            e.reason
        );
    }
    let _ = writeln!(s, "\n/etc/fstab:");
    let changed: Vec<_> = plan
        .fstab
        .entries
        .iter()
        .filter(|e| e.action != Action::Keep)
        .collect();
    for e in &changed {
        let what = match e.action {
            Action::Keep => "keep",
            Action::Rewrite => "rewrite",
            Action::Comment => "comment",
        };
        let _ = writeln!(s, "  line {:<3} {what:<8} {}", e.line, e.reason);
    }
    if plan.fstab.changes() {
        let old = String::from_utf8_lossy(&plan.fstab.current);
        let new = String::from_utf8_lossy(&plan.fstab.new);
        let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
        let _ = write!(
            s,
            "{}",
            diff.unified_diff().context_radius(3).header(
                &format!("a/etc/fstab (partition {}, now)", plan.root),
                &format!("b/etc/fstab (partition {}, planned)", plan.root),
            )
        );
    } else {
        let _ = writeln!(s, "  already as planned: no change");
    }
    if let Some(m) = &plan.modules {
        let p = &m.plan;
        if m.copy {
            let _ = writeln!(
                s,
                "\nModule tree: {} -> {} ({} files, {}; needs {} blocks and {} inodes, {} and {} free)",
                p.source,
                p.destination,
                p.files,
                human_size(p.bytes),
                p.need.blocks,
                p.need.inodes,
                p.free.blocks,
                p.free.inodes
            );
        } else {
            let _ = writeln!(
                s,
                "\nModule tree: {} is already in the guest",
                p.destination
            );
        }
    }
    let _ = writeln!(s, "\nKernel:");
    for (i, k) in plan.boot.judged.iter().enumerate() {
        let mem = k
            .min_memory_mib
            .map_or(String::new(), |m| format!("; needs >= {m} MiB"));
        let _ = writeln!(
            s,
            "  {}{}  {}{mem}",
            k.version,
            if i == 0 { " (boots)" } else { "" },
            k.verdict.join(", ")
        );
        for r in k.reasons.iter().take(if i == 0 { usize::MAX } else { 1 }) {
            let _ = writeln!(s, "    - {r}");
        }
    }
    let _ = writeln!(
        s,
        "\nMemory: {} MiB ({})",
        plan.config.config.memory_mib, plan.config.memory_reason
    );
    let _ = writeln!(
        s,
        "Mode: {} ({})",
        match plan.config.mode {
            Mode::WholeDisk => "whole-disk",
            Mode::Partitions => "partitions",
        },
        plan.config.mode_reason
    );
    let _ = writeln!(s, "\nFiles:");
    if plan.image_changes {
        let _ = writeln!(
            s,
            "  edit     {} (one write{})",
            plan.image,
            match &plan.undo {
                Some(u) => format!("; undo file {}", u.display()),
                None => "; no undo file".into(),
            }
        );
    }
    for f in &plan.files {
        let act = match f.action {
            FileAction::Write => "write",
            FileAction::Identical => "keep",
            FileAction::Replace => "replace",
        };
        let _ = writeln!(s, "  {act:<8} {} ({})", f.path.display(), f.what);
    }
    let _ = writeln!(s, "\nThe domU config:");
    for l in plan.config_text.lines() {
        let _ = writeln!(s, "  {l}");
    }
    if !plan.findings.is_empty() {
        let _ = writeln!(s, "\nWarnings:");
        for f in &plan.findings {
            let _ = writeln!(s, "  {f}");
        }
    }
    s
}

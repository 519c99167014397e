//! Handler of `domuify fstab`: gather (read-only), plan, print the device map and
//! a unified diff (or the plan as JSON), and with `--apply` write it through the
//! write transaction.

use std::fmt::Write as _;
use std::sync::Arc;

use super::inspect::print_out;
use super::{FstabArgs, UsageError};
use crate::disk::{Access, Disk};
use crate::plan::devmap::Mode;
use crate::plan::fstab::Action;
use crate::plan::{self, apply, BackupAction, FstabOptions, FstabPlan};
use crate::writer;

pub fn run(a: FstabArgs) -> anyhow::Result<()> {
    if a.revert && (a.map.whole_disk || a.map.partitions || !a.map.export.is_empty()) {
        return Err(UsageError(
            "--revert gives back the original fstab: it takes no device-map flags but --root"
                .into(),
        )
        .into());
    }
    let disk = Arc::new(Disk::open(&a.image, Access::ReadOnly)?);
    let inputs = plan::gather(Arc::clone(&disk), a.map.root).map_err(super::usage_or)?;
    let host_use = a.map.host_use(&disk, &inputs.facts)?;
    drop(disk);
    let opts = FstabOptions {
        map: a.map.options(a.opts.force),
        revert: a.revert,
        backup: !a.no_backup,
    };
    let plan = plan::plan_fstab(&inputs, &host_use, &opts).map_err(super::usage_or)?;
    if a.json {
        let mut out = serde_json::to_string_pretty(&plan)?;
        out.push('\n');
        print_out(&out)?;
    } else {
        print_out(&human(&a, &plan))?;
    }
    let root = plan.root;
    let place = format!("{} partition {root}", a.image.display());
    if !a.apply {
        if !a.json {
            eprintln!(
                "domuify: nothing written{}",
                if plan.changes() {
                    "; run again with --apply to write it"
                } else {
                    ""
                }
            );
        }
        return Ok(());
    }
    if !plan.changes() {
        eprintln!("domuify: {place}: /etc/fstab is already as planned; nothing written");
        return Ok(());
    }
    let wopts = super::files::write_options(&a.opts);
    let part = (root != 0).then_some(root);
    let done = writer::with_ext(&a.image, part, &wopts, |ext| apply::apply_fstab(ext, &plan))?;
    eprintln!(
        "domuify: {place}: wrote /etc/fstab in place (inode {}){}",
        done.ino,
        if done.backup_created {
            "; the old one is kept as /etc/fstab.domuify-orig"
        } else {
            ""
        }
    );
    Ok(())
}

fn human(a: &FstabArgs, plan: &FstabPlan) -> String {
    let mut s = String::new();
    let mode = match plan.mode {
        Mode::WholeDisk => "whole-disk",
        Mode::Partitions => "partitions",
    };
    let _ = writeln!(
        s,
        "{}: guest on partition {} ({})",
        a.image.display(),
        plan.root,
        plan.root_reason
    );
    if a.revert {
        let _ = writeln!(
            s,
            "Revert: the original fstab, from domuify's markers (no device name is chosen)"
        );
    } else {
        let _ = writeln!(s, "Mode: {mode} ({})", plan.mode_reason);
        let _ = writeln!(s, "Device map (what the domU sees):");
        let _ = writeln!(s, "  PARTITION  DOMU DEVICE  WHY");
        for e in &plan.device_map {
            let _ = writeln!(
                s,
                "  {:<9}  {:<11}  {}",
                e.partition,
                format!("/dev/{}", e.vdev),
                e.reason
            );
        }
    }
    let changed: Vec<_> = plan
        .entries
        .iter()
        .filter(|e| e.action != Action::Keep)
        .collect();
    if !changed.is_empty() {
        let _ = writeln!(
            s,
            "Entries changed (line numbers of the fstab without markers):"
        );
        for e in changed {
            let what = match e.action {
                Action::Keep => "keep",
                Action::Rewrite => "rewrite",
                Action::Comment => "comment",
            };
            let _ = writeln!(s, "  line {:<3} {what:<8} {}", e.line, e.reason);
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(s, "Warnings:");
        for w in &plan.warnings {
            let _ = writeln!(s, "  {w}");
        }
    }
    match plan.backup {
        BackupAction::Create => {
            let _ = writeln!(s, "Backup: /etc/fstab.domuify-orig will hold the original");
        }
        BackupAction::Keep => {
            let _ = writeln!(
                s,
                "Backup: /etc/fstab.domuify-orig already holds the original"
            );
        }
        BackupAction::KeepDifferent | BackupAction::None => {}
    }
    if plan.changes() {
        let old = String::from_utf8_lossy(&plan.current);
        let new = String::from_utf8_lossy(&plan.new);
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
        let _ = writeln!(s, "No change: /etc/fstab is already as planned.");
    }
    s
}

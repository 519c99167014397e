//! Handler of `domuify modules`: pick the guest, plan the install, print the
//! plan, or carry it out in one write transaction with `--apply`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::files::{progress_bar, write_options};
use super::inspect::human_size;
use super::ModulesArgs;
use crate::copy;
use crate::disk::{Access, Disk, ReadAt, Window};
use crate::ext::Ext;
use crate::modules::{self, ModulesOptions, ModulesPlan};
use crate::writer::Writer;

/// The host's running kernel's module tree.
fn host_tree() -> anyhow::Result<PathBuf> {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").context(
        "cannot read the running kernel's version (/proc/sys/kernel/osrelease): give --from DIR",
    )?;
    Ok(PathBuf::from("/lib/modules").join(rel.trim()))
}

fn print_plan(plan: &ModulesPlan, part: Option<u32>, applied: bool) {
    let part = part.map_or("the filesystem".to_string(), |n| format!("partition {n}"));
    let verb = if applied { "Copied" } else { "Would copy" };
    println!("{verb} {} into {part}: {}", plan.source, plan.destination);
    if plan.resolved_destination != plan.destination {
        println!("  (that is {} inside the guest)", plan.resolved_destination);
    }
    println!(
        "  {} entries, {} files, {} of data",
        plan.entries,
        plan.files,
        human_size(plan.bytes)
    );
    println!(
        "  needs {} blocks of {} bytes ({}) and {} inodes; free: {} blocks, {} inodes{}",
        plan.need.blocks,
        plan.block_size,
        human_size(plan.need.blocks * u64::from(plan.block_size)),
        plan.need.inodes,
        plan.free.blocks,
        plan.free.inodes,
        if plan.exists && plan.replace {
            format!(
                "; the old tree gives back {} blocks, {} inodes",
                plan.freed.blocks, plan.freed.inodes
            )
        } else {
            String::new()
        }
    );
    if plan.create_modules_dir {
        println!("  /lib/modules is created");
    }
    if plan.exists && plan.replace {
        println!(
            "  the guest's {} is removed first (--replace)",
            plan.destination
        );
    }
    for f in &plan.findings {
        println!("  note: {}", f.message);
    }
}

pub fn run(a: ModulesArgs) -> anyhow::Result<()> {
    let from = match &a.from {
        Some(d) => d.clone(),
        None => host_tree()?,
    };
    let opts = ModulesOptions {
        from,
        version: a.version.clone(),
        replace: a.replace,
    };
    modules::check_module_tree(&opts.from)?;
    let disk = Arc::new(Disk::open(&a.image, Access::ReadOnly)?);
    let report =
        crate::inspect::inspect(disk.clone()).with_context(|| format!("{}", a.image.display()))?;
    let part = modules::default_partition(&report, a.part)?;
    if !a.apply {
        let table = crate::part::read_table(&*disk, disk.logical_sector_size())?;
        let (start, len) = table.locate(part, &a.image.display().to_string(), disk.size())?;
        let ext = Ext::open_read_only(Window::new(disk, start, len)?)?;
        let plan = modules::plan(&ext, &opts)?;
        let refusal = plan.refusal();
        if a.json {
            let mut v = serde_json::to_value(&plan)?;
            v["partition"] = serde_json::json!(part);
            v["refusal"] = serde_json::json!(refusal.as_ref().map(|e| e.to_string()));
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            print_plan(&plan, part, false);
            if refusal.is_none() {
                println!("Nothing written: add --apply to copy.");
            }
        }
        return match refusal {
            Some(e) => Err(e.into()),
            None => Ok(()),
        };
    }
    drop(disk);
    let bar = progress_bar();
    let mut w = Writer::open(&a.image, &write_options(&a.opts))?;
    let result = w.ext(part).and_then(|ext| {
        let plan = modules::plan(ext, &opts)?;
        let rep = modules::apply(ext, &plan, bar.as_ref().map(|b| b as &dyn copy::Progress))?;
        Ok((plan, rep))
    });
    let (plan, rep) = match result {
        Ok(v) => {
            w.commit()?;
            v
        }
        Err(e) => return Err(w.abort(e).into()),
    };
    if a.json {
        let mut v = serde_json::to_value(&plan)?;
        v["partition"] = serde_json::json!(part);
        v["refusal"] = serde_json::Value::Null;
        v["copied"] = serde_json::json!({
            "files": rep.files, "dirs": rep.dirs, "symlinks": rep.symlinks,
            "hard_links": rep.hard_links, "bytes": rep.bytes,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_plan(&plan, part, true);
    }
    for s in &rep.skipped {
        eprintln!("domuify: modules: {s}");
    }
    Ok(())
}

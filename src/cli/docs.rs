//! Handlers of `domuify man` and `domuify completions`: man pages (clap_mangen)
//! and shell completion scripts (clap_complete), both made from the same clap
//! definitions as `--help`, so there is never a second copy to keep.

use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory;

use super::{Cli, CompletionsArgs, ManArgs};

/// Write `domuify.1` and one `domuify-COMMAND.1` per command into `--out`.
pub fn man(a: ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let pages = std::iter::once(cmd.clone()).chain(cmd.get_subcommands().cloned());
    let mut written: Vec<PathBuf> = Vec::new();
    for page in pages {
        let path = a.out.join(format!(
            "{}.1",
            page.get_display_name().unwrap_or(page.get_name())
        ));
        let mut roff = Vec::new();
        render(page, &mut roff)?;
        std::fs::write(&path, roff).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    for p in written {
        println!("{}", p.display());
    }
    Ok(())
}

/// One page: clap_mangen's sections, with the end of `--help` (what the
/// command reads and writes, its examples) as sections of their own, examples
/// kept line for line.
fn render(cmd: clap::Command, w: &mut Vec<u8>) -> std::io::Result<()> {
    let extra = cmd.get_after_help().map(|h| h.to_string());
    let has_args = cmd
        .get_arguments()
        .any(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version");
    let has_subcommands = cmd.get_subcommands().any(|c| !c.is_hide_set());
    let has_version = cmd.get_version().is_some();
    let man = clap_mangen::Man::new(cmd.after_help(None::<&str>)).manual("domuify manual");
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if has_args {
        man.render_options_section(w)?;
    }
    if has_subcommands {
        man.render_subcommands_section(w)?;
    }
    if let Some(extra) = extra {
        w.extend_from_slice(help_sections(&extra).as_bytes());
    }
    if has_version {
        man.render_version_section(w)?;
    }
    Ok(())
}

/// The `Reads:`/`Writes:` lines as a FILES AND DEVICES section, and the
/// `Examples:` as an EXAMPLES section: each `# …` comment a paragraph, each
/// `$ …` command line unfilled and indented.
fn help_sections(text: &str) -> String {
    let mut out = String::from(".SH \"READS AND WRITES\"\n");
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "Examples:" {
            out.push_str(".SH EXAMPLES\n");
        } else if let Some(c) = line.strip_prefix("# ") {
            out.push_str(&format!(".PP\n{}\n", roff_text(c)));
        } else if line.starts_with("$ ") {
            out.push_str(&format!(".RS 4\n.nf\n{}\n.fi\n.RE\n", roff_text(line)));
        } else {
            out.push_str(&format!(".PP\n{}\n", roff_text(line)));
        }
    }
    out
}

/// Text as roff reads it literally: backslashes escaped, hyphens as minus signs
/// (so they can be copied), and a leading `.` or `'` kept from being a request.
fn roff_text(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// Print the completion script for the shell asked.
pub fn completions(a: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cmd, "domuify", &mut out);
    Ok(())
}

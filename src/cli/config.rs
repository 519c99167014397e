//! Handler of `domuify config` (placeholder while it is wired).

use clap::Args;
use std::path::PathBuf;

/// `config` arguments.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Raw disk image or block device.
    pub image: PathBuf,
}

pub fn run(_a: ConfigArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}

//! Handler of `domuify inspect`.

use super::InspectArgs;

pub fn run(_a: InspectArgs) -> anyhow::Result<()> {
    anyhow::bail!("inspect: not implemented yet")
}

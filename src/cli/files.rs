//! Handlers of the file commands (`ls`, `cat`, `copy-out`, `write`, `copy-in`,
//! `mkdir`, `rm`, `undo`).

use anyhow::bail;

use super::{CopyInArgs, CopyOutArgs, LsArgs, MkdirArgs, PathArgs, RmArgs, UndoArgs, WriteArgs};

pub fn ls(_a: LsArgs) -> anyhow::Result<()> {
    bail!("ls: not implemented yet")
}
pub fn cat(_a: PathArgs) -> anyhow::Result<()> {
    bail!("cat: not implemented yet")
}
pub fn copy_out(_a: CopyOutArgs) -> anyhow::Result<()> {
    bail!("copy-out: not implemented yet")
}
pub fn write(_a: WriteArgs) -> anyhow::Result<()> {
    bail!("write: not implemented yet")
}
pub fn copy_in(_a: CopyInArgs) -> anyhow::Result<()> {
    bail!("copy-in: not implemented yet")
}
pub fn mkdir(_a: MkdirArgs) -> anyhow::Result<()> {
    bail!("mkdir: not implemented yet")
}
pub fn rm(_a: RmArgs) -> anyhow::Result<()> {
    bail!("rm: not implemented yet")
}
pub fn undo(_a: UndoArgs) -> anyhow::Result<()> {
    bail!("undo: not implemented yet")
}

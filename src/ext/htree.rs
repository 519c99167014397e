//! htree (dx) directories: the dx_root and dx_node blocks, lookup by hash, and
//! insertion that splits a full leaf and grows the tree. (Being built.)

use crate::error::{Error, Result};

use super::dir::{DirBlocks, DirCtx, RawEntry};
use super::Ino;

fn not_yet() -> Error {
    Error::unsupported("htree directories are being built")
}

pub(crate) fn entries(blocks: &mut dyn DirBlocks, ctx: &DirCtx) -> Result<Vec<RawEntry>> {
    let _ = (blocks, ctx);
    Err(not_yet())
}

pub(crate) fn lookup(
    blocks: &mut dyn DirBlocks,
    ctx: &DirCtx,
    name: &[u8],
) -> Result<Option<RawEntry>> {
    let _ = (blocks, ctx, name);
    Err(not_yet())
}

pub(crate) fn add_entry(
    blocks: &mut dyn DirBlocks,
    ctx: &DirCtx,
    name: &[u8],
    ino: Ino,
    ft: u8,
) -> Result<()> {
    let _ = (blocks, ctx, name, ino, ft);
    Err(not_yet())
}

pub(crate) fn remove_entry(
    blocks: &mut dyn DirBlocks,
    ctx: &DirCtx,
    name: &[u8],
) -> Result<RawEntry> {
    let _ = (blocks, ctx, name);
    Err(not_yet())
}

pub(crate) fn verify(blocks: &mut dyn DirBlocks, ctx: &DirCtx) -> Result<()> {
    let _ = (blocks, ctx);
    Err(not_yet())
}

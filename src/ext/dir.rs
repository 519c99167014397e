//! Directory blocks: the linear entry format (`ext4_dir_entry_2`), the metadata_csum
//! leaf tail, and the operations on a whole directory (iterate, look up, add,
//! remove), linear or htree-indexed (see [`super::htree`]).
//!
//! This module works on directory *blocks* through [`DirBlocks`], which the engine
//! implements over a directory inode (mapping logical blocks, allocating new ones).
//! It never touches bitmaps, inodes or the superblock itself.

use crate::error::{Error, Result};

use super::Ino;

/// The hash parameters of the filesystem (from the superblock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    /// `s_hash_seed` as four little-endian words.
    pub seed: [u32; 4],
    /// `s_def_hash_version` (0 legacy, 1 half_md4, 2 tea; +3 for the unsigned
    /// variants is decided by `unsigned`).
    pub default_version: u8,
    /// `s_flags` says unsigned char hashing (EXT2_FLAGS_UNSIGNED_HASH).
    pub unsigned: bool,
}

/// Everything the directory code needs to know about one directory.
#[derive(Clone, Copy, Debug)]
pub struct DirCtx {
    /// Filesystem block size.
    pub block_size: usize,
    /// This directory's inode.
    pub ino: Ino,
    /// With metadata_csum: `crc32c(fs_seed, le32 ino || le32 i_generation)`, the
    /// seed of this directory's leaf tails and dx tails. `None` without metadata_csum.
    pub csum_seed: Option<u32>,
    /// The filetype feature is on: entries carry a file type byte.
    pub filetype: bool,
    /// The directory inode has `EXT4_INDEX_FL` (an htree).
    pub indexed: bool,
    /// Hash parameters, for htree directories.
    pub hash: HashParams,
}

/// A directory's blocks, as the engine exposes them to this module.
pub trait DirBlocks {
    /// Number of logical blocks (`i_size / block_size`).
    fn block_count(&self) -> u32;
    /// Read logical block `lblk` into `buf` (one block).
    fn read(&mut self, lblk: u32, buf: &mut [u8]) -> Result<()>;
    /// Write logical block `lblk` (one block) as given; checksums are the caller's.
    fn write(&mut self, lblk: u32, buf: &[u8]) -> Result<()>;
    /// Allocate and map a new logical block at the end (number `block_count()` before the
    /// call), grow `i_size`, and return its number. Its contents are undefined until
    /// written.
    fn append(&mut self) -> Result<u32>;
}

/// One entry as stored (`.` and `..` included when iterating raw).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    /// Name bytes.
    pub name: Vec<u8>,
    /// Inode (never 0 for a live entry).
    pub ino: Ino,
    /// `file_type` byte (0 when the filetype feature is off).
    pub file_type: u8,
}

fn not_yet() -> Error {
    Error::unsupported("directory code is being built")
}

/// Every live entry of the directory, in on-disk order, `.` and `..` excluded.
pub fn entries(blocks: &mut dyn DirBlocks, ctx: &DirCtx) -> Result<Vec<RawEntry>> {
    let _ = (blocks, ctx);
    Err(not_yet())
}

/// Find `name` (uses the index of an htree directory).
pub fn lookup(blocks: &mut dyn DirBlocks, ctx: &DirCtx, name: &[u8]) -> Result<Option<RawEntry>> {
    let _ = (blocks, ctx, name);
    Err(not_yet())
}

/// Add `name -> ino`. An htree directory stays indexed and valid (leaf split and
/// tree growth as needed); a linear one stays linear. `AlreadyExists` if present;
/// `InvalidInput` for an empty name, one over 255 bytes, or one with `/` or NUL.
pub fn add_entry(
    blocks: &mut dyn DirBlocks,
    ctx: &DirCtx,
    name: &[u8],
    ino: Ino,
    file_type: u8,
) -> Result<()> {
    let _ = (blocks, ctx, name, ino, file_type);
    Err(not_yet())
}

/// Remove `name` and return the entry it held; `NotFound` if absent.
pub fn remove_entry(blocks: &mut dyn DirBlocks, ctx: &DirCtx, name: &[u8]) -> Result<RawEntry> {
    let _ = (blocks, ctx, name);
    Err(not_yet())
}

/// True when the directory holds nothing but `.` and `..`.
pub fn is_empty(blocks: &mut dyn DirBlocks, ctx: &DirCtx) -> Result<bool> {
    let _ = (blocks, ctx);
    Err(not_yet())
}

/// The first block of a new directory: `.` -> `ctx.ino`, `..` -> `parent`, and the
/// checksum tail when `ctx.csum_seed` is set.
pub fn new_dir_block(ctx: &DirCtx, parent: Ino) -> Vec<u8> {
    let _ = (ctx, parent);
    Vec::new()
}

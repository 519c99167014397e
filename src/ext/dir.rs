//! Directory blocks: the linear entry format (`ext4_dir_entry_2`), the metadata_csum
//! leaf tail, and the operations on a whole directory (iterate, look up, add,
//! remove), linear or htree-indexed (see [`super::htree`]).
//!
//! This module works on directory *blocks* through [`DirBlocks`], which the engine
//! implements over a directory inode (mapping logical blocks, allocating new ones).
//! It never touches bitmaps, inodes or the superblock itself.
//!
//! For the engine: [`entries`], [`lookup`], [`add_entry`] (with
//! [`add_entry_cost`] to check for space first), [`remove_entry`], [`is_empty`],
//! [`new_dir_block`], [`verify`], and [`make_linear`] (flatten an htree whose
//! index cannot be used; the caller then clears `EXT4_INDEX_FL`). Blocks written
//! always carry a fresh checksum tail when `csum_seed` is set. A new block is
//! asked for with [`DirBlocks::append`] only after every check has passed, and
//! written before any block that refers to it.
//!
//! Every block read is validated before use (`rec_len` at least 12, a multiple of
//! 4, inside the block; `name_len` inside `rec_len`; the chain ends exactly at the
//! end of the block or at the checksum tail; the tail checksum when metadata_csum
//! is on). A bad block is a [`crate::ErrorKind::Corrupt`] error naming the
//! directory inode, the logical block and the byte offset.

use crate::error::{Error, ErrorKind, Result};

use super::csum::crc32c;
pub use super::htree::make_linear;
use super::{FileType, Ino};
use crate::bytes::{le16, le32, put_le16, put_le32, put_u8, u8_at};

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

// ext4_dir_entry_2, at the entry's offset in the block.
/// `inode`: le32, 0 for an unused entry.
const DE_INODE: usize = 0x0;
/// `rec_len`: le16, length of this record (encoded for 64 KiB blocks).
const DE_REC_LEN: usize = 0x4;
/// `name_len`: u8.
const DE_NAME_LEN: usize = 0x6;
/// `file_type`: u8 (with the filetype feature; else the high byte of name_len).
const DE_FILE_TYPE: usize = 0x7;
/// `name`: `name_len` bytes, not NUL terminated.
const DE_NAME: usize = 0x8;

/// Size of the fixed part of an entry.
pub(crate) const DE_HEADER: usize = 8;
/// The smallest valid `rec_len` (`EXT4_DIR_REC_LEN(1)`).
const MIN_REC_LEN: usize = 12;
/// Longest name.
const NAME_MAX: usize = 255;

// ext4_dir_entry_tail: a fake entry in the last 12 bytes of a leaf block.
/// Size of the leaf tail.
pub const TAIL_SIZE: usize = 12;
/// `det_reserved_ft`: the file_type byte that marks the tail.
const TAIL_FT: u8 = 0xDE;
/// `det_checksum` offset inside the tail.
const TAIL_CHECKSUM: usize = 0x8;

/// `file_type` values (`EXT4_FT_*`).
pub const FT_UNKNOWN: u8 = 0;
/// Regular file.
pub const FT_REG_FILE: u8 = 1;
/// Directory.
pub const FT_DIR: u8 = 2;
/// Character device.
pub const FT_CHRDEV: u8 = 3;
/// Block device.
pub const FT_BLKDEV: u8 = 4;
/// FIFO.
pub const FT_FIFO: u8 = 5;
/// Socket.
pub const FT_SOCK: u8 = 6;
/// Symbolic link.
pub const FT_SYMLINK: u8 = 7;

/// The `file_type` byte of an entry for a file of type `t`.
pub fn file_type_byte(t: FileType) -> u8 {
    match t {
        FileType::Regular => FT_REG_FILE,
        FileType::Directory => FT_DIR,
        FileType::CharDevice => FT_CHRDEV,
        FileType::BlockDevice => FT_BLKDEV,
        FileType::Fifo => FT_FIFO,
        FileType::Socket => FT_SOCK,
        FileType::Symlink => FT_SYMLINK,
        FileType::Unknown => FT_UNKNOWN,
    }
}

/// The file type an entry's `file_type` byte names.
pub fn file_type_of(byte: u8) -> FileType {
    match byte {
        FT_REG_FILE => FileType::Regular,
        FT_DIR => FileType::Directory,
        FT_CHRDEV => FileType::CharDevice,
        FT_BLKDEV => FileType::BlockDevice,
        FT_FIFO => FileType::Fifo,
        FT_SOCK => FileType::Socket,
        FT_SYMLINK => FileType::Symlink,
        _ => FileType::Unknown,
    }
}

// ---------------------------------------------------------------------------
// rec_len encoding (ext4_rec_len_from_disk / ext4_rec_len_to_disk).

/// Decode an on-disk `rec_len`: below 64 KiB blocks it is the length; with 64 KiB
/// blocks, 0 or 65535 mean the whole block and the two low bits carry bits 16-17.
pub fn rec_len_from_disk(raw: u16, block_size: usize) -> usize {
    let len = usize::from(raw);
    if block_size < 65536 {
        return len;
    }
    if raw == u16::MAX || raw == 0 {
        return block_size;
    }
    (len & 65532) | ((len & 3) << 16)
}

/// Encode a `rec_len` for the disk (the inverse of [`rec_len_from_disk`]).
pub fn rec_len_to_disk(len: usize, block_size: usize) -> u16 {
    if len < 65536 {
        return u16::try_from(len).unwrap_or(u16::MAX);
    }
    if len == block_size {
        return if block_size == 65536 { u16::MAX } else { 0 };
    }
    u16::try_from((len & 65532) | ((len >> 16) & 3)).unwrap_or(u16::MAX)
}

/// The space an entry with a name of `name_len` bytes needs (`EXT4_DIR_REC_LEN`).
pub fn rec_size(name_len: usize) -> usize {
    (DE_HEADER + name_len + 3) & !3
}

// ---------------------------------------------------------------------------
// Parsing one block.

/// One record of a parsed block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    /// Byte offset in the block.
    pub off: usize,
    /// Decoded `rec_len`.
    pub rec_len: usize,
    /// `inode` (0: unused).
    pub ino: u32,
    /// `name_len`.
    pub name_len: usize,
    /// `file_type` byte.
    pub file_type: u8,
}

impl Slot {
    /// The name bytes in `block`.
    pub fn name<'a>(&self, block: &'a [u8]) -> &'a [u8] {
        let start = self.off + DE_NAME;
        block.get(start..start + self.name_len).unwrap_or(&[])
    }

    /// Bytes beyond what the entry needs (0 for an unused entry counts its whole
    /// length as free, see [`Slot::free_for`]).
    fn spare(&self) -> usize {
        self.rec_len.saturating_sub(rec_size(self.name_len))
    }

    /// Whether a new entry needing `need` bytes fits in this record.
    pub fn fits(&self, need: usize) -> bool {
        if self.ino == 0 {
            self.rec_len >= need
        } else {
            self.spare() >= need
        }
    }

    pub fn entry(&self, block: &[u8]) -> RawEntry {
        RawEntry {
            name: self.name(block).to_vec(),
            ino: self.ino,
            file_type: self.file_type,
        }
    }
}

/// A corrupt-block error with where.
pub(crate) fn corrupt_at(
    ctx: &DirCtx,
    lblk: u32,
    off: usize,
    what: impl std::fmt::Display,
) -> Error {
    Error::corrupt(format!(
        "directory inode {}: logical block {lblk}, offset {off:#x}: {what}",
        ctx.ino
    ))
}

fn check_len(ctx: &DirCtx, lblk: u32, buf: &[u8]) -> Result<()> {
    if buf.len() != ctx.block_size || ctx.block_size < 1024 || ctx.block_size > 65536 {
        return Err(Error::invalid(format!(
            "directory inode {}: block {lblk}: buffer of {} bytes for block size {}",
            ctx.ino,
            buf.len(),
            ctx.block_size
        )));
    }
    Ok(())
}

/// Whether the block ends with a checksum tail (a fake entry at `block_size - 12`).
pub(crate) fn has_tail(buf: &[u8]) -> bool {
    let t = buf.len().saturating_sub(TAIL_SIZE);
    le32(buf, t + DE_INODE) == 0
        && le16(buf, t + DE_REC_LEN) == TAIL_SIZE as u16
        && u8_at(buf, t + DE_NAME_LEN) == 0
        && u8_at(buf, t + DE_FILE_TYPE) == TAIL_FT
}

/// The checksum a leaf block's tail must hold.
pub(crate) fn leaf_csum(seed: u32, buf: &[u8]) -> u32 {
    crc32c(
        seed,
        buf.get(..buf.len().saturating_sub(TAIL_SIZE))
            .unwrap_or(&[]),
    )
}

/// Where the entries of a leaf end: before the tail with metadata_csum.
pub(crate) fn usable_end(ctx: &DirCtx) -> usize {
    if ctx.csum_seed.is_some() {
        ctx.block_size - TAIL_SIZE
    } else {
        ctx.block_size
    }
}

/// Check a leaf block's tail and checksum (when metadata_csum is on).
pub(crate) fn verify_leaf_tail(ctx: &DirCtx, lblk: u32, buf: &[u8]) -> Result<()> {
    let Some(seed) = ctx.csum_seed else {
        return Ok(());
    };
    let t = ctx.block_size - TAIL_SIZE;
    if !has_tail(buf) {
        return Err(corrupt_at(ctx, lblk, t, "no directory leaf checksum tail"));
    }
    let want = leaf_csum(seed, buf);
    let have = le32(buf, t + TAIL_CHECKSUM);
    if want != have {
        return Err(corrupt_at(
            ctx,
            lblk,
            t + TAIL_CHECKSUM,
            format!("directory leaf checksum {have:#010x}, expected {want:#010x}"),
        ));
    }
    Ok(())
}

/// Write the tail (when metadata_csum is on) and its checksum into `buf`.
pub(crate) fn seal_leaf(ctx: &DirCtx, buf: &mut [u8]) {
    if let Some(seed) = ctx.csum_seed {
        let t = ctx.block_size - TAIL_SIZE;
        put_le32(buf, t + DE_INODE, 0);
        put_le16(buf, t + DE_REC_LEN, TAIL_SIZE as u16);
        put_u8(buf, t + DE_NAME_LEN, 0);
        put_u8(buf, t + DE_FILE_TYPE, TAIL_FT);
        let c = leaf_csum(seed, buf);
        put_le32(buf, t + TAIL_CHECKSUM, c);
    }
}

/// Parse a leaf block's record chain (after checking its tail). The records cover
/// `0..usable_end` exactly.
pub(crate) fn parse_leaf(ctx: &DirCtx, lblk: u32, buf: &[u8]) -> Result<Vec<Slot>> {
    check_len(ctx, lblk, buf)?;
    verify_leaf_tail(ctx, lblk, buf)?;
    let end = usable_end(ctx);
    let mut slots = Vec::new();
    let mut off = 0usize;
    while off < end {
        if end - off < MIN_REC_LEN {
            return Err(corrupt_at(
                ctx,
                lblk,
                off,
                "entry header runs past the block",
            ));
        }
        let rec_len = rec_len_from_disk(le16(buf, off + DE_REC_LEN), ctx.block_size);
        let name_len = usize::from(u8_at(buf, off + DE_NAME_LEN));
        let ino = le32(buf, off + DE_INODE);
        if rec_len < MIN_REC_LEN || rec_len % 4 != 0 {
            return Err(corrupt_at(ctx, lblk, off, format!("bad rec_len {rec_len}")));
        }
        if rec_len > end - off {
            return Err(corrupt_at(
                ctx,
                lblk,
                off,
                format!("rec_len {rec_len} runs past the end of the entries at {end:#x}"),
            ));
        }
        if DE_HEADER + name_len > rec_len {
            return Err(corrupt_at(
                ctx,
                lblk,
                off,
                format!("name_len {name_len} does not fit in rec_len {rec_len}"),
            ));
        }
        if ino != 0 && name_len == 0 {
            return Err(corrupt_at(ctx, lblk, off, "entry with an empty name"));
        }
        let file_type = if ctx.filetype {
            u8_at(buf, off + DE_FILE_TYPE)
        } else {
            0
        };
        slots.push(Slot {
            off,
            rec_len,
            ino,
            name_len,
            file_type,
        });
        off += rec_len;
    }
    Ok(slots)
}

fn write_header(
    ctx: &DirCtx,
    buf: &mut [u8],
    off: usize,
    ino: u32,
    rec_len: usize,
    name: &[u8],
    ft: u8,
) {
    put_le32(buf, off + DE_INODE, ino);
    put_le16(
        buf,
        off + DE_REC_LEN,
        rec_len_to_disk(rec_len, ctx.block_size),
    );
    put_u8(
        buf,
        off + DE_NAME_LEN,
        u8::try_from(name.len()).unwrap_or(u8::MAX),
    );
    put_u8(buf, off + DE_FILE_TYPE, if ctx.filetype { ft } else { 0 });
    let start = off + DE_NAME;
    if let Some(dst) = buf.get_mut(start..start + name.len()) {
        dst.copy_from_slice(name);
    }
    // Zero the padding after the name inside the entry's real size, as libext2fs
    // does: keeps old name bytes out of new entries.
    let pad_end = (off + rec_size(name.len())).min(off + rec_len);
    if let Some(pad) = buf.get_mut(start + name.len()..pad_end) {
        pad.fill(0);
    }
}

/// Check a name the caller wants to add or remove.
pub(crate) fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(Error::invalid(format!(
            "directory entry name of {} bytes (1 to {NAME_MAX} allowed)",
            name.len()
        )));
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(Error::invalid(format!(
            "directory entry name {:?} contains '/' or NUL",
            String::from_utf8_lossy(name)
        )));
    }
    if name == b"." || name == b".." {
        return Err(Error::invalid(
            "'.' and '..' are not added or removed by name",
        ));
    }
    Ok(())
}

fn exists_err(ctx: &DirCtx, name: &[u8]) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!(
            "directory inode {}: {:?} already exists",
            ctx.ino,
            String::from_utf8_lossy(name)
        ),
    )
}

fn not_found_err(ctx: &DirCtx, name: &[u8]) -> Error {
    Error::not_found(format!(
        "directory inode {}: no entry {:?}",
        ctx.ino,
        String::from_utf8_lossy(name)
    ))
}

/// Find a live entry named `name` among a block's slots.
pub(crate) fn find_in(slots: &[Slot], buf: &[u8], name: &[u8]) -> Option<usize> {
    slots.iter().position(|s| s.ino != 0 && s.name(buf) == name)
}

/// Insert into a parsed leaf if a record has room; returns false when full. The
/// block is sealed (tail checksum) when changed.
pub(crate) fn leaf_insert(
    ctx: &DirCtx,
    buf: &mut [u8],
    slots: &[Slot],
    name: &[u8],
    ino: Ino,
    ft: u8,
) -> bool {
    let need = rec_size(name.len());
    let Some(s) = slots.iter().find(|s| s.fits(need)) else {
        return false;
    };
    if s.ino == 0 {
        // Reuse an unused record whole.
        write_header(ctx, buf, s.off, ino, s.rec_len, name, ft);
    } else {
        // Split: the live entry keeps its real size, the new one takes the rest.
        let keep = rec_size(s.name_len);
        put_le16(
            buf,
            s.off + DE_REC_LEN,
            rec_len_to_disk(keep, ctx.block_size),
        );
        write_header(ctx, buf, s.off + keep, ino, s.rec_len - keep, name, ft);
    }
    seal_leaf(ctx, buf);
    true
}

/// Remove slot `i` of a parsed leaf: merge into the previous record, or mark the
/// first record unused. Seals the block.
pub(crate) fn leaf_remove(ctx: &DirCtx, buf: &mut [u8], slots: &[Slot], i: usize) {
    let Some(s) = slots.get(i) else { return };
    match i.checked_sub(1).and_then(|p| slots.get(p)) {
        Some(prev) => {
            let merged = prev.rec_len + s.rec_len;
            put_le16(
                buf,
                prev.off + DE_REC_LEN,
                rec_len_to_disk(merged, ctx.block_size),
            );
        }
        None => put_le32(buf, s.off + DE_INODE, 0),
    }
    seal_leaf(ctx, buf);
}

/// An empty leaf block: one unused record spanning the entries area, and the tail.
pub(crate) fn empty_leaf(ctx: &DirCtx) -> Vec<u8> {
    let mut buf = vec![0u8; ctx.block_size];
    write_header(ctx, &mut buf, 0, 0, usable_end(ctx), &[], 0);
    seal_leaf(ctx, &mut buf);
    buf
}

/// Rewrite a leaf holding exactly `entries` packed in order (the last record
/// spans to the end of the entries area). The caller checked that they fit.
pub(crate) fn build_leaf(ctx: &DirCtx, entries: &[RawEntry]) -> Vec<u8> {
    let mut buf = vec![0u8; ctx.block_size];
    let end = usable_end(ctx);
    if entries.is_empty() {
        return empty_leaf(ctx);
    }
    let mut off = 0;
    for (i, e) in entries.iter().enumerate() {
        let len = if i + 1 == entries.len() {
            end - off
        } else {
            rec_size(e.name.len())
        };
        write_header(ctx, &mut buf, off, e.ino, len, &e.name, e.file_type);
        off += len;
    }
    seal_leaf(ctx, &mut buf);
    buf
}

// ---------------------------------------------------------------------------
// Whole-directory operations.

fn read_block(blocks: &mut dyn DirBlocks, ctx: &DirCtx, lblk: u32) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; ctx.block_size];
    blocks.read(lblk, &mut buf)?;
    Ok(buf)
}

pub(crate) fn read_leaf(
    blocks: &mut dyn DirBlocks,
    ctx: &DirCtx,
    lblk: u32,
) -> Result<(Vec<u8>, Vec<Slot>)> {
    let buf = read_block(blocks, ctx, lblk)?;
    let slots = parse_leaf(ctx, lblk, &buf)?;
    Ok((buf, slots))
}

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

/// Every live entry of the directory, in on-disk order, `.` and `..` excluded.
pub fn entries(blocks: &mut dyn DirBlocks, ctx: &DirCtx) -> Result<Vec<RawEntry>> {
    if ctx.indexed {
        return super::htree::entries(blocks, ctx);
    }
    let mut out = Vec::new();
    for lblk in 0..blocks.block_count() {
        let (buf, slots) = read_leaf(blocks, ctx, lblk)?;
        collect_live(&buf, &slots, &mut out);
    }
    Ok(out)
}

/// Append the live entries of one leaf (without `.` and `..`) to `out`.
pub(crate) fn collect_live(buf: &[u8], slots: &[Slot], out: &mut Vec<RawEntry>) {
    for s in slots {
        if s.ino != 0 && !is_dot(s.name(buf)) {
            out.push(s.entry(buf));
        }
    }
}

/// Find `name` (uses the index of an htree directory).
pub fn lookup(blocks: &mut dyn DirBlocks, ctx: &DirCtx, name: &[u8]) -> Result<Option<RawEntry>> {
    if is_dot(name) {
        return dot_entry(blocks, ctx, name).map(Some);
    }
    if ctx.indexed {
        return super::htree::lookup(blocks, ctx, name);
    }
    for lblk in 0..blocks.block_count() {
        let (buf, slots) = read_leaf(blocks, ctx, lblk)?;
        if let Some(i) = find_in(&slots, &buf, name) {
            return Ok(slots.get(i).map(|s| s.entry(&buf)));
        }
    }
    Ok(None)
}

/// `.` or `..` from the first two records of block 0 (a leaf or a dx_root).
fn dot_entry(blocks: &mut dyn DirBlocks, ctx: &DirCtx, name: &[u8]) -> Result<RawEntry> {
    if blocks.block_count() == 0 {
        return Err(corrupt_at(ctx, 0, 0, "directory without blocks"));
    }
    let buf = read_block(blocks, ctx, 0)?;
    check_len(ctx, 0, &buf)?;
    let mut off = 0;
    for want in [&b"."[..], b".."] {
        let rec_len = rec_len_from_disk(le16(&buf, off + DE_REC_LEN), ctx.block_size);
        let slot = Slot {
            off,
            rec_len,
            ino: le32(&buf, off + DE_INODE),
            name_len: usize::from(u8_at(&buf, off + DE_NAME_LEN)),
            file_type: if ctx.filetype {
                u8_at(&buf, off + DE_FILE_TYPE)
            } else {
                0
            },
        };
        if rec_len < MIN_REC_LEN || off + rec_len > ctx.block_size || slot.name(&buf) != want {
            return Err(corrupt_at(
                ctx,
                0,
                off,
                format!(
                    "'{}' is not where it belongs",
                    String::from_utf8_lossy(want)
                ),
            ));
        }
        if want == name {
            return Ok(slot.entry(&buf));
        }
        off += rec_len;
    }
    Err(Error::invalid("not a dot name"))
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
    check_name(name)?;
    if ino == 0 {
        return Err(Error::invalid("directory entry for inode 0"));
    }
    if ctx.indexed {
        return super::htree::add_entry(blocks, ctx, name, ino, file_type);
    }
    // One pass: refuse a duplicate anywhere, and remember the first block with room.
    let need = rec_size(name.len());
    let mut room: Option<u32> = None;
    for lblk in 0..blocks.block_count() {
        let (buf, slots) = read_leaf(blocks, ctx, lblk)?;
        if find_in(&slots, &buf, name).is_some() {
            return Err(exists_err(ctx, name));
        }
        if room.is_none() && slots.iter().any(|s| s.fits(need)) {
            room = Some(lblk);
        }
    }
    if let Some(lblk) = room {
        let (mut buf, slots) = read_leaf(blocks, ctx, lblk)?;
        if leaf_insert(ctx, &mut buf, &slots, name, ino, file_type) {
            return blocks.write(lblk, &buf);
        }
        return Err(Error::corrupt(format!(
            "directory inode {}: block {lblk} changed while adding an entry",
            ctx.ino
        )));
    }
    let lblk = blocks.append()?;
    let buf = build_leaf(
        ctx,
        &[RawEntry {
            name: name.to_vec(),
            ino,
            file_type,
        }],
    );
    blocks.write(lblk, &buf)
}

/// How many blocks [`add_entry`] would append to the directory to add `name`
/// (0, 1, or 2 for an htree leaf split that also grows the index), so the engine
/// can check for space before changing anything. `Unsupported` when a full htree
/// cannot grow (it would need largedir).
pub fn add_entry_cost(blocks: &mut dyn DirBlocks, ctx: &DirCtx, name: &[u8]) -> Result<u32> {
    check_name(name)?;
    if ctx.indexed {
        return super::htree::add_cost(blocks, ctx, name);
    }
    let need = rec_size(name.len());
    for lblk in 0..blocks.block_count() {
        let (_, slots) = read_leaf(blocks, ctx, lblk)?;
        if slots.iter().any(|s| s.fits(need)) {
            return Ok(0);
        }
    }
    Ok(1)
}

/// Remove `name` and return the entry it held; `NotFound` if absent.
pub fn remove_entry(blocks: &mut dyn DirBlocks, ctx: &DirCtx, name: &[u8]) -> Result<RawEntry> {
    check_name(name)?;
    if ctx.indexed {
        return super::htree::remove_entry(blocks, ctx, name);
    }
    for lblk in 0..blocks.block_count() {
        let (mut buf, slots) = read_leaf(blocks, ctx, lblk)?;
        if let Some(i) = find_in(&slots, &buf, name) {
            let Some(e) = slots.get(i).map(|s| s.entry(&buf)) else {
                break;
            };
            leaf_remove(ctx, &mut buf, &slots, i);
            blocks.write(lblk, &buf)?;
            return Ok(e);
        }
    }
    Err(not_found_err(ctx, name))
}

/// Remove `name` from one leaf if it is there (helper for htree).
pub(crate) fn remove_from_leaf(
    blocks: &mut dyn DirBlocks,
    ctx: &DirCtx,
    lblk: u32,
    name: &[u8],
) -> Result<Option<RawEntry>> {
    let (mut buf, slots) = read_leaf(blocks, ctx, lblk)?;
    let Some(i) = find_in(&slots, &buf, name) else {
        return Ok(None);
    };
    let e = slots.get(i).map(|s| s.entry(&buf));
    leaf_remove(ctx, &mut buf, &slots, i);
    blocks.write(lblk, &buf)?;
    Ok(e)
}

pub(crate) fn exists_error(ctx: &DirCtx, name: &[u8]) -> Error {
    exists_err(ctx, name)
}

pub(crate) fn not_found_error(ctx: &DirCtx, name: &[u8]) -> Error {
    not_found_err(ctx, name)
}

/// True when the directory holds nothing but `.` and `..`.
pub fn is_empty(blocks: &mut dyn DirBlocks, ctx: &DirCtx) -> Result<bool> {
    Ok(entries(blocks, ctx)?.is_empty())
}

/// The first block of a new directory: `.` -> `ctx.ino`, `..` -> `parent`, and the
/// checksum tail when `ctx.csum_seed` is set.
pub fn new_dir_block(ctx: &DirCtx, parent: Ino) -> Vec<u8> {
    let mut buf = vec![0u8; ctx.block_size];
    write_header(ctx, &mut buf, 0, ctx.ino, MIN_REC_LEN, b".", FT_DIR);
    write_header(
        ctx,
        &mut buf,
        MIN_REC_LEN,
        parent,
        usable_end(ctx) - MIN_REC_LEN,
        b"..",
        FT_DIR,
    );
    seal_leaf(ctx, &mut buf);
    buf
}

/// Validate every block of the directory (record chains, leaf checksums, and for
/// an htree the index blocks, their checksums and the hash range of every leaf).
pub fn verify(blocks: &mut dyn DirBlocks, ctx: &DirCtx) -> Result<()> {
    if ctx.indexed {
        return super::htree::verify(blocks, ctx);
    }
    for lblk in 0..blocks.block_count() {
        read_leaf(blocks, ctx, lblk)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A directory held in memory: the test double of the engine's DirBlocks.
    #[derive(Clone, Debug, Default)]
    pub struct MemDir {
        pub blocks: Vec<Vec<u8>>,
        pub block_size: usize,
        /// Refuse appends beyond this many blocks (to test NoSpace paths).
        pub max_blocks: Option<usize>,
    }

    impl DirBlocks for MemDir {
        fn block_count(&self) -> u32 {
            u32::try_from(self.blocks.len()).unwrap_or(u32::MAX)
        }
        fn read(&mut self, lblk: u32, buf: &mut [u8]) -> Result<()> {
            let b = self
                .blocks
                .get(lblk as usize)
                .ok_or_else(|| Error::corrupt(format!("read past end: {lblk}")))?;
            buf.copy_from_slice(b);
            Ok(())
        }
        fn write(&mut self, lblk: u32, buf: &[u8]) -> Result<()> {
            assert_eq!(buf.len(), self.block_size);
            let b = self
                .blocks
                .get_mut(lblk as usize)
                .ok_or_else(|| Error::corrupt(format!("write past end: {lblk}")))?;
            b.copy_from_slice(buf);
            Ok(())
        }
        fn append(&mut self) -> Result<u32> {
            if self.max_blocks.is_some_and(|m| self.blocks.len() >= m) {
                return Err(Error::new(ErrorKind::NoSpace, "test dir full"));
            }
            // Garbage, as the engine promises nothing about new blocks.
            self.blocks.push(vec![0xA5; self.block_size]);
            Ok(self.block_count() - 1)
        }
    }

    pub fn ctx(block_size: usize, csum: bool) -> DirCtx {
        DirCtx {
            block_size,
            ino: 12,
            csum_seed: csum.then_some(0x1234_5678),
            filetype: true,
            indexed: false,
            hash: HashParams {
                seed: [1, 2, 3, 4],
                default_version: 1,
                unsigned: false,
            },
        }
    }

    pub fn new_dir(c: &DirCtx) -> MemDir {
        MemDir {
            blocks: vec![new_dir_block(c, 2)],
            block_size: c.block_size,
            max_blocks: None,
        }
    }

    #[test]
    fn rec_len_round_trips_for_64k_blocks() {
        for bs in [1024usize, 4096, 65536] {
            for len in [12usize, 16, 1000, 4084, 65520, 65536] {
                if len > bs {
                    continue;
                }
                let d = rec_len_to_disk(len, bs);
                assert_eq!(rec_len_from_disk(d, bs), len, "bs {bs} len {len}");
            }
        }
        assert_eq!(rec_len_to_disk(65536, 65536), 65535);
        assert_eq!(rec_len_from_disk(0, 65536), 65536);
    }

    #[test]
    fn new_block_layout() {
        for csum in [false, true] {
            let c = ctx(1024, csum);
            let b = new_dir_block(&c, 2);
            assert_eq!(le32(&b, 0), 12);
            assert_eq!(le16(&b, 4), 12);
            assert_eq!(&b[8..9], b".");
            assert_eq!(le32(&b, 12), 2);
            let want = if csum { 1024 - 24 } else { 1024 - 12 };
            assert_eq!(usize::from(le16(&b, 16)), want);
            assert_eq!(has_tail(&b), csum);
            let slots = parse_leaf(&c, 0, &b).unwrap();
            assert_eq!(slots.len(), 2);
        }
    }

    #[test]
    fn add_lookup_remove_linear() {
        for csum in [false, true] {
            let c = ctx(1024, csum);
            let mut d = new_dir(&c);
            assert!(is_empty(&mut d, &c).unwrap());
            for i in 0..200u32 {
                let name = format!("file-{i:04}-{}", "x".repeat((i % 40) as usize));
                add_entry(&mut d, &c, name.as_bytes(), 100 + i, FT_REG_FILE).unwrap();
            }
            assert!(d.blocks.len() > 5);
            let e = entries(&mut d, &c).unwrap();
            assert_eq!(e.len(), 200);
            let err = add_entry(&mut d, &c, e[7].name.as_slice(), 5, 1).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AlreadyExists);
            for (i, x) in e.iter().enumerate() {
                if i % 3 == 0 {
                    let r = remove_entry(&mut d, &c, &x.name).unwrap();
                    assert_eq!(&r, x);
                }
            }
            for (i, x) in e.iter().enumerate() {
                let l = lookup(&mut d, &c, &x.name).unwrap();
                assert_eq!(l.is_some(), i % 3 != 0);
            }
            verify(&mut d, &c).unwrap();
            assert_eq!(
                remove_entry(&mut d, &c, b"nope").unwrap_err().kind(),
                ErrorKind::NotFound
            );
        }
    }

    #[test]
    fn no_space_changes_nothing() {
        let c = ctx(1024, true);
        let mut d = new_dir(&c);
        d.max_blocks = Some(1);
        let mut i = 0;
        let err = loop {
            let name = format!("entry-number-{i}-{}", "y".repeat(60));
            match add_entry(&mut d, &c, name.as_bytes(), 20 + i, FT_REG_FILE) {
                Ok(()) => i += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), ErrorKind::NoSpace);
        assert_eq!(
            add_entry_cost(
                &mut d,
                &c,
                b"one-more-name-that-does-not-fit-anywhere-at-all-xxxxxxxxxxx"
            )
            .unwrap(),
            1
        );
        assert_eq!(entries(&mut d, &c).unwrap().len(), i as usize);
        verify(&mut d, &c).unwrap();
    }

    #[test]
    fn bad_names_are_refused() {
        let c = ctx(1024, false);
        let mut d = new_dir(&c);
        for n in [&b""[..], b"a/b", b"a\0", b".", b".."] {
            let e = add_entry(&mut d, &c, n, 5, 1).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
        }
        let long = vec![b'a'; 256];
        assert_eq!(
            add_entry(&mut d, &c, &long, 5, 1).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        add_entry(&mut d, &c, &long[..255], 5, 1).unwrap();
    }

    #[test]
    fn checksum_mismatch_is_corrupt() {
        let c = ctx(1024, true);
        let mut d = new_dir(&c);
        d.blocks[0][30] ^= 1;
        let e = entries(&mut d, &c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.message().contains("checksum"), "{e}");
    }

    #[test]
    fn hostile_blocks_never_panic() {
        // Every rec_len / name_len value at the first two entries, and random bytes.
        let c = ctx(1024, false);
        let base = new_dir_block(&c, 2);
        for v in 0..=u16::MAX {
            for off in [4usize, 16] {
                let mut b = base.clone();
                put_le16(&mut b, off, v);
                let mut d = MemDir {
                    blocks: vec![b],
                    block_size: 1024,
                    max_blocks: Some(3),
                };
                if let Err(e) = entries(&mut d, &c) {
                    assert_eq!(e.kind(), ErrorKind::Corrupt);
                    assert!(e.message().contains("offset 0x"), "{e}");
                }
                let _ = add_entry(&mut d, &c, b"x", 9, 1);
            }
        }
        let mut seed = 0x9E37_79B9u32;
        for _ in 0..2000 {
            let mut b = vec![0u8; 1024];
            for x in b.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                *x = (seed & 0x1F) as u8;
            }
            let mut d = MemDir {
                blocks: vec![b],
                block_size: 1024,
                max_blocks: Some(2),
            };
            let _ = entries(&mut d, &c);
            let _ = add_entry(&mut d, &c, b"x", 9, 1);
            let _ = remove_entry(&mut d, &c, b"x");
        }
    }
}

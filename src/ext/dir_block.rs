//! The directory block format, a leaf of the directory code (as ext4-view's
//! `dir_block.rs`): one entry (`ext4_dir_entry_2`) at named offsets, a linear
//! leaf block (parse with validation, insert, remove, build), the metadata_csum
//! leaf tail, the block of a new directory, and [`DirBlocks`], the view of a
//! directory's blocks the engine gives the directory code. Both `dir` (whole
//! directories, linear) and `htree` (indexed) build on it; it imports neither.
//!
//! Every block read is validated before use (`rec_len` at least 12, a multiple of
//! 4, inside the block; `name_len` inside `rec_len`; the chain ends exactly at the
//! end of the block or at the checksum tail; the tail checksum when metadata_csum
//! is on). A bad block is a [`crate::ErrorKind::Corrupt`] error naming the
//! directory inode, the logical block and the byte offset.

use crate::bytes::{le16, le32, put_le16, put_le32, put_u8, u8_at};
use crate::error::{Error, ErrorKind, Result};

use super::csum::crc32c;
use super::{FileType, Ino};

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
pub(crate) const DE_INODE: usize = 0x0;
/// `rec_len`: le16, length of this record (encoded for 64 KiB blocks).
pub(crate) const DE_REC_LEN: usize = 0x4;
/// `name_len`: u8.
pub(crate) const DE_NAME_LEN: usize = 0x6;
/// `file_type`: u8 (with the filetype feature; else the high byte of name_len).
pub(crate) const DE_FILE_TYPE: usize = 0x7;
/// `name`: `name_len` bytes, not NUL terminated.
pub(crate) const DE_NAME: usize = 0x8;

/// Size of the fixed part of an entry.
pub(crate) const DE_HEADER: usize = 8;
/// The smallest valid `rec_len` (`EXT4_DIR_REC_LEN(1)`).
pub(crate) const MIN_REC_LEN: usize = 12;
/// Longest name.
pub(crate) const NAME_MAX: usize = 255;

// ext4_dir_entry_tail: a fake entry in the last 12 bytes of a leaf block.
/// Size of the leaf tail.
pub const TAIL_SIZE: usize = 12;
/// `det_reserved_ft`: the file_type byte that marks the tail.
pub(crate) const TAIL_FT: u8 = 0xDE;
/// `det_checksum` offset inside the tail.
pub(crate) const TAIL_CHECKSUM: usize = 0x8;

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

pub(crate) fn check_len(ctx: &DirCtx, lblk: u32, buf: &[u8]) -> Result<()> {
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

pub(crate) fn write_header(
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

pub(crate) fn exists_err(ctx: &DirCtx, name: &[u8]) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!(
            "directory inode {}: {:?} already exists",
            ctx.ino,
            String::from_utf8_lossy(name)
        ),
    )
}

pub(crate) fn not_found_err(ctx: &DirCtx, name: &[u8]) -> Error {
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

pub(crate) fn read_block(blocks: &mut dyn DirBlocks, ctx: &DirCtx, lblk: u32) -> Result<Vec<u8>> {
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

pub(crate) fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

/// Append the live entries of one leaf (without `.` and `..`) to `out`.
pub(crate) fn collect_live(buf: &[u8], slots: &[Slot], out: &mut Vec<RawEntry>) {
    for s in slots {
        if s.ino != 0 && !is_dot(s.name(buf)) {
            out.push(s.entry(buf));
        }
    }
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
}

//! Whole directories: iterate, look up, add, remove, check emptiness, verify,
//! linear or htree-indexed (the latter handed to [`super::htree`]). The block
//! format they stand on (entries, leaf tails, [`DirBlocks`]) is the leaf module
//! `super::dir_block`, re-exported here for the engine.
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

use crate::bytes::{le16, le32, u8_at};
use crate::error::{Error, Result};

use super::dir_block::*;
pub use super::dir_block::{
    file_type_byte, file_type_of, new_dir_block, DirBlocks, DirCtx, HashParams, RawEntry,
};
pub use super::htree::make_linear;
use super::Ino;

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

/// True when the directory holds nothing but `.` and `..`.
pub fn is_empty(blocks: &mut dyn DirBlocks, ctx: &DirCtx) -> Result<bool> {
    Ok(entries(blocks, ctx)?.is_empty())
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
mod tests {
    use super::*;
    use crate::bytes::put_le16;
    use crate::error::ErrorKind;
    use crate::ext::dir_block::tests::{ctx, new_dir, MemDir};

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

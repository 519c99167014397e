//! Extended attributes: read the in-inode area (after `i_extra_isize`) and the
//! xattr block (`i_file_acl`) for [`Ext::xattrs`]; never rewritten, only the xattr
//! block's reference count is dropped (or the block freed) when an inode goes.

use super::inode::{Inode, EXT2_GOOD_OLD_INODE_SIZE};
use super::{csum, Error, Ext, Result};
use crate::bytes::{le16, le32, put_le32, u8_at};
use crate::disk::ReadAt;

const EXT4_XATTR_MAGIC: u32 = 0xEA02_0000;
/// Block header: h_magic, h_refcount, h_blocks, h_hash, h_checksum.
const H_MAGIC: usize = 0x0;
const H_REFCOUNT: usize = 0x4;
const H_BLOCKS: usize = 0x8;
const H_CHECKSUM: usize = 0x10;
const BLOCK_HEADER: usize = 32;
/// Entry: e_name_len, e_name_index, e_value_offs, e_value_inum, e_value_size.
const E_NAME_LEN: usize = 0x0;
const E_NAME_INDEX: usize = 0x1;
const E_VALUE_OFFS: usize = 0x2;
const E_VALUE_INUM: usize = 0x4;
const E_VALUE_SIZE: usize = 0x8;
const ENTRY_HEADER: usize = 16;

/// crc32c(fs_seed, le64 block ‖ block with `h_checksum` zeroed).
fn xattr_csum(fs_seed: u32, blk: u64, zeroed: &[u8]) -> u32 {
    csum::crc32c(csum::crc32c(fs_seed, &blk.to_le_bytes()), zeroed)
}

fn prefix(index: u8) -> &'static str {
    match index {
        1 => "user.",
        2 => "system.posix_acl_access",
        3 => "system.posix_acl_default",
        4 => "trusted.",
        6 => "security.",
        7 => "system.",
        8 => "system.richacl",
        _ => "unknown.",
    }
}

/// Parse entries starting at `first` in `area`; values are at `value_base + offs`.
fn parse_entries(
    area: &[u8],
    first: usize,
    value_base: usize,
    what: &str,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<()> {
    let mut o = first;
    loop {
        if o + 4 > area.len() || le32(area, o) == 0 {
            return Ok(());
        }
        if o + ENTRY_HEADER > area.len() {
            return Err(Error::corrupt(format!(
                "{what}: xattr entry runs past the end"
            )));
        }
        let name_len = usize::from(u8_at(area, o + E_NAME_LEN));
        let index = u8_at(area, o + E_NAME_INDEX);
        let offs = usize::from(le16(area, o + E_VALUE_OFFS));
        let inum = le32(area, o + E_VALUE_INUM);
        let size = le32(area, o + E_VALUE_SIZE) as usize;
        let name = area
            .get(o + ENTRY_HEADER..o + ENTRY_HEADER + name_len)
            .ok_or_else(|| Error::corrupt(format!("{what}: xattr name runs past the end")))?;
        if inum != 0 {
            return Err(Error::unsupported(format!(
                "{what}: xattr value stored in inode {inum} (ea_inode)"
            )));
        }
        let vstart = value_base + offs;
        let value = area
            .get(vstart..vstart.saturating_add(size))
            .ok_or_else(|| Error::corrupt(format!("{what}: xattr value out of range")))?;
        let full = format!("{}{}", prefix(index), String::from_utf8_lossy(name));
        out.push((full, value.to_vec()));
        o += (ENTRY_HEADER + name_len + 3) & !3;
    }
}

impl<D: ReadAt> Ext<D> {
    /// Read xattr block `blk`, checking magic and (metadata_csum) checksum.
    fn read_xattr_block(&self, ino: u32, blk: u64) -> Result<Vec<u8>> {
        self.check_block(blk, 1)?;
        let mut buf = vec![0u8; self.sb.block_size as usize];
        self.read_block(blk, &mut buf)?;
        if le32(&buf, H_MAGIC) != EXT4_XATTR_MAGIC || le32(&buf, H_BLOCKS) != 1 {
            return Err(Error::corrupt(format!(
                "inode {ino}: bad xattr block {blk}"
            )));
        }
        if self.csum == super::group::CsumKind::Meta {
            let stored = le32(&buf, H_CHECKSUM);
            let mut copy = buf.clone();
            put_le32(&mut copy, H_CHECKSUM, 0);
            if xattr_csum(self.fs_seed, blk, &copy) != stored {
                return Err(Error::corrupt(format!(
                    "inode {ino}: xattr block {blk}: checksum does not match"
                )));
            }
        }
        Ok(buf)
    }

    /// Every xattr of the inode: in-inode first, then the block.
    pub(super) fn read_xattrs(&self, inode: &Inode) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        let what = format!("inode {}", inode.ino);
        let ex = inode.extra_isize();
        if ex > 0 {
            let start = EXT2_GOOD_OLD_INODE_SIZE + ex;
            if let Some(area) = inode.raw.get(start..) {
                if le32(area, 0) == EXT4_XATTR_MAGIC {
                    let body = &area[4..];
                    parse_entries(body, 0, 0, &what, &mut out)?;
                }
            }
        }
        let blk = inode.file_acl();
        if blk != 0 {
            let buf = self.read_xattr_block(inode.ino, blk)?;
            parse_entries(&buf, BLOCK_HEADER, 0, &what, &mut out)?;
        }
        Ok(out)
    }

    /// Drop the inode's reference to its xattr block: free it at the next flush
    /// when this was the last one, else decrement `h_refcount`.
    pub(super) fn release_xattr_block(&mut self, inode: &Inode) -> Result<()> {
        let blk = inode.file_acl();
        if blk == 0 {
            return Ok(());
        }
        let mut buf = self.read_xattr_block(inode.ino, blk)?;
        let refs = le32(&buf, H_REFCOUNT);
        if refs <= 1 {
            self.free_blocks_later(blk, 1);
            return Ok(());
        }
        put_le32(&mut buf, H_REFCOUNT, refs - 1);
        if self.csum == super::group::CsumKind::Meta {
            put_le32(&mut buf, H_CHECKSUM, 0);
            let c = xattr_csum(self.fs_seed, blk, &buf);
            put_le32(&mut buf, H_CHECKSUM, c);
        }
        self.put_meta(blk, buf, false);
        Ok(())
    }
}

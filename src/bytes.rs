//! Fixed-width integers at named offsets of raw on-disk bytes: the one accessor
//! set of the crate (partition tables, probes, the ext engine, the undo log),
//! built on `byteorder`.
//!
//! Callers size their buffers from constants or validated geometry, so a field
//! that does not fit is a programming error or hostile data; either way these
//! never panic: a read past the end gives 0 and a write past it is dropped.

use byteorder::{BigEndian, ByteOrder, LittleEndian};

/// The `n` bytes at `off`, if they lie inside `b`.
fn field(b: &[u8], off: usize, n: usize) -> Option<&[u8]> {
    off.checked_add(n).and_then(|end| b.get(off..end))
}

/// The `n` bytes at `off` for writing, if they lie inside `b`.
fn field_mut(b: &mut [u8], off: usize, n: usize) -> Option<&mut [u8]> {
    off.checked_add(n).and_then(move |end| b.get_mut(off..end))
}

/// The byte at `off`.
pub(crate) fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// Little-endian u16 at `off`.
pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    field(b, off, 2).map_or(0, LittleEndian::read_u16)
}

/// Little-endian u32 at `off`.
pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    field(b, off, 4).map_or(0, LittleEndian::read_u32)
}

/// Little-endian u64 at `off`.
pub(crate) fn le64(b: &[u8], off: usize) -> u64 {
    field(b, off, 8).map_or(0, LittleEndian::read_u64)
}

/// Big-endian u16 at `off`.
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    field(b, off, 2).map_or(0, BigEndian::read_u16)
}

/// Big-endian u32 at `off`.
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    field(b, off, 4).map_or(0, BigEndian::read_u32)
}

/// Big-endian u64 at `off`.
pub(crate) fn be64(b: &[u8], off: usize) -> u64 {
    field(b, off, 8).map_or(0, BigEndian::read_u64)
}

/// The 16 bytes at `off` (a UUID, a GUID), zeros when they do not fit.
pub(crate) fn bytes16(b: &[u8], off: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Some(s) = field(b, off, 16) {
        out.copy_from_slice(s);
    }
    out
}

/// Write the byte `v` at `off`.
pub(crate) fn put_u8(b: &mut [u8], off: usize, v: u8) {
    if let Some(s) = b.get_mut(off) {
        *s = v;
    }
}

/// Write a little-endian u16 at `off`.
pub(crate) fn put_le16(b: &mut [u8], off: usize, v: u16) {
    if let Some(s) = field_mut(b, off, 2) {
        LittleEndian::write_u16(s, v);
    }
}

/// Write a little-endian u32 at `off`.
pub(crate) fn put_le32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = field_mut(b, off, 4) {
        LittleEndian::write_u32(s, v);
    }
}

/// The low 32 bits of a `u64` (named so that the truncation is visible).
pub(crate) fn lo32(v: u64) -> u32 {
    (v & 0xFFFF_FFFF) as u32
}

/// Bits 32..48 of a `u64`.
pub(crate) fn hi16(v: u64) -> u16 {
    ((v >> 32) & 0xFFFF) as u16
}

/// Bits 32..64 of a `u64`.
pub(crate) fn hi32(v: u64) -> u32 {
    (v >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffers_read_as_zero_without_panicking() {
        let b = [1u8, 2, 3];
        assert_eq!(le32(&b, 0), 0);
        assert_eq!(le16(&b, 1), 0x0302);
        assert_eq!(be16(&b, 1), 0x0203);
        assert_eq!(le64(&b, usize::MAX), 0);
        assert_eq!(u8_at(&b, 3), 0);
        assert_eq!(bytes16(&b, 0), [0; 16]);
    }

    #[test]
    fn writes_past_the_end_are_dropped() {
        let mut b = [0u8; 5];
        put_le32(&mut b, 1, 0x0403_0201);
        assert_eq!(b, [0, 1, 2, 3, 4]);
        put_le32(&mut b, 2, 0xFFFF_FFFF);
        put_le16(&mut b, usize::MAX - 1, 1);
        put_u8(&mut b, 9, 1);
        assert_eq!(b, [0, 1, 2, 3, 4]);
        put_le16(&mut b, 3, 0xBBAA);
        assert_eq!(le16(&b, 3), 0xBBAA);
        assert_eq!(
            (lo32(0x1_2345_6789), hi16(0xABCD_0000_0000), hi32(1 << 40)),
            (0x2345_6789, 0xABCD, 0x100)
        );
    }
}

//! Little-endian field access on raw on-disk bytes we keep and patch.
//!
//! Every read of an on-disk structure goes through these helpers with a named
//! offset. They never panic: a read past the end of the buffer gives 0 and a write
//! past it is dropped (callers size their buffers from validated geometry, so this
//! only matters for hostile data).

/// Read a `u8` at `off`.
pub fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// Read a little-endian `u16` at `off`.
pub fn u16_at(b: &[u8], off: usize) -> u16 {
    match b.get(off..off.saturating_add(2)) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// Read a little-endian `u32` at `off`.
pub fn u32_at(b: &[u8], off: usize) -> u32 {
    match b.get(off..off.saturating_add(4)) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Write a little-endian `u16` at `off`.
pub fn put_u16(b: &mut [u8], off: usize, v: u16) {
    if let Some(s) = b.get_mut(off..off.saturating_add(2)) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// Write a little-endian `u32` at `off`.
pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off.saturating_add(4)) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// The low 32 bits of a `u64` (named so that the truncation is visible).
pub fn lo32(v: u64) -> u32 {
    (v & 0xFFFF_FFFF) as u32
}

/// Bits 32..48 of a `u64`.
pub fn hi16(v: u64) -> u16 {
    ((v >> 32) & 0xFFFF) as u16
}

/// Bits 32..64 of a `u64`.
pub fn hi32(v: u64) -> u32 {
    (v >> 32) as u32
}

//! Small readers shared by the probes and the partition-table readers: optional
//! reads that treat "past the end of the device" as "not there", byte slices that
//! never panic, and the string forms blkid prints (UUIDs, labels). Integers at
//! named offsets are read with [`crate::bytes`].

use crate::disk::ReadAt;
use crate::error::Result;

/// `len` bytes of `b` at `off`, or an empty slice when they do not fit.
pub(crate) fn slice(b: &[u8], off: usize, len: usize) -> &[u8] {
    off.checked_add(len)
        .and_then(|end| b.get(off..end))
        .unwrap_or(&[])
}

/// Does `b` hold `magic` at `off`?
pub(crate) fn has(b: &[u8], off: usize, magic: &[u8]) -> bool {
    slice(b, off, magic.len()) == magic && !magic.is_empty()
}

/// Read `len` bytes at `off`, or `None` when the device is too small to hold
/// them: a device smaller than a signature's offset simply does not carry it.
/// `len` is always a constant of the caller or a value it has capped.
pub(crate) fn read_opt<D: ReadAt + ?Sized>(
    dev: &D,
    off: u64,
    len: usize,
) -> Result<Option<Vec<u8>>> {
    let fits = u64::try_from(len)
        .ok()
        .and_then(|l| off.checked_add(l))
        .is_some_and(|end| end <= dev.size());
    if !fits {
        return Ok(None);
    }
    let mut buf = vec![0u8; len];
    dev.read_exact_at(off, &mut buf)?;
    Ok(Some(buf))
}

/// A 16-byte UUID stored in byte order, as blkid prints it (lower case, dashed);
/// `None` when all zero, as blkid omits an empty UUID.
pub(crate) fn uuid_string(u: &[u8; 16]) -> Option<String> {
    if u.iter().all(|&b| b == 0) {
        return None;
    }
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
        u[14], u[15]
    ))
}

/// A GUID stored the EFI way (first three fields little-endian), lower case.
pub(crate) fn guid_string(g: &[u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

/// A fixed-size on-disk label as blkid reports it: the bytes up to the first NUL,
/// trailing white space removed; `None` when nothing is left.
pub(crate) fn label(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = String::from_utf8_lossy(raw.get(..end).unwrap_or(&[])).into_owned();
    trimmed(text)
}

/// A UTF-16LE label (GPT names, NTFS volume names): up to the first NUL, trailing
/// white space removed; `None` when nothing is left.
pub(crate) fn label_utf16le(raw: &[u8]) -> Option<String> {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    trimmed(String::from_utf16_lossy(&units))
}

fn trimmed(text: String) -> Option<String> {
    let t = text.trim_end();
    if t.is_empty() {
        None
    } else {
        Some(t.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffers_give_empty_slices_without_panicking() {
        let b = [1u8, 2, 3];
        assert!(!has(&b, usize::MAX - 1, b"ab"));
        assert_eq!(slice(&b, 2, 5), &[] as &[u8]);
    }

    #[test]
    fn labels_stop_at_nul_and_drop_trailing_blanks() {
        assert_eq!(label(b"ROOT   \0junk"), Some("ROOT".to_string()));
        assert_eq!(label(b"\0ROOT"), None);
        assert_eq!(label(b"    "), None);
        assert_eq!(label_utf16le(b"E\0F\0I\0\0\0X\0"), Some("EFI".to_string()));
    }

    #[test]
    fn guid_is_mixed_endian() {
        // EFI System partition type, as stored on disk.
        let g = [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ];
        assert_eq!(guid_string(&g), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
        assert_eq!(uuid_string(&[0; 16]), None);
    }
}

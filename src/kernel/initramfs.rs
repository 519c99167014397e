//! An initramfs as the kernel reads it: one or more cpio archives (newc,
//! `070701`/`070702`) back to back, each segment plain (the early-microcode
//! archive) or compressed ([`super::compress`]), separated by zero padding.
//! Walked once as a stream, never unpacked: every entry's name, mode and size
//! are seen and dropped, so memory stays bounded whatever the archive holds
//! (names are capped, the decompressed total is capped).

use std::io::{self, BufRead, BufReader, Read};

use serde::Serialize;

use super::compress::{self, Compression, Decoder};
use crate::error::{Error, Result};
use crate::guest::reader::from_io;

/// Longest entry name accepted (the kernel's `PATH_MAX`).
const MAX_NAME: usize = 4096;
/// Most bytes one initramfs may decompress to: far more than any domU could
/// unpack, so a larger one is a bomb or damage.
pub const MAX_UNPACKED: u64 = 4 << 30;
/// Most module names kept (their bytes); more is refused as hostile.
const MAX_MODULE_NAME_BYTES: usize = 16 << 20;

/// One cpio entry, as the walk hands it over.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Name as stored (`usr/lib/modules/…/xen-blkfront.ko`).
    pub name: &'a [u8],
    /// `st_mode`.
    pub mode: u32,
    /// Size of its data in the archive.
    pub size: u64,
}

impl Entry<'_> {
    /// A regular file (whose size counts in the unpacked total).
    pub fn is_file(&self) -> bool {
        self.mode & 0o170_000 == 0o100_000
    }
}

/// One segment of the initramfs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// Byte offset in the initramfs file.
    pub offset: u64,
    /// Its compression (`none` for the early-microcode archive).
    pub compression: Compression,
}

/// What the walk found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Segments in file order.
    pub segments: Vec<Segment>,
    /// Sum of the sizes of the regular files (what unpacking writes).
    pub unpacked_bytes: u64,
    /// Entries (all kinds, trailers excluded).
    pub entries: u64,
    /// Paths of kernel modules (`*.ko`, `*.ko.xz`, `*.ko.zst`, `*.ko.gz`).
    pub modules: Vec<String>,
    /// Whether `xen-blkfront.ko*` is among them.
    pub has_xen_blkfront: bool,
}

/// Whether `name` is a kernel module file.
pub fn is_module(name: &[u8]) -> bool {
    [&b".ko"[..], b".ko.xz", b".ko.zst", b".ko.gz"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Whether `name` is the Xen block front-end module.
pub fn is_blkfront(name: &[u8]) -> bool {
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    base.starts_with(b"xen-blkfront.ko") && is_module(base)
}

/// Walk the initramfs in `r`, calling `each` for every entry; returns the
/// summary. Damage (a truncated archive, a bad header, a corrupt compressed
/// stream) is a `Corrupt` error naming the offset.
pub fn walk(r: impl Read, mut each: impl FnMut(&Entry)) -> Result<Summary> {
    let mut outer = Counted {
        inner: BufReader::with_capacity(256 << 10, r),
        pos: 0,
    };
    let mut s = Summary {
        segments: Vec::new(),
        unpacked_bytes: 0,
        entries: 0,
        modules: Vec::new(),
        has_xen_blkfront: false,
    };
    let mut module_bytes = 0usize;
    let mut on_entry = |e: &Entry| {
        s.entries += 1;
        if e.is_file() {
            s.unpacked_bytes += e.size;
        }
        if is_module(e.name) && module_bytes < MAX_MODULE_NAME_BYTES {
            module_bytes += e.name.len();
            s.modules.push(String::from_utf8_lossy(e.name).into_owned());
        }
        s.has_xen_blkfront |= is_blkfront(e.name);
        each(e);
    };
    let mut segments = Vec::new();
    let mut total_out = 0u64;
    loop {
        skip_zeros(&mut outer).map_err(|e| from_io(e, "reading the initramfs"))?;
        let offset = outer.pos;
        let head = outer
            .fill_buf()
            .map_err(|e| from_io(e, "reading the initramfs"))?;
        if head.is_empty() {
            break;
        }
        if head.starts_with(b"0707") {
            segments.push(Segment {
                offset,
                compression: Compression::None,
            });
            archives(&mut outer, &mut on_entry, &mut total_out)
                .map_err(|e| e.context(format!("segment at offset {offset:#x}")))?;
            continue;
        }
        let head6: Vec<u8> = head.iter().take(6).copied().collect();
        let Some(kind) = compress::detect(&head6) else {
            return Err(Error::corrupt(format!(
                "initramfs: at offset {offset:#x}: neither a cpio archive nor a known compression \
                 (bytes {})",
                hex(&head6)
            )));
        };
        segments.push(Segment {
            offset,
            compression: kind,
        });
        let ctx = |e: Error| e.context(format!("{} segment at offset {offset:#x}", kind.name()));
        let limit = MAX_UNPACKED.saturating_sub(total_out);
        let dec = Decoder::new(kind, &mut outer, limit).map_err(ctx)?;
        let mut inner = Counted {
            inner: BufReader::with_capacity(256 << 10, dec),
            pos: 0,
        };
        let mut seg_out = 0u64;
        loop {
            skip_zeros(&mut inner).map_err(|e| ctx(from_io(e, "decompressing")))?;
            let more = !inner
                .fill_buf()
                .map_err(|e| ctx(from_io(e, "decompressing")))?
                .is_empty();
            if !more {
                break;
            }
            archives(&mut inner, &mut on_entry, &mut seg_out).map_err(ctx)?;
        }
        total_out += inner.inner.get_ref().decoded();
    }
    if segments.is_empty() {
        return Err(Error::corrupt("initramfs: empty (no cpio archive)"));
    }
    s.segments = segments;
    Ok(s)
}

/// The file names of the initramfs in `r`, in archive order (what
/// `lsinitramfs` lists).
pub fn list(r: impl Read) -> Result<Vec<String>> {
    let mut names = Vec::new();
    walk(r, |e| {
        names.push(String::from_utf8_lossy(e.name).into_owned())
    })?;
    Ok(names)
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `BufRead` that counts what was consumed.
struct Counted<R> {
    inner: BufReader<R>,
    pos: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.pos += n as u64;
        self.inner.consume(n);
    }
}

/// Consume zero bytes (padding between archives and segments).
fn skip_zeros(r: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        let n = buf.iter().take_while(|&&b| b == 0).count();
        let all = n == buf.len();
        r.consume(n);
        if !all {
            return Ok(());
        }
    }
}

/// Pass over `n` bytes of `r` without copying them (file data is never
/// looked at: the decoder's buffer is consumed in place); returns how many
/// there were, fewer at the end of the stream.
fn skip(r: &mut impl BufRead, n: u64) -> io::Result<u64> {
    let mut left = n;
    while left > 0 {
        let avail = match r.fill_buf() {
            Ok(b) => b.len(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail == 0 {
            break;
        }
        let take = usize::try_from(left).map_or(avail, |l| l.min(avail));
        r.consume(take);
        left -= take as u64;
    }
    Ok(n - left)
}

const HEADER: usize = 110;

fn field(h: &[u8], i: usize) -> Result<u32> {
    let s = &h[6 + i * 8..6 + i * 8 + 8];
    std::str::from_utf8(s)
        .ok()
        .and_then(|t| u32::from_str_radix(t, 16).ok())
        .ok_or_else(|| Error::corrupt(format!("cpio header field {i} is not hex ({})", hex(s))))
}

fn pad4(r: &mut impl Read, pos: u64) -> Result<()> {
    let pad = (4 - (pos % 4)) % 4;
    if pad > 0 {
        let mut b = [0u8; 3];
        read_all(r, &mut b[..pad as usize], "padding")?;
    }
    Ok(())
}

fn read_all(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::corrupt(format!("truncated: the archive ends inside a {what}"))
        } else {
            from_io(e, format!("reading a cpio {what}"))
        }
    })
}

/// cpio archives from `r` up to and including a `TRAILER!!!`, then any
/// following archive that starts right after the trailer's padding.
fn archives<R: Read>(
    r: &mut Counted<R>,
    each: &mut impl FnMut(&Entry),
    out: &mut u64,
) -> Result<()> {
    let start = r.pos;
    let mut name = Vec::new();
    let mut h = [0u8; HEADER];
    loop {
        let at = r.pos - start;
        read_all(r, &mut h, "header")?;
        if !(h.starts_with(b"070701") || h.starts_with(b"070702")) {
            return Err(Error::corrupt(format!(
                "cpio header at archive offset {at:#x}: bad magic ({}); only newc archives are \
                 read, as by the kernel",
                hex(&h[..6])
            )));
        }
        let mode = field(&h, 1)?;
        let size = u64::from(field(&h, 6)?);
        let namesize = field(&h, 11)? as usize;
        if namesize == 0 || namesize > MAX_NAME {
            return Err(Error::corrupt(format!(
                "cpio header at archive offset {at:#x}: name size {namesize} (1 to {MAX_NAME})"
            )));
        }
        name.resize(namesize, 0);
        read_all(r, &mut name, "name")?;
        pad4(r, r.pos - start)?;
        let n = &name[..namesize - 1];
        if n == b"TRAILER!!!" {
            return Ok(());
        }
        let copied = skip(r, size).map_err(|e| from_io(e, "reading cpio file data"))?;
        if copied < size {
            return Err(Error::corrupt(format!(
                "truncated: {} ends after {copied} of its {size} bytes",
                String::from_utf8_lossy(n)
            )));
        }
        pad4(r, r.pos - start)?;
        *out += size;
        each(&Entry {
            name: n,
            mode,
            size,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
        let mut v = format!(
            "070701{:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        )
        .into_bytes();
        v.extend(name.as_bytes());
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend(data);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn archive(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut v: Vec<u8> = files.iter().flat_map(|(n, m, d)| entry(n, *m, d)).collect();
        v.extend(entry("TRAILER!!!", 0, b""));
        v
    }

    #[test]
    fn plain_then_gzip_segment() {
        let early = archive(&[
            ("kernel", 0o40755, b""),
            ("kernel/x86/microcode/GenuineIntel.bin", 0o100644, b"ucode"),
        ]);
        let main = archive(&[
            (
                "usr/lib/modules/6.1/kernel/drivers/block/xen-blkfront.ko",
                0o100644,
                b"elf!!",
            ),
            ("init", 0o100755, b"#!/bin/sh\n"),
            ("bin/sh", 0o120777, b"busybox"),
        ]);
        let mut img = early.clone();
        img.resize(512, 0);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, &main).unwrap();
        img.extend(e.finish().unwrap());
        let mut names = Vec::new();
        let s = walk(&img[..], |e| {
            names.push(String::from_utf8_lossy(e.name).to_string())
        })
        .unwrap();
        assert_eq!(names.len(), 5);
        assert_eq!(s.segments.len(), 2);
        assert_eq!(s.segments[1].offset, 512);
        assert_eq!(s.segments[1].compression, Compression::Gzip);
        assert_eq!(s.unpacked_bytes, 5 + 5 + 10);
        assert!(s.has_xen_blkfront);
        assert_eq!(s.modules.len(), 1);
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let a = archive(&[("init", 0o100755, &[7u8; 1000])]);
        for cut in [1, 5, 50, 110, 115, 500, a.len() - 1] {
            let e = walk(&a[..cut], |_| {}).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "cut {cut}: {e}");
        }
        let mut bad = a.clone();
        bad[6 + 11 * 8] = b'z';
        assert!(walk(&bad[..], |_| {}).is_err());
        assert!(walk(&b"\x7fELF not an initramfs"[..], |_| {}).is_err());
        assert!(walk(&[0u8; 100][..], |_| {}).is_err());
        // A name size far beyond PATH_MAX is refused before any allocation.
        let mut huge = a.clone();
        huge[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"7fffffff");
        assert!(walk(&huge[..], |_| {})
            .unwrap_err()
            .to_string()
            .contains("name size"));
    }

    #[test]
    fn names() {
        assert!(is_blkfront(
            b"usr/lib/modules/x/kernel/drivers/block/xen-blkfront.ko.zst"
        ));
        assert!(is_blkfront(b"xen-blkfront.ko"));
        assert!(!is_blkfront(b"lib/xen-blkfront.ko.txt"));
        assert!(!is_blkfront(b"xen-blkback.ko"));
        assert!(is_module(b"a/b.ko.xz"));
    }
}

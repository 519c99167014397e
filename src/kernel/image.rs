//! A kernel image: an x86 bzImage (its setup header, read at the offsets of
//! the Linux boot protocol, `Documentation/arch/x86/boot.rst`) or an ELF
//! vmlinux. The cheap read ([`Header::read`]) takes the first 4 KiB; the deep
//! read ([`deep`]) decompresses the payload as a stream to find what the image
//! itself says about Xen: an embedded `IKCFG` config and the `Xen` ELF notes.

use std::io::{self, Read, Seek, SeekFrom};

use serde::Serialize;

use super::compress::{self, Compression, Decoder};
use super::kconfig::Config;
use crate::error::{Error, Result};
use crate::guest::reader::from_io;

/// What the image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// An x86 bzImage.
    Bzimage,
    /// An ELF file (a vmlinux).
    Elf,
    /// Neither: not a kernel domuify knows.
    Unknown,
}

/// The setup header fields domuify uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// What it is.
    pub format: Format,
    /// Boot protocol version (`0x020f` is 2.15), bzImage only.
    pub protocol: u16,
    /// The version string the image carries (`6.1.0-27-amd64 (debian-kernel@…`).
    pub version_string: Option<String>,
    /// Byte offset of the compressed payload in the file (bzImage only).
    pub payload_offset: u64,
    /// Its length.
    pub payload_length: u64,
    /// Its compression, by its magic.
    pub compression: Option<Compression>,
}

// Setup header offsets (boot.rst).
const SETUP_SECTS: usize = 0x1f1;
const BOOT_FLAG: usize = 0x1fe;
const HEADER_MAGIC: usize = 0x202;
const VERSION: usize = 0x206;
const KERNEL_VERSION: usize = 0x20e;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl Header {
    /// Read the header of the image in `r` (from its start).
    pub fn read(r: &mut (impl Read + Seek)) -> Result<Header> {
        let io_err = |e| from_io(e, "reading the kernel image");
        r.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let mut b = vec![0u8; 0x1000];
        let n = read_up_to(r, &mut b).map_err(io_err)?;
        b.truncate(n);
        let mut h = Header {
            format: Format::Unknown,
            protocol: 0,
            version_string: None,
            payload_offset: 0,
            payload_length: 0,
            compression: None,
        };
        if b.starts_with(b"\x7fELF") {
            h.format = Format::Elf;
            return Ok(h);
        }
        if b.len() < 0x250
            || u16_at(&b, BOOT_FLAG) != 0xAA55
            || &b[HEADER_MAGIC..HEADER_MAGIC + 4] != b"HdrS"
        {
            return Ok(h);
        }
        h.format = Format::Bzimage;
        h.protocol = u16_at(&b, VERSION);
        let setup_sects = match b[SETUP_SECTS] {
            0 => 4,
            s => u64::from(s),
        };
        let kv = usize::from(u16_at(&b, KERNEL_VERSION)) + 0x200;
        if u16_at(&b, KERNEL_VERSION) != 0 && kv < b.len() {
            let s = &b[kv..b.len().min(kv + 256)];
            let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
            h.version_string = Some(String::from_utf8_lossy(&s[..end]).into_owned());
        }
        if h.protocol >= 0x0208 {
            h.payload_offset = (setup_sects + 1) * 512 + u64::from(u32_at(&b, PAYLOAD_OFFSET));
            h.payload_length = u64::from(u32_at(&b, PAYLOAD_LENGTH));
            let mut magic = [0u8; 6];
            r.seek(SeekFrom::Start(h.payload_offset)).map_err(io_err)?;
            let n = read_up_to(r, &mut magic).map_err(io_err)?;
            h.compression = compress::detect(&magic[..n]);
        }
        Ok(h)
    }

    /// The first word of the version string (`6.1.0-27-amd64`).
    pub fn release(&self) -> Option<&str> {
        self.version_string.as_deref()?.split_whitespace().next()
    }
}

/// What the image itself says about Xen (the deep read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Embedded {
    /// The config embedded with `CONFIG_IKCONFIG` (`IKCFG_ST` + gzip).
    pub config: Option<Config>,
    /// The Xen ELF notes found (types: 1 entry, 2 hypercall page, 18 PVH entry).
    pub xen_notes: Vec<u32>,
    /// Whether the vmlinux was an ELF whose notes could be read.
    pub elf: bool,
}

/// `XEN_ELFNOTE_ENTRY`: the PV entry point.
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// `XEN_ELFNOTE_HYPERCALL_PAGE`.
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the PVH entry point.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// Most a decompressed vmlinux may be.
const MAX_VMLINUX: u64 = 512 << 20;
/// Most bytes kept of the note segments and of the compressed IKCFG.
const MAX_KEEP: usize = 1 << 20;

/// Decompress the payload (bzImage) or read the ELF (vmlinux) as a stream and
/// collect the embedded config and the Xen notes. Bounded memory.
pub fn deep(r: &mut (impl Read + Seek), h: &Header) -> Result<Embedded> {
    let io_err = |e| from_io(e, "reading the kernel image");
    match h.format {
        Format::Unknown => Ok(Embedded::default()),
        Format::Elf => {
            r.seek(SeekFrom::Start(0)).map_err(io_err)?;
            scan(&mut io::BufReader::new(r.take(MAX_VMLINUX)))
        }
        Format::Bzimage => {
            let Some(c) = h.compression else {
                return Ok(Embedded::default());
            };
            r.seek(SeekFrom::Start(h.payload_offset)).map_err(io_err)?;
            let limited = io::BufReader::new(r.take(h.payload_length));
            let dec = Decoder::new(c, limited, MAX_VMLINUX)?;
            scan(&mut io::BufReader::with_capacity(256 << 10, dec))
        }
    }
}

/// One pass over a vmlinux stream.
fn scan(r: &mut impl Read) -> Result<Embedded> {
    let io_err = |e| from_io(e, "decompressing the kernel");
    let mut out = Embedded::default();
    let mut head = vec![0u8; 64];
    let n = read_up_to(r, &mut head).map_err(io_err)?;
    head.truncate(n);
    // Note segments wanted: (file offset, size).
    let mut wanted: Vec<(u64, usize)> = Vec::new();
    let mut pos = n as u64;
    let mut window: Vec<u8> = head.clone();
    if head.len() == 64 && head.starts_with(b"\x7fELF") {
        let is64 = head[4] == 2;
        let (phoff, phentsize, phnum) = if is64 {
            (
                u64::from_le_bytes(head[0x20..0x28].try_into().unwrap_or_default()),
                usize::from(u16_at(&head, 0x36)),
                usize::from(u16_at(&head, 0x38)),
            )
        } else {
            (
                u64::from(u32_at(&head, 0x1c)),
                usize::from(u16_at(&head, 0x2a)),
                usize::from(u16_at(&head, 0x2c)),
            )
        };
        let table = phentsize.saturating_mul(phnum);
        if phoff >= pos && phoff < 1 << 20 && table <= 64 << 10 && phentsize >= 32 {
            let mut skip = vec![0u8; (phoff - pos) as usize];
            r.read_exact(&mut skip).map_err(io_err)?;
            let mut ph = vec![0u8; table];
            r.read_exact(&mut ph).map_err(io_err)?;
            pos = phoff + table as u64;
            out.elf = true;
            for e in ph.chunks_exact(phentsize) {
                const PT_NOTE: u32 = 4;
                if u32_at(e, 0) != PT_NOTE {
                    continue;
                }
                let (off, size) = if is64 && e.len() >= 0x28 {
                    (
                        u64::from_le_bytes(e[8..16].try_into().unwrap_or_default()),
                        u64::from_le_bytes(e[0x20..0x28].try_into().unwrap_or_default()),
                    )
                } else {
                    (u64::from(u32_at(e, 4)), u64::from(u32_at(e, 16)))
                };
                if size as usize <= MAX_KEEP && off >= pos {
                    wanted.push((off, size as usize));
                }
            }
            wanted.sort();
            window.clear();
        }
    }
    // Stream the rest: capture the note segments, look for IKCFG_ST + gzip.
    const MARK: &[u8] = b"IKCFG_ST\x1f\x8b";
    let mut chunk = vec![0u8; 256 << 10];
    let mut ikcfg: Option<Vec<u8>> = None;
    let mut notes: Vec<(u64, Vec<u8>)> = wanted
        .iter()
        .map(|&(o, s)| (o, Vec::with_capacity(s)))
        .collect();
    let wanted_sizes: Vec<usize> = wanted.iter().map(|w| w.1).collect();
    loop {
        let got = read_up_to(r, &mut chunk).map_err(io_err)?;
        if got == 0 {
            break;
        }
        let data = &chunk[..got];
        let start = pos;
        pos += got as u64;
        for (i, (off, buf)) in notes.iter_mut().enumerate() {
            let lo = (*off).max(start);
            let hi = (*off + wanted_sizes[i] as u64).min(pos);
            if lo < hi {
                buf.extend_from_slice(&data[(lo - start) as usize..(hi - start) as usize]);
            }
        }
        match &mut ikcfg {
            Some(k) if k.len() < MAX_KEEP => {
                k.extend_from_slice(&data[..data.len().min(MAX_KEEP - k.len())])
            }
            Some(_) => {}
            None => {
                // Search the tail of the last chunk plus this one.
                let keep = window.len().min(MARK.len());
                let mut look = window[window.len() - keep..].to_vec();
                look.extend_from_slice(data);
                if let Some(p) = look.windows(MARK.len()).position(|w| w == MARK) {
                    let mut k = look[p + 8..].to_vec();
                    k.truncate(MAX_KEEP);
                    ikcfg = Some(k);
                }
                window = look;
                if window.len() > 64 {
                    window.drain(..window.len() - 64);
                }
            }
        }
        if ikcfg.as_ref().is_some_and(|k| k.len() >= MAX_KEEP)
            && notes
                .iter()
                .enumerate()
                .all(|(i, (_, b))| b.len() >= wanted_sizes[i])
        {
            break;
        }
    }
    if let Some(k) = ikcfg {
        let mut text = String::new();
        let mut d = flate2::read::GzDecoder::new(&k[..]).take(8 << 20);
        if d.read_to_string(&mut text).is_ok() {
            let c = Config::parse(&text);
            if !c.is_empty() {
                out.config = Some(c);
            }
        }
    }
    for (_, seg) in &notes {
        out.xen_notes.extend(xen_notes(seg));
    }
    Ok(out)
}

/// The types of the `Xen` notes in a PT_NOTE segment.
pub fn xen_notes(seg: &[u8]) -> Vec<u32> {
    let mut types = Vec::new();
    let mut at = 0usize;
    let align = |n: usize| n.div_ceil(4) * 4;
    while at + 12 <= seg.len() {
        let namesz = u32_at(seg, at) as usize;
        let descsz = u32_at(seg, at + 4) as usize;
        let kind = u32_at(seg, at + 8);
        let name_at = at + 12;
        let Some(next) = name_at
            .checked_add(align(namesz))
            .and_then(|n| n.checked_add(align(descsz)))
        else {
            break;
        };
        if name_at + namesz > seg.len() {
            break;
        }
        if &seg[name_at..name_at + namesz] == b"Xen\0" {
            types.push(kind);
        }
        at = next;
    }
    types
}

/// An error for a file that is no kernel.
pub fn not_a_kernel() -> Error {
    Error::unsupported("not a Linux kernel image: neither a bzImage (no HdrS setup header) nor ELF")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn bzimage(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 5 * 512];
        b[SETUP_SECTS] = 4;
        b[BOOT_FLAG..BOOT_FLAG + 2].copy_from_slice(&0xAA55u16.to_le_bytes());
        b[HEADER_MAGIC..HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
        b[VERSION..VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        b[KERNEL_VERSION..KERNEL_VERSION + 2].copy_from_slice(&0x300u16.to_le_bytes());
        b[0x500..0x500 + 20].copy_from_slice(b"6.1.0-9-amd64 (x) #1");
        b[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&0x10u32.to_le_bytes());
        b[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4]
            .copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend([0u8; 0x10]);
        b.extend(payload);
        b.extend([0u8; 100]);
        b
    }

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((name.len() as u32).to_le_bytes());
        v.extend((desc.len() as u32).to_le_bytes());
        v.extend(kind.to_le_bytes());
        v.extend(name);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    /// A minimal ELF64 with one PT_NOTE segment, then an IKCFG blob.
    fn vmlinux(config: &str) -> Vec<u8> {
        let mut notes = note(b"GNU\0", 3, b"buildid!");
        notes.extend(note(b"Xen\0", XEN_ELFNOTE_ENTRY, &[0; 8]));
        notes.extend(note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &[0; 4]));
        let mut e = vec![0u8; 64];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&4u32.to_le_bytes());
        ph[8..16].copy_from_slice(&0x1000u64.to_le_bytes());
        ph[0x20..0x28].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        e.extend(ph);
        e.resize(0x1000, 0xcc);
        e.extend(&notes);
        e.resize(0x30000, 0x90);
        e.extend(b"IKCFG_ST");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, config.as_bytes()).unwrap();
        e.extend(gz.finish().unwrap());
        e.extend(b"IKCFG_ED");
        e.resize(e.len() + 0x50000, 0x90);
        e
    }

    #[test]
    fn bzimage_header_and_payload() {
        let v = vmlinux("CONFIG_XEN_PV=y\nCONFIG_XEN_PVH=y\n");
        let payload = zstd::encode_all(&v[..], 3).unwrap();
        let img = bzimage(&payload);
        let h = Header::read(&mut Cursor::new(&img)).unwrap();
        assert_eq!(h.format, Format::Bzimage);
        assert_eq!(h.protocol, 0x020f);
        assert_eq!(h.release(), Some("6.1.0-9-amd64"));
        assert_eq!(h.payload_offset, 5 * 512 + 0x10);
        assert_eq!(h.compression, Some(Compression::Zstd));
        let d = deep(&mut Cursor::new(&img), &h).unwrap();
        assert!(d.elf);
        assert_eq!(
            d.xen_notes,
            vec![XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_PHYS32_ENTRY]
        );
        let c = d.config.unwrap();
        assert_eq!(
            c.tristate("CONFIG_XEN_PVH"),
            super::super::kconfig::Tristate::BuiltIn
        );
    }

    #[test]
    fn not_a_kernel_and_damage() {
        for junk in [&b""[..], b"hello", &[0u8; 4096][..]] {
            let h = Header::read(&mut Cursor::new(junk)).unwrap();
            assert_eq!(h.format, Format::Unknown);
        }
        let v = vmlinux("CONFIG_XEN_PV=y\n");
        let payload = zstd::encode_all(&v[..], 3).unwrap();
        let mut img = bzimage(&payload);
        // A corrupt payload: an error, not a panic.
        let at = 5 * 512 + 0x10 + 40;
        for b in &mut img[at..at + 200] {
            *b ^= 0x5a;
        }
        let h = Header::read(&mut Cursor::new(&img)).unwrap();
        assert!(deep(&mut Cursor::new(&img), &h).is_err());
        // A truncated image: header read, deep read fails cleanly.
        let cut = &bzimage(&payload)[..5 * 512 + 100];
        let h = Header::read(&mut Cursor::new(cut)).unwrap();
        assert_eq!(h.format, Format::Bzimage);
        assert!(deep(&mut Cursor::new(cut), &h).is_err());
    }

    #[test]
    fn notes_of_hostile_sizes() {
        let mut seg = note(b"Xen\0", 1, &[0; 8]);
        seg.extend(0xffff_fff0u32.to_le_bytes());
        seg.extend(0xffff_fff0u32.to_le_bytes());
        seg.extend(2u32.to_le_bytes());
        assert_eq!(xen_notes(&seg), vec![1]);
    }
}

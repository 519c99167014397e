//! The compressions a kernel payload or an initramfs segment may use, told by
//! their magic bytes, and streaming decoders for them with bounded memory
//! (well-kept crates: flate2, bzip2, xz2, zstd, lz4_flex, lzo; the lz4
//! "legacy" framing the kernel uses is a few lines around lz4_flex's block
//! decoder, the lzop framing a few lines around lzo's).

use std::io::{self, BufRead, Read};

use serde::Serialize;

use crate::error::{Error, Result};

/// A compression format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// bzip2 (`BZh`).
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// legacy lzma ("lzma alone", `5d 00 00`).
    Lzma,
    /// lzop (`89 4c 5a 4f`).
    Lzo,
    /// lz4 legacy frame (`02 21 4c 18`), what the kernel's `lz4 -l` writes.
    Lz4,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// Its name as the JSON and the messages write it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Lzma => "lzma",
            Compression::Lzo => "lzo",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;

/// The compression whose magic `head` starts with (at least 6 bytes to tell
/// all of them apart).
pub fn detect(head: &[u8]) -> Option<Compression> {
    let c = if head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x1f, 0x9e]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else if head.starts_with(&[0x5d, 0, 0]) {
        Compression::Lzma
    } else if head.starts_with(&[0x89, b'L', b'Z', b'O']) {
        Compression::Lzo
    } else if head.starts_with(&LZ4_LEGACY_MAGIC.to_le_bytes()) {
        Compression::Lz4
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        return None;
    };
    Some(c)
}

/// Most memory a decoder may ask for (xz/lzma dictionaries, zstd windows):
/// `xz -9` needs 64 MiB, zstd's default largest window is 128 MiB.
const DECODER_MEMLIMIT: u64 = 128 << 20;
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// One stream of `kind` read from `r`, which is left just past its end (the
/// decoders read through `BufRead` and never take more than they use).
enum One<B: BufRead> {
    Gzip(flate2::bufread::GzDecoder<B>),
    Bzip2(bzip2::bufread::BzDecoder<B>),
    Xz(XzRaw<B>),
    Zstd(zstd::stream::read::Decoder<'static, B>),
    Lz4(Lz4Legacy<B>),
    Lzo(Lzop<B>),
}

impl<B: BufRead> One<B> {
    fn new(kind: Compression, r: B) -> Result<One<B>> {
        let lzma_err = |e: xz2::stream::Error| Error::unsupported(format!("lzma decoder: {e}"));
        Ok(match kind {
            Compression::Gzip => One::Gzip(flate2::bufread::GzDecoder::new(r)),
            Compression::Bzip2 => One::Bzip2(bzip2::bufread::BzDecoder::new(r)),
            Compression::Xz => One::Xz(XzRaw {
                inner: r,
                stream: xz2::stream::Stream::new_stream_decoder(DECODER_MEMLIMIT, 0)
                    .map_err(lzma_err)?,
                done: false,
            }),
            Compression::Lzma => One::Xz(XzRaw {
                inner: r,
                stream: xz2::stream::Stream::new_lzma_decoder(DECODER_MEMLIMIT)
                    .map_err(lzma_err)?,
                done: false,
            }),
            Compression::Zstd => {
                let mut d = zstd::stream::read::Decoder::with_buffer(r)
                    .map_err(|e| Error::io("zstd decoder", e))?
                    .single_frame();
                d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(|e| Error::io("zstd decoder", e))?;
                One::Zstd(d)
            }
            Compression::Lz4 => One::Lz4(Lz4Legacy::new(r)),
            Compression::Lzo => One::Lzo(Lzop::new(r)),
            Compression::None => unreachable!("no decoder for uncompressed data"),
        })
    }

    fn into_inner(self) -> B {
        match self {
            One::Gzip(d) => d.into_inner(),
            One::Bzip2(d) => d.into_inner(),
            One::Xz(d) => d.inner,
            One::Zstd(d) => d.finish(),
            One::Lz4(d) => d.inner,
            One::Lzo(d) => d.inner,
        }
    }
}

impl<B: BufRead> Read for One<B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            One::Gzip(d) => d.read(buf),
            One::Bzip2(d) => d.read(buf),
            One::Xz(d) => d.read(buf),
            One::Zstd(d) => d.read(buf),
            One::Lz4(d) => d.read(buf),
            One::Lzo(d) => d.read(buf),
        }
    }
}

/// One xz or lzma stream over liblzma's raw API, which (unlike xz2's reader)
/// stops at the stream's end and leaves what follows (the size a bzImage
/// payload ends with, the next initramfs segment) unread.
struct XzRaw<B> {
    inner: B,
    stream: xz2::stream::Stream,
    done: bool,
}

impl<B: BufRead> Read for XzRaw<B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use xz2::stream::{Action, Status};
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        loop {
            let input = self.inner.fill_buf()?;
            let eof = input.is_empty();
            let (in0, out0) = (self.stream.total_in(), self.stream.total_out());
            let action = if eof { Action::Finish } else { Action::Run };
            let status = self
                .stream
                .process(input, buf, action)
                .map_err(|e| io::Error::from(Error::corrupt(format!("xz/lzma data: {e}"))))?;
            let consumed = (self.stream.total_in() - in0) as usize;
            let made = (self.stream.total_out() - out0) as usize;
            self.inner.consume(consumed);
            if status == Status::StreamEnd {
                self.done = true;
                return Ok(made);
            }
            if made > 0 {
                return Ok(made);
            }
            if eof {
                return Err(io::Error::from(Error::corrupt(
                    "truncated: the xz/lzma data ends before its stream does",
                )));
            }
            if consumed == 0 {
                return Err(io::Error::from(Error::corrupt("xz/lzma data: no progress")));
            }
        }
    }
}

/// A decompressed stream: one or more streams of the same compression back to
/// back (gzip members, zstd frames), as the kernel reads them, never more than
/// `limit` bytes out.
pub struct Decoder<B: BufRead> {
    kind: Compression,
    cur: Option<One<B>>,
    out: u64,
    limit: u64,
}

impl<B: BufRead> Decoder<B> {
    /// Decode `r`, which starts with the magic of `kind`.
    pub fn new(kind: Compression, r: B, limit: u64) -> Result<Decoder<B>> {
        Ok(Decoder {
            kind,
            cur: Some(One::new(kind, r)?),
            out: 0,
            limit,
        })
    }

    /// Bytes decoded so far.
    pub fn decoded(&self) -> u64 {
        self.out
    }

    /// A decoder's end-of-input error ("incomplete frame", "unexpected end of
    /// file") said as what it is: the data was cut.
    fn truncated(&self, e: io::Error) -> io::Error {
        if e.kind() == io::ErrorKind::UnexpectedEof && !e.get_ref().is_some_and(|i| i.is::<Error>())
        {
            io::Error::from(Error::corrupt(format!(
                "truncated: the {} data ends before its stream does ({e})",
                self.kind.name()
            )))
        } else {
            e
        }
    }
}

impl<B: BufRead> Read for Decoder<B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(cur) = self.cur.as_mut() else {
                return Ok(0);
            };
            let n = cur.read(buf).map_err(|e| self.truncated(e))?;
            if n > 0 || buf.is_empty() {
                self.out += n as u64;
                if self.out > self.limit {
                    return Err(Error::corrupt(format!(
                        "{} data decompresses to more than {} MiB: refused (a decompression bomb?)",
                        self.kind.name(),
                        self.limit >> 20
                    ))
                    .into());
                }
                return Ok(n);
            }
            // End of one stream: another of the same kind may follow.
            // OK to unwrap: `cur` was Some just above.
            let mut inner = self.cur.take().unwrap().into_inner();
            let head = inner.fill_buf()?;
            if detect(head) == Some(self.kind) && self.kind != Compression::Lz4 {
                self.cur = Some(One::new(self.kind, inner).map_err(io::Error::from)?);
            } else {
                return Ok(0);
            }
        }
    }
}

/// The lz4 legacy format: a magic, then blocks of at most 8 MiB each preceded
/// by their compressed length; it ends at the end of the input or at a length
/// no block can have (the padding or the next archive after it).
struct Lz4Legacy<B> {
    inner: B,
    started: bool,
    block: Vec<u8>,
    input: Vec<u8>,
    at: usize,
}

const LZ4_BLOCK: usize = 8 << 20;
/// `LZ4_compressBound(8 MiB)`.
const LZ4_MAX_COMPRESSED: usize = LZ4_BLOCK + LZ4_BLOCK / 255 + 16;

impl<B: BufRead> Lz4Legacy<B> {
    fn new(inner: B) -> Self {
        Lz4Legacy {
            inner,
            started: false,
            block: Vec::new(),
            input: Vec::new(),
            at: 0,
        }
    }

    /// The next 4 bytes without taking them, `None` at the end.
    fn peek_u32(&mut self) -> io::Result<Option<u32>> {
        let head = self.inner.fill_buf()?;
        if head.len() >= 4 {
            // OK to unwrap: 4 bytes.
            return Ok(Some(u32::from_le_bytes(head[..4].try_into().unwrap())));
        }
        if head.is_empty() {
            return Ok(None);
        }
        // Fewer than 4 bytes buffered: gather them (rare, at a buffer edge).
        let mut b = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let h = self.inner.fill_buf()?;
            if h.is_empty() {
                return Ok(None);
            }
            let n = h.len().min(4 - got);
            b[got..got + n].copy_from_slice(&h[..n]);
            self.inner.consume(n);
            got += n;
        }
        // Put back is impossible: treat a cut length as the end of the data.
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "lz4 stream cut inside a block length",
        ))
    }
}

impl<B: BufRead> Read for Lz4Legacy<B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.block.len() {
            if !self.started {
                // The magic (checked by the caller that chose this decoder);
                // a stream cut inside it is truncated, not a panic.
                let mut magic = [0u8; 4];
                self.inner.read_exact(&mut magic).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "lz4 stream truncated inside its magic",
                    )
                })?;
                self.started = true;
            }
            let len = loop {
                match self.peek_u32()? {
                    None => return Ok(0),
                    Some(LZ4_LEGACY_MAGIC) => self.inner.consume(4),
                    Some(n) if n == 0 || n as usize > LZ4_MAX_COMPRESSED => return Ok(0),
                    Some(n) => {
                        self.inner.consume(4);
                        break n as usize;
                    }
                }
            };
            self.input.resize(len, 0);
            self.inner.read_exact(&mut self.input)?;
            self.block.resize(LZ4_BLOCK, 0);
            let n =
                lz4_flex::block::decompress_into(&self.input, &mut self.block).map_err(|e| {
                    io::Error::from(Error::corrupt(format!("lz4 block of {len} bytes: {e}")))
                })?;
            self.block.truncate(n);
            self.at = 0;
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The lzop format, as the kernel's `unlzo` reads it (a bzImage payload of
/// `CONFIG_KERNEL_LZO`, an initramfs segment of `CONFIG_RD_LZO`): a header
/// (magic, versions, method, flags, mode, times, name, header checksum), then
/// blocks of at most 256 KiB, each led by its decompressed and compressed
/// lengths (big-endian) and the checksums the flags ask for, stored as is when
/// the two lengths are equal; a zero length ends it. Like the kernel, the
/// checksums are skipped, not verified: a block must decode to exactly its
/// stated length.
struct Lzop<B> {
    inner: B,
    /// The header's flags, once read.
    flags: Option<u32>,
    done: bool,
    block: Vec<u8>,
    input: Vec<u8>,
    at: usize,
}

const LZOP_MAGIC: [u8; 9] = [0x89, b'L', b'Z', b'O', 0, b'\r', b'\n', 0x1a, b'\n'];
/// The largest block the kernel's `unlzo` takes (`LZO_BLOCK_SIZE`); lzop writes
/// 256 KiB blocks.
const LZO_BLOCK: usize = 256 << 10;
/// Header flags (lzop's `F_*`).
const F_ADLER32_D: u32 = 0x0001;
const F_ADLER32_C: u32 = 0x0002;
const F_H_EXTRA_FIELD: u32 = 0x0040;
const F_CRC32_D: u32 = 0x0100;
const F_CRC32_C: u32 = 0x0200;
const F_H_FILTER: u32 = 0x0800;
/// The flags lzop defines (`F_MASK`, the OS and character-set fields); a
/// reserved bit set is refused rather than misread, as lzop does.
const F_KNOWN: u32 = 0x0000_3fff | 0xfff0_0000;
/// lzop's methods that are LZO1X (`M_LZO1X_1`, `M_LZO1X_1_15`, `M_LZO1X_999`).
const LZOP_METHODS: [u8; 3] = [1, 2, 3];

impl<B: BufRead> Lzop<B> {
    fn new(inner: B) -> Self {
        Lzop {
            inner,
            flags: None,
            done: false,
            block: Vec::new(),
            input: Vec::new(),
            at: 0,
        }
    }

    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b).map_err(truncated_lzo)?;
        Ok(b)
    }

    fn be16(&mut self) -> io::Result<u16> {
        Ok(u16::from_be_bytes(self.bytes()?))
    }

    fn be32(&mut self) -> io::Result<u32> {
        Ok(u32::from_be_bytes(self.bytes()?))
    }

    /// Pass over `n` bytes (a name, a checksum).
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let got = io::copy(&mut self.inner.by_ref().take(n), &mut io::sink())?;
        if got < n {
            return Err(truncated_lzo(io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    /// The header, up to its checksum (and its extra field); returns the flags.
    fn header(&mut self) -> io::Result<u32> {
        if self.bytes::<9>()? != LZOP_MAGIC {
            return Err(corrupt_lzo("no lzop magic".into()));
        }
        let version = self.be16()?;
        let _lib_version = self.be16()?;
        if version >= 0x0940 {
            let _version_needed = self.be16()?;
        }
        let [method] = self.bytes()?;
        if !LZOP_METHODS.contains(&method) {
            return Err(corrupt_lzo(format!(
                "method {method}: not LZO1X (1 to 3), which is all the kernel decodes"
            )));
        }
        if version >= 0x0940 {
            let _level: [u8; 1] = self.bytes()?;
        }
        let flags = self.be32()?;
        if flags & !F_KNOWN != 0 {
            return Err(corrupt_lzo(format!("unknown header flags {flags:#x}")));
        }
        if flags & F_H_FILTER != 0 {
            let _filter = self.be32()?;
        }
        let _mode = self.be32()?;
        let _mtime_low = self.be32()?;
        if version >= 0x0940 {
            let _mtime_high = self.be32()?;
        }
        let [name_len] = self.bytes()?;
        self.skip(u64::from(name_len) + 4)?; // the name, the header checksum
        if flags & F_H_EXTRA_FIELD != 0 {
            let len = self.be32()?;
            self.skip(u64::from(len) + 4)?;
        }
        Ok(flags)
    }

    /// The next block into `self.block`; `false` at the end of the stream.
    fn next_block(&mut self, flags: u32) -> io::Result<bool> {
        let dst_len = self.be32()? as usize;
        if dst_len == 0 {
            return Ok(false);
        }
        if dst_len > LZO_BLOCK {
            return Err(corrupt_lzo(format!(
                "a block of {dst_len} bytes: the kernel reads blocks of at most {LZO_BLOCK}"
            )));
        }
        let src_len = self.be32()? as usize;
        if src_len == 0 || src_len > dst_len {
            return Err(corrupt_lzo(format!(
                "a block of {src_len} bytes that decompresses to {dst_len}"
            )));
        }
        let sums = |a: u32, c: u32| u64::from(flags & a != 0) * 4 + u64::from(flags & c != 0) * 4;
        self.skip(sums(F_ADLER32_D, F_CRC32_D))?;
        if src_len < dst_len {
            self.skip(sums(F_ADLER32_C, F_CRC32_C))?;
        }
        self.input.resize(src_len, 0);
        self.inner
            .read_exact(&mut self.input)
            .map_err(truncated_lzo)?;
        if src_len == dst_len {
            std::mem::swap(&mut self.block, &mut self.input);
        } else {
            self.block.resize(dst_len, 0);
            let n = lzo::decompress_into(&self.input, &mut self.block)
                .map_err(|e| corrupt_lzo(format!("a block of {src_len} bytes: {e}")))?;
            if n != dst_len {
                return Err(corrupt_lzo(format!(
                    "a block decompresses to {n} bytes, its header says {dst_len}"
                )));
            }
        }
        self.at = 0;
        Ok(true)
    }
}

fn corrupt_lzo(what: String) -> io::Error {
    io::Error::from(Error::corrupt(format!("lzo data: {what}")))
}

fn truncated_lzo(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::from(Error::corrupt(
            "truncated: the lzo data ends before its stream does",
        ))
    } else {
        e
    }
}

impl<B: BufRead> Read for Lzop<B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            let flags = match self.flags {
                Some(f) => f,
                None => {
                    let f = self.header()?;
                    self.flags = Some(f);
                    f
                }
            };
            if !self.next_block(flags)? {
                self.done = true;
                self.block.clear();
                self.at = 0;
            }
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn magics() {
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0, 0, 0]), Some(Compression::Gzip));
        assert_eq!(detect(b"BZh91AY"), Some(Compression::Bzip2));
        assert_eq!(
            detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Some(Compression::Xz)
        );
        assert_eq!(detect(&[0x5d, 0, 0, 0x80, 0]), Some(Compression::Lzma));
        assert_eq!(detect(&[0x02, 0x21, 0x4c, 0x18]), Some(Compression::Lz4));
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Some(Compression::Zstd));
        assert_eq!(detect(b"\x89LZO\0"), Some(Compression::Lzo));
        assert_eq!(detect(b"070701"), None);
        assert_eq!(detect(b""), None);
    }

    #[test]
    fn gzip_members_back_to_back_and_the_rest_left() {
        let mut data = Vec::new();
        for part in [&b"hello "[..], b"world"] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            data.extend(e.finish().unwrap());
        }
        data.extend_from_slice(b"070701rest");
        let mut r = &data[..];
        let mut out = String::new();
        Decoder::new(Compression::Gzip, &mut r, 1 << 20)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello world");
        assert_eq!(r, b"070701rest");
    }

    #[test]
    fn a_cut_stream_is_said_truncated_by_every_decoder() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&text).unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&text).unwrap();
        let streams = [
            (Compression::Gzip, gz.finish().unwrap()),
            (Compression::Bzip2, bz.finish().unwrap()),
            (Compression::Xz, xz.finish().unwrap()),
            (Compression::Zstd, zstd::encode_all(&text[..], 3).unwrap()),
        ];
        for (kind, packed) in streams {
            let cut = &packed[..packed.len() / 2];
            let mut d = Decoder::new(kind, cut, 1 << 30).unwrap();
            let e = io::copy(&mut d, &mut io::sink()).unwrap_err();
            let e = crate::guest::reader::from_io(e, "test");
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{kind:?}: {e}");
            assert!(e.to_string().contains("truncated"), "{kind:?}: {e}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        /// Bytes changed anywhere in a stream of any compression, and the
        /// stream cut anywhere: some bytes or an error, never a panic, never
        /// more than the limit.
        #[test]
        fn damaged_streams_never_panic(
            which in 0usize..6,
            flips in proptest::collection::vec((0.0f64..1.0, proptest::num::u8::ANY), 1..8),
            keep in 0.0f64..=1.0,
        ) {
            let text: Vec<u8> = (0..20_000u32).flat_map(|i| (i % 97).to_le_bytes()).collect();
            let (kind, mut data) = match which {
                0 => {
                    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    e.write_all(&text).unwrap();
                    (Compression::Gzip, e.finish().unwrap())
                }
                1 => (Compression::Zstd, zstd::encode_all(&text[..], 3).unwrap()),
                2 => {
                    let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
                    e.write_all(&text).unwrap();
                    (Compression::Xz, e.finish().unwrap())
                }
                3 => {
                    let mut v = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
                    let c = lz4_flex::block::compress(&text);
                    v.extend((c.len() as u32).to_le_bytes());
                    v.extend(c);
                    (Compression::Lz4, v)
                }
                4 => {
                    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                    e.write_all(&text).unwrap();
                    (Compression::Bzip2, e.finish().unwrap())
                }
                _ => (Compression::Lzo, lzop(&[(12, &ABCD_X3), (5, b"hello"), (12, &ABCD_X3)])),
            };
            for (at, b) in flips {
                let i = ((data.len() - 1) as f64 * at) as usize;
                data[i] = b;
            }
            data.truncate((data.len() as f64 * keep) as usize);
            let limit = 1 << 20;
            let mut d = Decoder::new(kind, &data[..], limit).unwrap();
            let mut out = 0u64;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match d.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out += n as u64,
                }
            }
            proptest::prop_assert!(out <= limit);
        }
    }

    #[test]
    fn a_bomb_is_cut_at_the_limit() {
        let zeros = vec![0u8; 4 << 20];
        let packed = zstd::encode_all(&zeros[..], 3).unwrap();
        let mut d = Decoder::new(Compression::Zstd, &packed[..], 1 << 20).unwrap();
        let e = io::copy(&mut d, &mut io::sink()).unwrap_err();
        assert!(e.to_string().contains("more than 1 MiB"), "{e}");
    }

    /// An lzop stream as lzop 1.04 writes it (adler32 of each block's data),
    /// its checksums left zero: the reader skips them, as the kernel does.
    fn lzop(blocks: &[(usize, &[u8])]) -> Vec<u8> {
        let mut v = LZOP_MAGIC.to_vec();
        v.extend(0x1040u16.to_be_bytes()); // version
        v.extend(0x2080u16.to_be_bytes()); // library version
        v.extend(0x0940u16.to_be_bytes()); // version needed
        v.extend([1, 5]); // method LZO1X_1, level
        v.extend((F_ADLER32_D | 0x0300_0000).to_be_bytes()); // flags, OS Unix
        v.extend(0o100_644u32.to_be_bytes()); // mode
        v.extend([0u8; 8]); // mtime low, high
        v.push(3);
        v.extend(b"abc");
        v.extend([0u8; 4]); // header checksum
        for (dst_len, data) in blocks {
            v.extend((*dst_len as u32).to_be_bytes());
            v.extend((data.len() as u32).to_be_bytes());
            v.extend([0u8; 4]); // adler32 of the decompressed data
            v.extend(*data);
        }
        v.extend(0u32.to_be_bytes());
        v
    }

    /// An LZO1X block: the literals `abcd`, a match 4 back of 8 bytes, the end.
    const ABCD_X3: [u8; 10] = [21, b'a', b'b', b'c', b'd', 0xec, 0, 17, 0, 0];

    #[test]
    fn lzop_blocks_stored_and_compressed_and_streams_back_to_back() {
        let mut data = lzop(&[(12, &ABCD_X3), (5, b"hello")]);
        data.extend(lzop(&[(1, b"!")]));
        data.extend_from_slice(b"070701rest");
        assert_eq!(detect(&data), Some(Compression::Lzo));
        let mut r = &data[..];
        let mut out = String::new();
        Decoder::new(Compression::Lzo, &mut r, 1 << 20)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "abcdabcdabcdhello!");
        assert_eq!(r, b"070701rest");
    }

    #[test]
    fn lzop_damage_is_an_error_never_a_panic() {
        let read = |d: &[u8]| {
            let mut out = Vec::new();
            Decoder::new(Compression::Lzo, d, 1 << 20)
                .unwrap()
                .read_to_end(&mut out)
                .map_err(|e| crate::guest::reader::from_io(e, "test"))
        };
        let good = lzop(&[(12, &ABCD_X3), (5, b"hello")]);
        for cut in 0..good.len() {
            let e = read(&good[..cut]).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "cut {cut}: {e}");
        }
        let cases: [(Vec<u8>, &str); 5] = [
            (lzop(&[(11, &ABCD_X3)]), "a block of 10 bytes"),
            (lzop(&[(4, b"hello")]), "decompresses to 4"),
            (lzop(&[((1 << 20), b"x")]), "at most 262144"),
            (
                {
                    let mut m = good.clone();
                    m[15] = 9; // method
                    m
                },
                "method 9",
            ),
            (
                {
                    let mut f = good.clone();
                    f[18] |= 0x04; // a reserved flag bit (0x40000)
                    f
                },
                "unknown header flags",
            ),
        ];
        for (data, want) in cases {
            let e = read(&data).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{e}");
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn lz4_legacy_blocks() {
        let text: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut data = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
        for chunk in text.chunks(150_000) {
            let c = lz4_flex::block::compress(chunk);
            data.extend((c.len() as u32).to_le_bytes());
            data.extend(c);
        }
        data.extend([0u8; 8]);
        let mut r = &data[..];
        let mut out = Vec::new();
        Decoder::new(Compression::Lz4, &mut r, 1 << 30)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == text);
        assert_eq!(r, [0u8; 8]);
        // A corrupt block is an error, not a panic.
        let mut bad = data.clone();
        for b in &mut bad[8..40] {
            *b = 0xff;
        }
        let mut out = Vec::new();
        assert!(Decoder::new(Compression::Lz4, &bad[..], 1 << 30)
            .unwrap()
            .read_to_end(&mut out)
            .is_err());
    }
}

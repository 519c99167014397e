//! The compressions a kernel payload or an initramfs segment may use, told by
//! their magic bytes, and streaming decoders for them with bounded memory
//! (well-kept crates: flate2, bzip2, xz2, zstd, lz4_flex; the lz4 "legacy"
//! framing the kernel uses is a few lines around lz4_flex's block decoder).
//! lzo is recognised but not decoded (no well-kept crate).

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
            Compression::Lzo => return Err(Error::unsupported(
                "lzo compression: domuify cannot decompress it (recompress with zstd, xz or gzip)",
            )),
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
}

impl<B: BufRead> Read for Decoder<B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(cur) = self.cur.as_mut() else {
                return Ok(0);
            };
            let n = cur.read(buf)?;
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
                self.inner.consume(4);
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
    fn a_bomb_is_cut_at_the_limit() {
        let zeros = vec![0u8; 4 << 20];
        let packed = zstd::encode_all(&zeros[..], 3).unwrap();
        let mut d = Decoder::new(Compression::Zstd, &packed[..], 1 << 20).unwrap();
        let e = io::copy(&mut d, &mut io::sink()).unwrap_err();
        assert!(e.to_string().contains("more than 1 MiB"), "{e}");
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

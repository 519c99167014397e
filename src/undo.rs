//! The undo log: the original bytes of every region of a disk before a command
//! first overwrites it, so that `domuify undo` can give the image back bit for bit,
//! also after a crash in the middle of the command.
//!
//! [`UndoDev`] wraps the *whole* disk (not a partition window), so one undo file
//! covers every write of a command, whatever partition it lands in. The disk is cut
//! into chunks of [`CHUNK_SIZE`] bytes; the first time a write touches a chunk, the
//! chunk's original bytes are appended to the undo file and the undo file is synced
//! (`fdatasync`) **before** the device write is issued. A write spanning many
//! unsaved chunks saves all of them in one append followed by one sync; a chunk is
//! saved at most once, so later writes to it cost nothing. Writes are also held
//! back in a bounded write-behind buffer (8 MiB by default), so that the chunks of
//! many small writes (a copy-in writes each file, inode table block, directory
//! block) are saved with one append and one sync before those writes are issued in
//! order; reads see held writes, and [`WriteAt::sync`] issues them.
//!
//! # File format, version 2 (all integers little endian)
//!
//! Header, [`HEADER_LEN`] = 0x80 bytes, rewritten in place (one sector) only to
//! change its state:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0x00 | 16 | magic `"DOMUIFY-UNDO\0"`, zero padded |
//! | 0x10 | 4 | format version (2) |
//! | 0x14 | 4 | chunk size in bytes |
//! | 0x18 | 8 | image size in bytes |
//! | 0x20 | 8 | `fp_len`: bytes covered by the fingerprint, `min(1 MiB, image size)` |
//! | 0x28 | 32 | fingerprint: sha256 of the original first `fp_len` bytes |
//! | 0x48 | 8 | log id: a random number, repeated in every record of this log |
//! | 0x50 | 4 | state: 0 = open, 1 = finished, 2 = restoring (finished, and a restore has started) |
//! | 0x54 | 4 | reserved, zero |
//! | 0x58 | 8 | finished: the number of region records; 0 while open |
//! | 0x60 | 8 | finished: the log's length, to the end of the final record; 0 while open |
//! | 0x68 | 20 | reserved, zero |
//! | 0x7C | 4 | crc32c of bytes 0x00..0x7C |
//!
//! Then records, one after the other. A record is a 0x40-byte header and a payload:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0x00 | 4 | record magic `"UREC"` |
//! | 0x04 | 4 | kind: 1 = saved region, 2 = final |
//! | 0x08 | 8 | image offset of the region (a multiple of the chunk size); 0 for the final record |
//! | 0x10 | 8 | length of the region in bytes; of the payload for the final record |
//! | 0x18 | 4 | flags: bit 0 = the original region was all zero (no payload); bit 1 = the final record carries digests |
//! | 0x1C | 4 | crc32c of the payload |
//! | 0x20 | 8 | sequence number: the records before this one |
//! | 0x28 | 8 | batch: the sequence number of the first record of the append (one sync) this one belongs to |
//! | 0x30 | 8 | log id, as in the header |
//! | 0x38 | 4 | reserved, zero |
//! | 0x3C | 4 | crc32c of the record header bytes 0x00..0x3C |
//!
//! The payload is the region's original bytes (`length` bytes), absent for an
//! all-zero region. A region is whole chunks, except that the last chunk of an
//! image whose size is not a multiple of the chunk size is short. A region's
//! payload is at most [`MAX_RECORD_LEN`] bytes.
//!
//! The *final* record is appended and synced by [`UndoDev::complete`] once the
//! command finished and every write of it is durable; then the header is
//! rewritten as finished, with the number of region records and the log's length,
//! and synced. The final record's payload: the number of region records (u64), its
//! own position in the file (u64), then with flag bit 1 a count (u64) and, for
//! every maximal range of saved chunks in ascending order, its start (u64), length
//! (u64) and the sha256 of its bytes as the command left them (48 bytes per range;
//! no digests beyond 2^20 ranges). Nothing follows the final record.
//!
//! # Identity
//!
//! An undo file must never be applied to another image. The header keeps the
//! image's size and a sha256 of its original first MiB, taken when the log was
//! created. At restore time the original first MiB is rebuilt from the current
//! bytes with every saved region in that range laid over them: every byte there
//! that was overwritten was saved first, so the rebuilt bytes are the original ones
//! even after a crash in the middle of the command, and even if `restore` itself
//! was interrupted and is run again.
//!
//! The first MiB of two copies of one image is the same, so a finished log also
//! checks the ranges it wrote: each must still hold what the command left there
//! (the final record's digests). An image changed since (by a later command:
//! undo that one first), or another copy of the image changed differently, is
//! refused. A log without a final record (the command was interrupted) has only
//! the first check. Once a restore has started, the header's state *restoring*
//! turns the second check off, so that an interrupted restore can be run again.
//!
//! # Restore: the three outcomes
//!
//! [`restore`] makes two passes over the records, in file order, with bounded
//! memory whatever the log's size: the first validates every record and decides
//! which of these the log is, and rebuilds the original first MiB to check the
//! identity; only then does the second write the records back, in the same order,
//! and sync.
//!
//! 1. **Finished**: the final record is there, its counts agree with the records
//!    before it and with the header. Every record is restored.
//! 2. **Interrupted**: the header is open, and the log ends after an intact
//!    record or in a *torn tail* (see below). Every intact record before the tail
//!    is restored; the report says the command was interrupted.
//! 3. **Damaged**: anything else, refused before the first write with what is
//!    wrong and where: a finished header with a log that is shorter, longer or
//!    damaged anywhere (truncated after record N of M; record N at offset X:
//!    checksum mismatch), a damaged record of an open log followed by an intact
//!    record of a later append, a bad header (magic, checksum, version, state).
//!    The image's size or fingerprint differing is the only case reported as
//!    "a different image".
//!
//! # Why a torn tail is safe to ignore, and how it is told from damage
//!
//! The writer appends the records that save a write's chunks (one *batch*) and
//! waits for `fdatasync` of the undo file to return before it issues that write to
//! the device; after any failure of the undo file it refuses every later write. So
//! a record that did not reach the undo file intact belongs to the last batch,
//! whose sync never returned, whose device write was therefore never issued: the
//! chunks it (and any record of that batch) describes still hold their original
//! bytes. Every earlier batch was synced completely before its device write.
//! Hence the intact records before the first bad one cover every chunk the device
//! may have seen written, and restoring them gives the original image back exactly.
//!
//! The pages of the last batch may reach the disk in any order, so intact records
//! of that batch may follow a torn one. An intact record (its header checksum and
//! log id match) after the first bad record N whose batch starts after N, or a
//! final record there, proves that N's batch was synced: that is damage, refused.
//! A finished log is never torn (nothing is appended after its final record), and
//! its header says how long it is, so cutting it anywhere is found. What cannot be
//! told apart: an open log (the command was interrupted) later cut at its end
//! looks like a torn tail of that crash.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::bytes::{le32, le64};
use crate::disk::{check_range, ReadAt, WriteAt};
use crate::error::{Error, ErrorKind, Result};

/// Magic at the start of an undo file.
pub const MAGIC: &[u8; 13] = b"DOMUIFY-UNDO\0";
/// Format version written and understood.
pub const VERSION: u32 = 2;
/// Granularity of saving: a region is saved in whole chunks of this size.
pub const CHUNK_SIZE: u32 = 4096;
/// How many bytes from the start of the image the identity fingerprint covers.
pub const FINGERPRINT_SPAN: u64 = 1 << 20;
/// Largest payload of one record.
pub const MAX_RECORD_LEN: u64 = 4 << 20;
/// Length of the file header.
pub const HEADER_LEN: usize = 0x80;

const H_VERSION: usize = 0x10;
const H_CHUNK_SIZE: usize = 0x14;
const H_IMAGE_SIZE: usize = 0x18;
const H_FP_LEN: usize = 0x20;
const H_FINGERPRINT: usize = 0x28;
const H_LOG_ID: usize = 0x48;
const H_STATE: usize = 0x50;
const H_RECORDS: usize = 0x58;
const H_LOG_LEN: usize = 0x60;
const H_CRC: usize = 0x7C;
/// The first format, whose finished logs cannot be told from torn ones.
const VERSION_1: u32 = 1;

const STATE_OPEN: u32 = 0;
const STATE_FINISHED: u32 = 1;
const STATE_RESTORING: u32 = 2;

const RECORD_MAGIC: &[u8; 4] = b"UREC";
const R_KIND: usize = 0x04;
const R_OFFSET: usize = 0x08;
const R_LENGTH: usize = 0x10;
const R_FLAGS: usize = 0x18;
const R_PAYLOAD_CRC: usize = 0x1C;
const R_SEQ: usize = 0x20;
const R_BATCH: usize = 0x28;
const R_LOG_ID: usize = 0x30;
const R_CRC: usize = 0x3C;
const RECORD_HEADER_LEN: usize = 0x40;

const KIND_REGION: u32 = 1;
const KIND_FINAL: u32 = 2;
const FLAG_ZERO: u32 = 1;
const FLAG_DIGESTS: u32 = 2;
/// The final record's fixed payload: region records, its own position.
const FINAL_FIXED_LEN: u64 = 16;
/// One entry of the final record's digests: start, length, sha256.
const DIGEST_ENTRY_LEN: u64 = 48;
/// Most ranges the final record describes; beyond, it carries no digests.
const MAX_DIGESTS: u64 = 1 << 20;

/// Smallest and largest chunk size accepted in a header.
const MIN_CHUNK: u32 = 512;
const MAX_CHUNK: u32 = 1 << 20;
/// Append buffer size after which saved bytes are written out (still one sync).
const APPEND_FLUSH: usize = 8 << 20;
/// Piece size for copying payloads back to the image.
const COPY_PIECE: usize = 1 << 20;

/// Set of chunk indices, kept as disjoint, non-adjacent half-open ranges.
#[derive(Debug, Default)]
struct RangeSet {
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// The sub-ranges of `[lo, hi)` not in the set, in order.
    fn missing(&self, lo: u64, hi: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = lo;
        if let Some((_, &end)) = self.ranges.range(..=lo).next_back() {
            at = at.max(end);
        }
        for (&s, &e) in self.ranges.range(lo..hi) {
            if s > at {
                out.push((at, s));
            }
            at = at.max(e);
        }
        if at < hi {
            out.push((at, hi));
        }
        out
    }

    fn insert(&mut self, lo: u64, hi: u64) {
        if lo >= hi {
            return;
        }
        let mut lo = lo;
        let mut hi = hi;
        if let Some((&s, &e)) = self.ranges.range(..=lo).next_back() {
            if e >= lo {
                lo = s;
                hi = hi.max(e);
            }
        }
        let absorbed: Vec<u64> = self.ranges.range(lo..=hi).map(|(&s, _)| s).collect();
        for s in absorbed {
            if let Some(e) = self.ranges.remove(&s) {
                hi = hi.max(e);
            }
        }
        self.ranges.insert(lo, hi);
    }
}

/// Counters of an [`UndoDev`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UndoStats {
    /// Region records appended.
    pub records: u64,
    /// Bytes of the image saved (zero regions included).
    pub saved_bytes: u64,
    /// Appends, each followed by one sync of the undo file.
    pub syncs: u64,
    /// Writes passed on to the device.
    pub device_writes: u64,
    /// Size of the undo file.
    pub file_len: u64,
}

#[derive(Debug)]
struct State {
    file: File,
    /// Where the next record goes.
    end: u64,
    /// Records appended and synced so far: the next record's sequence number.
    seq: u64,
    saved: RangeSet,
    stats: UndoStats,
    /// Set after a failure of the undo file or the device, or after `complete`:
    /// no more writes.
    stopped: Option<String>,
    /// Writes accepted but not yet passed to the device (write-behind), in order.
    pending: Vec<(u64, Vec<u8>)>,
    pending_bytes: usize,
}

/// A whole-disk device that saves the original bytes of every chunk before it is
/// first overwritten (see the module documentation).
///
/// Writes are held back (write-behind, up to [`DEFAULT_BUFFER`] bytes by default)
/// so that the chunks of many writes are saved with one append and one sync; the
/// held writes are then issued in their order. Reads see held writes; [`sync`]
/// (and [`complete`], and dropping the device) issue them. A held write is like
/// one in the page cache: lost by a crash, together with its undo records, which
/// is safe.
///
/// [`sync`]: WriteAt::sync
/// [`complete`]: UndoDev::complete
#[derive(Debug)]
pub struct UndoDev<D: WriteAt> {
    dev: D,
    path: PathBuf,
    chunk: u64,
    /// The header as written at creation (state open).
    header: Header,
    /// Bytes of writes held back before they are saved and issued; 0 = none.
    buffer: usize,
    state: Mutex<State>,
}

/// Default write-behind buffer of an [`UndoDev`].
pub const DEFAULT_BUFFER: usize = 8 << 20;
/// Most writes held back at once (bounds the cost of overlaying reads).
const MAX_PENDING: usize = 4096;

impl<D: WriteAt> UndoDev<D> {
    /// Start an undo log at `path` for the whole device `dev`. Refuses to replace a
    /// file that already exists. The header (with the identity fingerprint) is
    /// synced, and so is the directory holding it, before this returns.
    pub fn create(dev: D, path: &Path) -> Result<UndoDev<D>> {
        UndoDev::create_with_buffer(dev, path, DEFAULT_BUFFER)
    }

    /// [`UndoDev::create`] with a write-behind buffer of `buffer` bytes (0: every
    /// write is saved, synced and issued before it returns).
    pub fn create_with_buffer(dev: D, path: &Path, buffer: usize) -> Result<UndoDev<D>> {
        let shown = path.display();
        let size = dev.size();
        let fp_len = size.min(FINGERPRINT_SPAN);
        // OK to cast: fp_len is at most 1 MiB.
        let mut first = vec![0u8; fp_len as usize];
        dev.read_exact_at(0, &mut first)
            .map_err(|e| e.context(format!("undo log {shown}: reading the image identity")))?;
        let fingerprint = Sha256::digest(&first);

        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Error::new(
                        ErrorKind::AlreadyExists,
                        format!("undo file {shown} already exists; refusing to overwrite it"),
                    )
                } else {
                    Error::io(format!("cannot create undo file {shown}"), e)
                }
            })?;
        let header = Header {
            chunk: u64::from(CHUNK_SIZE),
            image_size: size,
            fp_len,
            fingerprint: fingerprint.into(),
            log_id: new_log_id(),
            state: STATE_OPEN,
            records: 0,
            log_len: 0,
        };
        file.write_all_at(&header.to_bytes(), 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(format!("undo file {shown}: writing the header"), e))?;
        sync_parent_dir(path)?;
        Ok(UndoDev {
            dev,
            path: path.to_path_buf(),
            chunk: u64::from(CHUNK_SIZE),
            header,
            buffer,
            state: Mutex::new(State {
                file,
                end: HEADER_LEN as u64,
                seq: 0,
                saved: RangeSet::default(),
                stats: UndoStats {
                    file_len: HEADER_LEN as u64,
                    ..UndoStats::default()
                },
                stopped: None,
                pending: Vec::new(),
                pending_bytes: 0,
            }),
        })
    }

    /// The undo file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device under the log.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Counters so far.
    pub fn stats(&self) -> UndoStats {
        self.lock().stats
    }

    /// Issue the held writes, sync the device, then append the final record (the
    /// command finished; every write of it is durable) and sync it, then rewrite
    /// the header as finished, with the number of records and the log's length,
    /// and sync it. Later writes are refused.
    pub fn complete(&self) -> Result<()> {
        let mut st = self.lock();
        if let Some(why) = &st.stopped {
            return Err(Error::refused(format!(
                "undo file {}: {why}",
                self.path.display()
            )));
        }
        self.drain(&mut st)?;
        self.dev.sync()?;
        // The state the command leaves: a digest of every saved range as it is now.
        let ranges: Vec<(u64, u64)> = st.saved.ranges.iter().map(|(&l, &h)| (l, h)).collect();
        let mut payload = Vec::new();
        payload.extend_from_slice(&st.seq.to_le_bytes());
        payload.extend_from_slice(&st.end.to_le_bytes());
        let mut flags = 0;
        if (ranges.len() as u64) <= MAX_DIGESTS {
            flags = FLAG_DIGESTS;
            payload.extend_from_slice(&(ranges.len() as u64).to_le_bytes());
            let size = self.dev.size();
            for (lo, hi) in ranges {
                let start = lo * self.chunk;
                let len = (hi * self.chunk).min(size) - start;
                let digest = digest_range(&self.dev, start, len)?;
                payload.extend_from_slice(&start.to_le_bytes());
                payload.extend_from_slice(&len.to_le_bytes());
                payload.extend_from_slice(&digest);
            }
        }
        let mut rec = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
        let fields = RecordHeader {
            kind: KIND_FINAL,
            offset: 0,
            len: payload.len() as u64,
            flags,
            payload_crc: 0,
            seq: st.seq,
            batch: st.seq,
        };
        push_record(&mut rec, &fields, self.header.log_id, &payload);
        let at = st.end;
        let log_len = at + rec.len() as u64;
        let header = Header {
            state: STATE_FINISHED,
            records: st.seq,
            log_len,
            ..self.header
        };
        // The final record durable first: a crash before the header is rewritten
        // leaves an open header and an intact final record, a finished log.
        let res = st
            .file
            .write_all_at(&rec, at)
            .and_then(|()| st.file.sync_data())
            .and_then(|()| st.file.write_all_at(&header.to_bytes(), 0))
            .and_then(|()| st.file.sync_data());
        match res {
            Ok(()) => {
                st.end = log_len;
                st.stats.file_len = st.end;
                st.stats.syncs += 2;
                st.stopped = Some("the log is complete".into());
                Ok(())
            }
            Err(e) => {
                st.stopped = Some("a write to the undo file failed".into());
                Err(Error::io(
                    format!(
                        "undo file {}: writing the final record",
                        self.path.display()
                    ),
                    e,
                ))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // OK to recover: the state is only changed after each step succeeded.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Save the held writes' unsaved chunks (one append, one sync), then issue
    /// the writes in order. Any failure stops the device.
    fn drain(&self, st: &mut State) -> Result<()> {
        if st.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut st.pending);
        st.pending_bytes = 0;
        let ranges: Vec<(u64, u64)> = pending.iter().map(|(o, b)| (*o, b.len() as u64)).collect();
        if let Err(e) = self.save(st, &ranges) {
            st.stopped
                .get_or_insert_with(|| "saving original bytes failed".into());
            return Err(e);
        }
        for (o, b) in pending {
            if let Err(e) = self.dev.write_all_at(o, &b) {
                st.stopped = Some("a write to the image failed".into());
                return Err(e);
            }
            st.stats.device_writes += 1;
        }
        Ok(())
    }

    /// Save every unsaved chunk of the byte ranges `(offset, len)`: one append,
    /// one sync.
    fn save(&self, st: &mut State, ranges: &[(u64, u64)]) -> Result<()> {
        let size = self.dev.size();
        let mut want = RangeSet::default();
        for &(offset, len) in ranges.iter().filter(|r| r.1 > 0) {
            let first = offset / self.chunk;
            let last = (offset + len - 1) / self.chunk;
            for (lo, hi) in st.saved.missing(first, last + 1) {
                want.insert(lo, hi);
            }
        }
        let missing: Vec<(u64, u64)> = want.ranges.into_iter().collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        let mut at = st.end;
        let mut records = 0u64;
        // One append, one sync: one batch, named by its first record.
        let batch = st.seq;
        let log_id = self.header.log_id;
        let mut saved_bytes = 0u64;
        let mut orig = Vec::new();
        for &(lo, hi) in &missing {
            // Split the run into pieces of at most MAX_RECORD_LEN bytes.
            let per = (MAX_RECORD_LEN / self.chunk).max(1);
            let mut c = lo;
            while c < hi {
                let n = per.min(hi - c);
                let start = c * self.chunk;
                let end = ((c + n) * self.chunk).min(size);
                // OK to cast: at most MAX_RECORD_LEN bytes.
                orig.resize((end - start) as usize, 0);
                self.dev.read_exact_at(start, &mut orig).map_err(|e| {
                    e.context(format!(
                        "undo file {}: reading original bytes",
                        self.path.display()
                    ))
                })?;
                // Records of alternating zero / data runs of chunks.
                let cs = self.chunk as usize;
                let mut i = 0usize;
                while i < orig.len() {
                    let zero = is_zero(&orig[i..(i + cs).min(orig.len())]);
                    let mut j = i;
                    while j < orig.len() && is_zero(&orig[j..(j + cs).min(orig.len())]) == zero {
                        j = (j + cs).min(orig.len());
                    }
                    let rec_off = start + i as u64;
                    let rec_len = (j - i) as u64;
                    let fields = RecordHeader {
                        kind: KIND_REGION,
                        offset: rec_off,
                        len: rec_len,
                        flags: if zero { FLAG_ZERO } else { 0 },
                        payload_crc: 0,
                        seq: batch + records,
                        batch,
                    };
                    let payload = if zero { &[][..] } else { &orig[i..j] };
                    push_record(&mut buf, &fields, log_id, payload);
                    records += 1;
                    saved_bytes += rec_len;
                    i = j;
                }
                if buf.len() >= APPEND_FLUSH {
                    self.append(st, at, &buf)?;
                    at += buf.len() as u64;
                    buf.clear();
                }
                c += n;
            }
        }
        if !buf.is_empty() {
            self.append(st, at, &buf)?;
            at += buf.len() as u64;
        }
        if let Err(e) = st.file.sync_data() {
            st.stopped = Some("a sync of the undo file failed".into());
            return Err(Error::io(
                format!("undo file {}: sync", self.path.display()),
                e,
            ));
        }
        // Only now is the saved state durable: remember it, then allow the write.
        st.end = at;
        st.seq += records;
        st.stats.file_len = at;
        st.stats.records += records;
        st.stats.saved_bytes += saved_bytes;
        st.stats.syncs += 1;
        for &(lo, hi) in &missing {
            st.saved.insert(lo, hi);
        }
        Ok(())
    }

    fn append(&self, st: &mut State, at: u64, buf: &[u8]) -> Result<()> {
        st.file.write_all_at(buf, at).map_err(|e| {
            st.stopped = Some("a write to the undo file failed".into());
            Error::io(
                format!(
                    "undo file {}: append of {} bytes at {at:#x}",
                    self.path.display(),
                    buf.len()
                ),
                e,
            )
        })
    }
}

/// sha256 of `len` bytes of `dev` at `start`, read in pieces.
fn digest_range(dev: &dyn ReadAtDyn, start: u64, len: u64) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut piece = vec![0u8; COPY_PIECE.min(usize::try_from(len).unwrap_or(COPY_PIECE))];
    let mut done = 0u64;
    while done < len {
        // OK to cast: bounded by the piece's length.
        let n = (len - done).min(piece.len() as u64) as usize;
        dev.read_at(start + done, &mut piece[..n])?;
        h.update(&piece[..n]);
        done += n as u64;
    }
    Ok(h.finalize().into())
}

/// Object-safe reads, for [`digest_range`].
trait ReadAtDyn {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
}

impl<T: ReadAt + ?Sized> ReadAtDyn for T {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.read_exact_at(offset, buf)
    }
}

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Append a record: `fields` (its payload checksum is computed here), the log id
/// and the header checksum, then the payload.
fn push_record(buf: &mut Vec<u8>, fields: &RecordHeader, log_id: u64, payload: &[u8]) {
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[..4].copy_from_slice(RECORD_MAGIC);
    h[R_KIND..R_KIND + 4].copy_from_slice(&fields.kind.to_le_bytes());
    h[R_OFFSET..R_OFFSET + 8].copy_from_slice(&fields.offset.to_le_bytes());
    h[R_LENGTH..R_LENGTH + 8].copy_from_slice(&fields.len.to_le_bytes());
    h[R_FLAGS..R_FLAGS + 4].copy_from_slice(&fields.flags.to_le_bytes());
    h[R_PAYLOAD_CRC..R_PAYLOAD_CRC + 4].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    h[R_SEQ..R_SEQ + 8].copy_from_slice(&fields.seq.to_le_bytes());
    h[R_BATCH..R_BATCH + 8].copy_from_slice(&fields.batch.to_le_bytes());
    h[R_LOG_ID..R_LOG_ID + 8].copy_from_slice(&log_id.to_le_bytes());
    let crc = crc32c::crc32c(&h[..R_CRC]);
    h[R_CRC..R_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(&h);
    buf.extend_from_slice(payload);
}

/// A number that tells this log's records from those of any other log (an image
/// may hold copies of undo files, which then appear in payloads): the standard
/// library's randomly keyed hasher over the time and the process id.
fn new_log_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(now);
    h.write_u32(std::process::id());
    h.finish()
}

fn sync_parent_dir(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot sync directory {}", parent.display()), e))
}

impl<D: WriteAt> ReadAt for UndoDev<D> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let st = self.lock();
        self.dev.read_exact_at(offset, buf)?;
        // Lay the held writes over what the device holds, in their order.
        let end = offset + buf.len() as u64;
        for (o, b) in &st.pending {
            let (s, e) = (*o, *o + b.len() as u64);
            if s < end && e > offset {
                let from = s.max(offset);
                let to = e.min(end);
                // OK to cast: both spans are within in-memory buffers.
                let dst = &mut buf[(from - offset) as usize..(to - offset) as usize];
                dst.copy_from_slice(&b[(from - s) as usize..(to - s) as usize]);
            }
        }
        Ok(())
    }
    fn size(&self) -> u64 {
        self.dev.size()
    }
    fn disk(&self) -> Option<&crate::disk::Disk> {
        self.dev.disk()
    }
}

impl<D: WriteAt> WriteAt for UndoDev<D> {
    fn write_all_at(&self, offset: u64, buf: &[u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        check_range(offset, buf.len(), self.dev.size(), &self.path.display())?;
        let mut st = self.lock();
        if let Some(why) = &st.stopped {
            return Err(Error::refused(format!(
                "undo file {}: {why}; refusing to write the image at {offset:#x}",
                self.path.display()
            )));
        }
        if self.buffer == 0 {
            self.save(&mut st, &[(offset, buf.len() as u64)])?;
            if let Err(e) = self.dev.write_all_at(offset, buf) {
                st.stopped = Some("a write to the image failed".into());
                return Err(e);
            }
            st.stats.device_writes += 1;
            return Ok(());
        }
        st.pending.push((offset, buf.to_vec()));
        st.pending_bytes += buf.len();
        if st.pending_bytes >= self.buffer || st.pending.len() >= MAX_PENDING {
            self.drain(&mut st)?;
        }
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        let mut st = self.lock();
        self.drain(&mut st)?;
        self.dev.sync()
    }
}

impl<D: WriteAt> Drop for UndoDev<D> {
    /// Writes that were accepted reach the device, as the page cache would have
    /// written them.
    fn drop(&mut self) {
        let mut st = self.lock();
        if st.stopped.is_none() {
            let _ = self.drain(&mut st);
        }
    }
}

/// What [`restore`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Region records written back.
    pub records: u64,
    /// Bytes of the image written back.
    pub bytes: u64,
    /// The log ended with its final record (the command had finished).
    pub complete: bool,
    /// Bytes at the end of the undo file that were ignored: the torn last append
    /// of an interrupted command (its device write never happened).
    pub ignored_tail: u64,
    /// Which record was torn and how, when a tail was ignored.
    pub tail_reason: Option<String>,
}

/// A validated region record.
#[derive(Clone, Copy, Debug)]
struct Region {
    offset: u64,
    len: u64,
    zero: bool,
    /// Position of the payload in the undo file.
    payload_at: u64,
}

/// The file header (see the module documentation).
#[derive(Clone, Copy, Debug)]
struct Header {
    chunk: u64,
    image_size: u64,
    fp_len: u64,
    fingerprint: [u8; 32],
    log_id: u64,
    state: u32,
    /// Region records of the finished log.
    records: u64,
    /// Length of the finished log, to the end of its final record.
    log_len: u64,
}

impl Header {
    fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..MAGIC.len()].copy_from_slice(MAGIC);
        h[H_VERSION..H_VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
        // OK to cast: the chunk size was checked to fit in a u32.
        h[H_CHUNK_SIZE..H_CHUNK_SIZE + 4].copy_from_slice(&(self.chunk as u32).to_le_bytes());
        h[H_IMAGE_SIZE..H_IMAGE_SIZE + 8].copy_from_slice(&self.image_size.to_le_bytes());
        h[H_FP_LEN..H_FP_LEN + 8].copy_from_slice(&self.fp_len.to_le_bytes());
        h[H_FINGERPRINT..H_FINGERPRINT + 32].copy_from_slice(&self.fingerprint);
        h[H_LOG_ID..H_LOG_ID + 8].copy_from_slice(&self.log_id.to_le_bytes());
        h[H_STATE..H_STATE + 4].copy_from_slice(&self.state.to_le_bytes());
        h[H_RECORDS..H_RECORDS + 8].copy_from_slice(&self.records.to_le_bytes());
        h[H_LOG_LEN..H_LOG_LEN + 8].copy_from_slice(&self.log_len.to_le_bytes());
        let crc = crc32c::crc32c(&h[..H_CRC]);
        h[H_CRC..H_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// The command finished (the final record was made durable first).
    fn finished(&self) -> bool {
        self.state != STATE_OPEN
    }
}

/// Read and validate the header of an undo file of `file_len` bytes.
fn read_header(file: &File, file_len: u64, shown: &dyn std::fmt::Display) -> Result<Header> {
    let mut h = [0u8; HEADER_LEN];
    // OK to cast: at most HEADER_LEN.
    let have = file_len.min(HEADER_LEN as u64) as usize;
    file.read_exact_at(&mut h[..have], 0)
        .map_err(|e| Error::io(format!("undo file {shown}: read"), e))?;
    if have < 0x10 {
        return Err(Error::invalid(format!(
            "{shown} is not a domuify undo file (too short)"
        )));
    }
    if &h[..MAGIC.len()] != MAGIC {
        return Err(Error::invalid(format!(
            "{shown} is not a domuify undo file (bad magic)"
        )));
    }
    if have < H_VERSION + 4 {
        return Err(Error::corrupt(format!(
            "undo file {shown}: the header is truncated ({have} of {HEADER_LEN} bytes)"
        )));
    }
    let version = le32(&h, H_VERSION);
    if version == VERSION_1 {
        return Err(Error::unsupported(format!(
            "undo file {shown} was made by an older domuify (undo format {VERSION_1}, in which a finished log cut short cannot be told from an interrupted one); this build reads format {VERSION}: restore with the domuify that made it"
        )));
    }
    if have < HEADER_LEN {
        return Err(Error::corrupt(format!(
            "undo file {shown}: the header is truncated ({have} of {HEADER_LEN} bytes)"
        )));
    }
    let crc = le32(&h, H_CRC);
    if crc32c::crc32c(&h[..H_CRC]) != crc {
        return Err(Error::corrupt(format!(
            "undo file {shown}: header checksum mismatch (the header, bytes 0x0..{HEADER_LEN:#x}, is damaged)"
        )));
    }
    if version != VERSION {
        return Err(Error::unsupported(format!(
            "undo file {shown}: format version {version} (this build reads {VERSION})"
        )));
    }
    let chunk = le32(&h, H_CHUNK_SIZE);
    if !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk) || !chunk.is_power_of_two() {
        return Err(Error::corrupt(format!(
            "undo file {shown}: bad chunk size {chunk}"
        )));
    }
    let image_size = le64(&h, H_IMAGE_SIZE);
    let fp_len = le64(&h, H_FP_LEN);
    if fp_len != image_size.min(FINGERPRINT_SPAN) {
        return Err(Error::corrupt(format!(
            "undo file {shown}: fingerprint length {fp_len} does not match image size {image_size}"
        )));
    }
    let state = le32(&h, H_STATE);
    let records = le64(&h, H_RECORDS);
    let log_len = le64(&h, H_LOG_LEN);
    let consistent = match state {
        STATE_OPEN => records == 0 && log_len == 0,
        STATE_FINISHED | STATE_RESTORING => {
            log_len >= (HEADER_LEN + RECORD_HEADER_LEN) as u64 + FINAL_FIXED_LEN
        }
        _ => {
            return Err(Error::corrupt(format!(
                "undo file {shown}: unknown log state {state} in the header"
            )))
        }
    };
    if !consistent {
        return Err(Error::corrupt(format!(
            "undo file {shown}: the header's state {state} does not fit its counts ({records} records, {log_len} bytes)"
        )));
    }
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(&h[H_FINGERPRINT..H_FINGERPRINT + 32]);
    Ok(Header {
        chunk: u64::from(chunk),
        image_size,
        fp_len,
        fingerprint,
        log_id: le64(&h, H_LOG_ID),
        state,
        records,
        log_len,
    })
}

/// The fields of a record header.
#[derive(Clone, Copy, Debug)]
struct RecordHeader {
    kind: u32,
    offset: u64,
    len: u64,
    flags: u32,
    payload_crc: u32,
    seq: u64,
    batch: u64,
}

impl RecordHeader {
    /// An intact record header of the log `log_id`, or why it is not one.
    fn parse(h: &[u8], log_id: u64) -> std::result::Result<RecordHeader, &'static str> {
        if &h[..4] != RECORD_MAGIC {
            return Err("bad record magic");
        }
        if crc32c::crc32c(&h[..R_CRC]) != le32(h, R_CRC) {
            return Err("record header checksum mismatch");
        }
        if le64(h, R_LOG_ID) != log_id {
            return Err("a record of another undo log");
        }
        Ok(RecordHeader {
            kind: le32(h, R_KIND),
            offset: le64(h, R_OFFSET),
            len: le64(h, R_LENGTH),
            flags: le32(h, R_FLAGS),
            payload_crc: le32(h, R_PAYLOAD_CRC),
            seq: le64(h, R_SEQ),
            batch: le64(h, R_BATCH),
        })
    }

    /// What is wrong with an intact header as record `n` of the log, whose
    /// previous record belongs to batch `prev_batch`.
    fn check(&self, hdr: &Header, n: u64, prev_batch: Option<u64>) -> Option<String> {
        let (offset, len) = (self.offset, self.len);
        if self.seq != n {
            return Some(format!("sequence number {}, expected {n}", self.seq));
        }
        // A batch is named by its first record; a record continues the batch of
        // the record before it or starts a new one.
        if self.batch != self.seq && prev_batch != Some(self.batch) {
            return Some(format!(
                "batch {} does not continue the previous record's",
                self.batch
            ));
        }
        let bad = match self.kind {
            KIND_FINAL => {
                let ok = offset == 0
                    && self.batch == self.seq
                    && match self.flags {
                        0 => len == FINAL_FIXED_LEN,
                        FLAG_DIGESTS => {
                            len >= FINAL_FIXED_LEN + 8
                                && (len - FINAL_FIXED_LEN - 8) % DIGEST_ENTRY_LEN == 0
                                && (len - FINAL_FIXED_LEN - 8) / DIGEST_ENTRY_LEN <= MAX_DIGESTS
                        }
                        _ => false,
                    };
                (!ok).then_some("bad final record")
            }
            KIND_REGION => {
                let zero = self.flags & FLAG_ZERO != 0;
                if self.flags & !FLAG_ZERO != 0 {
                    Some("unknown record flags")
                } else if len == 0 || len > MAX_RECORD_LEN || offset % hdr.chunk != 0 {
                    Some("bad record length or alignment")
                } else if offset.checked_add(len).is_none_or(|e| e > hdr.image_size) {
                    Some("record past the end of the image")
                } else if !zero && len % hdr.chunk != 0 && offset + len != hdr.image_size {
                    Some("record length not whole chunks")
                } else {
                    None
                }
            }
            _ => Some("unknown record kind"),
        };
        bad.map(|b| format!("{b} (kind {}, {offset:#x}+{len:#x})", self.kind))
    }

    /// Bytes of payload that follow the header.
    fn payload_len(&self) -> u64 {
        match self.kind {
            KIND_REGION if self.flags & FLAG_ZERO == 0 => self.len,
            KIND_FINAL => self.len,
            _ => 0,
        }
    }
}

/// How the records of an undo file end.
#[derive(Debug)]
enum Ending {
    /// With the final record: the command finished. Where its digests are, and
    /// how many: `(position, count)`.
    Finished { digests: Option<(u64, u64)> },
    /// An open log, after an intact record: the command was interrupted between
    /// two appends (or the pass stopped at its limit).
    Open,
    /// An open log whose last append was torn by the interruption, at `at`.
    Torn { at: u64, why: String },
}

/// What a pass over the records found.
struct Scan {
    /// Intact region records visited.
    regions: u64,
    ending: Ending,
    file_len: u64,
}

/// The error for a damaged log: what is wrong, where, and that nothing was done.
fn damaged(shown: &dyn std::fmt::Display, what: &str) -> Error {
    Error::corrupt(format!(
        "undo file {shown} is damaged: {what}; refusing to restore from it (the image is unchanged)"
    ))
}

/// Walk the records of an undo file in file order, at most `limit` region
/// records, calling `visit` on each region, and decide how the log ends (see the
/// module documentation): damage is an error, a torn tail of an open log is not.
/// Memory stays bounded whatever the file's size.
fn scan_records(
    file: &File,
    hdr: &Header,
    shown: &dyn std::fmt::Display,
    limit: u64,
    visit: &mut dyn FnMut(&Region) -> Result<()>,
) -> Result<Scan> {
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(format!("cannot stat undo file {shown}"), e))?
        .len();
    // A pass may follow another: start from the beginning of the file.
    let mut start = file;
    start
        .seek(SeekFrom::Start(HEADER_LEN as u64))
        .map_err(|e| Error::io(format!("undo file {shown}: seek"), e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut pos = HEADER_LEN as u64;
    let mut n = 0u64;
    let mut prev_batch = None;
    let mut piece = vec![0u8; COPY_PIECE];
    // The final record is record number `hdr.records` of a finished log.
    let of = hdr.records.saturating_add(1);
    let scan = |regions, ending| Scan {
        regions,
        ending,
        file_len,
    };
    loop {
        if n == limit {
            return Ok(scan(n, Ending::Open));
        }
        if pos == file_len {
            if hdr.finished() {
                return Err(damaged(
                    shown,
                    &format!(
                        "truncated after record {n} of {of} ({file_len:#x} of the finished log's {:#x} bytes)",
                        hdr.log_len
                    ),
                ));
            }
            return Ok(scan(n, Ending::Open));
        }
        // Read and check record n: `Ok(Err(why))` when it is not intact; a
        // failure to read the log is an error of its own, never taken for damage.
        let after = pos + RECORD_HEADER_LEN as u64;
        let io_err = |e: io::Error| Error::io(format!("undo file {shown}: read at {pos:#x}"), e);
        let record: Result<std::result::Result<RecordHeader, String>> = (|| {
            if file_len - pos < RECORD_HEADER_LEN as u64 {
                return Ok(Err(format!(
                    "header torn ({} of {RECORD_HEADER_LEN} bytes)",
                    file_len - pos
                )));
            }
            let mut h = [0u8; RECORD_HEADER_LEN];
            reader.read_exact(&mut h).map_err(io_err)?;
            let r = match RecordHeader::parse(&h, hdr.log_id) {
                Ok(r) => r,
                Err(why) => return Ok(Err(why.to_string())),
            };
            if let Some(why) = r.check(hdr, n, prev_batch) {
                return Ok(Err(why));
            }
            let payload_len = r.payload_len();
            if file_len - after < payload_len {
                return Ok(Err(format!(
                    "payload torn ({} of {payload_len} bytes)",
                    file_len - after
                )));
            }
            let mut sum = 0u32;
            let mut left = payload_len;
            while left > 0 {
                // OK to cast: bounded by COPY_PIECE.
                let k = left.min(COPY_PIECE as u64) as usize;
                reader.read_exact(&mut piece[..k]).map_err(io_err)?;
                sum = crc32c::crc32c_append(sum, &piece[..k]);
                left -= k as u64;
            }
            if sum != r.payload_crc {
                return Ok(Err("payload checksum mismatch".into()));
            }
            Ok(Ok(r))
        })();
        let r = match record? {
            Ok(r) => r,
            Err(why) => {
                let what = format!("record {n} at {pos:#x}: {why}");
                if hdr.finished() {
                    if file_len < hdr.log_len {
                        return Err(damaged(
                            shown,
                            &format!(
                                "truncated after record {n} of {of} ({file_len:#x} of the finished log's {:#x} bytes; {what})",
                                hdr.log_len
                            ),
                        ));
                    }
                    return Err(damaged(
                        shown,
                        &format!("{what}, in the log of a finished command"),
                    ));
                }
                refuse_if_intact_after(file, hdr, shown, pos + 1, n, file_len, &what)?;
                return Ok(scan(n, Ending::Torn { at: pos, why: what }));
            }
        };
        let end = after + r.payload_len();
        if r.kind == KIND_FINAL {
            let mut fixed = [0u8; FINAL_FIXED_LEN as usize];
            file.read_exact_at(&mut fixed, after)
                .map_err(|e| Error::io(format!("undo file {shown}: read at {after:#x}"), e))?;
            let (regions, at) = (le64(&fixed, 0), le64(&fixed, 8));
            if regions != n || at != pos {
                return Err(damaged(
                    shown,
                    &format!("the final record at {pos:#x} counts {regions} records before it at {at:#x}; the log has {n}"),
                ));
            }
            if end != file_len {
                return Err(damaged(
                    shown,
                    &format!(
                        "{} bytes after the final record, at {end:#x}",
                        file_len - end
                    ),
                ));
            }
            if hdr.finished() && (hdr.records != n || hdr.log_len != end) {
                return Err(damaged(
                    shown,
                    &format!(
                        "the header counts {} records and {:#x} bytes; the log has {n} and {end:#x}",
                        hdr.records, hdr.log_len
                    ),
                ));
            }
            let digests = (r.flags == FLAG_DIGESTS).then(|| {
                (
                    after + FINAL_FIXED_LEN + 8,
                    (r.len - FINAL_FIXED_LEN - 8) / DIGEST_ENTRY_LEN,
                )
            });
            return Ok(scan(n, Ending::Finished { digests }));
        }
        visit(&Region {
            offset: r.offset,
            len: r.len,
            zero: r.flags & FLAG_ZERO != 0,
            payload_at: after,
        })?;
        n += 1;
        prev_batch = Some(r.batch);
        pos = end;
    }
}

/// After record `n` of an open log was found not intact (`what`): look for an
/// intact record header further on (the magic, its checksum, this log's id) that
/// could not be there if the tail from record `n` on were the torn last append:
/// the final record, a record numbered `n` or less, or one of a later batch than
/// record `n`'s. Such a record is damage: refused. Reads the rest of the file
/// once, in pieces.
fn refuse_if_intact_after(
    file: &File,
    hdr: &Header,
    shown: &dyn std::fmt::Display,
    from: u64,
    n: u64,
    file_len: u64,
    what: &str,
) -> Result<()> {
    let mut buf = vec![0u8; COPY_PIECE + RECORD_HEADER_LEN];
    let mut at = from;
    while file_len.saturating_sub(at) >= RECORD_HEADER_LEN as u64 {
        // OK to cast: bounded by the buffer's length.
        let len = (file_len - at).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..len], at)
            .map_err(|e| Error::io(format!("undo file {shown}: read at {at:#x}"), e))?;
        let starts = len - RECORD_HEADER_LEN + 1;
        for i in 0..starts {
            if buf[i] != RECORD_MAGIC[0] || buf[i..i + 4] != RECORD_MAGIC[..] {
                continue;
            }
            let Ok(r) = RecordHeader::parse(&buf[i..i + RECORD_HEADER_LEN], hdr.log_id) else {
                continue;
            };
            let q = at + i as u64;
            let why = if r.kind == KIND_FINAL {
                Some("the final record")
            } else if r.seq <= n {
                Some("a record numbered out of order")
            } else if r.batch > n {
                Some("a record of a later append")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(damaged(
                    shown,
                    &format!(
                        "{what}, but {why} (record {}) follows intact at {q:#x}: not a tail torn by an interruption",
                        r.seq
                    ),
                ));
            }
        }
        at += starts as u64;
    }
    Ok(())
}

/// Put the image back as it was when the undo log was created. Reads the whole
/// log first: a damaged log (see the module documentation) is refused naming
/// what is wrong and where, and an image of another size or whose rebuilt first
/// MiB does not match the fingerprint is refused as "a different image", both
/// with nothing written. Then writes back every saved region (of an interrupted
/// command's log: every intact one before its torn tail) and syncs. Safe to run
/// again if interrupted.
pub fn restore(undo: &Path, dev: &impl WriteAt) -> Result<RestoreReport> {
    let shown = undo.display();
    // Read-write to mark a restore as started; read-only works too, without the mark.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(undo)
        .or_else(|_| File::open(undo))
        .map_err(|e| Error::io(format!("cannot open undo file {shown}"), e))?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(format!("cannot stat undo file {shown}"), e))?
        .len();
    let hdr = read_header(&file, file_len, &shown)?;
    if hdr.image_size != dev.size() {
        return Err(Error::refused(format!(
            "undo file {shown} belongs to a different image: it was recorded on an image of {} bytes, this one has {} bytes",
            hdr.image_size,
            dev.size()
        )));
    }
    // Pass 1: validate the records and rebuild the original first fp_len bytes
    // (records applied in file order, as pass 2 applies them), then compare.
    // OK to cast: fp_len is at most 1 MiB (checked against the image size above).
    let mut first = vec![0u8; hdr.fp_len as usize];
    dev.read_exact_at(0, &mut first)?;
    let scan = scan_records(&file, &hdr, &shown, u64::MAX, &mut |r| {
        if r.offset >= hdr.fp_len {
            return Ok(());
        }
        // OK to cast: both below fp_len.
        let s = r.offset as usize;
        let e = (r.offset + r.len).min(hdr.fp_len) as usize;
        let dst = &mut first[s..e];
        if r.zero {
            dst.fill(0);
            Ok(())
        } else {
            file.read_exact_at(dst, r.payload_at)
                .map_err(|e| Error::io(format!("undo file {shown}: read payload"), e))
        }
    })?;
    if Sha256::digest(&first).as_slice() != hdr.fingerprint {
        return Err(Error::refused(format!(
            "undo file {shown} belongs to a different image (the first {} bytes do not match its fingerprint)",
            hdr.fp_len
        )));
    }

    // A finished command left digests of every range it wrote: the image must
    // still be in that state (not changed since, not another copy of the image).
    // Skipped when a restore already started (it may have been interrupted).
    let mut report = RestoreReport::default();
    match &scan.ending {
        Ending::Finished { digests } => {
            report.complete = true;
            if hdr.state != STATE_RESTORING {
                if let Some((at, count)) = *digests {
                    check_digests(&file, &hdr, &shown, dev, at, count)?;
                }
                // Mark the restore as started, so that running it again after an
                // interruption is accepted. Without write access to the log, no mark.
                let mark = Header {
                    state: STATE_RESTORING,
                    records: scan.regions,
                    log_len: scan.file_len,
                    ..hdr
                };
                if file.write_all_at(&mark.to_bytes(), 0).is_ok() {
                    file.sync_data()
                        .map_err(|e| Error::io(format!("undo file {shown}: sync"), e))?;
                }
            }
        }
        Ending::Open => {}
        Ending::Torn { at, why } => {
            report.ignored_tail = scan.file_len - at;
            report.tail_reason = Some(why.clone());
        }
    }

    // Pass 2: write every region back, the same records in the same order.
    let mut piece = vec![0u8; COPY_PIECE];
    scan_records(&file, &hdr, &shown, scan.regions, &mut |r| {
        let mut done = 0u64;
        while done < r.len {
            // OK to cast: bounded by COPY_PIECE.
            let n = (r.len - done).min(COPY_PIECE as u64) as usize;
            let buf = &mut piece[..n];
            if r.zero {
                buf.fill(0);
            } else {
                file.read_exact_at(buf, r.payload_at + done)
                    .map_err(|e| Error::io(format!("undo file {shown}: read payload"), e))?;
            }
            dev.write_all_at(r.offset + done, buf)?;
            done += n as u64;
        }
        report.records += 1;
        report.bytes += r.len;
        Ok(())
    })?;
    dev.sync()?;
    Ok(report)
}

/// Each of the `count` digest entries at `at` must match the image: it is as the
/// command left it.
fn check_digests(
    file: &File,
    hdr: &Header,
    shown: &dyn std::fmt::Display,
    dev: &impl WriteAt,
    at: u64,
    count: u64,
) -> Result<()> {
    let mut e = [0u8; DIGEST_ENTRY_LEN as usize];
    for i in 0..count {
        file.read_exact_at(&mut e, at + i * DIGEST_ENTRY_LEN)
            .map_err(|e| Error::io(format!("undo file {shown}: read digests"), e))?;
        let start = le64(&e, 0);
        let len = le64(&e, 8);
        if len == 0
            || start
                .checked_add(len)
                .is_none_or(|end| end > hdr.image_size)
        {
            return Err(damaged(
                shown,
                &format!("digest entry {i} covers {start:#x}+{len:#x}, outside the image"),
            ));
        }
        if digest_range(dev, start, len)?[..] != e[16..] {
            return Err(Error::refused(format!(
                "undo file {shown}: the image is not as the command left it (bytes {start:#x}+{len:#x} differ): it was changed since, or it is another copy of the image; undo later changes first, newest first"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{Access, Disk, MemDisk};

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
            .collect()
    }

    /// An image of `len` bytes with data in some places and zeros elsewhere.
    fn image(len: usize) -> Vec<u8> {
        let mut v = pattern(len, 7);
        let z = len / 3;
        v[z..(z + 3 * 4096).min(len)].fill(0);
        v
    }

    fn sha(b: &[u8]) -> Vec<u8> {
        Sha256::digest(b).to_vec()
    }

    #[test]
    fn range_set_missing_and_insert() {
        let mut s = RangeSet::default();
        assert_eq!(s.missing(0, 10), vec![(0, 10)]);
        s.insert(2, 4);
        s.insert(6, 8);
        assert_eq!(s.missing(0, 10), vec![(0, 2), (4, 6), (8, 10)]);
        assert_eq!(s.missing(3, 7), vec![(4, 6)]);
        s.insert(4, 6);
        assert_eq!(s.ranges.len(), 1);
        assert_eq!(s.missing(0, 10), vec![(0, 2), (8, 10)]);
        s.insert(0, 1);
        s.insert(9, 12);
        assert_eq!(s.missing(0, 12), vec![(1, 2), (8, 9)]);
        assert_eq!(s.missing(7, 9), vec![(8, 9)]);
    }

    #[test]
    fn writes_then_restore_give_original_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let orig = image(3 * 1024 * 1024 + 1000);
        let mem = MemDisk::new(orig.clone());
        let path = dir.path().join("u");
        let u = UndoDev::create(&mem, &path).unwrap();
        u.write_all_at(10, b"hello").unwrap();
        u.write_all_at(4090, &[9u8; 100]).unwrap();
        u.write_all_at(1 << 20, &vec![0xAB; 3 * 4096 + 5]).unwrap();
        let z = orig.len() / 3;
        u.write_all_at(z as u64 + 1, &[1u8; 8000]).unwrap();
        // The short last chunk.
        u.write_all_at(orig.len() as u64 - 3, b"end").unwrap();
        u.sync().unwrap();
        // Already saved: no new record, no sync.
        let before = u.stats();
        u.write_all_at(12, b"again").unwrap();
        u.sync().unwrap();
        assert_eq!(u.stats().syncs, before.syncs);
        assert_eq!(u.stats().records, before.records);
        u.complete().unwrap();
        assert!(u.write_all_at(0, b"x").is_err());
        assert_ne!(sha(&mem.to_vec()), sha(&orig));
        let rep = restore(&path, &mem).unwrap();
        assert!(rep.complete);
        assert_eq!(rep.ignored_tail, 0);
        assert_eq!(mem.to_vec(), orig);
    }

    #[test]
    fn one_sync_per_write_and_zero_chunks_have_no_payload() {
        let dir = tempfile::tempdir().unwrap();
        let mut orig = vec![0u8; 8 << 20];
        orig[5 << 20..6 << 20].fill(0x55);
        let mem = MemDisk::new(orig.clone());
        let path = dir.path().join("u");
        let u = UndoDev::create(&mem, &path).unwrap();
        // One big write over 2 MiB of zeros and 1 MiB of data, beyond MAX_RECORD_LEN
        // pieces: one sync.
        u.write_all_at(3 << 20, &vec![7u8; 3 << 20]).unwrap();
        u.sync().unwrap();
        let st = u.stats();
        assert_eq!(st.syncs, 1);
        assert_eq!(st.saved_bytes, 3 << 20);
        // Payload only for the 1 MiB of data.
        let flen = std::fs::metadata(&path).unwrap().len();
        assert!(flen < (1 << 20) + 4096, "undo file is {flen} bytes");
        drop(u);
        restore(&path, &mem).unwrap();
        assert_eq!(mem.to_vec(), orig);
    }

    #[test]
    fn refuses_existing_file_and_other_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u");
        std::fs::write(&path, b"keep me").unwrap();
        let mem = MemDisk::new(image(1 << 20));
        let e = UndoDev::create(&mem, &path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");

        let path2 = dir.path().join("u2");
        let u = UndoDev::create(&mem, &path2).unwrap();
        u.write_all_at(100, b"changed").unwrap();
        drop(u);
        // Same size, different bytes.
        let other = MemDisk::new(pattern(1 << 20, 99));
        let before = other.to_vec();
        let e = restore(&path2, &other).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(e.to_string().contains("different image"), "{e}");
        assert_eq!(other.to_vec(), before);
        // Different size.
        let other = MemDisk::new(image(2 << 20));
        let e = restore(&path2, &other).unwrap_err();
        assert!(e.to_string().contains("different image"), "{e}");
        // Not an undo file.
        let e = restore(&path, &mem).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    /// Replay of a crash at every byte of the undo file: the device holds exactly the
    /// writes whose saving append was completely synced; the undo file is cut
    /// anywhere. Restore must always give the original back.
    #[test]
    fn torn_log_restores_original_wherever_cut() {
        let dir = tempfile::tempdir().unwrap();
        let orig = image(24 * 1024 + 512);
        let writes: Vec<(u64, Vec<u8>)> = vec![
            (0, vec![1u8; 10]),
            (5000, vec![2u8; 9000]),
            (4096 * 2, vec![3u8; 10]),
            (orig.len() as u64 - 100, vec![4u8; 100]),
            (16000, vec![0u8; 6000]),
        ];
        // Record the log, and after each write the undo file length and the device.
        let mem = MemDisk::new(orig.clone());
        let path = dir.path().join("full");
        let u = UndoDev::create(&mem, &path).unwrap();
        let mut states = vec![(HEADER_LEN as u64, orig.clone())];
        for (off, b) in &writes {
            u.write_all_at(*off, b).unwrap();
            u.sync().unwrap();
            states.push((u.stats().file_len, mem.to_vec()));
        }
        // A crash leaves the header open: until the final record is durable, it is.
        let open_header = std::fs::read(&path).unwrap()[..HEADER_LEN].to_vec();
        u.complete().unwrap();
        let log = std::fs::read(&path).unwrap();
        // Every byte near a record boundary is too slow in a debug build: cut at
        // every 7th byte, and at every byte around the appends' ends.
        let near_end = |c: usize| states.iter().any(|(e, _)| (*e as usize).abs_diff(c) <= 40);
        for cut in (HEADER_LEN..=log.len()).filter(|&c| c % 7 == 0 || near_end(c) || c == log.len())
        {
            // The device state: the last write whose log end is within the cut.
            let dev_state = states
                .iter()
                .rev()
                .find(|(end, _)| *end as usize <= cut)
                .map(|(_, s)| s.clone())
                .unwrap();
            let p = dir.path().join(format!("cut{cut}"));
            let mut cut_log = open_header.clone();
            cut_log.extend_from_slice(&log[HEADER_LEN..cut]);
            std::fs::write(&p, &cut_log).unwrap();
            let dev = MemDisk::new(dev_state.clone());
            let rep = restore(&p, &dev).unwrap();
            assert_eq!(dev.to_vec(), orig, "cut at {cut}");
            assert_eq!(rep.complete, cut == log.len());
            // And a second time (an interrupted restore run again).
            restore(&p, &dev).unwrap();
            assert_eq!(dev.to_vec(), orig, "second restore, cut at {cut}");
            // The finished log cut there is damage: refused, nothing written.
            if cut < log.len() {
                std::fs::write(&p, &log[..cut]).unwrap();
                let dev = MemDisk::new(dev_state.clone());
                let e = restore(&p, &dev).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Corrupt, "cut at {cut}: {e}");
                assert!(e.to_string().contains("truncated after record"), "{e}");
                assert_eq!(dev.to_vec(), dev_state, "cut at {cut}");
            }
            std::fs::remove_file(&p).unwrap();
        }
    }

    #[test]
    fn corrupt_payload_stops_at_that_record() {
        let dir = tempfile::tempdir().unwrap();
        // Bigger than the fingerprint span, so that the damaged record is not
        // needed to check the identity.
        let orig = image(2 << 20);
        let mem = MemDisk::new(orig.clone());
        let path = dir.path().join("u");
        let u = UndoDev::create(&mem, &path).unwrap();
        u.write_all_at(0, &[1u8; 10]).unwrap();
        u.sync().unwrap();
        let end1 = u.stats().file_len;
        u.write_all_at(1 << 20, &[2u8; 10]).unwrap();
        drop(u);
        let mut log = std::fs::read(&path).unwrap();
        let last = log.len() - 1;
        log[last] ^= 0xFF;
        std::fs::write(&path, &log).unwrap();
        let rep = restore(&path, &mem).unwrap();
        assert_eq!(rep.records, 1);
        assert_eq!(rep.ignored_tail, log.len() as u64 - end1);
        assert!(rep.tail_reason.unwrap().contains("checksum"));
        // The first write was undone, the second (whose record is damaged) was not.
        let now = mem.to_vec();
        assert_eq!(now[..10], orig[..10]);
        assert_eq!(now[1 << 20..(1 << 20) + 10], [2u8; 10]);
    }

    #[test]
    fn held_writes_are_read_back_saved_together_and_issued_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let orig = image(4 << 20);
        let mem = MemDisk::new(orig.clone());
        let path = dir.path().join("u");
        let u = UndoDev::create(&mem, &path).unwrap();
        u.write_all_at(100, &[1u8; 5000]).unwrap();
        u.write_all_at(3000, &[2u8; 10]).unwrap();
        u.write_all_at(2 << 20, &[3u8; 10]).unwrap();
        // Not on the device yet, but visible, the later write on top.
        assert_eq!(mem.to_vec(), orig);
        let mut b = vec![0u8; 6000];
        u.read_exact_at(0, &mut b).unwrap();
        assert_eq!(b[..100], orig[..100]);
        assert_eq!(b[100..3000], [1u8; 2900]);
        assert_eq!(b[3000..3010], [2u8; 10]);
        assert_eq!(b[3010..5100], [1u8; 2090]);
        assert_eq!(b[5100..], orig[5100..6000]);
        u.sync().unwrap();
        let st = u.stats();
        assert_eq!(st.syncs, 1, "{st:?}");
        assert_eq!(st.device_writes, 3);
        let now = mem.to_vec();
        assert_eq!(now[..6000], b[..]);
        drop(u);
        restore(&path, &mem).unwrap();
        assert_eq!(mem.to_vec(), orig);
    }

    #[test]
    fn write_through_and_drop_issue_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let orig = image(1 << 20);
        let mem = MemDisk::new(orig.clone());
        let u = UndoDev::create_with_buffer(&mem, &dir.path().join("u"), 0).unwrap();
        u.write_all_at(10, b"abc").unwrap();
        assert_eq!(&mem.to_vec()[10..13], b"abc");
        assert_eq!(u.stats().syncs, 1);
        drop(u);
        let u = UndoDev::create(&mem, &dir.path().join("u2")).unwrap();
        u.write_all_at(20, b"def").unwrap();
        assert_eq!(&mem.to_vec()[20..23], &orig[20..23]);
        drop(u);
        assert_eq!(&mem.to_vec()[20..23], b"def");
        restore(&dir.path().join("u2"), &mem).unwrap();
        restore(&dir.path().join("u"), &mem).unwrap();
        assert_eq!(mem.to_vec(), orig);
    }

    #[test]
    fn a_finished_log_refuses_an_image_changed_since_or_another_copy() {
        let dir = tempfile::tempdir().unwrap();
        let orig = image(2 << 20);
        let path = dir.path().join("u");
        let a = MemDisk::new(orig.clone());
        let u = UndoDev::create(&a, &path).unwrap();
        u.write_all_at(1_500_000, &[5u8; 9000]).unwrap();
        u.write_all_at(10, &[5u8; 10]).unwrap();
        u.complete().unwrap();
        drop(u);
        // Another copy of the same original, changed differently in the same place.
        let b = MemDisk::new(orig.clone());
        b.write_all_at(1_500_000, &[6u8; 9000]).unwrap();
        b.write_all_at(10, &[5u8; 10]).unwrap();
        let before = b.to_vec();
        let e = restore(&path, &b).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(e.to_string().contains("not as the command left it"), "{e}");
        assert_eq!(b.to_vec(), before);
        // The image itself, changed after the command in a range it wrote.
        a.write_all_at(1_500_100, b"later").unwrap();
        assert_eq!(restore(&path, &a).unwrap_err().kind(), ErrorKind::Refused);
        // Put back as the command left it: accepted, and again after that (the
        // restore marked the log, as an interrupted one would be run again).
        a.write_all_at(1_500_100, &[5u8; 5]).unwrap();
        restore(&path, &a).unwrap();
        assert_eq!(a.to_vec(), orig);
        a.write_all_at(1_500_000, &[7u8; 3]).unwrap();
        let rep = restore(&path, &a).unwrap();
        assert!(rep.complete);
        assert_eq!(a.to_vec(), orig);
    }

    #[test]
    fn garbage_after_the_header_is_ignored_without_harm() {
        let dir = tempfile::tempdir().unwrap();
        let orig = image(1 << 20);
        let mem = MemDisk::new(orig.clone());
        let path = dir.path().join("u");
        drop(UndoDev::create(&mem, &path).unwrap());
        let mut log = std::fs::read(&path).unwrap();
        // An intact record header with a huge length, then noise.
        let fields = RecordHeader {
            kind: KIND_REGION,
            offset: 0,
            len: u64::MAX,
            flags: 0,
            payload_crc: 0,
            seq: 0,
            batch: 0,
        };
        let log_id = le64(&log, H_LOG_ID);
        push_record(&mut log, &fields, log_id, &[]);
        log.extend(pattern(10_000, 3));
        std::fs::write(&path, &log).unwrap();
        let rep = restore(&path, &mem).unwrap();
        assert_eq!(rep.records, 0);
        assert_eq!(rep.ignored_tail, 10_000 + RECORD_HEADER_LEN as u64);
        assert_eq!(mem.to_vec(), orig);
        // A damaged header is refused.
        log[0x30] ^= 1;
        std::fs::write(&path, &log).unwrap();
        assert_eq!(restore(&path, &mem).unwrap_err().kind(), ErrorKind::Corrupt);
        std::fs::write(&path, &log[..10]).unwrap();
        assert_eq!(
            restore(&path, &mem).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }

    /// The device failing under the log (power loss after k device writes): the
    /// log stops, and restore gives the original back.
    #[test]
    fn device_failure_under_the_log_stops_it_and_restores() {
        use crate::fault::FaultDev;
        let dir = tempfile::tempdir().unwrap();
        let orig = image(2 << 20);
        for k in 0..4 {
            let mem = MemDisk::new(orig.clone());
            let path = dir.path().join(format!("u{k}"));
            {
                let f = FaultDev::new(&mem, k);
                let u = UndoDev::create(&f, &path).unwrap();
                let mut failed = false;
                for i in 0..4u64 {
                    failed |= u.write_all_at(i * 300_000, &[9u8; 70_000]).is_err();
                }
                failed |= u.sync().is_err();
                assert!(failed, "k={k}");
                assert!(u.write_all_at(0, b"x").is_err(), "k={k}: not stopped");
            }
            restore(&path, &mem).unwrap();
            assert_eq!(mem.to_vec(), orig, "k={k}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Random writes, write-behind sizes and sync points; the log cut at a
        /// random length with the device as it was when that much of the log was
        /// durable: restore always gives the original bytes.
        #[test]
        fn random_writes_and_cuts_restore_the_original(
            size in 8_192usize..200_000,
            writes in proptest::collection::vec((0.0f64..1.0, 1usize..30_000, proptest::bool::ANY), 1..16),
            buffer in proptest::sample::select(vec![0usize, 5_000, 1 << 20]),
            cut_at in 0.0f64..1.0,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let orig = image(size);
            let mem = MemDisk::new(orig.clone());
            let path = dir.path().join("u");
            let u = UndoDev::create_with_buffer(&mem, &path, buffer).unwrap();
            let mut states = vec![(HEADER_LEN as u64, orig.clone())];
            for (i, (at, len, sync)) in writes.iter().enumerate() {
                let off = ((*at * size as f64) as usize).min(size - 1);
                let len = (*len).min(size - off);
                u.write_all_at(off as u64, &vec![i as u8 + 1; len]).unwrap();
                if *sync {
                    u.sync().unwrap();
                }
                states.push((u.stats().file_len, mem.to_vec()));
            }
            drop(u);
            states.push((std::fs::metadata(&path).unwrap().len(), mem.to_vec()));
            let log = std::fs::read(&path).unwrap();
            let cut = HEADER_LEN + ((log.len() - HEADER_LEN) as f64 * cut_at) as usize;
            let dev_state = states
                .iter()
                .rev()
                .find(|(end, _)| *end as usize <= cut)
                .map(|(_, s)| s.clone())
                .unwrap();
            std::fs::write(&path, &log[..cut]).unwrap();
            let dev = MemDisk::new(dev_state);
            restore(&path, &dev).unwrap();
            proptest::prop_assert!(dev.to_vec() == orig);
        }
    }

    /// A finished log over a 2 MiB image: three writes (three batches), the
    /// image as they left it, and the log's bytes.
    fn finished_log(dir: &Path) -> (Vec<u8>, Vec<u8>, PathBuf) {
        let orig = image(2 << 20);
        let mem = MemDisk::new(orig.clone());
        let path = dir.join("finished");
        let u = UndoDev::create(&mem, &path).unwrap();
        for (i, off) in [0u64, 1 << 20, 1_500_000].into_iter().enumerate() {
            u.write_all_at(off, &vec![i as u8 + 1; 9000]).unwrap();
            u.sync().unwrap();
        }
        u.complete().unwrap();
        drop(u);
        (orig, mem.to_vec(), path)
    }

    /// Offsets of the records of a log: (position, sequence number).
    fn record_positions(log: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut pos = HEADER_LEN;
        while pos + RECORD_HEADER_LEN <= log.len() {
            out.push(pos);
            let r = RecordHeader::parse(&log[pos..pos + RECORD_HEADER_LEN], le64(log, H_LOG_ID))
                .unwrap();
            pos += RECORD_HEADER_LEN + r.payload_len() as usize;
        }
        out
    }

    #[test]
    fn a_damaged_finished_log_is_refused_naming_the_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (_, written, path) = finished_log(dir.path());
        let log = std::fs::read(&path).unwrap();
        let recs = record_positions(&log);
        let last = *recs.last().unwrap();
        let p = dir.path().join("bad");
        let try_log = |bytes: &[u8], want: &str| {
            std::fs::write(&p, bytes).unwrap();
            let dev = MemDisk::new(written.clone());
            let e = restore(&p, &dev).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
            assert!(e.to_string().contains(want), "want {want:?}: {e}");
            assert_eq!(dev.to_vec(), written, "{e}");
        };
        try_log(&log[..log.len() - 1], "truncated after record");
        try_log(&log[..log.len() - 5000], "truncated after record");
        try_log(&log[..HEADER_LEN], "truncated after record 0 of");
        try_log(
            &log[..last],
            &format!("truncated after record {} of", recs.len() - 1),
        );
        let mut b = log.clone();
        b[last + RECORD_HEADER_LEN + 3] ^= 1;
        try_log(
            &b,
            &format!(
                "record {} at {last:#x}: payload checksum mismatch",
                recs.len() - 1
            ),
        );
        let mut b = log.clone();
        b[recs[1] + RECORD_HEADER_LEN + 100] ^= 1;
        try_log(
            &b,
            &format!("record 1 at {:#x}: payload checksum mismatch", recs[1]),
        );
        let mut b = log.clone();
        b[recs[1] + R_OFFSET] ^= 1;
        try_log(&b, "record 1");
        let mut b = log.clone();
        b.extend_from_slice(b"more");
        try_log(&b, "4 bytes after the final record");
        // The header: its own checksum.
        let mut b = log.clone();
        b[H_IMAGE_SIZE] ^= 1;
        std::fs::write(&p, &b).unwrap();
        let e = restore(&p, &MemDisk::new(written.clone())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("header checksum mismatch"), "{e}");
        // The log as written is fine.
        let dev = MemDisk::new(written.clone());
        assert!(restore(&path, &dev).unwrap().complete);
    }

    #[test]
    fn an_open_log_damaged_before_a_later_append_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let orig = image(2 << 20);
        let mem = MemDisk::new(orig.clone());
        let path = dir.path().join("u");
        let u = UndoDev::create(&mem, &path).unwrap();
        for off in [0u64, 1 << 20, 1_500_000] {
            u.write_all_at(off, &[9u8; 9000]).unwrap();
            u.sync().unwrap();
        }
        drop(u);
        let written = mem.to_vec();
        let mut log = std::fs::read(&path).unwrap();
        let recs = record_positions(&log);
        // A record of the second append damaged, the third append intact.
        let r = recs
            .iter()
            .copied()
            .find(|&p| {
                le64(&log, p + R_BATCH) != 0 && le64(&log, p + R_BATCH) == le64(&log, p + R_SEQ)
            })
            .unwrap();
        log[r + RECORD_HEADER_LEN + 1] ^= 1;
        std::fs::write(&path, &log).unwrap();
        let e = restore(&path, &mem).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("a record of a later append"), "{e}");
        assert_eq!(mem.to_vec(), written);
    }

    #[test]
    fn a_torn_last_append_with_intact_records_after_the_hole_restores() {
        let dir = tempfile::tempdir().unwrap();
        let orig = image(2 << 20);
        let mem = MemDisk::new(orig.clone());
        let path = dir.path().join("u");
        let u = UndoDev::create(&mem, &path).unwrap();
        u.write_all_at(0, &[1u8; 100]).unwrap();
        u.sync().unwrap();
        let before_last = mem.to_vec();
        let end1 = u.stats().file_len as usize;
        // One write over data and zero chunks: several records in one append.
        let z = (2 << 20) / 3;
        u.write_all_at(z as u64 - 8192, &vec![2u8; 6 * 4096])
            .unwrap();
        u.sync().unwrap();
        drop(u);
        let mut log = std::fs::read(&path).unwrap();
        let recs: Vec<usize> = record_positions(&log)
            .into_iter()
            .filter(|&p| p >= end1)
            .collect();
        assert!(recs.len() >= 3, "{recs:?}");
        // The crash: the first page of the last append never reached the file.
        log[end1..end1 + 4096].fill(0);
        std::fs::write(&path, &log).unwrap();
        // The device as before the last write (its sync never returned).
        let dev = MemDisk::new(before_last);
        let rep = restore(&path, &dev).unwrap();
        assert!(!rep.complete);
        assert_eq!(rep.records, 1);
        assert!(rep.tail_reason.unwrap().contains("record 1 at"));
        assert_eq!(dev.to_vec(), orig);
    }

    #[test]
    fn a_log_of_the_first_format_is_refused_as_older() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1");
        let mut h = vec![0u8; 0x50];
        h[..MAGIC.len()].copy_from_slice(MAGIC);
        h[H_VERSION..H_VERSION + 4].copy_from_slice(&1u32.to_le_bytes());
        std::fs::write(&path, &h).unwrap();
        let mem = MemDisk::new(image(1 << 20));
        let e = restore(&path, &mem).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("made by an older domuify"), "{e}");
    }

    #[test]
    fn works_over_a_file_disk() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        let orig = image(2 << 20);
        std::fs::write(&img, &orig).unwrap();
        let path = dir.path().join("u");
        {
            let disk = Disk::open(&img, Access::ReadWrite).unwrap();
            let u = UndoDev::create(disk, &path).unwrap();
            u.write_all_at(1 << 20, &[0xEEu8; 5000]).unwrap();
            u.write_all_at(0, &[0xEEu8; 5000]).unwrap();
            u.sync().unwrap();
            u.complete().unwrap();
        }
        assert_ne!(std::fs::read(&img).unwrap(), orig);
        let disk = Disk::open(&img, Access::ReadWrite).unwrap();
        restore(&path, &disk).unwrap();
        assert_eq!(std::fs::read(&img).unwrap(), orig);
    }
}

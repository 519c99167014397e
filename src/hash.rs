//! Hashes of a whole disk and of byte ranges of it (its partitions), computed in
//! one streaming read pass, as an examiner checks an acquisition.
//!
//! Each byte of the disk is read once, in large pieces, by a reader thread that
//! stays one piece ahead of the hashing; every hash (each algorithm over the whole
//! disk, and over every range the piece overlaps) is fed from that same buffer.
//! Several algorithms are hashed in parallel on the same piece. Holes of a sparse
//! image are read as the zeros they are. Only [`ReadAt`] is used, so a read-only
//! disk stays read-only.

use std::collections::BTreeMap;
use std::sync::mpsc;

use serde::Serialize;
use sha2::digest::DynDigest;

use crate::disk::ReadAt;
use crate::error::{Error, Result};

/// Bytes read and hashed at a time.
const PIECE: usize = 4 << 20;

/// A hash algorithm an examiner asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// SHA-256 (what `sha256sum` prints).
    Sha256,
    /// SHA-1 (what `sha1sum` prints).
    Sha1,
    /// MD5 (what `md5sum` prints).
    Md5,
}

impl Algorithm {
    /// Its name as the JSON keys and the tools name it: `sha256`, `sha1`, `md5`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha1 => "sha1",
            Algorithm::Md5 => "md5",
        }
    }

    fn hasher(self) -> Box<dyn DynDigest + Send> {
        match self {
            Algorithm::Sha256 => Box::new(sha2::Sha256::default()),
            Algorithm::Sha1 => Box::new(sha1::Sha1::default()),
            Algorithm::Md5 => Box::new(md5::Md5::default()),
        }
    }
}

/// Hex digests keyed by algorithm name (`{"sha256": "…", "md5": "…"}`).
pub type Hashes = BTreeMap<String, String>;

/// The result of [`hash_disk`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskHashes {
    /// Over every byte of the disk.
    pub whole: Hashes,
    /// Over each requested range, in the order given (a range running past the
    /// disk's end is hashed over the bytes the disk holds, as `dd` reads them).
    pub ranges: Vec<Hashes>,
}

/// One algorithm's hashers: the whole disk and each range.
struct Lane {
    algorithm: Algorithm,
    whole: Box<dyn DynDigest + Send>,
    ranges: Vec<Box<dyn DynDigest + Send>>,
}

impl Lane {
    /// Feed the piece of the disk starting at `offset`.
    fn update(&mut self, offset: u64, piece: &[u8], ranges: &[(u64, u64)]) {
        self.whole.update(piece);
        let end = offset + piece.len() as u64;
        for (h, &(start, stop)) in self.ranges.iter_mut().zip(ranges) {
            let (lo, hi) = (start.max(offset), stop.min(end));
            if lo < hi {
                // OK to cast: both lie within the piece, which is a usize long.
                h.update(&piece[(lo - offset) as usize..(hi - offset) as usize]);
            }
        }
    }
}

/// Hash all of `dev` with each of `algorithms`, and each `(start, len)` range of
/// it, reading every byte once. `progress` is called with the bytes done so far
/// after each piece. An empty `algorithms` reads nothing.
pub fn hash_disk<D: ReadAt + Sync + ?Sized>(
    dev: &D,
    ranges: &[(u64, u64)],
    algorithms: &[Algorithm],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<DiskHashes> {
    let mut algorithms = algorithms.to_vec();
    algorithms.sort();
    algorithms.dedup();
    if algorithms.is_empty() {
        return Ok(DiskHashes::default());
    }
    let size = dev.size();
    // Ranges as [start, end), cut at the disk's end.
    let bounds: Vec<(u64, u64)> = ranges
        .iter()
        .map(|&(s, l)| (s.min(size), s.saturating_add(l).min(size)))
        .collect();
    let mut lanes: Vec<Lane> = algorithms
        .iter()
        .map(|&a| Lane {
            algorithm: a,
            whole: a.hasher(),
            ranges: bounds.iter().map(|_| a.hasher()).collect(),
        })
        .collect();

    let piece_len = |off: u64| -> usize {
        // OK to cast: at most PIECE.
        (size - off).min(PIECE as u64) as usize
    };
    std::thread::scope(|s| -> Result<()> {
        // Two buffers go round: the reader fills one while the other is hashed.
        let (full_tx, full_rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(1);
        let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
        for _ in 0..2 {
            let _ = empty_tx.send(Vec::new());
        }
        let reader = s.spawn(move || -> Result<()> {
            let mut off = 0u64;
            while off < size {
                let Ok(mut buf) = empty_rx.recv() else {
                    return Ok(()); // the hashing side stopped
                };
                let n = piece_len(off);
                buf.resize(n, 0);
                dev.read_exact_at(off, &mut buf)?;
                if full_tx.send((off, buf)).is_err() {
                    return Ok(());
                }
                off += n as u64;
            }
            Ok(())
        });
        for (off, buf) in full_rx.iter() {
            let (first, rest) = lanes.split_first_mut().expect("one algorithm at least");
            std::thread::scope(|h| {
                for lane in rest {
                    let (buf, bounds) = (&buf, &bounds);
                    h.spawn(move || lane.update(off, buf, bounds));
                }
                first.update(off, &buf, &bounds);
            });
            progress(off + buf.len() as u64);
            let _ = empty_tx.send(buf);
        }
        reader
            .join()
            .map_err(|_| Error::invalid("the reading thread of the hash pass panicked"))?
    })?;

    let mut out = DiskHashes {
        whole: Hashes::new(),
        ranges: vec![Hashes::new(); bounds.len()],
    };
    for lane in lanes {
        let name = lane.algorithm.name().to_string();
        out.whole.insert(name.clone(), hex(&lane.whole.finalize()));
        for (slot, h) in out.ranges.iter_mut().zip(lane.ranges) {
            slot.insert(name.clone(), hex(&h.finalize()));
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mem(Vec<u8>);
    impl ReadAt for Mem {
        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
            crate::disk::check_range(offset, buf.len(), self.size(), &"mem")?;
            let o = offset as usize;
            buf.copy_from_slice(&self.0[o..o + buf.len()]);
            Ok(())
        }
        fn size(&self) -> u64 {
            self.0.len() as u64
        }
    }

    fn one(a: Algorithm, bytes: &[u8]) -> String {
        let mut h = a.hasher();
        h.update(bytes);
        hex(&h.finalize())
    }

    #[test]
    fn ranges_across_pieces_match_hashing_the_slice() {
        // Longer than two pieces, with ranges across piece boundaries, one past
        // the end and one empty.
        let data: Vec<u8> = (0..(2 * PIECE + 12345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let len = data.len() as u64;
        let ranges = [
            (0, 512),
            (PIECE as u64 - 7, PIECE as u64 + 100),
            (len - 10, 1000),
            (len + 5, 10),
        ];
        let all = [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha1];
        let got = hash_disk(&Mem(data.clone()), &ranges, &all, &|_| {}).unwrap();
        for a in all {
            assert_eq!(got.whole[a.name()], one(a, &data));
            for (i, &(s, l)) in ranges.iter().enumerate() {
                let (s, e) = ((s.min(len)) as usize, ((s + l).min(len)) as usize);
                assert_eq!(got.ranges[i][a.name()], one(a, &data[s..e]), "{a:?} {i}");
            }
        }
        // Known answer: sha256 of nothing.
        let empty = hash_disk(&Mem(Vec::new()), &[], &[Algorithm::Sha256], &|_| {}).unwrap();
        assert_eq!(
            empty.whole["sha256"],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_read_error_is_an_error() {
        struct Short;
        impl ReadAt for Short {
            fn read_exact_at(&self, offset: u64, _: &mut [u8]) -> Result<()> {
                Err(Error::corrupt(format!("bad sector at {offset:#x}")))
            }
            fn size(&self) -> u64 {
                1 << 20
            }
        }
        assert!(hash_disk(&Short, &[], &[Algorithm::Md5], &|_| {}).is_err());
    }
}

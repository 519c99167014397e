//! Fuzz target: the partition reader and the filesystem probes on arbitrary
//! bytes taken as a whole disk. Any panic, hang or huge allocation is a bug.
//!
//! Run (nightly, cargo-fuzz): `cargo +nightly fuzz run part_probe -- -max_len=131072`
//! after `fuzz/make-corpus.sh` has seeded `fuzz/corpus/part_probe`.

#![no_main]

use domuify::disk::MemDisk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let disk = MemDisk::new(data.to_vec());
    for sector_size in [512, 4096] {
        if let Ok(t) = domuify::part::read_table(&disk, sector_size) {
            for p in &t.partitions {
                if let Some(w) = p.readable_window(&disk) {
                    let _ = domuify::probe::probe(&w);
                }
            }
        }
    }
    let _ = domuify::probe::probe(&disk);
});

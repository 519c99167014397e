//! The least memory a domU needs to boot a kernel with its initramfs.
//!
//! The kernel unpacks the initramfs into RAM (tmpfs) before anything else runs,
//! while the compressed file is still in memory; on top of that come the kernel
//! itself, its page tables and the first userspace. Measured under Xen: Debian
//! 12's initramfs (about 36 MB compressed, 130 MB unpacked) panics out of
//! memory in a PV domU of 256 MiB and boots in 512 MiB.
//!
//! The rule: `1.25 × (128 MiB + compressed + unpacked)`, rounded up to a
//! multiple of 32 MiB. 128 MiB is the base a small guest kernel and its first
//! processes need; 25% is the margin for what the unpacking itself allocates
//! (page cache, dentries, the decompressor). Debian 12: 1.25 × (128 + 36 + 130)
//! ≈ 368, so 384 MiB; no initramfs: 160 MiB.

const MIB: u64 = 1 << 20;
/// What the kernel and its first processes need before the initramfs.
pub const BASE_MIB: u64 = 128;
/// Rounded up to this.
pub const STEP_MIB: u64 = 32;

/// The least memory (MiB) for a domU whose initramfs is `compressed` bytes
/// and unpacks to `unpacked` bytes (both 0 without an initramfs).
pub fn min_memory_mib(compressed: u64, unpacked: u64) -> u64 {
    let need = BASE_MIB * MIB + compressed.saturating_add(unpacked);
    // × 1.25, in bytes, then to MiB rounded up.
    let with_margin = need.saturating_add(need / 4);
    with_margin
        .div_ceil(STEP_MIB * MIB)
        .saturating_mul(STEP_MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_12_needs_more_than_256_and_at_most_512() {
        let m = min_memory_mib(36_000_000, 130_000_000);
        assert!(m > 256 && m <= 512, "{m}");
        assert_eq!(m, 384);
        assert_eq!(min_memory_mib(0, 0), 160);
        assert_eq!(min_memory_mib(u64::MAX, u64::MAX) % STEP_MIB, 0);
        // Monotone.
        assert!(min_memory_mib(10 * MIB, 300 * MIB) > min_memory_mib(10 * MIB, 100 * MIB));
    }
}

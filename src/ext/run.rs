//! A mapped run of a file (logical block, physical block, length), the common
//! currency of extent trees, indirect block maps and the data streaming that
//! builds them. A leaf: `extent`, `blockmap` and `file` all use it, so none of
//! them needs another for the type.

/// Most runs (extents, block-map fragments) a mapping may hold in memory
/// (24 MiB): a bound against hostile trees; real files stay far below.
pub const MAX_RUNS: usize = 1 << 20;

/// A mapped run: `len` blocks from logical `lblk` at physical `pblk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First logical block.
    pub lblk: u32,
    /// First physical block.
    pub pblk: u64,
    /// Number of blocks.
    pub len: u32,
    /// An uninitialised extent (reads as zeros).
    pub uninit: bool,
}

/// Append a run, merging with the last one when contiguous.
pub fn push_run(runs: &mut Vec<Run>, r: Run) {
    if let Some(last) = runs.last_mut() {
        if last.uninit == r.uninit
            && last.lblk.checked_add(last.len) == Some(r.lblk)
            && last.pblk + u64::from(last.len) == r.pblk
        {
            if let Some(n) = last.len.checked_add(r.len) {
                last.len = n;
                return;
            }
        }
    }
    runs.push(r);
}

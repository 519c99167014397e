//! Our ext2/3/4 engine: reads and writes a filesystem in place inside a partition
//! window, as libext2fs does. (Being built; see issue 3.)

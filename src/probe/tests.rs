//! Filesystem probe tests (filled below).

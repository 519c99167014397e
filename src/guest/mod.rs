//! The installed system on an ext filesystem, as planners see it. (Being built.)

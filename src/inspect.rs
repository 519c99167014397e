//! The whole-disk report behind `domuify inspect`. (Being built.)

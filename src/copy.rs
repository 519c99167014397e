//! Copying trees between the host and a guest filesystem (`copy-in`, `copy-out`).

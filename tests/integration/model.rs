//! Model test (coming).

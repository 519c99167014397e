//! `domuify undo` and crash safety: undo files restore images bit for bit, and a
//! fault-injecting disk interrupts engine operations after every write.

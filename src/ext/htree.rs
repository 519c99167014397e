//! htree (dx) directories: the dx_root and dx_node blocks, lookup by hash, and
//! insertion that splits a full leaf and grows the tree. (Being built.)

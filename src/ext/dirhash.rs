//! The ext4 directory-index hash (`ext4fs_dirhash`): legacy, half_md4 and tea, each
//! signed or unsigned. (Being built.)

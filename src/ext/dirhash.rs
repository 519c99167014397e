//! The ext4 directory-index hash (`ext4fs_dirhash`): legacy (`dx_hack_hash`),
//! half_md4 and tea, each with signed or unsigned `char` arithmetic.
//!
//! The version numbers are the on-disk ones (`dx_root_info.hash_version`,
//! `s_def_hash_version`): 0 legacy, 1 half_md4, 2 tea, 3-5 their unsigned
//! variants. A root stores 0-2; the superblock's unsigned-hash flag turns them
//! into 3-5 ([`effective_version`]). siphash (6) exists only with casefold +
//! encryption, which are refused, so it is reported as unsupported.

use crate::error::{Error, Result};

/// `DX_HASH_LEGACY`.
pub const DX_HASH_LEGACY: u8 = 0;
/// `DX_HASH_HALF_MD4`.
pub const DX_HASH_HALF_MD4: u8 = 1;
/// `DX_HASH_TEA`.
pub const DX_HASH_TEA: u8 = 2;
/// `DX_HASH_LEGACY_UNSIGNED`.
pub const DX_HASH_LEGACY_UNSIGNED: u8 = 3;
/// `DX_HASH_HALF_MD4_UNSIGNED`.
pub const DX_HASH_HALF_MD4_UNSIGNED: u8 = 4;
/// `DX_HASH_TEA_UNSIGNED`.
pub const DX_HASH_TEA_UNSIGNED: u8 = 5;

/// The largest 32-bit hash value a name may take (`EXT4_HTREE_EOF_32BIT`).
const HTREE_EOF_32BIT: u32 = 0x7fff_ffff;

/// The version to hash with, given the version stored in a dx_root (or the
/// superblock default) and the superblock's unsigned-hash flag: 0-2 become 3-5
/// when hashing is unsigned; 3-5 stay as they are.
pub fn effective_version(stored: u8, unsigned: bool) -> u8 {
    if stored <= DX_HASH_TEA && unsigned {
        stored + 3
    } else {
        stored
    }
}

/// One name byte as the C `char` of the hashing machine: sign-extended for the
/// signed variants, zero-extended for the unsigned ones.
fn char_value(b: u8, signed: bool) -> u32 {
    if signed {
        // Sign extension of a C `signed char` to 32 bits.
        i32::from(b as i8) as u32
    } else {
        u32::from(b)
    }
}

/// `dx_hack_hash`: the legacy hash.
fn dx_hack_hash(name: &[u8], signed: bool) -> u32 {
    let mut hash0: u32 = 0x12a3_fe2d;
    let mut hash1: u32 = 0x37ab_e8f9;
    for &b in name {
        let mut hash = hash1.wrapping_add(hash0 ^ char_value(b, signed).wrapping_mul(7_152_373));
        if hash & 0x8000_0000 != 0 {
            hash = hash.wrapping_sub(0x7fff_ffff);
        }
        hash1 = hash0;
        hash0 = hash;
    }
    hash0 << 1
}

/// `str2hashbuf`: pack up to `num * 4` bytes of `msg` into `num` words, padded
/// with a word made of the (whole remaining) length.
fn str2hashbuf(msg: &[u8], num: usize, signed: bool, out: &mut [u32; 8]) {
    // The length is at most 255 bytes of a name, so the casts are exact.
    let len = msg.len() as u32;
    let mut pad = len | (len << 8);
    pad |= pad << 16;
    let mut val = pad;
    let take = msg.len().min(num * 4);
    let mut n = 0usize;
    for (i, &b) in msg.iter().take(take).enumerate() {
        val = char_value(b, signed).wrapping_add(val << 8);
        if i % 4 == 3 {
            if let Some(w) = out.get_mut(n) {
                *w = val;
            }
            n += 1;
            val = pad;
        }
    }
    if n < num {
        if let Some(w) = out.get_mut(n) {
            *w = val;
        }
        n += 1;
    }
    while n < num {
        if let Some(w) = out.get_mut(n) {
            *w = pad;
        }
        n += 1;
    }
}

fn half_md4_transform(buf: &mut [u32; 4], inp: &[u32; 8]) {
    const K2: u32 = 0o13240474631;
    const K3: u32 = 0o15666365641;
    fn f(x: u32, y: u32, z: u32) -> u32 {
        z ^ (x & (y ^ z))
    }
    fn g(x: u32, y: u32, z: u32) -> u32 {
        (x & y).wrapping_add((x ^ y) & z)
    }
    fn h(x: u32, y: u32, z: u32) -> u32 {
        x ^ y ^ z
    }
    fn round(fun: fn(u32, u32, u32) -> u32, a: &mut u32, b: u32, c: u32, d: u32, x: u32, s: u32) {
        *a = a.wrapping_add(fun(b, c, d)).wrapping_add(x).rotate_left(s);
    }
    let [mut a, mut b, mut c, mut d] = *buf;
    let i = inp;

    round(f, &mut a, b, c, d, i[0], 3);
    round(f, &mut d, a, b, c, i[1], 7);
    round(f, &mut c, d, a, b, i[2], 11);
    round(f, &mut b, c, d, a, i[3], 19);
    round(f, &mut a, b, c, d, i[4], 3);
    round(f, &mut d, a, b, c, i[5], 7);
    round(f, &mut c, d, a, b, i[6], 11);
    round(f, &mut b, c, d, a, i[7], 19);

    round(g, &mut a, b, c, d, i[1].wrapping_add(K2), 3);
    round(g, &mut d, a, b, c, i[3].wrapping_add(K2), 5);
    round(g, &mut c, d, a, b, i[5].wrapping_add(K2), 9);
    round(g, &mut b, c, d, a, i[7].wrapping_add(K2), 13);
    round(g, &mut a, b, c, d, i[0].wrapping_add(K2), 3);
    round(g, &mut d, a, b, c, i[2].wrapping_add(K2), 5);
    round(g, &mut c, d, a, b, i[4].wrapping_add(K2), 9);
    round(g, &mut b, c, d, a, i[6].wrapping_add(K2), 13);

    round(h, &mut a, b, c, d, i[3].wrapping_add(K3), 3);
    round(h, &mut d, a, b, c, i[7].wrapping_add(K3), 9);
    round(h, &mut c, d, a, b, i[2].wrapping_add(K3), 11);
    round(h, &mut b, c, d, a, i[6].wrapping_add(K3), 15);
    round(h, &mut a, b, c, d, i[1].wrapping_add(K3), 3);
    round(h, &mut d, a, b, c, i[5].wrapping_add(K3), 9);
    round(h, &mut c, d, a, b, i[0].wrapping_add(K3), 11);
    round(h, &mut b, c, d, a, i[4].wrapping_add(K3), 15);

    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

fn tea_transform(buf: &mut [u32; 4], inp: &[u32; 8]) {
    const DELTA: u32 = 0x9E37_79B9;
    let mut sum: u32 = 0;
    let (mut b0, mut b1) = (buf[0], buf[1]);
    let (a, b, c, d) = (inp[0], inp[1], inp[2], inp[3]);
    for _ in 0..16 {
        sum = sum.wrapping_add(DELTA);
        b0 = b0.wrapping_add(
            (b1 << 4).wrapping_add(a) ^ b1.wrapping_add(sum) ^ (b1 >> 5).wrapping_add(b),
        );
        b1 = b1.wrapping_add(
            (b0 << 4).wrapping_add(c) ^ b0.wrapping_add(sum) ^ (b0 >> 5).wrapping_add(d),
        );
    }
    buf[0] = buf[0].wrapping_add(b0);
    buf[1] = buf[1].wrapping_add(b1);
}

/// Hash `name` with hash `version` (0-5, see the module doc) and `seed`
/// (`s_hash_seed`; all zero means the default MD4 constants). Returns
/// `(major, minor)`; the major hash has its low bit clear (that bit marks a
/// collision continuation in the index).
pub fn dirhash(name: &[u8], version: u8, seed: &[u32; 4]) -> Result<(u32, u32)> {
    let mut buf: [u32; 4] = if seed.iter().any(|&w| w != 0) {
        *seed
    } else {
        [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476]
    };
    let mut inp = [0u32; 8];
    let (hash, minor) = match version {
        DX_HASH_LEGACY | DX_HASH_LEGACY_UNSIGNED => {
            (dx_hack_hash(name, version == DX_HASH_LEGACY), 0)
        }
        DX_HASH_HALF_MD4 | DX_HASH_HALF_MD4_UNSIGNED => {
            let signed = version == DX_HASH_HALF_MD4;
            let mut rest = name;
            while !rest.is_empty() {
                str2hashbuf(rest, 8, signed, &mut inp);
                half_md4_transform(&mut buf, &inp);
                rest = rest.get(32..).unwrap_or(&[]);
            }
            (buf[1], buf[2])
        }
        DX_HASH_TEA | DX_HASH_TEA_UNSIGNED => {
            let signed = version == DX_HASH_TEA;
            let mut rest = name;
            while !rest.is_empty() {
                str2hashbuf(rest, 4, signed, &mut inp);
                tea_transform(&mut buf, &inp);
                rest = rest.get(16..).unwrap_or(&[]);
            }
            (buf[0], buf[1])
        }
        v => {
            return Err(Error::unsupported(format!(
                "directory hash version {v} (only legacy, half_md4 and tea are handled)"
            )))
        }
    };
    let mut hash = hash & !1;
    if hash == HTREE_EOF_32BIT << 1 {
        hash = (HTREE_EOF_32BIT - 1) << 1;
    }
    Ok((hash, minor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Names that exercise every path: short, exactly 16/32 bytes, long (several
    /// chunks), and bytes >= 0x80 where signed and unsigned hashing differ.
    fn names() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = vec![
            b"a".to_vec(),
            b"lost+found".to_vec(),
            "héllo".as_bytes().to_vec(),
            "日本語のファイル名".as_bytes().to_vec(),
            vec![0xff; 7],
            vec![0x80, 0x81, b'z'],
        ];
        let mut x = 0x2545_F491u32;
        for len in (1..=255usize)
            .step_by(7)
            .chain([15, 16, 17, 31, 32, 33, 64, 255])
        {
            let mut n = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Letters, digits, `._-+`, or a high byte: nothing debugfs's
                // command parser treats specially (quotes, spaces).
                const SAFE: &[u8] =
                    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+";
                let r = (x % 256) as usize;
                n.push(if r >= 0x80 {
                    r as u8
                } else {
                    SAFE[r % SAFE.len()]
                });
            }
            v.push(n);
        }
        v
    }

    fn seed_words(uuid: &[u8; 16]) -> [u32; 4] {
        let mut s = [0u32; 4];
        for (i, w) in s.iter_mut().enumerate() {
            let b = &uuid[i * 4..i * 4 + 4];
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        s
    }

    fn uuid_str(u: &[u8; 16]) -> String {
        let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// Judge: debugfs's `dx_hash` (libext2fs's ext2fs_dirhash) for every name,
    /// version 0-5, and two seeds (one random-looking, one all zero = default).
    #[test]
    fn matches_debugfs_dx_hash() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        std::fs::write(&img, b"").unwrap();
        let st = Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4"])
            .arg(&img)
            .arg("2M")
            .status()
            .unwrap();
        assert!(st.success());
        let seeds = [
            [
                0xf1, 0x11, 0x08, 0xd6, 0x6d, 0x31, 0x40, 0x41, 0x8f, 0xe0, 0xb5, 0xc0, 0x9b, 0xfa,
                0xf8, 0x94,
            ],
            [0u8; 16],
        ];
        let names = names();
        let mut cmds = Vec::new();
        let mut want = Vec::new();
        for seed in &seeds {
            for version in 0..=5u8 {
                for n in &names {
                    cmds.extend_from_slice(
                        format!("dx_hash -h {version} -s {} ", uuid_str(seed)).as_bytes(),
                    );
                    cmds.extend_from_slice(n);
                    cmds.push(b'\n');
                    want.push(dirhash(n, version, &seed_words(seed)).unwrap());
                }
            }
        }
        let cmdfile = dir.path().join("cmds");
        std::fs::write(&cmdfile, &cmds).unwrap();
        let out = Command::new("debugfs")
            .arg("-f")
            .arg(&cmdfile)
            .arg(&img)
            .output()
            .unwrap();
        let text = out.stdout;
        let got: Vec<(u32, u32)> = text
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"Hash of "))
            .map(|l| {
                let s = String::from_utf8_lossy(l);
                let (_, rest) = s.rsplit_once(" is 0x").unwrap();
                let (major, minor) = rest.split_once(" (minor 0x").unwrap();
                (
                    u32::from_str_radix(major, 16).unwrap(),
                    u32::from_str_radix(minor.trim_end_matches(')'), 16).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got.len(),
            want.len(),
            "{}",
            std::ffi::OsStr::from_bytes(&text[..200.min(text.len())]).to_string_lossy()
        );
        let mut differ = 0;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if g != w {
                differ += 1;
                eprintln!("#{i}: debugfs {g:08x?} ours {w:08x?}");
            }
        }
        assert_eq!(differ, 0);
        // Signed and unsigned really differ on these names (the test can fail).
        let hi = "héllo".as_bytes();
        assert_ne!(
            dirhash(hi, 1, &[1, 2, 3, 4]).unwrap(),
            dirhash(hi, 4, &[1, 2, 3, 4]).unwrap()
        );
    }

    #[test]
    fn effective_versions() {
        assert_eq!(effective_version(1, true), 4);
        assert_eq!(effective_version(1, false), 1);
        assert_eq!(effective_version(5, false), 5);
        assert!(dirhash(b"x", 6, &[0; 4]).is_err());
    }
}

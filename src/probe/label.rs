//! Volume labels as blkid gives them (`ID_FS_LABEL_ENC`, decoded).
//!
//! Owns [`Label`]: the label's bytes as blkid reports them. Formats that store a
//! label in UTF-16 (NTFS, exFAT, F2FS, UDF, Joliet) are decoded to UTF-8, as blkid
//! decodes them; formats that store 8-bit bytes (FAT, ext, XFS, swap, ...) keep
//! their raw bytes, without a guess at a code page, as blkid does. Displayed and
//! serialized as the text when the bytes are valid UTF-8, else in an escaped form
//! that keeps every byte: each byte of an invalid sequence, and every backslash,
//! written `\xNN` (as `ID_FS_LABEL_ENC` writes them).

use std::fmt;

use serde::{Serialize, Serializer};

/// A volume label: the bytes blkid reports, never empty.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Label(Vec<u8>);

impl Label {
    /// An 8-bit on-disk label: the bytes up to the first NUL, trailing white
    /// space removed (blkid's `blkid_probe_set_label`); `None` when nothing is
    /// left.
    pub fn from_raw(raw: &[u8]) -> Option<Label> {
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Label::trimmed(raw.get(..end).unwrap_or(&[]).to_vec())
    }

    /// A UTF-16LE label, decoded up to the first NUL unit (an unpaired
    /// surrogate becomes U+FFFD), trailing white space removed.
    pub fn from_utf16le(raw: &[u8]) -> Option<Label> {
        Label::from_utf16(raw, u16::from_le_bytes)
    }

    /// A UTF-16BE label (Joliet, UDF), decoded as [`Label::from_utf16le`].
    pub fn from_utf16be(raw: &[u8]) -> Option<Label> {
        Label::from_utf16(raw, u16::from_be_bytes)
    }

    /// A Latin-1 label (UDF's 8-bit compression id), decoded to UTF-8.
    pub fn from_latin1(raw: &[u8]) -> Option<Label> {
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let s: String = raw.iter().take(end).map(|&b| char::from(b)).collect();
        Label::trimmed(s.into_bytes())
    }

    fn from_utf16(raw: &[u8], unit: fn([u8; 2]) -> u16) -> Option<Label> {
        let units: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| unit([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        Label::trimmed(String::from_utf16_lossy(&units).into_bytes())
    }

    fn trimmed(mut b: Vec<u8>) -> Option<Label> {
        while b.last().is_some_and(|c| c.is_ascii_whitespace()) {
            b.pop();
        }
        (!b.is_empty()).then_some(Label(b))
    }

    /// The label's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text, when the bytes are valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl From<&str> for Label {
    fn from(s: &str) -> Label {
        Label(s.as_bytes().to_vec())
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.as_str() {
            return f.write_str(s);
        }
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c == '\\' {
                    f.write_str("\\x5c")?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Label({self})")
    }
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_labels_keep_their_bytes_and_escape_only_when_not_utf8() {
        let l = Label::from_raw(b"CAF\xc9 D\\  \0junk").expect("label");
        assert_eq!(l.as_bytes(), b"CAF\xc9 D\\");
        assert_eq!(l.to_string(), "CAF\\xc9 D\\x5c");
        let u = Label::from_raw("café\\".as_bytes()).expect("label");
        assert_eq!(u.to_string(), "café\\");
        assert_eq!(Label::from_raw(b"   \0x"), None);
    }

    #[test]
    fn utf16_labels_are_decoded() {
        let le: Vec<u8> = "Été ".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(Label::from_utf16le(&le).expect("le").to_string(), "Été");
        let be: Vec<u8> = "日本\0x"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(Label::from_utf16be(&be).expect("be").to_string(), "日本");
        assert_eq!(
            Label::from_latin1(b"\xe9t\xe9").expect("l1").to_string(),
            "été"
        );
    }
}

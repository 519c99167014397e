//! Findings: the one shape of a diagnostic, used by every layer (partition
//! tables, probes, the guest model, plans) and by the JSON reports.
//!
//! A finding says how bad it is ([`Severity`]), where it is (a place in words:
//! `"partition table"`, `"partition 5"`, `"partition 5: /etc/fstab line 3"`),
//! at which byte offset of the disk when one is known, and what it is.
//! `Damage` means the disk or a filesystem is damaged (inspect exits 1);
//! `Warning` is something a user must know before acting (a swap shared with
//! dom0, an fstab entry left unresolved); `Note` is a limit met that is neither
//! (a reader that fell back, a listing cut short).

use serde::Serialize;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A limit met that is neither damage nor a risk.
    Note,
    /// Something to know before acting; not damage.
    Warning,
    /// Damage: the disk or a filesystem is not what its own metadata says.
    Damage,
}

/// One diagnostic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// Where, in words (`"partition 5: /etc/fstab line 3"`).
    #[serde(rename = "where")]
    pub place: String,
    /// Byte offset on the disk, when known.
    pub offset: Option<u64>,
    /// What it is.
    pub message: String,
}

impl Finding {
    /// A finding of `severity` at `place`.
    pub fn new(severity: Severity, place: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity,
            place: place.into(),
            offset: None,
            message: message.into(),
        }
    }

    /// Damage at `place`.
    pub fn damage(place: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Damage, place, message)
    }

    /// A warning at `place`.
    pub fn warning(place: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, place, message)
    }

    /// A note at `place`.
    pub fn note(place: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Note, place, message)
    }

    /// The same finding, at byte `offset` of the disk.
    pub fn at(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }
}

/// The place of partition `number` in findings: `"partition 5"`, or
/// `"filesystem"` for the bare filesystem of a disk without a table (number 0).
pub fn partition_place(number: u32) -> String {
    if number == 0 {
        "filesystem".to_string()
    } else {
        format!("partition {number}")
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Damage => "damage",
        };
        write!(f, "{sev}: ")?;
        if !self.place.is_empty() {
            write!(f, "{}: ", self.place)?;
        }
        if let Some(o) = self.offset {
            write!(f, "at {o:#x}: ")?;
        }
        f.write_str(&self.message)
    }
}

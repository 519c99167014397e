//! The library's error type.
//!
//! Owns the split every caller needs: the disk lied to us ([`ErrorKind::Corrupt`]),
//! we do not handle this ([`ErrorKind::Unsupported`]), we will not do this in the
//! current state ([`ErrorKind::Refused`], [`ErrorKind::NoSpace`]), the caller asked
//! for something that is not there or not valid ([`ErrorKind::NotFound`],
//! [`ErrorKind::InvalidInput`]), and the operating system failed ([`ErrorKind::Io`]).
//! Messages name where the problem is (path, partition, byte offset in hex).

use std::fmt;
use std::io;

/// What kind of failure an [`Error`] is; the thing callers match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An I/O call failed.
    Io,
    /// On-disk data is inconsistent or out of range.
    Corrupt,
    /// Valid data that this version does not handle (a feature, a sector size).
    Unsupported,
    /// Refused in the current state: journal needs recovery, errors recorded,
    /// mounted, or a safety rule.
    Refused,
    /// The operation would not fit (blocks or inodes); refused before writing.
    NoSpace,
    /// A path or object does not exist.
    NotFound,
    /// Something already exists where it should not.
    AlreadyExists,
    /// The caller's request is malformed.
    InvalidInput,
    /// The request leaves a choice open or names what the disk does not have (a
    /// partition number): the caller must ask again, differently. The command line
    /// exits 2 on it, as on a usage error.
    Usage,
}

/// The error type of every fallible call of the library (`Display` is the
/// message; the I/O error behind it, if any, is its `source`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<io::Error>,
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message that says what and where.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An I/O failure while doing `context`.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error {
            kind: ErrorKind::Io,
            message: context.into(),
            source: Some(source),
        }
    }

    /// On-disk data that cannot be right.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }

    /// Valid data that is not handled.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// Refused in the current state.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Refused, message)
    }

    /// Not found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// A malformed request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// A request to ask again differently (see [`ErrorKind::Usage`]).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the source chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefix the message with more context (`"partition 5: "`), keeping the kind.
    pub fn context(mut self, prefix: impl fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e.kind {
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
            ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

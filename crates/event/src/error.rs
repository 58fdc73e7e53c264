//! Why a record or a batch was refused: the crate's error types, a leaf module the
//! parsing and validation modules share.

use crate::json_type::JsonType;

/// Why one record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct InvalidRecord {
    pub kind: RecordErrorKind,
    pub message: String,
}

impl InvalidRecord {
    pub fn new(kind: RecordErrorKind, message: impl Into<String>) -> Self {
        InvalidRecord {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn wrong_type(path: &str, expected: &str, found: JsonType) -> Self {
        InvalidRecord::new(
            RecordErrorKind::InvalidField,
            format!("{path} must be {expected}, found {}", found.name()),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {index}: {message}")]
#[non_exhaustive]
pub struct RecordError {
    pub index: usize,
    pub kind: RecordErrorKind,
    pub message: String,
}

impl RecordError {
    pub fn new(index: usize, invalid: InvalidRecord) -> Self {
        RecordError {
            index,
            kind: invalid.kind,
            message: invalid.message,
        }
    }
}

/// Exhaustive on purpose: `protocol::cloudtrail_data::record_error_code` maps each kind
/// to its wire code, and a new kind must make it decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordErrorKind {
    NotAnObject,
    MissingField,
    InvalidEventTime,
    TooLarge,
    InvalidUtf8,
    InvalidJson,
    InvalidField,
}

impl RecordErrorKind {
    /// A stable, machine-readable name (`"MissingField"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordErrorKind::NotAnObject => "NotAnObject",
            RecordErrorKind::MissingField => "MissingField",
            RecordErrorKind::InvalidEventTime => "InvalidEventTime",
            RecordErrorKind::TooLarge => "TooLarge",
            RecordErrorKind::InvalidUtf8 => "InvalidUtf8",
            RecordErrorKind::InvalidJson => "InvalidJson",
            RecordErrorKind::InvalidField => "InvalidField",
        }
    }
}

/// The whole body could not be read as any supported shape.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    #[error("gzip body could not be decompressed: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("body is empty")]
    Empty,
    #[error("body is not JSON, a JSON array, {{\"Records\":[…]}} or NDJSON: {0}")]
    Unrecognised(String),
    #[error("gzip body decompresses to more than {max_bytes} bytes")]
    DecompressedTooLarge { max_bytes: usize },
}

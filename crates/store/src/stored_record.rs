//! A stored record's bytes read back: as text, or parsed into an `EventRecord`; damage is
//! reported with where the bytes came from.

use opentrail_event::EventRecord;

use crate::error::StoreError;

/// A stored record's text. `location` is only rendered for an error: reads of the log
/// come here once per record.
pub(crate) fn record_text(
    bytes: Option<&[u8]>,
    location: &dyn std::fmt::Display,
) -> Result<String, StoreError> {
    let bytes = bytes.ok_or_else(|| {
        StoreError::corrupt(
            "record block",
            location.to_string(),
            "record index out of range",
        )
    })?;
    String::from_utf8(bytes.to_vec()).map_err(|error| {
        StoreError::corrupt(
            "stored record",
            location.to_string(),
            format!("invalid UTF-8: {error}"),
        )
    })
}

/// `location`, as in [`record_text`], is only rendered for an error: a seal parses every
/// record it writes.
pub(crate) fn parse_stored(
    json: &[u8],
    location: &dyn std::fmt::Display,
) -> Result<EventRecord, StoreError> {
    let text = std::str::from_utf8(json).map_err(|error| invalid_utf8(location, error))?;
    record_of(EventRecord::from_stored(text), location)
}

/// [`parse_stored`] of a record the caller owns: the record keeps its bytes, uncopied.
pub(crate) fn parse_stored_owned(
    json: Vec<u8>,
    location: &dyn std::fmt::Display,
) -> Result<EventRecord, StoreError> {
    let text =
        String::from_utf8(json).map_err(|error| invalid_utf8(location, error.utf8_error()))?;
    record_of(EventRecord::from_stored(text), location)
}

fn invalid_utf8(location: &dyn std::fmt::Display, error: std::str::Utf8Error) -> StoreError {
    StoreError::corrupt(
        "stored record",
        location.to_string(),
        format!("invalid UTF-8: {error}"),
    )
}

fn record_of(
    parsed: Result<EventRecord, opentrail_event::InvalidRecord>,
    location: &dyn std::fmt::Display,
) -> Result<EventRecord, StoreError> {
    parsed.map_err(|error| {
        StoreError::corrupt("stored record", location.to_string(), format!("{error:?}"))
    })
}

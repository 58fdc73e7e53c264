//! Every input shape real producers and real logs use, plain or gzip.
//!
//! # Shapes
//!
//! After an optional gzip layer (recognised by its magic bytes `1f 8b`; multi-member
//! streams such as concatenated `.gz` files are read to the end) and an optional UTF-8
//! byte-order mark, the body is one of:
//!
//! - `{"Records":[…]}`: a CloudTrail log file. The `Records` member may sit anywhere in
//!   the object; other top-level members are ignored.
//! - `[…]`: a JSON array of records.
//! - `{…}`: a single record.
//! - NDJSON: one record per line (`\n` or `\r\n`); blank lines are skipped and do not
//!   count as records. Recognised when the first object ends on the first line and more
//!   follows on a later line.
//! - Concatenated JSON values separated by whitespace (`jq '.Records[]'` output): when the
//!   first object spans several lines, or the next value starts on its line.
//!
//! Anything else (an empty body, a scalar, an unterminated top-level array or object,
//! trailing text after an array or a `Records` file) is a [`BatchError`].
//!
//! # Per-record failures
//!
//! Records are cut out of the body at the byte level (see the `scan` module) before any of
//! them is decoded, so a record with invalid UTF-8, a syntax error, a wrong member type or
//! too many bytes fails alone, as a [`RecordError`] naming its zero-based position in the
//! batch, while the records around it are still returned. In NDJSON each line stands on
//! its own, so even an unterminated string sinks only its line.
//!
//! # Sources too large to hold
//!
//! [`stream`] reads the same shapes from an `io::Read`, one record in memory at a time,
//! without validating records; `opentrail ingest` cuts big files into request bodies
//! with it. Its module docs say where its choices differ from [`parse_batch`]'s.

use std::io::Read;
use std::ops::Range;

use flate2::read::MultiGzDecoder;

use crate::error::{BatchError, InvalidRecord, RecordError, RecordErrorKind};
use crate::record::{EventRecord, IngestContext, MAX_RECORD_BYTES};
use crate::scan::{self, ScanError, TopObject};

pub mod stream;

/// The most bytes a gzip body may decompress to in [`parse_batch`]. A CloudTrail log
/// object is at most 50 MB compressed and compresses about 5–14 times, so this admits any
/// real log file while bounding memory. Callers with tighter budgets (HTTP ingest) use
/// [`parse_batch_with_limit`].
pub const MAX_DECOMPRESSED_BYTES: usize = 1024 * 1024 * 1024;

/// The outcome of parsing one batch: good records and per-record failures, each with the
/// record's zero-based index in the batch.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    pub records: Vec<(usize, EventRecord)>,
    pub failures: Vec<RecordError>,
}

impl ParsedBatch {
    /// How many records the batch held, good and bad.
    pub fn record_count(&self) -> usize {
        self.records.len() + self.failures.len()
    }
}

/// Parses a batch in any supported shape, plain or gzip (detected by magic bytes).
///
/// Per-record problems become [`RecordError`]s naming the record's index; good records
/// in the same batch are still returned.
pub fn parse_batch(bytes: &[u8], context: &IngestContext) -> Result<ParsedBatch, BatchError> {
    parse_batch_with_limit(bytes, context, MAX_DECOMPRESSED_BYTES)
}

/// [`parse_batch`] with an explicit bound on the decompressed size of a gzip body.
pub fn parse_batch_with_limit(
    bytes: &[u8],
    context: &IngestContext,
    max_decompressed_bytes: usize,
) -> Result<ParsedBatch, BatchError> {
    let decompressed;
    let body = if is_gzip(bytes) {
        decompressed = gunzip(bytes, max_decompressed_bytes)?;
        decompressed.as_slice()
    } else {
        bytes
    };
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let ranges = split_records(body)?;
    let mut batch = ParsedBatch {
        records: Vec::with_capacity(ranges.len()),
        failures: Vec::new(),
    };
    for (index, range) in ranges.into_iter().enumerate() {
        match record_from_bytes(&body[range], context) {
            Ok(record) => batch.records.push((index, record)),
            Err(invalid) => batch.failures.push(RecordError::new(index, invalid)),
        }
    }
    Ok(batch)
}

/// Whether `bytes` start with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

fn gunzip(bytes: &[u8], max_decompressed_bytes: usize) -> Result<Vec<u8>, BatchError> {
    // A guess at the inflated size, capped so a small bomb cannot reserve the whole bound.
    const INITIAL_CAPACITY_BYTES_MAX: usize = 64 * 1024 * 1024;
    let mut decompressed = Vec::with_capacity(
        bytes
            .len()
            .saturating_mul(8)
            .min(max_decompressed_bytes)
            .min(INITIAL_CAPACITY_BYTES_MAX),
    );
    let limit = u64::try_from(max_decompressed_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    MultiGzDecoder::new(bytes)
        .take(limit)
        .read_to_end(&mut decompressed)
        .map_err(BatchError::Gzip)?;
    if decompressed.len() > max_decompressed_bytes {
        return Err(BatchError::DecompressedTooLarge {
            max_bytes: max_decompressed_bytes,
        });
    }
    Ok(decompressed)
}

/// One record's bytes, checked for size and UTF-8 before they are parsed.
fn record_from_bytes(bytes: &[u8], context: &IngestContext) -> Result<EventRecord, InvalidRecord> {
    use RecordErrorKind::{InvalidJson, InvalidUtf8, TooLarge};
    if bytes.is_empty() {
        return Err(InvalidRecord::new(InvalidJson, "record is empty"));
    }
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(InvalidRecord::new(
            TooLarge,
            format!(
                "record is {} bytes, over the {MAX_RECORD_BYTES}-byte limit",
                bytes.len()
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|error| {
        InvalidRecord::new(
            InvalidUtf8,
            format!(
                "record is not valid UTF-8 at byte {} of the record",
                error.valid_up_to()
            ),
        )
    })?;
    EventRecord::from_json_object(text, context)
}

/// The trimmed byte range of every record in `body`, in order.
fn split_records(body: &[u8]) -> Result<Vec<Range<usize>>, BatchError> {
    let start = scan::skip_whitespace(body, 0);
    let unrecognised = |error: ScanError| {
        BatchError::Unrecognised(format!("{} at byte {}", error.reason, error.offset))
    };
    let ranges = match body.get(start) {
        None => return Err(BatchError::Empty),
        Some(b'[') => {
            let (elements, end) = scan::split_array(body, start).map_err(unrecognised)?;
            expect_only_whitespace_after(body, end)?;
            elements
        }
        Some(b'{') => match scan::scan_top_object(body, start) {
            Ok(TopObject::RecordsWrapper { elements, end }) => {
                expect_only_whitespace_after(body, end)?;
                elements
            }
            Ok(TopObject::Plain { end }) => {
                let next = scan::skip_whitespace(body, end);
                if next == body.len() {
                    std::iter::once(start..end).collect()
                } else if !body[start..end].contains(&b'\n') && body[end..next].contains(&b'\n') {
                    ndjson_lines(body)
                } else {
                    concatenated_values(body, start)
                }
            }
            // A broken first line need not sink the lines after it.
            Err(_) if has_later_line(body, start) => ndjson_lines(body),
            Err(error) => return Err(unrecognised(error)),
        },
        Some(_) => {
            return Err(BatchError::Unrecognised(format!(
                "starts with {:?}",
                String::from_utf8_lossy(&body[start..body.len().min(start + 16)])
            )));
        }
    };
    Ok(ranges
        .into_iter()
        .map(|range| scan::trim_range(body, range))
        .collect())
}

fn expect_only_whitespace_after(body: &[u8], end: usize) -> Result<(), BatchError> {
    let rest = scan::skip_whitespace(body, end);
    if rest == body.len() {
        Ok(())
    } else {
        Err(BatchError::Unrecognised(format!(
            "unexpected text after the top-level value at byte {rest}"
        )))
    }
}

/// Whether a non-blank line follows the line that `start` is on.
fn has_later_line(body: &[u8], start: usize) -> bool {
    body[start..]
        .iter()
        .position(|&byte| byte == b'\n')
        .is_some_and(|newline| scan::skip_whitespace(body, start + newline) < body.len())
}

/// Every non-blank line.
fn ndjson_lines(body: &[u8]) -> Vec<Range<usize>> {
    let mut lines = Vec::new();
    let mut line_start = 0;
    // memchr, not `split`: splitting byte by byte was 3.6% of the server's CPU during a
    // bulk ingest.
    let line_ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    for line_end in line_ends {
        let range = line_start..line_end;
        line_start = line_end + 1;
        if !scan::trim_range(body, range.clone()).is_empty() {
            lines.push(range);
        }
    }
    lines
}

/// Whitespace-separated values from `start`; an unterminated value takes the rest.
fn concatenated_values(body: &[u8], start: usize) -> Vec<Range<usize>> {
    let mut values = Vec::new();
    let mut at = start;
    while at < body.len() {
        match scan::value_end(body, at) {
            Ok(end) => {
                values.push(at..end);
                at = scan::skip_whitespace(body, end);
            }
            Err(_) => {
                values.push(at..body.len());
                break;
            }
        }
    }
    values
}

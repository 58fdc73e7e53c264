//! Records read from a stream of any size, one record in memory at a time: the input shapes
//! of [`super::parse_batch`] for sources too large to hold whole (`opentrail ingest` cuts
//! big files into request bodies with it).
//!
//! # Shapes
//!
//! After an optional gzip layer (magic bytes; any number of members) and an optional UTF-8
//! byte-order mark, the source is read as one of:
//!
//! - NDJSON, one record per line, when the caller says so (`.ndjson` and `.jsonl` files)
//!   or when the first line is a whole JSON object and more text follows. Blank lines are
//!   not records; a line that is not JSON fails alone.
//! - A JSON document read as a stream: the elements of `{"Records":[…]}` or of a top-level
//!   array, or concatenated objects (`jq '.Records[]'` output).
//!
//! Unlike [`super::parse_batch`], which scans the whole body before it decodes anything,
//! this reader sees only the first line when it chooses between NDJSON and a document, so
//! a broken first line makes the source a document; and a syntax error inside a document
//! ends the reading (every record before it has been handed over), because a stream cannot
//! find the next element's start without having scanned past the damage.
//!
//! # Per-record failures
//!
//! A record of more than [`MAX_RECORD_BYTES`], or a line that is not JSON, is handed over
//! as a [`RecordError`] naming its index, and reading goes on. Everything else about a
//! record (its members, their types) is for whoever parses it next.

use std::io::{self, BufRead, BufReader, Cursor, Read};

use flate2::read::MultiGzDecoder;
use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::{MAX_RECORD_BYTES, RecordError, RecordErrorKind, is_gzip};

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";
/// The longest line read into memory: a record may have at most `MAX_RECORD_BYTES`, and
/// some whitespace is allowed around it.
const LINE_BYTES_MAX: usize = MAX_RECORD_BYTES + 1024;
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// One record of a stream, numbered from zero in the order read.
#[derive(Debug)]
pub enum StreamedRecord<'a> {
    /// The record's JSON text as the source has it, except that an object read alone
    /// (not in an array or `Records`) is rebuilt from its members, equal to it as JSON.
    Record { index: usize, json: &'a [u8] },
    /// A record that cannot be read; the stream goes on after it.
    Failed(RecordError),
}

/// Why a stream could not be read to its end. Records before the problem were handed
/// over.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E> {
    #[error("cannot read the file: {0}")]
    Read(#[source] io::Error),
    #[error("cannot decompress the file: {0}")]
    Decompress(#[source] io::Error),
    #[error("invalid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    #[error("unexpected text after the JSON document: {0}")]
    TrailingText(#[source] serde_json::Error),
    /// The caller's visitor refused a record, and reading stopped there.
    #[error("{0}")]
    Visit(E),
}

impl<E> StreamError<E> {
    fn from_io(error: io::Error) -> Self {
        // A gzip layer reports damage as invalid input or data; anything else is the source.
        if matches!(
            error.kind(),
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData
        ) {
            StreamError::Decompress(error)
        } else {
            StreamError::Read(error)
        }
    }
}

/// Reads every record of `source` (plain or gzip, detected by its first bytes) and hands
/// each to `visit` as soon as it is read. `lines` forces NDJSON; otherwise the first line
/// decides (see the module docs). An error from `visit` stops the reading and comes back
/// as [`StreamError::Visit`].
pub fn read_records<E>(
    source: impl Read,
    lines: bool,
    visit: &mut dyn FnMut(StreamedRecord<'_>) -> Result<(), E>,
) -> Result<(), StreamError<E>> {
    let mut records = Records {
        visit,
        next_index: 0,
        visit_error: None,
    };
    let mut buffered = BufReader::with_capacity(READ_BUFFER_BYTES, source);
    let gzip = is_gzip(buffered.fill_buf().map_err(StreamError::Read)?);
    let mut reader: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::with_capacity(
            READ_BUFFER_BYTES,
            MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    // The first line, read once, both to drop a byte-order mark and to tell NDJSON from a
    // JSON document; it is then put back in front of the rest.
    let mut first_line = Vec::new();
    let first_complete =
        read_bounded_line(&mut reader, &mut first_line).map_err(StreamError::from_io)?;
    if first_line.starts_with(UTF8_BOM) {
        first_line.drain(..UTF8_BOM.len());
    }
    let read_as_lines = lines || (first_complete && is_ndjson_start(&first_line, &mut reader)?);
    let whole = Cursor::new(first_line).chain(reader);
    if read_as_lines {
        read_lines(whole, &mut records)
    } else {
        read_document(whole, &mut records)
    }
}

/// Numbers records as they are read and hands them to the visitor.
struct Records<'v, E> {
    visit: &'v mut dyn FnMut(StreamedRecord<'_>) -> Result<(), E>,
    next_index: usize,
    /// The visitor's error, kept while serde unwinds with an error of its own.
    visit_error: Option<E>,
}

impl<E> Records<'_, E> {
    fn fail(&mut self, kind: RecordErrorKind, message: String) -> Result<(), E> {
        let index = self.next_index;
        self.next_index += 1;
        (self.visit)(StreamedRecord::Failed(RecordError {
            index,
            kind,
            message,
        }))
    }

    fn fail_too_large(&mut self) -> Result<(), E> {
        self.fail(
            RecordErrorKind::TooLarge,
            format!("the record is larger than {MAX_RECORD_BYTES} bytes"),
        )
    }

    fn record(&mut self, json: &[u8]) -> Result<(), E> {
        if json.len() > MAX_RECORD_BYTES {
            return self.fail_too_large();
        }
        let index = self.next_index;
        self.next_index += 1;
        (self.visit)(StreamedRecord::Record { index, json })
    }

    /// Inside serde: keeps the visitor's error and unwinds with one serde can carry.
    fn within_serde<T, D: serde::de::Error>(&mut self, result: Result<T, E>) -> Result<T, D> {
        result.map_err(|error| {
            self.visit_error = Some(error);
            D::custom("the reader's visitor stopped")
        })
    }
}

/// NDJSON, by the rule the server uses: the first line is a whole object, and more text
/// follows. Whitespace after the first line is consumed while looking, which is harmless
/// for either way of reading.
fn is_ndjson_start<E>(first_line: &[u8], rest: &mut dyn BufRead) -> Result<bool, StreamError<E>> {
    let trimmed = first_line.trim_ascii();
    if !trimmed.starts_with(b"{") || serde_json::from_slice::<IgnoredAny>(trimmed).is_err() {
        return Ok(false);
    }
    loop {
        let buffer = rest.fill_buf().map_err(StreamError::from_io)?;
        if buffer.is_empty() {
            return Ok(false);
        }
        if buffer.iter().any(|byte| !byte.is_ascii_whitespace()) {
            return Ok(true);
        }
        let length = buffer.len();
        rest.consume(length);
    }
}

/// Reads one line, newline included, keeping at most `LINE_BYTES_MAX` bytes; the rest of
/// a longer line is left unread. Returns whether the whole line was kept.
fn read_bounded_line(reader: &mut dyn BufRead, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    let limit = u64::try_from(LINE_BYTES_MAX).unwrap_or(u64::MAX);
    reader.take(limit).read_until(b'\n', line)?;
    Ok(line.len() < LINE_BYTES_MAX || line.ends_with(b"\n"))
}

/// Drops the rest of a cut line.
fn skip_rest_of_line(reader: &mut dyn BufRead) -> io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        if let Some(newline) = buffer.iter().position(|&byte| byte == b'\n') {
            reader.consume(newline + 1);
            return Ok(());
        }
        let length = buffer.len();
        reader.consume(length);
    }
}

fn read_lines<E>(
    mut reader: impl BufRead,
    records: &mut Records<'_, E>,
) -> Result<(), StreamError<E>> {
    let mut line = Vec::new();
    loop {
        let complete = read_bounded_line(&mut reader, &mut line).map_err(StreamError::from_io)?;
        if line.is_empty() {
            return Ok(());
        }
        if !complete {
            skip_rest_of_line(&mut reader).map_err(StreamError::from_io)?;
            records.fail_too_large().map_err(StreamError::Visit)?;
            continue;
        }
        let record = line.trim_ascii();
        if record.is_empty() {
            // Blank lines are not records, for the server either.
            continue;
        }
        if let Err(error) = serde_json::from_slice::<IgnoredAny>(record) {
            records
                .fail(
                    RecordErrorKind::InvalidJson,
                    format!("invalid JSON: {error}"),
                )
                .map_err(StreamError::Visit)?;
            continue;
        }
        records.record(record).map_err(StreamError::Visit)?;
    }
}

/// A JSON document read as a stream: the elements of `{"Records":[…]}` or of a top-level
/// array, or a sequence of concatenated objects. Only one record is held at a time.
fn read_document<E>(reader: impl Read, records: &mut Records<'_, E>) -> Result<(), StreamError<E>> {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let shape = TopLevel(&mut *records).deserialize(&mut deserializer);
    if let Some(error) = records.visit_error.take() {
        return Err(StreamError::Visit(error));
    }
    match shape.map_err(StreamError::InvalidJson)? {
        TopShape::Sequence => deserializer.end().map_err(StreamError::TrailingText),
        TopShape::Object => {
            // More objects may follow, each a record (`jq '.Records[]'` output).
            for value in deserializer.into_iter::<Box<RawValue>>() {
                let raw = value.map_err(StreamError::InvalidJson)?;
                records
                    .record(raw.get().as_bytes())
                    .map_err(StreamError::Visit)?;
            }
            Ok(())
        }
    }
}

enum TopShape {
    /// An array or a `Records` file: nothing may follow.
    Sequence,
    /// A single record object: more may follow.
    Object,
}

/// Drives serde over the top-level value, handing records over as they are read.
struct TopLevel<'r, 'v, E>(&'r mut Records<'v, E>);

impl<'de, E> DeserializeSeed<'de> for TopLevel<'_, '_, E> {
    type Value = TopShape;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<TopShape, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, E> Visitor<'de> for TopLevel<'_, '_, E> {
    type Value = TopShape;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON object or array of CloudTrail records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, sequence: A) -> Result<TopShape, A::Error> {
        hand_over_elements(self.0, sequence)?;
        Ok(TopShape::Sequence)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopShape, A::Error> {
        // Members before `Records` are kept in case there is no `Records` and the object is
        // a record itself; that is bounded by the record size limit.
        let mut members: Vec<(String, Box<RawValue>)> = Vec::new();
        let mut member_bytes = 0usize;
        let mut too_large = false;
        let mut found_records = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "Records" && !found_records {
                map.next_value_seed(RecordsArray(&mut *self.0))?;
                found_records = true;
                members.clear();
            } else if found_records || too_large {
                map.next_value::<IgnoredAny>()?;
            } else {
                let value: Box<RawValue> = map.next_value()?;
                member_bytes += key.len() + value.get().len() + 4;
                if member_bytes > MAX_RECORD_BYTES {
                    too_large = true;
                    members.clear();
                } else {
                    members.push((key, value));
                }
            }
        }
        if found_records {
            return Ok(TopShape::Sequence);
        }
        let handed_over = if too_large {
            self.0.fail_too_large()
        } else {
            let text = object_text(&members).map_err(A::Error::custom)?;
            self.0.record(text.as_bytes())
        };
        self.0.within_serde(handed_over)?;
        Ok(TopShape::Object)
    }
}

/// The value of `Records`: an array of records.
struct RecordsArray<'r, 'v, E>(&'r mut Records<'v, E>);

impl<'de, E> DeserializeSeed<'de> for RecordsArray<'_, '_, E> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, E> Visitor<'de> for RecordsArray<'_, '_, E> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an array of records in \"Records\"")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, sequence: A) -> Result<(), A::Error> {
        hand_over_elements(self.0, sequence)
    }
}

fn hand_over_elements<'de, E, A: SeqAccess<'de>>(
    records: &mut Records<'_, E>,
    mut sequence: A,
) -> Result<(), A::Error> {
    while let Some(raw) = sequence.next_element::<Box<RawValue>>()? {
        let handed_over = records.record(raw.get().as_bytes());
        records.within_serde(handed_over)?;
    }
    Ok(())
}

/// A record object rebuilt from its members: equal as JSON to the original text, which
/// serde does not keep once it has read the member names.
fn object_text(members: &[(String, Box<RawValue>)]) -> Result<String, serde_json::Error> {
    let mut text = String::from("{");
    for (position, (key, value)) in members.iter().enumerate() {
        if position > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(key)?);
        text.push(':');
        text.push_str(value.get());
    }
    text.push('}');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn record(id: usize) -> String {
        format!(r#"{{"eventID":"e{id}","eventName":"Get","eventTime":"2024-01-02T03:04:05Z"}}"#)
    }

    /// What a stream hands over: (index, JSON text) of good records, (index, kind) of
    /// failed ones, and how it ended.
    type Streamed = (
        Vec<(usize, String)>,
        Vec<(usize, RecordErrorKind)>,
        Result<(), String>,
    );

    fn read(source: &[u8], lines: bool) -> Streamed {
        let mut good = Vec::new();
        let mut failed = Vec::new();
        let ended = read_records(source, lines, &mut |streamed| -> Result<(), &str> {
            match streamed {
                StreamedRecord::Record { index, json } => {
                    good.push((index, String::from_utf8_lossy(json).into_owned()));
                }
                StreamedRecord::Failed(error) => failed.push((error.index, error.kind)),
            }
            Ok(())
        })
        .map_err(|error| error.to_string());
        (good, failed, ended)
    }

    fn indexes(good: &[(usize, String)]) -> Vec<usize> {
        good.iter().map(|(index, _)| *index).collect()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("gzip");
        encoder.finish().expect("gzip")
    }

    #[test]
    fn records_files_arrays_gzip_and_byte_order_marks_are_read() {
        // Members before `Records` are not a record of their own.
        let records_file = format!(
            r#"{{"version": "1", "Records": [{}, {}], "more": [true]}}"#,
            record(0),
            record(1)
        );
        let (good, failed, ended) = read(records_file.as_bytes(), false);
        assert_eq!(good, [(0, record(0)), (1, record(1))]);
        assert!(failed.is_empty() && ended.is_ok());

        let array = format!("\u{feff}[{},{},{}]", record(0), record(1), record(2));
        let (good, _, ended) = read(&gzip(array.as_bytes()), false);
        assert_eq!(indexes(&good), [0, 1, 2]);
        assert!(ended.is_ok(), "{ended:?}");
    }

    #[test]
    fn ndjson_lines_fail_alone_and_blank_lines_do_not_count() {
        let lines = format!("{}\r\n\n{{not json\n   \n42\n{}", record(0), record(1));
        let (good, failed, ended) = read(lines.as_bytes(), true);
        // Line 3 is record 1 and fails; `42` is handed over for the server to refuse.
        assert_eq!(indexes(&good), [0, 2, 3]);
        assert_eq!(failed, [(1, RecordErrorKind::InvalidJson)]);
        assert!(ended.is_ok());
    }

    #[test]
    fn a_source_whose_first_line_is_an_object_is_read_as_ndjson() {
        let text = format!("{}\n{{broken\n{}\n", record(0), record(1));
        let (good, failed, _) = read(text.as_bytes(), false);
        assert_eq!(indexes(&good), [0, 2]);
        assert_eq!(failed, [(1, RecordErrorKind::InvalidJson)]);
    }

    #[test]
    fn concatenated_pretty_objects_are_records_and_a_lone_object_is_one() {
        let text = "{\n \"eventID\": \"a\",\n \"n\": 1\n}\n{\n \"eventID\": \"b\"\n}\n";
        let (good, _, ended) = read(text.as_bytes(), false);
        assert_eq!(indexes(&good), [0, 1]);
        assert_eq!(good[0].1, r#"{"eventID":"a","n":1}"#);
        assert!(ended.is_ok(), "{ended:?}");

        let (good, _, ended) = read(record(7).as_bytes(), false);
        assert_eq!(good, [(0, record(7))]);
        assert!(ended.is_ok());
    }

    #[test]
    fn oversized_records_and_lines_fail_alone() {
        let big = format!(
            r#"{{"eventID":"big","pad":"{}"}}"#,
            "x".repeat(MAX_RECORD_BYTES)
        );
        let text = format!("{}\n{big}\n{}\n", record(0), record(2));
        let (good, failed, _) = read(text.as_bytes(), true);
        assert_eq!(indexes(&good), [0, 2]);
        assert_eq!(failed, [(1, RecordErrorKind::TooLarge)]);

        let array = format!("[{},{big},{}]", record(0), record(2));
        let (good, failed, _) = read(array.as_bytes(), false);
        assert_eq!(indexes(&good), [0, 2]);
        assert_eq!(failed, [(1, RecordErrorKind::TooLarge)]);
    }

    #[test]
    fn a_syntax_error_ends_the_document_after_the_records_before_it() {
        let damaged = format!("[{}, {{\"eventID\": }}, {}]", record(0), record(1));
        let (good, _, ended) = read(damaged.as_bytes(), false);
        assert_eq!(indexes(&good), [0]);
        let error = ended.expect_err("error");
        assert!(error.contains("invalid JSON"), "{error}");
        let (_, _, trailing) = read(format!("[{}] [1]", record(0)).as_bytes(), false);
        assert!(
            trailing
                .expect_err("trailing")
                .contains("after the JSON document")
        );
        assert!(read(b"", false).2.is_err());
        let compressed = gzip(record(0).as_bytes());
        let (_, _, cut) = read(&compressed[..compressed.len() / 2], false);
        assert!(cut.is_err());
    }

    #[test]
    fn the_visitors_error_stops_the_reading() {
        let text = format!("[{},{},{}]", record(0), record(1), record(2));
        let mut calls = 0;
        let ended = read_records(text.as_bytes(), false, &mut |_| {
            calls += 1;
            Err("enough")
        });
        assert_eq!(calls, 1);
        assert!(matches!(ended, Err(StreamError::Visit("enough"))));
    }
}

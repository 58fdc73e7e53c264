//! What `opentrail ingest` reads: finding event files, and cutting them into request
//! bodies with bounded memory. Everything here is blocking I/O and runs off the async
//! runtime (see `ingest_command`).
//!
//! # How a file becomes requests
//!
//! - A small file (at most `--batch-bytes` once decompressed, NDJSON excepted) is sent
//!   whole, so the server sees exactly the producer's bytes and reports record indexes
//!   as positions in the file. Plain files are gzipped for the wire; `.gz` files go as
//!   they are.
//! - NDJSON files (`.ndjson`, `.jsonl`, and `.json` files whose first line is a whole
//!   object followed by more lines) are read line by line, and bigger JSON files are read
//!   as a stream of records (`{"Records":[…]}`, a JSON array, or concatenated objects).
//!   Records are packed into JSON-array bodies of at most `--batch-events` records and
//!   `--batch-bytes` bytes, gzipped. Each body remembers the position in the file of each
//!   of its records, so the summary names records by file and index either way.
//!
//! Records that cannot be sent at all (a line that is not JSON, a record over the
//! server's size limit) are reported with the error codes the server would give them
//! (`InvalidData`, `FieldTooLong`), and the rest of the file still goes.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::Context as _;
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use opentrail_event::{MAX_RECORD_BYTES, RecordErrorKind};
use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// File names a directory walk picks up (compared ASCII case-insensitively).
const EVENT_FILE_SUFFIXES: [&str; 7] = [
    ".json",
    ".json.gz",
    ".json.cloudtrail",
    ".ndjson",
    ".jsonl",
    ".ndjson.gz",
    ".jsonl.gz",
];
const LINE_FILE_SUFFIXES: [&str; 4] = [".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz"];
/// CloudTrail writes digest files next to its logs with the same `.json.gz` suffix; they
/// describe log files and hold no events.
const DIGEST_FILE_MARKER: &str = "CloudTrail-Digest";
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";
/// The longest line read into memory: a record may have at most `MAX_RECORD_BYTES`, and
/// some trailing whitespace is allowed around it.
const LINE_BYTES_MAX: usize = MAX_RECORD_BYTES + 1024;

/// One file to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFile {
    pub path: PathBuf,
    pub size_bytes: u64,
}

/// The result of walking the paths given on the command line.
#[derive(Debug, Default)]
pub struct Discovery {
    pub files: Vec<EventFile>,
    /// Files a walk passed over: other suffixes, hidden files, digests, empty files,
    /// links to directories.
    pub skipped: Vec<PathBuf>,
    /// Directories that could not be listed, with the reason.
    pub errors: Vec<(PathBuf, String)>,
}

/// Finds the files to send. A path named on the command line is sent whatever its name;
/// directories are walked recursively for event files (see `EVENT_FILE_SUFFIXES`),
/// without following links to directories (they can form cycles) and without entering
/// hidden directories. A named path that does not exist is an error for the whole run,
/// since it is most likely a typo.
pub fn discover(paths: &[PathBuf]) -> anyhow::Result<Discovery> {
    let mut discovery = Discovery::default();
    for path in paths {
        let metadata =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if metadata.is_dir() {
            walk_directory(path, &mut discovery);
        } else if metadata.len() == 0 {
            discovery.skipped.push(path.clone());
        } else {
            discovery.files.push(EventFile {
                path: path.clone(),
                size_bytes: metadata.len(),
            });
        }
    }
    // Sorted, so runs are repeatable and a file named twice (directly and inside a named
    // directory) is sent once.
    discovery
        .files
        .sort_by(|left, right| left.path.cmp(&right.path));
    discovery
        .files
        .dedup_by(|left, right| left.path == right.path);
    discovery.skipped.sort();
    discovery.skipped.dedup();
    // A file both named and passed over by a walk (a `.txt` named explicitly) is sent.
    let files = &discovery.files;
    discovery.skipped.retain(|skipped| {
        files
            .binary_search_by(|file| file.path.cmp(skipped))
            .is_err()
    });
    Ok(discovery)
}

fn walk_directory(root: &Path, discovery: &mut Discovery) {
    let mut pending = vec![root.to_owned()];
    while let Some(directory) = pending.pop() {
        let entries = match std::fs::read_dir(&directory) {
            Ok(entries) => entries,
            Err(error) => {
                discovery
                    .errors
                    .push((directory, format!("cannot list the directory: {error}")));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    discovery.errors.push((
                        directory.clone(),
                        format!("cannot list the directory: {error}"),
                    ));
                    break;
                }
            };
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let hidden = name.starts_with('.');
            let Ok(file_type) = entry.file_type() else {
                discovery.skipped.push(path);
                continue;
            };
            if file_type.is_dir() {
                if !hidden {
                    pending.push(path);
                }
                continue;
            }
            // `metadata` follows a link to a file; a link to a directory is not entered.
            let metadata = match std::fs::metadata(&path) {
                Ok(metadata) if metadata.is_file() => metadata,
                _ => {
                    discovery.skipped.push(path);
                    continue;
                }
            };
            if hidden
                || !is_event_file_name(&name)
                || name.contains(DIGEST_FILE_MARKER)
                || metadata.len() == 0
            {
                discovery.skipped.push(path);
                continue;
            }
            discovery.files.push(EventFile {
                path,
                size_bytes: metadata.len(),
            });
        }
    }
}

fn has_suffix(name: &str, suffixes: &[&str]) -> bool {
    let lower = name.to_ascii_lowercase();
    suffixes.iter().any(|suffix| lower.ends_with(suffix))
}

pub fn is_event_file_name(name: &str) -> bool {
    has_suffix(name, &EVENT_FILE_SUFFIXES)
}

/// Whether a file is read line by line whatever its first line looks like.
pub fn is_line_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| has_suffix(&name.to_string_lossy(), &LINE_FILE_SUFFIXES))
}

/// Size limits of request bodies.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub events_max: usize,
    /// Uncompressed bytes of one body; a single record is always admitted.
    pub bytes_max: usize,
}

/// One record that was not sent, with the server's error-code vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFailure {
    pub index: usize,
    pub error_code: String,
    pub message: String,
}

/// A gzipped JSON-array body and, for each of its records, the record's position in the
/// file.
#[derive(Debug)]
pub struct SplitBody {
    pub gzip_body: Vec<u8>,
    pub file_indexes: Vec<usize>,
    /// Bytes of the source read since the previous body (progress reporting).
    pub source_bytes: u64,
}

/// How splitting a file ended.
#[derive(Debug, Default)]
pub struct SplitOutcome {
    pub local_failures: Vec<LocalFailure>,
    /// Why the rest of the file could not be read (records before it were sent).
    pub error: Option<String>,
    /// Source bytes read after the last body.
    pub trailing_source_bytes: u64,
    /// Set when the receiver of bodies went away: the run is stopping.
    pub stopped: bool,
}

/// The receiver of bodies went away.
#[derive(Debug)]
pub struct Stopped;

/// How the producer decided to send a file.
pub enum FilePlan {
    /// The file's own bytes as one gzip body.
    Whole { gzip_body: Vec<u8> },
    /// Cut into bodies by [`split_reader`].
    Split,
}

/// Decides between sending a file whole and splitting it, and for a whole file reads its
/// body (gzipped for the wire unless it already is gzip).
pub fn plan_file(file: &EventFile, limits: BatchLimits) -> anyhow::Result<FilePlan> {
    if is_line_file(&file.path) {
        return Ok(FilePlan::Split);
    }
    // The summary names the file; the messages here say what went wrong with it.
    let path = &file.path;
    let mut handle = File::open(path).context("cannot open the file")?;
    let mut magic = [0u8; 2];
    let magic_len = read_up_to(&mut handle, &mut magic).context("cannot read the file")?;
    let is_gzip = magic_len == 2 && magic == GZIP_MAGIC;
    let plain_size_estimate = if is_gzip {
        // The gzip trailer's ISIZE is the uncompressed size (mod 2^32) of the last member:
        // exact for ordinary single-member files. A multi-member file may be larger than
        // estimated; the server's 413 then makes the sender split it after all.
        let isize = gzip_trailer_size(&mut handle).context("cannot read the file")?;
        isize.max(file.size_bytes)
    } else {
        file.size_bytes
    };
    if plain_size_estimate > u64::try_from(limits.bytes_max).unwrap_or(u64::MAX) {
        return Ok(FilePlan::Split);
    }
    let bytes = std::fs::read(path).context("cannot read the file")?;
    let gzip_body = if is_gzip {
        bytes
    } else {
        gzip(&bytes).context("cannot compress the file")?
    };
    Ok(FilePlan::Whole { gzip_body })
}

fn read_up_to(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

fn gzip_trailer_size(file: &mut File) -> io::Result<u64> {
    if file.seek(SeekFrom::End(0))? < 4 {
        return Ok(0);
    }
    file.seek(SeekFrom::End(-4))?;
    let mut trailer = [0u8; 4];
    file.read_exact(&mut trailer)?;
    Ok(u64::from(u32::from_le_bytes(trailer)))
}

pub fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    // Fast compression: JSON still shrinks several times, and the CPU is better spent on
    // keeping several requests in flight.
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::fast());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// Opens a file and splits it; see [`split_reader`].
pub fn split_file(
    path: &Path,
    limits: BatchLimits,
    emit: &mut dyn FnMut(SplitBody) -> Result<(), Stopped>,
) -> SplitOutcome {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) => {
            return SplitOutcome {
                error: Some(format!("cannot open the file: {error}")),
                ..SplitOutcome::default()
            };
        }
    };
    split_reader(file, is_line_file(path), limits, emit)
}

/// Cuts a source (plain or gzip, detected by its first bytes) into JSON-array bodies and
/// hands each to `emit` as soon as it is full, so memory holds one body at a time.
/// `lines` forces line-by-line reading; otherwise the first line decides (see the module
/// docs).
pub fn split_reader(
    source: impl Read,
    lines: bool,
    limits: BatchLimits,
    emit: &mut dyn FnMut(SplitBody) -> Result<(), Stopped>,
) -> SplitOutcome {
    let bytes_read = Rc::new(Cell::new(0u64));
    let counting = CountingReader {
        inner: source,
        count: Rc::clone(&bytes_read),
    };
    let mut sink = RecordSink {
        batch: BatchBuilder::new(limits),
        emit,
        bytes_read: Rc::clone(&bytes_read),
        bytes_reported: 0,
        next_index: 0,
        local_failures: Vec::new(),
        stopped: false,
    };
    let error = match read_records(counting, lines, &mut sink) {
        Ok(()) => sink.flush().err(),
        Err(error) => {
            // Records before the problem were read: send them (unless nobody listens).
            if !sink.stopped {
                let _ = sink.flush();
            }
            Some(error)
        }
    };
    let stopped = sink.stopped;
    SplitOutcome {
        local_failures: sink.local_failures,
        error: if stopped { None } else { error },
        trailing_source_bytes: bytes_read.get().saturating_sub(sink.bytes_reported),
        stopped,
    }
}

fn read_records(source: impl Read, lines: bool, sink: &mut RecordSink<'_>) -> Result<(), String> {
    let mut buffered = BufReader::with_capacity(64 * 1024, source);
    let is_gzip = buffered
        .fill_buf()
        .map_err(|error| format!("cannot read the file: {error}"))?
        .starts_with(&GZIP_MAGIC);
    let mut reader: Box<dyn BufRead> = if is_gzip {
        Box::new(BufReader::with_capacity(
            64 * 1024,
            MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    // The first line, read once, both to drop a byte-order mark and to tell NDJSON from a
    // JSON document; it is then put back in front of the rest.
    let mut first_line = Vec::new();
    let first_complete = read_bounded_line(&mut reader, &mut first_line)
        .map_err(|error| read_error_message(&error))?;
    if first_line.starts_with(UTF8_BOM) {
        first_line.drain(..UTF8_BOM.len());
    }
    let read_as_lines = lines || (first_complete && is_ndjson_start(&first_line, &mut reader)?);
    let whole = Cursor::new(first_line).chain(reader);
    if read_as_lines {
        read_lines(whole, sink)
    } else {
        read_document(whole, sink)
    }
}

/// NDJSON, by the rule the server uses: the first line is a whole object, and more text
/// follows. Whitespace after the first line is consumed while looking, which is harmless
/// for either way of reading.
fn is_ndjson_start(first_line: &[u8], rest: &mut dyn BufRead) -> Result<bool, String> {
    let trimmed = first_line.trim_ascii();
    if !trimmed.starts_with(b"{") || serde_json::from_slice::<IgnoredAny>(trimmed).is_err() {
        return Ok(false);
    }
    loop {
        let buffer = rest
            .fill_buf()
            .map_err(|error| read_error_message(&error))?;
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

fn read_error_message(error: &io::Error) -> String {
    if error.kind() == io::ErrorKind::InvalidInput || error.kind() == io::ErrorKind::InvalidData {
        format!("cannot decompress the file: {error}")
    } else {
        format!("cannot read the file: {error}")
    }
}

/// Reads one line, newline included, keeping at most `LINE_BYTES_MAX` bytes; the rest of
/// a longer line is read and dropped. Returns whether the whole line was kept (false also
/// at the end of input without a newline only when the line was cut).
fn read_bounded_line(reader: &mut dyn BufRead, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    let limit = u64::try_from(LINE_BYTES_MAX).unwrap_or(u64::MAX);
    reader.take(limit).read_until(b'\n', line)?;
    if line.len() < LINE_BYTES_MAX || line.ends_with(b"\n") {
        return Ok(true);
    }
    Ok(false)
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

fn read_lines(mut reader: impl BufRead, sink: &mut RecordSink<'_>) -> Result<(), String> {
    let mut line = Vec::new();
    loop {
        let complete = read_bounded_line(&mut reader, &mut line)
            .map_err(|error| read_error_message(&error))?;
        if line.is_empty() {
            return Ok(());
        }
        if !complete {
            skip_rest_of_line(&mut reader).map_err(|error| read_error_message(&error))?;
            sink.fail_next(
                RecordErrorKind::TooLarge,
                format!("the record is larger than {MAX_RECORD_BYTES} bytes"),
            );
            continue;
        }
        let record = line.trim_ascii();
        if record.is_empty() {
            // Blank lines are not records, for the server either.
            continue;
        }
        if let Err(error) = serde_json::from_slice::<IgnoredAny>(record) {
            sink.fail_next(
                RecordErrorKind::InvalidJson,
                format!("invalid JSON: {error}"),
            );
            continue;
        }
        sink.record(record)?;
    }
}

/// A JSON document read as a stream: the elements of `{"Records":[…]}` or of a top-level
/// array, or a sequence of concatenated objects. Only one record is held at a time.
fn read_document(reader: impl Read, sink: &mut RecordSink<'_>) -> Result<(), String> {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let shape = match TopLevel(&mut *sink).deserialize(&mut deserializer) {
        Ok(shape) => shape,
        Err(_) if sink.stopped => return Err("stopped".to_owned()),
        Err(error) => return Err(format!("invalid JSON: {error}")),
    };
    match shape {
        TopShape::Sequence => deserializer
            .end()
            .map_err(|error| format!("unexpected text after the JSON document: {error}")),
        TopShape::Object => {
            // More objects may follow, each a record (`jq '.Records[]'` output).
            for value in deserializer.into_iter::<Box<RawValue>>() {
                let raw = value.map_err(|error| format!("invalid JSON: {error}"))?;
                sink.record(raw.get().as_bytes())?;
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

/// Drives serde over the top-level value, handing records to the sink as they are read.
struct TopLevel<'s, 'e>(&'s mut RecordSink<'e>);

impl<'de> DeserializeSeed<'de> for TopLevel<'_, '_> {
    type Value = TopShape;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<TopShape, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_, '_> {
    type Value = TopShape;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON object or array of CloudTrail records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, sequence: A) -> Result<TopShape, A::Error> {
        send_elements(self.0, sequence)?;
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
        if too_large {
            self.0.fail_next(
                RecordErrorKind::TooLarge,
                format!("the record is larger than {MAX_RECORD_BYTES} bytes"),
            );
        } else {
            let text = object_text(&members).map_err(A::Error::custom)?;
            self.0.record(text.as_bytes()).map_err(A::Error::custom)?;
        }
        Ok(TopShape::Object)
    }
}

/// The value of `Records`: an array of records.
struct RecordsArray<'s, 'e>(&'s mut RecordSink<'e>);

impl<'de> DeserializeSeed<'de> for RecordsArray<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsArray<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an array of records in \"Records\"")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, sequence: A) -> Result<(), A::Error> {
        send_elements(self.0, sequence)
    }
}

fn send_elements<'de, A: SeqAccess<'de>>(
    sink: &mut RecordSink<'_>,
    mut sequence: A,
) -> Result<(), A::Error> {
    while let Some(raw) = sequence.next_element::<Box<RawValue>>()? {
        sink.record(raw.get().as_bytes())
            .map_err(A::Error::custom)?;
    }
    Ok(())
}

/// A record object rebuilt from its members: equal as JSON to the original text, which
/// serde does not keep once it has read the member names.
fn object_text(members: &[(String, Box<RawValue>)]) -> Result<String, String> {
    let mut text = String::from("{");
    for (position, (key, value)) in members.iter().enumerate() {
        if position > 0 {
            text.push(',');
        }
        let encoded_key = serde_json::to_string(key).map_err(|error| error.to_string())?;
        text.push_str(&encoded_key);
        text.push(':');
        text.push_str(value.get());
    }
    text.push('}');
    Ok(text)
}

/// Numbers records as they are read, keeps local failures, and fills bodies.
struct RecordSink<'e> {
    batch: BatchBuilder,
    emit: &'e mut dyn FnMut(SplitBody) -> Result<(), Stopped>,
    bytes_read: Rc<Cell<u64>>,
    bytes_reported: u64,
    next_index: usize,
    local_failures: Vec<LocalFailure>,
    stopped: bool,
}

/// The error code the server gives a record of this kind (its `POST /v1/events` answers
/// use the cloudtrail-data vocabulary), so a summary reads the same whichever side
/// refused a record.
fn server_error_code(kind: RecordErrorKind) -> &'static str {
    match kind {
        RecordErrorKind::MissingField => "FieldNotFound",
        RecordErrorKind::TooLarge => "FieldTooLong",
        RecordErrorKind::NotAnObject
        | RecordErrorKind::InvalidJson
        | RecordErrorKind::InvalidUtf8
        | RecordErrorKind::InvalidEventTime
        | RecordErrorKind::InvalidField => "InvalidData",
    }
}

impl RecordSink<'_> {
    fn fail_next(&mut self, kind: RecordErrorKind, message: String) {
        self.local_failures.push(LocalFailure {
            index: self.next_index,
            error_code: server_error_code(kind).to_owned(),
            message,
        });
        self.next_index += 1;
    }

    fn record(&mut self, text: &[u8]) -> Result<(), String> {
        let index = self.next_index;
        if text.len() > MAX_RECORD_BYTES {
            self.fail_next(
                RecordErrorKind::TooLarge,
                format!("the record is larger than {MAX_RECORD_BYTES} bytes"),
            );
            return Ok(());
        }
        self.next_index += 1;
        if self.batch.is_full_for(text.len()) {
            self.flush()?;
        }
        self.batch
            .push(index, text)
            .map_err(|error| format!("cannot compress a request body: {error}"))?;
        if self.batch.is_full() {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        let Some((gzip_body, file_indexes)) = self
            .batch
            .finish()
            .map_err(|error| format!("cannot compress a request body: {error}"))?
        else {
            return Ok(());
        };
        let read_so_far = self.bytes_read.get();
        let source_bytes = read_so_far.saturating_sub(self.bytes_reported);
        self.bytes_reported = read_so_far;
        (self.emit)(SplitBody {
            gzip_body,
            file_indexes,
            source_bytes,
        })
        .map_err(|Stopped| {
            self.stopped = true;
            "stopped".to_owned()
        })
    }
}

/// One JSON-array body being compressed as records arrive.
struct BatchBuilder {
    limits: BatchLimits,
    encoder: Option<GzEncoder<Vec<u8>>>,
    plain_bytes: usize,
    file_indexes: Vec<usize>,
}

impl BatchBuilder {
    fn new(limits: BatchLimits) -> Self {
        BatchBuilder {
            limits,
            encoder: None,
            plain_bytes: 0,
            file_indexes: Vec::new(),
        }
    }

    fn is_full(&self) -> bool {
        self.file_indexes.len() >= self.limits.events_max
    }

    /// Whether a record of `record_bytes` must start a new body. An empty body takes any
    /// record, so a limit below one record's size still makes progress.
    fn is_full_for(&self, record_bytes: usize) -> bool {
        !self.file_indexes.is_empty()
            && (self.is_full() || self.plain_bytes + record_bytes + 2 > self.limits.bytes_max)
    }

    fn push(&mut self, file_index: usize, record: &[u8]) -> io::Result<()> {
        let first = self.file_indexes.is_empty();
        let encoder = self
            .encoder
            .get_or_insert_with(|| GzEncoder::new(Vec::new(), Compression::fast()));
        encoder.write_all(if first { b"[" } else { b"," })?;
        encoder.write_all(record)?;
        self.plain_bytes += record.len() + 1;
        self.file_indexes.push(file_index);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<Option<(Vec<u8>, Vec<usize>)>> {
        let Some(mut encoder) = self.encoder.take() else {
            return Ok(None);
        };
        encoder.write_all(b"]")?;
        let body = encoder.finish()?;
        self.plain_bytes = 0;
        Ok(Some((body, std::mem::take(&mut self.file_indexes))))
    }
}

/// Counts the bytes read from the source (compressed bytes for gzip files), for progress.
struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buffer)?;
        self.count
            .set(self.count.get() + u64::try_from(count).unwrap_or(u64::MAX));
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;

    const LIMITS: BatchLimits = BatchLimits {
        events_max: 2,
        bytes_max: 1024 * 1024,
    };

    fn record(id: usize) -> String {
        format!(r#"{{"eventID":"e{id}","eventName":"Get","eventTime":"2024-01-02T03:04:05Z"}}"#)
    }

    /// The records of every body, with their file indexes, and the outcome.
    fn split(
        source: &[u8],
        lines: bool,
        limits: BatchLimits,
    ) -> (Vec<Vec<(usize, String)>>, SplitOutcome) {
        let mut bodies = Vec::new();
        let outcome = split_reader(source, lines, limits, &mut |body: SplitBody| {
            let mut plain = String::new();
            GzDecoder::new(body.gzip_body.as_slice())
                .read_to_string(&mut plain)
                .expect("gzip body");
            let records: Vec<Box<RawValue>> = serde_json::from_str(&plain).expect("array body");
            assert_eq!(records.len(), body.file_indexes.len());
            bodies.push(
                body.file_indexes
                    .into_iter()
                    .zip(records.iter().map(|raw| raw.get().to_owned()))
                    .collect(),
            );
            Ok(())
        });
        (bodies, outcome)
    }

    fn indexes(bodies: &[Vec<(usize, String)>]) -> Vec<Vec<usize>> {
        bodies
            .iter()
            .map(|body| body.iter().map(|(index, _)| *index).collect())
            .collect()
    }

    #[test]
    fn records_files_are_cut_into_bodies_that_keep_file_positions() {
        let text = format!(
            "{{\"Records\": [\n  {},\n  {},\n  {}\n], \"other\": 1}}",
            record(0),
            record(1),
            record(2)
        );
        let (bodies, outcome) = split(text.as_bytes(), false, LIMITS);
        assert_eq!(indexes(&bodies), vec![vec![0, 1], vec![2]]);
        assert_eq!(bodies[1][0].1, record(2));
        assert!(outcome.error.is_none() && outcome.local_failures.is_empty());
    }

    #[test]
    fn arrays_gzip_and_byte_order_marks_are_read() {
        let text = format!("\u{feff}[{},{},{}]", record(0), record(1), record(2));
        let compressed = gzip(text.as_bytes()).expect("gzip");
        let (bodies, outcome) = split(&compressed, false, LIMITS);
        assert_eq!(indexes(&bodies), vec![vec![0, 1], vec![2]]);
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
    }

    #[test]
    fn ndjson_lines_fail_alone_and_blank_lines_do_not_count() {
        let text = format!(
            "{}\r\n\n{{not json\n{}\n   \n42\n{}",
            record(0),
            record(1),
            record(2)
        );
        let (bodies, outcome) = split(text.as_bytes(), true, LIMITS);
        // Line 3 is record 1 and fails; `42` is sent for the server to refuse.
        assert_eq!(indexes(&bodies), vec![vec![0, 2], vec![3, 4]]);
        assert_eq!(outcome.local_failures.len(), 1);
        assert_eq!(outcome.local_failures[0].index, 1);
        assert_eq!(outcome.local_failures[0].error_code, "InvalidData");
        assert!(outcome.error.is_none());
    }

    #[test]
    fn a_json_file_whose_first_line_is_an_object_is_read_as_ndjson() {
        let text = format!("{}\n{{broken\n{}\n", record(0), record(1));
        let (bodies, outcome) = split(text.as_bytes(), false, LIMITS);
        assert_eq!(indexes(&bodies), vec![vec![0, 2]]);
        assert_eq!(outcome.local_failures[0].index, 1);
    }

    #[test]
    fn concatenated_pretty_objects_are_records() {
        let text = "{\n \"eventID\": \"a\",\n \"n\": 1\n}\n{\n \"eventID\": \"b\"\n}\n";
        let (bodies, outcome) = split(text.as_bytes(), false, LIMITS);
        assert_eq!(indexes(&bodies), vec![vec![0, 1]]);
        assert_eq!(bodies[0][0].1, r#"{"eventID":"a","n":1}"#);
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
    }

    #[test]
    fn oversized_records_and_lines_fail_locally() {
        let big = format!(
            r#"{{"eventID":"big","pad":"{}"}}"#,
            "x".repeat(MAX_RECORD_BYTES)
        );
        let text = format!("{}\n{big}\n{}\n", record(0), record(2));
        let (bodies, outcome) = split(text.as_bytes(), true, LIMITS);
        assert_eq!(indexes(&bodies), vec![vec![0, 2]]);
        assert_eq!(outcome.local_failures[0].error_code, "FieldTooLong");
        assert_eq!(outcome.local_failures[0].index, 1);

        let array = format!("[{},{big},{}]", record(0), record(2));
        let (bodies, outcome) = split(array.as_bytes(), false, LIMITS);
        assert_eq!(indexes(&bodies), vec![vec![0, 2]]);
        assert_eq!(outcome.local_failures[0].index, 1);
    }

    #[test]
    fn the_byte_limit_starts_new_bodies_but_admits_any_single_record() {
        let limits = BatchLimits {
            events_max: 100,
            bytes_max: record(0).len() + 10,
        };
        let text = format!("[{},{},{}]", record(0), record(1), record(2));
        let (bodies, _) = split(text.as_bytes(), false, limits);
        assert_eq!(indexes(&bodies), vec![vec![0], vec![1], vec![2]]);
        let tiny = BatchLimits {
            events_max: 100,
            bytes_max: 1,
        };
        let (bodies, _) = split(text.as_bytes(), false, tiny);
        assert_eq!(bodies.len(), 3);
    }

    #[test]
    fn a_syntax_error_keeps_the_records_before_it() {
        let text = format!("[{},{}, {{\"oops\" ]", record(0), record(1));
        let (bodies, outcome) = split(text.as_bytes(), false, LIMITS);
        assert_eq!(indexes(&bodies), vec![vec![0, 1]]);
        let error = outcome.error.expect("error");
        assert!(error.contains("invalid JSON"), "{error}");
        let (_, trailing) = split(format!("[{}] [1]", record(0)).as_bytes(), false, LIMITS);
        assert!(
            trailing
                .error
                .expect("trailing")
                .contains("after the JSON document")
        );
        let (_, empty) = split(b"", false, LIMITS);
        assert!(empty.error.is_some());
    }

    #[test]
    fn an_object_without_records_is_one_record() {
        let (bodies, outcome) = split(record(7).as_bytes(), false, LIMITS);
        assert_eq!(indexes(&bodies), vec![vec![0]]);
        assert_eq!(bodies[0][0].1, record(7));
        assert!(outcome.error.is_none());
    }

    #[test]
    fn a_stopped_receiver_stops_reading_without_an_error() {
        let text = format!("[{},{},{},{}]", record(0), record(1), record(2), record(3));
        let mut calls = 0;
        let outcome = split_reader(text.as_bytes(), false, LIMITS, &mut |_| {
            calls += 1;
            Err(Stopped)
        });
        assert_eq!(calls, 1);
        assert!(outcome.stopped);
        assert!(outcome.error.is_none());
    }

    #[test]
    fn walks_pick_event_files_and_skip_the_rest() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let nested = root
            .path()
            .join("AWSLogs/111122223333/CloudTrail/us-east-1");
        std::fs::create_dir_all(&nested)?;
        std::fs::create_dir_all(root.path().join(".git"))?;
        let write = |path: PathBuf, text: &str| std::fs::write(path, text);
        write(nested.join("a.json.gz"), "x")?;
        write(nested.join("b.JSON"), "x")?;
        write(root.path().join("c.ndjson"), "x")?;
        write(root.path().join("d.jsonl"), "x")?;
        write(root.path().join("e.json.cloudtrail"), "x")?;
        write(root.path().join("notes.txt"), "x")?;
        write(root.path().join("empty.json"), "")?;
        write(root.path().join(".hidden.json"), "x")?;
        write(root.path().join(".git/config.json"), "x")?;
        write(
            nested.join("111122223333_CloudTrail-Digest_us-east-1_x.json.gz"),
            "x",
        )?;
        let explicit = root.path().join("notes.txt");
        let found = discover(&[root.path().to_owned(), explicit.clone()])?;
        let names: Vec<String> = found
            .files
            .iter()
            .map(|file| {
                file.path
                    .strip_prefix(root.path())
                    .map(|relative| relative.display().to_string())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            names,
            [
                "AWSLogs/111122223333/CloudTrail/us-east-1/a.json.gz",
                "AWSLogs/111122223333/CloudTrail/us-east-1/b.JSON",
                "c.ndjson",
                "d.jsonl",
                "e.json.cloudtrail",
                "notes.txt",
            ]
        );
        // Named explicitly, notes.txt is sent, not skipped. Hidden directories are not
        // entered at all.
        assert_eq!(found.skipped.len(), 3, "{:?}", found.skipped);
        assert!(discover(&[root.path().join("missing")]).is_err());
        Ok(())
    }

    #[test]
    fn small_files_go_whole_and_big_or_line_files_are_split() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let small = root.path().join("small.json");
        std::fs::write(&small, record(0))?;
        let lines = root.path().join("small.ndjson");
        std::fs::write(&lines, record(0))?;
        let as_file = |path: &Path| -> anyhow::Result<EventFile> {
            Ok(EventFile {
                path: path.to_owned(),
                size_bytes: std::fs::metadata(path)?.len(),
            })
        };
        let limits = BatchLimits {
            events_max: 10,
            bytes_max: 1024,
        };
        match plan_file(&as_file(&small)?, limits)? {
            FilePlan::Whole { gzip_body } => {
                let mut plain = String::new();
                GzDecoder::new(gzip_body.as_slice()).read_to_string(&mut plain)?;
                assert_eq!(plain, record(0));
            }
            FilePlan::Split => panic!("a small file goes whole"),
        }
        assert!(matches!(
            plan_file(&as_file(&lines)?, limits)?,
            FilePlan::Split
        ));
        // A gzip file that expands past the limit is split, by its trailer's size.
        let expanding = root.path().join("big.json.gz");
        std::fs::write(&expanding, gzip(" ".repeat(4096).as_bytes())?)?;
        assert!(matches!(
            plan_file(&as_file(&expanding)?, limits)?,
            FilePlan::Split
        ));
        Ok(())
    }
}

//! Request bodies of `opentrail ingest`: cutting event files into bodies for
//! `POST /v1/events` with bounded memory. Which files to send is `opentrail_import`'s
//! listing, and reading records out of a file is `opentrail_event::parse::stream`'s; this
//! module packs what they find. Everything here is blocking I/O and runs off the async
//! runtime (see `ingest_command`).
//!
//! # How a file becomes requests
//!
//! - A small file (at most `--batch-bytes` once decompressed, NDJSON excepted) is sent
//!   whole, so the server sees exactly the producer's bytes and reports record indexes
//!   as positions in the file. Plain files are gzipped for the wire; `.gz` files go as
//!   they are.
//! - NDJSON files and bigger JSON files are read as a stream of records and packed into
//!   JSON-array bodies of at most `--batch-events` records and `--batch-bytes` bytes,
//!   gzipped. Each body remembers the position in the file of each of its records, so the
//!   summary names records by file and index either way.
//!
//! Records that cannot be sent at all (a line that is not JSON, a record over the
//! server's size limit) are reported with the error codes the server would give them
//! (`InvalidData`, `FieldTooLong`), and the rest of the file still goes.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Seek as _, SeekFrom, Write as _};
use std::path::Path;
use std::rc::Rc;

use anyhow::Context as _;
use flate2::Compression;
use flate2::write::GzEncoder;
use opentrail_event::parse::stream::{self, StreamError, StreamedRecord};
use opentrail_event::{RecordError, is_gzip};
use opentrail_import::classify::is_line_file;
use opentrail_import::{ImportError, ListedFile, LocalListing, list_local_files};
use opentrail_protocol::cloudtrail_data::record_error_code;

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

/// The event files under `paths`, as `ingest` and `rules test` read them: import's walk
/// and rules (`opentrail_import::list_local_files`), with a path that cannot be read at
/// all named in the error.
pub fn list_event_files(paths: &[std::path::PathBuf]) -> anyhow::Result<LocalListing> {
    list_local_files(paths).map_err(|error| match error {
        ImportError::InvalidSource {
            source_text,
            reason,
        } => anyhow::anyhow!("cannot read {source_text}: {reason}"),
        other => other.into(),
    })
}

/// Decides between sending a file whole and splitting it, and for a whole file reads its
/// body (gzipped for the wire unless it already is gzip).
pub fn plan_file(file: &ListedFile, limits: BatchLimits) -> anyhow::Result<FilePlan> {
    if is_line_file(&file.path.to_string_lossy()) {
        return Ok(FilePlan::Split);
    }
    // The summary names the file; the messages here say what went wrong with it.
    let path = &file.path;
    let mut handle = File::open(path).context("cannot open the file")?;
    let mut magic = [0u8; 2];
    let magic_len = read_up_to(&mut handle, &mut magic).context("cannot read the file")?;
    let gzipped = is_gzip(&magic[..magic_len]);
    let plain_size_estimate = if gzipped {
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
    let gzip_body = if gzipped {
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
    split_reader(file, is_line_file(&path.to_string_lossy()), limits, emit)
}

/// Cuts a source (plain or gzip, detected by its first bytes) into JSON-array bodies and
/// hands each to `emit` as soon as it is full, so memory holds one body at a time.
/// `lines` forces line-by-line reading; otherwise the first line decides (see
/// `opentrail_event::parse::stream`).
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
    let mut packer = BodyPacker {
        batch: BatchBuilder::new(limits),
        emit,
        bytes_read: Rc::clone(&bytes_read),
        bytes_reported: 0,
        local_failures: Vec::new(),
    };
    let read = stream::read_records(counting, lines, &mut |record| packer.take(record));
    let ended = match read {
        Ok(()) => packer.flush(),
        Err(StreamError::Visit(error)) => Err(error),
        // Records before the problem were read: send them (unless nobody listens).
        Err(error) => match packer.flush() {
            Err(PackError::Stopped) => Err(PackError::Stopped),
            _ => Err(PackError::Unreadable(error.to_string())),
        },
    };
    let (error, stopped) = match ended {
        Ok(()) => (None, false),
        Err(PackError::Stopped) => (None, true),
        Err(error) => (Some(error.to_string()), false),
    };
    SplitOutcome {
        local_failures: packer.local_failures,
        error,
        trailing_source_bytes: bytes_read.get().saturating_sub(packer.bytes_reported),
        stopped,
    }
}

/// Why packing stopped before the end of the source.
#[derive(Debug)]
enum PackError {
    /// The receiver of bodies went away.
    Stopped,
    Compress(io::Error),
    /// The rest of the source could not be read; the message says why.
    Unreadable(String),
}

impl std::fmt::Display for PackError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackError::Stopped => formatter.write_str("stopped"),
            PackError::Compress(error) => {
                write!(formatter, "cannot compress a request body: {error}")
            }
            PackError::Unreadable(message) => formatter.write_str(message),
        }
    }
}

/// Keeps local failures and fills bodies with the records the stream hands over.
struct BodyPacker<'e> {
    batch: BatchBuilder,
    emit: &'e mut dyn FnMut(SplitBody) -> Result<(), Stopped>,
    bytes_read: Rc<Cell<u64>>,
    bytes_reported: u64,
    local_failures: Vec<LocalFailure>,
}

impl BodyPacker<'_> {
    fn take(&mut self, record: StreamedRecord<'_>) -> Result<(), PackError> {
        match record {
            StreamedRecord::Record { index, json } => self.record(index, json),
            StreamedRecord::Failed(RecordError {
                index,
                kind,
                message,
                ..
            }) => {
                self.local_failures.push(LocalFailure {
                    index,
                    error_code: record_error_code(kind).to_owned(),
                    message,
                });
                Ok(())
            }
        }
    }

    fn record(&mut self, index: usize, json: &[u8]) -> Result<(), PackError> {
        if self.batch.is_full_for(json.len()) {
            self.flush()?;
        }
        self.batch.push(index, json).map_err(PackError::Compress)?;
        if self.batch.is_full() {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PackError> {
        let Some((gzip_body, file_indexes)) = self.batch.finish().map_err(PackError::Compress)?
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
        .map_err(|Stopped| PackError::Stopped)
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
    use flate2::read::GzDecoder;
    use opentrail_event::MAX_RECORD_BYTES;
    use serde_json::value::RawValue;

    use super::*;

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
    fn records_that_cannot_be_sent_fail_locally_with_the_servers_codes() {
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_RECORD_BYTES));
        let lines = [
            record(0),
            "[1, 2".to_owned(),
            record(1),
            big,
            record(2),
            record(3),
        ];
        let (bodies, outcome) = split(lines.join("\n").as_bytes(), true, LIMITS);
        assert_eq!(indexes(&bodies), vec![vec![0, 2], vec![4, 5]]);
        let codes: Vec<(usize, &str)> = outcome
            .local_failures
            .iter()
            .map(|failure| (failure.index, failure.error_code.as_str()))
            .collect();
        assert_eq!(codes, [(1, "InvalidData"), (3, "FieldTooLong")]);
        assert!(outcome.error.is_none());
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
    fn small_files_go_whole_and_big_or_line_files_are_split() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let small = root.path().join("small.json");
        std::fs::write(&small, record(0))?;
        let lines = root.path().join("small.ndjson");
        std::fs::write(&lines, record(0))?;
        let as_file = |path: &Path| -> anyhow::Result<ListedFile> {
            Ok(ListedFile {
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

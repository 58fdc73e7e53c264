//! The durable record of a trail's delivered log files: what the digest writer (log file
//! integrity, issue 6) consumes.
//!
//! One JSON line per delivered file, in `DATA_DIR/trails/<trail id>/manifest/<YYYY-MM-DD>.jsonl`
//! by the UTC day it was recorded. Lines carry a per-trail `fileSeq` that only grows, so a
//! consumer keeps its own cursor (the last `fileSeq` it processed) exactly as log consumers
//! keep a store cursor: the manifest is a second-level log.
//!
//! Each batch's lines are appended with one write and one fsync, after its objects are
//! written and before the delivery cursor moves. A line is therefore only ever recorded
//! for an object that exists. A crash can leave a torn last line, which reading ignores
//! and the next append replaces; a batch redone after a crash appends only the lines that
//! are not there yet, so every file is recorded exactly once.
//!
//! Day files older than the retention are deleted whole ([`Manifest::prune`]); the digest
//! writer must consume within that window (or hold pruning back).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TrailsError;

const MANIFEST_DIR_NAME: &str = "manifest";
const DAY_FILE_SUFFIX: &str = ".jsonl";

/// One delivered log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredFile {
    /// Per trail, starting at 1, one more for every recorded file.
    pub file_seq: u64,
    /// The delivery batch that wrote the file.
    pub batch_number: u64,
    pub bucket: String,
    pub key: String,
    /// Lower-case hex SHA-256 of the uncompressed `{"Records":[…]}`.
    pub sha256_hex: String,
    pub records: usize,
    /// Oldest and newest `eventTime` of the file's records (ms); `None` when no record's
    /// time parses.
    pub oldest_event_time_ms: Option<i64>,
    pub newest_event_time_ms: Option<i64>,
    /// The file covers log entries `after_seq < seq <= through_seq` of its stream.
    pub after_seq: u64,
    pub through_seq: u64,
    /// When the batch was planned: the time in the key.
    pub planned_time_ms: i64,
    /// When this line was recorded (after the object was written). Monotonic in
    /// `file_seq` unless the clock steps back.
    pub delivered_time_ms: i64,
}

/// A trail's manifest. Only the trail's delivery worker appends; readers may read at
/// any time.
#[derive(Debug, Clone)]
pub struct Manifest {
    dir: PathBuf,
}

impl Manifest {
    /// The manifest of the trail whose state directory is `trail_dir`.
    pub fn new(trail_dir: &Path) -> Manifest {
        Manifest {
            dir: trail_dir.join(MANIFEST_DIR_NAME),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Day files, oldest first.
    fn day_files(&self) -> Result<Vec<PathBuf>, TrailsError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(TrailsError::Read {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| TrailsError::Read {
                path: self.dir.clone(),
                source,
            })?;
            let path = entry.path();
            if path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(DAY_FILE_SUFFIX))
            {
                files.push(path);
            }
        }
        // `YYYY-MM-DD` names sort by date.
        files.sort();
        Ok(files)
    }

    fn read_day_file(path: &Path) -> Result<Vec<DeliveredFile>, TrailsError> {
        let text = match opentrail_durable::read_optional(path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(Vec::new()),
            Err(source) => {
                return Err(TrailsError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut files = Vec::new();
        let mut lines = text.split(|byte| *byte == b'\n').peekable();
        while let Some(line) = lines.next() {
            let is_last = lines.peek().is_none();
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<DeliveredFile>(line) {
                Ok(file) => files.push(file),
                // Only the final line can be torn by a crash during its append.
                Err(_) if is_last => break,
                Err(error) => {
                    return Err(TrailsError::Corrupt {
                        path: path.to_owned(),
                        reason: error.to_string(),
                    });
                }
            }
        }
        Ok(files)
    }

    /// Every recorded file with `file_seq > after_file_seq`, oldest first, at most `limit`.
    pub fn read_after(
        &self,
        after_file_seq: u64,
        limit: usize,
    ) -> Result<Vec<DeliveredFile>, TrailsError> {
        let mut found = Vec::new();
        for path in self.day_files()? {
            for file in Manifest::read_day_file(&path)? {
                if file.file_seq > after_file_seq {
                    found.push(file);
                    if found.len() >= limit {
                        return Ok(found);
                    }
                }
            }
        }
        Ok(found)
    }

    /// The most recently recorded file.
    pub fn last(&self) -> Result<Option<DeliveredFile>, TrailsError> {
        for path in self.day_files()?.iter().rev() {
            if let Some(file) = Manifest::read_day_file(path)?.pop() {
                return Ok(Some(file));
            }
        }
        Ok(None)
    }

    /// The files already recorded for a batch (for redoing a batch after a crash).
    pub(crate) fn recorded_for_batch(
        &self,
        batch_number: u64,
    ) -> Result<Vec<DeliveredFile>, TrailsError> {
        let mut found = Vec::new();
        for path in self.day_files()?.iter().rev() {
            let files = Manifest::read_day_file(path)?;
            let before = found.len();
            found.extend(
                files
                    .into_iter()
                    .filter(|file| file.batch_number == batch_number),
            );
            // Batches are appended in order, so once an older day holds none of this
            // batch (and a newer day did), older days hold none either.
            if found.len() == before && !found.is_empty() {
                break;
            }
        }
        Ok(found)
    }

    /// Appends lines with one write and one fsync. `file_seq`s must continue the
    /// manifest's sequence. Blocking.
    pub(crate) fn append(&self, files: &[DeliveredFile]) -> Result<(), TrailsError> {
        let Some(first) = files.first() else {
            return Ok(());
        };
        std::fs::create_dir_all(&self.dir).map_err(|source| TrailsError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.dir.join(day_file_name(first.delivered_time_ms));
        // A torn line from a crash must not swallow the first new line: start on a fresh
        // line whenever the file does not end with one.
        let needs_newline = match last_byte(&path) {
            Ok(last) => last.is_some_and(|last| last != b'\n'),
            Err(source) => return Err(TrailsError::Read { path, source }),
        };
        let mut text = Vec::new();
        if needs_newline {
            text.push(b'\n');
        }
        for file in files {
            let line = serde_json::to_vec(file).map_err(|error| TrailsError::Corrupt {
                path: path.clone(),
                reason: error.to_string(),
            })?;
            text.extend_from_slice(&line);
            text.push(b'\n');
        }
        opentrail_durable::append_durably(&path, &text)
            .map_err(|source| TrailsError::Write { path, source })
    }

    /// Deletes day files that ended before `keep_from_ms`, except one holding a file with
    /// `file_seq > hold_after_file_seq` (what a consumer has not processed yet). Blocking.
    pub fn prune(
        &self,
        keep_from_ms: i64,
        hold_after_file_seq: Option<u64>,
    ) -> Result<usize, TrailsError> {
        let keep_from_day = day_file_name(keep_from_ms);
        let mut removed = 0;
        for path in self.day_files()? {
            let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
                continue;
            };
            if name >= keep_from_day.as_str() {
                break;
            }
            if let Some(hold) = hold_after_file_seq
                && Manifest::read_day_file(&path)?
                    .iter()
                    .any(|file| file.file_seq > hold)
            {
                break;
            }
            std::fs::remove_file(&path).map_err(|source| TrailsError::Write {
                path: path.clone(),
                source,
            })?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// The last byte of a file; `None` when it is missing or empty.
fn last_byte(path: &Path) -> std::io::Result<Option<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut byte = [0u8; 1];
    file.read_exact(&mut byte)?;
    Ok(Some(byte[0]))
}

fn day_file_name(time_ms: i64) -> String {
    let timestamp =
        jiff::Timestamp::from_millisecond(time_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{}{DAY_FILE_SUFFIX}", timestamp.strftime("%Y-%m-%d"))
}

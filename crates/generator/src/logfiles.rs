//! CloudTrail log files as S3 delivery writes them: gzip JSON `{"Records":[…]}`, one file
//! per account, region and 5-minute window (split further past a size cap), named
//! `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<16 chars>.json.gz`.
//!
//! Files are streamed: each open file is a gzip encoder over a buffered file, so memory
//! stays bounded by the number of (account, region) pairs however many events pass.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::rng::Rng;
use crate::{EventMeta, format_event_time};

/// CloudTrail delivers about every 5 minutes.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;
/// A file is closed once this much uncompressed JSON went in, as busy trails deliver
/// several files per window. Also keeps each file well under DuckDB's default
/// `maximum_object_size` (16 MB).
pub const MAX_FILE_RAW_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogFileError {
    #[error("cannot write the log file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogFilesSummary {
    pub files: u64,
    pub records: u64,
    /// Uncompressed bytes of the records' JSON (not counting the `{"Records":[` wrapper).
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
}

struct OpenFile {
    account: Arc<str>,
    region: Arc<str>,
    window: i64,
    path: PathBuf,
    encoder: GzEncoder<BufWriter<File>>,
    raw_bytes: u64,
    records: u64,
}

/// Writes records into CloudTrail log files under `root`.
pub struct LogFileWriter {
    root: PathBuf,
    rng: Rng,
    open: Vec<OpenFile>,
    summary: LogFilesSummary,
}

impl LogFileWriter {
    /// Files go under `root/AWSLogs/…`; `seed` makes the random file-name suffixes
    /// reproducible.
    pub fn new(root: &Path, seed: u64) -> LogFileWriter {
        LogFileWriter {
            root: root.to_owned(),
            rng: Rng::fork(seed, 3),
            open: Vec::new(),
            summary: LogFilesSummary::default(),
        }
    }

    /// Adds one record (its JSON text and where/when it happened).
    pub fn write(&mut self, meta: &EventMeta, json: &str) -> Result<(), LogFileError> {
        let window = meta.event_time_ms.div_euclid(WINDOW_MS);
        let slot = self
            .open
            .iter()
            .position(|file| file.account == meta.account_id && file.region == meta.region);
        let slot = match slot {
            Some(index)
                if self.open[index].window == window
                    && self.open[index].raw_bytes < MAX_FILE_RAW_BYTES =>
            {
                index
            }
            Some(index) => {
                let finished = self.open.swap_remove(index);
                self.close(finished)?;
                self.open_file(meta, window)?
            }
            None => self.open_file(meta, window)?,
        };
        let file = &mut self.open[slot];
        let separator: &[u8] = if file.records == 0 { b"" } else { b"," };
        let written = file
            .encoder
            .write_all(separator)
            .and_then(|()| file.encoder.write_all(json.as_bytes()));
        if let Err(source) = written {
            return Err(LogFileError::Io {
                path: file.path.clone(),
                source,
            });
        }
        file.raw_bytes += json.len() as u64;
        file.records += 1;
        self.summary.records += 1;
        self.summary.raw_bytes += json.len() as u64;
        Ok(())
    }

    /// Closes every open file and says what was written.
    pub fn finish(mut self) -> Result<LogFilesSummary, LogFileError> {
        while let Some(file) = self.open.pop() {
            self.close(file)?;
        }
        Ok(self.summary)
    }

    fn open_file(&mut self, meta: &EventMeta, window: i64) -> Result<usize, LogFileError> {
        // Named for the end of its window, as a delivery a few minutes later would be.
        let stamp = format_event_time((window + 1) * WINDOW_MS);
        let (year, month, day) = (&stamp[0..4], &stamp[5..7], &stamp[8..10]);
        let compact = format!("{year}{month}{day}T{}{}Z", &stamp[11..13], &stamp[14..16]);
        let account = &meta.account_id;
        let region = &meta.region;
        let directory = self
            .root
            .join("AWSLogs")
            .join(&**account)
            .join("CloudTrail")
            .join(&**region)
            .join(year)
            .join(month)
            .join(day);
        std::fs::create_dir_all(&directory).map_err(|source| LogFileError::Io {
            path: directory.clone(),
            source,
        })?;
        let suffix = self.suffix();
        let path = directory.join(format!(
            "{account}_CloudTrail_{region}_{compact}_{suffix}.json.gz"
        ));
        let file = File::create(&path).map_err(|source| LogFileError::Io {
            path: path.clone(),
            source,
        })?;
        let mut encoder = GzEncoder::new(
            BufWriter::with_capacity(256 * 1024, file),
            Compression::default(),
        );
        encoder
            .write_all(b"{\"Records\":[")
            .map_err(|source| LogFileError::Io {
                path: path.clone(),
                source,
            })?;
        self.open.push(OpenFile {
            account: Arc::clone(account),
            region: Arc::clone(region),
            window,
            path,
            encoder,
            raw_bytes: 0,
            records: 0,
        });
        Ok(self.open.len() - 1)
    }

    fn close(&mut self, mut file: OpenFile) -> Result<(), LogFileError> {
        let path = file.path.clone();
        let io_error = |source| LogFileError::Io {
            path: path.clone(),
            source,
        };
        file.encoder.write_all(b"]}").map_err(io_error)?;
        let mut buffered = file.encoder.finish().map_err(io_error)?;
        buffered.flush().map_err(io_error)?;
        let length = buffered.get_ref().metadata().map_err(io_error)?.len();
        self.summary.files += 1;
        self.summary.compressed_bytes += length;
        Ok(())
    }

    /// 16 random alphanumerics, as CloudTrail's file names end.
    fn suffix(&mut self) -> String {
        const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..16)
            .map(|_| ALNUM[self.rng.below(ALNUM.len())] as char)
            .collect()
    }
}

//! The final account of an import, printed as text or as one JSON object.

/// The most per-file errors listed; beyond it only their count grows, so a tree of a
/// million broken files cannot exhaust memory or flood the terminal.
pub const LISTED_ERRORS_MAX: usize = 1_000;

/// What an import did. The JSON keys are the field names.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ImportSummary {
    /// CloudTrail files read in this run (with or without errors).
    pub files: u64,
    /// Events newly stored.
    pub events_imported: u64,
    /// Events already stored (same `recipientAccountId` and `eventID`), skipped.
    pub duplicates: u64,
    /// Files not imported because they are not CloudTrail logs: digest files, other
    /// services' logs, other file types, JSON without CloudTrail records.
    pub files_skipped: u64,
    /// Of `files_skipped`: CloudTrail digest files.
    pub files_skipped_digest: u64,
    /// Of `files_skipped`: everything else that is not a CloudTrail log.
    pub files_skipped_not_cloudtrail: u64,
    /// Files not read because the checkpoint says an earlier run imported them, unchanged.
    pub files_already_imported: u64,
    /// Records that could not be imported (invalid, or refused by the destination).
    pub events_failed: u64,
    /// Files with errors: unreadable, corrupt, or with failed records. At most
    /// [`LISTED_ERRORS_MAX`] are listed; `error_files` counts them all.
    pub errors: Vec<FileError>,
    pub error_files: u64,
    /// Bytes read as stored (compressed for `.gz`).
    pub bytes_read: u64,
    /// Bytes of JSON after decompression: the figure import speed is quoted in.
    pub json_bytes: u64,
    pub seconds: f64,
    /// True when the import was stopped (Ctrl-C) before it finished; a re-run resumes.
    pub interrupted: bool,
}

/// One file's problem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileError {
    /// The local path or `s3://` URL.
    pub path: String,
    /// What went wrong, on one line.
    pub message: String,
    /// How many of the file's records failed (0 when the whole file could not be read).
    pub records_failed: u64,
}

impl ImportSummary {
    pub(crate) fn add_error(&mut self, error: FileError) {
        self.error_files += 1;
        if self.errors.len() < LISTED_ERRORS_MAX {
            self.errors.push(error);
        }
    }

    /// Whether any file or record could not be imported.
    pub fn has_errors(&self) -> bool {
        self.error_files > 0
    }
}

//! Per-source records of completely imported files, so that a re-run (after an interruption,
//! or to pick up new files) skips what is already in.
//!
//! # Format
//!
//! One file per (destination, source) pair, named by a hash of both, in JSON lines: a header
//! `{"identity": "…"}`, then one `{"path": …, "size": …, "version": …}` line per completed
//! file. A file is recognised as done only when path, size and version (modification time
//! or ETag) all match, so a file that changed since is read again.
//!
//! # Why no fsync
//!
//! Lines are appended only after the sink reported every event of those files durable. A
//! line that a crash loses only makes the next run read that file again, which adds
//! nothing because the store deduplicates; a line that survives always names a file whose
//! events were fsynced before the line was written. So the checkpoint is a cache that may
//! under-report, never over-report, and it needs no fsync of its own. A torn last line is
//! ignored when the file is read back.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// The name of the checkpoint directory inside a data directory.
pub const CHECKPOINT_DIR_NAME: &str = "import-checkpoints";

/// Identifies one file of a source across runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CompletedFile {
    pub path: String,
    pub size: u64,
    pub version: String,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Header {
    identity: String,
}

#[derive(Debug, thiserror::Error)]
#[error("import checkpoint {path}: {source}")]
pub struct CheckpointError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// An open checkpoint: what earlier runs completed, and the file new completions go to.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    file: File,
    completed: HashSet<CompletedFile>,
}

impl Checkpoint {
    /// Opens (creating if needed) the checkpoint of `identity` in `dir`.
    pub fn open(dir: &Path, identity: &str) -> Result<Checkpoint, CheckpointError> {
        let error_at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError { path, source }
        };
        opentrail_durable::create_private_directory(dir).map_err(error_at(dir))?;
        let path = dir.join(file_name_for(identity));
        let existing = match File::open(&path) {
            Ok(existing) => read_completed(existing, identity).map_err(error_at(&path))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Existing::StartOver,
            Err(error) => return Err(error_at(&path)(error)),
        };
        let (completed, needs_header, ends_mid_line) = match existing {
            Existing::Valid {
                completed,
                ends_mid_line,
            } => (completed, false, ends_mid_line),
            Existing::StartOver => (HashSet::new(), true, false),
        };
        let mut options = std::fs::OpenOptions::new();
        options.create(true);
        if needs_header {
            // An empty or untrustworthy file is replaced by a fresh one.
            options.write(true).truncate(true);
        } else {
            options.append(true);
        }
        let mut file = options.open(&path).map_err(error_at(&path))?;
        let mut preamble = Vec::new();
        if ends_mid_line {
            // Close a line torn by a crash, so the next entry starts on a line of its own.
            preamble.push(b'\n');
        }
        if needs_header {
            serde_json::to_writer(
                &mut preamble,
                &Header {
                    identity: identity.to_owned(),
                },
            )
            .map_err(|error| error_at(&path)(error.into()))?;
            preamble.push(b'\n');
        }
        if !preamble.is_empty() {
            file.write_all(&preamble).map_err(error_at(&path))?;
        }
        Ok(Checkpoint {
            path,
            file,
            completed,
        })
    }

    /// The files earlier runs completed.
    pub fn completed(&self) -> &HashSet<CompletedFile> {
        &self.completed
    }

    /// Hands over the set of completed files (the lister consults it while this
    /// checkpoint keeps recording).
    pub fn take_completed(&mut self) -> HashSet<CompletedFile> {
        std::mem::take(&mut self.completed)
    }

    /// Records that every event of `files` is durable. Call only after the sink said so.
    pub fn record(&mut self, files: &[CompletedFile]) -> Result<(), CheckpointError> {
        if files.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        for file in files {
            serde_json::to_writer(&mut lines, file).map_err(|error| CheckpointError {
                path: self.path.clone(),
                source: error.into(),
            })?;
            lines.push(b'\n');
        }
        // One write per batch: the lines reach the kernel together, and a crash can tear
        // at most the last one.
        self.file
            .write_all(&lines)
            .map_err(|source| CheckpointError {
                path: self.path.clone(),
                source,
            })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

enum Existing {
    Valid {
        completed: HashSet<CompletedFile>,
        ends_mid_line: bool,
    },
    /// Empty, or its header is damaged or names another identity (a hash collision): trust
    /// nothing in it. Reading every file again is always correct.
    StartOver,
}

/// The completed files an existing checkpoint lists.
fn read_completed(file: File, identity: &str) -> std::io::Result<Existing> {
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(Existing::StartOver);
    }
    match serde_json::from_str::<Header>(line.trim()) {
        Ok(header) if header.identity == identity && line.ends_with('\n') => {}
        _ => return Ok(Existing::StartOver),
    }
    let mut completed = HashSet::new();
    let mut ends_mid_line = false;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        ends_mid_line = !line.ends_with('\n');
        // A torn or damaged line only means that file is read again.
        if let Ok(entry) = serde_json::from_str::<CompletedFile>(line.trim()) {
            completed.insert(entry);
        }
    }
    Ok(Existing::Valid {
        completed,
        ends_mid_line,
    })
}

fn file_name_for(identity: &str) -> String {
    let digest = Sha256::digest(identity.as_bytes());
    format!("{}.jsonl", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> CompletedFile {
        CompletedFile {
            path: path.to_owned(),
            size: 10,
            version: "1".to_owned(),
        }
    }

    #[test]
    fn completed_files_survive_reopening_and_torn_lines_are_ignored() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut checkpoint = Checkpoint::open(dir.path(), "store\n/logs")?;
        assert!(checkpoint.completed().is_empty());
        checkpoint.record(&[entry("a.json"), entry("b.json")])?;
        let path = checkpoint.path().to_path_buf();
        drop(checkpoint);
        // A crash in the middle of the next line.
        let mut file = std::fs::OpenOptions::new().append(true).open(&path)?;
        file.write_all(br#"{"path":"c.js"#)?;
        drop(file);

        let mut reopened = Checkpoint::open(dir.path(), "store\n/logs")?;
        assert_eq!(
            reopened.completed(),
            &HashSet::from([entry("a.json"), entry("b.json")])
        );
        reopened.record(&[entry("c.json")])?;
        drop(reopened);
        let again = Checkpoint::open(dir.path(), "store\n/logs")?;
        assert_eq!(again.completed().len(), 3);
        Ok(())
    }

    #[test]
    fn another_identity_has_its_own_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut first = Checkpoint::open(dir.path(), "store\n/logs")?;
        first.record(&[entry("a.json")])?;
        let other = Checkpoint::open(dir.path(), "store\n/other")?;
        assert!(other.completed().is_empty());
        assert_ne!(first.path(), other.path());
        Ok(())
    }
}

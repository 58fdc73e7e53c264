//! Listing sources: the lister of an import, which walks every source, classifies each
//! file by its path, leaves out what the checkpoint says is done and queues the rest for
//! the workers; and [`list_local_files`], the same walk and classification collected into
//! one list for a caller that sends files itself (`opentrail ingest`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::UNIX_EPOCH;

use futures_util::StreamExt as _;
use object_store::ObjectStore;
use opentrail_event::IngestContext;

use crate::checkpoint::CompletedFile;
use crate::classify::{FileKind, PathHint, SkipReason, classify_file};
use crate::error::ImportError;
use crate::progress::ImportProgress;
use crate::source::{FileLocation, FileTask, canonical_source, s3_url};
use crate::summary::FileError;
use crate::walk::{Flow, LocalFile, Visit, walk_local};

/// A source, resolved and ready to list.
pub(crate) enum ResolvedSource {
    Local {
        /// As the user wrote it: printed paths start with it.
        given: PathBuf,
        /// Absolute and without symlinks: classified, and the checkpoint's identity.
        canonical: PathBuf,
    },
    S3 {
        bucket: String,
        prefix: String,
        bucket_index: usize,
        client: Arc<dyn ObjectStore>,
    },
}

/// What the listing found besides the queued files.
#[derive(Debug, Default)]
pub(crate) struct ListingReport {
    pub skipped_digest: u64,
    pub skipped_not_cloudtrail: u64,
    pub already_imported: u64,
    pub errors: Vec<FileError>,
}

pub(crate) struct Lister<'a> {
    pub sources: &'a [ResolvedSource],
    /// Per source: the files its checkpoint lists as done (empty when re-reading all).
    pub completed: Vec<HashSet<CompletedFile>>,
    pub default_context: &'a IngestContext,
    pub runtime: Option<&'a tokio::runtime::Handle>,
    pub tasks: SyncSender<FileTask>,
    pub progress: &'a ImportProgress,
    pub stop: &'a AtomicBool,
    pub next_id: u64,
    pub report: ListingReport,
}

/// One file a listing found, before it is classified.
struct FoundFile<'a> {
    /// The full path or key: the AWSLogs layout may start above the source root.
    classified_path: &'a str,
    /// Named on the command line rather than found in a folder.
    named_explicitly: bool,
    relative_path: String,
    display_path: String,
    size: u64,
    version: String,
    location: FileLocation,
}

impl Lister<'_> {
    pub(crate) fn run(mut self) -> ListingReport {
        for (source_index, source) in self.sources.iter().enumerate() {
            let flow = match source {
                ResolvedSource::Local { given, canonical } => {
                    self.list_local(source_index, given, canonical)
                }
                ResolvedSource::S3 {
                    bucket,
                    prefix,
                    bucket_index,
                    client,
                } => self.list_s3(source_index, bucket, prefix, *bucket_index, client),
            };
            if matches!(flow, Flow::Stop) {
                break;
            }
        }
        self.progress
            .listing_complete
            .store(true, Ordering::Release);
        self.report
    }

    fn list_local(&mut self, source_index: usize, given: &Path, canonical: &Path) -> Flow {
        walk_local(given, canonical, &mut |visit| {
            if self.stop.load(Ordering::Relaxed) {
                return Flow::Stop;
            }
            match visit {
                Visit::File(file) => self.offer_local_file(source_index, file),
                Visit::Unlistable {
                    display_path,
                    error,
                } => {
                    self.listing_error(display_path, &error);
                    Flow::Continue
                }
            }
        })
    }

    fn offer_local_file(&mut self, source_index: usize, file: LocalFile<'_>) -> Flow {
        let version = file
            .metadata
            .modified()
            .ok()
            .and_then(|modified| modified.duration_since(UNIX_EPOCH).ok())
            .map(|since_epoch| since_epoch.as_nanos().to_string())
            .unwrap_or_default();
        let classified_path = file.path.to_string_lossy();
        self.offer(
            source_index,
            FoundFile {
                classified_path: &classified_path,
                named_explicitly: file.named_explicitly,
                relative_path: file.relative_path,
                display_path: file.display_path,
                size: file.metadata.len(),
                version,
                location: FileLocation::Local(file.path.to_path_buf()),
            },
        )
    }

    fn list_s3(
        &mut self,
        source_index: usize,
        bucket: &str,
        prefix: &str,
        bucket_index: usize,
        client: &Arc<dyn ObjectStore>,
    ) -> Flow {
        let Some(runtime) = self.runtime else {
            self.report.errors.push(FileError {
                path: s3_url(bucket, prefix),
                message: "no async runtime for the S3 client".to_owned(),
                records_failed: 0,
            });
            return Flow::Continue;
        };
        let prefix_path = object_store::path::Path::from(prefix);
        let mut listing = client.list((!prefix.is_empty()).then_some(&prefix_path));
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Flow::Stop;
            }
            // One object at a time, so the blocking queue below never runs inside the
            // async runtime.
            let Some(item) = runtime.block_on(listing.next()) else {
                return Flow::Continue;
            };
            let object = match item {
                Ok(object) => object,
                Err(error) => {
                    // The listing cannot be resumed after an error: say so, with the prefix.
                    self.report.errors.push(FileError {
                        path: s3_url(bucket, prefix),
                        message: format!(
                            "listing failed, objects after this point were not imported: {error}"
                        ),
                        records_failed: 0,
                    });
                    self.progress.error_files.fetch_add(1, Ordering::Relaxed);
                    return Flow::Continue;
                }
            };
            let key = object.location.as_ref().to_owned();
            // The key below the prefix; an object named by the prefix itself keeps its key.
            let relative = key
                .strip_prefix(prefix)
                .map(|rest| rest.trim_start_matches('/'))
                .filter(|rest| !rest.is_empty())
                .unwrap_or(&key)
                .to_owned();
            let named_explicitly = key == prefix;
            let version = object
                .e_tag
                .clone()
                .unwrap_or_else(|| object.last_modified.to_rfc3339());
            let display_path = s3_url(bucket, &key);
            let flow = self.offer(
                source_index,
                FoundFile {
                    classified_path: &key,
                    named_explicitly,
                    relative_path: relative,
                    display_path,
                    size: object.size,
                    version,
                    location: FileLocation::S3 {
                        bucket_index,
                        key: object.location,
                    },
                },
            );
            if matches!(flow, Flow::Stop) {
                return Flow::Stop;
            }
        }
    }

    /// Classifies one file and queues it unless it is skipped or already imported.
    fn offer(&mut self, source_index: usize, found: FoundFile<'_>) -> Flow {
        let FoundFile {
            classified_path,
            named_explicitly,
            relative_path,
            display_path,
            size,
            version,
            location,
        } = found;
        let hint = match classify_file(classified_path, size, named_explicitly) {
            FileKind::CloudTrail(hint) => hint,
            FileKind::Skip(reason) => {
                match reason {
                    SkipReason::Digest => self.report.skipped_digest += 1,
                    SkipReason::NotCloudTrail => self.report.skipped_not_cloudtrail += 1,
                }
                self.progress.files_skipped.fetch_add(1, Ordering::Relaxed);
                return Flow::Continue;
            }
        };
        let completed_key = CompletedFile {
            path: relative_path,
            size,
            version,
        };
        if self
            .completed
            .get(source_index)
            .is_some_and(|completed| completed.contains(&completed_key))
        {
            self.report.already_imported += 1;
            self.progress
                .files_already_imported
                .fetch_add(1, Ordering::Relaxed);
            return Flow::Continue;
        }
        let task = FileTask {
            id: self.next_id,
            location,
            display_path,
            relative_path: completed_key.path,
            size,
            version: completed_key.version,
            context: context_for(&hint, self.default_context),
            source_index,
        };
        self.next_id += 1;
        self.progress.files_found.fetch_add(1, Ordering::Relaxed);
        self.progress.bytes_found.fetch_add(size, Ordering::Relaxed);
        match self.tasks.send(task) {
            Ok(()) => Flow::Continue,
            // Every worker is gone: the import is stopping.
            Err(_) => Flow::Stop,
        }
    }

    fn listing_error(&mut self, path: String, error: &std::io::Error) {
        self.progress.error_files.fetch_add(1, Ordering::Relaxed);
        self.report.errors.push(listing_error(path, error));
    }
}

/// The path's account and region where it names them, else the import's defaults.
fn context_for(hint: &PathHint, default_context: &IngestContext) -> IngestContext {
    IngestContext {
        account_id: hint
            .account_id
            .clone()
            .unwrap_or_else(|| default_context.account_id.clone()),
        region: hint
            .region
            .clone()
            .unwrap_or_else(|| default_context.region.clone()),
    }
}

fn listing_error(path: String, error: &std::io::Error) -> FileError {
    FileError {
        path,
        message: format!("cannot list: {error}"),
        records_failed: 0,
    }
}

/// A local file [`list_local_files`] found to hold events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// As the user wrote its source, joined with the path below it: printed and opened.
    pub path: PathBuf,
    pub size_bytes: u64,
}

/// What [`list_local_files`] found.
#[derive(Debug, Default)]
pub struct LocalListing {
    /// Event files in path order, each once: a file named twice (directly and inside a
    /// named folder) is listed once.
    pub files: Vec<ListedFile>,
    /// Files passed over by the rules of [`crate::classify`], each once; a file also
    /// named explicitly is listed in `files` instead.
    pub skipped: Vec<PathBuf>,
    /// Folders and entries that could not be listed, with the reason.
    pub errors: Vec<FileError>,
}

/// Every event file in local files and folders, by the walk and the rules an import uses,
/// for a caller that wants the whole list before it starts. A path that does not exist is
/// an error for the whole listing, since it is most likely a typo.
pub fn list_local_files(paths: &[PathBuf]) -> Result<LocalListing, ImportError> {
    let mut listing = LocalListing::default();
    for given in paths {
        let canonical = canonical_source(given)?;
        walk_local(given, &canonical, &mut |visit| {
            match visit {
                Visit::File(file) => {
                    let kind = classify_file(
                        &file.path.to_string_lossy(),
                        file.metadata.len(),
                        file.named_explicitly,
                    );
                    let path = PathBuf::from(file.display_path);
                    match kind {
                        FileKind::CloudTrail(_) => listing.files.push(ListedFile {
                            path,
                            size_bytes: file.metadata.len(),
                        }),
                        FileKind::Skip(_) => listing.skipped.push(path),
                    }
                }
                Visit::Unlistable {
                    display_path,
                    error,
                } => listing.errors.push(listing_error(display_path, &error)),
            }
            Flow::Continue
        });
    }
    // Sorted, so runs are repeatable and a file named twice is listed once.
    listing
        .files
        .sort_by(|left, right| left.path.cmp(&right.path));
    listing
        .files
        .dedup_by(|left, right| left.path == right.path);
    listing.skipped.sort();
    listing.skipped.dedup();
    // A file both named and passed over by a walk (a `.txt` named explicitly) is listed.
    let files = &listing.files;
    listing.skipped.retain(|skipped| {
        files
            .binary_search_by(|file| file.path.cmp(skipped))
            .is_err()
    });
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_listings_pick_event_files_and_skip_the_rest() -> anyhow::Result<()> {
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
        let found = list_local_files(&[root.path().to_owned(), explicit.clone()])?;
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
        // Named explicitly, notes.txt is listed, not skipped. Hidden directories are not
        // entered at all.
        assert_eq!(found.skipped.len(), 3, "{:?}", found.skipped);
        assert!(found.errors.is_empty(), "{:?}", found.errors);
        assert!(list_local_files(&[root.path().join("missing")]).is_err());
        Ok(())
    }
}

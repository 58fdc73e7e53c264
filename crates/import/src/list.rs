//! The lister: walks every source, classifies each file by its path, leaves out what the
//! checkpoint says is done, and queues the rest for the workers.

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
use crate::classify::{FileKind, PathHint, SkipReason, classify};
use crate::pipeline::ImportProgress;
use crate::source::{FileLocation, FileTask, relative_path, s3_url};
use crate::summary::FileError;

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

/// Whether to keep listing.
enum Flow {
    Continue,
    Stop,
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
        let metadata = match std::fs::metadata(canonical) {
            Ok(metadata) => metadata,
            Err(error) => {
                self.listing_error(given.display().to_string(), &error);
                return Flow::Continue;
            }
        };
        if metadata.is_file() {
            return self.offer_local_file(
                source_index,
                given,
                canonical,
                canonical,
                &metadata,
                true,
            );
        }
        let mut visited_directories = HashSet::new();
        self.walk_directory(
            source_index,
            given,
            canonical,
            canonical,
            &mut visited_directories,
        )
    }

    /// Depth first, entries in name order, so runs and their progress are repeatable.
    fn walk_directory(
        &mut self,
        source_index: usize,
        given_root: &Path,
        root: &Path,
        directory: &Path,
        visited_directories: &mut HashSet<(u64, u64)>,
    ) -> Flow {
        use std::os::unix::fs::MetadataExt as _;
        let display = |path: &Path| given_root.join(relative_path(root, path));
        // A symlink back up the tree would otherwise be walked forever.
        match std::fs::metadata(directory) {
            Ok(metadata) => {
                if !visited_directories.insert((metadata.dev(), metadata.ino())) {
                    return Flow::Continue;
                }
            }
            Err(error) => {
                self.listing_error(display(directory).display().to_string(), &error);
                return Flow::Continue;
            }
        }
        let entries = match std::fs::read_dir(directory) {
            Ok(entries) => entries,
            Err(error) => {
                self.listing_error(display(directory).display().to_string(), &error);
                return Flow::Continue;
            }
        };
        let mut paths = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => paths.push(entry.path()),
                Err(error) => {
                    self.listing_error(display(directory).display().to_string(), &error);
                }
            }
        }
        paths.sort();
        for path in paths {
            if self.stop.load(Ordering::Relaxed) {
                return Flow::Stop;
            }
            // Follows symlinks: a linked file or folder is imported like a real one.
            let metadata = match std::fs::metadata(&path) {
                Ok(metadata) => metadata,
                Err(error) => {
                    self.listing_error(display(&path).display().to_string(), &error);
                    continue;
                }
            };
            let flow = if metadata.is_dir() {
                self.walk_directory(source_index, given_root, root, &path, visited_directories)
            } else if metadata.is_file() {
                self.offer_local_file(source_index, given_root, root, &path, &metadata, false)
            } else {
                // Sockets, FIFOs and devices are not files anyone stores logs in.
                Flow::Continue
            };
            if matches!(flow, Flow::Stop) {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn offer_local_file(
        &mut self,
        source_index: usize,
        given_root: &Path,
        root: &Path,
        path: &Path,
        metadata: &std::fs::Metadata,
        named_explicitly: bool,
    ) -> Flow {
        let relative = relative_path(root, path);
        let display_path = if named_explicitly {
            given_root.display().to_string()
        } else {
            given_root.join(&relative).display().to_string()
        };
        let version = metadata
            .modified()
            .ok()
            .and_then(|modified| modified.duration_since(UNIX_EPOCH).ok())
            .map(|since_epoch| since_epoch.as_nanos().to_string())
            .unwrap_or_default();
        let classified_path = path.to_string_lossy();
        self.offer(
            source_index,
            FoundFile {
                classified_path: &classified_path,
                named_explicitly,
                relative_path: relative,
                display_path,
                size: metadata.len(),
                version,
                location: FileLocation::Local(path.to_path_buf()),
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
        let hint = match classify(classified_path, named_explicitly) {
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
        self.report.errors.push(FileError {
            path,
            message: format!("cannot list: {error}"),
            records_failed: 0,
        });
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

//! The import pipeline: lister, workers, appender (see the crate docs for the picture).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentrail_event::{EventRecord, IngestContext, RecordError, RecordErrorKind, parse_batch};

use crate::checkpoint::{Checkpoint, CompletedFile};
use crate::classify::SkipReason;
use crate::error::ImportError;
use crate::list::{Lister, ResolvedSource};
use crate::progress::ImportProgress;
use crate::read::{Readers, decompress};
use crate::s3::open_bucket;
use crate::sink::{EventSink, SinkError, WriteOutcome};
use crate::source::{FileTask, Source, canonical_source};
use crate::summary::{FileError, ImportSummary};
use opentrail_store::{DEFAULT_S3_REGION, S3Connection};

/// How an import runs. [`ImportOptions::default`] suits a local import into a store.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Threads that read, decompress and parse files.
    pub workers: usize,
    /// A batch is written once it holds this many events…
    pub batch_events: usize,
    /// …or this many bytes of record JSON, whichever comes first.
    pub batch_bytes: usize,
    /// A partial batch is written after this long without reaching either bound, so
    /// progress, durability and the checkpoint advance even when files trickle in.
    pub flush_interval: Duration,
    /// Fills `recipientAccountId` and `awsRegion` of records that lack them, when the
    /// file's path names neither (see [`crate::classify`]).
    pub default_context: IngestContext,
    /// Where per-source checkpoints live; `None` keeps none (every run reads every file).
    pub checkpoint_dir: Option<PathBuf>,
    /// Names the destination in checkpoint identities, so that importing one folder into
    /// two destinations keeps two checkpoints.
    pub destination: String,
    /// Read every file even if a checkpoint lists it (completions are still recorded).
    pub ignore_checkpoint: bool,
    pub s3: S3Connection,
}

/// Events per append: large enough that the store's per-batch costs (one fsync, one
/// atomic batch) vanish, small enough that a batch is a few tens of MB at most.
pub const DEFAULT_BATCH_EVENTS: usize = 8_192;
pub const DEFAULT_BATCH_BYTES: usize = 32 * 1024 * 1024;
const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Files listed ahead of the workers. Tasks are small (a path and a few numbers).
const TASK_QUEUE_FILES: usize = 4_096;
/// Parsed chunks waiting for the appender, per worker. Each is at most one batch.
const RESULT_QUEUE_CHUNKS_PER_WORKER: usize = 2;
/// How often the appender looks at the cancel flag and the flush interval while idle.
const APPENDER_TICK: Duration = Duration::from_millis(50);

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            workers: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
            batch_events: DEFAULT_BATCH_EVENTS,
            batch_bytes: DEFAULT_BATCH_BYTES,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            default_context: IngestContext {
                account_id: "123456789012".to_owned(),
                region: DEFAULT_S3_REGION.to_owned(),
            },
            checkpoint_dir: None,
            destination: String::new(),
            ignore_checkpoint: false,
            s3: S3Connection::default(),
        }
    }
}

/// Imports every source into `sink`.
///
/// Runs on the calling thread (the appender) plus a lister and `options.workers` worker
/// threads, all joined before it returns. Setting `cancel` stops it early: what was parsed
/// is still written, the checkpoint is brought up to date, and the summary says
/// `interrupted`. Must not be called from inside an async runtime (S3 access blocks on
/// its own runtime).
pub fn import(
    sources: &[Source],
    sink: &mut dyn EventSink,
    options: &ImportOptions,
    progress: &ImportProgress,
    cancel: &AtomicBool,
) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    let runtime = if sources.iter().any(Source::is_s3) {
        Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("opentrail-import-s3")
                .enable_all()
                .build()
                .map_err(ImportError::Runtime)?,
        )
    } else {
        None
    };
    let (resolved, buckets) = resolve_sources(sources, &options.s3)?;
    let mut checkpoints = Vec::with_capacity(resolved.len());
    let mut completed = Vec::with_capacity(resolved.len());
    for source in &resolved {
        match &options.checkpoint_dir {
            Some(dir) => {
                let identity = format!(
                    "{}\n{}",
                    options.destination,
                    source_identity(source, &options.s3)
                );
                let mut checkpoint = Checkpoint::open(dir, &identity)?;
                let done = checkpoint.take_completed();
                completed.push(if options.ignore_checkpoint {
                    HashSet::new()
                } else {
                    done
                });
                checkpoints.push(Some(checkpoint));
            }
            None => {
                completed.push(HashSet::new());
                checkpoints.push(None);
            }
        }
    }

    let readers = Readers {
        buckets,
        runtime: runtime.as_ref().map(|runtime| runtime.handle().clone()),
    };
    let workers = options.workers.max(1);
    let (task_sender, task_receiver) = mpsc::sync_channel::<FileTask>(TASK_QUEUE_FILES);
    // Shared by the workers only: when the last worker ends, the queue closes, and a
    // lister blocked on a full queue is released instead of waiting forever.
    let task_receiver = Arc::new(Mutex::new(task_receiver));
    let (result_sender, result_receiver) =
        mpsc::sync_channel::<Parsed>(workers * RESULT_QUEUE_CHUNKS_PER_WORKER);
    // Set when the appender stops early, so the lister and workers stop too.
    let stop = AtomicBool::new(false);
    let chunk_events = options.batch_events.max(1);

    let outcome = std::thread::scope(|scope| -> Result<_, ImportError> {
        let lister = Lister {
            sources: &resolved,
            completed,
            default_context: &options.default_context,
            runtime: readers.runtime.as_ref(),
            tasks: task_sender,
            progress,
            stop: &stop,
            next_id: 0,
            report: Default::default(),
        };
        let lister = std::thread::Builder::new()
            .name("opentrail-import-list".to_owned())
            .spawn_scoped(scope, move || lister.run())
            .map_err(ImportError::Thread)?;
        for number in 0..workers {
            let results = result_sender.clone();
            let tasks = task_receiver.clone();
            let (readers, stop) = (&readers, &stop);
            let spawned = std::thread::Builder::new()
                .name(format!("opentrail-import-{number}"))
                .spawn_scoped(scope, move || {
                    work(&tasks, &results, readers, stop, cancel, chunk_events)
                });
            if let Err(error) = spawned {
                stop.store(true, Ordering::Relaxed);
                return Err(ImportError::Thread(error));
            }
        }
        drop(result_sender);
        drop(task_receiver);

        let mut appender = Appender {
            sink,
            options,
            progress,
            checkpoints: &mut checkpoints,
            summary: ImportSummary::default(),
            open_files: HashMap::new(),
            pending: Vec::new(),
            pending_origins: Vec::new(),
            pending_bytes: 0,
            last_flush: Instant::now(),
        };
        let appended = appender.run(result_receiver, cancel);
        let summary = appender.summary;
        // Whatever ended the appender, the other threads must end too before the scope
        // can join them; the result queue is already closed, this stops new reads.
        stop.store(true, Ordering::Relaxed);
        let report = lister.join().unwrap_or_default();
        Ok((appended, summary, report))
    });
    let (appended, mut summary, report) = outcome?;
    appended?;
    summary.files_skipped_digest += report.skipped_digest;
    summary.files_skipped_not_cloudtrail += report.skipped_not_cloudtrail;
    summary.files_skipped = summary.files_skipped_digest + summary.files_skipped_not_cloudtrail;
    summary.files_already_imported = report.already_imported;
    for error in report.errors {
        summary.add_error(error);
    }
    summary.interrupted |= cancel.load(Ordering::Relaxed);
    summary.seconds = started.elapsed().as_secs_f64();
    drop(runtime);
    Ok(summary)
}

/// One S3 client per S3 source, indexed by `FileLocation::S3::bucket_index`.
type BucketClients = Vec<Arc<dyn object_store::ObjectStore>>;

fn resolve_sources(
    sources: &[Source],
    s3_config: &S3Connection,
) -> Result<(Vec<ResolvedSource>, BucketClients), ImportError> {
    let mut resolved = Vec::with_capacity(sources.len());
    let mut buckets = Vec::new();
    for source in sources {
        match source {
            Source::Local(given) => {
                resolved.push(ResolvedSource::Local {
                    given: given.clone(),
                    canonical: canonical_source(given)?,
                });
            }
            Source::S3 { bucket, prefix } => {
                let client = open_bucket(s3_config, bucket)?;
                buckets.push(client.clone());
                resolved.push(ResolvedSource::S3 {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                    bucket_index: buckets.len() - 1,
                    client,
                });
            }
        }
    }
    Ok((resolved, buckets))
}

/// What a checkpoint of this source is for: the absolute local path, or the bucket and
/// prefix on their endpoint.
fn source_identity(source: &ResolvedSource, s3_config: &S3Connection) -> String {
    match source {
        ResolvedSource::Local { canonical, .. } => canonical.display().to_string(),
        ResolvedSource::S3 { bucket, prefix, .. } => format!(
            "{} s3://{bucket}/{prefix}",
            s3_config.endpoint.as_deref().unwrap_or("aws")
        ),
    }
}

/// Messages from workers to the appender. A file's chunks come before its `End`, from the
/// same worker, so the appender has seen all of a file's records when its `End` arrives.
enum Parsed {
    Chunk {
        file_id: u64,
        records: Vec<(usize, EventRecord)>,
    },
    End(FileEnd),
}

struct FileEnd {
    task: FileTask,
    json_bytes: u64,
    result: FileResult,
}

enum FileResult {
    /// Parsed; these records failed (the good ones went in chunks).
    Parsed {
        failures: Vec<RecordError>,
    },
    Skipped(SkipReason),
    Failed(String),
}

fn work(
    tasks: &Mutex<Receiver<FileTask>>,
    results: &SyncSender<Parsed>,
    readers: &Readers,
    stop: &AtomicBool,
    cancel: &AtomicBool,
    chunk_events: usize,
) {
    loop {
        if stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
            return;
        }
        let task = {
            let Ok(receiver) = tasks.lock() else {
                return;
            };
            match receiver.recv() {
                Ok(task) => task,
                // The lister is done and the queue is empty.
                Err(_) => return,
            }
        };
        if process_file(task, results, readers, chunk_events).is_err() {
            // The appender has stopped.
            return;
        }
    }
}

/// The appender stopped taking results: the import is ending.
struct AppenderGone;

/// Reads, decompresses and parses one file, and sends its records and its end.
fn process_file(
    task: FileTask,
    results: &SyncSender<Parsed>,
    readers: &Readers,
    chunk_events: usize,
) -> Result<(), AppenderGone> {
    let send = |message: Parsed| results.send(message).map_err(|_| AppenderGone);
    let end = |task, json_bytes, result| {
        Parsed::End(FileEnd {
            task,
            json_bytes,
            result,
        })
    };
    let json = match readers.read(&task.location).and_then(decompress) {
        Ok(json) => json,
        Err(message) => return send(end(task, 0, FileResult::Failed(message))),
    };
    let json_bytes = json.len() as u64;
    let batch = match parse_batch(&json, &task.context) {
        Ok(batch) => batch,
        Err(error) => {
            let result = FileResult::Failed(error.to_string());
            return send(end(task, json_bytes, result));
        }
    };
    drop(json);
    if batch.records.is_empty()
        && !batch.failures.is_empty()
        && looks_like_other_json(&batch.failures)
    {
        let result = FileResult::Skipped(SkipReason::NotCloudTrail);
        return send(end(task, json_bytes, result));
    }
    let mut records = batch.records;
    while !records.is_empty() {
        let rest = records.split_off(records.len().min(chunk_events));
        send(Parsed::Chunk {
            file_id: task.id,
            records,
        })?;
        records = rest;
    }
    let result = FileResult::Parsed {
        failures: batch.failures,
    };
    send(end(task, json_bytes, result))
}

/// Valid JSON none of whose records is even shaped like CloudTrail (objects lacking
/// `eventName`, `eventSource` or `eventTime`, or not objects at all): some other JSON file,
/// such as an AWS Config snapshot or a `package.json`. Broken JSON, bad field types and
/// bad timestamps are damage to a CloudTrail file instead, and are reported as errors.
fn looks_like_other_json(failures: &[RecordError]) -> bool {
    failures.iter().all(|failure| {
        matches!(
            failure.kind,
            RecordErrorKind::MissingField | RecordErrorKind::NotAnObject
        )
    })
}

/// A file whose records are (partly) in flight to the sink.
#[derive(Default)]
struct OpenFile {
    /// Records received but not yet written.
    unwritten: usize,
    /// Set when the worker has sent the file's last chunk.
    end: Option<FileEnd>,
    /// Records the sink refused: (index in file, message).
    rejected: Vec<(usize, String)>,
}

struct Appender<'a> {
    sink: &'a mut dyn EventSink,
    options: &'a ImportOptions,
    progress: &'a ImportProgress,
    checkpoints: &'a mut Vec<Option<Checkpoint>>,
    summary: ImportSummary,
    open_files: HashMap<u64, OpenFile>,
    pending: Vec<EventRecord>,
    /// Parallel to `pending`: (file id, record index in its file).
    pending_origins: Vec<(u64, usize)>,
    pending_bytes: usize,
    last_flush: Instant,
}

impl Appender<'_> {
    fn run(&mut self, results: Receiver<Parsed>, cancel: &AtomicBool) -> Result<(), ImportError> {
        loop {
            if cancel.load(Ordering::Relaxed) {
                self.summary.interrupted = true;
                break;
            }
            match results.recv_timeout(APPENDER_TICK) {
                Ok(Parsed::Chunk { file_id, records }) => {
                    self.open_files.entry(file_id).or_default().unwritten += records.len();
                    for (index, record) in records {
                        self.pending_bytes += record.json.len();
                        self.pending.push(record);
                        self.pending_origins.push((file_id, index));
                    }
                    if self.pending.len() >= self.options.batch_events
                        || self.pending_bytes >= self.options.batch_bytes
                    {
                        self.flush()?;
                    }
                }
                Ok(Parsed::End(end)) => self.end_file(end)?,
                Err(RecvTimeoutError::Timeout) => {
                    if !self.pending.is_empty()
                        && self.last_flush.elapsed() >= self.options.flush_interval
                    {
                        self.flush()?;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // Also when interrupted: what was parsed is made durable, and the checkpoint then
        // names every file that is completely in.
        self.flush()
    }

    fn end_file(&mut self, end: FileEnd) -> Result<(), ImportError> {
        let progress = self.progress;
        self.summary.bytes_read += end.task.size;
        self.summary.json_bytes += end.json_bytes;
        match &end.result {
            FileResult::Skipped(reason) => {
                self.open_files.remove(&end.task.id);
                self.count_done(&end);
                progress.files_skipped.fetch_add(1, Ordering::Relaxed);
                match reason {
                    SkipReason::Digest => self.summary.files_skipped_digest += 1,
                    SkipReason::NotCloudTrail => self.summary.files_skipped_not_cloudtrail += 1,
                }
                Ok(())
            }
            FileResult::Failed(message) => {
                self.open_files.remove(&end.task.id);
                self.count_done(&end);
                self.summary.files += 1;
                progress.error_files.fetch_add(1, Ordering::Relaxed);
                self.summary.add_error(FileError {
                    path: end.task.display_path.clone(),
                    message: message.clone(),
                    records_failed: 0,
                });
                Ok(())
            }
            FileResult::Parsed { .. } => {
                self.summary.files += 1;
                let id = end.task.id;
                let file = self.open_files.entry(id).or_default();
                file.end = Some(end);
                if file.unwritten == 0 {
                    let completed = self.finish_file(id);
                    self.record_completed(completed)?;
                }
                Ok(())
            }
        }
    }

    /// Writes the pending batch, then closes the files it completed.
    fn flush(&mut self) -> Result<(), ImportError> {
        self.last_flush = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.pending);
        let origins = std::mem::take(&mut self.pending_origins);
        self.pending_bytes = 0;
        let outcomes = self.sink.write(records)?;
        if outcomes.len() != origins.len() {
            return Err(ImportError::Sink(SinkError::new(format!(
                "the destination answered {} outcomes for {} events",
                outcomes.len(),
                origins.len()
            ))));
        }
        let (mut stored, mut duplicates) = (0u64, 0u64);
        let mut touched: Vec<u64> = Vec::new();
        for ((file_id, index), outcome) in origins.into_iter().zip(outcomes) {
            let file = self.open_files.entry(file_id).or_default();
            file.unwritten = file.unwritten.saturating_sub(1);
            match outcome {
                WriteOutcome::Stored => stored += 1,
                WriteOutcome::Duplicate => duplicates += 1,
                WriteOutcome::Rejected { message } => file.rejected.push((index, message)),
            }
            // Records of one file sit together in a batch, so this stays short.
            if touched.last() != Some(&file_id) && !touched.contains(&file_id) {
                touched.push(file_id);
            }
        }
        self.summary.events_imported += stored;
        self.summary.duplicates += duplicates;
        self.progress
            .events_imported
            .fetch_add(stored, Ordering::Relaxed);
        self.progress
            .duplicates
            .fetch_add(duplicates, Ordering::Relaxed);
        let mut completed = Vec::new();
        for file_id in touched {
            let done = self
                .open_files
                .get(&file_id)
                .is_some_and(|file| file.end.is_some() && file.unwritten == 0);
            if done {
                completed.extend(self.finish_file(file_id));
            }
        }
        self.record_completed(completed)
    }

    /// Progress counts a file once nothing more will happen to it, so the rate and the
    /// ETA follow durable writes rather than parsing, which runs ahead.
    fn count_done(&self, end: &FileEnd) {
        let progress = self.progress;
        progress.files_done.fetch_add(1, Ordering::Relaxed);
        progress
            .bytes_done
            .fetch_add(end.task.size, Ordering::Relaxed);
        progress
            .json_bytes_done
            .fetch_add(end.json_bytes, Ordering::Relaxed);
    }

    /// Closes a file whose every record is written: reports its errors, or returns what
    /// its checkpoint must record.
    fn finish_file(&mut self, file_id: u64) -> Option<(usize, CompletedFile)> {
        let file = self.open_files.remove(&file_id)?;
        let end = file.end?;
        self.count_done(&end);
        let FileResult::Parsed { failures } = end.result else {
            return None;
        };
        let mut problems: Vec<String> = failures.iter().map(ToString::to_string).collect();
        let mut rejected = file.rejected;
        rejected.sort_by_key(|(index, _)| *index);
        problems.extend(
            rejected
                .into_iter()
                .map(|(index, message)| format!("record {index}: {message}")),
        );
        if problems.is_empty() {
            return Some((
                end.task.source_index,
                CompletedFile {
                    path: end.task.relative_path,
                    size: end.task.size,
                    version: end.task.version,
                },
            ));
        }
        // Files with failed records are not checkpointed: a re-run reports them again
        // (their good records are already stored and come back as duplicates).
        let records_failed = problems.len() as u64;
        self.summary.events_failed += records_failed;
        self.progress.error_files.fetch_add(1, Ordering::Relaxed);
        let first = problems.first().cloned().unwrap_or_default();
        let message = if records_failed == 1 {
            first
        } else {
            format!("{records_failed} records failed; the first: {first}")
        };
        self.summary.add_error(FileError {
            path: end.task.display_path,
            message,
            records_failed,
        });
        None
    }

    fn record_completed(
        &mut self,
        completed: impl IntoIterator<Item = (usize, CompletedFile)>,
    ) -> Result<(), ImportError> {
        let mut per_source: HashMap<usize, Vec<CompletedFile>> = HashMap::new();
        for (source_index, file) in completed {
            per_source.entry(source_index).or_default().push(file);
        }
        for (source_index, files) in per_source {
            if let Some(Some(checkpoint)) = self.checkpoints.get_mut(source_index) {
                checkpoint.record(&files)?;
            }
        }
        Ok(())
    }
}

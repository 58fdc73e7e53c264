//! `opentrail ingest FILE|DIR…`: sends event files to the server's `POST /v1/events`.
//!
//! Which files to send is `opentrail_import::list_local_files`: the walk and the rules of
//! `opentrail import`. One blocking thread reads files and cuts them into gzip bodies
//! (`ingest_files`); the async side keeps up to `--concurrency` requests in flight. The
//! channel between them holds as many bodies as there are requests in flight, so memory
//! stays bounded however large the files are. Overloaded answers (503 with `Retry-After`,
//! 429, other 5xx) and broken connections are retried with exponential backoff;
//! authentication failures stop the run at once, since every other request would fail the
//! same way.

use std::io::{Cursor, IsTerminal as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use opentrail_import::{ListedFile, LocalListing};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::client::{ApiClient, ConnectionArgs, EventsAnswer, RetryPolicy, SendFailure};
use crate::ingest_files::{
    self, BatchLimits, FilePlan, LocalFailure, SplitBody, SplitOutcome, Stopped, list_event_files,
};
use crate::one_line;
use crate::output::{OutputArgs, OutputFormat, render_table};

/// The summary keeps this many failed records; `failed_count` has the full count.
const FAILED_LIST_MAX: usize = 10_000;
/// Failed records the table summary prints; the JSON summary has them all.
const FAILED_TABLE_ROWS_MAX: usize = 20;
const PLAIN_PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
const MIB: u64 = 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Event files, and directories to search recursively for *.json, *.json.gz,
    /// *.json.cloudtrail, *.ndjson and *.jsonl files (hidden, empty and CloudTrail digest
    /// files and other services' AWSLogs folders are skipped, as by `opentrail import`).
    /// A file named here is sent whatever its name, unless it is a digest file.
    #[arg(value_name = "FILE|DIR", required = true)]
    paths: Vec<PathBuf>,
    /// Most records per request when a file is split (NDJSON files, and files larger
    /// than --batch-bytes).
    #[arg(long, value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_events: u32,
    /// Most uncompressed bytes per request. Smaller files are sent whole; larger ones are
    /// split. Keep its compressed size under the server's body limit (10 MiB by default).
    #[arg(long, value_name = "BYTES", default_value_t = 4 * MIB,
          value_parser = clap::value_parser!(u64).range(1024..=32 * MIB))]
    batch_bytes: u64,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=32))]
    concurrency: u32,
    /// Retries of a request the server could not take (503, 429, other 5xx), with
    /// exponential backoff that honours Retry-After.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    retries: u32,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// The summary, as `--output json` prints it.
#[derive(Debug, Default, Serialize)]
struct Summary {
    /// Files read and sent (or attempted).
    files: u64,
    events_accepted: u64,
    duplicates: u64,
    /// Records refused, by the server or before sending, with their zero-based position
    /// in their file; at most `FAILED_LIST_MAX` of them.
    failed: Vec<FailedRecord>,
    failed_count: u64,
    /// Files passed over by directory walks.
    files_skipped: u64,
    /// Files, or parts of files, that could not be sent at all.
    errors: Vec<FileError>,
}

#[derive(Debug, Clone, Serialize)]
struct FailedRecord {
    file: String,
    index: usize,
    error_code: String,
    message: String,
}

#[derive(Debug, Clone, Serialize)]
struct FileError {
    file: String,
    message: String,
}

/// What the reading thread hands to the sending side, in file order.
enum Work {
    Body(BodyWork),
    /// Every body of the file has been handed over.
    FileDone {
        file: usize,
        outcome: SplitOutcome,
    },
}

struct BodyWork {
    file: usize,
    gzip_body: Vec<u8>,
    /// `None` for a whole file: the server's indexes are already positions in the file.
    file_indexes: Option<Vec<usize>>,
    source_bytes: u64,
}

/// The result of sending one body (or, for a whole file the server found too large, all
/// the bodies it was split into).
#[derive(Debug, Default)]
struct Delivery {
    accepted: u64,
    duplicates: u64,
    failed: Vec<LocalFailure>,
    errors: Vec<String>,
    fatal: Option<anyhow::Error>,
}

impl Delivery {
    fn from_answer(answer: EventsAnswer, file_indexes: Option<&[usize]>) -> Delivery {
        let failed = answer
            .failed
            .into_iter()
            .map(|failure| LocalFailure {
                index: file_indexes
                    .and_then(|indexes| indexes.get(failure.index).copied())
                    .unwrap_or(failure.index),
                error_code: failure.error_code,
                message: failure.message,
            })
            .collect();
        Delivery {
            accepted: count(answer.accepted.len()),
            duplicates: count(answer.duplicates.len()),
            failed,
            ..Delivery::default()
        }
    }

    fn error(message: String) -> Delivery {
        Delivery {
            errors: vec![message],
            ..Delivery::default()
        }
    }

    fn merge(&mut self, other: Delivery) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.failed.extend(other.failed);
        self.errors.extend(other.errors);
        if self.fatal.is_none() {
            self.fatal = other.fatal;
        }
    }
}

fn count(length: usize) -> u64 {
    u64::try_from(length).unwrap_or(u64::MAX)
}

pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let client = Arc::new(ApiClient::from_connection_args(&args.connection)?);
    let listing = list_event_files(&args.paths)?;
    if listing.files.is_empty() {
        if let Some(error) = listing.errors.first() {
            bail!("{}: {}", error.path, error.message);
        }
        bail!(
            "no event files found (looked for *.json, *.json.gz, *.json.cloudtrail, *.ndjson \
             and *.jsonl; {} other files skipped)",
            listing.skipped.len()
        );
    }
    let limits = BatchLimits {
        events_max: usize::try_from(args.batch_events).unwrap_or(usize::MAX),
        bytes_max: usize::try_from(args.batch_bytes).unwrap_or(usize::MAX),
    };
    let concurrency = usize::try_from(args.concurrency).unwrap_or(1).max(1);
    let total_bytes = listing.files.iter().map(|file| file.size_bytes).sum();
    let mut progress = Progress::new(listing.files.len(), total_bytes, args.quiet);
    let mut state = RunState::new(&listing);

    let (work_sender, mut work_receiver) = mpsc::channel::<Work>(concurrency);
    let files = listing.files.clone();
    let producer = tokio::task::spawn_blocking(move || produce(&files, limits, &work_sender));
    let mut in_flight: JoinSet<(usize, u64, Delivery)> = JoinSet::new();
    let mut producer_finished = false;
    let mut fatal: Option<anyhow::Error> = None;
    loop {
        tokio::select! {
            work = work_receiver.recv(), if !producer_finished && in_flight.len() < concurrency => {
                match work {
                    Some(Work::Body(body)) => {
                        state.body_started(body.file);
                        let client = Arc::clone(&client);
                        let retries = args.retries;
                        in_flight.spawn(async move {
                            let (file, source_bytes) = (body.file, body.source_bytes);
                            (file, source_bytes, deliver(&client, body, limits, retries).await)
                        });
                    }
                    Some(Work::FileDone { file, outcome }) => state.file_read(file, outcome),
                    None => producer_finished = true,
                }
            }
            Some(joined) = in_flight.join_next() => {
                match joined {
                    Ok((file, source_bytes, mut delivery)) => {
                        if let Some(error) = delivery.fatal.take() {
                            fatal = Some(error);
                            break;
                        }
                        state.body_delivered(file, source_bytes, delivery);
                    }
                    Err(join_error) => {
                        fatal = Some(anyhow!("a sending task failed: {join_error}"));
                        break;
                    }
                }
            }
            else => break,
        }
        progress.update(&state);
    }
    // On a fatal error, stop: requests in flight are dropped and the reader stops at its
    // next body, because the channel is closed.
    in_flight.abort_all();
    drop(work_receiver);
    if producer.await.is_err() && fatal.is_none() {
        fatal = Some(anyhow!("the file reader failed"));
    }
    progress.finish();

    let summary = state.summary();
    if fatal.is_none() || summary.events_accepted + summary.duplicates > 0 {
        match args.output.output {
            // Straight from the struct, so keys keep their documented order.
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
            OutputFormat::Table => print_summary(&summary),
        }
    }
    if let Some(error) = fatal {
        return Err(error);
    }
    let files_with_errors = state.files_with_errors();
    if files_with_errors > 0 {
        bail!(
            "{files_with_errors} of {} files could not be ingested completely; see the summary",
            summary.files
        );
    }
    Ok(())
}

/// The reading thread: every file in order, as whole bodies or split ones.
fn produce(files: &[ListedFile], limits: BatchLimits, sender: &mpsc::Sender<Work>) {
    for (file, event_file) in files.iter().enumerate() {
        let outcome = match ingest_files::plan_file(event_file, limits) {
            Err(error) => SplitOutcome {
                error: Some(one_line(&error)),
                trailing_source_bytes: event_file.size_bytes,
                ..SplitOutcome::default()
            },
            Ok(FilePlan::Whole { gzip_body }) => {
                let body = BodyWork {
                    file,
                    gzip_body,
                    file_indexes: None,
                    source_bytes: event_file.size_bytes,
                };
                if sender.blocking_send(Work::Body(body)).is_err() {
                    return;
                }
                SplitOutcome::default()
            }
            Ok(FilePlan::Split) => {
                let outcome = ingest_files::split_file(&event_file.path, limits, &mut |split| {
                    let body = BodyWork {
                        file,
                        gzip_body: split.gzip_body,
                        file_indexes: Some(split.file_indexes),
                        source_bytes: split.source_bytes,
                    };
                    sender.blocking_send(Work::Body(body)).map_err(|_| Stopped)
                });
                if outcome.stopped {
                    return;
                }
                outcome
            }
        };
        if sender
            .blocking_send(Work::FileDone { file, outcome })
            .is_err()
        {
            return;
        }
    }
}

/// Sends one body. A whole file the server finds too large (413) is split here and its
/// parts sent one after another.
async fn deliver(
    client: &ApiClient,
    body: BodyWork,
    limits: BatchLimits,
    retries: u32,
) -> Delivery {
    match post_events(client, &body.gzip_body, retries).await {
        Ok(answer) => Delivery::from_answer(answer, body.file_indexes.as_deref()),
        Err(SendFailure::TooLarge(_)) if body.file_indexes.is_none() => {
            deliver_split(client, body.gzip_body, limits, retries).await
        }
        Err(SendFailure::TooLarge(message) | SendFailure::Rejected(message)) => {
            Delivery::error(describe_rejection(&message, body.file_indexes.as_deref()))
        }
        Err(SendFailure::Fatal(error)) => Delivery {
            fatal: Some(error),
            ..Delivery::default()
        },
    }
}

/// Which records a refused request carried, for the error line.
fn describe_rejection(message: &str, file_indexes: Option<&[usize]>) -> String {
    match file_indexes {
        Some([first, .., last]) => format!("records {first} to {last} not sent: {message}"),
        Some([only]) => format!("record {only} not sent: {message}"),
        _ => message.to_owned(),
    }
}

async fn deliver_split(
    client: &ApiClient,
    gzip_body: Vec<u8>,
    limits: BatchLimits,
    retries: u32,
) -> Delivery {
    let (sender, mut receiver) = mpsc::channel::<SplitBody>(1);
    let splitter = tokio::task::spawn_blocking(move || {
        ingest_files::split_reader(Cursor::new(gzip_body), false, limits, &mut |split| {
            sender.blocking_send(split).map_err(|_| Stopped)
        })
    });
    let mut total = Delivery::default();
    while let Some(split) = receiver.recv().await {
        let part = match post_events(client, &split.gzip_body, retries).await {
            Ok(answer) => Delivery::from_answer(answer, Some(&split.file_indexes)),
            Err(SendFailure::TooLarge(message) | SendFailure::Rejected(message)) => {
                Delivery::error(describe_rejection(&message, Some(&split.file_indexes)))
            }
            Err(SendFailure::Fatal(error)) => Delivery {
                fatal: Some(error),
                ..Delivery::default()
            },
        };
        total.merge(part);
        if total.fatal.is_some() {
            break;
        }
    }
    drop(receiver);
    match splitter.await {
        Ok(outcome) => {
            total.failed.extend(outcome.local_failures);
            total.errors.extend(outcome.error);
        }
        Err(join_error) => total
            .errors
            .push(format!("the file reader failed: {join_error}")),
    }
    total
}

/// One gzip `POST /v1/events`, retried as [`RetryPolicy::new`] says.
async fn post_events(
    client: &ApiClient,
    gzip_body: &[u8],
    retries: u32,
) -> Result<EventsAnswer, SendFailure> {
    client
        .post_events(gzip_body, Some("gzip"), RetryPolicy::new(retries))
        .await
}

/// Per-file progress and the totals the summary is built from.
struct RunState {
    paths: Vec<String>,
    files: Vec<FileState>,
    files_skipped: u64,
    files_done: usize,
    bytes_done: u64,
    events_accepted: u64,
    duplicates: u64,
    failed: Vec<FailedRecord>,
    failed_count: u64,
    errors: Vec<FileError>,
    directory_errors: usize,
}

#[derive(Default)]
struct FileState {
    bodies_started: usize,
    bodies_done: usize,
    read_done: bool,
    has_error: bool,
}

impl RunState {
    fn new(listing: &LocalListing) -> Self {
        let errors = listing
            .errors
            .iter()
            .map(|error| FileError {
                file: error.path.clone(),
                message: error.message.clone(),
            })
            .collect();
        RunState {
            paths: listing
                .files
                .iter()
                .map(|file| file.path.display().to_string())
                .collect(),
            files: listing.files.iter().map(|_| FileState::default()).collect(),
            files_skipped: count(listing.skipped.len()),
            files_done: 0,
            bytes_done: 0,
            events_accepted: 0,
            duplicates: 0,
            failed: Vec::new(),
            failed_count: 0,
            errors,
            directory_errors: listing.errors.len(),
        }
    }

    fn body_started(&mut self, file: usize) {
        if let Some(state) = self.files.get_mut(file) {
            state.bodies_started += 1;
        }
    }

    fn file_read(&mut self, file: usize, outcome: SplitOutcome) {
        self.bytes_done += outcome.trailing_source_bytes;
        self.add_failures(file, outcome.local_failures);
        if let Some(message) = outcome.error {
            self.add_error(file, message);
        }
        if let Some(state) = self.files.get_mut(file) {
            state.read_done = true;
        }
        self.check_file_done(file);
    }

    /// Progress bytes are counted when a body is answered, not when it is read.
    fn body_delivered(&mut self, file: usize, source_bytes: u64, delivery: Delivery) {
        self.bytes_done += source_bytes;
        self.events_accepted += delivery.accepted;
        self.duplicates += delivery.duplicates;
        self.add_failures(file, delivery.failed);
        for message in delivery.errors {
            self.add_error(file, message);
        }
        if let Some(state) = self.files.get_mut(file) {
            state.bodies_done += 1;
        }
        self.check_file_done(file);
    }

    fn check_file_done(&mut self, file: usize) {
        if let Some(state) = self.files.get(file)
            && state.read_done
            && state.bodies_done == state.bodies_started
        {
            self.files_done += 1;
        }
    }

    fn add_failures(&mut self, file: usize, failures: Vec<LocalFailure>) {
        let path = self.paths.get(file).cloned().unwrap_or_default();
        for failure in failures {
            self.failed_count += 1;
            if self.failed.len() < FAILED_LIST_MAX {
                self.failed.push(FailedRecord {
                    file: path.clone(),
                    index: failure.index,
                    error_code: failure.error_code,
                    message: failure.message,
                });
            }
        }
    }

    fn add_error(&mut self, file: usize, message: String) {
        if let Some(state) = self.files.get_mut(file) {
            state.has_error = true;
        }
        self.errors.push(FileError {
            file: self.paths.get(file).cloned().unwrap_or_default(),
            message,
        });
    }

    fn events_seen(&self) -> u64 {
        self.events_accepted + self.duplicates + self.failed_count
    }

    /// Files with an error, counting each directory that could not be listed as one.
    fn files_with_errors(&self) -> usize {
        self.files.iter().filter(|state| state.has_error).count() + self.directory_errors
    }

    fn summary(&self) -> Summary {
        let mut failed = self.failed.clone();
        // Bodies finish in any order; the summary is in file order.
        failed.sort_by(|left, right| (&left.file, left.index).cmp(&(&right.file, right.index)));
        Summary {
            files: count(self.files.len()),
            events_accepted: self.events_accepted,
            duplicates: self.duplicates,
            failed,
            failed_count: self.failed_count,
            files_skipped: self.files_skipped,
            errors: self.errors.clone(),
        }
    }
}

fn print_summary(summary: &Summary) {
    let counts = [
        ("Files sent", summary.files),
        ("Files skipped", summary.files_skipped),
        ("Events accepted", summary.events_accepted),
        ("Duplicates", summary.duplicates),
        ("Failed records", summary.failed_count),
    ];
    for (label, value) in counts {
        println!("{:<17} {value}", format!("{label}:"));
    }
    if !summary.failed.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = summary
            .failed
            .iter()
            .take(FAILED_TABLE_ROWS_MAX)
            .map(|failure| {
                vec![
                    failure.file.clone(),
                    failure.index.to_string(),
                    failure.error_code.clone(),
                    first_line(&failure.message),
                ]
            })
            .collect();
        print!(
            "{}",
            render_table(&["FILE", "RECORD", "ERROR CODE", "MESSAGE"], &rows)
        );
        let unshown = summary
            .failed_count
            .saturating_sub(count(FAILED_TABLE_ROWS_MAX));
        if unshown > 0 {
            println!("… and {unshown} more failed records (--output json lists them)");
        }
    }
    if !summary.errors.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = summary
            .errors
            .iter()
            .map(|error| vec![error.file.clone(), first_line(&error.message)])
            .collect();
        print!("{}", render_table(&["FILE", "ERROR"], &rows));
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// A progress bar on a terminal; otherwise a plain line every few seconds, which suits
/// logs and CI output.
struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total_files: usize,
    started: Instant,
    last_plain_line: Instant,
}

impl Progress {
    fn new(total_files: usize, total_bytes: u64, quiet: bool) -> Progress {
        let now = Instant::now();
        let mut progress = Progress {
            bar: None,
            plain: false,
            total_files,
            started: now,
            last_plain_line: now,
        };
        if quiet {
            return progress;
        }
        if !std::io::stderr().is_terminal() {
            progress.plain = true;
            return progress;
        }
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        // The template is a constant; should it ever fail to parse, the default style is
        // still a working bar.
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {binary_bytes}/{binary_total_bytes} \
             {binary_bytes_per_sec} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        progress.bar = Some(bar);
        progress
    }

    fn update(&mut self, state: &RunState) {
        if let Some(bar) = &self.bar {
            bar.set_position(state.bytes_done);
            bar.set_message(format!(
                "files {}/{} · events {} · failed {}",
                state.files_done,
                self.total_files,
                state.events_seen(),
                state.failed_count
            ));
        } else if self.plain && self.last_plain_line.elapsed() >= PLAIN_PROGRESS_INTERVAL {
            self.last_plain_line = Instant::now();
            let seconds = self.started.elapsed().as_secs_f64().max(0.001);
            let megabytes_per_second = state.bytes_done as f64 / 1e6 / seconds;
            eprintln!(
                "opentrail: ingest: {}/{} files, {} events, {megabytes_per_second:.1} MB/s",
                state.files_done,
                self.total_files,
                state.events_seen()
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_indexes_map_to_file_positions() {
        let answer: EventsAnswer = serde_json::from_str(
            r#"{"accepted":[{"index":0,"eventId":"a"}],"duplicates":[],
                "failed":[{"index":1,"errorCode":"MissingField","message":"eventTime"}]}"#,
        )
        .expect("answer");
        let delivery = Delivery::from_answer(answer, Some(&[4, 9]));
        assert_eq!(delivery.accepted, 1);
        assert_eq!(delivery.failed[0].index, 9);
        assert_eq!(delivery.failed[0].error_code, "MissingField");
        assert_eq!(
            describe_rejection("HTTP 400", Some(&[4, 5, 9])),
            "records 4 to 9 not sent: HTTP 400"
        );
    }

    #[test]
    fn summary_lists_failures_in_file_order_and_counts_errored_files() {
        let listing = LocalListing {
            files: vec![
                ListedFile {
                    path: PathBuf::from("a.json"),
                    size_bytes: 1,
                },
                ListedFile {
                    path: PathBuf::from("b.json"),
                    size_bytes: 1,
                },
            ],
            skipped: vec![PathBuf::from("c.txt")],
            errors: vec![opentrail_import::FileError {
                path: "locked".to_owned(),
                message: "cannot list".to_owned(),
                records_failed: 0,
            }],
        };
        let mut state = RunState::new(&listing);
        state.body_started(1);
        state.body_delivered(
            1,
            1,
            Delivery {
                accepted: 2,
                failed: vec![LocalFailure {
                    index: 3,
                    error_code: "InvalidJson".to_owned(),
                    message: "bad".to_owned(),
                }],
                ..Delivery::default()
            },
        );
        state.file_read(
            0,
            SplitOutcome {
                local_failures: vec![LocalFailure {
                    index: 0,
                    error_code: "TooLarge".to_owned(),
                    message: "big".to_owned(),
                }],
                error: Some("cannot open the file".to_owned()),
                ..SplitOutcome::default()
            },
        );
        state.file_read(1, SplitOutcome::default());
        assert_eq!(state.files_done, 2);
        let summary = state.summary();
        let value = serde_json::to_value(&summary).expect("json");
        assert_eq!(value["files"], 2);
        assert_eq!(value["files_skipped"], 1);
        assert_eq!(value["events_accepted"], 2);
        assert_eq!(value["failed"][0]["file"], "a.json");
        assert_eq!(value["failed"][1]["index"], 3);
        assert_eq!(value["errors"].as_array().map(Vec::len), Some(2));
        assert_eq!(state.files_with_errors(), 2);
    }

    /// Each request a [`FakeServer`] received: its lower-cased headers and its body.
    type RequestLog = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

    /// A stand-in server on a local port: answers each request as `answer` says (status,
    /// extra headers, body) and records what it received.
    struct FakeServer {
        endpoint: String,
        requests: RequestLog,
    }

    impl FakeServer {
        fn start(
            answer: impl Fn(usize, &[u8]) -> (u16, &'static str, String) + Send + 'static,
        ) -> FakeServer {
            use std::io::{BufRead as _, BufReader, Read as _, Write as _};
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let endpoint = format!("http://{}", listener.local_addr().expect("address"));
            let requests: RequestLog = std::sync::Arc::default();
            let recorded = std::sync::Arc::clone(&requests);
            std::thread::spawn(move || {
                for (number, stream) in listener.incoming().enumerate() {
                    let Ok(stream) = stream else { return };
                    let mut reader = BufReader::new(stream);
                    let mut headers = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        headers.push_str(&line.to_ascii_lowercase());
                    }
                    let length = headers
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .and_then(|value| value.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let (status, extra, text) = answer(number, &body);
                    if let Ok(mut log) = recorded.lock() {
                        log.push((headers, body));
                    }
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}\
                         content-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = reader.get_mut().write_all(response.as_bytes());
                }
            });
            FakeServer { endpoint, requests }
        }

        fn client(&self) -> ApiClient {
            let credentials = crate::client::Credentials {
                access_key_id: "OTAKTEST".to_owned(),
                secret_access_key: "secret".to_owned(),
            };
            ApiClient::new(&self.endpoint, credentials, "us-east-1".to_owned()).expect("client")
        }

        fn requests(&self) -> Vec<(String, Vec<u8>)> {
            self.requests
                .lock()
                .map(|log| log.clone())
                .unwrap_or_default()
        }
    }

    fn answer_for(body: &[u8]) -> String {
        let mut plain = String::new();
        let _ = std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(body), &mut plain);
        let records: Vec<serde_json::Value> = serde_json::from_str(&plain).unwrap_or_default();
        let accepted: Vec<serde_json::Value> = (0..records.len())
            .map(|index| serde_json::json!({"index": index, "eventId": "x"}))
            .collect();
        serde_json::json!({"accepted": accepted, "duplicates": [], "failed": []}).to_string()
    }

    #[tokio::test]
    async fn overload_is_retried_after_the_servers_delay() {
        let server = FakeServer::start(|number, body| match number {
            0 => (
                503,
                "retry-after: 1\r\n",
                r#"{"__type":"ServiceUnavailableException","message":"busy"}"#.to_owned(),
            ),
            _ => (200, "", answer_for(body)),
        });
        let body = ingest_files::gzip(b"[{\"a\":1},{\"a\":2}]").expect("gzip");
        let started = Instant::now();
        let answer = post_events(&server.client(), &body, 3).await;
        let Ok(answer) = answer else {
            panic!("the retry should succeed");
        };
        assert_eq!(answer.accepted.len(), 2);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After honoured"
        );
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        for (headers, sent) in &requests {
            assert!(headers.contains("content-encoding: gzip"), "{headers}");
            assert!(
                headers.contains("content-encoding;content-type;host;x-amz-date"),
                "{headers}"
            );
            assert_eq!(sent, &body);
        }
    }

    #[tokio::test]
    async fn refusals_are_per_body_and_auth_failures_are_fatal() {
        let server = FakeServer::start(|number, _| match number {
            0 => (
                400,
                "",
                r#"{"__type":"SerializationException","message":"bad body"}"#.to_owned(),
            ),
            _ => (
                403,
                "",
                r#"{"__type":"AccessDeniedException","message":"no"}"#.to_owned(),
            ),
        });
        let client = server.client();
        match post_events(&client, b"x", 3).await {
            Err(SendFailure::Rejected(message)) => {
                assert!(
                    message.starts_with("SerializationException: bad body"),
                    "{message}"
                );
            }
            _ => panic!("400 refuses this body only"),
        }
        match post_events(&client, b"x", 3).await {
            Err(SendFailure::Fatal(error)) => {
                assert!(one_line(&error).contains("AccessDeniedException"));
            }
            _ => panic!("403 stops the run"),
        }
        assert_eq!(server.requests().len(), 2, "neither is retried");
    }

    #[tokio::test]
    async fn a_whole_file_over_the_servers_limit_is_split_and_sent_in_parts() {
        const LIMIT: usize = 300;
        let server = FakeServer::start(|_, body| {
            if body.len() > LIMIT {
                (
                    413,
                    "",
                    r#"{"__type":"RequestEntityTooLarge","message":"too big"}"#.to_owned(),
                )
            } else {
                (200, "", answer_for(body))
            }
        });
        // Random digits barely compress: ten records of 80 digits make a body over the
        // limit (at least 800 × log2(10) / 8 = 332 bytes), two of them one well under.
        let records: Vec<String> = (0..10)
            .map(|_| {
                let digits: String = (0..4)
                    .map(|_| format!("{:020}", crate::client::random_u64()))
                    .collect();
                format!(r#"{{"pad":"{digits}"}}"#)
            })
            .collect();
        let text = format!(r#"{{"Records":[{}]}}"#, records.join(","));
        let padded = ingest_files::gzip(text.as_bytes()).expect("gzip");
        assert!(padded.len() > LIMIT);
        let body = BodyWork {
            file: 0,
            gzip_body: padded,
            file_indexes: None,
            source_bytes: 1,
        };
        let limits = BatchLimits {
            events_max: 2,
            bytes_max: 1024,
        };
        let delivery = deliver(&server.client(), body, limits, 0).await;
        assert!(
            delivery.fatal.is_none() && delivery.errors.is_empty(),
            "{delivery:?}"
        );
        assert_eq!(delivery.accepted, 10);
        let requests = server.requests();
        assert_eq!(requests.len(), 6, "one refused whole body, then five parts");
    }

    #[test]
    fn ingest_flags_parse() {
        use clap::Parser as _;
        #[derive(Debug, clap::Parser)]
        struct IngestOnly {
            #[command(flatten)]
            ingest: IngestArgs,
        }
        let parsed = IngestOnly::try_parse_from([
            "ingest",
            "logs/",
            "one.json",
            "--batch-events",
            "100",
            "--concurrency",
            "2",
            "--output",
            "json",
        ])
        .expect("parses");
        assert_eq!(parsed.ingest.paths.len(), 2);
        assert_eq!(parsed.ingest.batch_events, 100);
        assert_eq!(parsed.ingest.batch_bytes, 4 * MIB);
        assert_eq!(parsed.ingest.output.output, OutputFormat::Json);
        assert!(IngestOnly::try_parse_from(["ingest"]).is_err());
        assert!(IngestOnly::try_parse_from(["ingest", "x", "--batch-events", "0"]).is_err());
    }
}

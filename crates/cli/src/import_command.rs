//! `opentrail import PATH|s3://BUCKET/PREFIX…`: bulk import of CloudTrail log files, either
//! straight into a data directory (no server running on it) or through a server's
//! `POST /v1/events`. The walking, reading and parsing pipeline is `opentrail-import`; this
//! module chooses the destination, shows progress, handles Ctrl-C and prints the summary.
//!
//! Exit status: 0 when every file was imported; 1 when the import could not run or stop
//! cleanly, when some file or record could not be imported (the summary names them), or
//! when it was interrupted (the summary is printed first, and re-running the same command
//! resumes). A second Ctrl-C exits at once with 130; nothing is lost that way either.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use opentrail_event::{EventRecord, IngestContext};
use opentrail_import::checkpoint::CHECKPOINT_DIR_NAME;
use opentrail_import::{
    EventSink, ImportOptions, ImportProgress, ImportSummary, SinkError, Source, StoreSink,
    WriteOutcome,
};
use opentrail_server::{Config, ConfigLayer};
use opentrail_store::{DEFAULT_S3_REGION, Store, StoreError, StoreOptions};

use crate::client::{ApiClient, EndpointCredentials, EventsAnswer, RetryPolicy, SendFailure};
use crate::one_line;
use crate::output::{OutputArgs, OutputFormat, render_table};
use crate::s3_args::S3Args;

/// Uncompressed JSON per request: under the server's default 10 MiB body limit even when
/// sent plain. A 413 from a server with a lower limit halves the request.
const REQUEST_JSON_BYTES_MAX: usize = 8 * 1024 * 1024;
/// S3 reads wait on the network, not the CPU: more of them in flight keep the parser busy.
const S3_WORKERS_DEFAULT: usize = 16;
const RETRIES_MAX: u32 = 10;
const BAR_REFRESH: Duration = Duration::from_millis(200);
const PLAIN_PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
/// Errors the table summary prints; `--output json` lists them all (up to the import's cap).
const ERROR_ROWS_MAX: usize = 50;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// CloudTrail log files, folders (AWSLogs trees or any other, searched recursively for
    /// *.json, *.json.gz, *.json.cloudtrail, *.ndjson and *.jsonl) and s3://BUCKET/PREFIX.
    /// Digest files, other services' logs, hidden and empty files are skipped and counted.
    #[arg(value_name = "PATH|s3://BUCKET/PREFIX", required = true)]
    sources: Vec<String>,
    /// Import straight into this data directory; no server may be running on it (the
    /// store's lock refuses a second writer). Default: the server's configured data_dir.
    #[arg(long, value_name = "DIR", env = "OPENTRAIL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The server's TOML configuration file: where its data directory is, and its
    /// default account and region (they fill records that name neither, when the file's
    /// path does not either).
    #[arg(long, value_name = "FILE", env = "OPENTRAIL_CONFIG")]
    config: Option<PathBuf>,
    /// Import through a running server instead, with an admin or ingest key of its default
    /// account (only those may write other accounts' events).
    #[arg(long, value_name = "URL", env = "OPENTRAIL_ENDPOINT")]
    endpoint: Option<String>,
    #[command(flatten)]
    credentials: EndpointCredentials,
    /// How s3:// sources are reached.
    #[command(flatten)]
    s3: S3Args,
    /// Threads that read, decompress and parse files [default: one per CPU; 16 with
    /// s3:// sources].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    workers: Option<u32>,
    /// Events per durable write.
    #[arg(long, value_name = "N", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_events: u32,
    /// Read every file again, even those the checkpoint lists as imported. Nothing is
    /// doubled either way: events are deduplicated by account and eventID.
    #[arg(long)]
    no_resume: bool,
    /// Where to keep the checkpoint of completely imported files, which lets a re-run
    /// skip them [default: DATA_DIR/import-checkpoints when importing directly; none
    /// through --endpoint].
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run(args: ImportArgs, runtime: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let sources = args
        .sources
        .iter()
        .map(|text| Source::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    let config = Config::load(
        args.config.as_deref(),
        ConfigLayer {
            data_dir: args.data_dir.clone(),
            ..ConfigLayer::default()
        },
    )?;
    let has_s3_source = sources.iter().any(Source::is_s3);
    let mut options = ImportOptions {
        default_context: IngestContext {
            account_id: config.account_id.clone(),
            region: config.region.clone(),
        },
        batch_events: usize::try_from(args.batch_events).unwrap_or(usize::MAX),
        ignore_checkpoint: args.no_resume,
        s3: args.s3.connection(DEFAULT_S3_REGION),
        ..ImportOptions::default()
    };
    if let Some(workers) = args.workers {
        options.workers = usize::try_from(workers).unwrap_or(1);
    } else if has_s3_source {
        options.workers = options.workers.max(S3_WORKERS_DEFAULT);
    }

    let cancel = Arc::new(AtomicBool::new(false));
    let signal_watch = runtime.spawn(watch_for_interrupts(cancel.clone()));
    let result = match &args.endpoint {
        Some(endpoint) => {
            let connection = args
                .credentials
                .connection(endpoint, config.data_dir.clone());
            let client = ApiClient::from_connection_args(&connection)?;
            options.checkpoint_dir = args.checkpoint_dir.clone();
            options.destination = format!("api {endpoint}");
            let mut sink = ApiSink {
                client,
                runtime: runtime.clone(),
                gzip: !is_loopback_endpoint(endpoint),
            };
            run_import(&args, &sources, &mut sink, &options, &cancel)
        }
        None => {
            let store_dir = config.store_dir();
            create_private_directory(&config.data_dir)?;
            let store = Store::open(
                &store_dir,
                StoreOptions {
                    retention: Duration::from_secs(u64::from(config.retention_days) * 86_400),
                    ..StoreOptions::default()
                },
            )
            .map_err(|error| match error {
                StoreError::Locked { .. } => anyhow::anyhow!(
                    "the data directory {} is in use by a running server or another import; \
                     stop it, or import through the server with --endpoint URL",
                    config.data_dir.display()
                ),
                other => anyhow::Error::new(other)
                    .context(format!("cannot open the store in {}", store_dir.display())),
            })?;
            options.checkpoint_dir = Some(
                args.checkpoint_dir
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join(CHECKPOINT_DIR_NAME)),
            );
            let absolute_store_dir = std::fs::canonicalize(&store_dir).unwrap_or(store_dir);
            options.destination = format!("store {}", absolute_store_dir.display());
            let mut sink = StoreSink::new(store);
            let result = run_import(&args, &sources, &mut sink, &options, &cancel);
            // Not needed for durability (the journal has every event), but without it the
            // next open (the server's start) replays the whole import from the journal.
            if let Err(error) = sink.store().flush_tables() {
                eprintln!("opentrail: import: warning: {error}");
            }
            // Closing the store joins its writer; every acknowledged event is already durable.
            drop(sink);
            result
        }
    };
    signal_watch.abort();
    let summary = result?;
    if summary.interrupted {
        bail!(
            "interrupted; what was imported is durable, and running the same command again \
             resumes"
        );
    }
    if summary.has_errors() {
        bail!(
            "{} files could not be imported completely; see the summary",
            summary.error_files
        );
    }
    Ok(())
}

/// Runs the import with a progress display, and prints the summary.
fn run_import(
    args: &ImportArgs,
    sources: &[Source],
    sink: &mut dyn EventSink,
    options: &ImportOptions,
    cancel: &AtomicBool,
) -> anyhow::Result<ImportSummary> {
    let progress = ImportProgress::default();
    let finished = AtomicBool::new(false);
    let summary = std::thread::scope(|scope| {
        let display = if args.quiet {
            None
        } else {
            Some(scope.spawn(|| show_progress(&progress, &finished)))
        };
        let summary = opentrail_import::import(sources, sink, options, &progress, cancel);
        finished.store(true, Ordering::Release);
        if let Some(display) = display {
            let _ = display.join();
        }
        summary
    })?;
    match args.output.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
        OutputFormat::Table => print_summary(&summary),
    }
    Ok(summary)
}

/// First Ctrl-C (or SIGTERM): finish the batch in hand, record the checkpoint, print the
/// summary. Second: exit at once, which loses nothing either (written events are durable
/// and the checkpoint only names files whose events are), but prints no summary.
async fn watch_for_interrupts(cancel: Arc<AtomicBool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        return;
    };
    loop {
        tokio::select! {
            result = tokio::signal::ctrl_c() => if result.is_err() { return },
            _ = terminate.recv() => {}
        }
        if cancel.swap(true, Ordering::SeqCst) {
            eprintln!("opentrail: import: stopped at once");
            std::process::exit(130);
        }
        eprintln!(
            "opentrail: import: stopping after the current batch (interrupt again to stop at once)"
        );
    }
}

fn show_progress(progress: &ImportProgress, finished: &AtomicBool) {
    let started = Instant::now();
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        // The template is a constant; should it ever fail to parse, the default style is
        // still a working bar.
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        while !finished.load(Ordering::Acquire) {
            let snapshot = Snapshot::take(progress, started);
            bar.set_length(snapshot.bytes_found.max(1));
            bar.set_position(snapshot.bytes_done);
            bar.set_message(snapshot.describe());
            bar.tick();
            std::thread::sleep(BAR_REFRESH);
        }
        bar.finish_and_clear();
    } else {
        // Not a terminal (a log, CI): a plain line every few seconds.
        let mut last_line = Instant::now();
        while !finished.load(Ordering::Acquire) {
            std::thread::sleep(BAR_REFRESH);
            if last_line.elapsed() >= PLAIN_PROGRESS_INTERVAL {
                last_line = Instant::now();
                eprintln!(
                    "opentrail: import: {}",
                    Snapshot::take(progress, started).describe()
                );
            }
        }
    }
}

struct Snapshot {
    files_done: u64,
    files_found: u64,
    listing_complete: bool,
    bytes_done: u64,
    bytes_found: u64,
    events: u64,
    duplicates: u64,
    json_megabytes_per_second: f64,
    eta: Option<Duration>,
}

impl Snapshot {
    fn take(progress: &ImportProgress, started: Instant) -> Snapshot {
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64().max(0.001);
        let bytes_done = load(&progress.bytes_done);
        let bytes_found = load(&progress.bytes_found);
        let listing_complete = progress.listing_complete.load(Ordering::Acquire);
        // The ETA extrapolates the stored-bytes rate; it means something only once the
        // listing knows how much there is.
        let eta = (listing_complete && bytes_done > 0).then(|| {
            let remaining = bytes_found.saturating_sub(bytes_done) as f64;
            Duration::from_secs_f64(remaining / (bytes_done as f64 / seconds))
        });
        Snapshot {
            files_done: load(&progress.files_done),
            files_found: load(&progress.files_found),
            listing_complete,
            bytes_done,
            bytes_found,
            events: load(&progress.events_imported),
            duplicates: load(&progress.duplicates),
            json_megabytes_per_second: load(&progress.json_bytes_done) as f64 / 1e6 / seconds,
            eta,
        }
    }

    fn describe(&self) -> String {
        let more = if self.listing_complete { "" } else { "+" };
        let eta = match self.eta {
            Some(eta) => format!("ETA {}s", eta.as_secs()),
            None => "ETA ?".to_owned(),
        };
        format!(
            "{}/{}{more} files · {} events ({} duplicates) · {:.1} MB/s · {eta}",
            self.files_done,
            self.files_found,
            self.events,
            self.duplicates,
            self.json_megabytes_per_second
        )
    }
}

fn print_summary(summary: &ImportSummary) {
    let seconds = summary.seconds.max(0.001);
    println!(
        "Imported {} events from {} files in {:.1} s ({:.1} MB/s of JSON, {:.0} events/s).",
        summary.events_imported,
        summary.files,
        summary.seconds,
        summary.json_bytes as f64 / 1e6 / seconds,
        (summary.events_imported + summary.duplicates) as f64 / seconds
    );
    let lines = [
        ("duplicates skipped", summary.duplicates.to_string()),
        (
            "files skipped",
            format!(
                "{} (digest {}, not CloudTrail {})",
                summary.files_skipped,
                summary.files_skipped_digest,
                summary.files_skipped_not_cloudtrail
            ),
        ),
        (
            "files already imported",
            format!(
                "{} (listed in the checkpoint; --no-resume reads them again)",
                summary.files_already_imported
            ),
        ),
        ("records failed", summary.events_failed.to_string()),
        ("files with errors", summary.error_files.to_string()),
    ];
    for (label, value) in lines {
        println!("  {label:<24}{value}");
    }
    if summary.interrupted {
        println!("Interrupted: run the same command again to resume.");
    }
    if !summary.errors.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = summary
            .errors
            .iter()
            .take(ERROR_ROWS_MAX)
            .map(|error| vec![error.path.clone(), error.message.clone()])
            .collect();
        print!("{}", render_table(&["FILE", "ERROR"], &rows));
        let unlisted = summary.error_files.saturating_sub(rows.len() as u64);
        if unlisted > 0 {
            println!("… and {unlisted} more (--output json lists up to 1000)");
        }
    }
}

fn create_private_directory(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    // Same permissions `serve` gives a new data directory: it will hold keys.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

/// Loopback traffic costs nothing to send, so compressing it would only spend CPU.
fn is_loopback_endpoint(endpoint: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(endpoint) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    // IPv6 hosts keep their brackets in a URL.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Writes through `POST /v1/events`. The server deduplicates too, so a retried request
/// (after a timeout whose answer was lost) never doubles an event; its events are then
/// counted as duplicates.
struct ApiSink {
    client: ApiClient,
    runtime: tokio::runtime::Handle,
    gzip: bool,
}

enum PostFailure {
    /// 413: the body must be split.
    TooLarge,
    Fatal(anyhow::Error),
}

impl EventSink for ApiSink {
    fn write(&mut self, records: Vec<EventRecord>) -> Result<Vec<WriteOutcome>, SinkError> {
        let mut outcomes = Vec::with_capacity(records.len());
        let mut start = 0;
        while start < records.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < records.len()
                && (end == start || bytes + records[end].json.len() < REQUEST_JSON_BYTES_MAX)
            {
                bytes += records[end].json.len() + 1;
                end += 1;
            }
            outcomes.extend(self.write_slice(&records[start..end])?);
            start = end;
        }
        Ok(outcomes)
    }
}

impl ApiSink {
    /// One request for `records`, halved on 413 until it fits.
    fn write_slice(&self, records: &[EventRecord]) -> Result<Vec<WriteOutcome>, SinkError> {
        match self.runtime.block_on(self.post(records)) {
            Ok(answer) => Ok(outcomes_from_answer(answer, records.len())),
            Err(PostFailure::TooLarge) if records.len() > 1 => {
                let (first, second) = records.split_at(records.len() / 2);
                let mut outcomes = self.write_slice(first)?;
                outcomes.extend(self.write_slice(second)?);
                Ok(outcomes)
            }
            Err(PostFailure::TooLarge) => Ok(vec![WriteOutcome::Rejected {
                message: "the record alone is larger than the server's request body limit"
                    .to_owned(),
            }]),
            Err(PostFailure::Fatal(error)) => Err(SinkError {
                message: one_line(&error),
                source: Some(error.into()),
            }),
        }
    }

    async fn post(&self, records: &[EventRecord]) -> Result<EventsAnswer, PostFailure> {
        let mut json =
            Vec::with_capacity(records.iter().map(|r| r.json.len() + 1).sum::<usize>() + 16);
        json.extend_from_slice(b"{\"Records\":[");
        for (position, record) in records.iter().enumerate() {
            if position > 0 {
                json.push(b',');
            }
            json.extend_from_slice(record.json.as_bytes());
        }
        json.extend_from_slice(b"]}");
        let (payload, content_encoding) = if self.gzip {
            (
                crate::ingest_files::gzip(&json)
                    .map_err(|error| PostFailure::Fatal(error.into()))?,
                Some("gzip"),
            )
        } else {
            (json, None)
        };
        // A broken connection may be the server restarting: as patient with it as with
        // an overloaded server.
        let policy = RetryPolicy {
            server_retries: RETRIES_MAX,
            transport_retries: RETRIES_MAX,
        };
        self.client
            .post_events(&payload, content_encoding, policy)
            .await
            .map_err(|failure| match failure {
                SendFailure::TooLarge(_) => PostFailure::TooLarge,
                SendFailure::Rejected(message) => PostFailure::Fatal(anyhow::anyhow!(message)),
                SendFailure::Fatal(error) => PostFailure::Fatal(error),
            })
    }
}

fn outcomes_from_answer(answer: EventsAnswer, count: usize) -> Vec<WriteOutcome> {
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; count];
    let mut set = |index: usize, outcome: WriteOutcome| {
        if let Some(slot) = outcomes.get_mut(index) {
            *slot = Some(outcome);
        }
    };
    for accepted in answer.accepted {
        set(accepted.index, WriteOutcome::Stored);
    }
    for duplicate in answer.duplicates {
        set(duplicate.index, WriteOutcome::Duplicate);
    }
    for failed in answer.failed {
        set(
            failed.index,
            WriteOutcome::Rejected {
                message: format!("{}: {}", failed.error_code, failed.message),
            },
        );
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| WriteOutcome::Rejected {
                message: "the server did not report on this record".to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{RecordFailure, RecordIndex};

    #[test]
    fn loopback_endpoints_are_recognised() {
        assert!(is_loopback_endpoint("http://127.0.0.1:4580"));
        assert!(is_loopback_endpoint("http://localhost:4580/"));
        assert!(is_loopback_endpoint("http://[::1]:4580"));
        assert!(!is_loopback_endpoint("https://trail.example.com"));
        assert!(!is_loopback_endpoint("not a url"));
    }

    #[test]
    fn every_record_gets_an_outcome_from_the_answer() {
        let answer = EventsAnswer {
            accepted: vec![RecordIndex { index: 0 }],
            duplicates: vec![RecordIndex { index: 2 }],
            failed: vec![RecordFailure {
                index: 1,
                error_code: "InvalidRecipient".to_owned(),
                message: "not yours".to_owned(),
            }],
        };
        assert_eq!(
            outcomes_from_answer(answer, 4),
            vec![
                WriteOutcome::Stored,
                WriteOutcome::Rejected {
                    message: "InvalidRecipient: not yours".to_owned()
                },
                WriteOutcome::Duplicate,
                WriteOutcome::Rejected {
                    message: "the server did not report on this record".to_owned()
                },
            ]
        );
    }
}

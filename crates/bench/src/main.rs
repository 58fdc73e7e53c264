//! `opentrail-bench`: OpenTrail against DuckDB and the JSON parse ceiling, side by side in
//! one run, on the same generated events (issue 4; see BENCHMARKS.md).
//!
//! ```text
//! cargo build --release -p opentrail -p opentrail-bench
//! cargo run --release -p opentrail-bench -- [--events N] [--clients C] [--corpus DIR] [--out FILE] [--quick]
//! ```
//!
//! Phases, one after the other so none measures another's load:
//! 1. generate N events (seeded) into CloudTrail gz log files in the AWSLogs layout;
//! 2. the parse ceiling on the same events (serde_json, sonic-rs; 1 thread and all cores);
//! 3. the real `opentrail serve` on a fresh data dir: durable ingest over HTTP with C
//!    clients and batches of 500 (the same events, regenerated), freshness probes during
//!    it, LookupEvents latency per attribute and lookups/s, disk, peak RSS;
//! 4. `opentrail import` of the log files into another fresh data dir, when it exists;
//! 5. detections (unless --skip-rules): the same events into servers without rules and
//!    with 50 Sigma rules, alternately, and ack → webhook latency of alerts;
//! 6. DuckDB over the gz files and over a native table, the same lookups, results checked
//!    against OpenTrail's.

mod api;
mod corpus;
mod detections;
mod duckdb;
mod ingest;
mod lookups;
mod parse;
mod proxy;
mod report;
mod server;
mod sql;
mod summary;
mod webhook;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use opentrail_event::IngestContext;
use opentrail_generator::{Generator, GeneratorConfig, LogFileWriter, format_event_time};

use crate::report::Report;

#[derive(Debug, Parser)]
#[command(
    name = "opentrail-bench",
    about = "OpenTrail against DuckDB and the JSON parse ceiling, side by side in one run."
)]
struct Args {
    /// Events to generate and ingest [default: 10,000,000; 200,000 with --quick].
    #[arg(long, value_name = "N")]
    events: Option<u64>,
    /// Concurrent HTTP clients for ingest and for the lookups/s phase.
    #[arg(long, value_name = "C", default_value_t = 4)]
    clients: usize,
    /// The real CloudTrail corpus, read in place, to compare the generated shape with
    /// [default: ../shared/corpus/cloudtrail when it exists].
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// A routine check: about 200k events, under 3 minutes.
    #[arg(long)]
    quick: bool,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Working directory for log files and data dirs [default: a new temp dir, removed
    /// afterwards unless --keep].
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Keep the working directory.
    #[arg(long)]
    keep: bool,
    /// The opentrail binary [default: `opentrail` next to this executable, i.e.
    /// target/release/opentrail].
    #[arg(long, value_name = "FILE")]
    binary: Option<PathBuf>,
    /// Skip the DuckDB baseline (no Python needed).
    #[arg(long)]
    skip_duckdb: bool,
    /// Sequential lookups timed per attribute [default: 200; 100 with --quick].
    #[arg(long, value_name = "N")]
    lookups_per_attribute: Option<usize>,
    /// Only the lookup phase, on the data dir (`WORK_DIR/data`) of an earlier run kept with
    /// --keep, after its background work settled. Pass that run's --events and --seed: the
    /// lookup values are sampled from the same regenerated stream.
    #[arg(long, value_name = "DIR")]
    lookups_on: Option<PathBuf>,
    /// Lookup values per attribute run with DuckDB (over the gz files, each query reads
    /// every log file) [default: 1; 2 with --quick].
    #[arg(long, value_name = "N")]
    duckdb_queries_per_attribute: Option<usize>,
    /// Run DuckDB over the gz files for all 8 attributes, not only the 4 classic
    /// responder questions. Each such query reads every log file (about 5 minutes at 10M
    /// events here), so this adds about 20 minutes to a full run.
    #[arg(long)]
    duckdb_gz_all_attributes: bool,
    /// Skip the detections phase (the rules' cost to ingest, alert latency).
    #[arg(long)]
    skip_rules: bool,
    /// Events ingested by each server of the rules comparison [default: --events, at
    /// most 1,000,000].
    #[arg(long, value_name = "N")]
    rules_events: Option<u64>,
    /// Servers without rules and with them, alternately, this many times each.
    #[arg(long, value_name = "N", default_value_t = 3)]
    rules_repeats: usize,
    /// Batches of the alert latency phase, 100 ms apart, each with 2 events that fire a
    /// rule [default: 300; 150 with --quick].
    #[arg(long, value_name = "N")]
    alert_latency_batches: Option<usize>,
    /// Only the recording proxy's benchmark (issue 16): latency it adds at a fixed rate
    /// and calls/s, against calling the upstream directly (a fast in-process upstream, and
    /// `moto_server` when --moto-server or the venv has it).
    #[arg(long)]
    proxy: bool,
    /// Requests per second of the proxy benchmark's open-loop phases.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    proxy_rate: u32,
    /// Seconds of each open-loop phase of the proxy benchmark.
    #[arg(long, value_name = "S", default_value_t = 10)]
    proxy_seconds: u64,
    /// `moto_server` for the proxy benchmark [default: $OPENTRAIL_VENV/bin/moto_server
    /// when it exists].
    #[arg(long, value_name = "FILE")]
    moto_server: Option<PathBuf>,
    /// Run nothing: print the median of these reports (written by earlier runs' --out),
    /// figure by figure, and write the medians as a report to --out.
    #[arg(long, value_name = "REPORT", num_args = 2..)]
    summarize: Vec<PathBuf>,
}

const BATCH_EVENTS: usize = 500;
/// The longest the bench waits for the store to settle (10M events: ~2 minutes of CPU).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Events per server of the rules comparison by default: they are ingested 2 × --rules-repeats
/// times, so a full run's 10M would add more than an hour.
const RULES_EVENTS_MAX: u64 = 1_000_000;
/// The attributes also run over the gz files with DuckDB: who, on what, with which key,
/// doing what. A query over the gz files reads and parses every log file whatever its
/// condition, so its time hardly depends on the attribute (292–344 s for all 8 in the
/// first 10M run), and four of them are enough unless --duckdb-gz-all-attributes.
const GZ_ATTRIBUTES: [&str; 4] = ["EventName", "Username", "ResourceName", "AccessKeyId"];
/// Events kept in memory for the parse ceiling (the first ones of the stream); fewer with
/// --quick.
const PARSE_SAMPLE_MAX: u64 = 200_000;
const PARSE_SAMPLE_QUICK: u64 = 50_000;
/// Every how many events a lookup value is sampled: about this many samples in all.
const LOOKUP_SAMPLE_TARGET: u64 = 600;

/// Whether the event at `index` of an `events`-long stream gives lookup values: the same
/// rule for a full run and for `--lookups-on`, so both ask for the same values.
fn is_lookup_sample(index: u64, events: u64) -> bool {
    let stride = (events / LOOKUP_SAMPLE_TARGET).max(1);
    index % stride == stride / 2
}

/// Generated events are looked up as the primary account in the primary region.
fn primary_context(config: &GeneratorConfig) -> IngestContext {
    IngestContext {
        account_id: config.primary_account.clone(),
        region: config.primary_region.clone(),
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if !args.summarize.is_empty() {
        return match write_summary(&args.summarize, args.out.as_deref()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("opentrail-bench: error: {error:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("opentrail-bench: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("opentrail-bench: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn write_summary(reports: &[PathBuf], out: Option<&Path>) -> anyhow::Result<()> {
    let summary = summary::summarize(reports)?;
    print!("{}", summary.markdown);
    if let Some(out) = out {
        let json = serde_json::to_string_pretty(&summary.medians)?;
        std::fs::write(out, json).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let total_started = Instant::now();
    let events = args
        .events
        .unwrap_or(if args.quick { 200_000 } else { 10_000_000 });
    if events < opentrail_generator::stories::EVENT_COUNT as u64 {
        bail!(
            "--events must be at least {}",
            opentrail_generator::stories::EVENT_COUNT
        );
    }
    let clients = args.clients.max(1);
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe()
            .context("cannot find this executable")?
            .with_file_name("opentrail"),
    };
    if !binary.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p opentrail`",
            binary.display()
        );
    }
    let (work_dir, remove_work_dir) = match &args.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("opentrail-bench-{}", std::process::id())),
            !args.keep,
        ),
    };
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create {}", work_dir.display()))?;
    if args.proxy {
        let moto_server = args.moto_server.clone().or_else(|| {
            let venv = std::env::var_os("OPENTRAIL_VENV")?;
            Some(PathBuf::from(venv).join("bin").join("moto_server")).filter(|path| path.exists())
        });
        let report = proxy::run(
            &binary,
            &work_dir.join("proxy"),
            args.proxy_rate,
            args.proxy_seconds,
            moto_server,
        )
        .await;
        if remove_work_dir {
            let _ = std::fs::remove_dir_all(&work_dir);
        }
        let report = report?;
        proxy::print(&report);
        if let Some(out) = &args.out {
            std::fs::write(out, serde_json::to_string_pretty(&report)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
        }
        return Ok(());
    }
    let logs_dir = work_dir.join("logs");
    if logs_dir.exists() {
        std::fs::remove_dir_all(&logs_dir)
            .with_context(|| format!("cannot clear {}", logs_dir.display()))?;
    }
    let mut report = Report::new(
        events,
        clients,
        BATCH_EVENTS,
        args.seed,
        args.quick,
        &binary,
    );
    let config = GeneratorConfig::new(args.seed, events);
    let scope = lookups::Scope {
        region: config.primary_region.clone(),
        // An hour of margin each side: the window holds every generated event and none of
        // the server's own self-audit records (they are stamped with today's time).
        start_s: config.start_ms / 1000 - 3600,
        end_s: config.end_ms() / 1000 + 3600,
    };
    if let Some(data_dir) = &args.lookups_on {
        return lookups_only(&args, &binary, data_dir, &config, &scope, clients).await;
    }
    eprintln!(
        "opentrail-bench: {events} events, {clients} clients, work dir {}",
        work_dir.display()
    );

    // 1. Generate the log files, sampling lookup values and keeping the parse sample.
    let phase = Instant::now();
    let context = primary_context(&config);
    let mut samples = lookups::Samples::default();
    let mut parse_sample: Vec<String> = Vec::new();
    let mut writer = LogFileWriter::new(&logs_dir, args.seed);
    let mut generator = Generator::new(config.clone());
    let mut line = String::with_capacity(4096);
    let parse_sample_max = if args.quick {
        PARSE_SAMPLE_QUICK
    } else {
        PARSE_SAMPLE_MAX
    };
    let mut index = 0u64;
    while let Some(meta) = {
        line.clear();
        generator.next_into(&mut line)
    } {
        writer.write(&meta, &line)?;
        if is_lookup_sample(index, events) {
            samples.add(&line, &scope, &context);
        }
        if index < parse_sample_max {
            parse_sample.push(line.clone());
        }
        index += 1;
    }
    let log_files = writer.finish()?;
    report.log_files(&log_files);
    report.phase("generate", phase);
    eprintln!(
        "opentrail-bench: wrote {} log files ({:.0} MB gz, {:.0} MB JSON) in {:.1} s",
        log_files.files,
        log_files.compressed_bytes as f64 / 1e6,
        log_files.raw_bytes as f64 / 1e6,
        phase.elapsed().as_secs_f64()
    );

    // 2. The parse ceiling, and the shape against the corpus.
    let phase = Instant::now();
    let ceiling = parse::measure(&parse_sample);
    report.parse_ceiling(ceiling);
    let generated_shape = corpus::shape_of(parse_sample.iter().take(50_000).map(String::as_str));
    drop(parse_sample);
    let corpus_dir = args.corpus.clone().or_else(|| {
        let default = PathBuf::from("../shared/corpus/cloudtrail");
        default.is_dir().then_some(default)
    });
    let corpus_shape = corpus_dir.as_deref().map(|dir| {
        let records = corpus::read_corpus(dir);
        corpus::shape_of(records.iter().map(String::as_str))
    });
    report.shapes(generated_shape, corpus_shape);
    report.phase("parse_ceiling", phase);
    eprintln!(
        "opentrail-bench: parse ceiling {:.0} events/s on all cores",
        ceiling.all_cores_events_per_s()
    );

    // 3. The server.
    let data_dir = work_dir.join("data");
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)
            .with_context(|| format!("cannot clear {}", data_dir.display()))?;
    }
    let mut server =
        server::ServerProcess::start(&binary, &data_dir, &work_dir.join("server.log")).await?;
    let api = Arc::new(api::Api::new(
        &server.endpoint,
        &server.host,
        server.credentials.clone(),
    )?);

    let phase = Instant::now();
    let sealer_before = sealer_totals(&api).await?;
    let own_cpu = || server::cpu_seconds("/proc/self/stat");
    let cpu_before = (server.cpu_seconds(), own_cpu());
    let outcome = ingest::run(
        Arc::clone(&api),
        config.clone(),
        clients,
        BATCH_EVENTS,
        ingest::Probes::Freshness,
    )
    .await?;
    let cpu_after = (server.cpu_seconds(), own_cpu());
    report.ingest(&outcome);
    report.cpu_during_ingest(cpu_before, cpu_after);
    report.sealer_during_ingest(sealer_before, sealer_totals(&api).await?);
    report.phase("ingest", phase);
    eprintln!(
        "opentrail-bench: ingested {} events in {:.1} s ({:.0} events/s)",
        outcome.events,
        outcome.seconds,
        outcome.events as f64 / outcome.seconds
    );
    if outcome.accepted != events {
        bail!(
            "the server accepted {} of {events} events ({} duplicates, {} failed)",
            outcome.accepted,
            outcome.duplicates,
            outcome.failed
        );
    }
    report.disk_live(server::disk_bytes(&data_dir));

    let phase = Instant::now();
    let per_attribute = args
        .lookups_per_attribute
        .unwrap_or(if args.quick { 100 } else { 200 });
    let latencies = lookups::latencies(&api, &samples, &scope, per_attribute).await?;
    report.lookup_latencies(&latencies);
    let (done, seconds) = lookups::throughput(
        Arc::clone(&api),
        &samples,
        &scope,
        clients,
        if args.quick { 4_000 } else { 20_000 },
        Duration::from_secs(if args.quick { 10 } else { 30 }),
    )
    .await?;
    report.lookup_throughput(done, seconds);
    report.phase("lookups", phase);

    // The pages DuckDB's answers are checked against, fetched while the server is up.
    let duckdb_per_attribute =
        args.duckdb_queries_per_attribute
            .unwrap_or(if args.quick { 2 } else { 1 });
    let mut compared: Vec<(String, String, Vec<String>)> = Vec::new();
    for attribute in lookups::ATTRIBUTES {
        for value in samples.distinct(attribute, duckdb_per_attribute) {
            let page = lookups::page(&api, &scope, attribute, &value).await?;
            compared.push((attribute.to_owned(), value, page));
        }
    }
    // SQL through the server while it is up: its memory during a query is the figure.
    let middle_s = (scope.start_s + scope.end_s) / 2;
    let day = format_event_time(middle_s * 1000)[..10].to_owned();
    let next_day = format_event_time((middle_s + 86_400) * 1000)[..10].to_owned();
    let sql_queries = sql::queries(&day, &next_day);
    let phase = Instant::now();
    let server_sql = sql::run_server(
        &api,
        &scope.region,
        server.pid,
        &sql_queries,
        if args.quick { 3 } else { 5 },
    )
    .await?;
    report.server_sql(&server_sql);
    report.phase("sql_server", phase);

    let phase = Instant::now();
    report.settle_wait(wait_settled(&api).await?);
    report.phase("settle_wait", phase);

    report.server_rss(server.peak_rss_mb());
    server.stop()?;
    report.disk_stopped(
        server::disk_bytes(&data_dir),
        server::disk_bytes(&data_dir.join("store")),
        server::disk_bytes(&data_dir.join("archive")),
    );
    drop(server);

    // Cold lookups: the same data dir, a fresh server, the page cache dropped.
    let phase = Instant::now();
    let cold_per_attribute = if args.quick { 20 } else { 50 };
    if let Some(cold) = cold_lookups(
        &binary,
        &data_dir,
        &work_dir.join("server-cold.log"),
        &samples,
        &scope,
        cold_per_attribute,
    )
    .await?
    {
        report.cold_lookup_latencies(&cold);
    }
    report.phase("lookups_cold", phase);

    // 4. Import, once `opentrail import` exists.
    let phase = Instant::now();
    let import_dir = work_dir.join("import-data");
    match import(&binary, &logs_dir, &import_dir) {
        Ok(Some(result)) => report.import(result),
        Ok(None) => {
            eprintln!("opentrail-bench: `opentrail import` is not available; import not measured")
        }
        Err(error) => eprintln!("opentrail-bench: import failed, not measured: {error:#}"),
    }
    report.phase("import", phase);

    // SQL over the imported data dir: the events DuckDB reads, without the server's own
    // calls. `opentrail query`, several runs per query.
    let mut sql_results = Vec::new();
    if report.import_events_per_s.is_some() {
        let phase = Instant::now();
        sql_results = sql::run_opentrail(
            &binary,
            &import_dir,
            &sql_queries,
            if args.quick { 3 } else { 5 },
        )?;
        report.sql(&sql_results);
        report.phase("sql", phase);
    }

    // 5. Detections.
    if !args.skip_rules {
        let phase = Instant::now();
        let rules_events = args
            .rules_events
            .unwrap_or(events.min(RULES_EVENTS_MAX))
            .max(opentrail_generator::stories::EVENT_COUNT as u64);
        let outcome = detections::run(&detections::Settings {
            binary: &binary,
            work_dir: &work_dir,
            config: GeneratorConfig::new(args.seed, rules_events),
            clients,
            batch_events: BATCH_EVENTS,
            pairs: args.rules_repeats.max(1),
            latency_batches: args
                .alert_latency_batches
                .unwrap_or(if args.quick { 150 } else { 300 })
                .max(1),
        })
        .await?;
        report.detections(&outcome);
        report.phase("detections", phase);
    }

    // 6. DuckDB.
    if !args.skip_duckdb {
        let phase = Instant::now();
        let python = duckdb::ensure_venv(&duckdb::venv_dir())?;
        // Over the gz files every query reads every file: by default only the classic
        // responder questions go there, to keep a full run under an hour.
        let queries: Vec<(String, String, bool)> = compared
            .iter()
            .map(|(attribute, value, _)| {
                let gz =
                    args.duckdb_gz_all_attributes || GZ_ATTRIBUTES.contains(&attribute.as_str());
                (attribute.clone(), value.clone(), gz)
            })
            .collect();
        let results = duckdb::run(
            &python,
            &work_dir,
            &logs_dir,
            &scope.region,
            &format_event_time(scope.start_s * 1000),
            &format_event_time(scope.end_s * 1000),
            lookups::PAGE,
            5,
            &queries,
            &sql_queries,
            (!sql_results.is_empty()).then_some(duckdb::AlternateWith {
                binary: &binary,
                data_dir: &import_dir,
            }),
        )?;
        if results.native_rows != events {
            bail!(
                "DuckDB loaded {} rows, expected {events}",
                results.native_rows
            );
        }
        report.duckdb(&results, &compared);
        if !sql_results.is_empty() {
            report.duckdb_sql(&results.sql, &sql_results);
        }
        report.phase("duckdb", phase);
    }
    // Kept until DuckDB's phase has run `opentrail query` on it between its own runs.
    let _ = std::fs::remove_dir_all(&import_dir);

    report.finish(total_started);
    println!("{}", report.markdown());
    if let Some(out) = &args.out {
        if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(out, report.json()?)
            .with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("opentrail-bench: report written to {}", out.display());
    }
    if remove_work_dir {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    if !report.results_agree() {
        bail!("OpenTrail's and DuckDB's results differ (see result_mismatches)");
    }
    Ok(())
}

/// What `opentrail import` reported, and how long it took.
pub struct ImportResult {
    pub seconds: f64,
    pub events: u64,
    pub json_bytes: u64,
    pub bytes_read: u64,
}

/// Imports the log files into a fresh data dir with `opentrail import`, if the binary has
/// that subcommand; `None` if it does not.
fn import(binary: &Path, logs_dir: &Path, data_dir: &Path) -> anyhow::Result<Option<ImportResult>> {
    let help = Command::new(binary)
        .args(["import", "--help"])
        .output()
        .context("cannot run opentrail import --help")?;
    if !help.status.success() {
        return Ok(None);
    }
    let started = Instant::now();
    let output = Command::new(binary)
        .arg("import")
        .arg(logs_dir)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--quiet", "--output", "json"])
        .output()
        .context("cannot run opentrail import")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "opentrail import failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout)
        .context("opentrail import did not print a JSON summary")?;
    let number = |key: &str| {
        summary
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    Ok(Some(ImportResult {
        seconds,
        events: number("events_imported"),
        json_bytes: number("json_bytes"),
        bytes_read: number("bytes_read"),
    }))
}

/// Lookup latencies of a server started on `data_dir` after the page cache was dropped;
/// `None` (with a note) when the cache cannot be dropped (not root).
async fn cold_lookups(
    binary: &Path,
    data_dir: &Path,
    log: &Path,
    samples: &lookups::Samples,
    scope: &lookups::Scope,
    per_attribute: usize,
) -> anyhow::Result<Option<std::collections::BTreeMap<&'static str, Vec<f64>>>> {
    if let Err(error) = server::drop_page_cache() {
        eprintln!("opentrail-bench: cold lookups not measured (page cache not dropped: {error:#})");
        return Ok(None);
    }
    let mut server = server::ServerProcess::start_on(binary, data_dir, log).await?;
    let api = api::Api::new(&server.endpoint, &server.host, server.credentials.clone())?;
    let cold = lookups::cold_latencies(&api, samples, scope, per_attribute).await?;
    server.stop()?;
    Ok(Some(cold))
}

/// `--lookups-on DIR`: the lookup phase alone, on a kept data dir, printed as a table.
async fn lookups_only(
    args: &Args,
    binary: &Path,
    data_dir: &Path,
    config: &GeneratorConfig,
    scope: &lookups::Scope,
    clients: usize,
) -> anyhow::Result<()> {
    let context = primary_context(config);
    // The same values a full run samples: the stream is regenerated, not written.
    let mut samples = lookups::Samples::default();
    let mut generator = Generator::new(config.clone());
    let mut line = String::with_capacity(4096);
    let mut index = 0u64;
    while generator.next_into(&mut line).is_some() {
        if is_lookup_sample(index, config.events) {
            samples.add(&line, scope, &context);
        }
        index += 1;
        line.clear();
    }
    let log = data_dir.with_file_name("server-lookups.log");
    let mut server = server::ServerProcess::start_on(binary, data_dir, &log).await?;
    let api = Arc::new(api::Api::new(
        &server.endpoint,
        &server.host,
        server.credentials.clone(),
    )?);
    let per_attribute = args.lookups_per_attribute.unwrap_or(200);
    let latencies = lookups::latencies(&api, &samples, scope, per_attribute).await?;
    let (done, seconds) = lookups::throughput(
        Arc::clone(&api),
        &samples,
        scope,
        clients,
        20_000,
        Duration::from_secs(30),
    )
    .await?;
    // Pages that come back empty would make every figure above meaningless.
    let mut checked_pages = 0usize;
    let mut events_returned = 0usize;
    for attribute in lookups::ATTRIBUTES {
        for value in samples.distinct(attribute, 5) {
            events_returned += lookups::page(&api, scope, attribute, &value).await?.len();
            checked_pages += 1;
        }
    }
    let rss_mb = server.peak_rss_mb();
    server.stop()?;
    drop(server);
    let cold = cold_lookups(
        binary,
        data_dir,
        &data_dir.with_file_name("server-lookups-cold.log"),
        &samples,
        scope,
        per_attribute,
    )
    .await?;
    println!(
        "## opentrail-bench --lookups-on {}: {} events (seed {}), {per_attribute} lookups per attribute\n",
        data_dir.display(),
        config.events,
        args.seed
    );
    println!("| attribute | p50 ms | p99 ms | cold p50 ms | cold p99 ms |\n|---|---|---|---|---|");
    for (attribute, timings) in &latencies {
        let cold_timings = cold.as_ref().and_then(|cold| cold.get(attribute));
        let cold_figure = |fraction: f64| {
            cold_timings.map_or_else(
                || "–".to_owned(),
                |timings| format!("{:.2}", lookups::percentile(timings, fraction)),
            )
        };
        println!(
            "| {attribute} | {:.2} | {:.2} | {} | {} |",
            lookups::percentile(timings, 0.5),
            lookups::percentile(timings, 0.99),
            cold_figure(0.5),
            cold_figure(0.99),
        );
    }
    println!(
        "\nevents per page (5 values per attribute): {:.1}",
        events_returned as f64 / checked_pages.max(1) as f64
    );
    println!(
        "lookups/s with {clients} clients: {:.0}; server peak RSS {}",
        done as f64 / seconds.max(f64::EPSILON),
        rss_mb.map_or_else(|| "unknown".to_owned(), |mb| format!("{mb:.0} MB"))
    );
    Ok(())
}

async fn sealer_totals(api: &api::Api) -> anyhow::Result<report::SealerTotals> {
    let metrics = api.metrics().await?;
    Ok(report::SealerTotals {
        busy_s: api::metric_value(&metrics, "opentrail_store_sealer_busy_seconds"),
        appends_waited_s: api::metric_value(
            &metrics,
            "opentrail_store_appends_waited_for_sealer_seconds",
        ),
    })
}

/// Waits until the server's store has recompressed every sealed segment (its settler,
/// which runs at the lowest CPU priority), so the disk figures are what it keeps. Returns
/// the seconds waited, or `None` when the server reports no settler.
async fn wait_settled(api: &api::Api) -> anyhow::Result<Option<f64>> {
    let started = Instant::now();
    loop {
        let metrics = api.metrics().await?;
        match api::metric_value(&metrics, "opentrail_store_unsettled_segments") {
            None => return Ok(None),
            Some(unsettled) if unsettled > 0.0 => {
                if started.elapsed() > SETTLE_TIMEOUT {
                    bail!("{unsettled} segments still unsettled after {SETTLE_TIMEOUT:?}");
                }
            }
            Some(_) => return Ok(Some(started.elapsed().as_secs_f64())),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

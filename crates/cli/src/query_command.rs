//! `opentrail query`: SQL over the events, with CloudTrail Lake's columns, straight on a
//! data directory no server runs on (the table `events` holds every stored event of every
//! account), or with `--endpoint` through a running server's Lake API (StartQuery over
//! event data stores).

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use opentrail_lake::results::{cell_json, cell_text};
use opentrail_lake::{Lake, LakeOptions, LakeTable, RecordBatch, ScanCounters, TableScope};
use opentrail_server::{Config, ConfigLayer, ServeError};
use opentrail_store::StoreError;

use crate::client::{ApiClient, EndpointCredentials};
use crate::output::{csv_record, render_table};

/// The table name offline queries use.
const EVENTS_TABLE: &str = "events";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// One SELECT over the table `events`, e.g. "SELECT eventName, COUNT(*) AS n FROM
    /// events WHERE userIdentity.userName = 'alice' GROUP BY eventName"; with --endpoint,
    /// over event data stores named by id as in CloudTrail Lake (`FROM <id>`). Columns are
    /// the lower-case record fields; unquoted names ignore case. It may start with a
    /// `--` comment.
    #[arg(allow_hyphen_values = true)]
    sql: String,
    /// Run the query on a running server (StartQuery) instead, with a read or admin key.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    #[command(flatten)]
    credentials: EndpointCredentials,
    /// The data directory of a stopped server [default: ./opentrail-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (its data_dir and retention_days apply).
    #[arg(long, value_name = "FILE", env = "OPENTRAIL_CONFIG")]
    config: Option<PathBuf>,
    /// Output format: an aligned table, a JSON array of objects, or CSV with a header.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    output: QueryFormat,
    /// Memory the query may hold (MiB); sorts, joins and aggregations spill to disk
    /// beyond it, and a query that cannot spill fails with the reason.
    #[arg(long, value_name = "MIB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    memory_limit_mb: u64,
    /// Stop the query after this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Print the query's statistics on stderr as one JSON line: rows, execution time
    /// (planning included, opening the data directory not), events and bytes scanned,
    /// and this process's peak memory.
    #[arg(long)]
    stats: bool,
}

pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    if let Some(endpoint) = args.endpoint.clone() {
        return run_on_server(&args, &endpoint).await;
    }
    let config = Config::load(
        args.config.as_deref(),
        ConfigLayer {
            data_dir: args.data_dir.clone(),
            ..ConfigLayer::default()
        },
    )?;
    let data_dir = config.data_dir.clone();
    let archive_dir = opentrail_server::lake::archive_dir(&config);
    let store =
        tokio::task::spawn_blocking(move || opentrail_server::startup::open_store_only(&config))
            .await
            .context("the store's opening thread failed")?
            .map_err(|error| match error {
                ServeError::Store {
                    source: StoreError::Locked { .. },
                    ..
                } => anyhow::anyhow!(
                    "the data directory {} is in use by a running server; stop it first",
                    data_dir.display()
                ),
                other => anyhow::Error::new(other),
            })?;
    let options = LakeOptions {
        memory_limit_bytes: usize::try_from(args.memory_limit_mb.saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX),
        archive_dir: Some(archive_dir),
        ..LakeOptions::default()
    };
    let lake = Lake::new(store, options)?;
    let tables = [LakeTable {
        name: EVENTS_TABLE.into(),
        scope: TableScope::default(),
    }];
    let started = Instant::now();
    let query = run_query(&lake, &args, &tables);
    let outcome = match args.timeout {
        Some(seconds) => tokio::time::timeout(Duration::from_secs(seconds), query)
            .await
            .unwrap_or_else(|_| Err(opentrail_lake::LakeError::TimedOut { seconds }.into())),
        None => query.await,
    };
    let summary = outcome?;
    if args.stats {
        let statistics = serde_json::json!({
            "rows": summary.rows,
            "execution_ms": started.elapsed().as_secs_f64() * 1e3,
            "events_scanned": summary.events_scanned,
            "bytes_scanned": summary.bytes_scanned,
            "peak_rss_mb": peak_rss_mb(),
        });
        eprintln!("{statistics}");
    } else if !args.quiet && std::io::stderr().is_terminal() {
        eprintln!(
            "{} rows in {:.2} s ({} events scanned)",
            summary.rows,
            started.elapsed().as_secs_f64(),
            summary.events_scanned
        );
    }
    Ok(())
}

/// The query through the Lake API: StartQuery, DescribeQuery until it ends (a spinner with
/// its status meanwhile; Ctrl-C or --timeout cancels it on the server), then every page
/// of GetQueryResults. Values arrive as text, as Lake gives them.
async fn run_on_server(args: &QueryArgs, endpoint: &str) -> anyhow::Result<()> {
    use opentrail_protocol::json11::Operation;
    use serde_json::{Value, json};
    let connection = args.credentials.connection(
        endpoint,
        args.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./opentrail-data")),
    );
    let client = ApiClient::from_connection_args(&connection)?;
    let call = |operation: Operation, request: Value| {
        let client = &client;
        async move { client.call_json11(&operation.target(), &request).await }
    };
    let started = call(Operation::StartQuery, json!({ "QueryStatement": args.sql })).await?;
    let query_id = started["QueryId"]
        .as_str()
        .context("StartQuery answered no QueryId")?
        .to_owned();
    let progress = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    });
    let deadline = args
        .timeout
        .map(|seconds| Instant::now() + Duration::from_secs(seconds));
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let described = loop {
        let described = call(Operation::DescribeQuery, json!({ "QueryId": query_id })).await?;
        let status = described["QueryStatus"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !matches!(status.as_str(), "QUEUED" | "RUNNING") {
            break described;
        }
        if let Some(bar) = &progress {
            let scanned = described["QueryStatistics"]["EventsScanned"]
                .as_u64()
                .unwrap_or(0);
            bar.set_message(format!("{status} {query_id}, {scanned} events scanned"));
            bar.tick();
        }
        let stop = tokio::select! {
            _ = &mut interrupted => Some("interrupted"),
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                deadline.filter(|deadline| Instant::now() >= *deadline).map(|_| "timed out")
            }
        };
        if let Some(reason) = stop {
            // Best effort: the query may have ended in the meantime.
            let _ = call(Operation::CancelQuery, json!({ "QueryId": query_id })).await;
            anyhow::bail!("query {query_id} {reason}; it was cancelled on the server");
        }
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let status = described["QueryStatus"].as_str().unwrap_or_default();
    if status != "FINISHED" {
        let message = described["ErrorMessage"]
            .as_str()
            .unwrap_or("no reason given");
        anyhow::bail!("query {query_id} ended {status}: {message}");
    }
    let mut printer: Option<Printer> = None;
    let mut next_token: Option<String> = None;
    loop {
        let mut request = json!({ "QueryId": query_id, "MaxQueryResults": 1000 });
        if let Some(token) = &next_token {
            request["NextToken"] = json!(token);
        }
        let page = call(Operation::GetQueryResults, request).await?;
        for row in page["QueryResultRows"].as_array().into_iter().flatten() {
            let cells: Vec<(String, Value)> = row
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|cell| cell.as_object()?.iter().next())
                .map(|(column, value)| (column.clone(), value.clone()))
                .collect();
            if printer.is_none() {
                let header = cells.iter().map(|(column, _)| column.clone()).collect();
                printer = Some(Printer::new(args.output, header)?);
            }
            if let Some(printer) = printer.as_mut() {
                printer.add_row(cells.into_iter().map(|(_, value)| value).collect())?;
            }
        }
        next_token = page["NextToken"].as_str().map(str::to_owned);
        if next_token.is_none() {
            break;
        }
    }
    let rows = match printer {
        Some(printer) => printer.finish()?,
        // No rows: Lake's results carry no column names then.
        None => Printer::new(args.output, Vec::new())?.finish()?,
    };
    let statistics = &described["QueryStatistics"];
    if args.stats {
        let line = json!({
            "rows": rows,
            "execution_ms": statistics["ExecutionTimeInMillis"],
            "events_scanned": statistics["EventsScanned"],
            "events_matched": statistics["EventsMatched"],
            "bytes_scanned": statistics["BytesScanned"],
            "query_id": query_id,
        });
        eprintln!("{line}");
    } else if !args.quiet && std::io::stderr().is_terminal() {
        eprintln!(
            "{rows} rows in {} ms ({} events scanned), query {query_id}",
            statistics["ExecutionTimeInMillis"], statistics["EventsScanned"]
        );
    }
    Ok(())
}

struct QuerySummary {
    rows: u64,
    events_scanned: u64,
    bytes_scanned: u64,
}

/// This process's peak resident memory (VmHWM), when Linux tells it.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn run_query(
    lake: &Lake,
    args: &QueryArgs,
    tables: &[LakeTable],
) -> anyhow::Result<QuerySummary> {
    let mut run = lake.start(&args.sql, tables).await?;
    let progress = (!args.quiet && std::io::stderr().is_terminal())
        .then(|| progress_spinner(Arc::clone(&run.counters)));
    let mut printer = Printer::new(args.output, run.columns.clone())?;
    while let Some(batch) = run.stream.next().await {
        let batch = batch.map_err(|error| lake.classify(error))?;
        printer.add(&batch)?;
    }
    if let Some((bar, ticker)) = progress {
        ticker.abort();
        bar.finish_and_clear();
    }
    let rows = printer.finish()?;
    Ok(QuerySummary {
        rows,
        events_scanned: run.counters.events_scanned.load(Ordering::Relaxed),
        bytes_scanned: run.counters.bytes_scanned.load(Ordering::Relaxed),
    })
}

/// A spinner with the events scanned so far, redrawn until the query ends.
fn progress_spinner(counters: Arc<ScanCounters>) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let ticking = bar.clone();
    let ticker = tokio::spawn(async move {
        loop {
            let scanned = counters.events_scanned.load(Ordering::Relaxed);
            ticking.set_message(format!("{scanned} events scanned"));
            ticking.tick();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (bar, ticker)
}

/// Writes rows as they come (JSON, CSV) or once all are known (the table's widths).
struct Printer {
    format: QueryFormat,
    out: std::io::BufWriter<std::io::Stdout>,
    header: Vec<String>,
    table_rows: Vec<Vec<String>>,
    rows: u64,
}

impl Printer {
    fn new(format: QueryFormat, header: Vec<String>) -> anyhow::Result<Printer> {
        let mut out = std::io::BufWriter::new(std::io::stdout());
        match format {
            QueryFormat::Csv => out.write_all(csv_record(&header).as_bytes())?,
            QueryFormat::Json => out.write_all(b"[")?,
            QueryFormat::Table => {}
        }
        Ok(Printer {
            format,
            out,
            header,
            table_rows: Vec::new(),
            rows: 0,
        })
    }

    fn add(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        for row in 0..batch.num_rows() {
            let cells = batch
                .columns()
                .iter()
                .map(|column| match self.format {
                    QueryFormat::Json => cell_json(column, row),
                    QueryFormat::Table | QueryFormat::Csv => Ok(serde_json::Value::String(
                        cell_text(column, row)?.unwrap_or_default(),
                    )),
                })
                .collect::<Result<Vec<_>, opentrail_lake::LakeError>>()?;
            self.add_row(cells)?;
        }
        Ok(())
    }

    /// One row: JSON values for `--output json`, strings for the table and CSV.
    fn add_row(&mut self, cells: Vec<serde_json::Value>) -> anyhow::Result<()> {
        let text = |cell: serde_json::Value| match cell {
            serde_json::Value::String(text) => text,
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        match self.format {
            QueryFormat::Csv => {
                let cells: Vec<String> = cells.into_iter().map(text).collect();
                self.out.write_all(csv_record(&cells).as_bytes())?;
            }
            QueryFormat::Table => self.table_rows.push(cells.into_iter().map(text).collect()),
            QueryFormat::Json => {
                // Written member by member: the columns keep the query's order.
                self.out
                    .write_all(if self.rows > 0 { b",\n{" } else { b"\n{" })?;
                for (index, (name, cell)) in self.header.iter().zip(&cells).enumerate() {
                    if index > 0 {
                        self.out.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut self.out, name)?;
                    self.out.write_all(b":")?;
                    serde_json::to_writer(&mut self.out, cell)?;
                }
                self.out.write_all(b"}")?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<u64> {
        match self.format {
            QueryFormat::Table => {
                let titles: Vec<&str> = self.header.iter().map(String::as_str).collect();
                self.out
                    .write_all(render_table(&titles, &self.table_rows).as_bytes())?;
            }
            QueryFormat::Json if self.rows == 0 => self.out.write_all(b"]\n")?,
            QueryFormat::Json => self.out.write_all(b"\n]\n")?,
            QueryFormat::Csv => {}
        }
        self.out.flush()?;
        Ok(self.rows)
    }
}

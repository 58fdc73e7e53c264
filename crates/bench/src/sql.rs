//! SQL (issue 14): the same group-bys through `opentrail query` on the stopped server's
//! data directory, and through DuckDB over the gz log files and over its own table
//! (`duckdb_lookups.py`), with the rows compared.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One question, as OpenTrail's SQL and as DuckDB's over `{source}` (the script's raw
/// records: `eventTime` is ISO 8601 text there, a timestamp in OpenTrail).
#[derive(Debug, Clone, Serialize)]
pub struct SqlQuery {
    pub name: &'static str,
    pub opentrail: String,
    pub duckdb: String,
}

/// The group-by over every event, and errors by eventSource over one day.
pub fn queries(day: &str, next_day: &str) -> Vec<SqlQuery> {
    vec![
        SqlQuery {
            name: "groupby",
            opentrail: "SELECT eventName, COUNT(*) AS n FROM events \
                        GROUP BY eventName ORDER BY n DESC, eventName"
                .into(),
            duckdb: "SELECT eventName, COUNT(*) AS n FROM {source} \
                     GROUP BY eventName ORDER BY n DESC, eventName"
                .into(),
        },
        SqlQuery {
            name: "filtered_groupby",
            opentrail: format!(
                "SELECT eventSource, COUNT(*) AS n FROM events WHERE errorCode IS NOT NULL \
                 AND eventTime >= '{day} 00:00:00' AND eventTime < '{next_day} 00:00:00' \
                 GROUP BY eventSource ORDER BY n DESC, eventSource"
            ),
            duckdb: format!(
                "SELECT eventSource, COUNT(*) AS n FROM {{source}} WHERE errorCode IS NOT NULL \
                 AND eventTime >= '{day}T00:00:00Z' AND eventTime < '{next_day}T00:00:00Z' \
                 GROUP BY eventSource ORDER BY n DESC, eventSource"
            ),
        },
    ]
}

/// One query through `opentrail query`, run `repeats` times.
#[derive(Debug, Clone, Serialize)]
pub struct OpenTrailSql {
    pub name: &'static str,
    /// Execution time of each run as the CLI reports it (the data directory's opening
    /// excluded, planning included).
    pub execution_ms: Vec<f64>,
    pub events_scanned: u64,
    pub peak_rss_mb: Option<f64>,
    pub rows: Vec<Vec<String>>,
}

pub fn run_opentrail(
    binary: &Path,
    data_dir: &Path,
    queries: &[SqlQuery],
    repeats: usize,
) -> anyhow::Result<Vec<OpenTrailSql>> {
    let mut results = Vec::new();
    for query in queries {
        let mut result = OpenTrailSql {
            name: query.name,
            execution_ms: Vec::new(),
            events_scanned: 0,
            peak_rss_mb: None,
            rows: Vec::new(),
        };
        for _ in 0..repeats.max(1) {
            let output = Command::new(binary)
                .args([
                    "query",
                    "--quiet",
                    "--stats",
                    "--output",
                    "json",
                    "--data-dir",
                ])
                .arg(data_dir)
                .arg(&query.opentrail)
                .env_remove("OPENTRAIL_CONFIG")
                .env_remove("OPENTRAIL_DATA_DIR")
                .stdin(Stdio::null())
                .output()
                .context("cannot run opentrail query")?;
            if !output.status.success() {
                bail!(
                    "opentrail query {} failed: {}",
                    query.name,
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            let statistics: Value = stderr
                .lines()
                .rev()
                .find_map(|line| serde_json::from_str(line).ok())
                .context("opentrail query printed no statistics")?;
            result
                .execution_ms
                .push(statistics["execution_ms"].as_f64().unwrap_or(f64::NAN));
            result.events_scanned = statistics["events_scanned"].as_u64().unwrap_or(0);
            let rss = statistics["peak_rss_mb"].as_f64();
            result.peak_rss_mb = crate::report::higher(result.peak_rss_mb, rss);
            let rows: Vec<serde_json::Map<String, Value>> =
                serde_json::from_slice(&output.stdout).context("opentrail query's JSON")?;
            result.rows = rows
                .iter()
                .map(|row| row.values().map(cell_text).collect())
                .collect();
        }
        eprintln!(
            "opentrail-bench: sql {}: {:.0} ms (first run), {} events scanned",
            query.name,
            result.execution_ms.first().copied().unwrap_or(f64::NAN),
            result.events_scanned
        );
        results.push(result);
    }
    Ok(results)
}

/// DuckDB's timings and rows of one query (from the script).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DuckDbSql {
    pub name: String,
    pub gz_ms: f64,
    pub native_ms: Vec<f64>,
    /// `opentrail query`'s execution time right after each native run, when the harness
    /// asked the script to alternate.
    #[serde(default)]
    pub opentrail_ms: Vec<f64>,
    pub rows: Vec<Vec<String>>,
}

fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// One query through the running server's Lake API (StartQuery → DescribeQuery until it
/// ends), run `repeats` times, with the server's resident memory sampled meanwhile.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSql {
    pub name: &'static str,
    /// DescribeQuery's `ExecutionTimeInMillis` of each run.
    pub execution_ms: Vec<f64>,
    /// The events the group-by counted (its `n` column summed): the ingested ones of the
    /// admin's account, plus the server's record of its own API calls.
    pub events_counted: u64,
    /// The highest VmRSS of the server seen while the query ran.
    pub server_rss_mb: Option<f64>,
}

/// How often DescribeQuery is polled and the server's memory sampled.
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

pub async fn run_server(
    api: &crate::api::Api,
    region: &str,
    server_pid: u32,
    queries: &[SqlQuery],
    repeats: usize,
) -> anyhow::Result<Vec<ServerSql>> {
    let created = api
        .call(
            region,
            "CreateEventDataStore",
            &serde_json::json!({"Name": "opentrail-bench", "RetentionPeriod": 3653}),
        )
        .await?;
    let store_id = created["EventDataStoreArn"]
        .as_str()
        .and_then(|arn| arn.rsplit('/').next())
        .context("CreateEventDataStore answered no EventDataStoreArn")?
        .to_owned();
    let mut results = Vec::new();
    for query in queries {
        let statement = query
            .opentrail
            .replace("FROM events", &format!("FROM {store_id}"));
        let mut result = ServerSql {
            name: query.name,
            execution_ms: Vec::new(),
            events_counted: 0,
            server_rss_mb: None,
        };
        for _ in 0..repeats.max(1) {
            let started = api
                .call(
                    region,
                    "StartQuery",
                    &serde_json::json!({"QueryStatement": statement}),
                )
                .await?;
            let query_id = started["QueryId"]
                .as_str()
                .context("StartQuery answered no QueryId")?
                .to_owned();
            let mut rss_kb_max = 0;
            let described = loop {
                if let Some(rss_kb) = crate::server::rss_kb(server_pid) {
                    rss_kb_max = rss_kb_max.max(rss_kb);
                }
                let described = api
                    .call(
                        region,
                        "DescribeQuery",
                        &serde_json::json!({"QueryId": query_id}),
                    )
                    .await?;
                match described["QueryStatus"].as_str() {
                    Some("QUEUED" | "RUNNING") => tokio::time::sleep(POLL_INTERVAL).await,
                    Some("FINISHED") => break described,
                    other => bail!(
                        "the server's query {} ended {other:?}: {}",
                        query.name,
                        described["ErrorMessage"]
                    ),
                }
            };
            result.execution_ms.push(
                described["QueryStatistics"]["ExecutionTimeInMillis"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
            );
            result.server_rss_mb =
                crate::report::higher(result.server_rss_mb, Some(rss_kb_max as f64 / 1024.0));
            result.events_counted = counted_events(api, region, &query_id).await?;
        }
        eprintln!(
            "opentrail-bench: sql {} through the server: {:.0} ms (first run), {} events counted",
            query.name,
            result.execution_ms.first().copied().unwrap_or(f64::NAN),
            result.events_counted
        );
        results.push(result);
    }
    Ok(results)
}

/// The sum of the `n` column over every page of a query's results.
async fn counted_events(
    api: &crate::api::Api,
    region: &str,
    query_id: &str,
) -> anyhow::Result<u64> {
    let mut counted = 0;
    let mut next_token: Option<String> = None;
    loop {
        let mut request = serde_json::json!({"QueryId": query_id});
        if let Some(token) = &next_token {
            request["NextToken"] = token.clone().into();
        }
        let page = api.call(region, "GetQueryResults", &request).await?;
        for row in page["QueryResultRows"].as_array().into_iter().flatten() {
            for cell in row.as_array().into_iter().flatten() {
                if let Some(n) = cell["n"].as_str() {
                    counted += n.parse::<u64>().context("a count that is not a number")?;
                }
            }
        }
        match page["NextToken"].as_str() {
            Some(token) => next_token = Some(token.to_owned()),
            None => return Ok(counted),
        }
    }
}

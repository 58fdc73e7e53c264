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
            result.peak_rss_mb = match (result.peak_rss_mb, rss) {
                (Some(before), Some(now)) => Some(before.max(now)),
                (before, now) => before.or(now),
            };
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
    pub rows: Vec<Vec<String>>,
}

fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

//! The DuckDB baseline: the Python package in a venv the harness sets up itself, running
//! the same lookups as SQL over `read_json` of the gz log files and over a native table.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// The DuckDB release the baseline is measured with (pinned: results must be comparable
/// across runs).
pub const DUCKDB_VERSION: &str = "2.0.1";
const SCRIPT: &str = include_str!("duckdb_lookups.py");

/// `OPENTRAIL_BENCH_VENV`, else `~/.cache/opentrail-bench-venv`.
pub fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OPENTRAIL_BENCH_VENV") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("opentrail-bench-venv")
}

/// Creates the venv and installs DuckDB unless it is already there; returns its python.
pub fn ensure_venv(venv: &Path) -> anyhow::Result<PathBuf> {
    let python = venv.join("bin").join("python");
    let has_duckdb = |python: &Path| {
        Command::new(python)
            .arg("-c")
            .arg(format!(
                "import duckdb, sys; sys.exit(0 if duckdb.__version__ == '{DUCKDB_VERSION}' else 1)"
            ))
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if python.exists() && has_duckdb(&python) {
        return Ok(python);
    }
    eprintln!(
        "opentrail-bench: setting up {} with duckdb=={DUCKDB_VERSION}",
        venv.display()
    );
    if !python.exists() {
        let status = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(venv)
            .status()
            .context("cannot run python3 -m venv (is Python 3 installed?)")?;
        if !status.success() {
            bail!("python3 -m venv {} failed ({status})", venv.display());
        }
    }
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(format!("duckdb=={DUCKDB_VERSION}"))
        .status()
        .context("cannot run pip")?;
    if !status.success() || !has_duckdb(&python) {
        bail!(
            "cannot install duckdb=={DUCKDB_VERSION} into {}",
            venv.display()
        );
    }
    Ok(python)
}

#[derive(Debug, Deserialize)]
pub struct DuckDbResults {
    pub duckdb_version: String,
    pub native_load_ms: f64,
    pub native_rows: u64,
    pub queries: Vec<QueryResult>,
    #[serde(default)]
    pub sql: Vec<crate::sql::DuckDbSql>,
}

#[derive(Debug, Deserialize)]
pub struct QueryResult {
    pub attribute: String,
    pub value: String,
    /// `None` when the query did not run over the gz files (see `--quick`).
    pub gz_ms: Option<f64>,
    pub gz_ids: Option<Vec<String>>,
    pub native_ms: Vec<f64>,
    pub native_ids: Vec<String>,
    pub boundary: Option<String>,
    /// Every match at or after `boundary`: (eventID, eventTime).
    pub candidates: Vec<(String, String)>,
}

/// `opentrail query` for the script to run after each of DuckDB's native SQL runs.
pub struct AlternateWith<'a> {
    pub binary: &'a Path,
    /// A stopped server's data dir holding the events DuckDB reads.
    pub data_dir: &'a Path,
}

/// Runs the script on `logs_dir`; `queries` are (attribute, value, also over the gz files).
#[allow(clippy::too_many_arguments)] // Each is one field of the script's input.
pub fn run(
    python: &Path,
    work_dir: &Path,
    logs_dir: &Path,
    region: &str,
    start: &str,
    end: &str,
    limit: u32,
    native_repeats: usize,
    queries: &[(String, String, bool)],
    sql: &[crate::sql::SqlQuery],
    alternate_with: Option<AlternateWith<'_>>,
) -> anyhow::Result<DuckDbResults> {
    let script = work_dir.join("duckdb_lookups.py");
    std::fs::write(&script, SCRIPT)
        .with_context(|| format!("cannot write {}", script.display()))?;
    let spec = serde_json::json!({
        "logs_glob": format!("{}/AWSLogs/*/CloudTrail/*/*/*/*/*.json.gz", logs_dir.display()),
        "region": region,
        "start": start,
        "end": end,
        "limit": limit,
        "native_repeats": native_repeats,
        "queries": queries.iter().map(|(attribute, value, gz)| serde_json::json!({"attribute": attribute, "value": value, "gz": gz})).collect::<Vec<_>>(),
        "sql": sql.iter().map(|query| serde_json::json!({"name": query.name, "duckdb": query.duckdb, "opentrail": query.opentrail})).collect::<Vec<_>>(),
        "opentrail": alternate_with.map(|opentrail| serde_json::json!({"binary": opentrail.binary, "data_dir": opentrail.data_dir})),
    });
    let spec_path = work_dir.join("duckdb_queries.json");
    let results_path = work_dir.join("duckdb_results.json");
    std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec)?)
        .with_context(|| format!("cannot write {}", spec_path.display()))?;
    let status = Command::new(python)
        .arg(&script)
        .arg(&spec_path)
        .arg(&results_path)
        .status()
        .context("cannot run the DuckDB script")?;
    if !status.success() {
        bail!("the DuckDB script failed ({status})");
    }
    let text = std::fs::read(&results_path)
        .with_context(|| format!("cannot read {}", results_path.display()))?;
    serde_json::from_slice(&text).context("the DuckDB results are not the expected JSON")
}

/// Whether two pages hold the same events: the same number, every one a real match at or
/// after the page's oldest second, and every match newer than that second in both. (Within
/// the oldest second, engines may legitimately pick different events of a tie.)
pub fn same_page(query: &QueryResult, ours: &[String], theirs: &[String]) -> Result<(), String> {
    if ours.len() != theirs.len() {
        return Err(format!("{} events against {}", ours.len(), theirs.len()));
    }
    let candidates: HashSet<&str> = query.candidates.iter().map(|(id, _)| id.as_str()).collect();
    for id in ours.iter().chain(theirs) {
        if !candidates.contains(id.as_str()) {
            return Err(format!("{id} is not among the newest matches"));
        }
    }
    let Some(boundary) = &query.boundary else {
        return Ok(());
    };
    let ours: HashSet<&str> = ours.iter().map(String::as_str).collect();
    let theirs: HashSet<&str> = theirs.iter().map(String::as_str).collect();
    for (id, time) in &query.candidates {
        if time > boundary && !(ours.contains(id.as_str()) && theirs.contains(id.as_str())) {
            return Err(format!("{id} ({time}) is missing from one page"));
        }
    }
    Ok(())
}

/// Median of per-query figures, grouped by attribute.
pub fn by_attribute(
    queries: &[QueryResult],
    figure: impl Fn(&QueryResult) -> Vec<f64>,
) -> BTreeMap<String, Vec<f64>> {
    let mut grouped: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for query in queries {
        grouped
            .entry(query.attribute.clone())
            .or_default()
            .extend(figure(query));
    }
    grouped
}

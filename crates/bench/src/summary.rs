//! `--summarize R1.json R2.json …`: the median of several runs' reports, figure by figure.
//!
//! BENCHMARKS.md publishes medians of at least three runs because one run on a shared
//! machine can be unlucky in any phase. Each number in the reports (at any depth, so the
//! per-attribute maps too) becomes the median of that number over the runs that have it;
//! text, booleans and lists come from the first report. Ratios are the median of each
//! run's own ratio, not a ratio of medians: each run compares its peers under the same
//! load.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};

/// The figures the markdown table shows first, in this order; the rest follow by name.
const HEADLINE: [&str; 16] = [
    "ingest_events_per_s",
    "parse_ceiling_events_per_s",
    "ingest_fraction_of_parse_ceiling",
    "freshness_p50_ms",
    "freshness_p99_ms",
    "lookup_p99_ms_max",
    "lookups_per_s",
    "raw_bytes_per_event",
    "bytes_per_event_on_disk",
    "disk_compression_ratio",
    "server_rss_peak_mb",
    "import_mb_per_s",
    "lookup_speedup_vs_duckdb_gz",
    "lookup_speedup_vs_duckdb_native",
    "rules_ingest_cost_fraction",
    "alert_latency_p99_ms",
];

/// Keys (dotted paths) that describe the run or its input rather than measure it.
const NOT_FIGURES: [&str; 18] = [
    "events",
    "clients",
    "batch_events",
    "seed",
    "runs",
    "machine",
    "lookups_timed_per_attribute",
    "lookups_concurrent",
    "duckdb_queries",
    "log_files",
    "log_files_compressed_bytes",
    "log_files_raw_bytes",
    "parse.threads",
    "parse.sample_events",
    "rules_loaded",
    "rules_ingest_events",
    "rules_ingest_repeats",
    "alert_latency_alerts",
];

pub struct Summary {
    /// The reports' shape, every number replaced by its median, plus `runs` and `reports`.
    pub medians: Value,
    pub markdown: String,
}

pub fn summarize(paths: &[PathBuf]) -> anyhow::Result<Summary> {
    if paths.len() < 2 {
        bail!("--summarize needs at least two reports");
    }
    let reports = paths
        .iter()
        .map(|path| read_report(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    check_comparable(paths, &reports)?;
    let mut medians = median_of(&reports.iter().collect::<Vec<_>>());
    if let Value::Object(object) = &mut medians {
        object.insert("runs".to_owned(), Value::from(reports.len()));
        object.insert(
            "reports".to_owned(),
            paths
                .iter()
                .map(|path| Value::from(path.display().to_string()))
                .collect(),
        );
    }
    let markdown = markdown(paths, &reports, &medians);
    Ok(Summary { medians, markdown })
}

fn read_report(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the report {}", path.display()))?;
    let report: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON report", path.display()))?;
    if !report.is_object() {
        bail!("{} is not an opentrail-bench report", path.display());
    }
    Ok(report)
}

/// Medians only mean something over runs of the same workload.
fn check_comparable(paths: &[PathBuf], reports: &[Value]) -> anyhow::Result<()> {
    for key in ["events", "clients", "batch_events", "seed", "quick"] {
        let first = &reports[0][key];
        for (path, report) in paths.iter().zip(reports).skip(1) {
            if &report[key] != first {
                bail!(
                    "{} has {key} = {}, but {} has {first}: medians need runs of the same workload",
                    path.display(),
                    report[key],
                    paths[0].display()
                );
            }
        }
    }
    Ok(())
}

fn median_of(values: &[&Value]) -> Value {
    match values.first() {
        Some(Value::Number(_)) => {
            let mut numbers: Vec<f64> = values.iter().filter_map(|value| value.as_f64()).collect();
            numbers.sort_by(f64::total_cmp);
            let middle = numbers.len() / 2;
            let median = if numbers.len().is_multiple_of(2) {
                (numbers[middle - 1] + numbers[middle]) / 2.0
            } else {
                numbers[middle]
            };
            serde_json::Number::from_f64(median).map_or(Value::Null, Value::Number)
        }
        Some(Value::Object(first)) => {
            let mut object = Map::new();
            for key in first.keys() {
                let members: Vec<&Value> = values
                    .iter()
                    .filter_map(|value| value.get(key))
                    .filter(|member| !member.is_null())
                    .collect();
                let median = if members.is_empty() {
                    Value::Null
                } else {
                    median_of(&members)
                };
                object.insert(key.clone(), median);
            }
            Value::Object(object)
        }
        Some(other) => (*other).clone(),
        None => Value::Null,
    }
}

/// One row per figure: the median, then each run's value.
fn markdown(paths: &[PathBuf], reports: &[Value], medians: &Value) -> String {
    let mut rows: BTreeMap<String, (f64, Vec<Option<f64>>)> = BTreeMap::new();
    collect_rows("", medians, reports, &mut rows);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## opentrail-bench: medians of {} runs ({} events, {} clients)\n",
        reports.len(),
        reports[0]["events"],
        reports[0]["clients"]
    );
    for (run, path) in paths.iter().enumerate() {
        let _ = writeln!(out, "- run {}: {}", run + 1, path.display());
    }
    let _ = writeln!(out, "\n| figure | median | each run |\n|---|---|---|");
    let headline = HEADLINE.iter().filter_map(|key| rows.get_key_value(*key));
    let rest = rows
        .iter()
        .filter(|(key, _)| !HEADLINE.contains(&key.as_str()));
    for (key, (median, each)) in headline.chain(rest) {
        let each: Vec<String> = each
            .iter()
            .map(|value| value.map_or("–".to_owned(), format_figure))
            .collect();
        let _ = writeln!(
            out,
            "| {key} | {} | {} |",
            format_figure(*median),
            each.join(" · ")
        );
    }
    out
}

fn collect_rows(
    prefix: &str,
    medians: &Value,
    reports: &[Value],
    rows: &mut BTreeMap<String, (f64, Vec<Option<f64>>)>,
) {
    let Value::Object(object) = medians else {
        return;
    };
    for (key, median) in object {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if NOT_FIGURES.contains(&path.as_str()) {
            continue;
        }
        match median {
            Value::Number(number) => {
                let each = reports
                    .iter()
                    .map(|report| pointer(report, &path).and_then(Value::as_f64))
                    .collect();
                rows.insert(path, (number.as_f64().unwrap_or(f64::NAN), each));
            }
            Value::Object(_) => collect_rows(&path, median, reports, rows),
            _ => {}
        }
    }
}

fn pointer<'a>(report: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .try_fold(report, |value, key| value.get(key))
}

/// Enough digits to compare runs, no more.
fn format_figure(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1000.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 0.1 {
        format!("{value:.2}")
    } else {
        format!("{value:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(ingest: f64, p99: f64, gz: Option<f64>) -> Value {
        let mut value = json!({
            "events": 1000, "clients": 8, "batch_events": 500, "seed": 1, "quick": false,
            "binary": "a", "ingest_events_per_s": ingest, "machine": {"cpus": 2},
            "lookup_p99_ms": {"EventId": p99, "Username": p99 * 2.0},
            "duckdb_gz_lookup_p50_ms": {},
            "result_mismatches": [],
        });
        if let Some(gz) = gz {
            value["duckdb_gz_lookup_p50_ms"]["Username"] = json!(gz);
        }
        value
    }

    fn write(dir: &Path, name: &str, value: &Value) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, value.to_string()).expect("write report");
        path
    }

    #[test]
    fn every_number_becomes_the_median_of_the_runs_that_have_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = vec![
            write(dir.path(), "1.json", &report(100.0, 3.0, Some(10.0))),
            write(dir.path(), "2.json", &report(300.0, 1.0, None)),
            write(dir.path(), "3.json", &report(200.0, 9.0, Some(30.0))),
        ];
        let summary = summarize(&paths).expect("summary");
        let medians = &summary.medians;
        assert_eq!(medians["ingest_events_per_s"], json!(200.0));
        assert_eq!(medians["lookup_p99_ms"]["EventId"], json!(3.0));
        assert_eq!(medians["lookup_p99_ms"]["Username"], json!(6.0));
        // Two runs have it: the mean of the middle two.
        assert_eq!(medians["duckdb_gz_lookup_p50_ms"]["Username"], json!(20.0));
        assert_eq!(medians["binary"], json!("a"));
        assert_eq!(medians["runs"], json!(3));
        assert!(
            summary
                .markdown
                .contains("| ingest_events_per_s | 200.0 | 100.0 · 300.0 · 200.0 |"),
            "{}",
            summary.markdown
        );
        assert!(
            summary
                .markdown
                .contains("| lookup_p99_ms.Username | 6.00 | 6.00 · 2.00 · 18.0 |"),
            "{}",
            summary.markdown
        );
        for not_a_figure in ["| events |", "| machine.cpus |"] {
            assert!(
                !summary.markdown.contains(not_a_figure),
                "{not_a_figure} describes the run: {}",
                summary.markdown
            );
        }
    }

    #[test]
    fn runs_of_different_workloads_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut other = report(100.0, 1.0, None);
        other["events"] = json!(2000);
        let paths = vec![
            write(dir.path(), "1.json", &report(100.0, 1.0, None)),
            write(dir.path(), "2.json", &other),
        ];
        let error = summarize(&paths).err().expect("refused").to_string();
        assert!(error.contains("events"), "{error}");
        assert!(
            summarize(&paths[..1]).is_err(),
            "one report is not a median"
        );
    }
}

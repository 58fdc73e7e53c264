//! The harness end to end on a small run: the real `opentrail` binary (the one built next
//! to this bench), no DuckDB. Checks what a user of the report relies on, never timings.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, ensure};
use serde_json::Value;

const EVENTS: u64 = 3_000;
/// Batches of the alert latency phase; each carries two events that fire a rule.
const LATENCY_BATCHES: u64 = 20;

fn opentrail_binary() -> anyhow::Result<PathBuf> {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_opentrail-bench"));
    let binary = bench.with_file_name("opentrail");
    ensure!(
        binary.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`)",
        binary.display()
    );
    Ok(binary)
}

#[test]
fn a_small_run_reports_every_figure_the_issue_names() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let report_path = work.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_opentrail-bench"))
        .args(["--quick", "--skip-duckdb", "--clients", "2"])
        .args(["--events", &EVENTS.to_string()])
        .args(["--lookups-per-attribute", "5"])
        .args(["--rules-repeats", "2"])
        .args(["--alert-latency-batches", &LATENCY_BATCHES.to_string()])
        .arg("--binary")
        .arg(opentrail_binary()?)
        .arg("--work-dir")
        .arg(work.path().join("run"))
        .arg("--out")
        .arg(&report_path)
        .output()
        .context("run opentrail-bench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "opentrail-bench failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        stdout.contains("| durable ingest"),
        "no markdown table:\n{stdout}"
    );

    let report: Value = serde_json::from_slice(&std::fs::read(&report_path)?)?;
    ensure!(report["events"] == EVENTS, "events: {}", report["events"]);
    for key in [
        "ingest_events_per_s",
        "parse_ceiling_events_per_s",
        "freshness_p99_ms",
        "lookups_per_s",
        "bytes_per_event_on_disk",
        "raw_bytes_per_event",
        "server_rss_peak_mb",
        "ingest_fraction_of_parse_ceiling",
        "disk_compression_ratio",
        "import_mb_per_s",
    ] {
        let value = report[key]
            .as_f64()
            .with_context(|| format!("{key} is not a number: {}", report[key]))?;
        ensure!(value > 0.0, "{key} = {value}");
    }
    ensure!(
        report["ingest_fraction_of_own_parse"]
            .as_f64()
            .is_some_and(|v| v > 0.0),
        "ingest_fraction_of_own_parse: {}",
        report["ingest_fraction_of_own_parse"]
    );
    // Dropping the page cache needs root (as CI runs); elsewhere the figure is null.
    let may_drop_caches = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")
        .is_ok();
    if may_drop_caches {
        let cold = report["lookup_p99_ms_cold_max"].as_f64();
        ensure!(
            cold.is_some_and(|v| v > 0.0),
            "lookup_p99_ms_cold_max: {cold:?}"
        );
    }
    check_detections(&report, &stdout)?;
    for key in ["lookup_p50_ms", "lookup_p99_ms"] {
        let per_attribute = report[key]
            .as_object()
            .with_context(|| format!("{key} is not an object"))?;
        for attribute in opentrail_protocol::lookup_events::LOOKUP_ATTRIBUTE_KEYS {
            ensure!(
                per_attribute
                    .get(attribute)
                    .and_then(Value::as_f64)
                    .is_some(),
                "{key} lacks {attribute}: {per_attribute:?}"
            );
        }
    }
    Ok(())
}

/// The detections phase: 50 rules in force, real alerts written while the comparison
/// ingested, both sides run alternately, and every timed alert reached the webhook.
fn check_detections(report: &Value, stdout: &str) -> anyhow::Result<()> {
    ensure!(
        report["rules_loaded"] == 50,
        "rules_loaded: {}",
        report["rules_loaded"]
    );
    ensure!(
        report["rules_alerts_fired"]
            .as_u64()
            .is_some_and(|alerts| alerts > 0),
        "no alert fired on the generated events: {}",
        report["rules_alerts_fired"]
    );
    let runs = report["rules_runs"]
        .as_array()
        .context("rules_runs is not a list")?;
    let sides: Vec<bool> = runs
        .iter()
        .map(|run| run["rules"].as_bool().unwrap_or(false))
        .collect();
    ensure!(
        sides == [false, true, true, false],
        "the servers without and with rules did not alternate: {sides:?}"
    );
    for run in runs.iter().filter(|run| run["rules"] == true) {
        ensure!(
            run["events"] == EVENTS,
            "a server with rules ingested {} events",
            run["events"]
        );
    }
    for key in [
        "rules_ingest_cost_fraction",
        "rules_ingest_cost_fraction_matched",
        "alert_latency_p50_ms",
        "alert_latency_p99_ms",
    ] {
        ensure!(
            report[key].as_f64().is_some(),
            "{key} is not a number: {}",
            report[key]
        );
    }
    ensure!(
        report["alert_latency_alerts"] == 2 * LATENCY_BATCHES,
        "alert_latency_alerts: {}",
        report["alert_latency_alerts"]
    );
    ensure!(
        report["alert_latency_missed"] == 0,
        "alerts never reached the webhook: {}",
        report["alert_latency_missed"]
    );
    ensure!(
        stdout.contains("| alert latency, ingest ack → received by a local webhook | p50"),
        "no alert latency row:\n{stdout}"
    );
    Ok(())
}

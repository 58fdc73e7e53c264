//! The run's figures: the JSON report (`--out`) and the markdown table on stdout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use opentrail_generator::LogFilesSummary;
use serde::Serialize;

use crate::ImportResult;
use crate::corpus::Shape;
use crate::detections::{CostRun, DetectionsOutcome};
use crate::duckdb::{self, DuckDbResults};
use crate::ingest::IngestOutcome;
use crate::lookups::{ATTRIBUTES, percentile};
use crate::parse::ParseCeiling;

/// The server's sealer totals since it started (`GET /metrics`), in seconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct SealerTotals {
    pub busy_s: Option<f64>,
    pub appends_waited_s: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gb: f64,
    pub kernel: String,
    pub load_average_start: String,
    pub load_average_end: String,
}

#[derive(Debug, Serialize)]
pub struct Goal {
    pub goal: &'static str,
    pub target: f64,
    pub measured: Option<f64>,
    pub met: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Mismatch {
    pub attribute: String,
    pub value: String,
    pub engine: &'static str,
    pub reason: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub events: u64,
    pub clients: usize,
    pub batch_events: usize,
    pub seed: u64,
    pub quick: bool,
    pub binary: String,
    pub machine: Machine,

    pub ingest_events_per_s: f64,
    pub ingest_mb_per_s: f64,
    pub ingest_seconds: f64,
    pub ingest_retries: u64,
    /// Of the ingest's wall time, the share the server's sealer spent sealing and merging
    /// (near 1: ingest outruns it) and the share appends waited for it (backpressure).
    /// `None` when the server reports neither.
    pub ingest_sealer_busy_fraction: Option<f64>,
    pub ingest_sealer_wait_fraction: Option<f64>,
    /// CPU time per ingested event, in µs, during the ingest: the server's, and this
    /// harness's own (its clients and event generator share the machine). Unlike events/s
    /// they hardly move with other load on a shared machine, so they show what a change
    /// to the ingest path costs or saves.
    pub ingest_server_cpu_us_per_event: Option<f64>,
    pub ingest_bench_cpu_us_per_event: Option<f64>,
    pub freshness_p50_ms: f64,
    pub freshness_p99_ms: f64,
    pub freshness_probes: usize,
    pub freshness_probes_missed: usize,

    pub lookup_p50_ms: BTreeMap<String, f64>,
    pub lookup_p99_ms: BTreeMap<String, f64>,
    pub lookup_p99_ms_max: f64,
    /// p99 per attribute right after a restart with the page cache dropped (Linux, as
    /// root); `None` where the cache could not be dropped.
    pub lookup_p99_ms_cold: BTreeMap<String, f64>,
    pub lookup_p99_ms_cold_max: Option<f64>,
    pub lookups_timed_per_attribute: usize,
    pub lookups_per_s: f64,
    pub lookups_concurrent: usize,

    pub raw_bytes_per_event: f64,
    pub bytes_per_event_on_disk: f64,
    pub bytes_per_event_on_disk_live: f64,
    /// Of `bytes_per_event_on_disk`: the event store (log, indexes) and the archive.
    pub bytes_per_event_store: f64,
    pub bytes_per_event_archive: f64,
    pub disk_compression_ratio: f64,
    /// How long the bench waited, after its lookups and server SQL, for the store's
    /// settler to recompress every sealed segment before stopping the server (the disk
    /// figures above are taken after that); `None` for a server without a settler.
    pub settle_wait_seconds: Option<f64>,
    pub server_rss_peak_mb: Option<f64>,

    pub parse_ceiling_events_per_s: f64,
    pub parse_ceiling_mb_per_s: f64,
    pub parse: ParseCeiling,
    pub ingest_fraction_of_parse_ceiling: f64,
    pub ingest_fraction_of_serde_json_ceiling: f64,
    pub ingest_fraction_of_opentrail_parse: f64,
    /// The same ratio under the name issue 13 measures it by.
    pub ingest_fraction_of_own_parse: f64,

    /// Detections (`None` with --skip-rules): the same events into fresh servers without
    /// rules and with `rules_loaded` Sigma rules, in `rules_ingest_repeats` back-to-back
    /// pairs whose order alternates; throughputs are the medians of each side's runs,
    /// cost fractions the medians of the pairs' own fractions.
    pub rules_loaded: Option<usize>,
    pub rules_ingest_events: Option<u64>,
    pub rules_ingest_repeats: Option<usize>,
    /// Without rules: events/s from the first request to the last acknowledgement.
    pub rules_ingest_events_per_s_without: Option<f64>,
    /// With rules, the same span: what producers feel (rules run after the ack).
    pub rules_ingest_events_per_s_with: Option<f64>,
    /// With rules, until the detection consumer had matched every event.
    pub rules_ingest_matched_events_per_s_with: Option<f64>,
    /// 1 − with ÷ without, acknowledged throughput (median over the pairs).
    pub rules_ingest_cost_fraction: Option<f64>,
    /// 1 − matched-with ÷ without: the cost when ingest counts as done once every event
    /// went through the rules.
    pub rules_ingest_cost_fraction_matched: Option<f64>,
    /// Alerts one server with rules wrote for the comparison's events.
    pub rules_alerts_fired: Option<u64>,
    /// Events the detection consumer still had to match at the last acknowledgement
    /// (median of the runs with rules).
    pub rules_lag_events_at_ack: Option<u64>,
    pub rules_runs: Vec<CostRun>,
    /// Ingest acknowledgement → alert received by a local webhook; a missed alert counts
    /// as the wait it was given (30 s).
    pub alert_latency_p50_ms: Option<f64>,
    pub alert_latency_p99_ms: Option<f64>,
    pub alert_latency_max_ms: Option<f64>,
    pub alert_latency_alerts: Option<usize>,
    pub alert_latency_missed: Option<usize>,

    pub import_mb_per_s: Option<f64>,
    pub import_events_per_s: Option<f64>,
    pub import_compressed_mb_per_s: Option<f64>,

    /// `opentrail query` on the data dir `opentrail import` made of the log files (the
    /// events DuckDB reads, none of the server's own calls), median execution time of the
    /// runs: the group-by over every event, and errors by eventSource in one day.
    pub sql_groupby_ms: Option<f64>,
    pub sql_filtered_groupby_ms: Option<f64>,
    /// The query process's peak RSS over every SQL run.
    pub sql_peak_rss_mb: Option<f64>,
    pub sql_filtered_events_scanned: Option<u64>,
    pub duckdb_gz_sql_groupby_ms: Option<f64>,
    pub duckdb_native_sql_groupby_ms: Option<f64>,
    pub duckdb_gz_sql_filtered_groupby_ms: Option<f64>,
    pub duckdb_native_sql_filtered_groupby_ms: Option<f64>,
    /// DuckDB over the gz files ÷ OpenTrail, group-by over every event.
    pub sql_speedup_vs_duckdb_gz: Option<f64>,
    /// OpenTrail ÷ DuckDB's native table, group-by over every event: medians of the runs
    /// alternated round by round in DuckDB's phase (of the separate phases' medians when
    /// no run alternated).
    pub sql_ratio_to_duckdb_native: Option<f64>,
    /// `opentrail query` in DuckDB's phase, each run right after one of DuckDB's native
    /// runs of the same question (median): the figures the ratio above divides.
    pub sql_alternated_groupby_ms: Option<f64>,
    pub sql_alternated_filtered_groupby_ms: Option<f64>,
    /// The same queries through the running server's Lake API (StartQuery on an event data
    /// store of the admin's account, which also holds the server's record of its own calls):
    /// median `ExecutionTimeInMillis`, and the server's highest VmRSS sampled while they ran.
    pub sql_server_groupby_ms: Option<f64>,
    pub sql_server_filtered_groupby_ms: Option<f64>,
    pub sql_server_events_counted: Option<u64>,
    pub server_rss_during_sql_mb: Option<f64>,

    pub duckdb_version: Option<String>,
    pub duckdb_gz_lookup_p50_ms: BTreeMap<String, f64>,
    pub duckdb_native_lookup_p50_ms: BTreeMap<String, f64>,
    pub duckdb_native_load_s: Option<f64>,
    pub duckdb_queries: usize,
    pub lookup_speedup_vs_duckdb_gz: Option<f64>,
    pub lookup_speedup_vs_duckdb_native: Option<f64>,
    /// Pages compared with OpenTrail's (one per lookup and DuckDB engine).
    pub results_compared: usize,
    pub result_mismatches: Vec<Mismatch>,

    pub log_files: u64,
    pub log_files_compressed_bytes: u64,
    pub log_files_raw_bytes: u64,
    pub shape_generated: Shape,
    pub shape_corpus: Option<Shape>,
    pub goals: Vec<Goal>,
    pub phase_seconds: BTreeMap<String, f64>,
    pub total_seconds: f64,
}

/// The higher of two figures either of which may be missing.
pub fn higher(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> Machine {
    let cpuinfo = read_trimmed("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
        .unwrap_or_default();
    let memory_kb: f64 = read_trimmed("/proc/meminfo")
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0.0);
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        cpu_model,
        memory_gb: memory_kb / 1024.0 / 1024.0,
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        load_average_start: read_trimmed("/proc/loadavg"),
        load_average_end: String::new(),
    }
}

impl Report {
    pub fn new(
        events: u64,
        clients: usize,
        batch_events: usize,
        seed: u64,
        quick: bool,
        binary: &Path,
    ) -> Report {
        Report {
            events,
            clients,
            batch_events,
            seed,
            quick,
            binary: binary.display().to_string(),
            machine: machine(),
            ..Report::default()
        }
    }

    pub fn phase(&mut self, name: &str, started: Instant) {
        self.phase_seconds
            .insert(name.to_owned(), started.elapsed().as_secs_f64());
    }

    pub fn log_files(&mut self, summary: &LogFilesSummary) {
        self.log_files = summary.files;
        self.log_files_compressed_bytes = summary.compressed_bytes;
        self.log_files_raw_bytes = summary.raw_bytes;
    }

    pub fn parse_ceiling(&mut self, ceiling: ParseCeiling) {
        self.parse = ceiling;
        self.parse_ceiling_events_per_s = ceiling.all_cores_events_per_s();
        self.parse_ceiling_mb_per_s = ceiling.all_cores_mb_per_s();
    }

    pub fn shapes(&mut self, generated: Shape, corpus: Option<Shape>) {
        self.shape_generated = generated;
        self.shape_corpus = corpus;
    }

    pub fn ingest(&mut self, outcome: &IngestOutcome) {
        self.ingest_seconds = outcome.seconds;
        self.ingest_events_per_s = outcome.events as f64 / outcome.seconds;
        self.ingest_mb_per_s = outcome.raw_bytes as f64 / outcome.seconds / 1e6;
        self.ingest_retries = outcome.retries;
        // NDJSON bytes less the newline per event: the records' own JSON.
        self.raw_bytes_per_event = (outcome.raw_bytes.saturating_sub(outcome.events)) as f64
            / outcome.events.max(1) as f64;
        self.freshness_p50_ms = percentile(&outcome.freshness_ms, 0.5);
        self.freshness_p99_ms = percentile(&outcome.freshness_ms, 0.99);
        self.freshness_probes = outcome.freshness_ms.len();
        self.freshness_probes_missed = outcome.probes_missed;
    }

    /// The sealer's totals (busy, appends waited; seconds) before and after the ingest.
    pub fn sealer_during_ingest(&mut self, before: SealerTotals, after: SealerTotals) {
        let seconds = self.ingest_seconds.max(f64::EPSILON);
        let share = |before: Option<f64>, after: Option<f64>| Some((after? - before?) / seconds);
        self.ingest_sealer_busy_fraction = share(before.busy_s, after.busy_s);
        self.ingest_sealer_wait_fraction = share(before.appends_waited_s, after.appends_waited_s);
    }

    /// (server, harness) CPU seconds before and after the ingest.
    pub fn cpu_during_ingest(
        &mut self,
        before: (Option<f64>, Option<f64>),
        after: (Option<f64>, Option<f64>),
    ) {
        let events = self.events.max(1) as f64;
        let per_event =
            |before: Option<f64>, after: Option<f64>| Some((after? - before?) * 1e6 / events);
        self.ingest_server_cpu_us_per_event = per_event(before.0, after.0);
        self.ingest_bench_cpu_us_per_event = per_event(before.1, after.1);
    }

    pub fn disk_live(&mut self, bytes: u64) {
        self.bytes_per_event_on_disk_live = bytes as f64 / self.events.max(1) as f64;
    }

    pub fn disk_stopped(&mut self, bytes: u64, store: u64, archive: u64) {
        let events = self.events.max(1) as f64;
        self.bytes_per_event_on_disk = bytes as f64 / events;
        self.bytes_per_event_store = store as f64 / events;
        self.bytes_per_event_archive = archive as f64 / events;
        self.disk_compression_ratio = self.raw_bytes_per_event / self.bytes_per_event_on_disk;
    }

    pub fn settle_wait(&mut self, seconds: Option<f64>) {
        self.settle_wait_seconds = seconds;
    }

    pub fn server_rss(&mut self, megabytes: Option<f64>) {
        self.server_rss_peak_mb = megabytes;
    }

    pub fn lookup_latencies(&mut self, latencies: &BTreeMap<&'static str, Vec<f64>>) {
        for (attribute, timings) in latencies {
            self.lookup_p50_ms
                .insert((*attribute).to_owned(), percentile(timings, 0.5));
            self.lookup_p99_ms
                .insert((*attribute).to_owned(), percentile(timings, 0.99));
            self.lookups_timed_per_attribute = timings.len();
        }
        self.lookup_p99_ms_max = self.lookup_p99_ms.values().copied().fold(0.0, f64::max);
    }

    pub fn cold_lookup_latencies(&mut self, latencies: &BTreeMap<&'static str, Vec<f64>>) {
        for (attribute, timings) in latencies {
            self.lookup_p99_ms_cold
                .insert((*attribute).to_owned(), percentile(timings, 0.99));
        }
        self.lookup_p99_ms_cold_max = self.lookup_p99_ms_cold.values().copied().reduce(f64::max);
    }

    pub fn lookup_throughput(&mut self, done: usize, seconds: f64) {
        self.lookups_concurrent = done;
        self.lookups_per_s = if seconds > 0.0 {
            done as f64 / seconds
        } else {
            0.0
        };
    }

    pub fn import(&mut self, result: ImportResult) {
        if result.seconds > 0.0 && result.events > 0 {
            self.import_mb_per_s = Some(result.json_bytes as f64 / result.seconds / 1e6);
            self.import_events_per_s = Some(result.events as f64 / result.seconds);
            self.import_compressed_mb_per_s = Some(result.bytes_read as f64 / result.seconds / 1e6);
        }
    }

    pub fn detections(&mut self, outcome: &DetectionsOutcome) {
        let side = |with_rules: bool, figure: fn(&CostRun) -> f64| {
            let mut values: Vec<f64> = outcome
                .runs
                .iter()
                .filter(|run| run.rules == with_rules)
                .map(figure)
                .collect();
            median(&mut values)
        };
        let without = side(false, CostRun::acked_events_per_s);
        let with = side(true, CostRun::acked_events_per_s);
        let matched = side(true, CostRun::caught_up_events_per_s);
        // Each pair ran back to back, under the same load: the cost is the median of the
        // pairs' own ratios, not a ratio of medians.
        let cost = |figure: fn(&CostRun) -> f64| {
            let mut fractions: Vec<f64> = outcome
                .runs
                .chunks_exact(2)
                .filter_map(|pair| {
                    let with = pair.iter().find(|run| run.rules)?;
                    let without = pair.iter().find(|run| !run.rules)?;
                    let without = CostRun::acked_events_per_s(without);
                    (without > 0.0).then(|| 1.0 - figure(with) / without)
                })
                .collect();
            median(&mut fractions)
        };
        self.rules_loaded = Some(outcome.rules_loaded);
        self.rules_ingest_events = outcome.runs.first().map(|run| run.events);
        self.rules_ingest_repeats = Some(outcome.runs.iter().filter(|run| run.rules).count());
        self.rules_ingest_events_per_s_without = without;
        self.rules_ingest_events_per_s_with = with;
        self.rules_ingest_matched_events_per_s_with = matched;
        self.rules_ingest_cost_fraction = cost(CostRun::acked_events_per_s);
        self.rules_ingest_cost_fraction_matched = cost(CostRun::caught_up_events_per_s);
        self.rules_alerts_fired = outcome
            .runs
            .iter()
            .filter(|run| run.rules)
            .map(|run| run.alerts)
            .max();
        self.rules_lag_events_at_ack =
            side(true, |run| run.lag_events_at_ack as f64).map(|lag| lag as u64);
        self.rules_runs = outcome.runs.clone();
        let latency = &outcome.latency;
        if !latency.latencies_ms.is_empty() {
            self.alert_latency_p50_ms = Some(percentile(&latency.latencies_ms, 0.5));
            self.alert_latency_p99_ms = Some(percentile(&latency.latencies_ms, 0.99));
            self.alert_latency_max_ms = latency.latencies_ms.iter().copied().reduce(f64::max);
        }
        self.alert_latency_alerts = Some(latency.expected);
        self.alert_latency_missed = Some(latency.missed);
    }

    pub fn duckdb(&mut self, results: &DuckDbResults, compared: &[(String, String, Vec<String>)]) {
        self.duckdb_version = Some(results.duckdb_version.clone());
        self.duckdb_native_load_s = Some(results.native_load_ms / 1e3);
        self.duckdb_queries = results.queries.len();
        for (attribute, mut timings) in
            duckdb::by_attribute(&results.queries, |query| query.gz_ms.into_iter().collect())
        {
            if let Some(value) = median(&mut timings) {
                self.duckdb_gz_lookup_p50_ms.insert(attribute, value);
            }
        }
        for (attribute, mut timings) in
            duckdb::by_attribute(&results.queries, |query| query.native_ms.clone())
        {
            if let Some(value) = median(&mut timings) {
                self.duckdb_native_lookup_p50_ms.insert(attribute, value);
            }
        }
        for (query, (attribute, value, ours)) in results.queries.iter().zip(compared) {
            if query.attribute != *attribute || query.value != *value {
                self.result_mismatches.push(Mismatch {
                    attribute: attribute.clone(),
                    value: value.clone(),
                    engine: "harness",
                    reason: "queries out of order".to_owned(),
                });
                continue;
            }
            for (engine, theirs) in [
                ("duckdb_gz", query.gz_ids.as_ref()),
                ("duckdb_native", Some(&query.native_ids)),
            ] {
                let Some(theirs) = theirs else {
                    continue;
                };
                self.results_compared += 1;
                if let Err(reason) = duckdb::same_page(query, ours, theirs) {
                    self.result_mismatches.push(Mismatch {
                        attribute: attribute.clone(),
                        value: value.clone(),
                        engine,
                        reason,
                    });
                }
            }
        }
        let speedup = |baseline: &BTreeMap<String, f64>, ours: &BTreeMap<String, f64>| {
            let mut ratios: Vec<f64> = baseline
                .iter()
                .filter_map(|(attribute, theirs)| ours.get(attribute).map(|ours| theirs / ours))
                .collect();
            median(&mut ratios)
        };
        self.lookup_speedup_vs_duckdb_gz =
            speedup(&self.duckdb_gz_lookup_p50_ms, &self.lookup_p50_ms);
        self.lookup_speedup_vs_duckdb_native =
            speedup(&self.duckdb_native_lookup_p50_ms, &self.lookup_p50_ms);
    }

    pub fn sql(&mut self, results: &[crate::sql::OpenTrailSql]) {
        for result in results {
            let mut runs = result.execution_ms.clone();
            let time = median(&mut runs);
            match result.name {
                "groupby" => self.sql_groupby_ms = time,
                _ => {
                    self.sql_filtered_groupby_ms = time;
                    self.sql_filtered_events_scanned = Some(result.events_scanned);
                }
            }
            self.sql_peak_rss_mb = higher(self.sql_peak_rss_mb, result.peak_rss_mb);
        }
    }

    pub fn server_sql(&mut self, results: &[crate::sql::ServerSql]) {
        for result in results {
            let mut runs = result.execution_ms.clone();
            let time = median(&mut runs);
            match result.name {
                "groupby" => {
                    self.sql_server_groupby_ms = time;
                    self.sql_server_events_counted = Some(result.events_counted);
                }
                _ => self.sql_server_filtered_groupby_ms = time,
            }
            self.server_rss_during_sql_mb =
                higher(self.server_rss_during_sql_mb, result.server_rss_mb);
        }
    }

    /// DuckDB's SQL timings, the ratios, and a mismatch for any query whose rows differ.
    pub fn duckdb_sql(
        &mut self,
        duckdb: &[crate::sql::DuckDbSql],
        opentrail: &[crate::sql::OpenTrailSql],
    ) {
        for result in duckdb {
            let mut native = result.native_ms.clone();
            let native = median(&mut native);
            let mut alternated = result.opentrail_ms.clone();
            let alternated = median(&mut alternated);
            if result.name == "groupby" {
                self.duckdb_gz_sql_groupby_ms = Some(result.gz_ms);
                self.duckdb_native_sql_groupby_ms = native;
                self.sql_alternated_groupby_ms = alternated;
            } else {
                self.duckdb_gz_sql_filtered_groupby_ms = Some(result.gz_ms);
                self.duckdb_native_sql_filtered_groupby_ms = native;
                self.sql_alternated_filtered_groupby_ms = alternated;
            }
            self.results_compared += 1;
            let ours = opentrail.iter().find(|ours| ours.name == result.name);
            if ours.is_none_or(|ours| ours.rows != result.rows) {
                self.result_mismatches.push(Mismatch {
                    attribute: format!("sql {}", result.name),
                    value: String::new(),
                    engine: "duckdb",
                    reason: format!(
                        "DuckDB returned {} rows, OpenTrail {:?}; first rows {:?} and {:?}",
                        result.rows.len(),
                        ours.map(|ours| ours.rows.len()),
                        result.rows.first(),
                        ours.and_then(|ours| ours.rows.first())
                    ),
                });
            }
        }
        if let (Some(ours), Some(gz)) = (self.sql_groupby_ms, self.duckdb_gz_sql_groupby_ms)
            && ours > 0.0
        {
            self.sql_speedup_vs_duckdb_gz = Some(gz / ours);
        }
        if let (Some(ours), Some(native)) = (
            self.sql_alternated_groupby_ms.or(self.sql_groupby_ms),
            self.duckdb_native_sql_groupby_ms,
        ) && ours > 0.0
            && native > 0.0
        {
            self.sql_ratio_to_duckdb_native = Some(ours / native);
        }
    }

    pub fn results_agree(&self) -> bool {
        self.result_mismatches.is_empty()
    }

    pub fn finish(&mut self, started: Instant) {
        self.total_seconds = started.elapsed().as_secs_f64();
        self.machine.load_average_end = read_trimmed("/proc/loadavg");
        let ratio = |numerator: f64, denominator: f64| {
            if denominator > 0.0 {
                numerator / denominator
            } else {
                0.0
            }
        };
        self.ingest_fraction_of_parse_ceiling =
            ratio(self.ingest_events_per_s, self.parse_ceiling_events_per_s);
        self.ingest_fraction_of_serde_json_ceiling = ratio(
            self.ingest_events_per_s,
            self.parse.serde_json_events_per_s(),
        );
        self.ingest_fraction_of_opentrail_parse = ratio(
            self.ingest_events_per_s,
            self.parse.opentrail_parse_all.events_per_s,
        );
        self.ingest_fraction_of_own_parse = self.ingest_fraction_of_opentrail_parse;
        let goal = |goal, target, measured: Option<f64>, met: fn(f64, f64) -> bool| Goal {
            goal,
            target,
            measured,
            met: measured.map(|value| met(value, target)),
        };
        self.goals = vec![
            goal(
                "ingest_fraction_of_parse_ceiling >= 0.4",
                0.4,
                Some(self.ingest_fraction_of_parse_ceiling),
                |m, t| m >= t,
            ),
            goal(
                "freshness_p99_ms <= 1000",
                1000.0,
                Some(self.freshness_p99_ms),
                |m, t| m <= t,
            ),
            Goal {
                goal: "lookup_p99_ms (slowest attribute) <= 10 at 10M events",
                target: 10.0,
                measured: Some(self.lookup_p99_ms_max),
                // The target is stated at 10M events; a smaller run shows the figure but
                // cannot meet or miss it.
                met: (self.events >= 10_000_000).then_some(self.lookup_p99_ms_max <= 10.0),
            },
            goal(
                "lookup_speedup_vs_duckdb_gz >= 100",
                100.0,
                self.lookup_speedup_vs_duckdb_gz,
                |m, t| m >= t,
            ),
            goal(
                "disk_compression_ratio >= 8",
                8.0,
                Some(self.disk_compression_ratio),
                |m, t| m >= t,
            ),
            goal(
                "rules_ingest_cost_fraction <= 0.15 (50 rules, acknowledged ingest)",
                0.15,
                self.rules_ingest_cost_fraction,
                |m, t| m <= t,
            ),
            goal(
                "rules_ingest_cost_fraction_matched <= 0.15 (until every event was matched)",
                0.15,
                self.rules_ingest_cost_fraction_matched,
                |m, t| m <= t,
            ),
            Goal {
                goal: "sql_groupby_ms <= 1000 at 10M events",
                target: 1000.0,
                measured: self.sql_groupby_ms,
                met: self
                    .sql_groupby_ms
                    .filter(|_| self.events >= 10_000_000)
                    .map(|ms| ms <= 1000.0),
            },
            goal(
                "sql_speedup_vs_duckdb_gz >= 5",
                5.0,
                self.sql_speedup_vs_duckdb_gz,
                |m, t| m >= t,
            ),
            goal(
                "sql_ratio_to_duckdb_native <= 2",
                2.0,
                self.sql_ratio_to_duckdb_native,
                |m, t| m <= t,
            ),
            goal(
                "server_rss_during_sql_mb <= 1024",
                1024.0,
                self.server_rss_during_sql_mb,
                |m, t| m <= t,
            ),
            goal(
                "alert_latency_p99_ms <= 1000",
                1000.0,
                self.alert_latency_p99_ms,
                |m, t| m <= t,
            ),
        ];
    }

    pub fn json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "## opentrail-bench: {} events, {} clients, batches of {}{}\n",
            self.events,
            self.clients,
            self.batch_events,
            if self.quick { " (--quick)" } else { "" }
        );
        let _ = writeln!(
            out,
            "Machine: {} × {}, {:.0} GiB, Linux {}; load average at start {}, at end {}.\n",
            m.cpus, m.cpu_model, m.memory_gb, m.kernel, m.load_average_start, m.load_average_end
        );
        let _ = writeln!(out, "| measure | value |\n|---|---|");
        let mut row = |name: &str, value: String| {
            let _ = writeln!(out, "| {name} | {value} |");
        };
        row(
            "durable ingest (HTTP, fsync before ack)",
            format!(
                "{:.0} events/s, {:.1} MB/s",
                self.ingest_events_per_s, self.ingest_mb_per_s
            ),
        );
        if let (Some(busy), Some(wait)) = (
            self.ingest_sealer_busy_fraction,
            self.ingest_sealer_wait_fraction,
        ) {
            row(
                "during ingest: sealer busy / appends waiting for it (share of the time)",
                format!("{busy:.2} / {wait:.2}"),
            );
        }
        if let (Some(server), Some(bench)) = (
            self.ingest_server_cpu_us_per_event,
            self.ingest_bench_cpu_us_per_event,
        ) {
            row(
                "during ingest: CPU per event, server / this harness",
                format!("{server:.1} µs / {bench:.1} µs"),
            );
        }
        row(
            "parse ceiling, all cores (serde_json / sonic-rs → value)",
            format!(
                "{:.0} / {:.0} events/s ({:.0} / {:.0} MB/s)",
                self.parse.serde_json_all.events_per_s,
                self.parse.sonic_rs_all.events_per_s,
                self.parse.serde_json_all.mb_per_s,
                self.parse.sonic_rs_all.mb_per_s
            ),
        );
        row(
            "parse, 1 thread (serde_json / sonic-rs → value)",
            format!(
                "{:.0} / {:.0} events/s",
                self.parse.serde_json_1.events_per_s, self.parse.sonic_rs_1.events_per_s
            ),
        );
        row(
            "OpenTrail's own parse (parse_batch), 1 thread / all cores",
            format!(
                "{:.0} / {:.0} events/s",
                self.parse.opentrail_parse_1.events_per_s,
                self.parse.opentrail_parse_all.events_per_s
            ),
        );
        row(
            "ingest ÷ parse ceiling (best parser; serde_json alone; OpenTrail's parse)",
            format!(
                "{:.3}; {:.3}; {:.3}",
                self.ingest_fraction_of_parse_ceiling,
                self.ingest_fraction_of_serde_json_ceiling,
                self.ingest_fraction_of_opentrail_parse
            ),
        );
        row(
            "freshness, ack → visible in LookupEvents",
            format!(
                "p50 {:.2} ms, p99 {:.2} ms ({} probes during ingest, {} missed)",
                self.freshness_p50_ms,
                self.freshness_p99_ms,
                self.freshness_probes,
                self.freshness_probes_missed
            ),
        );
        row(
            "LookupEvents p99, slowest attribute, restarted with the page cache dropped",
            match self.lookup_p99_ms_cold_max {
                Some(p99) => format!("{p99:.2} ms"),
                None => "not measured (the page cache could not be dropped)".to_owned(),
            },
        );
        row(
            "lookups/s (LookupEvents, page of 50, mixed attributes)",
            format!("{:.0} with {} clients", self.lookups_per_s, self.clients),
        );
        row(
            "bytes per event: raw JSON / on disk settled, after stop (store + archive) / on disk live",
            format!(
                "{:.0} / {:.0} ({:.0} + {:.0}) / {:.0}",
                self.raw_bytes_per_event,
                self.bytes_per_event_on_disk,
                self.bytes_per_event_store,
                self.bytes_per_event_archive,
                self.bytes_per_event_on_disk_live
            ),
        );
        row(
            "disk compression ratio (raw ÷ on disk)",
            format!("{:.2}", self.disk_compression_ratio),
        );
        if let Some(seconds) = self.settle_wait_seconds {
            row(
                "waited for the store to settle (after lookups and SQL)",
                format!("{seconds:.1} s"),
            );
        }
        row(
            "server peak RSS (VmHWM)",
            self.server_rss_peak_mb
                .map_or("unknown".to_owned(), |mb| format!("{mb:.0} MB")),
        );
        let millis =
            |value: Option<f64>| value.map_or("—".to_owned(), |ms| format!("{ms:.0} ms"));
        row(
            "SQL group-by over every event: OpenTrail / DuckDB over gz / DuckDB native",
            format!(
                "{} / {} / {}",
                millis(self.sql_groupby_ms),
                millis(self.duckdb_gz_sql_groupby_ms),
                millis(self.duckdb_native_sql_groupby_ms)
            ),
        );
        row(
            "SQL errors by eventSource in one day: OpenTrail / DuckDB over gz / DuckDB native",
            format!(
                "{} / {} / {} ({} events scanned)",
                millis(self.sql_filtered_groupby_ms),
                millis(self.duckdb_gz_sql_filtered_groupby_ms),
                millis(self.duckdb_native_sql_filtered_groupby_ms),
                self.sql_filtered_events_scanned.unwrap_or(0)
            ),
        );
        row(
            "SQL alternately with DuckDB's native runs: OpenTrail group-by / errors by eventSource",
            format!(
                "{} / {}",
                millis(self.sql_alternated_groupby_ms),
                millis(self.sql_alternated_filtered_groupby_ms)
            ),
        );
        row(
            "SQL through the server's Lake API: group-by / errors by eventSource in one day",
            format!(
                "{} / {} ({} events counted)",
                millis(self.sql_server_groupby_ms),
                millis(self.sql_server_filtered_groupby_ms),
                self.sql_server_events_counted.unwrap_or(0)
            ),
        );
        row(
            "server RSS while its queries ran (highest VmRSS sampled)",
            self.server_rss_during_sql_mb
                .map_or("—".to_owned(), |mb| format!("{mb:.0} MB")),
        );
        row(
            "SQL query process peak RSS",
            self.sql_peak_rss_mb
                .map_or("—".to_owned(), |mb| format!("{mb:.0} MB")),
        );
        row(
            "import (opentrail import of the gz files)",
            match (self.import_mb_per_s, self.import_events_per_s) {
                (Some(mb), Some(events)) => format!("{mb:.1} MB/s of JSON, {events:.0} events/s"),
                _ => "not measured".to_owned(),
            },
        );
        match (
            self.rules_ingest_events_per_s_without,
            self.rules_ingest_events_per_s_with,
            self.rules_ingest_matched_events_per_s_with,
        ) {
            (Some(without), Some(with), Some(matched)) => {
                row(
                    &format!(
                        "ingest without rules / with {} Sigma rules (acknowledged) / with rules until every event was matched",
                        self.rules_loaded.unwrap_or(0)
                    ),
                    format!(
                        "{without:.0} / {with:.0} / {matched:.0} events/s ({} events per server, {} servers each way, alternating)",
                        self.rules_ingest_events.unwrap_or(0),
                        self.rules_ingest_repeats.unwrap_or(0)
                    ),
                );
                row(
                    "rules' cost to ingest throughput (acknowledged; until matched)",
                    format!(
                        "{:.3}; {:.3} ({} alerts per server, {} events left to match at the last ack)",
                        self.rules_ingest_cost_fraction.unwrap_or(f64::NAN),
                        self.rules_ingest_cost_fraction_matched.unwrap_or(f64::NAN),
                        self.rules_alerts_fired.unwrap_or(0),
                        self.rules_lag_events_at_ack.unwrap_or(0)
                    ),
                );
            }
            _ => row(
                "rules' cost to ingest throughput",
                "not measured (--skip-rules)".to_owned(),
            ),
        }
        row(
            "alert latency, ingest ack → received by a local webhook",
            match (self.alert_latency_p50_ms, self.alert_latency_p99_ms) {
                (Some(p50), Some(p99)) => format!(
                    "p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms ({} alerts, {} missed)",
                    self.alert_latency_max_ms.unwrap_or(f64::NAN),
                    self.alert_latency_alerts.unwrap_or(0),
                    self.alert_latency_missed.unwrap_or(0)
                ),
                _ => "not measured".to_owned(),
            },
        );
        row(
            "log files (AWSLogs layout)",
            format!(
                "{} files, {:.1} MB gz, {:.1} MB JSON",
                self.log_files,
                self.log_files_compressed_bytes as f64 / 1e6,
                self.log_files_raw_bytes as f64 / 1e6
            ),
        );
        if let Some(version) = &self.duckdb_version {
            row(
                &format!("DuckDB {version} native table load"),
                format!("{:.1} s", self.duckdb_native_load_s.unwrap_or(0.0)),
            );
            row(
                "lookup speed-up, median over attributes (vs DuckDB gz / native)",
                format!(
                    "{:.0}× / {:.1}×",
                    self.lookup_speedup_vs_duckdb_gz.unwrap_or(f64::NAN),
                    self.lookup_speedup_vs_duckdb_native.unwrap_or(f64::NAN)
                ),
            );
            row(
                "results agree (same event ids per lookup)",
                if self.results_agree() {
                    format!("yes, {} pages compared", self.results_compared)
                } else {
                    format!("NO: {} mismatches", self.result_mismatches.len())
                },
            );
        }
        let _ = writeln!(
            out,
            "\n| attribute | OpenTrail p50 ms | p99 ms | DuckDB gz p50 ms | DuckDB native p50 ms |\n|---|---|---|---|---|"
        );
        let cell = |map: &BTreeMap<String, f64>, key: &str| {
            map.get(key).map_or("–".to_owned(), |v| format!("{v:.2}"))
        };
        for attribute in ATTRIBUTES {
            let _ = writeln!(
                out,
                "| {attribute} | {} | {} | {} | {} |",
                cell(&self.lookup_p50_ms, attribute),
                cell(&self.lookup_p99_ms, attribute),
                cell(&self.duckdb_gz_lookup_p50_ms, attribute),
                cell(&self.duckdb_native_lookup_p50_ms, attribute)
            );
        }
        let _ = writeln!(out, "\n| shape | generated | corpus |\n|---|---|---|");
        let g = &self.shape_generated;
        let c = self.shape_corpus.as_ref();
        let pair = |ours: String, theirs: Option<String>| {
            format!("{ours} | {}", theirs.unwrap_or_else(|| "–".to_owned()))
        };
        let _ = writeln!(
            out,
            "| events | {} |",
            pair(g.events.to_string(), c.map(|c| c.events.to_string()))
        );
        let _ = writeln!(
            out,
            "| mean bytes/event | {} |",
            pair(
                format!("{:.0}", g.mean_bytes),
                c.map(|c| format!("{:.0}", c.mean_bytes))
            )
        );
        let _ = writeln!(
            out,
            "| event sources / names | {} |",
            pair(
                format!("{} / {}", g.event_sources, g.event_names),
                c.map(|c| format!("{} / {}", c.event_sources, c.event_names))
            )
        );
        for (name, ours, theirs) in [
            (
                "top eventSource share",
                g.top_event_source_share,
                c.map(|c| c.top_event_source_share),
            ),
            (
                "read-only share",
                g.read_only_share,
                c.map(|c| c.read_only_share),
            ),
            (
                "data-event share",
                g.data_event_share,
                c.map(|c| c.data_event_share),
            ),
            ("error share", g.error_share, c.map(|c| c.error_share)),
            (
                "invokedBy share",
                g.invoked_by_share,
                c.map(|c| c.invoked_by_share),
            ),
        ] {
            let _ = writeln!(
                out,
                "| {name} | {} |",
                pair(format!("{ours:.2}"), theirs.map(|t| format!("{t:.2}")))
            );
        }
        let _ = writeln!(out, "\n| goal | measured | met |\n|---|---|---|");
        for goal in &self.goals {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                goal.goal,
                goal.measured.map_or("–".to_owned(), |v| format!("{v:.3}")),
                match (goal.met, goal.measured) {
                    (Some(true), _) => "yes",
                    (Some(false), _) => "no",
                    (None, Some(_)) => "n/a (below 10M events)",
                    (None, None) => "–",
                }
            );
        }
        let _ = writeln!(
            out,
            "\nPhases (s): {}; total {:.0} s.",
            self.phase_seconds
                .iter()
                .map(|(name, s)| format!("{name} {s:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.total_seconds
        );
        out
    }
}

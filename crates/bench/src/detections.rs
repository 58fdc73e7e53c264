//! Detections (issue 15): what 50 Sigma rules cost ingest, and how long an alert takes
//! from the ingest acknowledgement to a webhook.
//!
//! - **The rules**: the 7 starter rules of `rules/cloudtrail/` and 43 more in the style of
//!   SigmaHQ's aws/cloudtrail rules (`crates/bench/rules/bench-rules.yml`), both embedded
//!   and written to `WORK_DIR/rules`. `opentrail rules test` first checks that all 50 load
//!   and which rules the latency phase's events fire. Nine of them fire on generated
//!   events (about 0.25% of them), so real alerts are written during the comparison.
//! - **Cost**: the same generated events go to fresh servers without rules and with them
//!   (C clients, batches of 500, no freshness probes), in back-to-back pairs whose order
//!   alternates, so a drift in the shared machine's load hits both sides; the cost is the
//!   median of the pairs' own fractions. Rules run in a log consumer after the ack, so
//!   two throughputs are kept for the rules side: until the last ack (what producers
//!   feel) and until the detection consumer has matched every event, seen on
//!   `GET /metrics` as `opentrail_detection_events_total` reaching
//!   `opentrail_store_last_seq` (polled every 50 ms once the acks are in).
//! - **Latency**: a server with the rules and `OPENTRAIL_ALERT_WEBHOOK_URL` pointing at
//!   [`WebhookReceiver`]. Every 100 ms, one batch of 200 generated events plus 2 events
//!   made to fire a rule, each with its own eventID; an alert's latency is the instant the
//!   webhook had read it minus the instant its batch's ingest answer arrived.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use opentrail_generator::{Generator, GeneratorConfig};
use serde::{Deserialize, Serialize};

use crate::api::{Api, metric_value};
use crate::ingest::{self, Probes};
use crate::server::{self, ServerProcess};
use crate::webhook::WebhookReceiver;

/// The 43 rules written for the benchmark, one YAML document each.
const BENCH_RULES: &str = include_str!("../rules/bench-rules.yml");
const BENCH_RULES_FILE: &str = "bench-rules.yml";

/// Embeds a starter rule under its own file name.
macro_rules! starter_rule {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../rules/cloudtrail/", $name)),
        )
    };
}

/// The starter rules shipped in `rules/cloudtrail/`.
const STARTER_RULES: [(&str, &str); 7] = [
    starter_rule!("access_key_created_for_another_user.yml"),
    starter_rule!("cloudtrail_logging_stopped.yml"),
    starter_rule!("console_login_without_mfa.yml"),
    starter_rule!("dynamodb_table_deleted.yml"),
    starter_rule!("root_console_login.yml"),
    starter_rule!("s3_bucket_deleted.yml"),
    starter_rule!("security_group_open_to_world.yml"),
];

/// Rules the servers must load: the starters and the benchmark's own.
pub const RULES_LOADED: usize = 50;

/// How often detection progress is read once the acks are in.
const CATCH_UP_POLL: Duration = Duration::from_millis(50);
/// A consumer that has not caught up by then is reported as a failure.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(600);
/// The latency phase's pace: one batch per interval.
const LATENCY_PACE: Duration = Duration::from_millis(100);
/// Generated events in each latency batch, around the ones made to fire a rule.
const LATENCY_BACKGROUND_EVENTS: usize = 200;
const FIRING_EVENTS_PER_BATCH: usize = 2;
/// An alert not at the webhook this long after the last ack is counted as missed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The account the latency phase's own events belong to (the generator's primary one).
const ACCOUNT: &str = "123456789012";

/// What the detections phase runs.
pub struct Settings<'a> {
    pub binary: &'a Path,
    pub work_dir: &'a Path,
    /// The events of the cost comparison, ingested once per server.
    pub config: GeneratorConfig,
    pub clients: usize,
    pub batch_events: usize,
    /// Servers without rules and with them, alternately, this many times each.
    pub pairs: usize,
    /// Batches of the latency phase (each [`LATENCY_PACE`] apart).
    pub latency_batches: usize,
}

/// One server of the cost comparison.
#[derive(Debug, Clone, Serialize)]
pub struct CostRun {
    pub rules: bool,
    pub events: u64,
    /// From the first ingest request to the last acknowledgement.
    pub acked_seconds: f64,
    /// From the first request until the detection consumer had matched every event;
    /// the same as `acked_seconds` without rules.
    pub caught_up_seconds: f64,
    /// Events the consumer still had to match at the last acknowledgement.
    pub lag_events_at_ack: u64,
    pub alerts: u64,
}

impl CostRun {
    pub fn acked_events_per_s(&self) -> f64 {
        self.events as f64 / self.acked_seconds.max(f64::EPSILON)
    }

    pub fn caught_up_events_per_s(&self) -> f64 {
        self.events as f64 / self.caught_up_seconds.max(f64::EPSILON)
    }
}

/// The latency phase.
#[derive(Debug, Default)]
pub struct LatencyOutcome {
    /// Ack → webhook of each expected alert, in milliseconds; a missed one counts as
    /// [`DELIVERY_TIMEOUT`].
    pub latencies_ms: Vec<f64>,
    pub expected: usize,
    pub missed: usize,
}

pub struct DetectionsOutcome {
    pub rules_loaded: usize,
    pub runs: Vec<CostRun>,
    pub latency: LatencyOutcome,
}

pub async fn run(settings: &Settings<'_>) -> anyhow::Result<DetectionsOutcome> {
    let rules_dir = settings.work_dir.join("rules");
    write_rules(&rules_dir)?;
    let fired_by_call = check_rules(
        settings.binary,
        &rules_dir,
        &settings.work_dir.join("rules-check.ndjson"),
    )?;
    let mut runs = Vec::with_capacity(settings.pairs * 2);
    for pair in 0..settings.pairs {
        let order = if pair % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for with_rules in order {
            let run = cost_run(
                settings,
                with_rules.then_some(rules_dir.as_path()),
                runs.len(),
            )
            .await?;
            eprintln!(
                "opentrail-bench: {} rules: {:.0} events/s acknowledged, {:.0} events/s matched{}",
                if with_rules { RULES_LOADED } else { 0 },
                run.acked_events_per_s(),
                run.caught_up_events_per_s(),
                if with_rules {
                    format!(
                        " ({} alerts, {} events behind at the last ack)",
                        run.alerts, run.lag_events_at_ack
                    )
                } else {
                    String::new()
                }
            );
            runs.push(run);
        }
    }
    let latency = alert_latency(settings, &rules_dir, &fired_by_call).await?;
    Ok(DetectionsOutcome {
        rules_loaded: RULES_LOADED,
        runs,
        latency,
    })
}

/// Writes the starter rules (one file each) and the benchmark's file into `dir`.
fn write_rules(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in STARTER_RULES
        .into_iter()
        .chain([(BENCH_RULES_FILE, BENCH_RULES)])
    {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RulesTestReport {
    matches: Vec<RulesTestMatch>,
    counts: Vec<serde::de::IgnoredAny>,
    refused: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RulesTestMatch {
    rule_id: String,
    event_id: Option<String>,
}

/// Runs `opentrail rules test` over one event of each [`FIRING_CALLS`] entry: every rule
/// must load, and each call must fire at least one. Returns the rule ids each call fires.
fn check_rules(binary: &Path, rules_dir: &Path, events: &Path) -> anyhow::Result<Vec<Vec<String>>> {
    let now = jiff::Timestamp::now();
    let mut ndjson = String::new();
    for call in 0..FIRING_CALLS.len() {
        ndjson.push_str(&firing_event(call, &check_event_id(call), now).to_string());
        ndjson.push('\n');
    }
    std::fs::write(events, ndjson).with_context(|| format!("cannot write {}", events.display()))?;
    let output = Command::new(binary)
        .args(["rules", "test"])
        .arg(rules_dir)
        .arg("--against")
        .arg(events)
        .args(["--output", "json"])
        .output()
        .with_context(|| format!("cannot run {} rules test", binary.display()))?;
    let report: RulesTestReport = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "`opentrail rules test` printed no report ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })?;
    if !report.refused.is_empty() {
        bail!(
            "the benchmark's rules do not all load: {}",
            serde_json::to_string(&report.refused)?
        );
    }
    ensure!(
        report.counts.len() == RULES_LOADED,
        "{} rules loaded from {}, expected {RULES_LOADED}",
        report.counts.len(),
        rules_dir.display()
    );
    let mut fired = vec![Vec::new(); FIRING_CALLS.len()];
    for found in report.matches {
        if let Some(call) = (0..FIRING_CALLS.len())
            .find(|call| found.event_id.as_deref() == Some(check_event_id(*call).as_str()))
        {
            fired[call].push(found.rule_id);
        }
    }
    for (call, rules) in fired.iter().enumerate() {
        ensure!(
            !rules.is_empty(),
            "no rule fires on {} {}: the latency phase would time nothing",
            FIRING_CALLS[call].0,
            FIRING_CALLS[call].1
        );
    }
    Ok(fired)
}

fn check_event_id(call: usize) -> String {
    format!("00000000-0000-4000-8000-c4ec{call:08x}")
}

/// Ingests the comparison's events into a fresh server, with the rules or without.
async fn cost_run(
    settings: &Settings<'_>,
    rules_dir: Option<&Path>,
    index: usize,
) -> anyhow::Result<CostRun> {
    let data_dir = settings.work_dir.join(format!("rules-data-{index}"));
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)
            .with_context(|| format!("cannot clear {}", data_dir.display()))?;
    }
    let detections = server::Detections {
        rules_dir: rules_dir.map(Path::to_path_buf),
        alert_webhook_url: None,
    };
    let mut server = ServerProcess::start_with(
        settings.binary,
        &data_dir,
        &settings.work_dir.join(format!("server-rules-{index}.log")),
        &detections,
    )
    .await?;
    let api = Arc::new(Api::new(
        &server.endpoint,
        &server.host,
        server.credentials.clone(),
    )?);
    let started = Instant::now();
    let outcome = ingest::run(
        Arc::clone(&api),
        settings.config.clone(),
        settings.clients,
        settings.batch_events,
        Probes::None,
    )
    .await?;
    let acked_seconds = started.elapsed().as_secs_f64();
    ensure!(
        outcome.accepted == settings.config.events,
        "the server accepted {} of {} events ({} duplicates, {} failed)",
        outcome.accepted,
        settings.config.events,
        outcome.duplicates,
        outcome.failed
    );
    let mut run = CostRun {
        rules: rules_dir.is_some(),
        events: outcome.events,
        acked_seconds,
        caught_up_seconds: acked_seconds,
        lag_events_at_ack: 0,
        alerts: 0,
    };
    if rules_dir.is_some() {
        let at_ack = DetectionProgress::read(&api).await?;
        run.lag_events_at_ack = at_ack.behind();
        let caught_up = wait_caught_up(&api).await?;
        run.caught_up_seconds = started.elapsed().as_secs_f64();
        run.alerts = caught_up.alerts;
    }
    server.kill()?;
    drop(server);
    // Each run is a fresh data dir; the kept ones would only fill the disk.
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(run)
}

/// The detection consumer against the log, from one `GET /metrics`.
#[derive(Debug, Clone, Copy)]
struct DetectionProgress {
    /// Events the consumer has matched since the server started.
    matched: u64,
    /// The log's last sequence number: every event of a fresh store.
    last_seq: u64,
    alerts: u64,
}

impl DetectionProgress {
    async fn read(api: &Api) -> anyhow::Result<DetectionProgress> {
        let text = api.metrics().await?;
        // A counter appears once it was first incremented: absent means zero.
        let value = |name| metric_value(&text, name).unwrap_or(0.0) as u64;
        Ok(DetectionProgress {
            matched: value("opentrail_detection_events_total"),
            last_seq: value("opentrail_store_last_seq"),
            alerts: value("opentrail_alerts_total"),
        })
    }

    fn behind(&self) -> u64 {
        self.last_seq.saturating_sub(self.matched)
    }
}

async fn wait_caught_up(api: &Api) -> anyhow::Result<DetectionProgress> {
    let started = Instant::now();
    loop {
        let progress = DetectionProgress::read(api).await?;
        if progress.last_seq > 0 && progress.behind() == 0 {
            return Ok(progress);
        }
        if started.elapsed() > CATCH_UP_TIMEOUT {
            bail!(
                "the detection consumer had matched {} of {} events {CATCH_UP_TIMEOUT:?} after \
                 the last acknowledgement",
                progress.matched,
                progress.last_seq
            );
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}

/// Calls the latency phase makes to fire rules, in turn: (eventSource, eventName).
const FIRING_CALLS: [(&str, &str); 4] = [
    ("s3.amazonaws.com", "DeleteBucket"),
    ("kms.amazonaws.com", "ScheduleKeyDeletion"),
    ("iam.amazonaws.com", "AttachUserPolicy"),
    ("ec2.amazonaws.com", "ImportKeyPair"),
];

/// A successful call of `FIRING_CALLS[call]` by an IAM user, as CloudTrail records it.
fn firing_event(call: usize, event_id: &str, now: jiff::Timestamp) -> serde_json::Value {
    let (event_source, event_name) = FIRING_CALLS[call % FIRING_CALLS.len()];
    let request_parameters = match event_name {
        "DeleteBucket" => serde_json::json!({
            "bucketName": "acme-alert-latency",
            "Host": "acme-alert-latency.s3.us-east-1.amazonaws.com",
        }),
        "ScheduleKeyDeletion" => serde_json::json!({
            "keyId": "arn:aws:kms:us-east-1:123456789012:key/0f6b5e44-2a41-4c1b-9d55-4cbb1d2c7e10",
            "pendingWindowInDays": 7,
        }),
        "AttachUserPolicy" => serde_json::json!({
            "userName": "mallory",
            "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
        }),
        _ => serde_json::json!({
            "keyName": "bench-latency",
            "publicKeyMaterial": "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUE=",
        }),
    };
    serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAALERTLATENCY00001",
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/alert-latency"),
            "accountId": ACCOUNT,
            "accessKeyId": "AKIAALERTLATENCY0001",
            "userName": "alert-latency",
        },
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.23",
        "userAgent": "aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.11.8",
        "requestParameters": request_parameters,
        "responseElements": null,
        "requestID": event_id,
        "eventID": event_id,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveredAlert {
    alert_id: String,
    rule_id: String,
    event_id: String,
}

/// Ack → webhook for alerts fired at a steady pace on a server with the rules.
async fn alert_latency(
    settings: &Settings<'_>,
    rules_dir: &Path,
    fired_by_call: &[Vec<String>],
) -> anyhow::Result<LatencyOutcome> {
    let mut webhook = WebhookReceiver::start().await?;
    let data_dir: PathBuf = settings.work_dir.join("alerts-data");
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)
            .with_context(|| format!("cannot clear {}", data_dir.display()))?;
    }
    let detections = server::Detections {
        rules_dir: Some(rules_dir.to_path_buf()),
        alert_webhook_url: Some(webhook.url.clone()),
    };
    let mut server = ServerProcess::start_with(
        settings.binary,
        &data_dir,
        &settings.work_dir.join("server-alerts.log"),
        &detections,
    )
    .await?;
    let api = Api::new(&server.endpoint, &server.host, server.credentials.clone())?;

    let background_events = (settings.latency_batches * LATENCY_BACKGROUND_EVENTS) as u64;
    let mut generator = Generator::new(GeneratorConfig::new(
        settings.config.seed,
        background_events.max(opentrail_generator::stories::EVENT_COUNT as u64),
    ));
    // (eventID, rule id) of every alert expected → when its batch was acknowledged.
    let mut expected: HashMap<(String, String), Instant> = HashMap::new();
    let run_id = jiff::Timestamp::now().as_nanosecond() as u64 & 0xffff_ffff;
    let mut fired_events = 0usize;
    let mut pace = tokio::time::interval(LATENCY_PACE);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..settings.latency_batches {
        pace.tick().await;
        let mut body = Vec::with_capacity(LATENCY_BACKGROUND_EVENTS * 1600);
        generator.next_ndjson_batch(LATENCY_BACKGROUND_EVENTS, &mut body);
        let now = jiff::Timestamp::now();
        let mut batch_alerts = Vec::new();
        for _ in 0..FIRING_EVENTS_PER_BATCH {
            let call = fired_events % FIRING_CALLS.len();
            let event_id = format!("{run_id:08x}-0000-4000-9000-{fired_events:012x}");
            let record = firing_event(call, &event_id, now);
            serde_json::to_writer(&mut body, &record).context("cannot encode an event")?;
            body.push(b'\n');
            for rule_id in &fired_by_call[call] {
                batch_alerts.push((event_id.clone(), rule_id.clone()));
            }
            fired_events += 1;
        }
        let counts = api.ingest(body).await?;
        let acked = Instant::now();
        ensure!(
            counts.failed == 0,
            "the server refused {} events of a latency batch",
            counts.failed
        );
        for alert in batch_alerts {
            expected.insert(alert, acked);
        }
    }

    let mut outcome = LatencyOutcome {
        expected: expected.len(),
        ..LatencyOutcome::default()
    };
    let mut seen_alerts = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    while outcome.latencies_ms.len() < outcome.expected {
        let Some(delivery) = webhook.next_before(deadline).await else {
            break;
        };
        let alert: DeliveredAlert = serde_json::from_slice(&delivery.body).with_context(|| {
            format!(
                "the webhook received something other than an alert: {}",
                String::from_utf8_lossy(&delivery.body[..delivery.body.len().min(300)])
            )
        })?;
        // A delivery repeated after a retry keeps its alertId; time the first one.
        if !seen_alerts.insert(alert.alert_id) {
            continue;
        }
        // Alerts the generated events fire are delivered too, untimed.
        if let Some(acked) = expected.get(&(alert.event_id, alert.rule_id)) {
            // An alert can beat its ack's arrival here (both are local); that is zero.
            let latency = delivery.received.saturating_duration_since(*acked);
            outcome.latencies_ms.push(latency.as_secs_f64() * 1e3);
        }
    }
    outcome.missed = outcome.expected - outcome.latencies_ms.len();
    // A missed alert waited at least this long: leaving it out would flatter the p99.
    outcome.latencies_ms.extend(std::iter::repeat_n(
        DELIVERY_TIMEOUT.as_secs_f64() * 1e3,
        outcome.missed,
    ));
    server.kill()?;
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_sum_label_sets_and_skip_longer_names() {
        let text = "# HELP opentrail_alerts_total Alerts.\n\
                    # TYPE opentrail_alerts_total counter\n\
                    opentrail_alerts_total 12\n\
                    opentrail_alerts_total_extra 99\n\
                    opentrail_store_last_seq{store=\"a\"} 5\n\
                    opentrail_store_last_seq{store=\"b\"} 7\n";
        assert_eq!(metric_value(text, "opentrail_alerts_total"), Some(12.0));
        assert_eq!(metric_value(text, "opentrail_store_last_seq"), Some(12.0));
        assert_eq!(metric_value(text, "opentrail_detection_events_total"), None);
    }

    #[test]
    fn the_embedded_rules_are_fifty_with_distinct_ids() {
        let ids: Vec<&str> = STARTER_RULES
            .iter()
            .map(|(_, text)| *text)
            .chain(BENCH_RULES.split("\n---\n"))
            .filter_map(|text| {
                text.lines()
                    .find_map(|line| line.strip_prefix("id: "))
                    .map(str::trim)
            })
            .collect();
        assert_eq!(ids.len(), RULES_LOADED);
        let distinct: std::collections::HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), RULES_LOADED, "{ids:?}");
    }
}

//! Durable ingest with C concurrent clients and batches of 500, and freshness probes
//! while it runs.
//!
//! The events are regenerated from the seed (the generator is deterministic), so they are
//! the same events the log files hold, and memory stays bounded: a producer thread fills a
//! small channel of ready NDJSON bodies that the clients drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use opentrail_generator::{Generator, GeneratorConfig};
use tokio::sync::{Mutex, mpsc};

use crate::api::{Api, Lookup};

/// The region freshness probes are written to and looked up in. The generator never
/// writes it, so probes never show up in the compared lookups (which are scoped to the
/// primary region), nor the generated events in the probes' lookups.
pub const PROBE_REGION: &str = "ca-central-1";
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
const PROBES_MAX: usize = 2_000;
/// A probe not visible after this long counts as this long (and is reported as missed).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct IngestOutcome {
    pub events: u64,
    pub raw_bytes: u64,
    pub seconds: f64,
    pub accepted: u64,
    pub duplicates: u64,
    pub failed: u64,
    pub retries: u64,
    /// Milliseconds from a probe's ack to its first appearance in LookupEvents.
    pub freshness_ms: Vec<f64>,
    pub probes_missed: usize,
}

struct Batch {
    body: Vec<u8>,
    events: usize,
}

/// Whether freshness probes run during ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probes {
    Freshness,
    /// Only the generated events reach the server (the rules comparison, where each
    /// probe's lookups would be load the figure does not ask for).
    None,
}

pub async fn run(
    api: Arc<Api>,
    config: GeneratorConfig,
    clients: usize,
    batch_events: usize,
    probes: Probes,
) -> anyhow::Result<IngestOutcome> {
    let (sender, receiver) = mpsc::channel::<Batch>(clients * 2);
    let producer = std::thread::spawn(move || {
        let mut generator = Generator::new(config);
        loop {
            let mut body = Vec::with_capacity(batch_events * 1600);
            let events = generator.next_ndjson_batch(batch_events, &mut body);
            if events == 0 {
                break;
            }
            if sender.blocking_send(Batch { body, events }).is_err() {
                break;
            }
        }
    });
    let receiver = Arc::new(Mutex::new(receiver));
    let done = Arc::new(AtomicBool::new(false));
    let prober = (probes == Probes::Freshness)
        .then(|| tokio::spawn(probe_freshness(Arc::clone(&api), Arc::clone(&done))));

    let started = Instant::now();
    let mut workers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let api = Arc::clone(&api);
        let receiver = Arc::clone(&receiver);
        workers.push(tokio::spawn(async move {
            let mut totals = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
            loop {
                let batch = receiver.lock().await.recv().await;
                let Some(batch) = batch else {
                    break;
                };
                totals.0 += batch.events as u64;
                totals.1 += batch.body.len() as u64;
                let counts = api.ingest(batch.body).await?;
                totals.2 += counts.accepted as u64;
                totals.3 += counts.duplicates as u64;
                totals.4 += counts.failed as u64;
                totals.5 += u64::from(counts.retries);
            }
            anyhow::Ok(totals)
        }));
    }
    let mut outcome = IngestOutcome {
        events: 0,
        raw_bytes: 0,
        seconds: 0.0,
        accepted: 0,
        duplicates: 0,
        failed: 0,
        retries: 0,
        freshness_ms: Vec::new(),
        probes_missed: 0,
    };
    let mut first_error = None;
    for worker in workers {
        match worker.await.context("an ingest client panicked")? {
            Ok(totals) => {
                outcome.events += totals.0;
                outcome.raw_bytes += totals.1;
                outcome.accepted += totals.2;
                outcome.duplicates += totals.3;
                outcome.failed += totals.4;
                outcome.retries += totals.5;
            }
            Err(error) => {
                first_error.get_or_insert(error);
                // Stop feeding the others: close the channel so they drain and finish.
                receiver.lock().await.close();
            }
        }
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Release);
    if let Some(prober) = prober {
        let (freshness, missed) = prober.await.context("the freshness prober panicked")??;
        outcome.freshness_ms = freshness;
        outcome.probes_missed = missed;
    }
    if producer.join().is_err() {
        bail!("the event generator thread panicked");
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    Ok(outcome)
}

/// Every [`PROBE_INTERVAL`] while ingest runs: ingest one probe event, and from its ack
/// look it up by EventId until it is there.
async fn probe_freshness(
    api: Arc<Api>,
    done: Arc<AtomicBool>,
) -> anyhow::Result<(Vec<f64>, usize)> {
    let mut latencies = Vec::new();
    let mut missed = 0;
    let run_id = jiff::Timestamp::now().as_nanosecond() as u64 & 0xffff_ffff;
    for probe in 0..PROBES_MAX {
        if done.load(Ordering::Acquire) {
            break;
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
        let event_id = format!("{run_id:08x}-0000-4000-8000-{probe:012x}");
        let now = jiff::Timestamp::now();
        let record = serde_json::json!({
            "eventVersion": "1.09",
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAFRESHNESSPROBE000", "arn": "arn:aws:iam::123456789012:user/freshness-probe", "accountId": "123456789012", "userName": "freshness-probe"},
            "eventTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "eventSource": "opentrail-bench.amazonaws.com",
            "eventName": "FreshnessProbe",
            "awsRegion": PROBE_REGION,
            "sourceIPAddress": "127.0.0.1",
            "userAgent": "opentrail-bench",
            "requestParameters": null,
            "responseElements": null,
            "eventID": event_id,
            "readOnly": true,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": "123456789012",
            "eventCategory": "Management",
        });
        let body = serde_json::to_vec(&record).context("cannot encode a probe")?;
        let counts = api.ingest(body).await?;
        let acked = Instant::now();
        if counts.accepted != 1 {
            bail!("a freshness probe was not accepted ({counts:?})");
        }
        let lookup = Lookup {
            region: PROBE_REGION,
            attribute: "EventId",
            value: &event_id,
            start_s: None,
            end_s: None,
            max_results: 1,
        };
        loop {
            let found = api.lookup(&lookup).await?.contains(&event_id);
            let elapsed = acked.elapsed();
            if found {
                latencies.push(elapsed.as_secs_f64() * 1e3);
                break;
            }
            if elapsed > PROBE_TIMEOUT {
                latencies.push(elapsed.as_secs_f64() * 1e3);
                missed += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok((latencies, missed))
}

//! LookupEvents latency per attribute (all eight) for a page of 50, and lookups/s with C
//! concurrent clients.
//!
//! Lookup values are sampled from the generated stream itself, evenly along it, so
//! popular values are asked for as often as they occur (a realistic mix of big and small
//! result sets). Attributes are derived by `opentrail_event`, exactly as the server does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use opentrail_event::{FilterField, IngestContext, parse_batch};

use crate::api::{Api, Lookup};

/// CloudTrail's eight lookup attributes, in the order reports list them.
pub const ATTRIBUTES: [&str; 8] = opentrail_protocol::lookup_events::LOOKUP_ATTRIBUTE_KEYS;
pub const PAGE: u32 = 50;
/// Values kept per attribute.
const SAMPLES_MAX: usize = 400;

/// The lookups every engine runs: the primary region, the generated window.
#[derive(Debug, Clone)]
pub struct Scope {
    pub region: String,
    pub start_s: i64,
    pub end_s: i64,
}

/// Values to look up, per attribute key.
#[derive(Debug, Default)]
pub struct Samples {
    pub values: BTreeMap<&'static str, Vec<String>>,
}

impl Samples {
    /// Adds the lookup values of one generated record, if it is in the lookup region.
    pub fn add(&mut self, json: &str, scope: &Scope, context: &IngestContext) {
        let Ok(batch) = parse_batch(json.as_bytes(), context) else {
            return;
        };
        for (_, record) in batch.records {
            if record.attributes.aws_region != scope.region {
                continue;
            }
            let mut seen_name = false;
            for (field, value) in record.attributes.index_values() {
                let Some(key) = opentrail_protocol::lookup_events::field_to_attribute_key(field)
                else {
                    continue;
                };
                // ResourceName lookups use the ARN (OpenTrail also matches the short
                // name; the SQL baselines compare ARNs), one per record.
                if field == FilterField::ResourceName && (!value.starts_with("arn:") || seen_name) {
                    continue;
                }
                seen_name |= field == FilterField::ResourceName;
                let Some(slot) = ATTRIBUTES.iter().find(|candidate| **candidate == key) else {
                    continue;
                };
                let values = self.values.entry(slot).or_default();
                if values.len() < SAMPLES_MAX {
                    values.push(value.to_owned());
                }
            }
        }
    }

    /// Up to `count` distinct values of an attribute, spread over the samples.
    pub fn distinct(&self, attribute: &str, count: usize) -> Vec<String> {
        let Some(values) = self.values.get(attribute) else {
            return Vec::new();
        };
        let mut distinct: Vec<&String> = Vec::new();
        for value in values {
            if !distinct.contains(&value) {
                distinct.push(value);
            }
        }
        let step = (distinct.len() / count.max(1)).max(1);
        distinct
            .into_iter()
            .step_by(step)
            .take(count)
            .cloned()
            .collect()
    }
}

fn lookup<'a>(scope: &'a Scope, attribute: &'a str, value: &'a str) -> Lookup<'a> {
    Lookup {
        region: &scope.region,
        attribute,
        value,
        start_s: Some(scope.start_s),
        end_s: Some(scope.end_s),
        max_results: PAGE,
    }
}

/// Sequential latencies, `per_attribute` lookups per attribute (cycling through its
/// samples), in milliseconds; and how many events the pages held.
pub async fn latencies(
    api: &Api,
    samples: &Samples,
    scope: &Scope,
    per_attribute: usize,
) -> anyhow::Result<BTreeMap<&'static str, Vec<f64>>> {
    let mut result = BTreeMap::new();
    for attribute in ATTRIBUTES {
        let Some(values) = samples
            .values
            .get(attribute)
            .filter(|values| !values.is_empty())
        else {
            continue;
        };
        // One untimed round first: connection set-up is not a lookup's cost.
        api.lookup(&lookup(scope, attribute, &values[0])).await?;
        let cycled = (0..per_attribute).map(|i| &values[i % values.len()]);
        result.insert(
            attribute,
            time_lookups(api, scope, attribute, cycled).await?,
        );
    }
    Ok(result)
}

/// Latencies of lookups that find the page cache empty: `per_attribute` lookups per
/// attribute, each for a value not looked up before in this phase, so each reads postings
/// and blocks from disk. The caller restarts the server and drops the cache first.
pub async fn cold_latencies(
    api: &Api,
    samples: &Samples,
    scope: &Scope,
    per_attribute: usize,
) -> anyhow::Result<BTreeMap<&'static str, Vec<f64>>> {
    let mut result = BTreeMap::new();
    for attribute in ATTRIBUTES {
        let values = samples.distinct(attribute, per_attribute);
        if values.is_empty() {
            continue;
        }
        result.insert(
            attribute,
            time_lookups(api, scope, attribute, values.iter()).await?,
        );
    }
    Ok(result)
}

/// Each lookup's latency in milliseconds, one after the other.
async fn time_lookups(
    api: &Api,
    scope: &Scope,
    attribute: &str,
    values: impl Iterator<Item = &String>,
) -> anyhow::Result<Vec<f64>> {
    let mut timings = Vec::new();
    for value in values {
        let started = Instant::now();
        let page = api
            .lookup(&lookup(scope, attribute, value))
            .await
            .with_context(|| format!("lookup {attribute}={value}"))?;
        timings.push(started.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(page);
    }
    Ok(timings)
}

/// C clients each cycling through every attribute's samples; bounded by `total` lookups
/// and `limit` of time. Returns (lookups done, seconds).
pub async fn throughput(
    api: Arc<Api>,
    samples: &Samples,
    scope: &Scope,
    clients: usize,
    total: usize,
    limit: Duration,
) -> anyhow::Result<(usize, f64)> {
    let mut mixed: Vec<(&'static str, String)> = Vec::new();
    let longest = samples.values.values().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for attribute in ATTRIBUTES {
            if let Some(value) = samples
                .values
                .get(attribute)
                .and_then(|values| values.get(i))
            {
                mixed.push((attribute, value.clone()));
            }
        }
    }
    if mixed.is_empty() {
        return Ok((0, 0.0));
    }
    let mixed = Arc::new(mixed);
    let scope = Arc::new(scope.clone());
    let started = Instant::now();
    let per_client = total.div_ceil(clients.max(1));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let api = Arc::clone(&api);
        let mixed = Arc::clone(&mixed);
        let scope = Arc::clone(&scope);
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            for i in 0..per_client {
                if started.elapsed() > limit {
                    break;
                }
                let (attribute, value) = &mixed[(client * 7919 + i) % mixed.len()];
                api.lookup(&lookup(&scope, attribute, value)).await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.context("a lookup client panicked")??;
    }
    Ok((done, started.elapsed().as_secs_f64()))
}

/// OpenTrail's page for one lookup (for the comparison with DuckDB).
pub async fn page(
    api: &Api,
    scope: &Scope,
    attribute: &str,
    value: &str,
) -> anyhow::Result<Vec<String>> {
    api.lookup(&lookup(scope, attribute, value)).await
}

/// The value at `fraction` (0..=1) of the sorted values (nearest rank).
pub fn percentile(values: &[f64], fraction: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

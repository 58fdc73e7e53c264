//! `opentrail serve --demo`: fills a fresh data directory with a realistic day of generated
//! events (`opentrail-generator`), including the classic investigation stories, so the
//! console and lookups have something to show on first run:
//!
//! - IAM user `alice` deletes the DynamoDB table `orders` from 203.0.113.7;
//! - CloudFormation launches EC2 instances on user `bob`'s behalf (`invokedBy`).
//!
//! The day ends now, in the server's default account and region. A data directory that
//! already holds events is left alone, so `--demo` is safe to keep on a restart.

use anyhow::{Context as _, bail};
use opentrail_event::{IngestContext, parse_batch};
use opentrail_generator::{DAY_MS, Generator, GeneratorConfig};
use opentrail_server::Server;

/// About a day of a small organisation's trail; loads in seconds.
pub const DEMO_EVENTS: u64 = 100_000;
const DEMO_SEED: u64 = 2026;
const BATCH_EVENTS: usize = 1_000;

/// Appends the demo day unless the store already holds events; returns how many events
/// were added (`None`: the data directory was not fresh).
pub async fn fill_if_fresh(server: &Server) -> anyhow::Result<Option<u64>> {
    let state = server.state();
    let store = state.store.clone();
    if store
        .stats()
        .context("cannot read the store's state")?
        .last_seq
        > 0
    {
        return Ok(None);
    }
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let config = GeneratorConfig {
        seed: DEMO_SEED,
        events: DEMO_EVENTS,
        start_ms: now_ms - DAY_MS,
        duration_ms: DAY_MS,
        primary_account: state.config.account_id.clone(),
        primary_region: state.config.region.clone(),
        stories: true,
    };
    let context = IngestContext {
        account_id: state.config.account_id.clone(),
        region: state.config.region.clone(),
    };
    // The store's append blocks on fsync: keep it off the async threads.
    tokio::task::spawn_blocking(move || {
        let mut generator = Generator::new(config);
        let mut body = Vec::with_capacity(BATCH_EVENTS * 1600);
        let mut added = 0u64;
        loop {
            body.clear();
            if generator.next_ndjson_batch(BATCH_EVENTS, &mut body) == 0 {
                break;
            }
            let batch =
                parse_batch(&body, &context).context("a generated demo batch does not parse")?;
            if let Some(failure) = batch.failures.first() {
                bail!("a generated demo event is invalid: {}", failure.message);
            }
            let records: Vec<_> = batch
                .records
                .into_iter()
                .map(|(_, record)| record)
                .collect();
            added += records.len() as u64;
            store
                .append(records)
                .context("cannot store the demo events")?;
        }
        Ok(Some(added))
    })
    .await
    .context("the demo loader panicked")?
}

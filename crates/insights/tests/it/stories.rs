//! The generator's spike stories, analysed as a server would: exactly one Start/End pair
//! for each, and the attribution names the principal that caused it.

use std::sync::Arc;

use opentrail_event::{IngestContext, parse_batch};
use opentrail_generator::{Generator, GeneratorConfig, stories};
use opentrail_insights::{Analyzer, InsightsConsumer, Settings};
use opentrail_store::{EventLane, LookupQuery, Store, StoreOptions};
use serde_json::Value;

use crate::Switch;

#[test]
fn each_spike_story_is_exactly_one_pair_naming_its_principal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store"), StoreOptions::default()).expect("store");
    let config = GeneratorConfig::new(7, 20_000);
    let (account, region) = (
        config.primary_account.clone(),
        config.primary_region.clone(),
    );
    let end_ms = config.end_ms();
    let mut generator = Generator::new(config);
    let context = IngestContext {
        account_id: account.clone(),
        region: region.clone(),
    };
    let mut body = Vec::new();
    while generator.next_ndjson_batch(2_000, &mut body) > 0 {
        let batch = parse_batch(&body, &context).expect("batch");
        assert!(batch.failures.is_empty());
        store
            .append(
                batch
                    .records
                    .into_iter()
                    .map(|(_, record)| record)
                    .collect(),
            )
            .expect("append");
        body.clear();
    }
    // A one-hour baseline: the spikes come 20 and 22 hours into the day.
    let settings = Settings::with_baseline_minutes(60);
    let mut consumer = InsightsConsumer::open(
        store.clone(),
        &dir.path().join("insights"),
        settings,
        Arc::new(Switch::on()),
        Arc::new(std::sync::Mutex::new(Analyzer::new(settings))),
    )
    .expect("consumer");
    crate::drain(&mut consumer, end_ms + 3_600_000);

    let mut query = LookupQuery::new(Some(account.clone()), Some(region), 50);
    query.lane = EventLane::Insight;
    let records: Vec<Value> = store
        .lookup(&query)
        .expect("lookup")
        .events
        .iter()
        .map(|stored| serde_json::from_str(&stored.record.json).expect("JSON"))
        .collect();
    let pair = |event_name: &str| -> Vec<&Value> {
        records
            .iter()
            .filter(|record| record["insightDetails"]["eventName"] == event_name)
            .collect()
    };
    let calls = pair(stories::CALL_SPIKE_EVENT_NAME);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let errors = pair(stories::ERROR_SPIKE_EVENT_NAME);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    for (records, insight_type, principal) in [
        (
            calls,
            "ApiCallRateInsight",
            format!("assumed-role/{}/", stories::CALL_SPIKE_ROLE),
        ),
        (
            errors,
            "ApiErrorRateInsight",
            format!(":user/{}", stories::ERROR_SPIKE_USER),
        ),
    ] {
        assert_eq!(records[0]["sharedEventID"], records[1]["sharedEventID"]);
        let mut states: Vec<&str> = records
            .iter()
            .map(|record| record["insightDetails"]["state"].as_str().unwrap_or(""))
            .collect();
        states.sort();
        assert_eq!(states, ["End", "Start"]);
        for record in records {
            assert_eq!(record["insightDetails"]["insightType"], insight_type);
            let attributions = record["insightDetails"]["insightContext"]["attributions"]
                .as_array()
                .expect("attributions");
            let top_arn = attributions
                .iter()
                .find(|attribution| attribution["attribute"] == "userIdentityArn")
                .and_then(|attribution| attribution["insight"][0]["value"].as_str())
                .unwrap_or_default();
            assert!(
                top_arn.contains(&principal),
                "{top_arn} should name {principal}"
            );
        }
    }
    let error_record = pair(stories::ERROR_SPIKE_EVENT_NAME)[0];
    assert_eq!(
        error_record["insightDetails"]["errorCode"],
        stories::ERROR_SPIKE_ERROR_CODE
    );
}

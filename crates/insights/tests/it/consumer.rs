//! The consumer against a real store: the records it appends, their attributions, a
//! replay from an older snapshot (a crash before the snapshot), the metrics, and turning
//! Insights off.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentrail_event::{FilterField, IngestContext, parse_batch};
use opentrail_insights::{
    Analyzer, INSIGHTS_CONSUMER, InsightType, Insights, InsightsConsumer, InsightsOptions,
    InsightsScope, MetricQuery, Settings, SourceCategory,
};
use opentrail_store::{EventLane, LookupQuery, Store, StoreOptions};
use serde_json::Value;

use crate::{ACCOUNT, MINUTE_MS, REGION, Switch, T0, call, drain};

const W: i64 = 10;

fn append(store: &Store, records: &[String]) {
    let body = records.join("\n");
    let context = IngestContext {
        account_id: ACCOUNT.into(),
        region: REGION.into(),
    };
    let batch = parse_batch(body.as_bytes(), &context).expect("batch parses");
    assert!(batch.failures.is_empty(), "{:?}", batch.failures);
    store
        .append(
            batch
                .records
                .into_iter()
                .map(|(_, record)| record)
                .collect(),
        )
        .expect("append");
}

/// Twelve minutes of `ci` writing twice a minute, then `mallory` 40 times in minute 12,
/// then nothing.
fn baseline_and_burst(store: &Store) {
    let mut records = Vec::new();
    for minute in 0..12 {
        for i in 0..2 {
            let id = (minute * 10 + i) as u64;
            records.push(call(
                T0 + minute * MINUTE_MS + i * 20_000,
                "PutParameter",
                "ci",
                false,
                None,
                id,
            ));
        }
    }
    append(store, &records);
    burst(store);
}

fn burst(store: &Store) {
    let records: Vec<String> = (0..40)
        .map(|i| {
            call(
                T0 + 12 * MINUTE_MS + i * 1_000,
                "PutParameter",
                "mallory",
                false,
                None,
                1_000 + i as u64,
            )
        })
        .collect();
    append(store, &records);
}

fn consumer(store: &Store, dir: &Path, scope: Arc<dyn InsightsScope>) -> InsightsConsumer {
    InsightsConsumer::open(
        store.clone(),
        dir,
        Settings::with_baseline_minutes(W),
        scope,
        Arc::new(Mutex::new(Analyzer::new(Settings::with_baseline_minutes(
            W,
        )))),
    )
    .expect("consumer opens")
}

fn insight_records(store: &Store) -> Vec<Value> {
    let mut query = LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), 50);
    query.lane = EventLane::Insight;
    let page = store.lookup(&query).expect("lookup");
    let mut records: Vec<Value> = page
        .events
        .iter()
        .map(|stored| serde_json::from_str(&stored.record.json).expect("JSON"))
        .collect();
    records.sort_by_key(|record| {
        record["insightDetails"]["state"]
            .as_str()
            .map(str::to_owned)
    });
    records.reverse();
    records
}

#[test]
fn a_burst_becomes_a_start_and_end_pair_naming_the_principal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store"), StoreOptions::default()).expect("store");
    baseline_and_burst(&store);
    let mut insights = consumer(&store, &dir.path().join("insights"), Arc::new(Switch::on()));
    drain(&mut insights, T0 + 30 * MINUTE_MS);

    let records = insight_records(&store);
    assert_eq!(records.len(), 2, "{records:#?}");
    let (start, end) = (&records[0], &records[1]);
    assert_eq!(start["insightDetails"]["state"], "Start");
    assert_eq!(end["insightDetails"]["state"], "End");
    assert_eq!(start["sharedEventID"], end["sharedEventID"]);
    assert_ne!(start["eventID"], end["eventID"]);
    for record in &records {
        assert_eq!(record["eventType"], "AwsCloudTrailInsight");
        assert_eq!(record["eventCategory"], "Insight");
        assert_eq!(record["recipientAccountId"], ACCOUNT);
        assert!(record.get("userIdentity").is_none());
        let details = &record["insightDetails"];
        assert_eq!(details["eventName"], "PutParameter");
        assert_eq!(details["eventSource"], "ssm.amazonaws.com");
        assert_eq!(details["insightType"], "ApiCallRateInsight");
        let statistics = &details["insightContext"]["statistics"];
        assert_eq!(statistics["baseline"]["average"], 2.0);
        assert_eq!(statistics["baselineDuration"], W);
        let attributions = details["insightContext"]["attributions"]
            .as_array()
            .expect("attributions");
        let by_arn = attributions
            .iter()
            .find(|attribution| attribution["attribute"] == "userIdentityArn")
            .expect("userIdentityArn attribution");
        assert_eq!(
            by_arn["insight"][0]["value"],
            format!("arn:aws:iam::{ACCOUNT}:user/mallory"),
            "the principal that caused it comes first"
        );
        assert_eq!(
            by_arn["baseline"][0]["value"],
            format!("arn:aws:iam::{ACCOUNT}:user/ci")
        );
    }
    assert_eq!(start["eventTime"], "2025-06-02T00:12:00Z");
    assert_eq!(end["eventTime"], "2025-06-02T00:13:00Z");
    assert_eq!(
        end["insightDetails"]["insightContext"]["statistics"]["insightDuration"],
        1
    );
    assert_eq!(
        end["insightDetails"]["insightContext"]["statistics"]["insight"]["average"],
        40.0
    );

    // Looked up by name, as LookupEvents does with EventCategory=insight.
    let mut query = LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), 50);
    query.lane = EventLane::Insight;
    query.filters = vec![(FilterField::EventName, "PutParameter".into())];
    assert_eq!(store.lookup(&query).expect("lookup").events.len(), 2);
    // The consumer reads its own records too (and skips them); then the cursor is saved.
    drain(&mut insights, T0 + 30 * MINUTE_MS);
    insights.save().expect("snapshot");
    assert_eq!(
        store.load_cursor(INSIGHTS_CONSUMER).expect("cursor"),
        store.last_seq()
    );
}

#[test]
fn a_crash_before_the_snapshot_replays_without_repeating_a_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let insights_dir = dir.path().join("insights");
    let store = Store::open(&dir.path().join("store"), StoreOptions::default()).expect("store");
    let mut records = Vec::new();
    for minute in 0..12 {
        for i in 0..2 {
            records.push(call(
                T0 + minute * MINUTE_MS + i * 20_000,
                "PutParameter",
                "ci",
                false,
                None,
                (minute * 10 + i) as u64,
            ));
        }
    }
    append(&store, &records);
    let mut first = consumer(&store, &insights_dir, Arc::new(Switch::on()));
    // The clock stops inside minute 12, so the minutes after the baseline are not judged
    // yet (drain's last run reads the clock at 00:12).
    drain(&mut first, T0 + 7 * MINUTE_MS);
    first.save().expect("snapshot");
    let old_snapshot = copy_dir(&insights_dir, &dir.path().join("old"));
    burst(&store);
    drain(&mut first, T0 + 30 * MINUTE_MS);
    assert_eq!(insight_records(&store).len(), 2);
    drop(first);

    // The records reached the store, but the snapshot on disk is the older one.
    std::fs::remove_dir_all(&insights_dir).expect("remove");
    copy_dir(&old_snapshot, &insights_dir);
    let mut replay = consumer(&store, &insights_dir, Arc::new(Switch::on()));
    drain(&mut replay, T0 + 30 * MINUTE_MS);
    let records = insight_records(&store);
    assert_eq!(
        records.len(),
        2,
        "the replay found the same period: {records:#?}"
    );
}

#[test]
fn periods_in_accounts_without_insights_are_judged_but_not_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store"), StoreOptions::default()).expect("store");
    baseline_and_burst(&store);

    struct OtherAccountOnly;
    impl InsightsScope for OtherAccountOnly {
        fn any_enabled(&self) -> bool {
            true
        }
        fn is_enabled(&self, account: &str, _: &str, _: InsightType, _: SourceCategory) -> bool {
            account == "999999999999"
        }
    }
    let mut insights = consumer(
        &store,
        &dir.path().join("insights"),
        Arc::new(OtherAccountOnly),
    );
    drain(&mut insights, T0 + 30 * MINUTE_MS);
    assert!(insight_records(&store).is_empty());
}

#[test]
fn the_worker_reports_the_burst_and_serves_its_metrics_and_forgets_when_turned_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store"), StoreOptions::default()).expect("store");
    baseline_and_burst(&store);
    let scope = Arc::new(Switch::on());
    let options = InsightsOptions {
        dir: dir.path().join("insights"),
        settings: Settings::with_baseline_minutes(W),
    };
    let insights = Insights::new(store.clone(), options, scope.clone());
    let worker = insights.start().expect("worker starts");
    wait_for(|| insight_records(&store).len() == 2);

    let query = MetricQuery {
        account_id: ACCOUNT.into(),
        region: REGION.into(),
        event_source: "ssm.amazonaws.com".into(),
        event_name: "PutParameter".into(),
        insight_type: InsightType::ApiCallRateInsight,
        error_code: None,
        category: SourceCategory::Management,
        start_ms: T0,
        end_ms: T0 + 15 * MINUTE_MS,
        period_seconds: 60,
        fill_with_zeros: true,
    };
    let points = insights.metric_data(&query).expect("metrics");
    assert_eq!(points.len(), 15);
    assert_eq!(points[0], (T0, 2.0));
    assert_eq!(points[12], (T0 + 12 * MINUTE_MS, 40.0));
    assert_eq!(points[13], (T0 + 13 * MINUTE_MS, 0.0));
    let hourly = insights
        .metric_data(&MetricQuery {
            period_seconds: 3600,
            fill_with_zeros: false,
            end_ms: T0 + 60 * MINUTE_MS,
            ..query.clone()
        })
        .expect("metrics");
    assert_eq!(hourly, vec![(T0, 64.0)]);

    // The console's timeline: every minute, with the baseline band before each.
    let timeline = insights
        .timeline(&MetricQuery {
            start_ms: T0 + 10 * MINUTE_MS,
            end_ms: T0 + 14 * MINUTE_MS,
            ..query.clone()
        })
        .expect("timeline");
    assert_eq!(timeline.baseline_minutes, W);
    let counts: Vec<f64> = timeline.points.iter().map(|(_, count)| *count).collect();
    assert_eq!(counts, [2.0, 2.0, 40.0, 0.0]);
    let (_, average, threshold) = timeline.band[2];
    assert_eq!(average, 2.0, "the ten minutes before the burst");
    assert!(threshold > average && threshold <= 40.0, "{threshold}");
    let (_, after_average, _) = timeline.band[3];
    assert_eq!(
        after_average,
        (9.0 * 2.0 + 40.0) / 10.0,
        "the burst enters the window"
    );

    // The records are appended before the cursor is saved: wait for the save, or a cursor
    // not yet written would pass for a forgotten one below.
    wait_for(|| {
        store
            .load_cursor(INSIGHTS_CONSUMER)
            .is_ok_and(|seq| seq > 0)
    });

    // Off everywhere: the analysis is forgotten and the cursor no longer holds retention.
    scope.0.store(false, std::sync::atomic::Ordering::Release);
    wait_for(|| {
        !store
            .load_cursor(INSIGHTS_CONSUMER)
            .is_ok_and(|seq| seq > 0)
    });
    worker.stop();
    assert!(
        insights
            .metric_data(&query)
            .expect("metrics")
            .iter()
            .all(|(_, count)| *count == 0.0)
    );
}

fn wait_for(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
    to.to_path_buf()
}

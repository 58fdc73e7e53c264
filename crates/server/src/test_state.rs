//! The `AppState` the in-process router tests (`routes::tests`, `console::tests`) run
//! against: a fresh data directory with its store, keys (and the first admin key),
//! trails, channels and detections, as `Server::start` would open them.

use std::sync::Arc;

use opentrail_store::{Store, StoreOptions};

use crate::config::Config;
use crate::keys::{CreatedAccessKey, KeyStore};
use crate::observability::prometheus_handle;
use crate::state::AppState;

pub(crate) struct TestState {
    pub state: AppState,
    pub admin: CreatedAccessKey,
    pub data_dir: tempfile::TempDir,
}

/// A state over a fresh data directory; `configure` adjusts the default configuration.
pub(crate) fn test_state(configure: impl FnOnce(&mut Config)) -> TestState {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        data_dir: data_dir.path().to_owned(),
        ..Config::default()
    };
    configure(&mut config);
    let store = Store::open(&config.store_dir(), StoreOptions::default()).expect("store");
    let keys = KeyStore::open(data_dir.path()).expect("keys");
    let admin = keys
        .create_first_admin_key_if_none(
            &config.account_id,
            &config.region,
            &data_dir.path().join("credentials"),
        )
        .expect("bootstrap")
        .expect("first admin");
    let trails = opentrail_trails::Trails::open(
        store.clone(),
        opentrail_trails::TrailsOptions::from_config(config.trails_config()),
    )
    .expect("trails");
    let detections = opentrail_detect::Detections::open(
        store.clone(),
        opentrail_detect::DetectionsOptions {
            alerts_dir: data_dir.path().join("alerts"),
            rules_state_dir: data_dir.path().join("detections"),
            rules_dir: None,
            targets: Vec::new(),
        },
    )
    .expect("detections");
    let acknowledgements =
        opentrail_detect::Acknowledgements::open(&data_dir.path().join("alerts"))
            .expect("acknowledgements");
    let insights = crate::insights::open_insights(&config, &store, &trails);
    let lake = crate::lake::open_lake(&config, &store).expect("lake");
    let state = AppState {
        lake,
        config: Arc::new(config),
        keys,
        audit: crate::audit::AuditRecorder::start(store.clone()),
        channels: crate::channels::ChannelRegistry::open(data_dir.path()).expect("channels"),
        ingest: crate::ingest::IngestLimiter::default(),
        rate_limiter: crate::rate_limit::RateLimiter::default(),
        store,
        metrics: prometheus_handle().expect("metrics"),
        insights,
        trails,
        detections: Arc::new(detections),
        acknowledgements: Arc::new(acknowledgements),
    };
    TestState {
        state,
        admin,
        data_dir,
    }
}

/// What the in-process router tests put in front of the router: every request comes from
/// 127.0.0.1 (rate limits and audit records read the peer address).
pub(crate) fn local_peer() -> axum::extract::connect_info::MockConnectInfo<std::net::SocketAddr> {
    axum::extract::connect_info::MockConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 9)))
}

/// Appends to `state`'s alert log an alert of `account` for the event at `seq` (a
/// DynamoDB table deleted); its id.
pub(crate) fn raise_alert(state: &AppState, seq: u64, account: &str) -> String {
    let alert = opentrail_detect::Alert {
        alert_id: format!("{seq}-rule-1"),
        rule_id: "rule-1".into(),
        rule_title: "DynamoDB table deleted".into(),
        level: "high".into(),
        event_id: format!("event-{seq}"),
        event_name: "DeleteTable".into(),
        event_source: "dynamodb.amazonaws.com".into(),
        event_time: "2026-11-25T09:14:03Z".into(),
        recipient_account_id: account.into(),
        aws_region: "us-east-1".into(),
        seq,
        detected_at: "2026-11-25T09:14:04Z".into(),
    };
    state
        .detections
        .alerts()
        .append(std::slice::from_ref(&alert))
        .expect("append alert");
    alert.alert_id
}

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
    let state = AppState {
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

//! What every handler shares: a leaf module, so routes and the console depend on it and
//! not on `app.rs`, which builds the router and so depends on them.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use opentrail_detect::{Acknowledgements, Detections};
use opentrail_insights::Insights;
use opentrail_store::Store;
use opentrail_trails::Trails;

use axum::extract::FromRef;

use crate::audit::AuditRecorder;
use crate::auth::{Authenticator, BodyLimit};
use crate::channels::ChannelRegistry;
use crate::config::Config;
use crate::ingest::IngestLimiter;
use crate::keys::KeyStore;
use crate::lake::LakeService;
use crate::rate_limit::RateLimiter;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub keys: KeyStore,
    pub store: Store,
    pub metrics: PrometheusHandle,
    pub channels: ChannelRegistry,
    pub audit: AuditRecorder,
    pub ingest: IngestLimiter,
    pub rate_limiter: RateLimiter,
    /// Trails and their delivery workers (started by [`crate::Server::run_until`]).
    pub trails: Trails,
    /// Sigma rules, the alert log and their workers.
    pub detections: Arc<Detections>,
    /// Which alerts were acknowledged, by whom (beside the alert log, in `DATA_DIR/alerts`).
    pub acknowledgements: Arc<Acknowledgements>,
    /// Insights: the analysis behind ListInsightsMetricData, and its worker.
    pub insights: Arc<Insights>,
    /// CloudTrail Lake: event data stores and SQL queries over them.
    pub lake: LakeService,
}

impl FromRef<AppState> for AuditRecorder {
    fn from_ref(state: &AppState) -> AuditRecorder {
        state.audit.clone()
    }
}

impl FromRef<AppState> for BodyLimit {
    fn from_ref(state: &AppState) -> BodyLimit {
        BodyLimit(state.config.ingest_body_bytes_max)
    }
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Authenticator {
        Authenticator {
            keys: state.keys.clone(),
            config: state.config.clone(),
        }
    }
}

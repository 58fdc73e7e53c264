//! Why the server could not start or stopped: the crate's error type, a leaf that
//! `app.rs`, `recording.rs` and the binary share.

use std::net::SocketAddr;
use std::path::PathBuf;

use opentrail_archive::ArchiveError;
use opentrail_store::StoreError;
use opentrail_trails::TrailsError;

use crate::channels::ChannelRegistryError;
use crate::keys::KeyStoreError;
use crate::observability::MetricsInstallError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("cannot create data directory {path}: {source}")]
    DataDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the event store in {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("cannot open the access keys: {0}")]
    Keys(#[from] KeyStoreError),
    #[error("cannot open the Parquet archive in {path}: {source}")]
    Archive {
        path: PathBuf,
        #[source]
        source: ArchiveError,
    },
    #[error("cannot open the trails: {0}")]
    Trails(#[from] TrailsError),
    #[error("cannot start detections: {0}")]
    Detections(#[source] opentrail_detect::DetectError),
    #[error("cannot start Insights: {0}")]
    Insights(#[source] opentrail_insights::InsightsError),
    #[error("cannot start the archiver: {0}")]
    ArchiveWorker(#[source] ArchiveError),
    #[error("cannot open CloudTrail Lake's data in {path}: {detail}")]
    Lake { path: PathBuf, detail: String },
    #[error("cannot open the channels: {0}")]
    Channels(#[from] ChannelRegistryError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] MetricsInstallError),
    #[error("cannot start a recording proxy: {0}")]
    Proxy(#[from] opentrail_proxy::ProxyError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("a background task failed: {0}")]
    BackgroundTask(#[from] tokio::task::JoinError),
}

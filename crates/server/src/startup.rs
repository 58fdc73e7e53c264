//! The steps of starting that the server and `opentrail proxy` share: opening the event
//! store with the options the configuration sets (the one place that maps `Config` to
//! `StoreOptions`), and binding a listening socket.

use std::net::SocketAddr;
use std::time::Duration;

use opentrail_durable::create_private_directory;
use opentrail_store::{Store, StoreOptions};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::ServeError;

/// The data directory's store alone, for `opentrail proxy --data-dir` (blocking).
pub fn open_store_only(config: &Config) -> Result<Store, ServeError> {
    create_private_directory(&config.data_dir).map_err(|source| ServeError::DataDirectory {
        path: config.data_dir.clone(),
        source,
    })?;
    open_store(config)
}

/// The one place the store is opened, so its options follow the configuration.
pub(crate) fn open_store(config: &Config) -> Result<Store, ServeError> {
    const SECONDS_PER_DAY: u64 = 24 * 60 * 60;
    let store_dir = config.store_dir();
    let options = StoreOptions {
        retention: Duration::from_secs(u64::from(config.retention_days) * SECONDS_PER_DAY),
        append_queue_max: config.ingest_queue_max,
        seal_interval: Duration::from_secs(u64::from(config.seal_interval_secs)),
        free_space_reserve_bytes: config
            .free_space_reserve_mb
            .map(|megabytes| megabytes.saturating_mul(1_000_000)),
        segments_location: config.segments_location(),
        ..StoreOptions::default()
    };
    Store::open(&store_dir, options).map_err(|source| ServeError::Store {
        path: store_dir,
        source,
    })
}

/// A listening socket on `address`, or the error that names it.
pub(crate) async fn bind(address: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Bind { address, source })
}

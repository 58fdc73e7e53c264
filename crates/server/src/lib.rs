//! The OpenTrail server: the axum application, authentication and permissions, access
//! keys, configuration and operations (health, metrics, request ids, shutdown).
//!
//! - [`config`]: the typed [`Config`] and its layers (defaults, TOML, environment, flags).
//! - [`keys`]: access keys with roles and accounts; secrets sealed at rest.
//! - [`lookup`]: every API's lookup becomes a store query here.
//! - [`auth`]: SigV4 / bearer-token authentication middleware and the [`auth::Caller`].
//! - [`routes`]: the router; new APIs are added in [`routes::authenticated_routes`].
//! - [`app`]: startup ([`Server::start`]), serving and graceful shutdown ([`serve`]);
//!   [`error`] says why the server could not start; [`startup`] opens the store and binds listeners.
//! - [`observability`]: request ids, request logs, Prometheus metrics.
//! - [`console`]: the web console at `/console` (cookie sessions, embedded assets).
//! - [`insights`]: CloudTrail Insights, on when a trail's Insights selectors ask.
//! - [`postgres`]: the Postgres wire protocol (`pg_listen`) over the same event data stores.
//! - [`lake`]: CloudTrail Lake's event data stores and queries (`opentrail-lake`), whose
//!   API is [`routes::lake`].
//! - [`recording`]: the recording proxies (`[[proxy]]`, `opentrail proxy`) and the sink
//!   that appends their records to the store.
//!
//! Wire shapes and AWS error codes come from `opentrail-protocol`; events are stored by
//! `opentrail-store`. This crate only connects them to HTTP.

pub mod api_error;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod channels;
pub mod config;
pub mod connections;
pub mod console;
pub mod error;
pub mod ingest;
pub mod insights;
pub mod keys;
pub mod lake;
pub mod lookup;
pub mod observability;
pub mod postgres;
pub mod rate_limit;
pub mod recording;
pub mod routes;
pub mod startup;
pub mod state;
#[cfg(test)]
mod test_state;
pub mod tls;

pub use app::{Server, serve, shutdown_signal};
pub use config::{Config, ConfigError, ConfigLayer};
pub use error::ServeError;
pub use state::AppState;

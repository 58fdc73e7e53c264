//! Starting and stopping the server.
//!
//! [`Server::start`] does everything that can fail before traffic arrives: it creates the
//! data directory, opens the store (which also takes its lock, so a second server on the
//! same directory stops here), opens the key store, creates the first admin key on first
//! start, and binds the listener. Only then does [`Server::run_until`] accept requests, so
//! a `GET /health` that answers at all means the server is ready.
//!
//! Shutdown (SIGTERM or SIGINT): stop accepting, let in-flight requests finish (bounded by
//! [`SHUTDOWN_GRACE`]), then flush and close the store.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opentrail_store::Store;
use tokio::net::TcpListener;

use opentrail_archive::{ArchiveOptions, Archiver};
use opentrail_detect::{Acknowledgements, Detections, DetectionsOptions};
use opentrail_trails::Trails;

use crate::audit::AuditRecorder;
use crate::channels::ChannelRegistry;
use crate::config::Config;
use crate::error::ServeError;
use crate::ingest::IngestLimiter;
use crate::keys::{CREDENTIALS_FILE_NAME, KeyStore};
use crate::lake::{LakeService, open_lake};
use crate::observability;
use crate::rate_limit::RateLimiter;
use crate::routes;
use crate::startup::{bind, open_store};
use crate::state::AppState;
use opentrail_durable::create_private_directory;

/// How long in-flight requests may take to finish after a shutdown signal. Ingest answers
/// only after fsync, so this is generous; past it the process exits anyway rather than
/// hang on a stuck client.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Where the Parquet archive lives, under the data directory.
pub const ARCHIVE_DIR_NAME: &str = "archive";

/// Where the alert log and its delivery state live, under the data directory.
pub const ALERTS_DIR_NAME: &str = "alerts";
/// Rules added through the API, and which rules are disabled.
pub const DETECTIONS_DIR_NAME: &str = "detections";

/// How often the archiver checks whether a seal is due.
const ARCHIVE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A server that is ready and bound, but not yet accepting.
pub struct Server {
    state: AppState,
    listener: TcpListener,
    local_addr: SocketAddr,
    credentials_file: PathBuf,
    created_first_admin_key: bool,
    archiver: Archiver,
    /// Set when serving HTTPS: the certificate SIGHUP reloads.
    tls: Option<(
        tokio_rustls::TlsAcceptor,
        Arc<crate::tls::ReloadableCertificate>,
    )>,
    /// The `[[proxy]]` sections, bound, and the task appending what they record.
    proxies: Vec<crate::recording::BoundProxy>,
    proxy_records_writer: Option<tokio::task::JoinHandle<()>>,
    /// The Postgres wire protocol (`pg_listen`): its address and the task serving it.
    postgres: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
}

impl Server {
    pub async fn start(config: Config) -> Result<Server, ServeError> {
        let config = Arc::new(config);
        let metrics = observability::prometheus_handle()?;

        // Bad certificate files fail the start before anything else is opened.
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(certificate), Some(key)) => {
                let certificate =
                    Arc::new(crate::tls::ReloadableCertificate::load(certificate, key)?);
                Some((crate::tls::acceptor(Arc::clone(&certificate))?, certificate))
            }
            _ => None,
        };
        let opened = {
            let config = Arc::clone(&config);
            tokio::task::spawn_blocking(move || open_data_directory(&config)).await??
        };

        let listener = bind(config.listen).await?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
            address: config.listen,
            source,
        })?;
        let (proxies, proxy_records_writer) = if config.proxies.is_empty() {
            (Vec::new(), None)
        } else {
            let context = opentrail_event::IngestContext {
                account_id: config.account_id.clone(),
                region: config.region.clone(),
            };
            let (sink, writer) = crate::recording::StoreRecordSink::start(
                opened.store.clone(),
                Some(Arc::clone(opened.detections.screening())),
                context,
            );
            let proxies = crate::recording::bind_proxies(
                &crate::recording::owned_by(&config.proxies, &config),
                sink,
            )
            .await?;
            (proxies, Some(writer))
        };
        tracing::info!(
            listen = %local_addr,
            data_dir = %config.data_dir.display(),
            account_id = config.account_id.as_str(),
            region = config.region.as_str(),
            tls = tls.is_some(),
            "opentrail is ready"
        );
        let insights = crate::insights::open_insights(&config, &opened.store, &opened.trails);
        let postgres = match config.pg_listen {
            Some(address) => Some(
                crate::postgres::bind(
                    address,
                    opened.keys.clone(),
                    opened.lake.clone(),
                    config.region.clone(),
                )
                .await
                .map_err(|source| ServeError::Bind { address, source })?,
            ),
            None => None,
        };
        Ok(Server {
            state: AppState {
                config,
                keys: opened.keys,
                audit: AuditRecorder::start(opened.store.clone()),
                store: opened.store,
                metrics,
                channels: opened.channels,
                lake: opened.lake,
                ingest: IngestLimiter::default(),
                rate_limiter: RateLimiter::default(),
                insights,
                trails: opened.trails,
                detections: Arc::new(opened.detections),
                acknowledgements: Arc::new(opened.acknowledgements),
            },
            listener,
            local_addr,
            credentials_file: opened.credentials_file,
            created_first_admin_key: opened.created_first_admin_key,
            archiver: opened.archiver,
            tls,
            proxies,
            proxy_records_writer,
            postgres,
        })
    }

    /// Where the Postgres wire protocol is served, when `pg_listen` asks for it.
    pub fn postgres_addr(&self) -> Option<SocketAddr> {
        self.postgres.as_ref().map(|(address, _)| *address)
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `DATA_DIR/credentials`; it exists unless the operator removed it.
    pub fn credentials_file(&self) -> &Path {
        &self.credentials_file
    }

    /// True when this start created the first admin key (and wrote the credentials file).
    pub fn created_first_admin_key(&self) -> bool {
        self.created_first_admin_key
    }

    /// A shell line that points the aws CLI at this server with the admin credentials.
    pub fn aws_cli_hint(&self) -> String {
        aws_cli_hint(&self.credentials_file, &self.endpoint_url())
    }

    /// The URL a client on this machine reaches the server at.
    pub fn endpoint_url(&self) -> String {
        endpoint_url(self.local_addr, self.tls.is_some())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains in-flight requests (at most
    /// [`SHUTDOWN_GRACE`]) and closes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            state,
            listener,
            archiver,
            tls,
            proxies,
            proxy_records_writer,
            postgres,
            ..
        } = self;
        let certificate_reload = tls
            .as_ref()
            .map(|(_, certificate)| spawn_certificate_reload(Arc::clone(certificate)));
        let upkeep = observability::spawn_metrics_upkeep(state.metrics.clone());
        let archiver = archiver
            .spawn(ARCHIVE_CHECK_INTERVAL)
            .map_err(ServeError::ArchiveWorker)?;
        let retention = spawn_retention(state.store.clone());
        state.trails.start();
        let detection_workers = state.detections.start().map_err(ServeError::Detections)?;
        let insights_worker = state.insights.start().map_err(ServeError::Insights)?;
        let app = routes::router(state.clone());
        let limits = state.config.connection_limits();

        let (shutdown_started_sender, shutdown_started) = tokio::sync::oneshot::channel::<()>();
        let (proxies_closing_sender, proxies_closing) = tokio::sync::watch::channel(false);
        let proxies_serving = tokio::spawn(crate::recording::serve_proxies(
            proxies,
            limits,
            proxies_closing,
        ));
        let graceful = async move {
            shutdown.await;
            tracing::info!("shutdown requested: no new connections; finishing requests in flight");
            let _ = proxies_closing_sender.send(true);
            let _ = shutdown_started_sender.send(());
        };
        let serving = crate::connections::serve(
            listener,
            app,
            limits,
            tls.map(|(acceptor, _)| acceptor),
            graceful,
        );
        let grace_expired = async move {
            // A dropped sender (serve ended on its own) must not count as a signal.
            if shutdown_started.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            () = serving => Ok(()),
            () = grace_expired => {
                tracing::warn!(
                    grace_seconds = SHUTDOWN_GRACE.as_secs(),
                    "requests still in flight after the shutdown grace period; stopping anyway"
                );
                Ok(())
            }
        };
        // The proxies' last records go in before the store closes.
        if let Err(error) = proxies_serving.await {
            tracing::error!(%error, "the recording proxies stopped with an error");
        }
        if let Some(writer) = proxy_records_writer
            && let Err(error) = writer.await
        {
            tracing::error!(%error, "storing the proxies' last records failed");
        }
        upkeep.abort();
        retention.abort();
        if let Some((_, serving)) = postgres {
            serving.abort();
        }
        if let Some(reload) = certificate_reload {
            reload.abort();
        }
        // Self-audit records of the last requests go in before the store closes.
        state.audit.close().await;
        // Delivery workers finish (or abandon, to be redone) their batch while the store is open.
        state.trails.shutdown().await;
        // The scan in progress appends its alerts; the next start goes on after them.
        detection_workers.stop().await;
        // The scan in progress appends its records; the snapshot is saved for the next start.
        if tokio::task::spawn_blocking(move || insights_worker.stop())
            .await
            .is_err()
        {
            tracing::error!("stopping the Insights worker failed");
        }
        // A seal in progress finishes; unsealed events wait in the log for the next start.
        match tokio::task::spawn_blocking(move || archiver.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "the archiver stopped with an error"),
            Err(error) => tracing::error!(%error, "stopping the archiver failed"),
        }
        close_store(state).await;
        tracing::info!("opentrail stopped");
        result
    }
}

/// Reads the certificate and key files again on each SIGHUP (a renewed certificate),
/// keeping the one in use when they do not load.
fn spawn_certificate_reload(
    certificate: Arc<crate::tls::ReloadableCertificate>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangups = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        ) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGHUP; the TLS certificate will not be reloaded");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match certificate.reload() {
                Ok(()) => tracing::info!("SIGHUP: reloaded the TLS certificate"),
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: keeping the TLS certificate in use")
                }
            }
        }
    })
}

/// How often expired events are removed. Lookups already hide them the moment they
/// expire; this only reclaims the space.
const RETENTION_INTERVAL: Duration = Duration::from_secs(600);

/// Runs the store's retention pass now and then, off the async threads.
fn spawn_retention(store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(RETENTION_INTERVAL);
        loop {
            ticks.tick().await;
            let store = store.clone();
            let now_ms = jiff::Timestamp::now().as_millisecond();
            match tokio::task::spawn_blocking(move || store.expire(now_ms)).await {
                Ok(Ok(report)) if report.events_removed > 0 => {
                    metrics::counter!("opentrail_events_expired_total")
                        .increment(report.events_removed);
                    tracing::info!(
                        removed = report.events_removed,
                        through_seq = report.expired_through_seq,
                        "retention pass"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::error!(%error, "retention pass failed"),
                Err(error) => tracing::error!(%error, "retention task failed"),
            }
        }
    })
}

/// Starts a server from `config` and runs it until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let server = Server::start(config).await?;
    tracing::info!(hint = server.aws_cli_hint(), "try it with the aws CLI");
    server.run_until(shutdown_signal()).await
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// `AWS_SHARED_CREDENTIALS_FILE=/abs/credentials aws --endpoint-url http://… cloudtrail lookup-events`
pub fn aws_cli_hint(credentials_file: &Path, endpoint_url: &str) -> String {
    let absolute =
        std::path::absolute(credentials_file).unwrap_or_else(|_| credentials_file.to_owned());
    format!(
        "AWS_SHARED_CREDENTIALS_FILE={} aws --endpoint-url {} cloudtrail lookup-events",
        shell_quote(&absolute.display().to_string()),
        endpoint_url
    )
}

/// The URL a client on this machine uses to reach `listen`: a wildcard bind address is
/// reached through loopback.
pub fn endpoint_url(listen: SocketAddr, tls: bool) -> String {
    let mut reachable = listen;
    if listen.ip().is_unspecified() {
        reachable.set_ip(match listen {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{reachable}")
}

struct OpenedDataDirectory {
    store: Store,
    archiver: Archiver,
    detections: Detections,
    acknowledgements: Acknowledgements,
    trails: Trails,
    channels: ChannelRegistry,
    lake: LakeService,
    keys: KeyStore,
    credentials_file: PathBuf,
    created_first_admin_key: bool,
}

/// Blocking: directory creation, store recovery and key file I/O.
fn open_data_directory(config: &Config) -> Result<OpenedDataDirectory, ServeError> {
    create_private_directory(&config.data_dir).map_err(|source| ServeError::DataDirectory {
        path: config.data_dir.clone(),
        source,
    })?;
    // The store first: its directory lock keeps a second server away from keys.json too.
    let store = open_store(config)?;
    // Before retention ever runs: opening registers the archive's cursor, so retention
    // keeps every event the archive has not sealed yet.
    let archive_dir = config.data_dir.join(ARCHIVE_DIR_NAME);
    let archive_options = ArchiveOptions {
        retention: Duration::from_secs(u64::from(config.archive_retention_days) * 24 * 60 * 60),
        seal_age_max: Duration::from_secs(u64::from(config.archive_seal_age_secs)),
        archive_after: Duration::from_secs(u64::from(config.archive_after_days()) * 24 * 60 * 60),
        ..ArchiveOptions::default()
    };
    let archiver =
        Archiver::open(store.clone(), &archive_dir, archive_options).map_err(|source| {
            ServeError::Archive {
                path: archive_dir.clone(),
                source,
            }
        })?;
    // Also before retention: opening registers the detection consumer's cursor.
    let detections = Detections::open(
        store.clone(),
        DetectionsOptions {
            alerts_dir: config.data_dir.join(ALERTS_DIR_NAME),
            rules_state_dir: config.data_dir.join(DETECTIONS_DIR_NAME),
            rules_dir: config.rules_dir.clone(),
            targets: config.alert_targets(),
        },
    )
    .map_err(ServeError::Detections)?;
    let acknowledgements = Acknowledgements::open(&config.data_dir.join(ALERTS_DIR_NAME))
        .map_err(ServeError::Detections)?;
    let keys = KeyStore::open(&config.data_dir)?;
    let credentials_file = config.data_dir.join(CREDENTIALS_FILE_NAME);
    let first_admin_key =
        keys.create_first_admin_key_if_none(&config.account_id, &config.region, &credentials_file)?;
    if let Some(created) = &first_admin_key {
        tracing::info!(
            access_key_id = created.key.access_key_id.as_str(),
            account_id = created.key.account_id.as_str(),
            credentials_file = %credentials_file.display(),
            "first start: created an admin access key"
        );
    }
    let channels = ChannelRegistry::open(&config.data_dir)?;
    let trails_options = opentrail_trails::TrailsOptions::from_config(config.trails_config());
    let trails = Trails::open(store.clone(), trails_options)?;
    let lake = open_lake(config, &store)?;
    Ok(OpenedDataDirectory {
        lake,
        trails,
        store,
        archiver,
        detections,
        acknowledgements,
        channels,
        keys,
        credentials_file,
        created_first_admin_key: first_admin_key.is_some(),
    })
}

/// Flushes the store's memtables (a faster next start) and drops this last handle, which
/// lets the store's writer finish what is queued and exit.
async fn close_store(state: AppState) {
    let store = state.store.clone();
    drop(state);
    let closing = tokio::task::spawn_blocking(move || {
        if let Err(error) = store.flush_tables() {
            // Not a durability problem: the journal already holds every acknowledged event.
            tracing::warn!(%error, "could not flush the store's tables at shutdown");
        }
        drop(store);
    });
    if let Err(error) = closing.await {
        tracing::error!(%error, "closing the store failed");
    }
}

fn shell_quote(text: &str) -> String {
    let is_plain = |character: char| {
        character.is_ascii_alphanumeric()
            || matches!(character, '/' | '.' | '_' | '-' | ':' | '+' | ',' | '@')
    };
    if !text.is_empty() && text.chars().all(is_plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_uses_loopback_for_a_wildcard_bind_and_an_absolute_path() {
        let hint = aws_cli_hint(
            Path::new("/srv/opentrail/credentials"),
            &endpoint_url("0.0.0.0:4580".parse().expect("address"), false),
        );
        assert_eq!(
            hint,
            "AWS_SHARED_CREDENTIALS_FILE=/srv/opentrail/credentials aws --endpoint-url http://127.0.0.1:4580 cloudtrail lookup-events"
        );
        let relative = aws_cli_hint(
            Path::new("data/credentials"),
            &endpoint_url("127.0.0.1:9".parse().expect("address"), false),
        );
        assert!(
            relative.starts_with("AWS_SHARED_CREDENTIALS_FILE=/"),
            "{relative}"
        );
    }

    #[test]
    fn ipv6_endpoints_are_bracketed() {
        assert_eq!(
            endpoint_url("[::]:4580".parse().expect("address"), false),
            "http://[::1]:4580"
        );
        assert_eq!(
            endpoint_url("0.0.0.0:443".parse().expect("address"), true),
            "https://127.0.0.1:443"
        );
    }

    #[test]
    fn paths_with_spaces_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(shell_quote("/plain/path"), "/plain/path");
    }
}

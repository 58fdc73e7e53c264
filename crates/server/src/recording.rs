//! Calls recorded from outside OpenTrail's own API: the recording proxies (`[[proxy]]`
//! sections, and `opentrail proxy`) and [`StoreRecordSink`], which appends their records
//! to the store.
//!
//! The sink takes records without waiting (a bounded channel) and appends them in groups,
//! each made durable with one fsync like any ingest. While the store refuses writes (disk
//! full, overloaded) the group is retried with backoff; the channel then fills and the
//! proxies refuse new calls, so a call is never forwarded without its record.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use opentrail_detect::Screening;
use opentrail_event::{EventRecord, IngestContext};
use opentrail_proxy::{Proxy, ProxyConfig};
use opentrail_recorder::{RecordSink, SinkFull};
use opentrail_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::connections::ConnectionLimits;
use crate::error::ServeError;
use crate::ingest::append_to_store;

/// Records waiting to be appended; past it, proxies refuse calls.
const SINK_CHANNEL: usize = 16 * 1024;
const GROUP_RECORDS_MAX: usize = 1000;
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long `opentrail proxy` waits at shutdown for its queue to reach the server.
const REMOTE_FLUSH_AT_SHUTDOWN: Duration = Duration::from_secs(10);

/// Appends recorded calls to a local store.
pub struct StoreRecordSink {
    sender: mpsc::Sender<String>,
}

impl StoreRecordSink {
    /// Starts the appending task; it ends once every sink handle is dropped and what was
    /// queued is stored. With `screening` (a server's detections), the records are
    /// screened for the detection consumer as HTTP ingest's are.
    pub fn start(
        store: Store,
        screening: Option<Arc<Screening>>,
        context: IngestContext,
    ) -> (Arc<StoreRecordSink>, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(SINK_CHANNEL);
        let task = tokio::spawn(append_recorded(store, screening, context, receiver));
        (Arc::new(StoreRecordSink { sender }), task)
    }
}

impl RecordSink for StoreRecordSink {
    fn has_room(&self) -> bool {
        self.sender.capacity() > 0
    }

    fn submit(&self, record: String) -> Result<(), SinkFull> {
        self.sender.try_send(record).map_err(|_| SinkFull {
            reason: format!("{SINK_CHANNEL} records wait for the store"),
        })
    }
}

async fn append_recorded(
    store: Store,
    screening: Option<Arc<Screening>>,
    context: IngestContext,
    mut receiver: mpsc::Receiver<String>,
) {
    while let Some(first) = receiver.recv().await {
        let mut texts = vec![first];
        while texts.len() < GROUP_RECORDS_MAX
            && let Ok(next) = receiver.try_recv()
        {
            texts.push(next);
        }
        let records: Vec<EventRecord> = texts
            .iter()
            .filter_map(|text| match EventRecord::from_json_object(text, &context) {
                Ok(record) => Some(record),
                Err(error) => {
                    // The recorder builds these records; one failing is a bug, not input.
                    tracing::error!(%error, "a recorded call's record is invalid; dropped");
                    None
                }
            })
            .collect();
        let mut backoff = RETRY_FIRST;
        while let Err(error) =
            append_to_store(store.clone(), screening.clone(), records.clone()).await
        {
            tracing::warn!(error = %error.0.message, "the store refused recorded calls; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }
}

/// The proxies' settings with the records' account and region defaulting to the
/// server's, since they record into its store.
pub fn owned_by(proxies: &[ProxyConfig], config: &crate::Config) -> Vec<ProxyConfig> {
    proxies
        .iter()
        .cloned()
        .map(|mut proxy| {
            let recording = &mut proxy.recording;
            recording
                .account_id
                .get_or_insert_with(|| config.account_id.clone());
            recording
                .region
                .get_or_insert_with(|| config.region.clone());
            proxy
        })
        .collect()
}

/// A proxy and the socket it will serve on.
pub struct BoundProxy {
    proxy: Proxy,
    listener: TcpListener,
}

impl BoundProxy {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// Builds and binds each configured proxy, recording into `sink`.
pub async fn bind_proxies(
    configs: &[ProxyConfig],
    sink: Arc<dyn RecordSink>,
) -> Result<Vec<BoundProxy>, ServeError> {
    let mut bound = Vec::with_capacity(configs.len());
    for config in configs {
        let proxy = Proxy::new(config.clone(), Arc::clone(&sink))?;
        let listener = crate::startup::bind(config.listen).await?;
        tracing::info!(
            listen = %listener.local_addr().unwrap_or(config.listen),
            upstream = proxy.upstream(),
            "recording proxy is ready"
        );
        bound.push(BoundProxy { proxy, listener });
    }
    Ok(bound)
}

/// Serves every proxy until `closing` turns true, then lets their calls in flight finish.
pub async fn serve_proxies(
    proxies: Vec<BoundProxy>,
    limits: ConnectionLimits,
    closing: watch::Receiver<bool>,
) {
    let mut serving = tokio::task::JoinSet::new();
    for BoundProxy { proxy, listener } in proxies {
        let mut closing = closing.clone();
        serving.spawn(crate::connections::serve(
            listener,
            proxy.router(),
            limits,
            None,
            async move {
                let _ = closing.wait_for(|closed| *closed).await;
            },
        ));
    }
    while serving.join_next().await.is_some() {}
}

/// Where `opentrail proxy` records.
pub enum RecordInto {
    /// Straight into the store of this configuration's data directory.
    Store(Box<crate::Config>),
    /// Into a remote server, through a disk queue.
    Remote(opentrail_recorder::RemoteSink),
}

/// What is left to finish once a standalone proxy has stopped.
enum Recording {
    Remote(opentrail_recorder::RemoteSink),
    Store {
        store: Store,
        writer: JoinHandle<()>,
    },
}

/// Runs one proxy on its own (`opentrail proxy`) until `shutdown`.
pub async fn run_proxy(
    proxy: ProxyConfig,
    into: RecordInto,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let limits = crate::Config::default().connection_limits();
    let (sink, proxies, recording): (Arc<dyn RecordSink>, _, _) = match into {
        RecordInto::Remote(remote) => (
            Arc::new(remote.clone()),
            vec![proxy],
            Recording::Remote(remote),
        ),
        RecordInto::Store(config) => {
            let store = {
                let config = config.clone();
                tokio::task::spawn_blocking(move || crate::startup::open_store_only(&config))
                    .await??
            };
            let context = IngestContext {
                account_id: config.account_id.clone(),
                region: config.region.clone(),
            };
            // No server, so no detections to screen for.
            let (sink, writer) = StoreRecordSink::start(store.clone(), None, context);
            let proxies = owned_by(std::slice::from_ref(&proxy), &config);
            (sink, proxies, Recording::Store { store, writer })
        }
    };
    let bound = bind_proxies(&proxies, sink).await?;
    let (closing_sender, closing) = watch::channel(false);
    let serving = serve_proxies(bound, limits, closing);
    tokio::pin!(serving);
    tokio::select! {
        () = &mut serving => {}
        () = shutdown => {
            tracing::info!("shutdown requested: finishing the calls in flight");
            let _ = closing_sender.send(true);
            serving.await;
        }
    }
    match recording {
        // Records still queued for a server are on disk and go at the next start; a
        // short wait here usually sends them now.
        Recording::Remote(remote) => {
            if !remote.flush(REMOTE_FLUSH_AT_SHUTDOWN).await {
                tracing::warn!(
                    pending_bytes = remote.pending_bytes(),
                    "records are still queued for OpenTrail; they are sent when the proxy starts again"
                );
            }
        }
        // Every proxy is gone, so the sink's last handle is too: the writer stores what
        // is queued and ends.
        Recording::Store { store, writer } => {
            writer.await?;
            tokio::task::spawn_blocking(move || store.flush_tables())
                .await?
                .ok();
        }
    }
    Ok(())
}

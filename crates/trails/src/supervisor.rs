//! The workers of each trail: started, told about changes, stopped.
//!
//! Each trail has a delivery worker ([`crate::delivery::DeliveryWorker`]), a digest writer
//! ([`crate::digest::DigestWorker`]), when its log group has a sink, a stream worker
//! ([`crate::streams::StreamWorker`]), and while it has Insights selectors, a second
//! delivery worker for its Insights files ([`DeliveryKind::Insights`]). Each watches its
//! trail through a `watch` channel, so changes reach it without a restart; only a changed
//! log group replaces the stream worker, and only turning Insights on or off starts or
//! stops the Insights worker (which flushes what it holds). Workers open on a blocking
//! thread (they read their state files) and report a failure to open in the trail's
//! status.
//!
//! Stopping a trail (DeleteTrail) stops delivery first, so it flushes what it holds, then
//! the digest writer, which closes the chain with a final digest covering those files.
//! [`Supervisor::shutdown`] signals every worker and waits for them (each finishes or
//! abandons its current step; an abandoned batch is redone at the next start); it must
//! run before the store closes.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::delivery::{DeliveryContext, DeliveryKind, DeliveryWorker};
use crate::digest::{DigestContext, DigestStop, DigestWorker};
use crate::model::Trail;
use crate::sinks::SinkConnector;
use crate::status::{StatusHandle, Statuses, update_status};
use crate::streams::{StreamContext, StreamWorker, sink_for};

/// How long stopping waits for a worker to finish its current step.
const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// What the workers of every trail share.
pub(crate) struct WorkerContexts {
    pub(crate) delivery: Arc<DeliveryContext>,
    pub(crate) digest: Arc<DigestContext>,
    pub(crate) stream: Arc<StreamContext>,
    /// CloudWatch Logs log group ARN → sink.
    pub(crate) log_groups: BTreeMap<String, Arc<dyn SinkConnector>>,
}

/// Starts and stops the workers of every trail.
pub(crate) struct Supervisor {
    contexts: WorkerContexts,
    /// A trail's state lives in `<trails_dir>/<trail id>`.
    trails_dir: PathBuf,
    statuses: Arc<Statuses>,
    workers: Mutex<HashMap<String, TrailWorkers>>,
    started: AtomicBool,
}

/// The running workers of one trail.
struct TrailWorkers {
    trail: watch::Sender<Arc<Trail>>,
    shutdown: watch::Sender<bool>,
    delivery: JoinHandle<()>,
    /// The digest writer and how to stop it.
    digest: (watch::Sender<DigestStop>, JoinHandle<()>),
    /// The log group the stream worker sends, and the worker.
    stream: Option<StreamWorkerHandle>,
    /// The Insights file worker, while the trail has Insights selectors.
    insights: Option<WorkerHandle>,
}

struct StreamWorkerHandle {
    log_group: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A worker that stops on its own signal.
struct WorkerHandle {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WorkerHandle {
    /// Signals the worker and waits for it.
    async fn stop(self) {
        let _ = self.shutdown.send(true);
        stop_worker(self.task).await;
    }
}

impl Supervisor {
    pub(crate) fn new(
        contexts: WorkerContexts,
        trails_dir: PathBuf,
        statuses: Arc<Statuses>,
    ) -> Supervisor {
        Supervisor {
            contexts,
            trails_dir,
            statuses,
            workers: Mutex::new(HashMap::new()),
            started: AtomicBool::new(false),
        }
    }

    /// Starts the workers of `trails` on the current tokio runtime. Only the first call
    /// does anything; from then on, new trails get workers when they are published.
    pub(crate) fn start(&self, trails: Vec<Trail>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        for trail in trails {
            self.spawn_workers(trail);
        }
    }

    /// Signals every worker to stop and waits for them.
    pub(crate) async fn shutdown(&self) {
        self.started.store(false, Ordering::SeqCst);
        let workers: Vec<TrailWorkers> = {
            let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
            workers.drain().map(|(_, workers)| workers).collect()
        };
        let mut handles = Vec::new();
        for trail_workers in workers {
            let _ = trail_workers.shutdown.send(true);
            handles.push(trail_workers.delivery);
            let (digest_stop, digest) = trail_workers.digest;
            let _ = digest_stop.send(DigestStop::Stop);
            handles.push(digest);
            if let Some(stream) = trail_workers.stream {
                let _ = stream.shutdown.send(true);
                handles.push(stream.task);
            }
            if let Some(insights) = trail_workers.insights {
                let _ = insights.shutdown.send(true);
                handles.push(insights.task);
            }
        }
        for handle in handles {
            stop_worker(handle).await;
        }
    }

    /// Tells a trail's workers about its new version (`trail` is the registry's current
    /// one), starting them for a new trail, replaces its stream worker when the log group
    /// changed, and starts or stops its Insights worker when Insights were turned on or
    /// off.
    pub(crate) async fn publish(&self, trail: &Trail) {
        let (stopped_stream, stopped_insights) = {
            let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(trail_workers) = workers.get_mut(&trail.id) else {
                drop(workers);
                self.spawn_workers(trail.clone());
                return;
            };
            trail_workers.trail.send_replace(Arc::new(trail.clone()));
            let stopped_insights = match (
                trail.has_insight_selectors(),
                trail_workers.insights.is_some(),
            ) {
                (true, false) => {
                    trail_workers.insights = Some(self.spawn_insights_worker(
                        trail_workers.trail.subscribe(),
                        self.trails_dir.join(&trail.id),
                        self.statuses.handle(&trail.id),
                    ));
                    None
                }
                (false, true) => trail_workers.insights.take(),
                _ => None,
            };
            let wanted = trail.settings.cloud_watch_logs_log_group_arn.as_deref();
            let running = trail_workers
                .stream
                .as_ref()
                .map(|stream| stream.log_group.as_str());
            let stopped_stream = if wanted == running {
                None
            } else {
                let stopped = trail_workers.stream.take();
                if let Some(log_group) = wanted {
                    trail_workers.stream = self.spawn_stream_worker(
                        log_group,
                        trail_workers.trail.subscribe(),
                        self.trails_dir.join(&trail.id),
                        self.statuses.handle(&trail.id),
                    );
                }
                stopped
            };
            (stopped_stream, stopped_insights)
        };
        if let Some(stream) = stopped_stream {
            let _ = stream.shutdown.send(true);
            stop_worker(stream.task).await;
        }
        if let Some(insights) = stopped_insights {
            insights.stop().await;
        }
    }

    /// Stops a trail's workers and waits for them: delivery first (it flushes what it
    /// holds), then the digest writer closes the chain with a final digest that covers
    /// those files (DeleteTrail).
    pub(crate) async fn stop_trail(&self, trail_id: &str) {
        let removed = self
            .workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(trail_id);
        if let Some(trail_workers) = removed {
            let _ = trail_workers.shutdown.send(true);
            stop_worker(trail_workers.delivery).await;
            let (digest_stop, digest) = trail_workers.digest;
            let _ = digest_stop.send(DigestStop::FinalThenStop);
            stop_worker(digest).await;
            if let Some(stream) = trail_workers.stream {
                let _ = stream.shutdown.send(true);
                stop_worker(stream.task).await;
            }
            if let Some(insights) = trail_workers.insights {
                insights.stop().await;
            }
        }
    }

    fn spawn_workers(&self, trail: Trail) {
        if !self.started.load(Ordering::SeqCst) {
            return;
        }
        let trail_id = trail.id.clone();
        let status = self.statuses.handle(&trail_id);
        let trail_dir = self.trails_dir.join(&trail_id);
        let log_group = trail.settings.cloud_watch_logs_log_group_arn.clone();
        let has_insight_selectors = trail.has_insight_selectors();
        let (trail_sender, trail_receiver) = watch::channel(Arc::new(trail));
        let (shutdown_sender, shutdown_receiver) = watch::channel(false);
        let delivery = self.spawn_delivery_worker(
            DeliveryKind::LogFiles,
            trail_receiver.clone(),
            trail_dir.clone(),
            Arc::clone(&status),
            shutdown_receiver,
        );
        let digest = self.spawn_digest_worker(
            trail_receiver.clone(),
            trail_dir.clone(),
            Arc::clone(&status),
        );
        let insights = has_insight_selectors.then(|| {
            self.spawn_insights_worker(
                trail_receiver.clone(),
                trail_dir.clone(),
                Arc::clone(&status),
            )
        });
        let stream = log_group.and_then(|log_group| {
            self.spawn_stream_worker(&log_group, trail_receiver, trail_dir, status)
        });
        let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        workers.insert(
            trail_id,
            TrailWorkers {
                trail: trail_sender,
                shutdown: shutdown_sender,
                delivery,
                digest,
                stream,
                insights,
            },
        );
    }

    /// The Insights file worker, with its own stop signal (turning Insights off stops it
    /// alone).
    fn spawn_insights_worker(
        &self,
        trail_receiver: watch::Receiver<Arc<Trail>>,
        trail_dir: PathBuf,
        status: StatusHandle,
    ) -> WorkerHandle {
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let task = self.spawn_delivery_worker(
            DeliveryKind::Insights,
            trail_receiver,
            trail_dir,
            status,
            shutdown_receiver,
        );
        WorkerHandle { shutdown, task }
    }

    fn spawn_delivery_worker(
        &self,
        kind: DeliveryKind,
        trail_receiver: watch::Receiver<Arc<Trail>>,
        trail_dir: PathBuf,
        status: StatusHandle,
        shutdown_receiver: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let context = Arc::clone(&self.contexts.delivery);
        tokio::spawn(async move {
            let opened = tokio::task::spawn_blocking(move || {
                DeliveryWorker::open_kind(
                    kind,
                    context,
                    trail_receiver,
                    trail_dir,
                    status.clone(),
                    shutdown_receiver,
                )
                .map_err(|error| (error, status))
            })
            .await;
            match opened {
                Ok(Ok(worker)) => worker.run().await,
                Ok(Err((error, status))) => {
                    tracing::error!(%error, ?kind, "cannot start trail delivery");
                    let message = Some(format!("cannot start delivery: {error}"));
                    update_status(&status, |current| match kind {
                        DeliveryKind::LogFiles => current.latest_delivery_error = message,
                        DeliveryKind::Insights => current.latest_insights_delivery_error = message,
                    });
                }
                Err(error) => tracing::error!(%error, "trail delivery task failed"),
            }
        })
    }

    fn spawn_digest_worker(
        &self,
        trail_receiver: watch::Receiver<Arc<Trail>>,
        trail_dir: PathBuf,
        status: StatusHandle,
    ) -> (watch::Sender<DigestStop>, JoinHandle<()>) {
        let context = Arc::clone(&self.contexts.digest);
        let (stop_sender, stop_receiver) = watch::channel(DigestStop::Run);
        let handle = tokio::spawn(async move {
            let opened = tokio::task::spawn_blocking(move || {
                DigestWorker::open(context, trail_receiver, trail_dir, status, stop_receiver)
            })
            .await;
            match opened {
                Ok(Ok(worker)) => worker.run().await,
                Ok(Err(error)) => tracing::error!(%error, "cannot start the digest writer"),
                Err(error) => tracing::error!(%error, "digest writer task failed"),
            }
        });
        (stop_sender, handle)
    }

    /// The stream worker of `log_group`, or `None` (reported in the trail's status) when
    /// no sink is registered for it.
    fn spawn_stream_worker(
        &self,
        log_group: &str,
        trail_receiver: watch::Receiver<Arc<Trail>>,
        trail_dir: PathBuf,
        status: StatusHandle,
    ) -> Option<StreamWorkerHandle> {
        let Some(sink) = sink_for(&self.contexts.log_groups, log_group).cloned() else {
            update_status(&status, |current| {
                current.latest_cloud_watch_logs_delivery_error =
                    Some(format!("log group {log_group} is not configured"));
            });
            return None;
        };
        let context = Arc::clone(&self.contexts.stream);
        let (stop_sender, stop_receiver) = watch::channel(false);
        let log_group_arn = log_group.to_owned();
        let task = tokio::spawn(async move {
            let opened = tokio::task::spawn_blocking(move || {
                StreamWorker::open(
                    context,
                    trail_receiver,
                    log_group_arn,
                    sink.connect(),
                    trail_dir,
                    status,
                    stop_receiver,
                )
            })
            .await;
            match opened {
                Ok(Ok(worker)) => worker.run().await,
                Ok(Err(error)) => tracing::error!(%error, "cannot start stream delivery"),
                Err(error) => tracing::error!(%error, "stream delivery task failed"),
            }
        });
        Some(StreamWorkerHandle {
            log_group: log_group.to_owned(),
            shutdown: stop_sender,
            task,
        })
    }
}

/// Waits for a signalled worker, aborting it after [`WORKER_STOP_TIMEOUT`].
async fn stop_worker(handle: JoinHandle<()>) {
    let abort = handle.abort_handle();
    match tokio::time::timeout(WORKER_STOP_TIMEOUT, handle).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) if error.is_cancelled() => {}
        Ok(Err(error)) => tracing::error!(%error, "a trail worker failed"),
        Err(_) => {
            tracing::warn!(
                "a trail worker did not stop in time; aborting it (its batch is redone at the next start)"
            );
            abort.abort();
        }
    }
}

//! What the server holds: the alert log, the rules in force, and the two workers (the
//! detection consumer's thread and the webhook delivery task).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use opentrail_store::Store;
use tokio::sync::watch;

use crate::alerts::AlertLog;
use crate::consumer::{DetectionConsumer, SharedRules};
use crate::delivery::AlertDelivery;
use crate::error::DetectError;
use crate::rule_set::RuleSet;

/// How often the consumer looks for new events when it has caught up: an acknowledged
/// event is matched within about this long.
const CONSUMER_IDLE_POLL: Duration = Duration::from_millis(100);
/// How often the rules directory is checked for changes.
const RULES_RELOAD_CHECK: Duration = Duration::from_secs(2);
/// The pause after a failed scan (a damaged record, a full disk).
const CONSUMER_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Where detections keep their state and what they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionsOptions {
    /// The alert log and the delivery state (`DATA_DIR/alerts`).
    pub alerts_dir: PathBuf,
    /// Sigma rules (`*.yml`), reloaded when they change; `None`: no rules, and no
    /// consumer (nothing holds back retention).
    pub rules_dir: Option<PathBuf>,
    /// Each alert is `POST`ed here as JSON.
    pub webhook_url: Option<String>,
}

/// Detections: rules, alerts, and their workers.
pub struct Detections {
    options: DetectionsOptions,
    store: Store,
    alerts: Arc<AlertLog>,
    rules: SharedRules,
}

impl Detections {
    /// Opens the alert log and loads the rules. A rule that cannot be used is logged
    /// with its file and skipped; the others run.
    pub fn open(store: Store, options: DetectionsOptions) -> Result<Detections, DetectError> {
        let alerts = Arc::new(AlertLog::open(&options.alerts_dir)?);
        let rules = match &options.rules_dir {
            Some(dir) => load_rules(dir)?,
            None => RuleSet::empty(),
        };
        Ok(Detections {
            options,
            store,
            alerts,
            rules: Arc::new(RwLock::new(Arc::new(rules))),
        })
    }

    pub fn alerts(&self) -> &Arc<AlertLog> {
        &self.alerts
    }

    /// The rules in force now.
    pub fn rules(&self) -> Arc<RuleSet> {
        Arc::clone(&self.rules.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Starts the consumer (when a rules directory is set) and the delivery (when a
    /// webhook is set). Call from inside a tokio runtime.
    pub fn start(&self) -> Result<DetectionWorkers, DetectError> {
        let stop = Arc::new(AtomicBool::new(false));
        let consumer = match &self.options.rules_dir {
            Some(dir) => {
                let consumer = DetectionConsumer::open(
                    self.store.clone(),
                    Arc::clone(&self.alerts),
                    Arc::clone(&self.rules),
                )?;
                let loop_state = ConsumerLoop {
                    consumer,
                    rules: Arc::clone(&self.rules),
                    rules_dir: dir.clone(),
                    stop: Arc::clone(&stop),
                };
                let thread = std::thread::Builder::new()
                    .name("opentrail-detections".into())
                    .spawn(move || loop_state.run())
                    .map_err(|source| DetectError::io(dir, source))?;
                Some(thread)
            }
            None => None,
        };
        let (shutdown_sender, shutdown) = watch::channel(false);
        let delivery = self.options.webhook_url.clone().map(|url| {
            let delivery =
                AlertDelivery::new(Arc::clone(&self.alerts), &self.options.alerts_dir, url);
            tokio::spawn(delivery.run(shutdown))
        });
        Ok(DetectionWorkers {
            stop,
            consumer,
            delivery,
            shutdown_sender,
        })
    }
}

/// The running workers; [`DetectionWorkers::stop`] ends them.
pub struct DetectionWorkers {
    stop: Arc<AtomicBool>,
    consumer: Option<JoinHandle<()>>,
    delivery: Option<tokio::task::JoinHandle<()>>,
    shutdown_sender: watch::Sender<bool>,
}

impl DetectionWorkers {
    /// Stops both workers and waits for them (the consumer finishes its scan first).
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.shutdown_sender.send(true);
        if let Some(delivery) = self.delivery
            && let Err(error) = delivery.await
        {
            tracing::error!(%error, "the alert delivery task failed");
        }
        if let Some(consumer) = self.consumer {
            let joined = tokio::task::spawn_blocking(move || consumer.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the detection consumer thread panicked");
            }
        }
    }
}

struct ConsumerLoop {
    consumer: DetectionConsumer,
    rules: SharedRules,
    rules_dir: PathBuf,
    stop: Arc<AtomicBool>,
}

impl ConsumerLoop {
    fn run(self) {
        let mut fingerprint = rules_fingerprint(&self.rules_dir);
        let mut last_check = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            if last_check.elapsed() >= RULES_RELOAD_CHECK {
                last_check = Instant::now();
                let now = rules_fingerprint(&self.rules_dir);
                if now != fingerprint {
                    fingerprint = now;
                    self.reload();
                }
            }
            let pause = match self.consumer.run_once() {
                Ok(report) if report.events > 0 => {
                    metrics::counter!("opentrail_detection_events_total").increment(report.events);
                    metrics::counter!("opentrail_alerts_total").increment(report.alerts);
                    Duration::ZERO
                }
                Ok(_) => CONSUMER_IDLE_POLL,
                Err(error) => {
                    tracing::error!(%error, "matching rules failed; trying again");
                    CONSUMER_RETRY_PAUSE
                }
            };
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
    }

    fn reload(&self) {
        match load_rules(&self.rules_dir) {
            Ok(rules) => {
                tracing::info!(rules = rules.rules().len(), dir = %self.rules_dir.display(), "rules reloaded");
                *self.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
            }
            Err(error) => {
                tracing::error!(%error, "the rules directory could not be read; the previous rules stay in force");
            }
        }
    }
}

/// Loads `dir`, logging each refused rule with its place.
fn load_rules(dir: &Path) -> Result<RuleSet, DetectError> {
    let loaded = RuleSet::load_dir(dir)?;
    for refusal in &loaded.refused {
        tracing::warn!(%refusal, "a rule was refused");
    }
    Ok(loaded.rules)
}

/// Names, sizes and modification times of the rule files under `dir` (the files
/// [`RuleSet::load_dir`] reads): what changes when a rule is added, edited or removed.
fn rules_fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut ignored = Vec::new();
    crate::load::rule_files(dir, &mut ignored)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|path| {
            let metadata = std::fs::metadata(&path).ok()?;
            Some((path, metadata.len(), metadata.modified().ok()))
        })
        .collect()
}

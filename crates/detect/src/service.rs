//! What the server holds: the alert log, the rules (the directory's and the API's, see
//! `catalog.rs`), and the workers: the detection consumer's thread and one delivery task
//! per notification target.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use opentrail_store::Store;
use tokio::sync::watch;

use crate::alerts::AlertLog;
use crate::catalog::{CatalogRule, RuleBook, RuleCatalog};
use crate::consumer::{DETECTIONS_CONSUMER, DetectionConsumer, DetectionFaults, panic_message};
use crate::delivery::{AlertDelivery, AlertTarget};
use crate::error::DetectError;
use crate::rule_set::RuleSet;
use crate::screening::Screening;

/// The longest the consumer waits for new events once it has caught up (an append wakes
/// it at once), so that it still notices a stop or a change of the rules directory.
const CONSUMER_IDLE_POLL: Duration = Duration::from_millis(100);
/// How often the rules directory is checked for changes.
const RULES_RELOAD_CHECK: Duration = Duration::from_secs(2);
/// The pause after a failed scan (a damaged record, a full disk).
const CONSUMER_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Where detections keep their state, what they run and where alerts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionsOptions {
    /// The alert log and the targets' delivery state (`DATA_DIR/alerts`).
    pub alerts_dir: PathBuf,
    /// Rules added through the API and the disabled rules (`DATA_DIR/detections`).
    pub rules_state_dir: PathBuf,
    /// Sigma rules (`*.yml`), reloaded when they change. Without it and without API
    /// rules, no consumer runs (nothing holds back retention) until a rule is added.
    pub rules_dir: Option<PathBuf>,
    /// Where each alert is sent; each target has its own worker and position (so each
    /// kind appears at most once).
    pub targets: Vec<AlertTarget>,
}

/// Detections: rules, alerts, and their workers.
pub struct Detections {
    options: DetectionsOptions,
    store: Store,
    alerts: Arc<AlertLog>,
    book: Arc<RuleBook>,
    /// What the ingest paths screened, for the consumer.
    screening: Arc<Screening>,
    /// Opened by [`Detections::open`] when rules exist; the consumer thread takes it.
    consumer: Mutex<Option<DetectionConsumer>>,
    faults: Arc<DetectionFaults>,
}

impl Detections {
    /// Opens the alert log and loads the rules. A rule that cannot be used is logged
    /// with its file and listed as refused; the others run. Fails when the rules
    /// directory cannot be read.
    ///
    /// When rules exist, this registers the consumer's cursor (call it before retention
    /// runs, so retention keeps every event not matched yet). When none do, a cursor left
    /// by an earlier run is dropped, so it no longer holds retention back; the first rule
    /// added later starts after the newest alert's event.
    pub fn open(store: Store, options: DetectionsOptions) -> Result<Detections, DetectError> {
        for (index, target) in options.targets.iter().enumerate() {
            if options.targets[..index]
                .iter()
                .any(|earlier| earlier.state_file_name() == target.state_file_name())
            {
                return Err(DetectError::DuplicateTarget(target.kind()));
            }
        }
        let alerts = Arc::new(AlertLog::open(&options.alerts_dir)?);
        let book = Arc::new(RuleBook::open(
            options.rules_dir.clone(),
            &options.rules_state_dir,
        )?);
        let screening = Arc::new(Screening::new(Arc::clone(book.shared())));
        let faults = Arc::new(DetectionFaults::default());
        let consumer = if book.has_rules() {
            Some(DetectionConsumer::open_reporting(
                store.clone(),
                Arc::clone(&alerts),
                Arc::clone(&screening),
                Arc::clone(&faults),
            )?)
        } else {
            if store.load_cursor(DETECTIONS_CONSUMER)? > 0 {
                store.delete_cursor(DETECTIONS_CONSUMER)?;
            }
            None
        };
        Ok(Detections {
            options,
            store,
            alerts,
            book,
            screening,
            consumer: Mutex::new(consumer),
            faults,
        })
    }

    pub fn alerts(&self) -> &Arc<AlertLog> {
        &self.alerts
    }

    /// The rules running now (disabled rules left out).
    pub fn rules(&self) -> Arc<RuleSet> {
        self.screening.rules()
    }

    /// Where an ingest path notes its batches' prefilter verdicts ([`Screening::judge`]
    /// before the append, [`Screening::note`] after), so the consumer reads less.
    pub fn screening(&self) -> &Arc<Screening> {
        &self.screening
    }

    /// The panics caught while matching (each event's, and the consumer's own).
    pub fn faults(&self) -> &Arc<DetectionFaults> {
        &self.faults
    }

    /// Every rule, running or disabled, and every refused one.
    pub fn catalog(&self) -> Arc<RuleCatalog> {
        self.book.catalog()
    }

    /// Adds a rule (its Sigma YAML) and runs it from the next event on; kept under the
    /// state directory. A refusal is [`DetectError::Refused`]. Blocking.
    pub fn add_rule(&self, yaml: &str) -> Result<CatalogRule, DetectError> {
        self.book.add(yaml)
    }

    /// Enables or disables a rule, whatever its origin; persisted. Blocking.
    pub fn set_rule_enabled(&self, id: &str, enabled: bool) -> Result<CatalogRule, DetectError> {
        self.book.set_enabled(id, enabled)
    }

    /// Removes a rule added through the API. Blocking.
    pub fn remove_rule(&self, id: &str) -> Result<CatalogRule, DetectError> {
        self.book.remove(id)
    }

    /// Starts the consumer's thread (when no rule exists yet, it opens the consumer,
    /// registering its cursor, once one is added) and one delivery task per target.
    /// Call from inside a tokio runtime, once.
    pub fn start(&self) -> Result<DetectionWorkers, DetectError> {
        let stop = Arc::new(AtomicBool::new(false));
        let consumer = self
            .consumer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let loop_state = ConsumerLoop {
            consumer,
            store: self.store.clone(),
            alerts: Arc::clone(&self.alerts),
            book: Arc::clone(&self.book),
            screening: Arc::clone(&self.screening),
            stop: Arc::clone(&stop),
            faults: Arc::clone(&self.faults),
        };
        let consumer = std::thread::Builder::new()
            .name("opentrail-detections".into())
            .spawn(move || {
                opentrail_store::yield_to_ingest();
                loop_state.run()
            })
            .map_err(|source| DetectError::io(&self.options.alerts_dir, source))?;
        let (shutdown_sender, shutdown) = watch::channel(false);
        let deliveries = self
            .options
            .targets
            .iter()
            .map(|target| {
                let delivery = AlertDelivery::new(
                    Arc::clone(&self.alerts),
                    &self.options.alerts_dir,
                    target.clone(),
                );
                tokio::spawn(delivery.run(shutdown.clone()))
            })
            .collect();
        Ok(DetectionWorkers {
            stop,
            consumer: Some(consumer),
            deliveries,
            shutdown_sender,
        })
    }
}

/// The running workers; [`DetectionWorkers::stop`] ends them.
pub struct DetectionWorkers {
    stop: Arc<AtomicBool>,
    consumer: Option<JoinHandle<()>>,
    deliveries: Vec<tokio::task::JoinHandle<()>>,
    shutdown_sender: watch::Sender<bool>,
}

impl DetectionWorkers {
    /// Stops every worker and waits for them (the consumer finishes its scan first).
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.shutdown_sender.send(true);
        for delivery in self.deliveries {
            if let Err(error) = delivery.await {
                tracing::error!(%error, "an alert delivery task failed");
            }
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
    /// `None` until a rule exists.
    consumer: Option<DetectionConsumer>,
    store: Store,
    alerts: Arc<AlertLog>,
    book: Arc<RuleBook>,
    screening: Arc<Screening>,
    stop: Arc<AtomicBool>,
    faults: Arc<DetectionFaults>,
}

impl ConsumerLoop {
    fn run(mut self) {
        let rules_dir = self.book.rules_dir().map(Path::to_path_buf);
        let mut fingerprint = rules_dir.as_deref().map(rules_fingerprint);
        let mut last_check = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            if let Some(dir) = &rules_dir
                && last_check.elapsed() >= RULES_RELOAD_CHECK
            {
                last_check = Instant::now();
                let now = Some(rules_fingerprint(dir));
                if now != fingerprint {
                    fingerprint = now;
                    self.book.reload_directory();
                }
            }
            let seen = self.store.last_seq();
            // A panic outside one event's matching (each is caught in `alerts_of`) ends
            // the scan, not detections: the consumer is opened again from its durable
            // cursor, so no event is skipped.
            let pause = std::panic::catch_unwind(AssertUnwindSafe(|| self.scan_once()))
                .unwrap_or_else(|panic| {
                    self.faults.note(format!(
                        "the detection consumer panicked ({}); it starts again from its cursor",
                        panic_message(panic.as_ref())
                    ));
                    self.consumer = None;
                    CONSUMER_RETRY_PAUSE
                });
            if pause == CONSUMER_IDLE_POLL && self.consumer.is_some() {
                // Caught up: the next append wakes the consumer at once; the poll's end
                // still comes round for a stop or a change of the rules directory.
                self.store.wait_for_events_after(seen, pause);
            } else if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
    }

    /// One scan (opening the consumer first if a rule now exists); the pause before the
    /// next.
    fn scan_once(&mut self) -> Duration {
        if self.consumer.is_none() {
            if !self.book.has_rules() {
                return CONSUMER_IDLE_POLL;
            }
            match DetectionConsumer::open_reporting(
                self.store.clone(),
                Arc::clone(&self.alerts),
                Arc::clone(&self.screening),
                Arc::clone(&self.faults),
            ) {
                Ok(consumer) => self.consumer = Some(consumer),
                Err(error) => {
                    tracing::error!(%error, "the detection consumer could not start; trying again");
                    return CONSUMER_RETRY_PAUSE;
                }
            }
        }
        let Some(consumer) = &self.consumer else {
            return CONSUMER_IDLE_POLL;
        };
        match consumer.run_once() {
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
        }
    }
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

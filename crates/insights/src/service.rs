//! What the server holds: the analysis shared with the metrics reads, and the worker
//! thread that runs the consumer while any trail has Insights selectors.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use opentrail_store::Store;

use crate::analysis::{Analyzer, Settings};
use crate::consumer::{InsightsConsumer, forget};
use crate::error::InsightsError;
use crate::metric_files::MetricFiles;
use crate::model::{InsightType, InsightsScope, SeriesKey, SourceCategory};

/// How often the worker looks for new events when it has caught up.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How often it checks whether Insights were turned on, while they are off.
const DISABLED_POLL: Duration = Duration::from_secs(1);
const RETRY_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsightsOptions {
    /// `DATA_DIR/insights`: the snapshot and the metrics files.
    pub dir: PathBuf,
    pub settings: Settings,
}

/// One ListInsightsMetricData question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricQuery {
    pub account_id: String,
    pub region: String,
    pub event_source: String,
    pub event_name: String,
    pub insight_type: InsightType,
    pub error_code: Option<String>,
    pub category: SourceCategory,
    /// `[start_ms, end_ms)`.
    pub start_ms: i64,
    pub end_ms: i64,
    /// 60, 300 or 3600.
    pub period_seconds: i64,
    /// Every period in the range, with 0 where nothing happened (`FillWithZeros`).
    pub fill_with_zeros: bool,
}

/// Insights: the shared analysis and its worker.
pub struct Insights {
    store: Store,
    options: InsightsOptions,
    scope: Arc<dyn InsightsScope>,
    analyzer: Arc<Mutex<Analyzer>>,
}

impl Insights {
    pub fn new(store: Store, options: InsightsOptions, scope: Arc<dyn InsightsScope>) -> Insights {
        let analyzer = Arc::new(Mutex::new(Analyzer::new(options.settings)));
        Insights {
            store,
            options,
            scope,
            analyzer,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.options.settings
    }

    /// Starts the worker thread.
    pub fn start(&self) -> Result<InsightsWorker, InsightsError> {
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            store: self.store.clone(),
            options: self.options.clone(),
            scope: Arc::clone(&self.scope),
            analyzer: Arc::clone(&self.analyzer),
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("opentrail-insights".into())
            .spawn(move || worker.run())
            .map_err(|source| InsightsError::io(&self.options.dir, source))?;
        Ok(InsightsWorker {
            stop,
            thread: Some(thread),
        })
    }

    /// The series' count per period, oldest first: (period start in epoch ms, count).
    /// Blocking (reads the metrics files).
    pub fn metric_data(&self, query: &MetricQuery) -> Result<Vec<(i64, f64)>, InsightsError> {
        let key = SeriesKey {
            account_id: query.account_id.clone(),
            region: query.region.clone(),
            event_source: query.event_source.clone(),
            event_name: query.event_name.clone(),
            insight_type: query.insight_type,
            category: query.category,
            error_code: match query.insight_type {
                InsightType::ApiErrorRateInsight => query.error_code.clone(),
                InsightType::ApiCallRateInsight => None,
            },
        };
        let period_ms = query.period_seconds.max(60) * 1_000;
        let first_period_ms = query.start_ms.div_euclid(period_ms) * period_ms;
        let from_minute = first_period_ms.div_euclid(60_000);
        let to_minute = (query.end_ms + 59_999).div_euclid(60_000);
        if to_minute <= from_minute {
            return Ok(Vec::new());
        }
        let metrics_dir = self.options.dir.join("metrics");
        let mut minutes = if metrics_dir.exists() {
            MetricFiles::at(&metrics_dir).read(&key, from_minute, to_minute)?
        } else {
            Default::default()
        };
        let unwritten = self
            .analyzer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwritten_minutes(&key);
        for (minute, count) in unwritten {
            if (from_minute..to_minute).contains(&minute) {
                *minutes.entry(minute).or_default() += count;
            }
        }
        let mut periods = std::collections::BTreeMap::<i64, f64>::new();
        if query.fill_with_zeros {
            let mut at = first_period_ms;
            while at < query.end_ms {
                periods.insert(at, 0.0);
                at += period_ms;
            }
        }
        for (minute, count) in minutes {
            let period_start = (minute * 60_000).div_euclid(period_ms) * period_ms;
            if period_start < query.end_ms {
                *periods.entry(period_start).or_default() += count as f64;
            }
        }
        Ok(periods.into_iter().collect())
    }
}

/// What the console draws for one series: its count per minute and, for each minute, the
/// baseline of the window before it with the rule's threshold (the band a minute must
/// leave to be unusual). The baseline is computed per minute over the exact window, so it
/// can differ slightly from the analysis's, which keeps the window in buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// (minute start in epoch ms, count), every minute of the range.
    pub points: Vec<(i64, f64)>,
    /// (minute start in epoch ms, baseline average, threshold).
    pub band: Vec<(i64, f64, f64)>,
    pub baseline_minutes: i64,
}

impl Insights {
    /// The [`Timeline`] of `query`'s series over `[start_ms, end_ms)` (the period and fill
    /// settings of the query are ignored: minutes, zeros included). Blocking.
    pub fn timeline(&self, query: &MetricQuery) -> Result<Timeline, InsightsError> {
        const MINUTE_MS: i64 = 60_000;
        let window = self.options.settings.baseline_minutes;
        let first_minute = query.start_ms.div_euclid(MINUTE_MS);
        let last_minute = (query.end_ms - 1).div_euclid(MINUTE_MS);
        if last_minute < first_minute {
            return Ok(Timeline {
                points: Vec::new(),
                band: Vec::new(),
                baseline_minutes: window,
            });
        }
        let per_minute = self.metric_data(&MetricQuery {
            start_ms: (first_minute - window) * MINUTE_MS,
            end_ms: (last_minute + 1) * MINUTE_MS,
            period_seconds: 60,
            fill_with_zeros: false,
            ..query.clone()
        })?;
        let counts: std::collections::HashMap<i64, f64> = per_minute
            .into_iter()
            .map(|(at, count)| (at.div_euclid(MINUTE_MS), count))
            .collect();
        let count_at = |minute: i64| counts.get(&minute).copied().unwrap_or(0.0);
        // A sliding window: add the minute entering, drop the one leaving.
        let (mut sum, mut squares) = (0.0f64, 0.0f64);
        for minute in first_minute - window..first_minute {
            let count = count_at(minute);
            sum += count;
            squares += count * count;
        }
        let mut timeline = Timeline {
            points: Vec::new(),
            band: Vec::new(),
            baseline_minutes: window,
        };
        for minute in first_minute..=last_minute {
            let average = sum / window as f64;
            let deviation = (squares / window as f64 - average * average)
                .max(0.0)
                .sqrt();
            let at = minute * MINUTE_MS;
            let count = count_at(minute);
            timeline.points.push((at, count));
            timeline.band.push((
                at,
                average,
                crate::analysis::unusual_from(average, deviation),
            ));
            let leaving = count_at(minute - window);
            sum += count - leaving;
            squares += count * count - leaving * leaving;
        }
        Ok(timeline)
    }
}

/// The running worker; [`InsightsWorker::stop`] ends it after saving a snapshot.
pub struct InsightsWorker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl InsightsWorker {
    /// Stops the worker and waits for it. Blocking.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the Insights thread panicked");
        }
    }
}

struct Worker {
    store: Store,
    options: InsightsOptions,
    scope: Arc<dyn InsightsScope>,
    analyzer: Arc<Mutex<Analyzer>>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(self) {
        opentrail_store::yield_to_ingest();
        let mut consumer: Option<InsightsConsumer> = None;
        let mut forgotten = false;
        while !self.stop.load(Ordering::Acquire) {
            let pause = if !self.scope.any_enabled() {
                if let Some(mut running) = consumer.take() {
                    // Save first, so a failure to forget leaves a consistent state.
                    if let Err(error) = running.save() {
                        tracing::error!(%error, "saving the Insights state failed");
                    }
                }
                if !forgotten {
                    match forget(&self.store, &self.options.dir) {
                        Ok(()) => forgotten = true,
                        Err(error) => {
                            tracing::error!(%error, "forgetting the Insights state failed")
                        }
                    }
                    *self.analyzer.lock().unwrap_or_else(PoisonError::into_inner) =
                        Analyzer::new(self.options.settings);
                }
                DISABLED_POLL
            } else {
                forgotten = false;
                self.step(&mut consumer)
            };
            std::thread::sleep(pause);
        }
        if let Some(mut running) = consumer
            && let Err(error) = running.save()
        {
            tracing::error!(%error, "saving the Insights state at shutdown failed");
        }
    }

    fn step(&self, consumer: &mut Option<InsightsConsumer>) -> Duration {
        if consumer.is_none() {
            match InsightsConsumer::open(
                self.store.clone(),
                &self.options.dir,
                self.options.settings,
                Arc::clone(&self.scope),
                Arc::clone(&self.analyzer),
            ) {
                Ok(opened) => *consumer = Some(opened),
                Err(error) => {
                    tracing::error!(%error, "opening the Insights state failed; trying again");
                    return RETRY_PAUSE;
                }
            }
        }
        let Some(running) = consumer.as_mut() else {
            return RETRY_PAUSE;
        };
        match running.run_once(now_ms()) {
            Ok(scan) => {
                metrics::counter!("opentrail_insights_events_total").increment(scan.events);
                metrics::counter!("opentrail_insights_records_total").increment(scan.records);
                if scan.events > 0 {
                    Duration::ZERO
                } else {
                    IDLE_POLL
                }
            }
            Err(error) => {
                tracing::error!(%error, "Insights analysis failed; trying again");
                RETRY_PAUSE
            }
        }
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

//! The analysis itself, pure and deterministic: per-minute counts of each series, a
//! baseline of the window before each minute, and Insights periods that start when a
//! minute departs from the baseline and end when one returns to it.
//!
//! # The rule
//!
//! A minute of a series is *closed* once the series' watermark, less
//! [`Settings::lateness_ms`], has passed its end; only closed minutes are judged, so the
//! events of a minute that arrive a little out of order are counted first. A series'
//! watermark is its own newest event time, carried forward by the newest event time of
//! the whole log for at most [`FOLLOW_MS`] (so a burst followed by silence on that API
//! still closes while other traffic flows), and by the clock once the log is quiet. Each
//! series keeps its own, so old logs imported beside live traffic are judged in their own
//! time. An event for a minute already closed still counts in the baseline and the
//! metrics, but is not judged.
//!
//! For a closed minute `m` of a series, with `W` the baseline window in minutes:
//! - the **baseline** is the mean `b` and standard deviation `σ` of the series' count per
//!   minute over the `W` minutes before `m` (minutes without calls count as 0; kept in at
//!   most [`BASELINE_BUCKETS`] buckets, so the window is `W` rounded to whole buckets);
//! - the baseline is **established** once the account and region have `W` minutes of
//!   history before `m`: before that nothing is judged (CloudTrail too waits for a baseline);
//! - the minute is **unusual** when its count `x` reaches the threshold
//!   `max(MIN_UNUSUAL_PER_MINUTE, 2·b, b + 4·σ)`: at least twice the usual rate and four
//!   deviations above it, and never for a handful of calls;
//! - an unusual minute outside a period **starts** one (its baseline and threshold are
//!   kept for the whole period); the period **ends** at the first later minute below that
//!   threshold (a minute without calls included), which is the End record's time.
//!
//! Each period yields one Start and one End transition; the caller turns them into
//! CloudTrail Insights records.
//!
//! # Bounds
//!
//! Memory per series is at most [`BASELINE_BUCKETS`] buckets plus the minutes of the
//! hours not yet written to the metrics files, whatever the traffic; at most
//! [`Settings::series_max`] series are kept, and the least recently active (outside a
//! period) are forgotten first, so any number of distinct event names costs bounded memory.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::model::SeriesKey;
use crate::observed::ObservedCall;

/// The number of buckets the baseline window is kept in: hours for CloudTrail's 7 days.
pub const BASELINE_BUCKETS: i64 = 168;
/// Below this many calls (or errors) in a minute nothing is unusual.
pub const MIN_UNUSUAL_PER_MINUTE: f64 = 10.0;
/// CloudTrail's baseline: the 7 days before the activity.
pub const DEFAULT_BASELINE_MINUTES: i64 = 7 * 24 * 60;
/// How far the log's newest event carries a quiet series' watermark past its own newest.
pub const FOLLOW_MS: i64 = 10 * 60_000;
const MINUTE_MS: i64 = 60_000;
const HOUR_MINUTES: i64 = 60;

/// How the analysis is tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The baseline window `W`, in minutes.
    pub baseline_minutes: i64,
    /// How long after a minute ends its events may still arrive before it is judged.
    pub lateness_ms: i64,
    /// The most series kept in memory.
    pub series_max: usize,
}

impl Settings {
    /// CloudTrail's 7-day baseline, or a shorter one for tests and demos; the lateness
    /// (a minute, a twentieth of the window when that is shorter, at least 5 s) shrinks
    /// with a short baseline so a demo does not wait a minute per step.
    pub fn with_baseline_minutes(baseline_minutes: i64) -> Settings {
        let baseline_minutes = baseline_minutes.max(1);
        Settings {
            baseline_minutes,
            lateness_ms: (baseline_minutes * MINUTE_MS / 20).clamp(5_000, 60_000),
            series_max: 10_000,
        }
    }

    fn bucket_minutes(&self) -> i64 {
        (self.baseline_minutes / BASELINE_BUCKETS).max(1)
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings::with_baseline_minutes(DEFAULT_BASELINE_MINUTES)
    }
}

/// A period boundary found while closing minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub key: SeriesKey,
    pub state: PeriodState,
    /// The first minute of the period (Start), or the first minute after it (End), in
    /// epoch minutes.
    pub minute: i64,
    pub period_start_minute: i64,
    pub baseline_average: f64,
    /// Calls (or errors) per minute during the period so far.
    pub insight_average: f64,
    /// Minutes in the period (End only; 1 for Start).
    pub insight_duration_minutes: i64,
    pub baseline_duration_minutes: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeriodState {
    Start,
    End,
}

impl PeriodState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodState::Start => "Start",
            PeriodState::End => "End",
        }
    }
}

/// The counts of one series in one hour, for the metrics files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourCounts {
    pub key: SeriesKey,
    /// Epoch hours.
    #[serde(rename = "h")]
    pub hour: i64,
    /// (minute within the hour, count), minutes with none left out.
    #[serde(rename = "m")]
    pub minutes: Vec<(u8, u64)>,
}

/// What closing minutes produced.
#[derive(Debug, Default)]
pub struct Closed {
    pub transitions: Vec<Transition>,
    /// Hours now complete, and late counts for hours already written.
    pub hours: Vec<HourCounts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Bucket {
    index: i64,
    sum: u64,
    /// Sum of the squared per-minute counts, for the deviation.
    squares: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OpenPeriod {
    start_minute: i64,
    baseline_average: f64,
    threshold: f64,
    total: u64,
    minutes: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Series {
    buckets: VecDeque<Bucket>,
    /// Counts of minutes whose hour is not written yet (open and closed minutes).
    minutes: BTreeMap<i64, u64>,
    /// Counts that arrived for minutes of hours already written.
    late: BTreeMap<i64, u64>,
    period: Option<OpenPeriod>,
    last_active_minute: i64,
    /// Every minute before this one is judged (set by the series' first event).
    closed_before: i64,
    newest_ms: i64,
}

/// Baseline figures at one minute.
struct Baseline {
    average: f64,
    threshold: f64,
}

impl Series {
    fn fold(&mut self, minute: i64, count: u64, bucket_minutes: i64) {
        let index = minute.div_euclid(bucket_minutes);
        let squares = count.saturating_mul(count);
        match self
            .buckets
            .iter_mut()
            .rev()
            .find(|bucket| bucket.index == index)
        {
            Some(bucket) => {
                bucket.sum += count;
                bucket.squares = bucket.squares.saturating_add(squares);
            }
            None => {
                let at = self.buckets.partition_point(|bucket| bucket.index < index);
                self.buckets.insert(
                    at,
                    Bucket {
                        index,
                        sum: count,
                        squares,
                    },
                );
            }
        }
    }

    /// One more call in an already-judged minute that had `before` calls (as far as is
    /// still known): the sum grows by 1 and the squares by `(before+1)² − before²`.
    fn fold_late(&mut self, minute: i64, before: u64, bucket_minutes: i64) {
        self.fold(minute, 1, bucket_minutes);
        if let Some(bucket) = self
            .buckets
            .iter_mut()
            .rev()
            .find(|bucket| bucket.index == minute.div_euclid(bucket_minutes))
        {
            // fold() added 1² already.
            bucket.squares = bucket.squares.saturating_add(2 * before);
        }
    }

    fn baseline(&self, minute: i64, settings: &Settings) -> Baseline {
        let bucket_minutes = settings.bucket_minutes();
        let last = minute.div_euclid(bucket_minutes);
        let first = (minute - settings.baseline_minutes).div_euclid(bucket_minutes);
        let window_minutes = ((last - first) * bucket_minutes).max(1) as f64;
        let (sum, squares) = self
            .buckets
            .iter()
            .filter(|bucket| bucket.index >= first && bucket.index < last)
            .fold((0u64, 0u64), |(sum, squares), bucket| {
                (sum + bucket.sum, squares.saturating_add(bucket.squares))
            });
        let average = sum as f64 / window_minutes;
        let variance = (squares as f64 / window_minutes - average * average).max(0.0);
        Baseline {
            average,
            threshold: unusual_from(average, variance.sqrt()),
        }
    }
}

/// The rule's threshold for a baseline mean and deviation: a count at or above it is
/// unusual.
pub fn unusual_from(average: f64, deviation: f64) -> f64 {
    MIN_UNUSUAL_PER_MINUTE
        .max(2.0 * average)
        .max(average + 4.0 * deviation)
}

/// Every series, the watermark, and what has been judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analyzer {
    settings: Settings,
    #[serde(with = "as_pairs")]
    series: HashMap<SeriesKey, Series>,
    /// (account, region) → the first minute seen: where its history begins.
    #[serde(with = "as_pairs")]
    first_seen: HashMap<(String, String), i64>,
    newest_event_ms: Option<i64>,
}

impl Analyzer {
    pub fn new(settings: Settings) -> Analyzer {
        Analyzer {
            settings,
            series: HashMap::new(),
            first_seen: HashMap::new(),
            newest_event_ms: None,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The newest event time seen, in epoch milliseconds.
    pub fn newest_event_ms(&self) -> Option<i64> {
        self.newest_event_ms
    }

    /// Counts one record given as JSON text; answers whether Insights analyses it.
    pub fn observe_record(&mut self, json: &str) -> bool {
        match ObservedCall::parse(json) {
            Some(call) if !call.series_keys().is_empty() => {
                self.observe(&call);
                true
            }
            _ => false,
        }
    }

    /// Counts one record; records Insights does not analyse are ignored.
    pub(crate) fn observe(&mut self, call: &ObservedCall<'_>) {
        let Some(time_ms) = call.event_time_ms() else {
            return;
        };
        let keys = call.series_keys();
        if keys.is_empty() {
            return;
        }
        let minute = time_ms.div_euclid(MINUTE_MS);
        self.newest_event_ms = Some(self.newest_event_ms.map_or(time_ms, |n| n.max(time_ms)));
        let bucket_minutes = self.settings.bucket_minutes();
        for key in keys {
            let place = (key.account_id.clone(), key.region.clone());
            self.first_seen
                .entry(place)
                .and_modify(|first| *first = (*first).min(minute))
                .or_insert(minute);
            let series = self.series.entry(key).or_insert_with(|| Series {
                closed_before: minute,
                newest_ms: time_ms,
                last_active_minute: minute,
                ..Series::default()
            });
            series.last_active_minute = series.last_active_minute.max(minute);
            series.newest_ms = series.newest_ms.max(time_ms);
            let hour_written_before = series.closed_before.div_euclid(HOUR_MINUTES) * HOUR_MINUTES;
            if minute >= series.closed_before {
                *series.minutes.entry(minute).or_default() += 1;
            } else {
                // Too late to be judged: it still counts in the baseline and the metrics.
                let counts = if minute >= hour_written_before {
                    &mut series.minutes
                } else {
                    &mut series.late
                };
                let count = counts.entry(minute).or_default();
                *count += 1;
                let before = *count - 1;
                series.fold_late(minute, before, bucket_minutes);
            }
        }
    }

    /// Judges every minute each series' watermark closed (with `clock_ms`, the clock's
    /// time once the log is quiet) and returns the period boundaries found and the hours
    /// ready for the metrics files.
    pub fn close(&mut self, clock_ms: Option<i64>) -> Closed {
        let mut closed = Closed::default();
        let settings = self.settings;
        let bucket_minutes = settings.bucket_minutes();
        let log_newest_ms = self.newest_event_ms.unwrap_or(i64::MIN);
        for (key, series) in &mut self.series {
            let followed = log_newest_ms.min(series.newest_ms.saturating_add(FOLLOW_MS));
            let watermark_ms = series
                .newest_ms
                .max(followed)
                .max(clock_ms.unwrap_or(i64::MIN));
            let new = (watermark_ms - settings.lateness_ms).div_euclid(MINUTE_MS);
            let old = series.closed_before;
            if new > old {
                let established_from = self
                    .first_seen
                    .get(&(key.account_id.clone(), key.region.clone()))
                    .map_or(i64::MAX, |first| first + settings.baseline_minutes);
                judge_minutes(
                    key,
                    series,
                    old,
                    new,
                    established_from,
                    &settings,
                    &mut closed.transitions,
                );
                series.closed_before = new;
            }
            let written_before = series.closed_before.div_euclid(HOUR_MINUTES) * HOUR_MINUTES;
            take_complete_hours(key, series, written_before, &mut closed.hours);
            let keep_buckets_from =
                (series.closed_before - settings.baseline_minutes).div_euclid(bucket_minutes) - 1;
            while series
                .buckets
                .front()
                .is_some_and(|bucket| bucket.index < keep_buckets_from)
            {
                series.buckets.pop_front();
            }
        }
        // Boundaries in time order, whatever the map's order.
        closed
            .transitions
            .sort_by(|a, b| a.minute.cmp(&b.minute).then_with(|| a.key.cmp(&b.key)));
        self.forget_idle_series();
        closed
    }

    /// Keeps at most `series_max` series: the least recently active go first, never one
    /// inside a period or with counts not yet written.
    fn forget_idle_series(&mut self) {
        if self.series.len() <= self.settings.series_max {
            return;
        }
        let keep = self.settings.series_max * 9 / 10;
        let mut idle: Vec<(i64, SeriesKey)> = self
            .series
            .iter()
            .filter(|(_, series)| series.period.is_none() && series.minutes.is_empty())
            .map(|(key, series)| (series.last_active_minute, key.clone()))
            .collect();
        idle.sort();
        let excess = self.series.len().saturating_sub(keep);
        for (_, key) in idle.into_iter().take(excess) {
            self.series.remove(&key);
        }
        // Series with nothing left in the window are forgotten whatever the count.
        self.series.retain(|_, series| {
            !series.buckets.is_empty() || !series.minutes.is_empty() || series.period.is_some()
        });
    }

    /// The per-minute counts not yet in the metrics files, for `key`.
    pub fn unwritten_minutes(&self, key: &SeriesKey) -> Vec<(i64, u64)> {
        self.series.get(key).map_or_else(Vec::new, |series| {
            series
                .minutes
                .iter()
                .chain(series.late.iter())
                .map(|(minute, count)| (*minute, *count))
                .collect()
        })
    }

    /// The series keys of an account and region (for listing what has metrics).
    pub fn keys(&self) -> impl Iterator<Item = &SeriesKey> {
        self.series.keys()
    }
}

/// Judges the minutes `old..new` of one series, in order.
fn judge_minutes(
    key: &SeriesKey,
    series: &mut Series,
    old: i64,
    new: i64,
    established_from: i64,
    settings: &Settings,
    transitions: &mut Vec<Transition>,
) {
    let bucket_minutes = settings.bucket_minutes();
    let mut minute = old;
    while minute < new {
        if series.period.is_none() {
            // Minutes without calls cannot start a period: jump to the next with some.
            match series.minutes.range(minute..new).next() {
                Some((&next, _)) => minute = next,
                None => break,
            }
        }
        let count = series.minutes.get(&minute).copied().unwrap_or(0);
        match &mut series.period {
            Some(period) if count as f64 >= period.threshold => {
                period.total += count;
                period.minutes += 1;
            }
            Some(period) => {
                transitions.push(Transition {
                    key: key.clone(),
                    state: PeriodState::End,
                    minute,
                    period_start_minute: period.start_minute,
                    baseline_average: period.baseline_average,
                    insight_average: period.total as f64 / period.minutes.max(1) as f64,
                    insight_duration_minutes: period.minutes,
                    baseline_duration_minutes: settings.baseline_minutes,
                });
                series.period = None;
            }
            None if minute >= established_from => {
                let baseline = series.baseline(minute, settings);
                if count as f64 >= baseline.threshold {
                    transitions.push(Transition {
                        key: key.clone(),
                        state: PeriodState::Start,
                        minute,
                        period_start_minute: minute,
                        baseline_average: baseline.average,
                        insight_average: count as f64,
                        insight_duration_minutes: 1,
                        baseline_duration_minutes: settings.baseline_minutes,
                    });
                    series.period = Some(OpenPeriod {
                        start_minute: minute,
                        baseline_average: baseline.average,
                        threshold: baseline.threshold,
                        total: count,
                        minutes: 1,
                    });
                }
            }
            None => {}
        }
        if count > 0 {
            series.fold(minute, count, bucket_minutes);
        }
        minute += 1;
    }
}

/// Moves the counts of complete hours (and late counts) out of `series`.
fn take_complete_hours(
    key: &SeriesKey,
    series: &mut Series,
    written_before: i64,
    hours: &mut Vec<HourCounts>,
) {
    let still_open = series.minutes.split_off(&written_before);
    let complete = std::mem::replace(&mut series.minutes, still_open);
    let late = std::mem::take(&mut series.late);
    for counts in [complete, late] {
        let mut current: Option<HourCounts> = None;
        for (minute, count) in counts {
            let hour = minute.div_euclid(HOUR_MINUTES);
            if current.as_ref().is_some_and(|open| open.hour != hour) {
                hours.extend(current.take());
            }
            let entry = current.get_or_insert_with(|| HourCounts {
                key: key.clone(),
                hour,
                minutes: Vec::new(),
            });
            entry
                .minutes
                .push((minute.rem_euclid(HOUR_MINUTES) as u8, count));
        }
        hours.extend(current);
    }
}

/// JSON maps need string keys: the series map is kept as a list of pairs.
mod as_pairs {
    use std::collections::HashMap;
    use std::hash::Hash;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S, K, V>(map: &HashMap<K, V>, serializer: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        K: Serialize,
        V: Serialize,
    {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, D, K, V>(deserializer: D) -> Result<HashMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

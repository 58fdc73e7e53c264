//! A seeded, deterministic generator of realistic CloudTrail events.
//!
//! The stream is shaped like the real corpus in `../shared/corpus/cloudtrail`: about
//! 1.4 KB per record; skewed distributions of event sources, names, users, roles, access
//! keys, resources, source IPs and errors (see [`catalog`]); read and write calls;
//! management and data events; automation acting through `invokedBy`. Two classic
//! investigation stories are woven in (see [`stories`]):
//!
//! - the DynamoDB table `orders` deleted by IAM user `alice` from 203.0.113.7;
//! - EC2 instances launched by CloudFormation on user `bob`'s behalf;
//! - a call-rate spike (role `ci-deployer` writing SSM parameters) and an error spike
//!   (user `eve` refused on `GetSecretValue`), one minute each, for Insights.
//!
//! The same configuration always yields the same bytes, so a benchmark can write the
//! CloudTrail log files once and regenerate the identical stream for ingest instead of
//! holding millions of events in memory. Events come out in non-decreasing `eventTime`,
//! spread over the configured window with a day/night curve.
//!
//! Outputs: one record at a time ([`Generator::next_into`]), NDJSON batches
//! ([`Generator::next_ndjson_batch`]), and CloudTrail gz log files in the AWSLogs layout
//! ([`logfiles::LogFileWriter`]).

pub mod catalog;
mod json;
pub mod logfiles;
mod record;
pub mod rng;
pub mod stories;

use std::collections::VecDeque;
use std::sync::Arc;

use crate::catalog::{ACCOUNT_WEIGHTS, OTHER_ACCOUNTS, OTHER_REGIONS, REGION_WEIGHTS};
use crate::record::Background;
use crate::rng::Rng;

pub use crate::logfiles::{LogFileError, LogFileWriter, LogFilesSummary};

/// Midnight UTC, 2 June 2025: the default window start, fixed so that benchmark runs
/// generate the same events whatever day they run on.
pub const DEFAULT_START_MS: i64 = 1_748_822_400_000;
/// One day.
pub const DAY_MS: i64 = 86_400_000;
/// The primary account; also OpenTrail's default `account_id`, so a default server's
/// admin key sees the generated events.
pub const DEFAULT_ACCOUNT: &str = "123456789012";
pub const DEFAULT_REGION: &str = "us-east-1";

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// The same seed (and the rest of this configuration) gives the same bytes.
    pub seed: u64,
    /// Total events, the stories' included.
    pub events: u64,
    /// Start of the time window, milliseconds since the epoch.
    pub start_ms: i64,
    /// Length of the time window.
    pub duration_ms: i64,
    /// The account most events (and the stories) belong to.
    pub primary_account: String,
    /// The region most events (and the stories) happen in.
    pub primary_region: String,
    /// Weave in the investigation stories (needs at least [`stories::EVENT_COUNT`] events).
    pub stories: bool,
}

impl GeneratorConfig {
    /// `events` events over the default day, in the default account and region, with the
    /// stories.
    pub fn new(seed: u64, events: u64) -> GeneratorConfig {
        GeneratorConfig {
            seed,
            events,
            start_ms: DEFAULT_START_MS,
            duration_ms: DAY_MS,
            primary_account: DEFAULT_ACCOUNT.to_owned(),
            primary_region: DEFAULT_REGION.to_owned(),
            stories: true,
        }
    }

    /// The end of the window (exclusive).
    pub fn end_ms(&self) -> i64 {
        self.start_ms.saturating_add(self.duration_ms)
    }
}

/// Where and when a generated record happened, for routing it to a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub event_time_ms: i64,
    pub account_id: Arc<str>,
    pub region: Arc<str>,
}

/// One generated record with its metadata (the allocating form of the stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedEvent {
    pub json: String,
    pub meta: EventMeta,
}

/// A story record waiting for its moment in the stream.
#[derive(Debug, Clone)]
pub(crate) struct TimedRecord {
    pub time_ms: i64,
    pub account_id: Arc<str>,
    pub region: Arc<str>,
    pub json: String,
}

/// The event stream. Deterministic: see the crate documentation.
pub struct Generator {
    config: GeneratorConfig,
    background: Background,
    background_total: u64,
    background_done: u64,
    produced: u64,
    stories: VecDeque<TimedRecord>,
}

impl Generator {
    pub fn new(config: GeneratorConfig) -> Generator {
        let accounts: Vec<Arc<str>> = std::iter::once(config.primary_account.as_str())
            .chain(
                OTHER_ACCOUNTS
                    .iter()
                    .copied()
                    .filter(|account| *account != config.primary_account),
            )
            .take(ACCOUNT_WEIGHTS.len())
            .map(Arc::from)
            .collect();
        let regions: Vec<Arc<str>> = std::iter::once(config.primary_region.as_str())
            .chain(
                OTHER_REGIONS
                    .iter()
                    .copied()
                    .filter(|region| *region != config.primary_region),
            )
            .take(REGION_WEIGHTS.len())
            .map(Arc::from)
            .collect();
        let story_records = if config.stories && config.events >= stories::EVENT_COUNT as u64 {
            stories::build(&config, &accounts[0], &regions[0])
        } else {
            Vec::new()
        };
        let background_total = config.events - story_records.len() as u64;
        Generator {
            background: Background::new(Rng::fork(config.seed, 1), accounts, regions),
            config,
            background_total,
            background_done: 0,
            produced: 0,
            stories: story_records.into(),
        }
    }

    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Events still to come.
    pub fn remaining(&self) -> u64 {
        self.config.events - self.produced
    }

    /// Appends the next record's JSON (one line, no newline) to `out` and says where and
    /// when it happened; `None` once all events were produced.
    pub fn next_into(&mut self, out: &mut String) -> Option<EventMeta> {
        if self.produced >= self.config.events {
            return None;
        }
        let next_background_ms = (self.background_done < self.background_total)
            .then(|| self.background_time_ms(self.background_done));
        let story_first = match (self.stories.front(), next_background_ms) {
            (Some(story), Some(background_ms)) => story.time_ms <= background_ms,
            (Some(_), None) => true,
            (None, _) => false,
        };
        self.produced += 1;
        if story_first && let Some(story) = self.stories.pop_front() {
            out.push_str(&story.json);
            return Some(EventMeta {
                event_time_ms: story.time_ms,
                account_id: story.account_id,
                region: story.region,
            });
        }
        let time_ms = next_background_ms.unwrap_or(self.config.start_ms);
        self.background_done += 1;
        Some(self.background.write_event(time_ms, out))
    }

    /// Appends up to `max` records as NDJSON (one per line, each line ending in `\n`) and
    /// returns how many were written.
    pub fn next_ndjson_batch(&mut self, max: usize, out: &mut Vec<u8>) -> usize {
        if !out.is_empty() {
            let mut appended = Vec::with_capacity(max * 1600);
            let written = self.next_ndjson_batch(max, &mut appended);
            out.extend_from_slice(&appended);
            return written;
        }
        // Records are written straight into `out`'s buffer, not into a line copied after
        // each; an empty vector is always text, so its allocation is kept.
        let mut text = String::from_utf8(std::mem::take(out)).unwrap_or_default();
        let mut written = 0;
        while written < max && self.next_into(&mut text).is_some() {
            text.push('\n');
            written += 1;
        }
        *out = text.into_bytes();
        written
    }

    /// The time of background event `index`: a day/night curve over the window (density
    /// `1 - 0.6·cos(2πu)`, busiest mid-window), truncated to whole seconds as CloudTrail
    /// records them. Monotonic in `index`, so the stream is time-ordered.
    fn background_time_ms(&self, index: u64) -> i64 {
        let total = self.background_total.max(1) as f64;
        let u = (index as f64 + 0.5) / total;
        let curved =
            u - 0.6 * (2.0 * std::f64::consts::PI * u).sin() / (2.0 * std::f64::consts::PI);
        let offset = (curved.clamp(0.0, 1.0) * self.config.duration_ms as f64) as i64;
        let time_ms = self.config.start_ms + offset.min(self.config.duration_ms - 1).max(0);
        time_ms - time_ms.rem_euclid(1000)
    }
}

/// [`format_event_time`] from 1970 to the end of jiff's range without `strftime`, which was a twentieth
/// of the generator's time (each second of a window is formatted once): the civil date of
/// the day number by Howard Hinnant's `civil_from_days`.
fn format_common_era_time(seconds: i64) -> Option<String> {
    // jiff's last second (9999-12-30T22:00:00Z); after it the old path's clamp applies.
    const JIFF_LAST_SECOND: i64 = 253_402_207_200;
    if !(0..=JIFF_LAST_SECOND).contains(&seconds) {
        return None;
    }
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let mut text = String::with_capacity(20);
    let fields = [
        (year, 4, '-'),
        (month, 2, '-'),
        (day, 2, 'T'),
        (second_of_day / 3_600, 2, ':'),
        (second_of_day / 60 % 60, 2, ':'),
        (second_of_day % 60, 2, 'Z'),
    ];
    for (value, width, separator) in fields {
        for place in (0..width).rev() {
            let digit = (value / 10_i64.pow(place)) % 10;
            text.push(char::from(b'0' + digit as u8));
        }
        text.push(separator);
    }
    Some(text)
}

impl Iterator for Generator {
    type Item = GeneratedEvent;

    fn next(&mut self) -> Option<GeneratedEvent> {
        let mut json = String::with_capacity(2048);
        let meta = self.next_into(&mut json)?;
        Some(GeneratedEvent { json, meta })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = usize::try_from(self.remaining()).unwrap_or(usize::MAX);
        (remaining, Some(remaining))
    }
}

/// Formats milliseconds since the epoch as CloudTrail does (`2025-06-02T10:05:00Z`).
pub fn format_event_time(time_ms: i64) -> String {
    let seconds = time_ms.div_euclid(1000);
    if let Some(text) = format_common_era_time(seconds) {
        return text;
    }
    match jiff::Timestamp::from_second(seconds) {
        Ok(timestamp) => timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        // Out of jiff's range (year ±9999): clamp rather than fail, the generator's
        // windows are configured by code, never by untrusted input.
        Err(_) => "1970-01-01T00:00:00Z".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_strftime(seconds: i64) -> String {
        jiff::Timestamp::from_second(seconds)
            .expect("in range")
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    #[test]
    fn event_times_are_formatted_as_strftime_formats_them() {
        let mut rng = crate::rng::Rng::new(11);
        let edges = [
            0,
            59,
            86_399,
            86_400,
            951_782_400,     // 2000-02-29
            4_107_542_400,   // 2100-03-01, after a century's missing leap day
            253_402_207_200, // jiff's last second
        ];
        let random = (0..20_000).map(|_| (rng.next_u64() % 253_402_207_201) as i64);
        for seconds in edges.into_iter().chain(random) {
            assert_eq!(
                format_event_time(seconds * 1000),
                with_strftime(seconds),
                "{seconds}"
            );
        }
        // Outside that range jiff formats it, or the clamp applies.
        assert_eq!(format_event_time(-1000), with_strftime(-1));
        assert_eq!(
            format_event_time(253_402_207_201_000),
            "1970-01-01T00:00:00Z"
        );
    }
}

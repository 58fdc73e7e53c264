//! Attributions: which principals, user agents and error codes made up a period's calls,
//! against the same in the baseline. Read from the store when a period starts or ends
//! (periods are rare), so counting each event stays a single increment.

use std::collections::HashMap;

use opentrail_event::FilterField;
use opentrail_store::{EventLane, LookupQuery, Store};

use crate::analysis::{PeriodState, Transition};
use crate::error::InsightsError;
use crate::model::{InsightType, SeriesKey};
use crate::observed::ObservedCall;
use crate::record::Attribution;

/// The most records read for one side of an attribution; beyond it, the counts are
/// scaled from the sample to the series' known total.
const SAMPLE_MAX: usize = 10_000;
const PAGE_EVENTS: usize = 1_000;
/// Values listed per attribute, as CloudTrail lists them.
const TOP_VALUES: usize = 5;
const MINUTE_MS: i64 = 60_000;

/// The attributions of a transition's period (the first minute for a Start, the whole
/// period for an End) and of its baseline window.
pub fn attributions(
    store: &Store,
    transition: &Transition,
) -> Result<Vec<Attribution>, InsightsError> {
    let start_ms = transition.period_start_minute * MINUTE_MS;
    let (period_end_ms, period_minutes) = match transition.state {
        PeriodState::Start => (start_ms + MINUTE_MS, 1),
        PeriodState::End => (
            transition.minute * MINUTE_MS,
            transition.insight_duration_minutes.max(1),
        ),
    };
    let baseline_minutes = transition.baseline_duration_minutes.max(1);
    let period_total = transition.insight_average * period_minutes as f64;
    let baseline_total = transition.baseline_average * baseline_minutes as f64;
    let insight = tally(store, &transition.key, start_ms, period_end_ms)?;
    let baseline = tally(
        store,
        &transition.key,
        start_ms - baseline_minutes * MINUTE_MS,
        start_ms,
    )?;
    Ok(["userIdentityArn", "userAgent", "errorCode"]
        .into_iter()
        .map(|attribute| Attribution {
            attribute,
            insight: insight.averages(attribute, period_total, period_minutes),
            baseline: baseline.averages(attribute, baseline_total, baseline_minutes),
        })
        .collect())
}

/// Counts per attribute value over a sample of a series' records.
#[derive(Default)]
struct Tally {
    sampled: u64,
    counts: HashMap<(&'static str, String), u64>,
}

impl Tally {
    /// The top values of `attribute` as calls per minute, scaled from the sample to
    /// `total` calls.
    fn averages(&self, attribute: &str, total: f64, minutes: i64) -> Vec<(String, f64)> {
        if self.sampled == 0 {
            return Vec::new();
        }
        let scale = if total > 0.0 {
            total / self.sampled as f64
        } else {
            1.0
        };
        let mut values: Vec<(String, f64)> = self
            .counts
            .iter()
            .filter(|((name, _), _)| *name == attribute)
            .map(|((_, value), count)| (value.clone(), *count as f64 * scale / minutes as f64))
            .collect();
        values.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        values.truncate(TOP_VALUES);
        values
    }
}

/// Reads up to [`SAMPLE_MAX`] records of `key` with event times in `[from_ms, to_ms)`.
fn tally(store: &Store, key: &SeriesKey, from_ms: i64, to_ms: i64) -> Result<Tally, InsightsError> {
    let mut tally = Tally::default();
    if to_ms <= from_ms {
        return Ok(tally);
    }
    let mut query = LookupQuery::new(
        Some(key.account_id.clone()),
        Some(key.region.clone()),
        PAGE_EVENTS,
    );
    query.lane = EventLane::Standard;
    query.filters = vec![
        (FilterField::EventName, key.event_name.clone()),
        (FilterField::EventSource, key.event_source.clone()),
    ];
    if key.insight_type == InsightType::ApiErrorRateInsight
        && let Some(code) = &key.error_code
    {
        query.filters.push((FilterField::ErrorCode, code.clone()));
    }
    query.start_time_ms = Some(from_ms);
    query.end_time_ms = Some(to_ms - 1);
    let mut read = 0usize;
    loop {
        let page = store.lookup(&query)?;
        read += page.events.len();
        for stored in &page.events {
            let Some(call) = ObservedCall::parse(&stored.record.json) else {
                continue;
            };
            if !call.counts_in(key) {
                continue;
            }
            tally.sampled += 1;
            if let Some(arn) = call.user_identity_arn() {
                *tally
                    .counts
                    .entry(("userIdentityArn", arn.to_owned()))
                    .or_default() += 1;
            }
            if let Some(agent) = call.user_agent {
                *tally
                    .counts
                    .entry(("userAgent", agent.to_owned()))
                    .or_default() += 1;
            }
            let code = call.error_code().unwrap_or("null");
            *tally
                .counts
                .entry(("errorCode", code.to_owned()))
                .or_default() += 1;
        }
        match page.next {
            Some(next) if read < SAMPLE_MAX => query.cursor = Some(next),
            _ => break,
        }
    }
    Ok(tally)
}

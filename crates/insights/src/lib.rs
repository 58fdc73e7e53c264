//! CloudTrail Insights: unusual API call rates and error rates, found as a consumer of
//! the log and reported as CloudTrail Insights records.
//!
//! The data flow, each step in its module:
//! - [`observed`]: the few members of a record Insights reads, and the series it counts
//!   in: `ApiCallRateInsight` counts write management calls (and any data call) per
//!   account, region, eventSource and eventName; `ApiErrorRateInsight` counts the calls
//!   that returned an error, per error code as well.
//! - [`analysis`]: per-minute counts, a baseline of the window before each minute (7 days,
//!   or `OPENTRAIL_INSIGHTS_BASELINE_MINUTES`), and the documented rule that starts and
//!   ends a period. Pure and deterministic, with bounded memory.
//! - [`attribution`] and [`record`]: at each boundary, the Start or End record CloudTrail
//!   would write (shared `sharedEventID`, statistics, attributions by userIdentityArn,
//!   userAgent and errorCode, top 5 each), with deterministic event ids.
//! - [`consumer`]: reads the log with a durable cursor (`insights`), appends the records
//!   to the store (they land in the Insight lane: LookupEvents returns them only with
//!   `EventCategory=insight`, and trails with Insights selectors deliver them), writes the
//!   per-minute metrics and a snapshot, so a restart neither loses nor repeats a period.
//! - [`metric_files`] and [`service`]: the per-minute series behind
//!   ListInsightsMetricData, and the worker the server runs while any trail has Insights
//!   selectors ([`InsightsScope`]). Turning Insights off everywhere forgets the analysis
//!   and removes the cursor, so it never holds back retention; turning them on again
//!   rebuilds the baseline from the retained log.
//!
//! Records are judged by event time, not arrival time, so imported logs get their
//! Insights too.

pub mod analysis;
mod attribution;
mod consumer;
mod error;
mod metric_files;
mod model;
mod observed;
pub mod record;
mod service;

pub use analysis::{Analyzer, DEFAULT_BASELINE_MINUTES, PeriodState, Settings, Transition};
pub use consumer::{INSIGHTS_CONSUMER, InsightsConsumer, InsightsScan, SNAPSHOT_INTERVAL};
pub use error::InsightsError;
pub use metric_files::METRICS_RETENTION_DAYS;
pub use model::{InsightType, InsightsScope, SeriesKey, SourceCategory};
pub use service::{Insights, InsightsOptions, InsightsWorker, MetricQuery, Timeline};

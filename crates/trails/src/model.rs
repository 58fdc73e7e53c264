//! The trail model: what a trail is, as persisted in `DATA_DIR/trails/trails.json`.
//!
//! These types are the persisted form (versioned by [`crate::registry`]'s file version),
//! never the wire form: the server converts them by hand to and from the protocol crate's
//! CloudTrail shapes, so a change here never silently changes the API.

use serde::{Deserialize, Serialize};

/// One trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trail {
    /// A UUID that names the trail's delivery state directory. A trail deleted and created
    /// again under the same name gets a new id, so it never inherits old delivery state.
    pub id: String,
    pub name: String,
    pub account_id: String,
    /// The region the trail was created in (the SigV4 signing region of CreateTrail).
    pub home_region: String,
    pub settings: TrailSettings,
    pub selectors: EventSelectors,
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub logging: LoggingHistory,
    pub created_time_ms: i64,
    /// PutInsightSelectors: which Insights the trail delivers. Empty: Insights off. (Absent
    /// in files written before Insights existed.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insight_selectors: Vec<InsightSelector>,
}

impl Trail {
    /// `arn:aws:cloudtrail:<home region>:<account>:trail/<name>`.
    pub fn arn(&self) -> String {
        trail_arn(&self.home_region, &self.account_id, &self.name)
    }

    /// Whether this trail is visible in `region`: in its home region, and as a shadow
    /// trail in every other region when it is multi-region.
    pub fn is_visible_in(&self, region: &str) -> bool {
        self.home_region == region || self.settings.is_multi_region_trail
    }

    /// The store cursor of the log-file delivery consumer.
    pub fn delivery_consumer(&self) -> String {
        format!("trail/{}", self.arn())
    }

    /// The store cursor of the stream (CloudWatch Logs) consumer.
    pub fn stream_consumer(&self) -> String {
        format!("trail/{}/cloudwatch-logs", self.arn())
    }

    /// The store cursor of the Insights file delivery consumer.
    pub fn insights_consumer(&self) -> String {
        format!("trail/{}/insights", self.arn())
    }

    /// Whether the trail has Insights selectors (`HasInsightSelectors`).
    pub fn has_insight_selectors(&self) -> bool {
        !self.insight_selectors.is_empty()
    }
}

/// One Insights selector: a type, on some categories of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InsightSelector {
    /// `ApiCallRateInsight` or `ApiErrorRateInsight`.
    pub insight_type: String,
    /// `Management` and/or `Data`; CloudTrail's default (when a request names none) is
    /// `Management`, applied before it gets here.
    pub event_categories: Vec<String>,
}

/// `arn:aws:cloudtrail:<region>:<account>:trail/<name>`.
pub fn trail_arn(region: &str, account_id: &str, name: &str) -> String {
    format!("arn:aws:cloudtrail:{region}:{account_id}:trail/{name}")
}

/// A trail's settings, as CreateTrail and UpdateTrail set them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrailSettings {
    pub s3_bucket_name: String,
    #[serde(default)]
    pub s3_key_prefix: Option<String>,
    #[serde(default)]
    pub sns_topic: Option<SnsTopic>,
    pub include_global_service_events: bool,
    pub is_multi_region_trail: bool,
    pub log_file_validation_enabled: bool,
    #[serde(default)]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(default)]
    pub cloud_watch_logs_role_arn: Option<String>,
    pub recursive_logging: bool,
}

/// The SNS topic a trail notifies, as given (name or ARN) and as an ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnsTopic {
    /// What CreateTrail/UpdateTrail received (a topic name or ARN); reported back as the
    /// deprecated `SnsTopicName`.
    pub given: String,
    /// `arn:aws:sns:<region>:<account>:<name>`; reported as `SnsTopicARN`.
    pub arn: String,
}

/// A resource tag. A key without a value is kept with `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// Which events a trail logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "selectors")]
pub enum EventSelectors {
    /// No PutEventSelectors yet: all read and write management events, no data events.
    Default,
    Basic(Vec<BasicSelector>),
    Advanced(Vec<AdvancedSelector>),
}

impl EventSelectors {
    /// The selectors a trail without custom selectors behaves as (spec §2.2).
    pub fn default_basic() -> Vec<BasicSelector> {
        vec![BasicSelector {
            read_write_type: ReadWriteType::All,
            include_management_events: true,
            data_resources: Vec::new(),
            exclude_management_event_sources: Vec::new(),
        }]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadWriteType {
    ReadOnly,
    WriteOnly,
    All,
}

impl ReadWriteType {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadWriteType::ReadOnly => "ReadOnly",
            ReadWriteType::WriteOnly => "WriteOnly",
            ReadWriteType::All => "All",
        }
    }

    /// Whether an event with this `readOnly` passes. A record without `readOnly` (never
    /// stored by OpenTrail, whose normalisation adds it) counts as a write.
    pub fn admits(self, read_only: Option<bool>) -> bool {
        match self {
            ReadWriteType::All => true,
            ReadWriteType::ReadOnly => read_only == Some(true),
            ReadWriteType::WriteOnly => read_only != Some(true),
        }
    }
}

/// A basic event selector (`EventSelector`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicSelector {
    pub read_write_type: ReadWriteType,
    pub include_management_events: bool,
    #[serde(default)]
    pub data_resources: Vec<DataResource>,
    #[serde(default)]
    pub exclude_management_event_sources: Vec<String>,
}

/// Data events of one resource type whose ARN starts with one of `values`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataResource {
    pub resource_type: String,
    pub values: Vec<String>,
}

/// An advanced event selector: every field selector must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedSelector {
    #[serde(default)]
    pub name: Option<String>,
    pub field_selectors: Vec<FieldSelector>,
}

/// One condition on one record field.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldSelector {
    pub field: String,
    #[serde(default)]
    pub equals: Vec<String>,
    #[serde(default)]
    pub starts_with: Vec<String>,
    #[serde(default)]
    pub ends_with: Vec<String>,
    #[serde(default)]
    pub not_equals: Vec<String>,
    #[serde(default)]
    pub not_starts_with: Vec<String>,
    #[serde(default)]
    pub not_ends_with: Vec<String>,
}

/// When the trail was logging, in terms of log sequence numbers, so delivery decides by
/// an event's position in the log (not by clocks) whether the trail was logging when the
/// event was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggingHistory {
    pub is_logging: bool,
    #[serde(default)]
    pub start_logging_time_ms: Option<i64>,
    #[serde(default)]
    pub stop_logging_time_ms: Option<i64>,
    /// Oldest first; only the last may be open. Periods the delivery cursor has passed are
    /// pruned, so the list stays short.
    #[serde(default)]
    pub periods: Vec<LoggingPeriod>,
}

/// Events with `after_seq < seq <= through_seq` were accepted while the trail logged;
/// `through_seq` is `None` while logging continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggingPeriod {
    pub after_seq: u64,
    #[serde(default)]
    pub through_seq: Option<u64>,
}

impl LoggingHistory {
    /// Whether the event at `seq` was accepted while the trail was logging.
    pub fn covers(&self, seq: u64) -> bool {
        self.periods.iter().any(|period| {
            seq > period.after_seq && period.through_seq.is_none_or(|through| seq <= through)
        })
    }

    /// The lowest sequence number before which nothing can ever be delivered: delivery
    /// may start its cursor here.
    pub fn first_deliverable_after(&self) -> Option<u64> {
        self.periods.first().map(|period| period.after_seq)
    }

    /// Whether nothing after `seq` can be delivered unless logging starts again.
    pub fn is_exhausted_after(&self, seq: u64) -> bool {
        self.periods
            .iter()
            .all(|period| period.through_seq.is_some_and(|through| through <= seq))
    }

    /// Starts a period after `last_seq` (a no-op while already logging).
    pub fn start(&mut self, last_seq: u64, now_ms: i64) {
        if self.is_logging {
            return;
        }
        self.is_logging = true;
        self.start_logging_time_ms = Some(now_ms);
        self.periods.push(LoggingPeriod {
            after_seq: last_seq,
            through_seq: None,
        });
    }

    /// Closes the open period at `last_seq` (a no-op while not logging).
    pub fn stop(&mut self, last_seq: u64, now_ms: i64) {
        if !self.is_logging {
            return;
        }
        self.is_logging = false;
        self.stop_logging_time_ms = Some(now_ms);
        if let Some(open) = self
            .periods
            .iter_mut()
            .rev()
            .find(|period| period.through_seq.is_none())
        {
            open.through_seq = Some(last_seq.max(open.after_seq));
        }
    }

    /// Drops closed periods that end at or before `delivered_through_seq`.
    pub fn prune_through(&mut self, delivered_through_seq: u64) {
        self.periods.retain(|period| {
            period
                .through_seq
                .is_none_or(|through| through > delivered_through_seq)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logging_periods_cover_only_what_was_accepted_while_logging() {
        let mut history = LoggingHistory::default();
        assert!(!history.covers(1));
        history.start(10, 1);
        assert!(!history.covers(10));
        assert!(history.covers(11));
        history.stop(20, 2);
        assert!(history.covers(20));
        assert!(!history.covers(21));
        history.start(30, 3);
        assert!(!history.covers(25));
        assert!(history.covers(31));
        assert!(!history.is_exhausted_after(100));
        history.stop(40, 4);
        assert!(history.is_exhausted_after(40));
        assert!(!history.is_exhausted_after(39));
        history.prune_through(20);
        assert_eq!(history.periods.len(), 1);
        assert_eq!(history.first_deliverable_after(), Some(30));
    }
}

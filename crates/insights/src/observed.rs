//! What Insights reads from a record, and which series a record counts in.

use serde::Deserialize;

use crate::model::{InsightType, SeriesKey, SourceCategory};

/// The members of a record Insights reads; the rest is skipped unread.
#[derive(Debug, Deserialize)]
pub(crate) struct ObservedCall<'a> {
    #[serde(rename = "eventTime", borrow, default)]
    pub event_time: Option<&'a str>,
    #[serde(rename = "eventSource", borrow, default)]
    pub event_source: Option<&'a str>,
    #[serde(rename = "eventName", borrow, default)]
    pub event_name: Option<&'a str>,
    #[serde(rename = "awsRegion", borrow, default)]
    pub aws_region: Option<&'a str>,
    #[serde(rename = "recipientAccountId", borrow, default)]
    pub recipient_account_id: Option<&'a str>,
    #[serde(rename = "eventCategory", borrow, default)]
    pub event_category: Option<&'a str>,
    #[serde(rename = "readOnly", default)]
    pub read_only: Option<ReadOnly>,
    #[serde(rename = "errorCode", borrow, default)]
    pub error_code: Option<&'a str>,
    #[serde(rename = "userAgent", borrow, default)]
    pub user_agent: Option<&'a str>,
    #[serde(rename = "userIdentity", borrow, default)]
    pub user_identity: Option<Identity<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Identity<'a> {
    #[serde(borrow, default)]
    pub arn: Option<&'a str>,
}

/// `readOnly` as a boolean or as the strings some producers send.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub(crate) enum ReadOnly {
    Bool(bool),
    Text(ReadOnlyText),
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) enum ReadOnlyText {
    #[serde(rename = "true")]
    True,
    #[serde(rename = "false")]
    False,
}

impl ReadOnly {
    fn is_read_only(self) -> bool {
        matches!(
            self,
            ReadOnly::Bool(true) | ReadOnly::Text(ReadOnlyText::True)
        )
    }
}

impl<'a> ObservedCall<'a> {
    /// `None` for text that is not a record object (stored records always are).
    pub fn parse(json: &'a str) -> Option<ObservedCall<'a>> {
        serde_json::from_str(json).ok()
    }

    /// The event time in epoch milliseconds, when readable.
    pub fn event_time_ms(&self) -> Option<i64> {
        let text = self.event_time?;
        let timestamp: jiff::Timestamp = text.parse().ok()?;
        Some(timestamp.as_millisecond())
    }

    /// The category Insights would watch this record under; `None` for Insights records
    /// themselves and for categories Insights never analyses.
    pub fn source_category(&self) -> Option<SourceCategory> {
        match self.event_category.unwrap_or("Management") {
            "Management" => Some(SourceCategory::Management),
            "Data" => Some(SourceCategory::Data),
            _ => None,
        }
    }

    /// Whether this record counts as a call for `ApiCallRateInsight`: write management
    /// calls, or any data call.
    fn counts_as_call(&self, category: SourceCategory) -> bool {
        match category {
            SourceCategory::Management => !self.read_only.is_some_and(ReadOnly::is_read_only),
            SourceCategory::Data => true,
        }
    }

    pub fn error_code(&self) -> Option<&'a str> {
        self.error_code.filter(|code| !code.is_empty())
    }

    pub fn user_identity_arn(&self) -> Option<&'a str> {
        self.user_identity
            .as_ref()
            .and_then(|identity| identity.arn)
    }

    /// The series this record counts in (none, one, or one of each type).
    pub fn series_keys(&self) -> Vec<SeriesKey> {
        let (Some(account), Some(region), Some(source), Some(name), Some(category)) = (
            self.recipient_account_id,
            self.aws_region,
            self.event_source,
            self.event_name,
            self.source_category(),
        ) else {
            return Vec::new();
        };
        let key = |insight_type, error_code: Option<&str>| SeriesKey {
            account_id: account.to_owned(),
            region: region.to_owned(),
            event_source: source.to_owned(),
            event_name: name.to_owned(),
            insight_type,
            category,
            error_code: error_code.map(str::to_owned),
        };
        let mut keys = Vec::with_capacity(2);
        if self.counts_as_call(category) {
            keys.push(key(InsightType::ApiCallRateInsight, None));
        }
        if let Some(code) = self.error_code() {
            keys.push(key(InsightType::ApiErrorRateInsight, Some(code)));
        }
        keys
    }

    /// Whether this record counts in `key` (its account, region and API already match).
    pub fn counts_in(&self, key: &SeriesKey) -> bool {
        self.series_keys().iter().any(|own| own == key)
    }
}

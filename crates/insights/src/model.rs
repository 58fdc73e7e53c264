//! What Insights analyses: the two Insights types, the event categories they watch, and
//! the series key (one per account, region, API and type).

use serde::{Deserialize, Serialize};

/// CloudTrail's two Insights types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum InsightType {
    /// Write management calls, or read and write data calls, per minute.
    ApiCallRateInsight,
    /// Calls that returned an error, per minute and error code.
    ApiErrorRateInsight,
}

impl InsightType {
    pub fn as_str(self) -> &'static str {
        match self {
            InsightType::ApiCallRateInsight => "ApiCallRateInsight",
            InsightType::ApiErrorRateInsight => "ApiErrorRateInsight",
        }
    }

    pub fn parse(text: &str) -> Option<InsightType> {
        match text {
            "ApiCallRateInsight" => Some(InsightType::ApiCallRateInsight),
            "ApiErrorRateInsight" => Some(InsightType::ApiErrorRateInsight),
            _ => None,
        }
    }
}

/// The event categories an Insights selector may watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SourceCategory {
    Management,
    Data,
}

impl SourceCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceCategory::Management => "Management",
            SourceCategory::Data => "Data",
        }
    }

    pub fn parse(text: &str) -> Option<SourceCategory> {
        match text {
            "Management" => Some(SourceCategory::Management),
            "Data" => Some(SourceCategory::Data),
            _ => None,
        }
    }
}

/// One analysed series: the calls (or the errors with one code) of one API, in one
/// account and region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    #[serde(rename = "a")]
    pub account_id: String,
    #[serde(rename = "r")]
    pub region: String,
    #[serde(rename = "s")]
    pub event_source: String,
    #[serde(rename = "n")]
    pub event_name: String,
    #[serde(rename = "t")]
    pub insight_type: InsightType,
    #[serde(rename = "c")]
    pub category: SourceCategory,
    /// The error code, for [`InsightType::ApiErrorRateInsight`] only.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// Which Insights the trails have turned on; the server answers from its trails.
pub trait InsightsScope: Send + Sync {
    /// Whether any trail has Insights selectors (when none does, nothing is analysed).
    fn any_enabled(&self) -> bool;

    /// Whether Insights of this type on this category are on for the account and region.
    fn is_enabled(
        &self,
        account_id: &str,
        region: &str,
        insight_type: InsightType,
        category: SourceCategory,
    ) -> bool;
}

//! PutInsightSelectors and GetInsightSelectors (awsJson1_1), on trails.
//!
//! Shapes follow the botocore model: `InsightSelectors` is a list of
//! `{InsightType, EventCategories}`; responses carry `TrailARN` and the selectors, with
//! `EventCategories` always filled in. Validation (spec §2.2):
//!
//! - `TrailName` with `EventDataStore` or `InsightsDestination`:
//!   `InvalidParameterCombinationException`.
//! - `EventDataStore` or `InsightsDestination` alone: `UnsupportedOperationException`
//!   (OpenTrail has no event data stores).
//! - Neither: the trail name rules (`InvalidTrailNameException`), as for every trail call;
//!   a malformed ARN is `CloudTrailARNInvalidException`.
//! - `InsightSelectors` (`InvalidInsightSelectorsException`): required (an empty list turns
//!   Insights off); each `InsightType` one of [`INSIGHT_TYPES`] and named once;
//!   `EventCategories` absent (CloudTrail's default: `Management`) or 1–2 distinct values of
//!   [`INSIGHT_EVENT_CATEGORIES`].

use serde::{Deserialize, Serialize};

use crate::error::{AwsError, codes};
use crate::trails::{TrailName, parse_trail_name_or_arn};

/// The Insights types (`InsightType`).
pub const INSIGHT_TYPES: [&str; 2] = ["ApiCallRateInsight", "ApiErrorRateInsight"];
/// The categories Insights analyse (`SourceEventCategory`).
pub const INSIGHT_EVENT_CATEGORIES: [&str; 2] = ["Management", "Data"];
/// What `EventCategories` means when a selector leaves it out (the model's documentation).
pub const DEFAULT_INSIGHT_EVENT_CATEGORY: &str = "Management";

/// One Insights selector, as on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InsightSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insight_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_categories: Option<Vec<String>>,
}

/// A selector that passed validation, with the default category applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedInsightSelector {
    pub insight_type: String,
    pub event_categories: Vec<String>,
}

/// PutInsightSelectors input. Every member is optional here so a missing one gets
/// CloudTrail's error rather than a serialization error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutInsightSelectorsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insight_selectors: Option<Vec<InsightSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_data_store: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insights_destination: Option<String>,
}

impl PutInsightSelectorsRequest {
    /// The trail and its new selectors (empty: Insights off).
    pub fn validate(&self) -> Result<(TrailName, Vec<ValidatedInsightSelector>), AwsError> {
        let event_data_store = self
            .event_data_store
            .as_deref()
            .or(self.insights_destination.as_deref());
        let trail = trail_not_event_data_store(self.trail_name.as_deref(), event_data_store)?;
        let selectors = self.insight_selectors.as_deref().ok_or_else(|| {
            invalid_insight_selectors(
                "InsightSelectors is required; an empty list turns Insights off.",
            )
        })?;
        Ok((trail, validate_insight_selectors(selectors)?))
    }
}

/// GetInsightSelectors input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetInsightSelectorsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_data_store: Option<String>,
}

impl GetInsightSelectorsRequest {
    pub fn trail(&self) -> Result<TrailName, AwsError> {
        trail_not_event_data_store(self.trail_name.as_deref(), self.event_data_store.as_deref())
    }
}

/// PutInsightSelectors and GetInsightSelectors output (the event data store members are
/// never sent: OpenTrail has none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InsightSelectorsResponse {
    #[serde(rename = "TrailARN")]
    pub trail_arn: String,
    pub insight_selectors: Vec<InsightSelector>,
}

impl InsightSelectorsResponse {
    pub fn new(trail_arn: String, selectors: &[ValidatedInsightSelector]) -> Self {
        InsightSelectorsResponse {
            trail_arn,
            insight_selectors: selectors
                .iter()
                .map(|selector| InsightSelector {
                    insight_type: Some(selector.insight_type.clone()),
                    event_categories: Some(selector.event_categories.clone()),
                })
                .collect(),
        }
    }
}

/// `InsightNotEnabledException`: GetInsightSelectors on a trail without Insights.
pub fn insight_not_enabled(trail_arn: &str) -> AwsError {
    AwsError::new(
        codes::INSIGHT_NOT_ENABLED,
        format!("Trail {trail_arn} does not have Insights enabled."),
    )
}

/// The trail a request names, refusing the event data store members.
fn trail_not_event_data_store(
    trail_name: Option<&str>,
    event_data_store: Option<&str>,
) -> Result<TrailName, AwsError> {
    match (trail_name, event_data_store) {
        (Some(_), Some(_)) => Err(AwsError::new(
            codes::INVALID_PARAMETER_COMBINATION,
            "Specify either TrailName or EventDataStore (with InsightsDestination), not both.",
        )),
        (None, Some(_)) => Err(AwsError::unsupported_operation(
            "OpenTrail has no event data stores (CloudTrail Lake); set Insights selectors on a trail with TrailName.",
        )),
        (trail_name, None) => parse_trail_name_or_arn(trail_name),
    }
}

fn invalid_insight_selectors(message: impl Into<String>) -> AwsError {
    AwsError::new(codes::INVALID_INSIGHT_SELECTORS, message)
}

/// The selector rules (see the module docs).
pub fn validate_insight_selectors(
    selectors: &[InsightSelector],
) -> Result<Vec<ValidatedInsightSelector>, AwsError> {
    let mut validated: Vec<ValidatedInsightSelector> = Vec::with_capacity(selectors.len());
    for selector in selectors {
        let insight_type = selector.insight_type.as_deref().unwrap_or_default();
        if !INSIGHT_TYPES.contains(&insight_type) {
            return Err(invalid_insight_selectors(format!(
                "InsightType '{insight_type}' is not valid: use {}.",
                INSIGHT_TYPES.join(" or ")
            )));
        }
        if validated
            .iter()
            .any(|earlier| earlier.insight_type == insight_type)
        {
            return Err(invalid_insight_selectors(format!(
                "InsightType {insight_type} is named more than once."
            )));
        }
        let event_categories = match &selector.event_categories {
            None => vec![DEFAULT_INSIGHT_EVENT_CATEGORY.to_owned()],
            Some(categories) => validate_event_categories(insight_type, categories)?,
        };
        validated.push(ValidatedInsightSelector {
            insight_type: insight_type.to_owned(),
            event_categories,
        });
    }
    Ok(validated)
}

fn validate_event_categories(
    insight_type: &str,
    categories: &[String],
) -> Result<Vec<String>, AwsError> {
    if categories.is_empty() {
        return Err(invalid_insight_selectors(format!(
            "EventCategories of {insight_type} is empty: name {}, or leave it out for Management.",
            INSIGHT_EVENT_CATEGORIES.join(" and/or ")
        )));
    }
    for (index, category) in categories.iter().enumerate() {
        if !INSIGHT_EVENT_CATEGORIES.contains(&category.as_str()) {
            return Err(invalid_insight_selectors(format!(
                "EventCategory '{category}' of {insight_type} is not valid: use {}.",
                INSIGHT_EVENT_CATEGORIES.join(" or ")
            )));
        }
        if categories[..index].contains(category) {
            return Err(invalid_insight_selectors(format!(
                "EventCategory {category} of {insight_type} is named more than once."
            )));
        }
    }
    Ok(categories.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(insight_type: &str, categories: Option<&[&str]>) -> InsightSelector {
        InsightSelector {
            insight_type: Some(insight_type.to_owned()),
            event_categories: categories
                .map(|categories| categories.iter().map(|c| c.to_string()).collect()),
        }
    }

    fn put(
        body: serde_json::Value,
    ) -> Result<(TrailName, Vec<ValidatedInsightSelector>), AwsError> {
        let request: PutInsightSelectorsRequest =
            serde_json::from_value(body).expect("request shape");
        request.validate()
    }

    #[test]
    fn categories_default_to_management_and_are_kept_as_given() {
        let validated = validate_insight_selectors(&[
            selector("ApiCallRateInsight", None),
            selector("ApiErrorRateInsight", Some(&["Data", "Management"])),
        ])
        .expect("valid");
        assert_eq!(
            validated,
            vec![
                ValidatedInsightSelector {
                    insight_type: "ApiCallRateInsight".to_owned(),
                    event_categories: vec!["Management".to_owned()],
                },
                ValidatedInsightSelector {
                    insight_type: "ApiErrorRateInsight".to_owned(),
                    event_categories: vec!["Data".to_owned(), "Management".to_owned()],
                },
            ]
        );
        assert_eq!(validate_insight_selectors(&[]).expect("off"), Vec::new());
    }

    #[test]
    fn bad_types_categories_and_duplicates_are_invalid_insight_selectors() {
        let cases: Vec<Vec<InsightSelector>> = vec![
            vec![selector("ApiCallRate", None)],
            vec![InsightSelector::default()],
            vec![
                selector("ApiCallRateInsight", None),
                selector("ApiCallRateInsight", Some(&["Data"])),
            ],
            vec![selector("ApiCallRateInsight", Some(&["Insight"]))],
            vec![selector("ApiCallRateInsight", Some(&["management"]))],
            vec![selector("ApiCallRateInsight", Some(&["Data", "Data"]))],
            vec![selector("ApiCallRateInsight", Some(&[]))],
        ];
        for selectors in cases {
            let error = validate_insight_selectors(&selectors).expect_err("invalid");
            assert_eq!(
                error.code,
                codes::INVALID_INSIGHT_SELECTORS,
                "{selectors:?}"
            );
            assert_eq!(error.status, 400);
        }
    }

    #[test]
    fn a_trail_or_an_event_data_store_but_not_both() {
        let selectors = serde_json::json!([{"InsightType": "ApiCallRateInsight"}]);
        let (trail, _) = put(serde_json::json!({
            "TrailName": "arn:aws:cloudtrail:us-east-1:111122223333:trail/main",
            "InsightSelectors": selectors,
        }))
        .expect("valid");
        assert!(matches!(trail, TrailName::Arn { name, .. } if name == "main"));
        let both = put(serde_json::json!({
            "TrailName": "main", "EventDataStore": "eds-id", "InsightSelectors": selectors,
        }))
        .expect_err("both");
        assert_eq!(both.code, codes::INVALID_PARAMETER_COMBINATION);
        let with_destination = put(serde_json::json!({
            "TrailName": "main", "InsightsDestination": "eds-id", "InsightSelectors": selectors,
        }))
        .expect_err("trail with a destination");
        assert_eq!(with_destination.code, codes::INVALID_PARAMETER_COMBINATION);
        let store_only = put(serde_json::json!({
            "EventDataStore": "eds-id", "InsightsDestination": "eds-2", "InsightSelectors": selectors,
        }))
        .expect_err("event data store");
        assert_eq!(store_only.code, codes::UNSUPPORTED_OPERATION);
        let neither =
            put(serde_json::json!({"InsightSelectors": selectors})).expect_err("no trail");
        assert_eq!(neither.code, codes::INVALID_TRAIL_NAME);
        let missing = put(serde_json::json!({"TrailName": "main"})).expect_err("no selectors");
        assert_eq!(missing.code, codes::INVALID_INSIGHT_SELECTORS);
        let get_both = GetInsightSelectorsRequest {
            trail_name: Some("main".to_owned()),
            event_data_store: Some("eds-id".to_owned()),
        }
        .trail()
        .expect_err("both");
        assert_eq!(get_both.code, codes::INVALID_PARAMETER_COMBINATION);
    }

    #[test]
    fn responses_always_name_the_categories() {
        let response = InsightSelectorsResponse::new(
            "arn:aws:cloudtrail:us-east-1:111122223333:trail/main".to_owned(),
            &[ValidatedInsightSelector {
                insight_type: "ApiErrorRateInsight".to_owned(),
                event_categories: vec!["Management".to_owned()],
            }],
        );
        assert_eq!(
            serde_json::to_value(&response).expect("json"),
            serde_json::json!({
                "TrailARN": "arn:aws:cloudtrail:us-east-1:111122223333:trail/main",
                "InsightSelectors": [
                    {"InsightType": "ApiErrorRateInsight", "EventCategories": ["Management"]}
                ],
            })
        );
        assert_eq!(
            insight_not_enabled("arn:x").code,
            codes::INSIGHT_NOT_ENABLED
        );
    }
}

//! CloudTrail Lake on the wire: event data stores (Create, Get, List, Update, Delete,
//! Restore) and queries (StartQuery, DescribeQuery, GetQueryResults, ListQueries,
//! CancelQuery): request shapes with the model's constraints, and response shapes.

use serde::{Deserialize, Serialize};

use crate::error::{AwsError, codes};
use crate::trails::{AdvancedEventSelector, Tag, validate_advanced_selectors_of};

/// What an event data store may log.
pub const DATA_STORE_EVENT_CATEGORIES: [&str; 4] =
    ["Management", "Data", "NetworkActivity", "ActivityAuditLog"];
pub const EXTENDABLE_BILLING: &str = "EXTENDABLE_RETENTION_PRICING";
pub const FIXED_BILLING: &str = "FIXED_RETENTION_PRICING";
const RETENTION_DAYS: std::ops::RangeInclusive<i64> = 7..=3653;
const FIXED_RETENTION_DAYS_MAX: i64 = 2557;
const QUERY_STATEMENT_CHARS_MAX: usize = 10_000;
pub const MAX_RESULTS_LIMIT: i64 = 1000;

fn invalid_parameter(message: impl Into<String>) -> AwsError {
    AwsError::new(codes::INVALID_PARAMETER, message)
}

/// The selectors CreateEventDataStore uses when none are given: every management event.
pub fn default_selectors() -> Vec<AdvancedEventSelector> {
    vec![AdvancedEventSelector {
        name: Some("Default management events".to_owned()),
        field_selectors: vec![crate::trails::AdvancedFieldSelector {
            field: "eventCategory".to_owned(),
            equals: Some(vec!["Management".to_owned()]),
            ..Default::default()
        }],
    }]
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEventDataStoreRequest {
    pub name: Option<String>,
    pub advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
    pub multi_region_enabled: Option<bool>,
    pub organization_enabled: Option<bool>,
    pub retention_period: Option<i64>,
    pub termination_protection_enabled: Option<bool>,
    pub tags_list: Option<Vec<Tag>>,
    pub kms_key_id: Option<String>,
    pub start_ingestion: Option<bool>,
    pub billing_mode: Option<String>,
}

/// A CreateEventDataStore with every default applied.
#[derive(Debug, Clone)]
pub struct ValidatedCreateEventDataStore {
    pub name: String,
    pub selectors: Vec<AdvancedEventSelector>,
    pub multi_region_enabled: bool,
    pub retention_days: u32,
    pub termination_protection_enabled: bool,
    pub tags: Vec<Tag>,
    pub billing_mode: String,
}

impl CreateEventDataStoreRequest {
    pub fn validate(&self) -> Result<ValidatedCreateEventDataStore, AwsError> {
        let name = self
            .name
            .as_deref()
            .ok_or_else(|| invalid_parameter("Name is required."))?;
        validate_name(name)?;
        refuse_unsupported(self.kms_key_id.as_deref(), self.organization_enabled)?;
        if self.start_ingestion == Some(false) {
            return Err(AwsError::unsupported_operation(
                "OpenTrail event data stores always ingest: StartIngestion false is not supported.",
            ));
        }
        let billing_mode = validate_billing_mode(self.billing_mode.as_deref())?;
        let retention_days = validate_retention(self.retention_period, &billing_mode)?.unwrap_or(
            if billing_mode == FIXED_BILLING {
                2557
            } else {
                366
            },
        );
        let selectors = match &self.advanced_event_selectors {
            Some(selectors) => {
                validate_advanced_selectors_of(selectors, &DATA_STORE_EVENT_CATEGORIES)?;
                selectors.clone()
            }
            None => default_selectors(),
        };
        let tags = self.tags_list.clone().unwrap_or_default();
        crate::channels::validate_tags(&tags)?;
        Ok(ValidatedCreateEventDataStore {
            name: name.to_owned(),
            selectors,
            multi_region_enabled: self.multi_region_enabled.unwrap_or(true),
            retention_days,
            termination_protection_enabled: self.termination_protection_enabled.unwrap_or(true),
            tags,
            billing_mode,
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateEventDataStoreRequest {
    pub event_data_store: Option<String>,
    pub name: Option<String>,
    pub advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
    pub multi_region_enabled: Option<bool>,
    pub organization_enabled: Option<bool>,
    pub retention_period: Option<i64>,
    pub termination_protection_enabled: Option<bool>,
    pub kms_key_id: Option<String>,
    pub billing_mode: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ValidatedUpdateEventDataStore {
    pub event_data_store: String,
    pub name: Option<String>,
    pub selectors: Option<Vec<AdvancedEventSelector>>,
    pub multi_region_enabled: Option<bool>,
    pub retention_days: Option<u32>,
    pub termination_protection_enabled: Option<bool>,
    pub billing_mode: Option<String>,
}

impl UpdateEventDataStoreRequest {
    /// `current_billing_mode` bounds the retention when the request does not change it.
    pub fn validate(
        &self,
        current_billing_mode: &str,
    ) -> Result<ValidatedUpdateEventDataStore, AwsError> {
        let event_data_store = required_data_store(self.event_data_store.as_deref())?;
        if let Some(name) = &self.name {
            validate_name(name)?;
        }
        refuse_unsupported(self.kms_key_id.as_deref(), self.organization_enabled)?;
        let billing_mode = match &self.billing_mode {
            Some(mode) => {
                let mode = validate_billing_mode(Some(mode))?;
                // CloudTrail lets fixed pricing become extendable, not the other way.
                if mode == FIXED_BILLING && current_billing_mode == EXTENDABLE_BILLING {
                    return Err(invalid_parameter(
                        "BillingMode cannot change from EXTENDABLE_RETENTION_PRICING to FIXED_RETENTION_PRICING.",
                    ));
                }
                Some(mode)
            }
            None => None,
        };
        let effective_billing = billing_mode.as_deref().unwrap_or(current_billing_mode);
        let retention_days = validate_retention(self.retention_period, effective_billing)?;
        if let Some(selectors) = &self.advanced_event_selectors {
            validate_advanced_selectors_of(selectors, &DATA_STORE_EVENT_CATEGORIES)?;
        }
        Ok(ValidatedUpdateEventDataStore {
            event_data_store,
            name: self.name.clone(),
            selectors: self.advanced_event_selectors.clone(),
            multi_region_enabled: self.multi_region_enabled,
            retention_days,
            termination_protection_enabled: self.termination_protection_enabled,
            billing_mode,
        })
    }
}

/// GetEventDataStore, DeleteEventDataStore, RestoreEventDataStore: one store by ARN or id.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventDataStoreRequest {
    pub event_data_store: Option<String>,
}

impl EventDataStoreRequest {
    pub fn data_store(&self) -> Result<String, AwsError> {
        required_data_store(self.event_data_store.as_deref())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListEventDataStoresRequest {
    pub next_token: Option<String>,
    pub max_results: Option<i64>,
}

impl ListEventDataStoresRequest {
    pub fn max_results(&self) -> Result<usize, AwsError> {
        validate_max_results(self.max_results)
    }
}

fn required_data_store(reference: Option<&str>) -> Result<String, AwsError> {
    let reference = reference
        .filter(|reference| !reference.is_empty())
        .ok_or_else(|| invalid_parameter("EventDataStore is required."))?;
    let pattern_ok = reference.chars().all(|character| {
        character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '/' | '-' | ':')
    });
    if !(3..=256).contains(&reference.len()) || !pattern_ok {
        return Err(AwsError::new(
            codes::EVENT_DATA_STORE_ARN_INVALID,
            format!("'{reference}' is not a valid event data store ARN or ID."),
        ));
    }
    if reference.starts_with("arn:") && !reference.contains(":eventdatastore/") {
        return Err(AwsError::new(
            codes::EVENT_DATA_STORE_ARN_INVALID,
            format!("'{reference}' is not an event data store ARN."),
        ));
    }
    Ok(reference.to_owned())
}

fn validate_name(name: &str) -> Result<(), AwsError> {
    let pattern_ok = name
        .chars()
        .all(|character| character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-'));
    if !(3..=128).contains(&name.len()) || !pattern_ok {
        return Err(invalid_parameter(format!(
            "Event data store name '{name}' is not valid: 3 to 128 letters, digits, '.', '_' or '-'."
        )));
    }
    Ok(())
}

fn refuse_unsupported(
    kms_key_id: Option<&str>,
    organization: Option<bool>,
) -> Result<(), AwsError> {
    if kms_key_id.is_some() {
        return Err(AwsError::unsupported_operation(
            "OpenTrail does not encrypt event data stores with KMS keys; leave KmsKeyId out.",
        ));
    }
    if organization == Some(true) {
        return Err(AwsError::new(
            codes::ORGANIZATIONS_NOT_IN_USE,
            "OpenTrail has no AWS Organizations: OrganizationEnabled must be false.",
        ));
    }
    Ok(())
}

fn validate_billing_mode(mode: Option<&str>) -> Result<String, AwsError> {
    match mode {
        None => Ok(EXTENDABLE_BILLING.to_owned()),
        Some(mode @ (EXTENDABLE_BILLING | FIXED_BILLING)) => Ok(mode.to_owned()),
        Some(other) => Err(invalid_parameter(format!(
            "BillingMode '{other}' is not valid: use {EXTENDABLE_BILLING} or {FIXED_BILLING}."
        ))),
    }
}

fn validate_retention(days: Option<i64>, billing_mode: &str) -> Result<Option<u32>, AwsError> {
    let Some(days) = days else {
        return Ok(None);
    };
    let max = if billing_mode == FIXED_BILLING {
        FIXED_RETENTION_DAYS_MAX
    } else {
        *RETENTION_DAYS.end()
    };
    if days < *RETENTION_DAYS.start() || days > max {
        return Err(invalid_parameter(format!(
            "RetentionPeriod {days} is not valid with {billing_mode}: use 7 to {max} days."
        )));
    }
    Ok(u32::try_from(days).ok())
}

fn validate_max_results(max_results: Option<i64>) -> Result<usize, AwsError> {
    match max_results {
        None => Ok(MAX_RESULTS_LIMIT as usize),
        Some(value @ 1..=MAX_RESULTS_LIMIT) => Ok(value as usize),
        Some(value) => Err(AwsError::invalid_max_results(format!(
            "MaxResults {value} is not valid: use 1 to {MAX_RESULTS_LIMIT}."
        ))),
    }
}

/// Every event data store response (Create, Get, Update, Restore; ListEventDataStores'
/// items): fields a response does not have are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventDataStoreShape {
    pub event_data_store_arn: String,
    pub name: String,
    pub status: String,
    pub advanced_event_selectors: Vec<AdvancedEventSelector>,
    pub multi_region_enabled: bool,
    pub organization_enabled: bool,
    pub retention_period: u32,
    pub termination_protection_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_list: Option<Vec<Tag>>,
    pub created_timestamp: serde_json::Number,
    pub updated_timestamp: serde_json::Number,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_mode: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListEventDataStoresResponse {
    pub event_data_stores: Vec<EventDataStoreShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

// ------------------------------------------------------------------------ queries

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartQueryRequest {
    pub query_statement: Option<String>,
    pub delivery_s3_uri: Option<String>,
    pub query_alias: Option<String>,
    pub query_parameters: Option<Vec<String>>,
    pub event_data_store_owner_account_id: Option<String>,
}

impl StartQueryRequest {
    /// The statement to run.
    pub fn statement(&self) -> Result<&str, AwsError> {
        if self.query_alias.is_some() || self.query_parameters.is_some() {
            return Err(AwsError::unsupported_operation(
                "QueryAlias and QueryParameters are for CloudTrail Lake dashboards, which OpenTrail does not have; send a QueryStatement.",
            ));
        }
        if self.delivery_s3_uri.is_some() {
            return Err(AwsError::unsupported_operation(
                "OpenTrail keeps query results for GetQueryResults and does not deliver them to S3; leave DeliveryS3Uri out.",
            ));
        }
        let statement = self
            .query_statement
            .as_deref()
            .filter(|statement| !statement.trim().is_empty())
            .ok_or_else(|| invalid_parameter("QueryStatement is required."))?;
        if statement.chars().count() > QUERY_STATEMENT_CHARS_MAX {
            return Err(AwsError::new(
                codes::INVALID_QUERY_STATEMENT,
                format!("QueryStatement is at most {QUERY_STATEMENT_CHARS_MAX} characters."),
            ));
        }
        Ok(statement)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartQueryResponse {
    pub query_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_data_store_owner_account_id: Option<String>,
}

/// DescribeQuery, CancelQuery: one query by id (`EventDataStore` is deprecated and only
/// checked when given).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryIdRequest {
    pub query_id: Option<String>,
    pub query_alias: Option<String>,
    pub event_data_store: Option<String>,
    pub event_data_store_owner_account_id: Option<String>,
}

impl QueryIdRequest {
    pub fn query_id(&self) -> Result<String, AwsError> {
        if self.query_alias.is_some() {
            return Err(AwsError::unsupported_operation(
                "QueryAlias is for CloudTrail Lake dashboards, which OpenTrail does not have; send a QueryId.",
            ));
        }
        validate_query_id(self.query_id.as_deref())
    }
}

fn validate_query_id(id: Option<&str>) -> Result<String, AwsError> {
    let id = id.ok_or_else(|| invalid_parameter("QueryId is required."))?;
    let shape_ok = id.len() == 36
        && id
            .chars()
            .all(|character| matches!(character, 'a'..='f' | '0'..='9' | '-'));
    if !shape_ok {
        return Err(invalid_parameter(format!(
            "QueryId '{id}' is not valid: a lower-case UUID of 36 characters."
        )));
    }
    Ok(id.to_owned())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetQueryResultsRequest {
    pub query_id: Option<String>,
    pub event_data_store: Option<String>,
    pub next_token: Option<String>,
    pub max_query_results: Option<i64>,
    pub event_data_store_owner_account_id: Option<String>,
}

impl GetQueryResultsRequest {
    pub fn query_id(&self) -> Result<String, AwsError> {
        validate_query_id(self.query_id.as_deref())
    }

    pub fn max_results(&self) -> Result<usize, AwsError> {
        validate_max_results(self.max_query_results)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueriesRequest {
    pub event_data_store: Option<String>,
    pub next_token: Option<String>,
    pub max_results: Option<i64>,
    pub start_time: Option<serde_json::Number>,
    pub end_time: Option<serde_json::Number>,
    pub query_status: Option<String>,
}

/// A ListQueries request's filters.
#[derive(Debug, Clone)]
pub struct ValidatedListQueries {
    pub event_data_store: String,
    pub max_results: usize,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub status: Option<String>,
}

impl ListQueriesRequest {
    pub fn validate(&self) -> Result<ValidatedListQueries, AwsError> {
        let event_data_store = required_data_store(self.event_data_store.as_deref())?;
        let time = |value: &Option<serde_json::Number>| -> Result<Option<i64>, AwsError> {
            value
                .as_ref()
                .map(|number| {
                    crate::time::epoch_seconds_to_ms(number).ok_or_else(|| {
                        AwsError::new(
                            codes::INVALID_DATE_RANGE,
                            "StartTime or EndTime is not valid.",
                        )
                    })
                })
                .transpose()
        };
        let start_ms = time(&self.start_time)?;
        let end_ms = time(&self.end_time)?;
        if let (Some(start), Some(end)) = (start_ms, end_ms)
            && start > end
        {
            return Err(AwsError::new(
                codes::INVALID_DATE_RANGE,
                "StartTime is after EndTime.",
            ));
        }
        const STATUSES: [&str; 6] = [
            "QUEUED",
            "RUNNING",
            "FINISHED",
            "FAILED",
            "CANCELLED",
            "TIMED_OUT",
        ];
        if let Some(status) = &self.query_status
            && !STATUSES.contains(&status.as_str())
        {
            return Err(AwsError::new(
                codes::INVALID_QUERY_STATUS,
                format!(
                    "QueryStatus '{status}' is not valid: use {}.",
                    STATUSES.join(", ")
                ),
            ));
        }
        Ok(ValidatedListQueries {
            event_data_store,
            max_results: validate_max_results(self.max_results)?,
            start_ms,
            end_ms,
            status: self.query_status.clone(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryStatisticsForDescribeQuery {
    pub events_matched: u64,
    pub events_scanned: u64,
    pub bytes_scanned: u64,
    pub execution_time_in_millis: u64,
    pub creation_time: serde_json::Number,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeQueryResponse {
    pub query_id: String,
    pub query_string: String,
    pub query_status: String,
    pub query_statistics: QueryStatisticsForDescribeQuery,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryStatistics {
    pub results_count: u64,
    pub total_results_count: u64,
    pub bytes_scanned: u64,
}

/// One result row: a `{column: value}` map per column, in column order.
pub type QueryResultRow = Vec<std::collections::BTreeMap<String, String>>;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetQueryResultsResponse {
    pub query_status: String,
    pub query_statistics: QueryStatistics,
    pub query_result_rows: Vec<QueryResultRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QuerySummary {
    pub query_id: String,
    pub query_status: String,
    pub creation_time: serde_json::Number,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueriesResponse {
    pub queries: Vec<QuerySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancelQueryResponse {
    pub query_id: String,
    pub query_status: String,
}

/// An error message as the model bounds it (4 to 1000 characters).
pub fn error_message(text: &str) -> String {
    let mut message: String = text.chars().take(1000).collect();
    while message.chars().count() < 4 {
        message.push('.');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_applies_cloudtrails_defaults() -> Result<(), AwsError> {
        let request = CreateEventDataStoreRequest {
            name: Some("my-store".into()),
            ..Default::default()
        };
        let valid = request.validate()?;
        assert_eq!(valid.retention_days, 366);
        assert!(valid.termination_protection_enabled);
        assert!(valid.multi_region_enabled);
        assert_eq!(valid.billing_mode, EXTENDABLE_BILLING);
        assert_eq!(valid.selectors, default_selectors());
        Ok(())
    }

    #[test]
    fn retention_is_bounded_by_the_billing_mode() {
        let request = |days, mode: &str| CreateEventDataStoreRequest {
            name: Some("my-store".into()),
            retention_period: Some(days),
            billing_mode: Some(mode.into()),
            ..Default::default()
        };
        assert!(request(3653, EXTENDABLE_BILLING).validate().is_ok());
        let too_long = request(3653, FIXED_BILLING).validate();
        assert!(matches!(too_long, Err(error) if error.code == codes::INVALID_PARAMETER));
        let too_short = request(6, EXTENDABLE_BILLING).validate();
        assert!(matches!(too_short, Err(error) if error.code == codes::INVALID_PARAMETER));
    }

    #[test]
    fn a_trail_arn_is_not_an_event_data_store() {
        let request = EventDataStoreRequest {
            event_data_store: Some("arn:aws:cloudtrail:us-east-1:111122223333:trail/t".into()),
        };
        assert!(
            matches!(request.data_store(), Err(error) if error.code == codes::EVENT_DATA_STORE_ARN_INVALID)
        );
    }
}

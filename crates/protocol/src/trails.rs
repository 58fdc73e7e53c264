//! Trail operations of the control plane (awsJson1_1): CreateTrail, GetTrail,
//! DescribeTrails, ListTrails, UpdateTrail, DeleteTrail, StartLogging, StopLogging,
//! GetTrailStatus, PutEventSelectors, GetEventSelectors, AddTags, ListTags, RemoveTags.
//!
//! Shapes follow the botocore model (`cloudtrail` 2013-11-01); note DescribeTrails'
//! lower-case members (`trailNameList`, `includeShadowTrails`, `trailList`). Responses
//! leave unset members out rather than sending `null` (spec §1.1). Validation here is
//! what CloudTrail checks before looking anything up (spec §2.2):
//!
//! - **Trail names** (`InvalidTrailNameException`): ASCII letters, digits, `.`, `_`, `-`;
//!   3–128 characters; starting and ending with a letter or digit; no two of `._-` next
//!   to each other; not shaped like an IP address. So eight forms are invalid: too short,
//!   too long, a foreign character, a leading symbol, a trailing symbol, `-_`-style
//!   mixed adjacency, `--`-style repeated adjacency, and `192.168.5.4`.
//! - **Trail ARNs** (`CloudTrailARNInvalidException`): `arn:<partition>:cloudtrail:
//!   <region>:<12 digits>:trail/<valid name>`.
//! - **Buckets** (`InvalidS3BucketNameException`): S3's rules: 3–63 of lower-case letters,
//!   digits, `.` and `-`, alphanumeric at both ends, no `..`, not an IP address.
//! - **Key prefixes** (`InvalidS3PrefixException`): at most 200 characters of S3's safe
//!   set (`A-Za-z0-9!-_.*'()/`), no leading or trailing `/`, no empty, `.` or `..`
//!   segment.
//! - **SNS topics** (`InvalidSnsTopicNameException`): a name of 1–256 `[A-Za-z0-9_-]`,
//!   or an `arn:<partition>:sns:<region>:<account>:<name>` ARN.
//! - **Log groups** (`InvalidCloudWatchLogsLogGroupArnException`):
//!   `arn:<partition>:logs:<region>:<account>:log-group:<1–512 of [A-Za-z0-9_\-/.#]>[:*]`;
//!   roles (`InvalidCloudWatchLogsRoleArnException`): `arn:<partition>:iam::<account>:role/…`.
//! - **Selectors** (`InvalidEventSelectorsException`): see [`validate_event_selectors`]
//!   and [`validate_advanced_event_selectors`].

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

pub use crate::channels::Tag;
use crate::channels::validate_tags;
use crate::error::{AwsError, codes};

/// Trail names are 3..=128 characters.
pub const TRAIL_NAME_LENGTH: std::ops::RangeInclusive<usize> = 3..=128;
/// `S3KeyPrefix` is at most 200 characters.
pub const S3_KEY_PREFIX_LEN_MAX: usize = 200;
/// `SnsTopicName` is at most 256 characters.
pub const SNS_TOPIC_NAME_LEN_MAX: usize = 256;
/// At most 5 basic event selectors per trail.
pub const EVENT_SELECTORS_MAX: usize = 5;
/// At most 250 data resource values across a trail's basic selectors.
pub const DATA_RESOURCE_VALUES_MAX: usize = 250;
/// At most 500 condition values across a trail's advanced selectors.
pub const ADVANCED_CONDITION_VALUES_MAX: usize = 500;
/// At most 20 resources per ListTags call.
pub const LIST_TAGS_RESOURCES_MAX: usize = 20;
/// Basic selectors' data resource types.
pub const BASIC_DATA_RESOURCE_TYPES: [&str; 3] = [
    "AWS::S3::Object",
    "AWS::Lambda::Function",
    "AWS::DynamoDB::Table",
];
/// The only sources `ExcludeManagementEventSources` accepts.
pub const EXCLUDABLE_MANAGEMENT_EVENT_SOURCES: [&str; 2] =
    ["kms.amazonaws.com", "rdsdata.amazonaws.com"];
/// Fields advanced selectors of a trail may filter on.
pub const ADVANCED_SELECTOR_FIELDS: [&str; 11] = [
    "eventCategory",
    "eventSource",
    "eventName",
    "eventType",
    "readOnly",
    "resources.type",
    "resources.ARN",
    "sessionCredentialFromConsole",
    "userIdentity.arn",
    "errorCode",
    "vpcEndpointId",
];
/// Fields on which `Equals` is the only operator allowed.
pub const EQUALS_ONLY_FIELDS: [&str; 3] = ["readOnly", "eventCategory", "resources.type"];
/// `eventCategory` values a trail's advanced selectors may name.
pub const TRAIL_EVENT_CATEGORIES: [&str; 3] = ["Management", "Data", "NetworkActivity"];

// ------------------------------------------------------------------------ requests

/// CreateTrail input. Every member is optional here so a missing one gets CloudTrail's
/// error rather than a serialization error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTrailRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_bucket_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns_topic_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_global_service_events: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_multi_region_trail: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_log_file_validation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_organization_trail: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_list: Option<Vec<Tag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive_logging: Option<bool>,
}

/// A CreateTrail request that passed validation, with CloudTrail's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedCreateTrail {
    pub name: String,
    pub s3_bucket_name: String,
    pub s3_key_prefix: Option<String>,
    pub sns_topic_name: Option<String>,
    pub include_global_service_events: bool,
    pub is_multi_region_trail: bool,
    pub enable_log_file_validation: bool,
    pub cloud_watch_logs_log_group_arn: Option<String>,
    pub cloud_watch_logs_role_arn: Option<String>,
    pub recursive_logging: bool,
    pub tags: Vec<Tag>,
}

impl CreateTrailRequest {
    pub fn validate(&self) -> Result<ValidatedCreateTrail, AwsError> {
        let name = self.name.as_deref().unwrap_or_default();
        validate_trail_name(name)?;
        let bucket = self.s3_bucket_name.as_deref().ok_or_else(|| {
            AwsError::new(codes::INVALID_S3_BUCKET_NAME, "S3BucketName is required.")
        })?;
        validate_bucket_name(bucket)?;
        let prefix = non_empty(self.s3_key_prefix.as_deref());
        if let Some(prefix) = prefix {
            validate_s3_prefix(prefix)?;
        }
        let sns = non_empty(self.sns_topic_name.as_deref());
        if let Some(topic) = sns {
            validate_sns_topic(topic)?;
        }
        let log_group = non_empty(self.cloud_watch_logs_log_group_arn.as_deref());
        let role = non_empty(self.cloud_watch_logs_role_arn.as_deref());
        validate_cloud_watch_logs(log_group, role)?;
        reject_unsupported(self.kms_key_id.as_deref(), self.is_organization_trail)?;
        let tags = self.tags_list.clone().unwrap_or_default();
        validate_tags(&tags)?;
        Ok(ValidatedCreateTrail {
            name: name.to_owned(),
            s3_bucket_name: bucket.to_owned(),
            s3_key_prefix: prefix.map(str::to_owned),
            sns_topic_name: sns.map(str::to_owned),
            include_global_service_events: self.include_global_service_events.unwrap_or(true),
            is_multi_region_trail: self.is_multi_region_trail.unwrap_or(false),
            enable_log_file_validation: self.enable_log_file_validation.unwrap_or(false),
            cloud_watch_logs_log_group_arn: log_group.map(str::to_owned),
            cloud_watch_logs_role_arn: role.map(str::to_owned),
            recursive_logging: self.recursive_logging.unwrap_or(true),
            tags,
        })
    }
}

/// UpdateTrail input: CreateTrail's members except `TagsList`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateTrailRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_bucket_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns_topic_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_global_service_events: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_multi_region_trail: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_log_file_validation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_organization_trail: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive_logging: Option<bool>,
}

/// An UpdateTrail request that passed validation. `None` keeps a setting; for optional
/// settings `Some(None)` clears it (the request's empty string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedUpdateTrail {
    pub trail: TrailName,
    pub s3_bucket_name: Option<String>,
    pub s3_key_prefix: Option<Option<String>>,
    pub sns_topic_name: Option<Option<String>>,
    pub include_global_service_events: Option<bool>,
    pub is_multi_region_trail: Option<bool>,
    pub enable_log_file_validation: Option<bool>,
    pub cloud_watch_logs_log_group_arn: Option<Option<String>>,
    pub cloud_watch_logs_role_arn: Option<Option<String>>,
    pub recursive_logging: Option<bool>,
}

impl UpdateTrailRequest {
    pub fn validate(&self) -> Result<ValidatedUpdateTrail, AwsError> {
        let trail = parse_trail_name_or_arn(self.name.as_deref())?;
        if let Some(bucket) = &self.s3_bucket_name {
            validate_bucket_name(bucket)?;
        }
        let clearable = |value: &Option<String>| {
            value
                .as_deref()
                .map(|text| (!text.is_empty()).then(|| text.to_owned()))
        };
        let s3_key_prefix = clearable(&self.s3_key_prefix);
        if let Some(Some(prefix)) = &s3_key_prefix {
            validate_s3_prefix(prefix)?;
        }
        let sns_topic_name = clearable(&self.sns_topic_name);
        if let Some(Some(topic)) = &sns_topic_name {
            validate_sns_topic(topic)?;
        }
        let log_group = clearable(&self.cloud_watch_logs_log_group_arn);
        let role = clearable(&self.cloud_watch_logs_role_arn);
        validate_cloud_watch_logs(
            log_group.clone().flatten().as_deref(),
            role.clone().flatten().as_deref(),
        )?;
        reject_unsupported(self.kms_key_id.as_deref(), self.is_organization_trail)?;
        Ok(ValidatedUpdateTrail {
            trail,
            s3_bucket_name: self.s3_bucket_name.clone(),
            s3_key_prefix,
            sns_topic_name,
            include_global_service_events: self.include_global_service_events,
            is_multi_region_trail: self.is_multi_region_trail,
            enable_log_file_validation: self.enable_log_file_validation,
            cloud_watch_logs_log_group_arn: log_group,
            cloud_watch_logs_role_arn: role,
            recursive_logging: self.recursive_logging,
        })
    }
}

/// The input of GetTrail, DeleteTrail, StartLogging, StopLogging and GetTrailStatus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailNameRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl TrailNameRequest {
    pub fn trail(&self) -> Result<TrailName, AwsError> {
        parse_trail_name_or_arn(self.name.as_deref())
    }
}

/// DescribeTrails input (lower-case members in the model).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescribeTrailsRequest {
    #[serde(
        rename = "trailNameList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub trail_name_list: Option<Vec<String>>,
    #[serde(
        rename = "includeShadowTrails",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub include_shadow_trails: Option<bool>,
}

impl DescribeTrailsRequest {
    /// The named trails (empty: all) and whether shadow trails are included (default
    /// true).
    pub fn validate(&self) -> Result<(Vec<TrailName>, bool), AwsError> {
        let names = self
            .trail_name_list
            .iter()
            .flatten()
            .map(|name| parse_trail_name_or_arn(Some(name)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((names, self.include_shadow_trails.unwrap_or(true)))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTrailsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEventSelectorsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_selectors: Option<Vec<EventSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
}

/// Which kind of selectors a PutEventSelectors request sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidatedSelectors {
    Basic(Vec<EventSelector>),
    Advanced(Vec<AdvancedEventSelector>),
}

impl PutEventSelectorsRequest {
    pub fn validate(&self) -> Result<(TrailName, ValidatedSelectors), AwsError> {
        let trail = parse_trail_name_or_arn(self.trail_name.as_deref())?;
        let selectors = match (&self.event_selectors, &self.advanced_event_selectors) {
            (Some(_), Some(_)) => {
                return Err(invalid_selectors(
                    "Specify either EventSelectors or AdvancedEventSelectors, not both.",
                ));
            }
            (None, None) => {
                return Err(invalid_selectors(
                    "Specify EventSelectors or AdvancedEventSelectors.",
                ));
            }
            (Some(basic), None) => {
                validate_event_selectors(basic)?;
                ValidatedSelectors::Basic(basic.clone())
            }
            (None, Some(advanced)) => {
                validate_advanced_event_selectors(advanced)?;
                ValidatedSelectors::Advanced(advanced.clone())
            }
        };
        Ok((trail, selectors))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetEventSelectorsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail_name: Option<String>,
}

impl GetEventSelectorsRequest {
    pub fn trail(&self) -> Result<TrailName, AwsError> {
        parse_trail_name_or_arn(self.trail_name.as_deref())
    }
}

/// AddTags and RemoveTags input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_list: Option<Vec<Tag>>,
}

impl TagsRequest {
    /// The trail and the tags (validated as AddTags needs them).
    pub fn validate(&self) -> Result<(TrailName, Vec<Tag>), AwsError> {
        let trail = parse_tagged_resource(self.resource_id.as_deref())?;
        let tags = self
            .tags_list
            .clone()
            .ok_or_else(|| AwsError::new(codes::INVALID_TAG_PARAMETER, "TagsList is required."))?;
        validate_tags(&tags)?;
        Ok((trail, tags))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id_list: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl ListTagsRequest {
    pub fn validate(&self) -> Result<Vec<(String, TrailName)>, AwsError> {
        let ids = self.resource_id_list.as_deref().unwrap_or_default();
        if ids.is_empty() {
            return Err(AwsError::invalid_parameter("ResourceIdList is required."));
        }
        if ids.len() > LIST_TAGS_RESOURCES_MAX {
            return Err(AwsError::invalid_parameter(format!(
                "ResourceIdList holds at most {LIST_TAGS_RESOURCES_MAX} ARNs."
            )));
        }
        ids.iter()
            .map(|id| parse_tagged_resource(Some(id)).map(|trail| (id.clone(), trail)))
            .collect()
    }
}

// ------------------------------------------------------------------------ selectors

/// A basic event selector, as on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_write_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_management_events: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_resources: Option<Vec<DataResource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_management_event_sources: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataResource {
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AdvancedEventSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub field_selectors: Vec<AdvancedFieldSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AdvancedFieldSelector {
    #[serde(default)]
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_with: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_with: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_equals: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_starts_with: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ends_with: Option<Vec<String>>,
}

impl AdvancedFieldSelector {
    /// `(operator name, operands)` of every operator present.
    pub fn operators(&self) -> Vec<(&'static str, &[String])> {
        [
            ("Equals", &self.equals),
            ("StartsWith", &self.starts_with),
            ("EndsWith", &self.ends_with),
            ("NotEquals", &self.not_equals),
            ("NotStartsWith", &self.not_starts_with),
            ("NotEndsWith", &self.not_ends_with),
        ]
        .into_iter()
        .filter_map(|(name, operands)| operands.as_deref().map(|operands| (name, operands)))
        .collect()
    }
}

fn invalid_selectors(message: impl Into<String>) -> AwsError {
    AwsError::new(codes::INVALID_EVENT_SELECTORS, message)
}

/// Basic selectors: 1–5 of them; `ReadWriteType` one of `ReadOnly`, `WriteOnly`, `All`;
/// data resources of the three basic types with at least one value each, every value an
/// ARN or ARN prefix, at most 250 values in all; `ExcludeManagementEventSources` only
/// `kms.amazonaws.com` and `rdsdata.amazonaws.com`.
pub fn validate_event_selectors(selectors: &[EventSelector]) -> Result<(), AwsError> {
    if selectors.is_empty() || selectors.len() > EVENT_SELECTORS_MAX {
        return Err(invalid_selectors(format!(
            "A trail has 1 to {EVENT_SELECTORS_MAX} event selectors."
        )));
    }
    let mut values_total = 0usize;
    for selector in selectors {
        if let Some(read_write) = &selector.read_write_type
            && !matches!(read_write.as_str(), "ReadOnly" | "WriteOnly" | "All")
        {
            return Err(invalid_selectors(format!(
                "ReadWriteType '{read_write}' is not valid: use ReadOnly, WriteOnly or All."
            )));
        }
        for data_resource in selector.data_resources.iter().flatten() {
            let resource_type = data_resource.resource_type.as_deref().unwrap_or_default();
            if !BASIC_DATA_RESOURCE_TYPES.contains(&resource_type) {
                return Err(invalid_selectors(format!(
                    "DataResource Type '{resource_type}' is not valid for basic event selectors: use {}, or advanced event selectors.",
                    BASIC_DATA_RESOURCE_TYPES.join(", ")
                )));
            }
            let values = data_resource.values.as_deref().unwrap_or_default();
            if values.is_empty() {
                return Err(invalid_selectors(format!(
                    "DataResource {resource_type} needs at least one value."
                )));
            }
            for value in values {
                if !value.starts_with("arn:") || value.len() > 2048 {
                    return Err(invalid_selectors(format!(
                        "DataResource value '{value}' is not an ARN or ARN prefix."
                    )));
                }
            }
            values_total += values.len();
        }
        for source in selector.exclude_management_event_sources.iter().flatten() {
            if !EXCLUDABLE_MANAGEMENT_EVENT_SOURCES.contains(&source.as_str()) {
                return Err(invalid_selectors(format!(
                    "ExcludeManagementEventSources accepts only {}; '{source}' is not valid.",
                    EXCLUDABLE_MANAGEMENT_EVENT_SOURCES.join(" and ")
                )));
            }
        }
    }
    if values_total > DATA_RESOURCE_VALUES_MAX {
        return Err(invalid_selectors(format!(
            "A trail has at most {DATA_RESOURCE_VALUES_MAX} data resources; these selectors have {values_total}."
        )));
    }
    Ok(())
}

/// Advanced selectors: at least one; each with a `Name` of at most 1000 characters and at
/// least one field selector; each field one of [`ADVANCED_SELECTOR_FIELDS`], matching
/// `[\w|\d|\.|_]+`, with at least one operator, every operator with 1 or more operands
/// of 1–2048 characters; only `Equals` on [`EQUALS_ONLY_FIELDS`]; `readOnly` `true` or
/// `false`; `eventCategory` one of [`TRAIL_EVENT_CATEGORIES`] and present in every
/// selector; `resources.type` present when the category is `Data`; at most 500 operands
/// in all.
pub fn validate_advanced_event_selectors(
    selectors: &[AdvancedEventSelector],
) -> Result<(), AwsError> {
    validate_advanced_selectors_of(selectors, &TRAIL_EVENT_CATEGORIES)
}

/// [`validate_advanced_event_selectors`] with the `eventCategory` values that the owner
/// (a trail, an event data store) may log.
pub fn validate_advanced_selectors_of(
    selectors: &[AdvancedEventSelector],
    event_categories: &[&str],
) -> Result<(), AwsError> {
    if selectors.is_empty() {
        return Err(invalid_selectors(
            "AdvancedEventSelectors needs at least one selector.",
        ));
    }
    let mut operands_total = 0usize;
    for selector in selectors {
        if selector
            .name
            .as_deref()
            .is_some_and(|name| name.chars().count() > 1000)
        {
            return Err(invalid_selectors(
                "An advanced event selector's Name is at most 1000 characters.",
            ));
        }
        if selector.field_selectors.is_empty() {
            return Err(invalid_selectors(
                "An advanced event selector needs at least one field selector.",
            ));
        }
        let mut categories: Option<&[String]> = None;
        let mut has_resource_type = false;
        for field_selector in &selector.field_selectors {
            let field = field_selector.field.as_str();
            let pattern_ok = !field.is_empty()
                && field.len() <= 1000
                && field.chars().all(|character| {
                    character.is_alphanumeric() || matches!(character, '|' | '.' | '_')
                });
            if !pattern_ok || !ADVANCED_SELECTOR_FIELDS.contains(&field) {
                return Err(invalid_selectors(format!(
                    "Field '{field}' is not valid for a trail's advanced event selectors: use one of {}.",
                    ADVANCED_SELECTOR_FIELDS.join(", ")
                )));
            }
            let operators = field_selector.operators();
            if operators.is_empty() {
                return Err(invalid_selectors(format!(
                    "Field selector '{field}' needs at least one operator."
                )));
            }
            for (operator, operands) in &operators {
                if operands.is_empty() {
                    return Err(invalid_selectors(format!(
                        "Operator {operator} of field '{field}' needs at least one value."
                    )));
                }
                if EQUALS_ONLY_FIELDS.contains(&field) && *operator != "Equals" {
                    return Err(invalid_selectors(format!(
                        "Field '{field}' supports only the Equals operator."
                    )));
                }
                for operand in operands.iter() {
                    if !(1..=2048).contains(&operand.chars().count()) {
                        return Err(invalid_selectors(format!(
                            "Values of field '{field}' are 1 to 2048 characters long."
                        )));
                    }
                    match field {
                        "readOnly" if !matches!(operand.as_str(), "true" | "false") => {
                            return Err(invalid_selectors(format!(
                                "readOnly accepts true or false, not '{operand}'."
                            )));
                        }
                        "eventCategory" if !event_categories.contains(&operand.as_str()) => {
                            return Err(invalid_selectors(format!(
                                "eventCategory '{operand}' is not valid here: use {}.",
                                event_categories.join(", ")
                            )));
                        }
                        _ => {}
                    }
                }
                operands_total += operands.len();
            }
            match field {
                "eventCategory" => categories = field_selector.equals.as_deref(),
                "resources.type" => has_resource_type = true,
                _ => {}
            }
        }
        let Some(categories) = categories else {
            return Err(invalid_selectors(
                "Every advanced event selector needs an eventCategory field selector.",
            ));
        };
        if categories.iter().any(|category| category == "Data") && !has_resource_type {
            return Err(invalid_selectors(
                "An advanced event selector for data events needs a resources.type field selector.",
            ));
        }
    }
    if operands_total > ADVANCED_CONDITION_VALUES_MAX {
        return Err(invalid_selectors(format!(
            "Advanced event selectors hold at most {ADVANCED_CONDITION_VALUES_MAX} values in all; these have {operands_total}."
        )));
    }
    Ok(())
}

// ------------------------------------------------------------------------ responses

/// CreateTrail and UpdateTrail output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailSettingsResponse {
    pub name: String,
    pub s3_bucket_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns_topic_name: Option<String>,
    #[serde(
        rename = "SnsTopicARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sns_topic_arn: Option<String>,
    pub include_global_service_events: bool,
    pub is_multi_region_trail: bool,
    #[serde(rename = "TrailARN")]
    pub trail_arn: String,
    pub log_file_validation_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub is_organization_trail: bool,
    pub recursive_logging: bool,
}

/// The `Trail` structure of GetTrail and DescribeTrails.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailShape {
    pub name: String,
    pub s3_bucket_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns_topic_name: Option<String>,
    #[serde(
        rename = "SnsTopicARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sns_topic_arn: Option<String>,
    pub include_global_service_events: bool,
    pub is_multi_region_trail: bool,
    pub home_region: String,
    #[serde(rename = "TrailARN")]
    pub trail_arn: String,
    pub log_file_validation_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub has_custom_event_selectors: bool,
    pub has_insight_selectors: bool,
    pub is_organization_trail: bool,
    pub recursive_logging: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTrailResponse {
    pub trail: TrailShape,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescribeTrailsResponse {
    #[serde(rename = "trailList")]
    pub trail_list: Vec<TrailShape>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailInfo {
    #[serde(rename = "TrailARN")]
    pub trail_arn: String,
    pub name: String,
    pub home_region: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTrailsResponse {
    pub trails: Vec<TrailInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// GetTrailStatus output. Times are epoch-second numbers; the deprecated `…Attempt…` and
/// `TimeLogging…` members are strings (`2024-01-02T03:04:05Z`, or empty), as CloudTrail
/// still sends them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTrailStatusResponse {
    pub is_logging: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_delivery_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_notification_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_delivery_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_notification_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_logging_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_logging_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_cloud_watch_logs_delivery_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_cloud_watch_logs_delivery_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_digest_delivery_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_digest_delivery_error: Option<String>,
    pub latest_delivery_attempt_time: String,
    pub latest_notification_attempt_time: String,
    pub latest_notification_attempt_succeeded: String,
    pub latest_delivery_attempt_succeeded: String,
    pub time_logging_started: String,
    pub time_logging_stopped: String,
}

/// PutEventSelectors and GetEventSelectors output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventSelectorsResponse {
    #[serde(rename = "TrailARN")]
    pub trail_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_selectors: Option<Vec<EventSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceTag {
    pub resource_id: String,
    pub tags_list: Vec<Tag>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsResponse {
    pub resource_tag_list: Vec<ResourceTag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

// ------------------------------------------------------------------------ names and ARNs

/// A trail as a request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailName {
    Name(String),
    Arn {
        region: String,
        account_id: String,
        name: String,
    },
}

/// Parses `Name`/`TrailName`: an ARN (`CloudTrailARNInvalidException` when malformed) or
/// a name (`InvalidTrailNameException` when it breaks the name rules).
pub fn parse_trail_name_or_arn(text: Option<&str>) -> Result<TrailName, AwsError> {
    let text = text.unwrap_or_default();
    if text.starts_with("arn:") {
        let (region, account_id, name) = parse_trail_arn(text)?;
        return Ok(TrailName::Arn {
            region,
            account_id,
            name,
        });
    }
    validate_trail_name(text)?;
    Ok(TrailName::Name(text.to_owned()))
}

/// `(region, account, name)` of `arn:<partition>:cloudtrail:<region>:<account>:trail/<name>`.
pub fn parse_trail_arn(arn: &str) -> Result<(String, String, String), AwsError> {
    let invalid = || {
        AwsError::new(
            codes::CLOUD_TRAIL_ARN_INVALID,
            format!(
                "{arn} is not a valid trail ARN: use arn:aws:cloudtrail:<region>:<account id>:trail/<name>."
            ),
        )
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_arn, partition, service, region, account_id, resource] = parts.as_slice() else {
        return Err(invalid());
    };
    if partition.is_empty()
        || *service != "cloudtrail"
        || region.is_empty()
        || account_id.len() != 12
        || !account_id.bytes().all(|byte| byte.is_ascii_digit())
    {
        return Err(invalid());
    }
    let name = resource.strip_prefix("trail/").ok_or_else(invalid)?;
    if validate_trail_name(name).is_err() {
        return Err(invalid());
    }
    Ok((region.to_string(), account_id.to_string(), name.to_owned()))
}

/// The trail a tagging call's `ResourceId` names. Not an ARN:
/// `CloudTrailARNInvalidException`; an ARN of another CloudTrail resource (event data
/// store, channel, dashboard): `ResourceTypeNotSupportedException`, since OpenTrail tags
/// only trails through these operations.
pub fn parse_tagged_resource(resource_id: Option<&str>) -> Result<TrailName, AwsError> {
    let resource_id = resource_id.unwrap_or_default();
    if !resource_id.starts_with("arn:") {
        return Err(AwsError::new(
            codes::CLOUD_TRAIL_ARN_INVALID,
            format!("'{resource_id}' is not a valid ARN."),
        ));
    }
    let resource = resource_id.splitn(6, ':').nth(5).unwrap_or_default();
    if resource_id.split(':').nth(2) == Some("cloudtrail")
        && !resource.starts_with("trail/")
        && resource.contains('/')
    {
        return Err(AwsError::new(
            codes::RESOURCE_TYPE_NOT_SUPPORTED,
            format!("OpenTrail supports tags on trails only; {resource_id} is not a trail."),
        ));
    }
    let (region, account_id, name) = parse_trail_arn(resource_id)?;
    Ok(TrailName::Arn {
        region,
        account_id,
        name,
    })
}

/// The trail name rules (see the module docs).
pub fn validate_trail_name(name: &str) -> Result<(), AwsError> {
    let invalid = |reason: &str| {
        AwsError::new(
            codes::INVALID_TRAIL_NAME,
            format!("Trail name '{name}' is not valid: {reason}."),
        )
    };
    if name.is_empty() {
        return Err(AwsError::new(
            codes::INVALID_TRAIL_NAME,
            "Trail name or ARN can not be empty.",
        ));
    }
    if !TRAIL_NAME_LENGTH.contains(&name.len()) {
        return Err(invalid("a name is 3 to 128 characters long"));
    }
    let is_symbol = |byte: u8| matches!(byte, b'.' | b'_' | b'-');
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || is_symbol(byte))
    {
        return Err(invalid(
            "use only ASCII letters, digits, periods, underscores and dashes",
        ));
    }
    let bytes = name.as_bytes();
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Err(invalid("start and end with a letter or a digit"));
    }
    if bytes
        .windows(2)
        .any(|pair| is_symbol(pair[0]) && is_symbol(pair[1]))
    {
        return Err(invalid(
            "periods, underscores and dashes may not be adjacent (like my-_namespace or my--namespace)",
        ));
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return Err(invalid("a name may not be in IP address format"));
    }
    Ok(())
}

/// S3's bucket naming rules (`InvalidS3BucketNameException`).
pub fn validate_bucket_name(bucket: &str) -> Result<(), AwsError> {
    let invalid = |reason: &str| {
        AwsError::new(
            codes::INVALID_S3_BUCKET_NAME,
            format!("Bucket name '{bucket}' is not valid: {reason}."),
        )
    };
    if !(3..=63).contains(&bucket.len()) {
        return Err(invalid("a bucket name is 3 to 63 characters long"));
    }
    if !bucket.bytes().all(|byte| {
        byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'.' | b'-')
    }) {
        return Err(invalid(
            "use only lower-case letters, digits, periods and dashes",
        ));
    }
    let bytes = bucket.as_bytes();
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Err(invalid("start and end with a letter or a digit"));
    }
    if bucket.contains("..") {
        return Err(invalid("no two adjacent periods"));
    }
    if bucket.parse::<Ipv4Addr>().is_ok() {
        return Err(invalid("a bucket name may not be an IP address"));
    }
    Ok(())
}

/// `S3KeyPrefix` rules (`InvalidS3PrefixException`).
pub fn validate_s3_prefix(prefix: &str) -> Result<(), AwsError> {
    let invalid = |reason: &str| {
        AwsError::new(
            codes::INVALID_S3_PREFIX,
            format!("S3 key prefix '{prefix}' is not valid: {reason}."),
        )
    };
    if prefix.chars().count() > S3_KEY_PREFIX_LEN_MAX {
        return Err(invalid("the prefix is at most 200 characters long"));
    }
    if !prefix.bytes().all(|byte| {
        byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'!' | b'-' | b'_' | b'.' | b'*' | b'\'' | b'(' | b')' | b'/'
            )
    }) {
        return Err(invalid("use letters, digits and ! - _ . * ' ( ) / only"));
    }
    if prefix
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(invalid(
            "no leading or trailing '/', no '//', and no '.' or '..' segment",
        ));
    }
    Ok(())
}

/// `SnsTopicName`: a topic name or ARN (`InvalidSnsTopicNameException`).
pub fn validate_sns_topic(topic: &str) -> Result<(), AwsError> {
    let invalid = || {
        AwsError::new(
            codes::INVALID_SNS_TOPIC_NAME,
            format!("SNS topic '{topic}' is not a valid topic name or ARN."),
        )
    };
    if topic.chars().count() > SNS_TOPIC_NAME_LEN_MAX {
        return Err(invalid());
    }
    let name = if topic.starts_with("arn:") {
        let parts: Vec<&str> = topic.splitn(6, ':').collect();
        let [_arn, partition, service, region, account_id, name] = parts.as_slice() else {
            return Err(invalid());
        };
        if partition.is_empty()
            || *service != "sns"
            || region.is_empty()
            || account_id.len() != 12
            || !account_id.bytes().all(|byte| byte.is_ascii_digit())
        {
            return Err(invalid());
        }
        *name
    } else {
        topic
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-'))
    {
        return Err(invalid());
    }
    Ok(())
}

/// Log group and role ARNs. OpenTrail needs no role to write a stream, so a log group
/// without a role is accepted; a role without a log group is not
/// (`InvalidParameterCombinationException`).
pub fn validate_cloud_watch_logs(
    log_group_arn: Option<&str>,
    role_arn: Option<&str>,
) -> Result<(), AwsError> {
    if let Some(group) = log_group_arn {
        let invalid = || {
            AwsError::new(
                codes::INVALID_CLOUD_WATCH_LOGS_LOG_GROUP_ARN,
                format!(
                    "'{group}' is not a valid log group ARN: use arn:aws:logs:<region>:<account id>:log-group:<name>:*."
                ),
            )
        };
        let parts: Vec<&str> = group.splitn(7, ':').collect();
        let [_arn, partition, service, region, account_id, kind, rest] = parts.as_slice() else {
            return Err(invalid());
        };
        let name = rest.strip_suffix(":*").unwrap_or(rest);
        let name_ok = (1..=512).contains(&name.len())
            && name.bytes().all(|byte| {
                byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'/' | b'.' | b'#')
            });
        if partition.is_empty()
            || *service != "logs"
            || region.is_empty()
            || account_id.len() != 12
            || !account_id.bytes().all(|byte| byte.is_ascii_digit())
            || *kind != "log-group"
            || !name_ok
        {
            return Err(invalid());
        }
    }
    if let Some(role) = role_arn {
        let parts: Vec<&str> = role.splitn(6, ':').collect();
        let valid = matches!(parts.as_slice(),
            [_arn, partition, "iam", "", account_id, resource]
                if !partition.is_empty()
                    && account_id.len() == 12
                    && account_id.bytes().all(|byte| byte.is_ascii_digit())
                    && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()));
        if !valid {
            return Err(AwsError::new(
                codes::INVALID_CLOUD_WATCH_LOGS_ROLE_ARN,
                format!("'{role}' is not a valid IAM role ARN."),
            ));
        }
        if log_group_arn.is_none() {
            return Err(AwsError::new(
                codes::INVALID_PARAMETER_COMBINATION,
                "CloudWatchLogsRoleArn needs CloudWatchLogsLogGroupArn.",
            ));
        }
    }
    Ok(())
}

/// KMS encryption and organization trails are not offered: say so instead of accepting
/// a setting that would silently do nothing.
fn reject_unsupported(
    kms_key_id: Option<&str>,
    is_organization_trail: Option<bool>,
) -> Result<(), AwsError> {
    if kms_key_id.is_some_and(|key| !key.is_empty()) {
        return Err(AwsError::unsupported_operation(
            "OpenTrail does not encrypt log files with KMS keys; leave KmsKeyId unset.",
        ));
    }
    if is_organization_trail == Some(true) {
        return Err(AwsError::new(
            codes::ORGANIZATIONS_NOT_IN_USE,
            "OpenTrail has no AWS Organizations: trails of the default account already deliver every account's events.",
        ));
    }
    Ok(())
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|text| !text.is_empty())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for the deprecated string members of GetTrailStatus, or `""`.
pub fn deprecated_time_string(ms: Option<i64>) -> String {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(crate::time::format_record_time)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eight_invalid_name_forms_are_rejected() {
        let long = "a".repeat(129);
        for bad in [
            "ab",
            long.as_str(),
            "my trail",
            "-trail",
            "trail-",
            "my-_namespace",
            "my--namespace",
            "192.168.5.4",
        ] {
            let error = validate_trail_name(bad).expect_err(bad);
            assert_eq!(error.code, codes::INVALID_TRAIL_NAME, "{bad}");
            assert_eq!(error.status, 400);
        }
        for good in ["abc", "My.Trail_1-x", &"a".repeat(128), "192.168.5.4a"] {
            assert!(validate_trail_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn trail_arns_parse_or_are_invalid_arns() {
        assert_eq!(
            parse_trail_name_or_arn(Some(
                "arn:aws:cloudtrail:us-east-2:123456789012:trail/MyTrail"
            ))
            .ok(),
            Some(TrailName::Arn {
                region: "us-east-2".to_owned(),
                account_id: "123456789012".to_owned(),
                name: "MyTrail".to_owned()
            })
        );
        for bad in [
            "arn:aws:cloudtrail:us-east-2:12345:trail/MyTrail",
            "arn:aws:s3:us-east-2:123456789012:trail/MyTrail",
            "arn:aws:cloudtrail:us-east-2:123456789012:channel/x",
            "arn:aws:cloudtrail:us-east-2:123456789012:trail/a",
        ] {
            let error = parse_trail_name_or_arn(Some(bad)).expect_err(bad);
            assert_eq!(error.code, codes::CLOUD_TRAIL_ARN_INVALID, "{bad}");
        }
    }

    #[test]
    fn prefixes_and_buckets_follow_s3_rules() {
        assert!(validate_s3_prefix("logs/prod").is_ok());
        assert!(validate_s3_prefix(&"a".repeat(200)).is_ok());
        for bad in [&"a".repeat(201), "/logs", "logs/", "a//b", "a/../b", "a b"] {
            assert_eq!(
                validate_s3_prefix(bad).expect_err(bad).code,
                codes::INVALID_S3_PREFIX
            );
        }
        assert!(validate_bucket_name("my-trail-bucket.logs").is_ok());
        for bad in [
            "ab",
            "My-Bucket",
            "-bucket",
            "a..b",
            "192.168.1.1",
            "bucket_x",
        ] {
            assert_eq!(
                validate_bucket_name(bad).expect_err(bad).code,
                codes::INVALID_S3_BUCKET_NAME
            );
        }
    }

    #[test]
    fn selector_rules() {
        let basic = |read_write: &str| EventSelector {
            read_write_type: Some(read_write.to_owned()),
            ..EventSelector::default()
        };
        assert!(validate_event_selectors(&[basic("All")]).is_ok());
        assert!(validate_event_selectors(&[basic("read-only")]).is_err());
        assert!(validate_event_selectors(&[]).is_err());
        assert!(validate_event_selectors(&vec![basic("All"); 6]).is_err());
        let field = |name: &str, equals: &[&str]| AdvancedFieldSelector {
            field: name.to_owned(),
            equals: Some(equals.iter().map(|value| value.to_string()).collect()),
            ..AdvancedFieldSelector::default()
        };
        let management = AdvancedEventSelector {
            name: None,
            field_selectors: vec![field("eventCategory", &["Management"])],
        };
        assert!(validate_advanced_event_selectors(&[management]).is_ok());
        let data_without_type = AdvancedEventSelector {
            name: None,
            field_selectors: vec![field("eventCategory", &["Data"])],
        };
        assert!(validate_advanced_event_selectors(&[data_without_type]).is_err());
        let starts_on_read_only = AdvancedEventSelector {
            name: None,
            field_selectors: vec![
                field("eventCategory", &["Management"]),
                AdvancedFieldSelector {
                    field: "readOnly".to_owned(),
                    starts_with: Some(vec!["t".to_owned()]),
                    ..AdvancedFieldSelector::default()
                },
            ],
        };
        assert!(validate_advanced_event_selectors(&[starts_on_read_only]).is_err());
    }
}

//! Trail operations of the JSON 1.1 control plane: CreateTrail, GetTrail, DescribeTrails,
//! ListTrails, UpdateTrail, DeleteTrail, StartLogging, StopLogging, GetTrailStatus,
//! PutEventSelectors, GetEventSelectors, PutInsightSelectors, GetInsightSelectors, AddTags,
//! ListTags, RemoveTags.
//!
//! Permissions: changing trails (create, update, delete, start, stop, event and Insights
//! selectors, tags) needs an admin key; reading them needs a read or admin key. A trail belongs to the
//! caller's account and its home region is the region the CreateTrail call was signed
//! for; another account's trail answers `TrailNotFoundException` exactly as if it did not
//! exist. Wire shapes and validation come from `opentrail_protocol::trails`; the trail
//! model and delivery from `opentrail_trails`; this module converts between them by hand.

use axum::response::Response;
use opentrail_protocol::insight_selectors::{
    GetInsightSelectorsRequest, InsightSelectorsResponse, PutInsightSelectorsRequest,
    ValidatedInsightSelector, insight_not_enabled,
};
use opentrail_protocol::json11::{Operation, empty_ok_response, ok_response, parse_body};
use opentrail_protocol::time::ms_to_epoch_seconds;
use opentrail_protocol::trails::{
    self as wire, CreateTrailRequest, DescribeTrailsRequest, DescribeTrailsResponse,
    EventSelectorsResponse, GetEventSelectorsRequest, GetTrailResponse, GetTrailStatusResponse,
    ListTagsRequest, ListTagsResponse, ListTrailsRequest, ListTrailsResponse,
    PutEventSelectorsRequest, ResourceTag, TagsRequest, TrailInfo, TrailName, TrailNameRequest,
    TrailSettingsResponse, TrailShape, UpdateTrailRequest, ValidatedSelectors,
};
use opentrail_protocol::{AwsError, WireResponse, error::codes};
use opentrail_trails::model::{
    AdvancedSelector, BasicSelector, DataResource, EventSelectors, FieldSelector, InsightSelector,
    ReadWriteType, Tag, Trail,
};
use opentrail_trails::{NewTrail, Scope, TrailRef, TrailStatus, TrailUpdate, Trails, TrailsError};

use crate::api_error::{ApiError, wire_response_into_http};
use crate::auth::Caller;
use crate::state::AppState;

/// What every operation returns: its answer, or the error to answer with.
type OperationResult = Result<WireResponse, ApiError>;

/// Every trail operation.
pub async fn handle(
    state: &AppState,
    caller: &Caller,
    operation: Operation,
    body: &[u8],
) -> Result<Response, ApiError> {
    let wire = handle_operation(&state.trails, caller, operation, body).await?;
    Ok(wire_response_into_http(wire))
}

/// The operations without the HTTP plumbing, so tests need only a [`Trails`]: the
/// caller's permission first, then the operation's own function, which decodes the
/// request, calls [`Trails`] and encodes the answer.
pub(crate) async fn handle_operation(
    trails: &Trails,
    caller: &Caller,
    operation: Operation,
    body: &[u8],
) -> OperationResult {
    require_permission(caller, operation)?;
    let scope = Scope {
        account_id: caller.account_id.clone(),
        region: caller.region.clone(),
    };
    match operation {
        Operation::CreateTrail => create_trail(trails, &scope, body).await,
        Operation::UpdateTrail => update_trail(trails, &scope, body).await,
        Operation::DeleteTrail => delete_trail(trails, &scope, body).await,
        Operation::StartLogging => start_logging(trails, &scope, body).await,
        Operation::StopLogging => stop_logging(trails, &scope, body).await,
        Operation::PutEventSelectors => put_event_selectors(trails, &scope, body).await,
        Operation::PutInsightSelectors => put_insight_selectors(trails, &scope, body).await,
        Operation::AddTags => add_tags(trails, &scope, body).await,
        Operation::RemoveTags => remove_tags(trails, &scope, body).await,
        Operation::GetTrail => get_trail(trails, &scope, body),
        Operation::DescribeTrails => describe_trails(trails, &scope, body),
        Operation::ListTrails => list_trails(trails, &scope, body),
        Operation::GetTrailStatus => get_trail_status(trails, &scope, body),
        Operation::ListPublicKeys => list_public_keys(trails, &scope, body),
        Operation::GetEventSelectors => get_event_selectors(trails, &scope, body),
        Operation::GetInsightSelectors => get_insight_selectors(trails, &scope, body),
        Operation::ListTags => list_tags(trails, &scope, body),
        other => Err(not_a_trail_operation(other)),
    }
}

/// Changing trails needs an admin key; reading them, a read or admin key. Any other
/// operation is not one of this module's.
fn require_permission(caller: &Caller, operation: Operation) -> Result<(), ApiError> {
    match operation {
        Operation::CreateTrail
        | Operation::UpdateTrail
        | Operation::DeleteTrail
        | Operation::StartLogging
        | Operation::StopLogging
        | Operation::PutEventSelectors
        | Operation::PutInsightSelectors
        | Operation::AddTags
        | Operation::RemoveTags => caller.require_admin(),
        Operation::GetTrail
        | Operation::DescribeTrails
        | Operation::ListTrails
        | Operation::GetTrailStatus
        | Operation::ListPublicKeys
        | Operation::GetEventSelectors
        | Operation::GetInsightSelectors
        | Operation::ListTags => caller.require_read(),
        other => Err(not_a_trail_operation(other)),
    }
}

fn not_a_trail_operation(operation: Operation) -> ApiError {
    ApiError(AwsError::unknown_operation(format!(
        "The operation {} is not a trail operation.",
        operation.name()
    )))
}

// ------------------------------------------------------------------ changes

async fn create_trail(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    let valid = parse_body::<CreateTrailRequest>(body)?.validate()?;
    let new = NewTrail {
        name: valid.name,
        s3_bucket_name: valid.s3_bucket_name,
        s3_key_prefix: valid.s3_key_prefix,
        sns_topic_name: valid.sns_topic_name,
        include_global_service_events: valid.include_global_service_events,
        is_multi_region_trail: valid.is_multi_region_trail,
        enable_log_file_validation: valid.enable_log_file_validation,
        cloud_watch_logs_log_group_arn: valid.cloud_watch_logs_log_group_arn,
        cloud_watch_logs_role_arn: valid.cloud_watch_logs_role_arn,
        recursive_logging: valid.recursive_logging,
        tags: valid.tags.into_iter().map(model_tag).collect(),
    };
    let trail = trails.create_trail(scope, new).await.map_err(trail_error)?;
    Ok(ok_response(&settings_response(&trail)))
}

async fn update_trail(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    let valid = parse_body::<UpdateTrailRequest>(body)?.validate()?;
    let update = TrailUpdate {
        s3_bucket_name: valid.s3_bucket_name,
        s3_key_prefix: valid.s3_key_prefix,
        sns_topic_name: valid.sns_topic_name,
        include_global_service_events: valid.include_global_service_events,
        is_multi_region_trail: valid.is_multi_region_trail,
        enable_log_file_validation: valid.enable_log_file_validation,
        cloud_watch_logs_log_group_arn: valid.cloud_watch_logs_log_group_arn,
        cloud_watch_logs_role_arn: valid.cloud_watch_logs_role_arn,
        recursive_logging: valid.recursive_logging,
    };
    let trail = trails
        .update_trail(scope, &trail_ref(valid.trail), update)
        .await
        .map_err(trail_error)?;
    Ok(ok_response(&settings_response(&trail)))
}

async fn delete_trail(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    empty_answer(trails.delete_trail(scope, &named_trail(body)?).await)
}

async fn start_logging(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    empty_answer(trails.start_logging(scope, &named_trail(body)?).await)
}

async fn stop_logging(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    empty_answer(trails.stop_logging(scope, &named_trail(body)?).await)
}

async fn put_event_selectors(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    let (trail, selectors) = parse_body::<PutEventSelectorsRequest>(body)?.validate()?;
    let selectors = match selectors {
        ValidatedSelectors::Basic(basic) => {
            EventSelectors::Basic(basic.into_iter().map(model_basic_selector).collect())
        }
        ValidatedSelectors::Advanced(advanced) => {
            EventSelectors::Advanced(advanced.into_iter().map(model_advanced_selector).collect())
        }
    };
    let updated = trails
        .put_event_selectors(scope, &trail_ref(trail), selectors)
        .await
        .map_err(trail_error)?;
    Ok(ok_response(&selectors_response(&updated)))
}

/// PutInsightSelectors: in the trail's home region, as PutEventSelectors; an empty list
/// turns Insights off.
async fn put_insight_selectors(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    let (trail, selectors) = parse_body::<PutInsightSelectorsRequest>(body)?.validate()?;
    let selectors = selectors
        .into_iter()
        .map(|selector| InsightSelector {
            insight_type: selector.insight_type,
            event_categories: selector.event_categories,
        })
        .collect();
    let updated = trails
        .put_insight_selectors(scope, &trail_ref(trail), selectors)
        .await
        .map_err(trail_error)?;
    Ok(ok_response(&insight_selectors_response(&updated)))
}

async fn add_tags(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    let (trail, tags) = parse_body::<TagsRequest>(body)?.validate()?;
    let tags = tags.into_iter().map(model_tag).collect();
    trails
        .add_tags(scope, &trail_ref(trail), tags)
        .await
        .map_err(tag_error)?;
    Ok(empty_ok_response())
}

async fn remove_tags(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    let (trail, tags) = parse_body::<TagsRequest>(body)?.validate()?;
    let keys = tags.into_iter().map(|tag| tag.key).collect();
    trails
        .remove_tags(scope, &trail_ref(trail), keys)
        .await
        .map_err(tag_error)?;
    Ok(empty_ok_response())
}

// ------------------------------------------------------------------ reads

fn get_trail(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    let found = trails
        .get_trail(scope, &named_trail(body)?)
        .map_err(trail_error)?;
    Ok(ok_response(&GetTrailResponse {
        trail: trail_shape(&found),
    }))
}

fn describe_trails(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    let (names, include_shadow_trails) = parse_body::<DescribeTrailsRequest>(body)?.validate()?;
    let references: Vec<TrailRef> = names.into_iter().map(trail_ref).collect();
    let found = trails.describe_trails(scope, &references, include_shadow_trails);
    Ok(ok_response(&DescribeTrailsResponse {
        trail_list: found.iter().map(trail_shape).collect(),
    }))
}

fn list_trails(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    // Every trail fits one page (a handful per region), so NextToken is never needed; a
    // token sent anyway changes nothing.
    let _request: ListTrailsRequest = parse_body(body)?;
    Ok(ok_response(&ListTrailsResponse {
        trails: trails
            .list_trails(&scope.account_id)
            .iter()
            .map(|trail| TrailInfo {
                trail_arn: trail.arn(),
                name: trail.name.clone(),
                home_region: trail.home_region.clone(),
            })
            .collect(),
        next_token: None,
    }))
}

fn get_trail_status(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    let (found, status) = trails
        .status(scope, &named_trail(body)?)
        .map_err(trail_error)?;
    Ok(ok_response(&status_response(&found, &status)))
}

/// ListPublicKeys: the digest keys of the caller's region valid in the window. Keys are
/// per region (as in CloudTrail), not per account: they only ever sign digests.
fn list_public_keys(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    use opentrail_protocol::public_keys::{
        ListPublicKeysRequest, ListPublicKeysResponse, PublicKey, PublicKeyInput,
    };
    let request = parse_body::<ListPublicKeysRequest>(body)?;
    let (start_ms, end_ms) = request.window(jiff::Timestamp::now().as_millisecond())?;
    let keys = trails.list_public_keys(&scope.region, start_ms, end_ms);
    let response = ListPublicKeysResponse {
        public_key_list: keys
            .iter()
            .map(|key| {
                PublicKey::from_input(&PublicKeyInput {
                    public_der: &key.public_der,
                    valid_from_ms: key.valid_from_ms,
                    valid_until_ms: key.valid_until_ms,
                    fingerprint: &key.fingerprint,
                })
            })
            .collect(),
        next_token: None,
    };
    Ok(ok_response(&response))
}

fn get_event_selectors(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    let trail = parse_body::<GetEventSelectorsRequest>(body)?.trail()?;
    let found = trails
        .get_trail(scope, &trail_ref(trail))
        .map_err(trail_error)?;
    Ok(ok_response(&selectors_response(&found)))
}

/// GetInsightSelectors: any region the trail is visible in, as GetEventSelectors.
fn get_insight_selectors(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    let trail = parse_body::<GetInsightSelectorsRequest>(body)?.trail()?;
    let found = trails
        .get_trail(scope, &trail_ref(trail))
        .map_err(trail_error)?;
    if !found.has_insight_selectors() {
        return Err(ApiError(insight_not_enabled(&found.arn())));
    }
    Ok(ok_response(&insight_selectors_response(&found)))
}

fn list_tags(trails: &Trails, scope: &Scope, body: &[u8]) -> OperationResult {
    let resources = parse_body::<ListTagsRequest>(body)?.validate()?;
    let mut resource_tag_list = Vec::with_capacity(resources.len());
    for (resource_id, trail) in resources {
        let found = trails
            .get_trail(scope, &trail_ref(trail))
            .map_err(tag_error)?;
        resource_tag_list.push(ResourceTag {
            resource_id,
            tags_list: found.tags.iter().map(wire_tag).collect(),
        });
    }
    Ok(ok_response(&ListTagsResponse {
        resource_tag_list,
        next_token: None,
    }))
}

// ------------------------------------------------------------------ conversions

/// The empty answer of a change, or CloudTrail's error for its failure.
fn empty_answer<T>(changed: Result<T, TrailsError>) -> OperationResult {
    changed.map_err(trail_error)?;
    Ok(empty_ok_response())
}

/// The trail a `{"Name": …}` request names.
fn named_trail(body: &[u8]) -> Result<TrailRef, ApiError> {
    let trail = parse_body::<TrailNameRequest>(body)?.trail()?;
    Ok(trail_ref(trail))
}

pub(crate) fn trail_ref(name: TrailName) -> TrailRef {
    match name {
        TrailName::Name(name) => TrailRef::Name(name),
        TrailName::Arn {
            region,
            account_id,
            name,
        } => TrailRef::Arn {
            region,
            account_id,
            name,
        },
    }
}

fn model_tag(tag: wire::Tag) -> Tag {
    Tag {
        key: tag.key,
        value: tag.value,
    }
}

fn wire_tag(tag: &Tag) -> wire::Tag {
    wire::Tag {
        key: tag.key.clone(),
        value: tag.value.clone(),
    }
}

fn model_basic_selector(selector: wire::EventSelector) -> BasicSelector {
    BasicSelector {
        read_write_type: match selector.read_write_type.as_deref() {
            Some("ReadOnly") => ReadWriteType::ReadOnly,
            Some("WriteOnly") => ReadWriteType::WriteOnly,
            // Validation admits only the three names; absent means All.
            _ => ReadWriteType::All,
        },
        include_management_events: selector.include_management_events.unwrap_or(true),
        data_resources: selector
            .data_resources
            .unwrap_or_default()
            .into_iter()
            .map(|resource| DataResource {
                resource_type: resource.resource_type.unwrap_or_default(),
                values: resource.values.unwrap_or_default(),
            })
            .collect(),
        exclude_management_event_sources: selector
            .exclude_management_event_sources
            .unwrap_or_default(),
    }
}

fn wire_basic_selector(selector: &BasicSelector) -> wire::EventSelector {
    wire::EventSelector {
        read_write_type: Some(selector.read_write_type.as_str().to_owned()),
        include_management_events: Some(selector.include_management_events),
        data_resources: Some(
            selector
                .data_resources
                .iter()
                .map(|resource| wire::DataResource {
                    resource_type: Some(resource.resource_type.clone()),
                    values: Some(resource.values.clone()),
                })
                .collect(),
        ),
        exclude_management_event_sources: Some(selector.exclude_management_event_sources.clone()),
    }
}

fn model_advanced_selector(selector: wire::AdvancedEventSelector) -> AdvancedSelector {
    AdvancedSelector {
        name: selector.name,
        field_selectors: selector
            .field_selectors
            .into_iter()
            .map(|field| FieldSelector {
                field: field.field,
                equals: field.equals.unwrap_or_default(),
                starts_with: field.starts_with.unwrap_or_default(),
                ends_with: field.ends_with.unwrap_or_default(),
                not_equals: field.not_equals.unwrap_or_default(),
                not_starts_with: field.not_starts_with.unwrap_or_default(),
                not_ends_with: field.not_ends_with.unwrap_or_default(),
            })
            .collect(),
    }
}

fn wire_advanced_selector(selector: &AdvancedSelector) -> wire::AdvancedEventSelector {
    let operands = |values: &Vec<String>| (!values.is_empty()).then(|| values.clone());
    wire::AdvancedEventSelector {
        name: selector.name.clone(),
        field_selectors: selector
            .field_selectors
            .iter()
            .map(|field| wire::AdvancedFieldSelector {
                field: field.field.clone(),
                equals: operands(&field.equals),
                starts_with: operands(&field.starts_with),
                ends_with: operands(&field.ends_with),
                not_equals: operands(&field.not_equals),
                not_starts_with: operands(&field.not_starts_with),
                not_ends_with: operands(&field.not_ends_with),
            })
            .collect(),
    }
}

fn selectors_response(trail: &Trail) -> EventSelectorsResponse {
    let (event_selectors, advanced_event_selectors) = match &trail.selectors {
        EventSelectors::Default => (
            Some(
                EventSelectors::default_basic()
                    .iter()
                    .map(wire_basic_selector)
                    .collect(),
            ),
            None,
        ),
        EventSelectors::Basic(basic) => {
            (Some(basic.iter().map(wire_basic_selector).collect()), None)
        }
        EventSelectors::Advanced(advanced) => (
            None,
            Some(advanced.iter().map(wire_advanced_selector).collect()),
        ),
    };
    EventSelectorsResponse {
        trail_arn: trail.arn(),
        event_selectors,
        advanced_event_selectors,
    }
}

fn insight_selectors_response(trail: &Trail) -> InsightSelectorsResponse {
    let selectors: Vec<ValidatedInsightSelector> = trail
        .insight_selectors
        .iter()
        .map(|selector| ValidatedInsightSelector {
            insight_type: selector.insight_type.clone(),
            event_categories: selector.event_categories.clone(),
        })
        .collect();
    InsightSelectorsResponse::new(trail.arn(), &selectors)
}

fn settings_response(trail: &Trail) -> TrailSettingsResponse {
    let settings = &trail.settings;
    TrailSettingsResponse {
        name: trail.name.clone(),
        s3_bucket_name: settings.s3_bucket_name.clone(),
        s3_key_prefix: settings.s3_key_prefix.clone(),
        sns_topic_name: settings.sns_topic.as_ref().map(|topic| topic.given.clone()),
        sns_topic_arn: settings.sns_topic.as_ref().map(|topic| topic.arn.clone()),
        include_global_service_events: settings.include_global_service_events,
        is_multi_region_trail: settings.is_multi_region_trail,
        trail_arn: trail.arn(),
        log_file_validation_enabled: settings.log_file_validation_enabled,
        cloud_watch_logs_log_group_arn: settings.cloud_watch_logs_log_group_arn.clone(),
        cloud_watch_logs_role_arn: settings.cloud_watch_logs_role_arn.clone(),
        kms_key_id: None,
        is_organization_trail: false,
        recursive_logging: settings.recursive_logging,
    }
}

fn trail_shape(trail: &Trail) -> TrailShape {
    let settings = &trail.settings;
    TrailShape {
        name: trail.name.clone(),
        s3_bucket_name: settings.s3_bucket_name.clone(),
        s3_key_prefix: settings.s3_key_prefix.clone(),
        sns_topic_name: settings.sns_topic.as_ref().map(|topic| topic.given.clone()),
        sns_topic_arn: settings.sns_topic.as_ref().map(|topic| topic.arn.clone()),
        include_global_service_events: settings.include_global_service_events,
        is_multi_region_trail: settings.is_multi_region_trail,
        home_region: trail.home_region.clone(),
        trail_arn: trail.arn(),
        log_file_validation_enabled: settings.log_file_validation_enabled,
        cloud_watch_logs_log_group_arn: settings.cloud_watch_logs_log_group_arn.clone(),
        cloud_watch_logs_role_arn: settings.cloud_watch_logs_role_arn.clone(),
        kms_key_id: None,
        has_custom_event_selectors: !matches!(trail.selectors, EventSelectors::Default),
        has_insight_selectors: trail.has_insight_selectors(),
        is_organization_trail: false,
        recursive_logging: settings.recursive_logging,
    }
}

fn status_response(trail: &Trail, status: &TrailStatus) -> GetTrailStatusResponse {
    let logging = &trail.logging;
    let seconds = |ms: Option<i64>| ms.map(ms_to_epoch_seconds);
    // "Succeeded" holds the time of the last successful attempt, as CloudTrail sends it.
    GetTrailStatusResponse {
        is_logging: logging.is_logging,
        // Insights files go to the same bucket; their failure shows when log files have
        // none (GetTrailStatus has no member of its own for them).
        latest_delivery_error: status
            .latest_delivery_error
            .clone()
            .or_else(|| status.latest_insights_delivery_error.clone()),
        latest_notification_error: status.latest_notification_error.clone(),
        latest_delivery_time: seconds(status.latest_delivery_time_ms),
        latest_notification_time: seconds(status.latest_notification_time_ms),
        start_logging_time: seconds(logging.start_logging_time_ms),
        stop_logging_time: seconds(logging.stop_logging_time_ms),
        latest_cloud_watch_logs_delivery_error: status
            .latest_cloud_watch_logs_delivery_error
            .clone(),
        latest_cloud_watch_logs_delivery_time: seconds(
            status.latest_cloud_watch_logs_delivery_time_ms,
        ),
        latest_digest_delivery_time: seconds(status.latest_digest_delivery_time_ms),
        latest_digest_delivery_error: status.latest_digest_delivery_error.clone(),
        latest_delivery_attempt_time: wire::deprecated_time_string(
            status.latest_delivery_attempt_time_ms,
        ),
        latest_notification_attempt_time: wire::deprecated_time_string(
            status.latest_notification_attempt_time_ms,
        ),
        latest_notification_attempt_succeeded: wire::deprecated_time_string(
            status.latest_notification_time_ms,
        ),
        latest_delivery_attempt_succeeded: wire::deprecated_time_string(
            status.latest_delivery_time_ms,
        ),
        time_logging_started: wire::deprecated_time_string(logging.start_logging_time_ms),
        time_logging_stopped: wire::deprecated_time_string(logging.stop_logging_time_ms),
    }
}

// ------------------------------------------------------------------ errors

/// CloudTrail's error for a failed trail operation.
fn trail_error(error: TrailsError) -> ApiError {
    let aws = match error {
        TrailsError::NotFound(message) => AwsError::trail_not_found(message),
        TrailsError::AlreadyExists(name) => AwsError::new(
            codes::TRAIL_ALREADY_EXISTS,
            format!("Trail {name} already exists for this account."),
        ),
        TrailsError::LimitExceeded {
            account_id,
            region,
            limit,
        } => AwsError::new(
            codes::MAXIMUM_NUMBER_OF_TRAILS_EXCEEDED,
            format!("User: {account_id} already has {limit} trails in {region}."),
        ),
        TrailsError::InvalidHomeRegion { arn, home_region } => AwsError::new(
            codes::INVALID_HOME_REGION,
            format!(
                "This operation must be called from the trail's home region {home_region}: {arn}"
            ),
        ),
        TrailsError::BucketDoesNotExist(bucket) => AwsError::new(
            codes::S3_BUCKET_DOES_NOT_EXIST,
            format!("S3 bucket {bucket} does not exist."),
        ),
        TrailsError::DestinationUnavailable(detail) => {
            tracing::warn!(
                detail = detail.as_str(),
                "the trail destination cannot be reached"
            );
            AwsError::new(
                codes::SERVICE_UNAVAILABLE,
                format!("The S3 endpoint cannot be reached: {detail}"),
            )
        }
        TrailsError::SnsTopicNotConfigured(topic) => AwsError::new(
            codes::INSUFFICIENT_SNS_TOPIC_POLICY,
            format!("SNS topic {topic} is not configured on this server (sns_topics)."),
        ),
        TrailsError::LogGroupNotConfigured(group) => AwsError::new(
            codes::INVALID_CLOUD_WATCH_LOGS_LOG_GROUP_ARN,
            format!("Log group {group} is not configured on this server (cloudwatch_log_groups)."),
        ),
        TrailsError::InvalidInsightSelectors(message) => {
            AwsError::new(codes::INVALID_INSIGHT_SELECTORS, message)
        }
        TrailsError::TagsLimitExceeded { limit } => {
            AwsError::tags_limit_exceeded(format!("A resource can have at most {limit} tags."))
        }
        other => return ApiError::internal(other),
    };
    ApiError(aws)
}

/// Tagging calls name a resource, so an unknown trail is `ResourceNotFoundException`.
fn tag_error(error: TrailsError) -> ApiError {
    match error {
        TrailsError::NotFound(message) => {
            ApiError(AwsError::new(codes::RESOURCE_NOT_FOUND, message))
        }
        other => trail_error(other),
    }
}

//! CloudTrail Lake operations of the JSON 1.1 control plane: CreateEventDataStore,
//! GetEventDataStore, ListEventDataStores, UpdateEventDataStore, DeleteEventDataStore,
//! RestoreEventDataStore, StartQuery, DescribeQuery, GetQueryResults, ListQueries,
//! CancelQuery.
//!
//! Permissions: changing event data stores needs an admin key; reading them and running
//! queries, a read or admin key. Stores and queries belong to the caller's account:
//! another account's answer "not found", as if they did not exist, and a query can only
//! name its own account's stores.

use std::collections::BTreeMap;

use axum::response::Response;
use opentrail_lake::data_stores::{
    DataStoreError, EventDataStore, EventDataStoreUpdate, NewEventDataStore,
};
use opentrail_lake::queries::{QueryError, QueryRecord, QueryStatus};
use opentrail_lake::{EventSelector, FieldCondition, LakeError};
use opentrail_protocol::json11::{Operation, empty_ok_response, ok_response, parse_body};
use opentrail_protocol::lake::{
    self as wire, CancelQueryResponse, CreateEventDataStoreRequest, DescribeQueryResponse,
    EventDataStoreRequest, EventDataStoreShape, GetQueryResultsRequest, GetQueryResultsResponse,
    ListEventDataStoresRequest, ListEventDataStoresResponse, ListQueriesRequest,
    ListQueriesResponse, QueryIdRequest, QueryStatistics, QueryStatisticsForDescribeQuery,
    QuerySummary, StartQueryRequest, StartQueryResponse, UpdateEventDataStoreRequest,
};
use opentrail_protocol::time::ms_to_epoch_seconds;
use opentrail_protocol::trails::{AdvancedEventSelector, AdvancedFieldSelector, Tag};
use opentrail_protocol::{AwsError, WireResponse, error::codes, token};

use crate::api_error::{ApiError, wire_response_into_http};
use crate::auth::Caller;
use crate::lake::LakeService;
use crate::state::AppState;

type OperationResult = Result<WireResponse, ApiError>;

/// Every Lake operation.
pub async fn handle(
    state: &AppState,
    caller: &Caller,
    operation: Operation,
    body: &[u8],
) -> Result<Response, ApiError> {
    let wire = handle_operation(&state.lake, caller, operation, body).await?;
    Ok(wire_response_into_http(wire))
}

pub(crate) async fn handle_operation(
    lake: &LakeService,
    caller: &Caller,
    operation: Operation,
    body: &[u8],
) -> OperationResult {
    match operation {
        Operation::CreateEventDataStore
        | Operation::UpdateEventDataStore
        | Operation::DeleteEventDataStore
        | Operation::RestoreEventDataStore => caller.require_admin()?,
        _ => caller.require_read()?,
    }
    let now_ms = jiff::Timestamp::now().as_millisecond();
    match operation {
        Operation::CreateEventDataStore => create(lake, caller, body, now_ms).await,
        Operation::GetEventDataStore => get(lake, caller, body),
        Operation::ListEventDataStores => list(lake, caller, body),
        Operation::UpdateEventDataStore => update(lake, caller, body, now_ms).await,
        Operation::DeleteEventDataStore => delete(lake, caller, body, now_ms).await,
        Operation::RestoreEventDataStore => restore(lake, caller, body, now_ms).await,
        Operation::StartQuery => start_query(lake, caller, body, now_ms).await,
        Operation::DescribeQuery => describe_query(lake, caller, body),
        Operation::GetQueryResults => get_query_results(lake, caller, body).await,
        Operation::ListQueries => list_queries(lake, caller, body),
        Operation::CancelQuery => cancel_query(lake, caller, body).await,
        other => Err(ApiError(AwsError::unknown_operation(format!(
            "The operation {} is not a Lake operation.",
            other.name()
        )))),
    }
}

// ------------------------------------------------------------------ event data stores

/// Runs a blocking registry write off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DataStoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError(AwsError::internal_failure()))?
        .map_err(data_store_error)
}

async fn create(lake: &LakeService, caller: &Caller, body: &[u8], now_ms: i64) -> OperationResult {
    let valid = parse_body::<CreateEventDataStoreRequest>(body)?.validate()?;
    let new = NewEventDataStore {
        name: valid.name,
        account_id: caller.account_id.clone(),
        region: caller.region.clone(),
        selectors: valid.selectors.iter().map(model_selector).collect(),
        multi_region_enabled: valid.multi_region_enabled,
        organization_enabled: false,
        retention_days: valid.retention_days,
        termination_protection_enabled: valid.termination_protection_enabled,
        billing_mode: valid.billing_mode,
        tags: valid
            .tags
            .into_iter()
            .map(|tag| (tag.key, tag.value.unwrap_or_default()))
            .collect(),
    };
    let data_stores = lake.data_stores.clone();
    let store = blocking(move || {
        data_stores.forget_deleted(now_ms)?;
        data_stores.create(new, now_ms)
    })
    .await?;
    let mut shape = store_shape(&store);
    shape.tags_list = Some(
        store
            .tags
            .iter()
            .map(|(key, value)| Tag {
                key: key.clone(),
                value: Some(value.clone()),
            })
            .collect(),
    );
    Ok(ok_response(&shape))
}

fn find(lake: &LakeService, caller: &Caller, reference: &str) -> Result<EventDataStore, ApiError> {
    lake.data_stores
        .find(&caller.account_id, &caller.region, reference)
        .map_err(data_store_error)
}

fn get(lake: &LakeService, caller: &Caller, body: &[u8]) -> OperationResult {
    let reference = parse_body::<EventDataStoreRequest>(body)?.data_store()?;
    Ok(ok_response(&store_shape(&find(lake, caller, &reference)?)))
}

fn list(lake: &LakeService, caller: &Caller, body: &[u8]) -> OperationResult {
    let request = parse_body::<ListEventDataStoresRequest>(body)?;
    let max_results = request.max_results()?;
    let fingerprint = format!("ListEventDataStores\0{}", caller.account_id);
    let stores = lake.data_stores.list(&caller.account_id, &caller.region);
    let (page, next_token) = paginate(
        &stores,
        request.next_token.as_deref(),
        max_results,
        &fingerprint,
    )?;
    Ok(ok_response(&ListEventDataStoresResponse {
        event_data_stores: page.iter().map(store_shape).collect(),
        next_token,
    }))
}

async fn update(lake: &LakeService, caller: &Caller, body: &[u8], now_ms: i64) -> OperationResult {
    let request = parse_body::<UpdateEventDataStoreRequest>(body)?;
    let reference = EventDataStoreRequest {
        event_data_store: request.event_data_store.clone(),
    }
    .data_store()?;
    let current = find(lake, caller, &reference)?;
    if !current.is_enabled() {
        return Err(data_store_error(DataStoreError::Inactive(current.id)));
    }
    let valid = request.validate(&current.billing_mode)?;
    let update = EventDataStoreUpdate {
        name: valid.name,
        selectors: valid
            .selectors
            .map(|selectors| selectors.iter().map(model_selector).collect()),
        multi_region_enabled: valid.multi_region_enabled,
        organization_enabled: None,
        retention_days: valid.retention_days,
        termination_protection_enabled: valid.termination_protection_enabled,
        billing_mode: valid.billing_mode,
    };
    let data_stores = lake.data_stores.clone();
    let updated = blocking(move || data_stores.update(&current, update, now_ms)).await?;
    Ok(ok_response(&store_shape(&updated)))
}

async fn delete(lake: &LakeService, caller: &Caller, body: &[u8], now_ms: i64) -> OperationResult {
    let reference = parse_body::<EventDataStoreRequest>(body)?.data_store()?;
    let current = find(lake, caller, &reference)?;
    let data_stores = lake.data_stores.clone();
    blocking(move || data_stores.delete(&current, now_ms)).await?;
    Ok(empty_ok_response())
}

async fn restore(lake: &LakeService, caller: &Caller, body: &[u8], now_ms: i64) -> OperationResult {
    let reference = parse_body::<EventDataStoreRequest>(body)?.data_store()?;
    let current = find(lake, caller, &reference)?;
    let data_stores = lake.data_stores.clone();
    let restored = blocking(move || data_stores.restore(&current, now_ms)).await?;
    Ok(ok_response(&store_shape(&restored)))
}

fn store_shape(store: &EventDataStore) -> EventDataStoreShape {
    EventDataStoreShape {
        event_data_store_arn: store.arn(),
        name: store.name.clone(),
        status: store.status.as_str().to_owned(),
        advanced_event_selectors: store.selectors.iter().map(wire_selector).collect(),
        multi_region_enabled: store.multi_region_enabled,
        organization_enabled: store.organization_enabled,
        retention_period: store.retention_days,
        termination_protection_enabled: store.termination_protection_enabled,
        tags_list: None,
        created_timestamp: ms_to_epoch_seconds(store.created_ms),
        updated_timestamp: ms_to_epoch_seconds(store.updated_ms),
        billing_mode: Some(store.billing_mode.clone()),
    }
}

fn model_selector(selector: &AdvancedEventSelector) -> EventSelector {
    EventSelector {
        name: selector.name.clone(),
        field_selectors: selector
            .field_selectors
            .iter()
            .map(|field| FieldCondition {
                field: field.field.clone(),
                equals: field.equals.clone().unwrap_or_default(),
                starts_with: field.starts_with.clone().unwrap_or_default(),
                ends_with: field.ends_with.clone().unwrap_or_default(),
                not_equals: field.not_equals.clone().unwrap_or_default(),
                not_starts_with: field.not_starts_with.clone().unwrap_or_default(),
                not_ends_with: field.not_ends_with.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

fn wire_selector(selector: &EventSelector) -> AdvancedEventSelector {
    let operands = |values: &Vec<String>| (!values.is_empty()).then(|| values.clone());
    AdvancedEventSelector {
        name: selector.name.clone(),
        field_selectors: selector
            .field_selectors
            .iter()
            .map(|condition| AdvancedFieldSelector {
                field: condition.field.clone(),
                equals: operands(&condition.equals),
                starts_with: operands(&condition.starts_with),
                ends_with: operands(&condition.ends_with),
                not_equals: operands(&condition.not_equals),
                not_starts_with: operands(&condition.not_starts_with),
                not_ends_with: operands(&condition.not_ends_with),
            })
            .collect(),
    }
}

fn data_store_error(error: DataStoreError) -> ApiError {
    let code = match &error {
        DataStoreError::NotFound(_) => codes::EVENT_DATA_STORE_NOT_FOUND,
        DataStoreError::AlreadyExists(_) => codes::EVENT_DATA_STORE_ALREADY_EXISTS,
        DataStoreError::LimitExceeded => codes::EVENT_DATA_STORE_MAX_LIMIT_EXCEEDED,
        DataStoreError::TerminationProtected(_) => codes::EVENT_DATA_STORE_TERMINATION_PROTECTED,
        DataStoreError::Inactive(_) => codes::INACTIVE_EVENT_DATA_STORE,
        DataStoreError::NotPendingDeletion(_) => codes::INVALID_EVENT_DATA_STORE_STATUS,
        DataStoreError::Io { .. } | DataStoreError::Corrupt { .. } => {
            tracing::error!(%error, "event data stores could not be written");
            return ApiError(AwsError::internal_failure());
        }
    };
    ApiError(AwsError::new(code, error.to_string()))
}

// ------------------------------------------------------------------ queries

async fn start_query(
    lake: &LakeService,
    caller: &Caller,
    body: &[u8],
    now_ms: i64,
) -> OperationResult {
    let request = parse_body::<StartQueryRequest>(body)?;
    check_owner(caller, request.event_data_store_owner_account_id.as_deref())?;
    let statement = request.statement()?;
    let stores = named_stores(lake, caller, statement)?;
    let queries = lake.queries.clone();
    let forgotten = tokio::task::spawn_blocking(move || queries.forget_expired(now_ms)).await;
    if let Ok(Err(error)) = forgotten {
        tracing::warn!(%error, "removing expired query results failed");
    }
    let query_id = lake
        .queries
        .start(&caller.account_id, statement, &stores, now_ms)
        .await
        .map_err(query_error)?;
    Ok(ok_response(&StartQueryResponse {
        query_id,
        event_data_store_owner_account_id: None,
    }))
}

/// The caller's event data stores that `statement` names by id in `FROM` or `JOIN`: each
/// must be the caller's and enabled, and there must be one.
fn named_stores(
    lake: &LakeService,
    caller: &Caller,
    statement: &str,
) -> Result<Vec<EventDataStore>, ApiError> {
    let named = lake
        .stores_named(&caller.account_id, &caller.region, statement)
        .map_err(data_store_error)?;
    if named.is_empty() {
        return Err(ApiError(AwsError::new(
            codes::INVALID_QUERY_STATEMENT,
            "The query names no event data store: write FROM <event data store ID>.",
        )));
    }
    Ok(named)
}

/// `EventDataStoreOwnerAccountId`, when given, must be the caller's own account.
fn check_owner(caller: &Caller, owner: Option<&str>) -> Result<(), ApiError> {
    match owner {
        Some(owner) if owner != caller.account_id => Err(ApiError(AwsError::new(
            codes::EVENT_DATA_STORE_NOT_FOUND,
            format!("No event data store of account {owner} is shared with this account."),
        ))),
        _ => Ok(()),
    }
}

fn describe_query(lake: &LakeService, caller: &Caller, body: &[u8]) -> OperationResult {
    let request = parse_body::<QueryIdRequest>(body)?;
    check_owner(caller, request.event_data_store_owner_account_id.as_deref())?;
    let record = lake
        .queries
        .describe(&caller.account_id, &request.query_id()?)
        .map_err(query_error)?;
    Ok(ok_response(&DescribeQueryResponse {
        query_id: record.id.clone(),
        query_string: record.statement.clone(),
        query_status: record.status.as_str().to_owned(),
        query_statistics: QueryStatisticsForDescribeQuery {
            events_matched: record.events_matched,
            events_scanned: record.events_scanned,
            bytes_scanned: record.bytes_scanned,
            execution_time_in_millis: record.execution_ms,
            creation_time: ms_to_epoch_seconds(record.created_ms),
        },
        error_message: record.error_message.as_deref().map(wire::error_message),
    }))
}

async fn get_query_results(lake: &LakeService, caller: &Caller, body: &[u8]) -> OperationResult {
    let request = parse_body::<GetQueryResultsRequest>(body)?;
    check_owner(caller, request.event_data_store_owner_account_id.as_deref())?;
    let id = request.query_id()?;
    let max_results = request.max_results()?;
    let (record, results) = lake
        .queries
        .results(&caller.account_id, &id)
        .await
        .map_err(query_error)?;
    let fingerprint = format!("GetQueryResults\0{id}");
    let (rows, next_token) = paginate(
        &results.rows,
        request.next_token.as_deref(),
        max_results,
        &fingerprint,
    )?;
    let query_result_rows = rows
        .iter()
        .map(|row| {
            results
                .columns
                .iter()
                .zip(row)
                .map(|(column, value)| {
                    BTreeMap::from([(column.clone(), value.clone().unwrap_or_default())])
                })
                .collect()
        })
        .collect();
    Ok(ok_response(&GetQueryResultsResponse {
        query_status: record.status.as_str().to_owned(),
        query_statistics: QueryStatistics {
            results_count: rows.len() as u64,
            total_results_count: results.rows.len() as u64,
            bytes_scanned: record.bytes_scanned,
        },
        query_result_rows,
        next_token,
        error_message: record.error_message.as_deref().map(wire::error_message),
    }))
}

fn list_queries(lake: &LakeService, caller: &Caller, body: &[u8]) -> OperationResult {
    let request = parse_body::<ListQueriesRequest>(body)?;
    let valid = request.validate()?;
    let store = find(lake, caller, &valid.event_data_store)?;
    let status = valid.status.as_deref().and_then(QueryStatus::parse);
    let records: Vec<QueryRecord> = lake
        .queries
        .list(&caller.account_id, &store.id)
        .into_iter()
        .filter(|record| {
            valid
                .start_ms
                .is_none_or(|start| record.created_ms >= start)
        })
        .filter(|record| valid.end_ms.is_none_or(|end| record.created_ms <= end))
        .filter(|record| status.is_none_or(|status| record.status == status))
        .collect();
    let fingerprint = format!(
        "ListQueries\0{}\0{:?}\0{:?}\0{:?}",
        store.id, valid.start_ms, valid.end_ms, valid.status
    );
    let (page, next_token) = paginate(
        &records,
        request.next_token.as_deref(),
        valid.max_results,
        &fingerprint,
    )?;
    Ok(ok_response(&ListQueriesResponse {
        queries: page
            .iter()
            .map(|record| QuerySummary {
                query_id: record.id.clone(),
                query_status: record.status.as_str().to_owned(),
                creation_time: ms_to_epoch_seconds(record.created_ms),
            })
            .collect(),
        next_token,
    }))
}

async fn cancel_query(lake: &LakeService, caller: &Caller, body: &[u8]) -> OperationResult {
    let request = parse_body::<QueryIdRequest>(body)?;
    check_owner(caller, request.event_data_store_owner_account_id.as_deref())?;
    let record = lake
        .queries
        .cancel(&caller.account_id, &request.query_id()?)
        .await
        .map_err(query_error)?;
    Ok(ok_response(&CancelQueryResponse {
        query_id: record.id,
        query_status: record.status.as_str().to_owned(),
    }))
}

fn query_error(error: QueryError) -> ApiError {
    let code = match &error {
        QueryError::Lake(LakeError::NotSelect(_) | LakeError::InvalidQuery(_)) => {
            codes::INVALID_QUERY_STATEMENT
        }
        QueryError::TooManyActive(_) => codes::MAX_CONCURRENT_QUERIES,
        QueryError::NotFound(_) => codes::QUERY_ID_NOT_FOUND,
        QueryError::NotActive { .. } => codes::INACTIVE_QUERY,
        QueryError::Lake(_) | QueryError::Io { .. } => {
            tracing::error!(%error, "a Lake query could not be served");
            return ApiError(AwsError::internal_failure());
        }
    };
    ApiError(AwsError::new(code, error.to_string()))
}

/// One page of `items` from the offset a `NextToken` carries; the token for the rest.
fn paginate<'a, T>(
    items: &'a [T],
    next_token: Option<&str>,
    max_results: usize,
    fingerprint: &str,
) -> Result<(&'a [T], Option<String>), ApiError> {
    let start = match next_token {
        None => 0,
        Some(token) => {
            let cursor = token::decode(token, fingerprint.as_bytes())?;
            let offset = <[u8; 8]>::try_from(cursor.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| AwsError::invalid_next_token("The NextToken is not valid."))?;
            usize::try_from(offset)
                .ok()
                .filter(|offset| *offset <= items.len())
                .ok_or_else(|| AwsError::invalid_next_token("The NextToken is not valid."))?
        }
    };
    let end = start.saturating_add(max_results).min(items.len());
    let next = (end < items.len())
        .then(|| token::encode(&(end as u64).to_be_bytes(), fingerprint.as_bytes()));
    Ok((&items[start..end], next))
}

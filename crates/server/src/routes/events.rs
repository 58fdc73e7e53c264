//! The native events API: `POST /v1/events` (ingest) and `GET /v1/events` (lookup with
//! any number of filters). Wire shapes live in `opentrail_protocol::native`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentrail_event::{IngestContext, parse_batch_with_limit};
use opentrail_protocol::AwsError;
use opentrail_protocol::cloudtrail_data::{entry_codes, record_error_code};
use opentrail_protocol::native::{
    IngestFailure, IngestResponse, IngestedEvent, NativeLookup, lookup_response_body,
};
use opentrail_store::AppendOutcome;

use crate::api_error::ApiError;
use crate::audit::CallContext;
use crate::auth::Caller;
use crate::auth::RequestBody;
use crate::ingest::{append_blocking, append_to_store};
use crate::lookup::{native_query, run_lookup};
use crate::state::AppState;

/// `POST /v1/events`: any shape the store accepts, plain or gzip. Answers only once the
/// accepted events are durable.
pub async fn ingest(
    State(state): State<AppState>,
    call: CallContext,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    call.caller.require_ingest()?;
    let _permit = state.ingest.admit()?;
    let result = ingest_body(&state, &call.caller, &body).await;
    if state.config.record_ingest_calls {
        call.record(
            "PutEvents",
            Some(serde_json::json!({ "bodyBytes": body.len() })),
            result.as_ref().err(),
        )
        .await;
    }
    ingest_answer(&result?)
}

/// 200 with an [`IngestResponse`], for every ingest route.
pub fn ingest_answer(response: &IngestResponse) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(response).map_err(ApiError::internal)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

async fn ingest_body(
    state: &AppState,
    caller: &Caller,
    body: &Bytes,
) -> Result<IngestResponse, ApiError> {
    let context = IngestContext {
        account_id: caller.account_id.clone(),
        region: caller.region.clone(),
    };
    // Decompressed bodies are bounded like plain ones (a gzip bomb is just a large body).
    let decompressed_max = state.config.ingest_body_bytes_max.saturating_mul(8);
    let parse_input = body.clone();
    let accounts = WritableAccounts::of(state, caller);
    let store = state.store.clone();
    let screening = Some(std::sync::Arc::clone(state.detections.screening()));
    // Parsed and appended on one blocking thread: the records are freed by the thread
    // that allocated them, and the request changes threads once.
    let (draft, appended) = tokio::task::spawn_blocking(move || {
        let parsed = parse_batch_with_limit(&parse_input, &context, decompressed_max)?;
        let mut response = IngestResponse::default();
        for failure in parsed.failures {
            response.failed.push(IngestFailure {
                index: failure.index,
                error_code: record_error_code(failure.kind).to_owned(),
                message: failure.message,
            });
        }
        let (draft, records) = accounts.writable(parsed.records, response);
        let appended = append_blocking(&store, screening, records);
        Ok::<_, opentrail_event::BatchError>((draft, appended))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|error| {
        ApiError(AwsError::new(
            "SerializationException",
            format!("The request body could not be read: {error}"),
        ))
    })?;
    Ok(draft.answer(appended.into_api_result()?))
}

/// Appends the records a caller may write (each with its index in the request) and
/// completes `response` with what was accepted, deduplicated or refused.
pub async fn store_accepted(
    state: &AppState,
    caller: &Caller,
    parsed_records: Vec<(usize, opentrail_event::EventRecord)>,
    response: IngestResponse,
) -> Result<IngestResponse, ApiError> {
    let (draft, records) = WritableAccounts::of(state, caller).writable(parsed_records, response);
    let outcomes = append_to_store(
        state.store.clone(),
        Some(std::sync::Arc::clone(state.detections.screening())),
        records,
    )
    .await?;
    Ok(draft.answer(outcomes))
}

/// Which accounts a caller's records may be written to.
struct WritableAccounts {
    account_id: String,
    /// Keys of the default account (the platform operator, and imports) may write any
    /// account; other tenants only their own, so no tenant can plant events in another.
    may_write_any_account: bool,
}

/// An ingest's response so far, and the request index and event ID of each record sent
/// to the store, in order.
struct ResponseDraft {
    response: IngestResponse,
    indexes: Vec<usize>,
    event_ids: Vec<String>,
}

impl WritableAccounts {
    fn of(state: &AppState, caller: &Caller) -> WritableAccounts {
        WritableAccounts {
            account_id: caller.account_id.clone(),
            may_write_any_account: caller.account_id == state.config.account_id,
        }
    }

    /// Refuses, in `response`, the records of accounts the caller may not write; the
    /// others are returned to be appended.
    fn writable(
        &self,
        parsed_records: Vec<(usize, opentrail_event::EventRecord)>,
        mut response: IngestResponse,
    ) -> (ResponseDraft, Vec<opentrail_event::EventRecord>) {
        let mut indexes = Vec::with_capacity(parsed_records.len());
        let mut event_ids = Vec::with_capacity(parsed_records.len());
        let mut records = Vec::with_capacity(parsed_records.len());
        for (index, record) in parsed_records {
            if !self.may_write_any_account && record.account_id != self.account_id {
                response.failed.push(IngestFailure {
                    index,
                    error_code: entry_codes::INVALID_RECIPIENT.into(),
                    message: format!(
                        "recipientAccountId {} is not the account of this key ({}).",
                        record.account_id, self.account_id
                    ),
                });
                continue;
            }
            indexes.push(index);
            event_ids.push(record.event_id.clone());
            records.push(record);
        }
        let draft = ResponseDraft {
            response,
            indexes,
            event_ids,
        };
        (draft, records)
    }
}

impl ResponseDraft {
    /// The response, completed with what the store accepted or found duplicate.
    fn answer(self, outcomes: Vec<AppendOutcome>) -> IngestResponse {
        let mut response = self.response;
        let entries = self.indexes.into_iter().zip(self.event_ids);
        for ((index, event_id), outcome) in entries.zip(outcomes) {
            let entry = IngestedEvent { index, event_id };
            match outcome {
                AppendOutcome::Stored { .. } => response.accepted.push(entry),
                AppendOutcome::Duplicate { .. } => response.duplicates.push(entry),
            }
        }
        response.failed.sort_by_key(|failure| failure.index);
        response
    }
}

/// `GET /v1/events`: several filters at once, time range, paging.
pub async fn lookup(
    State(state): State<AppState>,
    call: CallContext,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query_text = query.unwrap_or_default();
    let result = lookup_page(&state, &call.caller, &query_text).await;
    call.record(
        "LookupEvents",
        Some(serde_json::json!({ "query": query_text })),
        result.as_ref().err(),
    )
    .await;
    let body = result?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

async fn lookup_page(
    state: &AppState,
    caller: &Caller,
    query_text: &str,
) -> Result<Vec<u8>, ApiError> {
    caller.require_read()?;
    let lookup = NativeLookup::from_query(query_text)?;
    let query = native_query(state, caller, &lookup)?;
    let page = run_lookup(state, query).await?;
    let next = page
        .next
        .map(|cursor| lookup.encode_cursor(&cursor.to_bytes()));
    Ok(lookup_response_body(
        page.events.iter().map(|event| event.record.json.as_str()),
        next.as_deref(),
    ))
}

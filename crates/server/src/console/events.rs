//! The console's data endpoints, over the same store queries as `GET /v1/events`.
//!
//! Every endpoint takes the native lookup's query string (the filter names of
//! `opentrail_protocol::native`, `start`, `end`, `limit`, `cursor`, `region`, `account`,
//! `category`), parsed by the same [`NativeLookup`] and scoped by the same
//! [`scoped_account`], plus console-only parameters:
//!
//! - `errors=1`: only events with an `errorCode`. The index cannot express "any value",
//!   so this filters the store's pages, reading at most [`ERRORS_ONLY_SCAN_MAX`] events
//!   per request; a short page then still has a `nextCursor`.
//! - `after=SEQ` (tail): events appended to the log after sequence number `SEQ`.
//! - `format=csv|json` (export).
//!
//! Endpoints:
//! - `GET /console/api/events` → `{"events":[row…],"nextCursor","tailSeq"}`: a page of
//!   table rows, newest first. The first page also says where the log ended *before* the
//!   page was read (`tailSeq`), so the live tail misses nothing in between.
//! - `GET /console/api/events/tail?after=SEQ` → `{"events":[row…],"tailSeq","behind"}`:
//!   what was appended since, matching the view. It follows the log, not event time, so
//!   a late event with an old `eventTime` shows up live too. When more than
//!   [`TAIL_SCAN_MAX`] entries arrived since, it skips to the end of the log and adds the
//!   view's newest page instead (`behind`: some events may be missing in between, and
//!   the page offers a reload).
//! - `GET /console/api/event?account=…&id=…` → the stored record, verbatim.
//! - `GET /console/api/export?format=csv|json` → every matching event (no page cap),
//!   streamed page by page through a small channel, so memory stays bounded whatever
//!   the size. JSON export is `{"Records":[…]}`, which `POST /v1/events` accepts back.
//!
//! Self-audit: a view's first page, a detail and an export are recorded
//! (`LookupEvents`, `LookupEvents`, `ExportEvents`). Further pages and the tail's polls
//! are not: a page open for an hour would otherwise write 3,600 records about itself.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::channel::{Channel, Sender};
use opentrail_event::{EventRecord, FilterField};
use opentrail_protocol::AwsError;
use opentrail_protocol::native::{MAX_PAGE_EVENTS, NativeLookup};
use opentrail_store::{LookupQuery, PageCursor, StoredEvent};
use serde::Serialize;

use crate::api_error::ApiError;
use crate::audit::CallContext;
use crate::auth::Caller;
use crate::lookup::{native_query, run_lookup, scoped_account};
use crate::state::AppState;

/// Events per store query when a request reads more than one page (errors-only, export).
const STORE_PAGE_EVENTS: usize = MAX_PAGE_EVENTS;
/// Events an errors-only page may read before it answers with what it found.
pub const ERRORS_ONLY_SCAN_MAX: usize = 10_000;
/// Log entries one tail request reads.
pub const TAIL_SCAN_MAX: usize = 2_000;
/// Export chunks waiting for a slow client; with one page per chunk this bounds memory.
const EXPORT_CHUNKS_BUFFERED: usize = 2;

const MILLISECONDS_PER_DAY: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// A console request's query: the native lookup plus the console-only parameters.
#[derive(Debug, Clone)]
pub struct ConsoleQuery {
    pub lookup: NativeLookup,
    pub errors_only: bool,
    pub after_seq: Option<u64>,
    pub format: Option<ExportFormat>,
}

impl ConsoleQuery {
    pub fn parse(raw: &str) -> Result<ConsoleQuery, ApiError> {
        let mut native = Vec::new();
        let mut errors_only = false;
        let mut after_seq = None;
        let mut format = None;
        for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "errors" => {
                    errors_only = match value {
                        "1" | "true" => true,
                        "" | "0" | "false" => false,
                        _ => return Err(validation("errors must be 1 or 0.")),
                    }
                }
                "after" => {
                    after_seq = Some(value.parse::<u64>().map_err(|_| {
                        validation("after must be a sequence number (the tailSeq of an answer).")
                    })?);
                }
                "format" => {
                    format = Some(match value {
                        "csv" => ExportFormat::Csv,
                        "json" => ExportFormat::Json,
                        _ => return Err(validation("format must be csv or json.")),
                    });
                }
                _ => native.push(pair),
            }
        }
        Ok(ConsoleQuery {
            lookup: NativeLookup::from_query(&native.join("&"))?,
            errors_only,
            after_seq,
            format,
        })
    }

    /// The store query and the event filter this console query means for `caller`.
    fn resolve(&self, state: &AppState, caller: &Caller) -> Result<Resolved, ApiError> {
        let query = native_query(state, caller, &self.lookup)?;
        let selection = Selection {
            account_id: query.account_id.clone(),
            region: self.lookup.region.clone(),
            insight: self.lookup.insight,
            filters: self.lookup.filters.clone(),
            start_ms: self.lookup.start_ms,
            end_ms: self.lookup.end_ms,
            errors_only: self.errors_only,
        };
        Ok(Resolved { query, selection })
    }
}

struct Resolved {
    query: LookupQuery,
    selection: Selection,
}

/// Which events a console view shows, as a predicate on one record: what the store
/// query selects, for events read from the log instead of the index (the tail).
#[derive(Debug, Clone)]
pub struct Selection {
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub insight: bool,
    pub filters: Vec<(FilterField, String)>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub errors_only: bool,
}

impl Selection {
    pub fn matches(&self, record: &EventRecord) -> bool {
        if self
            .account_id
            .as_ref()
            .is_some_and(|account| *account != record.account_id)
            || self
                .region
                .as_ref()
                .is_some_and(|region| *region != record.region)
            || (record.attributes.event_category == "Insight") != self.insight
            || self
                .start_ms
                .is_some_and(|start| record.event_time_ms < start)
            || self.end_ms.is_some_and(|end| record.event_time_ms > end)
            || (self.errors_only && !has_error(record))
        {
            return false;
        }
        if self.filters.is_empty() {
            return true;
        }
        // Exactly the values the index holds for this record, so the tail agrees with
        // the pages about what matches.
        let values = record.attributes.index_values();
        self.filters
            .iter()
            .all(|(field, value)| values.contains(&(*field, value.as_str())))
    }
}

fn has_error(record: &EventRecord) -> bool {
    record
        .attributes
        .error_code
        .as_deref()
        .is_some_and(|code| !code.is_empty())
}

fn position_of(event: &StoredEvent) -> PageCursor {
    PageCursor {
        event_time_ms: event.record.event_time_ms,
        seq: event.seq,
    }
}

/// One table row: what the Event history table shows, derived by the same rules as the
/// lookup attributes (so the user name shown is the one a filter matches).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    seq: u64,
    event_id: &'a str,
    event_time: String,
    event_time_ms: i64,
    event_name: &'a str,
    event_source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    resources: Vec<RowResource<'a>>,
    #[serde(rename = "sourceIPAddress", skip_serializing_if = "Option::is_none")]
    source_ip_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoked_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_id: Option<&'a str>,
    account_id: &'a str,
    region: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RowResource<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    resource_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    short_name: Option<&'a str>,
}

fn row(event: &StoredEvent) -> Row<'_> {
    let attributes = &event.record.attributes;
    Row {
        seq: event.seq,
        event_id: &attributes.event_id,
        event_time: format_time(event.record.event_time_ms),
        event_time_ms: event.record.event_time_ms,
        event_name: &attributes.event_name,
        event_source: &attributes.event_source,
        username: attributes.username.as_deref(),
        resources: attributes
            .resources
            .iter()
            .map(|resource| RowResource {
                resource_type: resource.resource_type.as_deref(),
                name: resource.resource_name.as_deref(),
                short_name: resource.short_name(),
            })
            .collect(),
        source_ip_address: attributes.source_ip_address.as_deref(),
        error_code: attributes.error_code.as_deref(),
        invoked_by: attributes.invoked_by.as_deref(),
        read_only: attributes.read_only,
        access_key_id: attributes.access_key_id.as_deref(),
        account_id: &event.record.account_id,
        region: &event.record.region,
    }
}

fn format_time(epoch_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(epoch_ms)
        .map(|time| time.to_string())
        .unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse<'a> {
    events: Vec<Row<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tail_seq: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TailResponse<'a> {
    events: Vec<Row<'a>>,
    tail_seq: u64,
    behind: bool,
}

/// `GET /console/api/events`.
pub async fn list(
    State(state): State<AppState>,
    call: CallContext,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    let result = list_body(&state, &call.caller, &raw).await;
    let first_page = !raw.split('&').any(|pair| pair.starts_with("cursor="));
    if first_page {
        let error = result.as_ref().err();
        call.record_read(
            "LookupEvents",
            serde_json::json!({ "console": "history", "query": raw }),
            error,
        )
        .await;
    }
    Ok(json_bytes_response(result?))
}

async fn list_body(state: &AppState, caller: &Caller, raw: &str) -> Result<Vec<u8>, ApiError> {
    caller.require_read()?;
    let query = ConsoleQuery::parse(raw)?;
    let resolved = query.resolve(state, caller)?;
    // Read before the page: whatever is appended after this point reaches the page's
    // tail, whatever before it is already visible to the lookup below.
    let tail_seq = if resolved.query.cursor.is_none() {
        Some(last_seq(state).await?)
    } else {
        None
    };
    let page = filtered_page(
        state,
        resolved.query,
        query.errors_only,
        query.lookup.limit,
        ERRORS_ONLY_SCAN_MAX,
    )
    .await?;
    let response = ListResponse {
        events: page.events.iter().map(row).collect(),
        next_cursor: page
            .next
            .map(|cursor| query.lookup.encode_cursor(&cursor.to_bytes())),
        tail_seq,
    };
    serde_json::to_vec(&response).map_err(ApiError::internal)
}

async fn last_seq(state: &AppState) -> Result<u64, ApiError> {
    let store = state.store.clone();
    let stats = tokio::task::spawn_blocking(move || store.stats())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(stats.last_seq)
}

pub struct FilteredPage {
    pub events: Vec<StoredEvent>,
    pub next: Option<PageCursor>,
}

/// One page of up to `limit` events; with `errors_only`, events without an error code
/// are skipped, reading at most about `scan_max` events before answering with what was
/// found and a cursor to continue from.
pub async fn filtered_page(
    state: &AppState,
    mut query: LookupQuery,
    errors_only: bool,
    limit: usize,
    scan_max: usize,
) -> Result<FilteredPage, ApiError> {
    if !errors_only {
        query.limit = limit;
        let page = run_lookup(state, query).await?;
        return Ok(FilteredPage {
            events: page.events,
            next: page.next,
        });
    }
    query.limit = STORE_PAGE_EVENTS;
    let mut kept = Vec::new();
    let mut scanned = 0usize;
    loop {
        let page = run_lookup(state, query.clone()).await?;
        let next = page.next;
        let count = page.events.len();
        for (index, event) in page.events.into_iter().enumerate() {
            scanned += 1;
            let position = position_of(&event);
            if has_error(&event.record) {
                kept.push(event);
            }
            if kept.len() >= limit {
                // The cursor resumes right after the last event looked at, so nothing
                // between it and the rest of this store page is skipped.
                let exhausted = index + 1 == count && next.is_none();
                return Ok(FilteredPage {
                    events: kept,
                    next: (!exhausted).then_some(position),
                });
            }
        }
        match next {
            None => {
                return Ok(FilteredPage {
                    events: kept,
                    next: None,
                });
            }
            Some(cursor) if scanned >= scan_max => {
                return Ok(FilteredPage {
                    events: kept,
                    next: Some(cursor),
                });
            }
            Some(cursor) => query.cursor = Some(cursor),
        }
    }
}

/// `GET /console/api/events/tail?after=SEQ&…`.
pub async fn tail(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    caller.require_read()?;
    let query = ConsoleQuery::parse(&raw.unwrap_or_default())?;
    let after = query.after_seq.ok_or_else(|| {
        validation("after is required: the tailSeq of the first page or of the last tail.")
    })?;
    let resolved = query.resolve(&state, &caller)?;
    let retention_floor_ms = jiff::Timestamp::now().as_millisecond().saturating_sub(
        i64::from(state.config.retention_days).saturating_mul(MILLISECONDS_PER_DAY),
    );
    let mut tail = read_tail(
        &state,
        after,
        TAIL_SCAN_MAX,
        resolved.selection,
        retention_floor_ms,
    )
    .await?;
    if tail.behind {
        // More arrived than one poll reads: jump to the end of the log and hand over the
        // view's newest page instead, so a busy server does not stall the live view. The
        // page says some events may be missing in between.
        let end = last_seq(&state).await?;
        let mut head_query = resolved.query;
        head_query.cursor = None;
        let head = filtered_page(
            &state,
            head_query,
            query.errors_only,
            query.lookup.limit,
            ERRORS_ONLY_SCAN_MAX,
        )
        .await?;
        tail.matched.extend(head.events);
        tail.tail_seq = tail.tail_seq.max(end);
    }
    let response = TailResponse {
        events: tail.matched.iter().map(row).collect(),
        tail_seq: tail.tail_seq,
        behind: tail.behind,
    };
    Ok(json_bytes_response(
        serde_json::to_vec(&response).map_err(ApiError::internal)?,
    ))
}

pub struct Tail {
    /// Newest first, like a page.
    pub matched: Vec<StoredEvent>,
    /// The last sequence number read: the next tail starts after it.
    pub tail_seq: u64,
    /// The scan limit was reached: more may be waiting.
    pub behind: bool,
}

/// Reads up to `scan_max` log entries after `after` and keeps those `selection` matches.
pub async fn read_tail(
    state: &AppState,
    after: u64,
    scan_max: usize,
    selection: Selection,
    retention_floor_ms: i64,
) -> Result<Tail, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let entries = store
            .read_log(after, scan_max)
            .map_err(ApiError::internal)?;
        let behind = entries.len() >= scan_max;
        let tail_seq = entries.last().map_or(after, |entry| entry.seq);
        let mut matched = Vec::new();
        for entry in entries {
            // Lookups hide expired events before retention removes them; so does this.
            if entry.ingest_time_ms < retention_floor_ms {
                continue;
            }
            let record = match EventRecord::from_stored(&entry.json) {
                Ok(record) => record,
                Err(error) => {
                    tracing::error!(seq = entry.seq, %error, "a log entry is not a valid record");
                    continue;
                }
            };
            if selection.matches(&record) {
                matched.push(StoredEvent {
                    seq: entry.seq,
                    ingest_time_ms: entry.ingest_time_ms,
                    record,
                });
            }
        }
        matched.sort_by_key(|event| std::cmp::Reverse(position_of(event)));
        Ok(Tail {
            matched,
            tail_seq,
            behind,
        })
    })
    .await
    .map_err(ApiError::internal)?
}

/// `GET /console/api/event?account=…&id=…`: one record as stored. `account` may be left
/// out; the event id is then looked up within the caller's scope.
pub async fn detail(
    State(state): State<AppState>,
    call: CallContext,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    let mut account = None;
    let mut event_id = None;
    for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode_component(value)?;
        match name {
            "account" if !value.is_empty() => account = Some(value),
            "id" if !value.is_empty() => event_id = Some(value),
            _ => {}
        }
    }
    let result = match &event_id {
        Some(event_id) => find_event(&state, &call.caller, account.as_deref(), event_id).await,
        None => Err(validation("id (the event ID) is required.")),
    };
    call.record_read(
        "LookupEvents",
        serde_json::json!({ "console": "detail", "eventId": event_id, "account": account }),
        result.as_ref().err(),
    )
    .await;
    Ok(json_bytes_response(result?.record.json.into_bytes()))
}

async fn find_event(
    state: &AppState,
    caller: &Caller,
    account: Option<&str>,
    event_id: &str,
) -> Result<StoredEvent, ApiError> {
    caller.require_read()?;
    let found = match account {
        // Another account's event answers like a missing one: existence does not leak.
        Some(account) if !caller.may_access_account(account, &state.config.account_id) => None,
        Some(account) => {
            let store = state.store.clone();
            let (account, event_id) = (account.to_owned(), event_id.to_owned());
            tokio::task::spawn_blocking(move || store.get_event(&account, &event_id))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?
        }
        None => {
            let mut query = LookupQuery::new(scoped_account(state, caller, None)?, None, 1);
            query.filters = vec![(FilterField::EventId, event_id.to_owned())];
            run_lookup(state, query).await?.events.into_iter().next()
        }
    };
    found.ok_or_else(|| {
        ApiError(AwsError::with_status(
            "EventNotFoundException",
            format!("No event {event_id} that this key may see."),
            404,
        ))
    })
}

#[derive(Debug, thiserror::Error)]
#[error("the export stopped: {0}")]
pub struct ExportAborted(String);

/// `GET /console/api/export?format=csv|json&…`: every event of the view, newest first.
pub async fn export(
    State(state): State<AppState>,
    call: CallContext,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    let prepared = prepare_export(&state, &call.caller, &raw);
    call.record_read(
        "ExportEvents",
        serde_json::json!({ "console": "export", "query": raw }),
        prepared.as_ref().err(),
    )
    .await;
    let (mut query, errors_only, format) = prepared?;
    // The whole view, whatever page the browser had reached.
    query.cursor = None;
    query.limit = STORE_PAGE_EVENTS;

    let (sender, body) = Channel::<Bytes, ExportAborted>::new(EXPORT_CHUNKS_BUFFERED);
    tokio::spawn(stream_export(state, query, errors_only, format, sender));

    let (content_type, extension) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Json => ("application/json", "json"),
    };
    let file_name = format!(
        "opentrail-events-{}.{extension}",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
    );
    let mut response = Response::new(Body::new(body));
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        response_headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

fn prepare_export(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<(LookupQuery, bool, ExportFormat), ApiError> {
    caller.require_read()?;
    let query = ConsoleQuery::parse(raw)?;
    let format = query
        .format
        .ok_or_else(|| validation("format must be csv or json."))?;
    let resolved = query.resolve(state, caller)?;
    Ok((resolved.query, query.errors_only, format))
}

/// Follows the store's cursors to the end, one page per chunk. A failure mid-way aborts
/// the body, so the download fails visibly instead of ending short.
async fn stream_export(
    state: AppState,
    mut query: LookupQuery,
    errors_only: bool,
    format: ExportFormat,
    mut sender: Sender<Bytes, ExportAborted>,
) {
    let opening: &[u8] = match format {
        ExportFormat::Csv => CSV_HEADER.as_bytes(),
        ExportFormat::Json => b"{\"Records\":[\n",
    };
    if sender.send_data(Bytes::from_static(opening)).await.is_err() {
        return;
    }
    let mut written = 0usize;
    loop {
        let page = match run_lookup(&state, query.clone()).await {
            Ok(page) => page,
            Err(error) => {
                sender.abort(ExportAborted(error.message().to_owned()));
                return;
            }
        };
        let mut chunk = Vec::with_capacity(page.events.len() * 512);
        for event in page
            .events
            .iter()
            .filter(|event| !errors_only || has_error(&event.record))
        {
            match format {
                ExportFormat::Csv => write_csv_row(&mut chunk, event),
                ExportFormat::Json => {
                    if written > 0 {
                        chunk.extend_from_slice(b",\n");
                    }
                    chunk.extend_from_slice(event.record.json.as_bytes());
                }
            }
            written += 1;
        }
        // A send error means the client went away: stop reading the store.
        if !chunk.is_empty() && sender.send_data(Bytes::from(chunk)).await.is_err() {
            return;
        }
        match page.next {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    if format == ExportFormat::Json {
        let _ = sender.send_data(Bytes::from_static(b"\n]}\n")).await;
    }
    metrics::counter!("opentrail_console_exported_events_total").increment(written as u64);
}

pub const CSV_HEADER: &str = "Event time,Event name,User name,Event source,Resource type,Resource name,Source IP address,Error code,Invoked by,Read only,Access key ID,AWS region,Account ID,Event ID\r\n";

fn write_csv_row(out: &mut Vec<u8>, event: &StoredEvent) {
    let attributes = &event.record.attributes;
    let join = |values: Vec<&str>| values.join(", ");
    let resource_types = join(
        attributes
            .resources
            .iter()
            .filter_map(|resource| resource.resource_type.as_deref())
            .collect(),
    );
    let resource_names = join(
        attributes
            .resources
            .iter()
            .filter_map(|resource| resource.resource_name.as_deref())
            .collect(),
    );
    let read_only = attributes.read_only_text().unwrap_or("");
    let event_time = format_time(event.record.event_time_ms);
    let fields: [&str; 14] = [
        &event_time,
        &attributes.event_name,
        attributes.username.as_deref().unwrap_or(""),
        &attributes.event_source,
        &resource_types,
        &resource_names,
        attributes.source_ip_address.as_deref().unwrap_or(""),
        attributes.error_code.as_deref().unwrap_or(""),
        attributes.invoked_by.as_deref().unwrap_or(""),
        read_only,
        attributes.access_key_id.as_deref().unwrap_or(""),
        &event.record.region,
        &event.record.account_id,
        &attributes.event_id,
    ];
    for (index, field) in fields.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_csv_field(out, field);
    }
    out.extend_from_slice(b"\r\n");
}

/// RFC 4180 quoting, and a leading `'` on text a spreadsheet would run as a formula:
/// event fields come from whoever produced the event, so they are untrusted.
pub fn write_csv_field(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        out.push(b'\'');
    }
    for byte in value.bytes() {
        if byte == b'"' {
            out.push(b'"');
        }
        out.push(byte);
    }
    out.push(b'"');
}

fn json_bytes_response(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn validation(message: &str) -> ApiError {
    ApiError(AwsError::validation(message))
}

fn decode_component(raw: &str) -> Result<String, ApiError> {
    String::from_utf8(opentrail_protocol::sigv4::percent_decode(
        &raw.replace('+', " "),
    ))
    .map_err(|_| validation("A query parameter is not valid percent-encoded UTF-8."))
}

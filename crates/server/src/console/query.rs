//! The console's Query page: SQL over the events (CloudTrail Lake) from the browser.
//!
//! Starting, describing and cancelling a query go through the Lake API's own handler
//! ([`handle_operation`]) with the session's [`Caller`], so the console applies exactly
//! the API's rules: a read or admin key runs queries, a statement may only name the
//! caller's own enabled event data stores, another account's query id is "not found",
//! and the errors are CloudTrail's. Results are read from the same store of query results
//! the API pages through, after the API's DescribeQuery has checked the id and account.
//!
//! - `GET /console/api/query/data-stores[?refresh=1]` → `{"dataStores":[{id,name,arn,status,
//!   retentionDays,multiRegion,createdMs}]}`: the account's event data stores.
//! - `GET /console/api/query/samples` → `{"samples":[{name,title,description,sql,
//!   parameters:[{name,description}]}]}`: the sample queries of `opentrail_lake::samples`
//!   (`$EDS_ID` stands for the chosen store's id, `{{PARAM}}` for a value the user fills
//!   in); `GET /console/api/query/sample-sql?name&store&PARAM=…` → `{"sql"}`, one rendered.
//! - `POST /console/api/query/start` `{"statement"}` → `{"queryId"}` (StartQuery).
//! - `GET /console/api/query/status?id=ID` → `{queryId,statement,status,createdMs,
//!   errorMessage?,statistics:{eventsMatched,eventsScanned,bytesScanned,executionMs}}`
//!   (DescribeQuery).
//! - `GET /console/api/query/results?id=ID[&offset=N][&limit=N]` → `{queryId,status,
//!   columns,rows,offset,totalRows}`: a page of rows (at most [`RESULTS_PAGE_MAX`]), every
//!   value text or `null` for SQL NULL.
//! - `GET /console/api/query/download?id=ID&format=csv|json` → every row as an attachment.
//! - `POST /console/api/query/cancel` `{"queryId"}` → `{queryId,status}` (CancelQuery).
//! - `GET /console/api/query/history[?store=ID]` → `{"queries":[…]}`: the account's recent
//!   queries over its stores, newest first (at most [`HISTORY_MAX`]).
//! - `GET /console/api/query/saved` → `{"savedQueries":[{id,name,statement,savedAt}]}`;
//!   `POST /console/api/query/saved` `{"name","statement"}` saves (a name already saved is
//!   replaced); `DELETE /console/api/query/saved/{id}` forgets one. Saved queries belong
//!   to the account (any of its read or admin keys sees and changes them) and are kept in
//!   `DATA_DIR/console/saved-queries.json`, replaced atomically on every change.
//!
//! Self-audit records what changes something or takes data away: `StartQuery`,
//! `CancelQuery`, a download (`GetQueryResults`), `SaveQuery` and `DeleteSavedQuery`, and
//! `ListEventDataStores` when the page opens. The status polls and result pages of a
//! query the page itself started are not recorded: a running query would otherwise write a
//! record about itself every half second.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path as FilePath, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use opentrail_lake::queries::{QueryError, QueryRecord};
use opentrail_lake::samples::{SampleQuery, TABLE_PLACEHOLDER, sample_queries};
use opentrail_protocol::AwsError;
use opentrail_protocol::error::codes;
use opentrail_protocol::json11::Operation;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ConsoleState;
use crate::api_error::ApiError;
use crate::audit::CallContext;
use crate::auth::Caller;
use crate::routes::lake::handle_operation;
use crate::state::AppState;

/// The most rows one results page carries.
pub const RESULTS_PAGE_MAX: usize = 1_000;
const RESULTS_PAGE_DEFAULT: usize = 100;
/// The most queries the history lists.
pub const HISTORY_MAX: usize = 50;
/// Saved queries per account, and the longest name.
pub const SAVED_QUERIES_MAX: usize = 100;
pub const SAVED_NAME_CHARS_MAX: usize = 128;
/// As StartQuery's `QueryStatement`.
pub const STATEMENT_CHARS_MAX: usize = 10_000;

/// Where saved queries are kept, under the data directory.
pub const SAVED_QUERIES_FILE: &str = "console/saved-queries.json";
const SAVED_QUERIES_VERSION: u32 = 1;

// ------------------------------------------------------------------ event data stores

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataStoreItem {
    id: String,
    name: String,
    arn: String,
    status: &'static str,
    retention_days: u32,
    multi_region: bool,
    created_ms: i64,
}

/// `GET /console/api/query/data-stores`.
pub async fn data_stores(
    State(state): State<AppState>,
    call: CallContext,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let result = list_data_stores(&state, &call.caller);
    if !is_refresh(raw.as_deref()) {
        call.record(
            Operation::ListEventDataStores.name(),
            Some(json!({ "console": "query" })),
            result.as_ref().err(),
        )
        .await;
    }
    result.map(|stores| Json(json!({ "dataStores": stores })))
}

fn list_data_stores(state: &AppState, caller: &Caller) -> Result<Vec<DataStoreItem>, ApiError> {
    caller.require_read()?;
    Ok(state
        .lake
        .data_stores
        .list(&caller.account_id, &caller.region)
        .into_iter()
        .map(|store| DataStoreItem {
            arn: store.arn(),
            status: store.status.as_str(),
            retention_days: store.retention_days,
            multi_region: store.multi_region_enabled,
            created_ms: store.created_ms,
            id: store.id,
            name: store.name,
        })
        .collect())
}

fn is_refresh(raw: Option<&str>) -> bool {
    raw.is_some_and(|query| query.split('&').any(|pair| pair == "refresh=1"))
}

// ------------------------------------------------------------------ samples

/// A sample query as the editor offers it.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub name: String,
    pub title: String,
    pub description: String,
    /// `$EDS_ID` for the event data store's id, `{{NAME}}` for each parameter.
    pub sql: String,
    pub parameters: Vec<SampleParameter>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SampleParameter {
    pub name: String,
    pub description: String,
}

/// `GET /console/api/query/samples`: [`opentrail_lake::samples::sample_queries`], the
/// samples the CLI and the docs offer too.
pub async fn samples(caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require_read()?;
    let samples: Vec<Sample> = sample_queries()
        .into_iter()
        .map(|sample| Sample {
            name: sample.name.to_owned(),
            title: sample.title,
            description: sample.description,
            sql: sample.sql.to_owned(),
            parameters: sample
                .parameters
                .into_iter()
                .map(|parameter| SampleParameter {
                    name: parameter.name,
                    description: parameter.description,
                })
                .collect(),
        })
        .collect();
    Ok(Json(json!({ "samples": samples })))
}

/// `GET /console/api/query/sample-sql?name=NAME[&store=ID][&PARAM=value…]` →
/// `{"sql"}`: the sample rendered by [`SampleQuery::render`] (`$EDS_ID` replaced by the
/// store's id, or kept without one; each value quoted as the sample's SQL needs), so the
/// page fills in the samples exactly as the lake crate renders them.
pub async fn sample_sql(
    caller: Caller,
    Query(mut query): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require_read()?;
    let name = query
        .remove("name")
        .ok_or_else(|| validation("name is required.".to_owned()))?;
    let table = query
        .remove("store")
        .filter(|store| !store.is_empty())
        .unwrap_or_else(|| TABLE_PLACEHOLDER.to_owned());
    let sample: SampleQuery = sample_queries()
        .into_iter()
        .find(|sample| sample.name == name)
        .ok_or_else(|| {
            ApiError(AwsError::with_status(
                "ResourceNotFoundException",
                format!("No sample query {name}."),
                404,
            ))
        })?;
    let parameters: Vec<(&str, &str)> = query
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let sql = sample
        .render(&table, &parameters)
        .map_err(|error| validation(error.to_string()))?;
    Ok(Json(json!({ "sql": sql })))
}

// ------------------------------------------------------------------ start, status, cancel

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    statement: String,
}

/// `POST /console/api/query/start`: StartQuery.
pub async fn start(
    State(state): State<AppState>,
    call: CallContext,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request = serde_json::from_slice::<StartRequest>(&body).map_err(|error| {
        validation(format!(
            "The request body must be {{\"statement\"}}: {error}"
        ))
    });
    let result = match &request {
        Ok(request) => run(
            &state,
            &call.caller,
            Operation::StartQuery,
            &json!({ "QueryStatement": request.statement }),
        )
        .await
        .map(|answer| json!({ "queryId": answer["QueryId"] })),
        Err(error) => Err(error.clone()),
    };
    let statement = request.as_ref().ok().map(|request| &request.statement);
    call.record(
        Operation::StartQuery.name(),
        Some(json!({ "console": "query", "queryStatement": statement })),
        result.as_ref().err(),
    )
    .await;
    result.map(Json)
}

#[derive(Debug, Deserialize)]
pub struct IdQuery {
    id: String,
}

/// `GET /console/api/query/status?id=ID`: DescribeQuery.
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<IdQuery>,
) -> Result<Json<Value>, ApiError> {
    let described = describe(&state, &caller, &query.id).await?;
    let statistics = &described["QueryStatistics"];
    let created_ms = statistics["CreationTime"]
        .as_f64()
        .map(|seconds| (seconds * 1000.0).round() as i64);
    Ok(Json(json!({
        "queryId": described["QueryId"],
        "statement": described["QueryString"],
        "status": described["QueryStatus"],
        "createdMs": created_ms,
        "errorMessage": described.get("ErrorMessage"),
        "statistics": {
            "eventsMatched": statistics["EventsMatched"],
            "eventsScanned": statistics["EventsScanned"],
            "bytesScanned": statistics["BytesScanned"],
            "executionMs": statistics["ExecutionTimeInMillis"],
        },
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CancelRequest {
    query_id: String,
}

/// `POST /console/api/query/cancel`: CancelQuery.
pub async fn cancel(
    State(state): State<AppState>,
    call: CallContext,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request = serde_json::from_slice::<CancelRequest>(&body)
        .map_err(|error| validation(format!("The request body must be {{\"queryId\"}}: {error}")));
    let result = match &request {
        Ok(request) => run(
            &state,
            &call.caller,
            Operation::CancelQuery,
            &json!({ "QueryId": request.query_id }),
        )
        .await
        .map(|answer| json!({ "queryId": answer["QueryId"], "status": answer["QueryStatus"] })),
        Err(error) => Err(error.clone()),
    };
    let query_id = request.as_ref().ok().map(|request| &request.query_id);
    call.record(
        Operation::CancelQuery.name(),
        Some(json!({ "console": "query", "queryId": query_id })),
        result.as_ref().err(),
    )
    .await;
    result.map(Json)
}

/// One Lake operation through the API's handler with the session's caller; its answer.
async fn run(
    state: &AppState,
    caller: &Caller,
    operation: Operation,
    request: &Value,
) -> Result<Value, ApiError> {
    let body = serde_json::to_vec(request).map_err(ApiError::internal)?;
    let wire = handle_operation(&state.lake, caller, operation, &body).await?;
    if wire.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&wire.body).map_err(ApiError::internal)
}

/// DescribeQuery: the API's checks of the role, the id's shape and the account.
async fn describe(state: &AppState, caller: &Caller, id: &str) -> Result<Value, ApiError> {
    run(
        state,
        caller,
        Operation::DescribeQuery,
        &json!({ "QueryId": id }),
    )
    .await
}

// ------------------------------------------------------------------ results

#[derive(Debug, Deserialize)]
pub struct ResultsQuery {
    id: String,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// `GET /console/api/query/results?id=ID&offset=N&limit=N`.
pub async fn results(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ResultsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(RESULTS_PAGE_DEFAULT);
    if !(1..=RESULTS_PAGE_MAX).contains(&limit) {
        return Err(validation(format!(
            "limit must be from 1 to {RESULTS_PAGE_MAX}."
        )));
    }
    let (record, results) = read_results(&state, &caller, &query.id).await?;
    let total = results.rows.len();
    let offset = query.offset.unwrap_or(0).min(total);
    let end = offset.saturating_add(limit).min(total);
    Ok(Json(json!({
        "queryId": record.id,
        "status": record.status.as_str(),
        "errorMessage": record.error_message,
        "columns": results.columns,
        "rows": &results.rows[offset..end],
        "offset": offset,
        "totalRows": total,
    })))
}

/// The query's record and rows, once the API's DescribeQuery has accepted the id.
async fn read_results(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(QueryRecord, Arc<opentrail_lake::queries::QueryResults>), ApiError> {
    describe(state, caller, id).await?;
    state
        .lake
        .queries
        .results(&caller.account_id, id)
        .await
        .map_err(|error| match error {
            // Expired between the two calls.
            QueryError::NotFound(_) => {
                ApiError(AwsError::new(codes::QUERY_ID_NOT_FOUND, error.to_string()))
            }
            other => ApiError::internal(other),
        })
}

#[derive(Debug, Deserialize)]
pub struct DownloadQuery {
    id: String,
    format: String,
}

/// `GET /console/api/query/download?id=ID&format=csv|json`: every row, as a file.
pub async fn download(
    State(state): State<AppState>,
    call: CallContext,
    Query(query): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let result = match query.format.as_str() {
        "csv" | "json" => read_results(&state, &call.caller, &query.id).await,
        _ => Err(validation("format must be csv or json.".to_owned())),
    };
    call.record_read(
        Operation::GetQueryResults.name(),
        json!({ "console": "query-download", "queryId": query.id, "format": query.format }),
        result.as_ref().err(),
    )
    .await;
    let (record, results) = result?;
    let (bytes, content_type) = if query.format == "csv" {
        (results_csv(&results), "text/csv; charset=utf-8")
    } else {
        let document = json!({
            "queryId": record.id,
            "statement": record.statement,
            "columns": results.columns,
            "rows": results.rows,
        });
        (
            serde_json::to_vec_pretty(&document).map_err(ApiError::internal)?,
            "application/json",
        )
    };
    let short_id = record.id.get(..8).unwrap_or(&record.id);
    let file_name = format!("opentrail-query-{short_id}.{}", query.format);
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// RFC 4180: a header line of the column names, then the rows; every field quoted, `"`
/// doubled, CRLF line ends, SQL NULL as an empty field.
pub fn results_csv(results: &opentrail_lake::queries::QueryResults) -> Vec<u8> {
    let mut out = Vec::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        for (index, cell) in cells.enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(cell.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"\r\n");
    };
    line(&mut results.columns.iter().map(String::as_str));
    for row in &results.rows {
        line(&mut row.iter().map(|cell| cell.as_deref().unwrap_or("")));
    }
    out
}

// ------------------------------------------------------------------ history

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    store: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    query_id: String,
    statement: String,
    status: &'static str,
    created_ms: i64,
    data_store_ids: Vec<String>,
    events_matched: u64,
    events_scanned: u64,
    bytes_scanned: u64,
    execution_ms: u64,
    result_rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

/// `GET /console/api/query/history[?store=ID]`: the account's recent queries.
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require_read()?;
    let stores = state
        .lake
        .data_stores
        .list(&caller.account_id, &caller.region);
    let mut seen = HashSet::new();
    let mut records: Vec<QueryRecord> = stores
        .iter()
        .filter(|store| query.store.as_deref().is_none_or(|id| id == store.id))
        .flat_map(|store| state.lake.queries.list(&caller.account_id, &store.id))
        // A query over two stores is listed under both.
        .filter(|record| seen.insert(record.id.clone()))
        .collect();
    records.sort_by(|a, b| {
        b.created_ms
            .cmp(&a.created_ms)
            .then_with(|| b.id.cmp(&a.id))
    });
    records.truncate(HISTORY_MAX);
    let queries: Vec<HistoryItem> = records
        .into_iter()
        .map(|record| HistoryItem {
            status: record.status.as_str(),
            query_id: record.id,
            statement: record.statement,
            created_ms: record.created_ms,
            data_store_ids: record.data_store_ids,
            events_matched: record.events_matched,
            events_scanned: record.events_scanned,
            bytes_scanned: record.bytes_scanned,
            execution_ms: record.execution_ms,
            result_rows: record.result_rows,
            error_message: record.error_message,
        })
        .collect();
    Ok(Json(json!({ "queries": queries })))
}

// ------------------------------------------------------------------ saved queries

/// One saved query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedQuery {
    pub id: String,
    pub name: String,
    pub statement: String,
    /// RFC 3339, UTC.
    pub saved_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedQueriesFile {
    version: u32,
    /// By account id; each account's by name.
    accounts: BTreeMap<String, Vec<SavedQuery>>,
}

/// The saved queries of every account, in one small file. Cheap to clone.
#[derive(Clone)]
pub struct SavedQueries {
    inner: Arc<SavedQueriesInner>,
}

struct SavedQueriesInner {
    path: PathBuf,
    /// Serialises read-modify-write, so two saves never lose one another.
    write_lock: Mutex<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum SavedQueryError {
    #[error("{0}")]
    Invalid(String),
    #[error("No saved query {0}.")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a saved queries file: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

impl SavedQueries {
    /// The saved queries of `DATA_DIR/console/saved-queries.json` (read when asked).
    pub fn new(data_dir: &FilePath) -> SavedQueries {
        SavedQueries {
            inner: Arc::new(SavedQueriesInner {
                path: data_dir.join(SAVED_QUERIES_FILE),
                write_lock: Mutex::new(()),
            }),
        }
    }

    fn read(&self) -> Result<SavedQueriesFile, SavedQueryError> {
        let path = &self.inner.path;
        match opentrail_durable::read_optional(path) {
            Ok(None) => Ok(SavedQueriesFile {
                version: SAVED_QUERIES_VERSION,
                accounts: BTreeMap::new(),
            }),
            Ok(Some(bytes)) => {
                let file: SavedQueriesFile =
                    serde_json::from_slice(&bytes).map_err(|error| SavedQueryError::Corrupt {
                        path: path.clone(),
                        detail: error.to_string(),
                    })?;
                if file.version > SAVED_QUERIES_VERSION {
                    return Err(SavedQueryError::Corrupt {
                        path: path.clone(),
                        detail: format!(
                            "version {} is newer than this server's {SAVED_QUERIES_VERSION}",
                            file.version
                        ),
                    });
                }
                Ok(file)
            }
            Err(source) => Err(SavedQueryError::Io {
                path: path.clone(),
                source,
            }),
        }
    }

    fn write(&self, file: &SavedQueriesFile) -> Result<(), SavedQueryError> {
        let path = &self.inner.path;
        let io = |source| SavedQueryError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let bytes =
            serde_json::to_vec_pretty(file).map_err(|error| io(std::io::Error::other(error)))?;
        opentrail_durable::write_atomically(path, &bytes).map_err(io)
    }

    /// The account's saved queries, by name. Blocking.
    pub fn list(&self, account_id: &str) -> Result<Vec<SavedQuery>, SavedQueryError> {
        Ok(self.read()?.accounts.remove(account_id).unwrap_or_default())
    }

    /// Saves `statement` as `name` for the account, replacing a query of that name.
    /// Blocking (fsync).
    pub fn save(
        &self,
        account_id: &str,
        name: &str,
        statement: &str,
        now: jiff::Timestamp,
    ) -> Result<SavedQuery, SavedQueryError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > SAVED_NAME_CHARS_MAX {
            return Err(SavedQueryError::Invalid(format!(
                "A saved query's name is 1 to {SAVED_NAME_CHARS_MAX} characters."
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(SavedQueryError::Invalid(
                "A saved query's name cannot contain control characters.".to_owned(),
            ));
        }
        if statement.trim().is_empty() || statement.chars().count() > STATEMENT_CHARS_MAX {
            return Err(SavedQueryError::Invalid(format!(
                "A saved query's statement is 1 to {STATEMENT_CHARS_MAX} characters."
            )));
        }
        let _writing = self
            .inner
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut file = self.read()?;
        file.version = SAVED_QUERIES_VERSION;
        let saved = file.accounts.entry(account_id.to_owned()).or_default();
        let saved_at = now.to_string();
        let query = match saved.iter_mut().find(|query| query.name == name) {
            Some(existing) => {
                existing.statement = statement.to_owned();
                existing.saved_at = saved_at;
                existing.clone()
            }
            None => {
                if saved.len() >= SAVED_QUERIES_MAX {
                    return Err(SavedQueryError::Invalid(format!(
                        "An account keeps at most {SAVED_QUERIES_MAX} saved queries; delete one first."
                    )));
                }
                let query = SavedQuery {
                    id: uuid::Uuid::new_v4().to_string(),
                    name: name.to_owned(),
                    statement: statement.to_owned(),
                    saved_at,
                };
                saved.push(query.clone());
                query
            }
        };
        saved.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        self.write(&file)?;
        Ok(query)
    }

    /// Forgets one of the account's saved queries. Blocking (fsync).
    pub fn delete(&self, account_id: &str, id: &str) -> Result<SavedQuery, SavedQueryError> {
        let _writing = self
            .inner
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut file = self.read()?;
        let saved = file
            .accounts
            .get_mut(account_id)
            .ok_or_else(|| SavedQueryError::NotFound(id.to_owned()))?;
        let index = saved
            .iter()
            .position(|query| query.id == id)
            .ok_or_else(|| SavedQueryError::NotFound(id.to_owned()))?;
        let removed = saved.remove(index);
        if saved.is_empty() {
            file.accounts.remove(account_id);
        }
        self.write(&file)?;
        Ok(removed)
    }
}

fn saved_error(error: SavedQueryError) -> ApiError {
    match error {
        SavedQueryError::Invalid(message) => validation(message),
        SavedQueryError::NotFound(_) => ApiError(AwsError::with_status(
            "ResourceNotFoundException",
            error.to_string(),
            404,
        )),
        other => ApiError::internal(other),
    }
}

/// Runs a blocking saved-queries call off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SavedQueryError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
        .map_err(saved_error)
}

/// `GET /console/api/query/saved`.
pub async fn saved_list(
    State(console): State<ConsoleState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_read()?;
    let saved = console.saved_queries.clone();
    let account = caller.account_id.clone();
    let queries = blocking(move || saved.list(&account)).await?;
    Ok(Json(json!({ "savedQueries": queries })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveRequest {
    name: String,
    statement: String,
}

/// `POST /console/api/query/saved` `{"name","statement"}`.
pub async fn saved_save(
    State(console): State<ConsoleState>,
    call: CallContext,
    body: Bytes,
) -> Result<Json<SavedQuery>, ApiError> {
    let request = serde_json::from_slice::<SaveRequest>(&body).map_err(|error| {
        validation(format!(
            "The request body must be {{\"name\", \"statement\"}}: {error}"
        ))
    });
    let result = match (call.caller.require_read(), &request) {
        (Err(error), _) => Err(error),
        (Ok(()), Err(error)) => Err(error.clone()),
        (Ok(()), Ok(request)) => {
            let saved = console.saved_queries.clone();
            let account = call.caller.account_id.clone();
            let name = request.name.clone();
            let statement = request.statement.clone();
            blocking(move || saved.save(&account, &name, &statement, jiff::Timestamp::now())).await
        }
    };
    call.record(
        "SaveQuery",
        Some(json!({
            "console": "query",
            "name": request.as_ref().ok().map(|request| &request.name),
            "queryStatement": request.as_ref().ok().map(|request| &request.statement),
        })),
        result.as_ref().err(),
    )
    .await;
    result.map(Json)
}

/// `DELETE /console/api/query/saved/{id}`.
pub async fn saved_delete(
    State(console): State<ConsoleState>,
    call: CallContext,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let result = match call.caller.require_read() {
        Err(error) => Err(error),
        Ok(()) => {
            let saved = console.saved_queries.clone();
            let account = call.caller.account_id.clone();
            let query_id = id.clone();
            blocking(move || saved.delete(&account, &query_id)).await
        }
    };
    call.record(
        "DeleteSavedQuery",
        Some(json!({
            "console": "query",
            "id": id,
            "name": result.as_ref().ok().map(|query| &query.name),
        })),
        result.as_ref().err(),
    )
    .await;
    result.map(|_| Json(json!({})))
}

fn validation(message: String) -> ApiError {
    ApiError(AwsError::validation(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_every_field_and_leaves_null_empty() {
        let results = opentrail_lake::queries::QueryResults {
            columns: vec!["name".into(), "n".into()],
            rows: vec![
                vec![Some("say \"hi\", world".into()), Some("2".into())],
                vec![None, Some("1".into())],
            ],
        };
        assert_eq!(
            String::from_utf8(results_csv(&results)).expect("utf-8"),
            "\"name\",\"n\"\r\n\"say \"\"hi\"\", world\",\"2\"\r\n\"\",\"1\"\r\n"
        );
    }

    #[test]
    fn saved_queries_are_per_account_replaced_by_name_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("dir");
        let saved = SavedQueries::new(dir.path());
        let now = jiff::Timestamp::now();
        assert_eq!(saved.list("111111111111").expect("list"), []);
        let first = saved
            .save("111111111111", " by source ", "SELECT 1", now)
            .expect("save");
        assert_eq!(first.name, "by source");
        saved
            .save("222222222222", "by source", "SELECT 2", now)
            .expect("other account");
        let replaced = saved
            .save("111111111111", "by source", "SELECT 3", now)
            .expect("replace");
        assert_eq!(replaced.id, first.id, "the same query, a new statement");

        let reopened = SavedQueries::new(dir.path());
        let mine = reopened.list("111111111111").expect("list");
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].statement, "SELECT 3");
        assert!(matches!(
            reopened.delete("222222222222", &first.id),
            Err(SavedQueryError::NotFound(_))
        ));
        reopened.delete("111111111111", &first.id).expect("delete");
        assert_eq!(reopened.list("111111111111").expect("list"), []);
        assert_eq!(reopened.list("222222222222").expect("list").len(), 1);

        for (name, statement) in [("", "SELECT 1"), ("x", " "), ("a\nb", "SELECT 1")] {
            assert!(matches!(
                reopened.save("111111111111", name, statement, now),
                Err(SavedQueryError::Invalid(_))
            ));
        }
    }
}

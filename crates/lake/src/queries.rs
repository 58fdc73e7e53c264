//! Lake queries as CloudTrail runs them: started, run in the background, described,
//! cancelled, and their results kept for [`QueryOptions::keep_for_ms`] (7 days).
//!
//! `start` plans the SQL before it answers, so a statement that is not one valid SELECT is
//! refused at once (as StartQuery does); execution then runs on a task of its own within
//! the time limit, the shared memory pool and a cap on result size. A query's record
//! (`DIR/<id>.json`) is written when it starts and when it ends, its rows
//! (`DIR/<id>.rows.json`) when it ends; a query that was running when the server stopped
//! reads as FAILED after the restart, and results past their 7 days are removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::catalog::{PostgresDescription, PostgresParameter, PostgresSession};
use crate::data_stores::EventDataStore;
use crate::engine::{Lake, LakeTable, QueryRun};
use crate::error::LakeError;
use crate::results::cell_text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueryStatus {
    Queued,
    Running,
    Finished,
    Failed,
    Cancelled,
    TimedOut,
}

impl QueryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryStatus::Queued => "QUEUED",
            QueryStatus::Running => "RUNNING",
            QueryStatus::Finished => "FINISHED",
            QueryStatus::Failed => "FAILED",
            QueryStatus::Cancelled => "CANCELLED",
            QueryStatus::TimedOut => "TIMED_OUT",
        }
    }

    pub fn parse(text: &str) -> Option<QueryStatus> {
        [
            QueryStatus::Queued,
            QueryStatus::Running,
            QueryStatus::Finished,
            QueryStatus::Failed,
            QueryStatus::Cancelled,
            QueryStatus::TimedOut,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }

    pub fn is_active(self) -> bool {
        matches!(self, QueryStatus::Queued | QueryStatus::Running)
    }
}

/// Everything known about one query but its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryRecord {
    pub id: String,
    pub account_id: String,
    /// The event data stores the statement names.
    pub data_store_ids: Vec<String>,
    pub statement: String,
    pub status: QueryStatus,
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub events_matched: u64,
    pub events_scanned: u64,
    pub bytes_scanned: u64,
    pub execution_ms: u64,
    pub result_rows: u64,
}

/// A finished (or stopped) query's rows: every value as text, `None` for SQL NULL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryResults {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// CloudTrail's limit per account is 10.
    pub max_active_per_account: usize,
    pub time_limit: Duration,
    /// Past this many bytes of result text the query fails: results are kept whole.
    pub max_result_bytes: usize,
    pub keep_for_ms: i64,
}

impl Default for QueryOptions {
    fn default() -> QueryOptions {
        QueryOptions {
            max_active_per_account: 10,
            time_limit: Duration::from_secs(3600),
            max_result_bytes: 256 * 1024 * 1024,
            keep_for_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Lake(#[from] LakeError),
    #[error("This account already runs {0} queries; wait for one to finish or cancel one.")]
    TooManyActive(usize),
    #[error("Query {0} was not found.")]
    NotFound(String),
    #[error("Query {id} is already {status}.", status = .status.as_str())]
    NotActive { id: String, status: QueryStatus },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The queries of one server. Cheap to clone.
#[derive(Clone)]
pub struct Queries {
    inner: Arc<Inner>,
}

struct Inner {
    lake: Lake,
    /// Queries plan and run on threads of their own, so a query's computing never holds
    /// up the threads that answer requests.
    runtime: Option<tokio::runtime::Runtime>,
    dir: PathBuf,
    options: QueryOptions,
    entries: Mutex<HashMap<String, Entry>>,
    /// The last results read, so paging through them reads the file once.
    last_results: Mutex<Option<(String, Arc<QueryResults>)>>,
}

struct Entry {
    record: QueryRecord,
    running: Option<tokio::task::AbortHandle>,
}

impl Queries {
    /// Loads the queries kept in `dir`; any that was still running is marked FAILED.
    /// Blocking.
    pub fn open(
        lake: Lake,
        dir: &Path,
        options: QueryOptions,
        now_ms: i64,
    ) -> Result<Queries, QueryError> {
        let io = |source| QueryError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut entries = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let is_record = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(".json") && !name.ends_with(".rows.json"));
            if !is_record {
                continue;
            }
            let record: QueryRecord = match std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            {
                Some(record) => record,
                None => {
                    tracing::warn!(path = %path.display(), "ignoring an unreadable query record");
                    continue;
                }
            };
            let mut record: QueryRecord = record;
            if record.status.is_active() {
                record.status = QueryStatus::Failed;
                record.error_message =
                    Some("The server stopped while the query was running.".to_owned());
                write_json(&path, &record)?;
            }
            entries.insert(
                record.id.clone(),
                Entry {
                    record,
                    running: None,
                },
            );
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(lake.options().target_partitions.max(1))
            .thread_name("lake-query")
            .enable_time()
            .build()
            .map_err(io)?;
        let queries = Queries {
            inner: Arc::new(Inner {
                runtime: Some(runtime),
                lake,
                dir: dir.to_path_buf(),
                options,
                entries: Mutex::new(entries),
                last_results: Mutex::new(None),
            }),
        };
        queries.forget_expired(now_ms)?;
        Ok(queries)
    }

    fn runtime(&self) -> &tokio::runtime::Handle {
        match &self.inner.runtime {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the runtime is only taken when the last handle drops"),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Plans `statement` over `stores` (each registered under its id) and runs it in the
    /// background; answers the query's id.
    pub async fn start(
        &self,
        account_id: &str,
        statement: &str,
        stores: &[EventDataStore],
        now_ms: i64,
    ) -> Result<String, QueryError> {
        let limit = self.inner.options.max_active_per_account;
        let active = |entries: &HashMap<String, Entry>| {
            entries
                .values()
                .filter(|entry| entry.record.account_id == account_id)
                .filter(|entry| entry.record.status.is_active())
                .count()
        };
        if active(&self.entries()) >= limit {
            return Err(QueryError::TooManyActive(limit));
        }
        let tables: Vec<LakeTable> = stores
            .iter()
            .map(|store| LakeTable {
                name: store.id.clone(),
                scope: store.scope(now_ms),
            })
            .collect();
        let lake = self.inner.lake.clone();
        let sql = statement.to_owned();
        let run = self
            .runtime()
            .spawn(async move { lake.start(&sql, &tables).await })
            .await
            .map_err(|error| LakeError::Execution(error.to_string()))??;
        let record = QueryRecord {
            id: uuid::Uuid::new_v4().to_string(),
            account_id: account_id.to_owned(),
            data_store_ids: stores.iter().map(|store| store.id.clone()).collect(),
            statement: statement.to_owned(),
            status: QueryStatus::Running,
            created_ms: now_ms,
            error_message: None,
            events_matched: 0,
            events_scanned: 0,
            bytes_scanned: 0,
            execution_ms: 0,
            result_rows: 0,
        };
        let id = record.id.clone();
        {
            // Checked again under the lock that inserts, so concurrent starts cannot pass
            // the limit together.
            let mut entries = self.entries();
            if active(&entries) >= limit {
                return Err(QueryError::TooManyActive(limit));
            }
            entries.insert(
                id.clone(),
                Entry {
                    record: record.clone(),
                    running: None,
                },
            );
        }
        self.persist(&record).await?;
        let queries = self.clone();
        let task_id = id.clone();
        let task = self
            .runtime()
            .spawn(async move { queries.run(task_id, run).await });
        if let Some(entry) = self.entries().get_mut(&id)
            && entry.record.status.is_active()
        {
            entry.running = Some(task.abort_handle());
        }
        Ok(id)
    }

    /// Runs a Postgres client's `statement` at once on the query threads, within the same
    /// limits, with its parameters bound to `parameters`, and answers its schema and rows:
    /// for clients that wait for the rows. Nothing is kept. Stores are tables by id and by
    /// name, described by the session's `pg_catalog` and `information_schema`.
    pub async fn run_now(
        &self,
        statement: &str,
        stores: &[EventDataStore],
        session: &PostgresSession,
        parameters: &[PostgresParameter],
        now_ms: i64,
    ) -> Result<(SchemaRef, QueryResults), QueryError> {
        let tables = tables_by_id_and_name(stores, now_ms);
        let lake = self.inner.lake.clone();
        let sql = statement.to_owned();
        let session = session.clone();
        let parameters = parameters.to_vec();
        let mut run = self
            .runtime()
            .spawn(async move {
                lake.start_postgres(&sql, &tables, &session, &parameters)
                    .await
            })
            .await
            .map_err(|error| LakeError::Execution(error.to_string()))??;
        let lake = self.inner.lake.clone();
        let options = self.inner.options.clone();
        let drained = self
            .runtime()
            .spawn(async move {
                let mut results = QueryResults {
                    columns: run.columns.clone(),
                    rows: Vec::new(),
                };
                let schema = run.stream.schema();
                match tokio::time::timeout(
                    options.time_limit,
                    drain(&lake, &mut run, &mut results, options.max_result_bytes),
                )
                .await
                {
                    Ok(Ok(())) => Ok((schema, results)),
                    Ok(Err(error)) => Err(error),
                    Err(_) => Err(LakeError::TimedOut {
                        seconds: options.time_limit.as_secs(),
                    }),
                }
            })
            .await
            .map_err(|error| LakeError::Execution(error.to_string()))??;
        Ok(drained)
    }

    /// The columns and parameters of a Postgres client's `statement`, without running it.
    pub async fn describe_statement(
        &self,
        statement: &str,
        stores: &[EventDataStore],
        session: &PostgresSession,
        now_ms: i64,
    ) -> Result<PostgresDescription, QueryError> {
        let tables = tables_by_id_and_name(stores, now_ms);
        let lake = self.inner.lake.clone();
        let sql = statement.to_owned();
        let session = session.clone();
        Ok(self
            .runtime()
            .spawn(async move { lake.describe_postgres(&sql, &tables, &session).await })
            .await
            .map_err(|error| LakeError::Execution(error.to_string()))??)
    }

    async fn run(&self, id: String, mut run: QueryRun) {
        let started = Instant::now();
        let options = &self.inner.options;
        let mut results = QueryResults {
            columns: run.columns.clone(),
            rows: Vec::new(),
        };
        let drained = tokio::time::timeout(
            options.time_limit,
            drain(
                &self.inner.lake,
                &mut run,
                &mut results,
                options.max_result_bytes,
            ),
        )
        .await;
        let (mut status, mut error_message) = match drained {
            Ok(Ok(())) => (QueryStatus::Finished, None),
            Ok(Err(error)) => (QueryStatus::Failed, Some(error.to_string())),
            Err(_) => (
                QueryStatus::TimedOut,
                Some(
                    LakeError::TimedOut {
                        seconds: options.time_limit.as_secs(),
                    }
                    .to_string(),
                ),
            ),
        };
        // The rows go to disk before the status says they are there.
        let results = Arc::new(results);
        let rows_path = self.rows_path(&id);
        let to_write = Arc::clone(&results);
        let written = tokio::task::spawn_blocking(move || write_json(&rows_path, &*to_write)).await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::error!(query = %id, "writing the query's results failed");
            status = QueryStatus::Failed;
            error_message = Some("The query's results could not be written to disk.".to_owned());
        }
        let counters = &run.counters;
        let finished = {
            let mut entries = self.entries();
            let Some(entry) = entries.get_mut(&id) else {
                return;
            };
            // Cancelled meanwhile: the cancel already wrote the record.
            if !entry.record.status.is_active() {
                return;
            }
            let record = &mut entry.record;
            record.status = status;
            record.error_message = error_message;
            record.events_matched = run.events_matched();
            record.events_scanned = counters.events_scanned.load(Ordering::Relaxed);
            record.bytes_scanned = counters.bytes_scanned.load(Ordering::Relaxed);
            record.execution_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            record.result_rows = results.rows.len() as u64;
            entry.running = None;
            record.clone()
        };
        *self
            .inner
            .last_results
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((id.clone(), results));
        if let Err(error) = self.persist(&finished).await {
            tracing::error!(query = %id, %error, "writing the query's record failed");
        }
    }

    /// Stops an active query: CANCELLED, with no rows.
    pub async fn cancel(&self, account_id: &str, id: &str) -> Result<QueryRecord, QueryError> {
        let record = {
            let mut entries = self.entries();
            let entry = entries
                .get_mut(id)
                .filter(|entry| entry.record.account_id == account_id)
                .ok_or_else(|| QueryError::NotFound(id.to_owned()))?;
            if !entry.record.status.is_active() {
                return Err(QueryError::NotActive {
                    id: id.to_owned(),
                    status: entry.record.status,
                });
            }
            if let Some(running) = entry.running.take() {
                running.abort();
            }
            entry.record.status = QueryStatus::Cancelled;
            entry.record.clone()
        };
        self.persist(&record).await?;
        Ok(record)
    }

    pub fn describe(&self, account_id: &str, id: &str) -> Result<QueryRecord, QueryError> {
        self.entries()
            .get(id)
            .map(|entry| entry.record.clone())
            .filter(|record| record.account_id == account_id)
            .ok_or_else(|| QueryError::NotFound(id.to_owned()))
    }

    /// The query's record and rows; no rows while it runs or when it was cancelled.
    pub async fn results(
        &self,
        account_id: &str,
        id: &str,
    ) -> Result<(QueryRecord, Arc<QueryResults>), QueryError> {
        let record = self.describe(account_id, id)?;
        if record.status.is_active() || record.status == QueryStatus::Cancelled {
            return Ok((record, Arc::new(QueryResults::default())));
        }
        if let Some((cached_id, results)) = &*self
            .inner
            .last_results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            && cached_id == id
        {
            return Ok((record, Arc::clone(results)));
        }
        let path = self.rows_path(id);
        let loaded = tokio::task::spawn_blocking(move || -> Result<QueryResults, QueryError> {
            let io = |source| QueryError::Io {
                path: path.clone(),
                source,
            };
            let bytes = std::fs::read(&path).map_err(io)?;
            serde_json::from_slice(&bytes).map_err(|error| io(std::io::Error::other(error)))
        })
        .await
        .map_err(|error| QueryError::Io {
            path: self.rows_path(id),
            source: std::io::Error::other(error),
        })??;
        let results = Arc::new(loaded);
        *self
            .inner
            .last_results
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((id.to_owned(), Arc::clone(&results)));
        Ok((record, results))
    }

    /// The account's queries over `data_store_id`, newest first.
    pub fn list(&self, account_id: &str, data_store_id: &str) -> Vec<QueryRecord> {
        let mut records: Vec<QueryRecord> = self
            .entries()
            .values()
            .map(|entry| &entry.record)
            .filter(|record| record.account_id == account_id)
            .filter(|record| record.data_store_ids.iter().any(|id| id == data_store_id))
            .cloned()
            .collect();
        records.sort_by(|a, b| {
            b.created_ms
                .cmp(&a.created_ms)
                .then_with(|| b.id.cmp(&a.id))
        });
        records
    }

    /// Removes finished queries older than the keep period, with their files. Blocking.
    pub fn forget_expired(&self, now_ms: i64) -> Result<usize, QueryError> {
        let keep_for_ms = self.inner.options.keep_for_ms;
        let expired: Vec<String> = self
            .entries()
            .values()
            .filter(|entry| !entry.record.status.is_active())
            .filter(|entry| now_ms - entry.record.created_ms >= keep_for_ms)
            .map(|entry| entry.record.id.clone())
            .collect();
        for id in &expired {
            for path in [self.record_path(id), self.rows_path(id)] {
                opentrail_durable::remove_if_present(&path)
                    .map_err(|source| QueryError::Io { path, source })?;
            }
            self.entries().remove(id);
        }
        Ok(expired.len())
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.inner.dir.join(format!("{id}.json"))
    }

    fn rows_path(&self, id: &str) -> PathBuf {
        self.inner.dir.join(format!("{id}.rows.json"))
    }

    async fn persist(&self, record: &QueryRecord) -> Result<(), QueryError> {
        let path = self.record_path(&record.id);
        let record = record.clone();
        tokio::task::spawn_blocking(move || write_json(&path, &record))
            .await
            .map_err(|error| QueryError::Io {
                path: PathBuf::from(&error.to_string()),
                source: std::io::Error::other(error),
            })?
    }
}

/// Each store as two tables, one by its id and one by its name.
fn tables_by_id_and_name(stores: &[EventDataStore], now_ms: i64) -> Vec<LakeTable> {
    stores
        .iter()
        .flat_map(|store| {
            [store.id.clone(), store.name.clone()].map(|name| LakeTable {
                name,
                scope: store.scope(now_ms),
            })
        })
        .collect()
}

/// Reads the whole stream into `results`, failing once the text passes `max_bytes`.
async fn drain(
    lake: &Lake,
    run: &mut QueryRun,
    results: &mut QueryResults,
    max_bytes: usize,
) -> Result<(), LakeError> {
    let mut bytes = 0usize;
    while let Some(batch) = run.stream.next().await {
        let batch = batch.map_err(|error| lake.classify(error))?;
        for row in 0..batch.num_rows() {
            let cells = batch
                .columns()
                .iter()
                .map(|column| cell_text(column, row))
                .collect::<Result<Vec<_>, _>>()?;
            bytes += cells.iter().flatten().map(String::len).sum::<usize>();
            if bytes > max_bytes {
                return Err(LakeError::ResultTooLarge { max_bytes });
            }
            results.rows.push(cells);
        }
        // Batches can come back ready one after another: let the other queries run.
        tokio::task::yield_now().await;
    }
    Ok(())
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime from async code panics; the last handle may go there.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), QueryError> {
    let bytes = serde_json::to_vec(value).map_err(|error| QueryError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(error),
    })?;
    opentrail_durable::write_atomically(path, &bytes).map_err(|source| QueryError::Io {
        path: path.to_path_buf(),
        source,
    })
}

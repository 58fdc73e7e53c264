//! An event data store as a DataFusion table: [`EventsTable`] plans a scan of the store's
//! sources (sealed segments and unsealed heads), pruned by event time and account, and
//! reads each one on a blocking thread, from its Parquet columns when the query needs no
//! other column, from its records otherwise. A segment read for its records is narrowed
//! first, by its postings ([`indexed_term`]) or by the query's filters its columns can
//! answer ([`ColumnPrefilter`]), so only the records of rows that pass are read and
//! parsed. Events the store's retention dropped are read from the Parquet archive
//! ([`archived_parts`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use datafusion::arrow::array::TimestampMillisecondArray;
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, DataFusionError, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use opentrail_event::{EventRecord, FilterField};
use opentrail_store::{ScanSource, ScanSources, Store};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::statistics::Statistics;

use crate::error::LakeError;
use crate::records::records_batch;
use crate::schema::{SEGMENT_COLUMNS, lake_schema};
use crate::selectors::EventSelector;

/// Which events a table holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableScope {
    /// Only events whose `recipientAccountId` is this; `None`: every account.
    pub account_id: Option<String>,
    /// Only events one of these admits (an event data store's); empty: every event.
    pub selectors: Vec<EventSelector>,
    /// Only events whose `eventTime` is at or after this (an event data store's retention).
    pub min_event_time_ms: Option<i64>,
}

/// What the scans of one query read, for its statistics.
#[derive(Debug, Default)]
pub struct ScanCounters {
    /// Events read (after retention, before the query's own filters).
    pub events_scanned: AtomicU64,
    /// Bytes read: Parquet column chunks, or record JSON.
    pub bytes_scanned: AtomicU64,
}

/// Rows read per batch.
const BATCH_ROWS: usize = 8_192;
/// The category of Insights records, which event data stores of events do not hold.
const INSIGHT_CATEGORY: &str = "Insight";

pub struct EventsTable {
    store: Store,
    archive_dir: Option<PathBuf>,
    scope: TableScope,
    counters: Arc<ScanCounters>,
}

impl fmt::Debug for EventsTable {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EventsTable")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl EventsTable {
    pub fn new(
        store: Store,
        archive_dir: Option<PathBuf>,
        scope: TableScope,
        counters: Arc<ScanCounters>,
    ) -> EventsTable {
        EventsTable {
            store,
            archive_dir,
            scope,
            counters,
        }
    }
}

#[async_trait]
impl TableProvider for EventsTable {
    fn schema(&self) -> SchemaRef {
        lake_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        // Filters on event time prune whole sources, and filters a segment's columns or
        // postings can answer choose the records read; DataFusion still applies every
        // filter.
        Ok(filters
            .iter()
            .map(|filter| {
                if EventTimeBounds::default().narrowed_by(filter).is_some()
                    || answerable_by_columns(filter)
                    || indexed_term(filter).is_some()
                {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let schema = lake_schema();
        let projected = match projection {
            Some(indices) => Arc::new(schema.project(indices)?),
            None => schema,
        };
        let bounds = filters
            .iter()
            .fold(EventTimeBounds::default(), |bounds, filter| {
                bounds.narrowed_by(filter).unwrap_or(bounds)
            });
        let from_columns = projected
            .fields()
            .iter()
            .all(|field| SEGMENT_COLUMNS.contains(&field.name().as_str()));
        let (prefilter, indexed_terms) = match from_columns {
            true => (None, Vec::new()),
            false => (
                ColumnPrefilter::plan(state, filters)?.map(Arc::new),
                filters.iter().filter_map(indexed_term).collect(),
            ),
        };
        let store = self.store.clone();
        let archive_dir = self.archive_dir.clone();
        let (sources, archived) = tokio::task::spawn_blocking(move || {
            let sources = store.scan_sources()?;
            let archived = match &archive_dir {
                Some(dir) => archived_parts(dir, sources.expired_through_seq, &bounds)?,
                None => Vec::new(),
            };
            Ok::<_, LakeError>((sources, archived))
        })
        .await
        .map_err(|error| DataFusionError::External(Box::new(error)))??;
        let read = ReadPlan {
            bounds,
            from_columns,
            prefilter,
            indexed_terms: Arc::new(indexed_terms),
        };
        let partitions = self.partitions(
            sources,
            archived,
            &read,
            &projected,
            state.config().target_partitions().max(1),
        );
        let exec =
            StreamingTableExec::try_new(projected, partitions, None, Vec::new(), false, limit)?;
        Ok(Arc::new(exec))
    }
}

impl EventsTable {
    /// The sources a scan must read, spread over `count` partitions by their event counts.
    fn partitions(
        &self,
        sources: ScanSources,
        archived: Vec<ArchivedPart>,
        read: &ReadPlan,
        projected: &SchemaRef,
        count: usize,
    ) -> Vec<Arc<dyn PartitionStream>> {
        let visibility = Visibility {
            expired_through_seq: sources.expired_through_seq,
            last_seq: sources.last_seq,
            ingest_cutoff_ms: sources.ingest_cutoff_ms,
            account_id: self.scope.account_id.clone(),
        };
        let mut wanted: Vec<ScanSource> = sources
            .sources
            .into_iter()
            .filter(|source| {
                read.bounds
                    .overlaps(source.min_event_time_ms, source.max_event_time_ms)
            })
            .filter(|source| {
                self.scope
                    .account_id
                    .as_ref()
                    .is_none_or(|account| source.accounts.contains(account))
            })
            .flat_map(|source| split_head(source, count))
            .collect();
        // Largest first onto the least loaded partition.
        wanted.sort_by_key(|source| std::cmp::Reverse(source.events));
        let mut parts: Vec<SourcesPartition> = (0..count.min(wanted.len() + archived.len()).max(1))
            .map(|_| SourcesPartition {
                store: self.store.clone(),
                schema: Arc::clone(projected),
                sources: Vec::new(),
                archived: Vec::new(),
                read: read.clone(),
                visibility: visibility.clone(),
                counters: Arc::clone(&self.counters),
            })
            .collect();
        for source in wanted {
            let lightest = parts
                .iter_mut()
                .min_by_key(|part| part.sources.iter().map(|source| source.events).sum::<u64>());
            if let Some(part) = lightest {
                part.sources.push(source);
            }
        }
        // Archived files are read as records, each file on one partition, in turn.
        let part_count = parts.len();
        for (index, file) in archived.into_iter().enumerate() {
            parts[index % part_count].archived.push(file);
        }
        parts
            .into_iter()
            .map(|part| Arc::new(part) as Arc<dyn PartitionStream>)
            .collect()
    }
}

/// One part file of the Parquet archive, open, so that a compaction that removes it cannot
/// pull it away from the query reading it.
#[derive(Debug)]
struct ArchivedPart {
    path: PathBuf,
    file: std::fs::File,
}

/// The archive's part files whose events the store has dropped (seqs at or below
/// `expired_through_seq`: the store holds every later one, so no event is read twice) and
/// whose event date the query's time bounds reach; a merge's inputs are left out while
/// its output is there.
fn archived_parts(
    archive_dir: &Path,
    expired_through_seq: u64,
    bounds: &EventTimeBounds,
) -> Result<Vec<ArchivedPart>, LakeError> {
    if expired_through_seq == 0 || !archive_dir.is_dir() {
        return Ok(Vec::new());
    }
    // A compaction may replace files between the listing and their opening, and retention
    // may remove a partition's directory while it is listed; the listing taken again
    // holds the merged file and no longer the directory.
    let mut attempts = 0;
    'listing: loop {
        attempts += 1;
        let vanished =
            |source: &std::io::Error| source.kind() == std::io::ErrorKind::NotFound && attempts < 5;
        let mut found = Vec::new();
        let partitions = match opentrail_archive::list_partitions(archive_dir) {
            Err(opentrail_archive::ArchiveError::Io { source, .. }) if vanished(&source) => {
                continue 'listing;
            }
            listed => listed?,
        };
        for partition in partitions {
            // Days the query does not reach are not even listed.
            let reached = parse_time_ms(&partition.event_date)
                .is_none_or(|day_ms| bounds.overlaps(day_ms, day_ms + DAY_MS - 1));
            if !reached {
                continue;
            }
            let files = match opentrail_archive::list_part_files(&partition) {
                Err(opentrail_archive::ArchiveError::Io { source, .. }) if vanished(&source) => {
                    continue 'listing;
                }
                listed => listed?,
            };
            for part in &files {
                if part.first_seq > expired_through_seq
                    || opentrail_archive::is_superseded(part, &files)
                {
                    continue;
                }
                match std::fs::File::open(&part.path) {
                    Ok(file) => found.push(ArchivedPart {
                        path: part.path.clone(),
                        file,
                    }),
                    Err(source) if vanished(&source) => continue 'listing,
                    Err(source) => {
                        return Err(LakeError::ArchiveFile {
                            path: part.path.clone(),
                            source,
                        });
                    }
                }
            }
        }
        return Ok(found);
    }
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// How a scan reads its sources, the same for every partition.
#[derive(Debug, Clone)]
struct ReadPlan {
    bounds: EventTimeBounds,
    /// Every column the query needs is among a segment's Parquet columns.
    from_columns: bool,
    /// When it needs others: what a segment's columns can decide before its records are read.
    prefilter: Option<Arc<ColumnPrefilter>>,
    /// Equalities a segment's postings answer (see [`indexed_term`]); when there are any,
    /// a segment's records are read from its postings rather than through `prefilter`.
    indexed_terms: Arc<Vec<(FilterField, String)>>,
}

/// The query's filters that a segment's Parquet columns answer, as one predicate over
/// those columns. A scan that must read records (the query wants `eventjson`,
/// `useridentity`…) evaluates it on the columns first and reads only the records of
/// the rows that pass: `WHERE eventName = 'ConsoleLogin'` over 10M events reads the
/// logins, not every record. The columns derive their values exactly as records do, so
/// the rows that pass are those DataFusion's own filter keeps.
struct ColumnPrefilter {
    /// The columns the predicate reads, in the order it refers to them by.
    schema: SchemaRef,
    predicate: Arc<dyn PhysicalExpr>,
}

impl fmt::Debug for ColumnPrefilter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ColumnPrefilter")
            .field("predicate", &self.predicate.to_string())
            .finish()
    }
}

impl ColumnPrefilter {
    fn plan(
        state: &dyn Session,
        filters: &[Expr],
    ) -> datafusion::common::Result<Option<ColumnPrefilter>> {
        let answerable = filters
            .iter()
            .filter(|filter| answerable_by_columns(filter))
            .map(|filter| unqualified(filter.clone()))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        let Some(predicate) = conjunction(answerable) else {
            return Ok(None);
        };
        let referenced: Vec<String> = predicate
            .column_refs()
            .into_iter()
            .map(|column| column.name.clone())
            .collect();
        let schema = lake_schema();
        let indices: Vec<usize> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, field)| referenced.contains(field.name()))
            .map(|(index, _)| index)
            .collect();
        let schema = Arc::new(schema.project(&indices)?);
        let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
        let predicate = state.create_physical_expr(predicate, &df_schema)?;
        Ok(Some(ColumnPrefilter { schema, predicate }))
    }

    /// Which rows of a batch of a segment's columns pass (a null counts as not passing,
    /// as in `WHERE`).
    fn passing(&self, batch: &RecordBatch) -> Result<Vec<bool>, LakeError> {
        let input = columns_as(batch, &self.schema)?;
        let verdicts = self
            .predicate
            .evaluate(&input)
            .and_then(|verdicts| verdicts.into_array(input.num_rows()))
            .map_err(|error| LakeError::Execution(error.to_string()))?;
        let verdicts = downcast::<BooleanArray>(&verdicts, "the prefilter's verdicts")?;
        Ok((0..verdicts.len())
            .map(|row| verdicts.is_valid(row) && verdicts.value(row))
            .collect())
    }
}

/// Whether a segment's columns alone can decide a filter: it reads only those columns,
/// and gives the same answer each time it is evaluated.
fn answerable_by_columns(filter: &Expr) -> bool {
    let columns = filter.column_refs();
    !columns.is_empty()
        && columns
            .iter()
            .all(|column| SEGMENT_COLUMNS.contains(&column.name.as_str()))
        && !filter.is_volatile()
        && !datafusion::common::tree_node::TreeNode::exists(filter, |expr| {
            Ok(matches!(
                expr,
                Expr::ScalarSubquery(_)
                    | Expr::InSubquery(_)
                    | Expr::Exists(_)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::Placeholder(_)
            ))
        })
        .unwrap_or(true)
}

/// An equality with a non-empty text on a field the store indexes, as the same value a
/// column shows: `userIdentity.arn`, `accessKeyId` and `invokedBy` (which no segment
/// column holds), and `eventName`, `eventSource`, `errorCode`, `sourceIPAddress`,
/// `eventCategory` (the columns and the index take these from the same attribute; the
/// account and region come from elsewhere, and the Parquet prefilter answers them). A segment's postings for the term
/// list every event that can match, so `WHERE userIdentity.arn = '…'` reads one
/// principal's records instead of parsing every record in range, and several such
/// equalities read only the rows every one of them lists.
fn indexed_term(filter: &Expr) -> Option<(FilterField, String)> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = filter
    else {
        return None;
    };
    let (field, literal) = match (indexed_field(left), indexed_field(right)) {
        (Some(field), None) => (field, right),
        (None, Some(field)) => (field, left),
        _ => return None,
    };
    match literal.as_ref() {
        Expr::Literal(
            ScalarValue::Utf8(Some(text))
            | ScalarValue::Utf8View(Some(text))
            | ScalarValue::LargeUtf8(Some(text)),
            _,
        ) if !text.is_empty() => Some((field, text.clone())),
        _ => None,
    }
}

/// The indexed field a column or `useridentity.<name>` (DataFusion's `get_field`) reads.
fn indexed_field(expr: &Expr) -> Option<FilterField> {
    let call = match expr {
        Expr::Column(column) => {
            return match column.name.as_str() {
                "eventname" => Some(FilterField::EventName),
                "eventsource" => Some(FilterField::EventSource),
                "errorcode" => Some(FilterField::ErrorCode),
                "sourceipaddress" => Some(FilterField::SourceIpAddress),
                "eventcategory" => Some(FilterField::EventCategory),
                _ => None,
            };
        }
        Expr::ScalarFunction(call) => call,
        _ => return None,
    };
    if call.func.name() != "get_field" {
        return None;
    }
    match call.args.as_slice() {
        [
            Expr::Column(column),
            Expr::Literal(ScalarValue::Utf8(Some(name)), _),
        ] if column.name == "useridentity" => match name.as_str() {
            "arn" => Some(FilterField::UserArn),
            "accesskeyid" => Some(FilterField::AccessKeyId),
            "invokedby" => Some(FilterField::InvokedBy),
            _ => None,
        },
        _ => None,
    }
}

/// A filter whose columns are named without the table's qualifier, as the prefilter's
/// schema names them.
fn unqualified(filter: Expr) -> datafusion::common::Result<Expr> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    filter
        .transform(|expr| {
            Ok(match expr {
                Expr::Column(column) if column.relation.is_some() => Transformed::yes(
                    Expr::Column(datafusion::common::Column::new_unqualified(column.name)),
                ),
                other => Transformed::no(other),
            })
        })
        .map(|transformed| transformed.data)
}

/// A head (read as records, each one parsed) in `count` seq ranges, so that every
/// partition parses a share of it; a segment as it is.
fn split_head(source: ScanSource, count: usize) -> Vec<ScanSource> {
    let seqs = source.last_seq.saturating_sub(source.first_seq) + 1;
    if source.columns.is_some() || count < 2 || seqs < 2 * BATCH_ROWS as u64 {
        return vec![source];
    }
    let per_part = seqs.div_ceil(count as u64);
    (0..count as u64)
        .map(|part| source.first_seq + part * per_part)
        .take_while(|first_seq| *first_seq <= source.last_seq)
        .map(|first_seq| {
            let last_seq = (first_seq + per_part - 1).min(source.last_seq);
            ScanSource {
                first_seq,
                last_seq,
                min_event_time_ms: source.min_event_time_ms,
                max_event_time_ms: source.max_event_time_ms,
                // Proportional: the partitions are balanced by it.
                events: source.events * (last_seq - first_seq + 1) / seqs,
                accounts: source.accounts.clone(),
                insights: source.insights,
                columns: None,
            }
        })
        .collect()
}

/// What a table may show: retention, the published log, and the table's account.
#[derive(Debug, Clone)]
struct Visibility {
    expired_through_seq: u64,
    last_seq: u64,
    ingest_cutoff_ms: i64,
    account_id: Option<String>,
}

impl Visibility {
    fn shows_seq(&self, seq: u64, ingest_time_ms: i64) -> bool {
        seq > self.expired_through_seq
            && seq <= self.last_seq
            && ingest_time_ms >= self.ingest_cutoff_ms
    }

    fn shows_event(&self, account_id: &str, category: &str) -> bool {
        category != INSIGHT_CATEGORY
            && self
                .account_id
                .as_deref()
                .is_none_or(|wanted| wanted == account_id)
    }
}

/// Some of the sources, read one after the other on a blocking thread.
struct SourcesPartition {
    store: Store,
    schema: SchemaRef,
    sources: Vec<ScanSource>,
    archived: Vec<ArchivedPart>,
    read: ReadPlan,
    visibility: Visibility,
    counters: Arc<ScanCounters>,
}

impl fmt::Debug for SourcesPartition {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SourcesPartition")
            .field("sources", &self.sources.len())
            .field("archived", &self.archived.len())
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

/// A source as one partition's thread reads it.
struct SourceToRead {
    first_seq: u64,
    last_seq: u64,
    /// A sealed segment (a head otherwise).
    sealed: bool,
    /// What its rows must be checked for, as far as the source's own metadata tells.
    checks: RowChecks,
    columns: Option<std::fs::File>,
}

/// The [`Visibility`] checks a segment's rows need. Most segments are wholly visible: one
/// account, no Insights records, every seq published and none expired, so their rows need
/// none, and their visibility columns are not even read.
#[derive(Debug, Clone, Copy)]
struct RowChecks {
    seq: bool,
    ingest_time: bool,
    account: bool,
    category: bool,
}

impl RowChecks {
    fn of(source: &ScanSource, visibility: &Visibility) -> RowChecks {
        RowChecks {
            seq: source.first_seq <= visibility.expired_through_seq
                || source.last_seq > visibility.last_seq,
            // Refined by the Parquet statistics when the segment is read.
            ingest_time: true,
            account: visibility
                .account_id
                .as_ref()
                .is_some_and(|shown| source.accounts.iter().any(|account| account != shown)),
            category: source.insights,
        }
    }

    fn any(&self) -> bool {
        self.seq || self.ingest_time || self.account || self.category
    }

    /// The columns these checks read.
    fn columns(&self) -> impl Iterator<Item = &'static str> {
        [
            (self.seq, "seq"),
            (self.ingest_time, "ingesttime"),
            (self.account, "recipientaccountid"),
            (self.category, "eventcategory"),
        ]
        .into_iter()
        .filter(|(needed, _)| *needed)
        .map(|(_, column)| column)
    }
}

impl PartitionStream for SourcesPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _context: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let sender = builder.tx();
        let reader = PartitionReader {
            store: self.store.clone(),
            schema: Arc::clone(&self.schema),
            bounds: self.read.bounds,
            visibility: self.visibility.clone(),
            counters: Arc::clone(&self.counters),
        };
        let from_columns = self.read.from_columns;
        let prefilter = self.read.prefilter.clone();
        let indexed_terms = Arc::clone(&self.read.indexed_terms);
        let reads_columns = from_columns || (prefilter.is_some() && indexed_terms.is_empty());
        let sources: Result<Vec<SourceToRead>, LakeError> = self
            .sources
            .iter()
            .map(|source| {
                let columns = match (&source.columns, reads_columns) {
                    (Some(file), true) => Some(file.try_clone().map_err(LakeError::Io)?),
                    _ => None,
                };
                Ok(SourceToRead {
                    first_seq: source.first_seq,
                    last_seq: source.last_seq,
                    sealed: source.columns.is_some(),
                    checks: RowChecks::of(source, &self.visibility),
                    columns,
                })
            })
            .collect();
        let archived: Result<Vec<ArchivedPart>, LakeError> = self
            .archived
            .iter()
            .map(|part| {
                let file = part
                    .file
                    .try_clone()
                    .map_err(|source| LakeError::ArchiveFile {
                        path: part.path.clone(),
                        source,
                    })?;
                Ok(ArchivedPart {
                    path: part.path.clone(),
                    file,
                })
            })
            .collect();
        builder.spawn_blocking(move || {
            let mut emit = |batch: RecordBatch| -> Result<bool, LakeError> {
                // A closed channel: the query ended (limit reached, cancelled).
                Ok(sender.blocking_send(Ok(batch)).is_ok())
            };
            let archived = archived?;
            for source in sources? {
                let more = match (source.columns, &prefilter) {
                    (Some(file), _) if from_columns => {
                        reader.read_columns(file, source.checks, &mut emit)?
                    }
                    _ if source.sealed && !indexed_terms.is_empty() => reader
                        .read_indexed_records(
                            source.first_seq,
                            source.last_seq,
                            &indexed_terms,
                            &mut emit,
                        )?,
                    (Some(file), Some(prefilter)) => {
                        reader.read_passing_records(file, source.checks, prefilter, &mut emit)?
                    }
                    _ => reader.read_records(source.first_seq, source.last_seq, &mut emit)?,
                };
                if !more {
                    return Ok(());
                }
            }
            for part in archived {
                if !reader.read_archived(part, &mut emit)? {
                    break;
                }
            }
            Ok(())
        });
        builder.build()
    }
}

struct PartitionReader {
    store: Store,
    schema: SchemaRef,
    bounds: EventTimeBounds,
    visibility: Visibility,
    counters: Arc<ScanCounters>,
}

impl PartitionReader {
    /// Reads a segment's Parquet columns; false when the query wants no more.
    fn read_columns(
        &self,
        file: std::fs::File,
        checks: RowChecks,
        emit: &mut impl FnMut(RecordBatch) -> Result<bool, LakeError>,
    ) -> Result<bool, LakeError> {
        let wanted: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|field| field.name().as_str())
            .collect();
        let (reader, checks) = self.open_columns(file, checks, &wanted)?;
        for batch in reader {
            let mut batch = batch?;
            if checks.any() {
                let shown = self.shown_rows_of_columns(&batch, checks)?;
                batch = filter_record_batch(&batch, &shown)?;
            }
            self.counters
                .events_scanned
                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            if !emit(columns_as(&batch, &self.schema)?)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads the records of a segment's rows that pass `prefilter` on its columns; false
    /// when the query wants no more. `Store::read_seqs` reads a batch's records in the
    /// order the segment lays them out, whatever the order of its Parquet rows, so
    /// consecutive reads mostly hit the block just decoded.
    fn read_passing_records(
        &self,
        file: std::fs::File,
        checks: RowChecks,
        prefilter: &ColumnPrefilter,
        emit: &mut impl FnMut(RecordBatch) -> Result<bool, LakeError>,
    ) -> Result<bool, LakeError> {
        let mut wanted: Vec<&str> = prefilter
            .schema
            .fields()
            .iter()
            .map(|field| field.name().as_str())
            .collect();
        wanted.push("seq");
        let (reader, checks) = self.open_columns(file, checks, &wanted)?;
        for batch in reader {
            let batch = batch?;
            let shown = match checks.any() {
                true => Some(self.shown_rows_of_columns(&batch, checks)?),
                false => None,
            };
            let passing = prefilter.passing(&batch)?;
            let seqs = downcast::<UInt64Array>(
                batch
                    .column_by_name("seq")
                    .ok_or_else(|| LakeError::MissingColumn("seq".to_owned()))?,
                "seq",
            )?;
            let mut scanned = 0;
            let mut wanted_seqs = Vec::new();
            for (row, passes) in passing.into_iter().enumerate() {
                if shown.as_ref().is_some_and(|shown| !shown.value(row)) {
                    continue;
                }
                scanned += 1;
                if passes {
                    wanted_seqs.push(seqs.value(row));
                }
            }
            // The rows that pass are counted when their records are emitted.
            self.counters
                .events_scanned
                .fetch_add(scanned - wanted_seqs.len() as u64, Ordering::Relaxed);
            if wanted_seqs.is_empty() {
                continue;
            }
            let entries = self.store.read_seqs(&wanted_seqs)?;
            if !self.emit_entries(entries, emit)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads the records a segment's postings list under every one of `terms`; false when
    /// the query wants no more. A segment merged away since the scan was planned is read
    /// by its seq range instead.
    fn read_indexed_records(
        &self,
        first_seq: u64,
        last_seq: u64,
        terms: &[(FilterField, String)],
        emit: &mut impl FnMut(RecordBatch) -> Result<bool, LakeError>,
    ) -> Result<bool, LakeError> {
        let terms: Vec<(FilterField, &str)> = terms
            .iter()
            .map(|(field, value)| (*field, value.as_str()))
            .collect();
        let event_times = self.bounds.from_ms..=self.bounds.through_ms;
        let Some(seqs) = self
            .store
            .segment_seqs_indexed_under(first_seq, &terms, event_times)?
        else {
            return self.read_records(first_seq, last_seq, emit);
        };
        for chunk in seqs.chunks(BATCH_ROWS) {
            let mut entries = self.store.read_seqs(chunk)?;
            entries.retain(|entry| self.visibility.shows_seq(entry.seq, entry.ingest_time_ms));
            if !self.emit_entries(entries, emit)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A reader of `wanted` columns of a segment's Parquet, plus those `checks` need, over
    /// the row groups the event-time bounds leave; with `checks` refined by the statistics.
    fn open_columns(
        &self,
        file: std::fs::File,
        mut checks: RowChecks,
        wanted: &[&str],
    ) -> Result<
        (
            parquet::arrow::arrow_reader::ParquetRecordBatchReader,
            RowChecks,
        ),
        LakeError,
    > {
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let parquet_schema = builder.parquet_schema();
        // Rows are newest first or in seq order (a sealed head's), so a row group covers
        // a stretch of event time.
        let time_column = parquet_schema
            .columns()
            .iter()
            .position(|column| column.name() == "eventtime");
        let row_groups: Vec<usize> = builder
            .metadata()
            .row_groups()
            .iter()
            .enumerate()
            .filter(|(_, group)| {
                let statistics = time_column.and_then(|index| group.column(index).statistics());
                match statistics {
                    Some(Statistics::Int64(times)) => match (times.min_opt(), times.max_opt()) {
                        (Some(min), Some(max)) => self.bounds.overlaps(*min, *max),
                        _ => true,
                    },
                    _ => true,
                }
            })
            .map(|(index, _)| index)
            .collect();
        // Rows ingested before the retention cutoff: only where the oldest may be.
        let ingest_column = parquet_schema
            .columns()
            .iter()
            .position(|column| column.name() == "ingesttime");
        checks.ingest_time = row_groups.iter().any(|&index| {
            let statistics = ingest_column.and_then(|column| {
                builder
                    .metadata()
                    .row_groups()
                    .get(index)
                    .and_then(|group| group.column(column).statistics())
            });
            match statistics {
                Some(Statistics::Int64(times)) => times
                    .min_opt()
                    .is_none_or(|oldest| *oldest < self.visibility.ingest_cutoff_ms),
                _ => true,
            }
        });
        let indices: Vec<usize> = parquet_schema
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, column)| {
                let name = column.name();
                wanted.contains(&name) || checks.columns().any(|needed| needed == name)
            })
            .map(|(index, _)| index)
            .collect();
        let bytes: i64 = row_groups
            .iter()
            .filter_map(|&index| builder.metadata().row_groups().get(index))
            .flat_map(|group| {
                indices
                    .iter()
                    .filter_map(|&index| group.columns().get(index))
                    .map(|column| column.compressed_size())
            })
            .sum();
        self.counters
            .bytes_scanned
            .fetch_add(u64::try_from(bytes).unwrap_or(0), Ordering::Relaxed);
        let mask = ProjectionMask::leaves(parquet_schema, indices);
        let reader = builder
            .with_row_groups(row_groups)
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()?;
        Ok((reader, checks))
    }

    fn shown_rows_of_columns(
        &self,
        batch: &RecordBatch,
        checks: RowChecks,
    ) -> Result<BooleanArray, LakeError> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| LakeError::MissingColumn(name.to_owned()))
        };
        // Only the columns the checks read are there.
        let seqs = checks
            .seq
            .then(|| downcast::<UInt64Array>(column("seq")?, "seq"))
            .transpose()?;
        let ingest = checks
            .ingest_time
            .then(|| downcast::<TimestampMillisecondArray>(column("ingesttime")?, "ingesttime"))
            .transpose()?;
        let accounts = checks
            .account
            .then(|| downcast::<StringArray>(column("recipientaccountid")?, "recipientaccountid"))
            .transpose()?;
        let categories = checks
            .category
            .then(|| downcast::<StringArray>(column("eventcategory")?, "eventcategory"))
            .transpose()?;
        let visibility = &self.visibility;
        Ok((0..batch.num_rows())
            .map(|row| {
                let seq_shown = seqs.is_none_or(|seqs| {
                    let seq = seqs.value(row);
                    seq > visibility.expired_through_seq && seq <= visibility.last_seq
                });
                let ingest_shown =
                    ingest.is_none_or(|ingest| ingest.value(row) >= visibility.ingest_cutoff_ms);
                let account_shown = accounts.is_none_or(|accounts| {
                    visibility
                        .account_id
                        .as_deref()
                        .is_none_or(|wanted| wanted == accounts.value(row))
                });
                let category_shown =
                    categories.is_none_or(|categories| categories.value(row) != INSIGHT_CATEGORY);
                Some(seq_shown && ingest_shown && account_shown && category_shown)
            })
            .collect())
    }

    /// Reads the records of the seqs `[first_seq, last_seq]`; false when the query wants
    /// no more.
    fn read_records(
        &self,
        first_seq: u64,
        last_seq: u64,
        emit: &mut impl FnMut(RecordBatch) -> Result<bool, LakeError>,
    ) -> Result<bool, LakeError> {
        let mut after = first_seq.saturating_sub(1);
        let through = last_seq.min(self.visibility.last_seq);
        while after < through {
            let limit = usize::try_from(through - after)
                .unwrap_or(usize::MAX)
                .min(BATCH_ROWS);
            let mut entries = self.store.read_log(after, limit)?;
            let Some(last) = entries.last().map(|entry| entry.seq) else {
                break;
            };
            after = last;
            entries.retain(|entry| {
                entry.seq <= through && self.visibility.shows_seq(entry.seq, entry.ingest_time_ms)
            });
            if !self.emit_entries(entries, emit)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads an archived part file's records the store no longer holds; false when the
    /// query wants no more. The archive's own retention removes whole files, so every
    /// row left is shown (the store's ingest-time cutoff is what moved it here).
    fn read_archived(
        &self,
        part: ArchivedPart,
        emit: &mut impl FnMut(RecordBatch) -> Result<bool, LakeError>,
    ) -> Result<bool, LakeError> {
        let expired_through = self.visibility.expired_through_seq;
        opentrail_archive::read_part_file_in_batches(part.file, &part.path, BATCH_ROWS, |records| {
            let entries = records
                .into_iter()
                .filter(|archived| archived.seq <= expired_through)
                .map(|archived| {
                    Ok(opentrail_store::LogEntry {
                        seq: archived.seq,
                        ingest_time_ms: archived.ingest_time_ms,
                        json: serde_json::to_string(&archived.record).map_err(|error| {
                            LakeError::Record {
                                seq: archived.seq,
                                detail: error.to_string(),
                            }
                        })?,
                    })
                })
                .collect::<Result<Vec<_>, LakeError>>()?;
            self.emit_entries(entries, emit)
        })
    }

    /// Emits the entries the table shows as one batch, with their bytes and the shown
    /// events counted as scanned; false when the query wants no more.
    fn emit_entries(
        &self,
        entries: Vec<opentrail_store::LogEntry>,
        emit: &mut impl FnMut(RecordBatch) -> Result<bool, LakeError>,
    ) -> Result<bool, LakeError> {
        let bytes: usize = entries.iter().map(|entry| entry.json.len()).sum();
        self.counters
            .bytes_scanned
            .fetch_add(bytes as u64, Ordering::Relaxed);
        let (entries, parsed) = self.shown_entries(entries)?;
        self.counters
            .events_scanned
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        if entries.is_empty() {
            return Ok(true);
        }
        emit(records_batch(&self.schema, &entries, &parsed)?)
    }

    /// The entries of the table's account that are not Insights records, with their
    /// records parsed (once: parsing is most of a head's cost).
    fn shown_entries(
        &self,
        entries: Vec<opentrail_store::LogEntry>,
    ) -> Result<(Vec<opentrail_store::LogEntry>, Vec<EventRecord>), LakeError> {
        let mut shown = Vec::with_capacity(entries.len());
        let mut parsed = Vec::with_capacity(entries.len());
        for entry in entries {
            let record =
                EventRecord::from_stored(&entry.json).map_err(|error| LakeError::Record {
                    seq: entry.seq,
                    detail: error.to_string(),
                })?;
            if self
                .visibility
                .shows_event(&record.account_id, &record.attributes.event_category)
            {
                shown.push(entry);
                parsed.push(record);
            }
        }
        Ok((shown, parsed))
    }
}

/// The columns of `batch` that `schema` names, as a batch of that schema (the row count
/// kept when it names none, as for `count(*)`).
fn columns_as(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, LakeError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            batch
                .column_by_name(field.name())
                .cloned()
                .ok_or_else(|| LakeError::MissingColumn(field.name().clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options =
        datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

fn downcast<'a, T: 'static>(array: &'a Arc<dyn Array>, name: &str) -> Result<&'a T, LakeError> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| LakeError::MissingColumn(name.to_owned()))
}

/// Event-time bounds (epoch ms, inclusive) the query's filters imply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EventTimeBounds {
    from_ms: i64,
    through_ms: i64,
}

impl Default for EventTimeBounds {
    fn default() -> EventTimeBounds {
        EventTimeBounds {
            from_ms: i64::MIN,
            through_ms: i64::MAX,
        }
    }
}

impl EventTimeBounds {
    fn overlaps(&self, min_ms: i64, max_ms: i64) -> bool {
        min_ms <= self.through_ms && max_ms >= self.from_ms
    }

    /// These bounds narrowed by a filter on `eventtime`; `None` when the filter says
    /// nothing about it.
    fn narrowed_by(self, filter: &Expr) -> Option<EventTimeBounds> {
        match filter {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if *op == Operator::And {
                    let left_bounds = self.narrowed_by(left);
                    let both = left_bounds.unwrap_or(self).narrowed_by(right);
                    return both.or(left_bounds);
                }
                let (op, literal) = match (is_event_time(left), is_event_time(right)) {
                    (true, false) => (*op, literal_ms(right)?),
                    (false, true) => (op.swap()?, literal_ms(left)?),
                    _ => return None,
                };
                let mut bounds = self;
                match op {
                    Operator::Eq => {
                        bounds.from_ms = bounds.from_ms.max(literal);
                        bounds.through_ms = bounds.through_ms.min(literal);
                    }
                    Operator::Gt => bounds.from_ms = bounds.from_ms.max(literal.saturating_add(1)),
                    Operator::GtEq => bounds.from_ms = bounds.from_ms.max(literal),
                    Operator::Lt => {
                        bounds.through_ms = bounds.through_ms.min(literal.saturating_sub(1))
                    }
                    Operator::LtEq => bounds.through_ms = bounds.through_ms.min(literal),
                    _ => return None,
                }
                Some(bounds)
            }
            Expr::Between(between) if !between.negated && is_event_time(&between.expr) => {
                let mut bounds = self;
                bounds.from_ms = bounds.from_ms.max(literal_ms(&between.low)?);
                bounds.through_ms = bounds.through_ms.min(literal_ms(&between.high)?);
                Some(bounds)
            }
            _ => None,
        }
    }
}

fn is_event_time(expr: &Expr) -> bool {
    match expr {
        Expr::Column(column) => column.name == "eventtime",
        Expr::Cast(cast) => is_event_time(&cast.expr),
        _ => false,
    }
}

/// A literal timestamp (any unit, or text) in epoch milliseconds, rounded down.
fn literal_ms(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::TimestampSecond(Some(seconds), _) => seconds.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(millis), _) => Some(*millis),
        ScalarValue::TimestampMicrosecond(Some(micros), _) => Some(micros.div_euclid(1_000)),
        ScalarValue::TimestampNanosecond(Some(nanos), _) => Some(nanos.div_euclid(1_000_000)),
        ScalarValue::Utf8(Some(text)) | ScalarValue::LargeUtf8(Some(text)) => parse_time_ms(text),
        _ => None,
    }
}

/// Text as Lake queries write times: RFC 3339, or `YYYY-MM-DD[ HH:MM:SS[.fff]]` in UTC.
pub(crate) fn parse_time_ms(text: &str) -> Option<i64> {
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Some(timestamp.as_millisecond());
    }
    let civil = text.trim().parse::<jiff::civil::DateTime>().ok()?;
    jiff::tz::TimeZone::UTC
        .to_timestamp(civil)
        .ok()
        .map(|timestamp| timestamp.as_millisecond())
}

//! [`Lake`]: one read-only `SELECT` over event data store tables, on DataFusion, within a
//! memory pool every query of the process shares (spilling to disk before it gives up).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::catalog::TableProvider;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;

use datafusion::common::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use opentrail_store::Store;

use crate::catalog::{PostgresDescription, PostgresParameter, PostgresSession};
use crate::error::LakeError;
use crate::names::quote_table_names;
use crate::selectors::table_filter;
use crate::table::{EventsTable, ScanCounters, TableScope};

/// Limits every query runs within.
#[derive(Debug, Clone)]
pub struct LakeOptions {
    /// Memory all running queries share; an operator that cannot spill fails past it.
    pub memory_limit_bytes: usize,
    /// Where sorts, joins and aggregations spill; `None`: the system's temporary directory.
    pub spill_dir: Option<PathBuf>,
    /// Threads one query reads and computes on.
    pub target_partitions: usize,
    /// The Parquet archive (`crates/archive`) that holds events after the store's retention
    /// dropped them; `None`: tables hold only what the store holds.
    pub archive_dir: Option<PathBuf>,
}

impl Default for LakeOptions {
    fn default() -> LakeOptions {
        LakeOptions {
            memory_limit_bytes: 256 * 1024 * 1024,
            spill_dir: None,
            target_partitions: std::thread::available_parallelism().map_or(2, usize::from),
            archive_dir: None,
        }
    }
}

/// A table a query may name: its name in `FROM` and the events it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeTable {
    pub name: String,
    pub scope: TableScope,
}

/// A started query: its result rows as a stream, and what its scans have read so far.
pub struct QueryRun {
    /// The result's column names, in order.
    pub columns: Vec<String>,
    pub stream: SendableRecordBatchStream,
    pub counters: Arc<ScanCounters>,
    plan: Arc<dyn ExecutionPlan>,
}

impl QueryRun {
    /// Events that passed the filters over the scans (the data store's and the query's),
    /// once the stream has ended; the events scanned when nothing filtered them.
    pub fn events_matched(&self) -> u64 {
        filtered_scan_rows(self.plan.as_ref())
            .unwrap_or_else(|| self.counters.events_scanned.load(Ordering::Relaxed))
    }
}

/// The rows out of the filters that sit right over the scans (through projections), or
/// `None` when some scan has no filter over it.
fn filtered_scan_rows(plan: &dyn ExecutionPlan) -> Option<u64> {
    if plan.children().is_empty() {
        return None;
    }
    if plan.is::<FilterExec>() && reaches_scan_without_filter(plan.children()[0].as_ref()) {
        return plan
            .metrics()
            .and_then(|metrics| metrics.output_rows())
            .map(|rows| rows as u64);
    }
    plan.children()
        .into_iter()
        .map(|child| filtered_scan_rows(child.as_ref()))
        .sum()
}

fn reaches_scan_without_filter(plan: &dyn ExecutionPlan) -> bool {
    let children = plan.children();
    if children.is_empty() {
        return true;
    }
    !plan.is::<FilterExec>()
        && children.len() == 1
        && reaches_scan_without_filter(children[0].as_ref())
}

/// The SQL engine over one store.
#[derive(Clone)]
pub struct Lake {
    store: Store,
    options: LakeOptions,
    runtime: Arc<RuntimeEnv>,
}

impl Lake {
    pub fn new(store: Store, options: LakeOptions) -> Result<Lake, LakeError> {
        let mode = match &options.spill_dir {
            Some(dir) => DiskManagerMode::Directories(vec![dir.clone()]),
            None => DiskManagerMode::OsTmpDirectory,
        };
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(options.memory_limit_bytes)))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(mode))
            .build_arc()
            .map_err(|error| LakeError::Execution(error.to_string()))?;
        Ok(Lake {
            store,
            options,
            runtime,
        })
    }

    pub fn options(&self) -> &LakeOptions {
        &self.options
    }

    /// Plans `sql` over `tables` and starts it. Table names may be written unquoted even
    /// when they hold `-` (event data store ids), as in CloudTrail Lake; other identifiers
    /// are case-insensitive unless quoted.
    pub async fn start(&self, sql: &str, tables: &[LakeTable]) -> Result<QueryRun, LakeError> {
        let names: Vec<&str> = tables.iter().map(|table| table.name.as_str()).collect();
        let sql = crate::trino::subscript_field_access(&quote_table_names(sql, &names));
        check_is_one_select(&sql)?;
        let (context, counters) = self.context(tables, None)?;
        let frame = context
            .sql_with_options(&sql, read_only())
            .await
            .map_err(|error| self.classify(error))?;
        self.execute(frame, counters).await
    }

    /// [`Lake::start`] for a statement a Postgres client sent: read as Postgres reads it,
    /// over `tables` and the `pg_catalog` and `information_schema` describing them, with
    /// its `$1`, `$2`, … bound to `parameters`.
    pub async fn start_postgres(
        &self,
        sql: &str,
        tables: &[LakeTable],
        session: &PostgresSession,
        parameters: &[PostgresParameter],
    ) -> Result<QueryRun, LakeError> {
        let (context, counters, plan) = self.plan_postgres(sql, tables, session).await?;
        let plan = crate::catalog::bind(plan, parameters).map_err(|error| self.classify(error))?;
        self.execute(DataFrame::new(context.state(), plan), counters)
            .await
    }

    /// The result columns and parameters of a statement a Postgres client sent, without
    /// running it.
    pub async fn describe_postgres(
        &self,
        sql: &str,
        tables: &[LakeTable],
        session: &PostgresSession,
    ) -> Result<PostgresDescription, LakeError> {
        let (_, _, plan) = self.plan_postgres(sql, tables, session).await?;
        Ok(PostgresDescription {
            columns: Arc::new(plan.schema().as_arrow().clone()),
            parameters: crate::catalog::parameter_types(&plan)
                .map_err(|error| self.classify(error))?,
        })
    }

    async fn plan_postgres(
        &self,
        sql: &str,
        tables: &[LakeTable],
        session: &PostgresSession,
    ) -> Result<(SessionContext, Arc<ScanCounters>, LogicalPlan), LakeError> {
        let names: Vec<&str> = tables.iter().map(|table| table.name.as_str()).collect();
        let statement = crate::catalog::parse(&quote_table_names(sql, &names))?;
        let (context, counters) = self.context(tables, Some(&session.database))?;
        let plan = crate::catalog::plan(&context, statement, session)
            .await
            .and_then(|plan| read_only().verify_plan(&plan).map(|()| plan))
            .map_err(|error| self.classify(error))?;
        Ok((context, counters, plan))
    }

    /// A session with `tables` registered (in the catalog `catalog_name`, DataFusion's
    /// default when `None`), and the counters of their scans.
    fn context(
        &self,
        tables: &[LakeTable],
        catalog_name: Option<&str>,
    ) -> Result<(SessionContext, Arc<ScanCounters>), LakeError> {
        let mut config = SessionConfig::new()
            .with_target_partitions(self.options.target_partitions.max(1))
            .with_information_schema(false);
        if let Some(catalog_name) = catalog_name {
            config = config.with_default_catalog_and_schema(catalog_name, "public");
        }
        let context = SessionContext::new_with_config_rt(config, Arc::clone(&self.runtime));
        crate::trino::register(&context);
        let counters = Arc::new(ScanCounters::default());
        for table in tables {
            let events: Arc<dyn TableProvider> = Arc::new(EventsTable::new(
                self.store.clone(),
                self.options.archive_dir.clone(),
                table.scope.clone(),
                Arc::clone(&counters),
            ));
            // A data store's selectors and retention as a view over its account's events,
            // so the optimizer pushes them down with the query's own filters.
            let provider = match table_filter(&table.scope.selectors, table.scope.min_event_time_ms)
            {
                Some(filter) => context
                    .read_table(events)
                    .and_then(|frame| frame.filter(filter))
                    .map(|frame| frame.into_view())
                    .map_err(|error| self.classify(error))?,
                None => events,
            };
            context
                .register_table(
                    datafusion::common::TableReference::bare(table.name.as_str()),
                    provider,
                )
                .map_err(|error| self.classify(error))?;
        }
        Ok((context, counters))
    }

    async fn execute(
        &self,
        frame: DataFrame,
        counters: Arc<ScanCounters>,
    ) -> Result<QueryRun, LakeError> {
        let task = frame.task_ctx();
        let plan = frame
            .create_physical_plan()
            .await
            .map_err(|error| self.classify(error))?;
        let stream = datafusion::physical_plan::execute_stream(Arc::clone(&plan), Arc::new(task))
            .map_err(|error| self.classify(error))?;
        let columns = stream
            .schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        Ok(QueryRun {
            columns,
            stream,
            counters,
            plan,
        })
    }

    /// A DataFusion error as what the user did wrong, or what went wrong.
    pub fn classify(&self, error: DataFusionError) -> LakeError {
        match error.find_root() {
            DataFusionError::ResourcesExhausted(detail) => LakeError::MemoryLimit {
                limit_bytes: self.options.memory_limit_bytes,
                detail: detail.clone(),
            },
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => {
                LakeError::InvalidQuery(one_line(&error.strip_backtrace()))
            }
            _ => LakeError::Execution(one_line(&error.strip_backtrace())),
        }
    }
}

/// DataFusion puts an error's causes on lines of their own ("type_coercion\ncaused
/// by\n…"); one line keeps the cause where a CLI or an AWS error message shows it.
fn one_line(message: &str) -> String {
    message
        .split("\ncaused by\n")
        .map(|part| part.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Queries only: no DDL, no DML, no `SET`.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Exactly one statement was given, as every entry point requires.
pub(crate) fn check_one_statement(count: usize) -> Result<(), LakeError> {
    match count {
        0 => Err(LakeError::NotSelect("the statement is empty".into())),
        1 => Ok(()),
        count => Err(LakeError::NotSelect(format!(
            "{count} statements were given"
        ))),
    }
}

fn check_is_one_select(sql: &str) -> Result<(), LakeError> {
    let statements = DFParser::parse_sql(sql)
        .map_err(|error| LakeError::InvalidQuery(error.strip_backtrace()))?;
    check_one_statement(statements.len())?;
    match statements.front() {
        Some(Statement::Statement(statement)) if matches!(**statement, SqlStatement::Query(_)) => {
            Ok(())
        }
        Some(other) => Err(LakeError::NotSelect(format!(
            "{} is not a SELECT",
            first_words(&other.to_string())
        ))),
        None => Err(LakeError::NotSelect("the statement is empty".into())),
    }
}

fn first_words(statement: &str) -> String {
    statement
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

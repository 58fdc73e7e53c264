//! The Postgres wire protocol (`pg_listen`, off by default): SQL over the caller's event
//! data stores for psql, BI tools and Postgres drivers, through `pgwire`.
//!
//! - **Who**: SCRAM-SHA-256 with an access key's id as the user and its secret as the
//!   password; only active `read` and `admin` keys log in. The key is looked up again on
//!   every statement, so a revoked key stops at its next query.
//! - **What**: the tables are the key's account's enabled event data stores, by id and by
//!   name, exactly as StartQuery sees them; one `SELECT` per statement runs through
//!   [`opentrail_lake::queries::Queries::run_now`] (the query threads, the shared memory
//!   pool, the time limit). `BEGIN`, `COMMIT`, `ROLLBACK`, `SET` and `SHOW` are answered
//!   so drivers that send them work; anything else is refused (SQLSTATE 0A000).
//! - **How rows travel**: in text format (every value as Postgres prints it), with column
//!   types mapped from Arrow so drivers convert numbers and booleans. Binary result
//!   formats and statement parameters are not supported.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_schema::{DataType, SchemaRef};
use async_trait::async_trait;
use futures_util::stream;
use opentrail_lake::queries::QueryError;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DataRowEncoder, DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo,
    QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{NoopQueryParser, StoredStatement};
use pgwire::api::{ClientInfo, METADATA_USER, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use tokio::net::TcpListener;

use crate::keys::{KeyStore, Role};
use crate::lake::LakeService;

/// PBKDF2 rounds of a SCRAM login: libpq's default.
const SCRAM_ITERATIONS: usize = 4096;

/// Binds the Postgres listener and serves it until the process ends.
pub async fn bind(
    address: SocketAddr,
    keys: KeyStore,
    lake: LakeService,
    region: String,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    let handlers = Arc::new(PostgresHandlers {
        queries: Arc::new(AccountQueries { keys, lake, region }),
    });
    let serving = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((socket, peer)) => {
                    let handlers = Arc::clone(&handlers);
                    tokio::spawn(async move {
                        if let Err(error) =
                            pgwire::tokio::process_socket(socket, None, handlers).await
                        {
                            tracing::debug!(%peer, %error, "a Postgres connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accepting a Postgres connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok((local, serving))
}

struct PostgresHandlers {
    queries: Arc<AccountQueries>,
}

impl PgWireServerHandlers for PostgresHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        let mut scram = ScramAuth::new(Arc::new(KeySecrets {
            keys: self.queries.keys.clone(),
        }));
        scram.set_iterations(SCRAM_ITERATIONS);
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = format!("16.0 (OpenTrail {})", env!("CARGO_PKG_VERSION"));
        Arc::new(SASLAuthStartupHandler::new(Arc::new(parameters)).with_scram(scram))
    }
}

/// Passwords are the secrets of active read and admin keys.
struct KeySecrets {
    keys: KeyStore,
}

impl std::fmt::Debug for KeySecrets {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("KeySecrets")
    }
}

#[async_trait]
impl AuthSource for KeySecrets {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let refused = || {
            user_error(
                "FATAL",
                "28P01",
                format!(
                    "password authentication failed for user \"{}\"",
                    login.user().unwrap_or_default()
                ),
            )
        };
        let user = login.user().ok_or_else(refused)?;
        let may_query = self
            .keys
            .get(user)
            .is_some_and(|key| key.is_active() && matches!(key.role, Role::Read | Role::Admin));
        let secret = self
            .keys
            .secret_for_active_key(user)
            .filter(|_| may_query)
            .ok_or_else(refused)?;
        let salt = uuid::Uuid::new_v4().as_bytes().to_vec();
        let salted = gen_salted_password(&secret, &salt, SCRAM_ITERATIONS);
        Ok(Password::new(Some(salt), salted))
    }
}

/// Statements of a logged-in key, over its account's event data stores.
struct AccountQueries {
    keys: KeyStore,
    lake: LakeService,
    region: String,
}

/// What a statement is, as far as this protocol cares.
enum StatementKind {
    Select,
    /// Answered without running anything, with this command tag.
    Acknowledged(&'static str),
    Show(String),
    Refused(String),
}

fn classify(sql: &str) -> StatementKind {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(3)
        .map(|word| word.trim_end_matches(';').to_ascii_uppercase())
        .collect();
    match words.first().map(String::as_str) {
        Some("SELECT" | "WITH" | "VALUES" | "(") => StatementKind::Select,
        Some("BEGIN" | "START") => StatementKind::Acknowledged("BEGIN"),
        Some("COMMIT" | "END") => StatementKind::Acknowledged("COMMIT"),
        Some("ROLLBACK" | "ABORT") => StatementKind::Acknowledged("ROLLBACK"),
        Some("SET" | "RESET" | "DISCARD") => StatementKind::Acknowledged("SET"),
        Some("SHOW") => StatementKind::Show(words.get(1).cloned().unwrap_or_default()),
        Some(first) => StatementKind::Refused(first.to_owned()),
        None => StatementKind::Refused(String::new()),
    }
}

/// What `SHOW` answers for the settings drivers ask about.
fn show_value(setting: &str) -> &'static str {
    match setting.to_ascii_lowercase().as_str() {
        "transaction_isolation" | "default_transaction_isolation" => "read committed",
        "server_version" => "16.0",
        "client_encoding" | "server_encoding" => "UTF8",
        "standard_conforming_strings" => "on",
        "timezone" => "UTC",
        "datestyle" => "ISO, MDY",
        _ => "",
    }
}

impl AccountQueries {
    /// The key logged in on this connection, checked again now.
    fn account_of<C: ClientInfo>(&self, client: &C) -> PgWireResult<String> {
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_default();
        match self.keys.get(&user) {
            Some(key) if key.is_active() && matches!(key.role, Role::Read | Role::Admin) => {
                Ok(key.account_id)
            }
            _ => Err(user_error(
                "FATAL",
                "28000",
                format!("the access key {user} may no longer query"),
            )),
        }
    }

    /// The account's enabled stores (tables by id and by name), once every id `sql` names
    /// is found among them.
    fn stores(
        &self,
        account_id: &str,
        sql: &str,
    ) -> PgWireResult<Vec<opentrail_lake::data_stores::EventDataStore>> {
        self.lake
            .stores_named(account_id, &self.region, sql)
            .map_err(|error| user_error("ERROR", "42P01", error.to_string()))?;
        Ok(self
            .lake
            .data_stores
            .list(account_id, &self.region)
            .into_iter()
            .filter(|store| store.is_enabled())
            .collect())
    }

    async fn run<C: ClientInfo>(
        &self,
        client: &C,
        sql: &str,
        format: &Format,
    ) -> PgWireResult<Response> {
        match classify(sql) {
            StatementKind::Acknowledged(tag) => Ok(Response::Execution(Tag::new(tag))),
            StatementKind::Show(setting) => {
                let fields = Arc::new(vec![FieldInfo::new(
                    setting.to_ascii_lowercase(),
                    None,
                    None,
                    Type::TEXT,
                    FieldFormat::Text,
                )]);
                let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
                encoder.encode_field(&Some(show_value(&setting)))?;
                let rows = vec![Ok(encoder.take_row())];
                Ok(Response::Query(QueryResponse::new(
                    fields,
                    stream::iter(rows),
                )))
            }
            StatementKind::Refused(word) => Err(user_error(
                "ERROR",
                "0A000",
                format!("only SELECT runs here, not {word}: OpenTrail's tables are read-only"),
            )),
            StatementKind::Select => {
                let account = self.account_of(client)?;
                let stores = self.stores(&account, sql)?;
                let now_ms = jiff::Timestamp::now().as_millisecond();
                let (schema, results) = self
                    .lake
                    .queries
                    .run_now(sql, &stores, now_ms)
                    .await
                    .map_err(query_error)?;
                let fields = Arc::new(fields_of(&schema, format));
                let mut rows = Vec::with_capacity(results.rows.len());
                for row in results.rows {
                    let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
                    for value in row {
                        encoder.encode_field(&value.as_deref().map(postgres_text))?;
                    }
                    rows.push(Ok(encoder.take_row()));
                }
                Ok(Response::Query(QueryResponse::new(
                    fields,
                    stream::iter(rows),
                )))
            }
        }
    }

    async fn describe<C: ClientInfo>(
        &self,
        client: &C,
        sql: &str,
        format: &Format,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match classify(sql) {
            StatementKind::Select => {
                let account = self.account_of(client)?;
                let stores = self.stores(&account, sql)?;
                let now_ms = jiff::Timestamp::now().as_millisecond();
                let schema = self
                    .lake
                    .queries
                    .columns(sql, &stores, now_ms)
                    .await
                    .map_err(query_error)?;
                Ok(fields_of(&schema, format))
            }
            StatementKind::Show(setting) => Ok(vec![FieldInfo::new(
                setting.to_ascii_lowercase(),
                None,
                None,
                Type::TEXT,
                FieldFormat::Text,
            )]),
            _ => Ok(Vec::new()),
        }
    }
}

/// A value as Postgres writes it in text format (booleans as `t`/`f`).
fn postgres_text(value: &str) -> &str {
    match value {
        "true" => "t",
        "false" => "f",
        other => other,
    }
}

/// Result columns with Postgres types, always in text format.
fn fields_of(schema: &SchemaRef, _requested: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .map(|field| {
            FieldInfo::new(
                field.name().clone(),
                None,
                None,
                postgres_type(field.data_type()),
                FieldFormat::Text,
            )
        })
        .collect()
}

fn postgres_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Decimal128(..) | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        // Text, and nested values as their JSON text.
        _ => Type::TEXT,
    }
}

fn user_error(severity: &str, code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        severity.to_owned(),
        code.to_owned(),
        message,
    )))
}

fn query_error(error: QueryError) -> PgWireError {
    use opentrail_lake::LakeError;
    let code = match &error {
        QueryError::Lake(LakeError::NotSelect(_)) => "0A000",
        QueryError::Lake(LakeError::InvalidQuery(_)) => "42601",
        QueryError::Lake(LakeError::MemoryLimit { .. }) => "53200",
        QueryError::Lake(LakeError::TimedOut { .. }) => "57014",
        QueryError::Lake(LakeError::ResultTooLarge { .. }) => "54000",
        _ => "XX000",
    };
    user_error("ERROR", code, error.to_string())
}

#[async_trait]
impl SimpleQueryHandler for AccountQueries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let statements: Vec<&str> = query
            .split(';')
            .map(str::trim)
            .filter(|statement| !statement.is_empty())
            .collect();
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        // A `;` inside a literal would split wrongly: more than one statement is only
        // taken apart when none of them is a query.
        if statements.len() > 1
            && statements
                .iter()
                .any(|s| matches!(classify(s), StatementKind::Select))
        {
            return Ok(vec![self.run(client, query, &Format::UnifiedText).await?]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            responses.push(self.run(client, statement, &Format::UnifiedText).await?);
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for AccountQueries {
    type Statement = String;
    type QueryParser = NoopQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(NoopQueryParser::new())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        if portal.parameter_len() > 0 {
            return Err(user_error(
                "ERROR",
                "0A000",
                "statement parameters are not supported: write the values into the SQL".to_owned(),
            ));
        }
        let sql = portal.statement.statement.trim().trim_end_matches(';');
        if sql.is_empty() {
            return Ok(Response::EmptyQuery);
        }
        self.run(client, sql, &portal.result_column_format).await
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        statement: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let sql = statement.statement.trim().trim_end_matches(';');
        let fields = self.describe(client, sql, &Format::UnifiedText).await?;
        Ok(DescribeStatementResponse::new(Vec::new(), fields))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let sql = portal.statement.statement.trim().trim_end_matches(';');
        let fields = self
            .describe(client, sql, &portal.result_column_format)
            .await?;
        Ok(DescribePortalResponse::new(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_queries_run_and_session_statements_are_acknowledged() {
        assert!(matches!(classify("select 1"), StatementKind::Select));
        assert!(matches!(
            classify("  WITH x AS (SELECT 1) SELECT * FROM x"),
            StatementKind::Select
        ));
        assert!(matches!(
            classify("BEGIN"),
            StatementKind::Acknowledged("BEGIN")
        ));
        assert!(matches!(
            classify("SET datestyle TO ISO"),
            StatementKind::Acknowledged("SET")
        ));
        assert!(matches!(classify("DROP TABLE x"), StatementKind::Refused(word) if word == "DROP"));
        assert!(matches!(
            classify("insert into x values (1)"),
            StatementKind::Refused(_)
        ));
    }
}

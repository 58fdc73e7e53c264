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
//! - **Browsing**: `pg_catalog` (enough for psql's `\dt`, `\d`, `\l`, `\dn`) and
//!   `information_schema` describe those tables and nothing else, with the functions
//!   clients call on connecting (`version()`, `current_schema()`, `current_setting`, …);
//!   see `opentrail_lake`'s catalog.
//! - **Parameters**: `$1`, `$2`, … of the extended protocol, typed by the client or by
//!   what they are compared with, in text format or (numbers and booleans) binary.
//! - **How rows travel**: in text format (every value as Postgres prints it), with column
//!   types mapped from Arrow so drivers convert numbers and booleans. Binary result
//!   formats are not supported.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_schema::{DataType, SchemaRef};
use async_trait::async_trait;
use futures_util::stream;
use opentrail_lake::queries::QueryError;
use opentrail_lake::{PostgresParameter, PostgresSession};
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
use pgwire::api::{ClientInfo, METADATA_DATABASE, METADATA_USER, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use tokio::net::TcpListener;

use crate::keys::{KeyStore, Role};
use crate::lake::LakeService;

/// PBKDF2 rounds of a SCRAM login: libpq's default.
const SCRAM_ITERATIONS: usize = 4096;

/// The Postgres version clients are told they speak to, for the features they use.
const SERVER_VERSION: &str = "16.0";

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
        parameters.server_version =
            format!("{SERVER_VERSION} (OpenTrail {})", env!("CARGO_PKG_VERSION"));
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

/// The settings `SHOW`, `current_setting` and `pg_settings` answer: those drivers and BI
/// tools ask about. None can be changed (`SET` is acknowledged and ignored).
fn settings() -> Vec<(String, String)> {
    [
        ("server_version", SERVER_VERSION),
        ("server_version_num", "160000"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("standard_conforming_strings", "on"),
        ("transaction_isolation", "read committed"),
        ("default_transaction_isolation", "read committed"),
        ("transaction_read_only", "on"),
        ("default_transaction_read_only", "on"),
        ("timezone", "UTC"),
        ("datestyle", "ISO, MDY"),
        ("intervalstyle", "postgres"),
        ("integer_datetimes", "on"),
        ("search_path", "\"$user\", public"),
        ("max_identifier_length", "63"),
        ("is_superuser", "off"),
        ("lc_collate", "C.UTF-8"),
        ("lc_ctype", "C.UTF-8"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// What `SHOW setting` answers; empty for a setting nobody asks about.
fn show_value(setting: &str) -> String {
    settings()
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(setting))
        .map(|(_, value)| value)
        .unwrap_or_default()
}

/// How the connection looks from SQL: its database, user and settings.
fn session_of<C: ClientInfo>(client: &C, user: &str) -> PostgresSession {
    let database = client
        .metadata()
        .get(METADATA_DATABASE)
        .filter(|database| !database.is_empty())
        .cloned()
        // As Postgres does: the database is named after the user unless named.
        .unwrap_or_else(|| user.to_owned());
    PostgresSession {
        database,
        user: user.to_owned(),
        backend_pid: client.pid_and_secret_key().0,
        version: format!(
            "PostgreSQL {SERVER_VERSION} (OpenTrail {}), read-only SQL over CloudTrail events",
            env!("CARGO_PKG_VERSION")
        ),
        settings: settings(),
    }
}

impl AccountQueries {
    /// The account of the key logged in on this connection, checked again now, and the
    /// connection's session.
    fn account_of<C: ClientInfo>(&self, client: &C) -> PgWireResult<(String, PostgresSession)> {
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_default();
        match self.keys.get(&user) {
            Some(key) if key.is_active() && matches!(key.role, Role::Read | Role::Admin) => {
                Ok((key.account_id, session_of(client, &user)))
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
        parameters: &[PostgresParameter],
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
                encoder.encode_field(&Some(show_value(&setting).as_str()))?;
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
                let (account, session) = self.account_of(client)?;
                let stores = self.stores(&account, sql)?;
                let now_ms = jiff::Timestamp::now().as_millisecond();
                let (schema, results) = self
                    .lake
                    .queries
                    .run_now(sql, &stores, &session, parameters, now_ms)
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

    /// The result columns of `sql`, and the types of its parameters (as the client gave
    /// them in `declared`, else as the statement implies, else text).
    async fn describe<C: ClientInfo>(
        &self,
        client: &C,
        sql: &str,
        declared: &[Option<Type>],
        format: &Format,
    ) -> PgWireResult<(Vec<Type>, Vec<FieldInfo>)> {
        match classify(sql) {
            StatementKind::Select => {
                let (account, session) = self.account_of(client)?;
                let stores = self.stores(&account, sql)?;
                let now_ms = jiff::Timestamp::now().as_millisecond();
                let description = self
                    .lake
                    .queries
                    .describe_statement(sql, &stores, &session, now_ms)
                    .await
                    .map_err(query_error)?;
                let count = declared.len().max(description.parameters.len());
                let parameters = (0..count)
                    .map(|index| {
                        declared
                            .get(index)
                            .cloned()
                            .flatten()
                            .or_else(|| {
                                description
                                    .parameters
                                    .get(index)
                                    .cloned()
                                    .flatten()
                                    .map(|data_type| postgres_type(&data_type))
                            })
                            .unwrap_or(Type::TEXT)
                    })
                    .collect();
                Ok((parameters, fields_of(&description.columns, format)))
            }
            StatementKind::Show(setting) => Ok((
                Vec::new(),
                vec![FieldInfo::new(
                    setting.to_ascii_lowercase(),
                    None,
                    None,
                    Type::TEXT,
                    FieldFormat::Text,
                )],
            )),
            _ => Ok((Vec::new(), Vec::new())),
        }
    }
}

/// A portal's parameters: text-format ones as sent, binary ones (numbers, booleans and
/// text of the types the client declared) written out as text.
fn portal_parameters(portal: &Portal<String>) -> PgWireResult<Vec<PostgresParameter>> {
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let declared = portal
                .statement
                .parameter_types
                .get(index)
                .cloned()
                .flatten();
            let text = match value {
                None => None,
                Some(bytes) if portal.parameter_format.is_binary(index) => Some(
                    binary_parameter_text(bytes, declared.as_ref()).ok_or_else(|| {
                        user_error(
                            "ERROR",
                            "22P03",
                            format!(
                                "parameter ${} is in binary format as {}, which is not supported: send it as text",
                                index + 1,
                                declared.as_ref().map_or("an undeclared type", Type::name)
                            ),
                        )
                    })?,
                ),
                Some(bytes) => Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
                    user_error(
                        "ERROR",
                        "22021",
                        format!("parameter ${} is not valid UTF-8", index + 1),
                    )
                })?),
            };
            Ok(PostgresParameter {
                text,
                declared: declared
                    .as_ref()
                    .and_then(|declared| opentrail_lake::postgres_data_type(declared.oid())),
            })
        })
        .collect()
}

/// A binary-format parameter of a numeric, boolean or text type as text.
fn binary_parameter_text(bytes: &[u8], declared: Option<&Type>) -> Option<String> {
    let declared = declared?;
    Some(match *declared {
        Type::BOOL => match bytes {
            [0] => "f".to_owned(),
            [_] => "t".to_owned(),
            _ => return None,
        },
        Type::INT2 => i16::from_be_bytes(bytes.try_into().ok()?).to_string(),
        Type::INT4 => i32::from_be_bytes(bytes.try_into().ok()?).to_string(),
        Type::INT8 => i64::from_be_bytes(bytes.try_into().ok()?).to_string(),
        Type::FLOAT4 => f32::from_be_bytes(bytes.try_into().ok()?).to_string(),
        Type::FLOAT8 => f64::from_be_bytes(bytes.try_into().ok()?).to_string(),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::UNKNOWN => {
            String::from_utf8(bytes.to_vec()).ok()?
        }
        _ => return None,
    })
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

/// The type a column of `data_type` travels as, the same the catalog shows for it.
fn postgres_type(data_type: &DataType) -> Type {
    Type::from_oid(opentrail_lake::postgres_type_oid(data_type)).unwrap_or(Type::TEXT)
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
        QueryError::Lake(LakeError::InvalidQuery(message)) => invalid_query_code(message),
        QueryError::Lake(LakeError::MemoryLimit { .. }) => "53200",
        QueryError::Lake(LakeError::TimedOut { .. }) => "57014",
        QueryError::Lake(LakeError::ResultTooLarge { .. }) => "54000",
        _ => "XX000",
    };
    user_error("ERROR", code, error.to_string())
}

/// The SQLSTATE of a statement that does not plan, by what DataFusion (or the catalog)
/// says of it.
fn invalid_query_code(message: &str) -> &'static str {
    if message.contains("No field named") {
        "42703"
    } else if message.contains("not found") || message.contains("does not exist") {
        "42P01"
    } else if message.contains("invalid value for parameter") {
        "22P02"
    } else if message.contains("takes") && message.contains("parameters but") {
        "08P01"
    } else {
        "42601"
    }
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
            return Ok(vec![
                self.run(client, query, &[], &Format::UnifiedText).await?,
            ]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            responses.push(
                self.run(client, statement, &[], &Format::UnifiedText)
                    .await?,
            );
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
        let sql = portal.statement.statement.trim().trim_end_matches(';');
        if sql.is_empty() {
            return Ok(Response::EmptyQuery);
        }
        let parameters = portal_parameters(portal)?;
        self.run(client, sql, &parameters, &portal.result_column_format)
            .await
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
        let (parameters, fields) = self
            .describe(
                client,
                sql,
                &statement.parameter_types,
                &Format::UnifiedText,
            )
            .await?;
        Ok(DescribeStatementResponse::new(parameters, fields))
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
        let (_, fields) = self
            .describe(
                client,
                sql,
                &portal.statement.parameter_types,
                &portal.result_column_format,
            )
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

    #[test]
    fn binary_parameters_of_declared_numbers_and_booleans_read_as_text() {
        assert_eq!(
            binary_parameter_text(&42i32.to_be_bytes(), Some(&Type::INT4)).as_deref(),
            Some("42")
        );
        assert_eq!(
            binary_parameter_text(&(-7i64).to_be_bytes(), Some(&Type::INT8)).as_deref(),
            Some("-7")
        );
        assert_eq!(
            binary_parameter_text(&[1], Some(&Type::BOOL)).as_deref(),
            Some("t")
        );
        assert_eq!(
            binary_parameter_text(b"GetObject", Some(&Type::VARCHAR)).as_deref(),
            Some("GetObject")
        );
        // A wrong width, an undeclared type or one without a text form here: refused.
        assert_eq!(binary_parameter_text(&[0, 1], Some(&Type::INT4)), None);
        assert_eq!(binary_parameter_text(&[0; 8], None), None);
        assert_eq!(
            binary_parameter_text(&[0; 8], Some(&Type::TIMESTAMPTZ)),
            None
        );
    }

    #[test]
    fn show_and_the_catalog_answer_the_same_settings() {
        assert_eq!(show_value("server_version"), SERVER_VERSION);
        assert_eq!(show_value("TimeZone"), "UTC");
        assert_eq!(show_value("no_such_setting"), "");
        assert!(
            settings()
                .iter()
                .any(|(name, value)| name == "search_path" && value.ends_with("public"))
        );
    }

    #[test]
    fn planning_errors_carry_the_sqlstate_postgres_gives_them() {
        assert_eq!(
            invalid_query_code("Schema error: No field named no_such_column."),
            "42703"
        );
        assert_eq!(
            invalid_query_code("Error during planning: table 'opentrail.public.nope' not found"),
            "42P01"
        );
        assert_eq!(
            invalid_query_code("invalid value for parameter $1: \"x\" is not a boolean"),
            "22P02"
        );
        assert_eq!(
            invalid_query_code("sql parser error: Expected: an expression"),
            "42601"
        );
    }
}

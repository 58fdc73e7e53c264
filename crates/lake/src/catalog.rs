//! What a Postgres client needs besides the event data stores: a `pg_catalog` and an
//! `information_schema` describing the tables of the query (the caller's stores, and
//! nothing else), the functions clients call on connecting and browsing (`version()`,
//! `current_schema()`, `format_type`, `pg_table_is_visible`, …), Postgres's spellings
//! DataFusion lacks (`OPERATOR(pg_catalog.~)`, `COLLATE`, `::regclass`, `pg_catalog.`
//! before functions), and `$1` parameters.
//!
//! Every catalog table is a `MemTable` built when a query names it, from the tables that
//! query registered in the `public` schema, so the catalog can only ever describe those.
//! Catalog tables about what OpenTrail has none of (indexes, constraints, policies,
//! triggers, …) exist with their Postgres columns and no rows, so that clients' queries
//! over them plan and answer nothing.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Int16Array, Int32Array, Int64Array, RecordBatch,
    StringArray, new_empty_array, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemTable, SchemaProvider, TableProvider};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{
    DFSchema, DataFusionError, ParamValues, Result as DataFusionResult, ScalarValue,
};
use datafusion::logical_expr::{
    ColumnarValue, EmptyRelation, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DataFusionStatement;
use datafusion::sql::sqlparser::ast::{
    self as sql, BinaryOperator, Expr, FunctionArgumentList, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Select, SelectItem, SetExpr, SetOperator, Statement, TableFactor, Value,
    VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::LakeError;

/// What a Postgres client's connection shows of itself: the database it named, the user
/// it logged in as, and what `version()`, `SHOW` and `current_setting` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSession {
    /// The database the client connected to: the catalog the tables are in.
    pub database: String,
    /// The user the client logged in as; it owns every table it sees.
    pub user: String,
    /// What `pg_backend_pid()` answers (the connection's id for cancel requests).
    pub backend_pid: i32,
    /// What `version()` answers.
    pub version: String,
    /// Settings as `current_setting` and `pg_settings` show them, by lower-case name.
    pub settings: Vec<(String, String)>,
}

impl PostgresSession {
    /// The value of the setting `name` (case-insensitive).
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(setting, _)| setting.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A value bound to a statement's `$n` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresParameter {
    /// The value as text; `None` for NULL.
    pub text: Option<String>,
    /// The type the client declared for it (see [`postgres_data_type`]); `None` when it left
    /// it to the statement.
    pub declared: Option<DataType>,
}

/// A statement's result columns and its parameters' types (`None` where nothing in the
/// statement says), without running it.
#[derive(Debug, Clone)]
pub struct PostgresDescription {
    pub columns: SchemaRef,
    /// `$1`, `$2`, … in order.
    pub parameters: Vec<Option<DataType>>,
}

// ---------------------------------------------------------------------------- types

/// A Postgres type as `pg_type`, `format_type` and `information_schema` show it.
struct PgType {
    oid: i64,
    /// `pg_type.typname`.
    name: &'static str,
    /// What `format_type` answers.
    sql_name: &'static str,
    len: i16,
    by_value: bool,
    category: char,
    align: char,
    /// The element type of an array type, 0 otherwise.
    element: i64,
    /// The array type of this type, 0 when none.
    array: i64,
}

const fn base(
    oid: i64,
    name: &'static str,
    sql_name: &'static str,
    len: i16,
    category: char,
    array: i64,
) -> PgType {
    let by_value = len > 0 && len <= 8;
    let align = match len {
        1 => 'c',
        2 => 's',
        4 => 'i',
        8 => 'd',
        _ => 'i',
    };
    PgType {
        oid,
        name,
        sql_name,
        len,
        by_value,
        category,
        align,
        element: 0,
        array,
    }
}

const fn array_of(oid: i64, name: &'static str, sql_name: &'static str, element: i64) -> PgType {
    PgType {
        oid,
        name,
        sql_name,
        len: -1,
        by_value: false,
        category: 'A',
        align: 'i',
        element,
        array: 0,
    }
}

/// A type functions take or return but no column has.
const fn pseudo(oid: i64, name: &'static str) -> PgType {
    PgType {
        oid,
        name,
        sql_name: name,
        len: 4,
        by_value: true,
        category: 'P',
        align: 'i',
        element: 0,
        array: 0,
    }
}

const TEXT_OID: i64 = 25;
const TEXT_COLLATION_OID: i64 = 100;

/// The types `pg_type` lists: those OpenTrail's columns are sent as, those catalog
/// queries cast to, and their arrays.
const PG_TYPES: &[PgType] = &[
    base(16, "bool", "boolean", 1, 'B', 1000),
    base(17, "bytea", "bytea", -1, 'U', 1001),
    base(18, "char", "\"char\"", 1, 'Z', 1002),
    base(19, "name", "name", 64, 'S', 1003),
    base(20, "int8", "bigint", 8, 'N', 1016),
    base(21, "int2", "smallint", 2, 'N', 1005),
    base(23, "int4", "integer", 4, 'N', 1007),
    base(24, "regproc", "regproc", 4, 'N', 1008),
    base(TEXT_OID, "text", "text", -1, 'S', 1009),
    base(26, "oid", "oid", 4, 'N', 1028),
    base(114, "json", "json", -1, 'U', 199),
    base(700, "float4", "real", 4, 'N', 1021),
    base(701, "float8", "double precision", 8, 'N', 1022),
    base(705, "unknown", "unknown", -2, 'X', 0),
    base(1043, "varchar", "character varying", -1, 'S', 1015),
    base(1082, "date", "date", 4, 'D', 1182),
    base(
        1114,
        "timestamp",
        "timestamp without time zone",
        8,
        'D',
        1115,
    ),
    base(
        1184,
        "timestamptz",
        "timestamp with time zone",
        8,
        'D',
        1185,
    ),
    base(1186, "interval", "interval", 16, 'T', 1187),
    base(1700, "numeric", "numeric", -1, 'N', 1231),
    base(2205, "regclass", "regclass", 4, 'N', 2210),
    base(2206, "regtype", "regtype", 4, 'N', 2211),
    base(2950, "uuid", "uuid", 16, 'U', 2951),
    base(3802, "jsonb", "jsonb", -1, 'U', 3807),
    pseudo(2249, "record"),
    pseudo(2275, "cstring"),
    pseudo(2276, "any"),
    pseudo(2277, "anyarray"),
    pseudo(2278, "void"),
    pseudo(2279, "trigger"),
    pseudo(2281, "internal"),
    pseudo(2283, "anyelement"),
    pseudo(3838, "event_trigger"),
    array_of(1000, "_bool", "boolean[]", 16),
    array_of(1001, "_bytea", "bytea[]", 17),
    array_of(1002, "_char", "\"char\"[]", 18),
    array_of(1003, "_name", "name[]", 19),
    array_of(1016, "_int8", "bigint[]", 20),
    array_of(1005, "_int2", "smallint[]", 21),
    array_of(1007, "_int4", "integer[]", 23),
    array_of(1008, "_regproc", "regproc[]", 24),
    array_of(1009, "_text", "text[]", TEXT_OID),
    array_of(1028, "_oid", "oid[]", 26),
    array_of(199, "_json", "json[]", 114),
    array_of(1021, "_float4", "real[]", 700),
    array_of(1022, "_float8", "double precision[]", 701),
    array_of(1015, "_varchar", "character varying[]", 1043),
    array_of(1182, "_date", "date[]", 1082),
    array_of(1115, "_timestamp", "timestamp without time zone[]", 1114),
    array_of(1185, "_timestamptz", "timestamp with time zone[]", 1184),
    array_of(1187, "_interval", "interval[]", 1186),
    array_of(1231, "_numeric", "numeric[]", 1700),
    array_of(2210, "_regclass", "regclass[]", 2205),
    array_of(2211, "_regtype", "regtype[]", 2206),
    array_of(2951, "_uuid", "uuid[]", 2950),
    array_of(3807, "_jsonb", "jsonb[]", 3802),
];

fn pg_type(oid: i64) -> Option<&'static PgType> {
    PG_TYPES.iter().find(|pg_type| pg_type.oid == oid)
}

/// The Postgres type a column of `data_type` is sent as (its `pg_type` oid): what the
/// wire protocol's row descriptions and the catalog both say. Nested values travel as
/// their text.
pub fn postgres_type_oid(data_type: &DataType) -> u32 {
    match data_type {
        DataType::Boolean => 16,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => 21,
        DataType::Int32 | DataType::UInt16 => 23,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => 20,
        DataType::Float16 | DataType::Float32 => 700,
        DataType::Float64 => 701,
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => 1700,
        DataType::Timestamp(_, Some(_)) => 1184,
        DataType::Timestamp(_, None) => 1114,
        DataType::Date32 | DataType::Date64 => 1082,
        _ => 25,
    }
}

/// The Arrow type a value of the Postgres type `oid` is read as, when it is not text.
pub fn postgres_data_type(oid: u32) -> Option<DataType> {
    Some(match oid {
        16 => DataType::Boolean,
        21 => DataType::Int16,
        23 => DataType::Int32,
        20 | 26 => DataType::Int64,
        700 => DataType::Float32,
        701 | 1700 => DataType::Float64,
        1082 => DataType::Date32,
        1114 => DataType::Timestamp(TimeUnit::Microsecond, None),
        1184 => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ => return None,
    })
}

fn pg_type_of(data_type: &DataType) -> &'static PgType {
    let oid = i64::from(postgres_type_oid(data_type));
    pg_type(oid).unwrap_or(&PG_TYPES[8])
}

/// The type oid a type name written in SQL stands for (`int4`, `integer`, `text[]`, …).
fn type_oid_named(name: &str) -> Option<i64> {
    let name = name
        .trim()
        .trim_start_matches("pg_catalog.")
        .to_ascii_lowercase();
    PG_TYPES
        .iter()
        .find(|pg_type| pg_type.name == name || pg_type.sql_name == name)
        .map(|pg_type| pg_type.oid)
        .or(match name.as_str() {
            "int" => Some(23),
            "varchar" | "character varying" => Some(1043),
            "double" => Some(701),
            "timestamp with time zone" => Some(1184),
            _ => None,
        })
}

// ---------------------------------------------------------------------------- catalog tables

/// A catalog column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    /// `oid`, `regproc`, `xid` and the like: 64-bit so that no oid is ever negative.
    Oid,
    Name,
    /// Postgres's one-byte `"char"`.
    Char,
    Text,
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    TextArray,
    OidArray,
    Int2Array,
}

impl Column {
    fn data_type(self) -> DataType {
        match self {
            Column::Oid | Column::Int8 => DataType::Int64,
            Column::Name | Column::Char | Column::Text => DataType::Utf8,
            Column::Bool => DataType::Boolean,
            Column::Int2 => DataType::Int16,
            Column::Int4 => DataType::Int32,
            Column::Float4 => DataType::Float32,
            Column::TextArray => list_of(DataType::Utf8),
            Column::OidArray => list_of(DataType::Int64),
            Column::Int2Array => list_of(DataType::Int16),
        }
    }
}

fn list_of(element: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", element, true)))
}

/// Whether a catalog table has rows and of which kind it is in Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// Built from the query's tables and session.
    Built,
    /// Always empty: about things OpenTrail has none of.
    None,
}

struct CatalogTable {
    name: &'static str,
    /// A view in Postgres (`pg_tables`, every `information_schema` table).
    view: bool,
    rows: Rows,
    columns: &'static [(&'static str, Column)],
}

const fn table(
    name: &'static str,
    rows: Rows,
    columns: &'static [(&'static str, Column)],
) -> CatalogTable {
    CatalogTable {
        name,
        view: false,
        rows,
        columns,
    }
}

const fn view(
    name: &'static str,
    rows: Rows,
    columns: &'static [(&'static str, Column)],
) -> CatalogTable {
    CatalogTable {
        name,
        view: true,
        rows,
        columns,
    }
}

const PG_CATALOG: &str = "pg_catalog";
const INFORMATION_SCHEMA: &str = "information_schema";
const PUBLIC: &str = "public";
const PG_CATALOG_OID: i64 = 11;
const PUBLIC_OID: i64 = 2200;
const INFORMATION_SCHEMA_OID: i64 = 13_000;
/// The one role: the user logged in, who owns everything it sees.
const OWNER_OID: i64 = 10;
const DATABASE_OID: i64 = 5;
const HEAP_AM_OID: i64 = 2;
const DEFAULT_TABLESPACE_OID: i64 = 1663;
const UTF8_ENCODING: i64 = 6;
/// Catalog tables' own oids: 12000 + their place in their list (fixed, below user oids).
const CATALOG_TABLE_OIDS: i64 = 12_000;
/// Postgres gives user objects oids from here on.
const FIRST_USER_OID: i64 = 16_384;

use Column::{
    Bool, Char, Float4, Int2, Int2Array, Int4, Int8, Name, Oid, OidArray, Text, TextArray,
};

const PG_CATALOG_TABLES: &[CatalogTable] = &[
    table(
        "pg_namespace",
        Rows::Built,
        &[
            ("oid", Oid),
            ("nspname", Name),
            ("nspowner", Oid),
            ("nspacl", TextArray),
        ],
    ),
    table(
        "pg_class",
        Rows::Built,
        &[
            ("oid", Oid),
            ("relname", Name),
            ("relnamespace", Oid),
            ("reltype", Oid),
            ("reloftype", Oid),
            ("relowner", Oid),
            ("relam", Oid),
            ("relfilenode", Oid),
            ("reltablespace", Oid),
            ("relpages", Int4),
            ("reltuples", Float4),
            ("relallvisible", Int4),
            ("reltoastrelid", Oid),
            ("relhasindex", Bool),
            ("relisshared", Bool),
            ("relpersistence", Char),
            ("relkind", Char),
            ("relnatts", Int2),
            ("relchecks", Int2),
            ("relhasrules", Bool),
            ("relhastriggers", Bool),
            ("relhassubclass", Bool),
            ("relrowsecurity", Bool),
            ("relforcerowsecurity", Bool),
            ("relispopulated", Bool),
            ("relreplident", Char),
            ("relispartition", Bool),
            ("relrewrite", Oid),
            ("relfrozenxid", Oid),
            ("relminmxid", Oid),
            ("relacl", TextArray),
            ("reloptions", TextArray),
            ("relpartbound", Text),
        ],
    ),
    table(
        "pg_attribute",
        Rows::Built,
        &[
            ("attrelid", Oid),
            ("attname", Name),
            ("atttypid", Oid),
            ("attlen", Int2),
            ("attnum", Int2),
            ("attcacheoff", Int4),
            ("atttypmod", Int4),
            ("attndims", Int2),
            ("attbyval", Bool),
            ("attalign", Char),
            ("attstorage", Char),
            ("attcompression", Char),
            ("attnotnull", Bool),
            ("atthasdef", Bool),
            ("atthasmissing", Bool),
            ("attidentity", Char),
            ("attgenerated", Char),
            ("attisdropped", Bool),
            ("attislocal", Bool),
            ("attinhcount", Int2),
            ("attstattarget", Int2),
            ("attcollation", Oid),
            ("attacl", TextArray),
            ("attoptions", TextArray),
            ("attfdwoptions", TextArray),
            ("attmissingval", Text),
        ],
    ),
    table(
        "pg_type",
        Rows::Built,
        &[
            ("oid", Oid),
            ("typname", Name),
            ("typnamespace", Oid),
            ("typowner", Oid),
            ("typlen", Int2),
            ("typbyval", Bool),
            ("typtype", Char),
            ("typcategory", Char),
            ("typispreferred", Bool),
            ("typisdefined", Bool),
            ("typdelim", Char),
            ("typrelid", Oid),
            ("typsubscript", Text),
            ("typelem", Oid),
            ("typarray", Oid),
            ("typinput", Text),
            ("typoutput", Text),
            ("typreceive", Text),
            ("typsend", Text),
            ("typmodin", Text),
            ("typmodout", Text),
            ("typanalyze", Text),
            ("typalign", Char),
            ("typstorage", Char),
            ("typnotnull", Bool),
            ("typbasetype", Oid),
            ("typtypmod", Int4),
            ("typndims", Int4),
            ("typcollation", Oid),
            ("typdefaultbin", Text),
            ("typdefault", Text),
            ("typacl", TextArray),
        ],
    ),
    table(
        "pg_database",
        Rows::Built,
        &[
            ("oid", Oid),
            ("datname", Name),
            ("datdba", Oid),
            ("encoding", Int4),
            ("datlocprovider", Char),
            ("datistemplate", Bool),
            ("datallowconn", Bool),
            ("datconnlimit", Int4),
            ("datfrozenxid", Oid),
            ("datminmxid", Oid),
            ("dattablespace", Oid),
            ("datcollate", Text),
            ("datctype", Text),
            ("daticulocale", Text),
            ("daticurules", Text),
            ("datcollversion", Text),
            ("datacl", TextArray),
        ],
    ),
    table(
        "pg_am",
        Rows::Built,
        &[
            ("oid", Oid),
            ("amname", Name),
            ("amhandler", Text),
            ("amtype", Char),
        ],
    ),
    table(
        "pg_collation",
        Rows::Built,
        &[
            ("oid", Oid),
            ("collname", Name),
            ("collnamespace", Oid),
            ("collowner", Oid),
            ("collprovider", Char),
            ("collisdeterministic", Bool),
            ("collencoding", Int4),
            ("collcollate", Text),
            ("collctype", Text),
            ("colliculocale", Text),
            ("collicurules", Text),
            ("collversion", Text),
        ],
    ),
    table(
        "pg_tablespace",
        Rows::Built,
        &[
            ("oid", Oid),
            ("spcname", Name),
            ("spcowner", Oid),
            ("spcacl", TextArray),
            ("spcoptions", TextArray),
        ],
    ),
    view(
        "pg_roles",
        Rows::Built,
        &[
            ("rolname", Name),
            ("rolsuper", Bool),
            ("rolinherit", Bool),
            ("rolcreaterole", Bool),
            ("rolcreatedb", Bool),
            ("rolcanlogin", Bool),
            ("rolreplication", Bool),
            ("rolconnlimit", Int4),
            ("rolpassword", Text),
            ("rolvaliduntil", Text),
            ("rolbypassrls", Bool),
            ("rolconfig", TextArray),
            ("oid", Oid),
        ],
    ),
    view(
        "pg_user",
        Rows::Built,
        &[
            ("usename", Name),
            ("usesysid", Oid),
            ("usecreatedb", Bool),
            ("usesuper", Bool),
            ("userepl", Bool),
            ("usebypassrls", Bool),
            ("passwd", Text),
            ("valuntil", Text),
            ("useconfig", TextArray),
        ],
    ),
    view(
        "pg_settings",
        Rows::Built,
        &[
            ("name", Text),
            ("setting", Text),
            ("unit", Text),
            ("category", Text),
            ("short_desc", Text),
            ("extra_desc", Text),
            ("context", Text),
            ("vartype", Text),
            ("source", Text),
            ("min_val", Text),
            ("max_val", Text),
            ("enumvals", TextArray),
            ("boot_val", Text),
            ("reset_val", Text),
            ("sourcefile", Text),
            ("sourceline", Int4),
            ("pending_restart", Bool),
        ],
    ),
    view(
        "pg_tables",
        Rows::Built,
        &[
            ("schemaname", Name),
            ("tablename", Name),
            ("tableowner", Name),
            ("tablespace", Name),
            ("hasindexes", Bool),
            ("hasrules", Bool),
            ("hastriggers", Bool),
            ("rowsecurity", Bool),
        ],
    ),
    view(
        "pg_views",
        Rows::None,
        &[
            ("schemaname", Name),
            ("viewname", Name),
            ("viewowner", Name),
            ("definition", Text),
        ],
    ),
    view(
        "pg_matviews",
        Rows::None,
        &[
            ("schemaname", Name),
            ("matviewname", Name),
            ("matviewowner", Name),
            ("tablespace", Name),
            ("hasindexes", Bool),
            ("ispopulated", Bool),
            ("definition", Text),
        ],
    ),
    view(
        "pg_indexes",
        Rows::None,
        &[
            ("schemaname", Name),
            ("tablename", Name),
            ("indexname", Name),
            ("tablespace", Name),
            ("indexdef", Text),
        ],
    ),
    table(
        "pg_attrdef",
        Rows::None,
        &[
            ("oid", Oid),
            ("adrelid", Oid),
            ("adnum", Int2),
            ("adbin", Text),
        ],
    ),
    table(
        "pg_index",
        Rows::None,
        &[
            ("indexrelid", Oid),
            ("indrelid", Oid),
            ("indnatts", Int2),
            ("indnkeyatts", Int2),
            ("indisunique", Bool),
            ("indnullsnotdistinct", Bool),
            ("indisprimary", Bool),
            ("indisexclusion", Bool),
            ("indimmediate", Bool),
            ("indisclustered", Bool),
            ("indisvalid", Bool),
            ("indcheckxmin", Bool),
            ("indisready", Bool),
            ("indislive", Bool),
            ("indisreplident", Bool),
            ("indkey", Int2Array),
            ("indcollation", OidArray),
            ("indclass", OidArray),
            ("indoption", Int2Array),
            ("indexprs", Text),
            ("indpred", Text),
        ],
    ),
    table(
        "pg_constraint",
        Rows::None,
        &[
            ("oid", Oid),
            ("conname", Name),
            ("connamespace", Oid),
            ("contype", Char),
            ("condeferrable", Bool),
            ("condeferred", Bool),
            ("convalidated", Bool),
            ("conrelid", Oid),
            ("contypid", Oid),
            ("conindid", Oid),
            ("conparentid", Oid),
            ("confrelid", Oid),
            ("confupdtype", Char),
            ("confdeltype", Char),
            ("confmatchtype", Char),
            ("conislocal", Bool),
            ("coninhcount", Int2),
            ("connoinherit", Bool),
            ("conkey", Int2Array),
            ("confkey", Int2Array),
            ("conpfeqop", OidArray),
            ("conppeqop", OidArray),
            ("conffeqop", OidArray),
            ("confdelsetcols", Int2Array),
            ("conexclop", OidArray),
            ("conbin", Text),
        ],
    ),
    table(
        "pg_inherits",
        Rows::None,
        &[
            ("inhrelid", Oid),
            ("inhparent", Oid),
            ("inhseqno", Int4),
            ("inhdetachpending", Bool),
        ],
    ),
    table(
        "pg_policy",
        Rows::None,
        &[
            ("oid", Oid),
            ("polname", Name),
            ("polrelid", Oid),
            ("polcmd", Char),
            ("polpermissive", Bool),
            ("polroles", OidArray),
            ("polqual", Text),
            ("polwithcheck", Text),
        ],
    ),
    table(
        "pg_statistic_ext",
        Rows::None,
        &[
            ("oid", Oid),
            ("stxrelid", Oid),
            ("stxname", Name),
            ("stxnamespace", Oid),
            ("stxowner", Oid),
            ("stxstattarget", Int2),
            ("stxkeys", Int2Array),
            ("stxkind", TextArray),
            ("stxexprs", Text),
        ],
    ),
    table(
        "pg_publication",
        Rows::None,
        &[
            ("oid", Oid),
            ("pubname", Name),
            ("pubowner", Oid),
            ("puballtables", Bool),
            ("pubinsert", Bool),
            ("pubupdate", Bool),
            ("pubdelete", Bool),
            ("pubtruncate", Bool),
            ("pubviaroot", Bool),
        ],
    ),
    table(
        "pg_publication_rel",
        Rows::None,
        &[
            ("oid", Oid),
            ("prpubid", Oid),
            ("prrelid", Oid),
            ("prqual", Text),
            ("prattrs", Int2Array),
        ],
    ),
    table(
        "pg_publication_namespace",
        Rows::None,
        &[("oid", Oid), ("pnpubid", Oid), ("pnnspid", Oid)],
    ),
    table(
        "pg_trigger",
        Rows::None,
        &[
            ("oid", Oid),
            ("tgrelid", Oid),
            ("tgparentid", Oid),
            ("tgname", Name),
            ("tgfoid", Oid),
            ("tgtype", Int2),
            ("tgenabled", Char),
            ("tgisinternal", Bool),
            ("tgconstrrelid", Oid),
            ("tgconstrindid", Oid),
            ("tgconstraint", Oid),
            ("tgdeferrable", Bool),
            ("tginitdeferred", Bool),
            ("tgnargs", Int2),
            ("tgattr", Int2Array),
            ("tgargs", Text),
            ("tgqual", Text),
            ("tgoldtable", Name),
            ("tgnewtable", Name),
        ],
    ),
    table(
        "pg_rewrite",
        Rows::None,
        &[
            ("oid", Oid),
            ("rulename", Name),
            ("ev_class", Oid),
            ("ev_type", Char),
            ("ev_enabled", Char),
            ("is_instead", Bool),
            ("ev_qual", Text),
            ("ev_action", Text),
        ],
    ),
    table(
        "pg_auth_members",
        Rows::None,
        &[
            ("oid", Oid),
            ("roleid", Oid),
            ("member", Oid),
            ("grantor", Oid),
            ("admin_option", Bool),
            ("inherit_option", Bool),
            ("set_option", Bool),
        ],
    ),
    table(
        "pg_description",
        Rows::None,
        &[
            ("objoid", Oid),
            ("classoid", Oid),
            ("objsubid", Int4),
            ("description", Text),
        ],
    ),
    table(
        "pg_shdescription",
        Rows::None,
        &[("objoid", Oid), ("classoid", Oid), ("description", Text)],
    ),
    table(
        "pg_depend",
        Rows::None,
        &[
            ("classid", Oid),
            ("objid", Oid),
            ("objsubid", Int4),
            ("refclassid", Oid),
            ("refobjid", Oid),
            ("refobjsubid", Int4),
            ("deptype", Char),
        ],
    ),
    table(
        "pg_proc",
        Rows::None,
        &[
            ("oid", Oid),
            ("proname", Name),
            ("pronamespace", Oid),
            ("proowner", Oid),
            ("prolang", Oid),
            ("procost", Float4),
            ("prorows", Float4),
            ("provariadic", Oid),
            ("prosupport", Text),
            ("prokind", Char),
            ("prosecdef", Bool),
            ("proleakproof", Bool),
            ("proisstrict", Bool),
            ("proretset", Bool),
            ("provolatile", Char),
            ("proparallel", Char),
            ("pronargs", Int2),
            ("pronargdefaults", Int2),
            ("prorettype", Oid),
            ("proargtypes", OidArray),
            ("proallargtypes", OidArray),
            ("proargmodes", TextArray),
            ("proargnames", TextArray),
            ("proargdefaults", Text),
            ("protrftypes", OidArray),
            ("prosrc", Text),
            ("probin", Text),
            ("prosqlbody", Text),
            ("proconfig", TextArray),
            ("proacl", TextArray),
        ],
    ),
    table(
        "pg_extension",
        Rows::None,
        &[
            ("oid", Oid),
            ("extname", Name),
            ("extowner", Oid),
            ("extnamespace", Oid),
            ("extrelocatable", Bool),
            ("extversion", Text),
            ("extconfig", OidArray),
            ("extcondition", TextArray),
        ],
    ),
    table(
        "pg_enum",
        Rows::None,
        &[
            ("oid", Oid),
            ("enumtypid", Oid),
            ("enumsortorder", Float4),
            ("enumlabel", Name),
        ],
    ),
    table(
        "pg_sequence",
        Rows::None,
        &[
            ("seqrelid", Oid),
            ("seqtypid", Oid),
            ("seqstart", Int8),
            ("seqincrement", Int8),
            ("seqmax", Int8),
            ("seqmin", Int8),
            ("seqcache", Int8),
            ("seqcycle", Bool),
        ],
    ),
    table(
        "pg_partitioned_table",
        Rows::None,
        &[
            ("partrelid", Oid),
            ("partstrat", Char),
            ("partnatts", Int2),
            ("partdefid", Oid),
            ("partattrs", Int2Array),
            ("partclass", OidArray),
            ("partcollation", OidArray),
            ("partexprs", Text),
        ],
    ),
    view(
        "pg_stat_user_tables",
        Rows::None,
        &[
            ("relid", Oid),
            ("schemaname", Name),
            ("relname", Name),
            ("seq_scan", Int8),
            ("seq_tup_read", Int8),
            ("idx_scan", Int8),
            ("idx_tup_fetch", Int8),
            ("n_tup_ins", Int8),
            ("n_tup_upd", Int8),
            ("n_tup_del", Int8),
            ("n_tup_hot_upd", Int8),
            ("n_live_tup", Int8),
            ("n_dead_tup", Int8),
            ("n_mod_since_analyze", Int8),
            ("n_ins_since_vacuum", Int8),
            ("last_vacuum", Text),
            ("last_autovacuum", Text),
            ("last_analyze", Text),
            ("last_autoanalyze", Text),
            ("vacuum_count", Int8),
            ("autovacuum_count", Int8),
            ("analyze_count", Int8),
            ("autoanalyze_count", Int8),
        ],
    ),
    table(
        "pg_foreign_table",
        Rows::None,
        &[
            ("ftrelid", Oid),
            ("ftserver", Oid),
            ("ftoptions", TextArray),
        ],
    ),
];

const INFORMATION_SCHEMA_TABLES: &[CatalogTable] = &[
    view(
        "schemata",
        Rows::Built,
        &[
            ("catalog_name", Name),
            ("schema_name", Name),
            ("schema_owner", Name),
            ("default_character_set_catalog", Name),
            ("default_character_set_schema", Name),
            ("default_character_set_name", Name),
            ("sql_path", Text),
        ],
    ),
    view(
        "tables",
        Rows::Built,
        &[
            ("table_catalog", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("table_type", Text),
            ("self_referencing_column_name", Name),
            ("reference_generation", Text),
            ("user_defined_type_catalog", Name),
            ("user_defined_type_schema", Name),
            ("user_defined_type_name", Name),
            ("is_insertable_into", Text),
            ("is_typed", Text),
            ("commit_action", Text),
        ],
    ),
    view(
        "columns",
        Rows::Built,
        &[
            ("table_catalog", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("column_name", Name),
            ("ordinal_position", Int4),
            ("column_default", Text),
            ("is_nullable", Text),
            ("data_type", Text),
            ("character_maximum_length", Int4),
            ("character_octet_length", Int4),
            ("numeric_precision", Int4),
            ("numeric_precision_radix", Int4),
            ("numeric_scale", Int4),
            ("datetime_precision", Int4),
            ("interval_type", Text),
            ("interval_precision", Int4),
            ("character_set_catalog", Name),
            ("character_set_schema", Name),
            ("character_set_name", Name),
            ("collation_catalog", Name),
            ("collation_schema", Name),
            ("collation_name", Name),
            ("domain_catalog", Name),
            ("domain_schema", Name),
            ("domain_name", Name),
            ("udt_catalog", Name),
            ("udt_schema", Name),
            ("udt_name", Name),
            ("scope_catalog", Name),
            ("scope_schema", Name),
            ("scope_name", Name),
            ("maximum_cardinality", Int4),
            ("dtd_identifier", Name),
            ("is_self_referencing", Text),
            ("is_identity", Text),
            ("identity_generation", Text),
            ("identity_start", Text),
            ("identity_increment", Text),
            ("identity_maximum", Text),
            ("identity_minimum", Text),
            ("identity_cycle", Text),
            ("is_generated", Text),
            ("generation_expression", Text),
            ("is_updatable", Text),
        ],
    ),
    view(
        "views",
        Rows::None,
        &[
            ("table_catalog", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("view_definition", Text),
            ("check_option", Text),
            ("is_updatable", Text),
            ("is_insertable_into", Text),
            ("is_trigger_updatable", Text),
            ("is_trigger_deletable", Text),
            ("is_trigger_insertable_into", Text),
        ],
    ),
    view(
        "table_constraints",
        Rows::None,
        &[
            ("constraint_catalog", Name),
            ("constraint_schema", Name),
            ("constraint_name", Name),
            ("table_catalog", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("constraint_type", Text),
            ("is_deferrable", Text),
            ("initially_deferred", Text),
            ("enforced", Text),
            ("nulls_distinct", Text),
        ],
    ),
    view(
        "key_column_usage",
        Rows::None,
        &[
            ("constraint_catalog", Name),
            ("constraint_schema", Name),
            ("constraint_name", Name),
            ("table_catalog", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("column_name", Name),
            ("ordinal_position", Int4),
            ("position_in_unique_constraint", Int4),
        ],
    ),
    view(
        "referential_constraints",
        Rows::None,
        &[
            ("constraint_catalog", Name),
            ("constraint_schema", Name),
            ("constraint_name", Name),
            ("unique_constraint_catalog", Name),
            ("unique_constraint_schema", Name),
            ("unique_constraint_name", Name),
            ("match_option", Text),
            ("update_rule", Text),
            ("delete_rule", Text),
        ],
    ),
];

fn catalog_tables(schema: &str) -> &'static [CatalogTable] {
    match schema {
        PG_CATALOG => PG_CATALOG_TABLES,
        INFORMATION_SCHEMA => INFORMATION_SCHEMA_TABLES,
        _ => &[],
    }
}

fn arrow_schema(columns: &[(&str, Column)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, column)| Field::new(*name, column.data_type(), true))
            .collect::<Vec<_>>(),
    ))
}

/// A cell of a catalog row.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::Text(text.to_owned())
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::Text(text)
    }
}

impl From<&String> for Cell {
    fn from(text: &String) -> Cell {
        Cell::Text(text.clone())
    }
}

impl From<i64> for Cell {
    fn from(value: i64) -> Cell {
        Cell::Int(value)
    }
}

impl From<i16> for Cell {
    fn from(value: i16) -> Cell {
        Cell::Int(value.into())
    }
}

impl From<bool> for Cell {
    fn from(value: bool) -> Cell {
        Cell::Bool(value)
    }
}

impl From<char> for Cell {
    fn from(value: char) -> Cell {
        Cell::Text(value.to_string())
    }
}

impl From<f64> for Cell {
    fn from(value: f64) -> Cell {
        Cell::Float(value)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(value: Option<T>) -> Cell {
        value.map_or(Cell::Null, Into::into)
    }
}

/// A catalog row: the cells it sets, by column name; the other columns take their
/// type's default (0, false, '' or NULL).
type Row = Vec<(&'static str, Cell)>;

fn default_cell(column: Column) -> Cell {
    match column {
        Column::Oid | Column::Int2 | Column::Int4 | Column::Int8 => Cell::Int(0),
        Column::Float4 => Cell::Float(0.0),
        Column::Bool => Cell::Bool(false),
        Column::Name | Column::Char => Cell::Text(String::new()),
        Column::Text | Column::TextArray | Column::OidArray | Column::Int2Array => Cell::Null,
    }
}

fn batch(table: &CatalogTable, rows: &[Row]) -> DataFusionResult<RecordBatch> {
    for row in rows {
        if let Some((unknown, _)) = row
            .iter()
            .find(|(name, _)| !table.columns.iter().any(|(column, _)| column == name))
        {
            return Err(DataFusionError::Internal(format!(
                "the catalog table {} has no column {unknown}",
                table.name
            )));
        }
    }
    let arrays = table
        .columns
        .iter()
        .map(|(name, column)| {
            let cells = rows.iter().map(|row| {
                row.iter()
                    .find(|(set, _)| set == name)
                    .map_or_else(|| default_cell(*column), |(_, cell)| cell.clone())
            });
            array(*column, cells)
        })
        .collect::<DataFusionResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(arrow_schema(table.columns), arrays)?)
}

fn array(column: Column, cells: impl Iterator<Item = Cell>) -> DataFusionResult<ArrayRef> {
    let mismatch = |cell: &Cell| {
        DataFusionError::Internal(format!("a {column:?} catalog column given {cell:?}"))
    };
    let int = |cell: Cell| match cell {
        Cell::Null => Ok(None),
        Cell::Int(value) => Ok(Some(value)),
        other => Err(mismatch(&other)),
    };
    Ok(match column {
        Column::Oid | Column::Int8 => {
            Arc::new(cells.map(int).collect::<DataFusionResult<Int64Array>>()?)
        }
        Column::Int4 => Arc::new(
            cells
                .map(|cell| Ok(int(cell)?.and_then(|value| i32::try_from(value).ok())))
                .collect::<DataFusionResult<Int32Array>>()?,
        ),
        Column::Int2 => Arc::new(
            cells
                .map(|cell| Ok(int(cell)?.and_then(|value| i16::try_from(value).ok())))
                .collect::<DataFusionResult<Int16Array>>()?,
        ),
        Column::Float4 => Arc::new(
            cells
                .map(|cell| match cell {
                    Cell::Null => Ok(None),
                    // Catalog numbers are small estimates: f32 holds them.
                    #[allow(clippy::cast_possible_truncation)]
                    Cell::Float(value) => Ok(Some(value as f32)),
                    other => Err(mismatch(&other)),
                })
                .collect::<DataFusionResult<Float32Array>>()?,
        ),
        Column::Bool => Arc::new(
            cells
                .map(|cell| match cell {
                    Cell::Null => Ok(None),
                    Cell::Bool(value) => Ok(Some(value)),
                    other => Err(mismatch(&other)),
                })
                .collect::<DataFusionResult<BooleanArray>>()?,
        ),
        Column::Name | Column::Char | Column::Text => Arc::new(
            cells
                .map(|cell| match cell {
                    Cell::Null => Ok(None),
                    Cell::Text(text) => Ok(Some(text)),
                    other => Err(mismatch(&other)),
                })
                .collect::<DataFusionResult<StringArray>>()?,
        ),
        // No catalog row OpenTrail builds sets an array.
        Column::TextArray | Column::OidArray | Column::Int2Array => {
            let cells: Vec<Cell> = cells.collect();
            if let Some(set) = cells.iter().find(|cell| **cell != Cell::Null) {
                return Err(mismatch(set));
            }
            new_null_array(&column.data_type(), cells.len())
        }
    })
}

/// A user table's oid: a hash of its name, so that it stays the same from one query to
/// the next (clients look a table's oid up, then ask about it by oid).
fn user_table_oid(name: &str) -> i64 {
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    FIRST_USER_OID + i64::from(hash % (i32::MAX as u32 - FIRST_USER_OID as u32))
}

/// The catalogs' own tables: schema, schema oid, oid, table.
fn catalog_relations() -> impl Iterator<Item = (&'static str, i64, i64, &'static CatalogTable)> {
    let numbered = |schema, schema_oid, first_oid, tables: &'static [CatalogTable]| {
        (first_oid..)
            .zip(tables)
            .map(move |(oid, table)| (schema, schema_oid, oid, table))
    };
    numbered(
        PG_CATALOG,
        PG_CATALOG_OID,
        CATALOG_TABLE_OIDS,
        PG_CATALOG_TABLES,
    )
    .chain(numbered(
        INFORMATION_SCHEMA,
        INFORMATION_SCHEMA_OID,
        CATALOG_TABLE_OIDS + 500,
        INFORMATION_SCHEMA_TABLES,
    ))
}

/// A table a catalog describes.
struct Relation {
    oid: i64,
    schema: &'static str,
    schema_oid: i64,
    name: String,
    columns: SchemaRef,
    view: bool,
}

/// The catalogs of one query: what they describe and who is asking.
#[derive(Debug)]
struct Catalog {
    session: PostgresSession,
    /// The query's own tables (the caller's event data stores).
    public: Arc<dyn SchemaProvider>,
}

impl Catalog {
    fn user_table_names(&self) -> Vec<String> {
        let mut names = self.public.table_names();
        names.sort();
        names
    }

    /// The user tables' oids, distinct even if two names hash alike.
    fn user_table_oids(&self) -> Vec<(String, i64)> {
        let mut taken = HashSet::new();
        self.user_table_names()
            .into_iter()
            .map(|name| {
                let mut oid = user_table_oid(&name);
                while !taken.insert(oid) {
                    oid += 1;
                }
                (name, oid)
            })
            .collect()
    }

    /// Every table the catalogs describe: the user tables, then the catalogs' own.
    async fn relations(&self) -> DataFusionResult<Vec<Relation>> {
        let mut relations = Vec::new();
        for (name, oid) in self.user_table_oids() {
            let Some(table) = self.public.table(&name).await? else {
                continue;
            };
            relations.push(Relation {
                oid,
                schema: PUBLIC,
                schema_oid: PUBLIC_OID,
                name,
                columns: table.schema(),
                view: false,
            });
        }
        for (schema, schema_oid, oid, table) in catalog_relations() {
            relations.push(Relation {
                oid,
                schema,
                schema_oid,
                name: table.name.to_owned(),
                columns: arrow_schema(table.columns),
                view: table.view,
            });
        }
        Ok(relations)
    }

    fn namespaces(&self) -> [(i64, &'static str); 3] {
        [
            (PG_CATALOG_OID, PG_CATALOG),
            (PUBLIC_OID, PUBLIC),
            (INFORMATION_SCHEMA_OID, INFORMATION_SCHEMA),
        ]
    }

    async fn rows(&self, table: &CatalogTable) -> DataFusionResult<Vec<Row>> {
        let user = || Cell::from(&self.session.user);
        let database = || Cell::from(&self.session.database);
        Ok(match table.name {
            "pg_namespace" => self
                .namespaces()
                .into_iter()
                .map(|(oid, name)| {
                    vec![
                        ("oid", oid.into()),
                        ("nspname", name.into()),
                        ("nspowner", OWNER_OID.into()),
                    ]
                })
                .collect(),
            "pg_class" => self
                .relations()
                .await?
                .into_iter()
                .map(|relation| {
                    let (kind, access_method) = if relation.view {
                        ('v', 0)
                    } else {
                        ('r', HEAP_AM_OID)
                    };
                    vec![
                        ("oid", relation.oid.into()),
                        ("relname", relation.name.into()),
                        ("relnamespace", relation.schema_oid.into()),
                        ("relowner", OWNER_OID.into()),
                        ("relam", access_method.into()),
                        ("relfilenode", relation.oid.into()),
                        ("reltuples", (-1.0).into()),
                        ("relpersistence", 'p'.into()),
                        ("relkind", kind.into()),
                        ("relnatts", column_count(&relation.columns).into()),
                        ("relispopulated", true.into()),
                        ("relreplident", 'd'.into()),
                    ]
                })
                .collect(),
            "pg_attribute" => self
                .relations()
                .await?
                .into_iter()
                .flat_map(|relation| {
                    let relation_oid = relation.oid;
                    (1i16..)
                        .zip(relation.columns.fields().iter())
                        .map(move |(number, field)| {
                            let pg_type = pg_type_of(field.data_type());
                            let collation = if pg_type.category == 'S' {
                                TEXT_COLLATION_OID
                            } else {
                                0
                            };
                            vec![
                                ("attrelid", relation_oid.into()),
                                ("attname", field.name().as_str().into()),
                                ("atttypid", pg_type.oid.into()),
                                ("attlen", pg_type.len.into()),
                                ("attnum", number.into()),
                                ("attcacheoff", (-1i64).into()),
                                ("atttypmod", (-1i64).into()),
                                ("attbyval", pg_type.by_value.into()),
                                ("attalign", pg_type.align.into()),
                                ("attstorage", if pg_type.len < 0 { 'x' } else { 'p' }.into()),
                                ("attnotnull", (!field.is_nullable()).into()),
                                ("attislocal", true.into()),
                                ("attstattarget", (-1i16).into()),
                                ("attcollation", collation.into()),
                            ]
                        })
                        .collect::<Vec<_>>()
                })
                .collect(),
            "pg_type" => PG_TYPES
                .iter()
                .map(|pg_type| {
                    let io = |suffix: &str| {
                        let prefix = if pg_type.category == 'A' {
                            "array_"
                        } else {
                            pg_type.name
                        };
                        Cell::from(format!("{prefix}{suffix}"))
                    };
                    vec![
                        ("oid", pg_type.oid.into()),
                        ("typname", pg_type.name.into()),
                        ("typnamespace", PG_CATALOG_OID.into()),
                        ("typowner", OWNER_OID.into()),
                        ("typlen", pg_type.len.into()),
                        ("typbyval", pg_type.by_value.into()),
                        (
                            "typtype",
                            if matches!(pg_type.category, 'X' | 'P') {
                                'p'
                            } else {
                                'b'
                            }
                            .into(),
                        ),
                        ("typcategory", pg_type.category.into()),
                        ("typisdefined", true.into()),
                        ("typdelim", ','.into()),
                        ("typelem", pg_type.element.into()),
                        ("typarray", pg_type.array.into()),
                        (
                            "typsubscript",
                            if pg_type.category == 'A' {
                                "array_subscript_handler"
                            } else {
                                "-"
                            }
                            .into(),
                        ),
                        ("typinput", io("in")),
                        ("typoutput", io("out")),
                        ("typreceive", io("recv")),
                        ("typsend", io("send")),
                        ("typmodin", "-".into()),
                        ("typmodout", "-".into()),
                        ("typanalyze", "-".into()),
                        ("typalign", pg_type.align.into()),
                        ("typstorage", if pg_type.len < 0 { 'x' } else { 'p' }.into()),
                        ("typtypmod", (-1i64).into()),
                        (
                            "typcollation",
                            if pg_type.category == 'S' {
                                TEXT_COLLATION_OID
                            } else {
                                0
                            }
                            .into(),
                        ),
                    ]
                })
                .collect(),
            "pg_database" => vec![vec![
                ("oid", DATABASE_OID.into()),
                ("datname", database()),
                ("datdba", OWNER_OID.into()),
                ("encoding", UTF8_ENCODING.into()),
                ("datlocprovider", 'c'.into()),
                ("datallowconn", true.into()),
                ("datconnlimit", (-1i64).into()),
                ("dattablespace", DEFAULT_TABLESPACE_OID.into()),
                ("datcollate", "C.UTF-8".into()),
                ("datctype", "C.UTF-8".into()),
            ]],
            "pg_am" => vec![
                vec![
                    ("oid", HEAP_AM_OID.into()),
                    ("amname", "heap".into()),
                    ("amhandler", "heap_tableam_handler".into()),
                    ("amtype", 't'.into()),
                ],
                vec![
                    ("oid", 403i64.into()),
                    ("amname", "btree".into()),
                    ("amhandler", "bthandler".into()),
                    ("amtype", 'i'.into()),
                ],
            ],
            "pg_collation" => [
                (TEXT_COLLATION_OID, "default", 'd'),
                (950, "C", 'c'),
                (951, "POSIX", 'c'),
            ]
            .into_iter()
            .map(|(oid, name, provider)| {
                vec![
                    ("oid", oid.into()),
                    ("collname", name.into()),
                    ("collnamespace", PG_CATALOG_OID.into()),
                    ("collowner", OWNER_OID.into()),
                    ("collprovider", provider.into()),
                    ("collisdeterministic", true.into()),
                    ("collencoding", (-1i64).into()),
                ]
            })
            .collect(),
            "pg_tablespace" => [(DEFAULT_TABLESPACE_OID, "pg_default"), (1664, "pg_global")]
                .into_iter()
                .map(|(oid, name)| {
                    vec![
                        ("oid", oid.into()),
                        ("spcname", name.into()),
                        ("spcowner", OWNER_OID.into()),
                    ]
                })
                .collect(),
            "pg_roles" => vec![vec![
                ("rolname", user()),
                ("rolinherit", true.into()),
                ("rolcanlogin", true.into()),
                ("rolconnlimit", (-1i64).into()),
                ("rolpassword", "********".into()),
                ("oid", OWNER_OID.into()),
            ]],
            "pg_user" => vec![vec![
                ("usename", user()),
                ("usesysid", OWNER_OID.into()),
                ("passwd", "********".into()),
            ]],
            "pg_settings" => self
                .session
                .settings
                .iter()
                .map(|(name, value)| {
                    vec![
                        ("name", name.into()),
                        ("setting", value.into()),
                        ("context", "user".into()),
                        ("vartype", "string".into()),
                        ("source", "default".into()),
                        ("boot_val", value.into()),
                        ("reset_val", value.into()),
                    ]
                })
                .collect(),
            "pg_tables" => self
                .relations()
                .await?
                .into_iter()
                .filter(|relation| !relation.view)
                .map(|relation| {
                    vec![
                        ("schemaname", relation.schema.into()),
                        ("tablename", relation.name.into()),
                        ("tableowner", user()),
                    ]
                })
                .collect(),
            "schemata" => self
                .namespaces()
                .into_iter()
                .map(|(_, name)| {
                    vec![
                        ("catalog_name", database()),
                        ("schema_name", name.into()),
                        ("schema_owner", user()),
                    ]
                })
                .collect(),
            "tables" => self
                .relations()
                .await?
                .into_iter()
                .map(|relation| {
                    vec![
                        ("table_catalog", database()),
                        ("table_schema", relation.schema.into()),
                        ("table_name", relation.name.into()),
                        (
                            "table_type",
                            if relation.view { "VIEW" } else { "BASE TABLE" }.into(),
                        ),
                        // Nothing can be written.
                        ("is_insertable_into", "NO".into()),
                        ("is_typed", "NO".into()),
                    ]
                })
                .collect(),
            "columns" => self
                .relations()
                .await?
                .into_iter()
                .flat_map(|relation| {
                    let database = database();
                    (1i64..)
                        .zip(relation.columns.fields().iter())
                        .map(move |(position, field)| {
                            let mut row = information_schema_column(field.data_type());
                            row.extend([
                                ("table_catalog", database.clone()),
                                ("table_schema", relation.schema.into()),
                                ("table_name", relation.name.as_str().into()),
                                ("column_name", field.name().as_str().into()),
                                ("ordinal_position", position.into()),
                                (
                                    "is_nullable",
                                    if field.is_nullable() { "YES" } else { "NO" }.into(),
                                ),
                                ("udt_catalog", database.clone()),
                                ("dtd_identifier", position.to_string().into()),
                            ]);
                            row
                        })
                        .collect::<Vec<_>>()
                })
                .collect(),
            _ => Vec::new(),
        })
    }
}

fn column_count(schema: &SchemaRef) -> i16 {
    i16::try_from(schema.fields().len()).unwrap_or(i16::MAX)
}

/// The type columns of `information_schema.columns` for a column of `data_type`.
fn information_schema_column(data_type: &DataType) -> Row {
    let pg_type = pg_type_of(data_type);
    let (precision, radix, scale): (Option<i64>, Option<i64>, Option<i64>) = match pg_type.oid {
        21 => (Some(16), Some(2), Some(0)),
        23 => (Some(32), Some(2), Some(0)),
        20 => (Some(64), Some(2), Some(0)),
        700 => (Some(24), Some(2), None),
        701 => (Some(53), Some(2), None),
        1700 => match data_type {
            DataType::Decimal128(precision, scale) | DataType::Decimal256(precision, scale) => (
                Some(i64::from(*precision)),
                Some(10),
                Some(i64::from(*scale)),
            ),
            _ => (None, Some(10), None),
        },
        _ => (None, None, None),
    };
    let datetime_precision = match data_type {
        DataType::Timestamp(unit, _) => Some(match unit {
            TimeUnit::Second => 0i64,
            TimeUnit::Millisecond => 3,
            TimeUnit::Microsecond | TimeUnit::Nanosecond => 6,
        }),
        DataType::Date32 | DataType::Date64 => Some(0),
        _ => None,
    };
    vec![
        (
            "data_type",
            if pg_type.category == 'A' {
                "ARRAY"
            } else {
                pg_type.sql_name
            }
            .into(),
        ),
        ("numeric_precision", precision.into()),
        ("numeric_precision_radix", radix.into()),
        ("numeric_scale", scale.into()),
        ("datetime_precision", datetime_precision.into()),
        ("udt_schema", PG_CATALOG.into()),
        ("udt_name", pg_type.name.into()),
        ("is_self_referencing", "NO".into()),
        ("is_identity", "NO".into()),
        ("is_generated", "NEVER".into()),
        ("is_updatable", "NO".into()),
    ]
}

/// `pg_catalog` or `information_schema`, built when a query names one of its tables.
#[derive(Debug)]
struct CatalogSchema {
    name: &'static str,
    catalog: Arc<Catalog>,
}

#[async_trait]
impl SchemaProvider for CatalogSchema {
    fn table_names(&self) -> Vec<String> {
        catalog_tables(self.name)
            .iter()
            .map(|table| table.name.to_owned())
            .collect()
    }

    async fn table(&self, name: &str) -> DataFusionResult<Option<Arc<dyn TableProvider>>> {
        let Some(table) = catalog_tables(self.name)
            .iter()
            .find(|table| table.name == name)
        else {
            return Ok(None);
        };
        let rows = self.catalog.rows(table).await?;
        let batch = batch(table, &rows)?;
        let provider = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(provider)))
    }

    fn table_exist(&self, name: &str) -> bool {
        catalog_tables(self.name)
            .iter()
            .any(|table| table.name == name)
    }
}

// ---------------------------------------------------------------------------- functions

type FunctionBody = dyn Fn(&[ScalarValue]) -> DataFusionResult<ScalarValue> + Send + Sync;

/// A catalog function: evaluated row by row (catalog tables are small) on any argument
/// types, which the body checks.
struct CatalogFunction {
    name: &'static str,
    signature: Signature,
    return_type: DataType,
    body: Box<FunctionBody>,
}

impl std::fmt::Debug for CatalogFunction {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CatalogFunction")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CatalogFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for CatalogFunction {}

impl std::hash::Hash for CatalogFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for CatalogFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DataFusionResult<DataType> {
        Ok(self.return_type.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        if args
            .args
            .iter()
            .all(|arg| matches!(arg, ColumnarValue::Scalar(_)))
        {
            let values: Vec<ScalarValue> = args
                .args
                .iter()
                .filter_map(|arg| match arg {
                    ColumnarValue::Scalar(value) => Some(value.clone()),
                    ColumnarValue::Array(_) => None,
                })
                .collect();
            return Ok(ColumnarValue::Scalar((self.body)(&values)?));
        }
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|arg| arg.to_array(rows))
            .collect::<DataFusionResult<Vec<_>>>()?;
        let results = (0..rows)
            .map(|row| {
                let values = arrays
                    .iter()
                    .map(|array| ScalarValue::try_from_array(array, row))
                    .collect::<DataFusionResult<Vec<_>>>()?;
                (self.body)(&values)
            })
            .collect::<DataFusionResult<Vec<_>>>()?;
        if results.is_empty() {
            return Ok(ColumnarValue::Array(new_empty_array(&self.return_type)));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(results)?))
    }
}

fn function(
    name: &'static str,
    arguments: std::ops::RangeInclusive<usize>,
    return_type: DataType,
    body: impl Fn(&[ScalarValue]) -> DataFusionResult<ScalarValue> + Send + Sync + 'static,
) -> ScalarUDF {
    let signatures: Vec<TypeSignature> = arguments
        .map(|count| {
            if count == 0 {
                TypeSignature::Nullary
            } else {
                TypeSignature::Any(count)
            }
        })
        .collect();
    ScalarUDF::new_from_impl(CatalogFunction {
        name,
        signature: Signature::one_of(signatures, Volatility::Stable),
        return_type,
        body: Box::new(body),
    })
}

fn text_value(value: Option<&str>) -> ScalarValue {
    ScalarValue::Utf8(value.map(str::to_owned))
}

/// An argument as text (`None` for NULL).
fn argument_text(value: Option<&ScalarValue>) -> Option<String> {
    match value? {
        ScalarValue::Utf8(text) | ScalarValue::LargeUtf8(text) | ScalarValue::Utf8View(text) => {
            text.clone()
        }
        other if other.is_null() => None,
        other => Some(other.to_string()),
    }
}

/// An argument as an integer (an oid, a type modifier, a size).
fn argument_int(value: Option<&ScalarValue>) -> Option<i64> {
    match value? {
        value if value.is_null() => None,
        value if value.data_type().is_integer() => {
            value
                .cast_to(&DataType::Int64)
                .ok()
                .and_then(|value| match value {
                    ScalarValue::Int64(value) => value,
                    _ => None,
                })
        }
        other => argument_text(Some(other)).and_then(|text| text.trim().parse().ok()),
    }
}

/// Whether `privileges` (`'SELECT'`, `'select, insert'`, …) holds one OpenTrail grants:
/// reading and looking, never writing.
fn grants(privileges: &str) -> bool {
    privileges.split(',').any(|privilege| {
        let privilege = privilege.trim().to_ascii_uppercase();
        let privilege = privilege.trim_end_matches(" WITH GRANT OPTION");
        matches!(privilege, "SELECT" | "USAGE" | "CONNECT" | "EXECUTE")
    })
}

/// `name` as Postgres's `quote_ident` writes it.
fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn size_pretty(bytes: i64) -> String {
    let mut size = bytes;
    for unit in ["bytes", "kB", "MB", "GB", "TB"] {
        if size.abs() < 10 * 1024 {
            return format!("{size} {unit}");
        }
        size = (size + 512) / 1024;
    }
    format!("{size} PB")
}

fn catalog_functions(
    session: &PostgresSession,
    relations: &HashMap<String, i64>,
) -> Vec<ScalarUDF> {
    let text = DataType::Utf8;
    let user = session.user.clone();
    let database = session.database.clone();
    let version = session.version.clone();
    let settings_of = session.clone();
    let pid = session.backend_pid;
    let constant = |value: &str| {
        let value = value.to_owned();
        move |_: &[ScalarValue]| Ok(text_value(Some(&value)))
    };
    let null_text = |_: &[ScalarValue]| Ok(ScalarValue::Utf8(None));
    let visible = |args: &[ScalarValue]| {
        Ok(ScalarValue::Boolean(
            argument_int(args.first()).map(|_| true),
        ))
    };
    let privilege = |args: &[ScalarValue]| {
        Ok(ScalarValue::Boolean(
            argument_text(args.last()).map(|privileges| grants(&privileges)),
        ))
    };
    let no_size = |_: &[ScalarValue]| Ok(ScalarValue::Int64(None));
    let mut functions = vec![
        function("version", 0..=0, text.clone(), constant(&version)),
        function("current_database", 0..=0, text.clone(), constant(&database)),
        function("current_catalog", 0..=0, text.clone(), constant(&database)),
        function("current_schema", 0..=0, text.clone(), constant(PUBLIC)),
        function(
            "current_schemas",
            1..=1,
            list_of(DataType::Utf8),
            |args: &[ScalarValue]| {
                let implicit = matches!(args.first(), Some(ScalarValue::Boolean(Some(true))));
                let schemas: Vec<ScalarValue> = implicit
                    .then_some(PG_CATALOG)
                    .into_iter()
                    .chain([PUBLIC])
                    .map(|schema| text_value(Some(schema)))
                    .collect();
                Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                    &schemas,
                    &DataType::Utf8,
                )))
            },
        ),
        function("pg_backend_pid", 0..=0, DataType::Int32, move |_| {
            Ok(ScalarValue::Int32(Some(pid)))
        }),
        function("pg_is_in_recovery", 0..=0, DataType::Boolean, |_| {
            Ok(ScalarValue::Boolean(Some(false)))
        }),
        function("pg_my_temp_schema", 0..=0, DataType::Int64, |_| {
            Ok(ScalarValue::Int64(Some(0)))
        }),
        function("pg_table_is_visible", 1..=1, DataType::Boolean, visible),
        function("pg_type_is_visible", 1..=1, DataType::Boolean, visible),
        function("pg_function_is_visible", 1..=1, DataType::Boolean, visible),
        function(
            "pg_relation_is_publishable",
            1..=1,
            DataType::Boolean,
            |_| Ok(ScalarValue::Boolean(Some(false))),
        ),
        function(
            "format_type",
            2..=2,
            text.clone(),
            |args: &[ScalarValue]| {
                Ok(text_value(argument_int(args.first()).map(|oid| {
                    pg_type(oid).map_or("???", |pg_type| pg_type.sql_name)
                })))
            },
        ),
        function(
            "pg_encoding_to_char",
            1..=1,
            text.clone(),
            |args: &[ScalarValue]| {
                Ok(text_value(argument_int(args.first()).map(|encoding| {
                    if encoding == UTF8_ENCODING {
                        "UTF8"
                    } else {
                        ""
                    }
                })))
            },
        ),
        function(
            "pg_size_pretty",
            1..=1,
            text.clone(),
            |args: &[ScalarValue]| {
                Ok(ScalarValue::Utf8(
                    argument_int(args.first()).map(size_pretty),
                ))
            },
        ),
        function(
            "quote_ident",
            1..=1,
            text.clone(),
            |args: &[ScalarValue]| {
                Ok(ScalarValue::Utf8(
                    argument_text(args.first()).map(|name| quote_ident(&name)),
                ))
            },
        ),
        function("current_setting", 1..=2, text.clone(), move |args| {
            let Some(name) = argument_text(args.first()) else {
                return Ok(ScalarValue::Utf8(None));
            };
            let missing_ok = matches!(args.get(1), Some(ScalarValue::Boolean(Some(true))));
            match settings_of.setting(&name) {
                Some(value) => Ok(text_value(Some(value))),
                None if missing_ok => Ok(ScalarValue::Utf8(None)),
                None => Err(DataFusionError::Plan(format!(
                    "unrecognized configuration parameter \"{name}\""
                ))),
            }
        }),
        // Settings cannot change: the value is answered as Postgres would, and ignored.
        function(
            "set_config",
            3..=3,
            text.clone(),
            |args: &[ScalarValue]| Ok(ScalarValue::Utf8(argument_text(args.get(1)))),
        ),
        function(
            "to_regclass",
            1..=1,
            DataType::Int64,
            regclass_lookup(relations.clone()),
        ),
    ];
    functions.push(function(
        "parse_ident",
        1..=2,
        list_of(DataType::Utf8),
        |args: &[ScalarValue]| {
            let Some(name) = argument_text(args.first()) else {
                return Ok(ScalarValue::new_null_list(DataType::Utf8, true, 1));
            };
            let parts = split_qualified_name(&name).ok_or_else(|| {
                DataFusionError::Plan(format!("string is not a valid identifier: \"{name}\""))
            })?;
            let parts: Vec<ScalarValue> = parts.iter().map(|part| text_value(Some(part))).collect();
            Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                &parts,
                &DataType::Utf8,
            )))
        },
    ));
    // Postgres arrays here are one-dimensional and start at 1.
    for (name, upper) in [("array_lower", false), ("array_upper", true)] {
        functions.push(function(
            name,
            2..=2,
            DataType::Int64,
            move |args: &[ScalarValue]| {
                let length = match args.first() {
                    Some(ScalarValue::List(list)) if !list.is_null(0) => {
                        i64::try_from(list.value(0).len()).ok()
                    }
                    _ => None,
                };
                let dimension = argument_int(args.get(1));
                Ok(ScalarValue::Int64(match (length, dimension) {
                    (Some(length), Some(1)) if length > 0 => Some(if upper { length } else { 1 }),
                    _ => None,
                }))
            },
        ));
    }
    for name in ["current_user", "session_user", "user", "current_role"] {
        functions.push(function(name, 0..=0, text.clone(), constant(&user)));
    }
    functions.push(function(
        "pg_get_userbyid",
        1..=1,
        text.clone(),
        move |args: &[ScalarValue]| {
            Ok(ScalarValue::Utf8(
                argument_int(args.first()).map(|_| user.clone()),
            ))
        },
    ));
    for name in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_column_privilege",
        "has_any_column_privilege",
        "has_function_privilege",
        "has_sequence_privilege",
        "has_tablespace_privilege",
    ] {
        functions.push(function(name, 2..=4, DataType::Boolean, privilege));
    }
    // Definitions and descriptions of things OpenTrail has none of.
    for (name, arguments) in [
        ("pg_get_expr", 2..=3),
        ("obj_description", 1..=2),
        ("col_description", 2..=2),
        ("shobj_description", 2..=2),
        ("pg_get_indexdef", 1..=3),
        ("pg_get_constraintdef", 1..=2),
        ("pg_get_viewdef", 1..=2),
        ("pg_get_triggerdef", 1..=2),
        ("pg_get_ruledef", 1..=2),
        ("pg_get_functiondef", 1..=1),
        ("pg_get_function_arguments", 1..=1),
        ("pg_get_function_identity_arguments", 1..=1),
        ("pg_get_function_result", 1..=1),
        ("pg_get_partkeydef", 1..=1),
        ("pg_get_statisticsobjdef_columns", 1..=1),
        ("pg_get_serial_sequence", 2..=2),
        ("pg_tablespace_location", 1..=1),
    ] {
        functions.push(function(name, arguments, text.clone(), null_text));
    }
    // Tables have no size on disk of their own (their events live in the store), and no
    // statistics.
    for (name, arguments) in [
        ("pg_stat_get_numscans", 1..=1),
        ("pg_stat_get_tuples_returned", 1..=1),
        ("pg_stat_get_tuples_fetched", 1..=1),
        ("pg_stat_get_live_tuples", 1..=1),
        ("pg_stat_get_dead_tuples", 1..=1),
        ("pg_table_size", 1..=1),
        ("pg_relation_size", 1..=2),
        ("pg_total_relation_size", 1..=1),
        ("pg_indexes_size", 1..=1),
        ("pg_database_size", 1..=1),
    ] {
        functions.push(function(name, arguments, DataType::Int64, no_size));
    }
    functions
}

fn regclass_lookup(
    relations: HashMap<String, i64>,
) -> impl Fn(&[ScalarValue]) -> DataFusionResult<ScalarValue> + Send + Sync + 'static {
    move |args: &[ScalarValue]| {
        Ok(ScalarValue::Int64(
            argument_text(args.first()).and_then(|name| relation_oid(&relations, &name)),
        ))
    }
}

/// The oid of the relation `name` (`t`, `"T"`, `schema.t`) names, as `::regclass` reads
/// it: unquoted parts are lower-cased.
fn relation_oid(relations: &HashMap<String, i64>, name: &str) -> Option<i64> {
    if let Ok(oid) = name.trim().parse::<i64>() {
        return Some(oid);
    }
    let parts = split_qualified_name(name)?;
    let (schema, table) = match parts.as_slice() {
        [table] => (None, table.as_str()),
        [schema, table] => (Some(schema.as_str()), table.as_str()),
        [_database, schema, table] => (Some(schema.as_str()), table.as_str()),
        _ => return None,
    };
    let key = |schema: &str| format!("{schema}.{table}");
    match schema {
        Some(schema) => relations.get(&key(schema)).copied(),
        // The search path: the user's tables first, then the catalogs.
        None => [PUBLIC, PG_CATALOG]
            .iter()
            .find_map(|schema| relations.get(&key(schema)).copied()),
    }
}

/// `a."B".c` as its parts, unquoted ones lower-cased; `None` when it is malformed.
fn split_qualified_name(name: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = name.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    other => part.push(other),
                }
            }
        } else {
            while let Some(&next) = chars.peek() {
                if next == '.' {
                    break;
                }
                part.push(next.to_ascii_lowercase());
                chars.next();
            }
            if part.is_empty() {
                return None;
            }
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => {}
            Some(_) => return None,
        }
    }
}

// ---------------------------------------------------------------------------- statements

/// What the rewriting of a statement needs to know of its catalog.
struct Registered {
    /// The query's own tables, which a bare `pg_…` name means before a catalog table.
    user_tables: HashSet<String>,
    /// Relation oids by `schema.name`.
    relations: HashMap<String, i64>,
}

/// Registers the catalogs and functions of `session` in `context`, whose default catalog
/// is the session's database and whose `public` schema holds the query's tables.
fn register(context: &SessionContext, session: &PostgresSession) -> DataFusionResult<Registered> {
    let database = context
        .catalog(&session.database)
        .ok_or_else(|| DataFusionError::Internal(format!("no catalog {}", session.database)))?;
    let public = database
        .schema(PUBLIC)
        .ok_or_else(|| DataFusionError::Internal("no public schema".to_owned()))?;
    let catalog = Arc::new(Catalog {
        session: session.clone(),
        public,
    });
    for name in [PG_CATALOG, INFORMATION_SCHEMA] {
        database.register_schema(
            name,
            Arc::new(CatalogSchema {
                name,
                catalog: Arc::clone(&catalog),
            }),
        )?;
    }
    let relations = relation_oids(&catalog);
    for function in catalog_functions(session, &relations) {
        context.register_udf(function);
    }
    Ok(Registered {
        user_tables: catalog.user_table_names().into_iter().collect(),
        relations,
    })
}

/// Every relation's oid by `schema.name`.
fn relation_oids(catalog: &Catalog) -> HashMap<String, i64> {
    let mut oids: HashMap<String, i64> = catalog
        .user_table_oids()
        .into_iter()
        .map(|(name, oid)| (format!("{PUBLIC}.{name}"), oid))
        .collect();
    for (schema, _, oid, table) in catalog_relations() {
        oids.insert(format!("{schema}.{}", table.name), oid);
    }
    oids
}

/// Parses `sql` as Postgres does, checking it is one query.
pub(crate) fn parse(sql: &str) -> Result<Statement, LakeError> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|error| LakeError::InvalidQuery(error.to_string()))?;
    crate::engine::check_one_statement(statements.len())?;
    let statement = statements.remove(0);
    if !matches!(statement, Statement::Query(_)) {
        let text = statement.to_string();
        let words: Vec<&str> = text.split_whitespace().take(3).collect();
        return Err(LakeError::NotSelect(format!(
            "{} is not a SELECT",
            words.join(" ")
        )));
    }
    Ok(statement)
}

/// Plans a Postgres client's query over the tables registered in `context` (whose default
/// catalog is named after the session's database), with the catalogs and functions of
/// `session` and Postgres's spellings rewritten; placeholders are left in the plan.
pub(crate) async fn plan(
    context: &SessionContext,
    statement: Statement,
    session: &PostgresSession,
) -> DataFusionResult<LogicalPlan> {
    let registered = register(context, session)?;
    let mut rewriter = Rewriter {
        user_tables: &registered.user_tables,
        relations: &registered.relations,
        reads_catalog: false,
        scalar_functions: {
            let state = context.state();
            state
                .scalar_functions()
                .keys()
                .filter(|name| !state.table_functions().contains_key(*name))
                .cloned()
                .collect()
        },
        error: None,
    };
    let mut statement = statement;
    let _ = statement.visit(&mut rewriter);
    if let Some(error) = rewriter.error {
        return Err(error);
    }
    let state = context.state();
    if !rewriter.reads_catalog {
        return to_plan(&state, &statement).await;
    }
    // Clients' catalog queries go further than DataFusion in places; what OpenTrail's
    // catalog holds lets each step down answer the same.
    let _ = statement.visit(&mut ScalarSubqueriesAggregated);
    let first_error = match to_plan(&state, &statement).await {
        Ok(plan) if !plan.get_parameter_names()?.is_empty() => return Ok(plan),
        Ok(plan) => match executable(&state, &plan) {
            Ok(()) => return Ok(plan),
            Err(error) => error,
        },
        Err(error) => error,
    };
    // Sort keys with subqueries, computed as columns first (Grafana's search path test).
    let sorted = sort_keys_computed_first(&statement);
    // A lookup DataFusion cannot decorrelate (`(SELECT … WHERE d.adrelid = a.attrelid AND
    // a.atthasdef)`) is about defaults, collations and the like, which OpenTrail has none of.
    let without_lookups = |statement: &Statement| {
        let mut statement = statement.clone();
        let _ = statement.visit(&mut ProjectedSubqueriesNull);
        statement
    };
    let mut fallbacks = Vec::new();
    fallbacks.extend(sorted.clone());
    fallbacks.push(without_lookups(&statement));
    fallbacks.extend(sorted.as_ref().map(without_lookups));
    for fallback in &fallbacks {
        if let Ok(plan) = to_plan(&state, fallback).await
            && executable(&state, &plan).is_ok()
        {
            return Ok(plan);
        }
    }
    // Arrays built from subqueries, `= ANY` over arrays, …, over a catalog table OpenTrail has
    // no rows in: nothing to answer.
    match empty_answer(&statement) {
        Some(columns) => empty_relation(&columns),
        None => Err(first_error),
    }
}

/// Plans `statement`; where Postgres allows result columns of the same name (`SELECT
/// n.oid, n.*`) and DataFusion does not, the columns named besides a `*` are renamed.
async fn to_plan(
    state: &datafusion::execution::SessionState,
    statement: &Statement,
) -> DataFusionResult<LogicalPlan> {
    let plan = |statement: &Statement| {
        state.statement_to_plan(DataFusionStatement::Statement(Box::new(statement.clone())))
    };
    match plan(statement).await {
        Err(error)
            if error
                .to_string()
                .contains("require unique expression names") =>
        {
            let mut renamed = statement.clone();
            let _ = renamed.visit(&mut ColumnsBesidesWildcardsRenamed);
            plan(&renamed).await.map_err(|_| error)
        }
        planned => planned,
    }
}

/// `SELECT a AS x FROM t ORDER BY <expr with a subquery>` as `SELECT x FROM (SELECT a AS
/// x, <expr> AS sort_key_1 FROM t) AS sorted ORDER BY sort_key_1`: DataFusion decorrelates
/// subqueries among a select's columns, not in its `ORDER BY`. `None` when the select is
/// not plain enough to be wrapped so (grouped, distinct, unnamed columns).
fn sort_keys_computed_first(statement: &Statement) -> Option<Statement> {
    let Statement::Query(query) = statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let grouped =
        !matches!(&select.group_by, sql::GroupByExpr::Expressions(exprs, _) if exprs.is_empty());
    if grouped || select.distinct.is_some() || select.having.is_some() {
        return None;
    }
    let sql::OrderByKind::Expressions(order) = &query.order_by.as_ref()?.kind else {
        return None;
    };
    let mut outputs = Vec::new();
    for item in &select.projection {
        outputs.push(match item {
            SelectItem::ExprWithAlias { alias, .. } => alias.clone(),
            SelectItem::UnnamedExpr(Expr::Identifier(ident)) => ident.clone(),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => parts.last()?.clone(),
            _ => return None,
        });
    }
    let mut inner = select.as_ref().clone();
    let mut sort_keys = Vec::new();
    for (index, key) in order.iter().enumerate() {
        let mut key = key.clone();
        // A position refers to the same column outside.
        if !matches!(&key.expr, Expr::Value(value) if matches!(value.value, Value::Number(..))) {
            let name = Ident::new(format!("sort_key_{}", index + 1));
            inner.projection.push(SelectItem::ExprWithAlias {
                expr: key.expr,
                alias: name.clone(),
            });
            key.expr = Expr::Identifier(name);
        }
        sort_keys.push(key.to_string());
    }
    let columns: Vec<String> = outputs.iter().map(ToString::to_string).collect();
    let mut sql = String::new();
    if let Some(with) = &query.with {
        sql.push_str(&format!("{with} "));
    }
    sql.push_str(&format!(
        "SELECT {} FROM ({inner}) AS sorted ORDER BY {}",
        columns.join(", "),
        sort_keys.join(", ")
    ));
    if let Some(limit) = &query.limit_clause {
        sql.push_str(&format!("{limit}"));
    }
    parse(&sql).ok()
}

/// In a select with a `*`, each column named explicitly as `name_1`: the `*` may hold
/// another column of that name.
struct ColumnsBesidesWildcardsRenamed;

impl VisitorMut for ColumnsBesidesWildcardsRenamed {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        let has_wildcard = select.projection.iter().any(|item| {
            matches!(
                item,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        });
        if !has_wildcard {
            return ControlFlow::Continue(());
        }
        for item in &mut select.projection {
            if let SelectItem::UnnamedExpr(expr) = item
                && matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                && let Some(name) = postgres_column_name(expr)
            {
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::with_quote('"', format!("{name}_1")),
                };
            }
        }
        ControlFlow::Continue(())
    }
}

/// Fails when `plan` would not run: the optimizer refuses it or leaves a subquery in it.
fn executable(
    state: &datafusion::execution::SessionState,
    plan: &LogicalPlan,
) -> DataFusionResult<()> {
    let optimized = state.optimize(plan)?;
    let subquery_left = optimized.exists(|node| {
        Ok(node.expressions().iter().any(|expr| {
            expr.exists(|expr| {
                Ok(matches!(
                    expr,
                    datafusion::logical_expr::Expr::ScalarSubquery(_)
                        | datafusion::logical_expr::Expr::Exists(_)
                        | datafusion::logical_expr::Expr::InSubquery(_)
                ))
            })
            .unwrap_or(true)
        }))
    })?;
    if subquery_left {
        return Err(DataFusionError::NotImplemented(
            "a correlated subquery DataFusion cannot decorrelate".to_owned(),
        ));
    }
    Ok(())
}

/// The parameters `plan` takes (`$1`, `$2`, …), with the types it infers for them.
pub(crate) fn parameter_types(plan: &LogicalPlan) -> DataFusionResult<Vec<Option<DataType>>> {
    let types = plan.get_parameter_types()?;
    let count = types
        .keys()
        .filter_map(|id| id.strip_prefix('$')?.parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    Ok((1..=count)
        .map(|index| types.get(&format!("${index}")).cloned().flatten())
        .collect())
}

/// `plan` with its parameters bound to `values`, each read as the type the plan expects
/// of it, else as the type the client declared, else as text.
pub(crate) fn bind(
    plan: LogicalPlan,
    values: &[PostgresParameter],
) -> DataFusionResult<LogicalPlan> {
    let types = parameter_types(&plan)?;
    if types.len() > values.len() {
        return Err(DataFusionError::Plan(format!(
            "the statement takes {} parameters but {} were given",
            types.len(),
            values.len()
        )));
    }
    if types.is_empty() && values.is_empty() {
        return Ok(plan);
    }
    let scalars = values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let wanted = types
                .get(index)
                .cloned()
                .flatten()
                .or_else(|| value.declared.clone())
                .filter(|data_type| !matches!(data_type, DataType::Utf8 | DataType::Null));
            let text = ScalarValue::Utf8(value.text.clone());
            match wanted {
                Some(data_type) => text.cast_to(&data_type).map_err(|_| {
                    DataFusionError::Plan(format!(
                        "invalid value for parameter ${}: {:?} is not a {}",
                        index + 1,
                        value.text.as_deref().unwrap_or_default(),
                        pg_type_of(&data_type).sql_name
                    ))
                }),
                None => Ok(text),
            }
        })
        .collect::<DataFusionResult<Vec<_>>>()?;
    plan.with_param_values(ParamValues::from(scalars))
}

fn empty_relation(columns: &[String]) -> DataFusionResult<LogicalPlan> {
    let schema = Schema::new(
        columns
            .iter()
            .map(|name| Field::new(name, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    Ok(LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(DFSchema::try_from(schema)?),
    }))
}

/// Postgres's spellings as DataFusion reads them.
struct Rewriter<'a> {
    /// The query's own tables, which a bare `pg_…` name means before a catalog table.
    user_tables: &'a HashSet<String>,
    /// Relation oids by `schema.name`, for `'name'::regclass`.
    relations: &'a HashMap<String, i64>,
    /// Whether the statement names a `pg_catalog` or `information_schema` table.
    reads_catalog: bool,
    /// The session's scalar functions that are not table functions: Postgres lets one
    /// select from them.
    scalar_functions: HashSet<String>,
    error: Option<DataFusionError>,
}

/// `SELECT function(args) AS column`.
fn one_value_table(
    function: &ObjectName,
    args: &[sql::FunctionArg],
    column: &Ident,
) -> DataFusionResult<Box<sql::Query>> {
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    let sql = format!("SELECT {function}({}) AS {column}", args.join(", "));
    match parse(&sql) {
        Ok(Statement::Query(query)) => Ok(query),
        Ok(_) | Err(_) => Err(DataFusionError::Plan(format!(
            "{function} cannot be read as a table"
        ))),
    }
}

/// Casts to types that are oids in Postgres (`::regclass` answers a table's oid).
const OID_TYPES: &[&str] = &[
    "oid",
    "regclass",
    "regtype",
    "regnamespace",
    "regrole",
    "regoper",
    "regoperator",
    "regconfig",
    "xid",
    "xid8",
    "cid",
];

/// Types of function references, which the catalog holds as function names
/// (`pg_type.typinput = 'array_in'`).
const FUNCTION_NAME_TYPES: &[&str] = &["regproc", "regprocedure"];

/// Casts to Postgres's internal text-like types.
const TEXT_TYPES: &[&str] = &[
    "name",
    "char",
    "bpchar",
    "int2vector",
    "oidvector",
    "pg_node_tree",
    "aclitem",
    "unknown",
];

fn last_part_lower(name: &ObjectName) -> Option<String> {
    match name.0.last()? {
        ObjectNamePart::Identifier(ident) => Some(identifier_name(ident)),
        ObjectNamePart::Function(_) => None,
    }
}

fn is_pg_catalog(part: &ObjectNamePart) -> bool {
    matches!(part, ObjectNamePart::Identifier(ident) if ident.value.eq_ignore_ascii_case(PG_CATALOG))
}

/// The name a Postgres type written in a cast stands for (`pg_catalog.regclass` →
/// `regclass`), when it is one DataFusion does not know.
fn postgres_only_type(data_type: &sql::DataType) -> Option<String> {
    match data_type {
        sql::DataType::Regclass => Some("regclass".to_owned()),
        sql::DataType::Custom(name, modifiers) if modifiers.is_empty() => {
            let qualified_ok =
                name.0.len() == 1 || (name.0.len() == 2 && is_pg_catalog(&name.0[0]));
            qualified_ok.then(|| last_part_lower(name)).flatten()
        }
        _ => None,
    }
}

fn number(value: i64) -> Expr {
    Expr::Value(Value::Number(value.to_string(), false).with_empty_span())
}

fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text)
            | Value::EscapedStringLiteral(text)
            | Value::DoubleQuotedString(text) => Some(text),
            _ => None,
        },
        _ => None,
    }
}

impl Rewriter<'_> {
    /// `'name'::regclass` and the like: the oid, looked up now.
    fn oid_of_literal(&self, type_name: &str, text: &str) -> Result<i64, DataFusionError> {
        if let Ok(oid) = text.trim().parse::<i64>() {
            return Ok(oid);
        }
        let found = match type_name {
            "regclass" => relation_oid(self.relations, text),
            "regtype" => type_oid_named(text),
            "regnamespace" => [
                (PG_CATALOG, PG_CATALOG_OID),
                (PUBLIC, PUBLIC_OID),
                (INFORMATION_SCHEMA, INFORMATION_SCHEMA_OID),
            ]
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, oid)| *oid),
            _ => None,
        };
        found.ok_or_else(|| {
            let what = match type_name {
                "regclass" => "relation",
                "regtype" => "type",
                "regnamespace" => "schema",
                other => other,
            };
            DataFusionError::Plan(format!("{what} \"{text}\" does not exist"))
        })
    }

    fn rewrite_cast(&mut self, expr: &mut Expr) {
        let Expr::Cast {
            expr: operand,
            data_type,
            ..
        } = expr
        else {
            return;
        };
        // `'name'::regclass` and the like: looked up now.
        if let Some(type_name) = postgres_only_type(data_type)
            && let Some(text) = string_literal(operand)
        {
            if FUNCTION_NAME_TYPES.contains(&type_name.as_str()) {
                let name = text.strip_prefix("pg_catalog.").unwrap_or(text).to_owned();
                *expr = Expr::Value(Value::SingleQuotedString(name).with_empty_span());
            } else if OID_TYPES.contains(&type_name.as_str()) {
                match self.oid_of_literal(&type_name, text) {
                    Ok(oid) => *expr = number(oid),
                    Err(error) => self.error = Some(error),
                }
            }
            if !matches!(expr, Expr::Cast { .. }) {
                return;
            }
        }
        if let Expr::Cast { data_type, .. } = expr
            && let Some(readable) = datafusion_type(data_type)
        {
            *data_type = readable;
        }
    }
}

/// A Postgres type as DataFusion reads it, when it spells it otherwise: oids (`regclass`,
/// `oid`, …) as `bigint`, names and functions as text, `pg_catalog.int4` as `int`, arrays
/// of these as arrays.
fn datafusion_type(data_type: &sql::DataType) -> Option<sql::DataType> {
    if let sql::DataType::Array(sql::ArrayElemTypeDef::SquareBracket(element, size)) = data_type {
        return datafusion_type(element).map(|element| {
            sql::DataType::Array(sql::ArrayElemTypeDef::SquareBracket(
                Box::new(element),
                *size,
            ))
        });
    }
    let type_name = postgres_only_type(data_type)?;
    Some(match type_name.as_str() {
        name if OID_TYPES.contains(&name) => sql::DataType::BigInt(None),
        name if FUNCTION_NAME_TYPES.contains(&name) || TEXT_TYPES.contains(&name) => {
            sql::DataType::Text
        }
        "text" | "varchar" => sql::DataType::Text,
        "int2" | "smallint" => sql::DataType::SmallInt(None),
        "int4" | "integer" | "int" => sql::DataType::Int(None),
        "int8" | "bigint" => sql::DataType::BigInt(None),
        "float4" | "real" => sql::DataType::Real,
        "float8" => sql::DataType::DoublePrecision,
        "bool" | "boolean" => sql::DataType::Boolean,
        "numeric" => sql::DataType::Numeric(sql::ExactNumberInfo::None),
        "date" => sql::DataType::Date,
        "timestamptz" => sql::DataType::Timestamp(None, sql::TimezoneInfo::WithTimeZone),
        "timestamp" => sql::DataType::Timestamp(None, sql::TimezoneInfo::None),
        _ => return None,
    })
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name, args, alias, ..
        } = factor
        {
            if let Some(args) = args {
                // A table function: DataFusion knows them by bare name.
                if name.0.len() == 2 && is_pg_catalog(&name.0[0]) {
                    name.0.remove(0);
                }
                let function = last_part_lower(name).unwrap_or_default();
                if matches!(function.as_str(), "generate_series" | "range")
                    && let Some(alias) = alias
                    && alias.columns.is_empty()
                {
                    // `generate_series(1, 3) AS i`: Postgres names the one column `i`.
                    alias.columns.push(sql::TableAliasColumnDef::from_name(
                        alias.name.value.clone(),
                    ));
                } else if self.scalar_functions.contains(&function) {
                    // `FROM string_to_array(…) s`: a one-row table of the value, `s`.
                    let column = alias
                        .as_ref()
                        .map_or_else(|| Ident::new(function.clone()), |alias| alias.name.clone());
                    match one_value_table(name, &args.args, &column) {
                        Ok(subquery) => {
                            *factor = TableFactor::Derived {
                                lateral: false,
                                subquery,
                                alias: Some(sql::TableAlias {
                                    explicit: true,
                                    name: column,
                                    columns: Vec::new(),
                                    at: None,
                                }),
                                sample: None,
                            };
                        }
                        Err(error) => self.error = Some(error),
                    }
                }
                return ControlFlow::Continue(());
            }
            let parts: Vec<String> = name
                .0
                .iter()
                .filter_map(|part| match part {
                    ObjectNamePart::Identifier(ident) => Some(ident.value.to_ascii_lowercase()),
                    ObjectNamePart::Function(_) => None,
                })
                .collect();
            match parts.as_slice() {
                [table]
                    if !self.user_tables.contains(table)
                        && !self.user_tables.contains(&name.to_string())
                        && catalog_tables(PG_CATALOG)
                            .iter()
                            .any(|catalog| catalog.name == table) =>
                {
                    // Postgres searches pg_catalog first, so `FROM pg_class` finds it.
                    name.0
                        .insert(0, ObjectNamePart::Identifier(Ident::new(PG_CATALOG)));
                    self.reads_catalog = true;
                }
                [.., schema, _] if schema == PG_CATALOG || schema == INFORMATION_SCHEMA => {
                    self.reads_catalog = true;
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        name_columns_as_postgres(&mut select.projection);
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut sql::Query) -> ControlFlow<()> {
        // `LIMIT $1`: DataFusion gives such a parameter no type, Postgres a bigint.
        if let Some(sql::LimitClause::LimitOffset { limit, offset, .. }) = &mut query.limit_clause {
            for count in limit
                .iter_mut()
                .chain(offset.iter_mut().map(|offset| &mut offset.value))
            {
                if matches!(count, Expr::Value(value) if matches!(value.value, Value::Placeholder(_)))
                {
                    let placeholder = std::mem::replace(count, number(0));
                    *count = Expr::Cast {
                        kind: sql::CastKind::DoubleColon,
                        expr: Box::new(placeholder),
                        data_type: sql::DataType::BigInt(None),
                        array: false,
                        format: None,
                    };
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            // Collations are byte order here.
            Expr::Collate { expr: inner, .. } => {
                let inner = std::mem::replace(inner.as_mut(), number(0));
                *expr = inner;
                // The inner expression is visited as this one.
                return self.pre_visit_expr(expr);
            }
            Expr::BinaryOp { op, .. } => {
                if let BinaryOperator::PGCustomBinaryOperator(parts) = op
                    && parts.len() == 2
                    && parts[0].eq_ignore_ascii_case(PG_CATALOG)
                    && let Some(builtin) = builtin_operator(&parts[1])
                {
                    *op = builtin;
                }
            }
            Expr::Function(function) => {
                if function.name.0.len() == 2 && is_pg_catalog(&function.name.0[0]) {
                    function.name.0.remove(0);
                }
                array_of_subquery(expr);
            }
            // `current_schema` is a function Postgres lets one call without parentheses.
            Expr::Identifier(ident)
                if ident.quote_style.is_none()
                    && ident.value.eq_ignore_ascii_case("current_schema") =>
            {
                *expr = call("current_schema", Vec::new());
            }
            Expr::Cast { .. } => self.rewrite_cast(expr),
            Expr::AnyOp { .. } | Expr::AllOp { .. } => array_literal_as_list(expr),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Catalog queries look a value up with a correlated subquery that finds at most one row
/// (`(SELECT c.collname FROM pg_collation c WHERE c.oid = a.attcollation)`); DataFusion
/// plans one only when it is aggregated, so its value is taken as `max(value)`.
struct ScalarSubqueriesAggregated;

impl VisitorMut for ScalarSubqueriesAggregated {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Subquery(query) = expr else {
            return ControlFlow::Continue(());
        };
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let grouped = !matches!(&select.group_by, sql::GroupByExpr::Expressions(exprs, _) if exprs.is_empty());
        if grouped || select.projection.len() != 1 || query.limit_clause.is_some() {
            return ControlFlow::Continue(());
        }
        let (SelectItem::UnnamedExpr(value) | SelectItem::ExprWithAlias { expr: value, .. }) =
            &mut select.projection[0]
        else {
            return ControlFlow::Continue(());
        };
        if !AggregateFinder::finds_in(value) {
            let inner = std::mem::replace(value, number(0));
            *value = call("max", vec![inner]);
        }
        ControlFlow::Continue(())
    }
}

/// Every column of a select that holds a subquery, as NULL (named as before).
struct ProjectedSubqueriesNull;

impl VisitorMut for ProjectedSubqueriesNull {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        for item in &mut select.projection {
            let (expr, alias) = match item {
                SelectItem::UnnamedExpr(expr) => (expr, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
                _ => continue,
            };
            if !SubqueryFinder::finds_in(expr) {
                continue;
            }
            let alias = alias
                .or_else(|| postgres_column_name(expr).map(|name| Ident::with_quote('"', name)));
            let null = Expr::Value(Value::Null.with_empty_span());
            *item = match alias {
                Some(alias) => SelectItem::ExprWithAlias { expr: null, alias },
                None => SelectItem::UnnamedExpr(null),
            };
        }
        ControlFlow::Continue(())
    }
}

struct SubqueryFinder {
    found: bool,
}

impl SubqueryFinder {
    fn finds_in(expr: &Expr) -> bool {
        let mut finder = SubqueryFinder { found: false };
        let _ = expr.clone().visit(&mut finder);
        finder.found
    }
}

impl VisitorMut for SubqueryFinder {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut sql::Query) -> ControlFlow<()> {
        self.found = true;
        ControlFlow::Break(())
    }
}

/// `ARRAY(SELECT value FROM …)`, which DataFusion lacks, as
/// `(SELECT array_agg(value) FROM …)`: NULL rather than `{}` when nothing is found.
fn array_of_subquery(expr: &mut Expr) {
    let Expr::Function(function) = expr else {
        return;
    };
    if last_part_lower(&function.name).as_deref() != Some("array") {
        return;
    }
    let FunctionArguments::Subquery(query) = &mut function.args else {
        return;
    };
    let mut query = query.clone();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let [SelectItem::UnnamedExpr(value) | SelectItem::ExprWithAlias { expr: value, .. }] =
        select.projection.as_mut_slice()
    else {
        return;
    };
    let inner = std::mem::replace(value, number(0));
    *value = call("array_agg", vec![inner]);
    // The order of an aggregate's input is not the query's: it is dropped.
    query.order_by = None;
    *expr = Expr::Subquery(query);
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(sql::Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|arg| sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(arg)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// `x = ANY('{a,b}')` and `x <> ALL('{a,b}')`, an array written as text, as `x IN ('a',
/// 'b')` and `x NOT IN ('a', 'b')`.
fn array_literal_as_list(expr: &mut Expr) {
    let (left, right, negated) = match expr {
        Expr::AnyOp {
            left,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        } => (left, right, false),
        Expr::AllOp {
            left,
            compare_op: BinaryOperator::NotEq,
            right,
        } => (left, right, true),
        _ => return,
    };
    let Some(elements) = string_literal(right).and_then(|text| {
        text.trim()
            .strip_prefix('{')?
            .strip_suffix('}')
            .map(str::to_owned)
    }) else {
        return;
    };
    let list = elements
        .split(',')
        .map(|element| element.trim().trim_matches('"'))
        .filter(|element| !element.is_empty())
        .map(|element| Expr::Value(Value::SingleQuotedString(element.to_owned()).with_empty_span()))
        .collect();
    *expr = Expr::InList {
        expr: left.clone(),
        list,
        negated,
    };
}

fn builtin_operator(name: &str) -> Option<BinaryOperator> {
    Some(match name {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "~~" => BinaryOperator::PGLikeMatch,
        "~~*" => BinaryOperator::PGILikeMatch,
        "!~~" => BinaryOperator::PGNotLikeMatch,
        "!~~*" => BinaryOperator::PGNotILikeMatch,
        "=" => BinaryOperator::Eq,
        "<>" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::LtEq,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::GtEq,
        "||" => BinaryOperator::StringConcat,
        "+" => BinaryOperator::Plus,
        "-" => BinaryOperator::Minus,
        "*" => BinaryOperator::Multiply,
        "/" => BinaryOperator::Divide,
        _ => return None,
    })
}

/// The name Postgres gives an unnamed result column: a function's name (`count`, not
/// DataFusion's `count(*)`), a column's name, what a cast casts; `None` where Postgres
/// says `?column?`.
/// An identifier as Postgres reads it: lower-cased unless quoted.
fn identifier_name(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

fn postgres_column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Function(function) => last_part_lower(&function.name),
        Expr::Identifier(ident) => Some(identifier_name(ident)),
        Expr::CompoundIdentifier(parts) => parts.last().map(identifier_name),
        // A cast is named after what it casts, or else after its type.
        Expr::Cast {
            expr, data_type, ..
        } => postgres_column_name(expr).or_else(|| {
            let name = match data_type {
                sql::DataType::Custom(name, _) => last_part_lower(name)?,
                other => other.to_string().to_ascii_lowercase(),
            };
            Some(name)
        }),
        Expr::Nested(expr) => postgres_column_name(expr),
        _ => None,
    }
}

/// Names results as Postgres does (`SELECT count(*)` answers a column `count`, not
/// `count(*)`), where that name is not taken by another column of the same select.
fn name_columns_as_postgres(projection: &mut [SelectItem]) {
    let names: Vec<Option<String>> = projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(expr) => postgres_column_name(expr),
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            _ => None,
        })
        .collect();
    for (item, name) in projection.iter_mut().zip(&names) {
        let SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        let Some(name) = name else {
            continue;
        };
        // DataFusion already names a column after itself.
        let is_column = matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
        let unique = names
            .iter()
            .filter(|other| other.as_ref() == Some(name))
            .count()
            == 1;
        if !is_column && unique {
            *item = SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias: Ident::with_quote('"', name.clone()),
            };
        }
    }
}

/// The result columns of a query that reads a catalog table with no rows through inner
/// joins only (so answers no rows), or `None` when it may answer rows.
fn empty_answer(statement: &Statement) -> Option<Vec<String>> {
    let Statement::Query(query) = statement else {
        return None;
    };
    if !set_is_empty(&query.body) {
        return None;
    }
    let select = first_select(&query.body)?;
    let mut columns = Vec::new();
    for item in &select.projection {
        let name = match item {
            SelectItem::UnnamedExpr(expr) => {
                postgres_column_name(expr).unwrap_or_else(|| "?column?".to_owned())
            }
            SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
            _ => return None,
        };
        // Result columns may share a name in Postgres; here they need distinct ones.
        let mut unique = name.clone();
        let mut suffix = 1;
        while columns.contains(&unique) {
            suffix += 1;
            unique = format!("{name}_{suffix}");
        }
        columns.push(unique);
    }
    Some(columns)
}

fn first_select(body: &SetExpr) -> Option<&Select> {
    match body {
        SetExpr::Select(select) => Some(select),
        SetExpr::Query(query) => first_select(&query.body),
        SetExpr::SetOperation { left, .. } => first_select(left),
        _ => None,
    }
}

fn set_is_empty(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => select_is_empty(select),
        SetExpr::Query(query) => set_is_empty(&query.body),
        SetExpr::SetOperation {
            op, left, right, ..
        } => match op {
            SetOperator::Union => set_is_empty(left) && set_is_empty(right),
            SetOperator::Intersect => set_is_empty(left) || set_is_empty(right),
            SetOperator::Except | SetOperator::Minus => set_is_empty(left),
        },
        _ => false,
    }
}

/// Aggregates answer a row even over no rows.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "json_agg",
    "jsonb_agg",
];

fn select_is_empty(select: &Select) -> bool {
    let aggregates = select.projection.iter().any(|item| {
        let expr = match item {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => expr,
            _ => return false,
        };
        AggregateFinder::finds_in(expr)
    });
    if aggregates || select.having.is_some() {
        return false;
    }
    select.from.iter().any(|from| {
        is_empty_relation(&from.relation)
            || from.joins.iter().any(|join| {
                use sql::JoinOperator::{CrossJoin, Inner, Join};
                matches!(join.join_operator, Join(_) | Inner(_) | CrossJoin(_))
                    && is_empty_relation(&join.relation)
            })
    })
}

/// A catalog table with no rows, or a subquery over one that answers none.
fn is_empty_relation(factor: &TableFactor) -> bool {
    match factor {
        TableFactor::Derived { subquery, .. } => set_is_empty(&subquery.body),
        other => is_empty_catalog_table(other),
    }
}

/// Finds an aggregate call outside subqueries.
struct AggregateFinder {
    found: bool,
    subquery_depth: usize,
}

impl AggregateFinder {
    fn finds_in(expr: &Expr) -> bool {
        let mut finder = AggregateFinder {
            found: false,
            subquery_depth: 0,
        };
        let _ = expr.clone().visit(&mut finder);
        finder.found
    }
}

impl VisitorMut for AggregateFinder {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut sql::Query) -> ControlFlow<()> {
        self.subquery_depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut sql::Query) -> ControlFlow<()> {
        self.subquery_depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if self.subquery_depth == 0
            && let Expr::Function(function) = expr
            && last_part_lower(&function.name)
                .is_some_and(|name| AGGREGATES.contains(&name.as_str()))
        {
            self.found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

fn is_empty_catalog_table(factor: &TableFactor) -> bool {
    let TableFactor::Table {
        name, args: None, ..
    } = factor
    else {
        return false;
    };
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(ident.value.to_ascii_lowercase()),
            ObjectNamePart::Function(_) => None,
        })
        .collect();
    let [.., schema, table] = parts.as_slice() else {
        return false;
    };
    catalog_tables(schema)
        .iter()
        .any(|catalog| catalog.name == table && catalog.rows == Rows::None)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::util::display::array_value_to_string;
    use datafusion::prelude::{DataFrame, SessionConfig};

    use super::*;
    use crate::schema::lake_schema;

    const STORE_NAME: &str = "pg-audit";
    const STORE_ID: &str = "0b7f3c2e-51c6-4d18-8dec-3c7f7e5e3f8a";

    fn session() -> PostgresSession {
        PostgresSession {
            database: "opentrail".to_owned(),
            user: "OTAKEXAMPLE".to_owned(),
            backend_pid: 42,
            version: "PostgreSQL 16.0 (OpenTrail)".to_owned(),
            settings: vec![
                ("server_version".to_owned(), "16.0".to_owned()),
                ("search_path".to_owned(), "\"$user\", public".to_owned()),
            ],
        }
    }

    /// A session as the engine builds one for a Postgres client, over two empty tables
    /// with the event data stores' columns.
    fn context() -> SessionContext {
        let config =
            SessionConfig::new().with_default_catalog_and_schema(session().database, PUBLIC);
        let context = SessionContext::new_with_config(config);
        for name in [STORE_NAME, STORE_ID] {
            let table = MemTable::try_new(lake_schema(), vec![vec![]]).unwrap();
            context
                .register_table(
                    datafusion::common::TableReference::bare(name),
                    Arc::new(table),
                )
                .unwrap();
        }
        context
    }

    async fn planned(sql: &str) -> DataFusionResult<(SessionContext, LogicalPlan)> {
        let context = context();
        let statement = parse(sql).map_err(|error| DataFusionError::Plan(error.to_string()))?;
        let plan = plan(&context, statement, &session()).await?;
        Ok((context, plan))
    }

    /// The rows `sql` answers, each cell as text (`NULL` for NULL).
    async fn rows(sql: &str) -> Vec<Vec<String>> {
        rows_with(sql, &[]).await
    }

    fn texts(values: &[&str]) -> Vec<PostgresParameter> {
        values
            .iter()
            .map(|value| PostgresParameter {
                text: Some((*value).to_owned()),
                declared: None,
            })
            .collect()
    }

    async fn rows_with(sql: &str, parameters: &[PostgresParameter]) -> Vec<Vec<String>> {
        let (context, plan) = planned(sql)
            .await
            .unwrap_or_else(|error| panic!("{sql}\nplanning failed: {error}"));
        let plan = bind(plan, parameters).unwrap_or_else(|error| panic!("{sql}\n{error}"));
        let batches = DataFrame::new(context.state(), plan)
            .collect()
            .await
            .unwrap_or_else(|error| panic!("{sql}\nrunning failed: {error}"));
        let mut rows = Vec::new();
        for batch in batches {
            for row in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .map(|column| {
                            if column.is_null(row) {
                                "NULL".to_owned()
                            } else {
                                array_value_to_string(column, row).unwrap()
                            }
                        })
                        .collect(),
                );
            }
        }
        rows
    }

    async fn column_names(sql: &str) -> Vec<String> {
        let (_, plan) = planned(sql).await.unwrap();
        plan.schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect()
    }

    // psql 15's `\dt`, as `psql -E` shows it.
    const PSQL_LIST_TABLES: &str = r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#;

    #[tokio::test]
    async fn psql_lists_the_tables_by_name_and_by_id() {
        assert_eq!(
            rows(PSQL_LIST_TABLES).await,
            vec![
                vec!["public", STORE_ID, "table", "OTAKEXAMPLE"],
                vec!["public", STORE_NAME, "table", "OTAKEXAMPLE"],
            ]
        );
    }

    /// The queries psql 15's `\d TABLE` sends one after another, the table's oid found by
    /// the first given to the others.
    fn psql_describe_table(oid: &str) -> Vec<String> {
        [
            r"SELECT c.relchecks, c.relkind, c.relhasindex, c.relhasrules, c.relhastriggers, c.relrowsecurity, c.relforcerowsecurity, false AS relhasoids, c.relispartition, '', c.reltablespace, CASE WHEN c.reloftype = 0 THEN '' ELSE c.reloftype::pg_catalog.regtype::pg_catalog.text END, c.relpersistence, c.relreplident, am.amname
FROM pg_catalog.pg_class c
 LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)
LEFT JOIN pg_catalog.pg_am am ON (c.relam = am.oid)
WHERE c.oid = 'OID';",
            r"SELECT a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod),
  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)
   FROM pg_catalog.pg_attrdef d
   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
  a.attnotnull,
  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t
   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,
  a.attidentity,
  a.attgenerated
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = 'OID' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;",
            r"SELECT pol.polname, pol.polpermissive,
  CASE WHEN pol.polroles = '{0}' THEN NULL ELSE pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles where oid = any (pol.polroles) order by 1),',') END,
  pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
  pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid),
  CASE pol.polcmd
    WHEN 'r' THEN 'SELECT'
    WHEN 'a' THEN 'INSERT'
    WHEN 'w' THEN 'UPDATE'
    WHEN 'd' THEN 'DELETE'
    END AS cmd
FROM pg_catalog.pg_policy pol
WHERE pol.polrelid = 'OID' ORDER BY 1;",
            r"SELECT oid, stxrelid::pg_catalog.regclass, stxnamespace::pg_catalog.regnamespace::pg_catalog.text AS nsp, stxname,
pg_catalog.pg_get_statisticsobjdef_columns(oid) AS columns,
  'd' = any(stxkind) AS ndist_enabled,
  'f' = any(stxkind) AS deps_enabled,
  'm' = any(stxkind) AS mcv_enabled,
stxstattarget
FROM pg_catalog.pg_statistic_ext
WHERE stxrelid = 'OID'
ORDER BY nsp, stxname;",
            r"SELECT pubname
     , NULL
     , NULL
FROM pg_catalog.pg_publication p
     JOIN pg_catalog.pg_publication_namespace pn ON p.oid = pn.pnpubid
     JOIN pg_catalog.pg_class pc ON pc.relnamespace = pn.pnnspid
WHERE pc.oid ='OID' and pg_catalog.pg_relation_is_publishable('OID')
UNION
SELECT pubname
     , pg_get_expr(pr.prqual, c.oid)
     , (CASE WHEN pr.prattrs IS NOT NULL THEN
         (SELECT string_agg(attname, ', ')
           FROM pg_catalog.generate_series(0, pg_catalog.array_upper(pr.prattrs::pg_catalog.int2[], 1)) s,
                pg_catalog.pg_attribute
          WHERE attrelid = pr.prrelid AND attnum = prattrs[s])
        ELSE NULL END) FROM pg_catalog.pg_publication p
     JOIN pg_catalog.pg_publication_rel pr ON p.oid = pr.prpubid
     JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
WHERE pr.prrelid = 'OID'
UNION
SELECT pubname
     , NULL
     , NULL
FROM pg_catalog.pg_publication p
WHERE p.puballtables AND pg_catalog.pg_relation_is_publishable('OID')
ORDER BY 1;",
            r"SELECT c.oid::pg_catalog.regclass
FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i
WHERE c.oid = i.inhparent AND i.inhrelid = 'OID'
  AND c.relkind != 'p' AND c.relkind != 'I'
ORDER BY inhseqno;",
            r"SELECT c.oid::pg_catalog.regclass, c.relkind, inhdetachpending, pg_catalog.pg_get_expr(c.relpartbound, c.oid)
FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i
WHERE c.oid = i.inhrelid AND i.inhparent = 'OID'
ORDER BY pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', c.oid::pg_catalog.regclass::pg_catalog.text;",
        ]
        .iter()
        .map(|sql| sql.replace("OID", oid))
        .collect()
    }

    #[tokio::test]
    async fn psql_describes_a_table_with_its_columns_and_types() {
        let found = rows(
            r"SELECT c.oid,
  n.nspname,
  c.relname
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname OPERATOR(pg_catalog.~) '^(pg-audit)$' COLLATE pg_catalog.default
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 2, 3;",
        )
        .await;
        assert_eq!(found.len(), 1, "{found:?}");
        let oid = found[0][0].clone();
        assert_eq!(found[0][1..], ["public", STORE_NAME]);
        let queries = psql_describe_table(&oid);
        let table = rows(&queries[0]).await;
        assert_eq!(table.len(), 1);
        assert_eq!(table[0][1], "r", "{table:?}");
        let columns = rows(&queries[1]).await;
        let typed: Vec<(&str, &str)> = columns
            .iter()
            .map(|row| (row[0].as_str(), row[1].as_str()))
            .collect();
        assert_eq!(typed.len(), lake_schema().fields().len());
        assert!(typed.contains(&("eventname", "text")), "{typed:?}");
        assert!(typed.contains(&("eventtime", "timestamp with time zone")));
        assert!(typed.contains(&("readonly", "boolean")));
        for query in &queries[2..] {
            assert_eq!(rows(query).await, Vec::<Vec<String>>::new(), "{query}");
        }
    }

    #[tokio::test]
    async fn psql_lists_roles_privileges_and_table_options() {
        let roles = rows(
            r"SELECT r.rolname, r.rolsuper, r.rolinherit,
  r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
  r.rolconnlimit, r.rolvaliduntil,
  ARRAY(SELECT b.rolname
        FROM pg_catalog.pg_auth_members m
        JOIN pg_catalog.pg_roles b ON (m.roleid = b.oid)
        WHERE m.member = r.oid) as memberof
, r.rolreplication
, r.rolbypassrls
FROM pg_catalog.pg_roles r
WHERE r.rolname !~ '^pg_'
ORDER BY 1;",
        )
        .await;
        assert_eq!(roles.len(), 1);
        assert_eq!(roles[0][0], "OTAKEXAMPLE");
        let privileges = rows(
            r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' END as "Type",
  pg_catalog.array_to_string(c.relacl, E'
') AS "Access privileges",
  pg_catalog.array_to_string(ARRAY(
    SELECT attname || E':
  ' || pg_catalog.array_to_string(attacl, E'
  ')
    FROM pg_catalog.pg_attribute a
    WHERE attrelid = c.oid AND NOT attisdropped AND attacl IS NOT NULL
  ), E'
') AS "Column privileges",
  pg_catalog.array_to_string(ARRAY(
    SELECT polname
    || CASE WHEN NOT polpermissive THEN
       E' (RESTRICTIVE)'
       ELSE '' END
    || CASE WHEN polcmd != '*' THEN
           E' (' || polcmd::pg_catalog.text || E'):'
       ELSE E':'
       END
    || CASE WHEN polroles <> '{0}' THEN
           E'
  to: ' || pg_catalog.array_to_string(
               ARRAY(
                   SELECT rolname
                   FROM pg_catalog.pg_roles
                   WHERE oid = ANY (polroles)
                   ORDER BY 1
               ), E', ')
       ELSE E''
       END
    FROM pg_catalog.pg_policy pol
    WHERE polrelid = c.oid), E'
')
    AS "Policies"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r','v','m','S','f','p')
  AND n.nspname !~ '^pg_' AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1, 2;"#,
        )
        .await;
        let names: Vec<&str> = privileges.iter().map(|row| row[1].as_str()).collect();
        assert!(names.contains(&STORE_NAME), "{privileges:?}");
        let oid = user_table_oid(STORE_NAME);
        let options = rows(&format!(
            r"SELECT c.relchecks, c.relkind, c.relhasindex, c.relhasrules, c.relhastriggers, c.relrowsecurity, c.relforcerowsecurity, false AS relhasoids, c.relispartition, pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')
, c.reltablespace, CASE WHEN c.reloftype = 0 THEN '' ELSE c.reloftype::pg_catalog.regtype::pg_catalog.text END, c.relpersistence, c.relreplident, am.amname
FROM pg_catalog.pg_class c
 LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)
LEFT JOIN pg_catalog.pg_am am ON (c.relam = am.oid)
WHERE c.oid = '{oid}';"
        ))
        .await;
        assert_eq!(options.len(), 1);
        assert_eq!(options[0][1], "r");
        assert_eq!(options[0].last().map(String::as_str), Some("heap"));
    }

    #[tokio::test]
    async fn psql_lists_the_one_database_and_the_schemas() {
        let databases = rows(
            r#"SELECT d.datname as "Name",
       pg_catalog.pg_get_userbyid(d.datdba) as "Owner",
       pg_catalog.pg_encoding_to_char(d.encoding) as "Encoding",
       d.datcollate as "Collate",
       d.datctype as "Ctype",
       d.daticulocale as "ICU Locale",
       CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END AS "Locale Provider",
       pg_catalog.array_to_string(d.datacl, E'\n') AS "Access privileges"
FROM pg_catalog.pg_database d
ORDER BY 1;"#,
        )
        .await;
        assert_eq!(databases.len(), 1);
        assert_eq!(databases[0][..3], ["opentrail", "OTAKEXAMPLE", "UTF8"]);
        let schemas = rows(
            r#"SELECT n.nspname AS "Name",
  pg_catalog.pg_get_userbyid(n.nspowner) AS "Owner"
FROM pg_catalog.pg_namespace n
WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
ORDER BY 1;"#,
        )
        .await;
        assert_eq!(schemas, vec![vec!["public", "OTAKEXAMPLE"]]);
    }

    #[tokio::test]
    async fn information_schema_shows_the_tables_and_postgres_types() {
        let tables = rows(
            "SELECT table_catalog, table_schema, table_name, table_type, is_insertable_into \
             FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
        )
        .await;
        assert_eq!(
            tables,
            vec![
                vec!["opentrail", "public", STORE_ID, "BASE TABLE", "NO"],
                vec!["opentrail", "public", STORE_NAME, "BASE TABLE", "NO"],
            ]
        );
        let columns = rows(
            "SELECT column_name, data_type, udt_name, ordinal_position \
             FROM information_schema.columns \
             WHERE table_name = 'pg-audit' AND column_name IN ('eventtime', 'readonly', 'useridentity') \
             ORDER BY ordinal_position",
        )
        .await;
        assert_eq!(
            columns,
            vec![
                vec!["useridentity", "text", "text", "2"],
                vec!["eventtime", "timestamp with time zone", "timestamptz", "3"],
                vec!["readonly", "boolean", "bool", "16"],
            ]
        );
        let schemas = rows("SELECT schema_name FROM information_schema.schemata ORDER BY 1").await;
        assert_eq!(
            schemas,
            vec![
                vec!["information_schema"],
                vec!["pg_catalog"],
                vec!["public"]
            ]
        );
    }

    #[tokio::test]
    async fn connection_functions_answer_the_session() {
        assert_eq!(
            rows(
                "SELECT version(), current_database(), current_schema(), current_user, \
                 session_user, pg_backend_pid(), current_setting('server_version'), \
                 current_schema AS bare, pg_catalog.current_schemas(false)"
            )
            .await,
            vec![vec![
                "PostgreSQL 16.0 (OpenTrail)",
                "opentrail",
                "public",
                "OTAKEXAMPLE",
                "OTAKEXAMPLE",
                "42",
                "16.0",
                "public",
                "[public]",
            ]]
        );
        assert_eq!(
            column_names(
                "SELECT version(), current_database(), count(*), 'pg-audit'::regclass, \
                 max(eventtime)::text FROM \"pg-audit\" ORDER BY count(*)"
            )
            .await,
            ["version", "current_database", "count", "regclass", "max"]
        );
    }

    #[tokio::test]
    async fn regclass_casts_name_the_tables_oid() {
        let by_cast =
            rows("SELECT 'pg-audit'::regclass, '\"pg-audit\"'::regclass::oid AS quoted").await;
        let by_catalog =
            rows("SELECT oid, oid AS quoted FROM pg_class WHERE relname = 'pg-audit'").await;
        assert_eq!(by_cast, by_catalog);
        let Err(error) = planned("SELECT 'no_such_table'::regclass").await else {
            panic!("an unknown table was cast to regclass");
        };
        assert!(
            error
                .to_string()
                .contains("relation \"no_such_table\" does not exist"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn parameters_are_typed_by_what_they_meet_and_bound_from_text() {
        let sql = "SELECT count(*) AS n FROM \"pg-audit\" WHERE eventname = $1 AND readonly = $2 \
                   AND eventtime > $3";
        let (_, plan) = planned(sql).await.unwrap();
        assert_eq!(
            parameter_types(&plan).unwrap(),
            vec![
                Some(DataType::Utf8),
                Some(DataType::Boolean),
                Some(DataType::Timestamp(
                    TimeUnit::Millisecond,
                    Some("UTC".into())
                )),
            ]
        );
        let bound = rows_with(sql, &texts(&["CreateTable", "t", "2024-01-01T00:00:00Z"])).await;
        assert_eq!(bound, vec![vec!["0"]]);
        // Untyped by the statement: as the client declared, else as text.
        let declared = [
            PostgresParameter {
                text: Some("41".to_owned()),
                declared: postgres_data_type(20),
            },
            PostgresParameter {
                text: Some("41".to_owned()),
                declared: None,
            },
        ];
        assert_eq!(
            rows_with("SELECT $1 + 1 AS n, $2 || '!' AS s", &declared).await,
            vec![vec!["42", "41!"]]
        );
        assert_eq!(
            rows_with(
                "SELECT relname FROM pg_class WHERE relnamespace = 2200 ORDER BY relname LIMIT $1 OFFSET $2",
                &texts(&["1", "1"])
            )
            .await,
            vec![vec![STORE_NAME]]
        );
        let (_, plan) = planned(sql).await.unwrap();
        let error = bind(plan, &texts(&["x", "not a boolean", "2024-01-01"])).unwrap_err();
        assert!(error.to_string().contains("parameter $2"), "{error}");
    }

    #[tokio::test]
    async fn a_bare_catalog_name_is_found_in_pg_catalog() {
        assert_eq!(
            rows("SELECT nspname FROM pg_namespace WHERE oid = 2200").await,
            vec![vec!["public"]]
        );
    }

    /// The table names a query answers in its first column, sorted.
    async fn first_column(sql: &str) -> Vec<String> {
        let mut names: Vec<String> = rows(sql)
            .await
            .into_iter()
            .map(|row| row[0].clone())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn bi_tools_browse_the_tables_through_their_catalog_queries() {
        let stores = vec![STORE_ID.to_owned(), STORE_NAME.to_owned()];
        // JDBC's getTables: a regclass cast in a join, `~` in a CASE, upper-case aliases.
        assert_eq!(
            first_column(
                "SELECT c.relname AS TABLE_NAME, n.nspname AS TABLE_SCHEM, \
                 CASE n.nspname ~ '^pg_' WHEN true THEN 'SYSTEM TABLE' ELSE 'TABLE' END AS TABLE_TYPE, \
                 d.description AS REMARKS \
                 FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c \
                 LEFT JOIN pg_catalog.pg_description d ON (c.oid = d.objoid AND d.objsubid = 0 \
                   AND d.classoid = 'pg_class'::regclass) \
                 WHERE c.relnamespace = n.oid AND n.nspname LIKE 'public' AND c.relkind IN ('r', 'p') \
                 ORDER BY TABLE_TYPE, TABLE_SCHEM, TABLE_NAME"
            )
            .await,
            stores
        );
        // JDBC's getColumns: a window over pg_attribute joined to pg_type and defaults.
        let columns = rows(
            "SELECT * FROM (SELECT c.relname, a.attname, t.typname, \
               row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS attnum, \
               pg_catalog.pg_get_expr(def.adbin, def.adrelid) AS adsrc \
             FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_class c ON (c.relnamespace = n.oid) \
             JOIN pg_catalog.pg_attribute a ON (a.attrelid = c.oid) \
             JOIN pg_catalog.pg_type t ON (a.atttypid = t.oid) \
             LEFT JOIN pg_catalog.pg_attrdef def ON (a.attrelid = def.adrelid AND a.attnum = def.adnum) \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname LIKE 'public' \
               AND c.relname LIKE 'pg-audit') c ORDER BY relname, attnum",
        )
        .await;
        assert_eq!(columns.len(), lake_schema().fields().len());
        assert_eq!(columns[2][1..3], ["eventtime", "timestamptz"]);
        // JDBC's type cache: a correlated lookup in WHERE.
        let types = first_column(
            "SELECT t.typname FROM pg_catalog.pg_type t \
             JOIN pg_catalog.pg_namespace n ON (t.typnamespace = n.oid) \
             WHERE n.nspname != 'pg_toast' AND (t.typrelid = 0 \
               OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid))",
        )
        .await;
        assert!(types.contains(&"timestamptz".to_owned()), "{types:?}");
        // DBeaver: a column named again besides `*`.
        assert_eq!(
            rows(
                "SELECT n.oid, n.*, d.description FROM pg_catalog.pg_namespace n \
                  LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid = n.oid \
                  WHERE n.nspname = 'public'"
            )
            .await[0][..3],
            ["2200", "2200", "public"]
        );
        // pgcli: an array written as text.
        assert_eq!(
            first_column(
                "SELECT c.relname FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = ANY('{r,p,f}') AND n.nspname = 'public'"
            )
            .await,
            stores
        );
        // Grafana: the schemas of the search path, from functions selected from, in WHERE
        // and in ORDER BY.
        let search_path = "quote_ident(table_schema) IN (SELECT \
              CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END \
            FROM generate_series(array_lower(string_to_array(current_setting('search_path'), ','), 1), \
              array_upper(string_to_array(current_setting('search_path'), ','), 1)) AS i, \
            string_to_array(current_setting('search_path'), ',') s)";
        assert_eq!(
            first_column(&format!(
                "SELECT quote_ident(table_name) AS \"table\" FROM information_schema.tables \
                 WHERE {search_path} ORDER BY CASE WHEN {search_path} THEN 0 ELSE 1 END, 1"
            ))
            .await,
            [format!("\"{STORE_ID}\""), format!("\"{STORE_NAME}\"")]
        );
        // Metabase: privileges over pg_tables, pg_views and pg_matviews.
        let privileges = rows(
            "SELECT t.tablename, \
               pg_catalog.has_table_privilege(current_user, t.tablename, 'select') AS can_select, \
               pg_catalog.has_table_privilege(current_user, t.tablename, 'delete') AS can_delete \
             FROM (SELECT schemaname, tablename FROM pg_catalog.pg_tables \
                   UNION SELECT schemaname, viewname FROM pg_catalog.pg_views \
                   UNION SELECT schemaname, matviewname FROM pg_catalog.pg_matviews) t \
             WHERE t.schemaname !~ '^pg_' AND t.schemaname <> 'information_schema' \
             ORDER BY 1",
        )
        .await;
        assert_eq!(
            privileges,
            [[STORE_ID, "true", "false"], [STORE_NAME, "true", "false"]]
        );
        // A primary key lookup through a function OpenTrail lacks, over pg_index: no keys.
        assert_eq!(
            rows(
                "SELECT result.column_name FROM (SELECT a.attname AS column_name, \
                   information_schema._pg_expandarray(i.indkey) AS keys \
                 FROM pg_catalog.pg_class ct JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid) \
                 JOIN pg_catalog.pg_index i ON (a.attrelid = i.indrelid) WHERE i.indisprimary) result"
            )
            .await,
            Vec::<Vec<String>>::new()
        );
    }

    #[test]
    fn every_built_catalog_row_fits_its_table() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let context = context();
        let public = context
            .catalog("opentrail")
            .and_then(|catalog| catalog.schema(PUBLIC))
            .unwrap();
        let catalog = Catalog {
            session: session(),
            public,
        };
        for table in PG_CATALOG_TABLES.iter().chain(INFORMATION_SCHEMA_TABLES) {
            let rows = runtime.block_on(catalog.rows(table)).unwrap();
            assert_eq!(rows.is_empty(), table.rows == Rows::None, "{}", table.name);
            batch(table, &rows).unwrap_or_else(|error| panic!("{}: {error}", table.name));
        }
    }

    #[test]
    fn names_are_split_and_quoted_as_postgres_does() {
        assert_eq!(
            split_qualified_name("public.\"pg-audit\""),
            Some(vec!["public".to_owned(), "pg-audit".to_owned()])
        );
        assert_eq!(
            split_qualified_name("Pg_Class"),
            Some(vec!["pg_class".to_owned()])
        );
        assert_eq!(split_qualified_name("a..b"), None);
        assert_eq!(quote_ident("eventname"), "eventname");
        assert_eq!(quote_ident("pg-audit"), "\"pg-audit\"");
        assert_eq!(quote_ident("Say\"hi"), "\"Say\"\"hi\"");
    }

    #[test]
    fn oids_of_user_tables_are_stable_and_above_the_systems() {
        assert_eq!(user_table_oid(STORE_NAME), user_table_oid(STORE_NAME));
        assert_ne!(user_table_oid(STORE_NAME), user_table_oid(STORE_ID));
        assert!(user_table_oid("") >= FIRST_USER_OID);
        assert!(user_table_oid(STORE_ID) <= i64::from(i32::MAX));
    }
}

//! SQL over the events, as CloudTrail Lake offers it: one table per event data store, the
//! lower-case record fields as columns (`schema.rs`), read from the store's sealed
//! segments (their Parquet columns when a query needs no other column) and unsealed heads,
//! so a query sees an event as soon as its append is acknowledged, and from the Parquet
//! archive for the events the store's retention has dropped.
//!
//! Data flows: `engine` (parse, check it is a SELECT, plan) → `table` (prune the store's
//! sources by event time and account, read them on blocking threads) → `records` (stored
//! JSON as Arrow columns) for what no Parquet holds.
//!
//! This crate knows nothing about HTTP or AWS wire shapes.

mod catalog;
pub mod data_stores;
mod engine;
mod error;
mod names;
pub mod queries;
mod records;
pub mod results;
pub mod samples;
mod schema;
pub mod selectors;
mod table;
mod trino;

pub use catalog::{
    PostgresDescription, PostgresParameter, PostgresSession, postgres_data_type, postgres_type_oid,
};
/// The batches a query's stream yields.
pub use datafusion::arrow::array::RecordBatch;
pub use engine::{Lake, LakeOptions, LakeTable, QueryRun};
pub use error::LakeError;
pub use names::data_store_ids_in;
pub use schema::{SEGMENT_COLUMNS, lake_schema};
pub use selectors::{EventSelector, FieldCondition};
pub use table::{ScanCounters, TableScope};

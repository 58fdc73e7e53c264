//! The event store: one durable, ordered event log and the views derived from it.
//!
//! Every accepted event gets a sequence number in the log before anyone is told
//! "accepted". The lookup index is written in the same atomic, fsynced batch as the log,
//! so a lookup sees an event as soon as its append returns. Slower views (Parquet, trail
//! delivery, digests) read the log through [`Store::read_log`] and keep a durable cursor
//! ([`Store::load_cursor`] / [`Store::save_cursor`]), so recovery is replay.
//!
//! This crate knows nothing about HTTP or AWS wire shapes.

mod engine;
mod index_rebuild;
mod keys;
mod lookup;
mod writer;

pub use engine::{
    AppendOutcome, ExpireReport, LogEntry, Store, StoreError, StoreOptions, StoreStats,
};
pub use lookup::{EventLane, LookupPage, LookupQuery, PageCursor, Scope, StoredEvent};

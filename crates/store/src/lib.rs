//! The event store: one durable, ordered event log and the views derived from it.
//!
//! Every accepted event gets a sequence number in the write-ahead journal, fsynced, before
//! anyone is told "accepted", and joins the in-memory head with its postings, so a lookup
//! sees it as soon as its append returns. In the background the head is sealed into an
//! immutable segment (records in zstd blocks with a trained dictionary, postings, an id
//! table), and small segments are merged. Slower views (Parquet, trail delivery, digests)
//! read the log through [`Store::read_log`] and keep a durable cursor
//! ([`Store::load_cursor`] / [`Store::save_cursor`]), so recovery is replay.
//!
//! Data flows: `writer` (journal + head) → `sealer` (segments) → `lookup` / `read_log`.
//!
//! This crate knows nothing about HTTP or AWS wire shapes.

mod backup;
mod blocks;
mod bloom;
mod cache;
mod codec;
mod columns;
mod consumer;
mod error;
mod files;
mod head;
mod id_groups;
mod id_packing;
mod id_table;
mod journal;
mod layout;
mod location;
mod lookup;
mod meta;
mod migrate;
mod options;
mod packed;
mod postings;
mod query;
mod quiet;
mod retired;
pub mod s3;
mod scan_sources;
mod sealer;
mod segment;
mod settler;
mod shared;
mod space;
mod store;
mod stored_record;
mod terms;
mod values;
mod writer;

pub use backup::{StoreBackup, backup_store};
pub use consumer::{LogConsumer, ScanBounds, ScanStep, yield_to_ingest};
pub use error::StoreError;
pub use location::{S3Segments, SegmentsLocation};
pub use options::StoreOptions;
pub use query::{EventLane, LookupPage, LookupQuery, PageCursor, Scope, StoredEvent};
pub use s3::{DEFAULT_S3_REGION, S3Connection};
pub use scan_sources::{ScanSource, ScanSources};
pub use space::{FreeSpace, WriteStatus};
pub use store::Store;
pub use values::{AppendOutcome, ExpireReport, LogEntry, SpaceByPart, StoreStats};
pub use writer::BeforeVisible;

//! The CloudTrail event record.
//!
//! This crate turns bytes from any producer (HTTP ingest, `PutAuditEvents`, imported log
//! files, self-audit) into validated, normalised [`EventRecord`]s, and derives the lookup
//! attributes that the store indexes. It knows nothing about storage, HTTP or AWS wire
//! shapes.
//!
//! - [`parse`]: every input shape (`{"Records":[…]}`, a JSON array, a single object,
//!   NDJSON; each plain or gzip) into per-record results, so one bad record never sinks
//!   its batch.
//! - [`record`]: validation and normalisation of one record, kept losslessly as JSON text.
//! - [`attributes`]: the lookup attributes (CloudTrail's eight plus our extra filter fields)
//!   and the rules that derive them.
//!
//! Records are never turned into `serde_json::Value` trees: each is parsed once with
//! borrowed strings, reading only the members OpenTrail needs, and stored as the
//! producer's text.

pub mod api_call;
pub mod attributes;
mod error;
mod json_type;
mod member;
pub mod parse;
pub mod record;
mod scan;

pub use api_call::ApiCall;
pub use attributes::{FilterField, LookupAttributes, ResourceRef, arn_short_name};
pub use error::{BatchError, InvalidRecord, RecordError, RecordErrorKind};
pub use parse::{
    MAX_DECOMPRESSED_BYTES, ParsedBatch, is_gzip, parse_batch, parse_batch_with_limit,
};
pub use record::{
    DEFAULT_EVENT_VERSION, EventRecord, IngestContext, MAX_RECORD_BYTES, infer_read_only,
};
pub use scan::{ObjectMembers, RawObjectMember, ScanError, object_members};

//! Bulk import of CloudTrail log files: `opentrail import`.
//!
//! An import walks its sources (local files and folders, AWSLogs trees, `s3://` prefixes),
//! decides per file whether it is a CloudTrail log ([`classify`]), reads, decompresses and
//! parses the log files on worker threads, and appends their events to an [`EventSink`]
//! (the store itself, or a server's API) in large batches:
//!
//! ```text
//!  lister thread ──tasks──► N worker threads ──parsed chunks──► appender (caller's thread)
//!  (walk / S3 list,  bounded  (read, gunzip, parse)   bounded    batches of ~8k events
//!   classify,         queue                          queue      → EventSink::write (durable)
//!   checkpoint filter)                                          → checkpoint of whole files
//! ```
//!
//! Which files hold events has one answer for every command: `opentrail ingest` lists its
//! files with [`list_local_files`], the same walk and the same [`classify`] rules as this
//! lister.
//!
//! # Bounded memory
//!
//! Both queues are bounded, so at any moment the import holds at most: one file per worker
//! (its stored bytes, its decompressed JSON and its parsed records), the parsed chunks in
//! the result queue (each at most one batch), and the batch being written. Nothing
//! proportional to the size of the tree is held except the listing queue of paths and the
//! checkpoint's set of completed files.
//!
//! # Safe to repeat, safe to interrupt
//!
//! The store deduplicates by (`recipientAccountId`, `eventID`), so importing a file twice
//! adds nothing the second time. To make a re-run cheap as well as correct, the appender
//! records each fully written file in a per-source [`checkpoint`] file, and later runs skip
//! the files it names (unless told not to). A file is recorded only after the sink has
//! reported every one of its events durable, so a checkpoint can only ever under-report:
//! after a crash or `kill -9` at any instant, the files not yet recorded are read again,
//! and deduplication drops the events of theirs that were already stored. Nothing is lost
//! (an event is never recorded as done before it is durable) and nothing is doubled.

pub mod checkpoint;
pub mod classify;
mod error;
mod list;
mod pipeline;
mod progress;
mod read;
pub mod s3;
mod sink;
pub mod source;
mod summary;
mod walk;

pub use error::ImportError;
pub use list::{ListedFile, LocalListing, list_local_files};
pub use pipeline::{ImportOptions, import};
pub use progress::ImportProgress;
pub use sink::{EventSink, SinkError, StoreSink, WriteOutcome};
pub use source::Source;
pub use summary::{FileError, ImportSummary};

//! The crate's error: a leaf module, so the modules that return it do not import `lib.rs`.

use crate::checkpoint;
use crate::sink::SinkError;

/// An import could not run, or had to stop part-way. Problems with single files are not
/// errors of this kind: they are reported in [`ImportSummary::errors`] and the import
/// goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("source {source_text:?}: {reason}")]
    InvalidSource { source_text: String, reason: String },
    #[error("cannot set up the S3 client for {url}: {source}")]
    S3Setup {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot start the S3 client's async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot start an import thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("writing events failed: {0}")]
    Sink(#[from] SinkError),
}

//! Where imported events go: the store directly, or (in the CLI) a server's API.

use opentrail_event::EventRecord;
use opentrail_store::{AppendOutcome, Store};

/// What happened to one written record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Newly stored, durably.
    Stored,
    /// Already stored (same `recipientAccountId` and `eventID`).
    Duplicate,
    /// The destination refused this record; the message says why.
    Rejected { message: String },
}

/// The destination could not take the batch at all. The import stops: events written so
/// far are durable and checkpointed, and a re-run resumes.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SinkError {
    pub fn new(message: impl Into<String>) -> SinkError {
        SinkError {
            message: message.into(),
            source: None,
        }
    }
}

/// A destination for imported events.
pub trait EventSink {
    /// Writes `records` and returns once every stored one is durable, with one outcome
    /// per record, in order. Writing the same record twice must report `Duplicate` (or
    /// `Stored` again) and never store it twice: the import relies on it to resume.
    fn write(&mut self, records: Vec<EventRecord>) -> Result<Vec<WriteOutcome>, SinkError>;
}

/// Appends straight to an open [`Store`] (the import holds the data directory's lock).
pub struct StoreSink {
    store: Store,
}

impl StoreSink {
    pub fn new(store: Store) -> StoreSink {
        StoreSink { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn into_store(self) -> Store {
        self.store
    }
}

impl EventSink for StoreSink {
    fn write(&mut self, records: Vec<EventRecord>) -> Result<Vec<WriteOutcome>, SinkError> {
        let outcomes = self.store.append(records).map_err(|error| SinkError {
            message: format!("the store refused the batch: {error}"),
            source: Some(Box::new(error)),
        })?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| match outcome {
                AppendOutcome::Stored { .. } => WriteOutcome::Stored,
                AppendOutcome::Duplicate { .. } => WriteOutcome::Duplicate,
            })
            .collect())
    }
}

use std::path::PathBuf;

use opentrail_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum InsightsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is damaged: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("an Insights record could not be stored: {0}")]
    Record(String),
}

impl InsightsError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> InsightsError {
        InsightsError::Io {
            path: path.into(),
            source,
        }
    }
}

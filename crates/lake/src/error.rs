use thiserror::Error;

#[derive(Debug, Error)]
pub enum LakeError {
    /// The statement is not one read-only `SELECT` query.
    #[error("only a single SELECT statement is allowed: {0}")]
    NotSelect(String),
    /// The SQL does not parse or plan (unknown column, table or function, wrong types).
    #[error("{0}")]
    InvalidQuery(String),
    /// The query needed more memory than the limit allows, even spilling.
    #[error("the query needs more memory than the limit of {limit_bytes} bytes: {detail}")]
    MemoryLimit { limit_bytes: usize, detail: String },
    /// The query ran past its time limit.
    #[error("the query ran past its time limit of {seconds} s")]
    TimedOut { seconds: u64 },
    /// The result's text passed what a kept result may hold.
    #[error("the result is larger than {max_bytes} bytes: aggregate it or add a LIMIT")]
    ResultTooLarge { max_bytes: usize },
    #[error("the query failed: {0}")]
    Execution(String),
    /// A sample query was rendered without a value for one of its parameters.
    #[error("the sample query {query} needs a value for its parameter {parameter}")]
    MissingSampleParameter { query: String, parameter: String },
    /// A sample query was given a value for a parameter it does not take (a typo, most
    /// likely, that would otherwise leave the intended parameter unset).
    #[error("the sample query {query} has no parameter {parameter}")]
    UnknownSampleParameter { query: String, parameter: String },
    #[error("reading the record at seq {seq}: {detail}")]
    Record { seq: u64, detail: String },
    #[error("a segment's columns lack {0}")]
    MissingColumn(String),
    #[error(transparent)]
    Store(#[from] opentrail_store::StoreError),
    #[error(transparent)]
    Archive(#[from] opentrail_archive::ArchiveError),
    #[error("reading a segment's columns: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("building columns: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("opening a segment's columns: {0}")]
    Io(#[source] std::io::Error),
    #[error("opening the archive's file {path}: {source}")]
    ArchiveFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<LakeError> for datafusion::common::DataFusionError {
    fn from(error: LakeError) -> Self {
        datafusion::common::DataFusionError::External(Box::new(error))
    }
}

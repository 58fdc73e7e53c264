//! The crate's error: a leaf module, so the modules that return it do not import `lib.rs`.

use std::path::PathBuf;

/// Why a trail operation failed. The server maps each kind to CloudTrail's error code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrailsError {
    #[error("trail {0} does not exist")]
    NotFound(String),
    #[error("a trail named {0} already exists")]
    AlreadyExists(String),
    #[error("account {account_id} already has {limit} trails in region {region}")]
    LimitExceeded {
        account_id: String,
        region: String,
        limit: usize,
    },
    #[error("trail {arn} can only be changed in its home region {home_region}")]
    InvalidHomeRegion { arn: String, home_region: String },
    #[error("bucket {0} does not exist")]
    BucketDoesNotExist(String),
    #[error("the object store cannot be reached: {0}")]
    DestinationUnavailable(String),
    #[error("SNS topic {0} is not configured (add it to sns_topics in the configuration)")]
    SnsTopicNotConfigured(String),
    #[error(
        "log group {0} is not configured (add it to cloudwatch_log_groups in the configuration)"
    )]
    LogGroupNotConfigured(String),
    #[error("invalid Insights selectors: {0}")]
    InvalidInsightSelectors(String),
    #[error("a resource holds at most {limit} tags")]
    TagsLimitExceeded { limit: usize },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("event store: {0}")]
    Store(#[from] opentrail_store::StoreError),
    #[error("a background task failed: {0}")]
    Task(String),
}

//! What to import from: a local file or folder, or an S3 prefix.

use std::path::{Path, PathBuf};

use crate::error::ImportError;

/// One source given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file or a folder (walked recursively).
    Local(PathBuf),
    /// Every object under `prefix` in `bucket` (the whole bucket when `prefix` is empty).
    S3 { bucket: String, prefix: String },
}

const S3_SCHEME: &str = "s3://";

impl Source {
    /// Reads `s3://bucket/prefix` as an S3 source and anything else as a local path.
    pub fn parse(text: &str) -> Result<Source, ImportError> {
        let Some(rest) = text.strip_prefix(S3_SCHEME) else {
            if text.is_empty() {
                return Err(ImportError::InvalidSource {
                    source_text: text.to_owned(),
                    reason: "the path is empty".to_owned(),
                });
            }
            return Ok(Source::Local(PathBuf::from(text)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ImportError::InvalidSource {
                source_text: text.to_owned(),
                reason: "expected s3://BUCKET/PREFIX".to_owned(),
            });
        }
        Ok(Source::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, Source::S3 { .. })
    }

    /// How the source is named in messages.
    pub fn display_name(&self) -> String {
        match self {
            Source::Local(path) => path.display().to_string(),
            Source::S3 { bucket, prefix } => s3_url(bucket, prefix),
        }
    }
}

/// A local source made absolute and free of links: what is walked and classified, and a
/// checkpoint's identity. A source that cannot be resolved (most likely a typo) is an
/// error for the whole run.
pub(crate) fn canonical_source(given: &Path) -> Result<PathBuf, ImportError> {
    std::fs::canonicalize(given).map_err(|error| ImportError::InvalidSource {
        source_text: given.display().to_string(),
        reason: error.to_string(),
    })
}

pub(crate) fn s3_url(bucket: &str, key: &str) -> String {
    format!("{S3_SCHEME}{bucket}/{key}")
}

/// One file found in a source, with what the checkpoint needs to recognise it later.
#[derive(Debug, Clone)]
pub(crate) struct FileTask {
    /// A dense number for this run, used to match parsed chunks to their file.
    pub id: u64,
    pub location: FileLocation,
    /// The path as printed in errors: the local path or the `s3://` URL.
    pub display_path: String,
    /// Relative to the source root ('/'-separated): what the checkpoint records.
    pub relative_path: String,
    pub size: u64,
    /// Changes when the file's content may have changed: the modification time of a local
    /// file, the ETag of an object.
    pub version: String,
    pub context: opentrail_event::IngestContext,
    /// Which source the file came from (its checkpoint).
    pub source_index: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum FileLocation {
    Local(PathBuf),
    S3 {
        bucket_index: usize,
        key: object_store::path::Path,
    },
}

/// The path of `path` below `root`, '/'-separated; the file name when `path` is the root.
pub(crate) fn relative_path(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let text = if relative.as_os_str().is_empty() {
        path.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        relative.to_string_lossy().into_owned()
    };
    if std::path::MAIN_SEPARATOR == '/' {
        text
    } else {
        text.replace(std::path::MAIN_SEPARATOR, "/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_and_paths_are_told_apart() {
        assert_eq!(
            Source::parse("s3://logs/AWSLogs/123456789012/").ok(),
            Some(Source::S3 {
                bucket: "logs".into(),
                prefix: "AWSLogs/123456789012".into()
            })
        );
        assert_eq!(
            Source::parse("s3://logs").ok(),
            Some(Source::S3 {
                bucket: "logs".into(),
                prefix: String::new()
            })
        );
        assert!(Source::parse("s3:///prefix").is_err());
        assert_eq!(
            Source::parse("./AWSLogs").ok(),
            Some(Source::Local(PathBuf::from("./AWSLogs")))
        );
    }

    #[test]
    fn relative_paths_are_slash_separated_and_name_a_single_file() {
        assert_eq!(
            relative_path(Path::new("/data"), Path::new("/data/a/b.json")),
            "a/b.json"
        );
        assert_eq!(
            relative_path(Path::new("/data/b.json"), Path::new("/data/b.json")),
            "b.json"
        );
    }
}

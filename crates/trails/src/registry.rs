//! The trails of this server, in memory and in `DATA_DIR/trails/trails.json`.
//!
//! Reads clone an `Arc` of the current list under a read lock and never wait for disk.
//! Writes are serialised by a mutex, build the new list aside, persist it atomically and
//! durably (temporary file, fsync, rename, directory fsync), and only then publish it, so
//! memory never shows a trail the file does not hold and a failed write changes nothing.
//! Writes block on fsync: async callers run them on `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::TrailsError;
use crate::model::Trail;

const TRAILS_FILE_NAME: &str = "trails.json";
/// Bumped if the file layout changes, so an older server refuses a newer file instead of
/// dropping fields it does not know. Version 2 added Insights selectors; a file is written
/// as version 1 while no trail has any (see [`file_version`]), so a server without
/// Insights still opens it and loses nothing.
const FILE_VERSION: u32 = 2;

/// The oldest version that holds everything in `contents`.
fn file_version(contents: &RegistryContents) -> u32 {
    if contents
        .trails
        .iter()
        .any(|trail| trail.has_insight_selectors())
    {
        2
    } else {
        1
    }
}

#[derive(Serialize, Deserialize)]
struct TrailsFile {
    version: u32,
    #[serde(flatten)]
    contents: RegistryContents,
}

/// Everything the registry persists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryContents {
    pub trails: Vec<Trail>,
    /// Deleted trails whose store cursors and state directory may still exist. A deletion
    /// records this in the same write that removes the trail, so a crash in the middle of
    /// the cleanup is finished at the next start, and no orphaned cursor holds back the
    /// store's retention.
    #[serde(default)]
    pub cleanups: Vec<PendingCleanup>,
}

/// What remains to remove of a deleted trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingCleanup {
    pub trail_id: String,
    pub consumers: Vec<String>,
}

/// The registry. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct TrailRegistry {
    path: PathBuf,
    contents: RwLock<Arc<RegistryContents>>,
    write_lock: Mutex<()>,
}

impl TrailRegistry {
    /// Opens (creating the directory if needed) the registry in `trails_dir`. Blocking.
    pub fn open(trails_dir: &Path) -> Result<TrailRegistry, TrailsError> {
        std::fs::create_dir_all(trails_dir).map_err(|source| TrailsError::Write {
            path: trails_dir.to_owned(),
            source,
        })?;
        let path = trails_dir.join(TRAILS_FILE_NAME);
        let contents = match opentrail_durable::read_optional(&path) {
            Ok(None) => RegistryContents::default(),
            Ok(Some(bytes)) => {
                let file: TrailsFile =
                    serde_json::from_slice(&bytes).map_err(|error| TrailsError::Corrupt {
                        path: path.clone(),
                        reason: error.to_string(),
                    })?;
                if file.version > FILE_VERSION {
                    return Err(TrailsError::Corrupt {
                        path,
                        reason: format!(
                            "version {} is newer than this server's {FILE_VERSION}",
                            file.version
                        ),
                    });
                }
                file.contents
            }
            Err(source) => return Err(TrailsError::Read { path, source }),
        };
        Ok(TrailRegistry {
            path,
            contents: RwLock::new(Arc::new(contents)),
            write_lock: Mutex::new(()),
        })
    }

    /// The current contents.
    pub fn snapshot(&self) -> Arc<RegistryContents> {
        Arc::clone(&self.contents.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The current trails.
    pub fn trails(&self) -> Vec<Trail> {
        self.snapshot().trails.clone()
    }

    /// Applies `change` to a copy of the list, persists the copy, then publishes it.
    /// `change` decides the result (and may refuse with an error, which changes nothing).
    /// Blocking.
    pub fn mutate<R>(
        &self,
        change: impl FnOnce(&mut RegistryContents) -> Result<R, TrailsError>,
    ) -> Result<R, TrailsError> {
        let _writing = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut contents = (*self.snapshot()).clone();
        let result = change(&mut contents)?;
        if contents == *self.snapshot() {
            return Ok(result);
        }
        let bytes = serde_json::to_vec_pretty(&TrailsFile {
            version: file_version(&contents),
            contents: contents.clone(),
        })
        .map_err(|error| TrailsError::Corrupt {
            path: self.path.clone(),
            reason: error.to_string(),
        })?;
        opentrail_durable::write_atomically(&self.path, &bytes).map_err(|source| {
            TrailsError::Write {
                path: self.path.clone(),
                source,
            }
        })?;
        *self
            .contents
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(contents);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::InsightSelector;

    /// A trails.json as written before Insights selectors existed.
    const BEFORE_INSIGHTS: &str = r#"{
      "version": 1,
      "trails": [{
        "id": "5b7f0c3e-0000-4000-8000-000000000001",
        "name": "main",
        "accountId": "111122223333",
        "homeRegion": "us-east-1",
        "settings": {
          "s3BucketName": "audit-logs",
          "includeGlobalServiceEvents": true,
          "isMultiRegionTrail": false,
          "logFileValidationEnabled": false,
          "recursiveLogging": true
        },
        "selectors": {"kind": "default"},
        "tags": [],
        "logging": {"isLogging": true, "periods": [{"afterSeq": 3}]},
        "createdTimeMs": 1700000000000
      }],
      "cleanups": []
    }"#;

    #[test]
    fn a_file_from_before_insights_loads_and_insights_selectors_persist_as_version_2() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(TRAILS_FILE_NAME), BEFORE_INSIGHTS).expect("write");
        let registry = TrailRegistry::open(dir.path()).expect("open an old file");
        let trails = registry.trails();
        assert_eq!(trails.len(), 1);
        assert!(trails[0].insight_selectors.is_empty());
        assert!(trails[0].logging.covers(4));

        let version_on_disk = || -> u64 {
            let bytes = std::fs::read(dir.path().join(TRAILS_FILE_NAME)).expect("read");
            let file: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            file["version"].as_u64().expect("version")
        };
        let set = |selectors: Vec<InsightSelector>| {
            registry
                .mutate(|contents| {
                    contents.trails[0].insight_selectors = selectors;
                    Ok(())
                })
                .expect("mutate");
        };
        set(vec![InsightSelector {
            insight_type: "ApiCallRateInsight".to_owned(),
            event_categories: vec!["Management".to_owned()],
        }]);
        // A server without Insights must refuse this file rather than drop the selectors.
        assert_eq!(version_on_disk(), 2);
        let reopened = TrailRegistry::open(dir.path()).expect("reopen");
        assert_eq!(
            reopened.trails()[0].insight_selectors,
            registry.trails()[0].insight_selectors
        );
        drop(reopened);
        // Without selectors the file is one every earlier server reads.
        set(Vec::new());
        assert_eq!(version_on_disk(), 1);
        let bytes = std::fs::read(dir.path().join(TRAILS_FILE_NAME)).expect("read");
        assert!(!String::from_utf8_lossy(&bytes).contains("insightSelectors"));
    }
}

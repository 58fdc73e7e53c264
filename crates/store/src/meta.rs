//! Small durable metadata: the store's format, consumer cursors and the retention floor,
//! in one JSON file rewritten atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::files;

pub(crate) const META_FILE_NAME: &str = "meta.json";
/// The on-disk format this code writes and reads.
pub(crate) const STORE_FORMAT: u32 = 2;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct MetaState {
    pub format: u32,
    /// Seqs at or below this were removed by retention.
    pub expired_through_seq: u64,
    pub cursors: BTreeMap<String, u64>,
}

pub(crate) struct Meta {
    path: PathBuf,
    state: Mutex<MetaState>,
}

impl Meta {
    /// Loads the metadata of a store; `None` when the file does not exist yet.
    pub(crate) fn load(dir: &Path) -> Result<Option<MetaState>, StoreError> {
        let path = dir.join(META_FILE_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                StoreError::corrupt(
                    "store metadata",
                    path.display().to_string(),
                    error.to_string(),
                )
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(StoreError::io(&path, error)),
        }
    }

    pub(crate) fn create(dir: &Path, state: MetaState) -> Result<Meta, StoreError> {
        let meta = Meta {
            path: dir.join(META_FILE_NAME),
            state: Mutex::new(state),
        };
        meta.persist(&meta.lock())?;
        Ok(meta)
    }

    pub(crate) fn open(dir: &Path, state: MetaState) -> Meta {
        Meta {
            path: dir.join(META_FILE_NAME),
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MetaState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn persist(&self, state: &MetaState) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|error| {
            StoreError::corrupt(
                "store metadata",
                self.path.display().to_string(),
                error.to_string(),
            )
        })?;
        files::write_atomically(&self.path, &bytes)
    }

    /// Applies a change and makes it durable before returning.
    pub(crate) fn update(&self, change: impl FnOnce(&mut MetaState)) -> Result<(), StoreError> {
        let mut state = self.lock();
        let mut changed = state.clone();
        change(&mut changed);
        self.persist(&changed)?;
        *state = changed;
        Ok(())
    }

    pub(crate) fn read<T>(&self, read: impl FnOnce(&MetaState) -> T) -> T {
        read(&self.lock())
    }
}

//! Event data stores: named views of an account's events that queries name in `FROM`,
//! persisted in `DATA_DIR/lake/event-data-stores.json`.
//!
//! A data store holds no copy of the events. It is the account's events that its
//! selectors admit, no older than its retention period, read from the one store, so
//! creating one makes the whole history queryable at once and costs no disk.
//!
//! Reads clone an `Arc` of the published list; writes are serialised, build the new list
//! aside, persist it (temporary file, fsync, rename) and only then publish it, so memory
//! never shows a store the file does not hold.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use crate::selectors::EventSelector;
use crate::table::TableScope;

const FILE_NAME: &str = "event-data-stores.json";
const FILE_VERSION: u32 = 1;
/// CloudTrail's quota per account and region.
pub const MAX_DATA_STORES_PER_REGION: usize = 10;
/// How long a deleted store can be restored before it is gone.
pub const RESTORE_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DataStoreStatus {
    Enabled,
    PendingDeletion,
}

impl DataStoreStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DataStoreStatus::Enabled => "ENABLED",
            DataStoreStatus::PendingDeletion => "PENDING_DELETION",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDataStore {
    /// A lower-case UUID: the last part of the ARN and the table name in `FROM`.
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub region: String,
    pub selectors: Vec<EventSelector>,
    pub multi_region_enabled: bool,
    pub organization_enabled: bool,
    pub retention_days: u32,
    pub termination_protection_enabled: bool,
    pub billing_mode: String,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    pub status: DataStoreStatus,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_ms: Option<i64>,
}

impl EventDataStore {
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:cloudtrail:{}:{}:eventdatastore/{}",
            self.region, self.account_id, self.id
        )
    }

    /// What a query over this store reads at `now_ms`.
    pub fn scope(&self, now_ms: i64) -> TableScope {
        TableScope {
            account_id: Some(self.account_id.clone()),
            selectors: self.selectors.clone(),
            min_event_time_ms: Some(now_ms - i64::from(self.retention_days) * DAY_MS),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.status == DataStoreStatus::Enabled
    }
}

/// What CreateEventDataStore asks for, validated.
#[derive(Debug, Clone)]
pub struct NewEventDataStore {
    pub name: String,
    pub account_id: String,
    pub region: String,
    pub selectors: Vec<EventSelector>,
    pub multi_region_enabled: bool,
    pub organization_enabled: bool,
    pub retention_days: u32,
    pub termination_protection_enabled: bool,
    pub billing_mode: String,
    pub tags: Vec<(String, String)>,
}

/// What UpdateEventDataStore changes; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct EventDataStoreUpdate {
    pub name: Option<String>,
    pub selectors: Option<Vec<EventSelector>>,
    pub multi_region_enabled: Option<bool>,
    pub organization_enabled: Option<bool>,
    pub retention_days: Option<u32>,
    pub termination_protection_enabled: Option<bool>,
    pub billing_mode: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataStoreError {
    #[error("Event data store {0} was not found.")]
    NotFound(String),
    #[error("An event data store named {0} already exists in this account and region.")]
    AlreadyExists(String),
    #[error("This account and region already have {MAX_DATA_STORES_PER_REGION} event data stores.")]
    LimitExceeded,
    #[error(
        "Event data store {0} has termination protection enabled: turn it off with UpdateEventDataStore first."
    )]
    TerminationProtected(String),
    #[error("Event data store {0} is pending deletion.")]
    Inactive(String),
    #[error("Event data store {0} is not pending deletion, so there is nothing to restore.")]
    NotPendingDeletion(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid event data store file: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

#[derive(Serialize, Deserialize)]
struct DataStoresFile {
    version: u32,
    stores: Vec<EventDataStore>,
}

/// Every event data store of this server. Cheap to clone: clones share state.
#[derive(Clone)]
pub struct EventDataStores {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    stores: RwLock<Arc<Vec<EventDataStore>>>,
    /// Serialises writers, so check-then-write (names, the quota) is atomic.
    write_lock: Mutex<()>,
}

impl EventDataStores {
    /// Loads `dir/event-data-stores.json`; none is an empty list. A file that does not
    /// parse is an error: starting empty would let the next write erase every store.
    pub fn open(dir: &Path) -> Result<EventDataStores, DataStoreError> {
        let path = dir.join(FILE_NAME);
        let stores = match opentrail_durable::read_optional(&path) {
            Ok(None) => Vec::new(),
            Ok(Some(bytes)) => {
                let file: DataStoresFile =
                    serde_json::from_slice(&bytes).map_err(|error| DataStoreError::Corrupt {
                        path: path.clone(),
                        detail: error.to_string(),
                    })?;
                if file.version > FILE_VERSION {
                    return Err(DataStoreError::Corrupt {
                        path,
                        detail: format!(
                            "version {} is newer than this server's {FILE_VERSION}",
                            file.version
                        ),
                    });
                }
                file.stores
            }
            Err(source) => return Err(DataStoreError::Io { path, source }),
        };
        Ok(EventDataStores {
            inner: Arc::new(Inner {
                path,
                stores: RwLock::new(Arc::new(stores)),
                write_lock: Mutex::new(()),
            }),
        })
    }

    fn snapshot(&self) -> Arc<Vec<EventDataStore>> {
        Arc::clone(
            &self
                .inner
                .stores
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The account's stores visible in `region` (multi-region ones everywhere), by name.
    pub fn list(&self, account_id: &str, region: &str) -> Vec<EventDataStore> {
        let mut stores: Vec<EventDataStore> = self
            .snapshot()
            .iter()
            .filter(|store| store.account_id == account_id && visible_in(store, region))
            .cloned()
            .collect();
        stores.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        stores
    }

    /// The store a request names by ARN, id or name, as the account sees it from `region`.
    pub fn find(
        &self,
        account_id: &str,
        region: &str,
        reference: &str,
    ) -> Result<EventDataStore, DataStoreError> {
        let (arn_account, id_or_name) = match reference.strip_prefix("arn:") {
            Some(_) => {
                let mut parts = reference.splitn(6, ':');
                let account = parts.nth(4).unwrap_or_default().to_owned();
                let resource = parts.next().unwrap_or_default();
                let id = resource.strip_prefix("eventdatastore/").unwrap_or_default();
                (Some(account), id)
            }
            None => (None, reference),
        };
        self.snapshot()
            .iter()
            .find(|store| {
                store.account_id == account_id
                    && visible_in(store, region)
                    && arn_account
                        .as_deref()
                        .is_none_or(|account| account == account_id)
                    && (store.id == id_or_name
                        || (arn_account.is_none() && store.name == id_or_name))
            })
            .cloned()
            .ok_or_else(|| DataStoreError::NotFound(reference.to_owned()))
    }

    /// Creates a store with a new id. Blocking (fsync).
    pub fn create(
        &self,
        new: NewEventDataStore,
        now_ms: i64,
    ) -> Result<EventDataStore, DataStoreError> {
        self.write(|stores| {
            let same_scope = || {
                stores.iter().filter(|store| {
                    store.account_id == new.account_id && store.region == new.region
                })
            };
            if same_scope().any(|store| store.name == new.name) {
                return Err(DataStoreError::AlreadyExists(new.name.clone()));
            }
            if same_scope().count() >= MAX_DATA_STORES_PER_REGION {
                return Err(DataStoreError::LimitExceeded);
            }
            let store = EventDataStore {
                id: uuid::Uuid::new_v4().to_string(),
                name: new.name.clone(),
                account_id: new.account_id.clone(),
                region: new.region.clone(),
                selectors: new.selectors.clone(),
                multi_region_enabled: new.multi_region_enabled,
                organization_enabled: new.organization_enabled,
                retention_days: new.retention_days,
                termination_protection_enabled: new.termination_protection_enabled,
                billing_mode: new.billing_mode.clone(),
                tags: new.tags.clone(),
                status: DataStoreStatus::Enabled,
                created_ms: now_ms,
                updated_ms: now_ms,
                deleted_ms: None,
            };
            stores.push(store.clone());
            Ok(store)
        })
    }

    /// Changes an enabled store. Blocking (fsync).
    pub fn update(
        &self,
        current: &EventDataStore,
        update: EventDataStoreUpdate,
        now_ms: i64,
    ) -> Result<EventDataStore, DataStoreError> {
        self.write(|stores| {
            if let Some(name) = &update.name
                && stores.iter().any(|store| {
                    store.id != current.id
                        && store.account_id == current.account_id
                        && store.region == current.region
                        && &store.name == name
                })
            {
                return Err(DataStoreError::AlreadyExists(name.clone()));
            }
            let store = find_mut(stores, &current.id)?;
            if !store.is_enabled() {
                return Err(DataStoreError::Inactive(store.id.clone()));
            }
            if let Some(name) = update.name {
                store.name = name;
            }
            if let Some(selectors) = update.selectors {
                store.selectors = selectors;
            }
            if let Some(value) = update.multi_region_enabled {
                store.multi_region_enabled = value;
            }
            if let Some(value) = update.organization_enabled {
                store.organization_enabled = value;
            }
            if let Some(value) = update.retention_days {
                store.retention_days = value;
            }
            if let Some(value) = update.termination_protection_enabled {
                store.termination_protection_enabled = value;
            }
            if let Some(value) = update.billing_mode {
                store.billing_mode = value;
            }
            store.updated_ms = now_ms;
            Ok(store.clone())
        })
    }

    /// Moves a store to `PENDING_DELETION`; [`EventDataStores::restore`] undoes it within
    /// [`RESTORE_WINDOW_MS`]. Blocking (fsync).
    pub fn delete(&self, current: &EventDataStore, now_ms: i64) -> Result<(), DataStoreError> {
        self.write(|stores| {
            let store = find_mut(stores, &current.id)?;
            if !store.is_enabled() {
                return Err(DataStoreError::Inactive(store.id.clone()));
            }
            if store.termination_protection_enabled {
                return Err(DataStoreError::TerminationProtected(store.id.clone()));
            }
            store.status = DataStoreStatus::PendingDeletion;
            store.deleted_ms = Some(now_ms);
            store.updated_ms = now_ms;
            Ok(())
        })
    }

    /// Brings a store pending deletion back. Blocking (fsync).
    pub fn restore(
        &self,
        current: &EventDataStore,
        now_ms: i64,
    ) -> Result<EventDataStore, DataStoreError> {
        self.write(|stores| {
            let store = find_mut(stores, &current.id)?;
            if store.is_enabled() {
                return Err(DataStoreError::NotPendingDeletion(store.id.clone()));
            }
            store.status = DataStoreStatus::Enabled;
            store.deleted_ms = None;
            store.updated_ms = now_ms;
            Ok(store.clone())
        })
    }

    /// Forgets stores deleted more than [`RESTORE_WINDOW_MS`] ago. Blocking (fsync).
    pub fn forget_deleted(&self, now_ms: i64) -> Result<usize, DataStoreError> {
        let expired = |store: &EventDataStore| {
            store
                .deleted_ms
                .is_some_and(|deleted| now_ms - deleted >= RESTORE_WINDOW_MS)
        };
        if !self.snapshot().iter().any(expired) {
            return Ok(0);
        }
        self.write(|stores| {
            let before = stores.len();
            stores.retain(|store| !expired(store));
            Ok(before - stores.len())
        })
    }

    fn write<T>(
        &self,
        change: impl FnOnce(&mut Vec<EventDataStore>) -> Result<T, DataStoreError>,
    ) -> Result<T, DataStoreError> {
        let _writer = self
            .inner
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut stores = (*self.snapshot()).clone();
        let answer = change(&mut stores)?;
        let file = DataStoresFile {
            version: FILE_VERSION,
            stores,
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|error| DataStoreError::Corrupt {
            path: self.inner.path.clone(),
            detail: error.to_string(),
        })?;
        let io = |source| DataStoreError::Io {
            path: self.inner.path.clone(),
            source,
        };
        if let Some(dir) = self.inner.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        opentrail_durable::write_atomically(&self.inner.path, &bytes).map_err(io)?;
        *self
            .inner
            .stores
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(file.stores);
        Ok(answer)
    }
}

fn visible_in(store: &EventDataStore, region: &str) -> bool {
    store.multi_region_enabled || store.region == region
}

fn find_mut<'a>(
    stores: &'a mut [EventDataStore],
    id: &str,
) -> Result<&'a mut EventDataStore, DataStoreError> {
    stores
        .iter_mut()
        .find(|store| store.id == id)
        .ok_or_else(|| DataStoreError::NotFound(id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_store(name: &str) -> NewEventDataStore {
        NewEventDataStore {
            name: name.to_owned(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            selectors: Vec::new(),
            multi_region_enabled: true,
            organization_enabled: false,
            retention_days: 366,
            termination_protection_enabled: true,
            billing_mode: "EXTENDABLE_RETENTION_PRICING".into(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn stores_survive_reopening_and_deletion_waits_for_protection_and_the_window()
    -> Result<(), DataStoreError> {
        let dir = tempfile::tempdir().map_err(|source| DataStoreError::Io {
            path: PathBuf::new(),
            source,
        })?;
        let stores = EventDataStores::open(dir.path())?;
        let created = stores.create(new_store("audit"), 1_000)?;
        assert!(matches!(
            stores.create(new_store("audit"), 1_000),
            Err(DataStoreError::AlreadyExists(_))
        ));
        assert!(matches!(
            stores.delete(&created, 2_000),
            Err(DataStoreError::TerminationProtected(_))
        ));
        let unprotected = stores.update(
            &created,
            EventDataStoreUpdate {
                termination_protection_enabled: Some(false),
                ..EventDataStoreUpdate::default()
            },
            2_000,
        )?;
        stores.delete(&unprotected, 3_000)?;

        let reopened = EventDataStores::open(dir.path())?;
        let found = reopened.find("111122223333", "eu-west-1", &created.arn())?;
        assert_eq!(found.status, DataStoreStatus::PendingDeletion);
        assert!(matches!(
            reopened.find("444455556666", "us-east-1", &created.id),
            Err(DataStoreError::NotFound(_))
        ));
        assert_eq!(reopened.forget_deleted(3_000 + RESTORE_WINDOW_MS - 1)?, 0);
        reopened.restore(&found, 4_000)?;
        let restored = reopened.find("111122223333", "us-east-1", "audit")?;
        assert!(restored.is_enabled());
        reopened.delete(&restored, 5_000)?;
        assert_eq!(reopened.forget_deleted(5_000 + RESTORE_WINDOW_MS)?, 1);
        assert!(reopened.list("111122223333", "us-east-1").is_empty());
        Ok(())
    }
}

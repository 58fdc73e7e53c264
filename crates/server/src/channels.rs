//! Channels for `PutAuditEvents`: which channel ARNs exist, who owns them.
//!
//! The registry lives in memory and in `DATA_DIR/channels.json`. Reads (every
//! PutAuditEvents looks its channel up) only clone an `Arc` under a read lock, so they
//! never wait for disk. Writes are serialised by a separate mutex, build the new map
//! aside, persist it atomically (temp file, fsync, rename) and only then publish it, so
//! memory never shows a channel the file does not hold and a failed write changes
//! nothing. Writes block on fsync: async callers run them on `spawn_blocking`.
//!
//! Channels are regional and belong to one account, as in CloudTrail: the ARN is
//! `arn:aws:cloudtrail:<region>:<account>:channel/<uuid>`, and a name is unique per
//! account and region.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use opentrail_protocol::channels::{ChannelRef, Destination, Tag, channel_arn};
use serde::{Deserialize, Serialize};

use opentrail_durable::write_private_atomically;

/// The file name under the data directory.
pub const CHANNELS_FILE_NAME: &str = "channels.json";
/// CloudTrail's quota of channels per account and region (user guide, "Quotas").
pub const MAX_CHANNELS_PER_ACCOUNT_AND_REGION: usize = 25;
/// Bumped if the file layout changes, so an older server refuses a newer file instead of
/// dropping fields it does not know.
const FILE_VERSION: u32 = 1;

/// One channel, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    /// The UUID after `channel/` in the ARN.
    pub id: String,
    pub arn: String,
    pub name: String,
    pub source: String,
    pub destinations: Vec<Destination>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub owner_account_id: String,
    pub region: String,
    pub created_time_ms: i64,
}

/// What CreateChannel asks for, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChannel {
    pub owner_account_id: String,
    pub region: String,
    pub name: String,
    pub source: String,
    pub destinations: Vec<Destination>,
    pub tags: Vec<Tag>,
}

/// What UpdateChannel may change; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelUpdate {
    pub name: Option<String>,
    pub destinations: Option<Vec<Destination>>,
}

/// The latest PutAuditEvents outcome of a channel (GetChannel `IngestionStatus`). Kept in
/// memory only: persisting it would put a file write on every ingest call, and after a
/// restart "no ingestion yet" is an honest answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestionState {
    pub latest_success_time_ms: Option<i64>,
    pub latest_success_event_id: Option<String>,
    pub latest_error_code: Option<String>,
    pub latest_attempt_time_ms: Option<i64>,
    pub latest_attempt_event_id: Option<String>,
}

/// One PutAuditEvents call's result, for [`ChannelRegistry::record_ingestion`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestionAttempt {
    pub time_ms: i64,
    /// The eventID of the last entry stored by the call, if any was.
    pub last_stored_event_id: Option<String>,
    /// The error code of the last entry that failed, if any did.
    pub last_error_code: Option<String>,
}

/// One page of [`ChannelRegistry::list_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPage {
    pub channels: Vec<Channel>,
    /// The id to continue after, when more channels follow.
    pub continue_after: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelRegistryError {
    #[error("cannot read channels from {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("channels file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write channels to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a channel named '{name}' already exists in account {account_id}, region {region}")]
    NameTaken {
        name: String,
        account_id: String,
        region: String,
    },
    #[error("account {account_id} already has {limit} channels in region {region}")]
    LimitExceeded {
        account_id: String,
        region: String,
        limit: usize,
    },
    #[error("no channel with id {id}")]
    NotFound { id: String },
}

/// The persisted set of channels (`DATA_DIR/channels.json`). Cheap to clone: clones share
/// the same state.
#[derive(Clone)]
pub struct ChannelRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Published state, keyed (and so listed) by channel id. Replaced whole on each write.
    channels: RwLock<Arc<BTreeMap<String, Channel>>>,
    /// Serialises writers, so check-then-write (name uniqueness, the quota) is atomic.
    write_lock: Mutex<()>,
    ingestion: Mutex<HashMap<String, IngestionState>>,
}

#[derive(Serialize, Deserialize)]
struct ChannelsFile {
    version: u32,
    channels: Vec<Channel>,
}

impl ChannelRegistry {
    /// Loads `DATA_DIR/channels.json`; a missing file is an empty registry. A file that
    /// does not parse is an error rather than an empty registry, because starting empty
    /// would let the next write silently erase every channel.
    pub fn open(data_dir: &Path) -> Result<ChannelRegistry, ChannelRegistryError> {
        let path = data_dir.join(CHANNELS_FILE_NAME);
        let channels = match std::fs::read(&path) {
            Ok(bytes) => parse_file(&path, &bytes)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(ChannelRegistryError::Read { path, source }),
        };
        Ok(ChannelRegistry {
            inner: Arc::new(Inner {
                path,
                channels: RwLock::new(Arc::new(channels)),
                write_lock: Mutex::new(()),
                ingestion: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The published state. Poisoning is ignored: the map is only ever replaced whole, so
    /// a panic elsewhere cannot leave it half-changed.
    fn snapshot(&self) -> Arc<BTreeMap<String, Channel>> {
        Arc::clone(
            &self
                .inner
                .channels
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    pub fn get(&self, id: &str) -> Option<Channel> {
        self.snapshot().get(id).cloned()
    }

    /// The channel a request names, as seen from `region`: the id must exist in that
    /// region, and an ARN's account and region must be the channel's own. Anything else
    /// is "not found", exactly like a channel that never existed.
    pub fn find(&self, reference: &ChannelRef, region: &str) -> Option<Channel> {
        let channel = self.get(reference.channel_id())?;
        if channel.region != region {
            return None;
        }
        if let ChannelRef::Arn {
            region: arn_region,
            account_id,
            ..
        } = reference
            && (*arn_region != channel.region || *account_id != channel.owner_account_id)
        {
            return None;
        }
        Some(channel)
    }

    /// Up to `limit` channels that `visible` accepts, in id order, starting after the id
    /// `after` (exclusive). Id order is stable under renames and deletions, so a listing
    /// continued with `continue_after` never repeats or skips a surviving channel.
    pub fn list_page(
        &self,
        visible: impl Fn(&Channel) -> bool,
        after: Option<&str>,
        limit: usize,
    ) -> ChannelPage {
        let snapshot = self.snapshot();
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(after.to_owned()),
            None => std::ops::Bound::Unbounded,
        };
        let mut matching = snapshot
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, channel)| channel)
            .filter(|channel| visible(channel));
        let channels: Vec<Channel> = matching.by_ref().take(limit).cloned().collect();
        let continue_after = match (matching.next(), channels.last()) {
            (Some(_), Some(last)) => Some(last.id.clone()),
            _ => None,
        };
        ChannelPage {
            channels,
            continue_after,
        }
    }

    /// Creates a channel with a new UUID. Blocking (fsync).
    pub fn create(
        &self,
        new: NewChannel,
        created_time_ms: i64,
    ) -> Result<Channel, ChannelRegistryError> {
        self.write(|channels| {
            let same_scope = || {
                channels.values().filter(|channel| {
                    channel.owner_account_id == new.owner_account_id && channel.region == new.region
                })
            };
            ensure_name_free(
                same_scope(),
                &new.name,
                None,
                &new.owner_account_id,
                &new.region,
            )?;
            if same_scope().count() >= MAX_CHANNELS_PER_ACCOUNT_AND_REGION {
                return Err(ChannelRegistryError::LimitExceeded {
                    account_id: new.owner_account_id.clone(),
                    region: new.region.clone(),
                    limit: MAX_CHANNELS_PER_ACCOUNT_AND_REGION,
                });
            }
            let id = uuid::Uuid::new_v4().to_string();
            let channel = Channel {
                arn: channel_arn(&new.region, &new.owner_account_id, &id),
                id: id.clone(),
                name: new.name.clone(),
                source: new.source.clone(),
                destinations: new.destinations.clone(),
                tags: new.tags.clone(),
                owner_account_id: new.owner_account_id.clone(),
                region: new.region.clone(),
                created_time_ms,
            };
            channels.insert(id, channel.clone());
            Ok(channel)
        })
    }

    /// Renames a channel and/or replaces its destinations. Blocking (fsync).
    pub fn update(&self, id: &str, update: ChannelUpdate) -> Result<Channel, ChannelRegistryError> {
        self.write(|channels| {
            let current = channels
                .get(id)
                .cloned()
                .ok_or_else(|| ChannelRegistryError::NotFound { id: id.to_owned() })?;
            let mut updated = current.clone();
            if let Some(name) = update.name {
                let same_scope = channels.values().filter(|channel| {
                    channel.owner_account_id == current.owner_account_id
                        && channel.region == current.region
                });
                ensure_name_free(
                    same_scope,
                    &name,
                    Some(id),
                    &current.owner_account_id,
                    &current.region,
                )?;
                updated.name = name;
            }
            if let Some(destinations) = update.destinations {
                updated.destinations = destinations;
            }
            channels.insert(id.to_owned(), updated.clone());
            Ok(updated)
        })
    }

    /// Deletes a channel. Blocking (fsync).
    pub fn delete(&self, id: &str) -> Result<Channel, ChannelRegistryError> {
        let deleted = self.write(|channels| {
            channels
                .remove(id)
                .ok_or_else(|| ChannelRegistryError::NotFound { id: id.to_owned() })
        })?;
        self.ingestion_map().remove(id);
        Ok(deleted)
    }

    /// Notes the outcome of a PutAuditEvents call on `channel_id`.
    pub fn record_ingestion(&self, channel_id: &str, attempt: IngestionAttempt) {
        let mut ingestion = self.ingestion_map();
        let state = ingestion.entry(channel_id.to_owned()).or_default();
        state.latest_attempt_time_ms = Some(attempt.time_ms);
        if let Some(event_id) = &attempt.last_stored_event_id {
            state.latest_attempt_event_id = Some(event_id.clone());
            state.latest_success_time_ms = Some(attempt.time_ms);
            state.latest_success_event_id = Some(event_id.clone());
        }
        if attempt.last_error_code.is_some() {
            state.latest_error_code = attempt.last_error_code;
        }
    }

    pub fn ingestion_state(&self, channel_id: &str) -> Option<IngestionState> {
        self.ingestion_map().get(channel_id).cloned()
    }

    fn ingestion_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, IngestionState>> {
        // Each entry is updated field by field from plain values; a poisoned lock holds
        // nothing worse than a half-updated status report.
        self.inner
            .ingestion
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `change` to a copy of the channels, persists the copy, then publishes it.
    fn write<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, Channel>) -> Result<T, ChannelRegistryError>,
    ) -> Result<T, ChannelRegistryError> {
        // The guard protects no data, only the order of writers; poisoning means a writer
        // panicked before publishing, which left the published state intact.
        let _writer = self
            .inner
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut channels = BTreeMap::clone(&self.snapshot());
        let result = change(&mut channels)?;
        let file = ChannelsFile {
            version: FILE_VERSION,
            channels: channels.values().cloned().collect(),
        };
        let bytes =
            serde_json::to_vec_pretty(&file).map_err(|error| ChannelRegistryError::Write {
                path: self.inner.path.clone(),
                source: std::io::Error::other(error),
            })?;
        write_private_atomically(&self.inner.path, &bytes).map_err(|source| {
            ChannelRegistryError::Write {
                path: self.inner.path.clone(),
                source,
            }
        })?;
        *self
            .inner
            .channels
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(channels);
        Ok(result)
    }
}

fn ensure_name_free<'a>(
    mut same_scope: impl Iterator<Item = &'a Channel>,
    name: &str,
    except_id: Option<&str>,
    account_id: &str,
    region: &str,
) -> Result<(), ChannelRegistryError> {
    if same_scope.any(|channel| channel.name == name && Some(channel.id.as_str()) != except_id) {
        return Err(ChannelRegistryError::NameTaken {
            name: name.to_owned(),
            account_id: account_id.to_owned(),
            region: region.to_owned(),
        });
    }
    Ok(())
}

fn parse_file(
    path: &Path,
    bytes: &[u8],
) -> Result<BTreeMap<String, Channel>, ChannelRegistryError> {
    let invalid = |reason: String| ChannelRegistryError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let file: ChannelsFile =
        serde_json::from_slice(bytes).map_err(|error| invalid(error.to_string()))?;
    if file.version != FILE_VERSION {
        return Err(invalid(format!(
            "version {} is not supported (expected {FILE_VERSION})",
            file.version
        )));
    }
    let mut channels = BTreeMap::new();
    for channel in file.channels {
        let id = channel.id.clone();
        if channels.insert(id.clone(), channel).is_some() {
            return Err(invalid(format!("channel id {id} appears twice")));
        }
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT_A: &str = "111122223333";
    const ACCOUNT_B: &str = "444455556666";
    const REGION: &str = "us-east-1";

    fn new_channel(account: &str, region: &str, name: &str) -> NewChannel {
        NewChannel {
            owner_account_id: account.to_owned(),
            region: region.to_owned(),
            name: name.to_owned(),
            source: "Custom".to_owned(),
            destinations: vec![Destination {
                destination_type: "EVENT_DATA_STORE".to_owned(),
                location: "arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/x".to_owned(),
            }],
            tags: vec![Tag {
                key: "team".to_owned(),
                value: Some("payments".to_owned()),
            }],
        }
    }

    #[test]
    fn channels_survive_a_reopen() -> anyhow::Result<()> {
        let directory = tempfile::tempdir()?;
        let registry = ChannelRegistry::open(directory.path())?;
        let created =
            registry.create(new_channel(ACCOUNT_A, REGION, "app-1"), 1_700_000_000_000)?;
        assert_eq!(
            created.arn,
            format!(
                "arn:aws:cloudtrail:{REGION}:{ACCOUNT_A}:channel/{}",
                created.id
            )
        );
        assert!(uuid::Uuid::parse_str(&created.id).is_ok());
        let renamed = registry.update(
            &created.id,
            ChannelUpdate {
                name: Some("app-renamed".to_owned()),
                destinations: None,
            },
        )?;
        let second = registry.create(new_channel(ACCOUNT_A, REGION, "app-2"), 1)?;
        registry.delete(&second.id)?;

        let reopened = ChannelRegistry::open(directory.path())?;
        assert_eq!(reopened.get(&created.id), Some(renamed));
        assert_eq!(reopened.get(&second.id), None);
        assert_eq!(
            opentrail_durable::permission_bits(reopened.path())?,
            opentrail_durable::PRIVATE_FILE_MODE
        );
        Ok(())
    }

    #[test]
    fn a_missing_file_is_empty_and_a_corrupt_one_is_refused() -> anyhow::Result<()> {
        let directory = tempfile::tempdir()?;
        let registry = ChannelRegistry::open(directory.path())?;
        assert!(registry.list_page(|_| true, None, 10).channels.is_empty());
        std::fs::write(directory.path().join(CHANNELS_FILE_NAME), b"{not json")?;
        assert!(matches!(
            ChannelRegistry::open(directory.path()),
            Err(ChannelRegistryError::Invalid { .. })
        ));
        Ok(())
    }

    #[test]
    fn names_are_unique_per_account_and_region() -> anyhow::Result<()> {
        let directory = tempfile::tempdir()?;
        let registry = ChannelRegistry::open(directory.path())?;
        let first = registry.create(new_channel(ACCOUNT_A, REGION, "app"), 1)?;
        assert!(matches!(
            registry.create(new_channel(ACCOUNT_A, REGION, "app"), 2),
            Err(ChannelRegistryError::NameTaken { .. })
        ));
        // Another account or another region may reuse the name.
        registry.create(new_channel(ACCOUNT_B, REGION, "app"), 3)?;
        registry.create(new_channel(ACCOUNT_A, "eu-west-1", "app"), 4)?;
        // Renaming onto a taken name fails; renaming to its own name is fine.
        let other = registry.create(new_channel(ACCOUNT_A, REGION, "other"), 5)?;
        let rename = |name: &str| ChannelUpdate {
            name: Some(name.to_owned()),
            destinations: None,
        };
        assert!(matches!(
            registry.update(&other.id, rename("app")),
            Err(ChannelRegistryError::NameTaken { .. })
        ));
        registry.update(&first.id, rename("app"))?;
        // A failed write leaves everything as it was.
        assert_eq!(
            registry.get(&other.id).map(|c| c.name),
            Some("other".to_owned())
        );
        Ok(())
    }

    #[test]
    fn the_quota_is_per_account_and_region() -> anyhow::Result<()> {
        let directory = tempfile::tempdir()?;
        let registry = ChannelRegistry::open(directory.path())?;
        for index in 0..MAX_CHANNELS_PER_ACCOUNT_AND_REGION {
            registry.create(new_channel(ACCOUNT_A, REGION, &format!("app-{index}")), 1)?;
        }
        assert!(matches!(
            registry.create(new_channel(ACCOUNT_A, REGION, "one-too-many"), 1),
            Err(ChannelRegistryError::LimitExceeded { .. })
        ));
        registry.create(new_channel(ACCOUNT_B, REGION, "one-too-many"), 1)?;
        Ok(())
    }

    #[test]
    fn find_checks_region_and_arn_account() -> anyhow::Result<()> {
        let directory = tempfile::tempdir()?;
        let registry = ChannelRegistry::open(directory.path())?;
        let channel = registry.create(new_channel(ACCOUNT_A, REGION, "app"), 1)?;
        let by_id = ChannelRef::Id(channel.id.clone());
        assert_eq!(registry.find(&by_id, REGION), Some(channel.clone()));
        assert_eq!(registry.find(&by_id, "eu-west-1"), None);
        let arn = |region: &str, account: &str| ChannelRef::Arn {
            region: region.to_owned(),
            account_id: account.to_owned(),
            channel_id: channel.id.clone(),
        };
        assert_eq!(
            registry.find(&arn(REGION, ACCOUNT_A), REGION),
            Some(channel.clone())
        );
        assert_eq!(registry.find(&arn(REGION, ACCOUNT_B), REGION), None);
        assert_eq!(registry.find(&arn("eu-west-1", ACCOUNT_A), REGION), None);
        assert_eq!(
            registry.find(&ChannelRef::Id("nope".to_owned()), REGION),
            None
        );
        Ok(())
    }

    #[test]
    fn listing_pages_by_id_and_filters_by_account() -> anyhow::Result<()> {
        let directory = tempfile::tempdir()?;
        let registry = ChannelRegistry::open(directory.path())?;
        let mut mine = Vec::new();
        for index in 0..5 {
            mine.push(
                registry
                    .create(new_channel(ACCOUNT_A, REGION, &format!("a-{index}")), 1)?
                    .id,
            );
            registry.create(new_channel(ACCOUNT_B, REGION, &format!("b-{index}")), 1)?;
        }
        mine.sort();
        let visible = |channel: &Channel| channel.owner_account_id == ACCOUNT_A;
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = registry.list_page(visible, after.as_deref(), 2);
            assert!(page.channels.len() <= 2);
            listed.extend(page.channels.into_iter().map(|channel| channel.id));
            match page.continue_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(listed, mine);
        // An exactly full last page says there is nothing more.
        let all = registry.list_page(visible, None, 5);
        assert_eq!(all.channels.len(), 5);
        assert_eq!(all.continue_after, None);
        Ok(())
    }

    #[test]
    fn ingestion_status_tracks_the_latest_attempt() -> anyhow::Result<()> {
        let directory = tempfile::tempdir()?;
        let registry = ChannelRegistry::open(directory.path())?;
        let channel = registry.create(new_channel(ACCOUNT_A, REGION, "app"), 1)?;
        assert_eq!(registry.ingestion_state(&channel.id), None);
        registry.record_ingestion(
            &channel.id,
            IngestionAttempt {
                time_ms: 10,
                last_stored_event_id: Some("e1".to_owned()),
                last_error_code: None,
            },
        );
        registry.record_ingestion(
            &channel.id,
            IngestionAttempt {
                time_ms: 20,
                last_stored_event_id: None,
                last_error_code: Some("InvalidChecksum".to_owned()),
            },
        );
        let state = registry.ingestion_state(&channel.id).unwrap_or_default();
        assert_eq!(state.latest_success_time_ms, Some(10));
        assert_eq!(state.latest_success_event_id.as_deref(), Some("e1"));
        assert_eq!(state.latest_attempt_time_ms, Some(20));
        assert_eq!(state.latest_error_code.as_deref(), Some("InvalidChecksum"));
        registry.delete(&channel.id)?;
        assert_eq!(registry.ingestion_state(&channel.id), None);
        Ok(())
    }
}

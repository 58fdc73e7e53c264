//! `opentrail backup` and `opentrail restore`: a consistent copy of a data directory,
//! taken while a server runs on it.
//!
//! The order is what makes the copy consistent (each later part never claims less than an
//! earlier one expects, and a part that cannot come later is completed afterwards with
//! what the later ones name):
//!
//! 1. Everything nothing below depends on: access keys, channels, detections and the like
//!    (all but the store, the archive, the trails' state, local trail buckets and the
//!    digest keys).
//! 2. Local trail buckets and the trails' state, together (`backup_trails`). A trail plans
//!    a file durably before it writes it, and records it (a manifest line, a digest chain
//!    link) only after, so neither can simply go first: buckets copied before the state
//!    lack files it names (a restored chain links to a digest that is not there, a
//!    manifest line to a missing log file), and a state copied before the buckets lacks
//!    the plans of files they hold (a restored trail delivers those events again under new
//!    keys, or forks its digest chain). So:
//!    1. the buckets, without Insights files;
//!    2. the store's cursors of the trails (read before their state, so at or before it);
//!    3. the registry, then for each trail its digest state, its delivery state, then its
//!       manifest without the lines of batches planned after that delivery state was
//!       copied (so the manifest holds at least the files the digest state counts and
//!       each batch the delivery state counts as done, and none it has not planned);
//!    4. Insights files (no manifest names them) with the Insights delivery states, copied
//!       again until those states did not change during a copy;
//!    5. the buckets completed from the live ones with every file the copied state names:
//!       each log file of the manifest, and each digest of the trail up to the end of its
//!       copied chain (a digest ends in the second it is planned, so one ending later is
//!       one the copied state has not planned). Objects never change once written, so a
//!       named one is there to copy.
//!
//!    The copied buckets then hold every file the copied state names, and only files it
//!    planned (a plan not finished yet is redone with the same keys and bytes).
//! 3. The digest keys: keys are only ever added, so every key a copied digest was signed
//!    with is there.
//! 4. The Parquet archive (`opentrail_archive::backup_archive`): its state, then the part
//!    files it counts as done.
//! 5. The store (`opentrail_store::backup_store`), with cursors set to where their
//!    consumer's copied state ends: the archive's to where the copied `state.json` ends,
//!    so the restored archiver seals exactly what the copy lacks; each trail's with a
//!    local bucket to what 2.2 read, so a restored trail resumes after the later of that
//!    and its copied state and delivers exactly the files the copied buckets lack, once.
//!    (A trail delivering to an S3 endpoint keeps the cursor the store copy reads: its
//!    bucket is not copied and already holds what was delivered meanwhile.)
//! 6. `BACKUP.json`, last: a directory without it is not a finished backup.
//!
//! Segments kept in a bucket (`segments_url`) are not copied: the bucket's own versioning
//! or replication is their backup. Neither are trail buckets on an S3 endpoint: only local
//! buckets are part of the data directory.
//!
//! A backup to `s3://BUCKET/PREFIX` is made in a local staging directory first and then
//! uploaded file by file (streamed, multipart for large files) with `BACKUP.json` last;
//! a restore from S3 refuses a prefix without `BACKUP.json`, downloads, and restores.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use opentrail_trails::delivery::{DeliveryKind, load_kind_state};
use opentrail_trails::destinations::{BUCKETS_DIR_NAME, SIGNATURE_SIDECAR_SUFFIX};
use opentrail_trails::digest::{DigestNaming, DigestState, digest_key_time_ms, load_digest_state};
use opentrail_trails::log_file::FileFolder;
use opentrail_trails::registry::TrailRegistry;
use opentrail_trails::service::DIGEST_KEYS_DIR_NAME;
use opentrail_trails::{DeliveredFile, Manifest, Trail};
use serde::{Deserialize, Serialize};

use crate::app::ARCHIVE_DIR_NAME;

/// Written last into a finished backup.
pub const BACKUP_MANIFEST_NAME: &str = "BACKUP.json";
const STORE_DIR_NAME: &str = "store";
/// The store's metadata file, which holds the consumers' cursors.
const STORE_META_FILE_NAME: &str = "meta.json";
/// The trails' state: the registry, and a directory per trail.
const TRAILS_DIR_NAME: &str = "trails";
const TRAIL_REGISTRY_FILE_NAME: &str = "trails.json";
/// A trail's digest state (`opentrail_trails::digest`).
const DIGEST_STATE_FILE_NAME: &str = "digest.json";
/// Copies of the Insights files before a backup gives up because the server delivered
/// more of them during every one.
const INSIGHTS_ATTEMPTS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not empty: a backup or restore writes into a new directory")]
    NotEmpty(PathBuf),
    #[error("{0} holds no finished backup ({BACKUP_MANIFEST_NAME} is missing)")]
    NotABackup(PathBuf),
    #[error("{0} holds no OpenTrail data directory (no store)")]
    NotADataDir(PathBuf),
    #[error(transparent)]
    Archive(#[from] opentrail_archive::ArchiveError),
    #[error(transparent)]
    Store(#[from] opentrail_store::StoreError),
    #[error(transparent)]
    Trails(#[from] opentrail_trails::TrailsError),
    #[error("Insights files were delivered during each of {INSIGHTS_ATTEMPTS} copies; try again")]
    InsightsUnsettled,
    #[error("{url}: {detail}")]
    S3 { url: String, detail: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a finished backup holds; also its `BACKUP.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupManifest {
    pub format: u32,
    pub created_at: String,
    /// Every event acknowledged before the backup began has a seq at or below this.
    pub acknowledged_through_seq: u64,
    pub last_seq: u64,
    pub archived_through_seq: Option<u64>,
}

/// Where a backup stands: tests make the server deliver at each of these points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// 2.1 is done.
    BucketsCopied,
    /// 2.2 is done.
    CursorsRead,
    /// A trail's digest state is copied, its delivery state not yet.
    DigestStateCopied,
    /// A trail's delivery state is copied, its manifest not yet.
    DeliveryStateCopied,
    /// One copy of the Insights files is done; their states are read again next.
    InsightsCopied,
    /// 2.3 and 2.4 are done.
    TrailsCopied,
    /// 2.5 is done.
    BucketsCompleted,
    /// 4 is done.
    ArchiveCopied,
}

/// Copies the data directory `data_dir` into `destination` (new or empty).
pub fn backup(data_dir: &Path, destination: &Path) -> Result<BackupManifest, BackupError> {
    backup_with(data_dir, destination, &mut |_| {})
}

fn backup_with(
    data_dir: &Path,
    destination: &Path,
    hook: &mut dyn FnMut(Step),
) -> Result<BackupManifest, BackupError> {
    let store_dir = data_dir.join(STORE_DIR_NAME);
    if !store_dir.join(STORE_META_FILE_NAME).exists() {
        return Err(BackupError::NotADataDir(data_dir.to_path_buf()));
    }
    prepare_empty_dir(destination)?;
    let created_at = jiff::Timestamp::now().to_string();

    copy_tree(data_dir, destination, &|relative| {
        ![
            STORE_DIR_NAME,
            ARCHIVE_DIR_NAME,
            TRAILS_DIR_NAME,
            BUCKETS_DIR_NAME,
            DIGEST_KEYS_DIR_NAME,
        ]
        .iter()
        .any(|part| relative.starts_with(part))
    })?;
    let mut cursor_overrides = backup_trails(data_dir, destination, hook)?;
    let keys_dir = data_dir.join(DIGEST_KEYS_DIR_NAME);
    if keys_dir.is_dir() {
        copy_tree(&keys_dir, &destination.join(DIGEST_KEYS_DIR_NAME), &|_| {
            true
        })?;
    }
    let archived_through_seq = opentrail_archive::backup_archive(
        &data_dir.join(ARCHIVE_DIR_NAME),
        &destination.join(ARCHIVE_DIR_NAME),
    )?;
    hook(Step::ArchiveCopied);
    cursor_overrides.extend(
        archived_through_seq.map(|seq| (opentrail_archive::ARCHIVE_CONSUMER.to_owned(), seq)),
    );
    let store = opentrail_store::backup_store(
        &store_dir,
        &destination.join(STORE_DIR_NAME),
        &cursor_overrides,
    )?;
    let manifest = BackupManifest {
        format: 1,
        created_at,
        acknowledged_through_seq: store.acknowledged_through_seq,
        last_seq: store.last_seq,
        archived_through_seq,
    };
    write_manifest(destination, &manifest)?;
    Ok(manifest)
}

/// Copies a finished backup into `data_dir` (new or empty); `opentrail serve` then opens
/// it as it would after a crash.
pub fn restore(backup: &Path, data_dir: &Path) -> Result<BackupManifest, BackupError> {
    let manifest_path = backup.join(BACKUP_MANIFEST_NAME);
    let manifest: BackupManifest = match std::fs::read(&manifest_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| BackupError::Io {
            path: manifest_path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
        })?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NotABackup(backup.to_path_buf()));
        }
        Err(error) => return Err(io(&manifest_path)(error)),
    };
    prepare_empty_dir(data_dir)?;
    copy_tree(backup, data_dir, &|relative| {
        relative != Path::new(BACKUP_MANIFEST_NAME)
    })?;
    Ok(manifest)
}

fn prepare_empty_dir(dir: &Path) -> Result<(), BackupError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty(dir.to_path_buf()));
        }
    }
    // The copy holds the master key and access keys: only its owner may read it.
    opentrail_durable::create_private_directory(dir).map_err(io(dir))
}

fn write_manifest(destination: &Path, manifest: &BackupManifest) -> Result<(), BackupError> {
    let path = destination.join(BACKUP_MANIFEST_NAME);
    let bytes = serde_json::to_vec_pretty(manifest).map_err(|error| BackupError::Io {
        path: path.clone(),
        source: std::io::Error::other(error),
    })?;
    opentrail_durable::write_private_atomically(&path, &bytes).map_err(io(&path))
}

// ------------------------------------------------------------------ trails and buckets

/// The trails' state and the local buckets of one data directory (live, or the copy).
struct TrailParts {
    trails: PathBuf,
    buckets: PathBuf,
}

impl TrailParts {
    fn of(dir: &Path) -> TrailParts {
        TrailParts {
            trails: dir.join(TRAILS_DIR_NAME),
            buckets: dir.join(BUCKETS_DIR_NAME),
        }
    }
}

/// Step 2 of the module docs. Returns the trails' store cursors to put in the copied
/// store.
fn backup_trails(
    data_dir: &Path,
    destination: &Path,
    hook: &mut dyn FnMut(Step),
) -> Result<Vec<(String, u64)>, BackupError> {
    let live = TrailParts::of(data_dir);
    let copy = TrailParts::of(destination);

    // A digest written while the buckets are copied was planned before (its plan is
    // pending now) or after now (so it ends at or after now).
    let since_ms = whole_second(now_ms());
    let mut planned_digests = BTreeMap::new();
    for id in subdirectories(&live.trails)? {
        // An unreadable state is reported when its copy is read.
        if let Ok(DigestState {
            plan: Some(plan), ..
        }) = load_digest_state(&live.trails.join(&id))
        {
            let keys: Vec<(String, String)> = plan
                .digests
                .into_iter()
                .map(|digest| (digest.bucket, digest.key))
                .collect();
            planned_digests.insert(id, keys);
        }
    }
    let insights_dirs = copy_buckets(&live.buckets, &copy.buckets)?;
    hook(Step::BucketsCopied);

    let cursors = read_cursors(&data_dir.join(STORE_DIR_NAME))?;
    hook(Step::CursorsRead);

    let mut chain_ends = BTreeMap::new();
    let mut trails = Vec::new();
    if live.trails.is_dir() {
        copy_file_if_present(
            &live.trails.join(TRAIL_REGISTRY_FILE_NAME),
            &copy.trails.join(TRAIL_REGISTRY_FILE_NAME),
        )?;
        trails = TrailRegistry::open(&copy.trails)?.trails();
        for id in subdirectories(&live.trails)? {
            let trail = trails.iter().find(|trail| trail.id == id);
            let digests = TrailDigests {
                buckets: &live.buckets,
                trail,
                since_ms,
                planned: planned_digests.get(&id).map_or(&[], Vec::as_slice),
            };
            let chain_end_ms = copy_trail_state(
                &live.trails.join(&id),
                &copy.trails.join(&id),
                &digests,
                hook,
            )?;
            chain_ends.insert(id, chain_end_ms);
        }
    }
    copy_insights(&live, &copy, &trails, &insights_dirs, hook)?;
    hook(Step::TrailsCopied);

    for trail in &trails {
        let Some(chain_end) = chain_ends.get(&trail.id) else {
            continue;
        };
        let recorded = Manifest::new(&copy.trails.join(&trail.id))
            .read_after(0, usize::MAX)
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "copying a manifest that does not read");
                Vec::new()
            });
        for file in recorded {
            complete_bucket(&live, &copy, &file.bucket, &file.key)?;
        }
        let Some(chain_end_ms) = chain_end else {
            continue;
        };
        let digests = TrailDigests {
            buckets: &live.buckets,
            trail: Some(trail),
            since_ms,
            planned: planned_digests.get(&trail.id).map_or(&[], Vec::as_slice),
        };
        for (bucket, key) in digests.written_since()? {
            if digest_key_time_ms(&key).is_some_and(|end_ms| end_ms <= *chain_end_ms) {
                let sidecar = format!("{key}{SIGNATURE_SIDECAR_SUFFIX}");
                complete_bucket(&live, &copy, &bucket, &sidecar)?;
                complete_bucket(&live, &copy, &bucket, &key)?;
            }
        }
    }
    hook(Step::BucketsCompleted);

    // Trails delivering to an S3 endpoint keep the cursors the store copy reads: their
    // bucket is not copied, and already holds what was delivered meanwhile.
    let local: Vec<Trail> = trails
        .into_iter()
        .filter(|trail| live.buckets.join(&trail.settings.s3_bucket_name).is_dir())
        .collect();
    Ok(trail_cursors(&local, &cursors))
}

/// Copies the local buckets except Insights files (`…/AWSLogs/<account>/CloudTrail-Insight`);
/// returns where those were found (relative to the buckets directory).
fn copy_buckets(live: &Path, copy: &Path) -> Result<BTreeSet<PathBuf>, BackupError> {
    if !live.is_dir() {
        return Ok(BTreeSet::new());
    }
    let insights_dirs = RefCell::new(BTreeSet::new());
    copy_tree(live, copy, &|relative| {
        if is_insights_dir(relative) {
            insights_dirs.borrow_mut().insert(relative.to_path_buf());
            return false;
        }
        !is_staged_object(relative)
    })?;
    Ok(insights_dirs.into_inner())
}

fn is_insights_dir(relative: &Path) -> bool {
    let parts: Vec<_> = relative.components().map(|part| part.as_os_str()).collect();
    parts.len() >= 4
        && parts[parts.len() - 1] == FileFolder::Insights.as_str()
        && parts[parts.len() - 3] == "AWSLogs"
}

/// An object a local bucket is still writing (`object_store` stages `<key>#<n>`).
fn is_staged_object(relative: &Path) -> bool {
    relative
        .file_name()
        .is_some_and(|name| name.to_string_lossy().contains('#'))
}

/// The store's consumer cursors as its metadata file holds them now.
fn read_cursors(store_dir: &Path) -> Result<BTreeMap<String, u64>, BackupError> {
    #[derive(Deserialize)]
    struct StoreMeta {
        #[serde(default)]
        cursors: BTreeMap<String, u64>,
    }
    let path = store_dir.join(STORE_META_FILE_NAME);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    serde_json::from_slice::<StoreMeta>(&bytes)
        .map(|meta| meta.cursors)
        .map_err(|error| BackupError::Io {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
        })
}

/// Copies one trail's state directory (2.3); returns the end time of the last digest its
/// copied digest state may have planned (`None` when that state is unreadable: the copy
/// holds it as it is, for the restored server to report).
fn copy_trail_state(
    live: &Path,
    copy: &Path,
    digests: &TrailDigests<'_>,
    hook: &mut dyn FnMut(Step),
) -> Result<Option<i64>, BackupError> {
    std::fs::create_dir_all(copy).map_err(io(copy))?;
    // The digest state first: the files it counts are in the manifest copied later.
    let chain_end_ms = copy_digest_state(live, copy, digests)?;
    hook(Step::DigestStateCopied);

    // The delivery state before the manifest: a batch it counts as done is recorded there.
    let state_name = DeliveryKind::LogFiles.state_file_name();
    copy_file_if_present(&live.join(state_name), &copy.join(state_name))?;
    let planned_through = match load_kind_state(copy, DeliveryKind::LogFiles) {
        Ok(state) => state.last_batch_number,
        Err(error) => {
            tracing::warn!(%error, "copying a delivery state that does not read, and its manifest as it is");
            u64::MAX
        }
    };
    hook(Step::DeliveryStateCopied);

    let live_manifest = Manifest::new(live);
    let manifest_dir = live_manifest
        .dir()
        .strip_prefix(live)
        .unwrap_or(live_manifest.dir())
        .to_path_buf();
    copy_manifest(
        live_manifest.dir(),
        &copy.join(&manifest_dir),
        planned_through,
    )?;

    // The rest (the stream status); the Insights delivery state comes with Insights files.
    let insights_state_name = DeliveryKind::Insights.state_file_name();
    copy_tree(live, copy, &|relative| {
        ![
            Path::new(DIGEST_STATE_FILE_NAME),
            Path::new(state_name),
            Path::new(insights_state_name),
            manifest_dir.as_path(),
        ]
        .iter()
        .any(|part| relative.starts_with(part))
    })?;
    Ok(chain_end_ms)
}

/// Copies a trail's digest state; returns the end time of the newest digest it may have
/// planned (`None` when it is unreadable).
fn copy_digest_state(
    live: &Path,
    copy: &Path,
    digests: &TrailDigests<'_>,
) -> Result<Option<i64>, BackupError> {
    let live_path = live.join(DIGEST_STATE_FILE_NAME);
    let copy_path = copy.join(DIGEST_STATE_FILE_NAME);
    loop {
        let bytes = opentrail_durable::read_optional(&live_path).map_err(io(&live_path))?;
        match &bytes {
            Some(bytes) => write_file(&copy_path, bytes)?,
            None => opentrail_durable::remove_if_present(&copy_path).map_err(io(&copy_path))?,
        }
        let state = match load_digest_state(copy) {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(%error, "copying a digest state that does not read");
                return Ok(None);
            }
        };
        // A digest ends in the second it is planned: a running chain's next one after its
        // open period starts.
        if let Some(end_ms) = state
            .plan
            .as_ref()
            .map(|plan| plan.end_ms)
            .or(state.period_start_ms)
        {
            return Ok(Some(end_ms));
        }
        // No chain: a chain that starts later ends its digests after every digest written
        // so far. Those written while the state reads the same are all the state's.
        let newest_ms = digests
            .written_since()?
            .iter()
            .filter_map(|(_, key)| digest_key_time_ms(key))
            .max()
            .unwrap_or(i64::MIN);
        if opentrail_durable::read_optional(&live_path).map_err(io(&live_path))? == bytes {
            return Ok(Some(newest_ms));
        }
    }
}

/// Copies manifest day files without the lines of batches after `planned_through`.
fn copy_manifest(live: &Path, copy: &Path, planned_through: u64) -> Result<(), BackupError> {
    for name in file_names(live)? {
        if name.ends_with(".tmp") {
            continue;
        }
        let path = live.join(&name);
        let Some(bytes) = opentrail_durable::read_optional(&path).map_err(io(&path))? else {
            continue;
        };
        write_file(
            &copy.join(&name),
            &keep_batches_through(&bytes, planned_through),
        )?;
    }
    Ok(())
}

/// The lines of a manifest day file of batches up to `planned_through`.
fn keep_batches_through(day_file: &[u8], planned_through: u64) -> Vec<u8> {
    let lines: Vec<&[u8]> = day_file
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    let mut kept = Vec::with_capacity(day_file.len());
    for (index, line) in lines.iter().enumerate() {
        match serde_json::from_slice::<DeliveredFile>(line) {
            Ok(file) if file.batch_number > planned_through => {}
            Ok(_) => {
                kept.extend_from_slice(line);
                kept.push(b'\n');
            }
            // A torn last line (an append in progress) is one readers ignore anyway.
            Err(_) if index + 1 == lines.len() => {}
            // Anything else is for the server to report: copied as it is.
            Err(_) => return day_file.to_vec(),
        }
    }
    kept
}

/// Copies Insights files with the Insights delivery states that planned them (2.4):
/// again while a state changes during a copy. `found` are where the bucket copy met
/// Insights files (relative to the buckets directory).
fn copy_insights(
    live: &TrailParts,
    copy: &TrailParts,
    trails: &[Trail],
    found: &BTreeSet<PathBuf>,
    hook: &mut dyn FnMut(Step),
) -> Result<(), BackupError> {
    let state_name = DeliveryKind::Insights.state_file_name();
    let read_states = || -> Result<BTreeMap<String, Vec<u8>>, BackupError> {
        let mut states = BTreeMap::new();
        for id in subdirectories(&live.trails)? {
            let path = live.trails.join(&id).join(state_name);
            if let Some(bytes) = opentrail_durable::read_optional(&path).map_err(io(&path))? {
                states.insert(id, bytes);
            }
        }
        Ok(states)
    };
    for _ in 0..INSIGHTS_ATTEMPTS {
        let states = read_states()?;
        let mut dirs = found.clone();
        for trail in trails {
            dirs.extend(trail_insights_dirs(&live.buckets, trail)?);
        }
        for dir in &dirs {
            let from = live.buckets.join(dir);
            if from.is_dir() {
                copy_new_files(&from, &copy.buckets.join(dir), &|relative| {
                    !is_staged_object(relative)
                })?;
            }
        }
        hook(Step::InsightsCopied);
        // Unchanged: every Insights file copied so far was planned by these states, and
        // every one they count as delivered was written before they were read.
        if read_states()? == states {
            for (id, bytes) in states {
                write_file(&copy.trails.join(id).join(state_name), &bytes)?;
            }
            return Ok(());
        }
    }
    Err(BackupError::InsightsUnsettled)
}

/// `[<prefix>/]AWSLogs` of a trail's bucket, relative to the buckets directory.
fn trail_logs_dir(trail: &Trail) -> PathBuf {
    let mut dir = PathBuf::from(&trail.settings.s3_bucket_name);
    if let Some(prefix) = trail
        .settings
        .s3_key_prefix
        .as_deref()
        .filter(|prefix| !prefix.is_empty())
    {
        dir.push(prefix);
    }
    dir.join("AWSLogs")
}

/// Where a trail's Insights files go, for each account its bucket has files of.
fn trail_insights_dirs(buckets: &Path, trail: &Trail) -> Result<Vec<PathBuf>, BackupError> {
    let logs_dir = trail_logs_dir(trail);
    Ok(subdirectories(&buckets.join(&logs_dir))?
        .into_iter()
        .map(|account| logs_dir.join(account).join(FileFolder::Insights.as_str()))
        .collect())
}

/// The digests of a trail that may have been written since a backup began copying the
/// buckets.
struct TrailDigests<'a> {
    /// The live buckets directory.
    buckets: &'a Path,
    /// `None` for a trail the copied registry does not hold (deleted meanwhile).
    trail: Option<&'a Trail>,
    /// When the bucket copy began: a digest planned since ends at or after this.
    since_ms: i64,
    /// (bucket, key) of the digests planned but not written yet when it began.
    planned: &'a [(String, String)],
}

impl TrailDigests<'_> {
    /// (bucket, key) of the planned digests and of every digest of the trail in its live
    /// bucket in a day folder from the day of `since_ms` on.
    fn written_since(&self) -> Result<Vec<(String, String)>, BackupError> {
        let mut found = self.planned.to_vec();
        let Some(trail) = self.trail else {
            return Ok(found);
        };
        let since_day = jiff::Timestamp::from_millisecond(self.since_ms)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .strftime("%Y/%m/%d")
            .to_string();
        let bucket = &trail.settings.s3_bucket_name;
        let bucket_dir = self.buckets.join(bucket);
        let logs_dir = self.buckets.join(trail_logs_dir(trail));
        for account in subdirectories(&logs_dir)? {
            let digests_dir = logs_dir.join(&account).join("CloudTrail-Digest");
            for region in subdirectories(&digests_dir)? {
                let stem = DigestNaming {
                    prefix: trail.settings.s3_key_prefix.as_deref(),
                    account_id: &account,
                    region: &region,
                    trail_name: &trail.name,
                    home_region: &trail.home_region,
                }
                .file_name_stem();
                for day_dir in day_dirs_since(&digests_dir.join(&region), &since_day)? {
                    for name in file_names(&day_dir)? {
                        if !name.starts_with(&stem) || !name.ends_with(".json.gz") {
                            continue;
                        }
                        let path = day_dir.join(&name);
                        let key = path.strip_prefix(&bucket_dir).unwrap_or(&path);
                        found.push((bucket.clone(), key.to_string_lossy().into_owned()));
                    }
                }
            }
        }
        Ok(found)
    }
}

/// The `YYYY/MM/DD` folders under `dir` from `since_day` (`YYYY/MM/DD`) on.
fn day_dirs_since(dir: &Path, since_day: &str) -> Result<Vec<PathBuf>, BackupError> {
    let (since_year, since_month) = (&since_day[..4], &since_day[..7]);
    let mut days = Vec::new();
    for year in subdirectories(dir)? {
        if year.as_str() < since_year {
            continue;
        }
        for month in subdirectories(&dir.join(&year))? {
            if format!("{year}/{month}").as_str() < since_month {
                continue;
            }
            for day in subdirectories(&dir.join(&year).join(&month))? {
                if format!("{year}/{month}/{day}").as_str() >= since_day {
                    days.push(dir.join(&year).join(&month).join(day));
                }
            }
        }
    }
    Ok(days)
}

/// Copies one object the copied state names from the live bucket, unless the copy has it.
fn complete_bucket(
    live: &TrailParts,
    copy: &TrailParts,
    bucket: &str,
    key: &str,
) -> Result<(), BackupError> {
    let to = copy.buckets.join(bucket).join(key);
    if to.exists() {
        return Ok(());
    }
    copy_file_if_present(&live.buckets.join(bucket).join(key), &to)
}

/// The cursors to put in the copied store for the copied trails: as read before their
/// state was copied. A cursor not saved yet then starts where the restored worker would
/// start anyway (one saved since would be past files the copy lacks).
fn trail_cursors(trails: &[Trail], cursors: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut overrides = Vec::new();
    for trail in trails {
        for (consumer, runs) in [
            (trail.delivery_consumer(), true),
            (trail.insights_consumer(), trail.has_insight_selectors()),
        ] {
            match cursors.get(&consumer) {
                Some(seq) => overrides.push((consumer, *seq)),
                None if runs => {
                    if let Some(after_seq) = trail.logging.first_deliverable_after() {
                        overrides.push((consumer, after_seq));
                    }
                }
                None => {}
            }
        }
    }
    overrides
}

// ------------------------------------------------------------------ files

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn whole_second(time_ms: i64) -> i64 {
    time_ms - time_ms.rem_euclid(1000)
}

/// The names of the entries of `dir` of one kind; none when `dir` does not exist.
fn entry_names(dir: &Path, directories: bool) -> Result<Vec<String>, BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io(dir)(error)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let kind = entry.file_type().map_err(io(&entry.path()))?;
        if (directories && kind.is_dir()) || (!directories && kind.is_file()) {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn subdirectories(dir: &Path) -> Result<Vec<String>, BackupError> {
    entry_names(dir, true)
}

fn file_names(dir: &Path) -> Result<Vec<String>, BackupError> {
    entry_names(dir, false)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    opentrail_durable::write_atomically(path, bytes).map_err(io(path))
}

/// Copies every regular file under `source` whose path (relative to it) `include` accepts,
/// skipping lock and temporary files; a file or directory removed meanwhile is skipped.
fn copy_tree(
    source: &Path,
    destination: &Path,
    include: &dyn Fn(&Path) -> bool,
) -> Result<(), BackupError> {
    copy_files(source, destination, include, false)
}

/// [`copy_tree`] for files `destination` does not hold yet.
fn copy_new_files(
    source: &Path,
    destination: &Path,
    include: &dyn Fn(&Path) -> bool,
) -> Result<(), BackupError> {
    copy_files(source, destination, include, true)
}

fn copy_files(
    source: &Path,
    destination: &Path,
    include: &dyn Fn(&Path) -> bool,
    only_new: bool,
) -> Result<(), BackupError> {
    let mut pending = vec![source.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Removed meanwhile (a deleted trail's state).
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(io(&dir)(error)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let relative = path.strip_prefix(source).unwrap_or(&path).to_path_buf();
            if !include(&relative) {
                continue;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == "LOCK" || name.ends_with(".tmp") {
                continue;
            }
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let target = destination.join(&relative);
                if only_new && target.exists() {
                    continue;
                }
                copy_file_if_present(&path, &target)?;
            }
        }
    }
    Ok(())
}

/// Copies a file; one that does not exist (any more) is skipped.
fn copy_file_if_present(from: &Path, to: &Path) -> Result<(), BackupError> {
    match copy_file(from, to) {
        Err(BackupError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(())
        }
        other => other,
    }
}

fn copy_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    opentrail_durable::copy_durably(from, to)
        .map(|_| ())
        .map_err(io(from))
}

fn s3_error(url: &str, detail: String) -> BackupError {
    BackupError::S3 {
        url: url.to_owned(),
        detail,
    }
}

/// A parsed `s3://BUCKET[/PREFIX]`.
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

fn object_path(prefix: &str, relative: &str) -> object_store::path::Path {
    if prefix.is_empty() {
        object_store::path::Path::from(relative)
    } else {
        object_store::path::Path::from(format!("{prefix}/{relative}"))
    }
}

/// Uploads a finished backup directory under `prefix`, `BACKUP.json` last, so a prefix
/// holding it holds every file. Returns the files uploaded.
pub async fn upload_backup(
    local: &Path,
    bucket: &std::sync::Arc<dyn object_store::ObjectStore>,
    prefix: &str,
    url: &str,
) -> Result<usize, BackupError> {
    let s3_error = |detail: String| s3_error(url, detail);
    let mut files = Vec::new();
    let mut pending = vec![local.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let manifest = local.join(BACKUP_MANIFEST_NAME);
    files.retain(|path| *path != manifest);
    files.sort();
    files.push(manifest);
    for path in &files {
        let relative = path
            .strip_prefix(local)
            .unwrap_or(path)
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        let mut file = tokio::fs::File::open(path).await.map_err(io(path))?;
        let mut writer = object_store::buffered::BufWriter::new(
            std::sync::Arc::clone(bucket),
            object_path(prefix, &relative),
        );
        tokio::io::copy(&mut file, &mut writer)
            .await
            .map_err(|error| s3_error(format!("uploading {relative}: {error}")))?;
        tokio::io::AsyncWriteExt::shutdown(&mut writer)
            .await
            .map_err(|error| s3_error(format!("uploading {relative}: {error}")))?;
    }
    Ok(files.len())
}

/// Downloads the backup under `prefix` into `local` (new or empty); refuses a prefix
/// without `BACKUP.json`.
pub async fn download_backup(
    bucket: &std::sync::Arc<dyn object_store::ObjectStore>,
    prefix: &str,
    local: &Path,
    url: &str,
) -> Result<usize, BackupError> {
    use futures_util::StreamExt as _;
    use object_store::ObjectStoreExt as _;
    let s3_error = |detail: String| s3_error(url, detail);
    match bucket
        .head(&object_path(prefix, BACKUP_MANIFEST_NAME))
        .await
    {
        Ok(_) => {}
        Err(object_store::Error::NotFound { .. }) => {
            return Err(BackupError::NotABackup(PathBuf::from(url)));
        }
        Err(error) => return Err(s3_error(error.to_string())),
    }
    prepare_empty_dir(local)?;
    let listing_prefix = (!prefix.is_empty()).then(|| object_store::path::Path::from(prefix));
    let mut listing = bucket.list(listing_prefix.as_ref());
    let mut count = 0;
    while let Some(object) = listing.next().await {
        let object = object.map_err(|error| s3_error(error.to_string()))?;
        let key = object.location.as_ref();
        let relative = key
            .strip_prefix(prefix)
            .unwrap_or(key)
            .trim_start_matches('/');
        // Keys are ours, but a bucket is shared ground: never write outside `local`.
        if relative.is_empty()
            || relative
                .split('/')
                .any(|part| part == ".." || part.is_empty())
        {
            return Err(s3_error(format!("unexpected key {key}")));
        }
        let target = local.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut body = bucket
            .get(&object.location)
            .await
            .map_err(|error| s3_error(format!("{key}: {error}")))?
            .into_stream();
        let mut file = tokio::fs::File::create(&target)
            .await
            .map_err(io(&target))?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| s3_error(format!("{key}: {error}")))?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(io(&target))?;
        }
        file.sync_all().await.map_err(io(&target))?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    //! Backups of a data directory whose trails deliver while it is copied: the real
    //! trails service runs (fast delivery, 1 s digests), and the test makes it deliver a
    //! log file and chain a digest at chosen points of the copy.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use opentrail_event::{EventRecord, IngestContext};
    use opentrail_store::{AppendOutcome, Store, StoreOptions};
    use opentrail_trails::validate::{Finding, ValidationReport, ValidationRequest, validate};
    use opentrail_trails::{NewTrail, Scope, TrailRef, Trails, TrailsConfig, TrailsOptions};

    use super::*;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "us-east-1";
    const BUCKET: &str = "backup-bucket";

    fn scope() -> Scope {
        Scope {
            account_id: ACCOUNT.to_owned(),
            region: REGION.to_owned(),
        }
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A server's store and trails over a data directory.
    struct Live {
        runtime: tokio::runtime::Runtime,
        data_dir: PathBuf,
        store: Store,
        trails: Trails,
    }

    impl Live {
        fn open(data_dir: &Path) -> Live {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let store = Store::open(&data_dir.join(STORE_DIR_NAME), StoreOptions::default())
                .expect("store");
            let mut options = TrailsOptions::from_config(TrailsConfig {
                data_dir: data_dir.to_owned(),
                default_account_id: ACCOUNT.to_owned(),
                destination: None,
                delivery_interval: Duration::from_secs(1),
                digest_interval: Duration::from_secs(1),
                digest_key_rotation: Duration::from_secs(30 * 24 * 3600),
                trails_per_region_max: 5,
                sns_topics: BTreeMap::new(),
                log_groups: BTreeMap::new(),
            });
            // A file a few tenths of a second after its first event.
            options.delivery.interval = Duration::from_millis(100);
            let trails = Trails::open(store.clone(), options).expect("trails");
            {
                let _entered = runtime.enter();
                trails.start();
            }
            Live {
                runtime,
                data_dir: data_dir.to_owned(),
                store,
                trails,
            }
        }

        fn create_trail(&self) -> Trail {
            let new = NewTrail {
                name: "kept".to_owned(),
                s3_bucket_name: BUCKET.to_owned(),
                s3_key_prefix: None,
                sns_topic_name: None,
                include_global_service_events: true,
                is_multi_region_trail: false,
                enable_log_file_validation: true,
                cloud_watch_logs_log_group_arn: None,
                cloud_watch_logs_role_arn: None,
                recursive_logging: true,
                tags: Vec::new(),
            };
            let trail = self
                .runtime
                .block_on(self.trails.create_trail(&scope(), new))
                .expect("create trail");
            self.runtime
                .block_on(
                    self.trails
                        .start_logging(&scope(), &TrailRef::Name(trail.name.clone())),
                )
                .expect("start logging")
        }

        fn chain_started(&self) -> bool {
            opentrail_trails::digest::load_digest_state(&self.trail_dir())
                .expect("state")
                .period_start_ms
                .is_some()
        }

        fn trail(&self) -> Trail {
            self.trails.all_trails().remove(0)
        }

        fn trail_dir(&self) -> PathBuf {
            self.trails.trail_dir(&self.trail().id)
        }

        /// Appends `count` events; returns (seq, eventID) of each.
        fn ingest(&self, count: usize) -> Vec<(u64, String)> {
            let context = IngestContext {
                account_id: ACCOUNT.to_owned(),
                region: REGION.to_owned(),
            };
            let mut records = Vec::new();
            let mut ids = Vec::new();
            for _ in 0..count {
                let id = uuid::Uuid::new_v4().to_string();
                let json = serde_json::json!({
                    "eventVersion": "1.11",
                    "userIdentity": {"type": "IAMUser", "accountId": ACCOUNT, "userName": "alice"},
                    "eventTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    "eventSource": "ec2.amazonaws.com",
                    "eventName": "BackupEvent",
                    "awsRegion": REGION,
                    "sourceIPAddress": "203.0.113.7",
                    "eventID": id,
                    "readOnly": false,
                    "eventType": "AwsApiCall",
                    "recipientAccountId": ACCOUNT,
                    "eventCategory": "Management",
                });
                records.push(
                    EventRecord::from_json_object(&json.to_string(), &context).expect("record"),
                );
                ids.push(id);
            }
            self.store
                .append(records)
                .expect("append")
                .into_iter()
                .zip(ids)
                .map(|(outcome, id)| match outcome {
                    AppendOutcome::Stored { seq } => (seq, id),
                    AppendOutcome::Duplicate { seq } => panic!("duplicate at {seq}"),
                })
                .collect()
        }

        fn manifest_files(&self) -> usize {
            self.trails
                .manifest(&self.trail().id)
                .read_after(0, usize::MAX)
                .expect("manifest")
                .len()
        }

        /// The key of the newest chained digest.
        fn chained_digest(&self) -> Option<String> {
            let state =
                opentrail_trails::digest::load_digest_state(&self.trail_dir()).expect("state");
            state
                .chains
                .iter()
                .filter_map(|chain| chain.last.as_ref())
                .map(|link| link.key.clone())
                .max()
        }

        /// Ingests a few events and waits until their log file is recorded and a digest
        /// chained after it: the server writes both while this waits.
        fn deliver_and_digest(&self, ingested: &mut Vec<(u64, String)>) -> String {
            let files = self.manifest_files();
            ingested.extend(self.ingest(5));
            wait_until("a delivered log file", || self.manifest_files() > files);
            let digest = self.chained_digest();
            wait_until("a chained digest", || self.chained_digest() > digest);
            let delivered = self.chained_digest().unwrap_or_default();
            // One more period: the digest after it lists the file.
            wait_until("the next digest", || {
                self.chained_digest().unwrap_or_default() > delivered
            });
            self.chained_digest().unwrap_or_default()
        }

        fn stop_logging(&self) {
            let name = TrailRef::Name(self.trail().name);
            self.runtime
                .block_on(self.trails.stop_logging(&scope(), &name))
                .expect("stop logging");
        }

        fn stop(self) {
            self.runtime.block_on(self.trails.shutdown());
        }

        fn bucket_dir(&self) -> PathBuf {
            self.data_dir.join("buckets").join(BUCKET)
        }

        /// eventID → how many log files hold it.
        fn delivered_ids(&self) -> BTreeMap<String, usize> {
            let mut found = BTreeMap::new();
            for path in files_under(&self.bucket_dir()) {
                let name = path.to_string_lossy().into_owned();
                if !name.contains("/CloudTrail/") || !name.ends_with(".json.gz") {
                    continue;
                }
                let bytes = std::fs::read(&path).expect("log file");
                let inflated = gunzip(&bytes);
                let document: serde_json::Value =
                    serde_json::from_slice(&inflated).expect("log file json");
                for record in document["Records"].as_array().expect("records") {
                    let id = record["eventID"].as_str().expect("id").to_owned();
                    *found.entry(id).or_insert(0) += 1;
                }
            }
            found
        }

        /// What `opentrail validate` finds from `start_ms` on.
        fn validate(&self, start_ms: i64) -> ValidationReport {
            let trail = self.trail();
            let end_ms = jiff::Timestamp::now().as_millisecond();
            let request = ValidationRequest {
                bucket: BUCKET.to_owned(),
                prefix: None,
                account_id: ACCOUNT.to_owned(),
                region: REGION.to_owned(),
                trail_name: trail.name.clone(),
                home_region: REGION.to_owned(),
                start_ms,
                end_ms,
                public_keys: self.trails.list_public_keys(
                    REGION,
                    start_ms,
                    end_ms + 2 * 3600 * 1000,
                ),
            };
            self.runtime
                .block_on(validate(&self.trails.destinations(), &request))
                .expect("validate")
        }

        /// The keys of the log files in the bucket.
        fn log_file_keys(&self) -> BTreeSet<String> {
            let bucket_dir = self.bucket_dir();
            files_under(&bucket_dir)
                .into_iter()
                .filter_map(|path| {
                    let key = path
                        .strip_prefix(&bucket_dir)
                        .ok()?
                        .to_string_lossy()
                        .into_owned();
                    (key.contains("/CloudTrail/") && key.ends_with(".json.gz")).then_some(key)
                })
                .collect()
        }
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Read as _;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("gzip");
        out
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    found.push(path);
                }
            }
        }
        found
    }

    /// Restores `backup` and checks what a restored server does with it: every event the
    /// copied store holds reaches the bucket exactly once, every log file there is recorded
    /// and in a digest, and the digest chain validates (after two more digests, when the
    /// restored trail still logs).
    fn check_restored(
        backup_dir: &Path,
        ingested: &[(u64, String)],
        start_ms: i64,
        logging: bool,
    ) -> Vec<String> {
        let restored_dir = backup_dir.with_file_name("restored");
        restore(backup_dir, &restored_dir).expect("restore");
        let restored = Live::open(&restored_dir);
        let last_seq = restored.store.last_seq();
        let expected: Vec<&String> = ingested
            .iter()
            .filter(|(seq, _)| *seq <= last_seq)
            .map(|(_, id)| id)
            .collect();
        let mut problems = Vec::new();
        // Every event may already be in the copied bucket while the restored trail still
        // redoes the batch the copied state had planned (its file copied, not yet recorded
        // in the manifest): caught up is both.
        let recorded_files = || -> BTreeSet<String> {
            restored
                .trails
                .manifest(&restored.trail().id)
                .read_after(0, usize::MAX)
                .expect("manifest")
                .into_iter()
                .map(|file| file.key)
                .collect()
        };
        let caught_up = Instant::now() + Duration::from_secs(30);
        loop {
            let delivered = restored.delivered_ids();
            if expected.iter().all(|id| delivered.contains_key(*id))
                && restored.log_file_keys().is_subset(&recorded_files())
            {
                break;
            }
            if Instant::now() > caught_up {
                let missing = expected
                    .iter()
                    .filter(|id| !delivered.contains_key(**id))
                    .count();
                if missing > 0 {
                    problems.push(format!("{missing} stored events never delivered"));
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let twice = restored
            .delivered_ids()
            .values()
            .filter(|count| **count > 1)
            .count();
        if twice > 0 {
            problems.push(format!("{twice} events delivered twice"));
        }
        // Every file in the bucket is one the restored trail recorded...
        let recorded = recorded_files();
        let files = restored.log_file_keys();
        for key in files.difference(&recorded) {
            problems.push(format!("{key} is in the bucket but not in the manifest"));
        }
        // ...and the chain validates and covers each.
        if logging {
            let digest = restored.chained_digest();
            wait_until("a restored digest", || restored.chained_digest() > digest);
            let digest = restored.chained_digest();
            wait_until("another restored digest", || {
                restored.chained_digest() > digest
            });
        }
        let report = restored.validate(start_ms);
        assert!(report.count(true, true) > 0, "no digest validated");
        problems.extend(
            report
                .findings
                .iter()
                .filter(|finding| finding.is_failure())
                .map(Finding::line),
        );
        let digested: BTreeSet<String> = report
            .findings
            .iter()
            .filter_map(|finding| match finding {
                Finding::LogFile { uri, .. } => uri
                    .strip_prefix(&format!("s3://{BUCKET}/"))
                    .map(str::to_owned),
                _ => None,
            })
            .collect();
        for key in files.difference(&digested) {
            problems.push(format!("{key} is in no digest"));
        }
        restored.stop();
        problems
    }

    fn backup_while_delivering() -> Vec<String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let live = Live::open(&data_dir);
        let start_ms = jiff::Timestamp::now().as_millisecond() - 60_000;
        live.create_trail();
        wait_until("the digest chain to start", || live.chain_started());
        let mut ingested = Vec::new();
        live.deliver_and_digest(&mut ingested);

        let backup_dir = dir.path().join("backup");
        let mut steps = Vec::new();
        backup_with(&data_dir, &backup_dir, &mut |step| {
            live.deliver_and_digest(&mut ingested);
            steps.push(step);
        })
        .expect("backup");
        assert_eq!(
            steps,
            [
                Step::BucketsCopied,
                Step::CursorsRead,
                Step::DigestStateCopied,
                Step::DeliveryStateCopied,
                Step::InsightsCopied,
                Step::TrailsCopied,
                Step::BucketsCompleted,
                Step::ArchiveCopied,
            ]
        );
        live.stop();
        check_restored(&backup_dir, &ingested, start_ms, true)
    }

    /// The server delivers a log file and chains digests at every step of the backup (the
    /// original failure: a digest chained between the bucket copy and the trail state
    /// copy was missing from the restored bucket, and the restored chain failed
    /// validation with "not found").
    #[test]
    fn a_backup_taken_while_a_trail_delivers_restores_a_consistent_trail() {
        let problems = backup_while_delivering();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    /// The trail stops logging while the buckets are copied: its chain closes with a final
    /// digest (listing the last log file) that the copied state no longer names, but
    /// which was written before that state was copied.
    #[test]
    fn a_backup_taken_while_a_trail_stops_logging_keeps_its_final_digest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let live = Live::open(&data_dir);
        let start_ms = jiff::Timestamp::now().as_millisecond() - 60_000;
        live.create_trail();
        wait_until("the digest chain to start", || live.chain_started());
        let mut ingested = Vec::new();
        live.deliver_and_digest(&mut ingested);

        let backup_dir = dir.path().join("backup");
        backup_with(&data_dir, &backup_dir, &mut |step| {
            if step == Step::BucketsCopied {
                let files = live.manifest_files();
                ingested.extend(live.ingest(5));
                wait_until("a delivered log file", || live.manifest_files() > files);
                live.stop_logging();
                wait_until("the final digest", || !live.chain_started());
            }
        })
        .expect("backup");
        live.stop();
        let problems = check_restored(&backup_dir, &ingested, start_ms, false);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn manifest_lines_of_batches_planned_after_the_delivery_state_are_left_out() {
        let line = |file_seq: u64, batch_number: u64| {
            let file = DeliveredFile {
                file_seq,
                batch_number,
                bucket: BUCKET.to_owned(),
                key: format!("k{file_seq}"),
                sha256_hex: "00".to_owned(),
                records: 1,
                oldest_event_time_ms: None,
                newest_event_time_ms: None,
                after_seq: file_seq - 1,
                through_seq: file_seq,
                planned_time_ms: 0,
                delivered_time_ms: 0,
            };
            format!("{}\n", serde_json::to_string(&file).expect("json"))
        };
        let day_file = format!("{}{}{}{{\"fileSeq\":4", line(1, 1), line(2, 2), line(3, 3));
        assert_eq!(
            String::from_utf8(keep_batches_through(day_file.as_bytes(), 2)).expect("utf-8"),
            format!("{}{}", line(1, 1), line(2, 2))
        );
        assert_eq!(keep_batches_through(day_file.as_bytes(), 0), b"");
        // A damaged line that is not the last is the server's to report: left as it is.
        let damaged = format!("{}garbage\n{}", line(1, 1), line(2, 2));
        assert_eq!(
            keep_batches_through(damaged.as_bytes(), 1),
            damaged.as_bytes()
        );
    }

    /// Insights files delivered during their copy: copied again with the newer state.
    #[test]
    fn insights_files_are_copied_with_the_state_that_planned_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let live = TrailParts::of(&dir.path().join("live"));
        let copy = TrailParts::of(&dir.path().join("copy"));
        let insights_dir = PathBuf::from(format!("{BUCKET}/AWSLogs/{ACCOUNT}/CloudTrail-Insight"));
        let day = insights_dir.join("us-east-1/2026/12/05");
        let state = live.trails.join("trail-id").join("insights-state.json");
        write_file(&live.buckets.join(day.join("first.json.gz")), b"1").expect("write");
        write_file(&state, b"{\"lastBatchNumber\":1}").expect("write");
        let found = BTreeSet::from([insights_dir.clone()]);
        let mut copies = 0;
        copy_insights(&live, &copy, &[], &found, &mut |step| {
            assert_eq!(step, Step::InsightsCopied);
            copies += 1;
            if copies == 1 {
                write_file(&state, b"{\"lastBatchNumber\":2}").expect("write");
                write_file(&live.buckets.join(day.join("second.json.gz")), b"2").expect("write");
            }
        })
        .expect("copy");
        assert_eq!(copies, 2);
        for name in ["first.json.gz", "second.json.gz"] {
            assert!(copy.buckets.join(day.join(name)).exists(), "{name}");
        }
        assert_eq!(
            std::fs::read(copy.trails.join("trail-id").join("insights-state.json")).expect("read"),
            b"{\"lastBatchNumber\":2}"
        );

        // A state that changes during every copy: the backup gives up.
        let mut batch = 2;
        let copy = TrailParts::of(&dir.path().join("copy-2"));
        let outcome = copy_insights(&live, &copy, &[], &found, &mut |_| {
            batch += 1;
            write_file(
                &state,
                format!("{{\"lastBatchNumber\":{batch}}}").as_bytes(),
            )
            .expect("write");
        });
        assert!(
            matches!(outcome, Err(BackupError::InsightsUnsettled)),
            "{outcome:?}"
        );
    }
}

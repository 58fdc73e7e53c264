//! Log file integrity: CloudTrail digest files (spec §6), and the per-trail worker that
//! writes them.
//!
//! # Format
//!
//! - Key: `[<prefix>/]AWSLogs/<acct>/CloudTrail-Digest/<region>/YYYY/MM/DD/<acct>_CloudTrail-Digest_<region>_<trail>_<home region>_<YYYYMMDDTHHMMSSZ>.json.gz`,
//!   dated by the digest's end time.
//! - Body: gzip of the JSON [`DigestDocument`] (fields in CloudTrail's order).
//! - Signature: SHA256withRSA (PKCS#1 v1.5), lower-case hex, over [`string_to_sign`];
//!   stored as `x-amz-meta-signature` (+ `-algorithm`) on S3, in a sidecar
//!   `<key>.signature.json` in directory buckets (which cannot hold metadata).
//!
//! # Chains
//!
//! A trail has one chain per stream (account, region) it delivers to, always including its
//! own account in its home region. While the trail logs with validation enabled, a period
//! closes every `interval`: each stream gets a digest (empty when it had no files), whose
//! `previous*` fields point at the stream's previous digest (`null` in the first one). The
//! next period starts at this one's end, so a chain is continuous in time. When logging
//! stops (once delivery has written what was accepted before), when validation is turned
//! off, or when the trail is deleted, a final digest closes the chain; the next one starts
//! over with `null`.
//!
//! Digests list log files only (those in the delivery manifest). Insights files are not
//! in the manifest, so no digest covers them, and `validate` does not check them.
//!
//! # Crash safety
//!
//! Like delivery: the whole period (every digest's key, JSON bytes and signature) is
//! planned and written durably to `digest.json` first; then the objects are written; then
//! one durable state write advances the chain and the manifest cursor. A crash redoes the
//! planned puts with the same keys and bytes. Signatures are computed once, at planning;
//! PKCS#1 v1.5 is deterministic anyway.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use opentrail_store::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::consumer::blocking;
use crate::destinations::Destinations;
use crate::digest_keys::DigestKeys;
use crate::error::TrailsError;
use crate::manifest::{DeliveredFile, Manifest};
use crate::model::Trail;
use crate::state_file;
use crate::status::{StatusHandle, update_status};

/// The value of `digestSignatureAlgorithm` and `x-amz-meta-signature-algorithm`.
pub const SIGNATURE_ALGORITHM: &str = "SHA256withRSA";
/// The value of every `hashAlgorithm` / `previousDigestHashAlgorithm`.
pub const HASH_ALGORITHM: &str = "SHA-256";

const STATE_FILE_NAME: &str = "digest.json";
const STATE_FORMAT: u32 = 1;

/// Tunables of the digest writer.
#[derive(Debug, Clone)]
pub struct DigestOptions {
    /// A digest closes this long after the previous one (CloudTrail: one hour).
    pub interval: Duration,
    /// Signing keys are replaced after this long (CloudTrail's samples: 30 days).
    pub key_rotation: Duration,
}

impl Default for DigestOptions {
    fn default() -> Self {
        DigestOptions {
            interval: Duration::from_secs(3600),
            key_rotation: crate::digest_keys::DEFAULT_ROTATION,
        }
    }
}

impl DigestOptions {
    /// Digest keys carry whole seconds, so periods shorter than a second cannot exist.
    pub const INTERVAL_MIN: Duration = Duration::from_secs(1);

    fn poll_interval(&self) -> Duration {
        (self.interval / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

// ------------------------------------------------------------------------------ format

/// A digest file as delivered (gzip JSON): its inflated bytes (what the signature covers)
/// and the document, or what is wrong with it, as `aws cloudtrail validate-logs` says it.
pub fn parse_digest_file(compressed: &[u8]) -> Result<(Vec<u8>, DigestDocument), String> {
    let inflated = gunzip(compressed).map_err(|_| "not a gzip file".to_owned())?;
    let document = serde_json::from_slice(&inflated)
        .map_err(|error| format!("invalid digest format: {error}"))?;
    Ok((inflated, document))
}

pub(crate) fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// One digest file's JSON, field order as CloudTrail writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestDocument {
    pub aws_account_id: String,
    pub digest_start_time: String,
    pub digest_end_time: String,
    pub digest_s3_bucket: String,
    pub digest_s3_object: String,
    pub digest_public_key_fingerprint: String,
    pub digest_signature_algorithm: String,
    pub newest_event_time: Option<String>,
    pub oldest_event_time: Option<String>,
    pub previous_digest_s3_bucket: Option<String>,
    pub previous_digest_s3_object: Option<String>,
    pub previous_digest_hash_value: Option<String>,
    pub previous_digest_hash_algorithm: Option<String>,
    pub previous_digest_signature: Option<String>,
    pub log_files: Vec<DigestLogFile>,
}

/// One log file of a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestLogFile {
    pub s3_bucket: String,
    pub s3_object: String,
    pub hash_value: String,
    pub hash_algorithm: String,
    pub newest_event_time: Option<String>,
    pub oldest_event_time: Option<String>,
}

/// `2015-08-17T14:01:31Z`: digest times are whole seconds in UTC.
pub fn format_digest_time(time_ms: i64) -> String {
    let timestamp =
        jiff::Timestamp::from_millisecond(time_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses [`format_digest_time`]'s form (and any RFC 3339 time) to epoch milliseconds.
pub fn parse_digest_time(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|timestamp| timestamp.as_millisecond())
}

/// The key prefix under which a stream's digests live, up to and including the region.
pub fn digest_prefix(prefix: Option<&str>, account_id: &str, region: &str) -> String {
    let tail = format!("AWSLogs/{account_id}/CloudTrail-Digest/{region}/");
    match prefix {
        Some(prefix) if !prefix.is_empty() => format!("{prefix}/{tail}"),
        _ => tail,
    }
}

/// Who a digest belongs to: everything its key names besides the time.
#[derive(Debug, Clone, Copy)]
pub struct DigestNaming<'a> {
    pub prefix: Option<&'a str>,
    pub account_id: &'a str,
    pub region: &'a str,
    pub trail_name: &'a str,
    pub home_region: &'a str,
}

impl DigestNaming<'_> {
    /// `<acct>_CloudTrail-Digest_<region>_<trail>_<home>_`: every digest file name of this
    /// chain starts so, followed by the 16-character end time and `.json.gz`.
    pub fn file_name_stem(&self) -> String {
        format!(
            "{}_CloudTrail-Digest_{}_{}_{}_",
            self.account_id, self.region, self.trail_name, self.home_region
        )
    }

    /// The key of the digest ending at `end_ms`.
    pub fn key(&self, end_ms: i64) -> String {
        let end = jiff::Timestamp::from_millisecond(end_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        format!(
            "{}{}/{}{}.json.gz",
            digest_prefix(self.prefix, self.account_id, self.region),
            end.strftime("%Y/%m/%d"),
            self.file_name_stem(),
            end.strftime("%Y%m%dT%H%M%SZ"),
        )
    }
}

/// The end time a digest key names (its last 16 characters before `.json.gz`).
pub fn digest_key_time_ms(key: &str) -> Option<i64> {
    let stem = key.strip_suffix(".json.gz")?;
    let stamp = stem.get(stem.len().checked_sub(16)?..)?;
    let civil = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", stamp).ok()?;
    jiff::tz::TimeZone::UTC
        .to_timestamp(civil)
        .ok()
        .map(|timestamp| timestamp.as_millisecond())
}

/// The string a digest's signature covers (spec §6.2): the end time, `bucket/key`, the
/// SHA-256 of the uncompressed digest, and the previous signature (`null` in a chain's
/// first digest), separated by newlines.
pub fn string_to_sign(
    digest_end_time: &str,
    bucket: &str,
    key: &str,
    uncompressed_sha256_hex: &str,
    previous_signature: Option<&str>,
) -> String {
    format!(
        "{digest_end_time}\n{bucket}/{key}\n{uncompressed_sha256_hex}\n{}",
        previous_signature.unwrap_or("null")
    )
}

/// Whether `signature_hex` is a valid SHA256withRSA signature of `message` under the
/// PKCS#1 RSAPublicKey `public_der`.
pub fn verify_signature(public_der: &[u8], message: &[u8], signature_hex: &str) -> bool {
    use rsa::pkcs1::DecodeRsaPublicKey as _;
    use rsa::signature::Verifier as _;
    let Ok(signature_bytes) = hex::decode(signature_hex) else {
        return false;
    };
    let Ok(public) = rsa::PublicKey::from_pkcs1_der(public_der) else {
        return false;
    };
    let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature_bytes.as_slice()) else {
        return false;
    };
    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public)
        .verify(message, &signature)
        .is_ok()
}

/// gzip with a fixed header (no name, mtime 0), so the same JSON always gives the same
/// object bytes.
pub fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

// ------------------------------------------------------------------------------ state

/// What `digest.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestState {
    pub format: u32,
    /// The start of the open period; `None` while no chain is active.
    #[serde(default)]
    pub period_start_ms: Option<i64>,
    /// Every manifest file up to this `fileSeq` is in a digest (or predates the chain).
    #[serde(default)]
    pub manifest_cursor: u64,
    /// The streams of the active chain and their last digest.
    #[serde(default)]
    pub chains: Vec<ChainState>,
    /// The planned period; redone on start.
    #[serde(default)]
    pub plan: Option<DigestPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainState {
    pub account_id: String,
    pub region: String,
    #[serde(default)]
    pub last: Option<ChainLink>,
}

/// What the next digest of a stream copies into its `previous*` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainLink {
    pub bucket: String,
    pub key: String,
    pub signature: String,
    /// SHA-256 of the uncompressed digest.
    pub sha256_hex: String,
}

/// One period, fixed before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestPlan {
    pub start_ms: i64,
    pub end_ms: i64,
    pub through_file_seq: u64,
    /// Closes the chain (logging stopped, validation off, trail deleted).
    pub closes_chain: bool,
    pub digests: Vec<PlannedDigest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedDigest {
    pub account_id: String,
    pub region: String,
    pub bucket: String,
    pub key: String,
    /// The uncompressed JSON exactly as stored.
    pub json: String,
    pub signature: String,
    pub sha256_hex: String,
}

/// Loads a trail's digest state (default when none yet). Blocking.
pub fn load_digest_state(trail_dir: &Path) -> Result<DigestState, TrailsError> {
    state_file::load_versioned_state(&trail_dir.join(STATE_FILE_NAME), STATE_FORMAT)
}

impl state_file::VersionedState for DigestState {
    fn format(&self) -> u32 {
        self.format
    }

    fn with_format(format: u32) -> Self {
        DigestState {
            format,
            ..DigestState::default()
        }
    }
}

/// The manifest position delivery must keep files after (not yet digested), if a chain
/// is active. Blocking; an unreadable state holds nothing back beyond what it says.
pub fn manifest_hold(trail_dir: &Path) -> Option<u64> {
    let state = load_digest_state(trail_dir).ok()?;
    (state.period_start_ms.is_some() || state.plan.is_some()).then_some(state.manifest_cursor)
}

fn save_digest_state(trail_dir: &Path, state: &DigestState) -> Result<(), TrailsError> {
    let path = trail_dir.join(STATE_FILE_NAME);
    std::fs::create_dir_all(trail_dir).map_err(|source| TrailsError::Write {
        path: trail_dir.to_owned(),
        source,
    })?;
    let bytes = serde_json::to_vec(state).map_err(|error| TrailsError::Corrupt {
        path: path.clone(),
        reason: error.to_string(),
    })?;
    opentrail_durable::write_atomically(&path, &bytes)
        .map_err(|source| TrailsError::Write { path, source })
}

/// The (account, region) a log file key names: `…AWSLogs/<acct>/CloudTrail/<region>/…`.
fn stream_of_key(key: &str) -> Option<(String, String)> {
    let (_, tail) = key.split_once("AWSLogs/")?;
    let mut parts = tail.split('/');
    let account = parts.next()?;
    if parts.next()? != "CloudTrail" {
        return None;
    }
    let region = parts.next()?;
    Some((account.to_owned(), region.to_owned()))
}

/// Builds (and signs) the digests of one period. Blocking: signs with RSA.
pub fn plan_period(
    trail: &Trail,
    state: &DigestState,
    files: &[DeliveredFile],
    keys: &DigestKeys,
    start_ms: i64,
    end_ms: i64,
    closes_chain: bool,
) -> Result<DigestPlan, TrailsError> {
    let mut by_stream: BTreeMap<(String, String), Vec<&DeliveredFile>> = BTreeMap::new();
    by_stream.insert(
        (trail.account_id.clone(), trail.home_region.clone()),
        Vec::new(),
    );
    for chain in &state.chains {
        by_stream
            .entry((chain.account_id.clone(), chain.region.clone()))
            .or_default();
    }
    for file in files {
        // A key outside CloudTrail's layout cannot come from delivery; it still belongs
        // in the home stream's digest rather than nowhere.
        let stream = stream_of_key(&file.key)
            .unwrap_or_else(|| (trail.account_id.clone(), trail.home_region.clone()));
        by_stream.entry(stream).or_default().push(file);
    }
    let end_time = format_digest_time(end_ms);
    let start_time = format_digest_time(start_ms);
    let bucket = trail.settings.s3_bucket_name.clone();
    let mut digests = Vec::with_capacity(by_stream.len());
    for ((account_id, region), stream_files) in by_stream {
        let naming = DigestNaming {
            prefix: trail.settings.s3_key_prefix.as_deref(),
            account_id: &account_id,
            region: &region,
            trail_name: &trail.name,
            home_region: &trail.home_region,
        };
        let key = naming.key(end_ms);
        let previous = state
            .chains
            .iter()
            .find(|chain| chain.account_id == account_id && chain.region == region)
            .and_then(|chain| chain.last.clone());
        let fingerprint = keys.key_for(&region, end_ms)?;
        let oldest = stream_files
            .iter()
            .filter_map(|file| file.oldest_event_time_ms)
            .min();
        let newest = stream_files
            .iter()
            .filter_map(|file| file.newest_event_time_ms)
            .max();
        let document = DigestDocument {
            aws_account_id: account_id.clone(),
            digest_start_time: start_time.clone(),
            digest_end_time: end_time.clone(),
            digest_s3_bucket: bucket.clone(),
            digest_s3_object: key.clone(),
            digest_public_key_fingerprint: fingerprint.clone(),
            digest_signature_algorithm: SIGNATURE_ALGORITHM.to_owned(),
            newest_event_time: newest.map(format_digest_time),
            oldest_event_time: oldest.map(format_digest_time),
            previous_digest_s3_bucket: previous.as_ref().map(|link| link.bucket.clone()),
            previous_digest_s3_object: previous.as_ref().map(|link| link.key.clone()),
            previous_digest_hash_value: previous.as_ref().map(|link| link.sha256_hex.clone()),
            previous_digest_hash_algorithm: previous.as_ref().map(|_| HASH_ALGORITHM.to_owned()),
            previous_digest_signature: previous.as_ref().map(|link| link.signature.clone()),
            log_files: stream_files
                .iter()
                .map(|file| DigestLogFile {
                    s3_bucket: file.bucket.clone(),
                    s3_object: file.key.clone(),
                    hash_value: file.sha256_hex.clone(),
                    hash_algorithm: HASH_ALGORITHM.to_owned(),
                    newest_event_time: file.newest_event_time_ms.map(format_digest_time),
                    oldest_event_time: file.oldest_event_time_ms.map(format_digest_time),
                })
                .collect(),
        };
        let json = serde_json::to_string(&document).map_err(|error| TrailsError::Corrupt {
            path: PathBuf::from(&key),
            reason: error.to_string(),
        })?;
        let sha256_hex = hex::encode(Sha256::digest(json.as_bytes()));
        let message = string_to_sign(
            &end_time,
            &bucket,
            &key,
            &sha256_hex,
            previous.as_ref().map(|link| link.signature.as_str()),
        );
        let signature = keys.sign_with(&fingerprint, message.as_bytes())?;
        digests.push(PlannedDigest {
            account_id,
            region,
            bucket: bucket.clone(),
            key,
            json,
            signature,
            sha256_hex,
        });
    }
    Ok(DigestPlan {
        start_ms,
        end_ms,
        through_file_seq: files
            .iter()
            .map(|file| file.file_seq)
            .max()
            .unwrap_or(state.manifest_cursor)
            .max(state.manifest_cursor),
        closes_chain,
        digests,
    })
}

/// The state after a plan's digests are all written.
fn advance(state: &mut DigestState, plan: &DigestPlan) {
    state.manifest_cursor = state.manifest_cursor.max(plan.through_file_seq);
    if plan.closes_chain {
        state.period_start_ms = None;
        state.chains.clear();
    } else {
        state.period_start_ms = Some(plan.end_ms);
        for digest in &plan.digests {
            let link = ChainLink {
                bucket: digest.bucket.clone(),
                key: digest.key.clone(),
                signature: digest.signature.clone(),
                sha256_hex: digest.sha256_hex.clone(),
            };
            match state.chains.iter_mut().find(|chain| {
                chain.account_id == digest.account_id && chain.region == digest.region
            }) {
                Some(chain) => chain.last = Some(link),
                None => state.chains.push(ChainState {
                    account_id: digest.account_id.clone(),
                    region: digest.region.clone(),
                    last: Some(link),
                }),
            }
        }
    }
    state.plan = None;
}

// ------------------------------------------------------------------------------ worker

/// What every digest worker shares.
pub struct DigestContext {
    pub store: Store,
    pub destinations: Arc<Destinations>,
    pub keys: Arc<DigestKeys>,
    pub options: DigestOptions,
}

/// How the service tells a digest worker to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestStop {
    Run,
    /// Server shutdown: the chain continues at the next start.
    Stop,
    /// DeleteTrail: close the chain with a final digest, then stop.
    FinalThenStop,
}

/// The digest writer of one trail.
pub struct DigestWorker {
    context: Arc<DigestContext>,
    trail_updates: watch::Receiver<Arc<Trail>>,
    trail: Arc<Trail>,
    trail_dir: PathBuf,
    manifest: Manifest,
    state: DigestState,
    status: StatusHandle,
    stop: watch::Receiver<DigestStop>,
}

impl DigestWorker {
    /// Blocking (reads the state).
    pub fn open(
        context: Arc<DigestContext>,
        trail_updates: watch::Receiver<Arc<Trail>>,
        trail_dir: PathBuf,
        status: StatusHandle,
        stop: watch::Receiver<DigestStop>,
    ) -> Result<DigestWorker, TrailsError> {
        let trail = Arc::clone(&trail_updates.borrow());
        let state = load_digest_state(&trail_dir)?;
        Ok(DigestWorker {
            context,
            trail_updates,
            trail,
            manifest: Manifest::new(&trail_dir),
            trail_dir,
            state,
            status,
            stop,
        })
    }

    pub fn state(&self) -> &DigestState {
        &self.state
    }

    pub async fn run(mut self) {
        let poll_interval = self.context.options.poll_interval();
        loop {
            let mode = *self.stop.borrow();
            match mode {
                DigestStop::Stop => return,
                DigestStop::FinalThenStop => {
                    if let Err(error) = self.close_chain().await {
                        tracing::warn!(trail = self.trail.arn().as_str(), %error, "could not write the final digest");
                    }
                    return;
                }
                DigestStop::Run => {}
            }
            if let Err(error) = self.poll(false).await {
                tracing::error!(trail = self.trail.arn().as_str(), %error, "digest delivery failed; retrying");
                let message = error.to_string();
                update_status(&self.status, |status| {
                    status.latest_digest_delivery_error = Some(message);
                });
            }
            tokio::select! {
                _ = self.stop.changed() => {}
                _ = self.trail_updates.changed() => {}
                () = tokio::time::sleep(poll_interval) => {}
            }
        }
    }

    /// One step: redo a planned period, start or close the chain, or close a period that
    /// is due. With `force`, a period is due as soon as a whole second has passed (tests).
    pub async fn poll(&mut self, force: bool) -> Result<(), TrailsError> {
        self.poll_at(jiff::Timestamp::now().as_millisecond(), force)
            .await
    }

    /// [`DigestWorker::poll`] as if the clock read `now_ms` (tests drive periods and key
    /// rotation with it).
    pub async fn poll_at(&mut self, now_ms: i64, force: bool) -> Result<(), TrailsError> {
        self.trail = Arc::clone(&self.trail_updates.borrow_and_update());
        if self.state.plan.is_some() {
            self.execute_plan().await?;
        }
        let now_ms = whole_second(now_ms);
        let wanted =
            self.trail.settings.log_file_validation_enabled && self.trail.logging.is_logging;
        match self.state.period_start_ms {
            None if wanted => {
                let manifest = self.manifest.clone();
                let last = blocking(move || manifest.last()).await?;
                // Files delivered before the chain started are not covered (as in
                // CloudTrail, where validation covers files from when it is enabled).
                self.state.manifest_cursor = last.map_or(0, |file| file.file_seq);
                self.state.period_start_ms = Some(now_ms);
                self.state.chains.clear();
                self.persist().await?;
            }
            None => {}
            Some(start_ms) => {
                if now_ms <= start_ms {
                    return Ok(());
                }
                if !wanted {
                    // Logging stopped: the final digest waits for the files of events
                    // accepted before StopLogging.
                    if self.trail.settings.log_file_validation_enabled
                        && !self.delivery_caught_up().await?
                    {
                        return Ok(());
                    }
                    self.plan_and_execute(start_ms, now_ms, true).await?;
                } else if force
                    || now_ms.saturating_sub(start_ms)
                        >= i64::try_from(self.context.options.interval.as_millis())
                            .unwrap_or(i64::MAX)
                {
                    self.plan_and_execute(start_ms, now_ms, false).await?;
                }
            }
        }
        Ok(())
    }

    /// Writes a final digest now (DeleteTrail), waiting for the next whole second if the
    /// period is still empty in time.
    pub async fn close_chain(&mut self) -> Result<(), TrailsError> {
        self.trail = Arc::clone(&self.trail_updates.borrow_and_update());
        if self.state.plan.is_some() {
            self.execute_plan().await?;
        }
        let Some(start_ms) = self.state.period_start_ms else {
            return Ok(());
        };
        let mut now_ms = whole_second(jiff::Timestamp::now().as_millisecond());
        if now_ms <= start_ms {
            tokio::time::sleep(Duration::from_millis(
                u64::try_from(start_ms + 1000 - jiff::Timestamp::now().as_millisecond())
                    .unwrap_or(0)
                    .min(1000),
            ))
            .await;
            now_ms = whole_second(jiff::Timestamp::now().as_millisecond()).max(start_ms + 1000);
        }
        self.plan_and_execute(start_ms, now_ms, true).await
    }

    async fn delivery_caught_up(&self) -> Result<bool, TrailsError> {
        let store = self.context.store.clone();
        let consumer = self.trail.delivery_consumer();
        let cursor = blocking(move || store.load_cursor(&consumer)).await?;
        Ok(self.trail.logging.is_exhausted_after(cursor))
    }

    async fn plan_and_execute(
        &mut self,
        start_ms: i64,
        end_ms: i64,
        closes_chain: bool,
    ) -> Result<(), TrailsError> {
        let manifest = self.manifest.clone();
        let keys = Arc::clone(&self.context.keys);
        let trail = Arc::clone(&self.trail);
        let state = self.state.clone();
        let plan = blocking(move || -> Result<DigestPlan, TrailsError> {
            let files = manifest.read_after(state.manifest_cursor, usize::MAX)?;
            plan_period(
                &trail,
                &state,
                &files,
                &keys,
                start_ms,
                end_ms,
                closes_chain,
            )
        })
        .await?;
        self.state.plan = Some(plan);
        self.persist().await?;
        self.execute_plan().await
    }

    /// Writes every planned digest (again, after a crash), then advances the chain.
    async fn execute_plan(&mut self) -> Result<(), TrailsError> {
        let Some(plan) = self.state.plan.clone() else {
            return Ok(());
        };
        let attempt_time_ms = jiff::Timestamp::now().as_millisecond();
        for digest in &plan.digests {
            let compressed = gzip(digest.json.as_bytes()).map_err(|source| TrailsError::Write {
                path: PathBuf::from(&digest.key),
                source,
            })?;
            let written = match self.context.destinations.bucket(&digest.bucket) {
                Ok(bucket) => {
                    bucket
                        .put_signed(
                            &digest.key,
                            compressed,
                            &digest.signature,
                            SIGNATURE_ALGORITHM,
                        )
                        .await
                }
                Err(error) => Err(error),
            };
            if let Err(error) = written {
                metrics::counter!("opentrail_trail_digest_failures_total").increment(1);
                return Err(TrailsError::DestinationUnavailable(error.to_string()));
            }
        }
        advance(&mut self.state, &plan);
        self.persist().await?;
        let done_ms = jiff::Timestamp::now().as_millisecond();
        update_status(&self.status, |status| {
            status.latest_digest_delivery_time_ms = Some(done_ms.max(attempt_time_ms));
            status.latest_digest_delivery_error = None;
        });
        metrics::counter!("opentrail_trail_digests_delivered_total")
            .increment(plan.digests.len() as u64);
        tracing::debug!(
            trail = self.trail.arn().as_str(),
            digests = plan.digests.len(),
            end = format_digest_time(plan.end_ms).as_str(),
            closes_chain = plan.closes_chain,
            "delivered digest files"
        );
        Ok(())
    }

    async fn persist(&self) -> Result<(), TrailsError> {
        let trail_dir = self.trail_dir.clone();
        let state = self.state.clone();
        blocking(move || save_digest_state(&trail_dir, &state)).await
    }
}

fn whole_second(time_ms: i64) -> i64 {
    time_ms - time_ms.rem_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_and_time_round_trip() {
        let naming = DigestNaming {
            prefix: Some("logs"),
            account_id: "111122223333",
            region: "us-east-2",
            trail_name: "your-trail-name",
            home_region: "us-east-2",
        };
        // 2015-08-17T15:01:31Z
        let end_ms = 1_439_823_691_000;
        let key = naming.key(end_ms);
        assert_eq!(
            key,
            "logs/AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T150131Z.json.gz"
        );
        assert_eq!(digest_key_time_ms(&key), Some(end_ms));
        assert_eq!(format_digest_time(end_ms + 999), "2015-08-17T15:01:31Z");
        assert_eq!(parse_digest_time("2015-08-17T15:01:31Z"), Some(end_ms));
    }

    #[test]
    fn string_to_sign_uses_null_for_the_first_digest() {
        assert_eq!(
            string_to_sign("2015-08-17T15:01:31Z", "b", "k.json.gz", "ab", None),
            "2015-08-17T15:01:31Z\nb/k.json.gz\nab\nnull"
        );
        assert_eq!(
            string_to_sign("t", "b", "k", "ab", Some("00ff")),
            "t\nb/k\nab\n00ff"
        );
    }

    #[test]
    fn document_fields_are_camel_case_in_cloudtrail_order() {
        let document = DigestDocument {
            aws_account_id: "1".into(),
            digest_start_time: "s".into(),
            digest_end_time: "e".into(),
            digest_s3_bucket: "b".into(),
            digest_s3_object: "o".into(),
            digest_public_key_fingerprint: "f".into(),
            digest_signature_algorithm: SIGNATURE_ALGORITHM.into(),
            newest_event_time: None,
            oldest_event_time: None,
            previous_digest_s3_bucket: None,
            previous_digest_s3_object: None,
            previous_digest_hash_value: None,
            previous_digest_hash_algorithm: None,
            previous_digest_signature: None,
            log_files: Vec::new(),
        };
        let json = serde_json::to_string(&document).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"awsAccountId":"1","digestStartTime":"s","digestEndTime":"e","digestS3Bucket":"b","digestS3Object":"o","digestPublicKeyFingerprint":"f","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":null,"oldestEventTime":null,"previousDigestS3Bucket":null,"previousDigestS3Object":null,"previousDigestHashValue":null,"previousDigestHashAlgorithm":null,"previousDigestSignature":null,"logFiles":[]}"#
        );
    }

    #[test]
    fn log_file_keys_name_their_stream() {
        assert_eq!(
            stream_of_key("p/AWSLogs/111122223333/CloudTrail/eu-west-1/2024/01/02/x.json.gz"),
            Some(("111122223333".to_owned(), "eu-west-1".to_owned()))
        );
        assert_eq!(stream_of_key("elsewhere/x.json.gz"), None);
    }
}

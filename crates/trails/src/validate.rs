//! Validation of a trail's digest chain and log files, as stored in its bucket: what
//! `opentrail validate` runs.
//!
//! It checks what `aws cloudtrail validate-logs` checks (spec §6.3) — each digest is
//! where it says it is, is signed by a known key, and each listed log file hashes to the
//! listed value — and what that tool misses:
//!
//! - the chain is followed forwards over the whole listing, so every missing link is
//!   reported, and a hole longer than one period after a missing digest is reported as
//!   further missing digests (the aws CLI names only the first of several consecutive
//!   deleted digests);
//! - a linked digest must start exactly where its predecessor ended (a gap in time);
//! - a chain that restarts (a `null` previous digest after an earlier digest) leaves a
//!   period without integrity coverage, reported as a gap.
//!
//! Digests are listed from the day before the start onwards (one listing, no probing of
//! every hour), so an empty range costs one request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::StreamExt as _;
use object_store::ObjectStore as _;
use object_store::path::Path as ObjectPath;
use sha2::{Digest as _, Sha256};

use crate::destinations::{Bucket, DestinationError, Destinations};
use crate::digest::{
    DigestDocument, DigestNaming, digest_key_time_ms, digest_prefix, format_digest_time, gunzip,
    parse_digest_time, string_to_sign, verify_signature,
};
use crate::digest_keys::PublicKeyInfo;

/// The aws CLI also looks this far past the end for the digest covering it.
const END_SLACK_MS: i64 = 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What to validate.
#[derive(Debug, Clone)]
pub struct ValidationRequest {
    pub bucket: String,
    pub prefix: Option<String>,
    /// The account and region of the digests (the stream), and the trail's name and home.
    pub account_id: String,
    pub region: String,
    pub trail_name: String,
    pub home_region: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The keys ListPublicKeys returned for the region.
    pub public_keys: Vec<PublicKeyInfo>,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Digest {
        uri: String,
        problem: Option<String>,
    },
    LogFile {
        uri: String,
        problem: Option<String>,
    },
    /// No digest covers `[from_ms, to_ms]`.
    Gap {
        from_ms: i64,
        to_ms: i64,
        reason: String,
    },
}

impl Finding {
    pub fn is_failure(&self) -> bool {
        match self {
            Finding::Digest { problem, .. } | Finding::LogFile { problem, .. } => problem.is_some(),
            Finding::Gap { .. } => true,
        }
    }

    /// The line `opentrail validate` prints (tab-separated, like the aws CLI).
    pub fn line(&self) -> String {
        let status = |problem: &Option<String>| match problem {
            None => "valid".to_owned(),
            Some(reason) => format!("INVALID: {reason}"),
        };
        match self {
            Finding::Digest { uri, problem } => format!("Digest file\t{uri}\t{}", status(problem)),
            Finding::LogFile { uri, problem } => format!("Log file\t{uri}\t{}", status(problem)),
            Finding::Gap {
                from_ms,
                to_ms,
                reason,
            } => format!(
                "Gap\t{} to {}\tINVALID: {reason}",
                format_digest_time(*from_ms),
                format_digest_time(*to_ms)
            ),
        }
    }
}

/// The outcome: lines in order, and counts.
#[derive(Debug, Clone, Default)]
pub struct ValidationReport {
    pub findings: Vec<Finding>,
}

impl ValidationReport {
    pub fn count(&self, digest: bool, valid: bool) -> usize {
        self.findings
            .iter()
            .filter(|finding| match finding {
                Finding::Digest { problem, .. } => digest && problem.is_none() == valid,
                Finding::LogFile { problem, .. } => !digest && problem.is_none() == valid,
                Finding::Gap { .. } => false,
            })
            .count()
    }

    pub fn gaps(&self) -> usize {
        self.findings
            .iter()
            .filter(|finding| matches!(finding, Finding::Gap { .. }))
            .count()
    }

    pub fn is_valid(&self) -> bool {
        !self.findings.iter().any(Finding::is_failure)
    }

    pub fn summary(&self) -> String {
        let digests_valid = self.count(true, true);
        let digests_invalid = self.count(true, false);
        let logs_valid = self.count(false, true);
        let logs_invalid = self.count(false, false);
        let mut text = format!(
            "{digests_valid}/{} digest files valid",
            digests_valid + digests_invalid
        );
        if digests_invalid > 0 {
            text.push_str(&format!(", {digests_invalid} INVALID"));
        }
        text.push_str(&format!(
            "\n{logs_valid}/{} log files valid",
            logs_valid + logs_invalid
        ));
        if logs_invalid > 0 {
            text.push_str(&format!(", {logs_invalid} INVALID"));
        }
        let gaps = self.gaps();
        if gaps > 0 {
            text.push_str(&format!("\n{gaps} gaps in the digest chain"));
        }
        text
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValidateError {
    #[error(transparent)]
    Destination(#[from] DestinationError),
}

/// A digest as loaded.
struct Loaded {
    key: String,
    end_ms: i64,
    document: Option<DigestDocument>,
    /// Whether it passed every check of its own (location, key, signature).
    valid: bool,
}

/// Validates the chain of one stream over `[start, end]`.
pub async fn validate(
    destinations: &Arc<Destinations>,
    request: &ValidationRequest,
) -> Result<ValidationReport, ValidateError> {
    let bucket = destinations.bucket(&request.bucket)?;
    let naming = DigestNaming {
        prefix: request.prefix.as_deref(),
        account_id: &request.account_id,
        region: &request.region,
        trail_name: &request.trail_name,
        home_region: &request.home_region,
    };
    let keys = list_digest_keys(&bucket, &naming, request.start_ms, request.end_ms).await?;
    let public_keys: HashMap<&str, &PublicKeyInfo> = request
        .public_keys
        .iter()
        .map(|key| (key.fingerprint.as_str(), key))
        .collect();
    let mut report = ValidationReport::default();
    let mut loaded: Vec<Loaded> = Vec::with_capacity(keys.len());
    for (end_ms, key) in keys {
        let uri = format!("s3://{}/{key}", request.bucket);
        let Some((compressed, signature)) = bucket.get_signed(&key).await? else {
            report.findings.push(Finding::Digest {
                uri,
                problem: Some("not found".to_owned()),
            });
            continue;
        };
        let (document, problem) = check_digest(
            &request.bucket,
            &key,
            &compressed,
            signature.as_deref(),
            &public_keys,
        );
        let valid = problem.is_none();
        report.findings.push(Finding::Digest { uri, problem });
        if let (true, Some(document)) = (valid, &document) {
            for log in &document.log_files {
                report
                    .findings
                    .push(check_log_file(destinations, log).await?);
            }
        }
        loaded.push(Loaded {
            key,
            end_ms,
            document,
            valid,
        });
    }
    check_chain(
        &bucket,
        &request.bucket,
        request.start_ms,
        &loaded,
        &mut report,
    )
    .await?;
    Ok(report)
}

/// The digest keys of the chain with end times in `[start, end + 1 h]`, oldest first.
async fn list_digest_keys(
    bucket: &Bucket,
    naming: &DigestNaming<'_>,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<(i64, String)>, ValidateError> {
    let prefix = digest_prefix(naming.prefix, naming.account_id, naming.region);
    let stem = naming.file_name_stem();
    let first_day = jiff::Timestamp::from_millisecond(start_ms.saturating_sub(DAY_MS))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    // Keys sort by their date folders, so listing can begin at the day before the start.
    let offset = ObjectPath::from(format!("{prefix}{}", first_day.strftime("%Y/%m/%d")));
    let store = bucket.object_store();
    let prefix_path = ObjectPath::from(prefix.as_str());
    let mut listing = store.list_with_offset(Some(&prefix_path), &offset);
    let last_ms = end_ms.saturating_add(END_SLACK_MS);
    let mut found = Vec::new();
    while let Some(entry) = listing.next().await {
        let meta = match entry {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => break,
            Err(source) => {
                return Err(DestinationError::List {
                    bucket: bucket.name.clone(),
                    source,
                }
                .into());
            }
        };
        let key = meta.location.to_string();
        let Some(file_name) = key.rsplit('/').next() else {
            continue;
        };
        if !file_name.starts_with(&stem) || !file_name.ends_with(".json.gz") {
            continue;
        }
        let Some(time_ms) = digest_key_time_ms(&key) else {
            continue;
        };
        if time_ms >= start_ms && time_ms <= last_ms {
            found.push((time_ms, key));
        }
    }
    found.sort();
    Ok(found)
}

/// A digest's own checks, in the aws CLI's order: the parsed document (when it parses)
/// and the first problem found, if any.
fn check_digest(
    bucket: &str,
    key: &str,
    compressed: &[u8],
    signature: Option<&str>,
    public_keys: &HashMap<&str, &PublicKeyInfo>,
) -> (Option<DigestDocument>, Option<String>) {
    let (inflated, document) = match crate::digest::parse_digest_file(compressed) {
        Ok(parsed) => parsed,
        Err(problem) => return (None, Some(problem)),
    };
    if document.digest_s3_bucket != bucket || document.digest_s3_object != key {
        return (
            Some(document),
            Some("has been moved from its original location".to_owned()),
        );
    }
    let Some(public_key) = public_keys.get(document.digest_public_key_fingerprint.as_str()) else {
        let problem = format!(
            "public key not found for fingerprint {}",
            document.digest_public_key_fingerprint
        );
        return (Some(document), Some(problem));
    };
    let Some(signature) = signature else {
        return (
            Some(document),
            Some("the digest has no signature".to_owned()),
        );
    };
    let message = string_to_sign(
        &document.digest_end_time,
        &document.digest_s3_bucket,
        &document.digest_s3_object,
        &hex::encode(Sha256::digest(&inflated)),
        document.previous_digest_signature.as_deref(),
    );
    if !verify_signature(&public_key.public_der, message.as_bytes(), signature) {
        return (Some(document), Some("invalid signature".to_owned()));
    }
    (Some(document), None)
}

async fn check_log_file(
    destinations: &Arc<Destinations>,
    log: &crate::digest::DigestLogFile,
) -> Result<Finding, ValidateError> {
    let uri = format!("s3://{}/{}", log.s3_bucket, log.s3_object);
    let bucket = destinations.bucket(&log.s3_bucket)?;
    let problem = match bucket.get_optional(&log.s3_object).await? {
        None => Some("not found".to_owned()),
        Some(compressed) => match gunzip(&compressed) {
            Err(_) => Some("invalid format".to_owned()),
            Ok(inflated) => {
                let actual = hex::encode(Sha256::digest(&inflated));
                (actual != log.hash_value.to_ascii_lowercase())
                    .then(|| "hash value doesn't match".to_owned())
            }
        },
    };
    Ok(Finding::LogFile { uri, problem })
}

/// The chain over the listing: every link resolves, in order and without holes in time.
async fn check_chain(
    bucket: &Bucket,
    bucket_name: &str,
    start_ms: i64,
    loaded: &[Loaded],
    report: &mut ValidationReport,
) -> Result<(), ValidateError> {
    // Only digests that passed their own checks can vouch for anything; a moved copy or
    // a forgery is already reported and must not count as a link.
    let chain: Vec<&Loaded> = loaded.iter().filter(|digest| digest.valid).collect();
    let by_key: BTreeMap<&str, &Loaded> = loaded
        .iter()
        .map(|digest| (digest.key.as_str(), digest))
        .collect();
    let mut periods: Vec<i64> = chain
        .iter()
        .filter_map(|digest| {
            let document = digest.document.as_ref()?;
            let start = parse_digest_time(&document.digest_start_time)?;
            let end = parse_digest_time(&document.digest_end_time)?;
            Some(end - start)
        })
        .filter(|period| *period > 0)
        .collect();
    periods.sort_unstable();
    let typical_period = periods.get(periods.len() / 2).copied();
    for (index, digest) in chain.iter().enumerate() {
        let Some(document) = &digest.document else {
            continue;
        };
        let Some(start) = parse_digest_time(&document.digest_start_time) else {
            continue;
        };
        let older = index.checked_sub(1).and_then(|before| chain.get(before));
        let older_end = older.map(|older| older.end_ms);
        match (
            &document.previous_digest_s3_bucket,
            &document.previous_digest_s3_object,
        ) {
            (Some(previous_bucket), Some(previous_key)) => {
                let previous_end = digest_key_time_ms(previous_key);
                if previous_bucket == bucket_name
                    && let Some(previous) = by_key.get(previous_key.as_str())
                {
                    if !previous.valid {
                        // Already reported; its time fields cannot be trusted.
                        continue;
                    }
                    if previous.end_ms != start {
                        report.findings.push(Finding::Gap {
                            from_ms: previous.end_ms,
                            to_ms: start,
                            reason: format!(
                                "s3://{bucket_name}/{} does not start where its previous digest ends",
                                digest.key
                            ),
                        });
                    }
                    if older.is_some_and(|older| older.key != *previous_key) {
                        report.findings.push(Finding::Gap {
                            from_ms: previous.end_ms,
                            to_ms: start,
                            reason: "a digest between two linked digests is not part of the chain"
                                .to_owned(),
                        });
                    }
                    continue;
                }
                if previous_end.is_some_and(|end| end < start_ms) {
                    // The link leaves the requested range.
                    continue;
                }
                // The previous digest is not in the listing: it is missing (or in
                // another bucket, where it must exist).
                let exists = if previous_bucket == bucket_name {
                    bucket.get_optional(previous_key).await?.is_some()
                } else {
                    false
                };
                if !exists {
                    report.findings.push(Finding::Digest {
                        uri: format!("s3://{previous_bucket}/{previous_key}"),
                        problem: Some("not found".to_owned()),
                    });
                }
                // One missing digest covers about one period before `start`; a longer
                // hole back to the next older digest means more of them are gone.
                if let (Some(older_end), Some(period)) = (older_end, typical_period) {
                    let hole = start - older_end;
                    if hole * 2 > period * 3 {
                        let more = ((hole as f64 / period as f64).round() as i64 - 1).max(1);
                        report.findings.push(Finding::Gap {
                            from_ms: older_end,
                            to_ms: start,
                            reason: format!(
                                "about {more} more consecutive digest(s) missing before {previous_key}"
                            ),
                        });
                    }
                }
            }
            _ => {
                if let Some(older_end) = older_end {
                    report.findings.push(Finding::Gap {
                        from_ms: older_end,
                        to_ms: start,
                        reason: "no digests: the chain restarts (logging or validation was off, or digests were deleted)".to_owned(),
                    });
                }
            }
        }
    }
    Ok(())
}

//! CloudTrail log files: the key layout, the file name, and the bytes.
//!
//! Key (spec §5):
//! `[<prefix>/]AWSLogs/<account>/CloudTrail/<region>/<YYYY>/<MM>/<DD>/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<UniqueString>.json.gz`
//!
//! Insights files have the same shape with `CloudTrail-Insight` for `CloudTrail`, in the
//! folder and in the name ([`FileFolder::Insights`]).
//!
//! - The date folders and the timestamp are the batch's *planned delivery time* in UTC,
//!   recorded durably before the object is written, so a rewrite after a crash lands on
//!   the same key.
//! - `UniqueString` is 16 characters of `[A-Za-z0-9]` derived from a SHA-256 of the trail
//!   and the log range of the batch, so it is deterministic too, and distinct for distinct
//!   ranges of one trail.
//!
//! Body: gzip (one member, which `validate-logs` requires) of `{"Records":[…]}`, where each
//! record is the stored JSON text unchanged, in log order.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// Characters of the unique string, as in CloudTrail's samples.
const UNIQUE_ALPHABET: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Length of the unique string.
pub const UNIQUE_STRING_LEN: usize = 16;

/// What identifies the contents of one log file, and so its unique string.
#[derive(Debug, Clone, Copy)]
pub struct FileIdentity<'a> {
    /// The trail's id (a UUID, new for every created trail).
    pub trail_id: &'a str,
    pub trail_arn: &'a str,
    /// The batch covers log entries `after_seq < seq <= through_seq`.
    pub after_seq: u64,
    pub through_seq: u64,
    /// The stream (account and region) this file belongs to within the batch.
    pub account_id: &'a str,
    pub region: &'a str,
}

/// Which of CloudTrail's folders a file goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFolder {
    /// `CloudTrail`: log files.
    Logs,
    /// `CloudTrail-Insight`: Insights files.
    Insights,
}

impl FileFolder {
    /// The folder, which is also the file name's second part.
    pub fn as_str(self) -> &'static str {
        match self {
            FileFolder::Logs => "CloudTrail",
            FileFolder::Insights => "CloudTrail-Insight",
        }
    }

    /// What the unique string hashes first, so a log file and an Insights file of the
    /// same log range never share one.
    fn hash_domain(self) -> &'static str {
        match self {
            FileFolder::Logs => "opentrail log file v1",
            FileFolder::Insights => "opentrail insights file v1",
        }
    }
}

/// The 16-character unique string of a log file: a pure function of its identity.
pub fn unique_string(identity: &FileIdentity<'_>) -> String {
    unique_string_in(FileFolder::Logs, identity)
}

/// The 16-character unique string of a file of `folder`: a pure function of its identity.
pub fn unique_string_in(folder: FileFolder, identity: &FileIdentity<'_>) -> String {
    let mut hasher = Sha256::new();
    for part in [
        folder.hash_domain(),
        identity.trail_id,
        identity.trail_arn,
        &identity.after_seq.to_string(),
        &identity.through_seq.to_string(),
        identity.account_id,
        identity.region,
    ] {
        hasher.update(part.as_bytes());
        // A separator that cannot occur inside the parts keeps ("ab","c") != ("a","bc").
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    digest
        .iter()
        .take(UNIQUE_STRING_LEN)
        .map(|byte| char::from(UNIQUE_ALPHABET[usize::from(*byte) % UNIQUE_ALPHABET.len()]))
        .collect()
}

/// The object key of a log file.
pub fn log_file_key(
    prefix: Option<&str>,
    account_id: &str,
    region: &str,
    delivery_time_ms: i64,
    unique: &str,
) -> String {
    file_key(
        FileFolder::Logs,
        prefix,
        account_id,
        region,
        delivery_time_ms,
        unique,
    )
}

/// The object key of a file in `folder` (log files, Insights files).
pub fn file_key(
    folder: FileFolder,
    prefix: Option<&str>,
    account_id: &str,
    region: &str,
    delivery_time_ms: i64,
    unique: &str,
) -> String {
    let folder = folder.as_str();
    let (date_path, minute_stamp) = delivery_time_parts(delivery_time_ms);
    let name = format!("{account_id}_{folder}_{region}_{minute_stamp}_{unique}.json.gz");
    let tail = format!("AWSLogs/{account_id}/{folder}/{region}/{date_path}/{name}");
    match prefix {
        Some(prefix) if !prefix.is_empty() => format!("{prefix}/{tail}"),
        _ => tail,
    }
}

/// `("YYYY/MM/DD", "YYYYMMDDTHHmmZ")` of a time in UTC. Times outside jiff's range (never
/// produced by a clock) are clamped to the epoch rather than failing a delivery.
fn delivery_time_parts(time_ms: i64) -> (String, String) {
    let timestamp =
        jiff::Timestamp::from_millisecond(time_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    (
        timestamp.strftime("%Y/%m/%d").to_string(),
        timestamp.strftime("%Y%m%dT%H%MZ").to_string(),
    )
}

/// A built log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileBytes {
    /// The object's bytes: one gzip member.
    pub gzip: Vec<u8>,
    /// Lower-case hex SHA-256 of the uncompressed `{"Records":[…]}` (what digests record).
    pub sha256_hex: String,
    pub uncompressed_len: usize,
}

/// Builds `{"Records":[r1,r2,…]}` from stored record texts, gzips it as one member and
/// hashes the uncompressed bytes. CPU-bound: async callers run it on `spawn_blocking`.
pub fn build_log_file<S: AsRef<str>>(records: &[S]) -> std::io::Result<LogFileBytes> {
    let body_len = records
        .iter()
        .map(|record| record.as_ref().len() + 1)
        .sum::<usize>()
        + 16;
    let mut body = Vec::with_capacity(body_len);
    body.extend_from_slice(b"{\"Records\":[");
    for (index, record) in records.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(record.as_ref().as_bytes());
    }
    body.extend_from_slice(b"]}");
    let sha256_hex = hex::encode(Sha256::digest(&body));
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
    encoder.write_all(&body)?;
    let gzip = encoder.finish()?;
    Ok(LogFileBytes {
        gzip,
        sha256_hex,
        uncompressed_len: body.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_follows_cloudtrail_layout() {
        // 2015-08-01T02:10:33Z
        let key = log_file_key(
            None,
            "111122223333",
            "us-east-2",
            1_438_395_033_000,
            "Mu0KsOhtH1ar15ZZ",
        );
        assert_eq!(
            key,
            "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/01/111122223333_CloudTrail_us-east-2_20150801T0210Z_Mu0KsOhtH1ar15ZZ.json.gz"
        );
        let prefixed = log_file_key(Some("a/b"), "1", "r", 1_438_395_033_000, "x");
        assert!(prefixed.starts_with("a/b/AWSLogs/1/CloudTrail/r/2015/08/01/"));
    }

    #[test]
    fn insights_keys_use_the_cloudtrail_insight_folder_and_name() {
        let key = file_key(
            FileFolder::Insights,
            Some("org"),
            "111122223333",
            "us-east-2",
            1_438_395_033_000,
            "Mu0KsOhtH1ar15ZZ",
        );
        assert_eq!(
            key,
            "org/AWSLogs/111122223333/CloudTrail-Insight/us-east-2/2015/08/01/111122223333_CloudTrail-Insight_us-east-2_20150801T0210Z_Mu0KsOhtH1ar15ZZ.json.gz"
        );
    }

    #[test]
    fn a_log_file_and_an_insights_file_of_one_range_get_different_unique_strings() {
        let identity = FileIdentity {
            trail_id: "id",
            trail_arn: "arn:aws:cloudtrail:us-east-1:111122223333:trail/t",
            after_seq: 10,
            through_seq: 20,
            account_id: "111122223333",
            region: "us-east-1",
        };
        let log = unique_string(&identity);
        assert_eq!(log, unique_string_in(FileFolder::Logs, &identity));
        let insights = unique_string_in(FileFolder::Insights, &identity);
        assert_ne!(log, insights);
        assert_eq!(insights.len(), UNIQUE_STRING_LEN);
    }
}

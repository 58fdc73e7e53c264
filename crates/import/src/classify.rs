//! Which files are CloudTrail logs, judged by their path before anything is read: the one
//! answer for `opentrail import` and `opentrail ingest`, which both list files through
//! this crate.
//!
//! # Rules, in order
//!
//! 1. **Digest files** are skipped: a path segment `CloudTrail-Digest` or a file name
//!    containing `CloudTrail-Digest`. They hold hashes of log files, not events.
//! 2. **AWSLogs trees**: below a segment `AWSLogs`, an optional organization id
//!    (`o-…`), a 12-digit account and a service folder. Only the service folders
//!    `CloudTrail` and `CloudTrail-Insight` hold CloudTrail records; any other
//!    (`Config`, `elasticloadbalancing`, `vpcflowlogs`, …) is skipped as not CloudTrail.
//!    The account and the region folder that follows become the file's [`PathHint`].
//! 3. **File names**: a file found by walking a folder or listing a prefix must end in
//!    one of [`EVENT_FILE_SUFFIXES`] (any case) and must not be hidden (a name starting
//!    with `.`); anything else is skipped as not CloudTrail. A file named explicitly on
//!    the command line is read whatever its name.
//! 4. A CloudTrail delivery name, `<account>_CloudTrail_<region>_<time>_<random>.json.gz`
//!    (or `_CloudTrail-Insight_`), gives the hint when no AWSLogs path did; this covers
//!    trees copied without their `AWSLogs/<account>/` prefix.
//! 5. An **empty file** holds no events and is skipped as not CloudTrail
//!    ([`classify_file`], for listings that know the size).
//!
//! The hint only fills `recipientAccountId` and `awsRegion` of records that lack them
//! (see `opentrail_event::IngestContext`): a record's own values always win.
//!
//! What a file holds is judged again after parsing (see the pipeline): valid JSON none of
//! whose records looks like CloudTrail is skipped as not CloudTrail too.

/// Account and region that a file's path names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathHint {
    pub account_id: Option<String>,
    pub region: Option<String>,
}

/// Why a file is not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// A CloudTrail digest file (hashes of log files, no events).
    Digest,
    /// Not a CloudTrail log: another service's logs, another file type, a hidden or empty
    /// file, or JSON that holds no CloudTrail records.
    NotCloudTrail,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Digest => "digest",
            SkipReason::NotCloudTrail => "not_cloudtrail",
        }
    }
}

/// The verdict on one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    CloudTrail(PathHint),
    Skip(SkipReason),
}

/// Names a walk or a listing picks up (compared ASCII case-insensitively): CloudTrail's
/// own log files, JSON documents, and the line files of [`LINE_FILE_SUFFIXES`].
pub const EVENT_FILE_SUFFIXES: [&str; 7] = [
    ".json",
    ".json.gz",
    ".json.cloudtrail",
    ".ndjson",
    ".jsonl",
    ".ndjson.gz",
    ".jsonl.gz",
];
/// Names of files that hold one record per line (NDJSON), whatever their first line
/// looks like.
pub const LINE_FILE_SUFFIXES: [&str; 4] = [".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz"];
const CLOUDTRAIL_SERVICE_FOLDERS: [&str; 2] = ["CloudTrail", "CloudTrail-Insight"];
/// A digest folder's name, and part of every digest file's name.
const DIGEST_MARKER: &str = "CloudTrail-Digest";

/// Classifies a '/'-separated path (a local path or an S3 key). `named_explicitly` is true
/// for a file given on the command line rather than found by walking a folder.
pub fn classify(path: &str, named_explicitly: bool) -> FileKind {
    let segments: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    let file_name = segments.last().copied().unwrap_or_default();
    if file_name.contains(DIGEST_MARKER) || segments.contains(&DIGEST_MARKER) {
        return FileKind::Skip(SkipReason::Digest);
    }
    let aws_logs_hint = match aws_logs_service(&segments) {
        Some(AwsLogsPath {
            service,
            account_id,
            region,
        }) => {
            if !CLOUDTRAIL_SERVICE_FOLDERS.contains(&service) {
                return FileKind::Skip(SkipReason::NotCloudTrail);
            }
            Some(PathHint {
                account_id: Some(account_id.to_owned()),
                region: region.map(str::to_owned),
            })
        }
        None => None,
    };
    if !named_explicitly
        && (file_name.starts_with('.') || !has_suffix(file_name, &EVENT_FILE_SUFFIXES))
    {
        return FileKind::Skip(SkipReason::NotCloudTrail);
    }
    let hint = aws_logs_hint
        .or_else(|| delivery_name_hint(file_name))
        .unwrap_or_default();
    FileKind::CloudTrail(hint)
}

/// [`classify`] for a listed file whose size is known: an empty file holds no events.
pub fn classify_file(path: &str, size_bytes: u64, named_explicitly: bool) -> FileKind {
    match classify(path, named_explicitly) {
        FileKind::CloudTrail(_) if size_bytes == 0 => FileKind::Skip(SkipReason::NotCloudTrail),
        kind => kind,
    }
}

/// Whether a file holds one record per line by its name (see [`LINE_FILE_SUFFIXES`]), so
/// a reader need not guess from its first line.
pub fn is_line_file(path: &str) -> bool {
    let file_name = path.rsplit('/').next().unwrap_or(path);
    has_suffix(file_name, &LINE_FILE_SUFFIXES)
}

fn has_suffix(file_name: &str, suffixes: &[&str]) -> bool {
    let lower = file_name.to_ascii_lowercase();
    suffixes.iter().any(|suffix| lower.ends_with(suffix))
}

struct AwsLogsPath<'a> {
    service: &'a str,
    account_id: &'a str,
    region: Option<&'a str>,
}

/// `…/AWSLogs/[o-org/]<account>/<service>/[<region>/]…`, when the path has that shape
/// and the file lies below the service folder.
fn aws_logs_service<'a>(segments: &[&'a str]) -> Option<AwsLogsPath<'a>> {
    // The last `AWSLogs` wins: a tree copied into another tree keeps its own layout.
    let aws_logs = segments.iter().rposition(|segment| *segment == "AWSLogs")?;
    let mut rest = &segments[aws_logs + 1..];
    if rest
        .first()
        .is_some_and(|segment| is_organization_id(segment))
    {
        rest = &rest[1..];
    }
    // Account, service, and at least the file below the service folder.
    let [account_id, service, below @ ..] = rest else {
        return None;
    };
    if !is_account_id(account_id) || below.is_empty() {
        return None;
    }
    // The region folder exists only when something lies below it.
    let region = match below {
        [region, _, ..] if is_region(region) => Some(*region),
        _ => None,
    };
    Some(AwsLogsPath {
        service,
        account_id,
        region,
    })
}

/// `<account>_CloudTrail_<region>_…` or `<account>_CloudTrail-Insight_<region>_…`.
fn delivery_name_hint(file_name: &str) -> Option<PathHint> {
    let mut parts = file_name.split('_');
    let account_id = parts.next()?;
    let service = parts.next()?;
    let region = parts.next()?;
    if !is_account_id(account_id) || !CLOUDTRAIL_SERVICE_FOLDERS.contains(&service) {
        return None;
    }
    Some(PathHint {
        account_id: Some(account_id.to_owned()),
        region: is_region(region).then(|| region.to_owned()),
    })
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|byte| byte.is_ascii_digit())
}

fn is_organization_id(text: &str) -> bool {
    text.strip_prefix("o-").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
    })
}

/// The shape of an AWS region name (`us-east-1`, `us-gov-west-1`, `eu-central-2`): lower-case
/// words joined by '-', ending in a number.
fn is_region(text: &str) -> bool {
    let mut words = text.split('-');
    let Some(first) = words.next() else {
        return false;
    };
    let rest: Vec<&str> = words.collect();
    let Some((last, middle)) = rest.split_last() else {
        return false;
    };
    !first.is_empty()
        && first.bytes().all(|byte| byte.is_ascii_lowercase())
        && !middle.is_empty()
        && middle
            .iter()
            .all(|word| !word.is_empty() && word.bytes().all(|byte| byte.is_ascii_lowercase()))
        && !last.is_empty()
        && last.bytes().all(|byte| byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(account: &str, region: Option<&str>) -> FileKind {
        FileKind::CloudTrail(PathHint {
            account_id: Some(account.to_owned()),
            region: region.map(str::to_owned),
        })
    }

    #[test]
    fn aws_logs_trees_name_account_and_region() {
        assert_eq!(
            classify(
                "bucket/AWSLogs/123456789012/CloudTrail/eu-west-1/2024/01/02/123456789012_CloudTrail_eu-west-1_20240102T0000Z_abc.json.gz",
                false
            ),
            hint("123456789012", Some("eu-west-1"))
        );
        assert_eq!(
            classify(
                "AWSLogs/o-abc123def4/123456789012/CloudTrail-Insight/us-east-1/2024/01/02/x.json.gz",
                false
            ),
            hint("123456789012", Some("us-east-1"))
        );
    }

    #[test]
    fn digests_and_other_services_are_skipped() {
        assert_eq!(
            classify(
                "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/01/02/123456789012_CloudTrail-Digest_us-east-1_trail_us-east-1_20240102T000000Z.json.gz",
                false
            ),
            FileKind::Skip(SkipReason::Digest)
        );
        assert_eq!(
            classify(
                "copied/123456789012_CloudTrail-Digest_us-east-1_t_us-east-1_20240102T000000Z.json.gz",
                true
            ),
            FileKind::Skip(SkipReason::Digest)
        );
        assert_eq!(
            classify(
                "AWSLogs/123456789012/Config/us-east-1/2024/1/2/ConfigSnapshot/x.json.gz",
                false
            ),
            FileKind::Skip(SkipReason::NotCloudTrail)
        );
        assert_eq!(
            classify(
                "AWSLogs/123456789012/elasticloadbalancing/us-east-1/2024/01/02/x.log.gz",
                false
            ),
            FileKind::Skip(SkipReason::NotCloudTrail)
        );
    }

    #[test]
    fn walked_files_need_a_log_suffix_but_named_files_do_not() {
        assert_eq!(
            classify("logs/README.md", false),
            FileKind::Skip(SkipReason::NotCloudTrail)
        );
        assert_eq!(
            classify("logs/events.ndjson", true),
            FileKind::CloudTrail(PathHint::default())
        );
        for name in ["a.json", "a.JSON.GZ", "ListKeys.json.cloudtrail"] {
            assert_eq!(
                classify(name, false),
                FileKind::CloudTrail(PathHint::default()),
                "{name}"
            );
        }
    }

    #[test]
    fn line_files_count_and_hidden_or_empty_files_do_not() {
        for name in ["logs/c.ndjson", "d.JSONL", "e.ndjson.gz", "f.jsonl.gz"] {
            assert_eq!(
                classify(name, false),
                FileKind::CloudTrail(PathHint::default()),
                "{name}"
            );
            assert!(is_line_file(name), "{name}");
        }
        assert!(!is_line_file("logs.ndjson/a.json"));
        assert_eq!(
            classify("logs/.hidden.json", false),
            FileKind::Skip(SkipReason::NotCloudTrail)
        );
        assert_eq!(
            classify("logs/.hidden.json", true),
            FileKind::CloudTrail(PathHint::default())
        );
        assert_eq!(
            classify_file("logs/empty.json", 0, true),
            FileKind::Skip(SkipReason::NotCloudTrail)
        );
        assert_eq!(
            classify_file("logs/x-CloudTrail-Digest.json.gz", 0, false),
            FileKind::Skip(SkipReason::Digest)
        );
        assert_eq!(
            classify_file("logs/a.json", 1, false),
            FileKind::CloudTrail(PathHint::default())
        );
    }

    #[test]
    fn delivery_names_give_the_hint_without_an_aws_logs_prefix() {
        assert_eq!(
            classify(
                "CloudTrail/us-west-1/2021/07/29/342082656213_CloudTrail_us-west-1_20210729T2355Z_ZfiiRC0kNC9QM7Sw.json.gz",
                false
            ),
            hint("342082656213", Some("us-west-1"))
        );
        assert_eq!(
            classify(
                "x/218007301253_CloudTrail_us-east-1_20230710T1145Z_r.json",
                false
            ),
            hint("218007301253", Some("us-east-1"))
        );
    }

    #[test]
    fn region_shapes() {
        for good in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-3",
            "megov-northeast-1",
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in ["2024", "us-east", "US-EAST-1", "-1", "us--1", "us-east-1a"] {
            assert!(!is_region(bad), "{bad}");
        }
    }
}

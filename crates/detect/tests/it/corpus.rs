//! The starter rules over the whole real corpus: no errors, and per rule exactly the
//! matches an independent count finds (each rule's logic rewritten below as plain Rust
//! over `serde_json::Value`), and the same matches as rsigma evaluating every rule on the
//! whole record (the partial parse changes nothing). Then the 50 benchmark rules against
//! rsigma on whole records, over the corpus and generated events: the prefilter and the
//! partial parse change nothing there either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use opentrail_event::{IngestContext, parse_batch};
use serde_json::Value;

use opentrail_detect::{LoadedRules, RuleSet};
use opentrail_generator::{Generator, GeneratorConfig};

use crate::{load_starter_rules, rule_id, starter_dir};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/cloudtrail")
}

fn corpus_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus dir")
        .map(|entry| entry.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.to_string_lossy().into_owned();
        if path.is_dir() {
            corpus_files(&path, out);
        } else if name.ends_with(".json")
            || name.ends_with(".json.gz")
            || name.ends_with(".json.cloudtrail")
        {
            out.push(path);
        }
    }
}

/// Every stored record of the corpus, as `parse_batch` normalises it.
fn corpus_records() -> Option<Vec<String>> {
    let dir = corpus_dir();
    if !dir.is_dir() {
        eprintln!(
            "skipped: the corpus is not at {} (see ../shared/corpus/cloudtrail/README.md)",
            dir.display()
        );
        return None;
    }
    let mut files = Vec::new();
    corpus_files(&dir, &mut files);
    let context = IngestContext {
        account_id: "000000000000".to_owned(),
        region: "us-east-1".to_owned(),
    };
    let mut records = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).expect("read corpus file");
        let batch = parse_batch(&bytes, &context)
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        assert!(batch.failures.is_empty(), "{}", file.display());
        records.extend(batch.records.into_iter().map(|(_, record)| record.json));
    }
    assert!(records.len() > 33_000, "read {} records", records.len());
    Some(records)
}

/// The values at a dotted path, spreading over arrays as Sigma field paths do.
fn values<'v>(value: &'v Value, path: &str) -> Vec<&'v Value> {
    let mut current = vec![value];
    for key in path.split('.') {
        let mut next = Vec::new();
        let mut pending = current;
        while let Some(value) = pending.pop() {
            match value {
                Value::Object(map) => next.extend(map.get(key)),
                Value::Array(items) => pending.extend(items),
                _ => {}
            }
        }
        current = next;
    }
    current
        .into_iter()
        .flat_map(|value| match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        })
        .collect()
}

fn text<'v>(record: &'v Value, path: &str) -> Option<&'v str> {
    values(record, path).into_iter().find_map(Value::as_str)
}

/// Sigma's default string equality: case-insensitive.
fn is(record: &Value, path: &str, expected: &str) -> bool {
    text(record, path).is_some_and(|actual| actual.eq_ignore_ascii_case(expected))
}

fn failed(record: &Value) -> bool {
    record.get("errorCode").is_some_and(|code| !code.is_null())
}

fn call(record: &Value, source: &str, names: &[&str]) -> bool {
    is(record, "eventSource", source) && names.iter().any(|name| is(record, "eventName", name))
}

/// One starter rule's logic, written out by hand.
type Rewrite = fn(&Value) -> bool;

/// Each starter rule (by file name), written out by hand.
fn independent_rules() -> Vec<(&'static str, Rewrite)> {
    vec![
        ("dynamodb_table_deleted", |r| {
            call(r, "dynamodb.amazonaws.com", &["DeleteTable"]) && !failed(r)
        }),
        ("s3_bucket_deleted", |r| {
            call(r, "s3.amazonaws.com", &["DeleteBucket"]) && !failed(r)
        }),
        ("cloudtrail_logging_stopped", |r| {
            call(
                r,
                "cloudtrail.amazonaws.com",
                &["StopLogging", "DeleteTrail"],
            )
        }),
        ("root_console_login", |r| {
            call(r, "signin.amazonaws.com", &["ConsoleLogin"])
                && is(r, "userIdentity.type", "Root")
                && is(r, "responseElements.ConsoleLogin", "Success")
        }),
        ("console_login_without_mfa", |r| {
            call(r, "signin.amazonaws.com", &["ConsoleLogin"])
                && is(r, "additionalEventData.MFAUsed", "No")
                && is(r, "responseElements.ConsoleLogin", "Success")
                && (is(r, "userIdentity.type", "IAMUser") || is(r, "userIdentity.type", "Root"))
        }),
        ("access_key_created_for_another_user", |r| {
            let target = text(r, "requestParameters.userName");
            let caller = text(r, "userIdentity.userName");
            call(r, "iam.amazonaws.com", &["CreateAccessKey"])
                && !failed(r)
                && target.is_some_and(|target| {
                    caller.is_none_or(|caller| target.to_lowercase() != caller.to_lowercase())
                })
        }),
        ("security_group_open_to_world", |r| {
            let open = |path: &str| {
                values(r, path)
                    .into_iter()
                    .filter_map(Value::as_str)
                    .any(|cidr| cidr.ends_with("/0"))
            };
            call(r, "ec2.amazonaws.com", &["AuthorizeSecurityGroupIngress"])
                && !failed(r)
                && (open("requestParameters.cidrIp")
                    || open("requestParameters.ipPermissions.items.ipRanges.items.cidrIp")
                    || open("requestParameters.ipPermissions.items.ipv6Ranges.items.cidrIpv6"))
        }),
    ]
}

/// The ids of the rules `rules` fires on `json`, checked equal to rsigma's answer with
/// every rule evaluated on the whole record; and the record.
fn fired_as_rsigma_on_the_whole_record(
    rules: &RuleSet,
    reference: &rsigma_eval::Engine,
    json: &str,
) -> (Value, BTreeSet<String>) {
    let value: Value = serde_json::from_str(json).expect("records are JSON");
    let fired: BTreeSet<String> = rules
        .matches(json)
        .unwrap_or_else(|error| panic!("{error}: {json}"))
        .into_iter()
        .map(|matched| matched.rule_id)
        .collect();
    let whole: BTreeSet<String> = reference
        .evaluate(&rsigma_eval::JsonEvent::borrow(&value))
        .into_iter()
        .filter_map(|result| result.header.rule_id)
        .collect();
    assert_eq!(
        fired, whole,
        "the prefilter or the partial parse differs on {json}"
    );
    (value, fired)
}

#[test]
fn starter_rules_over_the_corpus_match_an_independent_count() {
    let Some(records) = corpus_records() else {
        return;
    };
    let rules = load_starter_rules();
    let independent = independent_rules();
    assert_eq!(
        independent.len(),
        rules.len(),
        "one rewrite per starter rule"
    );

    // rsigma on its own, every rule against the whole record: the reference for the
    // partial parse.
    let mut reference = rsigma_eval::Engine::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(starter_dir())
        .expect("rules")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    for file in files {
        let collection = rsigma_parser::parse_sigma_file(&file).expect("parses");
        reference.add_collection(&collection).expect("compiles");
    }

    let mut counted: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for json in &records {
        let (value, fired) = fired_as_rsigma_on_the_whole_record(&rules, &reference, json);
        for (stem, rule) in &independent {
            let entry = counted.entry(stem).or_default();
            entry.0 += usize::from(fired.contains(&rule_id(&rules, stem)));
            entry.1 += usize::from(rule(&value));
        }
    }
    eprintln!("{} records; matches per starter rule:", records.len());
    for (stem, (by_rules, by_hand)) in &counted {
        eprintln!("  {stem}: {by_rules}");
        assert_eq!(by_rules, by_hand, "{stem}: rule set vs independent count");
    }
    let total: usize = counted.values().map(|(by_rules, _)| by_rules).sum();
    assert!(
        total > 20,
        "the corpus exercises the rules ({total} matches)"
    );
}

/// The 43 rules the benchmark adds to the starter rules, in the style of SigmaHQ's: more
/// fields and modifiers than the starter rules (`contains`, `startswith`, `1 of`, `not 1
/// of filter_*`, rules without any `eventName`).
const BENCH_RULES: &str = include_str!("../../../bench/rules/bench-rules.yml");

#[test]
fn benchmark_rules_answer_as_rsigma_on_whole_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bench-rules.yml"), BENCH_RULES).expect("write rules");
    for entry in std::fs::read_dir(starter_dir()).expect("starter rules") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    let LoadedRules { rules, refused, .. } = RuleSet::load_dir(dir.path()).expect("loads");
    assert!(refused.is_empty(), "{refused:#?}");
    assert_eq!(rules.len(), 50);
    let mut reference = rsigma_eval::Engine::new();
    for entry in std::fs::read_dir(dir.path()).expect("rules dir") {
        let collection =
            rsigma_parser::parse_sigma_file(&entry.expect("entry").path()).expect("parses");
        reference.add_collection(&collection).expect("compiles");
    }

    let mut records = corpus_records().unwrap_or_default();
    let mut generator = Generator::new(GeneratorConfig::new(7, 50_000));
    let mut text = String::new();
    while generator.next_into(&mut text).is_some() {
        records.push(std::mem::take(&mut text));
    }
    let mut fired_total = 0;
    for json in &records {
        let (_, fired) = fired_as_rsigma_on_the_whole_record(&rules, &reference, json);
        fired_total += fired.len();
    }
    assert!(
        fired_total > 100,
        "the records exercise the rules ({fired_total} matches over {} records)",
        records.len()
    );
}

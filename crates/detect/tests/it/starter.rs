//! Each starter rule fires on an event written for it, and not on a similar one.

use std::collections::BTreeSet;
use std::path::Path;

use opentrail_detect::{Level, Status};
use opentrail_event::{EventRecord, IngestContext};

use crate::{load_starter_rules, rule_id};

/// Each fixture under `tests/fixtures/events/` and the starter rules (by file name) it
/// fires. Named `<rule>.fires….json` or `<rule>.quiet….json`.
const CASES: &[(&str, &[&str])] = &[
    ("dynamodb_table_deleted.fires", &["dynamodb_table_deleted"]),
    ("dynamodb_table_deleted.quiet", &[]),
    ("s3_bucket_deleted.fires", &["s3_bucket_deleted"]),
    ("s3_bucket_deleted.quiet", &[]),
    (
        "cloudtrail_logging_stopped.fires",
        &["cloudtrail_logging_stopped"],
    ),
    ("cloudtrail_logging_stopped.quiet", &[]),
    ("root_console_login.fires", &["root_console_login"]),
    ("root_console_login.quiet", &[]),
    (
        "console_login_without_mfa.fires",
        &["console_login_without_mfa"],
    ),
    ("console_login_without_mfa.quiet", &[]),
    ("console_login_without_mfa.quiet-federated", &[]),
    (
        "access_key_created_for_another_user.fires",
        &["access_key_created_for_another_user"],
    ),
    ("access_key_created_for_another_user.quiet", &[]),
    ("access_key_created_for_another_user.quiet-own-key", &[]),
    (
        "security_group_open_to_world.fires",
        &["security_group_open_to_world"],
    ),
    (
        "security_group_open_to_world.fires-ipv6",
        &["security_group_open_to_world"],
    ),
    (
        "security_group_open_to_world.fires-flat",
        &["security_group_open_to_world"],
    ),
    ("security_group_open_to_world.quiet", &[]),
];

fn fixtures_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events"
    ))
}

#[test]
fn every_starter_rule_loads_with_its_metadata() {
    let rules = load_starter_rules();
    assert_eq!(rules.len(), 7, "{:#?}", rules.rules());
    for rule in rules.rules() {
        assert_eq!(rule.id.len(), 36, "{}: id is a UUID", rule.title);
        assert!(rule.level >= Some(Level::Medium), "{}", rule.title);
        assert_eq!(rule.status, Some(Status::Experimental), "{}", rule.title);
        let text = std::fs::read_to_string(&rule.source).expect("rule file");
        for key in [
            "description:",
            "falsepositives:",
            "logsource:",
            "detection:",
        ] {
            assert!(text.contains(key), "{} lacks {key}", rule.source.display());
        }
    }
    let ids: BTreeSet<&str> = rules.rules().iter().map(|rule| rule.id.as_str()).collect();
    assert_eq!(ids.len(), 7, "ids are unique");
}

#[test]
fn each_starter_rule_fires_on_its_event_and_not_on_a_similar_one() {
    let rules = load_starter_rules();
    let context = IngestContext {
        account_id: "111122223333".to_owned(),
        region: "us-east-1".to_owned(),
    };
    for (fixture, expected) in CASES {
        let text = std::fs::read_to_string(fixtures_dir().join(format!("{fixture}.json")))
            .expect("fixture");
        // Matched as stored: validated and normalised like any ingested record.
        let record = EventRecord::from_json_object(&text, &context)
            .unwrap_or_else(|error| panic!("{fixture} is not a valid record: {error}"));
        let fired: BTreeSet<String> = rules
            .matches(&record.json)
            .expect("matches")
            .into_iter()
            .map(|matched| matched.rule_id)
            .collect();
        let expected: BTreeSet<String> =
            expected.iter().map(|stem| rule_id(&rules, stem)).collect();
        assert_eq!(fired, expected, "{fixture}");
    }

    // Every fixture is in the table, and every rule has an event that fires it and one
    // that must not.
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures")
        .map(|entry| {
            let name = entry.expect("entry").file_name();
            let name = name.to_string_lossy();
            name.strip_suffix(".json").expect("json fixture").to_owned()
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CASES.iter().map(|(name, _)| (*name).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    for rule in rules.rules() {
        let stem = rule
            .source
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem");
        for kind in ["fires", "quiet"] {
            assert!(
                CASES
                    .iter()
                    .any(|(name, _)| name.starts_with(&format!("{stem}.{kind}"))),
                "{stem} has no {kind} event"
            );
        }
    }
}

#[test]
fn a_match_names_the_rule_title_and_level() {
    let rules = load_starter_rules();
    let text = std::fs::read_to_string(fixtures_dir().join("root_console_login.fires.json"))
        .expect("fixture");
    let matches = rules.matches(&text).expect("matches");
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].rule_title, "Root user console login");
    assert_eq!(matches[0].level, Some(Level::High));
    assert_eq!(
        serde_json::to_value(&matches[0]).expect("json")["ruleId"],
        rule_id(&rules, "root_console_login")
    );
}

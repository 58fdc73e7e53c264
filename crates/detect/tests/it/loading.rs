//! How rule files load, are refused (with file and line) or skipped, and how single texts
//! and bad records are answered.

use std::path::Path;

use opentrail_detect::{DetectError, RuleRefusal, RuleSet};

const GOOD: &str = "\
title: Bucket deleted
id: 00000000-0000-4000-8000-000000000001
status: test
level: low
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: DeleteBucket
    condition: selection
";

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write rule");
}

fn with_id(text: &str, id: &str) -> String {
    text.replace("00000000-0000-4000-8000-000000000001", id)
}

/// The refusals of one file, by file name.
fn refusals_of<'r>(refused: &'r [RuleRefusal], name: &str) -> Vec<&'r RuleRefusal> {
    refused
        .iter()
        .filter(|refusal| refusal.source.file_name().and_then(|n| n.to_str()) == Some(name))
        .collect()
}

#[test]
fn bad_files_are_refused_with_file_and_line_and_the_rest_still_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "good.yml", GOOD);
    write(
        root,
        "nested/also_good.yaml",
        &with_id(GOOD, "00000000-0000-4000-8000-000000000002"),
    );
    // Broken YAML: the mapping under `selection` is badly indented (line 10).
    write(
        root,
        "broken_yaml.yml",
        &with_id(GOOD, "00000000-0000-4000-8000-000000000003").replace(
            "        eventName: DeleteBucket\n",
            "        eventName: DeleteBucket\n      eventSource: s3\n",
        ),
    );
    write(
        root,
        "unknown_modifier.yml",
        &with_id(GOOD, "00000000-0000-4000-8000-000000000004")
            .replace("eventName:", "eventName|sounds_like:"),
    );
    write(
        root,
        "missing_selection.yml",
        &with_id(GOOD, "00000000-0000-4000-8000-000000000005").replace(
            "condition: selection",
            "condition: selection and not filter",
        ),
    );
    write(
        root,
        "aggregation.yml",
        &with_id(GOOD, "00000000-0000-4000-8000-000000000006").replace(
            "condition: selection",
            "condition: selection | count() by userIdentity.arn > 5",
        ),
    );
    write(
        root,
        "bad_regex.yml",
        &with_id(GOOD, "00000000-0000-4000-8000-000000000007")
            .replace("eventName: DeleteBucket", "eventName|re: 'Delete(Bucket'"),
    );
    write(
        root,
        "no_id.yml",
        &GOOD.replace("id: 00000000-0000-4000-8000-000000000001\n", ""),
    );
    write(root, "z_duplicate_id.yml", GOOD);
    write(
        root,
        "correlation.yml",
        &format!(
            "{}---\ntitle: Many deleted buckets\nid: 00000000-0000-4000-8000-000000000009\n\
             correlation:\n    type: event_count\n    rules:\n        - \
             00000000-0000-4000-8000-000000000008\n    group-by:\n        - userIdentity.arn\n    \
             timespan: 10m\n    condition:\n        gte: 5\nlevel: high\n",
            with_id(GOOD, "00000000-0000-4000-8000-000000000008")
        ),
    );
    write(
        root,
        "windows.yml",
        "title: Whoami\nid: 00000000-0000-4000-8000-00000000000a\nlogsource:\n    product: \
         windows\n    category: process_creation\ndetection:\n    selection:\n        \
         CommandLine|contains: whoami\n    condition: selection\n",
    );
    write(root, "empty.yml", "# nothing yet\n");
    write(root, ".hidden.yml", "not: [yaml");
    write(root, "notes.txt", "not a rule");

    let loaded = RuleSet::load_dir(root).expect("loads");
    let titles: Vec<&str> = loaded
        .rules
        .rules()
        .iter()
        .map(|rule| {
            rule.source
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        titles,
        ["good.yml", "also_good.yaml"],
        "{:#?}",
        loaded.refused
    );
    assert_eq!(loaded.skipped, [root.join("windows.yml")]);

    let one = |name: &str| -> &RuleRefusal {
        let found = refusals_of(&loaded.refused, name);
        assert_eq!(found.len(), 1, "{name}: {found:#?}");
        found[0]
    };
    for refusal in &loaded.refused {
        // Every refusal names its file; printed, as `file:line: …`, on one line.
        assert!(!refusal.reason.contains('\n'), "{refusal}");
        assert!(
            refusal
                .to_string()
                .starts_with(&refusal.source.display().to_string())
        );
    }
    let broken = one("broken_yaml.yml");
    assert_eq!(broken.line, Some(11), "{broken}");
    assert!(broken.reason.contains("YAML"), "{broken}");

    let modifier = one("unknown_modifier.yml");
    assert_eq!(modifier.line, Some(10), "{modifier}");
    assert!(modifier.reason.contains("sounds_like"), "{modifier}");

    let missing = one("missing_selection.yml");
    assert_eq!(missing.line, Some(11), "{missing}");
    assert!(missing.reason.contains("filter"), "{missing}");

    let aggregation = one("aggregation.yml");
    assert_eq!(aggregation.line, Some(11), "{aggregation}");
    assert!(aggregation.reason.contains("aggregations"), "{aggregation}");

    let regex = one("bad_regex.yml");
    assert_eq!(regex.line, Some(10), "{regex}");
    assert!(regex.reason.contains("regex"), "{regex}");

    let no_id = one("no_id.yml");
    assert_eq!(no_id.line, Some(1), "{no_id}");
    assert!(no_id.reason.contains("no `id`"), "{no_id}");

    let duplicate = one("z_duplicate_id.yml");
    assert!(duplicate.reason.contains("good.yml"), "{duplicate}");

    // The correlation is refused, and with it the detection rule in the same file.
    let correlation = one("correlation.yml");
    assert_eq!(correlation.line, Some(13), "{correlation}");
    assert_eq!(
        correlation.rule_title.as_deref(),
        Some("Many deleted buckets")
    );
    assert!(correlation.reason.contains("correlation"), "{correlation}");

    let empty = one("empty.yml");
    assert!(empty.reason.contains("not a YAML mapping"), "{empty}");
    assert!(refusals_of(&loaded.refused, ".hidden.yml").is_empty());
}

#[test]
fn refused_features_are_named_in_the_refusal() {
    let cases = [
        (
            "timeframe",
            "    timeframe: 5m\n    condition: selection\n",
            "timeframe",
            11,
        ),
        ("expand", "    condition: selection\n", "expand", 10),
    ];
    for (name, condition, reason, line) in cases {
        let mut text = GOOD.replace("    condition: selection\n", condition);
        if name == "expand" {
            text = text.replace("eventName:", "eventName|expand:");
        }
        let Err(DetectError::Refused(refusals)) = RuleSet::from_yaml("rule.yml", &text) else {
            panic!("{name} was accepted");
        };
        assert_eq!(refusals.len(), 1, "{refusals:#?}");
        assert!(refusals[0].reason.contains(reason), "{}", refusals[0]);
        assert_eq!(refusals[0].line, Some(line), "{}", refusals[0]);
        assert_eq!(refusals[0].source, Path::new("rule.yml"));
    }

    let filter = "title: Not my bucket\nfilter:\n    rules:\n        - \
                  00000000-0000-4000-8000-000000000001\n    selection:\n        \
                  userIdentity.userName: ci\n    condition: not selection\nlogsource:\n    \
                  product: aws\n    service: cloudtrail\n";
    let Err(DetectError::Refused(refusals)) = RuleSet::from_yaml("filter.yml", filter) else {
        panic!("the filter was accepted");
    };
    assert!(refusals[0].reason.contains("filter"), "{}", refusals[0]);
}

#[test]
fn one_text_loads_whole_or_not_at_all() {
    let rules = RuleSet::from_yaml("api", GOOD).expect("loads");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules.rules()[0].source, Path::new("api"));
    assert_eq!(rules.rules()[0].title, "Bucket deleted");

    let windows = GOOD.replace("product: aws", "product: windows");
    let Err(error) = RuleSet::from_yaml("api", &windows) else {
        panic!("a rule for another log source was accepted");
    };
    assert!(error.to_string().contains("logsource"), "{error}");

    let two = format!("{GOOD}---\n{GOOD}");
    let Err(error) = RuleSet::from_yaml("api", &two) else {
        panic!("two rules with one id were accepted");
    };
    assert!(error.to_string().contains("used twice"), "{error}");
}

#[test]
fn matching_parses_records_and_refuses_what_is_not_one() {
    let rules = RuleSet::from_yaml("api", GOOD).expect("loads");
    let fired = rules
        .matches(r#"{"eventName":"deletebucket","eventTime":"2026-01-01T00:00:00Z"}"#)
        .expect("matches");
    assert_eq!(fired.len(), 1, "Sigma strings match case-insensitively");
    assert!(
        rules
            .matches(r#"{"eventName":"PutObject"}"#)
            .expect("matches")
            .is_empty()
    );
    for bad in ["", "[]", "{\"eventName\":", "{} {}"] {
        assert!(
            matches!(rules.matches(bad), Err(DetectError::InvalidRecord(_))),
            "{bad:?}"
        );
    }
    assert!(RuleSet::empty().matches("{}").expect("matches").is_empty());
}

#[test]
fn a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("absent");
    let error = RuleSet::load_dir(&missing).expect_err("absent");
    assert!(error.to_string().contains("absent"), "{error}");
}

#[test]
fn keywords_search_the_whole_record_and_modifiers_work_on_nested_fields() {
    let text = "\
title: Known bad
id: 00000000-0000-4000-8000-0000000000aa
logsource: {product: aws, service: cloudtrail}
detection:
    keywords:
        - 'evil-bucket'
    condition: keywords
---
title: From a private network with a tool
id: 00000000-0000-4000-8000-0000000000ab
logsource: {product: aws, service: cloudtrail}
detection:
    network:
        sourceIPAddress|cidr: 10.0.0.0/8
    tool_1:
        userAgent|re: '^(Boto3|aws-cli)/'
    tool_2:
        userAgent|startswith: 'terraform'
    condition: network and 1 of tool_*
";
    let rules = RuleSet::from_yaml("api", text).expect("loads");
    let fired = |record: &str| -> Vec<String> {
        rules
            .matches(record)
            .expect("matches")
            .into_iter()
            .map(|matched| matched.rule_title)
            .collect()
    };
    assert_eq!(
        fired(r#"{"requestParameters":{"items":[{"bucketName":"evil-bucket"}]}}"#),
        ["Known bad"]
    );
    assert_eq!(
        fired(r#"{"sourceIPAddress":"10.1.2.3","userAgent":"aws-cli/2.15.30"}"#),
        ["From a private network with a tool"]
    );
    assert!(fired(r#"{"sourceIPAddress":"192.0.2.1","userAgent":"aws-cli/2.15.30"}"#).is_empty());
    assert!(fired(r#"{"sourceIPAddress":"10.1.2.3","userAgent":"curl/8.0"}"#).is_empty());
}

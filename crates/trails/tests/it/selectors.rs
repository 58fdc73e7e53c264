//! Basic and advanced selectors, every operator, and a trail's scope.

use opentrail_trails::model::{
    AdvancedSelector, BasicSelector, DataResource, EventSelectors, FieldSelector, ReadWriteType,
};
use opentrail_trails::selectors::{Decision, EventView, TrailFilter, selectors_admit};
use serde_json::{Value, json};

use crate::support::{ACCOUNT, OTHER_ACCOUNT, record, trail};

fn admits(selectors: &EventSelectors, event: &Value) -> bool {
    let text = event.to_string();
    let view = EventView::parse(&text).expect("parses");
    selectors_admit(selectors, &view)
}

fn basic(read_write_type: ReadWriteType, management: bool) -> BasicSelector {
    BasicSelector {
        read_write_type,
        include_management_events: management,
        data_resources: Vec::new(),
        exclude_management_event_sources: Vec::new(),
    }
}

fn s3_data_event(key_arn: &str, read_only: bool) -> Value {
    record(
        if read_only { "GetObject" } else { "PutObject" },
        json!({
            "eventSource": "s3.amazonaws.com",
            "eventCategory": "Data",
            "managementEvent": false,
            "readOnly": read_only,
            "resources": [
                {"type": "AWS::S3::Object", "ARN": key_arn},
                {"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::bucket-a"}
            ]
        }),
    )
}

#[test]
fn default_selectors_log_all_management_events_and_no_data_events() {
    let selectors = EventSelectors::Default;
    assert!(admits(&selectors, &record("RunInstances", json!({}))));
    assert!(admits(
        &selectors,
        &record("DescribeInstances", json!({"readOnly": true}))
    ));
    assert!(!admits(
        &selectors,
        &s3_data_event("arn:aws:s3:::bucket-a/k", true)
    ));
    assert!(!admits(
        &selectors,
        &record("x", json!({"eventCategory": "Insight"}))
    ));
    assert!(!admits(
        &selectors,
        &record("x", json!({"eventCategory": "NetworkActivity"}))
    ));
}

#[test]
fn basic_read_write_type_and_management_switch() {
    let read = record("DescribeInstances", json!({"readOnly": true}));
    let write = record("RunInstances", json!({"readOnly": false}));
    let read_only = EventSelectors::Basic(vec![basic(ReadWriteType::ReadOnly, true)]);
    assert!(admits(&read_only, &read));
    assert!(!admits(&read_only, &write));
    let write_only = EventSelectors::Basic(vec![basic(ReadWriteType::WriteOnly, true)]);
    assert!(!admits(&write_only, &read));
    assert!(admits(&write_only, &write));
    let no_management = EventSelectors::Basic(vec![basic(ReadWriteType::All, false)]);
    assert!(!admits(&no_management, &read));
    assert!(!admits(&no_management, &write));
    // Any selector admitting is enough.
    let either = EventSelectors::Basic(vec![
        basic(ReadWriteType::ReadOnly, true),
        basic(ReadWriteType::WriteOnly, true),
    ]);
    assert!(admits(&either, &read) && admits(&either, &write));
}

#[test]
fn basic_exclude_management_event_sources() {
    let mut selector = basic(ReadWriteType::All, true);
    selector.exclude_management_event_sources = vec!["kms.amazonaws.com".to_owned()];
    let selectors = EventSelectors::Basic(vec![selector]);
    assert!(!admits(
        &selectors,
        &record("Decrypt", json!({"eventSource": "kms.amazonaws.com"}))
    ));
    assert!(admits(&selectors, &record("RunInstances", json!({}))));
}

#[test]
fn basic_data_resources_match_by_type_and_arn_prefix() {
    let with_values = |values: &[&str]| {
        let mut selector = basic(ReadWriteType::All, false);
        selector.data_resources = vec![DataResource {
            resource_type: "AWS::S3::Object".to_owned(),
            values: values.iter().map(|value| value.to_string()).collect(),
        }];
        EventSelectors::Basic(vec![selector])
    };
    let event = s3_data_event("arn:aws:s3:::bucket-a/images/cat.png", false);
    assert!(admits(&with_values(&["arn:aws:s3"]), &event));
    assert!(admits(&with_values(&["arn:aws:s3:::bucket-a/"]), &event));
    assert!(admits(
        &with_values(&["arn:aws:s3:::bucket-a/images"]),
        &event
    ));
    assert!(!admits(&with_values(&["arn:aws:s3:::bucket-b/"]), &event));
    // The type must match too.
    let mut lambda = basic(ReadWriteType::All, false);
    lambda.data_resources = vec![DataResource {
        resource_type: "AWS::Lambda::Function".to_owned(),
        values: vec!["arn:aws".to_owned()],
    }];
    assert!(!admits(&EventSelectors::Basic(vec![lambda]), &event));
    // ReadWriteType applies to data events.
    let mut read_only = basic(ReadWriteType::ReadOnly, false);
    read_only.data_resources = vec![DataResource {
        resource_type: "AWS::S3::Object".to_owned(),
        values: vec!["arn:aws:s3".to_owned()],
    }];
    let read_only = EventSelectors::Basic(vec![read_only]);
    assert!(!admits(&read_only, &event));
    assert!(admits(
        &read_only,
        &s3_data_event("arn:aws:s3:::bucket-a/x", true)
    ));
}

fn field(name: &str) -> FieldSelector {
    FieldSelector {
        field: name.to_owned(),
        ..FieldSelector::default()
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| value.to_string()).collect()
}

fn advanced(field_selectors: Vec<FieldSelector>) -> EventSelectors {
    EventSelectors::Advanced(vec![AdvancedSelector {
        name: Some("test".to_owned()),
        field_selectors,
    }])
}

fn management() -> FieldSelector {
    FieldSelector {
        equals: strings(&["Management"]),
        ..field("eventCategory")
    }
}

#[test]
fn advanced_every_operator() {
    let run = record("RunInstances", json!({}));
    let terminate = record("TerminateInstances", json!({}));
    let describe = record("DescribeInstances", json!({"readOnly": true}));
    type Case = (FieldSelector, [bool; 3]);
    let cases: Vec<Case> = vec![
        (
            FieldSelector {
                equals: strings(&["RunInstances"]),
                ..field("eventName")
            },
            [true, false, false],
        ),
        (
            FieldSelector {
                starts_with: strings(&["Run", "Desc"]),
                ..field("eventName")
            },
            [true, false, true],
        ),
        (
            FieldSelector {
                ends_with: strings(&["eInstances"]),
                ..field("eventName")
            },
            [false, true, true],
        ),
        (
            FieldSelector {
                not_equals: strings(&["RunInstances"]),
                ..field("eventName")
            },
            [false, true, true],
        ),
        (
            FieldSelector {
                not_starts_with: strings(&["Terminate"]),
                ..field("eventName")
            },
            [true, false, true],
        ),
        (
            FieldSelector {
                not_ends_with: strings(&["nInstances"]),
                ..field("eventName")
            },
            [false, true, true],
        ),
        // Positive and negative operators together: a positive one must match and no
        // negative one may.
        (
            FieldSelector {
                ends_with: strings(&["Instances"]),
                not_starts_with: strings(&["Describe"]),
                ..field("eventName")
            },
            [true, true, false],
        ),
        (
            FieldSelector {
                equals: strings(&["true"]),
                ..field("readOnly")
            },
            [false, false, true],
        ),
        (
            FieldSelector {
                equals: strings(&["false"]),
                ..field("readOnly")
            },
            [true, true, false],
        ),
    ];
    for (index, (field_selector, expected)) in cases.into_iter().enumerate() {
        let selectors = advanced(vec![management(), field_selector]);
        let got = [
            admits(&selectors, &run),
            admits(&selectors, &terminate),
            admits(&selectors, &describe),
        ];
        assert_eq!(got, expected, "case {index}");
    }
}

#[test]
fn advanced_selectors_and_within_or_across() {
    let run = record("RunInstances", json!({}));
    let kms = record(
        "Decrypt",
        json!({"eventSource": "kms.amazonaws.com", "readOnly": true}),
    );
    // Within a selector every field selector must match.
    let both = advanced(vec![
        management(),
        FieldSelector {
            equals: strings(&["ec2.amazonaws.com"]),
            ..field("eventSource")
        },
        FieldSelector {
            equals: strings(&["Decrypt"]),
            ..field("eventName")
        },
    ]);
    assert!(!admits(&both, &run));
    assert!(!admits(&both, &kms));
    // Across selectors one is enough.
    let either = EventSelectors::Advanced(vec![
        AdvancedSelector {
            name: None,
            field_selectors: vec![
                management(),
                FieldSelector {
                    equals: strings(&["RunInstances"]),
                    ..field("eventName")
                },
            ],
        },
        AdvancedSelector {
            name: None,
            field_selectors: vec![
                management(),
                FieldSelector {
                    equals: strings(&["kms.amazonaws.com"]),
                    ..field("eventSource")
                },
            ],
        },
    ]);
    assert!(admits(&either, &run));
    assert!(admits(&either, &kms));
    // eventCategory gates: a management selector never admits a data event.
    assert!(!admits(
        &either,
        &s3_data_event("arn:aws:s3:::bucket-a/k", true)
    ));
}

#[test]
fn advanced_data_event_fields() {
    let selectors = advanced(vec![
        FieldSelector {
            equals: strings(&["Data"]),
            ..field("eventCategory")
        },
        FieldSelector {
            equals: strings(&["AWS::S3::Object"]),
            ..field("resources.type")
        },
        FieldSelector {
            starts_with: strings(&["arn:aws:s3:::bucket-a/"]),
            ..field("resources.ARN")
        },
        FieldSelector {
            not_equals: strings(&["GetObject"]),
            ..field("eventName")
        },
    ]);
    assert!(admits(
        &selectors,
        &s3_data_event("arn:aws:s3:::bucket-a/k", false)
    ));
    assert!(!admits(
        &selectors,
        &s3_data_event("arn:aws:s3:::bucket-a/k", true)
    ));
    assert!(!admits(
        &selectors,
        &s3_data_event("arn:aws:s3:::bucket-b/k", false)
    ));
    assert!(!admits(&selectors, &record("RunInstances", json!({}))));
}

#[test]
fn advanced_absent_fields_fail_positive_and_pass_negative_operators() {
    let without_error = record("RunInstances", json!({}));
    let with_error = record("RunInstances", json!({"errorCode": "AccessDenied"}));
    let has_error = advanced(vec![
        management(),
        FieldSelector {
            starts_with: strings(&["Access"]),
            ..field("errorCode")
        },
    ]);
    assert!(!admits(&has_error, &without_error));
    assert!(admits(&has_error, &with_error));
    let not_denied = advanced(vec![
        management(),
        FieldSelector {
            not_equals: strings(&["AccessDenied"]),
            ..field("errorCode")
        },
    ]);
    assert!(admits(&not_denied, &without_error));
    assert!(!admits(&not_denied, &with_error));
    let by_user = advanced(vec![
        management(),
        FieldSelector {
            ends_with: strings(&["user/alice"]),
            ..field("userIdentity.arn")
        },
    ]);
    assert!(admits(&by_user, &without_error));
    let console = advanced(vec![
        management(),
        FieldSelector {
            equals: strings(&["true"]),
            ..field("sessionCredentialFromConsole")
        },
    ]);
    assert!(!admits(&console, &without_error));
    assert!(admits(
        &console,
        &record("x", json!({"sessionCredentialFromConsole": "true"}))
    ));
    let vpce = advanced(vec![
        management(),
        FieldSelector {
            starts_with: strings(&["vpce-"]),
            ..field("vpcEndpointId")
        },
    ]);
    assert!(admits(
        &vpce,
        &record("x", json!({"vpcEndpointId": "vpce-123"}))
    ));
    let event_type = advanced(vec![
        management(),
        FieldSelector {
            equals: strings(&["AwsConsoleSignIn"]),
            ..field("eventType")
        },
    ]);
    assert!(admits(
        &event_type,
        &record("ConsoleLogin", json!({"eventType": "AwsConsoleSignIn"}))
    ));
    assert!(!admits(&event_type, &without_error));
}

#[test]
fn trail_scope_accounts_regions_global_services_and_logging_periods() {
    let decide =
        |trail: &opentrail_trails::Trail, default_account: &str, seq: u64, event: &Value| {
            TrailFilter::new(trail, default_account).decide(seq, &event.to_string())
        };
    let mut single_region = trail("scope", EventSelectors::Default, Some(10));
    single_region.settings.is_multi_region_trail = false;
    let here = record("RunInstances", json!({}));
    let elsewhere = record("RunInstances", json!({"awsRegion": "eu-west-1"}));
    let other_account = record("RunInstances", json!({"recipientAccountId": OTHER_ACCOUNT}));
    assert_eq!(
        decide(&single_region, ACCOUNT, 11, &here),
        Decision::Deliver {
            account_id: ACCOUNT.to_owned(),
            region: "us-east-1".to_owned()
        }
    );
    assert_eq!(
        decide(&single_region, ACCOUNT, 11, &elsewhere),
        Decision::Skip
    );
    // Before the logging period: skipped whatever the event.
    assert_eq!(decide(&single_region, ACCOUNT, 10, &here), Decision::Skip);
    // A trail of the default account delivers every account, each in its own stream.
    assert_eq!(
        decide(&single_region, ACCOUNT, 11, &other_account),
        Decision::Deliver {
            account_id: OTHER_ACCOUNT.to_owned(),
            region: "us-east-1".to_owned()
        }
    );
    // Another account's trail delivers only its own account.
    assert_eq!(
        decide(&single_region, "999999999999", 11, &other_account),
        Decision::Skip
    );
    // Multi-region trails deliver every region.
    let multi = trail("scope-multi", EventSelectors::Default, Some(10));
    assert!(matches!(
        decide(&multi, ACCOUNT, 11, &elsewhere),
        Decision::Deliver { .. }
    ));
    // Global service events.
    let iam = record("CreateUser", json!({"eventSource": "iam.amazonaws.com"}));
    assert!(matches!(
        decide(&multi, ACCOUNT, 11, &iam),
        Decision::Deliver { .. }
    ));
    let mut no_global = multi.clone();
    no_global.settings.include_global_service_events = false;
    assert_eq!(decide(&no_global, ACCOUNT, 11, &iam), Decision::Skip);
    assert!(matches!(
        decide(&no_global, ACCOUNT, 11, &here),
        Decision::Deliver { .. }
    ));
}

//! How many records per second `RuleSet::matches` judges, on one thread, over the real
//! corpus: with the starter rules, and with 50 rules (the starter rules and 43 generated
//! ones in the same style). Run by hand, in release:
//!
//! ```text
//! cargo run --release -p opentrail-detect --example throughput [CORPUS_DIR]
//! ```
//!
//! For scale it also times the floor (serde_json scanning each record without building
//! anything) and the plain way (a whole `serde_json::Value` per record, then rsigma).
//! Nothing is asserted: timings depend on the machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use opentrail_detect::RuleSet;
use opentrail_event::{IngestContext, parse_batch};

/// Each measurement runs over the corpus this many times; the best pass counts.
const PASSES: usize = 5;

/// Sensitive calls, for the generated rules: (eventSource, eventName).
const CALLS: &[(&str, &str)] = &[
    ("ec2.amazonaws.com", "DeleteFlowLogs"),
    ("ec2.amazonaws.com", "CreateKeyPair"),
    ("ec2.amazonaws.com", "ImportKeyPair"),
    ("ec2.amazonaws.com", "ModifyInstanceAttribute"),
    ("ec2.amazonaws.com", "CreateSnapshot"),
    ("ec2.amazonaws.com", "ModifySnapshotAttribute"),
    ("ec2.amazonaws.com", "DisableEbsEncryptionByDefault"),
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupEgress"),
    ("ec2.amazonaws.com", "CreateVpcPeeringConnection"),
    ("kms.amazonaws.com", "ScheduleKeyDeletion"),
    ("kms.amazonaws.com", "DisableKey"),
    ("kms.amazonaws.com", "PutKeyPolicy"),
    ("s3.amazonaws.com", "PutBucketPolicy"),
    ("s3.amazonaws.com", "PutBucketAcl"),
    ("s3.amazonaws.com", "DeleteBucketPolicy"),
    ("s3.amazonaws.com", "PutBucketVersioning"),
    ("s3.amazonaws.com", "PutBucketLogging"),
    ("s3.amazonaws.com", "PutBucketPublicAccessBlock"),
    ("s3.amazonaws.com", "PutBucketReplication"),
    ("iam.amazonaws.com", "CreateUser"),
    ("iam.amazonaws.com", "CreateLoginProfile"),
    ("iam.amazonaws.com", "UpdateLoginProfile"),
    ("iam.amazonaws.com", "AttachUserPolicy"),
    ("iam.amazonaws.com", "PutUserPolicy"),
    ("iam.amazonaws.com", "AttachRolePolicy"),
    ("iam.amazonaws.com", "UpdateAssumeRolePolicy"),
    ("iam.amazonaws.com", "DeactivateMFADevice"),
    ("iam.amazonaws.com", "DeleteVirtualMFADevice"),
    ("iam.amazonaws.com", "CreatePolicyVersion"),
    ("iam.amazonaws.com", "DeleteSAMLProvider"),
    ("sts.amazonaws.com", "GetFederationToken"),
    ("signin.amazonaws.com", "GetSigninToken"),
    ("guardduty.amazonaws.com", "DeleteDetector"),
    ("config.amazonaws.com", "StopConfigurationRecorder"),
    ("config.amazonaws.com", "DeleteDeliveryChannel"),
    ("cloudtrail.amazonaws.com", "PutEventSelectors"),
    ("cloudtrail.amazonaws.com", "UpdateTrail"),
    ("lambda.amazonaws.com", "CreateFunctionUrlConfig20211031"),
    ("lambda.amazonaws.com", "UpdateFunctionCode20150331v2"),
    ("secretsmanager.amazonaws.com", "GetSecretValue"),
    ("organizations.amazonaws.com", "LeaveOrganization"),
    ("rds.amazonaws.com", "ModifyDBInstance"),
    (
        "route53domains.amazonaws.com",
        "TransferDomainToAnotherAwsAccount",
    ),
];

/// A generated rule; every few rules uses another construct (list, contains, startswith,
/// regex, cidr, `not`), as the public CloudTrail rules do.
fn generated_rule(index: usize, source: &str, name: &str) -> String {
    let extra = match index % 6 {
        0 => "        userAgent|contains:\n            - 'python'\n            - 'curl'\n    \
              condition: selection and not filter\n    filter:\n        errorCode|exists: true\n"
            .to_owned(),
        1 => "        userIdentity.arn|startswith: 'arn:aws:iam::'\n    condition: selection\n"
            .to_owned(),
        2 => "        sourceIPAddress|cidr:\n            - '10.0.0.0/8'\n            - \
              '192.168.0.0/16'\n    condition: selection\n"
            .to_owned(),
        3 => "        userIdentity.type:\n            - IAMUser\n            - Root\n    \
              condition: selection\n"
            .to_owned(),
        4 => "        userAgent|re: '(?i)(boto3|aws-cli)/[0-9]'\n    condition: selection\n"
            .to_owned(),
        _ => "    condition: selection\n".to_owned(),
    };
    format!(
        "title: Generated {index} {name}\nid: 00000000-0000-4000-8000-{index:012}\nlevel: \
         low\nlogsource:\n    product: aws\n    service: cloudtrail\ndetection:\n    \
         selection:\n        eventSource: {source}\n        eventName: {name}\n{extra}"
    )
}

fn corpus_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.to_string_lossy().into_owned();
        if path.is_dir() {
            corpus_files(&path, out)?;
        } else if name.ends_with(".json")
            || name.ends_with(".json.gz")
            || name.ends_with(".json.cloudtrail")
        {
            out.push(path);
        }
    }
    Ok(())
}

fn best_of(
    passes: usize,
    mut pass: impl FnMut() -> anyhow::Result<usize>,
) -> anyhow::Result<(Duration, usize)> {
    let mut best = Duration::MAX;
    let mut matched = 0;
    for _ in 0..passes {
        let started = Instant::now();
        matched = pass()?;
        best = best.min(started.elapsed());
    }
    Ok((best, matched))
}

fn report(label: &str, records: usize, (elapsed, matched): (Duration, usize)) {
    let per_second = records as f64 / elapsed.as_secs_f64();
    let micros = elapsed.as_secs_f64() * 1e6 / records as f64;
    println!(
        "{label:<44} {per_second:>12.0} records/s  {micros:>6.2} µs/record  {matched:>5} matches"
    );
}

fn main() -> anyhow::Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../../shared/corpus/cloudtrail"));
    let mut files = Vec::new();
    corpus_files(&corpus, &mut files).with_context(|| format!("corpus {}", corpus.display()))?;
    let context = IngestContext {
        account_id: "000000000000".to_owned(),
        region: "us-east-1".to_owned(),
    };
    let mut records = Vec::new();
    for file in &files {
        let batch = parse_batch(&std::fs::read(file)?, &context)?;
        records.extend(batch.records.into_iter().map(|(_, record)| record.json));
    }
    let bytes: usize = records.iter().map(String::len).sum();
    println!(
        "{} records ({:.1} MB of JSON, {} bytes each on average), best of {PASSES} passes, one thread",
        records.len(),
        bytes as f64 / 1e6,
        bytes / records.len().max(1)
    );

    let starter = RuleSet::load_dir(&manifest.join("../../rules/cloudtrail"))?;
    anyhow::ensure!(starter.refused.is_empty(), "{:?}", starter.refused);
    let mut fifty_text = String::new();
    for path in starter.rules.rules().iter().map(|rule| &rule.source) {
        fifty_text.push_str(&std::fs::read_to_string(path)?);
        fifty_text.push_str("---\n");
    }
    for (index, (source, name)) in CALLS.iter().enumerate() {
        fifty_text.push_str(&generated_rule(index, source, name));
        fifty_text.push_str("---\n");
    }
    let fifty = RuleSet::from_yaml("fifty", fifty_text.trim_end_matches("---\n"))?;
    anyhow::ensure!(fifty.len() == 50, "{} rules", fifty.len());

    report(
        "floor: serde_json scan (IgnoredAny)",
        records.len(),
        best_of(PASSES, || {
            for record in &records {
                serde_json::from_str::<serde::de::IgnoredAny>(record)?;
            }
            Ok(0)
        })?,
    );
    for (label, rules) in [
        ("RuleSet::matches, 7 starter rules", &starter.rules),
        ("RuleSet::matches, 50 rules", &fifty),
    ] {
        report(
            label,
            records.len(),
            best_of(PASSES, || {
                let mut matched = 0;
                for record in &records {
                    matched += rules.matches(record)?.len();
                }
                Ok(matched)
            })?,
        );
    }

    // The plain way, for comparison: a whole Value per record, then rsigma.
    let mut engine = rsigma_eval::Engine::new();
    engine.add_collection(&rsigma_parser::parse_sigma_yaml(
        fifty_text.trim_end_matches("---\n"),
    )?)?;
    report(
        "whole serde_json::Value + rsigma, 50 rules",
        records.len(),
        best_of(PASSES, || {
            let mut matched = 0;
            for record in &records {
                let value: serde_json::Value = serde_json::from_str(record)?;
                matched += engine
                    .evaluate(&rsigma_eval::JsonEvent::borrow(&value))
                    .len();
            }
            Ok(matched)
        })?,
    );
    Ok(())
}

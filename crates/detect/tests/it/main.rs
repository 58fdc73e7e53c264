//! The starter rules against events written for them and against the real corpus, and how
//! rule files are refused. One test binary for the crate (each extra one relinks).

use std::path::{Path, PathBuf};

use opentrail_detect::{LoadedRules, RuleSet};

mod alerts;
mod api_rules;
mod corpus;
mod loading;
mod starter;
mod targets;

/// The starter rules shipped in the repository.
fn starter_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/cloudtrail")
}

fn load_starter_rules() -> RuleSet {
    let LoadedRules {
        rules,
        refused,
        skipped,
    } = RuleSet::load_dir(&starter_dir()).expect("the starter rules directory is readable");
    assert!(refused.is_empty(), "refused: {refused:#?}");
    assert!(skipped.is_empty(), "skipped: {skipped:?}");
    rules
}

/// A starter rule's id, by its file name without `.yml`.
fn rule_id(rules: &RuleSet, stem: &str) -> String {
    rules
        .rules()
        .iter()
        .find(|rule| rule.source.file_stem().and_then(|s| s.to_str()) == Some(stem))
        .unwrap_or_else(|| panic!("no starter rule file {stem}.yml"))
        .id
        .clone()
}

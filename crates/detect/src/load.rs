//! From rule files to compiled rules: find the files, parse each, sort its documents
//! (detection rules of our log source, other log sources, refused kinds), screen and
//! compile the rules. A file is loaded whole or refused whole, so a half-understood file
//! never runs.

use std::path::{Path, PathBuf};

use rsigma_eval::CompiledRule;
use rsigma_parser::{SigmaRule, parse_sigma_yaml};

use crate::error::{DetectError, RuleRefusal};
use crate::locate;
use crate::screen::{self, CORRELATION_REASON, FILTER_REASON};

const NOT_CLOUDTRAIL: &str = "the rule's logsource is not `product: aws, service: cloudtrail`";

/// A rule ready to join a rule set.
pub(crate) struct Accepted {
    pub parsed: SigmaRule,
    pub compiled: CompiledRule,
    /// The line of its `title:`, for a refusal found later (a duplicate id).
    pub line: Option<u32>,
}

/// What became of one file.
#[derive(Default)]
pub(crate) struct FileOutcome {
    pub accepted: Vec<Accepted>,
    pub refused: Vec<RuleRefusal>,
    /// Rules whose log source is not CloudTrail, each with that as its reason.
    pub skipped: Vec<RuleRefusal>,
}

/// Every `*.yml` and `*.yaml` file under `dir`, in path order. Hidden entries (editor and
/// VCS files) are passed over, and symbolic links to directories are not followed (no
/// loops). A file that cannot be read is a refusal; a directory that cannot be listed
/// below `dir` too.
pub(crate) fn rule_files(
    dir: &Path,
    refused: &mut Vec<RuleRefusal>,
) -> Result<Vec<PathBuf>, DetectError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DetectError::ReadDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    let mut pending = vec![entries];
    while let Some(entries) = pending.pop() {
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    refused.push(unreadable(dir, &error));
                    continue;
                }
            };
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                match std::fs::read_dir(&path) {
                    Ok(inner) => pending.push(inner),
                    Err(error) => refused.push(unreadable(&path, &error)),
                }
            } else if is_rule_file(&path) && std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn is_rule_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|extension| extension.to_str()),
        Some("yml" | "yaml")
    )
}

fn unreadable(path: &Path, error: &std::io::Error) -> RuleRefusal {
    RuleRefusal {
        source: path.to_owned(),
        line: None,
        rule_title: None,
        reason: format!("cannot read: {error}"),
    }
}

/// Reads and examines one file.
pub(crate) fn load_file(path: &Path) -> FileOutcome {
    match std::fs::read_to_string(path) {
        Ok(text) => examine(path, &text),
        Err(error) => FileOutcome {
            refused: vec![unreadable(path, &error)],
            ..FileOutcome::default()
        },
    }
}

/// Parses, sorts, screens and compiles the documents of one file.
pub(crate) fn examine(source: &Path, text: &str) -> FileOutcome {
    let refusal = |line: Option<u32>, rule_title: Option<&str>, reason: String| RuleRefusal {
        source: source.to_owned(),
        line,
        rule_title: rule_title.map(str::to_owned),
        reason,
    };
    let mut outcome = FileOutcome::default();
    let collection = match parse_sigma_yaml(text) {
        Ok(collection) => collection,
        Err(error) => {
            let message = error.to_string();
            let line = locate::parse_error_line(text, &message);
            outcome
                .refused
                .push(refusal(line, None, one_line(&message)));
            return outcome;
        }
    };
    // rsigma does not say which document an error belongs to, so the file is refused.
    for message in &collection.errors {
        let line = locate::parse_error_line(text, message);
        let is_aggregation = message.starts_with("Condition parse error")
            && line
                .and_then(|number| text.lines().nth(number.saturating_sub(1) as usize))
                .is_some_and(|condition| condition.contains('|'));
        let reason = if is_aggregation {
            screen::AGGREGATION_REASON.to_owned()
        } else {
            one_line(message)
        };
        outcome.refused.push(refusal(line, None, reason));
    }
    for correlation in &collection.correlations {
        let line = locate::title_line(text, &correlation.title)
            .or_else(|| locate::line_containing(text, "correlation:", 1));
        let title = Some(correlation.title.as_str());
        outcome
            .refused
            .push(refusal(line, title, CORRELATION_REASON.to_owned()));
    }
    for filter in &collection.filters {
        let line = locate::title_line(text, &filter.title)
            .or_else(|| locate::line_containing(text, "filter:", 1));
        let title = Some(filter.title.as_str());
        outcome
            .refused
            .push(refusal(line, title, FILTER_REASON.to_owned()));
    }
    for rule in collection.rules {
        let title_line = locate::title_line(text, &rule.title);
        if !is_cloudtrail(&rule) {
            let line = locate::line_containing(text, "logsource:", title_line.unwrap_or(1));
            outcome
                .skipped
                .push(refusal(line, Some(&rule.title), NOT_CLOUDTRAIL.to_owned()));
            continue;
        }
        let features = screen::refused_features(&rule);
        if !features.is_empty() {
            for feature in features {
                let line = feature
                    .needle
                    .and_then(|needle| {
                        locate::line_containing(text, &needle, title_line.unwrap_or(1))
                    })
                    .or(title_line);
                outcome
                    .refused
                    .push(refusal(line, Some(&rule.title), feature.reason));
            }
            continue;
        }
        match rsigma_eval::compile_rule(&rule) {
            Ok(compiled) => outcome.accepted.push(Accepted {
                parsed: rule,
                compiled,
                line: title_line,
            }),
            Err(error) => {
                let message = error.to_string();
                let line = locate::compile_error_line(text, &message, title_line.unwrap_or(1))
                    .or(title_line);
                outcome
                    .refused
                    .push(refusal(line, Some(&rule.title), one_line(&message)));
            }
        }
    }
    if outcome.accepted.is_empty() && outcome.refused.is_empty() && outcome.skipped.is_empty() {
        outcome.refused.push(refusal(
            None,
            None,
            "the file holds no Sigma rule".to_owned(),
        ));
    }
    if !outcome.refused.is_empty() {
        // Whole or nothing: the rest of a file with a problem does not run either.
        outcome.accepted.clear();
    }
    outcome
}

/// rsigma's message on one line: condition errors come as a drawing of the condition
/// over several lines, of which the first and the `= expected …` one say it all.
fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim);
    let mut line = lines.next().unwrap_or_default().to_owned();
    if let Some(expected) = lines.rev().find_map(|rest| rest.strip_prefix("= ")) {
        line.push(' ');
        line.push_str(expected);
    }
    line
}

/// `logsource: product: aws, service: cloudtrail` (any category).
fn is_cloudtrail(rule: &SigmaRule) -> bool {
    let is = |value: &Option<String>, expected: &str| {
        value
            .as_deref()
            .is_some_and(|value| value.eq_ignore_ascii_case(expected))
    };
    is(&rule.logsource.product, "aws") && is(&rule.logsource.service, "cloudtrail")
}

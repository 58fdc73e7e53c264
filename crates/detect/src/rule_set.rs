//! The loaded rules and what they match.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use rsigma_eval::Engine;
use rsigma_eval::event::JsonEvent;
use serde::Serialize;

use crate::error::{DetectError, RuleRefusal};
use crate::load::{self, Accepted};
use crate::prefilter::Prefilter;
use crate::record::{Reads, parse_record};

/// Compiled Sigma rules for CloudTrail records, ready to match records against.
///
/// Rule ids are unique in a set. The set is immutable once built, and `Send + Sync`:
/// share one behind an `Arc` and swap it whole to reload.
pub struct RuleSet {
    engine: Engine,
    rules: Vec<RuleInfo>,
    /// Rule id → position in `rules`, to report matches in rule order.
    positions: HashMap<String, usize>,
    /// What of a record the rules read (see `record.rs`).
    reads: Reads,
    /// Which records are worth parsing (see `prefilter.rs`).
    prefilter: Prefilter,
}

/// What [`RuleSet::load_dir`] found: the rules that load, and the files that did not.
#[derive(Debug)]
pub struct LoadedRules {
    pub rules: RuleSet,
    /// Files (or rules in them) that were refused, each with its reason and, where it can
    /// be told, its line; a refused file's other rules are not loaded either.
    pub refused: Vec<RuleRefusal>,
    /// Files holding rules for another log source (not `product: aws, service:
    /// cloudtrail`), which are passed over; their CloudTrail rules, if any, are loaded.
    pub skipped: Vec<PathBuf>,
}

/// A loaded rule, as people and APIs see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleInfo {
    pub id: String,
    pub title: String,
    pub level: Option<Level>,
    pub status: Option<Status>,
    /// The file the rule came from (the source name given to [`RuleSet::from_yaml`]).
    pub source: PathBuf,
}

/// A rule a record fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleMatch {
    pub rule_id: String,
    pub rule_title: String,
    pub level: Option<Level>,
}

/// A rule's `level`, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    fn from_sigma(level: rsigma_parser::Level) -> Level {
        match level {
            rsigma_parser::Level::Informational => Level::Informational,
            rsigma_parser::Level::Low => Level::Low,
            rsigma_parser::Level::Medium => Level::Medium,
            rsigma_parser::Level::High => Level::High,
            rsigma_parser::Level::Critical => Level::Critical,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A rule's `status` (its maturity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Stable,
    Test,
    Experimental,
    Deprecated,
    Unsupported,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stable => "stable",
            Status::Test => "test",
            Status::Experimental => "experimental",
            Status::Deprecated => "deprecated",
            Status::Unsupported => "unsupported",
        }
    }

    fn from_sigma(status: rsigma_parser::Status) -> Status {
        match status {
            rsigma_parser::Status::Stable => Status::Stable,
            rsigma_parser::Status::Test => Status::Test,
            rsigma_parser::Status::Experimental => Status::Experimental,
            rsigma_parser::Status::Deprecated => Status::Deprecated,
            rsigma_parser::Status::Unsupported => Status::Unsupported,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl RuleSet {
    /// A set without rules: it matches nothing.
    pub fn empty() -> RuleSet {
        RuleSet {
            engine: Engine::new(),
            rules: Vec::new(),
            positions: HashMap::new(),
            reads: Reads::nothing(),
            prefilter: Prefilter::default(),
        }
    }

    /// Loads every `*.yml` and `*.yaml` file under `dir` (recursively, in path order;
    /// hidden entries passed over). Each file loads whole or is refused whole; refused and
    /// skipped files are reported, and the others still load. Fails only when `dir`
    /// itself cannot be read.
    pub fn load_dir(dir: &Path) -> Result<LoadedRules, DetectError> {
        let mut refused = Vec::new();
        let files = load::rule_files(dir, &mut refused)?;
        let built = RuleSet::load_files(files, &|_| false);
        refused.extend(built.refused);
        // Stable: a file's refusals keep their order.
        refused.sort_by(|a, b| a.source.cmp(&b.source));
        Ok(LoadedRules {
            rules: built.rules,
            refused,
            skipped: built.skipped,
        })
    }

    /// Loads rule files, in the order given (a later file holding an id an earlier one
    /// holds is refused). Rules whose id `held_back` names are checked and listed in
    /// [`BuiltRules::all`] but left out of the set (disabled rules).
    pub(crate) fn load_files(files: Vec<PathBuf>, held_back: &dyn Fn(&str) -> bool) -> BuiltRules {
        let mut refused = Vec::new();
        let mut skipped = Vec::new();
        let mut accepted = Vec::new();
        for path in files {
            let outcome = load::load_file(&path);
            if !outcome.skipped.is_empty() {
                skipped.push(path.clone());
            }
            refused.extend(outcome.refused);
            if !outcome.accepted.is_empty() {
                accepted.push((path, outcome.accepted));
            }
        }
        let mut built = RuleSet::build(accepted, held_back);
        refused.append(&mut built.refused);
        built.refused = refused;
        built.skipped = skipped;
        built
    }

    /// Loads the rules of one YAML text (one or more documents), named `source_name` in
    /// [`RuleInfo::source`] and in refusals. Strict, since a caller handing over one text
    /// wants all of it running: any refusal, or a rule for another log source, fails the
    /// whole text with [`DetectError::Refused`].
    pub fn from_yaml(source_name: &str, text: &str) -> Result<RuleSet, DetectError> {
        let source = PathBuf::from(source_name);
        let outcome = load::examine(&source, text);
        let mut refused = outcome.refused;
        refused.extend(outcome.skipped);
        let built = RuleSet::build(vec![(source, outcome.accepted)], &|_| false);
        refused.extend(built.refused);
        if refused.is_empty() {
            Ok(built.rules)
        } else {
            Err(DetectError::Refused(refused))
        }
    }

    /// The rules, in load order.
    pub fn rules(&self) -> &[RuleInfo] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some rule might fire on a record (its JSON object text, as stored): the
    /// prefilter [`RuleSet::matches`] starts with. `false` is a proof that none fires.
    pub fn admits(&self, record_json: &str) -> bool {
        self.prefilter.admits(record_json)
    }

    /// The rules a CloudTrail record fires, in rule order. `record_json` is the record's
    /// JSON object text, as stored. A record no rule can fire is told apart from a few
    /// members' raw text (see `prefilter.rs`); any other is parsed once for all rules, and
    /// only as far as they read (see `record.rs`), and rsigma's candidate index then
    /// evaluates only the rules the record's values can fire. Fails when the text is not
    /// one JSON object, unless the screen already shows that no rule can fire on it.
    pub fn matches(&self, record_json: &str) -> Result<Vec<RuleMatch>, DetectError> {
        if !self.admits(record_json) {
            return Ok(Vec::new());
        }
        let record = parse_record(record_json, &self.reads).map_err(DetectError::InvalidRecord)?;
        let event = JsonEvent::borrow(&record);
        let mut fired: Vec<usize> = self
            .engine
            .evaluate(&event)
            .iter()
            .filter_map(|result| {
                let id = result.header.rule_id.as_deref()?;
                self.positions.get(id).copied()
            })
            .collect();
        fired.sort_unstable();
        fired.dedup();
        Ok(fired
            .into_iter()
            .map(|position| {
                let rule = &self.rules[position];
                RuleMatch {
                    rule_id: rule.id.clone(),
                    rule_title: rule.title.clone(),
                    level: rule.level,
                }
            })
            .collect())
    }

    /// Builds a set from accepted rules, file by file. A file holding an id that an
    /// earlier file (or an earlier rule of its own) holds is refused whole. Rules
    /// `held_back` names are listed in `all` but not evaluated.
    fn build(files: Vec<(PathBuf, Vec<Accepted>)>, held_back: &dyn Fn(&str) -> bool) -> BuiltRules {
        let mut set = RuleSet::empty();
        let mut all: Vec<RuleInfo> = Vec::new();
        // Every accepted id (held back or not) → its position in `all`.
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut refused = Vec::new();
        let mut compiled = Vec::new();
        for (source, accepted) in files {
            let mut in_file = HashSet::new();
            let duplicates: Vec<RuleRefusal> = accepted
                .iter()
                .filter_map(|rule| {
                    let id = rule.compiled.id.as_deref().unwrap_or_default();
                    let earlier = seen.get(id).map(|&at| &all[at].source);
                    let reason = match earlier {
                        Some(earlier) => format!(
                            "rule id {id} is already used by a rule in {}",
                            earlier.display()
                        ),
                        None if !in_file.insert(id) => {
                            format!("rule id {id} is used twice in this file")
                        }
                        None => return None,
                    };
                    Some(RuleRefusal {
                        source: source.clone(),
                        line: rule.line,
                        rule_title: Some(rule.compiled.title.clone()),
                        reason,
                    })
                })
                .collect();
            if !duplicates.is_empty() {
                refused.extend(duplicates);
                continue;
            }
            for rule in accepted {
                let id = rule.compiled.id.clone().unwrap_or_default();
                let info = RuleInfo {
                    id: id.clone(),
                    title: rule.parsed.title.clone(),
                    level: rule.parsed.level.map(Level::from_sigma),
                    status: rule.parsed.status.map(Status::from_sigma),
                    source: source.clone(),
                };
                seen.insert(id.clone(), all.len());
                all.push(info.clone());
                if held_back(&id) {
                    continue;
                }
                set.positions.insert(id, set.rules.len());
                set.rules.push(info);
                set.reads.add_rule(&rule.parsed);
                set.prefilter.add_rule(&rule.parsed);
                compiled.push(rule.compiled);
            }
        }
        // One index build for the whole set.
        set.engine.extend_compiled_rules(compiled);
        BuiltRules {
            rules: set,
            all,
            refused,
            skipped: Vec::new(),
        }
    }
}

/// What [`RuleSet::load_files`] made of a list of files.
pub(crate) struct BuiltRules {
    /// The rules that run.
    pub rules: RuleSet,
    /// Every rule that loaded, held back or not, in load order.
    pub all: Vec<RuleInfo>,
    pub refused: Vec<RuleRefusal>,
    /// Files whose rules are for another log source.
    pub skipped: Vec<PathBuf>,
}

impl Default for RuleSet {
    fn default() -> RuleSet {
        RuleSet::empty()
    }
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RuleSet")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn a_rule_set_can_be_shared_between_threads() {
        assert_send_sync::<RuleSet>();
    }
}

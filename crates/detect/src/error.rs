//! The crate's error and its per-rule refusals: a leaf module, so the modules that return
//! them do not import `lib.rs` or one another.

use std::fmt;
use std::path::PathBuf;

/// Why rules could not be loaded at all, or a record could not be matched. A single bad
/// rule file is not an error of [`RuleSet::load_dir`](crate::RuleSet::load_dir): it is a
/// [`RuleRefusal`] in [`LoadedRules::refused`](crate::LoadedRules::refused), and the other
/// files still load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    #[error("cannot read the rules directory {}: {source}", path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Rules given as one text ([`RuleSet::from_yaml`](crate::RuleSet::from_yaml)) with at
    /// least one problem; nothing was loaded.
    #[error("{}", refusals_summary(.0))]
    Refused(Vec<RuleRefusal>),
    /// The record is not the text of a JSON object.
    #[error("the record is not a JSON object: {0}")]
    InvalidRecord(#[source] serde_json::Error),
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file of ours (the alert log, the delivery state) does not read back.
    #[error("{} is damaged: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot encode an alert: {0}")]
    Encode(String),
    #[error("the event log: {0}")]
    Store(#[from] opentrail_store::StoreError),
    #[error("alert delivery: {0}")]
    Delivery(String),
    #[error("a background task failed: {0}")]
    Task(String),
    /// No loaded rule (and, for removal, no rule added through the API) has this id.
    #[error("no rule has the id {id}")]
    UnknownRule { id: String },
    /// Only rules added through the API can be removed through it.
    #[error(
        "rule {id} comes from the rules directory ({}): delete its file there, or disable the rule",
        file.display()
    )]
    DirectoryRule { id: String, file: PathBuf },
    /// Each target kind keeps one delivery position, so it can be configured once.
    #[error("more than one {0} alert target: each kind of target can be configured once")]
    DuplicateTarget(&'static str),
}

impl DetectError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> DetectError {
        DetectError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A rule file, or a rule in it, that was not loaded, and why.
///
/// `line` is 1-based. rsigma reports positions only for YAML syntax errors; for the other
/// problems it is the first line of the file (at or after the rule's `title:`) that holds
/// the offending key, modifier or condition, found by searching the text, and `None` when
/// nothing in the text names the problem (a missing key, for instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRefusal {
    pub source: PathBuf,
    pub line: Option<u32>,
    /// The rule's title, when the problem is one rule's and the rule has a title.
    pub rule_title: Option<String>,
    pub reason: String,
}

impl fmt::Display for RuleRefusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.source.display())?;
        if let Some(line) = self.line {
            write!(formatter, ":{line}")?;
        }
        if let Some(title) = &self.rule_title {
            write!(formatter, ": rule {title:?}")?;
        }
        write!(formatter, ": {}", self.reason)
    }
}

fn refusals_summary(refusals: &[RuleRefusal]) -> String {
    match refusals {
        [] => "no rule was loaded".to_owned(),
        [only] => format!("rule refused: {only}"),
        [first, rest @ ..] => format!("rule refused: {first} (and {} more)", rest.len()),
    }
}

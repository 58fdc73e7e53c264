//! Every rule the server knows, wherever it comes from: the rules directory
//! (`serve --rules DIR`, reloaded when it changes) and rules added through the API, kept
//! under the detections state directory (`DATA_DIR/detections`):
//!
//! ```text
//! DATA_DIR/detections/rules/<rule id>.yml   one file per rule added through the API
//! DATA_DIR/detections/disabled.json         {"disabled":["<rule id>", …]}
//! ```
//!
//! Both are written atomically, so a crash leaves a rule added or not, and a rule
//! disabled or not. Directory rules load first: an API rule whose id a directory rule
//! already has is refused (and adding one is refused up front). A disabled rule stays
//! listed but is left out of the [`RuleSet`] the consumer runs; disabling works for
//! directory rules too, and outlives edits of their file (it follows the id).
//!
//! [`RuleBook`] rebuilds the whole set under one lock on every change and swaps it into
//! the consumer's [`SharedRules`] before answering, so an event appended after a change
//! returns is matched by the rules as changed (see `consumer.rs` for the scan's side).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use crate::consumer::SharedRules;
use crate::error::{DetectError, RuleRefusal};
use crate::load;
use crate::rule_set::{RuleInfo, RuleSet};

/// Where rules added through the API are kept, under the state directory.
const API_RULES_DIR_NAME: &str = "rules";
/// The ids of disabled rules, under the state directory.
const DISABLED_FILE_NAME: &str = "disabled.json";
/// How an API rule's text is named in refusals (it has no file yet).
const API_SOURCE_NAME: &str = "request body";

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleOrigin {
    /// A file of the rules directory (`serve --rules DIR`).
    Directory,
    /// Added through the API (`opentrail rules add`).
    Api,
}

impl RuleOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleOrigin::Directory => "directory",
            RuleOrigin::Api => "api",
        }
    }
}

/// A rule that loaded, running or disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRule {
    pub info: RuleInfo,
    pub origin: RuleOrigin,
    pub enabled: bool,
}

/// A rule file, or a rule in it, that did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRefusal {
    pub refusal: RuleRefusal,
    pub origin: RuleOrigin,
}

/// Every rule known at one instant: directory rules first, then API rules, each in path
/// order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleCatalog {
    pub rules: Vec<CatalogRule>,
    pub refused: Vec<CatalogRefusal>,
}

impl RuleCatalog {
    pub fn rule(&self, id: &str) -> Option<&CatalogRule> {
        self.rules.iter().find(|rule| rule.info.id == id)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct DisabledFile {
    disabled: BTreeSet<String>,
}

/// The rules, their persistence, and the set the consumer runs.
pub(crate) struct RuleBook {
    rules_dir: Option<PathBuf>,
    api_dir: PathBuf,
    disabled_path: PathBuf,
    shared: SharedRules,
    state: Mutex<BookState>,
}

struct BookState {
    catalog: Arc<RuleCatalog>,
    /// The rules directory's files at its last successful listing (kept when a later
    /// listing fails, so an unreadable directory does not drop its rules).
    directory_files: Vec<PathBuf>,
    /// Entries of the rules directory that could not be listed.
    directory_refused: Vec<RuleRefusal>,
    disabled: BTreeSet<String>,
}

impl RuleBook {
    /// Reads the rules directory (which must be readable), the API rules and the disabled
    /// ids, and builds the set. Refused rules are logged with their place.
    pub(crate) fn open(
        rules_dir: Option<PathBuf>,
        state_dir: &Path,
    ) -> Result<RuleBook, DetectError> {
        let api_dir = state_dir.join(API_RULES_DIR_NAME);
        opentrail_durable::create_private_directory(&api_dir)
            .map_err(|source| DetectError::io(&api_dir, source))?;
        let disabled_path = state_dir.join(DISABLED_FILE_NAME);
        let disabled = read_disabled(&disabled_path)?;
        let mut directory_refused = Vec::new();
        let directory_files = match &rules_dir {
            Some(dir) => list_directory(dir, &api_dir, &mut directory_refused)?,
            None => Vec::new(),
        };
        let book = RuleBook {
            rules_dir,
            api_dir,
            disabled_path,
            shared: Arc::new(RwLock::new(Arc::new(RuleSet::empty()))),
            state: Mutex::new(BookState {
                catalog: Arc::default(),
                directory_files,
                directory_refused,
                disabled,
            }),
        };
        {
            let mut state = book.lock();
            book.rebuild(&mut state, true);
        }
        Ok(book)
    }

    /// The set the consumer runs, swapped whole on every change.
    pub(crate) fn shared(&self) -> &SharedRules {
        &self.shared
    }

    pub(crate) fn rules_dir(&self) -> Option<&Path> {
        self.rules_dir.as_deref()
    }

    pub(crate) fn catalog(&self) -> Arc<RuleCatalog> {
        Arc::clone(&self.lock().catalog)
    }

    /// Whether detections have anything to do: a rules directory is configured, or a rule
    /// was added through the API.
    pub(crate) fn has_rules(&self) -> bool {
        self.rules_dir.is_some() || !self.lock().catalog.rules.is_empty()
    }

    /// Reads the rules directory again (its files changed). When it cannot be listed,
    /// its last listing stays in force.
    pub(crate) fn reload_directory(&self) {
        let Some(dir) = &self.rules_dir else {
            return;
        };
        let mut state = self.lock();
        let mut refused = Vec::new();
        match list_directory(dir, &self.api_dir, &mut refused) {
            Ok(files) => {
                state.directory_files = files;
                state.directory_refused = refused;
            }
            Err(error) => {
                tracing::error!(%error, "the rules directory could not be read; its previous rules stay in force");
            }
        }
        self.rebuild(&mut state, true);
        tracing::info!(
            rules = state.catalog.rules.len(),
            dir = %dir.display(),
            "rules reloaded"
        );
    }

    /// Adds one rule (one Sigma rule, logsource aws/cloudtrail, with an id no other rule
    /// has). Refusals are [`DetectError::Refused`], each naming its line in `text`.
    /// Blocking.
    pub(crate) fn add(&self, text: &str) -> Result<CatalogRule, DetectError> {
        let checked = RuleSet::from_yaml(API_SOURCE_NAME, text)?;
        let id = match checked.rules() {
            [rule] => rule.id.clone(),
            rules => {
                return Err(refused(format!(
                    "add one rule at a time: this text holds {} rules",
                    rules.len()
                )));
            }
        };
        let path = self.api_rule_path(&id).ok_or_else(|| {
            refused(format!(
                "rule id {id:?} cannot be stored: an id added through the API is made of \
                 letters, digits, '-', '_' and '.' (a UUID, as Sigma recommends)"
            ))
        })?;
        let mut state = self.lock();
        if let Some(existing) = state.catalog.rule(&id) {
            return Err(refused(format!(
                "rule id {id} is already used by a rule in {} ({})",
                existing.info.source.display(),
                existing.origin.as_str()
            )));
        }
        if path.exists() {
            return Err(refused(format!(
                "a rule with id {id} was already added (and is refused: see the rule list); \
                 remove it first"
            )));
        }
        opentrail_durable::write_atomically(&path, text.as_bytes())
            .map_err(|source| DetectError::io(&path, source))?;
        if state.disabled.remove(&id) {
            self.save_disabled(&state.disabled)?;
        }
        self.rebuild(&mut state, false);
        if let Some(added) = state.catalog.rule(&id) {
            return Ok(added.clone());
        }
        // Refused together with the other rules (a directory rule took the id meanwhile):
        // nothing is kept.
        let refusals = state
            .catalog
            .refused
            .iter()
            .filter(|refused| refused.refusal.source == path)
            .map(|refused| refused.refusal.clone())
            .collect();
        opentrail_durable::remove_if_present(&path)
            .and_then(|()| opentrail_durable::sync_directory(&self.api_dir))
            .map_err(|source| DetectError::io(&path, source))?;
        self.rebuild(&mut state, false);
        Err(DetectError::Refused(refusals))
    }

    /// Enables or disables a loaded rule (from the directory or the API); persisted.
    /// Blocking.
    pub(crate) fn set_enabled(&self, id: &str, enabled: bool) -> Result<CatalogRule, DetectError> {
        let mut state = self.lock();
        if state.catalog.rule(id).is_none() {
            return Err(DetectError::UnknownRule { id: id.to_owned() });
        }
        let changed = if enabled {
            state.disabled.remove(id)
        } else {
            state.disabled.insert(id.to_owned())
        };
        if changed {
            self.save_disabled(&state.disabled)?;
            self.rebuild(&mut state, false);
        }
        state
            .catalog
            .rule(id)
            .cloned()
            .ok_or_else(|| DetectError::UnknownRule { id: id.to_owned() })
    }

    /// Removes a rule added through the API (also one that is refused now). A directory
    /// rule is [`DetectError::DirectoryRule`]. Blocking.
    pub(crate) fn remove(&self, id: &str) -> Result<CatalogRule, DetectError> {
        let mut state = self.lock();
        let path = self.api_rule_path(id).filter(|path| path.exists());
        let Some(path) = path else {
            return Err(match state.catalog.rule(id) {
                Some(rule) => DetectError::DirectoryRule {
                    id: id.to_owned(),
                    file: rule.info.source.clone(),
                },
                None => DetectError::UnknownRule { id: id.to_owned() },
            });
        };
        let removed = match state.catalog.rule(id) {
            Some(rule) if rule.origin == RuleOrigin::Api => rule.clone(),
            _ => CatalogRule {
                info: RuleInfo {
                    id: id.to_owned(),
                    title: refused_title(&state.catalog, &path).unwrap_or_default(),
                    level: None,
                    status: None,
                    source: path.clone(),
                },
                origin: RuleOrigin::Api,
                enabled: false,
            },
        };
        opentrail_durable::remove_if_present(&path)
            .and_then(|()| opentrail_durable::sync_directory(&self.api_dir))
            .map_err(|source| DetectError::io(&path, source))?;
        if state.disabled.remove(id) {
            self.save_disabled(&state.disabled)?;
        }
        self.rebuild(&mut state, false);
        Ok(removed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BookState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `<api dir>/<id>.yml`, when the id is safe as a file name.
    fn api_rule_path(&self, id: &str) -> Option<PathBuf> {
        let safe = !id.is_empty()
            && id.len() <= 128
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        safe.then(|| self.api_dir.join(format!("{id}.yml")))
    }

    fn save_disabled(&self, disabled: &BTreeSet<String>) -> Result<(), DetectError> {
        let bytes = serde_json::to_vec_pretty(&DisabledFile {
            disabled: disabled.clone(),
        })
        .map_err(|error| DetectError::Encode(error.to_string()))?;
        opentrail_durable::write_atomically(&self.disabled_path, &bytes)
            .map_err(|source| DetectError::io(&self.disabled_path, source))
    }

    /// Loads the directory's files (as last listed) and the API rules, and swaps the
    /// result in. Holding the state lock, so changes apply one at a time.
    fn rebuild(&self, state: &mut BookState, log_refusals: bool) {
        let mut refused: Vec<CatalogRefusal> = state
            .directory_refused
            .iter()
            .map(|refusal| CatalogRefusal {
                refusal: refusal.clone(),
                origin: RuleOrigin::Directory,
            })
            .collect();
        let mut api_listing_refused = Vec::new();
        let api_files = match load::rule_files(&self.api_dir, &mut api_listing_refused) {
            Ok(files) => files,
            Err(error) => {
                api_listing_refused.push(RuleRefusal {
                    source: self.api_dir.clone(),
                    line: None,
                    rule_title: None,
                    reason: error.to_string(),
                });
                Vec::new()
            }
        };
        let mut files = state.directory_files.clone();
        files.extend(api_files);
        let disabled = &state.disabled;
        let built = RuleSet::load_files(files, &|id| disabled.contains(id));
        let origin_of = |source: &Path| {
            if source.starts_with(&self.api_dir) {
                RuleOrigin::Api
            } else {
                RuleOrigin::Directory
            }
        };
        refused.extend(
            built
                .refused
                .into_iter()
                .chain(api_listing_refused)
                .map(|refusal| CatalogRefusal {
                    origin: origin_of(&refusal.source),
                    refusal,
                }),
        );
        if log_refusals {
            for refused in &refused {
                tracing::warn!(refusal = %refused.refusal, "a rule was refused");
            }
            for skipped in &built.skipped {
                tracing::info!(file = %skipped.display(), "rules for another log source were passed over");
            }
        }
        let rules = built
            .all
            .into_iter()
            .map(|info| CatalogRule {
                origin: origin_of(&info.source),
                enabled: !disabled.contains(&info.id),
                info,
            })
            .collect();
        state.catalog = Arc::new(RuleCatalog { rules, refused });
        *self.shared.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(built.rules);
    }
}

/// The rules directory's rule files, leaving out the API rules should they lie inside it.
fn list_directory(
    dir: &Path,
    api_dir: &Path,
    refused: &mut Vec<RuleRefusal>,
) -> Result<Vec<PathBuf>, DetectError> {
    let mut files = load::rule_files(dir, refused)?;
    files.retain(|file| !file.starts_with(api_dir));
    Ok(files)
}

fn read_disabled(path: &Path) -> Result<BTreeSet<String>, DetectError> {
    match opentrail_durable::read_optional(path).map_err(|source| DetectError::io(path, source))? {
        Some(bytes) => serde_json::from_slice::<DisabledFile>(&bytes)
            .map(|file| file.disabled)
            .map_err(|error| DetectError::Corrupt {
                path: path.to_path_buf(),
                detail: error.to_string(),
            }),
        None => Ok(BTreeSet::new()),
    }
}

fn refused(reason: String) -> DetectError {
    DetectError::Refused(vec![RuleRefusal {
        source: PathBuf::from(API_SOURCE_NAME),
        line: None,
        rule_title: None,
        reason,
    }])
}

fn refused_title(catalog: &RuleCatalog, path: &Path) -> Option<String> {
    catalog
        .refused
        .iter()
        .find(|refused| refused.refusal.source == path)
        .and_then(|refused| refused.refusal.rule_title.clone())
}

//! Screening at ingest: the thread that appends a batch already holds each record's text,
//! so it runs the rules' prefilter there (`RuleSet::admits`, about a microsecond a
//! record) and notes, per run of appended seqs, which records some rule might fire. The
//! detection consumer then reads and matches only those, instead of decompressing and
//! walking every record of the run again on its own thread.
//!
//! Only an accelerator: the log stays the source of truth and the consumer's cursor is
//! unchanged. A seq nobody screened (after a restart, an ingest path that does not
//! screen, more than [`SCREENED_SEQS_MAX`] waiting) or screened with other rules than
//! the consumer's (a change of rules in between) is read and matched as before. The
//! prefilter is the same function either way, so a screened run yields exactly the
//! alerts a full read would (`tests/it/alerts.rs` checks both).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use opentrail_store::AppendOutcome;

use crate::consumer::SharedRules;
use crate::rule_set::RuleSet;

/// The most screened seqs kept for the consumer; past it, new runs are not noted and
/// are read whole. Bounds the memory when the consumer lags far (about 40 bytes a run
/// plus 8 bytes an admitted record).
pub const SCREENED_SEQS_MAX: u64 = 4_000_000;

/// Screened runs of the log, shared by the ingest paths and the detection consumer.
pub struct Screening {
    rules: SharedRules,
    runs: Mutex<ScreenedRuns>,
    seqs_max: u64,
}

/// The prefilter's verdicts on a batch about to be appended, under one set of rules.
pub struct Verdicts {
    rules: Arc<RuleSet>,
    admitted: Vec<bool>,
}

impl Verdicts {
    /// Verdicts as given rather than judged: for tests that show the consumer trusts a
    /// screened run.
    #[doc(hidden)]
    pub fn assumed_for_test(rules: Arc<RuleSet>, admitted: Vec<bool>) -> Verdicts {
        Verdicts { rules, admitted }
    }
}

#[derive(Default)]
struct ScreenedRuns {
    /// By first seq.
    runs: BTreeMap<u64, Run>,
    seqs: u64,
}

struct Run {
    last_seq: u64,
    rules: Arc<RuleSet>,
    /// The seqs of the run some rule might fire on, ascending.
    admitted: Vec<u64>,
}

/// A stretch of a scan, as [`Screening::plan`] cuts it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stretch {
    /// Seqs `first..=last` were screened with the consumer's rules: only `admitted`
    /// need reading.
    Screened {
        first: u64,
        last: u64,
        admitted: Vec<u64>,
    },
    /// Seqs after `after` through `through` must be read and matched whole.
    Unscreened { after: u64, through: u64 },
}

impl Screening {
    pub fn new(rules: SharedRules) -> Screening {
        Screening {
            rules,
            runs: Mutex::new(ScreenedRuns::default()),
            seqs_max: SCREENED_SEQS_MAX,
        }
    }

    /// The rules in force now.
    pub fn rules(&self) -> Arc<RuleSet> {
        Arc::clone(&self.rules.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Judges records about to be appended (their text as stored). `None` when no rule
    /// runs, so there is nothing to note.
    pub fn judge<'a>(&self, records: impl Iterator<Item = &'a str>) -> Option<Verdicts> {
        let rules = self.rules();
        if rules.is_empty() {
            return None;
        }
        let admitted = records.map(|json| rules.admits(json)).collect();
        Some(Verdicts { rules, admitted })
    }

    /// Notes the verdicts of an appended batch against its outcomes (in the same order):
    /// each run of consecutive stored seqs becomes one screened run. Duplicates got no
    /// seq and are skipped.
    pub fn note(&self, verdicts: Verdicts, outcomes: &[AppendOutcome]) {
        if verdicts.admitted.len() != outcomes.len() {
            return;
        }
        let mut stored = outcomes
            .iter()
            .zip(&verdicts.admitted)
            .filter_map(|(outcome, admitted)| match outcome {
                AppendOutcome::Stored { seq } => Some((*seq, *admitted)),
                AppendOutcome::Duplicate { .. } => None,
            })
            .peekable();
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((first, admitted)) = stored.next() {
            let mut run = Run {
                last_seq: first,
                rules: Arc::clone(&verdicts.rules),
                admitted: Vec::new(),
            };
            if admitted {
                run.admitted.push(first);
            }
            while let Some(&(seq, admitted)) = stored.peek() {
                if seq != run.last_seq + 1 {
                    break;
                }
                run.last_seq = seq;
                if admitted {
                    run.admitted.push(seq);
                }
                stored.next();
            }
            let len = run.last_seq - first + 1;
            if runs.seqs + len > self.seqs_max {
                return;
            }
            runs.seqs += len;
            runs.runs.insert(first, run);
        }
    }

    /// Cuts the scan of seqs after `after` through `through` into screened and
    /// unscreened stretches, in seq order. A run screened with other rules than `rules`
    /// counts as unscreened.
    pub(crate) fn plan(&self, after: u64, through: u64, rules: &Arc<RuleSet>) -> Vec<Stretch> {
        let mut stretches = Vec::new();
        if through <= after {
            return stretches;
        }
        let runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = after + 1;
        // A run starting at or before `after` may still reach into the scan.
        let start = runs
            .runs
            .range(..=after)
            .next_back()
            .map_or(next, |(first, _)| *first);
        for (&first, run) in runs.runs.range(start..=through) {
            if run.last_seq < next || !Arc::ptr_eq(&run.rules, rules) {
                continue;
            }
            let first = first.max(next);
            let last = run.last_seq.min(through);
            if first > next {
                stretches.push(Stretch::Unscreened {
                    after: next - 1,
                    through: first - 1,
                });
            }
            stretches.push(Stretch::Screened {
                first,
                last,
                admitted: run
                    .admitted
                    .iter()
                    .copied()
                    .filter(|seq| (first..=last).contains(seq))
                    .collect(),
            });
            next = last + 1;
        }
        if next <= through {
            stretches.push(Stretch::Unscreened {
                after: next - 1,
                through,
            });
        }
        stretches
    }

    /// Drops what the consumer is past: runs that end at or before `seq`.
    pub(crate) fn forget_through(&self, seq: u64) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        let done: Vec<u64> = runs
            .runs
            .iter()
            .take_while(|(first, _)| **first <= seq)
            .filter(|(_, run)| run.last_seq <= seq)
            .map(|(first, _)| *first)
            .collect();
        for first in done {
            if let Some(run) = runs.runs.remove(&first) {
                runs.seqs -= run.last_seq - first + 1;
            }
        }
    }

    /// Seqs noted and not yet forgotten.
    #[cfg(test)]
    fn noted_seqs(&self) -> u64 {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .seqs
    }
}

#[cfg(test)]
mod tests {
    use std::sync::RwLock;

    use super::*;

    const RULE: &str = r#"
title: Table deleted
id: 5b1a4c8e-0000-4000-8000-000000000001
logsource: { product: aws, service: cloudtrail }
detection:
  selection: { eventName: DeleteTable }
  condition: selection
"#;

    fn screening() -> (Screening, SharedRules) {
        let rules = RuleSet::from_yaml("rule.yml", RULE).expect("rule loads");
        let shared: SharedRules = Arc::new(RwLock::new(Arc::new(rules)));
        (Screening::new(Arc::clone(&shared)), shared)
    }

    fn record(name: &str) -> String {
        format!(r#"{{"eventName":"{name}","eventSource":"dynamodb.amazonaws.com"}}"#)
    }

    fn stored(seqs: std::ops::RangeInclusive<u64>) -> Vec<AppendOutcome> {
        seqs.map(|seq| AppendOutcome::Stored { seq }).collect()
    }

    fn note(screening: &Screening, names: &[&str], outcomes: &[AppendOutcome]) {
        let texts: Vec<String> = names.iter().map(|name| record(name)).collect();
        let verdicts = screening
            .judge(texts.iter().map(String::as_str))
            .expect("rules run");
        screening.note(verdicts, outcomes);
    }

    #[test]
    fn a_screened_run_names_only_what_a_rule_might_fire_on() {
        let (screening, _) = screening();
        note(
            &screening,
            &["PutItem", "DeleteTable", "GetItem"],
            &stored(4..=6),
        );
        let rules = screening.rules();
        assert_eq!(
            screening.plan(3, 6, &rules),
            vec![Stretch::Screened {
                first: 4,
                last: 6,
                admitted: vec![5]
            }]
        );
        assert_eq!(screening.plan(6, 6, &rules), vec![], "nothing new to scan");
        assert_eq!(screening.plan(9, 9, &rules), vec![]);
        // A scan that starts inside the run and ends past it.
        assert_eq!(
            screening.plan(4, 8, &rules),
            vec![
                Stretch::Screened {
                    first: 5,
                    last: 6,
                    admitted: vec![5]
                },
                Stretch::Unscreened {
                    after: 6,
                    through: 8
                }
            ]
        );
    }

    #[test]
    fn gaps_duplicates_and_other_rules_leave_stretches_to_read_whole() {
        let (screening, shared) = screening();
        // Seq 3 belongs to another ingest path; the duplicate got no seq.
        note(
            &screening,
            &["DeleteTable", "PutItem", "PutItem"],
            &[
                AppendOutcome::Stored { seq: 1 },
                AppendOutcome::Stored { seq: 2 },
                AppendOutcome::Duplicate { seq: 1 },
            ],
        );
        note(&screening, &["PutItem", "PutItem"], &stored(4..=5));
        let rules = screening.rules();
        assert_eq!(
            screening.plan(0, 5, &rules),
            vec![
                Stretch::Screened {
                    first: 1,
                    last: 2,
                    admitted: vec![1]
                },
                Stretch::Unscreened {
                    after: 2,
                    through: 3
                },
                Stretch::Screened {
                    first: 4,
                    last: 5,
                    admitted: vec![]
                },
            ]
        );

        // The rules change: what was screened before no longer counts.
        let changed = Arc::new(RuleSet::from_yaml("rule.yml", RULE).expect("rule loads"));
        *shared.write().expect("lock") = Arc::clone(&changed);
        assert_eq!(
            screening.plan(0, 5, &changed),
            vec![Stretch::Unscreened {
                after: 0,
                through: 5
            }]
        );
    }

    #[test]
    fn forgotten_runs_free_their_room_and_the_bound_holds() {
        let (screening, _) = screening();
        note(&screening, &["PutItem"; 3], &stored(1..=3));
        note(&screening, &["PutItem"; 2], &stored(4..=5));
        assert_eq!(screening.noted_seqs(), 5);
        screening.forget_through(3);
        assert_eq!(screening.noted_seqs(), 2);
        let rules = screening.rules();
        assert_eq!(
            screening.plan(0, 5, &rules),
            vec![
                Stretch::Unscreened {
                    after: 0,
                    through: 3
                },
                Stretch::Screened {
                    first: 4,
                    last: 5,
                    admitted: vec![]
                }
            ]
        );

        let (mut bounded, _) = self::screening();
        bounded.seqs_max = 4;
        note(&bounded, &["PutItem"; 3], &stored(1..=3));
        note(&bounded, &["DeleteTable"; 2], &stored(4..=5));
        assert_eq!(bounded.noted_seqs(), 3, "a run past the bound is not noted");
        assert_eq!(
            bounded.plan(3, 5, &bounded.rules()),
            vec![Stretch::Unscreened {
                after: 3,
                through: 5
            }],
            "so it is read whole"
        );
    }
}

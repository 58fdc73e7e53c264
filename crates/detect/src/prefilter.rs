//! Records no rule can fire, told apart before they are parsed.
//!
//! Most records fire nothing, and parsing one (even partly, see `record.rs`) cost most of
//! a match. So each rule is first reduced to *clauses* on a few fields: in each clause one
//! test at least holds on every record the rule can fire (for example: `eventName` equals
//! `DeleteBucket` or `PutBucketPolicy`; `errorCode` contains `accessdenied`). A record is
//! parsed and matched only when every clause of some rule has a test that may hold on it.
//! The tests read members' raw text through [`object_members`], which follows the JSON's
//! structure without decoding it.
//!
//! Sound, never clever: wherever the analysis or the record is not plain, the answer is
//! "maybe" (parse and match). A rule without clauses admits every record. Clauses come
//! from selection items with no modifier other than `contains`, `startswith`, `endswith`
//! and `cased`, whose values are ASCII strings without wildcards, on a field named
//! `member` or `member.member`. `and` (and `all of`) keeps the clauses of every operand;
//! `or` (and `1 of`) keeps one clause, the union of each operand's most selective; `not`
//! keeps none. A field's value is judged only when it is an ASCII string without escapes;
//! anything else (numbers, arrays, escaped names or values) may pass every test. Field
//! lookups follow rsigma's: a dotted name is a top-level member of that name, or the
//! nested member.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use opentrail_event::object_members;

use crate::record::Sketch;
use rsigma_parser::{
    ConditionExpr, Detection, DetectionItem, Modifier, Quantifier, SigmaRule, SigmaValue,
};

/// A field a clause reads: a top-level member, or a member of one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FieldPath {
    /// The name as the rule writes it, which rsigma first looks up as one member.
    written: String,
    /// For `a.b`: `a` and `b`.
    nested: Option<(String, String)>,
}

impl FieldPath {
    fn parse(name: &str) -> Option<FieldPath> {
        // Brackets and escapes are rsigma's array indexes and literal dots.
        if name.is_empty() || name.contains(['[', ']', '\\']) {
            return None;
        }
        let nested = match name.split_once('.') {
            None => None,
            Some((outer, inner)) if !outer.is_empty() && !inner.is_empty() => {
                if inner.contains('.') {
                    return None;
                }
                Some((outer.to_owned(), inner.to_owned()))
            }
            Some(_) => return None,
        };
        Some(FieldPath {
            written: name.to_owned(),
            nested,
        })
    }
}

/// What a test asks of a field's string value, folded to ASCII lower case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ValueTest {
    Equals(String),
    Contains(String),
}

type Test = (FieldPath, ValueTest);

/// At least one of these tests holds on every record the rule can fire.
type Clause = BTreeSet<Test>;

/// Every clause holds on every record the rule (or a part of it) can match. No clauses:
/// nothing is known.
type Clauses = Vec<Clause>;

/// The tests on one field, each with its index among the screen's tests.
#[derive(Debug, Default)]
struct FieldTests {
    equals: HashMap<String, Vec<usize>>,
    contains: Vec<(String, usize)>,
    /// Every test on the field: what a value that cannot be judged may pass.
    all: Vec<usize>,
}

impl FieldTests {
    fn add(&mut self, test: &ValueTest, index: usize) {
        self.all.push(index);
        match test {
            ValueTest::Equals(value) => self.equals.entry(value.clone()).or_default().push(index),
            ValueTest::Contains(needle) => self.contains.push((needle.clone(), index)),
        }
    }

    /// Marks in `passed` the tests `raw_value` (a member's JSON text) may pass; `folded`
    /// is scratch space.
    fn judge(&self, raw_value: &str, folded: &mut String, passed: &mut TestBits) {
        let plain = raw_value
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            // Escapes are not decoded here, and non-ASCII text folds differently.
            .filter(|text| !text.contains('\\') && text.is_ascii());
        let Some(text) = plain else {
            // Numbers, booleans, arrays, objects, escaped text: rsigma's rules decide.
            self.all.iter().for_each(|&test| passed.set(test));
            return;
        };
        folded.clear();
        folded.push_str(text);
        folded.make_ascii_lowercase();
        if let Some(tests) = self.equals.get(folded.as_str()) {
            tests.iter().for_each(|&test| passed.set(test));
        }
        for (needle, test) in &self.contains {
            if folded.contains(needle.as_str()) {
                passed.set(*test);
            }
        }
    }
}

/// Which of the screen's tests may hold on a record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TestBits(Vec<u64>);

impl TestBits {
    fn none(tests: usize) -> TestBits {
        TestBits(vec![0; tests.div_ceil(64)])
    }

    fn set(&mut self, test: usize) {
        self.0[test / 64] |= 1 << (test % 64);
    }

    fn get(&self, test: usize) -> bool {
        self.0[test / 64] & (1 << (test % 64)) != 0
    }
}

/// Member names looked up for every member of every record, so made cheap: most names
/// are passed over on one bit test of their length, the rest on their first 8 bytes,
/// before any string comparison.
#[derive(Debug)]
struct Names<T> {
    entries: Vec<(Sketch, String, T)>,
    /// Bit `n` is set when a name is `n` bytes long (bit 63: 63 or more).
    lengths: u64,
}

impl<T> Default for Names<T> {
    fn default() -> Self {
        Names {
            entries: Vec::new(),
            lengths: 0,
        }
    }
}

impl<T: Default> Names<T> {
    fn entry(&mut self, name: &str) -> &mut T {
        let at = match self.entries.iter().position(|(_, known, _)| known == name) {
            Some(at) => at,
            None => {
                self.lengths |= Sketch::of(name).length_bit();
                self.entries
                    .push((Sketch::of(name), name.to_owned(), T::default()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[at].2
    }
}

impl<T> Names<T> {
    fn get(&self, name: &str) -> Option<&T> {
        let sketch = Sketch::of(name);
        if self.lengths & sketch.length_bit() == 0 {
            return None;
        }
        self.entries
            .iter()
            .find(|(known_sketch, known, _)| {
                *known_sketch == sketch && (name.len() <= 8 || known == name)
            })
            .map(|(_, _, value)| value)
    }
}

/// What the tests read of one top-level member: its value, or members of it.
#[derive(Debug, Default)]
struct TopField {
    value: Option<FieldTests>,
    members: Option<Names<FieldTests>>,
}

/// The screen of a rule set: which records are worth parsing.
#[derive(Debug, Default)]
pub(crate) struct Prefilter {
    /// Some rule has no clauses: every record is matched.
    admits_all: bool,
    /// Every test, by index.
    tests: BTreeMap<Test, usize>,
    /// Each rule's clauses, each as the indexes of its tests.
    rules: Vec<Vec<Vec<usize>>>,
    /// Top-level member name → the tests on it, or on its members.
    top: Names<TopField>,
}

impl Prefilter {
    /// Adds `rule`'s clauses (or makes the screen admit everything).
    pub(crate) fn add_rule(&mut self, rule: &SigmaRule) {
        let clauses = rule_clauses(rule);
        if clauses.is_empty() {
            self.admits_all = true;
            return;
        }
        let indexed = clauses
            .iter()
            .map(|clause| clause.iter().map(|test| self.test_index(test)).collect())
            .collect();
        self.rules.push(indexed);
    }

    /// `test`'s index, given (and its field's lookups made) when it is new.
    fn test_index(&mut self, test: &Test) -> usize {
        if let Some(&index) = self.tests.get(test) {
            return index;
        }
        let index = self.tests.len();
        self.tests.insert(test.clone(), index);
        self.index_test(test, index);
        index
    }

    fn index_test(&mut self, (path, value_test): &Test, index: usize) {
        let written = self.top.entry(&path.written).value.get_or_insert_default();
        written.add(value_test, index);
        if let Some((outer, inner)) = &path.nested {
            let members = self.top.entry(outer).members.get_or_insert_default();
            members.entry(inner).add(value_test, index);
        }
    }

    /// Whether some rule may fire on the record `record_json`. `false` only when no rule
    /// can; text that is not one plain JSON object is admitted (the match reports it).
    pub(crate) fn admits(&self, record_json: &str) -> bool {
        if self.admits_all {
            return true;
        }
        if self.rules.is_empty() {
            return false;
        }
        let mut passed = TestBits::none(self.tests.len());
        let mut folded = String::new();
        if !self.judge_members(record_json, &mut passed, &mut folded) {
            return true;
        }
        self.rules.iter().any(|clauses| {
            clauses
                .iter()
                .all(|clause| clause.iter().any(|&test| passed.get(test)))
        })
    }

    /// Judges the record's members the tests read; `false` when its structure cannot be
    /// followed or a name is escaped (then anything may hold).
    fn judge_members(&self, record_json: &str, passed: &mut TestBits, folded: &mut String) -> bool {
        for member in object_members(record_json) {
            let Ok(member) = member else {
                return false;
            };
            // An escaped name may spell a field the tests read.
            if member.name.contains('\\') {
                return false;
            }
            let Some(field) = self.top.get(member.name) else {
                continue;
            };
            if let Some(tests) = &field.value {
                tests.judge(member.value, folded, passed);
            }
            if let Some(inner_tests) = &field.members
                && !judge_nested(inner_tests, member.value, passed, folded)
            {
                return false;
            }
        }
        true
    }
}

/// Judges the members of the object `raw_value` that tests read; `false` when anything
/// may hold (an array, which rsigma's paths spread over, or an escaped name).
fn judge_nested(
    inner_tests: &Names<FieldTests>,
    raw_value: &str,
    passed: &mut TestBits,
    folded: &mut String,
) -> bool {
    if !raw_value.starts_with('{') {
        // Strings, numbers and the like hold no members.
        return !raw_value.starts_with('[');
    }
    for member in object_members(raw_value) {
        let Ok(member) = member else {
            return false;
        };
        if member.name.contains('\\') {
            return false;
        }
        if let Some(tests) = inner_tests.get(member.name) {
            tests.judge(member.value, folded, passed);
        }
    }
    true
}

/// A rule fires when any of its conditions holds.
fn rule_clauses(rule: &SigmaRule) -> Clauses {
    any_of(
        rule.detection
            .conditions
            .iter()
            .map(|condition| condition_clauses(condition, rule)),
    )
}

fn condition_clauses(condition: &ConditionExpr, rule: &SigmaRule) -> Clauses {
    let named = &rule.detection.named;
    match condition {
        ConditionExpr::Identifier(name) => {
            named.get(name).map(detection_clauses).unwrap_or_default()
        }
        ConditionExpr::And(operands) => operands
            .iter()
            .flat_map(|operand| condition_clauses(operand, rule))
            .collect(),
        ConditionExpr::Or(operands) => any_of(
            operands
                .iter()
                .map(|operand| condition_clauses(operand, rule)),
        ),
        ConditionExpr::Not(_) => Clauses::new(),
        ConditionExpr::Selector {
            quantifier,
            pattern,
        } => {
            let chosen = named
                .iter()
                .filter(|(name, _)| pattern.matches_detection_name(name))
                .map(|(_, detection)| detection_clauses(detection));
            match quantifier {
                Quantifier::All => chosen.flatten().collect(),
                Quantifier::Any => any_of(chosen),
                Quantifier::Count(count) if *count >= 1 => any_of(chosen),
                // `0 of` holds vacuously.
                Quantifier::Count(_) => Clauses::new(),
            }
        }
    }
}

fn detection_clauses(detection: &Detection) -> Clauses {
    match detection {
        Detection::AllOf(items) => items.iter().filter_map(item_clause).collect(),
        Detection::AnyOf(detections) => any_of(detections.iter().map(detection_clauses)),
        Detection::Keywords(_)
        | Detection::ArrayMatch { .. }
        | Detection::And(_)
        | Detection::Conditional { .. } => Clauses::new(),
    }
}

fn item_clause(item: &DetectionItem) -> Option<Clause> {
    let path = FieldPath::parse(item.field.name.as_deref()?)?;
    let mut substring = false;
    for modifier in &item.field.modifiers {
        match modifier {
            Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith => substring = true,
            // Case-sensitive equality implies the folded one.
            Modifier::Cased => {}
            _ => return None,
        }
    }
    if item.values.is_empty() {
        return None;
    }
    let mut clause = Clause::new();
    for value in &item.values {
        let SigmaValue::String(text) = value else {
            return None;
        };
        let folded = text
            .as_plain()
            .filter(|plain| plain.is_ascii())?
            .to_ascii_lowercase();
        let test = if substring {
            ValueTest::Contains(folded)
        } else {
            ValueTest::Equals(folded)
        };
        clause.insert((path.clone(), test));
    }
    Some(clause)
}

/// Any operand may be the one that holds: a lone operand keeps its clauses; several make
/// one clause, the union of each operand's most selective; none when an operand has no
/// clauses (or there are no operands).
fn any_of(operands: impl Iterator<Item = Clauses>) -> Clauses {
    let mut operands: Vec<Clauses> = operands.collect();
    if operands.len() == 1 {
        return operands.remove(0);
    }
    let mut union = Clause::new();
    for clauses in operands {
        let Some(best) = most_selective(clauses) else {
            return Clauses::new();
        };
        union.extend(best);
    }
    if union.is_empty() {
        Clauses::new()
    } else {
        vec![union]
    }
}

/// The clause with the fewest substring tests, then one on `eventName` (CloudTrail's
/// most selective field: an `eventSource` admits every call of its service), then the one
/// with the fewest tests.
fn most_selective(clauses: Clauses) -> Option<Clause> {
    clauses.into_iter().min_by_key(|clause| {
        let substrings = clause
            .iter()
            .filter(|(_, test)| matches!(test, ValueTest::Contains(_)))
            .count();
        let on_event_name = clause.iter().all(|(path, _)| path.written == "eventName");
        (substrings, !on_event_name, clause.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefilter(detection: &str) -> Prefilter {
        let yaml = format!(
            "title: t\nid: 1\nlogsource: {{product: aws, service: cloudtrail}}\ndetection:\n{detection}"
        );
        let mut collection = rsigma_parser::parse_sigma_yaml(&yaml).expect("parses");
        assert!(collection.errors.is_empty(), "{:?}", collection.errors);
        let mut prefilter = Prefilter::default();
        prefilter.add_rule(&collection.rules.remove(0));
        prefilter
    }

    #[test]
    fn every_clause_of_some_rule_must_be_able_to_hold() {
        let screen = prefilter(
            "  sel:\n    eventSource: s3.amazonaws.com\n    eventName:\n      - DeleteBucket\n      \
             - PutBucketPolicy\n    userAgent|contains: boto\n  filter:\n    errorCode|re: '.*'\n  \
             condition: sel and not filter\n",
        );
        assert!(!screen.admits_all);
        assert!(screen.admits(
            r#"{"eventSource":"S3.amazonaws.com","eventName":"deletebucket","userAgent":"Boto3/1"}"#
        ));
        // A value that cannot be judged may pass every test on its field.
        assert!(
            screen
                .admits(r#"{"eventSource":"s3.amazonaws.com","eventName":7,"userAgent":"boto3"}"#)
        );
        for quiet in [
            r#"{"eventSource":"x","eventName":"DeleteBucket","userAgent":"boto3"}"#,
            r#"{"eventSource":"s3.amazonaws.com","eventName":"GetObject","userAgent":"boto3"}"#,
            r#"{"eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","userAgent":"cli"}"#,
            r#"{"eventSource":"s3.amazonaws.com","eventName":"DeleteBucket"}"#,
        ] {
            assert!(!screen.admits(quiet), "{quiet}");
        }
    }

    #[test]
    fn any_rule_may_admit_a_record() {
        let mut screen =
            prefilter("  sel:\n    eventName: DeleteTrail\n    eventSource: a\n  condition: sel\n");
        let yaml = "title: t\nid: 2\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  \
                    sel:\n    - eventName: StopLogging\n    - errorCode: AccessDenied\n  condition: sel\n";
        let mut collection = rsigma_parser::parse_sigma_yaml(yaml).expect("parses");
        screen.add_rule(&collection.rules.remove(0));
        assert!(screen.admits(r#"{"eventName":"DeleteTrail","eventSource":"a"}"#));
        assert!(screen.admits(r#"{"eventName":"GetObject","errorCode":"AccessDenied"}"#));
        assert!(screen.admits(r#"{"eventName":"StopLogging"}"#));
        assert!(!screen.admits(r#"{"eventName":"DeleteTrail","eventSource":"b"}"#));
    }

    #[test]
    fn one_of_is_screened_by_the_union_and_nested_fields_by_both_lookups() {
        let screen = prefilter(
            "  selection_root:\n    userIdentity.type: Root\n  selection_agent:\n    \
             userAgent|contains: Kali\n  condition: 1 of selection_*\n",
        );
        assert!(screen.admits(r#"{"userIdentity":{"arn":"a","type":"Root"}}"#));
        assert!(screen.admits(r#"{"userIdentity.type":"root"}"#));
        assert!(screen.admits(r#"{"userIdentity":[{"type":"IAMUser"}]}"#));
        assert!(screen.admits(r#"{"userAgent":"Mozilla kali-linux"}"#));
        assert!(!screen.admits(r#"{"userIdentity":{"type":"IAMUser"},"userAgent":"curl"}"#));
        assert!(!screen.admits(r#"{"userIdentity":"Root","eventName":"Root"}"#));
    }

    #[test]
    fn values_that_are_not_plain_ascii_strings_are_admitted() {
        let screen = prefilter("  sel:\n    eventName: DeleteTrail\n  condition: sel\n");
        for maybe in [
            r#"{"eventName":"Delete\u0054rail"}"#,
            r#"{"event\u004eame":"DeleteTrail"}"#,
            "{\"eventName\":\"DeleteTrai\u{212a}\"}",
            r#"{"eventName":["DeleteTrail"]}"#,
            r#"{"eventName":7}"#,
            r#"{"eventName":"Delete"#,
            "not json",
        ] {
            assert!(screen.admits(maybe), "{maybe}");
        }
        assert!(!screen.admits(r#"{"eventName":"StopLogging","x":{"eventName":"DeleteTrail"}}"#));
        assert!(!screen.admits("{}"));
    }

    #[test]
    fn rules_without_a_witness_admit_everything() {
        for detection in [
            "  sel:\n    eventName: A\n  condition: not sel\n",
            "  keywords:\n    - evil\n  condition: keywords\n",
            "  sel:\n    eventName|re: 'Delete.*'\n  condition: sel\n",
            "  sel:\n    eventName: Delete*\n  condition: sel\n",
            "  sel:\n    a.b.c: x\n  condition: sel\n",
            "  sel:\n    eventName: A\n  other:\n    eventSource|cidr: 10.0.0.0/8\n  \
             condition: sel or other\n",
        ] {
            assert!(prefilter(detection).admits_all, "{detection}");
        }
        // An `and` needs only one operand with a witness.
        let screen = prefilter(
            "  sel:\n    eventName: A\n  other:\n    eventSource|cidr: 10.0.0.0/8\n  \
             condition: sel and other\n",
        );
        assert!(!screen.admits_all);
    }

    #[test]
    fn an_empty_set_admits_nothing() {
        assert!(!Prefilter::default().admits(r#"{"eventName":"DeleteTrail"}"#));
    }
}

//! A record parsed once per match call, and only as far as the rules read.
//!
//! The rules' field paths make a tree ([`Reads`]); parsing keeps the values on those paths
//! and skips everything else without building it (most of a record: `requestParameters`
//! of data events, `responseElements`, `resources`, `tlsDetails`…). rsigma then reads
//! fields from the partial record exactly as from the whole one: its JSON paths look a
//! dotted name up as one top-level member first, then follow it member by member, spreading
//! over arrays, and both routes are kept. Keyword rules (which search every value) and
//! names with brackets or escapes (rsigma's array indexes) make the whole record parsed.

use rsigma_parser::{Detection, Modifier, SigmaRule, SigmaValue};
use serde::de::{DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// What of a record the rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reads {
    /// The whole record.
    Everything,
    /// The values on these paths (the root itself is never whole).
    Paths(Node),
}

/// A path tree: a member read whole (`whole`), or some of its members (`members`).
///
/// Looking a record's keys up in `members` was a quarter of the time with 50 rules, so it
/// is made cheap: most keys are passed over on one bit test (`lengths`), and the rest are
/// binary-searched by length and first 8 bytes before any string comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Node {
    whole: bool,
    /// Sorted by sketch, then name.
    members: Vec<(Sketch, String, Node)>,
    /// Bit `n` is set when a member name is `n` bytes long (bit 63: 63 or more).
    lengths: u64,
}

/// A name's length and first 8 bytes, compared before the name itself (here and by the
/// prefilter's member lookups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Sketch {
    length: usize,
    head: u64,
}

impl Sketch {
    pub(crate) fn of(name: &str) -> Sketch {
        let mut head = [0u8; 8];
        let taken = name.len().min(8);
        head[..taken].copy_from_slice(&name.as_bytes()[..taken]);
        Sketch {
            length: name.len(),
            head: u64::from_be_bytes(head),
        }
    }

    /// The bit of a set of name lengths (`u64`) this name's length takes.
    pub(crate) fn length_bit(self) -> u64 {
        1 << self.length.min(63)
    }
}

impl Node {
    fn member(&mut self, name: &str) -> &mut Node {
        let sketch = Sketch::of(name);
        let position = match self.find(sketch, name) {
            Ok(found) => found,
            Err(insert_at) => {
                self.members
                    .insert(insert_at, (sketch, name.to_owned(), Node::default()));
                self.lengths |= sketch.length_bit();
                insert_at
            }
        };
        &mut self.members[position].2
    }

    fn get(&self, name: &str) -> Option<&Node> {
        let sketch = Sketch::of(name);
        if self.lengths & sketch.length_bit() == 0 {
            return None;
        }
        let found = self.find(sketch, name).ok()?;
        Some(&self.members[found].2)
    }

    fn find(&self, sketch: Sketch, name: &str) -> Result<usize, usize> {
        self.members.binary_search_by(|(member_sketch, member, _)| {
            member_sketch
                .cmp(&sketch)
                .then_with(|| member.as_str().cmp(name))
        })
    }
}

impl Reads {
    pub(crate) fn nothing() -> Reads {
        Reads::Paths(Node::default())
    }

    /// Adds what `rule` reads.
    pub(crate) fn add_rule(&mut self, rule: &SigmaRule) {
        for detection in rule.detection.named.values() {
            self.add_detection(detection);
        }
    }

    fn add_detection(&mut self, detection: &Detection) {
        match detection {
            Detection::AllOf(items) => {
                for item in items {
                    match &item.field.name {
                        Some(name) => self.add_field(name),
                        None => *self = Reads::Everything,
                    }
                    // `fieldref` compares with another field, named by the value.
                    if item.field.has_modifier(Modifier::FieldRef) {
                        for value in &item.values {
                            match value {
                                SigmaValue::String(text) => self.add_field(&text.original),
                                _ => *self = Reads::Everything,
                            }
                        }
                    }
                }
            }
            Detection::AnyOf(detections) => {
                for inner in detections {
                    self.add_detection(inner);
                }
            }
            // Keywords search every value; array blocks are refused, but stay safe.
            Detection::Keywords(_)
            | Detection::ArrayMatch { .. }
            | Detection::And(_)
            | Detection::Conditional { .. } => *self = Reads::Everything,
        }
    }

    fn add_field(&mut self, name: &str) {
        let Reads::Paths(root) = self else {
            return;
        };
        // Brackets and escapes have rules of their own in rsigma's paths.
        if name.is_empty() || name.contains(['[', ']', '\\']) {
            *self = Reads::Everything;
            return;
        }
        // The dotted name as one top-level member, which rsigma tries first…
        root.member(name).whole = true;
        // …then member by member.
        let mut node = root;
        for segment in name.split('.') {
            node = node.member(segment);
        }
        node.whole = true;
    }
}

/// Parses a record's JSON text into what `reads` needs of it. Fails unless the text is one
/// JSON object.
pub(crate) fn parse_record(text: &str, reads: &Reads) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let object = match reads {
        Reads::Everything => deserializer.deserialize_map(WholeObject)?,
        Reads::Paths(root) => deserializer.deserialize_map(Projected { node: root })?,
    };
    deserializer.end()?;
    Ok(object)
}

/// A whole top-level object: [`Value`]'s own visitor would also take an array or scalar.
struct WholeObject;

impl<'de> Visitor<'de> for WholeObject {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some((name, value)) = access.next_entry::<String, Value>()? {
            object.insert(name, value);
        }
        Ok(Value::Object(object))
    }
}

/// A value cut down to `node`'s paths: in an object, only the members the node names
/// (whole, or cut down in turn); in an array, every element cut down by the same node,
/// since rsigma spreads a path over arrays; scalars as they are.
#[derive(Clone, Copy)]
struct Projected<'n> {
    node: &'n Node,
}

impl<'de> DeserializeSeed<'de> for Projected<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        if self.node.whole {
            serde::Deserialize::deserialize(deserializer)
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Projected<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(kept) = access.next_key_seed(Member { node: self.node })? {
            match kept {
                Some((name, node)) => {
                    let value = access.next_value_seed(Projected { node })?;
                    object.insert(name, value);
                }
                None => {
                    access.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(object))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut elements = Vec::new();
        while let Some(element) = access.next_element_seed(self)? {
            elements.push(element);
        }
        Ok(Value::Array(elements))
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A member name: with its node (and allocated) when the member is kept, `None` when it
/// is skipped.
struct Member<'n> {
    node: &'n Node,
}

impl<'de, 'n> DeserializeSeed<'de> for Member<'n> {
    type Value = Option<(String, &'n Node)>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'n> Visitor<'de> for Member<'n> {
    type Value = Option<(String, &'n Node)>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.node.get(name).map(|node| (name.to_owned(), node)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> SigmaRule {
        let mut collection = rsigma_parser::parse_sigma_yaml(yaml).expect("parses");
        assert!(collection.errors.is_empty(), "{:?}", collection.errors);
        collection.rules.remove(0)
    }

    fn reads_of(fields: &[&str]) -> Reads {
        let mut reads = Reads::nothing();
        for field in fields {
            reads.add_field(field);
        }
        reads
    }

    #[test]
    fn fields_and_field_references_are_both_read() {
        let parsed = rule(
            "title: t\nid: x\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  \
             sel:\n    eventName: CreateAccessKey\n    requestParameters.userName|fieldref: \
             userIdentity.userName\n  condition: sel\n",
        );
        let mut reads = Reads::nothing();
        reads.add_rule(&parsed);
        assert_eq!(
            reads,
            reads_of(&[
                "eventName",
                "requestParameters.userName",
                "userIdentity.userName"
            ])
        );
        let text = r#"{"eventName":"CreateAccessKey","eventTime":"t","requestParameters":{"userName":"bob","other":[1]},"userIdentity":{"type":"IAMUser","userName":"alice"}}"#;
        assert_eq!(
            parse_record(text, &reads).expect("parses"),
            serde_json::json!({
                "eventName": "CreateAccessKey",
                "requestParameters": {"userName": "bob"},
                "userIdentity": {"userName": "alice"}
            })
        );
    }

    #[test]
    fn keywords_and_indexes_read_everything() {
        let parsed = rule(
            "title: t\nid: x\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  \
             words:\n    - evil\n  condition: words\n",
        );
        let mut reads = Reads::nothing();
        reads.add_rule(&parsed);
        assert_eq!(reads, Reads::Everything);
        assert_eq!(reads_of(&["resources[0].ARN"]), Reads::Everything);
    }

    #[test]
    fn paths_spread_over_arrays_and_flat_names_are_kept() {
        let reads = reads_of(&["a.b.c", "w", "a.b"]);
        let text = r#"{"a": {"b": [{"c": 1, "d": 2}, [{"c": "x"}], 3], "e": 4}, "w": {"deep": [1, {"e": "\u00e9"}]}, "a.b.c": "flat", "z": {"skipped": [1, {"f": null}]}}"#;
        // "a.b" is read whole, so its "d" stays.
        assert_eq!(
            parse_record(text, &reads).expect("parses"),
            serde_json::json!({
                "a": {"b": [{"c": 1, "d": 2}, [{"c": "x"}], 3]},
                "w": {"deep": [1, {"e": "é"}]},
                "a.b.c": "flat"
            })
        );
        let narrower = reads_of(&["a.b.c"]);
        assert_eq!(
            parse_record(text, &narrower).expect("parses"),
            serde_json::json!({"a": {"b": [{"c": 1}, [{"c": "x"}], 3]}, "a.b.c": "flat"})
        );
        assert_eq!(
            parse_record(text, &Reads::Everything).expect("parses"),
            serde_json::from_str::<Value>(text).expect("json")
        );
    }

    #[test]
    fn anything_but_one_object_is_refused() {
        for text in ["[1]", "\"s\"", "{} {}", "{\"a\": ", "{\"a\": 1,}", ""] {
            assert!(parse_record(text, &Reads::nothing()).is_err(), "{text}");
            assert!(parse_record(text, &Reads::Everything).is_err(), "{text}");
        }
        // Skipped members must still be valid JSON.
        assert!(parse_record("{\"x\": [1, }", &Reads::nothing()).is_err());
    }
}

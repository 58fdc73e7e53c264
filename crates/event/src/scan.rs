//! Byte-level scanning of JSON text.
//!
//! Finds where values and array elements begin and end without validating or decoding
//! them: only strings, escapes and nesting depth are tracked. This is what lets a batch be
//! cut into records *before* each record is checked for UTF-8 and parsed, so one bad
//! record (invalid UTF-8, a syntax error inside balanced brackets) fails alone.
//!
//! Every function here works on arbitrary bytes and never panics: out-of-range positions
//! come back as [`ScanError`]s.

use std::ops::Range;

/// Structure the scanner could not follow, at a byte offset of the scanned text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at byte {offset}")]
pub struct ScanError {
    pub offset: usize,
    pub reason: &'static str,
}

impl ScanError {
    fn at(offset: usize, reason: &'static str) -> Self {
        ScanError { offset, reason }
    }
}

/// The top-level object of a body: either a `{"Records":[…]}` wrapper, with the byte
/// ranges of the array's elements, or any other object.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TopObject {
    RecordsWrapper {
        elements: Vec<Range<usize>>,
        end: usize,
    },
    Plain {
        end: usize,
    },
}

pub(crate) const fn is_json_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

pub(crate) fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() && is_json_whitespace(bytes[at]) {
        at += 1;
    }
    at
}

/// `range` shrunk to exclude JSON whitespace at both ends.
pub(crate) fn trim_range(bytes: &[u8], range: Range<usize>) -> Range<usize> {
    let mut start = range.start.min(bytes.len());
    let mut end = range.end.min(bytes.len()).max(start);
    while start < end && is_json_whitespace(bytes[start]) {
        start += 1;
    }
    while end > start && is_json_whitespace(bytes[end - 1]) {
        end -= 1;
    }
    start..end
}

const LOW_BITS: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);
const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
const BACKSLASHES: u64 = u64::from_le_bytes([b'\\'; 8]);

/// The high bit of each zero byte of `word`, and maybe of bytes above the first zero
/// byte (the classic SWAR test: the borrow can spill upwards, never downwards, so the
/// lowest set bit is exact).
const fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(LOW_BITS) & !word & HIGH_BITS
}

/// Offset (from `from`) of the first `"` or `\` at or after `from`.
///
/// Most of a CloudTrail record is string content, so this loop dominates splitting; it
/// looks at eight bytes at a time, and reads the first hit's place off the bit mask.
fn find_quote_or_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word_bytes = [0u8; 8];
        word_bytes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word_bytes);
        let hits = zero_bytes(word ^ QUOTES) | zero_bytes(word ^ BACKSLASHES);
        if hits != 0 {
            // Little-endian: the lowest bit belongs to the first byte.
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes
        .get(at..)?
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\')
        .map(|offset| at + offset)
}

/// Index just past the closing quote of the string whose opening quote is at `open`.
pub(crate) fn string_end(bytes: &[u8], open: usize) -> Result<usize, ScanError> {
    let mut at = open + 1;
    loop {
        let Some(found) = find_quote_or_backslash(bytes, at) else {
            return Err(ScanError::at(open, "unterminated string"));
        };
        if bytes[found] == b'"' {
            return Ok(found + 1);
        }
        // A backslash: whatever follows it is escaped, including a quote.
        at = found + 2;
    }
}

/// Index just past the value (object, array, string or scalar) that starts at `start`.
pub(crate) fn value_end(bytes: &[u8], start: usize) -> Result<usize, ScanError> {
    match bytes.get(start) {
        None => Err(ScanError::at(
            start,
            "expected a value, found the end of the text",
        )),
        Some(b'"') => string_end(bytes, start),
        Some(b'{' | b'[') => container_end(bytes, start),
        Some(b'}' | b']' | b',' | b':') => Err(ScanError::at(start, "expected a value")),
        Some(_) => {
            let mut at = start;
            while at < bytes.len() && !is_json_whitespace(bytes[at]) && !is_structural(bytes[at]) {
                at += 1;
            }
            if at == start {
                return Err(ScanError::at(start, "expected a value"));
            }
            Ok(at)
        }
    }
}

const fn is_structural(byte: u8) -> bool {
    matches!(byte, b'{' | b'}' | b'[' | b']' | b',' | b':' | b'"')
}

fn container_end(bytes: &[u8], open: usize) -> Result<usize, ScanError> {
    let mut depth = 0usize;
    let mut at = open;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                at = string_end(bytes, at)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Ok(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
    Err(ScanError::at(open, "unterminated object or array"))
}

/// Splits the array whose `[` is at `open` into the byte ranges of its top-level elements
/// (untrimmed), and returns them with the index just past the closing `]`.
///
/// An empty array has no elements; an empty element (`[1,,2]`, `[1,]`) is returned as a
/// blank range, so the caller reports it under its own index.
pub(crate) fn split_array(
    bytes: &[u8],
    open: usize,
) -> Result<(Vec<Range<usize>>, usize), ScanError> {
    let mut elements = Vec::new();
    let mut depth = 0usize;
    let mut element_start = open + 1;
    let mut at = open + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                at = string_end(bytes, at)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 0 => depth -= 1,
            b']' => {
                let last = element_start..at;
                let is_blank = trim_range(bytes, last.clone()).is_empty();
                if !elements.is_empty() || !is_blank {
                    elements.push(last);
                }
                return Ok((elements, at + 1));
            }
            b'}' => return Err(ScanError::at(at, "`}` closes an array")),
            b',' if depth == 0 => {
                elements.push(element_start..at);
                element_start = at + 1;
            }
            _ => {}
        }
        at += 1;
    }
    Err(ScanError::at(open, "unterminated array"))
}

/// Walks the members of the object whose `{` is at `open`: [`MemberWalk::next_name`]
/// finds a member's name and where its value starts, the caller moves past the value
/// (skipping it or splitting it) and hands its end to [`MemberWalk::after_value`].
pub(crate) struct MemberWalk<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Just past the closing `}`, once it is found.
    end: Option<usize>,
}

impl<'a> MemberWalk<'a> {
    pub(crate) fn new(bytes: &'a [u8], open: usize) -> Result<MemberWalk<'a>, ScanError> {
        if bytes.get(open) != Some(&b'{') {
            return Err(ScanError::at(open, "expected an object"));
        }
        let at = skip_whitespace(bytes, open + 1);
        let end = (bytes.get(at) == Some(&b'}')).then_some(at + 1);
        Ok(MemberWalk { bytes, at, end })
    }

    /// The next member's name (between its quotes, escapes undecoded) and where its value
    /// starts; `None` after the last member.
    pub(crate) fn next_name(&mut self) -> Result<Option<(Range<usize>, usize)>, ScanError> {
        if self.end.is_some() {
            return Ok(None);
        }
        let (bytes, at) = (self.bytes, self.at);
        if bytes.get(at) != Some(&b'"') {
            return Err(ScanError::at(at, "expected a member name"));
        }
        let name_end = string_end(bytes, at)?;
        let colon = skip_whitespace(bytes, name_end);
        if bytes.get(colon) != Some(&b':') {
            return Err(ScanError::at(colon, "expected `:` after a member name"));
        }
        Ok(Some((
            at + 1..name_end - 1,
            skip_whitespace(bytes, colon + 1),
        )))
    }

    /// Moves past the member whose value ends at `value_end`.
    pub(crate) fn after_value(&mut self, value_end: usize) -> Result<(), ScanError> {
        let at = skip_whitespace(self.bytes, value_end);
        match self.bytes.get(at) {
            Some(b',') => self.at = skip_whitespace(self.bytes, at + 1),
            Some(b'}') => self.end = Some(at + 1),
            _ => return Err(ScanError::at(at, "expected `,` or `}` after a member")),
        }
        Ok(())
    }

    /// Just past the closing `}`, once every member was walked.
    pub(crate) fn end(&self) -> Option<usize> {
        self.end
    }
}

/// Scans the object whose `{` is at `open`, member by member, recognising a top-level
/// `"Records"` member whose value is an array.
pub(crate) fn scan_top_object(bytes: &[u8], open: usize) -> Result<TopObject, ScanError> {
    let mut records = None;
    let mut walk = MemberWalk::new(bytes, open)?;
    while let Some((name, value_start)) = walk.next_name()? {
        let value_end = if &bytes[name] == b"Records"
            && records.is_none()
            && bytes.get(value_start) == Some(&b'[')
        {
            let (elements, array_end) = split_array(bytes, value_start)?;
            records = Some(elements);
            array_end
        } else {
            value_end(bytes, value_start)?
        };
        walk.after_value(value_end)?;
    }
    let end = walk
        .end()
        .ok_or_else(|| ScanError::at(open, "unterminated object"))?;
    Ok(match records {
        Some(elements) => TopObject::RecordsWrapper { elements, end },
        None => TopObject::Plain { end },
    })
}

/// One member of a JSON object, as its raw text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawObjectMember<'a> {
    /// The name between its quotes, with any escapes left undecoded.
    pub name: &'a str,
    /// The value's text: an object, array, string (with its quotes), number, `true`,
    /// `false` or `null`.
    pub value: &'a str,
}

/// The members of the JSON object `text` (surrounding whitespace allowed), in order.
///
/// Only the structure is followed (strings, escapes, nesting): nothing is decoded or
/// validated, so this is several times cheaper than parsing when a caller needs a few
/// members of large records. An error (including text after the object) ends the
/// iteration.
pub fn object_members(text: &str) -> ObjectMembers<'_> {
    let bytes = text.as_bytes();
    ObjectMembers {
        text,
        walk: Some(MemberWalk::new(bytes, skip_whitespace(bytes, 0))),
    }
}

/// The iterator of [`object_members`].
pub struct ObjectMembers<'a> {
    text: &'a str,
    /// `None` once the object ended or an error was returned.
    walk: Option<Result<MemberWalk<'a>, ScanError>>,
}

impl<'a> ObjectMembers<'a> {
    fn advance(
        text: &'a str,
        walk: &mut MemberWalk<'a>,
    ) -> Result<Option<RawObjectMember<'a>>, ScanError> {
        let Some((name, value_start)) = walk.next_name()? else {
            let end = walk.end().unwrap_or(text.len());
            if skip_whitespace(text.as_bytes(), end) < text.len() {
                return Err(ScanError::at(end, "text after the object"));
            }
            return Ok(None);
        };
        let value_end = value_end(text.as_bytes(), value_start)?;
        walk.after_value(value_end)?;
        // Both ranges start and end next to ASCII delimiters, so `get` only fails on text
        // the walk could not have produced; it is reported rather than trusted.
        match (text.get(name), text.get(value_start..value_end)) {
            (Some(name), Some(value)) => Ok(Some(RawObjectMember { name, value })),
            _ => Err(ScanError::at(
                value_start,
                "member not on character boundaries",
            )),
        }
    }
}

impl<'a> Iterator for ObjectMembers<'a> {
    type Item = Result<RawObjectMember<'a>, ScanError>;

    fn next(&mut self) -> Option<Self::Item> {
        let outcome = match self.walk.as_mut()? {
            Ok(walk) => Self::advance(self.text, walk),
            Err(error) => Err(error.clone()),
        };
        match outcome {
            Ok(Some(member)) => Some(Ok(member)),
            Ok(None) => {
                self.walk = None;
                None
            }
            Err(error) => {
                self.walk = None;
                Some(Err(error))
            }
        }
    }
}

/// `text` without whitespace outside strings. Only meaningful for valid JSON (removing
/// whitespace from invalid JSON could join tokens), so callers validate first.
pub(crate) fn compact(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut compacted = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte == b'"' {
            let end = string_end(bytes, at).unwrap_or(bytes.len());
            compacted.extend_from_slice(&bytes[at..end]);
            at = end;
        } else {
            if !is_json_whitespace(byte) {
                compacted.push(byte);
            }
            at += 1;
        }
    }
    // Only ASCII bytes were dropped, so the result is still UTF-8; the fallback keeps
    // this free of panics all the same.
    String::from_utf8(compacted).unwrap_or_else(|_| text.to_owned())
}

/// Appends `value` as a JSON string literal.
pub(crate) fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    let mut plain_start = 0;
    for (at, character) in value.char_indices() {
        let escaped = match character {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{0}'..='\u{1f}' => "",
            _ => continue,
        };
        out.push_str(&value[plain_start..at]);
        if escaped.is_empty() {
            out.push_str(&format!("\\u{:04x}", u32::from(character)));
        } else {
            out.push_str(escaped);
        }
        plain_start = at + character.len_utf8();
    }
    out.push_str(&value[plain_start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn elements_of(text: &str) -> Vec<&str> {
        let (ranges, end) = split_array(text.as_bytes(), 0).expect("array splits");
        assert_eq!(end, text.len());
        ranges.into_iter().map(|range| text[range].trim()).collect()
    }

    #[test]
    fn splits_top_level_elements_only() {
        assert_eq!(
            elements_of(r#"[{"a":[1,2],"b":"x,]}"}, 3 , "s\"]",[]]"#),
            vec![r#"{"a":[1,2],"b":"x,]}"}"#, "3", r#""s\"]""#, "[]"]
        );
    }

    #[test]
    fn empty_array_has_no_elements_but_empty_elements_are_kept() {
        assert!(elements_of("[ \n ]").is_empty());
        assert_eq!(elements_of("[1,]"), vec!["1", ""]);
        assert_eq!(elements_of("[,]"), vec!["", ""]);
    }

    #[test]
    fn escaped_backslash_before_quote_ends_string() {
        assert_eq!(elements_of(r#"["a\\",1]"#), vec![r#""a\\""#, "1"]);
        assert_eq!(string_end(br#""0123456789abcdef\\"x"#, 0), Ok(20));
        assert_eq!(
            string_end(br#""0123456789abcdef\"x"#, 0).map_err(|error| error.reason),
            Err("unterminated string")
        );
    }

    #[test]
    fn unterminated_and_mismatched_arrays_are_errors() {
        assert!(split_array(b"[1,2", 0).is_err());
        assert!(split_array(b"[1,\"]", 0).is_err());
        assert!(split_array(b"[1}", 0).is_err());
    }

    #[test]
    fn recognises_records_wrapper_anywhere_among_members() {
        let text = br#"{"x":{"Records":1},"Records":[{"a":1},{"b":2}],"y":[]} "#;
        let Ok(TopObject::RecordsWrapper { elements, end }) = scan_top_object(text, 0) else {
            panic!("wrapper expected");
        };
        assert_eq!(elements.len(), 2);
        assert_eq!(end, text.len() - 1);
        assert_eq!(
            scan_top_object(br#"{"Records":null}"#, 0),
            Ok(TopObject::Plain { end: 16 })
        );
        assert_eq!(scan_top_object(b"{ }", 0), Ok(TopObject::Plain { end: 3 }));
        assert!(scan_top_object(br#"{"a" 1}"#, 0).is_err());
    }

    #[test]
    fn object_members_are_raw_text_in_order() {
        let text = r#" { "a" : {"b":[1,"}"]} , "c\"d":"x\"y", "e":-1.5e3,"f":null } "#;
        let members: Vec<(&str, &str)> = object_members(text)
            .map(|member| member.map(|member| (member.name, member.value)))
            .collect::<Result<_, _>>()
            .expect("walks");
        assert_eq!(
            members,
            vec![
                ("a", r#"{"b":[1,"}"]}"#),
                (r#"c\"d"#, r#""x\"y""#),
                ("e", "-1.5e3"),
                ("f", "null"),
            ]
        );
        assert_eq!(object_members("{}").count(), 0);
    }

    #[test]
    fn object_members_stop_at_the_first_error() {
        for broken in [
            "[1]",
            "{} {}",
            r#"{"a" 1}"#,
            r#"{"a":1"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":"#,
        ] {
            let results: Vec<_> = object_members(broken).collect();
            assert!(
                results.last().is_some_and(Result::is_err),
                "{broken}: {results:?}"
            );
            assert_eq!(results.iter().filter(|result| result.is_err()).count(), 1);
        }
    }

    #[test]
    fn compact_keeps_string_whitespace() {
        assert_eq!(
            compact("{\n  \"a b\" : [ 1 , \"c\\\" d\" ]\r\n}"),
            r#"{"a b":[1,"c\" d"]}"#
        );
    }

    #[test]
    fn json_string_escaping_round_trips() {
        let mut out = String::new();
        push_json_string(&mut out, "q\"b\\n\n\u{1}é");
        assert_eq!(
            serde_json::from_str::<String>(&out).expect("valid JSON string"),
            "q\"b\\n\n\u{1}é"
        );
    }

    proptest! {
        #[test]
        fn the_first_quote_or_backslash_is_found_exactly(
            bytes in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), Just(0u8), Just(0x80u8), any::<u8>()], 0..40),
            from in 0usize..8
        ) {
            let naive = bytes
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, byte)| **byte == b'"' || **byte == b'\\')
                .map(|(at, _)| at);
            prop_assert_eq!(find_quote_or_backslash(&bytes, from), naive);
        }

        #[test]
        fn scanning_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = object_members(text).count();
            }
            for start in 0..bytes.len().min(4) {
                let _ = split_array(&bytes, start);
                let _ = scan_top_object(&bytes, start);
                let _ = value_end(&bytes, start);
            }
            let backwards = bytes.len()..bytes.len() / 2;
            let _ = trim_range(&bytes, backwards);
        }

        #[test]
        fn scanning_json_like_bytes_never_panics(text in r#"[\[\]{}",:\\ a1\n]{0,64}"#) {
            let bytes = text.as_bytes();
            let _ = split_array(bytes, 0);
            let _ = scan_top_object(bytes, 0);
            let _ = value_end(bytes, 0);
            let _ = object_members(&text).count();
            let _ = compact(&text);
        }

        #[test]
        fn walking_a_serialised_object_finds_each_member(
            map in proptest::collection::btree_map("[a-z\"\\\\]{0,6}", arbitrary_json(), 0..6)
        ) {
            let object: serde_json::Map<String, serde_json::Value> = map.into_iter().collect();
            let text = serde_json::to_string_pretty(&object).expect("serialises");
            let mut found = serde_json::Map::new();
            for member in object_members(&text) {
                let member = member.expect("walks");
                let name: String = serde_json::from_str(&format!("\"{}\"", member.name))
                    .expect("name decodes");
                found.insert(name, serde_json::from_str(member.value).expect("value parses"));
            }
            prop_assert_eq!(found, object);
        }

        #[test]
        fn splitting_a_serialised_array_finds_each_element(values in proptest::collection::vec(arbitrary_json(), 0..8)) {
            let text = serde_json::to_string_pretty(&values).expect("serialises");
            let (ranges, end) = split_array(text.as_bytes(), 0).expect("splits");
            prop_assert_eq!(end, text.len());
            let found: Vec<serde_json::Value> = ranges
                .into_iter()
                .map(|range| serde_json::from_str(&text[range]).expect("element parses"))
                .collect();
            prop_assert_eq!(found, values);
        }
    }

    fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,8}".prop_map(serde_json::Value::from),
            r#"[\[\]{}",:\\]{0,6}"#.prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }
}

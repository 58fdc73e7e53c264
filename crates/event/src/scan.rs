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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanError {
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
const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);

/// Whether any byte of `word` is zero (the classic SWAR test; exact, no false positives
/// on "is there one", which is all we ask of it).
const fn has_zero_byte(word: u64) -> bool {
    word.wrapping_sub(LOW_BITS) & !word & HIGH_BITS != 0
}

/// Offset (from `from`) of the first `"` or `\` at or after `from`.
///
/// Most of a CloudTrail record is string content, so this loop dominates splitting; it
/// skips eight bytes at a time while none of them can end the string.
fn find_quote_or_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word_bytes = [0u8; 8];
        word_bytes.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word_bytes);
        if has_zero_byte(word ^ QUOTES) || has_zero_byte(word ^ BACKSLASHES) {
            break;
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

/// Scans the object whose `{` is at `open`, member by member, recognising a top-level
/// `"Records"` member whose value is an array.
pub(crate) fn scan_top_object(bytes: &[u8], open: usize) -> Result<TopObject, ScanError> {
    let mut records = None;
    let mut at = skip_whitespace(bytes, open + 1);
    if bytes.get(at) == Some(&b'}') {
        return Ok(TopObject::Plain { end: at + 1 });
    }
    let end = loop {
        if bytes.get(at) != Some(&b'"') {
            return Err(ScanError::at(at, "expected a member name"));
        }
        let name_end = string_end(bytes, at)?;
        let name = &bytes[at + 1..name_end - 1];
        at = skip_whitespace(bytes, name_end);
        if bytes.get(at) != Some(&b':') {
            return Err(ScanError::at(at, "expected `:` after a member name"));
        }
        at = skip_whitespace(bytes, at + 1);
        if name == b"Records" && records.is_none() && bytes.get(at) == Some(&b'[') {
            let (elements, array_end) = split_array(bytes, at)?;
            records = Some(elements);
            at = array_end;
        } else {
            at = value_end(bytes, at)?;
        }
        at = skip_whitespace(bytes, at);
        match bytes.get(at) {
            Some(b',') => at = skip_whitespace(bytes, at + 1),
            Some(b'}') => break at + 1,
            _ => return Err(ScanError::at(at, "expected `,` or `}` after a member")),
        }
    };
    Ok(match records {
        Some(elements) => TopObject::RecordsWrapper { elements, end },
        None => TopObject::Plain { end },
    })
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
        fn scanning_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
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
            let _ = compact(&text);
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

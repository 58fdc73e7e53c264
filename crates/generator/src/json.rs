//! Appending JSON text to a `String` without building a tree: generating millions of
//! records must cost far less than parsing them, or the generator would distort the
//! benchmark it feeds.

use std::fmt::Write as _;

/// Appends `value` as a JSON string (with quotes), escaping what JSON requires. Generated
/// values are plain ASCII, so the escape branch is only a safety net.
pub fn push_str(out: &mut String, value: &str) {
    out.push('"');
    if !needs_escape(value.as_bytes()) {
        out.push_str(value);
    } else {
        for character in value.chars() {
            match character {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                control if (control as u32) < 0x20 => {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{:04x}", control as u32);
                }
                other => out.push(other),
            }
        }
    }
    out.push('"');
}

/// Whether any byte of `bytes` must be escaped in a JSON string. Chunks are checked
/// without an early exit inside them, which the compiler turns into vector compares: a
/// byte at a time was a quarter of the generator's time, and the generator shares the
/// cores with the server it feeds in `opentrail-bench`.
fn needs_escape(bytes: &[u8]) -> bool {
    let escaped = |byte: u8| byte < 0x20 || byte == b'"' || byte == b'\\';
    let mut chunks = bytes.chunks_exact(32);
    let any_in_chunks = chunks
        .by_ref()
        .any(|chunk| chunk.iter().fold(false, |any, &byte| any | escaped(byte)));
    // Most values are shorter than a chunk: the rest is folded without an early exit too.
    any_in_chunks
        || chunks
            .remainder()
            .iter()
            .fold(false, |any, &byte| any | escaped(byte))
}

/// Appends `"` and the concatenation of `parts` as one JSON string: the generator's
/// values are mostly pieces joined (an ARN from its account and name), and joining them in
/// place instead of through `format!` (with ids and event times formatted without
/// allocating) took about a quarter off the generator's time.
fn push_parts(out: &mut String, parts: &[&str]) {
    out.push('"');
    let start = out.len();
    for part in parts {
        out.push_str(part);
    }
    if needs_escape(&out.as_bytes()[start..]) {
        let joined = out.split_off(start);
        out.pop();
        push_str(out, &joined);
    } else {
        out.push('"');
    }
}

/// Appends `,"key":"` + the concatenation of `parts` + `"`.
pub fn field_parts(out: &mut String, key: &str, parts: &[&str]) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    push_parts(out, parts);
}

/// Appends `"key":"` + the concatenation of `parts` + `"` (the first member of an object).
pub fn first_field_parts(out: &mut String, key: &str, parts: &[&str]) {
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
    push_parts(out, parts);
}

/// Appends `,"key":"value"`.
pub fn field(out: &mut String, key: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    push_str(out, value);
}

/// Appends `"key":"value"` (the first member of an object, no comma).
pub fn first_field(out: &mut String, key: &str, value: &str) {
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
    push_str(out, value);
}

/// Appends `,"key":` followed by raw JSON text (a number, `true`, an object…).
pub fn raw_field(out: &mut String, key: &str, raw: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    out.push_str(raw);
}

/// Appends `,"key":N`.
pub fn number_field(out: &mut String, key: &str, value: u64) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    let _ = write!(out, "{value}");
}

/// Appends `,"key":true|false`.
pub fn bool_field(out: &mut String, key: &str, value: bool) {
    raw_field(out, key, if value { "true" } else { "false" });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_json_requires() {
        let mut out = String::new();
        push_str(&mut out, "a\"b\\c\nd\u{1}");
        assert_eq!(out, r#""a\"b\\c\nd\u0001""#);
    }

    #[test]
    fn joined_parts_are_one_string_escaped_as_a_whole() {
        let mut out = String::new();
        first_field_parts(&mut out, "a", &["arn:", "x", ":y"]);
        field_parts(&mut out, "b", &["q\"", "\\", "\n"]);
        assert_eq!(out, r#""a":"arn:x:y","b":"q\"\\\n""#);
    }

    #[test]
    fn a_character_to_escape_is_found_wherever_it_is_in_a_long_value() {
        for position in 0..80 {
            for special in ['"', '\\', '\n', '\u{1f}'] {
                let mut value: String = "x".repeat(80);
                value.replace_range(position..=position, &special.to_string());
                let mut out = String::new();
                push_str(&mut out, &value);
                let parsed: String = serde_json::from_str(&out).expect("valid JSON");
                assert_eq!(parsed, value, "{special:?} at {position}");
            }
        }
    }
}

//! CloudTrail Lake queries name an event data store by its id, unquoted, although the id
//! holds `-` (`FROM 0b7f3c2e-…`), which SQL would read as a minus. Before parsing, each
//! unquoted occurrence of a known table name outside strings and comments is quoted.
//! [`rewrite_code`], which finds that code, serves the other rewrites before parsing too.

/// `sql` with every unquoted occurrence of one of `names` (compared case-insensitively)
/// written as the quoted name.
pub(crate) fn quote_table_names(sql: &str, names: &[&str]) -> String {
    rewrite_words(sql, |word| {
        names
            .iter()
            .find(|name| name.eq_ignore_ascii_case(word))
            .map(|name| format!("\"{name}\""))
    })
}

/// The event data store ids `sql` names: words shaped like a UUID outside strings, quoted
/// names and comments (an eventID compared in a literal is not one), lower-cased, each
/// once, in order.
pub fn data_store_ids_in(sql: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    rewrite_words(sql, |word| {
        let id = word.to_ascii_lowercase();
        if is_uuid(&id) && !ids.contains(&id) {
            ids.push(id);
        }
        None
    });
    ids
}

fn is_uuid(word: &str) -> bool {
    word.len() == 36
        && word.char_indices().all(|(index, character)| match index {
            8 | 13 | 18 | 23 => character == '-',
            _ => character.is_ascii_hexdigit(),
        })
}

/// `sql` with each unquoted word outside strings and comments replaced by what
/// `replace` answers for it (kept when it answers `None`).
fn rewrite_words(sql: &str, mut replace: impl FnMut(&str) -> Option<String>) -> String {
    rewrite_code(sql, |rest| {
        let first = *rest.as_bytes().first()?;
        if !is_word_byte(first) || first == b'-' {
            return None;
        }
        let word = &rest[..word_len(rest)];
        // A word is consumed whole even when kept, so that no rewrite starts inside it.
        Some((word.len(), replace(word).unwrap_or_else(|| word.to_owned())))
    })
}

/// `sql` rewritten where it is code: at each position outside strings, quoted names and
/// comments, `rewrite` is given the rest of the text and may answer how many bytes of it
/// (at least one, ending on a character boundary) to replace, and with what.
pub(crate) fn rewrite_code(
    sql: &str,
    mut rewrite: impl FnMut(&str) -> Option<(usize, String)>,
) -> String {
    let mut rewritten = String::with_capacity(sql.len() + 16);
    let mut index = 0;
    while index < sql.len() {
        let rest = &sql[index..];
        let skip = if rest.starts_with("--") {
            rest.find('\n').map_or(rest.len(), |end| end + 1)
        } else if let Some(comment) = rest.strip_prefix("/*") {
            comment.find("*/").map_or(rest.len(), |end| end + 4)
        } else if rest.starts_with('\'') || rest.starts_with('"') {
            quoted_len(rest)
        } else if let Some((len, replacement)) =
            rewrite(rest).filter(|(len, _)| *len > 0 && rest.is_char_boundary(*len))
        {
            rewritten.push_str(&replacement);
            index += len;
            continue;
        } else {
            rest.chars().next().map_or(1, char::len_utf8)
        };
        rewritten.push_str(&rest[..skip]);
        index += skip;
    }
    rewritten
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// The length of the word at the start of `text`: letters, digits, `_` and `-`, but not a
/// `--` that starts a comment.
fn word_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut len = 0;
    while len < bytes.len() && is_word_byte(bytes[len]) {
        if bytes[len] == b'-' && bytes.get(len + 1) == Some(&b'-') {
            break;
        }
        len += 1;
    }
    len.max(1)
}

/// The length of the quoted string or identifier at the start of `text`, doubled quotes
/// included; the rest of the text when it is never closed.
pub(crate) fn quoted_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let quote = bytes[0];
    let mut index = 1;
    while index < bytes.len() {
        if bytes[index] == quote {
            if bytes.get(index + 1) == Some(&quote) {
                index += 2;
                continue;
            }
            return index + 1;
        }
        index += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::{data_store_ids_in, quote_table_names};

    const ID: &str = "0b7f3c2e-51c6-4d18-8dec-3c7f7e5e3f8a";

    #[test]
    fn an_unquoted_id_is_quoted_and_nothing_else_changes() {
        let sql = format!(
            "SELECT eventName, a-b FROM {} WHERE x = 1",
            ID.to_uppercase()
        );
        assert_eq!(
            quote_table_names(&sql, &[ID]),
            format!("SELECT eventName, a-b FROM \"{ID}\" WHERE x = 1")
        );
    }

    #[test]
    fn strings_comments_and_quoted_names_are_left_alone() {
        let sql =
            format!("SELECT '{ID}', 'it''s {ID}' FROM \"{ID}\" -- {ID}\n/* {ID} */ JOIN {ID}x");
        assert_eq!(quote_table_names(&sql, &[ID]), sql);
    }

    #[test]
    fn a_comment_right_after_the_name_ends_it() {
        let sql = format!("SELECT * FROM {ID}--note\n");
        assert_eq!(
            quote_table_names(&sql, &[ID]),
            format!("SELECT * FROM \"{ID}\"--note\n")
        );
    }

    #[test]
    fn store_ids_are_found_outside_literals_and_comments() {
        let store = "0f6f0d6e-7a4f-4f57-9d55-4d1a1b2c3d4e";
        let event = "11111111-2222-3333-4444-555555555555";
        let statement = format!(
            "SELECT * FROM {store} -- not {event}\nWHERE eventid = '{event}' AND x = 'it''s {event}' AND y IN (SELECT 1 FROM {})",
            store.to_uppercase()
        );
        assert_eq!(data_store_ids_in(&statement), vec![store.to_owned()]);
    }

    #[test]
    fn text_that_is_not_ascii_survives() {
        let sql = "SELECT 'é' AS ü FROM events";
        assert_eq!(
            quote_table_names(sql, &["events"]),
            "SELECT 'é' AS ü FROM \"events\""
        );
    }
}

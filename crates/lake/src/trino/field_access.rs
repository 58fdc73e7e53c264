//! A field of a call's or a subscript's result, `element_at(resources, 1).arn` or
//! `resources[1].arn`: sqlparser reads it, but DataFusion 55 plans `.name` only after a
//! column's name ("Dot access not supported for non-string expr"). Before parsing, each
//! such `.name` outside strings and comments is written as the subscript DataFusion plans
//! as the same field access: `element_at(resources, 1)['arn']`.

use crate::names::{quoted_len, rewrite_code};

/// `sql` with every `.name` right after a `)` or a `]` written as `['name']`.
pub(crate) fn subscript_field_access(sql: &str) -> String {
    rewrite_code(sql, |rest| {
        let closer = rest.chars().next().filter(|c| matches!(c, ')' | ']'))?;
        let mut consumed = closer.len_utf8();
        let mut rewritten = closer.to_string();
        // `.a.b`: each step a subscript of the one before.
        while let Some((len, name)) = dot_name(&rest[consumed..]) {
            rewritten.push_str(&format!("['{}']", name.replace('\'', "''")));
            consumed += len;
        }
        (rewritten.len() > closer.len_utf8()).then_some((consumed, rewritten))
    })
}

/// The `.name` at the start of `text` (spaces around the dot allowed): its length and the
/// field's name, lower-cased unless quoted, as DataFusion reads a name.
fn dot_name(text: &str) -> Option<(usize, String)> {
    let name_start = text.trim_start().strip_prefix('.')?.trim_start();
    let (name_len, name) = if name_start.starts_with('"') {
        let len = quoted_len(name_start);
        let quoted = name_start[..len].strip_prefix('"')?.strip_suffix('"')?;
        (len, quoted.replace("\"\"", "\""))
    } else {
        let first = name_start.bytes().next()?;
        if !(first.is_ascii_alphabetic() || first == b'_') {
            return None;
        }
        let len = name_start
            .bytes()
            .take_while(|byte| byte.is_ascii_alphanumeric() || *byte == b'_')
            .count();
        (len, name_start[..len].to_ascii_lowercase())
    };
    Some((text.len() - name_start.len() + name_len, name))
}

#[cfg(test)]
mod tests {
    use super::subscript_field_access;

    #[test]
    fn a_field_after_a_call_or_a_subscript_becomes_a_subscript() {
        assert_eq!(
            subscript_field_access("SELECT element_at(resources, 1).ARN, resources[1] . \"Type\""),
            "SELECT element_at(resources, 1)['arn'], resources[1]['Type']"
        );
        assert_eq!(
            subscript_field_access("SELECT (f(x)).a.b_2.\"it\"\"s\" FROM t"),
            "SELECT (f(x))['a']['b_2']['it\"s'] FROM t"
        );
    }

    #[test]
    fn names_strings_comments_and_numbers_are_left_alone() {
        for sql in [
            "SELECT useridentity.sessioncontext.sessionissuer.arn FROM t",
            "SELECT 'f(x).arn', \"g(y).arn\" FROM t -- h(z).arn\n/* i(w).arn */",
            "SELECT count(*) FROM t WHERE x IN (1) .5",
            "SELECT t.* FROM (SELECT 1) t",
            "SELECT (a).* FROM t",
        ] {
            assert_eq!(subscript_field_access(sql), sql);
        }
    }
}

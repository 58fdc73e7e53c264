//! Lines of a rule file for refusals. rsigma gives a position only for YAML syntax errors
//! (in the message: "… at line L column C"); every other problem is found by searching the
//! text for what it names, which is right for the files people write (one key per line)
//! and otherwise points at the first place the name appears.

/// The line a YAML syntax error names, from rsigma's message.
pub(crate) fn yaml_error_line(message: &str) -> Option<u32> {
    let (_, after) = message.split_once(" line ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The line of the first document whose `title:` is `title`, if any.
pub(crate) fn title_line(text: &str, title: &str) -> Option<u32> {
    lines(text, 1).find_map(|(number, line)| {
        let value = line.strip_prefix("title:")?.trim();
        (unquote(value) == title).then_some(number)
    })
}

/// The first line at or after `from` (1-based) that holds `needle` outside a comment.
pub(crate) fn line_containing(text: &str, needle: &str, from: u32) -> Option<u32> {
    lines(text, from).find_map(|(number, line)| {
        let code = line.split(" #").next().unwrap_or(line);
        (!code.trim_start().starts_with('#') && code.contains(needle)).then_some(number)
    })
}

/// Where a parse problem rsigma reports as text probably is.
pub(crate) fn parse_error_line(text: &str, message: &str) -> Option<u32> {
    if message.starts_with("YAML") {
        return yaml_error_line(message);
    }
    if let Some(modifier) = quoted_after(message, "Unknown modifier ") {
        return line_containing(text, &format!("|{modifier}"), 1);
    }
    if message.contains("`not` is not a value modifier") {
        return line_containing(text, "|not", 1);
    }
    if message.contains("Condition") || message.contains("condition") {
        return line_containing(text, "condition:", 1);
    }
    if let Some((field, _)) = message
        .strip_prefix("invalid ")
        .and_then(|rest| rest.split_once(':'))
    {
        return line_containing(text, &format!("{field}:"), 1);
    }
    if message.contains("detection") {
        return line_containing(text, "detection:", 1);
    }
    if message.contains("logsource") {
        return line_containing(text, "logsource:", 1);
    }
    None
}

/// Where a compile problem of the rule starting at line `from` probably is.
pub(crate) fn compile_error_line(text: &str, message: &str, from: u32) -> Option<u32> {
    let needle = if message.contains("regex") {
        "|re"
    } else if message.contains("CIDR") {
        "|cidr"
    } else if message.contains("detection identifier") {
        "condition:"
    } else if message.contains("base64") {
        "|base64"
    } else {
        return None;
    };
    line_containing(text, needle, from)
}

/// The text between the first pair of single quotes after `prefix`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    let rest = rest.strip_prefix('\'')?;
    rest.split_once('\'').map(|(inside, _)| inside)
}

fn lines(text: &str, from: u32) -> impl Iterator<Item = (u32, &str)> {
    text.lines()
        .zip(1u32..)
        .map(|(line, number)| (number, line))
        .filter(move |(number, _)| *number >= from)
}

fn unquote(value: &str) -> &str {
    let unquoted = value
        .strip_prefix('\'')
        .and_then(|inner| inner.strip_suffix('\''))
        .or_else(|| {
            value
                .strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'))
        });
    unquoted.unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "title: 'First'\ndetection:\n  sel:\n    eventName|foo: x\n  condition: sel | count() > 3\n---\ntitle: Second\n# timeframe: 5m\ntimeframe: 5m\n";

    #[test]
    fn yaml_errors_name_their_line() {
        assert_eq!(
            yaml_error_line("YAML parse error: did not find expected key at line 4 column 3"),
            Some(4)
        );
        assert_eq!(yaml_error_line("no position"), None);
    }

    #[test]
    fn problems_are_found_by_what_they_name() {
        assert_eq!(title_line(TEXT, "First"), Some(1));
        assert_eq!(title_line(TEXT, "Second"), Some(7));
        assert_eq!(
            parse_error_line(TEXT, "Unknown modifier 'foo'"),
            Some(4),
            "modifier"
        );
        assert_eq!(
            parse_error_line(TEXT, "Condition parse error at 1:5: expected EOI"),
            Some(5)
        );
        assert_eq!(line_containing(TEXT, "timeframe:", 7), Some(9), "comments");
        assert_eq!(parse_error_line(TEXT, "Missing required field 'x'"), None);
    }
}

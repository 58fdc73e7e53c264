//! How client commands print results: an aligned table for people, JSON (and, for
//! `lookup`, CSV) for scripts.

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Output options shared by client commands.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Pretty-printed JSON, as the server sent it.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Columns padded to their widest cell; the last column is not padded.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths = column_widths(header, rows);
    let header_cells: Vec<String> = header.iter().map(|title| (*title).to_owned()).collect();
    let mut text = render_rows(&widths, std::slice::from_ref(&header_cells));
    text.push_str(&render_rows(&widths, rows));
    text
}

/// The width of each column: its widest cell, title included.
pub fn column_widths(header: &[&str], rows: &[Vec<String>]) -> Vec<usize> {
    let column_count = header.len();
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (column, cell) in row.iter().enumerate().take(column_count) {
            widths[column] = widths[column].max(cell.chars().count());
        }
    }
    widths
}

/// Rows padded to fixed widths, one line each. A cell wider than its column (possible when
/// the widths were measured on earlier rows only) pushes the rest of its line right rather
/// than being cut: a table must never hide part of a value.
pub fn render_rows(widths: &[usize], rows: &[Vec<String>]) -> String {
    let column_count = widths.len();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate().take(column_count) {
            if column + 1 == column_count {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[column]));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// One CSV record (RFC 4180): fields joined by commas, ended by `\n`. A field holding a
/// comma, a double quote or a line break is wrapped in double quotes, with inner quotes
/// doubled; other fields are written as they are.
pub fn csv_record<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = String::new();
    for (position, field) in fields.iter().enumerate() {
        if position > 0 {
            line.push(',');
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&field.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(field);
        }
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_align() {
        let table = render_table(
            &["ID", "ROLE"],
            &[
                vec!["short".to_owned(), "admin".to_owned()],
                vec!["much-longer".to_owned(), "read".to_owned()],
            ],
        );
        assert_eq!(
            table,
            "ID           ROLE\nshort        admin\nmuch-longer  read\n"
        );
    }

    #[test]
    fn rows_wider_than_measured_push_right_instead_of_being_cut() {
        let widths = column_widths(&["A", "B"], &[vec!["xx".to_owned(), "1".to_owned()]]);
        assert_eq!(
            render_rows(&widths, &[vec!["wider".to_owned(), "2".to_owned()]]),
            "wider  2\n"
        );
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(
            csv_record(&["plain", "", "with space"]),
            "plain,,with space\n"
        );
        assert_eq!(
            csv_record(&["a,b", "say \"hi\"", "two\nlines", "cr\r"]),
            "\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\r\"\n"
        );
        assert_eq!(csv_record(&["\""]), "\"\"\"\"\n");
    }
}

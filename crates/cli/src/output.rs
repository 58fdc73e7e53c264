//! How client commands print results: an aligned table for people, JSON for scripts.

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
    let column_count = header.len();
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (column, cell) in row.iter().enumerate().take(column_count) {
            widths[column] = widths[column].max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header_cells: Vec<String> = header.iter().map(|title| (*title).to_owned()).collect();
    for row in std::iter::once(&header_cells).chain(rows) {
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
}

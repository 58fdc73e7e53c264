//! The schema table in the crate docs is the schema in code.

use opentrail_archive::{COLUMNS, PARTITION_COLUMN, arrow_schema};

#[test]
fn the_documented_schema_table_matches_the_code() {
    let source = include_str!("../../src/lib.rs");
    let documented: Vec<(String, String)> = source
        .lines()
        .filter_map(|line| line.strip_prefix("//! | `"))
        .filter_map(|row| {
            let (name, rest) = row.split_once("` | ")?;
            let arrow_type = rest.split(" | ").next()?;
            Some((name.to_owned(), arrow_type.to_owned()))
        })
        .collect();
    let schema = arrow_schema();
    let mut expected: Vec<(String, String)> = COLUMNS
        .iter()
        .map(|column| {
            let field = schema.field_with_name(column.name).expect("field");
            let arrow_type = match field.data_type() {
                arrow_schema::DataType::Utf8
                    if column.column_type == opentrail_archive::ColumnType::Json =>
                {
                    "Utf8 (JSON".to_owned()
                }
                arrow_schema::DataType::Utf8 => "Utf8".to_owned(),
                arrow_schema::DataType::Boolean => "Boolean".to_owned(),
                arrow_schema::DataType::UInt64 => "UInt64".to_owned(),
                arrow_schema::DataType::Timestamp(_, _) => {
                    "Timestamp(Millisecond, \"UTC\")".to_owned()
                }
                other => format!("{other:?}"),
            };
            let nullability = if field.is_nullable() {
                ""
            } else {
                ", not null"
            };
            (column.name.to_owned(), format!("{arrow_type}{nullability}"))
        })
        .collect();
    expected.push((
        PARTITION_COLUMN.to_owned(),
        "partition (directory)".to_owned(),
    ));
    let documented_normalised: Vec<(String, String)> = documented
        .into_iter()
        .map(|(name, arrow_type)| {
            // "Utf8 (JSON)" and "Utf8 (JSON object)" both document a JSON column.
            let arrow_type = match arrow_type.find("(JSON") {
                Some(at) => format!("{}(JSON", &arrow_type[..at]),
                None => arrow_type,
            };
            (name, arrow_type)
        })
        .collect();
    assert_eq!(documented_normalised, expected);
}

//! Result cells as text (what CloudTrail Lake's GetQueryResults and the CLI's table and
//! CSV show) and as JSON (the CLI's `--output json`).

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::array_value_to_string;
use serde_json::Value;

use crate::error::LakeError;

/// A cell as text; `None` for SQL NULL.
pub fn cell_text(column: &ArrayRef, row: usize) -> Result<Option<String>, LakeError> {
    if column.is_null(row) {
        return Ok(None);
    }
    Ok(Some(array_value_to_string(column, row)?))
}

/// A cell as JSON: numbers and booleans as themselves, NULL as null, the rest as text.
pub fn cell_json(column: &ArrayRef, row: usize) -> Result<Value, LakeError> {
    if column.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match column.data_type() {
        DataType::Boolean => Value::Bool(column.as_boolean().value(row)),
        DataType::Int8 => column.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => column.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => column.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => column.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => column.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => column.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => column.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => column.as_primitive::<UInt64Type>().value(row).into(),
        DataType::Float32 => f64::from(column.as_primitive::<Float32Type>().value(row)).into(),
        DataType::Float64 => column.as_primitive::<Float64Type>().value(row).into(),
        _ => Value::String(array_value_to_string(column, row)?),
    })
}

/// Every row of a batch as text cells.
pub fn text_rows(batch: &RecordBatch) -> Result<Vec<Vec<Option<String>>>, LakeError> {
    (0..batch.num_rows())
        .map(|row| {
            batch
                .columns()
                .iter()
                .map(|column| cell_text(column, row))
                .collect()
        })
        .collect()
}

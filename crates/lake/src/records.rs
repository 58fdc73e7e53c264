//! Stored records (JSON) as columns of the Lake schema, for the events no Parquet holds
//! (heads) and the columns no Parquet has (everything beyond [`SEGMENT_COLUMNS`]).
//!
//! [`SEGMENT_COLUMNS`]: crate::schema::SEGMENT_COLUMNS

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, ListArray, MapArray, RecordBatch, RecordBatchOptions, StringArray,
    StructArray, TimestampMillisecondArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, FieldRef, Fields, SchemaRef};
use datafusion::arrow::error::ArrowError;
use opentrail_event::EventRecord;
use opentrail_store::LogEntry;
use serde_json::Value;

use crate::error::LakeError;
use crate::schema::is_derived_column;

/// `entries` as a batch of `schema` (a projection of the Lake schema); `parsed` holds each
/// entry's record, already parsed to decide whether it is shown.
pub(crate) fn records_batch(
    schema: &SchemaRef,
    entries: &[LogEntry],
    parsed: &[EventRecord],
) -> Result<RecordBatch, LakeError> {
    let names = || schema.fields().iter().map(|field| field.name().as_str());
    let needs_values = names().any(|name| !is_derived_column(name) && name != "eventjson");
    let values = if needs_values {
        entries
            .iter()
            .map(|entry| {
                serde_json::from_str::<Value>(&entry.json).map_err(|error| LakeError::Record {
                    seq: entry.seq,
                    detail: error.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name().as_str();
        let column = if name == "eventjson" {
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|entry| entry.json.as_str()),
            )) as ArrayRef
        } else if is_derived_column(name) {
            derived_column(name, parsed)
        } else {
            let members: Vec<Option<&Value>> =
                values.iter().map(|record| member(record, name)).collect();
            json_column(field.data_type(), &members)?
        };
        columns.push(column);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(entries.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

fn derived_column(name: &str, records: &[EventRecord]) -> ArrayRef {
    let text = |pick: fn(&EventRecord) -> Option<&str>| -> ArrayRef {
        Arc::new(records.iter().map(pick).collect::<StringArray>())
    };
    match name {
        "eventid" => text(|record| Some(&record.event_id)),
        "eventname" => text(|record| Some(&record.attributes.event_name)),
        "eventsource" => text(|record| Some(&record.attributes.event_source)),
        "recipientaccountid" => text(|record| Some(&record.account_id)),
        "awsregion" => text(|record| Some(&record.region)),
        "eventcategory" => text(|record| Some(&record.attributes.event_category)),
        "sourceipaddress" => text(|record| record.attributes.source_ip_address.as_deref()),
        "errorcode" => text(|record| record.attributes.error_code.as_deref()),
        "readonly" => Arc::new(
            records
                .iter()
                .map(|record| record.attributes.read_only)
                .collect::<BooleanArray>(),
        ),
        // "eventtime", the last of `SEGMENT_COLUMNS`.
        _ => Arc::new(
            records
                .iter()
                .map(|record| Some(record.event_time_ms))
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        ),
    }
}

/// A member of a JSON object by its lower-case Lake name (record members are camelCase).
fn member<'a>(value: &'a Value, lower_name: &str) -> Option<&'a Value> {
    let object = value.as_object()?;
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(lower_name))
        .map(|(_, value)| value)
        .filter(|value| !value.is_null())
}

/// A JSON value as Lake's text: strings as they are, anything else as its JSON.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn as_timestamp_ms(value: &Value) -> Option<i64> {
    let text = value.as_str()?;
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|timestamp| timestamp.as_millisecond())
}

/// One column of `data_type` from each row's JSON value (`None`: absent or null).
fn json_column(data_type: &DataType, values: &[Option<&Value>]) -> Result<ArrayRef, ArrowError> {
    Ok(match data_type {
        DataType::Boolean => Arc::new(
            values
                .iter()
                .map(|value| value.and_then(as_bool))
                .collect::<BooleanArray>(),
        ),
        DataType::Timestamp(_, _) => Arc::new(
            values
                .iter()
                .map(|value| value.and_then(as_timestamp_ms))
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        ),
        DataType::Struct(fields) => struct_column(fields, values)?,
        DataType::List(item) => list_column(item, values)?,
        DataType::Map(entries, _) => map_column(entries, values)?,
        _ => Arc::new(
            values
                .iter()
                .map(|value| value.and_then(as_text))
                .collect::<StringArray>(),
        ),
    })
}

fn struct_column(fields: &Fields, values: &[Option<&Value>]) -> Result<ArrayRef, ArrowError> {
    let objects: Vec<Option<&Value>> = values
        .iter()
        .map(|value| value.filter(|value| value.is_object()))
        .collect();
    let children = fields
        .iter()
        .map(|field| {
            let members: Vec<Option<&Value>> = objects
                .iter()
                .map(|object| object.and_then(|object| member(object, field.name())))
                .collect();
            json_column(field.data_type(), &members)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let nulls = NullBuffer::from_iter(objects.iter().map(Option::is_some));
    Ok(Arc::new(StructArray::try_new(
        fields.clone(),
        children,
        Some(nulls),
    )?))
}

fn list_column(item: &FieldRef, values: &[Option<&Value>]) -> Result<ArrayRef, ArrowError> {
    let arrays: Vec<Option<&Vec<Value>>> = values
        .iter()
        .map(|value| value.and_then(Value::as_array))
        .collect();
    let elements: Vec<Option<&Value>> = arrays
        .iter()
        .flatten()
        .flat_map(|array| array.iter().map(Some))
        .collect();
    let child = json_column(item.data_type(), &elements)?;
    let offsets = OffsetBuffer::from_lengths(arrays.iter().map(|array| array.map_or(0, Vec::len)));
    let nulls = NullBuffer::from_iter(arrays.iter().map(Option::is_some));
    Ok(Arc::new(ListArray::try_new(
        Arc::clone(item),
        offsets,
        child,
        Some(nulls),
    )?))
}

fn map_column(entries: &FieldRef, values: &[Option<&Value>]) -> Result<ArrayRef, ArrowError> {
    let DataType::Struct(entry_fields) = entries.data_type() else {
        return Err(ArrowError::SchemaError(format!(
            "a map's entries must be a struct, not {}",
            entries.data_type()
        )));
    };
    let objects: Vec<Option<&serde_json::Map<String, Value>>> = values
        .iter()
        .map(|value| value.and_then(Value::as_object))
        .collect();
    let keys: StringArray = objects
        .iter()
        .flatten()
        .flat_map(|object| object.keys().map(|key| Some(key.as_str())))
        .collect();
    let texts: StringArray = objects
        .iter()
        .flatten()
        .flat_map(|object| object.values().map(as_text))
        .collect();
    let entry_array = StructArray::try_new(
        entry_fields.clone(),
        vec![Arc::new(keys) as ArrayRef, Arc::new(texts)],
        None,
    )?;
    let offsets = OffsetBuffer::from_lengths(
        objects
            .iter()
            .map(|object| object.map_or(0, |map| map.len())),
    );
    let nulls = NullBuffer::from_iter(objects.iter().map(Option::is_some));
    Ok(Arc::new(MapArray::try_new(
        Arc::clone(entries),
        offsets,
        entry_array,
        Some(nulls),
        false,
    )?))
}

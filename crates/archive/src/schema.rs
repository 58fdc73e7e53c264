//! The archive's column layout: how a stored CloudTrail record becomes one Parquet row,
//! and how that row becomes the same JSON object again.
//!
//! The table of columns is [`COLUMNS`]; the crate docs render it for readers. Everything
//! here is driven by that table, so the schema, the row decomposition and the
//! reconstruction cannot drift apart.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use arrow_array::builder::{
    BooleanBuilder, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMillisecondType, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Bumped whenever a column is added, removed or changes meaning; written into every
/// file's footer as [`SCHEMA_VERSION_KEY`].
pub const SCHEMA_VERSION: &str = "1";

/// Footer key-value metadata keys every archive file carries.
pub const SCHEMA_VERSION_KEY: &str = "opentrail.archive.schema_version";
pub const SEAL_FIRST_SEQ_KEY: &str = "opentrail.archive.seal_first_seq";
pub const SEAL_LAST_SEQ_KEY: &str = "opentrail.archive.seal_last_seq";
pub const INGEST_TIME_MIN_KEY: &str = "opentrail.archive.ingest_time_min_ms";
pub const INGEST_TIME_MAX_KEY: &str = "opentrail.archive.ingest_time_max_ms";

/// The hive-style partition column, taken from the directory name (`event_date=…`), not
/// stored inside the files.
pub const PARTITION_COLUMN: &str = "event_date";

/// The Arrow time zone of both timestamp columns. Parquet stores them as
/// `TIMESTAMP(MILLIS, isAdjustedToUTC=true)`.
pub const TIMESTAMP_TIME_ZONE: &str = "UTC";

/// The Arrow type of a column, as far as the archive is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// A JSON string member, unescaped (`Utf8`).
    Text,
    /// A nested member (object, array or any other non-null value) as its JSON text,
    /// exactly as the producer wrote it (`Utf8`).
    Json,
    /// A JSON boolean member (`Boolean`).
    Bool,
    /// Milliseconds since the Unix epoch (`Timestamp(Millisecond, "UTC")`).
    Timestamp,
    /// `UInt64`.
    UInt64,
}

impl ColumnType {
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Text | ColumnType::Json => DataType::Utf8,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Timestamp => {
                DataType::Timestamp(TimeUnit::Millisecond, Some(TIMESTAMP_TIME_ZONE.into()))
            }
            ColumnType::UInt64 => DataType::UInt64,
        }
    }
}

/// Where a column's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnSource {
    /// A top-level member of the record. The column holds it when it is present with
    /// the column's type; otherwise (including `null`) the member is kept in `extra`.
    Member(&'static str),
    /// A string member of `userIdentity`: a convenience copy for filtering, the
    /// `useridentity` column stays the source of truth.
    IdentityMember(&'static str),
    /// Every top-level member no other column holds exactly, as a JSON object.
    Extra,
    /// When OpenTrail recorded the event (the log entry's ingest time).
    IngestTime,
    /// The event's position in the log.
    Seq,
}

/// One column of the archive schema.
#[derive(Debug, Clone, Copy)]
pub struct ColumnDef {
    pub name: &'static str,
    pub column_type: ColumnType,
    pub source: ColumnSource,
    /// Whether the column can be null. Only columns every valid stored record fills are
    /// not.
    pub nullable: bool,
    /// Whether Parquet dictionary encoding pays off: values repeat a lot.
    pub dictionary: bool,
}

const fn column(
    name: &'static str,
    column_type: ColumnType,
    source: ColumnSource,
    nullable: bool,
    dictionary: bool,
) -> ColumnDef {
    ColumnDef {
        name,
        column_type,
        source,
        nullable,
        dictionary,
    }
}

use ColumnSource::{Extra, IdentityMember, IngestTime, Member, Seq};
use ColumnType::{Bool, Json, Text, Timestamp, UInt64};

/// The archive schema, in file order. Column names are the lower-cased record member
/// names, as CloudTrail Lake names them.
pub const COLUMNS: &[ColumnDef] = &[
    column("eventversion", Text, Member("eventVersion"), true, true),
    column("useridentity", Json, Member("userIdentity"), true, true),
    column(
        "useridentity_type",
        Text,
        IdentityMember("type"),
        true,
        true,
    ),
    column(
        "useridentity_principalid",
        Text,
        IdentityMember("principalId"),
        true,
        true,
    ),
    column("useridentity_arn", Text, IdentityMember("arn"), true, true),
    column(
        "useridentity_accountid",
        Text,
        IdentityMember("accountId"),
        true,
        true,
    ),
    column(
        "useridentity_accesskeyid",
        Text,
        IdentityMember("accessKeyId"),
        true,
        true,
    ),
    column(
        "useridentity_username",
        Text,
        IdentityMember("userName"),
        true,
        true,
    ),
    column(
        "useridentity_invokedby",
        Text,
        IdentityMember("invokedBy"),
        true,
        true,
    ),
    column("eventtime", Timestamp, Member("eventTime"), false, false),
    column("eventsource", Text, Member("eventSource"), false, true),
    column("eventname", Text, Member("eventName"), false, true),
    column("awsregion", Text, Member("awsRegion"), true, true),
    column(
        "sourceipaddress",
        Text,
        Member("sourceIPAddress"),
        true,
        true,
    ),
    column("useragent", Text, Member("userAgent"), true, true),
    column("errorcode", Text, Member("errorCode"), true, true),
    column("errormessage", Text, Member("errorMessage"), true, true),
    column(
        "requestparameters",
        Json,
        Member("requestParameters"),
        true,
        false,
    ),
    column(
        "responseelements",
        Json,
        Member("responseElements"),
        true,
        false,
    ),
    column(
        "additionaleventdata",
        Json,
        Member("additionalEventData"),
        true,
        false,
    ),
    column("requestid", Text, Member("requestID"), true, false),
    column("eventid", Text, Member("eventID"), true, false),
    column("readonly", Bool, Member("readOnly"), true, false),
    column("resources", Json, Member("resources"), true, true),
    column("eventtype", Text, Member("eventType"), true, true),
    column("apiversion", Text, Member("apiVersion"), true, true),
    column(
        "managementevent",
        Bool,
        Member("managementEvent"),
        true,
        false,
    ),
    column(
        "recipientaccountid",
        Text,
        Member("recipientAccountId"),
        true,
        true,
    ),
    column("sharedeventid", Text, Member("sharedEventID"), true, false),
    column("vpcendpointid", Text, Member("vpcEndpointId"), true, true),
    column(
        "vpcendpointaccountid",
        Text,
        Member("vpcEndpointAccountId"),
        true,
        true,
    ),
    column(
        "serviceeventdetails",
        Json,
        Member("serviceEventDetails"),
        true,
        false,
    ),
    column("eventcategory", Text, Member("eventCategory"), true, true),
    column("tlsdetails", Json, Member("tlsDetails"), true, true),
    column(
        "sessioncredentialfromconsole",
        Text,
        Member("sessionCredentialFromConsole"),
        true,
        true,
    ),
    column("addendum", Json, Member("addendum"), true, true),
    column(
        "edgedevicedetails",
        Json,
        Member("edgeDeviceDetails"),
        true,
        false,
    ),
    column(
        "insightdetails",
        Json,
        Member("insightDetails"),
        true,
        false,
    ),
    column("extra", Json, Extra, true, true),
    column("ingesttime", Timestamp, IngestTime, false, false),
    column("seq", UInt64, Seq, false, false),
];

/// The Arrow schema of every archive file (without the partition column).
pub fn arrow_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let fields: Vec<Field> = COLUMNS
            .iter()
            .map(|column| {
                Field::new(
                    column.name,
                    column.column_type.arrow_type(),
                    column.nullable,
                )
            })
            .collect();
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// Column index by top-level member name, for the members that have a column.
static COLUMN_BY_MEMBER: LazyLock<HashMap<&'static str, usize>> = LazyLock::new(|| {
    COLUMNS
        .iter()
        .enumerate()
        .filter_map(|(index, column)| match column.source {
            Member(member) => Some((member, index)),
            _ => None,
        })
        .collect()
});

/// Why a log entry cannot become a row. Stored records were validated at ingest and carry
/// a checksum, so this means a bug or a record written by something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnarchivableRecord(pub String);

impl fmt::Display for UnarchivableRecord {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A record's top-level members in their original order, duplicates included, each
/// value left as its JSON text. Nothing is decoded that the archive does not need.
struct TopLevelMembers<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevelMembers<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = TopLevelMembers<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(24));
                while let Some(name) = map.next_key::<MemberName<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((name.0, value));
                }
                Ok(TopLevelMembers(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A member name, borrowed from the record unless it had escapes.
struct MemberName<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = MemberName<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a member name")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                value: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Borrowed(value)))
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Owned(value.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Owned(value)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// The string members of `userIdentity` that have convenience columns. Values of any
/// other type are ignored here (the `useridentity` column keeps them).
#[derive(Deserialize)]
struct IdentityScalars<'a> {
    #[serde(rename = "type", default, borrow)]
    identity_type: Option<&'a RawValue>,
    #[serde(rename = "principalId", default, borrow)]
    principal_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    arn: Option<&'a RawValue>,
    #[serde(rename = "accountId", default, borrow)]
    account_id: Option<&'a RawValue>,
    #[serde(rename = "accessKeyId", default, borrow)]
    access_key_id: Option<&'a RawValue>,
    #[serde(rename = "userName", default, borrow)]
    user_name: Option<&'a RawValue>,
    #[serde(rename = "invokedBy", default, borrow)]
    invoked_by: Option<&'a RawValue>,
}

impl<'a> IdentityScalars<'a> {
    fn member(&self, name: &str) -> Option<&'a RawValue> {
        match name {
            "type" => self.identity_type,
            "principalId" => self.principal_id,
            "arn" => self.arn,
            "accountId" => self.account_id,
            "accessKeyId" => self.access_key_id,
            "userName" => self.user_name,
            "invokedBy" => self.invoked_by,
            _ => None,
        }
    }
}

/// The UTC calendar date (`YYYY-MM-DD`) of a record's `eventTime`: its partition.
pub fn event_date_of(json: &str) -> Result<String, UnarchivableRecord> {
    let members: TopLevelMembers<'_> = serde_json::from_str(json)
        .map_err(|error| UnarchivableRecord(format!("record is not a JSON object: {error}")))?;
    let event_time = members
        .0
        .iter()
        .find(|(name, _)| name == "eventTime")
        .map(|(_, value)| *value)
        .ok_or_else(|| UnarchivableRecord("record has no eventTime".to_owned()))?;
    let (millis, _) = parse_event_time(event_time)?;
    event_date_of_millis(millis)
}

/// The UTC calendar date (`YYYY-MM-DD`) of an instant.
pub fn event_date_of_millis(millis: i64) -> Result<String, UnarchivableRecord> {
    let timestamp = jiff::Timestamp::from_millisecond(millis)
        .map_err(|error| UnarchivableRecord(format!("eventTime out of range: {error}")))?;
    Ok(timestamp.strftime("%Y-%m-%d").to_string())
}

/// `eventTime` as milliseconds, and whether its text is exactly the canonical form
/// [`canonical_event_time`] gives back (otherwise the original text goes to `extra`).
fn parse_event_time(raw: &RawValue) -> Result<(i64, bool), UnarchivableRecord> {
    let text: String = serde_json::from_str(raw.get()).map_err(|_| {
        UnarchivableRecord(format!("eventTime is not a string: {}", preview(raw.get())))
    })?;
    let timestamp: jiff::Timestamp = text.parse().map_err(|error| {
        UnarchivableRecord(format!(
            "eventTime {:?} is not RFC 3339: {error}",
            preview(&text)
        ))
    })?;
    let millis = timestamp.as_millisecond();
    let canonical = canonical_event_time(millis).is_some_and(|canonical| canonical == text);
    Ok((millis, canonical))
}

/// How the archive writes an `eventTime` back: RFC 3339 in UTC with `Z`, fractional
/// seconds only when non-zero (`2024-01-01T10:00:00Z`, CloudTrail's own form).
pub fn canonical_event_time(millis: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(millis)
        .ok()
        .map(|timestamp| timestamp.to_string())
}

fn preview(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// One cell of a row under construction.
enum Cell<'a> {
    Text(Cow<'a, str>),
    Bool(bool),
    Millis(i64),
    Seq(u64),
}

/// Builds Arrow record batches from log entries, one row per record.
pub struct RowBatchBuilder {
    builders: Vec<ColumnBuilder>,
    rows: usize,
}

enum ColumnBuilder {
    Utf8(StringBuilder),
    Bool(BooleanBuilder),
    Timestamp(TimestampMillisecondBuilder),
    UInt64(UInt64Builder),
}

impl RowBatchBuilder {
    pub fn new() -> RowBatchBuilder {
        let builders = COLUMNS
            .iter()
            .map(|column| match column.column_type {
                Text | Json => ColumnBuilder::Utf8(StringBuilder::new()),
                Bool => ColumnBuilder::Bool(BooleanBuilder::new()),
                Timestamp => ColumnBuilder::Timestamp(TimestampMillisecondBuilder::new()),
                UInt64 => ColumnBuilder::UInt64(UInt64Builder::new()),
            })
            .collect();
        RowBatchBuilder { builders, rows: 0 }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Decomposes one stored record into a row. Nothing is appended on error.
    pub fn append(
        &mut self,
        seq: u64,
        ingest_time_ms: i64,
        json: &str,
    ) -> Result<(), UnarchivableRecord> {
        let cells = decompose(seq, ingest_time_ms, json)?;
        for ((builder, cell), column) in self.builders.iter_mut().zip(cells).zip(COLUMNS) {
            match (builder, cell) {
                (ColumnBuilder::Utf8(builder), Some(Cell::Text(text))) => {
                    builder.append_value(text)
                }
                (ColumnBuilder::Utf8(builder), None) => builder.append_null(),
                (ColumnBuilder::Bool(builder), Some(Cell::Bool(value))) => {
                    builder.append_value(value)
                }
                (ColumnBuilder::Bool(builder), None) => builder.append_null(),
                (ColumnBuilder::Timestamp(builder), Some(Cell::Millis(value))) => {
                    builder.append_value(value)
                }
                (ColumnBuilder::Timestamp(builder), None) => builder.append_null(),
                (ColumnBuilder::UInt64(builder), Some(Cell::Seq(value))) => {
                    builder.append_value(value)
                }
                (ColumnBuilder::UInt64(builder), None) => builder.append_null(),
                // `decompose` fills each cell from the same table, so a mismatch is a bug
                // in this module, not bad input.
                _ => unreachable!("cell type does not match column {}", column.name),
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows appended so far as one batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|builder| -> ArrayRef {
                match builder {
                    ColumnBuilder::Utf8(builder) => Arc::new(builder.finish()),
                    ColumnBuilder::Bool(builder) => Arc::new(builder.finish()),
                    ColumnBuilder::Timestamp(builder) => {
                        Arc::new(builder.finish().with_timezone(TIMESTAMP_TIME_ZONE))
                    }
                    ColumnBuilder::UInt64(builder) => Arc::new(builder.finish()),
                }
            })
            .collect();
        self.rows = 0;
        RecordBatch::try_new(arrow_schema(), columns)
    }
}

impl Default for RowBatchBuilder {
    fn default() -> Self {
        RowBatchBuilder::new()
    }
}

/// The cells of one row, in [`COLUMNS`] order. The rules are in the crate docs
/// ("Lossless"): a column holds a member only when the member has the column's type, and
/// everything a column does not hold exactly goes to `extra`.
fn decompose(
    seq: u64,
    ingest_time_ms: i64,
    json: &str,
) -> Result<Vec<Option<Cell<'_>>>, UnarchivableRecord> {
    let members: TopLevelMembers<'_> = serde_json::from_str(json)
        .map_err(|error| UnarchivableRecord(format!("record is not a JSON object: {error}")))?;
    let mut cells: Vec<Option<Cell<'_>>> = COLUMNS.iter().map(|_| None).collect();
    // Which member columns were already given a value, so a repeated member name (which
    // RFC 8259 leaves undefined) keeps its later occurrences in `extra` instead of
    // silently dropping them.
    let mut member_seen = vec![false; COLUMNS.len()];
    let mut extra: Vec<(&Cow<'_, str>, &RawValue)> = Vec::new();
    let mut identity_raw = None;

    for (name, value) in &members.0 {
        let Some(&index) = COLUMN_BY_MEMBER.get(name.as_ref()) else {
            extra.push((name, value));
            continue;
        };
        if std::mem::replace(&mut member_seen[index], true) {
            extra.push((name, value));
            continue;
        }
        let column = &COLUMNS[index];
        let text = value.get();
        match column.column_type {
            Text => match text
                .starts_with('"')
                .then(|| serde_json::from_str::<String>(text))
            {
                Some(Ok(string)) => cells[index] = Some(Cell::Text(Cow::Owned(string))),
                _ => extra.push((name, value)),
            },
            Json => {
                if text == "null" {
                    extra.push((name, value));
                } else {
                    if name == "userIdentity" {
                        identity_raw = Some(*value);
                    }
                    cells[index] = Some(Cell::Text(Cow::Borrowed(text)));
                }
            }
            Bool => match text {
                "true" => cells[index] = Some(Cell::Bool(true)),
                "false" => cells[index] = Some(Cell::Bool(false)),
                // The event crate accepts `readOnly` as the strings "true"/"false": the
                // column still answers SQL as a boolean, and `extra` restores the string.
                r#""true""# => {
                    cells[index] = Some(Cell::Bool(true));
                    extra.push((name, value));
                }
                r#""false""# => {
                    cells[index] = Some(Cell::Bool(false));
                    extra.push((name, value));
                }
                _ => extra.push((name, value)),
            },
            Timestamp => {
                let (millis, canonical) = parse_event_time(value)?;
                cells[index] = Some(Cell::Millis(millis));
                if !canonical {
                    extra.push((name, value));
                }
            }
            UInt64 => extra.push((name, value)),
        }
    }

    let event_time_index = COLUMN_BY_MEMBER.get("eventTime").copied();
    if event_time_index.is_none_or(|index| cells[index].is_none()) {
        return Err(UnarchivableRecord("record has no eventTime".to_owned()));
    }
    for name in ["eventName", "eventSource"] {
        let filled = COLUMN_BY_MEMBER
            .get(name)
            .is_some_and(|&index| cells[index].is_some());
        if !filled {
            return Err(UnarchivableRecord(format!("record has no string {name}")));
        }
    }

    let identity =
        identity_raw.and_then(|raw| serde_json::from_str::<IdentityScalars<'_>>(raw.get()).ok());
    for (index, column) in COLUMNS.iter().enumerate() {
        match column.source {
            IdentityMember(member) => {
                let value = identity
                    .as_ref()
                    .and_then(|identity| identity.member(member));
                if let Some(Ok(string)) = value
                    .filter(|raw| raw.get().starts_with('"'))
                    .map(|raw| serde_json::from_str::<String>(raw.get()))
                {
                    cells[index] = Some(Cell::Text(Cow::Owned(string)));
                }
            }
            Extra => {
                if !extra.is_empty() {
                    cells[index] = Some(Cell::Text(Cow::Owned(extra_object_text(&extra))));
                }
            }
            IngestTime => cells[index] = Some(Cell::Millis(ingest_time_ms)),
            Seq => cells[index] = Some(Cell::Seq(seq)),
            Member(_) => {}
        }
    }
    Ok(cells)
}

/// `{"name":value,…}` with each value's original JSON text, in record order.
fn extra_object_text(members: &[(&Cow<'_, str>, &RawValue)]) -> String {
    let capacity = members
        .iter()
        .map(|(name, value)| name.len() + value.get().len() + 4)
        .sum::<usize>()
        + 2;
    let mut text = String::with_capacity(capacity);
    text.push('{');
    for (position, (name, value)) in members.iter().enumerate() {
        if position > 0 {
            text.push(',');
        }
        // Serialising a string cannot fail; the fallback only keeps this path panic-free.
        text.push_str(&serde_json::to_string(name.as_ref()).unwrap_or_else(|_| "\"\"".to_owned()));
        text.push(':');
        text.push_str(value.get());
    }
    text.push('}');
    text
}

/// Why a row could not be turned back into a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRow(pub String);

impl fmt::Display for UnreadableRow {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Rebuilds the stored record of `row` as a JSON object, equal (as a JSON value) to the
/// record that was archived. Member order is not preserved.
pub fn reconstruct_record(
    batch: &RecordBatch,
    row: usize,
) -> Result<serde_json::Map<String, serde_json::Value>, UnreadableRow> {
    let mut object = serde_json::Map::new();
    let mut extra_text = None;
    for column in COLUMNS {
        let array = batch
            .column_by_name(column.name)
            .ok_or_else(|| UnreadableRow(format!("batch has no column {}", column.name)))?;
        if array.is_null(row) {
            continue;
        }
        match column.source {
            Member(member) => {
                let value = cell_as_json(array.as_ref(), column, row)?;
                object.insert(member.to_owned(), value);
            }
            Extra => extra_text = Some(string_cell(array.as_ref(), column, row)?),
            IdentityMember(_) | IngestTime | Seq => {}
        }
    }
    if let Some(text) = extra_text {
        let extra: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|error| UnreadableRow(format!("extra is not a JSON object: {error}")))?;
        // `extra` wins: it holds the exact original whenever a column holds a converted
        // value (a string `readOnly`, a non-canonical `eventTime`) or a repeated member.
        object.extend(extra);
    }
    Ok(object)
}

fn cell_as_json(
    array: &dyn Array,
    column: &ColumnDef,
    row: usize,
) -> Result<serde_json::Value, UnreadableRow> {
    match column.column_type {
        Text => Ok(serde_json::Value::String(
            string_cell(array, column, row)?.to_owned(),
        )),
        Json => serde_json::from_str(string_cell(array, column, row)?)
            .map_err(|error| UnreadableRow(format!("column {} is not JSON: {error}", column.name))),
        Bool => {
            let values = array
                .as_boolean_opt()
                .ok_or_else(|| UnreadableRow(format!("column {} is not Boolean", column.name)))?;
            Ok(serde_json::Value::Bool(values.value(row)))
        }
        Timestamp => {
            let values = array
                .as_primitive_opt::<TimestampMillisecondType>()
                .ok_or_else(|| {
                    UnreadableRow(format!("column {} is not Timestamp(ms)", column.name))
                })?;
            let text = canonical_event_time(values.value(row))
                .ok_or_else(|| UnreadableRow(format!("column {} is out of range", column.name)))?;
            Ok(serde_json::Value::String(text))
        }
        UInt64 => {
            let values = array
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(|| UnreadableRow(format!("column {} is not UInt64", column.name)))?;
            Ok(serde_json::Value::from(values.value(row)))
        }
    }
}

fn string_cell<'a>(
    array: &'a dyn Array,
    column: &ColumnDef,
    row: usize,
) -> Result<&'a str, UnreadableRow> {
    let values = array
        .as_string_opt::<i32>()
        .ok_or_else(|| UnreadableRow(format!("column {} is not Utf8", column.name)))?;
    Ok(values.value(row))
}

/// The key-value metadata every part file carries: the schema version, the seq range it
/// holds and the range of its events' ingest times (what compaction and retention read
/// without decoding rows).
pub(crate) fn seal_metadata(
    first_seq: u64,
    last_seq: u64,
    ingest_time_min_ms: i64,
    ingest_time_max_ms: i64,
) -> Vec<parquet::file::metadata::KeyValue> {
    use parquet::file::metadata::KeyValue;
    vec![
        KeyValue::new(SCHEMA_VERSION_KEY.to_owned(), SCHEMA_VERSION.to_owned()),
        KeyValue::new(SEAL_FIRST_SEQ_KEY.to_owned(), first_seq.to_string()),
        KeyValue::new(SEAL_LAST_SEQ_KEY.to_owned(), last_seq.to_string()),
        KeyValue::new(
            INGEST_TIME_MIN_KEY.to_owned(),
            ingest_time_min_ms.to_string(),
        ),
        KeyValue::new(
            INGEST_TIME_MAX_KEY.to_owned(),
            ingest_time_max_ms.to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(json: &str) -> (RecordBatch, serde_json::Value) {
        let mut builder = RowBatchBuilder::new();
        builder
            .append(7, 1_700_000_000_000, json)
            .expect("record decomposes");
        let batch = builder.finish().expect("batch builds");
        let rebuilt = reconstruct_record(&batch, 0).expect("row reconstructs");
        (batch, serde_json::Value::Object(rebuilt))
    }

    fn original(json: &str) -> serde_json::Value {
        serde_json::from_str(json).expect("test JSON parses")
    }

    #[test]
    fn unusual_member_shapes_survive_through_extra() {
        let json = r#"{"eventTime":"2024-02-03T04:05:06.789+02:00","eventName":"GetObject","eventSource":"s3.amazonaws.com","readOnly":"true","requestParameters":null,"apiVersion":5,"userAgent":"a","userAgent":"b","unknownField":{"x":[1,2]},"na\u006de":1}"#;
        let (batch, rebuilt) = round_trip(json);
        let mut expected = original(json);
        // serde_json keeps the last of a repeated member; so must the reconstruction.
        expected["userAgent"] = serde_json::Value::from("b");
        assert_eq!(rebuilt, expected);
        let readonly = batch.column_by_name("readonly").expect("readonly column");
        assert!(readonly.as_boolean().value(0));
        let requestparameters = batch.column_by_name("requestparameters").expect("column");
        assert!(requestparameters.is_null(0), "JSON null is SQL NULL");
    }

    #[test]
    fn canonical_records_leave_extra_empty() {
        let json = r#"{"eventVersion":"1.11","eventTime":"2024-02-03T04:05:06Z","eventName":"GetObject","eventSource":"s3.amazonaws.com","readOnly":true,"requestParameters":{"bucketName":"b"},"userIdentity":{"type":"IAMUser","userName":"alice","sessionContext":{}}}"#;
        let (batch, rebuilt) = round_trip(json);
        assert_eq!(rebuilt, original(json));
        assert!(
            batch
                .column_by_name("extra")
                .expect("extra column")
                .is_null(0)
        );
        let username = batch
            .column_by_name("useridentity_username")
            .expect("column");
        assert_eq!(username.as_string::<i32>().value(0), "alice");
    }

    #[test]
    fn records_without_a_usable_event_time_are_refused() {
        let mut builder = RowBatchBuilder::new();
        assert!(
            builder
                .append(1, 0, r#"{"eventName":"A","eventSource":"b"}"#)
                .is_err()
        );
        assert!(
            builder
                .append(
                    1,
                    0,
                    r#"{"eventTime":"yesterday","eventName":"A","eventSource":"b"}"#
                )
                .is_err()
        );
        assert!(builder.append(1, 0, "[1]").is_err());
        assert_eq!(builder.rows(), 0);
    }

    #[test]
    fn event_dates_are_utc() {
        assert_eq!(
            event_date_of(r#"{"eventTime":"2024-01-01T01:00:00+02:00"}"#).as_deref(),
            Ok("2023-12-31")
        );
        assert_eq!(
            canonical_event_time(0).as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
    }
}

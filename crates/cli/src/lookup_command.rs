//! `opentrail lookup`: finds events through the server's native `GET /v1/events`.
//!
//! Every filter narrows the result (they combine with AND); the server answers newest
//! first, a page at a time, and this command follows `nextCursor` until it has printed
//! `--limit` events or there are no more. Output is written as pages arrive, so `--all`
//! runs in bounded memory whatever the format.
//!
//! Formats:
//! - `table` (default): for people; column widths are measured on the first 1000 rows.
//! - `json`: one JSON array holding the records exactly as the server returned them,
//!   one record per line; `jq '.[]'` reads it, and it is valid even when empty (`[]`).
//! - `ndjson`: one record per line and nothing else, for line-oriented tools.
//! - `csv`: a header row, then one row per event (RFC 4180 quoting, `\n` line ends).

use std::io::{self, BufWriter, Write};

use anyhow::{Context as _, bail};
use opentrail_event::{EventRecord, FilterField, arn_short_name};
use opentrail_protocol::sigv4::uri_encode;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::client::{ApiClient, ConnectionArgs};
use crate::output::{column_widths, csv_record, render_rows};
use crate::time_arg::{RangeEnd, parse_time};

const EVENTS_PATH: &str = "/v1/events";
/// The server's largest page.
const PAGE_SIZE_MAX: usize = 1000;
/// Table rows buffered before the column widths are fixed.
const TABLE_MEASURE_ROWS: usize = 1000;

#[derive(Debug, clap::Args)]
pub struct LookupArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(flatten)]
    filters: FilterArgs,
    /// Earliest event time (inclusive): now, -15m, -1h, -7d, 2024-01-02,
    /// 2024-01-02T03:04:05Z or epoch seconds.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    start: Option<String>,
    /// Latest event time (inclusive), in the same forms; a bare date means the end of that
    /// day.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    end: Option<String>,
    /// How many events to print, newest first; 0 prints every match.
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
    /// Print every matching event (same as --limit 0).
    #[arg(long, conflicts_with = "limit")]
    all: bool,
    /// Only calls that failed (events with an errorCode). Applied here, not by the server,
    /// so it may read many pages to find --limit of them; add --error-code to narrow on
    /// the server instead.
    #[arg(long)]
    errors_only: bool,
    /// Look up CloudTrail Insights events instead of API activity.
    #[arg(long)]
    insights: bool,
    /// Events of this account (12 digits) instead of your key's own; admin keys only.
    #[arg(long, value_name = "ID")]
    account: Option<String>,
    /// Output format: table, json (one array), ndjson (one record per line) or csv.
    #[arg(long, value_enum, default_value_t = LookupFormat::Table)]
    output: LookupFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LookupFormat {
    Table,
    Json,
    Ndjson,
    Csv,
}

/// The per-field filters. Each maps to one `FilterField`; `--filter` reaches any of them
/// by its API name.
#[derive(Debug, Default, clap::Args)]
struct FilterArgs {
    /// eventName, e.g. DeleteTable.
    #[arg(long, value_name = "NAME")]
    event_name: Option<String>,
    /// The user or role-session name that made the call.
    #[arg(long, value_name = "NAME")]
    username: Option<String>,
    /// eventSource, e.g. dynamodb.amazonaws.com.
    #[arg(long, value_name = "SOURCE")]
    event_source: Option<String>,
    /// A resource's ARN, or its short name (Music for arn:…:table/Music).
    #[arg(long, value_name = "NAME")]
    resource_name: Option<String>,
    /// A resource's type, e.g. AWS::DynamoDB::Table.
    #[arg(long, value_name = "TYPE")]
    resource_type: Option<String>,
    /// eventID.
    #[arg(long, value_name = "ID")]
    event_id: Option<String>,
    /// The access key id the call was signed with. (Not --access-key-id: that names the
    /// key this command signs with.)
    #[arg(long, value_name = "KEY_ID")]
    access_key: Option<String>,
    /// Only read-only (true) or only mutating (false) calls.
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
    read_only: Option<bool>,
    /// errorCode, e.g. AccessDenied.
    #[arg(long, value_name = "CODE")]
    error_code: Option<String>,
    /// sourceIPAddress.
    #[arg(long, value_name = "IP")]
    source_ip: Option<String>,
    /// userIdentity.arn.
    #[arg(long, value_name = "ARN")]
    user_arn: Option<String>,
    /// awsRegion the event happened in. (Not --region: that is the region this command
    /// signs for.)
    #[arg(long, value_name = "REGION")]
    aws_region: Option<String>,
    /// userIdentity.invokedBy, e.g. an AWS service acting for the caller.
    #[arg(long, value_name = "SERVICE")]
    invoked_by: Option<String>,
    /// Any filter by its API name, repeatable: eventId, eventName, readOnly, username,
    /// resourceType, resourceName, eventSource, accessKeyId, errorCode, sourceIPAddress,
    /// userArn, awsRegion, recipientAccountId, eventCategory, invokedBy.
    #[arg(long = "filter", value_name = "FIELD=VALUE", value_parser = parse_filter)]
    generic: Vec<(FilterField, String)>,
}

impl FilterArgs {
    /// Every filter given, each field at most once, in a stable order.
    fn filters(&self) -> anyhow::Result<Vec<(FilterField, String)>> {
        let named = [
            (FilterField::EventName, &self.event_name),
            (FilterField::Username, &self.username),
            (FilterField::EventSource, &self.event_source),
            (FilterField::ResourceName, &self.resource_name),
            (FilterField::ResourceType, &self.resource_type),
            (FilterField::EventId, &self.event_id),
            (FilterField::AccessKeyId, &self.access_key),
            (FilterField::ErrorCode, &self.error_code),
            (FilterField::SourceIpAddress, &self.source_ip),
            (FilterField::UserArn, &self.user_arn),
            (FilterField::AwsRegion, &self.aws_region),
            (FilterField::InvokedBy, &self.invoked_by),
        ];
        let mut filters: Vec<(FilterField, String)> = Vec::new();
        let read_only = self
            .read_only
            .map(|read_only| (FilterField::ReadOnly, read_only.to_string()));
        let given = named
            .into_iter()
            .filter_map(|(field, value)| value.clone().map(|value| (field, value)))
            .chain(read_only)
            .chain(self.generic.iter().cloned());
        for (field, value) in given {
            if value.is_empty() {
                bail!("the {} filter needs a value", field.name());
            }
            if filters.iter().any(|(existing, _)| *existing == field) {
                // The server takes each field once: the events it returns have one value
                // per field, so two values could only ever match nothing.
                bail!(
                    "the {} filter is given twice; give each field once",
                    field.name()
                );
            }
            filters.push((field, value));
        }
        filters.sort_by_key(|(field, _)| field.as_u8());
        Ok(filters)
    }
}

/// `--filter FIELD=VALUE`: FIELD is a native API field name (case-insensitive; record
/// spellings such as `eventID` or `userIdentity.arn` work too).
fn parse_filter(text: &str) -> Result<(FilterField, String), String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!("expected FIELD=VALUE, got {text:?}"));
    };
    let field = FilterField::from_name(name.trim()).ok_or_else(|| {
        let names: Vec<&str> = FilterField::ALL.iter().map(|field| field.name()).collect();
        format!(
            "unknown filter field {name:?}; fields are {}",
            names.join(", ")
        )
    })?;
    if value.is_empty() {
        return Err(format!("the {} filter needs a value", field.name()));
    }
    let value = if field == FilterField::ReadOnly {
        match value.to_ascii_lowercase().as_str() {
            "true" => "true".to_owned(),
            "false" => "false".to_owned(),
            _ => return Err(format!("readOnly is true or false, got {value:?}")),
        }
    } else {
        value.to_owned()
    };
    Ok((field, value))
}

/// One page of `GET /v1/events`. Records stay raw JSON text, so `--output json` prints
/// them exactly as the server sent them.
#[derive(Deserialize)]
struct EventsPage {
    events: Vec<Box<RawValue>>,
    #[serde(default, rename = "nextCursor")]
    next_cursor: Option<String>,
}

/// The query parameters that stay the same on every page.
#[derive(Debug, Default, PartialEq, Eq)]
struct Query {
    filters: Vec<(FilterField, String)>,
    start: Option<jiff::Timestamp>,
    end: Option<jiff::Timestamp>,
    account: Option<String>,
    insights: bool,
}

impl Query {
    fn from_args(args: &LookupArgs, now: jiff::Timestamp) -> anyhow::Result<Query> {
        let start = args
            .start
            .as_deref()
            .map(|text| parse_time(text, now, RangeEnd::Start).context("--start"))
            .transpose()?;
        let end = args
            .end
            .as_deref()
            .map(|text| parse_time(text, now, RangeEnd::End).context("--end"))
            .transpose()?;
        if let (Some(start), Some(end)) = (start, end)
            && start > end
        {
            bail!("--start ({start}) is after --end ({end})");
        }
        Ok(Query {
            filters: args.filters.filters()?,
            start,
            end,
            account: args.account.clone(),
            insights: args.insights,
        })
    }

    /// The request path of one page. Values are percent-encoded the strict SigV4 way
    /// (`%20`, never `+`), so the server decodes them the same whichever rules it uses.
    fn page_path(&self, page_size: usize, cursor: Option<&str>) -> String {
        let mut parameters: Vec<(&str, String)> = self
            .filters
            .iter()
            .map(|(field, value)| (field.name(), value.clone()))
            .collect();
        if let Some(start) = self.start {
            parameters.push(("start", start.to_string()));
        }
        if let Some(end) = self.end {
            parameters.push(("end", end.to_string()));
        }
        if let Some(account) = &self.account {
            parameters.push(("account", account.clone()));
        }
        if self.insights {
            parameters.push(("category", "insight".to_owned()));
        }
        parameters.push(("limit", page_size.to_string()));
        if let Some(cursor) = cursor {
            parameters.push(("cursor", cursor.to_owned()));
        }
        let query: Vec<String> = parameters
            .iter()
            .map(|(name, value)| {
                format!(
                    "{}={}",
                    uri_encode(name.as_bytes(), false),
                    uri_encode(value.as_bytes(), false)
                )
            })
            .collect();
        format!("{EVENTS_PATH}?{}", query.join("&"))
    }
}

pub async fn run(args: LookupArgs) -> anyhow::Result<()> {
    let query = Query::from_args(&args, jiff::Timestamp::now())?;
    let client = ApiClient::from_connection_args(&args.connection)?;
    let wanted = if args.all || args.limit == 0 {
        None
    } else {
        Some(args.limit)
    };
    let mut printer = Printer::new(args.output);
    match fetch_and_print(&client, &query, wanted, args.errors_only, &mut printer).await {
        Ok(more_available) => {
            finish_output(&mut printer)?;
            // Hints for people only: scripts read an empty array or a header row.
            if args.output == LookupFormat::Table {
                if printer.printed == 0 {
                    eprintln!("No events found.");
                } else if more_available {
                    eprintln!(
                        "Showing the newest {} events; more match (raise --limit, or use --all).",
                        printer.printed
                    );
                }
            }
            Ok(())
        }
        // Whoever reads our output stopped (`| head`): that is not an error.
        Err(error) if is_broken_pipe(&error) => Ok(()),
        Err(error) => {
            // Close what was printed (a JSON array, the buffered table), then report.
            let _ = printer.finish();
            Err(error)
        }
    }
}

fn finish_output(printer: &mut Printer) -> anyhow::Result<()> {
    match printer.finish() {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write the output"),
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<io::Error>()
        .is_some_and(|error| error.kind() == io::ErrorKind::BrokenPipe)
}

/// Follows pages until `wanted` events are printed (all when `None`). Returns whether
/// more events match than were printed.
async fn fetch_and_print(
    client: &ApiClient,
    query: &Query,
    wanted: Option<usize>,
    errors_only: bool,
    printer: &mut Printer,
) -> anyhow::Result<bool> {
    let mut cursor: Option<String> = None;
    loop {
        let remaining = wanted.map(|wanted| wanted.saturating_sub(printer.printed));
        // A client-side filter discards events, so it asks for full pages.
        let page_size = match remaining {
            Some(remaining) if !errors_only => remaining.clamp(1, PAGE_SIZE_MAX),
            _ => PAGE_SIZE_MAX,
        };
        let page: EventsPage = client
            .get_json(&query.page_path(page_size, cursor.as_deref()))
            .await?;
        let mut events = page.events.into_iter();
        for raw in events.by_ref() {
            let view = EventView::from_raw(&raw);
            if errors_only && view.error_code.is_empty() {
                continue;
            }
            printer.print(&raw, &view)?;
            if wanted.is_some_and(|wanted| printer.printed >= wanted) {
                break;
            }
        }
        if wanted.is_some_and(|wanted| printer.printed >= wanted) {
            let rest_of_page = !events.as_slice().is_empty();
            return Ok(rest_of_page || page.next_cursor.is_some());
        }
        match page.next_cursor {
            Some(next) => {
                if cursor.as_deref() == Some(next.as_str()) {
                    bail!("the server returned the same page cursor twice; stopping");
                }
                cursor = Some(next);
            }
            None => return Ok(false),
        }
    }
}

/// The fields the table and CSV show, derived from the record by the same rules the
/// server indexes them with (so USER is what --username matches).
#[derive(Debug, Default, PartialEq, Eq)]
struct EventView {
    event_time: String,
    event_name: String,
    username: String,
    event_source: String,
    resource_types: Vec<String>,
    resource_names: Vec<String>,
    source_ip: String,
    error_code: String,
    invoked_by: String,
    event_id: String,
    aws_region: String,
    account_id: String,
    access_key_id: String,
    user_arn: String,
    read_only: String,
}

impl EventView {
    fn from_raw(raw: &RawValue) -> EventView {
        match EventRecord::from_stored(raw.get()) {
            Ok(record) => EventView::from_record(record),
            // Not a record the server would store; show what can be read from it.
            Err(_) => EventView::from_plain_json(raw.get()),
        }
    }

    fn from_record(record: EventRecord) -> EventView {
        let event_time = jiff::Timestamp::from_millisecond(record.event_time_ms)
            .map(|time| time.to_string())
            .unwrap_or_default();
        let attributes = record.attributes;
        let read_only = attributes
            .read_only_text()
            .map(str::to_owned)
            .unwrap_or_default();
        let (resource_types, resource_names) = attributes
            .resources
            .into_iter()
            .map(|resource| {
                (
                    resource.resource_type.unwrap_or_default(),
                    resource.resource_name.unwrap_or_default(),
                )
            })
            .unzip();
        EventView {
            event_time,
            event_name: attributes.event_name,
            username: attributes.username.unwrap_or_default(),
            event_source: attributes.event_source,
            resource_types,
            resource_names,
            source_ip: attributes.source_ip_address.unwrap_or_default(),
            error_code: attributes.error_code.unwrap_or_default(),
            invoked_by: attributes.invoked_by.unwrap_or_default(),
            event_id: attributes.event_id,
            aws_region: attributes.aws_region,
            account_id: attributes.recipient_account_id,
            access_key_id: attributes.access_key_id.unwrap_or_default(),
            user_arn: attributes.user_arn.unwrap_or_default(),
            read_only,
        }
    }

    fn from_plain_json(text: &str) -> EventView {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
            return EventView::default();
        };
        let text_at = |pointer: &str| -> String {
            match value.pointer(pointer) {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(serde_json::Value::Bool(flag)) => flag.to_string(),
                _ => String::new(),
            }
        };
        let resources = value
            .get("resources")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        let resource_field = |name: &str| -> Vec<String> {
            resources
                .iter()
                .map(|resource| {
                    resource
                        .get(name)
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        };
        EventView {
            event_time: text_at("/eventTime"),
            event_name: text_at("/eventName"),
            username: text_at("/userIdentity/userName"),
            event_source: text_at("/eventSource"),
            resource_types: resource_field("type"),
            resource_names: resource_field("ARN"),
            source_ip: text_at("/sourceIPAddress"),
            error_code: text_at("/errorCode"),
            invoked_by: text_at("/userIdentity/invokedBy"),
            event_id: text_at("/eventID"),
            aws_region: text_at("/awsRegion"),
            account_id: text_at("/recipientAccountId"),
            access_key_id: text_at("/userIdentity/accessKeyId"),
            user_arn: text_at("/userIdentity/arn"),
            read_only: text_at("/readOnly"),
        }
    }

    /// The table's RESOURCE cell: the first resource by short name, and how many more.
    fn resource_cell(&self) -> String {
        let Some(first) = self.resource_names.first() else {
            return String::new();
        };
        let name = arn_short_name(first).unwrap_or(first);
        match self.resource_names.len() {
            1 => name.to_owned(),
            count => format!("{name} (+{})", count - 1),
        }
    }

    fn table_row(&self) -> Vec<String> {
        let time = self
            .event_time
            .parse::<jiff::Timestamp>()
            .map(|time| time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|_| self.event_time.clone());
        [
            time,
            self.event_name.clone(),
            self.username.clone(),
            self.event_source.clone(),
            self.resource_cell(),
            self.source_ip.clone(),
            self.error_code.clone(),
            self.invoked_by.clone(),
        ]
        .iter()
        .map(|cell| terminal_safe(cell))
        .collect()
    }

    fn csv_fields(&self) -> [String; 15] {
        [
            self.event_time.clone(),
            self.event_name.clone(),
            self.username.clone(),
            self.event_source.clone(),
            self.resource_types.join(";"),
            self.resource_names.join(";"),
            self.source_ip.clone(),
            self.error_code.clone(),
            self.invoked_by.clone(),
            self.event_id.clone(),
            self.aws_region.clone(),
            self.account_id.clone(),
            self.access_key_id.clone(),
            self.user_arn.clone(),
            self.read_only.clone(),
        ]
    }
}

const TABLE_HEADER: [&str; 8] = [
    "TIME",
    "EVENT NAME",
    "USER",
    "SOURCE",
    "RESOURCE",
    "SOURCE IP",
    "ERROR CODE",
    "INVOKED BY",
];

const CSV_HEADER: [&str; 15] = [
    "eventTime",
    "eventName",
    "username",
    "eventSource",
    "resourceType",
    "resourceName",
    "sourceIPAddress",
    "errorCode",
    "invokedBy",
    "eventId",
    "awsRegion",
    "recipientAccountId",
    "accessKeyId",
    "userArn",
    "readOnly",
];

/// Event fields come from whoever sent the event; control characters in them must not
/// reach a terminal, where they could move the cursor or rewrite earlier lines.
fn terminal_safe(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|character| {
            if character.is_control() {
                character.escape_default().to_string()
            } else {
                character.to_string()
            }
        })
        .collect()
}

/// Writes events as they arrive, in one format.
struct Printer {
    format: LookupFormat,
    out: BufWriter<io::Stdout>,
    printed: usize,
    table_pending: Vec<Vec<String>>,
    table_widths: Option<Vec<usize>>,
}

impl Printer {
    fn new(format: LookupFormat) -> Printer {
        Printer {
            format,
            out: BufWriter::new(io::stdout()),
            printed: 0,
            table_pending: Vec::new(),
            table_widths: None,
        }
    }

    fn print(&mut self, raw: &RawValue, view: &EventView) -> io::Result<()> {
        match self.format {
            LookupFormat::Json => {
                let separator = if self.printed == 0 { "[\n" } else { ",\n" };
                write!(self.out, "{separator}{}", raw.get().trim())?;
            }
            LookupFormat::Ndjson => writeln!(self.out, "{}", single_line(raw.get()))?,
            LookupFormat::Csv => {
                if self.printed == 0 {
                    self.out.write_all(csv_record(&CSV_HEADER).as_bytes())?;
                }
                self.out
                    .write_all(csv_record(&view.csv_fields()).as_bytes())?;
            }
            LookupFormat::Table => {
                let row = view.table_row();
                match &self.table_widths {
                    Some(widths) => {
                        let text = render_rows(widths, std::slice::from_ref(&row));
                        self.out.write_all(text.as_bytes())?;
                    }
                    None => {
                        self.table_pending.push(row);
                        if self.table_pending.len() >= TABLE_MEASURE_ROWS {
                            self.write_pending_table()?;
                        }
                    }
                }
            }
        }
        self.printed += 1;
        Ok(())
    }

    fn write_pending_table(&mut self) -> io::Result<()> {
        let widths = column_widths(&TABLE_HEADER, &self.table_pending);
        let header: Vec<String> = TABLE_HEADER
            .iter()
            .map(|title| (*title).to_owned())
            .collect();
        let mut text = render_rows(&widths, &[header]);
        text.push_str(&render_rows(&widths, &self.table_pending));
        self.out.write_all(text.as_bytes())?;
        self.table_pending.clear();
        self.table_widths = Some(widths);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        match self.format {
            LookupFormat::Json if self.printed == 0 => self.out.write_all(b"[]\n")?,
            LookupFormat::Json => self.out.write_all(b"\n]\n")?,
            LookupFormat::Table if self.table_widths.is_none() && self.printed > 0 => {
                self.write_pending_table()?;
            }
            _ => {}
        }
        self.out.flush()
    }
}

/// NDJSON needs each record on one line; the server's records normally already are.
/// Otherwise the whitespace between tokens is dropped: inside strings JSON escapes line
/// breaks, so every raw line break is such whitespace, and nothing else changes (member
/// order included).
fn single_line(text: &str) -> String {
    let text = text.trim();
    if !text.contains(['\n', '\r']) {
        return text.to_owned();
    }
    let mut compact = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for character in text.chars() {
        if in_string {
            compact.push(character);
            if escaped {
                escaped = false;
            } else if character == '\\' {
                escaped = true;
            } else if character == '"' {
                in_string = false;
            }
        } else if character == '"' {
            in_string = true;
            compact.push(character);
        } else if !matches!(character, ' ' | '\t' | '\n' | '\r') {
            compact.push(character);
        }
    }
    compact
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct LookupOnly {
        #[command(flatten)]
        lookup: LookupArgs,
    }

    fn parse(arguments: &[&str]) -> anyhow::Result<LookupArgs> {
        let mut all = vec!["lookup"];
        all.extend_from_slice(arguments);
        Ok(LookupOnly::try_parse_from(all)?.lookup)
    }

    fn now() -> jiff::Timestamp {
        "2024-05-06T12:00:00Z".parse().expect("now")
    }

    #[test]
    fn named_and_generic_filters_combine() -> anyhow::Result<()> {
        let args = parse(&[
            "--event-name",
            "DeleteTable",
            "--read-only",
            "false",
            "--filter",
            "sourceIPAddress=203.0.113.7",
            "--filter",
            "userIdentity.arn=arn:aws:iam::123456789012:user/Alice",
            "--access-key",
            "AKIAEXAMPLE",
        ])?;
        let filters = args.filters.filters()?;
        assert_eq!(
            filters,
            vec![
                (FilterField::EventName, "DeleteTable".to_owned()),
                (FilterField::ReadOnly, "false".to_owned()),
                (FilterField::AccessKeyId, "AKIAEXAMPLE".to_owned()),
                (FilterField::SourceIpAddress, "203.0.113.7".to_owned()),
                (
                    FilterField::UserArn,
                    "arn:aws:iam::123456789012:user/Alice".to_owned()
                ),
            ]
        );
        // The signing flag is still free for credentials.
        assert_eq!(args.connection.access_key_id, None);
        Ok(())
    }

    #[test]
    fn filter_flag_errors_are_clear() -> anyhow::Result<()> {
        assert_eq!(
            parse_filter("EventName=X"),
            Ok((FilterField::EventName, "X".to_owned()))
        );
        assert_eq!(
            parse_filter("readOnly=TRUE"),
            Ok((FilterField::ReadOnly, "true".to_owned()))
        );
        // Only the first `=` separates; values may contain more.
        assert_eq!(
            parse_filter("resourceName=a=b"),
            Ok((FilterField::ResourceName, "a=b".to_owned()))
        );
        assert!(parse_filter("eventName").is_err());
        assert!(parse_filter("eventName=").is_err());
        assert!(parse_filter("readOnly=yes").is_err());
        let unknown = parse_filter("colour=red").expect_err("unknown");
        assert!(unknown.contains("sourceIPAddress"), "{unknown}");

        let twice = parse(&["--event-name", "A", "--filter", "eventName=B"])?;
        let error = twice.filters.filters().expect_err("twice");
        assert!(
            error
                .to_string()
                .contains("eventName filter is given twice")
        );
        assert!(parse(&["--read-only", "maybe"]).is_err());
        assert!(parse(&["--limit", "5", "--all"]).is_err());
        Ok(())
    }

    #[test]
    fn query_carries_times_filters_and_paging() -> anyhow::Result<()> {
        let args = parse(&[
            "--start",
            "-1h",
            "--end=now",
            "--username",
            "Alice Smith",
            "--filter",
            "resourceName=arn:aws:s3:::bucket/a+b",
            "--insights",
            "--account",
            "111122223333",
        ])?;
        let query = Query::from_args(&args, now())?;
        assert_eq!(
            query.page_path(50, Some("c/1+2=")),
            "/v1/events?username=Alice%20Smith&resourceName=arn%3Aaws%3As3%3A%3A%3Abucket%2Fa%2Bb\
             &start=2024-05-06T11%3A00%3A00Z&end=2024-05-06T12%3A00%3A00Z&account=111122223333\
             &category=insight&limit=50&cursor=c%2F1%2B2%3D"
        );
        let backwards = parse(&["--start", "-1h", "--end", "-2h"])?;
        let error = Query::from_args(&backwards, now()).expect_err("backwards");
        assert!(error.to_string().contains("is after --end"), "{error}");
        let bad = parse(&["--start", "soon"])?;
        let error = Query::from_args(&bad, now()).expect_err("bad time");
        assert!(
            format!("{error:#}").starts_with("--start: invalid time"),
            "{error:#}"
        );
        Ok(())
    }

    const DELETE_TABLE: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/Alice","accountId":"123456789012","accessKeyId":"AKIAEXAMPLE","userName":"Alice"},"eventTime":"2024-05-06T11:30:00Z","eventSource":"dynamodb.amazonaws.com","eventName":"DeleteTable","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.7","userAgent":"aws-cli/2","requestParameters":{"tableName":"Music"},"responseElements":null,"eventID":"11111111-2222-3333-4444-555555555555","readOnly":false,"resources":[{"accountId":"123456789012","type":"AWS::DynamoDB::Table","ARN":"arn:aws:dynamodb:us-east-1:123456789012:table/Music"}],"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"123456789012","eventCategory":"Management","errorCode":"ResourceInUse, or \"busy\""}"#;

    #[test]
    fn views_show_the_indexed_values() -> anyhow::Result<()> {
        let raw: Box<RawValue> = serde_json::from_str(DELETE_TABLE)?;
        let view = EventView::from_raw(&raw);
        assert_eq!(
            view.table_row(),
            [
                "2024-05-06T11:30:00Z",
                "DeleteTable",
                "Alice",
                "dynamodb.amazonaws.com",
                "Music",
                "203.0.113.7",
                "ResourceInUse, or \"busy\"",
                "",
            ]
        );
        let line = csv_record(&view.csv_fields());
        assert!(
            line.starts_with("2024-05-06T11:30:00Z,DeleteTable,Alice,dynamodb.amazonaws.com,AWS::DynamoDB::Table,arn:aws:dynamodb:us-east-1:123456789012:table/Music,203.0.113.7,\"ResourceInUse, or \"\"busy\"\"\",,11111111-"),
            "{line}"
        );
        assert!(line.ends_with(",false\n"), "{line}");

        // A shape the record parser refuses still shows what it has.
        let partial: Box<RawValue> =
            serde_json::from_str(r#"{"eventName":"X","userIdentity":{"userName":"u"}}"#)?;
        let partial_view = EventView::from_raw(&partial);
        assert_eq!(partial_view.event_name, "X");
        assert_eq!(partial_view.username, "u");
        Ok(())
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(terminal_safe("plain"), "plain");
        assert_eq!(terminal_safe("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
    }

    #[test]
    fn ndjson_records_are_one_line() {
        assert_eq!(single_line(" {\"a\":1} "), "{\"a\":1}");
        assert_eq!(
            single_line("{\n \"b\": \"x\\ny \\\" z\",\n \"a\": [1, 2]\n}"),
            "{\"b\":\"x\\ny \\\" z\",\"a\":[1,2]}"
        );
    }
}

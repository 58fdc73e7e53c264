//! One validated, normalised CloudTrail record.
//!
//! # Validation
//!
//! A record is a JSON object of at most [`MAX_RECORD_BYTES`] bytes with non-empty string
//! members `eventName` and `eventSource` and an `eventTime` that parses as an RFC 3339
//! timestamp (`Z` or a numeric offset, optional fractional seconds; parsed with `jiff`).
//! Every member OpenTrail reads must have the type CloudTrail gives it; otherwise the
//! record fails with [`RecordErrorKind::InvalidField`] naming the member:
//!
//! - strings: `eventVersion`, `eventID`, `eventType`, `eventCategory`, `awsRegion`,
//!   `recipientAccountId` (these six also non-empty when present), `errorCode`,
//!   `sourceIPAddress`, and inside `userIdentity`: `type`, `userName`, `arn`,
//!   `principalId`, `accessKeyId`, `invokedBy`, `accountId`, `onBehalfOf.userId`,
//!   `sessionContext.sessionIssuer.userName`; inside each `resources[]` entry: `ARN`,
//!   `ARNPrefix`, `type`;
//! - `readOnly`: a boolean (the strings `"true"`/`"false"` are also accepted);
//! - `userIdentity`, `userIdentity.onBehalfOf`, `userIdentity.sessionContext`,
//!   `…sessionIssuer` and each `resources[]` entry: objects; `resources`: an array.
//!
//! `null` counts as absent for all of these. A missing or `null` required member is
//! [`RecordErrorKind::MissingField`]; any unusable `eventTime` (not a string, not RFC 3339)
//! is [`RecordErrorKind::InvalidEventTime`]. A key that appears twice among the members
//! OpenTrail reads is [`RecordErrorKind::InvalidJson`], since readers would disagree on
//! its value. Everything else in the object is kept as it came, unread.
//!
//! # Normalisation
//!
//! The stored text is the producer's object text. When it holds line breaks (a
//! pretty-printed record) the whitespace outside strings is removed, so a stored record is
//! always one line. Members missing from the record are appended before the closing `}`,
//! in this order; a member present as `null` is replaced in place instead, so no key is
//! ever duplicated:
//!
//! | member | value when absent |
//! |---|---|
//! | `eventVersion` | [`DEFAULT_EVENT_VERSION`] (`"1.11"`) |
//! | `eventID` | a name-based (v5) UUID of the caller's account and region and the record's text (see below) |
//! | `eventType` | `"AwsApiCall"` |
//! | `eventCategory` | `"Insight"` when `eventType` is `AwsCloudTrailInsight`, else `"Management"` |
//! | `awsRegion` | [`IngestContext::region`] |
//! | `recipientAccountId` | [`IngestContext::account_id`] |
//! | `readOnly` | [`infer_read_only`] of `eventName`; never added to Insights records, which CloudTrail writes without it |
//!
//! Insights records (`insightDetails` present) as CloudTrail writes them carry no top-level
//! `eventName` or `eventSource`: those are read from `insightDetails.eventName` and
//! `insightDetails.eventSource` when the top-level members are absent.
//!
//! So the stored object reads back as the input object plus the appended members; no
//! present value is ever changed.
//!
//! The generated `eventID` depends only on what was sent, so a producer that retries a
//! batch whose acknowledgement it never saw, or an import run twice, stores each record
//! once (ids are deduplicated). The price: two records sent by the same account and region
//! with byte-identical text and no `eventID` are one event. Producers that can emit such
//! twins (the same call twice in one second) should send their own `eventID`.
//!
//! # `readOnly` inference
//!
//! Used only when a record has no `readOnly`. The rule is tuned against the corpus of real
//! CloudTrail logs (about 500 distinct event names, nearly all recorded with `readOnly`):
//! it agrees with CloudTrail on every name there except `InvokeModel`, `SendEmail` and
//! `CreateCase`, which CloudTrail marks read-only although nothing in their names says so.
//!
//! 1. `GetFederationToken`, `GetSessionToken` and `GetSigninToken` (they issue
//!    credentials) and `CheckMfa` (a console sign-in step) are **not** read-only.
//! 2. `Sign`, `Verify`, `VerifyMac`, `GenerateMac` and `GenerateRandom` (KMS) are
//!    read-only.
//! 3. Otherwise the name is read-only when it starts with one of these verbs *as a whole
//!    CamelCase word*, i.e. followed by the end of the name or by a character that is not
//!    a lower-case ASCII letter (so `GetObject`, `ListFunctions20150331` and `Get` match,
//!    `Getaway` and `Listen` do not): `Get`, `List`, `Describe`, `Head`, `Lookup`,
//!    `Search`, `Query`, `Scan`, `Select`, `BatchGet`, `BatchDescribe`, `Check`,
//!    `Validate`, `Simulate`, `AssumeRole` (CloudTrail marks STS role assumption
//!    read-only), `Decrypt`, `Encrypt`, `ReEncrypt` and `GenerateDataKey` (KMS
//!    cryptographic operations change no resource).
//!    Everything else (`Create…`, `Put…`, `ConsoleLogin`, …) is not read-only.

use std::borrow::Cow;
use std::ops::Range;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::attributes::{self, LookupAttributes, ResourceFields, UserIdentityFields};
use crate::error::{InvalidRecord, RecordErrorKind};
use crate::json_type::JsonType;
use crate::member::{ArrayMember, Member, ObjectMember, RawMember, optional_string};
use crate::scan;

/// Records larger than this (the serialised JSON object, in bytes) are rejected.
/// CloudTrail's own limit for event version 1.05 and later.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;

/// The `eventVersion` given to records that carry none: CloudTrail's current version.
pub const DEFAULT_EVENT_VERSION: &str = "1.11";

/// Who is sending the records: fills the fields a record leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestContext {
    /// The caller's account: the default for `recipientAccountId`.
    pub account_id: String,
    /// The caller's region: the default for `awsRegion`.
    pub region: String,
}

/// A validated CloudTrail record, ready to append.
///
/// `json` is the producer's object, unchanged except that fields added by
/// normalisation (see [`EventRecord::from_json_object`]) are appended. Unknown fields
/// survive, so the stored record reads back as the same JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The normalised record as compact-or-original JSON object text.
    pub json: String,
    /// `eventID` (generated when absent).
    pub event_id: String,
    /// `recipientAccountId` (the caller's account when absent).
    pub account_id: String,
    /// `awsRegion` (the caller's region when absent).
    pub region: String,
    /// `eventTime` in milliseconds since the Unix epoch.
    pub event_time_ms: i64,
    /// The derived lookup attributes.
    pub attributes: LookupAttributes,
}

impl EventRecord {
    /// Validates and normalises one record from the text of a JSON object (surrounding
    /// JSON whitespace is ignored). See the [module docs](self) for the rules.
    pub fn from_json_object(
        text: &str,
        context: &IngestContext,
    ) -> Result<EventRecord, InvalidRecord> {
        let text = trim_json_whitespace(text);
        check_size(text.len())?;
        check_is_object(text)?;
        // One memchr pass for both line breaks (a pattern of several chars would decode
        // every char).
        let single_line = if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some() {
            // Validate before compacting: dropping whitespace could join the tokens of
            // invalid JSON into valid ones.
            serde_json::from_str::<IgnoredAny>(text).map_err(invalid_json)?;
            Cow::Owned(scan::compact(text))
        } else {
            Cow::Borrowed(text)
        };
        let fields: RecordFields<'_> = serde_json::from_str(&single_line).map_err(invalid_json)?;
        let (record, splices) = interpret(&fields, Some(context), || {
            content_event_id(context, &single_line)
        })?;
        let json = apply_splices(&single_line, &splices);
        check_size(json.len())?;
        Ok(EventRecord { json, ..record })
    }

    /// Re-derives a record from JSON stored by [`EventRecord::from_json_object`], without
    /// changing it. Fails when the text is not a valid record or lacks a member that
    /// normalisation always adds (then the error is [`RecordErrorKind::MissingField`]).
    /// Given a `String`, the record keeps it instead of a copy (a seal parses every
    /// record it writes).
    pub fn from_stored(json: impl Into<String>) -> Result<EventRecord, InvalidRecord> {
        let json = json.into();
        let record = Self::interpret_stored(&json)?;
        Ok(EventRecord { json, ..record })
    }

    /// The record of `json` with an empty `json` (the caller's text goes there).
    fn interpret_stored(json: &str) -> Result<EventRecord, InvalidRecord> {
        check_is_object(trim_json_whitespace(json))?;
        let fields: RecordFields<'_> = serde_json::from_str(json).map_err(invalid_json)?;
        // A stored record always has an id; a missing one is reported just below.
        let (record, splices) = interpret(&fields, None, String::new)?;
        if let Some(splice) = splices.first() {
            return Err(InvalidRecord::new(
                RecordErrorKind::MissingField,
                format!("stored record lacks {}", splice.member),
            ));
        }
        Ok(record)
    }
}

/// The `eventID` of a record sent without one: a v5 UUID of the caller's account and region
/// and the record's one-line text, so resending the same record yields the same id.
fn content_event_id(context: &IngestContext, record_text: &str) -> String {
    /// OpenTrail's namespace for these ids (a fixed random UUID).
    const EVENT_ID_NAMESPACE: uuid::Uuid = uuid::uuid!("6f0c1a52-8d3e-4b7a-9c21-5e4d3f2a1b60");
    let name = format!("{}\0{}\0{record_text}", context.account_id, context.region);
    uuid::Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes()).to_string()
}

/// Whether an event name is read-only, for records that carry no `readOnly`; the rule is
/// in the [module docs](self#readonly-inference).
pub fn infer_read_only(event_name: &str) -> bool {
    const MUTATING_DESPITE_VERB: [&str; 4] = [
        "GetFederationToken",
        "GetSessionToken",
        "GetSigninToken",
        "CheckMfa",
    ];
    const READ_ONLY_NAMES: [&str; 5] = [
        "Sign",
        "Verify",
        "VerifyMac",
        "GenerateMac",
        "GenerateRandom",
    ];
    const READ_ONLY_VERBS: [&str; 19] = [
        "Get",
        "List",
        "Describe",
        "Head",
        "Lookup",
        "Search",
        "Query",
        "Scan",
        "Select",
        "BatchGet",
        "BatchDescribe",
        "Check",
        "Validate",
        "Simulate",
        "AssumeRole",
        "Decrypt",
        "Encrypt",
        "ReEncrypt",
        "GenerateDataKey",
    ];
    if MUTATING_DESPITE_VERB.contains(&event_name) {
        return false;
    }
    if READ_ONLY_NAMES.contains(&event_name) {
        return true;
    }
    READ_ONLY_VERBS.iter().any(|verb| {
        event_name
            .strip_prefix(verb)
            .is_some_and(|rest| !rest.starts_with(|character: char| character.is_ascii_lowercase()))
    })
}

/// The members of a record that OpenTrail reads; the rest is skipped unread.
#[derive(Deserialize)]
struct RecordFields<'a> {
    #[serde(rename = "eventVersion", default, borrow)]
    event_version: RawMember<'a>,
    #[serde(rename = "eventID", default, borrow)]
    event_id: RawMember<'a>,
    #[serde(rename = "eventType", default, borrow)]
    event_type: RawMember<'a>,
    #[serde(rename = "eventCategory", default, borrow)]
    event_category: RawMember<'a>,
    #[serde(rename = "awsRegion", default, borrow)]
    aws_region: RawMember<'a>,
    #[serde(rename = "recipientAccountId", default, borrow)]
    recipient_account_id: RawMember<'a>,
    #[serde(rename = "readOnly", default, borrow)]
    read_only: RawMember<'a>,
    #[serde(rename = "eventTime", default, borrow)]
    event_time: Member<'a>,
    #[serde(rename = "eventName", default, borrow)]
    event_name: Member<'a>,
    #[serde(rename = "eventSource", default, borrow)]
    event_source: Member<'a>,
    #[serde(rename = "errorCode", default, borrow)]
    error_code: Member<'a>,
    #[serde(rename = "sourceIPAddress", default, borrow)]
    source_ip_address: Member<'a>,
    #[serde(rename = "userIdentity", default, borrow)]
    user_identity: ObjectMember<UserIdentityFields<'a>>,
    #[serde(default, borrow)]
    resources: ArrayMember<ObjectMember<ResourceFields<'a>>>,
    #[serde(rename = "insightDetails", default, borrow)]
    insight_details: ObjectMember<InsightDetailsFields<'a>>,
}

/// CloudTrail's Insights records name the API they describe only inside
/// `insightDetails`, so that is where their event name and source are read from.
#[derive(Deserialize)]
struct InsightDetailsFields<'a> {
    #[serde(rename = "eventName", default, borrow)]
    event_name: Member<'a>,
    #[serde(rename = "eventSource", default, borrow)]
    event_source: Member<'a>,
}

/// A member to add: appended before the closing `}`, or replacing a `null` in place.
struct Splice {
    member: &'static str,
    replaces: Option<Range<usize>>,
    value_json: String,
}

impl Splice {
    /// Fills `member` with `value_json`: in place of its `null`, or appended when absent.
    fn fill(member: &'static str, raw: RawMember<'_>, value_json: String) -> Splice {
        Splice {
            member,
            replaces: raw.0.map(|null| span_of(null.get())),
            value_json,
        }
    }
}

/// A normalised member's value: as the record has it, or to be filled in.
enum Resolved<'a> {
    Present(Cow<'a, str>),
    Filled(String),
}

impl Resolved<'_> {
    fn into_string(self) -> String {
        match self {
            Resolved::Present(value) => value.into_owned(),
            Resolved::Filled(value) => value,
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Resolved::Present(value) => value,
            Resolved::Filled(value) => value,
        }
    }
}

/// Validates the parsed members, decides what normalisation must add (without a
/// context, the fill values are placeholders: the caller only checks that none are
/// needed) and derives the attributes. `json` is left empty for the caller to fill.
fn interpret(
    fields: &RecordFields<'_>,
    context: Option<&IngestContext>,
    generated_event_id: impl FnOnce() -> String,
) -> Result<(EventRecord, Vec<Splice>), InvalidRecord> {
    let required = RequiredMembers::read(fields)?;
    let normalised = NormalisedMembers::resolve(fields, context, generated_event_id)?;
    let (read_only, read_only_inferred) = read_only_of(fields, &required.event_name)?;
    let mut splices = normalised.splices(fields, context)?;
    // Insights records describe many calls, not one: CloudTrail gives them no readOnly.
    if read_only_inferred && normalised.event_category.as_str() != "Insight" {
        splices.push(Splice::fill(
            "readOnly",
            fields.read_only,
            read_only.to_string(),
        ));
    }
    let record = lookup_record(fields, required, normalised, read_only)?;
    Ok((record, splices))
}

/// The members every record must carry, validated.
struct RequiredMembers<'a> {
    event_name: Cow<'a, str>,
    event_source: Cow<'a, str>,
    event_time_ms: i64,
}

impl<'a> RequiredMembers<'a> {
    fn read(fields: &RecordFields<'a>) -> Result<RequiredMembers<'a>, InvalidRecord> {
        let (event_name, event_name_path) =
            insight_fallback(fields, &fields.event_name, "eventName", |insight| {
                (&insight.event_name, "insightDetails.eventName")
            });
        let (event_source, event_source_path) =
            insight_fallback(fields, &fields.event_source, "eventSource", |insight| {
                (&insight.event_source, "insightDetails.eventSource")
            });
        let missing: Vec<&str> = [
            ("eventName", event_name),
            ("eventSource", event_source),
            ("eventTime", &fields.event_time),
        ]
        .into_iter()
        .filter(|(_, member)| matches!(member, Member::Absent | Member::Null))
        .map(|(name, _)| name)
        .collect();
        if !missing.is_empty() {
            return Err(InvalidRecord::new(
                RecordErrorKind::MissingField,
                format!("missing required member {}", missing.join(", ")),
            ));
        }
        Ok(RequiredMembers {
            event_name: required_non_empty_string(event_name, event_name_path)?,
            event_source: required_non_empty_string(event_source, event_source_path)?,
            event_time_ms: event_time_ms(&fields.event_time)?,
        })
    }
}

/// The top-level member, or for an Insights record without it, the same member of
/// `insightDetails`; with the path to name in errors.
fn insight_fallback<'r, 'a>(
    fields: &'r RecordFields<'a>,
    top_level: &'r Member<'a>,
    name: &'static str,
    in_details: impl Fn(&'r InsightDetailsFields<'a>) -> (&'r Member<'a>, &'static str),
) -> (&'r Member<'a>, &'static str) {
    let absent = |member: &Member<'_>| matches!(member, Member::Absent | Member::Null);
    if !absent(top_level) {
        return (top_level, name);
    }
    match fields.insight_details.object() {
        Ok(Some(details)) if !absent(in_details(details).0) => in_details(details),
        _ => (top_level, name),
    }
}

/// The members normalisation fills in when absent, each as the record has it or as it
/// will be filled.
struct NormalisedMembers<'a> {
    event_version: Resolved<'a>,
    event_id: Resolved<'a>,
    event_type: Resolved<'a>,
    event_category: Resolved<'a>,
    aws_region: Resolved<'a>,
    recipient_account_id: Resolved<'a>,
}

impl<'a> NormalisedMembers<'a> {
    fn resolve(
        fields: &RecordFields<'a>,
        context: Option<&IngestContext>,
        generated_event_id: impl FnOnce() -> String,
    ) -> Result<NormalisedMembers<'a>, InvalidRecord> {
        let event_version = normalised_string(fields.event_version, "eventVersion", || {
            DEFAULT_EVENT_VERSION.to_owned()
        })?;
        let event_id = normalised_string(fields.event_id, "eventID", generated_event_id)?;
        let event_type =
            normalised_string(fields.event_type, "eventType", || "AwsApiCall".to_owned())?;
        let event_category = normalised_string(fields.event_category, "eventCategory", || {
            if event_type.as_str() == "AwsCloudTrailInsight" {
                "Insight"
            } else {
                "Management"
            }
            .to_owned()
        })?;
        let aws_region = normalised_string(fields.aws_region, "awsRegion", || {
            context
                .map(|context| context.region.clone())
                .unwrap_or_default()
        })?;
        let recipient_account_id =
            normalised_string(fields.recipient_account_id, "recipientAccountId", || {
                context
                    .map(|context| context.account_id.clone())
                    .unwrap_or_default()
            })?;
        Ok(NormalisedMembers {
            event_version,
            event_id,
            event_type,
            event_category,
            aws_region,
            recipient_account_id,
        })
    }

    /// A splice for every member to be filled in. With a context, a fill value must not
    /// be empty (the context had nothing to give).
    fn splices(
        &self,
        fields: &RecordFields<'_>,
        context: Option<&IngestContext>,
    ) -> Result<Vec<Splice>, InvalidRecord> {
        let mut splices = Vec::new();
        for (member, raw, resolved) in [
            ("eventVersion", fields.event_version, &self.event_version),
            ("eventID", fields.event_id, &self.event_id),
            ("eventType", fields.event_type, &self.event_type),
            ("eventCategory", fields.event_category, &self.event_category),
            ("awsRegion", fields.aws_region, &self.aws_region),
            (
                "recipientAccountId",
                fields.recipient_account_id,
                &self.recipient_account_id,
            ),
        ] {
            if let Resolved::Filled(value) = resolved {
                if value.is_empty() && context.is_some() {
                    return Err(InvalidRecord::new(
                        RecordErrorKind::MissingField,
                        format!("{member} is absent and the ingest context has none to fill in"),
                    ));
                }
                let mut value_json = String::with_capacity(value.len() + 2);
                scan::push_json_string(&mut value_json, value);
                splices.push(Splice::fill(member, raw, value_json));
            }
        }
        Ok(splices)
    }
}

/// `readOnly` as the record states it (a boolean, or the strings `"true"`/`"false"`), or
/// inferred from the event name when absent; the second value says it was inferred.
fn read_only_of(
    fields: &RecordFields<'_>,
    event_name: &str,
) -> Result<(bool, bool), InvalidRecord> {
    match fields.read_only.member() {
        Member::Bool(value) => Ok((value, false)),
        Member::Str(value) if value == "true" => Ok((true, false)),
        Member::Str(value) if value == "false" => Ok((false, false)),
        Member::Absent | Member::Null => Ok((infer_read_only(event_name), true)),
        other => Err(InvalidRecord::new(
            RecordErrorKind::InvalidField,
            format!(
                "readOnly must be a boolean, found {}",
                other.json_type().map_or("nothing", JsonType::name)
            ),
        )),
    }
}

/// The record with its lookup attributes derived; `json` is left for the caller.
fn lookup_record(
    fields: &RecordFields<'_>,
    required: RequiredMembers<'_>,
    normalised: NormalisedMembers<'_>,
    read_only: bool,
) -> Result<EventRecord, InvalidRecord> {
    let identity = attributes::read_identity(&fields.user_identity)?;
    let resources = attributes::read_resources(&fields.resources)?;
    let error_code = optional_string(&fields.error_code, "errorCode")?;
    let source_ip_address = optional_string(&fields.source_ip_address, "sourceIPAddress")?;

    let event_id = normalised.event_id.into_string();
    let aws_region = normalised.aws_region.into_string();
    let recipient_account_id = normalised.recipient_account_id.into_string();
    let attributes = LookupAttributes {
        event_id: event_id.clone(),
        event_name: required.event_name.into_owned(),
        event_source: required.event_source.into_owned(),
        read_only: Some(read_only),
        username: identity
            .as_ref()
            .and_then(attributes::derive_username)
            .map(str::to_owned),
        access_key_id: identity
            .as_ref()
            .and_then(|identity| identity.access_key_id.clone())
            .map(Cow::into_owned),
        resources,
        error_code: error_code.map(Cow::into_owned),
        source_ip_address: source_ip_address.map(Cow::into_owned),
        user_arn: identity
            .as_ref()
            .and_then(|identity| identity.arn.clone())
            .map(Cow::into_owned),
        aws_region: aws_region.clone(),
        recipient_account_id: recipient_account_id.clone(),
        event_category: normalised.event_category.into_string(),
        invoked_by: identity
            .as_ref()
            .and_then(|identity| identity.invoked_by.clone())
            .map(Cow::into_owned),
    };
    Ok(EventRecord {
        json: String::new(),
        event_id,
        account_id: recipient_account_id,
        region: aws_region,
        event_time_ms: required.event_time_ms,
        attributes,
    })
}

/// Where `value` (a slice of the text being parsed) sits in that text, as a range of
/// pointer addresses; [`apply_splices`] turns it back into offsets.
fn span_of(value: &str) -> Range<usize> {
    let start = value.as_ptr() as usize;
    start..start + value.len()
}

/// `text` with each splice applied: `null`s replaced in place, the rest appended before
/// the closing `}`.
fn apply_splices(text: &str, splices: &[Splice]) -> String {
    if splices.is_empty() {
        return text.to_owned();
    }
    let base = text.as_ptr() as usize;
    let mut replacements: Vec<(Range<usize>, &str)> = splices
        .iter()
        .filter_map(|splice| {
            let span = splice.replaces.as_ref()?;
            let start = span.start.checked_sub(base)?;
            let end = span.end.checked_sub(base)?;
            (end <= text.len()).then_some((start..end, splice.value_json.as_str()))
        })
        .collect();
    debug_assert_eq!(
        replacements.len(),
        splices
            .iter()
            .filter(|splice| splice.replaces.is_some())
            .count(),
        "every replaced null lies inside the text"
    );
    replacements.sort_by_key(|(range, _)| range.start);
    let appended = splices.iter().filter(|splice| splice.replaces.is_none());

    let extra: usize = splices
        .iter()
        .map(|splice| splice.member.len() + splice.value_json.len() + 4)
        .sum();
    let mut json = String::with_capacity(text.len() + extra);
    let mut copied_to = 0;
    for (range, value_json) in replacements {
        json.push_str(text.get(copied_to..range.start).unwrap_or_default());
        json.push_str(value_json);
        copied_to = range.end;
    }
    // The text is a parsed object, so it ends with `}` (callers trim whitespace).
    let closing_brace = text.len().saturating_sub(1);
    let body = text.get(copied_to..closing_brace).unwrap_or_default();
    json.push_str(body.trim_end_matches(is_json_whitespace_char));
    let mut has_members = json.trim_end_matches(is_json_whitespace_char) != "{";
    for splice in appended {
        if has_members {
            json.push(',');
        }
        scan::push_json_string(&mut json, splice.member);
        json.push(':');
        json.push_str(&splice.value_json);
        has_members = true;
    }
    json.push('}');
    json
}

fn normalised_string<'a>(
    raw: RawMember<'a>,
    member: &'static str,
    default: impl FnOnce() -> String,
) -> Result<Resolved<'a>, InvalidRecord> {
    match raw.member() {
        Member::Absent | Member::Null => Ok(Resolved::Filled(default())),
        Member::Str(value) if value.is_empty() => Err(InvalidRecord::new(
            RecordErrorKind::InvalidField,
            format!("{member} must not be empty"),
        )),
        Member::Str(value) => Ok(Resolved::Present(value)),
        other => Err(wrong_type_of(member, "a string", &other)),
    }
}

fn required_non_empty_string<'a>(
    member: &Member<'a>,
    path: &str,
) -> Result<Cow<'a, str>, InvalidRecord> {
    match member {
        Member::Str(value) if value.is_empty() => Err(InvalidRecord::new(
            RecordErrorKind::InvalidField,
            format!("{path} must not be empty"),
        )),
        Member::Str(value) => Ok(value.clone()),
        other => Err(wrong_type_of(path, "a string", other)),
    }
}

fn wrong_type_of(path: &str, expected: &str, found: &Member<'_>) -> InvalidRecord {
    InvalidRecord::wrong_type(path, expected, found.json_type().unwrap_or(JsonType::Null))
}

fn event_time_ms(member: &Member<'_>) -> Result<i64, InvalidRecord> {
    let Member::Str(text) = member else {
        return Err(InvalidRecord::new(
            RecordErrorKind::InvalidEventTime,
            format!(
                "eventTime must be an RFC 3339 timestamp string, found {}",
                member.json_type().map_or("nothing", JsonType::name)
            ),
        ));
    };
    jiff::Timestamp::from_str(text)
        .map(jiff::Timestamp::as_millisecond)
        .map_err(|error| {
            InvalidRecord::new(
                RecordErrorKind::InvalidEventTime,
                format!(
                    "eventTime {:?} is not an RFC 3339 timestamp: {error}",
                    preview(text)
                ),
            )
        })
}

/// At most 64 characters of producer input, for error messages.
pub(crate) fn preview(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

fn check_size(len: usize) -> Result<(), InvalidRecord> {
    if len > MAX_RECORD_BYTES {
        return Err(InvalidRecord::new(
            RecordErrorKind::TooLarge,
            format!("record is {len} bytes, over the {MAX_RECORD_BYTES}-byte limit"),
        ));
    }
    Ok(())
}

fn check_is_object(text: &str) -> Result<(), InvalidRecord> {
    if text.starts_with('{') {
        return Ok(());
    }
    match serde_json::from_str::<IgnoredAny>(text) {
        Ok(_) => Err(InvalidRecord::new(
            RecordErrorKind::NotAnObject,
            format!("record is not a JSON object: {:?}", preview(text)),
        )),
        Err(error) => Err(invalid_json(error)),
    }
}

fn invalid_json(error: serde_json::Error) -> InvalidRecord {
    InvalidRecord::new(
        RecordErrorKind::InvalidJson,
        format!("record is not valid JSON: {error}"),
    )
}

fn trim_json_whitespace(text: &str) -> &str {
    text.trim_matches(is_json_whitespace_char)
}

fn is_json_whitespace_char(character: char) -> bool {
    matches!(character, ' ' | '\t' | '\n' | '\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_inference_matches_whole_camel_case_verbs() {
        for read_only in [
            "GetObject",
            "Get",
            "ListFunctions20150331",
            "DescribeInstances",
            "HeadBucket",
            "LookupEvents",
            "BatchGetItem",
            "AssumeRoleWithSAML",
            "Decrypt",
            "GenerateDataKeyWithoutPlaintext",
            "SimulatePrincipalPolicy",
            "Verify",
        ] {
            assert!(infer_read_only(read_only), "{read_only}");
        }
        for mutating in [
            "Getaway",
            "Listen",
            "PutObject",
            "CreateUser",
            "ConsoleLogin",
            "GetSessionToken",
            "SignUp",
            "GenerateCredentialReport",
            "",
        ] {
            assert!(!infer_read_only(mutating), "{mutating}");
        }
    }

    #[test]
    fn splices_replace_nulls_and_append_in_order() {
        let text = r#"{"a":1,"eventID":null }"#;
        let null_start = text.find("null").expect("null present");
        let base = text.as_ptr() as usize;
        let splices = [
            Splice {
                member: "eventID",
                replaces: Some(base + null_start..base + null_start + 4),
                value_json: r#""id""#.to_owned(),
            },
            Splice {
                member: "readOnly",
                replaces: None,
                value_json: "true".to_owned(),
            },
        ];
        assert_eq!(
            apply_splices(text, &splices),
            r#"{"a":1,"eventID":"id","readOnly":true}"#
        );
        assert_eq!(apply_splices("{ }", &splices[1..]), r#"{"readOnly":true}"#);
    }

    #[test]
    fn preview_cuts_on_a_character_boundary() {
        assert_eq!(preview(&"é".repeat(100)).chars().count(), 64);
        assert_eq!(preview("short"), "short");
    }
}

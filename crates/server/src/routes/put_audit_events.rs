//! `POST /PutAuditEvents`: the cloudtrail-data REST-JSON API (spec §1.4, §2.2).
//!
//! Every answer of this route is REST-JSON, errors included: the code travels in the
//! `x-amzn-ErrorType` header and the body is `{"message"}` (botocore's rest-json parser
//! reads the header first). So the handler renders its own errors and never returns the
//! JSON 1.1 shaped [`ApiError`].
//!
//! Order of checks: the key's role, the query, the channel (exists in the signing region,
//! and belongs to the caller's account), the body size and shape (duplicate ids fail the
//! whole request). Then each entry on its own: a bad entry lands in `failed` while the
//! rest of the batch is stored, in one durable append, before the answer is sent.
//!
//! The stored record is CloudTrail's wrapping of the producer's document (see
//! [`wrap_event_data`]) plus top-level `eventSource` and `eventName` copied from it. The
//! copies are an OpenTrail addition: CloudTrail shows channel events only in Lake, where
//! queries read `eventData.eventName`; here they also appear in LookupEvents, whose
//! `EventName` and `EventSource` attributes (and the store's indexes) read the top level.

use axum::extract::{RawQuery, State};
use axum::http::HeaderValue;
use axum::response::Response;
use jiff::Timestamp;
use opentrail_event::{EventRecord, IngestContext, RecordErrorKind};
use opentrail_protocol::channels::parse_channel_ref;
use opentrail_protocol::cloudtrail_data::{
    AuditEvent, AuditEventResultEntry, MAX_REQUEST_BYTES, PutAuditEventsResponse, ResultErrorEntry,
    ValidatedEventData, entry_codes, parse_query, parse_request, validate_audit_event,
    wrap_event_data,
};
use opentrail_protocol::error::data_codes;
use opentrail_protocol::{AwsError, WireResponse};
use opentrail_store::AppendOutcome;

use crate::api_error::RETRY_AFTER_SECONDS;
use crate::api_error::{ApiError, wire_response_into_http};
use crate::auth::Caller;
use crate::auth::RequestBody;
use crate::channels::{Channel, ChannelRegistry, IngestionAttempt};
use crate::ingest::append_to_store;
use crate::state::AppState;

pub async fn put_audit_events(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    let query = query.unwrap_or_default();
    let response = match put(&state, &caller, &query, &body).await {
        Ok(wire) => wire_response_into_http(wire),
        Err(error) => rest_json_error(&error),
    };
    Ok(response)
}

async fn put(
    state: &AppState,
    caller: &Caller,
    query: &str,
    body: &[u8],
) -> Result<WireResponse, AwsError> {
    let (channel, entries) = check_request(&state.channels, caller, query, body)?;
    let ingestion_time = Timestamp::now();
    let batch = prepare_batch(&channel, &entries, ingestion_time);
    let (records, pending) = (batch.records, batch.pending);
    let outcomes = append_to_store(
        state.store.clone(),
        Some(std::sync::Arc::clone(state.detections.screening())),
        records,
    )
    .await
    .map_err(|ApiError(error)| error)?;
    let response = assemble_response(pending, &outcomes)?;
    state.channels.record_ingestion(
        &channel.id,
        IngestionAttempt {
            time_ms: ingestion_time.as_millisecond(),
            last_stored_event_id: response
                .successful
                .last()
                .map(|entry| entry.event_id.clone()),
            last_error_code: response.failed.last().map(|entry| entry.error_code.clone()),
        },
    );
    tracing::debug!(
        channel_arn = channel.arn.as_str(),
        successful = response.successful.len(),
        failed = response.failed.len(),
        "PutAuditEvents"
    );
    Ok(response.to_wire())
}

/// Every whole-request check: role, query, channel, body. Returns the channel written to
/// and the parsed entries.
fn check_request(
    registry: &ChannelRegistry,
    caller: &Caller,
    query: &str,
    body: &[u8],
) -> Result<(Channel, Vec<AuditEvent>), AwsError> {
    // A read key never writes, whatever the channel; same answer as native ingest.
    caller.require_ingest().map_err(|ApiError(error)| error)?;
    let query = parse_query(query)?;
    let channel = channel_for_writing(registry, caller, &query.channel_arn)?;
    if body.len() > MAX_REQUEST_BYTES {
        return Err(AwsError::request_entity_too_large(MAX_REQUEST_BYTES));
    }
    let entries = parse_request(body)?;
    Ok((channel, entries))
}

/// The channel `channel_arn` (an ARN or bare id) names, if the caller may write to it.
///
/// A channel outside the signing region, or an ARN whose account or region is not the
/// channel's, is `ChannelNotFound`. A channel of another account is
/// `ChannelInsufficientPermission` (the model's documented meaning), even for an admin of
/// the default account: events belong to the channel owner's account, and only that
/// account's keys write them.
fn channel_for_writing(
    registry: &ChannelRegistry,
    caller: &Caller,
    channel_arn: &str,
) -> Result<Channel, AwsError> {
    // The protocol crate's parser answers with the control plane's code; cloudtrail-data
    // names the same problem InvalidChannelARN.
    let reference = parse_channel_ref(channel_arn)
        .map_err(|error| AwsError::data(data_codes::INVALID_CHANNEL_ARN, error.message))?;
    let channel = registry.find(&reference, &caller.region).ok_or_else(|| {
        AwsError::data(
            data_codes::CHANNEL_NOT_FOUND,
            format!("Channel {channel_arn} does not exist in {}.", caller.region),
        )
    })?;
    if channel.owner_account_id != caller.account_id {
        return Err(AwsError::data(
            data_codes::CHANNEL_INSUFFICIENT_PERMISSION,
            format!(
                "Account {} may not write to channel {}, which belongs to account {}.",
                caller.account_id, channel.arn, channel.owner_account_id
            ),
        ));
    }
    Ok(channel)
}

/// The records to append and what to answer for each entry, in request order.
struct Batch {
    records: Vec<EventRecord>,
    pending: Vec<PendingEntry>,
}

enum PendingEntry {
    /// Will be `successful` once its record (the next one in `records`) is appended.
    Appending {
        id: String,
        event_id: String,
    },
    Failed(ResultErrorEntry),
}

fn prepare_batch(channel: &Channel, entries: &[AuditEvent], ingestion_time: Timestamp) -> Batch {
    let context = IngestContext {
        account_id: channel.owner_account_id.clone(),
        region: channel.region.clone(),
    };
    let mut batch = Batch {
        records: Vec::with_capacity(entries.len()),
        pending: Vec::with_capacity(entries.len()),
    };
    for entry in entries {
        let validated = match validate_audit_event(entry, &channel.owner_account_id) {
            Ok(validated) => validated,
            Err(failure) => {
                batch
                    .pending
                    .push(PendingEntry::Failed(failure.into_result_entry(&entry.id)));
                continue;
            }
        };
        let event_id = uuid::Uuid::new_v4().to_string();
        let text = stored_record_text(&validated, &event_id, channel, ingestion_time);
        match EventRecord::from_json_object(&text, &context) {
            Ok(record) => {
                batch.records.push(record);
                batch.pending.push(PendingEntry::Appending {
                    id: entry.id.clone(),
                    event_id,
                });
            }
            Err(invalid) => {
                // The document passed the schema checks, so this is the whole record
                // being too large for the store, or (never expected) a wrapping bug.
                let error_code = match invalid.kind {
                    RecordErrorKind::TooLarge => entry_codes::FIELD_TOO_LONG,
                    _ => entry_codes::INVALID_DATA,
                };
                batch.pending.push(PendingEntry::Failed(ResultErrorEntry {
                    id: entry.id.clone(),
                    error_code: error_code.to_owned(),
                    error_message: format!("The event cannot be stored: {invalid}"),
                }));
            }
        }
    }
    batch
}

/// CloudTrail's wrapped record with `eventSource` and `eventName` added at the top level
/// (see the module docs for why).
fn stored_record_text(
    validated: &ValidatedEventData,
    event_id: &str,
    channel: &Channel,
    ingestion_time: Timestamp,
) -> String {
    let wrapped = wrap_event_data(
        validated,
        event_id,
        &channel.arn,
        &channel.region,
        ingestion_time,
    );
    // The wrapper is a serialised JSON object, so it ends with its closing brace; the
    // members go in just before it. Value's Display writes a quoted, escaped JSON string.
    match wrapped.strip_suffix('}') {
        Some(open) => format!(
            "{open},\"eventSource\":{},\"eventName\":{}}}",
            serde_json::Value::from(validated.event_source.as_str()),
            serde_json::Value::from(validated.event_name.as_str()),
        ),
        // Unreachable; the store's validation then refuses the entry as InvalidData.
        None => wrapped,
    }
}

/// Pairs the append outcomes with the entries, in order.
fn assemble_response(
    pending: Vec<PendingEntry>,
    outcomes: &[AppendOutcome],
) -> Result<PutAuditEventsResponse, AwsError> {
    let appending = pending
        .iter()
        .filter(|entry| matches!(entry, PendingEntry::Appending { .. }))
        .count();
    if appending != outcomes.len() {
        tracing::error!(
            records = appending,
            outcomes = outcomes.len(),
            "the store answered for a different number of records than were appended"
        );
        return Err(AwsError::internal_failure());
    }
    let mut response = PutAuditEventsResponse::default();
    for entry in pending {
        match entry {
            // Stored or Duplicate: either way the event is durably stored under this id
            // (a duplicate of a fresh v4 UUID would mean it was stored already).
            PendingEntry::Appending { id, event_id } => response
                .successful
                .push(AuditEventResultEntry { id, event_id }),
            PendingEntry::Failed(failed) => response.failed.push(failed),
        }
    }
    Ok(response)
}

/// The REST-JSON error response, with `Retry-After` on 503 (overload) as native ingest
/// sends it.
fn rest_json_error(error: &AwsError) -> Response {
    let mut response = wire_response_into_http(error.to_rest_json());
    if error.status == 503 {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(RETRY_AFTER_SECONDS),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::{Value, json};
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::auth::AuthenticationMethod;
    use crate::channels::NewChannel;
    use crate::keys::Role;
    use opentrail_protocol::channels::Destination;

    const OWNER: &str = "111122223333";
    const OTHER: &str = "444455556666";
    const REGION: &str = "us-east-1";

    fn caller(role: Role, account_id: &str) -> Caller {
        Caller {
            access_key_id: "OTAKTESTTESTTESTTEST".to_owned(),
            role,
            account_id: account_id.to_owned(),
            region: REGION.to_owned(),
            method: AuthenticationMethod::SigV4,
        }
    }

    struct Fixture {
        registry: ChannelRegistry,
        channel: Channel,
        _directory: tempfile::TempDir,
    }

    fn fixture() -> anyhow::Result<Fixture> {
        let directory = tempfile::tempdir()?;
        let registry = ChannelRegistry::open(directory.path())?;
        let channel = registry.create(
            NewChannel {
                owner_account_id: OWNER.to_owned(),
                region: REGION.to_owned(),
                name: "app".to_owned(),
                source: "Custom".to_owned(),
                destinations: vec![Destination {
                    destination_type: "EVENT_DATA_STORE".to_owned(),
                    location: "arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/x"
                        .to_owned(),
                }],
                tags: Vec::new(),
            },
            1,
        )?;
        Ok(Fixture {
            registry,
            channel,
            _directory: directory,
        })
    }

    /// Written out by hand (not `json!`), so the number text `19.990` reaches the server
    /// as a producer would send it.
    fn event_data(name: &str, recipient: &str) -> String {
        format!(
            r#"{{"version":"1.0","userIdentity":{{"type":"CustomUser","principalId":"user-42"}},"eventSource":"payments.example.com","eventName":"{name}","eventTime":"2024-01-02T03:04:05Z","UID":"uid-1","recipientAccountId":"{recipient}","additionalEventData":{{"amount":19.990}}}}"#
        )
    }

    fn entry(id: &str, data: String, checksum_ok: bool) -> AuditEvent {
        let checksummed = if checksum_ok {
            data.clone()
        } else {
            format!("{data} ")
        };
        AuditEvent {
            id: id.to_owned(),
            event_data_checksum: Some(STANDARD.encode(Sha256::digest(checksummed.as_bytes()))),
            event_data: data,
        }
    }

    fn query_for(channel_arn: &str) -> String {
        let encoded: String = channel_arn
            .bytes()
            .map(|byte| match byte {
                b':' => "%3A".to_owned(),
                b'/' => "%2F".to_owned(),
                other => char::from(other).to_string(),
            })
            .collect();
        format!("channelArn={encoded}")
    }

    fn body(entries: &[AuditEvent]) -> Vec<u8> {
        json!({"auditEvents": entries}).to_string().into_bytes()
    }

    fn check_code(
        fixture: &Fixture,
        who: &Caller,
        query: &str,
        entries: &[AuditEvent],
    ) -> Option<(String, u16)> {
        check_request(&fixture.registry, who, query, &body(entries))
            .err()
            .map(|error| (error.code, error.status))
    }

    #[test]
    fn whole_request_errors() -> anyhow::Result<()> {
        let fixture = fixture()?;
        let owner = caller(Role::Ingest, OWNER);
        let good = [entry("1", event_data("Refund", OWNER), true)];
        let query = query_for(&fixture.channel.arn);
        assert!(check_request(&fixture.registry, &owner, &query, &body(&good)).is_ok());
        // The bare id works as well as the ARN.
        let by_id = format!("channelArn={}", fixture.channel.id);
        assert!(check_request(&fixture.registry, &owner, &by_id, &body(&good)).is_ok());

        let data_error = |code: &str| Some((code.to_owned(), 400));
        assert_eq!(
            check_code(&fixture, &caller(Role::Read, OWNER), &query, &good),
            Some(("AccessDeniedException".to_owned(), 403))
        );
        assert_eq!(
            check_code(&fixture, &owner, "channelArn=not%20an%20arn", &good),
            data_error("InvalidChannelARN")
        );
        assert_eq!(
            check_code(&fixture, &owner, "", &good),
            data_error("InvalidChannelARN")
        );
        let unknown = query_for(&format!(
            "arn:aws:cloudtrail:us-east-1:{OWNER}:channel/00000000-0000-0000-0000-000000000000"
        ));
        assert_eq!(
            check_code(&fixture, &owner, &unknown, &good),
            data_error("ChannelNotFound")
        );
        let elsewhere = Caller {
            region: "eu-west-1".to_owned(),
            ..owner.clone()
        };
        assert_eq!(
            check_code(&fixture, &elsewhere, &query, &good),
            data_error("ChannelNotFound")
        );
        for outsider in [caller(Role::Ingest, OTHER), caller(Role::Admin, OTHER)] {
            assert_eq!(
                check_code(&fixture, &outsider, &by_id, &good),
                data_error("ChannelInsufficientPermission")
            );
        }
        let duplicated = [
            entry("dup", event_data("A", OWNER), true),
            entry("dup", event_data("B", OWNER), true),
        ];
        assert_eq!(
            check_code(&fixture, &owner, &query, &duplicated),
            data_error("DuplicatedAuditEventId")
        );
        let too_large = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(
            check_request(&fixture.registry, &owner, &query, &too_large)
                .err()
                .map(|error| error.status),
            Some(413)
        );
        Ok(())
    }

    #[test]
    fn good_entries_are_wrapped_and_bad_ones_fail_alone() -> anyhow::Result<()> {
        let fixture = fixture()?;
        let good_data = event_data("RefundIssued", OWNER);
        let entries = [
            entry("a-1", good_data.clone(), true),
            entry("a-2", event_data("Tampered", OWNER), false),
            entry("a-3", event_data("Elsewhere", OTHER), true),
            entry("a-4", "not json".to_owned(), true),
        ];
        let now = Timestamp::from_second(1_704_164_700)?;
        let batch = prepare_batch(&fixture.channel, &entries, now);
        assert_eq!(batch.records.len(), 1);
        let record = &batch.records[0];
        assert_eq!(record.account_id, OWNER);
        assert_eq!(record.region, REGION);
        let stored: Value = serde_json::from_str(&record.json)?;
        assert_eq!(stored["eventCategory"], "ActivityAuditLog");
        assert_eq!(stored["eventType"], "ActivityLog");
        assert_eq!(stored["eventID"], record.event_id.as_str());
        assert_eq!(stored["eventTime"], "2024-01-02T03:04:05Z");
        assert_eq!(
            stored["metadata"]["channelARN"],
            fixture.channel.arn.as_str()
        );
        assert_eq!(stored["metadata"]["ingestionTime"], "2024-01-02T03:05:00Z");
        assert_eq!(stored["eventName"], "RefundIssued");
        assert_eq!(stored["eventSource"], "payments.example.com");
        assert_eq!(
            stored["eventData"],
            serde_json::from_str::<Value>(&good_data)?
        );
        // The producer's number text is kept as sent.
        assert!(
            record
                .json
                .contains(r#""additionalEventData":{"amount":19.990}"#),
            "{}",
            record.json
        );
        assert_eq!(record.attributes.event_name, "RefundIssued");

        let response = assemble_response(batch.pending, &[AppendOutcome::Stored { seq: 7 }])
            .map_err(|error| anyhow::anyhow!(error))?;
        assert_eq!(
            response.successful,
            vec![AuditEventResultEntry {
                id: "a-1".to_owned(),
                event_id: record.event_id.clone()
            }]
        );
        let failed: Vec<(&str, &str)> = response
            .failed
            .iter()
            .map(|entry| (entry.id.as_str(), entry.error_code.as_str()))
            .collect();
        assert_eq!(
            failed,
            [
                ("a-2", "InvalidChecksum"),
                ("a-3", "InvalidRecipient"),
                ("a-4", "InvalidData")
            ]
        );
        let wire: Value = serde_json::from_slice(&response.to_wire().body)?;
        assert!(wire["successful"].is_array() && wire["failed"].is_array());
        Ok(())
    }

    #[test]
    fn a_mismatched_outcome_count_is_an_internal_failure() {
        let pending = vec![PendingEntry::Appending {
            id: "1".to_owned(),
            event_id: "e".to_owned(),
        }];
        assert_eq!(
            assemble_response(pending, &[])
                .err()
                .map(|error| error.status),
            Some(500)
        );
        let response = assemble_response(Vec::new(), &[]).ok().unwrap_or_default();
        assert!(response.successful.is_empty() && response.failed.is_empty());
    }

    #[test]
    fn errors_are_rest_json_with_retry_after_on_overload() -> anyhow::Result<()> {
        let response = rest_json_error(&AwsError::data(data_codes::CHANNEL_NOT_FOUND, "gone"));
        assert_eq!(response.status(), 400);
        assert_eq!(
            response
                .headers()
                .get("x-amzn-errortype")
                .map(HeaderValue::as_bytes),
            Some(&b"ChannelNotFound"[..])
        );
        assert!(
            response
                .headers()
                .get(axum::http::header::RETRY_AFTER)
                .is_none()
        );
        let ApiError(overloaded) = crate::ingest::overloaded();
        let response = rest_json_error(&overloaded);
        assert_eq!(response.status(), 503);
        assert!(
            response
                .headers()
                .get(axum::http::header::RETRY_AFTER)
                .is_some()
        );
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .map(HeaderValue::as_bytes),
            Some(&b"application/json"[..])
        );
        Ok(())
    }
}

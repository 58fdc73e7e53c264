//! One observed HTTP call → one CloudTrail record.
//!
//! | record member | from |
//! |---|---|
//! | `eventSource`, `eventName` | an AWS call: `<service>.amazonaws.com` and the operation ([`opentrail_protocol::aws_calls`]); gRPC: the service and method of the path; else a route rule, else `event_source` and [`default_event_name`] |
//! | `userIdentity` | [`crate::identity`] |
//! | `sourceIPAddress` | the peer, or the `X-Forwarded-For` entry `trusted_forwarded_hops` from the right |
//! | `userAgent` | `User-Agent` |
//! | `errorCode`, `errorMessage` | the upstream's error response (AWS error bodies, gRPC status, else the HTTP status name) |
//! | `requestParameters` | an AWS operation's parameters; else a JSON object body's members with the path labels and query parameters beside them; redacted |
//! | `readOnly` | the AWS operation's verb, a rule, else GET/HEAD/OPTIONS |
//! | `resources` | the AWS resources the call names, or the rule's resource |
//! | `requestID` | the upstream's request id header, else a new UUID |
//! | `eventID` | a new UUID: resending the record is deduplicated by it |
//! | `additionalEventData` | method, path, status, duration, body sizes, request headers (redacted) |
//!
//! Response bodies are never stored, only read for the error they carry.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::HeaderMap;
use opentrail_protocol::aws_calls::{self, HttpRequestView};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::capture::Captured;
use crate::identity::caller_of;
use crate::redact::{HIDDEN, Redaction};
use crate::routes::{RouteRule, check_template, default_event_name, is_safe_method, match_rules};

/// Bytes of each body kept for recording by default: enough for any AWS request's
/// parameters and error body.
pub const CAPTURE_BYTES_DEFAULT: usize = 64 * 1024;

/// How calls are recorded; the same options for the proxy, the tower layer and the
/// server's `[[proxy]]` sections.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingOptions {
    /// The account the records belong to (`recipientAccountId`, ARNs). Unset: the
    /// account of the key that ingests them.
    pub account_id: Option<String>,
    /// `awsRegion` of calls whose signature names none.
    pub region: Option<String>,
    /// `eventSource` of calls to non-AWS APIs (default: the upstream's host name).
    pub event_source: Option<String>,
    /// How many proxies in front are trusted to append to `X-Forwarded-For`.
    pub trusted_forwarded_hops: usize,
    /// Access key id → user name, for `userIdentity.userName`.
    pub key_names: BTreeMap<String, String>,
    /// Extra header names whose values are never stored.
    pub redact_headers: Vec<String>,
    /// Dotted paths into the request parameters that are never stored.
    pub redact_json_paths: Vec<String>,
    /// Route rules naming calls to non-AWS APIs.
    pub routes: Vec<RouteRule>,
    /// Bytes of each body read for parameters and errors (default 64 KiB).
    pub capture_bytes: Option<usize>,
}

impl RecordingOptions {
    pub fn validate(&self) -> Result<(), String> {
        for rule in &self.routes {
            check_template(&rule.path)?;
            if rule.event_name.is_empty() {
                return Err(format!("route {:?} has an empty event_name", rule.path));
            }
        }
        Ok(())
    }
}

/// Everything known about one call once its response has ended.
#[derive(Debug, Clone)]
pub struct ObservedCall {
    pub started: jiff::Timestamp,
    pub duration_ms: u64,
    pub method: String,
    /// As sent (percent-encoded), without the query.
    pub path: String,
    pub query: String,
    pub request_headers: HeaderMap,
    pub request_body: Captured,
    pub peer_ip: Option<IpAddr>,
    /// `None` when no response came (the upstream could not be reached).
    pub status: Option<u16>,
    pub response_headers: HeaderMap,
    pub response_body: Captured,
    /// Why no response came, when none did.
    pub failure: Option<String>,
}

/// What is known of a call when its request arrives; [`CallStart::finish`] completes it
/// into an [`ObservedCall`] once the response is over.
#[derive(Debug, Clone)]
pub struct CallStart {
    started: jiff::Timestamp,
    clock: std::time::Instant,
    method: String,
    path: String,
    query: String,
    request_headers: HeaderMap,
    peer_ip: Option<IpAddr>,
}

impl CallStart {
    pub fn new(
        method: &http::Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        peer_ip: Option<IpAddr>,
    ) -> CallStart {
        CallStart {
            started: jiff::Timestamp::now(),
            clock: std::time::Instant::now(),
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            request_headers: headers.clone(),
            peer_ip,
        }
    }

    /// The call, answered with `status` (`None`: no answer came, for `failure`).
    pub fn finish(
        self,
        request_body: Captured,
        status: Option<u16>,
        response_headers: HeaderMap,
        response_body: Captured,
        failure: Option<String>,
    ) -> ObservedCall {
        ObservedCall {
            started: self.started,
            duration_ms: self.clock.elapsed().as_millis() as u64,
            method: self.method,
            path: self.path,
            query: self.query,
            request_headers: self.request_headers,
            request_body,
            peer_ip: self.peer_ip,
            status,
            response_headers,
            response_body,
            failure,
        }
    }
}

/// [`RecordingOptions`] ready to build records.
#[derive(Debug, Clone)]
pub struct Recorder {
    options: RecordingOptions,
    redaction: Redaction,
    default_event_source: String,
}

impl Recorder {
    /// `default_event_source` names non-AWS calls when the options do not.
    pub fn new(options: RecordingOptions, default_event_source: &str) -> Recorder {
        let redaction = Redaction::new(&options.redact_headers, &options.redact_json_paths);
        let default_event_source = options
            .event_source
            .clone()
            .unwrap_or_else(|| default_event_source.to_owned());
        Recorder {
            options,
            redaction,
            default_event_source,
        }
    }

    pub fn capture_bytes(&self) -> usize {
        self.options.capture_bytes.unwrap_or(CAPTURE_BYTES_DEFAULT)
    }

    pub fn options(&self) -> &RecordingOptions {
        &self.options
    }

    /// The CloudTrail record of `call`, as JSON text.
    pub fn record(&self, call: &ObservedCall) -> String {
        let caller = caller_of(&call.request_headers, &call.query);
        let scope = caller.scope();
        let region = scope
            .map(|scope| scope.region.clone())
            .filter(|region| !region.is_empty())
            .or_else(|| self.options.region.clone())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let account_id = self.options.account_id.as_deref();
        let view = HttpRequestView {
            method: &call.method,
            path: &call.path,
            query: &call.query,
            headers: &call.request_headers,
            body: &call.request_body.bytes,
            body_complete: call.request_body.is_complete(),
        };

        let mut named = self.name_call(&view, scope, &region, account_id.unwrap_or(""));
        self.redaction.apply(&mut named.parameters);

        let (error_code, error_message) = self.error_of(call);
        let user_agent = header(&call.request_headers, "user-agent");
        let request_id = ["x-amzn-requestid", "x-amz-request-id", "x-request-id"]
            .iter()
            .find_map(|name| header(&call.response_headers, name))
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());

        let mut record = Map::new();
        record.insert(
            "eventVersion".into(),
            json!(opentrail_event::DEFAULT_EVENT_VERSION),
        );
        record.insert(
            "userIdentity".into(),
            caller.user_identity(account_id, &self.options.key_names),
        );
        record.insert(
            "eventTime".into(),
            json!(call.started.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
        record.insert("eventSource".into(), json!(named.event_source));
        record.insert("eventName".into(), json!(named.event_name));
        record.insert("awsRegion".into(), json!(region));
        record.insert(
            "sourceIPAddress".into(),
            json!(self.source_ip(call).unwrap_or_else(|| "unknown".to_owned())),
        );
        record.insert("userAgent".into(), json!(user_agent));
        if let Some(code) = error_code {
            record.insert("errorCode".into(), json!(code));
            record.insert("errorMessage".into(), json!(error_message.unwrap_or(code)));
        }
        let parameters = match named.parameters {
            Value::Object(object) if object.is_empty() => Value::Null,
            other => other,
        };
        record.insert("requestParameters".into(), parameters);
        record.insert("responseElements".into(), Value::Null);
        record.insert("additionalEventData".into(), self.additional_data(call));
        record.insert("requestID".into(), json!(request_id));
        record.insert("eventID".into(), json!(uuid::Uuid::new_v4().to_string()));
        record.insert("readOnly".into(), json!(named.read_only));
        if !named.resources.is_empty() {
            let resources: Vec<Value> = named
                .resources
                .iter()
                .map(|(kind, arn)| {
                    let mut resource = Map::new();
                    if let Some(account_id) = account_id {
                        resource.insert("accountId".into(), json!(account_id));
                    }
                    resource.insert("type".into(), json!(kind));
                    resource.insert("ARN".into(), json!(arn));
                    Value::Object(resource)
                })
                .collect();
            record.insert("resources".into(), Value::Array(resources));
        }
        record.insert("eventType".into(), json!("AwsApiCall"));
        record.insert("managementEvent".into(), json!(!named.data_event));
        if let Some(account_id) = account_id {
            record.insert("recipientAccountId".into(), json!(account_id));
        }
        record.insert(
            "eventCategory".into(),
            json!(if named.data_event {
                "Data"
            } else {
                "Management"
            }),
        );
        Value::Object(record).to_string()
    }

    fn name_call(
        &self,
        view: &HttpRequestView<'_>,
        scope: Option<&opentrail_protocol::sigv4::CredentialScope>,
        region: &str,
        account_id: &str,
    ) -> Naming {
        if let Some(operation) = aws_calls::identify(view, scope) {
            let resources = aws_calls::resources(&operation, region, account_id)
                .into_iter()
                .map(|resource| (resource.resource_type, resource.arn))
                .collect();
            return Naming {
                event_source: operation.event_source(),
                read_only: opentrail_event::infer_read_only(&operation.operation),
                data_event: is_data_event(&operation.service, &operation.operation),
                event_name: operation.operation,
                parameters: Value::Object(operation.parameters),
                resources,
            };
        }
        let decoded_path =
            String::from_utf8_lossy(&opentrail_protocol::sigv4::percent_decode(view.path))
                .into_owned();
        if let Some((service, method)) = grpc_method(view) {
            return Naming {
                event_source: service,
                read_only: opentrail_event::infer_read_only(&method),
                event_name: method,
                parameters: Value::Null,
                resources: Vec::new(),
                data_event: false,
            };
        }
        // A JSON object body's members are the parameters (so redaction paths are the
        // body's own paths); path labels and query parameters are added beside them.
        let mut parameters = Map::new();
        if view.body_complete
            && !view.body.is_empty()
            && let Ok(body) = serde_json::from_slice::<Value>(view.body)
        {
            match body {
                Value::Object(object) => parameters = object,
                other => {
                    parameters.insert("body".into(), other);
                }
            }
        }
        for (name, value) in aws_calls::form_pairs(view.query) {
            parameters.entry(name).or_insert(Value::String(value));
        }
        match match_rules(&self.options.routes, view.method, &decoded_path) {
            Some(rule) => {
                for (label, value) in rule.labels {
                    parameters.entry(label).or_insert(Value::String(value));
                }
                Naming {
                    event_source: rule
                        .event_source
                        .unwrap_or_else(|| self.default_event_source.clone()),
                    event_name: rule.event_name,
                    read_only: rule.read_only,
                    parameters: Value::Object(parameters),
                    resources: rule.resource.into_iter().collect(),
                    data_event: false,
                }
            }
            None => Naming {
                event_source: self.default_event_source.clone(),
                event_name: default_event_name(view.method, &decoded_path),
                read_only: is_safe_method(view.method),
                parameters: Value::Object(parameters),
                resources: Vec::new(),
                data_event: false,
            },
        }
    }

    fn error_of(&self, call: &ObservedCall) -> (Option<String>, Option<String>) {
        let Some(status) = call.status else {
            return (Some("UpstreamUnavailable".to_owned()), call.failure.clone());
        };
        if let Some(error) = grpc_error(call) {
            return error;
        }
        match aws_calls::response_error(status, &call.response_headers, &call.response_body.bytes) {
            Some(error) => (Some(error.code), error.message),
            None => (None, None),
        }
    }

    /// The client's address: the peer, or with `trusted_forwarded_hops = n`, the
    /// `X-Forwarded-For` entry that the nearest trusted proxy wrote.
    fn source_ip(&self, call: &ObservedCall) -> Option<String> {
        let hops = self.options.trusted_forwarded_hops;
        if hops > 0 {
            let forwarded: Vec<String> = call
                .request_headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .map(|entry| entry.trim().to_owned())
                .filter(|entry| !entry.is_empty())
                .collect();
            if forwarded.len() >= hops {
                return Some(forwarded[forwarded.len() - hops].clone());
            }
        }
        call.peer_ip.map(|ip| ip.to_canonical().to_string())
    }

    fn additional_data(&self, call: &ObservedCall) -> Value {
        let mut headers = Map::new();
        for (name, value) in &call.request_headers {
            let name = name.as_str();
            if IGNORED_HEADERS.contains(&name) || name.starts_with("amz-sdk-") {
                continue;
            }
            let value = if self.redaction.hides_header(name) {
                HIDDEN.to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            headers.insert(name.to_owned(), Value::String(value));
        }
        let mut data = json!({
            "recordedBy": "opentrail-recorder",
            "httpMethod": call.method,
            "path": call.path,
            "durationMs": call.duration_ms,
            "bytesTransferredIn": call.request_body.total_bytes,
            "bytesTransferredOut": call.response_body.total_bytes,
        });
        if let Some(status) = call.status {
            data["statusCode"] = json!(status);
        }
        if !headers.is_empty() {
            data["requestHeaders"] = Value::Object(headers);
        }
        data
    }
}

/// Headers that say nothing about the call beyond what the record already holds, or only
/// about the transport.
const IGNORED_HEADERS: [&str; 14] = [
    "host",
    "user-agent",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "expect",
    "accept-encoding",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-target",
    "x-amz-user-agent",
];

struct Naming {
    event_source: String,
    event_name: String,
    read_only: bool,
    parameters: Value,
    resources: Vec<(String, String)>,
    data_event: bool,
}

/// CloudTrail logs these as data events (object-level S3, item-level DynamoDB, Lambda
/// invocations), not management events.
fn is_data_event(service: &str, operation: &str) -> bool {
    match service {
        "s3" => {
            operation.contains("Object")
                || operation.contains("MultipartUpload")
                || matches!(operation, "UploadPart" | "UploadPartCopy" | "ListParts")
        }
        "dynamodb" => matches!(
            operation,
            "GetItem"
                | "PutItem"
                | "UpdateItem"
                | "DeleteItem"
                | "Query"
                | "Scan"
                | "BatchGetItem"
                | "BatchWriteItem"
                | "TransactGetItems"
                | "TransactWriteItems"
        ),
        "lambda" => operation.starts_with("Invoke"),
        _ => false,
    }
}

/// `/package.Service/Method` of a gRPC call.
fn grpc_method(view: &HttpRequestView<'_>) -> Option<(String, String)> {
    let is_grpc = header(view.headers, "content-type")
        .is_some_and(|value| value.starts_with("application/grpc"));
    if !is_grpc {
        return None;
    }
    let (service, method) = view.path.trim_start_matches('/').split_once('/')?;
    Some((service.to_owned(), method.to_owned()))
}

/// gRPC reports errors in `grpc-status` (a trailer, or a header of a trailers-only reply).
fn grpc_error(call: &ObservedCall) -> Option<(Option<String>, Option<String>)> {
    let from = |headers: &HeaderMap| {
        let status: u32 = header(headers, "grpc-status")?.parse().ok()?;
        let message = header(headers, "grpc-message").map(str::to_owned);
        Some((status, message))
    };
    let (status, message) = call
        .response_body
        .trailers
        .as_ref()
        .and_then(from)
        .or_else(|| from(&call.response_headers))?;
    const NAMES: [&str; 17] = [
        "OK",
        "Cancelled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    if status == 0 {
        return Some((None, None));
    }
    let code = NAMES
        .get(status as usize)
        .map(|name| (*name).to_owned())
        .unwrap_or_else(|| format!("GrpcStatus{status}"));
    Some((Some(code), message))
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> ObservedCall {
        let mut request_headers = HeaderMap::new();
        for (name, value) in headers {
            request_headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        ObservedCall {
            started: jiff::Timestamp::from_second(1_780_000_000).expect("time"),
            duration_ms: 3,
            method: method.into(),
            path: path.into(),
            query: String::new(),
            request_headers,
            request_body: Captured {
                bytes: body.to_vec(),
                total_bytes: body.len() as u64,
                finished: true,
                trailers: None,
                expected_bytes: Some(body.len() as u64),
            },
            peer_ip: Some("10.0.0.9".parse().expect("ip")),
            status: Some(200),
            response_headers: HeaderMap::new(),
            response_body: Captured::default(),
            failure: None,
        }
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("record json")
    }

    #[test]
    fn a_signed_dynamodb_call_becomes_a_cloudtrail_record_that_the_store_accepts() {
        let options = RecordingOptions {
            account_id: Some("111122223333".into()),
            key_names: BTreeMap::from([("AKIAALICE".into(), "alice".into())]),
            ..RecordingOptions::default()
        };
        let recorder = Recorder::new(options, "upstream");
        let mut observed = call(
            "POST",
            "/",
            &[
                (
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIAALICE/20261204/eu-west-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00",
                ),
                ("x-amz-target", "DynamoDB_20120810.DeleteTable"),
                ("user-agent", "Boto3/1.40"),
            ],
            br#"{"TableName":"orders"}"#,
        );
        observed.status = Some(400);
        observed.response_body.bytes =
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#.to_vec();
        let text = recorder.record(&observed);
        let record = parse(&text);
        assert_eq!(record["eventSource"], "dynamodb.amazonaws.com");
        assert_eq!(record["eventName"], "DeleteTable");
        assert_eq!(record["awsRegion"], "eu-west-1");
        assert_eq!(record["readOnly"], false);
        assert_eq!(record["userIdentity"]["userName"], "alice");
        assert_eq!(record["errorCode"], "ResourceNotFoundException");
        assert_eq!(record["sourceIPAddress"], "10.0.0.9");
        assert_eq!(record["requestParameters"]["tableName"], "orders");
        assert_eq!(
            record["resources"][0]["ARN"],
            "arn:aws:dynamodb:eu-west-1:111122223333:table/orders"
        );
        assert!(!text.contains("Signature=00"));
        let context = opentrail_event::IngestContext {
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
        };
        let stored = opentrail_event::EventRecord::from_json_object(&text, &context)
            .expect("the store accepts the record");
        assert_eq!(
            stored
                .attributes
                .index_values()
                .iter()
                .filter(
                    |(field, value)| *field == opentrail_event::FilterField::AccessKeyId
                        && *value == "AKIAALICE"
                )
                .count(),
            1
        );
    }

    #[test]
    fn a_grpc_call_is_named_by_its_method_and_its_status_trailer() {
        let recorder = Recorder::new(RecordingOptions::default(), "grpc.internal");
        let mut observed = call(
            "POST",
            "/billing.v1.Invoices/VoidInvoice",
            &[("content-type", "application/grpc+proto")],
            b"\0\0\0\0\0",
        );
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "7".parse().expect("value"));
        trailers.insert("grpc-message", "not allowed".parse().expect("value"));
        observed.response_body.trailers = Some(trailers);
        let record = parse(&recorder.record(&observed));
        assert_eq!(record["eventSource"], "billing.v1.Invoices");
        assert_eq!(record["eventName"], "VoidInvoice");
        assert_eq!(record["errorCode"], "PermissionDenied");
        assert_eq!(record["errorMessage"], "not allowed");
        assert_eq!(record["readOnly"], false);
    }

    #[test]
    fn a_plain_http_call_is_named_by_its_rule_with_secrets_hidden() {
        let options = RecordingOptions {
            redact_json_paths: vec!["card.number".into()],
            trusted_forwarded_hops: 1,
            routes: vec![RouteRule {
                method: "POST".into(),
                path: "/v1/users/{user}/payments".into(),
                event_name: "CreatePayment".into(),
                event_source: None,
                resource_type: Some("Example::User".into()),
                resource_name: Some("{user}".into()),
                read_only: None,
            }],
            ..RecordingOptions::default()
        };
        let recorder = Recorder::new(options, "payments.internal");
        let mut observed = call(
            "POST",
            "/v1/users/bob/payments",
            &[
                ("content-type", "application/json"),
                ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
                ("cookie", "session=abcdef"),
            ],
            br#"{"amount":12,"card":{"number":"4111111111111111"},"password":"pw"}"#,
        );
        observed.status = Some(402);
        observed.response_body.bytes = br#"{"error":"CardDeclined","message":"declined"}"#.to_vec();
        let text = recorder.record(&observed);
        let record = parse(&text);
        assert_eq!(record["eventSource"], "payments.internal");
        assert_eq!(record["eventName"], "CreatePayment");
        assert_eq!(record["sourceIPAddress"], "10.0.0.2");
        assert_eq!(record["errorCode"], "CardDeclined");
        assert_eq!(record["requestParameters"]["user"], "bob");
        assert_eq!(record["requestParameters"]["amount"], 12);
        assert_eq!(record["resources"][0]["ARN"], "bob");
        for secret in ["4111111111111111", "\"pw\"", "abcdef"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}

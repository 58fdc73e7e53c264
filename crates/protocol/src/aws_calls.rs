//! AWS API calls seen from outside: which service and operation an HTTP request is, its
//! parameters as CloudTrail shows them, the resources it names, and the error its response
//! carries. The recording proxy reads calls to AWS-compatible services (MinIO, Ceph RGW,
//! LocalStack, moto…) with it.
//!
//! Every AWS protocol is recognised:
//! - JSON 1.0/1.1: `X-Amz-Target: <prefix>.<Operation>`; the prefix names the service when
//!   the request is not signed (`data/aws_json_targets.tsv`);
//! - Query: `Action=<Operation>` in a form body or the query string (IAM, STS, SNS…);
//! - REST-JSON and REST-XML (S3): method + path against each operation's URI template and
//!   the query members and headers it requires (`data/aws_rest_operations.tsv`, generated
//!   from botocore by `scripts/gen-aws-operations`), so `PUT /b/k` is `PutObject`,
//!   `PUT /b/k?partNumber=1&uploadId=…` is `UploadPart` and `GET /b?list-type=2` is
//!   `ListObjectsV2`;
//! - Smithy RPC v2 CBOR: `/service/<Service>/operation/<Operation>`.
//!
//! The service comes from the SigV4 credential scope when the call is signed.

use std::collections::HashMap;
use std::sync::OnceLock;

use http::HeaderMap;
use serde_json::{Map, Value};

use crate::sigv4::{CredentialScope, percent_decode};

/// One HTTP request as the proxy saw it. `body` is what was captured of the request body
/// (at most the capture limit); `body_complete` says whether that is all of it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequestView<'a> {
    pub method: &'a str,
    /// The path as sent, percent-encoded.
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub body_complete: bool,
}

/// The wire protocol a call was recognised by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsProtocol {
    Json,
    Query,
    Rest,
    RpcV2Cbor,
}

/// An AWS operation and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsOperation {
    /// The SigV4 service name (`s3`, `dynamodb`, `iam`…).
    pub service: String,
    /// The operation as AWS names it (`PutObject`, `CreateTable`).
    pub operation: String,
    pub protocol: AwsProtocol,
    /// The request's parameters with CloudTrail's lower-camel member names; secrets are
    /// still in them (the caller redacts).
    pub parameters: Map<String, Value>,
}

impl AwsOperation {
    /// `<service>.amazonaws.com`, as CloudTrail names event sources.
    pub fn event_source(&self) -> String {
        format!("{}.amazonaws.com", self.service)
    }
}

/// One entry of a record's `resources[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsResource {
    pub resource_type: String,
    pub arn: String,
}

/// An error read from a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseError {
    pub code: String,
    pub message: Option<String>,
}

/// The AWS operation a request is, or `None` when it is not recognisably an AWS call.
pub fn identify(
    request: &HttpRequestView<'_>,
    scope: Option<&CredentialScope>,
) -> Option<AwsOperation> {
    if let Some(target) = header_text(request.headers, "x-amz-target") {
        return Some(identify_json(request, target, scope));
    }
    if let Some(operation) = identify_rpc_v2(request, scope) {
        return Some(operation);
    }
    if let Some(operation) = identify_query(request, scope) {
        return Some(operation);
    }
    identify_rest(request, scope?)
}

fn identify_json(
    request: &HttpRequestView<'_>,
    target: &str,
    scope: Option<&CredentialScope>,
) -> AwsOperation {
    let (prefix, operation) = target.rsplit_once('.').unwrap_or(("", target));
    let service = scope
        .map(|scope| scope.service.clone())
        .or_else(|| json_target_services().get(prefix).cloned())
        .unwrap_or_else(|| {
            prefix
                .split('_')
                .next()
                .unwrap_or(prefix)
                .to_ascii_lowercase()
        });
    let parameters = json_body_object(request).unwrap_or_default();
    AwsOperation {
        service,
        operation: operation.to_owned(),
        protocol: AwsProtocol::Json,
        parameters,
    }
}

fn identify_rpc_v2(
    request: &HttpRequestView<'_>,
    scope: Option<&CredentialScope>,
) -> Option<AwsOperation> {
    let rest = request.path.strip_prefix("/service/")?;
    let (service_shape, operation) = rest.split_once("/operation/")?;
    if request.method != "POST" || operation.is_empty() || operation.contains('/') {
        return None;
    }
    let service = scope
        .map(|scope| scope.service.clone())
        .unwrap_or_else(|| service_shape.to_ascii_lowercase());
    Some(AwsOperation {
        service,
        operation: operation.to_owned(),
        protocol: AwsProtocol::RpcV2Cbor,
        parameters: Map::new(),
    })
}

fn identify_query(
    request: &HttpRequestView<'_>,
    scope: Option<&CredentialScope>,
) -> Option<AwsOperation> {
    let is_form = header_text(request.headers, "content-type")
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    let mut pairs = form_pairs(request.query);
    if is_form && request.body_complete {
        pairs.extend(form_pairs(std::str::from_utf8(request.body).ok()?));
    }
    let action = pairs
        .iter()
        .find(|(name, _)| name == "Action")
        .map(|(_, value)| value.clone())?;
    if action.is_empty() {
        return None;
    }
    let service = scope
        .map(|scope| scope.service.clone())
        .or_else(|| host_service(request.headers))
        .unwrap_or_else(|| "aws".to_owned());
    let mut parameters = Map::new();
    for (name, value) in pairs {
        if matches!(name.as_str(), "Action" | "Version") || name.starts_with("X-Amz-") {
            continue;
        }
        parameters.insert(lower_camel(&name), Value::String(value));
    }
    Some(AwsOperation {
        service,
        operation: action,
        protocol: AwsProtocol::Query,
        parameters,
    })
}

/// The first label of a `<service>.<region>.amazonaws.com`-style host.
fn host_service(headers: &HeaderMap) -> Option<String> {
    let host = header_text(headers, "host")?;
    let name = host.split(':').next()?;
    let first = name.split('.').next()?;
    if name.contains(".amazonaws.") && !first.is_empty() {
        Some(first.to_owned())
    } else {
        None
    }
}

fn identify_rest(request: &HttpRequestView<'_>, scope: &CredentialScope) -> Option<AwsOperation> {
    let operations = rest_operations().get(scope.service.as_str())?;
    let is_s3 = scope.service == "s3";
    let mut segments: Vec<String> = Vec::new();
    if is_s3 && let Some(bucket) = header_text(request.headers, "host").and_then(virtual_bucket) {
        segments.push(bucket.to_owned());
    }
    segments.extend(
        request
            .path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| String::from_utf8_lossy(&percent_decode(segment)).into_owned()),
    );
    let query = form_pairs(request.query);
    let query_names: Vec<String> = query
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();

    let mut best: Option<(usize, &RestOperation, Labels)> = None;
    for operation in operations {
        if operation.method != request.method {
            continue;
        }
        let Some(labels) = operation.match_path(&segments) else {
            continue;
        };
        let query_ok = operation.query_literals.iter().all(|(name, value)| {
            query.iter().any(|(present, present_value)| {
                present.eq_ignore_ascii_case(name)
                    && value.as_ref().is_none_or(|value| value == present_value)
            })
        }) && operation
            .required_query
            .iter()
            .all(|name| query_names.contains(name));
        let headers_ok = operation
            .required_headers
            .iter()
            .all(|name| request.headers.contains_key(name.as_str()));
        if !query_ok || !headers_ok {
            continue;
        }
        let score = operation.literal_segments * 100
            + operation.query_literals.len()
            + operation.required_query.len()
            + operation.required_headers.len();
        if best
            .as_ref()
            .is_none_or(|(best_score, _, _)| score > *best_score)
        {
            best = Some((score, operation, labels));
        }
    }
    let (_, operation, labels) = best?;

    let mut parameters = Map::new();
    for (label, value) in labels {
        let name = match (is_s3, label.as_str()) {
            (true, "Bucket") => "bucketName".to_owned(),
            (true, "Key") => "key".to_owned(),
            _ => lower_camel(&label),
        };
        parameters.insert(name, Value::String(value));
    }
    if is_s3 && let Some(host) = header_text(request.headers, "host") {
        parameters.insert("Host".to_owned(), Value::String(host.to_owned()));
    }
    for (name, value) in query {
        if name.starts_with("X-Amz-") || name == "x-id" {
            continue;
        }
        parameters.entry(name).or_insert(Value::String(value));
    }
    if !is_s3 && let Some(body) = json_body_object(request) {
        for (name, value) in body {
            parameters.entry(name).or_insert(value);
        }
    }
    Some(AwsOperation {
        service: scope.service.clone(),
        operation: operation.name.clone(),
        protocol: AwsProtocol::Rest,
        parameters,
    })
}

/// The bucket of a virtual-hosted-style S3 host: `bucket.s3.<region>.amazonaws.com`,
/// `bucket.s3.amazonaws.com`, `bucket.localhost`.
fn virtual_bucket(host: &str) -> Option<&str> {
    let name = host.split(':').next()?;
    let (bucket, rest) = name.split_once('.')?;
    let is_s3_host = rest.starts_with("s3.") || rest.starts_with("s3-") || rest == "localhost";
    (is_s3_host && !bucket.is_empty()).then_some(bucket)
}

/// The resources a call names, as CloudTrail lists them in `resources[]`.
pub fn resources(operation: &AwsOperation, region: &str, account_id: &str) -> Vec<AwsResource> {
    let text = |name: &str| {
        operation
            .parameters
            .get(name)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
    };
    let resource = |resource_type: &str, arn: String| AwsResource {
        resource_type: resource_type.to_owned(),
        arn,
    };
    let or_arn = |name: &str, build: &dyn Fn(&str) -> String| {
        text(name).map(|value| {
            if value.starts_with("arn:") {
                value.to_owned()
            } else {
                build(value)
            }
        })
    };
    let mut found = Vec::new();
    match operation.service.as_str() {
        "s3" => {
            if let Some(bucket) = text("bucketName") {
                found.push(resource(
                    "AWS::S3::Bucket",
                    format!("arn:aws:s3:::{bucket}"),
                ));
                if let Some(key) = text("key") {
                    found.push(resource(
                        "AWS::S3::Object",
                        format!("arn:aws:s3:::{bucket}/{key}"),
                    ));
                }
            }
        }
        "dynamodb" => {
            if let Some(arn) = or_arn("tableName", &|name| {
                format!("arn:aws:dynamodb:{region}:{account_id}:table/{name}")
            }) {
                found.push(resource("AWS::DynamoDB::Table", arn));
            }
        }
        "sqs" => {
            let name = text("queueUrl")
                .and_then(|url| url.rsplit('/').next())
                .or_else(|| text("queueName"));
            if let Some(name) = name.filter(|name| !name.is_empty()) {
                found.push(resource(
                    "AWS::SQS::Queue",
                    format!("arn:aws:sqs:{region}:{account_id}:{name}"),
                ));
            }
        }
        "iam" => {
            for (member, kind, path) in [
                ("userName", "AWS::IAM::User", "user"),
                ("roleName", "AWS::IAM::Role", "role"),
                ("groupName", "AWS::IAM::Group", "group"),
            ] {
                if let Some(name) = text(member) {
                    found.push(resource(
                        kind,
                        format!("arn:aws:iam::{account_id}:{path}/{name}"),
                    ));
                }
            }
            if let Some(arn) = text("policyArn") {
                found.push(resource("AWS::IAM::Policy", arn.to_owned()));
            }
        }
        "sts" => {
            if let Some(arn) = text("roleArn") {
                found.push(resource("AWS::IAM::Role", arn.to_owned()));
            }
        }
        "lambda" => {
            if let Some(arn) = or_arn("functionName", &|name| {
                format!("arn:aws:lambda:{region}:{account_id}:function:{name}")
            }) {
                found.push(resource("AWS::Lambda::Function", arn));
            }
        }
        "sns" => {
            if let Some(arn) = text("topicArn") {
                found.push(resource("AWS::SNS::Topic", arn.to_owned()));
            }
        }
        "kms" => {
            if let Some(arn) = or_arn("keyId", &|id| {
                format!("arn:aws:kms:{region}:{account_id}:key/{id}")
            }) {
                found.push(resource("AWS::KMS::Key", arn));
            }
        }
        "secretsmanager" => {
            if let Some(arn) = or_arn("secretId", &|name| {
                format!("arn:aws:secretsmanager:{region}:{account_id}:secret:{name}")
            }) {
                found.push(resource("AWS::SecretsManager::Secret", arn));
            }
        }
        "kinesis" => {
            if let Some(arn) = or_arn("streamName", &|name| {
                format!("arn:aws:kinesis:{region}:{account_id}:stream/{name}")
            }) {
                found.push(resource("AWS::Kinesis::Stream", arn));
            }
        }
        "logs" => {
            if let Some(arn) = or_arn("logGroupName", &|name| {
                format!("arn:aws:logs:{region}:{account_id}:log-group:{name}")
            }) {
                found.push(resource("AWS::Logs::LogGroup", arn));
            }
        }
        _ => {}
    }
    found
}

/// The error a response carries: for a status of 400 or more, the code and message of an
/// AWS error body (JSON `__type`/`code`, XML `<Code>`, the `x-amzn-ErrorType` header), of
/// a common JSON error body (`error`, `message`), or else the status's name.
pub fn response_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Option<ResponseError> {
    if status < 400 {
        return None;
    }
    let header_code = header_text(headers, "x-amzn-errortype").map(bare_error_code);
    let (body_code, message) = error_from_json(body)
        .or_else(|| error_from_xml(body))
        .unwrap_or((None, None));
    let code = header_code
        .or(body_code)
        .filter(|code| !code.is_empty())
        .unwrap_or_else(|| status_code_name(status));
    Some(ResponseError { code, message })
}

/// botocore's rule: a `namespace#` prefix and a `:detail` suffix are not part of an
/// error code.
fn bare_error_code(code: &str) -> String {
    let without_namespace = code.rsplit('#').next().unwrap_or(code);
    without_namespace
        .split(':')
        .next()
        .unwrap_or(without_namespace)
        .to_owned()
}

fn error_from_json(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let Value::Object(object) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    let string = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| object.get(*name).and_then(Value::as_str))
            .map(str::to_owned)
    };
    let code = string(&["__type", "code", "Code", "error", "errorCode"])
        .map(|code| bare_error_code(&code));
    let message = string(&[
        "message",
        "Message",
        "errorMessage",
        "error_description",
        "detail",
    ]);
    Some((code, message))
}

fn error_from_xml(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let text = std::str::from_utf8(body).ok()?;
    let element = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&close)? + start;
        Some(xml_unescape(text[start..end].trim()))
    };
    let code = element("Code")?;
    Some((Some(code), element("Message")))
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `NotFound`, `Forbidden`, `InternalServerError`: the status's reason, without spaces.
pub fn status_code_name(status: u16) -> String {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .map(|reason| reason.split([' ', '-']).collect::<String>())
        .unwrap_or_else(|| format!("Http{status}"))
}

/// `UserName` → `userName`, recursively for JSON objects: CloudTrail's member names.
pub fn lower_camel(name: &str) -> String {
    let mut characters = name.chars();
    match characters.next() {
        Some(first) => first.to_lowercase().chain(characters).collect(),
        None => String::new(),
    }
}

fn lower_camel_keys(value: Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .map(|(name, value)| (lower_camel(&name), lower_camel_keys(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lower_camel_keys).collect()),
        other => other,
    }
}

fn json_body_object(request: &HttpRequestView<'_>) -> Option<Map<String, Value>> {
    if !request.body_complete || request.body.is_empty() {
        return None;
    }
    match serde_json::from_slice::<Value>(request.body).ok()? {
        Value::Object(object) => match lower_camel_keys(Value::Object(object)) {
            Value::Object(object) => Some(object),
            _ => None,
        },
        _ => None,
    }
}

/// `a=1&b=x+y` → `[("a","1"),("b","x y")]`, decoded.
pub fn form_pairs(text: &str) -> Vec<(String, String)> {
    let decode = |part: &str| {
        let spaced = part.replace('+', " ");
        String::from_utf8_lossy(&percent_decode(&spaced)).into_owned()
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (decode(name), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn json_target_services() -> &'static HashMap<String, String> {
    static TABLE: OnceLock<HashMap<String, String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        include_str!("../data/aws_json_targets.tsv")
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once('\t'))
            .map(|(prefix, service)| (prefix.to_owned(), service.to_owned()))
            .collect()
    })
}

/// A URI template's label values: (label, decoded value).
type Labels = Vec<(String, String)>;

/// One REST operation of the generated table.
#[derive(Debug)]
struct RestOperation {
    name: String,
    method: String,
    /// `None` for a `{Label}` segment; the bool marks a greedy `{Label+}`.
    segments: Vec<TemplateSegment>,
    literal_segments: usize,
    query_literals: Vec<(String, Option<String>)>,
    required_query: Vec<String>,
    required_headers: Vec<String>,
}

#[derive(Debug)]
enum TemplateSegment {
    Literal(String),
    Label(String),
    Greedy(String),
}

impl RestOperation {
    fn parse(line: &str) -> Option<(String, RestOperation)> {
        let fields: Vec<&str> = line.split('\t').collect();
        let [service, name, method, uri, required_query, required_headers] = fields[..] else {
            return None;
        };
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let segments: Vec<TemplateSegment> = path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(
                |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(label) => match label.strip_suffix('+') {
                        Some(greedy) => TemplateSegment::Greedy(greedy.to_owned()),
                        None => TemplateSegment::Label(label.to_owned()),
                    },
                    None => TemplateSegment::Literal(segment.to_owned()),
                },
            )
            .collect();
        let literal_segments = segments
            .iter()
            .filter(|segment| matches!(segment, TemplateSegment::Literal(_)))
            .count();
        let query_literals = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (pair.to_owned(), None),
            })
            // botocore does not send the `x-id` marker some templates carry.
            .filter(|(name, _)| name != "x-id")
            .collect();
        let list = |text: &str| -> Vec<String> {
            text.split(',')
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Some((
            service.to_owned(),
            RestOperation {
                name: name.to_owned(),
                method: method.to_owned(),
                segments,
                literal_segments,
                query_literals,
                required_query: list(required_query),
                required_headers: list(required_headers),
            },
        ))
    }

    /// The label values when `segments` (decoded) fit the template.
    fn match_path(&self, segments: &[String]) -> Option<Labels> {
        let mut labels = Vec::new();
        let mut index = 0;
        for template in &self.segments {
            match template {
                TemplateSegment::Literal(literal) => {
                    if segments.get(index)? != literal {
                        return None;
                    }
                    index += 1;
                }
                TemplateSegment::Label(label) => {
                    labels.push((label.clone(), segments.get(index)?.clone()));
                    index += 1;
                }
                TemplateSegment::Greedy(label) => {
                    if index >= segments.len() {
                        return None;
                    }
                    labels.push((label.clone(), segments[index..].join("/")));
                    index = segments.len();
                }
            }
        }
        (index == segments.len()).then_some(labels)
    }
}

fn rest_operations() -> &'static HashMap<String, Vec<RestOperation>> {
    static TABLE: OnceLock<HashMap<String, Vec<RestOperation>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table: HashMap<String, Vec<RestOperation>> = HashMap::new();
        for line in include_str!("../data/aws_rest_operations.tsv").lines() {
            if line.starts_with('#') {
                continue;
            }
            if let Some((service, operation)) = RestOperation::parse(line) {
                table.entry(service).or_default().push(operation);
            }
        }
        table
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(service: &str) -> CredentialScope {
        CredentialScope {
            access_key_id: "AKIAEXAMPLE".into(),
            region: "us-east-1".into(),
            service: service.into(),
        }
    }

    fn view<'a>(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> HttpRequestView<'a> {
        HttpRequestView {
            method,
            path,
            query,
            headers,
            body,
            body_complete: true,
        }
    }

    fn s3_operation(method: &str, path: &str, query: &str, headers: &HeaderMap) -> String {
        identify(&view(method, path, query, headers, b""), Some(&scope("s3")))
            .map(|operation| operation.operation)
            .unwrap_or_default()
    }

    #[test]
    fn s3_calls_that_share_a_path_are_told_apart_by_query_and_headers() {
        let none = HeaderMap::new();
        assert_eq!(s3_operation("PUT", "/b/k", "", &none), "PutObject");
        assert_eq!(
            s3_operation("PUT", "/b/k", "partNumber=1&uploadId=x", &none),
            "UploadPart"
        );
        let mut copy = HeaderMap::new();
        copy.insert("x-amz-copy-source", "src/k".parse().expect("header"));
        assert_eq!(s3_operation("PUT", "/b/k", "", &copy), "CopyObject");
        assert_eq!(
            s3_operation("GET", "/b", "list-type=2", &none),
            "ListObjectsV2"
        );
        assert_eq!(s3_operation("GET", "/b", "", &none), "ListObjects");
        assert_eq!(s3_operation("PUT", "/b", "", &none), "CreateBucket");
        assert_eq!(s3_operation("DELETE", "/b", "", &none), "DeleteBucket");
        assert_eq!(s3_operation("GET", "/", "", &none), "ListBuckets");
        assert_eq!(
            s3_operation("GET", "/b/a/b/c.txt", "acl", &none),
            "GetObjectAcl"
        );
        assert_eq!(
            s3_operation("POST", "/b/k", "uploads", &none),
            "CreateMultipartUpload"
        );
        assert_eq!(s3_operation("HEAD", "/b/k", "", &none), "HeadObject");
    }

    #[test]
    fn rest_json_calls_are_named_by_their_uri_template() {
        let none = HeaderMap::new();
        let lambda = |method: &str, path: &str, body: &'static [u8]| {
            identify(&view(method, path, "", &none, body), Some(&scope("lambda")))
                .expect("a lambda call")
        };
        let invoke = lambda("POST", "/2015-03-31/functions/resize/invocations", b"{}");
        assert_eq!(invoke.operation, "Invoke");
        assert_eq!(invoke.parameters["functionName"], "resize");
        let found = resources(&invoke, "us-east-1", "111122223333");
        assert_eq!(
            found[0].arn,
            "arn:aws:lambda:us-east-1:111122223333:function:resize"
        );
        assert_eq!(
            lambda("GET", "/2015-03-31/functions/resize", b"").operation,
            "GetFunction"
        );
        assert_eq!(
            lambda("GET", "/2015-03-31/functions/", b"").operation,
            "ListFunctions"
        );
        let created = lambda(
            "POST",
            "/2015-03-31/functions",
            br#"{"FunctionName":"thumbs","Runtime":"python3.12"}"#,
        );
        assert_eq!(created.operation, "CreateFunction");
        assert_eq!(created.parameters["runtime"], "python3.12");
    }

    #[test]
    fn an_s3_object_call_names_its_bucket_and_object_like_cloudtrail() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "photos.s3.localhost:9000".parse().expect("header"));
        let operation = identify(
            &view("GET", "/2026/cat%20pic.jpg", "", &headers, b""),
            Some(&scope("s3")),
        )
        .expect("recognised");
        assert_eq!(operation.operation, "GetObject");
        assert_eq!(operation.parameters["bucketName"], "photos");
        assert_eq!(operation.parameters["key"], "2026/cat pic.jpg");
        let found = resources(&operation, "us-east-1", "111122223333");
        assert_eq!(found[0].arn, "arn:aws:s3:::photos");
        assert_eq!(found[1].resource_type, "AWS::S3::Object");
        assert_eq!(found[1].arn, "arn:aws:s3:::photos/2026/cat pic.jpg");
    }

    #[test]
    fn json_calls_are_named_by_their_target_even_unsigned() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-target",
            "DynamoDB_20120810.CreateTable".parse().expect("h"),
        );
        let body = br#"{"TableName":"orders","KeySchema":[{"AttributeName":"id"}]}"#;
        let operation = identify(&view("POST", "/", "", &headers, body), None).expect("json");
        assert_eq!(operation.service, "dynamodb");
        assert_eq!(operation.event_source(), "dynamodb.amazonaws.com");
        assert_eq!(operation.operation, "CreateTable");
        assert_eq!(operation.parameters["tableName"], "orders");
        assert_eq!(operation.parameters["keySchema"][0]["attributeName"], "id");
        let found = resources(&operation, "eu-west-1", "111122223333");
        assert_eq!(
            found[0].arn,
            "arn:aws:dynamodb:eu-west-1:111122223333:table/orders"
        );
    }

    #[test]
    fn query_calls_read_the_action_from_a_form_body() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .expect("h"),
        );
        let body = b"Action=CreateUser&Version=2010-05-08&UserName=bob+smith";
        let operation =
            identify(&view("POST", "/", "", &headers, body), Some(&scope("iam"))).expect("q");
        assert_eq!(operation.operation, "CreateUser");
        assert_eq!(operation.protocol, AwsProtocol::Query);
        assert_eq!(operation.parameters["userName"], "bob smith");
        assert!(!operation.parameters.contains_key("version"));
        let found = resources(&operation, "us-east-1", "111122223333");
        assert_eq!(found[0].arn, "arn:aws:iam::111122223333:user/bob smith");
    }

    #[test]
    fn errors_are_read_from_each_protocol_s_error_body() {
        let none = HeaderMap::new();
        let json = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#;
        assert_eq!(
            response_error(400, &none, json),
            Some(ResponseError {
                code: "ResourceNotFoundException".into(),
                message: Some("Requested resource not found".into()),
            })
        );
        let xml = b"<?xml version=\"1.0\"?><ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>The user with name x cannot be found &amp; so on.</Message></Error></ErrorResponse>";
        let error = response_error(404, &none, xml).expect("error");
        assert_eq!(error.code, "NoSuchEntity");
        assert_eq!(
            error.message.as_deref(),
            Some("The user with name x cannot be found & so on.")
        );
        assert_eq!(response_error(404, &none, b"").expect("e").code, "NotFound");
        assert_eq!(response_error(200, &none, xml), None);
    }
}

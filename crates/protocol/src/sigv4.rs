//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`, Authorization-header form): verification
//! for the server and signing for our own CLI.
//!
//! Written here because the server side of SigV4 is small and no maintained crate offers
//! it with the error taxonomy AWS clients expect. The canonical form follows the AWS
//! documentation and botocore's signer for non-S3 services:
//!
//! - the URI path is normalised (dot segments removed, empty segments collapsed) and then
//!   percent-encoded *as received*, so an already-encoded `%20` becomes `%2520` — the
//!   "encode twice" rule of non-S3 services;
//! - the query string is decoded and re-encoded per RFC 3986, then sorted by key and value;
//! - signed headers are lower-cased, values trimmed with inner whitespace runs collapsed,
//!   and repeated headers joined with `,` in arrival order;
//! - the payload hash is always the SHA-256 of the body we received. A client-supplied
//!   `x-amz-content-sha256` must agree with it (so `UNSIGNED-PAYLOAD` is refused: it is an
//!   S3-only convention).
//!
//! Presigned URLs (query-string authentication), SigV4a and session tokens are out of
//! scope: the CLI and SDKs send long-term keys in the Authorization header.

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::AwsError;
use crate::time::{format_amz_date, parse_amz_date};

/// The only algorithm accepted and produced.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far the signing time may be from the server clock, either way (AWS uses 15 minutes
/// for non-S3 services: "… (20140325T145251Z - 15 min.)").
pub const MAX_CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(15);
/// The credential scope terminator.
pub const SCOPE_TERMINATOR: &str = "aws4_request";

const AMZ_DATE_HEADER: &str = "x-amz-date";
const CONTENT_SHA256_HEADER: &str = "x-amz-content-sha256";

type HmacSha256 = Hmac<Sha256>;

/// The parts of an HTTP request that a signature covers.
///
/// Path and query are the strings *as they arrived on the wire* (still percent-encoded);
/// taking strings rather than an `http::Uri` also lets tests feed the AWS test suite's raw
/// request lines, which contain spaces and UTF-8.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The query string without the leading `?`; empty when there is none.
    pub query: &'a str,
    /// The URI authority, used as the `host` value when no Host header is present
    /// (HTTP/2 carries it in `:authority`).
    pub authority: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl<'a> SignedRequest<'a> {
    /// Borrow the signed parts of an `http` request head and its fully-read body.
    pub fn from_parts(parts: &'a http::request::Parts, body: &'a [u8]) -> Self {
        SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            authority: parts.uri.authority().map(|authority| authority.as_str()),
            headers: &parts.headers,
            body,
        }
    }
}

/// Who signed a request that verified, and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    pub access_key_id: String,
    /// The region in the credential scope; the server decides whether it serves it.
    pub region: String,
    pub service: String,
    /// The `X-Amz-Date` (or `Date`) the client signed with.
    pub signed_at: Timestamp,
}

/// Why a request failed authentication, one variant per AWS error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header at all. AWS: `MissingAuthenticationTokenException`, 403.
    #[error("Request is missing Authentication Token")]
    MissingAuthenticationToken,
    /// The Authorization header is malformed or lacks parts. AWS:
    /// `IncompleteSignatureException`, 400.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The access key is unknown. AWS: `UnrecognizedClientException`, 400.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// Wrong signature, wrong scope, or a signing time too far from now. AWS:
    /// `InvalidSignatureException`, 400.
    #[error("{0}")]
    InvalidSignature(String),
}

impl AuthError {
    /// The AWS error to send for this failure.
    pub fn to_aws_error(&self) -> AwsError {
        match self {
            AuthError::MissingAuthenticationToken => AwsError::missing_authentication_token(),
            AuthError::IncompleteSignature(message) => {
                AwsError::incomplete_signature(message.clone())
            }
            AuthError::UnrecognizedClient => AwsError::unrecognized_client(),
            AuthError::InvalidSignature(message) => AwsError::invalid_signature(message.clone()),
        }
    }
}

impl From<AuthError> for AwsError {
    fn from(error: AuthError) -> Self {
        error.to_aws_error()
    }
}

/// The parsed `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug)]
struct AuthorizationHeader<'h> {
    access_key_id: &'h str,
    scope_date: &'h str,
    region: &'h str,
    service: &'h str,
    terminator: &'h str,
    signed_headers: &'h str,
    signature: &'h str,
}

/// Who signed a request and for what, read from its `Authorization` header or, for a
/// presigned URL, its `X-Amz-Credential` query parameter. Nothing is verified: this is what
/// the recording proxy reads from calls to other services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    pub access_key_id: String,
    pub region: String,
    pub service: String,
}

impl CredentialScope {
    /// From `AKID/20260101/us-east-1/s3/aws4_request`.
    pub fn from_credential(credential: &str) -> Option<CredentialScope> {
        let parts: Vec<&str> = credential.trim().split('/').collect();
        let [access_key_id, _date, region, service, _terminator] = parts[..] else {
            return None;
        };
        if access_key_id.is_empty() || service.is_empty() {
            return None;
        }
        Some(CredentialScope {
            access_key_id: access_key_id.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        })
    }

    /// From an `Authorization: AWS4-HMAC-SHA256 Credential=…` header value.
    pub fn from_authorization(header: &str) -> Option<CredentialScope> {
        let parsed = parse_authorization(header, true).ok()?;
        Some(CredentialScope {
            access_key_id: parsed.access_key_id.to_owned(),
            region: parsed.region.to_owned(),
            service: parsed.service.to_owned(),
        })
    }

    /// From a raw query string carrying `X-Amz-Credential` (a presigned URL).
    pub fn from_query(query: &str) -> Option<CredentialScope> {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| *name == "X-Amz-Credential")
            .and_then(|(_, value)| {
                let decoded = percent_decode(value);
                CredentialScope::from_credential(std::str::from_utf8(&decoded).ok()?)
            })
    }
}

/// Verifies a SigV4-signed request.
///
/// `secret_for` maps an access key id to its secret; `None` means the key is unknown.
/// `now` is the server clock, passed in so tests are deterministic.
pub fn verify(
    request: &SignedRequest<'_>,
    now: Timestamp,
    expected_service: &str,
    secret_for: impl Fn(&str) -> Option<String>,
) -> Result<VerifiedRequest, AuthError> {
    let mut authorization_values = request.headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(authorization_value) = authorization_values.next() else {
        return Err(AuthError::MissingAuthenticationToken);
    };
    if authorization_values.next().is_some() {
        return Err(AuthError::IncompleteSignature(
            "Found more than one Authorization header.".to_owned(),
        ));
    }
    let authorization_text = authorization_value.to_str().map_err(|_| {
        AuthError::IncompleteSignature("Authorization header is not valid ASCII.".to_owned())
    })?;
    let date_header = signing_date_header(request.headers);
    let authorization = parse_authorization(authorization_text, date_header.is_some())?;
    check_scope(&authorization, expected_service)?;

    let signed_header_names: Vec<&str> = authorization.signed_headers.split(';').collect();
    if signed_header_names
        .iter()
        .any(|name| name.is_empty() || name.bytes().any(|byte| byte.is_ascii_uppercase()))
    {
        return Err(AuthError::IncompleteSignature(format!(
            "SignedHeaders must be a ';'-separated list of lower-case header names, got '{}'.",
            authorization.signed_headers
        )));
    }
    if !signed_header_names.contains(&"host") {
        return Err(AuthError::IncompleteSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ));
    }

    // parse_authorization already refused a request with neither date header.
    let (date_header_name, date_text) = date_header.unwrap_or((AMZ_DATE_HEADER, ""));
    let signed_at = parse_signing_date(date_header_name, date_text)?;
    let amz_date = format_amz_date(signed_at);
    if !signed_header_names.contains(&date_header_name) {
        return Err(AuthError::IncompleteSignature(format!(
            "'{date_header_name}' must be a 'SignedHeader' in the AWS Authorization."
        )));
    }
    if authorization.scope_date != &amz_date[..8] {
        return Err(AuthError::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            authorization.scope_date,
            &amz_date[..8],
            amz_date
        )));
    }

    let Some(secret) = secret_for(authorization.access_key_id) else {
        return Err(AuthError::UnrecognizedClient);
    };
    check_clock_skew(signed_at, now)?;

    let payload_hash = hex::encode(Sha256::digest(request.body));
    if let Some(claimed_hash) = request.headers.get(CONTENT_SHA256_HEADER)
        && claimed_hash.as_bytes() != payload_hash.as_bytes()
    {
        return Err(AuthError::InvalidSignature(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
                .to_owned(),
        ));
    }

    let canonical_headers =
        canonical_headers_from_map(request.headers, &signed_header_names, request.authority);
    let canonical_request = build_canonical_request(
        request.method,
        request.path,
        request.query,
        &canonical_headers,
        authorization.signed_headers,
        &payload_hash,
    );
    let scope = format!(
        "{}/{}/{}/{}",
        authorization.scope_date, authorization.region, authorization.service, SCOPE_TERMINATOR
    );
    let string_to_sign = build_string_to_sign(&amz_date, &scope, &canonical_request);
    let expected_signature = compute_signature(
        &secret,
        authorization.scope_date,
        authorization.region,
        authorization.service,
        &string_to_sign,
    );
    // Constant time, so the comparison leaks nothing about how much of a guess matched.
    let signatures_match: bool = expected_signature
        .as_bytes()
        .ct_eq(authorization.signature.as_bytes())
        .into();
    if !signatures_match {
        // AWS JSON services include both strings in the message; they hold nothing secret
        // and are the only practical way for a client author to debug a mismatch.
        return Err(AuthError::InvalidSignature(format!(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\n\
             The Canonical String for this request should have been\n'{}'\n\n\
             The String-to-Sign should have been\n'{}'\n",
            String::from_utf8_lossy(&canonical_request),
            string_to_sign
        )));
    }

    Ok(VerifiedRequest {
        access_key_id: authorization.access_key_id.to_owned(),
        region: authorization.region.to_owned(),
        service: authorization.service.to_owned(),
        signed_at,
    })
}

/// The header carrying the signing time: `X-Amz-Date`, else `Date` (AWS accepts either).
fn signing_date_header(headers: &HeaderMap) -> Option<(&'static str, &str)> {
    if let Some(value) = headers.get(AMZ_DATE_HEADER) {
        return Some((AMZ_DATE_HEADER, value.to_str().unwrap_or("")));
    }
    headers
        .get(http::header::DATE)
        .map(|value| ("date", value.to_str().unwrap_or("")))
}

fn parse_signing_date(header_name: &str, text: &str) -> Result<Timestamp, AuthError> {
    let parsed = if header_name == AMZ_DATE_HEADER {
        parse_amz_date(text)
    } else {
        // The HTTP Date header is an IMF-fixdate (RFC 7231), which jiff's RFC 2822 parser
        // accepts.
        jiff::fmt::rfc2822::parse(text)
            .ok()
            .map(|zoned| zoned.timestamp())
    };
    parsed.ok_or_else(|| {
        AuthError::IncompleteSignature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{text}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ))
    })
}

fn parse_authorization(
    header: &str,
    has_date_header: bool,
) -> Result<AuthorizationHeader<'_>, AuthError> {
    let mut problems: Vec<String> = Vec::new();
    let parameters = match header.trim_start().strip_prefix(ALGORITHM) {
        Some(rest) if rest.starts_with(' ') => rest,
        _ => {
            problems.push(format!(
                "Authorization header requires the '{ALGORITHM}' algorithm."
            ));
            ""
        }
    };

    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for component in parameters.split(',') {
        let component = component.trim();
        if component.is_empty() {
            continue;
        }
        match component.split_once('=') {
            Some(("Credential", value)) => credential = Some(value.trim()),
            Some(("SignedHeaders", value)) => signed_headers = Some(value.trim()),
            Some(("Signature", value)) => signature = Some(value.trim()),
            _ => problems.push(format!(
                "Authorization header requires each component to be of the form key=value, got '{component}'."
            )),
        }
    }
    if credential.is_none() {
        problems.push("Authorization header requires 'Credential' parameter.".to_owned());
    }
    if signature.is_none() {
        problems.push("Authorization header requires 'Signature' parameter.".to_owned());
    }
    if signed_headers.is_none() {
        problems.push("Authorization header requires 'SignedHeaders' parameter.".to_owned());
    }
    if !has_date_header {
        problems.push(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .to_owned(),
        );
    }
    let (Some(credential), Some(signed_headers), Some(signature), true) =
        (credential, signed_headers, signature, problems.is_empty())
    else {
        problems.push(format!("Authorization={header}"));
        return Err(AuthError::IncompleteSignature(problems.join(" ")));
    };

    let credential_parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, scope_date, region, service, terminator] = credential_parts[..] else {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    };
    if access_key_id.is_empty() {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential must name an access key id, got '{credential}'"
        )));
    }
    Ok(AuthorizationHeader {
        access_key_id,
        scope_date,
        region,
        service,
        terminator,
        signed_headers,
        signature,
    })
}

fn check_scope(
    authorization: &AuthorizationHeader<'_>,
    expected_service: &str,
) -> Result<(), AuthError> {
    if authorization.terminator != SCOPE_TERMINATOR {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped with a valid terminator: '{SCOPE_TERMINATOR}', not '{}'.",
            authorization.terminator
        )));
    }
    if authorization.service != expected_service {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped to correct service: '{expected_service}'. "
        )));
    }
    if authorization.region.is_empty() {
        return Err(AuthError::InvalidSignature(
            "Credential should be scoped to a valid region, not ''. ".to_owned(),
        ));
    }
    if authorization.scope_date.len() != 8
        || !authorization
            .scope_date
            .bytes()
            .all(|byte| byte.is_ascii_digit())
    {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential date must be in the form YYYYMMDD, got '{}'.",
            authorization.scope_date
        )));
    }
    Ok(())
}

fn check_clock_skew(signed_at: Timestamp, now: Timestamp) -> Result<(), AuthError> {
    let earliest = now.checked_sub(MAX_CLOCK_SKEW).unwrap_or(Timestamp::MIN);
    let latest = now.checked_add(MAX_CLOCK_SKEW).unwrap_or(Timestamp::MAX);
    if signed_at < earliest {
        return Err(AuthError::InvalidSignature(format!(
            "Signature expired: {} is now earlier than {} ({} - 15 min.)",
            format_amz_date(signed_at),
            format_amz_date(earliest),
            format_amz_date(now)
        )));
    }
    if signed_at > latest {
        return Err(AuthError::InvalidSignature(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            format_amz_date(signed_at),
            format_amz_date(latest),
            format_amz_date(now)
        )));
    }
    Ok(())
}

/// What the CLI needs to sign a request.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub now: Timestamp,
    /// Also send (and sign) `X-Amz-Content-Sha256`; botocore does not for CloudTrail.
    pub include_content_sha256: bool,
}

/// Signs a request and returns the headers to add to it: `Authorization`, `X-Amz-Date`
/// and, when asked, `X-Amz-Content-Sha256`.
///
/// `headers` are every header the request will carry and that should be signed; it must
/// include `host`. Any `Authorization`, `X-Amz-Date` or `X-Amz-Content-Sha256` in it is
/// ignored, because this function produces them. `path_and_query` is the request target as
/// it will go on the wire (percent-encoded), e.g. `/PutAuditEvents?channelArn=arn%3A…`.
pub fn sign(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    params: &SigningParams<'_>,
) -> Vec<(String, String)> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let amz_date = format_amz_date(params.now);
    let scope_date = &amz_date[..8];
    let payload_hash = hex::encode(Sha256::digest(body));

    let mut to_sign: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.as_bytes().to_vec()))
        .filter(|(name, _)| {
            name != "authorization" && name != AMZ_DATE_HEADER && name != CONTENT_SHA256_HEADER
        })
        .collect();
    to_sign.push((AMZ_DATE_HEADER.to_owned(), amz_date.clone().into_bytes()));
    if params.include_content_sha256 {
        to_sign.push((
            CONTENT_SHA256_HEADER.to_owned(),
            payload_hash.clone().into_bytes(),
        ));
    }
    // A stable sort keeps repeated headers in the order given, which is the order the
    // server will see and join them in.
    to_sign.sort_by(|(left, _), (right, _)| left.cmp(right));

    let mut signed_names: Vec<&str> = to_sign.iter().map(|(name, _)| name.as_str()).collect();
    signed_names.dedup();
    let signed_headers = signed_names.join(";");
    let canonical_headers = canonical_headers_from_pairs(&to_sign);
    let canonical_request = build_canonical_request(
        method,
        path,
        query,
        &canonical_headers,
        &signed_headers,
        &payload_hash,
    );
    let scope = format!(
        "{scope_date}/{}/{}/{SCOPE_TERMINATOR}",
        params.region, params.service
    );
    let string_to_sign = build_string_to_sign(&amz_date, &scope, &canonical_request);
    let signature = compute_signature(
        params.secret_access_key,
        scope_date,
        params.region,
        params.service,
        &string_to_sign,
    );

    let mut added = vec![
        (
            "Authorization".to_owned(),
            format!(
                "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                params.access_key_id
            ),
        ),
        ("X-Amz-Date".to_owned(), amz_date),
    ];
    if params.include_content_sha256 {
        added.push(("X-Amz-Content-Sha256".to_owned(), payload_hash));
    }
    added
}

/// The canonical request, exposed for tests against the AWS suite's `.creq` files.
pub fn canonical_request_for_signing(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut pairs: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.as_bytes().to_vec()))
        .collect();
    pairs.sort_by(|(left, _), (right, _)| left.cmp(right));
    let mut names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
    names.dedup();
    let canonical = build_canonical_request(
        method,
        path,
        query,
        &canonical_headers_from_pairs(&pairs),
        &names.join(";"),
        &hex::encode(Sha256::digest(body)),
    );
    String::from_utf8_lossy(&canonical).into_owned()
}

/// Canonical header lines (`name:value\n` each) for the signed names, from a request's
/// header map. Names absent from the request contribute an empty value, which makes the
/// signature fail rather than silently signing less.
fn canonical_headers_from_map(
    headers: &HeaderMap,
    signed_names: &[&str],
    authority: Option<&str>,
) -> Vec<u8> {
    let mut block = Vec::new();
    for name in signed_names {
        block.extend_from_slice(name.as_bytes());
        block.push(b':');
        let mut values = headers.get_all(*name).iter().peekable();
        if values.peek().is_none()
            && *name == "host"
            && let Some(authority) = authority
        {
            block.extend_from_slice(authority.as_bytes());
        }
        let mut first = true;
        for value in values {
            if !first {
                block.push(b',');
            }
            first = false;
            append_canonical_value(&mut block, value.as_bytes());
        }
        block.push(b'\n');
    }
    block
}

/// Canonical header lines from name-sorted `(lowercase name, value)` pairs.
fn canonical_headers_from_pairs(sorted_pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut block = Vec::new();
    let mut previous: Option<&str> = None;
    for (name, value) in sorted_pairs {
        if previous == Some(name.as_str()) {
            block.pop(); // the newline of the previous line of the same header
            block.push(b',');
        } else {
            block.extend_from_slice(name.as_bytes());
            block.push(b':');
        }
        append_canonical_value(&mut block, value);
        block.push(b'\n');
        previous = Some(name);
    }
    block
}

/// Trims a header value and collapses each run of inner whitespace to one space.
fn append_canonical_value(block: &mut Vec<u8>, value: &[u8]) {
    let mut pending_space = false;
    let mut wrote_any = false;
    for &byte in value {
        if byte.is_ascii_whitespace() {
            pending_space = wrote_any;
        } else {
            if pending_space {
                block.push(b' ');
                pending_space = false;
            }
            block.push(byte);
            wrote_any = true;
        }
    }
}

fn build_canonical_request(
    method: &str,
    path: &str,
    query: &str,
    canonical_headers: &[u8],
    signed_headers: &str,
    payload_hash: &str,
) -> Vec<u8> {
    let mut request = Vec::with_capacity(256 + canonical_headers.len());
    request.extend_from_slice(method.as_bytes());
    request.push(b'\n');
    request.extend_from_slice(canonical_uri(path).as_bytes());
    request.push(b'\n');
    request.extend_from_slice(canonical_query_string(query).as_bytes());
    request.push(b'\n');
    request.extend_from_slice(canonical_headers);
    request.push(b'\n');
    request.extend_from_slice(signed_headers.as_bytes());
    request.push(b'\n');
    request.extend_from_slice(payload_hash.as_bytes());
    request
}

fn build_string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request))
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so construction cannot fail; the empty fallback only
    // exists to keep this function free of a panic path, and would merely yield a
    // signature that never matches.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn compute_signature(
    secret: &str,
    scope_date: &str,
    region: &str,
    service: &str,
    string_to_sign: &str,
) -> String {
    let date_key = hmac_sha256(format!("AWS4{secret}").as_bytes(), scope_date.as_bytes());
    let region_key = hmac_sha256(&date_key, region.as_bytes());
    let service_key = hmac_sha256(&region_key, service.as_bytes());
    let signing_key = hmac_sha256(&service_key, SCOPE_TERMINATOR.as_bytes());
    hex::encode(hmac_sha256(&signing_key, string_to_sign.as_bytes()))
}

/// Normalises a path as botocore does for non-S3 services (drop `.` and empty segments,
/// resolve `..`, keep a trailing slash) and percent-encodes every byte outside the RFC 3986
/// unreserved set, except `/`.
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalised = String::with_capacity(path.len() + 1);
    if path.starts_with('/') {
        normalised.push('/');
    }
    normalised.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalised.push('/');
    }
    if normalised.is_empty() {
        normalised.push('/');
    }
    uri_encode(normalised.as_bytes(), true)
}

/// Decodes each `key=value` pair, re-encodes it per RFC 3986, and sorts by key then value.
pub fn canonical_query_string(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(key), false),
                uri_encode(&percent_decode(value), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes all bytes except the RFC 3986 unreserved set (and `/` when asked), with
/// upper-case hex, as SigV4 requires.
pub fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(bytes.len() * 3);
    for &byte in bytes {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(char::from(HEX[usize::from(byte >> 4)]));
            encoded.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    encoded
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays literal. `+` is left
/// alone: SigV4 clients encode spaces as `%20`.
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(index + 1).and_then(|byte| hex_value(*byte)),
                bytes.get(index + 2).and_then(|byte| hex_value(*byte)),
            )
        {
            decoded.push(high << 4 | low);
            index += 3;
            continue;
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    decoded
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_like_botocore() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("//example//"), "/example/");
        assert_eq!(canonical_uri("/example/.."), "/");
        assert_eq!(canonical_uri("/example1/example2/../.."), "/");
        assert_eq!(canonical_uri("/./"), "/");
        assert_eq!(canonical_uri("/example space/"), "/example%20space/");
        // Already-encoded input is encoded again: the non-S3 double-encoding rule.
        assert_eq!(canonical_uri("/a%20b"), "/a%2520b");
    }

    #[test]
    fn queries_are_decoded_reencoded_and_sorted() {
        assert_eq!(canonical_query_string(""), "");
        assert_eq!(canonical_query_string("b=2&a=1"), "a=1&b=2");
        assert_eq!(canonical_query_string("a=2&a=1"), "a=1&a=2");
        assert_eq!(canonical_query_string("flag"), "flag=");
        assert_eq!(
            canonical_query_string("channelArn=arn:aws:cloudtrail:us-east-1:1:channel/x"),
            "channelArn=arn%3Aaws%3Acloudtrail%3Aus-east-1%3A1%3Achannel%2Fx"
        );
        assert_eq!(
            canonical_query_string("channelArn=arn%3Aaws%3Acloudtrail"),
            "channelArn=arn%3Aaws%3Acloudtrail"
        );
        assert_eq!(canonical_query_string("k=%zz"), "k=%25zz");
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let mut block = Vec::new();
        append_canonical_value(&mut block, b"  \"a   b \t c\"  ");
        assert_eq!(block, b"\"a b c\"");
    }

    #[test]
    fn authorization_needs_all_three_parts() {
        let Err(AuthError::IncompleteSignature(message)) =
            parse_authorization("AWS4-HMAC-SHA256 Credential=a/b/c/d/e", true)
        else {
            panic!("a header without Signature must be incomplete");
        };
        assert!(message.contains("'Signature'"), "{message}");
        assert!(message.contains("'SignedHeaders'"), "{message}");
    }

    #[test]
    fn http_date_header_is_accepted_as_signing_time() {
        let parsed = parse_signing_date("date", "Sun, 30 Aug 2015 12:36:00 GMT");
        assert_eq!(
            parsed.ok().map(format_amz_date).as_deref(),
            Some("20150830T123600Z")
        );
        assert!(matches!(
            parse_signing_date(AMZ_DATE_HEADER, "2015-08-30"),
            Err(AuthError::IncompleteSignature(_))
        ));
    }

    #[test]
    fn skew_messages_match_aws_wording() {
        let now = Timestamp::from_second(1_440_939_600).unwrap_or(Timestamp::UNIX_EPOCH);
        let stale = now - SignedDuration::from_mins(16);
        let Err(AuthError::InvalidSignature(message)) = check_clock_skew(stale, now) else {
            panic!("16 minutes old must be expired");
        };
        assert_eq!(
            message,
            "Signature expired: 20150830T124400Z is now earlier than 20150830T124500Z (20150830T130000Z - 15 min.)"
        );
        assert!(check_clock_skew(now - SignedDuration::from_mins(15), now).is_ok());
        assert!(check_clock_skew(now + SignedDuration::from_mins(15), now).is_ok());
        assert!(check_clock_skew(now + SignedDuration::from_mins(16), now).is_err());
    }
}

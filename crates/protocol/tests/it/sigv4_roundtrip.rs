//! Sign-then-verify round trips, and the error taxonomy of verification.

use anyhow::{Context, Result, ensure};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use jiff::{SignedDuration, Timestamp};
use opentrail_protocol::error::codes;
use opentrail_protocol::json11;
use opentrail_protocol::sigv4::{
    AuthError, SignedRequest, SigningParams, sign, uri_encode, verify,
};
use proptest::prelude::*;

const KEY_ID: &str = "AKIAOPENTRAILTEST01";
const SECRET: &str = "opentrail-test-secret/with+symbols=";
const HOST: &str = "localhost:7480";

fn now() -> Timestamp {
    Timestamp::from_second(1_704_164_645).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn params(now: Timestamp) -> SigningParams<'static> {
    SigningParams {
        access_key_id: KEY_ID,
        secret_access_key: SECRET,
        region: "us-east-1",
        service: json11::SIGNING_NAME,
        now,
        include_content_sha256: false,
    }
}

fn secret_for(access_key_id: &str) -> Option<String> {
    (access_key_id == KEY_ID).then(|| SECRET.to_owned())
}

/// Builds a LookupEvents-style request signed like botocore signs it.
fn signed_lookup_request(body: &[u8], signing_time: Timestamp) -> Result<Request<Vec<u8>>> {
    let target = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";
    let headers = [
        ("Host", HOST),
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Target", target),
    ];
    let added = sign("POST", "/", &headers, body, &params(signing_time));
    let mut builder = Request::builder().method("POST").uri("/");
    for (name, value) in headers.iter().copied() {
        builder = builder.header(name, value);
    }
    for (name, value) in &added {
        builder = builder.header(name.as_str(), value.as_str());
    }
    Ok(builder.body(body.to_vec())?)
}

fn verify_request(request: &Request<Vec<u8>>, at: Timestamp) -> Result<(), AuthError> {
    let (parts, body) = request.clone().into_parts();
    let signed = SignedRequest::from_parts(&parts, &body);
    verify(&signed, at, json11::SIGNING_NAME, secret_for).map(|verified| {
        assert_eq!(verified.access_key_id, KEY_ID);
        assert_eq!(verified.region, "us-east-1");
        assert_eq!(verified.signed_at, now());
    })
}

#[test]
fn botocore_style_request_verifies_from_http_parts() -> Result<()> {
    let request = signed_lookup_request(br#"{"MaxResults":5}"#, now())?;
    verify_request(&request, now())?;
    // Within the skew window on both sides.
    verify_request(&request, now() + SignedDuration::from_mins(14))?;
    verify_request(&request, now() - SignedDuration::from_mins(14))?;
    Ok(())
}

#[test]
fn missing_authorization_is_missing_token_403() -> Result<()> {
    let mut request = signed_lookup_request(b"{}", now())?;
    request.headers_mut().remove("authorization");
    let error = verify_request(&request, now()).err().context("must fail")?;
    ensure!(error == AuthError::MissingAuthenticationToken);
    let aws = error.to_aws_error();
    ensure!(aws.code == codes::MISSING_AUTHENTICATION_TOKEN && aws.status == 403);
    Ok(())
}

#[test]
fn malformed_authorization_is_incomplete_400() -> Result<()> {
    for header in [
        "Bearer abc",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=AKID/20240102/us-east-1/cloudtrail/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKID/20240102/cloudtrail/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/20240102/us-east-1/cloudtrail/aws4_request, SignedHeaders=x-amz-date, Signature=00",
    ] {
        let mut request = signed_lookup_request(b"{}", now())?;
        request
            .headers_mut()
            .insert("authorization", HeaderValue::from_str(header)?);
        let error = verify_request(&request, now()).err().context("must fail")?;
        ensure!(
            matches!(error, AuthError::IncompleteSignature(_)),
            "{header}: {error:?}"
        );
        let aws = error.to_aws_error();
        ensure!(aws.code == codes::INCOMPLETE_SIGNATURE && aws.status == 400);
    }
    Ok(())
}

#[test]
fn missing_date_is_incomplete() -> Result<()> {
    let mut request = signed_lookup_request(b"{}", now())?;
    request.headers_mut().remove("x-amz-date");
    let error = verify_request(&request, now()).err().context("must fail")?;
    ensure!(
        matches!(&error, AuthError::IncompleteSignature(message) if message.contains("'X-Amz-Date'")),
        "{error:?}"
    );
    Ok(())
}

#[test]
fn unknown_key_is_unrecognized_client_400() -> Result<()> {
    let request = signed_lookup_request(b"{}", now())?;
    let (parts, body) = request.into_parts();
    let error = verify(
        &SignedRequest::from_parts(&parts, &body),
        now(),
        json11::SIGNING_NAME,
        |_| None,
    )
    .err()
    .context("must fail")?;
    let aws = error.to_aws_error();
    ensure!(aws.code == codes::UNRECOGNIZED_CLIENT && aws.status == 400);
    ensure!(aws.message == "The security token included in the request is invalid.");
    Ok(())
}

#[test]
fn stale_or_future_signatures_are_invalid_with_aws_wording() -> Result<()> {
    let request = signed_lookup_request(b"{}", now())?;
    let later = now() + SignedDuration::from_mins(20);
    let Err(AuthError::InvalidSignature(message)) = verify_request(&request, later) else {
        anyhow::bail!("a 20-minute-old signature must be refused");
    };
    ensure!(
        message
            == "Signature expired: 20240102T030405Z is now earlier than 20240102T030905Z (20240102T032405Z - 15 min.)",
        "{message}"
    );
    let earlier = now() - SignedDuration::from_mins(20);
    let Err(AuthError::InvalidSignature(message)) = verify_request(&request, earlier) else {
        anyhow::bail!("a signature from 20 minutes in the future must be refused");
    };
    ensure!(
        message.starts_with("Signature not yet current: 20240102T030405Z"),
        "{message}"
    );
    Ok(())
}

#[test]
fn wrong_secret_is_invalid_signature_with_canonical_request() -> Result<()> {
    let request = signed_lookup_request(b"{}", now())?;
    let (parts, body) = request.into_parts();
    let error = verify(
        &SignedRequest::from_parts(&parts, &body),
        now(),
        json11::SIGNING_NAME,
        |_| Some("not-the-secret".to_owned()),
    )
    .err()
    .context("must fail")?;
    let aws = error.to_aws_error();
    ensure!(aws.code == codes::INVALID_SIGNATURE && aws.status == 400);
    ensure!(
        aws.message
            .contains("The Canonical String for this request should have been")
    );
    ensure!(
        aws.message
            .contains("content-type;host;x-amz-date;x-amz-target")
    );
    Ok(())
}

#[test]
fn content_sha256_header_must_match_the_body() -> Result<()> {
    let body = br#"{"auditEvents":[]}"#;
    let mut signing = params(now());
    signing.service = "cloudtrail-data";
    signing.include_content_sha256 = true;
    let headers = [("host", HOST), ("content-type", "application/json")];
    let added = sign(
        "POST",
        "/PutAuditEvents?channelArn=abc",
        &headers,
        body,
        &signing,
    );
    ensure!(added.iter().any(|(name, _)| name == "X-Amz-Content-Sha256"));

    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
    }
    for (name, value) in &added {
        map.append(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
    }
    let request = SignedRequest {
        method: "POST",
        path: "/PutAuditEvents",
        query: "channelArn=abc",
        authority: None,
        headers: &map,
        body,
    };
    verify(&request, now(), "cloudtrail-data", secret_for)?;

    let other_body = br#"{"auditEvents":[1]}"#;
    let tampered = SignedRequest {
        body: other_body,
        ..request
    };
    let Err(AuthError::InvalidSignature(message)) =
        verify(&tampered, now(), "cloudtrail-data", secret_for)
    else {
        anyhow::bail!("a body that does not match x-amz-content-sha256 must be refused");
    };
    ensure!(message.contains("x-amz-content-sha256"), "{message}");
    Ok(())
}

#[test]
fn host_may_come_from_the_authority() -> Result<()> {
    let request = signed_lookup_request(b"{}", now())?;
    let (mut parts, body) = request.into_parts();
    parts.headers.remove("host");
    parts.uri = format!("http://{HOST}/").parse()?;
    verify(
        &SignedRequest::from_parts(&parts, &body),
        now(),
        json11::SIGNING_NAME,
        secret_for,
    )?;
    Ok(())
}

/// Path segments and query parts, drawn from characters that need encoding as well as
/// ones that don't (including `%`, `+`, and non-ASCII).
const SEGMENT: &str = "[a-zA-Z0-9._~ %:+=!$ሴé-]{1,12}";

fn wire_path(segments: &[String]) -> String {
    let mut path = String::from("/");
    path.push_str(
        &segments
            .iter()
            .map(|segment| uri_encode(segment.as_bytes(), false))
            .collect::<Vec<_>>()
            .join("/"),
    );
    path
}

fn wire_query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| {
            format!(
                "{}={}",
                uri_encode(key.as_bytes(), false),
                uri_encode(value.as_bytes(), false)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sign_then_verify_round_trips(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        segments in proptest::collection::vec(SEGMENT, 0..4),
        pairs in proptest::collection::vec((SEGMENT, SEGMENT), 0..4),
        include_content_sha256 in any::<bool>(),
        skew_seconds in -900i64..=900,
        extra_header in "[ -~]{0,40}",
    ) {
        let path = wire_path(&segments);
        let query = wire_query(&pairs);
        let target = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
        let headers = [("host", HOST), ("x-opentrail-extra", extra_header.as_str())];
        let mut signing = params(now());
        signing.include_content_sha256 = include_content_sha256;
        let added = sign("POST", &target, &headers, &body, &signing);

        let mut map = HeaderMap::new();
        for (name, value) in headers.iter().copied().chain(added.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?,
                HeaderValue::from_str(value).map_err(|e| TestCaseError::fail(e.to_string()))?,
            );
        }
        let request = SignedRequest {
            method: "POST",
            path: &path,
            query: &query,
            authority: None,
            headers: &map,
            body: &body,
        };
        let at = now() + SignedDuration::from_secs(skew_seconds);
        let verified = verify(&request, at, json11::SIGNING_NAME, secret_for);
        prop_assert!(verified.is_ok(), "{verified:?}");

        // Any change to the body must break the signature (or the content hash check).
        let mut changed_body = body.clone();
        changed_body.push(b'x');
        let tampered = SignedRequest { body: &changed_body, ..request };
        let refused = matches!(
            verify(&tampered, at, json11::SIGNING_NAME, secret_for),
            Err(AuthError::InvalidSignature(_))
        );
        prop_assert!(refused);
    }
}

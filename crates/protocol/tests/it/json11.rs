//! awsJson1_1 dispatch and rendering as a client sees it.

use anyhow::{Result, ensure};
use http::{HeaderMap, HeaderValue};
use opentrail_protocol::error::{AwsError, codes};
use opentrail_protocol::json11::{self, Operation};

#[test]
fn target_header_names_the_operation() -> Result<()> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amz-target",
        HeaderValue::from_static(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.CreateTrail",
        ),
    );
    ensure!(json11::operation_from_headers(&headers)? == Operation::CreateTrail);
    ensure!(Operation::LookupEvents.name() == "LookupEvents");
    ensure!(
        Operation::LookupEvents.target()
            == "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"
    );
    Ok(())
}

#[test]
fn smithy_sdks_short_target_names_the_same_operation() -> Result<()> {
    // The AWS SDKs for JavaScript v3 and Rust send the service name without its namespace.
    for (short, long) in [
        (
            "CloudTrail_20131101.LookupEvents",
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        ),
        (
            "CloudTrail_20131101.ListPublicKeys",
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListPublicKeys",
        ),
    ] {
        let mut short_headers = HeaderMap::new();
        short_headers.insert("x-amz-target", HeaderValue::from_static(short));
        let mut long_headers = HeaderMap::new();
        long_headers.insert("x-amz-target", HeaderValue::from_static(long));
        let operation = json11::operation_from_headers(&short_headers)?;
        ensure!(operation == json11::operation_from_headers(&long_headers)?);
        ensure!(operation.short_target() == short && operation.target() == long);
    }
    Ok(())
}

#[test]
fn a_short_target_naming_no_operation_is_unknown_operation() -> Result<()> {
    for target in [
        "CloudTrail_20131101.DescribeEverything",
        "CloudTrail_20131102.LookupEvents",
        "CloudTrailDataService.PutAuditEvents",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-target", HeaderValue::from_static(target));
        let rendered = match json11::operation_from_headers(&headers) {
            Ok(operation) => anyhow::bail!("{target} accepted as {operation:?}"),
            Err(error) => error.to_json11(),
        };
        ensure!(rendered.status == 400, "{target}");
        let body: serde_json::Value = serde_json::from_slice(&rendered.body)?;
        ensure!(
            body["__type"] == codes::UNKNOWN_OPERATION,
            "{target}: {body}"
        );
        ensure!(
            body["message"] == format!("Unknown operation: '{target}'.").as_str(),
            "{target}: {body}"
        );
    }
    Ok(())
}

#[test]
fn wrong_prefix_is_unknown_operation() -> Result<()> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amz-target",
        HeaderValue::from_static("com.amazonaws.cloudtrail.v20131101.Other.LookupEvents"),
    );
    let rendered = match json11::operation_from_headers(&headers) {
        Ok(operation) => anyhow::bail!("accepted {operation:?}"),
        Err(error) => error.to_json11(),
    };
    ensure!(rendered.status == 400);
    let body: serde_json::Value = serde_json::from_slice(&rendered.body)?;
    ensure!(body["__type"] == codes::UNKNOWN_OPERATION);
    Ok(())
}

#[test]
fn errors_render_as_botocore_expects() -> Result<()> {
    let cases = [
        (AwsError::trail_not_found("Unknown trail"), 404),
        (AwsError::throttling("Rate exceeded"), 429),
        (AwsError::conflict("busy"), 409),
        (AwsError::invalid_max_results("too many"), 400),
        (AwsError::internal_failure(), 500),
        (AwsError::service_unavailable(), 503),
        (AwsError::missing_authentication_token(), 403),
    ];
    for (error, status) in cases {
        let rendered = error.to_json11();
        ensure!(rendered.status == status, "{error}");
        ensure!(rendered.header("x-amzn-errortype") == Some(error.code.as_str()));
        let body: serde_json::Value = serde_json::from_slice(&rendered.body)?;
        ensure!(body["__type"] == error.code.as_str() && body["message"] == error.message.as_str());
    }
    Ok(())
}

#[test]
fn empty_output_is_an_empty_object() {
    let rendered = json11::empty_ok_response();
    assert_eq!(rendered.status, 200);
    assert_eq!(rendered.body, b"{}");
}

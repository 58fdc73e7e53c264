//! awsJson1_1 dispatch for the CloudTrail control plane.
//!
//! Every operation is `POST /` with the operation named in `X-Amz-Target` and a JSON body
//! (`{}` when there are no parameters). The target comes in two forms, and AWS accepts
//! both, so OpenTrail does too for every operation:
//!
//! - `com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.<Operation>`, the model's
//!   `targetPrefix` (botocore: boto3 and the aws CLI);
//! - `CloudTrail_20131101.<Operation>`, the service shape's name alone (the Smithy-generated
//!   SDKs: JavaScript v3, Rust, and the others built from the Smithy model).
//!
//! Errors mirror the AWS service framework: a missing, foreign or unknown target is
//! `UnknownOperationException`, an unparsable or mistyped body is `SerializationException`,
//! both 400.

use http::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{AwsError, JSON11_CONTENT_TYPE, WireResponse, serialize_or_fallback};

/// The `X-Amz-Target` prefix (model `metadata.targetPrefix`): [`TARGET_NAMESPACE`], a dot
/// and [`SHORT_TARGET_PREFIX`]. botocore sends it.
pub const TARGET_PREFIX: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101";
/// The Smithy namespace that the full target form puts before the service name.
pub const TARGET_NAMESPACE: &str = "com.amazonaws.cloudtrail.v20131101";
/// The short `X-Amz-Target` prefix: the Smithy service shape's name, which the
/// Smithy-generated SDKs (JavaScript v3, Rust, …) send without the namespace.
pub const SHORT_TARGET_PREFIX: &str = "CloudTrail_20131101";
/// The header naming the operation.
pub const TARGET_HEADER: &str = "x-amz-target";
/// The SigV4 signing name (credential scope service) of the control plane.
pub const SIGNING_NAME: &str = "cloudtrail";

macro_rules! operations {
    ($($variant:ident),* $(,)?) => {
        /// Every operation of the CloudTrail 2013-11-01 model, named as in `X-Amz-Target`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Operation {
            $($variant,)*
        }

        impl Operation {
            /// All operations, in model (alphabetical) order.
            pub const ALL: &'static [Operation] = &[$(Operation::$variant,)*];

            /// The operation name as it appears after the target prefix.
            pub fn name(self) -> &'static str {
                match self {
                    $(Operation::$variant => stringify!($variant),)*
                }
            }

            /// The operation with this exact (case-sensitive) name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($variant) => Some(Operation::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

operations! {
    AddTags,
    CancelQuery,
    CreateChannel,
    CreateDashboard,
    CreateEventDataStore,
    CreateTrail,
    DeleteChannel,
    DeleteDashboard,
    DeleteEventDataStore,
    DeleteResourcePolicy,
    DeleteTrail,
    DeregisterOrganizationDelegatedAdmin,
    DescribeQuery,
    DescribeTrails,
    DisableFederation,
    EnableFederation,
    GenerateQuery,
    GetChannel,
    GetDashboard,
    GetEventConfiguration,
    GetEventDataStore,
    GetEventSelectors,
    GetImport,
    GetInsightSelectors,
    GetQueryResults,
    GetResourcePolicy,
    GetTrail,
    GetTrailStatus,
    ListChannels,
    ListDashboards,
    ListEventDataStores,
    ListImportFailures,
    ListImports,
    ListInsightsData,
    ListInsightsMetricData,
    ListPublicKeys,
    ListQueries,
    ListTags,
    ListTrails,
    LookupEvents,
    PutEventConfiguration,
    PutEventSelectors,
    PutInsightSelectors,
    PutResourcePolicy,
    RegisterOrganizationDelegatedAdmin,
    RemoveTags,
    RestoreEventDataStore,
    SearchSampleQueries,
    StartDashboardRefresh,
    StartEventDataStoreIngestion,
    StartImport,
    StartLogging,
    StartQuery,
    StopEventDataStoreIngestion,
    StopImport,
    StopLogging,
    UpdateChannel,
    UpdateDashboard,
    UpdateEventDataStore,
    UpdateTrail,
}

impl Operation {
    /// The full `X-Amz-Target` value for this operation, as botocore sends it.
    pub fn target(self) -> String {
        format!("{TARGET_PREFIX}.{}", self.name())
    }

    /// The short `X-Amz-Target` value for this operation, as the Smithy-generated SDKs
    /// (JavaScript v3, Rust) send it.
    pub fn short_target(self) -> String {
        format!("{SHORT_TARGET_PREFIX}.{}", self.name())
    }
}

/// The operation named by a request's `X-Amz-Target` header.
pub fn operation_from_headers(headers: &HeaderMap) -> Result<Operation, AwsError> {
    let target = headers
        .get(TARGET_HEADER)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| AwsError::unknown_operation("Missing X-Amz-Target header."))?;
    parse_target(target)
}

/// Parses an `X-Amz-Target` value in either form: `[TARGET_NAMESPACE.]SHORT_TARGET_PREFIX.Op`.
/// The prefixes must match exactly (case included); the operation must be one of the
/// model's 60 (whether the server implements it is the server's business: it answers
/// `UnknownOperationException` for those it does not).
pub fn parse_target(target: &str) -> Result<Operation, AwsError> {
    let unknown = || AwsError::unknown_operation(format!("Unknown operation: '{target}'."));
    let service_and_operation = target
        .strip_prefix(TARGET_NAMESPACE)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(target);
    let name = service_and_operation
        .strip_prefix(SHORT_TARGET_PREFIX)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or_else(unknown)?;
    Operation::from_name(name).ok_or_else(unknown)
}

/// Parses an operation's JSON body. An empty body counts as `{}` (AWS accepts it, and
/// some hand-written clients send nothing for parameterless calls).
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|error| AwsError::serialization(error.to_string()))
}

/// A 200 response carrying `value` as an awsJson1_1 body.
pub fn ok_response<T: Serialize>(value: &T) -> WireResponse {
    WireResponse {
        status: 200,
        headers: vec![("content-type", JSON11_CONTENT_TYPE.to_owned())],
        body: serialize_or_fallback(value),
    }
}

/// A 200 response with the `{}` body of operations whose output is empty (DeleteTrail,
/// StartLogging, AddTags, DeleteChannel, …).
pub fn empty_ok_response() -> WireResponse {
    WireResponse {
        status: 200,
        headers: vec![("content-type", JSON11_CONTENT_TYPE.to_owned())],
        body: b"{}".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::codes;

    #[test]
    fn known_targets_parse() -> Result<(), AwsError> {
        assert_eq!(
            parse_target("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents")?,
            Operation::LookupEvents
        );
        assert_eq!(Operation::ALL.len(), 60);
        for operation in Operation::ALL {
            assert_eq!(parse_target(&operation.target())?, *operation);
        }
        Ok(())
    }

    #[test]
    fn the_short_form_names_every_operation_too() -> Result<(), AwsError> {
        assert_eq!(
            TARGET_PREFIX,
            format!("{TARGET_NAMESPACE}.{SHORT_TARGET_PREFIX}")
        );
        assert_eq!(
            parse_target("CloudTrail_20131101.LookupEvents")?,
            Operation::LookupEvents
        );
        for operation in Operation::ALL {
            let short = operation.short_target();
            assert_eq!(short, format!("CloudTrail_20131101.{}", operation.name()));
            assert_eq!(parse_target(&short)?, *operation, "{short}");
            let mut headers = HeaderMap::new();
            headers.insert(
                TARGET_HEADER,
                http::HeaderValue::from_str(&short).map_err(|e| {
                    AwsError::unknown_operation(format!("{short} is no header value: {e}"))
                })?,
            );
            assert_eq!(operation_from_headers(&headers)?, *operation, "{short}");
        }
        Ok(())
    }

    #[test]
    fn foreign_or_unknown_targets_are_unknown_operations() {
        for target in [
            "",
            "LookupEvents",
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.",
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.lookupEvents",
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101LookupEvents",
            "DynamoDB_20120810.ListTables",
            // The short form: the service name must be exact and be followed by a dot and
            // a model operation, and the namespace, when present, must be CloudTrail's.
            "CloudTrail_20131101",
            "CloudTrail_20131101.",
            "CloudTrail_20131101.lookupEvents",
            "CloudTrail_20131101.PutAuditEvents",
            "CloudTrail_20131101LookupEvents",
            "cloudtrail_20131101.LookupEvents",
            "CloudTrail_20131101.LookupEvents ",
            " CloudTrail_20131101.LookupEvents",
            ".CloudTrail_20131101.LookupEvents",
            "com.amazonaws.cloudtrail.v20131101.",
            "com.amazonaws.cloudtrail.v20131101",
            "com.amazonaws.cloudtrail.v20131101CloudTrail_20131101.LookupEvents",
            "com.amazonaws.cloudtrail.v20131101.com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
            "com.amazonaws.cloudtraildata.v20210801.CloudTrail_20131101.LookupEvents",
            "com.amazonaws.dynamodb.v20120810.DynamoDB_20120810.ListTables",
            "CloudTrailDataService.PutAuditEvents",
        ] {
            let error = parse_target(target).err();
            assert_eq!(
                error.map(|e| (e.code, e.status)),
                Some((codes::UNKNOWN_OPERATION.to_owned(), 400)),
                "{target}"
            );
        }
        assert!(operation_from_headers(&HeaderMap::new()).is_err());
    }

    #[test]
    fn bodies_parse_or_fail_as_serialization_errors() {
        #[derive(serde::Deserialize)]
        struct Input {
            #[serde(rename = "MaxResults")]
            _max_results: Option<i64>,
        }
        assert!(parse_body::<Input>(b"").is_ok());
        assert!(parse_body::<Input>(b"{}").is_ok());
        for bad in [&b"{"[..], b"[]", b"null", br#"{"MaxResults":"ten"}"#] {
            let error = parse_body::<Input>(bad).err();
            assert_eq!(
                error.map(|e| e.code),
                Some(codes::SERIALIZATION.to_owned()),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

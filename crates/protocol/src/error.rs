//! AWS error codes, their HTTP statuses, and how errors are rendered on the wire.
//!
//! An [`AwsError`] carries the wire code *with* its `Exception` suffix where the model has
//! one (`TrailNotFoundException`), because that exact string is what botocore and the
//! Smithy SDKs match on. Rendering produces plain data ([`WireResponse`]); the server turns
//! it into its own HTTP response type, so this crate stays free of any web framework.

use serde::Serialize;

/// Error codes modelled by the CloudTrail control plane (`cloudtrail` 2013-11-01), plus the
/// generic codes every AWS JSON service can answer with. Generated from the botocore model
/// so the spellings match the wire exactly.
pub mod codes {
    pub const ACCESS_DENIED: &str = "AccessDeniedException";
    pub const ACCOUNT_HAS_ONGOING_IMPORT: &str = "AccountHasOngoingImportException";
    pub const ACCOUNT_NOT_FOUND: &str = "AccountNotFoundException";
    pub const ACCOUNT_NOT_REGISTERED: &str = "AccountNotRegisteredException";
    pub const ACCOUNT_REGISTERED: &str = "AccountRegisteredException";
    pub const CANNOT_DELEGATE_MANAGEMENT_ACCOUNT: &str = "CannotDelegateManagementAccountException";
    pub const CHANNEL_ARN_INVALID: &str = "ChannelARNInvalidException";
    pub const CHANNEL_ALREADY_EXISTS: &str = "ChannelAlreadyExistsException";
    pub const CHANNEL_EXISTS_FOR_EDS: &str = "ChannelExistsForEDSException";
    pub const CHANNEL_MAX_LIMIT_EXCEEDED: &str = "ChannelMaxLimitExceededException";
    pub const CHANNEL_NOT_FOUND: &str = "ChannelNotFoundException";
    pub const CLOUD_TRAIL_ARN_INVALID: &str = "CloudTrailARNInvalidException";
    pub const CLOUD_TRAIL_ACCESS_NOT_ENABLED: &str = "CloudTrailAccessNotEnabledException";
    pub const CLOUD_TRAIL_INVALID_CLIENT_TOKEN_ID: &str = "CloudTrailInvalidClientTokenIdException";
    pub const CLOUD_WATCH_LOGS_DELIVERY_UNAVAILABLE: &str =
        "CloudWatchLogsDeliveryUnavailableException";
    pub const CONCURRENT_MODIFICATION: &str = "ConcurrentModificationException";
    pub const CONFLICT: &str = "ConflictException";
    pub const DELEGATED_ADMIN_ACCOUNT_LIMIT_EXCEEDED: &str =
        "DelegatedAdminAccountLimitExceededException";
    pub const EVENT_DATA_STORE_ARN_INVALID: &str = "EventDataStoreARNInvalidException";
    pub const EVENT_DATA_STORE_ALREADY_EXISTS: &str = "EventDataStoreAlreadyExistsException";
    pub const EVENT_DATA_STORE_FEDERATION_ENABLED: &str =
        "EventDataStoreFederationEnabledException";
    pub const EVENT_DATA_STORE_HAS_ONGOING_IMPORT: &str = "EventDataStoreHasOngoingImportException";
    pub const EVENT_DATA_STORE_MAX_LIMIT_EXCEEDED: &str = "EventDataStoreMaxLimitExceededException";
    pub const EVENT_DATA_STORE_NOT_FOUND: &str = "EventDataStoreNotFoundException";
    pub const EVENT_DATA_STORE_TERMINATION_PROTECTED: &str =
        "EventDataStoreTerminationProtectedException";
    pub const GENERATE_RESPONSE: &str = "GenerateResponseException";
    pub const IMPORT_NOT_FOUND: &str = "ImportNotFoundException";
    pub const INACTIVE_EVENT_DATA_STORE: &str = "InactiveEventDataStoreException";
    pub const INACTIVE_QUERY: &str = "InactiveQueryException";
    pub const INSIGHT_NOT_ENABLED: &str = "InsightNotEnabledException";
    pub const INSUFFICIENT_DEPENDENCY_SERVICE_ACCESS_PERMISSION: &str =
        "InsufficientDependencyServiceAccessPermissionException";
    pub const INSUFFICIENT_ENCRYPTION_POLICY: &str = "InsufficientEncryptionPolicyException";
    pub const INSUFFICIENT_IAM_ACCESS_PERMISSION: &str = "InsufficientIAMAccessPermissionException";
    pub const INSUFFICIENT_S3_BUCKET_POLICY: &str = "InsufficientS3BucketPolicyException";
    pub const INSUFFICIENT_SNS_TOPIC_POLICY: &str = "InsufficientSnsTopicPolicyException";
    pub const INVALID_CLOUD_WATCH_LOGS_LOG_GROUP_ARN: &str =
        "InvalidCloudWatchLogsLogGroupArnException";
    pub const INVALID_CLOUD_WATCH_LOGS_ROLE_ARN: &str = "InvalidCloudWatchLogsRoleArnException";
    pub const INVALID_DATE_RANGE: &str = "InvalidDateRangeException";
    pub const INVALID_EVENT_CATEGORY: &str = "InvalidEventCategoryException";
    pub const INVALID_EVENT_DATA_STORE_CATEGORY: &str = "InvalidEventDataStoreCategoryException";
    pub const INVALID_EVENT_DATA_STORE_STATUS: &str = "InvalidEventDataStoreStatusException";
    pub const INVALID_EVENT_SELECTORS: &str = "InvalidEventSelectorsException";
    pub const INVALID_HOME_REGION: &str = "InvalidHomeRegionException";
    pub const INVALID_IMPORT_SOURCE: &str = "InvalidImportSourceException";
    pub const INVALID_INSIGHT_SELECTORS: &str = "InvalidInsightSelectorsException";
    pub const INVALID_KMS_KEY_ID: &str = "InvalidKmsKeyIdException";
    pub const INVALID_LOOKUP_ATTRIBUTES: &str = "InvalidLookupAttributesException";
    pub const INVALID_MAX_RESULTS: &str = "InvalidMaxResultsException";
    pub const INVALID_NEXT_TOKEN: &str = "InvalidNextTokenException";
    pub const INVALID_PARAMETER_COMBINATION: &str = "InvalidParameterCombinationException";
    pub const INVALID_PARAMETER: &str = "InvalidParameterException";
    pub const INVALID_QUERY_STATEMENT: &str = "InvalidQueryStatementException";
    pub const INVALID_QUERY_STATUS: &str = "InvalidQueryStatusException";
    pub const INVALID_S3_BUCKET_NAME: &str = "InvalidS3BucketNameException";
    pub const INVALID_S3_PREFIX: &str = "InvalidS3PrefixException";
    pub const INVALID_SNS_TOPIC_NAME: &str = "InvalidSnsTopicNameException";
    pub const INVALID_SOURCE: &str = "InvalidSourceException";
    pub const INVALID_TAG_PARAMETER: &str = "InvalidTagParameterException";
    pub const INVALID_TIME_RANGE: &str = "InvalidTimeRangeException";
    pub const INVALID_TOKEN: &str = "InvalidTokenException";
    pub const INVALID_TRAIL_NAME: &str = "InvalidTrailNameException";
    pub const KMS: &str = "KmsException";
    pub const KMS_KEY_DISABLED: &str = "KmsKeyDisabledException";
    pub const KMS_KEY_NOT_FOUND: &str = "KmsKeyNotFoundException";
    pub const MAX_CONCURRENT_QUERIES: &str = "MaxConcurrentQueriesException";
    pub const MAXIMUM_NUMBER_OF_TRAILS_EXCEEDED: &str = "MaximumNumberOfTrailsExceededException";
    pub const NO_MANAGEMENT_ACCOUNT_SLR_EXISTS: &str = "NoManagementAccountSLRExistsException";
    pub const NOT_ORGANIZATION_MANAGEMENT_ACCOUNT: &str =
        "NotOrganizationManagementAccountException";
    pub const NOT_ORGANIZATION_MASTER_ACCOUNT: &str = "NotOrganizationMasterAccountException";
    pub const OPERATION_NOT_PERMITTED: &str = "OperationNotPermittedException";
    pub const ORGANIZATION_NOT_IN_ALL_FEATURES_MODE: &str =
        "OrganizationNotInAllFeaturesModeException";
    pub const ORGANIZATIONS_NOT_IN_USE: &str = "OrganizationsNotInUseException";
    pub const QUERY_ID_NOT_FOUND: &str = "QueryIdNotFoundException";
    pub const RESOURCE_ARN_NOT_VALID: &str = "ResourceARNNotValidException";
    pub const RESOURCE_NOT_FOUND: &str = "ResourceNotFoundException";
    pub const RESOURCE_POLICY_NOT_FOUND: &str = "ResourcePolicyNotFoundException";
    pub const RESOURCE_POLICY_NOT_VALID: &str = "ResourcePolicyNotValidException";
    pub const RESOURCE_TYPE_NOT_SUPPORTED: &str = "ResourceTypeNotSupportedException";
    pub const S3_BUCKET_DOES_NOT_EXIST: &str = "S3BucketDoesNotExistException";
    pub const SERVICE_QUOTA_EXCEEDED: &str = "ServiceQuotaExceededException";
    pub const TAGS_LIMIT_EXCEEDED: &str = "TagsLimitExceededException";
    pub const THROTTLING: &str = "ThrottlingException";
    pub const TRAIL_ALREADY_EXISTS: &str = "TrailAlreadyExistsException";
    pub const TRAIL_NOT_FOUND: &str = "TrailNotFoundException";
    pub const TRAIL_NOT_PROVIDED: &str = "TrailNotProvidedException";
    pub const UNSUPPORTED_OPERATION: &str = "UnsupportedOperationException";

    // Generic service-framework codes: not in the CloudTrail model, but every awsJson1_1
    // service can return them, and botocore understands them by name.
    pub const MISSING_AUTHENTICATION_TOKEN: &str = "MissingAuthenticationTokenException";
    pub const INCOMPLETE_SIGNATURE: &str = "IncompleteSignatureException";
    pub const UNRECOGNIZED_CLIENT: &str = "UnrecognizedClientException";
    pub const INVALID_SIGNATURE: &str = "InvalidSignatureException";
    pub const SERIALIZATION: &str = "SerializationException";
    pub const UNKNOWN_OPERATION: &str = "UnknownOperationException";
    pub const VALIDATION: &str = "ValidationException";
    pub const INTERNAL_FAILURE: &str = "InternalFailure";
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
    pub const REQUEST_ENTITY_TOO_LARGE: &str = "RequestEntityTooLargeException";
}

/// Error codes of the `cloudtrail-data` service (PutAuditEvents). Unlike the control plane,
/// these carry no `Exception` suffix on the wire (except `UnsupportedOperationException`).
pub mod data_codes {
    pub const CHANNEL_INSUFFICIENT_PERMISSION: &str = "ChannelInsufficientPermission";
    pub const CHANNEL_NOT_FOUND: &str = "ChannelNotFound";
    pub const INVALID_CHANNEL_ARN: &str = "InvalidChannelARN";
    pub const CHANNEL_UNSUPPORTED_SCHEMA: &str = "ChannelUnsupportedSchema";
    pub const DUPLICATED_AUDIT_EVENT_ID: &str = "DuplicatedAuditEventId";
    pub const UNSUPPORTED_OPERATION: &str = "UnsupportedOperationException";
}

/// The HTTP status AWS uses for an error code.
///
/// Control-plane statuses come from the Smithy model's `httpError` traits (spec §1.2);
/// everything unlisted is a client error, 400. The authentication codes follow the AWS
/// "Common Errors" pages: a request with no credentials at all is 403, while a malformed or
/// wrong signature is 400 (`InvalidSignatureException` comes back as 400 from JSON
/// services, as SDK issue reports of "Signature expired" show).
pub fn status_for(code: &str) -> u16 {
    use codes::*;
    match code {
        ACCESS_DENIED
        | INSUFFICIENT_S3_BUCKET_POLICY
        | INSUFFICIENT_SNS_TOPIC_POLICY
        | MAXIMUM_NUMBER_OF_TRAILS_EXCEEDED
        | NO_MANAGEMENT_ACCOUNT_SLR_EXISTS
        | NOT_ORGANIZATION_MANAGEMENT_ACCOUNT
        | MISSING_AUTHENTICATION_TOKEN => 403,
        TRAIL_NOT_FOUND
        | TRAIL_NOT_PROVIDED
        | S3_BUCKET_DOES_NOT_EXIST
        | EVENT_DATA_STORE_NOT_FOUND
        | CHANNEL_NOT_FOUND
        | QUERY_ID_NOT_FOUND
        | IMPORT_NOT_FOUND
        | RESOURCE_POLICY_NOT_FOUND
        | ACCOUNT_NOT_FOUND
        | ORGANIZATIONS_NOT_IN_USE => 404,
        CONFLICT => 409,
        REQUEST_ENTITY_TOO_LARGE => 413,
        THROTTLING | MAX_CONCURRENT_QUERIES => 429,
        INTERNAL_FAILURE => 500,
        SERVICE_UNAVAILABLE => 503,
        _ => 400,
    }
}

/// An error as AWS puts it on the wire: code, human message, HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct AwsError {
    /// The wire name, e.g. `TrailNotFoundException` or (cloudtrail-data) `ChannelNotFound`.
    pub code: String,
    pub message: String,
    pub status: u16,
}

/// A response as plain data: the server copies it into its HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl WireResponse {
    /// The value of the first header with this name (case-insensitive), for tests and
    /// logging.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header_name, _)| header_name.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Content type of awsJson1_1 bodies, requests and responses alike.
pub const JSON11_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Content type of restJson1 bodies (cloudtrail-data).
pub const REST_JSON_CONTENT_TYPE: &str = "application/json";
/// Header botocore's rest-json parser reads the error code from first; JSON 1.1 clients
/// accept it too.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-ErrorType";
/// Header every answer carries its request id in (botocore copies it into
/// `ResponseMetadata.RequestId`).
pub const REQUEST_ID_HEADER: &str = "x-amzn-requestid";

#[derive(Serialize)]
struct Json11ErrorBody<'a> {
    #[serde(rename = "__type")]
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct RestJsonErrorBody<'a> {
    message: &'a str,
}

impl AwsError {
    /// An error with the status AWS uses for `code` (see [`status_for`]).
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        let code = code.into();
        let status = status_for(&code);
        AwsError {
            code,
            message: message.into(),
            status,
        }
    }

    /// An error whose status differs from the control-plane table, e.g. a cloudtrail-data
    /// error that shares a name with a control-plane one.
    pub fn with_status(code: impl Into<String>, message: impl Into<String>, status: u16) -> Self {
        AwsError {
            code: code.into(),
            message: message.into(),
            status,
        }
    }

    /// A cloudtrail-data error. All of that model's errors are plain client errors (no
    /// `httpError` trait), so they are 400 even where a control-plane code of similar name
    /// is 404.
    pub fn data(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::with_status(code, message, 400)
    }

    pub fn missing_authentication_token() -> Self {
        Self::new(
            codes::MISSING_AUTHENTICATION_TOKEN,
            "Request is missing Authentication Token",
        )
    }

    pub fn incomplete_signature(message: impl Into<String>) -> Self {
        Self::new(codes::INCOMPLETE_SIGNATURE, message)
    }

    pub fn unrecognized_client() -> Self {
        Self::new(
            codes::UNRECOGNIZED_CLIENT,
            "The security token included in the request is invalid.",
        )
    }

    pub fn invalid_signature(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_SIGNATURE, message)
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(codes::SERIALIZATION, message)
    }

    pub fn unknown_operation(message: impl Into<String>) -> Self {
        Self::new(codes::UNKNOWN_OPERATION, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(codes::VALIDATION, message)
    }

    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(codes::ACCESS_DENIED, message)
    }

    pub fn throttling(message: impl Into<String>) -> Self {
        Self::new(codes::THROTTLING, message)
    }

    pub fn internal_failure() -> Self {
        Self::new(
            codes::INTERNAL_FAILURE,
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    pub fn service_unavailable() -> Self {
        Self::new(
            codes::SERVICE_UNAVAILABLE,
            "The request has failed due to a temporary failure of the server.",
        )
    }

    pub fn request_entity_too_large(limit_bytes: usize) -> Self {
        Self::new(
            codes::REQUEST_ENTITY_TOO_LARGE,
            format!("Request body exceeds the maximum of {limit_bytes} bytes."),
        )
    }

    pub fn unsupported_operation(message: impl Into<String>) -> Self {
        Self::new(codes::UNSUPPORTED_OPERATION, message)
    }

    pub fn operation_not_permitted(message: impl Into<String>) -> Self {
        Self::new(codes::OPERATION_NOT_PERMITTED, message)
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMETER, message)
    }

    pub fn invalid_lookup_attributes(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_LOOKUP_ATTRIBUTES, message)
    }

    pub fn invalid_time_range(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_TIME_RANGE, message)
    }

    pub fn invalid_max_results(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_MAX_RESULTS, message)
    }

    pub fn invalid_next_token(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_NEXT_TOKEN, message)
    }

    pub fn invalid_event_category(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_EVENT_CATEGORY, message)
    }

    pub fn trail_not_found(message: impl Into<String>) -> Self {
        Self::new(codes::TRAIL_NOT_FOUND, message)
    }

    pub fn channel_not_found(message: impl Into<String>) -> Self {
        Self::new(codes::CHANNEL_NOT_FOUND, message)
    }

    pub fn channel_arn_invalid(message: impl Into<String>) -> Self {
        Self::new(codes::CHANNEL_ARN_INVALID, message)
    }

    pub fn channel_already_exists(message: impl Into<String>) -> Self {
        Self::new(codes::CHANNEL_ALREADY_EXISTS, message)
    }

    pub fn channel_max_limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(codes::CHANNEL_MAX_LIMIT_EXCEEDED, message)
    }

    pub fn invalid_source(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_SOURCE, message)
    }

    pub fn invalid_tag_parameter(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_TAG_PARAMETER, message)
    }

    pub fn tags_limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(codes::TAGS_LIMIT_EXCEEDED, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(codes::CONFLICT, message)
    }

    /// Render for the awsJson1_1 control plane: `{"__type": code, "message": …}` plus the
    /// `x-amzn-ErrorType` header. The bare code (no `namespace#` prefix) is used because
    /// botocore strips the prefix anyway and simpler clients compare the string directly.
    pub fn to_json11(&self) -> WireResponse {
        let body = Json11ErrorBody {
            code: &self.code,
            message: &self.message,
        };
        WireResponse {
            status: self.status,
            headers: vec![
                ("content-type", JSON11_CONTENT_TYPE.to_owned()),
                (ERROR_TYPE_HEADER, self.code.clone()),
            ],
            body: serialize_or_fallback(&body),
        }
    }

    /// Render for restJson1 (cloudtrail-data): the code travels in `x-amzn-ErrorType`, the
    /// body is `{"message": …}`.
    pub fn to_rest_json(&self) -> WireResponse {
        let body = RestJsonErrorBody {
            message: &self.message,
        };
        WireResponse {
            status: self.status,
            headers: vec![
                ("content-type", REST_JSON_CONTENT_TYPE.to_owned()),
                (ERROR_TYPE_HEADER, self.code.clone()),
            ],
            body: serialize_or_fallback(&body),
        }
    }
}

/// Serialise a body made only of strings and numbers. serde_json cannot fail on such
/// values, but rather than panic on the impossible we answer with an empty object, which
/// every AWS client parses.
pub(crate) fn serialize_or_fallback<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_smithy_table() {
        assert_eq!(status_for(codes::TRAIL_NOT_FOUND), 404);
        assert_eq!(status_for(codes::CHANNEL_NOT_FOUND), 404);
        assert_eq!(status_for(codes::CONFLICT), 409);
        assert_eq!(status_for(codes::THROTTLING), 429);
        assert_eq!(status_for(codes::MAX_CONCURRENT_QUERIES), 429);
        assert_eq!(status_for(codes::INSUFFICIENT_S3_BUCKET_POLICY), 403);
        assert_eq!(status_for(codes::INVALID_TRAIL_NAME), 400);
        assert_eq!(status_for(codes::INTERNAL_FAILURE), 500);
        assert_eq!(status_for(codes::SERVICE_UNAVAILABLE), 503);
        assert_eq!(status_for(codes::MISSING_AUTHENTICATION_TOKEN), 403);
        assert_eq!(status_for(codes::INVALID_SIGNATURE), 400);
        assert_eq!(status_for(codes::UNRECOGNIZED_CLIENT), 400);
        // The cloudtrail-data name has no suffix and is not in the control-plane table.
        assert_eq!(status_for(data_codes::CHANNEL_NOT_FOUND), 400);
    }

    #[test]
    fn json11_rendering_carries_type_and_header() -> Result<(), serde_json::Error> {
        let rendered = AwsError::trail_not_found("Unknown trail: x").to_json11();
        assert_eq!(rendered.status, 404);
        assert_eq!(
            rendered.header("X-Amzn-ErrorType"),
            Some("TrailNotFoundException")
        );
        assert_eq!(rendered.header("content-type"), Some(JSON11_CONTENT_TYPE));
        let body: serde_json::Value = serde_json::from_slice(&rendered.body)?;
        assert_eq!(
            body,
            serde_json::json!({"__type": "TrailNotFoundException", "message": "Unknown trail: x"})
        );
        Ok(())
    }

    #[test]
    fn rest_json_rendering_puts_code_in_header_only() -> Result<(), serde_json::Error> {
        let rendered =
            AwsError::data(data_codes::CHANNEL_NOT_FOUND, "no such channel").to_rest_json();
        assert_eq!(rendered.status, 400);
        assert_eq!(rendered.header(ERROR_TYPE_HEADER), Some("ChannelNotFound"));
        let body: serde_json::Value = serde_json::from_slice(&rendered.body)?;
        assert_eq!(body, serde_json::json!({"message": "no such channel"}));
        Ok(())
    }
}

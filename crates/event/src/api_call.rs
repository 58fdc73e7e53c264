//! Records that OpenTrail writes about itself: every management call to OpenTrail (and
//! console sign-in) becomes a CloudTrail record, so the audit trail audits itself.

use serde_json::json;

use crate::error::InvalidRecord;
use crate::record::{EventRecord, IngestContext};

/// One call to OpenTrail's own API, as its self-audit record describes it.
#[derive(Debug, Clone)]
pub struct ApiCall<'a> {
    /// `cloudtrail.amazonaws.com` for the CloudTrail-compatible API, like AWS does.
    pub event_source: &'a str,
    pub event_name: &'a str,
    /// `AwsApiCall`, or `AwsConsoleSignIn` for console sign-in.
    pub event_type: &'a str,
    pub event_time_ms: i64,
    pub account_id: &'a str,
    pub region: &'a str,
    pub access_key_id: &'a str,
    /// The key's role (`admin`, `read`, `ingest`): kept in the identity so a reader can
    /// tell what the caller was allowed to do.
    pub role: &'a str,
    pub source_ip_address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: &'a str,
    /// The request's parameters as JSON, secrets already removed by the caller.
    pub request_parameters: Option<serde_json::Value>,
    pub error_code: Option<&'a str>,
    pub error_message: Option<&'a str>,
    pub read_only: bool,
}

impl ApiCall<'_> {
    /// The CloudTrail record for this call. The identity is an IAM-user-shaped identity
    /// named after the access key, which is what OpenTrail authenticates.
    pub fn to_record(&self) -> Result<EventRecord, InvalidRecord> {
        let event_time = jiff::Timestamp::from_millisecond(self.event_time_ms)
            .map(|time| time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned());
        let mut record = json!({
            "eventVersion": crate::record::DEFAULT_EVENT_VERSION,
            "userIdentity": {
                "type": "IAMUser",
                "principalId": self.access_key_id,
                "arn": format!("arn:aws:iam::{}:user/opentrail/{}", self.account_id, self.access_key_id),
                "accountId": self.account_id,
                "accessKeyId": self.access_key_id,
                "userName": self.access_key_id,
                "opentrailRole": self.role,
            },
            "eventTime": event_time,
            "eventSource": self.event_source,
            "eventName": self.event_name,
            "awsRegion": self.region,
            "sourceIPAddress": self.source_ip_address,
            "userAgent": self.user_agent,
            "requestParameters": self.request_parameters,
            "responseElements": null,
            "requestID": self.request_id,
            "eventID": uuid::Uuid::new_v4().to_string(),
            "readOnly": self.read_only,
            "eventType": self.event_type,
            "managementEvent": true,
            "recipientAccountId": self.account_id,
            "eventCategory": "Management",
        });
        if let (Some(code), Some(object)) = (self.error_code, record.as_object_mut()) {
            object.insert("errorCode".into(), json!(code));
            object.insert(
                "errorMessage".into(),
                json!(self.error_message.unwrap_or(code)),
            );
        }
        let context = IngestContext {
            account_id: self.account_id.to_owned(),
            region: self.region.to_owned(),
        };
        EventRecord::from_json_object(&record.to_string(), &context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FilterField;

    #[test]
    fn a_failed_lookup_is_recorded_with_who_where_and_the_error() {
        let call = ApiCall {
            event_source: "cloudtrail.amazonaws.com",
            event_name: "LookupEvents",
            event_type: "AwsApiCall",
            event_time_ms: 1_700_000_000_000,
            account_id: "111122223333",
            region: "eu-west-1",
            access_key_id: "OTAKEXAMPLE",
            role: "read",
            source_ip_address: Some("127.0.0.1"),
            user_agent: Some("aws-cli/1.46"),
            request_id: "req-1",
            request_parameters: Some(json!({"MaxResults": 51})),
            error_code: Some("InvalidMaxResultsException"),
            error_message: Some("MaxResults must be at most 50"),
            read_only: true,
        };
        let record = call.to_record().expect("valid record");
        let values = record.attributes.index_values();
        assert!(values.contains(&(FilterField::AccessKeyId, "OTAKEXAMPLE")));
        assert!(values.contains(&(FilterField::ErrorCode, "InvalidMaxResultsException")));
        assert!(values.contains(&(FilterField::SourceIpAddress, "127.0.0.1")));
        assert_eq!(record.attributes.read_only, Some(true));
        assert_eq!(record.region, "eu-west-1");
        let stored: serde_json::Value = serde_json::from_str(&record.json).expect("json");
        assert_eq!(stored["requestParameters"]["MaxResults"], 51);
        assert_eq!(stored["eventTime"], "2023-11-14T22:13:20Z");
    }
}

//! Lookup attributes, derived as CloudTrail's event history derives them.
//!
//! # What each attribute is
//!
//! CloudTrail's eight `LookupAttribute` keys:
//!
//! | key | value |
//! |---|---|
//! | `EventId` | `eventID` |
//! | `EventName` | `eventName` |
//! | `ReadOnly` | `readOnly` as recorded (or inferred), indexed as `"true"`/`"false"` |
//! | `EventSource` | `eventSource` |
//! | `AccessKeyId` | `userIdentity.accessKeyId` |
//! | `Username` | see [Username](#username) |
//! | `ResourceType` | `type` of each `resources[]` entry |
//! | `ResourceName` | see [Resources](#resources) |
//!
//! and the extra fields of OpenTrail's native API: `errorCode`, `sourceIPAddress`,
//! `userArn` (`userIdentity.arn`), `awsRegion`, `recipientAccountId`, `eventCategory`
//! and `invokedBy` (`userIdentity.invokedBy`). Empty strings count as absent: CloudTrail
//! attribute values are at least one character long, so they could never be looked up.
//!
//! # Username
//!
//! CloudTrail documents `Username` as "the user name or role name of the requester". Event
//! history shows, per `userIdentity.type`:
//!
//! | `type` | `Username` |
//! |---|---|
//! | `IAMUser` | `userName` |
//! | `Root` | `userName` (the account alias, when one is set), else `"root"` |
//! | `AssumedRole` | the role session name: the last `/`-segment of `arn` (`…:assumed-role/Role/session`), else the part of `principalId` after `:`, else `sessionContext.sessionIssuer.userName` (the role) |
//! | `FederatedUser` | the federated user's name: the last `/`-segment of `arn` (`…:federated-user/Bob`), else the part of `principalId` after `:` |
//! | `SAMLUser`, `WebIdentityUser` | `userName` (the identity provider's subject) |
//! | `IdentityCenterUser` | `userName` when present, else `onBehalfOf.userId` (the Identity Store user id) |
//! | `AWSService` | `invokedBy` (for example `cloudtrail.amazonaws.com`) |
//! | `AWSAccount` | `userName` when present, else `accountId` (the calling account) |
//!
//! When that gives nothing, and for any other type (`Unknown`, `Directory`, a missing
//! `type`), the fallback is `userName`, then the last `/`-segment of `arn`, then
//! `invokedBy`. Records without `userIdentity` have no `Username`.
//!
//! # Resources
//!
//! Each `resources[]` entry gives one [`ResourceRef`]: `ResourceType` is its `type`;
//! `ResourceName` is its `ARN` (data events on a prefix carry `ARNPrefix` instead, which is
//! used then). The ARN is what the record carries and it is unique, so it is what
//! LookupEvents returns as `ResourceName`.
//!
//! CloudTrail's own event history shows short names there instead (`"i-1234567"`,
//! `"auto-scaling-test-group"`), so a `ResourceName` lookup also matches the short name
//! [`arn_short_name`] takes from the ARN: both values are indexed.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use crate::error::InvalidRecord;
use crate::member::{ArrayMember, Member, ObjectMember, optional_string};

/// A field a lookup can filter on: CloudTrail's eight `LookupAttribute` keys, then the
/// extra fields OpenTrail indexes.
///
/// The discriminant is stable: the store writes it into index keys on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FilterField {
    EventId = 1,
    EventName = 2,
    ReadOnly = 3,
    Username = 4,
    ResourceType = 5,
    ResourceName = 6,
    EventSource = 7,
    AccessKeyId = 8,
    ErrorCode = 9,
    SourceIpAddress = 10,
    UserArn = 11,
    AwsRegion = 12,
    RecipientAccountId = 13,
    EventCategory = 14,
    InvokedBy = 15,
}

impl FilterField {
    /// Every field, in discriminant order.
    pub const ALL: [FilterField; 15] = [
        FilterField::EventId,
        FilterField::EventName,
        FilterField::ReadOnly,
        FilterField::Username,
        FilterField::ResourceType,
        FilterField::ResourceName,
        FilterField::EventSource,
        FilterField::AccessKeyId,
        FilterField::ErrorCode,
        FilterField::SourceIpAddress,
        FilterField::UserArn,
        FilterField::AwsRegion,
        FilterField::RecipientAccountId,
        FilterField::EventCategory,
        FilterField::InvokedBy,
    ];

    /// The field's name in OpenTrail's native API: `eventId`, `eventName`, `readOnly`,
    /// `username`, `resourceType`, `resourceName`, `eventSource`, `accessKeyId`,
    /// `errorCode`, `sourceIPAddress`, `userArn`, `awsRegion`, `recipientAccountId`,
    /// `eventCategory`, `invokedBy`.
    pub fn name(self) -> &'static str {
        match self {
            FilterField::EventId => "eventId",
            FilterField::EventName => "eventName",
            FilterField::ReadOnly => "readOnly",
            FilterField::Username => "username",
            FilterField::ResourceType => "resourceType",
            FilterField::ResourceName => "resourceName",
            FilterField::EventSource => "eventSource",
            FilterField::AccessKeyId => "accessKeyId",
            FilterField::ErrorCode => "errorCode",
            FilterField::SourceIpAddress => "sourceIPAddress",
            FilterField::UserArn => "userArn",
            FilterField::AwsRegion => "awsRegion",
            FilterField::RecipientAccountId => "recipientAccountId",
            FilterField::EventCategory => "eventCategory",
            FilterField::InvokedBy => "invokedBy",
        }
    }

    /// Parses a native-API field name: any [`name`](Self::name), ASCII case-insensitively
    /// (so CloudTrail's keys such as `EventName`, and record spellings such as `eventID`
    /// or `userName`, work too), or the record path of a `userIdentity` member:
    /// `userIdentity.arn`, `userIdentity.accessKeyId`, `userIdentity.invokedBy`.
    pub fn from_name(name: &str) -> Option<FilterField> {
        if let Some(field) = FilterField::ALL
            .into_iter()
            .find(|field| field.name().eq_ignore_ascii_case(name))
        {
            return Some(field);
        }
        let identity_member = name.strip_prefix("userIdentity.")?;
        [
            ("arn", FilterField::UserArn),
            ("accessKeyId", FilterField::AccessKeyId),
            ("invokedBy", FilterField::InvokedBy),
        ]
        .into_iter()
        .find(|(member, _)| member.eq_ignore_ascii_case(identity_member))
        .map(|(_, field)| field)
    }

    /// The stable byte the store writes into index keys.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The field whose [`as_u8`](Self::as_u8) is `byte`.
    pub fn from_u8(byte: u8) -> Option<FilterField> {
        FilterField::ALL
            .into_iter()
            .find(|field| field.as_u8() == byte)
    }
}

impl fmt::Display for FilterField {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// One entry of `resources[]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceRef {
    pub resource_type: Option<String>,
    pub resource_name: Option<String>,
}

impl ResourceRef {
    /// The short name of the resource, when its name is an ARN (see [`arn_short_name`]).
    pub fn short_name(&self) -> Option<&str> {
        arn_short_name(self.resource_name.as_deref()?)
    }
}

/// Everything a lookup filters on or returns in a LookupEvents `Event`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LookupAttributes {
    pub event_id: String,
    pub event_name: String,
    pub event_source: String,
    /// `readOnly` as recorded or inferred.
    pub read_only: Option<bool>,
    pub username: Option<String>,
    pub access_key_id: Option<String>,
    pub resources: Vec<ResourceRef>,
    pub error_code: Option<String>,
    pub source_ip_address: Option<String>,
    pub user_arn: Option<String>,
    pub aws_region: String,
    pub recipient_account_id: String,
    pub event_category: String,
    pub invoked_by: Option<String>,
}

impl LookupAttributes {
    /// `readOnly` as LookupEvents returns it: the string `"true"` or `"false"`.
    pub fn read_only_text(&self) -> Option<&'static str> {
        self.read_only
            .map(|read_only| if read_only { "true" } else { "false" })
    }

    /// Every (field, value) pair the store indexes: one per present, non-empty value;
    /// several for resources (each type, each name and each name's short form). Sorted,
    /// without duplicates.
    pub fn index_values(&self) -> Vec<(FilterField, &str)> {
        let mut values = Vec::with_capacity(14 + 3 * self.resources.len());
        self.for_each_index_value(|field, value| values.push((field, value)));
        values.sort_unstable();
        values.dedup();
        values
    }

    /// The pairs of [`LookupAttributes::index_values`], unsorted and possibly repeated,
    /// without allocating: the store's write path visits them once per event.
    pub fn for_each_index_value<'a>(&'a self, mut visit: impl FnMut(FilterField, &'a str)) {
        let single_values = [
            (FilterField::EventId, Some(self.event_id.as_str())),
            (FilterField::EventName, Some(self.event_name.as_str())),
            (FilterField::ReadOnly, self.read_only_text()),
            (FilterField::Username, self.username.as_deref()),
            (FilterField::EventSource, Some(self.event_source.as_str())),
            (FilterField::AccessKeyId, self.access_key_id.as_deref()),
            (FilterField::ErrorCode, self.error_code.as_deref()),
            (
                FilterField::SourceIpAddress,
                self.source_ip_address.as_deref(),
            ),
            (FilterField::UserArn, self.user_arn.as_deref()),
            (FilterField::AwsRegion, Some(self.aws_region.as_str())),
            (
                FilterField::RecipientAccountId,
                Some(self.recipient_account_id.as_str()),
            ),
            (
                FilterField::EventCategory,
                Some(self.event_category.as_str()),
            ),
            (FilterField::InvokedBy, self.invoked_by.as_deref()),
        ];
        let resource_values = self.resources.iter().flat_map(|resource| {
            [
                (FilterField::ResourceType, resource.resource_type.as_deref()),
                (FilterField::ResourceName, resource.resource_name.as_deref()),
                (FilterField::ResourceName, resource.short_name()),
            ]
        });
        for (field, value) in single_values.into_iter().chain(resource_values) {
            if let Some(value) = value.filter(|value| !value.is_empty()) {
                visit(field, value);
            }
        }
    }
}

/// The short name of the resource an ARN names, as CloudTrail's event history shows
/// resource names; `None` when `arn` is not an ARN or the short name would be empty or
/// the whole ARN.
///
/// The resource part of `arn:partition:service:region:account:resource` is cut down to:
/// - S3 buckets and objects (`arn:aws:s3:::bucket/key`): `bucket/key`, without a trailing
///   `/`;
/// - a resource with a `/` (`role/path/name`, `instance/i-1234567`): the last segment;
/// - a resource with a `:` (`function:name`): everything after the first `:`;
/// - otherwise the resource part itself (`topic-name`).
pub fn arn_short_name(arn: &str) -> Option<&str> {
    let mut parts = arn.strip_prefix("arn:")?.splitn(5, ':');
    let _partition = parts.next()?;
    let service = parts.next()?;
    let _region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?;
    let short_name = if service == "s3" && account.is_empty() {
        resource.trim_end_matches('/')
    } else if let Some((_, last_segment)) = resource.rsplit_once('/') {
        last_segment
    } else if let Some((_, qualified_name)) = resource.split_once(':') {
        qualified_name
    } else {
        resource
    };
    (!short_name.is_empty()).then_some(short_name)
}

/// The members of `userIdentity` the derivation reads.
#[derive(Deserialize, Default)]
pub(crate) struct UserIdentityFields<'a> {
    #[serde(rename = "type", default, borrow)]
    identity_type: Member<'a>,
    #[serde(rename = "userName", default, borrow)]
    user_name: Member<'a>,
    #[serde(default, borrow)]
    arn: Member<'a>,
    #[serde(rename = "principalId", default, borrow)]
    principal_id: Member<'a>,
    #[serde(rename = "accessKeyId", default, borrow)]
    access_key_id: Member<'a>,
    #[serde(rename = "invokedBy", default, borrow)]
    invoked_by: Member<'a>,
    #[serde(rename = "accountId", default, borrow)]
    account_id: Member<'a>,
    #[serde(rename = "onBehalfOf", default, borrow)]
    on_behalf_of: ObjectMember<OnBehalfOfFields<'a>>,
    #[serde(rename = "sessionContext", default, borrow)]
    session_context: ObjectMember<SessionContextFields<'a>>,
}

#[derive(Deserialize, Default)]
pub(crate) struct OnBehalfOfFields<'a> {
    #[serde(rename = "userId", default, borrow)]
    user_id: Member<'a>,
}

#[derive(Deserialize, Default)]
pub(crate) struct SessionContextFields<'a> {
    #[serde(rename = "sessionIssuer", default, borrow)]
    session_issuer: ObjectMember<SessionIssuerFields<'a>>,
}

#[derive(Deserialize, Default)]
pub(crate) struct SessionIssuerFields<'a> {
    #[serde(rename = "userName", default, borrow)]
    user_name: Member<'a>,
}

/// The members of one `resources[]` entry the derivation reads.
#[derive(Deserialize, Default)]
pub(crate) struct ResourceFields<'a> {
    #[serde(rename = "ARN", default, borrow)]
    arn: Member<'a>,
    #[serde(rename = "ARNPrefix", default, borrow)]
    arn_prefix: Member<'a>,
    #[serde(rename = "type", default, borrow)]
    resource_type: Member<'a>,
}

/// `userIdentity` with every member type-checked; empty strings are `None`.
pub(crate) struct Identity<'a> {
    identity_type: Option<Cow<'a, str>>,
    user_name: Option<Cow<'a, str>>,
    pub(crate) arn: Option<Cow<'a, str>>,
    principal_id: Option<Cow<'a, str>>,
    pub(crate) access_key_id: Option<Cow<'a, str>>,
    pub(crate) invoked_by: Option<Cow<'a, str>>,
    account_id: Option<Cow<'a, str>>,
    on_behalf_of_user_id: Option<Cow<'a, str>>,
    session_issuer_user_name: Option<Cow<'a, str>>,
}

pub(crate) fn read_identity<'a>(
    member: &ObjectMember<UserIdentityFields<'a>>,
) -> Result<Option<Identity<'a>>, InvalidRecord> {
    let fields = match member.object() {
        Ok(Some(fields)) => fields,
        Ok(None) => return Ok(None),
        Err(found) => {
            return Err(InvalidRecord::wrong_type(
                "userIdentity",
                "an object",
                found,
            ));
        }
    };
    let on_behalf_of_user_id = match fields.on_behalf_of.object() {
        Ok(Some(on_behalf_of)) => {
            optional_string(&on_behalf_of.user_id, "userIdentity.onBehalfOf.userId")?
        }
        Ok(None) => None,
        Err(found) => {
            return Err(InvalidRecord::wrong_type(
                "userIdentity.onBehalfOf",
                "an object",
                found,
            ));
        }
    };
    let session_issuer = match fields.session_context.object() {
        Ok(Some(session_context)) => match session_context.session_issuer.object() {
            Ok(issuer) => issuer,
            Err(found) => {
                return Err(InvalidRecord::wrong_type(
                    "userIdentity.sessionContext.sessionIssuer",
                    "an object",
                    found,
                ));
            }
        },
        Ok(None) => None,
        Err(found) => {
            return Err(InvalidRecord::wrong_type(
                "userIdentity.sessionContext",
                "an object",
                found,
            ));
        }
    };
    let session_issuer_user_name = match session_issuer {
        Some(issuer) => optional_string(
            &issuer.user_name,
            "userIdentity.sessionContext.sessionIssuer.userName",
        )?,
        None => None,
    };
    Ok(Some(Identity {
        identity_type: optional_string(&fields.identity_type, "userIdentity.type")?,
        user_name: optional_string(&fields.user_name, "userIdentity.userName")?,
        arn: optional_string(&fields.arn, "userIdentity.arn")?,
        principal_id: optional_string(&fields.principal_id, "userIdentity.principalId")?,
        access_key_id: optional_string(&fields.access_key_id, "userIdentity.accessKeyId")?,
        invoked_by: optional_string(&fields.invoked_by, "userIdentity.invokedBy")?,
        account_id: optional_string(&fields.account_id, "userIdentity.accountId")?,
        on_behalf_of_user_id,
        session_issuer_user_name,
    }))
}

pub(crate) fn read_resources<'a>(
    member: &ArrayMember<ObjectMember<ResourceFields<'a>>>,
) -> Result<Vec<ResourceRef>, InvalidRecord> {
    let entries = member
        .items()
        .map_err(|found| InvalidRecord::wrong_type("resources", "an array", found))?;
    let mut resources = Vec::with_capacity(entries.len());
    for (position, entry) in entries.iter().enumerate() {
        let fields = match entry.object() {
            Ok(Some(fields)) => fields,
            Ok(None) => continue,
            Err(found) => {
                return Err(InvalidRecord::wrong_type(
                    &format!("resources[{position}]"),
                    "an object",
                    found,
                ));
            }
        };
        // The member paths are formatted only on failure: this loop runs for every resource.
        let string_member = |member: &Member<'a>, name: &str| {
            member.optional_str().map_err(|found| {
                InvalidRecord::wrong_type(
                    &format!("resources[{position}].{name}"),
                    "a string",
                    found,
                )
            })
        };
        let resource_type = string_member(&fields.resource_type, "type")?;
        let arn = string_member(&fields.arn, "ARN")?;
        let arn_prefix = string_member(&fields.arn_prefix, "ARNPrefix")?;
        let resource_name = arn.or(arn_prefix);
        if resource_type.is_none() && resource_name.is_none() {
            continue;
        }
        resources.push(ResourceRef {
            resource_type: resource_type.map(Cow::into_owned),
            resource_name: resource_name.map(Cow::into_owned),
        });
    }
    Ok(resources)
}

/// The `Username` attribute; the rules are in the [module docs](self#username).
pub(crate) fn derive_username<'i>(identity: &'i Identity<'_>) -> Option<&'i str> {
    let user_name = identity.user_name.as_deref();
    let arn_last_segment = identity
        .arn
        .as_deref()
        .and_then(|arn| arn.rsplit_once('/'))
        .map(|(_, last)| last)
        .filter(|last| !last.is_empty());
    let principal_session = identity
        .principal_id
        .as_deref()
        .and_then(|principal| principal.split_once(':'))
        .map(|(_, session)| session)
        .filter(|session| !session.is_empty());
    let by_type = match identity.identity_type.as_deref() {
        Some("IAMUser" | "SAMLUser" | "WebIdentityUser") => user_name,
        Some("Root") => user_name.or(Some("root")),
        Some("AssumedRole") => arn_last_segment
            .or(principal_session)
            .or(identity.session_issuer_user_name.as_deref()),
        Some("FederatedUser") => arn_last_segment.or(principal_session),
        Some("IdentityCenterUser") => user_name.or(identity.on_behalf_of_user_id.as_deref()),
        Some("AWSService") => identity.invoked_by.as_deref(),
        Some("AWSAccount") => user_name.or(identity.account_id.as_deref()),
        _ => None,
    };
    by_type
        .or(user_name)
        .or(arn_last_segment)
        .or(identity.invoked_by.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn username_of(user_identity: &str) -> Option<String> {
        let member: ObjectMember<UserIdentityFields<'_>> =
            serde_json::from_str(user_identity).expect("parses");
        let identity = read_identity(&member).expect("valid").expect("present");
        derive_username(&identity).map(str::to_owned)
    }

    #[test]
    fn username_follows_identity_type() {
        let cases = [
            (
                r#"{"type":"IAMUser","userName":"alice","arn":"arn:aws:iam::1:user/x"}"#,
                Some("alice"),
            ),
            (
                r#"{"type":"Root","arn":"arn:aws:iam::1:root"}"#,
                Some("root"),
            ),
            (r#"{"type":"Root","userName":"my-alias"}"#, Some("my-alias")),
            (
                r#"{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/Admin/bob@example.com","principalId":"AROA:other"}"#,
                Some("bob@example.com"),
            ),
            (
                r#"{"type":"AssumedRole","principalId":"AROAX:session-1"}"#,
                Some("session-1"),
            ),
            (
                r#"{"type":"AssumedRole","sessionContext":{"sessionIssuer":{"userName":"Admin"}}}"#,
                Some("Admin"),
            ),
            (
                r#"{"type":"FederatedUser","arn":"arn:aws:sts::1:federated-user/Bob"}"#,
                Some("Bob"),
            ),
            (
                r#"{"type":"SAMLUser","userName":"SamlExample"}"#,
                Some("SamlExample"),
            ),
            (
                r#"{"type":"WebIdentityUser","userName":"accounts.google.com:sub"}"#,
                Some("accounts.google.com:sub"),
            ),
            (
                r#"{"type":"IdentityCenterUser","onBehalfOf":{"userId":"906a0fb7","identityStoreArn":"arn"}}"#,
                Some("906a0fb7"),
            ),
            (
                r#"{"type":"AWSService","invokedBy":"cloudtrail.amazonaws.com"}"#,
                Some("cloudtrail.amazonaws.com"),
            ),
            (
                r#"{"type":"AWSAccount","accountId":"111122223333","principalId":"AIDA"}"#,
                Some("111122223333"),
            ),
            (
                r#"{"type":"Unknown","arn":"arn:aws:sts::1:assumed-role/AWSReservedSSO_Admin/Adan"}"#,
                Some("Adan"),
            ),
            (
                r#"{"accountId":"1","invokedBy":"secretsmanager.amazonaws.com"}"#,
                Some("secretsmanager.amazonaws.com"),
            ),
            (r#"{"type":"IAMUser","userName":""}"#, None),
            (r#"{}"#, None),
        ];
        for (user_identity, expected) in cases {
            assert_eq!(
                username_of(user_identity).as_deref(),
                expected,
                "{user_identity}"
            );
        }
    }

    #[test]
    fn identity_members_of_the_wrong_type_are_named() {
        let member: ObjectMember<UserIdentityFields<'_>> =
            serde_json::from_str(r#"{"type":"IAMUser","userName":7}"#).expect("parses");
        let error = read_identity(&member).err().expect("invalid");
        assert_eq!(
            error.message,
            "userIdentity.userName must be a string, found a number"
        );
    }

    #[test]
    fn arn_short_names() {
        let cases = [
            ("arn:aws:s3:::my-bucket", Some("my-bucket")),
            ("arn:aws:s3:::my-bucket/", Some("my-bucket")),
            (
                "arn:aws:s3:::my-bucket/dir/file.txt",
                Some("my-bucket/dir/file.txt"),
            ),
            (
                "arn:aws:iam::123456789012:role/service-role/my-role",
                Some("my-role"),
            ),
            (
                "arn:aws:ec2:us-east-1:123456789012:instance/i-1234567",
                Some("i-1234567"),
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:my-fn",
                Some("my-fn"),
            ),
            (
                "arn:aws:sns:us-east-1:123456789012:my-topic",
                Some("my-topic"),
            ),
            ("arn:aws:iam::123456789012:user/", None),
            ("not-an-arn", None),
            ("arn:aws:s3", None),
        ];
        for (arn, expected) in cases {
            assert_eq!(arn_short_name(arn), expected, "{arn}");
        }
    }

    #[test]
    fn filter_field_names_round_trip() {
        for field in FilterField::ALL {
            assert_eq!(FilterField::from_name(field.name()), Some(field));
            assert_eq!(FilterField::from_u8(field.as_u8()), Some(field));
        }
        assert_eq!(
            FilterField::from_name("sourceIpAddress"),
            Some(FilterField::SourceIpAddress)
        );
        assert_eq!(
            FilterField::from_name("userIdentity.arn"),
            Some(FilterField::UserArn)
        );
        assert_eq!(
            FilterField::from_name("eventID"),
            Some(FilterField::EventId)
        );
        assert_eq!(FilterField::from_name("bogus"), None);
        assert_eq!(FilterField::from_u8(0), None);
    }

    #[test]
    fn index_values_skip_absent_and_list_every_resource() {
        let attributes = LookupAttributes {
            event_id: "id".to_owned(),
            event_name: "PutObject".to_owned(),
            event_source: "s3.amazonaws.com".to_owned(),
            read_only: Some(false),
            username: Some(String::new()),
            resources: vec![
                ResourceRef {
                    resource_type: Some("AWS::S3::Object".to_owned()),
                    resource_name: Some("arn:aws:s3:::bucket/key".to_owned()),
                },
                ResourceRef {
                    resource_type: Some("AWS::S3::Bucket".to_owned()),
                    resource_name: Some("arn:aws:s3:::bucket".to_owned()),
                },
                ResourceRef {
                    resource_type: Some("AWS::S3::Bucket".to_owned()),
                    resource_name: None,
                },
            ],
            aws_region: "us-east-1".to_owned(),
            recipient_account_id: "1".to_owned(),
            event_category: "Data".to_owned(),
            ..LookupAttributes::default()
        };
        assert_eq!(
            attributes.index_values(),
            vec![
                (FilterField::EventId, "id"),
                (FilterField::EventName, "PutObject"),
                (FilterField::ReadOnly, "false"),
                (FilterField::ResourceType, "AWS::S3::Bucket"),
                (FilterField::ResourceType, "AWS::S3::Object"),
                (FilterField::ResourceName, "arn:aws:s3:::bucket"),
                (FilterField::ResourceName, "arn:aws:s3:::bucket/key"),
                (FilterField::ResourceName, "bucket"),
                (FilterField::ResourceName, "bucket/key"),
                (FilterField::EventSource, "s3.amazonaws.com"),
                (FilterField::AwsRegion, "us-east-1"),
                (FilterField::RecipientAccountId, "1"),
                (FilterField::EventCategory, "Data"),
            ]
        );
    }
}

//! Channel operations of the control plane (awsJson1_1): CreateChannel, GetChannel,
//! ListChannels, UpdateChannel, DeleteChannel. Shapes and constraints from the botocore
//! model; ARN form `arn:aws:cloudtrail:<region>:<account>:channel/<id>`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::AwsError;

/// Channel name constraint (model `ChannelName`): 3..128 of `[a-zA-Z0-9._-]`.
pub const CHANNEL_NAME_LENGTH: std::ops::RangeInclusive<usize> = 3..=128;
/// Source constraint (model `Source`): 1..256 characters. `Custom` is the source for
/// one's own applications; partner integrations use the partner's source name.
pub const SOURCE_LENGTH: std::ops::RangeInclusive<usize> = 1..=256;
/// The source name for a custom integration.
pub const CUSTOM_SOURCE: &str = "Custom";
/// Destinations per channel (model `Destinations` 1..200).
pub const MAX_DESTINATIONS: usize = 200;
/// Tags per resource; the model's list allows 200 but the service limit is 50
/// (TagsLimitExceededException documentation).
pub const MAX_TAGS: usize = 50;
/// ListChannels page size bounds (model 1..1000); the default when absent is ours.
pub const MAX_LIST_RESULTS: usize = 1000;
/// Destination types (model enum `DestinationType`).
pub const DESTINATION_TYPES: [&str; 2] = ["EVENT_DATA_STORE", "AWS_SERVICE"];

/// A channel destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Destination {
    #[serde(rename = "Type")]
    pub destination_type: String,
    pub location: String,
}

/// A resource tag. `Value` is optional in the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateChannelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Vec<Destination>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

/// A CreateChannel request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedCreateChannel {
    pub name: String,
    pub source: String,
    pub destinations: Vec<Destination>,
    pub tags: Vec<Tag>,
}

impl CreateChannelRequest {
    pub fn validate(&self) -> Result<ValidatedCreateChannel, AwsError> {
        let name = self
            .name
            .as_deref()
            .ok_or_else(|| AwsError::invalid_parameter("Name is required."))?;
        validate_channel_name(name)?;
        let source = self
            .source
            .as_deref()
            .ok_or_else(|| AwsError::invalid_source("Source is required."))?;
        if !SOURCE_LENGTH.contains(&source.chars().count()) {
            return Err(AwsError::invalid_source(
                "Source must be 1 to 256 characters long.",
            ));
        }
        let destinations = self
            .destinations
            .as_deref()
            .ok_or_else(|| AwsError::invalid_parameter("Destinations is required."))?;
        validate_destinations(destinations)?;
        let tags = self.tags.as_deref().unwrap_or_default();
        validate_tags(tags)?;
        Ok(ValidatedCreateChannel {
            name: name.to_owned(),
            source: source.to_owned(),
            destinations: destinations.to_vec(),
            tags: tags.to_vec(),
        })
    }
}

/// Checks a channel name: 3..128 of `[a-zA-Z0-9._-]` (`InvalidParameterException`).
pub fn validate_channel_name(name: &str) -> Result<(), AwsError> {
    let pattern_ok = name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if !CHANNEL_NAME_LENGTH.contains(&name.len()) || !pattern_ok {
        return Err(AwsError::invalid_parameter(format!(
            "Channel name '{name}' is not valid: use 3 to 128 letters, digits, '.', '_' or '-'."
        )));
    }
    Ok(())
}

/// Checks destinations: 1..200 entries, a known `Type`, and a `Location` of 3..1024
/// `[a-zA-Z0-9._/\-:*]` (`InvalidParameterException`).
pub fn validate_destinations(destinations: &[Destination]) -> Result<(), AwsError> {
    if destinations.is_empty() || destinations.len() > MAX_DESTINATIONS {
        return Err(AwsError::invalid_parameter(format!(
            "Destinations must contain 1 to {MAX_DESTINATIONS} entries."
        )));
    }
    for destination in destinations {
        if !DESTINATION_TYPES.contains(&destination.destination_type.as_str()) {
            return Err(AwsError::invalid_parameter(format!(
                "Destination Type '{}' is not valid: use EVENT_DATA_STORE or AWS_SERVICE.",
                destination.destination_type
            )));
        }
        let location = &destination.location;
        let pattern_ok = location.bytes().all(|byte| {
            byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'/' | b'-' | b':' | b'*')
        });
        if !(3..=1024).contains(&location.len()) || !pattern_ok {
            return Err(AwsError::invalid_parameter(format!(
                "Destination Location '{location}' is not valid."
            )));
        }
    }
    Ok(())
}

/// Checks tags: at most 50 (`TagsLimitExceededException`), keys 1..128 and unique, values
/// 1..256 when present (`InvalidTagParameterException`).
pub fn validate_tags(tags: &[Tag]) -> Result<(), AwsError> {
    if tags.len() > MAX_TAGS {
        return Err(AwsError::tags_limit_exceeded(format!(
            "A resource can have at most {MAX_TAGS} tags."
        )));
    }
    let mut keys = HashSet::with_capacity(tags.len());
    for tag in tags {
        if !(1..=128).contains(&tag.key.chars().count()) {
            return Err(AwsError::invalid_tag_parameter(
                "Tag keys must be 1 to 128 characters long.",
            ));
        }
        if let Some(value) = &tag.value
            && !(1..=256).contains(&value.chars().count())
        {
            return Err(AwsError::invalid_tag_parameter(format!(
                "The value of tag '{}' must be 1 to 256 characters long.",
                tag.key
            )));
        }
        if !keys.insert(tag.key.as_str()) {
            return Err(AwsError::invalid_tag_parameter(format!(
                "Tag key '{}' is duplicated.",
                tag.key
            )));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateChannelResponse {
    pub channel_arn: String,
    pub name: String,
    pub source: String,
    pub destinations: Vec<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

/// GetChannel and DeleteChannel input: `Channel` is the ARN or the bare ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChannelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

pub type GetChannelRequest = ChannelRequest;
pub type DeleteChannelRequest = ChannelRequest;

impl ChannelRequest {
    /// The referenced channel (`ChannelARNInvalidException` when absent or malformed).
    pub fn channel_ref(&self) -> Result<ChannelRef, AwsError> {
        parse_channel_ref(self.channel.as_deref().unwrap_or_default())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetChannelResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_config: Option<SourceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Vec<Destination>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingestion_status: Option<IngestionStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SourceConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_to_all_regions: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
}

// Channels take the same advanced selectors as trails: one wire definition serves both.
pub use crate::trails::{AdvancedEventSelector, AdvancedFieldSelector};

/// Ingestion state of a channel. Times are epoch-seconds numbers
/// ([`crate::time::ms_to_epoch_seconds`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IngestionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ingestion_success_time: Option<serde_json::Number>,
    #[serde(
        rename = "LatestIngestionSuccessEventID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_ingestion_success_event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ingestion_error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ingestion_attempt_time: Option<serde_json::Number>,
    #[serde(
        rename = "LatestIngestionAttemptEventID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_ingestion_attempt_event_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListChannelsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl ListChannelsRequest {
    /// The page size: 1..1000, default 1000 (the service allows only 25 channels, so one
    /// page holds them all). Out of range is `InvalidParameterException`.
    pub fn page_size(&self) -> Result<usize, AwsError> {
        match self.max_results {
            None => Ok(MAX_LIST_RESULTS),
            Some(requested) => usize::try_from(requested)
                .ok()
                .filter(|size| (1..=MAX_LIST_RESULTS).contains(size))
                .ok_or_else(|| {
                    AwsError::invalid_parameter(format!(
                        "MaxResults must be between 1 and {MAX_LIST_RESULTS}, got {requested}."
                    ))
                }),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListChannelsResponse {
    #[serde(default)]
    pub channels: Vec<ChannelSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChannelSummary {
    pub channel_arn: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateChannelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Vec<Destination>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl UpdateChannelRequest {
    /// Validates the optional new name and destinations and returns the channel reference.
    pub fn validate(&self) -> Result<ChannelRef, AwsError> {
        let channel = parse_channel_ref(self.channel.as_deref().unwrap_or_default())?;
        if let Some(name) = &self.name {
            validate_channel_name(name)?;
        }
        if let Some(destinations) = &self.destinations {
            validate_destinations(destinations)?;
        }
        Ok(channel)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateChannelResponse {
    pub channel_arn: String,
    pub name: String,
    pub source: String,
    pub destinations: Vec<Destination>,
}

/// How a request names a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelRef {
    /// A full ARN; the server must also check region and account are its own.
    Arn {
        region: String,
        account_id: String,
        channel_id: String,
    },
    /// The bare ID (the ARN suffix), which the model allows in place of the ARN.
    Id(String),
}

impl ChannelRef {
    pub fn channel_id(&self) -> &str {
        match self {
            ChannelRef::Arn { channel_id, .. } | ChannelRef::Id(channel_id) => channel_id,
        }
    }
}

/// The ARN of a channel.
pub fn channel_arn(region: &str, account_id: &str, channel_id: &str) -> String {
    format!("arn:aws:cloudtrail:{region}:{account_id}:channel/{channel_id}")
}

/// Parses a channel ARN or bare ID (`ChannelARNInvalidException` when neither). Other
/// partitions (`aws-cn`, `aws-us-gov`) are accepted; the server compares the parts with its
/// own identity.
pub fn parse_channel_ref(text: &str) -> Result<ChannelRef, AwsError> {
    let invalid = || {
        AwsError::channel_arn_invalid(format!(
            "'{text}' is not a valid channel ARN or ID. Expected arn:aws:cloudtrail:<region>:<account>:channel/<id>."
        ))
    };
    let is_id = |id: &str| {
        !id.is_empty()
            && id.len() <= 256
            && id
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
    };
    if !text.starts_with("arn:") {
        return if is_id(text) {
            Ok(ChannelRef::Id(text.to_owned()))
        } else {
            Err(invalid())
        };
    }
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let [_, partition, service, region, account_id, resource] = parts[..] else {
        return Err(invalid());
    };
    let channel_id = resource.strip_prefix("channel/").ok_or_else(invalid)?;
    let account_ok = account_id.len() == 12 && account_id.bytes().all(|byte| byte.is_ascii_digit());
    if !partition.starts_with("aws")
        || service != "cloudtrail"
        || region.is_empty()
        || !account_ok
        || !is_id(channel_id)
    {
        return Err(invalid());
    }
    Ok(ChannelRef::Arn {
        region: region.to_owned(),
        account_id: account_id.to_owned(),
        channel_id: channel_id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::codes;

    #[test]
    fn channel_refs_parse() -> Result<(), AwsError> {
        let arn = channel_arn(
            "us-east-1",
            "111122223333",
            "6464f5be-705b-4c51-b64c-d46643ff96dc",
        );
        assert_eq!(
            parse_channel_ref(&arn)?,
            ChannelRef::Arn {
                region: "us-east-1".to_owned(),
                account_id: "111122223333".to_owned(),
                channel_id: "6464f5be-705b-4c51-b64c-d46643ff96dc".to_owned(),
            }
        );
        assert_eq!(
            parse_channel_ref("6464f5be-705b-4c51-b64c-d46643ff96dc")?.channel_id(),
            "6464f5be-705b-4c51-b64c-d46643ff96dc"
        );
        for bad in [
            "",
            "arn:aws:cloudtrail:us-east-1:111122223333:trail/x",
            "arn:aws:s3:us-east-1:111122223333:channel/x",
            "arn:aws:cloudtrail:us-east-1:1:channel/x",
            "arn:aws:cloudtrail:us-east-1:111122223333:channel/",
            "has space",
        ] {
            assert_eq!(
                parse_channel_ref(bad).err().map(|e| e.code),
                Some(codes::CHANNEL_ARN_INVALID.to_owned()),
                "{bad}"
            );
        }
        Ok(())
    }

    #[test]
    fn names_follow_the_model_pattern() {
        assert!(validate_channel_name("my-channel.v1_2").is_ok());
        assert!(validate_channel_name("ab").is_err());
        assert!(validate_channel_name(&"a".repeat(129)).is_err());
        assert!(validate_channel_name("bad name").is_err());
    }
}

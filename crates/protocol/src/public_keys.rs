//! ListPublicKeys: the public keys that sign digest files (spec §2.2, §6.2).
//!
//! - `Value` is the DER of a PKCS#1 RSAPublicKey, base64 on the wire (a blob); the aws
//!   CLI loads it with `rsa.PublicKey.load_pkcs1(…, 'DER')`, so SPKI would break it.
//! - `StartTime`/`EndTime` are optional epoch seconds, each defaulting to now.
//! - `NextToken` is "reserved for future use": the CLI asks once and never paginates, so
//!   every key of the window comes in one answer.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::AwsError;
use crate::time::{epoch_seconds_to_ms, ms_to_epoch_seconds};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPublicKeysRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl ListPublicKeysRequest {
    /// The window `[start, end]` in epoch milliseconds; a missing bound is `now_ms`.
    pub fn window(&self, now_ms: i64) -> Result<(i64, i64), AwsError> {
        let bound = |value: &Option<serde_json::Number>, name: &str| match value {
            None => Ok(now_ms),
            Some(seconds) => epoch_seconds_to_ms(seconds).ok_or_else(|| {
                AwsError::invalid_time_range(format!(
                    "{name} is outside the range of possible values."
                ))
            }),
        };
        let start = bound(&self.start_time, "StartTime")?;
        let end = bound(&self.end_time, "EndTime")?;
        if start > end {
            return Err(AwsError::invalid_time_range(
                "StartTime must be before EndTime.",
            ));
        }
        Ok((start, end))
    }
}

/// One key of the answer, from the server's own types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInput<'a> {
    pub public_der: &'a [u8],
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    pub fingerprint: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublicKey {
    /// Base64 of the PKCS#1 RSAPublicKey DER.
    pub value: String,
    pub validity_start_time: serde_json::Number,
    pub validity_end_time: serde_json::Number,
    pub fingerprint: String,
}

impl PublicKey {
    pub fn from_input(input: &PublicKeyInput<'_>) -> PublicKey {
        PublicKey {
            value: BASE64.encode(input.public_der),
            validity_start_time: ms_to_epoch_seconds(input.valid_from_ms),
            validity_end_time: ms_to_epoch_seconds(input.valid_until_ms),
            fingerprint: input.fingerprint.to_owned(),
        }
    }

    /// The DER bytes of `Value` (for clients such as `opentrail validate`).
    pub fn der(&self) -> Option<Vec<u8>> {
        BASE64.decode(&self.value).ok()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPublicKeysResponse {
    pub public_key_list: Vec<PublicKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_defaults_to_now_and_rejects_reversed_ranges() {
        let request = ListPublicKeysRequest::default();
        assert_eq!(request.window(5_000).ok(), Some((5_000, 5_000)));
        let request: ListPublicKeysRequest =
            serde_json::from_str(r#"{"StartTime":1704186000,"EndTime":1704211200}"#)
                .unwrap_or_default();
        assert_eq!(
            request.window(0).ok(),
            Some((1_704_186_000_000, 1_704_211_200_000))
        );
        let reversed: ListPublicKeysRequest =
            serde_json::from_str(r#"{"StartTime":2,"EndTime":1}"#).unwrap_or_default();
        assert!(reversed.window(0).is_err());
    }

    #[test]
    fn keys_are_base64_with_epoch_second_windows() {
        let key = PublicKey::from_input(&PublicKeyInput {
            public_der: &[0x30, 0x82],
            valid_from_ms: 1_436_317_441_000,
            valid_until_ms: 1_438_909_441_000,
            fingerprint: "31e8b5433410dfb61a9dc45cc65b22ff",
        });
        let json = serde_json::to_value(&key).unwrap_or_default();
        assert_eq!(json["Value"], "MII=");
        assert_eq!(json["ValidityStartTime"].as_f64(), Some(1_436_317_441.0));
        assert_eq!(json["Fingerprint"], "31e8b5433410dfb61a9dc45cc65b22ff");
    }
}

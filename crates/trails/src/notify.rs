//! Notifications of delivered files, the SNS part of a trail.
//!
//! A trail's `SnsTopicName` maps, through the `sns_topics` configuration table (topic ARN
//! or name → webhook URL), to an HTTP endpoint. Each delivery batch posts one message, as
//! an SNS HTTP subscriber receives it: the SNS envelope (`Type`, `MessageId`, `TopicArn`,
//! `Subject`, `Message`, `Timestamp`) with `Message` set to CloudTrail's
//! `{"s3Bucket":"…","s3ObjectKey":["…", …]}` (spec §5), plus SNS's
//! `x-amz-sns-message-type` / `x-amz-sns-message-id` / `x-amz-sns-topic-arn` headers.
//! The envelope is not signed (there is no SNS signing certificate to check it against).
//!
//! `MessageId` is derived from the trail and the batch, so a message repeated after a crash
//! (notification is at least once) carries the same id and receivers can drop the copy.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::SnsTopic;

/// Time for one notification request.
const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Posts notifications to the configured webhooks.
#[derive(Debug, Clone)]
pub struct Notifier {
    client: reqwest::Client,
    /// Topic ARN or name → webhook URL.
    webhooks: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct CloudTrailMessage<'a> {
    #[serde(rename = "s3Bucket")]
    s3_bucket: &'a str,
    #[serde(rename = "s3ObjectKey")]
    s3_object_key: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SnsEnvelope<'a> {
    #[serde(rename = "Type")]
    message_type: &'a str,
    message_id: &'a str,
    topic_arn: &'a str,
    subject: &'a str,
    message: &'a str,
    timestamp: &'a str,
}

impl Notifier {
    pub fn new(client: reqwest::Client, webhooks: BTreeMap<String, String>) -> Notifier {
        Notifier { client, webhooks }
    }

    /// The webhook of a topic: by ARN, else by the name as given, else by the name part
    /// of the ARN.
    pub fn webhook_for(&self, topic: &SnsTopic) -> Option<&str> {
        let name = topic.arn.rsplit(':').next().unwrap_or_default();
        [topic.arn.as_str(), topic.given.as_str(), name]
            .into_iter()
            .find_map(|candidate| self.webhooks.get(candidate))
            .map(String::as_str)
    }

    /// Whether a topic (name or ARN as CreateTrail received it) has a webhook.
    pub fn is_configured(&self, topic: &SnsTopic) -> bool {
        self.webhook_for(topic).is_some()
    }

    /// Posts one notification, trying up to `attempts_max` times with doubling pauses.
    /// Returns the last error when every attempt failed.
    pub async fn notify(
        &self,
        topic: &SnsTopic,
        message_id: &str,
        bucket: &str,
        keys: &[String],
        attempts_max: u32,
        first_pause: Duration,
    ) -> Result<(), String> {
        let Some(url) = self.webhook_for(topic) else {
            return Err(format!(
                "no webhook is configured for SNS topic {}",
                topic.arn
            ));
        };
        let message = serde_json::to_string(&CloudTrailMessage {
            s3_bucket: bucket,
            s3_object_key: keys,
        })
        .map_err(|error| error.to_string())?;
        let timestamp = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let subject = format!("[AWS Notification - {message_id}]");
        let body = serde_json::to_vec(&SnsEnvelope {
            message_type: "Notification",
            message_id,
            topic_arn: &topic.arn,
            subject: &subject,
            message: &message,
            timestamp: &timestamp,
        })
        .map_err(|error| error.to_string())?;
        let mut pause = first_pause;
        let mut last_error = String::new();
        for attempt in 1..=attempts_max.max(1) {
            let sent = self
                .client
                .post(url)
                .timeout(NOTIFICATION_TIMEOUT)
                .header("content-type", "text/plain; charset=UTF-8")
                .header("x-amz-sns-message-type", "Notification")
                .header("x-amz-sns-message-id", message_id)
                .header("x-amz-sns-topic-arn", &topic.arn)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    last_error = format!("webhook {url} answered HTTP {}", response.status());
                }
                Err(error) => last_error = format!("webhook {url} failed: {error}"),
            }
            tracing::warn!(
                topic = topic.arn.as_str(),
                attempt,
                error = last_error.as_str(),
                "notification failed"
            );
            if attempt < attempts_max {
                tokio::time::sleep(pause).await;
                pause = pause.saturating_mul(2);
            }
        }
        Err(last_error)
    }
}

/// A UUID-shaped id that is a pure function of its parts.
pub fn deterministic_message_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hex::encode(&hasher.finalize()[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &digest[0..8],
        &digest[8..12],
        &digest[12..16],
        &digest[16..20],
        &digest[20..32]
    )
}

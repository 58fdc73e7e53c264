//! Insights: the rule on hand-made minutes, the consumer against a real store (records,
//! attributions, restarts), the metrics, and the generator's two spike stories. One
//! test binary for the crate.

mod analysis;
mod consumer;
mod stories;

use std::sync::atomic::{AtomicBool, Ordering};

use opentrail_insights::{InsightType, InsightsConsumer, InsightsScope, SourceCategory};

pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "us-east-1";
pub const MINUTE_MS: i64 = 60_000;
/// 2025-06-02T00:00:00Z, a whole minute.
pub const T0: i64 = 1_748_822_400_000;

/// A record at `time_ms` of `event_name` by `user`, failing with `error_code` if given.
pub fn call(
    time_ms: i64,
    event_name: &str,
    user: &str,
    read_only: bool,
    error_code: Option<&str>,
    id: u64,
) -> String {
    let time = jiff::Timestamp::from_millisecond(time_ms)
        .expect("valid time")
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut record = serde_json::json!({
        "eventVersion": "1.09",
        "eventTime": time,
        "eventSource": "ssm.amazonaws.com",
        "eventName": event_name,
        "awsRegion": REGION,
        "recipientAccountId": ACCOUNT,
        "eventID": format!("00000000-0000-4000-8000-{id:012}"),
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "eventCategory": "Management",
        "userAgent": format!("agent-of-{user}"),
        "sourceIPAddress": "198.51.100.7",
        "userIdentity": {
            "type": "IAMUser",
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
            "userName": user,
            "accountId": ACCOUNT,
        },
    });
    if let Some(code) = error_code {
        record["errorCode"] = code.into();
        record["errorMessage"] = "denied".into();
    }
    record.to_string()
}

/// Insights on or off for everyone, switchable.
#[derive(Default)]
pub struct Switch(pub AtomicBool);

impl Switch {
    pub fn on() -> Switch {
        Switch(AtomicBool::new(true))
    }
}

impl InsightsScope for Switch {
    fn any_enabled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn is_enabled(&self, _: &str, _: &str, _: InsightType, _: SourceCategory) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Runs the consumer until it has read everything, as if the clock read `now_ms`, then
/// once more a few minutes later, when the quiet log lets the clock close the minutes.
pub fn drain(consumer: &mut InsightsConsumer, now_ms: i64) {
    for _ in 0..1_000 {
        if consumer.run_once(now_ms).expect("scan").events == 0 {
            consumer.run_once(now_ms + 5 * MINUTE_MS).expect("scan");
            return;
        }
    }
    panic!("the consumer never caught up");
}

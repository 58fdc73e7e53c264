//! The optional per-key LookupEvents rate limit (off by default: removing CloudTrail's
//! 2 requests/s limit is one of OpenTrail's points). A token bucket per access key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Keys tracked at once; beyond it the table is reset, which at worst grants a burst.
const TRACKED_KEYS_MAX: usize = 100_000;

#[derive(Clone, Default)]
pub struct RateLimiter {
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    /// Takes one token for `key` from a bucket of `per_second` tokens refilled at
    /// `per_second` per second. False means the caller must be throttled.
    pub fn try_acquire(&self, key: &str, per_second: u32) -> bool {
        let capacity = f64::from(per_second.max(1));
        let now = Instant::now();
        let mut buckets = match self.buckets.lock() {
            Ok(buckets) => buckets,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= TRACKED_KEYS_MAX && !buckets.contains_key(key) {
            buckets.clear();
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            refilled_at: now,
        });
        let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * capacity).min(capacity);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_beyond_the_limit_is_refused_and_keys_are_independent() {
        let limiter = RateLimiter::default();
        assert!(limiter.try_acquire("a", 2));
        assert!(limiter.try_acquire("a", 2));
        assert!(!limiter.try_acquire("a", 2));
        assert!(limiter.try_acquire("b", 2));
    }
}

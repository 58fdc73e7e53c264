//! The terms events are indexed under: a 64-bit hash of (field, value) for every lookup
//! attribute, plus one term per lane.
//!
//! Postings hold hashes, not values, so a term costs 8 bytes whatever the length of the
//! ARN or user agent it names. Lookups re-check every candidate's attributes, so a hash
//! collision costs one extra read and never returns a wrong event.

use opentrail_event::{EventRecord, FilterField};

use crate::query::{EventLane, Scope};

/// The term for `field = value`. The hash is xxh3 (stable across versions and platforms,
/// unlike std's hashers), seeded with the field so equal values of two fields differ.
pub(crate) fn term(field: FilterField, value: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(value.as_bytes(), u64::from(field.as_u8()))
}

/// The term every event of a lane carries: queries always name their lane.
pub(crate) fn lane_term(lane: EventLane) -> u64 {
    const LANE_SEED: u64 = 0x4c41_4e45;
    xxhash_rust::xxh3::xxh3_64_with_seed(&[lane as u8], LANE_SEED)
}

/// Every term of a record, without duplicates. `EventId` has none: every event has its
/// own, so a term would cost a table entry per event; lookups by id go through the id
/// tables instead.
pub(crate) fn terms_of(record: &EventRecord) -> Vec<u64> {
    let mut terms = Vec::with_capacity(16);
    terms_into(record, &mut terms);
    terms
}

/// [`terms_of`] into a buffer the caller reuses: the writer makes them for every event.
pub(crate) fn terms_into(record: &EventRecord, terms: &mut Vec<u64>) {
    terms.clear();
    record.attributes.for_each_index_value(|field, value| {
        if field != FilterField::EventId {
            terms.push(term(field, value));
        }
    });
    terms.push(lane_term(lane_of(record)));
    terms.sort_unstable();
    terms.dedup();
}

pub(crate) fn lane_of(record: &EventRecord) -> EventLane {
    if record.attributes.event_category == "Insight" {
        EventLane::Insight
    } else {
        EventLane::Standard
    }
}

pub(crate) fn scope_of(record: &EventRecord) -> Scope {
    Scope {
        account_id: record.account_id.clone(),
        region: record.region.clone(),
        lane: lane_of(record),
    }
}

/// A hash of the record's scope, to find it among those a head has without building it.
pub(crate) fn scope_hash(record: &EventRecord) -> u64 {
    let account = xxhash_rust::xxh3::xxh3_64(record.account_id.as_bytes());
    let seed = account ^ lane_of(record) as u64;
    xxhash_rust::xxh3::xxh3_64_with_seed(record.region.as_bytes(), seed)
}

pub(crate) fn is_scope_of(scope: &Scope, record: &EventRecord) -> bool {
    scope.account_id == record.account_id
        && scope.region == record.region
        && scope.lane == lane_of(record)
}

/// The key dedup is exact on, hashed: (recipientAccountId, eventID). A hash match is
/// confirmed against the stored record before an event counts as a duplicate.
///
/// The value is xxh3 of `account ‖ 0 ‖ eventID`; segments' id tables keep it, so it never
/// changes. Keys that fit (all real ones) are hashed from a stack buffer in one call: the
/// streaming hasher's set-up cost more than the hash, once per event on the writer.
pub(crate) fn id_hash(account_id: &str, event_id: &str) -> u64 {
    const STACK_KEY_BYTES: usize = 128;
    let (account, event) = (account_id.as_bytes(), event_id.as_bytes());
    let len = account.len() + 1 + event.len();
    if len <= STACK_KEY_BYTES {
        let mut key = [0u8; STACK_KEY_BYTES];
        key[..account.len()].copy_from_slice(account);
        key[account.len() + 1..len].copy_from_slice(event);
        return xxhash_rust::xxh3::xxh3_64(&key[..len]);
    }
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(account);
    hasher.update(&[0]);
    hasher.update(event);
    hasher.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_hashes_are_xxh3_of_account_zero_event_id_whatever_their_length() {
        let long_id = "x".repeat(300);
        for (account, event_id) in [
            ("123456789012", "3038ebd2-c98a-4c65-9b6e-e22506292313"),
            ("", ""),
            ("123456789012", long_id.as_str()),
            ("a".repeat(127).as_str(), ""),
            ("a".repeat(127).as_str(), "b"),
        ] {
            let key = format!("{account}\0{event_id}");
            assert_eq!(
                id_hash(account, event_id),
                xxhash_rust::xxh3::xxh3_64(key.as_bytes()),
                "{account:?} {event_id:?}"
            );
        }
        // The account's end is marked, so moving a byte across it changes the hash.
        assert_ne!(id_hash("12", "3"), id_hash("1", "23"));
    }
}

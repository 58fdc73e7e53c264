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
    let mut terms: Vec<u64> = record
        .attributes
        .index_values()
        .into_iter()
        .filter(|(field, _)| *field != FilterField::EventId)
        .map(|(field, value)| term(field, value))
        .collect();
    terms.push(lane_term(lane_of(record)));
    terms.sort_unstable();
    terms.dedup();
    terms
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

/// The key dedup is exact on, hashed: (recipientAccountId, eventID). A hash match is
/// confirmed against the stored record before an event counts as a duplicate.
pub(crate) fn id_hash(account_id: &str, event_id: &str) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(account_id.as_bytes());
    hasher.update(&[0]);
    hasher.update(event_id.as_bytes());
    hasher.digest()
}

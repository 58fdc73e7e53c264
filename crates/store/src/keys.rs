//! Order-preserving byte encodings of every key the store writes.
//!
//! ```text
//! log      seq:u64be                                  -> ingest_ms:i64be ‖ crc32(json):u32be ‖ json
//! dedup    len:u8 ‖ account ‖ event_id                 -> seq:u64be
//! index    day ‖ field:u8 ‖ scope_id:u32be ‖ xxh3(value):u64be ‖ pos  -> (empty)
//! meta     utf-8 name                                  -> value (cursors, scopes, expiry floor)
//!
//! scope    lane:u8 ‖ len:u8 ‖ account ‖ len:u8 ‖ region   (meta "scope/<scope>" -> scope_id:u32be)
//! pos      !(event_time_ms as order-preserving u64) ‖ !seq   (so ascending keys = newest first)
//! day      !(UTC day of event_time_ms as order-preserving u32)  (newest day first)
//! ```
//!
//! Index keys start with the event's day: live ingest then writes into one narrow, newest
//! key range, so the LSM's compactions stay within today's entries instead of rewriting
//! every field's whole history on each flush (they dominated ingest CPU). A lookup walks
//! the days newest first, finding the next day that holds entries with one seek.
//!
//! Field 0 (`TIME_FIELD`) with an empty value indexes every event, which serves queries
//! with no attribute filter through the same code path as filtered ones.
//!
//! Index keys hold a 64-bit hash of the value rather than the value: every key is then 33
//! bytes, whatever the length of the ARN or user agent it indexes, which keeps memtable
//! inserts (a skiplist of key comparisons, the writer's main cost) and the disk footprint
//! small. A lookup re-checks every candidate event's attributes, so a hash collision can
//! never return a wrong event; it only costs one extra read.

use opentrail_event::FilterField;

use crate::lookup::{EventLane, Scope};

/// The pseudo-field that indexes every event by time alone.
pub(crate) const TIME_FIELD: u8 = 0;

/// The layout of index keys. A store whose index was written in another layout has its
/// index rebuilt from the log when it opens.
pub(crate) const INDEX_FORMAT: u64 = 2;

/// Bytes of the prefix shared by one (day, field, scope, value) run of index entries.
pub(crate) const INDEX_PREFIX_LEN: usize = 4 + 1 + 4 + 8;

/// A scope's compact id in index keys, assigned in order of first appearance.
pub(crate) type ScopeId = u32;

/// Bytes in an encoded newest-first position.
pub(crate) const POSITION_LEN: usize = 16;

/// A place in newest-first order, as stored at the end of index keys.
pub(crate) type Position = [u8; POSITION_LEN];

pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub(crate) fn seq_from_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Maps i64 to u64 so that byte order equals numeric order (flip the sign bit).
fn order_preserving_time(event_time_ms: i64) -> u64 {
    (event_time_ms as u64) ^ (1 << 63)
}

pub(crate) fn position(event_time_ms: i64, seq: u64) -> Position {
    let mut pos = [0u8; POSITION_LEN];
    pos[..8].copy_from_slice(&(!order_preserving_time(event_time_ms)).to_be_bytes());
    pos[8..].copy_from_slice(&(!seq).to_be_bytes());
    pos
}

pub(crate) fn position_parts(pos: &Position) -> (i64, u64) {
    let mut time_bytes = [0u8; 8];
    time_bytes.copy_from_slice(&pos[..8]);
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&pos[8..]);
    let time = (!u64::from_be_bytes(time_bytes) ^ (1 << 63)) as i64;
    (time, !u64::from_be_bytes(seq_bytes))
}

/// The position right after `pos` in newest-first order, or `None` at the very end.
pub(crate) fn position_successor(pos: &Position) -> Option<Position> {
    let mut next = *pos;
    for byte in next.iter_mut().rev() {
        if *byte == u8::MAX {
            *byte = 0;
        } else {
            *byte += 1;
            return Some(next);
        }
    }
    None
}

pub(crate) fn dedup_key(account_id: &str, event_id: &str) -> Vec<u8> {
    let account = truncate_to_u8_len(account_id.as_bytes());
    let mut key = Vec::with_capacity(1 + account.len() + event_id.len());
    key.push(account.len() as u8);
    key.extend_from_slice(account);
    key.extend_from_slice(event_id.as_bytes());
    key
}

fn truncate_to_u8_len(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(u8::MAX as usize)]
}

pub(crate) fn encode_scope(scope: &Scope, out: &mut Vec<u8>) {
    out.push(scope.lane as u8);
    for part in [scope.account_id.as_bytes(), scope.region.as_bytes()] {
        let part = truncate_to_u8_len(part);
        out.push(part.len() as u8);
        out.extend_from_slice(part);
    }
}

pub(crate) fn decode_scope(bytes: &[u8]) -> Option<Scope> {
    let (&lane_byte, rest) = bytes.split_first()?;
    let lane = match lane_byte {
        0 => EventLane::Standard,
        1 => EventLane::Insight,
        _ => return None,
    };
    let (account, rest) = split_u8_prefixed(rest)?;
    let (region, rest) = split_u8_prefixed(rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some(Scope {
        account_id: String::from_utf8(account.to_vec()).ok()?,
        region: String::from_utf8(region.to_vec()).ok()?,
        lane,
    })
}

fn split_u8_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let len = usize::from(len);
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The day part of index keys, in key order: a larger key is an older day.
pub(crate) type DayKey = u32;

const MS_PER_DAY: i64 = 24 * 3600 * 1000;

pub(crate) fn day_key(event_time_ms: i64) -> DayKey {
    let day = event_time_ms.div_euclid(MS_PER_DAY);
    let clamped = day.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    !((clamped as u32) ^ (1 << 31))
}

pub(crate) fn day_key_from_index_key(key: &[u8]) -> Option<DayKey> {
    Some(DayKey::from_be_bytes(key.get(..4)?.try_into().ok()?))
}

/// The prefix shared by every index entry of (day, field, scope, value); positions follow.
///
/// Scopes appear as 4-byte ids rather than their account and region text, and values as
/// their hash: index keys are compared on every memtable insert, and short keys keep that
/// cheap.
pub(crate) fn index_prefix(
    day: DayKey,
    field: u8,
    scope_id: ScopeId,
    value: &str,
) -> [u8; INDEX_PREFIX_LEN] {
    let mut prefix = [0u8; INDEX_PREFIX_LEN];
    prefix[..4].copy_from_slice(&day.to_be_bytes());
    prefix[4] = field;
    prefix[5..9].copy_from_slice(&scope_id.to_be_bytes());
    prefix[9..].copy_from_slice(&value_hash(value).to_be_bytes());
    prefix
}

/// A full index entry's key.
pub(crate) type IndexKey = [u8; INDEX_PREFIX_LEN + POSITION_LEN];

/// A full index key: the run's prefix, then the event's position.
pub(crate) fn index_key(prefix: &[u8; INDEX_PREFIX_LEN], position: &Position) -> IndexKey {
    let mut key = [0u8; INDEX_PREFIX_LEN + POSITION_LEN];
    key[..INDEX_PREFIX_LEN].copy_from_slice(prefix);
    key[INDEX_PREFIX_LEN..].copy_from_slice(position);
    key
}

/// The value's hash in index keys. xxh3 is stable across versions and platforms, which an
/// on-disk key needs (std's hashers promise neither).
fn value_hash(value: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(value.as_bytes())
}

/// Fields answered without index entries of their own: the account and region are part of
/// every index key's scope, and an event id is found through the dedup map.
pub(crate) fn is_indexed(field: FilterField) -> bool {
    !matches!(
        field,
        FilterField::EventId | FilterField::AwsRegion | FilterField::RecipientAccountId
    )
}

pub(crate) fn field_byte(field: FilterField) -> u8 {
    field as u8
}

pub(crate) const META_EXPIRED_THROUGH: &str = "expired_through";
pub(crate) const META_INDEX_FORMAT: &str = "index_format";
pub(crate) const META_SCOPE_PREFIX: &str = "scope/";
pub(crate) const META_CURSOR_PREFIX: &str = "cursor/";

pub(crate) fn meta_scope_key(scope: &Scope) -> Vec<u8> {
    let mut key = META_SCOPE_PREFIX.as_bytes().to_vec();
    encode_scope(scope, &mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_sort_newest_first_with_seq_tiebreak() {
        let newer = position(2_000, 1);
        let older = position(1_000, 9);
        let same_time_later_seq = position(2_000, 5);
        assert!(newer > same_time_later_seq, "later seq first at equal time");
        assert!(same_time_later_seq < older);
        assert!(
            position(-5, 1) > position(5, 1),
            "negative times sort after"
        );
    }

    #[test]
    fn day_keys_sort_newest_first() {
        let today = day_key(1_700_000_000_000);
        assert!(day_key(1_700_100_000_000) < today);
        assert!(day_key(-1) > day_key(0), "1969 sorts after 1970");
        assert_eq!(
            day_key(1_700_000_000_000),
            day_key(1_700_000_000_000 - 3_600_000 * 5)
        );
        let prefix = index_prefix(today, 3, 7, "x");
        assert_eq!(day_key_from_index_key(&prefix), Some(today));
    }

    #[test]
    fn position_round_trips() {
        for (time, seq) in [(0, 0), (-1, 7), (i64::MAX, u64::MAX), (i64::MIN, 3)] {
            assert_eq!(position_parts(&position(time, seq)), (time, seq));
        }
    }

    #[test]
    fn successor_is_strictly_greater() {
        let pos = position(1_700_000_000_000, 42);
        let next = position_successor(&pos).expect("not the last position");
        assert!(next > pos);
        assert_eq!(position_successor(&[u8::MAX; POSITION_LEN]), None);
    }

    #[test]
    fn scope_round_trips() {
        let scope = Scope {
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
            lane: EventLane::Insight,
        };
        let mut bytes = Vec::new();
        encode_scope(&scope, &mut bytes);
        assert_eq!(decode_scope(&bytes), Some(scope));
    }
}

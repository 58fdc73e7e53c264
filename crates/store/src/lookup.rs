//! Lookup queries: any number of attribute filters (AND), a time range, scope and paging.

use opentrail_event::{EventRecord, FilterField};

/// Which events a query sees: Insights events live in their own lane and are returned
/// only when asked for, as in CloudTrail's event history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventLane {
    Standard = 0,
    Insight = 1,
}

/// The (account, region, lane) an event belongs to. Index keys start with it, so a
/// lookup never reads another tenant's entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub account_id: String,
    pub region: String,
    pub lane: EventLane,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupQuery {
    /// `None` means every account (only for an admin of the default account).
    pub account_id: Option<String>,
    /// `None` means every region.
    pub region: Option<String>,
    pub lane: EventLane,
    /// All must match (AND). Values compare exactly.
    pub filters: Vec<(FilterField, String)>,
    /// Inclusive bounds on `eventTime`, in epoch milliseconds.
    pub start_time_ms: Option<i64>,
    pub end_time_ms: Option<i64>,
    /// Page size; at least 1.
    pub limit: usize,
    /// Resume after this position (exclusive).
    pub cursor: Option<PageCursor>,
}

impl LookupQuery {
    /// A query over one account and region, newest first, with no filters.
    pub fn new(account_id: Option<String>, region: Option<String>, limit: usize) -> Self {
        LookupQuery {
            account_id,
            region,
            lane: EventLane::Standard,
            filters: Vec::new(),
            start_time_ms: None,
            end_time_ms: None,
            limit,
            cursor: None,
        }
    }
}

/// A position in the newest-first order: results resume strictly after it. Pages already
/// served never shift, because ingest only adds positions, never reorders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageCursor {
    pub event_time_ms: i64,
    pub seq: u64,
}

impl PageCursor {
    pub const ENCODED_LEN: usize = 16;

    pub fn to_bytes(self) -> [u8; Self::ENCODED_LEN] {
        let mut bytes = [0u8; Self::ENCODED_LEN];
        bytes[..8].copy_from_slice(&self.event_time_ms.to_be_bytes());
        bytes[8..].copy_from_slice(&self.seq.to_be_bytes());
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<PageCursor> {
        if bytes.len() != Self::ENCODED_LEN {
            return None;
        }
        let event_time_ms = i64::from_be_bytes(bytes[..8].try_into().ok()?);
        let seq = u64::from_be_bytes(bytes[8..].try_into().ok()?);
        Some(PageCursor { event_time_ms, seq })
    }
}

/// An event as read back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    /// When OpenTrail recorded it (retention is measured from here).
    pub ingest_time_ms: i64,
    pub record: EventRecord,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupPage {
    pub events: Vec<StoredEvent>,
    /// Present when more results may follow.
    pub next: Option<PageCursor>,
}

use crate::engine::{Shared, StoreError};
use crate::keys::{self, INDEX_PREFIX_LEN, POSITION_LEN, Position, ScopeId};

/// How many steps a filter cursor walks forward before it re-seeks instead. Walking is
/// cheap for dense matches; re-seeking skips long runs of non-matches in O(log n).
const WALK_STEPS_BEFORE_SEEK: usize = 16;

/// Evaluates a query: per scope, a leapfrog intersection of the filters' index runs
/// (all sorted newest first), then a merge across scopes.
///
/// Cost grows with the entries the filters visit, which for a selective filter is the
/// number of matches, not the size of the store.
pub(crate) fn run(
    shared: &Shared,
    query: &LookupQuery,
    now_ms: i64,
) -> Result<LookupPage, StoreError> {
    let limit = query.limit.max(1);
    let Some(bounds) = PositionBounds::of(query) else {
        return Ok(LookupPage {
            events: Vec::new(),
            next: None,
        });
    };
    // Account and region are part of every index key's scope, and an event id is found
    // through the dedup map: such filters narrow the scopes instead of walking an index.
    let mut account_id = query.account_id.clone();
    let mut region = query.region.clone();
    let mut event_id: Option<&str> = None;
    let mut index_filters: Vec<(FilterField, String)> = Vec::with_capacity(query.filters.len());
    for (field, value) in &query.filters {
        let narrowed = match field {
            FilterField::RecipientAccountId => narrow(&mut account_id, value),
            FilterField::AwsRegion => narrow(&mut region, value),
            FilterField::EventId => match event_id {
                Some(existing) if existing != value => false,
                _ => {
                    event_id = Some(value);
                    true
                }
            },
            _ => {
                index_filters.push((*field, value.clone()));
                true
            }
        };
        if !narrowed {
            return Ok(LookupPage {
                events: Vec::new(),
                next: None,
            });
        }
    }

    let scopes: Vec<(Scope, ScopeId)> = {
        let all = match shared.scopes.read() {
            Ok(scopes) => scopes.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        all.into_iter()
            .filter(|(scope, _)| scope.lane == query.lane)
            .filter(|(scope, _)| {
                account_id
                    .as_ref()
                    .is_none_or(|account| *account == scope.account_id)
            })
            .filter(|(scope, _)| region.as_ref().is_none_or(|region| *region == scope.region))
            .collect()
    };
    if let Some(event_id) = event_id {
        return lookup_by_event_id(
            shared,
            &scopes,
            event_id,
            &index_filters,
            &bounds,
            limit,
            now_ms,
        );
    }
    let mut events = Vec::with_capacity(limit);
    let mut has_more = false;
    // Days newest first, from the day of the newest allowed position to the oldest's; each
    // step finds the next day that has any entry with one seek, so empty days cost nothing.
    let mut day = keys::day_key(keys::position_parts(&bounds.first).0);
    let last_day = keys::day_key(keys::position_parts(&bounds.last).0);
    'days: while let Some(found_day) = next_day_with_entries(shared, day)? {
        if found_day > last_day {
            break;
        }
        let mut scope_matches: Vec<ScopeMatches> = scopes
            .iter()
            .map(|(_, scope_id)| ScopeMatches::new(found_day, *scope_id, &index_filters, &bounds))
            .collect();
        let mut heads: Vec<Option<Position>> = Vec::with_capacity(scope_matches.len());
        for matches in &mut scope_matches {
            heads.push(matches.next_match(shared)?);
        }
        loop {
            let newest = heads
                .iter()
                .enumerate()
                .filter_map(|(slot, head)| head.map(|position| (position, slot)))
                .min();
            let Some((position, slot)) = newest else {
                break;
            };
            heads[slot] = scope_matches[slot].next_match(shared)?;
            let (_, seq) = keys::position_parts(&position);
            let Some(event) = shared.read_event(seq, now_ms)? else {
                // Expired but not yet removed: never returned.
                continue;
            };
            if !has_all_values(&event, &index_filters) {
                // Index keys hold value hashes: a collision lands here, never in a page.
                continue;
            }
            if events.len() == limit {
                has_more = true;
                break 'days;
            }
            events.push(event);
        }
        match found_day.checked_add(1) {
            Some(next) => day = next,
            None => break,
        }
    }
    let next = if has_more {
        events.last().map(|event: &StoredEvent| PageCursor {
            event_time_ms: event.record.event_time_ms,
            seq: event.seq,
        })
    } else {
        None
    };
    Ok(LookupPage { events, next })
}

/// The first day at or after `from` (in key order, so the same day or older) that holds
/// any index entry.
fn next_day_with_entries(
    shared: &Shared,
    from: keys::DayKey,
) -> Result<Option<keys::DayKey>, StoreError> {
    let Some(guard) = shared.index.range(from.to_be_bytes()..).next() else {
        return Ok(None);
    };
    let key = guard.key().map_err(|error| shared.engine_error(error))?;
    keys::day_key_from_index_key(&key)
        .map(Some)
        .ok_or_else(|| StoreError::Corrupt {
            what: "index key",
            location: shared.engine_dir().display().to_string(),
            detail: format!("key of {} bytes has no day", key.len()),
        })
}

/// Applies an equality filter to a scope dimension; false when it contradicts it.
fn narrow(dimension: &mut Option<String>, value: &str) -> bool {
    match dimension {
        Some(existing) => existing == value,
        None => {
            *dimension = Some(value.to_owned());
            true
        }
    }
}

/// Whether the event has every (field, value) of `filters` among its lookup attributes.
fn has_all_values(event: &StoredEvent, filters: &[(FilterField, String)]) -> bool {
    if filters.is_empty() {
        return true;
    }
    let values = event.record.attributes.index_values();
    filters
        .iter()
        .all(|(field, value)| values.contains(&(*field, value.as_str())))
}

/// EventId lookups: at most one event per account, found through the dedup map, then
/// checked against the rest of the query.
fn lookup_by_event_id(
    shared: &Shared,
    scopes: &[(Scope, ScopeId)],
    event_id: &str,
    other_filters: &[(FilterField, String)],
    bounds: &PositionBounds,
    limit: usize,
    now_ms: i64,
) -> Result<LookupPage, StoreError> {
    let accounts: std::collections::BTreeSet<&str> = scopes
        .iter()
        .map(|(scope, _)| scope.account_id.as_str())
        .collect();
    let mut found: Vec<(Position, StoredEvent)> = Vec::new();
    for account in accounts {
        let Some(seq_bytes) = shared
            .dedup
            .get(keys::dedup_key(account, event_id))
            .map_err(|error| shared.engine_error(error))?
        else {
            continue;
        };
        let Some(seq) = keys::seq_from_key(&seq_bytes) else {
            return Err(StoreError::Corrupt {
                what: "dedup entry",
                location: format!("account {account} event {event_id}"),
                detail: format!("expected 8 bytes, found {}", seq_bytes.len()),
            });
        };
        let Some(event) = shared.read_event(seq, now_ms)? else {
            continue;
        };
        let position = keys::position(event.record.event_time_ms, seq);
        let event_scope = crate::writer::scope_of(&event.record);
        let in_scope = scopes.iter().any(|(scope, _)| *scope == event_scope);
        if in_scope
            && has_all_values(&event, other_filters)
            && position >= bounds.first
            && position <= bounds.last
        {
            found.push((position, event));
        }
    }
    found.sort_by_key(|(position, _)| *position);
    let has_more = found.len() > limit;
    found.truncate(limit);
    let next = has_more
        .then(|| {
            found.last().map(|(_, event)| PageCursor {
                event_time_ms: event.record.event_time_ms,
                seq: event.seq,
            })
        })
        .flatten();
    Ok(LookupPage {
        events: found.into_iter().map(|(_, event)| event).collect(),
        next,
    })
}

/// The slice of newest-first positions a query may return: from the newest allowed
/// (end time, or just past the cursor) to the oldest allowed (start time), inclusive.
struct PositionBounds {
    first: Position,
    last: Position,
}

impl PositionBounds {
    fn of(query: &LookupQuery) -> Option<PositionBounds> {
        let mut first = keys::position(query.end_time_ms.unwrap_or(i64::MAX), u64::MAX);
        let last = keys::position(query.start_time_ms.unwrap_or(i64::MIN), 0);
        if let Some(cursor) = query.cursor {
            let after_cursor =
                keys::position_successor(&keys::position(cursor.event_time_ms, cursor.seq))?;
            first = first.max(after_cursor);
        }
        (first <= last).then_some(PositionBounds { first, last })
    }
}

/// The matches of all filters within one scope, in newest-first order.
struct ScopeMatches {
    cursors: Vec<FilterCursor>,
    next_candidate: Option<Position>,
    last: Position,
}

impl ScopeMatches {
    fn new(
        day: keys::DayKey,
        scope_id: ScopeId,
        filters: &[(opentrail_event::FilterField, String)],
        bounds: &PositionBounds,
    ) -> Self {
        let mut cursors: Vec<FilterCursor> = filters
            .iter()
            .map(|(field, value)| {
                FilterCursor::new(keys::index_prefix(
                    day,
                    keys::field_byte(*field),
                    scope_id,
                    value,
                ))
            })
            .collect();
        if cursors.is_empty() {
            cursors.push(FilterCursor::new(keys::index_prefix(
                day,
                keys::TIME_FIELD,
                scope_id,
                "",
            )));
        }
        ScopeMatches {
            cursors,
            next_candidate: Some(bounds.first),
            last: bounds.last,
        }
    }

    /// Leapfrog: move every cursor to the candidate or past it; when one lands past it,
    /// that becomes the new candidate; when all land on it, it is a match.
    fn next_match(&mut self, shared: &Shared) -> Result<Option<Position>, StoreError> {
        let Some(mut candidate) = self.next_candidate else {
            return Ok(None);
        };
        let mut agreeing = 0;
        let cursor_count = self.cursors.len();
        let mut turn = 0;
        while agreeing < cursor_count {
            if candidate > self.last {
                self.next_candidate = None;
                return Ok(None);
            }
            let Some(found) = self.cursors[turn].seek(shared, &candidate)? else {
                self.next_candidate = None;
                return Ok(None);
            };
            if found == candidate {
                agreeing += 1;
            } else {
                candidate = found;
                agreeing = 1;
            }
            turn = (turn + 1) % cursor_count;
        }
        if candidate > self.last {
            self.next_candidate = None;
            return Ok(None);
        }
        self.next_candidate = keys::position_successor(&candidate);
        Ok(Some(candidate))
    }
}

/// A forward cursor over one index run (one field, scope and value).
struct FilterCursor {
    prefix: [u8; INDEX_PREFIX_LEN],
    iter: Option<fjall::Iter>,
    current: Option<Position>,
    exhausted: bool,
}

impl FilterCursor {
    fn new(prefix: [u8; INDEX_PREFIX_LEN]) -> Self {
        FilterCursor {
            prefix,
            iter: None,
            current: None,
            exhausted: false,
        }
    }

    /// The first position in this run at or after `target`, or `None` past the end.
    fn seek(&mut self, shared: &Shared, target: &Position) -> Result<Option<Position>, StoreError> {
        if let Some(current) = self.current
            && current >= *target
        {
            return Ok(Some(current));
        }
        if self.exhausted {
            return Ok(None);
        }
        if self.iter.is_some() {
            for _ in 0..WALK_STEPS_BEFORE_SEEK {
                match self.step(shared)? {
                    None => return Ok(None),
                    Some(position) if position >= *target => return Ok(Some(position)),
                    Some(_) => {}
                }
            }
        }
        let start = keys::index_key(&self.prefix, target);
        let end = keys::index_key(&self.prefix, &[u8::MAX; POSITION_LEN]);
        self.iter = Some(shared.index.range(start..=end));
        self.step(shared)
    }

    fn step(&mut self, shared: &Shared) -> Result<Option<Position>, StoreError> {
        let Some(iter) = self.iter.as_mut() else {
            return Ok(None);
        };
        let Some(guard) = iter.next() else {
            self.exhausted = true;
            self.current = None;
            return Ok(None);
        };
        let key = guard.key().map_err(|error| shared.engine_error(error))?;
        let position: Position = key
            .get(self.prefix.len()..)
            .and_then(|suffix| suffix.try_into().ok())
            .ok_or_else(|| StoreError::Corrupt {
                what: "index key",
                location: shared.engine_dir().display().to_string(),
                detail: format!(
                    "key of {} bytes under a {}-byte prefix",
                    key.len(),
                    self.prefix.len()
                ),
            })?;
        self.current = Some(position);
        Ok(Some(position))
    }
}

//! The lookup API's types: any number of attribute filters (AND), a time range, scope and
//! paging, and what a page returns.

use opentrail_event::{EventRecord, FilterField};

/// Which events a query sees: Insights events live in their own lane and are returned
/// only when asked for, as in CloudTrail's event history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventLane {
    Standard = 0,
    Insight = 1,
}

/// The (account, region, lane) an event belongs to. Every query names its lane, and a
/// tenant's queries name its account, so a lookup never returns another tenant's events.
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

/// A place in newest-first order: later event time first, then higher seq first.
/// `Position` compares so that smaller means newer, as pages are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Position {
    pub event_time_ms: i64,
    pub seq: u64,
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.event_time_ms, other.seq).cmp(&(self.event_time_ms, self.seq))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The slice of newest-first positions a query may return: from `first` (the newest
/// allowed: end time, or just past the cursor) to `last` (the oldest allowed: start time).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PositionBounds {
    pub first: Position,
    pub last: Position,
}

impl PositionBounds {
    /// `None` when the query can match nothing.
    pub(crate) fn of(query: &LookupQuery) -> Option<PositionBounds> {
        let PositionBounds { mut first, last } = PositionBounds::between(
            query.start_time_ms.unwrap_or(i64::MIN),
            query.end_time_ms.unwrap_or(i64::MAX),
        );
        if let Some(cursor) = query.cursor {
            let after_cursor = Position {
                event_time_ms: cursor.event_time_ms,
                seq: cursor.seq,
            }
            .successor()?;
            first = first.max(after_cursor);
        }
        (first <= last).then_some(PositionBounds { first, last })
    }

    /// Every position with an event time in `from_ms..=through_ms`.
    pub(crate) fn between(from_ms: i64, through_ms: i64) -> PositionBounds {
        PositionBounds {
            first: Position {
                event_time_ms: through_ms,
                seq: u64::MAX,
            },
            last: Position {
                event_time_ms: from_ms,
                seq: 0,
            },
        }
    }

    pub(crate) fn contains(&self, position: Position) -> bool {
        self.first <= position && position <= self.last
    }
}

impl Position {
    /// The next position in newest-first order.
    pub(crate) fn successor(self) -> Option<Position> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(Position { seq, ..self }),
            None => Some(Position {
                event_time_ms: self.event_time_ms.checked_sub(1)?,
                seq: u64::MAX,
            }),
        }
    }
}

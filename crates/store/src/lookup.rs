//! Lookup evaluation over the sources of one instant: sealed segments and heads.
//!
//! A query becomes a set of terms that every match carries (its lane, its account and
//! region when given, and one per filter). Each source yields its newest candidates for
//! the page; sources are visited newest first and skipped once they cannot beat the page
//! found so far, so live data costs one or two sources whatever the store's size. The
//! candidates' records are then read and re-checked, since terms are hashes.
//!
//! An `EventId` filter goes through the id tables instead: at most one event per account.

use std::sync::Arc;

use opentrail_event::FilterField;

use crate::error::StoreError;
use crate::query::{LookupPage, LookupQuery, PageCursor, Position, PositionBounds, StoredEvent};
use crate::segment;
use crate::shared::{RecordPlace, Shared, Sources, read_head};
use crate::stored_record::parse_stored;
use crate::terms;

pub(crate) fn run(
    shared: &Shared,
    query: &LookupQuery,
    now_ms: i64,
) -> Result<LookupPage, StoreError> {
    let limit = query.limit.max(1);
    let empty = LookupPage {
        events: Vec::new(),
        next: None,
    };
    let Some(bounds) = PositionBounds::of(query) else {
        return Ok(empty);
    };
    let mut account_id = query.account_id.clone();
    let mut region = query.region.clone();
    let mut event_id: Option<&str> = None;
    let mut other_filters = Vec::with_capacity(query.filters.len());
    for (field, value) in &query.filters {
        let consistent = match field {
            FilterField::RecipientAccountId => narrow(&mut account_id, value),
            FilterField::AwsRegion => narrow(&mut region, value),
            FilterField::EventId => match event_id {
                Some(existing) => existing == value,
                None => {
                    event_id = Some(value);
                    true
                }
            },
            _ => {
                other_filters.push((*field, value.as_str()));
                true
            }
        };
        if !consistent {
            return Ok(empty);
        }
    }
    let check = Check {
        shared,
        query,
        account_id: account_id.as_deref(),
        region: region.as_deref(),
        filters: &other_filters,
        now_ms,
    };
    let sources = shared.sources();
    if let Some(event_id) = event_id {
        return lookup_by_event_id(shared, &sources, &check, event_id, &bounds, limit);
    }

    let mut required = vec![terms::lane_term(query.lane)];
    if let Some(account) = &account_id {
        required.push(terms::term(FilterField::RecipientAccountId, account));
    }
    if let Some(region) = &region {
        required.push(terms::term(FilterField::AwsRegion, region));
    }
    required.extend(
        other_filters
            .iter()
            .map(|(field, value)| terms::term(*field, value)),
    );
    required.sort_unstable();
    required.dedup();

    // One more than the page: whether a next page exists.
    let mut wanted = limit + 1;
    loop {
        let candidates = candidates(shared, &sources, &required, &bounds, wanted, now_ms);
        let exhausted = candidates.len() < wanted;
        let mut events = Vec::with_capacity(limit + 1);
        shared.prefetch(candidates.iter().map(|(_, place)| place));
        for (_, place) in &candidates {
            if let Some(event) = check.read(place)? {
                events.push(event);
                if events.len() > limit {
                    break;
                }
            }
        }
        // Candidates that failed the re-check (hash collisions) leave the page short:
        // ask for more, unless there are no more.
        if events.len() > limit || exhausted {
            let has_more = events.len() > limit;
            events.truncate(limit);
            let next = if has_more {
                events.last().map(|event| PageCursor {
                    event_time_ms: event.record.event_time_ms,
                    seq: event.seq,
                })
            } else {
                None
            };
            return Ok(LookupPage { events, next });
        }
        wanted = wanted.saturating_mul(2);
    }
}

/// The `wanted` newest candidates across every source, newest first.
fn candidates(
    shared: &Shared,
    sources: &Sources,
    required: &[u64],
    bounds: &PositionBounds,
    wanted: usize,
    now_ms: i64,
) -> Vec<(Position, RecordPlace)> {
    enum Source<'a> {
        Segment(&'a Arc<segment::Segment>),
        Head(&'a Arc<std::sync::RwLock<crate::head::Head>>),
    }
    // Each source's newest possible position, to visit the newest first and to stop once
    // the page is full of newer candidates than any remaining source can offer.
    let mut ordered: Vec<(Position, Source<'_>)> = Vec::new();
    for segment in &sources.segments {
        // Entirely newer than the newest allowed, or older than the oldest allowed.
        if segment.rows == 0
            || segment.min_time_ms > bounds.first.event_time_ms
            || segment.max_time_ms < bounds.last.event_time_ms
        {
            continue;
        }
        let newest = Position {
            event_time_ms: segment.max_time_ms,
            seq: segment.covers_last,
        };
        ordered.push((newest, Source::Segment(segment)));
    }
    for head in &sources.heads {
        let head_guard = read_head(head);
        if let (Some(time), Some(seq)) = (head_guard.max_time_ms(), head_guard.last_seq()) {
            ordered.push((
                Position {
                    event_time_ms: time,
                    seq,
                },
                Source::Head(head),
            ));
        }
    }
    ordered.sort_by_key(|(newest, _)| *newest);

    let mut found: Vec<(Position, RecordPlace)> = Vec::new();
    for (newest, source) in ordered {
        if found.len() >= wanted
            && found
                .last()
                .is_some_and(|(oldest_kept, _)| newest > *oldest_kept)
        {
            break;
        }
        match source {
            Source::Segment(segment) => {
                let visible = |_row: u32, position: Position| {
                    shared.is_visible(position.seq, segment.ingest_time_ms(position.seq), now_ms)
                };
                for (position, row) in
                    segment::top_matches(segment, required, bounds, wanted, &visible)
                {
                    found.push((position, RecordPlace::Segment(segment.clone(), row)));
                }
            }
            Source::Head(head_lock) => {
                let head = read_head(head_lock);
                let visible = |row: &crate::head::HeadRow| {
                    shared.is_visible(row.seq, row.ingest_time_ms, now_ms)
                };
                for (position, row) in head.top_matches(required, bounds, wanted, &visible) {
                    found.push((position, RecordPlace::Head(head_lock.clone(), row)));
                }
            }
        }
        found.sort_by_key(|(position, _)| *position);
        found.truncate(wanted);
    }
    found
}

/// Reads a candidate's record and checks it against the whole query.
struct Check<'a> {
    shared: &'a Shared,
    query: &'a LookupQuery,
    account_id: Option<&'a str>,
    region: Option<&'a str>,
    filters: &'a [(FilterField, &'a str)],
    now_ms: i64,
}

impl Check<'_> {
    fn read(&self, place: &RecordPlace) -> Result<Option<StoredEvent>, StoreError> {
        let (seq, ingest_time_ms) = match place {
            RecordPlace::Segment(segment, row) => {
                let seq = segment.seq(*row);
                (seq, segment.ingest_time_ms(seq))
            }
            RecordPlace::Head(head, row) => {
                let head = read_head(head);
                let row = head.rows[*row as usize];
                (row.seq, row.ingest_time_ms)
            }
        };
        let json = self.shared.record_json(place)?;
        let record = parse_stored(json.as_bytes(), &format_args!("seq {seq}"))?;
        let event = StoredEvent {
            seq,
            ingest_time_ms,
            record,
        };
        Ok(self.accepts(&event).then_some(event))
    }

    fn accepts(&self, event: &StoredEvent) -> bool {
        let record = &event.record;
        if !self
            .shared
            .is_visible(event.seq, event.ingest_time_ms, self.now_ms)
            || terms::lane_of(record) != self.query.lane
            || self
                .account_id
                .is_some_and(|account| account != record.account_id)
            || self.region.is_some_and(|region| region != record.region)
        {
            return false;
        }
        if self.filters.is_empty() {
            return true;
        }
        let values = record.attributes.index_values();
        self.filters.iter().all(|filter| values.contains(filter))
    }
}

/// EventId lookups: at most one event per account, through the id tables.
fn lookup_by_event_id(
    shared: &Shared,
    sources: &Sources,
    check: &Check<'_>,
    event_id: &str,
    bounds: &PositionBounds,
    limit: usize,
) -> Result<LookupPage, StoreError> {
    let accounts: std::collections::BTreeSet<String> = match check.account_id {
        Some(account) => [account.to_owned()].into(),
        None => shared
            .scopes(sources)
            .into_iter()
            .map(|scope| scope.account_id)
            .collect(),
    };
    let mut found: Vec<(Position, StoredEvent)> = Vec::new();
    for account in accounts {
        let Some(event) = shared.find_id(sources, &account, event_id)? else {
            continue;
        };
        let position = Position {
            event_time_ms: event.record.event_time_ms,
            seq: event.seq,
        };
        if bounds.contains(position) && check.accepts(&event) {
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

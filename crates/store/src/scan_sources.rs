//! What a scan of every stored event (SQL) needs to plan before it reads anything: each
//! source's seq and event-time range, the accounts it holds, and a sealed segment's
//! Parquet columns, already open so that a merge or retention removing the file cannot
//! pull it away from a query that is reading it.

use std::fs::File;
use std::sync::atomic::Ordering;

use crate::error::StoreError;
use crate::shared::{Shared, read_head};

/// The store's sources at one instant, each seq in exactly one of them.
#[derive(Debug)]
pub struct ScanSources {
    /// Oldest first (by seq).
    pub sources: Vec<ScanSource>,
    /// The highest seq published when the sources were taken: nothing after it is read.
    pub last_seq: u64,
    /// Seqs at or below this are removed by retention and must not be shown.
    pub expired_through_seq: u64,
    /// Events ingested before this (epoch ms) are past retention and must not be shown,
    /// even if their files are not removed yet.
    pub ingest_cutoff_ms: i64,
}

/// One sealed segment or unsealed head.
#[derive(Debug)]
pub struct ScanSource {
    pub first_seq: u64,
    pub last_seq: u64,
    /// Event times of its events (a bound, not necessarily reached).
    pub min_event_time_ms: i64,
    pub max_event_time_ms: i64,
    pub events: u64,
    /// Every `recipientAccountId` among its events.
    pub accounts: Vec<String>,
    /// Whether any of its events is an Insights record (lane `Insight`).
    pub insights: bool,
    /// A sealed segment's columns (`columns.rs`), open; `None` for a head, whose events
    /// are read as records.
    pub columns: Option<File>,
}

pub(crate) fn scan_sources(shared: &Shared, now_ms: i64) -> Result<ScanSources, StoreError> {
    // A merge or retention may remove a segment between taking the sources and opening
    // its columns; the sources taken again no longer hold it.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match try_scan_sources(shared, now_ms) {
            Err(StoreError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && attempts < 5 => {}
            other => return other,
        }
    }
}

fn try_scan_sources(shared: &Shared, now_ms: i64) -> Result<ScanSources, StoreError> {
    // last_seq first: every seq up to it is in the sources taken after.
    let last_seq = shared.last_seq.load(Ordering::Acquire);
    let sources = shared.sources();
    let mut found = Vec::with_capacity(sources.segments.len() + sources.heads.len());
    for segment in &sources.segments {
        let accounts = accounts_of(segment.scopes.iter());
        let path = crate::columns::path_for_segment(&segment.path);
        let columns = File::open(&path).map_err(|error| StoreError::io(&path, error))?;
        found.push(ScanSource {
            first_seq: segment.covers_first,
            last_seq: segment.covers_last,
            min_event_time_ms: segment.min_time_ms,
            max_event_time_ms: segment.max_time_ms,
            events: u64::from(segment.rows),
            accounts,
            insights: has_insights(segment.scopes.iter()),
            columns: Some(columns),
        });
    }
    for head in &sources.heads {
        let head = read_head(head);
        let (Some(head_last), Some(max_time)) = (head.last_seq(), head.max_time_ms()) else {
            continue;
        };
        found.push(ScanSource {
            first_seq: head.first_seq,
            last_seq: head_last.min(last_seq),
            min_event_time_ms: head.min_time_ms().unwrap_or(i64::MIN),
            max_event_time_ms: max_time,
            events: head.len() as u64,
            accounts: accounts_of(head.scopes.iter()),
            insights: has_insights(head.scopes.iter()),
            columns: None,
        });
    }
    found.retain(|source| source.first_seq <= last_seq);
    found.sort_by_key(|source| source.first_seq);
    Ok(ScanSources {
        sources: found,
        last_seq,
        expired_through_seq: shared.expired_through_seq.load(Ordering::Acquire),
        ingest_cutoff_ms: now_ms.saturating_sub(shared.retention_ms),
    })
}

fn has_insights<'a>(mut scopes: impl Iterator<Item = &'a crate::query::Scope>) -> bool {
    scopes.any(|scope| scope.lane == crate::query::EventLane::Insight)
}

fn accounts_of<'a>(scopes: impl Iterator<Item = &'a crate::query::Scope>) -> Vec<String> {
    let mut accounts: Vec<String> = scopes.map(|scope| scope.account_id.clone()).collect();
    accounts.sort();
    accounts.dedup();
    accounts
}

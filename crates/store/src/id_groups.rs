//! Dedup filters over runs of segments, so that checking a new event for a duplicate
//! probes a few filters instead of one per segment.
//!
//! Every new event is checked against the whole store (`Shared::find_id_hashed`). A
//! segment's split-block filter answers for its own events in one cache line, but there
//! is one per segment, so the check's cost grew with the store: a segment every ~310k
//! events in the HTTP benchmark, and the check a fifth of the writer's time at 10M.
//!
//! A group is one split-block filter over the ids of every event in a range of seqs that
//! only segments hold. The groups' ranges are disjoint and follow one another, so together
//! they cover one range of seqs. A check probes every group, and a segment's own filter
//! only when the segment is not wholly inside that range or when a group it overlaps
//! says "maybe" (about 1% of groups for a new id).
//!
//! The groups form a binary counter (the logarithmic method of Bentley and Saxe): every
//! [`BASE_SEGMENTS`] new segments become a group of one unit, and the last two groups are
//! merged while they hold as many units. So there are at most log2(segments /
//! `BASE_SEGMENTS`) + 1 groups, and each event is read into a group about that many times.
//! The sealer's thread does this work between seals.
//!
//! Groups are derived data kept in memory, 1.25 bytes per event as the segments' own
//! filters are: an opened store starts with none, and a thread of its own in the idle
//! CPU and I/O classes builds them from the segments' id tables in one pass
//! ([`build_at_once`]: at 10M events the sealer's binary counter took ~2 s of a core
//! right after a restart, beside the first lookups), the dedup check probing every
//! segment meanwhile; then the sealer keeps them up to date. A merge rebuilds
//! from the segments, which drops the ids retention removed; until then they only cost
//! false positives. Segments keyed by whole hashes (before `OTSEG005`) are never covered.
//!
//! **Invariant:** every event that a segment holds, and whose seq lies in a group's range,
//! has its id's key in that group's filter. It holds because a group's range only holds
//! seqs that segments held when it was built, and those seqs never leave segments but by
//! retention: seals add seqs above every segment's, merges and settles keep the same
//! events under the same seqs.

use std::ops::Range;
use std::sync::Arc;

use crate::bloom;
use crate::segment::{IdProbe, Segment};
use crate::shared::Shared;

/// Segments folded into a group of one unit.
const BASE_SEGMENTS: usize = 4;

/// One filter over the ids of every segment event in `first_seq..=last_seq`.
pub(crate) struct IdGroup {
    first_seq: u64,
    last_seq: u64,
    units: u32,
    filter: Vec<u8>,
}

impl IdGroup {
    /// `None` when a segment has no keys to give, or when `go_on` (asked before each
    /// segment) says to stop.
    fn build(
        segments: &[Arc<Segment>],
        seqs: (u64, u64),
        units: u32,
        go_on: &dyn Fn() -> bool,
    ) -> Option<IdGroup> {
        let (first_seq, last_seq) = seqs;
        let overlapping: Vec<&Arc<Segment>> = segments
            .iter()
            .filter(|segment| segment.covers_last >= first_seq && segment.covers_first <= last_seq)
            .collect();
        let events = overlapping
            .iter()
            .map(|segment| segment.rows as usize)
            .sum();
        // Every segment's table is checked before any is read.
        let tables = overlapping
            .iter()
            .map(|segment| segment.id_group_keys())
            .collect::<Option<Vec<_>>>()?;
        let mut filter = bloom::SplitBlockBuilder::for_items(events);
        for table in tables {
            if !go_on() {
                return None;
            }
            for key in table {
                filter.insert(key);
            }
        }
        Some(IdGroup {
            first_seq,
            last_seq,
            units,
            filter: filter.finish(),
        })
    }

    fn may_contain(&self, probe: &IdProbe) -> bool {
        bloom::may_contain_split_block(&self.filter, probe.fingerprint_key())
    }

    fn prefetch(&self, probe: &IdProbe) {
        bloom::prefetch_split_block(&self.filter, probe.fingerprint_key());
    }
}

/// The groups of one snapshot of the store's sources, oldest first.
#[derive(Clone, Default)]
pub(crate) struct IdGroups {
    groups: Vec<Arc<IdGroup>>,
    /// No group starts below this seq: the groups dropped to keep within the memory
    /// budget covered up to it, and are not built again.
    floor_seq: u64,
}

impl IdGroups {
    /// The seqs the groups cover together.
    fn covered(&self) -> Option<(u64, u64)> {
        Some((self.groups.first()?.first_seq, self.groups.last()?.last_seq))
    }

    /// The indexes of the `segments` (sorted by seq, as `Sources` keeps them) that lie
    /// wholly inside the groups' range.
    pub(crate) fn covered_segments(&self, segments: &[Arc<Segment>]) -> Range<usize> {
        let Some((first, last)) = self.covered() else {
            return 0..0;
        };
        let start = segments.partition_point(|segment| segment.covers_first < first);
        let end = segments.partition_point(|segment| segment.covers_last <= last);
        start..end.max(start)
    }

    pub(crate) fn prefetch(&self, probe: &IdProbe) {
        for group in &self.groups {
            group.prefetch(probe);
        }
    }

    /// For each group that may hold the id, newest first, the indexes of the covered
    /// segments (`covered`, from [`IdGroups::covered_segments`]) that overlap it.
    pub(crate) fn segments_to_probe<'a>(
        &'a self,
        probe: &'a IdProbe,
        segments: &'a [Arc<Segment>],
        covered: Range<usize>,
    ) -> impl Iterator<Item = Range<usize>> + 'a {
        self.groups
            .iter()
            .rev()
            .filter(|group| group.may_contain(probe))
            .map(move |group| {
                let inside = &segments[covered.clone()];
                let start = inside.partition_point(|segment| segment.covers_last < group.first_seq);
                let end = inside.partition_point(|segment| segment.covers_first <= group.last_seq);
                covered.start + start..covered.start + end.max(start)
            })
    }

    /// Bytes the groups' filters hold.
    pub(crate) fn filter_bytes(&self) -> u64 {
        self.groups
            .iter()
            .map(|group| group.filter.len() as u64)
            .sum()
    }
}

/// One change to the groups.
enum Step {
    /// The oldest group covers only seqs retention removed, or the groups hold more
    /// memory than their budget.
    DropOldest,
    /// The last two groups hold as many units: one group replaces them.
    MergeLastTwo,
    /// Segments after the groups' range become a group of one unit.
    Add { first_seq: u64, last_seq: u64 },
}

/// Folds new segments into groups and merges groups, as far as the segments allow. Called
/// on the sealer's thread, the only one that changes the groups once [`build_at_once`]
/// is done.
pub(crate) fn extend(shared: &Shared) {
    loop {
        let sources = shared.sources();
        let before = &sources.id_groups;
        let budget = shared.options.dedup_group_bytes_max;
        let Some(step) = next_step(before, &sources.segments, budget) else {
            return;
        };
        let mut after = IdGroups::clone(before);
        match step {
            Step::DropOldest => {
                let oldest = after.groups.remove(0);
                after.floor_seq = after.floor_seq.max(oldest.last_seq + 1);
            }
            Step::MergeLastTwo => {
                let newer = after.groups.pop().expect("two groups");
                let older = after.groups.pop().expect("two groups");
                let Some(merged) = IdGroup::build(
                    &sources.segments,
                    (older.first_seq, newer.last_seq),
                    older.units + newer.units,
                    &|| true,
                ) else {
                    return;
                };
                after.groups.push(Arc::new(merged));
            }
            Step::Add {
                first_seq,
                last_seq,
            } => {
                let Some(added) =
                    IdGroup::build(&sources.segments, (first_seq, last_seq), 1, &|| true)
                else {
                    return;
                };
                after.groups.push(Arc::new(added));
            }
        }
        let mut current = shared
            .sources
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !Arc::ptr_eq(&current.id_groups, before) {
            return;
        }
        current.id_groups = Arc::new(after);
    }
}

fn next_step(groups: &IdGroups, segments: &[Arc<Segment>], budget: u64) -> Option<Step> {
    if let Some(oldest) = groups.groups.first()
        && (groups.filter_bytes() > budget
            || segments
                .first()
                .is_none_or(|segment| oldest.last_seq < segment.covers_first))
    {
        return Some(Step::DropOldest);
    }
    if let [.., older, newer] = groups.groups.as_slice()
        && older.units == newer.units
    {
        return Some(Step::MergeLastTwo);
    }
    let (candidates, first_seq) = candidates(groups, segments);
    let batch = candidates.get(..BASE_SEGMENTS)?;
    Some(Step::Add {
        first_seq,
        last_seq: batch[BASE_SEGMENTS - 1].covers_last,
    })
}

/// The segments after the groups' range, which the next groups may cover, and the seq the
/// next group starts at.
fn candidates<'s>(groups: &IdGroups, segments: &'s [Arc<Segment>]) -> (&'s [Arc<Segment>], u64) {
    match groups.groups.last() {
        Some(last) => {
            let after = segments.partition_point(|segment| segment.covers_last <= last.last_seq);
            (&segments[after..], last.last_seq + 1)
        }
        // The first group starts at the floor, after the last segment that cannot be
        // covered.
        None => {
            let above_floor =
                segments.partition_point(|segment| segment.covers_last < groups.floor_seq);
            let after = segments[above_floor..]
                .iter()
                .rposition(|segment| segment.id_group_keys().is_none())
                .map_or(above_floor, |index| above_floor + index + 1);
            let first_seq = segments
                .get(after)
                .map_or(0, |segment| segment.covers_first)
                .max(groups.floor_seq);
            (&segments[after..], first_seq)
        }
    }
}

/// Whether a store just opened has segments enough for a group and no groups yet: then
/// [`build_at_once`] builds them, apart from the sealer.
pub(crate) fn wants_building_at_once(shared: &Shared) -> bool {
    let sources = shared.sources();
    sources.id_groups.groups.is_empty()
        && candidates(&sources.id_groups, &sources.segments).0.len() >= BASE_SEGMENTS
}

/// Builds the groups of a store that has none (one just opened) in the shape [`extend`]
/// would reach over the same segments, each event read once: `extend` would read every
/// event once per level of the binary counter (4 times at 10M events), and at normal
/// priority that work competed with the first lookups after a restart. `go_on` is asked
/// before each segment's ids; when it says to stop, nothing changes.
pub(crate) fn build_at_once(shared: &Shared, go_on: &dyn Fn() -> bool) {
    let sources = shared.sources();
    let before = &sources.id_groups;
    if !before.groups.is_empty() {
        return;
    }
    let (candidates, mut first_seq) = candidates(before, &sources.segments);
    // The binary counter over `units` units holds a group for each bit set, largest first.
    let units = candidates.len() / BASE_SEGMENTS;
    struct Planned {
        first_seq: u64,
        last_seq: u64,
        units: u32,
        filter_bytes: u64,
    }
    let mut planned: Vec<Planned> = Vec::new();
    let mut next = 0;
    for bit in (0..usize::BITS).rev() {
        let size = 1usize << bit;
        if units & size == 0 {
            continue;
        }
        let run = &candidates[next * BASE_SEGMENTS..(next + size) * BASE_SEGMENTS];
        let last_seq = run[run.len() - 1].covers_last;
        let events: usize = run.iter().map(|segment| segment.rows as usize).sum();
        planned.push(Planned {
            first_seq,
            last_seq,
            units: size as u32,
            filter_bytes: bloom::split_block_bytes(events) as u64,
        });
        first_seq = last_seq + 1;
        next += size;
    }
    // As `extend` keeps within the budget: the oldest groups go (here before they are
    // built), and none starts below them again.
    let mut floor_seq = before.floor_seq;
    let mut planned_bytes: u64 = planned.iter().map(|plan| plan.filter_bytes).sum();
    while planned_bytes > shared.options.dedup_group_bytes_max && !planned.is_empty() {
        let oldest = planned.remove(0);
        floor_seq = floor_seq.max(oldest.last_seq + 1);
        planned_bytes -= oldest.filter_bytes;
    }
    let started = std::time::Instant::now();
    let mut groups = Vec::with_capacity(planned.len());
    for plan in planned {
        let seqs = (plan.first_seq, plan.last_seq);
        let Some(group) = IdGroup::build(&sources.segments, seqs, plan.units, go_on) else {
            return;
        };
        groups.push(Arc::new(group));
    }
    let after = IdGroups { groups, floor_seq };
    let mut current = shared
        .sources
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if Arc::ptr_eq(&current.id_groups, before) {
        tracing::info!(
            groups = after.groups.len(),
            filter_bytes = after.filter_bytes(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "dedup groups built"
        );
        current.id_groups = Arc::new(after);
    }
}

#[cfg(test)]
mod tests {
    use opentrail_event::{EventRecord, IngestContext, parse_batch};

    use super::*;
    use crate::{AppendOutcome, Store, StoreOptions};

    const ACCOUNT: &str = "111122223333";

    fn records(ids: impl IntoIterator<Item = String>) -> Vec<EventRecord> {
        let json: String = ids
            .into_iter()
            .map(|id| {
                format!(
                    r#"{{"eventVersion":"1.08","eventID":"{id}","eventName":"GetObject","eventSource":"s3.amazonaws.com","eventTime":"2024-05-01T10:00:00Z","awsRegion":"us-east-1","recipientAccountId":"{ACCOUNT}"}}"#
                ) + "\n"
            })
            .collect();
        let context = IngestContext {
            account_id: ACCOUNT.into(),
            region: "us-east-1".into(),
        };
        let batch = parse_batch(json.as_bytes(), &context).expect("parses");
        assert!(batch.failures.is_empty());
        batch
            .records
            .into_iter()
            .map(|(_, record)| record)
            .collect()
    }

    fn id(segment: usize, event: usize) -> String {
        format!("segment-{segment}-event-{event}")
    }

    const EVENTS_PER_SEGMENT: usize = 200;

    /// Appends the events of the `segment`th segment [`store_of_segments`] makes.
    fn append_events_of(store: &Store, segment: usize) -> Vec<AppendOutcome> {
        store
            .append(records(
                (0..EVENTS_PER_SEGMENT).map(|event| id(segment, event)),
            ))
            .expect("append")
    }

    fn is_stored(outcome: &AppendOutcome) -> bool {
        matches!(outcome, AppendOutcome::Stored { .. })
    }

    /// `options` for a store that merges and settles only when told to.
    fn quiet(options: StoreOptions) -> StoreOptions {
        StoreOptions {
            merge_events_below: 0,
            settle: false,
            ..options
        }
    }

    /// Default options with `bytes` for the groups' memory budget.
    fn group_budget(bytes: u64) -> StoreOptions {
        StoreOptions {
            dedup_group_bytes_max: bytes,
            ..StoreOptions::default()
        }
    }

    /// A store of `segments` segments of [`EVENTS_PER_SEGMENT`] events each, which merges
    /// and settles only when told to.
    fn store_of_segments(dir: &std::path::Path, segments: usize) -> Store {
        store_of_segments_with(dir, segments, StoreOptions::default())
    }

    fn store_of_segments_with(
        dir: &std::path::Path,
        segments: usize,
        options: StoreOptions,
    ) -> Store {
        let store = Store::open(dir, quiet(options)).expect("store opens");
        for segment in 0..segments {
            assert!(append_events_of(&store, segment).iter().all(is_stored));
            store.flush_tables().expect("seal");
        }
        assert_eq!(store.stats().expect("stats").segments, segments as u64);
        store
    }

    /// [`extend`] until nothing is left to do. The sealer's own passes run beside the
    /// test's, and an `extend` that finds the groups changed under it stops, so one call
    /// may leave work for the sealer's next pass.
    fn extend_fully(store: &Store) {
        let budget = store.shared.options.dedup_group_bytes_max;
        for _ in 0..1_000 {
            extend(&store.shared);
            let sources = store.shared.sources();
            if next_step(&sources.id_groups, &sources.segments, budget).is_none() {
                return;
            }
        }
        panic!("the groups never stopped changing");
    }

    fn every_id_is_a_duplicate(store: &Store, segments: usize) {
        for segment in 0..segments {
            for (event, outcome) in append_events_of(store, segment).into_iter().enumerate() {
                // Seqs start at 1 and follow the appends.
                let seq = (segment * EVENTS_PER_SEGMENT + event + 1) as u64;
                assert_eq!(
                    outcome,
                    AppendOutcome::Duplicate { seq },
                    "event {event} of segment {segment}"
                );
            }
        }
    }

    #[test]
    fn groups_count_in_binary_and_cover_every_full_batch_of_segments() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store_of_segments(dir.path(), 13);
        extend_fully(&store);
        let sources = store.shared.sources();
        // 13 segments: 12 in groups of 8 and 4 (units 2 and 1), the newest probed alone.
        let units: Vec<u32> = sources
            .id_groups
            .groups
            .iter()
            .map(|group| group.units)
            .collect();
        assert_eq!(units, [2, 1]);
        assert_eq!(sources.id_groups.covered_segments(&sources.segments), 0..12);
        let groups = &sources.id_groups.groups;
        assert_eq!(
            groups[0].last_seq + 1,
            groups[1].first_seq,
            "groups follow one another"
        );
        assert_eq!(groups[0].first_seq, sources.segments[0].covers_first);
        assert_eq!(groups[1].last_seq, sources.segments[11].covers_last);
        let stats = store.stats().expect("stats");
        assert_eq!(stats.segments_outside_dedup_groups, 1);
        // 10 bits for each event covered, in whole 32-byte blocks: 1,600 and 800 events.
        let filter_bytes = |events: u64| (events * 10).div_ceil(256) * 32;
        assert_eq!(
            stats.dedup_group_bytes,
            filter_bytes(1_600) + filter_bytes(800)
        );
        every_id_is_a_duplicate(&store, 13);
    }

    #[test]
    fn a_group_points_at_the_segment_of_every_event_it_covers_and_at_few_for_strangers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store_of_segments(dir.path(), 8);
        extend_fully(&store);
        let sources = store.shared.sources();
        let covered = sources.id_groups.covered_segments(&sources.segments);
        assert_eq!(covered, 0..8);
        for segment in 0..8 {
            for event in 0..EVENTS_PER_SEGMENT {
                let probe = IdProbe::new(crate::terms::id_hash(ACCOUNT, &id(segment, event)));
                let probed: Vec<usize> = sources
                    .id_groups
                    .segments_to_probe(&probe, &sources.segments, covered.clone())
                    .flatten()
                    .collect();
                assert!(
                    probed.contains(&segment),
                    "event {event} of segment {segment}: probed {probed:?}"
                );
            }
        }
        let strangers = 10_000;
        let probed: usize = (0..strangers)
            .map(|n| {
                let probe = IdProbe::new(crate::terms::id_hash(ACCOUNT, &format!("stranger-{n}")));
                sources
                    .id_groups
                    .segments_to_probe(&probe, &sources.segments, covered.clone())
                    .map(|range| range.len())
                    .sum::<usize>()
            })
            .sum();
        // Without groups every stranger probes all 8 segments' filters (80,000 probes);
        // a group of 1,600 ids at 10 bits each says "maybe" to about 1%.
        assert!(
            probed < strangers * 8 / 20,
            "{probed} segment probes for {strangers} strangers"
        );
    }

    #[test]
    fn dedup_stays_exact_after_merges_that_cross_the_groups_and_after_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let store = store_of_segments(dir.path(), 6);
            extend_fully(&store);
            assert_eq!(store.shared.sources().id_groups.groups.len(), 1);
            // One segment now spans the group and the two segments after it.
            store.compact().expect("merge");
            assert_eq!(store.stats().expect("stats").segments, 1);
            let sources = store.shared.sources();
            assert_eq!(sources.id_groups.covered_segments(&sources.segments), 0..0);
            every_id_is_a_duplicate(&store, 6);
            extend_fully(&store);
            every_id_is_a_duplicate(&store, 6);
        }
        // Reopened, the store starts without groups and builds them again.
        let store = Store::open(dir.path(), StoreOptions::default()).expect("reopens");
        every_id_is_a_duplicate(&store, 6);
    }

    /// (first seq, last seq, units) of each group, and the floor.
    fn shape(store: &Store) -> (Vec<(u64, u64, u32)>, u64) {
        let groups = store.shared.sources().id_groups;
        let ranges = groups
            .groups
            .iter()
            .map(|group| (group.first_seq, group.last_seq, group.units))
            .collect();
        (ranges, groups.floor_seq)
    }

    /// The units of each group of a [`shape`].
    fn units_of(shape: &(Vec<(u64, u64, u32)>, u64)) -> Vec<u32> {
        shape.0.iter().map(|group| group.2).collect()
    }

    /// Reopens the store in `dir` and waits for its groups thread to finish.
    fn reopen_and_wait_for_groups(dir: &std::path::Path, options: StoreOptions) -> Store {
        let store = Store::open(dir, quiet(options)).expect("reopens");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while store
            .shared
            .groups_built_apart
            .load(std::sync::atomic::Ordering::Acquire)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the groups thread never finished"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        store
    }

    #[test]
    fn a_reopened_store_builds_its_groups_at_once_in_the_shape_the_sealer_reaches() {
        let dir = tempfile::tempdir().expect("temp dir");
        let grown = {
            let store = store_of_segments(dir.path(), 13);
            extend_fully(&store);
            shape(&store)
        };
        assert_eq!(units_of(&grown), [2, 1]);
        let store = reopen_and_wait_for_groups(dir.path(), StoreOptions::default());
        assert_eq!(shape(&store), grown);
        assert_eq!(
            store.stats().expect("stats").segments_outside_dedup_groups,
            1
        );
        every_id_is_a_duplicate(&store, 13);
        // The sealer takes over: the next segments join the groups as before.
        for segment in 13..16 {
            assert!(append_events_of(&store, segment).iter().all(is_stored));
            store.flush_tables().expect("seal");
        }
        extend_fully(&store);
        assert_eq!(units_of(&shape(&store)), [4]);
        every_id_is_a_duplicate(&store, 16);
    }

    #[test]
    fn built_at_once_the_groups_keep_within_their_budget_as_the_sealer_keeps_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        // As in the budget test below: room for one group of 8 segments, not for 12 in two.
        let options = group_budget(2_100);
        let grown = {
            let store = store_of_segments_with(dir.path(), 12, options.clone());
            extend_fully(&store);
            shape(&store)
        };
        let store = reopen_and_wait_for_groups(dir.path(), options);
        let sources = store.shared.sources();
        assert_eq!(shape(&store), grown);
        assert_eq!(shape(&store).1, sources.segments[7].covers_last + 1);
        assert_eq!(sources.id_groups.covered_segments(&sources.segments), 8..12);
        every_id_is_a_duplicate(&store, 12);
    }

    #[test]
    fn groups_of_expired_segments_are_dropped_and_their_ids_can_come_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store_of_segments(dir.path(), 4);
        extend_fully(&store);
        assert_eq!(store.shared.sources().id_groups.groups.len(), 1);
        let after_retention = crate::shared::now_ms()
            + i64::try_from(StoreOptions::default().retention.as_millis()).expect("fits")
            + 60_000;
        store.expire(after_retention).expect("expire");
        assert_eq!(store.stats().expect("stats").segments, 0);
        extend_fully(&store);
        assert_eq!(store.shared.sources().id_groups.groups.len(), 0);
        assert!(append_events_of(&store, 0).iter().all(is_stored));
    }

    #[test]
    fn past_their_memory_budget_the_oldest_group_goes_and_is_not_built_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Room for groups over 8 segments (1,600 events: 2,016 bytes) or two of 4, not
        // for 12 segments in two groups (3,040 bytes).
        let options = group_budget(2_100);
        let store = store_of_segments_with(dir.path(), 12, options);
        for _ in 0..2 {
            extend_fully(&store);
            let sources = store.shared.sources();
            let groups = &sources.id_groups.groups;
            assert_eq!(groups.len(), 1);
            assert_eq!(groups[0].first_seq, sources.segments[8].covers_first);
            assert_eq!(sources.id_groups.covered_segments(&sources.segments), 8..12);
        }
        let stats = store.stats().expect("stats");
        assert_eq!(stats.segments_outside_dedup_groups, 8);
        assert!(stats.dedup_group_bytes <= 2_100);
        every_id_is_a_duplicate(&store, 12);
    }

    #[test]
    fn a_budget_smaller_than_one_group_leaves_every_segment_to_its_own_filter() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Under one group of 4 segments (800 events: 1,024 bytes). Each group is built,
        // found over the budget and dropped, and the next starts above it: `extend` ends.
        let options = group_budget(1_000);
        let store = store_of_segments_with(dir.path(), 9, options);
        extend_fully(&store);
        let sources = store.shared.sources();
        assert!(sources.id_groups.groups.is_empty());
        assert_eq!(
            sources.id_groups.floor_seq,
            sources.segments[7].covers_last + 1
        );
        assert_eq!(
            store.stats().expect("stats").segments_outside_dedup_groups,
            9
        );
        every_id_is_a_duplicate(&store, 9);
    }
}

//! The sealer thread: turns frozen heads into segments, merges small segments, and
//! removes what retention dropped. Everything here rewrites files in the background;
//! nothing on the request path waits for it (unless unsealed heads outgrow their budget).
//! Beside it, the housekeeper thread frees the sources these steps took out of the store
//! once no lookup holds them (`retired.rs`), and sheds the segment pages lookups mapped
//! when the process's memory passes a limit.
//!
//! Every step is crash-safe by ordering: a new segment is written under a temporary name,
//! fsynced, renamed into place and made durable in its home (`location.rs`: uploaded,
//! when segments live in a bucket) before anything it replaces is removed; recovery
//! removes temporary files, journals a segment covers, and segments inside a merged one.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::blocks::{self, BlockEncoder, Dictionary, Effort, EncodedBlock};
use crate::error::StoreError;
use crate::head::Head;
use crate::segment::{self, InputRow, RecordSource, Segment, SegmentInput};
use crate::shared::{RotationSignal, Shared, read_head};

/// The sealer also looks for work this often, in case a signal was missed.
const POLL: Duration = Duration::from_secs(1);

/// The running sealer thread, the housekeeper, the settler (`settler.rs`) and the
/// thread building an opened store's dedup groups; dropping it stops them and waits for
/// them, so a store that was dropped has released its directory.
pub(crate) struct SealerHandle {
    signal: RotationSignal,
    thread: Option<std::thread::JoinHandle<()>>,
    housekeeper: Option<std::thread::JoinHandle<()>>,
    settler: Option<std::thread::JoinHandle<()>>,
    groups: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SealerHandle {
    fn drop(&mut self) {
        let (lock, condvar) = &*self.signal;
        *lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = STOP;
        condvar.notify_all();
        for thread in [
            self.thread.take(),
            self.housekeeper.take(),
            self.settler.take(),
            self.groups.take(),
        ]
        .into_iter()
        .flatten()
        {
            let _ = thread.join();
        }
    }
}

/// The signal's value that tells the sealer to stop.
const STOP: u64 = u64::MAX;

/// Whether the store is closing (its background threads must return).
pub(crate) fn is_stopping(signal: &RotationSignal) -> bool {
    let (lock, _) = &**signal;
    *lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) == STOP
}

/// Sleeps for `period`, or less if the store starts closing; `false` when it is.
pub(crate) fn sleep_unless_stopped(signal: &RotationSignal, period: Duration) -> bool {
    let (lock, condvar) = &**signal;
    let generation = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (generation, _) = condvar
        .wait_timeout_while(generation, period, |generation| *generation != STOP)
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *generation != STOP
}

pub(crate) fn start(
    shared: &Arc<Shared>,
    signal: RotationSignal,
) -> Result<SealerHandle, StoreError> {
    // Decided before the sealer starts, so it never extends groups being built apart.
    let groups_apart = crate::id_groups::wants_building_at_once(shared);
    shared
        .groups_built_apart
        .store(groups_apart, Ordering::Release);
    // A weak reference: the sealer must not keep a dropped store's directory locked.
    let weak = Arc::downgrade(shared);
    let thread_signal = signal.clone();
    let thread = std::thread::Builder::new()
        .name("store-sealer".into())
        .spawn(move || {
            let mut seen = 0u64;
            loop {
                {
                    let (lock, condvar) = &*thread_signal;
                    let generation = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    let (generation, _) = condvar
                        .wait_timeout_while(generation, POLL, |generation| *generation == seen)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    if *generation == STOP {
                        return;
                    }
                    seen = *generation;
                }
                let Some(shared) = weak.upgrade() else { return };
                let work = train_first_dictionary(&shared)
                    .and_then(|()| seal_pending(&shared))
                    .and_then(|()| merge_small(&shared));
                if !shared.groups_built_apart.load(Ordering::Acquire) {
                    crate::id_groups::extend(&shared);
                }
                let mut last_error = shared
                    .sealer_error
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                match work {
                    Err(error) => {
                        // Once per distinct error: a full disk fails every pass.
                        let message = error.to_string();
                        if last_error.as_deref() != Some(message.as_str()) {
                            tracing::error!(%error, "sealing failed; will retry");
                        }
                        *last_error = Some(message);
                    }
                    Ok(()) => {
                        if last_error.take().is_some() {
                            tracing::info!("sealing works again");
                        }
                    }
                }
            }
        })
        .map_err(|error| StoreError::io(std::path::Path::new("<sealer thread>"), error))?;
    let housekeeper = start_housekeeper(shared, signal.clone())?;
    let settler = crate::settler::start(shared, signal.clone())?;
    let groups = start_building_groups(shared, signal.clone(), groups_apart)?;
    Ok(SealerHandle {
        signal,
        thread: Some(thread),
        housekeeper: Some(housekeeper),
        settler,
        groups,
    })
}

/// The dedup groups of a store opened with segments, built once on a thread in the idle
/// CPU and I/O classes (`id_groups::build_at_once`) that also waits for lulls in lookups,
/// so the first lookups after a restart do not wait behind them; the sealer takes over
/// the groups when it is done.
fn start_building_groups(
    shared: &Arc<Shared>,
    signal: RotationSignal,
    groups_apart: bool,
) -> Result<Option<std::thread::JoinHandle<()>>, StoreError> {
    if !groups_apart {
        return Ok(None);
    }
    let weak = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("store-groups".into())
        .spawn(move || {
            crate::settler::lower_own_priority();
            if let Some(shared) = weak.upgrade() {
                // Each segment's ids wait for a lull in lookups (`quiet.rs`).
                let stopping = || is_stopping(&signal);
                crate::id_groups::build_at_once(&shared, &|| {
                    shared.lookups.go_on_after_a_lull(&stopping)
                });
                shared.groups_built_apart.store(false, Ordering::Release);
            }
        })
        .map(Some)
        .map_err(|error| StoreError::io(std::path::Path::new("<dedup groups thread>"), error))
}

/// How often the housekeeper frees retired sources and looks at the process's RSS:
/// lookups from 8 clients map ~300 MB a second across a 10M-event store, so this bounds
/// the overshoot.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_millis(100);

/// The housekeeper runs on a thread of its own, not the sealer's: a seal or merge keeps the
/// sealer busy for seconds, which is when lookups right after a bulk load map the most.
/// It frees the sources seals, merges, settles and retention took out (`retired.rs`), so
/// that no lookup does, and sheds mapped segment pages past the memory limit.
fn start_housekeeper(
    shared: &Arc<Shared>,
    signal: RotationSignal,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    // Where Linux says which pages a mapping holds; elsewhere nothing is shed.
    let pagemap = std::fs::File::open(PAGEMAP).ok();
    let weak = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("store-housekeep".into())
        .spawn(move || {
            while sleep_unless_stopped(&signal, HOUSEKEEPING_PERIOD) {
                let Some(shared) = weak.upgrade() else { return };
                shared.retired.free_unused();
                if let Some(pagemap) = &pagemap {
                    shed_mapped_pages(&shared, pagemap);
                }
            }
        })
        .map_err(|error| StoreError::io(std::path::Path::new("<housekeeper thread>"), error))
}

/// Sheds the segment pages lookups mapped when the process's resident memory passes
/// `rss_soft_limit_bytes`. Lookups fault in index pages (term tables, postings, id tables)
/// across every segment, and a mapped page counts in the process's RSS for as long as the
/// mapping lives: at 10M events that was 450 MB, and right after a bulk load it stacked on
/// the heads (peak 1,036 MiB). These pages are the one part of the store's memory that
/// grows with the store and can be dropped at no cost but a minor fault: they stay in the
/// page cache. So they are dropped only under pressure (a budget on them alone, checked as
/// often, put the lookups right after a load over 10 ms at p99): past the limit, the most
/// resident segments' pages go (`madvise(DONTNEED)`) until the excess and a margin of an
/// eighth of the limit are shed, with the per-segment counts read from
/// `/proc/self/pagemap`.
fn shed_mapped_pages(shared: &Shared, pagemap: &std::fs::File) {
    let Some(rss) = process_rss_bytes() else {
        return;
    };
    let limit = shared.options.rss_soft_limit_bytes;
    if rss <= limit {
        return;
    }
    let mut to_shed = (rss - limit).saturating_add(limit / 8);
    let mut resident: Vec<(u64, Arc<Segment>)> = shared
        .sources()
        .segments
        .into_iter()
        .map(|segment| (segment.mapped_resident_bytes(pagemap), segment))
        .filter(|(bytes, _)| *bytes > 0)
        .collect();
    resident.sort_unstable_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
    for (bytes, segment) in resident {
        if to_shed == 0 {
            break;
        }
        segment.release_pages();
        to_shed = to_shed.saturating_sub(bytes);
    }
}

/// The process's resident bytes (`VmRSS` of `/proc/self/status`).
fn process_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

const PAGEMAP: &str = "/proc/self/pagemap";

/// The bytes of `segments` mapped into the process now (see [`shed_mapped_pages`]).
pub(crate) fn mapped_segment_bytes(segments: &[Arc<Segment>]) -> u64 {
    let Ok(pagemap) = std::fs::File::open(PAGEMAP) else {
        return 0;
    };
    segments
        .iter()
        .map(|segment| segment.mapped_resident_bytes(&pagemap))
        .sum()
}

/// Until a first seal trains one, journal blocks are compressed without a dictionary
/// (about 1/5 of the JSON instead of 1/9): train one from the active head as soon as it
/// holds enough records, so a new store is compact from its first minutes.
fn train_first_dictionary(shared: &Shared) -> Result<(), StoreError> {
    if shared.dictionaries.current().is_some() {
        return Ok(());
    }
    let Some(active) = shared.sources().heads.last().cloned() else {
        return Ok(());
    };
    // The head's lock is held only while sampling: training takes a while, and the
    // writer needs the active head.
    let sample = {
        let head = read_head(&active);
        let mut source = HeadRecords {
            shared,
            head: &head,
            skip: 0,
            cache: blocks::BlockLru::default(),
        };
        segment::training_sample(&mut source, head.len())?
    };
    if let Some(dictionary) =
        blocks::Dictionary::train(sample.iter().map(|record| record.as_slice()))
    {
        shared.dictionaries.adopt(Arc::new(dictionary))?;
    }
    Ok(())
}

/// Seals every frozen head (all heads but the active one), oldest first.
pub(crate) fn seal_pending(shared: &Shared) -> Result<(), StoreError> {
    let _maintenance = shared
        .maintenance
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let frozen = {
            let sources = shared.sources();
            let count = sources.heads.len();
            if count < 2 {
                return Ok(());
            }
            sources.heads[0].clone()
        };
        seal_head(shared, &frozen)?;
    }
}

fn seal_head(shared: &Shared, head_lock: &Arc<RwLock<Head>>) -> Result<(), StoreError> {
    let _busy = shared.sealer_times.busy();
    let head = read_head(head_lock);
    let expired_through = shared.expired_through_seq.load(Ordering::Acquire);
    let skip = head.rows.partition_point(|row| row.seq <= expired_through);
    let segment = if skip == head.len() {
        None
    } else {
        let rows: Vec<InputRow> = head.rows[skip..]
            .iter()
            .map(|row| InputRow {
                seq: row.seq,
                event_time_ms: row.event_time_ms,
                ingest_time_ms: row.ingest_time_ms,
                id_hash: row.id_hash,
            })
            .collect();
        let terms = head
            .postings
            .iter()
            .filter_map(|(term, head_rows)| {
                let input_rows: Vec<u32> = head_rows
                    .iter()
                    .filter(|row| **row as usize >= skip)
                    .map(|row| row - skip as u32)
                    .collect();
                (!input_rows.is_empty()).then_some((*term, input_rows))
            })
            .collect();
        let covers_first = head.first_seq;
        let covers_last = head.rows[head.len() - 1].seq;
        let input = SegmentInput {
            covers_first,
            covers_last,
            rows,
            terms,
            scopes: head.scopes.clone(),
        };
        let path = shared
            .segments_dir
            .join(segment::file_name(covers_first, covers_last));
        // Rows retention skipped are in the head's columns: those are made again here.
        let made_columns = head.take_columns().filter(|_| skip == 0);
        // Only a seal with whole columns can keep the blocks.
        let kept = match made_columns {
            Some(_) => blocks_under_one_dictionary(shared, &head)?,
            None => None,
        };
        tracing::debug!(
            rows = input.rows.len(),
            skipped = skip,
            columns_whole = made_columns.is_some(),
            blocks_kept = kept.as_ref().map(|kept| kept.kept_as_they_were),
            blocks_recompressed = kept.as_ref().map(|kept| kept.recompressed),
            "sealing a head"
        );
        match (made_columns, kept) {
            (Some(columns), Some(kept)) => {
                let places: Vec<(u32, u32)> = head.rows[skip..]
                    .iter()
                    .map(|row| (row.block, row.index))
                    .collect();
                segment::build_keeping_blocks(
                    &path,
                    &input,
                    &kept.blocks,
                    &places,
                    columns,
                    kept.dictionary.as_deref(),
                )?;
            }
            (made_columns, _) => {
                let mut source = HeadRecords {
                    shared,
                    head: &head,
                    skip,
                    cache: blocks::BlockLru::default(),
                };
                let trained = segment::build(
                    &path,
                    &input,
                    &mut source,
                    made_columns,
                    shared.dictionaries.current(),
                    &shared.sealer_times,
                )?;
                // Not every seal's: adopting it now would mix two dictionaries in the head
                // that is filling, so its seal would rewrite too, and adopt, and so on.
                if let Some(dictionary) = trained {
                    shared.dictionaries.refresh(dictionary)?;
                }
            }
        }
        // Durable in its home before the journal goes; a failed upload keeps the journal
        // and the head, and the next pass seals them again.
        Some(publish_and_open(shared, &path)?)
    };
    let journal_path = head.journal_path.clone();
    let source_id = head.source_id;
    drop(head);
    {
        let mut sources = shared
            .sources
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sources.heads.retain(|other| !Arc::ptr_eq(other, head_lock));
        shared.retired.retire(head_lock.clone());
        if let Some(segment) = segment {
            let at = sources
                .segments
                .partition_point(|other| other.covers_first < segment.covers_first);
            sources.segments.insert(at, segment);
        }
    }
    shared.cache.forget_source(source_id);
    // The segment is durable: the journal is no longer needed (recovery would remove it).
    crate::files::remove_if_present(&journal_path)?;
    remove_unused_dictionaries(shared)
}

/// A head's blocks, all under one dictionary, for a seal that keeps them.
struct KeptBlocks {
    blocks: Vec<Arc<EncodedBlock>>,
    dictionary: Option<Arc<Dictionary>>,
    kept_as_they_were: usize,
    recompressed: usize,
}

/// The head's blocks under the dictionary of its newest block, the journal's current one.
/// Blocks compressed before that dictionary was adopted (a new store's first head, whose
/// dictionary is trained from it, and a head filling during the hourly refresh) are compressed again with it, block for block,
/// so every row keeps its place: far cheaper than a seal that rewrites every record.
/// `None` when that dictionary is unknown, or a block does not come out as one block; the
/// seal then rewrites.
fn blocks_under_one_dictionary(
    shared: &Shared,
    head: &Head,
) -> Result<Option<KeptBlocks>, StoreError> {
    let Some(newest) = head.blocks.last() else {
        return Ok(None);
    };
    let dictionary_id = newest.dictionary_id;
    let dictionary = if dictionary_id == blocks::NO_DICTIONARY {
        None
    } else {
        match shared.dictionaries.get(dictionary_id) {
            Some(dictionary) => Some(dictionary),
            None => return Ok(None),
        }
    };
    let mut kept = KeptBlocks {
        blocks: Vec::with_capacity(head.blocks.len()),
        dictionary,
        kept_as_they_were: 0,
        recompressed: 0,
    };
    for (index, block) in head.blocks.iter().enumerate() {
        if block.dictionary_id == dictionary_id {
            kept.blocks.push(block.clone());
            kept.kept_as_they_were += 1;
            continue;
        }
        let decoded = blocks::decode_block(
            &shared.dictionaries,
            block.dictionary_id,
            block.raw_len,
            &block.bytes,
            &|| format!("{} block {index}", head.journal_path.display()),
        )?;
        let mut encoder = BlockEncoder::new(kept.dictionary.as_deref(), Effort::Journal);
        encoder.push_block(&decoded)?;
        let mut recompressed = encoder.finish()?;
        match (recompressed.pop(), recompressed.is_empty()) {
            (Some(one), true) if one.record_count == block.record_count => {
                kept.blocks.push(Arc::new(one));
                kept.recompressed += 1;
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(kept))
}

/// Dictionaries under `dicts/` that neither the current one nor a live journal names are
/// no longer needed: segments carry their own.
fn remove_unused_dictionaries(shared: &Shared) -> Result<(), StoreError> {
    let mut needed: BTreeSet<u32> = shared
        .dictionaries
        .current()
        .map(|d| d.id)
        .into_iter()
        .collect();
    for head in &shared.sources().heads {
        needed.extend(
            read_head(head)
                .blocks
                .iter()
                .map(|block| block.dictionary_id),
        );
    }
    let dir = shared.dictionaries.dir();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let id = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .and_then(|stem| u32::from_str_radix(stem, 16).ok());
        if let Some(id) = id
            && !needed.contains(&id)
            && path.extension().is_some_and(|ext| ext == "zdict")
        {
            crate::files::remove_if_present(&path)?;
        }
    }
    Ok(())
}

/// Merges runs of adjacent small segments.
fn merge_small(shared: &Shared) -> Result<(), StoreError> {
    let _maintenance = shared
        .maintenance
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let small = shared.options.merge_events_below as u64;
    let limit = shared.options.segment_events_max as u64;
    loop {
        let segments = shared.sources().segments;
        let mut run: Vec<Arc<Segment>> = Vec::new();
        let mut run_rows = 0u64;
        let mut chosen = None;
        for segment in segments {
            if u64::from(segment.rows) < small
                && run_rows + u64::from(segment.rows) <= limit.max(small)
            {
                run_rows += u64::from(segment.rows);
                run.push(segment);
                continue;
            }
            if run.len() >= 2 {
                chosen = Some(std::mem::take(&mut run));
                break;
            }
            run.clear();
            run_rows = 0;
            if u64::from(segment.rows) < small {
                run_rows = u64::from(segment.rows);
                run.push(segment);
            }
        }
        let chosen = match chosen {
            Some(chosen) => chosen,
            None if run.len() >= 2 => run,
            None => return Ok(()),
        };
        merge(shared, &chosen)?;
    }
}

/// Merges every segment into as few as `segment_events_max` allows.
pub(crate) fn merge_all(shared: &Shared) -> Result<(), StoreError> {
    let _maintenance = shared
        .maintenance
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let limit = (shared.options.segment_events_max as u64).max(1);
    let segments = shared.sources().segments;
    let mut run: Vec<Arc<Segment>> = Vec::new();
    let mut run_rows = 0;
    let mut runs = Vec::new();
    for segment in segments {
        if !run.is_empty() && run_rows + u64::from(segment.rows) > limit {
            runs.push(std::mem::take(&mut run));
            run_rows = 0;
        }
        run_rows += u64::from(segment.rows);
        run.push(segment);
    }
    runs.push(run);
    for run in runs.into_iter().filter(|run| run.len() >= 2) {
        merge(shared, &run)?;
    }
    Ok(())
}

/// Writes one segment holding every visible event of `inputs` (adjacent, oldest first),
/// then swaps it in for them.
fn merge(shared: &Shared, inputs: &[Arc<Segment>]) -> Result<(), StoreError> {
    let _busy = shared.sealer_times.busy();
    let (Some(first), Some(last)) = (inputs.first(), inputs.last()) else {
        return Ok(());
    };
    let expired_through = shared.expired_through_seq.load(Ordering::Acquire);
    let mut rows = Vec::new();
    let mut origins: Vec<(usize, u32)> = Vec::new();
    let mut terms: crate::head::PrehashedMap<Vec<u32>> = Default::default();
    let mut scopes = BTreeSet::new();
    for (input_index, segment) in inputs.iter().enumerate() {
        scopes.extend(segment.scopes.iter().cloned());
        let mut input_row_of = vec![u32::MAX; segment.rows as usize];
        for row in 0..segment.rows {
            let position = segment.position(row);
            if position.seq <= expired_through {
                continue;
            }
            input_row_of[row as usize] = rows.len() as u32;
            rows.push(InputRow {
                seq: position.seq,
                event_time_ms: position.event_time_ms,
                ingest_time_ms: segment.ingest_time_ms(position.seq),
                id_hash: 0,
            });
            origins.push((input_index, row));
        }
        for (hash, row) in segment.id_entries() {
            if let Some(input_row) = input_row_of
                .get(row as usize)
                .filter(|row| **row != u32::MAX)
            {
                rows[*input_row as usize].id_hash = hash;
            }
        }
        for (term, mut cursor) in segment.all_postings() {
            let entry = terms.entry(term).or_default();
            while let Some(row) = cursor.current() {
                if let Some(input_row) = input_row_of
                    .get(row as usize)
                    .filter(|row| **row != u32::MAX)
                {
                    entry.push(*input_row);
                }
                cursor.advance();
            }
        }
    }
    terms.retain(|_, rows| !rows.is_empty());
    // The postings and id tables were read whole.
    for input in inputs {
        input.release_pages();
    }
    let covers_first = first.covers_first;
    let covers_last = last.covers_last;
    let merged = if rows.is_empty() {
        None
    } else {
        let path = shared
            .segments_dir
            .join(segment::file_name(covers_first, covers_last));
        let input = SegmentInput {
            covers_first,
            covers_last,
            rows,
            terms: terms.into_iter().collect(),
            scopes,
        };
        let mut source = SegmentRecords {
            shared,
            inputs,
            origins: &origins,
            cache: blocks::BlockLru::default(),
            read: 0,
        };
        tracing::debug!(
            inputs = inputs.len(),
            rows = input.rows.len(),
            "merging segments"
        );
        let fallback = first.dictionary(&shared.dictionaries);
        segment::build(
            &path,
            &input,
            &mut source,
            None,
            fallback,
            &shared.sealer_times,
        )?;
        // Durable in its home before any input is removed.
        Some(publish_and_open(shared, &path)?)
    };
    replace_segments(shared, inputs, merged)
}

/// Makes a freshly written segment durable in its home (uploaded, when that is a bucket),
/// then opens it for reading.
fn publish_and_open(shared: &Shared, path: &std::path::Path) -> Result<Arc<Segment>, StoreError> {
    shared.home.publish(path)?;
    Ok(Arc::new(Segment::open(
        path,
        shared.new_source_id(),
        &shared.dictionaries,
    )?))
}

/// Swaps `replacement` in for `removed` (readers see one or the other, never both),
/// then deletes the removed files.
pub(crate) fn replace_segments(
    shared: &Shared,
    removed: &[Arc<Segment>],
    replacement: Option<Arc<Segment>>,
) -> Result<(), StoreError> {
    {
        let mut sources = shared
            .sources
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sources
            .segments
            .retain(|segment| !removed.iter().any(|gone| Arc::ptr_eq(gone, segment)));
        if let Some(segment) = replacement.as_ref() {
            let at = sources
                .segments
                .partition_point(|other| other.covers_first < segment.covers_first);
            sources.segments.insert(at, segment.clone());
        }
    }
    for segment in removed {
        shared.cache.forget_source(segment.id);
        shared.retired.retire(segment.clone());
        // The merged file has the same name when it covers the same range as one input.
        if replacement
            .as_ref()
            .is_none_or(|kept| kept.path != segment.path)
        {
            // The segment first: a Parquet file without its segment is removed on open.
            crate::files::remove_if_present(&segment.path)?;
            crate::files::remove_if_present(&crate::columns::path_for_segment(&segment.path))?;
            // Not fatal: the next open removes what a replacement covers or retention
            // dropped.
            if let Err(error) = shared.home.remove(&segment.path) {
                tracing::warn!(%error, "could not remove a segment from its home; the next open will");
            }
        }
    }
    Ok(())
}

/// Removes whole segments and sealed heads at or below the retention floor.
pub(crate) fn remove_expired(shared: &Shared, through: u64) -> Result<(), StoreError> {
    let expired_segments: Vec<Arc<Segment>> = shared
        .sources()
        .segments
        .into_iter()
        .filter(|segment| segment.covers_last <= through)
        .collect();
    replace_segments(shared, &expired_segments, None)?;
    let sources = shared.sources();
    // Every head but the active one (the last).
    let frozen = &sources.heads[..sources.heads.len().saturating_sub(1)];
    for head_lock in frozen {
        let (expired, journal, source_id) = {
            let head = read_head(head_lock);
            (
                head.last_seq().is_none_or(|last| last <= through),
                head.journal_path.clone(),
                head.source_id,
            )
        };
        if expired {
            shared
                .sources
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .heads
                .retain(|other| !Arc::ptr_eq(other, head_lock));
            shared.retired.retire(head_lock.clone());
            shared.cache.forget_source(source_id);
            crate::files::remove_if_present(&journal)?;
        }
    }
    Ok(())
}

struct HeadRecords<'a> {
    shared: &'a Shared,
    head: &'a Head,
    skip: usize,
    cache: blocks::BlockLru,
}

impl RecordSource for HeadRecords<'_> {
    fn record(&mut self, input_row: usize) -> Result<Vec<u8>, StoreError> {
        let row = self.head.rows[input_row + self.skip];
        let block = &self.head.blocks[row.block as usize];
        let (shared, path) = (self.shared, &self.head.journal_path);
        self.cache.record((0, row.block), row.index, || {
            blocks::decode_block(
                &shared.dictionaries,
                block.dictionary_id,
                block.raw_len,
                &block.bytes,
                &|| path.display().to_string(),
            )
        })
    }
}

struct SegmentRecords<'a> {
    shared: &'a Shared,
    inputs: &'a [Arc<Segment>],
    origins: &'a [(usize, u32)],
    cache: blocks::BlockLru,
    read: usize,
}

/// A merge reading this many records lets go of the input pages it mapped in.
const MERGE_RELEASE_EVERY: usize = 65_536;

impl RecordSource for SegmentRecords<'_> {
    fn record(&mut self, input_row: usize) -> Result<Vec<u8>, StoreError> {
        self.read += 1;
        if self.read.is_multiple_of(MERGE_RELEASE_EVERY) {
            // Inputs are read whole: their pages would otherwise all count as this
            // process's memory until the merge ends.
            for input in self.inputs {
                input.release_pages();
            }
        }
        let (input, row) = self.origins[input_row];
        let segment = &self.inputs[input];
        let (block, index) = segment.block_of_row(row).ok_or_else(|| {
            StoreError::corrupt(
                "segment",
                segment.path.display().to_string(),
                format!("no block holds row {row}"),
            )
        })?;
        let dictionaries = &self.shared.dictionaries;
        self.cache.record((input, block), index, || {
            segment.decode_block(block, dictionaries)
        })
    }
}

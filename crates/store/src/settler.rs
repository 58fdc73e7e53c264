//! The settler thread: recompresses sealed segments at a higher zstd level
//! ([`crate::blocks::Effort::Settled`]) on CPU time nothing else wants.
//!
//! Seals keep the journal's blocks (zstd level 1, ids not packed) and merges compress at
//! level 3, because the sealer competes with ingest for the cores; the records are most
//! of a segment, and level 12 makes them much smaller. The settler rewrites one segment
//! at a time: kept journal blocks in row order with ids packed and a dictionary trained
//! on the segment (which the journal adopts if its own is missing or over an hour old),
//! other segments block for block. Rows keep their numbers either way, so postings, ids
//! and the Parquet columns are kept as they are. It gives way at once to a store that is
//! closing, and before each step to lookups (`quiet.rs`). The recompression runs on a
//! helper thread in Linux's `SCHED_IDLE` class (any other thread preempts it) and the
//! idle I/O class, fsync included; the check and the swap, which take locks that lookups
//! and the sealer need, run at normal priority. Like a merge, the rewrite is written
//! under a temporary name and fsynced, and is swapped in under the maintenance lock only
//! if the segment it replaces is still there (a merge or retention may have removed it
//! meanwhile); a crash leaves either the old file or the new one, both whole. The segment
//! it replaced is freed by the housekeeper (`retired.rs`), not by whichever lookup held
//! it last.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::error::StoreError;
use crate::segment::{self, Segment};
use crate::shared::{RotationSignal, Shared};

/// How often the settler looks for a segment to settle when it found none.
const POLL: Duration = Duration::from_secs(1);

pub(crate) fn start(
    shared: &Arc<Shared>,
    signal: RotationSignal,
) -> Result<Option<std::thread::JoinHandle<()>>, StoreError> {
    if !shared.options.settle {
        return Ok(None);
    }
    let weak = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("store-settler".into())
        .spawn(move || {
            let stopping = || crate::sealer::is_stopping(&signal);
            // Segments that failed to settle (damaged, say) are not retried until the
            // store reopens: `verify` and lookups report the damage.
            let mut failed: HashSet<u64> = HashSet::new();
            loop {
                let settled_one = match weak.upgrade() {
                    None => return,
                    Some(shared) => match next_to_settle(&shared, &failed) {
                        None => false,
                        Some(segment) => {
                            // Each step waits for a lull in lookups (`quiet.rs`).
                            let go_on = || shared.lookups.go_on_after_a_lull(&stopping);
                            if let Err(error) = settle(&shared, &segment, Priority::Idle, &go_on) {
                                tracing::warn!(%error, path = %segment.path.display(), "settling a segment failed; it is tried again when the store reopens");
                                failed.insert(segment.id);
                            }
                            true
                        }
                    },
                };
                if stopping() || (!settled_one && !crate::sealer::sleep_unless_stopped(&signal, POLL)) {
                    return;
                }
            }
        })
        .map(Some)
        .map_err(|error| StoreError::io(std::path::Path::new("<settler thread>"), error))
}

/// The oldest segment not yet settled, leaving out small ones a merge is about to rewrite.
fn next_to_settle(shared: &Shared, failed: &HashSet<u64>) -> Option<Arc<Segment>> {
    let segments = shared.sources().segments;
    let small = shared.options.merge_events_below as u64;
    let is_small = |index: usize| {
        segments
            .get(index)
            .is_some_and(|segment: &Arc<Segment>| u64::from(segment.rows) < small)
    };
    segments
        .iter()
        .enumerate()
        .find(|(index, segment)| {
            let awaits_merge = is_small(*index)
                && (is_small(index + 1) || index.checked_sub(1).is_some_and(is_small));
            !segment.is_settled() && !awaits_merge && !failed.contains(&segment.id)
        })
        .map(|(_, segment)| segment.clone())
}

/// Settles every segment not settled yet, small ones included, on the calling thread.
pub(crate) fn settle_all(shared: &Shared) -> Result<(), StoreError> {
    let mut tried = HashSet::new();
    loop {
        let next = shared
            .sources()
            .segments
            .into_iter()
            .find(|segment| !segment.is_settled() && !tried.contains(&segment.id));
        let Some(segment) = next else {
            return Ok(());
        };
        // Once each: a segment the background settler or a merge replaced meanwhile is
        // found again under its new id.
        tried.insert(segment.id);
        settle(shared, &segment, Priority::Caller, &|| true)?;
    }
}

/// Segments not settled yet (for metrics, and for the benchmark, which waits for none).
pub(crate) fn unsettled_segments(segments: &[Arc<Segment>]) -> u64 {
    segments
        .iter()
        .filter(|segment| !segment.is_settled())
        .count() as u64
}

/// Which thread recompresses a segment's blocks.
#[derive(Clone, Copy)]
enum Priority {
    /// A helper thread in `SCHED_IDLE` (the background settler).
    Idle,
    /// The calling thread (`Store::settle`).
    Caller,
}

/// Settles one segment; `go_on` is asked before each block, and `false` abandons the copy.
fn settle(
    shared: &Shared,
    segment: &Arc<Segment>,
    priority: Priority,
    go_on: &(dyn Fn() -> bool + Sync),
) -> Result<(), StoreError> {
    // A name of its own: `Store::settle` and the settler thread may settle the same
    // segment at once (the second to finish finds it replaced and drops its copy).
    let temporary = crate::files::temporary_sibling(
        &segment
            .path
            .with_extension(format!("settling-{}", shared.new_source_id())),
    );
    let recompress = || segment::write_settled(segment, &shared.dictionaries, &temporary, go_on);
    let copy = match priority {
        Priority::Caller => recompress(),
        Priority::Idle => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    lower_own_priority();
                    recompress()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }),
    };
    if !copy? {
        return Ok(());
    }
    // Opened (every section's CRC checked) before the maintenance lock is taken, so the
    // sealer never waits on a settle for more than a rename.
    let mut settled = match Segment::open(&temporary, shared.new_source_id(), &shared.dictionaries)
    {
        Ok(settled) => settled,
        Err(error) => {
            let _ = crate::files::remove_if_present(&temporary);
            return Err(error);
        }
    };
    // The mapping follows the file through the rename.
    settled.path = segment.path.clone();
    let _maintenance = shared
        .maintenance
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let still_there = shared
        .sources()
        .segments
        .iter()
        .any(|other| Arc::ptr_eq(other, segment));
    if !still_there {
        return crate::files::remove_if_present(&temporary);
    }
    std::fs::rename(&temporary, &segment.path)
        .map_err(|error| StoreError::io(&segment.path, error))?;
    crate::files::sync_parent(&segment.path)?;
    shared.home.publish(&segment.path)?;
    crate::sealer::replace_segments(
        shared,
        std::slice::from_ref(segment),
        Some(Arc::new(settled)),
    )
}

/// Puts this thread in Linux's `SCHED_IDLE` class (one thread: a tid names it), which
/// runs only on a core nothing else wants, and which any other thread preempts at once
/// on waking. At nice 19 instead, lookups right after a 3M-event load rose from 8.5–9.7
/// to 11.9 ms at p99 (every attribute slower): the scheduler lets a running thread of any
/// weight finish its slice first. Its I/O goes in the idle class too, served only when no
/// other request waits (by I/O schedulers that know priorities, such as mq-deadline and
/// BFQ); Linux gives a `SCHED_IDLE` thread that class anyway, and it is set here so it
/// is plain. It matters for the copy's fsync, which competes with the journal's group
/// commits: run at normal priority, it cost the 10M ingest about 8% (59.0k events/s
/// against 64–68k), and for reads from a cold page cache after a restart. Lowering
/// either needs no privilege (raising it back would, so the recompression has a thread
/// of its own). Elsewhere, a no-op.
pub(crate) fn lower_own_priority() {
    #[cfg(target_os = "linux")]
    {
        let parameters = libc::sched_param { sched_priority: 0 };
        // SAFETY: gettid has no preconditions; sched_setscheduler reads the parameters
        // it is given a valid pointer to.
        #[allow(unsafe_code)]
        let result =
            unsafe { libc::sched_setscheduler(libc::gettid(), libc::SCHED_IDLE, &parameters) };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not put a background thread in SCHED_IDLE");
        }
        // ioprio_set(IOPRIO_WHO_PROCESS, 0 = this thread, IOPRIO_CLASS_IDLE << 13): libc
        // has the syscall's number but no wrapper or constants.
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        const IOPRIO_CLASS_SHIFT: u32 = 13;
        // SAFETY: ioprio_set takes three integers and touches no memory of ours.
        #[allow(unsafe_code)]
        let result = unsafe {
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0 as libc::c_long,
                IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
            )
        };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not put a background thread's I/O in the idle class");
        }
    }
}

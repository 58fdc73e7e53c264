//! Background work that gives way to lookups: the settler's recompression and the dedup
//! groups built after a restart wait, before each unit of work, until no lookup has run
//! for a quiet period (`StoreOptions::lookup_quiet`, [`QUIET`] by default).
//!
//! Both already run in Linux's `SCHED_IDLE` class, which keeps them off a core a lookup
//! wants. That is not enough where the process's CPU time is capped from outside: a
//! container's CPU limit (cgroup quota, 100 ms periods) or a virtual machine whose vCPUs
//! and disk emulation share a host budget. There an idle-class thread spends the same
//! budget as any other, and once it is spent every thread stops until the next period,
//! the lookup included. On the 2-vCPU VM of the benchmarks, cold lookups right after a
//! restart stalled for 20–80 ms at 100 ms intervals while the settler and the groups
//! thread ran beside them (see BENCHMARKS.md, session of 8 Dec 2026).
//!
//! The wait is bounded ([`WAIT_MAX`]): under lookups that never pause, the work still
//! moves on, one unit per bound.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long after the last lookup background work waits, by default. Sequential lookups
/// from one client come a few milliseconds apart; a person paging, a second or so apart.
pub(crate) const QUIET: Duration = Duration::from_millis(250);
/// The longest one wait lasts, so that work under constant lookups is slowed, not stopped.
pub(crate) const WAIT_MAX: Duration = Duration::from_secs(1);
/// How often a waiting thread looks again.
const POLL: Duration = Duration::from_millis(20);

/// Lookups in flight and when the last one ended.
pub(crate) struct LookupActivity {
    /// Zero: work never waits.
    quiet_ms: u64,
    origin: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `origin` at which the last lookup ended (0: none yet).
    last_ended_ms: AtomicU64,
    /// Milliseconds background work has waited, in total.
    waited_ms: AtomicU64,
}

/// Marks a lookup in flight until dropped.
pub(crate) struct LookupInFlight<'a> {
    activity: &'a LookupActivity,
}

impl LookupActivity {
    pub(crate) fn new(quiet: Duration) -> LookupActivity {
        LookupActivity {
            quiet_ms: u64::try_from(quiet.as_millis()).unwrap_or(u64::MAX),
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ended_ms: AtomicU64::new(0),
            waited_ms: AtomicU64::new(0),
        }
    }

    /// Counts a lookup from now until the guard drops.
    pub(crate) fn begin(&self) -> LookupInFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        LookupInFlight { activity: self }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether no lookup runs and none ended within the quiet period.
    fn is_quiet(&self) -> bool {
        self.is_quiet_at(self.elapsed_ms())
    }

    fn is_quiet_at(&self, elapsed_ms: u64) -> bool {
        if self.quiet_ms == 0 {
            return true;
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return false;
        }
        let last = self.last_ended_ms.load(Ordering::Acquire);
        last == 0 || elapsed_ms.saturating_sub(last) >= self.quiet_ms
    }

    /// Sleeps until [`LookupActivity::is_quiet`], [`WAIT_MAX`] has passed, or `stopping`.
    fn wait_for_quiet(&self, stopping: &dyn Fn() -> bool) {
        let started = Instant::now();
        let mut waited = false;
        while !self.is_quiet() && !stopping() && started.elapsed() < WAIT_MAX {
            std::thread::sleep(POLL);
            waited = true;
        }
        if waited {
            let waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.waited_ms.fetch_add(waited_ms.max(1), Ordering::AcqRel);
        }
    }

    /// For a background step's `go_on`: waits for a lull, then whether to go on at all.
    pub(crate) fn go_on_after_a_lull(&self, stopping: &dyn Fn() -> bool) -> bool {
        self.wait_for_quiet(stopping);
        !stopping()
    }

    /// Milliseconds background work has waited for lulls since the store opened.
    pub(crate) fn waited_ms(&self) -> u64 {
        self.waited_ms.load(Ordering::Acquire)
    }
}

impl Drop for LookupInFlight<'_> {
    fn drop(&mut self) {
        // At least 1, so that "none yet" stays distinct from a lookup in the first ms.
        let now = self.activity.elapsed_ms().max(1);
        self.activity.last_ended_ms.store(now, Ordering::Release);
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn quiet_until_a_lookup_then_again_after_the_quiet_period() {
        let activity = LookupActivity::new(QUIET);
        assert!(activity.is_quiet(), "no lookup has run yet");
        let lookup = activity.begin();
        assert!(!activity.is_quiet(), "a lookup is in flight");
        drop(lookup);
        let ended = activity.last_ended_ms.load(Ordering::Acquire);
        let quiet_ms = QUIET.as_millis() as u64;
        assert!(!activity.is_quiet_at(ended), "a lookup just ended");
        assert!(!activity.is_quiet_at(ended + quiet_ms - 1));
        assert!(
            activity.is_quiet_at(ended + quiet_ms),
            "no lookup for QUIET"
        );
        let _another = activity.begin();
        assert!(
            !activity.is_quiet_at(ended + 10 * quiet_ms),
            "a lookup in flight however long after the last one ended"
        );
    }

    #[test]
    fn a_wait_ends_when_asked_to_stop_or_after_the_bound() {
        let activity = LookupActivity::new(QUIET);
        let _lookup = activity.begin();
        let asked = Cell::new(0);
        activity.wait_for_quiet(&|| {
            asked.set(asked.get() + 1);
            true
        });
        assert_eq!(asked.get(), 1, "stopping ends the wait at its first look");
        assert_eq!(activity.waited_ms(), 0, "a wait that ended at once");
        let started = Instant::now();
        activity.wait_for_quiet(&|| false);
        assert!(
            started.elapsed() >= WAIT_MAX,
            "a lookup that never ends delays the work by the bound"
        );
        assert!(activity.waited_ms() >= WAIT_MAX.as_millis() as u64);
    }

    #[test]
    fn a_quiet_period_of_zero_never_waits() {
        let activity = LookupActivity::new(Duration::ZERO);
        let _lookup = activity.begin();
        assert!(activity.is_quiet(), "lookups in flight do not count");
    }
}

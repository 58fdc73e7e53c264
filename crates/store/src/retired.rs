//! Sources that a seal, merge, settle or retention took out of the store (segments,
//! sealed heads) are freed here, on the housekeeping thread, never by a lookup.
//!
//! A lookup works on a snapshot of the sources ([`crate::shared::Shared::sources`]), so
//! the last reference to a replaced segment is often a lookup's, and whoever drops it
//! pays for unmapping the file and releasing its inode and page cache: 12–19 ms for a
//! segment of 300k events. While the settler swapped segments beside a loop of lookups
//! (3M events), each swap put exactly one lookup at 11–19 ms (p99 1.7 ms); with the
//! segments freed here, none.

use std::any::Any;
use std::sync::{Arc, Mutex};

/// Sources no longer in the store, kept until no snapshot holds them.
#[derive(Default)]
pub(crate) struct Retired {
    held: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
}

impl Retired {
    /// Keeps `source` until [`Retired::free_unused`] finds it held by nothing else.
    pub(crate) fn retire<T: Send + Sync + 'static>(&self, source: Arc<T>) {
        self.lock().push(source);
    }

    /// Frees the retired sources that no snapshot holds any more (on the calling thread,
    /// after the lock is released); how many are still held.
    pub(crate) fn free_unused(&self) -> usize {
        let unused: Vec<Arc<dyn Any + Send + Sync>> = {
            let mut held = self.lock();
            // Nothing can take a new reference to a retired source (it is in no
            // snapshot any more), so a count of 1 stays 1.
            let (unused, still_held) = held
                .drain(..)
                .partition(|source| Arc::strong_count(source) == 1);
            *held = still_held;
            unused
        };
        let still_held = self.lock().len();
        drop(unused);
        still_held
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<dyn Any + Send + Sync>>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct Source(Arc<AtomicBool>);

    impl Drop for Source {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_retired_source_is_freed_by_free_unused_not_by_the_last_snapshot() {
        let freed = Arc::new(AtomicBool::new(false));
        let retired = Retired::default();
        let source = Arc::new(Source(freed.clone()));
        let snapshot = source.clone();
        retired.retire(source);

        assert_eq!(retired.free_unused(), 1, "a snapshot still holds it");
        assert!(!freed.load(Ordering::SeqCst));

        // The lookup ends: its reference goes, but the source is not freed on its thread.
        drop(snapshot);
        assert!(!freed.load(Ordering::SeqCst));

        assert_eq!(retired.free_unused(), 0);
        assert!(freed.load(Ordering::SeqCst));
    }
}

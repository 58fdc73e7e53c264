//! Free space and the writer's health: writes are refused while the data directory's
//! filesystem has less free space than a reserve, so a full disk is met with a clear,
//! temporary refusal (and room left for seals and merges) instead of failed writes; they
//! resume by themselves once space is back.

use std::path::Path;
use std::sync::Mutex;

use crate::error::StoreError;

/// Without a configured reserve: this fraction of the filesystem…
const DEFAULT_RESERVE_FRACTION: f64 = 0.05;
/// …but never more than this.
const DEFAULT_RESERVE_BYTES_MAX: u64 = 512 * 1024 * 1024;

/// The filesystem holding a path, as `statvfs` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    /// Bytes an unprivileged writer may still use.
    pub available_bytes: u64,
    pub total_bytes: u64,
    /// Under this many available bytes, writes are refused.
    pub reserve_bytes: u64,
}

impl FreeSpace {
    /// Reads the filesystem of `path`; `reserve` is the configured reserve, `None` for the
    /// default (5% of the filesystem, at most 512 MiB).
    pub(crate) fn of(path: &Path, reserve: Option<u64>) -> Result<FreeSpace, StoreError> {
        let (available_bytes, total_bytes) =
            statvfs(path).map_err(|error| StoreError::io(path, error))?;
        let reserve_bytes = reserve.unwrap_or_else(|| {
            ((total_bytes as f64 * DEFAULT_RESERVE_FRACTION) as u64).min(DEFAULT_RESERVE_BYTES_MAX)
        });
        Ok(FreeSpace {
            available_bytes,
            total_bytes,
            reserve_bytes,
        })
    }

    pub fn below_reserve(&self) -> bool {
        self.available_bytes < self.reserve_bytes
    }

    /// The error writes get while free space is under the reserve; `path` is the
    /// directory whose filesystem this is.
    pub fn refusal(&self, path: &Path) -> Option<StoreError> {
        self.below_reserve().then(|| StoreError::DiskFull {
            path: path.to_path_buf(),
            available_mb: self.available_bytes / 1_000_000,
            reserve_mb: self.reserve_bytes.div_ceil(1_000_000),
        })
    }
}

/// (available, total) bytes of the filesystem holding `path`.
fn statvfs(path: &Path) -> std::io::Result<(u64, u64)> {
    let stats = rustix::fs::statvfs(path)?;
    Ok((
        stats.f_bavail.saturating_mul(stats.f_frsize),
        stats.f_blocks.saturating_mul(stats.f_frsize),
    ))
}

/// Whether the store accepts writes, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteStatus {
    Accepting,
    /// Writes are refused for now and resume by themselves (free space under the reserve,
    /// or the last journal write failed and was rolled back).
    Refusing {
        reason: String,
    },
    /// Writes are refused until the server is restarted: a journal write failed and could
    /// not be rolled back.
    Failed {
        reason: String,
    },
}

/// The writer's status, shared with readers of the store's health.
#[derive(Debug)]
pub(crate) struct WriteHealth {
    status: Mutex<WriteStatus>,
    refused_writes: std::sync::atomic::AtomicU64,
}

impl WriteHealth {
    pub(crate) fn new() -> WriteHealth {
        WriteHealth {
            status: Mutex::new(WriteStatus::Accepting),
            refused_writes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn status(&self) -> WriteStatus {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Sets the status, logging only when it changes (a full disk refuses many writes).
    pub(crate) fn set(&self, status: WriteStatus) {
        let mut current = self
            .status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *current == status {
            return;
        }
        match &status {
            WriteStatus::Accepting => tracing::info!("the store accepts writes again"),
            WriteStatus::Refusing { reason } => tracing::warn!(%reason, "refusing writes"),
            WriteStatus::Failed { reason } => {
                tracing::error!(%reason, "refusing writes until restarted")
            }
        }
        *current = status;
    }

    pub(crate) fn count_refused(&self, appends: usize) {
        self.refused_writes
            .fetch_add(appends as u64, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn refused_writes(&self) -> u64 {
        self.refused_writes
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

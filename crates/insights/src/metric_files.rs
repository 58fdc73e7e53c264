//! The per-minute counts behind ListInsightsMetricData, on disk: one NDJSON file per UTC
//! day (`metrics/YYYY-MM-DD.ndjson`), one line per series and hour, written when the hour
//! is complete (and again, with only the new counts, when late events arrive for it).
//! Reading sums the lines.
//!
//! Crash safety: the snapshot records every file's length; opening from a snapshot cuts
//! each file back to it and removes files it does not list, so counts written after the
//! snapshot (and written again by the replay) are never summed twice.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::analysis::HourCounts;
use crate::error::InsightsError;
use crate::model::SeriesKey;

/// How long metrics are kept: CloudTrail keeps its hourly points 90 days.
pub const METRICS_RETENTION_DAYS: i64 = 90;
const EXTENSION: &str = "ndjson";

pub struct MetricFiles {
    dir: PathBuf,
}

impl MetricFiles {
    /// The files in `dir`, for reading only: no I/O until a read.
    pub fn at(dir: &Path) -> MetricFiles {
        MetricFiles {
            dir: dir.to_path_buf(),
        }
    }

    pub fn open(dir: &Path) -> Result<MetricFiles, InsightsError> {
        opentrail_durable::create_directory_durably(dir)
            .map_err(|source| InsightsError::io(dir, source))?;
        Ok(MetricFiles {
            dir: dir.to_path_buf(),
        })
    }

    /// Appends the hours' counts, durably.
    pub fn append(&self, hours: &[HourCounts]) -> Result<(), InsightsError> {
        let mut by_day: BTreeMap<String, String> = BTreeMap::new();
        for counts in hours {
            let line = serde_json::to_string(counts).map_err(|error| InsightsError::Corrupt {
                path: self.dir.clone(),
                detail: error.to_string(),
            })?;
            let text = by_day.entry(day_file_name(counts.hour)).or_default();
            text.push_str(&line);
            text.push('\n');
        }
        for (name, text) in by_day {
            let path = self.dir.join(name);
            opentrail_durable::append_durably(&path, text.as_bytes())
                .map_err(|source| InsightsError::io(&path, source))?;
        }
        Ok(())
    }

    /// Every file's name and length, for the snapshot.
    pub fn lengths(&self) -> Result<BTreeMap<String, u64>, InsightsError> {
        let mut lengths = BTreeMap::new();
        for (name, path) in self.files()? {
            let length = std::fs::metadata(&path)
                .map_err(|source| InsightsError::io(&path, source))?
                .len();
            lengths.insert(name, length);
        }
        Ok(lengths)
    }

    /// Cuts the files back to a snapshot's lengths and removes the ones it does not list.
    pub fn restore(&self, lengths: &BTreeMap<String, u64>) -> Result<(), InsightsError> {
        for (name, path) in self.files()? {
            match lengths.get(&name) {
                Some(&length) => {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|source| InsightsError::io(&path, source))?;
                    let current = file
                        .metadata()
                        .map_err(|source| InsightsError::io(&path, source))?
                        .len();
                    if current > length {
                        file.set_len(length)
                            .and_then(|()| file.sync_all())
                            .map_err(|source| InsightsError::io(&path, source))?;
                    }
                }
                None => std::fs::remove_file(&path)
                    .map_err(|source| InsightsError::io(&path, source))?,
            }
        }
        Ok(())
    }

    /// Removes every file (Insights turned off everywhere).
    pub fn clear(&self) -> Result<(), InsightsError> {
        self.restore(&BTreeMap::new())
    }

    /// Removes days older than the retention, counted back from `newest_ms`.
    pub fn expire(&self, newest_ms: i64) -> Result<(), InsightsError> {
        let oldest_kept =
            day_file_name(newest_ms.div_euclid(3_600_000) - METRICS_RETENTION_DAYS * 24);
        for (name, path) in self.files()? {
            if name < oldest_kept {
                std::fs::remove_file(&path).map_err(|source| InsightsError::io(&path, source))?;
            }
        }
        Ok(())
    }

    /// The counts of `key` per epoch minute, for minutes in `[from_minute, to_minute)`.
    pub fn read(
        &self,
        key: &SeriesKey,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<HashMap<i64, u64>, InsightsError> {
        let mut counts = HashMap::new();
        let first = day_file_name(from_minute.div_euclid(60));
        let last = day_file_name((to_minute - 1).div_euclid(60));
        for (name, path) in self.files()? {
            if name < first || name > last {
                continue;
            }
            let file =
                std::fs::File::open(&path).map_err(|source| InsightsError::io(&path, source))?;
            for line in BufReader::new(file).lines() {
                let line = line.map_err(|source| InsightsError::io(&path, source))?;
                if line.is_empty() {
                    continue;
                }
                // A torn last line (a crash mid-append) is cut at the next open; skip it.
                let Ok(hour) = serde_json::from_str::<HourCounts>(&line) else {
                    continue;
                };
                if &hour.key != key {
                    continue;
                }
                for (offset, count) in hour.minutes {
                    let minute = hour.hour * 60 + i64::from(offset);
                    if (from_minute..to_minute).contains(&minute) {
                        *counts.entry(minute).or_default() += count;
                    }
                }
            }
        }
        Ok(counts)
    }

    fn files(&self) -> Result<Vec<(String, PathBuf)>, InsightsError> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|source| InsightsError::io(&self.dir, source))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| InsightsError::io(&self.dir, source))?;
            let path = entry.path();
            if path
                .extension()
                .is_some_and(|extension| extension == EXTENSION)
                && let Some(name) = path.file_name().and_then(|name| name.to_str())
            {
                files.push((name.to_owned(), path.clone()));
            }
        }
        files.sort();
        Ok(files)
    }
}

/// `YYYY-MM-DD.ndjson` of the UTC day holding epoch hour `hour`.
fn day_file_name(hour: i64) -> String {
    let day = jiff::Timestamp::from_second(hour.saturating_mul(3_600))
        .map(|time| time.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| "0000-00-00".to_owned());
    format!("{day}.{EXTENSION}")
}

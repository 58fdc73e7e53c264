//! The names of the store directory's files and folders.
//!
//! ```text
//! DATA/store/
//!   LOCK                    held for the store's lifetime (one process at a time)
//!   FORMAT                  "opentrail-store 2"
//!   meta.json               cursors, retention floor
//!   acknowledged_seq        the highest acknowledged seq (a loss detector, not a source)
//!   journal/<seq>.journal   one per unsealed head: the only synchronous write
//!   segments/<a>-<b>.seg    immutable sealed events, seqs a..=b (and <a>-<b>.parquet,
//!                           their columns); with a bucket as their home
//!                           (`location.rs`), a local cache of it
//!   dicts/<id>.zdict        zstd dictionaries the journal's blocks name
//!   engine/                 the previous format's storage engine (`migrate.rs`)
//! ```

pub(crate) const LOCK_FILE_NAME: &str = "LOCK";
pub(crate) const FORMAT_FILE_NAME: &str = "FORMAT";
pub(crate) const FORMAT_TEXT: &str = "opentrail-store 2\n";
pub(crate) const JOURNAL_DIR: &str = "journal";
pub(crate) const SEGMENTS_DIR: &str = "segments";
pub(crate) const DICTIONARIES_DIR: &str = "dicts";
/// The highest acknowledged sequence number, rewritten (without fsync) after every group
/// commit. If recovery ever finds fewer events than this, acknowledged events were lost to
/// damage, and opening fails loudly instead of serving a silently shorter log.
pub(crate) const HIGH_WATER_FILE_NAME: &str = "acknowledged_seq";
/// The folder of the previous format's storage engine.
pub(crate) const V1_ENGINE_DIR: &str = "engine";

//! The columnar archive: sealed ranges of the event log as Parquet files, partitioned by
//! event date, readable by DataFusion and DuckDB as they are.
//!
//! The [`Archiver`] is a consumer of the store's log with a durable cursor (consumer
//! name [`ARCHIVE_CONSUMER`]). It waits until enough events accumulated
//! ([`ArchiveOptions::seal_events_min`]) or the oldest waiting event is old enough
//! ([`ArchiveOptions::seal_age_max`]), then *seals* the next range of the log: one
//! Parquet file per event date in the range. SQL (a later issue) scans these files in
//! place; the store keeps events 90 days, the archive 7 years.
//!
//! An event is archived only once it was recorded [`ArchiveOptions::archive_after`] ago.
//! The server sets that to the store's retention less a day, so the archive is the cold
//! tier: an event lives in the store's segments while lookups can find it, and moves to
//! the archive's Parquet (131 bytes per event against the store's 280 in the quick
//! benchmark, but slow to read one row from) shortly before the store drops it. Zero archives every event within `seal_age_max`, as a second
//! copy beside the store.
//!
//! # Layout
//!
//! ```text
//! <dir>/event_date=2024-01-01/part-<first_seq:020>-<last_seq:020>.parquet
//! <dir>/_opentrail/state.json   the archiver's progress (not part of the table)
//! <dir>/_opentrail/LOCK         one archiver per directory
//! ```
//!
//! `event_date` is a hive-style partition column: the UTC date of `eventTime`, taken from
//! the directory name and not stored in the files. `first_seq`–`last_seq` is the sealed
//! log range; every file of one seal carries the same range in its name, and within a
//! partition the ranges of different files never overlap (a merged file is named after
//! the whole range of the files it replaced; see "Compaction"). Read the table with, for
//! example:
//!
//! ```sql
//! -- DuckDB (event_date comes out as DATE)
//! SELECT eventname, count(*) FROM read_parquet('<dir>/*/*.parquet', hive_partitioning = true)
//! WHERE event_date >= DATE '2024-01-01' GROUP BY 1;
//! -- DataFusion
//! CREATE EXTERNAL TABLE events STORED AS PARQUET PARTITIONED BY (event_date) LOCATION '<dir>/';
//! ```
//!
//! # Schema (version 1)
//!
//! Column names are the lower-cased record member names, as CloudTrail Lake names them.
//! Rows in a file are in log (`seq`) order. "JSON" columns are `Utf8` holding the
//! member's JSON text exactly as the producer wrote it (query with `json_extract` and
//! friends). Every file's footer also carries key-value metadata:
//! `opentrail.archive.schema_version`, `…seal_first_seq`, `…seal_last_seq`,
//! `…ingest_time_min_ms`, `…ingest_time_max_ms`.
//!
//! | column | Arrow type | source field |
//! |---|---|---|
//! | `eventversion` | Utf8 | `eventVersion` |
//! | `useridentity` | Utf8 (JSON) | `userIdentity` (the whole object) |
//! | `useridentity_type` | Utf8 | `userIdentity.type` |
//! | `useridentity_principalid` | Utf8 | `userIdentity.principalId` |
//! | `useridentity_arn` | Utf8 | `userIdentity.arn` |
//! | `useridentity_accountid` | Utf8 | `userIdentity.accountId` |
//! | `useridentity_accesskeyid` | Utf8 | `userIdentity.accessKeyId` |
//! | `useridentity_username` | Utf8 | `userIdentity.userName` |
//! | `useridentity_invokedby` | Utf8 | `userIdentity.invokedBy` |
//! | `eventtime` | Timestamp(Millisecond, "UTC"), not null | `eventTime` |
//! | `eventsource` | Utf8, not null | `eventSource` |
//! | `eventname` | Utf8, not null | `eventName` |
//! | `awsregion` | Utf8 | `awsRegion` |
//! | `sourceipaddress` | Utf8 | `sourceIPAddress` |
//! | `useragent` | Utf8 | `userAgent` |
//! | `errorcode` | Utf8 | `errorCode` |
//! | `errormessage` | Utf8 | `errorMessage` |
//! | `requestparameters` | Utf8 (JSON) | `requestParameters` |
//! | `responseelements` | Utf8 (JSON) | `responseElements` |
//! | `additionaleventdata` | Utf8 (JSON) | `additionalEventData` |
//! | `requestid` | Utf8 | `requestID` |
//! | `eventid` | Utf8 | `eventID` |
//! | `readonly` | Boolean | `readOnly` |
//! | `resources` | Utf8 (JSON) | `resources` |
//! | `eventtype` | Utf8 | `eventType` |
//! | `apiversion` | Utf8 | `apiVersion` |
//! | `managementevent` | Boolean | `managementEvent` |
//! | `recipientaccountid` | Utf8 | `recipientAccountId` |
//! | `sharedeventid` | Utf8 | `sharedEventID` |
//! | `vpcendpointid` | Utf8 | `vpcEndpointId` |
//! | `vpcendpointaccountid` | Utf8 | `vpcEndpointAccountId` |
//! | `serviceeventdetails` | Utf8 (JSON) | `serviceEventDetails` |
//! | `eventcategory` | Utf8 | `eventCategory` |
//! | `tlsdetails` | Utf8 (JSON) | `tlsDetails` |
//! | `sessioncredentialfromconsole` | Utf8 | `sessionCredentialFromConsole` (a string, as in Lake) |
//! | `addendum` | Utf8 (JSON) | `addendum` |
//! | `edgedevicedetails` | Utf8 (JSON) | `edgeDeviceDetails` |
//! | `insightdetails` | Utf8 (JSON) | `insightDetails` |
//! | `extra` | Utf8 (JSON object) | every member no column above holds exactly (see "Lossless") |
//! | `ingesttime` | Timestamp(Millisecond, "UTC"), not null | when OpenTrail recorded the event (log entry) |
//! | `seq` | UInt64, not null | the event's position in the log |
//! | `event_date` | partition (directory) | UTC date of `eventTime`, `YYYY-MM-DD` |
//!
//! The `useridentity_*` columns are convenience copies of string members of
//! `userIdentity` for filtering and grouping; `useridentity` stays the source of truth.
//! [`COLUMNS`] is the table in code; a test checks this table against it.
//!
//! # Lossless
//!
//! The archive outlives the store (7 years against 90 days), so it must give back every
//! record. Rather than a second copy of the raw record, the row *is* the record,
//! decomposed. (Measured on the corpus: the whole archive is 4.1 MB, and a raw-record
//! column alone compresses to 4.0 MB with the same codec, so keeping the raw record would
//! about double the archive; the JSON columns already hold most of a record's bytes.)
//!
//! - A member's column holds it when the member has the column's type: a JSON string for
//!   Utf8 columns, `true`/`false` for Boolean columns, any non-null value for JSON
//!   columns, an RFC 3339 string for `eventtime`.
//! - Everything else goes to `extra`, a JSON object of `"member": original JSON text`
//!   in record order: unknown members (future CloudTrail fields), `null` members (so a
//!   JSON `null` is a SQL NULL in its column, yet comes back), members of an unexpected
//!   type (`"apiVersion": 5`), the later occurrences of a repeated member name, and the
//!   original text whenever a column holds a converted value: an `eventTime` that is not
//!   in the canonical `2024-01-01T10:00:00Z` form (offsets, sub-millisecond digits), or a
//!   `readOnly`/`managementEvent` given as the string `"true"`/`"false"` (the column
//!   still holds the boolean). `extra` is NULL or a short, highly repetitive object
//!   (typically `{"requestParameters":null,"responseElements":null}`); dictionary-encoded
//!   it took 7 KB of the corpus archive's 4.1 MB.
//!
//! [`read_part_file`] rebuilds each record: columns first, then `extra` on top. The result
//! equals the stored record as a JSON value (member order is not kept; for a repeated
//! member the last occurrence wins, as in serde_json). The corpus test checks this for
//! every event of the real CloudTrail corpus.
//!
//! # Nothing lost, nothing duplicated
//!
//! A seal of the range `[first, last]` runs these steps, each durable before the next:
//!
//! 1. The plan: `state.json` records `sealing: [first, last]` (temp file, fsync, rename,
//!    fsync the directory).
//! 2. The part files, one per event date, each written to a temporary file, fsynced,
//!    renamed to `part-<first>-<last>.parquet`, and the directory fsynced.
//! 3. The new state: `archived_through_seq = last`, no plan.
//! 4. The store cursor `archive` = `last` (a durable store write).
//!
//! Invariants: (a) every part file's range is `≤ archived_through_seq` or equal to the
//! recorded plan, since the plan is durable before any file of it exists; (b) a part file
//! name is only ever bound to a complete, fsynced file (rename is atomic); (c) a file's
//! bytes are a pure function of its log entries and the options (no clock, no random
//! input), and the log entries of a range never change; (d) the store keeps every entry
//! after the archive cursor, and the cursor never passes `archived_through_seq`.
//!
//! A crash before 1 leaves nothing. A crash between 1 and 3 leaves the plan, and
//! [`Archiver::run_once`] first redoes exactly the planned range: it rereads the same
//! entries (kept by (d)) and writes the same files under the same names, replacing any
//! that were already there with identical content (c), so no row appears twice and none
//! is missing. Leftover temporary files are removed at [`Archiver::open`]. A crash
//! between 3 and 4 leaves the store cursor behind the state: [`Archiver::open`] saves it
//! again; until then it only keeps more of the log. So every log entry ends up in exactly
//! one part file.
//!
//! The archiver refuses to open if the store cursor is *ahead* of `state.json` (say, an
//! archive directory restored from an older copy), since continuing could skip events.
//!
//! # Retention
//!
//! [`Archiver::expire`] deletes a part file once every row in it was recorded by
//! OpenTrail longer ago than [`ArchiveOptions::retention`] (default 2557 days, CloudTrail
//! Lake's 7-year default), reading the newest ingest time from the file's footer. This is
//! the store's rule (ingest time, not event time), so historical logs imported for an
//! investigation stay queryable for the whole period even when they are years old. A
//! partition left empty is removed. Only partitions dated on or before the cutoff date are
//! opened (see [`Archiver::expire_at`]).
//!
//! # Compaction
//!
//! A quiet server seals small ranges often, so a day's partition collects many small
//! files. [`Archiver::compact`] merges contiguous runs of small files in partitions whose
//! event date ended at least [`ArchiveOptions::compact_after`] ago into one file named
//! after the run's whole range (at most [`ArchiveOptions::compacted_file_rows_max`] rows;
//! files at least half that size are left alone). The merged file is durable before the
//! inputs are deleted, and a file whose range lies inside another's in the same partition
//! is removed as superseded when the archiver opens, so a crash in between cannot leave a
//! row twice. Readers that list the directory during that instant may see both; the SQL
//! layer should list files through the archiver, not race it.
//!
//! # Encoding
//!
//! ZSTD (level 3) on every column: the 27,445 corpus events (41 MB of JSON) archive to
//! 4.1 MB (10×). CloudTrail text compresses far better with ZSTD than with Snappy (the
//! same rows rewritten by DuckDB: 3.6 MB ZSTD against 6.2 MB Snappy), decoding stays fast,
//! DuckDB and DataFusion read it, and DataFusion links the zstd library anyway, so the C
//! build is paid once. Dictionary encoding
//! is on for low-cardinality columns (names, sources, regions, accounts, user agents,
//! `extra`) and off for unique ones (`eventid`, `requestid`, the large JSON columns). JSON
//! columns carry no min/max statistics; `eventid` has a Bloom filter. Row groups hold at
//! most [`ArchiveOptions::row_group_rows_max`] rows, and a seal at most
//! [`ArchiveOptions::seal_events_max`] events and [`ArchiveOptions::seal_bytes_max`] bytes
//! of JSON, which bounds the archiver's memory.

mod archiver;
mod backup;
mod compaction;
mod error;
mod files;
mod schema;

pub use archiver::{
    ARCHIVE_CONSUMER, ArchiveExpireReport, ArchiveOptions, ArchiveReport, Archiver, ArchiverHandle,
    CrashPoint, SealReport,
};
pub use backup::backup_archive;
pub use compaction::CompactReport;
pub use error::ArchiveError;
pub use files::{
    ArchivedRecord, PartFile, PartFileSummary, Partition, is_superseded, list_all_part_files,
    list_part_files, list_partitions, part_file_name, partition_dir, read_part_file,
    read_part_file_in_batches, read_part_file_summary,
};
pub use schema::{
    COLUMNS, ColumnDef, ColumnSource, ColumnType, INGEST_TIME_MAX_KEY, INGEST_TIME_MIN_KEY,
    PARTITION_COLUMN, SCHEMA_VERSION, SCHEMA_VERSION_KEY, SEAL_FIRST_SEQ_KEY, SEAL_LAST_SEQ_KEY,
    arrow_schema, canonical_event_time,
};

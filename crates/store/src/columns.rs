//! The columnar part of a segment: a Parquet file beside it (`<first>-<last>.parquet`),
//! one row per stored event, with the fields SQL filters and groups on. DuckDB and
//! DataFusion read it as it is; the records themselves stay in the segment, so events
//! are kept once. A sealed head's rows are in seq order (its columns are encoded as the
//! writer adds rows: [`HeadColumns`]); a merge's, or a seal that had to parse its
//! records again, are in the segment's row order (newest first). Readers go by the
//! `seq` and `eventtime` columns, never by row position.
//!
//! Columns are the lower-case record field names CloudTrail Lake uses, flattened:
//! `eventid`, `eventname`, `eventsource`, `eventtime` (UTC milliseconds),
//! `recipientaccountid`, `awsregion`, `eventcategory`, `readonly`, `username`,
//! `useridentityarn`, `accesskeyid`, `sourceipaddress`, `errorcode`, `invokedby`, plus
//! the store's own `seq` and `ingesttime`.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use opentrail_event::EventRecord;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::StoreError;
use crate::files;

pub(crate) const PARQUET_EXTENSION: &str = "parquet";

pub(crate) fn schema() -> Arc<Schema> {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let time = |name: &str| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        )
    };
    Arc::new(Schema::new(vec![
        text("eventid", false),
        text("eventname", false),
        text("eventsource", false),
        time("eventtime"),
        text("recipientaccountid", false),
        text("awsregion", false),
        text("eventcategory", false),
        Field::new("readonly", DataType::Boolean, true),
        text("username", true),
        text("useridentityarn", true),
        text("accesskeyid", true),
        text("sourceipaddress", true),
        text("errorcode", true),
        text("invokedby", true),
        Field::new("seq", DataType::UInt64, false),
        time("ingesttime"),
    ]))
}

/// Rows buffered in builders before they are handed to the Parquet writer, which keeps
/// only encoded columns: memory stays bounded whatever the segment's size. A head's
/// columns are encoded on the store's writer thread, so a batch is also how long it
/// pauses group commits.
const BATCH_ROWS: usize = 16_384;
/// Rows per row group: a segment's few groups each cover a stretch of seqs and times.
const ROW_GROUP_ROWS: usize = 262_144;

struct Builders {
    event_id: StringBuilder,
    event_name: StringBuilder,
    event_source: StringBuilder,
    event_time: TimestampMillisecondBuilder,
    account: StringBuilder,
    region: StringBuilder,
    category: StringBuilder,
    read_only: BooleanBuilder,
    username: StringBuilder,
    user_arn: StringBuilder,
    access_key_id: StringBuilder,
    source_ip: StringBuilder,
    error_code: StringBuilder,
    invoked_by: StringBuilder,
    seq: UInt64Builder,
    ingest_time: TimestampMillisecondBuilder,
}

impl Builders {
    fn new() -> Builders {
        Builders {
            event_id: StringBuilder::new(),
            event_name: StringBuilder::new(),
            event_source: StringBuilder::new(),
            event_time: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            account: StringBuilder::new(),
            region: StringBuilder::new(),
            category: StringBuilder::new(),
            read_only: BooleanBuilder::new(),
            username: StringBuilder::new(),
            user_arn: StringBuilder::new(),
            access_key_id: StringBuilder::new(),
            source_ip: StringBuilder::new(),
            error_code: StringBuilder::new(),
            invoked_by: StringBuilder::new(),
            seq: UInt64Builder::new(),
            ingest_time: TimestampMillisecondBuilder::new().with_timezone("UTC"),
        }
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.event_name.finish()),
            Arc::new(self.event_source.finish()),
            Arc::new(self.event_time.finish()),
            Arc::new(self.account.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.read_only.finish()),
            Arc::new(self.username.finish()),
            Arc::new(self.user_arn.finish()),
            Arc::new(self.access_key_id.finish()),
            Arc::new(self.source_ip.finish()),
            Arc::new(self.error_code.finish()),
            Arc::new(self.invoked_by.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.ingest_time.finish()),
        ]
    }
}

/// Encodes rows into Parquet column chunks as they come, into any sink.
struct ColumnsEncoder<W: std::io::Write + Send> {
    writer: ArrowWriter<W>,
    builders: Builders,
    rows: usize,
    /// Text held in the builders, for [`ColumnsEncoder::memory_bytes`].
    buffered_text_bytes: usize,
}

impl<W: std::io::Write + Send> ColumnsEncoder<W> {
    fn new(sink: W) -> Result<ColumnsEncoder<W>, parquet::errors::ParquetError> {
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
        // A dictionary of unique values only costs (the writer builds one, then falls
        // back); seqs and times change little from row to row, which delta encoding keeps
        // in a bit or two. Event ids are random text of one length: with their lengths
        // apart (delta-length) and at level 1, which spends nothing on matches they do not
        // have, they take 18.5 bytes each instead of 20.5 (a 10M store's files). Every
        // Parquet reader (DuckDB, DataFusion) decodes all three encodings.
        let unique_columns = [
            ("eventid", Encoding::DELTA_LENGTH_BYTE_ARRAY),
            ("seq", Encoding::DELTA_BINARY_PACKED),
            ("eventtime", Encoding::DELTA_BINARY_PACKED),
        ];
        for (column, encoding) in unique_columns {
            properties = properties
                .set_column_dictionary_enabled(ColumnPath::from(column), false)
                .set_column_encoding(ColumnPath::from(column), encoding);
        }
        properties = properties.set_column_compression(
            ColumnPath::from("eventid"),
            Compression::ZSTD(ZstdLevel::try_new(1)?),
        );
        Ok(ColumnsEncoder {
            writer: ArrowWriter::try_new(sink, schema(), Some(properties.build()))?,
            builders: Builders::new(),
            rows: 0,
            buffered_text_bytes: 0,
        })
    }

    fn push(
        &mut self,
        seq: u64,
        ingest_time_ms: i64,
        record: &EventRecord,
    ) -> Result<(), parquet::errors::ParquetError> {
        let attributes = &record.attributes;
        let builders = &mut self.builders;
        let texts = [
            (&mut builders.event_id, Some(record.event_id.as_str())),
            (
                &mut builders.event_name,
                Some(attributes.event_name.as_str()),
            ),
            (
                &mut builders.event_source,
                Some(attributes.event_source.as_str()),
            ),
            (&mut builders.account, Some(record.account_id.as_str())),
            (&mut builders.region, Some(record.region.as_str())),
            (
                &mut builders.category,
                Some(attributes.event_category.as_str()),
            ),
            (&mut builders.username, attributes.username.as_deref()),
            (&mut builders.user_arn, attributes.user_arn.as_deref()),
            (
                &mut builders.access_key_id,
                attributes.access_key_id.as_deref(),
            ),
            (
                &mut builders.source_ip,
                attributes.source_ip_address.as_deref(),
            ),
            (&mut builders.error_code, attributes.error_code.as_deref()),
            (&mut builders.invoked_by, attributes.invoked_by.as_deref()),
        ];
        for (builder, value) in texts {
            self.buffered_text_bytes += value.map_or(0, str::len);
            builder.append_option(value);
        }
        builders.event_time.append_value(record.event_time_ms);
        builders.read_only.append_option(attributes.read_only);
        builders.seq.append_value(seq);
        builders.ingest_time.append_value(ingest_time_ms);
        self.rows += 1;
        if self.rows.is_multiple_of(BATCH_ROWS) {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<(), parquet::errors::ParquetError> {
        let batch = RecordBatch::try_new(schema(), self.builders.finish())?;
        self.buffered_text_bytes = 0;
        if batch.num_rows() > 0 {
            self.writer.write(&batch)?;
        }
        Ok(())
    }

    /// Memory held: encoded pages, the row group in progress and the builders' rows.
    fn memory_bytes(&self) -> usize {
        self.writer.bytes_written()
            + self.writer.memory_size()
            + self.buffered_text_bytes
            + (self.rows % BATCH_ROWS) * BUFFERED_ROW_FIXED_BYTES
    }

    fn finish(mut self) -> Result<W, parquet::errors::ParquetError> {
        self.flush_batch()?;
        self.writer.into_inner()
    }
}

/// A buffered row's offsets, times, seq and flags in the builders.
const BUFFERED_ROW_FIXED_BYTES: usize = 12 * 4 + 3 * 8 + 1;

/// Writes a segment's columns row by row, in its row order, to a file beside it.
pub(crate) struct ColumnsWriter {
    path: std::path::PathBuf,
    temporary: std::path::PathBuf,
    encoder: ColumnsEncoder<std::fs::File>,
}

impl ColumnsWriter {
    pub(crate) fn create(path: &Path) -> Result<ColumnsWriter, StoreError> {
        let temporary = files::temporary_sibling(path);
        let file =
            std::fs::File::create(&temporary).map_err(|error| StoreError::io(&temporary, error))?;
        Ok(ColumnsWriter {
            encoder: ColumnsEncoder::new(file).map_err(|error| parquet_error(path, &error))?,
            path: path.to_path_buf(),
            temporary,
        })
    }

    pub(crate) fn push(
        &mut self,
        seq: u64,
        ingest_time_ms: i64,
        record: &EventRecord,
    ) -> Result<(), StoreError> {
        self.encoder
            .push(seq, ingest_time_ms, record)
            .map_err(|error| parquet_error(&self.path, &error))
    }

    /// Finishes the file, fsyncs it and renames it into place.
    pub(crate) fn finish(self) -> Result<(), StoreError> {
        let file = self
            .encoder
            .finish()
            .map_err(|error| parquet_error(&self.path, &error))?;
        file.sync_all()
            .map_err(|error| StoreError::io(&self.temporary, error))?;
        drop(file);
        std::fs::rename(&self.temporary, &self.path)
            .map_err(|error| StoreError::io(&self.path, error))?;
        files::sync_parent(&self.path)
    }
}

/// A head's columns, encoded in memory as its rows arrive (in seq order), so that a seal
/// writes them out instead of parsing every record again: the parse was a third of a
/// seal's own thread (BENCHMARKS.md, 6 Dec 2026). About 45 bytes a row.
pub(crate) struct HeadColumns {
    encoder: ColumnsEncoder<Vec<u8>>,
}

impl HeadColumns {
    pub(crate) fn new() -> Result<HeadColumns, parquet::errors::ParquetError> {
        Ok(HeadColumns {
            encoder: ColumnsEncoder::new(Vec::new())?,
        })
    }

    pub(crate) fn push(
        &mut self,
        seq: u64,
        ingest_time_ms: i64,
        record: &EventRecord,
    ) -> Result<(), parquet::errors::ParquetError> {
        self.encoder.push(seq, ingest_time_ms, record)
    }

    pub(crate) fn rows(&self) -> usize {
        self.encoder.rows
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.encoder.memory_bytes()
    }

    /// Writes the columns to `path` (through a temporary file, fsynced and renamed).
    pub(crate) fn write_file(self, path: &Path) -> Result<(), StoreError> {
        let bytes = self
            .encoder
            .finish()
            .map_err(|error| parquet_error(path, &error))?;
        files::write_atomically(path, &bytes)
    }
}

fn parquet_error(path: &Path, error: &dyn std::fmt::Display) -> StoreError {
    StoreError::io(path, std::io::Error::other(error.to_string()))
}

/// The Parquet file that goes with a segment file.
pub(crate) fn path_for_segment(segment_path: &Path) -> std::path::PathBuf {
    segment_path.with_extension(PARQUET_EXTENSION)
}

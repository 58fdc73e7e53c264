//! The columnar part of a segment: a Parquet file beside it (`<first>-<last>.parquet`),
//! one row per stored event in the segment's row order, with the fields SQL filters and
//! groups on. DuckDB and DataFusion read it as it is; the records themselves stay in the
//! segment, so events are kept once.
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

fn schema() -> Arc<Schema> {
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
/// only encoded columns: memory stays bounded whatever the segment's size.
const BATCH_ROWS: usize = 65_536;

/// Writes the columns row by row, in the segment's row order.
pub(crate) struct ColumnsWriter {
    path: std::path::PathBuf,
    temporary: std::path::PathBuf,
    writer: ArrowWriter<std::fs::File>,
    builders: Builders,
    rows: usize,
}

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

impl ColumnsWriter {
    pub(crate) fn create(path: &Path) -> Result<ColumnsWriter, StoreError> {
        let temporary = files::temporary_sibling(path);
        let file =
            std::fs::File::create(&temporary).map_err(|error| StoreError::io(&temporary, error))?;
        let level = ZstdLevel::try_new(3).map_err(|error| parquet_error(path, &error))?;
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(4 * BATCH_ROWS));
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
        let random_text_level =
            ZstdLevel::try_new(1).map_err(|error| parquet_error(path, &error))?;
        properties = properties.set_column_compression(
            ColumnPath::from("eventid"),
            Compression::ZSTD(random_text_level),
        );
        let properties = properties.build();
        let writer = ArrowWriter::try_new(file, schema(), Some(properties))
            .map_err(|error| parquet_error(path, &error))?;
        Ok(ColumnsWriter {
            path: path.to_path_buf(),
            temporary,
            writer,
            builders: Builders::new(),
            rows: 0,
        })
    }

    pub(crate) fn push(
        &mut self,
        seq: u64,
        ingest_time_ms: i64,
        record: &EventRecord,
    ) -> Result<(), StoreError> {
        let attributes = &record.attributes;
        let builders = &mut self.builders;
        builders.event_id.append_value(&record.event_id);
        builders.event_name.append_value(&attributes.event_name);
        builders.event_source.append_value(&attributes.event_source);
        builders.event_time.append_value(record.event_time_ms);
        builders.account.append_value(&record.account_id);
        builders.region.append_value(&record.region);
        builders.category.append_value(&attributes.event_category);
        builders.read_only.append_option(attributes.read_only);
        builders
            .username
            .append_option(attributes.username.as_deref());
        builders
            .user_arn
            .append_option(attributes.user_arn.as_deref());
        builders
            .access_key_id
            .append_option(attributes.access_key_id.as_deref());
        builders
            .source_ip
            .append_option(attributes.source_ip_address.as_deref());
        builders
            .error_code
            .append_option(attributes.error_code.as_deref());
        builders
            .invoked_by
            .append_option(attributes.invoked_by.as_deref());
        builders.seq.append_value(seq);
        builders.ingest_time.append_value(ingest_time_ms);
        self.rows += 1;
        if self.rows.is_multiple_of(BATCH_ROWS) {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<(), StoreError> {
        let batch = RecordBatch::try_new(schema(), self.builders.finish())
            .map_err(|error| parquet_error(&self.path, &error))?;
        if batch.num_rows() > 0 {
            self.writer
                .write(&batch)
                .map_err(|error| parquet_error(&self.path, &error))?;
        }
        Ok(())
    }

    /// Finishes the file, fsyncs it and renames it into place.
    pub(crate) fn finish(mut self) -> Result<(), StoreError> {
        self.flush_batch()?;
        let file = self
            .writer
            .into_inner()
            .map_err(|error| parquet_error(&self.path, &error))?;
        file.sync_all()
            .map_err(|error| StoreError::io(&self.temporary, error))?;
        drop(file);
        std::fs::rename(&self.temporary, &self.path)
            .map_err(|error| StoreError::io(&self.path, error))?;
        files::sync_parent(&self.path)
    }
}

fn parquet_error(path: &Path, error: &dyn std::fmt::Display) -> StoreError {
    StoreError::io(path, std::io::Error::other(error.to_string()))
}

/// The Parquet file that goes with a segment file.
pub(crate) fn path_for_segment(segment_path: &Path) -> std::path::PathBuf {
    segment_path.with_extension(PARQUET_EXTENSION)
}

//! A bounded, durable queue of records on local disk, so that an OpenTrail outage neither
//! blocks the calls being recorded nor loses their records.
//!
//! Records are lines appended to numbered segment files (`00000000000000000001.ndjson`,
//! rolled at [`SEGMENT_BYTES`]); each append is fsynced before it counts. A `cursor` file
//! (written atomically) says up to where the server has acknowledged; segments wholly
//! before it are deleted. After a crash the queue reopens at the cursor, and a torn last
//! line (a write cut by the crash) is cut off: it was never acknowledged to anyone.
//!
//! Records sent again after a crash between sending and saving the cursor are answered
//! as duplicates by the server, which deduplicates by `eventID`: none is stored twice.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

/// Size at which the writer starts a new segment file.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
const CURSOR_FILE: &str = "cursor";
const SEGMENT_SUFFIX: &str = ".ndjson";

/// A place in the queue: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// One segment file and its length (fixed once the writer has moved past it).
#[derive(Debug, Clone, Copy)]
struct SegmentFile {
    number: u64,
    length: u64,
}

/// The queue's files. Not thread-safe by itself: callers hold it behind one lock, so a
/// reader never sees a line before its fsync.
#[derive(Debug)]
pub struct DiskQueue {
    directory: PathBuf,
    /// Segments present, ascending, never empty; the last is being written.
    segments: Vec<SegmentFile>,
    writer: File,
    acknowledged: Position,
}

impl DiskQueue {
    /// Opens (or creates) the queue in `directory`, recovering from a crash.
    pub fn open(directory: &Path) -> io::Result<DiskQueue> {
        fs::create_dir_all(directory)?;
        let mut numbers: Vec<u64> = fs::read_dir(directory)?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                name.strip_suffix(SEGMENT_SUFFIX)?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        let acknowledged = read_cursor(directory)?.unwrap_or(Position {
            segment: numbers.first().copied().unwrap_or(1),
            offset: 0,
        });
        for number in numbers
            .iter()
            .filter(|number| **number < acknowledged.segment)
        {
            opentrail_durable::remove_if_present(&segment_path(directory, *number))?;
        }
        numbers.retain(|number| *number >= acknowledged.segment);
        let last = numbers.pop().unwrap_or(acknowledged.segment);
        let mut segments = Vec::with_capacity(numbers.len() + 1);
        for number in numbers {
            let length = fs::metadata(segment_path(directory, number))?.len();
            segments.push(SegmentFile { number, length });
        }
        let mut writer = open_for_append(&segment_path(directory, last))?;
        let length = cut_torn_line(&mut writer)?;
        segments.push(SegmentFile {
            number: last,
            length,
        });
        opentrail_durable::sync_directory(directory)?;
        Ok(DiskQueue {
            directory: directory.to_owned(),
            segments,
            writer,
            acknowledged,
        })
    }

    /// Bytes appended and not yet acknowledged by the server.
    pub fn pending_bytes(&self) -> u64 {
        let total: u64 = self.segments.iter().map(|segment| segment.length).sum();
        total.saturating_sub(self.acknowledged.offset)
    }

    /// The length of the segment being written.
    fn writer_length(&self) -> u64 {
        self.segments.last().map_or(0, |segment| segment.length)
    }

    /// Appends records (one line each) and fsyncs them.
    pub fn append(&mut self, records: &[String]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if self.writer_length() >= SEGMENT_BYTES {
            let next = self.segments.last().map_or(1, |segment| segment.number + 1);
            self.writer = open_for_append(&segment_path(&self.directory, next))?;
            self.segments.push(SegmentFile {
                number: next,
                length: 0,
            });
            opentrail_durable::sync_directory(&self.directory)?;
        }
        let mut block = Vec::with_capacity(records.iter().map(|record| record.len() + 1).sum());
        for record in records {
            // A record is one line: JSON text has no raw newline except between tokens.
            block.extend(
                record
                    .bytes()
                    .filter(|byte| *byte != b'\n' && *byte != b'\r'),
            );
            block.push(b'\n');
        }
        let durable_length = self.writer_length();
        if let Err(error) = self
            .writer
            .write_all(&block)
            .and_then(|()| self.writer.sync_data())
        {
            // Cut back what may have been half written, so the next append starts on a line.
            let _ = self.writer.set_len(durable_length);
            return Err(error);
        }
        if let Some(last) = self.segments.last_mut() {
            last.length += block.len() as u64;
        }
        Ok(())
    }

    /// Up to `max_records` lines (and about `max_bytes`) after the acknowledged position,
    /// and the position after the last one returned.
    pub fn read_batch(
        &self,
        max_records: usize,
        max_bytes: usize,
    ) -> io::Result<(Vec<String>, Position)> {
        let mut records = Vec::new();
        let mut position = self.acknowledged;
        let mut bytes_read = 0usize;
        let start_segment = position.segment;
        for segment in self
            .segments
            .iter()
            .filter(|segment| segment.number >= start_segment)
        {
            if segment.number != position.segment {
                position = Position {
                    segment: segment.number,
                    offset: 0,
                };
            }
            if position.offset >= segment.length {
                continue;
            }
            // One more record's worth past the byte budget, so a batch always ends on a line.
            let budget =
                max_bytes.saturating_sub(bytes_read) + opentrail_event::MAX_RECORD_BYTES + 1;
            let wanted = (segment.length - position.offset).min(budget as u64);
            let mut file = File::open(segment_path(&self.directory, segment.number))?;
            file.seek(SeekFrom::Start(position.offset))?;
            let mut buffer = Vec::with_capacity(wanted as usize);
            file.take(wanted).read_to_end(&mut buffer)?;
            let mut start = 0;
            while let Some(end) = buffer[start..].iter().position(|byte| *byte == b'\n') {
                let line = &buffer[start..start + end];
                records.push(String::from_utf8_lossy(line).into_owned());
                start += end + 1;
                bytes_read += end + 1;
                if records.len() >= max_records || bytes_read >= max_bytes {
                    break;
                }
            }
            position.offset += start as u64;
            if records.len() >= max_records
                || bytes_read >= max_bytes
                || position.offset < segment.length
            {
                break;
            }
        }
        Ok((records, position))
    }

    /// Records everything before `position` as acknowledged by the server, durably, and
    /// deletes the segments it has left behind (never the one being written).
    pub fn acknowledge(&mut self, position: Position) -> io::Result<()> {
        if position <= self.acknowledged {
            return Ok(());
        }
        write_cursor(&self.directory, position)?;
        self.acknowledged = position;
        let writing = self.segments.last().map(|segment| segment.number);
        for segment in &self.segments {
            if segment.number < position.segment && Some(segment.number) != writing {
                opentrail_durable::remove_if_present(&segment_path(
                    &self.directory,
                    segment.number,
                ))?;
            }
        }
        self.segments.retain(|segment| {
            segment.number >= position.segment || Some(segment.number) == writing
        });
        Ok(())
    }
}

fn open_for_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
}

fn segment_path(directory: &Path, segment: u64) -> PathBuf {
    directory.join(format!("{segment:020}{SEGMENT_SUFFIX}"))
}

/// Cuts a last line without its newline (a write the crash interrupted); returns the
/// length kept.
fn cut_torn_line(file: &mut File) -> io::Result<u64> {
    let length = file.metadata()?.len();
    if length == 0 {
        return Ok(0);
    }
    let mut tail = Vec::new();
    let from = length.saturating_sub(SEGMENT_BYTES * 2);
    file.seek(SeekFrom::Start(from))?;
    file.read_to_end(&mut tail)?;
    let kept = match tail.iter().rposition(|byte| *byte == b'\n') {
        Some(index) => from + index as u64 + 1,
        None => from,
    };
    if kept != length {
        file.set_len(kept)?;
        file.sync_data()?;
    }
    Ok(kept)
}

fn read_cursor(directory: &Path) -> io::Result<Option<Position>> {
    let text = match fs::read_to_string(directory.join(CURSOR_FILE)) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(segment)), Some(Ok(offset))) => Ok(Some(Position { segment, offset })),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not `segment offset`: {text:?}",
                directory.join(CURSOR_FILE).display()
            ),
        )),
    }
}

fn write_cursor(directory: &Path, position: Position) -> io::Result<()> {
    let text = format!("{} {}\n", position.segment, position.offset);
    opentrail_durable::write_atomically(&directory.join(CURSOR_FILE), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(count: usize, tag: &str) -> Vec<String> {
        (0..count)
            .map(|index| format!("{{\"n\":\"{tag}{index}\"}}"))
            .collect()
    }

    #[test]
    fn records_survive_a_reopen_until_acknowledged_and_never_after() -> anyhow::Result<()> {
        let directory = tempfile::tempdir()?;
        let mut queue = DiskQueue::open(directory.path())?;
        queue.append(&lines(5, "a"))?;
        let (batch, position) = queue.read_batch(3, 1 << 20)?;
        assert_eq!(batch, lines(3, "a"));
        queue.acknowledge(position)?;
        drop(queue);

        let mut reopened = DiskQueue::open(directory.path())?;
        let (rest, position) = reopened.read_batch(100, 1 << 20)?;
        assert_eq!(
            rest,
            vec![lines(5, "a")[3].clone(), lines(5, "a")[4].clone()]
        );
        reopened.acknowledge(position)?;
        assert_eq!(reopened.pending_bytes(), 0);
        let (nothing, _) = reopened.read_batch(100, 1 << 20)?;
        assert!(nothing.is_empty());
        Ok(())
    }

    #[test]
    fn a_torn_last_line_is_cut_and_the_queue_goes_on() -> anyhow::Result<()> {
        let directory = tempfile::tempdir()?;
        let mut queue = DiskQueue::open(directory.path())?;
        queue.append(&lines(2, "b"))?;
        drop(queue);
        let segment = segment_path(directory.path(), 1);
        let mut file = OpenOptions::new().append(true).open(&segment)?;
        file.write_all(b"{\"half")?;
        drop(file);
        let mut queue = DiskQueue::open(directory.path())?;
        queue.append(&lines(1, "c"))?;
        let (batch, _) = queue.read_batch(100, 1 << 20)?;
        assert_eq!(batch, [lines(2, "b"), lines(1, "c")].concat());
        Ok(())
    }

    #[test]
    fn reading_crosses_segments_and_acknowledging_deletes_them() -> anyhow::Result<()> {
        let directory = tempfile::tempdir()?;
        let mut queue = DiskQueue::open(directory.path())?;
        let big = "x".repeat(1024 * 1024);
        for _ in 0..9 {
            queue.append(&[format!("\"{big}\"")])?;
        }
        queue.append(&lines(1, "tail"))?;
        assert_eq!(queue.segments.len(), 2, "rolled at {SEGMENT_BYTES} bytes");
        let mut seen = 0;
        loop {
            let (batch, position) = queue.read_batch(4, 1 << 30)?;
            if batch.is_empty() {
                break;
            }
            seen += batch.len();
            queue.acknowledge(position)?;
        }
        assert_eq!(seen, 10);
        assert_eq!(queue.segments.len(), 1, "the read segment is gone");
        assert!(!segment_path(directory.path(), 1).exists());
        Ok(())
    }
}

//! `file`: NDJSON appended to `path` and fsynced per batch; when the file would pass
//! `rotate_bytes` it is renamed to `path.1` (older ones shift to `path.2`…, at most
//! `keep_files` are kept).

use std::path::{Path, PathBuf};

use super::{SendFuture, StreamSink};

pub(crate) struct FileSink {
    pub(crate) path: PathBuf,
    pub(crate) rotate_bytes: u64,
    pub(crate) keep_files: usize,
}

impl StreamSink for FileSink {
    fn send<'a>(
        &'a mut self,
        _client: &'a reqwest::Client,
        _log_group: &'a str,
        _stream: &'a str,
        lines: &'a [String],
    ) -> SendFuture<'a> {
        let lines = lines.to_vec();
        let path = self.path.clone();
        let (rotate_bytes, keep_files) = (self.rotate_bytes, self.keep_files);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                append_with_rotation(&path, &lines, rotate_bytes, keep_files)
                    .map_err(|error| format!("file sink {}: {error}", path.display()))
            })
            .await
            .map_err(|error| error.to_string())?
        })
    }
}

/// Appends NDJSON lines, rotating whenever the next line would take the file past
/// `rotate_bytes` (a single longer line gets a file of its own). Each file's part is
/// fsynced before the file is rotated away. Blocking.
fn append_with_rotation(
    path: &Path,
    lines: &[String],
    rotate_bytes: u64,
    keep_files: usize,
) -> std::io::Result<()> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    let mut size = match std::fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
        Err(error) => return Err(error),
    };
    let mut pending: Vec<u8> = Vec::new();
    for line in lines {
        let line_bytes = line.len() as u64 + 1;
        if size + pending.len() as u64 > 0
            && size + pending.len() as u64 + line_bytes > rotate_bytes
        {
            if !pending.is_empty() {
                opentrail_durable::append_durably(path, &pending)?;
                pending.clear();
            }
            rotate(path, keep_files)?;
            size = 0;
        }
        pending.extend_from_slice(line.as_bytes());
        pending.push(b'\n');
    }
    if pending.is_empty() {
        return Ok(());
    }
    opentrail_durable::append_durably(path, &pending)
}

/// `path` becomes `path.1`, `path.1` becomes `path.2`…; the oldest beyond `keep_files`
/// is deleted.
fn rotate(path: &Path, keep_files: usize) -> std::io::Result<()> {
    let rotated = |index: usize| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{index}"));
        PathBuf::from(name)
    };
    opentrail_durable::remove_if_present(&rotated(keep_files))?;
    for index in (1..keep_files).rev() {
        match std::fs::rename(rotated(index), rotated(index + 1)) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    match std::fs::rename(path, rotated(1)) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

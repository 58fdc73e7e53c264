//! Reading one file's bytes (local or S3) and undoing its gzip layer.

use std::io::Read as _;
use std::sync::Arc;

use object_store::{GetOptions, ObjectStore};
use opentrail_event::{MAX_DECOMPRESSED_BYTES, is_gzip};

use crate::source::FileLocation;

/// What workers need to read any file of this import.
pub(crate) struct Readers {
    /// One client per S3 source, by `FileLocation::S3::bucket_index`.
    pub buckets: Vec<Arc<dyn ObjectStore>>,
    /// Drives the S3 client; present when any source is on S3.
    pub runtime: Option<tokio::runtime::Handle>,
}

impl Readers {
    /// The file's bytes as stored. The error is one line naming what failed.
    pub(crate) fn read(&self, location: &FileLocation) -> Result<Vec<u8>, String> {
        match location {
            FileLocation::Local(path) => {
                std::fs::read(path).map_err(|error| format!("cannot read the file: {error}"))
            }
            FileLocation::S3 { bucket_index, key } => {
                let (Some(bucket), Some(runtime)) =
                    (self.buckets.get(*bucket_index), self.runtime.as_ref())
                else {
                    return Err("no S3 client was set up for this object".to_owned());
                };
                runtime
                    .block_on(async {
                        let object = bucket.get_opts(key, GetOptions::default()).await?;
                        object.bytes().await
                    })
                    .map(|bytes| bytes.to_vec())
                    .map_err(|error| format!("cannot read the object: {error}"))
            }
        }
    }
}

/// The JSON text of a file: gzip (recognised by its magic bytes, any number of members) is
/// inflated, up to the same bound the event parser applies; anything else is returned as is.
pub(crate) fn decompress(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if !is_gzip(&bytes) {
        return Ok(bytes);
    }
    // CloudTrail files compress 5–14 times; start there, but never reserve much up front
    // for a file whose header could be lying.
    const INITIAL_CAPACITY_BYTES_MAX: usize = 64 * 1024 * 1024;
    let mut json = Vec::with_capacity(
        bytes
            .len()
            .saturating_mul(8)
            .min(INITIAL_CAPACITY_BYTES_MAX),
    );
    let limit = u64::try_from(MAX_DECOMPRESSED_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    flate2::read::MultiGzDecoder::new(bytes.as_slice())
        .take(limit)
        .read_to_end(&mut json)
        .map_err(|error| format!("corrupt gzip data: {error}"))?;
    if json.len() > MAX_DECOMPRESSED_BYTES {
        return Err(format!(
            "decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes"
        ));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn gzip_is_inflated_and_damage_is_reported() -> anyhow::Result<()> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(b"{\"Records\":[]}")?;
        let gzip = encoder.finish()?;
        assert_eq!(
            decompress(gzip.clone()).ok(),
            Some(b"{\"Records\":[]}".to_vec())
        );
        assert_eq!(decompress(b"[]".to_vec()).ok(), Some(b"[]".to_vec()));
        let truncated = gzip[..gzip.len() - 6].to_vec();
        let error = decompress(truncated).expect_err("truncated gzip");
        assert!(error.starts_with("corrupt gzip data"), "{error}");
        Ok(())
    }
}

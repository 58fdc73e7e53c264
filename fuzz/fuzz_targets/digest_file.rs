//! Digest files as `validate-logs` reads them from a bucket: gzip, then JSON. Any bytes
//! must give a document or a reason, never a panic.
#![no_main]

use std::io::Write as _;

use libfuzzer_sys::fuzz_target;
use opentrail_trails::digest::parse_digest_file;

fuzz_target!(|data: &[u8]| {
    let _ = parse_digest_file(data);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if gzip.write_all(data).is_ok()
        && let Ok(compressed) = gzip.finish()
        && let Ok((inflated, _)) = parse_digest_file(&compressed)
    {
        assert_eq!(
            inflated, data,
            "the signed bytes are the inflated file, unchanged"
        );
    }
});

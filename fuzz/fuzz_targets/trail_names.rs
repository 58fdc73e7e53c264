//! Trail names, trail ARNs and S3 key prefixes: they become object keys and paths, so
//! anything accepted must be free of path tricks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentrail_protocol::trails::{
    parse_trail_name_or_arn, validate_s3_prefix, validate_trail_name,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if validate_trail_name(text).is_ok() {
        assert!((3..=128).contains(&text.len()), "{text:?}");
        assert!(!text.contains('/') && !text.contains(".."), "{text:?}");
    }
    let _ = parse_trail_name_or_arn(Some(text));
    if validate_s3_prefix(text).is_ok() {
        assert!(
            !text.split('/').any(|segment| segment == ".."),
            "a prefix with a parent segment was accepted: {text:?}"
        );
    }
});

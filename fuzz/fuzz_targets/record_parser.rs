//! The ingest parser on any body: every input shape (`{"Records":[…]}`, an array, one
//! object, NDJSON), plain and gzip. It must never panic, and every record it accepts must
//! stay a JSON object that parses again (records are stored losslessly).
#![no_main]

use std::io::Write as _;

use libfuzzer_sys::fuzz_target;
use opentrail_event::{IngestContext, parse_batch};

fuzz_target!(|body: &[u8]| {
    let context = IngestContext {
        account_id: "111122223333".to_owned(),
        region: "us-east-1".to_owned(),
    };
    check(body, &context);
    // The same bytes as a gzip body reach the decompressing path with a valid wrapper.
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if gzip.write_all(body).is_ok()
        && let Ok(compressed) = gzip.finish()
    {
        check(&compressed, &context);
    }
});

fn check(body: &[u8], context: &IngestContext) {
    let Ok(batch) = parse_batch(body, context) else {
        return;
    };
    for (_, record) in &batch.records {
        let reparsed: Result<serde_json::Map<String, serde_json::Value>, _> =
            serde_json::from_str(&record.json);
        assert!(
            reparsed.is_ok(),
            "an accepted record is not a JSON object: {}",
            record.json
        );
    }
}

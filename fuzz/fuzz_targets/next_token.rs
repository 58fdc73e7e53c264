//! `NextToken` decoding: any string a client sends back must be rejected cleanly or give
//! back exactly a cursor we issued for the same query.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentrail_protocol::token::{MAX_TOKEN_CHARS, decode, encode};

fuzz_target!(|data: &[u8]| {
    let fingerprint = b"LookupEvents|EventName|0|100";
    let text = String::from_utf8_lossy(data);
    let _ = decode(&text, fingerprint);
    // A token we issue comes back as the same cursor (when within the length every token
    // is held to), and not for another query.
    let token = encode(data, fingerprint);
    if token.len() <= MAX_TOKEN_CHARS {
        assert_eq!(decode(&token, fingerprint).ok().as_deref(), Some(data));
    }
    assert!(decode(&token, b"LookupEvents|Username|0|100").is_err());
});

//! SigV4 verification on hostile headers and query strings: the Authorization header, the
//! presigned query form, dates and signed-header lists. It must never panic, and only a
//! request carrying a correct signature may verify.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use opentrail_protocol::sigv4::{SignedRequest, verify};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fuzz_target!(|data: &[u8]| {
    // Fields separated by newlines: path, query, then header lines "name: value".
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let path = lines.next().unwrap_or("/");
    let query = lines.next().unwrap_or("");
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }
    let request = SignedRequest {
        method: "POST",
        path,
        query,
        authority: Some("localhost"),
        headers: &headers,
        body: data,
    };
    let now = jiff::Timestamp::from_second(1_700_000_000).expect("a valid instant");
    // A fuzzer cannot forge HMAC-SHA256: anything that verifies would be a bypass.
    let verified = verify(&request, now, "cloudtrail", |_| Some(SECRET.to_owned()));
    assert!(verified.is_err(), "a fuzzed request verified: {request:?}");
});

//! The `NextToken` codec: stateless, opaque, and bound to the request's parameters.
//!
//! A token is URL-safe base64 (no padding) of
//! `version (1 byte) ‖ SHA-256(domain ‖ fingerprint)[..16] ‖ cursor`.
//!
//! - *Stateless*: the store's cursor travels inside the token, so any server instance can
//!   continue a listing and a token can be replayed (the CLI and boto3 retry pages).
//! - *Bound*: the model says a token "must be passed in with the same parameters that were
//!   specified in the original call"; a token presented with different parameters fails the
//!   fingerprint check and yields `InvalidNextTokenException`.
//! - *Not secret, not authenticated*: the cursor is readable and forgeable by the caller, so
//!   the store must treat a decoded cursor as untrusted input (it only positions a scan
//!   that still applies every filter). The fingerprint is a consistency check, not a MAC.
//!
//! What goes into the fingerprint is the caller's choice; for LookupEvents see
//! [`crate::lookup_events::ValidatedLookup::fingerprint`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::AwsError;

/// Bumped if the layout changes; older tokens then fail cleanly as invalid.
const TOKEN_VERSION: u8 = 1;
/// Enough of the hash to make an accidental match between parameter sets negligible while
/// keeping tokens short.
const FINGERPRINT_BYTES: usize = 16;
/// Separates token fingerprints from any other use of SHA-256 over the same bytes.
const FINGERPRINT_DOMAIN: &[u8] = b"opentrail/next-token/v1\0";
/// Tokens longer than this are refused before decoding: no cursor we issue comes near it,
/// and it bounds the work an arbitrary string can cause.
pub const MAX_TOKEN_CHARS: usize = 4096;

fn fingerprint_hash(params_fingerprint: &[u8]) -> [u8; FINGERPRINT_BYTES] {
    let mut hasher = Sha256::new();
    hasher.update(FINGERPRINT_DOMAIN);
    hasher.update(params_fingerprint);
    let digest = hasher.finalize();
    let mut truncated = [0u8; FINGERPRINT_BYTES];
    truncated.copy_from_slice(&digest[..FINGERPRINT_BYTES]);
    truncated
}

/// Encodes a store cursor into a `NextToken` tied to `params_fingerprint`.
pub fn encode(cursor: &[u8], params_fingerprint: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(1 + FINGERPRINT_BYTES + cursor.len());
    bytes.push(TOKEN_VERSION);
    bytes.extend_from_slice(&fingerprint_hash(params_fingerprint));
    bytes.extend_from_slice(cursor);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a `NextToken` back into the store cursor, checking it was issued for the same
/// parameters. Any failure is `InvalidNextTokenException`.
pub fn decode(token: &str, params_fingerprint: &[u8]) -> Result<Vec<u8>, AwsError> {
    if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
        return Err(invalid_token());
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| invalid_token())?;
    let Some((&version, rest)) = bytes.split_first() else {
        return Err(invalid_token());
    };
    if version != TOKEN_VERSION || rest.len() < FINGERPRINT_BYTES {
        return Err(invalid_token());
    }
    let (fingerprint, cursor) = rest.split_at(FINGERPRINT_BYTES);
    if fingerprint != fingerprint_hash(params_fingerprint) {
        return Err(AwsError::invalid_next_token(
            "A token that is not valid, or a token that was previously used in a request with different parameters.",
        ));
    }
    Ok(cursor.to_vec())
}

fn invalid_token() -> AwsError {
    AwsError::invalid_next_token("The NextToken is not valid.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::codes;

    #[test]
    fn round_trips_and_is_reusable() -> Result<(), AwsError> {
        let token = encode(b"cursor-bytes", b"params");
        assert_eq!(decode(&token, b"params")?, b"cursor-bytes");
        assert_eq!(decode(&token, b"params")?, b"cursor-bytes");
        assert!(!token.contains(['+', '/', '=']));
        Ok(())
    }

    #[test]
    fn empty_cursor_is_allowed() -> Result<(), AwsError> {
        assert_eq!(decode(&encode(b"", b"p"), b"p")?, b"");
        Ok(())
    }

    #[test]
    fn different_parameters_are_refused() {
        let token = encode(b"cursor", b"params-a");
        let error = decode(&token, b"params-b").err();
        assert_eq!(
            error.map(|e| e.code),
            Some(codes::INVALID_NEXT_TOKEN.to_owned())
        );
    }

    #[test]
    fn garbage_is_refused() {
        for garbage in ["", "!!!", "AQ", "a".repeat(MAX_TOKEN_CHARS + 1).as_str()] {
            assert!(decode(garbage, b"p").is_err(), "{garbage}");
        }
        let mut wrong_version = URL_SAFE_NO_PAD
            .decode(encode(b"c", b"p"))
            .unwrap_or_default();
        if let Some(first) = wrong_version.first_mut() {
            *first = 9;
        }
        assert!(decode(&URL_SAFE_NO_PAD.encode(wrong_version), b"p").is_err());
    }
}

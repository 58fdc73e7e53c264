//! Token packing: the random ids in records, moved out of the text zstd compresses.
//!
//! A CloudTrail record carries a few values that are pure entropy: `eventID` and often
//! `requestID` and `sharedEventID` (UUIDs), S3's 16-character request ids, and long
//! base64 values (`x-amz-id-2`, session tokens). zstd codes their characters with the
//! same literal table as the JSON around them, so a 36-character UUID costs ~25 bytes and
//! makes the rest harder to match. Packing replaces each such string token, quotes
//! included, by one marker byte in the text and puts its binary form (16 bytes for a
//! UUID) in a side stream, stored beside the compressed text. On the benchmark's
//! generated records at zstd level 3 with the trained dictionary, record blocks shrink
//! from 197 to 172 bytes per event and compress in about half the time (BENCHMARKS.md).
//! Only segment blocks are packed ([`crate::blocks::Effort`]).
//!
//! The transform works on bytes, not on parsed JSON, and is exact: unpacking gives back
//! the very bytes that were packed. Markers are bytes below [`MARKER_END`], which JSON
//! text never holds raw (control characters must be escaped in strings and are not
//! whitespace); a block whose text holds one anyway is stored unpacked.
//!
//! ```text
//! packed text   … "eventID":\x01 … "requestID":\x03 …
//! side stream   uuid:16 bytes ‖ base36:11 bytes ‖ …   (in the order the markers appear)
//! ```

use base64::Engine as _;

/// `"8f8d1810-5447-4102-8081-0ddd1b6fe209"`: 16 bytes.
const UUID_LOWER: u8 = 0x01;
/// `"8F8D1810-5447-4102-8081-0DDD1B6FE209"`: 16 bytes.
const UUID_UPPER: u8 = 0x02;
/// `"885MWJRYVA2TKE96"` (16 of `0-9A-Z`, S3's request ids): 11 bytes, base 36.
const ALNUM16: u8 = 0x03;
/// Canonical padded base64 of at least [`BASE64_MIN_CHARS`] characters: a LEB128 length,
/// then the decoded bytes.
const BASE64: u8 = 0x04;
/// Bytes below this are markers in packed text (0x00 is reserved, never written).
const MARKER_END: u8 = 0x05;

const UUID_CHARS: usize = 36;
const UUID_BYTES: usize = 16;
const ALNUM16_CHARS: usize = 16;
const ALNUM16_BYTES: usize = 11;
/// Shorter base64 values save little and are more often repeated (where zstd's matches
/// already make them cheap).
const BASE64_MIN_CHARS: usize = 40;

/// One block's records with their tokens packed.
#[derive(Debug)]
pub(crate) struct PackedRecords {
    pub text: Vec<u8>,
    /// End of each record in `text`.
    pub ends: Vec<u32>,
    pub side: Vec<u8>,
}

/// Packs the records of one block (`text`, records ending at `ends`). `None` when the
/// block has no token to pack or cannot be packed (its text holds a marker byte).
pub(crate) fn pack(text: &[u8], ends: &[u32]) -> Option<PackedRecords> {
    if find_marker(text).is_some() {
        return None;
    }
    let mut packed = PackedRecords {
        text: Vec::with_capacity(text.len()),
        ends: Vec::with_capacity(ends.len()),
        side: Vec::new(),
    };
    let mut start = 0usize;
    for &end in ends {
        let record = text.get(start..end as usize)?;
        pack_record(record, &mut packed);
        packed.ends.push(packed.text.len() as u32);
        start = end as usize;
    }
    (!packed.side.is_empty()).then_some(packed)
}

fn pack_record(record: &[u8], packed: &mut PackedRecords) {
    let mut copied = 0usize;
    // Each quote with the next one bounds a candidate token. Its length alone rules out
    // most (keys, names): only lengths of a packable kind look at the characters. One
    // iterator over every quote, not a search per quote: quotes are a few bytes apart,
    // and a search per quote was half of `pack`'s time in a profile of a seal.
    let mut opening = None;
    for quote in Quotes::of(record) {
        let Some(open) = opening else {
            opening = Some(quote);
            continue;
        };
        let side_start = packed.side.len();
        match pack_token(&record[open + 1..quote], &mut packed.side) {
            Some(marker) => {
                packed.text.extend_from_slice(&record[copied..open]);
                packed.text.push(marker);
                // The token and both its quotes are replaced: the next quote opens.
                copied = quote + 1;
                opening = None;
            }
            None => {
                packed.side.truncate(side_start);
                opening = Some(quote);
            }
        }
    }
    packed.text.extend_from_slice(&record[copied..]);
}

/// When `value` (the bytes between two quotes) is a packable token: appends its binary
/// form to `side` and returns its marker. On `None`, `side` may hold partial bytes.
fn pack_token(value: &[u8], side: &mut Vec<u8>) -> Option<u8> {
    match value.len() {
        UUID_CHARS => {
            let marker = if is_uuid(value, false) {
                UUID_LOWER
            } else if is_uuid(value, true) {
                UUID_UPPER
            } else {
                return None;
            };
            let mut digits = value.iter().filter(|&&byte| byte != b'-');
            while let (Some(&high), Some(&low)) = (digits.next(), digits.next()) {
                side.push(hex_value(high) << 4 | hex_value(low));
            }
            Some(marker)
        }
        ALNUM16_CHARS => {
            if !value
                .iter()
                .all(|byte| byte.is_ascii_digit() || byte.is_ascii_uppercase())
            {
                return None;
            }
            let number = value.iter().fold(0u128, |number, &byte| {
                number * 36 + u128::from(base36_value(byte))
            });
            side.extend_from_slice(&number.to_be_bytes()[16 - ALNUM16_BYTES..]);
            Some(ALNUM16)
        }
        length if length >= BASE64_MIN_CHARS && length.is_multiple_of(4) => {
            let padding = value.iter().rev().take_while(|&&byte| byte == b'=').count();
            put_leb128(side, (length / 4 * 3 - padding) as u64);
            // The standard engine rejects other characters, non-canonical padding and
            // trailing bits, so what decodes encodes again to the same characters.
            base64::engine::general_purpose::STANDARD
                .decode_vec(value, side)
                .ok()?;
            Some(BASE64)
        }
        _ => None,
    }
}

fn is_uuid(value: &[u8], upper: bool) -> bool {
    value.iter().enumerate().all(|(index, &byte)| match index {
        8 | 13 | 18 | 23 => byte == b'-',
        _ => {
            byte.is_ascii_digit() || (if upper { b'A'..=b'F' } else { b'a'..=b'f' }).contains(&byte)
        }
    })
}

/// The first marker byte in `bytes`, eight bytes at a time (the scan of every block a
/// seal packs and every block a read unpacks; a byte-wise scan was a quarter of `pack`).
fn find_marker(bytes: &[u8]) -> Option<usize> {
    let (words, tail) = bytes.as_chunks::<8>();
    for (index, word) in words.iter().enumerate() {
        let below = bytes_below(u64::from_le_bytes(*word), MARKER_END);
        if below != 0 {
            return Some(index * 8 + below.trailing_zeros() as usize / 8);
        }
    }
    tail.iter()
        .position(|&byte| byte < MARKER_END)
        .map(|at| words.len() * 8 + at)
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
const LOW_SEVEN_BITS: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// Has the top bit of the lowest byte of `word` below `limit` (at most 0x80) set, if any.
/// Subtracting borrows out of such a byte: it sets that byte's top bit, and maybe some of
/// the bytes above it, so only the lowest set bit is exact.
fn bytes_below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(LOW_BITS * u64::from(limit)) & !word & HIGH_BITS
}

/// The top bit of every byte of `word` that equals `byte`, and no other bit: seven bits
/// of each byte are added apart, so no carry crosses into the next byte.
fn bytes_equal(word: u64, byte: u8) -> u64 {
    let zeroed = word ^ (LOW_BITS * u64::from(byte));
    !(((zeroed & LOW_SEVEN_BITS) + LOW_SEVEN_BITS) | zeroed | LOW_SEVEN_BITS)
}

/// Where the quotes of `bytes` are, in order, found eight bytes at a time. Quotes in JSON
/// are a few bytes apart, where `memchr_iter` spends more setting up each search than
/// searching.
struct Quotes<'a> {
    words: &'a [[u8; 8]],
    tail: &'a [u8],
    /// Offset of the word after the one `matches` describes.
    next_offset: usize,
    /// The top bit of each quote's byte in the current word.
    matches: u64,
}

impl<'a> Quotes<'a> {
    fn of(bytes: &'a [u8]) -> Quotes<'a> {
        let (words, tail) = bytes.as_chunks::<8>();
        Quotes {
            words,
            tail,
            next_offset: 0,
            matches: 0,
        }
    }
}

impl Iterator for Quotes<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.matches == 0 {
            let word = match self.words.split_first() {
                Some((word, rest)) => {
                    self.words = rest;
                    *word
                }
                None if !self.tail.is_empty() => {
                    // Padded with bytes that are not quotes.
                    let mut word = [0u8; 8];
                    word[..self.tail.len()].copy_from_slice(self.tail);
                    self.tail = &[];
                    word
                }
                None => return None,
            };
            self.matches = bytes_equal(u64::from_le_bytes(word), b'"');
            self.next_offset += 8;
        }
        let at = self.matches.trailing_zeros() as usize / 8;
        self.matches &= self.matches - 1;
        Some(self.next_offset - 8 + at)
    }
}

fn hex_value(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        _ => byte - b'A' + 10,
    }
}

fn base36_value(byte: u8) -> u8 {
    if byte.is_ascii_digit() {
        byte - b'0'
    } else {
        byte - b'A' + 10
    }
}

fn put_leb128(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Unpacks a packed block into the unpacked text, appending to `out`, and the record
/// ends within what it appended. Errors name what is wrong, for a corruption report.
pub(crate) fn unpack(
    text: &[u8],
    ends: &[u32],
    side: &[u8],
    out: &mut Vec<u8>,
    unpacked_ends: &mut Vec<u32>,
) -> Result<(), String> {
    let base = out.len();
    let mut side = SideReader { bytes: side, at: 0 };
    let mut start = 0usize;
    for (index, &end) in ends.iter().enumerate() {
        let record = text
            .get(start..end as usize)
            .ok_or_else(|| format!("record {index} ends out of bounds"))?;
        let mut rest = record;
        while let Some(at) = find_marker(rest) {
            out.extend_from_slice(&rest[..at]);
            side.unpack_token(rest[at], out)?;
            rest = &rest[at + 1..];
        }
        out.extend_from_slice(rest);
        unpacked_ends.push((out.len() - base) as u32);
        start = end as usize;
    }
    if side.at != side.bytes.len() {
        return Err(format!(
            "{} side bytes left over",
            side.bytes.len() - side.at
        ));
    }
    Ok(())
}

struct SideReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl SideReader<'_> {
    fn take(&mut self, count: usize) -> Result<&[u8], String> {
        let taken = self
            .at
            .checked_add(count)
            .and_then(|end| self.bytes.get(self.at..end))
            .ok_or_else(|| format!("side stream ends at {} of {count} more bytes", self.at))?;
        self.at += count;
        Ok(taken)
    }

    fn leb128(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("length does not end".into())
    }

    fn unpack_token(&mut self, marker: u8, out: &mut Vec<u8>) -> Result<(), String> {
        out.push(b'"');
        match marker {
            UUID_LOWER | UUID_UPPER => {
                let digits: &[u8; 16] = if marker == UUID_LOWER {
                    b"0123456789abcdef"
                } else {
                    b"0123456789ABCDEF"
                };
                for (index, &byte) in self.take(UUID_BYTES)?.iter().enumerate() {
                    if matches!(index, 4 | 6 | 8 | 10) {
                        out.push(b'-');
                    }
                    out.push(digits[usize::from(byte >> 4)]);
                    out.push(digits[usize::from(byte & 0x0f)]);
                }
            }
            ALNUM16 => {
                let mut be = [0u8; 16];
                be[16 - ALNUM16_BYTES..].copy_from_slice(self.take(ALNUM16_BYTES)?);
                let mut number = u128::from_be_bytes(be);
                let mut chars = [0u8; ALNUM16_CHARS];
                for char in chars.iter_mut().rev() {
                    let digit = (number % 36) as u8;
                    *char = if digit < 10 {
                        b'0' + digit
                    } else {
                        b'A' + digit - 10
                    };
                    number /= 36;
                }
                if number != 0 {
                    return Err("a base-36 id does not fit 16 characters".into());
                }
                out.extend_from_slice(&chars);
            }
            BASE64 => {
                let length = usize::try_from(self.leb128()?)
                    .map_err(|_| "base64 length out of range".to_owned())?;
                let decoded = self.take(length)?;
                append_base64(decoded, out);
            }
            other => return Err(format!("unknown marker {other:#04x}")),
        }
        out.push(b'"');
        Ok(())
    }
}

fn append_base64(input: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + input.len().div_ceil(3) * 4, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(input, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(records: &[&[u8]]) -> Option<PackedRecords> {
        let mut text = Vec::new();
        let mut ends = Vec::new();
        for record in records {
            text.extend_from_slice(record);
            ends.push(text.len() as u32);
        }
        let packed = pack(&text, &ends)?;
        let mut unpacked = Vec::new();
        let mut unpacked_ends = Vec::new();
        unpack(
            &packed.text,
            &packed.ends,
            &packed.side,
            &mut unpacked,
            &mut unpacked_ends,
        )
        .expect("unpacks");
        assert_eq!(unpacked, text, "the same bytes back");
        assert_eq!(unpacked_ends, ends, "the same record boundaries");
        Some(packed)
    }

    #[test]
    fn ids_of_each_kind_are_packed_and_come_back_byte_for_byte() {
        let record = br#"{"eventID":"8f8d1810-5447-4102-8081-0ddd1b6fe209","sharedEventID":"8F8D1810-5447-4102-8081-0DDD1B6FE209","requestID":"885MWJRYVA2TKE96","additionalEventData":{"x-amz-id-2":"1Z3of2Gc1d2ljvqfkE2MWBGsAQ7MsOfkOMYEAk6ydqSgUcHRE1NJaeVtAGvbU34wuOI3a9zmegop"},"n":1}"#;
        let packed = round_trip(&[record, record]).expect("packed");
        // Four markers per record, and the ids' binary forms in the side stream.
        assert_eq!(
            packed
                .text
                .iter()
                .filter(|&&byte| byte < MARKER_END)
                .count(),
            8
        );
        assert_eq!(packed.side.len(), 2 * (16 + 16 + 11 + 1 + 57));
        assert!(packed.text.len() < record.len() * 2 - 2 * (36 + 36 + 16 + 76));
    }

    #[test]
    fn near_misses_stay_text() {
        for record in [
            // Mixed case, a brace where a dash goes, one character short or long.
            &br#"{"a":"8f8d1810-5447-4102-8081-0DDD1b6fe209"}"#[..],
            br#"{"a":"8f8d1810-5447-4102-8081{0ddd1b6fe209"}"#,
            br#"{"a":"8f8d1810-5447-4102-8081-0ddd1b6fe20"}"#,
            br#"{"a":"885MWJRYVA2TKE9","b":"885MWJRYVA2TKE96X","c":"885mwjryva2tke96"}"#,
            // Base64 too short, without its padding, or with non-zero trailing bits.
            br#"{"a":"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="}"#,
            br#"{"a":"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGk"}"#,
            br#"{"a":"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGl="}"#,
            // Escaped slash, as some encoders write base64.
            br#"{"a":"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlq\/w=="}"#,
        ] {
            assert!(
                round_trip(&[record]).is_none(),
                "{}",
                String::from_utf8_lossy(record)
            );
        }
    }

    #[test]
    fn a_block_holding_a_marker_byte_is_not_packed() {
        let record = b"{\"eventID\":\"8f8d1810-5447-4102-8081-0ddd1b6fe209\",\"raw\":\"\x01\"}";
        assert!(round_trip(&[record]).is_none());
    }

    #[test]
    fn ids_next_to_each_other_and_inside_escaped_quotes_come_back() {
        let uuid = "8f8d1810-5447-4102-8081-0ddd1b6fe209";
        let record = format!(
            r#"{{"ids":["{uuid}","{uuid}"],"quoted":"say \"{uuid}\" and \"{uuid}","s3":"885MWJRYVA2TKE96","tail":"{uuid}"}}"#
        );
        let packed = round_trip(&[record.as_bytes()]).expect("packed");
        assert!(packed.side.len() >= 4 * 16 + 11);
    }

    #[test]
    fn damaged_side_streams_are_errors() {
        let record =
            br#"{"eventID":"8f8d1810-5447-4102-8081-0ddd1b6fe209","x":"885MWJRYVA2TKE96"}"#;
        let packed = round_trip(&[record]).expect("packed");
        let unpack_with = |side: &[u8]| {
            unpack(
                &packed.text,
                &packed.ends,
                side,
                &mut Vec::new(),
                &mut Vec::new(),
            )
        };
        assert!(unpack_with(&packed.side[..packed.side.len() - 1]).is_err());
        let mut longer = packed.side.clone();
        longer.push(0);
        assert!(unpack_with(&longer).is_err());
        // The base-36 id's 11 bytes at their largest do not fit 16 characters.
        let mut overflowing = packed.side.clone();
        for byte in &mut overflowing[16..] {
            *byte = 0xff;
        }
        assert!(unpack_with(&overflowing).is_err());
    }

    fn id_string() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<[u8; 16]>().prop_map(|bytes| {
                let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
                format!(
                    "{}-{}-{}-{}-{}",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                )
            }),
            any::<[u8; 16]>().prop_map(|bytes| {
                bytes
                    .iter()
                    .map(|byte| format!("{byte:02X}"))
                    .collect::<String>()
                    .chars()
                    .enumerate()
                    .flat_map(|(index, char)| {
                        let dash = matches!(index, 8 | 12 | 16 | 20).then_some('-');
                        dash.into_iter().chain(std::iter::once(char))
                    })
                    .collect()
            }),
            "[A-Z0-9]{16}",
            proptest::collection::vec(any::<u8>(), 30..90)
                .prop_map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)),
            "[ -~]{0,40}",
        ]
    }

    proptest! {
        #[test]
        fn any_block_of_strings_comes_back_byte_for_byte(
            values in proptest::collection::vec(
                proptest::collection::vec(id_string(), 1..6),
                1..8,
            ),
        ) {
            let records: Vec<String> = values
                .iter()
                .map(|values| {
                    serde_json::to_string(values).expect("json")
                })
                .collect();
            let records: Vec<&[u8]> = records.iter().map(|record| record.as_bytes()).collect();
            // `None` (nothing to pack) is checked by `round_trip` only when packed.
            let _ = round_trip(&records);
        }

        /// The word-at-a-time scans find what a byte-by-byte scan finds, at every length
        /// and alignment, next to the bytes closest to what they look for (a borrow or
        /// carry out of one byte must never show in the next).
        #[test]
        fn word_scans_find_what_a_byte_scan_finds(
            bytes in proptest::collection::vec(
                prop_oneof![
                    Just(0u8), Just(0x04), Just(MARKER_END), Just(0x06), Just(b'!'),
                    Just(b'"'), Just(b'#'), Just(0x7f), Just(0x80), Just(0xa2), Just(0xff),
                    any::<u8>(),
                ],
                0..80,
            ),
        ) {
            let quotes: Vec<usize> = (0..bytes.len()).filter(|&at| bytes[at] == b'"').collect();
            prop_assert_eq!(Quotes::of(&bytes).collect::<Vec<_>>(), quotes);
            prop_assert_eq!(
                find_marker(&bytes),
                bytes.iter().position(|&byte| byte < MARKER_END)
            );
        }
    }
}

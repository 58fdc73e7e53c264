//! Time on the wire.
//!
//! awsJson1_1 timestamps are epoch **seconds** as JSON numbers, integers from CLI v1 and
//! floats from boto3 (spec §1.3). Internally OpenTrail uses epoch milliseconds, so these
//! helpers convert at the edge. Record fields (`eventTime`) are RFC 3339 strings in UTC.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// Converts a JSON number of epoch seconds (integer or float) to epoch milliseconds.
///
/// Sub-millisecond fractions are truncated towards negative infinity, so an inclusive
/// `StartTime` of `x.0009` still matches events at `x.000`. Returns `None` for values that
/// are not finite or fall outside the range jiff can represent (years -9999..=9999), which
/// callers report as `InvalidTimeRangeException` ("outside the range of possible values").
pub fn epoch_seconds_to_ms(seconds: &serde_json::Number) -> Option<i64> {
    let ms = if let Some(whole) = seconds.as_i64() {
        whole.checked_mul(1000)?
    } else if seconds.is_u64() {
        // Larger than i64::MAX seconds: far outside any representable time.
        return None;
    } else {
        let float = seconds.as_f64()?;
        if !float.is_finite() {
            return None;
        }
        let scaled = (float * 1000.0).floor();
        // The float-to-int cast saturates; the range check below rejects saturated values.
        scaled as i64
    };
    Timestamp::from_millisecond(ms).ok().map(|_| ms)
}

/// Converts epoch milliseconds to the JSON number AWS sends, e.g. `1424476529.0` or
/// `1700000000.123`. botocore accepts both integers and floats; a float is what the real
/// service sends.
pub fn ms_to_epoch_seconds(ms: i64) -> serde_json::Number {
    let seconds = ms as f64 / 1000.0;
    // from_f64 fails only for NaN or infinity, which an i64 divided by 1000 never is; the
    // integer fallback keeps this total without a panic path.
    serde_json::Number::from_f64(seconds).unwrap_or_else(|| serde_json::Number::from(ms / 1000))
}

/// Formats a timestamp the way CloudTrail records do: `2024-01-02T03:04:05Z` (UTC, whole
/// seconds).
pub fn format_record_time(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Formats a timestamp as RFC 3339 UTC with millisecond precision when it has a fraction,
/// e.g. `2024-01-02T03:04:05.678Z`.
pub fn format_rfc3339_ms(ts: Timestamp) -> String {
    if ts.subsec_nanosecond() == 0 {
        format_record_time(ts)
    } else {
        ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

/// Converts epoch milliseconds to a timestamp, `None` when out of jiff's range.
pub fn ms_to_timestamp(ms: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}

/// Parses a record-style time: RFC 3339 with an offset (`2024-01-02T03:04:05Z`,
/// `…+02:00`, fractions allowed) or, as the CloudTrail Lake integration schema allows
/// (`yyyy-MM-DDTHH:mm:ss`, UTC), a civil date-time without offset, taken as UTC.
pub fn parse_record_time(text: &str) -> Option<Timestamp> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    let civil: DateTime = text.parse().ok()?;
    TimeZone::UTC.to_timestamp(civil).ok()
}

/// Formats the SigV4 `X-Amz-Date` form, `20150830T123600Z`.
pub fn format_amz_date(ts: Timestamp) -> String {
    ts.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// Parses the SigV4 `X-Amz-Date` form, `20150830T123600Z`, strictly (16 characters).
pub fn parse_amz_date(text: &str) -> Option<Timestamp> {
    if text.len() != 16 || !text.ends_with('Z') {
        return None;
    }
    let civil = DateTime::strptime("%Y%m%dT%H%M%SZ", text).ok()?;
    TimeZone::UTC.to_timestamp(civil).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> serde_json::Number {
        match serde_json::from_str(text) {
            Ok(number) => number,
            Err(error) => panic!("bad test literal {text}: {error}"),
        }
    }

    #[test]
    fn integers_and_floats_both_convert() {
        assert_eq!(
            epoch_seconds_to_ms(&number("1704164645")),
            Some(1_704_164_645_000)
        );
        assert_eq!(
            epoch_seconds_to_ms(&number("1704164645.678")),
            Some(1_704_164_645_678)
        );
        assert_eq!(
            epoch_seconds_to_ms(&number("1.7E9")),
            Some(1_700_000_000_000)
        );
        assert_eq!(epoch_seconds_to_ms(&number("-1")), Some(-1000));
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        assert_eq!(epoch_seconds_to_ms(&number("1e300")), None);
        assert_eq!(epoch_seconds_to_ms(&number("18446744073709551615")), None);
        assert_eq!(epoch_seconds_to_ms(&number("9223372036854775807")), None);
    }

    #[test]
    fn milliseconds_render_as_seconds() -> Result<(), serde_json::Error> {
        assert_eq!(
            serde_json::to_string(&ms_to_epoch_seconds(1_424_476_529_000))?,
            "1424476529.0"
        );
        assert_eq!(
            serde_json::to_string(&ms_to_epoch_seconds(1_700_000_000_123))?,
            "1700000000.123"
        );
        Ok(())
    }

    #[test]
    fn record_times_parse_with_and_without_zone() {
        let expected = Timestamp::from_second(1_704_164_645).ok();
        assert_eq!(parse_record_time("2024-01-02T03:04:05Z"), expected);
        assert_eq!(parse_record_time("2024-01-02T03:04:05"), expected);
        assert_eq!(parse_record_time("2024-01-02T05:04:05+02:00"), expected);
        assert_eq!(parse_record_time("yesterday"), None);
    }

    #[test]
    fn amz_dates_round_trip() {
        let parsed = parse_amz_date("20150830T123600Z");
        assert_eq!(
            parsed.map(format_amz_date).as_deref(),
            Some("20150830T123600Z")
        );
        assert_eq!(parse_amz_date("2015-08-30T12:36:00Z"), None);
        assert_eq!(parse_amz_date("20150830T123600"), None);
    }
}

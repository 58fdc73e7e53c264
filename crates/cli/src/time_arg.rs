//! The time forms `--start` and `--end` accept, turned into exact instants.
//!
//! - `now`;
//! - relative to now, in the past: `-30s`, `-15m`, `-1h`, `-7d`, `-2w`, and sums such as
//!   `-1h30m` (`d` is 24 hours, `w` 7 days: times are UTC, so there are no DST days);
//! - RFC 3339: `2024-01-02T03:04:05Z`, `2024-01-02T03:04:05.123+02:00`;
//! - a date and time without an offset, read as UTC: `2024-01-02T03:04`,
//!   `2024-01-02 03:04:05`;
//! - a date, `2024-01-02`: its first instant for `--start`, its last for `--end`, so that
//!   `--start 2024-01-02 --end 2024-01-02` covers the whole day (the range is inclusive);
//! - Unix epoch seconds, optionally with a fraction: `1704164645`, `1704164645.5`.

use anyhow::{Context as _, bail};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Which end of the range a value is for; only bare dates depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEnd {
    Start,
    End,
}

const ACCEPTED_FORMS: &str = "expected now, a relative time such as -1h, -30m or -7d, \
     an RFC 3339 timestamp, a date such as 2024-01-02, or epoch seconds";

/// Parses one `--start`/`--end` value; relative times count back from `now`.
pub fn parse_time(text: &str, now: Timestamp, end: RangeEnd) -> anyhow::Result<Timestamp> {
    let trimmed = text.trim();
    parse_time_inner(trimmed, now, end).with_context(|| format!("invalid time {text:?}"))
}

fn parse_time_inner(text: &str, now: Timestamp, end: RangeEnd) -> anyhow::Result<Timestamp> {
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(relative) = text.strip_prefix('-') {
        // A bare negative number would be a pre-1970 epoch time; nobody means that here,
        // and `-90` without a unit is more likely a typo for `-90m`.
        if relative.bytes().all(|byte| byte.is_ascii_digit()) {
            bail!("a relative time needs a unit (s, m, h, d or w), as in -{relative}m");
        }
        let ago = parse_relative_duration(relative)?;
        return now
            .checked_sub(ago)
            .context("the time is before the earliest supported instant");
    }
    if !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'.')
    {
        return parse_epoch_seconds(text);
    }
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Ok(timestamp);
    }
    // jiff reads the date of a date-time as a `Date` and a bare date as midnight, so the
    // form is chosen by whether a time part is present.
    let has_time = text.contains(['T', 't', ' ']);
    if !has_time && let Ok(date) = text.parse::<Date>() {
        return date_bound(date, end);
    }
    if has_time && let Ok(datetime) = text.parse::<DateTime>() {
        let zoned = datetime
            .to_zoned_datetime(TimeZone::UTC)
            .context("the time is out of range")?;
        return Ok(zoned.timestamp());
    }
    bail!("{ACCEPTED_FORMS}")
}

/// `1h30m` → 5400 s. Every part is a whole number followed by a unit.
fn parse_relative_duration(text: &str) -> anyhow::Result<SignedDuration> {
    if text.is_empty() {
        bail!("{ACCEPTED_FORMS}");
    }
    let mut total_seconds: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|character: char| !character.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            bail!("{ACCEPTED_FORMS}");
        }
        let (digits, after_digits) = rest.split_at(digits_end);
        let mut characters = after_digits.chars();
        let Some(unit) = characters.next() else {
            bail!("a relative time needs a unit (s, m, h, d or w) after {digits}");
        };
        let seconds_per_unit: i64 = match unit.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            other => bail!("unknown time unit {other:?}: use s, m, h, d or w"),
        };
        let count: i64 = digits.parse().context("the number is too large")?;
        total_seconds = count
            .checked_mul(seconds_per_unit)
            .and_then(|seconds| total_seconds.checked_add(seconds))
            .context("the relative time is too large")?;
        rest = characters.as_str();
    }
    Ok(SignedDuration::from_secs(total_seconds))
}

fn parse_epoch_seconds(text: &str) -> anyhow::Result<Timestamp> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || fraction.contains('.') {
        bail!("{ACCEPTED_FORMS}");
    }
    let seconds: i64 = whole.parse().context("epoch seconds out of range")?;
    // Only milliseconds matter (event times are stored to the millisecond); the fraction
    // is cut to three digits rather than parsed as a float, which would round.
    let mut millis_text: String = fraction.chars().take(3).collect();
    while millis_text.len() < 3 {
        millis_text.push('0');
    }
    let millis: i64 = millis_text
        .parse()
        .context("invalid fraction of a second")?;
    seconds
        .checked_mul(1000)
        .and_then(|whole_millis| whole_millis.checked_add(millis))
        .and_then(|total| Timestamp::from_millisecond(total).ok())
        .context("epoch seconds out of range")
}

/// The first instant of a UTC day, or its last millisecond for the inclusive end.
fn date_bound(date: Date, end: RangeEnd) -> anyhow::Result<Timestamp> {
    let start_of_day = |day: Date| -> anyhow::Result<Timestamp> {
        Ok(day
            .to_zoned_datetime(TimeZone::UTC)
            .context("the date is out of range")?
            .timestamp())
    };
    match end {
        RangeEnd::Start => start_of_day(date),
        RangeEnd::End => {
            let next_day = date.tomorrow().context("the date is out of range")?;
            start_of_day(next_day)?
                .checked_sub(SignedDuration::from_millis(1))
                .context("the date is out of range")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-05-06T12:00:00Z".parse().expect("fixed now")
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    fn parse(text: &str) -> Timestamp {
        parse_time(text, now(), RangeEnd::Start).expect(text)
    }

    #[test]
    fn relative_times_count_back_from_now() {
        assert_eq!(parse("now"), now());
        assert_eq!(parse("NOW"), now());
        assert_eq!(parse("-1h"), at("2024-05-06T11:00:00Z"));
        assert_eq!(parse("-30m"), at("2024-05-06T11:30:00Z"));
        assert_eq!(parse("-45s"), at("2024-05-06T11:59:15Z"));
        assert_eq!(parse("-7d"), at("2024-04-29T12:00:00Z"));
        assert_eq!(parse("-2w"), at("2024-04-22T12:00:00Z"));
        assert_eq!(parse("-1h30m"), at("2024-05-06T10:30:00Z"));
        assert_eq!(parse("-1D"), at("2024-05-05T12:00:00Z"));
        assert_eq!(parse(" -1h "), at("2024-05-06T11:00:00Z"));
    }

    #[test]
    fn malformed_relative_times_are_refused_with_the_reason() {
        let unitless = parse_time("-90", now(), RangeEnd::Start).expect_err("no unit");
        assert!(
            format!("{unitless:#}").contains("needs a unit"),
            "{unitless:#}"
        );
        let unknown = parse_time("-3y", now(), RangeEnd::Start).expect_err("bad unit");
        assert!(
            format!("{unknown:#}").contains("unknown time unit"),
            "{unknown:#}"
        );
        for text in [
            "-",
            "-h",
            "-1h-",
            "-1.5h",
            "-99999999999999999999d",
            "yesterday",
        ] {
            assert!(
                parse_time(text, now(), RangeEnd::Start).is_err(),
                "{text} should be refused"
            );
        }
        let message = format!(
            "{:#}",
            parse_time("yesterday", now(), RangeEnd::End).expect_err("bad")
        );
        assert!(message.contains("\"yesterday\""), "{message}");
        assert!(message.contains("-1h"), "{message}");
    }

    #[test]
    fn absolute_forms_parse() {
        assert_eq!(parse("2024-01-02T03:04:05Z"), at("2024-01-02T03:04:05Z"));
        assert_eq!(
            parse("2024-01-02T03:04:05.250+02:00"),
            at("2024-01-02T01:04:05.250Z")
        );
        assert_eq!(parse("2024-01-02T03:04"), at("2024-01-02T03:04:00Z"));
        assert_eq!(parse("2024-01-02 03:04:05"), at("2024-01-02T03:04:05Z"));
        assert_eq!(parse("1704164645"), at("2024-01-02T03:04:05Z"));
        assert_eq!(parse("1704164645.5"), at("2024-01-02T03:04:05.5Z"));
        assert_eq!(parse("1704164645.123456"), at("2024-01-02T03:04:05.123Z"));
        assert!(parse_time("1.2.3", now(), RangeEnd::Start).is_err());
        assert!(parse_time(".5", now(), RangeEnd::Start).is_err());
    }

    #[test]
    fn a_date_covers_its_whole_day() {
        assert_eq!(
            parse_time("2024-01-02", now(), RangeEnd::Start).expect("start"),
            at("2024-01-02T00:00:00Z")
        );
        assert_eq!(
            parse_time("2024-01-02", now(), RangeEnd::End).expect("end"),
            at("2024-01-02T23:59:59.999Z")
        );
    }
}

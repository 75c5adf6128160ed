//! Timestamps as AstrBot prints them: ISO-8601 with an explicit offset and
//! microseconds only when they are not zero. We always print the UTC instant
//! (`+00:00`), which fixes AstrBot's local-time quirk without changing the shape.

use chrono::{DateTime, SecondsFormat, Timelike, Utc};

/// Renders an instant the way Python's `datetime.isoformat()` does for an
/// aware UTC value.
pub fn iso(instant: DateTime<Utc>) -> String {
    let format = if instant.nanosecond() / 1_000 == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Micros
    };
    instant.to_rfc3339_opts(format, false)
}

/// Now, truncated to microseconds so that what is stored and what is printed
/// agree to the digit.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    now.with_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn prints_offset_and_optional_microseconds() {
        let whole = Utc.with_ymd_and_hms(2026, 2, 21, 9, 20, 26).unwrap();
        assert_eq!(iso(whole), "2026-02-21T09:20:26+00:00");
        let fraction = whole.with_nanosecond(123_456_000).unwrap();
        assert_eq!(iso(fraction), "2026-02-21T09:20:26.123456+00:00");
    }
}

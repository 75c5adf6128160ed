//! Conversions between Rust values and what is stored: the timestamp text
//! format and JSON columns.

use astrbot_core::StoreError;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use rusqlite::Row;
use serde_json::Value;

use crate::db::DbResult;

/// Renders an instant for storage in the one format every timestamp is
/// written in: naive UTC with exactly six fractional digits
/// (`2026-02-21 09:20:26.123456`), as SQLAlchemy writes it for AstrBot.
/// Fixed width means text order is time order, so `expires_at > ?` and
/// `ORDER BY` work on the raw column in any SQL database. Sub-microsecond
/// digits are dropped.
///
/// Written digit by digit into the fixed layout: every stored turn writes
/// two timestamps, and `format!` with padded fields cost about 3,000
/// instructions a time. Years outside 0–9999 (never written by us) take
/// `format!`, which prints them wider.
pub(crate) fn encode_ts(instant: DateTime<Utc>) -> String {
    // A leap second shows as nanoseconds past 999,999,999.
    let micros = (instant.nanosecond() % 1_000_000_000) / 1_000;
    let Ok(year @ 0..=9999) = u32::try_from(instant.year()) else {
        return format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{micros:06}",
            instant.year(),
            instant.month(),
            instant.day(),
            instant.hour(),
            instant.minute(),
            instant.second(),
        );
    };
    let mut text = *b"0000-00-00 00:00:00.000000";
    let fields = [
        (0..4, year),
        (5..7, instant.month()),
        (8..10, instant.day()),
        (11..13, instant.hour()),
        (14..16, instant.minute()),
        (17..19, instant.second()),
        (20..26, micros),
    ];
    for (place, value) in fields {
        put_digits(&mut text[place], value);
    }
    text.iter().copied().map(char::from).collect()
}

/// Writes `value`'s last `out.len()` decimal digits into `out`.
fn put_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Drops sub-microsecond precision, so a record built in Rust equals the one
/// read back from the database.
pub(crate) fn truncate_micros(instant: DateTime<Utc>) -> DateTime<Utc> {
    let micros = instant.nanosecond() / 1_000 * 1_000;
    instant.with_nanosecond(micros).unwrap_or(instant)
}

/// Parses a stored timestamp. Besides our own format it accepts what other
/// writers of an AstrBot database may have left: no fraction, a `T`
/// separator, or an RFC 3339 offset.
pub(crate) fn decode_ts(text: &str) -> Result<DateTime<Utc>, StoreError> {
    let text = text.trim();
    if let Some(instant) = decode_own_format(text) {
        return Ok(instant);
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(naive.and_utc());
        }
    }
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("unreadable timestamp {text:?}")))
}

/// Reads exactly what [`encode_ts`] writes, without chrono's format
/// parser; `None` leaves anything else (or an impossible date) to it.
fn decode_own_format(text: &str) -> Option<DateTime<Utc>> {
    let text: &[u8; 26] = text.as_bytes().try_into().ok()?;
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b' '),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ];
    if separators.iter().any(|&(at, byte)| text[at] != byte) {
        return None;
    }
    let number = |from: usize, to: usize| {
        text[from..to].iter().try_fold(0u32, |value, &byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + u32::from(byte - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(5, 7)?,
        number(8, 10)?,
    )?;
    let time = NaiveTime::from_hms_micro_opt(
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
        number(20, 26)?,
    )?;
    Some(date.and_time(time).and_utc())
}

/// A NOT NULL timestamp column.
pub(crate) fn ts(row: &Row, column: &str) -> DbResult<DateTime<Utc>> {
    let text: String = row.get(column)?;
    Ok(decode_ts(&text)?)
}

/// A nullable timestamp column.
pub(crate) fn opt_ts(row: &Row, column: &str) -> DbResult<Option<DateTime<Utc>>> {
    let text: Option<String> = row.get(column)?;
    Ok(text.as_deref().map(decode_ts).transpose()?)
}

/// A JSON column that must hold valid JSON.
pub(crate) fn json(row: &Row, column: &str) -> DbResult<Value> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("column {column} is not JSON: {e}")).into())
}

/// Serialises a value for a JSON column.
pub(crate) fn to_json_text(value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

/// A count from SQL (`i64`) as the trait's `u64`; a negative count cannot
/// happen, but is treated as corrupt rather than wrapped.
pub(crate) fn count(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative count {value}")))
}

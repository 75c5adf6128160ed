//! Conversions between Rust values and what is stored: the timestamp text
//! format and JSON columns.

use astrbot_core::json_text::from_python_json;
use astrbot_core::store::ConversationContent;
use astrbot_core::StoreError;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use rusqlite::types::ValueRef;
use rusqlite::Row;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::db::DbResult;

/// The stored timestamp layout: a digit wherever this has `0`.
const LAYOUT: &[u8; 26] = b"0000-00-00 00:00:00.000000";

/// Where [`LAYOUT`] holds the year, month, day, hour, minute, second and
/// microseconds (start and end of each).
const FIELDS: [(usize, usize); 7] = [
    (0, 4),
    (5, 7),
    (8, 10),
    (11, 13),
    (14, 16),
    (17, 19),
    (20, 26),
];

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
    let values = [
        year,
        instant.month(),
        instant.day(),
        instant.hour(),
        instant.minute(),
        instant.second(),
        micros,
    ];
    let mut text = *LAYOUT;
    for ((from, to), value) in FIELDS.into_iter().zip(values) {
        put_digits(&mut text[from..to], value);
    }
    // All ASCII, so this never replaces anything; it copies the 26 bytes
    // at once where collecting them as chars pushed one at a time.
    String::from_utf8_lossy(&text).into_owned()
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
    let text = text.as_bytes();
    let fits = text.len() == LAYOUT.len()
        && text.iter().zip(LAYOUT).all(|(&byte, &expected)| {
            if expected == b'0' {
                byte.is_ascii_digit()
            } else {
                byte == expected
            }
        });
    if !fits {
        return None;
    }
    let [year, month, day, hour, minute, second, micros] = FIELDS.map(|(from, to)| {
        text[from..to]
            .iter()
            .fold(0, |value, &digit| value * 10 + u32::from(digit - b'0'))
    });
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
    Some(date.and_time(time).and_utc())
}

/// A NOT NULL timestamp column.
pub(crate) fn ts(row: &Row, column: &str) -> DbResult<DateTime<Utc>> {
    Ok(decode_ts(text(row.get_ref(column)?, column)?)?)
}

/// A nullable timestamp column.
pub(crate) fn opt_ts(row: &Row, column: &str) -> DbResult<Option<DateTime<Utc>>> {
    match row.get_ref(column)? {
        ValueRef::Null => Ok(None),
        value => Ok(Some(decode_ts(text(value, column)?)?)),
    }
}

/// A column's text, read where SQLite holds it instead of copied out: the
/// callers only parse it.
fn text<'row>(value: ValueRef<'row>, column: &str) -> DbResult<&'row str> {
    let text = value
        .as_str()
        .map_err(|e| StoreError::Corrupt(format!("column {column} is not text: {e}")))?;
    Ok(text)
}

/// A JSON column that must hold valid JSON.
pub(crate) fn json(row: &Row, column: &str) -> DbResult<Value> {
    parse_json(row.get_ref(column)?, column)
}

/// A nullable JSON column: `None` for SQL `NULL`, else valid JSON.
pub(crate) fn opt_json(row: &Row, column: &str) -> DbResult<Option<Value>> {
    match row.get_ref(column)? {
        ValueRef::Null => Ok(None),
        value => parse_json(value, column).map(Some),
    }
}

fn parse_json(value: ValueRef<'_>, column: &str) -> DbResult<Value> {
    from_python_json(text(value, column)?)
        .map_err(|e| StoreError::Corrupt(format!("column {column} is not JSON: {e}")).into())
}

/// A conversation's `content` column: its messages, or why it holds none.
/// Never an error, so that one unreadable conversation does not fail the
/// reads it is part of; the caller starts a new one and keeps it as it is.
pub(crate) fn conversation_content(row: &Row, column: &str) -> DbResult<ConversationContent> {
    let value = row.get_ref(column)?;
    if let ValueRef::Null = value {
        return Ok(ConversationContent::Messages(Vec::new()));
    }
    let messages = text(value, column).and_then(|text| {
        from_python_json::<Vec<Box<RawValue>>>(text).map_err(|e| {
            StoreError::Corrupt(format!("column {column} is not a list of messages: {e}")).into()
        })
    });
    Ok(match messages {
        Ok(messages) => ConversationContent::Messages(messages),
        Err(error) => ConversationContent::Unreadable(StoreError::from(error).to_string()),
    })
}

/// Serialises a value for a JSON column.
pub(crate) fn to_json_text(value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

/// A count from SQL (`i64`) as the trait's `u64`; a negative count cannot
/// happen, but is treated as corrupt rather than wrapped.
pub(crate) fn count(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative count {value}")))
}

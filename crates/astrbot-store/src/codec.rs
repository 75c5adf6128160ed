//! Conversions between Rust values and what is stored: the timestamp text
//! format and JSON columns.

use astrbot_core::StoreError;
use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
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
/// Written field by field: a chrono format string is parsed again on every
/// call, and every stored turn writes two timestamps.
pub(crate) fn encode_ts(instant: DateTime<Utc>) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        instant.year(),
        instant.month(),
        instant.day(),
        instant.hour(),
        instant.minute(),
        instant.second(),
        // A leap second shows as nanoseconds past 999,999,999.
        (instant.nanosecond() % 1_000_000_000) / 1_000
    )
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
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(naive.and_utc());
        }
    }
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("unreadable timestamp {text:?}")))
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

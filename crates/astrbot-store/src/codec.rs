//! Conversions between Rust values and what is stored: the timestamp text
//! format, JSON columns, and the mapping of sqlx errors onto `StoreError`.

use astrbot_core::StoreError;
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// The one format every timestamp is written in: naive UTC with exactly six
/// fractional digits, as SQLAlchemy writes it for AstrBot. Fixed width means
/// text order is time order, so `expires_at > ?` and `ORDER BY` work on the
/// raw column in any SQL database.
const WRITE_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// Renders an instant for storage (sub-microsecond digits are dropped).
pub(crate) fn encode_ts(instant: DateTime<Utc>) -> String {
    instant.format(WRITE_FORMAT).to_string()
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
pub(crate) fn ts(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let text: String = row.try_get(column).map_err(db_err)?;
    decode_ts(&text)
}

/// A nullable timestamp column.
pub(crate) fn opt_ts(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let text: Option<String> = row.try_get(column).map_err(db_err)?;
    text.as_deref().map(decode_ts).transpose()
}

/// A JSON column that must hold valid JSON.
pub(crate) fn json(row: &SqliteRow, column: &str) -> Result<Value, StoreError> {
    let text: String = row.try_get(column).map_err(db_err)?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("column {column} is not JSON: {e}")))
}

/// Serialises a value for a JSON column.
pub(crate) fn to_json_text(value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

/// Maps a sqlx error: unique violations are conflicts with existing data,
/// decode problems mean the stored data is bad, the rest is the database's.
pub(crate) fn db_err(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(error.to_string()),
        _ => StoreError::Backend(error.to_string()),
    }
}

/// A count from SQL (`i64`) as the trait's `u64`; a negative count cannot
/// happen, but is treated as corrupt rather than wrapped.
pub(crate) fn count(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative count {value}")))
}

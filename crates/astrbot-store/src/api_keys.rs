//! `api_keys`: developer API keys. Only hashes are stored; a key is "active"
//! when it is neither revoked nor past its expiry.

use astrbot_core::json_text::from_python_json;
use astrbot_core::store::{ApiKeyRecord, NewApiKey};
use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, Row};
use serde_json::Value;

use crate::codec::{count, encode_ts, opt_ts, truncate_micros, ts};
use crate::db::{all_rows, execute, optional_row, DbResult};

const COLUMNS: &str = "key_id, name, key_hash, lookup_hash, key_prefix, scopes, created_by, \
                       created_at, updated_at, last_used_at, expires_at, revoked_at";

/// Which hash column an active-key lookup matches on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum By {
    /// Our SHA-256 `lookup_hash`.
    Lookup,
    /// AstrBot's PBKDF2 `key_hash`.
    Hash,
}

pub(crate) fn create(connection: &Connection, key: &NewApiKey) -> DbResult<ApiKeyRecord> {
    let now = astrbot_core::time::now();
    let record = ApiKeyRecord {
        key_id: key.key_id.clone(),
        name: key.name.clone(),
        key_hash: key.key_hash.clone(),
        lookup_hash: Some(key.lookup_hash.clone()),
        key_prefix: key.key_prefix.clone(),
        scopes: Some(key.scopes.clone()),
        created_by: key.created_by.clone(),
        created_at: now,
        updated_at: now,
        last_used_at: None,
        expires_at: key.expires_at.map(truncate_micros),
        revoked_at: None,
    };
    // A Vec<String> always serialises; the fallback only avoids an unwrap.
    let scopes = serde_json::to_string(&record.scopes).unwrap_or_else(|_| "[]".to_owned());
    execute(
        connection,
        "INSERT INTO api_keys (key_id, name, key_hash, lookup_hash, key_prefix, scopes, \
         created_by, created_at, updated_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            record.key_id,
            record.name,
            record.key_hash,
            record.lookup_hash,
            record.key_prefix,
            scopes,
            record.created_by,
            encode_ts(now),
            encode_ts(now),
            record.expires_at.map(encode_ts),
        ],
    )?;
    Ok(record)
}

pub(crate) fn list(connection: &Connection) -> DbResult<Vec<ApiKeyRecord>> {
    // inner_id breaks ties between keys created in the same microsecond.
    let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at DESC, inner_id DESC");
    all_rows(connection, &sql, [], from_row)
}

pub(crate) fn get(connection: &Connection, key_id: &str) -> DbResult<Option<ApiKeyRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE key_id = ?");
    optional_row(connection, &sql, [key_id], from_row)
}

pub(crate) fn find_active(
    connection: &Connection,
    by: By,
    hash: &str,
    now: DateTime<Utc>,
) -> DbResult<Option<ApiKeyRecord>> {
    let column = match by {
        By::Lookup => "lookup_hash",
        By::Hash => "key_hash",
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys WHERE {column} = ? \
         AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"
    );
    let record = optional_row(connection, &sql, params![hash, encode_ts(now)], from_row)?;
    // The SQL compares timestamps as text, exact for the format we write. A
    // row written by another tool in another format (a `T`, an offset) can
    // compare wrongly, so the parsed instant is checked again.
    Ok(record.filter(|record| record.expires_at.is_none_or(|expiry| expiry > now)))
}

pub(crate) fn count_without_lookup(connection: &Connection) -> DbResult<u64> {
    let n: i64 = connection
        .prepare_cached("SELECT COUNT(*) FROM api_keys WHERE lookup_hash IS NULL")?
        .query_row([], |row| row.get(0))?;
    Ok(count(n)?)
}

pub(crate) fn set_lookup(connection: &Connection, key_id: &str, lookup_hash: &str) -> DbResult<()> {
    // updated_at is left alone: this is a storage migration, not a change
    // of the key that an admin would want to see.
    execute(
        connection,
        "UPDATE api_keys SET lookup_hash = ? WHERE key_id = ?",
        [lookup_hash, key_id],
    )?;
    Ok(())
}

pub(crate) fn touch(connection: &Connection, key_id: &str, now: DateTime<Utc>) -> DbResult<()> {
    let now = encode_ts(now);
    execute(
        connection,
        "UPDATE api_keys SET last_used_at = ?, updated_at = ? WHERE key_id = ?",
        [&now, &now, key_id],
    )?;
    Ok(())
}

pub(crate) fn revoke(connection: &Connection, key_id: &str, now: DateTime<Utc>) -> DbResult<bool> {
    // No `revoked_at IS NULL` condition: AstrBot lets a second revoke succeed
    // and overwrite the instant.
    let now = encode_ts(now);
    let changed = execute(
        connection,
        "UPDATE api_keys SET revoked_at = ?, updated_at = ? WHERE key_id = ?",
        [&now, &now, key_id],
    )?;
    Ok(changed > 0)
}

pub(crate) fn delete(connection: &Connection, key_id: &str) -> DbResult<bool> {
    let changed = execute(
        connection,
        "DELETE FROM api_keys WHERE key_id = ?",
        [key_id],
    )?;
    Ok(changed > 0)
}

fn from_row(row: &Row) -> DbResult<ApiKeyRecord> {
    let scopes = stored_scopes(row.get_ref("scopes")?);
    Ok(ApiKeyRecord {
        key_id: row.get("key_id")?,
        name: row.get("name")?,
        key_hash: row.get("key_hash")?,
        lookup_hash: row.get("lookup_hash")?,
        key_prefix: row.get("key_prefix")?,
        scopes,
        created_by: row.get("created_by")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
        last_used_at: opt_ts(row, "last_used_at")?,
        expires_at: opt_ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

/// The scopes a stored value grants. SQLite keeps whatever type was written:
/// text and blobs hold JSON (Python's `json` reads both), and a number or
/// NULL is no list, so all scopes apply, as for any value that is not one.
fn stored_scopes(value: ValueRef<'_>) -> Option<Vec<String>> {
    match value {
        ValueRef::Text(text) | ValueRef::Blob(text) => {
            decode_scopes(std::str::from_utf8(text).ok()?)
        }
        ValueRef::Integer(_) | ValueRef::Real(_) | ValueRef::Null => None,
    }
}

/// `None` (all scopes apply, as in AstrBot) when the text is not a JSON list,
/// including invalid JSON. A list keeps only its string items: AstrBot checks
/// membership in whatever list is stored, so non-strings grant nothing, and a
/// malformed list must not widen a key to every scope.
fn decode_scopes(text: &str) -> Option<Vec<String>> {
    match from_python_json::<Value>(text).ok()? {
        Value::Array(items) => Some(
            items
                .into_iter()
                .filter_map(|item| match item {
                    Value::String(scope) => Some(scope),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

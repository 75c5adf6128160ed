//! `api_keys`: developer API keys. Only hashes are stored; a key is "active"
//! when it is neither revoked nor past its expiry.

use astrbot_core::store::{ApiKeyRecord, NewApiKey};
use astrbot_core::StoreResult;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use crate::codec::{count, db_err, encode_ts, opt_ts, truncate_micros, ts};

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

pub(crate) async fn create(pool: &SqlitePool, key: NewApiKey) -> StoreResult<ApiKeyRecord> {
    let now = astrbot_core::time::now();
    let record = ApiKeyRecord {
        key_id: key.key_id,
        name: key.name,
        key_hash: key.key_hash,
        lookup_hash: Some(key.lookup_hash),
        key_prefix: key.key_prefix,
        scopes: Some(key.scopes),
        created_by: key.created_by,
        created_at: now,
        updated_at: now,
        last_used_at: None,
        expires_at: key.expires_at.map(truncate_micros),
        revoked_at: None,
    };
    // A Vec<String> always serialises; the fallback only avoids an unwrap.
    let scopes = serde_json::to_string(&record.scopes).unwrap_or_else(|_| "[]".to_owned());
    sqlx::query(
        "INSERT INTO api_keys (key_id, name, key_hash, lookup_hash, key_prefix, scopes, \
         created_by, created_at, updated_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&record.key_id)
    .bind(&record.name)
    .bind(&record.key_hash)
    .bind(&record.lookup_hash)
    .bind(&record.key_prefix)
    .bind(scopes)
    .bind(&record.created_by)
    .bind(encode_ts(now))
    .bind(encode_ts(now))
    .bind(record.expires_at.map(encode_ts))
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(record)
}

pub(crate) async fn list(pool: &SqlitePool) -> StoreResult<Vec<ApiKeyRecord>> {
    // inner_id breaks ties between keys created in the same microsecond.
    let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at DESC, inner_id DESC");
    let rows = sqlx::query(&sql).fetch_all(pool).await.map_err(db_err)?;
    rows.iter().map(from_row).collect()
}

pub(crate) async fn get(pool: &SqlitePool, key_id: &str) -> StoreResult<Option<ApiKeyRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE key_id = ?");
    let row = sqlx::query(&sql)
        .bind(key_id)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn find_active(
    pool: &SqlitePool,
    by: By,
    hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<ApiKeyRecord>> {
    let column = match by {
        By::Lookup => "lookup_hash",
        By::Hash => "key_hash",
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys WHERE {column} = ? \
         AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"
    );
    let row = sqlx::query(&sql)
        .bind(hash)
        .bind(encode_ts(now))
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    // The SQL compares timestamps as text, exact for the format we write. A
    // row written by another tool in another format (a `T`, an offset) can
    // compare wrongly, so the parsed instant is checked again.
    let record = row.as_ref().map(from_row).transpose()?;
    Ok(record.filter(|record| record.expires_at.is_none_or(|expiry| expiry > now)))
}

pub(crate) async fn count_without_lookup(pool: &SqlitePool) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE lookup_hash IS NULL")
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    count(n)
}

pub(crate) async fn set_lookup(
    pool: &SqlitePool,
    key_id: &str,
    lookup_hash: &str,
) -> StoreResult<()> {
    // updated_at is left alone: this is a storage migration, not a change
    // of the key that an admin would want to see.
    sqlx::query("UPDATE api_keys SET lookup_hash = ? WHERE key_id = ?")
        .bind(lookup_hash)
        .bind(key_id)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn touch(pool: &SqlitePool, key_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
    let now = encode_ts(now);
    sqlx::query("UPDATE api_keys SET last_used_at = ?, updated_at = ? WHERE key_id = ?")
        .bind(&now)
        .bind(&now)
        .bind(key_id)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn revoke(
    pool: &SqlitePool,
    key_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    // No `revoked_at IS NULL` condition: AstrBot lets a second revoke succeed
    // and overwrite the instant.
    let now = encode_ts(now);
    let done = sqlx::query("UPDATE api_keys SET revoked_at = ?, updated_at = ? WHERE key_id = ?")
        .bind(&now)
        .bind(&now)
        .bind(key_id)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn delete(pool: &SqlitePool, key_id: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM api_keys WHERE key_id = ?")
        .bind(key_id)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected() > 0)
}

fn from_row(row: &SqliteRow) -> StoreResult<ApiKeyRecord> {
    let scopes: Option<String> = row.try_get("scopes").map_err(db_err)?;
    Ok(ApiKeyRecord {
        key_id: row.try_get("key_id").map_err(db_err)?,
        name: row.try_get("name").map_err(db_err)?,
        key_hash: row.try_get("key_hash").map_err(db_err)?,
        lookup_hash: row.try_get("lookup_hash").map_err(db_err)?,
        key_prefix: row.try_get("key_prefix").map_err(db_err)?,
        scopes: scopes.as_deref().and_then(decode_scopes),
        created_by: row.try_get("created_by").map_err(db_err)?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
        last_used_at: opt_ts(row, "last_used_at")?,
        expires_at: opt_ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

/// `None` (all scopes apply, as in AstrBot) when the text is not a JSON list,
/// including invalid JSON. A list keeps only its string items: AstrBot checks
/// membership in whatever list is stored, so non-strings grant nothing, and a
/// malformed list must not widen a key to every scope.
fn decode_scopes(text: &str) -> Option<Vec<String>> {
    match serde_json::from_str::<Value>(text).ok()? {
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

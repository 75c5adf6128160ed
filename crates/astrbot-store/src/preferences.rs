//! `preferences`: AstrBot's scoped key/value table. Values are stored wrapped
//! as `{"val": value}`, exactly as AstrBot writes them, so a database can be
//! shared with it; callers see only the inner value.

use astrbot_core::{StoreError, StoreResult};
use serde_json::{json, Value};
use sqlx::SqlitePool;

use crate::codec::{db_err, encode_ts, to_json_text};

pub(crate) async fn get(
    pool: &SqlitePool,
    scope: &str,
    scope_id: &str,
    key: &str,
) -> StoreResult<Option<Value>> {
    let text: Option<String> = sqlx::query_scalar(
        "SELECT value FROM preferences WHERE scope = ? AND scope_id = ? AND \"key\" = ?",
    )
    .bind(scope)
    .bind(scope_id)
    .bind(key)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    let Some(text) = text else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(mut wrapper)) if wrapper.contains_key("val") => Ok(wrapper.remove("val")),
        _ => Err(StoreError::Corrupt(format!(
            "preference {scope}/{scope_id}/{key} is not {{\"val\": ...}}"
        ))),
    }
}

pub(crate) async fn put(
    pool: &SqlitePool,
    scope: &str,
    scope_id: &str,
    key: &str,
    value: &Value,
) -> StoreResult<()> {
    let now = encode_ts(astrbot_core::time::now());
    let wrapped = to_json_text(&json!({ "val": value }))?;
    // One statement, so concurrent writers of the same key cannot race
    // between a SELECT and an INSERT. Same syntax in PostgreSQL.
    sqlx::query(
        "INSERT INTO preferences (scope, scope_id, \"key\", value, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (scope, scope_id, \"key\") \
         DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(scope)
    .bind(scope_id)
    .bind(key)
    .bind(wrapped)
    .bind(&now)
    .bind(&now)
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn delete(
    pool: &SqlitePool,
    scope: &str,
    scope_id: &str,
    key: &str,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM preferences WHERE scope = ? AND scope_id = ? AND \"key\" = ?")
        .bind(scope)
        .bind(scope_id)
        .bind(key)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

//! `preferences`: AstrBot's scoped key/value table. Values are stored wrapped
//! as `{"val": value}`, exactly as AstrBot writes them, so a database can be
//! shared with it; callers see only the inner value.

use astrbot_core::json_text::from_python_json;
use astrbot_core::StoreError;
use rusqlite::{params, Connection};
use serde_json::{json, Value};

use crate::codec::{encode_ts, to_json_text};
use crate::db::{execute, optional_row, DbResult};

pub(crate) fn get(
    connection: &Connection,
    scope: &str,
    scope_id: &str,
    key: &str,
) -> DbResult<Option<Value>> {
    let text: Option<String> = optional_row(
        connection,
        "SELECT value FROM preferences WHERE scope = ? AND scope_id = ? AND \"key\" = ?",
        [scope, scope_id, key],
        |row| Ok(row.get(0)?),
    )?;
    let Some(text) = text else {
        return Ok(None);
    };
    match from_python_json::<Value>(&text) {
        Ok(Value::Object(mut wrapper)) if wrapper.contains_key("val") => Ok(wrapper.remove("val")),
        _ => Err(StoreError::Corrupt(format!(
            "preference {scope}/{scope_id}/{key} is not {{\"val\": ...}}"
        ))
        .into()),
    }
}

/// A value as stored: `{"val": value}` as JSON text.
pub(crate) fn wrap(value: &Value) -> Result<String, StoreError> {
    to_json_text(&json!({ "val": value }))
}

/// Stores `wrapped` (see [`wrap`]) under the key.
pub(crate) fn put(
    connection: &Connection,
    scope: &str,
    scope_id: &str,
    key: &str,
    wrapped: &str,
) -> DbResult<()> {
    let now = encode_ts(astrbot_core::time::now());
    // One statement, so concurrent writers of the same key cannot race
    // between a SELECT and an INSERT. Same syntax in PostgreSQL.
    execute(
        connection,
        "INSERT INTO preferences (scope, scope_id, \"key\", value, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (scope, scope_id, \"key\") \
         DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![scope, scope_id, key, wrapped, now, now],
    )?;
    Ok(())
}

pub(crate) fn delete(
    connection: &Connection,
    scope: &str,
    scope_id: &str,
    key: &str,
) -> DbResult<()> {
    execute(
        connection,
        "DELETE FROM preferences WHERE scope = ? AND scope_id = ? AND \"key\" = ?",
        [scope, scope_id, key],
    )?;
    Ok(())
}

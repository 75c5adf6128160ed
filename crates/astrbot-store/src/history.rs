//! `platform_message_history`: the turns the ChatUI shows. The integer `id`
//! is public (it is what `message_saved` reports and replies point at).

use astrbot_core::store::{HistoryRecord, NewHistory};
use astrbot_core::StoreResult;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use crate::codec::{db_err, encode_ts, json, to_json_text, ts};

const COLUMNS: &str = "id, platform_id, user_id, sender_id, sender_name, content, created_at";

pub(crate) async fn insert(pool: &SqlitePool, turn: NewHistory) -> StoreResult<HistoryRecord> {
    let now = astrbot_core::time::now();
    // RETURNING (SQLite ≥ 3.35 and PostgreSQL) gives the id in one round trip.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO platform_message_history \
         (platform_id, user_id, sender_id, sender_name, content, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&turn.platform_id)
    .bind(&turn.user_id)
    .bind(&turn.sender_id)
    .bind(&turn.sender_name)
    .bind(to_json_text(&turn.content)?)
    .bind(encode_ts(now))
    .bind(encode_ts(now))
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    Ok(HistoryRecord {
        id,
        platform_id: turn.platform_id,
        user_id: turn.user_id,
        sender_id: turn.sender_id,
        sender_name: turn.sender_name,
        content: turn.content,
        created_at: now,
    })
}

pub(crate) async fn get(pool: &SqlitePool, id: i64) -> StoreResult<Option<HistoryRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM platform_message_history WHERE id = ?");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn list(
    pool: &SqlitePool,
    platform_id: &str,
    user_id: &str,
) -> StoreResult<Vec<HistoryRecord>> {
    // Ordered by id, not created_at: ids follow insertion order exactly,
    // even for turns saved within the same microsecond.
    let sql = format!(
        "SELECT {COLUMNS} FROM platform_message_history \
         WHERE platform_id = ? AND user_id = ? ORDER BY id"
    );
    let rows = sqlx::query(&sql)
        .bind(platform_id)
        .bind(user_id)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &SqliteRow) -> StoreResult<HistoryRecord> {
    Ok(HistoryRecord {
        id: row.try_get("id").map_err(db_err)?,
        platform_id: row.try_get("platform_id").map_err(db_err)?,
        user_id: row.try_get("user_id").map_err(db_err)?,
        sender_id: row.try_get("sender_id").map_err(db_err)?,
        sender_name: row.try_get("sender_name").map_err(db_err)?,
        content: json(row, "content")?,
        created_at: ts(row, "created_at")?,
    })
}

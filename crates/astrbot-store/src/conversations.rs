//! `conversations`: the LLM context of a UMO, a JSON list of OpenAI-style
//! messages that the agent rewrites after each run.

use astrbot_core::store::ConversationRecord;
use astrbot_core::StoreResult;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use crate::codec::{db_err, encode_ts, json, to_json_text, ts};

pub(crate) async fn create(
    pool: &SqlitePool,
    platform_id: &str,
    umo: &str,
) -> StoreResult<ConversationRecord> {
    let now = astrbot_core::time::now();
    let record = ConversationRecord {
        conversation_id: uuid::Uuid::new_v4().to_string(),
        platform_id: platform_id.to_owned(),
        user_id: umo.to_owned(),
        content: Value::Array(Vec::new()),
        title: None,
        persona_id: None,
        token_usage: 0,
        created_at: now,
        updated_at: now,
    };
    sqlx::query(
        "INSERT INTO conversations \
         (conversation_id, platform_id, user_id, content, token_usage, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&record.conversation_id)
    .bind(&record.platform_id)
    .bind(&record.user_id)
    .bind(to_json_text(&record.content)?)
    .bind(record.token_usage)
    .bind(encode_ts(now))
    .bind(encode_ts(now))
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(record)
}

pub(crate) async fn get(
    pool: &SqlitePool,
    conversation_id: &str,
) -> StoreResult<Option<ConversationRecord>> {
    let row = sqlx::query(
        "SELECT conversation_id, platform_id, user_id, content, title, persona_id, token_usage, \
         created_at, updated_at FROM conversations WHERE conversation_id = ?",
    )
    .bind(conversation_id)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn update(
    pool: &SqlitePool,
    conversation_id: &str,
    content: &Value,
    token_usage: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE conversations SET content = ?, token_usage = ?, updated_at = ? \
         WHERE conversation_id = ?",
    )
    .bind(to_json_text(content)?)
    .bind(token_usage)
    .bind(encode_ts(astrbot_core::time::now()))
    .bind(conversation_id)
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn from_row(row: &SqliteRow) -> StoreResult<ConversationRecord> {
    // AstrBot's column is nullable; a NULL content is an empty context.
    let content: Option<String> = row.try_get("content").map_err(db_err)?;
    let content = match content {
        None => Value::Array(Vec::new()),
        Some(_) => json(row, "content")?,
    };
    let token_usage: Option<i64> = row.try_get("token_usage").map_err(db_err)?;
    Ok(ConversationRecord {
        conversation_id: row.try_get("conversation_id").map_err(db_err)?,
        platform_id: row.try_get("platform_id").map_err(db_err)?,
        user_id: row.try_get("user_id").map_err(db_err)?,
        content,
        title: row.try_get("title").map_err(db_err)?,
        persona_id: row.try_get("persona_id").map_err(db_err)?,
        token_usage: token_usage.unwrap_or(0),
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

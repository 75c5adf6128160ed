//! `conversations`: the LLM context of a UMO, a JSON list of OpenAI-style
//! messages that the agent rewrites after each run.

use astrbot_core::store::{ConversationContent, ConversationRecord};
use rusqlite::{params, Connection, Row};

use crate::codec::{conversation_content, encode_ts, ts};
use crate::db::{execute, optional_row, DbResult};

pub(crate) fn create(
    connection: &Connection,
    platform_id: &str,
    umo: &str,
) -> DbResult<ConversationRecord> {
    let now = astrbot_core::time::now();
    let record = ConversationRecord {
        conversation_id: uuid::Uuid::new_v4().to_string(),
        platform_id: platform_id.to_owned(),
        user_id: umo.to_owned(),
        content: ConversationContent::Messages(Vec::new()),
        title: None,
        persona_id: None,
        token_usage: 0,
        created_at: now,
        updated_at: now,
    };
    execute(
        connection,
        "INSERT INTO conversations \
         (conversation_id, platform_id, user_id, content, token_usage, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![
            record.conversation_id,
            record.platform_id,
            record.user_id,
            "[]",
            record.token_usage,
            encode_ts(now),
            encode_ts(now),
        ],
    )?;
    Ok(record)
}

pub(crate) fn get(
    connection: &Connection,
    conversation_id: &str,
) -> DbResult<Option<ConversationRecord>> {
    optional_row(
        connection,
        "SELECT conversation_id, platform_id, user_id, content, title, persona_id, token_usage, \
         created_at, updated_at FROM conversations WHERE conversation_id = ?",
        [conversation_id],
        from_row,
    )
}

/// `content` is the new context, already encoded as JSON text.
pub(crate) fn update(
    connection: &Connection,
    conversation_id: &str,
    content: &str,
    token_usage: i64,
) -> DbResult<()> {
    execute(
        connection,
        "UPDATE conversations SET content = ?, token_usage = ?, updated_at = ? \
         WHERE conversation_id = ?",
        params![
            content,
            token_usage,
            encode_ts(astrbot_core::time::now()),
            conversation_id,
        ],
    )?;
    Ok(())
}

fn from_row(row: &Row) -> DbResult<ConversationRecord> {
    let content = conversation_content(row, "content")?;
    let token_usage: Option<i64> = row.get("token_usage")?;
    Ok(ConversationRecord {
        conversation_id: row.get("conversation_id")?,
        platform_id: row.get("platform_id")?,
        user_id: row.get("user_id")?,
        content,
        title: row.get("title")?,
        persona_id: row.get("persona_id")?,
        token_usage: token_usage.unwrap_or(0),
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

//! `platform_message_history`: the turns the ChatUI shows. The integer `id`
//! is public (it is what `message_saved` reports and replies point at).

use astrbot_core::store::{HistoryRecord, NewHistory};
use astrbot_core::StoreError;
use rusqlite::{params, Connection, Row};

use crate::codec::{encode_ts, json, to_json_text, ts};
use crate::db::{all_rows, execute, optional_row, DbResult};

const COLUMNS: &str = "id, platform_id, user_id, sender_id, sender_name, content, created_at";

/// Inserts `turn` and returns it as stored; the turn is moved into the
/// record rather than copied, since the writer holds the database lock.
pub(crate) fn insert(connection: &Connection, turn: NewHistory) -> DbResult<HistoryRecord> {
    let now = astrbot_core::time::now();
    // The id is the rowid SQLite just assigned on this connection, which
    // costs nothing to read; `RETURNING id` would build a result table. (A
    // PostgreSQL store would use `RETURNING`.)
    let inserted = execute(
        connection,
        "INSERT INTO platform_message_history \
         (platform_id, user_id, sender_id, sender_name, content, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![
            turn.platform_id,
            turn.user_id,
            turn.sender_id,
            turn.sender_name,
            to_json_text(&turn.content)?,
            encode_ts(now),
            encode_ts(now),
        ],
    )?;
    // A trigger another tool put on AstrBot's table can skip the insert
    // (`RAISE(IGNORE)`); the last rowid would then be an older row's.
    if inserted != 1 {
        return Err(StoreError::Backend("the history row was not inserted".to_owned()).into());
    }
    let id = connection.last_insert_rowid();
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

pub(crate) fn get(connection: &Connection, id: i64) -> DbResult<Option<HistoryRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM platform_message_history WHERE id = ?");
    optional_row(connection, &sql, [id], from_row)
}

pub(crate) fn list(
    connection: &Connection,
    platform_id: &str,
    user_id: &str,
) -> DbResult<Vec<HistoryRecord>> {
    // Ordered by id, not created_at: ids follow insertion order exactly,
    // even for turns saved within the same microsecond.
    let sql = format!(
        "SELECT {COLUMNS} FROM platform_message_history \
         WHERE platform_id = ? AND user_id = ? ORDER BY id"
    );
    all_rows(connection, &sql, [platform_id, user_id], from_row)
}

fn from_row(row: &Row) -> DbResult<HistoryRecord> {
    Ok(HistoryRecord {
        id: row.get("id")?,
        platform_id: row.get("platform_id")?,
        user_id: row.get("user_id")?,
        sender_id: row.get("sender_id")?,
        sender_name: row.get("sender_name")?,
        content: json(row, "content")?,
        created_at: ts(row, "created_at")?,
    })
}

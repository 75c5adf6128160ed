//! `attachments`: uploaded files, by id. The file itself lives on disk at
//! `path`; only its metadata is stored here.

use astrbot_core::store::AttachmentRecord;
use rusqlite::{params, Connection, Row};

use crate::codec::{encode_ts, ts};
use crate::db::{execute, optional_row, DbResult};

pub(crate) fn create(
    connection: &Connection,
    attachment_id: &str,
    path: &str,
    kind: &str,
    mime_type: &str,
) -> DbResult<AttachmentRecord> {
    let now = astrbot_core::time::now();
    // The column is AstrBot's `type`; the record calls it `kind`.
    execute(
        connection,
        "INSERT INTO attachments (attachment_id, path, type, mime_type, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
        params![
            attachment_id,
            path,
            kind,
            mime_type,
            encode_ts(now),
            encode_ts(now)
        ],
    )?;
    Ok(AttachmentRecord {
        attachment_id: attachment_id.to_owned(),
        path: path.to_owned(),
        kind: kind.to_owned(),
        mime_type: mime_type.to_owned(),
        created_at: now,
    })
}

pub(crate) fn get(
    connection: &Connection,
    attachment_id: &str,
) -> DbResult<Option<AttachmentRecord>> {
    optional_row(
        connection,
        "SELECT attachment_id, path, type, mime_type, created_at \
         FROM attachments WHERE attachment_id = ?",
        [attachment_id],
        from_row,
    )
}

fn from_row(row: &Row) -> DbResult<AttachmentRecord> {
    Ok(AttachmentRecord {
        attachment_id: row.get("attachment_id")?,
        path: row.get("path")?,
        kind: row.get("type")?,
        mime_type: row.get("mime_type")?,
        created_at: ts(row, "created_at")?,
    })
}

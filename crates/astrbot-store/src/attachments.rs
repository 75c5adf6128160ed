//! `attachments`: uploaded files, by id. The file itself lives on disk at
//! `path`; only its metadata is stored here.

use astrbot_core::store::AttachmentRecord;
use astrbot_core::StoreResult;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use crate::codec::{db_err, encode_ts, ts};

pub(crate) async fn create(
    pool: &SqlitePool,
    attachment_id: &str,
    path: &str,
    kind: &str,
    mime_type: &str,
) -> StoreResult<AttachmentRecord> {
    let now = astrbot_core::time::now();
    // The column is AstrBot's `type`; the record calls it `kind`.
    sqlx::query(
        "INSERT INTO attachments (attachment_id, path, type, mime_type, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(attachment_id)
    .bind(path)
    .bind(kind)
    .bind(mime_type)
    .bind(encode_ts(now))
    .bind(encode_ts(now))
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(AttachmentRecord {
        attachment_id: attachment_id.to_owned(),
        path: path.to_owned(),
        kind: kind.to_owned(),
        mime_type: mime_type.to_owned(),
        created_at: now,
    })
}

pub(crate) async fn get(
    pool: &SqlitePool,
    attachment_id: &str,
) -> StoreResult<Option<AttachmentRecord>> {
    let row = sqlx::query(
        "SELECT attachment_id, path, type, mime_type, created_at \
         FROM attachments WHERE attachment_id = ?",
    )
    .bind(attachment_id)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(from_row).transpose()
}

fn from_row(row: &SqliteRow) -> StoreResult<AttachmentRecord> {
    Ok(AttachmentRecord {
        attachment_id: row.try_get("attachment_id").map_err(db_err)?,
        path: row.try_get("path").map_err(db_err)?,
        kind: row.try_get("type").map_err(db_err)?,
        mime_type: row.try_get("mime_type").map_err(db_err)?,
        created_at: ts(row, "created_at")?,
    })
}

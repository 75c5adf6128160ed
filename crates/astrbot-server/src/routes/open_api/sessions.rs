//! `GET /api/v1/chat/sessions`: one user's chat sessions, paginated. The
//! dashboard's `GET /api/chat/sessions` shares [`sessions_page`].

use std::collections::HashMap;

use axum::extract::State;
use serde_json::{json, Value};

use crate::json::Envelope;
use crate::routes::python::{parse_int, PythonQuery};
use crate::state::AppState;
use astrbot_core::time::iso;

const MAX_PAGE_SIZE: i64 = 100;

pub async fn list_sessions(
    State(state): State<AppState>,
    PythonQuery(query): PythonQuery,
) -> Envelope {
    let Some(username) = query.get("username") else {
        return Envelope::error("Missing key: username");
    };
    let username = username.trim();
    if username.is_empty() {
        return Envelope::error("username is empty");
    }
    sessions_page(&state, username, &query).await
}

/// The page of `username`'s sessions that `page`, `page_size` and
/// `platform_id` in `query` select, newest first, in the v1 data shape.
pub(crate) async fn sessions_page(
    state: &AppState,
    username: &str,
    query: &HashMap<String, String>,
) -> Envelope {
    let page = query.get("page").map_or(Some(1), |p| parse_int(p));
    let page_size = query.get("page_size").map_or(Some(20), |p| parse_int(p));
    let (Some(page), Some(page_size)) = (page, page_size) else {
        return Envelope::error("page and page_size must be integers");
    };
    // The page asked for is echoed as it was (AstrBot's integers have no
    // limit); past the last page every page is empty alike.
    let page = page.max(1);
    let listed_page = u32::try_from(page).unwrap_or(u32::MAX);
    let page_size = page_size.clamp(1, MAX_PAGE_SIZE) as u32;
    let platform_id = query
        .get("platform_id")
        .map(String::as_str)
        .filter(|p| !p.is_empty());

    let listed = state
        .store
        .list_sessions(username, platform_id, listed_page, page_size)
        .await;
    match listed {
        Ok(listed) => {
            let sessions: Vec<Value> = listed
                .sessions
                .iter()
                .map(|session| {
                    json!({
                        "session_id": session.session_id,
                        "platform_id": session.platform_id,
                        "creator": session.creator,
                        "display_name": session.display_name,
                        "is_group": i32::from(session.is_group),
                        "created_at": iso(session.created_at),
                        "updated_at": iso(session.updated_at),
                    })
                })
                .collect();
            Envelope::ok(json!({
                "sessions": sessions,
                "page": page,
                "page_size": page_size,
                "total": listed.total,
            }))
        }
        Err(error) => {
            tracing::error!(%error, "listing sessions failed");
            Envelope::error("Failed to list sessions")
        }
    }
}

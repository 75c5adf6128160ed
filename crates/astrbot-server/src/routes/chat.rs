//! The dashboard's chat (AstrBot's ChatUI paths, admin JWT): the signed-in
//! admin chats as themselves through the same pipeline as `/api/v1/chat`.
//!
//! - `POST /api/chat/send`: the `/api/v1/chat` body and SSE stream, with
//!   `username` always the admin's.
//! - `GET /api/chat/sessions`: the admin's sessions, as `/api/v1/chat/sessions`.
//! - `GET /api/chat/history?session_id=…`: one session's UI turns.
//! - `POST /api/chat/post_file`: the `/api/v1/file` upload.
//! - `GET /api/chat/get_attachment?attachment_id=…`: an upload's bytes.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};

use crate::auth::middleware::AdminIdentity;
use crate::json::Envelope;
use crate::routes::open_api::{chat, sessions};
use crate::routes::python::{PythonBody, PythonQuery};
use crate::state::AppState;
use astrbot_core::time::iso;
use astrbot_core::Umo;

/// How long a browser may keep an attachment it previewed.
const ATTACHMENT_CACHE: &str = "private, max-age=3600";

/// `POST /api/chat/send`.
pub async fn send(
    State(state): State<AppState>,
    Extension(admin): Extension<AdminIdentity>,
    PythonBody(mut payload): PythonBody,
) -> Response {
    // The posted name, if any, is not the caller's to choose.
    payload.remove("username");
    chat::accept_turn(&state, admin.username, payload).await
}

/// `GET /api/chat/sessions?page=&page_size=`.
pub async fn list_sessions(
    State(state): State<AppState>,
    Extension(admin): Extension<AdminIdentity>,
    PythonQuery(query): PythonQuery,
) -> Envelope {
    let page = sessions::sessions_page(&state, &admin.username, &query).await;
    // The config a new chat's first turn will use (routes may name every
    // webchat session), for the chat page's selector.
    let new_session = Umo::webchat(&admin.username, &uuid::Uuid::new_v4().to_string());
    let config_id = state
        .configs
        .resolve_for_umo(&new_session.to_string())
        .id
        .clone();
    page.with_data_field("new_session_config_id", Value::String(config_id))
}

/// `GET /api/chat/history?session_id=…`: `{"history": [turns]}`, oldest
/// first; an unknown session has no turns.
pub async fn history(
    State(state): State<AppState>,
    Extension(admin): Extension<AdminIdentity>,
    PythonQuery(query): PythonQuery,
) -> Envelope {
    let session_id = query
        .get("session_id")
        .map(|id| id.trim())
        .unwrap_or_default();
    if session_id.is_empty() {
        return Envelope::error("Missing key: session_id");
    }
    match state.store.get_session(session_id).await {
        Ok(Some(session)) if session.creator != admin.username => {
            return Envelope::error("session_id belongs to another username")
        }
        Ok(_) => {}
        Err(error) => {
            tracing::error!(%error, "session lookup failed");
            return Envelope::error("Failed to read the history");
        }
    }
    match state.store.list_history("webchat", session_id).await {
        Ok(turns) => {
            let history: Vec<Value> = turns
                .into_iter()
                .map(|turn| {
                    json!({
                        "id": turn.id,
                        "created_at": iso(turn.created_at),
                        "sender_id": turn.sender_id,
                        "sender_name": turn.sender_name,
                        "content": turn.content,
                    })
                })
                .collect();
            // The config the session's next turn will use, for the chat
            // page's selector: the page sends a config only when it is
            // changed, so opening a session never rebinds it.
            let umo = Umo::webchat(&admin.username, session_id).to_string();
            let config_id = state.configs.resolve_for_umo(&umo).id.clone();
            Envelope::ok(json!({"history": history, "config_id": config_id}))
        }
        Err(error) => {
            tracing::error!(%error, "listing history failed");
            Envelope::error("Failed to read the history")
        }
    }
}

/// `GET /api/chat/get_attachment?attachment_id=…`: the stored bytes with
/// the stored MIME type. Only files inside `data/attachments/` are served.
pub async fn get_attachment(
    State(state): State<AppState>,
    PythonQuery(query): PythonQuery,
) -> Response {
    let not_found = || {
        Envelope::error_with_status(StatusCode::NOT_FOUND, "Attachment not found").into_response()
    };
    let attachment_id = query
        .get("attachment_id")
        .map(|id| id.trim())
        .unwrap_or_default();
    if attachment_id.is_empty() {
        return Envelope::error("Missing key: attachment_id").into_response();
    }
    let record = match state.store.get_attachment(attachment_id).await {
        Ok(Some(record)) => record,
        Ok(None) => return not_found(),
        Err(error) => {
            tracing::error!(%error, "attachment lookup failed");
            return Envelope::error("Failed to read attachments").into_response();
        }
    };
    // Both sides resolved, so neither `..` nor a symlink can lead out.
    let (Ok(folder), Ok(path)) = (
        tokio::fs::canonicalize(state.root.attachments_dir()).await,
        tokio::fs::canonicalize(state.root.attachment_file(&record.path)).await,
    ) else {
        return not_found();
    };
    if !path.starts_with(&folder) || path == folder {
        tracing::warn!(attachment.id = %attachment_id, "attachment path outside the attachments folder");
        return not_found();
    }
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(attachment.id = %attachment_id, %error, "attachment file unreadable");
            return not_found();
        }
    };
    let content_type = HeaderValue::from_str(&record.mime_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(ATTACHMENT_CACHE),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The type is the uploader's word: an HTML or SVG "attachment" opened
    // from the dashboard's origin must not run script there. A sandbox
    // runs none, and gives the page an origin of its own.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    response
}

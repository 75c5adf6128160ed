//! `POST /api/v1/chat`: validates the request in AstrBot's order, makes sure
//! the session exists and belongs to the caller's user, applies config
//! routing, stores the user turn (with the session, for a new one) and
//! answers with the SSE stream.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::{stream, StreamExt};
use serde_json::{json, Map, Value};
use tokio_stream::wrappers::ReceiverStream;

use super::sse;
use crate::chat::{ChatEvent, ChatTurn, SessionTicket, UserPart};
use crate::config::{escape_glob, DEFAULT_CONFIG_ID};
use crate::json::Envelope;
use crate::routes::python::{to_str, truthy, PythonBody};
use crate::state::AppState;
use astrbot_core::store::NewHistory;
use astrbot_core::{StoreError, Umo, WEBCHAT_PLATFORM_ID};

/// Why a user name with `!` cannot chat; see [`accept_turn`].
pub(crate) const BANG_IN_NAME: &str = "username must not contain '!'";

/// Part types that carry content (a reply alone does not).
const CONTENT_TYPES: [&str; 5] = ["plain", "image", "record", "file", "video"];

pub async fn chat(State(state): State<AppState>, PythonBody(payload): PythonBody) -> Response {
    let username = match payload.get("username") {
        None | Some(Value::Null) => {
            return Envelope::error("Missing key: username").into_response()
        }
        Some(value) => to_str(value).trim().to_owned(),
    };
    if username.is_empty() {
        return Envelope::error("username is empty").into_response();
    }
    accept_turn(&state, username, payload).await
}

/// Prepares and starts the turn. Shared with the dashboard's
/// `POST /api/chat/send`.
pub(crate) async fn accept_turn(
    state: &AppState,
    username: String,
    payload: Map<String, Value>,
) -> Response {
    // A session's conversation is keyed by `webchat!<username>!<session_id>`:
    // with a `!` in the name, user `a!b`'s session `c` and user `a`'s
    // session `b!c` would share one. Without it the key splits one way.
    if username.contains('!') {
        return Envelope::error(BANG_IN_NAME).into_response();
    }
    match prepare(state, username, payload).await {
        Ok((turn, place)) => stream_response(state, turn, place),
        Err(envelope) => envelope.into_response(),
    }
}

/// Everything after the user name is known: the session (created or
/// checked to be `username`'s), config routing, the message parts and the
/// stored user turn, with the turn's place in its session's queue.
async fn prepare(
    state: &AppState,
    username: String,
    payload: Map<String, Value>,
) -> Result<(ChatTurn, SessionTicket), Envelope> {
    // `conversation_id` is an alias used only when `session_id` is absent.
    let raw_session = match payload.get("session_id") {
        Some(value) => Some(value),
        None => payload.get("conversation_id"),
    };
    let session_id = match raw_session {
        None | Some(Value::Null) => String::new(),
        Some(value) => to_str(value).trim().to_owned(),
    };
    let session_id = if session_id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        session_id
    };

    // AstrBot creates a new session before any further check, so that a
    // request refused later still leaves it. Here a new session is written
    // with the user turn instead, in one commit; a refused request writes
    // it on its own before the refusal goes out. Binding a config writes a
    // route, which must not happen for a session that turns out to be
    // another user's (two first messages racing): such a request claims
    // its new session first, as AstrBot does.
    let new_session = !is_known_session(state, &session_id, &username).await?;
    let config = resolve_config(state, &payload);
    let claim_first = new_session && matches!(config, Ok(Some(_)));
    if claim_first {
        create_session(state, &session_id, &username).await?;
    }
    let unwritten_session = new_session && !claim_first;
    let checked = route_and_parts(state, &session_id, &username, config, &payload).await;
    let (umo, parts) = match checked {
        Ok(checked) => checked,
        Err(refusal) => {
            if unwritten_session {
                create_session(state, &session_id, &username).await?;
            }
            return Err(refusal);
        }
    };

    let message_id = uuid::Uuid::new_v4().to_string();
    let history: Vec<Value> = parts.iter().map(UserPart::to_history_json).collect();
    let content = json!({"type": "user", "message": history});
    let umo = umo.to_string();
    let place = store_user_turn(
        state,
        &umo,
        unwritten_session,
        &session_id,
        &username,
        content,
    )
    .await?;

    let turn = ChatTurn {
        platform_id: WEBCHAT_PLATFORM_ID.to_owned(),
        username,
        session_id,
        umo,
        parts,
        selected_provider: string_field(&payload, "selected_provider"),
        selected_model: string_field(&payload, "selected_model"),
        // Missing means streaming; an explicit null follows the config.
        streaming: match payload.get("enable_streaming") {
            None => Some(true),
            Some(Value::Null) => None,
            Some(value) => Some(truthy(value)),
        },
        message_id: message_id.into(),
        new_session,
    };
    Ok((turn, place))
}

/// The checks after the session's, in AstrBot's order: the config the
/// request names (`config`, from [`resolve_config`]) and its routing, then
/// the message parts.
async fn route_and_parts(
    state: &AppState,
    session_id: &str,
    username: &str,
    config: Result<Option<String>, Envelope>,
    payload: &Map<String, Value>,
) -> Result<(Umo, Vec<UserPart>), Envelope> {
    let config_id = config?;
    let umo = Umo::webchat(username, session_id);
    if let Some(config_id) = config_id {
        // Routes are glob patterns; this binding is for this session only,
        // so `*`, `?` and `[` in the user name or session id are escaped.
        let route = format!(
            "{}:{}:{}",
            umo.platform_id,
            umo.message_type.as_str(),
            escape_glob(&umo.session_id)
        );
        let routed = if config_id == DEFAULT_CONFIG_ID {
            state.configs.remove_route(&route).await
        } else {
            state.configs.set_route(&route, &config_id).await
        };
        routed.map_err(|error| {
            Envelope::error(format!("Failed to update chat config route: {error}"))
        })?;
    }
    let parts = message_parts(state, payload).await?;
    Ok((umo, parts))
}

/// Whether the session exists; one that is not `username`'s is refused.
async fn is_known_session(
    state: &AppState,
    session_id: &str,
    username: &str,
) -> Result<bool, Envelope> {
    match state.store.get_session(session_id).await {
        Ok(Some(session)) if session.creator == username => Ok(true),
        Ok(Some(_)) => Err(Envelope::error("session_id belongs to another username")),
        Ok(None) => Ok(false),
        Err(error) => Err(session_failure(&error)),
    }
}

/// Creates the session for `username` on its own, or checks that a
/// racing request's is theirs.
async fn create_session(
    state: &AppState,
    session_id: &str,
    username: &str,
) -> Result<(), Envelope> {
    let created = state
        .store
        .create_session(session_id, "webchat", username, false)
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => check_racing_session(state, session_id, username).await,
        Err(error) => Err(session_failure(&error)),
    }
}

/// Stores the user turn (`content`), with its session when that is not
/// written yet, and returns the turn's place in the session's queue.
///
/// The place is taken as the write that stores the turn is queued, with
/// nothing awaited in between, so that the session's turns are answered
/// in the order their user turns were stored: writes queued together
/// commit together, and their callers then resume in any order.
async fn store_user_turn(
    state: &AppState,
    umo: &str,
    with_session: bool,
    session_id: &str,
    username: &str,
    content: Value,
) -> Result<SessionTicket, Envelope> {
    if with_session {
        let place = state.chat.reserve(umo);
        // Cloned for the rare clash below, which needs the content again.
        let created = state
            .store
            .create_session_with_turn(session_id, username, content.clone())
            .await;
        match created {
            Ok(_) => return Ok(place),
            // Two first messages raced: the loser's turn is stored alone
            // if the session is its user's.
            Err(StoreError::Conflict(_)) => {
                check_racing_session(state, session_id, username).await?
            }
            Err(error) => return Err(session_failure(&error)),
        }
    }
    let turn = NewHistory::webchat(session_id, username, content);
    let place = state.chat.reserve(umo);
    state.store.insert_history(turn).await.map_err(|error| {
        tracing::error!(%error, "could not save the user turn");
        Envelope::error("Failed to save the message")
    })?;
    Ok(place)
}

/// After a clash on a new session id: the winner's session must be
/// `username`'s.
async fn check_racing_session(
    state: &AppState,
    session_id: &str,
    username: &str,
) -> Result<(), Envelope> {
    if is_known_session(state, session_id, username).await? {
        Ok(())
    } else {
        Err(Envelope::error("Failed to create session: conflict"))
    }
}

fn session_failure(error: &StoreError) -> Envelope {
    Envelope::error(format!("Failed to create session: {error}"))
}

/// The config the request binds the session to, if it names one.
fn resolve_config(
    state: &AppState,
    payload: &Map<String, Value>,
) -> Result<Option<String>, Envelope> {
    let config_id = string_field(payload, "config_id").unwrap_or_default();
    let config_name = string_field(payload, "config_name").unwrap_or_default();
    let configs = state.configs.list();
    if !config_id.is_empty() {
        if !configs.iter().any(|info| info.id == config_id) {
            return Err(Envelope::error(format!("config_id not found: {config_id}")));
        }
        return Ok(Some(config_id));
    }
    if config_name.is_empty() {
        return Ok(None);
    }
    let matches: Vec<_> = configs
        .iter()
        .filter(|info| info.name == config_name)
        .collect();
    match matches.as_slice() {
        [] => Err(Envelope::error(format!(
            "config_name not found: {config_name}"
        ))),
        [only] => Ok(Some(only.id.clone())),
        _ => Err(Envelope::error(format!(
            "config_name is ambiguous, please use config_id: {config_name}"
        ))),
    }
}

/// The message as parts, attachments looked up; unknown attachments and
/// unknown part types are dropped as AstrBot drops them.
async fn message_parts(
    state: &AppState,
    payload: &Map<String, Value>,
) -> Result<Vec<UserPart>, Envelope> {
    if !payload.contains_key("message") && !payload.contains_key("files") {
        return Err(Envelope::error("Missing key: message or files"));
    }
    let message = payload.get("message").unwrap_or(&Value::Null);
    let items = match message {
        Value::Array(items) => items,
        Value::String(text) if !text.is_empty() => {
            return Ok(vec![UserPart::Plain { text: text.clone() }])
        }
        Value::Object(_) if truthy(message) => {
            return Err(Envelope::error("message must be a string or list"))
        }
        other if truthy(other) => {
            return Ok(vec![UserPart::Plain {
                text: to_str(other),
            }])
        }
        _ => return Err(Envelope::error("Message are both empty")),
    };

    let mut has_content = false;
    for item in items {
        let Some(part) = item.as_object() else {
            return Err(Envelope::error("message part must be an object"));
        };
        let kind = part.get("type").map(to_str).unwrap_or_default();
        has_content |= CONTENT_TYPES.contains(&kind.trim());
    }
    if !has_content {
        return Err(Envelope::error(
            "Message content is empty (reply only is not allowed)",
        ));
    }

    let mut parts = Vec::new();
    for part in items.iter().filter_map(Value::as_object) {
        let kind = part.get("type").map(to_str).unwrap_or_default();
        match kind.trim() {
            "plain" => parts.push(UserPart::Plain {
                text: part.get("text").map(text_of).unwrap_or_default(),
            }),
            "reply" => parts.push(UserPart::Reply {
                message_id: part.get("message_id").cloned().unwrap_or(Value::Null),
                selected_text: part.get("selected_text").map(text_of).unwrap_or_default(),
            }),
            _ => {
                let Some(attachment_id) = part.get("attachment_id").map(to_str) else {
                    continue;
                };
                match state.store.get_attachment(&attachment_id).await {
                    Ok(Some(attachment)) => parts.push(UserPart::Attachment {
                        filename: file_name_of(&attachment.path),
                        kind: attachment.kind,
                        attachment_id: attachment.attachment_id,
                        path: state
                            .root
                            .attachment_file(&attachment.path)
                            .to_string_lossy()
                            .into_owned(),
                        mime_type: attachment.mime_type,
                    }),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::error!(%error, "attachment lookup failed");
                        return Err(Envelope::error("Failed to read attachments"));
                    }
                }
            }
        }
    }
    Ok(parts)
}

/// The SSE answer: `session_id` first, then the run's events, `end` last.
fn stream_response(state: &AppState, turn: ChatTurn, place: SessionTicket) -> Response {
    let first = ChatEvent::SessionId {
        session_id: turn.session_id.clone(),
    };
    let events = ReceiverStream::new(state.chat.start_in_place(turn, place));
    sse::response(stream::once(async move { first }).chain(events))
}

fn string_field(payload: &Map<String, Value>, key: &str) -> Option<String> {
    match payload.get(key) {
        None | Some(Value::Null) => None,
        Some(value) => Some(to_str(value).trim().to_owned()),
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        other => to_str(other),
    }
}

fn file_name_of(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

//! `POST /api/v1/im/message`: a proactive message to a chat named by its
//! UMO, validated in AstrBot's order. Only the built-in `webchat` platform
//! runs today: the message is added to that session's UI history.

use axum::body::Bytes;
use axum::extract::State;
use serde_json::{json, Map, Value};

use crate::json::Envelope;
use crate::routes::python::{object_body, to_str};
use crate::state::AppState;
use astrbot_core::store::NewHistory;
use astrbot_core::Umo;

const WEBCHAT: &str = "webchat";

pub async fn send_message(State(state): State<AppState>, body: Bytes) -> Envelope {
    let payload = object_body(&body);
    let message = match payload.get("message") {
        Some(Value::Null) => return Envelope::error("Missing key: message"),
        Some(message) => message.clone(),
        None => Value::Object(Map::new()),
    };
    let umo_text = payload.get("umo").map(to_str).unwrap_or_default();
    if umo_text.is_empty() || payload.get("umo").is_some_and(Value::is_null) {
        return Envelope::error("Missing key: umo");
    }
    let umo: Umo = match umo_text.parse() {
        Ok(umo) => umo,
        Err(error) => return Envelope::error(format!("Invalid umo: {error}")),
    };
    // TODO(#3): platform adapters (OneBot, Telegram, Discord, Slack) will
    // make their configured ids reachable here.
    if umo.platform_id != WEBCHAT {
        return Envelope::error(format!(
            "Bot not found or not running for platform: {}",
            umo.platform_id
        ));
    }
    let chain = match message_chain(&state, &message).await {
        Ok(chain) => chain,
        Err(error) => return Envelope::error(error),
    };

    let session_id = webchat_session(&state, &umo.session_id).await;
    let saved = state
        .store
        .insert_history(NewHistory {
            platform_id: WEBCHAT.to_owned(),
            user_id: session_id,
            sender_id: Some("bot".to_owned()),
            sender_name: Some("bot".to_owned()),
            content: json!({"type": "bot", "message": chain}),
        })
        .await;
    match saved {
        Ok(_) => Envelope::ok(json!({})),
        Err(error) => {
            tracing::error!(%error, "could not store a proactive message");
            Envelope::error(format!("Failed to send message: {error}"))
        }
    }
}

/// Converts the message into the stored chain, with AstrBot's errors.
async fn message_chain(state: &AppState, message: &Value) -> Result<Vec<Value>, String> {
    let items = match message {
        Value::String(text) => {
            let text = text.trim();
            if text.is_empty() {
                return Err("Message is empty".into());
            }
            return Ok(vec![json!({"type": "plain", "text": text})]);
        }
        Value::Array(items) => items,
        _ => return Err("message must be a string or list".into()),
    };

    let mut chain = Vec::new();
    let mut has_content = false;
    for item in items {
        let Some(part) = item.as_object() else {
            return Err("message part must be an object".into());
        };
        let kind = part.get("type").map(to_str).unwrap_or_default();
        let kind = kind.trim();
        match kind {
            "plain" => {
                let text = part.get("text").map(to_str).unwrap_or_default();
                if !text.is_empty() {
                    chain.push(json!({"type": "plain", "text": text}));
                    has_content = true;
                }
            }
            "reply" => {
                let Some(message_id) = part.get("message_id").filter(|id| !id.is_null()) else {
                    return Err("reply part missing message_id".into());
                };
                let selected = part.get("selected_text").map(to_str).unwrap_or_default();
                chain.push(json!({"type": "reply", "message_id": to_str(message_id), "selected_text": selected}));
            }
            "image" | "record" | "file" | "video" => {
                chain.push(attachment_part(state, kind, part).await?);
                has_content = true;
            }
            other => return Err(format!("unsupported message part type: {other}")),
        }
    }
    if !has_content {
        return Err("Message content is empty (reply only is not allowed)".into());
    }
    Ok(chain)
}

async fn attachment_part(
    state: &AppState,
    kind: &str,
    part: &Map<String, Value>,
) -> Result<Value, String> {
    let Some(attachment_id) = part
        .get("attachment_id")
        .filter(|id| !id.is_null())
        .map(to_str)
        .filter(|id| !id.is_empty())
    else {
        return Err(format!("{kind} part missing attachment_id"));
    };
    let attachment = match state.store.get_attachment(&attachment_id).await {
        Ok(Some(attachment)) => attachment,
        Ok(None) => return Err(format!("attachment not found: {attachment_id}")),
        Err(error) => return Err(format!("Failed to send message: {error}")),
    };
    if !std::path::Path::new(&attachment.path).is_file() {
        return Err(format!("file not found: {}", attachment.path));
    }
    let filename = part
        .get("filename")
        .map(to_str)
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| {
            std::path::Path::new(&attachment.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    Ok(json!({
        "type": attachment.kind,
        "attachment_id": attachment.attachment_id,
        "filename": filename,
    }))
}

/// The UI-history id of a webchat session id: `webchat!<user>!<session>`
/// names a session opened through the API (the user part may itself hold
/// `!`, so each split is checked against the stored sessions); any other
/// form is used as given.
async fn webchat_session(state: &AppState, session: &str) -> String {
    if let Some(rest) = session.strip_prefix("webchat!") {
        for (index, _) in rest.match_indices('!') {
            let (username, session_id) = (&rest[..index], &rest[index + 1..]);
            if let Ok(Some(row)) = state.store.get_session(session_id).await {
                if row.creator == username {
                    return session_id.to_owned();
                }
            }
        }
    }
    session.to_owned()
}

//! `POST /api/v1/im/message`: a proactive message to a chat named by its
//! UMO, validated in AstrBot's order, then sent through the running bot of
//! that platform, or, for the built-in `webchat`, added to the session's
//! UI history.

use std::path::PathBuf;

use astrbot_platforms::{Media, OutboundChain, OutboundPart, SessionTarget};
use axum::extract::State;
use serde_json::{json, Map, Value};

use crate::json::Envelope;
use crate::platforms::group_of_session;
use crate::routes::python::{to_str, PythonBody};
use crate::state::AppState;
use astrbot_core::store::NewHistory;
use astrbot_core::{MessageType, Umo, WEBCHAT_PLATFORM_ID};

/// How many `!` positions of a webchat session id are tried as the
/// user/session boundary.
const MAX_SESSION_SPLITS: usize = 8;

/// One validated part of a proactive message.
enum ChainPart {
    Plain(String),
    Reply {
        message_id: String,
        selected_text: String,
    },
    Attachment {
        kind: String,
        attachment_id: String,
        filename: String,
        path: String,
    },
}

impl ChainPart {
    /// The part as stored in a webchat session's UI history.
    fn to_history_json(&self) -> Value {
        match self {
            ChainPart::Plain(text) => json!({"type": "plain", "text": text}),
            ChainPart::Reply {
                message_id,
                selected_text,
            } => {
                json!({"type": "reply", "message_id": message_id, "selected_text": selected_text})
            }
            ChainPart::Attachment {
                kind,
                attachment_id,
                filename,
                ..
            } => {
                json!({"type": kind, "attachment_id": attachment_id, "filename": filename})
            }
        }
    }

    /// The part as a platform adapter sends it.
    fn to_outbound(&self) -> OutboundPart {
        match self {
            ChainPart::Plain(text) => OutboundPart::Text(text.clone()),
            ChainPart::Reply { message_id, .. } => OutboundPart::Reply {
                message_id: message_id.clone(),
            },
            ChainPart::Attachment {
                kind,
                filename,
                path,
                ..
            } => {
                let source = Media::Path(PathBuf::from(path));
                if kind == "image" {
                    OutboundPart::Image(source)
                } else {
                    OutboundPart::File {
                        name: filename.clone(),
                        source,
                    }
                }
            }
        }
    }
}

pub async fn send_message(
    State(state): State<AppState>,
    PythonBody(payload): PythonBody,
) -> Envelope {
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
    let adapter = if umo.platform_id == WEBCHAT_PLATFORM_ID {
        None
    } else {
        match state.platforms.get(&umo.platform_id) {
            Some(adapter) => Some(adapter),
            None => {
                return Envelope::error(format!(
                    "Bot not found or not running for platform: {}",
                    umo.platform_id
                ))
            }
        }
    };
    let chain = match message_chain(&state, &message).await {
        Ok(chain) => chain,
        Err(error) => return Envelope::error(error),
    };

    match adapter {
        Some(adapter) => {
            let outbound = OutboundChain {
                parts: chain.iter().map(ChainPart::to_outbound).collect(),
            };
            let mut target = SessionTarget::from(&umo);
            if umo.message_type == MessageType::Group {
                target.session_id = group_of_session(&umo.session_id).to_owned();
            }
            match adapter.send(&target, outbound).await {
                Ok(()) => Envelope::ok(json!({})),
                Err(error) => {
                    tracing::warn!(platform.id = %umo.platform_id, %error, "proactive send failed");
                    Envelope::error(error.to_string())
                }
            }
        }
        None => store_in_webchat(&state, &umo, &chain).await,
    }
}

/// Webchat has no connection to push to: the message joins the session's
/// UI history, where the chat UI shows it.
async fn store_in_webchat(state: &AppState, umo: &Umo, chain: &[ChainPart]) -> Envelope {
    let session_id = webchat_session(state, &umo.session_id).await;
    let parts: Vec<Value> = chain.iter().map(ChainPart::to_history_json).collect();
    let saved = state
        .store
        .insert_history(NewHistory {
            platform_id: WEBCHAT_PLATFORM_ID.to_owned(),
            user_id: session_id,
            sender_id: Some("bot".to_owned()),
            sender_name: Some("bot".to_owned()),
            content: json!({"type": "bot", "message": parts}),
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

/// Converts the message into a chain, with AstrBot's errors.
async fn message_chain(state: &AppState, message: &Value) -> Result<Vec<ChainPart>, String> {
    let items = match message {
        Value::String(text) => {
            let text = text.trim();
            if text.is_empty() {
                return Err("Message is empty".into());
            }
            return Ok(vec![ChainPart::Plain(text.to_owned())]);
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
                    chain.push(ChainPart::Plain(text));
                    has_content = true;
                }
            }
            "reply" => {
                let Some(message_id) = part.get("message_id").filter(|id| !id.is_null()) else {
                    return Err("reply part missing message_id".into());
                };
                chain.push(ChainPart::Reply {
                    message_id: to_str(message_id),
                    selected_text: part.get("selected_text").map(to_str).unwrap_or_default(),
                });
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
) -> Result<ChainPart, String> {
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
    let path = state.root.attachment_file(&attachment.path);
    if !path.is_file() {
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
    Ok(ChainPart::Attachment {
        kind: attachment.kind,
        attachment_id: attachment.attachment_id,
        filename,
        path: path.to_string_lossy().into_owned(),
    })
}

/// The UI-history id of a webchat session id: `webchat!<user>!<session>`
/// names a session opened through the API (the user part may itself hold
/// `!`, so each split is checked against the stored sessions); any other
/// form is used as given.
async fn webchat_session(state: &AppState, session: &str) -> String {
    if let Some(rest) = session.strip_prefix("webchat!") {
        // Bounded: each candidate split costs a lookup, and the UMO is the
        // caller's to make as long as it likes.
        for (index, _) in rest.match_indices('!').take(MAX_SESSION_SPLITS) {
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

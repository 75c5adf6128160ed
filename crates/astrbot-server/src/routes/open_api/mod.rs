//! The six endpoints of AstrBot's developer API (`/api/v1/*`). The key and
//! its scope were checked by the auth layer before any of these run.

pub(crate) mod chat;
mod file;
mod message;
pub(crate) mod sessions;
mod sse;

use axum::extract::State;
use serde_json::{json, Value};

use crate::config::DEFAULT_CONFIG_ID;
use crate::json::Envelope;
use crate::state::AppState;

pub use chat::chat;
pub use file::upload_file;
pub use message::send_message;
pub use sessions::list_sessions;

/// `GET /api/v1/im/bots`: the platform ids of the default config.
pub async fn list_bots(State(state): State<AppState>) -> Envelope {
    let bot_ids = state.configs.default_config().platform_ids();
    Envelope::ok(json!({"bot_ids": bot_ids}))
}

/// `GET /api/v1/im/bots/status` (ours, beside AstrBot's list): every bot
/// with its type, whether it runs, and its last error. The built-in
/// `webchat` is always running. The dashboard reads the same answer from
/// the admin route `GET /api/platform/status` (JWT instead of a key).
pub async fn bot_status(State(state): State<AppState>) -> Envelope {
    let mut bots = vec![json!({
        "id": "webchat", "type": "webchat", "enabled": true, "running": true,
        "last_error": null, "restarts": 0,
    })];
    bots.extend(state.platforms.status().into_iter().map(|bot| {
        json!({
            "id": bot.id, "type": bot.kind, "enabled": bot.enabled, "running": bot.running,
            "last_error": bot.last_error, "restarts": bot.restarts,
        })
    }));
    Envelope::ok(json!({"bots": bots}))
}

/// `GET /api/v1/configs`: the extra configs, then the default.
pub async fn list_configs(State(state): State<AppState>) -> Envelope {
    let configs: Vec<Value> = state
        .configs
        .list()
        .into_iter()
        .map(|info| {
            json!({
                "id": info.id.trim(),
                "name": info.name.trim(),
                "path": info.path.trim(),
                "is_default": info.id == DEFAULT_CONFIG_ID,
            })
        })
        .collect();
    Envelope::ok(json!({"configs": configs}))
}

//! `GET /api/config/provider/check_one?id=…[&config_id=…]` (AstrBot's path):
//! sends a one-line prompt through one provider of a config, non-streaming,
//! and reports whether it answered, how fast, and what went wrong.

use std::time::{Duration, Instant};

use astrbot_core::{ChatMessage, ChatRequest};
use axum::extract::State;
use serde_json::json;

use crate::config::DEFAULT_CONFIG_ID;
use crate::json::Envelope;
use crate::routes::python::PythonQuery;
use crate::state::AppState;

const PROMPT: &str = "Reply with OK.";

/// A health check must answer while the admin waits; a provider slower than
/// this counts as unavailable.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// Enough for "OK" and a little chatter; keeps local models quick.
const MAX_REPLY_TOKENS: u32 = 16;

const MAX_REPLY_CHARS: usize = 200;

pub async fn check_one(State(state): State<AppState>, PythonQuery(query): PythonQuery) -> Envelope {
    let id = query.get("id").map(|id| id.trim()).unwrap_or_default();
    if id.is_empty() {
        return Envelope::error("Missing provider_id parameter");
    }
    let config_id = query
        .get("config_id")
        .map(|id| id.trim())
        .filter(|id| !id.is_empty())
        .unwrap_or(DEFAULT_CONFIG_ID);
    let Some(config) = state.configs.get(config_id) else {
        return Envelope::error(format!("配置文件 {config_id} 不存在"));
    };

    let Some(provider) = state.chat.providers().for_config(&config).get(id) else {
        // Configured but not built (unsupported type, missing model file):
        // the entry exists, it just cannot answer.
        return match config.providers.iter().find(|spec| spec.id == id) {
            Some(spec) => Envelope::ok(json!({
                "id": id, "model": spec.model, "status": "unavailable", "latency_ms": null,
                "error": "the provider could not be loaded; see the server log", "reply": null,
            })),
            None => Envelope::error(format!("Provider with id '{id}' not found")),
        };
    };

    let request = ChatRequest {
        messages: vec![ChatMessage::text("user", PROMPT)],
        model: None,
        max_tokens: Some(MAX_REPLY_TOKENS),
    };
    let started = Instant::now();
    let outcome = match tokio::time::timeout(CHECK_TIMEOUT, provider.chat(request)).await {
        Ok(Ok(response)) => Ok(response.text),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!(
            "the provider did not answer within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    };
    let latency_ms = started.elapsed().as_millis() as u64;

    let (status, error, reply) = match outcome {
        Ok(text) => {
            let reply: String = text.chars().take(MAX_REPLY_CHARS).collect();
            ("available", None, Some(reply))
        }
        Err(error) => {
            tracing::warn!(provider.id = %id, config.id = %config_id, %error, "provider check failed");
            ("unavailable", Some(error), None)
        }
    };
    Envelope::ok(json!({
        "id": id, "model": provider.model(), "status": status,
        "latency_ms": latency_ms, "error": error, "reply": reply,
    }))
}

//! `GET /api/config/providers?config_id=…` (admin JWT): the chat providers
//! a config can answer with, for the dashboard's provider pickers.

use axum::extract::State;
use serde_json::{json, Value};

use crate::chat::LOCAL_PROVIDER_TYPE;
use crate::config::DEFAULT_CONFIG_ID;
use crate::json::Envelope;
use crate::routes::python::PythonQuery;
use crate::state::AppState;

/// `{"providers": [{"id", "type", "model"}], "default_provider_id"}`: the
/// providers that were built for the config (entries that could not be
/// loaded are left out; the demo model appears when the config has none),
/// and the one a chat without `selected_provider` uses ("" when none).
pub async fn list_providers(
    State(state): State<AppState>,
    PythonQuery(query): PythonQuery,
) -> Envelope {
    let config_id = query
        .get("config_id")
        .map(|id| id.trim())
        .filter(|id| !id.is_empty())
        .unwrap_or(DEFAULT_CONFIG_ID);
    let Some(config) = state.configs.get(config_id) else {
        return Envelope::error(format!("配置文件 {config_id} 不存在"));
    };
    let set = state.chat.providers().for_config(&config);
    let ids = set.ids();
    let providers: Vec<Value> = ids
        .iter()
        .filter_map(|id| {
            let provider = set.get(id)?;
            let kind = config
                .providers
                .iter()
                .find(|spec| &spec.id == id)
                .map_or(LOCAL_PROVIDER_TYPE, |spec| spec.kind.as_str());
            Some(json!({"id": id, "type": kind, "model": provider.model()}))
        })
        .collect();
    // The chat pipeline's fallback: the configured default if it was
    // built, else the first provider.
    let configured = &config.chat.default_provider_id;
    let default_provider_id = if ids.contains(configured) {
        configured.clone()
    } else {
        ids.first().cloned().unwrap_or_default()
    };
    Envelope::ok(json!({
        "providers": providers,
        "default_provider_id": default_provider_id,
    }))
}

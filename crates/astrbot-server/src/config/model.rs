//! Typed views of a config document: what the chat pipeline, the provider
//! registry and the dashboard read. They are computed once per load or save.

use std::time::Duration;

use serde_json::{Map, Value};

/// One config file, loaded: its identity, its document, and typed views.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub id: String,
    pub name: String,
    pub document: Value,
    pub chat: ChatSettings,
    pub personas: Vec<Persona>,
    pub providers: Vec<ProviderSpec>,
    pub admins_id: Vec<String>,
    pub max_upload_bytes: u64,
}

/// `provider_settings` keys the agent uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSettings {
    pub enable: bool,
    pub default_provider_id: String,
    pub streaming_response: bool,
    pub display_reasoning_text: bool,
    pub default_personality: String,
    pub prompt_prefix: String,
    /// Turns of history sent to the model; negative means all.
    pub max_context_length: i64,
}

/// A persona from the config's `persona` list.
#[derive(Debug, Clone, PartialEq)]
pub struct Persona {
    pub name: String,
    pub prompt: String,
    /// Alternating user/assistant lines prepended to the context.
    pub begin_dialogs: Vec<String>,
}

/// A chat provider as configured: a `provider` entry merged with the
/// `provider_sources` entry it points at (the model entry wins), or a
/// self-contained legacy entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSpec {
    pub id: String,
    /// AstrBot's `type`, e.g. `openai_chat_completion`, or our `local`.
    pub kind: String,
    pub api_base: String,
    pub keys: Vec<String>,
    pub model: String,
    pub timeout: Duration,
    pub custom_headers: Vec<(String, String)>,
    pub extra_body: Map<String, Value>,
    /// For `local` providers: the GGUF file, if not the demo model.
    pub model_path: Option<String>,
    /// Ours (`lean_http_client`, default true): whether a provider on this
    /// machine is spoken to with the lean HTTP client; false hands it to
    /// the general one, as every remote provider is.
    pub lean_http_client: bool,
}

/// `dashboard` keys, read from the default config only.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardSettings {
    pub username: String,
    /// MD5 hex of the password, as AstrBot stores and its web UI posts it.
    pub password_md5: String,
    pub jwt_secret: String,
    pub host: String,
    pub port: u16,
}

/// A whole number as a setting may be written: `8`, `8.0` or `"8"`, as
/// Python's `int()` takes them. Anything else (a fraction, a word) is none.
pub(crate) fn whole_number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64().or_else(|| {
            let float = number.as_f64()?;
            let whole = float >= 0.0 && float.fract() == 0.0 && float < u64::MAX as f64;
            whole.then_some(float as u64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// AstrBot's default admin password, md5("astrbot").
pub const DEFAULT_PASSWORD_MD5: &str = "77b90590a8945a7d36c963981a307dc9";

impl LoadedConfig {
    pub fn new(id: &str, name: &str, document: Value) -> Self {
        let settings = document.get("provider_settings");
        let chat = ChatSettings {
            enable: bool_at(settings, "enable", true),
            default_provider_id: str_at(settings, "default_provider_id", ""),
            streaming_response: bool_at(settings, "streaming_response", false),
            display_reasoning_text: bool_at(settings, "display_reasoning_text", false),
            default_personality: str_at(settings, "default_personality", "default"),
            prompt_prefix: str_at(settings, "prompt_prefix", "{{prompt}}"),
            max_context_length: settings
                .and_then(|s| s.get("max_context_length"))
                .and_then(Value::as_i64)
                .unwrap_or(-1),
        };
        let default_timeout = document
            .pointer("/astrbot_rs/provider_timeout_seconds")
            .and_then(whole_number)
            .unwrap_or(120);
        let max_upload_mb = document
            .pointer("/astrbot_rs/max_upload_mb")
            .and_then(whole_number)
            .unwrap_or(128);
        LoadedConfig {
            id: id.to_owned(),
            name: name.to_owned(),
            chat,
            personas: personas(&document),
            providers: providers(&document, default_timeout),
            admins_id: strings(document.get("admins_id")),
            max_upload_bytes: max_upload_mb.saturating_mul(1024 * 1024),
            document,
        }
    }

    /// The `platform` list as written (an empty list when there is none),
    /// for the platform manager.
    pub fn platform_entries(&self) -> Value {
        self.document
            .get("platform")
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new()))
    }

    /// The `id`s of the configured platform bots: non-empty strings, first
    /// occurrence kept, as `/api/v1/im/bots` lists them.
    pub fn platform_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        let entries = self.document.get("platform").and_then(Value::as_array);
        for entry in entries.into_iter().flatten() {
            if let Some(id) = entry.get("id").and_then(Value::as_str) {
                if !id.is_empty() && !ids.iter().any(|seen| seen == id) {
                    ids.push(id.to_owned());
                }
            }
        }
        ids
    }

    pub fn dashboard(&self) -> DashboardSettings {
        let dashboard = self.document.get("dashboard");
        DashboardSettings {
            username: str_at(dashboard, "username", "astrbot"),
            password_md5: str_at(dashboard, "password", DEFAULT_PASSWORD_MD5),
            jwt_secret: str_at(dashboard, "jwt_secret", ""),
            host: str_at(dashboard, "host", "127.0.0.1"),
            port: dashboard
                .and_then(|d| d.get("port"))
                .and_then(whole_number)
                .and_then(|port| u16::try_from(port).ok())
                .unwrap_or(6185),
        }
    }

    pub fn persona(&self, name: &str) -> Option<&Persona> {
        self.personas.iter().find(|persona| persona.name == name)
    }
}

fn personas(document: &Value) -> Vec<Persona> {
    let entries = document.get("persona").and_then(Value::as_array);
    entries
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let name = entry.get("name").and_then(Value::as_str)?;
            Some(Persona {
                name: name.to_owned(),
                prompt: str_at(Some(entry), "prompt", ""),
                begin_dialogs: strings(entry.get("begin_dialogs")),
            })
        })
        .collect()
}

fn providers(document: &Value, default_timeout: u64) -> Vec<ProviderSpec> {
    let sources = document.get("provider_sources").and_then(Value::as_array);
    let entries = document.get("provider").and_then(Value::as_array);
    entries
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.as_object()?;
            let mut merged = Map::new();
            if let Some(source_id) = entry.get("provider_source_id").and_then(Value::as_str) {
                let source = sources
                    .into_iter()
                    .flatten()
                    .find(|s| s.get("id").and_then(Value::as_str) == Some(source_id))?;
                merged.extend(source.as_object()?.clone());
            }
            merged.extend(entry.clone());
            provider_spec(&merged, default_timeout)
        })
        .collect()
}

fn provider_spec(entry: &Map<String, Value>, default_timeout: u64) -> Option<ProviderSpec> {
    let entry_value = Value::Object(entry.clone());
    let entry_ref = Some(&entry_value);
    if !bool_at(entry_ref, "enable", true) {
        return None;
    }
    let provider_type = str_at(entry_ref, "provider_type", "chat_completion");
    if provider_type != "chat_completion" {
        return None;
    }
    let id = str_at(entry_ref, "id", "");
    if id.is_empty() {
        return None;
    }
    let model = match entry.get("model").and_then(Value::as_str) {
        Some(model) if !model.is_empty() => model.to_owned(),
        _ => entry_value
            .pointer("/model_config/model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    };
    let keys = match entry.get("key") {
        Some(Value::String(key)) if !key.is_empty() => vec![key.clone()],
        other => strings(other)
            .into_iter()
            .filter(|key| !key.is_empty())
            .collect(),
    };
    let custom_headers = entry
        .get("custom_headers")
        .and_then(Value::as_object)
        .map(|headers| {
            headers
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let timeout = entry
        .get("timeout")
        .and_then(whole_number)
        .filter(|&seconds| seconds > 0)
        .unwrap_or(default_timeout);
    let lean_http_client = lean_http_client(entry, &id);
    Some(ProviderSpec {
        id,
        kind: str_at(entry_ref, "type", "openai_chat_completion"),
        api_base: str_at(entry_ref, "api_base", "https://api.openai.com/v1"),
        keys,
        model,
        timeout: Duration::from_secs(timeout),
        custom_headers,
        extra_body: entry
            .get("custom_extra_body")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        model_path: entry
            .get("model_path")
            .and_then(Value::as_str)
            .filter(|path| !path.is_empty())
            .map(str::to_owned),
        lean_http_client,
    })
}

/// The provider's `lean_http_client` switch; anything but a JSON boolean
/// (`"false"`, `0`) is ignored with a warning rather than silently.
fn lean_http_client(entry: &Map<String, Value>, id: &str) -> bool {
    match entry.get("lean_http_client") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(lean)) => *lean,
        Some(other) => {
            tracing::warn!(provider.id = id, value = %other, "lean_http_client must be true or false; using true");
            true
        }
    }
}

fn str_at(parent: Option<&Value>, key: &str, default: &str) -> String {
    parent
        .and_then(|p| p.get(key))
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_owned()
}

fn bool_at(parent: Option<&Value>, key: &str, default: bool) -> bool {
    parent
        .and_then(|p| p.get(key))
        .and_then(Value::as_bool)
        .unwrap_or(default)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| match item {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn provider_entries_merge_with_their_source() {
        let config = LoadedConfig::new(
            "default",
            "default",
            json!({
                "provider_sources": [{"id": "src", "type": "openai_chat_completion",
                    "key": ["k1", ""], "api_base": "http://127.0.0.1:9/v1", "timeout": 30}],
                "provider": [
                    {"id": "fast", "provider_source_id": "src", "model": "m1"},
                    {"id": "off", "provider_source_id": "src", "model": "m2", "enable": false},
                    {"id": "legacy", "type": "openai_chat_completion", "key": "k2",
                     "api_base": "http://x/v1", "model_config": {"model": "m3"},
                     "lean_http_client": false},
                    {"id": "tts", "provider_type": "text_to_speech"}
                ]
            }),
        );
        let ids: Vec<&str> = config.providers.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["fast", "legacy"]);
        let fast = &config.providers[0];
        assert_eq!(fast.keys, ["k1"]);
        assert_eq!(fast.model, "m1");
        assert_eq!(fast.timeout, Duration::from_secs(30));
        assert_eq!(config.providers[1].model, "m3");
        assert_eq!(config.providers[1].keys, ["k2"]);
        let lean: Vec<bool> = config
            .providers
            .iter()
            .map(|p| p.lean_http_client)
            .collect();
        assert_eq!(lean, [true, false]);
        let quoted = json!({"id": "q", "lean_http_client": "false"});
        assert!(lean_http_client(quoted.as_object().unwrap(), "q"));
    }

    #[test]
    fn platform_ids_are_unique_non_empty_strings() {
        let config = LoadedConfig::new(
            "default",
            "default",
            json!({"platform": [{"id": "qq"}, {"id": ""}, {"id": 5}, {"id": "qq"}, {"id": "tg"}]}),
        );
        assert_eq!(config.platform_ids(), ["qq", "tg"]);
    }
}

//! `/api/config/*`: the admin endpoints for config files, with AstrBot's
//! paths, fields and messages. Every change is live at once.

use axum::extract::State;
use serde_json::{json, Value};

use super::python::{is_empty_body, to_str, PythonBody, PythonQuery};
use crate::config::{ConfigInfo, RegistryError, DEFAULT_CONFIG_ID};
use crate::json::Envelope;
use crate::state::AppState;

const MISSING_BODY: &str = "缺少配置数据";
const MISSING_ID: &str = "缺少配置文件 ID";

pub async fn list_configs(State(state): State<AppState>) -> Envelope {
    let infos: Vec<Value> = state.configs.list().iter().map(info_json).collect();
    Envelope::ok(json!({"info_list": infos}))
}

pub async fn get_config(
    State(state): State<AppState>,
    PythonQuery(query): PythonQuery,
) -> Envelope {
    let id = query.get("id").map(String::as_str).unwrap_or_default();
    let system = query
        .get("system_config")
        .is_some_and(|flag| flag.eq_ignore_ascii_case("1"));
    let id = if system { DEFAULT_CONFIG_ID } else { id };
    if id.is_empty() {
        return Envelope::error(MISSING_ID);
    }
    match state.configs.get(id) {
        Some(config) => {
            let document = without_admin_secrets(&config.document);
            Envelope::ok(json!({"config": document, "metadata": {}}))
        }
        None => Envelope::error(format!("配置文件 {id} 不存在")),
    }
}

/// A config as the dashboard is shown it: the admin password's hash and
/// the token secret left empty. With them a stolen admin token could sign
/// in as the admin for good (login takes the hash) and mint tokens; a save
/// that sends them back empty keeps the stored ones.
fn without_admin_secrets(document: &Value) -> Value {
    let mut shown = document.clone();
    if let Some(dashboard) = shown.get_mut("dashboard").and_then(Value::as_object_mut) {
        for secret in ["password", "jwt_secret"] {
            if dashboard.contains_key(secret) {
                dashboard.insert(secret.to_owned(), Value::String(String::new()));
            }
        }
    }
    shown
}

pub async fn create_config(
    State(state): State<AppState>,
    PythonBody(body): PythonBody,
) -> Envelope {
    if is_empty_body(&body) {
        return Envelope::error(MISSING_BODY);
    }
    let name = body.get("name").filter(|name| !name.is_null()).map(to_str);
    let document = body.get("config").cloned();
    match state.configs.create(name, document).await {
        Ok(id) => {
            tracing::info!(config.id = %id, "config created");
            Envelope::ok_with_message(json!({"conf_id": id}), Some("创建成功"))
        }
        Err(error) => registry_failure(error),
    }
}

pub async fn rename_config(
    State(state): State<AppState>,
    PythonBody(body): PythonBody,
) -> Envelope {
    if is_empty_body(&body) {
        return Envelope::error(MISSING_BODY);
    }
    let Some(id) = config_id(&body, "id") else {
        return Envelope::error(MISSING_ID);
    };
    // AstrBot leaves the name as it is when none is given.
    let name = body.get("name").filter(|name| !name.is_null()).map(to_str);
    match state.configs.rename(&id, name.as_deref()).await {
        Ok(()) => Envelope::ok_with_message(json!({}), Some("更新成功")),
        Err(RegistryError::NotFound(_)) => Envelope::error("更新失败"),
        Err(error) => registry_failure(error),
    }
}

pub async fn delete_config(
    State(state): State<AppState>,
    PythonBody(body): PythonBody,
) -> Envelope {
    if is_empty_body(&body) {
        return Envelope::error(MISSING_BODY);
    }
    let Some(id) = config_id(&body, "id") else {
        return Envelope::error(MISSING_ID);
    };
    match state.configs.delete(&id).await {
        Ok(()) => {
            tracing::info!(config.id = %id, "config deleted");
            Envelope::ok_with_message(json!({}), Some("删除成功"))
        }
        Err(RegistryError::NotFound(_)) => Envelope::error("删除失败"),
        Err(error) => registry_failure(error),
    }
}

/// Saves a whole config (`{conf_id, config}`); a missing `conf_id` means the
/// default config.
pub async fn save_config(State(state): State<AppState>, PythonBody(body): PythonBody) -> Envelope {
    if is_empty_body(&body) {
        return Envelope::error(MISSING_BODY);
    }
    let id = config_id(&body, "conf_id").unwrap_or_else(|| DEFAULT_CONFIG_ID.to_owned());
    let Some(document) = body.get("config").filter(|c| c.is_object()).cloned() else {
        return Envelope::error("config must be an object");
    };
    match state.configs.save(&id, document).await {
        Ok(()) => {
            tracing::info!(config.id = %id, "config saved");
            Envelope::ok_with_message(json!({}), Some("保存成功~"))
        }
        Err(error) => registry_failure(error),
    }
}

fn config_id(body: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(value) => Some(to_str(value).trim().to_owned()).filter(|id| !id.is_empty()),
    }
}

/// An entry of `info_list` with AstrBot's key order: an extra config's
/// stored mapping entry (`path`, `name`) followed by its `id`; the default
/// config's fixed entry starting with its `id`.
fn info_json(info: &ConfigInfo) -> Value {
    if info.id == DEFAULT_CONFIG_ID {
        json!({"id": info.id, "name": info.name, "path": info.path})
    } else {
        json!({"path": info.path, "name": info.name, "id": info.id})
    }
}

fn registry_failure(error: RegistryError) -> Envelope {
    match &error {
        RegistryError::NotFound(id) => Envelope::error(format!("配置文件 {id} 不存在")),
        RegistryError::Invalid(message) => Envelope::error(message.clone()),
        RegistryError::File(_) | RegistryError::Store(_) => {
            tracing::error!(%error, "config change failed");
            Envelope::error(format!("保存配置失败: {error}"))
        }
    }
}

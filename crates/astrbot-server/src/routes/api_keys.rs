//! `/api/apikey/*`: the admin endpoints that create, list, revoke and
//! delete developer API keys, with AstrBot's validation rules and messages.

use axum::extract::State;
use axum::Extension;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::python::{to_int, to_str, truthy, PythonBody};
use crate::auth::api_key::{self, ALL_SCOPES};
use crate::auth::AdminIdentity;
use crate::json::Envelope;
use crate::state::AppState;
use astrbot_core::store::ApiKeyRecord;
use astrbot_core::time::iso;

const UNTITLED: &str = "Untitled API Key";

pub async fn list_keys(State(state): State<AppState>) -> Envelope {
    match state.store.list_api_keys().await {
        Ok(keys) => Envelope::ok(Value::Array(keys.iter().map(key_json).collect())),
        Err(error) => store_failure(error),
    }
}

pub async fn create_key(
    State(state): State<AppState>,
    admin: Option<Extension<AdminIdentity>>,
    PythonBody(body): PythonBody,
) -> Envelope {
    let name = match body.get("name") {
        None | Some(Value::Null) => String::new(),
        Some(value) => to_str(value).trim().to_owned(),
    };
    let name = if name.is_empty() {
        UNTITLED.to_owned()
    } else {
        name
    };

    let scopes = match body.get("scopes") {
        None | Some(Value::Null) => ALL_SCOPES.map(str::to_owned).to_vec(),
        Some(Value::Array(items)) => {
            let mut scopes: Vec<String> = Vec::new();
            for item in items {
                if let Some(scope) = item.as_str() {
                    if ALL_SCOPES.contains(&scope) && !scopes.iter().any(|s| s == scope) {
                        scopes.push(scope.to_owned());
                    }
                }
            }
            if scopes.is_empty() {
                return Envelope::error("At least one valid scope is required");
            }
            scopes
        }
        Some(_) => return Envelope::error("Invalid scopes"),
    };

    let expires_at = match body.get("expires_in_days") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let Some(days) = to_int(value) else {
                return Envelope::error("expires_in_days must be an integer");
            };
            match api_key::expiry_after_days(days) {
                Ok(expiry) => Some(expiry),
                Err(message) => return Envelope::error(message),
            }
        }
    };

    let created_by = admin
        .map(|Extension(admin)| admin.username)
        .unwrap_or_else(|| "unknown".to_owned());
    match api_key::issue(&*state.store, name, scopes, expires_at, created_by).await {
        Ok((record, plaintext)) => {
            let mut data = key_json(&record);
            data["api_key"] = Value::String(plaintext);
            Envelope::ok(data)
        }
        Err(error) => store_failure(error),
    }
}

pub async fn revoke_key(State(state): State<AppState>, PythonBody(body): PythonBody) -> Envelope {
    let Some(key_id) = key_id(&body) else {
        return Envelope::error("Missing key: key_id");
    };
    match state
        .store
        .revoke_api_key(&key_id, astrbot_core::time::now())
        .await
    {
        Ok(true) => {
            tracing::info!(api_key.id = %key_id, "API key revoked");
            Envelope::ok(json!({}))
        }
        Ok(false) => Envelope::error("API key not found"),
        Err(error) => store_failure(error),
    }
}

pub async fn delete_key(State(state): State<AppState>, PythonBody(body): PythonBody) -> Envelope {
    let Some(key_id) = key_id(&body) else {
        return Envelope::error("Missing key: key_id");
    };
    match state.store.delete_api_key(&key_id).await {
        Ok(true) => {
            tracing::info!(api_key.id = %key_id, "API key deleted");
            Envelope::ok(json!({}))
        }
        Ok(false) => Envelope::error("API key not found"),
        Err(error) => store_failure(error),
    }
}

fn key_id(body: &Map<String, Value>) -> Option<String> {
    // AstrBot's `if not key_id`: `0`, `false`, `[]` and `{}` are missing too.
    body.get("key_id").filter(|id| truthy(id)).map(to_str)
}

/// A key as AstrBot serialises it (never the hash).
pub fn key_json(key: &ApiKeyRecord) -> Value {
    let optional = |instant: Option<chrono::DateTime<Utc>>| instant.map(iso);
    let now = Utc::now();
    json!({
        "key_id": key.key_id,
        "name": key.name,
        "key_prefix": key.key_prefix,
        "scopes": key.scopes.clone().unwrap_or_default(),
        "created_by": key.created_by,
        "created_at": iso(key.created_at),
        "updated_at": iso(key.updated_at),
        "last_used_at": optional(key.last_used_at),
        "expires_at": optional(key.expires_at),
        "revoked_at": optional(key.revoked_at),
        "is_revoked": key.revoked_at.is_some(),
        "is_expired": key.expires_at.is_some_and(|at| at < now),
    })
}

fn store_failure(error: astrbot_core::StoreError) -> Envelope {
    tracing::error!(%error, "API key store operation failed");
    Envelope::error("The key store failed; nothing was changed")
}

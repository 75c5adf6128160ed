//! The admin's credentials and token secret in the default config: made
//! on first start, never left blank (a blank password would open the
//! admin API to an empty form), and kept when a reload or a save leaves
//! them out.

use rand::RngCore;
use serde_json::{json, Map, Value};

use super::default_config;

/// Generates the JWT secret on first start; true when it did.
pub(super) fn ensure_jwt_secret(document: &mut Value) -> bool {
    let Some(dashboard) = document.get_mut("dashboard").and_then(Value::as_object_mut) else {
        return false;
    };
    if !is_blank(dashboard.get("jwt_secret")) {
        return false;
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    dashboard.insert("jwt_secret".into(), Value::String(secret));
    true
}

/// Whether an admin credential is missing or unusable: not a string, or
/// only whitespace (which the login form cannot send back).
fn is_blank(value: Option<&Value>) -> bool {
    value
        .and_then(Value::as_str)
        .is_none_or(|text| text.trim().is_empty())
}

/// Fills an admin username or password the file leaves empty with AstrBot's
/// default, as for a new root, and says so in the log: an empty password
/// would let anyone sign in with an empty form, where the default one is
/// at least announced by the dashboard's banner. True when it filled any.
pub(super) fn fill_blank_credentials(document: &mut Value) -> bool {
    let Some(dashboard) = document.get_mut("dashboard").and_then(Value::as_object_mut) else {
        return false;
    };
    let defaults = default_config();
    let mut filled = false;
    for key in ["username", "password"] {
        if is_blank(dashboard.get(key)) {
            tracing::warn!(
                setting = %format_args!("dashboard.{key}"),
                "this admin setting is empty in the config file; AstrBot's default is used and written to the file"
            );
            dashboard.insert(key.to_owned(), defaults["dashboard"][key].clone());
            filled = true;
        }
    }
    filled
}

/// Keeps the admin username, password and JWT secret of `current` when
/// the incoming document leaves them out or empty; says which it kept.
pub(super) fn keep_secret(incoming: &mut Map<String, Value>, current: &Value) -> Vec<&'static str> {
    let mut kept = Vec::new();
    let Some(current_dashboard) = current.get("dashboard").and_then(Value::as_object) else {
        return kept;
    };
    let dashboard = incoming.entry("dashboard").or_insert_with(|| json!({}));
    let Some(dashboard) = dashboard.as_object_mut() else {
        return kept;
    };
    for key in ["username", "password", "jwt_secret"] {
        if is_blank(dashboard.get(key)) {
            if let Some(value) = current_dashboard.get(key) {
                dashboard.insert(key.to_owned(), value.clone());
                kept.push(key);
            }
        }
    }
    kept
}

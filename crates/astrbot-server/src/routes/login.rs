//! `POST /api/auth/login`: AstrBot's admin login, answering a JWT.

use std::time::Duration;

use axum::extract::State;
use serde_json::json;

use super::python::{to_str, PythonBody};
use crate::auth::jwt;
use crate::auth::password::{md5_hex, same};
use crate::config::LoadedConfig;
use crate::json::Envelope;
use crate::state::AppState;

/// A failed login is answered this late, as AstrBot does, to slow guessing.
const FAILED_LOGIN_DELAY: Duration = Duration::from_secs(3);

pub async fn login(State(state): State<AppState>, PythonBody(body): PythonBody) -> Envelope {
    let username = body.get("username").map(to_str).unwrap_or_default();
    let password = body.get("password").map(to_str).unwrap_or_default();
    let dashboard = state.configs.default_config().dashboard();

    // The web UI posts the MD5 of the password; people with curl may post
    // the password itself. Both are accepted.
    let password_ok = same(&password, &dashboard.password_md5)
        || same(&md5_hex(&password), &dashboard.password_md5);
    if !(same(&username, &dashboard.username) && password_ok) {
        tracing::warn!(user.name = %username, "failed admin login");
        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
        return Envelope::error("用户名或密码错误");
    }

    // Tokens count as issued in whole seconds, and those issued up to the
    // second the credentials last changed are refused; a login in that
    // same second issues its token as of the next one.
    let issued_at = chrono::Utc::now()
        .timestamp()
        .max(state.configs.admin_tokens_not_before() + 1);
    let token = jwt::issue(&dashboard.jwt_secret, &dashboard.username, issued_at);
    Envelope::ok(json!({
        "token": token,
        "username": dashboard.username,
        "change_pwd_hint": uses_default_credentials(&state.configs.default_config()),
    }))
}

/// Whether the admin account still has AstrBot's default credentials.
pub fn uses_default_credentials(config: &LoadedConfig) -> bool {
    let dashboard = config.dashboard();
    dashboard.username == "astrbot" && dashboard.password_md5 == crate::config::DEFAULT_PASSWORD_MD5
}

//! `POST /api/auth/account/edit`: AstrBot's admin password and username
//! change. The JWT layer has already checked the caller; the current
//! password is checked again so that a stolen token cannot take the account.

use std::time::Duration;

use axum::extract::State;
use serde_json::{json, Value};

use super::python::{to_str, PythonBody};
use crate::auth::password::{md5_hex, same};
use crate::json::Envelope;
use crate::routes::open_api::chat::BANG_IN_NAME;
use crate::state::AppState;

/// A wrong current password is answered this late, like a failed login,
/// so that a stolen token cannot be used to guess the password quickly.
const FAILED_CHECK_DELAY: Duration = Duration::from_secs(3);

pub async fn edit_account(State(state): State<AppState>, PythonBody(body): PythonBody) -> Envelope {
    let text = |key: &str| match body.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(value) => to_str(value),
    };
    // A list or an object would be stored as its text: `["x"]` as the
    // password. AstrBot fails on them too.
    for key in ["new_password", "new_username"] {
        if body
            .get(key)
            .is_some_and(|value| !value.is_null() && !value.is_string())
        {
            return Envelope::error(format!("{key} must be a string"));
        }
    }
    let current = text("password");
    let new_password = text("new_password");
    let new_username = text("new_username").trim().to_owned();

    // Like login: the web UI posts the MD5, curl users may post the password.
    let stored = state.configs.default_config().dashboard().password_md5;
    if !(same(&current, &stored) || same(&md5_hex(&current), &stored)) {
        tracing::warn!("admin account change refused: wrong current password");
        tokio::time::sleep(FAILED_CHECK_DELAY).await;
        return Envelope::error("原密码错误");
    }
    if new_password.is_empty() {
        return Envelope::error("新密码不能为空");
    }
    // The admin chats in the dashboard under this name.
    if new_username.contains('!') {
        return Envelope::error(BANG_IN_NAME);
    }
    // AstrBot's newer UI also sends a confirmation; older clients do not.
    if body
        .get("confirm_password")
        .is_some_and(|confirm| !confirm.is_null() && to_str(confirm) != new_password)
    {
        return Envelope::error("两次输入的新密码不一致");
    }

    let new_md5 = as_md5(&new_password);
    let username = (!new_username.is_empty()).then_some(new_username.as_str());
    match state
        .configs
        .set_admin_credentials(&new_md5, username)
        .await
    {
        Ok(()) => {
            tracing::info!(
                username_changed = username.is_some(),
                "admin account changed"
            );
            Envelope::ok_with_message(json!({}), Some("修改成功"))
        }
        Err(error) => {
            tracing::error!(%error, "admin account change could not be saved");
            Envelope::error(format!("保存配置失败: {error}"))
        }
    }
}

/// The MD5 hex form to store. The web UI already posts an MD5; anything
/// else (a plain password from curl) is hashed so that it is never stored
/// in plain text and the UI's MD5 login still matches.
fn as_md5(password: &str) -> String {
    let is_md5 = password.len() == 32 && password.bytes().all(|b| b.is_ascii_hexdigit());
    if is_md5 {
        password.to_ascii_lowercase()
    } else {
        md5_hex(password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_md5_hex_only() {
        let md5 = md5_hex("s3cret");
        assert_eq!(as_md5(&md5), md5);
        assert_eq!(as_md5(&md5.to_ascii_uppercase()), md5);
        assert_eq!(as_md5("s3cret"), md5);
    }
}

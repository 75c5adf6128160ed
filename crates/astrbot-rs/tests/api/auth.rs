//! §3 and §4.1: API-key authentication of `/api/v1*`, scopes, revocation,
//! expiry and `last_used_at`, and the admin JWT and login.

use astrbot_core::store::NewApiKey;
use astrbot_core::Store;
use astrbot_server::auth::{api_key, jwt};
use astrbot_store::SqliteStore;
use fake_openai::Behaviour;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const MISSING_KEY_BODY: &str = r#"{"status":"error","message":"Missing API key","data":null}"#;
const INVALID_KEY_BODY: &str = r#"{"status":"error","message":"Invalid API key","data":null}"#;
const INSUFFICIENT_SCOPE_BODY: &str =
    r#"{"status":"error","message":"Insufficient API key scope","data":null}"#;

/// The six developer endpoints with their method and scope (§3.5).
const SCOPED_PATHS: [(&str, &str, &str); 6] = [
    ("POST", "/api/v1/chat", "chat"),
    ("GET", "/api/v1/chat/sessions", "chat"),
    ("GET", "/api/v1/configs", "config"),
    ("POST", "/api/v1/file", "file"),
    ("POST", "/api/v1/im/message", "im"),
    ("GET", "/api/v1/im/bots", "im"),
];

/// Sends a request with the given headers and returns status and raw body.
async fn raw(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

async fn bots_with(app: &TestApp, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = app.client.get(app.url("/api/v1/im/bots"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    into_json(request.send().await.unwrap()).await
}

async fn key_record(app: &TestApp, key_id: &str) -> Value {
    let token = app.admin_token().await;
    let (_, list) = app.admin_get(&token, "/api/apikey/list").await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["key_id"] == key_id)
        .cloned()
        .unwrap_or_else(|| panic!("key {key_id} is listed: {list}"))
}

fn jwt_secret(app: &TestApp) -> String {
    let config: Value =
        serde_json::from_slice(&std::fs::read(app.data_dir().join("cmd_config.json")).unwrap())
            .unwrap();
    config["dashboard"]["jwt_secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_request_without_a_key_is_refused_with_the_exact_401_body() {
    let app = spawn_app().await;

    let (status, body) = raw(&app, "GET", "/api/v1/im/bots", &[]).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, MISSING_KEY_BODY);
}

#[tokio::test]
async fn an_unknown_key_is_refused_as_invalid() {
    let app = spawn_app().await;
    let well_formed_unknown = format!("abk_{}", "A".repeat(43));

    let (short_status, short_body) = raw(
        &app,
        "GET",
        "/api/v1/im/bots",
        &[("X-API-Key", "abk_invalid")],
    )
    .await;
    let (unknown_status, unknown_body) = raw(
        &app,
        "GET",
        "/api/v1/im/bots",
        &[("X-API-Key", &well_formed_unknown)],
    )
    .await;

    assert_eq!(short_status, StatusCode::UNAUTHORIZED);
    assert_eq!(short_body, INVALID_KEY_BODY);
    assert_eq!(unknown_status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_body, INVALID_KEY_BODY);
}

#[tokio::test]
async fn the_key_is_accepted_in_each_of_the_three_carriers() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["im"]).await;
    let bearer = format!("Bearer {key}");
    let api_key = format!("ApiKey {key}");
    let padded = format!("  {key}  ");

    let carriers = [
        vec![("X-API-Key", key.as_str())],
        vec![("Authorization", bearer.as_str())],
        vec![("Authorization", api_key.as_str())],
        vec![("X-API-Key", padded.as_str())],
    ];
    let mut answers = Vec::new();
    for headers in &carriers {
        answers.push(bots_with(&app, headers).await);
    }

    for (headers, (status, body)) in carriers.iter().zip(answers) {
        assert_eq!(status, StatusCode::OK, "{headers:?}: {body}");
        assert_eq!(body["status"], "ok", "{headers:?}: {body}");
        assert!(body["data"]["bot_ids"].is_array(), "{headers:?}: {body}");
    }
}

#[tokio::test]
async fn an_empty_x_api_key_falls_through_to_authorization() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["im"]).await;
    let bearer = format!("Bearer {key}");

    let (status, body) = bots_with(&app, &[("X-API-Key", ""), ("Authorization", &bearer)]).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn x_api_key_wins_over_authorization() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["im"]).await;
    let bearer = format!("Bearer {key}");

    let (status, body) = raw(
        &app,
        "GET",
        "/api/v1/im/bots",
        &[("X-API-Key", "abk_invalid"), ("Authorization", &bearer)],
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, INVALID_KEY_BODY);
}

#[tokio::test]
async fn lowercase_bearer_other_schemes_and_bare_tokens_carry_no_key() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["im"]).await;
    let values = [
        format!("bearer {key}"),
        format!("Basic {key}"),
        key.clone(),
        format!("apikey {key}"),
        "Bearer    ".to_owned(),
    ];

    let mut answers = Vec::new();
    for value in &values {
        answers.push(raw(&app, "GET", "/api/v1/im/bots", &[("Authorization", value)]).await);
    }

    for (value, (status, body)) in values.iter().zip(answers) {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{value}");
        assert_eq!(body, MISSING_KEY_BODY, "{value}");
    }
}

#[tokio::test]
async fn a_dashboard_jwt_is_refused_on_the_developer_api() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let bearer = format!("Bearer {token}");

    let (status, body) = raw(
        &app,
        "GET",
        "/api/v1/im/bots",
        &[("Authorization", &bearer)],
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, INVALID_KEY_BODY);
}

#[tokio::test]
async fn an_api_key_is_refused_on_an_admin_route() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat", "config", "file", "im"]).await;
    let bearer = format!("Bearer {key}");

    let (as_bearer_status, as_bearer) = bots_like_admin(&app, &[("Authorization", &bearer)]).await;
    let (as_header_status, as_header) = bots_like_admin(&app, &[("X-API-Key", &key)]).await;

    assert_eq!(as_bearer_status, StatusCode::UNAUTHORIZED);
    assert_eq!(as_bearer["status"], "error");
    assert_eq!(as_bearer["message"], "Token 无效");
    assert_eq!(as_header_status, StatusCode::UNAUTHORIZED);
    assert_eq!(as_header["message"], "未授权");
}

async fn bots_like_admin(app: &TestApp, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = app.client.get(app.url("/api/apikey/list"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    into_json(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_key_lacking_the_scope_is_forbidden_on_each_of_the_six_paths() {
    let app = spawn_app().await;
    let mut keys = std::collections::HashMap::new();
    for scope in ["chat", "config", "file", "im"] {
        keys.insert(scope, app.create_key(&[scope]).await.0);
    }

    let mut answers = Vec::new();
    for (method, path, scope) in SCOPED_PATHS {
        for (other, key) in keys.iter().filter(|(other, _)| **other != scope) {
            let answer = raw(&app, method, path, &[("X-API-Key", key)]).await;
            answers.push((format!("{method} {path} with a {other} key"), answer));
        }
    }

    assert_eq!(answers.len(), 18);
    for (what, (status, body)) in answers {
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
        assert_eq!(body, INSUFFICIENT_SCOPE_BODY, "{what}");
    }
}

#[tokio::test]
async fn an_im_only_key_is_forbidden_before_any_handler_validation() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["im"]).await;
    let empty_form = reqwest::multipart::Form::new();

    let (sessions_status, sessions) = app
        .get("/api/v1/chat/sessions?page=1&page_size=10", Some(&key))
        .await;
    let (configs_status, configs) = app.get("/api/v1/configs", Some(&key)).await;
    let (file_status, file) = into_json(
        app.client
            .post(app.url("/api/v1/file"))
            .header("X-API-Key", &key)
            .multipart(empty_form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (chat_status, chat) = app.post_json("/api/v1/chat", Some(&key), json!({})).await;

    for (status, body) in [
        (sessions_status, sessions),
        (configs_status, configs),
        (file_status, file),
        (chat_status, chat),
    ] {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(
            body,
            json!({"status": "error", "message": "Insufficient API key scope", "data": null})
        );
    }
}

#[tokio::test]
async fn paths_that_merely_start_with_api_v1_need_a_key() {
    let app = spawn_app().await;

    let (xyz_status, xyz) = raw(&app, "GET", "/api/v1xyz", &[]).await;
    let (nope_status, nope) = raw(&app, "GET", "/api/v1/nope", &[]).await;
    let (post_status, post) = raw(&app, "POST", "/api/v1/nope", &[]).await;

    for (status, body) in [(xyz_status, xyz), (nope_status, nope), (post_status, post)] {
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, MISSING_KEY_BODY);
    }
}

#[tokio::test]
async fn unknown_developer_paths_with_a_valid_key_answer_a_404_envelope() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat", "config", "file", "im"]).await;

    let mut answers = Vec::new();
    for path in [
        "/api/v1xyz",
        "/api/v1/nope",
        "/api/v1/chat/sessions/extra",
        "/api/v1/",
    ] {
        answers.push((path, app.get(path, Some(&key)).await));
    }

    for (path, (status, body)) in answers {
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["status"], "error", "{path}");
        assert!(body["message"].is_string(), "{path}: {body}");
        assert!(body["data"].is_null(), "{path}: {body}");
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["status", "message", "data"], "{path}");
    }
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_answers_a_405_envelope() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat", "im"]).await;

    let (chat_status, chat) = app.get("/api/v1/chat", Some(&key)).await;
    let (bots_status, bots) = app
        .post_json("/api/v1/im/bots", Some(&key), json!({}))
        .await;

    for (status, body) in [(chat_status, chat), (bots_status, bots)] {
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
        assert_eq!(body["status"], "error");
        assert!(body["message"].is_string(), "{body}");
        assert!(body["data"].is_null(), "{body}");
    }
}

#[tokio::test]
async fn a_wrong_method_still_gets_the_scope_check_first() {
    let app = spawn_app().await;
    let (im_key, _) = app.create_key(&["im"]).await;

    let (status, body) = app.get("/api/v1/chat", Some(&im_key)).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "Insufficient API key scope");
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_the_very_next_request() {
    let app = spawn_app().await;
    let (key, key_id) = app.create_key(&["im"]).await;
    let token = app.admin_token().await;
    let (before, _) = app.get("/api/v1/im/bots", Some(&key)).await;

    let (_, revoked) = app
        .admin_post(&token, "/api/apikey/revoke", json!({"key_id": key_id}))
        .await;
    let (status, body) = raw(&app, "GET", "/api/v1/im/bots", &[("X-API-Key", &key)]).await;

    assert_eq!(before, StatusCode::OK);
    assert_eq!(revoked["status"], "ok", "{revoked}");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, INVALID_KEY_BODY);
}

#[tokio::test]
async fn a_deleted_key_is_refused_on_the_very_next_request() {
    let app = spawn_app().await;
    let (key, key_id) = app.create_key(&["im"]).await;
    let token = app.admin_token().await;

    let (_, deleted) = app
        .admin_post(&token, "/api/apikey/delete", json!({"key_id": key_id}))
        .await;
    let (status, body) = raw(&app, "GET", "/api/v1/im/bots", &[("X-API-Key", &key)]).await;

    assert_eq!(deleted["status"], "ok", "{deleted}");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, INVALID_KEY_BODY);
}

#[tokio::test]
async fn an_expired_key_is_refused_as_invalid() {
    let app = spawn_app().await;
    let store = SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap();
    let generated = api_key::generate();
    store
        .create_api_key(NewApiKey {
            key_id: uuid::Uuid::new_v4().to_string(),
            name: "expired".into(),
            key_hash: generated.key_hash.clone(),
            lookup_hash: generated.lookup_hash.clone(),
            key_prefix: generated.prefix.clone(),
            scopes: vec!["im".into()],
            created_by: "test".into(),
            expires_at: Some(chrono::Utc::now() - chrono::Duration::minutes(1)),
        })
        .await
        .unwrap();

    let (status, body) = raw(
        &app,
        "GET",
        "/api/v1/im/bots",
        &[("X-API-Key", &generated.plaintext)],
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, INVALID_KEY_BODY);
}

#[tokio::test]
async fn a_key_written_directly_with_a_future_expiry_works() {
    let app = spawn_app().await;
    let store = SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap();
    let generated = api_key::generate();
    store
        .create_api_key(NewApiKey {
            key_id: uuid::Uuid::new_v4().to_string(),
            name: "future".into(),
            key_hash: generated.key_hash.clone(),
            lookup_hash: generated.lookup_hash.clone(),
            key_prefix: generated.prefix.clone(),
            scopes: vec!["im".into()],
            created_by: "test".into(),
            expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        })
        .await
        .unwrap();

    let (status, body) = app.get("/api/v1/im/bots", Some(&generated.plaintext)).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn last_used_at_is_set_by_a_successful_call_and_not_by_a_forbidden_one() {
    let app = spawn_app().await;
    let (key, key_id) = app.create_key(&["im"]).await;
    let fresh = key_record(&app, &key_id).await;

    let (forbidden, _) = app.get("/api/v1/configs", Some(&key)).await;
    let after_forbidden = key_record(&app, &key_id).await;
    let (allowed, _) = app.get("/api/v1/im/bots", Some(&key)).await;
    let after_success = key_record(&app, &key_id).await;

    assert!(fresh["last_used_at"].is_null(), "{fresh}");
    assert_eq!(forbidden, StatusCode::FORBIDDEN);
    assert!(
        after_forbidden["last_used_at"].is_null(),
        "{after_forbidden}"
    );
    assert_eq!(allowed, StatusCode::OK);
    let used = after_success["last_used_at"]
        .as_str()
        .expect("last_used_at is set");
    let used = chrono::DateTime::parse_from_rfc3339(used).unwrap();
    let age = chrono::Utc::now().signed_duration_since(used);
    assert!(
        age >= chrono::Duration::zero() && age < chrono::Duration::minutes(1),
        "{age}"
    );
}

#[tokio::test]
async fn a_failed_key_use_record_does_not_fail_requests_and_pauses_recording() {
    let app = spawn_app().await;
    let (key, key_id) = app.create_key(&["im"]).await;
    // Another program makes the write fail, as a full disk would.
    let database = rusqlite::Connection::open(app.data_dir().join("astrbot-rs.db")).unwrap();
    database
        .execute_batch(
            "CREATE TRIGGER no_touch BEFORE UPDATE OF last_used_at ON api_keys \
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
        )
        .unwrap();

    let (status, _) = app.get("/api/v1/im/bots", Some(&key)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the request does not need the record"
    );

    // The database is writable again, but recording waits out its pause
    // instead of retrying on every request.
    database.execute_batch("DROP TRIGGER no_touch").unwrap();
    for _ in 0..3 {
        let (status, _) = app.get("/api/v1/im/bots", Some(&key)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let record = key_record(&app, &key_id).await;
    assert!(record["last_used_at"].is_null(), "{record}");
}

#[tokio::test]
async fn last_used_at_is_set_even_when_the_handler_then_fails() {
    let app = spawn_app().await;
    let (key, key_id) = app.create_key(&["im"]).await;

    let (_, body) = app
        .post_json("/api/v1/im/message", Some(&key), json!({"message": null}))
        .await;
    let record = key_record(&app, &key_id).await;

    assert_eq!(body["message"], "Missing key: message");
    assert!(record["last_used_at"].is_string(), "{record}");
}

#[tokio::test]
async fn an_admin_route_without_a_token_is_unauthorized() {
    let app = spawn_app().await;

    let (status, body) = raw(&app, "GET", "/api/apikey/list", &[]).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"status": "error", "message": "未授权", "data": null})
    );
}

#[tokio::test]
async fn an_admin_route_with_a_garbage_token_is_refused_as_invalid() {
    let app = spawn_app().await;

    let (status, body) = app.admin_get("not.a.jwt", "/api/apikey/list").await;
    let (raw_status, raw_body) =
        bots_like_admin(&app, &[("Authorization", "garbage-without-dots")]).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"status": "error", "message": "Token 无效", "data": null})
    );
    assert_eq!(raw_status, StatusCode::UNAUTHORIZED);
    assert_eq!(raw_body["message"], "Token 无效");
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_refused_as_invalid() {
    let app = spawn_app().await;
    let forged = jwt::issue("not-the-secret", "astrbot", chrono::Utc::now().timestamp());

    let (status, body) = app.admin_get(&forged, "/api/apikey/list").await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "Token 无效");
}

#[tokio::test]
async fn an_expired_admin_token_is_refused_as_expired() {
    let app = spawn_app().await;
    let eight_days_ago = chrono::Utc::now().timestamp() - 8 * 24 * 3600;
    let expired = jwt::issue(&jwt_secret(&app), "astrbot", eight_days_ago);
    let valid = jwt::issue(&jwt_secret(&app), "astrbot", chrono::Utc::now().timestamp());

    let (status, body) = app.admin_get(&expired, "/api/apikey/list").await;
    let (valid_status, valid_body) = app.admin_get(&valid, "/api/apikey/list").await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"status": "error", "message": "Token 过期", "data": null})
    );
    assert_eq!(valid_status, StatusCode::OK);
    assert_eq!(valid_body["status"], "ok");
}

#[tokio::test]
async fn a_wrong_login_answers_the_compact_ascii_escaped_error() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "astrbot", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = response.bytes().await.unwrap();

    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        r#"{"status":"error","message":"\u7528\u6237\u540d\u6216\u5bc6\u7801\u9519\u8bef","data":null}"#
    );
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["message"], "用户名或密码错误");
}

#[tokio::test]
async fn blank_admin_credentials_in_the_file_are_the_defaults_not_an_open_door() {
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["dashboard"] = json!({"username": null, "password": " ", "jwt_secret": "  "});
    })
    .await;

    let (_, empty_form) = app.post_json("/api/auth/login", None, json!({})).await;
    let (_, blanks) = app
        .post_json(
            "/api/auth/login",
            None,
            json!({"username": "", "password": ""}),
        )
        .await;

    assert_eq!(empty_form["status"], "error", "{empty_form}");
    assert_eq!(blanks["status"], "error", "{blanks}");
    let token = app.admin_token().await;
    let (_, keys) = app.admin_get(&token, "/api/apikey/list").await;
    assert_eq!(keys["status"], "ok", "the default admin signs in");
    let file: Value =
        serde_json::from_slice(&std::fs::read(app.data_dir().join("cmd_config.json")).unwrap())
            .unwrap();
    assert_eq!(file["dashboard"]["username"], "astrbot");
    assert_eq!(
        file["dashboard"]["password"],
        "77b90590a8945a7d36c963981a307dc9"
    );
    assert_eq!(file["dashboard"]["jwt_secret"].as_str().unwrap().len(), 64);

    // A save cannot blank them either: whitespace keeps the stored ones.
    let (_, saved) = app
        .admin_post(
            &token,
            "/api/config/astrbot/update",
            json!({"conf_id": "default", "config": {"dashboard": {"password": "   ", "username": " "}}}),
        )
        .await;
    assert_eq!(saved["status"], "ok", "{saved}");
    let (_, spaces) = app
        .post_json(
            "/api/auth/login",
            None,
            json!({"username": " ", "password": "   "}),
        )
        .await;
    assert_eq!(spaces["status"], "error", "{spaces}");
    app.admin_token().await;
}

#[tokio::test]
async fn the_right_login_answers_a_token_and_the_change_password_hint() {
    let app = spawn_app().await;

    let (status, body) = app
        .post_json(
            "/api/auth/login",
            None,
            json!({"username": "astrbot", "password": "77b90590a8945a7d36c963981a307dc9"}),
        )
        .await;
    let (plain_status, plain) = app
        .post_json(
            "/api/auth/login",
            None,
            json!({"username": "astrbot", "password": "astrbot"}),
        )
        .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
    assert!(body["message"].is_null());
    let data = body["data"].as_object().unwrap();
    let keys: Vec<&String> = data.keys().collect();
    assert_eq!(keys, ["token", "username", "change_pwd_hint"]);
    assert_eq!(data["username"], "astrbot");
    assert_eq!(data["change_pwd_hint"], true);
    let token = data["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3);
    let (list_status, _) = app.admin_get(token, "/api/apikey/list").await;
    assert_eq!(list_status, StatusCode::OK);
    assert_eq!(plain_status, StatusCode::OK);
    assert_eq!(
        plain["status"], "ok",
        "the plain password is accepted too: {plain}"
    );
}

#[tokio::test]
async fn a_wildcard_scope_written_to_the_database_grants_every_path() {
    let app = spawn_app().await;
    let store = SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap();
    let generated = api_key::generate();
    store
        .create_api_key(NewApiKey {
            key_id: uuid::Uuid::new_v4().to_string(),
            name: "wildcard".into(),
            key_hash: generated.key_hash.clone(),
            lookup_hash: generated.lookup_hash.clone(),
            key_prefix: generated.prefix.clone(),
            scopes: vec!["*".into()],
            created_by: "test".into(),
            expires_at: None,
        })
        .await
        .unwrap();

    let mut answers = Vec::new();
    for (method, path, _) in SCOPED_PATHS {
        let answer = raw(&app, method, path, &[("X-API-Key", &generated.plaintext)]).await;
        answers.push((path, answer));
    }

    for (path, (status, body)) in answers {
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_ne!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
}

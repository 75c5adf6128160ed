//! The admin endpoints the web dashboard needs beyond login and keys:
//! the account change (`/api/auth/account/edit`), the provider check
//! (`/api/config/provider/check_one`) and the OpenAPI document served
//! without a key (`/api/v1/openapi.json`).

use fake_openai::Behaviour;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const DEFAULT_MD5: &str = "77b90590a8945a7d36c963981a307dc9";

fn md5(text: &str) -> String {
    astrbot_server::auth::password::md5_hex(text)
}

async fn login(app: &TestApp, username: &str, password: &str) -> Value {
    let (status, body) = app
        .post_json(
            "/api/auth/login",
            None,
            json!({"username": username, "password": password}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    body
}

fn dashboard_on_disk(app: &TestApp) -> Value {
    let text = std::fs::read_to_string(app.data_dir().join("cmd_config.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()
}

#[tokio::test]
async fn password_change_takes_effect_and_ends_older_tokens() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let before = dashboard_on_disk(&app);
    let new_md5 = md5("n3w-pass");

    let (status, body) = app
        .admin_post(
            &token,
            "/api/auth/account/edit",
            json!({"password": DEFAULT_MD5, "new_password": new_md5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));

    let after = dashboard_on_disk(&app);
    assert_eq!(after["dashboard"]["password"], new_md5.as_str());
    assert_eq!(
        after["dashboard"]["jwt_secret"],
        before["dashboard"]["jwt_secret"]
    );
    assert_eq!(after["provider"], before["provider"], "the rest is kept");

    let fresh = login(&app, "astrbot", &new_md5).await;
    assert_eq!(fresh["status"], "ok", "{fresh}");
    assert_eq!(fresh["data"]["change_pwd_hint"], false);
    let old = login(&app, "astrbot", DEFAULT_MD5).await;
    assert_eq!(old["status"], "error", "{old}");

    // A token issued before the change (a stolen one too) no longer works;
    // one issued after it does.
    let (status, body) = app.admin_get(&token, "/api/apikey/list").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "Token 无效", "{body}");
    let fresh = fresh["data"]["token"].as_str().unwrap();
    let (status, body) = app.admin_get(fresh, "/api/apikey/list").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
}

/// Changes the admin's name (and password, which an edit requires).
#[tokio::test]
async fn a_second_change_at_once_ends_the_token_issued_after_the_first() {
    // Logins right after a change issue their token as of the next second;
    // a second change in the same second (a script, a quick admin) must
    // still end it.
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let edit = |token: String, current: String, new: String| {
        let app = &app;
        async move {
            let body = json!({"password": current, "new_password": new});
            app.admin_post(&token, "/api/auth/account/edit", body)
                .await
                .1
        }
    };

    let first = edit(token, DEFAULT_MD5.to_owned(), md5("second")).await;
    let after_first = login(&app, "astrbot", &md5("second")).await;
    let after_first = after_first["data"]["token"].as_str().unwrap().to_owned();
    let second = edit(after_first.clone(), md5("second"), md5("third")).await;
    let (status, _) = app.admin_get(&after_first, "/api/apikey/list").await;
    let after_second = login(&app, "astrbot", &md5("third")).await;
    let after_second = after_second["data"]["token"].as_str().unwrap();

    assert_eq!(
        (first["status"].as_str(), second["status"].as_str()),
        (Some("ok"), Some("ok"))
    );
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the token from before the second change"
    );
    assert_ne!(after_second, after_first);
    let (status, _) = app.admin_get(after_second, "/api/apikey/list").await;
    assert_eq!(status, StatusCode::OK);
}

async fn rename_admin(app: &TestApp, token: &str, new_username: &str) -> Value {
    let body =
        json!({"password": "astrbot", "new_password": "hunter22", "new_username": new_username});
    app.admin_post(token, "/api/auth/account/edit", body)
        .await
        .1
}

#[tokio::test]
async fn username_change_and_plain_passwords_are_stored_as_md5() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let body = rename_admin(&app, &token, " admin ").await;
    assert_eq!(body["status"], "ok", "{body}");
    let dashboard = &dashboard_on_disk(&app)["dashboard"];
    assert_eq!(dashboard["username"], "admin");
    assert_eq!(dashboard["password"], md5("hunter22").as_str());
    assert!(!dashboard_on_disk(&app).to_string().contains("\"hunter22\""));

    let fresh = login(&app, "admin", &md5("hunter22")).await;
    assert_eq!(fresh["status"], "ok", "{fresh}");
    assert_eq!(fresh["data"]["username"], "admin");
    assert_eq!(fresh["data"]["change_pwd_hint"], false);
}

#[tokio::test]
async fn an_admin_name_with_a_bang_is_refused() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    // The admin chats in the dashboard under this name; with `!` in it,
    // another user's conversation key could be reached (see the chat tests).
    let body = rename_admin(&app, &token, "a!b").await;

    assert_eq!(body["message"], "username must not contain '!'", "{body}");
    assert_eq!(dashboard_on_disk(&app)["dashboard"]["username"], "astrbot");
}

#[tokio::test]
async fn password_change_errors() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let (status, body) = app
        .admin_post(
            &token,
            "/api/auth/account/edit",
            json!({"password": md5("wrong"), "new_password": md5("x")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "error", "message": "原密码错误", "data": null})
    );

    for empty in [json!(""), Value::Null] {
        let (_, body) = app
            .admin_post(
                &token,
                "/api/auth/account/edit",
                json!({"password": DEFAULT_MD5, "new_password": empty}),
            )
            .await;
        assert_eq!(body["status"], "error", "{body}");
    }
    for (key, value) in [
        ("new_password", json!(["x"])),
        ("new_password", json!({"p": 1})),
        ("new_username", json!(["boss"])),
    ] {
        let mut edit = json!({"password": DEFAULT_MD5, "new_password": md5("x")});
        edit[key] = value;
        let (_, body) = app.admin_post(&token, "/api/auth/account/edit", edit).await;
        assert_eq!(body["message"], format!("{key} must be a string"), "{body}");
    }

    let (status, body) = app
        .post_json(
            "/api/auth/account/edit",
            None,
            json!({"password": DEFAULT_MD5, "new_password": md5("x")}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["status"], "error");

    // Nothing was changed by the refused attempts.
    assert_eq!(
        dashboard_on_disk(&app)["dashboard"]["password"],
        DEFAULT_MD5
    );
    assert_eq!(login(&app, "astrbot", DEFAULT_MD5).await["status"], "ok");
}

#[tokio::test]
async fn provider_check_reports_an_answering_provider() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (status, body) = app
        .admin_get(&token, "/api/config/provider/check_one?id=fake")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
    let data = &body["data"];
    assert_eq!(data["id"], "fake");
    assert_eq!(data["model"], "fake-model");
    assert_eq!(data["status"], "available");
    assert!(data["latency_ms"].is_u64(), "{data}");
    assert_eq!(data["error"], Value::Null);
    assert_eq!(data["reply"], "Echo: Reply with OK.");

    let (_, body) = app
        .admin_get(
            &token,
            "/api/config/provider/check_one?id=fake&config_id=default",
        )
        .await;
    assert_eq!(body["data"]["status"], "available", "{body}");
}

#[tokio::test]
async fn provider_check_reports_a_failing_provider_and_unknown_ids() {
    let failing = Behaviour {
        fail_status: Some(500),
        ..Behaviour::default()
    };
    let app = spawn_app_with(failing, |_| {}).await;
    let token = app.admin_token().await;

    let (_, body) = app
        .admin_get(&token, "/api/config/provider/check_one?id=fake")
        .await;
    assert_eq!(body["status"], "ok", "{body}");
    let data = &body["data"];
    assert_eq!(data["status"], "unavailable");
    assert!(data["latency_ms"].is_u64(), "{data}");
    assert!(
        data["error"].as_str().is_some_and(|e| e.contains("500")),
        "{data}"
    );
    assert!(!data.to_string().contains("sk-test-1"), "no key in {data}");

    let (_, body) = app
        .admin_get(&token, "/api/config/provider/check_one?id=nope")
        .await;
    assert_eq!(
        body,
        json!({"status": "error", "message": "Provider with id 'nope' not found", "data": null})
    );

    let (_, body) = app
        .admin_get(&token, "/api/config/provider/check_one")
        .await;
    assert_eq!(body["status"], "error", "{body}");

    let (status, _) = app
        .get("/api/config/provider/check_one?id=fake", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn openapi_document_is_served_without_a_key() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header("content-type").starts_with("application/json"));
    assert!(!header("cache-control").is_empty());
    let document: Value = response.json().await.unwrap();

    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(document["servers"][0]["url"], "http://127.0.0.1:6185");
    assert_eq!(
        document["components"]["securitySchemes"]["ApiKeyHeader"]["name"],
        "X-API-Key"
    );
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/api/v1/im/bots",
        "/api/v1/im/message",
        "/api/v1/configs",
        "/api/v1/chat",
        "/api/v1/chat/sessions",
        "/api/v1/file",
        "/api/v1/im/bots/status",
        "/api/v1/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} documented");
    }

    // Only this one path is open: its neighbours still need a key.
    for path in [
        "/api/v1/im/bots",
        "/api/v1/openapi",
        "/api/v1/openapi.json/x",
    ] {
        let (status, _) = app.get(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat", "config", "file", "im"]).await;
    let (_, document) = app.get("/api/v1/openapi.json", None).await;
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let request = match method.as_str() {
                "get" => app.client.get(app.url(path)),
                "post" => app.client.post(app.url(path)).json(&json!({})),
                other => panic!("{path}: undocumented method kind {other}"),
            };
            let response = request.header("X-API-Key", &key).send().await.unwrap();
            let status = response.status();
            assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
}

//! The dashboard's chat and provider endpoints under the admin JWT:
//! `/api/chat/{send,sessions,history,post_file,get_attachment}` and
//! `/api/config/providers`.

use astrbot_core::Store;
use astrbot_store::SqliteStore;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const ADMIN: &str = "astrbot";

/// POSTs to `/api/chat/send` with the JWT and reads the whole answer.
async fn send(app: &TestApp, token: &str, body: Value) -> SseStream {
    let response = app
        .client
        .post(app.url("/api/chat/send"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    read_stream(response).await
}

async fn upload(app: &TestApp, token: &str, name: &str, mime: &str, bytes: Vec<u8>) -> Value {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(mime)
        .unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    let response = app
        .client
        .post(app.url("/api/chat/post_file"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    into_json(response).await.1
}

#[tokio::test]
async fn send_streams_as_the_signed_in_admin() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let stream = send(
        &app,
        &token,
        // A posted user name is ignored: the admin chats as themselves.
        json!({"message": "hi admin", "session_id": "a-1", "username": "mallory"}),
    )
    .await;
    assert_eq!(stream.status, StatusCode::OK);
    assert!(stream.content_type.starts_with("text/event-stream"));
    assert_eq!(
        stream.events[0],
        json!({"type": "session_id", "data": null, "session_id": "a-1"})
    );
    assert_eq!(stream.types().last().unwrap(), "end");
    assert_eq!(stream.text(), "Echo: hi admin");

    let (_, sessions) = app.admin_get(&token, "/api/chat/sessions").await;
    assert_eq!(sessions["status"], "ok", "{sessions}");
    let data = &sessions["data"];
    assert_eq!(data["page"], 1);
    assert_eq!(data["page_size"], 20);
    assert_eq!(data["total"], 1);
    let session = &data["sessions"][0];
    assert_eq!(session["session_id"], "a-1");
    assert_eq!(session["creator"], ADMIN);
    assert_eq!(session["platform_id"], "webchat");
    assert_eq!(session["is_group"], 0);
    for key in ["display_name", "created_at", "updated_at"] {
        assert!(session.get(key).is_some(), "{key} missing: {session}");
    }
}

#[tokio::test]
async fn send_validates_like_the_developer_endpoint() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let stream = send(&app, &token, json!({"session_id": "x"})).await;
    assert_eq!(
        stream.events[0],
        json!({"status": "error", "message": "Missing key: message or files", "data": null})
    );
    let stream = send(&app, &token, json!({"message": "", "config_id": "nope"})).await;
    assert_eq!(stream.events[0]["message"], "config_id not found: nope");
}

#[tokio::test]
async fn sessions_are_newest_first_and_paginated() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    for id in ["old", "new"] {
        let stream = send(&app, &token, json!({"message": id, "session_id": id})).await;
        assert_eq!(stream.types().last().unwrap(), "end");
    }
    // A title written after the first answer also counts as an update:
    // wait for both titles, then check the order on `updated_at`.
    app.eventually("both sessions have titles", || async {
        let (_, body) = app.admin_get(&token, "/api/chat/sessions").await;
        body["data"]["sessions"]
            .as_array()
            .is_some_and(|all| all.len() == 2 && all.iter().all(|s| s["display_name"].is_string()))
    })
    .await;
    let (_, first) = app
        .admin_get(&token, "/api/chat/sessions?page=1&page_size=1")
        .await;
    assert_eq!(first["data"]["total"], 2);
    assert_eq!(first["data"]["page"], 1);
    assert_eq!(first["data"]["page_size"], 1);
    let (_, second) = app
        .admin_get(&token, "/api/chat/sessions?page=2&page_size=1")
        .await;
    let (first, second) = (
        &first["data"]["sessions"][0],
        &second["data"]["sessions"][0],
    );
    let mut ids = [first["session_id"].clone(), second["session_id"].clone()];
    ids.sort_by_key(|id| id.to_string());
    assert_eq!(ids, [json!("new"), json!("old")]);
    let instant = |session: &Value| {
        chrono::DateTime::parse_from_rfc3339(session["updated_at"].as_str().unwrap()).unwrap()
    };
    assert!(instant(first) >= instant(second), "{first} {second}");
}

#[tokio::test]
async fn history_returns_both_turns_in_order() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let stream = send(
        &app,
        &token,
        json!({"message": "first", "session_id": "h-1"}),
    )
    .await;
    assert_eq!(stream.types().last().unwrap(), "end");

    let (status, body) = app
        .admin_get(&token, "/api/chat/history?session_id=h-1")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
    let history = body["data"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{body}");
    let (user, bot) = (&history[0], &history[1]);
    assert!(user["id"].as_i64().unwrap() < bot["id"].as_i64().unwrap());
    assert_eq!(user["sender_id"], ADMIN);
    assert_eq!(user["sender_name"], ADMIN);
    assert_eq!(user["content"]["type"], "user");
    assert_eq!(
        user["content"]["message"],
        json!([{"type": "plain", "text": "first"}])
    );
    assert_eq!(bot["content"]["type"], "bot");
    assert!(bot["content"]["message"]
        .to_string()
        .contains("Echo: first"));
    assert!(user["created_at"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(body["data"]["config_id"], "default", "{body}");

    let (_, body) = app
        .admin_get(&token, "/api/chat/history?session_id=unknown")
        .await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["data"], json!({"history": [], "config_id": "default"}));
}

#[tokio::test]
async fn history_of_another_users_session_is_refused() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let stream = app
        .chat(
            &key,
            json!({"message": "mine", "username": "bob", "session_id": "bob-1"}),
        )
        .await;
    assert_eq!(stream.types().last().unwrap(), "end");

    let token = app.admin_token().await;
    let (_, body) = app
        .admin_get(&token, "/api/chat/history?session_id=bob-1")
        .await;
    assert_eq!(
        body,
        json!({"status": "error", "message": "session_id belongs to another username", "data": null})
    );
    // Nor can the admin post into it, nor see it in their list.
    let stream = send(&app, &token, json!({"message": "x", "session_id": "bob-1"})).await;
    assert_eq!(
        stream.events[0]["message"],
        "session_id belongs to another username"
    );
    let (_, body) = app.admin_get(&token, "/api/chat/sessions").await;
    assert_eq!(body["data"]["total"], 0);
}

#[tokio::test]
async fn uploads_round_trip_with_header_or_query_token() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let bytes = b"\x89PNG\r\n\x1a\nnot really".to_vec();
    let answer = upload(&app, &token, "pic.png", "image/png", bytes.clone()).await;
    assert_eq!(answer["status"], "ok", "{answer}");
    assert_eq!(answer["data"]["filename"], "pic.png");
    assert_eq!(answer["data"]["type"], "image");
    let id = answer["data"]["attachment_id"].as_str().unwrap();
    let path = format!("/api/chat/get_attachment?attachment_id={id}");

    let check = |response: reqwest::Response| async {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "image/png");
        assert_eq!(response.headers()["cache-control"], "private, max-age=3600");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["content-security-policy"], "sandbox");
        assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);
    };
    let with_header = app
        .client
        .get(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    check(with_header).await;
    let with_query = app
        .client
        .get(app.url(&format!("{path}&token={token}")))
        .send()
        .await
        .unwrap();
    check(with_query).await;

    // The attachment can be sent in a chat like a developer upload.
    let stream = send(
        &app,
        &token,
        json!({"message": [{"type": "image", "attachment_id": id}, {"type": "plain", "text": "see"}]}),
    )
    .await;
    assert_eq!(stream.types().last().unwrap(), "end");
}

#[tokio::test]
async fn unknown_or_outside_attachments_are_not_found() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (status, body) = app
        .admin_get(&token, "/api/chat/get_attachment?attachment_id=nope")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["status"], "error");

    // A record pointing outside data/attachments/ is never served.
    let secret = app.root.join("secret.txt");
    std::fs::write(&secret, "secret").unwrap();
    let store = SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap();
    store
        .create_attachment("evil", &secret.display().to_string(), "file", "text/plain")
        .await
        .unwrap();
    let (status, _) = app
        .admin_get(&token, "/api/chat/get_attachment?attachment_id=evil")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_attachment_stored_under_another_root_is_found_in_this_one() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let bytes = b"\x89PNG\r\n\x1a\nmoved".to_vec();
    // AstrBot keeps uploads in data/attachments/ and stores absolute
    // paths: copied with its database, this file is still named where
    // AstrBot's root was.
    std::fs::write(app.data_dir().join("attachments").join("moved.png"), &bytes).unwrap();
    let store = SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap();
    let id = "moved-1";
    store
        .create_attachment(
            id,
            "/old/astrbot/data/attachments/moved.png",
            "image",
            "image/png",
        )
        .await
        .unwrap();

    let response = app
        .client
        .get(app.url(&format!("/api/chat/get_attachment?attachment_id={id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);

    let (key, _) = app.create_key(&["chat"]).await;
    let message = json!([{"type": "image", "attachment_id": id}, {"type": "plain", "text": "see"}]);
    app.chat(&key, json!({"message": message, "username": "u"}))
        .await;
    let request = app.chat_requests().pop().unwrap();
    let url = request["messages"].as_array().unwrap().last().unwrap()["content"][1]["image_url"]
        ["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with("data:image/png;base64,"), "{request}");
}

#[tokio::test]
async fn the_query_token_is_accepted_on_the_attachment_path_only() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let response = app
        .client
        .get(app.url(&format!("/api/chat/sessions?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .client
        .get(app.url("/api/chat/get_attachment?attachment_id=x&token=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn providers_lists_the_configs_chat_providers() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let expected = json!({
        "providers": [{"id": "fake", "type": "openai_chat_completion", "model": "fake-model"}],
        "default_provider_id": "fake",
    });
    let (status, body) = app.admin_get(&token, "/api/config/providers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["data"], expected);
    let (_, body) = app
        .admin_get(&token, "/api/config/providers?config_id=default")
        .await;
    assert_eq!(body["data"], expected);

    let (_, body) = app
        .admin_get(&token, "/api/config/providers?config_id=missing")
        .await;
    assert_eq!(
        body,
        json!({"status": "error", "message": "配置文件 missing 不存在", "data": null})
    );
}

#[tokio::test]
async fn every_endpoint_needs_the_admin_jwt() {
    let app = spawn_app().await;
    let gets = [
        "/api/chat/sessions",
        "/api/chat/history?session_id=x",
        "/api/chat/get_attachment?attachment_id=x",
        "/api/config/providers",
    ];
    for path in gets {
        let (status, body) = app.get(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["status"], "error", "{path}");
    }
    for path in ["/api/chat/send", "/api/chat/post_file"] {
        let (status, _) = app.post_json(path, None, json!({"message": "x"})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // An API key is not an admin token.
    let (key, _) = app.create_key(&["chat", "file"]).await;
    let response = app
        .client
        .get(app.url("/api/chat/sessions"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
